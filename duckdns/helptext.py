"""``duckdns --help`` at 80 columns, from cli.write_helptext(): do not edit."""

PYTHON = (3, 11)
WIDTH = 78
MAIN = """\
usage: duckdns [-h] [-v] [-q] [--config PATH] [--version] COMMAND ...

Keep DuckDNS names pointed at this host's address.

positional arguments:
  COMMAND
    update       update the A/AAAA records if the address changed
    check        validate the configuration, without any network traffic
    status       show what the last runs did
    txt          set or clear the TXT record (ACME DNS-01)
    clear        clear the A and AAAA records
    verify       check that the names resolve to the address DuckDNS recorded
    backup-paths
                 print the files a backup must hold to restore this setup

options:
  -h, --help     show this help message and exit
  -v, --verbose  say more (twice: debug)
  -q, --quiet    say less (once: no change notices; twice: errors only)
  --config PATH  configuration file (default: $STATE_DIRECTORY/duckdns.conf,
                 else /var/lib/private/duckdns/duckdns.conf)
  --version      show program's version number and exit

exit codes:
  0   success (also: nothing to do)
  1   DuckDNS answered KO: wrong token or domain (never retried)
  2   usage error
  75  temporary failure after retries: network, DNS, TLS or clock, timeout,
      HTTP status other than 200, redirect, unexpected or oversized answer
  78  configuration error (the message names the file and the fix)

The token is read only from the configuration file (mode 0600), never from the
command line or the environment. See duckdns(1) and duckdns.conf(5).
"""
