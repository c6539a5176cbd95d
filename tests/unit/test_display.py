"""Text from outside is never trusted for display, through the real program.

DuckDNS (scripted TXT answers from the loopback look-alike, tests/support/duckdns_server.py
``answer:TEXT``), a state file (a damaged one from 0.1.0, hand edits) and the command line
carry hostile text: newlines, escape sequences, carriage returns, "<3>" priority prefixes,
bidi controls, 60,000 characters. Whatever they hold, no line of ``txt``, ``status`` or
``update`` carries a raw control character or a forged priority (support.display), a TXT
answer that does not hold the value sent is a failure, and the TXT length limit is one.
"""

from __future__ import annotations

import json

import pytest
from support.display import HOSTILE, assert_displayable
from support.helpers import state_of

from duckdns import state

JOURNAL = {"JOURNAL_STREAM": "8:1"}  # as under systemd: every line carries its priority


def duckdns(runner, cfg, *args: str, journal: bool = True):
    proc = runner(cfg, process=True)(*args, env=JOURNAL if journal else None)
    assert_displayable(proc.stdout, proc.stderr, where=f"output of duckdns {' '.join(args)}")
    return proc


def txt_requests(duck) -> list[dict]:
    return [r["query"] for r in duck.requests if "txt" in r["query"]]


# -- TXT answers ------------------------------------------------------------------------------

WRONG_ANSWERS = {
    "the issue's": "OK\n\x1b[2J\x1b[Hevil\rTXT record set\nUPDATED",
    "another value": "OK\nsomething-else\nUPDATED",
    "empty": "OK\n\nUPDATED",
    "nochange with another": "OK\nabd\nNOCHANGE",
    "forged line": "OK\nabc\n<3>FAKE ERROR\nUPDATED",
    "value then NUL": "OK\nabc\x00\nUPDATED",
    "long": "OK\n" + "x" * 3000 + "\nUPDATED",
    "bidi": "OK\nabc\u202e\nUPDATED",  # not ASCII: not a documented answer at all
}


@pytest.mark.parametrize("body", list(WRONG_ANSWERS.values()), ids=list(WRONG_ANSWERS))
def test_a_txt_answer_without_the_value_sent_is_a_failure(runner, duck, conf, body):
    cfg = conf()
    duck.default = f"answer:{body}"
    proc = duckdns(runner, cfg, "txt", "set", "abc")
    assert proc.returncode == 75, proc.stderr
    assert (
        "DuckDNS answered with another TXT value" in proc.stderr
        or "unexpected answer from DuckDNS" in proc.stderr
    ), proc.stderr
    assert "TXT record set to" not in proc.stderr
    assert len(proc.stderr.splitlines()) == 1, proc.stderr
    assert len(txt_requests(duck)) == 1, "an answer is not retried"
    assert not (cfg.parent / "state.json").exists() or state_of(cfg)["txt"] == ""
    proc = duckdns(runner, cfg, "status")
    assert "TXT:             -" in proc.stdout


def test_txt_clear_answered_with_a_value_is_a_failure(runner, duck, conf):
    cfg = conf()
    assert duckdns(runner, cfg, "txt", "set", "abc").returncode == 0
    duck.default = "answer:OK\nabc\nUPDATED"  # the value is still there
    proc = duckdns(runner, cfg, "txt", "clear")
    assert proc.returncode == 75 and "another TXT value ('abc')" in proc.stderr, proc.stderr
    assert state_of(cfg)["txt"] == "abc", "what the last confirmed answer showed stays"


def test_the_value_sent_and_shown_is_recorded(runner, duck, conf):
    cfg = conf()
    proc = duckdns(runner, cfg, "txt", "set", "abc")
    assert proc.returncode == 0, proc.stderr
    assert "<5>piserver: TXT record set to 'abc'" in proc.stderr
    assert state_of(cfg)["txt"] == "abc" == duck.txt
    proc = duckdns(runner, cfg, "txt", "clear")
    assert proc.returncode == 0 and state_of(cfg)["txt"] == "" == duck.txt, proc.stderr


def test_a_bare_ok_is_accepted_unconfirmed(runner, duck, conf):
    """DuckDNS ignoring verbose=true (its answer shows nothing): taken as for the addresses."""
    cfg = conf()
    duck.default = "bare"
    proc = duckdns(runner, cfg, "txt", "set", "abc")
    assert proc.returncode == 0, proc.stderr
    assert "TXT record set to 'abc' (DuckDNS's answer did not show the record)" in proc.stderr
    assert state_of(cfg)["txt"] == "abc" == duck.txt


NOT_TXT = {
    "256": "x" * (state.MAX_TXT + 1),
    "600": "x" * 600,
    **{name: text for name, text in HOSTILE.items() if not text.isprintable()},
    "non-ascii": "caf\u00e9",
    "tab": "tab\there",
}


@pytest.mark.parametrize("value", list(NOT_TXT.values()), ids=list(NOT_TXT))
@pytest.mark.parametrize("command", ["set", "wait"])
def test_a_value_that_cannot_be_a_txt_value_is_refused_before_anything_is_sent(
    runner, duck, conf, value, command
):
    cfg = conf()
    timeout = ["--timeout=1"] if command == "wait" else []
    proc = duckdns(runner, cfg, "txt", command, *timeout, "--", value)
    assert proc.returncode == 2, proc.stderr
    assert "the TXT value" in proc.stderr, proc.stderr
    assert value not in proc.stderr, "the value is not shown back"
    assert duck.requests == []


def test_a_printable_value_is_a_txt_value_and_shown_quoted(runner, duck, conf):
    cfg = conf()
    proc = duckdns(runner, cfg, "txt", "set", "--", HOSTILE["priority-first"])
    assert proc.returncode == 0, proc.stderr
    assert duck.txt == HOSTILE["priority-first"]


def test_the_longest_txt_value_is_kept_by_the_state(runner, duck, conf):
    """One limit: what txt set sends, state.json keeps, and status shows without a warning."""
    cfg = conf()
    value = "v" * state.MAX_TXT
    assert duckdns(runner, cfg, "txt", "set", value).returncode == 0
    assert state_of(cfg)["txt"] == value
    proc = duckdns(runner, cfg, "status")
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert f"TXT:             {value}\n" in proc.stdout


# -- what a state file holds ------------------------------------------------------------------

DAMAGED = {
    "a dict": {"probe_ipv4": {"a": 1}},
    "60,000 characters": {"probe_ipv4": "9" * 60000},
    "NaN": {"probe_ipv4": float("nan")},
    "a list": {"probe_ipv4": ["1.2.3.4"]},
    "true": {"probe_ipv4": True},
}
CONTROLS = "1.2.3.4\x1b[2J\r\n<3>FAKE ERROR\u2028\u202e"


def old_state(**fields) -> dict:
    """A state.json as duckdns 0.1.0 wrote it (tests/unit/test_families.py has a whole one),
    its probe not trusted."""
    return {
        "fingerprint": "piserver|auto|auto|https://x|1:2",
        "ipv4": "192.0.2.1",
        "last_result": "nochange",
        "last_run": 1700000000,
        "last_success": 1700000000,
        "probe_ipv4": "203.0.113.7",
        "probe_trusted": False,
        "txt": "",
        **fields,
    }


def write_state(cfg, data: dict) -> None:
    (cfg.parent / "state.json").write_text(json.dumps(data, allow_nan=True))


@pytest.mark.parametrize("fields", list(DAMAGED.values()), ids=list(DAMAGED))
def test_a_damaged_010_state_is_validated_like_any_other(runner, duck, conf, fields):
    cfg = conf()
    write_state(cfg, old_state(**fields))
    proc = duckdns(runner, cfg, "status")
    assert proc.returncode == 0, proc.stderr
    assert "dropped 1 damaged field (probe_ipv4)" in proc.stderr, proc.stderr
    assert "not trusted since" in proc.stdout and "it answered -" in proc.stdout, proc.stdout
    assert len(proc.stdout) < 4000
    proc = duckdns(runner, cfg, "status", "--json")
    assert proc.returncode == 0
    assert json.loads(proc.stdout)["probe_ipv4"] == ""
    proc = duckdns(runner, cfg, "update")
    assert proc.returncode == 0, proc.stderr
    assert state_of(cfg)["probe_ipv4"] == "", "the first update does not write it back"
    assert "probe_trusted" not in state_of(cfg)


def test_control_characters_in_a_010_state_are_shown_escaped(runner, duck, conf):
    cfg = conf()
    write_state(cfg, old_state(probe_ipv4=CONTROLS))
    proc = duckdns(runner, cfg, "status")
    assert proc.returncode == 0, proc.stderr
    assert "(it answered 1.2.3.4\\x1b[2J\\r\\n<3>FAKE ERROR\\u2028\\u202e," in proc.stdout
    proc = duckdns(runner, cfg, "status", "--json")
    assert json.loads(proc.stdout)["probe_ipv4"] == CONTROLS  # JSON-escaped, not changed


STORED = {
    "last_error": "DuckDNS said\n<3>FAKE ERROR\x1b[2J",
    "last_result": "ko\r<3>overwritten",
    "ipv4": "\x1b]0;pwned\x07203.0.113.7",
    "ipv6": "2001:db8::1\u2028<3>FAKE",
    "router_ipv4": "198.51.100.1\u202e",
    "failure_kind": "temporary\n<3>FAKE",
    "ping_state": "up\x9b2J",
    "alert_text": "down\n<3>FAKE ERROR",
}


@pytest.mark.parametrize("journal", [True, False], ids=["journal", "terminal"])
def test_no_stored_value_reaches_status_raw(runner, duck, conf, journal):
    """Every text field of the state holding control characters: status, --json, --alert,
    --prometheus and the update print them escaped (checked by ``duckdns``)."""
    cfg = conf()
    text_fields = [k for k, v in state.FIELDS.items() if isinstance(v, str)]
    data = dict.fromkeys(text_fields, "x\n<3>FAKE\x1b[2J")
    data.update({k: v for k, v in STORED.items() if k in state.FIELDS})
    data["txt"] = "abc"  # a TXT value holding controls is dropped (tested above)
    data.update(failures=3, failing_since=1700000000, next_attempt=1700000060, ping_tried=1)
    write_state(cfg, data)
    proc = duckdns(runner, cfg, "status", journal=journal)
    assert proc.returncode == 0, proc.stderr
    assert "\\n<3>FAKE\\x1b[2J" in proc.stdout or "\\x1b" in proc.stdout
    assert "DuckDNS said\\n<3>FAKE ERROR\\x1b[2J" in proc.stdout
    for args in (["status", "--json"], ["status", "--alert"], ["status", "--prometheus"]):
        proc = duckdns(runner, cfg, *args, journal=journal)
        assert proc.returncode == 0, proc.stderr
    assert (
        json.loads(duckdns(runner, cfg, "status", "--json").stdout)["last_error"]
        == STORED["last_error"]
    )
    proc = duckdns(runner, cfg, "update", "-vv", journal=journal)
    assert proc.returncode == 0, proc.stderr


def test_a_txt_value_with_control_characters_in_the_state_is_dropped(runner, duck, conf):
    cfg = conf()
    write_state(cfg, {"txt": "abc\x1b[2J"})
    proc = duckdns(runner, cfg, "status")
    assert "dropped 1 damaged field (txt)" in proc.stderr
    assert "TXT:             -" in proc.stdout


# -- certbot's environment, through the program ----------------------------------------------


@pytest.mark.parametrize("journal", [True, False], ids=["journal", "terminal"])
@pytest.mark.parametrize("suffix", ["", ".other.duckdns.org"], ids=["name", "below-duckdns"])
@pytest.mark.parametrize("text", list(HOSTILE.values()), ids=list(HOSTILE))
@pytest.mark.parametrize("action", ["set", "clear", "wait"])
def test_a_hostile_for_name_is_refused_in_one_line(
    runner, duck, conf, text, suffix, action, journal
):
    """CERTBOT_DOMAIN as the hooks pass it (--for): refused, said in one escaped line."""
    cfg = conf()
    args = ["txt", action, f"--for={text}{suffix}", "--nameserver", "127.0.0.1:9"]  # closed
    if action == "wait":
        args.append("--timeout=1")
    if action != "clear":
        args += ["--", "abc"]
    proc = duckdns(runner, cfg, *args, journal=journal)
    assert proc.returncode in (75, 78), proc.stderr
    assert len(proc.stderr.splitlines()) == 1, proc.stderr
    assert duck.requests == []


def test_check_shows_stored_and_router_values_escaped(runner, duck, conf):
    """``check`` with a router answering on loopback (NAT-PMP, support.natpmp_responder) and a
    state whose DuckDNS address holds control characters: its verdict line is escaped."""
    from support.natpmp_responder import Responder

    with Responder("ok", "81.2.69.160") as router:
        host, port = router.address
        cfg = conf(router=f"{host}:{port}")
        write_state(cfg, {"ipv4": "203.0.113.7\x1b[2J\n<3>FAKE ERROR"})
        proc = duckdns(runner, cfg, "check")
    assert proc.returncode == 0, proc.stderr
    assert "(router: 81.2.69.160; DuckDNS: -)" in proc.stdout, proc.stdout
    assert "dropped 1 damaged field (ipv4)" in proc.stderr, proc.stderr


@pytest.mark.parametrize(
    ("family", "value"),
    [
        ("ipv4", "203.0.113.7\x1b[2J"),
        ("ipv4", "::1"),
        ("ipv4", "not an address"),
        ("ipv6", "2001:db8::1\n<3>FAKE"),
        ("ipv6", "fe80::1%eth0"),
        ("ipv6", "10.0.0.1"),
    ],
)
def test_a_record_address_that_is_not_one_is_dropped(runner, duck, conf, family, value):
    """DuckDNS's answers only ever put an address of the record's family there: anything else
    is damage, kept out of status and of the metrics' labels (the Prometheus text format
    escapes only backslash, quote and newline in a label)."""
    cfg = conf()
    write_state(cfg, {family: value})
    proc = duckdns(runner, cfg, "status", "--prometheus")
    assert proc.returncode == 0, proc.stderr
    assert f"dropped 1 damaged field ({family})" in proc.stderr, proc.stderr
    assert "address=" not in proc.stdout


def test_a_record_address_is_kept_in_any_spelling(runner, duck, conf):
    cfg = conf()
    write_state(cfg, {"ipv4": "10.0.0.1", "ipv6": "2001:DB8:0::1"})  # as DuckDNS may spell it
    proc = duckdns(runner, cfg, "status", "--prometheus")
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert 'address="10.0.0.1"' in proc.stdout and 'address="2001:DB8:0::1"' in proc.stdout
