"""Cost per run (issue 7): what each command imports, and the probe rules test_decide leaves out.

The cheap paths (a timer run where nothing changed; check, status, backup-paths, --help) must
never import requests, and the timer's own command line must not even build argparse. The
fast command-line path must agree with argparse on every line it accepts (one source of truth).
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest
from dnsserver import DNSServer
from helpers import DEBIAN_PYTHON, ROOT, run_duckdns

from duckdns.cli import _quick_parse, build_parser

PUBLIC = "203.0.113.7"

# Runs the real entry point in-process, then reports which heavy modules got imported.
PROBE_MODULES = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
from duckdns.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
heavy = ('requests', 'urllib3', 'ssl', 'argparse', 'shutil', 'logging')
print('LOADED=' + ','.join(m for m in heavy if m in sys.modules))
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


@pytest.fixture
def dns():
    with DNSServer([f"whoami.cloudflare:CH:TXT:{PUBLIC}", f"myip.opendns.com:A:{PUBLIC}"]) as srv:
        yield srv


@pytest.fixture
def probed(conf, dns, duck):
    duck.client_ip = PUBLIC
    host, port = dns.address
    return conf(probe=f"cloudflare@{host}:{port}")


def update(cfg, *extra):
    return run_duckdns("--config", str(cfg), "update", *extra)


def state_of(cfg) -> dict:
    return json.loads((cfg.parent / "state.json").read_text())


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


def test_changed_update_does_import_requests(duck, dns, probed):
    """The other side of the check above: the helper does see requests when it is used."""
    code, modules = loaded("--config", str(probed), "update")
    assert code == 0 and "requests" in modules and "argparse" not in modules


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
