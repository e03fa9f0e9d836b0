"""The lab router's reports (RouterAction) in the live view: drops marked on the sequence graph apart from
the server's resends, the last one told on the lab line: the model from synthesized events, then the app."""

from __future__ import annotations

import threading

from rawtui.events import Emit, Event, LabKnobs, RouterAction, SegmentIn, SegmentOut, TcpState
from rawtui.views.tui.app import RawtuiApp
from rawtui.views.tui.model import ViewModel
from rawtui.views.tui.testing import screen_text, settle, sync
from rawtui.views.tui.widgets.graphs import LabLine, SequenceGraph, lab_text, router_drop_text

KNOBS = {"loss": 1.0, "delay_ms": 20.0, "jitter_ms": 0.0, "rate_bps": 0, "queue": 100, "reorder": 0.0,
         "dup": 0.0, "corrupt": 0.0, "blackout_s": 0.0}


def action(t: float, action: str, seq: int, length: int = 1448, direction: str = "down",
           note: str = "loss 1 %") -> RouterAction:
    return RouterAction(t, direction, action, seq, length, "A", 8080, 40001, 1000.0 + t, note)


def test_router_drops_of_data_are_marked_at_the_top_of_the_frame() -> None:
    m = ViewModel(title="http://10.0.2.2:8080/big.bin")
    m.apply_all([SegmentIn(0.1, 1, 1, "A", 65535, 1448), LabKnobs(0.1, dict(KNOBS), {}, "")])
    before = dict(m.versions)
    m.apply_all([
        action(2.31, "drop", 1234567),
        action(2.4, "queue-drop", 1236015, note="queue 100 frames full at 20 Mbit/s"),
        action(2.5, "duplicate", 1237463, note="dup 1 %"),  # not a drop: no mark
        action(2.6, "blackout", 1, 0, "up", "blackout 3 s"),  # an ACK going up: no mark
    ])
    g = m.graphs.seq_router_drop
    assert (g.xs, g.ys) == ([2.31, 2.4], [1234567 + 1448, 1236015 + 1448])
    assert m.router_actions == {"drop": 1, "queue-drop": 1, "duplicate": 1, "blackout": 1}
    assert m.versions["graphs"] > before["graphs"] and m.versions["lab"] > before["lab"]
    assert m.router_drop is not None and m.router_drop.seq == 1236015
    assert lab_text(m).plain.splitlines()[-1] == (
        "router dropped (queue full) seq 1236015 at t=2.40 s (queue 100 frames full at 20 Mbit/s)"
        "  · 2 data frames dropped so far")


def test_router_drop_text_names_the_knob() -> None:
    assert router_drop_text(action(2.31, "drop", 1234567)) == "router dropped seq 1234567 at t=2.31 s (loss 1 %)"
    assert router_drop_text(action(5.0, "blackout", 99, note="blackout 3 s")) == (
        "router dropped (blackout) seq 99 at t=5.00 s (blackout 3 s)")
    absolute = action(1.0, "drop", 3_000_000_000)
    absolute.absolute = True
    assert "absolute seq 3000000000" in router_drop_text(absolute)


def test_the_legend_names_router_drops_only_once_there_are_some() -> None:
    m = ViewModel()
    m.apply(SegmentIn(0.1, 1, 1, "A", 65535, 1448))
    graph = SequenceGraph()
    assert "router drop" not in graph.legend(m).plain  # outside the lab the legend is as it was
    m.apply(action(0.2, "drop", 1449))
    assert "o router drop" in graph.legend(m).plain


class ListSource:
    """Emits ``events`` and holds (like a session still running) until asked to stop."""

    def __init__(self, events: list[Event]) -> None:
        self.events = events
        self.exhausted = threading.Event()  # what settle() waits for

    def run(self, emit: Emit, stop: threading.Event) -> int:
        for ev in self.events:
            emit(ev)
        self.exhausted.set()
        stop.wait()
        return 0


@sync
async def test_the_app_tells_the_last_router_drop_on_the_lab_line() -> None:
    events: list[Event] = [LabKnobs(0.01, dict(KNOBS), {}, "down: loss 1 %"), TcpState(0.02, "CLOSED", "ESTABLISHED"),
                           SegmentOut(0.02, 1, 1, "A", 65535, 0)]
    events += [SegmentIn(0.1 + i / 1000, 1 + 1448 * i, 1, "A", 65535, 1448) for i in range(50) if i != 20]
    events += [action(0.125, "drop", 1 + 1448 * 20), SegmentIn(0.2, 1 + 1448 * 20, 1, "A", 65535, 1448)]
    app = RawtuiApp(ListSource(events), title="http://10.77.2.2:8080/f.bin", lab_control="/tmp/rawtui-test/none.sock")
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        assert app.model.graphs.seq_router_drop.ys == [1 + 1448 * 21]
        assert "router dropped seq 28961 at t=0.12 s (loss 1 %)  · 1 data frame dropped so far" in screen_text(app)
        assert app.query_one(LabLine).size.height == 2  # no scenario line: the knobs, then the drop
