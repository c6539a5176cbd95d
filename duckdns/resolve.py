"""Names to addresses over duckdns.dnswire: CNAME chains and the system's name server.

``duckdns verify`` resolves each name to its A and AAAA records, following CNAMEs
(:func:`resolve_chain`); the ACME hooks follow a custom domain's ``_acme-challenge`` CNAME
to a DuckDNS name (:func:`cname_chain`) and look up DuckDNS's name servers. One
implementation for both; the timer's probe needs none of it, so it lives apart from the
wire format and its single query.
"""

from __future__ import annotations

from duckdns import dnswire
from duckdns.dnswire import (
    CLASS_IN,
    DEFAULT_PORT,
    DEFAULT_TIMEOUT,
    RCODE_NXDOMAIN,
    TYPE_A,
    TYPE_AAAA,
    TYPE_CNAME,
    DNSError,
    Record,
    build_query,
    normalise_name,
    query,
)

MAX_CNAME_HOPS = 10


class Resolution:
    """What a name resolves to: the CNAME chain followed and the final addresses."""

    __slots__ = ("name", "chain", "ipv4", "ipv6")

    def __init__(
        self, name: str, chain: tuple[str, ...], ipv4: tuple[str, ...], ipv6: tuple[str, ...]
    ) -> None:
        self.name = name
        self.chain = chain
        self.ipv4 = ipv4
        self.ipv6 = ipv6

    @property
    def canonical(self) -> str:
        """The last name of the chain: the one that holds the addresses."""
        return self.chain[-1] if self.chain else self.name

    def __repr__(self) -> str:
        return (
            f"Resolution({self.name!r}, chain={self.chain!r}, ipv4={self.ipv4!r}, "
            f"ipv6={self.ipv6!r})"
        )


def _walk(
    current: str,
    answers: tuple[Record, ...],
    start: str,
    chain: list[str],
    seen: set[str],
    max_hops: int,
) -> str:
    """Follow the CNAMEs of ``answers`` from ``current``, appending to ``chain``; the end name."""
    while True:
        targets = {
            r.value
            for r in answers
            if r.rtype == TYPE_CNAME and r.rclass == CLASS_IN and r.name == current
        }
        if not targets:
            return current
        if len(targets) > 1:
            raise DNSError(f"{current} has several CNAME records: {', '.join(sorted(targets))}")
        target = targets.pop()
        if target in seen:
            raise DNSError("CNAME loop: " + " -> ".join([start, *chain, target]))
        if len(chain) >= max_hops:
            raise DNSError(f"CNAME chain from {start} longer than {max_hops} hops")
        chain.append(target)
        seen.add(target)
        current = target


def resolve_chain(
    name: str,
    server: str,
    port: int = DEFAULT_PORT,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    max_hops: int = MAX_CNAME_HOPS,
) -> Resolution:
    """Resolve ``name``'s A and AAAA records at ``server``, following CNAMEs.

    CNAMEs are followed both within one answer (a recursive resolver returns the chain) and
    by asking again for the last target when the answer stops at a CNAME (an authoritative
    server whose zone does not hold the target). More than ``max_hops`` CNAMEs, or a name
    seen twice, raises DNSError. A name with no address of one family gives an empty tuple.
    """
    start = build_query(name, TYPE_A).name
    chain: list[str] = []
    seen = {start}

    def follow(current: str, qtype: int) -> tuple[str, tuple[str, ...]]:
        while True:
            try:
                response = query(current, qtype, server, port, timeout=timeout)
            except DNSError as e:
                if e.rcode == RCODE_NXDOMAIN:
                    _walk(current, e.answers, start, chain, seen, max_hops)
                if chain:
                    raise DNSError(" -> ".join([start, *chain]) + f": {e}", rcode=e.rcode) from e
                raise
            end = _walk(current, response.answers, start, chain, seen, max_hops)
            values = tuple(dict.fromkeys(response.values(end, qtype)))
            if values or end == current:
                return end, values
            current = end  # the answer stopped at a CNAME: ask again for its target

    canonical, ipv4 = follow(start, TYPE_A)
    _, ipv6 = follow(canonical, TYPE_AAAA)
    return Resolution(start, tuple(chain), ipv4, ipv6)


def cname_chain(
    name: str,
    qtype: int,
    server: str,
    port: int = DEFAULT_PORT,
    *,
    stop_at: str = "",
    timeout: float = DEFAULT_TIMEOUT,
    max_hops: int = MAX_CNAME_HOPS,
) -> tuple[str, ...]:
    """The CNAME chain that a ``qtype`` question for ``name`` at ``server`` follows.

    As in :func:`resolve_chain`, the chain is followed within an answer and by asking again
    where an answer stops at a CNAME, until a name has no CNAME or is, or is below, the
    domain ``stop_at`` (the caller has arrived where it wanted: that zone's own servers take
    it from there). A chain that reaches ``stop_at`` is returned even when its last name
    does not exist; otherwise NXDOMAIN and every other failure raise DNSError. ``()`` means
    ``name`` is not a CNAME.
    """
    zone = normalise_name(stop_at) if stop_at else ""

    def stop(name: str) -> bool:
        return bool(zone) and (name == zone or name.endswith("." + zone))

    start = current = build_query(name, qtype).name
    chain: list[str] = []
    seen = {start}
    while True:
        try:
            response = query(current, qtype, server, port, timeout=timeout)
        except DNSError as e:
            if e.rcode == RCODE_NXDOMAIN:
                end = _walk(current, e.answers, start, chain, seen, max_hops)
                if stop(end):
                    return tuple(chain)
            if chain:
                raise DNSError(" -> ".join([start, *chain]) + f": {e}", rcode=e.rcode) from e
            raise
        end = _walk(current, response.answers, start, chain, seen, max_hops)
        if end == current or stop(end) or response.values(end, qtype):
            return tuple(chain)
        current = end  # the answer stopped at a CNAME: ask again for its target


# -- the system resolver -----------------------------------------------------------------------


def first_nameserver(path: str = "/etc/resolv.conf") -> str | None:
    """The first usable ``nameserver`` address in resolv.conf, or None.

    None when the file is missing or unreadable or lists no numeric address; resolv.conf(5)
    then means "the local machine", but choosing that is the caller's business.
    """
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.readlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) < 2 or fields[0] != "nameserver":
            continue
        address = fields[1]
        try:
            dnswire.sockaddr(address, DEFAULT_PORT)
        except DNSError:
            continue
        return address
    return None
