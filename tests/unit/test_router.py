"""``probe = router`` and the reachability verdict, against a responder written from RFC 6886
(NAT-PMP) and RFC 6887 (PCP), tests/support/natpmp_responder.py, in every way it can answer.

The router's answers decide only whether to update (never what), and only with a global
address; everything else is "cannot decide" and the next probe target is asked. Every
exchange ends within router.TIMEOUT whatever the responder does.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest
from support.helpers import (
    CANARY,
    CLEAN_ENV,
    DEBIAN_PYTHON,
    ROOT,
    assert_no_canary,
    skip_or_fail,
    state_of,
)
from support.natpmp_responder import Responder
from support.upnp_device import ENCODINGS, IGD, SSDP

from duckdns import config, router, upnp

# A global address (an example of one; nothing is sent beyond the loopback). The project's
# other tests use 203.0.113.7 (TEST-NET-3), which is rightly not global for a router.
GLOBAL = "81.2.69.160"
GLOBAL2 = "81.2.69.161"
CGNAT = "100.64.12.34"
PRIVATE = "192.168.0.20"


def ask(mode: str, external: str = GLOBAL) -> tuple[router.Answer, float]:
    with Responder(mode, external) as r:
        start = time.monotonic()
        answer = router.ask(*r.address)
        return answer, time.monotonic() - start


# -- the wire: each rule of the RFCs -------------------------------------------------------------


def test_natpmp_request_is_version_0_opcode_0():
    assert router.natpmp_request() == b"\x00\x00"  # RFC 6886 section 3.2


def test_pcp_request_is_a_map_deletion_of_our_own_port():
    nonce = bytes(range(12))
    wire = router.pcp_request("192.168.1.5", 40000, nonce)
    assert len(wire) == 60  # RFC 6887 sections 7.1 (24) and 11.1 (36)
    assert wire[:2] == b"\x02\x01"  # version 2, R=0, opcode MAP
    assert wire[4:8] == b"\0\0\0\0"  # Requested Lifetime 0: a deletion (section 15)
    assert wire[8:24] == b"\0" * 10 + b"\xff\xff" + bytes((192, 168, 1, 5))  # section 5
    assert wire[24:36] == nonce and wire[36] == 17  # UDP
    assert wire[40:42] == (40000).to_bytes(2, "big") and wire[42:60] == bytes(18)


@pytest.mark.parametrize("mode", ["ok", "natpmp-only"])
def test_natpmp_answer_gives_the_address(mode):
    answer, took = ask(mode)
    assert (answer.address, answer.protocol) == (GLOBAL, "NAT-PMP")
    assert router.usable(answer) == GLOBAL
    assert took < 0.2


def test_pcp_only_router_answers_with_pcp():
    answer, took = ask("pcp-only")
    assert (answer.address, answer.protocol) == (GLOBAL, "PCP")
    assert took < 0.5  # PCP is sent with the first retransmission (250 ms)


def test_pcp_is_not_sent_when_natpmp_answers():
    with Responder("ok", GLOBAL) as r:
        router.ask(*r.address)
        time.sleep(0.05)
        assert [req[0] for req in r.requests] == [0]


@pytest.mark.parametrize(
    "mode",
    ["garbage", "wrong-opcode", "wrong-version", "silent", "flood", "elsewhere"],
)
def test_hostile_or_silent_routers_give_nothing_within_the_bound(mode):
    answer, took = ask(mode)
    assert answer.address is None and answer.hint is None, answer
    assert router.usable(answer) is None
    assert router.verdict(answer, GLOBAL) == router.UNKNOWN
    assert took <= router.TIMEOUT + 0.2, took


def test_a_short_natpmp_answer_is_ignored_and_pcp_asked():
    answer, _ = ask("short")  # RFC 6886 section 3.2: 12 bytes
    assert (answer.address, answer.protocol) == (GLOBAL, "PCP")
    with Responder("short", GLOBAL) as r:
        assert router.parse(r.natpmp(b"\0\0"), bytes(12)) == ("", None)


@pytest.mark.parametrize("mode", ["wrong-nonce", "not-mapped"])
def test_a_pcp_answer_that_is_not_ours_is_ignored(mode):
    answer, _ = ask(f"{mode}")
    # NAT-PMP still answers (the responder's NAT-PMP side is correct in these modes).
    assert answer.protocol == "NAT-PMP" and answer.address == GLOBAL
    with Responder(mode, GLOBAL) as r:
        nonce = bytes(12)
        wire = r.pcp(router.pcp_request("127.0.0.1", 1, nonce))
        assert router.parse(wire, nonce) == ("", None)


@pytest.mark.parametrize("code", [1, 2, 4, 5, 99])
def test_error_result_codes_are_no_address(code):
    answer, _ = ask(f"result:{code}")
    assert answer.address is None
    assert not answer.no_public
    assert router.verdict(answer, GLOBAL) == router.UNKNOWN


def test_network_failure_means_no_public_address():
    answer, _ = ask("result:3", "0.0.0.0")  # noqa: S104
    assert answer.no_public and answer.address is None
    assert router.verdict(answer, GLOBAL) == router.NO_PUBLIC


@pytest.mark.parametrize(
    ("external", "verdict"), [(CGNAT, router.CGNAT_NAT), (PRIVATE, router.DOUBLE_NAT)]
)
def test_miniupnpds_refusal_still_tells_the_verdict_by_its_hint(external, verdict):
    """miniupnpd: NAT-PMP result 3, PCP NO_RESOURCES with its WAN address."""
    answer, _ = ask("no-public", external)
    assert answer.address is None and answer.hint == external and answer.no_public
    assert router.usable(answer) is None  # never for the probe
    assert router.verdict(answer, GLOBAL) == verdict


def test_a_refused_port_is_no_answer_at_once():
    with Responder("ok", GLOBAL) as r:
        address = r.address
    start = time.monotonic()
    answer = router.ask(*address)
    assert answer.address is None and "cannot ask" in answer.why
    assert time.monotonic() - start < 0.5


# -- what the address means -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "duckdns", "verdict"),
    [
        (GLOBAL, GLOBAL, router.DIRECT),
        (GLOBAL, "", router.DIRECT),
        (GLOBAL, GLOBAL2, router.UPSTREAM),
        (CGNAT, GLOBAL, router.CGNAT_NAT),
        ("100.127.255.254", GLOBAL, router.CGNAT_NAT),
        (PRIVATE, GLOBAL, router.DOUBLE_NAT),
        ("10.1.2.3", GLOBAL, router.DOUBLE_NAT),
        ("172.16.0.1", GLOBAL, router.DOUBLE_NAT),
        ("0.0.0.0", GLOBAL, router.NO_PUBLIC),  # noqa: S104
    ],
)
def test_every_verdict(address, duckdns, verdict):
    answer = router.Answer(address, "NAT-PMP")
    assert router.verdict(answer, duckdns) == verdict
    line = router.describe(verdict, answer, duckdns)
    assert line.startswith(f"reachability: {router.VERDICTS[verdict]}")
    assert ("what to do: " in line) == (verdict in router.ADVICE)
    assert router.usable(answer) == (
        address if verdict in (router.DIRECT, router.UPSTREAM) else None
    )


def test_no_answer_is_unknown_not_an_error():
    assert router.verdict(None, GLOBAL) == router.UNKNOWN
    assert router.verdict(router.Answer(None, why="silence"), "") == router.UNKNOWN
    assert router.VERDICTS[router.UNKNOWN] == "unknown (the router does not speak NAT-PMP/PCP/UPnP)"


def test_default_gateway_from_the_routing_table(tmp_path):
    route = tmp_path / "route"
    route.write_text(
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
        "eth0\t0000A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
        "wlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\n"
        "eth0\t00000000\t0100A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n"
        "junk\n"
    )
    assert router.default_gateway(route) == "192.168.0.1"  # the lower metric
    route.write_text("Iface\tDestination\n")
    assert router.default_gateway(route) is None
    assert router.default_gateway(tmp_path / "missing") is None


# -- the configuration ------------------------------------------------------------------------


def test_probe_router_alone_or_first():
    (target,) = config.parse_probe("router")
    assert (target.kind, target.address, target.port, str(target)) == ("router", "", 5351, "router")
    assert [t.kind for t in config.parse_probe("router, cloudflare@1.1.1.1")] == [
        "router",
        "cloudflare",
    ]
    with pytest.raises(ValueError, match="'router' must come first"):
        config.parse_probe("cloudflare@1.1.1.1, router")
    with pytest.raises(ValueError, match="takes no address here"):
        config.parse_probe("router@192.168.1.1")


def test_router_setting(conf):
    assert config.load(conf()).router is None
    assert config.load(conf(router="192.168.1.1")).router == ("192.168.1.1", 5351)
    assert config.load(conf(router="192.168.1.1:5352")).router == ("192.168.1.1", 5352)
    for bad in ("fe80::1", "[fe80::1]:5351", "router.lan", "192.168.1.1:0"):
        with pytest.raises(config.ConfigError, match="router: ") as exc:
            config.load(conf(router=bad))
        assert "remove the line to ask the default gateway" in str(exc.value)


# -- through the pipeline ---------------------------------------------------------------------


def journal_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("reachability: ")]


def test_router_decides_and_no_third_party_is_asked(duck, dns, conf, runner):
    duck.client_ip = GLOBAL
    host, port = dns.address
    with Responder("ok", GLOBAL) as r:
        run = runner(
            conf(probe=f"router, cloudflare@{host}:{port}", router=f"{r.address[0]}:{r.address[1]}")
        )
        code, _, err = run()
        assert code == 0, err
        assert len(duck.requests) == 1
        assert journal_lines(err) == [
            f"reachability: {router.VERDICTS['direct']} (router: {GLOBAL}; DuckDNS: {GLOBAL})"
        ]
        for _ in range(3):
            run.later(60)
            code, _, err = run()
            assert code == 0 and journal_lines(err) == [], err
    assert len(duck.requests) == 1
    assert dns.queries == []  # the router's answer decided every run
    state = state_of(run.cfg)
    assert (state["reach"], state["router_ipv4"], state["probe_state"]) == ("direct", GLOBAL, "ok")


@pytest.mark.parametrize(
    ("mode", "external", "verdict"),
    [
        ("ok", CGNAT, "cgnat"),
        ("ok", PRIVATE, "double-nat"),
        ("no-public", CGNAT, "cgnat"),
        ("silent", GLOBAL, "unknown"),
        ("garbage", GLOBAL, "unknown"),
    ],
)
def test_a_router_that_cannot_decide_hands_over_to_the_next_target(
    duck, dns, conf, runner, mode, external, verdict
):
    duck.client_ip = GLOBAL
    dns.clear()
    dns.add("whoami.cloudflare", "TXT", GLOBAL, rclass="CH")
    host, port = dns.address
    with Responder(mode, external) as r:
        run = runner(
            conf(probe=f"router, cloudflare@{host}:{port}", router=f"{r.address[0]}:{r.address[1]}")
        )
        start = time.monotonic()
        code, _, err = run()
        assert time.monotonic() - start < 5
        assert code == 0, err
        (line,) = journal_lines(err)
        assert line.startswith(f"reachability: {router.VERDICTS[verdict]}"), line
        run.later(60)
        code, _, err = run()  # the DNS probe decides: nothing sent, nothing said again
        assert code == 0 and journal_lines(err) == [], err
    assert len(duck.requests) == 1
    assert len(dns.queries) == 2
    state = state_of(run.cfg)
    assert (state["reach"], state["probe_state"], state["probe_ipv4"]) == (verdict, "ok", GLOBAL)
    # status, --json and --prometheus show it
    code, out, _ = run("status")
    assert f"Reachability:    {router.VERDICTS[verdict]}" in out
    code, out, _ = run("status", "--json")
    assert json.loads(out)["reach"] == verdict
    code, out, _ = run("status", "--prometheus")
    assert f'duckdns_reachability{{verdict="{verdict}"}} 1' in out
    assert CANARY not in out


def test_the_verdict_is_told_again_only_when_it_changes(duck, conf, runner):
    duck.client_ip = GLOBAL
    with Responder("ok", GLOBAL) as r:
        run = runner(conf(probe="router", router=f"{r.address[0]}:{r.address[1]}"))
        assert journal_lines(run()[2])
        r.external = CGNAT  # the provider moves the line behind carrier-grade NAT
        run.later(60)
        code, _, err = run()
        (line,) = journal_lines(err)
        assert line.startswith(f"reachability: {router.VERDICTS['cgnat']}")
        assert "'ipv6 = auto' and 'ipv4 = off'" in line and "ask your provider" in line
        run.later(60)
        assert journal_lines(run()[2]) == []


# -- duckdns check ----------------------------------------------------------------------------


def test_check_asks_only_a_configured_router(conf, runner):
    code, out, _ = runner(conf())("check")
    assert code == 0 and out.splitlines()[-1] == upnp.NOT_ASKED
    with Responder("no-public", CGNAT) as r:
        code, out, _ = runner(conf(router=f"{r.address[0]}:{r.address[1]}"))("check")
    assert code == 0
    assert out.splitlines()[-1].startswith(f"reachability: {router.VERDICTS['cgnat']}")


@pytest.mark.parametrize(("external", "expected"), [(GLOBAL, GLOBAL), ("", "")])
def test_upnp_igd_description_and_soap(external, expected):
    with IGD() as igd:
        igd.external = external
        url, service = upnp.control(igd.location)
        assert url == f"http://127.0.0.1:{igd.port}/ctl/IPConn"
        assert upnp.external_address(url, service) == expected


def test_ssdp_locations_are_followed_only_to_the_responder():
    ok = b"HTTP/1.1 200 OK\r\nST: x\r\nLOCATION: http://192.168.1.1:5000/rootDesc.xml\r\n\r\n"
    assert upnp._location(ok, "192.168.1.1") == "http://192.168.1.1:5000/rootDesc.xml"
    assert upnp._location(ok, "192.168.1.66") is None
    assert upnp._location(ok.replace(b"http:", b"file:"), "192.168.1.1") is None
    assert upnp._location(b"NOTIFY * HTTP/1.1\r\n\r\n", "192.168.1.1") is None


# -- UPnP's answers: read in any encoding, never with a DTD ------------------------------------


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_upnp_answers_are_read_in_every_encoding(encoding):
    """The other side of the refusal below: the same answers without a DTD are read."""
    with IGD() as igd:
        igd.encoding = encoding
        assert upnp.external_address(*upnp.control(igd.location)) == GLOBAL


@pytest.mark.parametrize("where", ["description", "soap"])
@pytest.mark.parametrize("encoding", ENCODINGS)
def test_a_dtd_is_refused_whatever_the_encoding(encoding, where):
    with IGD() as igd:
        igd.encoding, igd.entity = encoding, where
        with pytest.raises(upnp.Refused, match="holds a DTD"):
            upnp.external_address(*upnp.control(igd.location))


@pytest.mark.parametrize(
    "xml",
    [
        b'<!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>',
        b'<!DOCTYPE x SYSTEM "file:///etc/passwd"><x/>',
        b"<!DOCTYPE x><x/>",  # no declaration at all: still refused where it starts
        b'\xef\xbb\xbf<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>',
    ],
)
def test_parse_xml_refuses_any_dtd(xml):
    with pytest.raises(upnp.Refused, match="holds a DTD"):
        upnp.parse_xml(xml)


def test_parse_xml_refuses_an_undeclared_entity_and_broken_xml():
    with pytest.raises(upnp.Refused, match="malformed XML"):
        upnp.parse_xml(b"<x>&ip;</x>")
    with pytest.raises(upnp.Refused, match="malformed XML"):
        upnp.parse_xml(b"<x><y></x>")
    assert upnp.parse_xml(b"<x>&amp;&#56;</x>").text == "&8"  # XML's own entities only


# -- UPnP through `duckdns check`: only the router decides, only on its own address ------------


@pytest.fixture
def igd_check(conf, runner, monkeypatch):
    """``duckdns check ARGS`` with the router at 127.0.0.1 (NAT-PMP/PCP silent, so UPnP is
    asked), the SSDP search sent to ``ssdp`` instead of the multicast group."""

    def check(ssdp: SSDP, *args: str) -> tuple[str, str]:
        monkeypatch.setattr(upnp, "SSDP", ssdp.address)
        with Responder("silent") as r:
            code, out, err = runner(conf(router=f"127.0.0.1:{r.address[1]}"))(*args, "check")
        assert code == 0, err
        return out.splitlines()[-1], err

    return check


def test_check_asks_the_router_over_upnp(igd_check):
    with IGD() as igd, SSDP([("127.0.0.1", igd.location)]) as ssdp:
        line, _ = igd_check(ssdp)
    assert line == f"reachability: {router.VERDICTS['direct']} (router: {GLOBAL}; DuckDNS: -)"
    assert igd.connections == 2 and len(ssdp.searches) == 1


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le-no-bom", "utf-8"])
def test_check_takes_no_verdict_from_an_answer_with_an_entity(igd_check, encoding):
    """The entity would say 8.8.8.8: "direct (router: 8.8.8.8)" before the refusal."""
    with IGD() as igd, SSDP([("127.0.0.1", igd.location)]) as ssdp:
        igd.encoding, igd.entity = encoding, "soap"
        line, _ = igd_check(ssdp)
    assert line.startswith(f"reachability: {router.VERDICTS['unknown']} ("), line
    assert "UPnP IGD: the answer holds a DTD (refused" in line
    assert "8.8.8.8" not in line


@pytest.mark.parametrize("how", ["controlURL", "URLBase", "same host, another port"])
def test_a_control_url_elsewhere_is_not_followed(igd_check, how):
    with IGD() as igd, IGD("127.0.0.2") as other, IGD() as neighbour:
        if how == "controlURL":
            igd.control = f"http://127.0.0.2:{other.port}/ctl/IPConn"
        elif how == "URLBase":
            igd.urlbase = f"http://127.0.0.2:{other.port}/"
        else:
            igd.control = f"http://127.0.0.1:{neighbour.port}/ctl/IPConn"
        with SSDP([("127.0.0.1", igd.location)]) as ssdp:
            line, err = igd_check(ssdp, "-v")
    assert (other.connections, neighbour.connections, igd.connections) == (0, 0, 1)
    assert line.startswith(f"reachability: {router.VERDICTS['unknown']} ("), line
    why = "the description's control URL is not on the address that answered"
    assert why in line and f"UPnP: {why}" in err


def test_a_urlbase_on_the_devices_own_address_is_followed(igd_check):
    with IGD() as igd, SSDP([("127.0.0.1", igd.location)]) as ssdp:
        igd.urlbase = f"http://127.0.0.1:{igd.port}/"
        line, _ = igd_check(ssdp)
    assert line.startswith(f"reachability: {router.VERDICTS['direct']} (router: {GLOBAL};")


def test_an_ssdp_answer_from_another_device_is_ignored(igd_check):
    with IGD() as igd, IGD("127.0.0.2") as other:
        other.external = GLOBAL2
        # the other device answers first, and its LOCATION is on its own address
        with SSDP([("127.0.0.2", other.location), ("127.0.0.1", igd.location)]) as ssdp:
            line, err = igd_check(ssdp, "-vv")
        assert line.startswith(f"reachability: {router.VERDICTS['direct']} (router: {GLOBAL};")
        assert "UPnP: ignored an SSDP answer from 127.0.0.2, not the router 127.0.0.1" in err
        with SSDP([("127.0.0.2", other.location)]) as ssdp:  # the router itself is silent
            line, _ = igd_check(ssdp)
        assert line.startswith(f"reachability: {router.VERDICTS['unknown']} ("), line
        assert "the router did not answer UPnP's search" in line
    assert other.connections == 0


def test_without_a_router_address_no_device_is_asked(conf, monkeypatch):
    """No 'router' setting and no default gateway: nobody may decide."""
    with IGD() as igd, SSDP([("127.0.0.1", igd.location)]) as ssdp:
        monkeypatch.setattr(upnp, "SSDP", ssdp.address)
        line = upnp.reachability(config.load(conf(probe="router")), None, "", None)
    assert line.startswith(f"reachability: {router.VERDICTS['unknown']} (no default gateway")
    assert (ssdp.searches, igd.connections) == ([], 0)


def test_an_unreachable_router_is_said_in_words_with_what_to_check(conf):
    """A Pi whose network is down: the real ``duckdns check`` in a network namespace of its
    own, with no link but a loopback that is down. Each failure says the errno's words
    (ENETUNREACH is a bare OSError) and the verdict what to check."""
    cfg = conf(router="192.168.1.1")
    proc = subprocess.run(
        ["unshare", "--net", DEBIAN_PYTHON, "-m", "duckdns", "--config", str(cfg), "check"],
        capture_output=True,
        text=True,
        env={**CLEAN_ENV, "PYTHONPATH": str(ROOT)},
        timeout=60,
    )
    if "unshare failed" in proc.stderr or "Operation not permitted" in proc.stderr:
        skip_or_fail(f"cannot make a network namespace: {proc.stderr.strip()}")
    assert_no_canary(proc.stdout, proc.stderr)
    assert proc.returncode == 0, proc.stderr
    line = proc.stdout.splitlines()[-1]
    assert line == (
        f"reachability: {router.VERDICTS['unknown']} (cannot ask 192.168.1.1:5351: Network is "
        "unreachable; UPnP IGD: cannot connect to the router: network unreachable); "
        f"what to do: {router.ADVICE['unknown']}"
    )


def test_other_socket_errors_are_said_in_the_errnos_words(conf, runner, monkeypatch):
    """A search that cannot be sent for another reason (here EACCES: a broadcast address
    without SO_BROADCAST) is said in the errno's words, through duckdns.failure."""
    # lo's own broadcast address: in the local table wherever loopback is up, so EACCES
    # in any network namespace (255.255.255.255 needs a route: ENETUNREACH without one).
    monkeypatch.setattr(upnp, "SSDP", ("127.255.255.255", 1900))
    monkeypatch.setattr(router, "ask", lambda *a, **k: router.Answer(None, why="silence"))
    code, out, _ = runner(conf(router="127.0.0.1"))("check")
    assert code == 0
    assert "(silence; UPnP IGD: cannot connect to the router: permission denied)" in out
