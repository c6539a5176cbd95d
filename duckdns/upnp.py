"""UPnP IGD's ``GetExternalIPAddress``, and the reachability check ``duckdns check`` prints.

Run by hand only (``duckdns check``): it needs multicast, which the hardened unit's timer
runs never use. The steps, each from its specification:

1. SSDP search (UPnP Device Architecture 1.1, section 1.3.2): an ``M-SEARCH`` to
   239.255.255.250:1900 for ``urn:schemas-upnp-org:device:InternetGatewayDevice:1``; a
   response's ``LOCATION`` header (section 1.3.3) names the device description. Only a
   response from the router (the ``router`` setting, else the kernel's default gateway) is
   heard, and only if its ``LOCATION`` is a plain ``http://`` URL on that address: another
   device on the network (a media server, a second router, a hostile host) cannot decide
   the verdict, nor send us elsewhere.
2. The description (section 2.3): the ``controlURL`` of a ``WANIPConnection`` (IGD 1 or 2)
   or ``WANPPPConnection`` service, relative to the description's URL (or to its
   ``URLBase``, which some devices send). It is followed only to the host and port the
   description came from.
3. The SOAP action (section 3.2.1; WANIPConnection:1 section 2.4.18): ``GetExternalIPAddress``,
   whose answer holds ``NewExternalIPAddress`` (empty when the router has none: miniupnpd
   answers so when its WAN address is not public).

Everything within :data:`TIMEOUT` seconds in all (duckdns.deadline), at most
:data:`MAX_BODY` bytes read per answer, and no XML with a DTD: expat itself refuses it
(:func:`parse_xml`), after decoding whatever encoding the answer is in (UTF-16 with or
without a byte order mark, an encoding declaration), so no entity is ever declared.
"""

from __future__ import annotations

import _socket
import ipaddress
import re
import time
from urllib.parse import urljoin, urlsplit  # loaded by every command (duckdns.config)

from duckdns import deadline, report, router

TYPE_CHECKING = False  # for the annotations only, without importing typing
if TYPE_CHECKING:
    from typing import NoReturn
    from xml.etree.ElementTree import Element

    from duckdns.config import Config

TIMEOUT = 3.0
SSDP = ("239.255.255.250", 1900)
SEARCH_TARGET = "urn:schemas-upnp-org:device:InternetGatewayDevice:1"
SERVICES = re.compile(r"urn:schemas-upnp-org:service:WAN(IP|PPP)Connection:[12]")
MAX_BODY = 64 * 1024
PROTOCOL = "UPnP IGD"


def search(gateway: str, timeout: float) -> str | None:
    """The LOCATION URL of ``gateway``'s answer to the SSDP search within ``timeout``, or
    None; another device's answer is ignored (said at -vv)."""
    request = (
        "M-SEARCH * HTTP/1.1\r\n"
        f"HOST: {SSDP[0]}:{SSDP[1]}\r\n"
        'MAN: "ssdp:discover"\r\n'
        "MX: 1\r\n"
        f"ST: {SEARCH_TARGET}\r\n\r\n"
    ).encode()
    end = time.monotonic() + timeout
    sock = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
    try:
        sock.setsockopt(_socket.IPPROTO_IP, _socket.IP_MULTICAST_TTL, 2)
        sock.sendto(request, SSDP)
        while (left := end - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                packet, (source, _) = sock.recvfrom(MAX_BODY)
            except TimeoutError:
                break
            if source != gateway:
                report.debug(
                    f"UPnP: ignored an SSDP answer from {source}, not the router {gateway}"
                )
            elif location := _location(packet, source):
                return location
    finally:
        sock.close()
    return None


def _location(packet: bytes, source: str) -> str | None:
    """The response's LOCATION, if it is ``http://SOURCE[:PORT]/…`` (section 1.3.3)."""
    text = packet.decode("latin-1")
    if not text.startswith("HTTP/1.1 200"):
        return None
    match = re.search(r"^location:[ \t]*(\S+)[ \t]*\r?$", text, re.I | re.M)
    if not match:
        return None
    url = re.fullmatch(r"http://([0-9.]+)(?::([0-9]{1,5}))?(/[!-~]*)?", match[1])
    if not url or url[1] != source:
        return None
    return match[1]


class Refused(ValueError):
    """An answer this module will not use; its text says why, and holds nothing of it."""


def _get(url: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> bytes:
    """One HTTP exchange; at most MAX_BODY bytes of the answer; raises OSError, http.client's
    exceptions, or Refused."""
    import http.client

    parts = urlsplit(url)
    if parts.hostname is None:  # not from this module: its URLs are the router's, by address
        raise Refused("the URL names no host")
    conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=TIMEOUT)
    try:
        conn.request("POST" if body else "GET", parts.path or "/", body, headers or {})
        resp = conn.getresponse()
        data = resp.read(MAX_BODY + 1)
        if resp.status != 200:
            raise Refused(f"the router answered HTTP {resp.status}")
        if len(data) > MAX_BODY:
            raise Refused(f"the router's answer is larger than {MAX_BODY // 1024} KiB")
        return data
    finally:
        conn.close()


def _refuse_dtd(*_: object) -> NoReturn:
    raise Refused("the answer holds a DTD (refused: it could declare entities)")


def parse_xml(data: bytes) -> Element:
    """The answer as an ElementTree element; Refused for a DTD or malformed XML.

    expat detects the encoding and decodes before any handler runs, so the refusal holds
    for every encoding it reads, unlike a search of the raw bytes. A DTD is refused where
    it starts (the StartDoctypeDeclHandler), before any of its declarations is read;
    without one, no entity but XML's five predefined can exist. These are the handlers
    defusedxml's DefusedXMLParser sets (with forbid_dtd=True), from the standard library:
    a Depends on python3-defusedxml for one manual command was not worth it.
    """
    from xml.etree import ElementTree
    from xml.parsers import expat

    builder = ElementTree.TreeBuilder()
    parser = expat.ParserCreate(namespace_separator="}")  # names "namespace}local"
    parser.StartDoctypeDeclHandler = _refuse_dtd
    parser.EntityDeclHandler = _refuse_dtd
    parser.UnparsedEntityDeclHandler = _refuse_dtd
    parser.ExternalEntityRefHandler = _refuse_dtd
    parser.StartElementHandler = builder.start
    parser.EndElementHandler = builder.end
    parser.CharacterDataHandler = builder.data
    try:
        parser.Parse(data, True)
        return builder.close()
    except expat.ExpatError as exc:
        raise Refused(f"malformed XML in the answer ({expat.ErrorString(exc.code)})") from None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _origin(url: str) -> tuple[str | None, int | None]:
    """(host, port) of an http:// URL; (None, None) for one that cannot be read."""
    try:
        parts = urlsplit(url)
        return parts.hostname, parts.port or 80
    except ValueError:  # a bad port or IPv6 literal
        return None, None


def control(location: str) -> tuple[str, str]:
    """(control URL, service type) of the description's WAN connection service."""
    tree = parse_xml(_get(location))
    base = next(
        (e.text.strip() for e in tree.iter() if _local(e.tag) == "URLBase" and e.text), location
    )
    for service in tree.iter():
        if _local(service.tag) != "service":
            continue
        fields = {_local(e.tag): (e.text or "").strip() for e in service}
        if SERVICES.fullmatch(fields.get("serviceType", "")) and fields.get("controlURL"):
            url = urljoin(base, fields["controlURL"])
            if not url.startswith("http://") or _origin(url) != _origin(location):
                why = (
                    "the description's control URL is not on the address that answered "
                    "(refused: only the router itself is asked)"
                )
                report.info(f"UPnP: {why}")
                raise Refused(why)
            return url, fields["serviceType"]
    raise Refused("no WAN connection service in the router's description")


def external_address(url: str, service: str) -> str:
    """``GetExternalIPAddress``'s ``NewExternalIPAddress`` ('' when the router has none)."""
    envelope = (
        '<?xml version="1.0"?>'
        '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" '
        's:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body>'
        f'<u:GetExternalIPAddress xmlns:u="{service}"/></s:Body></s:Envelope>'
    ).encode()
    headers = {
        "Content-Type": 'text/xml; charset="utf-8"',
        "SOAPAction": f'"{service}#GetExternalIPAddress"',
    }
    tree = parse_xml(_get(url, envelope, headers))
    for element in tree.iter():
        if _local(element.tag) == "NewExternalIPAddress":
            return (element.text or "").strip()
    raise Refused("no NewExternalIPAddress in the router's answer")


def ask(gateway: str) -> router.Answer:
    """The UPnP answer of ``gateway`` (the router), as a duckdns.router.Answer; never
    raises for its trouble."""
    try:
        with deadline.bound(TIMEOUT) as mine:
            location = search(gateway, min(TIMEOUT, 1.5))
            if location is None:
                return router.Answer(None, PROTOCOL, why="the router did not answer UPnP's search")
            text = external_address(*control(location))
    except deadline.Expired as exc:
        if exc is not mine:
            raise
        return router.Answer(None, PROTOCOL, why=f"UPnP IGD gave no answer within {TIMEOUT:g} s")
    except Refused as exc:
        return router.Answer(None, PROTOCOL, why=f"UPnP IGD: {exc}")
    except Exception as exc:  # noqa: BLE001 - a router's any failure is only "no answer"
        from duckdns import failure

        why = failure.explain(exc, "the router", TIMEOUT)[0]
        return router.Answer(None, PROTOCOL, why=f"UPnP IGD: {why}")
    try:
        address = str(ipaddress.IPv4Address(text))
    except ValueError:
        return router.Answer(None, PROTOCOL, text == "", "UPnP IGD gave no external address")
    return router.Answer(address, PROTOCOL)


NOT_ASKED = (
    "reachability: not asked (put 'router' first in 'probe', or set 'router = ADDRESS', "
    "and 'duckdns check' asks the router over NAT-PMP, PCP and UPnP)"
)


def asks_router(cfg: Config) -> bool:
    """Whether the configuration asks the router: ``probe = router, …`` or ``router =``."""
    return cfg.router is not None or bool(cfg.probe and cfg.probe[0].kind == "router")


def reachability(cfg: Config, gateway: str | None, duckdns_ipv4: str, host_ipv6: str | None) -> str:
    """``duckdns check``'s verdict line: NAT-PMP/PCP, then UPnP IGD if they gave no address."""
    if not asks_router(cfg):
        return NOT_ASKED
    address, port = cfg.router or (gateway, router.PORT)
    if not address:  # nobody else may decide: any device can answer a multicast search
        why = "no default gateway in the kernel's routing table: set 'router = ADDRESS'"
        answer = router.Answer(None, why=why)
    else:
        answer = router.ask(address, port)
    if address and router.external(answer) is None:
        upnp = ask(address)
        if router.external(upnp) is not None:
            answer = upnp
        else:
            no_public = answer.no_public or upnp.no_public
            answer = answer._replace(no_public=no_public, why=f"{answer.why}; {upnp.why}")
    key = router.verdict(answer, duckdns_ipv4)
    line = router.describe(key, answer, duckdns_ipv4)
    if key == router.CGNAT_NAT and host_ipv6:
        line += f" (this host has the global IPv6 address {host_ipv6})"
    return line
