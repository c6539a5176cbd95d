"""debian/tests run by Debian's own runner, as Debian's CI would: `autopkgtest` with the
``null`` virtualisation server inside a booted container of each release. The container
is the isolated machine (systemd is PID 1, so the service runs hardened); its network is
its loopback only. The tests come from the tree the .deb was built in (deb_dist/, a
"built tree" to autopkgtest: it then neither builds nor needs dpkg-dev), so debian/tests
is proven to survive stdeb; tests/package/test_release.py checks the source package
carries it too."""

from __future__ import annotations

import shutil

import harness
import pytest
from support.helpers import CANARY, package_version

TESTS = ("command-line", "service")


@pytest.mark.both_suites
def test_autopkgtest_passes(container, deb, suite):
    c = container
    tree = harness.REPO / "deb_dist" / f"duckdns-{package_version()}"
    assert (tree / "debian/files").is_file(), f"{tree} is not the tree `make deb` built"
    shutil.copytree(tree, c.root / "root/src", symlinks=True)
    c.copy_in(deb, f"/root/{deb.name}")
    with harness.phase(f"autopkgtest ({suite})"):
        proc = c.exec(
            [
                "autopkgtest",
                "--output-dir",
                "/root/autopkgtest-out",
                # The null server runs the tests on the machine it runs on: here the
                # throw-away booted container, which is the isolation the service test
                # asks for. Debian 12's null server (5.28) declares isolation-machine;
                # Debian 13's (5.49) declares none, and would skip the test.
                "--ignore-restrictions=isolation-container",
                f"/root/{deb.name}",
                "/root/src/",
                "--",
                "null",
            ],
            check=False,
            timeout=600,
        )
    out = proc.stdout + proc.stderr
    # 0: every test passed (2 would be "some skipped", 4 "some failed").
    assert proc.returncode == 0, out[-6000:]
    summary = c.read("/root/autopkgtest-out/summary")
    results = dict(line.split()[:2] for line in summary.splitlines() if line.strip())
    assert results == {name: "PASS" for name in TESTS}, summary
    assert "service: ok (update sent by uid" in out, out[-3000:]
    assert CANARY not in out
