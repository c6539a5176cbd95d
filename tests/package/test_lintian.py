"""lintian -I --pedantic on the binary and source packages: no tag at all, or an
override that gives its reason."""

from __future__ import annotations

import re

from pkgtools import REPO
from support.helpers import run

# The binary package's overrides (dh_lintian) and the source package's (the Makefile
# copies the file to debian/source/lintian-overrides in stdeb's tree).
OVERRIDE_FILES = ("duckdns.lintian-overrides", "source-lintian-overrides")


def test_lintian_pedantic_reports_nothing_unexplained(built):
    assert built.changes, "no .changes beside the .deb"
    proc = run(
        ["lintian", "-I", "--pedantic", "--tag-display-limit", "0", *built.changes],
        check=False,
    )
    # Any tag line (E W I P X, or an unused-override) is one without an override.
    tags = [ln for ln in proc.stdout.splitlines() if re.match(r"[EWIPX]: ", ln)]
    assert proc.returncode == 0 and not tags, proc.stdout + proc.stderr
    # Both the binary and the source package were checked.
    assert any(c.name.endswith("_source.changes") for c in built.changes)
    assert any(not c.name.endswith("_source.changes") for c in built.changes)


def test_source_overrides_are_in_the_source_package(built):
    listing = run(["tar", "-tf", built.dsc.with_name(built.dsc.stem + ".debian.tar.xz")])
    assert "debian/source/lintian-overrides" in listing.stdout.split()


def test_every_override_has_a_reason():
    """Each override belongs to a paragraph that starts with a "# " comment."""
    for name in OVERRIDE_FILES:
        path = REPO / "debian" / name
        paragraph_has_reason = False
        for line in path.read_text().splitlines():
            if not line.strip():
                paragraph_has_reason = False
            elif line.startswith("# "):
                paragraph_has_reason = True
            else:
                assert paragraph_has_reason, f"{name}: {line}"
