"""Scenarios 5 and 6: the hardening is real under a booted systemd, and faults are
reported and recovered from without a manual step."""

from __future__ import annotations

import json
import re
import shutil

import harness
import pytest
from harness import CONF, TEST_DIR_IN_CONTAINER
from support.helpers import CANARY as TOKEN
from support.helpers import TESTS

PROBE = """#!/bin/sh
# Runs as ExecStartPre= of duckdns.service, i.e. with all of the unit's settings.
try() {
    if "$@" 2>/dev/null; then echo "PROBE $PROBE_NAME=yes"; else echo "PROBE $PROBE_NAME=no"; fi
}
PROBE_NAME=write-etc try touch /etc/duckdns-probe
PROBE_NAME=write-usr try touch /usr/duckdns-probe
PROBE_NAME=write-usr-local try touch /usr/local/duckdns-probe
PROBE_NAME=write-var-lib try touch /var/lib/duckdns-probe
PROBE_NAME=write-state try touch "$STATE_DIRECTORY/.probe"
rm -f "$STATE_DIRECTORY/.probe"
# Nothing the service can write can be executed (NoExecPaths=, docs/packaging.md).
for d in "$STATE_DIRECTORY" /tmp /var/tmp /dev/shm; do
    cp /usr/bin/true "$d/.probe-exec" 2>/dev/null
    PROBE_NAME=exec-$(echo "$d" | tr / _) try "$d/.probe-exec"
    rm -f "$d/.probe-exec"
done
PROBE_NAME=exec-usr try /usr/bin/true
PROBE_NAME=see-root try test -e /root/marker
PROBE_NAME=see-home try test -e /home/alice/marker
echo "PROBE uid=$(id -u)"
caps=$(awk '/^Cap(Inh|Prm|Eff|Bnd|Amb):/ {
    printf "%s=%s ", substr($1, 1, length($1) - 1), $2 }' /proc/self/status)
echo "PROBE $caps"
echo "PROBE nnp=$(grep NoNewPrivs /proc/self/status | tr -dc 0-9)"
"""


def exposure(text: str, unit: str = "duckdns.service") -> float:
    m = re.search(rf"Overall exposure level for {re.escape(unit)}: ([0-9.]+)", text)
    assert m, text[-2000:]
    return float(m.group(1))


def install(c, deb, token=TOKEN):
    harness.preseed(c, domains="piserver", token=token, ipv6=False)
    c.install_deb(deb)


@pytest.mark.both_suites
def test_hardening_is_real(container, duckdns, deb):
    """Scenario 5."""
    c = container
    install(c, deb)
    # systemd-analyze inside the booted system agrees with the offline score, <= 1.1.
    live = exposure(
        c.exec(["systemd-analyze", "security", "--no-pager", "duckdns.service"], check=False).stdout
    )
    offline = exposure(
        c.exec(
            [
                "systemd-analyze",
                "security",
                "--no-pager",
                "--offline=true",
                "/lib/systemd/system/duckdns.service",
            ],
            check=False,
        ).stdout,
        unit="duckdns.service",
    )
    harness.log(f"[system] systemd {harness.systemd_version(c)}: exposure {live}")
    assert live <= 1.1, live
    assert live == offline, (live, offline)

    c.write("/root/marker", "x")
    c.write("/home/alice/marker", "x")
    c.write("/usr/local/libexec/duckdns-probe", PROBE, mode=0o755)
    c.write(
        "/etc/systemd/system/duckdns.service.d/probe.conf",
        "[Service]\nExecStartPre=/usr/local/libexec/duckdns-probe\n",
    )
    c.exec(["systemctl", "daemon-reload"])
    c.exec(["systemctl", "start", "duckdns.service"])
    out = c.exec(["journalctl", "--no-pager", "-o", "cat", "-u", "duckdns.service"]).stdout
    probe = dict(
        item.split("=", 1)
        for line in out.splitlines()
        if line.startswith("PROBE ")
        for item in line[6:].split()
        if "=" in item
    )
    assert probe, out
    assert probe["write-etc"] == "no", probe
    assert probe["write-usr"] == "no", probe
    assert probe["write-usr-local"] == "no", probe
    assert probe["write-var-lib"] == "no", probe
    assert probe["write-state"] == "yes", probe
    for d in ("/var/lib/duckdns", "/tmp", "/var/tmp", "/dev/shm"):  # $STATE_DIRECTORY first
        assert probe["exec-" + d.replace("/", "_")] == "no", probe
    assert probe["exec-usr"] == "yes", probe
    assert probe["see-root"] == "no", probe
    assert probe["see-home"] == "no", probe
    assert int(probe["uid"]) in harness.DYNAMIC_UIDS, probe
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(probe[cap], 16) == 0, (cap, probe)
    assert probe["nnp"] == "1", probe
    # And the updater itself ran fine under all of it, right after the probe.
    assert harness.service_show(c, "duckdns.service", "Result")["Result"] == "success"
    assert duckdns.updates()[-1]["query"]["token"] == TOKEN
    _notifies_through_apprise_under_the_hardening(c, duckdns)


HOOK_SECRET = "hook-secret-7f3a9c"  # the webhook URL's own secret


def _notifies_through_apprise_under_the_hardening(c, duckdns) -> None:
    """The packaged service tells an address change through Debian's Apprise, with every
    setting of the unit (DynamicUser=, ProtectHome=, no AF_UNIX, the exec lockdown)."""
    shutil.copy2(TESTS / "support" / "notify_receiver.py", c.hostdir / "notify_receiver.py")
    record, ready = c.hostdir / "notify.jsonl", c.hostdir / "notify.ready"
    inside = f"{TEST_DIR_IN_CONTAINER}/"
    c.serve(
        "notify-receiver.service",
        ["python3", inside + "notify_receiver.py", "--port", "8089"]
        + ["--record", inside + record.name, "--ready-file", inside + ready.name],
        ready.exists,
        "notify receiver",
    )
    # Appended in place: the file keeps the owner systemd gave it (the dynamic user's).
    c.sh(f"printf 'probe = off\\nnotify = json://127.0.0.1:8089/{HOOK_SECRET}\\n' >> {CONF}")
    c.exec(["systemctl", "start", "duckdns.service"])  # notify is new: the past is not news
    duckdns.set_mode("ok", client_ip="198.51.100.9")
    c.exec(["systemctl", "start", "duckdns.service"])
    out = c.exec(["journalctl", "--no-pager", "-o", "cat", "-u", "duckdns.service"]).stdout
    assert harness.service_show(c, "duckdns.service", "Result")["Result"] == "success", out
    assert "notification" not in out, out
    requests = (
        [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []
    )
    assert len(requests) == 1, out
    message = json.loads(requests[0]["body"])
    assert message["title"] == "DuckDNS: new address for piserver"
    assert "IPv4 (A record): 198.51.100.9 (was " in message["message"]
    for text in (requests[0]["body"], out):  # the URL's path is the secret: only there
        assert TOKEN not in text and HOOK_SECRET not in text
    _contains_a_bombing_receiver_under_the_hardening(c, duckdns)


def _contains_a_bombing_receiver_under_the_hardening(c, duckdns) -> None:
    """The child that sends lowers its own data limit under the unit's seccomp filter
    (glibc's setrlimit is prlimit64, which it allows): a receiver answering a gzip bomb
    (1 GiB inflated) costs the run a notification, not the Pi's memory nor the update."""
    shutil.copy2(TESTS / "support" / "hostile_server.py", c.hostdir / "hostile_server.py")
    ready, inside = c.hostdir / "bomb.ready", f"{TEST_DIR_IN_CONTAINER}/"
    cert, key = (inside + str(p.relative_to(c.hostdir)) for p in (duckdns.cert, duckdns.key))
    argv = ["python3", inside + "hostile_server.py", "--cert", cert, "--key", key]
    argv += ["--host", "127.0.0.1", "--port", "8444"]
    c.serve(
        "notify-bomb.service",
        [*argv, "--mode", "gzip-bomb", "--ready-file", inside + ready.name],
        ready.exists,
        "bombing receiver",
        timeout=60,  # the bomb is made before it is ready
    )
    url = f"jsons://127.0.0.1:8444/{HOOK_SECRET}?verify=no"
    # Rewritten in place (cat >): the file keeps its owner, the dynamic user.
    c.sh(f"sed 's|^notify = .*|notify = {url}|' {CONF} > /tmp/conf && cat /tmp/conf > {CONF}")
    since = c.exec(["date", "+%Y-%m-%d %H:%M:%S"]).stdout.strip()
    duckdns.set_mode("ok", client_ip="198.51.100.10")
    c.exec(["systemctl", "start", "duckdns.service"])
    out = c.exec(
        ["journalctl", "--no-pager", "-o", "cat", "-u", "duckdns.service", "--since", since]
    ).stdout
    assert harness.service_show(c, "duckdns.service", "Result")["Result"] == "success", out
    assert re.search(
        r"notification \(address\) to notify URL 1 \(jsons://…\) failed: stopped: it needed "
        r"more than 96 MiB",
        out,
    ), out
    assert TOKEN not in out and HOOK_SECRET not in out


def test_server_down_then_recovers_without_a_step(container, duckdns, deb):
    """Scenario 6a: DuckDNS unreachable (503) for the first run; the unit fails and says
    why; the next timer run succeeds by itself."""
    c = container
    duckdns.set_mode("status:503")
    install(c, deb)
    result = harness.wait_service_run(c, after=0, timeout=90)
    assert result["Result"] != "success", result
    assert result["ExecMainStatus"] == "75", result
    status = c.exec(
        ["systemctl", "status", "--no-pager", "-n", "20", "duckdns.service"], check=False
    ).stdout
    assert "status=75" in status, status
    assert "503" in status, f"systemctl status does not say why:\n{status}"
    assert TOKEN not in status
    duckdns.set_mode("ok")
    result = harness.wait_service_run(c, after=1, timeout=90)
    assert result["Result"] == "success", result
    assert duckdns.updates()[-1]["query"]["token"] == TOKEN
    assert harness.token_leaks(c, TOKEN) == []


def test_wrong_clock_gives_the_documented_message(container, duckdns, deb):
    """Scenario 6b: the updater under libfaketime a year back (the machine's clock, which
    the container shares, is never touched)."""
    c = container
    install(c, deb)
    proc = c.exec(["faketime", "-f", "-365d", "duckdns", "update", "--force"], check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 75, out
    assert "clock" in out and "not yet valid" in out, out
    assert TOKEN not in out


def test_world_readable_config_fails_with_78(container, duckdns, deb):
    """Scenario 6c: an invalid config (group/other can read it) is refused, visibly."""
    c = container
    install(c, deb)
    c.exec(["chmod", "0644", CONF])
    # A timer run (OnBootSec=30) may have updated before the chmod on a slow machine.
    sent = len(duckdns.updates())
    c.exec(["systemctl", "start", "duckdns.service"], check=False)
    status = c.exec(
        ["systemctl", "status", "--no-pager", "-n", "20", "duckdns.service"], check=False
    ).stdout
    assert "status=78" in status, status
    assert TOKEN not in status
    assert len(duckdns.updates()) == sent
