"""What the last runs did, kept in ``state.json`` next to the config file.

One small JSON object, rewritten atomically each time, so it never grows with the
number of runs. It holds no secret: addresses, times, results, and the
configuration fingerprint (which is derived from the file's identity, not its
contents).

This module turns the file into typed records (duckdns.records) and back, validating every
field once on the way in; nothing else reads the file or spells its keys. A field an older
release wrote and this one no longer knows is dropped on the next write.
"""

from __future__ import annotations

import json
import os
import stat

from duckdns import records, report
from duckdns.records import State

TYPE_CHECKING = False  # typing.TYPE_CHECKING: typing costs a timer run a tenth of its CPU
if TYPE_CHECKING:
    from collections.abc import Callable

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


def _valid(default: object, value: object) -> bool:
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


def _address(version: int) -> Callable[[str], bool]:
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


def _valid_field(key: str, value: object) -> bool:
    """Whether ``value`` may be kept as the field ``key``."""
    if not _valid(FIELDS[key], value):
        return False
    rule = _FIELD_RULES.get(key)
    return rule is None or rule(value)


def path_for(config_path: str) -> str:
    return os.path.join(os.path.dirname(config_path), "state.json")


def load(path: str) -> State:
    """The saved state, or a fresh one; see :func:`read`."""
    return read(path)[0]


def read(path: str) -> tuple[State, bool]:
    """The saved state and whether it needs rewriting. No file content can make this fail.

    A field of the wrong type or out of range (a hand edit, a damaged disk) is dropped to
    its default, with one warning naming the fields; an unreadable or corrupt file is one
    warning and a fresh state. Either way the caller saves the state again.
    """
    try:
        raw = _read_file(path)
    except FileNotFoundError:
        return State(), False  # the first run
    except OSError as exc:
        report.warning(f"cannot read {path} ({exc.strerror}); starting with an empty state")
        return State(), True
    except ValueError as exc:
        report.warning(f"{path} {exc}; starting with an empty state, it will be rewritten")
        return State(), True
    try:
        saved = json.loads(raw)
        if not isinstance(saved, dict):
            raise ValueError("not an object")
    except (ValueError, RecursionError):  # RecursionError: absurdly nested JSON
        report.warning(f"{path} is corrupt and was ignored; it will be rewritten")
        return State(), True
    state, dropped = parse(saved)
    if dropped:
        report.warning(
            f"{path}: dropped {len(dropped)} damaged "
            f"{'field' if len(dropped) == 1 else 'fields'} ({', '.join(dropped)}); "
            "it will be rewritten"
        )
    return state, bool(dropped)


def parse(saved: dict[str, object]) -> tuple[State, list[str]]:
    """The records ``saved`` (a decoded state.json) holds, and the keys dropped as damaged."""
    saved = {**saved, **_upgrade(saved)}
    state, dropped = State(), []
    for key, (record, name) in records.KEYS.items():
        value = saved.get(key, FIELDS[key])
        if _valid_field(key, value):
            setattr(getattr(state, record), name, value)
        else:
            dropped.append(key)
    return state, dropped


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


def _upgrade(saved: dict[str, object]) -> dict[str, object]:
    """The fields a state.json from before per-record state (duckdns 0.1.0) means, to be
    checked like every other field (the caller does): keep what still holds.

    Its records are not taken as confirmed (that release could leave A stale with IPv6), so
    the first run after the upgrade sends every record; its probe verdict is kept.
    """
    if "probe_state" not in saved and saved.get("probe_trusted") is False:
        return {"probe_state": "distrusted", "probe_ipv4": saved.get("probe_ipv4") or ""}
    return {}


def as_dict(state: State) -> dict[str, object]:
    """The records as state.json holds them."""
    return {
        key: getattr(getattr(state, record), name) for key, (record, name) in records.KEYS.items()
    }


# Each key of state.json and its default (a fresh State's value).
FIELDS = as_dict(State())


def save(path: str, state: State) -> str:
    """Write the state; '' when done, else why it could not be (the caller says it)."""
    data = as_dict(state)
    try:
        atomic_write(path, (json.dumps(data, indent=1, sort_keys=True) + "\n").encode())
    except OSError as exc:
        return f"cannot write {path} ({exc.strerror or exc})"
    return ""


def atomic_write(path: str, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename: the one way every
    file of ours is written (state.json, the config, the hooks' queue).

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
    dir_fd = os.open(directory or ".", os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)  # the rename itself on disk, not only the bytes
    finally:
        os.close(dir_fd)
