"""Replay a recording as an :class:`~rawtui.source.EventSource`, so views run without root.

A replay is a source of timed events: :class:`Replay` owns the pacing (real speed scaled by ``speed``,
or as fast as possible), the ``stop`` handling and the exit code; a subclass only says where the events
come from (:meth:`Replay.events`). :class:`NdjsonReplay` reads our own ``--events`` log; a ``PcapReplay``
(a capture of any TCP download, analysed receiver-side by the stack's own code) will be a second subclass.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import EXIT_INTERRUPTED, EXIT_OK, UsageError
from .source import Emit
from .stack.events import Done, Error, Event, from_dict

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
            stop.wait()
        return code


class NdjsonReplay(Replay):
    """Replays an NDJSON events file: one :func:`~rawtui.stack.events.to_dict` object per line.

    Blank lines and lines starting with ``#`` are skipped. A line that is not a known event raises
    :class:`~rawtui.errors.UsageError` naming the file and line.
    """

    def __init__(self, path: str | Path, *, speed: float | None = 1.0, hold: bool = False) -> None:
        super().__init__(speed=speed, hold=hold)
        self.path = Path(path)
        if not self.path.is_file():
            raise UsageError(f"cannot read the recording {self.path}: no such file")

    def events(self) -> Iterator[Event]:
        with self.path.open(encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                try:
                    yield decode(json.loads(line))
                except (ValueError, KeyError, TypeError) as exc:
                    raise UsageError(f"{self.path}:{lineno}: not a rawtui event ({exc})") from exc


def decode(d: dict[str, Any]) -> Event:
    """One NDJSON record back to its event (:func:`~rawtui.stack.events.from_dict`)."""
    return from_dict(d)


def load_events(path: str | Path) -> list[Event]:
    """All events of an NDJSON recording (for tests and tools)."""
    return list(NdjsonReplay(path, speed=0).events())


def open_replay(path: str | Path, *, speed: float | None = 1.0, hold: bool = False) -> Replay:
    """The replay source for a recording, chosen by its file name (``.ndjson`` / ``.jsonl`` / ``.json``)."""
    p = Path(path)
    if p.suffix.lower() in (".pcap", ".pcapng", ".cap"):
        raise UsageError(f"{p}: replaying a pcap capture is not supported yet; replay an NDJSON events file")
    return NdjsonReplay(p, speed=speed, hold=hold)
