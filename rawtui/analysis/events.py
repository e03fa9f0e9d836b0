"""Events made by reading the event stream itself (:mod:`rawtui.analysis`), not by the wire."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rawtui.stack.events import Event


@dataclass(slots=True)
class Explain(Event):
    """What just happened, in one plain-language line with the numbers that prove it (the live view's
    ticker, ``--explain`` in headless mode, ``explain`` lines in the NDJSON log)."""

    type: ClassVar[str] = "explain"
    topic: str  # what kind of moment: "first-loss", "fast-retransmit", "rto", "zero-window", ...
    text: str
    seq: int | None = None  # the sequence number it is about (relative), when there is one
