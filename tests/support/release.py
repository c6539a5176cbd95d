"""Versions and releases as debian/changelog defines them, for every test layer: the
version of a tree, the previous release and the commit it was built from, a new entry
for a test build, and two builds of one tree compared byte for byte."""

from __future__ import annotations

import email.utils
import hashlib
import shutil
import subprocess
from pathlib import Path

from support.helpers import ROOT, run

# The maintainer as stdeb.cfg and debian/changelog name them.
MAINTAINER = "duckdns maintainers <maintainers@users.noreply.r-seed-e1416756.example>"
# Builds before debian/changelog existed took their revision from stdeb.cfg: always 1.
REVISION_BEFORE_CHANGELOG = "1"

# How the second build of a reproducibility check differs from a plain `make deb`:
# another directory (the caller's), umask, time zone, locale and a clock 400 days on.
# (fr_FR.UTF-8 need not be installed: the Makefile sets LC_ALL=C.UTF-8 for the build
# tools, and a missing locale only adds perl's warnings.)
VARIED_BUILD = (
    "umask 0002 && TZ=Pacific/Kiritimati LANG=fr_FR.UTF-8 LC_ALL=fr_FR.UTF-8 "
    "exec faketime '+400 days' make -C {tree} deb"
)


def changelog_field(field: str, tree: Path = ROOT, offset: int = 0) -> str:
    """A field (Version, Timestamp, ...) of debian/changelog's entry ``offset`` (0: top)."""
    out = run(
        ["dpkg-parsechangelog", "-l", tree / "debian/changelog", "-o", offset, "-c", 1, "-S", field]
    )
    return out.stdout.strip()


def upstream(version: str) -> str:
    """1.0.0 of 1.0.0-1."""
    return version.rpartition("-")[0] if "-" in version else version


def _git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)


def version_at(commit: str) -> str:
    """The package version ``commit`` builds: its changelog's top entry, or before the
    changelog existed, duckdns/__init__.py's version with revision 1."""
    changelog = _git("show", f"{commit}:debian/changelog")
    if changelog.returncode == 0:
        return changelog.stdout.split("(", 1)[1].split(")", 1)[0]
    init = _git("show", f"{commit}:duckdns/__init__.py").stdout
    value = init.split('__version__ = "', 1)[1].split('"', 1)[0]
    return f"{value}-{REVISION_BEFORE_CHANGELOG}"


def previous_release() -> tuple[str, str]:
    """(version, commit) of the release before the tree's: the version of the changelog's
    second entry, built from its tag debian/VERSION (docs/releasing.md) or, when it has
    none, from the newest commit on the main line of history that builds it (0.1.0-1:
    every build before the changelog was numbered so, the newest is what was last
    installed)."""
    version = changelog_field("Version", offset=1)
    tag = f"debian/{version.replace('~', '_').replace(':', '%')}"
    found = _git("rev-parse", "--verify", "-q", f"{tag}^{{commit}}")
    if found.returncode == 0:
        return version, found.stdout.strip()
    commits = _git("rev-list", "--first-parent", "HEAD").stdout.split()
    for commit in commits:
        if version_at(commit) == version:
            return version, commit
    raise AssertionError(f"no commit in HEAD's history builds {version}, the previous release")


def add_entry(tree: Path, version: str, text: str) -> None:
    """A new top entry in ``tree``'s debian/changelog and __init__.py's version, as a
    maintainer's `dch -v VERSION-1` and edit would make them (the build checks both)."""
    changelog = tree / "debian/changelog"
    stamp = int(changelog_field("Timestamp", tree)) + 60
    entry = (
        f"duckdns ({version}-1) unstable; urgency=medium\n\n  * {text}\n\n"
        f" -- {MAINTAINER}  {email.utils.formatdate(stamp)}\n\n"
    )
    changelog.write_text(entry + changelog.read_text())
    init = tree / "duckdns/__init__.py"
    lines = init.read_text().splitlines(keepends=True)
    init.write_text(
        "".join(
            f'__version__ = "{version}"\n' if ln.startswith("__version__ = ") else ln
            for ln in lines
        )
    )


def copy_worktree(dest: Path) -> Path:
    """The files git tracks, as they are now, copied to ``dest`` with fresh mtimes."""
    files = run(["git", "-C", ROOT, "ls-files", "-z"]).stdout.split("\0")
    for name in filter(None, files):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, dest / name)
    return dest


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def differences(a: Path, b: Path) -> str:
    """What differs between two builds, as diffoscope says it (empty when identical)."""
    if sha256(a) == sha256(b):
        return ""
    if shutil.which("diffoscope") is None:
        return f"{a} and {b} differ (install diffoscope to see how)"
    proc = subprocess.run(
        ["diffoscope", "--text", "-", "--max-text-report-size", "60000", str(a), str(b)],
        capture_output=True,
        text=True,
    )
    return proc.stdout + proc.stderr
