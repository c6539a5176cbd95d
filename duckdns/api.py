"""Talk to DuckDNS with requests: strict TLS, no redirects, bounded retries.

This is the only module that imports requests (it costs more CPU than the rest of
a run together), and it is imported only when a request is really sent.

Retry policy, as the curl recipe had it (``--retry 5 --retry-max-time 30
--max-time 10 --retry-connrefused``): 10 s per try, first wait 1 s doubling after
each try (jitter only lengthens), at most 5 retries and 30 s in all. Retried:
connection refused or reset, DNS failure, timeouts, answers cut short, HTTP
408/429/5xx. Never retried: ``KO`` (hammering DuckDNS with a bad token gets users
banned), TLS failures, redirects, malformed HTTP and unexpected answers.

Both limits are hard wall-clock bounds (duckdns.deadline), whatever the server does: a
try ends after 10 s however slowly its bytes come, and the call after 30 s.
"""

from __future__ import annotations

import http.client
import ipaddress
import random
import time
from typing import NamedTuple
from urllib.parse import quote

import requests
import requests.certs
import urllib3
from requests.adapters import HTTPAdapter

from duckdns import __version__, config, deadline, report
from duckdns.failure import explain

TYPE_CHECKING = False  # for the annotations only, without importing typing
if TYPE_CHECKING:
    from typing import Any

TRY_TIMEOUT = 10.0
TOTAL_BUDGET = 30.0
MAX_RETRIES = 5
FIRST_WAIT = 1.0
MAX_BODY = 4096
USER_AGENT = f"duckdns-updater/{__version__} (+https://www.duckdns.org/)"


class Rejected(Exception):
    """DuckDNS answered KO. Exit code 1."""


class TemporaryFailure(Exception):
    """Network, TLS, HTTP or protocol failure (after retries where they apply). Exit 75."""


class _Retryable(Exception):
    """A failure worth another try."""


class Reply(NamedTuple):  # typing: loaded with requests anyway
    """What DuckDNS reported; ``verbose`` is False for a bare ``OK`` (no values shown).

    Addresses are in their canonical text form (as the config and the kernel give ours),
    so they compare as strings whatever spelling DuckDNS uses.
    """

    ipv4: str = ""
    ipv6: str = ""
    txt: str = ""
    updated: bool = False
    verbose: bool = True


def build_query(
    cfg: config.Config,
    *,
    ipv4: str | None,
    ipv6: str | None,
    txt: str | None = None,
    clear: bool = False,
    token: str | None = None,
) -> str:
    """The query string, in the order DuckDNS documents it. ``None`` omits a parameter."""
    params = [
        ("domains", ",".join(cfg.domains)),
        ("token", token or cfg.token),
        ("ip", ipv4),
        ("ipv6", ipv6),
        ("txt", txt),
        ("verbose", "true"),
        ("clear", "true" if clear else None),
    ]
    return "&".join(f"{k}={quote(v, safe=',:')}" for k, v in params if v is not None)


def describe(cfg: config.Config, query: str) -> str:
    """The request line, for --dry-run; the token is masked by report.redact."""
    return f"GET {cfg.server}/update?{query}"


class _StrictTLS(HTTPAdapter):
    """TLS 1.2 or newer against one CA file, certificate and host name always verified.

    The CA file is loaded into the context here, not left to requests: requests 2.32
    (Debian 13) no longer loads its bundle into a pool that brings its own
    ``ssl_context`` when ``verify`` is ``True``, so a context without CAs trusted
    nothing there ("unable to get local issuer certificate"). ``cafile`` is the
    config's ``ca_bundle`` or requests' bundle, which Debian points at the system
    store; ssl's default paths are not used because they honour SSL_CERT_FILE.

    Host names are checked by urllib3 (``check_hostname`` off here): urllib3 1.26
    (Debian 12) does not pass an IP address as ``server_hostname``, and Python's
    own check then refuses to start ("check_hostname requires server_hostname");
    urllib3 matches the certificate against the URL's name or IP address itself
    whenever the context does not, on both releases (tests/unit/test_update.py).
    """

    def __init__(self, cafile: str, max_retries: int) -> None:
        self._cafile = cafile
        super().__init__(max_retries=max_retries)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        ctx = config.tls_context(self._cafile)  # the one CA loader: ConfigError if unusable
        ctx.check_hostname = False  # urllib3 matches the host name or IP (see above)
        kwargs["ssl_context"] = ctx
        # Untyped in types-requests (python3-typeshed of Debian 12 and 13): its stub's gap.
        super().init_poolmanager(*args, **kwargs)  # type: ignore[no-untyped-call]


def make_session(cfg: config.Config) -> requests.Session:
    """A session with the strict TLS and headers of every request (heartbeat pings too)."""
    # types-requests' requests/certs.pyi declares nothing ("no public data", Debian 12 and 13),
    # though requests.certs.where is certifi's, as requests documents.
    cafile = cfg.ca_bundle or requests.certs.where()  # type: ignore[attr-defined]
    session = requests.Session()
    session.trust_env = False  # no proxies, CA bundles or .netrc from the environment
    session.verify = cafile
    # A few bytes of answer: nothing to compress (see _read_capped for a server that does).
    session.headers.update(
        {"User-Agent": USER_AGENT, "Accept": "text/plain", "Accept-Encoding": "identity"}
    )
    session.mount("https://", _StrictTLS(cafile, max_retries=0))
    session.mount("http://", HTTPAdapter(max_retries=0))  # never used: server is https
    return session


def _oversized() -> TemporaryFailure:
    return TemporaryFailure(f"DuckDNS answered with an oversized body (> {MAX_BODY} bytes)")


def _read_capped(resp: requests.Response, host: str) -> bytes:
    """The body, at most MAX_BODY bytes as sent and MAX_BODY once decompressed.

    Read undecoded from urllib3 and decompressed here with a bound on the output: urllib3
    would inflate each piece whole (a 1 KiB piece of a deflate bomb is 1 MiB). The body
    is asked for as ``identity``; gzip and deflate are still taken from a server that
    compresses anyway. The caller's deadline bounds the time.
    """
    raw = b""
    while True:
        piece = resp.raw.read(MAX_BODY + 1 - len(raw), decode_content=False)
        if not piece:
            break
        raw += piece
        if len(raw) > MAX_BODY:
            raise _oversized()
    if resp.raw.length_remaining:  # fewer bytes than its Content-Length said
        raise _Retryable(f"{host} closed the connection in the middle of the answer")
    encoding = resp.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        return raw
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise TemporaryFailure(f"{host} answered in an encoding it was not asked for")
    return _inflate(raw, gzip=encoding != "deflate", host=host)


def _inflate(data: bytes, *, gzip: bool, host: str) -> bytes:
    """``data`` decompressed (every gzip member), refused beyond MAX_BODY bytes."""
    import zlib

    # "deflate" means the zlib format, but some servers send raw deflate: both are taken.
    formats = [16 + zlib.MAX_WBITS] if gzip else [zlib.MAX_WBITS, -zlib.MAX_WBITS]
    for wbits in formats:
        out, rest = b"", data
        try:
            while rest:
                stream = zlib.decompressobj(wbits)
                out += stream.decompress(rest, MAX_BODY + 1 - len(out))
                if len(out) > MAX_BODY or stream.unconsumed_tail:
                    raise _oversized()
                if not stream.eof:
                    break  # truncated
                rest = stream.unused_data if gzip else b""
            else:
                return out
        except zlib.error:
            continue
    raise TemporaryFailure(f"{host} answered with a corrupt compressed body")


def _once(
    session: requests.Session, url: str, host: str, timeout: float, ca_bundle: str | None = None
) -> bytes:
    """One request, bounded by ``timeout`` s of wall-clock time in all (deadline.bound):
    connecting, the TLS handshake, the headers and the body, however slowly they come."""
    try:
        with deadline.bound(timeout) as mine:
            resp = session.get(url, timeout=(timeout, timeout), allow_redirects=False, stream=True)
            with resp:
                status = resp.status_code
                if 300 <= status < 400:
                    raise TemporaryFailure(
                        f"{host} answered with a redirect (HTTP {status}); "
                        "redirects are never followed"
                    )
                if status in (408, 429) or status >= 500:
                    raise _Retryable(f"{host} answered HTTP {status}")
                if status != 200:
                    raise TemporaryFailure(f"{host} answered HTTP {status}")
                return _read_capped(resp, host)
    except deadline.Expired as exc:
        if exc is not mine:
            raise
        raise _Retryable(f"no complete answer from {host} within {timeout:.0f} s") from None
    except (
        requests.exceptions.RequestException,
        urllib3.exceptions.HTTPError,
        http.client.HTTPException,
        OSError,
    ) as exc:
        report.debug(f"request failed: {type(exc).__name__}: {exc}")  # URL redacted there
        message, retry = explain(exc, host, timeout, ca_bundle)
        raise (_Retryable if retry else TemporaryFailure)(message) from None


SHOWN = 60  # characters of an unexpected answer quoted in the error


def parse_answer(body: bytes, txt: bool = False) -> Reply:
    """Check the answer against the documented forms; anything else is a failure.

    An unexpected answer is quoted in the error, shortened to :data:`SHOWN` characters and
    made safe to print by report.safe; secrets are masked before shortening, so a cut cannot
    keep part of one (a server that echoes the request would otherwise show a token's first
    half). A TXT answer's value is handed back as it came: the caller checks it against the
    value sent (:func:`txt_mismatch`).
    """
    try:
        lines = body.decode("ascii").rstrip("\r\n").split("\n")
    except UnicodeDecodeError:
        lines = []
    if lines == ["KO"]:
        raise Rejected("KO")
    if lines == ["OK"]:
        return Reply(verbose=False)
    if lines[:1] == ["OK"] and lines[-1] in ("UPDATED", "NOCHANGE"):
        updated = lines[-1] == "UPDATED"
        if txt and len(lines) == 3:
            return Reply(txt=lines[1], updated=updated)
        if not txt and len(lines) == 4:
            ipv4, ipv6 = _canonical(lines[1], 4), _canonical(lines[2], 6)
            if ipv4 is not None and ipv6 is not None:
                return Reply(ipv4, ipv6, updated=updated)
    shown = report.safe(body.decode("ascii", "replace"), SHOWN)
    raise TemporaryFailure(f"unexpected answer from DuckDNS: '{shown}'")


def txt_mismatch(reply: Reply, sent: str) -> str:
    """Why a TXT answer does not confirm ``sent`` ('' if it does, or shows no value).

    A bare ``OK`` shows nothing to compare (accepted, as for the addresses). DuckDNS's
    verbose answer shows the record's value; any other value means the record does not hold
    ours, whatever the first line said.
    """
    if not reply.verbose or reply.txt == sent:
        return ""
    return (
        f"DuckDNS answered with another TXT value ('{report.safe(reply.txt, SHOWN)}') than "
        "the one sent: the record may not hold it; run the command again"
    )


def _canonical(value: str, version: int) -> str | None:
    """``value`` in canonical form ('' for none); None unless it is an address of
    ``version`` without a zone (a record holds no zone)."""
    if not value:
        return ""
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    return str(address) if address.version == version and "%" not in value else None


class _Tries:
    """The tries of one update, and how far they got: what :func:`send` says when its bound
    ends them. They loop in a frame of their own: no loop may run in a bound's
    (duckdns.deadline)."""

    def __init__(self, url: str, host: str, retries: bool, ca_bundle: str | None) -> None:
        self.url, self.host, self.retries, self.ca_bundle = url, host, retries, ca_bundle
        self.start = time.monotonic()
        self.attempt = 0
        self.failure = f"no answer from {host}"

    def run(self, session: requests.Session) -> bytes:
        wait = FIRST_WAIT
        while True:
            self.attempt += 1
            remaining = TOTAL_BUDGET - (time.monotonic() - self.start)
            try:
                try_timeout = min(TRY_TIMEOUT, max(remaining, 0.1))
                return _once(session, self.url, self.host, try_timeout, self.ca_bundle)
            except _Retryable as exc:
                self.failure = str(exc)
            elapsed = time.monotonic() - self.start
            if not self.retries:
                raise TemporaryFailure(f"{self.failure} (a single try while the failures last)")
            if self.attempt > MAX_RETRIES or elapsed + wait > TOTAL_BUDGET:
                raise TemporaryFailure(
                    f"{self.failure} (gave up after {self.attempt} tries in {elapsed:.0f} s)"
                )
            delay = min(wait * (1 + random.uniform(0, 0.1)), TOTAL_BUDGET - elapsed)
            report.info(f"try {self.attempt} failed: {self.failure}; retrying in {delay:.1f} s")
            time.sleep(delay)
            wait *= 2


def send(cfg: config.Config, query: str, txt: bool = False, retries: bool = True) -> Reply:
    """Send one update with the retry policy and hard bounds above; raise Rejected or
    TemporaryFailure. ``retries=False``: a single try (while failures last, see
    duckdns.backoff)."""
    host = cfg.server_host  # both from config.parse_https_url, as check showed them
    tries = _Tries(f"{cfg.server}/update?{query}", host, retries, cfg.ca_bundle)
    with make_session(cfg) as session:
        try:
            with deadline.bound(TOTAL_BUDGET) as whole:
                body = tries.run(session)
        except deadline.Expired as exc:
            if exc is not whole:
                raise
            raise TemporaryFailure(
                f"{tries.failure} (gave up after {tries.attempt} tries: "
                f"the {TOTAL_BUDGET:.0f} s bound ran out)"
            ) from None
    try:
        return parse_answer(body, txt=txt)
    except Rejected:
        raise Rejected(
            f"DuckDNS answered KO: the token or a domain ({', '.join(cfg.domains)})"
            f" is wrong; check both on duckdns.org and in {cfg.path} (not retried)"
        ) from None
