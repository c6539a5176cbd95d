"""``duckdns status``: what the last runs left in the state file, in words or as data.

Rows for a person, ``--json`` for scripts, ``--prometheus`` and ``--alert`` (through
duckdns.metrics) and ``--check`` (a monitoring plugin) for monitoring. Reads only: it never
sends a request.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from duckdns import EXIT_OK, CheckStatus, backoff, config, decide, report, state
from duckdns.records import Result, State

TYPE_CHECKING = False  # typing.TYPE_CHECKING: typing is not loaded to print a status
if TYPE_CHECKING:
    import argparse

# status --check: temporary failures turn CRITICAL after this long; no success for longer
# than the config's refresh plus this is stale (a healthy updater succeeds at least once
# a refresh period: the A record hourly while a probe answers, each record at refresh).
CRITICAL_AFTER = 3600
STALE_MARGIN = 3600


def _when(timestamp: float | None) -> str:
    if not timestamp:
        return "never"
    ago = max(0, int(time.time() - timestamp))
    text = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(timestamp))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if ago >= size:
            return f"{text} ({ago // size} {unit} ago)"
    return f"{text} ({ago} s ago)"


def run(args: argparse.Namespace, path: str) -> int:
    if args.check:
        return check(path)
    state_path = state.path_for(path)
    directory = os.path.dirname(path) or "."
    # Path.exists() raises PermissionError where os.path.exists() would say False.
    if not os.access(directory, os.X_OK) and Path(directory).exists():
        raise config.ConfigError(f"{directory} is not readable: run as root")
    saved = state.load(state_path)
    if args.prometheus or args.alert:
        from duckdns import metrics

        text = metrics.alert_line(saved) if args.alert else metrics.render(saved, _domains(path))
        if text:  # no alert yet: no line
            report.out(text)
        return EXIT_OK
    if args.json:
        report.out(
            json.dumps(
                {"config": str(path), "state_file": str(state_path), **state.as_dict(saved)},
                indent=2,
                sort_keys=True,
            )
        )
        return EXIT_OK
    rows = [
        ("Config", str(path) + ("" if Path(path).exists() else " (missing)")),
        ("Last request", _when(saved.run.last_run)),
        ("Last result", saved.run.last_result or "-"),
        ("Last success", _when(saved.run.last_success)),
        ("Last change", _when(saved.run.last_change)),
        ("IPv4 at DuckDNS", saved.ipv4.value or "-"),
        ("IPv6 at DuckDNS", saved.ipv6.value or "-"),
        ("TXT", saved.run.txt or "-"),
        ("IPv4 confirmed", _when(saved.ipv4.confirmed)),
        ("IPv6 confirmed", _when(saved.ipv6.confirmed)),
        ("Address probe", _probe_status(saved)),
        ("Reachability", _reach_status(saved)),
        ("Last error", saved.run.last_error or "-"),
        *_failure_rows(saved),
    ]
    # Values come from the state file (and through it from DuckDNS, the probe, the router):
    # each row is made safe to print, whatever the file holds.
    shown = (f"{key + ':':17}{report.safe(value, state.MAX_TEXT)}" for key, value in rows)
    report.out("\n".join(shown))
    return EXIT_OK


def _failure_rows(saved: State) -> list[tuple[str, str]]:
    """The failure streak and the heartbeat, for ``duckdns status``."""
    streak = saved.streak
    rows = [("Failing since", _when(streak.since) if streak.failures else "-")]
    if streak.failures:
        attempts = "attempt" if streak.failures == 1 else "attempts"
        rows.append(("Failures", f"{streak.failures} {attempts} in a row ({streak.kind})"))
        rows.append(("Next attempt", _at(streak.next_attempt)))
    if saved.ping.tried:
        rows.append(("Heartbeat", f"{saved.ping.state or '-'}, {_when(saved.ping.at)}"))
    return rows


def _at(timestamp: float | None) -> str:
    """A time to come: ``2026-12-01 08:15:00 UTC (in 4 min)``; none or past: the next run."""
    ahead = int(timestamp - time.time()) if timestamp else 0
    if ahead <= 0:
        return "next run"
    text = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(timestamp))
    return f"{text} (in {backoff.duration(ahead)})"


def _domains(path: str) -> tuple[str, ...]:
    """The configured names, for the metrics' labels; none if the config cannot be read."""
    try:
        return config.load(path).domains
    except (config.ConfigError, OSError):
        return ()


def _reach_status(saved: State) -> str:
    """The last reachability verdict (duckdns.router), as ``probe = router`` runs left it."""
    from duckdns import router

    key = saved.reach.verdict
    if key not in router.VERDICTS:
        return "not recorded (runs with 'probe = router' record it; 'duckdns check' asks now)"
    said = f" (router: {saved.reach.router_ipv4})" if saved.reach.router_ipv4 else ""
    return f"{router.VERDICTS[key]}{said}, since {_when(saved.reach.since)}"


def _probe_status(saved: State) -> str:
    """The probe's state as the last run left it, in words."""
    since, answer = _when(saved.probe.since), saved.probe.answer or "-"
    slow = "DuckDNS is asked at most every 5 minutes"
    return {
        decide.PROBE_OK: f"working (last answer {answer})",
        decide.PROBE_FAILING: f"failing since {since}: {slow}",
        decide.PROBE_DISTRUSTED: (
            f"not trusted since {since} (it answered {answer}, "
            f"DuckDNS saw {saved.ipv4.value or '-'}): {slow}"
        ),
        decide.PROBE_OFF: "off (probe = off): DuckDNS is asked every run",
        decide.PROBE_UNUSED: "not used (ipv4 is not auto)",
    }.get(saved.probe.state, "not yet checked")


def check(path: str) -> int:
    """``status --check``: one line in the monitoring-plugins convention (Nagios, Icinga,
    Checkmk), ``DUCKDNS <STATE> - <what> | <performance data>``, and its exit status.

    Whatever goes wrong here is UNKNOWN (3), never another code: a monitoring system reads
    any other status as a verdict on the service (the convention's "plugin failure").
    """
    try:
        cfg = config.load(path)
        saved = state.load(state.path_for(path))
    except config.ConfigError as exc:
        return _verdict(CheckStatus.UNKNOWN, str(exc))
    except OSError as exc:  # e.g. PermissionError: /var/lib/private is root's
        return _verdict(CheckStatus.UNKNOWN, f"{exc.filename or path} cannot be read: run as root")
    now = time.time()
    verdict, text = judge(saved, cfg.refresh, now)
    perf = [f"failures={saved.streak.failures};;;0"]
    if saved.run.last_success:
        age = max(0, int(now - saved.run.last_success))
        perf.insert(0, f"last_success={age}s;{cfg.refresh + STALE_MARGIN};;0")
    return _verdict(verdict, f"{', '.join(cfg.domains)}: {text}", " ".join(perf))


def judge(saved: State, refresh: int, now: float) -> tuple[CheckStatus, str]:
    """The monitoring state of a saved state, and why (CheckStatus says when each holds)."""
    if saved.streak.failures:
        since = saved.streak.since
        lasted = backoff.duration(now - since) if since else "a while"
        error = saved.run.last_error or "no details recorded"
        if saved.streak.kind == Result.KO:
            return CheckStatus.CRITICAL, (
                f"DuckDNS answers KO for {lasted}: the token or a name is wrong "
                "('sudo dpkg-reconfigure duckdns')"
            )
        long = since is not None and now - since >= CRITICAL_AFTER
        return (
            CheckStatus.CRITICAL if long else CheckStatus.WARNING,
            f"updates failing for {lasted} ({saved.streak.failures} attempts): {error}",
        )
    if not saved.run.last_success:
        return CheckStatus.UNKNOWN, (
            "no update yet (see 'systemctl list-timers duckdns.timer' and 'duckdns status')"
        )
    age = now - saved.run.last_success
    if age > refresh + STALE_MARGIN:
        return CheckStatus.WARNING, (
            f"no success for {backoff.duration(age)}, longer than refresh "
            f"({backoff.duration(refresh)}): is duckdns.timer running?"
        )
    if saved.probe.state in (decide.PROBE_FAILING, decide.PROBE_DISTRUSTED):
        return CheckStatus.WARNING, f"address probe {_probe_status(saved)}"
    addresses = f"IPv4 {saved.ipv4.value or '-'}, IPv6 {saved.ipv6.value or '-'}"
    return CheckStatus.OK, f"{addresses}, last success {backoff.duration(age)} ago"


def _verdict(verdict: CheckStatus, text: str, perf: str = "") -> int:
    """Print the plugin's one line (the convention reads only the first) and return its code."""
    # One line, and no "|" but the one that starts the performance data.
    line = f"DUCKDNS {verdict.name} - {' '.join(text.replace('|', '/').split())}"
    report.out(f"{line} | {perf}" if perf else line)
    return verdict
