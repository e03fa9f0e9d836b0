"""The live view's ticker (what just happened) and the ``explain`` lines every consumer gets: the Textual
app, the headless ``--explain`` output and the NDJSON log, from the recorded fast-retransmit scenario."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

from rawtui.analysis import Explain, Explained, Explainer
from rawtui.cli import run_source
from rawtui.events import Emit, Event
from rawtui.recording import NdjsonReplay, load_events
from rawtui.views.tui.app import RawtuiApp
from rawtui.views.tui.testing import screen_text, settle, sync
from rawtui.views.tui.widgets.ticker import ExplainTicker

ROOT = Path(__file__).resolve().parents[2]
RECORDING = ROOT / "tests" / "fixtures" / "recorded" / "v1" / "fast-retransmit.ndjson"
FIRST_FAST = ("Fast retransmit: the server resent seq 14,670 (1,448 bytes) after 6 duplicate ACKs, 11 ms after the "
              "hole opened")


class Prefix:
    """The recording up to a given event, then held open like a download still running."""

    def __init__(self, events: list[Event]) -> None:
        self.events = events
        self.exhausted = threading.Event()

    def run(self, emit: Emit, stop: threading.Event) -> int:
        for ev in self.events:
            emit(ev)
        self.exhausted.set()
        stop.wait()
        return 130


def up_to_first_fast_retransmit() -> list[Event]:
    events = load_events(RECORDING)
    x = Explainer()
    for i, ev in enumerate(events):
        if any(e.topic == "fast-retransmit" for e in x.feed(ev)):
            return events[: i + 1]
    raise AssertionError("no fast retransmit explained")


@sync
async def test_the_ticker_shows_the_fast_retransmit_as_it_happens() -> None:
    app = RawtuiApp(Explained(Prefix(up_to_first_fast_retransmit())), title="fast-retransmit")
    async with app.run_test(size=(120, 35)) as pilot:
        await settle(pilot)
        ticker = app.query_one(ExplainTicker)
        graphs = app.query_one("#graphs").region
        assert ticker.region.height == 1 and ticker.region.y == graphs.bottom  # right under the graphs
        lines = [line.strip() for line in screen_text(app).splitlines()]
        top = next(i for i, line in enumerate(lines) if "▸" in line)
        assert "0.169s ▸ " + FIRST_FAST[:60] in lines[top]  # told once the next event showed it was a resend
        assert app.model.explanations[-1].text.startswith(FIRST_FAST)
        app.stop_event.set()


@sync
async def test_the_ticker_after_the_whole_recording() -> None:
    app = RawtuiApp(Explained(NdjsonReplay(RECORDING, speed=0, hold=True)), title="fast-retransmit")
    async with app.run_test(size=(120, 45)) as pilot:  # tall: three lines
        await settle(pilot)
        assert app.query_one(ExplainTicker).region.height == 3
        texts = [e.text for e in app.model.explanations]
        assert any(t.startswith(FIRST_FAST) for t in texts)
        shown = str(app.query_one(ExplainTicker).render())  # the done summary covers the screen now
        assert len(shown.splitlines()) == 3 and shown.startswith("  0.354s ▸ 3rd recovery ended")
        assert "11 more fast retransmits" in shown and "(14 in all)" in shown
        app.stop_event.set()


def test_headless_explain_prints_the_lines() -> None:
    res = subprocess.run([sys.executable, "-m", "rawtui", "replay", str(RECORDING), "--speed", "0", "--headless",
                          "--explain"], capture_output=True, text=True, cwd=ROOT, timeout=60, check=False)
    assert res.returncode == 0, res.stderr
    assert FIRST_FAST in " ".join(res.stderr.split())  # rich may wrap a long line
    assert "0.169 s" in res.stderr  # told when the next event showed it was a resend
    quiet = subprocess.run([sys.executable, "-m", "rawtui", "replay", str(RECORDING), "--speed", "0", "--headless"],
                           capture_output=True, text=True, cwd=ROOT, timeout=60, check=False)
    assert "Fast retransmit" not in quiet.stderr


def test_the_ndjson_log_gets_explain_lines_once(tmp_path: Path) -> None:
    first, second = tmp_path / "first.ndjson", tmp_path / "second.ndjson"
    assert run_source(NdjsonReplay(RECORDING, speed=0), headless=True, quiet=True, events_path=str(first)) == 0
    lines = [json.loads(line) for line in first.read_text().splitlines()]
    explained = [d for d in lines if d["type"] == "explain"]
    assert any(d["topic"] == "fast-retransmit" and d["text"].startswith(FIRST_FAST) and d["seq"] == 14_670
               for d in explained)
    assert lines[-1]["type"] == "done"
    # replaying a log that has them already: the same lines, not twice as many
    assert run_source(NdjsonReplay(first, speed=0), headless=True, quiet=True, events_path=str(second)) == 0
    again = [json.loads(line) for line in second.read_text().splitlines()]
    assert [d for d in again if d["type"] == "explain"] == explained
    assert sum(isinstance(e, Explain) for e in load_events(first)) == len(explained)  # read back as events
