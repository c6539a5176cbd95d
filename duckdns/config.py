"""Read and validate duckdns.conf; every refusal names the file and the fix.

Two forms are accepted:

* the native form, ``key = value`` lines (see duckdns.conf(5));
* the hand-made recipe's curl config, recognised by its ``url = "https://…/update?…"``
  line, so an existing setup keeps working untouched: the URL's domains, token and
  scheme://host are taken, every other line (curl options) is ignored.

Import cost matters: every timer run loads this module. It validates by hand, without
``re``, ``ipaddress``, ``pathlib`` or ``urllib.parse`` (together about 12 ms to import, most
of what a ``duckdns check`` would cost; see scripts/bench). Each hand check is written to
accept and refuse exactly what the regular expression or parser it replaced did, and where
that would be intricate (an IPv6 literal, an unusual server URL, the curl-config URL) the
fast check only accepts the plain, common form and hands anything else to the standard
library parser, imported then, which decides.
"""

from __future__ import annotations

import _socket
import os
import stat

from duckdns import probe, report
from duckdns.fsutil import join, normpath

DEFAULT_PATH = "/var/lib/private/duckdns/duckdns.conf"
DEFAULT_SERVER = "https://www.duckdns.org"
DEFAULT_REFRESH = 24 * 3600
KEYS = ("domains", "token", "ipv4", "ipv6", "server", "ca_bundle", "probe", "refresh")

_HEX = frozenset("0123456789abcdefABCDEF")
_TOKEN_GROUPS = (8, 4, 4, 4, 12)  # hexadecimal digits between the hyphens
_SUBNAME_ENDS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")  # first and last character
_SUBNAME_CHARS = _SUBNAME_ENDS | {"-"}
_KEY_START = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")
_KEY_CHARS = _KEY_START | frozenset("0123456789")
_CURL_NAME_CHARS = _KEY_CHARS | {".", "-"}
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
# Server URLs the fast check accepts without urllib.parse: https://HOST[:PORT][/PATH] with
# these characters only (no user, query, fragment, brackets, escapes or spaces).
_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-")
_PATH_CHARS = _HOST_CHARS | frozenset("/_~")


class ConfigError(Exception):
    """The configuration cannot be used. Exit code 78 (EX_CONFIG)."""


class Config:
    """A validated configuration. ``token`` is registered with the redactor on load."""

    __slots__ = (
        "path",
        "domains",
        "token",
        "ipv4",
        "ipv6",
        "server",
        "ca_bundle",
        "probe",
        "refresh",
        "legacy",
    )

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
        return join(normpath(state_dir), "duckdns.conf")
    return DEFAULT_PATH


def _is_subname(name: str) -> bool:
    """``^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$``: a DNS label, lowercase, 1 to 63 long."""
    return (
        0 < len(name) <= 63
        and name[0] in _SUBNAME_ENDS
        and name[-1] in _SUBNAME_ENDS
        and all(c in _SUBNAME_CHARS for c in name)
    )


def parse_domains(value: str, where: str) -> tuple[str, ...]:
    names = []
    for raw in value.split(","):
        name = raw.strip().lower().rstrip(".")
        if name.endswith(".duckdns.org"):
            name = name[: -len(".duckdns.org")]
        if not name:
            continue
        if not _is_subname(name):
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
    groups = token.split("-")
    if tuple(map(len, groups)) != _TOKEN_GROUPS or not all(c in _HEX for c in token if c != "-"):
        # Never echo the value: it may be a real token with a typo.
        raise ConfigError(
            f"{where}: the token is not a DuckDNS token (expected 8-4-4-4-12 hexadecimal "
            "digits, as shown on duckdns.org): run 'dpkg-reconfigure duckdns' or fix the file"
        )
    return token


def parse_duration(value: str, where: str) -> int:
    """``^(\\d+)\\s*([smhd]?)$`` on the lowercased value: digits, spaces, one unit letter."""
    text = value.strip().lower()
    digits = 0
    while digits < len(text) and text[digits].isdecimal():  # what \\d matches
        digits += 1
    unit = text[digits:].lstrip()  # str.isspace() is what \\s matches
    if not digits or unit not in _UNITS or int(text[:digits]) == 0:
        raise ConfigError(
            f"{where}: {value!r} is not a duration: write e.g. '24h', '90m', '3600s' or '1d'"
        )
    return int(text[:digits]) * _UNITS[unit]


def _address(value: str, version: int, key: str, where: str) -> str:
    value = value.strip().lower()
    if value in ("auto", "off"):
        return value
    # An address already in its canonical form (the usual case) needs no ipaddress module:
    # inet_pton accepts it and inet_ntop gives it back unchanged. IPv4: glibc and ipaddress
    # both want four decimal octets without leading zeros; IPv6: glibc writes the RFC 5952
    # form str(IPv6Address) writes, except for embedded IPv4 ("."), left to ipaddress.
    family = _socket.AF_INET if version == 4 else _socket.AF_INET6
    try:
        if _socket.inet_ntop(family, _socket.inet_pton(family, value)) == value and (
            version == 4 or "." not in value
        ):
            return value
    except (OSError, ValueError):
        pass
    import ipaddress

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
    if _plain_https_url(value):
        return value
    from urllib.parse import urlsplit

    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.hostname:
        raise ConfigError(
            f"{where}: server {value!r} is refused: only https:// URLs are accepted "
            f"(default {DEFAULT_SERVER})"
        )
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ConfigError(f"{where}: server must be a plain base URL such as {DEFAULT_SERVER}")
    return value


def _plain_https_url(value: str) -> bool:
    """``https://HOST[:PORT][/PATH]`` in plain characters: what urlsplit accepts as a server.

    Only a quick yes: anything else (a no, or an unusual URL) goes to urlsplit, which decides.
    """
    if not value.startswith("https://"):
        return False
    netloc, _, path = value[len("https://") :].partition("/")
    host, colon, port = netloc.partition(":")
    return (
        bool(host)
        and all(c in _HOST_CHARS for c in host)
        and (not colon or (port.isascii() and port.isdigit()))
        and all(c in _PATH_CHARS for c in path)
    )


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def _split_line(line: str) -> tuple[str, str] | None:
    """``key = value``; curl config also allows ``key: value``, ``key value`` and ``--key``.

    What ``^(?:--)?([A-Za-z0-9_.-]+)\\s*(?:[=:]\\s*|\\s+|$)(.*)$`` matched: the name is the
    longest run of those characters (less a leading ``--`` if more follows), then the end, or
    whitespace and/or one ``=`` or ``:`` (with the whitespace around it) before the value.
    """
    end = 0
    while end < len(line) and line[end] in _CURL_NAME_CHARS:
        end += 1
    name = line[:end]
    if not name:
        return None
    if name.startswith("--") and len(name) > 2:
        name = name[2:]
    rest = line[end:]
    if rest and not (rest[0] in "=:" or rest[0].isspace()):
        return None
    rest = rest.lstrip()
    if rest[:1] in ("=", ":"):
        rest = rest[1:].lstrip()
    return name.lower(), rest


def _legacy(values: dict[str, str], url: str, where: str) -> dict[str, str]:
    """Translate the recipe's curl config URL into native keys."""
    from urllib.parse import parse_qs, urlsplit

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


def _split_native(line: str) -> tuple[str, str] | None:
    """What ``^([A-Za-z_][A-Za-z0-9_]*)\\s*=\\s*(.*)$`` matched: (key, value) or None."""
    if not line or line[0] not in _KEY_START:
        return None
    end = 1
    while end < len(line) and line[end] in _KEY_CHARS:
        end += 1
    rest = line[end:].lstrip()
    if not rest.startswith("="):
        return None
    return line[:end], rest[1:].lstrip()


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
        split = _split_line(line)
        if split and split[0] == "url":
            url = split[1]
            continue
        if split and split[0] == "cacert":
            curl_cacert = _unquote(split[1])
        native = _split_native(line)
        if native is None:
            native_errors.append(
                f"{where}: cannot parse {line.split()[0][:40]!r}: "
                "write 'key = value' (see duckdns.conf(5))"
            )
            continue
        key = native[0].lower()
        if key not in KEYS:
            native_errors.append(f"{where}: unknown key {key!r}: known keys are " + ", ".join(KEYS))
            continue
        values[key] = _unquote(native[1])
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
    if "token" not in values:
        raise ConfigError(f"{where}: no token: run 'dpkg-reconfigure duckdns' or add 'token = …'")
    if "domains" not in values:
        raise ConfigError(f"{where}: no domains: add 'domains = yourname'")
    token = check_token(values["token"], where)
    report.register_secret(token)
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
    probe_spec = values.get("probe", probe.DEFAULT_PROBE)
    try:
        probes = probe.parse_probe(probe_spec)
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
    )


def load(path: str | os.PathLike) -> Config:
    """Read ``path`` after checking that only its owner can read or write it."""
    path = normpath(path)
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
