"""``duckdns status --prometheus`` and ``--alert``: the state, for monitoring.

The Prometheus text exposition format (version 0.0.4, what node-exporter's textfile
collector reads): ``# HELP`` and ``# TYPE`` lines, then ``name{labels} value``. Only
state.json and the configured names go in: never the token or the heartbeat URL (neither
is in the state; the config's secrets are not read here). Times are Unix seconds, and a
time that is not known (no success yet) is left out rather than written as 0.
"""

from __future__ import annotations

import time

from duckdns.decide import Family

TYPE_CHECKING = False  # typing.TYPE_CHECKING: typing is not loaded to print metrics
if TYPE_CHECKING:
    from duckdns.records import State

PREFIX = "duckdns_"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    return repr(float(value)) if isinstance(value, float) else str(int(value))


def render(state: State, domains: tuple[str, ...] = ()) -> str:
    """The metrics for ``state`` (and the config's ``domains``, for the records' labels)."""
    lines: list[str] = []

    def metric(
        name: str, kind: str, help_text: str, samples: list[tuple[str, float | None]]
    ) -> None:
        given = [(labels, value) for labels, value in samples if value is not None]
        if not given:
            return
        lines.append(f"# HELP {PREFIX}{name} {help_text}")
        lines.append(f"# TYPE {PREFIX}{name} {kind}")
        for labels, value in given:
            lines.append(f"{PREFIX}{name}{labels} {_number(value)}")

    metric(
        "last_success_timestamp_seconds",
        "gauge",
        "When DuckDNS last answered OK.",
        [("", state.run.last_success)],
    )
    metric(
        "last_change_timestamp_seconds",
        "gauge",
        "When DuckDNS last reported a record UPDATED.",
        [("", state.run.last_change)],
    )
    metric(
        "last_request_timestamp_seconds",
        "gauge",
        "When a request was last sent to DuckDNS.",
        [("", state.run.last_run)],
    )
    metric(
        "consecutive_failures",
        "gauge",
        "Failed attempts in a row (0: the last attempt worked).",
        [("", state.streak.failures)],
    )
    metric(
        "failing_since_timestamp_seconds",
        "gauge",
        "When the current run of failures started.",
        [("", state.streak.since if state.streak.failures else None)],
    )
    metric(
        "next_attempt_timestamp_seconds",
        "gauge",
        "No request is sent before this time (backoff after a failure).",
        [("", state.streak.next_attempt if state.streak.failures else None)],
    )
    probe = state.probe.state
    metric(
        "probe_trusted",
        "gauge",
        "1 when the address probe works and agrees with DuckDNS, 0 when it fails or disagrees.",
        [("", {"ok": 1, "failing": 0, "distrusted": 0}.get(probe))],
    )
    metric(
        "reachability",
        "gauge",
        "1 for the last verdict from the router's answer (direct, cgnat, double-nat, "
        "no-public, upstream, unknown).",
        [(f'{{verdict="{_escape(state.reach.verdict)}"}}', 1 if state.reach.verdict else None)],
    )
    records: list[tuple[str, float | None]] = []
    for family in Family:
        address = state.published(family.value).value
        if not address:
            continue
        for domain in domains or ("",):
            labels = [f'type="{family.record}"', f'address="{_escape(address)}"']
            if domain:
                labels.insert(0, f'domain="{_escape(domain)}.duckdns.org"')
            records.append(("{" + ",".join(labels) + "}", 1))
    metric(
        "record_info",
        "gauge",
        "The records DuckDNS holds, as its last answer showed them.",
        records,
    )
    return "\n".join(lines) + "\n"


def alert_line(state: State) -> str:
    """The last alert in one line (``down|reminder|up at TIME: TEXT``), or ''."""
    kind, at = state.streak.alert, state.streak.alert_at
    if not kind or at is None:
        return ""
    when = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(at))
    return f"{kind} at {when}: {state.streak.alert_text or '-'}"
