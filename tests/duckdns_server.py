"""A DuckDNS-compatible HTTPS server for tests (standard library only).

It speaks the real API (``GET /update?domains=&token=&ip=&ipv6=&verbose=&clear=&txt=``)
over real TLS, records every request, and can be told to misbehave.

In-process use (unit tests)::

    with DuckDNSServer(cert, key, token=TOKEN, domains=["piserver"]) as srv:
        srv.script = ["status:503", "status:503"]   # then srv.default ("ok")
        ...  # point the updater at srv.url
        assert len(srv.requests) == 3

As a script (system tests run it inside the container)::

    python3 duckdns_server.py --certfile C --keyfile K --port 443 \
        --record /run/duckdns-test/requests.jsonl --control /run/duckdns-test/control.json \
        --token-file /run/duckdns-test/token --domains piserver

The control file is read at every request when it exists: ``{"mode": "status:503"}``,
``{"mode": "ok", "client_ip": "203.0.113.7"}``.

Modes: ``ok`` (the real behaviour), ``ko``, ``status:N``, ``redirect`` (302 to
``/elsewhere``), ``stall:SECONDS``, ``huge`` (1 MiB body), ``garbage``.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit


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
        self.domains = set(domains) if domains else None
        self.record_path = Path(record_path) if record_path else None
        self.control_path = Path(control_path) if control_path else None
        self.requests: list[dict] = []
        self.script: list[str] = []  # modes used one per request, before ``default``
        self.default = "ok"
        self.client_ip: str | None = None  # the "public" address DuckDNS sees; peer if None
        self.ipv4 = ""
        self.ipv6 = ""
        self.txt = ""
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.httpd = ThreadingHTTPServer((host, port), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.duck = self  # type: ignore[attr-defined]
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(certfile), str(keyfile))
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

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

    def answer_update(self, query: dict[str, str], peer: str) -> str:
        """The real service's logic for a well-formed ``/update`` request."""
        if self.token is not None and query.get("token", "").strip() != self.token:
            return "KO"
        names = [d.strip() for d in query.get("domains", "").split(",") if d.strip()]
        if not names or (self.domains is not None and not set(names) <= self.domains):
            return "KO"
        verbose = query.get("verbose", "").lower() == "true"
        changed = False
        with self.lock:
            if "txt" in query:
                new_txt = "" if query.get("clear") == "true" else query["txt"]
                changed = new_txt != self.txt
                self.txt = new_txt
                body = f"OK\n{self.txt}\n{'UPDATED' if changed else 'NOCHANGE'}"
                return body if verbose else "OK"
            if query.get("clear") == "true":
                changed = bool(self.ipv4 or self.ipv6)
                self.ipv4 = self.ipv6 = ""
            else:
                ip = query.get("ip", "")
                ipv6 = query.get("ipv6", "")
                if ip:
                    try:
                        addr = ipaddress.ip_address(ip)
                    except ValueError:
                        return "KO"
                    if addr.version == 6:  # DuckDNS puts an IPv6 given as ip= into AAAA
                        ipv6, ip = ip, ""
                elif "ipv6" not in query or not ipv6:
                    ip = self.client_ip or peer
                new4 = ip or self.ipv4
                new6 = ipv6 or self.ipv6
                changed = (new4, new6) != (self.ipv4, self.ipv6)
                self.ipv4, self.ipv6 = new4, new6
            body = f"OK\n{self.ipv4}\n{self.ipv6}\n{'UPDATED' if changed else 'NOCHANGE'}"
        return body if verbose else "OK"


class _Handler(BaseHTTPRequestHandler):
    server_version = "duckdns-test/1"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet
        pass

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        duck: DuckDNSServer = self.server.duck  # type: ignore[attr-defined]
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        duck.record(
            {
                "time": time.time(),
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
        elif kind == "huge":
            self._send(200, b"OK\n" + b"x" * (1 << 20))
        elif kind == "garbage":
            self._send(200, b"<html>maintenance</html>")
        elif kind == "ko":
            self._send(200, b"KO")
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
    if args.ready_file:
        Path(args.ready_file).write_text(str(server.port))
    try:
        server.httpd.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
