"""Booted arm64 and armhf virtual machines (qemu-system-aarch64, full-system TCG emulation).

The qemu-user chroots could not boot systemd nor enforce its seccomp filters; these VMs
run the real kernel and systemd of a Raspberry Pi OS-like Debian, so the hardened unit
is enforced exactly as on a Pi.

Pieces, from the bottom up (all cached in :data:`roots.CACHE_DIR`, keyed by a hash of
their inputs, built in a temporary file or directory and renamed into place under the
roots' cache locks):

* :func:`vm_root` — ``mmdebstrap --variant=minbase`` root of ``suite`` for ``arch``
  with systemd, udev, python3-requests, python3-dnspython, busybox-static (and, for
  arm64, the kernel),
  prepared to boot as a VM (fstab, a machine id, units that need a network masked),
  packed as ``vmroot-<suite>-<arch>-<hash>.tar.zst``. The kernel is unpacked, not
  installed (see KERNEL_HOOK): its initramfs hook would take minutes under qemu-user,
  and a 1 MB initrd built on the host does the job.
* :func:`vm_boot_files` — from the arm64 root: the kernel (its version read from the
  root, never assumed), a tiny initrd (the root's static busybox plus the virtio and
  ext4 modules with their dependencies, from the root's ``modules.dep``) and the static
  arm64 busybox on its own (the armhf VM's foreign binary), in
  ``vmboot-<suite>-arm64-<hash>/``.
* :class:`VM` — one boot from a throw-away image: the cached root extracted on a tmpfs,
  the scenario's files added, ``mkfs.ext4 -d`` into a sparse image (the root disk,
  ``/dev/vda``), a second small ext4 disk made from :attr:`VM.hostdir` (``/dev/vdb``,
  mounted at ``/run/duckdns-test``: inputs that hold the token, and the results), then
  ``qemu-system-aarch64 -M virt -cpu cortex-a72 -nic none``. A runner unit inside runs
  the scenario script and powers the machine off; the host reads the results back from
  the second disk with ``debugfs`` (no loop device, no mount). The armhf root boots on
  the same arm64 kernel: cortex-a72 runs AArch32 user space, as a Pi 3/4/5 does under
  32-bit Raspberry Pi OS.

There is no network device in the VM at all; only the mirror is reached, by mmdebstrap
on the host while a root is built.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import lzma
import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import roots
from containers import TEST_DIR_IN_CONTAINER
from roots import CACHE_DIR, log, phase
from support.helpers import run

# Debian 13: the base of today's Raspberry Pi OS. A parameter everywhere below; this is
# only the default the scenarios use.
VM_SUITE = "trixie"
ARCHES = ("arm64", "armhf")
KERNEL_ARCH = "arm64"  # the armhf root boots on the arm64 kernel (AArch32 user space)
# The CPU the VMs boot, and the one qemu-user emulates while the arm64 root is built: a
# Pi 4's core (ARMv8.0, runs AArch32 user space too, no pointer authentication).
CPU = "cortex-a72"

VM_PACKAGES = [
    "systemd",
    "systemd-sysv",
    "udev",
    "dbus",
    "kmod",
    "python3",
    "python3-requests",
    "python3-dnspython",
    "debconf",
    "ca-certificates",
    "procps",
    "busybox-static",  # the initrd's shell; the armhf VM's foreign (arm64) binary
]
KERNEL_PACKAGES = ["linux-image-arm64"]
# Bump when the recipe changes in a way the package lists do not show.
VM_RECIPE = "2"
BOOT_RECIPE = "1"

# What the initrd loads to reach an ext4 root on a virtio-blk PCI disk (plus what
# modules.dep says they need).
INITRD_MODULES = ["virtio_pci", "virtio_blk", "ext4", "crc32c_generic"]

TEST_DIR = TEST_DIR_IN_CONTAINER  # /run/duckdns-test, the second disk
# Root is /dev/vda (mounted by the initrd); the second disk carries the test's inputs
# and results. Under TCG on a loaded host udev can take minutes to announce a disk:
# the default 90 s device timeout sent a boot to emergency mode (measured, load ~10).
FSTAB = (
    "/dev/vda / ext4 rw,errors=remount-ro 0 0\n"
    f"/dev/vdb {TEST_DIR} ext4 rw,nosuid,nodev,noexec,nofail,x-systemd.device-timeout=15min 0 0\n"
)
RUNNER = "/usr/local/lib/duckdns-test/run-scenario"


def _packages(arch: str) -> list[str]:
    return VM_PACKAGES + (KERNEL_PACKAGES if arch == KERNEL_ARCH else [])


def _key(*parts) -> str:
    blob = json.dumps([VM_RECIPE, *parts, roots.debian_mirror()])
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def root_tarball_path(arch: str, suite: str = VM_SUITE) -> Path:
    packages = sorted(_packages(arch))
    return CACHE_DIR / f"vmroot-{suite}-{arch}-{_key('vmroot', suite, arch, packages)}.tar.zst"


def boot_dir_path(suite: str = VM_SUITE) -> Path:
    root = root_tarball_path(KERNEL_ARCH, suite)
    key = hashlib.sha256(f"{BOOT_RECIPE} {root.name} {INITRD_MODULES}".encode()).hexdigest()[:12]
    return CACHE_DIR / f"vmboot-{suite}-{KERNEL_ARCH}-{key}"


def cached(suite: str = VM_SUITE) -> bool:
    return all(root_tarball_path(a, suite).exists() for a in ARCHES) and (
        boot_dir_path(suite).is_dir()
    )


TOOLS = {
    "mmdebstrap": "mmdebstrap",
    "arch-test": "arch-test",
    "qemu-system-aarch64": "qemu-system-arm",
    "mkfs.ext4": "e2fsprogs",
    "debugfs": "e2fsprogs",
    "cpio": "cpio",
    "update-binfmts": "binfmt-support",
}


def environment_problem(suite: str = VM_SUITE) -> str | None:
    """Why the VMs cannot be built or booted here, or None."""
    missing = sorted({pkg for tool, pkg in TOOLS.items() if shutil.which(tool) is None})
    if missing:
        return f"the VM tests need {', '.join(missing)} (make test-deps installs them)"
    if (
        not any(Path("/usr/libexec/qemu-binfmt").glob("aarch64*"))
        and not Path("/usr/bin/qemu-aarch64-static").exists()
    ):
        return "the VM roots are built under qemu-user-static (make test-deps installs it)"
    if not cached(suite) and not roots.mirror_reachable():
        return f"the Debian mirror {roots.debian_mirror()} is needed to build the VM roots"
    return None


# --------------------------------------------------------------------------------------
# The roots
# --------------------------------------------------------------------------------------

# Units that wait for a network or do maintenance no test wants; masked in the root.
MASKED_UNITS = (
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "systemd-networkd-wait-online.service",
    "e2scrub_all.timer",
    "e2scrub_reap.service",
    "fstrim.timer",
    "dpkg-db-backup.timer",
    "systemd-firstboot.service",
    "serial-getty@ttyAMA0.service",
    "getty@tty1.service",
)


def vm_root(arch: str, suite: str = VM_SUITE) -> Path:
    """The cached bootable root of ``suite`` for ``arch`` (built when missing)."""
    tarball = root_tarball_path(arch, suite)
    with roots.cache_lock(f"vmroot-{suite}-{arch}"):
        if tarball.exists():
            roots.mark_used(tarball)
            return tarball
        for stale in CACHE_DIR.glob(f".build-vmroot-{suite}-{arch}-*"):
            roots.unmount_all_under(stale)
            roots.remove_tree(stale)
        roots.ensure_binfmt(arch)
        tmpdir = Path(tempfile.mkdtemp(prefix=f".build-vmroot-{suite}-{arch}-", dir=CACHE_DIR))
        root = tmpdir / "root"
        try:
            with phase(f"cache build {tarball.name}"):
                with phase(f"mmdebstrap {suite} {arch}"):
                    _mmdebstrap(arch, suite, root)
                _prepare_vm_root(root)
                roots.unmount_all_under(root)
                with phase(f"pack {tarball.name}"):
                    roots.pack(root, tarball)
        finally:
            roots.unmount_all_under(tmpdir)
            roots.remove_tree(tmpdir)
        roots.prune_unused(f"vmroot-{suite}-{arch}-*.tar.zst", tarball)
    roots.mark_used(tarball)
    return tarball


# The arm64 kernel is unpacked by the host's dpkg-deb (only depmod runs under qemu-user):
# installed as a package, its thousands of module files went through an emulated dpkg
# and its postinst (arm64 root 2,017 s against armhf's 1,125 s, built side by side at
# load 9). The VM is booted with -kernel and needs only the files; the root's dpkg does
# not know the package.
KERNEL_HOOK = r"""set -e
image=$(chroot "$1" apt-cache depends linux-image-arm64 \
    | sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -n 1)
[ -n "$image" ] || { echo "no kernel image behind linux-image-arm64" >&2; exit 1; }
chroot "$1" sh -c "cd /tmp && apt-get download $image"
dpkg-deb -x "$1"/tmp/"$image"_*.deb "$1"
rm -f "$1"/tmp/"$image"_*.deb
for dir in "$1"/usr/lib/modules/*/; do chroot "$1" depmod "$(basename "$dir")"; done
"""


def _mmdebstrap(arch: str, suite: str, root: Path) -> None:
    mirror = roots.debian_mirror()
    kernel = arch == KERNEL_ARCH
    cmd = [
        "mmdebstrap",
        "--mode=root",
        "--variant=minbase",
        f"--architectures={arch}",
        f"--include={','.join(VM_PACKAGES)}",
        *([f"--customize-hook={KERNEL_HOOK}"] if kernel else []),
        '--aptopt=APT::Install-Recommends "false"',
        '--aptopt=APT::Install-Suggests "false"',
        # Keep the package lists: `apt-get install ./duckdns.deb` inside runs offline.
        "--skip=cleanup/apt/lists",
        suite,
        str(root),
        f"deb {mirror} {suite} main",
    ]
    env = dict(os.environ, LC_ALL="C.UTF-8")
    if arch == KERNEL_ARCH:
        # qemu-user reads QEMU_CPU (the chroot's processes inherit it through mmdebstrap).
        # Its default arm64 CPU, "max", has pointer authentication, whose instructions
        # Debian's arm64 binaries carry in most function prologues and epilogues and qemu
        # 7.2 emulates slowly: Python ran 5x slower than on CPU (7.1 s against 1.4 s
        # byte-compiling requests; "max,pauth=off" 1.5 s).
        env["QEMU_CPU"] = CPU
    run(cmd, env=env, timeout=3600)


def _prepare_vm_root(root: Path) -> None:
    (root / "etc/hostname").write_text("duckdns-vm\n")
    (root / "etc/hosts").write_text(
        "127.0.0.1 localhost duckdns-vm\n::1 localhost ip6-localhost ip6-loopback\n"
    )
    (root / "etc/fstab").write_text(FSTAB)
    units = root / "etc/systemd/system"
    units.mkdir(parents=True, exist_ok=True)
    for unit in MASKED_UNITS:
        link = units / unit
        if not link.exists() and not link.is_symlink():
            link.symlink_to("/dev/null")
    # The runner: starts the scenario once the system is up; the scenario powers off.
    (units / "duckdns-vm-runner.service").write_text(
        "[Unit]\n"
        "Description=duckdns VM test scenario\n"
        f"RequiresMountsFor={TEST_DIR}\n"
        "[Service]\n"
        "Type=exec\n"
        f"ExecStart={RUNNER}\n"
        "StandardOutput=journal+console\n"
        "StandardError=journal+console\n"
        "[Install]\n"
        "WantedBy=multi-user.target\n"
    )
    wants = units / "multi-user.target.wants"
    wants.mkdir(exist_ok=True)
    (wants / "duckdns-vm-runner.service").symlink_to("../duckdns-vm-runner.service")
    (root / "etc/securetty").unlink(missing_ok=True)


# --------------------------------------------------------------------------------------
# Kernel, initrd, the foreign busybox
# --------------------------------------------------------------------------------------

INIT = """#!/bin/busybox sh
export PATH=/bin
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /modules.order); do insmod "/modules/$m" || echo "initrd: insmod $m failed"; done
n=0
while [ ! -b /dev/vda ] && [ $n -lt 300 ]; do sleep 0.1; n=$((n + 1)); done
mkdir -p /newroot
if ! mount -t ext4 -o rw /dev/vda /newroot; then
    echo "initrd: cannot mount /dev/vda"; ls /dev; poweroff -f
fi
umount /sys /proc
mount --move /dev /newroot/dev 2>/dev/null || umount /dev
exec switch_root /newroot /sbin/init
"""


def vm_boot_files(suite: str = VM_SUITE) -> Path:
    """The cached directory with ``vmlinuz``, ``initrd.img``, ``busybox-arm64`` and
    ``kernel-version`` (built from the arm64 root when missing)."""
    dest = boot_dir_path(suite)
    root_tarball = vm_root(KERNEL_ARCH, suite)
    with roots.cache_lock(f"vmboot-{suite}"):
        if dest.is_dir():
            return dest
        tmpdir = Path(tempfile.mkdtemp(prefix=f".build-vmboot-{suite}-", dir=CACHE_DIR))
        try:
            with phase(f"cache build {dest.name}"):
                _build_boot_files(root_tarball, tmpdir / "root", tmpdir / "out")
                os.rename(tmpdir / "out", dest)
        finally:
            roots.remove_tree(tmpdir)
        for old in CACHE_DIR.glob(f"vmboot-{suite}-{KERNEL_ARCH}-*"):
            if old != dest and old.is_dir():
                roots.remove_tree(old)
    return dest


def _build_boot_files(root_tarball: Path, root: Path, out: Path) -> None:
    root.mkdir(parents=True)
    out.mkdir()
    run(
        [
            "tar",
            "-C",
            str(root),
            "-I",
            "zstd -T0",
            "-xf",
            str(root_tarball),
            "--wildcards",
            "./boot/vmlinuz-*",
            "./usr/lib/modules/*",
            "./usr/bin/busybox",
        ]
    )
    kernels = sorted((root / "boot").glob("vmlinuz-*"))
    if len(kernels) != 1:
        raise RuntimeError(f"expected one kernel in the arm64 root, found {kernels}")
    version = kernels[0].name.removeprefix("vmlinuz-")
    moddir = root / "usr/lib/modules" / version
    shutil.copy2(kernels[0], out / "vmlinuz")
    shutil.copy2(root / "usr/bin/busybox", out / "busybox-arm64")
    (out / "kernel-version").write_text(version + "\n")

    order = _module_closure(moddir, INITRD_MODULES)
    initrd = out.parent / "initrd"
    for d in ("bin", "dev", "proc", "sys", "modules", "newroot"):
        (initrd / d).mkdir(parents=True)
    shutil.copy2(root / "usr/bin/busybox", initrd / "bin/busybox")
    names = []
    for rel in order:
        data = (moddir / rel).read_bytes()
        name = Path(rel).name
        if name.endswith(".xz"):
            data, name = lzma.decompress(data), name[:-3]
        elif name.endswith(".zst"):
            data = run(["zstd", "-dc", str(moddir / rel)], text=False).stdout
            name = name[:-4]
        (initrd / "modules" / name).write_bytes(data)
        names.append(name)
    (initrd / "modules.order").write_text("\n".join(names) + "\n")
    (initrd / "init").write_text(INIT)
    os.chmod(initrd / "init", 0o755)  # noqa: S103 - the kernel executes it
    files = run(["find", ".", "-mindepth", "1"], cwd=initrd).stdout
    with open(out / "initrd.img", "wb") as img:
        subprocess.run(
            ["cpio", "-o", "-H", "newc", "--quiet", "-R", "0:0"],
            input=files.encode(),
            stdout=img,
            cwd=initrd,
            check=True,
        )


def _module_closure(moddir: Path, wanted: list[str]) -> list[str]:
    """The modules for ``wanted`` and their dependencies, in load order (from
    modules.dep). Built-in modules (absent from modules.dep) are skipped."""
    deps: dict[str, list[str]] = {}
    by_name: dict[str, str] = {}
    for line in (moddir / "modules.dep").read_text().splitlines():
        path, _, rest = line.partition(":")
        deps[path] = rest.split()
        base = Path(path).name.split(".ko")[0].replace("-", "_")
        by_name[base] = path
    order: list[str] = []

    def visit(path: str) -> None:
        if path in order:
            return
        for dep in deps.get(path, []):
            visit(dep)
        order.append(path)

    for name in wanted:
        path = by_name.get(name.replace("-", "_"))
        if path:
            visit(path)
    return order


# --------------------------------------------------------------------------------------
# One boot
# --------------------------------------------------------------------------------------

RUNNER_SCRIPT = f"""#!/bin/sh
# The scenario runner: waits for the boot to finish (this unit is Type=exec, so it does
# not hold the boot up), runs the scenario, saves the journal, powers the VM off.
out={TEST_DIR}/out
mkdir -p "$out"
echo "runner: started" > /dev/console
timeout 300 systemctl is-system-running --wait > "$out/boot-state" 2>&1
awk '{{print $1}}' /proc/uptime > "$out/boot-uptime"
sh -x {TEST_DIR}/scenario.sh > "$out/scenario.log" 2>&1
echo $? > "$out/scenario.rc"
journalctl -b --no-pager -o short-monotonic > "$out/journal.txt" 2>&1
journalctl -b --no-pager -o export > "$out/journal.export" 2>&1
echo "runner: done, powering off" > /dev/console
sync
systemctl poweroff
"""


class VM:
    """One throw-away boot of the cached ``arch`` root (use as a context manager).

    Put the scenario's inputs in :attr:`hostdir` (it becomes ``/run/duckdns-test`` inside,
    the second disk; ``scenario.sh`` there is what the runner executes) and files for the
    root with :meth:`write`; :meth:`run` builds both disks, boots, waits for the power-off
    and returns the ``out`` directory the scenario wrote on the second disk.
    """

    def __init__(self, arch: str, suite: str = VM_SUITE, memory_mb: int = 1024):
        if arch not in ARCHES:
            raise ValueError(f"no VM for {arch}: {ARCHES}")
        self.arch = arch
        self.suite = suite
        self.memory_mb = memory_mb
        self.name = f"duckdns-vm-{arch}-{uuid.uuid4().hex[:6]}"
        # A tmpfs: the root copy, both images (sparse) and their removal are instant.
        self.tmp = roots.tmpfs_workdir(f"{self.name}-", "8G", mode="0700")
        self.root = self.tmp / "root"
        self.hostdir = self.tmp / "hostdir"
        self.hostdir.mkdir()
        (self.hostdir / "out").mkdir()
        self.out = self.tmp / "result"
        self.console_log = self.tmp / "console.log"
        self.qemu: subprocess.Popen | None = None
        self.boot_seconds: float | None = None
        self.run_seconds: float | None = None
        self.cancelled = False

    def __enter__(self) -> VM:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def prepare(self) -> VM:
        """Extract a fresh root (the cached build must exist or is built now)."""
        self.boot = vm_boot_files(self.suite)
        roots.extract(vm_root(self.arch, self.suite), self.root)
        # A machine id of its own: not a "first boot" (no systemd-firstboot prompts).
        (self.root / "etc/machine-id").write_text(uuid.uuid4().hex + "\n")
        (self.root / "etc/fstab").write_text(FSTAB)  # roots cached before it changed
        self.write(RUNNER, RUNNER_SCRIPT, mode=0o755)
        return self

    def write(self, path: str, content: str | bytes, mode: int = 0o644) -> None:
        """A file in the root (path as seen inside)."""
        host = self.root / path.lstrip("/")
        host.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            host.write_bytes(content)
        else:
            host.write_text(content)
        os.chmod(host, mode)

    def trust_only(self, name: str, pem: str) -> None:
        """The system trust store of this boot holds the test CA ``pem`` alone: the
        Mozilla set is deselected (``/etc/ca-certificates.conf`` emptied, its links and
        bundle removed) and the CA put in ``/usr/local/share/ca-certificates``, for the
        scenario's ``update-ca-certificates`` inside. Nothing else is reachable from
        the VM anyway, and with 150 certificates that script forks ~750 times: 2 minutes
        under TCG (measured), against seconds for one."""
        conf = self.root / "etc/ca-certificates.conf"
        conf.write_text("# duckdns VM test: the test CA only (vm.VM.trust_only)\n")
        for entry in (self.root / "etc/ssl/certs").iterdir():
            if entry.is_symlink() or entry.name == "ca-certificates.crt":
                entry.unlink()
        self.write(f"/usr/local/share/ca-certificates/{name}.crt", pem)

    def append(self, path: str, text: str) -> None:
        host = self.root / path.lstrip("/")
        host.write_text(host.read_text() + text)

    def qemu_command(self) -> list[str]:
        return [
            "qemu-system-aarch64",
            "-M",
            "virt",
            "-cpu",
            CPU,
            "-smp",
            "2",
            "-m",
            str(self.memory_mb),
            "-accel",
            "tcg,thread=multi",
            "-nic",
            "none",  # no network device at all
            "-display",
            "none",
            "-monitor",
            "none",
            "-serial",
            f"file:{self.console_log}",
            "-no-reboot",  # a reboot or a panic ends qemu
            "-kernel",
            str(self.boot / "vmlinuz"),
            "-initrd",
            str(self.boot / "initrd.img"),
            "-append",
            "console=ttyAMA0 root=/dev/vda rw panic=-1 loglevel=4 systemd.show_status=1",
            "-drive",
            f"if=none,id=root,format=raw,cache=unsafe,file={self.tmp / 'root.img'}",
            "-device",
            "virtio-blk-pci,drive=root",
            "-drive",
            f"if=none,id=data,format=raw,cache=unsafe,file={self.tmp / 'data.img'}",
            "-device",
            "virtio-blk-pci,drive=data",
            "-device",
            "virtio-rng-pci",
        ]

    def run(self, timeout: float = 1200) -> Path:
        """Make the disks, boot, wait for the power-off; the scenario's ``out`` dir."""
        self._check_cancelled()
        with phase(f"vm {self.arch} make disks"):
            run(
                [
                    "mkfs.ext4",
                    "-q",
                    "-F",
                    "-L",
                    "root",
                    "-d",
                    str(self.root),
                    str(self.tmp / "root.img"),
                    "3G",
                ]
            )
            run(
                [
                    "mkfs.ext4",
                    "-q",
                    "-F",
                    "-L",
                    "duckdns-test",
                    "-d",
                    str(self.hostdir),
                    str(self.tmp / "data.img"),
                    "256M",
                ]
            )
        start = time.monotonic()
        with phase(f"vm {self.arch} boot, scenario, power-off"):
            self.qemu = subprocess.Popen(
                self.qemu_command(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=open(self.tmp / "qemu.err", "wb"),  # noqa: SIM115 - closed by exit
                start_new_session=True,
            )
            deadline = time.monotonic() + timeout
            while (rc := self.qemu.poll()) is None:
                self._check_cancelled()
                stuck = "You are in emergency mode" in self.console_tail()
                if stuck or time.monotonic() > deadline:
                    self.kill()
                    why = "went to emergency mode" if stuck else f"ran over {timeout}s"
                    raise AssertionError(
                        f"the {self.arch} VM {why}; console:\n" + self.console_tail()
                    )
                time.sleep(2)
        self.run_seconds = time.monotonic() - start
        if rc != 0:
            raise AssertionError(
                f"qemu exited {rc}: {(self.tmp / 'qemu.err').read_text(errors='replace')}\n"
                + self.console_tail()
            )
        self.out.mkdir(exist_ok=True)
        run(["debugfs", "-R", f"rdump /out {self.out}", str(self.tmp / "data.img")])
        self.out = self.out / "out"
        with contextlib.suppress(OSError, ValueError):
            self.boot_seconds = float((self.out / "boot-uptime").read_text())
        log(
            f"[system] vm {self.arch}: up at {self.boot_seconds}s of guest uptime, "
            f"powered off after {self.run_seconds:.1f}s"
        )
        return self.out

    def console_tail(self, lines: int = 150) -> str:
        try:
            text = self.console_log.read_text(errors="replace")
        except OSError:
            return "(no console log)"
        return "\n".join(text.splitlines()[-lines:])

    def cancel(self) -> None:
        """Stop this boot from another thread: qemu is killed now, or not started."""
        self.cancelled = True
        self.kill()

    def _check_cancelled(self) -> None:
        if self.cancelled:
            self.kill()
            raise RuntimeError(f"the {self.arch} VM was cancelled (the session ended)")

    def kill(self) -> None:
        if self.qemu is not None and self.qemu.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.qemu.pid, 9)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.qemu.wait(15)

    def close(self) -> None:
        self.kill()
        roots.remove_workdir(self.tmp)


def read_results(out: Path) -> dict[str, str]:
    """The scenario's ``key=value`` lines (the last value of a key wins)."""
    results: dict[str, str] = {}
    path = out / "results"
    if path.exists():
        for line in path.read_text(errors="replace").splitlines():
            key, sep, value = line.partition("=")
            if sep:
                results[key] = value
    return results


def probe_lines(text: str, tag: str) -> dict[str, str]:
    """``PROBE key=value`` items from journal text (``tag``: the syslog identifier)."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        m = re.search(rf"{re.escape(tag)}\[\d+\]: PROBE (\S+)=(\S*)$", line)
        if m:
            found[m.group(1)] = m.group(2)
    return found
