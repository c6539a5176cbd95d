"""What the system tests import: the scenario helpers for the package in a booted
container, and (re-exported) the layers below them, from the bottom up:

* :mod:`roots` — the cached Debian roots (``base_tarball``, ``piuparts_tarball``),
  binfmt_misc, the background builds, the phase timings;
* :mod:`containers` — :class:`Container` (booted with systemd-nspawn), :class:`Tmux` (a
  terminal inside), :class:`Chroot`;
* :mod:`servers` — :class:`DuckDNS`, the test server inside a container on
  127.0.0.1:443 with its CA trusted there and ``www.duckdns.org`` pointing at it, so the
  package runs with its shipped default server.

Everything here runs as root on a Debian host with debootstrap, systemd-container,
tmux and (for the foreign-architecture chroots) qemu-user-static + binfmt-support.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

from containers import TEST_DIR_IN_CONTAINER, Chroot, Container, Tmux  # noqa: F401
from roots import (  # noqa: F401
    CACHE_DIR,
    SUITE,
    SUITES,
    WORK_DIR,
    base_tarball,
    build_in_background,
    cached,
    debian_mirror,
    environment_problem,
    extract,
    join_background,
    log,
    mirror_reachable,
    phase,
    phase_summary,
    piuparts_tarball,
    restore_binfmt,
)
from servers import DuckDNS  # noqa: F401
from support.helpers import ROOT as REPO
from support.helpers import TESTS, package_version, run  # noqa: F401

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
# The shipped random delay (0-15 s each run) is reset too: the scenarios wait for a run
# they can time.
FAST_TIMER = (
    "[Timer]\nOnBootSec=\nOnActiveSec=2s\nOnUnitActiveSec=1min\nAccuracySec=1s\n"
    "RandomizedDelaySec=0\n"
)


def fast_timer(c: Container) -> None:
    """Write the drop-in before the install: the package's own start of the timer (and
    every restart by reconfigure or reinstall) then uses it."""
    c.write("/etc/systemd/system/duckdns.timer.d/test-fast.conf", FAST_TIMER)


def preseed(
    c: Container,
    domains: str | None = None,
    token: str | None = None,
    ipv6: bool | None = None,
    publish: str | None = None,
) -> None:
    """debconf-set-selections, as a fleet install does. The answers pass through a file
    in the host-side test directory, never the container's root tree. ``publish``: ipv4,
    both or ipv6 (duckdns/publish); ``ipv6``: 1.0.0's yes/no question."""
    lines = []
    if domains is not None:
        lines.append(f"duckdns duckdns/domains string {domains}")
    if token is not None:
        lines.append(f"duckdns duckdns/token password {token}")
    if ipv6 is not None:
        lines.append(f"duckdns duckdns/ipv6 boolean {'true' if ipv6 else 'false'}")
    if publish is not None:
        lines.append(f"duckdns duckdns/publish select {publish}")
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
