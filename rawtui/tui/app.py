"""The Textual live view: one screen that shows the stack working while the download runs.

The event source (the live session or a replay) runs in a thread worker. Its ``emit`` only appends to a
deque; a timer in the UI thread drains the deque ~12 times a second into the :class:`ViewModel` and
redraws the panels whose data changed (the graphs at most twice a second). The source never waits for
the screen, and the screen never waits for the source.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import ClassVar

from textual import events, on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid
from textual.widgets import Footer, Input
from textual.worker import Worker, WorkerState

from rawtui.errors import EXIT_INTERRUPTED, RawtuiError
from rawtui.source import EventSource
from rawtui.stack.events import Error, Event

from .describe import detail_tree
from .messages import EventsApplied, FollowChanged, PacketHighlighted, PacketSelected, SourceFinished
from .model import ViewModel
from .screens import DetailScreen, ErrorScreen, HelpScreen, SummaryScreen
from .widgets.arp import ArpPanel
from .widgets.counters import CountersPanel
from .widgets.detail import PacketDetail, find_packet
from .widgets.graphs import GraphsPanel
from .widgets.header import SessionHeader
from .widgets.ladder import LadderPanel
from .widgets.packets import PacketList
from .widgets.progress import ProgressLine

EXIT_INTERNAL = 1


class RawtuiApp(App[int]):
    """The live view of one session.

    Public state, for the CLI and tests: ``source``, ``stop_event`` (set to ask the source to end),
    ``model`` (the :class:`ViewModel`), ``source_finished`` and ``exit_code`` (the source's return value),
    ``pending`` (events queued, not yet drawn), ``ui_settled``, ``paused``, ``follow``. ``app.run()``
    returns the exit code.
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
    ]

    DRAIN_INTERVAL = 1 / 12  # seconds between drains / redraws
    GRAPH_INTERVAL = 0.5  # seconds between graph redraws
    TICK_BUDGET = 0.04  # seconds of folding per drain at most (the rest waits for the next tick)
    STOP_TIMEOUT = 15.0  # seconds to wait for the source after q before leaving anyway
    COMPACT_WIDTH = 110  # below this width or COMPACT_HEIGHT rows: no graphs, no detail pane
    COMPACT_HEIGHT = 30

    def __init__(
        self,
        source: EventSource,
        *,
        title: str = "",
        exit_on_done: bool = False,
        on_save_pcap: Callable[[], str] | None = None,
        on_save_events: Callable[[], str] | None = None,
    ) -> None:
        super().__init__()
        self.source = source
        self.exit_on_done = exit_on_done
        self.on_save_pcap = on_save_pcap
        self.on_save_events = on_save_events
        self.stop_event = threading.Event()
        self.model = ViewModel(title=title)
        self.source_finished = False
        self.exit_code: int | None = None
        self.paused = False
        self._queue: deque[Event] = deque()
        self._drawn: dict[str, int] = {}
        self._last_graph_draw = 0.0
        self._terminal_handled = False
        self._quitting = False
        self._exit_requested = False
        self._started = time.monotonic()
        self._source_worker: Worker[int] | None = None
        if title:
            self.title = title

    # -- layout --------------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        m = self.model
        yield SessionHeader(m, id="header")
        yield ProgressLine(m, id="progress")
        with Grid(id="body"):
            yield ArpPanel(m, id="arp", classes="panel")
            yield GraphsPanel(m, id="graphs", classes="panel")
            yield CountersPanel(m, id="counters", classes="panel")
            yield LadderPanel(m, id="ladder", classes="panel")
            yield PacketList(m, id="packets", classes="panel")
            yield PacketDetail(m, id="detail", classes="panel")
        yield Footer()

    def on_mount(self) -> None:
        self._areas: list[tuple[str, list]] = [  # type: ignore[type-arg]
            ("header", [self.query_one(SessionHeader), self.query_one(ProgressLine), self.query_one(ArpPanel),
                        self.query_one(LadderPanel)]),
            ("progress", [self.query_one(ProgressLine)]),
            ("arp", [self.query_one(ArpPanel)]),
            ("ladder", [self.query_one(LadderPanel)]),
            ("counters", [self.query_one(CountersPanel)]),
        ]
        self._apply_size(self.size.width, self.size.height)
        self.query_one("#packet-table").focus()
        self.set_interval(self.DRAIN_INTERVAL, self._tick, name="drain")
        self._source_worker = self._run_source()

    def on_resize(self, event: events.Resize) -> None:
        self._apply_size(event.size.width, event.size.height)

    def _apply_size(self, width: int, height: int) -> None:
        compact = width < self.COMPACT_WIDTH or height < self.COMPACT_HEIGHT
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
            return int(self.source.run(emit, self.stop_event))
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
        return all(self._drawn.get(k) == n for k, n in v.items())

    # -- the drain tick ------------------------------------------------------------------------------

    def _tick(self) -> None:
        q = self._queue
        if q:
            deadline = time.perf_counter() + self.TICK_BUDGET
            popleft = q.popleft
            applied = 0
            while q:
                batch = [popleft() for _ in range(min(len(q), 4096))]
                applied += self.model.apply_all(batch)
                if time.perf_counter() > deadline:
                    break  # the rest next tick: the screen stays responsive
            self.post_message(EventsApplied(applied, self.model.events_seen))
        if not self.paused:
            self._redraw()
        self._check_end()

    def _redraw(self, *, force_graphs: bool = False) -> None:
        v = self.model.versions
        drawn = self._drawn
        for area, widgets in self._areas:
            if drawn.get(area) != v[area]:
                drawn[area] = v[area]
                for w in widgets:
                    w.sync()
        if drawn.get("packets") != v["packets"]:
            drawn["packets"] = v["packets"]
            self.query_one(PacketList).sync()
        if drawn.get("graphs") != v["graphs"]:
            now = time.monotonic()
            idle = not self._queue and self.source_finished
            settling = not self._queue and now - self._last_graph_draw >= self.DRAIN_INTERVAL * 2
            if force_graphs or idle or settling or now - self._last_graph_draw >= self.GRAPH_INTERVAL:
                self._last_graph_draw = now
                drawn["graphs"] = v["graphs"]
                if not self.compact:
                    self.query_one(GraphsPanel).draw()
        # The header shows the event time: redraw it with any change.
        if drawn.get("_events") != self.model.events_seen:
            drawn["_events"] = self.model.events_seen
            self.query_one(SessionHeader).refresh()

    def _check_end(self) -> None:
        """After the drain: react once to done / error, or to a source that ended without either."""
        if self._terminal_handled or self._queue:
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
            counters = dict(m.done.counters) or self._counters_dict()
            self.push_screen(SummaryScreen(m.done, counters))

    def _counters_dict(self) -> dict[str, int]:
        c = self.model.counters
        return {
            "retransmits": c.retransmits, "dup_data": c.dup_data, "out_of_order": c.out_of_order,
            "dup_acks_sent": c.dup_acks_out, "checksum_ipv4": c.checksum_ipv4,
            "checksum_tcp": c.checksum_tcp, "malformed": c.malformed,
        }

    # -- leaving -------------------------------------------------------------------------------------

    async def action_quit(self) -> None:
        """q: ask the source to stop, wait for it to finish cleanly, exit with its code.
        A second q while waiting leaves at once."""
        if self._quitting:
            self.exit(EXIT_INTERRUPTED, return_code=EXIT_INTERRUPTED)
            return
        self._leave()

    def _leave(self) -> None:
        self._quitting = True
        self.stop_event.set()
        if not self.source_finished:
            self.query_one(SessionHeader).stopping = True
        self.run_worker(self._finish_and_exit(), group="quit", exclusive=True)

    async def _finish_and_exit(self) -> None:
        deadline = time.monotonic() + self.STOP_TIMEOUT
        while not self.source_finished and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
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

    # -- keys ----------------------------------------------------------------------------------------

    def action_toggle_pause(self) -> None:
        self.paused = not self.paused
        self.query_one(SessionHeader).paused = self.paused
        if not self.paused:
            self._redraw(force_graphs=True)

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

    # -- packets -------------------------------------------------------------------------------------

    @property
    def detail_open(self) -> bool:
        return self.query_one("#body").has_class("-detail")

    def open_detail(self, number: int) -> None:
        """Show packet ``number``'s decoded layers: the pane beside the list, or a dialog when compact."""
        ev = find_packet(self.model, number)
        if ev is None:
            self.notify(f"packet {number} has left the list", severity="warning")
            return
        if self.compact:
            self.push_screen(DetailScreen(detail_tree(number, ev, self.model)))
            return
        self.query_one("#body").add_class("-detail")
        self.query_one(PacketDetail).show(number)

    def close_detail(self) -> None:
        self.query_one("#body").remove_class("-detail")

    def action_close_detail(self) -> None:
        if self.focused is not None and self.focused.id == "filter":
            self.query_one("#packet-table").focus()
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
