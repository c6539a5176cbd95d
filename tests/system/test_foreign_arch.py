"""Scenario 12: the one Architecture: all .deb on arm64 and armhf (Raspberry Pi OS).

Emulated bookworm chroots under qemu-user-static (binfmt_misc), inside their own network
namespace with only a loopback: `apt install ./duckdns_….deb` needs no download (the
dependencies are in the cached base) and `duckdns update` reaches the test DuckDNS server
on that loopback as www.duckdns.org, verified against the test CA in the chroot's store.

systemd is not booted here: under qemu-user the syscall filter is not enforced and
PrivateUsers= fails, so a boot would say nothing true about the hardened unit. The
unit itself is proved in the booted amd64 container (the other scenarios).
"""

from __future__ import annotations

import harness
import pytest

TOKEN = harness.CANARY_TOKEN


@pytest.fixture(scope="session")
def foreign_env(system_env):
    from harness import skip_or_fail

    if harness.shutil.which("update-binfmts") is None or not any(
        harness.Path("/usr/libexec/qemu-binfmt").glob("*")
    ):
        skip_or_fail("qemu-user-static and binfmt-support are needed (make test-deps)")
    uncached = [a for a in ("arm64", "armhf") if not harness.cached("chroot", a)]
    if uncached and not harness.mirror_reachable():
        skip_or_fail(f"the Debian mirror is needed to build the {'/'.join(uncached)} roots")


@pytest.mark.parametrize("arch", ["arm64", "armhf"])
def test_install_and_update_on_foreign_arch(arch, deb, foreign_env):
    with harness.Chroot(arch) as ch:
        assert ch.exec(["dpkg", "--print-architecture"]).stdout.strip() == arch
        # Really emulated: the chroot's python3 is an ELF for the foreign machine.
        machine = ch.exec(["python3", "-c", "import platform; print(platform.machine())"])
        assert (
            machine.stdout.strip() in {"arm64": ("aarch64",), "armhf": ("armv7l", "armv8l")}[arch]
        ), machine.stdout
        # No route off the machine from here.
        links = ch.host(["ip", "-o", "link"]).stdout.splitlines()
        assert [ln.split(":")[1].strip() for ln in links] == ["lo"], links

        ch.start_server(token=TOKEN, domains=["piserver"])
        # A fleet-style preseeded install: no question, the config written by postinst.
        ch.root.joinpath("root/seed").write_text(
            f"duckdns duckdns/domains string piserver\nduckdns duckdns/token password {TOKEN}\n"
        )
        ch.exec(["debconf-set-selections", "/root/seed"])
        ch.root.joinpath("root/seed").unlink()
        harness.shutil.copy2(deb, ch.root / "root" / deb.name)
        proc = ch.exec(["apt-get", "install", "-y", f"/root/{deb.name}"])
        assert TOKEN not in proc.stdout + proc.stderr
        status = ch.exec(["dpkg-query", "-W", "-f=${Status} ${Architecture}", "duckdns"])
        assert status.stdout == "install ok installed all"

        conf = ch.root / "var/lib/private/duckdns/duckdns.conf"
        assert conf.exists(), "postinst wrote no config from the preseeded answers"
        assert conf.stat().st_mode & 0o777 == 0o600

        proc = ch.exec(["duckdns", "update"], check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert TOKEN not in proc.stdout + proc.stderr
        updates = ch.updates()
        assert updates, "duckdns update did not reach the test server"
        assert updates[-1]["query"]["token"] == TOKEN
        assert updates[-1]["query"]["domains"] == "piserver"
        assert "python-requests" in updates[-1]["user_agent"] or updates[-1]["user_agent"]
