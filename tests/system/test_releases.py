"""Debian 13 (trixie) as first-class as the host's Debian 12.

In a cached trixie root of the host's architecture (``devroot``: not booted, its own
network namespace with only a loopback):

* the unit tests run under trixie's Python, requests and urllib3, the checkout
  bind-mounted read-only; every one must pass, none may be skipped;
* ``make deb`` builds the package with trixie's stdeb, debhelper and dh-python, and
  trixie's lintian finds nothing;
* a second ``make deb`` of the same tree under other conditions gives the same bytes.

The .deb built there then installs and works in booted bookworm and trixie containers
(the host-built one is what every other scenario installs, on both releases).
"""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import harness
import pytest
from support import release
from support.helpers import CANARY as TOKEN
from support.helpers import skip_or_fail

OTHER = [s for s in harness.SUITES if s != harness.SUITE]  # the host runs SUITE itself


def _devroot(suite: str) -> harness.Chroot:
    if not harness.cached("devroot", suite=suite) and not harness.mirror_reachable(suite=suite):
        skip_or_fail(f"the Debian mirror is needed to build the {suite} root")
    return harness.Chroot(
        harness.run(["dpkg", "--print-architecture"]).stdout.strip(), kind="devroot", suite=suite
    )


# Shares no container, no build and no state with the other system tests (only the
# devroot, whose build is under a file lock): under make test it runs on the worker of
# the unit tests, after them, not on the one the booted tests keep busy (tests/conftest.py).
@pytest.mark.xdist_group("other-release-units")
@pytest.mark.parametrize("suite", OTHER, scope="session")
def test_unit_tests_pass_on_other_release(suite, system_env):
    """tests/unit under the other release's /usr/bin/python3: all pass, nothing skipped."""
    with _devroot(suite) as ch:
        ch.bind(harness.REPO, "/src")
        versions = ch.exec(
            [
                "python3",
                "-c",
                "import sys, ssl, requests, urllib3; print(sys.version.split()[0], "
                "requests.__version__, urllib3.__version__, ssl.OPENSSL_VERSION)",
            ]
        ).stdout.strip()
        harness.log(f"[system] {suite} devroot: python requests urllib3 openssl = {versions}")
        with harness.phase(f"unit tests in {suite}"):
            proc = ch.exec(
                [
                    "sh",
                    "-c",
                    # Two workers, as make test runs them: the unit tests wait on
                    # time-outs half of their time.
                    "cd /src && exec python3 -m pytest -q -p no:cacheprovider -n 2 "
                    "--junitxml=/tmp/unit.xml tests/unit",
                ],
                check=False,
                env={"CI": "true", "PYTHONDONTWRITEBYTECODE": "1"},
                timeout=1200,
            )
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-60:])
        report = ch.root / "tmp/unit.xml"
        assert report.exists(), tail
        suite_el = ET.parse(report).getroot()  # noqa: S314 - pytest's own report
        suite_el = suite_el if suite_el.tag == "testsuite" else suite_el.find("testsuite")
        counts = {k: int(suite_el.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
        assert proc.returncode == 0, tail
        assert counts["failures"] == counts["errors"] == 0, (counts, tail)
        assert counts["skipped"] == 0, f"unit tests skipped on {suite}: {counts}\n{tail}"
        assert counts["tests"] > 100, counts
        harness.log(f"[system] unit tests on {suite}: {counts}")
        assert TOKEN not in proc.stdout + proc.stderr


@pytest.fixture(scope="session")
def other_build(system_env, tmp_path_factory) -> dict[str, Path]:
    """`make deb` in the other release's root, from a copy of the checkout; its dist/
    and trixie lintian's verdict on the result."""
    suite = OTHER[0]
    out = tmp_path_factory.mktemp(f"deb-{suite}")
    with _devroot(suite) as ch:
        harness.copy_checkout(ch.root / "build")
        with harness.phase(f"make deb in {suite}"):
            proc = ch.exec(["make", "-C", "/build", "deb"], check=False, timeout=1200)
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
        for f in (ch.root / "build/dist").iterdir():
            if f.is_file():
                shutil.copy2(f, out / f.name)
        # The same tree again, elsewhere, under other conditions (support.release).
        release.copy_worktree(ch.root / "var/tmp/another/checkout")
        with harness.phase(f"make deb again in {suite} (reproducibility)"):
            again = ch.exec(
                ["sh", "-c", release.VARIED_BUILD.format(tree="/var/tmp/another/checkout")],
                check=False,
                timeout=1200,
            )
        assert again.returncode == 0, (again.stdout + again.stderr)[-6000:]
        (out / "again").mkdir()
        for f in (ch.root / "var/tmp/another/checkout/dist").glob("*.deb"):
            shutil.copy2(f, out / "again" / f.name)
        changes = sorted(p.name for p in out.glob("*.changes"))
        lint = ch.exec(
            [
                "sh",
                "-c",
                "cd /build/dist && exec lintian --fail-on error,warning "
                "--tag-display-limit 0 " + " ".join(changes),
            ],
            check=False,
            timeout=900,
        )
        lintian_version = ch.exec(["lintian", "--version"]).stdout.strip()
    debs = list(out.glob("duckdns_*_all.deb"))
    assert len(debs) == 1, sorted(p.name for p in out.iterdir())
    return {
        "suite": suite,
        "deb": debs[0],
        "dist": out,
        "changes": changes,
        "lintian": lint,
        "lintian_version": lintian_version,
    }


def test_two_builds_on_other_release_are_identical(other_build):
    """On Debian 13 too, the tree built a second time in another directory, with fresh
    file times, another umask, time zone and locale and a clock 400 days on, gives the
    same .deb, bit for bit (diffoscope's report when not)."""
    first = other_build["deb"]
    again = other_build["dist"] / "again" / first.name
    assert again.exists(), sorted(p.name for p in again.parent.iterdir())
    assert release.sha256(again) == release.sha256(first), release.differences(first, again)


def test_make_deb_on_other_release_is_lintian_clean(other_build):
    """`make deb` works on Debian 13 and that release's lintian finds no error or warning
    in the binary or the source package."""
    lint = other_build["lintian"]
    tags = [ln for ln in lint.stdout.splitlines() if ln[:3] in ("E: ", "W: ")]
    assert lint.returncode == 0 and not tags, lint.stdout + lint.stderr
    assert any(c.endswith("_source.changes") for c in other_build["changes"])
    assert any(not c.endswith("_source.changes") for c in other_build["changes"])
    harness.log(f"[system] {other_build['suite']}: {other_build['lintian_version']} clean")


@pytest.mark.both_suites
def test_deb_built_on_other_release_works(container, duckdns, other_build, suite):
    """The .deb built on Debian 13 in a booted container of each release: a preseeded
    install, then a timer run as the dynamic user updates with the token."""
    c = container
    harness.fast_timer(c)
    harness.preseed(c, domains="piserver", token=TOKEN, ipv6=False)
    proc = c.install_deb(other_build["deb"])
    assert TOKEN not in proc.stdout + proc.stderr
    result = harness.wait_service_run(c, after=0, timeout=90)
    assert result["Result"] == "success", result
    assert harness.state_dir_owner(c) in harness.state_dir_owners(c)
    last = duckdns.updates()[-1]
    assert (last["query"]["token"], last["query"]["domains"]) == (TOKEN, "piserver")
    assert harness.token_leaks(c, TOKEN) == []


@pytest.mark.parametrize("suite", OTHER, scope="session")
@pytest.mark.parametrize("first", ["bookworm-built", "trixie-built"])
def test_units_survive_the_move_between_lib_and_usr_lib(
    first, suite, container, duckdns, deb, other_build
):
    """On Debian 13, /lib is /usr/lib. The bookworm-built .deb ships the units in
    /lib/systemd/system, the trixie-built one in /usr/lib/systemd/system: replacing one
    by the other (a fleet whose builds move to trixie, or back) must not let dpkg delete
    the "obsolete" old path, which is the new file itself. (Same version: dpkg removes
    the files the new package no longer lists just as on an upgrade.)"""
    c = container
    debs = {"bookworm-built": deb, "trixie-built": other_build["deb"]}
    second = next(k for k in debs if k != first)
    harness.fast_timer(c)
    harness.preseed(c, domains="piserver", token=TOKEN, ipv6=False)
    c.install_deb(debs[first])
    c.copy_in(debs[second], f"/root/second-{debs[second].name}")
    proc = c.exec(
        ["dpkg", "-i", f"/root/second-{debs[second].name}"],
        env={"DEBIAN_FRONTEND": "noninteractive"},
    )
    assert TOKEN not in proc.stdout + proc.stderr
    for unit in ("duckdns.service", "duckdns.timer"):
        assert (c.root / "usr/lib/systemd/system" / unit).is_file(), (unit, proc.stdout)
        assert c.unit_property(unit, "LoadState") == "loaded", unit
    assert c.unit_property("duckdns.timer", "UnitFileState") == "enabled"
    runs = harness.service_finished_count(c)
    c.exec(["systemctl", "restart", "duckdns.timer"])
    result = harness.wait_service_run(c, after=runs, timeout=90)
    assert result["Result"] == "success", result
    assert duckdns.updates()[-1]["query"]["token"] == TOKEN
