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


# What ``safe`` escapes: C0 controls (newline included), DEL, C1 controls, the zero-width and
# bidirectional controls (U+061C, U+200B-U+200F, U+202A-U+202E, U+2060-U+2069, U+FEFF), the
# line and paragraph separators, and lone surrogates (which no output stream can encode).
# Kept as text: ``re`` compiles it at the first use, so a quiet run pays nothing for it.
_UNICODE_CONTROLS = "\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ud800-\udfff"
_UNSAFE = f"[\x00-\x1f\x7f-\x9f{_UNICODE_CONTROLS}]"
# The same within one line we print, where a tab may lay out our own text.
_UNSAFE_IN_LINE = f"[\x00-\x08\x0a-\x1f\x7f-\x9f{_UNICODE_CONTROLS}]"
# A line starting like a syslog priority prefix ("<3>"): journald would take it for one.
_PRIORITY_LIKE = "<[0-9]"
MAX_SHOWN = 200  # characters of a remote or stored value shown by default
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return _NAMED.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def safe(text: object, limit: int = MAX_SHOWN) -> str:
    """``text`` from outside (DuckDNS, a router, DNS, a receiver, certbot's environment, an
    old state file) made safe to print inside one of our lines: secrets masked first (a cut
    cannot keep part of one), then cut to ``limit`` characters, then each of :data:`_UNSAFE`
    escaped: one line that cannot move the cursor, clear the screen, reorder the text
    around it or start a journal entry of its own."""
    text = redact(str(text))
    if len(text) > limit:
        text = f"{text[:limit]}[... {len(text) - limit} more characters]"
    return re.sub(_UNSAFE, _escape, text)


def _lines(text: str, *, several: bool) -> list[str]:
    """The lines ``text`` is printed as: split at newlines only when ``several``, else one.

    Every control character but the tab is escaped as :func:`safe` escapes it, and a line
    that would start like a syslog priority prefix has its "<" escaped, so no text can
    forge a journal entry or its priority, whoever wrote it.
    """
    lines = text.removesuffix("\n").split("\n") if several else [text]
    escaped = [re.sub(_UNSAFE_IN_LINE, _escape, line) for line in lines]
    return [f"\\x3c{line[1:]}" if re.match(_PRIORITY_LIKE, line) else line for line in escaped]


def _emit(priority: int, message: str) -> None:
    """One message: one line, except at debug (a traceback spans lines, each escaped)."""
    if priority > threshold:
        return
    prefix = f"<{priority}>" if os.environ.get("JOURNAL_STREAM") else ""
    for line in _lines(redact(str(message)), several=priority == DEBUG):
        sys.stderr.write(f"{prefix}{line}\n")
    sys.stderr.flush()


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
    """Requested output (status, dry-run, backup-paths) on stdout, always redacted; its
    lines are ours, any control character inside one is escaped (see :func:`_lines`)."""
    lines = _lines(redact(text), several=True)
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()
