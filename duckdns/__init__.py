"""duckdns: a hardened dynamic-DNS updater for DuckDNS, packaged for Debian."""

__version__ = "1.1.0"

# Exit codes (sysexits.h where one fits); docs/design.md lists them.
EXIT_OK, EXIT_KO, EXIT_USAGE, EXIT_TEMPFAIL, EXIT_CONFIG, EXIT_SOFTWARE = 0, 1, 2, 75, 78, 70
