"""Booted: the unit's time limit ends a run hung on a dribbling server, and the timer goes on.

The program bounds every exchange itself (duckdns/deadline.py; a DuckDNS request at 30 s,
retries included); ``TimeoutStartSec=`` in duckdns.service is the last line of defence for
whatever those bounds cannot end (a host name lookup glibc keeps restarting, a bug). To
make a run outlive its own bounds here, an admin's drop-in lowers the unit's limit below
them (``TimeoutStartSec=8s``), and ``www.duckdns.org`` is the hostile server
(tests/support/hostile_server.py, ``dribble-body``: headers at once, then a body byte a second for
an hour). A timer drop-in runs the service 2 s after the timer starts, then 15 s after each
start.

What must happen: systemd ends the hung run at its limit (SIGTERM: Python ends at once),
the next timer run goes ahead on schedule, says once that the previous run was stopped
before DuckDNS answered and counts it as a failed attempt, so nothing is sent before the
backoff's wait (1 minute after the stopped run began) is over; then, DuckDNS answering
again (the look-alike back on port 443), the update goes through and the failure streak
ends. Nothing leaves the container.
"""

from __future__ import annotations

import json
import re
import shutil
import time

import harness
from harness import TEST_DIR_IN_CONTAINER, TESTS
from support.helpers import CANARY as TOKEN
from support.helpers import assert_no_canary

LIMIT = 8  # s: the drop-in's TimeoutStartSec=, below the program's own 30 s bound
INTERVAL = 15  # s: OnUnitActiveSec= of the test's timer
FIRST_WAIT = 60  # s: the backoff's wait after a first failed attempt (duckdns/backoff.py)
SLACK = 3  # s: systemd's timer accuracy (1 s) and a loaded 2-core machine
SERVICE_DROPIN = f"[Service]\nTimeoutStartSec={LIMIT}s\n"


def _shipped(key: str) -> int:
    """A time in seconds, as debian/duckdns.service sets it (``Key=N``)."""
    text = (harness.REPO / "debian/duckdns.service").read_text()
    return int(re.search(rf"^{key}=(\d+)$", text, re.M).group(1))


def _shipped_size(key: str) -> int:
    """A size in bytes, as debian/duckdns.service sets it (``Key=NM``)."""
    text = (harness.REPO / "debian/duckdns.service").read_text()
    return int(re.search(rf"^{key}=(\d+)M$", text, re.M).group(1)) << 20


def _shown(seconds: int) -> str:
    """How systemctl show writes a time span: "2min 20s", "2min", "10s"."""
    minutes, rest = divmod(seconds, 60)
    return " ".join(
        f for f in (f"{minutes}min" if minutes else "", f"{rest}s" if rest else "") if f
    )


# As harness.FAST_TIMER (the shipped schedule replaced, not added to), every 15 s.
# The shipped random delay reset too: the runs come on a schedule the test can time.
TIMER_DROPIN = (
    f"[Timer]\nOnBootSec=\nOnActiveSec=2s\nOnUnitActiveSec={INTERVAL}s\nAccuracySec=1s\n"
    "RandomizedDelaySec=0\n"
)
STATE = "var/lib/private/duckdns/state.json"
STOPPED = "the previous run was stopped before DuckDNS answered"


def start_hostile(c: harness.Container, duckdns: harness.DuckDNS, mode: str) -> str:
    """tests/support/hostile_server.py on 127.0.0.1:443 in place of the look-alike, with its
    certificate (trusted inside, for www.duckdns.org); the transient unit's name."""
    shutil.copy2(TESTS / "support" / "hostile_server.py", c.hostdir / "hostile_server.py")
    ready = c.hostdir / "hostile.ready"
    unit = "duckdns-test-hostile.service"

    def inside(path) -> str:
        return f"{TEST_DIR_IN_CONTAINER}/{path.relative_to(c.hostdir)}"

    argv = ["python3", inside(c.hostdir / "hostile_server.py"), "--cert", inside(duckdns.cert)]
    argv += ["--key", inside(duckdns.key), "--host", "127.0.0.1", "--port", "443"]
    argv += ["--mode", mode, "--ready-file", inside(ready)]
    c.serve(unit, argv, ready.exists, f"the hostile server ({mode})")
    return unit


def events(c: harness.Container, *match: str) -> list[tuple[float, str]]:
    """(wall-clock time, message) of the journal entries that match, oldest first."""
    out = c.exec(["journalctl", "--no-pager", "-o", "json", *match]).stdout
    entries = (json.loads(line) for line in out.splitlines() if line.strip())
    return [(int(e["__REALTIME_TIMESTAMP"]) / 1e6, str(e.get("MESSAGE", ""))) for e in entries]


def systemd_says(c: harness.Container) -> list[tuple[float, str]]:
    """What PID 1 logged about duckdns.service."""
    return events(c, "_PID=1", "-u", "duckdns.service")


def updater_says(c: harness.Container) -> list[tuple[float, str]]:
    """What the updater itself logged (SyslogIdentifier=duckdns)."""
    return events(c, "-t", "duckdns")


def times(log: list[tuple[float, str]], pattern: str) -> list[float]:
    rx = re.compile(pattern)
    return [t for t, message in log if rx.search(message)]


def test_a_run_hung_on_a_dribbling_server_is_ended_and_the_timer_goes_on(container, duckdns, deb):
    c = container
    began = time.monotonic()
    duckdns.stop()
    hostile = start_hostile(c, duckdns, "dribble-body")
    c.write("/etc/systemd/system/duckdns.timer.d/test-fast.conf", TIMER_DROPIN)
    c.write("/etc/systemd/system/duckdns.service.d/test-timeout.conf", SERVICE_DROPIN)
    harness.preseed(c, domains="piserver", token=TOKEN, ipv6=False)
    install = c.install_deb(deb)  # starts the timer: the first run 2 s later
    outputs = [install.stdout, install.stderr]
    limit = harness.service_show(c, "duckdns.service", "TimeoutStartUSec")["TimeoutStartUSec"]
    assert limit == f"{LIMIT}s", limit

    # 1-2. The first run hangs on the dribble until systemd ends it at the unit's limit.
    c.wait_for(
        lambda: times(systemd_says(c), r"Failed with result 'timeout'"),
        LIMIT + 60,
        what="systemd to end the hung run for its time limit",
    )
    # DuckDNS answers again from here on: the look-alike back in the hostile server's place.
    c.exec(["systemctl", "stop", hostile])
    duckdns.start()

    # 3. The next timer runs go ahead; the first of them after the backoff's wait updates.
    c.wait_for(
        lambda: times(updater_says(c), r"^updates work again after"),
        INTERVAL + FIRST_WAIT + 60,
        what="the update after the stopped run ('updates work again')",
    )
    pid1, ours = systemd_says(c), updater_says(c)
    starts = times(pid1, r"^Starting (duckdns\.service\b|DuckDNS dynamic DNS update)")
    timed_out = times(pid1, r"^duckdns\.service: start operation timed out\. Terminating\.$")
    failed = times(pid1, r"^duckdns\.service: Failed with result 'timeout'\.$")
    sigterm = times(pid1, r"^duckdns\.service: Main process exited, code=killed, status=15/TERM")
    text = "\n".join(m for _, m in pid1 + ours)
    assert len(timed_out) == len(failed) == len(sigterm) == 1, text  # the hung run only
    assert len(starts) >= 3, text
    killed_after = failed[0] - starts[0]
    # Ended at the limit: SIGTERM ends Python at once (no SIGKILL TimeoutStopSec= later).
    assert LIMIT - 0.5 <= killed_after <= LIMIT + SLACK, text
    later = [t for t in starts if t > failed[0]]
    next_after = later[0] - failed[0]
    # On the timer's schedule (15 s after the hung run's start), not blocked by it.
    assert later[0] - starts[0] <= INTERVAL + SLACK, text

    # The stopped run reported once, by the next run, as a failed attempt with its wait.
    reported = [(t, m) for t, m in ours if STOPPED in m]
    assert len(reported) == 1, text
    assert later[0] <= reported[0][0] < (later[1] if len(later) > 1 else float("inf")), text
    assert re.search(rf"{STOPPED}; next attempt (in \d+ s|now)$", reported[0][1]), text
    # The backoff held: the first request after the stopped run came once its wait was
    # over (counted from the stopped run's start), from a timer run, and it worked.
    updates = duckdns.updates()
    assert updates, "no update request reached DuckDNS"
    first = updates[0]["time"]
    assert first >= starts[0] + FIRST_WAIT - 1, (first - starts[0], text)
    assert first <= starts[0] + FIRST_WAIT + INTERVAL + SLACK, (first - starts[0], text)
    assert updates[0]["query"]["token"] == TOKEN
    recovered = times(ours, r"^updates work again after .*, 1 failed attempt$")
    assert len(recovered) == 1, text
    state = json.loads((c.root / STATE).read_text())
    assert state["in_flight"] is None and state["failures"] == 0, state
    last = harness.service_show(c, "duckdns.service", "Result")
    assert last["Result"] == "success", last
    status = c.exec(["duckdns", "status"])
    outputs += [status.stdout, status.stderr]

    # 5. Without the test's drop-in, the shipped unit's own limits are in force.
    c.exec(["rm", "/etc/systemd/system/duckdns.service.d/test-timeout.conf"])
    c.exec(["systemctl", "daemon-reload"])
    shipped = harness.service_show(c, "duckdns.service", "TimeoutStartUSec", "TimeoutStopUSec")
    assert shipped == {
        "TimeoutStartUSec": _shown(_shipped("TimeoutStartSec")),
        "TimeoutStopUSec": _shown(_shipped("TimeoutStopSec")),
    }, shipped

    # 4. The token is nowhere: outputs, journal, files.
    assert_no_canary(*outputs, c.journal(), where="the outputs or the journal")
    assert harness.token_leaks(c, TOKEN) == []
    harness.log(
        f"[system] hung run: ended {killed_after:.1f} s after its start (limit {LIMIT} s); "
        f"next timer run {next_after:.1f} s after that; first request "
        f"{first - starts[0]:.1f} s after the hung run's start; "
        f"test {time.monotonic() - began:.0f} s"
    )


# What the kernel's OOM killer sends the process MemoryMax= picks (cgroup v2,
# Documentation/admin-guide/cgroup-v2.rst, "memory.max"): SIGKILL, no chance to clean up.
OOM_PROBE = ["python3", "-c", "x = bytearray(200 << 20)"]


def memory_limits_enforced(c: harness.Container) -> bool:
    """Whether a unit's MemoryMax= is enforced in this container: not under a cgroup v1
    host (this test machine's: systemd-nspawn leaves the container no memory controller,
    and a 200 MiB allocation under MemoryMax=30M lives, measured)."""
    probe = ["systemd-run", "-q", "--wait", "-p", "MemoryMax=30M", "-p", "MemorySwapMax=0"]
    return c.exec([*probe, *OOM_PROBE], check=False).returncode != 0


def test_a_run_killed_for_its_memory_is_counted_like_one_stopped_for_its_time(
    container, duckdns, deb
):
    """A run in flight (hung on a dribbling DuckDNS) is killed the way MemoryMax= kills:
    lowered below what the run holds where the cgroup enforces it, else SIGKILL from
    systemd, what the OOM killer sends. The next timer run says once that the previous
    run was stopped before DuckDNS answered and counts it as a failed attempt: nothing is
    sent before the backoff's wait (from the killed run's start) is over."""
    c = container
    duckdns.stop()
    hostile = start_hostile(c, duckdns, "dribble-body")
    c.write("/etc/systemd/system/duckdns.timer.d/test-fast.conf", TIMER_DROPIN)
    harness.preseed(c, domains="piserver", token=TOKEN, ipv6=False)
    install = c.install_deb(deb)  # starts the timer: the first run 2 s later
    outputs = [install.stdout, install.stderr]
    shipped = harness.service_show(c, "duckdns.service", "MemoryMax")
    assert shipped == {"MemoryMax": str(_shipped_size("MemoryMax"))}, shipped

    def in_flight() -> bool:
        path = c.root / STATE
        return path.exists() and json.loads(path.read_text()).get("in_flight") is not None

    c.wait_for(in_flight, 60, what="the first run in flight on the dribbling server")
    real = memory_limits_enforced(c)
    if real:  # below what the run holds: the kernel kills it at once
        c.exec(["systemctl", "set-property", "--runtime", "duckdns.service", "MemoryMax=4M"])
    else:
        # The process the OOM killer picks: the run's only one while it talks to DuckDNS.
        c.exec(["systemctl", "kill", "--kill-whom=main", "--signal=SIGKILL", "duckdns.service"])
    c.wait_for(
        lambda: times(systemd_says(c), r"Failed with result '(oom-kill|signal)'"),
        30,
        what="systemd to see the killed run",
    )
    if real:
        c.exec(["systemctl", "revert", "duckdns.service"])
    c.exec(["systemctl", "stop", hostile])
    duckdns.start()
    c.wait_for(
        lambda: times(updater_says(c), r"^updates work again after"),
        INTERVAL + FIRST_WAIT + 60,
        what="the update after the killed run ('updates work again')",
    )
    pid1, ours = systemd_says(c), updater_says(c)
    text = "\n".join(m for _, m in pid1 + ours)
    starts = times(pid1, r"^Starting (duckdns\.service\b|DuckDNS dynamic DNS update)")
    killed = times(pid1, r"Failed with result '(oom-kill|signal)'")
    assert len(killed) == 1 and not times(pid1, r"Failed with result 'timeout'"), text
    reported = [(t, m) for t, m in ours if STOPPED in m]
    assert len(reported) == 1 and reported[0][0] > killed[0], text
    updates = duckdns.updates()
    assert updates, "no update request reached DuckDNS"
    assert updates[0]["time"] >= starts[0] + FIRST_WAIT - 1, (updates[0]["time"] - starts[0], text)
    assert len(times(ours, r"^updates work again after .*, 1 failed attempt$")) == 1, text
    state = json.loads((c.root / STATE).read_text())
    assert state["in_flight"] is None and state["failures"] == 0, state
    status = c.exec(["duckdns", "status"])
    assert_no_canary(*outputs, status.stdout, status.stderr, c.journal(), where="the outputs")
    assert harness.token_leaks(c, TOKEN) == []
    harness.log(
        f"[system] run killed in flight ({'MemoryMax=' if real else 'SIGKILL: no memory cgroup'}"
        f"): first request {updates[0]['time'] - starts[0]:.1f} s after its start"
    )
