"""duckdns debconf-check: the token checked at setup by one bounded update, against the
DuckDNS look-alike (real TLS on loopback; it answers KO to a token or name not its own, as
the API says KO means)."""

from __future__ import annotations

import socket
import time

from support.helpers import CANARY
from support.runner import Updater

from duckdns import tokencheck

WRONG = "c0ffee00-dead-beef-0000-123456789abd"


def check(monkeypatch, capsys, cfg, answers: str, ipv6: str | None = None) -> tuple[int, str, str]:
    """What debian/config runs: the answers on stdin, the config path in argv; ``ipv6``, the
    global address the kernel shows."""
    run = Updater(monkeypatch, capsys, cfg)
    run.ipv6 = ipv6
    code, out, err = run("debconf-check", stdin=answers)
    assert WRONG not in out + err
    return code, out, err


def answers(token: str = CANARY, domains: str = "piserver", ipv4="auto", ipv6="off") -> str:
    return f"domains = {domains}\ntoken = {token}\nipv4 = {ipv4}\nipv6 = {ipv6}\n"


def test_a_good_token_is_one_update_and_nothing_is_written(monkeypatch, capsys, conf, duck):
    cfg = conf(token=WRONG)  # the file's old token; the answer's is the one sent
    before = cfg.read_bytes()
    assert check(monkeypatch, capsys, cfg, answers()) == (0, "", "")
    assert len(duck.requests) == 1 and duck.requests[0]["query"]["token"] == CANARY
    assert cfg.read_bytes() == before


def test_ko_says_what_it_means(monkeypatch, capsys, conf, duck):
    code, out, err = check(monkeypatch, capsys, conf(), answers(token=WRONG))
    assert code == 1 and out == ""
    assert "DuckDNS answered KO" in err and "token" in err and "subdomain" in err
    assert len(duck.requests) == 1  # never retried


def test_an_empty_token_answer_checks_the_files(monkeypatch, capsys, conf, duck):
    """dpkg-reconfigure with the token left empty: the file's token is the one checked."""
    assert check(monkeypatch, capsys, conf(), answers(token=""))[0] == 0
    assert duck.requests[0]["query"]["token"] == CANARY


def test_unreachable_goes_on_within_the_bound(monkeypatch, capsys, conf, test_ca):
    with socket.socket() as s:  # a port nobody listens on: connection refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = conf(server=f"https://127.0.0.1:{port}")
    start = time.monotonic()
    code, out, err = check(monkeypatch, capsys, cfg, answers())
    assert time.monotonic() - start < tokencheck.BUDGET
    assert code == 75 and tokencheck.UNREACHABLE in err


def test_a_silent_server_is_given_up_at_the_bound(monkeypatch, capsys, conf, duck):
    duck.script = ["stall:30"]
    monkeypatch.setattr(tokencheck, "BUDGET", 2.0)
    start = time.monotonic()
    code, _, err = check(monkeypatch, capsys, conf(), answers())
    assert time.monotonic() - start < 5
    assert code == 75 and tokencheck.UNREACHABLE in err


def test_ipv6_only_sends_the_address_found_in_ip(monkeypatch, capsys, conf, duck):
    answered = answers(ipv4="off", ipv6="auto")
    assert check(monkeypatch, capsys, conf(), answered, ipv6="2001:db8::7")[0] == 0
    query = duck.requests[0]["query"]
    assert query["ip"] == "2001:db8::7" and "ipv6" not in query
    assert duck.records["piserver"]["ipv6"] == "2001:db8::7"


def test_ipv6_only_without_an_address_sends_nothing(monkeypatch, capsys, conf, duck):
    from duckdns import localaddr

    monkeypatch.setattr(localaddr, "global_ipv6", lambda *a, **k: None)
    code, _, err = check(monkeypatch, capsys, conf(), answers(ipv4="off", ipv6="auto"))
    assert code == 75 and "not checked" in err and duck.requests == []


def test_answers_that_make_no_config_are_a_config_error(monkeypatch, capsys, conf, duck):
    code, _, err = check(monkeypatch, capsys, conf(), answers(domains="bad_name"))
    assert code == 78 and duck.requests == []
