"""Fixtures for the updater's own tests: a config pointing at the test server."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.dnsserver import DNSServer
from support.helpers import CANARY, PUBLIC, assert_no_canary_in_tree, write_config
from support.runner import Updater


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


@pytest.fixture
def runner(monkeypatch, capsys):
    """The one way unit tests run the updater: ``runner(cfg)`` gives a
    :class:`support.runner.Updater` for that config (``None``: no ``--config``), in this
    process; ``runner(cfg, process=True)``, a real process of Debian's Python."""
    return lambda cfg=None, process=False: Updater(monkeypatch, capsys, cfg, process)
