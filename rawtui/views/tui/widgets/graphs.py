"""The live graphs (textual-plotext): sequence/time, congestion window, advertised windows, throughput.

Each graph is a one-line legend (colours match the plot) over a plotext plot. The app redraws them on a
timer (at most a few times a second), never per packet, from the decimated series of the view model.
plotext is imported when a graph is first built, not with this module: the first frame of the app does
not wait for it (empty graphs are drawn once that frame is painted, see :meth:`GraphsPanel.show_empty`).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.app import ComposeResult, RenderResult
from textual.color import Color
from textual.containers import Grid, Vertical
from textual.widget import Widget
from textual.widgets import Static

from rawtui.events import RouterAction
from rawtui.views.kernel import kernel_text
from rawtui.views.tui.model import Series, ViewModel

if TYPE_CHECKING:
    from textual_plotext.plot import Plot

# plotext's colour names map to odd palette entries ("yellow" is 12): use RGB, and the same in legends.
PALETTE: dict[str, tuple[int, int, int]] = {
    "data": (0, 200, 255),
    "ack": (90, 220, 90),
    "window": (255, 200, 0),
    "ooo": (230, 90, 230),
    "resent": (255, 60, 60),
    "router": (255, 128, 0),
    "ours": (0, 200, 255),
    "peer": (255, 160, 40),
    "rwnd": (90, 220, 90),
    "peer_rwnd": (230, 90, 230),
    "rate": (0, 200, 255),
    "server": (255, 255, 255),
    "ssthresh": (255, 60, 60),
    "cursor": (255, 255, 0),
}


def window_of(xs: list[float], ys: list[float], window: tuple[float, float] | None) -> tuple[list[float], list[float]]:
    """The points of a time-ordered series inside ``window`` (all of them when None)."""
    if window is None:
        return xs, ys
    a, b = bisect_left(xs, window[0]), bisect_right(xs, window[1])
    return xs[a:b], ys[a:b]


def rgb(key: str) -> str:
    """The Rich style for a palette entry."""
    r, g, b = PALETTE[key]
    return f"bold #{r:02x}{g:02x}{b:02x}"


def _scale(values: list[float]) -> tuple[float, str]:
    top = max(values) if values else 0.0
    if top >= 1e6:
        return 1e6, "MB"
    if top >= 1e3:
        return 1e3, "kB"
    return 1.0, "B"


def downsample(xs: list[float], ys: list[float], bins: int) -> tuple[list[float], list[float]]:
    """At most ~2 points per x bin (the lowest and the highest, in time order), so that plotext draws a
    few hundred points whatever the series holds, and spikes survive."""
    n = len(xs)
    if n <= 2 * bins or bins <= 0:
        return xs, ys
    x0, span = xs[0], (xs[-1] - xs[0]) or 1.0
    out_x: list[float] = []
    out_y: list[float] = []
    cur = -1
    lo_i = hi_i = 0
    for i in range(n):
        b = int((xs[i] - x0) / span * (bins - 1))
        if b != cur:
            if cur >= 0:
                for j in sorted({lo_i, hi_i}):
                    out_x.append(xs[j])
                    out_y.append(ys[j])
            cur, lo_i, hi_i = b, i, i
        else:
            y = ys[i]
            if y < ys[lo_i]:
                lo_i = i
            if y > ys[hi_i]:
                hi_i = i
    for j in sorted({lo_i, hi_i}):
        out_x.append(xs[j])
        out_y.append(ys[j])
    return out_x, out_y


def legend(title: str, *keys: tuple[str, str]) -> Text:
    t = Text.assemble((title, "bold"), no_wrap=True, overflow="ellipsis", end="")
    for label, style in keys:
        t.append(" ")
        t.append(label, style)
    return t


def _plotext_theme(app_theme: str, variables: dict[str, str]) -> str:
    """The plotext theme matching the app's theme (its surface and foreground), registered once: what
    textual-plotext's ``PlotextPlot`` does with its ``theme="auto"``."""
    from plotext._dict import themes  # type: ignore[import-untyped]
    from textual_plotext.plot import _rgbify_theme, _sequence

    name = f"textual-auto-{app_theme}"
    if name not in themes:
        surface = Color.parse(variables.get("surface", "black")).rgb
        foreground = Color.parse(variables.get("foreground", "white")).rgb
        themes[name] = _rgbify_theme(surface, surface, foreground, "default", list(_sequence))
    return name


class Graph(Widget):
    """One plot; subclasses say what to draw from the model (:meth:`plot`) and what the legend says.

    :meth:`draw` only marks the plot stale; the plotext calls run when the widget renders, with its
    current size (the series are downsampled to the plot's width), so the picture depends on the data
    and the size only. The plot is textual-plotext's ``Plot`` (plotext's figure), made at the first build.
    Until there is data or :meth:`show_empty` is called the graph is blank (no plotext at all).
    """

    DEFAULT_CSS = "Graph { width: 1fr; height: 1fr; }"

    name_ = ""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self._plot: Plot | None = None
        self._model: ViewModel | None = None
        self._show_empty = False
        self._stale = True
        self._plotted_size: tuple[int, int] = (0, 0)
        self._rendered: tuple[tuple[int, int, str], RenderResult] | None = None
        self._legend: Text | None = None
        self.cursor: float | None = None  # the timeline cursor's time: a vertical line
        self.window: tuple[float, float] | None = None  # zoomed around the cursor: the x range shown
        self._yrange = (float("inf"), float("-inf"))  # of the values plotted (the cursor line spans it)

    def set_cursor(self, cursor: float | None, window: tuple[float, float] | None) -> None:
        """Draw a vertical line at time ``cursor`` and show only ``window`` (None: no line, everything).
        The plot is built again only when the line moves to another column (a step rarely moves it)."""
        before = (self._cursor_column(self.cursor, self.window), self.window)
        self.cursor = cursor
        if (self._cursor_column(cursor, window), window) != before:
            self.window = window
            self._stale = True
            self.refresh()

    def _cursor_column(self, cursor: float | None, window: tuple[float, float] | None) -> int | None:
        if cursor is None:
            return None
        lo, hi = window or (0.0, max(cursor, self._model.t_last if self._model is not None else cursor))
        return int((cursor - lo) / ((hi - lo) or 1.0) * self.bins)

    def on_mount(self) -> None:
        self.app.theme_changed_signal.subscribe(self, lambda theme: self.refresh())
        self.set_legend(legend(self.name_, ("waiting for data", "dim")))

    @property
    def plt(self) -> Plot:
        """The plotext figure to draw with (``self.plt.plot(...)``, as ``plotext.plot(...)``)."""
        if self._plot is None:
            from textual_plotext.plot import Plot

            self._plot = Plot()
        return self._plot

    def draw(self, model: ViewModel) -> None:
        self._model = model
        self._stale = True
        self.set_legend(self.legend(model))
        self.refresh()

    def show_empty(self) -> None:
        """Draw the empty axes while there is no data (the app calls it once its first frame is painted)."""
        if not self._show_empty:
            self._show_empty = True
            self.refresh()

    def render(self) -> RenderResult:
        """The plot, built again only when the data (:meth:`draw`), the size or the theme changed: a
        plotext build and its ANSI parse cost milliseconds."""
        size = (self.size.width, self.size.height)
        key = (*size, self.app.theme)
        if self._stale or size != self._plotted_size:
            if self._model is None or not self.plot(self._model):
                if not self._show_empty:
                    return ""  # no data, and the first frame is not painted yet: no plotext so far
                self._empty()
            elif self.cursor is not None:
                if self.window is not None:
                    self.plt.xlim(*self.window)
                # a line of "│" drawn last, over the data (plotext's vline goes under it)
                lo, hi = self._yrange if self._yrange[0] <= self._yrange[1] else (0.0, 1.0)
                self.plt.plot([self.cursor, self.cursor], [lo, hi], marker="│", color=PALETTE["cursor"])
            self._stale = False
            self._plotted_size = size
            self._rendered = None
        if self._rendered is None or self._rendered[0] != key:
            self._rendered = (key, self._build())
        return self._rendered[1]

    def _build(self) -> Text:
        """The figure at the widget's size in the app's theme, as Rich text (textual-plotext's render)."""
        plt = self.plt
        w, h = self.size.width, self.size.height
        plt.plotsize(w, h)
        plt._set_size(w, h)  # as textual-plotext does: plotsize alone does not always resize
        plt.theme(_plotext_theme(self.app.theme, self.app.theme_variables))
        return Text.from_ansi(plt.build())

    def legend(self, model: ViewModel) -> Text:
        raise NotImplementedError

    def plot(self, model: ViewModel) -> bool:
        """Make the plotext calls; False when there is nothing to plot yet."""
        raise NotImplementedError

    def _start(self) -> None:
        self._yrange = (float("inf"), float("-inf"))
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.xfrequency(4)
        plt.yfrequency(3)

    def _empty(self) -> None:
        self._start()
        self.plt.xlim(0, 1)
        self.plt.ylim(0, 1)

    def set_legend(self, text: Text) -> None:
        """Show ``text`` in the legend line above the plot (no layout: the line's size never changes)."""
        if self.parent is not None and text != self._legend:
            self._legend = text
            for s in self.parent.query(Static):
                s.update(text, layout=False)

    @property
    def bins(self) -> int:
        """Horizontal resolution in braille dots."""
        return max(20, 2 * self.size.width)

    def _line(self, s: Series, scale: float, color: str) -> None:
        if s.xs:
            xs, ys = downsample(*window_of(s.xs, s.ys, self.window), self.bins)
            self._span([y / scale for y in ys])
            self.plt.plot(xs, [y / scale for y in ys], marker="braille", color=PALETTE[color])

    def _dots(self, s: Series, scale: float, color: str, marker: str = "braille") -> None:
        if s.xs:
            xs, ys = downsample(*window_of(s.xs, s.ys, self.window), self.bins)
            self._span([y / scale for y in ys])
            self.plt.scatter(xs, [y / scale for y in ys], marker=marker, color=PALETTE[color])

    def _span(self, ys: list[float]) -> None:
        if ys:
            lo, hi = self._yrange
            self._yrange = (min(lo, min(ys)), max(hi, max(ys)))


class SequenceGraph(Graph):
    """tcptrace style: data received (top of each segment), our ACK line, ACK + our window; marks."""

    name_ = "Sequence / time"

    def legend(self, model: ViewModel) -> Text:
        g = model.graphs
        if not g.seq_data.xs and not g.seq_ack.xs:
            return legend(self.name_, ("waiting for data", "dim"))
        _, unit = _scale(g.seq_window.ys or g.seq_data.ys)
        keys = [("data", rgb("data")), ("ACK", rgb("ack")), ("win", rgb("window")), ("ooo", rgb("ooo")),
                ("x resent", rgb("resent"))]
        if g.seq_router_drop.xs:  # the lab's router reports what it dropped
            keys.append(("o router drop", rgb("router")))
        return legend(f"Seq ({unit})", *keys)

    def plot(self, model: ViewModel) -> bool:
        g = model.graphs
        if not g.seq_data.xs and not g.seq_ack.xs:
            return False
        scale, _ = _scale(g.seq_window.ys or g.seq_data.ys)
        self._start()
        self._line(g.seq_window, scale, "window")
        self._line(g.seq_ack, scale, "ack")
        self._dots(g.seq_data, scale, "data")
        self._dots(g.seq_ooo, scale, "ooo")
        self._dots(g.seq_retrans, scale, "resent", "x")
        self._dots(g.seq_router_drop, scale, "router", "o")
        return True


class CwndGraph(Graph):
    """Our cwnd and the receiver-side estimate of the server's flight; in the lab, the server's TRUE cwnd
    and ssthresh (its TCP_INFO) over them."""

    name_ = "Congestion window"

    @staticmethod
    def _values(model: ViewModel) -> list[float]:
        g = model.graphs
        return g.cwnd.ys + g.peer_flight.ys + g.server_cwnd.ys + g.server_ssthresh.ys

    def legend(self, model: ViewModel) -> Text:
        g = model.graphs
        if not g.cwnd.xs and not g.server_cwnd.xs:
            return legend(self.name_, ("waiting for data", "dim"))
        _, unit = _scale(self._values(model))
        if not g.server_cwnd.xs:
            return legend(f"cwnd ({unit})", ("ours", rgb("ours")), ("server flight est.", rgb("peer")))
        # the lab: the server's true cwnd (white) and ssthresh (red) over the estimate
        keys = [("ours", rgb("ours")), ("est.", rgb("peer")), ("true", rgb("server"))]
        if g.server_ssthresh.xs:
            keys.append(("ssthresh", rgb("ssthresh")))
        return legend(f"cwnd ({unit})", *keys)

    def plot(self, model: ViewModel) -> bool:
        g = model.graphs
        if not g.cwnd.xs and not g.server_cwnd.xs:
            return False
        values = self._values(model)
        scale, _ = _scale(values)
        self._start()
        self._line(g.peer_flight, scale, "peer")
        self._line(g.cwnd, scale, "ours")
        self._line(g.server_ssthresh, scale, "ssthresh")
        self._line(g.server_cwnd, scale, "server")
        self.plt.ylim(0, max(values) / scale * 1.05 or 1)
        return True


class WindowGraph(Graph):
    name_ = "Advertised windows"

    def legend(self, model: ViewModel) -> Text:
        g = model.graphs
        if not g.rwnd.xs:
            return legend(self.name_, ("waiting for data", "dim"))
        _, unit = _scale(g.rwnd.ys + g.peer_rwnd.ys)
        return legend(f"rwnd advertised ({unit})", ("ours", rgb("rwnd")), ("server's", rgb("peer_rwnd")))

    def plot(self, model: ViewModel) -> bool:
        g = model.graphs
        if not g.rwnd.xs:
            return False
        scale, _ = _scale(g.rwnd.ys + g.peer_rwnd.ys)
        self._start()
        self._line(g.rwnd, scale, "rwnd")
        self._line(g.peer_rwnd, scale, "peer_rwnd")
        self.plt.ylim(0, max(g.rwnd.ys + g.peer_rwnd.ys) / scale * 1.1)
        return True


class ThroughputGraph(Graph):
    name_ = "Throughput"

    def legend(self, model: ViewModel) -> Text:
        s = model.graphs.throughput
        if not s.xs:
            return legend(self.name_, ("waiting for data", "dim"))
        return legend("Throughput (Mbit/s)", (f" now {s.now_bps * 8 / 1e6:.2f}", rgb("rate")))

    def plot(self, model: ViewModel) -> bool:
        s = model.graphs.throughput
        if not s.xs:
            return False
        self._start()
        xs, ys = downsample(*window_of(s.xs, [y * 8 / 1e6 for y in s.ys], self.window), self.bins)
        if not xs:
            return False
        self._span([0.0, *ys])
        self.plt.plot(xs, ys, marker="braille", color=PALETTE["rate"], fillx=True)
        self.plt.ylim(0, max(ys) * 1.1 or 1)
        return True


class LabLine(Static):
    """The teaching lab (rawtui demo), above the graphs: the scenario and what to look for, the knobs now
    in force (server -> client), and the keys that change them; once the router dropped data on its way
    to us, a third line tells the last drop. Hidden outside the lab."""

    DEFAULT_CSS = """
    LabLine { height: auto; max-height: 3; padding: 0 1; display: none; text-wrap: nowrap; text-overflow: ellipsis; }
    LabLine.-on { display: block; }
    """

    def __init__(self, model: ViewModel, **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.model = model

    def sync(self) -> None:
        self.set_class(self.model.lab_active, "-on")
        self.update(lab_text(self.model))


def knobs_text(knobs: dict[str, float]) -> str:
    """``loss 2%  delay 40 ms  rate 20 Mbit/s  reorder 0%  dup 0%  corrupt 0%`` (+ a blackout running)."""
    delay = f"delay {knobs.get('delay_ms', 0):g} ms"
    if knobs.get("jitter_ms"):
        delay += f" ±{knobs['jitter_ms']:g}"
    rate = knobs.get("rate_bps", 0)
    parts = [
        f"loss {knobs.get('loss', 0):g}%", delay, f"rate {rate / 1e6:g} Mbit/s" if rate else "rate unlimited",
        f"reorder {knobs.get('reorder', 0):g}%", f"dup {knobs.get('dup', 0):g}%",
        f"corrupt {knobs.get('corrupt', 0):g}%",
    ]
    if knobs.get("blackout_s"):
        parts.append(f"BLACKOUT {knobs['blackout_s']:.1f} s")
    return "  ".join(parts)


def lab_text(model: ViewModel) -> Text:
    """Line 1 (when a scenario was announced): its title and what to look for. Line 2: the knobs in force
    from the server to the client, and what changed last. Line 3 (once the router dropped data on its
    way to us): the last drop, and how many so far."""
    t = Text(no_wrap=True, overflow="ellipsis", end="")
    if model.kernel_info and model.lab_knobs is None and model.lab_scenario is None:  # rawtui watch
        for i, role in enumerate(sorted(model.kernel_info, reverse=True)):  # the sender's (the true cwnd) first
            t.append("\n" if i else "")
            t.append(" KERNEL ", "bold black on cyan")
            t.append(f" {kernel_text(model.kernel_info[role])}")
        return t
    sc = model.lab_scenario
    if sc is not None:
        t.append(" LAB ", "bold black on yellow")
        t.append(f" {sc.title or sc.name}", "bold")
        if sc.look_for:
            t.append(f" · look for: {sc.look_for}", "italic")
        t.append("\n")
    k = model.lab_knobs
    if k is None:
        t.append("lab knobs: not known yet", "dim")
    else:
        cc = model.server_info.cc if model.server_info is not None else ""
        if cc:  # first: the strip is cut at the panel's width
            t.append(f"server cc {cc}  ", "bold cyan")
        t.append(knobs_text(k.down), "bold red" if k.down.get("blackout_s") else "bold")
        if k.note:
            t.append(f"  ({k.note})", "dim")
    drop = model.router_drop
    if drop is not None:
        t.append("\n")
        t.append(router_drop_text(drop), rgb("router"))
        t.append(f"  · {model.router_drops} data frame{'s' if model.router_drops != 1 else ''} dropped so far",
                 "dim")
    return t


def router_drop_text(ev: RouterAction) -> str:
    """``router dropped seq 1234567 at t=2.31 s (loss 1 %)``: what the lab's router did to a data frame."""
    what = {"blackout": "dropped (blackout)", "queue-drop": "dropped (queue full)"}.get(ev.action, "dropped")
    seq = f"absolute seq {ev.seq}" if ev.absolute else f"seq {ev.seq}"
    return f"router {what} {seq} at t={ev.t:.2f} s" + (f" ({ev.note})" if ev.note else "")


class GraphsPanel(Vertical):
    """The lab line (in the lab only) over four graphs in a 2x2 grid."""

    DEFAULT_CSS = """
    GraphsPanel > Grid { grid-size: 2 2; grid-gutter: 0 2; height: 1fr; }
    GraphsPanel Grid > Vertical { height: 1fr; }
    GraphsPanel Static.legend { height: 1; padding: 0 1; text-wrap: nowrap; text-overflow: ellipsis; }
    GraphsPanel Graph { height: 1fr; }
    """

    def __init__(self, model: ViewModel, **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.model = model
        self.border_title = "Graphs"

    def compose(self) -> ComposeResult:
        yield LabLine(self.model, id="lab")
        with Grid(id="graphs-grid"):
            for graph in (SequenceGraph(id="graph-seq"), CwndGraph(id="graph-cwnd"),
                          WindowGraph(id="graph-windows"), ThroughputGraph(id="graph-throughput")):
                with Vertical():
                    yield Static(classes="legend")
                    yield graph

    def draw(self) -> None:
        for graph in self.query(Graph):
            graph.draw(self.model)
        self.mark_time()

    def set_cursor(self, cursor: float | None, window: tuple[float, float] | None = None) -> None:
        """The timeline cursor: a vertical line at its time on each graph, zoomed to ``window`` if given."""
        for graph in self.query(Graph):
            graph.set_cursor(cursor, window)
        if cursor is not None:
            zoom = f" · zoom {window[0]:.3f}-{window[1]:.3f} s" if window else ""
            self.border_subtitle = f"x: seconds since start · cursor at t={cursor:.4f} s{zoom}"
        else:
            self.border_subtitle = ""
            self.mark_time()

    def show_empty(self) -> None:
        """Let the graphs without data draw their empty axes."""
        for graph in self.query(Graph):
            graph.show_empty()

    def mark_time(self) -> None:
        """Say up to which event time the graphs show the data."""
        subtitle = f"x: seconds since start · drawn at t={self.model.t_last:.2f} s"
        if subtitle != self.border_subtitle:
            self.border_subtitle = subtitle
