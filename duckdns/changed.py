"""The admin's hooks in /etc/duckdns/changed.d, run once per address change.

Two halves, in two processes that never share a sandbox:

* :func:`record`, called by the updater (inside duckdns.service: a dynamic user that may
  execute nothing but /usr) at the moment DuckDNS has taken a new address: it queues one
  small JSON file per change in ``changes/`` next to ``state.json``, written whole (a
  temporary file in the state directory, then a rename into the queue, so the queue never
  holds a half-written file). Nothing secret goes in: names and addresses only.
* :func:`main` (``python3 -m duckdns.changed``), run as root by duckdns-changed.service,
  which duckdns-changed.path starts while the queue is not empty
  (``DirectoryNotEmpty=``: systemd checks again each time the service stops, so a change
  queued while the hooks run gets its own turn, and one queued before a reboot runs after
  it). It takes the oldest file off the queue *before* running the hooks for it, so each
  change runs the hooks exactly once (a reboot in the middle of them does not run them
  again), and runs every executable of the hook directory in run-parts order, each
  bounded in time, with the change in its environment and nothing secret.

The queue is written by a less privileged user than the one that reads it: the reader
opens it without following symbolic links, reads at most :data:`MAX_EVENT` bytes of each
file and accepts only host names and IP addresses, so nothing that user writes can make
root read another file or pass anything else to the hooks.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time

from duckdns import EXIT_OK, EXIT_USAGE, report

TYPE_CHECKING = False  # for the annotations only, without importing typing
if TYPE_CHECKING:
    from collections.abc import Iterable

QUEUE = "changes"  # the queue's name, in the state directory
STATE_DIR = "/var/lib/private/duckdns"  # the packaged state directory (duckdns.service's)
HOOK_DIR = "/etc/duckdns/changed.d"
MAX_QUEUED = 8  # changes kept while no hook run takes them (the path unit stopped, say)
MAX_EVENT = 4096  # bytes: an event is about 200
HOOK_TIMEOUT = 60  # seconds each hook may run
KILL_GRACE = 5  # seconds between SIGTERM and SIGKILL for a hook past its time
# run-parts(8)'s default naming rule (Debian): names made of these characters only, so
# editor backups (name~), dpkg leftovers (name.dpkg-old) and disabled hooks (name.off) never run.
HOOK_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
# DuckDNS subnames as the config accepts them (duckdns.config.parse_domains checks more).
DOMAIN = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
# What a hook's environment keeps of the runner's: systemd's own for a system service.
PASSED = ("PATH", "LANG", "LANGUAGE", "TZ", "INVOCATION_ID", "JOURNAL_STREAM")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


# -- the updater's half ------------------------------------------------------------------------


def record(
    state_path: str, domains: Iterable[str], old: tuple[str, str], new: tuple[str, str]
) -> None:
    """Queue one change (IPv4, IPv6 pairs; "" for none) for the hooks. Never raises: a
    change that cannot be queued is one warning, and the update itself is unaffected."""
    from duckdns import state  # atomic_write: the one definition of a whole-file write

    directory = os.path.dirname(state_path)
    queue = os.path.join(directory, QUEUE)
    event = {
        "domains": ",".join(domains),
        "ipv4": new[0],
        "ipv6": new[1],
        "old_ipv4": old[0],
        "old_ipv6": old[1],
        "time": int(time.time()),
    }
    name = f"{time.time_ns():020d}.json"  # queue order is name order
    staged = os.path.join(directory, "change.json")
    try:
        if not os.path.isdir(queue):
            os.mkdir(queue, 0o700)
            if os.geteuid() == 0:  # root by hand: the service's user must write here too
                st = os.stat(directory)
                os.chown(queue, st.st_uid, st.st_gid)
        state.atomic_write(staged, (json.dumps(event, sort_keys=True) + "\n").encode())
        os.replace(staged, os.path.join(queue, name))
        pending = sorted(n for n in os.listdir(queue) if not n.startswith("."))
        for stale in pending[:-MAX_QUEUED]:
            os.unlink(os.path.join(queue, stale))
    except OSError as exc:
        report.warning(
            f"cannot queue this change for the hooks in {HOOK_DIR} ({exc.strerror or exc}): "
            f"they will not run for it; check that {directory} is writable"
        )


# -- the runner's half (root, duckdns-changed.service) -----------------------------------------


def _address(value: object, version: int) -> str:
    if value == "":
        return ""
    if not isinstance(value, str) or len(value) > 45:
        raise ValueError
    if ipaddress.ip_address(value).version != version:
        raise ValueError
    return value


def parse(data: bytes) -> dict[str, str]:
    """The hooks' DUCKDNS_* variables from one queued event; ValueError if it is not one
    the updater writes (the message never quotes the file: it was written by another user)."""
    try:
        event = json.loads(data)
        if not isinstance(event, dict):
            raise ValueError
        domains = event["domains"]
        if not isinstance(domains, str) or len(domains) > 1024:
            raise ValueError
        if not all(DOMAIN.match(name) for name in domains.split(",")):
            raise ValueError
        env = {
            "DUCKDNS_DOMAINS": domains,
            "DUCKDNS_IPV4": _address(event["ipv4"], 4),
            "DUCKDNS_IPV6": _address(event["ipv6"], 6),
            "DUCKDNS_OLD_IPV4": _address(event["old_ipv4"], 4),
            "DUCKDNS_OLD_IPV6": _address(event["old_ipv6"], 6),
        }
    except (ValueError, KeyError, TypeError, RecursionError):
        raise ValueError("not a change the updater wrote") from None
    return env


def take(queue_fd: int, skipped: set[str]) -> tuple[str, bytes] | None:
    """Remove the oldest queued entry and return its name and content (b"" for what is not
    a regular file); None when the queue is empty. Every entry goes, dot files and
    directories too: systemd counts them for DirectoryNotEmpty=, and one left behind would
    start the service again and again. One that cannot be removed is put in ``skipped``."""
    for name in sorted(os.listdir(queue_fd)):
        if name in skipped:
            continue
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=queue_fd)
        except OSError:
            data = b""  # a symbolic link or a name gone meanwhile: not an event
        else:
            try:
                data = os.read(fd, MAX_EVENT + 1) if stat.S_ISREG(os.fstat(fd).st_mode) else b""
            finally:
                os.close(fd)
        try:
            if stat.S_ISDIR(os.lstat(name, dir_fd=queue_fd).st_mode):
                shutil.rmtree(name, dir_fd=queue_fd)  # never follows a link out of it
            else:
                os.unlink(name, dir_fd=queue_fd)
        except FileNotFoundError:
            continue
        except OSError:
            skipped.add(name)
            continue
        return name, data
    return None


def hooks(directory: str) -> list[str]:
    """The hooks, as run-parts would run them: executable regular files (symbolic links
    followed) with a run-parts name, in byte order of their names."""
    try:
        names = sorted(os.listdir(directory), key=os.fsencode)
    except FileNotFoundError:
        return []
    paths = [os.path.join(directory, name) for name in names if HOOK_NAME.match(name)]
    return [path for path in paths if os.path.isfile(path) and os.access(path, os.X_OK)]


def run_hook(path: str, env: dict[str, str], timeout: float = HOOK_TIMEOUT) -> str:
    """Run one hook (its output goes where ours goes: the journal); "" when it succeeded,
    else what went wrong. It gets its own process group, so a hook past its time is
    stopped with everything it started."""
    try:
        proc = subprocess.Popen(
            [path], env=env, cwd="/", stdin=subprocess.DEVNULL, start_new_session=True
        )
    except OSError as exc:
        return f"could not be started ({exc.strerror or exc})"
    try:
        code = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(KILL_GRACE)
        # the hook if it is still running, and whatever it left behind in its group
        _kill_group(proc, signal.SIGKILL)
        proc.wait()
        return f"was still running after {timeout:g} s and was stopped"
    if code < 0:
        return f"was killed by signal {-code} ({signal.Signals(-code).name})"
    if code:
        return f"exited with status {code}"
    return ""


def _kill_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


def run(queue: str, hook_dir: str, timeout: float = HOOK_TIMEOUT) -> int:
    """Run the hooks once for each queued change, oldest first, until the queue is empty.
    A failing hook is one error line; the others still run. Returns the changes handled."""
    try:
        queue_fd = os.open(queue, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return 0
    handled = 0
    skipped: set[str] = set()
    # systemd's environment for the service (no secret in it), to which each change is added
    base = {k: v for k, v in os.environ.items() if k in PASSED or k.startswith("LC_")}
    base.setdefault("PATH", DEFAULT_PATH)
    base.setdefault("HOME", "/root" if os.geteuid() == 0 else "/")
    try:
        while (taken := take(queue_fd, skipped)) is not None:
            name, data = taken
            try:
                if len(data) > MAX_EVENT:
                    raise ValueError("too large")
                change = parse(data)
            except ValueError as exc:
                report.error(f"{queue}/{name} ignored and removed: {exc}")
                continue
            handled += 1
            env = {**base, **change}
            for path in hooks(hook_dir):
                problem = run_hook(path, env, timeout)
                if problem:
                    report.error(
                        f"hook {path} {problem}; the other hooks ran, and updates go on as usual"
                    )
    finally:
        os.close(queue_fd)
    for name in sorted(skipped):
        report.error(f"{queue}/{name} is not a file this package writes: remove it")
    return handled


def main(argv: list[str] | None = None) -> int:
    """``python3 -m duckdns.changed [--timeout SECONDS] [QUEUE [HOOK_DIR]]``: what
    duckdns-changed.service runs (an admin's drop-in may give another time limit)."""
    args = list(sys.argv[1:] if argv is None else argv)
    timeout: float = HOOK_TIMEOUT
    if args[:1] == ["--timeout"]:
        try:
            timeout = float(args[1])
            if not 0 < timeout <= 24 * 3600:
                raise ValueError
        except (IndexError, ValueError):
            report.error("--timeout takes a number of seconds, at most a day (86400)")
            return EXIT_USAGE
        del args[:2]
    queue = args[0] if args else os.path.join(STATE_DIR, QUEUE)
    hook_dir = args[1] if len(args) > 1 else HOOK_DIR
    run(queue, hook_dir, timeout)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
