"""What drives a view: anything that runs in a worker thread and emits events.

The live session (:mod:`rawtui.session`) and the replay of a recording (:mod:`rawtui.replay`) both
implement :class:`EventSource`, so the headless view, the Textual app, the NDJSON log and the pcap writer
never know which one they are fed by.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol

from .stack.events import Event

Emit = Callable[[Event], None]


class EventSource(Protocol):
    """Runs to completion in the calling (worker) thread, emitting events as they happen.

    ``emit`` must not block for long: views queue what they get and draw on their own schedule.
    ``stop`` is set by the view to ask for a clean early end (close the connection, remove the firewall
    rule, keep no partial file). Returns the process exit code (0 on success); on failure the last event
    emitted is an ``Error`` with the same code.
    """

    def run(self, emit: Emit, stop: threading.Event) -> int: ...
