"""What every test layer shares: helpers, the test CA and the look-alike servers.

pytest.ini puts tests/ on sys.path, so tests import ``from support.helpers import ...``.
duckdns_server.py, dnsserver.py and hostile_server.py also run as standalone scripts (the
system tests copy them into containers and VMs; scripts/bench starts them), so they import
nothing from this package.
"""
