"""Configuration refusals (exit 78, no traffic) and the curl-config compatibility."""

from __future__ import annotations

import os
import subprocess

import pytest
from support.helpers import CANARY, DEBIAN_PYTHON, ROOT
from support.runner import Ran, Updater


def check(runner, cfg):
    return runner(cfg)("check")


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
        ({"colour": "blue"}, 0o600, "unknown key: known keys are"),
        ({"tokn": "x"}, 0o600, "unknown key: did you mean 'token'?"),
        ({}, 0o644, "chmod 600"),
        ({}, 0o660, "chmod 600"),
        ({"token": None}, 0o600, "no token"),
    ],
)
def test_refusals_exit_78_and_send_nothing(runner, duck, conf, keys, mode, expected):
    cfg = conf(mode=mode, **keys)
    for proc in (check(runner, cfg), runner(cfg)()):
        assert proc.returncode == 78, proc.stderr
        assert expected in proc.stderr
        assert str(cfg) in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
    assert duck.requests == []


def test_missing_file(runner, tmp_path, duck):
    proc = check(runner, tmp_path / "nope.conf")
    assert proc.returncode == 78
    assert "does not exist" in proc.stderr and "dpkg-reconfigure duckdns" in proc.stderr


def test_bad_syntax(runner, tmp_path, duck, conf):
    cfg = conf()
    cfg.write_text(cfg.read_text() + "this is not a key value line\n")
    proc = check(runner, cfg)
    assert proc.returncode == 78 and "line" in proc.stderr and "key = value" in proc.stderr
    assert duck.requests == []


def test_token_whitespace_and_quotes_are_stripped(runner, duck, conf):
    cfg = conf(token=f'"  {CANARY}  "')
    assert check(runner, cfg).returncode == 0
    assert runner(cfg)().returncode == 0
    assert duck.requests[0]["query"]["token"] == CANARY


def test_check_summarises_without_network(runner, duck, conf):
    proc = check(runner, conf(domains="piserver,cloud.duckdns.org"))
    assert proc.returncode == 0
    assert "domains piserver, cloud" in proc.stdout
    assert duck.requests == []


def test_recipe_curl_config_is_read_untouched(runner, duck, test_ca, tmp_path):
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
    proc = check(runner, cfg)
    assert proc.returncode == 0, proc.stderr
    assert "curl-config" in proc.stdout
    proc = runner(cfg)()
    assert proc.returncode == 0, proc.stderr
    assert duck.requests[0]["query"]["domains"] == "piserver,cloud"
    assert duck.requests[0]["query"]["token"] == CANARY


def test_backup_paths_lists_the_config_in_use(runner, conf):
    cfg = conf()
    proc = runner(cfg)("backup-paths")
    assert proc.returncode == 0
    lines = proc.stdout.splitlines()
    assert lines[0] == str(cfg.resolve())
    assert "/etc/systemd/system/timers.target.wants/duckdns.timer" in lines
    assert "/etc/systemd/system/duckdns.service.d" in lines


def test_backup_paths_lists_the_hooks_directory_when_it_exists(tmp_path, monkeypatch):
    """The admin's hooks (/etc/duckdns/changed.d, which the package makes) are listed
    when the directory exists; without it (a run from a source tree) they are not."""
    from duckdns import changed, cli

    hooks = tmp_path / "changed.d"
    monkeypatch.setattr(changed, "HOOK_DIR", str(hooks))
    cfg = str(tmp_path / "duckdns.conf")
    assert str(hooks) not in cli.backup_paths(cfg)
    hooks.mkdir()
    assert cli.backup_paths(cfg) == [cfg, *cli.BACKUP_UNIT_PATHS, str(hooks)]


def test_shipped_backup_list_is_what_backup_paths_prints_for_the_packaged_config(monkeypatch):
    """One list: debian/backup-paths.d/duckdns.list (the conffile) holds, below its
    comments, exactly what `duckdns backup-paths` prints for the packaged config path on
    an installed system (where debian/duckdns.dirs made the hooks directory)."""
    from duckdns import changed, cli, config

    shipped = (ROOT / "debian/backup-paths.d/duckdns.list").read_text().splitlines()
    paths = [line for line in shipped if line and not line.startswith("#")]
    assert paths == [config.DEFAULT_PATH, *cli.BACKUP_UNIT_PATHS, changed.HOOK_DIR]
    assert changed.HOOK_DIR.lstrip("/") in (ROOT / "debian/duckdns.dirs").read_text().split()
    # What the command prints: the config path with its directory resolved.
    monkeypatch.setattr(os.path, "isdir", lambda p: p == changed.HOOK_DIR)
    assert cli.backup_paths(config.DEFAULT_PATH)[1:] == paths[1:]
    assert all(line.startswith("# ") for line in shipped if line.startswith("#"))


def test_state_directory_environment_chooses_the_config(runner, duck, conf):
    cfg = conf()
    proc = runner()("check", env={"STATE_DIRECTORY": str(cfg.parent)})
    assert proc.returncode == 0 and str(cfg) in proc.stdout


def test_usage_error_is_exit_2(runner):
    proc = runner()("frobnicate")
    assert proc.returncode == 2


def test_help_documents_exit_codes(runner):
    proc = runner()("--help")
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


# -- hostile configs: a clear refusal (78) naming the line, never a byte of a secret ------

HEARTBEAT = "https://hc-ping.com/ping-slug-kept-secret-xyz"


def _raw(path, text: str, mode: int = 0o600):
    import os

    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", newline="") as f:
        f.write(text)
    return path


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (CANARY, "a token without 'token = ' in front"),
        (f"token:{CANARY}", "a token without 'token = ' in front"),
        (f"token {CANARY}", "a token without 'token = ' in front"),
        (f"--token={CANARY}", "a token without 'token = ' in front"),
        (HEARTBEAT, "a URL without a key in front"),
        (f"healthcheck: {HEARTBEAT}", "a URL without a key in front"),
        (f"{CANARY[:20]} and more", "this line cannot be parsed"),
        ("domains: piserver", "'domains' needs '='"),
        (f"{CANARY[:8]}x = 1", "unknown key: known keys"),
    ],
)
def test_an_unparsable_line_is_named_never_shown(runner, duck, conf, line, expected):
    cfg = conf(healthcheck=HEARTBEAT)
    cfg.write_text(cfg.read_text() + line + "\n")
    number = len(cfg.read_text().splitlines())
    for proc in (check(runner, cfg), runner(cfg)()):
        assert proc.returncode == 78, proc.stderr
        assert f"line {number}: {expected}" in proc.stderr
        assert HEARTBEAT not in proc.stderr and "slug-kept" not in proc.stderr
        assert CANARY[:20] not in proc.stderr and CANARY[:8] not in proc.stderr
    assert duck.requests == []


def test_messages_are_clean_before_redaction():
    """What a refusal says holds no secret even when nothing was registered: the raw text."""
    from duckdns import config, report

    for text in (
        f"{CANARY}\n",
        f"domains = pi\ntoken:{CANARY}\n",
        f"domains = pi\ntoken = {CANARY}\n{HEARTBEAT}\n",
        f"domains = pi\ntoken = {CANARY}\nipv4 = {CANARY}\n",
        f"domains = pi\ntoken = {CANARY}\nprobe = cloudflare@{CANARY}\n",
        f"domains = pi\ntoken = {CANARY}\nrefresh = {CANARY}\n",
        f"domains = pi\ntoken = {CANARY}\nserver = https://x.example/update?token={CANARY}\n",
        f"domains = {HEARTBEAT}\ntoken = {CANARY}\n",
        f"domains = pi\ntoken = {CANARY}\nhealthcheck = {HEARTBEAT}#frag\n",
        f"domains = pi\ntoken = {CANARY}x\n",
    ):
        report._secrets.clear()
        with pytest.raises(config.ConfigError) as exc:
            config.parse(text, "/etc/duckdns.conf")
        message = str(exc.value)
        assert CANARY[:8] not in message and "slug-kept" not in message, message
    report._secrets.clear()


def test_a_token_shaped_string_is_masked_even_unregistered():
    from duckdns import report

    report._secrets.clear()
    other = "0123abcd-4567-89ab-cdef-0123456789AB"
    assert report.redact(f"x {other} y {CANARY}") == "x *** y ***"


def test_secrets_are_registered_before_the_first_refusal():
    """An unknown key on line 1 is refused; the token and heartbeat below are registered."""
    from duckdns import config, report

    report._secrets.clear()
    text = f"colour = blue\ndomains = pi\ntoken = {CANARY}\nhealthcheck = {HEARTBEAT}\n"
    with pytest.raises(config.ConfigError):
        config.parse(text, "/etc/duckdns.conf")
    assert {CANARY, HEARTBEAT} <= report._secrets
    report._secrets.clear()


@pytest.mark.parametrize(
    ("server", "expected"),
    [
        ("https://[::1", "no closing ']'"),
        ("https://localhost:99999", "port is out of range 1-65535"),
        ("https://localhost:0", "port is out of range 1-65535"),
        ("https://localhost:８４４３", "non-ASCII"),
        ("https://localhost:44²", "non-ASCII"),
        ("https://host\\.example", "backslash"),
        ("https://user@localhost", "user name or password"),
        ("https://localhost/#top", "#fragment"),
        ("https://localhost/%2e%2e/update", "%-escape"),
        ("https://localhost/a/../b", "'..' segment"),
        ("https://local_host", "not a DNS name"),
        ("https://1.2.3", "ends in a number"),
        ("https://0x7f000001", "ends in a number"),
        ("https://[fe80::1%25eth0]", "%zone"),
        ("https://::1:443", "must be in brackets"),
        ("https://localhost:", "not a number"),
        ("www.duckdns.org", "does not start with https://"),
        ("http://localhost:1", "only https://"),
        (f"https://www.duckdns.org/update?token={CANARY}", "?query is not allowed"),
    ],
)
def test_server_is_refused_by_check_when_the_run_could_not_use_it(
    runner, duck, conf, server, expected
):
    cfg = conf(server=server)
    for proc in (check(runner, cfg), runner(cfg)()):
        assert proc.returncode == 78, proc.stderr
        assert "line 4: server is refused: " in proc.stderr and expected in proc.stderr
        assert server not in proc.stderr.replace("https://www.duckdns.org", "")  # the example
    assert duck.requests == []


def test_the_run_goes_where_check_said(runner, duck, conf):
    """One parser: the canonical base URL check shows is the one the request uses."""
    cfg = conf(server=f"https://LocalHost.:{duck.port}/")
    proc = check(runner, cfg)
    assert proc.returncode == 0, proc.stderr
    assert f"server https://localhost:{duck.port})" in proc.stdout
    assert runner(cfg)().returncode == 0
    assert len(duck.requests) == 1


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "no certificate"),
        (b"not a certificate\n", "no certificate"),
        (b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "cannot be used"),
    ],
    ids=["empty", "text", "broken-pem"],
)
def test_an_unusable_ca_bundle_is_refused_by_check_and_is_78_at_run_time(
    runner, duck, conf, tmp_path, content, expected
):
    bundle = tmp_path / "bad-ca.pem"
    bundle.write_bytes(content)
    cfg = conf(ca_bundle=str(bundle))
    proc = check(runner, cfg)
    assert proc.returncode == 78, proc.stderr
    assert f"ca_bundle: the CA file {bundle} cannot be used" in proc.stderr, proc.stderr
    proc = runner(cfg)()  # the same loader, at run time: a config error, not an internal one
    assert proc.returncode == 78, proc.stderr
    assert "PEM certificates" in proc.stderr and "internal error" not in proc.stderr
    assert duck.requests == []


@pytest.mark.parametrize("kind", ["directory", "fifo", "relative", "missing"])
def test_a_ca_bundle_that_is_not_a_file_is_refused(runner, duck, conf, tmp_path, kind):
    import os

    target = {
        "directory": str(tmp_path),
        "fifo": str(tmp_path / "ca.fifo"),
        "relative": "ca.pem",
        "missing": str(tmp_path / "nope.pem"),
    }[kind]
    if kind == "fifo":
        os.mkfifo(target)
    cfg = conf(ca_bundle=target)
    for proc in (check(runner, cfg), runner(cfg)()):
        assert proc.returncode == 78, proc.stderr
        assert "line 5:" in proc.stderr and "ca_bundle" in proc.stderr
    assert duck.requests == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", "refresh = '0' is out of range"),
        ("366d", "refresh = '366d' is out of range"),
        ("99999999999999d", "refresh is out of range"),  # 8 digits could be a token's
        ("9" * 5000, "refresh is out of range"),
        ("-5m", "refresh = '-5m' is not a duration"),
        ("2²", "refresh is not a duration"),
        ("３h", "refresh is not a duration"),
        ("1.5h", "refresh = '1.5h' is not a duration"),
    ],
)
def test_refresh_out_of_range_or_odd_digits(runner, duck, conf, value, expected):
    proc = check(runner, conf(refresh=value))
    assert proc.returncode == 78, proc.stderr
    assert expected in proc.stderr


@pytest.mark.parametrize("value", ["1s", "365d", " 90 m "])
def test_refresh_bounds_accepted(runner, duck, conf, value):
    assert check(runner, conf(refresh=value)).returncode == 0


def test_a_key_set_twice_is_refused_naming_both_lines(runner, duck, conf):
    cfg = conf()
    cfg.write_text(cfg.read_text() + "domains = cloud\n")
    proc = check(runner, cfg)
    assert proc.returncode == 78
    assert "line 7: domains is set a second time (first on line 2): keep one line" in proc.stderr


def test_bom_and_crlf_are_read_as_the_user_sees_them(runner, duck, conf, tmp_path):
    cfg = conf()
    text = "\ufeff" + cfg.read_text().replace("\n", "\r\n")
    _raw(cfg, text)
    assert check(runner, cfg).returncode == 0
    assert runner(cfg)().returncode == 0
    assert duck.requests[0]["query"]["token"] == CANARY
    # Only '\n' ends a line: a form feed does not shift the line numbers said.
    _raw(cfg, "# \x0c comment\ncolour = blue\n")
    assert "line 2: unknown key" in check(runner, cfg).stderr


def test_an_upper_case_token_is_sent_as_duckdns_shows_it(runner, duck, conf):
    cfg = conf(token=CANARY.upper())
    assert runner(cfg)().returncode == 0
    assert duck.requests[0]["query"]["token"] == CANARY


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (CANARY, "the 1st name in domains is shaped like a token"),
        (f"piserver, {HEARTBEAT}", "the 2nd name in domains holds a character other than"),
        ("pi, " + "a" * 64, "the 2nd name in domains is longer than 63 characters"),
        ("pi-", "the 1st name in domains starts or ends with a hyphen"),
    ],
)
def test_a_bad_domain_is_named_by_position(runner, duck, conf, value, expected):
    proc = check(runner, conf(domains=value))
    assert proc.returncode == 78
    assert expected in proc.stderr and "slug-kept" not in proc.stderr


def test_more_than_five_domains_is_a_warning_of_check_only(runner, duck, conf):
    """DuckDNS free accounts hold at most 5 subnames (docs/duckdns-api.md); whether any account
    holds more is not known, so it is said, not refused, and not by every timer run."""
    cfg = conf(domains="a1,a2,a3,a4,a5,a6")
    proc = check(runner, cfg)
    assert proc.returncode == 0
    assert "6 domains: a free DuckDNS account has at most 5" in proc.stderr
    assert "6 domains" not in runner(cfg)("update", "--dry-run").stderr


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ('"https://[::1/update?domains=piserver&token={t}"', "no closing ']'"),
        ('"https://www.duckdns.org/update"', "has no 'domains' parameter"),
        ('"https://www.duckdns.org/update?domains=piserver"', "has no 'token' parameter"),
        (
            '"https://www.duckdns.org/update?domains=piserver&token={t}&token={t}"',
            "has two 'token' parameters",
        ),
        ('"https://www.duckdns.org:99999/update?domains=pi&token={t}"', "port is out of range"),
        ('"https://www.duckdns.org/nope?domains=pi&token={t}"', "not a DuckDNS https://…/update"),
    ],
)
def test_hostile_recipe_urls(runner, duck, tmp_path, url, expected):
    cfg = _raw(tmp_path / "duckdns.conf", f"url = {url.format(t=CANARY)}\nsilent\n")
    proc = check(runner, cfg)
    assert proc.returncode == 78, proc.stderr
    assert "line 1: the curl 'url' line" in proc.stderr and expected in proc.stderr
    assert duck.requests == []


def test_a_recipe_with_two_url_lines_is_refused(runner, duck, tmp_path):
    line = f'url = "https://www.duckdns.org/update?domains=pi&token={CANARY}"\n'
    proc = check(runner, _raw(tmp_path / "duckdns.conf", line + line))
    assert proc.returncode == 78
    assert "line 2: a second curl 'url' line (first on line 1): keep one" in proc.stderr


def test_more_probe_entries_than_the_time_bound_counts_are_refused():
    from duckdns import config

    eight = ", ".join(f"opendns@192.0.2.{n}" for n in range(1, 9))
    assert len(config.parse_probe(eight)) == config.MAX_PROBES
    with pytest.raises(ValueError, match="9 entries; at most 8"):
        config.parse_probe(eight + ", opendns@192.0.2.9")


# -- debconf-write: postinst's rewrite of the keys debconf answers ----------------------------

NEW = "c0ffee00-dead-beef-0000-123456789abd"  # the owner's new token; CANARY the revoked one
HEADER = (
    "# duckdns configuration; see duckdns.conf(5).\n"
    '# "dpkg-reconfigure duckdns" rewrites the domains, token, ipv4 and ipv6 lines;\n'
    "# every other line is kept as it is.\n"
)


def debconf_write(cfg, answers: str) -> Ran:
    """What debian/postinst runs: the answers on stdin, never in argv or the environment."""
    proc = Updater(cfg=cfg, process=True)("debconf-write", stdin=answers, timeout=60)
    for secret in (CANARY, NEW):
        assert secret not in proc.stdout + proc.stderr
        assert secret.upper() not in proc.stdout + proc.stderr
    return proc


def answers(domains: str = "", token: str = "", ipv6: str = "off") -> str:
    """What postinst prints for debconf's answers (empty: keep the file's)."""
    return f"domains = {domains}\ntoken = {token}\nipv6 = {ipv6}\n"


def leftovers(directory) -> list[str]:
    return [p.name for p in directory.iterdir() if p.name.startswith(".duckdns.conf.")]


@pytest.mark.parametrize(
    ("before", "after"),
    [
        # Every key case the updater reads: only the answered lines change.
        (
            f"Domains = Pi\nTOKEN = {CANARY}\nIPv6 = off\nRefresh = 12h\n",
            f"Domains = Pi\ntoken = {NEW}\nipv6 = auto\nRefresh = 12h\n",
        ),
        (
            f"tOkEn={CANARY}\ndomains=pi\n",
            f"token = {NEW}\ndomains=pi\nipv6 = auto\n",
        ),
        # A byte order mark, CRLF, comments, quotes, blank lines and no final newline.
        (
            f'\ufeff# mine\r\n\r\nToken = "{CANARY}"\r\n  domains = pi  \r\n# end',
            f"\ufeff# mine\r\n\r\ntoken = {NEW}\r\n  domains = pi  \r\n# end\r\nipv6 = auto\r\n",
        ),
        # The old postinst's header and the keys debconf does not own, byte for byte.
        (
            "# duckdns configuration; see duckdns(1).\n"
            '# domains, token and ipv6 are rewritten by "dpkg-reconfigure duckdns";\n'
            f"domains = pi\ntoken = {CANARY}\nipv6 = off\n"
            "probe = router, cloudflare@1.1.1.1\nnotify = json://localhost/hook\n\n",
            "# duckdns configuration; see duckdns(1).\n"
            '# domains, token and ipv6 are rewritten by "dpkg-reconfigure duckdns";\n'
            f"domains = pi\ntoken = {NEW}\nipv6 = auto\n"
            "probe = router, cloudflare@1.1.1.1\nnotify = json://localhost/hook\n\n",
        ),
        # A key debconf owns set twice (the updater refuses that): the first is replaced,
        # the second dropped: dpkg-reconfigure repairs it.
        (
            f"domains = pi\ntoken = {CANARY}\nToken = {CANARY}\n",
            f"domains = pi\ntoken = {NEW}\nipv6 = auto\n",
        ),
        # ipv6 = auto (debconf's "yes") keeps an address the admin wrote.
        (
            f"domains = pi\ntoken = {CANARY}\nipv6 = 2001:db8::1\n",
            f"domains = pi\ntoken = {NEW}\nipv6 = 2001:db8::1\n",
        ),
    ],
    ids=["cases", "no-spaces", "bom-crlf-quotes", "old-header-other-keys", "twice", "address"],
)
def test_debconf_write_replaces_the_answered_lines_only(tmp_path, before, after):
    from duckdns import config

    cfg = tmp_path / "duckdns.conf"
    _raw(cfg, before, 0o644)  # readable by others (refused by a run): the rewrite fixes it
    proc = debconf_write(cfg, answers(token=f" {NEW.upper()} ", ipv6="auto"))
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
    assert cfg.read_bytes() == after.encode()
    assert cfg.stat().st_mode & 0o777 == 0o600 and leftovers(tmp_path) == []
    assert config.load(cfg).token == NEW


def test_debconf_write_normalises_answers_as_the_run_reads_them(tmp_path):
    cfg = tmp_path / "duckdns.conf"
    _raw(cfg, f"domains = old\ntoken = {CANARY}\nipv6 = 2001:db8::1\n")
    proc = debconf_write(cfg, answers("PiServer.duckdns.org., , cloud,piserver", "", "off"))
    assert proc.returncode == 0, proc.stderr
    assert cfg.read_text() == f"domains = piserver,cloud\ntoken = {CANARY}\nipv6 = off\n"


def test_debconf_write_creates_a_new_file_0600_owned_like_the_directory(tmp_path):
    directory = tmp_path / "duckdns"
    directory.mkdir(mode=0o700)
    os.chown(directory, 61234, 61234)  # systemd's dynamic user, after the first run
    cfg = directory / "duckdns.conf"
    assert debconf_write(cfg, answers("pi", NEW)).returncode == 0
    assert cfg.read_text() == f"{HEADER}domains = pi\ntoken = {NEW}\nipv6 = off\n"
    st = cfg.stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (61234, 61234, 0o600)
    assert leftovers(directory) == []


def test_debconf_write_without_domains_or_token_writes_nothing(tmp_path):
    cfg = tmp_path / "duckdns.conf"
    proc = debconf_write(cfg, answers("pi", ""))
    assert proc.returncode == 78
    assert "no token given" in proc.stderr and "nothing was written" in proc.stderr
    assert "dpkg-reconfigure duckdns" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_debconf_write_turns_the_recipe_into_the_native_form(tmp_path):
    """The curl config's url line and options mean nothing natively: a new file, keeping
    the recipe's token and domains where the answer is empty."""
    cfg = tmp_path / "duckdns.conf"
    recipe = f'url = "https://www.duckdns.org/update?domains=old&token={CANARY}&ip="\n-k\n'
    _raw(cfg, recipe)
    assert debconf_write(cfg, answers()).returncode == 0
    assert cfg.read_text() == f"{HEADER}domains = old\ntoken = {CANARY}\nipv6 = off\n"
    _raw(cfg, recipe)
    assert debconf_write(cfg, answers("new", NEW, "auto")).returncode == 0
    assert cfg.read_text() == f"{HEADER}domains = new\ntoken = {NEW}\nipv6 = auto\n"


def test_a_recipe_token_cannot_smuggle_a_line_in(tmp_path):
    """A %0A in the recipe's token decodes to a newline: it must not become a server line."""
    cfg = tmp_path / "duckdns.conf"
    smuggled = f"{CANARY}%0Aserver%3Dhttps://evil.example"
    recipe = f'url = "https://www.duckdns.org/update?domains=old&token={smuggled}&ip="\n'
    _raw(cfg, recipe)
    proc = debconf_write(cfg, answers("pi"))
    assert proc.returncode == 78 and "not a DuckDNS token" in proc.stderr
    assert "left unchanged" in proc.stderr and "evil" not in proc.stderr
    assert cfg.read_text() == recipe and leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("refresh = often\n", "line 3: refresh = 'often' is not a duration"),
        ("colour = blue\n", "line 3: unknown key"),
        ("refresh = 1h\nrefresh = 2h\n", "line 4: refresh is set a second time"),
        ("ipv4 = off\n", "ipv4 and ipv6 are both off"),
        ("this is not a line\n", "line 3: this line cannot be parsed"),
    ],
)
def test_a_result_the_updater_would_refuse_leaves_the_file_intact(tmp_path, extra, expected):
    cfg = tmp_path / "duckdns.conf"
    before = f"domains = pi\nToken = {CANARY}\n{extra}"
    _raw(cfg, before)
    proc = debconf_write(cfg, answers(token=NEW))
    assert proc.returncode == 78
    assert expected in proc.stderr and f"{cfg} is left unchanged" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert cfg.read_text() == before and leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (answers(token=NEW[:-1]), "the token answer: the token is not a DuckDNS token"),
        (answers(token=f"{NEW}x"), "not a DuckDNS token"),
        (answers("pi_server"), "the domains answer: the 1st name in domains holds a character"),
        (answers(CANARY), "shaped like a token"),
        (answers("pi,\u212a"), "the 2nd name in domains holds a character"),  # Kelvin sign
        (answers(ipv6="sometimes"), "the ipv6 answer: ipv6 = 'sometimes' is not valid"),
        # What no debconf answer holds: a control character, a key it does not ask.
        (f"token = {NEW}\x1b[2J\n", "the value of token holds a control character"),
        (f"token = {NEW}\rrefresh = 1s\n", "the value of token holds a control character"),
        (
            f"token = {NEW}\nrefresh = 1s\n",
            "line 2: only domains, token, publish, ipv4 and ipv6",
        ),
        (
            f"token = {NEW}\nserver = https://evil\n",
            "only domains, token, publish, ipv4 and ipv6 are",
        ),
        (f"{NEW}\n", "a token without 'token = ' in front"),
        (f"token = {NEW}\ntoken = {NEW}\n", "token is set a second time"),
    ],
)
def test_a_refused_answer_is_named_never_shown(tmp_path, text, expected):
    cfg = tmp_path / "duckdns.conf"
    before = f"domains = pi\ntoken = {CANARY}\n"
    _raw(cfg, before)
    proc = debconf_write(cfg, text)
    assert proc.returncode == 78 and expected in proc.stderr, proc.stderr
    assert "left unchanged" in proc.stderr
    assert cfg.read_text() == before and leftovers(tmp_path) == []


@pytest.mark.parametrize("kind", ["symlink", "directory", "not-utf8", "nul"])
def test_a_config_that_is_not_a_plain_text_file_is_not_replaced(tmp_path, kind):
    cfg = tmp_path / "duckdns.conf"
    target = tmp_path / "elsewhere"
    _raw(target, f"domains = pi\ntoken = {CANARY}\n")
    if kind == "symlink":
        cfg.symlink_to(target)
    elif kind == "directory":
        cfg.mkdir()
    else:
        cfg.write_bytes(b"domains = pi\xff\n" if kind == "not-utf8" else b"domains = pi\0\n")
    before = cfg.lstat()
    proc = debconf_write(cfg, answers(token=NEW))
    assert proc.returncode == 78 and "left unchanged" in proc.stderr, proc.stderr
    assert (cfg.lstat().st_ino, cfg.lstat().st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert NEW not in target.read_text() and leftovers(tmp_path) == []


def test_debconf_write_reads_stdin_only(runner):
    """No argument carries a value: the command line is exactly postinst's."""
    proc = runner()("debconf-write", "--token", NEW)
    assert proc.returncode == 2


def debconf_read(runner, cfg) -> Ran:
    return runner(cfg)("debconf-read")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            f"\ufeffDomains = PI,,cloud.duckdns.org.\r\nToKen = {CANARY.upper()}\r\nIPV6=Auto\r\n",
            "domains = pi,cloud\nipv4 = auto\nipv6 = auto\npublish = both\ntoken = yes\n",
        ),
        # The recipe's curl config: its url line gives the domains and the token.
        (
            f'url = "https://www.duckdns.org/update?domains=old&token={CANARY}&ip="\n-k\n',
            "domains = old\nipv4 = auto\nipv6 = off\npublish = ipv4\ntoken = yes\n",
        ),
        # A line the updater refuses elsewhere hides nothing; a bad value gives no default.
        (
            f"colour = blue\ndomains = pi_server\ntoken = {CANARY}x\nipv6 = 2001:DB8::1\n",
            "domains = \nipv4 = auto\nipv6 = 2001:db8::1\npublish = both\ntoken = no\n",
        ),
        ("# empty\n", "domains = \nipv4 = auto\nipv6 = off\npublish = ipv4\ntoken = no\n"),
    ],
    ids=["bom-case-crlf", "recipe", "refused", "empty"],
)
def test_debconf_read_gives_the_defaults_never_the_token(runner, tmp_path, text, expected):
    cfg = _raw(tmp_path / "duckdns.conf", text)
    proc = debconf_read(runner, cfg)  # the runner checks that the token is not in its output
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, expected, "")


def test_debconf_read_of_a_missing_file_is_a_refusal(runner, tmp_path):
    proc = debconf_read(runner, tmp_path / "nope.conf")
    assert proc.returncode == 78 and "does not exist" in proc.stderr


def test_debconf_write_keeps_every_other_line_of_any_file_the_updater_reads(tmp_path):
    """Property: whatever the key case, BOM, line endings, comments, blank lines and other
    keys of a file the updater accepts, the rewrite gives a file it accepts with the new
    token, and every line but the answered keys' is the same, in the same order."""
    pytest.importorskip("hypothesis")
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from duckdns import config

    def case(key: str):
        return st.lists(st.booleans(), min_size=len(key), max_size=len(key)).map(
            lambda ups: "".join(c.upper() if u else c for c, u in zip(key, ups, strict=True))
        )

    spaces = st.sampled_from(["", " ", "  ", "\t"])
    # Any text a UTF-8 file can hold: no line break, no lone surrogate (not encodable), no NUL
    # (read_text refuses a file holding one: it is not a text file).
    comment = st.text(
        st.characters(blacklist_characters="\n\r\0", blacklist_categories=("Cs",)), max_size=20
    ).map(lambda t: "#" + t)
    other = st.sampled_from(["refresh = 12h", "Probe = off", "IPV4 = auto", "router = 10.0.0.1"])

    @st.composite
    def files(draw):
        answered = [
            f"{draw(spaces)}{draw(case('domains'))}{draw(spaces)}= PiServer{draw(spaces)}",
            f"{draw(case('token'))}{draw(spaces)}={draw(spaces)}'{CANARY.upper()}'",
        ]
        if draw(st.booleans()):
            answered.append(f"{draw(case('ipv6'))} = {draw(st.sampled_from(['off', 'auto']))}")
        rest = draw(st.lists(st.one_of(comment, st.just(""), st.just("   ")), max_size=4))
        rest += draw(st.lists(other, max_size=3, unique=True))
        lines = draw(st.permutations(answered + rest))
        eol = draw(st.sampled_from(["\n", "\r\n"]))
        bom = draw(st.sampled_from(["", "\ufeff"]))
        return bom + eol.join(lines) + draw(st.sampled_from(["", eol]))

    def others(text: str) -> list[str]:
        return [
            raw
            for n, raw in enumerate(text.removeprefix("\ufeff").split("\n"), 1)
            if (line := config._read_line(n, raw)) is None or line.key not in config.ANSWERED
        ]

    cfg = tmp_path / "duckdns.conf"

    @settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
    @given(files(), st.sampled_from(["auto", "off"]))
    def check(before, ipv6):
        _raw(cfg, before)
        config.parse(before, str(cfg))  # the updater accepts it
        config.rewrite(str(cfg), config.read_answers(f"domains =\ntoken = {NEW}\nipv6 = {ipv6}"))
        after = cfg.read_bytes().decode()
        made = config.parse(after, str(cfg))
        assert (made.token, made.domains, made.ipv6) == (NEW, ("piserver",), ipv6)
        if not any(line.key == "ipv6" for line in config.read_lines(before)):
            # Appended: an unterminated last line gets the file's line ending first.
            before += "" if before.endswith("\n") else "\r\n" if "\r\n" in before else "\n"
        assert after.startswith("\ufeff") == before.startswith("\ufeff")
        assert [line for line in others(after) if line] == [line for line in others(before) if line]
        assert CANARY not in after.lower()

    check()


@pytest.mark.parametrize(
    ("publish", "ipv4", "ipv6"),
    [("ipv4", "auto", "off"), ("both", "auto", "auto"), ("ipv6", "off", "auto")],
)
def test_debconf_publish_answer_sets_ipv4_and_ipv6(runner, tmp_path, publish, ipv4, ipv6):
    """debconf's "Addresses to publish" (its Choices-C values) as the two keys; "auto"
    keeps an address the file's line names."""
    from duckdns import config

    cfg = _raw(tmp_path / "duckdns.conf", f"domains = pi\ntoken = {CANARY}\nipv4 = 192.0.2.1\n")
    proc = debconf_write(cfg, f"domains =\ntoken =\npublish = {publish}\n")
    assert proc.returncode == 0, proc.stderr
    made = config.load(str(cfg))
    assert (made.ipv4, made.ipv6) == ("192.0.2.1" if ipv4 == "auto" else ipv4, ipv6)
    assert debconf_read(runner, cfg).stdout.splitlines()[3] == f"publish = {publish}"


def test_debconf_publish_answer_outside_the_choices_is_refused(tmp_path):
    cfg = _raw(tmp_path / "duckdns.conf", f"domains = pi\ntoken = {CANARY}\n")
    proc = debconf_write(cfg, "domains =\ntoken =\npublish = true\n")
    assert proc.returncode == 78 and "publish is one of ipv4, both, ipv6" in proc.stderr
