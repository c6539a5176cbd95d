"""duckdns.dnswire against a real DNS server on loopback (tests/support/dnsserver.py), plus the
reply parser on hand-made packets. No socket is mocked; nothing leaves 127.0.0.1 / ::1."""

import re
import socket
import struct
import subprocess
import time
from pathlib import Path

import pytest
from support.dnsserver import DNSServer

from duckdns import dnswire
from duckdns.config import parse_ip_port
from duckdns.dnswire import (
    CLASS_CH,
    CLASS_IN,
    TYPE_A,
    TYPE_TXT,
    DNSError,
    Record,
    make_query,
    parse_response,
    query,
)

LOCAL = "127.0.0.1"
RECORDS = [
    "whoami.cloudflare:CH:TXT:203.0.113.7",
    "myip.opendns.com:A:203.0.113.7",
    "example.duckdns.org:A:203.0.113.7",
    "example.duckdns.org:AAAA:2001:db8::7",
    "example.duckdns.org:TXT:hello world",
    "www.example.com:CNAME:example.duckdns.org",
]


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.fixture
def dns():
    with DNSServer(RECORDS) as server:
        yield server


def ask(dns: DNSServer, name: str, qtype: int, **kw) -> dnswire.Response:
    return query(name, qtype, LOCAL, dns.port, **kw)


# -- queries -------------------------------------------------------------------------------


def test_query_wire_format():
    q = make_query("Example.DuckDNS.org.", TYPE_A, CLASS_IN, qid=0x1234)
    assert q.wire == (
        struct.pack("!6H", 0x1234, 0x0100, 1, 0, 0, 0)  # RD set, one question
        + b"\x07Example\x07DuckDNS\x03org\x00"
        + struct.pack("!HH", 1, 1)
    )
    assert q.name == "example.duckdns.org"
    assert make_query("whoami.cloudflare", TYPE_TXT, CLASS_CH).wire.endswith(
        b"\x00\x00\x10\x00\x03"
    )


def test_query_ids_are_random():
    ids = {make_query("example.org", TYPE_A).id for _ in range(32)}
    assert len(ids) >= 28


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "empty domain name"),
        (".", "empty domain name"),
        ("a..b", "empty label"),
        ("a" * 64 + ".org", "longer than 63"),
        (".".join(["a" * 63] * 4), "longer than 255"),
        ("bücher.example", "not an ASCII domain name"),
        ("a b.example", "invalid character"),
    ],
)
def test_bad_names_are_refused_before_sending(name, message):
    with pytest.raises(DNSError, match=message):
        make_query(name, TYPE_A)


def test_unsupported_type_and_class():
    with pytest.raises(DNSError, match="type"):
        make_query("example.org", 15)
    with pytest.raises(DNSError, match="class"):
        make_query("example.org", TYPE_A, 4)


# -- good answers --------------------------------------------------------------------------


def test_a(dns):
    r = ask(dns, "example.duckdns.org", TYPE_A)
    assert r.answers == (Record("example.duckdns.org", TYPE_A, CLASS_IN, 60, "203.0.113.7"),)
    assert r.values("example.duckdns.org.", TYPE_A) == ["203.0.113.7"]
    assert dns.queries[0].rtype == "A"
    assert dns.queries[0].rclass == "IN"


def test_txt_class_ch(dns):
    r = ask(dns, "whoami.cloudflare", TYPE_TXT, qclass=CLASS_CH)
    assert r.values("whoami.cloudflare", TYPE_TXT, CLASS_CH) == ["203.0.113.7"]
    assert r.answers[0].strings == (b"203.0.113.7",)
    assert dns.queries[0].rclass == "CH"


def test_txt_made_of_several_strings(dns):
    dns.add("long.example", "TXT", "x" * 300)
    r = ask(dns, "long.example", TYPE_TXT)
    assert [len(s) for s in r.answers[0].strings] == [255, 45]
    assert r.answers[0].value == "x" * 300


def test_a_cname_is_skipped_and_the_compressed_owner_names_read(dns):
    # The server compresses owner names against earlier names; the probe needs no CNAME.
    r = ask(dns, "www.example.com", TYPE_A)
    assert [(a.name, a.rtype, a.value) for a in r.answers] == [
        ("example.duckdns.org", TYPE_A, "203.0.113.7"),
    ]


def test_empty_answer_is_not_an_error(dns):
    assert ask(dns, "myip.opendns.com", TYPE_TXT).answers == ()


def test_question_name_is_compared_case_insensitively(dns):
    r = ask(dns, "ExAmPlE.duckdns.ORG", TYPE_A)
    assert dns.queries[0].name == "ExAmPlE.duckdns.ORG"
    assert r.values("example.duckdns.org", TYPE_A) == ["203.0.113.7"]


def test_reply_echoing_the_name_in_another_case_is_accepted(dns):
    def upper(packet: bytes) -> bytes:
        reply = bytearray(packet)
        reply[2] |= 0x80  # QR
        reply[12:] = reply[12:].upper()  # question name in upper case (type/class unchanged)
        return bytes(reply)

    dns.responder = upper
    assert ask(dns, "example.duckdns.org", TYPE_A).answers == ()


def test_unknown_record_types_are_skipped(dns):
    def with_mx(packet: bytes) -> bytes:
        head = bytearray(packet[:12])
        struct.pack_into("!HH", head, 2, 0x8180, 1)
        struct.pack_into("!H", head, 6, 2)
        mx = b"\xc0\x0c" + struct.pack("!HHIH", 15, 1, 60, 4) + b"\x00\x0a\xc0\x0c"
        a = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + bytes([192, 0, 2, 1])
        return bytes(head) + packet[12:] + mx + a

    dns.responder = with_mx
    r = ask(dns, "example.duckdns.org", TYPE_A)
    assert [a.value for a in r.answers] == ["192.0.2.1"]


def test_source_ports_are_random(dns):
    for _ in range(10):
        ask(dns, "example.duckdns.org", TYPE_A)
    ports = {q.client[1] for q in dns.queries}
    assert len(ports) >= 8


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback")
def test_ipv6_server():
    with DNSServer(RECORDS, host="::1") as dns6:
        r = query("example.duckdns.org", TYPE_A, "::1", dns6.port)
        assert r.values("example.duckdns.org", TYPE_A) == ["203.0.113.7"]
        assert dns6.queries[0].client[0] == "::1"


# -- misbehaving servers: every one must be rejected ----------------------------------------


@pytest.mark.parametrize(
    ("behaviour", "message"),
    [
        ("wrong-id", r"reply ID 0x[0-9a-f]{4} does not match query ID"),
        ("no-qr", r"not a response \(QR flag clear\)"),
        ("wrong-name", r"another question \(xexample.duckdns.org IN A"),
        ("wrong-type", r"another question \(example.duckdns.org IN TYPE28"),
        ("wrong-class", r"another question \(example.duckdns.org CH A"),
        ("no-question", "0 questions, expected 1"),
        ("truncated", r"truncated \(TC flag set\)"),
        ("short", "malformed reply"),
        ("garbage", "malformed reply"),
        ("runt", "shorter than a DNS header"),
        ("pointer-loop", "pointer loop"),
        ("servfail", "server answered SERVFAIL for example.duckdns.org IN A"),
        ("nxdomain", "server answered NXDOMAIN"),
        ("refused", "server answered REFUSED"),
    ],
)
def test_misbehaviour_is_rejected(dns, behaviour, message):
    dns.behaviour = behaviour
    start = time.monotonic()
    with pytest.raises(DNSError, match=message):
        ask(dns, "example.duckdns.org", TYPE_A)
    assert time.monotonic() - start < 0.5  # rejected at once, not after the timeout


@pytest.mark.parametrize(("behaviour", "rcode"), [("servfail", 2), ("nxdomain", 3), ("refused", 5)])
def test_rcode_is_reported(dns, behaviour, rcode):
    dns.behaviour = behaviour
    with pytest.raises(DNSError) as e:
        ask(dns, "example.duckdns.org", TYPE_A)
    assert e.value.rcode == rcode


def test_unknown_name_is_nxdomain(dns):
    with pytest.raises(DNSError, match="NXDOMAIN for nothing.example IN A") as e:
        ask(dns, "nothing.example", TYPE_A)
    assert e.value.rcode == 3


def test_lie_is_just_an_answer(dns):
    # The wire cannot tell a lie from the truth; probe's self-check against DuckDNS does.
    dns.behaviour = "lie"
    assert ask(dns, "example.duckdns.org", TYPE_A).answers[0].value == "198.51.100.66"


@pytest.mark.parametrize("behaviour", ["silent", "wrong-source"])
def test_no_reply_times_out(dns, behaviour):
    dns.behaviour = behaviour
    start = time.monotonic()
    with pytest.raises(DNSError, match=r"no reply from 127\.0\.0\.1:\d+ .* within 0\.3 s"):
        ask(dns, "example.duckdns.org", TYPE_A, timeout=0.3)
    elapsed = time.monotonic() - start
    assert 0.28 <= elapsed < 0.8
    assert len(dns.queries) == 1


def test_default_timeout_is_one_second(dns):
    dns.behaviour = "silent"
    start = time.monotonic()
    with pytest.raises(DNSError, match="within 1 s"):
        ask(dns, "example.duckdns.org", TYPE_A)
    assert 0.98 <= time.monotonic() - start < 1.5


def test_late_reply_is_a_timeout(dns):
    dns.delay = 0.6
    start = time.monotonic()
    with pytest.raises(DNSError, match="no reply"):
        ask(dns, "example.duckdns.org", TYPE_A, timeout=0.2)
    assert time.monotonic() - start < 0.5


def test_slow_reply_within_the_timeout(dns):
    dns.delay = 0.2
    assert ask(dns, "example.duckdns.org", TYPE_A).answers


def test_closed_port_fails_fast():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((LOCAL, 0))
        port = s.getsockname()[1]
    start = time.monotonic()
    with pytest.raises(DNSError, match="cannot query 127.0.0.1"):
        query("example.org", TYPE_A, LOCAL, port)
    assert time.monotonic() - start < 0.5


@pytest.mark.parametrize("server", ["localhost", "example.com", "1", "127.1", "01.2.3.4", ""])
def test_server_must_be_an_ip_address(server):
    with pytest.raises(DNSError, match="is not an IP address"):
        query("example.org", TYPE_A, server, 53)


def test_bad_port_and_timeout():
    with pytest.raises(DNSError, match="invalid port"):
        query("example.org", TYPE_A, LOCAL, 0)
    with pytest.raises(ValueError, match="timeout"):
        query("example.org", TYPE_A, LOCAL, 53, timeout=0)


# -- the parser on hand-made replies --------------------------------------------------------

Q = make_query("example.org", TYPE_A, qid=0xBEEF)
QUESTION = b"\x07example\x03org\x00" + struct.pack("!HH", TYPE_A, CLASS_IN)


def reply(answers: bytes = b"", ancount: int = 1, flags: int = 0x8180, qid: int = 0xBEEF) -> bytes:
    return struct.pack("!6H", qid, flags, 1, ancount, 0, 0) + QUESTION + answers


def rr(owner: bytes, rtype: int, rdata: bytes, rclass: int = CLASS_IN, rdlen: int | None = None):
    length = len(rdata) if rdlen is None else rdlen
    return owner + struct.pack("!HHIH", rtype, rclass, 300, length) + rdata


PTR_QNAME = b"\xc0\x0c"  # pointer to the question name


def test_parse_good_reply():
    r = parse_response(reply(rr(PTR_QNAME, TYPE_A, bytes([192, 0, 2, 1]))), Q)
    assert r.answers == (Record("example.org", TYPE_A, CLASS_IN, 300, "192.0.2.1"),)


@pytest.mark.parametrize(
    ("packet", "message"),
    [
        (b"", "shorter than a DNS header"),
        (reply(b"", flags=0x8180 | 0x7800), "opcode 15"),
        (reply(rr(b"\xc0\x30", TYPE_A, b"\1\2\3\4")), "point back to an earlier name"),
        (reply(rr(b"\x01a\xc0\x1d", TYPE_A, b"\1\2\3\4")), "pointer loop"),
        (reply(b"\x01a\xc0"), "truncated compression pointer"),
        (reply(rr(b"\x41a\x00", TYPE_A, b"\1\2\3\4")), "unsupported label type 0x41"),
        (reply(rr(b"\x81a\x00", TYPE_A, b"\1\2\3\4")), "unsupported label type 0x81"),
        (reply(rr(b"\x3fabc", TYPE_A, b"")), "truncated label"),
        (reply(b"\xc0\x0c\x00\x01\x00"), "truncated resource record"),
        (reply(rr(PTR_QNAME, TYPE_A, b"\1\2\3\4", rdlen=9)), "overruns the packet"),
        (reply(rr(PTR_QNAME, TYPE_A, b"\1\2\3\4\5")), "A record with 5 octets"),
        (reply(rr(PTR_QNAME, TYPE_TXT, b"\x05abc")), "TXT string overruns"),
        (reply(rr(PTR_QNAME, TYPE_TXT, b"")), "empty TXT record"),
        (reply(b"", ancount=2), "truncated domain name"),
        (reply(b"")[:-3], "truncated question"),
        (struct.pack("!6H", 0xBEEF, 0x8180, 2, 0, 0, 0) + QUESTION * 2, "2 questions"),
        (struct.pack("!6H", 0xBEEF, 0x8183, 0, 0, 0, 0), "NXDOMAIN"),  # error, no question
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_parse_rejects(packet, message):
    with pytest.raises(DNSError, match=message):
        parse_response(packet, Q)


def test_parse_rejects_names_over_255_octets():
    # four 63-octet labels (256 octets with their length octets) then the question name
    owner = b"\x3f" + b"a" * 63
    packet = reply(rr(owner * 4 + PTR_QNAME, TYPE_A, b"\1\2\3\4"))
    with pytest.raises(DNSError, match="longer than 255 octets"):
        parse_response(packet, Q)


# -- helpers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("192.0.2.53", ("192.0.2.53", 53)),
        (" 192.0.2.53:5353 ", ("192.0.2.53", 5353)),
        ("[2001:db8::53]", ("2001:db8::53", 53)),
        ("[::1]:5353", ("::1", 5353)),
        ("[fe80::1%lo]:5353", ("fe80::1%lo", 5353)),
        ("[fe80::1%1]", ("fe80::1%1", 53)),
    ],
)
def test_parse_ip_port(text, expected):
    assert parse_ip_port(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no address"),
        ("2001:db8::53", "must be in brackets"),
        ("[2001:db8::53", "no closing ']'"),
        ("[2001:db8::53]53", "unexpected characters after ']'"),
        ("[192.0.2.53]:53", "brackets are only for IPv6"),
        ("192.0.2.53:", "port '' is not a number"),
        ("192.0.2.53:dns", "port 'dns' is not a number"),
        ("192.0.2.53:65536", "out of range"),
        ("dns.example:53", "'dns.example' is not an IP address"),
        ("[fe80::1%no-such-interface]", "is not an IP address"),
        ("[fe80::1%]", "is not an IP address"),
    ],
)
def test_parse_ip_port_rejects(text, message):
    with pytest.raises(ValueError, match=message) as e:
        parse_ip_port(text)
    assert "ADDRESS[:PORT]" in str(e.value) or "out of range" in str(e.value)


# -- tests/support/dnsserver.py as a script (scripts/bench runs it so) -----------------------


def test_dnsserver_script():
    script = Path(__file__).resolve().parents[1] / "support" / "dnsserver.py"
    proc = subprocess.Popen(
        [
            "/usr/bin/python3",
            str(script),
            "--port",
            "0",
            "--record",
            "whoami.cloudflare:CH:TXT:203.0.113.7",
            "--record",
            "example.duckdns.org:A:203.0.113.7",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        match = re.fullmatch(r"listening on 127\.0\.0\.1 port (\d+)\n", line)
        assert match, line
        port = int(match.group(1))
        r = query("whoami.cloudflare", TYPE_TXT, LOCAL, port, qclass=CLASS_CH)
        assert r.values("whoami.cloudflare", TYPE_TXT, CLASS_CH) == ["203.0.113.7"]
        r = query("example.duckdns.org", TYPE_A, LOCAL, port)
        assert r.values("example.duckdns.org", TYPE_A) == ["203.0.113.7"]
    finally:
        proc.terminate()
        assert proc.wait(5) == 0
        proc.stdout.close()


def test_dnsserver_script_rejects_bad_records():
    script = Path(__file__).resolve().parents[1] / "support" / "dnsserver.py"
    proc = subprocess.run(
        ["/usr/bin/python3", str(script), "--record", "example.org:MX:mail.example.org"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert "type must be one of A, NS, CNAME, TXT, AAAA" in proc.stderr
