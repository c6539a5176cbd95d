"""A hostile HTTPS server for tests: every way an answer can be slow, huge or malformed.

It plays a broken DuckDNS or a broken heartbeat monitor over real TLS on loopback (the
test CA's certificate), one behaviour ("mode") per connection, and closes each connection
after its answer. Standard library only: it also runs alone inside the test containers.

In-process use (unit tests)::

    with HostileServer(cert, key, mode="dribble-body") as srv:
        srv.script = ["reset"]        # modes used one per connection, before ``mode``
        ...                           # point the updater at srv.url
        assert srv.connections <= 6

As a script::

    python3 hostile_server.py --cert C --key K --port 8443 --mode dribble-body

``connections`` counts the TCP connections accepted, ``requests`` the request lines read
(a ``tls-stall`` connection is counted in the first only). Modes (:data:`MODES`):

- slow: ``dribble-headers`` (a header byte a second), ``dribble-body`` (a body byte a
  second), ``dribble-chunks`` (chunked, a one-byte chunk a second), ``silence`` (TLS and
  request done, no answer), ``tls-stall`` (TCP accepted, no TLS handshake),
  ``continue-flood`` (``100 Continue`` interim answers, without end);
- big: ``gzip-bomb`` and ``deflate-bomb`` (1 GiB of zeros in ~1 MiB, Content-Encoding),
  ``huge`` (64 MiB body), ``big-length`` (Content-Length 10^12, bytes as fast as taken),
  ``many-headers`` (headers without end), ``long-header`` (a 1 MiB header line);
- malformed: ``bare-ok`` (``OK``), ``ok-extra`` (a verbose OK with extra lines),
  ``html`` (200 with an HTML page), ``html-502`` (502 with an HTML error page),
  ``truncated`` (Content-Length larger than sent), ``reset`` (RST mid-body),
  ``garbage-status``, ``http09`` (a body without a status line), ``status-only``
  (a status line, then the connection closes), ``redirect-301`` and ``redirect-302``
  (to another host), ``empty`` (200, no body), ``bad-chunk`` (an invalid chunk size),
  ``tls-garbage`` (plain text instead of a TLS handshake);
- ``ok``: a well-formed verbose DuckDNS answer (the client's address, UPDATED).
"""

from __future__ import annotations

import argparse
import socket
import ssl
import struct
import threading
import time
import zlib
from pathlib import Path

SLOW = ("dribble-headers", "dribble-body", "dribble-chunks", "silence", "tls-stall")
MODES = (
    *SLOW,
    "continue-flood",
    "gzip-bomb",
    "deflate-bomb",
    "huge",
    "big-length",
    "many-headers",
    "long-header",
    "bare-ok",
    "ok-extra",
    "html",
    "html-502",
    "truncated",
    "reset",
    "garbage-status",
    "http09",
    "status-only",
    "redirect-301",
    "redirect-302",
    "empty",
    "bad-chunk",
    "tls-garbage",
    "ok",
)
BOMB_SIZE = 1 << 30  # bytes once inflated
HTML = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>\n"

_bombs: dict[str, bytes] = {}
_bomb_lock = threading.Lock()


def bomb(encoding: str) -> bytes:
    """BOMB_SIZE zero bytes compressed as ``encoding`` ("gzip" or "deflate"), made once."""
    with _bomb_lock:
        if encoding not in _bombs:
            wbits = 31 if encoding == "gzip" else 15
            packer = zlib.compressobj(9, zlib.DEFLATED, wbits)
            zeros = bytes(1 << 20)
            parts = [packer.compress(zeros) for _ in range(BOMB_SIZE >> 20)]
            _bombs[encoding] = b"".join(parts) + packer.flush()
        return _bombs[encoding]


class HostileServer:
    """A threaded HTTPS server on ``host`` that misbehaves as its mode says."""

    def __init__(
        self,
        certfile: str | Path,
        keyfile: str | Path,
        host: str = "127.0.0.1",
        port: int = 0,
        mode: str = "ok",
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}")
        self.mode = mode
        self.script: list[str] = []  # modes used one per connection, before ``mode``
        self.connections = 0
        self.requests: list[str] = []  # the request lines read (never printed: secrets)
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(str(certfile), str(keyfile))
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}"

    def start(self) -> HostileServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stop_event.set()
        self.sock.close()

    def __enter__(self) -> HostileServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _next_mode(self) -> str:
        with self.lock:
            self.connections += 1
            return self.script.pop(0) if self.script else self.mode

    def _serve(self) -> None:
        while not self.stop_event.is_set():
            try:
                conn, peer = self.sock.accept()
            except OSError:
                return
            mode = self._next_mode()
            threading.Thread(target=self._handle, args=(conn, peer, mode), daemon=True).start()

    # -- one connection -------------------------------------------------------------------

    def _handle(self, conn: socket.socket, peer: tuple, mode: str) -> None:
        try:
            with conn:
                if mode == "tls-stall":
                    self._idle(conn)
                    return
                if mode == "tls-garbage":
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK")
                    return
                conn.settimeout(30)
                tls = self.ctx.wrap_socket(conn, server_side=True)
                with tls:
                    if not self._read_request(tls):
                        return
                    tls.settimeout(None)
                    self._answer(tls, peer, mode)
                    if mode != "reset":
                        try:
                            tls.unwrap()  # close_notify, as a server that is done does
                        except (OSError, ValueError):
                            pass
        except (OSError, ValueError):
            pass  # the client gave up: that is what it should do

    def _read_request(self, tls: ssl.SSLSocket) -> bool:
        data = b""
        while b"\r\n\r\n" not in data:
            piece = tls.recv(4096)
            if not piece or len(data) > 65536:
                return False
            data += piece
        with self.lock:
            self.requests.append(data.split(b"\r\n", 1)[0].decode("latin-1"))
        return True

    def _idle(self, conn: socket.socket) -> None:
        """Hold the connection open, reading nothing, until the client or the server quits."""
        conn.settimeout(0.2)
        while not self.stop_event.is_set():
            try:
                if conn.recv(1, socket.MSG_PEEK) == b"":
                    return
                time.sleep(0.2)  # bytes the client sent: left unread
            except TimeoutError:
                continue

    def _drip(self, tls: ssl.SSLSocket, head: bytes, data: bytes, chunked: bool = False) -> None:
        """``head`` at once, then ``data`` a byte a second (as chunks if ``chunked``)."""
        tls.sendall(head)
        for i in range(len(data)):
            if self.stop_event.wait(1.0):
                return
            byte = data[i : i + 1]
            tls.sendall(b"1\r\n" + byte + b"\r\n" if chunked else byte)
        if chunked:
            tls.sendall(b"0\r\n\r\n")

    def _answer(self, tls: ssl.SSLSocket, peer: tuple, mode: str) -> None:
        ok = f"OK\n{peer[0]}\n\nUPDATED".encode()

        def head(status: str, *headers: str) -> bytes:
            lines = [f"HTTP/1.1 {status}", "Connection: close", *headers]
            return ("\r\n".join(lines) + "\r\n\r\n").encode()

        def plain(status: str, body: bytes, *headers: str) -> bytes:
            return head(status, *headers, f"Content-Length: {len(body)}") + body

        if mode == "ok":
            tls.sendall(plain("200 OK", ok, "Content-Type: text/plain"))
        elif mode == "bare-ok":
            tls.sendall(plain("200 OK", b"OK", "Content-Type: text/plain"))
        elif mode == "ok-extra":
            tls.sendall(
                plain("200 OK", ok + b"\nextra line\nand another", "Content-Type: text/plain")
            )
        elif mode == "html":
            tls.sendall(plain("200 OK", HTML, "Content-Type: text/html"))
        elif mode == "html-502":
            tls.sendall(plain("502 Bad Gateway", HTML, "Content-Type: text/html"))
        elif mode == "empty":
            tls.sendall(plain("200 OK", b""))
        elif mode in ("redirect-301", "redirect-302"):
            status = "301 Moved Permanently" if mode.endswith("301") else "302 Found"
            tls.sendall(plain(status, b"", "Location: https://127.0.0.2:1/elsewhere"))
        elif mode == "garbage-status":
            tls.sendall(b"HTTP/1.1 2OO 0K\r\nContent-Length: 2\r\n\r\nOK")
        elif mode == "http09":
            tls.sendall(ok)
        elif mode == "status-only":
            tls.sendall(b"HTTP/1.1 200 OK\r\n")
        elif mode == "truncated":
            head = "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 100\r\n\r\n"
            tls.sendall(head.encode() + ok)
        elif mode == "reset":
            head = "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 100\r\n\r\n"
            tls.sendall(head.encode() + ok[:4])
            time.sleep(0.1)
            # SO_LINGER 0: close() sends a RST, not a FIN
            tls.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        elif mode == "bad-chunk":
            tls.sendall(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nOK\r\n0\r\n\r\n"
            )
        elif mode in ("gzip-bomb", "deflate-bomb"):
            encoding = mode.split("-")[0]
            tls.sendall(plain("200 OK", bomb(encoding), f"Content-Encoding: {encoding}"))
        elif mode == "huge":
            size = 64 << 20
            tls.sendall(head("200 OK", f"Content-Length: {size}"))
            self._flood(tls, b"x" * 65536, size)
        elif mode == "big-length":
            tls.sendall(head("200 OK", f"Content-Length: {10**12}"))
            self._flood(tls, b"x" * 65536, 10**12)
        elif mode == "many-headers":
            tls.sendall(b"HTTP/1.1 200 OK\r\n")
            self._flood(tls, b"X-Again: and again\r\n" * 1000, 10**12)
        elif mode == "long-header":
            tls.sendall(b"HTTP/1.1 200 OK\r\nX-Long: " + b"a" * (1 << 20) + b"\r\n\r\nOK")
        elif mode == "continue-flood":
            self._flood(tls, b"HTTP/1.1 100 Continue\r\n\r\n" * 100, 10**12)
        elif mode == "dribble-headers":
            self._drip(tls, b"HTTP/1.1 200 OK\r\n", b"X-Slow: " + b"a" * 3600 + b"\r\n\r\nOK")
        elif mode == "dribble-body":
            body = ok + b"\n" * 3600
            head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            self._drip(tls, head, body)
        elif mode == "dribble-chunks":
            head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            self._drip(tls, head, ok + b"\n" * 3600, chunked=True)
        elif mode == "silence":
            self.stop_event.wait(3600)

    def _flood(self, tls: ssl.SSLSocket, block: bytes, total: int) -> None:
        """Send ``block`` again and again, up to ``total`` bytes or until the client leaves."""
        sent = 0
        while sent < total and not self.stop_event.is_set():
            tls.sendall(block)
            sent += len(block)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--cert", required=True, help="the server certificate (PEM)")
    parser.add_argument("--key", required=True, help="its key (PEM)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=443)
    parser.add_argument("--mode", default="ok", choices=MODES)
    parser.add_argument("--ready-file", help="written with the port once the server listens")
    args = parser.parse_args()
    server = HostileServer(args.cert, args.key, args.host, args.port, args.mode)
    if args.mode.endswith("-bomb"):
        bomb(args.mode.split("-")[0])  # made before the first client waits for it
    if args.ready_file:
        Path(args.ready_file).write_text(str(server.port))
    try:
        server._serve()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
