"""Update only when the address changed: the probe decides whether, never what.

A loopback DNS server plays the "what is my address" resolver; the test DuckDNS
server's ``client_ip`` plays the address DuckDNS sees.
"""

from __future__ import annotations

import json
import os
import time

from helpers import PUBLIC, state_of, update


def test_nothing_changed_means_no_request(duck, dns, probed):
    assert update(probed).returncode == 0
    assert len(duck.requests) == 1
    for _ in range(3):
        proc = update(probed)
        assert proc.returncode == 0 and proc.stderr == ""
    assert len(duck.requests) == 1, "an unchanged address must not reach DuckDNS"
    assert len(dns.queries) == 4
    assert state_of(probed)["probe_trusted"] is True


def test_changed_address_updates_at_once(duck, dns, probed):
    update(probed)
    dns.clear()
    dns.add("whoami.cloudflare", "TXT", "198.51.100.20", rclass="CH")
    duck.client_ip = "198.51.100.20"
    proc = update(probed)
    assert proc.returncode == 0
    assert len(duck.requests) == 2
    assert "IPv4 198.51.100.20" in proc.stderr


def test_probe_failure_means_update(duck, dns, probed):
    update(probed)
    dns.behaviour = "silent"
    assert update(probed).returncode == 0
    assert len(duck.requests) == 2


def test_lying_probe_is_distrusted_until_it_agrees(duck, dns, probed):
    dns.behaviour = "lie"  # answers lie_ipv4, not what DuckDNS sees
    proc = update(probed)
    assert proc.returncode == 0
    assert "address probe answered" in proc.stderr
    assert state_of(probed)["probe_trusted"] is False
    update(probed)
    update(probed)
    assert len(duck.requests) == 3, "an untrusted probe must fall back to updating every run"
    dns.behaviour = "normal"
    update(probed)
    assert state_of(probed)["probe_trusted"] is True
    update(probed)
    assert len(duck.requests) == 4


def test_fallback_to_second_probe(duck, dns, conf):
    duck.client_ip = PUBLIC
    host, port = dns.address
    # The first target is a closed port on loopback: it fails, the second answers.
    cfg = conf(probe=f"cloudflare@127.0.0.1:9, opendns@{host}:{port}")
    update(cfg)
    update(cfg)
    assert len(duck.requests) == 1


def test_periodic_refresh(duck, dns, probed):
    update(probed)
    state = state_of(probed)
    state["last_success"] = time.time() - 25 * 3600
    (probed.parent / "state.json").write_text(json.dumps(state))
    update(probed)
    assert len(duck.requests) == 2


def test_refresh_setting(duck, dns, conf):
    duck.client_ip = PUBLIC
    host, port = dns.address
    cfg = conf(probe=f"cloudflare@{host}:{port}", refresh="1s")
    update(cfg)
    time.sleep(1.1)
    update(cfg)
    assert len(duck.requests) == 2


def test_reconfigured_file_forces_an_update(duck, dns, probed):
    update(probed)
    text = probed.read_text()
    os.unlink(probed)
    fd = os.open(probed, os.O_WRONLY | os.O_CREAT, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    update(probed)
    assert len(duck.requests) == 2


def test_failed_update_is_retried_next_run(duck, dns, probed):
    duck.script = ["ko"]
    assert update(probed).returncode == 1
    assert update(probed).returncode == 0
    assert len(duck.requests) == 2


def test_force_always_sends(duck, dns, probed):
    update(probed)
    update(probed, "--force")
    assert len(duck.requests) == 2
