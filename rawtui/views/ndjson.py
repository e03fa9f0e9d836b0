"""Listeners on the event stream: the NDJSON log (``--events``) and the fan-out of one stream to many."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import IO

from rawtui.errors import OutputError
from rawtui.events import Event, to_dict


class NdjsonWriter:
    """One JSON object per line: ``{"t": seconds, "type": ..., fields...}``.

    Written through a 64 KiB buffer (a fast download emits tens of thousands of events a second), flushed
    whenever an event is at least ``FLUSH_EVERY`` seconds (of the events' own clock) after the last flush,
    so a reader following the log (``tail -f``, a script polling it) sees it at most that late."""

    FLUSH_EVERY = 0.25

    def __init__(self, path: str) -> None:
        try:
            self._f: IO[str] = open(path, "w", buffering=1 << 16, encoding="utf-8")  # noqa: SIM115 - closed in close()
        except OSError as e:
            raise OutputError(f"cannot write the event log {path}: {e.strerror}") from None
        self._dumps = json.JSONEncoder(separators=(",", ":")).encode
        self._flushed = float("-inf")  # the event time of the last flush

    def __call__(self, ev: Event) -> None:
        self._f.write(self._dumps(to_dict(ev)))
        self._f.write("\n")
        if ev.t - self._flushed >= self.FLUSH_EVERY:
            self._f.flush()
            self._flushed = ev.t

    def close(self) -> None:
        self._f.close()



def fanout(*listeners: Callable[[Event], None] | None) -> Callable[[Event], None]:
    active = [x for x in listeners if x is not None]
    if len(active) == 1:
        return active[0]

    def emit(ev: Event) -> None:
        for listener in active:
            listener(ev)

    return emit
