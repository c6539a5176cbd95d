"""Atomic, private file writes that respect the state directory's owner."""

from __future__ import annotations

import os
from pathlib import Path


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename.

    The file is created with ``mode`` from its first byte (never readable by
    others, whatever the umask), and, when we run as root, handed to the owner of
    its directory. That matters: once the service has run, systemd has chowned the
    state directory to the service's dynamic user and only re-chowns when the
    directory's owner differs, so a file root leaves behind with root as owner
    would be unreadable to the next timer run.
    """
    directory = path.parent
    tmp = directory / f".{path.name}.tmp.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            if os.geteuid() == 0:
                st = os.stat(directory)
                os.fchown(f.fileno(), st.st_uid, st.st_gid)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
