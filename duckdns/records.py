"""The run records: what the last runs did, one plain class per concern.

duckdns.state loads them from ``state.json`` (validating every field once) and saves them;
everything else reads and writes their attributes, never the file's keys. :data:`KEYS` is
the one table between the two: each key of ``state.json`` and the record attribute it
fills. The keys are those of every earlier release (a file written by one reads in the
other, both ways).

This module imports nothing of duckdns: it sits under every module that uses a record.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING: typing costs a timer run a tenth of its CPU
if TYPE_CHECKING:
    from typing import Self


class Record:
    """Fields in ``__slots__``, compared and copied by value."""

    __slots__: tuple[str, ...] = ()

    def fields(self) -> list[str]:
        """Its fields, a base class's too."""
        return [name for cls in type(self).__mro__ for name in getattr(cls, "__slots__", ())]

    def copy(self) -> Self:
        new = object.__new__(type(self))
        for name in self.fields():
            setattr(new, name, getattr(self, name))
        return new

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and all(
            getattr(self, name) == getattr(other, name) for name in self.fields()
        )

    __hash__ = None  # type: ignore[assignment]  # mutable: never a dict key


class Run(Record):
    """The last run that talked to DuckDNS, and what it left."""

    __slots__ = (
        "last_run",  # Unix time of the last run that talked to DuckDNS
        "last_result",  # "updated", "nochange", "ko", "error", "cleared"
        "last_success",  # Unix time of the last OK from DuckDNS
        "last_change",  # Unix time DuckDNS last reported UPDATED
        "last_error",
        "bare_since",  # since when DuckDNS's answers confirm nothing (a bare "OK")
        "in_flight",  # a request was sent at this time and its answer not yet recorded
        "fingerprint",  # the configuration's identity and the updater's version
        "txt",  # the TXT value last set
    )
    last_run: int | None
    last_result: str
    last_success: int | None
    last_change: int | None
    last_error: str
    bare_since: int | None
    in_flight: int | None
    fingerprint: str
    txt: str

    def __init__(self) -> None:
        self.last_run = self.last_success = self.last_change = None
        self.bare_since = self.in_flight = None
        self.last_result = self.last_error = self.fingerprint = self.txt = ""


class Published(Record):
    """One DNS record (A or AAAA): what DuckDNS holds as its last answer showed it
    (``value``), what was asked for (``sent``: "auto" or a literal; '' = nothing sent since
    the last change, so the next run sends), when an answer confirmed it (``confirmed``;
    None with a sent value: an answer that confirmed nothing, asked again at most every
    5 minutes) and when it was last asked for (``tried``, the 5-minute cadence)."""

    __slots__ = ("value", "sent", "confirmed", "tried")
    value: str
    sent: str
    confirmed: int | None
    tried: int | None

    def __init__(self) -> None:
        self.value = self.sent = ""
        self.confirmed = self.tried = None

    def forget(self) -> None:
        """Nothing is known to be published any more: the next update sends it."""
        self.sent, self.confirmed = "", None


class Damped(Record):
    """A subject whose changes are damped (duckdns.decide.damp): the value its last change
    left, when, and its unsaid changes since."""

    __slots__: tuple[str, ...] = ("left", "changed", "flaps")
    left: str
    changed: int | None
    flaps: int

    def __init__(self) -> None:
        self.left, self.changed, self.flaps = "", None, 0


class Probe(Damped):
    """The address probe: its ``state`` ("" before the first run, "ok", "failing",
    "distrusted", "off", "unused") since ``since``, its last ``answer``, and when DuckDNS
    last saw the address it answered (``confirmed``) or another (``disputed``)."""

    __slots__ = ("state", "since", "answer", "confirmed", "disputed")
    state: str
    since: int | None
    answer: str
    confirmed: int | None
    disputed: int | None

    def __init__(self) -> None:
        super().__init__()
        self.state = self.answer = ""
        self.since = self.confirmed = self.disputed = None


class Reach(Damped):
    """The reachability verdict (duckdns.router.verdict, '' before any) since ``since``,
    and the external address the router gave ('' for none)."""

    __slots__ = ("verdict", "since", "router_ipv4")
    verdict: str
    since: int | None
    router_ipv4: str

    def __init__(self) -> None:
        super().__init__()
        self.verdict = self.router_ipv4 = ""
        self.since = None


class Streak(Record):
    """The backoff (duckdns.backoff): since when attempts fail, how many in a row, the last
    one's kind ("ko" or "error"), before when no run sends, the last error line about it;
    and the last alert ("down", "reminder", "up": ``status --alert``), kept after the
    streak ends so that each is told once."""

    __slots__ = (
        "since",
        "failures",
        "kind",
        "next_attempt",
        "reminded",
        "alert",
        "alert_at",
        "alert_text",
    )
    since: int | None
    failures: int
    kind: str
    next_attempt: int | None
    reminded: int | None
    alert: str
    alert_at: int | None
    alert_text: str

    def __init__(self) -> None:
        self.end()
        self.alert, self.alert_at, self.alert_text = "", None, ""

    def end(self) -> None:
        """No failure streak (its alert is kept)."""
        self.since, self.failures, self.kind = None, 0, ""
        self.next_attempt = self.reminded = None


class Ping(Record):
    """The heartbeat: what the monitor was last told (``state``, "up" or "down") and when
    (``at``), and when a ping was last sent, taken or not (``tried``)."""

    __slots__ = ("state", "at", "tried")
    state: str
    at: int | None
    tried: int | None

    def __init__(self) -> None:
        self.state, self.at, self.tried = "", None, None


class Outbox(Record):
    """Notifications: when one was last taken (or ``notify`` first seen), the addresses and
    the alert (its ``alert_at``) it told; ``tried``: the last attempt no URL took (None once
    one took it), saved before the first byte is sent so that a killed send counts."""

    __slots__ = ("at", "ipv4", "ipv6", "alert", "tried")
    at: int | None
    ipv4: str
    ipv6: str
    alert: int | None
    tried: int | None

    def __init__(self) -> None:
        self.at = self.alert = self.tried = None
        self.ipv4 = self.ipv6 = ""


class State(Record):
    """Every record of a run, as one ``state.json`` holds them."""

    __slots__ = ("run", "ipv4", "ipv6", "probe", "reach", "streak", "ping", "outbox")
    run: Run
    ipv4: Published
    ipv6: Published
    probe: Probe
    reach: Reach
    streak: Streak
    ping: Ping
    outbox: Outbox

    def __init__(self) -> None:
        self.run, self.ipv4, self.ipv6 = Run(), Published(), Published()
        self.probe, self.reach, self.streak = Probe(), Reach(), Streak()
        self.ping, self.outbox = Ping(), Outbox()

    def copy(self) -> Self:
        new = object.__new__(type(self))
        for name in self.__slots__:
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
    **{key: ("run", key) for key in Run.__slots__},
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
        for name in Damped.__slots__
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
