"""A UPnP Internet Gateway Device look-alike on loopback, written from the specifications,
with the ways a device on the LAN can answer badly.

* :class:`IGD`: the device's HTTP side: its description (UPnP Device Architecture 1.1
  section 2.3: ``URLBase``, optional, which some devices send, and each service's
  ``controlURL``, relative to it or to the description's own URL) and the SOAP answer to
  ``GetExternalIPAddress`` (WANIPConnection:1 section 2.4.18). Each answer may be given in
  another encoding (XML 1.0 section 4.3.3 and appendix F: UTF-16 with or without a byte
  order mark, an encoding declaration), with a DTD declaring an entity, or pointing the
  control URL at another host. It counts every connection it accepts, so a second
  instance on another loopback address shows whether anything was sent there.
* :class:`SSDP`: the multicast search's answers (section 1.3.3): an ``M-SEARCH`` sent to it
  (a unicast stand-in for 239.255.255.250:1900) is answered by each *device*, a socket
  bound to its own loopback address (all of 127.0.0.0/8 is the loopback on Linux), in the
  order given, each with its ``LOCATION``.
"""

from __future__ import annotations

import http.server
import socket
import threading

SOAP_ANSWER = (
    '<?xml version="1.0" encoding="{encoding}"?>{doctype}'
    '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">'
    '<s:Body><u:GetExternalIPAddressResponse xmlns:u="urn:schemas-upnp-org:service:'
    'WANIPConnection:1"><NewExternalIPAddress>{external}</NewExternalIPAddress>'
    "</u:GetExternalIPAddressResponse></s:Body></s:Envelope>"
)
DESCRIPTION = (
    '<?xml version="1.0" encoding="{encoding}"?>{doctype}'
    '<root xmlns="urn:schemas-upnp-org:device-1-0">{urlbase}<device>'
    "<deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:1</deviceType>"
    "<deviceList><device><deviceList><device><serviceList><service>"
    "<serviceType>urn:schemas-upnp-org:service:WANIPConnection:1</serviceType>"
    "<controlURL>{control}</controlURL></service></serviceList></device></deviceList>"
    "</device></deviceList></device></root>"
)
# A DTD whose internal subset declares the entity "ip" (XML 1.0 section 4.2).
ENTITY_DTD = '<!DOCTYPE {root} [<!ENTITY ip "8.8.8.8">]>'
# Encodings an answer may come in: codec, the name declared, whether a BOM is written.
ENCODINGS = {
    "utf-8": ("utf-8", "UTF-8", False),
    "utf-8-bom": ("utf-8", "UTF-8", True),
    "utf-16": ("utf-16", "UTF-16", True),  # Python's utf-16 writes a BOM
    "utf-16-le-no-bom": ("utf-16-le", "UTF-16", False),
    "utf-16-be-no-bom": ("utf-16-be", "UTF-16", False),
    "latin-1": ("latin-1", "ISO-8859-1", False),
}


def encode(text: str, encoding: str) -> bytes:
    codec, _, bom = ENCODINGS[encoding]
    data = text.encode(codec)
    return ("\ufeff".encode(codec) if bom and codec == "utf-8" else b"") + data


class IGD:
    """The device's HTTP server on ``host`` (a loopback address); ``with IGD() as igd``.

    ``external``: the SOAP answer's address, ``entity``: where a DTD declaring ``&ip;``
    is put ("", "description" or "soap"; with it the address is ``&ip;``), ``encoding``:
    a key of :data:`ENCODINGS`, ``control``: the controlURL, ``urlbase``: a URLBase
    element's text (None: none).
    """

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.external = "81.2.69.160"
        self.entity = ""
        self.encoding = "utf-8"
        self.control = "/ctl/IPConn"
        self.urlbase: str | None = None
        self.connections = 0  # every request, whatever its path
        device = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                device.connections += 1
                self._send(device.description())

            def do_POST(self):  # noqa: N802
                device.connections += 1
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self._send(device.soap())

            def _send(self, data: bytes) -> None:
                self.send_response(200)
                self.send_header("Content-Type", 'text/xml; charset="utf-8"')
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer((host, 0), Handler)
        self.host, self.port = self.server.server_address[:2]
        self.location = f"http://{self.host}:{self.port}/rootDesc.xml"

    def description(self) -> bytes:
        doctype = ENTITY_DTD.format(root="root") if self.entity == "description" else ""
        urlbase = f"<URLBase>{self.urlbase}</URLBase>" if self.urlbase is not None else ""
        text = DESCRIPTION.format(
            encoding=ENCODINGS[self.encoding][1],
            doctype=doctype,
            urlbase=urlbase,
            control=self.control,
        )
        return encode(text, self.encoding)

    def soap(self) -> bytes:
        doctype = ENTITY_DTD.format(root="s:Envelope") if self.entity == "soap" else ""
        external = "&ip;" if self.entity == "soap" else self.external
        text = SOAP_ANSWER.format(
            encoding=ENCODINGS[self.encoding][1], doctype=doctype, external=external
        )
        return encode(text, self.encoding)

    def __enter__(self) -> IGD:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


class SSDP:
    """Answers an M-SEARCH from each of ``devices``: (source address, LOCATION) pairs."""

    def __init__(self, devices: list[tuple[str, str]], host: str = "127.0.0.3") -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.address = self.sock.getsockname()
        self.devices = devices
        self.searches: list[bytes] = []
        self._stop = False
        self._thread = threading.Thread(target=self.serve, daemon=True)

    def serve(self) -> None:
        self.sock.settimeout(0.05)
        while not self._stop:
            try:
                request, client = self.sock.recvfrom(2048)
            except TimeoutError:
                continue
            except OSError:
                return
            self.searches.append(request)
            for source, location in self.devices:
                answer = (  # section 1.3.3
                    "HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\nEXT:\r\n"
                    f"LOCATION: {location}\r\nSERVER: Linux/6 UPnP/1.1 look-alike/1\r\n"
                    "ST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n"
                    "USN: uuid:00000000-0000-0000-0000-000000000000::urn:schemas-upnp-org:"
                    "device:InternetGatewayDevice:1\r\n\r\n"
                ).encode()
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
                    sender.bind((source, 0))
                    sender.sendto(answer, client)

    def __enter__(self) -> SSDP:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop = True
        self._thread.join(2)
        self.sock.close()
