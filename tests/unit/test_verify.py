"""``duckdns verify`` follows CNAME chains and compares with what DuckDNS recorded."""

from __future__ import annotations

import pytest
from support.dnsserver import DNSServer


@pytest.fixture
def zone():
    records = [
        "cloud.example.com:CNAME:piserver.example.com",
        "piserver.example.com:CNAME:piserver.duckdns.org",
        "piserver.duckdns.org:A:203.0.113.7",
        "stale.example.com:A:192.0.2.99",
    ]
    with DNSServer(records) as srv:
        yield srv


@pytest.fixture
def verify(runner, duck, conf, zone):
    """After one successful update (DuckDNS saw 203.0.113.7), ``verify(NAME)`` runs
    ``duckdns verify --resolver <zone> NAME``."""
    duck.client_ip = "203.0.113.7"
    cfg = conf()
    assert runner(cfg)().returncode == 0
    host, port = zone.address

    def run(name: str):
        return runner(cfg, process=True)("verify", "--resolver", f"{host}:{port}", name)

    return run


def test_chain_matches(verify):
    proc = verify("cloud.example.com")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (
        "cloud.example.com -> piserver.example.com -> piserver.duckdns.org: 203.0.113.7: OK"
    ) in proc.stdout
    assert "piserver.duckdns.org: 203.0.113.7: OK" in proc.stdout


def test_mismatch_is_exit_1(verify):
    proc = verify("stale.example.com")
    assert proc.returncode == 1
    assert "stale.example.com: 192.0.2.99: MISMATCH" in proc.stdout


def test_unresolvable_is_exit_75(verify):
    proc = verify("nowhere.example.com")
    assert proc.returncode == 75
    assert "nowhere.example.com: cannot resolve" in proc.stdout
