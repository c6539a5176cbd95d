"""Read and validate duckdns.conf; every refusal names the file, the line and the fix.

Two forms are accepted:

* the native form, ``key = value`` lines (see duckdns.conf(5));
* the hand-made recipe's curl config, recognised by its ``url = "https://…/update?…"``
  line, so an existing setup keeps working untouched: the URL's domains, token and
  scheme://host are taken, every other line (curl options) is ignored.

A refusal never quotes what a line holds when a secret may be there: an unparsable
line, an unknown key, a token or heartbeat URL, a server URL (the update URL with its
token is easily pasted there) or a domain list are described, never echoed. Short
values that cannot hold a secret (an address, a duration) are quoted (:func:`_shown`).
The token and the heartbeat URL are registered with duckdns.report before any refusal
can be raised, and report masks anything shaped like a token in any case.

The ``probe`` setting's targets (:class:`ProbeTarget`) and DNS server addresses
(:func:`parse_server`) are parsed here too, so reading a config needs no DNS client.
The server URL has one strict parser (:func:`parse_https_url`); the request is built
from its result, and :func:`tls_context` is the one place a CA file is loaded.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import re
import stat
from urllib.parse import parse_qs

from duckdns import report

DEFAULT_PATH = "/var/lib/private/duckdns/duckdns.conf"
DEFAULT_SERVER = "https://www.duckdns.org"
DEFAULT_REFRESH = 24 * 3600
MAX_REFRESH = 365 * 86400
MAX_SIZE = 65536  # a config is a few hundred bytes; more is not a config
MAX_CA_SIZE = 4 * 1024 * 1024  # Debian's whole CA store is about 200 KiB
# DuckDNS free accounts have at most 5 subnames (docs: duckdns-api.md): more is said by check.
ACCOUNT_DOMAINS = 5
KEYS = (
    "domains",
    "token",
    "ipv4",
    "ipv6",
    "server",
    "ca_bundle",
    "probe",
    "refresh",
    "healthcheck",
)

TOKEN = re.compile(report.TOKEN_PATTERN)
SUBNAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")  # a DNS label, lowercase
DURATION = re.compile(r"([0-9]+)\s*([smhd]?)")
UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
NATIVE_LINE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)")
# curl config also allows "key: value", "key value" and "--key".
CURL_LINE = re.compile(r"(?:--)?([A-Za-z0-9_.-]+)\s*(?:[=:]\s*|\s+|$)(.*)")
# A known key followed by ':' or a space instead of '=' (curl config habits).
_KEY_WITHOUT_EQUALS = re.compile(r"(?:--)?(" + "|".join(KEYS) + r")(?:\s*:|\s)", re.IGNORECASE)
# What may be quoted back: short, the characters of addresses, ports, durations and probe
# entries only, and no run of 8 hexadecimal digits (a token's first group, a check's UUID).
_SHOWABLE = re.compile(r"[A-Za-z0-9 ._:@\[\]%,+-]{0,64}")
_HEX_RUN = re.compile(r"[0-9a-fA-F]{8}")
# URLs: RFC 3986 path characters without '%' (allowed only where asked) and '\'.
_URL_PATH = re.compile(r"[A-Za-z0-9._~!$&'()*+,;=:@/-]*")
_URL_PATH_PERCENT = re.compile(r"(?:[A-Za-z0-9._~!$&'()*+,;=:@/-]|%[0-9A-Fa-f]{2})*")
_URL_QUERY = re.compile(r"(?:[A-Za-z0-9._~!$&'()*+,;=:@/?-]|%[0-9A-Fa-f]{2})*")
_LDH_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_URL_FORM = "https://HOST[:PORT][/PATH], e.g. https://www.duckdns.org"

DNS_PORT = 53
# In order, first valid answer wins: each provider's second address before the next provider,
# so one intercepted or blocked address (some routers and ISPs do that to 1.1.1.1) does not
# leave the probe to a single other party.
DEFAULT_PROBE = (
    "cloudflare@1.1.1.1, cloudflare@1.0.0.1, opendns@208.67.222.222, opendns@208.67.220.220"
)
MAX_PROBES = 8
PROBE_KINDS = ("cloudflare", "opendns")  # what each asks: duckdns.probe.KINDS
_PROBE_FORM = (
    "off, or a comma-separated list of KIND@ADDRESS[:PORT] with KIND cloudflare or opendns "
    "and an IPv4 ADDRESS, e.g. cloudflare@1.1.1.1, opendns@208.67.222.222:53"
)
# Why an IPv6 address can never answer: the question is the public IPv4 address.
_NOT_IPV6 = (
    "an IPv6 probe address can never tell the public IPv4 address (Cloudflare answers with "
    "the IPv6 address the query came from, OpenDNS with NXDOMAIN): write KIND@ADDRESS[:PORT] "
    "with an IPv4 address, e.g. cloudflare@1.1.1.1 or opendns@208.67.222.222"
)
_SERVER_FORM = "ADDRESS[:PORT], IPv6 in brackets, e.g. 1.1.1.1:53 or [2606:4700:4700::1111]:53"


class ConfigError(Exception):
    """The configuration cannot be used. Exit code 78 (EX_CONFIG)."""


class Config:
    """A validated configuration. ``token`` is registered with the redactor on load.

    ``server`` is the canonical base URL made by :func:`parse_https_url` (requests are
    sent to ``server + "/update?…"``) and ``server_host`` its ``host[:port]``, for messages.
    """

    # every config key, plus where it came from and the server's host to show
    __slots__ = ("path", *KEYS, "legacy", "server_host")

    def __init__(self, **values) -> None:
        for key in self.__slots__:
            setattr(self, key, values[key])

    def fingerprint(self) -> str:
        """What, besides the addresses, makes a new update necessary when it changes.

        The file's identity and mtime stand in for the token (a reconfigured token
        must be sent at once), so nothing derived from the token is ever stored.
        """
        st = os.stat(self.path)
        return "|".join(
            [
                ",".join(self.domains),
                self.ipv4,
                self.ipv6,
                self.server,
                f"{st.st_ino}:{st.st_mtime_ns}",
            ]
        )


def default_path() -> str:
    """The config the service reads: ``$STATE_DIRECTORY/duckdns.conf`` under systemd."""
    state_dir = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    if state_dir:
        return os.path.join(state_dir, "duckdns.conf")
    return DEFAULT_PATH


def _shown(value: str) -> str | None:
    """``value`` quoted, if it cannot be (part of) a secret; else None."""
    if _SHOWABLE.fullmatch(value) and not _HEX_RUN.search(value):
        return repr(value)
    return None


def _ordinal(n: int) -> str:
    return {1: "1st", 2: "2nd", 3: "3rd"}.get(n, f"{n}th")


def parse_domains(value: str, where: str) -> tuple[str, ...]:
    """The subnames of ``value``; a bad one is named by its position, never quoted."""
    names = []
    for position, raw in enumerate(value.split(","), 1):
        name = raw.strip().lower().rstrip(".")
        if name.endswith(".duckdns.org"):
            name = name[: -len(".duckdns.org")]
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
    token = value.strip()
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


def _address(value: str, version: int, key: str, where: str) -> str:
    value = value.strip().lower()
    if value in ("auto", "off"):
        return value
    try:
        addr = ipaddress.ip_address(value) if value.isascii() else None
    except ValueError:
        addr = None
    if addr is None or addr.version != version or "%" in value:
        shown = _shown(value)
        raise ConfigError(
            f"{where}: {key} = {shown or '(value not shown)'} is not valid: use 'auto', 'off' "
            f"or an IPv{version} address (without a %zone)"
        )
    return str(addr)


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
    """Parse an ``https://HOST[:PORT][/PATH]`` URL strictly, the one parser of URLs we send to.

    HOST is a DNS name of letters, digits and hyphens (a final dot is dropped), an IPv4
    address or an IPv6 address in brackets; PORT 1-65535; PATH RFC 3986 characters
    without ``.``/``..`` segments (``percent``: with %-escapes); no user name, fragment,
    backslash, space or non-ASCII character; a ``?query`` only if ``query``.
    Raises ValueError saying what is wrong, never quoting the URL (it may hold a secret).
    """
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
    end = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    authority, tail = rest[:end], rest[end:]
    if "@" in authority:
        raise ValueError("a user name or password (…@) is not allowed")
    hostname, port = _authority(authority)
    path, has_query, query_text = tail.partition("?")
    if has_query and not query:
        raise ValueError(f"a ?query is not allowed; expected {_URL_FORM}")
    if "%" in path and not percent:
        raise ValueError("a %-escape is not allowed in the path")
    if not (_URL_PATH_PERCENT if percent else _URL_PATH).fullmatch(path):
        raise ValueError("the path holds a character not allowed in a URL")
    if any(segment in (".", "..") for segment in path.split("/")):
        raise ValueError("the path holds a '.' or '..' segment")
    if not _URL_QUERY.fullmatch(query_text):
        raise ValueError("the query holds a character not allowed in a URL")
    return HttpsURL(hostname, port, path, query_text)


def _authority(authority: str) -> tuple[str, int]:
    """(host name or address, port) of ``HOST[:PORT]``."""
    port_text = None
    if authority.startswith("["):
        close = authority.find("]")
        if close < 0:
            raise ValueError("the IPv6 address has no closing ']'")
        literal, after = authority[1:close], authority[close + 1 :]
        if "%" in literal:
            raise ValueError("an IPv6 %zone is not allowed in a URL")
        try:
            hostname = str(ipaddress.IPv6Address(literal))
        except ValueError:
            raise ValueError("the address in brackets is not an IPv6 address") from None
        if after:
            if not after.startswith(":"):
                raise ValueError("unexpected characters after ']'")
            port_text = after[1:]
    else:
        if authority.count(":") > 1:
            raise ValueError("an IPv6 address must be in brackets: https://[ADDRESS]:PORT")
        name, colon, port = authority.partition(":")
        port_text = port if colon else None
        hostname = _hostname(name)
    if port_text is None:
        return hostname, 443
    if not (port_text.isascii() and port_text.isdigit() and len(port_text) <= 5):
        raise ValueError("the port is not a number from 1 to 65535")
    if not 0 < int(port_text) < 65536:
        raise ValueError("the port is out of range 1-65535")
    return hostname, int(port_text)


def _hostname(name: str) -> str:
    """A DNS name (letters, digits, hyphens; lower-cased) or an IPv4 address."""
    if not name:
        raise ValueError(f"no host name; expected {_URL_FORM}")
    name = name.lower()
    name = name[:-1] if name.endswith(".") else name
    try:
        return str(ipaddress.IPv4Address(name))
    except ValueError:
        pass
    labels = name.split(".")
    if len(name) > 253 or not all(_LDH_LABEL.fullmatch(label) for label in labels):
        raise ValueError(
            "the host is not a DNS name (letters, digits and inner hyphens between dots, "
            "e.g. www.duckdns.org) nor an IP address (IPv6 in brackets)"
        )
    if labels[-1][0].isdigit():
        # A resolver reads "1.2.3" or "0x7f000001" as an IPv4 address: never guess.
        raise ValueError("the host ends in a number: write a full IPv4 address or a DNS name")
    return name


def _server(value: str, where: str) -> HttpsURL:
    try:
        return parse_https_url(value)
    except ValueError as exc:
        raise ConfigError(
            f"{where}: server is refused: {exc}: write a plain https:// base URL "
            f"(default {DEFAULT_SERVER})"
        ) from None


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def _legacy(url: str, where: str) -> dict[str, str]:
    """Translate the recipe's curl config URL into native keys."""
    fix = "rewrite the file in the native form (see duckdns.conf(5))"
    try:
        parsed = parse_https_url(_unquote(url), query=True, percent=True)
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
    base = HttpsURL(parsed.hostname, parsed.port, parsed.path[: -len("/update")], "")
    values = {"domains": query["domains"][0], "token": query["token"][0], "server": base.base}
    if query.get("ip", [""])[0]:
        values["ipv4"] = query["ip"][0]
    if query.get("ipv6", [""])[0]:
        values["ipv6"] = query["ipv6"][0]
    # The recipe made one request per run: keep that behaviour unless told otherwise.
    values["probe"] = "off"
    return values


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


def tls_context(cafile: str, where: str = ""):
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
        count = ctx.cert_store_stats()["x509"]
    except ssl.SSLError as exc:
        count, reason = 0, exc.reason or "not PEM"
    except OSError as exc:
        count, reason = 0, exc.strerror or "cannot be read"
    else:
        reason = "no certificate in it"
    if not count:
        raise ConfigError(
            f"{prefix}the CA file {cafile} cannot be used ({reason}): ca_bundle must be a "
            "file of PEM certificates (-----BEGIN CERTIFICATE-----); fix it, or remove the "
            "ca_bundle line to use the system's CA store (reinstall ca-certificates if that "
            "is the file)"
        )
    return ctx


def _register_secrets(key: str, value: str) -> None:
    """Register what a line holds that must never be printed, before anything is checked."""
    secrets: list[str] = []
    if key == "token":
        secrets = [value.strip(), value.strip().lower()]
    elif key == "healthcheck" and value.strip():
        secrets = ping_url_secrets(value.strip())
    elif key == "url":  # the recipe's update URL: its token, raw and decoded
        _, _, query = value.strip().strip("\"'").partition("?")
        secrets = [value.strip(), *re.findall(r"token=([^&#\s\"']*)", value, re.IGNORECASE)]
        secrets += [t.strip() for t in parse_qs(query, keep_blank_values=True).get("token", ())]
    for secret in secrets:
        # A few characters cannot be a secret, and masking them would garble every message
        # (a full token is masked by its shape whatever its length).
        if len(secret) >= 8:
            report.register_secret(secret)


def _unparsable(line: str, where: str) -> str:
    """Why ``line`` is not ``key = value``, without a byte of it."""
    fix = "write 'key = value' (see duckdns.conf(5))"
    if TOKEN.search(line):
        return f"{where}: a token without 'token = ' in front: write 'token = …'"
    if "://" in line:
        return f"{where}: a URL without a key in front: write 'healthcheck = …' or 'server = …'"
    known = _KEY_WITHOUT_EQUALS.match(line)
    if known:
        return f"{where}: '{known[1].lower()}' needs '=': write '{known[1].lower()} = …'"
    return f"{where}: this line cannot be parsed: {fix}"


def _unknown_key(key: str, where: str) -> str:
    """The refusal of an unknown key: not quoted (it may be the start of a secret)."""
    import difflib

    close = difflib.get_close_matches(key.lower(), KEYS, n=1, cutoff=0.75)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return f"{where}: unknown key: {hint}known keys are " + ", ".join(KEYS)


def parse(text: str, path: str) -> Config:
    """Parse the text of ``path`` (already read) into a Config.

    Every secret is registered with duckdns.report before the first refusal is raised.
    """
    if text.startswith("\ufeff"):  # a byte order mark, as some Windows editors write
        text = text[1:]
    values: dict[str, str] = {}
    lines: dict[str, int] = {}  # key -> the line that set it
    url: str | None = None
    curl_cacert = ""
    native_errors: list[str] = []
    curl_errors: list[str] = []
    # Only '\n' ends a line (with an optional '\r' before it), as in every editor: the
    # line numbers said are the ones the user sees.
    for number, raw in enumerate(text.split("\n"), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{path}, line {number}"
        curl = CURL_LINE.match(line)
        curl_key = curl[1].lower() if curl else ""
        if curl_key in ("url", "cacert"):
            if curl_key == "url":
                _register_secrets("url", curl[2])
            if curl_key in lines:
                curl_errors.append(
                    f"{where}: a second curl '{curl_key}' line (first on line "
                    f"{lines[curl_key]}): keep one"
                )
            lines[curl_key] = number
            if curl_key == "url":
                url = curl[2]
                continue
            curl_cacert = _unquote(curl[2])
        native = NATIVE_LINE.match(line)
        if native is None:
            native_errors.append(_unparsable(line, where))
            continue
        key = native[1].lower()
        value = _unquote(native[2])
        if key not in KEYS:
            native_errors.append(_unknown_key(key, where))
            continue
        _register_secrets(key, value)
        if key in values:
            native_errors.append(
                f"{where}: {key} is set a second time (first on line {lines[key]}): keep one line"
            )
            continue
        if any(ord(c) < 32 and c != "\t" or c == "\x7f" for c in value):
            native_errors.append(f"{where}: the value of {key} holds a control character")
            continue
        values[key] = value
        lines[key] = number

    def at(key: str) -> str:
        return f"{path}, line {lines[key]}" if key in lines else str(path)

    if url is not None:
        # A curl config: its other lines are curl options, not our keys.
        if curl_errors:
            raise ConfigError(curl_errors[0])
        values = _legacy(url, at("url"))
        _register_secrets("token", values["token"])
        cacert_line = lines.get("cacert", lines["url"])
        lines = {key: lines["url"] for key in values}
        if curl_cacert:  # curl's --cacert: the CA the recipe trusted
            values["ca_bundle"] = curl_cacert
            lines["ca_bundle"] = cacert_line
    elif native_errors:
        raise ConfigError(native_errors[0])
    if "token" not in values:
        raise ConfigError(f"{path}: no token: run 'dpkg-reconfigure duckdns' or add 'token = …'")
    if "domains" not in values:
        raise ConfigError(f"{path}: no domains: add 'domains = yourname'")
    token = check_token(values["token"], at("token"))
    healthcheck = _healthcheck(values.get("healthcheck", ""), at("healthcheck"))
    ipv4 = _address(values.get("ipv4", "auto"), 4, "ipv4", at("ipv4"))
    ipv6 = _address(values.get("ipv6", "off"), 6, "ipv6", at("ipv6"))
    if ipv4 == "off" and ipv6 == "off":
        raise ConfigError(
            f"{path}: ipv4 and ipv6 are both off: nothing to update; "
            "set 'ipv4 = auto' or 'ipv6 = auto'"
        )
    ca_bundle = _ca_bundle(values.get("ca_bundle", ""), at("ca_bundle"))
    try:
        probes = parse_probe(values.get("probe", DEFAULT_PROBE))
    except ValueError as exc:
        raise ConfigError(f"{at('probe')}: probe: {exc}") from None
    server = _server(values.get("server", DEFAULT_SERVER), at("server"))
    return Config(
        path=path,
        domains=parse_domains(values["domains"], at("domains")),
        token=token,
        ipv4=ipv4,
        ipv6=ipv6,
        server=server.base,
        server_host=server.netloc,
        ca_bundle=ca_bundle,
        probe=probes,
        refresh=parse_duration(values.get("refresh", "24h"), at("refresh")),
        legacy=url is not None,
        healthcheck=healthcheck,
    )


def ping_url_secrets(url: str) -> list[str]:
    """What of a heartbeat URL must never be shown: the URL, and its path and query (the
    part that identifies the check; requests' error texts show it without the host)."""
    rest = url.split("://", 1)[-1]
    path = "/" + rest.split("/", 1)[1] if "/" in rest else ""
    return [url, path] if len(path) > 1 else [url]


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


def _describe_not_regular(mode: int) -> str:
    for test, what in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a device"),
        (stat.S_ISBLK, "a device"),
    ):
        if test(mode):
            return what
    return "not a regular file"


def load(path: str | os.PathLike) -> Config:
    """Read ``path`` after checking that only its owner can read or write it.

    Never blocks (a FIFO or a device is opened non-blocking, then refused) and never
    follows a symbolic link: anything but a regular file of at most MAX_SIZE bytes of
    UTF-8 text is refused.
    """
    path = os.fspath(path)
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
        if st.st_mode & 0o077:
            raise ConfigError(
                f"{path} is readable or writable by group or others "
                f"(mode {stat.S_IMODE(st.st_mode):04o}): run 'chmod 600 {path}'"
            )
        data = b""
        while len(data) <= MAX_SIZE:
            chunk = os.read(fd, MAX_SIZE + 1 - len(data))
            if not chunk:
                break
            data += chunk
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
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text: rewrite it as plain text") from None
    return parse(text, path)


# -- probe targets and DNS server addresses ----------------------------------------------------


def _q(value: str, hidden: str) -> str:
    """``value`` quoted for a message if it cannot hold a secret (see :func:`_shown`),
    else the words ``hidden``."""
    return _shown(value) or hidden


def _lead(value: str) -> str:
    """``'value': `` to start a message with, or nothing (see :func:`_shown`)."""
    shown = _shown(value)
    return f"{shown}: " if shown else ""


class ProbeTarget:
    """One ``KIND@ADDRESS[:PORT]`` entry of the ``probe`` setting."""

    __slots__ = ("kind", "address", "port")

    def __init__(self, kind: str, address: str, port: int = DNS_PORT) -> None:
        if kind not in PROBE_KINDS:
            raise ValueError(
                f"unknown probe kind {_q(kind, 'given')}; expected one of {', '.join(PROBE_KINDS)}"
            )
        self.kind = kind
        self.address = address
        self.port = port

    def __str__(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        port = "" if self.port == DNS_PORT else f":{self.port}"
        return f"{self.kind}@{host}{port}"

    def __repr__(self) -> str:
        return f"ProbeTarget({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ProbeTarget):
            return NotImplemented
        return (self.kind, self.address, self.port) == (other.kind, other.address, other.port)

    def __hash__(self) -> int:
        return hash((self.kind, self.address, self.port))


def parse_probe(spec: str) -> list[ProbeTarget]:
    """Parse the ``probe`` setting; ``off`` gives an empty list.

    Raises ValueError naming the bad entry and the accepted form.
    """
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
        name = f"probe entry {_q(entry, f'number {number}')}"
        if not entry:
            raise ValueError(f"probe: empty entry (number {number}); expected {_PROBE_FORM}")
        if entry.lower() == "off":
            raise ValueError(f"probe: 'off' must stand alone; expected {_PROBE_FORM}")
        kind, at, where = entry.partition("@")
        kind = kind.strip().lower()
        if not at:
            raise ValueError(f"{name}: missing '@ADDRESS'; expected {_PROBE_FORM}")
        if kind not in PROBE_KINDS:
            raise ValueError(
                f"{name}: unknown kind {_q(kind, '')} "
                f"(known: {', '.join(PROBE_KINDS)}); expected {_PROBE_FORM}"
            )
        if where.count(":") > 1 or where.strip().startswith("["):
            raise ValueError(f"{name}: {_NOT_IPV6}")
        try:
            address, port = parse_server(where)
        except ValueError as e:
            raise ValueError(f"{name}: {e}") from None
        targets.append(ProbeTarget(kind, address, port))
    return targets


def parse_server(text: str, default_port: int = DNS_PORT) -> tuple[str, int]:
    """Parse ``ADDRESS[:PORT]`` (IPv6 in brackets: ``[ADDRESS]:PORT``) into (address, port).

    The address must be numeric: looking a name up would need DNS, the thing being checked.
    An IPv6 link-local address may carry a zone (``fe80::1%eth0``).
    Raises ValueError naming the bad part.
    """
    spec = text.strip()
    port_text = None
    if spec.startswith("["):
        close = spec.find("]")
        if close < 0:
            raise ValueError(
                f"{_lead(text)}missing ']' after the IPv6 address; expected {_SERVER_FORM}"
            )
        host, rest = spec[1:close], spec[close + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise ValueError(
                    f"{_lead(text)}unexpected {_q(rest, 'characters')} after ']'; "
                    f"expected {_SERVER_FORM}"
                )
            port_text = rest[1:]
        if ":" not in host:
            raise ValueError(
                f"{_lead(text)}brackets are only for IPv6 addresses; expected {_SERVER_FORM}"
            )
    elif spec.count(":") > 1:
        raise ValueError(f"{_lead(text)}put an IPv6 address in brackets; expected {_SERVER_FORM}")
    elif ":" in spec:
        host, port_text = spec.split(":", 1)
    else:
        host = spec
    if not host:
        raise ValueError(f"{_lead(text)}no address; expected {_SERVER_FORM}")
    if port_text is None:
        port = default_port
    else:
        if not (port_text.isascii() and port_text.isdigit() and len(port_text) <= 5):
            raise ValueError(
                f"{_lead(text)}port {_q(port_text, 'value')} is not a number; "
                f"expected {_SERVER_FORM}"
            )
        port = int(port_text)
        if not 0 < port < 65536:
            raise ValueError(f"{_lead(text)}port {port} is out of range 1-65535")
    if not _is_ip_address(host):
        raise ValueError(
            f"{_lead(text)}{_q(host, 'the address')} is not an IP address; expected {_SERVER_FORM}"
        )
    return host, port


def _is_ip_address(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    zone = getattr(address, "scope_id", None)
    if zone and not zone.isdigit():  # an interface name: it must exist
        import socket

        try:
            socket.if_nametoindex(zone)
        except (OSError, ValueError):  # no such interface; a NUL in the name
            return False
    return True
