"""duckdns.acme below the hooks: finding DuckDNS's name servers, asking several, CNAMEs.

The name servers are loopback look-alikes (tests/support/dnsserver.py): a resolver that knows the
NS records of duckdns.org and their addresses, and authoritative servers on 127.0.0.x, all
on one port, as real name servers all listen on 53. test_acme_hooks.py runs the same code
end to end through the certbot hooks.
"""

from __future__ import annotations

import time

import pytest
from support.dnsserver import DNSServer, LaggingZone
from support.helpers import CANARY

from duckdns import acme
from duckdns.config import ConfigError

VALUE = "gYvyuKSEz-Sa58khnK9KUc0MUu3C5WDf_7qRDwlDAcM"
OWNER = "_acme-challenge.piserver.duckdns.org"


@pytest.fixture
def txt() -> dict[str, str]:
    """The TXT values "DuckDNS" holds; the tests change them as a set request would."""
    return {"piserver": "old", "cloud": ""}


@pytest.fixture
def authoritative(txt):
    """DuckDNS's name servers: 127.0.0.1 at once, 127.0.0.2 3 s late, 127.0.0.3 silent."""
    zones = [LaggingZone("duckdns.org", lambda: txt, delay=d) for d in (0, 3, 0)]
    first = DNSServer(zones=[zones[0]]).start()
    servers = [first]
    try:
        for host, zone in (("127.0.0.2", zones[1]), ("127.0.0.3", zones[2])):
            servers.append(DNSServer(host=host, port=first.port, zones=[zone]).start())
        servers[2].behaviour = "silent"
        yield servers
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
def resolver(authoritative):
    """The system resolver: it knows where duckdns.org's name servers are."""
    records = [
        "duckdns.org:NS:ns1.duckdns.org",
        "duckdns.org:NS:ns2.duckdns.org",
        "duckdns.org:NS:ns3.duckdns.org",
        "ns1.duckdns.org:A:127.0.0.1",
        "ns2.duckdns.org:A:127.0.0.2",
        "ns3.duckdns.org:A:127.0.0.3",
        "ns3.duckdns.org:AAAA:::1",
    ]
    with DNSServer(records) as srv:
        yield srv


def test_the_name_servers_are_the_ns_records_of_duckdns_org(resolver, authoritative):
    port = authoritative[0].port
    found = acme.nameservers(resolver.address, port=port)
    assert found == [
        ("127.0.0.1", port),
        ("127.0.0.2", port),
        ("127.0.0.3", port),
        ("::1", port),
    ]
    assert [(q.name, q.rtype) for q in resolver.queries][0] == ("duckdns.org", "NS")


def test_no_ns_records_is_an_error_naming_the_resolver():
    message = "no NS records for duckdns.org at 127.0.0.1"
    with (
        DNSServer(["duckdns.org:A:192.0.2.1"]) as empty,
        pytest.raises(acme.LookupFailed, match=message),
    ):
        acme.nameservers(empty.address)


def test_waits_until_every_server_that_answers_serves_the_value(
    resolver, authoritative, txt, capsys
):
    txt["piserver"] = VALUE
    start = time.monotonic()
    served = acme.wait(VALUE, [OWNER], None, resolver.address, 20, port=authoritative[0].port)
    elapsed = time.monotonic() - start
    assert served
    # 127.0.0.1 serves it at once, 127.0.0.2 only after 3 s; 127.0.0.3 never answers.
    assert 3 <= elapsed < 3 + 2 + 2 + 1, elapsed
    assert "2 of 4 name servers answered, all with it" in capsys.readouterr().err
    first, second, silent = ([q for q in s.queries if q.name == OWNER] for s in authoritative)
    assert len(first) == len(second) == len(silent) >= 2, "every server is asked each round"


def test_a_value_never_served_is_a_warning_at_the_limit(resolver, authoritative, capsys):
    start = time.monotonic()
    served = acme.wait(VALUE, [OWNER], None, resolver.address, 2, port=authoritative[0].port)
    assert not served
    assert 2 <= time.monotonic() - start < 4
    err = capsys.readouterr().err
    assert f"warning: the new TXT value of {OWNER} is not yet served after 2 s" in err
    assert "2 of 2 answering name servers serve another value" in err


def test_name_servers_that_cannot_be_found_are_looked_for_again(capsys):
    with DNSServer(behaviour="silent") as dead:
        served = acme.wait(VALUE, [OWNER], None, dead.address, 3)
    assert not served
    assert len(dead.queries) >= 2, "asked again each round"
    assert "cannot find the name servers of duckdns.org" in capsys.readouterr().err


# -- which DuckDNS name answers -------------------------------------------------------------------


class Cfg:
    domains = ("piserver", "cloud")
    path = "/etc/duckdns.conf"


@pytest.mark.parametrize(
    "domain, subname, owner",
    [
        ("piserver.duckdns.org.", "piserver", OWNER),
        ("*.www.cloud.duckdns.org", "cloud", "_acme-challenge.www.cloud.duckdns.org"),
    ],
)
def test_duckdns_names_need_no_question(domain, subname, owner):
    with DNSServer() as dns:
        target = acme.target_for(domain, Cfg, dns.address)
        assert dns.queries == []
    assert (target.subname, target.owner) == (subname, owner)


def test_a_cname_chain_is_followed_at_an_authoritative_server():
    """Not a resolver: each answer stops at the CNAME, and the client asks again."""
    records = [
        "_acme-challenge.a.example.com:CNAME:b.example.com",
        "b.example.com:CNAME:_acme-challenge.cloud.duckdns.org",
    ]
    with DNSServer(records, follow_cnames=False) as dns:
        target = acme.target_for("a.example.com", Cfg, dns.address)
    assert target.subname == "cloud"
    assert target.chain == ("b.example.com", "_acme-challenge.cloud.duckdns.org")
    # It stops at duckdns.org: that name is DuckDNS's business (and NXDOMAIN here).
    assert [q.name for q in dns.queries] == ["_acme-challenge.a.example.com", "b.example.com"]


def test_a_cname_loop_is_a_lookup_failure():
    records = [
        "_acme-challenge.a.example.com:CNAME:b.example.com",
        "b.example.com:CNAME:_acme-challenge.a.example.com",
    ]
    with (
        DNSServer(records, follow_cnames=False) as dns,
        pytest.raises(acme.LookupFailed, match="CNAME loop"),
    ):
        acme.target_for("a.example.com", Cfg, dns.address)


def test_a_cname_to_duckdns_org_itself_is_refused():
    with (
        DNSServer(["_acme-challenge.a.example.com:CNAME:duckdns.org"]) as dns,
        pytest.raises(ConfigError, match="is not a CNAME to one"),
    ):
        acme.target_for("a.example.com", Cfg, dns.address)


# -- the command ----------------------------------------------------------------------------------


def test_txt_wait_by_hand_for_the_configured_names(runner, duck, conf):
    cfg = conf(domains="piserver, cloud")
    zone = LaggingZone(
        "duckdns.org",
        lambda: {n: duck.records.get(n, {}).get("txt", "") for n in ("piserver", "cloud")},
    )
    with DNSServer(zones=[zone]) as dns:
        ns = "{}:{}".format(*dns.address)
        assert runner(cfg, process=True)("txt", "set", VALUE).returncode == 0
        proc = runner(cfg, process=True)("txt", "wait", "--nameserver", ns, VALUE)
    assert proc.returncode == 0, proc.stderr
    assert "_acme-challenge.piserver.duckdns.org, _acme-challenge.cloud.duckdns.org: " in (
        proc.stderr
    )
    assert "the new TXT value is served after" in proc.stderr
    assert len(duck.requests) == 1, "waiting sends nothing to DuckDNS"
    assert CANARY not in proc.stderr


def test_what_name_servers_serve_is_shown_escaped_and_cut(runner, conf):
    """A name server's TXT values are its own text: at -vv they are shown made safe (report.safe),
    a few of them, each cut, never a forged line."""
    from support.display import assert_displayable

    hostile = "x\n<3>FAKE ERROR\x1b[2J\u202e" + "y" * 3000
    zone = LaggingZone("duckdns.org", lambda: {"piserver": hostile})
    with DNSServer(zones=[zone]) as srv:
        host, port = srv.address
        cfg = conf()
        proc = runner(cfg, process=True)("-vv", "txt", "wait", "--nameserver", f"{host}:{port}",
            "--timeout=1", "--", VALUE,
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert_displayable(proc.stdout, proc.stderr, where="output of txt wait -vv")
    assert "TXT ['x\\n<3>FAKE ERROR\\x1b[2J\\u202e" in proc.stderr, proc.stderr
    assert "more characters]" in proc.stderr
    assert max(len(line) for line in proc.stderr.splitlines()) < 400
