"""``duckdns verify`` follows CNAME chains and compares with what DuckDNS recorded."""

from __future__ import annotations

import pytest
from dnsserver import DNSServer
from helpers import run_duckdns


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


def test_chain_matches(duck, conf, zone):
    duck.client_ip = "203.0.113.7"
    cfg = conf()
    assert run_duckdns("--config", str(cfg), "update").returncode == 0
    host, port = zone.address
    proc = run_duckdns(
        "--config", str(cfg), "verify", "--resolver", f"{host}:{port}", "cloud.example.com"
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (
        "cloud.example.com -> piserver.example.com -> piserver.duckdns.org: 203.0.113.7: OK"
    ) in proc.stdout
    assert "piserver.duckdns.org: 203.0.113.7: OK" in proc.stdout


def test_mismatch_is_exit_1(duck, conf, zone):
    duck.client_ip = "203.0.113.7"
    cfg = conf()
    run_duckdns("--config", str(cfg), "update")
    host, port = zone.address
    proc = run_duckdns(
        "--config", str(cfg), "verify", "--resolver", f"{host}:{port}", "stale.example.com"
    )
    assert proc.returncode == 1
    assert "stale.example.com: 192.0.2.99: MISMATCH" in proc.stdout


def test_unresolvable_is_exit_75(duck, conf, zone):
    duck.client_ip = "203.0.113.7"
    cfg = conf()
    run_duckdns("--config", str(cfg), "update")
    host, port = zone.address
    proc = run_duckdns(
        "--config", str(cfg), "verify", "--resolver", f"{host}:{port}", "nowhere.example.com"
    )
    assert proc.returncode == 75
    assert "nowhere.example.com: cannot resolve" in proc.stdout
