"""Cost per run (issue 7): what each command imports, and the probe rules test_decide leaves out.

The cheap paths (a timer run where nothing changed; check, status, backup-paths, --help) must
never import requests, and the timer's own command line must not even build argparse. The
fast command-line path must agree with argparse on every line it accepts (one source of truth).
"""

from __future__ import annotations

import ipaddress
import itertools
import json
import os
import random
import re
import subprocess
import sys
import time
from pathlib import PurePosixPath
from urllib.parse import urlsplit

import pytest
from helpers import DEBIAN_PYTHON, PUBLIC, ROOT, run_duckdns, state_of, update

from duckdns import config
from duckdns.cli import _quick_parse, build_parser
from duckdns.state import FIELDS

# Runs the real entry point in-process, then reports which heavy modules it imported (those
# the interpreter's own start-up, site and .pth files, had already loaded are not counted).
HEAVY = ("requests", "urllib3", "ssl", "argparse", "shutil", "logging")
# What a timer run (and check, status, backup-paths) no longer needs: together about 13 ms.
STDLIB_HEAVY = ("re", "pathlib", "json", "ipaddress", "urllib.parse", "enum")
PROBE_MODULES = f"""
import sys
before = set(sys.modules)
sys.path.insert(0, {str(ROOT)!r})
from duckdns.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
heavy = {HEAVY + STDLIB_HEAVY!r}
print('LOADED=' + ','.join(m for m in heavy if m in sys.modules and m not in before))
sys.exit(code)
"""


def loaded(*args: str) -> tuple[int, set[str]]:
    """Exit code and the heavy modules imported by ``duckdns ARGS``."""
    proc = subprocess.run(
        [DEBIAN_PYTHON, "-c", PROBE_MODULES, *args],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": str(ROOT)},
        timeout=60,
    )
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("LOADED="), proc.stdout + proc.stderr
    return proc.returncode, {m for m in last[len("LOADED=") :].split(",") if m}


def set_state(cfg, **values) -> None:
    state = state_of(cfg)
    state.update(values)
    (cfg.parent / "state.json").write_text(json.dumps(state))


# -- imports -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [["update"], ["-q", "update", "-v"], ["update", "--verbose"], ["-vv", "update"]],
    ids=" ".join,
)
def test_unchanged_update_imports_neither_requests_nor_argparse(duck, dns, probed, argv):
    assert update(probed).returncode == 0  # the first run sends (and imports requests)
    code, modules = loaded("--config", str(probed), *argv)
    assert code == 0
    assert modules == set(), f"a run where nothing changed imported {sorted(modules)}"
    assert len(duck.requests) == 1


@pytest.mark.parametrize("command", ["check", "status", "backup-paths"])
def test_commands_without_network_import_neither_re_nor_pathlib_nor_json(conf, command):
    cfg = conf()
    state = dict(FIELDS, last_run=1, last_success=1, ipv4=PUBLIC, last_result="nochange")
    (cfg.parent / "state.json").write_text(json.dumps(state, indent=1, sort_keys=True))
    code, modules = loaded("--config", str(cfg), command)
    assert code == 0
    assert modules == set(), f"duckdns {command} imported {sorted(modules)}"


def test_status_reads_the_state_without_json(conf):
    cfg = conf()
    state = dict(FIELDS, ipv4=PUBLIC, txt="caf\u00e9", last_error="x" * 3)
    (cfg.parent / "state.json").write_text(json.dumps(state))
    proc = run_duckdns("--config", str(cfg), "status")
    assert proc.returncode == 0 and proc.stderr == ""
    assert f"IPv4 at DuckDNS: {PUBLIC}" in proc.stdout
    assert "TXT:             caf\u00e9" in proc.stdout


def test_changed_update_does_import_requests(duck, dns, probed):
    """The other side of the check above: the helper does see requests when it is used."""
    code, modules = loaded("--config", str(probed), "update")
    assert code == 0 and "requests" in modules and "argparse" not in modules
    assert "json" in modules, "the state is written with json"


@pytest.mark.parametrize("command", ["check", "status", "backup-paths", "--help"])
def test_commands_without_network_never_import_requests(conf, command):
    code, modules = loaded("--config", str(conf()), command)
    assert code == 0
    assert not modules & {"requests", "urllib3", "ssl", "logging"}, sorted(modules)
    assert "shutil" not in modules, "argparse's HelpFormatter must not pull in shutil"
    if command != "--help":
        assert "argparse" not in modules


# -- the fast command-line path agrees with argparse -------------------------------------------

QUICK = [
    ["update"],
    ["-v", "update"],
    ["update", "-q"],
    ["-vv", "--config", "/x/y.conf", "update", "--force"],
    ["--config=/a", "update", "--dry-run", "--force"],
    ["check"],
    ["status", "--json"],
    ["backup-paths"],
    ["clear", "-q", "-v"],
    ["--config", "a", "check", "--config", "b"],
    ["-vq", "update"],
    ["update", "--verbose", "--quiet"],
    ["--config", "update", "check"],
]
NOT_QUICK = [
    [],
    ["update", "--forc"],
    ["--conf", "a", "update"],
    ["--help"],
    ["update", "-h"],
    ["--version"],
    ["txt", "set", "x"],
    ["verify"],
    ["--force", "update"],
    ["update", "x"],
    ["update", "check"],
    ["--config"],
    ["--config", "-x", "update"],
    ["--config=", "update"],
    ["--", "update"],
]


@pytest.mark.parametrize("argv", QUICK, ids=" ".join)
def test_quick_parse_matches_argparse(argv):
    quick = _quick_parse(argv)
    assert quick is not None
    assert vars(quick) == vars(build_parser().parse_args(argv))


@pytest.mark.parametrize("argv", NOT_QUICK, ids=lambda a: " ".join(a) or "(empty)")
def test_anything_else_goes_to_argparse(argv):
    assert _quick_parse(argv) is None


# -- issue 7 probe rules not covered by test_decide --------------------------------------------


def test_the_probe_never_chooses_the_address_sent(duck, dns, probed):
    """A changed (or lying) probe answer triggers an update, but ip= stays empty."""
    update(probed)
    dns.clear()
    dns.add("whoami.cloudflare", "TXT", "198.51.100.20", rclass="CH")
    dns.behaviour = "lie"
    update(probed)
    assert len(duck.requests) == 2
    assert [r["query"]["ip"] for r in duck.requests] == ["", ""]
    assert state_of(probed)["ipv4"] == PUBLIC, "the state records what DuckDNS saw"


def test_distrust_is_reported_once_not_every_run(duck, dns, probed):
    dns.behaviour = "lie"
    assert "address probe answered" in update(probed).stderr
    for _ in range(2):
        proc = update(probed)
        assert proc.returncode == 0 and proc.stderr == ""
    assert len(duck.requests) == 3


def test_literal_ipv4_is_never_probed(duck, dns, conf):
    host, port = dns.address
    cfg = conf(ipv4="203.0.113.9", probe=f"cloudflare@{host}:{port}")
    update(cfg)
    update(cfg)
    assert dns.queries == [], "nothing to detect: the admin chose the address"
    assert len(duck.requests) == 1
    assert duck.requests[0]["query"]["ip"] == "203.0.113.9"


def test_dry_run_neither_probes_nor_sends(duck, dns, probed):
    proc = update(probed, "--dry-run")
    assert proc.returncode == 0 and "ip=&" in proc.stdout
    assert dns.queries == [] and duck.requests == []


def test_no_refresh_before_the_period(duck, dns, probed):
    update(probed)
    set_state(probed, last_success=int(time.time()) - 23 * 3600)
    update(probed)
    assert len(duck.requests) == 1


def test_clock_gone_backwards_means_update(duck, dns, probed):
    update(probed)
    set_state(probed, last_success=int(time.time()) + 3600)
    update(probed)
    assert len(duck.requests) == 2


def test_nothing_changed_leaves_the_state_file_alone(duck, dns, probed):
    """The probe ran, nothing was sent: no rewrite (and no fsync) of state.json either."""
    update(probed)
    before = os.stat(probed.parent / "state.json")
    update(probed)
    after = os.stat(probed.parent / "state.json")
    assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns)
    assert len(dns.queries) == 2


# -- the hand-written checks accept and refuse what the parsers they replaced did ---------------
#
# A timer run must not import re, pathlib, ipaddress, urllib.parse or json (see
# duckdns/config.py and duckdns/state.py). The references below are the implementations
# they replaced, kept here verbatim, and compared on chosen and random inputs.

REF_TOKEN = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
REF_SUBNAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
REF_DURATION = re.compile(r"^(\d+)\s*([smhd]?)$")
REF_CURL_LINE = re.compile(r"^(?:--)?([A-Za-z0-9_.-]+)\s*(?:[=:]\s*|\s+|$)(.*)$")
REF_NATIVE_LINE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$")


def outcome(function, *args):
    try:
        return "ok", function(*args)
    except config.ConfigError as exc:
        return "error", str(exc)
    except ValueError as exc:  # urlsplit's "Invalid IPv6 URL": an internal error, before and now
        return "ValueError", str(exc)


def ref_address(value: str, version: int, key: str, where: str) -> str:
    value = value.strip().lower()
    if value in ("auto", "off"):
        return value
    try:
        addr = ipaddress.ip_address(value)
    except ValueError:
        addr = None
    if addr is None or addr.version != version:
        raise config.ConfigError(
            f"{where}: {key} = {value!r} is not valid: use 'auto', 'off' or an IPv{version} address"
        )
    return str(addr)


def ref_server(value: str, where: str) -> str:
    value = value.strip().rstrip("/")
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.hostname:
        raise config.ConfigError(
            f"{where}: server {value!r} is refused: only https:// URLs are accepted "
            f"(default {config.DEFAULT_SERVER})"
        )
    if parts.query or parts.fragment or parts.username or parts.password:
        raise config.ConfigError(
            f"{where}: server must be a plain base URL such as {config.DEFAULT_SERVER}"
        )
    return value


def ref_duration(value: str) -> int | None:
    m = REF_DURATION.match(value.strip().lower())
    if not m or int(m.group(1)) == 0:
        return None
    return int(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def random_texts(alphabet, count, longest, seed=7):
    rng = random.Random(seed)
    for _ in range(count):
        yield "".join(rng.choice(alphabet) for _ in range(rng.randint(0, longest)))


TRICKY = ["\u0660", "\u00a0", "\u212a", "\u0130", "\x1c", "\t", " ", "\x00", "\u2028"]


def test_token_check_matches_the_old_expression():
    token = "c0ffee00-dead-beef-0000-123456789abc"
    texts = [token, token.upper(), f" {token}\t", token[:-1], token + "0", token.replace("-", "")]
    texts += [token[:i] + c + token[i + 1 :] for i in range(36) for c in "-g0F\u0660 "]
    texts += random_texts(list("0aF-g ") + TRICKY, 3000, 40)
    for text in texts:
        ok = outcome(config.check_token, text, "w")[0] == "ok"
        assert ok == bool(REF_TOKEN.match(text.strip())), repr(text)


def test_subname_check_matches_the_old_expression():
    texts = ["a", "a" * 63, "a" * 64, "-a", "a-", "a-b", "a--b", "0", "pi_server", "pi.x"]
    texts += random_texts(list("az09-._A") + TRICKY, 5000, 8)
    texts += ["a" + "-" * n + "b" for n in range(0, 63)]
    for text in texts:
        name = text.strip().lower().rstrip(".")
        if not name or name.endswith(".duckdns.org"):
            continue
        ok = outcome(config.parse_domains, text, "w")[0] == "ok"
        assert ok == bool(REF_SUBNAME.match(name)), repr(text)


def test_duration_parser_matches_the_old_expression():
    texts = ["24h", "90m", "3600s", "1d", "0", "0h", "00", "1", " 2 H ", "1 d", "1dd", "h", ""]
    texts += ["\u0661\u0662h", "1\u00a0m", "1\tm", "-1h", "+1h", "1.5h", "1 2h"]
    texts += random_texts(list("01smhdx ") + TRICKY, 5000, 6)
    for text in texts:
        got = outcome(config.parse_duration, text, "w")
        expected = ref_duration(text)
        assert (got[1] if got[0] == "ok" else None) == expected, repr(text)


def test_line_splitters_match_the_old_expressions():
    texts = [
        "url = x",
        "url=x",
        "url:x",
        "url x",
        "url",
        "--url x",
        "--url=x",
        "---x",
        "--",
        "-- x",
    ]
    texts += ["--=x", "url = = x", "url ==x", "url\t:\t x", "URL=x", "url/x", 'url"x', "url.x=1"]
    texts += ["key = value", "key=", "_k=v", "1k=v", "k  =  v = w", "k v", "k\u00a0=\u00a0v"]
    texts += random_texts(list('uUrl1_.-=: "x') + TRICKY, 20000, 10)
    for text in texts:
        m = REF_CURL_LINE.match(text)
        assert config._split_line(text) == (m and (m.group(1).lower(), m.group(2))), repr(text)
        m = REF_NATIVE_LINE.match(text)
        assert config._split_native(text) == (m and (m.group(1), m.group(2))), repr(text)


def address_samples():
    rng = random.Random(7)
    samples = ["1.2.3.4", "01.2.3.4", "1.2.3", "256.1.1.1", "0.0.0.0", " 192.0.2.1 ", "1.2.3.4.5"]
    samples += ["::", "::1", "1::", "2001:db8::1", "2001:DB8::1", "2001:0db8::0001", "fe80::1%eth0"]
    samples += [
        "::ffff:1.2.3.4",
        "::ffff:102:304",
        "::1.2.3.4",
        "64:ff9b::1.2.3.4",
        "1:2:3:4:5:6:7:8",
    ]
    samples += ["1:2:3:4:5:6:7::", "::2:3:4:5:6:7:8", "1:2:3:4::5:6:7:8", "1:0:0:2:0:0:0:3", "x::1"]
    samples += [
        "1:0:0:2:0:0:3:4",
        "0:0:1::",
        "::0:1",
        "auto",
        "OFF",
        "",
        "1.2.3.4\x00",
        "\u0661.2.3.4",
    ]
    for _ in range(3000):
        words = [rng.choice([0, 0, 0, 1, 0xFFFF, rng.randrange(0x10000)]) for _ in range(8)]
        full = ":".join(f"{w:x}" for w in words)
        samples += [full, str(ipaddress.IPv6Address(full)), full.upper()]
        samples.append(".".join(str(rng.choice([0, 1, 255, rng.randrange(256)])) for _ in range(4)))
    return samples


def test_address_check_matches_ipaddress():
    for value in address_samples():
        for version, key in ((4, "ipv4"), (6, "ipv6")):
            args = (value, version, key, "w")
            assert outcome(config._address, *args) == outcome(ref_address, *args), repr(value)


def test_server_check_matches_urlsplit():
    samples = [config.DEFAULT_SERVER, "https://localhost:8443", "https://127.0.0.1:1/", "http://x"]
    samples += [
        "https://",
        "https://:443",
        "https://h:",
        "https://h:x",
        "https://u@h",
        "https://h?x",
    ]
    samples += ["https://h#f", "https://[::1]:8443", "HTTPS://h", "https://h/a/b/", "https://h/%41"]
    samples += [
        "https://h/a b",
        " https://h ",
        "https://h\t/",
        "https:///x",
        "https://h//x",
        "ftp://h",
    ]
    samples += ["https://h:99999", "https://-/", "https://h.example/dyn/duckdns"]
    samples += random_texts(list("https:/.@?#[]:1ah-%") + TRICKY, 5000, 16)
    samples += ["https://" + t for t in random_texts(list("ah1.-:/_~@?#[]% ") + TRICKY, 5000, 12)]
    for value in samples:
        assert outcome(config._server, value, "w") == outcome(ref_server, value, "w"), repr(value)


def test_state_reader_matches_json_loads():
    from duckdns.state import _loads

    samples = [b"{}", b'{"a": 1}', b'{"a": 1} x', b'{"a":', b"[1]", b"{} \n\t\r", b"{}\x0c"]
    samples += [b'\xef\xbb\xbf{"a": 1}', '{"a": 1}'.encode("utf-16"), '{"a":1}'.encode("utf-16-le")]
    samples += ['{"a":1}'.encode("utf-32"), b'{"\xff": 1}', b'{"a": "\xed\xa0\x80"}', b'{"a": NaN}']
    samples += [
        b'{"a": "\\ud83d\\ude00", "b": [1, 2.5e3, true, null, {"c": -0}]}',
        b'{"a": "\x01"}',
    ]
    samples += [b'{"a": 1, "a": 2}', b"{'a': 1}", b'{"a": 1,}', b"", b"{", b'{"a": 1e999}']
    samples += [(json.dumps(dict(FIELDS), indent=1, sort_keys=True) + "\n").encode()]
    samples += [t.encode() for t in random_texts(list('{}[]":,1a \\nu') + ["\u00e9"], 5000, 12)]
    for raw in samples:
        try:
            expected = ("ok", json.dumps(json.loads(raw)))
        except ValueError as exc:
            expected = ("error", type(exc), str(exc))
        try:
            got = ("ok", json.dumps(_loads(raw)))
        except ValueError as exc:
            got = ("error", type(exc), str(exc))
        assert got == expected, raw


def test_path_strings_are_what_pathlib_gives():
    from duckdns.fsutil import join, normpath, parent

    for parts in itertools.product(["/", "a", ".", "..", "b"], repeat=6):
        text = "".join(parts)
        path = PurePosixPath(text)
        assert normpath(text) == str(path), text
        assert parent(normpath(text)) == str(path.parent), text
        assert join(normpath(text), "state.json") == str(path / "state.json"), text
    assert normpath(PurePosixPath("/x//y/")) == "/x/y"


# -- --help without argparse: the stored text is the parser's ----------------------------------


def test_stored_help_is_what_the_parser_prints(tmp_path, monkeypatch):
    """duckdns/helptext.py must be regenerated whenever the parser changes: run
    /usr/bin/python3 -c 'from duckdns import cli; cli.write_helptext()'"""
    from duckdns import cli, helptext

    monkeypatch.setenv("COLUMNS", "80")
    assert cli._help_width() == helptext.WIDTH
    if sys.version_info[:2] != helptext.PYTHON:
        # Another Python's argparse (3.13 on Debian 13) lays the help out differently:
        # the stored text is not used there (the tests below compare with argparse).
        assert cli._stored_help() is None
        return
    assert build_parser().format_help() == helptext.MAIN
    assert cli._stored_help() == helptext.MAIN
    fresh = tmp_path / "helptext.py"
    cli.write_helptext(str(fresh))
    assert fresh.read_text() == (ROOT / "duckdns" / "helptext.py").read_text()


# What argparse itself prints at a given width.
PARSER_HELP = """
import argparse, sys
from duckdns import cli
cli._help_width = lambda: int(sys.argv[1])
try:
    cli.build_parser().parse_args(["--help"])
except SystemExit as exc:
    assert exc.code == 0
"""


@pytest.mark.parametrize("option", ["--help", "-h"])
@pytest.mark.parametrize("columns", [None, "80", "100", "60"])
def test_help_output_is_argparse_output(option, columns):
    env = {"COLUMNS": columns} if columns else {}
    proc = run_duckdns(option, env=env)
    width = int(columns or 80) - 2
    expected = subprocess.run(
        [DEBIAN_PYTHON, "-c", PARSER_HELP, str(width)],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT)},
        check=True,
    ).stdout
    assert proc.returncode == 0 and proc.stderr == ""
    assert proc.stdout == expected


@pytest.mark.parametrize(("columns", "argparse_loaded"), [("80", False), ("100", True)])
def test_help_at_80_columns_does_not_import_argparse(columns, argparse_loaded):
    proc = subprocess.run(
        [DEBIAN_PYTHON, "-c", PROBE_MODULES, "--help"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "COLUMNS": columns},
        timeout=60,
    )
    assert proc.returncode == 0
    modules = set(proc.stdout.strip().splitlines()[-1][len("LOADED=") :].split(",")) - {""}
    from duckdns import helptext

    if sys.version_info[:2] != helptext.PYTHON:
        argparse_loaded = True  # the stored text is for another Python's argparse
    assert ("argparse" in modules) == argparse_loaded
