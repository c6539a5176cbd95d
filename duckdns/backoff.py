"""Backoff across runs: after a failed attempt, the next runs wait before trying again.

Without it the timer would send a revoked token 1,440 times a day. The rules are
docs/design.md's "Failing politely"; this module keeps them on a duckdns.records.Streak,
duckdns.transition applies them.
"""

from __future__ import annotations

from duckdns.records import Result

TYPE_CHECKING = False  # typing.TYPE_CHECKING: typing costs a timer run a tenth of its CPU
if TYPE_CHECKING:
    from duckdns.records import Streak

TEMP_FIRST, TEMP_MAX = 60, 15 * 60
KO_FIRST, KO_MAX = 5 * 60, 3600
REMINDER = 3600
ALERT_REMINDER = 86400
# A run that cannot record its outcome (state.json cannot be written: a full or read-only
# disk) would look like the first run every minute. Such runs send only in the first
# UNRECORDED_WINDOW seconds of every UNRECORDED_PERIOD: the timer starts a run every 60 to
# 76 s (debian/duckdns.timer: OnUnitActiveSec=1min, RandomizedDelaySec=15s, AccuracySec=1s),
# so at most two timer runs a half hour, each a single try: 4 attempts an hour at most, as
# the 15-minute cap allows. A link that flaps inside the window can add runs through the
# network triggers (duckdns-network.timer: at most one every 2 s).
UNRECORDED_PERIOD = 1800
UNRECORDED_WINDOW = 120


def delay(kind: str, failures: int) -> int:
    """Seconds to wait after the ``failures``-th failed attempt in a row (1 = the first)."""
    first, cap = (KO_FIRST, KO_MAX) if kind == Result.KO else (TEMP_FIRST, TEMP_MAX)
    return min(cap, first << min(max(failures, 1) - 1, 16))  # doubled after each failure


def waiting(streak: Streak, now: float, force: bool, config_changed: bool) -> bool:
    """True when this run must send nothing: inside the wait after a failed attempt.

    A clock that went backwards past the last attempt ends the wait (the stored time
    cannot be trusted then).
    """
    due = streak.next_attempt
    if force or config_changed or not streak.failures or due is None:
        return False
    started = due - delay(streak.kind, streak.failures)
    return started <= now < due


def fail(streak: Streak, kind: str, message: str, now: int) -> bool:
    """Record a failed attempt made at ``now`` in ``streak``; whether it must be reported as
    an error now: the first failure of a streak, and then at most every :data:`REMINDER`
    seconds. ``message`` (already redacted) becomes the alert's text when this attempt
    raises one."""
    first = not streak.failures
    streak.failures += 1
    streak.kind, streak.next_attempt = kind, now + delay(kind, streak.failures)
    if first:
        streak.since = now
    reminded = streak.reminded
    loud = first or reminded is None or not 0 <= now - reminded < REMINDER
    if loud:
        streak.reminded = now
    alerted = streak.alert_at
    if first or streak.alert == Result.UP or alerted is None:
        streak.alert, streak.alert_at, streak.alert_text = Result.DOWN, now, message
    elif not 0 <= now - alerted < ALERT_REMINDER:
        streak.alert, streak.alert_at, streak.alert_text = Result.REMINDER, now, message
    return loud


def succeed(streak: Streak, now: int) -> str:
    """Record a success in ``streak`` (it ends the failure streak); the recovery notice, ''
    if nothing was failing."""
    if not streak.failures:
        return ""
    since, failures = streak.since, streak.failures
    lasted = f"{duration(now - since)}, " if since is not None else ""
    attempts = "attempt" if failures == 1 else "attempts"
    text = f"updates work again after {lasted}{failures} failed {attempts}"
    streak.end()
    streak.alert, streak.alert_at, streak.alert_text = Result.UP, now, text
    return text


def duration(seconds: float) -> str:
    """``3 h 12 min``, ``5 min``, ``40 s``, ``2 d 3 h``: the two largest units."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    parts: list[tuple[int, str]] = []
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


def waiting_message(streak: Streak, now: float) -> str:
    """What a run inside the wait says (at ``-v``)."""
    due = streak.next_attempt or now
    failures = streak.failures
    return (
        f"{failures} failed {'attempt' if failures == 1 else 'attempts'} in a row: next attempt in "
        f"{duration(due - now)} (nothing sent; 'duckdns update --force' tries now)"
    )
