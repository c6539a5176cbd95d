"""Heartbeat pings to a monitor: Healthchecks.io or an Uptime Kuma push monitor.

Config: ``healthcheck = URL``. The URL is a secret (anyone who has it can ping), so it is
registered with duckdns.report's redaction on load, never stored in state.json and never
put in a message: a failed ping is described by its kind only.

The two services, as their documentation has them:

* Healthchecks.io (https://healthchecks.io/docs/signaling_failures/): a request to the
  ping URL signals success, the URL with ``/fail`` appended signals failure; the answer
  to a good ping is HTTP 200 with ``OK`` (https://healthchecks.io/docs/http_api/).
* Uptime Kuma push monitors: the push URL ``…/api/push/KEY`` with ``?status=up|down&msg=…``
  (the query the push monitor's page shows: ``?status=up&msg=OK&ping=``). A URL whose
  path holds ``/api/push/`` is taken as Uptime Kuma's; any other as Healthchecks.io's.

Pings are sent on transitions, not per run: "down" at the first failure of a streak, "up"
on recovery (and on the first run), and then "up" at most once a day while all is well,
so that a day without a ping means a dead Pi. A ping that fails is reported at ``-v``
only, never fails the update, and is tried again no sooner than :data:`RETRY` seconds.
``requests`` is imported only when a ping is really sent.
"""

from __future__ import annotations

from duckdns import report
from duckdns.records import Result

DAILY = 86400
RETRY = 15 * 60
TIMEOUT = 10.0

TYPE_CHECKING = False  # typing.TYPE_CHECKING: typing costs a timer run a tenth of its CPU
if TYPE_CHECKING:
    from duckdns.config import Config
    from duckdns.records import Ping


def url_for(url: str, status: str, message: str) -> str:
    """The URL that tells the monitor ``status`` ("up" or "down")."""
    base = url.split("?", 1)[0]
    if "/api/push/" in base:  # Uptime Kuma
        from urllib.parse import quote

        return f"{base}?status={status}&msg={quote(message[:200], safe='')}&ping="
    return base.rstrip("/") + ("/fail" if status == Result.DOWN else "")


def due(ping: Ping, healthy: bool, now: float) -> str | None:
    """What to tell the monitor after this run ("up" or "down"), or None."""
    want = Result.UP if healthy else Result.DOWN
    if ping.tried is not None and ping.tried != ping.at and 0 <= now - ping.tried < RETRY:
        return None  # the last ping failed a moment ago
    if ping.state != want:
        return want
    if healthy and not (ping.at is not None and 0 <= now - ping.at < DAILY):
        return want
    return None


def ping(cfg: Config, status: str, message: str) -> bool:
    """Send one ping; never raises. True if the monitor took it.

    Bounded by TIMEOUT s of wall-clock time in all (duckdns.deadline), however slowly the
    monitor answers; only the status line is read, never the body.
    """
    from duckdns import api, deadline, failure

    url = url_for(cfg.healthcheck, status, report.redact(message))
    try:
        with deadline.bound(TIMEOUT) as mine, api.make_session(cfg) as session:
            # stream: the body is never read, the answer closed unread
            resp = session.get(url, timeout=(TIMEOUT, TIMEOUT), allow_redirects=False, stream=True)
            code = resp.status_code
            resp.close()
    except deadline.Expired as exc:
        if exc is not mine:
            raise
        return _failed(status, f"no answer within {TIMEOUT:.0f} s")
    except Exception as exc:  # any failure: said at -v, never the update's failure
        return _failed(status, failure.explain(exc, "the monitor", TIMEOUT, cfg.ca_bundle)[0])
    if not 200 <= code < 300:
        return _failed(status, f"the monitor answered HTTP {code}")
    report.debug(f"heartbeat ping ({status}) sent")
    return True


def _failed(status: str, why: str) -> bool:
    """Say at -v that the ping failed: ``why`` holds the failure's kind, never the URL."""
    report.info(f"heartbeat ping ({status}) failed: {why}")
    return False
