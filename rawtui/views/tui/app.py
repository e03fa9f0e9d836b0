"""The Textual live view: one screen that shows the stack working while the download runs.

The event source (the live session or a replay) runs in a thread worker. Its ``emit`` only appends to a
deque; a timer in the UI thread drains the deque ~12 times a second into the :class:`ViewModel` and
redraws the panels whose data changed. The source never waits for the screen, and the screen never waits
for the source.

The UI thread and the stack share the GIL: every millisecond spent rendering is taken from the download.
So the redraw rate adapts to the traffic (:class:`RedrawPolicy`): while events flood in, each panel is
redrawn at its own low rate (counters and progress 4 Hz, the packet list 2 Hz, graphs 1 Hz, slower still
if the UI thread goes over its CPU budget); when the flow pauses or ends, everything catches up at once.
The source starts as soon as the app runs (before the widgets are composed): its own start-up (route,
firewall, ARP, handshake) mostly waits on the kernel and the network, and overlaps the app's. Events that
arrive before the first paint simply wait in the deque.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from rich.text import Text
from textual import events, on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid
from textual.widgets import Input
from textual.worker import Worker, WorkerState

from rawtui.errors import EXIT_INTERRUPTED, RawtuiError
from rawtui.events import Error, Event, EventSource
from rawtui.views.tui.describe import detail_tree
from rawtui.views.tui.messages import (
    EventsApplied,
    FollowChanged,
    PacketHighlighted,
    PacketSelected,
    SourceFinished,
)
from rawtui.views.tui.model import ViewModel
from rawtui.views.tui.screens import DetailScreen, ErrorScreen, HelpScreen, SummaryScreen
from rawtui.views.tui.started import StartedSource
from rawtui.views.tui.timeline import Timeline, describe_event
from rawtui.views.tui.widgets.counters import CountersPanel
from rawtui.views.tui.widgets.detail import PacketDetail, find_packet
from rawtui.views.tui.widgets.footer import KeysFooter
from rawtui.views.tui.widgets.graphs import GraphsPanel, LabLine
from rawtui.views.tui.widgets.header import SessionHeader
from rawtui.views.tui.widgets.ladder import LadderPanel
from rawtui.views.tui.widgets.nexthop import NextHopPanel
from rawtui.views.tui.widgets.packets import PacketList
from rawtui.views.tui.widgets.progress import ProgressLine
from rawtui.views.tui.widgets.ticker import TOPIC_STYLES, ExplainTicker

EXIT_INTERNAL = 1


def _lab_control(path: str) -> Any:
    from rawtui.lab.control import LabControl  # only in the lab

    return LabControl(path)


@dataclass
class RedrawPolicy:
    """How often each screen area may be redrawn, by traffic.

    ``calm``: seconds between redraws of an area while fewer than ``busy_rate`` events a second arrive
    (0: at every drain tick). ``busy``: the same while more arrive, checked only every ``busy_frame``
    seconds so that the areas due are drawn together (each screen update has a cost of its own).
    While busy, the UI thread's own CPU time is watched: when it takes more than ``cpu_budget`` of a CPU
    (a big terminal, a slow machine) every busy interval is stretched, up to ``max_stretch`` times, and
    shrinks back when it takes less. Whatever the rate, every area is redrawn as soon as the flow pauses
    or ends, so the screen always ends up showing the latest state.
    """

    busy_rate: float = 300.0  # events per second (over the last second) that make the screen "busy"
    busy_frame: float = 0.25  # while busy, the screen is redrawn at most this often (all due areas at once)
    cpu_budget: float = 0.10  # share of one CPU the UI thread may use while busy
    max_stretch: float = 4.0
    calm: dict[str, float] = field(default_factory=lambda: {"graphs": 0.5})
    busy: dict[str, float] = field(default_factory=lambda: {
        "header": 0.25, "progress": 0.25, "counters": 0.25, "arp": 0.5, "ladder": 1.0, "packets": 0.5,
        "graphs": 1.0,
    })

    def interval(self, area: str, busy: bool, stretch: float = 1.0) -> float:
        return self.busy.get(area, 0.0) * stretch if busy else self.calm.get(area, 0.0)


class RawtuiApp(App[int]):
    """The live view of one session.

    Public state, for the CLI and tests: ``source``, ``stop_event`` (set to ask the source to end),
    ``model`` (the :class:`ViewModel`), ``source_finished`` and ``exit_code`` (the source's return value),
    ``pending`` (events queued, not yet drawn), ``ui_settled``, ``paused``, ``follow``. ``app.run()``
    returns the exit code. ``source`` may be a :class:`~rawtui.views.tui.started.StartedSource`, already
    running: its queue and its stop event become the app's. The timeline cursor: ``timeline`` (every event,
    :class:`~rawtui.views.tui.timeline.Timeline`), ``cursor`` (the index of the event under it, None in the
    live view), ``cursor_model`` (the state there), ``speed``, ``playing``, ``zoom``.
    """

    CSS_PATH = "app.tcss"
    TITLE = "rawtui"
    ENABLE_COMMAND_PALETTE = False

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
        Binding("p", "toggle_pause", "Pause"),
        Binding("f", "toggle_follow", "Follow"),
        Binding("s", "save_pcap", "Save pcap"),
        Binding("e", "save_events", "Save events"),
        Binding("slash", "focus_filter", "Filter"),
        Binding("question_mark", "help", "Help"),
        Binding("escape", "close_detail", "Close detail", show=False),
        # the teaching lab's knobs (server -> client): in the footer only when a lab control path is known
        Binding("l", "lab_knob('loss', -1)", "Loss-"),
        Binding("L", "lab_knob('loss', 1)", "Loss+"),
        Binding("d", "lab_knob('delay_ms', -10)", "Delay-"),
        Binding("D", "lab_knob('delay_ms', 10)", "Delay+"),
        Binding("r", "lab_rate(0.5)", "Rate/2"),
        Binding("R", "lab_rate(2)", "Rate x2"),
        Binding("b", "lab_blackout(3)", "Blackout"),
        # --limit-rate while downloading: rawtui reads slower or faster, its advertised window follows
        Binding("minus", "read_rate(0.5)", "Read rate/2"),
        Binding("plus,equals_sign", "read_rate(2)", "Read rate x2"),
        # the timeline cursor (paused, or once the session ended): rawtui.views.tui.timeline
        Binding("left", "cursor_step(-1)", "Step back", show=False, priority=True),
        Binding("right", "cursor_step(1)", "Step", show=False, priority=True),
        Binding("left_square_bracket", "cursor_notable(-1)", "Previous notable", show=False, priority=True),
        Binding("right_square_bracket", "cursor_notable(1)", "Next notable", show=False, priority=True),
        Binding("home", "cursor_edge(0)", "First event", show=False, priority=True),
        Binding("end", "cursor_edge(1)", "Last event", show=False, priority=True),
        Binding("z", "cursor_zoom", "Zoom", show=False, priority=True),
        Binding("space", "cursor_play", "Play", show=False, priority=True),
        Binding("less_than_sign", "speed(0.5)", "Slower", show=False, priority=True),
        Binding("greater_than_sign", "speed(2)", "Faster", show=False, priority=True),
    ]

    LAB_ACTIONS = frozenset({"lab_knob", "lab_rate", "lab_blackout"})
    LAB_RATE_START = 100_000_000  # bit/s: halving an unlimited rate starts from here
    LAB_RATE_MIN = 8_000  # bit/s: the lab's lowest rate
    LAB_RATE_MAX = 100_000_000_000

    DRAIN_INTERVAL = 1 / 12  # seconds between drains / redraws
    TICK_BUDGET = 0.04  # seconds of folding per drain at most (the rest waits for the next tick)
    STOP_TIMEOUT = 15.0  # seconds to wait for the source after q before leaving anyway
    SIGNAL_STOP_TIMEOUT = 1.0  # the same after a signal (the process must be gone within 2 s)
    COMPACT_WIDTH = 110  # below this width or COMPACT_HEIGHT rows: no graphs, no detail pane
    COMPACT_HEIGHT = 30
    TALL_HEIGHT = 42  # from this many rows the ticker under the graphs shows 3 explanations, not 1
    # The GIL switch interval while the app runs (CPython's default is 5 ms): the stack thread waits at
    # most this long for the GIL when it comes back from a system call while the UI thread renders.
    SWITCH_INTERVAL = 0.001
    # Whatever the traffic, every panel catches up when no event arrived for this long.
    QUIET = 0.2
    # Graphs still without data this long after the first paint (or when the source ends) show their
    # empty axes; a download's data usually comes first, and the empty plots are never built.
    EMPTY_GRAPHS_AFTER = 0.5
    # Freeze the objects of the start-up out of the garbage collector's full collections (see on_load
    # and on_ready); unfrozen when the app ends.
    GC_FREEZE = True

    def __init__(
        self,
        source: EventSource,
        *,
        title: str = "",
        exit_on_done: bool = False,
        on_save_pcap: Callable[[], str] | None = None,
        on_save_events: Callable[[], str] | None = None,
        redraw: RedrawPolicy | None = None,
        lab_control: str | None = None,
        on_set_rate: Callable[[float | None], None] | None = None,
        on_set_speed: Callable[[float], None] | None = None,
        speed: float = 1.0,
    ) -> None:
        super().__init__()
        # the timeline cursor: every event is recorded (rawtui.views.tui.timeline); ``cursor`` is the index of
        # the event under it, or None (the live view)
        self.timeline = Timeline()
        self.cursor: int | None = None
        self.cursor_model: ViewModel | None = None
        self.zoom = False
        self.playing = False
        self._play_from = (0.0, 0.0)  # (wall time, event time) the cursor's playback started from
        self.play_clock: Callable[[], float] = time.monotonic  # the playback's wall clock (a test steps its own)
        self._cursor_opened_detail = False
        self._cursor_drawn: dict[str, int] = {}  # the cursor model's area versions drawn last
        from rawtui.recording.replay import Replay

        if on_set_speed is None and isinstance(source, Replay):  # a replay given directly (tests, scripts)
            replay = source
            on_set_speed, speed = (lambda value: setattr(replay, "speed", value)), source.speed or 1.0
        self.on_set_speed = on_set_speed  # a replay's pace (< and >)
        self.speed = speed  # the replay's speed, and the cursor's playback speed (space)
        self.on_set_rate = on_set_rate  # the download's --limit-rate (the read-rate keys), when live
        self.lab_control = lab_control  # the lab's control socket (rawtui demo): the knob keys use it
        self.lab_control_factory: Callable[[str], Any] = _lab_control  # tests inject a fake
        self._lab_client: Any = None
        self._lab_lock = threading.Lock()
        self.redraw = redraw or RedrawPolicy()
        self.source = source
        self.exit_on_done = exit_on_done
        self.on_save_pcap = on_save_pcap
        self.on_save_events = on_save_events
        started = source if isinstance(source, StartedSource) else None
        # a StartedSource already runs: adopt its stop event and its queue (see rawtui.views.tui.started)
        self.stop_event = started.stop_event if started is not None else threading.Event()
        title = title or getattr(source, "title", "")  # a pcap replay knows the request's URL
        self.model = ViewModel(title=title)
        self.source_finished = False
        self.exit_code: int | None = None
        self.paused = False
        self._queue: deque[Event] = started.queue if started is not None else deque()
        self._started_source = started
        self._drawn: dict[str, int] = {}
        self._drawn_at: dict[str, float] = {}
        self._recent: deque[tuple[float, int]] = deque()  # (tick time, events applied) over the last second
        self._recent_sum = 0
        self._busy = False
        self._last_event_at = 0.0
        self._frame_at = 0.0
        self._stretch = 1.0  # busy intervals x this (see RedrawPolicy)
        self._cpu_marks: deque[tuple[float, float]] = deque()  # (wall, UI thread CPU) at recent ticks
        self._old_switch_interval: float | None = None
        self._gc_frozen = False
        self._terminal_handled = False
        self._quitting = False
        self._exit_requested = False
        self._end_requested = 0  # signals received (request_end), handled at the next drain tick
        self._end_handled = 0
        self._started = time.monotonic()
        self._source_worker: Worker[int] | None = None
        self._source_done = asyncio.Event()  # the source returned (for _finish_and_exit)
        self._areas: list[tuple[str, list[Any]]] = []  # (area, its widgets), once mounted
        if title:
            self.title = title

    # -- layout --------------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        m = self.model
        yield SessionHeader(m, id="header")
        yield ProgressLine(m, id="progress")
        with Grid(id="body"):
            yield NextHopPanel(m, id="arp", classes="panel")
            yield GraphsPanel(m, id="graphs", classes="panel")
            yield CountersPanel(m, id="counters", classes="panel")
            yield ExplainTicker(m, id="ticker")  # under the graphs: what just happened
            yield LadderPanel(m, id="ladder", classes="panel")
            yield PacketList(m, id="packets", classes="panel")
            yield PacketDetail(m, id="detail", classes="panel")
        yield KeysFooter()

    def on_load(self) -> None:
        """The app runs (styles read, nothing composed yet): start the source now, so that its start-up
        overlaps the app's instead of following it."""
        if self.GC_FREEZE and not self._gc_frozen:
            # The imports left ~10^5 long-lived objects, and the app's start-up adds as many (frozen again
            # in on_ready): a full collection during the download would scan them all (a 40-50 ms stop of
            # both threads, long enough for the server to resend). Frozen, they are out of the
            # collector's way until the app ends.
            gc.freeze()
            self._gc_frozen = True
        if self.SWITCH_INTERVAL:
            self._old_switch_interval = sys.getswitchinterval()
            sys.setswitchinterval(self.SWITCH_INTERVAL)
        if self._source_worker is None and not self._exit_requested:
            if self._started_source is None:  # its thread starts now; a worker waits for it below
                self._started_source = StartedSource(self.source, queue=self._queue, stop_event=self.stop_event)
            self._source_worker = self._run_source()

    def on_mount(self) -> None:
        self._header = self.query_one(SessionHeader)
        self._packets = self.query_one(PacketList)
        self._graphs = self.query_one(GraphsPanel)
        self._lab_line = self.query_one(LabLine)
        progress, arp, ladder = self.query_one(ProgressLine), self.query_one(NextHopPanel), self.query_one(LadderPanel)
        self._areas = [
            ("header", [self._header, progress, arp, ladder]),
            ("progress", [progress]),
            ("arp", [arp]),
            ("ladder", [ladder]),
            ("counters", [self.query_one(CountersPanel)]),
            ("packets", [self._packets]),
            ("lab", [self._lab_line]),
            ("explain", [self.query_one(ExplainTicker)]),
        ]
        self._apply_size(self.size.width, self.size.height)
        self.query_one("#packet-table").focus()
        self.set_interval(self.DRAIN_INTERVAL, self._tick, name="drain")
        self._tick()  # what the source emitted while the widgets were composed

    def on_ready(self) -> None:
        """The first screen is painted: freeze what the start-up allocated, out of the collector's way.
        The graphs without data draw their empty axes a little later (plotext is not needed before)."""
        if self._gc_frozen:
            gc.freeze()
        self.set_timer(self.EMPTY_GRAPHS_AFTER, self._graphs.show_empty, name="empty graphs")

    def on_resize(self, event: events.Resize) -> None:
        self._apply_size(event.size.width, event.size.height)

    def _apply_size(self, width: int, height: int) -> None:
        compact = width < self.COMPACT_WIDTH or height < self.COMPACT_HEIGHT
        self.set_class(height >= self.TALL_HEIGHT, "-tall")
        if compact != self.compact:
            self.set_class(compact, "-compact")
            self._drawn.pop("graphs", None)  # draw them when they come back
            if compact:
                self.close_detail()

    @property
    def compact(self) -> bool:
        return self.has_class("-compact")

    # -- the source ----------------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="source", name="source", exit_on_error=False)
    def _run_source(self) -> int:
        emit = self._queue.append  # deque.append is atomic: the only thing the worker touches
        try:
            source = self._started_source or self.source
            return int(source.run(emit, self.stop_event))
        except RawtuiError as exc:
            emit(Error(time.monotonic() - self._started, exc.message, exc.exit_code))
            return exc.exit_code
        except Exception as exc:  # noqa: BLE001 - the app must show it, not die with it
            emit(Error(time.monotonic() - self._started, f"internal error: {exc!r}", EXIT_INTERNAL))
            return EXIT_INTERNAL

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker is not self._source_worker:
            return
        if event.state == WorkerState.SUCCESS:
            code = event.worker.result if event.worker.result is not None else 0
        elif event.state == WorkerState.ERROR:
            code = EXIT_INTERNAL
        elif event.state == WorkerState.CANCELLED:
            code = EXIT_INTERRUPTED
        else:
            return
        self.source_finished = True
        self._source_done.set()
        if self._areas and not self.exit_on_done:
            self._graphs.show_empty()
        self.exit_code = int(code)
        self.model.source_code = self.exit_code
        self.model.versions["header"] += 1
        self.post_message(SourceFinished(self.exit_code))
        self._tick()

    @property
    def pending(self) -> int:
        """Events emitted by the source and not yet folded into the model."""
        return len(self._queue)

    @property
    def ui_settled(self) -> bool:
        """Nothing queued and every panel drawn from the latest model state (for tests and screenshots)."""
        if self._queue or self.paused:
            return False
        v = self.model.versions
        drawn = self._drawn
        return drawn.get("_events") == self.model.events_seen and all(drawn.get(k) == n for k, n in v.items())

    # -- the drain tick ------------------------------------------------------------------------------

    def _tick(self) -> None:
        if not self._areas:
            return  # not mounted yet: on_mount drains what came so far
        if self._end_requested != self._end_handled:
            self._end_by_signal()
        q = self._queue
        applied = 0
        if q:
            deadline = time.perf_counter() + self.TICK_BUDGET
            popleft = q.popleft
            while q:
                batch = [popleft() for _ in range(min(len(q), 4096))]
                applied += self.timeline.feed(self.model, batch)
                if time.perf_counter() > deadline:
                    break  # the rest next tick: the screen stays responsive
            self.post_message(EventsApplied(applied, self.model.events_seen))
        now = time.monotonic()
        busy = self._note_rate(now, applied)
        self._govern(now, busy)
        if applied:
            self._last_event_at = now
        if not self.paused and self.cursor is None and not self._leaving_now():
            # The flow paused or ended: draw whatever the intervals held back.
            quiet = not q and now - self._last_event_at >= self.QUIET
            self._redraw(now, busy=busy, catch_up=quiet or self.source_finished)
        self._check_end()

    def _leaving_now(self) -> bool:
        """The app is about to leave by itself (exit_on_done, the session over, everything folded): a last
        frame would only flash before the screen is torn down, so none is drawn."""
        m = self.model
        return self.exit_on_done and not self._queue and (
            m.done is not None or m.error is not None or self.source_finished)

    def _note_rate(self, now: float, applied: int) -> bool:
        """Remember this tick's event count; True when events arrive at ``busy_rate`` a second or more: over
        the last second, or in this tick alone (so that a download starting is seen at its first tick)."""
        recent = self._recent
        if applied:
            recent.append((now, applied))
            self._recent_sum += applied
        while recent and now - recent[0][0] > 1.0:
            self._recent_sum -= recent.popleft()[1]
        rate = self.redraw.busy_rate
        busy = self._recent_sum >= rate or applied >= rate * self.DRAIN_INTERVAL
        if busy and not self._busy:
            # A flood starts: the graphs' first busy redraw comes one busy interval later (their data
            # is a few points so far; a plotext build now would only be replaced).
            self._drawn_at["graphs"] = now
        self._busy = busy
        return busy

    def _govern(self, now: float, busy: bool) -> None:
        """Stretch the busy intervals while the UI thread uses more than its CPU budget (see RedrawPolicy)."""
        marks = self._cpu_marks
        if not busy:
            self._stretch = 1.0
            marks.clear()  # judge the busy time only (not the start-up, not a calm spell)
            return
        marks.append((now, time.thread_time()))
        while now - marks[0][0] > 1.0:
            marks.popleft()
        wall = now - marks[0][0]
        if wall < 0.5:
            return
        share = (marks[-1][1] - marks[0][1]) / wall
        p = self.redraw
        if share > p.cpu_budget:
            self._stretch = min(p.max_stretch, self._stretch * 1.1)
        elif share < 0.7 * p.cpu_budget:
            self._stretch = max(1.0, self._stretch / 1.1)

    @property
    def busy(self) -> bool:
        """Events arrive fast enough that the panels are redrawn at their low, busy rates."""
        return self._busy

    def _due(self, area: str, now: float, busy: bool, catch_up: bool) -> bool:
        if catch_up:
            return True
        interval = self.redraw.interval(area, busy, self._stretch)
        return not interval or now - self._drawn_at.get(area, -1e9) >= interval - self.DRAIN_INTERVAL / 2

    def _redraw(self, now: float | None = None, *, busy: bool = False, catch_up: bool = True) -> None:
        """Sync the widgets of every area whose model version moved and whose redraw is due."""
        if now is None:
            now = time.monotonic()
        if busy and not catch_up and (
            now - self._frame_at < self.redraw.busy_frame * self._stretch - self.DRAIN_INTERVAL / 2
        ):
            return
        v = self.model.versions
        drawn = self._drawn
        drawn_at = self._drawn_at
        any_drawn = False
        for area, widgets in self._areas:
            n = v[area]
            if drawn.get(area) != n and self._due(area, now, busy, catch_up):
                drawn[area] = n
                drawn_at[area] = now
                any_drawn = True
                for w in widgets:
                    w.sync()
        n = v["graphs"]
        if drawn.get("graphs") != n and self._due("graphs", now, busy, catch_up):
            drawn["graphs"] = n
            drawn_at["graphs"] = now
            any_drawn = True
            if not self.compact:
                self._graphs.draw()
        elif drawn.get("graphs") == n and not self.compact:
            self._graphs.mark_time()  # no new graph data: the graphs are current up to the latest event
        # The header shows the event time: redraw it with any change, at the header's rate.
        seen = self.model.events_seen
        if drawn.get("_events") != seen and self._due("header", now, busy, catch_up):
            drawn["_events"] = seen
            drawn_at["header"] = now
            any_drawn = True
            self._header.refresh()
        if any_drawn:
            self._frame_at = now

    def _check_end(self) -> None:
        """After the drain: react once to done / error, or to a source that ended without either."""
        if self._terminal_handled or self._queue or self.cursor is not None:
            return
        m = self.model
        if m.done is None and m.error is None and not self.source_finished:
            return
        self._terminal_handled = True
        if self.exit_on_done:
            self._leave()
            return
        if m.error is not None:
            self.push_screen(ErrorScreen(m.error))
        elif m.done is not None:
            # what the screen counted (the session's own counters name some of these differently)
            self.push_screen(SummaryScreen(m.done, self._counters_dict(), m.what_you_saw()))

    def _counters_dict(self) -> dict[str, int]:
        c = self.model.counters
        return {
            "retransmits": c.retransmits, "dup_data": c.dup_data, "out_of_order": c.out_of_order,
            "dup_acks_sent": c.dup_acks_out, "checksum_ipv4": c.checksum_ipv4,
            "checksum_tcp": c.checksum_tcp, "checksum_icmp": c.checksum_icmp, "malformed": c.malformed,
        }

    # -- leaving -------------------------------------------------------------------------------------

    def request_end(self, again: bool = False) -> None:
        """A signal (SIGINT, SIGTERM, SIGHUP) asks the app to leave: as ``q`` does (the source ends cleanly
        first, ``SIGNAL_STOP_TIMEOUT`` at most), or at once when ``again`` (a second signal).

        Safe from any thread: it only counts, and the next drain tick (on the UI thread, 1/12 s later at
        most) acts; nothing here takes a lock or waits for the event loop, which may be the very thing that
        is stuck. (The caller sets ``stop_event`` itself: rawtui.cli.Endings.)"""
        self._end_requested = 2 if again or self._end_requested else 1

    def _end_by_signal(self) -> None:
        requested, self._end_handled = self._end_requested, self._end_requested
        if requested > 1:
            if not self._exit_requested:
                self.exit(EXIT_INTERRUPTED, return_code=EXIT_INTERRUPTED)
            return
        self._leave(self.SIGNAL_STOP_TIMEOUT)

    async def action_quit(self) -> None:
        """q: ask the source to stop, wait for it to finish cleanly, exit with its code.
        A second q while waiting leaves at once."""
        if self._quitting:
            self.exit(EXIT_INTERRUPTED, return_code=EXIT_INTERRUPTED)
            return
        self._leave()

    def _leave(self, timeout: float | None = None) -> None:
        """Stop the source, wait for it (``timeout``, default ``STOP_TIMEOUT``), exit with its code."""
        self._quitting = True
        self.stop_event.set()
        m = self.model
        if not self.source_finished and m.done is None and m.error is None:
            self.query_one(SessionHeader).stopping = True  # not when it is only finishing by itself
        wait = self.STOP_TIMEOUT if timeout is None else timeout
        self.run_worker(self._finish_and_exit(wait), group="quit", exclusive=True)

    async def _finish_and_exit(self, timeout: float | None = None) -> None:
        if self._source_worker is None:  # left before the app ran: the source never started
            self.exit(EXIT_INTERRUPTED, return_code=EXIT_INTERRUPTED)
            return
        if not self.source_finished:
            try:  # set by on_worker_state_changed
                await asyncio.wait_for(self._source_done.wait(), self.STOP_TIMEOUT if timeout is None else timeout)
            except TimeoutError:
                pass
        if not self.source_finished:
            self.notify("the source did not stop in time; leaving anyway", severity="error")
            code = EXIT_INTERRUPTED
        else:
            code = self.exit_code if self.exit_code is not None else EXIT_INTERRUPTED
        self.exit(code, return_code=code)

    def exit(self, result: int | None = None, return_code: int = 0, message: object = None) -> None:
        """Every way out asks the source to stop first, so its thread never outlives the app."""
        self.stop_event.set()
        self._exit_requested = True
        super().exit(result, return_code, message)  # type: ignore[arg-type]

    def on_unmount(self) -> None:
        self.stop_event.set()
        client, self._lab_client = self._lab_client, None
        if client is not None:
            try:
                client.close()
            except Exception:  # noqa: BLE001, S110 - leaving anyway
                pass
        if self._gc_frozen:
            gc.unfreeze()
            self._gc_frozen = False
        if self._old_switch_interval is not None:
            sys.setswitchinterval(self._old_switch_interval)
            self._old_switch_interval = None

    # -- keys ----------------------------------------------------------------------------------------

    def action_toggle_pause(self) -> None:
        if self.cursor is not None:  # back to the live view (and on, when paused)
            self.leave_cursor()
            if not self.paused:
                return
        self.paused = not self.paused
        self.query_one(SessionHeader).paused = self.paused
        if not self.paused:
            self._redraw()

    def action_toggle_follow(self) -> None:
        self._set_follow(not self.follow)

    @property
    def follow(self) -> bool:
        return self.query_one(PacketList).follow

    def _set_follow(self, follow: bool) -> None:
        self.query_one(PacketList).set_follow(follow)

    @on(FollowChanged)
    def _follow_changed(self, message: FollowChanged) -> None:
        if self.follow != message.follow:
            self._set_follow(message.follow)

    def action_focus_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_save_pcap(self) -> None:
        self._save(self.on_save_pcap, "pcap")

    def action_save_events(self) -> None:
        self._save(self.on_save_events, "events")

    def _save(self, callback: Callable[[], str] | None, what: str) -> None:
        if callback is None:
            self.notify(f"save {what}: not available in replay", severity="warning")
            return

        def run() -> None:
            try:
                path = callback()
            except Exception as exc:  # noqa: BLE001 - report it, keep the view running
                self.call_from_thread(self.notify, f"save {what} failed: {exc}", severity="error")
            else:
                self.call_from_thread(self.notify, f"{what} saved to {path}")

        self.run_worker(run, thread=True, group="save", name=f"save {what}")

    # -- the teaching lab's knobs ----------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The knob keys exist (and show in the footer) only when the lab's control path is known."""
        if action in self.LAB_ACTIONS:
            return bool(self.lab_control)
        if action == "read_rate":
            return self.on_set_rate is not None
        if action in self.CURSOR_ACTIONS:
            return self._cursor_possible()
        if action == "speed":
            return not isinstance(self.focused, Input) and (self.on_set_speed is not None or self._cursor_possible())
        return True

    READ_RATE_MIN = 1024.0  # bytes per second: the lowest --limit-rate the keys set
    READ_RATE_START = 1 << 20  # doubling or halving with neither a limit nor a measured speed starts here

    def action_read_rate(self, factor: float) -> None:
        """Halve or double rawtui's read rate (--limit-rate); with no limit yet, from the current speed."""
        if self.on_set_rate is None:
            return
        rate = self.model.rate_limit or self.model.speed_bps or self.READ_RATE_START
        new = max(self.READ_RATE_MIN, rate * factor)
        self.on_set_rate(new)
        from rawtui.download.pacing import human_rate

        self.notify(f"read rate: at most {human_rate(new)} (the advertised window follows)")

    def _current_knobs(self) -> dict[str, float]:
        k = self.model.lab_knobs
        return dict(k.down) if k is not None else {}

    def action_lab_knob(self, name: str, step: float) -> None:
        """Raise or lower one knob (server -> client) by ``step``, never below 0 (loss at most 100 %)."""
        value = max(0.0, self._current_knobs().get(name, 0.0) + step)
        if name == "loss":
            value = min(100.0, value)
        self._lab_call(f"{name} {value:g}", lambda lab: lab.set("down", note=f"{name} {value:g} (key)", **{name: value}))

    def action_lab_rate(self, factor: float) -> None:
        """Halve or double the bottleneck rate (0 = unlimited: halving starts from LAB_RATE_START)."""
        rate = self._current_knobs().get("rate_bps", 0)
        if not rate:
            if factor >= 1:
                self.notify("rate: already unlimited")
                return
            rate = self.LAB_RATE_START * 2
        value = int(min(self.LAB_RATE_MAX, max(self.LAB_RATE_MIN, rate * factor)))
        note = f"rate {value / 1e6:g} Mbit/s (key)"
        self._lab_call(note, lambda lab: lab.set("down", note=note, rate_bps=value))

    def action_lab_blackout(self, seconds: float) -> None:
        self._lab_call(f"blackout {seconds:g} s", lambda lab: lab.blackout(seconds))

    def _lab_call(self, what: str, call: Callable[[Any], object]) -> None:
        """Run ``call(LabControl)`` in a thread worker (the UI never waits for the lab); notify errors.
        The new knobs come back through the lab's event stream (LabKnobs)."""
        path = self.lab_control
        if not path:
            return

        def run() -> None:
            try:
                with self._lab_lock:
                    if self._lab_client is None:
                        self._lab_client = self.lab_control_factory(path)
                    try:
                        call(self._lab_client)
                    except Exception:
                        client, self._lab_client = self._lab_client, None  # reconnect next time
                        try:
                            client.close()
                        except Exception:  # noqa: BLE001, S110 - the first error is the one to show
                            pass
                        raise
            except Exception as exc:  # noqa: BLE001 - report it, keep the view running
                self.call_from_thread(self.notify, f"lab: {what} failed: {exc}", severity="error")

        self.run_worker(run, thread=True, group="lab", name=f"lab {what}")

    # -- packets -------------------------------------------------------------------------------------

    @property
    def detail_open(self) -> bool:
        return self.query_one("#body").has_class("-detail")

    def open_detail(self, number: int) -> None:
        """Show packet ``number``'s decoded layers: the pane beside the list, or a dialog when compact."""
        ev = find_packet(self.view_model, number)
        if ev is None:
            self.notify(f"packet {number} has left the list", severity="warning")
            return
        if self.compact:
            self.push_screen(DetailScreen(detail_tree(number, ev, self.view_model)))
            return
        self.query_one("#body").add_class("-detail")
        self.query_one(PacketDetail).show(number)

    def close_detail(self) -> None:
        self.query_one("#body").remove_class("-detail")

    def action_close_detail(self) -> None:
        if self.focused is not None and self.focused.id == "filter":
            self.query_one("#packet-table").focus()
        elif self.cursor is not None:
            self.leave_cursor()
        else:
            self.close_detail()

    @on(PacketHighlighted)
    def _packet_highlighted(self, message: PacketHighlighted) -> None:
        if not self.is_running or self._exit_requested:
            return
        if self.detail_open and not self.compact:
            detail = self.query_one(PacketDetail)
            if detail.number != message.number:
                detail.show(message.number)

    @on(PacketSelected)
    def _packet_selected(self, message: PacketSelected) -> None:
        if not self._quitting:
            self.open_detail(message.number)

    # -- the timeline cursor -------------------------------------------------------------------------------

    CURSOR_ACTIONS = frozenset({"cursor_step", "cursor_notable", "cursor_edge", "cursor_zoom", "cursor_play"})
    SPEED_MIN, SPEED_MAX = 1 / 16, 64.0
    PLAY_INTERVAL = 1 / 20  # seconds between two moves of the cursor while it plays
    ZOOM_SHARE = 1 / 16  # zoomed (z), the graphs show this share of the session around the cursor
    ZOOM_MIN_S = 0.01

    @property
    def view_model(self) -> ViewModel:
        """The model the panels show: the state at the cursor, or the live one."""
        return self.cursor_model if self.cursor is not None and self.cursor_model is not None else self.model

    def _cursor_possible(self) -> bool:
        """The cursor keys work while paused or once the session ended, on the main view (or over the
        summary or the error dialog, which they close), and not while typing a filter."""
        if not len(self.timeline) or not self._areas or isinstance(self.screen, (HelpScreen, DetailScreen)):
            return False
        if isinstance(self.focused, Input):
            return False
        m = self.model
        return (self.cursor is not None or self.paused or self.source_finished or m.done is not None
                or m.error is not None)

    def _enter_cursor(self) -> int:
        if isinstance(self.screen, (SummaryScreen, ErrorScreen)):
            self.pop_screen()
        if self.cursor is None:
            self.cursor = len(self.timeline) - 1
            self._cursor_opened_detail = not self.detail_open
        return self.cursor

    def action_cursor_step(self, step: int) -> None:
        """Left / right: one event back or on."""
        self.move_cursor(self._enter_cursor() + step)

    def action_cursor_notable(self, direction: int) -> None:
        """[ / ]: the previous / next notable event (a loss, a retransmission, an RTO, a zero window...)."""
        i = self._enter_cursor()
        j = self.timeline.next_notable(i) if direction > 0 else self.timeline.prev_notable(i)
        if j is None:
            self.notify(f"no notable event {'after' if direction > 0 else 'before'} this one")
            self.move_cursor(i)
            return
        self.move_cursor(j)

    def action_cursor_edge(self, end: int) -> None:
        """Home / End: the first / the last event."""
        self._enter_cursor()
        self.move_cursor(len(self.timeline) - 1 if end else 0)

    def action_cursor_zoom(self) -> None:
        """z: the graphs zoomed around the cursor, or the whole session again."""
        self.zoom = not self.zoom
        self.move_cursor(self._enter_cursor())

    def action_cursor_play(self) -> None:
        """space: the cursor moves on through the events at their pace times the speed (< >), or stops."""
        i = self._enter_cursor()
        if i >= len(self.timeline) - 1 and not self.playing:
            i = 0  # played to the end: from the start again
        self.playing = not self.playing
        self._play_from = (self.play_clock(), self.timeline.time(i))
        if self.playing and not hasattr(self, "_play_timer"):
            self._play_timer = self.set_interval(self.PLAY_INTERVAL, self._play_tick, name="cursor play")
        self.move_cursor(i)

    def _play_tick(self) -> None:
        if not self.playing or self.cursor is None:
            return
        wall, t = self._play_from
        tl = self.timeline
        j = tl.index_at(t + (self.play_clock() - wall) * self.speed)
        if j >= len(tl) - 1:
            self.playing = False
            j = len(tl) - 1
        if j != self.cursor or not self.playing:
            self.move_cursor(max(j, self.cursor))

    def action_speed(self, factor: float) -> None:
        """< / >: halve / double the replay's speed (and the cursor's playback), 1/16 to 64."""
        new = min(self.SPEED_MAX, max(self.SPEED_MIN, self.speed * factor))
        if self.playing and self.cursor is not None:  # keep the cursor where it is, at the new pace
            self._play_from = (self.play_clock(), self.timeline.time(self.cursor))
        self.speed = new
        if self.on_set_speed is not None:
            self.on_set_speed(new)
        self.notify(f"speed {speed_text(new)}")
        if self.cursor is not None:
            self._show_cursor_line()
        else:
            self._header.refresh()

    def move_cursor(self, index: int) -> None:
        """Put the cursor on event ``index`` (clamped) and show every panel as it was then."""
        tl = self.timeline
        i = self.cursor = max(0, min(index, len(tl) - 1))
        m = tl.state_at(i)
        m.source_code = self.model.source_code if i == len(tl) - 1 else None
        # the same model moved on (a step forward): only the areas that changed are drawn again
        same = m is self.cursor_model and bool(self._cursor_drawn)
        self.cursor_model = m
        self._bind(m)
        for area, widgets in self._areas:
            if area != "packets" and not (same and self._cursor_drawn.get(area) == m.versions[area]):
                for w in widgets:
                    w.sync()
        self._cursor_drawn = dict(m.versions)
        self._show_cursor_line()
        # the packet list: the packets up to the cursor, the last one selected and decoded beside
        plist = self._packets
        if not same:
            plist.rebuild()
        else:
            plist.sync()  # the packets that came since (nothing when none did)
        table = plist.table
        if table.row_count and table.cursor_row != table.row_count - 1:
            table.move_cursor(row=table.row_count - 1)
        if m.packet_count and not self.compact:
            self.query_one("#body").add_class("-detail")
            self.query_one(PacketDetail).show(m.packet_count)
        # the graphs: the whole session, a vertical line at the cursor (zoomed around it with z)
        if not self.compact:
            t = tl.time(i)
            window = None
            if self.zoom:
                half = max(self.ZOOM_MIN_S, self.model.t_last * self.ZOOM_SHARE) / 2
                window = (max(0.0, t - half), max(0.0, t - half) + 2 * half)
            graphs = self.model.versions["graphs"]
            if self._drawn.get("_cursor_graphs") != graphs:  # the live model's graphs moved on (paused)
                self._drawn["_cursor_graphs"] = graphs
                self._graphs.draw()
            self._graphs.set_cursor(t, window)

    def _show_cursor_line(self) -> None:
        i = self.cursor
        if i is None:
            return
        tl = self.timeline
        ev = tl.event(i)
        of = f"{len(tl):,}" + (" recorded (the history is full)" if tl.full else "")
        line = Text.assemble(("◆ ", "bold yellow"), (f"t={ev.t:.6f} s", "bold"),
                             (f"  event {i + 1:,} of {of}  ", "dim"), (describe_event(ev), "bold"),
                             no_wrap=True, end="")
        if self.playing:
            line.append(f"  ▶ playing ×{speed_text(self.speed)}", "bold green")
        elif self.speed != 1.0:
            line.append(f"  speed ×{speed_text(self.speed)}", "dim")
        if self.zoom:
            line.append("  zoom", "dim")
        explained = tl.explanation(i)
        if explained is not None:
            line.append("\n▸ ", TOPIC_STYLES.get(explained.topic, "bold"))
            line.append(explained.text)
        else:
            line.append("\n  ←/→ step · [ ] notable · Home/End · space play · < > speed · z zoom · esc live",
                        "dim")
        self._header.set_cursor(line)

    def leave_cursor(self) -> None:
        """Back to the live view (or the session's last state)."""
        if self.cursor is None:
            return
        self.cursor = None
        self.cursor_model = None
        self._cursor_drawn = {}
        self.playing = False
        self._bind(self.model)
        self._header.set_cursor(None)
        self._graphs.set_cursor(None)
        if self._cursor_opened_detail:
            self.close_detail()
        self._packets.rebuild()
        self._drawn.clear()
        self._redraw()

    def _bind(self, model: ViewModel) -> None:
        """Point the panels (all but the graphs, which always show the whole session) at ``model``."""
        for _, widgets in self._areas:
            for w in widgets:
                w.model = model
        self.query_one(PacketDetail).model = model


def speed_text(speed: float) -> str:
    """``1/4``, ``1``, ``8``."""
    return f"1/{round(1 / speed)}" if speed < 1 else f"{speed:g}"
