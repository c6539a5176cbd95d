"""Failing politely: backoff across runs, the lines it prints, status and alerts.

The scenarios run the updater in-process once per simulated minute (the Runner fixture's
clock) against the real-TLS look-alike, and count what reaches it: the same rules as
scripts/bench's simulated day (``--day``), at a reduced scale.
"""

from __future__ import annotations

import json

import pytest
from support.helpers import CANARY, state_of

from duckdns import api, backoff

WRONG = "11111111-2222-3333-4444-555555555555"  # well-formed, but not the account's: KO


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    """The first failure's in-run retries, in milliseconds instead of 15 s."""
    monkeypatch.setattr(api, "FIRST_WAIT", 0.001)


def minutes(run, count: int, *argv: str) -> list[tuple[int, str]]:
    """``count`` timer runs one simulated minute apart: (exit code, stderr) of each."""
    results = []
    for _ in range(count):
        code, _, err = run(*argv)
        results.append((code, err))
        run.later(60)
    return results


# -- the schedule ---------------------------------------------------------------------


def test_delays_double_to_their_caps():
    assert [backoff.delay("error", n) for n in range(1, 7)] == [60, 120, 240, 480, 900, 900]
    assert [backoff.delay("ko", n) for n in range(1, 7)] == [300, 600, 1200, 2400, 3600, 3600]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (40, "40 s"),
        (300, "5 min"),
        (3 * 3600 + 12 * 60 + 5, "3 h 12 min"),
        (7200, "2 h"),
        (86400 + 3 * 3600, "1 d 3 h"),
    ],
)
def test_durations_read_like_the_issue_asks(seconds, text):
    assert backoff.duration(seconds) == text


# -- a revoked token ------------------------------------------------------------------


def test_revoked_token_three_hours_six_requests_three_error_lines(duck, conf, runner):
    run = runner(conf(token=WRONG))
    results = minutes(run, 180)
    # Attempts at 0, 5, 15, 35, 75 and 135 min (5 min doubling to 1 h): 6, not 180.
    assert len(duck.requests) == 6
    errors = [err for _, err in results if err]
    assert len(errors) == 3, errors  # the first failure, then reminders 1 h apart at most
    assert "KO" in errors[0] and "next attempt in 5 min" in errors[0]
    assert errors[1].startswith("still failing after 1 h 15 min (5 failed attempts)")
    codes = [code for code, _ in results]
    assert codes[0] == 1 and codes.count(1) == 6, "each failed attempt exits 1"
    assert codes.count(0) == 174, "a run inside the wait is a successful no-op"
    state = state_of(run.cfg)
    assert state["failures"] == 6 and state["failure_kind"] == "ko"
    assert state["alert"] == "down"


def test_each_attempt_is_said_at_verbose(duck, conf, runner):
    run = runner(conf(token=WRONG))
    results = minutes(run, 16, "-v", "update")
    said = [err for _, err in results]
    assert "next attempt in 5 min" in said[0]
    assert "attempt 2 failed" in said[5] and "next attempt in 10 min" in said[5]
    assert "attempt 3 failed" in said[15]
    assert "next attempt in 4 min" in said[1] and "nothing sent" in said[1]


def test_a_fixed_config_sends_at_the_very_next_run(duck, conf, runner):
    cfg = conf(token=WRONG)
    run = runner(cfg)
    minutes(run, 3)
    assert len(duck.requests) == 1
    conf(token=CANARY)  # what dpkg-reconfigure does: the file is rewritten
    code, _, err = run()
    assert code == 0 and len(duck.requests) == 2
    assert "updates work again after 3 min, 1 failed attempt" in err
    state = state_of(cfg)
    assert state["failures"] == 0 and state["next_attempt"] is None
    assert state["alert"] == "up" and "work again" in state["alert_text"]


def test_force_sends_at_the_very_next_run(duck, conf, runner):
    run = runner(conf(token=WRONG))
    minutes(run, 2)
    assert len(duck.requests) == 1
    code, _, err = run("update", "--force")
    assert code == 1 and len(duck.requests) == 2
    assert "KO" in err, "a forced attempt always says why it failed"


# -- an outage --------------------------------------------------------------------------


def test_outage_single_tries_and_first_success_within_15_min(duck, conf, runner):
    duck.default = "status:503"
    run = runner(conf())
    results = minutes(run, 1)
    # The first failure still bridges a blip with in-run retries (6 tries here: the waits
    # are shortened, so the 30 s budget never ends them before MAX_RETRIES).
    first = len(duck.requests)
    assert first == 1 + api.MAX_RETRIES
    results += minutes(run, 119)
    # Then one try per attempt: 1, 2, 4, 8 and 15, 15, ... minutes apart.
    # Attempts at 1, 3, 7, 15, 30, 45, 60, 75, 90, 105 min: 10 single tries.
    assert len(duck.requests) == first + 10
    assert [code for code, _ in results].count(75) == 11
    duck.default = "ok"
    before = len(duck.requests)
    for _ in range(16):  # the runs of the first 15 minutes after DuckDNS is back
        code, _, err = run()
        if len(duck.requests) > before:
            break
        run.later(60)
    else:
        pytest.fail("no request within 15 minutes of DuckDNS being back")
    assert code == 0 and "updates work again after 2 h" in err
    assert "11 failed attempts" in err


def test_backoff_state_is_shown_by_status(duck, conf, runner):
    cfg = conf(token=WRONG)
    run = runner(cfg)
    minutes(run, 1)
    code, out, _ = run("status")
    assert code == 0
    assert "Failing since:" in out and "Failures:        1 attempt in a row (ko)" in out
    assert "Next attempt:" in out and ("(in 3 min)" in out or "(in 4 min)" in out)
    assert "KO" in out  # the last error
    code, out, _ = run("status", "--json")
    shown = json.loads(out)
    assert shown["failures"] == 1 and shown["failing_since"] and shown["next_attempt"]
    assert "KO" in shown["last_error"]


# -- the real process: no requests import, and faketime ----------------------------------


def loaded_modules(runner, cfg) -> set[str]:
    """The modules a real ``duckdns --config CFG update`` imported."""
    run = runner(cfg, process=True)
    code, _, err = run("update", modules=True)
    assert code == 0, err
    return run.modules


def test_a_run_inside_the_wait_imports_no_requests(runner, duck, conf, tmp_path):
    cfg = conf(token=WRONG)
    assert runner(cfg)("update").returncode == 1
    assert not loaded_modules(runner, cfg) & {"requests", "urllib3", "ssl"}
    assert len(duck.requests) == 1


def test_faketime_six_minutes_later_the_real_process_tries_again(runner, duck, conf):
    run = runner(conf(token=WRONG), process=True)
    assert run().returncode == 1
    assert run().returncode == 0  # inside the wait
    assert len(duck.requests) == 1
    run.later(6 * 60)  # libfaketime, in the process
    assert run().returncode == 1
    assert len(duck.requests) == 2
    assert state_of(run.cfg)["failures"] == 2


def test_a_run_inside_the_wait_loads_less_than_a_steady_state_run(
    runner, duck, dns, conf, tmp_path
):
    """The CPU claim's mechanism (the numbers come from scripts/bench --day): a run inside
    the backoff imports a subset of what a steady-state run imports, and no probe."""
    host, port = dns.address
    steady = conf("steady.conf", probe=f"cloudflare@{host}:{port}")
    (tmp_path / "w").mkdir()
    waiting = conf("w/duckdns.conf", token=WRONG)  # a state.json of its own
    assert runner(steady)("update").returncode == 0
    assert runner(waiting)("update").returncode == 1
    queries = len(dns.queries)
    steady_modules = loaded_modules(runner, steady)
    assert len(dns.queries) > queries, "the steady-state run asked the probe"
    queries = len(dns.queries)
    waiting_modules = loaded_modules(runner, waiting)
    assert len(dns.queries) == queries, "a run inside the wait asks no one"
    assert waiting_modules <= steady_modules, sorted(waiting_modules - steady_modules)
    assert len(duck.requests) == 2


def test_after_the_wait_duckdns_is_asked_even_with_nothing_else_due(duck, dns, conf, runner):
    """Only DuckDNS's answer ends a failure streak, and the run after the wait asks it even
    when nothing else is due (here the distrusted probe's 5 minutes are not over): a short
    outage heals within the backoff's bound, not at the next refresh."""
    host, port = dns.address
    duck.client_ip = "198.51.100.1"  # not what the probe says: the probe is distrusted
    run = runner(conf(probe=f"cloudflare@{host}:{port}"))
    assert run()[0] == 0
    duck.default = "status:503"
    run.later(300)
    code, _, err = run()
    assert code == 75 and len(duck.requests) == 1 + 1 + api.MAX_RETRIES
    run.later(30)  # inside the backoff's minute: nothing sent
    assert run()[0] == 0 and len(duck.requests) == 2 + api.MAX_RETRIES
    run.later(30)  # the minute is over, the probe's 5 minutes are not: one single try
    code, _, err = run()
    assert code == 75 and len(duck.requests) == 3 + api.MAX_RETRIES
    assert state_of(run.cfg)["failures"] == 2
    duck.default = "ok"
    run.later(120)  # the second wait (2 minutes) is over
    code, _, err = run()
    assert code == 0 and "updates work again after 3 min, 2 failed attempts" in err
    assert len(duck.requests) == 4 + api.MAX_RETRIES
