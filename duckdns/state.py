"""What the last runs did, kept in ``state.json`` next to the config file.

One small JSON object, rewritten atomically each time, so it never grows with the
number of runs. It holds no secret: addresses, times, results, and the
configuration fingerprint (which is derived from the file's identity, not its
contents).
"""

from __future__ import annotations

import json
from pathlib import Path

from duckdns import report
from duckdns.fsutil import atomic_write

FIELDS = {
    "last_run": None,  # Unix time of the last run that talked to DuckDNS
    "last_result": "",  # "updated", "nochange", "ko", "error"
    "last_success": None,  # Unix time of the last OK from DuckDNS
    "last_change": None,  # Unix time DuckDNS last reported UPDATED
    "last_error": "",
    "ipv4": "",  # as DuckDNS reported it in its verbose answer
    "ipv6": "",
    "sent_ipv6": "",  # what we sent as ipv6= (auto/literal), to notice a new address
    "fingerprint": "",
    "probe_trusted": True,
    "probe_ipv4": "",
    "last_check": None,  # Unix time of the last run, whether or not it sent anything
    "txt": "",
}


def path_for(config_path: Path) -> Path:
    return config_path.parent / "state.json"


def load(path: Path) -> dict:
    """The saved state, or a fresh one. A corrupt file is a warning, never a crash."""
    state = dict(FIELDS)
    try:
        raw = path.read_bytes()
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
    return state


def save(path: Path, state: dict) -> None:
    data = {key: state.get(key, default) for key, default in FIELDS.items()}
    try:
        atomic_write(path, (json.dumps(data, indent=1, sort_keys=True) + "\n").encode())
    except OSError as exc:
        report.warning(f"cannot write {path} ({exc.strerror}); the next run will update again")
