"""The live view under `rawtui demo` (the lab's side channel: the server's true cwnd, knobs, scenario, the
knob keys) and over HTTPS (the TLS header line and ladder steps), from synthesized events."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from rawtui.events import (
    Emit,
    Event,
    HttpResponse,
    LabKnobs,
    LabScenario,
    Route,
    SegmentIn,
    SegmentOut,
    ServerTcpInfo,
    TcpState,
    TlsInfo,
    TlsRecord,
)
from rawtui.recording import NdjsonReplay
from rawtui.views.tui.app import RawtuiApp
from rawtui.views.tui.model import ViewModel
from rawtui.views.tui.testing import screen_text, settle, sync, wait_for
from rawtui.views.tui.widgets.graphs import CwndGraph, LabLine, knobs_text
from rawtui.views.tui.widgets.header import SessionHeader

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
URL = "http://10.0.2.2:8080/big.bin"
SIZE = (120, 35)
LAB_PATH = "/tmp/rawtui-test-lab/control.sock"
HTTPS_URL = "https://example.test/big.bin"
KNOBS = {"loss": 1.0, "delay_ms": 20.0, "jitter_ms": 0.0, "rate_bps": 0, "queue": 100, "reorder": 0.0,
         "dup": 0.0, "corrupt": 0.0, "blackout_s": 0.0}



def replay(name: str, *, hold: bool = False) -> NdjsonReplay:
    return NdjsonReplay(FIXTURES / f"{name}.ndjson", speed=0, hold=hold)




class ListSource:
    """Emits ``events`` and holds (like a session still running) until asked to stop."""

    def __init__(self, events: list[Event]) -> None:
        self.events = events
        self.exhausted = threading.Event()

    def run(self, emit: Emit, stop: threading.Event) -> int:
        for ev in self.events:
            emit(ev)
        self.exhausted.set()
        stop.wait()
        return 0


class FakeLab:
    """Stands in for rawtui.lab.control.LabControl: records the calls (no socket)."""

    def __init__(self, path: str, *, fail: bool = False) -> None:
        self.path = path
        self.fail = fail
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.closed = False

    def set(self, dir: str = "down", note: str | None = None, **knobs: float) -> dict[str, Any]:
        if self.fail:
            raise RuntimeError("the lab control socket closed")
        self.calls.append(("set", {"dir": dir, **knobs}))
        return {}

    def blackout(self, seconds: float, dir: str = "both") -> dict[str, Any]:
        self.calls.append(("blackout", {"seconds": seconds, "dir": dir}))
        return {}

    def close(self) -> None:
        self.closed = True


def tcp_info(t: float, cwnd: int, ssthresh: int | None) -> ServerTcpInfo:
    return ServerTcpInfo(t, cwnd, ssthresh, 20.0, 2.0, 0, 0, 0, 1460)


# -- the model -----------------------------------------------------------------------------------------


def test_model_folds_the_servers_true_cwnd_and_the_lab_state() -> None:
    m = ViewModel(title=URL)
    before = dict(m.versions)
    m.apply_all([tcp_info(0.1, 14600, None), tcp_info(0.2, 29200, None), tcp_info(0.3, 14600, 14600)])
    g = m.graphs
    assert g.server_cwnd.xs == [0.1, 0.2, 0.3] and g.server_cwnd.ys == [14600, 29200, 14600]
    assert g.server_ssthresh.xs == [0.3] and g.server_ssthresh.ys == [14600]  # None: still in slow start
    assert m.versions["graphs"] > before["graphs"] and m.server_info is not None
    assert not m.lab_active
    m.apply(LabScenario(0.4, "timeout", "Timeout", "A blackout.", "the gap, then the retransmission"))
    m.apply(LabKnobs(0.5, dict(KNOBS), {}, "loss 1 (key)"))
    assert m.lab_active and m.versions["lab"] > before["lab"]
    assert m.lab_scenario is not None and m.lab_scenario.title == "Timeout"
    assert knobs_text(m.lab_knobs.down) == (  # type: ignore[union-attr]
        "loss 1%  delay 20 ms  rate unlimited  reorder 0%  dup 0%  corrupt 0%")
    assert "rate 20 Mbit/s" in knobs_text({"rate_bps": 20_000_000})
    assert "BLACKOUT 2.5 s" in knobs_text({"blackout_s": 2.5})


def https_session(*, verified: bool = True) -> list[Event]:
    tls = TlsInfo(0.080, "TLSv1.3", "TLS_AES_256_GCM_SHA384", "http/1.1", "CN=example.test", "CN=Test CA",
                  "2027-01-01 00:00:00", verified, 37.5)
    return [
        Route(0.001, "eth0", 2, "10.0.1.2", "02:00:0a:00:01:02", "10.0.2.2", "10.0.1.1", "10.0.1.1", 1500,
              "kernel route"),
        TcpState(0.002, "CLOSED", "SYN-SENT"),
        SegmentOut(0.002, 0, 0, "S", 64240, 0),
        SegmentIn(0.022, 0, 1, "SA", 65160, 0),
        TcpState(0.022, "SYN-SENT", "ESTABLISHED"),
        SegmentOut(0.0221, 1, 1, "A", 2048, 0),
        SegmentOut(0.0222, 1, 1, "PA", 2048, 300),  # ClientHello
        TlsRecord(0.0222, "out", "Handshake", 295),
        SegmentIn(0.045, 1, 301, "PA", 65160, 2500),  # ServerHello ... Finished
        TlsRecord(0.045, "in", "Handshake", 2495),
        SegmentOut(0.046, 301, 2501, "PA", 2048, 80),  # client Finished
        tls,
        SegmentOut(0.081, 381, 2501, "PA", 2048, 120),  # the GET, encrypted
        TlsRecord(0.081, "out", "ApplicationData", 115),
        SegmentIn(0.101, 2501, 501, "PA", 65160, 1400),
        HttpResponse(0.101, 200, "OK", 1_000_000),
        SegmentIn(0.102, 3901, 501, "A", 65160, 1400),
    ]


def test_model_draws_the_tls_handshake_on_the_ladder() -> None:
    m = ViewModel(title=HTTPS_URL)
    assert m.tls_pending
    m.apply_all(https_session())
    assert not m.tls_pending and m.tls is not None
    labels = [s.label for s in m.ladder]
    assert labels == ["SYN", "SYN,ACK", "ACK", "TLS ClientHello", "TLSv1.3 done 37.5 ms", "GET /big.bin",
                      "HTTP 200 OK", "data"]
    assert m.ladder[-1].count == 2  # the handshake flight is not counted as response data
    m2 = ViewModel(title=HTTPS_URL)
    m2.apply_all(https_session(verified=False))
    assert ("TLSv1.3 NOT VERIFIED", "red") in [(s.label, s.style) for s in m2.ladder]


# -- the app ---------------------------------------------------------------------------------------------


@sync
async def test_lab_demo_overlays_true_cwnd_and_shows_knobs_and_scenario() -> None:
    app = RawtuiApp(replay("lab_demo", hold=True), title=URL, lab_control=LAB_PATH)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        g = app.model.graphs
        assert len(g.server_cwnd) > 100 and len(g.server_ssthresh) > 0
        assert g.server_cwnd.xs[0] >= g.cwnd.xs[0]  # sampled during the transfer
        cwnd = app.query_one(CwndGraph)
        assert cwnd._legend is not None
        assert cwnd._legend.plain == "cwnd (kB) ours est. true ssthresh"
        lab = app.query_one(LabLine)
        assert lab.display and lab.size.height == 2
        text = screen_text(app)
        assert "LAB  Lossy long path · look for: the white line" in text
        assert "loss 2.2%  delay 10 ms  rate 10 Mbit/s  reorder 0%  dup 0%  corrupt 0.6%" in text
        # the knob keys are in the footer
        for key in ("Loss-", "Loss+", "Delay-", "Delay+", "Rate/2", "Blackout"):
            assert key in str(app.active_bindings), key
        assert app.check_action("lab_knob", ("loss", 1)) is True


@sync
async def test_without_the_lab_no_lab_line_and_no_knob_keys() -> None:
    app = RawtuiApp(replay("mid_download", hold=True), title=URL)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert not app.query_one(LabLine).display
        assert not app.model.graphs.server_cwnd.xs
        assert app.query_one(CwndGraph)._legend.plain == "cwnd (kB) ours server flight est."  # type: ignore[union-attr]
        assert app.check_action("lab_knob", ("loss", 1)) is False
        assert "Loss+" not in screen_text(app)
        await pilot.press("L")  # not bound without a lab: nothing happens
        await pilot.pause()
        assert not app.workers or all(w.group != "lab" for w in app.workers)


@sync
async def test_knob_keys_call_the_lab_control_from_a_worker() -> None:
    fakes: list[FakeLab] = []

    def factory(path: str) -> FakeLab:
        fakes.append(FakeLab(path))
        return fakes[-1]

    events: list[Event] = [LabKnobs(0.01, dict(KNOBS) | {"rate_bps": 20_000_000}, {}, "")]
    app = RawtuiApp(ListSource(events), title=URL, lab_control=LAB_PATH)
    app.lab_control_factory = factory
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        for key in ("L", "l", "D", "d", "r", "R", "b"):
            await pilot.press(key)
            await wait_for(lambda: not any(w.group == "lab" and w.is_running for w in app.workers), pilot)
        await wait_for(lambda: bool(fakes) and len(fakes[0].calls) == 7, pilot)
        assert len(fakes) == 1 and fakes[0].path == LAB_PATH  # one connection, reused
        assert fakes[0].calls == [
            ("set", {"dir": "down", "loss": 2.0}),  # from the knobs the lab reported: loss 1 %
            ("set", {"dir": "down", "loss": 0.0}),
            ("set", {"dir": "down", "delay_ms": 30.0}),
            ("set", {"dir": "down", "delay_ms": 10.0}),
            ("set", {"dir": "down", "rate_bps": 10_000_000}),
            ("set", {"dir": "down", "rate_bps": 40_000_000}),
            ("blackout", {"seconds": 3, "dir": "both"}),
        ]
    assert fakes[0].closed


@sync
async def test_knob_key_errors_are_notified_not_raised() -> None:
    app = RawtuiApp(ListSource([]), title=URL, lab_control=LAB_PATH)
    app.lab_control_factory = lambda path: FakeLab(path, fail=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("L")
        await wait_for(lambda: len(app._notifications) > 0, pilot)
        note = next(iter(app._notifications))
        assert "lab: loss 1 failed" in str(note.message) and note.severity == "error"
        assert app.is_running


@sync
async def test_https_header_shows_tls_and_certificate() -> None:
    app = RawtuiApp(ListSource(https_session()), title=HTTPS_URL)
    async with app.run_test(size=(140, 35)) as pilot:
        await settle(pilot)
        header = app.query_one(SessionHeader)
        assert header.size.height == 3
        text = screen_text(app)
        assert ("TLSv1.3 TLS_AES_256_GCM_SHA384 http/1.1 · handshake 37.5 ms · cert CN=example.test issued by "
                "CN=Test CA until 2027-01-01 00:00:00") in text
        assert "NOT VERIFIED" not in text
        assert "TLS ClientHello" in text and "TLSv1.3 done 37.5 ms" in text


@sync
async def test_https_header_flags_an_unverified_certificate() -> None:
    app = RawtuiApp(ListSource(https_session(verified=False)), title=HTTPS_URL)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        lines = screen_text(app).splitlines()
        assert lines[2].startswith(" NOT VERIFIED  TLSv1.3 TLS_AES_256_GCM_SHA384")


@sync
async def test_done_screen_says_what_you_saw_in_a_scenario() -> None:
    """The recorded fast-retransmit run ends on the summary with its scenario's "what you saw" numbers."""
    from rawtui.views.tui.screens import SummaryScreen

    app = RawtuiApp(replay("recorded/fast-retransmit"), title=URL)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)  # the replay ended: its done event pushed the summary
        assert isinstance(app.screen, SummaryScreen)
        text = screen_text(app)
        assert "What you saw" in text and "repaired by fast" in text, text
