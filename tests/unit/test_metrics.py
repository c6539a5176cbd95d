"""``duckdns status --prometheus``, read back with prometheus_client's own parser."""

from __future__ import annotations

import pytest
from support.helpers import CANARY, PUBLIC

prometheus = pytest.importorskip(
    "prometheus_client.parser", reason="Debian: python3-prometheus-client (make test-deps)"
)

WRONG = "11111111-2222-3333-4444-555555555555"
PING_KEY = "5ca1ab1e-c0de-4bad-a55e-0123456789ab"


def parse(text: str) -> dict[str, list]:
    families = {f.name: f for f in prometheus.text_string_to_metric_families(text)}
    return {name: family.samples for name, family in families.items()}


def test_a_healthy_host(duck, conf, runner):
    duck.client_ip = PUBLIC
    cfg = conf(
        domains="piserver,cloud",
        ipv6="2001:db8::7",
        healthcheck=f"https://hc-ping.example/{PING_KEY}",
    )
    run = runner(cfg)
    assert run()[0] == 0
    code, out, err = run("status", "--prometheus")
    assert code == 0 and err == ""
    assert CANARY not in out and PING_KEY not in out and "hc-ping" not in out
    metrics = parse(out)
    (success,) = metrics["duckdns_last_success_timestamp_seconds"]
    assert abs(success.value - run.now) < 2
    (change,) = metrics["duckdns_last_change_timestamp_seconds"]
    assert change.value == success.value
    assert metrics["duckdns_consecutive_failures"][0].value == 0
    assert "duckdns_failing_since_timestamp_seconds" not in metrics
    records = {
        (s.labels["domain"], s.labels["type"], s.labels["address"])
        for s in metrics["duckdns_record_info"]
    }
    assert records == {
        ("piserver.duckdns.org", "A", PUBLIC),
        ("cloud.duckdns.org", "A", PUBLIC),
        ("piserver.duckdns.org", "AAAA", "2001:db8::7"),
        ("cloud.duckdns.org", "AAAA", "2001:db8::7"),
    }
    assert all(s.value == 1 for s in metrics["duckdns_record_info"])
    assert "duckdns_probe_trusted" not in metrics  # probe = off: neither trusted nor not


def test_a_failing_host_and_its_probe(duck, dns, conf, runner):
    host, port = dns.address
    cfg = conf(token=WRONG, probe=f"cloudflare@{host}:{port}")
    run = runner(cfg)
    for _ in range(6):
        run()
        run.later(60)
    metrics = parse(run("status", "--prometheus")[1])
    assert metrics["duckdns_consecutive_failures"][0].value == 2
    since = metrics["duckdns_failing_since_timestamp_seconds"][0].value
    assert abs(since - (run.now - 360)) < 2
    assert metrics["duckdns_next_attempt_timestamp_seconds"][0].value == since + 300 + 600
    assert "duckdns_last_success_timestamp_seconds" not in metrics, "never succeeded"
    assert metrics["duckdns_probe_trusted"][0].value == 1


def test_no_state_yet_is_valid_exposition(conf, runner):
    code, out, _ = runner(conf())("status", "--prometheus")
    assert code == 0
    assert set(parse(out)) == {"duckdns_consecutive_failures"}


def test_the_readme_textfile_collector_line_writes_a_parseable_file(conf, runner, tmp_path):
    """docs/monitoring.md's ExecStopPost= line (the README links to it), run by sh with the
    collector's directory moved here."""
    import re
    import subprocess

    from support.helpers import DEBIAN_PYTHON, ROOT

    text = (ROOT / "docs" / "monitoring.md").read_text()
    line = re.search(r"^ExecStopPost=\+/bin/sh -c '(.*)'$", text, re.M).group(1)
    assert "$" not in line, "systemd would expand $ in ExecStopPost="
    out_dir = tmp_path / "node-exporter"
    out_dir.mkdir()
    cfg = conf()
    runner(cfg)()  # one update: a state to show
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "duckdns"
    wrapper.write_text(f'#!/bin/sh\nexec {DEBIAN_PYTHON} -m duckdns --config {cfg} "$@"\n')
    wrapper.chmod(0o755)
    script = line.replace("/var/lib/prometheus/node-exporter", str(out_dir))
    proc = subprocess.run(
        ["/bin/sh", "-c", script],
        env={"PATH": f"{bin_dir}:/usr/bin:/bin", "PYTHONPATH": str(ROOT), "LANG": "C.UTF-8"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out_dir.iterdir()) == ["duckdns.prom"]
    metrics = parse((out_dir / "duckdns.prom").read_text())
    assert metrics["duckdns_consecutive_failures"][0].value == 0
    assert "duckdns_last_success_timestamp_seconds" in metrics
