"""What the last runs did, kept in ``state.json`` next to the config file.

One small JSON object, rewritten atomically each time, so it never grows with the
number of runs. It holds no secret: addresses, times, results, and the
configuration fingerprint (which is derived from the file's identity, not its
contents).

Fields are written by this module's helpers (the update pipeline in duckdns.update records
each answer through them); a field an older release wrote and this one no longer knows is
dropped on the next write.
"""

from __future__ import annotations

import json
import os
import stat

from duckdns import backoff, heartbeat, notify, report, router

FIELDS = {
    "last_run": None,  # Unix time of the last run that talked to DuckDNS
    "last_result": "",  # "updated", "nochange", "ko", "error", "cleared"
    "last_success": None,  # Unix time of the last OK from DuckDNS
    "last_change": None,  # Unix time DuckDNS last reported UPDATED
    "last_error": "",
    # Per record (family): what DuckDNS holds as its last answer showed it, what we asked
    # for ("auto" or a literal; "" = nothing sent since the last change, so the next run
    # sends), and when DuckDNS's answer confirmed it (None with a sent value: an answer
    # that confirmed nothing, asked again at most every 5 minutes). Each family is retried
    # on its own.
    "ipv4": "",
    "ipv6": "",
    "sent_ipv4": "",
    "sent_ipv6": "",
    "ipv4_confirmed": None,
    "ipv6_confirmed": None,
    "ipv4_tried": None,  # Unix time of the last request for A (the 5-minute cadence)
    "ipv6_tried": None,  # the same for AAAA
    "bare_since": None,  # since when DuckDNS's answers confirm nothing (a bare "OK")
    "in_flight": None,  # a request was sent at this time and its answer not yet recorded
    "fingerprint": "",  # the configuration's identity and the updater's version
    # The address probe: "" (not yet checked), "ok", "failing", "distrusted", "off", "unused"
    "probe_state": "",
    "probe_since": None,  # when it entered that state
    "probe_ipv4": "",  # its last answer
    "probe_confirmed": None,  # when DuckDNS last saw the address the probe answered
    "probe_disputed": None,  # when DuckDNS last saw another address than the probe answered
    # Its flapping (duckdns.decide.damp): the state its last change left, when, unsaid changes
    "probe_left": "",
    "probe_changed": None,
    "probe_flaps": 0,
    "txt": "",
}
FIELDS.update(
    backoff.FIELDS, **backoff.ALERT_FIELDS, **heartbeat.FIELDS, **notify.FIELDS, **router.FIELDS
)

# Larger is not a state this updater wrote (it writes about 1 KiB).
MAX_SIZE = 64 * 1024
MAX_TEXT = 512  # longest text field kept (an error message is the longest written)
# The TXT value: what ``txt set`` sends and what the state keeps. One DNS character-string
# holds 255 bytes (RFC 1035, 3.3.14); DuckDNS documents no limit of its own, so none longer
# is sent. Printable ASCII only: DuckDNS's answer is read as ASCII lines (duckdns.api), so
# any other value could never be seen confirmed.
MAX_TXT = 255
# Times are Unix seconds; anything outside these bounds (or NaN, infinite) was not written here.
MAX_TIME = 2**40
MAX_COUNT = 10**9


def _valid(default, value) -> bool:
    """Whether ``value`` is of the field's type: text, a count, or a time (None allowed)."""
    if isinstance(default, str):
        return isinstance(value, str) and len(value) <= MAX_TEXT
    if isinstance(value, bool):  # json's true/false: an int to Python, never ours
        return False
    if isinstance(default, int):
        return isinstance(value, int) and 0 <= value <= MAX_COUNT
    if value is None:
        return True
    return isinstance(value, (int, float)) and 0 <= value <= MAX_TIME  # NaN fails both


def txt_problem(value: str) -> str:
    """Why ``value`` cannot be a TXT value ('' if it can); never quotes the value."""
    if len(value) > MAX_TXT:
        return f"the TXT value is {len(value)} characters long: at most {MAX_TXT}"
    if not all(" " <= c <= "~" for c in value):
        return (
            "the TXT value holds a character other than printable ASCII "
            "(letters, digits, punctuation and space)"
        )
    return ""


def _address(version: int):
    """The rule of a record's address: empty, or an address of ``version`` without a zone
    (what DuckDNS's answers show, duckdns.api). Anything else was not written here, and
    would reach status and the metrics' labels."""

    def valid(value: str) -> bool:
        if not value:
            return True
        import ipaddress  # already loaded on the timer's path (duckdns.localaddr, probe)

        try:
            return "%" not in value and ipaddress.ip_address(value).version == version
        except ValueError:
            return False

    return valid


# Rules of particular fields, beyond the type of their default.
_FIELD_RULES = {
    "txt": lambda value: not txt_problem(value),
    "ipv4": _address(4),
    "ipv6": _address(6),
}


def _valid_field(key: str, value) -> bool:
    """Whether ``value`` may be kept as the field ``key``."""
    if not _valid(FIELDS[key], value):
        return False
    rule = _FIELD_RULES.get(key)
    return rule is None or rule(value)


def path_for(config_path: str) -> str:
    return os.path.join(os.path.dirname(config_path), "state.json")


def load(path: str) -> dict:
    """The saved state, or a fresh one; see :func:`read`."""
    return read(path)[0]


def read(path: str) -> tuple[dict, bool]:
    """The saved state and whether it needs rewriting. No file content can make this fail.

    A field of the wrong type or out of range (a hand edit, a damaged disk) is dropped to
    its default, with one warning naming the fields; an unreadable or corrupt file is one
    warning and a fresh state. Either way the caller saves the state again.
    """
    state = dict(FIELDS)
    try:
        raw = _read_file(path)
    except FileNotFoundError:
        return state, False  # the first run
    except OSError as exc:
        report.warning(f"cannot read {path} ({exc.strerror}); starting with an empty state")
        return state, True
    except ValueError as exc:
        report.warning(f"{path} {exc}; starting with an empty state, it will be rewritten")
        return state, True
    try:
        saved = json.loads(raw)
        if not isinstance(saved, dict):
            raise ValueError("not an object")
    except (ValueError, RecursionError):  # RecursionError: absurdly nested JSON
        report.warning(f"{path} is corrupt and was ignored; it will be rewritten")
        return state, True
    saved.update(_upgrade(saved))
    dropped = []
    for key, default in FIELDS.items():
        value = saved.get(key, default)
        if _valid_field(key, value):
            state[key] = value
        else:
            dropped.append(key)
    if dropped:
        report.warning(
            f"{path}: dropped {len(dropped)} damaged "
            f"{'field' if len(dropped) == 1 else 'fields'} ({', '.join(dropped)}); "
            "it will be rewritten"
        )
    return state, bool(dropped)


def _read_file(path: str) -> bytes:
    """The file's bytes; never blocks on a FIFO, never reads more than :data:`MAX_SIZE`."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_NOCTTY)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError("is not a regular file")
        raw = os.read(fd, MAX_SIZE + 1)
    finally:
        os.close(fd)
    if len(raw) > MAX_SIZE:
        raise ValueError(f"is larger than {MAX_SIZE // 1024} KiB")
    return raw


def _upgrade(saved: dict) -> dict:
    """The fields a state.json from before per-record state (duckdns 0.1.0) means, to be
    checked like every other field (the caller does): keep what still holds.

    Its records are not taken as confirmed (that release could leave A stale with IPv6), so
    the first run after the upgrade sends every record; its probe verdict is kept.
    """
    if "probe_state" not in saved and saved.get("probe_trusted") is False:
        return {"probe_state": "distrusted", "probe_ipv4": saved.get("probe_ipv4") or ""}
    return {}


def save(path: str, state: dict) -> str:
    """Write the state; '' when done, else why it could not be (the caller says it)."""
    data = {key: state.get(key, default) for key, default in FIELDS.items()}
    try:
        atomic_write(path, (json.dumps(data, indent=1, sort_keys=True) + "\n").encode())
    except OSError as exc:
        return f"cannot write {path} ({exc.strerror or exc})"
    return ""


def atomic_write(path: str, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename.

    The file is created with ``mode`` from its first byte (never readable by
    others, whatever the umask), and, when we run as root, handed to the owner of
    its directory. That matters: once the service has run, systemd has chowned the
    state directory to the service's dynamic user and only re-chowns when the
    directory's owner differs, so a file root leaves behind with root as owner
    would be unreadable to the next timer run.
    """
    directory, name = os.path.split(path)
    tmp = os.path.join(directory, f".{name}.tmp.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            if os.geteuid() == 0:
                st = os.stat(directory or ".")
                os.fchown(f.fileno(), st.st_uid, st.st_gid)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


# -- writing fields: every change to the state goes through one of these -------------------------


def forget_records(state: dict) -> None:
    """Nothing is known to be published any more: the next update sends every record."""
    state.update(sent_ipv4="", sent_ipv6="", ipv4_confirmed=None, ipv6_confirmed=None)


def begin_attempt(state: dict, fingerprint: str | None, now: int, sending: bool = True) -> None:
    """Requests are about to be sent: until :func:`record_outcome`, the run is in flight.

    Saved before the first request, so that a run stopped before DuckDNS answered (the
    unit's time limit, a power cut) still counts as a failed attempt for the backoff.
    ``fingerprint``: a first run, a changed configuration or a new updater, for which
    nothing counts as confirmed any more (None: the same configuration). ``sending=False``:
    an attempt that fails before any request (nothing to publish), never in flight.
    """
    if fingerprint is not None:
        forget_records(state)
        state["fingerprint"] = fingerprint
    state.update(last_run=now, in_flight=now if sending else None)


def interrupted(state: dict) -> int | None:
    """When the attempt of a run that never recorded its end began (None: there is none);
    clears it."""
    began, state["in_flight"] = state["in_flight"], None
    return began


def record_outcome(state: dict, outcome, probe_answer: str | None, now: int) -> str:
    """What the run's answers meant (a duckdns.decide.Outcome); the run is no longer in
    flight. Returns "started" or "ended" when answers that confirm nothing (a bare "OK")
    begin or end, else ''.
    """
    state["in_flight"] = None
    for family in outcome.tried:
        state[family.tried] = now  # the 5-minute cadences
    for family, value in outcome.shown.items():
        state[family.value] = value  # what DuckDNS holds now, for status
    for family, (want, shown) in outcome.confirmed.items():
        state[family.sent] = want
        state[family.confirmed] = None if shown is None else now
        if shown is not None:
            state[family.value] = shown
    for family in outcome.unconfirmed:  # no longer what was last confirmed: sent next run
        state[family.sent] = ""
    if outcome.kind == "ok":
        result = "updated" if outcome.updated else "nochange"
        state.update(last_result=result, last_success=now, last_error="")
    else:
        state.update(last_result=outcome.kind, last_error=report.redact(outcome.message))
    if outcome.updated:
        state["last_change"] = now
    record_probe(state, outcome.probe_state, probe_answer, outcome.probe_agreed, now)
    news = ""
    if outcome.bare is True and state["bare_since"] is None:
        state["bare_since"], news = now, "started"
    elif outcome.bare is False and state["bare_since"] is not None:
        state["bare_since"], news = None, "ended"
    return news


def record_failure(state: dict, kind: str, message: str, at: int) -> bool:
    """A failed attempt made at ``at``, in the backoff; True when it must be said now."""
    updates, loud = backoff.after_failure(state, kind, message, at)
    state.update(updates)
    return loud


def record_success(state: dict, now: int) -> str:
    """A success ends the failure streak; the recovery notice, or '' if none was on."""
    updates, news = backoff.after_success(state, now)
    state.update(updates)
    return news


def record_ping(state: dict, status: str, taken: bool, now: int) -> None:
    """A heartbeat ping ``status`` was sent; ``taken``: the monitor took it."""
    state["ping_tried"] = now
    if taken:
        state.update(ping_state=status, ping_at=now)


def record_notification(state: dict, fields: dict) -> None:
    """What duckdns.notify hands back after telling (or trying to tell) this run's news."""
    state.update({key: value for key, value in fields.items() if key in notify.FIELDS})


def record_probe(
    state: dict, probe_state: str, answer: str | None, agreed: bool | None, now: int
) -> bool:
    """The probe's state after a run, its answer (None: not asked) and whether DuckDNS's
    answer showed the same address (None: not compared); True if the state changed."""
    if answer is not None:
        state["probe_ipv4"] = answer
    if agreed is not None:
        state["probe_confirmed" if agreed else "probe_disputed"] = now
    if probe_state == state["probe_state"]:
        return False
    state.update(probe_state=probe_state, probe_since=now)
    return True


def record_reach(state: dict, verdict: str, router_ipv4: str, now: int) -> bool:
    """The reachability verdict (duckdns.router.verdict) and the router's external address
    ('' for none); True if either changed."""
    if (verdict, router_ipv4) == (state["reach"], state["router_ipv4"]):
        return False
    if verdict != state["reach"]:
        state.update(reach=verdict, reach_since=now)
    state["router_ipv4"] = router_ipv4
    return True


def record_damper(state: dict, subject: str, left: str, changed, flaps: int) -> bool:
    """The flapping fields of ``subject`` ("probe" or "reach", duckdns.decide.damp's answer);
    True if any changed."""
    fields = {f"{subject}_left": left, f"{subject}_changed": changed, f"{subject}_flaps": flaps}
    if all(state[key] == value for key, value in fields.items()):
        return False
    state.update(fields)
    return True


def record_cleared(state: dict, ipv4: str, ipv6: str) -> None:
    """After ``clear``: nothing published now, so the next update sends again."""
    forget_records(state)
    state.update(ipv4=ipv4, ipv6=ipv6, last_success=None, last_result="cleared")


def record_txt(state: dict, txt: str) -> None:
    state["txt"] = txt
