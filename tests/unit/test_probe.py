"""duckdns.probe: the probe setting and the "what is my IPv4 address" signal.

Every query goes to the loopback test DNS server; nothing leaves the machine.
"""

import socket
import subprocess
import time
from pathlib import Path

import pytest
from support.dnsserver import DNSServer

from duckdns.config import DEFAULT_PROBE, PROBE_KINDS, ProbeTarget, parse_probe
from duckdns.dnswire import DNSError
from duckdns.probe import KINDS, ask, public_ipv4

LOCAL = "127.0.0.1"
ROOT = Path(__file__).resolve().parents[2]
WHOAMI = "whoami.cloudflare:CH:TXT:203.0.113.7"
MYIP = "myip.opendns.com:A:203.0.113.7"


def target(kind: str, dns: DNSServer) -> ProbeTarget:
    return ProbeTarget(kind, LOCAL, dns.port)


# -- the probe setting -----------------------------------------------------------------------


def test_default_tries_each_providers_second_address_before_the_next_provider():
    assert [str(t) for t in parse_probe(DEFAULT_PROBE)] == [
        "cloudflare@1.1.1.1",
        "cloudflare@1.0.0.1",
        "opendns@208.67.222.222",
        "opendns@208.67.220.220",
    ]


@pytest.mark.parametrize("spec", ["off", " OFF ", "Off"])
def test_off(spec):
    assert parse_probe(spec) == []


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("cloudflare@127.0.0.1:5353", [("cloudflare", "127.0.0.1", 5353)]),
        (
            "cloudflare@1.0.0.1:53,opendns@208.67.222.222:5353",
            [("cloudflare", "1.0.0.1", 53), ("opendns", "208.67.222.222", 5353)],
        ),
        (
            "  CloudFlare@1.1.1.1 ,  opendns@1.1.1.1  ",
            [("cloudflare", "1.1.1.1", 53), ("opendns", "1.1.1.1", 53)],
        ),
        ("opendns@1.1.1.1, opendns@1.1.1.1", [("opendns", "1.1.1.1", 53)] * 2),
    ],
)
def test_parse(spec, expected):
    assert [(t.kind, t.address, t.port) for t in parse_probe(spec)] == expected


def test_str_round_trips():
    spec = "cloudflare@127.0.0.2:5353, opendns@127.0.0.1, cloudflare@127.0.0.1:53"
    targets = parse_probe(spec)
    assert [str(t) for t in targets] == [
        "cloudflare@127.0.0.2:5353",
        "opendns@127.0.0.1",
        "cloudflare@127.0.0.1",
    ]
    assert parse_probe(", ".join(map(str, targets))) == targets


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "probe is empty"),
        ("   ", "probe is empty"),
        ("cloudflare", "probe entry 'cloudflare': missing '@ADDRESS'"),
        ("google@8.8.8.8", "probe entry 'google@8.8.8.8': unknown kind 'google'"),
        ("@1.1.1.1", "unknown kind ''"),
        ("cloudflare@", "probe entry 'cloudflare@': '': no address"),
        ("cloudflare@one.one.one.one", "'one.one.one.one' is not an IP address"),
        ("cloudflare@1.1.1", "'1.1.1' is not an IP address"),
        ("cloudflare@1.1.1.1:0", "port '0' is out of range"),
        ("cloudflare@1.1.1.1:65536", "port '65536' is out of range"),
        ("cloudflare@1.1.1.1:dns", "port 'dns' is not a number"),
        ("cloudflare@2606:4700:4700::1111", "an IPv6 probe address can never"),
        ("cloudflare@[2606:4700:4700::1111", "an IPv6 probe address can never"),
        ("cloudflare@[1.1.1.1]", "an IPv6 probe address can never"),
        ("cloudflare@1.1.1.1,", "empty entry"),
        ("cloudflare@1.1.1.1,,opendns@208.67.222.222", "empty entry"),
        ("off, cloudflare@1.1.1.1", "'off' must stand alone"),
        ("cloudflare@1.1.1.1 opendns@208.67.222.222", "is not an IP address"),
    ],
)
def test_parse_rejects(spec, message):
    with pytest.raises(ValueError, match=message) as e:
        parse_probe(spec)
    text = str(e.value)
    # The message shows the accepted form (or, for a port, the accepted range).
    assert "KIND@ADDRESS[:PORT]" in text or "ADDRESS[:PORT]" in text or "1-65535" in text


def test_target_kind_is_checked():
    with pytest.raises(ValueError, match="unknown probe kind"):
        ProbeTarget("google", "8.8.8.8")
    assert set(KINDS) == set(PROBE_KINDS) - {"router"} == {"cloudflare", "opendns"}


# -- asking ------------------------------------------------------------------------------------


def test_cloudflare_asks_txt_class_ch():
    with DNSServer([WHOAMI]) as dns:
        assert ask(target("cloudflare", dns)) == "203.0.113.7"
    assert [(q.name, q.rclass, q.rtype) for q in dns.queries] == [
        ("whoami.cloudflare", "CH", "TXT")
    ]


def test_opendns_asks_a():
    with DNSServer([MYIP]) as dns:
        assert ask(target("opendns", dns)) == "203.0.113.7"
    assert [(q.name, q.rclass, q.rtype) for q in dns.queries] == [("myip.opendns.com", "IN", "A")]


@pytest.mark.parametrize(
    ("records", "message"),
    [
        (["whoami.cloudflare:CH:TXT:not-an-address"], "'not-an-address' is not an IPv4 address"),
        (["whoami.cloudflare:CH:TXT:2001:db8::7"], "is not an IPv4 address"),
        (["whoami.cloudflare:CH:TXT:203.0.113.007"], "is not an IPv4 address"),
        (["whoami.cloudflare:CH:TXT:203.0.113.256"], "is not an IPv4 address"),
        (["whoami.cloudflare:CH:TXT: 203.0.113.7"], "is not an IPv4 address"),
        (["whoami.cloudflare:CH:TXT:" + "9" * 300], r"'9{64}\.\.\.' is not an IPv4"),
        (["whoami.cloudflare:IN:TXT:203.0.113.7"], "no answer"),  # class IN: not ours
        (["whoami.cloudflare:CH:A:203.0.113.7"], "no answer for whoami.cloudflare"),
        (
            ["whoami.cloudflare:CH:TXT:203.0.113.7", "whoami.cloudflare:CH:TXT:203.0.113.8"],
            "several answers",
        ),
    ],
)
def test_bad_answers_fail(records, message):
    with DNSServer(records) as dns, pytest.raises(DNSError, match=message):
        ask(target("cloudflare", dns))


def test_a_cname_is_not_followed_by_the_probe():
    records = ["myip.opendns.com:CNAME:elsewhere.example", "elsewhere.example:A:203.0.113.9"]
    with DNSServer(records) as dns, pytest.raises(DNSError, match="no answer"):
        ask(target("opendns", dns))


def test_identical_duplicates_are_fine():
    with DNSServer([MYIP, MYIP]) as dns:
        assert ask(target("opendns", dns)) == "203.0.113.7"


# -- public_ipv4: in order, first valid answer wins, None when all fail ----------------------


def test_first_target_wins():
    with DNSServer([WHOAMI]) as first, DNSServer(["myip.opendns.com:A:198.51.100.1"]) as second:
        assert (
            public_ipv4([target("cloudflare", first), target("opendns", second)]).address
            == "203.0.113.7"
        )
    assert len(first.queries) == 1
    assert second.queries == []  # never asked


def test_silent_first_falls_back():
    with (
        DNSServer([WHOAMI], behaviour="silent") as first,
        DNSServer(["myip.opendns.com:A:198.51.100.1"]) as second,
    ):
        start = time.monotonic()
        got = public_ipv4(
            [target("cloudflare", first), target("opendns", second)], timeout=0.3
        ).address
        elapsed = time.monotonic() - start
    assert got == "198.51.100.1"
    assert 0.28 <= elapsed < 0.8
    assert (len(first.queries), len(second.queries)) == (1, 1)


@pytest.mark.parametrize(
    "behaviour",
    ["garbage", "runt", "wrong-id", "wrong-name", "truncated", "servfail", "nxdomain", "refused"],
)
def test_misbehaving_first_falls_back(behaviour):
    with DNSServer([WHOAMI], behaviour=behaviour) as first, DNSServer([MYIP]) as second:
        got = public_ipv4([target("cloudflare", first), target("opendns", second)]).address
    assert got == "203.0.113.7"
    assert len(second.queries) == 1


def test_garbage_answer_text_falls_back():
    with (
        DNSServer(["whoami.cloudflare:CH:TXT:<html>captive portal</html>"]) as first,
        DNSServer([MYIP]) as second,
    ):
        got = public_ipv4([target("cloudflare", first), target("opendns", second)]).address
    assert got == "203.0.113.7"


def test_a_lie_is_returned_as_is():
    # A lying resolver (an ISP that intercepts DNS) gives a valid address: the probe cannot
    # tell. The self-check after each real update (compare with DuckDNS's view) catches it.
    with DNSServer([WHOAMI], behaviour="lie") as dns:
        assert public_ipv4([target("cloudflare", dns)]).address == "198.51.100.66"


def test_all_fail_gives_none_and_reports_each():
    with (
        DNSServer([WHOAMI], behaviour="servfail") as first,
        DNSServer([MYIP], behaviour="garbage") as second,
        DNSServer(["whoami.cloudflare:CH:TXT:nonsense"]) as third,
    ):
        targets = [
            target("cloudflare", first),
            target("opendns", second),
            target("cloudflare", third),
        ]
        got, found_failures, router_answer = public_ipv4(targets)
    failures = [(str(t), why) for t, why in found_failures]
    assert got is None and router_answer is None
    assert [t for t, _ in failures] == [str(t) for t in targets]
    assert "SERVFAIL" in failures[0][1]
    assert "malformed reply" in failures[1][1]
    assert "not an IPv4 address" in failures[2][1]


def test_no_targets_gives_none():
    assert public_ipv4([]).address is None
    assert public_ipv4(parse_probe("off")).address is None


def test_closed_port_gives_none_quickly():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((LOCAL, 0))
        port = s.getsockname()[1]
    start = time.monotonic()
    assert public_ipv4([ProbeTarget("cloudflare", LOCAL, port)]).address is None
    assert time.monotonic() - start < 0.5


def test_default_timeout_bounds_each_target():
    with DNSServer([WHOAMI], behaviour="silent") as dns:
        start = time.monotonic()
        assert public_ipv4([target("cloudflare", dns)]).address is None
        elapsed = time.monotonic() - start
    assert 0.98 <= elapsed < 1.5


def test_late_answer_is_ignored():
    with DNSServer([WHOAMI]) as dns:
        dns.delay = 0.5
        start = time.monotonic()
        assert public_ipv4([target("cloudflare", dns)], timeout=0.2).address is None
        assert time.monotonic() - start < 0.45


@pytest.mark.parametrize(
    "spec", ["cloudflare@[2606:4700:4700::1111]", "opendns@[2620:119:35::35]:53", "opendns@[::1]"]
)
def test_ipv6_addresses_are_refused_with_the_reason_and_the_fix(spec):
    # Cloudflare answers the IPv6 address a query came from, OpenDNS NXDOMAIN for A over IPv6
    # (docs/duckdns-api.md): such a probe could never say anything about IPv4.
    with pytest.raises(ValueError, match="can never tell the public IPv4 address") as e:
        parse_probe(f"cloudflare@1.1.1.1, {spec}")
    assert "cloudflare@1.1.1.1" in str(e.value) and spec in str(e.value)


# -- cheap to import (the point of the probe) ---------------------------------------------


def test_import_is_light():
    code = (
        "import sys; import duckdns.probe; "
        "heavy = {'requests', 'ssl', 'urllib3', 'http.client', 'secrets', 'random', 'hashlib',"
        " 'dataclasses', 'typing', 'json', 'logging', 'dns', 'socket',"
        " 'selectors'}; "
        "print(sorted(heavy & set(sys.modules)))"
    )
    out = subprocess.run(
        [
            "/usr/bin/python3",
            "-I",
            "-S",
            "-c",
            f"import sys; sys.path.insert(0, {str(ROOT)!r}); {code}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip() == "[]", f"duckdns.probe pulls in {out.strip()}"
