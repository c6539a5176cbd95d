"""duckdns.changed: the change queue the updater writes, and the hook runner that reads it.

The runner is run for real (hooks are real executables in a temporary directory); the
booted proof, with systemd's path unit and the packaged units, is tests/system/test_events.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import time
from pathlib import Path

import pytest
from support.helpers import CANARY, ROOT

from duckdns import changed

NEW, OLD = ("198.51.100.20", "2d00:10:20:31::7"), ("203.0.113.7", "")


def hook(directory: Path, name: str, body: str, mode: int = 0o755) -> Path:
    directory.mkdir(exist_ok=True)
    path = directory / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(mode)
    return path


def queued(state_dir: Path) -> list[Path]:
    return sorted((state_dir / changed.QUEUE).glob("*"))


def test_record_queues_one_whole_file_without_secrets(tmp_path):
    changed.record(str(tmp_path / "state.json"), ("piserver", "cloud"), OLD, NEW)
    (event,) = queued(tmp_path)
    assert stat.S_IMODE(event.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / changed.QUEUE).stat().st_mode) == 0o700
    content = json.loads(event.read_text())
    assert content["domains"] == "piserver,cloud"
    assert (content["ipv4"], content["ipv6"]) == NEW
    assert (content["old_ipv4"], content["old_ipv6"]) == OLD
    # Nothing staged is left beside the state, nothing half-written in the queue.
    assert sorted(p.name for p in tmp_path.iterdir()) == [changed.QUEUE]


def test_the_queue_keeps_the_newest_changes_only(tmp_path):
    for i in range(changed.MAX_QUEUED + 3):
        changed.record(str(tmp_path / "state.json"), ("piserver",), OLD, (f"198.51.100.{i}", ""))
    events = [json.loads(p.read_text())["ipv4"] for p in queued(tmp_path)]
    assert events == [f"198.51.100.{i}" for i in range(3, changed.MAX_QUEUED + 3)]


def test_a_change_that_cannot_be_queued_is_one_warning(tmp_path, capsys):
    state_dir = tmp_path / "ro"
    state_dir.mkdir()
    (state_dir / changed.QUEUE).write_text("a file where the queue should be")
    changed.record(str(state_dir / "state.json"), ("piserver",), OLD, NEW)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot queue this change" in err, err


GOOD = {"domains": "piserver", "ipv4": "1.2.3.4", "ipv6": "", "old_ipv4": "", "old_ipv6": ""}


@pytest.mark.parametrize(
    "event",
    [
        {**GOOD, "domains": "piserver;reboot"},
        {**GOOD, "ipv4": "$(reboot)"},
        {**GOOD, "ipv4": "2d00::1"},
        {**GOOD, "ipv6": "1.2.3.4"},
        {**GOOD, "ipv4": 7},
        {"domains": "piserver", "ipv4": "1.2.3.4"},
        ["piserver"],
    ],
    ids=["domain", "shell", "v6-as-v4", "v4-as-v6", "number", "missing", "list"],
)
def test_parse_accepts_only_what_the_updater_writes(event):
    assert changed.parse(json.dumps(GOOD).encode())["DUCKDNS_IPV4"] == "1.2.3.4"
    with pytest.raises(ValueError) as caught:
        changed.parse(json.dumps(event).encode())
    assert str(caught.value) == "not a change the updater wrote"


def run_once(tmp_path, timeout: float = changed.HOOK_TIMEOUT) -> int:
    return changed.run(str(tmp_path / changed.QUEUE), str(tmp_path / "changed.d"), timeout)


def test_hooks_run_once_per_change_in_run_parts_order_with_the_change(tmp_path, monkeypatch):
    log = tmp_path / "log"
    body = f'echo "$0 $DUCKDNS_DOMAINS $DUCKDNS_IPV4 $DUCKDNS_OLD_IPV4 $DUCKDNS_IPV6" >> {log}'
    hooks_dir = tmp_path / "changed.d"
    for name in ("20-second", "10-first", "30_third"):
        hook(hooks_dir, name, body)
    # Not run, as run-parts would not: a backup, a dpkg leftover, a dotted name, a file
    # that is not executable.
    for name in ("40-backup~", "50-x.dpkg-old", "60-x.sh"):
        hook(hooks_dir, name, f"echo {name} >> {log}")
    hook(hooks_dir, "70-not-executable", f"echo 70 >> {log}", mode=0o644)
    monkeypatch.setenv("DUCKDNS_TEST_SECRET", CANARY)

    changed.record(str(tmp_path / "state.json"), ("piserver",), OLD, NEW)
    assert run_once(tmp_path) == 1
    assert queued(tmp_path) == []
    lines = log.read_text().splitlines()
    assert [line.split()[0].rsplit("/", 1)[1] for line in lines] == [
        "10-first",
        "20-second",
        "30_third",
    ]
    assert lines[0].split()[1:] == ["piserver", NEW[0], OLD[0], NEW[1]]
    assert run_once(tmp_path) == 0  # the change was taken: nothing runs twice
    assert len(log.read_text().splitlines()) == 3


def test_a_hooks_environment_holds_the_change_and_nothing_of_the_runners(tmp_path, monkeypatch):
    dump = tmp_path / "env"
    hook(tmp_path / "changed.d", "env", f"env > {dump}")
    monkeypatch.setenv("DUCKDNS_TEST_SECRET", CANARY)
    monkeypatch.setenv("HEARTBEAT_URL", "https://hc-ping.example/" + CANARY)
    changed.record(str(tmp_path / "state.json"), ("piserver",), OLD, NEW)
    run_once(tmp_path)
    env = dict(line.split("=", 1) for line in dump.read_text().splitlines() if "=" in line)
    assert CANARY not in dump.read_text()
    duck = {k: v for k, v in env.items() if k.startswith("DUCKDNS_")}
    assert duck == {
        "DUCKDNS_DOMAINS": "piserver",
        "DUCKDNS_IPV4": NEW[0],
        "DUCKDNS_IPV6": NEW[1],
        "DUCKDNS_OLD_IPV4": OLD[0],
        "DUCKDNS_OLD_IPV6": "",
    }
    assert set(env) - set(duck) <= {"PATH", "HOME", "LANG", "PWD", "SHLVL", "_"}, env


def test_a_failing_hook_is_one_error_and_the_others_still_run(tmp_path, capsys):
    log = tmp_path / "log"
    hook(tmp_path / "changed.d", "10-fails", "exit 3")
    hook(tmp_path / "changed.d", "20-works", f"echo ran >> {log}")
    changed.record(str(tmp_path / "state.json"), ("piserver",), OLD, NEW)
    assert run_once(tmp_path) == 1
    assert log.read_text() == "ran\n"
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "10-fails exited with status 3" in err[0], err


def test_a_hanging_hook_is_stopped_with_what_it_started(tmp_path, capsys):
    pidfile = tmp_path / "child"
    log = tmp_path / "log"
    # It ignores SIGTERM and leaves a child behind that would outlive it.
    hook(tmp_path / "changed.d", "10-hangs", f"trap '' TERM; sleep 300 & echo $! > {pidfile}; wait")
    hook(tmp_path / "changed.d", "20-works", f"echo ran >> {log}")
    changed.record(str(tmp_path / "state.json"), ("piserver",), OLD, NEW)
    began = time.monotonic()
    assert run_once(tmp_path, timeout=1) == 1
    assert time.monotonic() - began < 1 + changed.KILL_GRACE + 3
    assert log.read_text() == "ran\n"
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "10-hangs was still running after 1 s" in err[0], err
    child = int(pidfile.read_text())
    for _ in range(50):  # reaped by init once killed
        if not Path(f"/proc/{child}").exists() or "Z" in _proc_state(child):
            break
        time.sleep(0.1)
    assert not Path(f"/proc/{child}").exists() or "Z" in _proc_state(child)


def _proc_state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return "Z"


def test_the_runner_follows_no_link_and_quotes_nothing_it_read(tmp_path, capsys):
    """The queue's writer is a less privileged user: a link to a root-only file is removed,
    not read, and a bad file's content never reaches the journal."""
    ran = tmp_path / "ran"
    hook(tmp_path / "changed.d", "hook", f"echo ran >> {ran}")
    queue = tmp_path / changed.QUEUE
    queue.mkdir()
    secret = tmp_path / "root-only.json"
    secret.write_text(json.dumps({"domains": "piserver", "ipv4": "1.2.3.4"}) + CANARY)
    (queue / "1.json").symlink_to(secret)
    (queue / "2.json").write_text(f'{{"domains": "{CANARY}"}}')
    # Whatever else is there goes too (systemd's DirectoryNotEmpty= counts it): a dot file,
    # a directory holding a link to a directory that must survive.
    (queue / ".hidden").write_text("x")
    (queue / "3.d").mkdir()
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "file").write_text("x")
    (queue / "3.d" / "link").symlink_to(keep)
    assert run_once(tmp_path) == 0
    assert not ran.exists()
    assert os.listdir(queue) == [] and secret.exists() and (keep / "file").exists()
    err = capsys.readouterr().err
    assert CANARY not in err
    assert err.count("ignored and removed") == 4, err


def test_no_queue_no_run(tmp_path):
    hook(tmp_path / "changed.d", "hook", "exit 0")
    assert run_once(tmp_path) == 0


def test_the_update_queues_a_change_only_when_duckdns_took_a_new_address(
    conf, duck, runner, tmp_path
):
    duck.client_ip = OLD[0]
    cfg = conf()
    run = runner(cfg)
    assert run()[0] == 0  # the first update: from nothing to OLD
    assert len(queued(cfg.parent)) == 1
    run.later(60)
    assert run()[0] == 0  # nothing changed: nothing queued
    assert len(queued(cfg.parent)) == 1
    duck.client_ip = NEW[0]
    run.later(60)
    assert run("update", "--force")[0] == 0
    events = [json.loads(p.read_text()) for p in queued(cfg.parent)]
    assert [(e["old_ipv4"], e["ipv4"]) for e in events] == [("", OLD[0]), (OLD[0], NEW[0])]
    assert all(CANARY not in p.read_text() for p in queued(cfg.parent))


def test_main_takes_a_time_limit_and_refuses_a_bad_one(tmp_path, capsys):
    log = tmp_path / "log"
    hook(tmp_path / "changed.d", "hook", f"echo ran >> {log}")
    changed.record(str(tmp_path / "state.json"), ("piserver",), OLD, NEW)
    args = [str(tmp_path / changed.QUEUE), str(tmp_path / "changed.d")]
    assert changed.main(["--timeout", "0", *args]) == 2
    assert changed.main(["--timeout", "ten", *args]) == 2
    assert "--timeout takes a number of seconds" in capsys.readouterr().err
    assert not log.exists()
    assert changed.main(["--timeout", "5", *args]) == 0
    assert log.read_text() == "ran\n"


def test_the_worked_examples_in_the_man_page_are_hooks_that_would_run(tmp_path):
    """Each example of duckdns(1) is a shell script whose name run-parts (and the runner)
    accepts, that dash parses and shellcheck finds nothing in."""
    page = (ROOT / "man/duckdns.1").read_text()
    blocks = re.findall(r'^\.SS "Example: [^"]*"\n.*?^\.EX\n(.*?)^\.EE', page, re.M | re.S)
    assert len(blocks) == 2
    for block in blocks:
        text = block.replace("\\-", "-").replace("\\e", "\\").replace("\\(aq", "'")
        name = re.search(r"^# /etc/duckdns/changed\.d/(\S+)", text, re.M).group(1)
        assert changed.HOOK_NAME.match(name), name
        script = tmp_path / name
        script.write_text(text)
        subprocess.run(["dash", "-n", str(script)], check=True)
        if shutil.which("shellcheck"):
            subprocess.run(["shellcheck", "-s", "sh", str(script)], check=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to hand files to another user")
def test_a_queue_made_by_root_belongs_to_the_services_user(tmp_path):
    """Run by hand as root, record leaves the queue and its file to the state directory's
    owner (the service's dynamic user), as state.atomic_write does for state.json."""
    os.chown(tmp_path, 61234, 61234)
    changed.record(str(tmp_path / "state.json"), ("piserver",), OLD, NEW)
    (event,) = queued(tmp_path)
    assert (tmp_path / changed.QUEUE).stat().st_uid == 61234
    assert event.stat().st_uid == 61234
