"""The run records: what the last runs did, one plain class per concern.

duckdns.state loads them from ``state.json`` (validating every field once) and saves them;
everything else reads and writes their attributes, never the file's keys. :data:`KEYS` is
the one table between the two: each key of ``state.json`` and the record attribute it
fills. The keys are those of every earlier release (a file written by one reads in the
other, both ways).

This module imports nothing of duckdns: it sits under every module that uses a record.
"""

from __future__ import annotations

import enum

TYPE_CHECKING = False  # typing.TYPE_CHECKING: typing costs a timer run a tenth of its CPU
if TYPE_CHECKING:
    from typing import ClassVar, Self


class Result(enum.StrEnum):
    """The one vocabulary of how things went, spelled as state.json, ``status`` and the
    metrics spell it: how an attempt ended (``OK``, ``KO``: DuckDNS refused the token or a
    name, ``ERROR``: anything temporary), the last run's result (``UPDATED``, ``NOCHANGE``,
    ``KO``, ``ERROR``, ``CLEARED``), and what the admin and the monitor were last told
    (``DOWN``, ``REMINDER``, ``UP``). Each member is its text: it compares equal to the
    text an older state.json holds."""

    OK = "ok"
    KO = "ko"
    ERROR = "error"
    UPDATED = "updated"
    NOCHANGE = "nochange"
    CLEARED = "cleared"
    DOWN = "down"
    REMINDER = "reminder"
    UP = "up"


class Record:
    """Fields in ``__slots__``, each starting at its value in ``DEFAULTS`` (which lists them,
    and their types are annotated); compared and copied by value."""

    __slots__: tuple[str, ...] = ()
    DEFAULTS: ClassVar[dict[str, object]] = {}

    def __init__(self) -> None:
        for name, value in self.DEFAULTS.items():
            setattr(self, name, value)

    def copy(self) -> Self:
        new = object.__new__(type(self))
        for name in self.DEFAULTS:
            setattr(new, name, getattr(self, name))
        return new

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and all(
            getattr(self, name) == getattr(other, name) for name in self.DEFAULTS
        )

    __hash__ = None  # type: ignore[assignment]  # mutable: never a dict key


class Run(Record):
    """The last run that talked to DuckDNS, and what it left."""

    DEFAULTS = {"last_run": None, "last_result": "", "last_success": None, "last_change": None}
    DEFAULTS |= {"last_error": "", "bare_since": None, "in_flight": None}
    DEFAULTS |= {"fingerprint": "", "txt": ""}
    __slots__ = tuple(DEFAULTS)
    last_run: int | None  # Unix time of the last run that talked to DuckDNS
    last_result: str  # a Result: UPDATED, NOCHANGE, KO, ERROR or CLEARED
    last_success: int | None  # Unix time of the last OK from DuckDNS
    last_change: int | None  # Unix time DuckDNS last reported UPDATED
    last_error: str
    bare_since: int | None  # since when DuckDNS's answers confirm nothing (a bare "OK")
    in_flight: int | None  # a request was sent at this time and its answer not yet recorded
    fingerprint: str  # the configuration's identity and the updater's version
    txt: str  # the TXT value last set


class Published(Record):
    """One DNS record (A or AAAA): what DuckDNS holds as its last answer showed it
    (``value``), what was asked for (``sent``: "auto" or a literal; '' = nothing sent since
    the last change, so the next run sends), when an answer confirmed it (``confirmed``;
    None with a sent value: an answer that confirmed nothing, asked again at most every
    5 minutes) and when it was last asked for (``tried``, the 5-minute cadence)."""

    DEFAULTS = {"value": "", "sent": "", "confirmed": None, "tried": None}
    __slots__ = tuple(DEFAULTS)
    value: str
    sent: str
    confirmed: int | None
    tried: int | None

    def forget(self) -> None:
        """Nothing is known to be published any more: the next update sends it."""
        self.sent, self.confirmed = "", None


class Damped(Record):
    """A subject whose changes are damped (duckdns.decide.damp): the value its last change
    left, when, and its unsaid changes since."""

    __slots__ = ()
    DEFAULTS = {"left": "", "changed": None, "flaps": 0}
    left: str
    changed: int | None
    flaps: int


class Probe(Damped):
    """The address probe: its ``state`` ("" before the first run, "ok", "failing",
    "distrusted", "off", "unused") since ``since``, its last ``answer``, and when DuckDNS
    last saw the address it answered (``confirmed``) or another (``disputed``)."""

    DEFAULTS = {**Damped.DEFAULTS, "state": "", "since": None, "answer": ""}
    DEFAULTS |= {"confirmed": None, "disputed": None}
    __slots__ = tuple(DEFAULTS)
    state: str
    since: int | None
    answer: str
    confirmed: int | None
    disputed: int | None


class Reach(Damped):
    """The reachability verdict (duckdns.router.verdict, '' before any) since ``since``,
    and the external address the router gave ('' for none)."""

    DEFAULTS = {**Damped.DEFAULTS, "verdict": "", "since": None, "router_ipv4": ""}
    __slots__ = tuple(DEFAULTS)
    verdict: str
    since: int | None
    router_ipv4: str


class Streak(Record):
    """The backoff (duckdns.backoff): since when attempts fail, how many in a row, the last
    one's kind (Result.KO or ERROR), before when no run sends, the last error line about it;
    and the last alert (Result.DOWN, REMINDER or UP: ``status --alert``), kept after the
    streak ends so that each is told once."""

    ENDED = {"since": None, "failures": 0, "kind": "", "next_attempt": None, "reminded": None}
    DEFAULTS = {**ENDED, "alert": "", "alert_at": None, "alert_text": ""}
    __slots__ = tuple(DEFAULTS)
    since: int | None
    failures: int
    kind: str
    next_attempt: int | None
    reminded: int | None
    alert: str
    alert_at: int | None
    alert_text: str

    def end(self) -> None:
        """No failure streak (its alert is kept)."""
        for name, value in self.ENDED.items():
            setattr(self, name, value)


class Ping(Record):
    """The heartbeat: what the monitor was last told (``state``, Result.UP or DOWN) and when
    (``at``), and when a ping was last sent, taken or not (``tried``)."""

    DEFAULTS = {"state": "", "at": None, "tried": None}
    __slots__ = tuple(DEFAULTS)
    state: str
    at: int | None
    tried: int | None


class Outbox(Record):
    """Notifications: when one was last taken (or ``notify`` first seen), the addresses and
    the alert (its ``alert_at``) it told; ``tried``: the last attempt no URL took (None once
    one took it), saved before the first byte is sent so that a killed send counts."""

    DEFAULTS = {"at": None, "ipv4": "", "ipv6": "", "alert": None, "tried": None}
    __slots__ = tuple(DEFAULTS)
    at: int | None
    ipv4: str
    ipv6: str
    alert: int | None
    tried: int | None


class State(Record):
    """Every record of a run, as one ``state.json`` holds them."""

    PARTS = {"run": Run, "ipv4": Published, "ipv6": Published, "probe": Probe}
    PARTS |= {"reach": Reach, "streak": Streak, "ping": Ping, "outbox": Outbox}
    DEFAULTS = dict.fromkeys(PARTS)
    __slots__ = tuple(PARTS)
    run: Run
    ipv4: Published
    ipv6: Published
    probe: Probe
    reach: Reach
    streak: Streak
    ping: Ping
    outbox: Outbox

    def __init__(self) -> None:
        for name, part in self.PARTS.items():
            setattr(self, name, part())

    def copy(self) -> Self:
        new = object.__new__(type(self))
        for name in self.PARTS:
            setattr(new, name, getattr(self, name).copy())
        return new

    def published(self, family: str) -> Published:
        """The record of ``family`` ("ipv4" or "ipv6")."""
        record: Published = getattr(self, family)
        return record

    def forget(self) -> None:
        """Nothing is known to be published any more: the next update sends every record."""
        self.ipv4.forget()
        self.ipv6.forget()


# state.json's keys: key -> (record, attribute). The only place they are spelled.
KEYS = {
    **{key: ("run", key) for key in Run.DEFAULTS},
    **{
        f"{pre}{family}{post}": (family, attribute)
        for family in ("ipv4", "ipv6")
        for pre, post, attribute in (
            ("", "", "value"),
            ("sent_", "", "sent"),
            ("", "_confirmed", "confirmed"),
            ("", "_tried", "tried"),
        )
    },
    **{f"probe_{name}": ("probe", name) for name in ("since", "confirmed", "disputed")},
    **{
        f"{subject}_{name}": (subject, name)
        for subject in ("probe", "reach")
        for name in Damped.DEFAULTS
    },
    "probe_state": ("probe", "state"),
    "probe_ipv4": ("probe", "answer"),
    "reach": ("reach", "verdict"),
    "reach_since": ("reach", "since"),
    "router_ipv4": ("reach", "router_ipv4"),
    "failing_since": ("streak", "since"),
    "failures": ("streak", "failures"),
    "failure_kind": ("streak", "kind"),
    "next_attempt": ("streak", "next_attempt"),
    "reminded": ("streak", "reminded"),
    "alert": ("streak", "alert"),
    "alert_at": ("streak", "alert_at"),
    "alert_text": ("streak", "alert_text"),
    "ping_state": ("ping", "state"),
    "ping_at": ("ping", "at"),
    "ping_tried": ("ping", "tried"),
    "notified_at": ("outbox", "at"),
    "notified_ipv4": ("outbox", "ipv4"),
    "notified_ipv6": ("outbox", "ipv6"),
    "notified_alert": ("outbox", "alert"),
    "notify_tried": ("outbox", "tried"),
}
