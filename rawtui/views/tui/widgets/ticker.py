"""The ticker under the graphs: what just happened, the newest explanation first (``explain`` events, made
by :mod:`rawtui.analysis.explain`), one line each with its event time."""

from __future__ import annotations

from rich.console import RenderableType
from rich.text import Text

from rawtui.views.tui.widgets.base import ModelPanel

#: a colour per kind of moment, so that a glance tells a loss from a window story
TOPIC_STYLES = {
    "loss": "bold red", "router": "red", "checksum": "red", "fast-retransmit": "bold yellow",
    "timeout": "bold magenta", "rto": "magenta", "tlp": "yellow", "spurious": "yellow", "dup-acks": "yellow",
    "recovery": "cyan", "reorder": "blue", "duplicate": "blue", "slow-start": "green", "zero-window": "bold cyan",
    "window-probe": "cyan", "window-update": "green", "syn-retry": "magenta", "path-mtu": "bold yellow",
}


class ExplainTicker(ModelPanel):
    """The latest explanations, newest on top, as many as the widget has lines (3 in the full layout)."""

    DEFAULT_CSS = """
    ExplainTicker { height: 1fr; padding: 0 1; background: $surface; }
    """

    def render(self) -> RenderableType:
        width = max(self.size.width - 2, 10)
        lines = max(self.size.height, 1)
        recent = list(self.model.explanations)[-lines:][::-1]
        if not recent:
            return Text("what just happened: each notable moment of the transfer is explained here", style="dim")
        out = Text()
        for i, ev in enumerate(recent):
            line = Text.assemble((f"{ev.t:7.3f}s ", "dim"), ("▸ " if i == 0 else "  ", TOPIC_STYLES.get(ev.topic, "")),
                                 (ev.text, "" if i == 0 else "dim"))
            line.truncate(width, overflow="ellipsis")
            if i:
                out.append("\n")
            out.append_text(line)
        return out
