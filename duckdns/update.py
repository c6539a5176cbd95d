"""``duckdns update`` (and the one-request commands): gather -> plan -> talk to DuckDNS ->
transition -> record -> report, in :func:`run`, top to bottom (docs/design.md, "The update,
one way through"). ``requests`` (through duckdns.api) is imported only when a request is
really sent; the heartbeat, notifications and the router only when configured.
"""

from __future__ import annotations

import time

from duckdns import (
    EXIT_KO,
    EXIT_OK,
    EXIT_TEMPFAIL,
    backoff,
    config,
    decide,
    localaddr,
    probe,
    report,
    state,
)
from duckdns import transition as after
from duckdns.decide import Answer, Plan
from duckdns.records import Result

TYPE_CHECKING = False  # typing.TYPE_CHECKING: typing costs a timer run a tenth of its CPU
if TYPE_CHECKING:
    from collections.abc import Callable

    from duckdns import ExitStatus
    from duckdns.records import State


def run(path: str, *, force: bool = False, dry_run: bool = False) -> int:
    """One timer run: send only the records that need it, and say what changed."""
    cfg = config.load(path)  # gather: what can be known without asking anyone
    state_path = state.path_for(cfg.path)
    saved, dirty = state.read(state_path)
    now = int(time.time())  # whole seconds: one size in state.json
    fingerprint = decide.fingerprint(cfg.fingerprint())
    host_ipv6 = localaddr.global_ipv6() if cfg.ipv6 == "auto" else None
    if dry_run:  # every request the config calls for, asking no one
        planned = decide.plan(cfg, saved, now, fingerprint, None, host_ipv6, force=True)
        return _print_requests(cfg, planned)
    plan, probed, answers, writable, disk = None, None, [], True, saved
    if not after.waiting(saved, now, force, fingerprint):  # else: send nothing, ask no one
        if cfg.ipv4 == "auto" and cfg.probe:
            probed = _ask_probe(cfg)
        plan = decide.plan(cfg, saved, now, fingerprint, probed, host_ipv6, force=force)
        if plan.requests or plan.missing:  # the attempt on record before the first request
            began = after.begin(saved, plan, now)
            writable = _save(cfg, state_path, began, now)
            if not writable and not backoff.unrecorded_turn(now, ",".join(cfg.domains)):
                return EXIT_OK
            disk, dirty = began, False
        if plan.requests:
            report.info(f"updating {', '.join(cfg.domains)}: {plan.reason}")
            answers = talk(cfg, plan, retries=not (began.streak.failures or not writable))
    heard = probed.router if probed is not None else None
    new, events = after.transition(saved, cfg, plan, heard, answers, now, force=force)
    return _finish(cfg, state_path, new, events, now, writable and (dirty or new != disk))


def _ask_probe(cfg: config.Config) -> probe.Probed:
    """What the probe's targets say (duckdns.probe.public_ipv4), the router's address filled
    in (the ``router`` setting, else the kernel's default gateway); why each failed, at -vv."""
    targets = list(cfg.probe)
    if targets[0].kind == "router":
        from duckdns import router  # the router is asked: only then

        address, port = cfg.router or (router.default_gateway() or "", targets[0].port)
        targets[0] = targets[0]._replace(address=address, port=port)
    probed = probe.public_ipv4(targets)
    for target, why in probed.failures:
        report.debug(f"address probe {target} failed: {why}")
    return probed


def talk(cfg: config.Config, plan: Plan, retries: bool = True) -> list[Answer]:
    """Send the requests decide.next_request asks for, in order, and say how each went.
    ``retries=False``: one try each (duckdns.backoff)."""
    from duckdns import api

    answers: list[Answer] = []
    while (request := decide.next_request(plan, answers)) is not None:
        query = api.build_query(cfg, ipv4=request.ip, ipv6=request.ipv6)
        try:
            answers.append(Answer(request, reply=api.send(cfg, query, retries=retries)))
        except api.Rejected as exc:
            answers.append(Answer(request, failure=(Result.KO, str(exc))))
        except api.TemporaryFailure as exc:
            answers.append(Answer(request, failure=(Result.ERROR, str(exc))))
    return answers


def _finish(
    cfg: config.Config, state_path: str, new: State, events: after.Events, now: int, save: bool
) -> ExitStatus:
    """Do what the transition decided: save the records (``save``: they changed, and the
    attempt could be recorded), say the lines, hand a changed address to the hooks, then
    ping the monitor and tell the admin, recording whether they took it."""
    recorded = _save(cfg, state_path, new, now) if save else False
    for level, text in events.lines:
        say: Callable[[str], None] = getattr(report, level)
        say(text)
    if events.changed is not None:
        from duckdns import changed  # here only: a run with nothing changed imports nothing

        changed.record(state_path, cfg.domains, *events.changed)
    told = False
    if events.ping is not None and (
        recorded or backoff.unrecorded_turn(now, ",".join(cfg.domains))
    ):
        from duckdns import heartbeat

        status, text = events.ping
        if heartbeat.ping(cfg, status, text):
            new.ping.state, new.ping.at, told = status, now, True
    if events.message is not None and events.told is not None and recorded:
        from duckdns import notify

        if notify.deliver(cfg, events.message, events.first):
            new.outbox, told = events.told, True
    if told and recorded:
        _save(cfg, state_path, new, now)
    return events.status


def _save(cfg: config.Config, state_path: str, saved: State, now: int) -> bool:
    """Write the state; say so when it cannot be, on an unrecorded run's turns only (a full
    or read-only disk would otherwise put a warning in the journal every minute)."""
    problem = state.save(state_path, saved)
    if not problem:
        return True
    loud = backoff.unrecorded_turn(now, ",".join(cfg.domains))
    (report.warning if loud else report.debug)(
        f"{problem}: until it can be written, requests are sent only twice every half hour; "
        "free space on that disk, or make it writable"
    )
    return False


def _print_requests(cfg: config.Config, plan: Plan) -> ExitStatus:
    from duckdns import api

    if plan.missing:
        report.error(plan.missing)
        return EXIT_TEMPFAIL
    for request in plan.requests:
        report.out(api.describe(cfg, api.build_query(cfg, ipv4=request.ip, ipv6=request.ipv6)))
    return EXIT_OK


def send_one(
    cfg: config.Config, what: str, *, txt: str | None = None, clear: bool = False
) -> ExitStatus:
    """``clear``, ``txt set`` and ``txt clear``: one request, recorded and reported."""
    from duckdns import api

    state_path = state.path_for(cfg.path)
    saved = state.load(state_path)
    query = api.build_query(cfg, ipv4=None, ipv6=None, txt=txt, clear=clear)
    try:
        reply = api.send(cfg, query, txt=txt is not None)
    except api.Rejected as exc:
        report.error(str(exc))
        return EXIT_KO
    except api.TemporaryFailure as exc:
        report.error(str(exc))
        return EXIT_TEMPFAIL
    if txt is not None:
        sent = "" if clear else txt
        problem = api.txt_mismatch(reply, sent)
        if problem:
            report.error(problem)
            return EXIT_TEMPFAIL
        saved.run.txt = sent
        if not reply.verbose:
            what += " (DuckDNS's answer did not show the record)"
    else:
        saved.forget()  # nothing published now: the next update sends again
        saved.ipv4.value, saved.ipv6.value = reply.ipv4, reply.ipv6
        saved.run.last_success, saved.run.last_result = None, Result.CLEARED
    problem = state.save(state_path, saved)
    if problem:  # a one-off command: say it now
        report.warning(problem)
    report.notice(f"{', '.join(cfg.domains)}: {what}")
    return EXIT_OK
