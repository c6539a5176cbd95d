"""Decide whether this run must talk to DuckDNS, and with which addresses.

The address DuckDNS records always comes from an authenticated source: DuckDNS's
own view of the TLS connection (``ip=`` empty) for ``ipv4 = auto``, the kernel for
``ipv6 = auto``, or the admin's literal. The DNS probe (duckdns.probe) is cheap and
unauthenticated, so it only decides *whether* to update, never *what* to set, and
any doubt means "update": the result is never worse than the curl recipe, which
updated every run.
"""

from __future__ import annotations

import time

from duckdns import localaddr


class Plan:
    """The outcome: ``reason`` is empty when nothing needs sending."""

    __slots__ = ("reason", "ipv4_param", "ipv6_param", "observed_ipv4")

    def __init__(self) -> None:
        self.reason = ""
        self.ipv4_param: str | None = None  # value of ip= (None: omitted)
        self.ipv6_param: str | None = None  # value of ipv6= (None: omitted)
        self.observed_ipv4: str | None = None  # the probe's answer, if asked


class NoAddress(Exception):
    """``ipv6 = auto`` but the host has no usable global IPv6 address."""


def parameters(cfg, plan: Plan) -> None:
    """Fill in the ip=/ipv6= values the config asks for."""
    if cfg.ipv4 == "auto":
        plan.ipv4_param = ""  # DuckDNS takes the address the request comes from
    elif cfg.ipv4 != "off":
        plan.ipv4_param = cfg.ipv4
    if cfg.ipv6 == "auto":
        addr = localaddr.global_ipv6()
        if addr is None:
            if cfg.ipv4 == "off":
                raise NoAddress("ipv6 = auto, but this host has no global IPv6 address")
        else:
            plan.ipv6_param = addr
    elif cfg.ipv6 != "off":
        plan.ipv6_param = cfg.ipv6


def plan_update(cfg, state: dict, force: bool, probe_ipv4=None, now: float | None = None) -> Plan:
    """Work out the request and whether it is needed.

    ``probe_ipv4`` is a callable returning this network's public IPv4 address or
    None (it is only called for ``ipv4 = auto`` with a probe configured).
    """
    now = time.time() if now is None else now
    plan = Plan()
    parameters(cfg, plan)
    if cfg.ipv4 == "auto" and cfg.probe and probe_ipv4 is not None:
        plan.observed_ipv4 = probe_ipv4(cfg.probe)
    last_success = state.get("last_success")
    if force:
        plan.reason = "forced"
    elif not cfg.probe:
        plan.reason = "probe off: updating every run"
    elif not last_success or state.get("last_result") not in ("updated", "nochange"):
        plan.reason = "no successful update recorded yet"
    elif state.get("fingerprint") != cfg.fingerprint():
        plan.reason = "configuration changed"
    elif now - last_success >= cfg.refresh or now < last_success:
        plan.reason = "periodic refresh"
    elif (plan.ipv6_param or "") != state.get("sent_ipv6", ""):
        plan.reason = "IPv6 address changed"
    elif cfg.ipv4 == "auto":
        if not state.get("probe_trusted", True):
            plan.reason = "address probe not trusted"
        elif plan.observed_ipv4 is None:
            plan.reason = "address probe failed"
        elif plan.observed_ipv4 != state.get("ipv4"):
            plan.reason = "IPv4 address changed"
    return plan
