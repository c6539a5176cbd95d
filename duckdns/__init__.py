"""duckdns: a hardened dynamic-DNS updater for DuckDNS, packaged for Debian."""

__version__ = "0.1.0"
