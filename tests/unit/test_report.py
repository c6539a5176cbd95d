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
