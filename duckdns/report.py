"""Every line the updater prints goes through here: redaction and syslog priorities.

There is deliberately one output path. ``register_secret`` is called as soon as the
token is read, and ``_emit`` scrubs every registered secret, any ``token=`` query
parameter (which is how requests' exceptions embed it) and anything shaped like a
DuckDNS token, registered or not, from every line, whatever its origin: our messages,
exception text or a traceback.

Under systemd (``JOURNAL_STREAM`` set) each line carries a ``<N>`` syslog priority
prefix, so ``journalctl -p err -u duckdns`` finds the errors. ``logging`` is not
used: it costs more to import than this whole module, and a timer run where
nothing changed must stay cheap (see scripts/bench).
"""

from __future__ import annotations

import os
import re
import sys

ERROR, WARNING, NOTICE, INFO, DEBUG = 3, 4, 5, 6, 7
MASK = "***"
# A DuckDNS token: 8-4-4-4-12 hexadecimal digits (duckdns.config.TOKEN is this pattern).
TOKEN_PATTERN = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"  # noqa: S105
TOKEN_SHAPED = re.compile(TOKEN_PATTERN)
# A token= query parameter (any case); its value runs up to &, a quote or whitespace.
TOKEN_PARAM = re.compile(r"(token=)[^&\s'\"]*", re.IGNORECASE)

_secrets: set[str] = set()
# Default: errors, warnings and notices (an address changed). -q drops notices,
# -qq warnings; -v adds info, -vv debug.
threshold = NOTICE


def register_secret(secret: str) -> None:
    """Make sure ``secret`` never reaches any output."""
    if secret:
        _secrets.add(secret)


def redact(text: str) -> str:
    """Return ``text`` with every registered secret, token parameter and token masked."""
    for secret in _secrets:
        text = text.replace(secret, MASK)
    return TOKEN_SHAPED.sub(MASK, TOKEN_PARAM.sub(r"\1" + MASK, text))


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
