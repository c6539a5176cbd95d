"""System-test harness: cached Debian roots, booted containers, a DuckDNS server inside them.

Everything here runs as root on a Debian host with debootstrap, systemd-container,
tmux and (for the foreign-architecture chroots) qemu-user-static + binfmt-support.

Pieces, from the bottom up:

* :func:`base_tarball` — a Debian root (``SUITES``: bookworm, trixie) made by
  ``debootstrap --variant=minbase`` with the package's runtime dependencies and the
  test tools installed, packed as
  ``/var/cache/duckdns-tests/rootfs-<suite>-<arch>-<hash>.tar.zst``. The hash covers the
  package list and the build recipe, so changing either builds a new one. Built in a
  temporary directory and renamed into place, so an interrupted build leaves no cache.
* :class:`Container` — a fresh copy of that root in a temporary directory, booted with
  ``systemd-nspawn -b`` on a private network (only its own loopback). Commands run
  inside with ``nsenter -t <pid 1> -a``. :meth:`Container.close` always powers it off,
  kills what is left and removes the copy.
* :class:`DuckDNS` — the project's test server (``tests/duckdns_server.py``) running
  *inside* the container on 127.0.0.1:443 with a test CA in the container's trust store
  and ``www.duckdns.org`` pointing at 127.0.0.1, so the package runs with its shipped
  default server. Its record/control files live in a host directory bind-mounted at
  ``/run/duckdns-test``, i.e. outside the container's root tree.
* :class:`Tmux` — a terminal (a tmux session on its own socket) running a command in
  the container, for whiptail and readline prompts typed as a person types them.
* :class:`Chroot` — foreign-architecture (arm64, armhf) roots under qemu-user, run
  inside ``unshare --net`` (loopback only).

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
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from helpers import ROOT as REPO
from helpers import TESTS, package_version, run
from testca import make_ca

CACHE_DIR = Path(os.environ.get("DUCKDNS_TEST_CACHE", "/var/cache/duckdns-tests"))
WORK_DIR = Path(os.environ.get("DUCKDNS_TEST_WORKDIR", "/var/tmp"))
SUITE = "bookworm"  # the default release: the one the host runs (Debian 12)
# Every release the package is tested on; a scenario marked ``both_suites`` runs on each.
SUITES = ("bookworm", "trixie")
TEST_DIR_IN_CONTAINER = "/run/duckdns-test"

# Installed into the booted-container base: the package's runtime dependencies
# (python3-requests, debconf) and what the tests drive it with.
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
    "python3-dnspython",  # tests/dnsserver.py, run inside by test_dualstack.py
]
# Foreign-architecture chroots: no systemd booted, only what `apt install ./duckdns.deb`
# and `duckdns update` need.
CHROOT_PACKAGES = ["python3", "python3-requests", "debconf", "ca-certificates", "apt-utils"]
# A host-architecture root of another release (not booted) to run the unit tests and
# `make deb` in: the Makefile's BUILD_DEPS and TEST_DEPS that tests/unit and the build
# use (groff/man-db for the pages, restic/borg/rsync for the README examples, systemd for
# systemd-analyze, openssl for the test CA), and lintian of that release.
DEVROOT_PACKAGES = [
    "python3",
    "python3-requests",
    "python3-pytest",
    "python3-debian",
    "python3-dnspython",  # tests/dnsserver.py
    "python3-trustme",  # tests/testca.py
    "python3-prometheus-client",  # the metrics test parses with its parser
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
# Bump when the recipe below changes in a way the package lists do not show.
RECIPE_VERSION = "3"

_phase_log: list[tuple[str, float]] = []
_reporter = None  # set by conftest: a callable(str) that prints past pytest's capture


def log(message: str) -> None:
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
def _cache_lock(name: str):
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with open(CACHE_DIR / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _host_arch() -> str:
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


def _pack(root: Path, tarball: Path) -> None:
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


def _remove_tree(path: Path) -> None:
    """rm -rf that never crosses into a mount (a leftover bind would otherwise be emptied)."""
    if path.exists():
        subprocess.run(["rm", "-rf", "--one-file-system", str(path)], check=False)


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path.resolve())
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mnt = line.split()[4].encode().decode("unicode_escape")
        if mnt == prefix or mnt.startswith(prefix + "/"):
            found.append(mnt)
    return found


def _unmount_all_under(path: Path) -> None:
    for mnt in sorted(_mounts_under(path), key=len, reverse=True):
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
        core = ["systemd", "systemd-sysv", "dbus"] if kind == "rootfs" else ["ca-certificates"]
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
        if kind == "rootfs":
            _prepare_bootable(root)
        _unmount_all_under(root)
        with phase(f"pack {tarball.name}"):
            _pack(root, tarball)
    finally:
        _unmount_all_under(tmpdir)
        _remove_tree(tmpdir)


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
    ):
        link = root / "etc/systemd/system" / unit
        if not link.exists():
            link.symlink_to("/dev/null")
    # Root without a password is fine for a throwaway container with no network.
    (root / "etc/securetty").unlink(missing_ok=True)


def _packages(kind: str) -> list[str]:
    return {"rootfs": BASE_PACKAGES, "devroot": DEVROOT_PACKAGES}.get(kind, CHROOT_PACKAGES)


def base_tarball(
    kind: str = "rootfs",
    arch: str | None = None,
    packages: list[str] | None = None,
    suite: str = SUITE,
) -> Path:
    """The cached tarball for ``kind`` of release ``suite`` ("rootfs": bootable,
    "chroot": foreign arch, "devroot": unit tests and `make deb` of that release)."""
    arch = arch or _host_arch()
    if packages is None:
        packages = _packages(kind)
    key = _cache_key(kind, arch, packages, suite)
    tarball = CACHE_DIR / f"{kind}-{suite}-{arch}-{key}.tar.zst"
    tag = _build_tag(kind, arch, suite)
    with _cache_lock(tag):
        if not tarball.exists():
            # A build that was killed (not just failed) may have left its directory.
            for stale in CACHE_DIR.glob(f".build-{tag}-*"):
                _unmount_all_under(stale)
                _remove_tree(stale)
            if arch != _host_arch():
                ensure_binfmt(arch)
            with phase(f"cache build {tarball.name}"):
                _build_root(kind, arch, packages, tarball, suite)
            # Older tarballs of the same kind and arch are stale now.
            for old in CACHE_DIR.glob(f"{kind}-{suite}-{arch}-*.tar.zst"):
                if old != tarball:
                    old.unlink(missing_ok=True)
    return tarball


def cached(kind: str = "rootfs", arch: str | None = None, suite: str = SUITE) -> bool:
    arch = arch or _host_arch()
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
# The .deb under test
# --------------------------------------------------------------------------------------


def copy_checkout(dest: Path) -> Path:
    """The working tree as git sees it (tracked files, current contents) copied to dest."""
    files = run(["git", "-C", str(REPO), "ls-files", "-z"]).stdout.split("\0")
    for name in filter(None, files):
        src = REPO / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def find_deb() -> Path | None:
    """dist/duckdns_<version>-<rev>_all.deb, the newest revision; None when not built.

    DUCKDNS_TEST_DEB=/path/to.deb overrides (to test a .deb built elsewhere)."""
    if os.environ.get("DUCKDNS_TEST_DEB"):
        return Path(os.environ["DUCKDNS_TEST_DEB"])
    debs = sorted(
        REPO.glob(f"dist/duckdns_{package_version()}-*_all.deb"), key=lambda p: p.stat().st_mtime
    )
    return debs[-1] if debs else None


# --------------------------------------------------------------------------------------
# Booted containers
# --------------------------------------------------------------------------------------

CONTAINER_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
    "TERM": "xterm-256color",
    "USER": "root",
    "LOGNAME": "root",
}


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                kids += [int(x) for x in (task / "children").read_text().split()]
    return kids


def _is_container_init(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    m = re.search(r"^NSpid:\s*(.+)$", status, re.M)
    return bool(m) and m.group(1).split()[-1] == "1" and len(m.group(1).split()) > 1


class Container:
    """A fresh copy of the cached root, booted with systemd-nspawn on a private network.

    Use as a context manager (or call :meth:`close`): the container is powered off (or
    killed), the tmux sessions and servers started for it are stopped, and its copy of
    the root and the host-side test directory are removed, whatever happened.
    """

    def __init__(self, name: str | None = None, tarball: Path | None = None):
        self.name = name or f"duckdns-{uuid.uuid4().hex[:8]}"
        self.tarball = tarball
        self.tmp = Path(tempfile.mkdtemp(prefix=f"{self.name}-", dir=WORK_DIR))
        # A tmpfs for the copy: extracting onto it takes under a second instead of ~10 s
        # on disk, and removing it is instant. Unmounted in close().
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=6G,mode=0755", "duckdns-test", str(self.tmp)],
            capture_output=True,
        )
        self.root = self.tmp / "root"
        # Host side of /run/duckdns-test: server record/control files, certificates, the
        # test server script. Outside the container's root tree on purpose: the record
        # holds the token, and the tests grep the whole root for it.
        self.hostdir = self.tmp / "hostdir"
        self.hostdir.mkdir()
        self.nspawn: subprocess.Popen | None = None
        self.pid: int | None = None
        self.console_log = self.tmp / "console.log"
        self._cleanups: list = []  # callables run (LIFO) before power-off
        self.closed = False

    # -- life cycle ----------------------------------------------------------------------

    def __enter__(self) -> Container:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def prepare(self) -> Container:
        """Extract a fresh root (does not boot it)."""
        extract(self.tarball or base_tarball("rootfs"), self.root)
        return self

    def boot(self, timeout: float = 60) -> Container:
        if not (self.root / "usr").exists():
            self.prepare()
        cmd = [
            "systemd-nspawn",
            "--quiet",
            "--register=no",
            "--keep-unit",
            "--console=read-only",
            "--private-network",
            "--system-call-filter=bpf",
            "--capability=CAP_BPF,CAP_PERFMON",
            f"--machine={self.name}",
            f"--bind={self.hostdir}:{TEST_DIR_IN_CONTAINER}",
            "-b",
            "-D",
            str(self.root),
        ]
        with phase("boot container"):
            with open(self.console_log, "wb") as out:
                self.nspawn = subprocess.Popen(
                    cmd,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            self.pid = self._find_init(timeout)
            self.wait_running(timeout)
        return self

    def _find_init(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.nspawn.poll() is not None:
                raise RuntimeError(
                    f"systemd-nspawn exited ({self.nspawn.returncode}):\n"
                    + self.console_log.read_text(errors="replace")
                )
            # PID 1 of the container is a child (or grandchild) of systemd-nspawn.
            todo = _children(self.nspawn.pid)
            while todo:
                pid = todo.pop()
                if _is_container_init(pid):
                    return pid
                todo += _children(pid)
            time.sleep(0.05)
        raise RuntimeError("the container's PID 1 did not appear")

    def wait_running(self, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            state = self.exec(["systemctl", "is-system-running"], check=False).stdout.strip()
            if state in ("running", "degraded"):
                return state
            time.sleep(0.1)
        raise RuntimeError(
            f"container did not finish booting (state {state!r}):\n"
            + self.exec(["systemctl", "--failed", "--no-pager"], check=False).stdout
        )

    @property
    def running(self) -> bool:
        return self.nspawn is not None and self.nspawn.poll() is None

    def defer(self, fn) -> None:
        """Run ``fn()`` at close, before the container is powered off."""
        self._cleanups.append(fn)

    def poweroff(self, timeout: float = 30) -> None:
        if not self.running:
            return
        with phase("power off container"):
            with contextlib.suppress(Exception):
                # SIGRTMIN+4 to systemd as PID 1 = poweroff.
                os.kill(self.pid, signal.SIGRTMIN + 4)
            try:
                self.nspawn.wait(timeout)
            except subprocess.TimeoutExpired:
                log(f"[system] {self.name}: no clean power-off within {timeout}s, killing")
                self.kill()

    def kill(self) -> None:
        if self.nspawn is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.nspawn.pid, signal.SIGKILL)
        if self.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)  # takes the whole PID namespace with it
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.nspawn.wait(15)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            while self._cleanups:
                with contextlib.suppress(Exception):
                    self._cleanups.pop()()
            self.poweroff()
        finally:
            self.kill()
            _unmount_all_under(self.tmp)
            _remove_tree(self.tmp)
            with contextlib.suppress(OSError):
                self.tmp.rmdir()

    # -- running things inside -----------------------------------------------------------

    def nsenter(self, *, env: dict | None = None) -> list[str]:
        """The command prefix that runs a program inside the container as root."""
        if not self.running or self.pid is None:
            raise RuntimeError("container is not running")
        environ = dict(CONTAINER_ENV, **(env or {}))
        return [
            "nsenter",
            "-t",
            str(self.pid),
            "-a",
            "--",
            "env",
            "-i",
            *(f"{k}={v}" for k, v in environ.items()),
        ]

    def exec(
        self,
        cmd: list[str],
        check: bool = True,
        env: dict | None = None,
        timeout: float = 300,
        input: str | None = None,
    ) -> subprocess.CompletedProcess:
        return run(
            [*self.nsenter(env=env), *cmd],
            check=check,
            timeout=timeout,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
        )

    def sh(self, script: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
        return self.exec(["/bin/sh", "-c", script], check=check, **kw)

    def write(self, path: str, content: str, mode: int = 0o644) -> None:
        """Write a file inside the container (path as seen inside)."""
        host = self.root / path.lstrip("/")
        host.parent.mkdir(parents=True, exist_ok=True)
        host.write_text(content)
        os.chmod(host, mode)

    def read(self, path: str) -> str:
        return (self.root / path.lstrip("/")).read_text(errors="replace")

    def journal(self, *args: str) -> str:
        """The container's journal (from inside while running, else from its files)."""
        cmd = ["journalctl", "--no-pager", "-o", "short-precise", *args]
        if self.running:
            proc = self.exec(cmd, check=False)
        else:
            proc = run([*cmd, "-D", str(self.root / "var/log/journal")], check=False)
        return proc.stdout + proc.stderr

    def install_deb(
        self,
        deb: Path,
        *,
        env: dict | None = None,
        check: bool = True,
        frontend: str = "noninteractive",
    ) -> subprocess.CompletedProcess:
        """``apt install ./duckdns_….deb`` non-interactively (for prompts use :class:`Tmux`)."""
        dest = self.root / "root" / deb.name
        shutil.copy2(deb, dest)
        return self.exec(
            ["apt-get", "install", "-y", f"/root/{deb.name}"],
            env={"DEBIAN_FRONTEND": frontend, **(env or {})},
            check=check,
        )

    def copy_in(self, src: Path, dest: str) -> str:
        target = self.root / dest.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)
        return dest

    def files(self) -> set[str]:
        """Every path in the root (as seen inside), without the virtual file systems."""
        proc = self.exec(
            [
                "find",
                "/",
                "-xdev",
                "-path",
                "/proc",
                "-prune",
                "-o",
                "-path",
                "/sys",
                "-prune",
                "-o",
                "-path",
                "/dev",
                "-prune",
                "-o",
                "-path",
                "/run",
                "-prune",
                "-o",
                "-path",
                "/tmp",
                "-prune",
                "-o",
                "-print",
            ]
        )
        return set(proc.stdout.splitlines())

    def grep_root(self, needle: str, exclude: tuple[str, ...] = ()) -> list[str]:
        """Files under the container's root (host view, so nothing is hidden) holding needle."""
        cmd = ["grep", "-r", "-l", "-a", "-F", "--no-messages", needle, str(self.root)]
        hits = run(cmd, check=False).stdout.splitlines()
        inside = ["/" + str(Path(h).relative_to(self.root)) for h in hits]
        return [p for p in inside if p not in exclude]

    def wait_for(self, predicate, timeout: float, interval: float = 0.5, what: str = "condition"):
        deadline = time.monotonic() + timeout
        while True:
            result = predicate()
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")
            time.sleep(interval)

    def spawn(self, unit: str, argv: list[str], log_path: str | None = None) -> None:
        """Start ``argv`` inside as the transient service ``unit`` (systemd-run): the
        container's systemd reaps it and stops it at power-off (a process nsenter'd in and
        orphaned would be a zombie nobody reaps). Stop it with ``systemctl stop unit``.
        E.g. an HTTP server for an apt repository on the container's loopback."""
        props = []
        if log_path:
            props = [
                "-p",
                f"StandardOutput=file:{log_path}",
                "-p",
                f"StandardError=file:{log_path}",
            ]
        self.exec(["systemctl", "reset-failed", unit], check=False)
        self.exec(["systemd-run", f"--unit={unit}", "--collect", "--quiet", *props, *argv])

    def serve(self, unit: str, argv: list[str], ready, what: str, timeout: float = 20) -> None:
        """:meth:`spawn` a test server, its output in ``<unit>.log`` of :attr:`hostdir`, and
        wait until ``ready()``; a server whose unit ends first, or that is not ready in
        time, fails with that log."""
        log = self.hostdir / f"{unit}.log"
        self.spawn(unit, argv, log_path=f"{TEST_DIR_IN_CONTAINER}/{log.name}")
        deadline = time.monotonic() + timeout
        while not ready():
            active = self.unit_property(unit, "ActiveState")
            if active not in ("active", "activating") or time.monotonic() > deadline:
                text = log.read_text(errors="replace") if log.exists() else ""
                raise RuntimeError(f"{what} did not start ({active}):\n{text}")
            time.sleep(0.05)

    # -- the updater's unit --------------------------------------------------------------

    def unit_property(self, unit: str, prop: str) -> str:
        return self.exec(["systemctl", "show", "-P", prop, unit], check=False).stdout.strip()


# --------------------------------------------------------------------------------------
# The DuckDNS test server inside the container
# --------------------------------------------------------------------------------------


class DuckDNS:
    """tests/duckdns_server.py running in the container on 127.0.0.1:443.

    It runs as the transient unit ``duckdns-test-server.service`` inside the container.

    ``www.duckdns.org`` resolves to 127.0.0.1 inside and the test CA is in the
    container's trust store, so the package's default server is this one.
    """

    def __init__(
        self, container: Container, token: str | None = None, domains: list[str] | None = None
    ):
        self.c = container
        self.token = token
        self.domains = domains
        self.running = False
        self.record = container.hostdir / "requests.jsonl"
        self.control = container.hostdir / "control.json"
        self._setup_tls()
        container.defer(self.stop)

    UNIT = "duckdns-test-server.service"  # the first start's; restarts get -2, -3, …

    def _setup_tls(self) -> None:
        hostdir = self.c.hostdir
        ca = make_ca(hostdir / "ca")
        self.cert, self.key = ca.issue(
            hostdir / "srv", ["www.duckdns.org", "localhost", "127.0.0.1"]
        )
        shutil.copy2(TESTS / "duckdns_server.py", hostdir / "duckdns_server.py")
        self.c.copy_in(ca.cert_path, "/usr/local/share/ca-certificates/duckdns-test-ca.crt")
        hosts = self.c.root / "etc/hosts"
        text = hosts.read_text()
        if "www.duckdns.org" not in text:
            hosts.write_text(text + "127.0.0.1 www.duckdns.org\n")
        self.c.exec(["update-ca-certificates"])
        # The key and certificate are read via the bind mount. The CA's key never reaches
        # the disk (tests/testca.py keeps it in memory), so nothing inside can sign.

    def _inside(self, path: Path) -> str:
        return f"{TEST_DIR_IN_CONTAINER}/{path.relative_to(self.c.hostdir)}"

    def start(self, token: str | None = None, domains: list[str] | None = None) -> DuckDNS:
        """(Re)start the server; with a token (and domains) it answers KO to others."""
        self.stop()
        if token is not None:
            self.token = token
        if domains is not None:
            self.domains = domains
        ready = self.c.hostdir / "server.ready"
        ready.unlink(missing_ok=True)
        args = [
            "python3",
            f"{TEST_DIR_IN_CONTAINER}/duckdns_server.py",
            "--certfile",
            self._inside(self.cert),
            "--keyfile",
            self._inside(self.key),
            "--host",
            "127.0.0.1",
            "--port",
            "443",
            "--record",
            self._inside(self.record),
            "--control",
            self._inside(self.control),
            "--ready-file",
            self._inside(ready),
        ]
        if self.token:
            tokfile = self.c.hostdir / "token"
            tokfile.write_text(self.token + "\n")
            args += ["--token-file", self._inside(tokfile)]
        if self.domains:
            args += ["--domains", ",".join(self.domains)]
        # A transient service inside the container: systemd there starts, reaps and stops
        # it (a process nsenter'd in and orphaned would be a zombie nobody reaps).
        # A new unit name per start: a stopped --collect unit may not be unloaded yet.
        self.starts = getattr(self, "starts", 0) + 1
        self.unit = (
            self.UNIT
            if self.starts == 1
            else self.UNIT.replace(".service", f"-{self.starts}.service")
        )
        self.running = True
        try:
            self.c.serve(self.unit, args, ready.exists, "test DuckDNS server")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.running and self.c.running:
            self.c.exec(["systemctl", "stop", self.unit], check=False, timeout=30)
        self.running = False

    def set_mode(self, mode: str, **extra) -> None:
        tmp = self.control.with_suffix(".tmp")
        tmp.write_text(json.dumps({"mode": mode, **extra}))
        os.replace(tmp, self.control)

    def requests(self) -> list[dict]:
        if not self.record.exists():
            return []
        return [json.loads(line) for line in self.record.read_text().splitlines() if line]

    def updates(self) -> list[dict]:
        return [r for r in self.requests() if r["path"] == "/update"]

    def wait_requests(self, n: int, timeout: float) -> list[dict]:
        return self.c.wait_for(
            lambda: len(self.updates()) >= n and self.updates(),
            timeout,
            what=f"{n} update request(s) at the test DuckDNS server",
        )


# --------------------------------------------------------------------------------------
# A terminal: tmux running a command inside the container
# --------------------------------------------------------------------------------------


class Tmux:
    """A tmux session running ``command`` in the container, as a person at a terminal.

    tmux itself runs inside the container (its own socket, a unique name), so every
    process of the session belongs to the container and dies with it; :meth:`kill`
    ends it earlier. Read the screen with :meth:`screen`, type with :meth:`type`.
    """

    def __init__(
        self,
        container: Container,
        command: str,
        env: dict | None = None,
        width: int = 100,
        height: int = 30,
    ):
        self.c = container
        self.env = env or {}
        self.socket = f"duckdns-test-{uuid.uuid4().hex[:10]}"
        self.session = "t"
        self.done_file = container.hostdir / f"{self.socket}.rc"
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in self.env.items())
        inner = (f"export {exports}; " if exports else "") + (
            f"{command}; echo $? > {TEST_DIR_IN_CONTAINER}/{self.done_file.name}; "
            "exec sleep infinity"
        )
        self._tmux(
            "new-session",
            "-d",
            "-s",
            self.session,
            "-x",
            str(width),
            "-y",
            str(height),
            shlex.join(["/bin/bash", "-c", inner]),
        )
        container.defer(self.kill)

    def _tmux(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.c.exec(
            ["tmux", "-L", self.socket, "-f", "/dev/null", *args], check=check, env=self.env
        )

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", self.session, check=False).stdout

    def wait_for(self, pattern: str, timeout: float = 60) -> str:
        rx = re.compile(pattern, re.S | re.I)
        deadline = time.monotonic() + timeout
        while True:
            text = self.screen()
            if rx.search(text):
                return text
            if self.exit_code() is not None:
                text = self.screen()
                if rx.search(text):
                    return text
                raise AssertionError(
                    f"command ended ({self.exit_code()}) before {pattern!r} "
                    f"appeared; screen:\n{text}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {pattern!r}; screen:\n{text}")
            time.sleep(0.2)

    def type(self, text: str) -> None:
        """Type literally (send-keys -l: no key names, ';' is just a character)."""
        self._tmux("send-keys", "-t", self.session, "-l", text)
        time.sleep(0.1)

    def key(self, *names: str) -> None:
        """Press named keys: Enter, Tab, BSpace, End, C-u, …"""
        self._tmux("send-keys", "-t", self.session, *names)
        time.sleep(0.1)

    def clear_field(self, n: int = 80) -> None:
        """Empty a pre-filled whiptail input: go to the end and erase."""
        self.key("End")
        self._tmux("send-keys", "-t", self.session, "-N", str(n), "BSpace")
        time.sleep(0.1)

    def exit_code(self) -> int | None:
        try:
            return int(self.done_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def wait_exit(self, timeout: float = 120) -> int:
        deadline = time.monotonic() + timeout
        while self.exit_code() is None:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"terminal command still running after {timeout}s; screen:\n{self.screen()}"
                )
            time.sleep(0.2)
        return self.exit_code()

    def kill(self) -> None:
        if self.c.running:
            self._tmux("kill-server", check=False)


# --------------------------------------------------------------------------------------
# Foreign-architecture chroots (qemu-user), offline
# --------------------------------------------------------------------------------------


class Chroot:
    """A fresh copy of a cached foreign-architecture root, used with ``chroot`` under
    qemu-user inside its own network namespace (loopback only) and mount namespace
    (its /proc, /sys and /dev mounts exist only there and vanish with it).

    systemd is not booted here: under qemu-user the syscall filter is not enforced and
    PrivateUsers= fails, so a boot would prove nothing about the hardened unit.
    """

    def __init__(self, arch: str, kind: str = "chroot", suite: str = SUITE):
        self.arch = arch
        self.tarball = base_tarball(kind, arch, suite=suite)
        if arch != _host_arch():
            ensure_binfmt(arch)
        self.tmp = Path(tempfile.mkdtemp(prefix=f"duckdns-chroot-{arch}-", dir=WORK_DIR))
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=4G,mode=0755", "duckdns-test", str(self.tmp)],
            capture_output=True,
        )
        self.root = self.tmp / "root"
        self.hostdir = self.tmp / "hostdir"
        self.hostdir.mkdir()
        self.holder: subprocess.Popen | None = None

    def __enter__(self) -> Chroot:
        try:
            extract(self.tarball, self.root)
            # A process holding a new network + mount namespace; everything below runs
            # in those namespaces with nsenter.
            self.holder = subprocess.Popen(
                ["unshare", "--net", "--mount", "--propagation=private", "--", "sleep", "infinity"],
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
            deadline = time.monotonic() + 10
            while os.readlink(f"/proc/{self.holder.pid}/ns/net") == os.readlink(
                "/proc/self/ns/net"
            ):
                if time.monotonic() > deadline:
                    raise RuntimeError("unshare did not make a network namespace")
                time.sleep(0.02)
            self.host(["ip", "link", "set", "lo", "up"])
            self.host(["mount", "-t", "proc", "proc", str(self.root / "proc")])
            self.host(["mount", "--rbind", "/dev", str(self.root / "dev")])
            self.host(["mount", "-t", "sysfs", "sysfs", str(self.root / "sys")])
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def bind(self, src: Path, dest: str, readonly: bool = True) -> None:
        """Bind-mount a host directory at ``dest`` (inside), only in the chroot's mount
        namespace (gone with it)."""
        target = self.root / dest.lstrip("/")
        target.mkdir(parents=True, exist_ok=True)
        self.host(["mount", "--bind", str(src), str(target)])
        if readonly:
            self.host(["mount", "-o", "remount,bind,ro", str(target)])

    def host(self, cmd: list[str], check: bool = True, **kw) -> subprocess.CompletedProcess:
        """Run a host program inside the chroot's network and mount namespaces."""
        return run(
            ["nsenter", "-t", str(self.holder.pid), "-n", "-m", "--", *cmd], check=check, **kw
        )

    def exec(
        self, cmd: list[str], check: bool = True, env: dict | None = None, timeout: float = 600
    ) -> subprocess.CompletedProcess:
        environ = dict(CONTAINER_ENV, DEBIAN_FRONTEND="noninteractive", **(env or {}))
        return self.host(
            [
                "chroot",
                str(self.root),
                "env",
                "-i",
                *(f"{k}={v}" for k, v in environ.items()),
                *cmd,
            ],
            check=check,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def close(self) -> None:
        if self.holder is not None and self.holder.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.holder.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.holder.wait(10)
        # The chroot's own mounts lived in the holder's mount namespace; only the tmpfs
        # is left on the host.
        _unmount_all_under(self.tmp)
        _remove_tree(self.tmp)
        with contextlib.suppress(OSError):
            self.tmp.rmdir()


# --------------------------------------------------------------------------------------
# The package in a booted container: installs, answers, timer runs
# --------------------------------------------------------------------------------------

CONF = "/var/lib/private/duckdns/duckdns.conf"
DYNAMIC_UIDS = range(61184, 65520)  # systemd's DynamicUser= range

# An admin's drop-in for the scenarios that wait for the timer: it replaces the shipped
# schedule (an empty On*Sec= resets every one of them, systemd.timer(5)) with a first run
# 2 s after the timer starts, then one a minute. Not added to it: with AccuracySec=1s
# the shipped OnBootSec=30 then fires apart from the 2 s run, and two runs back to back
# meet a systemd 252 race under this host's cgroup v1 (the second one fails with
# 219/CGROUP: "Failed to attach to cgroup", measured). The shipped schedule itself is
# what test_install_preseeded and the unmarked bookworm scenarios wait for.
FAST_TIMER = "[Timer]\nOnBootSec=\nOnActiveSec=2s\nOnUnitActiveSec=1min\nAccuracySec=1s\n"


def fast_timer(c: Container) -> None:
    """Write the drop-in before the install: the package's own start of the timer (and
    every restart by reconfigure or reinstall) then uses it."""
    c.write("/etc/systemd/system/duckdns.timer.d/test-fast.conf", FAST_TIMER)


def preseed(
    c: Container, domains: str | None = None, token: str | None = None, ipv6: bool | None = None
) -> None:
    """debconf-set-selections, as a fleet install does. The answers pass through a file
    in the host-side test directory, never the container's root tree."""
    lines = []
    if domains is not None:
        lines.append(f"duckdns duckdns/domains string {domains}")
    if token is not None:
        lines.append(f"duckdns duckdns/token password {token}")
    if ipv6 is not None:
        lines.append(f"duckdns duckdns/ipv6 boolean {'true' if ipv6 else 'false'}")
    seed = c.hostdir / "seed"
    seed.write_text("\n".join(lines) + "\n")
    try:
        c.exec(["debconf-set-selections", f"{TEST_DIR_IN_CONTAINER}/seed"])
    finally:
        seed.unlink()


def copy_deb(c: Container, deb: Path) -> str:
    return c.copy_in(deb, f"/root/{deb.name}")


def apt_install_terminal(
    c: Container, deb: Path, frontend: str = "dialog", command: str | None = None
) -> Tmux:
    """``apt install ./duckdns_….deb`` in a terminal with the given debconf frontend."""
    copy_deb(c, deb)
    cmd = command or f"cd /root && apt install -y ./{deb.name}"
    return Tmux(c, cmd, env={"DEBIAN_FRONTEND": frontend, "TERM": "xterm"})


def answer_whiptail_input(term: Tmux, prompt: str, text: str, timeout: float = 90) -> str:
    """Wait for a whiptail input box showing ``prompt``, replace its content, press Enter.
    Returns the screen as it was just before Enter (to check what was shown)."""
    term.wait_for(prompt, timeout)
    term.clear_field()
    term.type(text)
    time.sleep(0.3)
    screen = term.screen()
    term.key("Enter")
    return screen


def service_show(c: Container, unit: str, *props: str) -> dict[str, str]:
    out = c.exec(
        ["systemctl", "show", unit, *(f"--property={p}" for p in props)], check=False
    ).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def service_finished_count(c: Container) -> int:
    """Finished runs of duckdns.service since boot (success or failure), from PID 1's log."""
    out = c.exec(
        ["journalctl", "--no-pager", "-o", "cat", "_PID=1", "-u", "duckdns.service"], check=False
    ).stdout
    return len(re.findall(r"^(?:Finished|Failed to start) duckdns\.service", out, re.M))


def wait_service_run(c: Container, after: int, timeout: float = 90) -> dict[str, str]:
    """Wait until duckdns.service has finished more than ``after`` runs; its last result."""
    c.wait_for(
        lambda: service_finished_count(c) > after,
        timeout,
        what=f"duckdns.service run #{after + 1} (from the timer)",
    )
    return service_show(c, "duckdns.service", "Result", "ExecMainStatus", "ExecMainCode")


def state_dir_owner(c: Container) -> int:
    return (c.root / "var/lib/private/duckdns").stat().st_uid


NOBODY = 65534


def systemd_version(c: Container) -> int:
    out = c.exec(["systemctl", "--version"]).stdout
    return int(re.search(r"^systemd (\d+)", out, re.M).group(1))


def state_dir_owners(c: Container) -> range | tuple[int, ...]:
    """Who owns /var/lib/private/duckdns on disk once the service has run as its dynamic
    user. systemd 252 (bookworm) chowns it recursively to that uid; systemd 257 (trixie)
    leaves it owned by nobody and maps nobody to the dynamic uid with an ID-mapped mount
    where the file system supports one (systemd 257 NEWS, "When DynamicUser= is combined
    with StateDirectory= …"), as the tmpfs here (kernel >= 6.3) does."""
    return (NOBODY,) if systemd_version(c) >= 257 else DYNAMIC_UIDS


def token_leaks(c: Container, token: str, allowed: tuple[str, ...] = (CONF,)) -> list[str]:
    """Every place the token is, but the allowed files: the whole root tree (journal files
    included), the container's own /run, /tmp and /dev/shm (not visible from the host),
    and the journal read through journalctl."""
    leaks = c.grep_root(token, exclude=allowed)
    if c.running:
        proc = c.exec(
            [
                "grep",
                "-r",
                "-l",
                "-a",
                "-F",
                "--no-messages",
                token,
                "/run",
                "/tmp",
                "/dev/shm",
                "--exclude-dir=duckdns-test",
            ],
            check=False,
        )
        leaks += [
            p
            for p in proc.stdout.splitlines()
            if not p.startswith(TEST_DIR_IN_CONTAINER + "/") and p not in allowed
        ]
        if token in c.journal():
            leaks.append("journalctl")
    return leaks


def kill_tree(c: Container, pid: int | str) -> list[str]:
    """A power cut for one process tree inside the container: stop every process under
    ``pid`` (inclusive), then SIGKILL them all. Returns the pids killed."""
    table = c.exec(["ps", "-e", "-o", "pid=,ppid="]).stdout.split()
    parent = dict(zip(table[0::2], table[1::2], strict=True))
    tree, grew = {str(pid)}, True
    while grew:
        new = {p for p, pp in parent.items() if pp in tree} - tree
        tree |= new
        grew = bool(new)
    pids = sorted(tree, key=int)
    c.exec(["kill", "-STOP", *pids], check=False)
    c.exec(["kill", "-KILL", *pids], check=False)
    return pids


# --------------------------------------------------------------------------------------
# piuparts
# --------------------------------------------------------------------------------------


def piuparts_tarball(suite: str = SUITE) -> Path:
    """A plain ``debootstrap --variant=minbase`` of ``suite``, as piuparts makes its own,
    packed as the --basetgz piuparts starts every test from (cached beside the rootfs)."""
    arch = _host_arch()
    key = _cache_key("piuparts", arch, [], suite)
    tarball = CACHE_DIR / f"piuparts-{suite}-{arch}-{key}.tar.gz"
    with _cache_lock(_build_tag("piuparts", arch, suite)):
        if tarball.exists():
            return tarball
        prefix = ".build-piuparts-" if suite == SUITE else f".build-piuparts-{suite}-"
        tmpdir = Path(tempfile.mkdtemp(prefix=prefix, dir=CACHE_DIR))
        root = tmpdir / "root"
        tmp = tarball.with_name(f".{tarball.name}.{os.getpid()}.tmp")
        try:
            with phase(f"cache build {tarball.name}"):
                run(["debootstrap", "--variant=minbase", suite, str(root), debian_mirror()])
                _unmount_all_under(root)
                run(["tar", "-C", str(root), "--numeric-owner", "-czf", str(tmp), "."])
                os.replace(tmp, tarball)
        finally:
            tmp.unlink(missing_ok=True)
            _unmount_all_under(tmpdir)
            _remove_tree(tmpdir)
        for old in CACHE_DIR.glob(f"piuparts-{suite}-{arch}-*.tar.gz"):
            if old != tarball:
                old.unlink(missing_ok=True)
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
