"""The cheap "what is my public IPv4 address" signal that lets most runs skip the update.

One DNS query over UDP to a "whoami" service tells whether the public IPv4 address has
changed since the last update. The answer is unauthenticated, so it may only decide
*whether* to update, never *what* to set (DuckDNS takes the address from the TLS connection).
Any failure therefore means "update": :func:`public_ipv4` never raises for network trouble,
it returns no address.

The targets come from the ``probe`` setting (:func:`duckdns.config.parse_probe`); ``router``
asks the router itself over NAT-PMP/PCP (duckdns.router), whose address the pipeline fills in.
"""

from __future__ import annotations

import ipaddress
from collections import namedtuple
from collections.abc import Iterable

from duckdns.config import ProbeTarget
from duckdns.dnswire import (
    CLASS_CH,
    CLASS_IN,
    DEFAULT_TIMEOUT,
    TYPE_A,
    TYPE_TXT,
    DNSError,
    query,
)

# KIND (config.PROBE_KINDS) -> (question name, type, class)
KINDS: dict[str, tuple[str, int, int]] = {
    "cloudflare": ("whoami.cloudflare", TYPE_TXT, CLASS_CH),
    "opendns": ("myip.opendns.com", TYPE_A, CLASS_IN),
}
SHOWN_VALUES = 3  # answers quoted when a target gives several


def ask(target: ProbeTarget, timeout: float = DEFAULT_TIMEOUT) -> str:
    """The IPv4 address ``target`` says we have; raises DNSError for any failure.

    The answer must hold exactly one distinct value, owned by the name asked, in the class
    asked, and it must be an IPv4 address.
    """
    name, qtype, qclass = KINDS[target.kind]
    response = query(name, qtype, target.address, target.port, qclass=qclass, timeout=timeout)
    values = set(response.values(name, qtype, qclass))
    if not values:
        raise DNSError(f"no answer for {name}")
    if len(values) > 1:
        listed = ", ".join(_shown(v) for v in sorted(values)[:SHOWN_VALUES])
        more = f" and {len(values) - SHOWN_VALUES} more" if len(values) > SHOWN_VALUES else ""
        raise DNSError(f"several answers for {name}: {listed}{more}")
    value = values.pop()
    try:
        canonical = str(ipaddress.IPv4Address(value)) == value  # a dotted quad, as written
    except ValueError:
        canonical = False
    if not canonical:
        raise DNSError(f"answer {_shown(value)} is not an IPv4 address")
    return value


def _shown(value: str) -> str:
    """An answer quoted for a log line: at most 64 characters, control characters escaped.

    The server is not trusted: its TXT values may hold newlines (a forged log line) or
    fill a 64 KiB datagram.
    """
    return repr(value if len(value) <= 64 else value[:64] + "...")


# What asking the targets found: the first valid ``address`` (None if every target failed),
# each failed target with why (``failures``), and the router's answer when it was asked
# (``router``, a duckdns.router.Answer: the reachability verdict needs it whatever it is).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NamedTuple

    from duckdns.router import Answer

    class Probed(NamedTuple):
        address: str | None
        failures: list[tuple[ProbeTarget, str]]
        router: Answer | None

else:
    Probed = namedtuple("Probed", "address failures router")


def public_ipv4(targets: Iterable[ProbeTarget], timeout: float = DEFAULT_TIMEOUT) -> Probed:
    """Ask each target in order until one gives a valid IPv4 answer.

    ``timeout`` applies to each target (the router's exchange has its own, as long), so
    the worst case is ``timeout`` times the number of targets. Never raises for network
    or answer trouble: failure means "update".
    """
    failures: list[tuple[ProbeTarget, str]] = []
    heard = None
    for target in targets:
        if target.kind == "router":  # a global address decides; else the next target is asked
            from duckdns import router

            if target.address:
                heard = router.ask(target.address, target.port)
            else:
                heard = router.Answer(None, why="no default gateway in the kernel's routing table")
            address = router.usable(heard)
            if address is not None:
                return Probed(address, failures, heard)
            failures.append((target, router.why_not(heard)))
            continue
        try:
            return Probed(ask(target, timeout), failures, heard)
        except DNSError as e:
            failures.append((target, str(e)))
    return Probed(None, failures, heard)
