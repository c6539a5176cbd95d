"""Booted: an upgrade or a dpkg-reconfigure while a run waits for DuckDNS's answer lets that
run finish; a remove still stops it.

Both restart duckdns.timer (dh_installsystemd's postinst snippet). The updater records an
attempt before it sends it, and the next run counts one that was stopped before DuckDNS
answered as a failed attempt ("the previous run was stopped before DuckDNS answered", the
backoff, a "down" alert). So a run in flight must be neither stopped nor restarted by
either, and an upgrade must not replace the updater's files under it (it imports some
modules only when it needs them): preinst stops the timers and waits for the run to end,
postinst starts the timer again.

The look-alike holds its answer ``HOLD`` seconds (``slow:`` mode, tests/support/
duckdns_server.py), below the updater's bound of one try (10 s, duckdns/api.py), so the
run in flight is a healthy one that DuckDNS answers. No timing guesses about a loaded
machine: the timer is given nothing to run during the test, the run is started when the
upgrade or the reconfigure has reached a gate (apt's ``DPkg::Pre-Invoke``, just before dpkg
runs preinst; ``policy-rc.d``, which deb-systemd-invoke asks before postinst's restart of
the timer), and the gate opens once DuckDNS holds the run's request.
"""

from __future__ import annotations

import json
import re
import subprocess
import time

import harness
import pytest
from harness import TEST_DIR_IN_CONTAINER
from support.helpers import CANARY as TOKEN
from support.helpers import assert_no_canary

HOLD = 8  # s: how long the look-alike holds its answer (< the updater's 10 s per try)
SLACK = 3  # s: a loaded 2-core machine
STATE = "var/lib/private/duckdns/state.json"
STOPPED = "the previous run was stopped before DuckDNS answered"
WAITING = "duckdns: waiting for the update in progress to end"
ENV = {"DEBIAN_FRONTEND": "noninteractive"}
# The shipped schedule replaced (an empty On*Sec= resets them all, systemd.timer(5)) by one
# that starts no run during the test: the test starts the runs it needs.
IDLE_TIMER = "[Timer]\nOnBootSec=\nOnActiveSec=1h\nOnUnitActiveSec=1h\nRandomizedDelaySec=0\n"
# Reached, then held until the test opens it (60 s at most). As policy-rc.d (invoke-rc.d's
# interface: unit and action as arguments, 0 = go ahead), only the timer's restart.
GATE = f"""#!/bin/sh
[ -z "$2" ] || [ "$1 $2" = "duckdns.timer restart" ] || exit 0
touch {TEST_DIR_IN_CONTAINER}/gate.reached
i=0
while [ ! -e {TEST_DIR_IN_CONTAINER}/gate.open ] && [ $i -lt 120 ]; do
    sleep 0.5
    i=$((i + 1))
done
"""


def pid1_says(c: harness.Container, unit: str = "duckdns.service") -> list[tuple[float, str]]:
    """(wall-clock time, message) of what PID 1 logged about ``unit``."""
    out = c.exec(["journalctl", "--no-pager", "-o", "json", "_PID=1", "-u", unit]).stdout
    entries = [json.loads(line) for line in out.splitlines() if line.strip()]
    return [(int(e["__REALTIME_TIMESTAMP"]) / 1e6, str(e.get("MESSAGE", ""))) for e in entries]


def times(log: list[tuple[float, str]], pattern: str) -> list[float]:
    return [t for t, message in log if re.search(pattern, message)]


def updater_says(c: harness.Container) -> str:
    """What the updater itself logged (SyslogIdentifier=duckdns)."""
    return c.exec(["journalctl", "--no-pager", "-o", "cat", "-t", "duckdns"]).stdout


def installed(c: harness.Container, duckdns: harness.DuckDNS, deb) -> list[str]:
    """A preseeded install whose timer starts no run; DuckDNS holds its answers."""
    c.write("/etc/systemd/system/duckdns.timer.d/test-idle.conf", IDLE_TIMER)
    duckdns.set_mode(f"slow:{HOLD}")
    harness.preseed(c, domains="piserver", token=TOKEN, ipv6=False)
    install = c.install_deb(deb)
    return [install.stdout, install.stderr]


def through_the_gate(c: harness.Container, duckdns: harness.DuckDNS, cmd: list[str]):
    """Start ``cmd``; once it reaches the gate, start a run, and open the gate when DuckDNS
    holds that run's request. The command's process, the run's invocation id, the time
    the gate opened."""
    proc = subprocess.Popen(
        [*c.nsenter(env=ENV), *cmd],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        c.wait_for((c.hostdir / "gate.reached").exists, 120, what=f"{cmd[0]} at the gate")
        sent = len(duckdns.updates())
        c.exec(["systemctl", "start", "--no-block", "duckdns.service"])
        duckdns.wait_requests(sent + 1, 30)
        flight = harness.service_show(c, "duckdns.service", "ActiveState", "InvocationID")
        assert flight["ActiveState"] == "activating", flight
        opened = time.time()
        (c.hostdir / "gate.open").touch()
    except BaseException:
        proc.kill()
        raise
    return proc, flight["InvocationID"], opened


def finish(proc: subprocess.Popen) -> tuple[str, float]:
    try:
        out, err = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    ended = time.time()
    assert proc.returncode == 0, out + err
    return out + err, ended


def assert_the_run_finished_and_the_next_counts_no_failure(
    c, duckdns, invocation, next_sends: int = 0
) -> str:
    """The run in flight got its answer and ended well, never stopped nor restarted; the
    next run says nothing of a stopped run, counts no failure and sends ``next_sends``
    requests."""
    c.wait_for(
        lambda: (
            harness.service_show(c, "duckdns.service", "ActiveState")["ActiveState"]
            not in ("activating", "deactivating")
        ),
        HOLD + 30,
        what="the run in flight to end",
    )
    ran = harness.service_show(c, "duckdns.service", "Result", "InvocationID")
    pid1 = pid1_says(c)
    text = "\n".join(m for _, m in pid1) + "\n" + updater_says(c)
    assert ran["InvocationID"] == invocation, f"the run in flight was restarted:\n{text}"
    assert ran["Result"] == "success", text
    c.exec(["systemctl", "start", "duckdns.service"])  # the next run, waited for
    pid1 = pid1_says(c)
    text = "\n".join(m for _, m in pid1) + "\n" + updater_says(c)
    assert not times(pid1, r"status=15/TERM|^Stopp(ed|ing) |Failed"), text
    assert len(times(pid1, r"^Finished ")) == 2, text
    assert STOPPED not in text, text
    state = json.loads((c.root / STATE).read_text())
    assert state["in_flight"] is None and state["failures"] == 0, state
    # The held request, answered, and what the next run had to send.
    updates = duckdns.updates()
    assert len(updates) == 1 + next_sends, (updates, text)
    assert {u["query"]["token"] for u in updates} == {TOKEN}
    return text


def assert_no_token_leak(c: harness.Container, outputs: list[str]) -> None:
    assert_no_canary(*outputs, c.journal(), where="the outputs or the journal")
    assert harness.token_leaks(c, TOKEN) == []


def upgrade_with_a_run_in_flight(
    c, duckdns, first, deb, next_sends: int = 0
) -> tuple[list[str], float, float, float]:
    """``first`` installed, then ``deb`` installed over it (apt, as an admin or
    unattended-upgrades does) while a run waits for DuckDNS: the run ends well, the next
    counts no failure, preinst said it waited. The outputs, when dpkg was let go, when
    the run ended, when the upgrade did."""
    outputs = installed(c, duckdns, first)
    (c.hostdir / "gate").write_text(GATE)
    (c.hostdir / "gate").chmod(0o755)
    hook = f'DPkg::Pre-Invoke {{ "{TEST_DIR_IN_CONTAINER}/gate"; }};\n'
    c.write("/etc/apt/apt.conf.d/99duckdns-test-gate", hook)
    upgrade = ["apt-get", "install", "--reinstall", "-y", f"/root/{deb.name}"]
    c.copy_in(deb, f"/root/{deb.name}")
    proc, invocation, opened = through_the_gate(c, duckdns, upgrade)
    out, ended = finish(proc)
    c.exec(["rm", "/etc/apt/apt.conf.d/99duckdns-test-gate"])
    outputs.append(out)
    text = assert_the_run_finished_and_the_next_counts_no_failure(
        c, duckdns, invocation, next_sends
    )
    version = c.exec(["dpkg-query", "-W", "-f=${Version}", "duckdns"]).stdout
    assert deb.name.startswith(f"duckdns_{version}_"), (version, deb.name)
    # preinst met the run in flight and waited for it; postinst started the timer again.
    assert WAITING in out, out
    finished = times(pid1_says(c), r"^Finished ")[0]
    assert opened < finished < ended, (opened, finished, ended, text)
    timer = harness.service_show(c, "duckdns.timer", "ActiveState")
    assert timer == {"ActiveState": "active"}, timer
    return outputs, opened, finished, ended


@pytest.mark.both_suites
def test_an_upgrade_waits_for_the_run_in_flight(container, duckdns, deb):
    """A reinstall of this build (preinst "upgrade"): once the run ended, it takes no
    longer than a reinstall with nothing in flight."""
    c = container
    outputs, opened, finished, ended = upgrade_with_a_run_in_flight(c, duckdns, deb, deb)
    began = time.time()
    idle = c.exec(["apt-get", "install", "--reinstall", "-y", f"/root/{deb.name}"], env=ENV)
    idle_took = time.time() - began
    outputs += [idle.stdout, idle.stderr]
    assert WAITING not in idle.stdout + idle.stderr
    assert ended - finished <= idle_took + SLACK, (ended - finished, idle_took)
    # A policy-rc.d that forbids every action (as image builds use): preinst leaves the
    # timer alone, since postinst's restart, refused too, would not start it again.
    c.write("/usr/sbin/policy-rc.d", "#!/bin/sh\nexit 101\n", mode=0o755)
    forbidden = c.exec(["apt-get", "install", "--reinstall", "-y", f"/root/{deb.name}"], env=ENV)
    c.exec(["rm", "/usr/sbin/policy-rc.d"])
    outputs += [forbidden.stdout, forbidden.stderr]
    timer = harness.service_show(c, "duckdns.timer", "ActiveState")
    assert timer == {"ActiveState": "active"}, (timer, forbidden.stdout + forbidden.stderr)
    assert_no_token_leak(c, outputs)
    harness.log(
        f"[system] upgrade with a run in flight: {ended - opened:.1f} s from dpkg's start, "
        f"{ended - finished:.1f} s after the run ended; a reinstall with nothing in "
        f"flight {idle_took:.1f} s"
    )


@pytest.mark.both_suites
def test_an_upgrade_from_the_previous_release_waits_for_the_run_in_flight(
    container, duckdns, deb, previous_deb
):
    """The duckdns.service of releases up to 1.0.x, still the one systemd has loaded when
    the new preinst runs, has PartOf=duckdns.timer: preinst's stop of the timer must not
    stop the run with it. (This build's first run after 1.0.0's first update sends one
    more update, as measured here: the updater's matter, not the upgrade's.)"""
    outputs, *_ = upgrade_with_a_run_in_flight(container, duckdns, previous_deb, deb, 1)
    assert_no_token_leak(container, outputs)


@pytest.mark.both_suites
def test_a_reconfigure_leaves_the_run_in_flight_alone(container, duckdns, deb):
    c = container
    outputs = installed(c, duckdns, deb)
    c.write("/usr/sbin/policy-rc.d", GATE, mode=0o755)
    proc, invocation, opened = through_the_gate(c, duckdns, ["dpkg-reconfigure", "duckdns"])
    out, ended = finish(proc)
    outputs.append(out)
    c.exec(["rm", "/usr/sbin/policy-rc.d"])
    # The timer was restarted while the run was in flight.
    restarted = times(pid1_says(c, "duckdns.timer"), r"^Started ")[-1]
    assert opened <= restarted < ended, (opened, restarted, ended)
    assert_the_run_finished_and_the_next_counts_no_failure(c, duckdns, invocation)
    finished = times(pid1_says(c), r"^Finished ")[0]
    assert restarted < finished, (restarted, finished)
    assert WAITING not in out, out
    assert_no_token_leak(c, outputs)
    harness.log(
        f"[system] dpkg-reconfigure: the timer restarted {finished - restarted:.1f} s "
        "before the run in flight ended"
    )


@pytest.mark.both_suites
def test_a_remove_stops_the_run_in_flight(container, duckdns, deb):
    """What PartOf=duckdns.timer gave: no run goes on while dpkg deletes its files."""
    c = container
    outputs = installed(c, duckdns, deb)
    c.exec(["systemctl", "start", "--no-block", "duckdns.service"])
    duckdns.wait_requests(1, 30)
    began = time.time()
    remove = c.exec(["apt-get", "remove", "-y", "duckdns"], env=ENV)
    took = time.time() - began
    outputs += [remove.stdout, remove.stderr]
    pid1 = pid1_says(c)
    text = "\n".join(m for _, m in pid1)
    assert times(pid1, r"status=15/TERM"), text
    assert times(pid1, r"^Stopped "), text
    assert not times(pid1, r"^Finished "), text
    service = harness.service_show(c, "duckdns.service", "ActiveState")["ActiveState"]
    assert service in ("inactive", "failed"), service
    assert len(duckdns.updates()) == 1
    assert_no_token_leak(c, outputs)
    harness.log(f"[system] remove with a run in flight: {took:.1f} s")
