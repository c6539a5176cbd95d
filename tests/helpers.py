"""Helpers shared by every test layer: the canary token and running the updater.

Every scenario uses CANARY as the token and asserts it never shows up anywhere but
the config file.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
CANARY = "c0ffee00-dead-beef-0000-123456789abc"
DEBIAN_PYTHON = "/usr/bin/python3"


def assert_no_canary(*texts: str | bytes, where: str = "output") -> None:
    for text in texts:
        data = text.encode() if isinstance(text, str) else text
        assert CANARY.encode() not in data, f"the token leaked into {where}"


def assert_no_canary_in_tree(root: Path, allowed: set[Path]) -> None:
    """No file below ``root`` but those in ``allowed`` holds the token."""
    for path in root.rglob("*"):
        if path.is_file() and path not in allowed:
            assert_no_canary(path.read_bytes(), where=str(path))


def run_duckdns(
    *args: str, env: dict | None = None, timeout: float = 90, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    """Run the updater from this tree, as the package runs it, with Debian's Python.

    The token must never reach its output, whatever the scenario: checked here for
    every call.
    """
    full_env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "PYTHONPATH": str(ROOT),
        "LANG": "C.UTF-8",
        "HOME": str(cwd or ROOT),
    }
    full_env.update(env or {})
    proc = subprocess.run(
        [DEBIAN_PYTHON, "-m", "duckdns", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        cwd=cwd or ROOT,
    )
    assert_no_canary(proc.stdout, proc.stderr, where=f"the output of duckdns {' '.join(args)}")
    assert CANARY not in " ".join(args)
    return proc


def write_config(path: Path, mode: int = 0o600, **keys: str) -> Path:
    """Write a native config file, created with ``mode`` from its first byte."""
    lines = ["# written by the tests"] + [f"{key} = {value}" for key, value in keys.items()]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.chmod(path, mode)
    return path
