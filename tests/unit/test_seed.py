"""duckdns/seed.py: `duckdns check` warns when the token sits in a cloud-init seed any
user can read (the boot partition of a card set up as docs/fleet.md says), naming the
file and the fix, never the token."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from support.helpers import CANARY

from duckdns import seed

# The seed as docs/fleet.md writes it (the lines that matter here).
USER_DATA = f"""#cloud-config
apt:
  debconf_selections:
    duckdns: |
      duckdns duckdns/domains string piserver
      duckdns duckdns/token password {CANARY}
      duckdns duckdns/ipv6 boolean false
packages: [duckdns]
"""


@pytest.fixture
def boot():
    """A directory every user can reach, as /boot/firmware on a running Pi (a FAT
    partition mounted with files 0755). Not under pytest's tmp_path: its parents are
    0700, so nothing in it would count as readable by others."""
    path = Path(tempfile.mkdtemp(prefix="duckdns-seed-", dir="/var/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def write(path: Path, text: str, mode: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


def test_a_world_readable_seed_holding_the_token_is_found(boot):
    seedfile = write(boot / "user-data", USER_DATA, 0o755)
    assert seed.readable_seeds(CANARY, (str(seedfile),)) == [str(seedfile)]


def test_the_token_in_another_letter_case_is_found(boot):
    seedfile = write(boot / "user-data", USER_DATA.upper(), 0o644)
    assert seed.readable_seeds(CANARY, (str(seedfile),)) == [str(seedfile)]


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o700])
def test_a_seed_others_cannot_read_is_not_reported(boot, mode):
    seedfile = write(boot / "user-data", USER_DATA, mode)
    assert seed.readable_seeds(CANARY, (str(seedfile),)) == []


def test_a_readable_file_in_a_closed_directory_is_not_reported(boot):
    closed = boot / "closed"
    seedfile = write(closed / "user-data", USER_DATA, 0o644)
    closed.chmod(0o700)
    assert seed.readable_seeds(CANARY, (str(seedfile),)) == []


def test_a_seed_without_the_token_is_not_reported(boot):
    seedfile = write(boot / "user-data", USER_DATA.replace(CANARY, "<token>"), 0o644)
    assert seed.readable_seeds(CANARY, (str(seedfile),)) == []


def test_the_token_past_the_read_limit_is_not_read(boot, monkeypatch):
    """The read is bounded: a huge file on the boot partition costs at most READ_LIMIT."""
    monkeypatch.setattr(seed, "READ_LIMIT", 64)
    seedfile = write(boot / "user-data", "#" * 64 + USER_DATA, 0o644)
    assert seed.readable_seeds(CANARY, (str(seedfile),)) == []


def test_missing_seeds_and_globs_are_quiet(boot):
    assert seed.readable_seeds(CANARY, (str(boot / "nope"), str(boot / "nocloud*/x"))) == []


def test_the_nocloud_seed_directories_are_globbed(boot):
    seedfile = write(boot / "nocloud-net" / "user-data", USER_DATA, 0o644)
    (boot / "nocloud-net").chmod(0o755)
    assert seed.readable_seeds(CANARY, (str(boot / "nocloud*/user-data"),)) == [str(seedfile)]


def test_the_shipped_locations_are_the_nocloud_seeds():
    """Raspberry Pi OS's boot partition and cloud-init's seed directories."""
    assert "/boot/firmware/user-data" in seed.SEEDS
    assert "/var/lib/cloud/seed/nocloud*/user-data" in seed.SEEDS


def test_check_warns_with_the_path_and_the_fix_never_the_token(boot, conf, runner, monkeypatch):
    seedfile = write(boot / "user-data", USER_DATA, 0o755)
    monkeypatch.setattr(seed, "SEEDS", (str(seedfile),))
    code, out, err = runner(conf())("check")  # the runner asserts no canary in either
    assert code == 0, err
    assert f"{seedfile} holds the DuckDNS token" in err
    assert f"sed -i '/duckdns\\/token/d' {seedfile}" in err
    # The fix as printed works (as root, so without sudo): afterwards check is quiet.
    fix = err.split("remove the token from it with: ", 1)[1].splitlines()[0]
    subprocess.run(["sh", "-c", fix.removeprefix("sudo ")], check=True)
    assert CANARY not in seedfile.read_text()
    code, out, err = runner(conf())("check")
    assert code == 0 and "holds the DuckDNS token" not in err, err


def test_check_is_quiet_with_a_root_only_seed(boot, conf, runner, monkeypatch):
    seedfile = write(boot / "user-data", USER_DATA, 0o600)
    monkeypatch.setattr(seed, "SEEDS", (str(seedfile),))
    code, _, err = runner(conf())("check")
    assert code == 0 and "holds the DuckDNS token" not in err, err


# -- the token in cloud-init's log, masked by the postinst ----------------------------------

# What Debian 13's cloud-init 25.1 logs (cc_apt_configure, "handling apt config"), cut.
LOG_LINE = (
    "2026-12-06 11:15:56,331 - cc_apt_configure.py[DEBUG]: handling apt config: "
    "{'debconf_selections': {'duckdns': 'duckdns duckdns/domains string kitchen\\n"
    f"duckdns duckdns/token password {CANARY}\\nduckdns duckdns/ipv6 boolean false\\n'}}}}\n"
)


def test_the_token_is_masked_in_place_and_nothing_else_changes(tmp_path):
    log = tmp_path / "cloud-init.log"
    before = "line one\n" + LOG_LINE + "a last line\n"
    log.write_text(before)
    inode = log.stat().st_ino
    assert seed.mask_in_place(str(log), CANARY) == 1
    after = log.read_text()
    assert after == before.replace(CANARY, "*" * len(CANARY))
    assert log.stat().st_ino == inode and len(after) == len(before)
    assert seed.mask_in_place(str(log), CANARY) == 0  # idempotent


def test_a_writer_appending_meanwhile_loses_nothing(tmp_path):
    """cloud-init keeps its log open (append mode) while it installs the package."""
    log = tmp_path / "cloud-init.log"
    with open(log, "a") as writer:
        writer.write(LOG_LINE)
        writer.flush()
        seed.mask_in_place(str(log), CANARY)
        writer.write("written after\n")
    assert log.read_text() == LOG_LINE.replace(CANARY, "*" * len(CANARY)) + "written after\n"


def test_every_occurrence_in_any_case_and_across_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(seed, "CHUNK", 50)  # the token (36) straddles chunk borders
    log = tmp_path / "cloud-init.log"
    text = "".join(f"{'x' * n}{CANARY if n % 2 else CANARY.upper()}\n" for n in range(1, 60, 7))
    log.write_text(text)
    assert seed.mask_in_place(str(log), CANARY) == text.lower().count(CANARY)
    assert CANARY not in log.read_text().lower()


def test_a_symlink_or_a_missing_log_is_left_alone(tmp_path):
    target = tmp_path / "elsewhere"
    target.write_text(LOG_LINE)
    (tmp_path / "cloud-init.log").symlink_to(target)
    assert seed.mask_in_place(str(tmp_path / "cloud-init.log"), CANARY) == 0
    assert seed.mask_in_place(str(tmp_path / "missing.log"), CANARY) == 0
    assert target.read_text() == LOG_LINE


def test_main_reads_the_token_from_the_config(tmp_path, conf, monkeypatch, capsys):
    log = tmp_path / "cloud-init.log"
    log.write_text(LOG_LINE)
    monkeypatch.setattr(seed, "LOGS", (str(log),))
    assert seed.main([str(conf())]) == 0
    assert CANARY not in log.read_text()
    out, err = capsys.readouterr()
    assert f"{log}: the DuckDNS token masked there" in err and CANARY not in out + err


def test_main_with_a_bad_config_or_no_argument_says_so(tmp_path, capsys):
    assert seed.main([]) == 2
    assert seed.main([str(tmp_path / "nope.conf")]) == 78
    assert "nope.conf" in capsys.readouterr().err
