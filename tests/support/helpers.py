"""Helpers shared by every test layer (unit, package, system, scripts/bench): the canary
token, running commands, the version, skipping (or, in CI, failing).

Every scenario uses CANARY as the token and asserts it never shows up anywhere but
the config file.

They live here, not in a conftest.py: each layer has a conftest, and a plain
``from conftest import …`` picks whichever was imported first.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent
CANARY = "c0ffee00-dead-beef-0000-123456789abc"
DEBIAN_PYTHON = "/usr/bin/python3"
# The public address the probe reports and the test DuckDNS server sees (TEST-NET-3).
PUBLIC = "203.0.113.7"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# Debian's tools only: never a pyenv/venv python3 from PATH.
CLEAN_ENV = {**os.environ, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8"}


def skip_or_fail(reason: str) -> None:
    """Skip on a developer machine; fail in CI, where everything must run."""
    import pytest

    if IN_CI:
        pytest.fail(f"cannot run in CI: {reason}", pytrace=False)
    pytest.skip(reason)


def run(cmd, check=True, **kw) -> subprocess.CompletedProcess:
    """subprocess.run with Debian's PATH, text output captured, and a readable error."""
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    kw.setdefault("env", CLEAN_ENV)
    cmd = [str(c) for c in cmd]
    proc = subprocess.run(cmd, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"command failed ({proc.returncode}): {shlex.join(cmd)}\n"
            f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
        )
    return proc


def package_version() -> str:
    """The upstream version, from duckdns/__init__.py."""
    text = (ROOT / "duckdns/__init__.py").read_text()
    return re.search(r'__version__\s*=\s*"([^"]+)"', text).group(1)


def assert_no_canary(*texts: str | bytes, where: str = "output") -> None:
    for text in texts:
        data = text.encode() if isinstance(text, str) else text
        assert CANARY.encode() not in data, f"the token leaked into {where}"


def assert_no_canary_in_tree(root: Path, allowed: set[Path]) -> None:
    """No file below ``root`` but those in ``allowed`` holds the token."""
    for path in root.rglob("*"):
        if path.is_file() and path not in allowed:
            assert_no_canary(path.read_bytes(), where=str(path))


def faketime_env(offset: str) -> dict:
    """The environment that runs a child ``offset`` (e.g. ``+6m``) from now (libfaketime).

    Sleeps stay real. Raises LookupError when libfaketime is not installed (Debian: faketime).
    """
    import glob

    found = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))
    if not found:
        raise LookupError("libfaketime is not installed (Debian: faketime)")
    return {"LD_PRELOAD": found[0], "FAKETIME": offset}


def write_config(path: Path, mode: int = 0o600, **keys: str) -> Path:
    """Write a native config file, created with ``mode`` from its first byte."""
    lines = ["# written by the tests"] + [f"{key} = {value}" for key, value in keys.items()]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.chmod(path, mode)
    return path


def state_of(cfg: Path) -> dict:
    """The state file next to ``cfg``."""
    return json.loads((cfg.parent / "state.json").read_text())


def make_signing_key(home: Path, name: str) -> Path:
    """A throw-away ed25519 gpg signing key in a keyring of its own at ``home``.

    Returns its armoured secret key file (what ``make repo REPO_KEY_FILE=`` takes).
    """
    home.mkdir(mode=0o700, exist_ok=True)
    home.chmod(0o700)
    env = {**os.environ, "GNUPGHOME": str(home)}
    uid = f"{name} <{name}@test.invalid>"
    gen = ["gpg", "--batch", "--passphrase", "", "--quick-gen-key", uid, "ed25519", "sign", "never"]
    subprocess.run(gen, env=env, check=True, capture_output=True)
    export = ["gpg", "--batch", "--armor", "--export-secret-keys"]
    key = home / "secret.asc"
    key.write_bytes(subprocess.run(export, env=env, check=True, capture_output=True).stdout)
    subprocess.run(["gpgconf", "--kill", "all"], env=env, capture_output=True)  # no agent left
    return key
