"""Decide which records this run must send to DuckDNS, and whether to trust the probe.

Each record is its own *family* with its own state: ``ipv4`` (the A record) and ``ipv6``
(AAAA). The address DuckDNS records always comes from an authenticated source: DuckDNS's own
view of the TLS connection (``ip=`` empty) for ``ipv4 = auto``, the kernel for
``ipv6 = auto``, or the admin's literal. The DNS probe (duckdns.probe) is cheap and
unauthenticated, so it only decides *whether* the A record needs a request, never *what* to
set.

The requests, as DuckDNS documents them (shared/duckdns-api.md, docs/design.md):

* ``ipv4 = auto`` and an IPv6 address: **two requests**, because "when ipv6 is given, the
  autodetection for ip is not used": ``ip=`` (A from the connection) and ``ip=&ipv6=X``
  (AAAA; A left as it was). Only the one(s) whose family needs it are sent.
* ``ipv4 = LITERAL``: one request ``ip=LITERAL[&ipv6=X]`` sets both.
* ``ipv4 = off``: ``ip=&ipv6=X`` (AAAA; A left as it was).

Nothing here depends on what DuckDNS does with an empty ``ipv6=`` or with ``ipv6=`` and no
``ip=``: those are never sent. Every verbose answer is checked (duckdns.update, which sends
them): the family a request carried must show the value asked for (else exit 75), and a
family it did not carry must still show what was last confirmed, else that family is sent
too, in the same run (so an ``ip=`` request that emptied AAAA would be repaired at once
instead of trusted).

The probe's trust is decided here only: before the requests (:func:`plan_update`: it failed,
or it is still distrusted) and after DuckDNS's answer to an ``ip=`` request
(:func:`judge_probe`: it agrees or not). duckdns.update records it with
``state.record_probe`` and says so once (:func:`probe_news`).

While the probe cannot decide (no answer, or an answer that disagreed with what DuckDNS saw),
the A record is sent at most every :data:`UNDECIDED_INTERVAL` seconds (DuckDNS's own
recommended cadence), never every run.
"""

from __future__ import annotations

import time

from duckdns import __version__, localaddr

UNDECIDED_INTERVAL = 300  # DuckDNS's install page runs its cron job every 5 minutes
# How long a probe answer is believed without DuckDNS seeing the same address: a probe that
# keeps repeating an old address (a stale cache on the way) delays a change by at most this.
PROBE_TRUST = 3600
FAMILIES = ("ipv4", "ipv6")
RECORD = {"ipv4": "A", "ipv6": "AAAA"}

# Probe states kept in state.json ("probe_state"); "" before the first run.
PROBE_OK, PROBE_FAILING, PROBE_DISTRUSTED = "ok", "failing", "distrusted"
PROBE_OFF, PROBE_UNUSED = "off", "unused"


class NoAddress(Exception):
    """``ipv6 = auto`` with ``ipv4 = off``, but the host has no usable global IPv6 address."""


class Request:
    """One GET: the ``ip=``/``ipv6=`` values (None: omitted) and the families it sets."""

    __slots__ = ("ip", "ipv6", "sets")

    def __init__(self, ip: str | None, ipv6: str | None, sets: tuple[str, ...]) -> None:
        self.ip, self.ipv6, self.sets = ip, ipv6, sets


class Plan:
    """What this run wants and why. ``reasons`` is empty when nothing needs sending."""

    __slots__ = (
        "want",
        "reasons",
        "observed_ipv4",
        "probe_errors",
        "probe_state",
        "fingerprint",
        "new_config",
        "probe_agreed",
        "disputed_lately",
    )

    def __init__(self) -> None:
        # "ipv4": "auto" | literal | None (off); "ipv6": literal | None (off or no address)
        self.want: dict[str, str | None] = {"ipv4": None, "ipv6": None}
        self.reasons: dict[str, str] = {}  # family -> why it needs a request
        self.observed_ipv4: str | None = None  # the probe's answer, if asked
        self.probe_errors: list[str] = []
        self.probe_state = ""  # the probe's state after this run
        self.fingerprint = ""
        self.new_config = False  # first run, changed configuration or a new updater version
        # Whether DuckDNS's answer showed the address the probe answered (None: not compared)
        self.probe_agreed: bool | None = None
        self.disputed_lately = False  # DuckDNS contradicted the probe within PROBE_TRUST

    @property
    def reason(self) -> str:
        return "; ".join(f"{RECORD[f]}: {r}" for f, r in self.reasons.items())


def fingerprint(cfg) -> str:
    """The configuration's fingerprint and this updater's version: either changing re-sends
    every record (a new version may build its requests differently; this one does)."""
    return f"{cfg.fingerprint()}|{__version__}"


def wanted(cfg) -> dict[str, str | None]:
    """What each record should hold, from the config (and the kernel for ipv6 = auto)."""
    want: dict[str, str | None] = {"ipv4": None if cfg.ipv4 == "off" else cfg.ipv4, "ipv6": None}
    if cfg.ipv6 == "auto":
        want["ipv6"] = localaddr.global_ipv6()
        if want["ipv6"] is None and cfg.ipv4 == "off":
            raise NoAddress("ipv6 = auto, but this host has no global IPv6 address")
    elif cfg.ipv6 != "off":
        want["ipv6"] = cfg.ipv6
    return want


def request_for(plan: Plan, family: str) -> Request:
    """The documented request that sets ``family`` (and, for an IPv4 literal, both)."""
    v4, v6 = plan.want["ipv4"], plan.want["ipv6"]
    if v4 not in (None, "auto"):
        return Request(v4, v6, ("ipv4", "ipv6") if v6 else ("ipv4",))
    if family == "ipv4":
        return Request("", None, ("ipv4",))  # A from the connection: no ipv6= with it
    return Request("", v6, ("ipv6",))  # documented: ip=&ipv6=X sets AAAA, leaves A alone


def requests_for(plan: Plan) -> list[Request]:
    """The requests for the families in ``plan.reasons``, A first (for --dry-run)."""
    done: set[str] = set()
    out = []
    for family in FAMILIES:
        if family in plan.reasons and family not in done:
            req = request_for(plan, family)
            done.update(req.sets)
            out.append(req)
    return out


def _ask_probe(cfg, state: dict, plan: Plan, probe_ipv4, now: float) -> None:
    if cfg.ipv4 != "auto":
        plan.probe_state = PROBE_UNUSED
        return
    if not cfg.probe:
        plan.probe_state = PROBE_OFF
        return
    if probe_ipv4 is None:  # --dry-run: no traffic at all
        plan.probe_state = state.get("probe_state", "")
        return
    plan.disputed_lately = _recent(state["probe_disputed"], now, PROBE_TRUST)
    plan.observed_ipv4, plan.probe_errors = probe_ipv4(cfg.probe)
    if plan.observed_ipv4 is None:
        plan.probe_state = PROBE_FAILING
    elif state.get("probe_state") == PROBE_DISTRUSTED:
        # Until DuckDNS's answer to a request shows the address it answered, an hour after
        # it last did not (judge_probe): a probe whose answers alternate stays distrusted.
        plan.probe_state = PROBE_DISTRUSTED
    else:
        plan.probe_state = PROBE_OK


def _due(state: dict, family: str, want: str, now: float, refresh: int) -> str:
    """Why ``family`` needs a request whatever the probe says, or ''."""
    sent = state[f"sent_{family}"]
    confirmed = state[f"{family}_confirmed"]
    if not sent:
        return "no update confirmed yet"
    if sent != want:
        return f"address changed (was {sent})" if family == "ipv6" else "configuration changed"
    if confirmed is None:  # sent, but the answer confirmed nothing (a bare "OK")
        if _recent(state[f"{family}_tried"], now, UNDECIDED_INTERVAL):
            return ""
        return "DuckDNS's last answer confirmed nothing: asking again (at most every 5 minutes)"
    if not _recent(confirmed, now, refresh):
        return "periodic refresh"
    return ""


def _recent(then: float | None, now: float, seconds: float) -> bool:
    """Whether ``then`` is less than ``seconds`` ago (a clock gone backwards: not recent)."""
    return then is not None and 0 <= now - then < seconds


def plan_update(cfg, state: dict, force: bool, probe_ipv4=None, now: float | None = None) -> Plan:
    """Work out which families need a request, and why.

    ``probe_ipv4`` is a callable taking the probe targets and returning (this network's
    public IPv4 address or None, the failures as text); None asks no one (--dry-run).
    """
    now = time.time() if now is None else now
    plan = Plan()
    plan.want = wanted(cfg)
    plan.fingerprint = fingerprint(cfg)
    plan.new_config = state.get("fingerprint") != plan.fingerprint
    _ask_probe(cfg, state, plan, probe_ipv4, now)
    for family in FAMILIES:
        want = plan.want[family]
        if want is None:
            continue
        if force:
            plan.reasons[family] = "forced"
        elif plan.new_config:
            plan.reasons[family] = (
                "configuration or updater changed" if state.get("fingerprint") else "first update"
            )
        else:
            reason = _due(state, family, want, now, cfg.refresh)
            if not reason and family == "ipv4" and want == "auto":
                reason = _ipv4_signal(cfg, state, plan, now)
            if reason:
                plan.reasons[family] = reason
    if state["failures"] and not plan.reasons and any(plan.want.values()):
        # The backoff's wait is over (duckdns.update checked): only DuckDNS's answer ends a
        # failure streak, so ask it even if nothing else is due; else a failed one-off
        # request (--force) would leave status "failing" until the next refresh.
        family = "ipv4" if plan.want["ipv4"] else "ipv6"
        plan.reasons[family] = "retrying after the failed attempt"
    return plan


def _ipv4_signal(cfg, state: dict, plan: Plan, now: float) -> str:
    """For ipv4 = auto with nothing else due: what the probe says (or the 5-minute cadence)."""
    if not cfg.probe:
        return "probe off: updating every run"
    if state["ipv4_confirmed"] is None:  # sent, unconfirmed: _due's 5-minute cadence decides
        return ""
    tried_lately = _recent(state["ipv4_tried"], now, UNDECIDED_INTERVAL)
    if plan.probe_state != PROBE_OK:
        if tried_lately:
            return ""
        return "the address probe cannot decide: asking DuckDNS (at most every 5 minutes)"
    if plan.observed_ipv4 != state["ipv4"]:
        return f"IPv4 address changed (the probe says {plan.observed_ipv4})"
    if not _recent(state["probe_confirmed"], now, PROBE_TRUST):
        return "checking the address probe against DuckDNS (at least every hour)"
    return ""


def judge_probe(plan: Plan, duckdns_ipv4: str) -> None:
    """After DuckDNS confirmed A from the connection: trust the probe while they agree; once
    they disagree, again only when they agree an hour (PROBE_TRUST) after they last did not."""
    if plan.observed_ipv4 is None:
        return
    plan.probe_agreed = plan.observed_ipv4 == duckdns_ipv4
    if not plan.probe_agreed:
        plan.probe_state = PROBE_DISTRUSTED
    elif not plan.disputed_lately:
        plan.probe_state = PROBE_OK


def probe_news(before: str, after: str, plan: Plan, duckdns_ipv4: str) -> tuple[str, str] | None:
    """(level, message) when the probe's state changed in a way worth telling, else None.

    Said once per change, at default verbosity: the probe starts failing, is found to
    disagree with DuckDNS, or works again.
    """
    if after == before:
        return None
    targets = "; ".join(plan.probe_errors) or "no answer"
    if after == PROBE_FAILING:
        return (
            "warning",
            f"address probe failed ({targets}): asking DuckDNS at most every 5 minutes until "
            "it answers again; check that DNS to those addresses is not blocked, or set "
            "'probe' to other addresses",
        )
    if after == PROBE_DISTRUSTED:
        return (
            "warning",
            f"address probe answered {plan.observed_ipv4} but DuckDNS saw {duckdns_ipv4} "
            "(a router or resolver that intercepts DNS?): asking DuckDNS at most every 5 "
            "minutes until they agree; set 'probe' to other addresses or 'probe = off'",
        )
    if after == PROBE_OK and before in (PROBE_FAILING, PROBE_DISTRUSTED):
        return (
            "notice",
            f"address probe works again (it says {plan.observed_ipv4}): "
            "asking DuckDNS only when the address changes",
        )
    return None
