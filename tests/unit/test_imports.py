"""What each command imports: ``requests`` (through duckdns.api) only when a request is sent,
dnspython (``dns``, through duckdns.resolve) only for ``verify`` and the ACME lookups.

Each costs more to import than the rest of the program; the timer's run where nothing
changed never loads them, nor argparse (scripts/bench measures the cost).
"""

from __future__ import annotations

import ast
import subprocess

import pytest
from support.helpers import DEBIAN_PYTHON, ROOT
from support.runner import Updater

# The heavy modules looked for among those a real run imported (tests/support/runner.py: those
# the interpreter's own start-up, site and .pth files had already loaded are not counted).
# typing costs a run 3 ms; collections' named tuples do what the package needs of it.
HEAVY = ("requests", "urllib3", "ssl", "argparse", "logging", "dns", "apprise", "typing")


def loaded(*args: str, env: dict | None = None) -> tuple[int, set[str]]:
    """Exit code and the heavy modules imported by ``duckdns ARGS`` (a process of its own)."""
    run = Updater(process=True)
    code, _, _ = run(*args, env=env, timeout=60, modules=True)
    return code, {m for m in HEAVY if m in run.modules}


def test_the_timers_unchanged_update_imports_neither_requests_nor_argparse(
    runner, duck, dns, probed
):
    """As the unit runs it: ``duckdns update``, the config in $STATE_DIRECTORY."""
    assert runner(probed)().returncode == 0  # the first run sends (and imports requests)
    code, modules = loaded("update", env={"STATE_DIRECTORY": str(probed.parent)})
    assert code == 0
    assert modules == set(), f"a run where nothing changed imported {sorted(modules)}"
    assert len(duck.requests) == 1


@pytest.mark.parametrize("argv", [["-q", "update", "-v"], ["update", "--verbose"]], ids=" ".join)
def test_other_unchanged_updates_do_not_import_requests(runner, duck, dns, probed, argv):
    assert runner(probed)().returncode == 0
    code, modules = loaded("--config", str(probed), *argv)
    assert code == 0
    assert not modules & {"requests", "urllib3", "ssl", "logging", "dns"}, sorted(modules)
    assert len(duck.requests) == 1


def test_an_unchanged_update_with_notify_set_imports_no_apprise(runner, duck, dns, probed):
    """Apprise is imported only to send: a run with nothing to tell never loads it."""
    with probed.open("a") as f:
        f.write("notify = json://127.0.0.1:9/hook-path-secret\n")
    assert runner(probed)().returncode == 0  # the first run: the address taken as told
    code, modules = loaded("update", env={"STATE_DIRECTORY": str(probed.parent)})
    assert code == 0
    assert modules == set(), f"a run where nothing changed imported {sorted(modules)}"


def test_notify_test_does_import_apprise(conf):
    """The other side: the helper sees Apprise when a message is sent."""
    code, modules = loaded("--config", str(conf(notify="json://127.0.0.1:9/x")), "notify", "--test")
    assert code == 75 and "apprise" in modules, sorted(modules)


def test_changed_update_does_import_requests(duck, dns, probed):
    """The other side of the checks here: the helper does see requests when it is used."""
    code, modules = loaded("--config", str(probed), "update")
    assert code == 0 and "requests" in modules


@pytest.mark.parametrize("command", ["check", "status", "backup-paths", "--help"])
def test_commands_without_network_never_import_requests(conf, command):
    code, modules = loaded("--config", str(conf()), command)
    assert code == 0
    # check loads the config's ca_bundle into an ssl context, as a request would.
    allowed = {"ssl"} if command == "check" else set()
    assert not (modules - allowed) & {"requests", "urllib3", "ssl", "logging", "dns"}, sorted(
        modules
    )


def test_verify_imports_dnspython(runner, duck, dns, probed):
    """The other side: the helper sees dnspython when a command asks with it. (dnspython 2.3's
    dns.query imports requests itself, for DNS over HTTPS, when it is installed.)"""
    assert runner(probed)().returncode == 0
    code, modules = loaded("--config", str(probed), "verify", "--resolver", "127.0.0.1:9")
    assert code == 75  # nothing answers on port 9
    assert "dns" in modules, sorted(modules)


def test_txt_set_without_for_does_not_import_dnspython(duck, conf):
    code, modules = loaded("--config", str(conf()), "txt", "set", "a-value")
    assert code == 0 and "dns" not in modules, sorted(modules)


def test_reading_a_config_loads_neither_a_dns_library_nor_requests(conf):
    """The probe targets are parsed in duckdns.config itself, their addresses checked by the
    probe's own small DNS client (one rule for a numeric address); dnspython stays out."""
    code = (
        f"import sys; sys.path.insert(0, {str(ROOT)!r}); from duckdns import config; "
        f"config.load({str(conf(probe='cloudflare@1.1.1.1'))!r}); "
        "print(sorted(m for m in sys.modules if m.startswith(('duckdns.', 'requests', 'dns'))))"
    )
    proc = subprocess.run([DEBIAN_PYTHON, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "['duckdns.config', 'duckdns.dnswire', 'duckdns.report']"


def test_the_timers_module_loads_no_feature_it_may_not_need():
    """The update's own imports: the heartbeat, notifications and the router load only when
    configured (duckdns.transition, duckdns.update import them where they are used), and
    the state's storage layer knows nothing of any feature."""
    code = (
        f"import sys; sys.path.insert(0, {str(ROOT)!r}); import duckdns.update, duckdns.state; "
        "print(sorted(m for m in sys.modules if m.startswith('duckdns.')))"
    )
    proc = subprocess.run([DEBIAN_PYTHON, "-c", code], capture_output=True, text=True, check=True)
    modules = set(ast.literal_eval(proc.stdout))
    assert not modules & {"duckdns.notify", "duckdns.heartbeat", "duckdns.router"}, modules
    assert not modules & {"duckdns.api", "duckdns.changed", "duckdns.contain"}, modules
