"""One version, one changelog, reproducible: debian/changelog's top entry is the version
of everything, the .deb ships the repository's changelog and NEWS, and a second build of
the same tree under other conditions gives the same bytes."""

from __future__ import annotations

import gzip
import re
import time

from pkgtools import PY, REPO
from support.helpers import run
from support.release import (
    VARIED_BUILD,
    changelog_field,
    copy_worktree,
    differences,
    previous_release,
    sha256,
    upstream,
    version_at,
)

from debian import copyright

DOC = "usr/share/doc/duckdns"


def test_the_changelog_is_the_one_version(built):
    """debian/changelog's top entry = the .deb's version = setup.py's = duckdns --version."""
    version = changelog_field("Version")
    assert built.control["Version"] == version
    assert built.version == upstream(version)
    init = (REPO / "duckdns/__init__.py").read_text()
    assert f'__version__ = "{upstream(version)}"' in init
    shown = run([PY, "-m", "duckdns", "--version"], cwd=REPO).stdout.strip()
    assert shown == f"duckdns {upstream(version)}"
    run(["dpkg", "--compare-versions", version, "ge", "1.0.0-1"])


def test_make_deb_refuses_a_version_the_changelog_does_not_have(tmp_path):
    """__init__.py and debian/changelog disagreeing stops the build before it starts."""
    tree = copy_worktree(tmp_path / "tree")
    init = tree / "duckdns/__init__.py"
    init.write_text(re.sub(r'__version__ = "[^"]*"', '__version__ = "9.9.9"', init.read_text()))
    proc = run(["make", "-C", tree, "deb"], check=False)
    assert proc.returncode != 0
    expected = upstream(changelog_field("Version"))
    assert f"duckdns/__init__.py says 9.9.9, debian/changelog {expected}" in proc.stderr
    assert not (tree / "deb_dist").exists()


def test_the_deb_ships_the_repositorys_changelog_and_news(built):
    shipped = gzip.decompress((built.root / DOC / "changelog.Debian.gz").read_bytes())
    assert shipped == (REPO / "debian/changelog").read_bytes()
    news = gzip.decompress((built.root / DOC / "NEWS.Debian.gz").read_bytes())
    assert news == (REPO / "debian/NEWS").read_bytes()
    assert b"stdeb" not in shipped


def test_the_source_package_carries_changelog_tests_and_no_watch(built):
    listing = run(["tar", "-tf", built.dsc.with_name(built.dsc.stem + ".debian.tar.xz")])
    names = listing.stdout.split()
    for name in ("debian/changelog", "debian/NEWS", "debian/tests/control"):
        assert name in names, names
    assert "debian/watch" not in names
    assert "Testsuite: autopkgtest" in built.dsc.read_text()


def test_changelog_and_news_speak_to_users():
    """Entries say what changed for users, not which ticket it was; NEWS entries are
    releases the changelog has."""
    for name in ("changelog", "NEWS"):
        text = (REPO / "debian" / name).read_text()
        assert not re.search(r"#\d|\bissues?\s*\d", text, re.I), name
    news = run(["dpkg-parsechangelog", "-l", REPO / "debian/NEWS", "--all", "-S", "Version"])
    log = run(["dpkg-parsechangelog", "-l", REPO / "debian/changelog", "--all", "-S", "Version"])
    assert set(news.stdout.split()) <= set(log.stdout.split())


def test_previous_release_is_the_changelogs_second_entry():
    version, commit = previous_release()
    assert version == changelog_field("Version", offset=1)
    assert version_at(commit) == version
    run(["dpkg", "--compare-versions", version, "lt", changelog_field("Version")])


def test_two_builds_in_other_conditions_are_identical(built, tmp_path):
    """The same tree built again in another directory, with fresh file times, another
    umask, time zone and locale and a clock 400 days on: the same .deb, bit for bit."""
    tree = copy_worktree(tmp_path / "elsewhere" / "checkout")
    start = time.monotonic()
    run(["sh", "-c", VARIED_BUILD.format(tree=tree)])
    print(f"second build: {time.monotonic() - start:.1f} s")
    again = tree / "dist" / built.deb.name
    assert sha256(again) == sha256(built.deb), differences(built.deb, again)


def test_copyright_is_machine_readable():
    """DEP-5, parsed strictly: one MIT paragraph for every file, its licence text given."""
    with (REPO / "debian/copyright").open() as f:
        parsed = copyright.Copyright(f, strict=True)
    assert parsed.header.upstream_name == "duckdns"
    paragraphs = list(parsed.all_files_paragraphs())
    assert [(p.files, p.license.synopsis) for p in paragraphs] == [(("*",), "MIT")]
    assert "Permission is hereby granted" in next(parsed.all_license_paragraphs()).license.text
