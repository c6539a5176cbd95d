"""The DuckDNS look-alike (tests/support/duckdns_server.py) against the published API, rule by rule.

Raw HTTP/1.1 over real TLS, framing decoded here by hand, not through the updater: if the
look-alike drifted from docs/duckdns-api.md, every updater test would prove the wrong thing.
"""

from __future__ import annotations

import socket
import ssl
import time

import pytest
from support.helpers import CANARY

OTHER = "11111111-2222-3333-4444-555555555555"


def raw_get(duck, test_ca, target: str) -> tuple[int, dict, bytes]:
    """Send ``GET target`` and return (status, headers, de-chunked body), checking framing."""
    ctx = ssl.create_default_context(cafile=str(test_ca.cert_path))
    request = f"GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    with (
        socket.create_connection(("127.0.0.1", duck.port), timeout=10) as sock,
        ctx.wrap_socket(sock, server_hostname="localhost") as tls,
    ):
        tls.sendall(request.encode())
        data = b""
        while chunk := tls.recv(65536):
            data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    body, chunks = b"", 0
    while True:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            assert rest == b"\r\n", "the last chunk must end the message"
            break
        body += rest[:size]
        assert rest[size : size + 2] == b"\r\n"
        rest = rest[size + 2 :]
        chunks += 1
    headers["_chunks"] = str(chunks)
    return status, headers, body


def update(duck, test_ca, query: str, token: str = CANARY) -> str:
    status, _, body = raw_get(duck, test_ca, f"/update?domains=piserver&token={token}&{query}")
    assert status == 200
    return body.decode()


@pytest.fixture
def seen(duck):
    duck.client_ip = "203.0.113.7"  # what DuckDNS sees as the request's address
    return duck


def test_every_answer_is_chunked_in_several_chunks(seen, test_ca):
    # API: the real service answers with chunked transfer encoding (ddclient #503, #828).
    status, headers, body = raw_get(seen, test_ca, f"/update?domains=piserver&token={CANARY}")
    assert (status, body) == (200, b"OK")
    assert headers["transfer-encoding"] == "chunked" and "content-length" not in headers
    _, headers, body = raw_get(
        seen, test_ca, f"/update?domains=piserver&token={CANARY}&ip=&verbose=true"
    )
    assert int(headers["_chunks"]) > 1
    seen.default = "status:503"
    status, headers, _ = raw_get(seen, test_ca, "/update")
    assert status == 503 and headers["transfer-encoding"] == "chunked"


def test_empty_ip_autodetects_the_ipv4_address_the_request_comes_from(seen, test_ca):
    # API: ip empty or absent: DuckDNS takes the IPv4 address the request comes from.
    assert update(seen, test_ca, "ip=&verbose=true") == "OK\n203.0.113.7\n\nUPDATED"
    assert update(seen, test_ca, "verbose=true") == "OK\n203.0.113.7\n\nNOCHANGE"
    seen.client_ip = None  # the peer itself: loopback here
    assert update(seen, test_ca, "verbose=true") == "OK\n127.0.0.1\n\nUPDATED"


def test_ipv6_given_means_no_ipv4_autodetection(seen, test_ca):
    # API: when ipv6 is given, the autodetection for ip is not used: ip=&ipv6=X sets AAAA only.
    assert update(seen, test_ca, "ip=&ipv6=2001:DB8::1&verbose=true") == (
        "OK\n\n2001:db8::1\nUPDATED"
    )
    assert seen.records["piserver"] == {"ipv4": "", "ipv6": "2001:db8::1", "txt": ""}
    # Then an ip= request without ipv6 sets A and leaves AAAA as it was.
    assert update(seen, test_ca, "ip=&verbose=true") == "OK\n203.0.113.7\n2001:db8::1\nUPDATED"
    seen.client_ip = "198.51.100.20"
    assert update(seen, test_ca, "ip=&ipv6=2001:db8::2&verbose=true") == (
        "OK\n203.0.113.7\n2001:db8::2\nUPDATED"
    ), "A must stay on the old address: no autodetection with ipv6="


def test_literals_set_their_records(seen, test_ca):
    assert update(seen, test_ca, "ip=198.51.100.4&ipv6=2001:db8::4&verbose=true") == (
        "OK\n198.51.100.4\n2001:db8::4\nUPDATED"
    )
    # API: an IPv6 literal in ip= sets the AAAA record.
    assert update(seen, test_ca, "ip=2001:db8::5&verbose=true") == (
        "OK\n198.51.100.4\n2001:db8::5\nUPDATED"
    )


@pytest.mark.parametrize(
    "query", ["ip=198.51.100.256", "ip=not-an-address", "ipv6=2001:db8::g", "ipv6=198.51.100.4"]
)
def test_malformed_addresses_answer_ko(seen, test_ca, query):
    # API: KO also means a malformed ip/ipv6 value (home-assistant/addons #1188, #1430).
    assert update(seen, test_ca, query + "&verbose=true") == "KO"
    assert seen.records.get("piserver", {}).get("ipv4", "") == ""


def test_wrong_token_or_unknown_subname_answers_ko(seen, test_ca):
    # API: KO means a wrong token or subname.
    assert update(seen, test_ca, "ip=", token=OTHER) == "KO"
    _, _, body = raw_get(seen, test_ca, f"/update?domains=nothere&token={CANARY}&ip=")
    assert body == b"KO"
    _, _, body = raw_get(seen, test_ca, f"/update?domains=piserver,nothere&token={CANARY}&ip=")
    assert body == b"KO"
    _, _, body = raw_get(seen, test_ca, f"/update?domains=&token={CANARY}&ip=")
    assert body == b"KO"
    assert seen.records.get("piserver", {}).get("ipv4", "") == ""


def test_records_are_kept_per_subname_and_the_suffix_is_optional(seen, test_ca):
    _, _, body = raw_get(
        seen, test_ca, f"/update?domains=PiServer.duckdns.org&token={CANARY}&ip=&verbose=true"
    )
    assert body == b"OK\n203.0.113.7\n\nUPDATED"
    _, _, body = raw_get(
        seen, test_ca, f"/update?domains=cloud&token={CANARY}&ip=2001:db8::9&verbose=true"
    )
    assert body == b"OK\n\n2001:db8::9\nUPDATED"
    assert seen.records["piserver"]["ipv4"] == "203.0.113.7"
    assert seen.records["piserver"]["ipv6"] == ""
    assert seen.records["cloud"] == {"ipv4": "", "ipv6": "2001:db8::9", "txt": ""}


def test_clear_empties_both_records_whatever_the_addresses_say(seen, test_ca):
    update(seen, test_ca, "ip=198.51.100.4&ipv6=2001:db8::4")
    # API: clear=true: both records are emptied, whatever the addresses say.
    assert update(seen, test_ca, "ip=198.51.100.5&clear=true&verbose=true") == ("OK\n\n\nUPDATED")
    assert update(seen, test_ca, "clear=true&verbose=true") == "OK\n\n\nNOCHANGE"


def test_txt_set_keep_and_clear(seen, test_ca):
    update(seen, test_ca, "ip=198.51.100.4")
    # API: txt=VALUE sets the single TXT value; verbose answer of three lines.
    assert update(seen, test_ca, "txt=abc&verbose=true") == "OK\nabc\nUPDATED"
    assert update(seen, test_ca, "txt=abc&verbose=true") == "OK\nabc\nNOCHANGE"
    # API: an empty value alone does not clear; txt=&clear=true does.
    assert update(seen, test_ca, "txt=&verbose=true") == "OK\nabc\nNOCHANGE"
    assert update(seen, test_ca, "txt=&clear=true&verbose=true") == "OK\n\nUPDATED"
    assert seen.records["piserver"]["ipv4"] == "198.51.100.4", "TXT requests leave A alone"


def test_without_verbose_the_answer_is_ok_only(seen, test_ca):
    assert update(seen, test_ca, "ip=") == "OK"
    assert seen.records["piserver"]["ipv4"] == "203.0.113.7"


def test_script_mode_runs_as_the_system_tests_start_it(tmp_path, server_cert, test_ca):
    """The CLI the system tests' harness uses: --token-file, --domains, --record, --control."""
    import json
    import subprocess
    import sys
    import time

    from support.helpers import TESTS

    cert, key = server_cert
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "token").write_text(CANARY + "\n")
    (tmp_path / "control.json").write_text(json.dumps({"mode": "ok", "client_ip": "192.0.2.8"}))
    ready = tmp_path / "ready"
    proc = subprocess.Popen(
        [
            sys.executable,
            str(TESTS / "support" / "duckdns_server.py"),
            *("--certfile", str(cert), "--keyfile", str(key), "--port", str(port)),
            *("--record", str(tmp_path / "rec.jsonl"), "--control", str(tmp_path / "control.json")),
            *("--token-file", str(tmp_path / "token"), "--domains", "piserver"),
            *("--ready-file", str(ready)),
        ]
    )
    try:
        deadline = time.monotonic() + 10
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.05)

        class Port:
            pass

        srv = Port()
        srv.port = port
        status, headers, body = raw_get(
            srv, test_ca, f"/update?domains=piserver&token={CANARY}&ip=&verbose=true"
        )
        assert (status, body) == (200, b"OK\n192.0.2.8\n\nUPDATED")
        assert headers["transfer-encoding"] == "chunked"
        [entry] = [json.loads(x) for x in (tmp_path / "rec.jsonl").read_text().splitlines()]
        assert entry["query"]["ip"] == "" and entry["path"] == "/update"
    finally:
        proc.terminate()
        proc.wait(10)


def test_slow_mode_answers_as_ok_does_only_later(seen, test_ca):
    """``slow:SECONDS``: the booted upgrade test's DuckDNS that holds its answer."""
    seen.default = "slow:0.5"
    began = time.monotonic()
    assert update(seen, test_ca, "ip=&verbose=true") == "OK\n203.0.113.7\n\nUPDATED"
    assert time.monotonic() - began >= 0.5
    assert seen.records["piserver"]["ipv4"] == "203.0.113.7"
