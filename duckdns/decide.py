"""Plan a run and assess DuckDNS's answers: pure functions of what the run gathered.

:func:`plan` says which records (each a :class:`Family`) need a request and why,
:func:`next_request` which to send next (the plan's, then a record an answer showed drifted),
:func:`assess` what the answers mean (:class:`Outcome`), :func:`damp` when a flapping subject
is said. The rules are docs/design.md's "Requests per run": the address always comes from an
authenticated source (DuckDNS's view of the connection, the kernel, the admin's literal);
the unauthenticated DNS probe only decides *whether* A needs a request, never *what* to set;
only documented requests are sent (never an empty ``ipv6=``, nor ``ipv6=`` without ``ip=``).
"""

from __future__ import annotations

import enum

from duckdns import __version__
from duckdns.records import Result

TYPE_CHECKING = False  # typing.TYPE_CHECKING: typing costs a timer run a tenth of its CPU
if TYPE_CHECKING:
    from duckdns.api import Reply
    from duckdns.config import Config
    from duckdns.probe import Probed
    from duckdns.records import State

UNDECIDED_INTERVAL = 300  # DuckDNS's install page runs its cron job every 5 minutes
# How long a probe answer is believed without DuckDNS seeing the same address: a probe that
# keeps repeating an old address (a stale cache on the way) delays a change by at most this.
PROBE_TRUST = 3600


class Family(enum.Enum):
    """A DNS record DuckDNS keeps; the value is its name in state.json."""

    IPV4 = "ipv4"
    IPV6 = "ipv6"

    @property
    def record(self) -> str:
        return "A" if self is Family.IPV4 else "AAAA"


# Probe states kept in state.json ("probe_state"); "" before the first run.
PROBE_OK, PROBE_FAILING, PROBE_DISTRUSTED = "ok", "failing", "distrusted"
PROBE_OFF, PROBE_UNUSED = "off", "unused"


# Flapping (duckdns.update says lines through :func:`damp`): a subject, the probe's state or
# the reachability verdict, that goes back to the value it just left within SETTLE seconds
# of leaving it is flapping. Its changes are then not said; at the FLAPPING-th unsaid change
# one line says it flaps, and once a value has held SETTLE seconds that value is said.
SETTLE = 600  # 10 timer runs
FLAPPING = 2
SAY_CHANGE, SAY_FLAPPING, SAY_SETTLED = "change", "flapping", "settled"


def damp(
    before: str, after: str, left: str, changed: int | None, flaps: int, now: int
) -> tuple[str, str, int | None, int]:
    """What to say about a subject this run, and its new damper fields.

    ``before``/``after``: its value at the last run and now ('' before, for the first
    value: said as it always was, not a change). ``left``: the value its last change left,
    ``changed``: when that was (None: never), ``flaps``: its unsaid changes since then.
    Returns (``SAY_CHANGE``, ``SAY_FLAPPING``, ``SAY_SETTLED`` or '' for nothing, and the
    new ``left``, ``changed`` and ``flaps``). A single change is said at once; a change
    back to the value just left within SETTLE seconds, and any change while it flaps, is
    not; a value that has held SETTLE seconds after unsaid changes is said (SAY_SETTLED
    when a flapping line was said, SAY_CHANGE otherwise).
    """
    quiet = not _recent(changed, now, SETTLE)
    settled = SAY_SETTLED if flaps >= FLAPPING else SAY_CHANGE
    if after == before:
        if flaps and quiet:
            return settled, left, changed, 0
        return "", left, changed, flaps
    if not before:
        return SAY_CHANGE, "", None, 0
    if quiet or not (flaps or after == left):
        return (settled if flaps else SAY_CHANGE), before, now, 0
    said = SAY_FLAPPING if flaps == FLAPPING - 1 else ""
    return said, before, now, min(flaps + 1, FLAPPING)


class Request:
    """One GET: the ``ip=``/``ipv6=`` values (None: omitted) and the families it sets."""

    __slots__ = ("ip", "ipv6", "sets")

    def __init__(self, ip: str | None, ipv6: str | None, sets: tuple[Family, ...]) -> None:
        self.ip, self.ipv6, self.sets = ip, ipv6, sets


class Plan:
    """What this run wants and why; ``requests`` is empty when nothing needs sending."""

    __slots__ = (
        "want",
        "reasons",
        "requests",
        "probe_answer",
        "probe_errors",
        "probe_state",
        "disputed_lately",
        "fingerprint",
        "new_config",
        "missing",
        "expect",
    )

    def __init__(self, want: dict[Family, str | None], fingerprint: str, new_config: bool) -> None:
        # IPV4: "auto" | literal | None (off); IPV6: literal | None (off or no address)
        self.want = want
        self.reasons: dict[Family, str] = {}  # family -> why it needs a request
        self.requests: list[Request] = []
        self.probe_answer: str | None = None  # the probe's answer, if asked
        self.probe_errors: list[str] = []
        self.probe_state = ""  # the probe's state before DuckDNS's answers
        self.disputed_lately = False  # DuckDNS contradicted the probe within PROBE_TRUST
        self.fingerprint = fingerprint
        self.new_config = new_config  # first run, changed configuration or new updater
        # Why there is nothing to publish ('' when there is): ipv4 = off and ipv6 = auto on
        # a host without a global IPv6 address. A failure of this host's own, recorded and
        # backed off like one of DuckDNS's, so it is said once, not every minute.
        self.missing = ""
        # What each record should show before this run's answers (None: nothing known):
        # an answer showing otherwise for a record its request did not set is drift.
        self.expect: dict[Family, str | None] = dict.fromkeys(Family)

    @property
    def reason(self) -> str:
        return "; ".join(f"{f.record}: {r}" for f, r in self.reasons.items())


def fingerprint(identity: str) -> str:
    """The configuration's identity (config.Config.fingerprint) and this updater's version:
    either changing re-sends every record (a new version may build its requests
    differently; this one does)."""
    return f"{identity}|{__version__}"


NO_ADDRESS = (
    "nothing to publish: ipv4 = off and ipv6 = auto, but this host has no global IPv6 "
    "address; check the network connection (ip -6 addr), or set ipv4 = auto"
)


def wanted(cfg: Config, host_ipv6: str | None) -> dict[Family, str | None]:
    """What each record should hold, from the config (and the host's address for auto)."""
    ipv4 = None if cfg.ipv4 == "off" else cfg.ipv4
    ipv6 = host_ipv6 if cfg.ipv6 == "auto" else None if cfg.ipv6 == "off" else cfg.ipv6
    return {Family.IPV4: ipv4, Family.IPV6: ipv6}


def request_for(want: dict[Family, str | None], family: Family) -> Request:
    """The documented request that sets ``family`` (and, for an IPv4 literal, both)."""
    v4, v6 = want[Family.IPV4], want[Family.IPV6]
    if v4 not in (None, "auto"):
        return Request(v4, v6, (Family.IPV4, Family.IPV6) if v6 else (Family.IPV4,))
    if family is Family.IPV4:
        return Request("", None, (Family.IPV4,))  # A from the connection: no ipv6= with it
    return Request("", v6, (Family.IPV6,))  # documented: ip=&ipv6=X sets AAAA, leaves A alone


def _recent(then: float | None, now: float, seconds: float) -> bool:
    """Whether ``then`` is less than ``seconds`` ago (a clock gone backwards: not recent)."""
    return then is not None and 0 <= now - then < seconds


def plan(
    cfg: Config,
    state: State,
    now: int,
    fingerprint: str,
    probed: Probed | None,
    host_ipv6: str | None,
    *,
    force: bool,
) -> Plan:
    """Which families need a request, why, and the requests, A first, from what the run
    gathered: the probe's answer (``probed``; None: not asked) and this host's global IPv6
    address (``host_ipv6``; None: none, or not needed)."""
    result = Plan(wanted(cfg, host_ipv6), fingerprint, state.run.fingerprint != fingerprint)
    _judge_probe_before(cfg, state, probed, now, result)
    if not any(result.want.values()):
        result.missing = NO_ADDRESS
        return result
    for family in Family:
        want = result.want[family]
        if want is None:
            continue
        if force:
            reason = "forced"
        elif result.new_config:
            reason = "configuration or updater changed" if state.run.fingerprint else "first update"
        else:
            reason = _due(state, family, want, now, cfg.refresh)
            if not reason and family is Family.IPV4 and want == "auto":
                reason = _ipv4_signal(cfg, state, result, now)
        if reason:
            result.reasons[family] = reason
    if state.streak.failures and not result.reasons:
        # The backoff's wait is over (duckdns.update checked): only DuckDNS's answer ends a
        # failure streak, so ask it even if nothing else is due; else a failed one-off
        # request (--force) would leave status "failing" until the next refresh.
        family = Family.IPV4 if result.want[Family.IPV4] else Family.IPV6
        result.reasons[family] = "retrying after the failed attempt"
    if not result.new_config:
        result.expect = {
            f: (state.published(f.value).value if want == "auto" else want)
            if want is not None and state.published(f.value).sent
            else None
            for f, want in result.want.items()
        }
    covered: set[Family] = set()
    for family in result.reasons:
        if family not in covered:
            request = request_for(result.want, family)
            covered.update(request.sets)
            result.requests.append(request)
    return result


def _judge_probe_before(
    cfg: Config, state: State, probed: Probed | None, now: int, result: Plan
) -> None:
    """The probe's state from its answer, before DuckDNS's (see :func:`assess`)."""
    if cfg.ipv4 != "auto":
        result.probe_state = PROBE_UNUSED
    elif not cfg.probe:
        result.probe_state = PROBE_OFF
    elif probed is None:  # --dry-run: no traffic at all
        result.probe_state = state.probe.state
    else:
        result.probe_answer = probed.address
        result.probe_errors = [f"{target}: {why}" for target, why in probed.failures]
        result.disputed_lately = _recent(state.probe.disputed, now, PROBE_TRUST)
        if result.probe_answer is None:
            result.probe_state = PROBE_FAILING
        elif state.probe.state == PROBE_DISTRUSTED:
            # Until DuckDNS's answer to a request shows the address it answered, an hour after
            # it last did not (assess): a probe whose answers alternate stays distrusted.
            result.probe_state = PROBE_DISTRUSTED
        else:
            result.probe_state = PROBE_OK


def _due(state: State, family: Family, want: str, now: float, refresh: int) -> str:
    """Why ``family`` needs a request whatever the probe says, or ''."""
    record = state.published(family.value)
    sent, confirmed = record.sent, record.confirmed
    if not sent:
        return "no update confirmed yet"
    if sent != want:
        return (
            "address changed (was " + sent + ")"
            if family is Family.IPV6
            else "configuration changed"
        )
    if confirmed is None:  # sent, but the answer confirmed nothing (a bare "OK")
        if _recent(record.tried, now, UNDECIDED_INTERVAL):
            return ""
        return "DuckDNS's last answer confirmed nothing: asking again (at most every 5 minutes)"
    if not _recent(confirmed, now, refresh):
        return "periodic refresh"
    return ""


def _ipv4_signal(cfg: Config, state: State, result: Plan, now: float) -> str:
    """For ipv4 = auto with nothing else due: what the probe says (or the 5-minute cadence)."""
    if not cfg.probe:
        return "probe off: updating every run"
    if state.ipv4.confirmed is None:  # sent, unconfirmed: _due's 5-minute cadence decides
        return ""
    if result.probe_state != PROBE_OK:
        if _recent(state.ipv4.tried, now, UNDECIDED_INTERVAL):
            return ""
        return "the address probe cannot decide: asking DuckDNS (at most every 5 minutes)"
    if result.probe_answer != state.ipv4.value:
        return f"IPv4 address changed (the probe says {result.probe_answer})"
    if not _recent(state.probe.confirmed, now, PROBE_TRUST):
        return "checking the address probe against DuckDNS (at least every hour)"
    return ""


# -- after the requests -------------------------------------------------------------------------


class Answer:
    """One request and what came of it: ``reply`` (an api.Reply) or ``failure``, a
    (kind, message) pair: kind Result.KO (DuckDNS answered KO) or ERROR."""

    __slots__ = ("request", "reply", "failure")

    def __init__(
        self,
        request: Request,
        reply: Reply | None = None,
        failure: tuple[Result, str] | None = None,
    ) -> None:
        self.request, self.reply, self.failure = request, reply, failure


def _replay(plan: Plan, answers: list[Answer]) -> tuple[list[list[Family]], list[Request]]:
    """The families each answer shows drifted (changed behind our back: not what was last
    confirmed, and not set by its request), and the requests still to send after them:
    the plan's, then one for each drifted family not sent nor waiting, in this run."""
    expect, queue = dict(plan.expect), list(plan.requests)
    sent: set[Family] = set()
    drifts: list[list[Family]] = []
    for answer in answers:  # each answers the first request then waiting (next_request)
        if queue:
            queue.pop(0)
        sent.update(answer.request.sets)
        drift: list[Family] = []
        reply = answer.reply
        if reply is not None and reply.verbose:
            shown = {Family.IPV4: reply.ipv4, Family.IPV6: reply.ipv6}
            for family in Family:
                if family in answer.request.sets:
                    expect[family] = shown[family]
                elif expect[family] is not None and shown[family] != expect[family]:
                    drift.append(family)
                    expect[family] = None
        drifts.append(drift)
        waiting = {family for request in queue for family in request.sets}
        for family in drift:
            if family not in sent and family not in waiting:
                queue.append(request_for(plan.want, family))
                waiting.add(family)
    return drifts, queue


def next_request(plan: Plan, answers: list[Answer]) -> Request | None:
    """The request to send after ``answers`` (None: the run is done): the plan's in order,
    then the request for a record an answer showed changed behind our back, so an ``ip=``
    request that emptied AAAA is repaired at once; none after a failure (a KO or a
    temporary failure would only repeat)."""
    if answers and answers[-1].failure is not None:
        return None
    queue = _replay(plan, answers)[1]
    return queue[0] if queue else None


class Outcome:
    """What the run's answers mean, for duckdns.state to record and duckdns.update to say.

    ``confirmed``: family -> (what was asked, what the answer showed; None for a bare
    "OK", which confirms nothing); ``unconfirmed``: families that drifted; ``shown``: what
    verbose answers showed of records the requests did not set; ``kind`` (a Result: OK,
    KO or ERROR) with its ``message``; ``bare``: True when answers confirm nothing, False when a
    verbose one came, None without any answer; ``probe_agreed``: whether DuckDNS saw the
    address the probe answered (None: not compared); ``probe_state`` after the answers.
    """

    __slots__ = (
        "tried",
        "confirmed",
        "unconfirmed",
        "shown",
        "kind",
        "message",
        "updated",
        "bare",
        "probe_state",
        "probe_agreed",
    )

    def __init__(self, probe_state: str) -> None:
        self.tried: set[Family] = set()
        self.confirmed: dict[Family, tuple[str | None, str | None]] = {}
        self.unconfirmed: set[Family] = set()
        self.shown: dict[Family, str] = {}
        self.kind, self.message, self.updated = Result.OK, "", False
        self.bare: bool | None = None
        self.probe_state = probe_state
        self.probe_agreed: bool | None = None


def assess(plan: Plan, answers: list[Answer]) -> Outcome:
    """What the answers of this run, in order, mean; the first failure ends the run."""
    out = Outcome(plan.probe_state)
    drifts = _replay(plan, answers)[0]
    for number, answer in enumerate(answers):
        request, reply = answer.request, answer.reply
        out.tried.update(request.sets)
        if answer.failure is not None:
            out.kind, out.message = answer.failure
            if out.kind == Result.KO and number:  # an earlier request of this run was accepted
                out.message = (
                    f"DuckDNS answered KO to the {request.sets[-1].record} request for "
                    f"{request.ipv6 or request.ip or 'this address'} after accepting the token "
                    "and domains a moment before: it refused that address (not retried)"
                )
            break
        assert reply is not None  # an answer holds a reply or a failure
        out.updated |= reply.updated
        if not reply.verbose:  # a bare "OK": accepted, but it confirms nothing
            out.bare = True
            out.confirmed.update((f, (plan.want[f], None)) for f in request.sets)
            continue
        out.bare = bool(out.bare)
        shown = {Family.IPV4: reply.ipv4, Family.IPV6: reply.ipv6}
        problem = _check(plan, request, shown)
        if problem:
            out.kind, out.message = Result.ERROR, problem
            break
        for family in drifts[number]:  # its confirmation no longer holds
            out.confirmed.pop(family, None)
            out.unconfirmed.add(family)
        for family in Family:
            if family in request.sets:
                out.confirmed[family] = (plan.want[family], shown[family])
                out.unconfirmed.discard(family)
                out.shown.pop(family, None)
            else:
                out.shown[family] = shown[family]
        if Family.IPV4 in request.sets and plan.want[Family.IPV4] == "auto":
            _judge_probe_after(plan, out, shown[Family.IPV4])
    return out


def _check(plan: Plan, request: Request, shown: dict[Family, str]) -> str:
    """'' if the answer shows what the request set, else what is wrong."""
    for family in request.sets:
        want, value = plan.want[family], shown[family]
        if not (bool(value) if want == "auto" else value == want):
            return (
                f"DuckDNS answered OK, but its {family.record} record holds "
                f"{value or 'nothing'} instead of "
                f"{want if want != 'auto' else 'the address the request came from'}"
            )
    return ""


def _judge_probe_after(plan: Plan, out: Outcome, duckdns_ipv4: str) -> None:
    """After DuckDNS confirmed A from the connection: trust the probe while they agree; once
    they disagree, again only when they agree an hour (PROBE_TRUST) after they last did not."""
    if plan.probe_answer is None:
        return
    out.probe_agreed = plan.probe_answer == duckdns_ipv4
    if not out.probe_agreed:
        out.probe_state = PROBE_DISTRUSTED
    elif not plan.disputed_lately:
        out.probe_state = PROBE_OK
