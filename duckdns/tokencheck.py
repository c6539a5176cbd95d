"""The token checked at setup: one bounded update with the debconf answers.

debian/config runs ``duckdns --config FILE debconf-check`` after an interactive frontend's
questions (the answers on stdin, as for debconf-write), so that a token DuckDNS answers
``KO`` to is said while the admin is still at the questions, not a minute later in the
journal. The request is the update the timer would send next (same file, answers applied
as debconf-write would apply them: server, ca_bundle and addresses of the file are used),
one try, at most :data:`BUDGET` seconds in all whatever the server does.

Its answer is not recorded in state.json: the state file is the updater's record of what it
decided and sent (and its format belongs to the update path); the timer's first run sends
its own update a few minutes later in any case. So a setup costs DuckDNS one more request.
"""

from __future__ import annotations

from duckdns import EXIT_KO, EXIT_OK, EXIT_TEMPFAIL, config, deadline, report

BUDGET = 10.0  # seconds, TLS handshake, retries (none) and answer included
UNREACHABLE = "could not reach DuckDNS; the timer keeps trying"


def check(path: str, answers: dict[str, str]) -> int:
    """0: DuckDNS took the update; 1 (KO): it refused the token or a name, said on stderr;
    75: no answer (said on stderr), or nothing to send yet. ConfigError: the answers
    cannot make a config."""
    cfg = config.parse(config.rewritten(path, answers), path)
    ipv4 = {"auto": "", "off": None}.get(cfg.ipv4, cfg.ipv4)  # "": DuckDNS takes the source
    ipv6 = cfg.ipv6 if cfg.ipv6 not in ("auto", "off") else None
    if cfg.ipv6 == "auto":
        from duckdns import localaddr

        ipv6 = localaddr.global_ipv6()
    if ipv4 is None and ipv6 is None:
        report.warning(
            "no global IPv6 address here yet, so the token was not checked; the timer keeps trying"
        )
        return EXIT_TEMPFAIL
    if ipv4 is None:
        # ipv6= without ip= has no documented effect; an IPv6 address in ip= sets the AAAA
        # record (duckdns.org/spec.jsp: "You can put either an IPv4 or an IPv6 address in
        # the ip parameter").
        ipv4, ipv6 = ipv6, None
    from duckdns import api

    try:
        with deadline.bound(BUDGET) as mine:
            api.send(cfg, api.build_query(cfg, ipv4=ipv4, ipv6=ipv6), retries=False)
    except api.Rejected:
        report.error(
            "DuckDNS answered KO: it refused this token for these subdomains. Either the "
            "token is not your account's (copy it again from the top of duckdns.org once "
            "signed in; a new one was made if you regenerated it) or a subdomain is not in "
            "that account (add it on duckdns.org, or correct its spelling)"
        )
        return EXIT_KO
    except api.TemporaryFailure as exc:
        report.warning(f"{UNREACHABLE} ({exc})")
        return EXIT_TEMPFAIL
    except deadline.Expired as exc:
        if exc is not mine:
            raise
        report.warning(f"{UNREACHABLE} (no answer within {BUDGET:.0f} s)")
        return EXIT_TEMPFAIL
    return EXIT_OK
