"""What the last runs did, kept in ``state.json`` next to the config file.

One small JSON object, rewritten atomically each time, so it never grows with the
number of runs. It holds no secret: addresses, times, results, and the
configuration fingerprint (which is derived from the file's identity, not its
contents).

Reading it happens on every timer run (and ``duckdns status``), so :func:`load` avoids
importing the ``json`` package, whose decoder imports ``re`` (about 6 ms together, a third
of such a run): it drives the C scanner that ``json.loads`` itself uses, ``_json``, with the
same settings. Anything unusual (another encoding, a syntax error, no ``_json``) goes to
``json.loads``, which then decides, so the result is always what ``json.loads`` returns.
Writing (only after a request to DuckDNS) uses ``json`` itself.
"""

from __future__ import annotations

from duckdns import report
from duckdns.fsutil import atomic_write, join, normpath, parent

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
    "last_check": None,  # (unused; kept so that older files keep their shape)
    "txt": "",
}


_CONSTANTS = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}


class _DecoderSettings:
    """What ``_json.make_scanner`` reads from a ``json.JSONDecoder()``: its defaults."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = _CONSTANTS.__getitem__


def _loads(raw: bytes):
    """``json.loads(raw)``, without importing ``json`` when ``raw`` is a plain UTF-8 object."""
    # json.loads(bytes) guesses UTF-8/16/32 from the first bytes; a first byte "{" followed
    # by a non-zero byte (or nothing) is UTF-8 to it, without a BOM.
    if raw[:1] == b"{" and raw[1:2] != b"\x00":
        try:
            from _json import make_scanner

            text = raw.decode("utf-8")
            value, end = make_scanner(_DecoderSettings)(text, 0)
            if not text[end:].strip(" \t\n\r"):  # JSON's whitespace, as json.loads allows
                return value
        except Exception:  # noqa: S110 - json.loads below raises the proper error
            pass
    import json

    return json.loads(raw)


def path_for(config_path: str) -> str:
    return join(parent(normpath(config_path)), "state.json")


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
        saved = _loads(raw)
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
    import json

    data = {key: state.get(key, default) for key, default in FIELDS.items()}
    try:
        atomic_write(path, (json.dumps(data, indent=1, sort_keys=True) + "\n").encode())
    except OSError as exc:
        report.warning(f"cannot write {path} ({exc.strerror}); the next run will update again")
