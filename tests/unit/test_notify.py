"""Notifications through the real Apprise (Debian's ``apprise``) to loopback receivers.

The simulated days run the updater in-process once per simulated minute (the Runner's
clock, as tests/unit/test_backoff.py does) against the real-TLS DuckDNS look-alike, with
``notify`` aimed at a JSON webhook (Apprise's ``json://``) and, where said, a real SMTP
server (``mailto://``, python3-aiosmtpd): each message received is checked for its text,
and for the token and the URL's own secret, which must be in none of them. The bounds run
the real process against receivers that hang, dribble or answer garbage.
"""

from __future__ import annotations

import json
import time

import pytest
from support.helpers import (
    CANARY,
    DEBIAN_PYTHON,
    PUBLIC,
    ROOT,
    faketime_env,
    state_of,
)
from support.hostile_server import HostileServer
from support.notify_receiver import HostileSMTP, Mailbox, Webhook

from duckdns import api, notify

WRONG = "11111111-2222-3333-4444-555555555555"  # well-formed, but not the account's: KO
HOOK_SECRET = "hook-secret-7f3a9c"  # the webhook URL's own secret (its path)
MAIL_PASSWORD = "mail-secret-pw-51d0"  # the SMTP password in the mailto:// URL
SECRETS = (CANARY, HOOK_SECRET, MAIL_PASSWORD)
STARTUP = 6.0  # the interpreter, the config, Apprise's import: seconds, loaded machine


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    monkeypatch.setattr(api, "FIRST_WAIT", 0.001)


@pytest.fixture
def hook():
    with Webhook() as srv:
        yield srv


def assert_secret_free(*texts) -> None:
    for text in texts:
        data = text if isinstance(text, bytes) else str(text).encode()
        for secret in SECRETS:
            assert secret.encode() not in data, f"{secret} reached a message or an output"


def received(hook: Webhook) -> list[dict]:
    """Every message the webhook took, checked for secrets."""
    for request in hook.requests:
        assert_secret_free(request["headers"], request["body"])
    return hook.messages


def minutes(run, count: int) -> list[tuple[int, str]]:
    results = []
    for _ in range(count):
        code, out, err = run()
        assert_secret_free(out, err)
        results.append((code, err))
        run.later(60)
    return results


# -- the events of a day ------------------------------------------------------------------


def test_a_steady_day_sends_nothing(duck, dns, conf, runner, hook):
    duck.client_ip = PUBLIC
    host, port = dns.address
    run = runner(conf(probe=f"cloudflare@{host}:{port}", notify=hook.url(HOOK_SECRET)))
    minutes(run, 24 * 60)
    assert received(hook) == []
    state = state_of(run.cfg)
    assert state["notified_ipv4"] == PUBLIC and state["notified_at"] is not None
    assert HOOK_SECRET not in json.dumps(state)


def test_an_address_change_sends_one_message_naming_old_and_new(duck, conf, runner, hook):
    duck.client_ip = "198.51.100.4"
    run = runner(conf(domains="piserver, cloud", notify=hook.url(HOOK_SECRET)))
    minutes(run, 3)
    assert received(hook) == []  # the first run takes the published address as told
    duck.client_ip = "198.51.100.9"
    minutes(run, 60)
    (message,) = received(hook)
    assert message["type"] == "info"
    assert message["title"] == "DuckDNS: new address for piserver, cloud"
    assert message["message"] == (
        "piserver.duckdns.org, cloud.duckdns.org now point at:\n"
        "IPv4 (A record): 198.51.100.9 (was 198.51.100.4)"
    )


def test_a_day_of_outage_one_failing_one_reminder_one_working_again(duck, conf, runner, hook):
    duck.client_ip = PUBLIC
    run = runner(conf(notify=hook.url(HOOK_SECRET)))
    minutes(run, 1)
    duck.default = "status:503"
    minutes(run, 25 * 60)
    duck.default = "ok"
    minutes(run, 20)
    down, reminder, up = received(hook)
    assert [m["type"] for m in (down, reminder, up)] == ["failure", "failure", "success"]
    assert down["title"] == "DuckDNS updates failing: piserver"
    assert down["message"].startswith("Updates of piserver.duckdns.org have failed since ")
    assert "HTTP 503" in down["message"] and "\nNext attempt: " in down["message"]
    assert down["message"].endswith(f"DuckDNS still holds IPv4 {PUBLIC}, IPv6 none.")
    assert "dpkg-reconfigure" not in down["message"]  # not the token's fault
    assert reminder["title"] == "DuckDNS updates still failing: piserver"
    assert reminder["message"].startswith("Updates of piserver.duckdns.org have failed for 1 d")
    assert up["title"] == "DuckDNS updates work again: piserver"
    assert up["message"].startswith("piserver.duckdns.org: updates work again after 1 d 1 h, ")


def test_a_revoked_token_sends_one_message_with_the_fix(duck, conf, runner, hook):
    run = runner(conf(token=WRONG, notify=hook.url(HOOK_SECRET)))
    minutes(run, 6 * 60)
    (message,) = received(hook)
    assert message["title"] == "DuckDNS updates failing: piserver"
    assert "DuckDNS answered KO" in message["message"]
    assert notify.KO_FIX in message["message"]
    assert "run 'sudo dpkg-reconfigure duckdns'" in notify.KO_FIX


def test_a_receiver_that_fails_is_retried_every_15_minutes_and_warned_once(
    duck, conf, runner, hook
):
    duck.client_ip = "198.51.100.4"
    run = runner(conf(notify=hook.url(HOOK_SECRET)))
    minutes(run, 1)
    hook.mode = "error"
    duck.client_ip = "198.51.100.9"
    results = minutes(run, 31)
    # At 0, 15 and 30 min: never more often than the heartbeat.
    assert len(hook.requests) == 3, results
    warned = [err for _, err in results if "notification" in err]
    assert (
        len(warned) == 1
        and "notification (address) to notify URL 1 (json://…) failed" in (warned[0])
    )
    assert all(code == 0 for code, _ in results), "a failed notification never fails the update"
    hook.mode = "ok"
    minutes(run, 40)
    assert len(hook.requests) == 4  # taken at 45 min, then never again
    assert received(hook)[-1]["message"].endswith("(was 198.51.100.4)")


# -- e-mail, the test command, check -----------------------------------------------------


def mailto(box: Mailbox) -> str:
    return (
        f"mailto://duckdns:{MAIL_PASSWORD}@127.0.0.1:{box.port}"
        "?to=admin@example.org&from=duckdns@example.org"
    )


def test_notify_test_sends_one_message_per_url_and_says_each_verdict(conf, runner, hook):
    with Mailbox("duckdns", MAIL_PASSWORD) as box:
        cfg = conf(notify=f"{hook.url(HOOK_SECRET)}, {mailto(box)}")
        code, out, err = runner(cfg)("notify", "--test")
        assert_secret_free(out, err)
        assert code == 0, err
        assert out.splitlines() == [
            "notify URL 1 (json://…): accepted",
            "notify URL 2 (mailto://…): accepted",
        ]
        (message,) = received(hook)
        assert message["title"] == "DuckDNS test: piserver"
        (mail,) = box.messages
        assert_secret_free(*box.raw)
        assert mail["Subject"] == "DuckDNS test: piserver"
        assert mail["To"] == "admin@example.org"
        assert "notifications reach you here" in mail.get_body(("plain",)).get_content()
        assert box.logins == [(b"duckdns", MAIL_PASSWORD.encode())]
    hook.mode = "error"
    code, out, err = runner(conf(notify=hook.url(HOOK_SECRET)))("notify", "--test")
    assert_secret_free(out, err)
    assert code == 75
    # Apprise's reason, classified: only its number is shown (its lines quote URL parts).
    assert out == "notify URL 1 (json://…): NOT accepted: not accepted (HTTP status 500)\n"
    hook.__exit__()  # nobody listens on that port any more
    code, out, err = runner(conf(notify=hook.url(HOOK_SECRET)))("notify", "--test")
    assert code == 75 and out == "notify URL 1 (json://…): NOT accepted: connection refused\n"


def test_check_names_notify_and_refuses_a_url_apprise_cannot_use(conf, runner, hook):
    code, out, err = runner(conf(notify=hook.url(HOOK_SECRET)))("check")
    assert code == 0 and out.splitlines()[0].endswith("; notify 1 URL)"), out + err
    bad = f"nosuchservice://{HOOK_SECRET}@example.org"
    code, out, err = runner(conf(notify=f"{hook.url(HOOK_SECRET)}, {bad}"))("check")
    assert_secret_free(out, err)
    assert code == 78
    assert "line 7: notify URL 2 (nosuchservice://…) is refused by Apprise" in err


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (f"ntfys://ntfy.sh/{HOOK_SECRET} with-a-space", "it holds a space"),
        (f"json//127.0.0.1/{HOOK_SECRET}", "no SCHEME://"),
    ],
)
def test_a_malformed_url_is_a_config_error_naming_the_line_never_the_url(conf, runner, value, why):
    run = runner(conf(notify=value))
    for command in ("check", "update"):
        code, out, err = run(command)
        assert_secret_free(out, err)
        assert code == 78
        assert f"line 7: the 1st URL in notify is not an Apprise URL ({why}" in err


@pytest.mark.parametrize(
    "value",
    [
        "json://[::1/hook-secret-7f3a9c",  # urllib's "Invalid IPv6 URL"
        "json://[hook-secret-7f3a9c]/x",  # not an address between the brackets
    ],
)
def test_a_url_no_parser_can_read_is_a_config_error_in_every_command(conf, runner, value):
    run = runner(conf(notify=value))
    for command in (("check",), ("update",), ("notify", "--test")):
        code, out, err = run(*command)
        assert_secret_free(out, err)
        assert "hook-secret" not in out + err and "7f3a9c" not in out + err
        assert code == 78, (command, err)
        assert "line 7: the 1st URL in notify is not an Apprise URL (its host cannot" in err


def test_a_url_with_nothing_after_the_scheme_is_apprises_to_judge(conf, runner):
    """``syslog://`` is a whole Apprise URL (Apprise 1.2 instantiates it)."""
    code, out, err = runner(conf(notify="syslog://"))("check")
    assert code == 0 and out.splitlines()[0].endswith("; notify 1 URL)"), out + err


# Canaries of each kind a notify URL holds, 3 to 40 characters, written %-encoded where
# they need it; Apprise shows them decoded, re-encoded (%2B for +, + for a space), and a
# user and password go out base64-encoded (HTTP Basic authentication, RFC 7617).
CANARIES = {
    "user": "Qj7",
    "password": "zX9 w+q",
    "path": "vK2pz",
    "header": "abc defghij",  # the + of +X-Key= makes it an HTTP header (Apprise's form)
    "long": "Lm4" * 13 + "y",  # 40 characters
}


def encodings(secret: str) -> set[str]:
    import base64
    from urllib.parse import quote, quote_plus

    forms = {secret, quote(secret, safe=""), quote(secret), quote_plus(secret)}
    forms |= {base64.b64encode(secret.encode()).decode().rstrip("=")}
    return {form for form in forms if len(form) >= 3}


def test_no_part_of_a_notify_url_reaches_any_output_in_any_encoding(duck, conf, runner, hook):
    from urllib.parse import quote

    c = CANARIES
    url = (
        f"json://{c['user']}:{quote(c['password'], safe='')}@127.0.0.1:{hook.port}/"
        f"{c['path']}/{c['long']}?+X-Key={quote(c['header'], safe='')}"
    )
    forms = {form for secret in c.values() for form in encodings(secret)}
    basic = f"{c['user']}:{c['password']}"
    forms |= encodings(basic)
    duck.client_ip = "198.51.100.4"
    run = runner(conf(token=WRONG, notify=url))
    outputs = []
    for command in (("check",), ("notify", "--test"), ("update",), ("status",)):
        outputs.append(run("-vv", *command))
        run.later(60)
    hook.mode = "error"
    outputs.append(run("-vv", "notify", "--test"))
    outputs.append(run("-vv", "update", "--force"))
    outputs.append(run("-vv", "status"))
    state = (run.cfg.parent / "state.json").read_text()
    # The receiver got every part: the URL was used, whole.
    (first, *_) = hook.requests
    assert f"/{c['path']}/{c['long']}" == first["path"]
    assert f"X-Key: {c['header']}" in first["headers"]
    assert any(form in first["headers"] for form in encodings(basic))  # Authorization: Basic
    assert [code for code, _, _ in outputs] == [0, 0, 1, 0, 75, 1, 0]
    assert "notification (down) to notify URL 1 (json://…) taken" in outputs[2][2]
    for text in [state, *(out + err for _, out, err in outputs)]:
        shown = {form for form in forms if form in text}
        assert not shown, f"{shown} in {text}"


def test_without_apprise_check_says_how_to_install_it_and_updates_still_run(
    duck, conf, runner, hook, monkeypatch
):
    def missing():
        raise ImportError("No module named 'apprise'")

    monkeypatch.setattr(notify, "_apprise", missing)
    monkeypatch.setattr(notify, "available", lambda: False)
    run = runner(conf(token=WRONG, notify=hook.url(HOOK_SECRET)))
    code, out, err = run("check")
    assert code == 0 and out.splitlines()[0].endswith("notify 1 URL, Apprise missing)")
    assert "Apprise is not installed: install it with 'sudo apt install apprise'" in err
    code, _, err = run("update")
    assert code == 1  # KO: the update's own verdict
    assert "failed: Apprise is not installed: install it with 'sudo apt install apprise'" in err
    code, _, err = run("notify", "--test")
    assert code == 78 and "sudo apt install apprise" in err


# -- bounds: the real process against receivers that hang, dribble or answer garbage ------


HOSTILE = ("silence", "dribble-headers", "tls-stall", "garbage-status")


def test_a_hostile_receiver_cannot_hold_the_run_past_its_bound(
    runner, duck, conf, server_cert, tmp_path
):
    """Each mode a real process of its own, all at once (the slow ones last the bound)."""
    from concurrent.futures import ThreadPoolExecutor

    cert, key = server_cert

    def one(mode: str):
        with HostileServer(cert, key, mode=mode) as srv:
            url = srv.url.replace("https://", "jsons://") + f"/{HOOK_SECRET}?verify=no"
            # KO: a "down" alert to tell at the first run.
            (tmp_path / mode).mkdir()  # a state.json of its own
            cfg = conf(name=f"{mode}/duckdns.conf", token=WRONG, notify=url)
            start = time.monotonic()
            proc = runner(cfg, process=True)("update", cwd=tmp_path)  # one each, at once
            return cfg, proc, time.monotonic() - start

    with ThreadPoolExecutor(len(HOSTILE)) as pool:
        results = dict(zip(HOSTILE, pool.map(one, HOSTILE), strict=True))
    for mode, (cfg, proc, elapsed) in results.items():
        assert_secret_free(proc.stdout, proc.stderr)
        assert proc.returncode == 1, (mode, proc.stderr)  # the update's verdict, whatever
        assert elapsed < notify.PER_URL + STARTUP, (mode, elapsed)
        assert "notification (down) to notify URL 1 (jsons://…) failed" in proc.stderr, mode
        assert state_of(cfg)["notify_tried"] is not None, mode


# -- containment: receivers that would take the Pi's memory or hold the run for ever -------

# A hostile HTTP receiver (tests/support/hostile_server.py, over TLS: jsons://) and a
# hostile SMTP server (tests/support/notify_receiver.py), each mode measured by itself.
CONTAINED = ("gzip-bomb", "big-length", *HostileSMTP.MODES)
WALL = 40.0  # seconds: a run with a notification due, whatever the receiver does
PEAK = 150 * 1024  # KiB of peak RSS (GNU time: the updater and its children)


def timed_update(cfg, env: dict | None = None) -> tuple[int, str, float, int]:
    """``duckdns -vv update`` under GNU time: exit code, stderr (time's report cut off),
    wall seconds, peak RSS in KiB (the largest of the process and its reaped children)."""
    import re
    import subprocess

    report_file = cfg.parent / "time.txt"
    command = ["/usr/bin/time", "-v", "-o", str(report_file), DEBIAN_PYTHON, "-m", "duckdns"]
    environ = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "LANG": "C.UTF-8"}
    start = time.monotonic()
    proc = subprocess.run(
        [*command, "--config", str(cfg), "-vv", "update"],
        capture_output=True,
        text=True,
        env={**environ, "HOME": str(cfg.parent), **(env or {})},
        timeout=120,
    )
    elapsed = time.monotonic() - start
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", report_file.read_text())
    return proc.returncode, proc.stdout + proc.stderr, elapsed, int(peak.group(1))


def test_a_hostile_receiver_costs_bounded_time_and_memory_and_no_second_connection(
    duck, dns, conf, server_cert, tmp_path
):
    """A run with an address change to tell meets each receiver (all at once, each run its
    own process): it ends within WALL with at most PEAK of memory and the update's own exit
    code, and the next run a minute later opens no connection to that receiver."""
    from concurrent.futures import ThreadPoolExecutor
    from contextlib import ExitStack
    from functools import partial

    from support.hostile_server import bomb

    bomb("gzip")  # made before a client waits for it (Apprise's read timeout is 4 s)
    duck.client_ip = PUBLIC
    host, port = dns.address
    cert, key = server_cert
    with ExitStack() as stack:
        receivers, configs = {}, {}
        for mode in CONTAINED:
            if mode in HostileSMTP.MODES:
                receiver = stack.enter_context(HostileSMTP(mode))
                url = receiver.url("duckdns", MAIL_PASSWORD)
            else:
                receiver = stack.enter_context(HostileServer(cert, key, mode=mode))
                url = receiver.url.replace("https://", "jsons://") + f"/{HOOK_SECRET}?verify=no"
            (tmp_path / mode).mkdir()
            configs[mode] = conf(
                name=f"{mode}/duckdns.conf", probe=f"cloudflare@{host}:{port}", notify=url
            )
            receivers[mode] = receiver
        with ThreadPoolExecutor(len(CONTAINED)) as pool:
            # First runs: the address published, taken as told (notify just set).
            for code, out, _, _ in pool.map(timed_update, configs.values()):
                assert code == 0, out
            for mode, cfg in configs.items():
                assert receivers[mode].connections == 0, mode
                # As if the last message had told another address: one is due.
                state = state_of(cfg)
                state["notified_ipv4"] = "198.51.100.4"
                (cfg.parent / "state.json").write_text(json.dumps(state))
            results = dict(zip(CONTAINED, pool.map(timed_update, configs.values()), strict=True))
            connections = {mode: receivers[mode].connections for mode in CONTAINED}
            a_minute_later = partial(timed_update, env=faketime_env("+1m"))
            again = dict(zip(CONTAINED, pool.map(a_minute_later, configs.values()), strict=True))
    for mode, (code, out, elapsed, peak) in results.items():
        print(f"{mode}: {elapsed:.1f} s, peak RSS {peak / 1024:.0f} MiB: {out.splitlines()[-1]}")
        assert_secret_free(out)
        assert code == 0, (mode, out)  # the update's own verdict: nothing to do
        assert elapsed <= WALL, (mode, elapsed)
        assert peak <= PEAK, (mode, peak)
        assert "notification (address) to notify URL 1 " in out and " failed: " in out, out
        assert connections[mode] >= 1, mode
        state = state_of(configs[mode])
        assert state["notify_tried"] is not None and state["notified_ipv4"] != PUBLIC, mode
    for mode, (code, out, _, _) in again.items():
        assert code == 0, (mode, out)
        assert receivers[mode].connections == connections[mode], f"{mode}: asked again: {out}"


def test_a_run_killed_while_it_sends_has_saved_its_attempt(runner, duck, dns, conf, tmp_path):
    """The unit's limits kill the whole run (SIGKILL to every process) in the middle of a
    send: the attempt was saved before the first byte, so the next run a minute later
    waits its retry spacing and opens no new connection."""
    import os
    import signal
    import subprocess

    duck.client_ip = PUBLIC
    host, port = dns.address
    with HostileSMTP("stall-after-data") as smtp:
        cfg = conf(probe=f"cloudflare@{host}:{port}", notify=smtp.url("duckdns", MAIL_PASSWORD))
        run = runner(cfg)
        assert run("update", cwd=tmp_path).returncode == 0
        state = state_of(cfg)
        # As if the last message, a minute ago, had told another address.
        state.update(notified_ipv4="198.51.100.4", notified_at=state["notified_at"] - 60)
        (cfg.parent / "state.json").write_text(json.dumps(state))
        environ = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(tmp_path)}
        proc = subprocess.Popen(
            [DEBIAN_PYTHON, "-m", "duckdns", "--config", str(cfg), "update"],
            env=environ,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while smtp.connections == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert smtp.connections == 1, "the send did not start"
        os.killpg(proc.pid, signal.SIGKILL)  # what the unit does to its cgroup
        proc.wait()
        state = state_of(cfg)
        assert state["notify_tried"] is not None and state["notified_ipv4"] != PUBLIC, state
        run.later(60)
        later = run("update", cwd=tmp_path)
        assert later.returncode == 0, later.stderr
        assert smtp.connections == 1, "the next run asked the receiver again"
