"""Scenarios 1-3: installing the .deb as a person does (whiptail, readline) and as a
fleet does (preseeded), in a booted Debian with systemd as PID 1."""

from __future__ import annotations

import json
import re

import harness
import pytest
from harness import CONF
from support.helpers import CANARY as TOKEN

BAD_TOKEN = "not-a-token-1234"


def assert_configured_and_updated_by_timer(c, duckdns, domains="piserver", token=TOKEN):
    """The timer is enabled and active, the service runs from it as a dynamic user within
    90 s, the test server saw the token and domains, and the token leaked nowhere."""
    timer = harness.service_show(c, "duckdns.timer", "UnitFileState", "ActiveState")
    assert timer == {"UnitFileState": "enabled", "ActiveState": "active"}, timer
    conf = c.root / CONF.lstrip("/")
    assert conf.stat().st_mode & 0o777 == 0o600
    assert token in conf.read_text()

    result = harness.wait_service_run(c, after=0, timeout=90)
    assert result["Result"] == "success", result
    # Run by the timer: nobody started it by hand in this test.
    trigger = harness.service_show(c, "duckdns.timer", "LastTriggerUSec")["LastTriggerUSec"]
    assert trigger not in ("", "n/a", "0"), trigger
    # As a dynamic user: systemd chowned the state directory to it, and the journal
    # entries of the updater's own process carry its uid.
    assert harness.state_dir_owner(c) in harness.state_dir_owners(c)
    entries = [
        json.loads(line)
        for line in c.exec(
            ["journalctl", "--no-pager", "-o", "json", "SYSLOG_IDENTIFIER=duckdns"]
        ).stdout.splitlines()
    ]
    uids = {int(e["_UID"]) for e in entries if "_UID" in e}
    assert uids and all(uid in harness.DYNAMIC_UIDS for uid in uids), uids

    updates = duckdns.updates()
    assert updates, "the test DuckDNS server saw no update"
    assert updates[-1]["query"]["token"] == token
    assert updates[-1]["query"]["domains"] == domains

    journal = c.exec(["journalctl", "--no-pager", "-u", "duckdns"]).stdout
    assert token not in journal
    assert harness.token_leaks(c, token) == []

    status = c.exec(["duckdns", "status"])
    assert token not in status.stdout + status.stderr
    assert "127.0.0.1" in status.stdout, status.stdout
    assert re.search(r"Last result:\s+(updated|unchanged|nochange|ok)", status.stdout, re.I), (
        status.stdout
    )


def assert_no_confusing_line(output: str) -> None:
    """Only the timer is started by the package: deb-systemd-invoke's line about the
    static service must not be printed."""
    for line in ("not starting it", "static unit"):
        assert line not in output, output[-3000:]


@pytest.mark.both_suites
def test_install_whiptail(container, duckdns, deb):
    """Scenario 1: token and domains typed at the whiptail prompts."""
    harness.fast_timer(container)
    term = harness.apt_install_terminal(container, deb, frontend="dialog")
    harness.answer_whiptail_input(term, r"subdomains? to update", "piserver")
    shown = harness.answer_whiptail_input(term, r"account token", TOKEN)
    # The password field shows one '*' per character and nothing of the token.
    assert "*" * len(TOKEN) in shown, shown
    for part in TOKEN.split("-"):
        assert part not in shown, shown
    term.wait_for(r"IPv6", 30)
    term.key("Tab")  # <No>
    term.key("Enter")
    assert term.wait_exit(120) == 0, term.screen()
    assert_configured_and_updated_by_timer(container, duckdns)


@pytest.mark.both_suites
def test_install_readline(container, duckdns, deb):
    """Scenario 2a: the same install through the readline frontend."""
    harness.fast_timer(container)
    term = harness.apt_install_terminal(container, deb, frontend="readline")
    # The questions come from postinst's run of the config script (the recipe's reader and
    # the token's check need the unpacked package), under apt's progress bar: a prompt is
    # the end of its line, not of the screen.
    term.wait_for(r"subdomains? to update:?[ \t]*(\n|$)", 90)
    term.type("piserver")
    term.key("Enter")
    screen = term.wait_for(r"account token:?[ \t]*(\n|$)", 30)
    term.type(TOKEN)
    term.key("Enter")
    screen = term.wait_for(r"Addresses to publish:", 30)
    assert TOKEN not in screen, "readline echoed the token"
    assert "1. IPv4 only  2. IPv4 and IPv6  3. IPv6 only" in screen, screen
    term.key("Enter")  # readline offers the default, 1 (IPv4 only), on the line
    assert term.wait_exit(120) == 0, term.screen()
    assert TOKEN not in term.screen()
    assert_configured_and_updated_by_timer(container, duckdns)


@pytest.mark.both_suites
def test_install_preseeded(container, duckdns, deb):
    """Scenario 2b: a fleet install: answers preseeded, no terminal, no question."""
    # The shipped schedule (OnBootSec=30, OnActiveSec=30), no fast-timer drop-in: proved
    # on each release here.
    harness.preseed(container, domains="piserver", token=TOKEN, ipv6=False)
    proc = container.install_deb(deb)
    assert TOKEN not in proc.stdout + proc.stderr
    assert_no_confusing_line(proc.stdout + proc.stderr)
    # The token's only copy is the config file: debconf forgot it.
    seen = container.exec(["debconf-show", "duckdns"]).stdout
    assert TOKEN not in seen
    assert_configured_and_updated_by_timer(container, duckdns)


def test_bad_token_is_refused_and_asked_again(container, duckdns, deb):
    """Scenario 3: a bad token gets the error note, then the question again."""
    harness.fast_timer(container)
    term = harness.apt_install_terminal(container, deb, frontend="dialog")
    harness.answer_whiptail_input(term, r"subdomains? to update", "piserver")
    harness.answer_whiptail_input(term, r"account token", BAD_TOKEN)
    note = term.wait_for(r"Invalid DuckDNS token", 30)
    assert "hexadecimal" in note
    term.key("Enter")  # <Ok> on the note
    shown = harness.answer_whiptail_input(term, r"account token", TOKEN)
    assert "*" * len(TOKEN) in shown
    term.wait_for(r"IPv6", 30)
    term.key("Tab")
    term.key("Enter")
    assert term.wait_exit(120) == 0, term.screen()
    assert BAD_TOKEN not in (container.root / CONF.lstrip("/")).read_text()
    assert_configured_and_updated_by_timer(container, duckdns)
