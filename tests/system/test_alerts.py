"""Alerts, booted: a day-long outage as systemd, the journal and the admin's mail see it.

The package installed (preseeded), the README's alert-mail recipe set up word for word
(script, unit, drop-in with OnFailure= and OnSuccess=), with a stand-in ``mail`` that
appends each mail to a file. The outage: the test DuckDNS server answers HTTP 503 for 26
simulated hours, then OK again.

Simulated time: the service runs under libfaketime (copied from the host, which runs the
same Debian release, to /usr/local/lib; a drop-in sets LD_PRELOAD and
FAKETIME_TIMESTAMP_FILE, a file this test rewrites before each run). Each run is started
with ``systemctl start duckdns.service`` (what the timer does, but one run per step, so
each sees the time written for it): each minute of the first quarter hour, then every 15
minutes, where every attempt of the backoff falls (1, 2, 4, 8, then 15 minutes apart).
Nothing leaves the container: the server and everything else is on its loopback.
"""

from __future__ import annotations

import glob
import re
import shutil
import time
from pathlib import Path

import harness
from harness import TEST_DIR_IN_CONTAINER
from support.helpers import CANARY as TOKEN
from support.helpers import skip_or_fail

# The simulated outage's first minute: the next full hour but one. The simulated day must
# lie within the test server's certificate (valid from an hour before the test, 30 days).
START = (int(time.time()) // 3600 + 2) * 3600
README = harness.REPO / "docs" / "monitoring.md"  # the recipe's page (the README links to it)
LIBFAKETIME = "/usr/local/lib/duckdns-test/libfaketime.so.1"


def readme_block(lang: str, needle: str) -> str:
    blocks = re.findall(rf"^```{lang}\n(.*?)^```", README.read_text(), re.M | re.S)
    return next(b for b in blocks if needle in b)


MAIL_STANDIN = """#!/bin/sh
# Stand-in for mail(1): append the mail (subject, recipient, body) to a file.
subject=$2; shift 2
{ printf 'To: %s\\nSubject: %s\\n\\n' "$*" "$subject"; cat; printf '\\n.\\n'; } \\
    >> /var/tmp/mails
"""


def faketime_library() -> Path | None:
    found = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))
    return Path(found[0]) if found else None


class Clock:
    """The simulated time the service sees, in a file libfaketime reads at each start."""

    def __init__(self, c: harness.Container) -> None:
        self.c = c
        self.file = c.hostdir / "faketime"
        lib = faketime_library()
        if lib is None:
            skip_or_fail("libfaketime is not installed on the host (Debian: faketime)")
        # Under /usr: the unit's NoExecPaths=/ with ExecPaths=/usr lets nothing else be mapped
        # executable, a preloaded library included.
        inside = c.root / LIBFAKETIME.lstrip("/")
        inside.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(lib, inside)
        self.set(START)
        c.write(
            "/etc/systemd/system/duckdns.service.d/test-faketime.conf",
            # Runs come faster than the timer's (one every second or so): no start limit.
            "[Unit]\nStartLimitIntervalSec=0\n"
            "[Service]\n"
            f"Environment=LD_PRELOAD={LIBFAKETIME}\n"
            f"Environment=FAKETIME_TIMESTAMP_FILE={TEST_DIR_IN_CONTAINER}/faketime\n"
            "Environment=FAKETIME_NO_CACHE=1\n",
        )

    def set(self, when: int) -> None:
        self.now = when
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(when))
        tmp = self.file.with_suffix(".tmp")
        tmp.write_text(f"@{stamp}\n")
        tmp.replace(self.file)


def mails(c) -> list[str]:
    path = c.root / "var/tmp/mails"
    if not path.exists():
        return []
    return [m for m in path.read_text().split("\n.\n") if m.strip()]


def subjects(c) -> list[str]:
    return [re.search(r"^Subject: (.*)$", m, re.M).group(1) for m in mails(c)]


def run_at(c, clock: Clock, when: int) -> str:
    """One run of duckdns.service at simulated time ``when``; its result."""
    clock.set(when)
    c.exec(["systemctl", "start", "duckdns.service"], check=False, timeout=120)
    return c.unit_property("duckdns.service", "Result")


def wait_mail_unit(c) -> None:
    c.wait_for(
        lambda: (
            c.unit_property("duckdns-alert-mail.service", "ActiveState")
            not in ("activating", "active")
        ),
        30,
        what="the alert mail unit to finish",
    )


def errors_in_journal(c) -> list[str]:
    out = c.exec(["journalctl", "--no-pager", "-o", "cat", "-p", "err", "-u", "duckdns"]).stdout
    return [line for line in out.splitlines() if line.strip()]


def test_a_day_long_outage_mails_once_when_it_starts_and_once_when_it_ends(container, duckdns, deb):
    c = container
    duckdns.set_mode("ok")
    harness.preseed(c, domains="piserver", token=TOKEN)
    c.install_deb(deb)
    c.exec(["systemctl", "stop", "duckdns.timer"])  # the test starts every run itself
    c.exec(["systemctl", "disable", "duckdns.timer"])
    # The README's recipe, word for word, and the stand-in mail.
    c.write("/usr/local/sbin/duckdns-alert-mail", readme_block("sh", "--alert"), mode=0o755)
    c.write(
        "/etc/systemd/system/duckdns-alert-mail.service",
        readme_block("ini", "ExecStart=/usr/local/sbin/duckdns-alert-mail"),
    )
    c.write(
        "/etc/systemd/system/duckdns.service.d/alert-mail.conf",
        readme_block("ini", "OnSuccess=duckdns-alert-mail.service"),
    )
    c.write("/usr/local/bin/mail", MAIL_STANDIN, mode=0o755)
    # The runs here come faster than the timer's (every second or so): no start limit.
    c.write(
        "/etc/systemd/system/duckdns-alert-mail.service.d/test-no-start-limit.conf",
        "[Unit]\nStartLimitIntervalSec=0\n",
    )
    clock = Clock(c)
    c.exec(["systemctl", "daemon-reload"])

    # Healthy: the first update, then steady state; no mail.
    assert run_at(c, clock, START - 600) == "success"
    wait_mail_unit(c)
    assert len(duckdns.updates()) == 1 and mails(c) == []

    # 26 hours of HTTP 503.
    duckdns.set_mode("status:503")
    # Simulated minutes: each of the first quarter hour, then every 15 minutes (where
    # every attempt of a capped backoff falls).
    steps = list(range(0, 15)) + list(range(15, 26 * 60, 15))
    results = []
    failed_seen = set()
    for minute in steps:
        results.append(run_at(c, clock, START + 60 * minute))
        wait_mail_unit(c)
        failed = c.exec(["systemctl", "--failed", "--no-legend", "--plain"]).stdout
        failed_seen.add("duckdns.service" in failed)
    outage_requests = len(duckdns.updates()) - 1
    assert set(results) <= {"success", "exit-code"}, results
    status = c.exec(["duckdns", "status"]).stdout
    assert "Failing since:" in status and "Next attempt:" in status, status

    # DuckDNS is back: the first attempt after it, at most 15 minutes later, works.
    duckdns.set_mode("ok")
    back = START + 60 * 26 * 60
    for minute in range(0, 20, 5):
        results.append(run_at(c, clock, back + 60 * minute))
        wait_mail_unit(c)
        if len(duckdns.updates()) - 1 > outage_requests:
            break
    assert minute <= 15, "no update within 15 minutes of DuckDNS being back"
    assert re.search(r"^Failing since: +-$", c.exec(["duckdns", "status"]).stdout, re.M)

    # What the admin got: one mail when it started, one reminder (it lasted > 1 day) and
    # one when it ended.
    assert [s.split(": ", 1)[1] for s in subjects(c)] == ["down", "reminder", "up"], mails(c)
    print("\n\n".join(mails(c)))
    assert re.search(r"updates work again after 1 d 2 h, \d+ failed attempts", mails(c)[2])
    # What the journal holds at err: the updater's first error and hourly reminders, and
    # systemd's "Failed to start" once per failed attempt (not once per run).
    errors = errors_in_journal(c)
    ours = [e for e in errors if "HTTP 503" in e]
    systemd_lines = [e for e in errors if e.startswith("Failed to start")]
    attempts = results.count("exit-code")
    assert len(ours) <= 27, ours  # the first error and at most one an hour
    assert len(systemd_lines) == attempts
    assert attempts <= 110 and outage_requests <= 150, (attempts, outage_requests)
    assert failed_seen == {True, False}, "listed as failed after a failed attempt only"
    print(
        f"\noutage of 26 h: {len(steps)} runs, {attempts} failed attempts, "
        f"{outage_requests} requests, journal -p err: {len(ours)} updater lines, "
        f"{len(systemd_lines)} systemd lines; mails: {subjects(c)}"
    )
    assert harness.token_leaks(c, TOKEN) == []
