"""Notifications through Apprise: a message in the admin's own channel, once per event.

``notify = URL[, URL…]``: each URL is a secret like the token (duckdns.config registers it and
its parts for redaction; a message names it by rank and service, ``config.NotifyURL.shown``).
What is told comes from the records the run leaves: the published address changed since the
last message, or duckdns.backoff raised an alert (``down``, a daily ``reminder``, ``up``). One
message to every URL, told once one URL took it, else tried again no sooner than
:data:`RETRY` seconds; the first run with ``notify`` set tells nothing of the past.

Contained, not trusted: each URL is sent from a child process (duckdns.contain) with its own
data and CPU limits, killed at :data:`PER_URL` seconds (all of them: :data:`BUDGET`):
Apprise's plugins read whole answers into memory and, interrupted, wait again in their own
``finally:`` blocks, so no bound inside this process would hold. The attempt is saved before
the child starts, so a send the unit's limits kill still waits :data:`RETRY`. Each URL's
plugin is called directly: ``Apprise.notify()`` would start an asyncio loop, whose AF_UNIX
self-pipe the unit's ``RestrictAddressFamilies=`` refuses. Apprise's log lines are never
shown (they quote URL parts re-encoded, where redaction cannot know them): the child draws
a verdict from them (an HTTP status, an SMTP reply code, an errno, a timeout) and only that
is said. Apprise is imported only to send or to check."""

from __future__ import annotations

import os
import time
from collections import namedtuple

from duckdns import backoff, config, heartbeat, report
from duckdns.records import Result

TYPE_CHECKING = False  # typing.TYPE_CHECKING: typing costs a timer run a tenth of its CPU
if TYPE_CHECKING:
    import logging
    from collections.abc import Callable
    from types import ModuleType
    from typing import NamedTuple

    from duckdns.contain import Outcome
    from duckdns.records import Outbox, State

PER_URL = 10.0
BUDGET = 20.0
RETRY = heartbeat.RETRY
INSTALL = "install it with 'sudo apt install apprise'"
KO_FIX = (
    "To fix: check the token and the names on duckdns.org, then run "
    "'sudo dpkg-reconfigure duckdns' to enter them again."
)

# kind: "address", "down", "reminder", "up" or "test" (Apprise's type: failure, success, info).
if TYPE_CHECKING:

    class Message(NamedTuple):
        kind: str
        title: str
        body: str

else:
    Message = namedtuple("Message", "kind title body")
_TYPES: dict[str, str] = {Result.DOWN: "failure", Result.REMINDER: "failure", Result.UP: "success"}


def due(cfg: config.Config, state: State, now: int) -> tuple[Message | None, Outbox]:
    """What to tell after this run (None: nothing), and the outbox to keep: once the
    message is taken, or at once without one (the first run with ``notify`` takes the
    published addresses as told: the past is not news)."""
    box = state.outbox.copy()
    if box.tried is not None and 0 <= now - box.tried < RETRY:
        return None, box  # the last one failed a moment ago
    streak, new = state.streak, (state.ipv4.value, state.ipv6.value)
    if box.at is None:  # notify was just set
        box.at, (box.ipv4, box.ipv6) = now, new
        if streak.alert in ("", Result.UP):
            box.alert = streak.alert_at
    parts = []
    if streak.alert and streak.alert_at is not None and streak.alert_at != box.alert:
        parts.append(_alert(cfg, state, now))
    if new != (box.ipv4, box.ipv6):
        parts.append(_address(cfg, (box.ipv4, box.ipv6), new))
    if not parts:
        return None, box
    told = box.copy()
    told.at, told.tried, (told.ipv4, told.ipv6) = now, None, new
    if streak.alert:
        told.alert = streak.alert_at
    body = "\n\n".join(part.body for part in parts)
    return Message(parts[0].kind, parts[0].title, body), told


def deliver(cfg: config.Config, message: Message, first: bool) -> bool:
    """Send ``message`` to every URL; True if one took it. ``first``: the first attempt at
    this news (a failure is then a warning; at ``-v`` after that)."""
    whys = send(cfg, message)
    say = report.warning if first else report.info  # once per event, then at -v
    again = "; tried again in 15 min at the earliest" if all(whys) else ""
    for target, why in zip(cfg.notify, whys, strict=True):
        if why:
            say(f"notification ({message.kind}) to {target.shown} failed: {why}{again}")
        else:
            report.debug(f"notification ({message.kind}) to {target.shown} taken")
    return not all(whys)


# -- the texts ---------------------------------------------------------------------------


def _clock(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M %Z", time.localtime(at))


def _fqdns(cfg: config.Config) -> str:
    return ", ".join(f"{name}.duckdns.org" for name in cfg.domains)


def _address(cfg: config.Config, old: tuple[str, str], new: tuple[str, str]) -> Message:
    lines = [f"{_fqdns(cfg)} now {'point' if len(cfg.domains) > 1 else 'points'} at:"]
    for record, was, now in zip(("IPv4 (A record)", "IPv6 (AAAA record)"), old, new, strict=True):
        if was != now:
            lines.append(f"{record}: {now or 'none'} (was {was or 'none'})")
        elif now:
            lines.append(f"{record}: {now} (unchanged)")
    title = f"DuckDNS: new address for {', '.join(cfg.domains)}"
    return Message("address", title, "\n".join(lines))


def _alert(cfg: config.Config, state: State, now: int) -> Message:
    streak, names = state.streak, ", ".join(cfg.domains)
    kind, text = streak.alert, streak.alert_text or "-"
    if kind == Result.UP:
        return Message(Result.UP, f"DuckDNS updates work again: {names}", f"{_fqdns(cfg)}: {text}.")
    since, failures = streak.since, streak.failures
    if kind == Result.DOWN:
        title = f"DuckDNS updates failing: {names}"
        head = f"Updates of {_fqdns(cfg)} have failed since {_clock(since or now)}: {text}"
    else:
        title = f"DuckDNS updates still failing: {names}"
        head = (
            f"Updates of {_fqdns(cfg)} have failed for {backoff.duration(now - (since or now))} "
            f"({failures} failed attempts in a row): {text}"
        )
    lines = [head]
    if streak.kind == Result.KO:
        lines.append(KO_FIX)
    after = streak.next_attempt
    if after is not None and after > now:
        lines.append(f"Next attempt: {_clock(after)} (in {backoff.duration(after - now)}).")
    lines.append(
        f"DuckDNS still holds IPv4 {state.ipv4.value or 'none'}, IPv6 {state.ipv6.value or 'none'}."
    )
    return Message(kind, title, "\n".join(lines))


def test_message(cfg: config.Config) -> Message:
    """``duckdns notify --test``'s message."""
    return Message(
        "test",
        f"DuckDNS test: {', '.join(cfg.domains)}",
        f"A test from duckdns on {os.uname().nodename} for {_fqdns(cfg)}: notifications "
        "reach you here (address changes, failing updates, and their end).",
    )


# -- Apprise --------------------------------------------------------------------------------


def send(cfg: config.Config, message: Message) -> list[str]:
    """Send ``message`` to each URL of ``cfg.notify`` in turn; per URL, why it was not
    taken ('' = taken). Never raises; bounded by PER_URL per URL and BUDGET in all."""
    try:
        apprise = _apprise()  # here, once: each child inherits it
    except ImportError:
        return [f"Apprise is not installed: {INSTALL}"] * len(cfg.notify)
    from functools import partial

    from duckdns import contain

    start, whys = time.monotonic(), []
    for target in cfg.notify:
        left = BUDGET - (time.monotonic() - start)
        if left < 1:
            whys.append(f"not tried: the {BUDGET:.0f} s bound of notifications ran out")
            continue
        seconds = min(PER_URL, left)
        outcome = contain.run(partial(_send_one, apprise, target, message), seconds)
        whys.append(_why(outcome, seconds))
    return whys


def _send_one(apprise: ModuleType, target: config.NotifyURL, message: Message) -> bytes:
    """In the child (duckdns.contain): send, and say how it went as a verdict of
    :data:`_WHYS`'s words, never a byte of what Apprise or the other side said."""
    import logging

    from apprise.conversion import convert_between

    handler, heard = _listen()
    _silence(handler).setLevel(logging.DEBUG)  # setLevel, not .level: it clears the cache
    plugin = apprise.Apprise.instantiate(target.url, asset=_asset(apprise))
    if plugin is None:
        return b"unusable"
    # The body in the plugin's format (an e-mail is HTML): what Apprise.notify() would do,
    # which a direct call to the plugin leaves to the caller in Apprise 1.2.
    convert: Callable[[str, str, str], str] = convert_between  # untyped in Apprise 1.2
    body = convert(apprise.NotifyFormat.TEXT, plugin.notify_format, message.body)
    taken = plugin.notify(
        body=body,
        title=message.title,
        notify_type=_TYPES.get(message.kind, "info"),
        body_format=plugin.notify_format,
    )
    return b"ok" if taken else heard[0] if heard else b"refused"


# What a child's verdict means: only the numbers and facts :func:`_listen` draws from
# Apprise's log lines, never the lines.
_WHYS = {
    "ok": "",
    "http": "not accepted (HTTP status {})",
    "smtp": "not accepted (SMTP reply {})",
    "errno": "{}",
    "timeout": "no answer in time (the service's own timeout)",
    "memory": "stopped: it needed more than {mib} MiB (an answer too large?)",
    "refused": "not accepted (the service gave no reason)",
    "unusable": "Apprise cannot use this URL (run 'duckdns check')",
    "crash": "Apprise failed (an error in its plugin)",
}


def _why(outcome: Outcome, seconds: float) -> str:
    """The text of a child's :class:`duckdns.contain.Outcome`."""
    from duckdns import contain

    if outcome.ended == "killed":
        return f"no answer within {seconds:.0f} s (stopped)"
    if outcome.ended == "cpu":
        return "stopped: it used its CPU time"
    if outcome.ended == "signal":
        return "stopped by the system (out of memory?)"
    word, _, number = outcome.verdict.decode().partition(" ")
    if outcome.ended == "unstarted":
        return f"could not be sent: {os.strerror(int(number))}"
    if word not in _WHYS:
        return "Apprise failed (no verdict)"
    if word == "errno":
        return os.strerror(int(number)).lower()
    return _WHYS[word].format(number, mib=contain.MEMORY // contain.MIB)


# Each needs what a URL part cannot hold as Apprise and requests show it: a space (they show
# URLs %- or +-encoded), or the end of the line ("…error=404.").
_PATTERNS = (
    ("http", r"\berror=([1-5][0-9][0-9])\.?\Z"),  # Apprise 1.2's "…, error=NNN."
    ("smtp", r"\. Reason: \(([2-5][0-9][0-9]),"),  # smtplib's (code, text) tuple
    ("errno", r"\[Errno ([0-9]{1,3})\] "),  # OSError's own form
    ("timeout", r"\btimed out\b()"),  # socket's and requests' "Read timed out."
)


def _listen() -> tuple[logging.Handler, list[bytes]]:
    """A logging handler for the child, and the verdict it draws: of Apprise's log lines it
    keeps only what is safe to show, the first of: an HTTP status, an SMTP reply code, an
    errno, a timeout. Made on use: ``logging`` is imported only in the child."""
    import logging
    import re

    patterns = [(word, re.compile(pattern)) for word, pattern in _PATTERNS]
    heard: list[bytes] = []

    class Handler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if heard or record.levelno < logging.DEBUG:
                return
            try:
                text = record.getMessage()[:4096]
            except Exception:  # a malformed log call in a plugin
                return
            for word, pattern in patterns:
                found = pattern.search(text)
                if found:
                    heard.append(f"{word} {found.group(1)}".strip().encode())
                    return

    return Handler(), heard


def _apprise() -> ModuleType:
    import apprise

    return apprise


def available() -> bool:
    """Whether Apprise is installed (it is only recommended by the package)."""
    from importlib.util import find_spec

    return find_spec("apprise") is not None


def _asset(apprise: ModuleType) -> object:
    """Apprise's settings: no persistent storage (1.9's memory mode; 1.2 has none)."""
    try:
        return apprise.AppriseAsset(storage_mode="memory")
    except AttributeError:  # 1.2 refuses keys it does not know
        return apprise.AppriseAsset()


def check(cfg: config.Config) -> str:
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
    _silence()
    for target in cfg.notify:
        try:
            plugin = apprise.Apprise.instantiate(target.url, asset=_asset(apprise))
        except Exception:  # a URL its parser trips on: refused all the same
            plugin = None
        if plugin is None:
            raise config.ConfigError(
                f"{target.where}: {target.shown} is refused by Apprise (an unknown "
                "service, or a part it cannot read): check it against the service's "
                "page on https://github.com/caronc/apprise/wiki"
            )
    return f"notify {count}"


def _silence(handler: logging.Handler | None = None) -> logging.Logger:
    """Apprise's logger, its lines to ``handler`` only: none reaches any output, at any
    verbosity (they show URL parts, re-encoded beyond what redaction can recognise: ``+``
    as ``%2B``, spaces as ``+``). By default a NullHandler: Python's last-resort handler
    would print its warnings to stderr."""
    import logging

    logger = logging.getLogger("apprise")
    logger.handlers[:] = [handler or logging.NullHandler()]
    logger.propagate = False
    return logger
