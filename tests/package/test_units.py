"""The systemd units as shipped in the .deb: content, systemd's own verdicts."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest
from support.helpers import ROOT, run

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


def test_no_restart_of_a_timer_reaches_a_run_in_flight(service, timer, built):
    """postinst restarts duckdns.timer on every upgrade and dpkg-reconfigure: no dependency
    may carry that restart, or its stop part, to a run in flight (systemd.unit(5); measured
    under systemd 257: StopPropagatedFrom= stops the run on the timer's restart). Instead
    preinst waits for a run, as long as systemd lets one last, and prerm stops one on
    remove (tests/system/test_upgrade_in_flight.py runs them)."""
    for key in ("PartOf", "BindsTo", "StopPropagatedFrom", "Requisite"):
        assert key not in service["Unit"], key
    assert "PropagatesStopTo" not in timer.get("Unit", {})
    preinst = (built.ctrl / "preinst").read_text()
    assert "systemctl stop --job-mode=ignore-requirements" in preinst
    (run_max,) = re.findall(r"^RUN_MAX=(\d+)$", preinst, re.M)
    (start,) = service["Service"]["TimeoutStartSec"]
    (stop,) = service["Service"]["TimeoutStopSec"]
    assert _seconds(start) + _seconds(stop) <= int(run_max) <= _seconds(start) + _seconds(stop) + 30
    prerm = (built.ctrl / "prerm").read_text()
    stops_the_run = (
        r'"\$1" = remove [^\n]*\n(\s*#[^\n]*\n)*\s*deb-systemd-invoke stop [^\n]*duckdns\.service'
    )
    assert re.search(stops_the_run, prerm), prerm


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
    # systemd's default AccuracySec= (1 min) would let the first run slip past a minute
    # after boot; the random delay spreads hosts that booted together. The latest first
    # run (30 + 15 + 1 s) leaves the run itself time within a minute (test_cloudinit
    # proves it booted).
    assert timer["Timer"]["AccuracySec"] == ["1s"]
    delay = _seconds(timer["Timer"]["RandomizedDelaySec"][0])
    assert delay >= 5 and 30 + delay + 1 <= 50
    # A new random delay each run: hosts drift apart instead of keeping a shared phase.
    assert "FixedRandomDelay" not in timer["Timer"]


def test_security_exposure(built):
    unit = built.unit("duckdns.service")
    out = run(["systemd-analyze", "security", "--offline=true", "--no-pager", unit]).stdout
    m = re.search(r"Overall exposure level for duckdns\.service: (\d+\.\d+)", out)
    assert m, out
    assert float(m.group(1)) <= MAX_EXPOSURE, out
    # systemd's own threshold is in tenths; it exits non-zero above it.
    run(["systemd-analyze", "security", "--offline=true", "--threshold=11", unit])


UNITS = (
    "duckdns.service",
    "duckdns.timer",
    "duckdns-changed.path",
    "duckdns-changed.service",
    "duckdns-network.timer",
)


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
    # The hooks' runner is python3, a dependency: the host's stands in for it.
    shutil.copy2(Path("/usr/bin/python3").resolve(), root / "usr/bin/python3")
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "MANPATH": str(root / "usr/share/man")}
    proc = run(
        ["systemd-analyze", "verify", f"--root={root}", *UNITS],
        check=False,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0 and not proc.stdout.strip() and not proc.stderr.strip(), (
        proc.stdout + proc.stderr
    )


# --------------------------------------------------------------------------------------
# The hooks' units and the network triggers (duckdns.changed; docs/design.md, "Hooks and
# network triggers")
# --------------------------------------------------------------------------------------


def _package_module(name: str):
    import importlib
    import sys

    from support.helpers import ROOT

    sys.path.insert(0, str(ROOT))
    return importlib.import_module(f"duckdns.{name}")


def test_the_path_unit_watches_the_queue_the_updater_writes(built):
    changed = _package_module("changed")
    path = parse_unit(built.unit("duckdns-changed.path"))
    # DirectoryNotEmpty= is checked again whenever the service stops: a change queued while
    # the hooks run is not lost, as an event of PathChanged= would be (systemd.path(5)).
    assert path["Path"]["DirectoryNotEmpty"] == [f"{changed.STATE_DIR}/{changed.QUEUE}"]
    assert path["Path"]["Unit"] == ["duckdns-changed.service"]
    assert path["Install"]["WantedBy"] == ["paths.target"]
    postinst = (built.ctrl / "postinst").read_text()
    assert "deb-systemd-helper enable 'duckdns-changed.path'" in postinst
    assert re.search(
        r"deb-systemd-invoke stop .*'duckdns-changed\.path'", (built.ctrl / "prerm").read_text()
    )
    assert "deb-systemd-helper purge 'duckdns-changed.path'" in (built.ctrl / "postrm").read_text()


def test_the_hooks_run_as_root_outside_the_sandbox_through_the_runner_only(built):
    service = parse_unit(built.unit("duckdns-changed.service"))
    assert "Install" not in service  # started by the path unit only
    settings = service["Service"]
    assert settings["ExecStart"] == ["/usr/bin/python3 -I -m duckdns.changed"]
    assert settings["Type"] == ["oneshot"]
    for key in ("DynamicUser", "User", "PrivateTmp", "ProtectSystem", "NoNewPrivileges"):
        assert key not in settings, f"{key}= would stop an admin's hook from working"
    assert _seconds(settings["TimeoutStartSec"][0]) <= 3600


def test_the_network_timer_coalesces_a_burst_into_one_run_of_the_hardened_unit(built):
    timer = parse_unit(built.unit("duckdns-network.timer"))
    assert "Install" not in timer  # started by the triggers only, never enabled
    assert timer["Timer"]["Unit"] == ["duckdns.service"]
    assert timer["Timer"]["RemainAfterElapse"] == ["no"]  # the next event arms it again
    assert _seconds(timer["Timer"]["OnActiveSec"][0]) <= 3  # a change is published in seconds
    assert timer["Timer"]["AccuracySec"] == ["100ms"]
    for name in ("postinst", "prerm", "postrm"):
        # debhelper's snippets: never enabled, started or restarted (preinst and prerm of
        # our own only stop it, with duckdns.timer, around a run in flight).
        text = (built.ctrl / name).read_text()
        source = ROOT / "debian" / name
        ours = source.read_text().split("#DEBHELPER#")[0] if source.exists() else ""
        assert "duckdns-network" not in text[len(ours) :], name


TRIGGERS = {
    "usr/lib/NetworkManager/dispatcher.d/90-duckdns": {
        # NetworkManager-dispatcher(8): $1 the interface, $2 the action.
        (("eth0", action), action in ("up", "dhcp4-change", "dhcp6-change", "connectivity-change"))
        for action in (
            "up",
            "dhcp4-change",
            "dhcp6-change",
            "connectivity-change",
            "down",
            "pre-up",
            "pre-down",
            "vpn-up",
            "hostname",
            "reapply",
        )
    },
    # networkd-dispatcher(8) runs routable.d's scripts with the state in the environment.
    "usr/lib/networkd-dispatcher/routable.d/90-duckdns": {((), True)},
}


@pytest.mark.parametrize("script", sorted(TRIGGERS))
def test_a_trigger_only_asks_systemd_to_start_the_network_timer(built, script, tmp_path):
    path = built.root / script
    assert path.stat().st_mode & 0o777 == 0o755
    assert "duckdns update" not in path.read_text() and "/usr/bin/duckdns" not in path.read_text()
    calls = tmp_path / "calls"
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "systemctl").write_text(f'#!/bin/sh\necho "$*" >> {calls}\n')
    (fake / "systemctl").chmod(0o755)
    for args, starts in TRIGGERS[script]:
        calls.unlink(missing_ok=True)
        env = {"PATH": f"{fake}:/usr/bin:/bin", "IFACE": "eth0", "STATE": "routable"}
        run([path, *args], env=env)
        got = calls.read_text().splitlines() if calls.exists() else []
        assert got == (["start --no-block duckdns-network.timer"] if starts else []), args


# interfaces(5) (ifupdown 0.8): ifup runs /etc/network/if-up.d/* with IFACE, ADDRFAM,
# METHOD, MODE=start and PHASE=post-up, once per address family of the interface, and
# with IFACE=--all (ADDRFAM=meta) at the end of "ifup -a".
IFUPDOWN_EVENTS = [
    ({"IFACE": "eth0", "ADDRFAM": "inet", "METHOD": "dhcp"}, True),
    ({"IFACE": "eth0", "ADDRFAM": "inet6", "METHOD": "auto"}, True),
    ({"IFACE": "wlan0", "ADDRFAM": "inet", "METHOD": "static"}, True),
    ({"IFACE": "lo", "ADDRFAM": "inet", "METHOD": "loopback"}, False),
    ({"IFACE": "lo0", "ADDRFAM": "inet", "METHOD": "loopback"}, False),
    ({"IFACE": "--all", "ADDRFAM": "meta", "METHOD": "none"}, False),
    ({"IFACE": "eth0", "ADDRFAM": "inet", "METHOD": "dhcp", "MODE": "stop"}, False),
]


def test_the_ifupdown_trigger_starts_the_network_timer_for_a_real_interface_only(built, tmp_path):
    """A conffile (in /etc, where ifupdown looks): it does nothing once the package is
    removed, and it never fails ifup, even when systemctl does."""
    path = built.root / "etc/network/if-up.d/duckdns"
    assert path.stat().st_mode & 0o777 == 0o755
    assert "/etc/network/if-up.d/duckdns" in (built.ctrl / "conffiles").read_text().split()
    assert "duckdns update" not in path.read_text()
    calls = tmp_path / "calls"
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "duckdns").write_text("#!/bin/sh\nexit 70\n")  # present, never run
    (fake / "duckdns").chmod(0o755)
    for env, starts in IFUPDOWN_EVENTS:
        for systemctl_status in (0, 1):
            (fake / "systemctl").write_text(
                f'#!/bin/sh\necho "$*" >> {calls}\nexit {systemctl_status}\n'
            )
            (fake / "systemctl").chmod(0o755)
            calls.unlink(missing_ok=True)
            full = {"PATH": str(fake), "MODE": "start", "PHASE": "post-up", **env}
            proc = subprocess.run([path], env=full, capture_output=True, text=True)
            assert proc.returncode == 0, (env, proc.stderr)
            got = calls.read_text().splitlines() if calls.exists() else []
            assert got == (["start --no-block duckdns-network.timer"] if starts else []), env
    # Removed, not purged: the conffile stays, duckdns is gone; nothing is started.
    (fake / "duckdns").unlink()
    calls.unlink(missing_ok=True)
    env = {"PATH": str(fake), "MODE": "start", "IFACE": "eth0", "METHOD": "dhcp"}
    assert subprocess.run([path], env=env).returncode == 0
    assert not calls.exists()


def test_only_duckdns_service_runs_the_updater(built):
    """The hooks' runner, the triggers and every other unit start units or the runner,
    never ``duckdns update`` outside the hardened unit (the certbot hooks run ``duckdns
    txt``, the ACME commands, by design)."""
    runs_it = sorted(
        str(p.relative_to(built.root))
        for p in built.root.rglob("*")
        if p.is_file()
        and "usr/lib/python3" not in str(p)
        and "usr/share/man" not in str(p)
        and "usr/share/doc" not in str(p)
        and re.search(rb"duckdns\s+(?:-\S+\s+)*update\b", p.read_bytes())
    )
    assert [Path(p).name for p in runs_it] == ["duckdns.service"], runs_it
