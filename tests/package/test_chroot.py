"""The maintainer scripts for real: dpkg in a throwaway Debian root (no systemd booted,
no network: every command runs under `unshare --net`).

The root is the system tests' cached bookworm tarball (tests/system/harness.py), freshly
extracted for each test. Booted-systemd scenarios (the timer firing, the dynamic user
chowning the state directory, unattended-upgrades) are the system tests' job.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from pkgtools import REPO
from support.helpers import CANARY, run, skip_or_fail

REPO_DEBIAN = REPO / "debian"

OTHER = "c0ffee00-dead-beef-0000-123456789abd"  # a valid token, not the canary
CONF = "var/lib/private/duckdns/duckdns.conf"
BACKUP_LIST = "etc/backup-paths.d/duckdns.list"
TIMER_LINK = "etc/systemd/system/timers.target.wants/duckdns.timer"
# Never compared: the package manager's and the kernel's own bookkeeping.
SNAPSHOT_SKIP = (
    "proc", "sys", "dev", "run", "tmp", "var/log", "var/cache/debconf",
    "var/lib/dpkg", "var/cache/ldconfig",
)  # fmt: skip


class Root:
    def __init__(self, path: Path, deb: Path):
        self.path = path
        self.deb = "/tmp/" + deb.name
        run(["cp", deb, path / "tmp"])

    def place(self, deb: Path, name: str) -> str:
        """Another .deb in the root's /tmp, under ``name``; its path inside."""
        run(["cp", deb, self.path / "tmp" / name])
        return "/tmp/" + name

    def __truediv__(self, rel: str) -> Path:
        return self.path / rel

    def sh(
        self,
        script: str,
        stdin: str | None = None,
        check: bool = True,
        host_net: bool = False,
        wrap: tuple[str, ...] = (),
        **env,
    ):
        """``script`` run in the root, with no network unless ``host_net`` (the host's,
        for a DuckDNS look-alike this test runs on its loopback)."""
        environ = {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": "/root",
            "LANG": "C.UTF-8",
            "DEBIAN_FRONTEND": "noninteractive",
            **env,
        }
        return run(
            [*wrap, *([] if host_net else ["unshare", "--net"]), "chroot", self.path]
            + ["/bin/sh", "-ec", script],
            check=check,
            input=stdin if stdin is not None else "",
            env=environ,
        )

    def preseed(self, **answers: tuple[str, str]) -> None:
        lines = "".join(f"duckdns duckdns/{k} {t} {v}\n" for k, (t, v) in answers.items())
        self.sh("debconf-set-selections", stdin=lines)

    def install(self, **env):
        return self.sh(f"dpkg -i {self.deb}", **env)

    def holders_of(self, needle: str) -> list[str]:
        """Every file in the root that contains needle."""
        proc = self.sh(
            f"grep -rlF -- '{needle}' / --exclude-dir=proc --exclude-dir=sys "
            "--exclude-dir=dev || true"
        )
        return sorted(proc.stdout.split())

    def snapshot(self) -> set[str]:
        paths = set()
        for dirpath, dirnames, filenames in os.walk(self.path):
            rel = os.path.relpath(dirpath, self.path)
            rel = "" if rel == "." else rel
            dirnames[:] = [
                d for d in dirnames if os.path.join(rel, d).lstrip("/") not in SNAPSHOT_SKIP
            ]
            for name in dirnames + filenames:
                paths.add(os.path.join(rel, name))
        return paths


@pytest.fixture
def root(built, system_harness, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root (chroot, unshare)")
    tarball = system_harness.base_tarball("rootfs")
    path = tmp_path / "root"
    system_harness.extract(tarball, path)
    # The booted base may hold an empty /var/lib/private (systemd made it); a fresh
    # machine has none, and then the package creates it and purge removes it.
    private = path / "var/lib/private"
    if private.is_dir() and not any(private.iterdir()):
        private.rmdir()
    assert not private.exists()
    yield Root(path, built.deb)
    run(["rm", "-rf", "--one-file-system", path], check=False)


def mode(p: Path) -> int:
    return stat.S_IMODE(p.lstat().st_mode)


def conf_keys(p: Path) -> dict[str, str]:
    keys = {}
    for line in p.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            k, _, v = line.partition("=")
            keys[k.strip()] = v.strip()
    return keys


def test_preseeded_install_writes_0600_config_and_forgets_the_token(root):
    before = root.snapshot()
    # Sloppy answers: spaces, upper case, the full host name.
    root.preseed(
        token=("password", f"  {CANARY.upper()}  "),
        domains=("string", "Home.duckdns.org, boat"),
        ipv6=("boolean", "true"),
    )
    root.install()

    conf = root / CONF
    assert mode(root / "var/lib/private") == 0o700
    assert mode(root / "var/lib/private/duckdns") == 0o700
    assert mode(conf) == 0o600 and conf.stat().st_uid == 0
    # The yes of older versions' "IPv6 too?" (still preseeded by fleets) is "IPv4 and IPv6".
    assert conf_keys(conf) == {
        "domains": "home,boat",
        "token": CANARY,
        "ipv4": "auto",
        "ipv6": "auto",
    }
    # The 0600 file is the only copy: not in debconf's databases, nor anywhere else.
    assert root.holders_of(CANARY) == ["/" + CONF]
    assert root.sh("debconf-show duckdns").returncode == 0

    listed = [ln for ln in (root / BACKUP_LIST).read_text().splitlines() if not ln.startswith("#")]
    assert listed == [
        "/" + CONF,
        "/" + TIMER_LINK,
        "/etc/systemd/system/duckdns.service.d",
        "/etc/systemd/system/duckdns.timer.d",
        "/etc/duckdns/changed.d",
    ]
    assert (root / "etc/duckdns/changed.d").is_dir()  # the hooks directory it lists
    assert mode(root / BACKUP_LIST) == 0o644
    assert os.readlink(root / TIMER_LINK).endswith("/systemd/system/duckdns.timer")
    assert not (root / "etc/systemd/system/timers.target.wants/duckdns.service").exists()

    root.sh("dpkg --remove duckdns")
    assert conf_keys(root / CONF)["token"] == CANARY, "remove must keep the configuration"
    root.sh("dpkg --purge duckdns")
    assert root.holders_of(CANARY) == []
    assert root.sh("debconf-show duckdns").stdout.strip() == ""
    assert root.snapshot() ^ before == set(), "purge left or removed something"


def test_reconfigure_keeps_token_on_empty_answer_and_the_directory_owner(root):
    root.preseed(token=("password", CANARY), domains=("string", "home"))
    root.install()
    state_dir = root / "var/lib/private/duckdns"
    # What systemd does on the first timer run: chown to the dynamic user.
    run(["chown", "-R", "61234:61234", state_dir])
    with open(root / CONF, "a") as f:
        f.write("# kept by the admin\nrefresh = 12h\n")

    # teletype frontend: subdomains, token (empty keeps it), what to publish (2: both).
    root.sh("dpkg-reconfigure duckdns", stdin="Other\n\n2\n", DEBIAN_FRONTEND="teletype")
    conf = root / CONF
    assert (conf.stat().st_uid, conf.stat().st_gid, mode(conf)) == (61234, 61234, 0o600)
    keys = conf_keys(conf)
    assert keys == {
        "domains": "other",
        "token": CANARY,
        "ipv6": "auto",
        "refresh": "12h",
        "ipv4": "auto",
    }
    assert "# kept by the admin" in conf.read_text()

    # A bad answer is refused with the error note and asked again.
    out = root.sh(
        "dpkg-reconfigure duckdns",
        stdin=f"\nnot-a-token\n{OTHER}\n1\n",
        DEBIAN_FRONTEND="teletype",
    ).stdout
    assert "Invalid DuckDNS token" in out
    assert conf_keys(conf)["token"] == OTHER and conf_keys(conf)["ipv6"] == "off"
    assert root.holders_of(OTHER) == ["/" + CONF]
    assert [p for p in os.listdir(state_dir) if p.startswith(".duckdns.conf.")] == []


def test_upgrade_asks_nothing_and_keeps_the_config(root):
    root.preseed(token=("password", CANARY), domains=("string", "home"))
    root.install()
    before = (root / CONF).read_bytes()
    root.sh("deb-systemd-helper disable duckdns.timer", DPKG_MAINTSCRIPT_PACKAGE="duckdns")
    assert not (root / TIMER_LINK).exists()
    root.preseed(token=("password", OTHER))
    # Same version again is an upgrade for the maintainer scripts ("configure <old>").
    # teletype with no input would hang or fail on any question.
    proc = root.install(DEBIAN_FRONTEND="teletype")
    assert "DuckDNS" not in proc.stdout, proc.stdout
    assert (root / CONF).read_bytes() == before
    assert not (root / TIMER_LINK).exists(), "an admin's disabled timer must stay disabled"
    assert root.holders_of(OTHER) == []


def test_unanswered_install_is_installed_and_unconfigured(root):
    before = root.snapshot()
    proc = root.install()
    assert "dpkg-reconfigure duckdns" in proc.stderr
    assert not (root / CONF).exists()
    status = root.sh("dpkg-query -W -f '${Status}' duckdns").stdout
    assert status == "install ok installed"
    root.sh("dpkg --purge duckdns")
    assert root.snapshot() ^ before == set()


def test_invalid_preseed_neither_loops_nor_writes(root):
    root.preseed(token=("password", "not-a-token"), domains=("string", "home"))
    proc = root.install()
    assert "dpkg-reconfigure duckdns" in proc.stderr
    assert not (root / CONF).exists()
    assert root.holders_of("not-a-token") == []


def place_recipe_config(root) -> str:
    """The hand-made recipe's curl config, 0600 in the state directory, as before migration."""
    private = root / "var/lib/private"
    private.mkdir(mode=0o700)
    (private / "duckdns").mkdir(mode=0o700)
    recipe = f'url = "https://www.duckdns.org/update?domains=old&token={CANARY}&ip="\n'
    (root / CONF).write_text(recipe)
    os.chmod(root / CONF, 0o600)
    return recipe


def test_recipe_config_and_hand_made_units_are_kept(root):
    private = root / "var/lib/private"
    recipe = place_recipe_config(root)
    units = root / "etc/systemd/system"
    (units / "duckdns.service").write_text("[Service]\nExecStart=/usr/bin/curl -K x\n")
    (units / "duckdns.timer").write_text("[Timer]\nOnCalendar=*:0/5\n")
    root.preseed(token=("password", OTHER), domains=("string", "new"))

    proc = root.install(DEBIAN_FRONTEND="teletype")
    assert (root / CONF).read_text() == recipe
    assert "rm /etc/systemd/system/duckdns.service /etc/systemd/system/duckdns.timer" in (
        proc.stderr
    )
    assert (units / "duckdns.service").exists() and (units / "duckdns.timer").exists()

    root.sh("dpkg --purge duckdns")
    assert not (root / CONF).exists()
    # /var/lib/private was there before the package: purge leaves it.
    assert private.is_dir()
    assert (units / "duckdns.service").exists()


def test_reconfigure_of_a_recipe_config_keeps_its_token_on_empty_answer(root):
    """A migrated recipe config is rewritten in the native form; its token is kept."""
    recipe = place_recipe_config(root)
    root.install(DEBIAN_FRONTEND="teletype")
    assert (root / CONF).read_text() == recipe

    root.sh("dpkg-reconfigure duckdns", stdin="new\n\n1\n", DEBIAN_FRONTEND="teletype")
    assert conf_keys(root / CONF) == {
        "domains": "new",
        "token": CANARY,
        "ipv4": "auto",
        "ipv6": "off",
    }
    assert root.holders_of(CANARY) == ["/" + CONF]


def test_reconfigure_refuses_a_file_the_updater_would_refuse(root):
    """The updater checks the new file before it replaces the old one: nothing is lost."""
    root.preseed(token=("password", CANARY), domains=("string", "home"))
    root.install()
    with open(root / CONF, "a") as f:
        f.write("refresh = often\n")  # the admin's typo: not a duration
    before = (root / CONF).read_bytes()
    proc = root.sh(
        "dpkg-reconfigure duckdns", stdin=f"other\n{OTHER}\n1\n", DEBIAN_FRONTEND="teletype"
    )
    assert "often" in proc.stderr and "left unchanged" in proc.stderr, proc.stderr
    # debconf keeps no copy of the token: the owner is told to give it again.
    assert "NOT saved" in proc.stderr and "dpkg-reconfigure duckdns" in proc.stderr
    assert (root / CONF).read_bytes() == before
    assert root.holders_of(OTHER) == []
    state_dir = root / "var/lib/private/duckdns"
    assert [p for p in os.listdir(state_dir) if p.startswith(".duckdns.conf.")] == []


def test_reconfigure_repairs_a_config_in_any_key_case_or_with_a_bom(root):
    """An owner whose token was revoked gives the new one to dpkg-reconfigure, whatever way
    the file the updater accepts is written: the answered lines change, every other byte
    stays, the file keeps the directory's owner, and no copy of the token is left."""
    root.preseed(token=("password", CANARY), domains=("string", "home"))
    root.install()
    state_dir = root / "var/lib/private/duckdns"
    run(["chown", "-R", "61234:61234", state_dir])  # systemd's dynamic user, after a run
    conf = root / CONF
    variants = [
        ("", "\n", "Domains", "Token", "IPv6"),
        ("", "\n", "DOMAINS", "TOKEN", "IPV6"),
        ("\ufeff", "\r\n", "domains", "tOkEn", "Ipv6"),
    ]
    for bom, eol, domains, token, ipv6 in variants:
        before = eol.join(
            [
                f"{bom}# written by hand",
                f"{domains} = Pi",
                f'{token} = "{CANARY.upper()}"',
                f"{ipv6} = off",
                "Refresh = 12h",
                "",
            ]
        )
        conf.write_bytes(before.encode())
        run(["chown", "61234:61234", conf])
        # teletype: subdomains (empty: the file's, shown as the default), token, 2: both.
        proc = root.sh(
            "dpkg-reconfigure duckdns", stdin=f"\n{OTHER}\n2\n", DEBIAN_FRONTEND="teletype"
        )
        assert "NOT saved" not in proc.stderr, proc.stderr
        after = eol.join(
            [f"{bom}# written by hand", "domains = pi", f"token = {OTHER}", "ipv6 = auto"]
            + ["Refresh = 12h", "ipv4 = auto", ""]
        )
        assert conf.read_bytes() == after.encode(), (bom, eol, domains)
        assert (conf.stat().st_uid, conf.stat().st_gid, mode(conf)) == (61234, 61234, 0o600)
        assert root.holders_of(OTHER) == ["/" + CONF]
        assert root.holders_of(CANARY) == [] and root.holders_of(CANARY.upper()) == []
        assert [p for p in os.listdir(state_dir) if p.startswith(".duckdns.conf.")] == []


def test_reconfigure_accepts_the_domain_lists_the_updater_accepts(root):
    """debian/config's rule is the updater's (tests/package/test_debconf.py holds the two
    to one table): an empty entry and a final dot are accepted and normalised."""
    root.preseed(token=("password", CANARY), domains=("string", "home"))
    root.install()
    for answer, written in [
        ("Piserver,,cloud", "piserver,cloud"),
        ("piserver.duckdns.org.", "piserver"),
        (" a , b,c,d,e,f ", "a,b,c,d,e,f"),  # more than a free account holds: check warns
    ]:
        proc = root.sh(
            "dpkg-reconfigure duckdns", stdin=f"{answer}\n\n1\n", DEBIAN_FRONTEND="teletype"
        )
        assert "Invalid DuckDNS subdomain list" not in proc.stdout, proc.stdout
        assert conf_keys(root / CONF) == {
            "domains": written,
            "token": CANARY,
            "ipv4": "auto",
            "ipv6": "off",
        }
    # A bad list is still refused at once, and asked again; a token pasted there too, and
    # it is kept nowhere.
    proc = root.sh(
        "dpkg-reconfigure duckdns",
        stdin=f"pi_server\n{OTHER}\nboat\n\n1\n",
        DEBIAN_FRONTEND="teletype",
    )
    assert proc.stdout.count("Invalid DuckDNS subdomain list") == 2, proc.stdout
    assert "The account token is not a subdomain" in proc.stdout
    assert conf_keys(root / CONF)["domains"] == "boat"
    assert root.holders_of(OTHER) == []


def test_upgrade_from_the_build_whose_postinst_wrote_the_backup_list(root, previous_deb):
    """The list an older postinst generated becomes the package's conffile: no conffile
    question (stdin is empty: dpkg would fail at one), and purge still leaves nothing."""
    before = root.snapshot()
    old = root.place(previous_deb, "previous.deb")
    root.preseed(token=("password", CANARY), domains=("string", "home"))
    root.sh(f"dpkg -i {old}")
    assert "written by its postinst" in (root / BACKUP_LIST).read_text()
    assert "etc/backup-paths.d" in (root / "var/lib/private/duckdns/.dpkg-created").read_text()

    proc = root.install()
    out = proc.stdout + proc.stderr
    assert "Configuration file" not in out and "conffile" not in out, out
    new = (REPO_DEBIAN / "backup-paths.d/duckdns.list").read_text()
    assert (root / BACKUP_LIST).read_text() == new
    conffiles = root.sh("dpkg-query -W -f '${Conffiles}' duckdns").stdout
    assert "/" + BACKUP_LIST in conffiles
    assert sorted(os.listdir(root / "etc/backup-paths.d")) == ["duckdns.list"]

    root.sh("dpkg --purge duckdns")
    assert root.snapshot() ^ before == set(), "purge left or removed something"


def test_upgrade_keeps_an_edited_list_of_the_old_postinst(root, previous_deb):
    """An admin's edit of the generated list is not thrown away: dpkg treats it as an
    edited conffile. With unattended-upgrades' options (--force-confdef --force-confold)
    it is kept, the package's list beside it as .dpkg-dist."""
    old = root.place(previous_deb, "previous.deb")
    root.sh(f"dpkg -i {old}")
    with open(root / BACKUP_LIST, "a") as f:
        f.write("/srv/extra\n")
    edited = (root / BACKUP_LIST).read_text()
    root.sh(f"dpkg -i --force-confdef --force-confold {root.deb}")
    assert (root / BACKUP_LIST).read_text() == edited
    dist = root / (BACKUP_LIST + ".dpkg-dist")
    assert dist.read_text() == (REPO_DEBIAN / "backup-paths.d/duckdns.list").read_text()


# -- duckdns.org's cron recipe, the token checked at setup, what to publish ------------------

DUCK_SH = (
    'echo url="https://www.duckdns.org/update?domains=piserver&token={token}&ip=" '
    "| curl -k -o ~/duckdns/duck.log -K -\n"
)
CRON = "# m h dom mon dow command\n*/5 * * * * ~/duckdns/duck.sh >/dev/null 2>&1\n"
SPOOL_PI = "var/spool/cron/crontabs/pi"


def place_cron_recipe(root) -> tuple[bytes, bytes]:
    """duckdns.org's install page recipe, as user pi followed it (crontab -e writes the
    spool file: owned by pi, mode 0600, in a root:crontab 1730 directory)."""
    root.sh("useradd --create-home --shell /bin/bash pi")
    root.sh(
        "mkdir -p ~pi/duckdns && cat > ~pi/duckdns/duck.sh && chmod 700 ~pi/duckdns/duck.sh"
        " && chown -R pi:pi ~pi/duckdns",
        stdin=DUCK_SH.format(token=CANARY),
    )
    root.sh(
        "mkdir -p -m 1730 /var/spool/cron/crontabs && cat > /var/spool/cron/crontabs/pi"
        " && chown pi /var/spool/cron/crontabs/pi && chmod 600 /var/spool/cron/crontabs/pi",
        stdin=CRON,
    )
    return (root / SPOOL_PI).read_bytes(), (root / "home/pi/duckdns/duck.sh").read_bytes()


@pytest.mark.parametrize("tool", ["dpkg -i", "apt-get install -y"])
def test_noninteractive_install_takes_the_recipe_and_says_what_to_remove(root, tool):
    """apt-get runs the config script twice (dpkg-preconfigure before unpacking, when there
    is no updater yet, and from postinst), dpkg -i once."""
    crontab, script = place_cron_recipe(root)
    # DEBIAN_FRONTEND=noninteractive, nothing preseeded; no network (all is installed).
    proc = root.sh(f"{tool} {root.deb}")
    out = proc.stdout + proc.stderr
    assert CANARY not in out and CANARY.upper() not in out
    assert conf_keys(root / CONF) == {
        "domains": "piserver",
        "token": CANARY,
        "ipv4": "auto",
        "ipv6": "off",
    }
    assert "run 'crontab -u pi -e' and delete line 2: */5 * * * * ~/duckdns/duck.sh" in out, out
    assert "delete /home/pi/duckdns/duck.sh" in out
    # Nothing of the user's is changed; the token is in the config and the user's script.
    assert (root / SPOOL_PI).read_bytes() == crontab
    assert (root / "home/pi/duckdns/duck.sh").read_bytes() == script
    assert root.holders_of(CANARY) == sorted(["/" + CONF, "/home/pi/duckdns/duck.sh"])

    check = root.sh("duckdns check", check=False)
    assert "the same names as this updater" in check.stderr, check.stderr
    assert "crontab -u pi -e" in check.stderr and CANARY not in check.stdout + check.stderr
    # Once the job is gone, check says nothing of it.
    (root / SPOOL_PI).write_text("# m h dom mon dow command\n")
    assert "crontab" not in root.sh("duckdns check", check=False).stderr


@pytest.fixture
def lookalike(built, root, test_ca, server_cert):
    """The package installed from preseeded answers (CANARY, piserver), its config pointed
    at a DuckDNS look-alike on the host's loopback (which accepts only CANARY)."""
    from support.duckdns_server import DuckDNSServer

    root.preseed(token=("password", CANARY), domains=("string", "piserver"))
    root.install()
    run(["cp", test_ca.cert_path, root / "etc/duckdns-test-ca.pem"])
    cert, key = server_cert
    with DuckDNSServer(cert, key, token=CANARY, domains=["piserver"]) as srv:
        with open(root / CONF, "a") as f:
            f.write(f"server = {srv.url}\nca_bundle = /etc/duckdns-test-ca.pem\nprobe = off\n")
        yield srv


def reconfigure(root, stdin: str, frontend: str = "teletype"):
    return root.sh("dpkg-reconfigure duckdns", stdin=stdin, host_net=True, DEBIAN_FRONTEND=frontend)


def test_reconfigure_with_a_token_duckdns_refuses_says_ko_and_asks_again(root, lookalike):
    # teletype: subdomains (kept), the wrong token, IPv4 only; KO; then the right token.
    proc = reconfigure(root, f"\n{OTHER}\n1\n\n{CANARY}\n1\n")
    assert proc.stdout.count("DuckDNS refused this token (KO)") == 1, proc.stdout
    assert [r["query"]["token"] for r in lookalike.requests] == [OTHER, CANARY]
    assert conf_keys(root / CONF)["token"] == CANARY
    out = proc.stdout + proc.stderr
    assert CANARY not in out and OTHER not in out
    assert root.holders_of(OTHER) == []


def test_the_token_checked_at_setup_is_in_no_argv_or_environment(root, lookalike, tmp_path):
    """Every program started by dpkg-reconfigure (debconf, the scripts, the updater), its
    argv and environment as strace's execve lines show them: no token, right or wrong."""
    import shutil

    if shutil.which("strace") is None:
        skip_or_fail("strace is not installed")
    trace = tmp_path / "execve.trace"
    root.sh(
        "dpkg-reconfigure duckdns",
        stdin=f"\n{OTHER}\n1\n\n{CANARY}\n1\n",
        host_net=True,
        wrap=("strace", "-f", "-qq", "-v", "-s", "65536", "-e", "trace=execve", "-o", str(trace)),
        DEBIAN_FRONTEND="teletype",
    )
    text = trace.read_text()
    assert "debconf-check" in text and "debconf-write" in text  # the trace saw them
    assert len(lookalike.requests) == 2
    assert CANARY not in text and OTHER not in text


def test_reconfigure_with_a_good_token_sends_one_update_and_goes_on(root, lookalike):
    proc = reconfigure(root, f"\n{CANARY}\n1\n")
    assert "KO" not in proc.stdout and "Could not reach" not in proc.stdout
    assert len(lookalike.requests) == 1
    assert lookalike.records["piserver"]["ipv4"]  # the update took effect


def test_reconfigure_goes_on_when_duckdns_cannot_be_reached(root, lookalike):
    lookalike.stop()
    proc = reconfigure(root, f"\n{OTHER}\n3\n")
    assert "Could not reach DuckDNS" in proc.stdout and "the timer keeps trying" in proc.stdout
    keys = conf_keys(root / CONF)
    assert (keys["token"], keys["ipv4"], keys["ipv6"]) == (OTHER, "off", "auto")


def test_a_noninteractive_reconfigure_sends_nothing(root, lookalike):
    reconfigure(root, "", frontend="noninteractive")
    assert lookalike.requests == []


def test_upgrade_from_the_yes_no_ipv6_question_keeps_the_choice(root, release_1_0_0_deb):
    """1.0.0 asked "IPv6 too?" (a boolean): an owner who said yes keeps "IPv4 and IPv6"
    through the upgrade and through a dpkg-reconfigure that takes the defaults (the
    teletype frontend has no default for a select, so debconf's noninteractive one takes
    them: the answers dpkg-reconfigure would show)."""
    old = root.place(release_1_0_0_deb, "release-1.0.0.deb")
    root.preseed(token=("password", CANARY), domains=("string", "home"), ipv6=("boolean", "true"))
    root.sh(f"dpkg -i {old}")
    before = (root / CONF).read_bytes()
    assert conf_keys(root / CONF)["ipv6"] == "auto"
    assert root.sh("dpkg-query -W -f '${Version}' duckdns").stdout == "1.0.0-1"
    root.install(DEBIAN_FRONTEND="teletype")  # asks nothing (no input to answer with)
    assert (root / CONF).read_bytes() == before
    root.sh("dpkg-reconfigure duckdns", DEBIAN_FRONTEND="noninteractive")
    keys = conf_keys(root / CONF)
    assert (keys["token"], keys["ipv4"], keys["ipv6"]) == (CANARY, "auto", "auto")
    assert root.sh("debconf-show duckdns").stdout.count("duckdns/publish: both") == 1


def test_interactive_install_offers_the_recipe_as_the_defaults(root):
    """teletype: Enter at the subdomains (the recipe's are the default) and at the token
    (empty: the recipe's), 1 (IPv4 only); the check finds no network and goes on."""
    place_cron_recipe(root)
    proc = root.sh(f"dpkg -i {root.deb}", stdin="\n\n1\n", DEBIAN_FRONTEND="teletype")
    assert "DuckDNS recipe found in cron" in proc.stdout
    assert "Could not reach DuckDNS" in proc.stdout
    out = proc.stdout + proc.stderr
    assert CANARY not in out and "crontab -u pi -e" in proc.stderr
    keys = conf_keys(root / CONF)
    assert (keys["domains"], keys["token"], keys["ipv6"]) == ("piserver", CANARY, "off")


def test_preseeded_ipv6_only_wins_over_the_older_boolean(root):
    """A fleet behind CGNAT preseeds the new question; an old boolean beside it is ignored."""
    root.preseed(
        token=("password", CANARY),
        domains=("string", "home"),
        publish=("select", "ipv6"),
        ipv6=("boolean", "false"),
    )
    root.install()
    keys = conf_keys(root / CONF)
    assert (keys["ipv4"], keys["ipv6"]) == ("off", "auto")
