"""Helpers for the package tests alone (imported by conftest.py and the tests); those
of every layer (run, IN_CI, skip_or_fail, the canary) are in tests/support/helpers.py."""

from __future__ import annotations

import subprocess
from pathlib import Path

from support.helpers import DEBIAN_PYTHON as PY
from support.helpers import ROOT as REPO
from support.helpers import run
from support.release import changelog_field


def setup_py_version() -> str:
    """The version setup.py reports (it reads duckdns/__init__.py)."""
    out = run([PY, "setup.py", "--version"], cwd=REPO).stdout
    return out.strip().splitlines()[-1]


def debian_revision() -> str:
    """The Debian revision of debian/changelog's top entry (the 1 of 1.0.0-1)."""
    return changelog_field("Version").rpartition("-")[2]


def build_inputs() -> list[Path]:
    """Every file the .deb is built from (the Makefile's DEB_SOURCES)."""
    files = [REPO / n for n in ("setup.py", "stdeb.cfg", "MANIFEST.in", "README.md")]
    for top in ("duckdns", "debian", "man", "hooks"):
        files += [
            p for p in (REPO / top).rglob("*") if p.is_file() and "__pycache__" not in p.parts
        ]
    return [p for p in files if p.exists()]


# The last commit whose debian/postinst wrote /etc/backup-paths.d/duckdns.list (the
# package ships it as a conffile since): the "previous build" the upgrade tests start from.
OLD_POSTINST_COMMIT = "333b9f9"
# Release 1.0.0-1 (the commit before "Version 1.1.0 begins"): its debconf asked the yes/no
# "IPv6 too?" (duckdns/ipv6) that 1.1.0's "Addresses to publish" replaces.
RELEASE_1_0_0_COMMIT = "0dc2192c97a886adc5960539b38eee0c7899d068"


def build_commit(commit: str, dest: Path) -> Path:
    """`make deb` in a `git archive` of ``commit`` under ``dest``; the .deb."""
    dest.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", commit], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    run(["make", "-C", dest, "deb"])
    return next((dest / "dist").glob("duckdns_*_all.deb"))
