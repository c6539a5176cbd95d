"""The VM scenario of test_vm.py: what runs inside each booted arm64 and armhf VM, and
the one boot per architecture and session that runs it.

A boot under TCG takes minutes (measured in the phase summary as "vm ARCH boot,
scenario, power-off"), so the boots do not wait for test_vm.py's turn at the end of the
session: conftest starts them in the background as soon as the VM roots and boot files
exist (:func:`start_all`), one VM after the other, while the container tests run; the
tests ask for the results with :func:`results`, which waits for that boot or, when none
was started (test_vm.py run alone), starts it. Each boot is attempted once: its error
goes to every test of that architecture.
"""

from __future__ import annotations

import shutil
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import harness
import roots
import vm
from support.helpers import CANARY as TOKEN
from support.helpers import TESTS
from support.testca import make_ca

LIB = "/usr/local/lib/duckdns-test"

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
    --token-file $T/token --domains piserver --ready-file $out/server.ready \
    --control $T/control.json
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

# MemoryMax= as the kernel enforces it (cgroup v2 here; the test containers' v1 hierarchy
# cannot): a run in flight, waiting on a DuckDNS that does not answer, is killed when its
# unit's memory limit drops below what it uses, and the next run counts it like a run the
# time limit stopped.
copy_unit duckdns-oom "/usr/bin/duckdns update --force"
systemctl daemon-reload
echo '{"mode": "stall:120"}' > $T/control.json
systemctl start --no-block duckdns-oom.service
STATE=/var/lib/private/duckdns/state.json
n=0
until grep -q '"in_flight": [0-9]' $STATE 2>/dev/null || [ $n -ge 600 ]; do
    sleep 0.5; n=$((n + 1))
done
res oom_in_flight "$(grep -c '"in_flight": [0-9]' $STATE)"
systemctl set-property --runtime duckdns-oom.service MemoryMax=1M MemorySwapMax=0
n=0
while [ "$(show duckdns-oom.service ActiveState)" != failed ] && [ $n -lt 240 ]; do
    sleep 0.5; n=$((n + 1))
done
res oom_result "$(show duckdns-oom.service Result)"
rm -f $T/control.json
since=$(date '+%Y-%m-%d %H:%M:%S')
systemctl restart duckdns-force.service
res after_oom_result "$(show duckdns-force.service Result)"
res after_oom_counted "$(journalctl -b --since "$since" -o cat SYSLOG_IDENTIFIER=duckdns-force \
    | grep -c 'the previous run was stopped before DuckDNS answered')"

systemctl stop duckdns-oom.service duckdns-force.service duckdns-probe-shipped.service \
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


# One VM at a time: two TCG guests on two cores would only slow each other down.
_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vm-boot")
_boots: dict[str, Future] = {}
_running: list[vm.VM] = []  # the machine being booted, for shutdown()
_lock = threading.Lock()


def start(arch: str, deb: Path) -> Future:
    """The boot of ``arch`` for this session: queued now unless it already is."""
    with _lock:
        if arch not in _boots:
            _boots[arch] = _executor.submit(_boot_scenario, arch, deb)
        return _boots[arch]


def start_all(deb: Path) -> None:
    """Queue every architecture's boot (conftest's background job, once the caches exist)."""
    for arch in vm.ARCHES:
        start(arch, deb)


def results(arch: str, deb: Path) -> tuple[Path, dict[str, str]]:
    """The ``arch`` boot's saved output directory and its results; waits for the boot."""
    return start(arch, deb).result()


def shutdown() -> None:
    """End of session. A boot still queued or running then is one no test waited for
    (the session was interrupted or stopped early): it is dropped, its VM killed."""
    _executor.shutdown(wait=False, cancel_futures=True)
    with _lock:
        for machine in _running:
            machine.cancel()
    _executor.shutdown(wait=True)


def _boot_scenario(arch: str, deb: Path) -> tuple[Path, dict[str, str]]:
    machine = vm.VM(arch)
    with _lock:
        _running.append(machine)
    try:
        with harness.phase(f"vm {arch} prepare image"):
            machine.prepare()
            hostdir = machine.hostdir
            ca = make_ca(machine.tmp / "ca")
            cert, key = ca.issue(machine.tmp / "srvcert", ["www.duckdns.org", "localhost"])
            shutil.copy2(cert, hostdir / "srv.crt")
            shutil.copy2(key, hostdir / "srv.key")
            machine.trust_only("duckdns-test-ca", ca.cert_path.read_text())
            shutil.copy2(TESTS / "support" / "duckdns_server.py", hostdir / "duckdns_server.py")
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
        return saved, vm.read_results(saved)
    finally:
        with _lock:
            _running.remove(machine)
        machine.close()
