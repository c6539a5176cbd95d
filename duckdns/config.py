"""Read and validate duckdns.conf, native (duckdns.conf(5)) or the recipe's curl config
(its ``url`` line gives the domains, token and server; curl's options are ignored).

Every refusal names the file, the line and the fix, and never quotes what may hold a
secret (an unparsable line, an unknown key, a token, a URL, a domain list): it is
described. Short values that cannot be a secret (an address, a duration) are quoted
(:func:`_shown`).
"""

from __future__ import annotations

import errno
import ipaddress
import os
import re
import stat
from collections import namedtuple
from urllib.parse import parse_qs, unquote, urlsplit

from duckdns import dnswire, report

# For the type checker only: typing.TYPE_CHECKING would import typing, which a timer run
# does not pay for. The named tuples' fields are typed here, over the collections ones the
# run uses (the same names, in the same order).
TYPE_CHECKING = False
if TYPE_CHECKING:
    import ssl
    from typing import Any, NamedTuple

    class Line(NamedTuple):
        number: int
        key: str
        value: str

    class _ProbeTarget(NamedTuple):
        kind: str
        address: str
        port: int

else:
    # A line that is not blank nor a comment: its key (lower case) and value (quotes
    # removed), or, when it cannot be read, the key "" and why (never a byte of it).
    Line = namedtuple("Line", "number key value")
    _ProbeTarget = namedtuple("ProbeTarget", "kind address port")

DEFAULT_PATH = "/var/lib/private/duckdns/duckdns.conf"
DEFAULT_SERVER = "https://www.duckdns.org"
DEFAULT_REFRESH = 24 * 3600
MAX_REFRESH = 365 * 86400
MAX_SIZE = 65536  # a config is a few hundred bytes; more is not a config
MAX_CA_SIZE = 4 * 1024 * 1024  # Debian's whole CA store is about 200 KiB
# DuckDNS free accounts have at most 5 subnames (docs/duckdns-api.md): more is said by check.
ACCOUNT_DOMAINS = 5

TOKEN = re.compile(report.TOKEN_PATTERN)
SUBNAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")  # a DNS label, lowercase
BOM = "\ufeff"  # a UTF-8 byte order mark, as some Windows editors write: read and kept
# White space around a domain or a token: ASCII only, the POSIX shell's [:space:] in the C
# locale, so debian/config's copy of the rule strips exactly the same (str.strip() alone
# would strip U+00A0 and U+0085 too).
BLANKS = " \t\n\r\x0b\x0c"
DURATION = re.compile(r"([0-9]+)\s*([smhd]?)")
UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
NATIVE_LINE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)")
# curl config also allows "key: value", "key value" and "--key".
CURL_LINE = re.compile(r"(?:--)?([A-Za-z0-9_.-]+)\s*(?:[=:]\s*|\s+|$)(.*)")
CURL_KEYS = ("url", "cacert")  # what is read of the recipe's curl config
# A DuckDNS update URL as duckdns.org's recipe writes it (duckdns.recipe finds it in duck.sh);
# group 1 is the query, up to a quote, a blank or a shell metacharacter.
UPDATE_URL = re.compile(r"https?://(?:www\.)?duckdns\.org/update\?([^\s\"'|;<>`]*)", re.IGNORECASE)
_NATIVE_FIX = "write 'domains = NAMES' and 'token = TOKEN' lines with the URL's values instead"
# What may be quoted back: short, the characters of addresses, ports, durations and probe
# entries only, and no run of 8 hexadecimal digits (a token's first group, a check's UUID).
_SHOWABLE = re.compile(r"[A-Za-z0-9 ._:@\[\]%,+-]{0,64}")
_HEX_RUN = re.compile(r"[0-9a-fA-F]{8}")
# URLs: RFC 3986 path characters and %-escapes (in a path only where asked), no '\'.
_URL_PATH = re.compile(r"(?:[A-Za-z0-9._~!$&'()*+,;=:@/-]|%[0-9A-Fa-f]{2})*")
_URL_QUERY = re.compile(r"(?:[A-Za-z0-9._~!$&'()*+,;=:@/?-]|%[0-9A-Fa-f]{2})*")
_URL_FORM = "https://HOST[:PORT][/PATH], e.g. https://www.duckdns.org"

DNS_PORT = 53
# In order, first valid answer wins: each provider's second address before the next provider,
# so one intercepted or blocked address (some routers and ISPs do that to 1.1.1.1) does not
# leave the probe to a single other party.
DEFAULT_PROBE = (
    "cloudflare@1.1.1.1, cloudflare@1.0.0.1, opendns@208.67.222.222, opendns@208.67.220.220"
)
MAX_PROBES = 8
PROBE_KINDS = ("cloudflare", "opendns", "router")  # what each asks: duckdns.probe.KINDS
ROUTER_PORT = 5351  # NAT-PMP and PCP (duckdns.router)
_PROBE_FORM = (
    "off, or a comma-separated list of KIND@ADDRESS[:PORT] with KIND cloudflare or opendns "
    "and an IPv4 ADDRESS, e.g. cloudflare@1.1.1.1, opendns@208.67.222.222:53, optionally "
    "after 'router' (the router's own answer, first)"
)
# Why an IPv6 address can never answer: the question is the public IPv4 address.
_NOT_IPV6 = (
    "an IPv6 probe address can never tell the public IPv4 address (Cloudflare answers with "
    "the IPv6 address the query came from, OpenDNS with NXDOMAIN): write KIND@ADDRESS[:PORT] "
    "with an IPv4 address, e.g. cloudflare@1.1.1.1 or opendns@208.67.222.222"
)
_IP_PORT_FORM = "ADDRESS[:PORT], IPv6 in brackets, e.g. 1.1.1.1:53 or [2606:4700:4700::1111]:53"


class ConfigError(Exception):
    """The configuration cannot be used. Exit code 78 (EX_CONFIG)."""


def default_path() -> str:
    """The config the service reads: ``$STATE_DIRECTORY/duckdns.conf`` under systemd."""
    state_dir = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    return os.path.join(state_dir, "duckdns.conf") if state_dir else DEFAULT_PATH


def _shown(value: str) -> str | None:
    """``value`` quoted, if it cannot be (part of) a secret; else None."""
    return repr(value) if _SHOWABLE.fullmatch(value) and not _HEX_RUN.search(value) else None


def _ordinal(n: int) -> str:
    return {1: "1st", 2: "2nd", 3: "3rd"}.get(n, f"{n}th")


# -- validators: (raw value, where) -> the value the run uses, or ConfigError --------------


def parse_domains(value: str, where: str) -> tuple[str, ...]:
    """The subnames of ``value``; a bad one is named by its position, never quoted."""
    names = []
    for position, raw in enumerate(value.split(","), 1):
        # ASCII only before lower(): "\u212a".lower() is "k" (debian/config's copy cannot).
        name = raw.strip(BLANKS)
        name = name.lower().rstrip(".") if name.isascii() else "\x00"
        name = name.removesuffix(".duckdns.org")
        if not name:
            continue
        if SUBNAME.fullmatch(name) and TOKEN.fullmatch(name):
            raise ConfigError(
                f"{where}: the {_ordinal(position)} name in domains is shaped like a token: "
                "the token goes on its own line, 'token = …'; domains lists the subnames"
            )
        if not SUBNAME.fullmatch(name):
            if len(name) > 63:
                why = "is longer than 63 characters"
            elif name.startswith("-") or name.endswith("-"):
                why = "starts or ends with a hyphen"
            else:
                why = "holds a character other than letters, digits and hyphens"
            raise ConfigError(
                f"{where}: the {_ordinal(position)} name in domains {why}: it is not a DuckDNS "
                "subname: use letters, digits and inner hyphens, 1 to 63 characters "
                "(e.g. 'piserver' or 'piserver.duckdns.org'), separated by commas"
            )
        if name not in names:
            names.append(name)
    if not names:
        raise ConfigError(f"{where}: no domain given: set 'domains = yourname' (comma separated)")
    return tuple(names)


def check_token(value: str, where: str) -> str:
    """The token, lower case (as duckdns.org shows it and dpkg-reconfigure writes it)."""
    token = value.strip(BLANKS)
    if not token:
        raise ConfigError(f"{where}: no token: run 'dpkg-reconfigure duckdns' or add 'token = …'")
    if not TOKEN.fullmatch(token):
        # Never echo the value: it may be a real token with a typo.
        raise ConfigError(
            f"{where}: the token is not a DuckDNS token (expected 8-4-4-4-12 hexadecimal "
            "digits, as shown on duckdns.org): run 'dpkg-reconfigure duckdns' or fix the file"
        )
    return token.lower()


def parse_duration(value: str, where: str) -> int:
    """Seconds, 1 s to 365 days; digits are ASCII only."""
    match = DURATION.fullmatch(value.strip().lower())
    # At most 12 digits: int() refuses a few thousand (ValueError), and 365d is 8.
    seconds = int(match[1]) * UNITS[match[2]] if match and len(match[1]) <= 12 else 0
    if not 0 < seconds <= MAX_REFRESH:
        shown = _shown(value.strip())
        why = "is out of range" if match else "is not a duration"
        raise ConfigError(
            f"{where}: refresh{f' = {shown}' if shown else ''} {why}: write a whole number "
            "with a unit, from 1s to 365d, e.g. '24h', '90m', '3600s' or '1d'"
        )
    return seconds


def _address(value: str, version: int, where: str) -> str:
    """``auto``, ``off`` or an IPv``version`` address without a zone, canonical."""
    value = value.strip().lower()
    if value in ("auto", "off"):
        return value
    try:
        addr = ipaddress.ip_address(value) if value.isascii() else None
    except ValueError:
        addr = None
    if addr is None or addr.version != version or "%" in value:
        raise ConfigError(
            f"{where}: ipv{version} = {_shown(value) or '(value not shown)'} is not valid: use "
            f"'auto', 'off' or an IPv{version} address (without a %zone)"
        )
    return str(addr)


def _duckdns_url(value: str, where: str) -> HttpsURL:
    """The ``server`` setting: the base URL of the DuckDNS API."""
    try:
        return parse_https_url(value)
    except ValueError as exc:
        raise ConfigError(
            f"{where}: server is refused: {exc}: write a plain https:// base URL "
            f"(default {DEFAULT_SERVER})"
        ) from None


def _ca_bundle(value: str, where: str) -> str | None:
    """The ca_bundle path (None: the system's store) if it names a plausible CA file.

    Whether it really holds certificates is :func:`tls_context`'s to say (it needs ssl,
    which a timer run where nothing changes never imports); ``check`` calls it.
    """
    path = value.strip()
    if not path:
        return None
    if not path.startswith("/"):
        raise ConfigError(
            f"{where}: ca_bundle is not an absolute path (the service does not run in this "
            "directory): write the file's full path, e.g. /etc/duckdns/ca.pem"
        )
    _check_ca_file(path, f"{where}: ")
    return path


def _probe(value: str, where: str) -> list[ProbeTarget]:
    try:
        return parse_probe(value)
    except ValueError as exc:
        raise ConfigError(f"{where}: probe: {exc}") from None


def _router(value: str, where: str) -> tuple[str, int] | None:
    """The router to ask (None: the default gateway, gathered by each run)."""
    if not value.strip():
        return None
    try:
        address, port = parse_ip_port(value, ROUTER_PORT)
        if ":" in address:
            raise ValueError(f"{_shown(address) or 'the address'} is not an IPv4 address")
    except ValueError as exc:
        raise ConfigError(
            f"{where}: router: {exc}: write the router's IPv4 address, e.g. 'router = "
            "192.168.1.1', or remove the line to ask the default gateway"
        ) from None
    return address, port


def _healthcheck(value: str, where: str) -> str:
    """The heartbeat's ping URL ('' = none), already registered as a secret."""
    url = value.strip()
    if not url:
        return ""
    try:
        parse_https_url(url, query=True, percent=True)
    except ValueError as exc:
        # Never echo the value: it is a secret (the parser's reason never quotes it).
        raise ConfigError(
            f"{where}: healthcheck is not an https:// URL the updater can use ({exc}): "
            "copy the ping URL from Healthchecks.io or the Uptime Kuma push monitor "
            "(it must use HTTPS)"
        ) from None
    return url


# Apprise URLs (duckdns.notify): SCHEME://…, each a secret; a comma starts a new URL only where
# a SCHEME:// follows (a mailto:// URL's to= may list addresses with commas).
MAX_NOTIFY = 4
_NOTIFY_SPLIT = re.compile(r"\s*,\s*(?=[A-Za-z][A-Za-z0-9+.-]*://)")
# Some services need nothing after the scheme (``syslog://``).
_NOTIFY_URL = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://[!-~]*")
_NOTIFY_FORM = (
    "write Apprise URLs separated by commas, e.g. "
    "'notify = mailto://user:password@smtp.example.org?to=me@example.org, ntfys://ntfy.sh/TOPIC' "
    "(each service's form: https://github.com/caronc/apprise/wiki)"
)


class NotifyURL:
    """One Apprise URL of the ``notify`` setting: ``where`` its line, ``shown`` how messages
    name it (its rank and its service, never a byte of the rest)."""

    __slots__ = ("url", "where", "shown")

    def __init__(self, url: str, where: str, position: int) -> None:
        self.url, self.where = url, where
        self.shown = f"notify URL {position} ({url.split('://', 1)[0].lower()}://…)"


def split_notify(value: str) -> list[str]:
    """The URLs of a ``notify`` value, in order."""
    return [url for url in _NOTIFY_SPLIT.split(value.strip()) if url]


def _notify_url_problem(url: str) -> str:
    """Why ``url`` cannot be an Apprise URL ('' = it can): never a byte of it."""
    if not _NOTIFY_URL.fullmatch(url):
        return "it holds a space or a non-ASCII character" if "://" in url else "no SCHEME://"
    try:
        urlsplit(url)  # what Apprise's parser calls first: its ValueError quotes the URL
    except ValueError:
        return "its host cannot be read: a '[' without its ']', or not an address inside them"
    return ""


def _notify(value: str, where: str) -> tuple[NotifyURL, ...]:
    """The Apprise URLs (already registered as secrets); whether Apprise knows each service
    is ``check``'s to say (duckdns.notify.check: Apprise is not imported by a timer run)."""
    urls = split_notify(value)
    if len(urls) > MAX_NOTIFY:
        # Each costs up to notify.PER_URL seconds: the run's time bound counts them.
        raise ConfigError(f"{where}: notify has {len(urls)} URLs; at most {MAX_NOTIFY} are sent")
    for position, url in enumerate(urls, 1):
        why = _notify_url_problem(url)
        if why:
            # Never echo the URL: it carries a password or a token.
            raise ConfigError(
                f"{where}: the {_ordinal(position)} URL in notify is not an Apprise URL "
                f"({why}): {_NOTIFY_FORM}"
            )
    return tuple(NotifyURL(url, where, n) for n, url in enumerate(urls, 1))


# Every key, in the order of duckdns.conf(5): its default (the raw text a missing line
# means) and its validator. A missing domains or token line is refused by its validator.
FIELDS = {
    "domains": ("", parse_domains),
    "token": ("", check_token),
    "ipv4": ("auto", lambda value, where: _address(value, 4, where)),
    "ipv6": ("off", lambda value, where: _address(value, 6, where)),
    "server": (DEFAULT_SERVER, _duckdns_url),
    "ca_bundle": ("", _ca_bundle),
    "probe": (DEFAULT_PROBE, _probe),
    "router": ("", _router),
    "refresh": (f"{DEFAULT_REFRESH}s", parse_duration),
    "healthcheck": ("", _healthcheck),
    "notify": ("", _notify),
}
KEYS = tuple(FIELDS)


class Config:
    """A validated configuration: each key's value, as its validator made it.

    ``server`` is the canonical base URL made by :func:`parse_https_url` (requests are
    sent to ``server + "/update?…"``) and ``server_host`` its ``host[:port]``, for messages;
    ``legacy`` says the file is the recipe's curl config.
    """

    __slots__ = ("path", *KEYS, "legacy", "server_host")
    path: str
    domains: tuple[str, ...]
    token: str
    ipv4: str  # "auto", "off" or an address
    ipv6: str
    server: str
    ca_bundle: str | None
    probe: list[ProbeTarget]
    router: tuple[str, int] | None
    refresh: int
    healthcheck: str
    notify: tuple[NotifyURL, ...]
    legacy: bool
    server_host: str

    def __init__(self, **values: object) -> None:
        for key in self.__slots__:
            setattr(self, key, values[key])

    def fingerprint(self) -> str:
        """What, besides the addresses, makes a new update necessary when it changes.

        The file's identity and mtime stand in for the token (a reconfigured token
        must be sent at once), so nothing derived from the token is ever stored.
        """
        st = os.stat(self.path)
        file = f"{st.st_ino}:{st.st_mtime_ns}"
        return "|".join([",".join(self.domains), self.ipv4, self.ipv6, self.server, file])


# -- the three steps: read lines, translate keys, validate ------------------------------------


def read_lines(text: str) -> list[Line]:
    """The lines of ``text`` that say something, each read as ``key = value`` (or, for
    the curl config's ``url`` and ``cacert``, as curl reads them). Only '\\n' ends a line
    (with an optional '\\r' before it), as in every editor: the line numbers said are the
    ones the user sees."""
    raws = enumerate(text.removeprefix(BOM).split("\n"), 1)
    return [line for number, raw in raws if (line := _read_line(number, raw)) is not None]


def _read_line(number: int, raw: str) -> Line | None:
    """One line of the file (without its '\n'), or None if it is blank or a comment."""
    line = raw.strip()
    if not line or line.startswith("#"):
        return None
    match = NATIVE_LINE.match(line)
    curl = CURL_LINE.match(line)
    if match is None and curl and curl[1].lower() in CURL_KEYS:
        match = curl
    if match is None:
        return Line(number, "", _unparsable(line))
    return Line(number, match[1].lower(), _unquote(match[2]))


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def _unparsable(line: str) -> str:
    """Why ``line`` is not ``key = value``, without a byte of it."""
    if UPDATE_URL.search(line):
        if re.match(r"echo\s", line):
            return (
                "the whole command line of duckdns.org's recipe (duck.sh's 'echo url=… | "
                f"curl …'), which is not a config line: {_NATIVE_FIX}"
            )
        return f"a DuckDNS update URL without a key in front: {_NATIVE_FIX}"
    if TOKEN.search(line):
        return "a token without 'token = ' in front: write 'token = …'"
    if "://" in line:
        return "a URL without a key in front: write 'notify = …', 'healthcheck = …' or 'server = …'"
    # A known key followed by ':' or a space instead of '=' (curl config habits).
    known = re.match(r"(?:--)?(" + "|".join(KEYS) + r")(?:\s*:|\s)", line, re.IGNORECASE)
    if known:
        return f"'{known[1].lower()}' needs '=': write '{known[1].lower()} = …'"
    return "this line cannot be parsed: write 'key = value' (see duckdns.conf(5))"


def translate(lines: list[Line], path: str) -> tuple[dict[str, tuple[str, int]], bool]:
    """The native keys ``lines`` set, each with its raw value and line number, and whether
    the file is the recipe's curl config (a ``url`` line: its other lines are curl options).

    Every secret the lines hold is registered with duckdns.report first, before anything
    is refused.
    """
    for _, key, value in lines:
        for secret in _secrets(key, value.strip()):
            # A few characters cannot be a secret, and masking them would garble every
            # message (a full token is masked by its shape whatever its length).
            if len(secret) >= 8:
                report.register_secret(secret)
    recipe = any(line.key == "url" for line in lines)
    values: dict[str, tuple[str, int]] = {}
    for number, key, value in lines:
        where = f"{path}, line {number}"
        if recipe and key not in CURL_KEYS:
            continue
        if not key:
            raise ConfigError(f"{where}: {value}")
        if not recipe and key not in KEYS:
            raise ConfigError(f"{where}: {_unknown_key(key)}")
        if key in values:
            first = values[key][1]
            if recipe:
                raise ConfigError(
                    f"{where}: a second curl '{key}' line (first on line {first}): keep one"
                )
            raise ConfigError(
                f"{where}: {key} is set a second time (first on line {first}): keep one line"
            )
        if not recipe and any(ord(c) < 32 and c != "\t" or c == "\x7f" for c in value):
            raise ConfigError(f"{where}: the value of {key} holds a control character")
        values[key] = (value, number)
    return (_from_recipe(values, path) if recipe else values), recipe


def _secrets(key: str, value: str) -> list[str]:
    """What of a line's value must never be printed."""
    if key == "healthcheck":
        # With its path and query: they identify the check, and requests' error texts show
        # them without the host. (A bare "/" is too short to register.)
        return [value, "/" + value.split("://", 1)[-1].partition("/")[2]]
    if key == "token":
        return [value, value.lower()]
    if key == "notify":
        return [secret for url in split_notify(value) for secret in notify_url_secrets(url)]
    if key != "url":
        return []
    # The recipe's update URL: itself and its token, raw and decoded.
    tokens = re.findall(r"token=([^&#\s\"']*)", value, re.IGNORECASE)
    query = parse_qs(value.partition("?")[2], keep_blank_values=True)
    tokens += [token.strip() for token in query.get("token", ())]
    return [value, *tokens, *(token.lower() for token in tokens)]


def notify_url_secrets(url: str) -> list[str]:
    """What of an Apprise URL must never be shown: the URL and each of its parts (user,
    password, path segments, query values: any may be a password, a bot token, an ntfy
    topic), and its host unless it is a plain DNS name or address (Telegram's and Discord's
    URLs put their token there). Apprise's own log lines show such parts."""
    rest = url.split("://", 1)[-1]
    authority = re.split("[/?]", rest, maxsplit=1)[0]
    tail = rest[len(authority) :]
    userinfo, _, host = authority.rpartition("@")
    parts = [url, rest, userinfo, *userinfo.split(":")]
    host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    plain = re.fullmatch(
        r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z][A-Za-z0-9-]*|\[?[0-9a-fA-F.:]+\]?", host
    )
    if not plain:
        parts.append(host)
    path, _, query = tail.partition("?")
    parts += [path, *path.split("/")]
    for item in query.split("&"):
        parts += [item, item.partition("=")[2]]
    # Apprise and requests show parts %-decoded too.
    return [p for part in parts if part for p in {part, unquote(part)}]


def _unknown_key(key: str) -> str:
    """The refusal of an unknown key: not quoted (it may be the start of a secret)."""
    import difflib

    close = difflib.get_close_matches(key.lower(), KEYS, n=1, cutoff=0.75)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return f"unknown key: {hint}known keys are " + ", ".join(KEYS)


def _from_recipe(curl: dict[str, tuple[str, int]], path: str) -> dict[str, tuple[str, int]]:
    """The native keys the recipe's ``url`` (and ``cacert``) lines mean."""
    url, number = curl["url"]
    where = f"{path}, line {number}"
    fix = "rewrite the file in the native form (see duckdns.conf(5))"
    try:
        parsed = parse_https_url(url, query=True, percent=True)
    except ValueError as exc:
        raise ConfigError(f"{where}: the curl 'url' line is refused: {exc}: {fix}") from None
    if not parsed.path.endswith("/update"):
        raise ConfigError(
            f"{where}: the curl 'url' line is not a DuckDNS https://…/update URL: {fix}"
        )
    query = parse_qs(parsed.query, keep_blank_values=True)
    for name in ("domains", "token", "ip", "ipv6"):
        if len(query.get(name, ())) > 1:
            raise ConfigError(f"{where}: the curl 'url' line has two '{name}' parameters: keep one")
    for name in ("domains", "token"):
        if name not in query:
            raise ConfigError(f"{where}: the curl 'url' line has no '{name}' parameter: {fix}")
    # The recipe made one request per run: keep that behaviour (probe off).
    values = {
        "domains": query["domains"][0],
        "token": query["token"][0],
        "server": parsed.base.removesuffix("/update"),
        "ipv4": query.get("ip", [""])[0] or "auto",
        "ipv6": query.get("ipv6", [""])[0] or "off",
        "probe": "off",
    }
    native = {key: (value, number) for key, value in values.items()}
    if "cacert" in curl:  # curl's --cacert: the CA the recipe trusted
        native["ca_bundle"] = curl["cacert"]
    return native


def parse(text: str, path: str) -> Config:
    """The Config of ``text``, the content of ``path``: its lines read, translated, and each
    key's validator (:data:`FIELDS`) applied to its value, or to its default if unset."""
    values, legacy = translate(read_lines(text), path)
    typed: dict[str, Any] = {}  # each key's value as its validator made it (Config says which)
    for key, (default, validator) in FIELDS.items():
        value, number = values.get(key, (default, 0))
        typed[key] = validator(value, f"{path}, line {number}" if number else path)
    if typed["ipv4"] == typed["ipv6"] == "off":
        raise ConfigError(
            f"{path}: ipv4 and ipv6 are both off: nothing to update; "
            "set 'ipv4 = auto' or 'ipv6 = auto'"
        )
    server = typed.pop("server")
    return Config(path=path, legacy=legacy, server=server.base, server_host=server.netloc, **typed)


# -- the server URL, the CA file and the file itself -----------------------------------------


class HttpsURL:
    """What :func:`parse_https_url` found: ``base`` is scheme, host, port and path (no
    trailing '/'), canonical; ``netloc`` the ``host[:port]`` to show; ``query`` after '?'."""

    __slots__ = ("base", "netloc", "hostname", "port", "path", "query")

    def __init__(self, hostname: str, port: int, path: str, query: str) -> None:
        host = f"[{hostname}]" if ":" in hostname else hostname
        self.hostname, self.port, self.path, self.query = hostname, port, path, query
        self.netloc = host if port == 443 else f"{host}:{port}"
        self.base = f"https://{self.netloc}{path.rstrip('/')}"


def parse_https_url(text: str, *, query: bool = False, percent: bool = False) -> HttpsURL:
    """Parse an ``https://HOST[:PORT][/PATH]`` URL strictly, the one parser of URLs we send to
    (a ``?query`` only if ``query``, %-escapes in the path only if ``percent``). Raises
    ValueError saying what is wrong, never quoting the URL (it may hold a secret)."""
    url = text.strip()
    if not url.isascii() or not url.isprintable() or " " in url:
        raise ValueError("it holds a space, a control or a non-ASCII character")
    if "\\" in url:
        raise ValueError("it holds a backslash")
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(f"it does not start with https://; expected {_URL_FORM}")
    if scheme.lower() != "https":
        raise ValueError(f"only https:// URLs are accepted; expected {_URL_FORM}")
    if "#" in rest:
        raise ValueError("a #fragment is not allowed")
    authority = re.split("[/?]", rest, maxsplit=1)[0]
    tail = rest[len(authority) :]
    if "@" in authority:
        raise ValueError("a user name or password (…@) is not allowed")
    host, port_text = split_host_port(authority)
    hostname = _hostname(host)
    port = 443 if port_text is None else parse_port(port_text, "the port")
    path, has_query, query_text = tail.partition("?")
    if has_query and not query:
        raise ValueError(f"a ?query is not allowed; expected {_URL_FORM}")
    if "%" in path and not percent:
        raise ValueError("a %-escape is not allowed in the path")
    if not _URL_PATH.fullmatch(path):
        raise ValueError("the path holds a character not allowed in a URL")
    if any(segment in (".", "..") for segment in path.split("/")):
        raise ValueError("the path holds a '.' or '..' segment")
    if not _URL_QUERY.fullmatch(query_text):
        raise ValueError("the query holds a character not allowed in a URL")
    return HttpsURL(hostname, port, path, query_text)


def split_host_port(text: str) -> tuple[str, str | None]:
    """``HOST[:PORT]`` or ``[IPV6][:PORT]``: the host, brackets removed, and the port's text
    (None: no port); raises ValueError saying what is wrong, quoting nothing."""
    if text.startswith("["):
        host, close, rest = text[1:].partition("]")
        if not close:
            raise ValueError("the IPv6 address has no closing ']'")
        if rest and not rest.startswith(":"):
            raise ValueError("unexpected characters after ']'")
        if ":" not in host:
            raise ValueError("brackets are only for IPv6 addresses")
        return host, rest[1:] if rest else None
    if text.count(":") > 1:
        raise ValueError("an IPv6 address must be in brackets: [ADDRESS]:PORT")
    host, colon, port = text.partition(":")
    return host, port if colon else None


def parse_port(text: str, name: str) -> int:
    """A port number, 1 to 65535, ASCII digits only; ``name`` says which in a refusal."""
    if not (text.isascii() and text.isdigit() and len(text) <= 5):
        raise ValueError(f"{name} is not a number from 1 to 65535")
    if not 0 < int(text) < 65536:
        raise ValueError(f"{name} is out of range 1-65535")
    return int(text)


def _hostname(name: str) -> str:
    """A URL's host: a DNS name (letters, digits, hyphens; lower-cased), an IPv4 address or
    an IPv6 address (its brackets removed by :func:`split_host_port`), canonical."""
    if ":" in name:
        if "%" in name:
            raise ValueError("an IPv6 %zone is not allowed in a URL")
        try:
            return str(ipaddress.IPv6Address(name))
        except ValueError:
            raise ValueError("the address in brackets is not an IPv6 address") from None
    if not name:
        raise ValueError(f"no host name; expected {_URL_FORM}")
    name = name.lower().removesuffix(".")
    try:
        return str(ipaddress.IPv4Address(name))
    except ValueError:
        pass
    labels = name.split(".")
    if len(name) > 253 or not all(SUBNAME.fullmatch(label) for label in labels):
        raise ValueError(
            "the host is not a DNS name (letters, digits and inner hyphens between dots, "
            "e.g. www.duckdns.org) nor an IP address (IPv6 in brackets)"
        )
    if labels[-1][0].isdigit():
        # A resolver reads "1.2.3" or "0x7f000001" as an IPv4 address: never guess.
        raise ValueError("the host ends in a number: write a full IPv4 address or a DNS name")
    return name


def _check_ca_file(path: str, prefix: str) -> None:
    """Refuse a CA file that is missing, not a regular file (it could block) or huge."""
    fix = "fix the path or remove the ca_bundle line to use the system's CA store"
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ConfigError(f"{prefix}the CA file {path} does not exist: {fix}") from None
    except (OSError, ValueError) as exc:
        why = getattr(exc, "strerror", None) or "not a valid path"
        raise ConfigError(f"{prefix}the CA file {path} cannot be used ({why}): {fix}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(
            f"{prefix}the CA file {path} is {_describe_not_regular(st.st_mode)}: point "
            f"ca_bundle at a file of PEM CA certificates, or {fix}"
        )
    if st.st_size > MAX_CA_SIZE:
        raise ConfigError(
            f"{prefix}the CA file {path} is larger than {MAX_CA_SIZE // 1048576} MiB: "
            f"it is not a CA bundle; {fix}"
        )


def tls_context(cafile: str, where: str = "") -> ssl.SSLContext:
    """The TLS client context of every request: TLS 1.2 or newer, a certificate required,
    trusting the CAs of ``cafile`` only (the config's ca_bundle, or the system's store).

    The one place a CA file is loaded: ``check`` calls it, so a file it accepts is the
    file the request uses. Raises ConfigError for a file that holds no certificate.
    ``ssl`` is imported here, not by a run that sends nothing.
    """
    import ssl

    prefix = f"{where}: " if where else ""
    _check_ca_file(cafile, prefix)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.verify_mode = ssl.CERT_REQUIRED
    try:
        ctx.load_verify_locations(cafile=cafile)
    except ssl.SSLError as exc:
        reason = exc.reason or "not PEM"
    except OSError as exc:
        reason = exc.strerror or "cannot be read"
    else:
        if ctx.cert_store_stats()["x509"]:
            return ctx
        reason = "no certificate in it"
    raise ConfigError(
        f"{prefix}the CA file {cafile} cannot be used ({reason}): ca_bundle must be a "
        "file of PEM certificates (-----BEGIN CERTIFICATE-----); fix it, or remove the "
        "ca_bundle line to use the system's CA store (reinstall ca-certificates if that "
        "is the file)"
    )


def _describe_not_regular(mode: int) -> str:
    what = {stat.S_IFDIR: "a directory", stat.S_IFIFO: "a FIFO", stat.S_IFSOCK: "a socket"}
    return what.get(
        stat.S_IFMT(mode),
        "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file",
    )


def load(path: str | os.PathLike[str]) -> Config:
    """Read ``path`` after checking that only its owner can read or write it."""
    path = os.fspath(path)
    return parse(read_text(path), path)


def read_text(path: str, private: bool = True) -> str:
    """The text of the config ``path``; ``private``: refused if group or others may read it.

    Never blocks (a FIFO or a device is opened non-blocking, then refused) and never
    follows a symbolic link: anything but a regular file of at most MAX_SIZE bytes of
    UTF-8 text is refused.
    """
    fix = "point --config at the configuration file itself"
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise ConfigError(
            f"{path} does not exist: run 'dpkg-reconfigure duckdns', or pass --config FILE"
        ) from None
    except PermissionError:
        raise ConfigError(f"{path} cannot be read: run as root (e.g. 'sudo duckdns …')") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ConfigError(f"{path} is a symbolic link, which is refused: {fix}") from None
        if exc.errno in (errno.ENXIO, errno.EOPNOTSUPP):  # a socket, a device without driver
            raise ConfigError(f"{path} is not a regular file: {fix}") from None
        raise ConfigError(f"{path} cannot be opened ({exc.strerror}): fix the path") from None
    except ValueError:  # a NUL in the path
        raise ConfigError(f"{path!r} is not a valid path: {fix}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            what = _describe_not_regular(st.st_mode)
            raise ConfigError(f"{path} is {what}, not a regular file: {fix}")
        if private and st.st_mode & 0o077:
            raise ConfigError(
                f"{path} is readable or writable by group or others "
                f"(mode {stat.S_IMODE(st.st_mode):04o}): run 'chmod 600 {path}'"
            )
        with open(fd, "rb", closefd=False) as file:  # read() reads on to the size or the end
            data = file.read(MAX_SIZE + 1)
    except OSError as exc:
        raise ConfigError(f"{path} cannot be read ({exc.strerror}): {fix}") from None
    finally:
        os.close(fd)
    if len(data) > MAX_SIZE:
        raise ConfigError(
            f"{path} is larger than {MAX_SIZE // 1024} KiB: it is not a duckdns "
            f"configuration; {fix}"
        )
    if b"\0" in data:
        raise ConfigError(f"{path} holds NUL bytes: it is not a text file; rewrite it")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text: rewrite it as plain text") from None


# -- the keys dpkg-reconfigure answers ----------------------------------------------------------

# What debconf asks (debian/templates) and postinst hands to `duckdns debconf-write`.
ANSWERED = ("domains", "token", "ipv4", "ipv6")
# debconf's "Addresses to publish" (duckdns/publish, its Choices-C) as the ipv4 and ipv6
# keys: "auto" keeps an address a line names (:func:`rewrite`).
PUBLISH = {"ipv4": ("auto", "off"), "both": ("auto", "auto"), "ipv6": ("off", "auto")}
NEW_FILE_HEADER = (
    "# duckdns configuration; see duckdns.conf(5).\n"
    '# "dpkg-reconfigure duckdns" rewrites the domains, token, ipv4 and ipv6 lines;\n'
    "# every other line is kept as it is.\n"
)


def read_answers(text: str) -> dict[str, str]:
    """The debconf answers postinst passes, ``key = value`` lines of :data:`ANSWERED` keys
    or ``publish`` in the file's own grammar, each made what the file will hold. An empty
    value (an empty answer in dpkg-reconfigure) is left out: the file's line is kept."""
    lines = read_lines(text)
    publish = [line for line in lines if line.key == "publish"]
    lines = [line for line in lines if line.key != "publish"]
    for number, key, _ in lines:
        if key and key not in ANSWERED:  # not quoted: it may be the start of a secret
            raise ConfigError(
                f"the answers, line {number}: only domains, token, publish, ipv4 and ipv6 "
                "are answered"
            )
    values, _ = translate(lines, "the answers")  # registers the token before any refusal
    for number, _, value in publish[:1]:
        if value not in PUBLISH:
            raise ConfigError(f"the answers, line {number}: publish is one of {', '.join(PUBLISH)}")
        values.update(zip(("ipv4", "ipv6"), ((v, number) for v in PUBLISH[value]), strict=True))
    return {
        key: _answer(key, value, f"the {key} answer")
        for key, (value, _) in values.items()
        if value.strip(BLANKS)
    }


def _answer(key: str, value: str, where: str) -> str:
    """``value`` as the file will hold it (its validator's canonical form)."""
    if key == "domains":
        return ",".join(parse_domains(value, where))
    if key == "token":
        return check_token(value, where)
    return _address(value, 4 if key == "ipv4" else 6, where)


def _valid_answer(key: str, value: str) -> str:
    """:func:`_answer`'s form of ``value``, or '' if the updater would refuse it."""
    try:
        return _answer(key, value, "")
    except ConfigError:
        return ""


def current_answers(path: str) -> str:
    """What the config ``path`` says of the keys debconf asks, as dpkg-reconfigure's
    defaults (``key = value`` lines; '' for what the updater would refuse), with the publish
    answer they mean and whether the token is one ('yes' or 'no'), never the token itself.
    A refusal elsewhere in the file does not hide them."""
    lines = read_lines(read_text(path, private=False))
    try:
        values, _ = translate(lines, path)  # a recipe's url line gives its keys
    except ConfigError:  # each key's first line, as read
        values = {key: (value, number) for number, key, value in reversed(lines)}
    valid = {key: _valid_answer(key, values[key][0]) for key in ANSWERED if key in values}
    token = "yes" if valid.get("token") else "no"
    ipv4, ipv6 = valid.get("ipv4") or "auto", valid.get("ipv6") or "off"
    publish = "ipv4" if ipv6 == "off" else "ipv6" if ipv4 == "off" else "both"
    return (
        f"domains = {valid.get('domains', '')}\nipv4 = {ipv4}\nipv6 = {ipv6}\n"
        f"publish = {publish}\ntoken = {token}\n"
    )


def rewrite(path: str, answers: dict[str, str]) -> None:
    """Write ``answers`` (from :func:`read_answers`) into the config ``path``, replacing the
    file whole (duckdns.state.atomic_write: 0600, owned like its directory)."""
    from duckdns import state

    state.atomic_write(path, rewritten(path, answers).encode("utf-8"))


def rewritten(path: str, answers: dict[str, str]) -> str:
    """The text :func:`rewrite` writes (nothing written here). A native file keeps every
    byte but the answered keys' lines (found as :func:`read_lines` finds them: any case, a
    byte order mark, CRLF, quotes): the first line of each is replaced by ``key = value``
    (its line ending kept), a second one dropped (the updater refuses a key set twice), a
    missing one appended. ``ipv4 = auto`` or ``ipv6 = auto`` keeps an address the line
    names (debconf asks only which families to publish). A missing file, or the recipe's
    curl config (whose url line and curl options mean nothing in the native form), becomes
    a new native file; an empty answer keeps the recipe's domains or token. The result
    must pass :func:`parse`, the updater's own reading, else ConfigError."""
    old = read_text(path, private=False) if os.path.lexists(path) else None
    if old is None or any(line.key == "url" for line in read_lines(old)):
        text = _new_file(path, old, answers)
    else:
        text = _with_answers(old, answers)
    parse(text, path)
    return text


def _new_file(path: str, recipe: str | None, answers: dict[str, str]) -> str:
    values = {"ipv6": "off"}
    if recipe is not None:
        try:
            native, _ = translate(read_lines(recipe), path)
        except ConfigError:
            native = {}  # a broken url line: only the answers count
        for key in ("domains", "token"):
            if key in native and key not in answers:
                # Through the answers' own check: a decoded %0A must not become a new line.
                values[key] = _answer(key, native[key][0], f"{path}: the recipe's {key}")
    values.update(answers)
    missing = [key for key in ("domains", "token") if key not in values]
    if missing:
        raise ConfigError(
            f"{path}: no {' and no '.join(missing)} given, so there is no configuration to "
            "write: run 'dpkg-reconfigure duckdns' and answer every question"
        )
    return _with_answers(NEW_FILE_HEADER, values)


def _with_answers(old: str, answers: dict[str, str]) -> str:
    bom = BOM if old.startswith(BOM) else ""
    raws = old.removeprefix(BOM).split("\n")
    eol = "\r\n" if raws[0].endswith("\r") else "\n"  # a CRLF file gets CRLF lines
    todo = dict(answers)
    kept = []
    for number, raw in enumerate(raws, 1):
        line = _read_line(number, raw)
        if line is None or line.key not in answers:
            kept.append(raw)
        elif line.key in todo:
            value = todo.pop(line.key)
            if value == "auto" and _names_address(line.key, line.value):
                kept.append(raw)
            else:
                cr = "\r" if raw.endswith("\r") else ""
                kept.append(f"{line.key} = {value}{cr}")
        # else: the key's second line, dropped
    text = bom + "\n".join(kept)
    if todo:
        if text.removeprefix(bom) and not text.endswith("\n"):
            text += eol
        text += "".join(f"{key} = {todo[key]}{eol}" for key in ANSWERED if key in todo)
    return text


def _names_address(key: str, value: str) -> bool:
    return key in ("ipv4", "ipv6") and _valid_answer(key, value) not in ("", "auto", "off")


# -- probe targets and numeric addresses -------------------------------------------------------


class ProbeTarget(_ProbeTarget):
    """One ``KIND@ADDRESS[:PORT]`` entry of the ``probe`` setting: ``kind`` says what is
    asked (:data:`PROBE_KINDS`), ``address`` and ``port`` whom."""

    __slots__ = ()

    def __new__(cls, kind: str, address: str, port: int = DNS_PORT) -> ProbeTarget:
        if kind not in PROBE_KINDS:
            raise ValueError(
                f"unknown probe kind {_shown(kind) or 'given'}; "
                f"expected one of {', '.join(PROBE_KINDS)}"
            )
        return super().__new__(cls, kind, address, port)

    def __str__(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        if self.kind == "router":  # its address: the router setting or the default gateway
            return f"router@{host}:{self.port}" if host else "router"
        port = "" if self.port == DNS_PORT else f":{self.port}"
        return f"{self.kind}@{host}{port}"


def parse_probe(spec: str) -> list[ProbeTarget]:
    """The targets of the ``probe`` setting (none for ``off``); ValueError names the bad entry
    and the accepted form."""
    text = spec.strip()
    if text.lower() == "off":
        return []
    if not text:
        raise ValueError(f"probe is empty; expected {_PROBE_FORM}")
    entries = text.split(",")
    if len(entries) > MAX_PROBES:
        # Each silent entry costs its timeout: the run's time bound counts MAX_PROBES of them.
        raise ValueError(f"probe has {len(entries)} entries; at most {MAX_PROBES} are asked")
    targets = []
    for number, raw in enumerate(entries, 1):
        entry = raw.strip()
        name = f"probe entry {_shown(entry) or f'number {number}'}"
        if not entry:
            raise ValueError(f"probe: empty entry (number {number}); expected {_PROBE_FORM}")
        if entry.lower() == "off":
            raise ValueError(f"probe: 'off' must stand alone; expected {_PROBE_FORM}")
        if entry.lower() == "router":  # asked first: its answer costs no third party
            if number != 1:
                raise ValueError(f"probe: 'router' must come first; expected {_PROBE_FORM}")
            targets.append(ProbeTarget("router", "", ROUTER_PORT))
            continue
        kind, at, where = entry.partition("@")
        kind = kind.strip().lower()
        if not at:
            raise ValueError(f"{name}: missing '@ADDRESS'; expected {_PROBE_FORM}")
        if kind == "router":
            raise ValueError(
                f"{name}: 'router' takes no address here: write 'probe = router, …' and, "
                "for another router than the default gateway, 'router = ADDRESS[:PORT]'"
            )
        if kind not in PROBE_KINDS:
            raise ValueError(
                f"{name}: unknown kind {_shown(kind) or ''} "
                f"(known: {', '.join(PROBE_KINDS)}); expected {_PROBE_FORM}"
            )
        if where.count(":") > 1 or where.strip().startswith("["):
            raise ValueError(f"{name}: {_NOT_IPV6}")
        try:
            address, port = parse_ip_port(where)
        except ValueError as e:
            raise ValueError(f"{name}: {e}") from None
        targets.append(ProbeTarget(kind, address, port))
    return targets


def parse_ip_port(text: str, default_port: int = DNS_PORT) -> tuple[str, int]:
    """Parse ``ADDRESS[:PORT]`` (IPv6 in brackets: ``[ADDRESS]:PORT``) into (address, port).

    The address must be numeric (the DNS client's own check, ``dnswire.sockaddr``): looking a
    name up would need DNS, the thing being checked. An IPv6 link-local address may carry a
    zone (``fe80::1%eth0``). Raises ValueError naming the bad part.
    """
    shown = _shown(text.strip())
    lead = f"{shown}: " if shown else ""
    try:
        host, port_text = split_host_port(text.strip())
        if not host:
            raise ValueError("no address")
        port = default_port
        if port_text is not None:
            port = parse_port(port_text, f"port {_shown(port_text) or 'value'}")
        dnswire.sockaddr(host, port)
    except ValueError as exc:
        raise ValueError(f"{lead}{exc}; expected {_IP_PORT_FORM}") from None
    except dnswire.DNSError:
        raise ValueError(
            f"{lead}{_shown(host) or 'the address'} is not an IP address; expected {_IP_PORT_FORM}"
        ) from None
    return host, port
