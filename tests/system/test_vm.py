"""Scenario 12: the package on the Pi's own architectures, booted (issue 15).

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

One boot per architecture runs the whole scenario (a boot under TCG costs about a
minute); the results come back on the VM's second disk and each assertion is its own
test below, so a failure says which property broke.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import harness
import pytest
import roots
import vm
from harness import CONF
from helpers import CANARY as TOKEN
from helpers import TESTS, skip_or_fail
from testca import make_ca

T = vm.TEST_DIR  # /run/duckdns-test inside: the second disk
LIB = "/usr/local/lib/duckdns-test"
MAX_EXPOSURE = 1.1  # as tests/package/test_units.py and test_hardening.py

# The scenario, run as root by the runner unit once the VM is up. Results: key=value
# lines in out/results, bigger outputs beside them. Nothing here names the token: it is
# only in the seed and token files on the second disk (grep -f reads it from there).
SCENARIO = r"""
set -u
T=/run/duckdns-test
out=$T/out
LIB=/usr/local/lib/duckdns-test
res() { printf '%s=%s\n' "$1" "$2" >> "$out/results"; }
show() { systemctl show "$1" -P "$2"; }
export DEBIAN_FRONTEND=noninteractive

res arch "$(dpkg --print-architecture)"
res machine "$(uname -m)"
# The ELF class and machine of the python3 that runs the package (01 28: 32-bit ARM,
# 02 b7: AArch64); the kernel is arm64 for both roots.
py=$(readlink -f /usr/bin/python3)
res python_elf "$(od -An -tx1 -j4 -N1 "$py" | tr -d ' ') $(od -An -tx1 -j18 -N1 "$py" | tr -d ' ')"
res kernel "$(uname -r)"
res systemd "$(systemctl --version | head -n 1)"
res boot_state "$(systemctl is-system-running)"
res net_links "$(ls /sys/class/net | tr '\n' ' ')"

# The test DuckDNS server as www.duckdns.org, its CA in the system trust store.
update-ca-certificates > "$out/update-ca.log" 2>&1
res update_ca_rc $?
systemd-run --unit=duckdns-test-server --quiet \
    -p StandardOutput=file:$out/server.log -p StandardError=file:$out/server.log \
    python3 $T/duckdns_server.py --certfile $T/srv.crt --keyfile $T/srv.key \
    --host 127.0.0.1 --port 443 --record $out/requests.jsonl \
    --token-file $T/token --domains piserver --ready-file $out/server.ready
n=0; while [ ! -e $out/server.ready ] && [ $n -lt 600 ]; do sleep 0.2; n=$((n + 1)); done
res server_ready "$([ -e $out/server.ready ] && echo yes || echo no)"

find / -xdev | sort > "$out/files-before"

# The fleet install: preseeded answers, no question.
debconf-set-selections $T/seed
apt-get install -y $T/duckdns.deb > "$out/install.log" 2>&1
res install_rc $?
res conf_mode "$(stat -c %a /var/lib/private/duckdns/duckdns.conf 2>&1)"
FRAGMENT=$(show duckdns.service FragmentPath)
res fragment "$FRAGMENT"

# The timer's first run (OnActiveSec=30 after the install started it; up to 10 min:
# under TCG on a loaded host it had not ended after 5 min).
n=0
while [ "$(show duckdns.service ExecMainExitTimestampMonotonic)" = 0 ] && [ $n -lt 600 ]; do
    sleep 1; n=$((n + 1))
done
res timer_trigger "$(show duckdns.timer LastTriggerUSec)"
res timer_result "$(show duckdns.service Result)"
res timer_code "$(show duckdns.service ExecMainCode)"
res timer_status "$(show duckdns.service ExecMainStatus)"
res state_uid "$(stat -c %u /var/lib/private/duckdns)"
res service_uids "$(journalctl -b -o export SYSLOG_IDENTIFIER=duckdns _TRANSPORT=stdout \
    | sed -n 's/^_UID=//p' | sort -u | tr '\n' ' ')"
cp $out/requests.jsonl $out/requests-after-timer.jsonl
# No more timer runs (OnUnitActiveSec=1min; probe off: each run sends an update).
systemctl stop duckdns.timer
n=0
while [ "$(show duckdns.service ActiveState)" != inactive ] && [ $n -lt 300 ]; do
    sleep 1; n=$((n + 1))
done

# `duckdns update --force` as the unit runs it: the shipped unit with that ExecStart=
# (and the same dynamic user name), started by systemd.
copy_unit() {  # copy_unit NAME EXECSTART [sed expression]
    sed -e "s|^ExecStart=.*|ExecStart=$2|" -e "s|^SyslogIdentifier=.*|SyslogIdentifier=$1|" \
        -e 's|^\[Service\]$|[Service]\nUser=duckdns\nRemainAfterExit=yes|' ${3:+-e "$3"} \
        "$FRAGMENT" \
        > "/run/systemd/system/$1.service"
}
copy_unit duckdns-force "/usr/bin/duckdns update --force"
systemctl daemon-reload
cp $out/requests.jsonl $out/requests-before-force.jsonl
systemctl start duckdns-force.service
res force_start_rc $?
res force_result "$(show duckdns-force.service Result)"
res force_code "$(show duckdns-force.service ExecMainCode)"
res force_status "$(show duckdns-force.service ExecMainStatus)"
cp $out/requests.jsonl $out/requests-after-force.jsonl

# The exposure systemd-analyze sees, live and offline.
systemd-analyze security --no-pager duckdns.service > "$out/security-live.txt" 2>&1
systemd-analyze security --no-pager --offline=true "$FRAGMENT" > "$out/security-offline.txt" 2>&1

# Controls for the probe, outside any unit: the applets exist and work unfiltered.
for bb in /usr/bin/busybox $LIB/busybox-drop; do
    "$bb" renice -n 0 -p $$ > /dev/null 2>&1 && r=ok || r=failed
    res "control-renice:$bb" "$r"
    "$bb" logger -t duckdns-probe-control "logger works"
done

# The seccomp-hole probe, under the shipped unit's settings and without its
# NoExecPaths=/ExecPaths= lines.
copy_unit duckdns-probe-shipped "$LIB/probe shipped"
copy_unit duckdns-probe-noexecpaths-removed "$LIB/probe removed" '/^\(No\)\{0,1\}ExecPaths=/d'
systemctl daemon-reload
systemctl start duckdns-probe-shipped.service
systemctl start duckdns-probe-noexecpaths-removed.service
for u in duckdns-probe-shipped duckdns-probe-noexecpaths-removed; do
    res "$u" "$(show $u.service Result)"
    systemctl cat $u.service > "$out/$u.service" 2>&1
done

systemctl stop duckdns-force.service duckdns-probe-shipped.service \
    duckdns-probe-noexecpaths-removed.service

# The token: only in the config file (and the server's record on the second disk).
find / -xdev -type f -print0 | xargs -0 grep -l -a -F -f $T/token --no-messages \
    > "$out/leaks-root"
grep -r -l -a -F -f $T/token --no-messages --exclude-dir=duckdns-test \
    /run /tmp /dev/shm > "$out/leaks-run"
res journal_token_lines "$(journalctl -b -o export | grep -c -a -F -f $T/token)"

apt-get purge -y duckdns > "$out/purge.log" 2>&1
res purge_rc $?
find / -xdev | sort > "$out/files-after"
debconf-show duckdns > "$out/debconf-after" 2>&1
grep -l duckdns/ /var/cache/debconf/config.dat /var/cache/debconf/passwords.dat \
    /var/cache/debconf/templates.dat > "$out/debconf-dbs-after" 2>&1
find / -xdev -type f -print0 | xargs -0 grep -l -a -F -f $T/token --no-messages \
    > "$out/leaks-after-purge"
res id_duckdns_after "$(id duckdns 2>&1)"
res done yes
"""

# Run as the ExecStart= of a copy of the shipped unit: every one of its settings applies.
PROBE = r"""#!/bin/sh
# $1: a label for the logger lines. The binary a compromised updater would drop and
# run: on armhf an arm64 static busybox (64-bit, unknown to the 32-bit filters), on
# arm64 the native one. Named busybox: it picks its applet from argv[0].
LIB=/usr/local/lib/duckdns-test
drop=
for d in "$STATE_DIRECTORY" /var/lib/private/duckdns /tmp /var/tmp /dev/shm /run /dev/mqueue; do
    if cp "$LIB/busybox-drop" "$d/busybox" 2>/dev/null && chmod 0700 "$d/busybox"; then
        "$d/busybox" true 2>/dev/null
        rc=$?
        case $rc in
            0) r=yes; [ -n "$drop" ] || drop=$d/busybox ;;
            126) r=denied ;;
            *) r=failed-$rc ;;
        esac
    else
        r=cannot-write
    fi
    echo "PROBE exec:$d=$r"
done
echo "PROBE drop-runs-from=${drop:-nowhere}"
awk '$5 == "/" || $5 == "/usr" || $5 ~ "^/var/lib/" || $5 == "/tmp" || $5 == "/var/tmp" ||
    $5 == "/dev/shm" { print "MOUNT", $5, $6 }' /proc/self/mountinfo
# What a running binary can do under the filters: the dropped one (where it ran), the
# same file where exec is allowed (/usr/local), the native busybox in /usr.
#   renice -n 1: setpriority(), in ~@resources: EPERM under the filter (the kernel allows
#   it: Nice=19 is clamped). logger: an AF_UNIX datagram to /dev/log, which
#   RestrictAddressFamilies= forbids (the journal shows whether the line arrived).
#   The scenario runs both applets outside the unit as a control.
for spec in "drop:$drop" "foreign-usr:$LIB/busybox-drop" "native-usr:/usr/bin/busybox"; do
    name=${spec%%:*}
    bb=${spec#*:}
    if [ -n "$bb" ] && "$bb" true 2>/dev/null; then
        if err=$("$bb" renice -n 1 -p $$ 2>&1); then r=yes; else r=no; fi
        echo "PROBE setpriority:$name=$r"
        echo "DETAIL setpriority:$name: $err"
        "$bb" logger -t "duckdns-probe-unix-$1-$name" "AF_UNIX socket opened" 2>&1
        echo "PROBE ran:$name=yes"
    else
        echo "PROBE ran:$name=no"
    fi
done
rm -f "$STATE_DIRECTORY/busybox" /tmp/busybox /var/tmp/busybox /dev/shm/busybox
"""


def _dropped_binary(arch: str, boot: Path, root: Path) -> bytes:
    """On armhf the arm64 busybox (foreign); on arm64 the root's own."""
    if arch == "armhf":
        return (boot / "busybox-arm64").read_bytes()
    return (root / "usr/bin/busybox").read_bytes()


@pytest.fixture(scope="session")
def vm_env(system_env):
    problem = vm.environment_problem()
    if problem:
        skip_or_fail(problem)


_results: dict[str, tuple] = {}  # arch -> (out dir, results, boot s, run s)


def boot_scenario(arch: str, deb: Path):
    """Boot the ``arch`` VM once per session with the whole scenario; its results (or
    the error of that one attempt, for every test that asks)."""
    if arch not in _results:
        try:
            _results[arch] = _boot_scenario(arch, deb)
        except Exception as exc:  # noqa: BLE001 - reported by every test of this arch
            _results[arch] = exc
    if isinstance(_results[arch], Exception):
        raise _results[arch]
    return _results[arch]


def _boot_scenario(arch: str, deb: Path):
    machine = vm.VM(arch)
    try:
        with harness.phase(f"vm {arch} prepare image"):
            machine.prepare()
            hostdir = machine.hostdir
            ca = make_ca(machine.tmp / "ca")
            cert, key = ca.issue(machine.tmp / "srvcert", ["www.duckdns.org", "localhost"])
            shutil.copy2(cert, hostdir / "srv.crt")
            shutil.copy2(key, hostdir / "srv.key")
            machine.trust_only("duckdns-test-ca", ca.cert_path.read_text())
            shutil.copy2(TESTS / "duckdns_server.py", hostdir / "duckdns_server.py")
            shutil.copy2(deb, hostdir / "duckdns.deb")
            (hostdir / "token").write_text(TOKEN + "\n")
            (hostdir / "seed").write_text(
                "duckdns duckdns/domains string piserver\n"
                f"duckdns duckdns/token password {TOKEN}\n"
                "duckdns duckdns/ipv6 boolean false\n"
            )
            (hostdir / "scenario.sh").write_text(SCENARIO)
            machine.append("/etc/hosts", "127.0.0.1 www.duckdns.org\n")
            machine.write(f"{LIB}/probe", PROBE, mode=0o755)
            machine.write(
                f"{LIB}/busybox-drop",
                _dropped_binary(arch, machine.boot, machine.root),
                mode=0o755,
            )
        try:
            machine.run()
        finally:
            saved = harness.WORK_DIR / f"duckdns-vm-{arch}-last"
            roots.remove_tree(saved)
            if machine.out.name == "out":
                shutil.copytree(machine.out, saved, symlinks=True)
            saved.mkdir(exist_ok=True)
            if machine.console_log.exists():
                shutil.copy2(machine.console_log, saved / "console.log")
        return saved, vm.read_results(saved), machine.boot_seconds, machine.run_seconds
    finally:
        machine.close()


@pytest.fixture(params=vm.ARCHES)
def booted(request, vm_env, deb):
    arch = request.param
    out, results, _, _ = boot_scenario(arch, deb)
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
    assert "code=killed" not in journal
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
