"""The comparison screen of ``rawtui demo --compare``: the same link, one run per congestion control.

Three graphs overlay the runs, one colour each: the server's true cwnd (TCP_INFO), its smoothed RTT (a
queue that fills shows here), and the throughput rawtui received; below them a table of each run's
numbers (goodput, retransmissions, mean RTT and queueing delay, time to finish) and the scenario's verdict.
It reads only :class:`~rawtui.analysis.compare.CompareCurves`: built from a live comparison, a recording or
synthetic series alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Vertical
from textual.widget import Widget
from textual.widgets import DataTable, Footer, Static

from rawtui.analysis.compare import CompareCurves
from rawtui.lab.compare import HEADERS, table_rows
from rawtui.views.tui.widgets.graphs import _plotext_theme as plotext_theme

__all__ = ["CC_COLOURS", "CompareApp", "CompareGraph", "moving_mean"]

CC_COLOURS: dict[str, tuple[int, int, int]] = {
    "reno": (255, 170, 0),
    "cubic": (0, 200, 255),
    "bbr": (120, 230, 90),
}
_OTHER = (220, 120, 255)


def colour(cc: str) -> tuple[int, int, int]:
    return CC_COLOURS.get(cc, _OTHER)


def style(cc: str) -> str:
    r, g, b = colour(cc)
    return f"bold #{r:02x}{g:02x}{b:02x}"


def moving_mean(values: Sequence[float], n: int) -> list[float]:
    """Each value replaced by the mean of it and the ``n - 1`` before it (fewer at the start)."""
    if n <= 1:
        return list(values)
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= n:
            total -= values[i - n]
        out.append(total / min(i + 1, n))
    return out


class CompareGraph(Widget):
    """One quantity (a :data:`~rawtui.analysis.series.COLUMNS` name) of every run, overlaid."""

    DEFAULT_CSS = "CompareGraph { width: 1fr; height: 1fr; }"

    def __init__(self, runs: Sequence[CompareCurves], column: str, scale: float, smooth: int = 1, **kw: Any) -> None:
        super().__init__(**kw)
        self.runs = runs
        self.column = column
        self.scale = scale
        self.smooth = smooth  # plot the mean of this many steps (throughput per 0.1 s is bursty)
        self._plot: Any = None
        self._rendered: tuple[tuple[int, int, str], Text] | None = None

    def render(self) -> Text:
        key = (self.size.width, self.size.height, self.app.theme)
        if self._rendered is None or self._rendered[0] != key:
            self._rendered = (key, self._build())
        return self._rendered[1]

    def _build(self) -> Text:
        from textual_plotext.plot import Plot

        if self._plot is None:
            self._plot = Plot()
        plt = self._plot
        plt.clear_data()
        plt.clear_figure()
        plt.xfrequency(5)
        plt.yfrequency(4)
        top = right = 0.0
        for run in self.runs:
            xs, ys = run.column(self.column)
            if xs:
                ys = moving_mean([y / self.scale for y in ys], self.smooth)
                top = max(top, max(ys))
                right = max(right, xs[-1])
                plt.plot(xs, ys, marker="braille", color=colour(run.cc))
        plt.xlim(0, right or 1)
        plt.ylim(0, top * 1.05 or 1)
        w, h = self.size.width, self.size.height
        plt.plotsize(w, h)
        plt._set_size(w, h)
        plt.theme(plotext_theme(self.app.theme, self.app.theme_variables))
        return Text.from_ansi(plt.build())


class CompareApp(App[int]):
    """The runs side by side; ``q`` leaves."""

    TITLE = "rawtui demo --compare"
    CSS = """
    Screen { layout: vertical; }
    #title { height: auto; padding: 0 1; }
    #graphs { grid-size: 3 1; grid-gutter: 0 2; height: 1fr; min-height: 8; }
    #graphs > Vertical { height: 1fr; }
    .legend { height: 1; padding: 0 1; text-wrap: nowrap; text-overflow: ellipsis; }
    DataTable { height: auto; max-height: 8; }
    #verdict { height: auto; max-height: 6; padding: 0 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("q", "quit", "Quit")]

    def __init__(self, runs: Sequence[CompareCurves], title: str = "", verdict: Sequence[str] = ()) -> None:
        super().__init__()
        self.runs = list(runs)
        self.link = title
        self.verdict = list(verdict)

    def compose(self) -> ComposeResult:
        head = Text(no_wrap=False, end="")
        head.append(" COMPARE ", "bold black on yellow")
        head.append(" ")
        for i, run in enumerate(self.runs):
            if i:
                head.append(" vs ", "dim")
            head.append(f"━ {run.cc}", style(run.cc))
        head.append(" · same link, same router seed")
        if self.link:
            head.append(f"\n{self.link}", "dim")
        yield Static(head, id="title")
        with Grid(id="graphs"):
            for name, column, scale, smooth in (("server cwnd, KB (TCP_INFO)", "server_cwnd", 1024.0, 1),
                                                ("server RTT, ms (TCP_INFO)", "server_rtt_ms", 1.0, 1),
                                                ("throughput, Mbit/s (0.5 s mean)", "throughput_bps", 1e6 / 8, 5)):
                with Vertical():
                    yield Static(Text(name, "bold", no_wrap=True, overflow="ellipsis", end=""), classes="legend")
                    yield CompareGraph(self.runs, column, scale, smooth)
        table: DataTable[Text] = DataTable(cursor_type="none", zebra_stripes=True)
        yield table
        yield Static(self._verdict(), id="verdict")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns(*HEADERS)
        for run, cells in zip(self.runs, table_rows(r.metrics for r in self.runs), strict=True):
            table.add_row(Text(cells[0], style(run.cc)), *(Text(c, justify="right") for c in cells[1:]))

    def _verdict(self) -> Text:
        t = Text(end="")
        for i, line in enumerate(self.verdict):
            if i:
                t.append("\n")
            word = line.strip().split(" ", 1)[0]
            t.append(line, "bold green" if word == "PASS" else "bold red" if word == "FAIL" else "")
        return t
