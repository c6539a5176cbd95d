"""Dual-stack updates: A and AAAA kept right through every sequence of changes.

The updater runs in this process against the look-alike DuckDNS (real TLS, chunked answers,
per-subname records) and the loopback "what is my address" DNS server; the kernel's IPv6
address and the clock are the Runner's (tests/unit/conftest.py). Each test counts the
requests DuckDNS receives; the ``conf`` fixture checks that none relied on behaviour the
published API leaves unknown (an empty ``ipv6=``, or ``ipv6=`` without ``ip=``).
"""

from __future__ import annotations

import json

import pytest
from support.helpers import CANARY, PUBLIC, state_of

V6 = "2a01:4f8:1:2::3"
V6_NEW = "2a01:4f8:1:2::99"
NEW4 = "198.51.100.20"


@pytest.fixture
def dual(duck, dns, conf, runner):
    """ipv4 = auto, ipv6 = auto with the host holding V6, probe answering PUBLIC."""
    duck.client_ip = PUBLIC
    host, port = dns.address
    run = runner(conf(ipv6="auto", probe=f"cloudflare@{host}:{port}"))
    run.ipv6 = V6
    return run


def sent(duck, start: int = 0) -> list[dict]:
    """The ip=/ipv6= parameters of the requests since ``start``."""
    return [
        {k: v for k, v in r["query"].items() if k in ("ip", "ipv6")} for r in duck.requests[start:]
    ]


def record(duck) -> dict:
    return duck.record_of("piserver")


def public_ipv4_changes(duck, dns, address: str) -> None:
    duck.client_ip = address
    dns.clear()
    dns.add("whoami.cloudflare", "TXT", address, rclass="CH")


def test_first_run_sets_both_records_with_two_documented_requests(duck, dual):
    code, _, err = dual()
    assert code == 0, err
    assert sent(duck) == [{"ip": ""}, {"ip": "", "ipv6": V6}]
    assert record(duck) == {"ipv4": PUBLIC, "ipv6": V6, "txt": ""}
    assert err.strip().splitlines() == [f"piserver: IPv4 {PUBLIC}, IPv6 {V6} (was -, -)"]
    state = state_of(dual.cfg)
    assert (state["sent_ipv4"], state["sent_ipv6"]) == ("auto", V6)
    assert state["ipv4_confirmed"] and state["ipv6_confirmed"]
    assert state["probe_state"] == "ok"


def test_steady_state_sends_nothing(duck, dual):
    dual()
    for _ in range(5):
        dual.later(60)
        assert dual() == (0, "", "")
    assert len(duck.requests) == 2


def test_ipv4_change_sends_only_the_a_request_and_aaaa_stays(duck, dns, dual):
    dual()
    dual.later(60)
    public_ipv4_changes(duck, dns, NEW4)
    code, _, err = dual()
    assert code == 0, err
    assert sent(duck, 2) == [{"ip": ""}]
    assert record(duck) == {"ipv4": NEW4, "ipv6": V6, "txt": ""}
    assert f"IPv4 {NEW4}, IPv6 {V6}" in err
    dual.later(60)
    dual()
    assert len(duck.requests) == 3


def test_ipv6_change_sends_only_the_aaaa_request_and_a_stays(duck, dual):
    dual()
    dual.later(60)
    dual.ipv6 = V6_NEW
    code, _, err = dual()
    assert code == 0, err
    assert sent(duck, 2) == [{"ip": "", "ipv6": V6_NEW}]
    assert record(duck) == {"ipv4": PUBLIC, "ipv6": V6_NEW, "txt": ""}
    dual.later(60)
    dual()
    assert len(duck.requests) == 3


def test_both_change_two_requests(duck, dns, dual):
    dual()
    dual.later(60)
    public_ipv4_changes(duck, dns, NEW4)
    dual.ipv6 = V6_NEW
    assert dual()[0] == 0
    assert sent(duck, 2) == [{"ip": ""}, {"ip": "", "ipv6": V6_NEW}]
    assert record(duck) == {"ipv4": NEW4, "ipv6": V6_NEW, "txt": ""}


@pytest.mark.parametrize(("failure", "code"), [("ko", 1), ("status:404", 75), ("garbage", 75)])
def test_failed_aaaa_request_is_retried_alone_next_run(duck, dual, failure, code):
    duck.script = ["ok", failure]
    code_, _, err = dual()
    assert code_ == code
    assert f"piserver: IPv4 {PUBLIC}, IPv6 - (was -, -)" in err, "the A change took effect"
    if failure == "ko":
        assert f"KO to the AAAA request for {V6}" in err and "refused that address" in err
    state = state_of(dual.cfg)
    assert state["sent_ipv4"] == "auto" and state["sent_ipv6"] == "", "A kept, AAAA pending"
    assert record(duck)["ipv4"] == PUBLIC
    dual.later(300)  # the backoff: 5 minutes after a KO, 1 after another failure
    assert dual()[0] == 0
    assert sent(duck, 2) == [{"ip": "", "ipv6": V6}], "only the failed record is sent again"
    assert record(duck) == {"ipv4": PUBLIC, "ipv6": V6, "txt": ""}
    dual.later(60)
    dual()
    assert len(duck.requests) == 3


def test_failed_a_request_stops_the_run_and_both_are_sent_next_run(duck, dual):
    duck.script = ["ko"]
    code, _, err = dual()
    assert code == 1 and "KO" in err
    assert len(duck.requests) == 1, "after a KO, nothing more is sent"
    dual.later(300)  # the backoff after a KO
    assert dual()[0] == 0
    assert sent(duck, 1) == [{"ip": ""}, {"ip": "", "ipv6": V6}]


def test_a_5xx_is_retried_within_the_run(duck, dual):
    duck.script = ["ok", "status:503"]
    assert dual()[0] == 0
    assert sent(duck) == [{"ip": ""}, {"ip": "", "ipv6": V6}, {"ip": "", "ipv6": V6}]


def test_aaaa_changed_behind_our_back_is_repaired_in_the_same_run(duck, dns, dual):
    """The answer to the A request shows AAAA: if it is not what was set, AAAA is sent too."""
    dual()
    record(duck)["ipv6"] = ""
    dual.later(60)
    public_ipv4_changes(duck, dns, NEW4)
    assert dual()[0] == 0
    assert sent(duck, 2) == [{"ip": ""}, {"ip": "", "ipv6": V6}]
    assert record(duck) == {"ipv4": NEW4, "ipv6": V6, "txt": ""}


def test_a_changed_behind_our_back_is_repaired_in_the_same_run(duck, dual):
    dual()
    record(duck)["ipv4"] = "192.0.2.99"
    dual.later(60)
    dual.ipv6 = V6_NEW
    assert dual()[0] == 0
    assert sent(duck, 2) == [{"ip": "", "ipv6": V6_NEW}, {"ip": ""}]
    assert record(duck) == {"ipv4": PUBLIC, "ipv6": V6_NEW, "txt": ""}


def test_probe_off_sends_the_a_request_every_run_and_checks_aaaa_in_its_answer(duck, conf, runner):
    duck.client_ip = PUBLIC
    run = runner(conf(ipv6="auto", probe="off"))
    run.ipv6 = V6
    run()
    for _ in range(3):
        run.later(60)
        assert run() == (0, "", "")
    assert sent(duck) == [{"ip": ""}, {"ip": "", "ipv6": V6}] + [{"ip": ""}] * 3


def test_ipv4_off_sends_only_aaaa_and_nothing_while_it_stays(duck, conf, runner):
    run = runner(conf(ipv4="off", ipv6="auto", probe="off"))
    run.ipv6 = V6
    run()
    record_before = dict(record(duck))
    for _ in range(3):
        run.later(60)
        run()
    assert sent(duck) == [{"ip": "", "ipv6": V6}], "ip=&ipv6=X: documented to leave A alone"
    assert record_before == {"ipv4": "", "ipv6": V6, "txt": ""}
    run.ipv6 = V6_NEW
    run()
    assert sent(duck, 1) == [{"ip": "", "ipv6": V6_NEW}]


def test_ipv6_literal_with_ipv4_auto_two_requests_then_none(duck, conf, runner):
    duck.client_ip = PUBLIC
    run = runner(conf(ipv6=V6, probe="off"))
    run()
    run.later(60)
    run()
    assert sent(duck) == [{"ip": ""}, {"ip": "", "ipv6": V6}, {"ip": ""}]
    assert record(duck) == {"ipv4": PUBLIC, "ipv6": V6, "txt": ""}


def test_ipv4_literal_and_ipv6_one_request_then_only_on_change(duck, conf, runner):
    run = runner(conf(ipv4="198.51.100.4", ipv6="auto"))
    run.ipv6 = V6
    run()
    run.later(60)
    run()
    assert sent(duck) == [{"ip": "198.51.100.4", "ipv6": V6}]
    run.ipv6 = V6_NEW
    run.later(60)
    run()
    assert sent(duck, 1) == [{"ip": "198.51.100.4", "ipv6": V6_NEW}]
    assert record(duck) == {"ipv4": "198.51.100.4", "ipv6": V6_NEW, "txt": ""}


def test_ipv6_auto_without_an_address_leaves_aaaa_alone(duck, dual):
    dual()
    dual.ipv6 = None  # the host lost its global IPv6 address
    dual.later(60)
    assert dual()[0] == 0
    assert len(duck.requests) == 2
    assert record(duck)["ipv6"] == V6, "no empty ipv6= is ever sent (its effect is unknown)"
    dual.ipv6 = V6  # back: AAAA still holds it, nothing to send
    dual.later(60)
    dual()
    assert len(duck.requests) == 2


def test_force_sends_both_and_dry_run_shows_both_masked(duck, dual):
    dual()
    code, out, _ = dual("update", "--dry-run")
    assert code == 0 and len(duck.requests) == 2
    assert out.splitlines() == [
        f"GET {duck.url}/update?domains=piserver&token=***&ip=&verbose=true",
        f"GET {duck.url}/update?domains=piserver&token=***&ip=&ipv6={V6}&verbose=true",
    ]
    assert CANARY not in out
    dual("update", "--force")
    assert sent(duck, 2) == [{"ip": ""}, {"ip": "", "ipv6": V6}]


def test_clear_then_the_next_run_publishes_both_again(duck, dual):
    dual()
    assert dual("clear", "--yes")[0] == 0
    assert record(duck) == {"ipv4": "", "ipv6": "", "txt": ""}
    dual.later(60)
    dual()
    assert sent(duck, 3) == [{"ip": ""}, {"ip": "", "ipv6": V6}]
    assert record(duck) == {"ipv4": PUBLIC, "ipv6": V6, "txt": ""}


def test_refresh_resends_aaaa_once_a_day_and_a_is_checked_every_hour(duck, dual):
    """AAAA (from the kernel) is refreshed once a day; A, decided by the unauthenticated
    probe, is asked for every hour so that a probe repeating an old address cannot hold a
    change back longer (decide.PROBE_TRUST)."""
    dual()
    for _ in range(23):
        dual.later(3600)
        dual()
    assert sent(duck, 2) == [{"ip": ""}] * 23
    dual.later(3600)
    dual()
    assert sent(duck, 25) == [{"ip": ""}, {"ip": "", "ipv6": V6}]


def test_state_from_the_previous_release_loads_and_repairs_a_stale_a_record(duck, dual):
    """0.1.0 sent ip=&ipv6=X only: A stayed on an old address. Its state.json must load, and
    the first run of this version sends both records."""
    record(duck).update(ipv4="192.0.2.1", ipv6=V6)
    old = {
        "fingerprint": "piserver|auto|auto|https://x|1:2",
        "ipv4": "192.0.2.1",
        "ipv6": V6,
        "last_change": 1700000000,
        "last_check": None,
        "last_error": "",
        "last_result": "nochange",
        "last_run": 1700000000,
        "last_success": 1700000000,
        "probe_ipv4": PUBLIC,
        "probe_trusted": False,
        "sent_ipv6": V6,
        "txt": "",
    }
    (dual.cfg.parent / "state.json").write_text(json.dumps(old, indent=1, sort_keys=True))
    code, out, err = dual("status")
    assert code == 0 and "not trusted" in out, out
    assert dual()[0] == 0
    assert sent(duck) == [{"ip": ""}, {"ip": "", "ipv6": V6}]
    assert record(duck)["ipv4"] == PUBLIC
    assert state_of(dual.cfg)["probe_state"] == "ok"
    assert "probe_trusted" not in state_of(dual.cfg)
