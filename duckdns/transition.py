"""After the requests: one pure transition from the records a run read to the ones it leaves.

Step 4 of docs/design.md's "The update, one way through": :func:`transition` decides, as
data, the new records and the :class:`Events` (the lines, the ping, the notification due,
the address change for the hooks, the exit status) for every kind of run: an attempt left
in flight (a failed attempt, first of all), the backoff's wait, nothing to publish, nothing
due, requests answered. Nothing here reads the system or talks to anyone.
"""

from __future__ import annotations

from duckdns import EXIT_KO, EXIT_OK, EXIT_TEMPFAIL, backoff, decide, report
from duckdns.decide import Family
from duckdns.records import Result

TYPE_CHECKING = False  # typing.TYPE_CHECKING: typing costs a timer run a tenth of its CPU
if TYPE_CHECKING:
    from duckdns import ExitStatus
    from duckdns.config import Config
    from duckdns.notify import Message
    from duckdns.records import Outbox, Published, State
    from duckdns.router import Answer as RouterAnswer

STOPPED = "the previous run was stopped before DuckDNS answered"


class Events:
    """What a run does after the transition, in order: say ``lines`` ((level, text), a
    duckdns.report function's name and its text), hand ``changed`` (the old and new
    addresses) to the hooks, ping the monitor (``ping``: status and text), send the
    notification ``message`` (``told``: the outbox once it is taken; ``first``: the first
    attempt at this news), and exit with ``status``."""

    __slots__ = ("lines", "changed", "ping", "message", "told", "first", "status")

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []
        self.changed: tuple[tuple[str, str], tuple[str, str]] | None = None
        self.ping: tuple[str, str] | None = None
        self.message: Message | None = None
        self.told: Outbox | None = None
        self.first = False
        self.status: ExitStatus = EXIT_OK

    def say(self, level: str, text: str) -> None:
        self.lines.append((level, text))


def waiting(state: State, now: int, force: bool, fingerprint: str) -> bool:
    """Whether this run is inside the backoff's wait after a failed attempt (an attempt the
    last run never finished counts as one): it then sends nothing and asks no one."""
    new = _resumed(state, now)[0]
    return backoff.waiting(new.streak, now, force, new.run.fingerprint != fingerprint)


def begin(state: State, plan: decide.Plan, now: int) -> State:
    """The records to save before the first request: the attempt is on record, with the
    configuration it is for (a run stopped in flight must not leave the next one a "changed
    configuration", which would skip the backoff's wait). An attempt that fails before any
    request (nothing to publish) is never in flight."""
    new = _resumed(state, now)[0]  # said by the transition
    _begin(new, plan, now)
    return new


def transition(
    state: State,
    cfg: Config,
    plan: decide.Plan | None,
    heard: RouterAnswer | None,
    answers: list[decide.Answer],
    now: int,
    *,
    force: bool,
) -> tuple[State, Events]:
    """The records this run leaves and what it does next, from the records it read, the
    plan (None: inside the backoff's wait, nothing planned), the router's answer (None: not
    asked) and DuckDNS's answers."""
    new, events = _resumed(state, now)
    if plan is None:  # inside the backoff's wait
        events.say("info", backoff.waiting_message(new.streak, now))
        return new, events
    if plan.missing:
        _begin(new, plan, now)
        healthy, message = False, plan.missing
        events.status = _settle(new, events, Result.ERROR, message, now, now, force)
    elif not plan.requests:
        _unchanged(new, events, cfg, plan)
        healthy, message = not new.streak.failures, ""
        _say_probe(new, events, state.probe.state, plan.probe_state, plan, now)
        _reach(new, events, heard, now)
        _record_probe(new, plan.probe_state, plan.probe_answer, None, now)
    else:
        _begin(new, plan, now)
        outcome = decide.assess(plan, answers)
        old = new.ipv4.value, new.ipv6.value
        _record(new, events, outcome, plan, now)
        _say_probe(new, events, state.probe.state, outcome.probe_state, plan, now)
        _say_change(new, events, cfg, old)
        _reach(new, events, heard, now)
        healthy, message = outcome.kind == Result.OK, outcome.message
        events.status = _settle(new, events, outcome.kind, message, now, now, force)
    _tell(new, events, cfg, healthy, message, now)
    return new, events


def _resumed(state: State, now: int) -> tuple[State, Events]:
    """A copy of the records to change, the one step every run starts with: an attempt
    that began and never recorded its end is a failed attempt at its start."""
    new, events = state.copy(), Events()
    began, new.run.in_flight = new.run.in_flight, None
    if began is not None:
        _settle(new, events, Result.ERROR, STOPPED, began, now)
    return new, events


def _begin(state: State, plan: decide.Plan, now: int) -> None:
    if plan.new_config:  # first run, changed configuration or new updater: nothing confirmed
        state.forget()
        state.run.fingerprint = plan.fingerprint
    state.run.last_run = now
    state.run.in_flight = now if plan.requests else None


def _unchanged(state: State, events: Events, cfg: Config, plan: decide.Plan) -> None:
    if cfg.ipv6 == "auto" and plan.want[Family.IPV6] is None:
        events.say(
            "info", "ipv6 = auto, but this host has no global IPv6 address: AAAA left as it is"
        )
    events.say(
        "info",
        f"nothing changed (IPv4 {state.ipv4.value or '-'}, IPv6 {state.ipv6.value or '-'}): "
        "no request sent",
    )


def _record(
    state: State, events: Events, outcome: decide.Outcome, plan: decide.Plan, now: int
) -> None:
    """What the run's answers meant (a duckdns.decide.Outcome), and the lines it calls for
    when answers that confirm nothing (a bare "OK") begin or end."""
    run = state.run
    run.in_flight = None
    for family in outcome.tried:
        _published(state, family).tried = now  # the 5-minute cadences
    for family, value in outcome.shown.items():
        _published(state, family).value = value  # what DuckDNS holds now, for status
    for family, (want, shown) in outcome.confirmed.items():
        record = _published(state, family)
        record.sent, record.confirmed = want or "", None if shown is None else now
        if shown is not None:
            record.value = shown
    for family in outcome.unconfirmed:  # no longer what was last confirmed: sent next run
        _published(state, family).sent = ""
    if outcome.kind == Result.OK:
        run.last_result = Result.UPDATED if outcome.updated else Result.NOCHANGE
        run.last_success, run.last_error = now, ""
    else:
        run.last_result, run.last_error = outcome.kind, report.redact(outcome.message)
    if outcome.updated:
        run.last_change = now
    _record_probe(state, outcome.probe_state, plan.probe_answer, outcome.probe_agreed, now)
    if outcome.bare is True and run.bare_since is None:
        run.bare_since = now
        events.say(
            "warning",
            "DuckDNS answered a bare OK, which shows neither record: each is asked "
            "for again at most every 5 minutes until an answer shows them",
        )
    elif outcome.bare is False and run.bare_since is not None:
        run.bare_since = None
        events.say("notice", "DuckDNS's answers show the records again")


def _say_change(state: State, events: Events, cfg: Config, old: tuple[str, str]) -> None:
    """A changed address: said, and handed to the hooks (duckdns.changed)."""
    new = state.ipv4.value, state.ipv6.value
    if new != old:  # also when a later request of the run failed: this one took effect
        events.say(
            "notice",
            f"{', '.join(cfg.domains)}: IPv4 {new[0] or '-'}, IPv6 {new[1] or '-'}"
            f" (was {old[0] or '-'}, {old[1] or '-'})",
        )
        events.changed = old, new


def _published(state: State, family: Family) -> Published:
    return state.published(family.value)


def _record_probe(
    state: State, probe_state: str, answer: str | None, agreed: bool | None, now: int
) -> None:
    """The probe's state after a run, its answer (None: not asked) and whether DuckDNS's
    answer showed the same address (None: not compared)."""
    probe = state.probe
    if answer is not None:
        probe.answer = answer
    if agreed is not None:
        if agreed:
            probe.confirmed = now
        else:
            probe.disputed = now
    if probe_state != probe.state:
        probe.state, probe.since = probe_state, now


def _settle(
    state: State, events: Events, kind: str, message: str, at: int, now: int, force: bool = False
) -> ExitStatus:
    """Record in the backoff how the attempt made at ``at`` ended, say what it calls for.

    ``kind`` is how the requests ended (Result.OK, KO or ERROR). Returns the exit status.
    """
    streak = state.streak
    if kind == Result.OK:
        news = backoff.succeed(streak, now)
        if news:
            events.say("notice", news)
        return EXIT_OK
    loud = backoff.fail(streak, kind, report.redact(message), at)
    due = streak.next_attempt or now
    wait = f"next attempt in {backoff.duration(due - now)}" if due > now else "next attempt now"
    if streak.failures == 1 or force:
        events.say("error", f"{message}; {wait}")
    elif loud:
        events.say(
            "error",
            f"still failing after {backoff.duration(now - (streak.since or at))} "
            f"({streak.failures} failed attempts): {message}; {wait}",
        )
    else:
        events.say("info", f"attempt {streak.failures} failed: {message}; {wait}")
    return EXIT_KO if kind == Result.KO else EXIT_TEMPFAIL


def _tell(state: State, events: Events, cfg: Config, healthy: bool, message: str, now: int) -> None:
    """The heartbeat's ping and the notification this run calls for, each attempt on record
    before it is made: a ping or a send that is killed (or kills the run) still waits its
    retry time. Their modules are loaded only when configured."""
    if cfg.healthcheck:
        from duckdns import heartbeat

        status = heartbeat.due(state.ping, healthy, now)
        if status is not None:
            state.ping.tried = now
            events.ping = status, message or "OK"
    if cfg.notify:
        from duckdns import notify

        text, box = notify.due(cfg, state, now)
        if text is None:
            state.outbox = box
        else:
            events.message, events.told = text, box
            events.first = state.outbox.tried is None
            state.outbox.tried = now


# -- the probe's and the router's verdicts, damped ---------------------------------------

# The probe's states that have lines; "off" and "unused" follow the configuration, not
# the network, and are never a flap.
_PROBE_SAID = (decide.PROBE_OK, decide.PROBE_FAILING, decide.PROBE_DISTRUSTED)
_SETTLED = f" (steady again for {decide.SETTLE // 60} minutes)"


def _shown(known: tuple[str, ...], value: str) -> str:
    """A value read from the state file, shown only if it is one this updater writes."""
    return value if value in known else "?"


def _say_probe(
    state: State, events: Events, before: str, after: str, plan: decide.Plan, now: int
) -> None:
    """Say, at default verbosity, when the probe starts failing, is found to disagree with
    DuckDNS, or works again; damped as decide.damp says (a probe or router that answers
    only now and then is said once while it flaps, once when it settles)."""
    probe = state.probe
    if before in _PROBE_SAID and after in _PROBE_SAID:
        say, probe.left, probe.changed, probe.flaps = decide.damp(
            before, after, probe.left, probe.changed, probe.flaps, now
        )
    else:  # the first state, or the configuration's: said as it is, no flap
        say = decide.SAY_CHANGE if after != before else ""
        probe.left, probe.changed, probe.flaps = "", None, 0
    targets = "; ".join(plan.probe_errors) or "no answer"
    settled = _SETTLED if say == decide.SAY_SETTLED else ""
    if say == decide.SAY_FLAPPING:
        events.say(
            "warning",
            f"address probe keeps changing between {_shown(_PROBE_SAID, probe.left)} and "
            f"{after}{f' ({targets})' if after == decide.PROBE_FAILING else ''}: asking DuckDNS "
            "at most every 5 minutes while it cannot decide; said again once it has held for "
            f"{decide.SETTLE // 60} minutes",
        )
    elif not say:
        if after != before:
            events.say("debug", f"address probe {after}: not said while it keeps changing")
    elif after == decide.PROBE_FAILING:
        events.say(
            "warning",
            f"address probe failed ({targets}){settled}: asking DuckDNS at most every 5 "
            "minutes until it answers again; check that those targets can be reached (DNS to "
            "the resolvers, NAT-PMP/PCP to the router), or set 'probe' to others",
        )
    elif after == decide.PROBE_DISTRUSTED:
        events.say(
            "warning",
            f"address probe answered {plan.probe_answer} but DuckDNS saw {state.ipv4.value}"
            f"{settled} (a router or resolver that intercepts DNS?): asking DuckDNS at most "
            "every 5 minutes until they agree; set 'probe' to other addresses or 'probe = off'",
        )
    elif after == decide.PROBE_OK and (before in _PROBE_SAID[1:] or before == after):
        events.say(
            "notice",
            f"address probe works again (it says {plan.probe_answer}){settled}: "
            "asking DuckDNS only when the address changes",
        )


def _reach(state: State, events: Events, heard: RouterAnswer | None, now: int) -> None:
    """The reachability verdict from the router's answer (when it was asked) and the
    address DuckDNS recorded; said when it changes, damped as decide.damp says."""
    if heard is None:
        return
    from duckdns import router  # loaded already: the probe asked the router

    reach = state.reach
    key, before = router.verdict(heard, state.ipv4.value), reach.verdict
    say, reach.left, reach.changed, reach.flaps = decide.damp(
        before, key, reach.left, reach.changed, reach.flaps, now
    )
    if key != before:
        reach.verdict, reach.since = key, now
    reach.router_ipv4 = router.external(heard) or ""
    if say == decide.SAY_FLAPPING:
        events.say(
            "notice",
            f"reachability: the verdict keeps changing between "
            f"{_shown(tuple(router.VERDICTS), reach.left)} and {key} (does the router answer "
            f"only now and then?): said again once it has held for {decide.SETTLE // 60} minutes",
        )
    elif not say:
        if key != before:
            events.say("debug", f"reachability {key}: not said while it keeps changing")
    else:
        line = router.describe(key, heard, state.ipv4.value)
        if say == decide.SAY_SETTLED:
            line += _SETTLED
        events.say("notice" if key in (router.DIRECT, router.UNKNOWN) else "warning", line)
