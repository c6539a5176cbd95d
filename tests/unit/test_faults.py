"""Faults on the updater's own side of the pipeline, counted in requests to DuckDNS.

A damaged state file, a state directory that cannot be written (a full or read-only disk),
answers that confirm nothing, a probe that lies in time (stale) or alternates (flapping),
a run stopped before DuckDNS answered, a failed one-off request: each ends within the
bounds docs/design.md states, and costs DuckDNS no more than the backoff allows.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import pytest
from support.helpers import (
    CANARY,
    CLEAN_ENV,
    DEBIAN_PYTHON,
    PUBLIC,
    ROOT,
    assert_no_canary,
    faketime_env,
    skip_or_fail,
    state_of,
)

from duckdns import api, backoff, decide, state

NEW_PUBLIC = "198.51.100.20"


@pytest.fixture
def probed_run(probed, runner):
    return runner(probed)


def reject(constant: str) -> None:
    raise AssertionError(f"{constant} in state.json: not JSON")


def runs(run, minutes: int, step: int = 60) -> tuple[list[int], list[str]]:
    """``minutes`` timer runs ``step`` seconds apart: (exit codes, lines said)."""
    codes, said = [], []
    for _ in range(minutes):
        run.later(step)
        code, _, err = run()
        codes.append(code)
        said += err.splitlines()
    return codes, said


# -- the state file ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "damage",
    [
        {"last_run": "yesterday"},
        {"next_attempt": float("nan"), "failures": 3, "failure_kind": "error"},
        {"failing_since": float("inf"), "failures": 2},
        {"ipv4_confirmed": -5, "sent_ipv4": "auto"},
        {"ipv4_confirmed": 10**400},
        {"failures": True},
        {"failures": 1.5},
        {"probe_state": ["ok"]},
        {"last_error": "x" * 1000},
        {"alert_at": {"when": 1}},
    ],
    ids=lambda d: ",".join(d),
)
def test_a_damaged_field_is_dropped_with_one_warning_and_the_file_rewritten(
    duck, conf, runner, damage
):
    run = runner(conf(ipv4="192.0.2.44"))  # a fixed address: nothing to send for a day
    assert run()[0] == 0
    path = state.path_for(str(run.cfg))
    saved = json.loads(Path(path).read_text())
    saved.update(damage)
    Path(path).write_text(json.dumps(saved))  # NaN and Infinity: Python's json writes them
    run.later(60)
    code, _, err = run()
    assert code == 0, err
    warnings = [line for line in err.splitlines() if "dropped" in line]
    damaged = next(iter(damage))  # the others are sound values that go with it
    assert len(warnings) == 1 and f"({damaged})" in warnings[0], err
    repaired = json.loads(Path(path).read_text(), parse_constant=reject)  # no NaN, Infinity
    assert state._valid(state.FIELDS[damaged], repaired[damaged]), repaired
    run.later(60)
    assert run() == (0, "", "")  # said once: the file is sound now


@pytest.mark.parametrize(
    "content",
    [b"[" * 100_000 + b"]" * 100_000, b"{" * 50_000, b"\xff\xfe", b"null", b"x" * 70_000],
    ids=["nested", "unclosed", "not-utf8", "null", "oversized"],
)
def test_a_corrupt_state_file_is_one_warning_and_a_fresh_state(duck, conf, runner, content):
    run = runner(conf())
    path = Path(state.path_for(str(run.cfg)))
    path.write_bytes(content)
    code, _, err = run()
    assert code == 0 and len(duck.requests) == 1, err
    assert len([line for line in err.splitlines() if str(path) in line]) == 1, err
    assert json.loads(path.read_text())["last_result"] == "updated"


def test_a_fifo_as_state_file_neither_blocks_nor_crashes(duck, conf, runner):
    run = runner(conf())
    path = Path(state.path_for(str(run.cfg)))
    os.mkfifo(path)
    code, _, err = run()  # would block for ever on open() without O_NONBLOCK
    assert code == 0 and "is not a regular file" in err
    assert path.is_file() and not path.is_fifo()  # replaced by a sound file


# -- a state directory that cannot be written --------------------------------------------------

# One shell: the state directory is a real tmpfs, made full (no block, no inode left) or
# read-only, and the real updater runs once a simulated minute. The test unmounts it. (No
# private mount namespace: unshare cannot make / private inside the Debian 13 test chroot.)
UNWRITABLE = textwrap.dedent(
    """\
    set -e
    dir=$1; mode=$2; minutes=$3; shift 3
    mount -t tmpfs -o size=64k,nr_inodes=4,mode=0700 tmpfs "$dir"
    cp "$CONF_SOURCE" "$dir/duckdns.conf"
    if [ "$mode" = full ]; then
        dd if=/dev/zero of="$dir/fill" bs=4k 2>/dev/null || true
    else
        mount -o remount,ro "$dir"
    fi
    i=0
    while [ $i -lt "$minutes" ]; do
        FAKETIME="+${i}m" LD_PRELOAD="$FAKETIME_LIB" "$@" --config "$dir/duckdns.conf" update \
            && echo "exit 0" || echo "exit $?"
        i=$((i + 1))
    done
    """
)


@pytest.mark.parametrize("mode", ["full", "read-only"])
def test_an_unwritable_state_directory_sends_twice_a_half_hour_at_most(duck, conf, tmp_path, mode):
    """DuckDNS down for an hour, and no state can be written: without a record every run
    would look like the first (7,000 requests a day). Real runs, real tmpfs, libfaketime."""
    if os.geteuid() != 0:
        skip_or_fail("needs root to mount a tmpfs")
    try:
        lib = faketime_env("+0")["LD_PRELOAD"]
    except LookupError as exc:
        skip_or_fail(str(exc))
    duck.default = "status:503"
    source = conf()
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    script = tmp_path / "unwritable.sh"
    script.write_text(UNWRITABLE)
    env = {**CLEAN_ENV, "CONF_SOURCE": str(source), "FAKETIME_LIB": lib, "PYTHONPATH": str(ROOT)}
    minutes = 60
    command = ["sh", str(script), str(state_dir), "full" if mode == "full" else "ro"]
    try:
        proc = subprocess.run(
            [*command, str(minutes), DEBIAN_PYTHON, "-m", "duckdns"],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
    finally:
        subprocess.run(["umount", "-l", str(state_dir)], capture_output=True, check=False)
    assert_no_canary(proc.stdout, proc.stderr)
    codes = [line for line in proc.stdout.splitlines() if line.startswith("exit ")]
    assert len(codes) == minutes, proc.stdout + proc.stderr
    assert "exit 70" not in codes, proc.stderr
    # 60 minutes hold two half-hour turns of at most two runs each, one single try a run.
    assert 1 <= len(duck.requests) <= 4, len(duck.requests)
    warnings = [line for line in proc.stderr.splitlines() if "cannot write" in line]
    assert 1 <= len(warnings) <= 4 and all("twice every half hour" in w for w in warnings)
    assert ("No space left" if mode == "full" else "Read-only file system") in warnings[0]


def test_unrecorded_turns_are_two_minutes_every_half_hour_and_spread_by_name():
    salt = "piserver"
    turns = [t for t in range(0, 86400, 60) if backoff.unrecorded_turn(t, salt)]
    assert len(turns) == 2 * 48  # two runs a minute apart in each half hour, at the most
    other = [t for t in range(0, 86400, 60) if backoff.unrecorded_turn(t, "cloud")]
    assert turns != other, "hosts are spread over the half hour, not all at :00 and :30"


# -- a run stopped before DuckDNS answered -----------------------------------------------------


def test_a_run_stopped_mid_request_counts_as_a_failed_attempt(duck, conf, runner):
    """The unit's time limit (or a power cut) kills a run in flight: the next run says so
    once, counts it in the backoff and goes ahead (the wait after it is over)."""
    run = runner(conf())
    assert run()[0] == 0
    path = state.path_for(str(run.cfg))
    saved = json.loads(Path(path).read_text())
    saved["in_flight"] = int(run.now)  # what a run killed after its first request leaves
    Path(path).write_text(json.dumps(saved))
    run.later(90)  # the killed run took 90 s: its backoff minute is over
    code, _, err = run("update", "--force")
    assert code == 0 and len(duck.requests) == 2
    assert "the previous run was stopped before DuckDNS answered; next attempt now" in err
    assert "updates work again after 1 min, 1 failed attempt" in err
    assert state_of(run.cfg)["in_flight"] is None


class Killed(BaseException):
    """SIGTERM from the unit's time limit: the process ends where it is."""


@pytest.mark.parametrize("before", ["first run", "config changed"])
def test_a_new_config_stopped_mid_request_waits_like_any_other(
    before, duck, conf, runner, monkeypatch
):
    """A run killed in flight on its first update (or the first after a configuration
    change) is a failed attempt like any other: the next timer run, inside the backoff's
    minute, sends nothing; the first after it does."""
    run = runner(conf())
    if before == "config changed":
        assert run()[0] == 0
        conf(ipv4="192.0.2.44")  # the same file, rewritten
    sent = len(duck.requests)
    real_send = api.send

    def hang(*args, **kw):
        raise Killed

    monkeypatch.setattr(api, "send", hang)
    with pytest.raises(Killed):
        run()
    monkeypatch.setattr(api, "send", real_send)
    run.later(15)
    code, _, err = run()
    assert code == 0 and len(duck.requests) == sent, err
    assert "the previous run was stopped before DuckDNS answered; next attempt in 45 s" in err
    run.later(45)
    code, _, err = run()
    assert code == 0 and len(duck.requests) == sent + 1, err
    assert "updates work again after 1 min, 1 failed attempt" in err
    saved = state_of(run.cfg)
    assert saved["in_flight"] is None and saved["failures"] == 0


def test_the_attempt_is_on_record_before_the_first_request(duck, conf, runner, monkeypatch):
    run = runner(conf())
    seen = []
    real_send = api.send

    def spy(cfg, query, **kw):
        seen.append(state_of(run.cfg)["in_flight"])
        return real_send(cfg, query, **kw)

    monkeypatch.setattr(api, "send", spy)
    assert run()[0] == 0
    assert seen == [int(run.now)]
    assert state_of(run.cfg)["in_flight"] is None


# -- a failure ends only with an answer, and then at once ---------------------------------------


def test_a_failed_force_during_a_short_outage_heals_within_the_backoff(duck, conf, runner):
    run = runner(conf(ipv4="192.0.2.44"))  # a fixed address: nothing due for a day
    assert run()[0] == 0
    duck.default = "garbage"  # a maintenance page: a temporary failure, not retried in-run
    code, _, _ = run("update", "--force")
    assert code == 75 and len(duck.requests) == 2
    duck.default = "ok"  # DuckDNS is back a moment later; nothing else is due for a day
    codes, said = runs(run, 3)
    assert codes == [0, 0, 0] and said == ["updates work again after 1 min, 1 failed attempt"]
    assert len(duck.requests) == 3
    assert json.loads(run("status", "--json")[1])["failures"] == 0


# -- answers that confirm nothing --------------------------------------------------------------


def test_a_bare_ok_is_said_once_and_asked_again_every_5_minutes(duck, probed_run):
    run = probed_run
    duck.default = "bare"  # the update takes effect, the answer shows nothing
    code, _, err = run()
    assert code == 0 and "bare OK" in err and len(duck.requests) == 1
    codes, said = runs(run, 60)
    assert set(codes) == {0} and said == [], said
    assert len(duck.requests) == 1 + 12, "every 5 minutes, not every minute (60)"
    duck.default = "ok"
    codes, said = runs(run, 5)
    assert said == [
        "DuckDNS's answers show the records again",
        f"piserver: IPv4 {PUBLIC}, IPv6 - (was -, -)",  # the first answer that shows it
    ], said
    before = len(duck.requests)
    runs(run, 30)
    assert len(duck.requests) == before, "confirmed: nothing more to send"


def test_a_bare_ok_to_a_fixed_address_is_asked_again_every_5_minutes(duck, conf, runner):
    run = runner(conf(ipv4="192.0.2.44"))
    duck.default = "bare"
    run()
    runs(run, 60)
    assert len(duck.requests) == 13
    assert state_of(run.cfg)["ipv4_confirmed"] is None


# -- the probe: stale or flapping --------------------------------------------------------------


def test_a_stale_probe_delays_a_change_by_an_hour_at_most(duck, dns, probed_run):
    """The probe keeps repeating the old address (a stale cache on the way) while the
    address DuckDNS sees has changed: the change is published within PROBE_TRUST."""
    run = probed_run
    assert run()[0] == 0 and duck.ipv4 == PUBLIC
    duck.client_ip = NEW_PUBLIC  # the probe still says PUBLIC
    minutes = 0
    while duck.ipv4 != NEW_PUBLIC and minutes < 120:
        runs(run, 1)
        minutes += 1
    assert minutes <= decide.PROBE_TRUST // 60, minutes
    assert len(duck.requests) == 2


def test_a_stale_probe_costs_a_request_an_hour(duck, dns, probed_run):
    run = probed_run
    run()
    codes, said = runs(run, 24 * 60)
    assert set(codes) == {0} and said == []
    assert len(duck.requests) == 1 + 24


def test_a_flapping_probe_stays_under_12_requests_an_hour_and_is_said_once(duck, dns, probed_run):
    run = probed_run
    assert run()[0] == 0
    said = []
    for minute in range(180):  # the probe alternates: DuckDNS's address, another, ...
        dns.behaviour = "lie" if minute % 2 == 0 else "normal"
        _, lines = runs(run, 1)
        said += lines
    assert len(duck.requests) - 1 <= 3 * 12, len(duck.requests)
    assert len(said) == 1 and "address probe answered" in said[0], said
    assert CANARY not in "".join(said)


# -- a probe or router that answers only now and then: said once while it flaps ----------------

GLOBAL = "81.2.69.160"  # a global address: a router's answer decides only with one


def test_the_damper_says_one_change_at_once_and_a_flap_once():
    """decide.damp's rules, minute by minute (the pipeline tests below count real lines)."""
    fields: tuple = ("", None, 0)  # left, changed, flaps: a fresh state
    said, before = [], ""
    for minute, value in enumerate(["ok", "ok", "no", "ok", "no", "ok", "no"] + ["no"] * 12):
        say, *fields = decide.damp(before, value, *fields, minute * 60)
        said.append(say)
        before = value
    assert said[:3] == ["change", "", "change"]  # the first value, then one change: at once
    assert said[3:7] == ["", "flapping", "", ""]  # back and forth: one line
    # the value holds 10 minutes (decide.SETTLE) after its last change: said once
    assert said[7:].count("settled") == 1 and said[6 + decide.SETTLE // 60] == "settled", said
    assert set(said[7:]) == {"", "settled"} and fields[2] == 0


def test_the_damper_says_a_sequence_of_new_values_at_once():
    """Changes that do not go back (direct, carrier-grade NAT, double NAT, unknown) are
    not a flap, however close: each is said (the booted test_miniupnpd runs seconds apart)."""
    fields: tuple = ("", None, 0)
    said, before = [], ""
    for second, value in enumerate(["a", "a", "b", "b", "c", "c", "d"]):
        say, *fields = decide.damp(before, value, *fields, second)
        said.append(say)
        before = value
    assert said == ["change", "", "change", "", "change", "", "change"]


def test_the_damper_is_not_fooled_by_a_clock_gone_backwards():
    say, *fields = decide.damp("a", "b", "", None, 0, 10_000)
    assert say == "change"
    say, *_ = decide.damp("b", "a", *fields, 5_000)  # an hour and more back: not recent
    assert say == "change"


# A probe's silence at a tenth of its real time-out: the damper works on what the probe said
# (an answer or none), never on how long it waited, so the rule is the same; that a silent
# router or name server costs its real time-out and no more is test_router's and
# test_probe's, in real seconds.
SHORT = 0.1


@pytest.fixture
def short_silence(monkeypatch):
    """The router's exchange and each DNS probe question end after SHORT seconds."""
    from functools import partial

    from duckdns import probe, router

    monkeypatch.setattr(router, "TIMEOUT", SHORT)
    monkeypatch.setattr(probe, "public_ipv4", partial(probe.public_ipv4, timeout=SHORT))


def flapping_lines(run, flip, minutes: int) -> list[str]:
    """Run ``minutes`` timer runs a minute apart, ``flip(minute)`` before each."""
    said = []
    for minute in range(minutes):
        flip(minute)
        code, _, err = run()
        assert code in (0, 75), err
        said += err.splitlines()
        run.later(60)
    return said


def test_a_router_that_answers_every_other_minute_is_said_once(duck, conf, runner, short_silence):
    """The RFC 6886/6887 responder answers one minute and is silent the next (probe =
    router, the router alone): at most 6 journal lines in 30 minutes (59 before the damper),
    DuckDNS asked no more than a dead probe costs; once it answers steadily, one line each."""
    from support.natpmp_responder import Responder

    duck.client_ip = GLOBAL
    with Responder("ok", GLOBAL) as r:
        run = runner(conf(probe="router", router=f"{r.address[0]}:{r.address[1]}"))

        def flip(minute: int) -> None:
            r.mode = "ok" if minute % 2 == 0 else "silent"

        said = flapping_lines(run, flip, 30)
        assert [line.split(" (")[0] for line in said] == [
            f"piserver: IPv4 {GLOBAL}, IPv6 -",  # the first update
            "reachability: direct: port forwarding on this router can reach the Pi",
            "address probe failed",  # one change: said at once
            "reachability: unknown",
            "address probe keeps changing between ok and failing",
            "reachability: the verdict keeps changing between direct and unknown",
        ], said
        assert len(duck.requests) <= 1 + 30 // 5, len(duck.requests)  # 5-minute cadence
        assert [line for line in said if "keeps changing" in line] == [
            "address probe keeps changing between ok and failing (router@127.0.0.1:"
            f"{r.address[1]}: no answer from 127.0.0.1:{r.address[1]} within {SHORT:g} s): asking "
            "DuckDNS at most every 5 minutes while it cannot decide; said again once it has "
            "held for 10 minutes",
            "reachability: the verdict keeps changing between direct and unknown (does the "
            "router answer only now and then?): said again once it has held for 10 minutes",
        ]
        # It settles: one line for the probe, one for the verdict, then nothing.
        settled = flapping_lines(run, lambda minute: setattr(r, "mode", "ok"), 20)
        assert len(settled) == 2, settled
        assert settled[0].startswith("address probe works again (it says 81.2.69.160) (steady")
        assert settled[1].startswith("reachability: direct: port forwarding on this router")
        assert settled[1].endswith("(steady again for 10 minutes)")
    assert CANARY not in "".join(said + settled)


def test_a_router_that_flips_once_and_stays_is_said_at_once(duck, conf, runner, short_silence):
    from support.natpmp_responder import Responder

    duck.client_ip = GLOBAL
    with Responder("ok", GLOBAL) as r:
        run = runner(conf(probe="router", router=f"{r.address[0]}:{r.address[1]}"))
        first = flapping_lines(run, lambda minute: None, 15)
        assert [line.split(":")[0] for line in first] == ["piserver", "reachability"], first
        r.mode = "silent"  # the router's NAT-PMP/PCP turned off for good
        code, _, err = run()
        lines = err.splitlines()
        assert [line.split(" (")[0] for line in lines] == [
            "address probe failed",
            "reachability: unknown",
        ], lines
        run.later(60)
        assert flapping_lines(run, lambda minute: None, 20) == []


def test_a_dns_probe_that_answers_every_other_minute_is_said_once(
    duck, dns, probed_run, short_silence
):
    run = probed_run

    def flip(minute: int) -> None:
        dns.behaviour = "normal" if minute % 2 == 0 else "silent"

    said = flapping_lines(run, flip, 30)
    assert [line.split(" (")[0] for line in said] == [
        "piserver: IPv4 203.0.113.7, IPv6 -",  # the first update
        "address probe failed",
        "address probe keeps changing between ok and failing",
    ], said
    assert len(duck.requests) <= 1 + 30 // 5, len(duck.requests)
    dns.behaviour = "normal"  # minute 29 was silent
    code, _, err = run("-vv", "update")  # each unsaid change is told at -vv
    assert "address probe ok: not said while it keeps changing" in err
    run.later(60)
    said = flapping_lines(run, lambda minute: setattr(dns, "behaviour", "normal"), 20)
    assert [line.split(" (")[0] for line in said] == ["address probe works again"], said
