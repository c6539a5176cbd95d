#!/usr/bin/env python3
"""A router's NAT-PMP (RFC 6886) and PCP (RFC 6887) responder, written from the RFCs, with
the ways a router can answer badly.

Usable in-process (``with Responder(mode, external) as r: r.address``) or as a script
(``natpmp_responder.py --listen 127.0.0.1:5351 --external 81.2.69.160 --mode ok``).

Modes:
  ok             both protocols answer correctly with ``external``
  natpmp-only    PCP requests get NAT-PMP's "unsupported version" (RFC 6887 section 9)
  pcp-only       NAT-PMP requests get PCP's UNSUPP_VERSION (RFC 6887 section 9)
  no-public      as miniupnpd does when its WAN address is not public: NAT-PMP result 3
                 (RFC 6886 section 3.5), PCP NO_RESOURCES carrying ``external``
  result:N       NAT-PMP answers result code N (RFC 6886 section 3.5), PCP code N too
  garbage        random bytes
  short          a NAT-PMP answer cut to 10 bytes (section 3.2 says 12)
  wrong-opcode   NAT-PMP opcode 129, PCP opcode PEER
  wrong-version  version 1 in both
  wrong-nonce    the PCP answer's nonce is not the request's (RFC 6887 section 11.4)
  not-mapped     the PCP address is not IPv4-mapped (RFC 6887 section 5)
  elsewhere      correct answers, sent from another socket (another port)
  silent         nothing
  flood          100 garbage datagrams for each request, then nothing
"""

from __future__ import annotations

import argparse
import os
import socket
import struct
import threading

PORT = 5351  # RFC 6886 section 3; RFC 6887 section 19.1


class Responder:
    def __init__(self, mode: str = "ok", external: str = "0.0.0.0", listen=("127.0.0.1", 0)):  # noqa: S104
        self.mode, self.external = mode, external
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(listen)
        self.address = self.sock.getsockname()
        self.requests: list[bytes] = []
        self._stop = False
        self._thread = threading.Thread(target=self.serve, daemon=True)

    def __enter__(self) -> Responder:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop = True
        self._thread.join(2)
        self.sock.close()

    def serve(self, poll: float | None = 0.05) -> None:
        self.sock.settimeout(poll)
        while not self._stop:
            try:
                request, client = self.sock.recvfrom(2048)
            except TimeoutError:
                continue
            except OSError:
                return
            self.requests.append(request)
            for reply in self.replies(request):
                sender = self.sock
                if self.mode == "elsewhere":
                    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    sender.bind((self.address[0], 0))
                sender.sendto(reply, client)
                if sender is not self.sock:
                    sender.close()

    def replies(self, request: bytes) -> list[bytes]:
        mode = self.mode
        if mode == "silent":
            return []
        if mode == "garbage":
            return [os.urandom(12), os.urandom(60)]
        if mode == "flood":
            return [os.urandom(n % 64 + 1) for n in range(100)]
        if len(request) < 2:
            return []
        if request[0] == 0:
            return [self.natpmp(request)]
        if request[0] == 2 and len(request) >= 24:
            return [self.pcp(request)]
        return []

    def natpmp(self, request: bytes) -> bytes:
        """RFC 6886 section 3.2: version 0, opcode 128 + request's, result, epoch, address."""
        mode, result, address = self.mode, 0, self.external
        if mode == "pcp-only":  # RFC 6887 section 9: a PCP-only server's UNSUPP_VERSION
            return bytes((2, 0x80 | request[1], 0, 1)) + bytes(20)
        if mode == "no-public":
            result, address = 3, "0.0.0.0"  # noqa: S104 - section 3.5: network failure
        elif mode.startswith("result:"):
            result, address = int(mode.split(":")[1]), "0.0.0.0"  # noqa: S104
        opcode = 128 + request[1]
        version = 0
        if mode == "wrong-opcode":
            opcode = 129
        if mode == "wrong-version":
            version = 1
        reply = struct.pack("!BBHI", version, opcode, result, 3600) + socket.inet_aton(address)
        return reply[:10] if mode == "short" else reply

    def pcp(self, request: bytes) -> bytes:
        """RFC 6887 section 7.2 header and section 11.1 MAP body."""
        mode = self.mode
        if mode == "natpmp-only":  # RFC 6887 section 9; RFC 6886 section 3.5: result 1
            return struct.pack("!BBHI", 0, 128 + request[1], 1, 3600)
        opcode = request[1] & 0x7F
        result = 0
        if mode == "no-public":
            result = 8  # section 7.4 NO_RESOURCES, as miniupnpd 2.3.1 answers a deletion
        elif mode.startswith("result:"):
            result = int(mode.split(":")[1])
        if mode == "wrong-opcode":
            opcode = 2  # PEER
        version = 1 if mode == "wrong-version" else 2
        header = struct.pack("!BBBBII", version, 0x80 | opcode, 0, result, 0, 3600) + bytes(12)
        body = bytearray(request[24:60].ljust(36, b"\0"))  # nonce, protocol, internal port
        if mode == "wrong-nonce":
            body[:12] = os.urandom(12)
        mapped = b"\0" * 10 + (b"\0\0" if mode == "not-mapped" else b"\xff\xff")
        body[20:36] = mapped + socket.inet_aton(self.external)  # Assigned External IP Address
        return header + bytes(body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default=f"127.0.0.1:{PORT}")
    parser.add_argument("--external", required=True)
    parser.add_argument("--mode", default="ok")
    args = parser.parse_args()
    host, _, port = args.listen.rpartition(":")
    responder = Responder(args.mode, args.external, (host, int(port)))
    print(f"listening on {responder.address[0]}:{responder.address[1]}", flush=True)
    responder.serve(None)


if __name__ == "__main__":
    main()
