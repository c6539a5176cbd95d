"""A hard wall-clock bound on a block of code: whatever the other side does, it ends in time.

Socket timeouts bound each wait for a byte, not an exchange: a server that sends one byte
a second (headers, body or chunk sizes) or a TLS handshake that stalls keeps a request
alive for ever under ``requests``' ``timeout=``. :func:`bound` arms ``SIGALRM``
(``setitimer(ITIMER_REAL)``); its handler raises :class:`Expired`, derived from
BaseException so that no ``except Exception`` in urllib3 or requests can swallow it.
A blocking system call is interrupted by the signal and the exception surfaces there.

Bounds nest: an inner bound never outlives an outer one, and leaving a bound restores the
previous handler and what was left of the previous timer. The alarm can only be used in
the main thread; elsewhere :func:`bound` bounds nothing (the updater is single-threaded).

One thing the signal cannot cut short: glibc's getaddrinfo restarts its own waits after a
signal, so a host name lookup ends by the resolver's own timeouts (resolv.conf: 5 s times
2 attempts per name server by default); the bound fires the moment it returns.

No loop may run in the frame of a bound block: put it in a function the block calls. On
Python 3.13 (Debian 13's 3.13.5 included, measured) an exception that a signal handler
raises at a loop's jump back to its start escapes every ``try`` and ``with`` of that
loop's own frame (CPython bug gh-130279), so the block's own ``except Expired`` would never
see it. A function called from the block hands it to the block like any exception. The
handler ends the bound before it raises, so even an Expired that escapes leaves nothing
armed (tests/unit/test_hostile.py holds both).

Imported only on the path that sends a request (``signal`` is not free on the timer path).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager

TYPE_CHECKING = False  # for the annotations only, without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import FrameType

    Handler = Callable[[int, FrameType | None], object] | int | None


class Expired(BaseException):
    """The bound of :func:`bound` ran out."""


class _Bound:
    """A bound in force, and what the outermost one restores when it ends."""

    __slots__ = ("expiry", "expired", "previous", "old_delay", "old_interval", "start")

    def __init__(self, seconds: float, expired: Expired, previous: Handler) -> None:
        self.start = time.monotonic()
        self.expiry = self.start + seconds  # on the monotonic clock
        self.expired = expired
        self.previous = previous  # the SIGALRM handler before it
        self.old_delay, self.old_interval = signal.getitimer(signal.ITIMER_REAL)


# The bounds in force, outermost first.
_active: list[_Bound] = []


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    now = time.monotonic()
    for bound in _active:  # the outermost bound that ran out wins
        if now >= bound.expiry - 0.001:
            # Ended here, not only by its block: the alarm can also come just after the
            # block, as the with statement leaves it, where no clean-up would run.
            _leave(bound)
            raise bound.expired
    _arm()  # early (clock granularity): wait for the rest


def _arm() -> None:
    if _active:
        left = min(bound.expiry for bound in _active) - time.monotonic()
        signal.setitimer(signal.ITIMER_REAL, max(left, 0.001))


def _leave(bound: _Bound) -> None:
    """End ``bound`` and the bounds inside it, once: by its block or by the alarm, first wins.

    The alarm's handler changes ``_active`` only when it ends a bound itself, so an alarm in
    the middle of this leaves either nothing or all of it to do.
    """
    try:
        where = _active.index(bound)
    except ValueError:  # ended already
        return
    del _active[where:]
    if _active:
        _arm()
        return
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, bound.previous)
    if bound.old_delay:  # someone else's timer: what was left of it
        left = max(bound.old_delay - (time.monotonic() - bound.start), 0.001)
        signal.setitimer(signal.ITIMER_REAL, left, bound.old_interval)


@contextmanager
def bound(seconds: float) -> Iterator[Expired]:
    """Run the block for at most ``seconds``, then raise the :class:`Expired` it yields.

    Bounds nest, and an outer bound that runs out first raises its own :class:`Expired`
    through the inner block: a caller tells its own by identity::

        try:
            with deadline.bound(10) as mine:
                ...
        except deadline.Expired as exc:
            if exc is not mine:
                raise
    """
    if seconds <= 0:
        raise ValueError("a bound must be positive")
    mine = Expired(f"bound of {seconds:g} s ran out")
    try:
        previous = signal.signal(signal.SIGALRM, _on_alarm)
    except ValueError:  # not the main thread: no alarm to arm
        yield mine
        return
    this = _Bound(seconds, mine, previous)
    _active.append(this)
    try:
        _arm()
        yield mine
    finally:
        _leave(this)
