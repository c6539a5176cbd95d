"""The cheap "what is my public IPv4 address" signal of issue 7.

One DNS query over UDP to a "whoami" service tells whether the public IPv4 address has
changed since the last update. The answer is unauthenticated, so it may only decide
*whether* to update, never *what* to set (DuckDNS takes the address from the TLS connection).
Any failure therefore means "update": :func:`public_ipv4` never raises for network trouble,
it returns None.

Import cost matters (this runs on every timer run, and ``duckdns.config`` imports it): only
``duckdns.dnswire`` and ``_socket`` (see dnswire's docstring). The answer is validated with an
``inet_pton``/``inet_ntop`` round trip rather than ``ipaddress`` (about 4 ms to import), which
is equally strict for dotted quads: glibc refuses leading zeros, short forms and octets over
255.
"""

from __future__ import annotations

import _socket

from duckdns.dnswire import (
    CLASS_CH,
    CLASS_IN,
    DEFAULT_PORT,
    DEFAULT_TIMEOUT,
    TYPE_A,
    TYPE_TXT,
    DNSError,
    parse_server,
    query,
)

# collections.abc would import the whole collections package (about 1.3 ms): annotations only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

# In order, first valid answer wins: each provider's second address before the next provider,
# so one intercepted or blocked address (some routers and ISPs do that to 1.1.1.1) does not
# leave the probe to a single other party.
DEFAULT_PROBE = (
    "cloudflare@1.1.1.1, cloudflare@1.0.0.1, opendns@208.67.222.222, opendns@208.67.220.220"
)

# KIND -> (question name, type, class)
KINDS: dict[str, tuple[str, int, int]] = {
    "cloudflare": ("whoami.cloudflare", TYPE_TXT, CLASS_CH),
    "opendns": ("myip.opendns.com", TYPE_A, CLASS_IN),
}

_FORM = (
    "off, or a comma-separated list of KIND@ADDRESS[:PORT] with KIND cloudflare or opendns "
    "and an IPv4 ADDRESS, e.g. cloudflare@1.1.1.1, opendns@208.67.222.222:53"
)
# Why an IPv6 address can never answer: the question is the public IPv4 address.
_NOT_IPV6 = (
    "an IPv6 probe address can never tell the public IPv4 address (Cloudflare answers with "
    "the IPv6 address the query came from, OpenDNS with NXDOMAIN): write KIND@ADDRESS[:PORT] "
    "with an IPv4 address, e.g. cloudflare@1.1.1.1 or opendns@208.67.222.222"
)


class ProbeTarget:
    """One ``KIND@ADDRESS[:PORT]`` entry of the ``probe`` setting."""

    __slots__ = ("kind", "address", "port")

    def __init__(self, kind: str, address: str, port: int = DEFAULT_PORT) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown probe kind {kind!r}; expected one of {', '.join(KINDS)}")
        self.kind = kind
        self.address = address
        self.port = port

    def __str__(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        port = "" if self.port == DEFAULT_PORT else f":{self.port}"
        return f"{self.kind}@{host}{port}"

    def __repr__(self) -> str:
        return f"ProbeTarget({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ProbeTarget):
            return NotImplemented
        return (self.kind, self.address, self.port) == (other.kind, other.address, other.port)

    def __hash__(self) -> int:
        return hash((self.kind, self.address, self.port))


def parse_probe(spec: str) -> list[ProbeTarget]:
    """Parse the ``probe`` setting; ``off`` gives an empty list.

    Raises ValueError naming the bad entry and the accepted form.
    """
    text = spec.strip()
    if text.lower() == "off":
        return []
    if not text:
        raise ValueError(f"probe is empty; expected {_FORM}")
    targets = []
    for raw in text.split(","):
        entry = raw.strip()
        if not entry:
            raise ValueError(f"probe {spec.strip()!r}: empty entry; expected {_FORM}")
        if entry.lower() == "off":
            raise ValueError(f"probe {spec.strip()!r}: 'off' must stand alone; expected {_FORM}")
        kind, at, where = entry.partition("@")
        kind = kind.strip().lower()
        if not at:
            raise ValueError(f"probe entry {entry!r}: missing '@ADDRESS'; expected {_FORM}")
        if kind not in KINDS:
            raise ValueError(
                f"probe entry {entry!r}: unknown kind {kind!r} "
                f"(known: {', '.join(KINDS)}); expected {_FORM}"
            )
        if where.count(":") > 1 or where.strip().startswith("["):
            raise ValueError(f"probe entry {entry!r}: {_NOT_IPV6}")
        try:
            address, port = parse_server(where)
        except ValueError as e:
            raise ValueError(f"probe entry {entry!r}: {e}") from None
        if ":" in address:
            raise ValueError(f"probe entry {entry!r}: {_NOT_IPV6}")
        targets.append(ProbeTarget(kind, address, port))
    return targets


def _ipv4_text(value: str) -> str | None:
    """``value`` if it is a dotted-quad IPv4 address in canonical form, else None."""
    try:
        packed = _socket.inet_pton(_socket.AF_INET, value)
    except (OSError, ValueError):
        return None
    text = _socket.inet_ntop(_socket.AF_INET, packed)
    return text if text == value else None


def ask(target: ProbeTarget, timeout: float = DEFAULT_TIMEOUT) -> str:
    """The IPv4 address ``target`` says we have; raises DNSError for any failure.

    The answer must hold exactly one distinct value, owned by the name asked, in the class
    asked, and it must be an IPv4 address.
    """
    name, qtype, qclass = KINDS[target.kind]
    response = query(name, qtype, target.address, target.port, qclass=qclass, timeout=timeout)
    values = set(response.values(name, qtype, qclass))
    if not values:
        raise DNSError(f"{target}: no answer for {name}")
    if len(values) > 1:
        raise DNSError(f"{target}: several answers for {name}: {', '.join(sorted(values))}")
    value = values.pop()
    address = _ipv4_text(value)
    if address is None:
        shown = value if len(value) <= 64 else value[:64] + "..."
        raise DNSError(f"{target}: answer {shown!r} is not an IPv4 address")
    return address


def public_ipv4(
    targets: Iterable[ProbeTarget],
    timeout: float = DEFAULT_TIMEOUT,
    on_error: Callable[[ProbeTarget, DNSError], None] | None = None,
) -> str | None:
    """Ask each target in order; the first valid IPv4 answer, or None if all fail.

    ``timeout`` applies to each target, so the worst case is ``timeout`` times the number
    of targets. ``on_error`` (e.g. a debug logger) is told why each failed target failed.
    Never raises for network or answer trouble: failure means "update".
    """
    for target in targets:
        try:
            return ask(target, timeout)
        except DNSError as e:
            if on_error is not None:
                on_error(target, e)
    return None
