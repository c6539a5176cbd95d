"""Booted: the admin's hooks in /etc/duckdns/changed.d, as systemd runs them.

The package installed (preseeded), the hardened duckdns.service started by hand one run
at a time (the timer stopped, so each run sees the world this test set up), the test
DuckDNS server's autodetected "public" IPv4 address (its ``client_ip``) changed between
runs, ``probe = off`` (an admin's edit: DuckDNS's own view decides, every run asks).
duckdns-changed.path, enabled by the package, starts duckdns-changed.service, which runs
the hooks. Nothing leaves the container: the server is on its loopback.
"""

from __future__ import annotations

import re
import time

import harness
import pytest
from harness import CONF
from support.helpers import CANARY as TOKEN

A1, A2, A3, A4 = "203.0.113.7", "198.51.100.20", "198.51.100.21", "198.51.100.22"
HOOKS = "/etc/duckdns/changed.d"
RUNS = "/var/tmp/hook-runs"
# One line per run: who ran it and what it was told; the whole environment kept too.
RECORD_HOOK = f"""#!/bin/sh
n=$(($(cat {RUNS} 2>/dev/null | wc -l) + 1))
env > /var/tmp/hook-env.$n
echo "uid=$(id -u) domains=$DUCKDNS_DOMAINS ipv4=$DUCKDNS_IPV4 old=$DUCKDNS_OLD_IPV4" >> {RUNS}
"""
# A time limit an admin's drop-in can set; the shipped one is 60 s.
SHORT_LIMIT = (
    "[Service]\nExecStart=\nExecStart=/usr/bin/python3 -I -m duckdns.changed --timeout 3\n"
)


def runs(c) -> list[str]:
    path = c.root / RUNS.lstrip("/")
    return path.read_text().splitlines() if path.exists() else []


def update(c, duckdns, client_ip: str) -> None:
    """One run of the hardened unit, DuckDNS seeing ``client_ip``; it must succeed."""
    duckdns.set_mode("ok", client_ip=client_ip)
    c.exec(["systemctl", "start", "duckdns.service"], timeout=120)
    result = harness.service_show(c, "duckdns.service", "Result", "ExecMainStatus")
    assert result == {"Result": "success", "ExecMainStatus": "0"}, result


def hooks_settled(c, invocations: int, timeout: float = 60) -> None:
    """Wait until duckdns-changed.service has run ``invocations`` times and is idle."""

    def done() -> bool:
        log = c.exec(
            ["journalctl", "--no-pager", "-o", "cat", "_PID=1", "-u", "duckdns-changed.service"]
        ).stdout
        finished = len(
            re.findall(r"^(?:Finished|Failed to start) duckdns-changed\.service", log, re.M)
        )
        state = c.unit_property("duckdns-changed.service", "ActiveState")
        return finished >= invocations and state in ("inactive", "failed")

    c.wait_for(done, timeout, what=f"duckdns-changed.service run #{invocations}")


def hook_journal(c) -> str:
    return c.exec(["journalctl", "--no-pager", "-o", "cat", "-u", "duckdns-changed.service"]).stdout


@pytest.mark.both_suites
def test_hooks_run_once_per_change_as_root_outside_the_sandbox(container, duckdns, deb):
    c = container
    duckdns.set_mode("ok", client_ip=A1)
    harness.preseed(c, domains="piserver", token=TOKEN, ipv6=False)
    proc = c.install_deb(deb)
    assert TOKEN not in proc.stdout + proc.stderr
    c.exec(["systemctl", "stop", "duckdns.timer"])  # before its first run (30 s after install)
    # Shipped empty; the path unit enabled and waiting, its service and the network timer
    # static.
    assert list((c.root / HOOKS.lstrip("/")).iterdir()) == []
    assert harness.service_show(
        c, "duckdns-changed.path", "UnitFileState", "ActiveState", "SubState"
    ) == {"UnitFileState": "enabled", "ActiveState": "active", "SubState": "waiting"}
    for unit in ("duckdns-changed.service", "duckdns-network.timer"):
        assert c.unit_property(unit, "UnitFileState") == "static", unit
    c.sh(f"printf 'probe = off\\n' >> {CONF}")
    c.write(f"{HOOKS}/10-record", RECORD_HOOK, mode=0o755)

    # 1. The first publication is a change (from nothing): one run, as root, no old address.
    update(c, duckdns, A1)
    hooks_settled(c, 1)
    assert runs(c) == [f"uid=0 domains=piserver ipv4={A1} old="]

    # 2. A new address: exactly one more run, with the new and the old address.
    update(c, duckdns, A2)
    hooks_settled(c, 2)
    assert runs(c) == [
        f"uid=0 domains=piserver ipv4={A1} old=",
        f"uid=0 domains=piserver ipv4={A2} old={A1}",
    ]
    env = (c.root / "var/tmp/hook-env.2").read_text()
    assert f"DUCKDNS_IPV4={A2}\n" in env and f"DUCKDNS_OLD_IPV4={A1}\n" in env, env
    assert "DUCKDNS_IPV6=\n" in env and "DUCKDNS_OLD_IPV6=\n" in env, env
    assert TOKEN not in env

    # 3. Nothing changed (DuckDNS asked, and answered the same address): no hook.
    requests = len(duckdns.updates())
    update(c, duckdns, A2)
    assert len(duckdns.updates()) == requests + 1
    time.sleep(3)  # what a path unit would need to react, many times over
    assert c.unit_property("duckdns-changed.service", "ActiveState") == "inactive"
    assert len(runs(c)) == 2

    # 4. A hook that fails and one that hangs (and ignores SIGTERM), with the short limit
    #    of an admin's drop-in: the update succeeds, the other hook runs, each problem is
    #    one line in the hooks' journal.
    c.write(f"{HOOKS}/20-fails", "#!/bin/sh\necho about to fail\nexit 3\n", mode=0o755)
    c.write(f"{HOOKS}/30-hangs", "#!/bin/sh\ntrap '' TERM\nsleep 300\n", mode=0o755)
    c.write("/etc/systemd/system/duckdns-changed.service.d/test-limit.conf", SHORT_LIMIT)
    c.exec(["systemctl", "daemon-reload"])
    update(c, duckdns, A3)
    hooks_settled(c, 3, timeout=90)
    assert runs(c)[2:] == [f"uid=0 domains=piserver ipv4={A3} old={A2}"]
    journal = hook_journal(c)
    assert "about to fail" in journal  # the hook's own output, under the hooks' unit
    problems = [line for line in journal.splitlines() if line.startswith("hook ")]
    assert problems == [
        f"hook {HOOKS}/20-fails exited with status 3; "
        "the other hooks ran, and updates go on as usual",
        f"hook {HOOKS}/30-hangs was still running after 3 s and was stopped; "
        "the other hooks ran, and updates go on as usual",
    ], journal
    errors = c.exec(
        ["journalctl", "--no-pager", "-o", "cat", "-p", "err", "-u", "duckdns-changed.service"]
    ).stdout
    assert errors.splitlines() == problems, errors
    assert c.unit_property("duckdns-changed.service", "Result") == "success"
    assert "sleep 300" not in c.exec(["ps", "-eo", "args"]).stdout
    # The updates are not held up: the next run goes ahead as usual.
    update(c, duckdns, A3)

    # 5. A change queued while the path unit is stopped (as in the moment between the
    #    updater's write and a reboot) runs the hooks once when it starts again.
    for name in ("20-fails", "30-hangs"):
        (c.root / HOOKS.lstrip("/") / name).unlink()
    c.exec(["systemctl", "stop", "duckdns-changed.path"])
    update(c, duckdns, A4)
    time.sleep(2)
    assert len(runs(c)) == 3
    c.exec(["systemctl", "start", "duckdns-changed.path"])
    hooks_settled(c, 4)
    assert runs(c)[3:] == [f"uid=0 domains=piserver ipv4={A4} old={A3}"]

    # The updater's own lines said each change once; the token is only in its file.
    updater = c.exec(["journalctl", "--no-pager", "-o", "cat", "SYSLOG_IDENTIFIER=duckdns"]).stdout
    changes = [line for line in updater.splitlines() if line.startswith("piserver: ")]
    assert len(changes) == 4, updater
    assert harness.token_leaks(c, TOKEN) == []

    # 6. Purge: the units, the triggers and the queue go; the admin's hook stays.
    proc = c.exec(["apt-get", "purge", "-y", "duckdns"], timeout=300)
    for path in (
        "lib/systemd/system/duckdns-changed.path",
        "lib/systemd/system/duckdns-changed.service",
        "lib/systemd/system/duckdns-network.timer",
        "usr/lib/NetworkManager/dispatcher.d/90-duckdns",
        "usr/lib/networkd-dispatcher/routable.d/90-duckdns",
        "var/lib/private/duckdns",
        "etc/systemd/system/paths.target.wants/duckdns-changed.path",
    ):
        assert not (c.root / path).exists(), path
    assert (c.root / HOOKS.lstrip("/") / "10-record").exists()
    assert c.unit_property("duckdns-changed.path", "LoadState") == "not-found"
