"""Backoff across runs: after a failed attempt, the next runs wait before trying again.

The timer starts the updater every minute; without this, a revoked token would be sent
1,440 times a day and a DuckDNS outage would cost up to six requests a run. What is kept
(in state.json, see :data:`FIELDS`): when the failures started, how many attempts in a row
failed, the last kind of failure and when the next attempt may be made.

* A temporary failure (network, TLS, clock, HTTP status, timeout, unexpected answer) waits
  1 minute, doubling to at most 15 minutes; a ``KO`` waits 5 minutes, doubling to at most
  1 hour (the token or domain is wrong: only the admin can fix it).
* Once a failure is recorded, an attempt makes a single try (api.send's in-run retries
  bridge a blip; they must not multiply an outage).
* A changed configuration (the fingerprint duckdns.decide keeps), ``update --force`` and a
  success end the wait at once.

The updater's own lines: one error at the first failure, a reminder at most every
:data:`REMINDER` seconds while the failures last (each attempt's error only at ``-v``), and
one notice on recovery. This module only computes: duckdns.state records the fields it hands
back, duckdns.update does the talking.
"""

from __future__ import annotations

TEMP_FIRST, TEMP_MAX = 60, 15 * 60
KO_FIRST, KO_MAX = 5 * 60, 3600
REMINDER = 3600
ALERT_REMINDER = 86400
# A run that cannot record its outcome (state.json cannot be written: a full or read-only
# disk) would look like the first run every minute. Such runs send only in the first
# UNRECORDED_WINDOW seconds of every UNRECORDED_PERIOD: the timer starts a run every 1 to 2
# minutes (OnUnitActiveSec=1min, systemd's default AccuracySec=1min), so at most two runs a
# half hour, each a single try: 4 attempts an hour at most, as the 15-minute cap allows.
UNRECORDED_PERIOD = 1800
UNRECORDED_WINDOW = 120

FIELDS = {
    "failing_since": None,  # Unix time of the first failed attempt of the current streak
    "failures": 0,  # failed attempts in a row
    "failure_kind": "",  # "ko" or "error": the last failed attempt's
    "next_attempt": None,  # Unix time before which no run sends (None: no wait)
    "reminded": None,  # Unix time of the last error line about this streak
}
# The last alert (for the README's mail recipe, ``duckdns status --alert``): "down" at the
# first failure, "reminder" at most once a day while it lasts, "up" on recovery. Kept after
# the streak ends, so each alert can be told once.
ALERT_FIELDS = {"alert": "", "alert_at": None, "alert_text": ""}


def delay(kind: str, failures: int) -> int:
    """Seconds to wait after the ``failures``-th failed attempt in a row (1 = the first)."""
    first, cap = (KO_FIRST, KO_MAX) if kind == "ko" else (TEMP_FIRST, TEMP_MAX)
    return min(cap, first * 2 ** min(max(failures, 1) - 1, 16))


def failing(state: dict) -> bool:
    return bool(state["failures"])


def waiting(state: dict, now: float, force: bool, config_changed: bool) -> bool:
    """True when this run must send nothing: inside the wait after a failed attempt.

    A clock that went backwards past the last attempt ends the wait (the stored time
    cannot be trusted then).
    """
    if force or config_changed or not failing(state):
        return False
    due = state["next_attempt"]
    if due is None:
        return False
    started = due - delay(state["failure_kind"], state["failures"])
    return started <= now < due


def after_failure(state: dict, kind: str, message: str, now: int) -> tuple[dict, bool]:
    """The fields a failed attempt changes, and whether it must be reported as an error now.

    That is the first failure of a streak, and then at most every :data:`REMINDER` seconds.
    ``message`` (already redacted) becomes the alert's text when this attempt raises one.
    """
    first = not failing(state)
    failures = state["failures"] + 1
    updates = {
        "failures": failures,
        "failure_kind": kind,
        "next_attempt": now + delay(kind, failures),
    }
    if first:
        updates["failing_since"] = now
    reminded = state["reminded"]
    loud = first or reminded is None or not 0 <= now - reminded < REMINDER
    if loud:
        updates["reminded"] = now
    alerted = state["alert_at"]
    if first or state["alert"] == "up" or alerted is None:
        updates.update(alert="down", alert_at=now, alert_text=message)
    elif not 0 <= now - alerted < ALERT_REMINDER:
        updates.update(alert="reminder", alert_at=now, alert_text=message)
    return updates, loud


def after_success(state: dict, now: int) -> tuple[dict, str]:
    """The fields a success changes, and the recovery notice ('' if nothing was failing)."""
    if not failing(state):
        return {}, ""
    since, failures = state["failing_since"], state["failures"]
    attempts = "attempt" if failures == 1 else "attempts"
    if since is not None:
        text = f"updates work again after {duration(now - since)}, {failures} failed {attempts}"
    else:
        text = f"updates work again after {failures} failed {attempts}"
    return {**FIELDS, "alert": "up", "alert_at": now, "alert_text": text}, text


def duration(seconds: float) -> str:
    """``3 h 12 min``, ``5 min``, ``40 s``, ``2 d 3 h``: the two largest units."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size or parts:
            parts.append((seconds // size, unit))
            seconds %= size
    parts = parts[:2]
    return " ".join(f"{n} {unit}" for n, unit in parts if n or unit == parts[0][1])


def unrecorded_turn(now: int, salt: str) -> bool:
    """Whether a run that cannot record its outcome may send now (see UNRECORDED_PERIOD).

    ``salt`` (the domains) spreads such hosts over the half hour instead of all at :00.
    """
    import zlib

    offset = zlib.crc32(salt.encode()) % UNRECORDED_PERIOD
    return (now - offset) % UNRECORDED_PERIOD < UNRECORDED_WINDOW


def waiting_message(state: dict, now: float) -> str:
    """What a run inside the wait says (at ``-v``)."""
    due = state["next_attempt"] or now
    failures = state["failures"]
    return (
        f"{failures} failed {'attempt' if failures == 1 else 'attempts'} in a row: next attempt in "
        f"{duration(due - now)} (nothing sent; 'duckdns update --force' tries now)"
    )
