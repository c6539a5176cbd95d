"""``duckdns status`` as its readers meet it: ``--check`` for a monitoring system (the
monitoring-plugins convention), a pipe closed early, local times, and the CLI's other
conventions (``-v`` says the decision, ``clear`` asks first).

The real process against the loopback DuckDNS look-alike, as the other tests run it.
The convention ``--check`` follows: the Monitoring Plugins Development Guidelines
(https://www.monitoring-plugins.org/doc/guidelines.html, "Plugin Return Codes" and
"Performance data"): exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN; one line of text, then
``|`` and ``'label'=value[UOM];[warn];[crit];[min];[max]`` items separated by spaces.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import signal
import subprocess

import pytest
from support.helpers import (
    CANARY,
    DEBIAN_PYTHON,
    PUBLIC,
    ROOT,
    assert_no_canary,
    state_of,
)

from duckdns import CheckStatus, config, status

WRONG = "11111111-2222-3333-4444-555555555555"
# One perf-data item of the guidelines: 'label'=value[UOM];[warn];[crit];[min];[max]
PERF_ITEM = re.compile(r"^'?[^'=]+'?=-?[\d.]+(s|%|B|KB|MB|TB|c)?(;[\d.:~@-]*){0,4}$")


def check(run) -> tuple[int, str, str]:
    """``duckdns status --check`` (``run``: the runner's): exit status, the plugin's line,
    stderr."""
    proc = run("status", "--check")
    lines = proc.stdout.splitlines()
    assert len(lines) == 1, proc.stdout  # a plugin's output is one line here
    return proc.returncode, lines[0], proc.stderr


def parse(line: str) -> tuple[str, str, list[str]]:
    """The state word, the text and the performance data items of a plugin's line."""
    m = re.fullmatch(r"DUCKDNS (OK|WARNING|CRITICAL|UNKNOWN) - ([^|]*?)(?: \| (.*))?", line)
    assert m, f"not the plugin format: {line!r}"
    perf = m[3].split() if m[3] else []
    for item in perf:
        assert PERF_ITEM.match(item), f"not a performance data item: {item!r}"
    return m[1], m[2], perf


# -- status --check ---------------------------------------------------------------------


def test_check_is_unknown_before_any_run(runner, duck, conf):
    code, line, err = check(runner(conf()))
    assert (code, err) == (3, "")
    word, text, _ = parse(line)
    assert word == "UNKNOWN" and "no update yet" in text
    assert duck.requests == []  # it only reads


def test_check_is_ok_after_a_good_update(runner, duck, conf):
    duck.client_ip = PUBLIC
    cfg = conf()
    assert runner(cfg)().returncode == 0
    code, line, err = check(runner(cfg))
    assert (code, err) == (0, "")
    word, text, perf = parse(line)
    assert word == "OK" and text.startswith(f"piserver: IPv4 {PUBLIC}, IPv6 -")
    stale = config.DEFAULT_REFRESH + status.STALE_MARGIN
    assert re.fullmatch(rf"last_success=\d+s;{stale};;0", perf[0]), perf
    assert perf[1] == "failures=0;;;0"
    assert len(duck.requests) == 1


def test_check_is_critical_after_a_ko(runner, duck, conf):
    cfg = conf(token=WRONG)
    assert runner(cfg)().returncode == 1
    code, line, _ = check(runner(cfg))
    word, text, perf = parse(line)
    assert (code, word) == (2, "CRITICAL"), line
    assert "KO" in text and "dpkg-reconfigure duckdns" in text
    assert "failures=1;;;0" in perf
    assert WRONG not in line  # the token of the config is masked anywhere, even a wrong one


def test_temporary_failures_warn_then_turn_critical_after_an_hour(runner, duck, conf):
    duck.default = "status:404"  # a temporary failure not retried within the run
    run = runner(conf())
    assert run().returncode == 75
    code, line, _ = check(run)
    word, text, _ = parse(line)
    assert (code, word) == (1, "WARNING"), line
    assert "HTTP 404" in text
    run.later(61 * 60)
    code, line, _ = check(run)
    assert (code, parse(line)[0]) == (2, "CRITICAL"), line


def test_no_success_for_longer_than_refresh_is_a_warning(runner, duck, conf):
    """A stopped timer leaves the state as it was: only the success's age can tell."""
    run = runner(conf())
    assert run().returncode == 0
    run.later(24 * 3600)
    code, line, _ = check(run)
    assert (code, parse(line)[0]) == (0, "OK"), line  # within refresh plus the margin
    run.later(2 * 3600)
    code, line, _ = check(run)
    word, text, _ = parse(line)
    assert (code, word) == (1, "WARNING"), line
    assert "duckdns.timer" in text


def test_a_failing_probe_is_a_warning(runner, duck, conf):
    """Updates still work (DuckDNS asked every 5 minutes), at a cost: worth a look."""
    cfg = conf(probe="cloudflare@127.0.0.1:9")  # nothing answers on the discard port
    assert runner(cfg)().returncode == 0
    assert state_of(cfg)["probe_state"] == "failing"
    code, line, _ = check(runner(cfg))
    word, text, _ = parse(line)
    assert (code, word) == (1, "WARNING") and "probe" in text, line


def test_a_config_it_cannot_use_is_unknown_not_a_config_error(runner, conf, tmp_path):
    """The convention's "plugin failure" is UNKNOWN (3): 78 would read as a verdict."""
    cfg = conf(mode=0o644)
    code, line, err = check(runner(cfg))
    word, text, perf = parse(line)
    assert (code, word, perf, err) == (3, "UNKNOWN", [], "")
    assert "chmod 600" in text or "0600" in text or "600" in text, text
    code, line, _ = check(runner(tmp_path / "missing.conf"))
    assert (code, parse(line)[0]) == (3, "UNKNOWN")


def test_the_plugin_line_holds_one_bar_only(runner, duck, conf):
    """A "|" in the text would start the performance data early."""
    saved = {**_fresh(), "failures": 2, "failing_since": 1000, "failure_kind": "error"}
    saved["last_error"] = "answer 'a|b'"
    verdict, text = _judge(saved, 86400, 1100)
    assert verdict == CheckStatus.WARNING and "a|b" in text
    cfg = conf()
    (cfg.parent / "state.json").write_text(json.dumps(saved))
    os.chmod(cfg.parent / "state.json", 0o600)
    code, line, _ = check(runner(cfg))
    assert line.count("|") == 1 and "a/b" in line, line


def _fresh() -> dict:
    from duckdns import state

    return dict(state.FIELDS)


def _judge(saved: dict, refresh: int, now: float):
    from duckdns import state

    return status.judge(state.parse(saved)[0], refresh, now)


def test_judge_thresholds():
    """The boundaries of each state, on the pure function (the times the process cannot
    reach without waiting)."""
    t0, refresh = 1_000_000, 86400
    ok = {**_fresh(), "last_success": t0, "ipv4": PUBLIC}
    stale = t0 + refresh + status.STALE_MARGIN
    assert _judge(ok, refresh, stale)[0] == CheckStatus.OK
    assert _judge(ok, refresh, stale + 1)[0] == CheckStatus.WARNING
    failing = {**ok, "failures": 3, "failing_since": t0, "failure_kind": "error"}
    hour = t0 + status.CRITICAL_AFTER
    assert _judge(failing, refresh, hour - 1)[0] == CheckStatus.WARNING
    assert _judge(failing, refresh, hour)[0] == CheckStatus.CRITICAL
    ko = {**failing, "failure_kind": "ko"}
    assert _judge(ko, refresh, t0 + 1)[0] == CheckStatus.CRITICAL
    for probe in ("failing", "distrusted"):
        probed = {**ok, "probe_state": probe}
        assert _judge(probed, refresh, t0 + 60)[0] == CheckStatus.WARNING
    assert _judge(_fresh(), refresh, t0)[0] == CheckStatus.UNKNOWN


# -- a closed pipe --------------------------------------------------------------------


def into_closed_pipe(*args: str) -> subprocess.CompletedProcess:
    """``duckdns ARGS`` writing to a pipe whose reader is already gone (deterministic:
    ``| true`` may or may not have exited when the first byte is written)."""
    read, write = os.pipe()
    os.close(read)
    try:
        proc = subprocess.run(
            [DEBIAN_PYTHON, "-m", "duckdns", *args],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "LANG": "C.UTF-8"},
            cwd=ROOT,
            timeout=60,
        )
    finally:
        os.close(write)
    assert_no_canary(proc.stderr)
    return proc


@pytest.mark.parametrize(
    "args",
    [["status"], ["status", "--json"], ["status", "--check"], ["update", "--dry-run"], ["--help"]],
    ids=" ".join,
)
def test_a_closed_pipe_ends_quietly_as_cat_does(runner, duck, conf, args):
    cfg = conf()
    runner(cfg)()
    proc = into_closed_pipe("--config", str(cfg), *args)
    assert proc.stderr == ""
    assert proc.returncode == -signal.SIGPIPE  # killed by SIGPIPE, as cat is: 141 in a shell


@pytest.mark.parametrize(
    "pipeline", ["status | true", "status --json | true", "status | head -1"], ids=str
)
def test_the_pipelines_users_type_print_nothing_on_stderr(runner, duck, conf, pipeline):
    cfg = conf()
    runner(cfg)()
    command, _, reader = pipeline.partition(" | ")
    script = (
        f'{DEBIAN_PYTHON} -m duckdns --config "$1" {command} | {reader}; '
        'echo "status=${PIPESTATUS[0]}"'
    )
    proc = subprocess.run(
        ["bash", "-c", script, "bash", str(cfg)],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "LANG": "C.UTF-8"},
        timeout=60,
    )
    assert proc.stderr == ""
    # 0 when the output fitted in the pipe before the reader left, else SIGPIPE's 141.
    assert proc.stdout.splitlines()[-1] in ("status=0", "status=141"), proc.stdout


# -- times, -v, clear -----------------------------------------------------------------


def test_status_shows_local_time_with_its_zone_and_json_keeps_unix_seconds(runner, duck, conf):
    """As systemctl and journalctl show times: the local zone (here a POSIX TZ string,
    UTC+5 named XYZ, so no tzdata is needed)."""
    cfg = conf()
    assert runner(cfg)().returncode == 0
    when = state_of(cfg)["last_run"]
    zone = datetime.timezone(datetime.timedelta(hours=5))
    local = datetime.datetime.fromtimestamp(when, zone).strftime("%Y-%m-%d %H:%M:%S")
    # The time zone is read once, at the interpreter's start: a process of its own.
    proc = runner(cfg, process=True)("status", env={"TZ": "XYZ-5"})
    row = next(line for line in proc.stdout.splitlines() if line.startswith("Last request:"))
    assert f"{local} XYZ" in row, row
    data = json.loads(runner(cfg)("status", "--json").stdout)
    assert data["last_run"] == when and isinstance(when, (int, float))


def test_verbose_update_with_nothing_to_do_says_the_decision_in_one_line(runner, duck, dns, probed):
    assert runner(probed)().returncode == 0
    proc = runner(probed)("-v", "update")
    assert (proc.returncode, proc.stdout) == (0, "")
    assert proc.stderr.splitlines() == [
        f"nothing changed (IPv4 {PUBLIC}, IPv6 -): no request sent"
    ], proc.stderr
    quiet = runner(probed)("update")
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, "", "")
    assert len(duck.requests) == 1


def test_clear_without_a_terminal_needs_yes(runner, duck, conf):
    cfg = conf()
    assert runner(cfg)().returncode == 0
    proc = runner(cfg)("clear")
    assert proc.returncode == 2
    assert "--yes" in proc.stderr and "piserver.duckdns.org" in proc.stderr
    assert len(duck.requests) == 1 and duck.ipv4  # nothing sent
    proc = runner(cfg)("clear", "--yes")
    assert proc.returncode == 0, proc.stderr
    assert duck.requests[-1]["query"]["clear"] == "true" and duck.ipv4 == ""


def on_terminal(cfg, answer: str) -> tuple[int, str]:
    """``duckdns clear`` with a pseudo-terminal as stdin and stderr, typing ``answer``."""
    import pty

    primary, secondary = pty.openpty()
    try:
        proc = subprocess.Popen(
            [DEBIAN_PYTHON, "-m", "duckdns", "--config", str(cfg), "clear"],
            stdin=secondary,
            stdout=subprocess.PIPE,
            stderr=secondary,
            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "LANG": "C.UTF-8"},
            cwd=ROOT,
        )
        os.close(secondary)
        shown = b""
        while b"[y/N]" not in shown:
            shown += os.read(primary, 1024)
        os.write(primary, answer.encode() + b"\n")
        out, _ = proc.communicate(timeout=60)
    finally:
        os.close(primary)
    assert CANARY.encode() not in shown
    assert b"piserver.duckdns.org" in shown
    return proc.returncode, out.decode()


def test_clear_on_a_terminal_asks_first(runner, duck, conf):
    cfg = conf()
    assert runner(cfg)().returncode == 0
    assert on_terminal(cfg, "n") == (0, "nothing cleared\n")
    assert len(duck.requests) == 1 and duck.ipv4
    code, _ = on_terminal(cfg, "y")
    assert code == 0 and duck.ipv4 == ""
    assert duck.requests[-1]["query"]["clear"] == "true"


def test_txt_clear_does_not_ask(runner, duck, conf):
    cfg = conf()
    proc = runner(cfg)("txt", "clear")
    assert proc.returncode == 0, proc.stderr
    assert duck.requests[-1]["query"]["clear"] == "true"


# -- the TLS failure names the store that was used ------------------------------------


def test_a_certificate_no_trusted_ca_signed_names_the_store_used(runner, duck, conf, tmp_path):
    from support.testca import make_ca

    proc = runner(conf(ca_bundle=None))()  # the test CA is not in the system's store
    assert proc.returncode == 75
    assert "issued by a CA that the system's CA store does not hold" in proc.stderr
    assert "ca_bundle" not in proc.stderr, proc.stderr
    other = make_ca(tmp_path / "other-ca", name="another")
    proc = runner(conf(ca_bundle=str(other.cert_path)))("update", "-v")  # -v: not the first failure
    assert proc.returncode == 75
    assert f"issued by a CA that ca_bundle ({other.cert_path}) does not hold" in proc.stderr
    assert duck.requests == []


# -- what the package only suggests ---------------------------------------------------


def without_dnspython(*args: str) -> subprocess.CompletedProcess:
    """``duckdns ARGS`` as on a system without python3-dnspython (only suggested): the
    import of ``dns`` fails as Python fails it for a missing module."""
    code = "import sys; sys.modules['dns'] = None; from duckdns.cli import main; sys.exit(main())"
    proc = subprocess.run(
        [DEBIAN_PYTHON, "-c", code, *args],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "LANG": "C.UTF-8"},
        cwd=ROOT,
        timeout=60,
    )
    assert_no_canary(proc.stdout, proc.stderr)
    return proc


@pytest.mark.parametrize(
    "args",
    [["verify"], ["txt", "set", "--for", "piserver.duckdns.org", "v"], ["txt", "wait", "v"]],
    ids=" ".join,
)
def test_a_command_that_needs_dnspython_says_which_package_to_install(duck, conf, args):
    proc = without_dnspython("--config", str(conf()), *args)
    assert proc.returncode == 78, proc.stderr
    assert proc.stderr.strip().endswith("install it with 'sudo apt install python3-dnspython'")
    assert "internal error" not in proc.stderr
    assert duck.requests == []


def test_updates_and_status_never_need_dnspython(duck, conf):
    cfg = conf()
    for args in (["update"], ["status", "--check"], ["check"], ["txt", "set", "v"]):
        proc = without_dnspython("--config", str(cfg), *args)
        assert proc.returncode == 0, (args, proc.stderr)
