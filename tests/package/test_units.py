"""The systemd units as shipped in the .deb: content, systemd's own verdicts."""

from __future__ import annotations

import re
import shutil
from collections import defaultdict
from pathlib import Path

import pytest
from support.helpers import run

# The floor for a service that must reach the internet (docs/packaging.md).
MAX_EXPOSURE = 1.1


def parse_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), defaultdict(list))
            continue
        key, _, value = line.partition("=")
        current[key.strip()].append(value.strip())
    return sections


SERVICE_EXACT = {
    "Type": "oneshot",
    "DynamicUser": "yes",
    "StateDirectory": "duckdns",
    "StateDirectoryMode": "0700",
    "ExecStart": "/usr/bin/duckdns update",
    "SyslogIdentifier": "duckdns",
    "Nice": "19",
    "UMask": "0077",
    "ProtectSystem": "strict",  # "Strict" is ignored by systemd
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "PrivateUsers": "yes",
    "NoNewPrivileges": "yes",
    "CapabilityBoundingSet": "",
    "AmbientCapabilities": "",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes",
    "ProtectClock": "yes",
    "ProtectHostname": "yes",
    "ProtectProc": "invisible",
    "ProcSubset": "pid",
    "LockPersonality": "yes",
    "MemoryDenyWriteExecute": "yes",
    "RestrictRealtime": "yes",
    "RestrictSUIDSGID": "yes",
    "RestrictNamespaces": "yes",
    "PrivateIPC": "yes",
    "RemoveIPC": "yes",
    "RestrictAddressFamilies": "AF_INET AF_INET6",
    "SystemCallArchitectures": "native",
    "DevicePolicy": "closed",
    # Nothing the service can write can be executed (the 32-bit seccomp hole).
    "NoExecPaths": "/ /tmp /var/tmp /dev/shm /var/lib/duckdns",
    "ExecPaths": "/usr",
}


@pytest.fixture(scope="module")
def service(built):
    return parse_unit(built.unit("duckdns.service"))


@pytest.fixture(scope="module")
def timer(built):
    return parse_unit(built.unit("duckdns.timer"))


@pytest.mark.parametrize("key", sorted(SERVICE_EXACT))
def test_service_setting(service, key):
    assert service["Service"].get(key) == [SERVICE_EXACT[key]], (key, service["Service"].get(key))


def test_service_syscall_filter(service):
    assert service["Service"]["SystemCallFilter"] == ["@system-service", "~@privileged @resources"]


def test_service_ordering_and_condition(service):
    unit = service["Unit"]
    after = " ".join(unit["After"]).split()
    assert "network-online.target" in after and "time-sync.target" in after
    assert "network-online.target" in " ".join(unit["Wants"]).split()
    assert unit["ConditionPathExists"] == ["/var/lib/private/duckdns/duckdns.conf"]


def test_service_is_never_enabled_itself(service):
    """Only the timer starts it: no [Install] section, so dh_installsystemd cannot enable it."""
    assert "Install" not in service


def _seconds(value: str) -> float:
    """A systemd time span of the forms the unit uses: "120", "90s", "2min"."""
    m = re.fullmatch(r"(\d+)\s*(s|sec|min|m)?", value)
    assert m, f"unexpected time span {value!r}"
    return int(m.group(1)) * (60 if m.group(2) in ("min", "m") else 1)


def test_a_run_has_a_hard_time_limit_sized_from_the_programs_deadlines(service):
    """TimeoutStartSec= ends a hung run, so the next timer run goes ahead; it is at least the
    sum of the worst case of every exchange of one run, as the code has them (no drift)."""
    import sys

    from support.helpers import ROOT

    sys.path.insert(0, str(ROOT))
    from duckdns import api, config, dnswire, heartbeat, notify

    duckdns_requests = 2 * api.TOTAL_BUDGET  # one per address family, retries included
    probe = dnswire.DEFAULT_TIMEOUT * config.MAX_PROBES
    exchanges = duckdns_requests + probe + heartbeat.TIMEOUT + notify.BUDGET
    (limit,) = service["Service"]["TimeoutStartSec"]
    assert _seconds(limit) >= exchanges + 30, (limit, exchanges)  # + start-up and lookups
    assert _seconds(limit) < 5 * 60, "a hung run would block the timer for too long"
    (stop,) = service["Service"]["TimeoutStopSec"]
    assert _seconds(stop) <= 30


def _bytes(value: str) -> int:
    """A systemd size of the forms the unit uses: "96M", "1G" (base 1024)."""
    m = re.fullmatch(r"(\d+)([KMG])", value)
    assert m, f"unexpected size {value!r}"
    return int(m.group(1)) * 1024 ** (" KMG".index(m.group(2)))


def test_a_run_has_a_memory_limit_above_the_notification_childs_own(service):
    """MemoryMax= is above the notification child's data limit (duckdns.contain.MEMORY,
    which it sets itself) plus the updater's share, and below what a small Pi can spare."""
    import sys

    from support.helpers import ROOT

    sys.path.insert(0, str(ROOT))
    from duckdns import contain

    (memory,) = service["Service"]["MemoryMax"]
    # The largest peak measured (tests/unit/test_notify.py, about 105 MiB) is within the
    # data limit plus the interpreter's files: MemoryMax= leaves room for a cold cache.
    assert contain.MEMORY + 64 * contain.MIB <= _bytes(memory) <= 256 * contain.MIB, memory
    assert "LimitDATA" not in service["Service"]  # the child's own: one definition


def test_timer(timer):
    assert timer["Timer"]["OnBootSec"] == ["30"]
    assert timer["Timer"]["OnUnitActiveSec"] == ["1min"]
    # A restart (each upgrade, dpkg-reconfigure) must schedule a run even before the
    # service has ever run: OnBootSec= counts only at the first start.
    assert timer["Timer"]["OnActiveSec"] == ["30"]
    assert timer["Install"]["WantedBy"] == ["timers.target"]


def test_security_exposure(built):
    unit = built.unit("duckdns.service")
    out = run(["systemd-analyze", "security", "--offline=true", "--no-pager", unit]).stdout
    m = re.search(r"Overall exposure level for duckdns\.service: (\d+\.\d+)", out)
    assert m, out
    assert float(m.group(1)) <= MAX_EXPOSURE, out
    # systemd's own threshold is in tenths; it exits non-zero above it.
    run(["systemd-analyze", "security", "--offline=true", "--threshold=11", unit])


def test_systemd_analyze_verify_is_silent(built, tmp_path):
    """verify loads the units from a root holding the .deb's files plus systemd's own
    units (for the targets) and finds /usr/bin/duckdns and the man page there."""
    root = tmp_path / "root"
    shutil.copytree(built.root, root, symlinks=True)
    unit_dir = built.unit("duckdns.service").parent.relative_to(built.root)
    host_units = Path("/lib/systemd/system")
    for src in host_units.iterdir():
        dest = root / unit_dir / src.name
        if not dest.exists() and not dest.is_symlink():
            if src.is_symlink():
                dest.symlink_to(src.readlink())
            elif src.is_file():
                shutil.copy2(src, dest)
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "MANPATH": str(root / "usr/share/man")}
    proc = run(
        ["systemd-analyze", "verify", f"--root={root}", "duckdns.service", "duckdns.timer"],
        check=False,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0 and not proc.stdout.strip() and not proc.stderr.strip(), (
        proc.stdout + proc.stderr
    )
