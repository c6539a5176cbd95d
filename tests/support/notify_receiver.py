"""Loopback receivers for Apprise's notifications: a JSON webhook and an SMTP server.

* :class:`Webhook` — what Apprise's ``json://HOST:PORT/PATH`` sends to: an HTTP POST of a
  JSON object (Apprise's "JSON" plugin; its keys ``version``, ``title``, ``message`` and
  ``type``, see https://github.com/caronc/apprise/wiki/Notify_Custom_JSON). ``mode``:
  ``ok`` answers 200 (RFC 9110 §15.3.1), ``error`` 500, ``hang`` reads the request and
  never answers, ``garbage`` answers bytes that are not HTTP (RFC 9112 §4: not a status
  line). Every request is kept raw, headers and body, for the tests to search.
* :class:`Mailbox` — a real SMTP server (Debian's python3-aiosmtpd, RFC 5321) on loopback
  that keeps every message it accepts, for ``mailto://`` (AUTH is offered without TLS, as
  a household server on the LAN may; aiosmtpd's ``auth_require_tls=False``).
* :class:`HostileSMTP` — an SMTP server that misbehaves on purpose, each way a hostile
  or broken one can hold a client (a hostile HTTP receiver: tests/support/hostile_server.py).

Both listen on 127.0.0.1 only. The webhook also runs alone, inside the test containers
(standard library only)::

    python3 notify_receiver.py --port 8089 --record requests.jsonl --ready-file ready
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Webhook:
    def __init__(self, mode: str = "ok", port: int = 0, record: str | None = None) -> None:
        self.mode = mode
        self.requests: list[dict] = []  # {"path", "headers", "body", "json"}
        self._release = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                try:
                    parsed = json.loads(body)
                except ValueError:
                    parsed = None
                outer.requests.append(
                    {"path": self.path, "headers": str(self.headers), "body": body, "json": parsed}
                )
                if record:  # one JSON line per request, the body as text
                    line = {"path": self.path, "headers": str(self.headers), "body": body.decode()}
                    with open(record, "a") as f:
                        f.write(json.dumps(line) + "\n")
                if outer.mode == "hang":
                    outer._release.wait(60)
                    return
                if outer.mode == "garbage":
                    self.wfile.write(b"\x00\xffnot HTTP at all\r\n\r\n")
                    return
                code = 200 if outer.mode == "ok" else 500
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str = "hook") -> str:
        return f"json://127.0.0.1:{self.port}/{path}"

    @property
    def messages(self) -> list[dict]:
        return [r["json"] for r in self.requests]

    def __enter__(self) -> Webhook:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._release.set()
        self.server.shutdown()
        self.server.server_close()


class Mailbox:
    """An SMTP server on 127.0.0.1 keeping each message: ``messages`` (email.message
    objects) and ``raw`` (bytes as received); AUTH LOGIN/PLAIN accepts ``user``/``password``."""

    def __init__(self, user: str, password: str) -> None:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        self.raw: list[bytes] = []
        self.logins: list[tuple[bytes, bytes]] = []
        outer = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's)
                outer.raw.append(envelope.original_content or envelope.content)
                return "250 OK"

        def authenticator(server, session, envelope, mechanism, auth_data):
            login = (auth_data.login, auth_data.password)
            outer.logins.append(login)
            return AuthResult(success=login == (user.encode(), password.encode()))

        self.port = _free_port()  # aiosmtpd's Controller connects to its port to start
        self.controller = Controller(
            Handler(),
            hostname="127.0.0.1",
            port=self.port,
            authenticator=authenticator,
            auth_require_tls=False,
        )

    @property
    def messages(self):
        import email
        from email import policy

        return [email.message_from_bytes(raw, policy=policy.default) for raw in self.raw]

    def __enter__(self) -> Mailbox:
        self.controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self.controller.stop()


class HostileSMTP:
    """An SMTP server on 127.0.0.1 that holds its client, one ``mode`` (raw sockets: the
    replies' grammar is RFC 5321 §4.2, ``code SP text`` or ``code - text`` for all but the
    last line of a multi-line reply):

    - ``greeting-flood``: a multi-line ``220-`` greeting without end (RFC 5321 §4.2.1
      allows any number of continuation lines; Python's smtplib keeps each one);
    - ``stall-after-data``: a normal session up to the end of the message, then no reply
      to it, ever;
    - ``dribble``: as ``stall-after-data`` for :attr:`STALL` seconds, then every reply
      (the message's, QUIT's) a byte every :attr:`DRIBBLE` seconds: each read a socket
      timeout bounds gets its byte in time.

    ``connections`` counts the TCP connections accepted. AUTH PLAIN takes any login."""

    MODES = ("greeting-flood", "stall-after-data", "dribble")
    STALL = 5.0
    DRIBBLE = 5.0

    def __init__(self, mode: str) -> None:
        import socket

        assert mode in self.MODES, mode
        self.mode = mode
        self.connections = 0
        self._closing = threading.Event()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def url(self, user: str, password: str) -> str:
        return (
            f"mailto://{user}:{password}@127.0.0.1:{self.port}"
            "?to=admin@example.org&from=duckdns@example.org"
        )

    def __enter__(self) -> HostileSMTP:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._closing.set()
        self.sock.close()

    def _serve(self) -> None:
        while not self._closing.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def _session(self, conn) -> None:
        try:
            with conn:
                if self.mode == "greeting-flood":
                    line = b"220-" + b"x" * 1000 + b"\r\n"
                    while not self._closing.is_set():
                        conn.sendall(line * 64)
                    return
                conn.sendall(b"220 hostile.example ESMTP\r\n")
                reader = conn.makefile("rb")
                while not self._closing.is_set():
                    command = reader.readline(4096)
                    if not command:
                        return
                    verb = command[:4].upper()
                    if verb == b"EHLO":
                        conn.sendall(b"250-hostile.example\r\n250 AUTH PLAIN\r\n")
                    elif verb == b"AUTH":
                        conn.sendall(b"235 2.7.0 accepted\r\n")
                    elif verb == b"DATA":
                        conn.sendall(b"354 go on\r\n")
                        while reader.readline(4096) not in (b".\r\n", b""):
                            pass
                        self._hold(conn, b"250 2.0.0 queued\r\n")
                    elif verb == b"QUIT":
                        self._hold(conn, b"221 2.0.0 bye\r\n")
                        return
                    else:
                        conn.sendall(b"250 2.0.0 ok\r\n")
        except OSError:
            return

    def _hold(self, conn, reply: bytes) -> None:
        if self.mode == "stall-after-data":
            self._closing.wait()
            return
        self._closing.wait(self.STALL)
        for byte in reply:
            if self._closing.wait(self.DRIBBLE):
                return
            conn.sendall(bytes([byte]))


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:
    import argparse
    from pathlib import Path

    parser = argparse.ArgumentParser(description="A JSON webhook receiver on 127.0.0.1.")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--record", required=True, help="append each request here (JSONL)")
    parser.add_argument("--ready-file", required=True)
    args = parser.parse_args()
    hook = Webhook(port=args.port, record=args.record)
    Path(args.ready_file).write_text("ready\n")
    hook.server.serve_forever()


if __name__ == "__main__":
    main()
