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
)

# Never sleep longer than this in one go, so that ``stop`` is honoured promptly.
_MAX_SLEEP_S = 0.1


class Replay:
    """Emits the events of a recording at their recorded times, scaled by ``speed``.

    ``speed`` 1.0 is real time, 10 is ten times faster; 0 or None emits as fast as possible.
    ``hold`` keeps the source running after the last event until ``stop`` is set, like a live session
    still in progress: use it to look at a recording that ends mid-download.

    Return value of :meth:`run`: the exit code of the final ``error`` event, 0 after a ``done`` event
    or a recording that simply ends, and 130 (interrupted) when ``stop`` was set before the end.
    ``exhausted`` is set once the last event was emitted.
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
        start = time.monotonic()
        first_t: float | None = None
        for ev in self.events():
            if stop.is_set():
                return EXIT_INTERRUPTED
            if self.speed > 0:
                if first_t is None:
                    first_t = ev.t
                due = start + (ev.t - first_t) / self.speed
                while (delay := due - time.monotonic()) > 0:
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
