"""What "safe to print" means for the tests: the other side of duckdns.report.safe.

Written from the definitions, not from the code under test: ECMA-48 (C0 and C1 control
codes, and DEL), Unicode's line and paragraph separators (U+2028, U+2029) and the
bidirectional and zero-width format controls (Unicode Standard Annex #9: U+061C, U+200E,
U+200F, U+202A-U+202E, U+2066-U+2069; U+200B-U+200D, U+2060, U+FEFF), and systemd's
journal stream protocol, where a line starting ``<N>`` sets its priority (systemd.exec(5),
SyslogLevelPrefix=).
"""

from __future__ import annotations

import re

# Everything that may move the cursor, clear the screen, end a line, reorder the text
# around it or be unencodable (lone surrogates); the tab alone is let through.
RAW_CONTROL = re.compile(
    "[\x00-\x08\x0a-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ud800-\udfff]"
)
PRIORITY = re.compile(r"<[0-7]>")  # the one prefix duckdns itself writes under systemd
FORGED = re.compile(r"<[0-9]")

# Hostile text, as a peer, a certbot environment or a damaged file could hold it.
HOSTILE = {
    "newline-priority": "x\n<3>FAKE ERROR: forged line",
    "priority-first": "<3>FAKE ERROR at the start",
    "carriage-return": "good\rFAKE overwritten row",
    "escape-sequences": "\x1b[2J\x1b[Hevil\x1b]0;title\x07",
    "c1-csi": "a\x9b2Jb\x85c",
    "separators": "a\u2028<3>FAKE\u2029b",
    "bidi": "abc\u202eFDP.exe\u2066x\u2069",
    "soh-del": "a\x01b\x7fc",  # NUL itself cannot travel in argv or the environment
}


def assert_displayable(*texts: str, where: str = "output") -> None:
    """Each line of ``texts`` holds no raw control character, and none starts (after the
    priority prefix duckdns writes under systemd) like a priority prefix of its own."""
    for text in texts:
        for line in text.split("\n"):
            found = RAW_CONTROL.search(line)
            assert found is None, f"raw {found.group()!r} in a line of the {where}: {line!r}"
            body = line[3:] if PRIORITY.match(line) else line
            assert not FORGED.match(body), f"a forged priority in the {where}: {line!r}"
