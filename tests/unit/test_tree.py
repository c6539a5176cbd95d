"""Rules about the test tree itself."""

from __future__ import annotations

import re

from support.helpers import ROOT, TESTS


def test_no_test_imports_from_conftest():
    """Each layer has a conftest.py; ``from conftest import x`` picks whichever was imported
    first when the whole suite runs. Shared code lives in tests/support instead."""
    offenders = [
        str(path.relative_to(TESTS))
        for path in TESTS.rglob("*.py")
        if re.search(r"^\s*(from conftest import|import conftest)", path.read_text(), re.M)
    ]
    assert offenders == []


# Built in two pieces so that this file does not match itself.
HISTORY = re.compile(r"\b" + "issue" + r"s?\s*#?\s*\d", re.IGNORECASE)
NOT_SOURCE = {"dist", "deb_dist", "build", "__pycache__"}


def text_lines(skip: tuple[str, ...] = ()):
    """(place, line) for every line of every text file of the tree (not its build output,
    hidden directories, or the files in ``skip``)."""
    for path in sorted(ROOT.rglob("*")):
        parts = path.relative_to(ROOT).parts
        if (
            not path.is_file()
            or any(p.startswith(".") or p in NOT_SOURCE or p.endswith(".egg-info") for p in parts)
            or "/".join(parts) in skip
        ):
            continue
        data = path.read_bytes()
        if b"\0" in data:
            continue
        for number, line in enumerate(data.decode(errors="replace").splitlines(), 1):
            yield f"{'/'.join(parts)}:{number}", line


def test_no_issue_numbers_in_the_tree():
    """Code, docs, man pages, tests and scripts say what matters now, not which issue brought
    it: the history of a change belongs in debian/changelog."""
    offenders = [
        f"{place}: {line.strip()}"
        for place, line in text_lines(skip=("debian/changelog",))
        if HISTORY.search(line)
    ]
    assert offenders == []


def test_test_files_have_names_of_their_own():
    """The test directories are not packages (pytest imports each file by its base name), so
    two layers' files of one name make pytest refuse the second when both are collected."""
    seen: dict[str, list[str]] = {}
    for path in sorted(TESTS.glob("*/test_*.py")):
        seen.setdefault(path.name, []).append(str(path.relative_to(TESTS)))
    assert {name: where for name, where in seen.items() if len(where) > 1} == {}


# Built in two pieces so that this file does not match itself.
OUTSIDE = re.compile("shared" + r"/duckdns-api|\.\./" + "shared")


def test_nothing_cites_a_file_outside_the_repository():
    """The facts the code relies on live in docs/duckdns-api.md, in the project's own words
    with their sources: a clone must hold every page its code and tests cite."""
    offenders = [f"{place}: {line.strip()}" for place, line in text_lines() if OUTSIDE.search(line)]
    assert offenders == []
