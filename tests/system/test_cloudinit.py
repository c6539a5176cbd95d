"""Flash and forget: a card set up at first boot by Debian's own cloud-init from the
user-data docs/fleet.md documents (its ``#cloud-config`` blocks and its shell lines are
read from the page, so a change to the docs that breaks them fails here).

* ``cloud-init schema`` of every documented block, in a chroot of each release's
  cloud-init root.
* A booted container of that root (Debian 13: cloud-init 25.1, seeded from
  /boot/firmware as Raspberry Pi OS 13 is; Debian 12: cloud-init 22.4, seeded from
  /var/lib/cloud/seed/nocloud) holding exactly the documented user-data with the
  per-card values stamped in, the signed repository (scripts/make-repo) served on its
  loopback and the DuckDNS look-alike up at boot: nobody logs in; the first update
  reaches the look-alike within a minute of boot, on the shipped timer's schedule (the
  time is logged).
  Then every file holding the token is listed with its mode, and each must be
  root-only or in docs/fleet.md's table. A second boot installs and preseeds nothing
  again. The single Pi's variant (the .deb on the boot partition), on Debian 13.
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
import threading
import time
import types
from pathlib import Path

import harness
import pytest
from harness import CONF, REPO
from roots import host_arch
from support.helpers import CANARY as TOKEN
from support.helpers import make_signing_key, run
from test_fleet import REPO_IN_CONTAINER, Repo, deb_version, installed_version

FLEET_DOC = REPO / "docs/fleet.md"
SUITE = "trixie"  # Raspberry Pi OS 13's base, the main target
NAME = "kitchen"  # the card's per-card value
REPO_URL = "http://127.0.0.1:8080/"
# Where each release's card keeps its seed: Raspberry Pi OS 13's layout on Debian 13
# (the boot partition, read through NoCloud's seedfrom: RPI_OS_CLOUD_CFG), cloud-init's
# own NoCloud seed directory on Debian 12, as Debian's images and image builders use it.
SEEDS = {"trixie": "/boot/firmware", "bookworm": "/var/lib/cloud/seed/nocloud"}
# Raspberry Pi OS's cloud-init configuration (pi-gen, stage2/04-cloud-init,
# files/99_raspberry-pi.cfg): NoCloud, seeded from the boot partition.
RPI_OS_CLOUD_CFG = """\
datasource_list: [ NoCloud, None ]
datasource:
  NoCloud:
    seedfrom: file:///boot/firmware
"""
INSTANCE_ID = "iid-duckdns-card-kitchen"
# The first update reaches DuckDNS within a minute of boot, whatever the shipped timer's
# random delay: its latest first run (OnBootSec= + RandomizedDelaySec= + AccuracySec=,
# systemd.timer(5); read from the installed unit) leaves RUN_BUDGET s for the run itself
# (the look-alike answers at once), then the bound is held from the container's start.
# The package starts the timer a few seconds into the boot, before OnBootSec= is due;
# its OnActiveSec= run, if later, is a steady one (no request).
FIRST_UPDATE_BOUND = 60
RUN_BUDGET = 10


def seconds(timespan: str) -> float:
    """systemctl's time span ("1min", "1min 30s", "45s", "100ms") in seconds."""
    units = {"min": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+)(min|ms|s)\b", timespan)
    assert parts, f"unexpected time span {timespan!r}"
    return sum(int(n) * units[u] for n, u in parts)


def latest_first_run(c) -> float:
    """Seconds after boot by which the shipped timer has started its first run."""
    unit = c.read("/lib/systemd/system/duckdns.timer")
    on_boot = re.search(r"^OnBootSec=(\S+)$", unit, re.M)
    assert on_boot, "duckdns.timer has no OnBootSec="
    delays = (
        c.unit_property("duckdns.timer", "RandomizedDelayUSec"),
        c.unit_property("duckdns.timer", "AccuracyUSec"),
    )
    return int(on_boot[1]) + sum(seconds(d) for d in delays)


def schedule_so_far(c) -> str:
    """When, after systemd started, the package started the timer and the timer started
    each run (PID 1's journal, monotonic clock), for the log."""
    userspace = int(c.exec(["systemctl", "show", "-P", "UserspaceTimestampMonotonic"]).stdout)
    timer = int(c.unit_property("duckdns.timer", "ActiveEnterTimestampMonotonic"))
    journal = c.exec(
        ["journalctl", "--no-pager", "-o", "short-monotonic", "_PID=1", "-u", "duckdns.service"]
    ).stdout
    runs = re.findall(r"^\[\s*(\d+\.\d+)\] \S+ \S+: Starting duckdns\.service", journal, re.M)
    starts = ", ".join(f"{float(r) - userspace / 1e6:.1f}" for r in runs)
    return f"timer started at {(timer - userspace) / 1e6:.1f}s, runs started at {starts}s"


def documented_user_data() -> list[str]:
    """The ``#cloud-config`` blocks of docs/fleet.md, in order (the repository one first)."""
    blocks = re.findall(r"^```yaml\n(#cloud-config\n.*?)^```$", FLEET_DOC.read_text(), re.M | re.S)
    assert len(blocks) == 2, "docs/fleet.md: expected the fleet's and the single Pi's user-data"
    return blocks


def documented_commands() -> tuple[str, str]:
    """docs/fleet.md's shell lines: the fleet's values filled in once, a card's stamp."""
    text = FLEET_DOC.read_text()
    blocks = re.findall(r"^```sh\n(.*?)^```$", text, re.M | re.S)
    fleet = next(b for b in blocks if "@KEY@" in b)
    card = next(b for b in blocks if "@NAME@" in b)
    return fleet, card


def stamp(template: str, key_asc: str, name: str = NAME) -> str:
    """The user-data as docs/fleet.md has one make it: its own shell lines run (the key
    and the repository's URL, this test's, filled in once; the token put in by hand,
    here in Python; then the card's name stamped in)."""
    fleet, card = documented_commands()
    example_url = re.search(r"@REPO_URL@\|([^|]+)\|", fleet)[1]
    fleet = fleet.replace(example_url, REPO_URL)
    card = re.sub(r"> \S+/bootfs/user-data", "> user-data", card)
    assert "> user-data" in card, card
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "dist/repo").mkdir(parents=True)
        (work / "dist/repo/duckdns-archive-keyring.asc").write_text(key_asc)
        (work / "user-data.in").write_text(template)
        run(["sh", "-e", "-c", fleet], cwd=work)
        template_in = (work / "user-data.in").read_text().replace("@TOKEN@", TOKEN)
        (work / "user-data.in").write_text(template_in)
        run(["sh", "-e", "-c", card.replace("kitchen", name)], cwd=work)
        stamped = (work / "user-data").read_text()
    assert "@" not in re.sub(r"-----.*?-----", "", stamped), "a placeholder left unstamped"
    return stamped


# -- cloud-init schema ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def key_asc(tmp_path_factory) -> tuple[Path, str]:
    """A throw-away signing key: (secret key file, public key armoured)."""
    home = tmp_path_factory.mktemp("cloudinit-key")
    secret = make_signing_key(home / "gpg", "duckdns-cloudinit-test")
    public = run(
        ["gpg", "--batch", "--armor", "--export"],
        env={**os.environ, "GNUPGHOME": str(home / "gpg")},
    ).stdout
    run(
        ["gpgconf", "--kill", "all"],
        env={**os.environ, "GNUPGHOME": str(home / "gpg")},
        check=False,
    )
    return secret, public


@pytest.mark.parametrize("suite", harness.SUITES)
def test_documented_user_data_passes_cloud_init_schema(system_env, key_asc, suite):
    """Both documented blocks, stamped, pass the release's `cloud-init schema`; the token
    sits only in debconf_selections (no runcmd, bootcmd or write_files carries it); and
    a broken key is refused (so the check can fail)."""
    blocks = [stamp(block, key_asc[1]) for block in documented_user_data()]
    broken = blocks[0].replace("debconf_selections:", "debconf_selection:")
    with harness.Chroot(host_arch(), kind="cloudinit", suite=suite) as root:
        for i, text in enumerate([*blocks, broken]):
            (root.root / f"tmp/user-data-{i}").write_text(text)
        for i in range(len(blocks)):
            proc = root.exec(["cloud-init", "schema", "-c", f"/tmp/user-data-{i}"], check=False)
            out = proc.stdout + proc.stderr
            # "Valid schema user-data" (25.1), "Valid cloud-config: FILE" (22.4)
            valid = re.search(r"^Valid (schema|cloud-config)", out, re.M)
            assert proc.returncode == 0 and valid, f"block {i}:\n{out}"
        proc = root.exec(
            ["cloud-init", "schema", "-c", f"/tmp/user-data-{len(blocks)}"], check=False
        )
        assert proc.returncode != 0 and "debconf_selection" in proc.stdout + proc.stderr
    import yaml  # noqa: PLC0415 - python3-yaml, only here

    for text in blocks:
        cfg = yaml.safe_load(text)
        assert TOKEN in cfg["apt"]["debconf_selections"]["duckdns"]
        rest = {k: v for k, v in cfg.items() if k != "apt"}
        rest["apt"] = {k: v for k, v in cfg["apt"].items() if k != "debconf_selections"}
        assert TOKEN not in repr(rest), "the token outside debconf_selections"
    assert yaml.safe_load(blocks[0])["packages"] == ["duckdns"]


# -- the booted card -----------------------------------------------------------------------


class ArgvWatch:
    """Samples the command line and environment of every process of the container
    (its PID namespace: other test sessions on the machine grep for the same canary)
    every 50 ms, for the token. A sample, not a record: cloud-init's own log, which
    names every command it runs, is the record."""

    def __init__(self, c: harness.Container) -> None:
        self.c = c
        self.hits: list[str] = []
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._needle = TOKEN.encode()

    def _scan(self, ns: str) -> None:
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                if os.readlink(f"/proc/{pid}/ns/pid") != ns:
                    continue
                for what in ("cmdline", "environ"):
                    with open(f"/proc/{pid}/{what}", "rb") as f:
                        data = f.read()
                    if self._needle in data:
                        program = data.split(b"\0", 1)[0]
                        self.hits.append(f"{what} of {program!r}")
            except OSError:
                continue  # gone meanwhile
        self.samples += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            if self.c.pid is not None and self.c.running:
                try:
                    ns = os.readlink(f"/proc/{self.c.pid}/ns/pid")
                except OSError:
                    ns = None
                if ns is not None:
                    self._scan(ns)
            self._stop.wait(0.05)

    def __enter__(self) -> ArgvWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def documented_readable() -> set[str]:
    """The files docs/fleet.md's table says others can read (a path per row)."""
    text = FLEET_DOC.read_text().split("## What cloud-init leaves behind", 1)[1]
    rows = [line.split("|")[1:3] for line in text.splitlines() if line.startswith("| ")]
    return {p for file, who in rows if "every user" in who for p in re.findall(r"`(/[^`]+)`", file)}


def documented(text_path: str) -> bool:
    table = FLEET_DOC.read_text().split("## What cloud-init leaves behind", 1)[1]
    generic = text_path.replace(INSTANCE_ID, "<instance-id>")
    return f"`{generic}`" in table


def stat_inside(c: harness.Container, path: str) -> list[tuple[str, int, int, int]]:
    """(path, mode, uid, gid) of ``path`` and of each directory above it, as seen inside
    the running container (its /run included)."""
    chain = [path]
    while chain[-1] != "/":
        chain.append(os.path.dirname(chain[-1]))
    out = c.exec(["stat", "-c", "%n %f %u %g", *chain]).stdout.split()
    return [(n, int(m, 16), int(u), int(g)) for n, m, u, g in zip(*[iter(out)] * 4, strict=True)]


def token_files(c: harness.Container) -> dict[str, str]:
    """Every place the token is (harness.token_leaks, the package's own file included),
    each with its mode and owner as ``ls -n`` shows them (journalctl: as it is)."""
    found = {}
    for path in harness.token_leaks(c, TOKEN, allowed=()):
        if path.startswith("/"):
            _, mode, uid, gid = stat_inside(c, path)[0]
            found[path] = f"{stat.filemode(mode)} {uid}:{gid}"
        else:
            found[path] = ""
    return found


def others_can_read(c: harness.Container, path: str) -> bool:
    """Whether a user other than root can read ``path``: a group other than root's with
    read access (adm, say, whose members include a Pi's first user), or read access for
    others with every directory on the way searchable (as duckdns.seed asks)."""
    (_, mode, _, gid), *parents = stat_inside(c, path)
    if mode & stat.S_IRGRP and gid != 0:
        return True
    return bool(mode & stat.S_IROTH) and all(m & stat.S_IXOTH for _, m, _, _ in parents)


# The one warning cloud-init gives here that a card would not: the test root has no
# OpenSSH (cloud-init's ssh module cannot make host keys).
NOT_A_CARD = re.compile(r"Failed generating key type \w+ to file /etc/ssh/")


def root_only_or_documented(c: harness.Container, found: dict[str, str]) -> None:
    """Each place holding the token is in docs/fleet.md's table, and none that others
    can read is missing a row saying so."""
    readable = {p for p in found if p.startswith("/") and others_can_read(c, p)}
    assert readable <= documented_readable(), (readable, found)
    undocumented = [p for p in found if not documented(p)]
    assert not undocumented, f"holds the token, not in docs/fleet.md: {undocumented} ({found})"


def cloud_init_done(c: harness.Container) -> str:
    """Waits for cloud-init to finish; its status says done, with no error and no
    warning but NOT_A_CARD's (exit 2 is "recoverable errors" in 25.1)."""
    proc = c.exec(["cloud-init", "status", "--wait", "--long"], check=False, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode in (0, 2) and re.search(r"^status: done", out, re.M), out
    # 25.1 lists errors (none here) and warnings; 22.4 says "status: error" on an error
    assert not re.search(r"^errors:", out, re.M) or re.search(r"^errors: \[\]", out, re.M), out
    warnings = re.findall(r"^\t- (.*)$", out, re.M)
    assert all(NOT_A_CARD.search(w) for w in warnings), out
    return out


@pytest.fixture
def card(system_env, deb, key_asc, request):
    """A fresh copy of the cloud-init root of a release (the test's parameter), not
    booted yet, with the repository in it and the DuckDNS look-alike and the
    repository's server enabled at boot."""
    suite = request.param
    tarball = harness.base_tarball("cloudinit", suite=suite)
    c = harness.Container(name=f"dd-cloudinit-{suite}", tarball=tarball)
    try:
        c.prepare()
        # The container reaches nothing outside: only the duckdns repository is a source.
        for path in ("etc/apt/sources.list", "etc/apt/sources.list.d/debian.sources"):
            (c.root / path).unlink(missing_ok=True)
        if suite == "bookworm":
            # As Debian 12's images have it: en_US.UTF-8 generated. Its cloud-init (22.4)
            # sets that locale with `locale-gen en_US.UTF-8`, which Debian's locale-gen
            # ignores (it reads /etc/locale.gen only), so on a bare root its locale
            # module fails (measured); Debian 13's cloud-init enables the line itself.
            locale_gen = c.root / "etc/locale.gen"
            locale_gen.write_text(locale_gen.read_text() + "en_US.UTF-8 UTF-8\n")
            run(["chroot", str(c.root), "locale-gen"])
        repo = Repo(c, key_asc[0], suite)
        repo.publish(deb)
        c.enable_at_boot(
            Repo.UNIT,
            ["python3", "-m", "http.server", "8080", "--bind", "127.0.0.1",
             "--directory", REPO_IN_CONTAINER],
            before=("cloud-config.service", "cloud-final.service"),
            ready=f"curl -fsS -o /dev/null {REPO_URL}dists/{suite}/InRelease",
        )  # fmt: skip
        server = harness.DuckDNS(c, token=TOKEN, domains=[NAME]).start_at_boot()
        # .container: the journal is attached to a failure's report
        yield types.SimpleNamespace(container=c, server=server, suite=suite, seed=SEEDS[suite])
    finally:
        c.close()


def write_seed(card, user_data: str) -> None:
    """The card's seed, readable by every user: pi-gen installs the boot partition's
    files 0755, and Raspberry Pi OS mounts that FAT partition with `defaults`, so every
    file shows 0755 (vfat's umask= defaults to the mounting process's, 022). A 0644
    seed directory on Debian 12, as an image builder writing it with umask 022 leaves it."""
    c, seed = card.container, card.seed
    if seed == "/boot/firmware":
        c.write("/etc/cloud/cloud.cfg.d/99_raspberry-pi.cfg", RPI_OS_CLOUD_CFG)
    mode = 0o755 if seed == "/boot/firmware" else 0o644
    c.write(f"{seed}/user-data", user_data, mode=mode)
    c.write(f"{seed}/meta-data", f"instance-id: {INSTANCE_ID}\n", mode=mode)


def first_boot(card, deb) -> None:
    """Boots the card with its seed in place; nobody logs in. The first update reaches
    DuckDNS in time, the package is configured and healthy, the token is on no command
    line, and every file holding it is root-only or documented."""
    c, server = card.container, card.server
    with ArgvWatch(c) as watch:
        start = time.monotonic()
        c.boot(timeout=300)
        server.wait_requests(1, max(1, FIRST_UPDATE_BOUND - (time.monotonic() - start)))
        first_update = time.monotonic() - start
        assert first_update <= FIRST_UPDATE_BOUND
        cloud_init_done(c)
        schedule = latest_first_run(c)
        assert schedule + RUN_BUDGET <= FIRST_UPDATE_BOUND, f"first run due by {schedule} s"
    version = c.exec(["cloud-init", "--version"]).stdout.strip()
    harness.log(
        f"[system] {version} ({card.suite}): first update {first_update:.1f}s after boot; "
        f"{schedule_so_far(c)}"
    )
    request = server.updates()[0]
    assert request["query"]["token"] == TOKEN and request["query"]["domains"] == NAME
    assert installed_version(c) == deb_version(deb)
    assert c.unit_property("duckdns.timer", "UnitFileState") == "enabled"
    result = harness.wait_service_run(c, after=0)
    assert result["Result"] == "success", result
    assert c.exec(["duckdns", "status"], check=False).returncode == 0
    assert c.read("/etc/hostname").strip() == NAME

    # Where the token is now, and who can read each.
    assert not watch.hits, f"the token on a command line or in an environment: {watch.hits}"
    assert watch.samples > 100
    found = token_files(c)
    harness.log(f"[system] {version} ({card.suite}): the token is in {found}")
    debconf = run(["grep", "-r", "-l", "-F", TOKEN, str(c.root / "var/cache/debconf")], check=False)
    assert not debconf.stdout, "the token left in the debconf database"
    assert "journalctl" not in found
    root_only_or_documented(c, found)
    seed = f"{card.seed}/user-data"
    assert seed in found and CONF in found
    # cloud-init logged the selections (cc_apt_configure's "handling apt config"); the
    # postinst masked the token there, in place.
    log = c.read("/var/log/cloud-init.log")
    assert f"duckdns/token password {'*' * len(TOKEN)}" in log
    assert log.count("handling apt config") == 1  # apt_configure ran once
    # check names the readable seed, and the documented command removes the token from it.
    check = c.exec(["duckdns", "check"], check=False)
    assert f"{seed} holds the DuckDNS token" in check.stderr, check.stderr
    assert TOKEN not in check.stdout + check.stderr
    c.exec(["sed", "-i", r"/duckdns\/token/d", seed])
    assert "holds the DuckDNS token" not in c.exec(["duckdns", "check"], check=False).stderr


@pytest.mark.parametrize("card", harness.SUITES, indirect=True)
def test_a_card_comes_up_updating_its_name_with_no_login(card, deb, key_asc):
    """The fleet's user-data (signed repository, debconf_selections, packages); then a
    second boot installs and preseeds nothing again."""
    c = card.container
    write_seed(card, stamp(documented_user_data()[0], key_asc[1]))
    first_boot(card, deb)

    c.poweroff()
    (c.hostdir / "server.ready").unlink(missing_ok=True)
    c.boot(timeout=300)
    cloud_init_done(c)
    log = c.read("/var/log/cloud-init.log")
    assert log.count("handling apt config") == 1  # apt_configure ran once
    installs = re.findall(r" install duckdns:all ", c.read("/var/log/dpkg.log"))
    assert len(installs) == 1, c.read("/var/log/dpkg.log")
    # The timer is back (its run is the shipped schedule's, proved on the first boot:
    # not waited for again, make test's time counts).
    assert c.unit_property("duckdns.timer", "ActiveState") == "active"
    after = token_files(c)
    harness.log(f"[system] cloud-init card: after the second boot, the token is in {after}")
    assert f"{card.seed}/user-data" not in after and "journalctl" not in after
    root_only_or_documented(c, after)


# Debian 13 only: what differs from the fleet's is cloud-init's package handling, and
# Debian 13's is the one that refuses a file name in packages: (docs/fleet.md).
@pytest.mark.parametrize("card", [SUITE], indirect=True)
def test_one_pi_with_the_deb_on_the_boot_partition(card, deb, key_asc):
    """The single Pi's user-data: the .deb copied to the boot partition, installed by
    runcmd (no secret on it), the answers through debconf_selections."""
    c = card.container
    c.copy_in(deb, f"/boot/firmware/{deb.name}")
    write_seed(card, stamp(documented_user_data()[1], key_asc[1]))
    first_boot(card, deb)
    assert "/boot/firmware/duckdns_" in c.read("/var/log/cloud-init-output.log")
