"""Booted containers, a terminal inside one, and chroots in a namespace of their own.

* :class:`Container` — a fresh copy of a cached root (:mod:`roots`) on a tmpfs, booted
  with ``systemd-nspawn -b`` on a private network (only its own loopback). Commands run
  inside with ``nsenter -t <pid 1> -a``. :meth:`Container.close` always powers it off,
  kills what is left and removes the copy. :meth:`Container.serve` starts a test server
  inside as a transient unit.
* :class:`Tmux` — a terminal (a tmux session on its own socket) running a command in
  the container, for whiptail and readline prompts typed as a person types them.
* :class:`Chroot` — a root of another release or architecture (qemu-user), run inside
  ``unshare --net`` (loopback only) and a mount namespace of its own.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

from roots import (
    SUITE,
    base_tarball,
    ensure_binfmt,
    extract,
    host_arch,
    log,
    phase,
    remove_workdir,
    tmpfs_workdir,
)
from support.helpers import run

# The host directory of each container is bind-mounted here (outside its root tree).
TEST_DIR_IN_CONTAINER = "/run/duckdns-test"

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
        self.tmp = tmpfs_workdir(f"{self.name}-", "6G")  # removed in close()
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
            remove_workdir(self.tmp)

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

    def enable_at_boot(
        self, unit: str, argv: list[str], before: tuple[str, ...] = (), ready: str = ""
    ) -> None:
        """Before the first boot: ``argv`` as a service of the root, started at every
        boot before the units in ``before``, its output in ``<unit>.log`` of
        :attr:`hostdir`; with ``ready`` (a shell condition), the unit counts as started
        only once it holds. For what a first boot needs up before it (cloud-init's
        stages install from a repository, the timer's first run)."""
        log = f"{TEST_DIR_IN_CONTAINER}/{unit}.log"
        lines = ["[Unit]", f"Description=test server {unit}"]
        lines += [f"Before={' '.join(before)}"] if before else []
        lines += [
            "[Service]",
            f"ExecStart={shlex.join(argv)}",
            f"StandardOutput=file:{log}",
            f"StandardError=file:{log}",
        ]
        if ready:
            lines.append(
                f"ExecStartPost=/bin/sh -c {shlex.quote(f'until {ready}; do sleep 0.1; done')}"
            )
        lines += ["[Install]", "WantedBy=multi-user.target", ""]
        self.write(f"/etc/systemd/system/{unit}", "\n".join(lines))
        wants = self.root / "etc/systemd/system/multi-user.target.wants"
        wants.mkdir(parents=True, exist_ok=True)
        (wants / unit).symlink_to(f"/etc/systemd/system/{unit}")

    # -- the updater's unit --------------------------------------------------------------

    def unit_property(self, unit: str, prop: str) -> str:
        return self.exec(["systemctl", "show", "-P", prop, unit], check=False).stdout.strip()


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
        if arch != host_arch():
            ensure_binfmt(arch)
        self.tmp = tmpfs_workdir(f"duckdns-chroot-{arch}-", "4G")
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
        remove_workdir(self.tmp)
