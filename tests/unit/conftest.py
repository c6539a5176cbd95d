"""Fixtures for the updater's own tests: a config pointing at the test server."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.dnsserver import DNSServer
from support.helpers import CANARY, PUBLIC, assert_no_canary, assert_no_canary_in_tree, write_config


@pytest.fixture(autouse=True)
def own_secrets(monkeypatch):
    """Each test starts with no secret registered for redaction and the default verbosity:
    the tests run the updater in this process, and a secret an earlier test's config
    registered (a notify URL's host, say 127.0.0.1) would mask text in a later one."""
    from duckdns import report

    monkeypatch.setattr(report, "_secrets", set())
    monkeypatch.setattr(report, "threshold", report.NOTICE)


@pytest.fixture
def conf(tmp_path: Path, duck, test_ca):
    """A factory for a valid config aimed at ``duck``; keyword arguments override keys.

    After the test, no file in the test's directory but the config holds the token, and no
    request ``duck`` received had an empty ``ipv6=`` or an ``ipv6=`` without ``ip=``.
    """
    made: list[Path] = []

    def make(name: str = "duckdns.conf", mode: int = 0o600, **keys: str) -> Path:
        values = {
            "domains": "piserver",
            "token": CANARY,
            "server": duck.url,
            "ca_bundle": str(test_ca.cert_path),
            "probe": "off",
        }
        values.update(keys)
        values = {k: v for k, v in values.items() if v is not None}
        path = write_config(tmp_path / name, mode=mode, **values)
        made.append(path)
        return path

    yield make
    assert_no_canary_in_tree(tmp_path, set(made))
    # The updater never relies on what the published API leaves unknown (docs/design.md).
    for req in duck.requests:
        q = req["query"]
        assert q.get("ipv6", None) != "", f"an empty ipv6= (its effect is unknown): {q}"
        assert "ipv6" not in q or "ip" in q, f"ipv6= without ip= (its effect is unknown): {q}"


@pytest.fixture
def dns():
    """A loopback "what is my address" resolver answering PUBLIC (Cloudflare and OpenDNS)."""
    with DNSServer([f"whoami.cloudflare:CH:TXT:{PUBLIC}", f"myip.opendns.com:A:{PUBLIC}"]) as srv:
        yield srv


@pytest.fixture
def probed(conf, dns, duck):
    """A config whose probe asks ``dns``; DuckDNS sees the same PUBLIC address."""
    duck.client_ip = PUBLIC
    host, port = dns.address
    return conf(probe=f"cloudflare@{host}:{port}")


class Runner:
    """``duckdns --config CFG ...`` in this process, with the world it sees under control.

    ``ipv6`` is the global IPv6 address the kernel shows (None: none), ``now`` the clock
    (advanced with :meth:`later`), so sequences of timer runs over hours take a second.
    Every output is checked for the token.
    """

    def __init__(self, monkeypatch, capsys, cfg: Path) -> None:
        import time

        from duckdns import localaddr

        self.cfg = cfg
        self.capsys = capsys
        self.ipv6: str | None = None
        self.now = time.time()
        monkeypatch.setattr(localaddr, "global_ipv6", lambda *a, **k: self.ipv6)
        monkeypatch.setattr(time, "time", lambda: self.now)

    def later(self, seconds: float) -> None:
        self.now += seconds

    def __call__(self, *argv: str) -> tuple[int, str, str]:
        from duckdns.cli import main

        code = main(["--config", str(self.cfg), *(argv or ("update",))])
        out, err = self.capsys.readouterr()
        assert_no_canary(out, err)
        return code, out, err


@pytest.fixture
def runner(monkeypatch, capsys):
    """A factory: ``runner(cfg)`` gives a :class:`Runner` for that config."""
    return lambda cfg: Runner(monkeypatch, capsys, cfg)
