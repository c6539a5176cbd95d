"""duckdns: a hardened dynamic-DNS updater for DuckDNS, packaged for Debian."""

from enum import IntEnum

__version__ = "1.1.0"


class _Described(IntEnum):
    """An exit status with the words ``--help``, duckdns(1) and docs/design.md show for it."""

    meaning: str

    def __new__(cls, value: int, meaning: str) -> "_Described":
        member = int.__new__(cls, value)
        member._value_ = value
        member.meaning = meaning
        return member


class ExitStatus(_Described):
    """What every command exits with (sysexits.h where one fits). The one definition:
    the help's table is made from it, and tests hold the man page and docs/design.md to it."""

    OK = 0, "success, or nothing to do (also: waiting after a failed attempt)"
    KO = 1, "DuckDNS answered KO: wrong token or domain (never retried)"
    USAGE = 2, "usage error"
    SOFTWARE = 70, "internal error: a bug in duckdns (please report it)"
    TEMPFAIL = (
        75,
        "temporary failure after retries: network, DNS, TLS or clock, timeout, HTTP "
        "status other than 200, redirect, unexpected or oversized answer",
    )
    CONFIG = 78, "configuration error (the message names the file and the fix)"


class CheckStatus(_Described):
    """What ``duckdns status --check`` exits with: the monitoring-plugins convention
    (Nagios, Icinga, Checkmk), whose four states the output's first word repeats."""

    OK = 0, "OK: the last attempt worked and a success is recent"
    WARNING = (
        1,
        "WARNING: temporary failures for less than an hour, the address probe failing "
        "or not trusted, or no success for longer than refresh plus an hour",
    )
    CRITICAL = 2, "CRITICAL: DuckDNS answered KO, or failures for an hour or more"
    UNKNOWN = 3, "UNKNOWN: never run yet, or the configuration or state cannot be read"


# The names the modules use.
EXIT_OK, EXIT_KO, EXIT_USAGE = ExitStatus.OK, ExitStatus.KO, ExitStatus.USAGE
EXIT_SOFTWARE, EXIT_TEMPFAIL, EXIT_CONFIG = (
    ExitStatus.SOFTWARE,
    ExitStatus.TEMPFAIL,
    ExitStatus.CONFIG,
)
