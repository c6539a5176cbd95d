#!/usr/bin/python3
"""A small DNS server for tests: UDP on loopback, answers from a table, can misbehave.

Messages are parsed and built with dnspython (Debian's python3-dnspython, a test-only
dependency), not with ``duckdns.dnswire``'s code or a copy of it: a misunderstanding of the
wire format in the client cannot be mirrored here. Only the deliberately broken replies
(``garbage``, ``runt``, ``pointer-loop``, ``short``) are cut or written by hand.

Records are ``NAME:[CLASS:]TYPE:VALUE`` strings, CLASS ``IN`` (default) or ``CH``, TYPE
``A``, ``AAAA``, ``TXT``, ``CNAME`` or ``NS``. Like a recursive resolver, a CNAME is followed within
the answer unless ``follow_cnames=False`` (then the client must ask again for the target).
Names are matched case-insensitively; an unknown name gets NXDOMAIN, a known name without
records of the type asked gets an empty NOERROR answer.

Example::

    from support.dnsserver import DNSServer  # tests/ is on sys.path (pytest.ini)

    records = [
        "whoami.cloudflare:CH:TXT:203.0.113.7",
        "cloud.example.com:CNAME:example.duckdns.org",
        "example.duckdns.org:A:203.0.113.7",
        "example.duckdns.org:AAAA:2001:db8::7",
    ]
    with DNSServer(records) as dns:          # 127.0.0.1, ephemeral port: dns.port
        ...                                  # point the code under test at dns.address
        dns.behaviour = "silent"             # from now on, never answer
        assert dns.queries[0].name == "whoami.cloudflare"

Behaviours (``DNSServer.behaviour``, see ``BEHAVIOURS``): ``normal``; ``lie`` (A and TXT
answers say ``lie_ipv4``, AAAA ``lie_ipv6``); ``wrong-id``, ``no-qr``, ``wrong-name``,
``wrong-type``, ``wrong-class``, ``no-question`` (the reply does not match the query);
``truncated`` (TC set, no answers); ``short`` (a correct reply cut inside its answer);
``garbage`` (right ID, then junk); ``runt`` (shorter than a header); ``pointer-loop`` (answer
owner name is a compression loop); ``silent``; ``servfail``, ``nxdomain``, ``refused``;
``wrong-source`` (a correct reply, sent from another port). ``delay`` (seconds) holds every
reply back; ``responder`` (``bytes -> bytes | list[bytes] | None``, the query in, the
datagrams out or None) replaces the answering logic, for hand-crafted packets; it may call
``answer(packet)`` for the reply the server would have given.

Hostile behaviours, for the hostile layer (tests/unit/test_hostile_dns.py): ``flood``
(``FLOOD`` replies with wrong IDs from the right address and port, then the right reply);
``junk-flood`` (``FLOOD`` datagrams of random bytes, some shorter than a header, then the
right reply); ``several`` (each A or TXT answer comes with a second, different value,
``lie_ipv4``); ``not-ipv4`` (TXT values are text, A answers become AAAA records);
``huge-txt`` (the right answer followed by about 60 KiB of distinct TXT records holding
newlines and escape sequences); ``late`` (the right reply ``late_by`` seconds late, after any
sane timeout). UDP only: the client under test never uses TCP (a truncated reply fails).

A ``LaggingZone`` plays DuckDNS's name servers for TXT records: every name at or below
``NAME.duckdns.org`` answers the TXT value that a source (the test DuckDNS server's state)
holds for ``NAME``, each change served only ``delay`` seconds after it happened::

    zone = LaggingZone("duckdns.org", lambda: {"piserver": duck.txt}, delay=3)
    with DNSServer(zones=[zone]) as dns:     # TXT of _acme-challenge.piserver.duckdns.org
        ...

As a script (for scripts/bench); prints ``listening on HOST port PORT`` and runs until
SIGTERM or SIGINT::

    python3 tests/support/dnsserver.py --port 5353 --record whoami.cloudflare:CH:TXT:203.0.113.7
"""

from __future__ import annotations

import argparse
import contextlib
import random
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterable

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from dns.rdtypes.ANY.TXT import TXT

TYPES = {name: int(getattr(dns.rdatatype, name)) for name in ("A", "NS", "CNAME", "TXT", "AAAA")}
CLASSES = {"IN": int(dns.rdataclass.IN), "CH": int(dns.rdataclass.CH)}
RCODES = {
    "servfail": int(dns.rcode.SERVFAIL),
    "nxdomain": int(dns.rcode.NXDOMAIN),
    "refused": int(dns.rcode.REFUSED),
}

BEHAVIOURS = (
    "normal",
    "lie",
    "wrong-id",
    "no-qr",
    "wrong-name",
    "wrong-type",
    "wrong-class",
    "no-question",
    "truncated",
    "short",
    "garbage",
    "runt",
    "pointer-loop",
    "silent",
    "servfail",
    "nxdomain",
    "refused",
    "wrong-source",
    "flood",
    "junk-flood",
    "several",
    "not-ipv4",
    "huge-txt",
    "late",
)
FLOOD = 200  # datagrams sent before the right reply by "flood" and "junk-flood"


class Query:
    """One query the server received."""

    def __init__(
        self, name: str, rtype: str, rclass: str, qid: int, client: tuple, raw: bytes
    ) -> None:
        self.name = name  # as sent, without the trailing dot (case preserved)
        self.rtype = rtype  # "A", "TXT", ... or "TYPE<n>"
        self.rclass = rclass  # "IN", "CH" or "CLASS<n>"
        self.id = qid
        self.client = client  # (address, port[, ...]) the query came from
        self.raw = raw

    def __repr__(self) -> str:
        return f"Query({self.name!r} {self.rclass} {self.rtype} id=0x{self.id:04x})"


def _with_id(wire: bytearray, qid: int) -> bytes:
    """``wire`` with another (wrong) message ID."""
    struct.pack_into("!H", wire, 0, qid & 0xFFFF)
    return bytes(wire)


def parse_record(spec: str) -> tuple[str, int, int, str]:
    """``NAME:[CLASS:]TYPE:VALUE`` -> (name, class, type, value). The value may hold colons."""
    parts = spec.split(":", 2)
    if len(parts) < 3:
        raise ValueError(f"record {spec!r}: expected NAME:[CLASS:]TYPE:VALUE")
    name, second, rest = parts
    if second.upper() in CLASSES:
        rclass = CLASSES[second.upper()]
        rtype_text, sep, value = rest.partition(":")
        if not sep:
            raise ValueError(f"record {spec!r}: expected NAME:[CLASS:]TYPE:VALUE")
    else:
        rclass = CLASSES["IN"]
        rtype_text, value = second, rest
    if rtype_text.upper() not in TYPES:
        raise ValueError(f"record {spec!r}: type must be one of {', '.join(TYPES)}")
    rtype = TYPES[rtype_text.upper()]
    if rtype == TYPES["A"]:
        socket.inet_pton(socket.AF_INET, value)
    elif rtype == TYPES["AAAA"]:
        socket.inet_pton(socket.AF_INET6, value)
    return name.rstrip(".").lower(), rclass, rtype, value


def _read_query(packet: bytes) -> dns.message.Message | None:
    """The query in ``packet`` with its first question; None if dnspython cannot parse it."""
    try:
        msg = dns.message.from_wire(packet, ignore_trailing=True)
    except (dns.exception.DNSException, ValueError):
        return None
    return msg if msg.question else None


def _rdata(rclass: int, rtype: int, value: str) -> dns.rdata.Rdata:
    if rtype == TYPES["TXT"]:  # split into character-strings of at most 255 octets
        data = value.encode("utf-8")
        chunks = [data[i : i + 255] for i in range(0, len(data), 255)] or [b""]
        return TXT(rclass, rtype, chunks)
    if rtype in (TYPES["CNAME"], TYPES["NS"]):
        value = value.rstrip(".") + "."
    return dns.rdata.from_text(rclass, rtype, value)


class LaggingZone:
    """A DuckDNS-like zone: NAME.ZONE and every name below it answer the TXT value of NAME.

    ``source()`` returns ``{subname: TXT value}``, e.g. read from the test DuckDNS server,
    so a test runs end to end: the updater sets the value over HTTPS, and the name server
    serves it. A thread samples the source every ``interval`` s; a changed value is served
    ``delay`` s after the sample that first saw it (DuckDNS's name servers serve a new TXT
    value after a delay: docs/duckdns-api.md, "TXT records"). ``delay`` may be
    changed at any time. A subname the source does not list is NXDOMAIN; an empty value
    gives no TXT record (what DuckDNS serves then is not known, so no test relies on it).
    Questions for the zone's own name (NS records and the like) go to the record table.
    """

    def __init__(
        self,
        zone: str,
        source: Callable[[], dict[str, str]],
        delay: float = 0.0,
        interval: float = 0.02,
    ) -> None:
        self.zone = zone.rstrip(".").lower()
        self.source = source
        self.delay = delay
        self.interval = interval
        self.history: list[tuple[float, dict[str, str]]] = []
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.history = [(float("-inf"), dict(self.source()))]
        self._stopping.clear()
        self._thread = threading.Thread(target=self._sample, name="laggingzone", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def _sample(self) -> None:
        while not self._stopping.wait(self.interval):
            now = dict(self.source())
            if now != self.history[-1][1]:
                self.history.append((time.monotonic(), now))

    def served(self) -> dict[str, str]:
        """What the zone serves now: the newest state at least ``delay`` s old."""
        cutoff = time.monotonic() - self.delay
        return [state for when, state in self.history if when <= cutoff][-1]

    def lookup(self, name: str, qtype: int) -> tuple[list, int] | None:
        """Answers and RCODE for a name below the zone; None for any other name."""
        if not name.endswith("." + self.zone):
            return None
        subname = name[: -len(self.zone) - 1].rsplit(".", 1)[-1]
        served = self.served()
        if subname not in served:
            return [], RCODES["nxdomain"]
        value = served[subname]
        if qtype == TYPES["TXT"] and value:
            return [(name, TYPES["TXT"], CLASSES["IN"], value)], 0
        return [], 0


class DNSServer:
    """A threaded UDP DNS server for tests; a context manager. See the module docstring."""

    def __init__(
        self,
        records: Iterable[str] = (),
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        behaviour: str = "normal",
        follow_cnames: bool = True,
        ttl: int = 60,
        zones: Iterable[LaggingZone] = (),
    ) -> None:
        self.host = host
        self.port = port
        self.behaviour = behaviour
        self.follow_cnames = follow_cnames
        self.ttl = ttl
        self.delay = 0.0
        self.lie_ipv4 = "198.51.100.66"
        self.lie_ipv6 = "2001:db8::bad"
        self.late_by = 5.0  # seconds, for the "late" behaviour
        self.responder: Callable[[bytes], bytes | list[bytes] | None] | None = None
        self.queries: list[Query] = []
        self._records: dict[tuple[str, int, int], list[str]] = {}
        self._sock: socket.socket | None = None
        self._other: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._timers: list[threading.Timer] = []
        self.zones = list(zones)
        for spec in records:
            self.add_spec(spec)

    # -- the table -----------------------------------------------------------------------------

    def add(self, name: str, rtype: str, value: str, rclass: str = "IN") -> None:
        """Add one record, e.g. ``add("whoami.cloudflare", "TXT", "203.0.113.7", "CH")``."""
        self.add_spec(f"{name}:{rclass}:{rtype}:{value}")

    def add_spec(self, spec: str) -> None:
        """Add one record given as ``NAME:[CLASS:]TYPE:VALUE``."""
        name, rclass, rtype, value = parse_record(spec)
        self._records.setdefault((name, rclass, rtype), []).append(value)

    def clear(self) -> None:
        """Forget all records and recorded queries."""
        self._records.clear()
        self.queries.clear()

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) the server listens on."""
        return self.host, self.port

    @property
    def behaviour(self) -> str:
        """How the server answers from now on; one of ``BEHAVIOURS``."""
        return self._behaviour

    @behaviour.setter
    def behaviour(self, value: str) -> None:
        if value not in BEHAVIOURS:
            raise ValueError(f"unknown behaviour {value!r}; one of {', '.join(BEHAVIOURS)}")
        self._behaviour = value

    # -- life cycle ----------------------------------------------------------------------------

    def start(self) -> DNSServer:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_DGRAM)
        self._sock.bind((self.host, self.port))
        self.port = self._sock.getsockname()[1]
        self._other = socket.socket(family, socket.SOCK_DGRAM)
        self._other.bind((self.host, 0))
        self._stopping.clear()
        for zone in self.zones:
            zone.start()
        self._thread = threading.Thread(target=self._serve, name="dnsserver", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        for zone in self.zones:
            zone.stop()
        for timer in self._timers:
            timer.cancel()
        if self._sock is not None and self._thread is not None:
            # Wake the blocked recvfrom with an empty datagram rather than polling.
            family = self._sock.family
            with socket.socket(family, socket.SOCK_DGRAM) as s:
                s.sendto(b"", (self.host, self.port))
            self._thread.join(5)
        for sock in (self._sock, self._other):
            if sock is not None:
                sock.close()
        self._sock = self._other = None
        self._thread = None

    def __enter__(self) -> DNSServer:
        return self if self._thread is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- serving -------------------------------------------------------------------------------

    def _serve(self) -> None:
        sock = self._sock
        assert sock is not None
        sock.settimeout(0.5)
        while not self._stopping.is_set():
            try:
                packet, client = sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            if self._stopping.is_set():
                return
            if len(packet) < 12:
                continue
            try:
                reply = self._respond(packet, client)
            except Exception as e:  # a test server must not die silently mid-test
                print(f"dnsserver: error answering: {e!r}", file=sys.stderr)
                continue
            if reply is None:
                continue
            sender = self._other if self.behaviour == "wrong-source" else sock
            replies = [reply] if isinstance(reply, bytes) else reply
            delay = self.late_by if self.behaviour == "late" else self.delay
            if delay > 0:
                timer = threading.Timer(delay, self._send, (sender, replies, client))
                timer.daemon = True
                self._timers.append(timer)
                timer.start()
            else:
                self._send(sender, replies, client)

    def _send(self, sock: socket.socket | None, replies: list[bytes], client: tuple) -> None:
        for reply in replies:
            if sock is None or self._stopping.is_set():
                return
            with contextlib.suppress(OSError):
                sock.sendto(reply, client)

    def _respond(self, packet: bytes, client: tuple) -> bytes | list[bytes] | None:
        query = _read_query(packet)
        if query is None:
            return None
        q = query.question[0]
        self.queries.append(
            Query(
                q.name.to_text(omit_final_dot=True),
                dns.rdatatype.to_text(q.rdtype),
                dns.rdataclass.to_text(q.rdclass),
                query.id,
                client,
                packet,
            )
        )
        if self.responder is not None:
            return self.responder(packet)
        return self.answer(packet)

    def answer(self, packet: bytes) -> bytes | list[bytes] | None:
        """The reply the current behaviour gives to ``packet``: datagrams, in order, or None.

        A ``responder`` may call this to answer normally and tamper with the result.
        """
        query = _read_query(packet)
        if query is None:
            return None
        q = query.question[0]
        qname = q.name.to_text(omit_final_dot=True)
        qtype, qclass = int(q.rdtype), int(q.rdclass)
        behaviour = self.behaviour
        if behaviour == "silent":
            return None
        if behaviour == "runt":
            return packet[:5]
        answers, rcode = self._lookup(qname, qtype, qclass)
        if behaviour == "lie":
            answers = [self._lie(a) for a in answers]
        elif behaviour == "several":
            answers = [x for a in answers for x in (a, self._lie(a))]
        elif behaviour == "not-ipv4":
            answers = [self._not_ipv4(a) for a in answers]
        elif behaviour == "huge-txt":
            answers = answers + [
                (qname, TYPES["TXT"], qclass, f"{i:03d} \n<3>forged line \x1b[2J{'x' * 230}")
                for i in range(230)
            ]
        if behaviour in RCODES:
            answers, rcode = [], RCODES[behaviour]
        if behaviour == "truncated":
            answers = []

        reply = dns.message.make_response(query)  # same ID and question, QR set, RD copied
        reply.flags |= dns.flags.AA | dns.flags.RA
        reply.set_rcode(rcode)
        if behaviour == "wrong-id":
            reply.id = (query.id + 1) & 0xFFFF
        elif behaviour == "no-qr":
            reply.flags &= ~dns.flags.QR
        elif behaviour == "truncated":
            reply.flags |= dns.flags.TC
        elif behaviour == "wrong-name":
            reply.question = [dns.rrset.RRset(dns.name.from_text("x" + qname), qclass, qtype)]
        elif behaviour == "wrong-type":
            other = TYPES["AAAA"] if qtype == TYPES["A"] else TYPES["A"]
            reply.question = [dns.rrset.RRset(q.name, qclass, other)]
        elif behaviour == "wrong-class":
            other = CLASSES["IN"] if qclass == CLASSES["CH"] else CLASSES["CH"]
            reply.question = [dns.rrset.RRset(q.name, other, qtype)]
        elif behaviour == "no-question":
            reply.question = []

        if behaviour == "garbage":
            head = struct.pack("!6H", reply.id, reply.flags, 1, 1, 0, 0)
            return head + b"\x07garbage\xc0\xff\xfe\x01\x02\x03"
        if behaviour == "pointer-loop":
            # The reply's header and question, then one answer whose owner name is label
            # "a" followed by a pointer back to that label: a.a.a.a... (written by hand).
            wire = bytearray(reply.to_wire())
            struct.pack_into("!H", wire, 6, 1)  # ANCOUNT
            loop_at = len(wire)
            wire += b"\x01a" + struct.pack("!H", 0xC000 | loop_at)
            wire += struct.pack("!HHIH", qtype, qclass, 60, 4) + b"\x7f\0\0\x01"
            return bytes(wire)

        # One RRset per record, in table order: a set would merge duplicates and reorder,
        # and the tests use both to check the client.
        for name, rtype, rclass, value in answers:
            owner = dns.name.from_text(name)
            reply.answer.append(dns.rrset.from_rdata(owner, self.ttl, _rdata(rclass, rtype, value)))
        wire = reply.to_wire()
        if behaviour == "short":
            wire = wire[:-3] if answers else wire[:-1]
        if behaviour == "flood":
            flood = bytearray(wire)
            return [_with_id(flood, query.id + 1 + i) for i in range(FLOOD)] + [wire]
        if behaviour == "junk-flood":
            rng = random.Random(query.id)
            junk = [rng.randbytes(rng.choice((1, 11, 12, 40, 512))) for _ in range(FLOOD)]
            return [*junk, wire]
        return wire

    def _not_ipv4(self, answer: tuple[str, int, int, str]) -> tuple[str, int, int, str]:
        name, rtype, rclass, value = answer
        if rtype == TYPES["TXT"]:
            return name, rtype, rclass, f"your address is {value}"
        if rtype == TYPES["A"]:
            return name, TYPES["AAAA"], rclass, self.lie_ipv6
        return answer

    def _lie(self, answer: tuple[str, int, int, str]) -> tuple[str, int, int, str]:
        name, rtype, rclass, value = answer
        if rtype in (TYPES["A"], TYPES["TXT"]):
            value = self.lie_ipv4
        elif rtype == TYPES["AAAA"]:
            value = self.lie_ipv6
        return name, rtype, rclass, value

    def _lookup(self, qname: str, qtype: int, qclass: int) -> tuple[list, int]:
        """Answer records and RCODE for a question, following CNAMEs like a resolver."""
        answers: list[tuple[str, int, int, str]] = []
        name, seen = qname, set()
        cname = TYPES["CNAME"]
        while True:
            key = name.rstrip(".").lower()
            seen.add(key)
            for zone in self.zones:
                found = zone.lookup(key, qtype) if qclass == CLASSES["IN"] else None
                if found is not None:
                    return answers + found[0], found[1]
            targets = self._records.get((key, qclass, cname))
            if targets and qtype != cname:
                target = targets[0]
                answers.append((name, cname, qclass, target))
                if (
                    not self.follow_cnames
                    or target.rstrip(".").lower() in seen
                    or len(answers) > 32
                ):
                    return answers, 0
                name = target
                continue
            for value in self._records.get((key, qclass, qtype), []):
                answers.append((name, qtype, qclass, value))
            exists = any(k[0] == key for k in self._records)
            return answers, 0 if exists else RCODES["nxdomain"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Test DNS server (UDP) for duckdns tests.")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=0, help="port (0: any free port)")
    parser.add_argument(
        "--record",
        action="append",
        default=[],
        metavar="NAME:[CLASS:]TYPE:VALUE",
        help="a record to serve; repeatable",
    )
    parser.add_argument("--behaviour", default="normal", choices=BEHAVIOURS)
    parser.add_argument("--no-follow", action="store_true", help="do not follow CNAMEs")
    args = parser.parse_args(argv)
    try:
        server = DNSServer(
            args.record,
            host=args.host,
            port=args.port,
            behaviour=args.behaviour,
            follow_cnames=not args.no_follow,
        )
    except (ValueError, OSError) as e:
        parser.error(str(e))
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    with server:
        print(f"listening on {server.host} port {server.port}", flush=True)
        while not done.is_set():
            done.wait(1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
