"""Configuration refusals (exit 78, no traffic) and the curl-config compatibility."""

from __future__ import annotations

import subprocess

import pytest
from helpers import CANARY, DEBIAN_PYTHON, ROOT, run_duckdns, update


def check(cfg):
    return run_duckdns("--config", str(cfg), "check")


@pytest.mark.parametrize(
    ("keys", "mode", "expected"),
    [
        ({"token": "not-a-token"}, 0o600, "not a DuckDNS token"),
        ({"token": CANARY[:-1]}, 0o600, "not a DuckDNS token"),
        ({"domains": "pi_server"}, 0o600, "not a DuckDNS subname"),
        ({"domains": "-pi"}, 0o600, "not a DuckDNS subname"),
        ({"domains": "a" * 64}, 0o600, "not a DuckDNS subname"),
        ({"domains": " , "}, 0o600, "no domain given"),
        ({"server": "http://localhost:1"}, 0o600, "only https://"),
        ({"ipv4": "1.2.3"}, 0o600, "ipv4 = '1.2.3' is not valid"),
        ({"ipv6": "192.0.2.1"}, 0o600, "ipv6 = '192.0.2.1' is not valid"),
        ({"ipv4": "off", "ipv6": "off"}, 0o600, "both off"),
        ({"refresh": "soon"}, 0o600, "not a duration"),
        ({"probe": "google@8.8.8.8"}, 0o600, "probe"),
        (
            {"probe": "cloudflare@[2606:4700:4700::1111]"},
            0o600,
            "probe: probe entry 'cloudflare@[2606:4700:4700::1111]': an IPv6 probe address "
            "can never tell the public IPv4 address",
        ),
        ({"colour": "blue"}, 0o600, "unknown key 'colour'"),
        ({}, 0o644, "chmod 600"),
        ({}, 0o660, "chmod 600"),
        ({"token": None}, 0o600, "no token"),
    ],
)
def test_refusals_exit_78_and_send_nothing(duck, conf, keys, mode, expected):
    cfg = conf(mode=mode, **keys)
    for proc in (check(cfg), update(cfg)):
        assert proc.returncode == 78, proc.stderr
        assert expected in proc.stderr
        assert str(cfg) in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
    assert duck.requests == []


def test_missing_file(tmp_path, duck):
    proc = check(tmp_path / "nope.conf")
    assert proc.returncode == 78
    assert "does not exist" in proc.stderr and "dpkg-reconfigure duckdns" in proc.stderr


def test_bad_syntax(tmp_path, duck, conf):
    cfg = conf()
    cfg.write_text(cfg.read_text() + "this is not a key value line\n")
    proc = check(cfg)
    assert proc.returncode == 78 and "line" in proc.stderr and "key = value" in proc.stderr
    assert duck.requests == []


def test_token_whitespace_and_quotes_are_stripped(duck, conf):
    cfg = conf(token=f'"  {CANARY}  "')
    assert check(cfg).returncode == 0
    assert update(cfg).returncode == 0
    assert duck.requests[0]["query"]["token"] == CANARY


def test_check_summarises_without_network(duck, conf):
    proc = check(conf(domains="piserver,cloud.duckdns.org"))
    assert proc.returncode == 0
    assert "domains piserver, cloud" in proc.stdout
    assert duck.requests == []


def test_recipe_curl_config_is_read_untouched(duck, test_ca, tmp_path):
    import os

    cfg = tmp_path / "duckdns.conf"
    fd = os.open(cfg, os.O_WRONLY | os.O_CREAT, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(
            "# hand-made recipe\n"
            f'url = "https://localhost:{duck.port}/update?domains=piserver,cloud&token={CANARY}&ip="\n'
            "silent\nshow-error\nmax-redirs = 0\nmax-time = 10\nretry = 5\n"
            "retry-max-time = 30\nretry-connrefused\ntlsv1.2\nproto = =https\n"
            f'cacert = "{test_ca.cert_path}"\n'
        )
    proc = check(cfg)
    assert proc.returncode == 0, proc.stderr
    assert "curl-config" in proc.stdout
    proc = update(cfg)
    assert proc.returncode == 0, proc.stderr
    assert duck.requests[0]["query"]["domains"] == "piserver,cloud"
    assert duck.requests[0]["query"]["token"] == CANARY


def test_backup_paths_lists_the_config_in_use(conf):
    cfg = conf()
    proc = run_duckdns("--config", str(cfg), "backup-paths")
    assert proc.returncode == 0
    lines = proc.stdout.splitlines()
    assert lines[0] == str(cfg.resolve())
    assert "/etc/systemd/system/timers.target.wants/duckdns.timer" in lines
    assert "/etc/systemd/system/duckdns.service.d" in lines


def test_shipped_backup_list_is_what_backup_paths_prints_for_the_packaged_config():
    """One list: debian/backup-paths.d/duckdns.list (the conffile) holds, below its
    comments, exactly what `duckdns backup-paths` prints for the packaged config path."""
    from duckdns import cli, config

    shipped = (ROOT / "debian/backup-paths.d/duckdns.list").read_text().splitlines()
    paths = [line for line in shipped if line and not line.startswith("#")]
    assert paths == [config.DEFAULT_PATH, *cli.BACKUP_UNIT_PATHS]
    # What the command prints: the config path with its directory resolved.
    assert cli.backup_paths(config.DEFAULT_PATH)[1:] == paths[1:]
    assert all(line.startswith("# ") for line in shipped if line.startswith("#"))


def test_state_directory_environment_chooses_the_config(duck, conf):
    cfg = conf()
    proc = run_duckdns("check", env={"STATE_DIRECTORY": str(cfg.parent)})
    assert proc.returncode == 0 and str(cfg) in proc.stdout


def test_usage_error_is_exit_2():
    proc = run_duckdns("frobnicate")
    assert proc.returncode == 2


def test_help_documents_exit_codes():
    proc = run_duckdns("--help")
    assert proc.returncode == 0
    for code in ("75", "78", "KO"):
        assert code in proc.stdout


def test_unreadable_state_directory_is_a_clear_refusal(tmp_path, conf):
    """A user (not root) asking for status gets "run as root", not a traceback."""
    import os

    cfg = conf()
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    os.chown(private, 0, 0)
    target = private / "duckdns.conf"
    os.rename(cfg, target)
    proc = subprocess.run(
        [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            DEBIAN_PYTHON,
            "-m",
            "duckdns",
            "--config",
            str(target),
            "status",
        ],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    os.rename(target, cfg)
    assert proc.returncode == 78, proc.stderr
    assert "run as root" in proc.stderr and "Traceback" not in proc.stderr
