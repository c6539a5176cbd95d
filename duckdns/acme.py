"""ACME DNS-01 with DuckDNS: which DuckDNS name answers a challenge, and waiting for it.

``duckdns txt set/clear --for NAME`` and ``duckdns txt wait`` (the certbot hooks in hooks/
run them) use this module:

- :func:`target_for` finds the configured DuckDNS name that answers the challenge of a
  certificate name. DuckDNS serves a subname's TXT value at NAME.duckdns.org and at every
  name below it (lego, acme.sh and certbot-dns-duckdns all rely on this), so
  ``www.myhome.duckdns.org`` and ``*.myhome.duckdns.org`` map to ``myhome``. Any other
  name is accepted when its ``_acme-challenge`` name is a CNAME (directly or through other
  CNAMEs) to a name at or below a configured NAME.duckdns.org, the delegation that
  certbot-dns-duckdns and the Home Assistant add-on document.
- :func:`wait` asks DuckDNS's authoritative name servers (the NS records of duckdns.org,
  looked up at the system resolver) for that TXT record every 2 s, until every server that
  answers serves the new value or the time runs out, as lego does. A fixed sleep is the
  known cause of intermittent "Incorrect TXT record" failures (dehydrated #947): the
  servers serve a new value after a delay that varies.

The certificate authority has the last word either way: running out of time is a warning,
not a failure.
"""

from __future__ import annotations

import argparse
import time

from duckdns import EXIT_TEMPFAIL, config, report

ZONE = "duckdns.org"
CHALLENGE = "_acme-challenge"
PORT = 53  # where name servers listen
POLL_INTERVAL = 2.0
DEFAULT_WAIT = 120
MAX_WAIT = 600


class LookupFailed(Exception):
    """A DNS question needed to map a name could not be answered. Exit 75."""


class Target:
    """Where the challenge of a certificate name is answered.

    ``subname`` is the configured DuckDNS name whose TXT record is set; ``owner`` is the
    name the certificate authority asks DuckDNS's servers for (the end of the CNAME chain
    for a delegated name); ``chain`` is that chain, for messages.
    """

    __slots__ = ("subname", "owner", "chain")

    def __init__(self, subname: str, owner: str, chain: tuple[str, ...]) -> None:
        self.subname = subname
        self.owner = owner
        self.chain = chain


# -- the command line --------------------------------------------------------------------------


def _seconds(text: str) -> int:
    if not (text.isascii() and text.isdigit()):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a whole number of seconds (0 to {MAX_WAIT})"
        )
    value = int(text)
    if value > MAX_WAIT:
        raise argparse.ArgumentTypeError(f"{value} is too long: at most {MAX_WAIT} seconds")
    return value


def txt_value(text: str) -> str:
    """The VALUE of ``txt set`` and ``txt wait``, refused (exit 2) before anything is asked
    or sent when it cannot be a TXT value (duckdns.state.txt_problem, the state's own rule)."""
    from duckdns import state

    problem = state.txt_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return text


def _server(text: str) -> tuple[str, int]:
    try:
        return config.parse_ip_port(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_arguments(parser: argparse.ArgumentParser, *, wait: bool = False) -> None:
    """The options of ``txt set``, ``txt clear`` and (``wait=True``) ``txt wait``."""
    parser.add_argument(
        "--for",
        dest="for_name",
        metavar="NAME",
        help="the certificate name being validated (certbot's CERTBOT_DOMAIN): a configured "
        "NAME.duckdns.org, a name below it, or a name whose _acme-challenge is a CNAME to "
        "one; only that DuckDNS name's record is used",
    )
    also = ", and to ask for the TXT record instead of DuckDNS's own name servers"
    parser.add_argument(
        "--nameserver",
        metavar="ADDR[:PORT]",
        type=_server,
        help="the DNS server to ask for the CNAME of --for (default: the first nameserver "
        f"in /etc/resolv.conf){also if wait else ''}",
    )
    if wait:
        parser.add_argument(
            "--timeout",
            metavar="SECONDS",
            type=_seconds,
            default=DEFAULT_WAIT,
            help=f"give up after SECONDS, 0 to {MAX_WAIT} (default: {DEFAULT_WAIT}); "
            "0 does not wait",
        )


def config_for(args: argparse.Namespace, path: str) -> config.Config:
    """The configuration, narrowed to the DuckDNS name ``--for`` maps to (if given)."""
    cfg = config.load(path)
    if args.for_name:
        cfg.domains = (target_for(args.for_name, cfg, args.nameserver).subname,)
    return cfg


def cmd_wait(args: argparse.Namespace, path: str) -> int:
    """``duckdns txt wait``: exit 0 whether or not the value showed up in time."""
    cfg = config.load(path)
    if args.for_name:
        try:
            owners = [target_for(args.for_name, cfg, args.nameserver).owner]
        except LookupFailed as exc:
            report.error(str(exc))
            return EXIT_TEMPFAIL
    else:
        owners = [f"{CHALLENGE}.{name}.{ZONE}" for name in cfg.domains]
    if args.timeout:
        servers = [args.nameserver] if args.nameserver else None
        wait(args.value, owners, servers, args.nameserver, args.timeout)
    return 0


# -- which DuckDNS name answers the challenge --------------------------------------------------


def target_for(domain: str, cfg: config.Config, resolver: tuple[str, int] | None) -> Target:
    """The configured DuckDNS name that answers the DNS-01 challenge of ``domain``.

    Raises ConfigError (the name maps to no configured DuckDNS name: nothing may be sent)
    or LookupFailed (the CNAME could not be looked up). No question is asked for a name
    below duckdns.org; ``resolver`` None is the system's.
    """
    import dns.name  # dnspython, as duckdns.resolve: only when --for is given

    from duckdns import resolve

    shown = report.safe(domain)  # certbot's environment: never printed raw
    text = domain.strip()
    if text.startswith("*."):
        text = text[2:]  # a wildcard's challenge is at _acme-challenge.<the rest>
    if text in ("", "."):
        raise config.ConfigError("no certificate name given (--for NAME)")
    try:  # internationalised names become xn--...
        name = dns.name.from_text(text).to_text(omit_final_dot=True).lower()
        challenge = dns.name.from_text(f"{CHALLENGE}.{name}").to_text(True).lower()
    except resolve.FAILURES as exc:
        raise config.ConfigError(f"'{shown}' is not a domain name ({type(exc).__name__})") from None
    chain: tuple[str, ...] = ()
    if name == ZONE:
        raise config.ConfigError(
            f"{shown} is DuckDNS's own domain, not a DuckDNS name: give NAME.duckdns.org"
        )
    if name.endswith("." + ZONE):
        owner = challenge
    else:
        res = resolve.resolver(resolver)
        try:
            found = resolve.walk(res, challenge, "TXT", stop_at=ZONE)
        except resolve.Failed as exc:
            raise LookupFailed(
                f"cannot look up {challenge} at {resolve.where(res)} "
                f"to follow its CNAME to DuckDNS: {exc}"
            ) from None
        chain = found.chain
        missing = "" if found.exists else ", which does not exist"
        seen = f" (it leads to {' -> '.join([challenge, *chain])}{missing})" if chain else ""
        if not chain or not chain[-1].endswith("." + ZONE):
            seen = seen or ("" if found.exists else " (it does not exist)")
            raise config.ConfigError(
                f"{shown} is not a DuckDNS name (NAME.duckdns.org or a name below it), and "
                f"{challenge} is not a CNAME to one{seen}: at the DNS provider of {name}, "
                f"add the record '{challenge}. CNAME {CHALLENGE}.{cfg.domains[0]}.{ZONE}.'"
            )
        owner = chain[-1]
    subname = owner[: -len(ZONE) - 1].rsplit(".", 1)[-1]  # the label just above duckdns.org
    if subname not in cfg.domains:
        via = f" (through {' -> '.join([challenge, *chain])})" if chain else ""
        raise config.ConfigError(
            f"{shown} belongs to {subname}.{ZONE}{via}, which is not configured (configured: "
            f"{', '.join(cfg.domains)}); add it to 'domains' in {cfg.path}"
        )
    return Target(subname, owner, chain)


# -- waiting for DuckDNS's name servers --------------------------------------------------------


def nameservers(resolver: tuple[str, int] | None, port: int = PORT) -> list[tuple[str, int]]:
    """The addresses of duckdns.org's name servers (its NS records), asked at ``resolver``
    (None: the system's), each with ``port`` (53; tests use another); LookupFailed if none."""
    from duckdns import resolve

    res = resolve.resolver(resolver)
    try:
        names = [ns.rstrip(".") for ns in resolve.walk(res, ZONE, "NS").values]
    except resolve.Failed as exc:
        raise LookupFailed(str(exc)) from None
    if not names:
        raise LookupFailed(f"no NS records for {ZONE} at {resolve.where(res)}")
    addresses: list[tuple[str, int]] = []
    problems = []
    for ns in sorted(set(names)):
        try:
            found = resolve.addresses(res, ns)
        except resolve.Failed as exc:
            problems.append(f"{ns} {exc}")
            continue
        addresses += [(address, port) for address in found.values]
    if not addresses:
        raise LookupFailed(
            f"no address for the name servers of {ZONE} ({'; '.join(problems) or 'none found'})"
        )
    return list(dict.fromkeys(addresses))


def _endpoint(server: tuple[str, int]) -> str:
    address, port = server
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _ask(server: tuple[str, int], owner: str, value: str, timeout: float) -> str | None:
    """What ``server`` serves as the TXT of ``owner``: "served", "other", or None (no answer).

    One question, over TCP when the UDP reply is truncated. The UDP socket is connected, so
    that a closed port fails at once (ICMP) instead of after the timeout, and datagrams from
    any other address never reach it. An answer is a valid reply, NOERROR or NXDOMAIN; a
    timeout or an error RCODE (SERVFAIL, REFUSED) is no answer, and such a server is left
    out of the verdict.
    """
    import socket

    import dns.inet
    import dns.message
    import dns.query
    import dns.rcode

    from duckdns import failure, resolve

    address, port = server
    try:
        question = dns.message.make_query(owner, "TXT")
        family = dns.inet.af_for_address(address)
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)  # as dnspython wants a socket it is given
            sock.connect(dns.inet.low_level_address_tuple(server, family))
            response, _ = dns.query.udp_with_fallback(
                question, address, timeout, port, ignore_unexpected=True, udp_sock=sock
            )
        rcode = response.rcode()
        rrset = response.get_rrset(
            response.answer, question.question[0].name, dns.rdataclass.IN, dns.rdatatype.TXT
        )
    except resolve.FAILURES as exc:
        report.debug(f"{_endpoint(server)}: {failure.explain(exc, 'it', timeout)[0]}")
        return None
    if rcode != dns.rcode.NOERROR:
        report.debug(f"{_endpoint(server)}: {owner} TXT: {dns.rcode.to_text(rcode)}")
        return "other" if rcode == dns.rcode.NXDOMAIN else None
    values = [b"".join(rd.strings).decode("utf-8", "backslashreplace") for rd in rrset or ()]
    shown = ", ".join(f"'{report.safe(v, 100)}'" for v in values[:4])  # the server's text
    more = f" and {len(values) - 4} more" if len(values) > 4 else ""
    report.debug(f"{_endpoint(server)}: {owner} TXT [{shown}]{more}")
    return "served" if value in values else "other"


def wait(
    value: str,
    owners: list[str],
    servers: list[tuple[str, int]] | None,
    resolver: tuple[str, int] | None,
    timeout: float,
    *,
    port: int = PORT,
) -> bool:
    """Ask every POLL_INTERVAL s until all servers that answer serve ``value`` for ``owners``.

    ``servers`` None means DuckDNS's own (:func:`nameservers`, looked up at ``resolver``,
    again each round until found). True when the value is served; False, with a warning,
    when ``timeout`` s ran out first.
    """
    start = time.monotonic()
    names = ", ".join(owners)
    asked = f"the DNS server {_endpoint(servers[0])}" if servers else f"the name servers of {ZONE}"
    report.notice(f"waiting up to {timeout:g} s for the new TXT value of {names} at {asked}")
    found = ["no answer yet"]  # what each round found: the last, for the warning
    from duckdns import deadline  # a hard bound, however many servers stay silent

    try:
        with deadline.bound(timeout) as mine:
            if _rounds(value, owners, servers, resolver, port, start, timeout, found):
                return True
    except deadline.Expired as exc:
        if exc is not mine:
            raise
    report.warning(
        f"warning: the new TXT value of {names} is not yet served after {timeout:g} s "
        f"({found[-1]}); going on, the certificate authority's own check decides "
        "(DUCKDNS_ACME_WAIT sets the time the certbot hook waits)"
    )
    return False


def _rounds(
    value: str,
    owners: list[str],
    servers: list[tuple[str, int]] | None,
    resolver: tuple[str, int] | None,
    port: int,
    start: float,
    timeout: float,
    found: list[str],
) -> bool:
    """:func:`wait`'s rounds until ``timeout`` s after ``start``; each round's finding is
    appended to ``found``. A frame of its own: no loop may run in a bound's (duckdns.deadline)."""
    ends = start + timeout
    names = ", ".join(owners)
    while time.monotonic() < ends:
        round_start = time.monotonic()
        if servers is None:
            try:
                servers = nameservers(resolver, port)
                report.debug(f"name servers of {ZONE}: {servers}")
            except LookupFailed as exc:
                found.append(f"cannot find the name servers of {ZONE}: {exc}")
                report.info(found[-1])
        if servers:
            verdicts = []
            for server in servers:
                limit = min(1.0, max(ends - time.monotonic(), 0.2))
                answers = [_ask(server, owner, value, limit) for owner in owners]
                if None not in answers:
                    verdicts.append(all(a == "served" for a in answers))
            if verdicts and all(verdicts):
                report.notice(
                    f"{names}: the new TXT value is served after "
                    f"{time.monotonic() - start:.1f} s ({len(verdicts)} of {len(servers)} "
                    "name servers answered, all with it)"
                )
                return True
            found.append(
                f"{verdicts.count(False)} of {len(verdicts)} answering name servers serve "
                "another value"
                if verdicts
                else f"none of the {len(servers)} name servers answered"
            )
            report.info(f"{time.monotonic() - start:.1f} s: {found[-1]}")
        time.sleep(max(min(round_start + POLL_INTERVAL, ends) - time.monotonic(), 0))
    return False
