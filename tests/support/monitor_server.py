"""Look-alikes of the two heartbeat monitors duckdns pings, over real TLS on loopback.

One HTTPS server plays both, each by its documented behaviour ("RULE: ..."):

* Healthchecks.io, https://healthchecks.io/docs/http_api/ and
  https://healthchecks.io/docs/signaling_failures/. RULE hc-ping: ``/<uuid>`` signals
  success and ``/<uuid>/fail`` failure; RULE hc-ok: a ping to a known check is answered
  ``200`` with the body ``OK``. UNKNOWN here: the exact answer for an unknown UUID (this
  server says 404 ``not found``); the updater only looks at "2xx or not".
* Uptime Kuma's push monitor, its server/routers/api-router.js (``/api/push/:pushToken``,
  any method). RULE kuma-status: ``status`` other than ``up`` is DOWN, ``up`` when absent;
  ``msg`` defaults to ``OK``. RULE kuma-ok: a known, active token is answered 200
  ``{"ok":true}``; RULE kuma-unknown: any other is 404
  ``{"ok":false,"msg":"Monitor not found or not active."}``.

``pings`` lists what arrived: {"service": "hc"|"kuma", "key", "status": "up"|"down", "msg"}.
``fail_with`` (an HTTP status) makes every answer that status, to test a broken monitor.
"""

from __future__ import annotations

import json
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from support.duckdns_server import https_server


class MonitorServer:
    def __init__(self, certfile: str | Path, keyfile: str | Path, hc_keys=(), kuma_keys=()) -> None:
        self.hc_keys, self.kuma_keys = set(hc_keys), set(kuma_keys)
        self.pings: list[dict] = []
        self.requests: list[str] = []  # every path+query, as received
        self.fail_with: int | None = None
        self.httpd, self.thread = https_server(_Handler, certfile, keyfile, monitor=self)
        self.port = self.httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}"

    def __enter__(self) -> MonitorServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet
        pass

    def _send(self, status: int, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _handle(self) -> None:
        mon: MonitorServer = self.server.monitor  # type: ignore[attr-defined]
        mon.requests.append(self.path)
        if mon.fail_with:
            self._send(mon.fail_with, b"error\n", "text/plain")
            return
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        if parts.path.startswith("/api/push/"):
            key = parts.path[len("/api/push/") :]
            if key not in mon.kuma_keys:  # RULE kuma-unknown
                body = {"ok": False, "msg": "Monitor not found or not active."}
                self._send(404, json.dumps(body).encode(), "application/json")
                return
            status = "up" if query.get("status", "up") == "up" else "down"  # RULE kuma-status
            msg = query.get("msg") or "OK"
            mon.pings.append({"service": "kuma", "key": key, "status": status, "msg": msg})
            self._send(200, b'{"ok":true}', "application/json")  # RULE kuma-ok
            return
        key, _, signal = parts.path.lstrip("/").partition("/")  # RULE hc-ping
        if key not in mon.hc_keys or signal not in ("", "fail"):
            self._send(404, b"not found", "text/plain")
            return
        status = "down" if signal == "fail" else "up"
        mon.pings.append(
            {"service": "hc", "key": key, "status": status, "msg": "", "at": time.time()}
        )
        self._send(200, b"OK", "text/plain; charset=utf-8")  # RULE hc-ok

    do_GET = do_POST = do_HEAD = _handle  # noqa: N815 - http.server's names
