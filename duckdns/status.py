"""``duckdns status``: what the last runs left in the state file, in words or as data.

Rows for a person, ``--json`` for scripts, ``--prometheus`` and ``--alert`` (through
duckdns.metrics) for monitoring. Reads only: it never sends a request.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from duckdns import EXIT_OK, backoff, report
from duckdns import config as configuration
from duckdns import state as statefile


def _when(timestamp) -> str:
    if not timestamp:
        return "never"
    ago = max(0, int(time.time() - timestamp))
    text = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(timestamp))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if ago >= size:
            return f"{text} ({ago // size} {unit} ago)"
    return f"{text} ({ago} s ago)"


def run(args, path: str) -> int:
    """Print the state as ``args`` asks: rows, --json, --prometheus or --alert."""
    state_path = statefile.path_for(path)
    directory = os.path.dirname(path) or "."
    # Path.exists() raises PermissionError where os.path.exists() would say False.
    if not os.access(directory, os.X_OK) and Path(directory).exists():
        raise configuration.ConfigError(f"{directory} is not readable: run as root")
    state = statefile.load(state_path)
    if args.prometheus or args.alert:  # issue 11
        from duckdns import metrics

        if args.alert:
            line = metrics.alert_line(state)
            if line:
                report.out(line)
            return EXIT_OK
        report.out(metrics.render(state, _domains(path)))
        return EXIT_OK
    if args.json:
        report.out(
            json.dumps(
                {"config": str(path), "state_file": str(state_path), **state},
                indent=2,
                sort_keys=True,
            )
        )
        return EXIT_OK
    rows = [
        ("Config", str(path) + ("" if Path(path).exists() else " (missing)")),
        ("Last request", _when(state["last_run"])),
        ("Last result", state["last_result"] or "-"),
        ("Last success", _when(state["last_success"])),
        ("Last change", _when(state["last_change"])),
        ("IPv4 at DuckDNS", state["ipv4"] or "-"),
        ("IPv6 at DuckDNS", state["ipv6"] or "-"),
        ("TXT", state["txt"] or "-"),
        ("IPv4 confirmed", _when(state["ipv4_confirmed"])),
        ("IPv6 confirmed", _when(state["ipv6_confirmed"])),
        ("Address probe", _probe_status(state)),
        ("Last error", state["last_error"] or "-"),
        *_failure_rows(state),
    ]
    report.out("\n".join(f"{key + ':':17}{value}" for key, value in rows))
    return EXIT_OK


def _failure_rows(state: dict) -> list[tuple[str, str]]:
    """issue 11: the failure streak and the heartbeat, for ``duckdns status``."""
    if backoff.failing(state):
        due, failures = state["next_attempt"], state["failures"]
        rows = [
            ("Failing since", _when(state["failing_since"])),
            (
                "Failures",
                f"{failures} {'attempt' if failures == 1 else 'attempts'} in a row "
                f"({state['failure_kind']})",
            ),
            ("Next attempt", _at(due) if due else "next run"),
        ]
    else:
        rows = [("Failing since", "-")]
    if state["ping_tried"]:
        rows.append(("Heartbeat", f"{state['ping_state'] or '-'}, {_when(state['ping_at'])}"))
    return rows


def _at(timestamp) -> str:
    """A time to come: ``2026-12-01 08:15:00 UTC (in 4 min)``; past: the next run."""
    ahead = int(timestamp - time.time())
    if ahead <= 0:
        return "next run"
    text = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(timestamp))
    return f"{text} (in {backoff.duration(ahead)})"


def _domains(path: str) -> tuple[str, ...]:
    """The configured names, for the metrics' labels; none if the config cannot be read."""
    try:
        return configuration.load(path).domains
    except (configuration.ConfigError, OSError):
        return ()


def _probe_status(state: dict) -> str:
    """The probe's state as the last run left it, in words."""
    kind, since = state["probe_state"], _when(state["probe_since"])
    slow = "DuckDNS is asked at most every 5 minutes"
    if kind == "ok":
        return f"working (last answer {state['probe_ipv4'] or '-'})"
    if kind == "failing":
        return f"failing since {since}: {slow}"
    if kind == "distrusted":
        return (
            f"not trusted since {since} (it answered {state['probe_ipv4'] or '-'}, "
            f"DuckDNS saw {state['ipv4'] or '-'}): {slow}"
        )
    if kind == "off":
        return "off (probe = off): DuckDNS is asked every run"
    if kind == "unused":
        return "not used (ipv4 is not auto)"
    return "not yet checked"
