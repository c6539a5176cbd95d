"""Booted: ``probe = router`` and the reachability verdict against Debian's own router daemon.

The gateway is the release's ``miniupnpd`` (package miniupnpd-nftables: NAT-PMP, PCP and
UPnP IGD), run from its binary with a minimal configuration in a network namespace of its
own inside the container: its LAN side is a veth pair whose other end is the container's
only link and default route (so ``router.default_gateway()`` finds it in the kernel's
table), its WAN side a veth pair with both ends in its namespace (this machine's kernel has
no dummy driver). Its packaged service is masked in the test root (tests/system/roots.py):
the service would use the package's interface guesses and firewall scripts.

Its WAN address is set in turn to a global one, a carrier-grade NAT one (RFC 6598) and a
private one (RFC 1918), then NAT-PMP/PCP is turned off (UPnP IGD alone). For each, the
packaged, hardened duckdns.service runs twice (``systemctl start``, as the timer starts it)
and ``duckdns check`` once (by hand, as root, which asks UPnP IGD too when NAT-PMP/PCP gave
no address). The "public" address must be a real global one: miniupnpd refuses NAT-PMP
(result 3) when its WAN address is in its list of reserved ranges, which holds the
documentation ranges 192.0.2/24, 198.51.100/24 and 203.0.113/24 (miniupnpd's getifaddr.c,
``addr_is_reserved``). 93.184.216.34 never leaves the container: its only links are
loopback and the one to the router's namespace, whose WAN link leads nowhere.

DuckDNS (the look-alike) records the address it sees, 93.184.216.34, throughout: under
carrier-grade NAT or a router in front, DuckDNS sees the address of the NAT beyond ours.
"""

from __future__ import annotations

import re
import time

import harness
import pytest
from harness import CONF, TEST_DIR_IN_CONTAINER
from support.helpers import CANARY as TOKEN

PUBLIC = "93.184.216.34"  # a global address (RFC 6890's registry has no entry for it)
CGNAT = "100.64.20.7"  # RFC 6598 Shared Address Space
PRIVATE = "192.168.1.7"  # RFC 1918: the router in front of ours hands it out
LAN_ROUTER, LAN_PI = "192.168.77.1", "192.168.77.2"

# The lines each verdict begins with (README "Reaching the Pi from outside").
DIRECT = "reachability: direct: port forwarding on this router can reach the Pi"
CARRIER = (
    "reachability: carrier-grade NAT: your provider shares one address among many "
    "customers; forwarded ports cannot reach the Pi from outside"
)
DOUBLE = "reachability: double NAT: another router sits in front of yours"
UNKNOWN = "reachability: unknown (the router does not speak NAT-PMP/PCP/UPnP)"


class Miniupnpd:
    """Debian's miniupnpd as the container's default gateway, in the namespace ``rtr``."""

    def __init__(self, c: harness.Container) -> None:
        self.c, self.n = c, 0
        c.sh(
            "ip netns add rtr && ip -n rtr link set lo up && "
            "ip link add eth0 type veth peer name lan0 netns rtr && "
            "ip -n rtr link add wan0 type veth peer name wanp && "
            "for l in lan0 wan0 wanp; do ip -n rtr link set $l up; done && "
            f"ip -n rtr addr add {LAN_ROUTER}/24 dev lan0 && "
            f"ip link set eth0 up && ip addr add {LAN_PI}/24 dev eth0 && "
            f"ip route add default via {LAN_ROUTER}"
        )

    def start(self, wan: str, natpmp: bool = True) -> str:
        """(Re)start it with ``wan`` on its WAN link; returns the name of its log file."""
        if self.n:
            self.c.exec(["systemctl", "stop", self.unit], check=False)
        self.n += 1
        self.unit = f"duckdns-test-miniupnpd-{self.n}.service"
        self.c.sh(
            f"ip -n rtr addr flush dev wan0 && ip -n rtr addr add {wan}/24 dev wan0 && "
            "ip -n rtr route replace default dev wan0"
        )
        # miniupnpd.conf(5) of both releases: enable_natpmp covers NAT-PMP and PCP (2.3.9
        # also reads it as enable_pcp_pmp); the permission rules let the LAN map its own
        # ports only.
        conf = self.c.hostdir / f"miniupnpd-{self.n}.conf"
        conf.write_text(
            "ext_ifname=wan0\n"
            "listening_ip=lan0\n"
            f"enable_natpmp={'yes' if natpmp else 'no'}\n"
            "enable_upnp=yes\n"
            "secure_mode=yes\n"
            "system_uptime=yes\n"
            "uuid=3b4d6a5e-0000-4000-8000-000000000001\n"
            "allow 1024-65535 192.168.77.0/24 1024-65535\n"
            "deny 0-65535 0.0.0.0/0 0-65535\n"
        )
        log = self.c.hostdir / f"{self.unit}.log"
        # -d: in the foreground, its log on stderr (also in the journal).
        ready = "Listening for NAT-PMP/PCP traffic" if natpmp else "HTTP listening on port"
        self.c.serve(
            self.unit,
            [
                "ip",
                "netns",
                "exec",
                "rtr",
                "/usr/sbin/miniupnpd",
                "-d",
                "-f",
                f"{TEST_DIR_IN_CONTAINER}/{conf.name}",
                "-P",
                f"{TEST_DIR_IN_CONTAINER}/miniupnpd-{self.n}.pid",
            ],
            lambda: log.exists() and ready in log.read_text(errors="replace"),
            f"miniupnpd with WAN address {wan}",
        )
        return log.name

    def log(self) -> str:
        return (self.c.hostdir / f"{self.unit}.log").read_text(errors="replace")


def service_run(c) -> None:
    """One run of the packaged unit, as the timer starts it; it must succeed. Runs a second
    apart, not a minute: systemd's start rate limit (5 starts in 10 s by default) is reset."""
    done = harness.service_finished_count(c)
    c.exec(["systemctl", "reset-failed", "duckdns.service"], check=False)
    c.exec(["systemctl", "start", "duckdns.service"], check=False)
    result = harness.wait_service_run(c, after=done, timeout=60)
    assert result["Result"] == "success", result


def reach_lines(c) -> list[str]:
    journal = c.exec(["journalctl", "--no-pager", "-o", "cat", "SYSLOG_IDENTIFIER=duckdns"]).stdout
    return [line for line in journal.splitlines() if line.startswith("reachability: ")]


def status_row(c) -> str:
    out = c.exec(["duckdns", "status"]).stdout
    assert TOKEN not in out
    return dict(re.findall(r"^([^:]+):\s+(.*)$", out, re.M))["Reachability"]


def check_line(c) -> str:
    proc = c.exec(["duckdns", "check"], check=False)
    assert TOKEN not in proc.stdout + proc.stderr
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout.splitlines()[-1]


@pytest.mark.both_suites
def test_router_verdicts_against_miniupnpd(container, duckdns, deb):
    c, began = container, time.monotonic()
    rtr = Miniupnpd(c)
    duckdns.set_mode("ok", client_ip=PUBLIC)
    harness.preseed(c, domains="piserver", token=TOKEN, ipv6=False)
    proc = c.install_deb(deb)
    assert TOKEN not in proc.stdout + proc.stderr
    c.exec(["systemctl", "stop", "duckdns.timer"])  # its runs are started by hand here
    c.sh(f"printf 'probe = router\\n' >> {CONF}")  # an admin's edit: the router alone
    seen: list[str] = []  # the verdict lines in the journal so far

    # 1. Direct: the router's WAN address is the one DuckDNS sees. The first run updates
    #    DuckDNS (nothing confirmed yet); NAT-PMP answers the address.
    rtr.start(PUBLIC)
    service_run(c)
    service_run(c)
    assert [r["query"]["ip"] for r in duckdns.updates()] == [""], duckdns.updates()
    seen.append(f"{DIRECT} (router: {PUBLIC}; DuckDNS: {PUBLIC})")
    assert reach_lines(c) == seen
    assert status_row(c).startswith(f"{DIRECT[len('reachability: ') :]} (router: {PUBLIC}), since")
    assert check_line(c) == seen[-1]
    assert "NAT-PMP public address request" in rtr.log()

    # 2. Carrier-grade NAT: miniupnpd answers NAT-PMP "network failure" (its WAN address is
    #    reserved) and PCP's deletion NO_RESOURCES with its WAN address: the probe cannot
    #    decide (and, the router alone, nothing else can: DuckDNS is asked at most every
    #    5 minutes, so nothing is sent now), the verdict names carrier-grade NAT.
    rtr.start(CGNAT)
    service_run(c)
    service_run(c)
    lines = reach_lines(c)
    assert lines[:-1] == seen and len(lines) == len(seen) + 1, lines
    assert lines[-1].startswith(f"{CARRIER} (router: {CGNAT}; DuckDNS: {PUBLIC}); what to do: ")
    seen = lines
    assert status_row(c).startswith(f"{CARRIER[len('reachability: ') :]} (router: {CGNAT})")
    assert check_line(c) == seen[-1]

    # 3. Double NAT: a private WAN address, a router in front of ours.
    rtr.start(PRIVATE)
    service_run(c)
    service_run(c)
    lines = reach_lines(c)
    assert lines[:-1] == seen and len(lines) == len(seen) + 1, lines
    assert lines[-1].startswith(f"{DOUBLE} (router: {PRIVATE}; DuckDNS: {PUBLIC}); what to do: ")
    seen = lines
    assert status_row(c).startswith(f"{DOUBLE[len('reachability: ') :]} (router: {PRIVATE})")
    assert check_line(c) == seen[-1]

    # 4. NAT-PMP/PCP off, UPnP IGD on, a global WAN address again: the timer's runs (UDP to
    #    port 5351 only) get no answer, "unknown"; `duckdns check` finds the router over
    #    SSDP and asks GetExternalIPAddress: direct.
    rtr.start(PUBLIC, natpmp=False)
    service_run(c)
    service_run(c)
    lines = reach_lines(c)
    assert lines[:-1] == seen and len(lines) == len(seen) + 1, lines
    assert lines[-1].startswith(f"{UNKNOWN} (cannot ask {LAN_ROUTER}:5351: "), lines[-1]
    assert status_row(c).startswith(UNKNOWN[len("reachability: ") :])
    assert check_line(c) == f"{DIRECT} (router: {PUBLIC}; DuckDNS: {PUBLIC})"
    assert "#GetExternalIPAddress" in rtr.log()

    # DuckDNS was asked once in all: the probe said nothing new, then could not decide.
    assert len(duckdns.updates()) == 1
    assert harness.token_leaks(c, TOKEN) == []
    harness.log(f"[router] {c.name}: the scenario took {time.monotonic() - began:.1f} s")
