"""Scenarios 4, 7, 8, 9, 10: reconfigure, remove/reinstall/purge, backup and restore,
an interrupted install, migration from the hand-made recipe."""

from __future__ import annotations

import harness
import pytest
from harness import CONF
from support import release
from support.helpers import CANARY as TOKEN

NEW_TOKEN = "feedface-0000-4000-8000-0000deadbeef"
CONF_HOST = CONF.lstrip("/")


def preseeded_install(c, deb, token=TOKEN, domains="piserver"):
    harness.preseed(c, domains=domains, token=token, ipv6=False)
    proc = c.install_deb(deb)
    assert token not in proc.stdout + proc.stderr
    return proc


def first_timer_run(c, duckdns, token=TOKEN):
    result = harness.wait_service_run(c, after=0, timeout=90)
    assert result["Result"] == "success", result
    assert duckdns.updates()[-1]["query"]["token"] == token
    assert harness.state_dir_owner(c) in harness.state_dir_owners(c)


def owners(c):
    d = c.root / "var/lib/private/duckdns"
    return {p.name: p.stat().st_uid for p in d.iterdir()} | {".": d.stat().st_uid}


@pytest.mark.both_suites
def test_reconfigure_new_token_is_used_by_next_timer_run(container, duckdns, deb):
    """Scenario 4, with `duckdns update` by hand as root in between (the ownership trap)."""
    c = container
    harness.fast_timer(c)
    preseeded_install(c, deb)
    first_timer_run(c, duckdns)

    by_hand = c.exec(["duckdns", "update", "--force"], check=False)
    assert by_hand.returncode == 0, by_hand.stdout + by_hand.stderr
    dir_owner = harness.state_dir_owner(c)
    assert set(owners(c).values()) == {dir_owner}, owners(c)

    # The admin once rewrote the file by hand, in a form the updater reads (key case, a byte
    # order mark, CRLF, a key debconf does not ask): dpkg-reconfigure must still repair it.
    conf = c.root / CONF_HOST
    by_hand_lines = ["\ufeff# written by hand", "Domains = PiServer", f"TOKEN = {TOKEN.upper()}"]
    conf.write_bytes("\r\n".join([*by_hand_lines, "IPv6 = off", "Refresh = 12h", ""]).encode())
    assert c.exec(["duckdns", "check"], check=False).returncode == 0

    duckdns.start(token=NEW_TOKEN)  # the account's token changed at DuckDNS
    runs = harness.service_finished_count(c)
    term = harness.Tmux(c, "dpkg-reconfigure duckdns", env={"DEBIAN_FRONTEND": "dialog"})
    harness.answer_whiptail_input(term, r"subdomains? to update", "piserver")
    shown = harness.answer_whiptail_input(term, r"account token", NEW_TOKEN)
    assert NEW_TOKEN[:8] not in shown
    term.wait_for(r"IPv4 and IPv6", 30)
    term.key("Down")  # from "IPv4 only" (the file's "IPv6 = off" is the default)
    term.key("Enter")
    assert term.wait_exit(60) == 0, term.screen()
    repaired = ["\ufeff# written by hand", "domains = piserver", f"token = {NEW_TOKEN}"]
    # What to publish is debconf's now: the ipv4 line the file lacked is added.
    expected = "\r\n".join([*repaired, "ipv6 = auto", "Refresh = 12h", "ipv4 = auto", ""])
    assert conf.read_bytes() == expected.encode()
    assert set(owners(c).values()) == {dir_owner}, owners(c)
    assert conf.stat().st_mode & 0o777 == 0o600

    result = harness.wait_service_run(c, after=runs, timeout=90)
    if duckdns.updates()[-1]["query"]["token"] != NEW_TOKEN:
        # A run the timer (OnUnitActiveSec=) started before the new answer was written met
        # the changed account with the old token (KO, counted at the server); the timer's
        # run after the reconfigure is the one that must use the new token.
        result = harness.wait_service_run(c, after=harness.service_finished_count(c), timeout=90)
    assert result["Result"] == "success", result
    last = duckdns.updates()[-1]
    assert last["query"]["token"] == NEW_TOKEN
    assert harness.token_leaks(c, NEW_TOKEN) == []
    assert harness.token_leaks(c, TOKEN, allowed=()) == []


@pytest.mark.both_suites
def test_remove_reinstall_purge(container, duckdns, deb):
    """Scenario 7."""
    c = container
    harness.fast_timer(c)  # before the snapshot: an admin's file, kept by purge
    before = c.files()
    preseeded_install(c, deb)
    first_timer_run(c, duckdns)

    c.exec(["apt-get", "remove", "-y", "duckdns"], env={"DEBIAN_FRONTEND": "noninteractive"})
    # Stopped, never scheduled again, its unit file gone (debhelper masks a removed
    # package's units until purge, so a dangling enablement link cannot start them).
    timer = harness.service_show(c, "duckdns.timer", "ActiveState", "LoadState")
    assert timer["ActiveState"] == "inactive", timer
    assert timer["LoadState"] in ("not-found", "masked"), timer
    assert not (c.root / "lib/systemd/system/duckdns.timer").exists()
    timers = c.exec(["systemctl", "list-timers", "--no-pager"]).stdout
    assert "duckdns" not in timers, timers
    assert TOKEN in (c.root / CONF_HOST).read_text(), "remove must keep the configuration"

    # Reinstall: no question (a dialog would block the terminal), and it works.
    runs = harness.service_finished_count(c)
    term = harness.apt_install_terminal(c, deb, frontend="dialog")
    assert term.wait_exit(120) == 0, term.screen()
    assert "Configuring duckdns" not in term.screen()
    c.exec(["systemctl", "is-active", "duckdns.timer"])
    result = harness.wait_service_run(c, after=runs, timeout=90)
    assert result["Result"] == "success", result

    c.exec(["apt-get", "purge", "-y", "duckdns"], env={"DEBIAN_FRONTEND": "noninteractive"})
    after = c.files()
    noise = ("/var/log/", "/var/cache/", "/var/lib/dpkg/", "/var/lib/apt/", f"/root/{deb.name}")
    left = sorted(p for p in after - before if not p.startswith(noise))
    assert left == [], f"purge left files the package created: {left}"
    gone = sorted(p for p in before - after if not p.startswith(noise))
    assert gone == [], f"purge removed files it did not create: {gone}"
    assert c.exec(["debconf-show", "duckdns"], check=False).stdout.strip() == ""
    # (debconf's own *.dat-old backups of its previous state are not the database; the
    # token check below still covers them.)
    dbs = c.exec(
        [
            "grep",
            "-l",
            "duckdns/",
            "/var/cache/debconf/config.dat",
            "/var/cache/debconf/passwords.dat",
            "/var/cache/debconf/templates.dat",
        ],
        check=False,
    ).stdout
    assert dbs.strip() == "", f"debconf still has duckdns entries in {dbs}"
    assert harness.token_leaks(c, TOKEN, allowed=()) == []


# apt-listchanges as an admin who reads it in the terminal would set it (its Debian
# default shows only NEWS, in a pager): both NEWS and changelog, as text, no mail.
LISTCHANGES_CONF = """[apt]
frontend=text
which=both
email_address=none
confirm=false
headers=true
"""


def _first_line_of_top_entry(name: str) -> str:
    """The first text line of debian/<name>'s top entry, as apt-listchanges prints it."""
    text = (harness.REPO / "debian" / name).read_text().split("\n -- ", 1)[0]
    return next(ln.strip() for ln in text.splitlines()[1:] if ln.strip())


def test_upgrade_from_the_previous_build(container, duckdns, deb, previous_deb):
    """From the previous release to this one, as a fleet upgrades (stdin closed): no
    conffile question, no line about the static service, the timer still enabled and
    running the new updater, the backup list a conffile; apt-listchanges shows this
    release's NEWS and changelog entry, and nothing older."""
    c = container
    harness.fast_timer(c)
    preseeded_install(c, previous_deb)
    first_timer_run(c, duckdns)
    conf_before = (c.root / CONF_HOST).read_text()
    c.write("/etc/apt/listchanges.conf", LISTCHANGES_CONF)

    harness.copy_deb(c, deb)
    proc = c.exec(
        ["apt-get", "install", "-y", f"/root/{deb.name}"],
        env={"DEBIAN_FRONTEND": "noninteractive"},
    )
    out = proc.stdout + proc.stderr
    for line in ("Configuration file", "conffile", "not starting it", "static unit"):
        assert line not in out, out[-3000:]
    heading = (harness.REPO / "debian/changelog").read_text().splitlines()[0]
    old = release.changelog_field("Version", offset=1)
    assert heading in out, out[-3000:]
    assert _first_line_of_top_entry("NEWS") in out, out[-3000:]
    assert _first_line_of_top_entry("changelog") in out, out[-3000:]
    assert f"duckdns ({old})" not in out, out[-3000:]
    assert (c.root / CONF_HOST).read_text() == conf_before
    conffiles = c.exec(["dpkg-query", "-W", "-f=${Conffiles}", "duckdns"]).stdout
    assert "/etc/backup-paths.d/duckdns.list" in conffiles, conffiles
    assert sorted(p.name for p in (c.root / "etc/backup-paths.d").iterdir()) == ["duckdns.list"]
    timer = harness.service_show(c, "duckdns.timer", "UnitFileState", "ActiveState")
    assert timer == {"UnitFileState": "enabled", "ActiveState": "active"}, timer
    runs = harness.service_finished_count(c)
    result = harness.wait_service_run(c, after=runs, timeout=90)
    assert result["Result"] == "success", result
    assert duckdns.updates()[-1]["query"]["token"] == TOKEN


def test_backup_and_restore(container, duckdns, deb):
    """Scenario 8: archive exactly the registered paths, purge, reinstall with no answers,
    restore, and the next timer run updates with the original token."""
    c = container
    preseeded_install(c, deb)
    first_timer_run(c, duckdns)

    listed = c.read("/etc/backup-paths.d/duckdns.list").splitlines()
    paths = [p.strip() for p in listed if p.strip() and not p.strip().startswith("#")]
    assert CONF in paths, paths
    assert all(p.startswith("/") for p in paths), paths
    printed = c.exec(["duckdns", "backup-paths"]).stdout.splitlines()
    assert [p for p in printed if p and not p.startswith("#")] == paths
    existing = [
        p
        for p in paths
        if (c.root / p.lstrip("/")).exists() or (c.root / p.lstrip("/")).is_symlink()
    ]
    # The archive holds the token: it lives outside the container's tree.
    c.exec(
        [
            "tar",
            "-C",
            "/",
            "-cpf",
            f"{harness.TEST_DIR_IN_CONTAINER}/backup.tar",
            *[p.lstrip("/") for p in existing],
        ]
    )

    c.exec(["apt-get", "purge", "-y", "duckdns"], env={"DEBIAN_FRONTEND": "noninteractive"})
    assert not (c.root / CONF_HOST).exists()
    c.install_deb(deb)
    assert not (c.root / CONF_HOST).exists(), "an install with no answers wrote a config"

    c.exec(["tar", "-C", "/", "-xpf", f"{harness.TEST_DIR_IN_CONTAINER}/backup.tar"])
    n = len(duckdns.updates())
    runs = harness.service_finished_count(c)
    # No daemon-reload, no restart, nothing typed: only the timer.
    result = harness.wait_service_run(c, after=runs, timeout=90)
    while result["Result"] == "success" and len(duckdns.updates()) == n:
        # A run that was only skipped (restore came after the condition check) — wait on.
        runs = harness.service_finished_count(c)
        result = harness.wait_service_run(c, after=runs, timeout=90)
    assert result["Result"] == "success", result
    assert duckdns.updates()[-1]["query"]["token"] == TOKEN


def test_interrupted_postinst_is_repaired(container, duckdns, deb):
    """Scenario 9: dpkg killed in the middle of postinst; `dpkg --configure -a` repairs."""
    c = container
    helper = "/usr/bin/deb-systemd-helper"
    marker = f"{harness.TEST_DIR_IN_CONTAINER}/in-postinst"
    c.exec(["mv", helper, helper + ".real"])
    c.write(helper, f"#!/bin/sh\ntouch {marker}\nexec sleep 600\n", mode=0o755)
    harness.preseed(c, domains="piserver", token=TOKEN, ipv6=False)
    harness.copy_deb(c, deb)
    term = harness.Tmux(
        c, f"apt-get install -y /root/{deb.name}", env={"DEBIAN_FRONTEND": "noninteractive"}
    )
    c.wait_for(lambda: (c.hostdir / "in-postinst").exists(), 120, what="postinst to start")
    # Power cut in the middle of postinst: dpkg and everything under it die at once.
    # Every process of that install (its terminal session): apt, dpkg, the maintainer
    # script, the debconf frontend.
    apt_pid = c.exec(["pgrep", "-x", "apt-get"]).stdout.split()[0]
    killed = harness.kill_tree(c, apt_pid)
    assert len(killed) >= 3, killed  # apt-get, dpkg, postinst (and what runs under it)
    c.wait_for(
        lambda: c.exec(["pgrep", "-x", "apt-get|dpkg"], check=False).returncode == 1,
        30,
        what="the killed install to be gone",
    )
    term.kill()
    c.exec(["mv", helper + ".real", helper])
    status = c.exec(["dpkg-query", "-W", "-f=${Status}", "duckdns"]).stdout
    assert status != "install ok installed", status

    c.exec(["dpkg", "--configure", "-a"], env={"DEBIAN_FRONTEND": "noninteractive"})
    assert c.exec(["dpkg-query", "-W", "-f=${Status}", "duckdns"]).stdout == (
        "install ok installed"
    )
    assert TOKEN in (c.root / CONF_HOST).read_text()
    assert harness.service_show(c, "duckdns.timer", "UnitFileState")["UnitFileState"] == ("enabled")
    c.exec(["systemctl", "is-active", "duckdns.timer"])
    result = harness.wait_service_run(c, after=0, timeout=90)
    assert result["Result"] == "success", result
    assert duckdns.updates()[-1]["query"]["token"] == TOKEN
    assert harness.token_leaks(c, TOKEN) == []


HANDMADE_SERVICE = """[Unit]
Description=DuckDNS update (hand-made)
[Service]
Type=oneshot
DynamicUser=yes
StateDirectory=duckdns
ExecStart=/usr/bin/curl --silent --config /var/lib/duckdns/duckdns.conf
"""
HANDMADE_TIMER = """[Unit]
Description=DuckDNS update timer (hand-made)
[Timer]
OnBootSec=1min
OnUnitActiveSec=5min
[Install]
WantedBy=timers.target
"""


def test_migration_from_handmade_recipe(container, duckdns, deb):
    """Scenario 10: curl-config duckdns.conf and hand-made units already there."""
    c = container
    c.exec(["install", "-d", "-m", "0700", "/var/lib/private", "/var/lib/private/duckdns"])
    curl_conf = (
        f'url = "https://www.duckdns.org/update?domains=piserver&token={TOKEN}&ip="\n'
        "silent\nmax-time = 30\n"
    )
    c.write(CONF, curl_conf, mode=0o600)
    c.write("/etc/systemd/system/duckdns.service", HANDMADE_SERVICE)
    c.write("/etc/systemd/system/duckdns.timer", HANDMADE_TIMER)
    c.exec(["systemctl", "daemon-reload"])
    c.exec(["systemctl", "enable", "duckdns.timer"])

    term = harness.apt_install_terminal(c, deb, frontend="dialog")
    assert term.wait_exit(120) == 0, term.screen()
    log = c.exec(["sh", "-c", "cat /var/log/apt/term.log"]).stdout
    screen = term.screen()
    assert "Configuring duckdns" not in screen, "the migration asked a question"
    text = log + screen
    assert "/etc/systemd/system/duckdns.service" in text, text[-3000:]
    assert "/etc/systemd/system/duckdns.timer" in text, text[-3000:]
    # It tells how to retire them; it does not delete them.
    assert "systemctl disable" in text or "rm " in text, text[-3000:]
    assert (c.root / "etc/systemd/system/duckdns.service").exists()

    assert TOKEN in (c.root / CONF_HOST).read_text(), "the token was not kept"
    proc = c.exec(["duckdns", "update"], check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    last = duckdns.updates()[-1]
    assert (last["query"]["token"], last["query"]["domains"]) == (TOKEN, "piserver")
    assert TOKEN not in proc.stdout + proc.stderr
