"""Redaction (duckdns.report): the one output path must mask the token wherever it appears,
including where Unicode case folding and whitespace are tricky."""

from __future__ import annotations

import io

import pytest
from support.helpers import CANARY

from duckdns import report


@pytest.fixture(autouse=True)
def no_secrets(monkeypatch):
    monkeypatch.setattr(report, "_secrets", set())


CASES = [
    ("", ""),
    ("nothing here", "nothing here"),
    ("token=", "token=***"),
    ("=token=", "=token=***"),
    ("token", "token"),
    ("oken=abc", "oken=abc"),
    ("?domains=pi&token=abc&ip=", "?domains=pi&token=***&ip="),
    ("TOKEN=abc TOKEN=def", "TOKEN=*** TOKEN=***"),
    ("ToKeN=abc'x", "ToKeN=***'x"),
    ('"token=abc"', '"token=***"'),
    ("xtoken=abc", "xtoken=***"),
    ("token=a=b=c&d", "token=***&d"),
    ("token=token=abc", "token=***"),
    ("token=&token=x", "token=***&token=***"),
    ("token==", "token=***"),
    ("token =abc", "token =abc"),
    ("token=abc\ttoken=def\nend", "token=***\ttoken=***\nend"),
    ("token=abc\u00a0rest", "token=***\u00a0rest"),  # NO-BREAK SPACE is whitespace
    ("to\u212aen=abc", "to\u212aen=***"),  # KELVIN SIGN folds to k
    ("tok\u0130n=abc", "tok\u0130n=abc"),  # I WITH DOT lowercases to two characters
    (f"/update?domains=pi&token={CANARY}&ip=", "/update?domains=pi&token=***&ip="),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_token_parameters_are_masked(text, expected):
    assert report.redact(text) == expected


def test_registered_secrets_are_masked_everywhere():
    report.register_secret(CANARY)
    report.register_secret("")  # ignored, would otherwise mask between every character
    text = f"{CANARY} at the start, in the middle ({CANARY}), token={CANARY}&x, {CANARY}"
    out = report.redact(text)
    assert CANARY not in out
    assert out == "*** at the start, in the middle (***), token=***&x, ***"


def test_secrets_first_then_parameters():
    report.register_secret("s3cret")
    assert report.redact("token=xs3cretx y s3cret") == "token=*** y ***"


def test_every_output_line_is_redacted(monkeypatch):
    report.register_secret(CANARY)
    err, out = io.StringIO(), io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    monkeypatch.setattr("sys.stdout", out)
    monkeypatch.setattr(report, "threshold", report.DEBUG)
    monkeypatch.setenv("JOURNAL_STREAM", "8:1")
    report.error(f"failed: GET /update?token={CANARY.upper()}&ip= and {CANARY}")
    report.debug(f"Traceback\n  token: '{CANARY}'\nline three")
    report.out(f"token={CANARY}")
    assert CANARY not in err.getvalue() + out.getvalue()
    assert CANARY.upper() not in err.getvalue()
    assert err.getvalue().splitlines() == [
        "<3>failed: GET /update?token=***&ip= and ***",
        "<7>Traceback",
        "<7>  token: '***'",
        "<7>line three",
    ]
    assert out.getvalue() == "token=***\n"


# -- text from outside: report.safe and the lines report prints ----------------------------------

from support.display import HOSTILE, assert_displayable  # noqa: E402


@pytest.mark.parametrize("text", list(HOSTILE.values()), ids=list(HOSTILE))
def test_safe_escapes_every_control_character_visibly(text):
    shown = report.safe(text)
    assert_displayable(shown, where="safe's text")
    assert "\n" not in shown
    # Visibly: each control character leaves a backslash escape, nothing is dropped.
    assert shown.count("\\") >= sum(1 for c in text if not c.isprintable())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("line\nnext", "line\\nnext"),
        ("a\rb\tc", "a\\rb\\tc"),
        ("\x1b[2J", "\\x1b[2J"),
        ("\x7f\x85\x9b", "\\x7f\\x85\\x9b"),
        (
            "\u2028\u2029\u202e\u2066\u200f\ufeff\u061c",
            "\\u2028\\u2029\\u202e\\u2066\\u200f\\ufeff\\u061c",
        ),
        ("\udcff", "\\udcff"),  # a lone surrogate (surrogateescape): no stream can encode it
        ("caf\u00e9 \u2014 \u65e5\u672c", "caf\u00e9 \u2014 \u65e5\u672c"),  # printable: kept
    ],
)
def test_safe_escapes(text, expected):
    assert report.safe(text) == expected


def test_safe_cuts_with_a_marker():
    assert report.safe("x" * 60000) == "x" * report.MAX_SHOWN + "[... 59800 more characters]"
    assert report.safe("abcdef", 3) == "abc[... 3 more characters]"
    assert report.safe("abc", 3) == "abc"
    assert report.safe(12) == "12"  # any value: a damaged state may hold a number or a dict
    assert report.safe({"a": "\n"}) == "{'a': '\\n'}"


def test_safe_masks_secrets_before_it_cuts():
    report.register_secret(CANARY)
    shown = report.safe("x" * 190 + CANARY, 200)  # a cut at 200 would keep 10 of its characters
    assert CANARY[:8] not in shown and shown.startswith("x" * 190 + "***")
    assert CANARY[:8] not in report.safe("token=" + CANARY, 12)


@pytest.fixture
def captured(monkeypatch, capsys):
    """What report writes, read with ``captured()`` as (stderr, stdout); debug shown."""
    monkeypatch.setattr(report, "threshold", report.DEBUG)

    def read() -> tuple[str, str]:
        out, err = capsys.readouterr()
        return err, out

    return read


@pytest.mark.parametrize("journal", [True, False], ids=["journal", "terminal"])
@pytest.mark.parametrize("text", list(HOSTILE.values()), ids=list(HOSTILE))
def test_one_message_is_one_line_whatever_it_holds(monkeypatch, captured, journal, text):
    """A message built carelessly around outside text still makes exactly one line, at its
    own priority; nothing in it can start another entry or set a priority."""
    if journal:
        monkeypatch.setenv("JOURNAL_STREAM", "8:1")
    else:
        monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    for say in (report.error, report.warning, report.notice, report.info):
        say(text)
        say(f"name {text} end")
    err, _ = captured()
    lines = err.split("\n")
    assert len(lines) == 8 + 1 and lines[-1] == "", err  # 8 messages, 8 lines
    assert_displayable(err, where="stderr")
    if journal:
        assert [line[:3] for line in lines[:-1]] == ["<3>"] * 2 + ["<4>"] * 2 + ["<5>"] * 2 + [
            "<6>"
        ] * 2


def test_debug_spans_lines_each_made_safe(monkeypatch, captured):
    monkeypatch.setenv("JOURNAL_STREAM", "8:1")
    report.debug("Traceback (most recent call last):\n<3>FAKE\x1b[2J\n  line\u2028two\n")
    assert captured()[0].split("\n") == [
        "<7>Traceback (most recent call last):",
        "<7>\\x3c3>FAKE\\x1b[2J",
        "<7>  line\\u2028two",
        "",
    ]


def test_out_keeps_our_lines_and_escapes_the_rest(captured):
    import json

    report.out("Row:     a\x1b[2Jb\r\n<3>FAKE\nTXT:\tx\u202e\n")
    assert captured()[1] == "Row:     a\\x1b[2Jb\\r\n\\x3c3>FAKE\nTXT:\tx\\u202e\n"
    data = {"txt": "".join(HOSTILE.values()), "probe_ipv4": "\udcff"}
    report.out(json.dumps(data, indent=2))  # JSON-escaped already: passes unchanged
    assert json.loads(captured()[1]) == data
