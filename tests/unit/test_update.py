"""``duckdns update`` against the real-TLS test server: every exit code and retry rule."""

from __future__ import annotations

import json
import socket
import stat
import threading
import time

import pytest
from support.duckdns_server import DuckDNSServer
from support.helpers import CANARY

from duckdns import api


def test_first_update_sends_documented_request_and_says_one_line(runner, duck, conf):
    duck.client_ip = "203.0.113.7"
    cfg = conf()
    proc = runner(cfg)()
    assert proc.returncode == 0, proc.stderr
    assert len(duck.requests) == 1
    req = duck.requests[0]
    assert req["path"] == "/update"
    assert req["query"] == {"domains": "piserver", "token": CANARY, "ip": "", "verbose": "true"}
    assert req["user_agent"].startswith("duckdns-updater/")
    assert proc.stdout == ""
    assert proc.stderr.strip().splitlines() == ["piserver: IPv4 203.0.113.7, IPv6 - (was -, -)"]


def test_unchanged_address_is_silent_and_state_is_private(runner, duck, conf):
    cfg = conf()
    assert runner(cfg)().returncode == 0
    proc = runner(cfg)()  # probe off: the recipe's behaviour, one request per run
    assert proc.returncode == 0
    assert (proc.stdout, proc.stderr) == ("", "")
    assert len(duck.requests) == 2
    state = cfg.parent / "state.json"
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    size = state.stat().st_size
    for _ in range(2):
        runner(cfg)()
    assert state.stat().st_size == size, "the state file must not grow with runs"
    assert json.loads(state.read_text())["last_result"] == "nochange"


def test_ko_is_exit_1_and_never_retried(runner, duck, conf):
    cfg = conf(token="11111111-2222-3333-4444-555555555555")
    proc = runner(cfg)()
    assert proc.returncode == 1
    assert len(duck.requests) == 1
    assert "KO" in proc.stderr and "token" in proc.stderr
    assert "11111111-2222-3333-4444-555555555555" not in proc.stderr


def test_two_503_then_ok_makes_three_requests_with_backoff(runner, duck, conf):
    """The retry schedule in real seconds, as documented (1 s, then 2 s): the one unit test
    that waits it out (3 s)."""
    duck.script = ["status:503", "status:503"]
    start = time.monotonic()
    proc = runner(conf())()
    elapsed = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr
    assert len(duck.requests) == 3
    gaps = [
        b["monotonic"] - a["monotonic"]
        for a, b in zip(duck.requests[:-1], duck.requests[1:], strict=True)
    ]
    # Jitter only lengthens (at most 10%); the upper bounds leave room for a loaded machine.
    assert 1.0 <= gaps[0] < 2.0 and 2.0 <= gaps[1] < 3.2, gaps
    assert elapsed < 6


# The 30 s budget and the 10 s try in real seconds, against servers that stall, dribble or
# stay silent, are test_hostile.py's (real processes, real sockets). Here the same rules at a
# tenth of the scale: the module's documented constants lowered, real sockets and real time.
SCALE = 0.1


@pytest.fixture
def scaled(monkeypatch):
    """api's waits, its try time-out and its budget, all at SCALE."""
    for name in ("FIRST_WAIT", "TRY_TIMEOUT", "TOTAL_BUDGET"):
        monkeypatch.setattr(api, name, getattr(api, name) * SCALE)
    return api


def test_persistent_5xx_gives_up_within_the_budget_with_exit_75(runner, duck, conf, scaled):
    """Tries at 0, 1, 3, 7 and 15 times FIRST_WAIT; the next wait (16) would pass the budget
    (30 times FIRST_WAIT): five tries, and the run ends within the budget."""
    duck.default = "status:502"
    start = time.monotonic()
    proc = runner(conf())()
    elapsed = time.monotonic() - start
    assert proc.returncode == 75
    assert len(duck.requests) == 5
    assert 15 * scaled.FIRST_WAIT <= elapsed < scaled.TOTAL_BUDGET
    assert "HTTP 502" in proc.stderr and "gave up after 5 tries" in proc.stderr
    state = json.loads((conf().parent / "state.json").read_text())
    assert state["last_result"] == "error" and "HTTP 502" in state["last_error"]


def test_404_is_a_failure_without_retry(runner, duck, conf):
    duck.default = "status:404"
    proc = runner(conf())()
    assert proc.returncode == 75 and len(duck.requests) == 1
    assert "HTTP 404" in proc.stderr


def test_redirect_is_never_followed(runner, duck, conf):
    duck.default = "redirect"
    proc = runner(conf())()
    assert proc.returncode == 75
    assert [r["path"] for r in duck.requests] == ["/update"]
    assert "redirect" in proc.stderr


def test_stall_times_out_after_the_try_time_out_then_retries(runner, duck, conf, scaled):
    """A server that stalls 60 s: the try ends at TRY_TIMEOUT (1 s here, 10 s as shipped),
    the retry FIRST_WAIT later goes through."""
    duck.script = ["stall:60"]
    start = time.monotonic()
    proc = runner(conf())()
    elapsed = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr
    assert len(duck.requests) == 2
    assert scaled.TRY_TIMEOUT + scaled.FIRST_WAIT <= elapsed < 5  # the stall is 60 s


def test_huge_body_is_refused(runner, duck, conf):
    duck.default = "huge"
    proc = runner(conf())()
    assert proc.returncode == 75 and "oversized" in proc.stderr
    assert len(duck.requests) == 1


def test_unexpected_body_is_refused(runner, duck, conf):
    duck.default = "garbage"
    proc = runner(conf())()
    assert proc.returncode == 75 and "unexpected answer" in proc.stderr


def test_wrong_certificate_is_refused_before_any_request(runner, tmp_path, conf, duck):
    from support.testca import make_ca

    other = make_ca(tmp_path / "other-ca", name="not trusted")
    cert, key = other.issue(tmp_path / "other", ["localhost"])
    with DuckDNSServer(cert, key) as rogue:
        proc = runner(conf(server=rogue.url))()
        assert proc.returncode == 75
        assert "TLS verification" in proc.stderr
        assert rogue.requests == []


def test_certificate_for_another_host_is_refused(runner, tmp_path, conf, test_ca):
    cert, key = test_ca.issue(tmp_path / "wrongname", ["www.example.net"])
    with DuckDNSServer(cert, key) as wrong:
        proc = runner(conf(server=wrong.url))()
        assert proc.returncode == 75 and "TLS verification" in proc.stderr
        assert wrong.requests == []


def test_clock_behind_certificate_blames_the_clock(runner, tmp_path, conf, test_ca):
    cert, key = test_ca.issue(tmp_path / "future", ["localhost"], not_before_days_ahead=30)
    with DuckDNSServer(cert, key) as srv:
        proc = runner(conf(server=srv.url))()
        assert proc.returncode == 75
        assert "clock" in proc.stderr and "timedatectl" in proc.stderr
        assert srv.requests == []


def test_connection_refused_is_retried_until_the_server_comes_up(runner, server_cert, conf):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    started: list[DuckDNSServer] = []

    def start_late():
        started.append(DuckDNSServer(*server_cert, port=port).start())

    timer = threading.Timer(2.0, start_late)
    timer.start()
    try:
        proc = runner(conf(server=f"https://localhost:{port}"))("update", "-vv")
        assert proc.returncode == 0, proc.stderr
        assert "refused" in proc.stderr  # the retries are reported at -v
        assert len(started[0].requests) == 1
    finally:
        timer.join()
        for srv in started:
            srv.stop()


def test_ipv4_and_ipv6_literals(runner, duck, conf):
    proc = runner(conf(ipv4="198.51.100.4", ipv6="2a01:4f8:1:2::3"))()
    assert proc.returncode == 0, proc.stderr
    query = duck.requests[0]["query"]
    assert query["ip"] == "198.51.100.4" and query["ipv6"] == "2a01:4f8:1:2::3"
    assert "IPv6 2a01:4f8:1:2::3" in proc.stderr


def test_ipv4_off_sends_an_empty_ip_with_the_ipv6_address(runner, duck, conf):
    """``ip=&ipv6=X`` is documented to leave A alone; ``ipv6=X`` without ``ip=`` is not."""
    duck.client_ip = "203.0.113.7"
    proc = runner(conf(ipv4="off", ipv6="2a01:4f8:1:2::3"))()
    assert proc.returncode == 0, proc.stderr
    assert duck.requests[0]["query"]["ip"] == ""
    assert duck.records["piserver"]["ipv4"] == "", "A left alone"


def test_several_domains_with_suffix_are_normalised(runner, duck, conf):
    proc = runner(conf(domains="PiServer.duckdns.org, cloud"))()
    assert proc.returncode == 0, proc.stderr
    assert duck.requests[0]["query"]["domains"] == "piserver,cloud"


def test_dry_run_masks_token_and_sends_nothing(runner, duck, conf):
    proc = runner(conf())("update", "--dry-run")
    assert proc.returncode == 0
    assert proc.stdout.strip() == (
        f"GET {duck.url}/update?domains=piserver&token=***&ip=&verbose=true"
    )
    assert duck.requests == []


def test_journal_lines_carry_priorities(runner, duck, conf):
    duck.default = "ko"
    proc = runner(conf())("update", env={"JOURNAL_STREAM": "8:1234"})
    assert proc.returncode == 1
    assert proc.stderr.startswith("<3>")


def test_quiet_suppresses_the_change_line(runner, duck, conf):
    proc = runner(conf())("update", "-q")
    assert proc.returncode == 0 and proc.stderr == ""


def test_verbose_output_never_holds_the_token(runner, duck, conf):
    duck.script = ["status:500"]
    proc = runner(conf())("update", "-vv", "--force")
    assert proc.returncode == 0
    assert "retrying" in proc.stderr  # the runner checked the canary


def test_corrupt_state_is_a_warning_not_a_crash(runner, duck, conf):
    cfg = conf()
    (cfg.parent / "state.json").write_text("{not json")
    proc = runner(cfg)()
    assert proc.returncode == 0
    assert "corrupt" in proc.stderr
    assert json.loads((cfg.parent / "state.json").read_text())["last_result"] == "updated"


def test_txt_set_and_clear(runner, duck, conf):
    cfg = conf()
    proc = runner(cfg)("txt", "set", "acme-challenge-value")
    assert proc.returncode == 0, proc.stderr
    assert duck.requests[-1]["query"]["txt"] == "acme-challenge-value"
    assert duck.txt == "acme-challenge-value"
    proc = runner(cfg)("txt", "clear")
    assert proc.returncode == 0, proc.stderr
    assert duck.requests[-1]["query"]["clear"] == "true"
    assert duck.txt == ""


def test_clear_addresses(runner, duck, conf):
    cfg = conf()
    runner(cfg)()
    assert duck.ipv4
    proc = runner(cfg)("clear", "--yes")
    assert proc.returncode == 0, proc.stderr
    assert duck.requests[-1]["query"]["clear"] == "true"
    assert "txt" not in duck.requests[-1]["query"]
    assert duck.ipv4 == ""


def test_status_human_and_json(runner, duck, conf):
    duck.client_ip = "203.0.113.9"
    cfg = conf()
    runner(cfg)()
    proc = runner(cfg)("status")
    assert proc.returncode == 0
    assert "203.0.113.9" in proc.stdout and "updated" in proc.stdout
    data = json.loads(runner(cfg)("status", "--json").stdout)
    assert data["ipv4"] == "203.0.113.9" and data["last_result"] == "updated"


def test_ip_literal_server_is_verified_against_the_certificates_ip(runner, duck, conf):
    """``server = https://127.0.0.1:PORT`` with 127.0.0.1 in the certificate's SAN works."""
    proc = runner(conf(server=f"https://127.0.0.1:{duck.port}"))()
    assert proc.returncode == 0, proc.stderr
    assert len(duck.requests) == 1


def test_ip_literal_server_with_a_certificate_for_another_ip_is_refused(
    runner, tmp_path, conf, test_ca
):
    cert, key = test_ca.issue(tmp_path / "otherip", ["192.0.2.1", "localhost"])
    with DuckDNSServer(cert, key) as wrong:
        proc = runner(conf(server=f"https://127.0.0.1:{wrong.port}"))()
        assert proc.returncode == 75 and "TLS verification" in proc.stderr, proc.stderr
        assert wrong.requests == []
