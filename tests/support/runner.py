"""The one way the unit tests run the updater: ``duckdns [--config CFG] ARGS``.

In this process by default (``duckdns.cli.main``, output through pytest's ``capsys``), with
the world it sees under the test's control: the clock (``time.time``, frozen, moved on with
:meth:`Updater.later`, so timer runs hours apart take no real time) and the global IPv6
address the kernel shows (:attr:`Updater.ipv6`, None: none). The frozen clock is the whole
process's: dnspython measures its lifetimes with ``time.time`` and would wait for ever, so the
commands that look names up with it (``verify``, ``txt ... --for``) run as a process.

As a real process of Debian's ``/usr/bin/python3 -m duckdns`` (``process=True``) only where
a process is the point: signals, resource limits, the environment, the exit of the
interpreter, what a run imports, dnspython's look-ups, runs at once from threads. The call
is the same and so are the checks; the clock is the same too, moved with libfaketime
(Debian: faketime) once :meth:`Updater.later` was called. The kernel's IPv6 address cannot
be faked there: setting ``ipv6`` is refused.

Every call asserts that the token (CANARY) shows neither in argv nor in anything printed.
"""

from __future__ import annotations

import io
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import pytest

from support.helpers import CANARY, DEBIAN_PYTHON, ROOT, assert_no_canary, faketime_env

# What the updater reads from its environment (docs/design.md): a run in this process starts
# without them, as a process started by :meth:`Updater.__call__` does.
READ_FROM_ENV = ("JOURNAL_STREAM", "STATE_DIRECTORY")

# Runs the real entry point, then writes the modules it imported (those the interpreter's own
# start-up, site and .pth files had loaded already are not counted) to the file in argv[1].
LAUNCHER = """
import sys
before = set(sys.modules)
sys.path.insert(0, {root!r})
out = sys.argv.pop(1)
from duckdns.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
with open(out, "w") as f:
    f.write("\\n".join(sorted(m for m in sys.modules if m not in before)))
sys.exit(code)
"""


class Ran(NamedTuple):
    """What a run gave: ``code, out, err = run(...)`` or ``.returncode``, ``.stdout``..."""

    returncode: int
    stdout: str
    stderr: str


class Updater:
    """``duckdns [--config CFG] ARGS`` (``update`` when no ARGS), see the module's docstring."""

    def __init__(
        self,
        monkeypatch: pytest.MonkeyPatch | None = None,
        capsys: pytest.CaptureFixture[str] | None = None,
        cfg: Path | None = None,
        process: bool = False,
    ) -> None:
        """In this process, ``monkeypatch`` and ``capsys`` (the test's) are needed; a process
        (``process=True``) needs neither."""
        self.monkeypatch = monkeypatch
        self.capsys = capsys
        self.cfg = cfg
        self.process = process
        self.ipv6: str | None = None
        self.now = time.time()
        self.offset = 0.0  # how far later() moved the clock: what a process is given
        # The modules the last process run with ``modules=True`` imported.
        self.modules: set[str] = set()
        if not process:
            from duckdns import localaddr

            assert monkeypatch and capsys, "a run in this process needs monkeypatch and capsys"
            monkeypatch.setattr(localaddr, "global_ipv6", lambda *a, **k: self.ipv6)
            monkeypatch.setattr(time, "time", lambda: self.now)

    def later(self, seconds: float) -> None:
        """Move this run's clock ``seconds`` on (the next run sees it; nothing sleeps)."""
        self.now += seconds
        self.offset += seconds

    def __call__(
        self,
        *argv: str,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        stdin: str | None = None,
        timeout: float = 90,
        modules: bool = False,
        memory: int | None = None,
    ) -> Ran:
        """Run once; ``env`` adds to the run's environment, ``stdin`` is what it reads.

        ``timeout`` (subprocess.TimeoutExpired past it), ``modules`` (record
        :attr:`modules`) and ``memory`` (its address space's limit, bytes) need
        ``process=True``.
        """
        args = [*(("--config", str(self.cfg)) if self.cfg else ()), *(argv or ("update",))]
        assert CANARY not in " ".join(args), "the token in argv"
        if self.process:
            ran = self._in_a_process(args, env, cwd, stdin, timeout, modules, memory)
        else:
            assert not modules and memory is None, "a process's own needs process=True"
            ran = self._here(args, env, cwd, stdin)
        assert_no_canary(ran.stdout, ran.stderr, where=f"the output of duckdns {' '.join(args)}")
        return ran

    def _here(self, args: list[str], env, cwd, stdin) -> Ran:
        from duckdns.cli import main

        with self.monkeypatch.context() as mp:
            for name in READ_FROM_ENV:
                mp.delenv(name, raising=False)
            for name, value in (env or {}).items():
                mp.setenv(name, value)
            if cwd is not None:
                mp.chdir(cwd)
            # What it reads: ``stdin``, else nothing (a process's stdin is /dev/null).
            mp.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO((stdin or "").encode())))
            try:
                code = main(args)
            except SystemExit as exc:  # argparse's --help and usage errors, as sys.exit sees them
                code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
        out, err = self.capsys.readouterr()
        return Ran(code, out, err)

    def _in_a_process(self, args: list[str], env, cwd, stdin, timeout, modules, memory) -> Ran:
        if self.ipv6 is not None:
            raise AssertionError("a process sees the kernel's own IPv6 address: run in-process")
        full_env = {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "PYTHONPATH": str(ROOT),
            "LANG": "C.UTF-8",
            "HOME": str(cwd or ROOT),
        }
        if self.offset:
            try:
                full_env.update(faketime_env(f"{round(self.offset):+d}"))
            except LookupError as exc:
                pytest.skip(str(exc))
        full_env.update(env or {})
        if modules:
            import tempfile

            with tempfile.NamedTemporaryFile("r", prefix="duckdns-modules-") as listing:
                command = ["-c", LAUNCHER.format(root=str(ROOT)), listing.name]
                proc = self._spawn(command, args, full_env, cwd, stdin, timeout, memory)
                self.modules = set(listing.read().split())
        else:
            proc = self._spawn(["-m", "duckdns"], args, full_env, cwd, stdin, timeout, memory)
        return Ran(proc.returncode, proc.stdout, proc.stderr)

    @staticmethod
    def _spawn(command, args, env, cwd, stdin, timeout, memory) -> subprocess.CompletedProcess:
        given = {"input": stdin} if stdin is not None else {"stdin": subprocess.DEVNULL}
        if memory is not None:
            import resource

            limit = (memory, memory)
            given["preexec_fn"] = lambda: resource.setrlimit(resource.RLIMIT_AS, limit)
        return subprocess.run(
            [DEBIAN_PYTHON, *command, *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            cwd=cwd or ROOT,
            check=False,
            **given,
        )
