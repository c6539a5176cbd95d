"""Scenario 12: the package on the Pi's own architectures, booted.

A Debian 13 (trixie) arm64 VM, and an armhf root booted on the same arm64 kernel (the
32-bit Raspberry Pi OS layout on a Pi 3/4/5), under full-system emulation with no
network device (see vm.py and tests/system/README.md). Inside each, as on a Pi: the
.deb installs with preseeded answers (the canary token), the timer runs the hardened
service as the dynamic user and it updates the test DuckDNS server (www.duckdns.org
inside, over TLS with the test CA in the trust store), ``duckdns update --force`` runs
under the unit's own settings, ``systemd-analyze security`` gives the amd64 exposure,
the token is nowhere but the config file, and purge leaves nothing.

The seccomp hole of the 32-bit layout: an armhf systemd's filters only know the 32-bit
ARM ABI, so a 64-bit binary escapes ``SystemCallFilter=``, ``SystemCallArchitectures=``
and ``RestrictAddressFamilies=``. The shipped unit's ``NoExecPaths=/`` +
``ExecPaths=/usr`` keeps the service from executing anything it could have written
(its state directory, /tmp, /var/tmp, /dev/shm); the probe below shows both the escape
(without those two lines) and the closed door (the shipped unit).

One boot per architecture runs the whole scenario (vm_scenario.py: the script inside,
and the boots, which start in the background as soon as the VM caches exist); the
results come back on the VM's second disk and each assertion is its own test below, so
a failure says which property broke.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import harness
import pytest
import vm
import vm_scenario
from harness import CONF
from support.helpers import CANARY as TOKEN
from support.helpers import skip_or_fail
from vm_scenario import LIB

MAX_EXPOSURE = 1.1  # as tests/package/test_units.py and test_hardening.py


@pytest.fixture(scope="session")
def vm_env(system_env):
    problem = vm.environment_problem()
    if problem:
        skip_or_fail(problem)


@pytest.fixture(params=vm.ARCHES)
def booted(request, vm_env, deb):
    arch = request.param
    out, results = vm_scenario.results(arch, deb)
    if results.get("done") != "yes":
        scenario = (out / "scenario.log").read_text(errors="replace")[-6000:]
        console = (out / "console.log").read_text(errors="replace")[-6000:]
        pytest.fail(
            f"the {arch} scenario did not finish: {results}\n--- scenario ---\n{scenario}\n"
            f"--- console ---\n{console}",
            pytrace=False,
        )
    return arch, out, results


def _requests(path: Path) -> list[dict]:
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    return [r for r in map(json.loads, filter(None, lines)) if r["path"] == "/update"]


def _journal(out: Path) -> str:
    return (out / "journal.txt").read_text(errors="replace")


def test_it_is_the_architecture_booted(booted):
    arch, out, r = booted
    assert r["arch"] == arch
    assert r["machine"] == "aarch64"  # the kernel, for both
    assert r["python_elf"] == {"arm64": "02 b7", "armhf": "01 28"}[arch], r
    assert r["boot_state"] in ("running", "degraded"), r
    # No network device at all: only the loopback.
    assert r["net_links"].split() == ["lo"], r["net_links"]
    assert r["server_ready"] == "yes", (out / "server.log").read_text(errors="replace")


def test_preseeded_install(booted):
    arch, out, r = booted
    log = (out / "install.log").read_text(errors="replace")
    assert r["install_rc"] == "0", log
    assert TOKEN not in log
    assert r["conf_mode"] == "600", r


def test_timer_runs_the_service_as_the_dynamic_user(booted):
    arch, out, r = booted
    assert r["timer_trigger"] not in ("", "n/a", "0"), "the timer never fired"
    assert (r["timer_result"], r["timer_code"], r["timer_status"]) == ("success", "1", "0"), r
    # The lines the service printed came from a dynamic user's process.
    uids = [int(u) for u in r["service_uids"].split()]
    assert len(uids) == 1 and uids[0] in harness.DYNAMIC_UIDS, r
    # systemd 257 keeps the state directory owned by nobody on disk and mounts it
    # idmapped for the service (measured; systemd 252 chowns it to the dynamic user).
    assert int(r["state_uid"]) in [*harness.DYNAMIC_UIDS, 65534], r
    updates = _requests(out / "requests-after-timer.jsonl")
    assert len(updates) >= 1, updates  # the timer's first run (a slow one may be followed)
    assert updates[0]["query"]["token"] == TOKEN
    assert updates[0]["query"]["domains"] == "piserver"


def test_forced_update_under_the_units_settings(booted):
    """requests + TLS under SystemCallFilter= on this architecture: no SIGSYS."""
    arch, out, r = booted
    assert r["force_start_rc"] == "0", r
    assert (r["force_result"], r["force_code"], r["force_status"]) == ("success", "1", "0"), r
    before = _requests(out / "requests-before-force.jsonl")
    after = _requests(out / "requests-after-force.jsonl")
    assert len(after) == len(before) + 1, (before, after)
    assert after[-1]["query"]["token"] == TOKEN


def test_journal_has_no_sigsys_and_no_traceback(booted):
    arch, out, r = booted
    journal = _journal(out)
    assert "status=31/SYS" not in journal
    # duckdns-oom.service is killed on purpose (test_a_run_killed_by_its_memory_limit...).
    others = "\n".join(line for line in journal.splitlines() if "duckdns-oom" not in line)
    assert "code=killed" not in others
    assert "Traceback" not in journal
    assert re.search(r"duckdns\[\d+\]", journal), "the service said nothing in the journal"


def _exposure(text: str) -> float:
    m = re.search(r"Overall exposure level for duckdns\.service: ([0-9.]+)", text)
    assert m, text[-2000:]
    return float(m.group(1))


def _amd64_exposure() -> float:
    """The offline score of the shipped unit by the host's (amd64) systemd-analyze."""
    unit = harness.REPO / "debian/duckdns.service"
    out = harness.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(unit)], check=False
    ).stdout
    return _exposure(out)


def test_security_exposure_is_the_amd64_one(booted):
    arch, out, r = booted
    live = _exposure((out / "security-live.txt").read_text())
    offline = _exposure((out / "security-offline.txt").read_text())
    assert live == offline, (live, offline)
    assert live <= MAX_EXPOSURE, (out / "security-live.txt").read_text()
    assert live == _amd64_exposure(), (live, _amd64_exposure())


def _probe(out: Path, unit: str) -> dict[str, str]:
    return vm.probe_lines(_journal(out), unit)


def _unix_line_arrived(out: Path, unit: str, who: str) -> bool:
    """Whether the probe's ``logger`` line (an AF_UNIX datagram) reached the journal."""
    return f"duckdns-probe-unix-{unit}-{who}[" in _journal(out)


WRITABLE = ("/var/lib/duckdns", "/var/lib/private/duckdns", "/tmp", "/var/tmp", "/dev/shm")


def test_probe_controls(booted):
    """Outside any unit, both busyboxes' renice and logger work: a "no" in the probes
    below is the sandbox's doing, not a missing applet."""
    arch, out, r = booted
    assert r[f"control-renice:{LIB}/busybox-drop"] == "ok", r
    assert r["control-renice:/usr/bin/busybox"] == "ok", r
    assert _journal(out).count("duckdns-probe-control[") == 2


def test_service_cannot_execute_what_it_can_write(booted):
    """The shipped unit: a binary dropped into $STATE_DIRECTORY, /tmp, /var/tmp or
    /dev/shm cannot be executed (on armhf: the 64-bit binary that would escape the
    filters); /run and /dev/mqueue are not writable at all."""
    arch, out, r = booted
    assert r["duckdns-probe-shipped"] == "success", r
    probe = _probe(out, "duckdns-probe-shipped")
    assert probe, _journal(out)[-3000:]
    for d in WRITABLE:  # $STATE_DIRECTORY is /var/lib/duckdns (a link, DynamicUser=)
        assert probe[f"exec:{d}"] == "denied", (d, probe)
    for d in ("/run", "/dev/mqueue"):
        assert probe[f"exec:{d}"] == "cannot-write", (d, probe)
    assert probe["drop-runs-from"] == "nowhere", probe
    assert probe["ran:drop"] == "no", probe
    # The native binaries stay under the filters.
    assert probe["setpriority:native-usr"] == "no", probe
    assert not _unix_line_arrived(out, "shipped", "native-usr")
    # What NoExecPaths= cannot close (docs/packaging.md): on armhf, an arm64 binary that
    # is already in /usr (here /usr/local, put there by the test) escapes the filters.
    escaped = arch == "armhf"
    assert probe["setpriority:foreign-usr"] == ("yes" if escaped else "no"), probe
    assert _unix_line_arrived(out, "shipped", "foreign-usr") is escaped


def test_what_the_exec_lines_close(booted):
    """The same probe without NoExecPaths=/ExecPaths=: the dropped binary runs from a
    writable place. On armhf it is a 64-bit binary and escapes SystemCallFilter=
    (setpriority) and RestrictAddressFamilies= (AF_UNIX); on arm64 the filters hold."""
    arch, out, r = booted
    assert r["duckdns-probe-noexecpaths-removed"] == "success", r
    probe = _probe(out, "duckdns-probe-noexecpaths-removed")
    assert probe["drop-runs-from"] != "nowhere", probe
    assert probe["ran:drop"] == "yes", probe
    escaped = arch == "armhf"
    assert probe["setpriority:drop"] == ("yes" if escaped else "no"), probe
    assert _unix_line_arrived(out, "removed", "drop") is escaped
    assert probe["setpriority:native-usr"] == "no", probe
    assert not _unix_line_arrived(out, "removed", "native-usr")


def test_token_only_in_the_config_file(booted):
    arch, out, r = booted
    assert (out / "leaks-root").read_text().split() == [CONF]
    assert (out / "leaks-run").read_text().split() == []
    assert r["journal_token_lines"] == "0"
    for path in out.iterdir():
        if path.is_file() and not path.name.startswith("requests"):
            assert TOKEN.encode() not in path.read_bytes(), path.name


def test_purge_leaves_nothing(booted):
    arch, out, r = booted
    assert r["purge_rc"] == "0", (out / "purge.log").read_text(errors="replace")
    before = set((out / "files-before").read_text().splitlines())
    after = set((out / "files-after").read_text().splitlines())
    noise = ("/var/log/", "/var/cache/", "/var/lib/dpkg/", "/var/lib/apt/")
    assert sorted(p for p in after - before if not p.startswith(noise)) == []
    assert sorted(p for p in before - after if not p.startswith(noise)) == []
    assert (out / "debconf-after").read_text().strip() == ""
    assert (out / "debconf-dbs-after").read_text().strip() == ""
    assert (out / "leaks-after-purge").read_text().split() == []


def test_a_run_killed_by_its_memory_limit_is_counted_by_the_next(booted):
    """MemoryMax= enforced by the kernel (cgroup v2 in the VM): a run in flight, waiting
    on a DuckDNS that does not answer, is killed when the unit's memory limit drops below
    what it uses; the next run says so once and counts it, like a run the time limit
    stopped (test_hung.py)."""
    arch, out, r = booted
    assert r["oom_in_flight"] == "1", r
    assert r["oom_result"] == "oom-kill", r
    assert r["after_oom_result"] == "success", r
    assert r["after_oom_counted"] == "1", (r, _journal(out)[-3000:])
