"""Why a request or a DNS question failed, and whether another try may help.

One classifier for the DuckDNS request and the heartbeat ping (requests, urllib3, ssl,
http.client) and for the DNS questions of ``verify`` and ``txt`` (dnspython): by exception
type and errno, never by message text (glibc- and locale-dependent, and requests puts the
URL, token included, in it). The words hold the caller's ``who`` and nothing of the URL.

The libraries' exception classes are taken from ``sys.modules``, not imported: an exception
of a library that was never imported cannot be behind ``exc``, and importing requests to
explain a DNS failure (or dnspython for an HTTP one) would cost more than the command.
"""

from __future__ import annotations

import errno
import os
import sys
import time

# OpenSSL's X509_V_ERR_* codes, as ssl.SSLCertVerificationError.verify_code gives them.
_CLOCK_CODES = {9: "not yet valid", 10: "expired"}
_VERIFY_REASONS = {
    18: "a self-signed certificate",
    19: "a self-signed certificate in the chain",
    20: "issued by a CA that {store} does not hold",
    21: "its signature cannot be verified",
    23: "the certificate is revoked",
    62: "the certificate is for another host name",
    64: "the certificate is for another IP address",
}
_REFUSED = {errno.ECONNREFUSED}
_UNREACHABLE = {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EADDRNOTAVAIL, errno.ENETDOWN}
_RESET = {errno.ECONNRESET, errno.ECONNABORTED, errno.EPIPE}


def _classes(module: str, *names: str) -> tuple[type, ...]:
    """The classes ``names`` of ``module`` if it is loaded (see the module's docstring)."""
    loaded = sys.modules.get(module)
    return tuple(getattr(loaded, name) for name in names if hasattr(loaded, name))


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and every exception behind it: causes, contexts, urllib3's ``reason`` and
    exceptions passed as arguments (requests wraps urllib3's error that way)."""
    seen: list[BaseException] = []
    todo: list[object] = [exc]
    while todo and len(seen) < 32:
        item = todo.pop(0)
        if not isinstance(item, BaseException) or any(item is s for s in seen):
            continue
        seen.append(item)
        todo += [getattr(item, "reason", None), item.__cause__, item.__context__, *item.args]
    return seen


def _first(chain: list[BaseException], *types: type) -> BaseException | None:
    """The first exception of ``chain`` of one of ``types``, or None."""
    return next((e for e in chain if isinstance(e, types)), None)


def explain(
    exc: BaseException, who: str, timeout: float, ca_bundle: str | None = None
) -> tuple[str, bool]:
    """What failed, in words holding ``who``, and whether another try may help.

    ``ca_bundle`` is the config's, when the request trusted it instead of the system's CA
    store: a certificate failure then names the store that was actually used.
    """
    chain = _chain(exc)
    # urllib3 1.26 derives NewConnectionError (refused, unreachable...) from its timeout.
    not_timeouts = _classes("urllib3.exceptions", "NewConnectionError")
    timeouts = (
        TimeoutError,  # socket.timeout too
        *_classes("duckdns.deadline", "Expired"),
        *_classes("urllib3.exceptions", "TimeoutError"),
        *_classes("requests.exceptions", "Timeout"),
        *_classes("dns.exception", "Timeout"),  # dns.resolver.LifetimeTimeout too
    )
    if any(isinstance(e, timeouts) and not isinstance(e, not_timeouts) for e in chain):
        return f"no answer from {who} within {timeout:g} s", True
    found = _dns(chain, who) or _tls(chain, who, ca_bundle)
    if found:
        return found
    if _first(chain, *_classes("socket", "gaierror")):
        return f"cannot resolve {who} (DNS failure)", True
    if _first(chain, *_classes("http.client", "RemoteDisconnected"), EOFError):
        return f"{who} closed the connection without an answer", True
    errnos = {e.errno for e in chain if isinstance(e, OSError) and e.errno is not None}
    if errnos & _REFUSED:
        return f"cannot connect to {who}: connection refused", True
    if errnos & _UNREACHABLE:
        return f"cannot connect to {who}: network unreachable", True
    if errnos & _RESET:
        return f"connection to {who} reset", True
    if _first(chain, *_classes("http.client", "IncompleteRead")):  # also a bad chunk size
        return f"{who} closed the connection in the middle of the answer", True
    if _first(
        chain,
        *_classes("http.client", "HTTPException"),
        *_classes("urllib3.exceptions", "ProtocolError", "DecodeError"),
        *_classes("requests.exceptions", "ChunkedEncodingError", "ContentDecodingError"),
    ):  # a malformed status line or headers: an unexpected answer, not retried
        return f"{who} broke the HTTP protocol (a malformed answer)", False
    if _first(
        chain,
        *_classes("requests.exceptions", "ConnectionError"),
        *_classes("urllib3.exceptions", "NewConnectionError"),
        OSError,
    ):
        words = f": {os.strerror(min(errnos)).lower()}" if errnos else ""  # the errno's words
        return f"cannot connect to {who}{words}", True
    if _first(chain, *_classes("dns.exception", "DNSException")):
        return f"DNS question to {who} failed ({type(exc).__name__})", True
    return f"request to {who} failed ({type(exc).__name__})", False


def _dns(chain: list[BaseException], who: str) -> tuple[str, bool] | None:
    """dnspython's failures (a DNS-level answer or a broken reply), or None."""
    if _first(chain, *_classes("dns.resolver", "NXDOMAIN")):
        return f"the name does not exist (NXDOMAIN at {who})", False
    if _first(chain, *_classes("dns.resolver", "NoAnswer")):
        return f"{who} has no record of that type", False
    if _first(chain, *_classes("dns.message", "ChainTooLong")):
        return f"the CNAME chain at {who} is too long (a loop?)", False
    if _first(chain, *_classes("dns.resolver", "NoNameservers")):
        # One server asked: its answer was an error RCODE (SERVFAIL, REFUSED...), a reply that
        # does not match the question or a broken one; dnspython keeps only their text.
        return f"{who} gave no usable answer (an error, or a broken or mismatched reply)", True
    if _first(chain, *_classes("dns.query", "BadResponse", "UnexpectedSource")):
        return f"{who} sent a reply that does not match the question", True
    if _first(
        chain, *_classes("dns.exception", "FormError"), *_classes("dns.message", "Truncated")
    ):
        return f"{who} sent a malformed or truncated reply", True
    return None


def _tls(chain: list[BaseException], who: str, ca_bundle: str | None) -> tuple[str, bool] | None:
    """TLS failures (only possible once ``ssl`` is loaded), or None."""
    ssl = sys.modules.get("ssl")
    if ssl is None:
        return None
    # Host name mismatches: ssl's, and urllib3 2's own (urllib3 matches names itself).
    mismatch = _classes("urllib3.util.ssl_match_hostname", "CertificateError")
    verify = _first(chain, ssl.SSLCertVerificationError, ssl.CertificateError, *mismatch)
    if verify is not None:
        code = getattr(verify, "verify_code", None)
        if code in _CLOCK_CODES:
            now = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
            return (
                f"TLS certificate of {who} is {_CLOCK_CODES[code]} by this machine's clock "
                f"({now}): the system clock is probably wrong (boards without a real-time "
                "clock start with a stale time until NTP syncs); check 'timedatectl status'"
            ), False
        reason = _VERIFY_REASONS.get(code) if code else "the certificate is for another host"
        store = f"ca_bundle ({ca_bundle})" if ca_bundle else "the system's CA store"
        reason = (reason or f"OpenSSL verify error {code}").format(store=store)
        return f"TLS verification failed for {who} ({reason}): check it and {store}", False
    if _first(chain, ssl.SSLEOFError, ssl.SSLZeroReturnError):
        return f"{who} closed the connection during the TLS handshake", True
    if _first(chain, ssl.SSLError):
        return f"TLS handshake with {who} failed (no common protocol or a broken peer)", False
    return None
