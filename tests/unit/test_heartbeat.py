"""The heartbeat: Healthchecks.io and Uptime Kuma look-alikes over real TLS.

The ping URLs are canaries like the token: none may appear in any output, in state.json
or in the metrics.
"""

from __future__ import annotations

import json

import pytest
from support.monitor_server import MonitorServer

from duckdns import api, heartbeat

HC_KEY = "5ca1ab1e-c0de-4bad-a55e-0123456789ab"  # the canary ping URL's secret part
KUMA_KEY = "CanaryPushKey9z"
WRONG = "11111111-2222-3333-4444-555555555555"


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    monkeypatch.setattr(api, "FIRST_WAIT", 0.001)


@pytest.fixture
def monitor(server_cert):
    cert, key = server_cert
    with MonitorServer(cert, key, hc_keys=[HC_KEY], kuma_keys=[KUMA_KEY]) as srv:
        yield srv


def no_ping_url(*texts: str) -> None:
    for text in texts:
        assert HC_KEY not in text and KUMA_KEY not in text, "a ping URL leaked"


def run_checked(run, *argv):
    code, out, err = run(*argv)
    no_ping_url(out, err)
    return code, out, err


def check_files(cfg) -> None:
    for path in cfg.parent.iterdir():
        if path != cfg and path.is_file():
            no_ping_url(path.read_text())


@pytest.mark.parametrize("service", ["hc", "kuma"])
def test_pings_on_transitions_then_once_a_day(duck, conf, runner, monitor, service):
    url = f"{monitor.url}/{HC_KEY}" if service == "hc" else f"{monitor.url}/api/push/{KUMA_KEY}"
    cfg = conf(healthcheck=url)
    run = runner(cfg)
    for _ in range(5):  # five healthy runs, a minute apart: one "up" ping
        assert run_checked(run)[0] == 0
        run.later(60)
    assert [p["status"] for p in monitor.pings] == ["up"]
    run.later(86400)
    assert run_checked(run)[0] == 0
    assert [p["status"] for p in monitor.pings] == ["up", "up"], "a ping at least once a day"
    duck.default = "ko"
    for _ in range(20):  # a failure of 20 minutes: one "down" ping
        run_checked(run)
        run.later(60)
    assert [p["status"] for p in monitor.pings] == ["up", "up", "down"]
    duck.default = "ok"
    conf(healthcheck=url)  # a changed config: the next run tries at once
    assert run_checked(run)[0] == 0
    assert [p["status"] for p in monitor.pings] == ["up", "up", "down", "up"]
    if service == "kuma":
        assert "KO" in monitor.pings[2]["msg"] and monitor.pings[0]["msg"] == "OK"
        assert all("status=" in r and "msg=" in r for r in monitor.requests)
    else:
        assert [r.endswith("/fail") for r in monitor.requests] == [False, False, True, False]
    for argv in (("status",), ("status", "--json"), ("status", "--prometheus")):
        run_checked(run, *argv)
    check_files(cfg)


def test_a_failing_ping_never_fails_the_update_and_is_said_at_v_only(duck, conf, runner, monitor):
    monitor.fail_with = 500
    cfg = conf(healthcheck=f"{monitor.url}/{HC_KEY}")
    run = runner(cfg)
    code, out, err = run_checked(run)
    assert code == 0 and "ping" not in err
    run.later(60)
    code, out, err = run_checked(run, "-v", "update")
    assert code == 0
    assert "heartbeat ping" not in err, "tried again only after 15 minutes"
    run.later(15 * 60)
    code, out, err = run_checked(run, "-v", "update")
    assert code == 0 and "heartbeat ping (up) failed: the monitor answered HTTP 500" in err
    monitor.fail_with = None
    run.later(15 * 60)
    assert run_checked(run)[0] == 0
    assert [p["status"] for p in monitor.pings] == ["up"]
    check_files(cfg)


def test_an_unreachable_monitor_is_said_without_its_url(duck, conf, runner, monitor):
    url = f"https://127.0.0.1:9/api/push/{KUMA_KEY}"  # the discard port: refused
    cfg = conf(healthcheck=url)
    code, _, err = run_checked(runner(cfg), "-vv", "update")
    assert code == 0 and "heartbeat ping (up) failed: cannot connect" in err
    check_files(cfg)


def test_a_monitor_with_an_untrusted_certificate_is_refused(duck, conf, runner, tmp_path):
    from support.testca import make_ca

    other = make_ca(tmp_path / "other")
    cert, key = other.issue(tmp_path / "srv", ["localhost"])
    with MonitorServer(cert, key, hc_keys=[HC_KEY]) as rogue:
        cfg = conf(healthcheck=f"{rogue.url}/{HC_KEY}")
        code, _, err = run_checked(runner(cfg), "-v", "update")
        assert code == 0 and "heartbeat ping (up) failed: TLS verification failed" in err
        assert rogue.pings == []


@pytest.mark.parametrize(
    "value", [f"http://hc-ping.com/{HC_KEY}", f"hc-ping.com/{HC_KEY}", f"https://x/{HC_KEY} y"]
)
def test_a_ping_url_that_is_not_https_is_refused_without_echoing_it(conf, runner, value):
    code, _, err = run_checked(runner(conf(healthcheck=value)), "check")
    assert code == 78 and "healthcheck is not an https:// URL" in err


def test_urls_for_both_services():
    hc = f"https://hc-ping.com/{HC_KEY}"
    assert heartbeat.url_for(hc, "up", "x") == hc
    assert heartbeat.url_for(hc, "down", "x") == hc + "/fail"
    kuma = f"https://kuma.example/api/push/{KUMA_KEY}?status=up&msg=OK&ping="
    assert heartbeat.url_for(kuma, "down", "KO & more") == (
        f"https://kuma.example/api/push/{KUMA_KEY}?status=down&msg=KO%20%26%20more&ping="
    )


def test_the_ping_url_is_redacted_like_the_token(conf, runner):
    from duckdns import report

    url = f"https://hc-ping.com/{HC_KEY}"
    cfg = conf(healthcheck=url)
    assert run_checked(runner(cfg), "check")[0] == 0
    assert HC_KEY not in report.redact(f"GET {url}/fail failed")
    assert HC_KEY not in report.redact(f"Max retries exceeded with url: /{HC_KEY}/fail")
    assert HC_KEY not in report.redact(json.dumps({"u": url}))


def test_a_state_that_cannot_be_written_does_not_make_every_run_ping(
    duck, monitor, conf, runner, monkeypatch
):
    """The ping's attempt must be recorded like a request's: with a full disk the monitor
    is pinged on the unrecorded turns only (two minutes each half hour), not every run."""
    import errno

    from duckdns import state

    run = runner(conf(ipv4="192.0.2.44", healthcheck=f"{monitor.url}/{HC_KEY}"))
    assert run()[0] == 0 and len(monitor.pings) == 1

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(state, "atomic_write", full)
    run.later(2 * 86400)  # the daily "up" ping is due, and cannot be recorded
    for _ in range(60):
        run.later(60)
        assert run()[0] == 0
    assert 1 <= len(monitor.pings) - 1 <= 4, len(monitor.pings)
    assert len(duck.requests) <= 1 + 4  # the refresh is due too: the same turns


def test_an_ipv6_only_host_without_an_address_fails_once_backs_off_and_pings_down(
    duck, conf, runner, monitor
):
    """ipv4 = off, ipv6 = auto and the address gone: nothing to publish is a failed attempt
    like any other (decide.Plan.missing): said once with exit 75, recorded, backed off (the
    runs inside the wait end with 0 and say nothing), "down" to the monitor, shown by
    status; DuckDNS is asked nothing until the address is back."""
    run = runner(conf(ipv4="off", ipv6="auto", healthcheck=f"{monitor.url}/{HC_KEY}"))
    run.ipv6 = "2a01:4f8:1:2::3"
    assert run_checked(run)[0] == 0
    assert [p["status"] for p in monitor.pings] == ["up"]
    run.ipv6 = None
    run.later(60)
    code, _, err = run_checked(run)
    assert code == 75
    assert "nothing to publish" in err and "no global IPv6 address" in err
    assert len(err.strip().splitlines()) == 1, err
    assert [p["status"] for p in monitor.pings] == ["up", "down"]
    state = json.loads((run.cfg.parent / "state.json").read_text())
    assert state["failures"] == 1 and state["failure_kind"] == "error"
    assert state["in_flight"] is None
    codes, said = [], []
    for _ in range(60):  # an hour without an address: single attempts 1, 2, 4, 8, 15 min apart
        run.later(60)
        code, _, err = run_checked(run)
        codes.append(code)
        said += err.strip().splitlines()
    assert codes.count(75) <= 8, codes
    assert set(codes) <= {0, 75}
    assert len(said) <= 2, said  # the first error above, then at most a reminder an hour
    assert len(duck.requests) == 1, "DuckDNS is asked nothing without an address"
    assert [p["status"] for p in monitor.pings] == ["up", "down"], "down once"
    code, out, _ = run_checked(run, "status")
    assert "Failing since" in out
    run.ipv6 = "2a01:4f8:1:2::99"
    for _ in range(16):  # the address is back: sent when the wait ends, the recovery said
        run.later(60)
        code, _, err = run_checked(run)
        if duck.requests[1:]:
            break
    assert code == 0 and "updates work again" in err
    assert [p["status"] for p in monitor.pings] == ["up", "down", "up"]
    assert duck.record_of("piserver")["ipv6"] == "2a01:4f8:1:2::99"
    check_files(run.cfg)


def test_dry_run_without_an_address_says_so(conf, runner):
    run = runner(conf(ipv4="off", ipv6="auto"))
    code, out, err = run("update", "--dry-run")
    assert (code, out) == (75, "")
    assert "nothing to publish" in err
