"""debian/tests run by Debian's own runner, as Debian's CI would: `autopkgtest` with the
``null`` virtualisation server inside a booted container of each release. The container
is the isolated machine (systemd is PID 1, so the service runs hardened); its network is
its loopback only. The tests come from the source package as built (`dpkg-source -x` of
the .dsc), so debian/tests is proven to survive the build."""

from __future__ import annotations

import harness
import pytest
from support.helpers import CANARY, run

TESTS = ("command-line", "service")


@pytest.mark.both_suites
def test_autopkgtest_passes(container, deb, suite):
    c = container
    dsc = next(deb.parent.glob(deb.name.split("_all.deb")[0] + ".dsc"))
    run(["dpkg-source", "--no-check", "-x", dsc, c.root / "root/src"])
    c.copy_in(deb, f"/root/{deb.name}")
    with harness.phase(f"autopkgtest ({suite})"):
        proc = c.exec(
            [
                "autopkgtest",
                "--output-dir",
                "/root/autopkgtest-out",
                f"/root/{deb.name}",
                # The source tree as it is, with no build step: the binary is the .deb.
                "--built-tree",
                "/root/src/",
                "--",
                "null",
            ],
            check=False,
            timeout=600,
        )
    out = proc.stdout + proc.stderr
    summary = c.read("/root/autopkgtest-out/summary")
    # 0: every test passed (2 would be "some skipped", 4 "some failed").
    assert proc.returncode == 0, out[-6000:]
    results = dict(line.split()[:2] for line in summary.splitlines() if line.strip())
    assert results == {name: "PASS" for name in TESTS}, summary
    assert "service: ok (update sent by uid" in out, out[-3000:]
    assert CANARY not in out
