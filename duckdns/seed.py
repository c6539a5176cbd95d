"""The token a card's cloud-init first boot leaves where others can read it.

A card set up at first boot by cloud-init (docs/fleet.md) keeps the user-data it was
given: Raspberry Pi Imager writes it to the FAT boot partition, which Raspberry Pi OS
mounts readable by every user, and an image builder's NoCloud seed under
/var/lib/cloud/seed/ keeps the mode it was written with. ``duckdns check`` warns about
those (:func:`warn_readable`): they are the admin's files.

cloud-init also logs the ``apt`` config it applies, the ``debconf_selections`` and so
the token with it, to /var/log/cloud-init.log, readable by group adm (Debian 13's
cloud-init 25.1: ``cc_apt_configure``'s "handling apt config" debug line). The
package's postinst masks it there in place (:func:`mask_in_place`, run as
``python3 -m duckdns.seed CONFIG``). cloud-init's other copies (under
/var/lib/cloud/instances/ and /run/cloud-init/) are root-only: measured by
tests/system/test_cloudinit.py.
"""

from __future__ import annotations

import glob
import os
import re
import stat
import sys
from pathlib import PurePath

from duckdns import EXIT_CONFIG, EXIT_OK, EXIT_USAGE, config, report

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
        return bool(os.stat(path).st_mode & stat.S_IROTH) and all(
            os.stat(parent).st_mode & stat.S_IXOTH
            for parent in PurePath(os.path.abspath(path)).parents
        )
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


def readable_seeds(token: str, patterns: tuple[str, ...]) -> list[str]:
    """The files ``patterns`` match that hold the token and that any user can read."""
    return [
        path
        for pattern in patterns
        for path in sorted(glob.glob(pattern))
        if os.path.isfile(path) and world_readable(path) and holds(path, token)
    ]


def warn_readable(token: str) -> None:
    """A warning for each world-readable cloud-init seed holding the token (named by
    its path only, never its content)."""
    for path in readable_seeds(token, SEEDS):
        report.warning(
            f"{path} holds the DuckDNS token and every user of this machine can read it "
            "(cloud-init's first-boot user-data): remove the token from it with: "
            f"{FIX.format(path=path)}"
        )


# cloud-init's logs (Debian's def_log_file and its output log); rotated copies are
# compressed, and do not exist yet at a card's first boot.
LOGS = ("/var/log/cloud-init.log", "/var/log/cloud-init-output.log")
# Read this much at a time: memory stays bounded whatever the log's size.
CHUNK = 1 << 20


def mask_in_place(path: str, token: str) -> int:
    """Overwrite each occurrence of the token (any letter case) in ``path`` with as many
    ``*``, in place: the same file, inode and length, so a cloud-init still appending to
    it (the package is installed from inside cloud-init's final stage) loses nothing.
    A symbolic link or anything but a regular file is left alone. Returns the count."""
    needle = token.lower().encode()
    mask = b"*" * len(needle)
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_NOCTTY)
    except OSError:
        return 0
    count = pos = 0
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return 0
        while True:
            data = os.pread(fd, CHUNK, pos).lower()
            for match in re.finditer(re.escape(needle), data):
                os.pwrite(fd, mask, pos + match.start())
                count += 1
            if len(data) < CHUNK:
                return count
            pos += len(data) - len(needle) + 1  # a token across two chunks is found too
    finally:
        os.close(fd)


def main(argv: list[str] | None = None) -> int:
    """``python3 -m duckdns.seed CONFIG``: the postinst's call, with the config it has
    just written (the token is read from there, never passed on a command line)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        report.error("usage: python3 -m duckdns.seed CONFIG")
        return EXIT_USAGE
    try:
        token = config.load(args[0]).token
    except config.ConfigError as exc:
        report.error(str(exc))
        return EXIT_CONFIG
    for path in LOGS:
        if mask_in_place(path, token):
            report.notice(
                f"{path}: the DuckDNS token masked there (cloud-init logs the "
                "debconf_selections of the user-data it applies)"
            )
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
