"""Property-based fuzzing of the config reader, and hostile config files in a real process.

For any text, :func:`duckdns.config.parse` returns a Config or raises ConfigError, nothing
else, and no refusal holds the canary token or the heartbeat URL's secret part, even
before redaction (nothing that may be a secret is quoted back). The server URL, probe and
address parsers return or raise ValueError only, and a server URL that is accepted is
read the same way by the URL parsers the request goes through.
"""

from __future__ import annotations

import os
import socket
import time
from urllib.parse import urlsplit

import pytest
from support.helpers import CANARY

from duckdns import config, report

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

HEARTBEAT = "https://hc-ping.com/ping-slug-kept-secret-xyz"
SECRET_PARTS = (CANARY, CANARY[:8], "slug-kept")
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _outcome(text: str) -> str | None:
    """The refusal's text (None: accepted), the redaction registry cleared first."""
    report._secrets.clear()
    try:
        cfg = config.parse(text, "/etc/duckdns/duckdns.conf")
    except config.ConfigError as exc:
        return str(exc)
    # What was accepted is what the run uses: the canonical server URL parses to itself.
    again = config.parse_https_url(cfg.server)
    assert (again.base, again.netloc) == (cfg.server, cfg.server_host)
    return None


def _assert_clean(message: str | None) -> None:
    if message is None:
        return
    for part in SECRET_PARTS:
        assert part not in message, message  # the raw text: nothing registered needed
        assert part not in report.redact(message), message


VALUES = st.sampled_from(
    [
        "piserver",
        "piserver.duckdns.org, cloud",
        CANARY,
        CANARY.upper(),
        f" '{CANARY}' ",
        HEARTBEAT,
        "auto",
        "off",
        "1.2.3.4",
        "2001:db8::1",
        "fe80::1%eth0",
        "https://www.duckdns.org",
        "https://localhost:8443/duck/",
        "https://[::1]:99999",
        "https://[::1",
        "https://host\\.example",
        "cloudflare@1.1.1.1",
        "opendns@[::1]:53",
        "cloudflare@1.1.1.1:0",
        "24h",
        "0",
        "99999999999999d",
        "2²",
        "３h",
        "/etc/ssl/certs/ca-certificates.crt",
        "/dev/zero",
        "",
    ]
)
KEYS = st.sampled_from([*config.KEYS, "url", "cacert", "colour", "Token", "--token"])
SEPARATORS = st.sampled_from([" = ", "=", ": ", " ", ":", " == "])


@st.composite
def values(draw) -> str:
    """A value: a sample, random text, or random text with a secret put anywhere in it."""
    kind = draw(st.integers(0, 2))
    if kind == 0:
        return draw(VALUES)
    text = draw(st.text(max_size=40))
    if kind == 1:
        return text
    secret = draw(st.sampled_from([CANARY, HEARTBEAT]))
    at = draw(st.integers(0, len(text)))
    return text[:at] + secret + text[at:]


@st.composite
def lines(draw) -> str:
    kind = draw(st.integers(0, 5))
    if kind == 0:  # a secret alone on its line, or with curl's ways of writing an option
        prefix = draw(st.sampled_from(["", "token:", "token ", "--token=", "healthcheck:", " "]))
        return prefix + draw(st.sampled_from([CANARY, HEARTBEAT]))
    if kind == 1:
        return draw(st.sampled_from(["", "# comment", f"# {CANARY}", "\t"]))
    if kind == 2:
        return draw(st.text(max_size=60))
    if kind == 3:  # the recipe's url line, hostile or not
        query = draw(
            st.sampled_from(
                [
                    f"domains=pi&token={CANARY}",
                    f"domains=pi&token={CANARY}&token={CANARY}",
                    "",
                    f"token={CANARY}",
                    f"domains=pi&token={CANARY}&ip=1.2.3.4&ipv6={CANARY}",
                ]
            )
        )
        host = draw(st.sampled_from(["www.duckdns.org", "[::1", "[::1]:99999", "a\\.b", "x:y:z"]))
        return f'url = "https://{host}/update?{query}"'
    return draw(KEYS) + draw(SEPARATORS) + draw(values())


@st.composite
def config_texts(draw) -> str:
    """Near-valid files: mostly good lines, hostile ones anywhere, any line ending."""
    good = ["domains = piserver", f"token = {CANARY}", "probe = off", f"healthcheck = {HEARTBEAT}"]
    body = draw(st.lists(st.one_of(st.sampled_from(good), lines()), max_size=12))
    ending = draw(st.sampled_from(["\n", "\r\n", "\r", "\x0c\n"]))
    bom = draw(st.sampled_from(["", "\ufeff"]))
    return bom + ending.join(draw(st.permutations(body))) + draw(st.sampled_from(["", ending]))


@FAST
@given(st.text(max_size=400))
def test_any_text_is_a_config_or_a_clear_refusal(text):
    _assert_clean(_outcome(text))


@FAST
@given(config_texts())
def test_near_valid_texts_never_leak_a_secret(text):
    _assert_clean(_outcome(text))


@FAST
@given(st.one_of(st.text(max_size=80), values()))
def test_the_url_parser_returns_or_raises_value_error(text):
    try:
        url = config.parse_https_url(text, query=True, percent=True)
    except ValueError as exc:
        assert CANARY[:8] not in str(exc) and "slug-kept" not in str(exc)
        return
    _same_for_every_parser(url)


URL_PARTS = st.tuples(
    st.sampled_from(["https://", "HTTPS://", "http://", "https:/", ""]),
    st.sampled_from(["", "user@", "a:b@"]),
    st.one_of(
        st.sampled_from(
            [
                "localhost",
                "LocalHost.",
                "www.duckdns.org",
                "1.2.3.4",
                "1.2.3",
                "0x7f.1",
                "[::1]",
                "[::1",
                "::1",
                "[fe80::1%25eth0]",
                "a_b",
                "-a.b",
                "a..b",
                "",
                "[1.2.3.4]",
            ]
        ),
        st.from_regex(r"[a-z0-9.\-\[\]:]{0,20}", fullmatch=True),
    ),
    st.sampled_from(["", ":", ":443", ":8443", ":0", ":65536", ":99999", ":0443", ":４４３"]),
    st.sampled_from(["", "/", "/duck", "/a/../b", "/%2e", "/a b", "/a\\b", "/update", "//x"]),
    st.sampled_from(["", "?", "?a=b", "#f", "?a#f"]),
)


@FAST
@given(URL_PARTS)
def test_near_valid_urls_are_read_as_the_request_reads_them(parts):
    text = "".join(parts)
    try:
        url = config.parse_https_url(text)
    except ValueError:
        return
    _same_for_every_parser(url)


def _same_for_every_parser(url: config.HttpsURL) -> None:
    """The URL sent (``base`` + "/update?…") goes to the host and port check showed."""
    import urllib3.util

    sent = url.base + "/update?domains=pi"
    split = urlsplit(sent)
    assert (split.hostname, split.port or 443) == (url.hostname, url.port)
    parsed = urllib3.util.parse_url(sent)
    assert (parsed.host.strip("[]"), parsed.port or 443) == (url.hostname, url.port)
    assert parsed.path == url.base.split("://", 1)[1].removeprefix(url.netloc) + "/update"
    assert config.parse_https_url(url.base).base == url.base  # canonical: a fixed point


@FAST
@given(st.text(max_size=60))
def test_probe_and_server_addresses_return_or_raise_value_error(text):
    for parse in (config.parse_probe, config.parse_ip_port):
        try:
            parse(text)
        except ValueError as exc:
            assert CANARY[:8] not in str(exc)


@FAST
@given(st.sampled_from(["cloudflare", "opendns", "google"]), values(), st.text(max_size=8))
def test_probe_entries_never_echo_a_secret(kind, address, port):
    try:
        config.parse_probe(f"{kind}@{address}:{port}")
    except ValueError as exc:
        assert "slug-kept" not in str(exc) and CANARY[:8] not in str(exc)


# -- a real process on hostile files: 0 or 78, within seconds, never the canary ---------------


def _make(tmp_path, kind: str) -> str:
    """A hostile config of ``kind``; returns its path."""
    path = tmp_path / "duckdns.conf"
    good = f"domains = piserver\ntoken = {CANARY}\nprobe = off\n".encode()
    contents = {
        "token-alone": good.replace(b"token = ", b""),
        "token-colon": good.replace(b"token = ", b"token:"),
        "heartbeat-alone": good + HEARTBEAT.encode() + b"\n",
        "nul-bytes": good + b"\0" * 10,
        "invalid-utf8": good + b"domains = \xff\xfe\n",
        "huge": good + b"#" * (config.MAX_SIZE + 1),
        "huge-line": good + b"refresh = " + b"9" * 60000 + b"\n",
        "bom-crlf": b"\xef\xbb\xbf" + good.replace(b"\n", b"\r\n"),
        "server-unclosed": good + b"server = https://[::1\n",
        "server-port": good + b"server = https://localhost:99999\n",
        "recipe-unclosed": f'url = "https://[::1/update?domains=a&token={CANARY}"\n'.encode(),
    }
    if kind in contents:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(contents[kind])
    elif kind == "fifo":
        os.mkfifo(path, 0o600)
    elif kind == "directory":
        return str(tmp_path)
    elif kind == "socket":
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(path))
        sock.close()
    elif kind == "symlink":
        os.symlink("/etc/hostname", path)
    elif kind in ("dev-zero", "dev-null"):
        return f"/dev/{kind[4:]}"
    return str(path)


HOSTILE = [
    "token-alone",
    "token-colon",
    "heartbeat-alone",
    "nul-bytes",
    "invalid-utf8",
    "huge",
    "huge-line",
    "bom-crlf",
    "server-unclosed",
    "server-port",
    "recipe-unclosed",
    "fifo",
    "directory",
    "socket",
    "symlink",
    "dev-zero",
    "dev-null",
]


@pytest.mark.parametrize("kind", HOSTILE)
def test_check_on_a_hostile_file_is_0_or_78_within_seconds(runner, tmp_path, kind):
    path = _make(tmp_path, kind)
    start = time.monotonic()
    proc = runner(path)("check", timeout=20)  # asserts no canary
    elapsed = time.monotonic() - start
    assert elapsed < 5, f"{kind}: {elapsed:.1f} s"
    assert proc.returncode == (0 if kind == "bom-crlf" else 78), proc.stderr
    assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr
    assert "slug-kept" not in proc.stderr + proc.stdout
    if proc.returncode == 78:
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
