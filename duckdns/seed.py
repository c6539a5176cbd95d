"""The token left behind in a cloud-init seed that any user of the machine can read.

A card set up at first boot by cloud-init (docs/fleet.md) keeps the user-data it was
given: Raspberry Pi Imager writes it to the FAT boot partition, which Raspberry Pi OS
mounts readable by every user, and an image builder's NoCloud seed under
/var/lib/cloud/seed/ keeps the mode it was written with. cloud-init's own copies under
/var/lib/cloud/instances/ are root-only (measured: tests/system/test_cloudinit.py), so
only the seeds are looked at here. ``duckdns check`` calls :func:`warn_readable`.
"""

from __future__ import annotations

import glob
import os
import stat

from duckdns import report

# The NoCloud seeds cloud-init reads: the boot partition of Raspberry Pi OS (the
# /boot/firmware of Bookworm and later, /boot before), and the seed directories of
# cloud-init's NoCloud datasource ("nocloud" and "nocloud-net").
SEEDS = (
    "/boot/firmware/user-data",
    "/boot/user-data",
    "/var/lib/cloud/seed/nocloud*/user-data",
)
# A user-data larger than this is read only this far: a run's memory stays bounded
# whatever sits on the boot partition (cloud-init's own limit for most clouds is 16 KiB).
READ_LIMIT = 1 << 20
# The one command docs/fleet.md gives: delete the preseeded token line, keep the rest
# (meta-data's instance-id is unchanged, so cloud-init does not run again).
FIX = "sudo sed -i '/duckdns\\/token/d' {path}"


def world_readable(path: str) -> bool:
    """Whether any user can read ``path``: readable by others and every directory on
    the way to it searchable by others."""
    try:
        if not os.stat(path).st_mode & stat.S_IROTH:
            return False
        parent = os.path.dirname(os.path.abspath(path))
        while True:
            if not os.stat(parent).st_mode & stat.S_IXOTH:
                return False
            if parent == os.path.dirname(parent):
                return True
            parent = os.path.dirname(parent)
    except OSError:
        return False


def holds(path: str, token: str) -> bool:
    """Whether the file's first READ_LIMIT bytes hold the token (in any letter case:
    DuckDNS shows it lower case, a hand-typed seed may not be)."""
    try:
        with open(path, "rb") as f:
            data = f.read(READ_LIMIT)
    except OSError:
        return False
    return token.lower().encode() in data.lower()


def readable_seeds(token: str, patterns: tuple[str, ...] | None = None) -> list[str]:
    """The seeds in ``patterns`` (default :data:`SEEDS`) that hold the token and that
    any user can read."""
    found = []
    for pattern in SEEDS if patterns is None else patterns:
        for path in sorted(glob.glob(pattern)):
            if os.path.isfile(path) and world_readable(path) and holds(path, token):
                found.append(path)
    return found


def warn_readable(token: str, patterns: tuple[str, ...] | None = None) -> None:
    """A warning for each world-readable cloud-init seed holding the token (named by
    its path only, never its content)."""
    for path in readable_seeds(token, patterns):
        report.warning(
            f"{path} holds the DuckDNS token and every user of this machine can read it "
            "(cloud-init's first-boot user-data): remove the token from it with: "
            f"{FIX.format(path=path)}"
        )
