"""Self-tests of the harness: if these fail, every scenario would fail for the wrong reason."""

from __future__ import annotations

import json
import re
from pathlib import Path

import harness
import pytest
import roots
from support.helpers import CANARY


@pytest.mark.both_suites
def test_boot_exec_and_private_network(container, suite):
    assert f"VERSION_CODENAME={suite}\n" in container.read("/etc/os-release")
    assert container.exec(["systemctl", "is-system-running"], check=False).stdout.strip() in (
        "running",
        "degraded",
    )
    assert container.exec(["cat", "/etc/hostname"]).stdout.strip() == "duckdns-test"
    # Only a loopback interface: nothing inside can reach the outside, even by mistake.
    links = container.exec(["ip", "-o", "link"]).stdout
    assert [line.split(":")[1].strip() for line in links.splitlines()] == ["lo"], links
    proc = container.exec(["curl", "-sS", "-m", "5", "http://deb.debian.org/"], check=False)
    assert proc.returncode != 0
    # systemd is PID 1 inside and the journal is persistent (read after power-off too).
    assert container.exec(["ps", "-o", "comm=", "-p", "1"]).stdout.strip() == "systemd"
    assert (container.root / "var/log/journal").is_dir()


@pytest.mark.both_suites
def test_test_server_is_www_duckdns_org_inside(container, duckdns):
    # The container's own python3-requests, the system trust store, the default server name.
    code = (
        "import requests; r = requests.get('https://www.duckdns.org/update', params="
        f"{{'domains': 'piserver', 'token': {CANARY!r}, 'verbose': 'true'}}, "
        "timeout=10); print(r.text)"
    )
    out = container.exec(["python3", "-c", code]).stdout
    assert out.startswith("OK\n127.0.0.1"), out
    bad = container.exec(["curl", "-sS", "https://www.duckdns.org/update?domains=piserver&token=x"])
    assert bad.stdout == "KO"
    recorded = duckdns.updates()
    assert [r["query"]["token"] for r in recorded] == [CANARY, "x"]
    # The record (which holds the token) is outside the container's root tree.
    assert not container.grep_root(CANARY)
    duckdns.set_mode("status:503")
    proc = container.exec(
        [
            "curl",
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "https://www.duckdns.org/update?domains=piserver&token=x",
        ]
    )
    assert proc.stdout == "503"
    assert json.loads(duckdns.control.read_text())["mode"] == "status:503"


# The "| Debian NN codename | Python | requests | urllib3 | OpenSSL | systemd |" rows.
VERSIONS_TABLE = re.compile(r"^\| Debian \d+ (\w+) \|" + r"([^|]+)\|" * 5 + "$", re.M)
MEASURE = (
    "import sys, ssl, requests, urllib3; "
    "print(sys.version.split()[0], requests.__version__, urllib3.__version__, "
    "ssl.OPENSSL_VERSION.split()[1])"
)


@pytest.mark.both_suites
def test_release_versions_are_the_documented_ones(container, suite):
    """What the tests ran against on each release, as docs/packaging.md states it: the
    booted container's python3, requests, urllib3, OpenSSL and systemd (PID 1). The
    document gives each to the precision that matters (e.g. "3.0" for OpenSSL: point
    releases move); the exact versions are printed."""
    python, requests, urllib3, openssl = container.exec(["python3", "-c", MEASURE]).stdout.split()
    systemd = re.search(
        r"^systemd (\d+)", container.exec(["systemctl", "--version"]).stdout, re.M
    ).group(1)
    pid1 = container.exec(["sh", "-c", "readlink /proc/1/exe"]).stdout.strip()
    assert pid1.endswith("/systemd"), pid1
    measured = dict(
        zip(
            ("Python", "requests", "urllib3", "OpenSSL", "systemd"),
            (python, requests, urllib3, openssl, systemd),
            strict=True,
        )
    )
    harness.log(f"[system] {suite}: {measured}")
    doc = (harness.REPO / "docs/packaging.md").read_text()
    rows = {m.group(1): [v.strip() for v in m.groups()[1:]] for m in VERSIONS_TABLE.finditer(doc)}
    assert suite in rows, f"docs/packaging.md has no versions row for {suite}"
    for (name, value), documented in zip(measured.items(), rows[suite], strict=True):
        assert value == documented or value.startswith(documented + "."), (
            f"{suite}: {name} is {value}, docs/packaging.md says {documented}"
        )


def test_terminal_typing_is_literal(container):
    term = harness.Tmux(container, 'read -r -p "Token: " x; printf "got [%s]\\n" "$x"')
    term.wait_for("Token:")
    term.type("a;b Enter C-c 'q' \"x\"")
    term.key("Enter")
    assert term.wait_exit(20) == 0
    assert "got [a;b Enter C-c 'q' \"x\"]" in term.screen()


def test_whiptail_password_shows_stars(container):
    term = harness.Tmux(
        container,
        "whiptail --passwordbox 'Token' 10 60 2> /run/duckdns-test/out",
        env={"TERM": "xterm", "NEWT_COLORS": ""},
    )
    term.wait_for("Token")
    term.type("secret;1")
    screen = term.screen()
    assert "********" in screen and "secret" not in screen, screen
    term.key("Enter")
    assert term.wait_exit(20) == 0
    assert (container.hostdir / "out").read_text() == "secret;1"


def test_close_leaves_nothing(rootfs_tarball):
    c = harness.Container(tarball=rootfs_tarball)
    try:
        c.prepare().boot()
        server = harness.DuckDNS(c)
        server.start()
        term = harness.Tmux(c, "sleep 600")
        term.wait_for("")
        nspawn_pid, init_pid, tmp = c.nspawn.pid, c.pid, c.tmp
    finally:
        c.close()
    assert c.nspawn.poll() is not None
    for pid in (nspawn_pid, init_pid):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except FileNotFoundError:
            continue
        assert "State:\tZ" in status, f"process {pid} still running"
    assert not tmp.exists()
    assert not roots.mounts_under(tmp)
    # The journal is written to disk before power-off (read from its files when stopped).
