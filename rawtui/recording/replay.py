"""The pacing every replay shares: a recording's events at their recorded times, scaled by a speed."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

from rawtui.errors import EXIT_INTERRUPTED, EXIT_OK, UsageError
from rawtui.events import (
    Done,
    Emit,
    Error,
    Event,
    Info,
)

# Never sleep longer than this in one go, so that ``stop`` is honoured promptly.
_MAX_SLEEP_S = 0.1
# A paced replay waits through a silence of the recording up to IDLE_MAX_S; a longer one (an idle
# connection, a capture clock that jumped by years) is shortened to IDLE_KEEP_S, and an Info event says so.
IDLE_MAX_S = 5.0
IDLE_KEEP_S = 1.0


def describe_gap(seconds: float) -> str:
    """``"12 s"``, ``"7 min"``, ``"3 h"``, ``"4 days"``, ``"3 years"``: an idle time for a message."""
    for unit, size in (("years", 365.25 * 86400), ("days", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if seconds >= 2 * size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


class Replay:
    """Emits the events of a recording at their recorded times, scaled by ``speed``.

    ``speed`` 1.0 is real time, 10 is ten times faster; 0 or None emits as fast as possible. A paced
    replay does not wait through a silence longer than ``IDLE_MAX_S`` of the recording: it waits
    ``IDLE_KEEP_S`` instead and emits an Info event ("idle 3 years compressed to 1 s").
    ``hold`` keeps the source running after the last event until ``stop`` is set, like a live session
    still in progress: use it to look at a recording that ends mid-download.

    Return value of :meth:`run`: the exit code of the final ``error`` event, 0 after a ``done`` event
    or a recording that simply ends, and 130 (interrupted) when ``stop`` was set before the end.
    ``exhausted`` is set once the last event was emitted. ``speed`` may be changed while it runs (the
    live view's ``<`` / ``>``): the pace changes from that moment on, the recording's time stays continuous.
    """

    def __init__(self, *, speed: float | None = 1.0, hold: bool = False) -> None:
        if speed is not None and speed < 0:
            raise UsageError(f"replay speed must be positive, not {speed}")
        self.speed = speed or 0.0
        self.hold = hold
        self.exhausted = threading.Event()
        self.emitted = 0

    def events(self) -> Iterator[Event]:
        """The recorded events, in order. Subclasses implement this."""
        raise NotImplementedError

    def run(self, emit: Emit, stop: threading.Event) -> int:
        code = EXIT_OK
        # the pace: recording time ``anchor_t`` was due at wall time ``anchor_wall``, at ``speed``
        anchor_wall, anchor_t, speed = time.monotonic(), None, self.speed
        last_t: float | None = None  # the latest recording time emitted (paced replays)
        for ev in self.events():
            if stop.is_set():
                return EXIT_INTERRUPTED
            if self.speed > 0:
                if anchor_t is None or speed <= 0:
                    anchor_wall, anchor_t, speed = time.monotonic(), ev.t, self.speed
                elif last_t is not None and ev.t - last_t > IDLE_MAX_S:  # idle, or the clock jumped: not waited
                    anchor_t += ev.t - last_t - IDLE_KEEP_S
                    emit(Info(ev.t, f"idle {describe_gap(ev.t - last_t)} compressed to {IDLE_KEEP_S:g} s"))
                last_t = ev.t if last_t is None else max(last_t, ev.t)
                while True:
                    now = time.monotonic()
                    if self.speed != speed:  # changed while running: re-anchor where the replay is now
                        at = anchor_t + (now - anchor_wall) * speed if speed > 0 else ev.t
                        anchor_wall, anchor_t, speed = now, min(at, ev.t), self.speed
                        if speed <= 0:
                            break
                    delay = anchor_wall + (ev.t - anchor_t) / speed - now
                    if delay <= 0:
                        break
                    if stop.wait(min(delay, _MAX_SLEEP_S)):
                        return EXIT_INTERRUPTED
            emit(ev)
            self.emitted += 1
            if isinstance(ev, Error):
                code = ev.exit_code
            elif isinstance(ev, Done):
                code = EXIT_OK
        self.exhausted.set()
        if self.hold:
            while not stop.wait(1.0):  # held open until the view stops it (a timeout all the same)
                pass
        return code
