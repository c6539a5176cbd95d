"""`scripts/make-repo` (behind `make repo`): a signed reprepro repository of the .deb."""

from __future__ import annotations

import os
import subprocess

import pytest
from pkgtools import REPO
from support.helpers import make_signing_key, run

from debian import deb822

MAKE_REPO = REPO / "scripts" / "make-repo"


@pytest.fixture(scope="module")
def signing_key(tmp_path_factory):
    return make_signing_key(tmp_path_factory.mktemp("gnupg"), "repo-test")


def make_repo(tmp_path, deb, **env):
    """Run make-repo with only the key settings given here (none from the caller's shell)."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("REPO_")}
    full.update(REPO_DIR=str(tmp_path / "repo"), **env)
    return subprocess.run([str(MAKE_REPO), str(deb)], env=full, capture_output=True, text=True)


def test_refuses_without_a_key(tmp_path, built):
    proc = make_repo(tmp_path, built.deb)
    assert proc.returncode != 0
    assert "no signing key" in proc.stderr and "REPO_KEY_ID" in proc.stderr
    assert not (tmp_path / "repo" / "dists").exists()


def test_refuses_an_unknown_key(tmp_path, built):
    proc = make_repo(
        tmp_path,
        built.deb,
        REPO_KEY_ID="0123456789ABCDEF0123456789ABCDEF01234567",
        GNUPGHOME=str(tmp_path),
    )
    assert proc.returncode != 0 and "no such secret key" in proc.stderr


def test_signed_suites_and_rollback_snapshot(tmp_path, built, signing_key):
    proc = make_repo(tmp_path, built.deb, REPO_KEY_FILE=str(signing_key))
    assert proc.returncode == 0, proc.stderr
    repo = tmp_path / "repo"
    assert not (repo / "conf").exists() and not (repo / "db").exists(), "state is not published"
    keyring = repo / "duckdns-archive-keyring.gpg"
    version = built.control["Version"]
    for suite in ("bookworm", "trixie"):
        dists = repo / "dists" / suite
        # apt's own check: the Release is signed by exactly the published key.
        run(["gpgv", "--keyring", keyring, dists / "InRelease"])
        release = deb822.Release((dists / "Release").read_text())
        assert release["Origin"] == "duckdns" and release["Label"] == "duckdns"
        assert release["Suite"] == suite
        assert release["Architectures"].split() == ["amd64", "arm64", "armhf"]
        for arch in ("amd64", "arm64", "armhf"):
            packages = list(
                deb822.Packages.iter_paragraphs(
                    (dists / "main" / f"binary-{arch}" / "Packages").read_text(),
                    use_apt_pkg=False,
                )
            )
            assert [(p["Package"], p["Version"]) for p in packages] == [("duckdns", version)]
            assert (repo / packages[0]["Filename"]).is_file()
        # Each published version stays reachable for rollback.
        run(["gpgv", "--keyring", keyring, dists / "snapshots" / version / "InRelease"])
