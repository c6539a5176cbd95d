"""Redaction (duckdns.report): the one output path must mask the token wherever it appears.

The ``token=`` masking is a hand-written loop (importing ``re`` costs a third of a cheap
run): it is compared here with the regular expression it replaced, on chosen and random
texts, including the characters where Unicode case folding and whitespace are tricky.
"""

from __future__ import annotations

import io
import random
import re

import pytest
from helpers import CANARY

from duckdns import report

# The expression report.py used before (and what the loop must do, exactly).
REFERENCE = re.compile(r"(token=)[^&\s'\"]*", re.IGNORECASE)


def reference(text: str) -> str:
    return REFERENCE.sub(r"\1" + report.MASK, text)


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
    assert reference(text) == expected


def test_same_as_the_regular_expression_on_random_texts():
    alphabet = list("tokenTOKEN=&'\" \t\n\x0bx-1") + [
        "\u212a",  # KELVIN SIGN
        "\u0130",  # LATIN CAPITAL LETTER I WITH DOT ABOVE
        "\u017f",  # LATIN SMALL LETTER LONG S
        "\u00a0",  # NO-BREAK SPACE
        "\u2028",  # LINE SEPARATOR
        "\x1c",  # FILE SEPARATOR (str.isspace)
        "\u3000",  # IDEOGRAPHIC SPACE
        "\u200b",  # ZERO WIDTH SPACE (not whitespace)
    ]
    rng = random.Random(7)
    for _ in range(20000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        assert report.redact(text) == reference(text), repr(text)
    words = ["token=", "TOKEN=", "toKen", "=", "&", " ", "'", "abc", CANARY, "\u212a"]
    for _ in range(20000):
        text = "".join(rng.choice(words) for _ in range(rng.randint(0, 12)))
        assert report.redact(text) == reference(text), repr(text)


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
