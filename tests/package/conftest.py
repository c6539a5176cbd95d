"""Fixtures for the package tests: the .deb built once per session, unpacked.

`make test` builds the package first (`test: ... deb`), so the session normally reuses
dist/. When the .deb is missing or older than any file it is built from, the fixture
runs `make deb` itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from pkgtools import (
    OLD_POSTINST_COMMIT,
    RELEASE_1_0_0_COMMIT,
    REPO,
    build_commit,
    build_inputs,
    debian_revision,
    setup_py_version,
)
from support.helpers import run, skip_or_fail

from debian import deb822, debfile


@dataclass
class Built:
    version: str  # upstream version, from setup.py
    revision: str
    deb: Path
    dsc: Path
    changes: list[Path]
    control: deb822.Deb822  # the binary package's control paragraph
    root: Path  # the .deb's data, unpacked
    ctrl: Path  # the .deb's control area, unpacked

    def unit(self, name: str) -> Path:
        for d in ("lib/systemd/system", "usr/lib/systemd/system"):
            if (self.root / d / name).is_file():
                return self.root / d / name
        raise AssertionError(f"{name} is not in the .deb")


@pytest.fixture(scope="session")
def built(tmp_path_factory) -> Built:
    version, revision = setup_py_version(), debian_revision()
    dist = REPO / "dist"
    deb = dist / f"duckdns_{version}-{revision}_all.deb"
    newest_input = max(p.stat().st_mtime for p in build_inputs())
    if not deb.exists() or deb.stat().st_mtime < newest_input:
        run(["make", "deb"], cwd=REPO, capture_output=False)
    assert deb.exists(), f"make deb did not produce {deb}"

    root = tmp_path_factory.mktemp("deb-data")
    ctrl = tmp_path_factory.mktemp("deb-control")
    run(["dpkg-deb", "-x", deb, root])
    run(["dpkg-deb", "-e", deb, ctrl])
    control = deb822.Deb822(debfile.DebFile(str(deb)).debcontrol())
    changes = sorted(dist.glob(f"duckdns_{version}-{revision}_*.changes"))
    return Built(
        version=version,
        revision=revision,
        deb=deb,
        dsc=dist / f"duckdns_{version}-{revision}.dsc",
        changes=changes,
        control=control,
        root=root,
        ctrl=ctrl,
    )


@pytest.fixture(scope="session")
def previous_deb(tmp_path_factory) -> Path:
    """The .deb of the last build whose postinst wrote the backup paths list."""
    return build_commit(OLD_POSTINST_COMMIT, tmp_path_factory.mktemp("previous") / "tree")


@pytest.fixture(scope="session")
def release_1_0_0_deb(tmp_path_factory) -> Path:
    """The .deb of release 1.0.0-1, built from its commit."""
    return build_commit(RELEASE_1_0_0_COMMIT, tmp_path_factory.mktemp("release-1.0.0") / "tree")


@pytest.fixture(scope="session")
def system_harness():
    """tests/system/harness.py, for its cached Debian root (built once, shared)."""
    import harness  # noqa: PLC0415 - only the tests that need a root pay for it

    problem = harness.environment_problem(need_mirror=not harness.cached("rootfs"))
    if problem:
        skip_or_fail(problem)
    return harness
