"""Run untrusted library code in a child process the parent can always stop.

duckdns.notify sends through Apprise, whose plugins read whole answers into memory
(``requests`` inflates a gzip body whole; ``smtplib`` keeps every line of a multi-line
reply) and catch the exceptions an alarm raises in their own ``finally:`` blocks, where
they wait again. No bound set inside the updater's own process holds against that, so
:func:`run` forks: the child lowers its own limits (:data:`MEMORY` of data, CPU time),
silences its standard streams, runs the job and writes a short verdict on a pipe
(``os.pipe``: the unit allows no AF_UNIX socket pair); the parent waits for it on the
monotonic clock only, kills the child (SIGKILL) at the bound and reaps it. The parent
runs no library code while it waits, so nothing the other side does can hold it.

Under the unit (debian/duckdns.service) the limits hold too: glibc's setrlimit() is the
``prlimit64`` system call, which ``SystemCallFilter=@system-service`` allows (the
``@resources`` group it denies names ``setrlimit`` only), and lowering one's own limit
needs no capability (tests/system/test_hardening.py sends to a gzip bomb under the unit).
"""

from __future__ import annotations

import os
import re
import select
import signal
import sys
import time
from collections.abc import Callable
from typing import NamedTuple

MIB = 1024 * 1024
# The data (heap) a child may add to what it holds at the fork, Apprise and its imports
# included (about 30 MiB on Debian 12's Apprise 1.2); the unit's MemoryMax= is sized
# above it. Added, not absolute: a child starts with its parent's heap (a run's is about
# 10 MiB; a test process holding a whole suite's can pass 96 MiB by itself).
MEMORY = 96 * MIB
VERDICT_MAX = 64  # bytes: a verdict is a word and a number
# A verdict: lower-case words and digits (never text from the other side).
_VERDICT = re.compile(rb"[a-z]+( [0-9]{1,3})?")


class Outcome(NamedTuple):
    """How a child ended: ``verdict`` what it wrote (b"" when none), ``ended`` one of
    "exited" (after a verdict or not), "killed" (by the parent at the bound),
    "cpu" (its CPU time ran out), "signal" (another signal: the kernel's OOM killer,
    most likely), "unstarted" (no pipe or no fork: ``verdict`` is b"errno N")."""

    verdict: bytes
    ended: str


def run(job: Callable[[], bytes], seconds: float) -> Outcome:
    """``job()`` in a child under :data:`MEMORY` and a CPU limit, at most ``seconds`` of
    wall-clock time. A job's MemoryError is the verdict b"memory", any other exception
    b"crash"; a verdict outside the grammar counts as none."""
    try:
        read_end, write_end = os.pipe()
        try:
            pid = os.fork()
        except OSError:
            os.close(read_end)
            os.close(write_end)
            raise
    except OSError as exc:
        return Outcome(b"errno %d" % (exc.errno or 0), "unstarted")
    if pid == 0:  # the child: never returns
        _child(job, seconds, read_end, write_end)
    os.close(write_end)
    deadline = time.monotonic() + seconds
    try:
        verdict = _read(read_end, deadline)
    finally:
        os.close(read_end)
    status = _reap(pid, deadline)
    if status is None:
        return Outcome(b"", "killed")
    if os.WIFSIGNALED(status):
        return Outcome(b"", "cpu" if os.WTERMSIG(status) == signal.SIGXCPU else "signal")
    return Outcome(verdict if _VERDICT.fullmatch(verdict) else b"", "exited")


def _read(fd: int, deadline: float) -> bytes:
    """What the child wrote, up to its end of the pipe closing or the deadline."""
    data = b""
    while len(data) <= VERDICT_MAX and (left := deadline - time.monotonic()) > 0:
        if not select.select([fd], [], [], left)[0]:
            continue
        chunk = os.read(fd, VERDICT_MAX + 1)
        if not chunk:
            break
        data += chunk
    return data


def _reap(pid: int, deadline: float) -> int | None:
    """The child's wait status once it has ended by the deadline; else it is killed
    (SIGKILL), reaped, and None says so."""
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        if time.monotonic() >= deadline:
            break
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return None


def _child(job: Callable[[], bytes], seconds: float, read_end: int, write_end: int) -> None:
    code = 0
    try:
        os.close(read_end)
        _limit(seconds)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):  # nothing the library prints reaches the parent's outputs
            os.dup2(null, fd)
        sys.stdout = sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - until os._exit
        try:
            verdict = job()
        except MemoryError:
            verdict = b"memory"
        except Exception:
            verdict = b"crash"
        os.write(write_end, verdict[:VERDICT_MAX])
    except BaseException:
        code = 70
    finally:
        os._exit(code)


def _limit(seconds: float) -> None:
    """The child's own limits: data, CPU time, and an alarm that ends it (default
    action) should the parent be gone. Should the system refuse a limit, the parent's
    bound and the unit's MemoryMax= still hold."""
    import resource

    cpu = int(seconds) + 1
    # CPU: SIGXCPU at the soft limit, SIGKILL a second later.
    for which, soft in ((resource.RLIMIT_DATA, _data() + MEMORY), (resource.RLIMIT_CPU, cpu)):
        hard = soft if which == resource.RLIMIT_DATA else soft + 1
        _, current = resource.getrlimit(which)
        if current != resource.RLIM_INFINITY:
            soft, hard = min(soft, current), min(hard, current)
        try:
            resource.setrlimit(which, (soft, hard))
        except (OSError, ValueError):
            pass
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    signal.alarm(cpu + 1)


def _data() -> int:
    """The data this process holds now (VmData, what RLIMIT_DATA counts), 0 if unknown."""
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmData:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0
