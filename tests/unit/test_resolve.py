"""duckdns.resolve (used by `duckdns verify` and the ACME hooks) against the loopback test DNS
server, and the system resolver's address from resolv.conf."""

import struct

import pytest
from dnsserver import DNSServer

from duckdns.dnswire import DNSError
from duckdns.resolve import first_nameserver, resolve_chain

LOCAL = "127.0.0.1"
CHAIN = [
    "cloud.example.com:CNAME:piserver.example.com",
    "piserver.example.com:CNAME:example.duckdns.org",
    "example.duckdns.org:A:203.0.113.7",
    "example.duckdns.org:AAAA:2001:db8::7",
]


def asked(dns: DNSServer) -> list[tuple[str, str]]:
    return [(q.name, q.rtype) for q in dns.queries]


@pytest.mark.parametrize("follow", [True, False], ids=["resolver", "authoritative"])
def test_chain_to_addresses(follow):
    with DNSServer(CHAIN, follow_cnames=follow) as dns:
        r = resolve_chain("cloud.example.com", LOCAL, dns.port)
    assert r.name == "cloud.example.com"
    assert r.chain == ("piserver.example.com", "example.duckdns.org")
    assert r.canonical == "example.duckdns.org"
    assert r.ipv4 == ("203.0.113.7",)
    assert r.ipv6 == ("2001:db8::7",)
    if follow:
        # The resolver returns the whole chain: one question per family.
        assert asked(dns) == [("cloud.example.com", "A"), ("example.duckdns.org", "AAAA")]
    else:
        # The server stops at each CNAME: ask again for each target.
        assert asked(dns) == [
            ("cloud.example.com", "A"),
            ("piserver.example.com", "A"),
            ("example.duckdns.org", "A"),
            ("example.duckdns.org", "AAAA"),
        ]


def test_name_without_cname():
    with DNSServer(CHAIN) as dns:
        r = resolve_chain("Example.DuckDNS.org.", LOCAL, dns.port)
    assert (r.name, r.chain, r.canonical) == ("example.duckdns.org", (), "example.duckdns.org")
    assert (r.ipv4, r.ipv6) == (("203.0.113.7",), ("2001:db8::7",))


def test_missing_family_is_empty():
    with DNSServer(["v4only.example:A:192.0.2.1", "txtonly.example:TXT:x"]) as dns:
        r = resolve_chain("v4only.example", LOCAL, dns.port)
        assert (r.ipv4, r.ipv6) == (("192.0.2.1",), ())
        r = resolve_chain("txtonly.example", LOCAL, dns.port)
        assert (r.ipv4, r.ipv6) == ((), ())


def test_several_addresses_keep_their_order_without_duplicates():
    records = [f"multi.example:A:192.0.2.{i}" for i in (3, 1, 2, 1)]
    with DNSServer(records) as dns:
        assert resolve_chain("multi.example", LOCAL, dns.port).ipv4 == (
            "192.0.2.3",
            "192.0.2.1",
            "192.0.2.2",
        )


def test_chain_case_is_normalised():
    with DNSServer(["a.example:CNAME:B.Example.", "b.example:A:192.0.2.1"]) as dns:
        r = resolve_chain("A.EXAMPLE", LOCAL, dns.port)
    assert (r.chain, r.ipv4) == (("b.example",), ("192.0.2.1",))


@pytest.mark.parametrize("follow", [True, False], ids=["in-one-answer", "across-queries"])
def test_cname_loop(follow):
    records = [
        "a.example:CNAME:b.example",
        "b.example:CNAME:c.example",
        "c.example:CNAME:a.example",
    ]
    with (
        DNSServer(records, follow_cnames=follow) as dns,
        pytest.raises(
            DNSError, match="CNAME loop: a.example -> b.example -> c.example -> a.example"
        ),
    ):
        resolve_chain("a.example", LOCAL, dns.port)
    assert len(dns.queries) <= 3


def test_self_loop():
    with DNSServer(["a.example:CNAME:a.example"]) as dns, pytest.raises(DNSError, match="loop"):
        resolve_chain("a.example", LOCAL, dns.port)


def long_chain(hops: int) -> list[str]:
    records = [f"h{i}.example:CNAME:h{i + 1}.example" for i in range(hops)]
    return [*records, f"h{hops}.example:A:192.0.2.1"]


@pytest.mark.parametrize("follow", [True, False])
def test_hop_limit(follow):
    with DNSServer(long_chain(10), follow_cnames=follow) as dns:
        r = resolve_chain("h0.example", LOCAL, dns.port)
        assert len(r.chain) == 10
        assert r.ipv4 == ("192.0.2.1",)
    with (
        DNSServer(long_chain(11), follow_cnames=follow) as dns,
        pytest.raises(DNSError, match="CNAME chain from h0.example longer than 10 hops"),
    ):
        resolve_chain("h0.example", LOCAL, dns.port)
    assert len(dns.queries) <= 11


def test_hop_limit_is_a_parameter():
    with DNSServer(long_chain(3)) as dns, pytest.raises(DNSError, match="longer than 2 hops"):
        resolve_chain("h0.example", LOCAL, dns.port, max_hops=2)


def test_nxdomain():
    with DNSServer(CHAIN) as dns, pytest.raises(DNSError, match="NXDOMAIN") as e:
        resolve_chain("nothing.example.com", LOCAL, dns.port)
    assert e.value.rcode == 3


@pytest.mark.parametrize("follow", [True, False], ids=["resolver", "authoritative"])
def test_dangling_cname_reports_the_chain(follow):
    records = [
        "cloud.example.com:CNAME:piserver.example.com",
        "piserver.example.com:CNAME:gone.org",
    ]
    chain = "cloud.example.com -> piserver.example.com -> gone.org"
    with (
        DNSServer(records, follow_cnames=follow) as dns,
        pytest.raises(DNSError, match=f"{chain}: server answered NXDOMAIN") as e,
    ):
        resolve_chain("cloud.example.com", LOCAL, dns.port)
    assert e.value.rcode == 3


def test_server_failure_mid_chain_reports_the_chain():
    with DNSServer(CHAIN, follow_cnames=False) as dns:

        def responder(packet: bytes) -> bytes | None:
            if len(dns.queries) > 1:
                dns.behaviour = "servfail"
            return dns.answer(packet)

        dns.responder = responder
        with pytest.raises(
            DNSError,
            match="cloud.example.com -> piserver.example.com: server answered SERVFAIL "
            "for piserver.example.com IN A",
        ) as e:
            resolve_chain("cloud.example.com", LOCAL, dns.port)
    assert e.value.rcode == 2


def test_records_for_other_names_are_ignored():
    # A reply carrying an extra A record for a name we did not ask about: not ours.
    with DNSServer(["www.example.org:A:192.0.2.1"]) as dns:

        def responder(packet: bytes) -> bytes:
            head = bytearray(packet[:12])
            struct.pack_into("!H", head, 2, 0x8180)
            struct.pack_into("!H", head, 6, 1)
            rr = b"\x04evil\x00" + struct.pack("!HHIH", 1, 1, 60, 4) + bytes([198, 51, 100, 1])
            return bytes(head) + packet[12:] + rr

        dns.responder = responder
        r = resolve_chain("www.example.org", LOCAL, dns.port)
    assert (r.chain, r.ipv4, r.ipv6) == ((), (), ())


def test_silent_server_times_out():
    with DNSServer(CHAIN, behaviour="silent") as dns, pytest.raises(DNSError, match="no reply"):
        resolve_chain("cloud.example.com", LOCAL, dns.port, timeout=0.2)


def test_first_nameserver(tmp_path):
    conf = tmp_path / "resolv.conf"
    conf.write_text(
        "# generated\n; comment\nsearch example.org\noptions edns0\n"
        "nameserver\nnameserver not-an-address\nnameserver 192.0.2.53\nnameserver 192.0.2.54\n"
    )
    assert first_nameserver(str(conf)) == "192.0.2.53"
    conf.write_text("nameserver 2001:db8::53\n")
    assert first_nameserver(str(conf)) == "2001:db8::53"
    conf.write_text("search example.org\n")
    assert first_nameserver(str(conf)) is None
    assert first_nameserver(str(tmp_path / "missing")) is None
