"""A minimal DNS client over UDP (RFC 1035), standard library only.

The probe (``duckdns.probe``) runs this on every timer run, up to 1,440 times a day on a Pi,
so the module is deliberately small and cheap to import. Two choices follow, measured with
Debian's Python 3.11 on x86, where a bare ``python3 -c pass`` costs about 9 ms of CPU:

- It uses ``_socket``, the C module that ``socket`` wraps, not ``socket`` itself: ``socket.py``
  builds its enums and imports ``selectors`` at import time, about 5.5 ms per run, and nothing
  here needs its extras. ``_socket`` is part of every CPython build.
- It does not import ``secrets`` (which drags in ``random``, ``hashlib``, ``base64`` and
  ``hmac``, about 5 ms): query IDs come from ``os.urandom``, which is exactly what
  ``secrets.randbits`` uses underneath.

Every failure (network error, timeout, malformed or mismatched reply, error RCODE, bad name,
bad server address) raises :class:`DNSError` with a message meant for a log line.
"""

from __future__ import annotations

import _socket
import os
import struct
import time
from collections import namedtuple

TYPE_CHECKING = False  # the named tuples' typed twins (docs/design.md): typing costs a run 3 ms
if TYPE_CHECKING:
    from typing import NamedTuple

    # A socket address: (host, port) for IPv4, (host, port, flowinfo, scope_id) for IPv6.
    SockAddr = tuple[str, int] | tuple[str, int, int, int]

    class Record(NamedTuple):
        name: str
        rtype: int
        rclass: int
        ttl: int
        value: str
        strings: tuple[bytes, ...] = ()

    class Query(NamedTuple):  # as sent: the ID, the normalised name, the type, class and wire
        id: int
        name: str
        qtype: int
        qclass: int
        wire: bytes

    class _Response(NamedTuple):
        answers: tuple[Record, ...]

else:
    Record = namedtuple("Record", "name rtype rclass ttl value strings", defaults=((),))
    Query = namedtuple("Query", "id name qtype qclass wire")
    _Response = namedtuple("Response", "answers")

TYPE_A = 1
TYPE_TXT = 16
CLASS_IN = 1
CLASS_CH = 3

TYPE_NAMES = {TYPE_A: "A", TYPE_TXT: "TXT"}
CLASS_NAMES = {CLASS_IN: "IN", CLASS_CH: "CH"}
RCODE_NAMES = {
    0: "NOERROR",
    1: "FORMERR",
    2: "SERVFAIL",
    3: "NXDOMAIN",
    4: "NOTIMP",
    5: "REFUSED",
}

DEFAULT_PORT = 53
DEFAULT_TIMEOUT = 1.0

_FLAG_QR = 0x8000
_FLAG_TC = 0x0200
_FLAG_RD = 0x0100
_HEADER = struct.Struct("!6H")
_RR_FIXED = struct.Struct("!HHIH")
_MAX_NAME_WIRE = 255
_MAX_POINTER_JUMPS = 64
_MAX_UDP = 65535


class DNSError(Exception):
    """Any failure to obtain a valid DNS answer.

    ``rcode`` is set when the server answered with an error RCODE (e.g. 3 for NXDOMAIN).
    """

    def __init__(self, message: str, rcode: int | None = None) -> None:
        super().__init__(message)
        self.rcode = rcode


def _describe(name: str, qclass: int, qtype: int) -> str:
    """``name CLASS TYPE``, for messages."""
    kind = TYPE_NAMES.get(qtype, f"TYPE{qtype}")
    return f"{name} {CLASS_NAMES.get(qclass, f'CLASS{qclass}')} {kind}"


Record.__doc__ = """One answer record. ``name``: the owner, lower-case, no trailing dot; ``value``:
the address in canonical text (A) or the character-strings joined (TXT; each in ``strings``)."""


class Response(_Response):
    """A validated reply: it answers exactly our question, RCODE NOERROR, not truncated."""

    __slots__ = ()

    def values(self, name: str, rtype: int, rclass: int = CLASS_IN) -> list[str]:
        """The values of the answer records with this owner, type and class."""
        key = (name.rstrip(".").lower(), rtype, rclass)
        return [r.value for r in self.answers if (r.name, r.rtype, r.rclass) == key]


# -- names -------------------------------------------------------------------------------------

# Octets a label may hold here: printable ASCII but the dot and the backslash. RFC 2181 (11)
# allows any octet, but the probe's names are plain host names, and a reply naming anything
# else cannot be shown without escaping (a newline would forge a log line), so it is refused:
# a failed probe only means "update".
_ODD_OCTETS = bytes(c for c in range(256) if not 0x21 <= c <= 0x7E or c in b".\\")


def _encode_name(name: str) -> bytes:
    """Wire form of a textual name. ASCII only: internationalised names go in as ``xn--``."""
    if name in (".", ""):
        raise DNSError("empty domain name")
    try:
        raw = name.removesuffix(".").encode("ascii")
    except UnicodeEncodeError:
        raise DNSError(
            f"{name!r}: not an ASCII domain name (write internationalised names as xn--...)"
        ) from None
    out = bytearray()
    for label in raw.split(b"."):
        if not label:
            raise DNSError(f"{name!r}: empty label in domain name")
        if len(label) > 63:
            raise DNSError(f"{name!r}: label longer than 63 characters")
        if len(label.translate(None, _ODD_OCTETS)) != len(label):
            raise DNSError(f"{name!r}: invalid character in domain name")
        out += bytes([len(label)]) + label
    out.append(0)
    if len(out) > _MAX_NAME_WIRE:
        raise DNSError(f"{name!r}: domain name longer than 255 octets")
    return bytes(out)


def _read_name(msg: bytes, offset: int) -> tuple[str, int]:
    """Read a possibly compressed name at ``offset``; return it and the offset after it.

    Loops are impossible: each compression pointer must point strictly before the start of
    the segment (run of labels) it appears in, so segment starts strictly decrease. Real
    compressors only ever point back to names written earlier, so this refuses nothing valid.
    A jump limit and the 255-octet name limit are extra guards.
    """
    labels: list[str] = []
    pos = segment_start = offset
    end: int | None = None
    wire_len = 1
    jumps = 0
    while True:
        if pos >= len(msg):
            raise DNSError("malformed reply: truncated domain name")
        n = msg[pos]
        if n & 0xC0 == 0xC0:
            if pos + 1 >= len(msg):
                raise DNSError("malformed reply: truncated compression pointer")
            target = ((n & 0x3F) << 8) | msg[pos + 1]
            if target >= segment_start:
                raise DNSError(
                    f"malformed reply: compression pointer at {pos} to {target} does not "
                    "point back to an earlier name (forward pointer or pointer loop)"
                )
            jumps += 1
            if jumps > _MAX_POINTER_JUMPS:
                raise DNSError("malformed reply: too many compression pointers")
            if end is None:
                end = pos + 2
            pos = segment_start = target
            continue
        if n & 0xC0:
            raise DNSError(f"malformed reply: unsupported label type 0x{n:02x}")
        if n == 0:
            return (".".join(labels) or "."), pos + 1 if end is None else end
        label = msg[pos + 1 : pos + 1 + n]
        if len(label) < n:
            raise DNSError("malformed reply: truncated label")
        wire_len += n + 1
        if wire_len > _MAX_NAME_WIRE:
            raise DNSError("malformed reply: domain name longer than 255 octets")
        if len(label.translate(None, _ODD_OCTETS)) != n:
            raise DNSError("malformed reply: a domain name with octets a host name cannot hold")
        labels.append(label.decode("ascii").lower())
        pos += 1 + n


# -- messages ----------------------------------------------------------------------------------


def make_query(name: str, qtype: int, qclass: int = CLASS_IN, qid: int | None = None) -> Query:
    """A recursion-desired query with one question and a random 16-bit ID."""
    if qtype not in TYPE_NAMES:
        raise DNSError(f"unsupported query type {qtype}")
    if qclass not in CLASS_NAMES:
        raise DNSError(f"unsupported query class {qclass}")
    wire_name = _encode_name(name)
    if qid is None:
        qid = int.from_bytes(os.urandom(2), "big")
    header = _HEADER.pack(qid, _FLAG_RD, 1, 0, 0, 0)
    text = name.removesuffix(".").lower()
    return Query(qid, text, qtype, qclass, header + wire_name + struct.pack("!HH", qtype, qclass))


def _parse_rdata(msg: bytes, rtype: int, start: int, rdlen: int) -> tuple[str, tuple[bytes, ...]]:
    end = start + rdlen
    if rtype == TYPE_A:
        if rdlen != 4:
            raise DNSError(f"malformed reply: A record with {rdlen} octets of data")
        return _socket.inet_ntop(_socket.AF_INET, msg[start:end]), ()
    # TXT: one or more <length><octets> character-strings filling the data exactly.
    if rdlen == 0:
        raise DNSError("malformed reply: empty TXT record")
    strings = []
    pos = start
    while pos < end:
        n = msg[pos]
        if pos + 1 + n > end:
            raise DNSError("malformed reply: TXT string overruns its record")
        strings.append(msg[pos + 1 : pos + 1 + n])
        pos += 1 + n
    return b"".join(strings).decode("utf-8", "backslashreplace"), tuple(strings)


def _parse_answers(msg: bytes, offset: int, count: int) -> tuple[Record, ...]:
    records = []
    for _ in range(count):
        name, offset = _read_name(msg, offset)
        if offset + _RR_FIXED.size > len(msg):
            raise DNSError("malformed reply: truncated resource record")
        rtype, rclass, ttl, rdlen = _RR_FIXED.unpack_from(msg, offset)
        offset += _RR_FIXED.size
        if offset + rdlen > len(msg):
            raise DNSError("malformed reply: record data overruns the packet")
        if rtype in TYPE_NAMES:
            value, strings = _parse_rdata(msg, rtype, offset, rdlen)
            records.append(Record(name, rtype, rclass, ttl, value, strings))
        # Other types (CNAME, RRSIG, OPT, ...) are skipped: the probe needs none.
        offset += rdlen
    return tuple(records)


def parse_response(packet: bytes, query: Query) -> Response:
    """Validate a reply against ``query`` and parse its answer section (the authority and
    additional sections are not read)."""
    if len(packet) < _HEADER.size:
        raise DNSError(f"malformed reply: {len(packet)} octets, shorter than a DNS header")
    qid, flags, qdcount, ancount, _nscount, _arcount = _HEADER.unpack_from(packet)
    if qid != query.id:
        raise DNSError(f"reply ID 0x{qid:04x} does not match query ID 0x{query.id:04x}")
    if not flags & _FLAG_QR:
        raise DNSError("reply is not a response (QR flag clear)")
    opcode = (flags >> 11) & 0xF
    if opcode != 0:
        raise DNSError(f"reply has opcode {opcode}, expected 0 (QUERY)")
    rcode = flags & 0xF
    asked = _describe(query.name, query.qclass, query.qtype)
    answered = f"server answered {RCODE_NAMES.get(rcode, f'RCODE{rcode}')} for {asked}"
    if rcode and qdcount == 0:
        raise DNSError(answered, rcode=rcode)
    if qdcount != 1:
        raise DNSError(f"reply has {qdcount} questions, expected 1")
    qname, offset = _read_name(packet, _HEADER.size)
    if offset + 4 > len(packet):
        raise DNSError("malformed reply: truncated question")
    qtype, qclass = struct.unpack_from("!HH", packet, offset)
    offset += 4
    if (qname, qtype, qclass) != (query.name, query.qtype, query.qclass):
        raise DNSError(
            f"reply is for another question ({_describe(qname, qclass, qtype)}, asked {asked})"
        )
    if flags & _FLAG_TC:
        raise DNSError(f"reply for {asked} is truncated (TC flag set)")
    if rcode:
        raise DNSError(answered, rcode=rcode)
    return Response(_parse_answers(packet, offset, ancount))


# -- the network -------------------------------------------------------------------------------


def sockaddr(server: str, port: int) -> tuple[int, SockAddr]:
    """Family and socket address for a numeric server address. Never asks DNS.

    Built by hand rather than with getaddrinfo: glibc's first getaddrinfo call in a process
    costs about 7 ms of CPU (NSS and gai.conf set-up), more than the whole query, and with
    AI_NUMERICHOST it would still take inet_aton's odd forms ("1", "0x7f.1"). IPv6 link-local
    addresses may carry a zone: ``fe80::1%eth0``.
    """
    if not 0 < port < 65536:
        raise DNSError(f"invalid port {port} for DNS server {server}")
    host, percent, zone = server.partition("%")
    family = _socket.AF_INET6 if ":" in host else _socket.AF_INET
    try:
        _socket.inet_pton(family, host)
        if not percent:
            return family, (host, port)
        if family != _socket.AF_INET6 or not zone:
            raise ValueError
        scope_id = int(zone) if zone.isdigit() else _socket.if_nametoindex(zone)
    except (OSError, UnicodeError, ValueError):
        raise DNSError(f"DNS server {server!r} is not an IP address") from None
    return family, (host, port, 0, scope_id)


def _same_peer(addr: SockAddr, expected: SockAddr, family: int) -> bool:
    try:
        a = _socket.inet_pton(family, addr[0].split("%", 1)[0])
        b = _socket.inet_pton(family, expected[0].split("%", 1)[0])
    except (OSError, ValueError, IndexError):
        return False
    return a == b and addr[1] == expected[1]


def query(
    name: str,
    qtype: int,
    server: str,
    port: int = DEFAULT_PORT,
    *,
    qclass: int = CLASS_IN,
    timeout: float = DEFAULT_TIMEOUT,
) -> Response:
    """Ask ``server`` (an IPv4 or IPv6 address, never a host name) one question over UDP.

    The socket is connected, so the kernel picks a random ephemeral source port, drops
    datagrams from any other address and reports ICMP errors (a closed port fails at once
    instead of after the timeout). ``timeout`` bounds the whole exchange. The first reply
    from the server decides: one that does not match the question raises rather than being
    skipped, because for the probe any failure simply means "update".
    """
    if timeout <= 0:
        raise ValueError("timeout must be positive")
    q = make_query(name, qtype, qclass)
    family, address = sockaddr(server, port)
    where = f"[{server}]:{port}" if ":" in server else f"{server}:{port}"  # for messages
    deadline = time.monotonic() + timeout
    try:
        sock = _socket.socket(family, _socket.SOCK_DGRAM)
        try:
            sock.connect(address)
            sock.send(q.wire)
            while (remaining := deadline - time.monotonic()) > 0:
                sock.settimeout(remaining)
                packet, addr = sock.recvfrom(_MAX_UDP)
                if _same_peer(addr, address, family):
                    return parse_response(packet, q)
            raise TimeoutError
        finally:
            sock.close()
    except TimeoutError:
        raise DNSError(
            f"no reply from {where} for {_describe(q.name, q.qclass, q.qtype)} within {timeout:g} s"
        ) from None
    except OSError as e:
        raise DNSError(f"cannot query {where}: {e.strerror or e}") from None
