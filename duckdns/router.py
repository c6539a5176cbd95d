"""Ask this network's own router for its external IPv4 address, and what that says about
reaching the Pi from the Internet.

Two protocols most home routers answer on UDP port 5351 of their LAN address, asked on one
socket (UDP only: possible inside the hardened unit):

* NAT-PMP (RFC 6886): the two-byte external address request (section 3.2), first.
* PCP (RFC 6887), when NAT-PMP gave no address: a MAP request with Requested Lifetime 0
  (sections 11.1 and 15). ANNOUNCE (section 14.1) was not chosen: its response is the bare
  header, which holds no address. Lifetime 0 asks for no mapping: it is a deletion
  (section 15), here of a mapping that cannot exist (UDP, the internal port of the socket
  just opened); the MAP response carries the Assigned External IP Address (section 11.1).
  miniupnpd (2.3.1, Debian 12) answers such a deletion NO_RESOURCES with its WAN address in
  that field, and refuses NAT-PMP (result 3) when its WAN address is not public: that
  address is kept as a *hint* for the verdict only. A server that speaks NAT-PMP only
  answers the PCP request with NAT-PMP's "unsupported version" (RFC 6887 section 9;
  RFC 6886 section 3.5).

Either answer is unauthenticated: like the DNS probe it may decide only *whether* to update
(``probe = router``, through duckdns.probe), never what to set, and it is checked against
the address DuckDNS records. An address that is not global (carrier-grade NAT, private,
zero) cannot decide. Every answer is checked field by field; anything else (garbage, another
opcode, an error result, a datagram from another address, silence) is no answer, within
:data:`TIMEOUT` seconds in all, never an exception.
"""

from __future__ import annotations

import _socket
import ipaddress
import os
import struct
import time
from collections import namedtuple

PORT = 5351  # RFC 6886 section 3; RFC 6887 section 19.1 (the same port)
TIMEOUT = 1.0  # the whole exchange, both protocols: as long as one DNS probe target
# RFC 6886 section 3.1: retransmit after 250 ms, then doubling; the RFC's remaining tries
# (up to 64 s) would exceed a timer run's bound, so the exchange stops at TIMEOUT.
RETRANSMIT = (0.25, 0.75)
MAX_DATAGRAM = 1100  # RFC 6887 section 7: no PCP message is longer
ROUTE = "/proc/self/net/route"  # /proc/self/net: readable under the unit's ProcSubset=pid
CGNAT = ipaddress.IPv4Network("100.64.0.0/10")  # RFC 6598 Shared Address Space
ZERO = "0.0.0.0"  # noqa: S104 - an address compared with, never bound

# -- NAT-PMP, RFC 6886 ---------------------------------------------------------------------------
NATPMP_VERSION = 0  # section 3.2
NATPMP_EXTERNAL = 0  # section 3.2: opcode of the external address request
NATPMP_ANSWER = 128  # section 3.2: a response's opcode is 128 + the request's
NATPMP_RESULTS = {  # section 3.5
    0: "success",
    1: "unsupported version",
    2: "not authorized or refused",
    3: "network failure (the router has no external address)",
    4: "out of resources",
    5: "unsupported opcode",
}
NATPMP_NETWORK_FAILURE = 3

# -- PCP, RFC 6887 -------------------------------------------------------------------------------
PCP_VERSION = 2  # section 9
PCP_MAP = 1  # section 19.2
PCP_RESPONSE = 0x80  # section 7.2: the R bit
PCP_HEADER = 24  # sections 7.1 and 7.2
PCP_MAP_BODY = 36  # section 11.1
PCP_RESULTS = {  # section 7.4
    0: "SUCCESS",
    1: "UNSUPP_VERSION",
    2: "NOT_AUTHORIZED",
    3: "MALFORMED_REQUEST",
    4: "UNSUPP_OPCODE",
    5: "UNSUPP_OPTION",
    6: "MALFORMED_OPTION",
    7: "NETWORK_FAILURE",
    8: "NO_RESOURCES",
    9: "UNSUPP_PROTOCOL",
    10: "USER_EX_QUOTA",
    11: "CANNOT_PROVIDE_EXTERNAL",
    12: "ADDRESS_MISMATCH",
    13: "EXCESSIVE_REMOTE_PEERS",
}
PCP_NETWORK_FAILURE = 7
UDP = 17  # the MAP's protocol (section 11.1: IANA protocol numbers)
V4_MAPPED = b"\0" * 10 + b"\xff\xff"  # section 5: IPv4 addresses as IPv4-mapped IPv6


# What the router said: ``address``, the external IPv4 address a successful answer gave (any
# range; None: none), the ``protocol`` that gave it, ``no_public`` when it said it has no
# external address of its own (NAT-PMP result 3, PCP NETWORK_FAILURE), ``why`` it gave none,
# and ``hint``: an address an *error* answer carried (miniupnpd puts its WAN address in the
# PCP error it answers to the deletion), for the verdict only.
TYPE_CHECKING = False  # its typed twin (docs/design.md): typing costs a run 3 ms
if TYPE_CHECKING:
    from typing import NamedTuple

    class Answer(NamedTuple):
        address: str | None
        protocol: str = ""
        no_public: bool = False
        why: str = ""
        hint: str | None = None

else:
    Answer = namedtuple(
        "Answer", "address protocol no_public why hint", defaults=("", False, "", None)
    )


# -- the default gateway -------------------------------------------------------------------------


def default_gateway(path: str | os.PathLike[str] = ROUTE) -> str | None:
    """The IPv4 default gateway of the kernel's main routing table (lowest metric), or None.

    /proc/net/route's lines: Iface Destination Gateway Flags RefCnt Use Metric Mask …, the
    addresses as 8 hexadecimal digits in the host's byte order.
    """
    try:
        with open(path) as f:
            lines = f.read().splitlines()[1:]
    except OSError:
        return None
    routes: list[tuple[int, int]] = []
    for line in lines:
        fields = line.split()
        try:
            dest, gateway, flags, metric, mask = (int(fields[i], 16) for i in (1, 2, 3, 6, 7))
        except (IndexError, ValueError):  # a short or unreadable line
            continue
        # RTF_UP 0x1 and RTF_GATEWAY 0x2 (linux/route.h); a default route: 0.0.0.0/0
        if dest == 0 and mask == 0 and flags & 0x3 == 0x3 and gateway:
            routes.append((metric, gateway))
    if not routes:
        return None
    _, gateway = min(routes, key=lambda route: route[0])  # the first of the lowest metric
    return str(ipaddress.IPv4Address(struct.pack("=I", gateway)))


# -- the exchange ------------------------------------------------------------------------------


def natpmp_request() -> bytes:
    """RFC 6886 section 3.2: version 0, opcode 0."""
    return bytes((NATPMP_VERSION, NATPMP_EXTERNAL))


def pcp_request(client: str, internal_port: int, nonce: bytes) -> bytes:
    """RFC 6887 section 7.1 header (version 2, R=0, opcode MAP, Requested Lifetime 0, the
    client's address as IPv4-mapped IPv6) and section 11.1 MAP body (the nonce, UDP, the
    internal port, no suggested external port nor address)."""
    header = struct.pack("!BBHI", PCP_VERSION, PCP_MAP, 0, 0) + V4_MAPPED
    header += ipaddress.IPv4Address(client).packed
    body = nonce + struct.pack("!B3xHH", UDP, internal_port, 0) + bytes(16)
    return header + body


def parse(packet: bytes, nonce: bytes) -> tuple[str, Answer | None]:
    """Which request ``packet`` answers ("natpmp", "pcp", or "" for none of ours) and what
    it says (None: nothing usable). Every field is checked against its RFC section."""
    if len(packet) < 2:
        return "", None
    if packet[0] == NATPMP_VERSION:
        if packet[1] == NATPMP_ANSWER + PCP_MAP and len(packet) >= 4:
            # RFC 6887 section 9 / RFC 6886 section 3.5: a NAT-PMP-only router's answer to
            # the PCP request (version 2): "unsupported version". PCP is not spoken.
            return "pcp", Answer(None, "PCP", why="the router speaks NAT-PMP only")
        if packet[1] != NATPMP_ANSWER + NATPMP_EXTERNAL or len(packet) < 4:  # section 3.2
            return "", None
        (result,) = struct.unpack_from("!H", packet, 2)
        if result:  # section 3.5: 8 bytes or more, the other fields then meaningless
            why = f"NAT-PMP answered {NATPMP_RESULTS.get(result, f'result code {result}')}"
            return "natpmp", Answer(None, "NAT-PMP", result == NATPMP_NETWORK_FAILURE, why)
        if len(packet) < 12:  # section 3.2: 12 bytes, the address last
            return "", None
        return "natpmp", Answer(str(ipaddress.IPv4Address(packet[8:12])), "NAT-PMP")
    if packet[0] == PCP_VERSION:
        # section 7.2: R set, our opcode, at least the header, a multiple of 4 bytes
        if len(packet) < PCP_HEADER or len(packet) % 4 or len(packet) > MAX_DATAGRAM:
            return "", None
        if packet[1] != PCP_RESPONSE | PCP_MAP:
            return "", None
        result, body = packet[3], packet[PCP_HEADER : PCP_HEADER + PCP_MAP_BODY]
        assigned = body[20:36]  # section 11.1: Assigned External IP Address
        mine = len(body) == PCP_MAP_BODY and body[:12] == nonce  # section 11.4: the nonce
        # section 5: an IPv4 address is IPv4-mapped
        address = str(ipaddress.IPv4Address(assigned[12:])) if assigned[:12] == V4_MAPPED else None
        if result:  # section 7.4: an error; the address it may carry is a hint at most
            why = f"PCP answered {PCP_RESULTS.get(result, f'result code {result}')}"
            hint = address if mine and address != ZERO else None
            return "pcp", Answer(None, "PCP", result == PCP_NETWORK_FAILURE, why, hint)
        if not mine or address is None:
            return "", None
        return "pcp", Answer(address, "PCP")
    return "", None


def ask(gateway: str, port: int = PORT) -> Answer:
    """Ask ``gateway``; never raises for network trouble.

    NAT-PMP first; PCP when NAT-PMP answers without an address, or with the first
    retransmission (a router may speak PCP only). Asking PCP only then spares the router's
    log: miniupnpd logs each deletion of a mapping it does not hold. The first answer with
    an address wins; without one, the exchange ends when both protocols have answered or
    at :data:`TIMEOUT`. Only datagrams from ``gateway:port`` count (RFC 6886 section 3.1,
    RFC 6887 section 8.3): the socket is connected, and the source is checked again.
    """
    deadline = time.monotonic() + TIMEOUT
    answers: dict[str, Answer] = {}
    try:
        sock = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
        try:
            sock.connect((gateway, port))
            client, internal_port = sock.getsockname()
            nonce = os.urandom(12)
            requests = {
                "natpmp": natpmp_request(),
                "pcp": pcp_request(client, internal_port, nonce),
            }
            resend = [time.monotonic() + delay for delay in RETRANSMIT]
            sock.send(requests["natpmp"])
            sent = {"natpmp"}
            while len(answers) < 2 and (now := time.monotonic()) < deadline:
                if resend and now >= resend[0]:  # RFC 6886 section 3.1, RFC 6887 section 8.1.1
                    resend.pop(0)
                    for name, request in requests.items():
                        if name not in answers:
                            sock.send(request)
                            sent.add(name)
                    continue
                sock.settimeout(min([deadline, *resend[:1]]) - now)
                try:
                    packet, source = sock.recvfrom(MAX_DATAGRAM + 1)
                except TimeoutError:
                    continue
                if source != (gateway, port):
                    continue
                which, answer = parse(packet, nonce)
                if answer is None or which in answers or which not in sent:
                    continue
                answers[which] = answer
                if answer.address is not None and answer.address != ZERO:
                    return answer
                if "pcp" not in sent:
                    sock.send(requests["pcp"])
                    sent.add("pcp")
        finally:
            sock.close()
    except OSError as exc:  # refused (ICMP port unreachable), no route, a bad address
        return _merge(answers, f"cannot ask {gateway}:{port}: {exc.strerror or exc}")
    return _merge(answers, f"no answer from {gateway}:{port} within {TIMEOUT:g} s")


def _merge(answers: dict[str, Answer], silence: str) -> Answer:
    """One answer from the protocols' answers, none of which gave a usable address."""
    if not answers:
        return Answer(None, why=silence)
    found = [a for a in answers.values() if a.address is not None]
    first = found[0] if found else next(iter(answers.values()))
    return Answer(
        first.address,
        first.protocol,
        any(a.no_public for a in answers.values()),
        "; ".join(a.why for a in answers.values() if a.why),
        next((a.hint for a in answers.values() if a.hint), None),
    )


# -- what the address means ----------------------------------------------------------------------


def classify(address: str) -> str:
    """ "global", "cgnat" (RFC 6598, 100.64.0.0/10), "zero" or "private" (RFC 1918 and every
    other range IANA's special-purpose registry marks not global, RFC 6890)."""
    ip = ipaddress.IPv4Address(address)
    if ip in CGNAT:
        return "cgnat"
    if address == ZERO:
        return "zero"
    return "global" if ip.is_global else "private"


def usable(answer: Answer) -> str | None:
    """The answer's address if it can decide for the probe (a global address), else None."""
    if answer.address is None or classify(answer.address) != "global":
        return None
    return answer.address


def why_not(answer: Answer) -> str:
    """Why the answer cannot decide for the probe, for a log line."""
    if answer.address is None:
        return answer.why or "no answer"
    kind = {"cgnat": "carrier-grade NAT", "zero": "no address", "private": "private"}
    return f"{answer.protocol} gave {answer.address} ({kind[classify(answer.address)]})"


# -- the verdict -----------------------------------------------------------------------------

DIRECT = "direct"
CGNAT_NAT = "cgnat"
DOUBLE_NAT = "double-nat"
NO_PUBLIC = "no-public"
UPSTREAM = "upstream"
UNKNOWN = "unknown"
VERDICTS = {
    DIRECT: "direct: port forwarding on this router can reach the Pi",
    CGNAT_NAT: (
        "carrier-grade NAT: your provider shares one address among many customers; "
        "forwarded ports cannot reach the Pi from outside"
    ),
    DOUBLE_NAT: "double NAT: another router sits in front of yours",
    NO_PUBLIC: (
        "behind another NAT: the router says it has no public address of its own "
        "(double NAT or carrier-grade NAT)"
    ),
    UPSTREAM: (
        "another NAT upstream: the router's external address is not the one DuckDNS "
        "recorded (or an address change not yet published)"
    ),
    UNKNOWN: "unknown (the router does not speak NAT-PMP/PCP/UPnP)",
}
ADVICE = {
    CGNAT_NAT: (
        "if this host has a global IPv6 address, publish it instead: 'ipv6 = auto' and "
        "'ipv4 = off'; or ask your provider for a public IPv4 address; or use a tunnel "
        "(a VPN or reverse proxy with a public address)"
    ),
    DOUBLE_NAT: (
        "forward the ports on the router in front too, or put it in bridge mode, or make "
        "this router its exposed host (DMZ)"
    ),
    NO_PUBLIC: (
        "look at the router's WAN address: 100.64.x.x is carrier-grade NAT (ask your "
        "provider for a public IPv4 address, or publish IPv6), a private one is a router "
        "in front (forward the ports there too)"
    ),
    UPSTREAM: (
        "if it stays, a router or your provider's NAT sits beyond this one: forward the "
        "ports there too, or ask your provider"
    ),
    UNKNOWN: (
        "check that the router asked ('router', else the default gateway) is this "
        "network's router and is on, and that NAT-PMP/PCP or UPnP IGD is enabled in its "
        "settings"
    ),
}


def external(answer: Answer | None) -> str | None:
    """The router's external address as far as the verdict goes: a successful answer's,
    else the hint of an error answer when it is not global (it then tells *why* the
    router had no address: carrier-grade NAT or a router in front). Never for the probe."""
    if answer is None:
        return None
    if answer.address not in (None, ZERO):
        return answer.address
    if answer.hint is not None and classify(answer.hint) in ("cgnat", "private"):
        return answer.hint
    return None


def verdict(answer: Answer | None, duckdns_ipv4: str) -> str:
    """The verdict (a key of :data:`VERDICTS`) from the router's answer and the address
    DuckDNS recorded ('' if none yet: a global router address is then taken as direct)."""
    if answer is None:
        return UNKNOWN
    address = external(answer)
    if address is None:
        return NO_PUBLIC if answer.no_public or answer.address == ZERO else UNKNOWN
    kind = classify(address)
    if kind == "cgnat":
        return CGNAT_NAT
    if kind == "private":
        return DOUBLE_NAT
    if duckdns_ipv4 and duckdns_ipv4 != address:
        return UPSTREAM
    return DIRECT


def describe(key: str, answer: Answer | None, duckdns_ipv4: str) -> str:
    """The verdict in a sentence, with what the router and DuckDNS said and what to do."""
    address, said = external(answer), ""
    if address:
        said = f" (router: {address}; DuckDNS: {duckdns_ipv4 or '-'})"
    elif answer is not None and answer.why:
        said = f" ({answer.why})"
    advice = f"; what to do: {ADVICE[key]}" if key in ADVICE else ""
    return f"reachability: {VERDICTS[key]}{said}{advice}"
