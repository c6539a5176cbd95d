"""``duckdns verify``: do the names resolve to where DuckDNS last recorded?

Each configured domain (as NAME.duckdns.org) and each extra name is resolved with
duckdns.resolve (dnspython), following CNAME chains such as
``cloud.example.com -> piserver.example.com -> example.duckdns.org``, and its addresses
are compared with the IPv4/IPv6 that DuckDNS reported in the last update (state.json).
Exit 0 when every name matches, 1 when one does not, 75 when a name cannot be resolved.
"""

from __future__ import annotations

from duckdns import EXIT_KO, EXIT_TEMPFAIL, config, report, resolve, state

TYPE_CHECKING = False  # typing.TYPE_CHECKING: not loaded for a command that needs none of it
if TYPE_CHECKING:
    import argparse


def run(args: argparse.Namespace, path: str) -> int:
    cfg = config.load(path)
    saved = state.load(state.path_for(cfg.path))
    address = None
    if args.resolver:
        try:
            address = config.parse_ip_port(args.resolver)
        except ValueError as exc:
            raise config.ConfigError(f"--resolver {exc}") from None
    res = resolve.resolver(address)
    expected4, expected6 = saved.ipv4.value, saved.ipv6.value
    expected = [ip for ip in (expected4, expected6) if ip]
    if not expected:
        report.warning("no address recorded yet: run 'duckdns update' first")
    worst = 0
    for name in [f"{d}.duckdns.org" for d in cfg.domains] + args.names:
        try:
            found = resolve.addresses(res, name)
        except resolve.Failed as exc:
            found, why = None, str(exc)
        else:
            why = f"it does not exist (NXDOMAIN at {resolve.where(res)})"
        if found is None or not found.exists:
            report.out(f"{name}: cannot resolve ({why})")
            worst = max(worst, EXIT_TEMPFAIL)
            continue
        chain = " -> ".join([found.name, *found.chain])
        ok = bool(expected) and all(ip in found.values for ip in expected)
        verdict = (
            "OK" if ok else f"MISMATCH: DuckDNS recorded {expected4 or '-'} / {expected6 or '-'}"
        )
        report.out(f"{chain}: {', '.join(found.values) or 'no address'}: {verdict}")
        if not ok:
            worst = max(worst, EXIT_KO)
    return worst
