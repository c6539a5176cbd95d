"""Fleet: a signed apt repository made by `scripts/make-repo`, served over
HTTP inside the booted container's own network, and silent upgrades through Debian's
unattended-upgrades.

Version N is the tree's own .deb (`make deb`) or, once the project has release tags,
also the last tagged release built from git; N+1 is the current tree with only its
version raised. The signing keys are throw-away keys made for the session.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import time
from pathlib import Path

import harness
import pytest
from harness import CONF, REPO
from support import release
from support.helpers import CANARY as TOKEN
from support.helpers import make_signing_key, package_version

REPO_IN_CONTAINER = "/srv/duckdns-repo"
KEYRING = "/etc/apt/keyrings/duckdns-archive-keyring.gpg"
# The container's own release is the repository suite it follows (make-repo publishes
# every suite).
SOURCES = """\
Types: deb
URIs: http://127.0.0.1:8080/
Suites: {suite}
Components: main
Signed-By: {keyring}
"""
# Added to the shipped schedule, not replacing it: an empty "OnActiveSec=" in a drop-in
# would reset every On*Sec= setting of the timer, OnBootSec= included (systemd.timer(5)).
FAST_TIMER = "[Timer]\nOnActiveSec=1s\nOnUnitActiveSec=5s\nAccuracySec=1s\nRandomizedDelaySec=0\n"


# -- building versions and keys (once per session) ------------------------------------


def _last_tag() -> str | None:
    proc = subprocess.run(
        ["git", "-C", str(REPO), "describe", "--tags", "--abbrev=0"],
        capture_output=True,
        text=True,
    )
    return proc.stdout.strip() if proc.returncode == 0 and proc.stdout.strip() else None


def _build(tree: Path, version: str | None = None) -> Path:
    """`make deb` in ``tree``, optionally as a new release ``version`` (a changelog entry
    and duckdns/__init__.py, as a maintainer makes them)."""
    if version is not None:
        release.add_entry(tree, version, "A test build of the next version.")
    with harness.phase(f"make deb ({tree.name})"):
        subprocess.run(["make", "-C", str(tree), "deb"], check=True, capture_output=True)
    return next((tree / "dist").glob("duckdns_*_all.deb"))


def _next_version(version: str) -> str:
    if not re.fullmatch(r"\d+(\.\d+)*", version):
        raise AssertionError(f"cannot derive N+1 from version {version!r}")
    return version + ".1"


@pytest.fixture(scope="session")
def builds(system_env, deb, tmp_path_factory) -> dict[str, Path]:
    """{'tree': N, 'next': N+1[, 'tag': last release]} as built .deb files."""
    work = tmp_path_factory.mktemp("fleet-builds")
    version = package_version()
    debs = {"tree": deb}
    debs["next"] = _build(harness.copy_checkout(work / "next"), _next_version(version))
    tag = _last_tag()
    if tag:
        tagged = work / "tag"
        tagged.mkdir()
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", tag], capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(tagged)], input=archive, check=True)
        debs["tag"] = _build(tagged)
    return debs


@pytest.fixture(scope="session")
def keys(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("fleet-keys")
    return {
        "good": make_signing_key(base / "good", "duckdns-fleet-test"),
        "rogue": make_signing_key(base / "rogue", "someone-else"),
    }


# -- the repository, served inside the container ------------------------------------------


class Repo:
    """A repository made by scripts/make-repo, written straight into the container's root
    and served there by a transient http.server unit on 127.0.0.1:8080."""

    UNIT = "duckdns-test-repo.service"

    def __init__(self, c: harness.Container, key: Path, suite: str = harness.SUITE):
        self.c = c
        self.key = key
        self.suite = suite
        self.dir = c.root / REPO_IN_CONTAINER.lstrip("/")
        self.state = Path(tempfile.mkdtemp(prefix="repo-state-", dir=c.tmp))

    def publish(self, deb: Path, key: Path | None = None) -> None:
        env = {
            **os.environ,
            "REPO_DIR": str(self.dir),
            "REPO_STATE": str(self.state),
            "REPO_KEY_FILE": str(key or self.key),
        }
        env.pop("REPO_KEY_ID", None)
        proc = subprocess.run(
            [str(REPO / "scripts/make-repo"), str(deb)], env=env, capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr

    def serve(self) -> None:
        self.c.exec(
            [
                "systemd-run",
                f"--unit={self.UNIT}",
                "--collect",
                "--quiet",
                "python3",
                "-m",
                "http.server",
                "8080",
                "--bind",
                "127.0.0.1",
                "--directory",
                REPO_IN_CONTAINER,
            ]
        )
        self.c.defer(lambda: self.c.exec(["systemctl", "stop", self.UNIT], check=False))
        self.c.wait_for(
            lambda: (
                self.c.exec(
                    [
                        "curl",
                        "-fsS",
                        "-o",
                        "/dev/null",
                        f"http://127.0.0.1:8080/dists/{self.suite}/InRelease",
                    ],
                    check=False,
                ).returncode
                == 0
            ),
            20,
            what="the repository's HTTP server",
        )

    def add_source(self) -> None:
        """What the README tells an admin to do: the key, a deb822 .sources file."""
        self.c.copy_in(self.dir / "duckdns-archive-keyring.gpg", KEYRING)
        sources = SOURCES.format(suite=self.suite, keyring=KEYRING)
        self.c.write("/etc/apt/sources.list.d/duckdns.sources", sources)
        # The container has no network beyond its loopback: the Debian mirror's entries
        # would only make `apt-get update` fail. Everything else is already installed.
        for path in ("etc/apt/sources.list", "etc/apt/sources.list.d/debian.sources"):
            (self.c.root / path).unlink(missing_ok=True)


def apt(c: harness.Container, *args: str, check: bool = True):
    """apt-get with stdin closed, as unattended-upgrades and fleets run it."""
    return c.exec(["apt-get", *args], env={"DEBIAN_FRONTEND": "noninteractive"}, check=check)


def installed_version(c: harness.Container) -> str:
    return c.exec(["dpkg-query", "-W", "-f=${Version}", "duckdns"]).stdout.strip()


def deb_version(deb: Path) -> str:
    return subprocess.run(
        ["dpkg-deb", "-f", str(deb), "Version"], capture_output=True, text=True, check=True
    ).stdout.strip()


def upstream(version: str) -> str:
    return version.rsplit("-", 1)[0]


def install_from_repo(c, duckdns, repo: Repo, first: Path) -> None:
    repo.publish(first)
    repo.serve()
    repo.add_source()
    harness.preseed(c, domains="piserver", token=TOKEN, ipv6=False)
    apt(c, "update")
    proc = apt(c, "install", "-y", "duckdns")
    assert TOKEN not in proc.stdout + proc.stderr
    assert installed_version(c) == deb_version(first)
    # Timer runs every 5 s instead of every minute: an admin's drop-in, kept by upgrades.
    c.write("/etc/systemd/system/duckdns.timer.d/test-fast.conf", FAST_TIMER)
    c.exec(["systemctl", "daemon-reload"])
    c.exec(["systemctl", "restart", "duckdns.timer"])
    duckdns.wait_requests(1, 90)
    assert duckdns.updates()[-1]["query"]["token"] == TOKEN


def run_unattended_upgrade(c) -> subprocess.CompletedProcess:
    apt(c, "update")
    proc = c.exec(["unattended-upgrade", "-v"], check=False, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def wait_run_by(c, duckdns, version: str, timeout: float = 90) -> dict:
    """The next request DuckDNS sees from the given updater version (its User-Agent)."""
    agent = f"duckdns-updater/{upstream(version)} "

    def seen():
        hits = [r for r in duckdns.updates() if r["user_agent"].startswith(agent)]
        return hits[-1] if hits else None

    return c.wait_for(seen, timeout, what=f"a timer run by {agent.strip()}")


def assert_kept(c, conf_before: str) -> None:
    assert (c.root / CONF.lstrip("/")).read_text() == conf_before
    assert oct((c.root / CONF.lstrip("/")).stat().st_mode & 0o777) == "0o600"
    assert (c.root / "var/lib/private/duckdns/state.json").exists()
    assert not harness.token_leaks(c, TOKEN)


# -- the scenarios ----------------------------------------------------------------------------

# Scenario 7: once a release is tagged, the upgrade also starts from it (no skip otherwise:
# there is simply no such case yet).
STARTS = ["tree", "tag"] if _last_tag() else ["tree"]


@pytest.mark.both_suites
@pytest.mark.parametrize("start", STARTS)
def test_repository_install_then_silent_unattended_upgrade(
    container, duckdns, builds, keys, start, suite
):
    """Scenarios 1-3 (and 7): install N from the signed repository (the suite of the
    container's release) with preseeded answers, publish N+1, unattended-upgrade applies
    it with no prompt (stdin closed), and the next timer run is by N+1 with the same
    token, domains and state."""
    c = container
    assert c.read("/etc/os-release").count(f"VERSION_CODENAME={suite}") == 1
    repo = Repo(c, keys["good"], suite)
    install_from_repo(c, duckdns, repo, builds[start])
    conf_before = (c.root / CONF.lstrip("/")).read_text()
    assert c.unit_property("duckdns.timer", "UnitFileState") == "enabled"

    repo.publish(builds["next"])
    proc = run_unattended_upgrade(c)
    assert installed_version(c) == deb_version(builds["next"]), proc.stdout
    log = c.read("/var/log/unattended-upgrades/unattended-upgrades.log")
    assert "Packages that will be upgraded: duckdns" in log, log
    assert c.unit_property("duckdns.timer", "UnitFileState") == "enabled"
    assert c.unit_property("duckdns.timer", "ActiveState") == "active"
    assert_kept(c, conf_before)
    request = wait_run_by(c, duckdns, deb_version(builds["next"]))
    assert request["query"]["token"] == TOKEN and request["query"]["domains"] == "piserver"
    result = harness.wait_service_run(c, after=harness.service_finished_count(c))
    assert result["Result"] == "success", result


def test_disabled_timer_stays_disabled_through_upgrade(container, duckdns, builds, keys):
    """Scenario 4: the admin's `systemctl disable --now duckdns.timer` is respected."""
    c = container
    repo = Repo(c, keys["good"])
    install_from_repo(c, duckdns, repo, builds["tree"])
    c.exec(["systemctl", "disable", "--now", "duckdns.timer"])
    repo.publish(builds["next"])
    run_unattended_upgrade(c)
    assert installed_version(c) == deb_version(builds["next"])
    assert c.unit_property("duckdns.timer", "UnitFileState") == "disabled"
    assert c.unit_property("duckdns.timer", "ActiveState") == "inactive"
    seen = len(duckdns.updates())
    time.sleep(12)  # more than two periods of the fast timer
    assert len(duckdns.updates()) == seen, "a disabled timer must not run after the upgrade"


def test_admin_dropin_survives_upgrade_and_applies(container, duckdns, builds, keys):
    """Scenario 5: a drop-in in /etc/systemd/system/duckdns.service.d/ is kept and used."""
    c = container
    repo = Repo(c, keys["good"])
    install_from_repo(c, duckdns, repo, builds["tree"])
    marker = c.hostdir / "dropin-ran"
    dropin = (
        "[Service]\n"
        "# '+': runs outside the sandbox, so it can write the marker\n"
        f"ExecStartPost=+/bin/sh -c 'echo ran >> {harness.TEST_DIR_IN_CONTAINER}/dropin-ran'\n"
    )
    c.write("/etc/systemd/system/duckdns.service.d/admin.conf", dropin)
    c.exec(["systemctl", "daemon-reload"])
    c.wait_for(marker.exists, 60, what="the drop-in to run before the upgrade")
    repo.publish(builds["next"])
    run_unattended_upgrade(c)
    assert installed_version(c) == deb_version(builds["next"])
    assert c.read("/etc/systemd/system/duckdns.service.d/admin.conf") == dropin
    assert "admin.conf" in c.unit_property("duckdns.service", "DropInPaths")
    marker.unlink()
    wait_run_by(c, duckdns, deb_version(builds["next"]))
    c.wait_for(marker.exists, 60, what="the drop-in to run after the upgrade")


def test_repository_signed_by_another_key_is_refused(container, duckdns, builds, keys):
    """Scenario 6: a Release signed by a different key: apt refuses it, nothing upgrades,
    and the error is visible."""
    c = container
    repo = Repo(c, keys["good"])
    install_from_repo(c, duckdns, repo, builds["tree"])
    # The same repository re-signed by someone else (same state, other key).
    repo.publish(builds["next"], key=keys["rogue"])
    proc = apt(c, "update", check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0 or "NO_PUBKEY" in output or "not signed" in output, output
    assert "NO_PUBKEY" in output or "signatures couldn't be verified" in output, output
    c.exec(["unattended-upgrade", "-v"], check=False, timeout=600)
    assert installed_version(c) == deb_version(builds["tree"])
