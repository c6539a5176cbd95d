"""``duckdns update`` (and the one-request commands), one way through:

gather inputs -> plan -> talk to DuckDNS -> assess -> record -> report.

:func:`run` reads top to bottom in that order. It gathers every input first (config, state,
clock, the probe's answer, this host's IPv6 address), duckdns.decide plans and assesses
(pure functions), duckdns.api talks to DuckDNS, duckdns.state records, and every line goes
through duckdns.report. ``requests`` (through duckdns.api) is imported only when a request
is really sent.
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
    router,
    state,
)
from duckdns.decide import Answer, Family, Inputs, Outcome, Plan


def run(path: str, *, force: bool = False, dry_run: bool = False) -> int:
    """One timer run: send only the records that need it, and say what changed."""
    # Gather: what can be known without asking anyone.
    cfg = config.load(path)
    state_path = state.path_for(cfg.path)
    saved, dirty = state.read(state_path)
    now = int(time.time())  # whole seconds: one size in state.json
    fingerprint = decide.fingerprint(cfg)
    if dry_run:  # every request the config calls for, asking no one
        return _print_requests(cfg, decide.plan(_inputs(cfg, saved, now, True, fingerprint, None)))
    began = state.interrupted(saved)
    if began is not None:  # stopped by the unit's time limit or a power cut, most likely
        _settle(saved, "error", "the previous run was stopped before DuckDNS answered", began, now)
        dirty = True
    # Inside the wait after a failed attempt, send nothing and ask no one.
    if backoff.waiting(saved, now, force, saved["fingerprint"] != fingerprint):
        report.info(backoff.waiting_message(saved, now))
        if dirty:
            _save(cfg, state_path, saved, now)
        return EXIT_OK
    # Gather: the probe's answer (the router's too, for the verdict) and this host's
    # address, then plan.
    if cfg.ipv4 == "auto" and cfg.probe:
        probed = ask_probe(probe_targets(cfg, router.default_gateway))
        asked = probed.address, [f"{target}: {why}" for target, why in probed.failures]
    else:
        probed, asked = None, None
    plan = decide.plan(_inputs(cfg, saved, now, force, fingerprint, asked))
    if plan.missing:
        return _nothing_to_publish(cfg, state_path, saved, plan, now, force)
    if cfg.ipv6 == "auto" and plan.want[Family.IPV6] is None:
        report.info("ipv6 = auto, but this host has no global IPv6 address: AAAA left as it is")
    if not plan.requests:
        report.info(
            f"nothing changed (IPv4 {saved['ipv4'] or '-'}, IPv6 {saved['ipv6'] or '-'}): "
            "no request sent"
        )
        changed = _say_probe(saved, saved["probe_state"], plan.probe_state, plan, now)
        recorded = None
        changed |= _reach(saved, probed, now)
        changed |= state.record_probe(saved, plan.probe_state, plan.probe_answer, None, now)
        if changed or dirty:
            recorded = _save(cfg, state_path, saved, now)
        # Nothing sent: a failure streak goes on (only DuckDNS's answer ends it).
        _heartbeat(cfg, state_path, saved, not backoff.failing(saved), "", now, recorded)
        _notify(cfg, state_path, saved, now, recorded)
        return EXIT_OK
    # The attempt is on record before the first request, with the configuration it is for
    # (a run stopped in flight must not leave the next one a "changed configuration", which
    # would skip the backoff's wait); without a record, only on backoff.unrecorded_turn.
    state.begin_attempt(saved, plan.fingerprint if plan.new_config else None, now)
    unrecorded = not _save(cfg, state_path, saved, now)
    if unrecorded and not backoff.unrecorded_turn(now, ",".join(cfg.domains)):
        return EXIT_OK
    # Talk to DuckDNS, then assess and record what it answered.
    report.info(f"updating {', '.join(cfg.domains)}: {plan.reason}")
    answers = talk(cfg, saved, plan, retries=not (backoff.failing(saved) or unrecorded))
    outcome = decide.assess(plan, saved, answers)
    before = dict(saved)
    bare_news = state.record_outcome(saved, outcome, plan.probe_answer, now)
    _report(cfg, plan, outcome, before, saved, bare_news, now)
    _reach(saved, probed, now)
    code = _settle(saved, outcome.kind, outcome.message, now, now, force)
    if not unrecorded:  # before the heartbeat: a monitor that hangs cannot make it forget
        _save(cfg, state_path, saved, now)
    _heartbeat(cfg, state_path, saved, outcome.kind == "ok", outcome.message, now, not unrecorded)
    _notify(cfg, state_path, saved, now, not unrecorded)
    return code


def _nothing_to_publish(
    cfg, state_path: str, saved: dict, plan: Plan, now: int, force: bool
) -> int:
    """No address to publish (plan.missing): a failed attempt of this host's own, asking
    DuckDNS nothing. Recorded and backed off like DuckDNS's failures, so it is said once,
    the runs inside the wait end at once with 0, the heartbeat says "down" and the admin is
    told; the first run with an address sends it and says the updates work again."""
    state.begin_attempt(saved, plan.fingerprint if plan.new_config else None, now, sending=False)
    recorded = _save(cfg, state_path, saved, now)
    if not recorded and not backoff.unrecorded_turn(now, ",".join(cfg.domains)):
        return EXIT_OK
    code = _settle(saved, "error", plan.missing, now, now, force)
    if recorded:
        _save(cfg, state_path, saved, now)
    _heartbeat(cfg, state_path, saved, False, plan.missing, now, recorded)
    _notify(cfg, state_path, saved, now, recorded)
    return code


def _inputs(cfg, saved: dict, now: int, force: bool, fingerprint: str, asked) -> Inputs:
    host_ipv6 = localaddr.global_ipv6() if cfg.ipv6 == "auto" else None
    return Inputs(
        cfg, saved, now, force=force, fingerprint=fingerprint, probe=asked, host_ipv6=host_ipv6
    )


def probe_targets(cfg, gateway) -> list:
    """The probe's targets, the router's address filled in: the ``router`` setting, else
    ``gateway()``, the kernel's default gateway (read only when ``router`` is asked)."""
    if not cfg.probe or cfg.probe[0].kind != "router":
        return list(cfg.probe)
    address, port = cfg.router or (gateway() or "", cfg.probe[0].port)
    return [cfg.probe[0]._replace(address=address, port=port), *cfg.probe[1:]]


def ask_probe(targets) -> probe.Probed:
    """What the probe's targets say (duckdns.probe.public_ipv4); why each failed, at -vv."""
    probed = probe.public_ipv4(targets)
    for target, why in probed.failures:
        report.debug(f"address probe {target} failed: {why}")
    return probed


def _reach(saved: dict, probed: probe.Probed | None, now: int) -> bool:
    """Record the reachability verdict from the router's answer (when it was asked) and
    the address DuckDNS recorded; say it when it changes, damped as decide.damp says (a
    router that answers only now and then is said once). True if the state changed."""
    if probed is None or probed.router is None:
        return False
    heard = probed.router
    key, before = router.verdict(heard, saved["ipv4"]), saved["reach"]
    say, *damper = decide.damp(
        before, key, saved["reach_left"], saved["reach_changed"], saved["reach_flaps"], now
    )
    changed = state.record_damper(saved, "reach", *damper)
    changed |= state.record_reach(saved, key, router.external(heard) or "", now)
    if say == decide.SAY_FLAPPING:
        report.notice(
            f"reachability: the verdict keeps changing between {_shown(router.VERDICTS, damper[0])}"
            f" and {key} (does the router answer only now and then?): said again once it has "
            f"held for {decide.SETTLE // 60} minutes"
        )
    elif not say:
        if key != before:
            report.debug(f"reachability {key}: not said while it keeps changing")
    else:
        line = router.describe(key, heard, saved["ipv4"])
        if say == decide.SAY_SETTLED:
            line = f"{line} (steady again for {decide.SETTLE // 60} minutes)"
        (report.notice if key in (router.DIRECT, router.UNKNOWN) else report.warning)(line)
    return changed


def _shown(known, value: str) -> str:
    """A value read from the state file, shown only if it is one this updater writes."""
    return value if value in known else "?"


def talk(cfg, saved: dict, plan: Plan, retries: bool = True) -> list[Answer]:
    """Send the plan's requests in order, and the request for a record an answer shows
    changed behind our back (decide.drifted); stop at the first failure (a KO or a
    temporary failure would only repeat). ``retries=False``: one try each (duckdns.backoff).
    """
    from duckdns import api

    pending = list(plan.requests)
    expect = decide.expected(saved, plan.want)
    answers: list[Answer] = []
    while pending:
        request = pending.pop(0)
        query = api.build_query(cfg, ipv4=request.ip, ipv6=request.ipv6)
        try:
            answer = Answer(request, reply=api.send(cfg, query, retries=retries))
        except api.Rejected as exc:
            answer = Answer(request, failure=("ko", str(exc)))
        except api.TemporaryFailure as exc:
            answer = Answer(request, failure=("error", str(exc)))
        answers.append(answer)
        if answer.failure is not None:
            break
        sent = {family for a in answers for family in a.request.sets}
        waiting = {family for r in pending for family in r.sets}
        for family in decide.drifted(plan, expect, answer):
            if family not in sent and family not in waiting:
                pending.append(decide.request_for(plan.want, family))
                waiting.add(family)
    return answers


def _report(
    cfg, plan: Plan, outcome: Outcome, before: dict, after: dict, bare: str, now: int
) -> None:
    """The run's lines, from its outcome: nothing when nothing changed."""
    if bare == "started":
        report.warning(
            "DuckDNS answered a bare OK, which shows neither record: each is asked "
            "for again at most every 5 minutes until an answer shows them"
        )
    elif bare == "ended":
        report.notice("DuckDNS's answers show the records again")
    _say_probe(after, before["probe_state"], outcome.probe_state, plan, now)
    old, new = (before["ipv4"], before["ipv6"]), (after["ipv4"], after["ipv6"])
    if new != old:  # also when a later request of the run failed: this one took effect
        report.notice(
            f"{', '.join(cfg.domains)}: IPv4 {new[0] or '-'}, IPv6 {new[1] or '-'}"
            f" (was {old[0] or '-'}, {old[1] or '-'})"
        )
        from duckdns import changed  # here only: a run with nothing changed imports nothing

        changed.record(state.path_for(cfg.path), cfg.domains, old, new)


# The probe's states that have lines; "off" and "unused" follow the configuration, not
# the network, and are never a flap.
_PROBE_SAID = (decide.PROBE_OK, decide.PROBE_FAILING, decide.PROBE_DISTRUSTED)


def _say_probe(saved: dict, before: str, after: str, plan: Plan, now: int) -> bool:
    """Say, at default verbosity, when the probe starts failing, is found to disagree with
    DuckDNS, or works again; damped as decide.damp says (a probe or router that answers
    only now and then is said once while it flaps, once when it settles). Records the
    damper's fields in ``saved``; True if they changed."""
    if before in _PROBE_SAID and after in _PROBE_SAID:
        fields = saved["probe_left"], saved["probe_changed"], saved["probe_flaps"]
        say, *damper = decide.damp(before, after, *fields, now)
    else:  # the first state, or the configuration's: said as it is, no flap
        say, damper = (decide.SAY_CHANGE if after != before else ""), ["", None, 0]
    changed = state.record_damper(saved, "probe", *damper)
    targets = "; ".join(plan.probe_errors) or "no answer"
    settled = (
        f" (steady again for {decide.SETTLE // 60} minutes)" if say == decide.SAY_SETTLED else ""
    )
    if say == decide.SAY_FLAPPING:
        report.warning(
            f"address probe keeps changing between {_shown(_PROBE_SAID, damper[0])} and "
            f"{after}{f' ({targets})' if after == decide.PROBE_FAILING else ''}: asking DuckDNS "
            "at most every 5 minutes while it cannot decide; said again once it has held for "
            f"{decide.SETTLE // 60} minutes"
        )
    elif not say:
        if after != before:
            report.debug(f"address probe {after}: not said while it keeps changing")
    elif after == decide.PROBE_FAILING:
        report.warning(
            f"address probe failed ({targets}){settled}: asking DuckDNS at most every 5 "
            "minutes until it answers again; check that those targets can be reached (DNS to "
            "the resolvers, NAT-PMP/PCP to the router), or set 'probe' to others"
        )
    elif after == decide.PROBE_DISTRUSTED:
        report.warning(
            f"address probe answered {plan.probe_answer} but DuckDNS saw {saved['ipv4']}"
            f"{settled} (a router or resolver that intercepts DNS?): asking DuckDNS at most "
            "every 5 minutes until they agree; set 'probe' to other addresses or 'probe = off'"
        )
    elif after == decide.PROBE_OK and (before in _PROBE_SAID[1:] or before == after):
        report.notice(
            f"address probe works again (it says {plan.probe_answer}){settled}: "
            "asking DuckDNS only when the address changes"
        )
    return changed


def _save(cfg, state_path: str, saved: dict, now: int) -> bool:
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


def _settle(saved: dict, kind: str, message: str, at: int, now: int, force: bool = False) -> int:
    """Record in the backoff how the attempt made at ``at`` ended, say what it calls for.

    ``kind`` is how the requests ended: "ok", "ko" or "error". Returns the exit code.
    """
    if kind == "ok":
        news = state.record_success(saved, now)
        if news:
            report.notice(news)
        return EXIT_OK
    loud = state.record_failure(saved, kind, report.redact(message), at)
    due = saved["next_attempt"]
    wait = f"next attempt in {backoff.duration(due - now)}" if due > now else "next attempt now"
    failures, since = saved["failures"], saved["failing_since"]
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
    cfg, state_path: str, saved: dict, healthy: bool, message: str, now: int, recorded
) -> None:
    """Ping the monitor if this run calls for it, and record the ping.

    ``recorded``: whether the state could be written this run (None: not tried yet). A ping
    whose attempt cannot be recorded is sent only on an unrecorded run's turns: else a
    full disk would make every run ping.
    """
    if not cfg.healthcheck:
        return
    from duckdns import heartbeat

    status = heartbeat.due(saved, healthy, now)
    if status is None:
        return
    if recorded is None:
        recorded = _save(cfg, state_path, saved, now)
    if not recorded and not backoff.unrecorded_turn(now, ",".join(cfg.domains)):
        return
    state.record_ping(saved, status, heartbeat.ping(cfg, status, message or "OK"), now)
    if recorded:
        _save(cfg, state_path, saved, now)


def _notify(cfg, state_path: str, saved: dict, now: int, recorded) -> None:
    """Tell the admin's channels this run's news (duckdns.notify), once per event: only
    with the state recorded (``recorded`` as for :func:`_heartbeat`), else a full disk
    would make every run tell it again."""
    if not cfg.notify:
        return
    from duckdns import notify

    message, fields = notify.due(cfg, saved, now)
    if not fields or not (recorded or recorded is None and _save(cfg, state_path, saved, now)):
        return
    if message is not None:
        # The attempt on record before the first byte is sent: a send that is killed
        # (or kills the run) still waits notify.RETRY before the next one.
        told = dict(saved)
        state.record_notification(saved, {"notify_tried": now})
        if not _save(cfg, state_path, saved, now):
            return
        fields = notify.deliver(cfg, told, message, fields, now)
    state.record_notification(saved, fields)
    _save(cfg, state_path, saved, now)


def _print_requests(cfg, plan: Plan) -> int:
    from duckdns import api

    if plan.missing:
        report.error(plan.missing)
        return EXIT_TEMPFAIL
    for request in plan.requests:
        report.out(api.describe(cfg, api.build_query(cfg, ipv4=request.ip, ipv6=request.ipv6)))
    return EXIT_OK


def send_one(cfg, what: str, **query: str | bool) -> int:
    """``clear``, ``txt set`` and ``txt clear``: one request, recorded and reported."""
    from duckdns import api

    state_path = state.path_for(cfg.path)
    saved = state.load(state_path)
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
        sent = "" if query.get("clear") else str(query["txt"])
        problem = api.txt_mismatch(reply, sent)
        if problem:
            report.error(problem)
            return EXIT_TEMPFAIL
        state.record_txt(saved, sent)
        if not reply.verbose:
            what += " (DuckDNS's answer did not show the record)"
    else:
        state.record_cleared(saved, reply.ipv4, reply.ipv6)
    problem = state.save(state_path, saved)
    if problem:  # a one-off command: say it now
        report.warning(problem)
    report.notice(f"{', '.join(cfg.domains)}: {what}")
    return EXIT_OK
