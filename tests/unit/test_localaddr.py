"""Choosing this host's global IPv6 address from /proc/net/if_inet6 lines."""

from __future__ import annotations

from pathlib import Path

from duckdns import localaddr

# address, ifindex, prefixlen, scope, flags, name — the kernel's format.
LINES = {
    "loopback": "00000000000000000000000000000001 01 80 10 80       lo",
    "linklocal": "fe80000000000000021122fffe334455 02 40 20 80     eth0",
    "ula": "fd000000000000000000000000000001 02 40 00 80     eth0",
    "temporary": "2a0104f8000100020000000000009999 02 40 00 01     eth0",
    "stable": "2a0104f8000100020211 22fffe334455".replace(" ", "") + " 02 40 00 00     eth0",
    "deprecated": "2a0104f8000100030000000000000001 02 40 00 20     eth0",
    "tentative": "2a0104f8000100040000000000000001 02 40 00 40     eth0",
    "dadfailed": "2a0104f8000100050000000000000001 02 40 00 88     eth0",
    "permanent": "2a0104f8000100060000000000000001 02 40 00 80     eth0",
}


def test_stable_preferred_over_temporary():
    text = "\n".join(LINES[k] for k in ("loopback", "linklocal", "ula", "temporary", "stable"))
    assert localaddr.candidates(text) == ["2a01:4f8:1:2:211:22ff:fe33:4455", "2a01:4f8:1:2::9999"]


def test_unusable_addresses_are_refused():
    text = "\n".join(
        LINES[k] for k in ("loopback", "linklocal", "ula", "deprecated", "tentative", "dadfailed")
    )
    assert localaddr.candidates(text) == []


def test_permanent_static_address_counts():
    assert localaddr.candidates(LINES["permanent"]) == ["2a01:4f8:1:6::1"]


def test_only_temporary_is_still_used():
    assert localaddr.candidates(LINES["temporary"]) == ["2a01:4f8:1:2::9999"]


def test_garbage_lines_are_skipped(tmp_path: Path):
    f = tmp_path / "if_inet6"
    f.write_text("nonsense\n" + LINES["stable"] + "\nzz zz\n")
    assert localaddr.global_ipv6(f) == "2a01:4f8:1:2:211:22ff:fe33:4455"
    assert localaddr.global_ipv6(tmp_path / "missing") is None


def test_real_kernel_file_parses():
    # Whatever this machine has, the answer is None or a global address.
    addr = localaddr.global_ipv6()
    assert addr is None or not addr.startswith(("fe80", "fd", "fc", "::1"))
