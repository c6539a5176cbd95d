"""Booted: a dual-stack host through the timer, as a new user sets it up.

"Yes" to the IPv6 question (preseeded), a global IPv6 address on a dummy interface inside the
container's private network (a veth pair with both ends inside where the kernel has no dummy
driver), and the test DuckDNS server's autodetected "public" IPv4 address
(its ``client_ip``) playing the router's. A "what is my address" DNS server inside answers the
probe as Cloudflare would (``probe = cloudflare@127.0.0.1:5353``, an admin's edit, kept by
dpkg-reconfigure). The timer runs every 3 s (a drop-in, as an admin could add).

The IPv6 addresses come from 2d00::/8, global unicast space IANA has not allocated to anyone:
the updater rightly refuses 2001:db8::/32 (documentation, not global) for ``ipv6 = auto``.
Nothing leaves the container: its only links are loopback and that one, which leads nowhere.
"""

from __future__ import annotations

import contextlib
import re
import shutil

import harness
from harness import CONF, TEST_DIR_IN_CONTAINER, TESTS
from support.helpers import CANARY as TOKEN

PUBLIC = "203.0.113.7"
NEW_PUBLIC = "198.51.100.20"
ADDR1 = "2d00:10:20:30::7"
ADDR2 = "2d00:10:20:31::7"
PROBE_PORT = 5353
FAST_TIMER = "[Timer]\nOnActiveSec=1s\nOnUnitActiveSec=3s\nAccuracySec=1s\nRandomizedDelaySec=0\n"


class Whoami:
    """tests/support/dnsserver.py inside, answering whoami.cloudflare (CH TXT) with one address."""

    def __init__(self, c: harness.Container) -> None:
        self.c, self.n = c, 0
        shutil.copy2(TESTS / "support" / "dnsserver.py", c.hostdir / "dnsserver.py")

    def answer(self, address: str) -> None:
        if self.n:
            self.c.exec(["systemctl", "stop", self.unit], check=False)
        self.n += 1
        self.unit = f"duckdns-test-whoami-{self.n}.service"
        log = self.c.hostdir / f"{self.unit}.log"
        self.c.serve(
            self.unit,
            [
                "python3",
                f"{TEST_DIR_IN_CONTAINER}/dnsserver.py",
                "--port",
                str(PROBE_PORT),
                "--record",
                f"whoami.cloudflare:CH:TXT:{address}",
            ],
            lambda: log.exists() and "listening on" in log.read_text(),
            f"the whoami server answering {address}",
        )


@contextlib.contextmanager
def timer_paused(c):
    """No timer run while the world changes (a run in between would see half of it)."""
    c.exec(["systemctl", "stop", "duckdns.timer"])
    c.wait_for(
        lambda: c.unit_property("duckdns.service", "ActiveState") != "activating",
        30,
        what="the running update to finish",
    )
    yield
    c.exec(["systemctl", "start", "duckdns.timer"])


def params(requests: list[dict]) -> list[dict]:
    return [{k: v for k, v in r["query"].items() if k in ("ip", "ipv6")} for r in requests]


def status(c) -> dict[str, str]:
    out = c.exec(["duckdns", "status"]).stdout
    assert TOKEN not in out
    return dict(re.findall(r"^([^:]+):\s+(.*)$", out, re.M))


def test_dual_stack_through_the_timer(container, duckdns, deb):
    c = container
    duckdns.set_mode("ok", client_ip=PUBLIC)
    whoami = Whoami(c)
    whoami.answer(PUBLIC)
    # A dummy interface; kernels built without the dummy driver (this machine's) get a veth
    # pair with both ends inside instead: either way a link that leads nowhere.
    c.sh(
        "{ ip link add dd0 type dummy 2>/dev/null || "
        "{ ip link add dd0 type veth peer name dd0p && ip link set dd0p up; }; } && "
        f"ip link set dd0 up && ip -6 addr add {ADDR1}/64 dev dd0 nodad"
    )

    harness.preseed(c, domains="piserver", token=TOKEN, ipv6=True)
    proc = c.install_deb(deb)
    assert TOKEN not in proc.stdout + proc.stderr
    c.exec(["systemctl", "stop", "duckdns.timer"])  # before its first run (30 s after install)
    assert duckdns.updates() == []
    assert re.search(r"^ipv6 = auto$", (c.root / CONF.lstrip("/")).read_text(), re.M)
    # The admin points the probe at the local whoami server (appending keeps mode and owner).
    c.sh(f"printf 'probe = cloudflare@127.0.0.1:{PROBE_PORT}\\n' >> {CONF}")
    assert c.exec(["duckdns", "check"]).returncode == 0
    c.write("/etc/systemd/system/duckdns.timer.d/test-fast.conf", FAST_TIMER)
    c.exec(["systemctl", "daemon-reload"])
    c.exec(["systemctl", "start", "duckdns.timer"])

    # 1. Both records set: A from the connection, then AAAA with ip= empty (A left alone).
    duckdns.wait_requests(2, 60)
    # The server has the requests before the run has recorded them: status after the run.
    quiet(c, duckdns, runs=2)
    assert params(duckdns.updates()) == [{"ip": ""}, {"ip": "", "ipv6": ADDR1}]
    s = status(c)
    assert (s["IPv4 at DuckDNS"], s["IPv6 at DuckDNS"]) == (PUBLIC, ADDR1), s
    assert s["Address probe"] == f"working (last answer {PUBLIC})", s

    # 2. The public IPv4 address changes (DuckDNS sees another address, the probe says so):
    #    A follows, with one request, and AAAA stays.
    with timer_paused(c):
        duckdns.set_mode("ok", client_ip=NEW_PUBLIC)
        whoami.answer(NEW_PUBLIC)
    duckdns.wait_requests(3, 60)
    quiet(c, duckdns, runs=2)
    assert params(duckdns.updates()[2:]) == [{"ip": ""}]
    s = status(c)
    assert (s["IPv4 at DuckDNS"], s["IPv6 at DuckDNS"]) == (NEW_PUBLIC, ADDR1), s

    # 3. The host's IPv6 address changes: AAAA follows, with one request, and A stays.
    with timer_paused(c):
        c.sh(f"ip -6 addr del {ADDR1}/64 dev dd0 && ip -6 addr add {ADDR2}/64 dev dd0 nodad")
    duckdns.wait_requests(4, 60)
    quiet(c, duckdns, runs=2)
    assert params(duckdns.updates()[3:]) == [{"ip": "", "ipv6": ADDR2}]
    s = status(c)
    assert (s["IPv4 at DuckDNS"], s["IPv6 at DuckDNS"]) == (NEW_PUBLIC, ADDR2), s

    # 4. Nothing changes: the timer keeps running and nothing reaches DuckDNS.
    quiet(c, duckdns, runs=4)
    assert len(duckdns.updates()) == 4

    journal = c.exec(["journalctl", "--no-pager", "-o", "cat", "SYSLOG_IDENTIFIER=duckdns"]).stdout
    changes = [line for line in journal.splitlines() if line.startswith("piserver: ")]
    assert changes == [
        f"piserver: IPv4 {PUBLIC}, IPv6 {ADDR1} (was -, -)",
        f"piserver: IPv4 {NEW_PUBLIC}, IPv6 {ADDR1} (was {PUBLIC}, {ADDR1})",
        f"piserver: IPv4 {NEW_PUBLIC}, IPv6 {ADDR2} (was {NEW_PUBLIC}, {ADDR1})",
    ], journal
    assert "address probe" not in journal, journal
    assert harness.token_leaks(c, TOKEN) == []


def quiet(c, duckdns, runs: int) -> None:
    """Wait for ``runs`` more timer runs that each succeed and send nothing."""
    seen = len(duckdns.updates())
    for _ in range(runs):
        done = harness.service_finished_count(c)
        result = harness.wait_service_run(c, after=done, timeout=60)
        assert result["Result"] == "success", result
    assert len(duckdns.updates()) == seen, params(duckdns.updates()[seen:])
