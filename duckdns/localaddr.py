"""This host's own global IPv6 address, read from the kernel (for ``ipv6 = auto``)."""

from __future__ import annotations

import ipaddress
import os

# /proc/self/net, not /proc/net: under the unit's ProcSubset=pid the /proc/net link is
# hidden, while the process's own net directory stays readable.
IF_INET6 = "/proc/self/net/if_inet6"

# Address flags from linux/if_addr.h, as printed in /proc/net/if_inet6.
IFA_F_TEMPORARY = 0x01
IFA_F_DADFAILED = 0x08
IFA_F_DEPRECATED = 0x20
IFA_F_TENTATIVE = 0x40
_UNUSABLE = IFA_F_DADFAILED | IFA_F_DEPRECATED | IFA_F_TENTATIVE


def candidates(text: str) -> list[str]:
    """Usable global unicast addresses from the text of /proc/net/if_inet6, best first.

    Refused: any range that is not global (link-local and ULA, fc00::/7, among them: the
    IANA registry ipaddress reads), and addresses that are deprecated, tentative or failed
    duplicate detection. Stable addresses come before temporary (privacy) ones, which
    change daily and would make every run an update.
    """
    found: list[tuple[int, str]] = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 6 or len(fields[0]) != 32:
            continue
        try:
            flags = int(fields[4], 16)
            addr = ipaddress.IPv6Address(int(fields[0], 16))
        except ValueError:
            continue
        if flags & _UNUSABLE or not addr.is_global:
            continue
        found.append((flags & IFA_F_TEMPORARY, str(addr)))
    return [addr for _, addr in sorted(found, key=lambda item: item[0])]


def global_ipv6(path: str | os.PathLike[str] = IF_INET6) -> str | None:
    """The best address of this host, or None if it has none."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return None
    found = candidates(text)
    return found[0] if found else None
