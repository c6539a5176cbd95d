"""Fixtures for the updater's own tests: a config pointing at the test server."""

from __future__ import annotations

from pathlib import Path

import pytest
from dnsserver import DNSServer
from helpers import CANARY, PUBLIC, assert_no_canary_in_tree, write_config


@pytest.fixture
def conf(tmp_path: Path, duck, test_ca):
    """A factory for a valid config aimed at ``duck``; keyword arguments override keys.

    After the test, no file in the test's directory but the config holds the token.
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
