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

from duckdns import report

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
