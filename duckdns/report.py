"""Every line the updater prints goes through here: redaction and syslog priorities.

There is deliberately one output path. ``register_secret`` is called as soon as the
token is read, and ``_emit`` scrubs every registered secret (and any ``token=``
query parameter, which is how requests' exceptions embed it) from every line,
whatever its origin: our messages, exception text or a traceback.

The ``token=`` masking is a plain ``str.find`` loop, not a regular expression: importing
``re`` (with enum and functools) costs about 5 ms, a third of a ``duckdns check``. It masks
exactly what the regular expression ``(token=)[^&\\s'"]*`` (case-insensitive, its value part
replaced by ``***``) masks; tests/unit/test_report.py compares the two.

Under systemd (``JOURNAL_STREAM`` set) each line carries a ``<N>`` syslog priority
prefix, so ``journalctl -p err -u duckdns`` finds the errors. ``logging`` is not
used: it costs more to import than this whole module, and a timer run where
nothing changed must stay cheap (see scripts/bench).
"""

from __future__ import annotations

import os
import sys

ERROR, WARNING, NOTICE, INFO, DEBUG = 3, 4, 5, 6, 7
MASK = "***"
_PARAM = "token"  # the name before "=", matched case-insensitively
_VALUE_ENDS = "&'\""  # and whitespace: where a token parameter's value stops

_secrets: set[str] = set()
# Default: errors, warnings and notices (an address changed). -q drops notices,
# -qq warnings; -v adds info, -vv debug.
threshold = NOTICE


def register_secret(secret: str) -> None:
    """Make sure ``secret`` never reaches any output."""
    if secret:
        _secrets.add(secret)


def redact(text: str) -> str:
    """Return ``text`` with every registered secret and token parameter masked."""
    for secret in _secrets:
        text = text.replace(secret, MASK)
    return _mask_token_params(text)


def _mask_token_params(text: str) -> str:
    """Replace the value of every ``token=`` (any case) with MASK.

    A value runs up to ``&``, a quote, whitespace or the end of the text (and may be
    empty). ``"token"`` never changes length when lowercased, and no other character
    lowercases to one of its letters, so the comparison is the regular expression's.
    """
    width = len(_PARAM)
    pieces = []
    done = 0  # text[:done] is already in pieces
    pos = text.find("=", width)
    while pos != -1:
        if text[pos - width : pos].lower() != _PARAM:
            pos = text.find("=", pos + 1)
            continue
        end = pos + 1
        while end < len(text) and text[end] not in _VALUE_ENDS and not text[end].isspace():
            end += 1
        pieces.append(text[done : pos + 1])
        pieces.append(MASK)
        done = end
        pos = text.find("=", end)
    if not pieces:
        return text
    pieces.append(text[done:])
    return "".join(pieces)


def set_verbosity(level: int) -> None:
    """``level`` counts -v as +1 and -q as -1."""
    global threshold
    threshold = max(ERROR, min(DEBUG, NOTICE + level))


def _under_journal() -> bool:
    return bool(os.environ.get("JOURNAL_STREAM"))


def _emit(priority: int, message: str, stream=None) -> None:
    if priority > threshold:
        return
    stream = stream or sys.stderr
    prefix = f"<{priority}>" if _under_journal() else ""
    for line in redact(str(message)).splitlines() or [""]:
        stream.write(f"{prefix}{line}\n")
    stream.flush()


def error(message: str) -> None:
    _emit(ERROR, message)


def warning(message: str) -> None:
    _emit(WARNING, message)


def notice(message: str) -> None:
    _emit(NOTICE, message)


def info(message: str) -> None:
    _emit(INFO, message)


def debug(message: str) -> None:
    _emit(DEBUG, message)


def out(text: str) -> None:
    """Requested output (status, dry-run, backup-paths) on stdout, always redacted."""
    sys.stdout.write(redact(text))
    if not text.endswith("\n"):
        sys.stdout.write("\n")
    sys.stdout.flush()
