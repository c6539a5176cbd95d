"""The pure core, in-process: plan, the requests, one transition, a simulated minute apart.

No socket, no process, no file: :class:`World` runs the updater's decisions as
duckdns.update.run does (decide.plan, decide.next_request, transition.transition) against
DuckDNS and the address probe as plain functions, so a day of timer runs takes a moment.
Each row of docs/design.md's "Requests to DuckDNS under each fault" table is counted here;
the end-to-end tests (test_backoff, test_faults, test_families...) count the same through
real TLS and the real entry point.
"""

from __future__ import annotations

import pytest

from duckdns import (
    EXIT_KO,
    EXIT_OK,
    EXIT_TEMPFAIL,
    backoff,
    config,
    decide,
    probe,
    state,
    transition,
)
from duckdns.api import Reply
from duckdns.decide import Answer, Family, Request
from duckdns.records import State


@pytest.fixture(autouse=True)
def no_sockets_nor_processes(monkeypatch):
    """The pure core asks no one: a socket or a process here fails the test."""
    import socket
    import subprocess

    def refused(*args: object, **kwargs: object) -> None:
        raise AssertionError("the pure core opened a socket or started a process")

    monkeypatch.setattr(socket, "socket", refused)
    monkeypatch.setattr(subprocess, "Popen", refused)


PUBLIC, NEW_PUBLIC = "203.0.113.7", "198.51.100.20"
V6 = "2001:db8::7"
T0 = 1_800_000_000
HOUR, DAY = 3600, 86400
TOKEN = "a7c4d0ad-114e-40ef-ba1d-d217904a50f2"
FINGERPRINT = decide.fingerprint("the config's identity")


class Duck:
    """DuckDNS as docs/duckdns-api.md's "The update request" states it: ``ip`` empty takes
    the address the request came from (``client``); ``ipv6`` given, ``ip`` is not
    autodetected (A left as it was); a verbose ``OK`` shows both records and UPDATED or
    NOCHANGE; ``KO`` for a wrong token. ``mode``: "ok", "ko", "down" (no answer: a
    temporary failure), "bare" (an ``OK`` that shows nothing)."""

    def __init__(self) -> None:
        self.client, self.ipv4, self.ipv6 = PUBLIC, "", ""
        self.mode, self.requests = "ok", []

    def answer(self, request: Request) -> Answer:
        self.requests.append(request)
        if self.mode == "ko":
            return Answer(request, failure=("ko", "DuckDNS answered KO"))
        if self.mode == "down":
            return Answer(request, failure=("error", "no answer within 10 s"))
        old = self.ipv4, self.ipv6
        if request.ipv6:
            self.ipv6 = request.ipv6
            if request.ip:
                self.ipv4 = request.ip
        else:
            self.ipv4 = request.ip or self.client
        updated = (self.ipv4, self.ipv6) != old
        return Answer(request, reply=Reply(self.ipv4, self.ipv6, "", updated, self.mode != "bare"))

    def count(self, family: Family) -> int:
        return sum(family in request.sets for request in self.requests)


class World:
    """One host's timer runs: the config ``text``, the records, the clock, DuckDNS, the probe
    (``probe``: its answer, None for no answer) and this host's IPv6 address."""

    def __init__(self, text: str = "probe = cloudflare@192.0.2.53\n") -> None:
        self.cfg = config.parse(f"domains = piserver\ntoken = {TOKEN}\n{text}", "/x/duckdns.conf")
        self.state, self.now, self.duck = State(), T0, Duck()
        self.probe: str | None = PUBLIC
        self.host_ipv6: str | None = None
        self.fingerprint = FINGERPRINT  # the config's and the updater's (decide.fingerprint)
        self.lines: list[tuple[str, str]] = []
        self.events = transition.Events()

    def plan(self, force: bool = False) -> decide.Plan:
        """The plan of a run now, the probe asked as configured."""
        asked = None
        if self.cfg.probe:
            failures = [] if self.probe else [(self.cfg.probe[0], "no answer")]
            asked = probe.Probed(self.probe, failures, None)
        host_ipv6 = self.host_ipv6 if self.cfg.ipv6 == "auto" else None
        return decide.plan(
            self.cfg, self.state, self.now, self.fingerprint, asked, host_ipv6, force=force
        )

    def run(self, force: bool = False) -> int:
        """One run, as duckdns.update.run makes it (no file: the records stay in memory)."""
        plan, answers = None, []
        if not transition.waiting(self.state, self.now, force, self.fingerprint):
            plan = self.plan(force)
            while (request := decide.next_request(plan, answers)) is not None:
                answers.append(self.duck.answer(request))
        self.state, self.events = transition.transition(
            self.state, self.cfg, plan, None, answers, self.now, force=force
        )
        self.lines += self.events.lines
        if self.events.ping is not None:  # the monitor takes it (duckdns.update records it)
            self.state.ping.state, self.state.ping.at = self.events.ping[0], self.now
        return self.events.status

    def minutes(self, count: int) -> list[int]:
        """``count`` runs a minute apart, the first one now."""
        codes = []
        for _ in range(count):
            codes.append(self.run())
            self.now += 60
        return codes

    def said(self, *levels: str) -> list[str]:
        return [text for level, text in self.lines if level in levels]


def started() -> World:
    """A host whose first update went through, its lines forgotten."""
    world = World()
    assert world.run() == EXIT_OK
    assert len(world.duck.requests) == 1
    world.now += 60
    world.lines.clear()
    return world


def test_the_transition_is_pure():
    world = started()
    before = world.state.copy()
    plan = world.plan(force=True)
    answers = [world.duck.answer(plan.requests[0])]
    first = transition.transition(
        world.state, world.cfg, plan, None, answers, world.now, force=True
    )
    again = transition.transition(
        world.state, world.cfg, plan, None, answers, world.now, force=True
    )
    assert world.state == before, "the records read are never changed"
    assert first[0] == again[0] and first[1].lines == again[1].lines


# -- the rows of docs/design.md's table ---------------------------------------------------


def test_nothing_changes_probe_working():
    """0 a run; 1 an hour to check the probe against DuckDNS; AAAA refreshed once a day."""
    world = World("probe = cloudflare@192.0.2.53\nipv6 = auto\n")
    world.host_ipv6 = V6
    world.minutes(DAY // 60 + 1)
    a, aaaa = world.duck.count(Family.IPV4), world.duck.count(Family.IPV6)
    assert a == 1 + 24, a  # the first update, then the hourly check (which also refreshes A)
    assert aaaa == 2, aaaa  # the first update and one refresh a day
    assert world.said("error", "warning") == []


def test_a_new_updater_version_sends_each_record_once(monkeypatch):
    """After an upgrade, the first run sends each record once (the fingerprint holds the
    updater's version: a new version may build its requests differently), then nothing."""
    world = World("probe = cloudflare@192.0.2.53\nipv6 = auto\n")
    world.host_ipv6 = V6
    with monkeypatch.context() as older:
        older.setattr(decide, "__version__", "1.0.0")
        world.fingerprint = decide.fingerprint("the config's identity")
    assert world.fingerprint != FINGERPRINT
    world.run()  # the older updater's first update
    world.now += 60
    world.duck.requests.clear()
    world.fingerprint = FINGERPRINT  # upgraded
    world.minutes(30)
    assert (world.duck.count(Family.IPV4), world.duck.count(Family.IPV6)) == (1, 1)
    assert world.said("error", "warning") == []


def test_a_stale_probe_delays_a_change_at_most_an_hour():
    world = started()
    world.duck.client, world.probe = NEW_PUBLIC, PUBLIC  # the probe repeats the old address
    world.minutes(HOUR // 60 + 1)
    assert world.duck.ipv4 == NEW_PUBLIC


def test_a_failing_probe_asks_duckdns_every_5_minutes_and_says_so_once():
    world = started()
    world.probe = None
    world.minutes(60)
    assert len(world.duck.requests) - 1 == 12
    assert len([t for t in world.said("warning") if "probe failed" in t]) == 1
    world.probe = PUBLIC
    world.minutes(5)
    assert len([t for t in world.said("notice") if "works again" in t]) == 1


def test_a_probe_that_answers_every_other_minute_is_said_once_and_asks_12_an_hour():
    world = started()
    for minute in range(60):
        world.probe = PUBLIC if minute % 2 else None
        world.run()
        world.now += 60
    assert len(world.duck.requests) - 1 <= 12
    assert len(world.said("warning", "notice", "error")) <= 3, world.lines


def test_answers_that_confirm_nothing_ask_12_an_hour_per_record():
    world = World("probe = off\nipv4 = 198.51.100.1\nipv6 = " + V6 + "\n")
    world.duck.mode = "bare"
    world.minutes(60)
    assert len(world.duck.requests) == 12  # one request sets both: a literal IPv4
    assert len([t for t in world.said("warning") if "bare OK" in t]) == 1
    world.duck.mode = "ok"
    world.minutes(5)
    assert "DuckDNS's answers show the records again" in world.said("notice")


@pytest.mark.parametrize(("mode", "per_day"), [("down", range(90, 101)), ("ko", range(25, 28))])
def test_a_day_of_failures_costs_duckdns_little(mode, per_day):
    """DuckDNS down: single tries 1, 2, 4, 8, 15, 15… minutes apart (about 100 a day);
    KO: 5, 10, 20, 40, 60… (27 a day). One error, a reminder an hour, one notice after."""
    world = started()
    world.duck.mode = mode
    codes = world.minutes(DAY // 60)
    attempts = len(world.duck.requests) - 1
    assert attempts in per_day, attempts  # docs/design.md: "about 100 a day", "27 a day"
    assert set(codes) == {EXIT_OK, EXIT_KO if mode == "ko" else EXIT_TEMPFAIL}
    errors = world.said("error")  # the first, then a reminder at most an hour apart
    assert errors[0].startswith("DuckDNS answered KO" if mode == "ko" else "no answer")
    assert 20 <= len(errors) <= 25, errors
    world.duck.mode = "ok"
    world.now += HOUR
    world.minutes(1)
    assert world.said("notice")[-1].startswith("updates work again after 1 d")
    assert world.state.streak.alert == "up"


def test_a_failed_force_heals_within_the_backoff():
    world = started()
    world.duck.mode = "down"
    assert world.run(force=True) == EXIT_TEMPFAIL
    world.duck.mode = "ok"
    world.now += 60
    world.minutes(5)
    assert len(world.duck.requests) == 3  # the first update, the failed one, the retry
    assert world.state.streak.failures == 0


def test_a_run_stopped_before_duckdns_answered_is_a_failed_attempt():
    world = started()
    world.duck.client = NEW_PUBLIC
    world.probe = NEW_PUBLIC
    plan = world.plan()
    world.state = transition.begin(world.state, plan, world.now)  # saved, then the run is killed
    world.now += 30
    assert transition.waiting(world.state, world.now, False, plan.fingerprint)
    world.run()  # inside the wait: asks no one, says the stopped attempt once
    assert world.said("error") == [f"{transition.STOPPED}; next attempt in 30 s"]
    assert world.state.streak.failures == 1 and world.state.run.in_flight is None
    world.now += 30
    world.minutes(1)
    assert world.duck.ipv4 == NEW_PUBLIC and world.state.streak.failures == 0


def test_nothing_to_publish_is_a_failure_backed_off_and_pinged_down():
    world = World(
        f"probe = off\nipv4 = off\nipv6 = auto\nhealthcheck = https://hc.example/ping/{TOKEN[:8]}\n"
    )
    codes = world.minutes(60)
    assert world.duck.requests == []
    assert codes[0] == EXIT_TEMPFAIL and world.said("error") == [
        decide.NO_ADDRESS + "; next attempt in 1 min"
    ]
    assert world.state.streak.failures == 7  # minutes 0, 1, 3, 7, 15, 30 and 45
    assert world.state.ping.tried == T0 and world.events.ping is None  # one "down", tried once
    world.host_ipv6 = V6
    world.now += 15 * 60
    world.minutes(1)
    assert [r.ipv6 for r in world.duck.requests] == [V6]
    assert world.events.ping == ("up", "OK")


def test_an_unwritable_state_sends_at_most_4_an_hour():
    turns = [backoff.unrecorded_turn(T0 + minute * 60, "piserver") for minute in range(60)]
    assert 2 <= sum(turns) <= 4


def test_a_damaged_state_is_read_as_if_those_fields_were_absent():
    saved = state.as_dict(started().state)
    damaged = {**saved, "failures": -1, "ipv4": "not an address", "last_success": float("nan")}
    records, dropped = state.parse(damaged)
    assert sorted(dropped) == ["failures", "ipv4", "last_success"]
    assert (records.streak.failures, records.ipv4.value, records.run.last_success) == (0, "", None)
    assert state.parse(saved) == (started().state, [])


# -- the transitions' events --------------------------------------------------------------


def test_inside_the_wait_nothing_but_one_info_line():
    world = started()
    world.duck.mode = "down"
    world.minutes(1)
    world.lines.clear()
    assert world.run() == EXIT_OK
    assert [level for level, _ in world.lines] == ["info"]
    assert world.events.ping is None and world.events.message is None


def test_a_changed_address_is_said_handed_to_the_hooks_and_told():
    world = World(f"probe = cloudflare@192.0.2.53\nnotify = json://127.0.0.1:9/{TOKEN[:8]}\n")
    world.run()
    assert world.events.message is None  # the first run tells nothing of the past
    world.now += 60
    world.duck.client = world.probe = NEW_PUBLIC
    world.run()
    assert world.events.changed == ((PUBLIC, ""), (NEW_PUBLIC, ""))
    assert world.events.message is not None and world.events.message.kind == "address"
    assert world.state.outbox.tried == world.now, "the attempt is on record before the send"
    assert world.events.told is not None and world.events.told.ipv4 == NEW_PUBLIC


def test_drift_is_repaired_in_the_same_run():
    """A verbose answer showing AAAA changed behind our back: AAAA is sent too, at once."""
    world = World(f"probe = off\nipv6 = {V6}\n")
    world.run()
    world.now += 60
    world.duck.ipv6 = "2001:db8::dead"  # someone else's update
    world.run()
    assert [sorted(f.value for f in r.sets) for r in world.duck.requests[-2:]] == [
        ["ipv4"],
        ["ipv6"],
    ]
    assert world.duck.ipv6 == V6
