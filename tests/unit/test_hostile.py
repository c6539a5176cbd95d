"""The hostile HTTPS server (tests/support/hostile_server.py) against the real process.

Every mode plays DuckDNS (``server = https://127.0.0.1:PORT``) and, with the DuckDNS
look-alike answering, the heartbeat monitor. Each run must end with a documented exit
code (never 70), within the documented bound (docs/design.md, "Bounds"), with a bounded
peak RSS and a request count the retry policy allows, having written state.json, and
without the token or the monitor's URL in its output.

The runs of every mode go in parallel (the slow modes last as long as the bound itself):
one module fixture runs them all, each test then checks one.
"""

from __future__ import annotations

import ast
import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from support.duckdns_server import DuckDNSServer
from support.helpers import CANARY, DEBIAN_PYTHON, ROOT, assert_no_canary, write_config
from support.hostile_server import MODES, HostileServer, bomb

from duckdns import api, deadline, dnswire, failure, heartbeat

# The monitor's URL is a secret too: its key must never be printed.
PING_KEY = "5ec2e7a1-0b5e-4a5e-9e1d-7a1c0ffee000"
GNU_TIME = "/usr/bin/time"
STARTUP = 6.0  # the interpreter, the config, the TLS set-up: seconds, loaded machine
RUN_BOUND = api.TOTAL_BUDGET + STARTUP  # one DuckDNS request (single stack)
PING_BOUND = heartbeat.TIMEOUT + STARTUP + 2.0  # the (fast) DuckDNS request, then the ping
MAX_RSS_KIB = 80 * 1024  # main: a 2 GB peak on a gzip bomb; a run takes ~27 MiB
ALL_TRIES = api.MAX_RETRIES + 1
# The status line and headers are all a ping reads: these modes answer 2xx before misbehaving.
PING_TAKEN = {
    *("ok", "bare-ok", "ok-extra", "html", "empty", "status-only", "truncated", "bad-chunk"),
    *("dribble-body", "dribble-chunks", "huge", "big-length", "gzip-bomb", "deflate-bomb"),
}

# DuckDNS role: (exit code, connections at most, at least). Retried failures are bounded by
# the retry policy; answers that are wrong rather than late are not retried.
RETRIED = (75, ALL_TRIES, 2)
ONCE = (75, 1, 1)
EXPECTED = {
    "dribble-headers": RETRIED,
    "dribble-body": RETRIED,
    "dribble-chunks": RETRIED,
    "silence": RETRIED,
    "tls-stall": RETRIED,
    "continue-flood": RETRIED,
    "gzip-bomb": ONCE,
    "deflate-bomb": ONCE,
    "huge": ONCE,
    "big-length": ONCE,
    "many-headers": ONCE,
    "long-header": ONCE,
    "bare-ok": (0, 1, 1),
    "ok-extra": ONCE,
    "html": ONCE,
    "html-502": RETRIED,
    "truncated": RETRIED,
    "reset": RETRIED,
    "garbage-status": ONCE,
    "http09": ONCE,
    "status-only": ONCE,
    "redirect-301": ONCE,
    "redirect-302": ONCE,
    "empty": ONCE,
    "bad-chunk": RETRIED,
    "tls-garbage": ONCE,
    "ok": (0, 1, 1),
}
assert set(EXPECTED) == set(MODES)


class Outcome:
    """One run: exit code, wall seconds, peak RSS (KiB), outputs, what the servers saw."""

    def __init__(self, code, seconds, rss, out, err, connections, duck_requests, state):
        self.code, self.seconds, self.rss = code, seconds, rss
        self.out, self.err = out, err
        self.connections, self.duck_requests, self.state = connections, duck_requests, state

    def __repr__(self) -> str:
        return (
            f"exit {self.code}, {self.seconds:.1f} s, {self.rss // 1024} MiB, "
            f"{self.connections} connections\n--- stderr ---\n{self.err}"
        )


def run_measured(cfg: Path, limit: float = 120) -> tuple[int, float, int, str, str]:
    """``duckdns -v --config CFG update`` as the runner's process runs it, and its peak RSS.

    The peak is measured by GNU time (Debian: time) when it is there: Linux carries a
    process's peak across exec, so a child started from this (large) process would show
    this process's size. Without it, os.wait4's figure, an upper bound.
    """
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "PYTHONPATH": str(ROOT),
        "LANG": "C.UTF-8",
        "HOME": str(cfg.parent),
    }
    out_path, err_path = cfg.parent / "stdout", cfg.parent / "stderr"
    rss_path = cfg.parent / "rss"
    argv = [DEBIAN_PYTHON, "-m", "duckdns", "-v", "--config", str(cfg), "update"]
    if Path(GNU_TIME).exists():
        argv = [GNU_TIME, "-f", "%M", "-o", str(rss_path), *argv]
    start = time.monotonic()
    with out_path.open("wb") as out, err_path.open("wb") as err:
        proc = subprocess.Popen(
            argv, stdout=out, stderr=err, env=env, cwd=cfg.parent, start_new_session=True
        )
    killer = threading.Timer(limit, os.killpg, (proc.pid, signal.SIGKILL))
    killer.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        killer.cancel()
    seconds = time.monotonic() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    rss = int(rss_path.read_text().split()[-1]) if rss_path.exists() else usage.ru_maxrss
    stdout, stderr = out_path.read_text(), err_path.read_text()
    assert_no_canary(stdout, stderr, where="the output of duckdns update")
    for text in (stdout, stderr):
        assert PING_KEY not in text, "the heartbeat URL leaked into the output"
    return proc.returncode, seconds, rss, stdout, stderr


def _scenario(role: str, mode: str, base: Path, cert, key, ca: Path) -> Outcome:
    directory = base / f"{role}-{mode}"
    directory.mkdir()
    with HostileServer(cert, key, mode=mode) as hostile:
        keys = {"domains": "piserver", "token": CANARY, "ca_bundle": str(ca), "probe": "off"}
        if role == "duckdns":
            server = f"https://127.0.0.1:{hostile.port}"  # an IP literal, as the certificate has
            cfg = write_config(directory / "duckdns.conf", server=server, **keys)
            code, seconds, rss, out, err = run_measured(cfg)
            requests = 0
        else:
            with DuckDNSServer(cert, key, token=CANARY, domains=["piserver"]) as duck:
                cfg = write_config(
                    directory / "duckdns.conf",
                    server=duck.url,
                    healthcheck=f"{hostile.url}/{PING_KEY}",
                    **keys,
                )
                code, seconds, rss, out, err = run_measured(cfg)
                requests = len(duck.requests)
        state = directory / "state.json"
        return Outcome(code, seconds, rss, out, err, hostile.connections, requests, state.exists())


@pytest.fixture(scope="module")
def outcomes(server_cert, test_ca, tmp_path_factory) -> dict[tuple[str, str], Outcome]:
    """Every (role, mode) run, in parallel; the slowest first."""
    cert, key = server_cert
    base = tmp_path_factory.mktemp("hostile")
    bomb("gzip"), bomb("deflate")  # made once, before any client waits on them
    cases = [(role, mode) for role in ("duckdns", "heartbeat") for mode in MODES]
    cases.sort(key=lambda c: (c[0] != "duckdns", EXPECTED[c[1]] is not RETRIED))
    with ThreadPoolExecutor(max_workers=16) as pool:
        futures = {
            case: pool.submit(_scenario, *case, base, cert, key, test_ca.cert_path)
            for case in cases
        }
        return {case: future.result() for case, future in futures.items()}


@pytest.mark.parametrize("mode", MODES)
def test_hostile_duckdns_is_bounded(outcomes, mode):
    got = outcomes[("duckdns", mode)]
    code, most, least = EXPECTED[mode]
    assert got.code == code, got
    assert got.seconds < RUN_BOUND, got
    assert got.rss < MAX_RSS_KIB, got
    assert least <= got.connections <= most, got
    assert got.state, "state.json was not written after a request was sent"
    if code:
        assert "internal error" not in got.err and got.err.strip(), got


@pytest.mark.parametrize("mode", MODES)
def test_hostile_monitor_is_bounded_and_never_fails_the_update(outcomes, mode):
    got = outcomes[("heartbeat", mode)]
    assert got.code == 0, got
    assert got.seconds < PING_BOUND, got
    assert got.rss < MAX_RSS_KIB, got
    assert got.connections == 1 and got.duck_requests == 1, got  # a ping is never retried
    assert got.state, "state.json was not written"
    failed = "heartbeat ping (up) failed" in got.err
    if mode != "reset":  # the status line comes first: the reset races the close
        assert failed == (mode not in PING_TAKEN), got


def test_the_heartbeat_never_reads_the_body(outcomes):
    """Huge and endless bodies cost the ping nothing: it looks at the status line only."""
    for mode in ("huge", "big-length", "gzip-bomb", "deflate-bomb"):
        got = outcomes[("heartbeat", mode)]
        assert got.seconds < STARTUP, (mode, got)


# -- the bound itself ---------------------------------------------------------------------------


def test_bound_raises_through_except_exception_and_restores_the_timer():
    previous = signal.signal(signal.SIGALRM, signal.SIG_IGN)
    try:
        signal.setitimer(signal.ITIMER_REAL, 50)
        start = time.monotonic()
        with pytest.raises(deadline.Expired) as caught, deadline.bound(0.2) as mine:
            try:
                time.sleep(5)
            except Exception:  # what urllib3 and requests do: must not swallow it
                pytest.fail("Expired was caught as an Exception")
        assert caught.value is mine and time.monotonic() - start < 1
        assert signal.getsignal(signal.SIGALRM) == signal.SIG_IGN
        assert 45 < signal.getitimer(signal.ITIMER_REAL)[0] <= 50
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_an_outer_bound_ends_an_inner_one_and_an_inner_one_leaves_the_outer():
    start = time.monotonic()
    with pytest.raises(deadline.Expired) as caught, deadline.bound(0.3) as outer, deadline.bound(5):
        time.sleep(5)
    assert caught.value is outer and time.monotonic() - start < 1
    start = time.monotonic()
    with pytest.raises(deadline.Expired) as caught, deadline.bound(0.6) as outer:
        with pytest.raises(deadline.Expired), deadline.bound(0.2):
            time.sleep(5)
        time.sleep(5)
    assert caught.value is outer and 0.5 < time.monotonic() - start < 1.2
    assert signal.getitimer(signal.ITIMER_REAL)[0] == 0


def test_a_block_that_ends_as_its_bound_runs_out_leaves_nothing_armed():
    """The alarm can come as the with statement leaves the block, before any clean-up runs.

    Each bound must still end whole, leaving nothing armed to fire into whatever runs next
    (a stale one once ended a test run inside pytest's own code). Blocks that end just as
    their bound runs out meet that moment about twice in a hundred (measured before the fix),
    so a few hundred of them do.
    """
    handler = signal.getsignal(signal.SIGALRM)
    for inner in [None] * 400 + [5] * 400:  # alone, then with an inner bound ended by it
        with (
            contextlib.suppress(deadline.Expired),
            deadline.bound(0.002),
            deadline.bound(inner) if inner else contextlib.nullcontext(),
        ):
            _busy(0.002)
        assert signal.getsignal(signal.SIGALRM) == handler
        assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    with deadline.bound(5):  # and the next bound runs its full time
        time.sleep(0.05)


def _busy(seconds: float) -> None:
    """Compute for ``seconds``: a loop, so in a frame of its own (deadline's docstring)."""
    ends = time.monotonic() + seconds
    while time.monotonic() < ends:
        pass


def _loops_in(nodes: list[ast.stmt]) -> list[int]:
    """The loops that run in the frame of ``nodes``: statements and inlined comprehensions
    (PEP 709), not those of functions, lambdas or generator expressions defined there."""
    found: list[int] = []  # their lines
    stack: list[ast.AST] = list(nodes)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef):
            continue
        if isinstance(node, ast.For | ast.AsyncFor | ast.While):
            found.append(node.lineno)
        elif isinstance(node, ast.comprehension):
            found.append(node.target.lineno)
        if not isinstance(node, ast.GeneratorExp):
            stack.extend(ast.iter_child_nodes(node))
    return found


def test_no_loop_runs_in_the_frame_of_a_bound():
    """On Python 3.13 a signal handler's exception at a loop's back-jump escapes the try and
    with statements of the loop's frame (CPython bug gh-130279): an Expired raised there
    would pass the bound's own handler. Every loop under a bound is in a function it calls.

    Checked in tests/ too: this file's own bounds follow the rule (_busy).
    """
    where = []
    for path in sorted([*(ROOT / "duckdns").glob("*.py"), Path(__file__)]):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            bounded = isinstance(node, ast.With) and any(
                "bound(" in ast.unparse(item.context_expr) for item in node.items
            )
            catching = isinstance(node, ast.Try) and any(
                handler.type is not None and "Expired" in ast.unparse(handler.type)
                for handler in node.handlers
            )
            if bounded or catching:
                where += [f"{path.name}:{line}" for line in _loops_in(node.body)]
    assert where == [], f"loops in the frame of a bound: {where}"


# -- failures, from the exceptions' types and errno --------------------------------------------


def _failure_of(url: str) -> BaseException:
    import requests

    try:
        requests.get(url, timeout=2)
    except requests.exceptions.RequestException as exc:
        return exc
    raise AssertionError("the request succeeded")


def test_refused_is_said_by_errno_without_the_url():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: refused
        exc = _failure_of(f"https://127.0.0.1:{port}/update?token={CANARY}")
    assert CANARY in str(exc)  # requests puts the URL in its message
    message, retry = failure.explain(exc, "the monitor", 10)
    assert message == "cannot connect to the monitor: connection refused" and retry
    assert_no_canary(message)


def test_dns_failure_is_said_whatever_the_locale_of_its_text():
    """glibc's message is translated ("Nom ou service inconnu"): the type decides."""
    import requests
    import urllib3

    gai = socket.gaierror(socket.EAI_NONAME, "Nom ou service inconnu")
    new = urllib3.exceptions.NewConnectionError(None, f"x: {gai}")
    new.__cause__ = gai
    pool_error = urllib3.exceptions.MaxRetryError(None, f"/update?token={CANARY}", new)
    exc = requests.exceptions.ConnectionError(pool_error)
    message, retry = failure.explain(exc, "www.duckdns.org", 10)
    assert message == "cannot resolve www.duckdns.org (DNS failure)" and retry
    # The same failure with its English text but reached through __context__ only.
    try:
        try:
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        except OSError:
            raise RuntimeError(f"wrapped {CANARY}") from None
    except RuntimeError as wrapped:
        wrapped.__suppress_context__ = False
        assert failure.explain(wrapped, "h", 10)[0] == "cannot resolve h (DNS failure)"


def test_a_ssl_named_class_that_is_not_tls_is_not_called_tls():
    """heartbeat used to call any class with "SSL" in its name a TLS failure."""

    class SSLConfigMissing(Exception):
        pass

    message, retry = failure.explain(SSLConfigMissing(f"https://x/{PING_KEY}"), "the monitor", 10)
    assert "TLS" not in message and PING_KEY not in message and not retry


# -- DNS exchanges: bounded whatever the server sends ------------------------------------------


class _Flood:
    """A UDP 'server' that answers each query with a flood: garbage from another port of the
    same address (the connected socket must drop it) and, if ``wrong_id``, replies from the
    right port with the wrong ID."""

    def __init__(self, wrong_id: bool) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.other.bind(("127.0.0.1", 0))
        self.wrong_id = wrong_id
        self.sent = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return self.sock.getsockname()[1]

    def _serve(self) -> None:
        try:
            packet, client = self.sock.recvfrom(512)
        except OSError:
            return
        end = time.monotonic() + 3
        while time.monotonic() < end:
            self.sent += 1  # before sending: the query may end at the first datagram
            try:
                self.other.sendto(os.urandom(64), client)
                if self.wrong_id:
                    bad = bytes([packet[0] ^ 0xFF, packet[1]]) + b"\x81\x80" + packet[4:]
                    self.sock.sendto(bad, client)
            except OSError:
                time.sleep(0.001)

    def close(self) -> None:
        self.sock.close()
        self.other.close()


@pytest.mark.parametrize("wrong_id", [False, True], ids=["garbage-from-elsewhere", "wrong-ids"])
def test_a_dns_flood_cannot_stretch_the_query_timeout(wrong_id):
    flood = _Flood(wrong_id)
    try:
        start = time.monotonic()
        with pytest.raises(dnswire.DNSError):
            dnswire.query("whoami.cloudflare", dnswire.TYPE_TXT, "127.0.0.1", flood.port)
        assert time.monotonic() - start < dnswire.DEFAULT_TIMEOUT + 0.5
        assert flood.sent > 0
    finally:
        flood.close()


def test_txt_wait_ends_in_its_time_however_many_servers_stay_silent():
    """Each silent server was given 0.2 s at least, past the end: 30 of them, 6 s over."""
    from duckdns import acme

    silent = []
    for _ in range(30):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        silent.append(sock)
    try:
        servers = [("127.0.0.1", s.getsockname()[1]) for s in silent]
        start = time.monotonic()
        found = acme.wait("v", ["_acme-challenge.piserver.duckdns.org"], servers, servers[0], 2)
        assert found is False and time.monotonic() - start < 2.5
    finally:
        for sock in silent:
            sock.close()
