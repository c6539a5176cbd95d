"""A light default install: `apt-get install ./duckdns_*.deb` on a minimal Debian 12, with
apt's defaults (Recommends installed), adds at most 5 packages besides duckdns, and what
is only suggested is named when a command needs it.

The minimal Debian 12: ``debootstrap --variant=minbase`` (piuparts' base, cached beside the
rootfs) plus ``python3`` and ``python3-requests``, which Debian 12's "standard system
utilities" bring (reportbug, priority standard, depends on python3-reportbug, which depends
on python3-requests: ``apt-cache show`` on bookworm). Measured on 2026-12-06 against the
bookworm mirror: with ``Recommends: apprise`` and ``Depends: python3-dnspython`` the
install added 28 packages besides duckdns (apprise and its dependencies, and dnspython's
own Recommends: httpx, h2, cryptography, rich, pygments, markdown-it...); with both only
suggested, none. On minbase with python3 alone it adds requests' 10 (its own Depends:
certifi, charset-normalizer, chardet, idna, urllib3, six, pkg-resources, ca-certificates,
openssl); on minbase without Python, 34.

Needs the Debian mirror (the dependencies come from it, as for piuparts).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import harness
from support.helpers import run, skip_or_fail

SUITE = "bookworm"
BASELINE = ["python3", "python3-requests"]
MAX_ADDED = 5
ENV = {
    "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
    "DEBIAN_FRONTEND": "noninteractive",
}


def in_root(root: Path, *cmd: str, check: bool = True):
    return run(["chroot", str(root), *cmd], check=check, env=ENV, timeout=900)


def installed(root: Path) -> set[str]:
    out = in_root(root, "dpkg-query", "-W", "-f", "${Package} ${db:Status-Status}\n").stdout
    return {line.split()[0] for line in out.splitlines() if line.endswith(" installed")}


def test_the_default_install_on_a_minimal_debian_12_adds_at_most_5_packages(
    deb, system_env, tmp_path
):
    if not harness.mirror_reachable(suite=SUITE):
        skip_or_fail(f"the install needs the Debian mirror {harness.debian_mirror()}")
    root = tmp_path / "root"
    root.mkdir()
    run(["tar", "-C", str(root), "--numeric-owner", "-xzf", str(harness.piuparts_tarball(SUITE))])
    shutil.copy("/etc/resolv.conf", root / "etc/resolv.conf")
    (root / "etc/apt/sources.list").write_text(f"deb {harness.debian_mirror()} {SUITE} main\n")
    assert not list((root / "etc/apt/apt.conf.d").glob("*recommend*"))  # apt's defaults
    with harness.phase("footprint: the minimal root"):
        in_root(root, "apt-get", "update", "-q")
        in_root(root, "apt-get", "install", "-y", "-q", "--no-install-recommends", *BASELINE)
    before = installed(root)
    shutil.copy(deb, root / "tmp" / deb.name)
    with harness.phase("footprint: apt-get install ./duckdns.deb"):
        proc = in_root(root, "apt-get", "install", "-y", "-q", f"/tmp/{deb.name}")
    added = installed(root) - before
    assert "duckdns" in added, proc.stdout
    assert len(added - {"duckdns"}) <= MAX_ADDED, sorted(added)
    assert not added & {"apprise", "python3-dnspython", "python3-httpx", "python3-cryptography"}

    # The updater runs without what is only suggested, and says what to install.
    assert in_root(root, "duckdns", "--version").stdout.startswith("duckdns ")
    conf = root / "root/duckdns.conf"
    conf.write_text(
        "domains = piserver\ntoken = a7c4d0ad-114e-40ef-ba1d-d217904a50f2\n"
        "notify = json://127.0.0.1:9/hook\n"
    )
    conf.chmod(0o600)
    duckdns = ("duckdns", "--config", "/root/duckdns.conf")
    proc = in_root(root, *duckdns, "check", check=False)
    assert proc.returncode == 0, proc.stderr
    assert "sudo apt install apprise" in proc.stdout + proc.stderr
    proc = in_root(root, *duckdns, "notify", "--test", check=False)
    assert proc.returncode == 78 and "sudo apt install apprise" in proc.stderr, proc.stderr
    proc = in_root(root, *duckdns, "verify", check=False)
    assert proc.returncode == 78, proc.stderr
    assert "sudo apt install python3-dnspython" in proc.stderr
