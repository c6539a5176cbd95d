"""lintian on the binary and source packages: no errors, no warnings."""

from __future__ import annotations

import re

from helpers import run
from pkgtools import REPO


def test_lintian_clean(built):
    assert built.changes, "no .changes beside the .deb"
    proc = run(
        ["lintian", "--fail-on", "error,warning", "--tag-display-limit", "0", *built.changes],
        check=False,
    )
    tags = [ln for ln in proc.stdout.splitlines() if re.match(r"[EW]: ", ln)]
    assert proc.returncode == 0 and not tags, proc.stdout + proc.stderr
    # Both the binary and the source package were checked.
    assert any(c.name.endswith("_source.changes") for c in built.changes)
    assert any(not c.name.endswith("_source.changes") for c in built.changes)


def test_every_override_has_a_reason():
    for path in (REPO / "debian").glob("*lintian-overrides"):
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            if line.strip() and not line.startswith("#"):
                assert i > 0 and lines[i - 1].startswith("# "), f"{path.name}: {line}"
