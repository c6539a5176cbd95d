"""The system tests' cached Debian roots, and the session's bookkeeping around them.

* :func:`base_tarball` — a Debian root (``SUITES``: bookworm, trixie) made by
  ``debootstrap --variant=minbase`` with the package's runtime dependencies and the
  test tools installed, packed as
  ``/var/cache/duckdns-tests/rootfs-<suite>-<arch>-<hash>.tar.zst``. The hash covers the
  package list and the build recipe, so changing either builds a new one. Built in a
  temporary directory and renamed into place, so an interrupted build leaves no cache.
  ``devroot`` (unit tests and `make deb` of another release) and ``chroot`` roots the same
  way; :func:`piuparts_tarball` the plain base piuparts starts from.
* binfmt_misc for qemu-user, the background builds, the phase timings, the tmpfs work
  directories the containers and VMs copy a root onto.

No traffic leaves the machine except debootstrap/apt talking to the Debian mirror
while a cache is built.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from support.helpers import run

CACHE_DIR = Path(os.environ.get("DUCKDNS_TEST_CACHE", "/var/cache/duckdns-tests"))
WORK_DIR = Path(os.environ.get("DUCKDNS_TEST_WORKDIR", "/var/tmp"))
SUITE = "bookworm"  # the default release: the one the host runs (Debian 12)
# Every release the package is tested on; a scenario marked ``both_suites`` runs on each.
SUITES = ("bookworm", "trixie")


# Installed into the booted-container base: the package's runtime dependencies
# (python3-requests, python3-dnspython, debconf) and what the tests drive it with.
BASE_PACKAGES = [
    "systemd",
    "systemd-sysv",
    "dbus",
    "libpam-systemd",
    "python3",
    "python3-requests",
    "debconf",
    "apt-utils",
    "whiptail",
    "libterm-readline-gnu-perl",  # dialog + readline frontends
    "ca-certificates",
    "unattended-upgrades",
    "faketime",
    "libfaketime",  # scenario 6: a clock a year back
    "curl",
    "procps",
    "iproute2",
    "less",
    "tar",
    "findutils",
    "grep",
    "tmux",  # the terminal for prompts runs inside, so its processes die with the container
    "python3-dnspython",  # a dependency; also tests/support/dnsserver.py (test_dualstack.py)
    "apprise",  # recommended: notify = URL (test_hardening.py sends through it)
    "autopkgtest",  # Debian's runner of debian/tests, inside the booted container
    "apt-listchanges",  # shows the changelog and NEWS on upgrade (test_lifecycle.py)
    # The router the Pi asks for its external address (test_miniupnpd.py): Debian's NAT-PMP,
    # PCP and UPnP IGD daemon, the same package name on both releases. Installed
    # noninteractively its debconf question "start the daemon?" keeps its default, no,
    # and its unit is masked below: the test runs it in a network namespace of its own.
    "miniupnpd-nftables",
]
# Foreign-architecture chroots: no systemd booted, only what `apt install ./duckdns.deb`
# and `duckdns update` need.
CHROOT_PACKAGES = [
    "python3",
    "python3-requests",
    "python3-dnspython",
    "debconf",
    "ca-certificates",
    "apt-utils",
]
# A host-architecture root of another release (not booted) to run the unit tests and
# `make deb` in: the Makefile's BUILD_DEPS and TEST_DEPS that tests/unit and the build
# use (groff/man-db for the pages, restic/borg/rsync for the README examples, systemd for
# systemd-analyze, openssl for the test CA), and lintian of that release.
DEVROOT_PACKAGES = [
    "python3",
    "python3-requests",
    "python3-pytest",
    "python3-pytest-xdist",  # the unit tests run on two workers, as make test runs them
    "python3-hypothesis",  # the property-based tests (tests/unit/test_fuzz_*.py)
    "time",  # GNU time: the hostile tests' exact peak RSS
    "python3-debian",
    "python3-dnspython",  # tests/support/dnsserver.py
    "python3-trustme",  # tests/support/testca.py
    "python3-prometheus-client",  # the metrics test parses with its parser
    "apprise",  # tests/unit/test_notify.py: the release's own Apprise
    "python3-aiosmtpd",  # tests/support/notify_receiver.py's SMTP server
    "mypy",  # tests/unit/test_pep484.py: the release's own mypy, strict on duckdns/
    "python3-typeshed",  # ... and the stubs it reads requests' types from
    "python3-setuptools",
    "python3-stdeb",
    "python3-all",
    "debhelper",
    "dh-python",
    "po-debconf",
    "fakeroot",
    "dpkg-dev",
    "build-essential",
    "make",
    "debconf",
    "lintian",
    "openssl",
    "ca-certificates",
    "systemd",
    "groff-base",
    "man-db",
    "curl",
    "faketime",
    "gnupg",
    "iproute2",
    "rsync",
    "restic",
    "borgbackup",
    "tar",
]
# What a small bootable root with a network stack holds besides it (the kinds below).
_BOOTABLE_BASE = [
    "systemd",
    "systemd-sysv",
    "dbus",
    "libpam-systemd",
    "python3",
    "python3-requests",
    "python3-dnspython",
    "debconf",
    "apt-utils",
    "ca-certificates",
    "curl",
    "procps",
    "iproute2",
]
# A bootable root with Debian's own NetworkManager managing a link, as Raspberry Pi OS 12
# and 13 have it, and networkd-dispatcher for a link systemd-networkd manages, as Debian
# servers may have it (test_events.py: each runs the package's trigger). A kind of its
# own, so the other roots' keys stay as they are.
NETWORKMANAGER_PACKAGES = [
    *_BOOTABLE_BASE,
    "network-manager",
    "networkd-dispatcher",  # systemd-networkd's hooks (its daemon runs only once one exists)
]
# A bootable root with Debian's own cloud-init, as a card's image has it
# (test_cloudinit.py: first boot from a NoCloud seed; `cloud-init schema` of the
# documented user-data). A kind of its own, so the other roots' keys stay as they are.
# gpg: cloud-init's apt module needs it to store a source's inline key (both releases'
# images carry it; Debian's cloud-init only recommends it).
CLOUDINIT_PACKAGES = [*_BOOTABLE_BASE, "gpg", "cloud-init"]
# A bootable root with Debian's own ifupdown, as Debian servers without NetworkManager
# have it (test_ifupdown.py: ifup runs the package's /etc/network/if-up.d trigger). A
# kind of its own, so the other roots' keys stay as they are.
IFUPDOWN_PACKAGES = [*_BOOTABLE_BASE, "ifupdown"]
# The kinds of root that boot with systemd-nspawn (the others are only chrooted into).
BOOTABLE = ("rootfs", "networkmanager", "cloudinit", "ifupdown")
# Bump when the recipe below changes in a way the package lists do not show.
RECIPE_VERSION = "3"

_phase_log: list[tuple[str, float]] = []
_reporter = None  # set by conftest: a callable(str) that prints past pytest's capture


def log(message: str) -> None:
    # Under pytest-xdist a worker's output is not shown: DUCKDNS_TEST_TIMELINE (see
    # tests/conftest.py) keeps these lines, with the time and the worker.
    timeline = os.environ.get("DUCKDNS_TEST_TIMELINE")
    if timeline:
        with open(timeline, "a") as out:
            worker = os.environ.get("PYTEST_XDIST_WORKER", "-")
            out.write(f"{time.strftime('%H:%M:%S')} {worker} {message}\n")
    if _reporter is not None:
        _reporter(message)
    else:
        print(message, file=sys.stderr, flush=True)


@contextlib.contextmanager
def phase(name: str):
    """Time a phase; the time is printed at once and in the session summary."""
    start = time.monotonic()
    try:
        yield
    finally:
        elapsed = time.monotonic() - start
        _phase_log.append((name, elapsed))
        log(f"[system] {name}: {elapsed:.1f}s")


def phase_summary() -> list[tuple[str, float]]:
    return list(_phase_log)


# --------------------------------------------------------------------------------------
# Environment: the mirror, root, tools
# --------------------------------------------------------------------------------------


def debian_mirror() -> str:
    """The Debian mirror from the machine's apt sources (deb822 first, then one-line)."""
    sources = Path("/etc/apt/sources.list.d/debian.sources")
    candidates = [sources] if sources.exists() else []
    candidates += sorted(Path("/etc/apt/sources.list.d").glob("*.sources"))
    for path in candidates:
        for stanza in path.read_text().split("\n\n"):
            uris = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
            suites = re.search(r"^Suites:\s*(.+)$", stanza, re.M)
            if uris and suites and "security" not in uris.group(1):
                return uris.group(1).rstrip("/")
    for path in [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*.list")]:
        if path.exists():
            for line in path.read_text().splitlines():
                m = re.match(r"\s*deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+\S+", line)
                if m and "security" not in m.group(1):
                    return m.group(1).rstrip("/")
    return "http://deb.debian.org/debian"


def mirror_reachable(mirror: str | None = None, timeout: float = 10, suite: str = SUITE) -> bool:
    import urllib.request

    url = f"{mirror or debian_mirror()}/dists/{suite}/Release"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout):
            return True
    except Exception:
        return False


REQUIRED_TOOLS = ["debootstrap", "systemd-nspawn", "nsenter", "tmux", "zstd", "tar", "unshare"]


def environment_problem(need_mirror: bool) -> str | None:
    """Why the system tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "system tests need root (debootstrap, systemd-nspawn, nsenter)"
    missing = [t for t in REQUIRED_TOOLS if shutil.which(t) is None]
    if missing:
        return f"system tests need {', '.join(missing)} (make test-deps installs them)"
    if not Path("/run/systemd/system").exists() and shutil.which("systemd-nspawn") is None:
        return "systemd-nspawn is not available"
    if need_mirror and not mirror_reachable():
        return f"the Debian mirror {debian_mirror()} is not reachable to build the test roots"
    return None


# --------------------------------------------------------------------------------------
# Cached roots
# --------------------------------------------------------------------------------------


def _cache_key(kind: str, arch: str, packages: list[str], suite: str = SUITE) -> str:
    blob = json.dumps([RECIPE_VERSION, kind, suite, arch, sorted(packages), debian_mirror()])
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _build_tag(kind: str, arch: str, suite: str) -> str:
    """Names the lock and the temporary build directory of one kind of root. The default
    suite keeps the names it had before there were two (a test session of an older tree
    running at the same time then still shares the lock instead of racing the build)."""
    return f"{kind}-{arch}" if suite == SUITE else f"{kind}-{suite}-{arch}"


@contextlib.contextmanager
def cache_lock(name: str):
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with open(CACHE_DIR / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def host_arch() -> str:
    return run(["dpkg", "--print-architecture"]).stdout.strip()


def _chroot_apt(root: Path, *args: str, net: bool = True) -> None:
    """apt-get in a chroot with /proc, /sys and /dev mounted for its duration."""
    mounts = []
    try:
        for src, dst, opts in (
            ("proc", "proc", ["-t", "proc"]),
            ("sysfs", "sys", ["-t", "sysfs"]),
            ("/dev", "dev", ["--rbind"]),
        ):
            target = root / dst
            target.mkdir(exist_ok=True)
            run(["mount", *opts, src, str(target)])
            mounts.append(target)
        env = {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "DEBIAN_FRONTEND": "noninteractive",
            "LANG": "C.UTF-8",
            "HOME": "/root",
        }
        run(["chroot", str(root), "apt-get", "-q", "-y", *args], env=env)
    finally:
        for target in reversed(mounts):
            subprocess.run(["umount", "-R", "-l", str(target)], capture_output=True)


def pack(root: Path, tarball: Path) -> None:
    tmp = tarball.with_name(f".{tarball.name}.{os.getpid()}.tmp")
    try:
        run(
            [
                "tar",
                "-C",
                str(root),
                "--numeric-owner",
                "--xattrs",
                "--xattrs-include=*",
                "-I",
                "zstd -T0 -3",
                "-cf",
                str(tmp),
                ".",
            ]
        )
        os.replace(tmp, tarball)
    finally:
        tmp.unlink(missing_ok=True)


def remove_tree(path: Path) -> None:
    """rm -rf that never crosses into a mount (a leftover bind would otherwise be emptied)."""
    if path.exists():
        subprocess.run(["rm", "-rf", "--one-file-system", str(path)], check=False)


def mounts_under(path: Path) -> list[str]:
    prefix = str(path.resolve())
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mnt = line.split()[4].encode().decode("unicode_escape")
        if mnt == prefix or mnt.startswith(prefix + "/"):
            found.append(mnt)
    return found


def unmount_all_under(path: Path) -> None:
    for mnt in sorted(mounts_under(path), key=len, reverse=True):
        subprocess.run(["umount", "-l", mnt], capture_output=True)


def _build_root(
    kind: str, arch: str, packages: list[str], tarball: Path, suite: str = SUITE
) -> None:
    mirror = debian_mirror()
    tag = _build_tag(kind, arch, suite)
    tmpdir = Path(tempfile.mkdtemp(prefix=f".build-{tag}-", dir=CACHE_DIR))
    root = tmpdir / "root"
    try:
        # debootstrap resolves the dependencies of --include itself; the rest goes in
        # through apt so that Recommends stay out and the apt lists stay in the root
        # (apt install ./duckdns.deb inside needs them, offline).
        core = ["systemd", "systemd-sysv", "dbus"] if kind in BOOTABLE else ["ca-certificates"]
        cmd = [
            "debootstrap",
            "--variant=minbase",
            f"--arch={arch}",
            f"--include={','.join(core)}",
            suite,
            str(root),
            mirror,
        ]
        with phase(f"debootstrap {kind} {suite} {arch}"):
            run(cmd)
        with phase(f"apt-get install into {kind} {suite} {arch}"):
            (root / "etc/apt/apt.conf.d/90duckdns-tests").write_text(
                'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n'
            )
            (root / "etc/apt/sources.list").write_text(f"deb {mirror} {suite} main\n")
            _chroot_apt(root, "update")
            _chroot_apt(root, "install", *packages)
            _chroot_apt(root, "clean")
        if kind in BOOTABLE:
            _prepare_bootable(root)
        unmount_all_under(root)
        with phase(f"pack {tarball.name}"):
            pack(root, tarball)
    finally:
        unmount_all_under(tmpdir)
        remove_tree(tmpdir)


def _prepare_bootable(root: Path) -> None:
    (root / "etc/hostname").write_text("duckdns-test\n")
    hosts = "127.0.0.1 localhost duckdns-test\n::1 localhost ip6-localhost ip6-loopback\n"
    (root / "etc/hosts").write_text(hosts)
    # A persistent journal, so it can be read after the container is gone.
    (root / "var/log/journal").mkdir(parents=True, exist_ok=True)
    # Nothing here can reach a network: keep units that wait for one out of the way.
    for unit in (
        "apt-daily.timer",
        "apt-daily-upgrade.timer",
        "systemd-networkd-wait-online.service",
        "e2scrub_all.timer",
        "fstrim.timer",
        "man-db.timer",
        "miniupnpd.service",  # test_miniupnpd.py starts the daemon itself, in its namespace
    ):
        link = root / "etc/systemd/system" / unit
        if not link.exists():
            link.symlink_to("/dev/null")
    # Root without a password is fine for a throwaway container with no network.
    (root / "etc/securetty").unlink(missing_ok=True)


def _packages(kind: str) -> list[str]:
    packages = {
        "rootfs": BASE_PACKAGES,
        "devroot": DEVROOT_PACKAGES,
        "networkmanager": NETWORKMANAGER_PACKAGES,
        "cloudinit": CLOUDINIT_PACKAGES,
        "ifupdown": IFUPDOWN_PACKAGES,
    }
    return packages.get(kind, CHROOT_PACKAGES)


def base_tarball(
    kind: str = "rootfs",
    arch: str | None = None,
    packages: list[str] | None = None,
    suite: str = SUITE,
) -> Path:
    """The cached tarball for ``kind`` of release ``suite`` ("rootfs": bootable,
    "networkmanager": bootable with NetworkManager, "cloudinit": bootable with cloud-init,
    "ifupdown": bootable with ifupdown, "chroot": foreign arch, "devroot": unit tests and
    `make deb` of that release)."""
    arch = arch or host_arch()
    if packages is None:
        packages = _packages(kind)
    key = _cache_key(kind, arch, packages, suite)
    tarball = CACHE_DIR / f"{kind}-{suite}-{arch}-{key}.tar.zst"
    tag = _build_tag(kind, arch, suite)
    with cache_lock(tag):
        if not tarball.exists():
            # A build that was killed (not just failed) may have left its directory.
            for stale in CACHE_DIR.glob(f".build-{tag}-*"):
                unmount_all_under(stale)
                remove_tree(stale)
            if arch != host_arch():
                ensure_binfmt(arch)
            with phase(f"cache build {tarball.name}"):
                _build_root(kind, arch, packages, tarball, suite)
            prune_unused(f"{kind}-{suite}-{arch}-*.tar.zst", tarball)
    mark_used(tarball)
    return tarball


# Another checkout whose package lists differ (a CI run beside a development tree) may be
# using another key's tarball right now: only one unused for this long is removed.
UNUSED_FOR = 2 * 86400


def mark_used(tarball: Path) -> None:
    """Record that a cached tarball is in use (its mtime), so pruning leaves it."""
    os.utime(tarball)


def prune_unused(pattern: str, keep: Path) -> None:
    """Remove the cached tarballs matching ``pattern`` but ``keep`` not used for UNUSED_FOR."""
    for old in CACHE_DIR.glob(pattern):
        with contextlib.suppress(FileNotFoundError):
            if old != keep and time.time() - old.stat().st_mtime > UNUSED_FOR:
                old.unlink()


def cached(kind: str = "rootfs", arch: str | None = None, suite: str = SUITE) -> bool:
    arch = arch or host_arch()
    key = _cache_key(kind, arch, _packages(kind), suite)
    return (CACHE_DIR / f"{kind}-{suite}-{arch}-{key}.tar.zst").exists()


def extract(tarball: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    with phase("extract root"):
        run(
            [
                "tar",
                "-C",
                str(dest),
                "--numeric-owner",
                "--xattrs",
                "--xattrs-include=*",
                "-I",
                "zstd -T0",
                "-xf",
                str(tarball),
            ]
        )


def tmpfs_workdir(prefix: str, size: str, mode: str = "0755") -> Path:
    """A new directory in WORK_DIR with a tmpfs of its own on it (a root copy extracts
    onto it in under a second, not ~10 s on disk, and goes as fast); removed with
    :func:`remove_workdir`."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=WORK_DIR))
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode={mode}", "duckdns-test", str(tmp)],
        capture_output=True,
    )
    return tmp


def remove_workdir(tmp: Path) -> None:
    """Unmount all under a :func:`tmpfs_workdir` (the tmpfs last) and remove it."""
    unmount_all_under(tmp)
    remove_tree(tmp)
    with contextlib.suppress(OSError):
        tmp.rmdir()


# --------------------------------------------------------------------------------------
# binfmt_misc for qemu-user
# --------------------------------------------------------------------------------------

BINFMT = Path("/proc/sys/fs/binfmt_misc")
QEMU_FOR_ARCH = {"arm64": "qemu-aarch64", "armhf": "qemu-arm"}
_binfmt_undo: list[list[str]] = []
_binfmt_lock = None
_binfmt_thread_lock = threading.Lock()


def ensure_binfmt(arch: str) -> None:
    """Mount binfmt_misc and enable qemu for ``arch`` (undone by :func:`restore_binfmt`)."""
    with _binfmt_thread_lock:  # the background builds call this from two threads
        _ensure_binfmt(arch)


def _ensure_binfmt(arch: str) -> None:
    global _binfmt_lock
    name = QEMU_FOR_ARCH[arch]
    if _binfmt_lock is None:
        # Shared while this session uses binfmt_misc: another test session running at the
        # same time keeps restore_binfmt() from pulling it away under its feet.
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        _binfmt_lock = open(CACHE_DIR / ".binfmt.lock", "w")  # noqa: SIM115 - held
        fcntl.flock(_binfmt_lock, fcntl.LOCK_SH)
    if not (BINFMT / "register").exists():
        run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT)])
        _binfmt_undo.append(["umount", str(BINFMT)])
    entry = BINFMT / name
    if not (entry.exists() and entry.read_text().startswith("enabled")):
        run(["update-binfmts", "--enable", name])
        _binfmt_undo.insert(0, ["update-binfmts", "--disable", name])
    if not (BINFMT / name).read_text().startswith("enabled"):
        raise RuntimeError(f"binfmt_misc entry {name} could not be enabled")


def restore_binfmt() -> None:
    """Undo what ensure_binfmt() changed, unless another session is using it."""
    global _binfmt_lock
    if _binfmt_lock is None:
        return
    try:
        fcntl.flock(_binfmt_lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        log("[system] binfmt_misc left as is: another test session is using it")
        _binfmt_undo.clear()
    while _binfmt_undo:
        subprocess.run(_binfmt_undo.pop(0), capture_output=True)
    _binfmt_lock.close()
    _binfmt_lock = None


# --------------------------------------------------------------------------------------
# piuparts
# --------------------------------------------------------------------------------------


def piuparts_tarball(suite: str = SUITE) -> Path:
    """A plain ``debootstrap --variant=minbase`` of ``suite``, as piuparts makes its own,
    packed as the --basetgz piuparts starts every test from (cached beside the rootfs)."""
    arch = host_arch()
    key = _cache_key("piuparts", arch, [], suite)
    tarball = CACHE_DIR / f"piuparts-{suite}-{arch}-{key}.tar.gz"
    with cache_lock(_build_tag("piuparts", arch, suite)):
        if tarball.exists():
            mark_used(tarball)
            return tarball
        prefix = ".build-piuparts-" if suite == SUITE else f".build-piuparts-{suite}-"
        tmpdir = Path(tempfile.mkdtemp(prefix=prefix, dir=CACHE_DIR))
        root = tmpdir / "root"
        tmp = tarball.with_name(f".{tarball.name}.{os.getpid()}.tmp")
        try:
            with phase(f"cache build {tarball.name}"):
                run(["debootstrap", "--variant=minbase", suite, str(root), debian_mirror()])
                unmount_all_under(root)
                run(["tar", "-C", str(root), "--numeric-owner", "-czf", str(tmp), "."])
                os.replace(tmp, tarball)
        finally:
            tmp.unlink(missing_ok=True)
            unmount_all_under(tmpdir)
            remove_tree(tmpdir)
        prune_unused(f"piuparts-{suite}-{arch}-*.tar.gz", tarball)
    mark_used(tarball)
    return tarball


# --------------------------------------------------------------------------------------
# Building the slow caches in the background
# --------------------------------------------------------------------------------------

_background: list = []


def build_in_background(jobs: list[tuple]) -> None:
    """Start building caches (``(function, *args)``) in threads, so the foreign-arch roots
    (minutes under qemu) build while the container tests wait for their timers. A test
    that needs one just calls the function: the cache's file lock makes it wait for the
    build in progress. A failure here is only logged; the test's own call reports it."""

    def work(fn, args):
        try:
            fn(*args)
        except Exception as exc:  # noqa: BLE001 - the test that needs it reports it
            log(f"[system] background build {fn.__name__}{args} failed: {exc}")

    for fn, *args in jobs:
        thread = threading.Thread(target=work, args=(fn, tuple(args)), daemon=True)
        thread.start()
        _background.append(thread)


def join_background() -> None:
    """Wait for background builds (a half-built root must not be left with its mounts)."""
    while _background:
        _background.pop().join()
