"""Atomic, private file writes that respect the state directory's owner; path strings.

Paths are plain strings here and in every module a timer run loads: ``pathlib`` (with
``fnmatch``, ``re`` and ``urllib.parse`` behind it) costs about 8 ms to import, more than
half of what a ``duckdns check`` may cost. :func:`normpath`, :func:`parent` and
:func:`join` give the strings ``pathlib.Path`` would (``str(Path(p))``, ``Path(p).parent``,
``Path(p) / name``), so every message names a file exactly as before.
"""

from __future__ import annotations

import os


def normpath(path: str | os.PathLike) -> str:
    """``str(pathlib.PurePosixPath(path))``: no empty or ``.`` parts, no trailing slash."""
    path = os.fspath(path)
    root = ""
    if path.startswith("/"):
        # POSIX keeps exactly two leading slashes (implementation-defined); more count as one.
        root = "//" if path.startswith("//") and not path.startswith("///") else "/"
    parts = [part for part in path.split("/") if part and part != "."]
    return root + "/".join(parts) or "."


def parent(path: str) -> str:
    """``str(Path(path).parent)`` for a :func:`normpath` string."""
    head, sep, _ = path.rpartition("/")
    if not sep:
        return "."
    return head if head.strip("/") else path[: len(path) - len(path.lstrip("/"))]


def join(directory: str, name: str) -> str:
    """``str(Path(directory) / name)`` for a :func:`normpath` directory and a plain name."""
    if directory == ".":
        return name
    return directory + name if directory.endswith("/") else f"{directory}/{name}"


def atomic_write(path: str, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename.

    The file is created with ``mode`` from its first byte (never readable by
    others, whatever the umask), and, when we run as root, handed to the owner of
    its directory. That matters: once the service has run, systemd has chowned the
    state directory to the service's dynamic user and only re-chowns when the
    directory's owner differs, so a file root leaves behind with root as owner
    would be unreadable to the next timer run.
    """
    path = normpath(path)
    directory = parent(path)
    tmp = join(directory, f".{path.rpartition('/')[2]}.tmp.{os.getpid()}")
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
