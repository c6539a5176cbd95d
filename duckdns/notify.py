"""Notifications through Apprise: a message in the admin's own channel, once per event.

Config: ``notify = URL[, URL…]``, Apprise URLs (``mailto://``, ``ntfys://``, ``tgram://``,
``json://``, …). Each is a secret like the token: duckdns.config registers it and its parts
for redaction before anything is refused; it is never stored in state.json nor put in a
message (a URL is named by its rank and service, ``config.NotifyURL.shown``).

What is told comes from what the run already recorded, the same facts the journal's lines
and the heartbeat come from:

* the published address changed: the state's ``ipv4``/``ipv6`` (what DuckDNS's answers
  show) differ from the ones the last notification told;
* the alerts duckdns.backoff raises: ``down`` at the first failed attempt of a streak,
  ``reminder`` at most once a day while it lasts, ``up`` on recovery (``alert``,
  ``alert_at``, ``alert_text``: what ``status --alert`` prints).

What is due at the end of a run goes out as one message to every URL, and counts as told
once one URL took it (a URL that did not is said in the journal). When none took it, it is
tried again no sooner than :data:`RETRY` seconds later (the heartbeat's retry). The first
run with ``notify`` set tells nothing of the past: it takes the published addresses as told
(a failure streak in progress is still told).

Bounded: each URL at most :data:`PER_URL` seconds, all of them :data:`BUDGET` seconds
(duckdns.deadline). Each URL's Apprise plugin is called directly, in this thread:
``Apprise.notify()`` would start an asyncio loop (its self-pipe is an AF_UNIX socket pair,
which the unit's ``RestrictAddressFamilies=`` refuses) and, for several URLs, worker
threads that an alarm cannot stop. No persistent storage: Apprise 1.9 is asked for its
memory mode, 1.2 has none, so nothing is written under ``$HOME``. Apprise's log lines go
through duckdns.report at ``-vv``, redacted. Apprise is imported only to send or to check.
"""

from __future__ import annotations

import time
from collections import namedtuple

from duckdns import backoff, config, heartbeat, report

PER_URL = 10.0
BUDGET = 20.0
RETRY = heartbeat.RETRY
INSTALL = "install it with 'sudo apt install apprise'"
KO_FIX = (
    "To fix: check the token and the names on duckdns.org, then run "
    "'sudo dpkg-reconfigure duckdns' to enter them again."
)

FIELDS = {
    "notified_at": None,  # Unix time a notification was last taken (or notify first seen)
    "notified_ipv4": "",  # the addresses it told
    "notified_ipv6": "",
    "notified_alert": None,  # the alert_at of the last alert told
    "notify_tried": None,  # Unix time of the last notification sent, taken or not
}

# kind: "address", "down", "reminder", "up" or "test" (Apprise's type: failure, success, info).
Message = namedtuple("Message", "kind title body")
_TYPES = {"down": "failure", "reminder": "failure", "up": "success"}


def due(cfg, state: dict, now: int) -> tuple[Message | None, dict]:
    """What to tell after this run (None: nothing) and the fields to record once it is
    taken; fields without a message (the first run with ``notify``) are recorded at once."""
    tried, told = state["notify_tried"], state["notified_at"]
    if tried is not None and tried != told and 0 <= now - tried < RETRY:
        return None, {}  # the last one failed a moment ago
    base = {key: state[key] for key in FIELDS if key != "notify_tried"}
    if told is None:  # notify was just set: the past is not news
        base.update(notified_at=now, notified_ipv4=state["ipv4"], notified_ipv6=state["ipv6"])
        if state["alert"] in ("", "up"):
            base["notified_alert"] = state["alert_at"]
    parts = []
    alert = state["alert"]
    if alert and state["alert_at"] is not None and state["alert_at"] != base["notified_alert"]:
        parts.append(_alert(cfg, state, now))
    new = (state["ipv4"], state["ipv6"])
    if new != (base["notified_ipv4"], base["notified_ipv6"]):
        parts.append(_address(cfg, (base["notified_ipv4"], base["notified_ipv6"]), new))
    fields = dict(base, notified_ipv4=new[0], notified_ipv6=new[1])
    fields["notified_alert"] = state["alert_at"] if alert else base["notified_alert"]
    if not parts:
        return None, (base if told is None else {})
    body = "\n\n".join(part.body for part in parts)
    return Message(parts[0].kind, parts[0].title, body), fields


def deliver(cfg, state: dict, message: Message, fields: dict, now: int) -> dict:
    """Send ``message`` to every URL; the fields to record: ``fields`` if one took it."""
    whys = send(cfg, message)
    first = state["notify_tried"] is None or state["notify_tried"] == state["notified_at"]
    say = report.warning if first else report.info  # once per event, then at -v
    again = "; tried again in 15 min at the earliest" if all(whys) else ""
    for target, why in zip(cfg.notify, whys, strict=True):
        if why:
            say(f"notification ({message.kind}) to {target.shown} failed: {why}{again}")
        else:
            report.debug(f"notification ({message.kind}) to {target.shown} taken")
    if all(whys):
        return {"notify_tried": now}
    return {**fields, "notified_at": now, "notify_tried": now}


# -- the texts ---------------------------------------------------------------------------


def _clock(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M %Z", time.localtime(at))


def _fqdns(cfg) -> str:
    return ", ".join(f"{name}.duckdns.org" for name in cfg.domains)


def _address(cfg, old: tuple[str, str], new: tuple[str, str]) -> Message:
    lines = [f"{_fqdns(cfg)} now {'point' if len(cfg.domains) > 1 else 'points'} at:"]
    for record, was, now in zip(("IPv4 (A record)", "IPv6 (AAAA record)"), old, new, strict=True):
        if was == now:
            if now:
                lines.append(f"{record}: {now} (unchanged)")
        else:
            lines.append(f"{record}: {now or 'none'} (was {was or 'none'})")
    title = f"DuckDNS: new address for {', '.join(cfg.domains)}"
    return Message("address", title, "\n".join(lines))


def _alert(cfg, state: dict, now: int) -> Message:
    kind, text, names = state["alert"], state["alert_text"] or "-", ", ".join(cfg.domains)
    if kind == "up":
        return Message("up", f"DuckDNS updates work again: {names}", f"{_fqdns(cfg)}: {text}.")
    since, failures = state["failing_since"], state["failures"]
    if kind == "down":
        title = f"DuckDNS updates failing: {names}"
        head = f"Updates of {_fqdns(cfg)} have failed since {_clock(since or now)}: {text}"
    else:
        title = f"DuckDNS updates still failing: {names}"
        head = (
            f"Updates of {_fqdns(cfg)} have failed for {backoff.duration(now - (since or now))} "
            f"({failures} failed attempts in a row): {text}"
        )
    lines = [head]
    if state["failure_kind"] == "ko":
        lines.append(KO_FIX)
    after = state["next_attempt"]
    if after is not None and after > now:
        lines.append(f"Next attempt: {_clock(after)} (in {backoff.duration(after - now)}).")
    lines.append(
        f"DuckDNS still holds IPv4 {state['ipv4'] or 'none'}, IPv6 {state['ipv6'] or 'none'}."
    )
    return Message(kind, title, "\n".join(lines))


def test_message(cfg) -> Message:
    """``duckdns notify --test``'s message."""
    import os

    names = ", ".join(cfg.domains)
    return Message(
        "test",
        f"DuckDNS test: {names}",
        f"A test from duckdns on {os.uname().nodename} for {_fqdns(cfg)}: notifications "
        "reach you here (address changes, failing updates, and their end).",
    )


# -- Apprise --------------------------------------------------------------------------------


def send(cfg, message: Message) -> list[str]:
    """Send ``message`` to each URL of ``cfg.notify`` in turn; per URL, why it was not
    taken ('' = taken). Never raises; bounded by PER_URL per URL and BUDGET in all."""
    try:
        apprise = _apprise()
    except ImportError:
        return [f"Apprise is not installed: {INSTALL}"] * len(cfg.notify)
    start, whys = time.monotonic(), []
    with _logs():
        for target in cfg.notify:
            left = BUDGET - (time.monotonic() - start)
            if left < 1:
                whys.append(f"not tried: the {BUDGET:.0f} s bound of notifications ran out")
            else:
                whys.append(_send_one(apprise, target, message, min(PER_URL, left)))
    return whys


def _send_one(apprise, target, message: Message, seconds: float) -> str:
    from duckdns import deadline

    try:
        with deadline.bound(seconds) as mine:
            plugin = apprise.Apprise.instantiate(target.url, asset=_asset(apprise))
            if plugin is None:
                return "Apprise cannot use this URL (run 'duckdns check')"
            text_format = apprise.NotifyFormat.TEXT
            body = _convert(text_format, plugin.notify_format, message.body)
            taken = plugin.notify(
                body=body,
                title=message.title,
                notify_type=_TYPES.get(message.kind, "info"),
                body_format=plugin.notify_format,
            )
    except deadline.Expired as exc:
        if exc is not mine:
            raise
        return f"no answer within {seconds:.0f} s"
    except Exception as exc:  # a plugin's bug: never the update's failure
        return f"Apprise failed ({type(exc).__name__}; its reason at -vv)"
    return "" if taken else "not accepted (Apprise's reason at -vv)"


def _convert(source: str, target: str, body: str) -> str:
    """``body`` in the plugin's format (an e-mail is HTML): what Apprise.notify() would
    do, which a direct call to the plugin leaves to the caller in Apprise 1.2."""
    from apprise.conversion import convert_between

    return convert_between(source, target, body)


def _apprise():
    import apprise

    return apprise


def available() -> bool:
    """Whether Apprise is installed (it is only recommended by the package)."""
    from importlib.util import find_spec

    return find_spec("apprise") is not None


def _asset(apprise):
    """Apprise's settings: no persistent storage (1.9's memory mode; 1.2 has none)."""
    try:
        return apprise.AppriseAsset(storage_mode="memory")
    except AttributeError:  # 1.2 refuses keys it does not know
        return apprise.AppriseAsset()


class _logs:  # noqa: N801 - used as ``with _logs():``, like a function
    """Apprise's log lines through duckdns.report (redacted, at -vv), never to stderr.

    A class, not contextlib.contextmanager: this module loads on every timer run (its
    state fields), and contextlib would be imported for nothing there."""

    def __enter__(self) -> None:
        import logging

        class ToReport(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                try:
                    report.debug(f"apprise: {record.getMessage()}")
                except Exception:  # noqa: S110 - a malformed log call in a plugin: dropped
                    pass

        self.logger = logger = logging.getLogger("apprise")
        self.handler, self.saved = ToReport(), (logger.propagate, logger.level)
        logger.addHandler(self.handler)
        logger.propagate = False
        logger.setLevel(logging.DEBUG if report.threshold >= report.DEBUG else logging.WARNING)

    def __exit__(self, *exc) -> None:
        self.logger.removeHandler(self.handler)
        self.logger.propagate, self.logger.level = self.saved


def check(cfg) -> str:
    """``duckdns check``'s word on notify ('' when unset). Raises ConfigError for a URL
    Apprise cannot use (naming its line, never the URL); says when Apprise is missing."""
    if not cfg.notify:
        return ""
    count = f"{len(cfg.notify)} URL{'s' if len(cfg.notify) > 1 else ''}"
    try:
        apprise = _apprise()
    except ImportError:
        report.warning(
            f"{cfg.path}: notify is set, but Apprise is not installed: {INSTALL}; updates "
            "run without it, and no notification is sent"
        )
        return f"notify {count}, Apprise missing"
    with _logs():
        for target in cfg.notify:
            if apprise.Apprise.instantiate(target.url, asset=_asset(apprise)) is None:
                raise config.ConfigError(
                    f"{target.where}: {target.shown} is refused by Apprise (an unknown "
                    "service, or a part it cannot read): check it against the service's "
                    "page on https://github.com/caronc/apprise/wiki"
                )
    return f"notify {count}"
