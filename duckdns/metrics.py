"""``duckdns status --prometheus`` and ``--alert``: the state, for monitoring.

The Prometheus text exposition format (version 0.0.4, what node-exporter's textfile
collector reads): ``# HELP`` and ``# TYPE`` lines, then ``name{labels} value``. Only
state.json and the configured names go in: never the token or the heartbeat URL (neither
is in the state; the config's secrets are not read here). Times are Unix seconds, and a
time that is not known (no success yet) is left out rather than written as 0.
"""

from __future__ import annotations

import time

from duckdns.decide import PROBE_DISTRUSTED, PROBE_FAILING, PROBE_OK, Family

TYPE_CHECKING = False  # typing.TYPE_CHECKING: typing is not loaded to print metrics
if TYPE_CHECKING:
    from duckdns.records import State

PREFIX = "duckdns_"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def render(state: State, domains: tuple[str, ...] = ()) -> str:
    """The metrics for ``state`` (and the config's ``domains``, for the records' labels)."""
    lines: list[str] = []

    def gauge(name: str, help_text: str, samples: list[tuple[str, float | None]]) -> None:
        given = [(labels, value) for labels, value in samples if value is not None]
        if given:
            lines.append(f"# HELP {PREFIX}{name} {help_text}")
            lines.append(f"# TYPE {PREFIX}{name} gauge")
            lines.extend(f"{PREFIX}{name}{labels} {value}" for labels, value in given)

    run, streak = state.run, state.streak
    failing = streak.failures > 0
    for name, help_text, value in (
        ("last_success_timestamp_seconds", "When DuckDNS last answered OK.", run.last_success),
        (
            "last_change_timestamp_seconds",
            "When DuckDNS last reported a record UPDATED.",
            run.last_change,
        ),
        (
            "last_request_timestamp_seconds",
            "When a request was last sent to DuckDNS.",
            run.last_run,
        ),
        (
            "consecutive_failures",
            "Failed attempts in a row (0: the last attempt worked).",
            streak.failures,
        ),
        (
            "failing_since_timestamp_seconds",
            "When the current run of failures started.",
            streak.since if failing else None,
        ),
        (
            "next_attempt_timestamp_seconds",
            "No request is sent before this time (backoff after a failure).",
            streak.next_attempt if failing else None,
        ),
        (
            "probe_trusted",
            "1 when the address probe works and agrees with DuckDNS, 0 when it fails or disagrees.",
            {PROBE_OK: 1, PROBE_FAILING: 0, PROBE_DISTRUSTED: 0}.get(state.probe.state),
        ),
    ):
        gauge(name, help_text, [("", value)])
    gauge(
        "reachability",
        "1 for the last verdict from the router's answer (direct, cgnat, double-nat, "
        "no-public, upstream, unknown).",
        [(f'{{verdict="{_escape(state.reach.verdict)}"}}', 1 if state.reach.verdict else None)],
    )
    records: list[tuple[str, float | None]] = []
    for family in Family:
        address = state.published(family.value).value
        for domain in (domains or ("",)) if address else ():
            labels = [f'type="{family.record}"', f'address="{_escape(address)}"']
            if domain:
                labels.insert(0, f'domain="{_escape(domain)}.duckdns.org"')
            records.append(("{" + ",".join(labels) + "}", 1))
    gauge("record_info", "The records DuckDNS holds, as its last answer showed them.", records)
    return "\n".join(lines) + "\n"


def alert_line(state: State) -> str:
    """The last alert in one line (``down|reminder|up at TIME: TEXT``), or ''."""
    kind, at = state.streak.alert, state.streak.alert_at
    if not kind or at is None:
        return ""
    when = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(at))
    return f"{kind} at {when}: {state.streak.alert_text or '-'}"
