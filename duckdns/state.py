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

from duckdns import backoff, heartbeat, report

FIELDS = {
    "last_run": None,  # Unix time of the last run that talked to DuckDNS
    "last_result": "",  # "updated", "nochange", "ko", "error", "cleared"
    "last_success": None,  # Unix time of the last OK from DuckDNS
    "last_change": None,  # Unix time DuckDNS last reported UPDATED
    "last_error": "",
    # Per record (family): what DuckDNS holds as its last answer showed it, what we asked
    # for when DuckDNS last confirmed it ("auto" or a literal; "" = nothing confirmed, so
    # the next run sends), and when. Each family is retried on its own.
    "ipv4": "",
    "ipv6": "",
    "sent_ipv4": "",
    "sent_ipv6": "",
    "ipv4_confirmed": None,
    "ipv6_confirmed": None,
    "ipv4_tried": None,  # Unix time of the last request for A (the 5-minute cadence)
    "fingerprint": "",  # the configuration's identity and the updater's version
    # The address probe: "" (not yet checked), "ok", "failing", "distrusted", "off", "unused"
    "probe_state": "",
    "probe_since": None,  # when it entered that state
    "probe_ipv4": "",  # its last answer
    "txt": "",
}
# issue 11: the failure streak and its alerts (duckdns.backoff), the heartbeat's pings
FIELDS.update(backoff.FIELDS, **backoff.ALERT_FIELDS, **heartbeat.FIELDS)


def path_for(config_path: str) -> str:
    return os.path.join(os.path.dirname(config_path), "state.json")


def load(path: str) -> dict:
    """The saved state, or a fresh one. A corrupt file is a warning, never a crash."""
    state = dict(FIELDS)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return state  # the first run
    except OSError as exc:
        report.warning(f"cannot read {path} ({exc.strerror}); starting with an empty state")
        return state
    try:
        saved = json.loads(raw)
        if not isinstance(saved, dict):
            raise ValueError("not an object")
    except ValueError:
        report.warning(f"{path} is corrupt and was ignored; it will be rewritten")
        return state
    for key, default in FIELDS.items():
        value = saved.get(key, default)
        if default is not None and not isinstance(value, type(default)):
            continue
        state[key] = value
    _upgrade(saved, state)
    return state


def _upgrade(saved: dict, state: dict) -> None:
    """A state.json from before per-record state (duckdns 0.1.0): keep what still holds.

    Its records are not taken as confirmed (that release could leave A stale with IPv6), so
    the first run after the upgrade sends every record; its probe verdict is kept.
    """
    if "probe_state" not in saved and saved.get("probe_trusted") is False:
        state["probe_state"] = "distrusted"
        state["probe_ipv4"] = saved.get("probe_ipv4", "") or ""


def save(path: str, state: dict) -> None:
    data = {key: state.get(key, default) for key, default in FIELDS.items()}
    try:
        atomic_write(path, (json.dumps(data, indent=1, sort_keys=True) + "\n").encode())
    except OSError as exc:
        report.warning(f"cannot write {path} ({exc.strerror}); the next run will update again")


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


def record_new_config(state: dict, fingerprint: str) -> None:
    """A first run, a changed configuration or a new updater: nothing counts as confirmed."""
    forget_records(state)
    state["fingerprint"] = fingerprint


def forget_records(state: dict) -> None:
    """Nothing is known to be published any more: the next update sends every record."""
    state.update(sent_ipv4="", sent_ipv6="", ipv4_confirmed=None, ipv6_confirmed=None)


def record_attempt(state: dict, families: tuple[str, ...], now: int) -> None:
    """A request is about to be sent for ``families``."""
    state["last_run"] = now
    if "ipv4" in families:
        state["ipv4_tried"] = now  # the 5-minute cadence of an undecided probe


def confirm(state: dict, family: str, want: str, shown: str | None, now: int) -> None:
    """DuckDNS confirmed ``family`` as asked (``want``: "auto" or a literal).

    ``shown`` is what its verbose answer showed (None: a bare "OK", which shows nothing).
    """
    state[f"sent_{family}"] = want
    state[f"{family}_confirmed"] = now
    if shown is not None:
        state[family] = shown
    elif want != "auto":
        state[family] = want


def unconfirm(state: dict, family: str) -> None:
    """``family`` no longer holds what was last confirmed: the next run sends it."""
    state[f"sent_{family}"] = ""


def record_shown(state: dict, family: str, value: str) -> None:
    """What DuckDNS's answer showed for a record the request did not set."""
    state[family] = value


def record_result(state: dict, kind: str, message: str, updated: bool, now: int) -> None:
    """How a run that sent requests ended: ``kind`` "ok", "ko" or "error"."""
    if kind == "ok":
        state.update(
            last_result="updated" if updated else "nochange", last_success=now, last_error=""
        )
    else:
        state.update(last_result=kind, last_error=message)
    if updated:
        state["last_change"] = now


def record_probe(state: dict, probe_state: str, answer: str | None, now: int) -> bool:
    """The probe's state after a run and its answer (None: not asked); True if the state changed."""
    if answer is not None:
        state["probe_ipv4"] = answer
    if probe_state == state["probe_state"]:
        return False
    state.update(probe_state=probe_state, probe_since=now)
    return True


def record_cleared(state: dict, ipv4: str, ipv6: str) -> None:
    """After ``clear``: nothing published now, so the next update sends again."""
    forget_records(state)
    state.update(ipv4=ipv4, ipv6=ipv6, last_success=None, last_result="cleared")


def record_txt(state: dict, txt: str) -> None:
    state["txt"] = txt
