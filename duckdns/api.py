"""Talk to DuckDNS with requests: strict TLS, no redirects, bounded retries.

This is the only module that imports requests (it costs more CPU than the rest of
a run together), and it is imported only when a request is really sent.

Retry policy, as the curl recipe had it (``--retry 5 --retry-max-time 30
--max-time 10 --retry-connrefused``): 10 s per try, first wait 1 s doubling after
each try (jitter only lengthens), at most 5 retries and 30 s in all. Retried:
connection refused or reset, DNS failure, timeouts, HTTP 408/429/5xx. Never
retried: ``KO`` (hammering DuckDNS with a bad token gets users banned), TLS
failures, redirects and unexpected answers.
"""

from __future__ import annotations

import ipaddress
import random
import ssl
import time
from urllib.parse import quote

import requests
import requests.certs
from requests.adapters import HTTPAdapter

from duckdns import __version__, report

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


class Reply:
    """What DuckDNS reported; ``verbose`` is False for a bare ``OK`` (no values shown).

    Addresses are in their canonical text form (as the config and the kernel give ours),
    so they compare as strings whatever spelling DuckDNS uses.
    """

    __slots__ = ("ipv4", "ipv6", "txt", "updated", "verbose")

    def __init__(
        self,
        ipv4: str = "",
        ipv6: str = "",
        txt: str = "",
        updated: bool = False,
        verbose: bool = True,
    ):
        self.ipv4, self.ipv6, self.txt, self.updated = ipv4, ipv6, txt, updated
        self.verbose = verbose


def build_query(
    cfg,
    *,
    ipv4: str | None,
    ipv6: str | None,
    txt: str | None = None,
    clear: bool = False,
    token: str | None = None,
) -> str:
    """The query string, in the order DuckDNS documents it. ``None`` omits a parameter."""
    params = [("domains", ",".join(cfg.domains)), ("token", token or cfg.token)]
    if ipv4 is not None:
        params.append(("ip", ipv4))
    if ipv6 is not None:
        params.append(("ipv6", ipv6))
    if txt is not None:
        params.append(("txt", txt))
    params.append(("verbose", "true"))
    if clear:
        params.append(("clear", "true"))
    return "&".join(f"{k}={quote(v, safe=',:')}" for k, v in params)


def describe(cfg, query: str) -> str:
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

    def __init__(self, cafile: str, **kwargs):
        self._cafile = cafile
        super().__init__(**kwargs)

    def init_poolmanager(self, *args, **kwargs):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.check_hostname = False  # urllib3 matches the host name or IP (see above)
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cafile=self._cafile)
        kwargs["ssl_context"] = ctx
        return super().init_poolmanager(*args, **kwargs)


def _session(cfg) -> requests.Session:
    cafile = cfg.ca_bundle or requests.certs.where()
    session = requests.Session()
    session.trust_env = False  # no proxies, CA bundles or .netrc from the environment
    session.verify = cafile
    session.headers.update({"User-Agent": USER_AGENT, "Accept": "text/plain"})
    session.mount("https://", _StrictTLS(cafile, max_retries=0))
    session.mount("http://", HTTPAdapter(max_retries=0))  # never used: server is https
    return session


make_session = _session  # issue 11: heartbeat pings use the same strict TLS and headers


def _tls_message(host: str, exc: Exception) -> str:
    text = str(exc)
    if "not yet valid" in text or "has expired" in text:
        now = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        return (
            f"TLS certificate of {host} is {'not yet valid' if 'not yet' in text else 'expired'}"
            f" by this machine's clock ({now}): the system clock is probably wrong (boards "
            "without a real-time clock start with a stale time until NTP syncs); "
            "check 'timedatectl status'"
        )
    reason = text.split("certificate verify failed:")[-1].split("(_ssl")[0].strip(" )'\"")
    return f"TLS verification of {host} failed ({reason[:120]}): check the server and ca_bundle"


def _connection_message(host: str, exc: Exception) -> str:
    text = str(exc)
    if (
        "Name or service not known" in text
        or "name resolution" in text.lower()
        or "No address associated" in text
    ):
        return f"cannot resolve {host} (DNS failure)"
    if "refused" in text:
        return f"connection to {host} refused"
    if "unreachable" in text.lower():
        return f"network unreachable for {host}"
    if "reset" in text.lower():
        return f"connection to {host} reset"
    return f"cannot connect to {host}"


def _read_capped(resp: requests.Response, deadline: float) -> bytes:
    body = b""
    for chunk in resp.iter_content(1024):
        body += chunk
        if len(body) > MAX_BODY:
            raise TemporaryFailure(f"DuckDNS answered with an oversized body (> {MAX_BODY} bytes)")
        if time.monotonic() > deadline:
            raise _Retryable(f"answer took longer than {TRY_TIMEOUT:.0f} s")
    return body


def _once(session: requests.Session, url: str, host: str, timeout: float) -> bytes:
    deadline = time.monotonic() + timeout
    try:
        resp = session.get(url, timeout=(timeout, timeout), allow_redirects=False, stream=True)
    except requests.exceptions.SSLError as exc:
        raise TemporaryFailure(_tls_message(host, exc)) from None
    except requests.exceptions.Timeout:
        raise _Retryable(f"no answer from {host} within {timeout:.0f} s") from None
    except requests.exceptions.ConnectionError as exc:
        report.debug(f"connection error: {exc}")  # requests embeds the URL: redacted there
        raise _Retryable(_connection_message(host, exc)) from None
    except requests.exceptions.RequestException as exc:
        raise TemporaryFailure(f"request to {host} failed: {type(exc).__name__}") from None
    with resp:
        status = resp.status_code
        if 300 <= status < 400:
            raise TemporaryFailure(
                f"{host} answered with a redirect (HTTP {status}); redirects are never followed"
            )
        if status in (408, 429) or status >= 500:
            raise _Retryable(f"{host} answered HTTP {status}")
        if status != 200:
            raise TemporaryFailure(f"{host} answered HTTP {status}")
        try:
            return _read_capped(resp, deadline)
        except requests.exceptions.RequestException:
            raise _Retryable(f"connection to {host} broke while reading the answer") from None


SHOWN = 60  # characters of an unexpected answer quoted in the error


def parse_answer(body: bytes, txt: bool = False) -> Reply:
    """Check the answer against the documented forms; anything else is a failure.

    An unexpected answer is quoted in the error, shortened to :data:`SHOWN` characters of
    printable ASCII; secrets are masked before shortening, so a cut cannot keep part of
    one (a server that echoes the request would otherwise show a token's first half).
    """
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        text = None
    lines = text.rstrip("\r\n").split("\n") if text is not None else []
    if lines == ["KO"]:
        raise Rejected("KO")
    if lines == ["OK"]:
        return Reply(verbose=False)
    if lines and lines[0] == "OK":
        state = lines[-1]
        if txt and len(lines) == 3 and state in ("UPDATED", "NOCHANGE"):
            return Reply(txt=lines[1], updated=state == "UPDATED")
        if (
            not txt
            and len(lines) == 4
            and state in ("UPDATED", "NOCHANGE")
            and _is_ip(lines[1], 4)
            and _is_ip(lines[2], 6)
        ):
            return Reply(
                ipv4=_canonical(lines[1]), ipv6=_canonical(lines[2]), updated=state == "UPDATED"
            )
    raise TemporaryFailure(f"unexpected answer from DuckDNS: {_shown(body)!r}")


def _shown(body: bytes) -> str:
    """The start of ``body`` for a message: secrets masked first, then cut, printable ASCII."""
    text = report.redact(body.decode("ascii", "replace"))[:SHOWN].replace("\n", "\\n")
    return "".join(c if " " <= c <= "~" else "?" for c in text)


def _canonical(value: str) -> str:
    return str(ipaddress.ip_address(value)) if value else ""


def _is_ip(value: str, version: int) -> bool:
    """Empty, or an address of ``version`` without a zone (a record holds no zone)."""
    if not value:
        return True
    if "%" in value:
        return False
    try:
        return ipaddress.ip_address(value).version == version
    except ValueError:
        return False


def send(cfg, query: str, txt: bool = False, retries: bool = True) -> Reply:
    """Send one update with the retry policy above; raise Rejected or TemporaryFailure.

    ``retries=False``: a single try (while failures last, see duckdns.backoff).
    """
    host = cfg.server.split("://", 1)[1].split("/", 1)[0]
    url = f"{cfg.server}/update?{query}"
    session = _session(cfg)
    start = time.monotonic()
    wait = FIRST_WAIT
    attempt = 0
    with session:
        while True:
            attempt += 1
            remaining = TOTAL_BUDGET - (time.monotonic() - start)
            try:
                body = _once(session, url, host, min(TRY_TIMEOUT, max(remaining, 1.0)))
            except _Retryable as exc:
                failure = str(exc)
            else:
                try:
                    return parse_answer(body, txt=txt)
                except Rejected:
                    raise Rejected(
                        f"DuckDNS answered KO: the token or a domain ({', '.join(cfg.domains)})"
                        f" is wrong; check both on duckdns.org and in {cfg.path} (not retried)"
                    ) from None
            elapsed = time.monotonic() - start
            delay = wait * (1 + random.uniform(0, 0.1))
            if not retries:
                raise TemporaryFailure(f"{failure} (a single try while the failures last)")
            if attempt > MAX_RETRIES or elapsed + wait > TOTAL_BUDGET:
                raise TemporaryFailure(
                    f"{failure} (gave up after {attempt} tries in {elapsed:.0f} s)"
                )
            delay = min(delay, max(wait, TOTAL_BUDGET - elapsed))
            report.info(f"try {attempt} failed: {failure}; retrying in {delay:.1f} s")
            time.sleep(delay)
            wait *= 2
