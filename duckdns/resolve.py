"""Names to addresses with dnspython, for ``duckdns verify`` and ``duckdns txt``.

``verify`` resolves each name to its A and AAAA records following CNAMEs; the ACME commands
follow a custom domain's ``_acme-challenge`` CNAME to a DuckDNS name and look up DuckDNS's
name servers. One CNAME walk (:func:`walk`) serves both. dnspython asks (over TCP when a
reply is truncated) and parses; this module adds the walk across questions and the bounds.

Only those commands import it: dnspython costs 100-180 ms to import, more than a whole
timer run, whose probe asks its one question with duckdns.dnswire.
"""

from __future__ import annotations

from typing import NamedTuple

import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver

from duckdns import failure

QUESTION_TIMEOUT = 1.0  # seconds for one question, whatever the tries and servers
MAX_CNAME_HOPS = 10
# What the network or a server can make dnspython raise (EOFError: TCP closed early).
FAILURES = (dns.exception.DNSException, OSError, EOFError, ValueError)


class Failed(Exception):
    """A question could not be answered; the message is one line for the user."""


class Walk(NamedTuple):
    """Where a name led: the CNAMEs followed, the records of the end name, and whether
    that name exists (False: NXDOMAIN)."""

    name: str
    chain: tuple[str, ...]
    values: tuple[str, ...]
    exists: bool


def resolver(address: tuple[str, int] | None = None) -> dns.resolver.Resolver:
    """A resolver asking ``address`` (ADDR, PORT), or the system's: the name servers of
    /etc/resolv.conf, or 127.0.0.1 when it lists none (as resolv.conf(5) says)."""
    try:
        res = dns.resolver.Resolver(configure=address is None)
    except FAILURES:  # no /etc/resolv.conf, or no nameserver in it
        res, address = dns.resolver.Resolver(configure=False), ("127.0.0.1", 53)
    if address is not None:
        res.nameservers = [address[0]]
        res.port = address[1]
    res.timeout = res.lifetime = QUESTION_TIMEOUT
    return res


def where(res: dns.resolver.Resolver) -> str:
    """ADDR:PORT of the resolver's first server, for messages."""
    # A str: set so above, or read from /etc/resolv.conf (dnspython 2.7 also types them as
    # its Nameserver objects, which this module never gives it).
    server = str(res.nameservers[0])
    return f"[{server}]:{res.port}" if ":" in server else f"{server}:{res.port}"


def _text(name: dns.name.Name) -> str:
    return name.to_text(omit_final_dot=True).lower()


def walk(res: dns.resolver.Resolver, name: str, rdtype: str, *, stop_at: str = "") -> Walk:
    """Ask ``res`` for ``name``'s ``rdtype`` records, following CNAMEs.

    CNAMEs are followed within an answer (a recursive resolver returns the chain) and by
    asking again for the last target when an answer stops at a CNAME (an authoritative
    server whose zone does not hold the target), until a name is, or is below, ``stop_at``.
    A loop, more than MAX_CNAME_HOPS CNAMEs or any failure to get an answer raises Failed.
    """
    try:
        start = current = dns.name.from_text(name)
    except FAILURES as exc:  # an empty label, a label too long, bad IDNA...
        raise Failed(f"{name!r} is not a domain name ({type(exc).__name__})") from None
    zone = dns.name.from_text(stop_at) if stop_at else None
    chain: list[dns.name.Name] = []
    while True:
        try:
            try:
                answer = res.resolve(current, rdtype, search=False, raise_on_no_answer=False)
                response, records = answer.response, tuple(answer.rrset or ())
            except dns.resolver.NXDOMAIN as exc:
                # Unannotated in dnspython 2.3 and 2.7 (Debian 12 and 13): a dict of
                # dns.name.Name to dns.message.Message, as its docstring says.
                responses = exc.responses()  # type: ignore[no-untyped-call]
                response, records = responses.get(current), None
            cnames = response.resolve_chaining().cnames if response is not None else []
        except FAILURES as exc:
            said = failure.explain(exc, f"the DNS server {where(res)}", res.lifetime)[0]
            if chain:
                said = " -> ".join(map(_text, [start, *chain])) + f": {said}"
            raise Failed(said) from None
        for rrset in cnames:
            target = rrset[0].target
            if len(rrset) > 1:
                raise Failed(f"{_text(rrset.name)} has several CNAME records")
            if target == start or target in chain:
                raise Failed("CNAME loop: " + " -> ".join(map(_text, [start, *chain, target])))
            if len(chain) >= MAX_CNAME_HOPS:
                raise Failed(f"CNAME chain from {_text(start)} longer than {MAX_CNAME_HOPS}")
            chain.append(target)
        end = chain[-1] if chain else current
        arrived = zone is not None and end.is_subdomain(zone)
        if records is None or records or end == current or arrived:
            values = tuple(dict.fromkeys(rd.to_text() for rd in records or ()))
            return Walk(_text(start), tuple(map(_text, chain)), values, records is not None)
        current = end  # the answer stopped at a CNAME: ask again for its target


def addresses(res: dns.resolver.Resolver, name: str) -> Walk:
    """``name``'s CNAME chain and its IPv4 then IPv6 addresses (``values``)."""
    found = walk(res, name, "A")
    if not found.exists:
        return found
    ipv6 = walk(res, found.chain[-1] if found.chain else found.name, "AAAA")
    return found._replace(values=found.values + ipv6.values)
