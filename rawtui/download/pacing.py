"""How fast the application reads from the TCP machine's receive buffer: ``--limit-rate`` and ``--stall``.

rawtui limits its download rate the way flow control meant it: not by dropping anything, but by reading
slowly. What the application has not read stays in the receive buffer, so the window rawtui advertises
closes and the server must slow down to the rate the reader takes bytes away. :class:`ReadPacer` is that
reader's clock, sans-IO like the stack (the caller passes the time):

* a token bucket at ``rate`` bytes per second: the application may read ``allowance()`` bytes now. It
  reads in quanta of at least :data:`MIN_QUANTUM` bytes (four full segments), so each read opens the
  window by a useful amount: receiver-side silly-window avoidance, the window never creeps open a few
  bytes at a time;
* the ``--stall BYTES:SECONDS`` teaching knob (read nothing for a while once BYTES of body arrived), the
  same mechanism with a rate of zero for a time.

:func:`buffer_for` sizes the receive buffer for a rate: a quarter of a second of it (at least
:data:`MIN_BUFFER`), so the server's first burst, before the window has closed, is small against the
whole transfer, and the window still covers the round trip of any ordinary path.
"""

from __future__ import annotations

import re

from rawtui.errors import UsageError

MIN_QUANTUM = 4 * 1460  # bytes: the smallest read while limited (four full-size segments)
QUANTUM_TIME = 0.01  # ...or this many seconds of the rate, when that is more
MAX_QUANTUM = 256 << 10
BURST_TIME = 0.05  # seconds of the rate the bucket holds at most (a late reader catches up this much)
BUFFER_TIME = 0.25  # seconds of the rate the receive buffer holds
MIN_BUFFER = 64 << 10
MIN_RATE = 1024.0  # bytes per second: below this a download of any size never ends

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
_RATE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([kmg]?)(?:i?b?)?\s*$", re.IGNORECASE)


def parse_rate(text: str, flag: str = "--limit-rate") -> float:
    """curl's rate syntax, in bytes per second: ``200K``, ``2M``, ``1G`` (powers of 1024), ``50000``."""
    m = _RATE.match(text)
    if not m:
        raise UsageError(f"bad {flag} {text!r}: use bytes per second, e.g. 200K, 2M or 50000")
    rate = float(m.group(1)) * _UNITS[m.group(2).lower()]
    if rate < MIN_RATE:
        raise UsageError(f"bad {flag} {text!r}: at least 1K (1024 bytes per second)")
    return rate


def human_rate(rate: float | None) -> str:
    """``2.0 MB/s`` (powers of 1024, like the rate syntax), ``unlimited`` for None."""
    if rate is None:
        return "unlimited"
    for unit, size in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if rate >= size:
            return f"{rate / size:.3g} {unit}/s"
    return f"{rate:.0f} B/s"


def buffer_for(rate: float | None, largest: int) -> int:
    """The receive buffer for ``rate`` bytes per second (``largest`` when unlimited)."""
    if rate is None:
        return largest
    return min(largest, max(MIN_BUFFER, int(rate * BUFFER_TIME)))


class ReadPacer:
    """How many bytes the application may take from the receive buffer at a given time."""

    def __init__(self, rate: float | None = None, stall_at: int | None = None, stall_for: float = 0.0) -> None:
        self.rate: float | None = None
        self.stall_at = stall_at
        self.stall_for = stall_for
        self.stall_until: float | None = None  # set once the stall began
        self._tokens = 0.0
        self._t: float | None = None
        self.quantum = 0
        self._burst = 0.0
        self.set_rate(rate)

    def set_rate(self, rate: float | None, now: float | None = None) -> None:
        """A new rate from now on (None: no limit); the bucket keeps what it holds, within the new burst."""
        if now is not None:
            self._fill(now)
        self.rate = rate
        if rate is None:
            return
        self.quantum = int(min(MAX_QUANTUM, max(MIN_QUANTUM, rate * QUANTUM_TIME)))
        self._burst = max(2.0 * self.quantum, rate * BURST_TIME)
        if self._t is None:
            self._tokens = float(self.quantum)  # the first read needs no wait
        self._tokens = min(self._tokens, self._burst)

    def stall_begins(self, now: float, body_bytes: int) -> bool:
        """True once, when ``--stall`` starts its pause (the caller says so)."""
        if self.stall_at is None or self.stall_until is not None or body_bytes < self.stall_at:
            return False
        self.stall_until = now + self.stall_for
        return True

    def allowance(self, now: float) -> int | None:
        """Bytes the application may read now: None for any amount, 0 for none (call :meth:`stall_begins`
        first when ``--stall`` is set)."""
        if self.stall_until is not None and now < self.stall_until:
            return 0
        if self.rate is None:
            return None
        self._fill(now)
        return int(self._tokens) if self._tokens >= self.quantum else 0

    def took(self, n: int) -> None:
        """The application read ``n`` bytes."""
        if self.rate is not None:
            self._tokens -= n

    def wait(self, now: float) -> float | None:
        """Seconds until the application may read again (None: it may read whenever data comes)."""
        if self.stall_until is not None and now < self.stall_until:
            return self.stall_until - now
        if self.rate is None:
            return None
        self._fill(now)
        missing = self.quantum - self._tokens
        return None if missing <= 0 else missing / self.rate

    def _fill(self, now: float) -> None:
        if self._t is not None and self.rate is not None and now > self._t:
            self._tokens = min(self._burst, self._tokens + (now - self._t) * self.rate)
        if self._t is None or now > self._t:
            self._t = now
