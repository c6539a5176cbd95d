"""``duckdns update`` (and the one-request commands): load -> decide -> send -> record -> report.

:func:`run` is the whole pipeline. What to send is decided in duckdns.decide, every state
field is written through duckdns.state's helpers, every line goes through duckdns.report;
``requests`` (through duckdns.api) is imported only when a request is really sent.
"""

from __future__ import annotations

import time

from duckdns import EXIT_KO, EXIT_OK, EXIT_TEMPFAIL, backoff, decide, probe, report
from duckdns import config as configuration
from duckdns import state as statefile
from duckdns.decide import FAMILIES, RECORD, Plan, Request


def run(path: str, *, force: bool = False, dry_run: bool = False) -> int:
    """One timer run: send only the records that need it, and say what changed."""
    cfg = configuration.load(path)
    state_path = statefile.path_for(cfg.path)
    state, dirty = statefile.read(state_path)
    now = int(time.time())  # whole seconds: one size in state.json
    if dry_run:
        return _print_requests(cfg, decide.plan_update(cfg, state, force=True, now=now))
    began = statefile.interrupted(state)
    if began is not None:  # stopped by the unit's time limit or a power cut, most likely
        message = "the previous run was stopped before DuckDNS answered"
        _settle(state, "error", message, began, now, force=False)
        dirty = True
    # Inside the wait after a failed attempt, send nothing and ask no one.
    changed = state["fingerprint"] != decide.fingerprint(cfg)
    if backoff.waiting(state, now, force, changed):
        report.info(backoff.waiting_message(state, now))
        if dirty:
            _save(cfg, state_path, state, now)
        return EXIT_OK
    plan = decide.plan_update(cfg, state, force=force, probe_ipv4=ask_probe, now=now)
    if cfg.ipv6 == "auto" and plan.want["ipv6"] is None:
        report.info("ipv6 = auto, but this host has no global IPv6 address: AAAA left as it is")
    if not plan.reasons:
        report.debug(f"nothing changed (IPv4 {state['ipv4'] or '-'}): no request sent")
        recorded = None
        if _record_probe(state, plan, now) or dirty:  # only when something changed
            recorded = _save(cfg, state_path, state, now)
        # Nothing sent: a failure streak goes on (only DuckDNS's answer ends it).
        _heartbeat(cfg, state_path, state, not backoff.failing(state), "", now, recorded)
        return EXIT_OK
    # The attempt is on record before the first request, or not made at all but on the
    # few turns an unrecorded run has (backoff.unrecorded_turn). The new configuration is on
    # record with it: a run stopped in flight must not leave the next one a "changed
    # configuration", which would skip the backoff's wait.
    if plan.new_config:
        statefile.record_new_config(state, plan.fingerprint)
    statefile.begin_attempt(state, now)
    unrecorded = not _save(cfg, state_path, state, now)
    if unrecorded and not backoff.unrecorded_turn(now, ",".join(cfg.domains)):
        return EXIT_OK
    report.info(f"updating {', '.join(cfg.domains)}: {plan.reason}")
    before = (state["ipv4"], state["ipv6"])
    retries = not (backoff.failing(state) or unrecorded)
    kind, message = send(cfg, state, plan, now, retries=retries)
    _record_probe(state, plan, now)
    after = (state["ipv4"], state["ipv6"])
    if after != before:  # also when a later request of the run failed: this one took effect
        report.notice(
            f"{', '.join(cfg.domains)}: IPv4 {after[0] or '-'}, IPv6 {after[1] or '-'}"
            f" (was {before[0] or '-'}, {before[1] or '-'})"
        )
    code = _settle(state, kind, message, now, now, force)
    # Recorded before the heartbeat: a monitor that hangs cannot make the run forget this.
    if not unrecorded:
        _save(cfg, state_path, state, now)
    _heartbeat(cfg, state_path, state, kind == "ok", message, now, not unrecorded)
    return code


def _save(cfg, state_path: str, state: dict, now: int) -> bool:
    """Write the state; say so when it cannot be, on an unrecorded run's turns only (a full
    or read-only disk would otherwise put a warning in the journal every minute)."""
    problem = statefile.save(state_path, state)
    if not problem:
        return True
    loud = backoff.unrecorded_turn(now, ",".join(cfg.domains))
    (report.warning if loud else report.debug)(
        f"{problem}: until it can be written, requests are sent only twice every half hour; "
        "free space on that disk, or make it writable"
    )
    return False


def _settle(state: dict, kind: str, message: str, at: int, now: int, force: bool) -> int:
    """Record in the backoff how the attempt made at ``at`` ended, say what it calls for.

    ``kind`` is how the requests ended: "ok", "ko" or "error". Returns the exit code.
    """
    if kind == "ok":
        news = backoff.record_success(state, now)
        if news:
            report.notice(news)
        return EXIT_OK
    loud = backoff.record_failure(state, kind, report.redact(message), at)
    due = state["next_attempt"]
    wait = f"next attempt in {backoff.duration(due - now)}" if due > now else "next attempt now"
    failures, since = state["failures"], state["failing_since"]
    if failures == 1 or force:
        report.error(f"{message}; {wait}")
    elif loud:
        report.error(
            f"still failing after {backoff.duration(now - since)} ({failures} failed "
            f"attempts): {message}; {wait}"
        )
    else:
        report.info(f"attempt {failures} failed: {message}; {wait}")
    return EXIT_KO if kind == "ko" else EXIT_TEMPFAIL


def _heartbeat(
    cfg, state_path: str, state: dict, healthy: bool, message: str, now: int, recorded
) -> None:
    """Ping the monitor if this run calls for it, and record the ping.

    ``recorded``: whether the state could be written this run (None: not tried yet). A ping
    whose attempt cannot be recorded is sent only on an unrecorded run's turns: else a
    full disk would make every run ping.
    """
    if not cfg.healthcheck:
        return
    from duckdns import heartbeat

    status = heartbeat.due(state, healthy, now)
    if status is None:
        return
    if recorded is None:
        recorded = _save(cfg, state_path, state, now)
    if not recorded and not backoff.unrecorded_turn(now, ",".join(cfg.domains)):
        return
    heartbeat.ping(cfg, state, status, message or "OK", now)
    if recorded:
        _save(cfg, state_path, state, now)


def ask_probe(targets) -> tuple[str | None, list[str]]:
    """The probe's answer (None if every target failed) and why each failed target failed."""
    errors: list[str] = []

    def failed(target, exc) -> None:
        errors.append(f"{target}: {exc}")
        report.debug(f"address probe {target} failed: {exc}")

    return probe.public_ipv4(targets, on_error=failed), errors


def _print_requests(cfg, plan: Plan) -> int:
    from duckdns import api

    for req in decide.requests_for(plan):
        report.out(api.describe(cfg, api.build_query(cfg, ipv4=req.ip, ipv6=req.ipv6)))
    return EXIT_OK


def _record_probe(state: dict, plan: Plan, now: int) -> bool:
    """Record the probe's state; say so once when it fails, is distrusted or recovers."""
    before = state["probe_state"]
    if plan.probe_state != before:
        news = decide.probe_news(before, plan.probe_state, plan, state["ipv4"])
        if news is not None:
            (report.warning if news[0] == "warning" else report.notice)(news[1])
    return statefile.record_probe(
        state, plan.probe_state, plan.observed_ipv4, plan.probe_agreed, now
    )


def send(cfg, state: dict, plan: Plan, now: int, retries: bool = True) -> tuple[str, str]:
    """Send the requests ``plan`` needs (at most one per family), recording each answer.

    ``retries=False``: each request gets a single try (while failures last: duckdns.backoff).

    Returns (kind, message): kind "ok", "ko" (DuckDNS answered KO) or "error". Stops at the
    first failure (a KO or a temporary failure would only repeat), leaving the families not
    confirmed to the next run.
    """
    from duckdns import api

    pending = [f for f in FAMILIES if f in plan.reasons]
    done: set[str] = set()
    kind, message, updated = "ok", "", False
    while pending:
        family = pending.pop(0)
        if family in done:
            continue
        req = decide.request_for(plan, family)
        done.update(req.sets)
        statefile.record_attempt(state, req.sets, now)
        try:
            query = api.build_query(cfg, ipv4=req.ip, ipv6=req.ipv6)
            reply = api.send(cfg, query, retries=retries)
        except api.Rejected as exc:
            kind, message = "ko", str(exc)
            if done - set(req.sets):  # an earlier request of this run was accepted
                message = (
                    f"DuckDNS answered KO to the {RECORD[family]} request for "
                    f"{req.ipv6 or req.ip or 'this address'} after accepting the token and "
                    "domains a moment before: it refused that address (not retried)"
                )
            break
        except api.TemporaryFailure as exc:
            kind, message = "error", str(exc)
            break
        updated |= reply.updated
        problem, drifted = _record(state, plan, req, reply, now)
        if problem:
            kind, message = "error", problem
            break
        pending += [f for f in drifted if f not in done and f not in pending]
    statefile.record_result(state, kind, report.redact(message), updated, now)
    return kind, message


def _record(state: dict, plan: Plan, req: Request, reply, now: int) -> tuple[str, list[str]]:
    """Record what DuckDNS answered; (a problem to report, families that drifted)."""
    if not reply.verbose:  # a bare "OK": accepted, but it confirms nothing
        for family in req.sets:
            if statefile.confirm(state, family, plan.want[family], None, now):
                report.warning(
                    "DuckDNS answered a bare OK, which shows neither record: each is asked "
                    "for again at most every 5 minutes until an answer shows them"
                )
        return "", []
    if statefile.record_verbose(state):
        report.notice("DuckDNS's answers show the records again")
    shown = {"ipv4": reply.ipv4, "ipv6": reply.ipv6}
    drifted = []
    for family in FAMILIES:
        want, value = plan.want[family], shown[family]
        if family in req.sets:
            ok = bool(value) if want == "auto" else value == want
            if not ok:
                return (
                    f"DuckDNS answered OK, but its {RECORD[family]} record holds "
                    f"{value or 'nothing'} instead of "
                    f"{want if want != 'auto' else 'the address the request came from'}",
                    [],
                )
            statefile.confirm(state, family, want, value, now)
            if family == "ipv4" and want == "auto":
                decide.judge_probe(plan, value)
            continue
        expected = state[family] if want == "auto" else want
        if want is not None and state[f"sent_{family}"] and value != expected:
            # Not what was last confirmed: send this family too, and next run if this fails.
            statefile.unconfirm(state, family)
            drifted.append(family)
        statefile.record_shown(state, family, value)  # what DuckDNS holds now, for status
    return "", drifted


def send_one(cfg, what: str, **query: str | bool) -> int:
    """``clear``, ``txt set`` and ``txt clear``: one request, recorded and reported."""
    from duckdns import api

    state_path = statefile.path_for(cfg.path)
    state = statefile.load(state_path)
    txt = "txt" in query
    try:
        reply = api.send(cfg, api.build_query(cfg, ipv4=None, ipv6=None, **query), txt=txt)
    except api.Rejected as exc:
        report.error(str(exc))
        return EXIT_KO
    except api.TemporaryFailure as exc:
        report.error(str(exc))
        return EXIT_TEMPFAIL
    if txt:
        statefile.record_txt(state, reply.txt)
    else:
        statefile.record_cleared(state, reply.ipv4, reply.ipv6)
    problem = statefile.save(state_path, state)
    if problem:  # a one-off command: say it now
        report.warning(problem)
    report.notice(f"{', '.join(cfg.domains)}: {what}")
    return EXIT_OK
