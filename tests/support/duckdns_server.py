"""A DuckDNS look-alike HTTPS server for tests (standard library only).

It follows the published API as ``docs/duckdns-api.md`` summarises it (www.duckdns.org/spec.jsp
and the peers' observations cited there); each behaviour below names the rule it implements
("API: ..."). Where the real service's behaviour is not known, the look-alike picks one and says
so ("UNKNOWN: ..."); the updater must not depend on those choices (tests/unit/test_update.py
checks that it never sends such requests). tests/unit/test_duckdns_server.py asserts every rule
with raw HTTP requests.

In-process use (unit tests)::

    with DuckDNSServer(cert, key, token=TOKEN, domains=["piserver"]) as srv:
        srv.client_ip = "203.0.113.7"              # the address DuckDNS "sees"
        srv.script = ["status:503", "status:503"]   # then srv.default ("ok")
        ...  # point the updater at srv.url
        assert len(srv.requests) == 3
        assert srv.records["piserver"]["ipv4"] == "203.0.113.7"

As a script (system tests run it inside the container)::

    python3 duckdns_server.py --certfile C --keyfile K --port 443 \
        --record /run/duckdns-test/requests.jsonl --control /run/duckdns-test/control.json \
        --token-file /run/duckdns-test/token --domains piserver

The control file is read at every request when it exists: ``{"mode": "status:503"}``,
``{"mode": "ok", "client_ip": "203.0.113.7"}`` (the client's "public" IPv4 address, as
DuckDNS would see it behind a NAT router).

Modes: ``ok`` (the real behaviour), ``ko``, ``status:N``, ``redirect`` (302 to
``/elsewhere``), ``stall:SECONDS`` (then a bare ``OK``, nothing takes effect),
``slow:SECONDS`` (a DuckDNS that takes its time: ``ok``'s answer, SECONDS late), ``huge``
(1 MiB body), ``garbage``, ``bare`` (the update takes effect, the answer is its first line
only: ``OK`` or ``KO``), ``answer:TEXT`` (a hostile or mistaken DuckDNS: nothing takes
effect, the body is TEXT as given).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

SUFFIX = ".duckdns.org"
CHUNK = 7  # bytes per chunk: even "OK" answers of a few lines take several chunks


def _address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        """A client that hangs up before the answer is written (the updater reads only the
        heartbeat's status line; a run stopped mid-handshake) is not the server's error:
        only other ones are printed, as socketserver does, so a test's captured stderr holds
        only the updater's."""
        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError, ssl.SSLEOFError)):
            return
        super().handle_error(request, client_address)


def https_server(
    handler,
    certfile: str | Path,
    keyfile: str | Path,
    host: str = "127.0.0.1",
    port: int = 0,
    **attrs,
) -> tuple[ThreadingHTTPServer, threading.Thread]:
    """A threaded HTTPS server of ``handler`` on ``host``:``port`` (0: a free one), with
    ``attrs`` set on it for the handler to find, and the thread to serve it (not started).
    Here, not in a module of its own: this file runs alone inside the containers."""
    httpd = _Server((host, port), handler)
    for name, value in attrs.items():
        setattr(httpd, name, value)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(certfile), str(keyfile))
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    return httpd, thread


class DuckDNSServer:
    """A threaded HTTPS server that behaves like www.duckdns.org."""

    def __init__(
        self,
        certfile: str | Path,
        keyfile: str | Path,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        domains: list[str] | None = None,
        record_path: str | Path | None = None,
        control_path: str | Path | None = None,
    ) -> None:
        self.token = token
        self.domains = list(domains) if domains else None  # None: any subname is the account's
        self.record_path = Path(record_path) if record_path else None
        self.control_path = Path(control_path) if control_path else None
        self.requests: list[dict] = []
        self.script: list[str] = []  # modes used one per request, before ``default``
        self.default = "ok"
        self.client_ip: str | None = None  # the "public" address DuckDNS sees; peer if None
        # API: the records are kept per subname, between requests (A, AAAA and one TXT).
        self.records: dict[str, dict[str, str]] = {}
        self.last_name: str | None = None  # the subname the last update named first
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.httpd, self.thread = https_server(_Handler, certfile, keyfile, host, port, duck=self)
        self.port = self.httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}"

    def start(self) -> DuckDNSServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stop_event.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> DuckDNSServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the records -------------------------------------------------------------------

    def record_of(self, name: str) -> dict[str, str]:
        return self.records.setdefault(name, {"ipv4": "", "ipv6": "", "txt": ""})

    def _last(self, key: str) -> str:
        """A value of the subname the last update named first (tests of one subname)."""
        return self.records.get(self.last_name or "", {}).get(key, "")

    @property
    def ipv4(self) -> str:
        return self._last("ipv4")

    @property
    def ipv6(self) -> str:
        return self._last("ipv6")

    @property
    def txt(self) -> str:
        return self._last("txt")

    # -- behaviour -----------------------------------------------------------------

    def next_mode(self) -> str:
        with self.lock:
            if self.control_path and self.control_path.exists():
                control = json.loads(self.control_path.read_text() or "{}")
                self.client_ip = control.get("client_ip", self.client_ip)
                return control.get("mode", self.default)
            if self.script:
                return self.script.pop(0)
            return self.default

    def record(self, entry: dict) -> None:
        with self.lock:
            self.requests.append(entry)
            if self.record_path:
                with self.record_path.open("a") as f:
                    f.write(json.dumps(entry) + "\n")

    def _names(self, query: dict[str, str]) -> list[str] | None:
        """The subnames of ``domains=``, or None when the request must be refused."""
        names = []
        for raw in query.get("domains", "").split(","):
            name = raw.strip().lower()
            # API: "the .duckdns.org suffix is optional" (spec.jsp; lego, certbot, acme.sh).
            if name.endswith(SUFFIX):
                name = name[: -len(SUFFIX)]
            if name:
                names.append(name)
        # API: "KO means a wrong token or subname": an unknown subname is refused.
        if not names or (self.domains is not None and not set(names) <= set(self.domains)):
            return None
        return names

    def answer_update(self, query: dict[str, str], peer: str) -> str:
        """The real service's logic for an ``/update`` request, rule by rule."""
        # API: "KO means a wrong token".
        if self.token is not None and query.get("token", "").strip() != self.token:
            return "KO"
        names = self._names(query)
        if names is None:
            return "KO"
        verbose = query.get("verbose", "").lower() == "true"
        clear = query.get("clear", "").lower() == "true"
        with self.lock:
            self.last_name = names[0]
            if "txt" in query:
                return self._answer_txt(names, query["txt"], clear, verbose)
            new4 = new6 = None  # None: that record stays as it is
            if clear:
                # API: "clear=true: both records are emptied, whatever the addresses say".
                new4 = new6 = ""
            else:
                ip = query.get("ip", "")
                ipv6 = query.get("ipv6", "")
                if ip:
                    addr = _address(ip)
                    if addr is None:
                        return "KO"  # API: "KO also means a malformed ip value"
                    if addr.version == 6:
                        new6 = str(addr)  # API: "an IPv6 literal in ip sets the AAAA record"
                    else:
                        new4 = str(addr)
                if ipv6:
                    addr = _address(ipv6)
                    # API: "KO also means a malformed ipv6 value". UNKNOWN: an IPv4 literal in
                    # ipv6= is taken as malformed here.
                    if addr is None or addr.version != 6:
                        return "KO"
                    # UNKNOWN: which wins when ip= also held an IPv6 literal; ipv6= here.
                    new6 = str(addr)
                # API: "ip empty or absent means DuckDNS takes the IPv4 address the request
                # comes from", but "when ipv6 is given, the autodetection for ip is not used"
                # (spec.jsp; linuxserver/docker-duckdns #11, home-assistant/addons #2490).
                # UNKNOWN: an empty ipv6= counts as not given here, and leaves AAAA alone.
                if not ip and not ipv6:
                    seen = _address(self.client_ip or peer)
                    # API: "IPv4 autodetection only works for IPv4". UNKNOWN: what a request
                    # over IPv6 does; here nothing.
                    if seen is not None and seen.version == 4:
                        new4 = str(seen)
            changed = False
            for name in names:
                rec = self.record_of(name)
                for key, value in (("ipv4", new4), ("ipv6", new6)):
                    if value is not None and rec[key] != value:
                        rec[key] = value
                        changed = True
            rec = self.record_of(names[0])  # UNKNOWN: what a verbose answer shows for several
            state = "UPDATED" if changed else "NOCHANGE"
            # API: verbose OK answer: "OK", the current IPv4, the current IPv6, UPDATED/NOCHANGE.
            body = f"OK\n{rec['ipv4']}\n{rec['ipv6']}\n{state}"
        return body if verbose else "OK"

    def _answer_txt(self, names: list[str], value: str, clear: bool, verbose: bool) -> str:
        # API: "&txt=VALUE sets the single TXT value; clearing needs &txt=&clear=true (an empty
        # value alone does not clear)". UNKNOWN: whether clear=true with txt= also empties the
        # A/AAAA records; here it does not (the ACME hooks of peers rely on that).
        changed = False
        for name in names:
            rec = self.record_of(name)
            new = "" if clear else (value or rec["txt"])
            changed |= new != rec["txt"]
            rec["txt"] = new
        rec = self.record_of(names[0])
        # API: the verbose TXT answer: "OK", the value, UPDATED/NOCHANGE.
        body = f"OK\n{rec['txt']}\n{'UPDATED' if changed else 'NOCHANGE'}"
        return body if verbose else "OK"


class _Handler(BaseHTTPRequestHandler):
    server_version = "duckdns-test/1"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet
        pass

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        # API: "the real service answers through a proxy with chunked transfer encoding"
        # (ddclient #503, #828): every answer here is chunked, in small chunks.
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=UTF-8")
        self.send_header("Transfer-Encoding", "chunked")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        size = CHUNK if len(body) < 4096 else 4096
        for start in range(0, len(body), size):
            piece = body[start : start + size]
            self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        duck: DuckDNSServer = self.server.duck  # type: ignore[attr-defined]
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        duck.record(
            {
                "time": time.time(),  # the clock a test may fake (tests/support/runner.py)
                "monotonic": time.monotonic(),  # real seconds, for gaps between requests
                "path": parts.path,
                "query": query,
                "client": self.client_address[0],
                "user_agent": self.headers.get("User-Agent", ""),
            }
        )
        mode = duck.next_mode()
        kind, _, arg = mode.partition(":")
        if kind == "status":
            self._send(int(arg), b"error\n")
        elif kind == "redirect":
            self._send(302, b"", {"Location": f"https://localhost:{duck.port}/elsewhere"})
        elif kind == "stall":
            duck.stop_event.wait(float(arg or 60))
            self._send(200, b"OK")
        elif kind == "slow" and parts.path == "/update":
            duck.stop_event.wait(float(arg))
            self._send(200, duck.answer_update(query, self.client_address[0]).encode())
        elif kind == "huge":
            self._send(200, b"OK\n" + b"x" * (1 << 20))
        elif kind == "garbage":
            self._send(200, b"<html>maintenance</html>")
        elif kind == "ko":
            self._send(200, b"KO")
        elif kind == "answer":
            self._send(200, arg.encode("utf-8", "surrogateescape"))
        elif kind == "bare" and parts.path == "/update":
            # UNKNOWN: a DuckDNS that ignores verbose=true (the API documents four lines):
            # the update takes effect, the answer confirms nothing.
            answer = duck.answer_update(query, self.client_address[0])
            self._send(200, answer.split("\n", 1)[0].encode())
        elif parts.path != "/update":
            self._send(404, b"not found\n")
        else:
            self._send(200, duck.answer_update(query, self.client_address[0]).encode())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--certfile", required=True)
    parser.add_argument("--keyfile", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=443)
    parser.add_argument("--record", help="append each request as a JSON line here")
    parser.add_argument("--control", help="JSON file read at each request: {'mode': ...}")
    parser.add_argument("--token-file", help="file holding the only token to accept")
    parser.add_argument("--domains", help="comma-separated subnames to accept")
    parser.add_argument("--client-ip", help="the address DuckDNS sees (default: the peer's)")
    parser.add_argument("--ready-file", help="touched once the server listens")
    args = parser.parse_args()
    token = Path(args.token_file).read_text().strip() if args.token_file else None
    server = DuckDNSServer(
        args.certfile,
        args.keyfile,
        host=args.host,
        port=args.port,
        token=token,
        domains=args.domains.split(",") if args.domains else None,
        record_path=args.record,
        control_path=args.control,
    )
    server.client_ip = args.client_ip
    if args.ready_file:
        Path(args.ready_file).write_text(str(server.port))
    try:
        server.httpd.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
