"""Read and validate duckdns.conf; every refusal names the file and the fix.

Two forms are accepted:

* the native form, ``key = value`` lines (see duckdns.conf(5));
* the hand-made recipe's curl config, recognised by its ``url = "https://…/update?…"``
  line, so an existing setup keeps working untouched: the URL's domains, token and
  scheme://host are taken, every other line (curl options) is ignored.

The ``probe`` setting's targets (:class:`ProbeTarget`) and DNS server addresses
(:func:`parse_server`) are parsed here too, so reading a config needs no DNS client.
"""

from __future__ import annotations

import ipaddress
import os
import re
import stat
from urllib.parse import parse_qs, urlsplit

from duckdns import report

DEFAULT_PATH = "/var/lib/private/duckdns/duckdns.conf"
DEFAULT_SERVER = "https://www.duckdns.org"
DEFAULT_REFRESH = 24 * 3600
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

TOKEN = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
SUBNAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")  # a DNS label, lowercase
DURATION = re.compile(r"(\d+)\s*([smhd]?)")
UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
NATIVE_LINE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)")
# curl config also allows "key: value", "key value" and "--key".
CURL_LINE = re.compile(r"(?:--)?([A-Za-z0-9_.-]+)\s*(?:[=:]\s*|\s+|$)(.*)")

DNS_PORT = 53
# In order, first valid answer wins: each provider's second address before the next provider,
# so one intercepted or blocked address (some routers and ISPs do that to 1.1.1.1) does not
# leave the probe to a single other party.
DEFAULT_PROBE = (
    "cloudflare@1.1.1.1, cloudflare@1.0.0.1, opendns@208.67.222.222, opendns@208.67.220.220"
)
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
    """A validated configuration. ``token`` is registered with the redactor on load."""

    __slots__ = ("path", *KEYS, "legacy")  # every config key, plus where it came from

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


def parse_domains(value: str, where: str) -> tuple[str, ...]:
    names = []
    for raw in value.split(","):
        name = raw.strip().lower().rstrip(".")
        if name.endswith(".duckdns.org"):
            name = name[: -len(".duckdns.org")]
        if not name:
            continue
        if not SUBNAME.fullmatch(name):
            raise ConfigError(
                f"{where}: {raw.strip()!r} is not a DuckDNS subname: use letters, digits and "
                "inner hyphens, 1 to 63 characters (e.g. 'piserver' or 'piserver.duckdns.org')"
            )
        if name not in names:
            names.append(name)
    if not names:
        raise ConfigError(f"{where}: no domain given: set 'domains = yourname' (comma separated)")
    return tuple(names)


def check_token(value: str, where: str) -> str:
    token = value.strip()
    if not TOKEN.fullmatch(token):
        # Never echo the value: it may be a real token with a typo.
        raise ConfigError(
            f"{where}: the token is not a DuckDNS token (expected 8-4-4-4-12 hexadecimal "
            "digits, as shown on duckdns.org): run 'dpkg-reconfigure duckdns' or fix the file"
        )
    return token


def parse_duration(value: str, where: str) -> int:
    match = DURATION.fullmatch(value.strip().lower())
    if not match or int(match[1]) == 0:
        raise ConfigError(
            f"{where}: {value!r} is not a duration: write e.g. '24h', '90m', '3600s' or '1d'"
        )
    return int(match[1]) * UNITS[match[2]]


def _address(value: str, version: int, key: str, where: str) -> str:
    value = value.strip().lower()
    if value in ("auto", "off"):
        return value
    try:
        addr = ipaddress.ip_address(value)
    except ValueError:
        addr = None
    if addr is None or addr.version != version:
        raise ConfigError(
            f"{where}: {key} = {value!r} is not valid: use 'auto', 'off' or an IPv{version} address"
        )
    return str(addr)


def _server(value: str, where: str) -> str:
    value = value.strip().rstrip("/")
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.hostname:
        raise ConfigError(
            f"{where}: server {value!r} is refused: only https:// URLs are accepted "
            f"(default {DEFAULT_SERVER})"
        )
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ConfigError(f"{where}: server must be a plain base URL such as {DEFAULT_SERVER}")
    return value


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def _legacy(values: dict[str, str], url: str, where: str) -> dict[str, str]:
    """Translate the recipe's curl config URL into native keys."""
    parts = urlsplit(_unquote(url))
    if parts.scheme != "https" or not parts.hostname or not parts.path.endswith("/update"):
        raise ConfigError(
            f"{where}: the curl 'url' line is not a DuckDNS https://…/update URL: "
            "rewrite the file in the native form (see duckdns.conf(5))"
        )
    query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    base = f"{parts.scheme}://{parts.netloc}{parts.path[: -len('/update')]}"
    values = {"domains": query.get("domains", ""), "token": query.get("token", ""), "server": base}
    if query.get("ip"):
        values["ipv4"] = query["ip"]
    if query.get("ipv6"):
        values["ipv6"] = query["ipv6"]
    # The recipe made one request per run: keep that behaviour unless told otherwise.
    values["probe"] = "off"
    return values


def parse(text: str, path: str) -> Config:
    """Parse the text of ``path`` (already read) into a Config."""
    values: dict[str, str] = {}
    url: str | None = None
    curl_cacert = ""
    native_errors: list[str] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{path}, line {number}"
        curl = CURL_LINE.match(line)
        if curl and curl[1].lower() == "url":
            url = curl[2]
            continue
        if curl and curl[1].lower() == "cacert":
            curl_cacert = _unquote(curl[2])
        native = NATIVE_LINE.match(line)
        if native is None:
            native_errors.append(
                f"{where}: cannot parse {line.split()[0][:40]!r}: "
                "write 'key = value' (see duckdns.conf(5))"
            )
            continue
        key = native[1].lower()
        if key not in KEYS:
            native_errors.append(f"{where}: unknown key {key!r}: known keys are " + ", ".join(KEYS))
            continue
        values[key] = _unquote(native[2])
    where = str(path)
    if url is not None:
        # A curl config: its other lines are curl options, not our keys.
        values = _legacy(values, url, where)
        if curl_cacert:  # curl's --cacert: the CA the recipe trusted
            values["ca_bundle"] = curl_cacert
    elif native_errors:
        raise ConfigError(native_errors[0])
    if "token" in values:
        report.register_secret(values["token"].strip())
    if values.get("healthcheck", "").strip():  # issue 11: a secret too, registered as early
        for secret in ping_url_secrets(values["healthcheck"].strip()):
            report.register_secret(secret)
    if "token" not in values:
        raise ConfigError(f"{where}: no token: run 'dpkg-reconfigure duckdns' or add 'token = …'")
    if "domains" not in values:
        raise ConfigError(f"{where}: no domains: add 'domains = yourname'")
    token = check_token(values["token"], where)
    report.register_secret(token)
    healthcheck = _healthcheck(values.get("healthcheck", ""), where)  # issue 11
    ipv4 = _address(values.get("ipv4", "auto"), 4, "ipv4", where)
    ipv6 = _address(values.get("ipv6", "off"), 6, "ipv6", where)
    if ipv4 == "off" and ipv6 == "off":
        raise ConfigError(
            f"{where}: ipv4 and ipv6 are both off: nothing to update; "
            "set 'ipv4 = auto' or 'ipv6 = auto'"
        )
    ca_bundle = values.get("ca_bundle", "").strip() or None
    if ca_bundle and not os.path.isfile(ca_bundle):
        raise ConfigError(
            f"{where}: ca_bundle {ca_bundle} does not exist: fix the path "
            "or remove the line to use the system's CA store"
        )
    try:
        probes = parse_probe(values.get("probe", DEFAULT_PROBE))
    except ValueError as exc:
        raise ConfigError(f"{where}: probe: {exc}") from None
    return Config(
        path=path,
        domains=parse_domains(values["domains"], where),
        token=token,
        ipv4=ipv4,
        ipv6=ipv6,
        server=_server(values.get("server", DEFAULT_SERVER), where),
        ca_bundle=ca_bundle,
        probe=probes,
        refresh=parse_duration(values.get("refresh", "24h"), where),
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
        parts = urlsplit(url)
        valid = parts.scheme == "https" and bool(parts.hostname) and not parts.fragment
    except ValueError:
        valid = False
    if not valid or any(c.isspace() for c in url):
        # Never echo the value: it is a secret.
        raise ConfigError(
            f"{where}: healthcheck is not an https:// URL: copy the ping URL from "
            "Healthchecks.io or the Uptime Kuma push monitor (it must use HTTPS)"
        )
    return url


def load(path: str | os.PathLike) -> Config:
    """Read ``path`` after checking that only its owner can read or write it."""
    path = os.fspath(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise ConfigError(
            f"{path} does not exist: run 'dpkg-reconfigure duckdns', or pass --config FILE"
        ) from None
    except PermissionError:
        raise ConfigError(f"{path} cannot be read: run as root (e.g. 'sudo duckdns …')") from None
    except OSError as exc:
        raise ConfigError(f"{path} cannot be opened ({exc.strerror}): fix the path") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"{path} is not a regular file: point --config at the file")
        if st.st_mode & 0o077:
            raise ConfigError(
                f"{path} is readable or writable by group or others "
                f"(mode {stat.S_IMODE(st.st_mode):04o}): run 'chmod 600 {path}'"
            )
        data = f.read(65536)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text: rewrite it as plain text") from None
    return parse(text, path)


# -- probe targets and DNS server addresses ----------------------------------------------------


class ProbeTarget:
    """One ``KIND@ADDRESS[:PORT]`` entry of the ``probe`` setting."""

    __slots__ = ("kind", "address", "port")

    def __init__(self, kind: str, address: str, port: int = DNS_PORT) -> None:
        if kind not in PROBE_KINDS:
            raise ValueError(
                f"unknown probe kind {kind!r}; expected one of {', '.join(PROBE_KINDS)}"
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
    targets = []
    for raw in text.split(","):
        entry = raw.strip()
        if not entry:
            raise ValueError(f"probe {text!r}: empty entry; expected {_PROBE_FORM}")
        if entry.lower() == "off":
            raise ValueError(f"probe {text!r}: 'off' must stand alone; expected {_PROBE_FORM}")
        kind, at, where = entry.partition("@")
        kind = kind.strip().lower()
        if not at:
            raise ValueError(f"probe entry {entry!r}: missing '@ADDRESS'; expected {_PROBE_FORM}")
        if kind not in PROBE_KINDS:
            raise ValueError(
                f"probe entry {entry!r}: unknown kind {kind!r} "
                f"(known: {', '.join(PROBE_KINDS)}); expected {_PROBE_FORM}"
            )
        if where.count(":") > 1 or where.strip().startswith("["):
            raise ValueError(f"probe entry {entry!r}: {_NOT_IPV6}")
        try:
            address, port = parse_server(where)
        except ValueError as e:
            raise ValueError(f"probe entry {entry!r}: {e}") from None
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
                f"{text!r}: missing ']' after the IPv6 address; expected {_SERVER_FORM}"
            )
        host, rest = spec[1:close], spec[close + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise ValueError(
                    f"{text!r}: unexpected {rest!r} after ']'; expected {_SERVER_FORM}"
                )
            port_text = rest[1:]
        if ":" not in host:
            raise ValueError(
                f"{text!r}: brackets are only for IPv6 addresses; expected {_SERVER_FORM}"
            )
    elif spec.count(":") > 1:
        raise ValueError(f"{text!r}: put an IPv6 address in brackets; expected {_SERVER_FORM}")
    elif ":" in spec:
        host, port_text = spec.split(":", 1)
    else:
        host = spec
    if not host:
        raise ValueError(f"{text!r}: no address; expected {_SERVER_FORM}")
    if port_text is None:
        port = default_port
    else:
        if not (port_text.isascii() and port_text.isdigit()):
            raise ValueError(
                f"{text!r}: port {port_text!r} is not a number; expected {_SERVER_FORM}"
            )
        port = int(port_text)
        if not 0 < port < 65536:
            raise ValueError(f"{text!r}: port {port} is out of range 1-65535")
    if not _is_ip_address(host):
        raise ValueError(f"{text!r}: {host!r} is not an IP address; expected {_SERVER_FORM}")
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
        except OSError:
            return False
    return True
