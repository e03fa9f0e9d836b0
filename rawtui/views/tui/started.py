"""A source already running in a thread of its own, so that the download never waits for the live view.

Importing Textual and building the app take a few hundred milliseconds of the UI thread. The app starts
its source this way as soon as it runs (before composing its widgets), and a caller that knows the app
will follow (the CLI) can start it even earlier, before importing Textual: it wraps its source in a
:class:`StartedSource`, then builds :class:`~rawtui.views.tui.app.RawtuiApp` with it. The app adopts its queue
and its stop event, so nothing is copied and ``q`` or a signal stop the source the same way.

This module imports nothing from Textual.
"""

from __future__ import annotations

import threading
import time
from collections import deque

from rawtui.errors import EXIT_INTERRUPTED
from rawtui.events import Emit, Event, EventSource


class StartedSource:
    """Runs ``source`` now, in its own thread, emitting into ``queue`` until it returns or ``stop_event``
    is set; an :class:`EventSource` whose :meth:`run` waits for it and returns its result.

    The wait is bounded once a stop is asked: a source still running ``stop_wait`` seconds later is left to
    its (daemon) thread and :meth:`run` returns 130, so that whoever waits (the app's worker, and the
    interpreter's exit, which joins that worker) is never held by it.
    """

    STOP_WAIT = 3.0

    def __init__(
        self, source: EventSource, *, queue: deque[Event] | None = None, stop_event: threading.Event | None = None,
        name: str = "rawtui-source",
    ) -> None:
        self.source = source
        self.title: str = getattr(source, "title", "")
        self.queue: deque[Event] = queue if queue is not None else deque()
        self.stop_event = stop_event if stop_event is not None else threading.Event()
        self._code = 0
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._code = self.source.run(self.queue.append, self.stop_event)  # deque.append is atomic
        except BaseException as exc:  # noqa: BLE001 - handed to whoever waits in run()
            self._error = exc

    @property
    def finished(self) -> bool:
        return not self._thread.is_alive()

    def run(self, emit: Emit, stop: threading.Event) -> int:
        """Wait for the source: its return value, or what it raised.

        The app passes ``queue.append`` and ``stop_event`` (it adopted them): then this only waits. Any
        other caller gets the events handed on to its ``emit`` and its ``stop`` forwarded.
        """
        adopted = getattr(emit, "__self__", None) is self.queue
        q = self.queue
        stopped_at: float | None = None
        while True:
            alive = self._thread.is_alive()
            if not adopted:
                while q:
                    emit(q.popleft())
            if not alive:
                break
            if stop.is_set() or self.stop_event.is_set():
                self.stop_event.set()
                now = time.monotonic()
                if stopped_at is None:
                    stopped_at = now
                elif now - stopped_at > self.STOP_WAIT:
                    return EXIT_INTERRUPTED
            self._thread.join(0.1 if adopted else 0.02)
        if self._error is not None:
            raise self._error
        return self._code
