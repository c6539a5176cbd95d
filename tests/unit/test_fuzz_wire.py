"""Property-based fuzzing of the parsers that read what a server sends: DuckDNS's answer
(``duckdns.api.parse_answer``), a DNS reply (``duckdns.dnswire.parse_response``) and the
probe's reading of it (``duckdns.probe.ask``).

For any input only the documented outcomes may happen:

- ``parse_answer``: a ``Reply``, ``api.Rejected`` (KO) or ``api.TemporaryFailure``; the
  message is one short line of printable ASCII and, once redacted, never holds the token,
  not even a part of it.
- ``parse_response``: a ``Response`` whose records hold well-formed values, or ``DNSError``;
  each input parsed in bounded time (compression pointers cannot loop).
- ``probe.ask``: a canonical dotted-quad IPv4 address the reply held, or ``DNSError`` with a
  short one-line message.

Run with ``--hypothesis-show-statistics`` to see how many inputs of each class were tried
and what each got (the ``event`` lines).
"""

from __future__ import annotations

import ipaddress
import struct
import time

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest
from dns.rdtypes.ANY.CNAME import CNAME
from dns.rdtypes.ANY.MX import MX
from dns.rdtypes.ANY.NS import NS
from dns.rdtypes.ANY.TXT import TXT
from dns.rdtypes.IN.A import A
from dns.rdtypes.IN.AAAA import AAAA
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from support.helpers import CANARY

from duckdns import api, dnswire, probe, report
from duckdns.config import ProbeTarget
from duckdns.dnswire import CLASS_CH, CLASS_IN, TYPE_A, TYPE_TXT, DNSError

FUZZ = settings(
    max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
MAX_MESSAGE = 300  # characters: every message here is one log line
PARSE_BOUND = 1.0  # seconds per DNS reply: a loop never ends; a 64 KiB reply parses in ~10 ms,
# but a process on a 2-core machine booting VMs in the background can stall for much longer


@pytest.fixture(autouse=True)
def _canary_registered():
    report.register_secret(CANARY)


def one_short_line(message: str) -> None:
    assert len(message) <= MAX_MESSAGE, f"message of {len(message)} characters"
    assert message.isprintable(), f"control characters in {message!r}"


def no_canary_part(message: str) -> None:
    """Not the token, nor any 8 characters of it (a cut must not keep half of it)."""
    shown = report.redact(message)
    assert CANARY not in shown
    for i in range(len(CANARY) - 7):
        assert CANARY[i : i + 8] not in shown, f"part of the token in {shown!r}"


# -- DuckDNS's answer --------------------------------------------------------------------------

IPV4 = st.ip_addresses(v=4).map(str)
IPV6 = st.ip_addresses(v=6).map(str)
ODD_ADDRESS = st.one_of(
    IPV4.map(lambda a: ".".join(f"0{p}" for p in a.split("."))),  # leading zeros
    IPV6.map(lambda a: a + "%eth0"),  # a zone
    IPV6.map(lambda a: a.upper()),
    IPV6.map(lambda a: ipaddress.IPv6Address(a).exploded),
    IPV4.map(lambda a: f" {a} "),
    IPV4.map(lambda a: a + "\r"),
    st.sampled_from(["1", "0x7f.1", "127.1", "::ffff:1.2.3.4", "1.2.3.4/32", "256.1.1.1", "::"]),
)
FIELD = st.one_of(
    IPV4,
    IPV6,
    ODD_ADDRESS,
    st.just(""),
    st.just(CANARY),
    st.text(max_size=20).map(lambda t: t + CANARY),
    st.sampled_from(["OK", "KO", "UPDATED", "NOCHANGE", "ok", "\u00e9t\u00e9", "\t", " "]),
    st.text(min_size=1, max_size=8).map(lambda t: t * 700),  # a very long line
)
FIRST = st.sampled_from(["OK", "KO", "ok", "OK ", " OK", "OK\r", "KO\r", "\ufeffOK", "OKAY"])
LAST = st.sampled_from(["UPDATED", "NOCHANGE", "UPDATED\r", "updated", "CHANGED", ""])


@st.composite
def near_answers(draw) -> bytes:
    """Answers close to the documented forms: OK/KO, 1-6 lines, various ends and encodings."""
    lines = [draw(FIRST), *draw(st.lists(FIELD, max_size=4)), draw(LAST)]
    if draw(st.booleans()):
        lines = lines[:-1]
    sep = draw(st.sampled_from(["\n", "\r\n", "\n\n", "\r"]))
    end = draw(st.sampled_from(["", "\n", "\r\n", "\n\n", " "]))
    encoding = draw(st.sampled_from(["ascii", "utf-8", "latin-1", "utf-16"]))
    return (sep.join(lines) + end).encode(encoding, "replace")


@st.composite
def valid_answers(draw) -> tuple[bytes, bool]:
    """Documented answers (docs/duckdns-api.md, "The update request"), to check they still parse."""
    txt = draw(st.booleans())
    state = draw(st.sampled_from(["UPDATED", "NOCHANGE"]))
    if txt:
        lines = [
            "OK",
            draw(
                st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=60)
            ),
            state,
        ]
    else:
        lines = ["OK", draw(IPV4 | st.just("")), draw(IPV6 | st.just("")), state]
    return ("\n".join(lines) + draw(st.sampled_from(["", "\n"]))).encode(), txt


def parse(body: bytes, txt: bool) -> str:
    """Parse; check the outcome is documented and its message safe; name the outcome."""
    try:
        reply = api.parse_answer(body, txt=txt)
    except api.Rejected as exc:
        one_short_line(str(exc))
        no_canary_part(str(exc))
        return "KO"
    except api.TemporaryFailure as exc:
        one_short_line(str(exc))
        no_canary_part(str(exc))
        return "unexpected"
    assert isinstance(reply, api.Reply)
    if not reply.verbose:
        return "bare OK"
    for value, version in ((reply.ipv4, 4), (reply.ipv6, 6)):
        if value:
            assert "%" not in value
            address = ipaddress.ip_address(value)
            assert address.version == version and str(address) == value
    return "verbose OK"


@FUZZ
@given(body=st.binary(max_size=5000), txt=st.booleans())
def test_answer_any_bytes(body, txt):
    event(f"any bytes: {parse(body, txt)}")


@FUZZ
@given(body=near_answers(), txt=st.booleans())
def test_answer_near_valid(body, txt):
    event(f"near-valid: {parse(body, txt)}")


@FUZZ
@given(answer=valid_answers())
def test_answer_documented_forms_parse(answer):
    body, txt = answer
    assert parse(body, txt) == "verbose OK"


@FUZZ
@given(
    before=st.text(max_size=300),
    after=st.text(max_size=300),
    repeat=st.integers(1, 8),
    txt=st.booleans(),
)
def test_answer_echoing_the_token(before, after, repeat, txt):
    """A server that echoes the request (or the token) anywhere: no part of it is shown."""
    body = (before + CANARY * repeat + after).encode("utf-8")
    event(f"token echoed: {parse(body, txt)}")


@pytest.mark.parametrize(
    "body",
    [
        b"x" * 40 + CANARY.encode(),  # the old 60-character cut kept 20 of its characters
        CANARY.encode() * 6 + b"!" + CANARY.encode(),
        b"<html>GET /update?domains=x&token=" + CANARY.encode() + b"</html>",
    ],
    ids=["cut-in-the-token", "shifted-by-masking", "echoed-request"],  # ids never hold it
)
def test_unexpected_answer_never_shows_part_of_the_token(body):
    with pytest.raises(api.TemporaryFailure) as caught:
        api.parse_answer(body)
    no_canary_part(str(caught.value))
    assert "unexpected answer from DuckDNS" in str(caught.value)


def test_an_answer_with_a_zone_is_unexpected():
    """A DNS record holds no zone: DuckDNS cannot have ``fe80::1%eth0`` as its IPv6."""
    with pytest.raises(api.TemporaryFailure):
        api.parse_answer(b"OK\n203.0.113.7\nfe80::1%eth0\nUPDATED")


def test_an_unexpected_answer_is_one_printable_line():
    with pytest.raises(api.TemporaryFailure) as caught:
        api.parse_answer(b"\x1b[31mOK\n\x00\x07" + "\u2028".encode() * 50)
    one_short_line(str(caught.value))


# -- DNS replies -------------------------------------------------------------------------------

QUESTION = ("probe.example", TYPE_A, CLASS_IN)
LABEL = st.binary(min_size=1, max_size=63)
NAME = st.lists(LABEL, min_size=1, max_size=4).map(
    lambda labels: (
        dns.name.Name([*labels, b""])
        if sum(len(x) + 1 for x in labels) < 250
        else dns.name.Name([labels[0], b""])
    )
)
OWNER = st.one_of(st.just(dns.name.from_text(QUESTION[0])), NAME)


@st.composite
def rrsets(draw) -> dns.rrset.RRset:
    owner = draw(OWNER)
    kind = draw(st.sampled_from(["A", "AAAA", "TXT", "CNAME", "NS", "MX"]))
    rclass = draw(st.sampled_from([dns.rdataclass.IN, dns.rdataclass.CH]))
    ttl = draw(st.integers(0, 2**31 - 1))
    rdtype = dns.rdatatype.from_text(kind)
    # Built directly: in class CH, dnspython's text parser knows no A or AAAA.
    if kind == "A":
        rdata = A(rclass, rdtype, draw(IPV4))
    elif kind == "AAAA":
        rdata = AAAA(rclass, rdtype, draw(IPV6))
    elif kind == "TXT":
        strings = draw(st.lists(st.binary(max_size=255), min_size=1, max_size=4))
        rdata = TXT(rclass, rdtype, strings)
    elif kind == "MX":
        rdata = MX(rclass, rdtype, 10, dns.name.from_text("mail.example"))
    else:
        rdata = (CNAME if kind == "CNAME" else NS)(rclass, rdtype, draw(NAME))
    return dns.rrset.from_rdata(owner, ttl, rdata)


def reply_for(query: dnswire.Query, answers: list, rcode: int = 0) -> bytes:
    """A reply to ``query`` written by dnspython (with name compression)."""
    msg = dns.message.from_wire(query.wire)
    reply = dns.message.make_response(msg)
    reply.set_rcode(rcode)
    reply.answer.extend(answers)
    return reply.to_wire()


@st.composite
def valid_replies(draw) -> tuple[dnswire.Query, bytes]:
    name, qtype, qclass = draw(
        st.sampled_from([QUESTION, ("whoami.cloudflare", TYPE_TXT, CLASS_CH)])
    )
    query = dnswire.make_query(name, qtype, qclass, qid=draw(st.integers(0, 0xFFFF)))
    rcode = draw(st.sampled_from([0, 0, 0, 2, 3, 5]))
    return query, reply_for(query, draw(st.lists(rrsets(), max_size=6)), rcode)


@st.composite
def mutated_replies(draw) -> tuple[dnswire.Query, bytes]:
    """A valid reply, then bytes flipped, cut, added, or compression pointers planted."""
    query, wire = draw(valid_replies())
    data = bytearray(wire)
    for _ in range(draw(st.integers(1, 6))):
        how = draw(st.sampled_from(["flip", "truncate", "extend", "pointer", "count", "length"]))
        if how == "flip" and data:
            i = draw(st.integers(0, len(data) - 1))
            data[i] = draw(st.integers(0, 255))
        elif how == "truncate":
            del data[draw(st.integers(0, len(data))) :]
        elif how == "extend":
            data += draw(st.binary(min_size=1, max_size=64))
        elif how == "pointer" and len(data) > 13:
            i = draw(st.integers(12, len(data) - 2))
            target = draw(st.integers(0, 0x3FFF) | st.integers(max(i - 4, 0), i + 4))
            struct.pack_into("!H", data, i, 0xC000 | (target & 0x3FFF))
        elif how == "count" and len(data) >= 12:
            struct.pack_into(
                "!H", data, draw(st.sampled_from([4, 6, 8, 10])), draw(st.integers(0, 0xFFFF))
            )
        elif how == "length" and len(data) > 13:
            i = draw(st.integers(12, len(data) - 2))
            struct.pack_into("!H", data, i, draw(st.integers(0, 0xFFFF)))
    return query, bytes(data)


@st.composite
def header_and_junk(draw) -> tuple[dnswire.Query, bytes]:
    """Our ID and QR (so parsing goes past the header), then anything."""
    query = dnswire.make_query(*QUESTION, qid=0x1234)
    flags = draw(st.integers(0, 0xFFFF)) | 0x8000
    counts = draw(st.tuples(*[st.integers(0, 3) | st.integers(0, 0xFFFF)] * 4))
    return query, struct.pack("!6H", 0x1234, flags & ~0x7800, *counts) + draw(
        st.binary(max_size=600)
    )


def check_reply(query: dnswire.Query, packet: bytes) -> str:
    start = time.perf_counter()
    try:
        response = dnswire.parse_response(packet, query)
    except DNSError as exc:
        outcome = "DNSError" if exc.rcode is None else f"DNSError rcode {exc.rcode}"
        assert len(str(exc)) <= 2000
        assert str(exc).isprintable()
    else:
        count = len(response.answers)
        outcome = f"parsed, {'3 or more' if count > 2 else count} records"
        for record in response.answers:
            name = record.name
            assert name.isascii() and name.isprintable() and name == name.lower()
            assert "\\" not in name
            assert all(0 < len(label) <= 63 for label in name.split(".")) or name == "."
            if record.rtype == TYPE_A:
                assert str(ipaddress.IPv4Address(record.value)) == record.value
            elif record.rtype == TYPE_TXT:
                assert b"".join(record.strings).decode("utf-8", "backslashreplace") == record.value
    elapsed = time.perf_counter() - start
    assert elapsed < PARSE_BOUND, f"{elapsed:.3f} s to parse {len(packet)} octets"
    return outcome


@FUZZ
@given(reply=valid_replies())
def test_dns_valid_replies(reply):
    query, packet = reply
    event(f"valid reply: {check_reply(query, packet)}")


@FUZZ
@given(reply=mutated_replies())
def test_dns_mutated_replies(reply):
    event(f"mutated reply: {check_reply(*reply)}")


@FUZZ
@given(reply=header_and_junk())
def test_dns_header_then_junk(reply):
    event(f"header + junk: {check_reply(*reply)}")


@FUZZ
@given(packet=st.binary(max_size=600), qid=st.integers(0, 0xFFFF))
def test_dns_any_bytes(packet, qid):
    query = dnswire.make_query(*QUESTION, qid=qid)
    event(f"any bytes: {check_reply(query, packet)}")


@FUZZ
@given(labels=st.lists(LABEL, min_size=1, max_size=3))
def test_dns_owner_names_are_host_names_or_refused(labels):
    """An owner name is read as it is when every octet is printable ASCII but the dot and the
    backslash; any other octet refuses the reply (it could not be shown without escaping)."""
    query = dnswire.make_query(*QUESTION, qid=7)
    owner = dns.name.Name([*labels, b""])
    rrset = dns.rrset.from_rdata(owner, 60, dns.rdata.from_text("IN", "A", "192.0.2.1"))
    packet = reply_for(query, [rrset])
    plain = all(0x21 <= c <= 0x7E and c not in b".\\" for label in labels for c in label)
    if not plain:
        with pytest.raises(DNSError, match="octets a host name cannot hold"):
            dnswire.parse_response(packet, query)
        return
    (record,) = dnswire.parse_response(packet, query).answers
    assert record.name == b".".join(labels).decode("ascii").lower()


def test_dns_worst_case_reply_is_fast():
    """65,535 answers claimed, a 64 KiB datagram of pointers: still bounded."""
    query = dnswire.make_query(*QUESTION, qid=1)
    head = reply_for(query, [])
    data = bytearray(head)
    struct.pack_into("!H", data, 6, 0xFFFF)
    record = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + b"\x7f\0\0\x01"
    data += record * ((65535 - len(data)) // len(record))
    start = time.perf_counter()
    with pytest.raises(DNSError, match="truncated"):
        dnswire.parse_response(bytes(data), query)
    assert time.perf_counter() - start < 2.0  # ~10 ms quiet; a loop would never end


# -- the probe's reading of a reply -------------------------------------------------------------


@st.composite
def probe_replies(draw) -> tuple[str, list]:
    """A reply to the probe's question: answers by the right owner, some other, many, odd."""
    kind = draw(st.sampled_from(["cloudflare", "opendns"]))
    name, _qtype, qclass = probe.KINDS[kind]
    owner = dns.name.from_text(name)
    values = draw(
        st.lists(
            st.one_of(
                IPV4,
                ODD_ADDRESS,
                st.text(max_size=30),
                st.sampled_from(["203.0.113.7\n<3>forged log line", "\x1b[2J", "9" * 300]),
            ),
            max_size=draw(st.sampled_from([3, 200])),
        )
    )
    answers = []
    for value in values:
        if kind == "cloudflare":
            data = value.encode("utf-8", "replace")
            chunks = [data[i : i + 255] for i in range(0, len(data), 255)] or [b""]
            rdata = TXT(qclass, dns.rdatatype.TXT, chunks)
        else:
            try:
                rdata = A(qclass, dns.rdatatype.A, value.strip())
            except (ValueError, dns.exception.SyntaxError):
                continue
        answers.append(dns.rrset.from_rdata(owner, 60, rdata))
    answers += draw(st.lists(rrsets(), max_size=2))
    return kind, answers


@FUZZ
@given(reply=probe_replies())
def test_probe_reads_only_one_ipv4_address(reply, monkeypatch_session):
    kind, answers = reply
    target = ProbeTarget(kind, "127.0.0.1", 53)
    seen: dict[str, bytes] = {}

    def fake_query(name, qtype, server, port, *, qclass, timeout):
        q = dnswire.make_query(name, qtype, qclass, qid=99)
        seen["packet"] = reply_for(q, answers)
        return dnswire.parse_response(seen["packet"], q)

    monkeypatch_session.setattr(probe, "query", fake_query)
    try:
        address = probe.ask(target)
    except DNSError as exc:
        one_short_line(str(exc))
        event(f"probe: DNSError {str(exc).split(' ')[0]}")  # "no", "several", "answer"
        return
    assert str(ipaddress.IPv4Address(address)) == address
    assert (
        address.encode() in seen["packet"]
        or ipaddress.IPv4Address(address).packed in seen["packet"]
    )
    event("probe: an address")


@pytest.fixture(scope="module")
def monkeypatch_session():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def test_probe_error_is_one_bounded_line(monkeypatch):
    """A hostile server's TXT values (newlines, 200 of them) make one short log line."""
    owner = dns.name.from_text("whoami.cloudflare")
    values = [f"203.0.113.{i}\n<3>forged line {i}".encode() * 7 for i in range(200)]
    answers = [dns.rrset.from_rdata(owner, 60, TXT(CLASS_CH, TYPE_TXT, [v])) for v in values]

    def fake_query(name, qtype, server, port, *, qclass, timeout):
        q = dnswire.make_query(name, qtype, qclass, qid=5)
        return dnswire.parse_response(reply_for(q, answers), q)

    monkeypatch.setattr(probe, "query", fake_query)
    with pytest.raises(DNSError) as caught:
        probe.ask(ProbeTarget("cloudflare", "127.0.0.1", 53))
    one_short_line(str(caught.value))
    assert "several answers" in str(caught.value) and "197 more" in str(caught.value)
