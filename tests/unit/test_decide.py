"""Update only when the address changed: the probe decides whether, never what.

A loopback DNS server plays the "what is my address" resolver; the test DuckDNS
server's ``client_ip`` plays the address DuckDNS sees.
"""

from __future__ import annotations

import json
import os
import time

import pytest
from support.helpers import PUBLIC, state_of


def test_nothing_changed_means_no_request(runner, duck, dns, probed):
    assert runner(probed)().returncode == 0
    assert len(duck.requests) == 1
    for _ in range(3):
        proc = runner(probed)()
        assert proc.returncode == 0 and proc.stderr == ""
    assert len(duck.requests) == 1, "an unchanged address must not reach DuckDNS"
    assert len(dns.queries) == 4
    assert state_of(probed)["probe_state"] == "ok"


def test_changed_address_updates_at_once(runner, duck, dns, probed):
    runner(probed)()
    dns.clear()
    dns.add("whoami.cloudflare", "TXT", "198.51.100.20", rclass="CH")
    duck.client_ip = "198.51.100.20"
    proc = runner(probed)()
    assert proc.returncode == 0
    assert len(duck.requests) == 2
    assert "IPv4 198.51.100.20" in proc.stderr


def test_fallback_to_second_probe(runner, duck, dns, conf):
    duck.client_ip = PUBLIC
    host, port = dns.address
    # The first target is a closed port on loopback: it fails, the second answers.
    cfg = conf(probe=f"cloudflare@127.0.0.1:9, opendns@{host}:{port}")
    runner(cfg)()
    runner(cfg)()
    assert len(duck.requests) == 1


def test_periodic_refresh(runner, duck, dns, probed):
    runner(probed)()
    state = state_of(probed)
    state["ipv4_confirmed"] = int(time.time()) - 25 * 3600
    (probed.parent / "state.json").write_text(json.dumps(state))
    runner(probed)()
    assert len(duck.requests) == 2


def test_refresh_setting(runner, duck, dns, conf):
    duck.client_ip = PUBLIC
    host, port = dns.address
    run = runner(conf(probe=f"cloudflare@{host}:{port}", refresh="1s"))
    run()
    run.later(1.1)
    run()
    assert len(duck.requests) == 2


def test_reconfigured_file_forces_an_update(runner, duck, dns, probed):
    runner(probed)()
    text = probed.read_text()
    os.unlink(probed)
    fd = os.open(probed, os.O_WRONLY | os.O_CREAT, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    runner(probed)()
    assert len(duck.requests) == 2


def test_failed_update_is_retried_after_the_backoff(runner, duck, dns, probed):
    duck.script = ["ko"]
    run = runner(probed)
    assert run().returncode == 1
    assert run().returncode == 0, "inside the wait: a successful no-op"
    assert len(duck.requests) == 1
    run.later(6 * 60)
    assert run().returncode == 0
    assert len(duck.requests) == 2


def test_force_always_sends(runner, duck, dns, probed):
    runner(probed)()
    runner(probed)("update", "--force")
    assert len(duck.requests) == 2


# -- the probe decides whether, never what; nothing else triggers a request -------------------


def set_state(cfg, **values) -> None:
    state = state_of(cfg)
    state.update(values)
    (cfg.parent / "state.json").write_text(json.dumps(state))


def test_the_probe_never_chooses_the_address_sent(runner, duck, dns, probed):
    """A changed (or lying) probe answer triggers an update, but ip= stays empty."""
    runner(probed)()
    dns.clear()
    dns.add("whoami.cloudflare", "TXT", "198.51.100.20", rclass="CH")
    dns.behaviour = "lie"
    runner(probed)()
    assert len(duck.requests) == 2
    assert [r["query"]["ip"] for r in duck.requests] == ["", ""]
    assert state_of(probed)["ipv4"] == PUBLIC, "the state records what DuckDNS saw"


def test_distrust_is_reported_once_not_every_run(runner, duck, dns, probed):
    dns.behaviour = "lie"
    assert "address probe answered" in runner(probed)().stderr
    for _ in range(2):
        proc = runner(probed)()
        assert proc.returncode == 0 and proc.stderr == ""
    assert len(duck.requests) == 1, "a distrusted probe: at most one request every 5 minutes"


def test_literal_ipv4_is_never_probed(runner, duck, dns, conf):
    host, port = dns.address
    cfg = conf(ipv4="203.0.113.9", probe=f"cloudflare@{host}:{port}")
    runner(cfg)()
    runner(cfg)()
    assert dns.queries == [], "nothing to detect: the admin chose the address"
    assert len(duck.requests) == 1
    assert duck.requests[0]["query"]["ip"] == "203.0.113.9"


def test_dry_run_neither_probes_nor_sends(runner, duck, dns, probed):
    proc = runner(probed)("update", "--dry-run")
    assert proc.returncode == 0 and "ip=&" in proc.stdout
    assert dns.queries == [] and duck.requests == []


def test_no_refresh_before_the_period(runner, duck, dns, probed):
    runner(probed)()
    set_state(probed, ipv4_confirmed=int(time.time()) - 23 * 3600)
    runner(probed)()
    assert len(duck.requests) == 1


def test_clock_gone_backwards_means_update(runner, duck, dns, probed):
    runner(probed)()
    set_state(probed, ipv4_confirmed=int(time.time()) + 3600)
    runner(probed)()
    assert len(duck.requests) == 2


def test_nothing_changed_leaves_the_state_file_alone(runner, duck, dns, probed):
    """The probe ran, nothing was sent: no rewrite (and no fsync) of state.json either."""
    runner(probed)()
    before = os.stat(probed.parent / "state.json")
    runner(probed)()
    after = os.stat(probed.parent / "state.json")
    assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns)
    assert len(dns.queries) == 2


# -- a probe that cannot decide: visible once, and bounded to one request every 5 minutes ---


@pytest.fixture
def probed_run(probed, runner):
    return runner(probed)


def hour_of_runs(run, duck) -> tuple[int, list[str]]:
    """60 timer runs a minute apart: (requests sent, lines said at default verbosity)."""
    start, said = len(duck.requests), []
    for _ in range(60):
        run.later(60)
        code, _, err = run()
        assert code == 0, err
        said += err.splitlines()
    return len(duck.requests) - start, said


def test_dead_probe_says_so_once_and_asks_duckdns_every_5_minutes(duck, dns, probed_run):
    run = probed_run
    assert run()[0] == 0
    dns.behaviour = "servfail"  # the probe stops working (e.g. 1.1.1.1 blocked by the router)
    requests, said = hour_of_runs(run, duck)
    assert requests == 12, "one request every 5 minutes, not one a minute"
    assert len(said) == 1 and said[0].startswith("address probe failed (cloudflare@"), said
    assert "SERVFAIL" in said[0] and "every 5 minutes" in said[0]
    assert state_of(run.cfg)["probe_state"] == "failing"
    code, out, _ = run("status")
    assert "failing since" in out and "at most every 5 minutes" in out
    dns.behaviour = "normal"
    requests, said = hour_of_runs(run, duck)
    # One: its first answer checked against DuckDNS (their last agreement is over an hour old).
    assert requests == 1
    assert len(said) == 1 and said[0].startswith("address probe works again"), said
    assert "working (last answer 203.0.113.7)" in run("status")[1]


def test_a_failing_probe_still_lets_an_address_change_through_within_5_minutes(
    duck, dns, probed_run
):
    run = probed_run
    run()
    dns.behaviour = "servfail"
    duck.client_ip = "198.51.100.20"  # the address changes while the probe is dead
    for _ in range(5):
        run.later(60)
        run()
    assert duck.ipv4 == "198.51.100.20"
    assert len(duck.requests) == 2


def test_lying_probe_is_distrusted_once_and_bounded_until_it_agrees(duck, dns, probed_run):
    run = probed_run
    dns.behaviour = "lie"  # answers lie_ipv4, not what DuckDNS sees
    code, _, err = run()
    assert code == 0 and "address probe answered 198.51.100.66 but DuckDNS saw" in err
    assert state_of(run.cfg)["probe_state"] == "distrusted"
    requests, said = hour_of_runs(run, duck)
    assert requests == 12 and said == []
    assert "not trusted since" in run("status")[1]
    dns.behaviour = "normal"  # it agrees with what DuckDNS saw again
    before, runs = len(duck.requests), 0
    while runs < 70:  # trusted again when DuckDNS agrees an hour after it last did not
        run.later(60)
        code, _, err = run()
        runs += 1
        if err:
            break
    assert "address probe works again" in err and 60 <= runs <= 65, (runs, err)
    assert len(duck.requests) - before == runs // 5, "still every 5 minutes, no more"
    assert state_of(run.cfg)["probe_state"] == "ok"
    requests, said = hour_of_runs(run, duck)
    assert requests == 1 and said == [], "only the hourly check of the probe, at the end"


def test_probe_starting_dead_warns_on_the_first_run(duck, dns, probed_run):
    dns.behaviour = "refused"
    code, _, err = probed_run()
    assert code == 0 and len(duck.requests) == 1
    assert "address probe failed" in err


def test_status_before_the_first_run_says_not_yet_checked(runner, conf):
    proc = runner(conf())("status")
    assert proc.returncode == 0
    assert "Address probe:   not yet checked" in proc.stdout


def test_failing_probe_state_is_written_once_not_every_run(duck, dns, probed_run):
    run = probed_run
    run()
    dns.behaviour = "servfail"
    run.later(60)
    run()
    before = os.stat(run.cfg.parent / "state.json")
    run.later(60)
    run()
    after = os.stat(run.cfg.parent / "state.json")
    assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns)
