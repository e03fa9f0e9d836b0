"""The timeline cursor in the live view, driven with Pilot on a lab recording (tests/fixtures/recorded/):
step, jump to notable events, the ends, zoom, slow motion; every panel shows the state at the cursor."""

from __future__ import annotations

import re
from pathlib import Path

from rawtui.events import PeerRetransmit
from rawtui.recording import NdjsonReplay, load_events
from rawtui.views.tui.app import RawtuiApp
from rawtui.views.tui.model import ViewModel
from rawtui.views.tui.screens import SummaryScreen
from rawtui.views.tui.testing import screen_text, settle, sync, wait_for
from rawtui.views.tui.widgets.detail import PacketDetail
from rawtui.views.tui.widgets.graphs import Graph

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
RECORDED = FIXTURES / "recorded" / "fast-retransmit.ndjson"
URL = "http://10.77.2.2:8080/demo.bin"


def app_for(path: Path, *, speed: float = 0, hold: bool = False) -> RawtuiApp:
    return RawtuiApp(NdjsonReplay(path, speed=speed, hold=hold), title=URL)


def folded(n: int) -> ViewModel:
    m = ViewModel(title=URL)
    m.apply_all(load_events(RECORDED)[:n])
    return m


@sync
async def test_jump_step_and_the_ends_after_the_download() -> None:
    events = load_events(RECORDED)
    resent = next(i for i, e in enumerate(events) if isinstance(e, PeerRetransmit))
    app = app_for(RECORDED)
    async with app.run_test(size=(120, 35)) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, SummaryScreen) and app.cursor is None
        # ] at the end: the summary closes, the cursor is on the last event (nothing notable after it)
        await pilot.press("right_square_bracket")
        assert app.cursor == len(events) - 1 and not isinstance(app.screen, SummaryScreen)
        # Home, then ] : the first notable event, the router's first drop
        await pilot.press("home", "right_square_bracket")
        first = app.cursor
        assert first is not None and not isinstance(app.screen, SummaryScreen)
        assert events[first].type == "router_action"
        text = screen_text(app)
        assert "CURSOR" in text and f"event {first + 1:,} of {len(events):,}" in text
        assert "Router dropped seq 14,670 (1,448 bytes)" in text  # its "what happened" line
        assert "router dropped seq 14670" in text  # the lab line at the cursor: that drop, the only one so far
        # ] until the server's retransmission of that segment
        while app.cursor < resent:
            await pilot.press("right_square_bracket")
        assert app.cursor == resent
        m = app.cursor_model
        assert m is not None and m.counters.peer_retrans == 1 == folded(resent + 1).counters.peer_retrans
        text = screen_text(app)
        assert re.search(r"srv resent\s+1\b", text)
        assert m.ladder[-1].label == "server resent seq 14,670 (fast) · 1 so far"
        assert "server resent seq 14" in text  # the ladder's last arrow (its label cut to the panel)
        assert "Fast retransmit: the server resent seq 14,670" in text
        # the packet list ends at the cursor; the last packet is selected and decoded beside it
        assert f"Packets {m.packet_count:,}" in text and m.packet_count == folded(resent + 1).packet_count
        assert app.query_one(PacketDetail).number == m.packet_count
        # every graph: the whole session, a line at the cursor's time
        graphs = list(app.query(Graph))
        assert graphs and all(g.cursor == events[resent].t and g.window is None for g in graphs)
        # ← : one event back, before the retransmission
        await pilot.press("left")
        assert app.cursor == resent - 1 and app.cursor_model.counters.peer_retrans == 0
        assert re.search(r"srv resent\s+0\b", screen_text(app))
        # z : zoomed around the cursor
        await pilot.press("z")
        assert all(g.window is not None and g.window[0] <= events[resent - 1].t <= g.window[1] for g in graphs)
        assert "zoom" in str(app.query_one("#graphs").border_subtitle)
        # Home / End
        await pilot.press("home")
        assert app.cursor == 0 and app.cursor_model.phase in ("WAITING", "STARTING")
        await pilot.press("end")
        assert app.cursor == len(events) - 1 and app.cursor_model.phase == "DONE"
        assert app.cursor_model.counters == app.model.counters
        # esc: back to the live view (the session's end)
        await pilot.press("escape")
        await pilot.pause()
        assert app.cursor is None and "CURSOR" not in screen_text(app)
        assert all(g.cursor is None for g in graphs)


@sync
async def test_the_cursor_while_paused_then_live_again() -> None:
    app = app_for(FIXTURES / "mid_download.ndjson", hold=True)
    async with app.run_test(size=(120, 35)) as pilot:
        await settle(pilot)
        # not paused, the session not over: the arrows are the packet list's, no cursor
        await pilot.press("left")
        assert app.cursor is None
        await pilot.press("p", "left", "left")
        n = len(app.timeline)
        assert app.paused and app.cursor == n - 3
        assert app.cursor_model is not None and app.cursor_model.events_seen <= n - 2
        await pilot.press("p")  # live again
        assert app.cursor is None and not app.paused


@sync
async def test_slow_motion_replay_and_playback() -> None:
    app = app_for(RECORDED, speed=1.0, hold=True)
    async with app.run_test(size=(120, 35)) as pilot:
        source = app.source
        assert isinstance(source, NdjsonReplay)
        await wait_for(lambda: app.model.events_seen > 0, pilot)
        for _ in range(6):  # 1 -> 1/2 -> ... -> 1/16, never below
            await pilot.press("less_than_sign")
        assert app.speed == 1 / 16 and source.speed == 1 / 16
        await pilot.press("greater_than_sign")
        assert app.speed == 1 / 8 and source.speed == 1 / 8
        source.speed = 0  # the rest of the recording at once (the live view's keys are what is tested here)
        await settle(pilot)
        # playback from the cursor at 1/8, on a clock the test steps (not the machine's: a busy machine must
        # not decide where the cursor is): it stays while the clock does, then goes to the event the clock's
        # time at 1/8 reaches, then stops at the end
        clock = [1000.0]
        app.play_clock = lambda: clock[0]
        await pilot.press("p", "home", "right_square_bracket")
        start = app.cursor
        assert start is not None
        t0 = app.timeline.time(start)
        await pilot.press("space")
        assert app.playing and app.cursor in (start, app.timeline.index_at(t0))  # the last event at t0 (a tick)
        assert "playing ×1/8" in screen_text(app)
        clock[0] += (app.timeline.time(start + 10) - t0) * 8 * 2  # event time: twice the way to event start+10
        want = app.timeline.index_at(t0 + (clock[0] - 1000.0) * app.speed)
        assert start + 10 <= want < len(app.timeline) - 1
        await wait_for(lambda: app.cursor == want, pilot)
        assert app.playing and "playing ×1/8" in screen_text(app)
        clock[0] += (app.timeline.time(len(app.timeline) - 1) - t0) * 8  # past the end: the playback stops
        await wait_for(lambda: not app.playing, pilot)
        assert app.cursor == len(app.timeline) - 1
        await pilot.press("space")  # played to the end: from the start again
        assert app.playing and app.cursor == 0
        await pilot.press("space")
        assert not app.playing
