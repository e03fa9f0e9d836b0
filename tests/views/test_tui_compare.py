"""The ``rawtui demo --compare`` screen and the numbers under it, from real per-algorithm recordings (no lab
needed): ``tests/fixtures/recorded/compare/bufferbloat-{reno,cubic,bbr}.ndjson``, made with ``sudo rawtui
demo --compare reno,cubic,bbr --scenario bufferbloat --fast --headless --seed 7 --events bb.ndjson`` and
kept to the event types the comparison reads (handshake, progress, done, server_tcp_info, lab_*).
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import DataTable, Static

from rawtui.analysis.compare import CompareCurves, curves_of, read_compare_csv, write_compare_csv
from rawtui.errors import OutputError
from rawtui.lab.compare import compare_table, parse_cc_list, run_metrics
from rawtui.lab.scenarios import SCENARIOS, load_events
from rawtui.recording import NdjsonReplay
from rawtui.views.tui.app import RawtuiApp
from rawtui.views.tui.compare import CompareApp, CompareGraph, moving_mean
from rawtui.views.tui.testing import screen_text, settle, sync

RECORDED = Path(__file__).resolve().parents[1] / "fixtures" / "recorded" / "compare"
CCS = ("reno", "cubic", "bbr")
TITLE = "scenario bufferbloat: server->client: rate 10 Mbit/s, queue 200 frames, delay 10 ms"


def recorded() -> list[CompareCurves]:
    return [curves_of(cc, load_events(str(RECORDED / f"bufferbloat-{cc}.ndjson"))) for cc in CCS]


def verdict(runs: list[CompareCurves]) -> list[str]:
    scenario = SCENARIOS["bufferbloat"]
    assert scenario.compare is not None
    findings = scenario.compare({r.cc: r.metrics for r in runs})
    assert findings is not None
    failures, evidence = findings
    return [f"      {line}" for line in evidence] + [f"FAIL  bufferbloat: {f}" for f in failures] + (
        [] if failures else [f"PASS  bufferbloat: {scenario.compare_look_for}"])


def compare_app() -> CompareApp:
    runs = recorded()
    return CompareApp(runs, TITLE, verdict(runs))


# ---------------------------------------------------------------------------------------------------
# the numbers


def test_recorded_runs_say_their_algorithm_and_the_lesson() -> None:
    runs = {r.cc: r.metrics for r in recorded()}
    for cc, m in runs.items():
        assert m.cc_seen == cc and m.complete and m.bytes == 4 << 20
        assert m.rtt_samples > 300 and 10 < m.min_rtt_ms < 13  # the path: 10 ms of delay
    assert runs["reno"].retrans == runs["reno"].router_drops == 212  # reno overflowed the 200-frame queue
    assert runs["bbr"].retrans == 0 and runs["bbr"].queue_max < 50
    assert runs["bbr"].rtt_mean_ms * 5 < runs["cubic"].rtt_mean_ms  # 22 ms against 140 ms
    assert verdict(recorded())[-1].startswith("PASS")


def test_the_compare_check_fails_when_bbr_queues_as_much() -> None:
    scenario = SCENARIOS["bufferbloat"]
    assert scenario.compare is not None
    runs = {r.cc: r.metrics for r in recorded()}
    runs["bbr"] = run_metrics("bbr", load_events(str(RECORDED / "bufferbloat-cubic.ndjson")))  # cubic's numbers
    findings = scenario.compare(runs)
    assert findings is not None and len(findings[0]) == 2  # neither reno nor cubic 2x above
    assert scenario.compare({"reno": runs["reno"], "cubic": runs["cubic"]}) is None  # no bbr: nothing to say


def test_random_loss_compare_check() -> None:
    scenario = SCENARIOS["random-loss"]
    assert scenario.compare is not None
    base = run_metrics("reno", load_events(str(RECORDED / "bufferbloat-reno.ndjson")))
    fast = replace(base, cc="bbr", goodput_bps=base.goodput_bps * 1.6)
    slow = replace(base, cc="bbr", goodput_bps=base.goodput_bps * 1.4)
    assert scenario.compare({"reno": base, "bbr": fast}) == ([], [
        f"reno: {base.goodput_bps / 1e6:.1f} Mbit/s, 212 frames lost at the router, 212 retransmitted",
        f"bbr: {fast.goodput_bps / 1e6:.1f} Mbit/s, 212 frames lost at the router, 212 retransmitted",
        "bbr's goodput is 1.6 times reno's"])
    failures, _ = scenario.compare({"reno": base, "bbr": slow}) or ([], [])
    assert failures and "is not 1.5 times reno's" in failures[0]
    assert scenario.compare({"reno": base, "cubic": base}) is None


def test_table_text() -> None:
    text = compare_table([r.metrics for r in recorded()])
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["cc", "goodput", "time"] and set(lines[1]) <= {"-", " "}
    assert [line.split()[0] for line in lines[2:]] == list(CCS)
    assert "22.1 ms" in lines[4] and "212" in lines[2]


def test_parse_cc_list() -> None:
    assert parse_cc_list("Reno, cubic,bbr") == ["reno", "cubic", "bbr"]
    for bad in ("reno", "reno,westwood", "cubic,cubic", ""):
        with pytest.raises(ValueError):
            parse_cc_list(bad)


def test_compare_csv_round_trip(tmp_path: Path) -> None:
    runs = recorded()
    path = tmp_path / "c.csv"
    write_compare_csv(str(path), runs)
    back = read_compare_csv(str(path))
    assert list(back) == list(CCS)
    for run in runs:
        assert len(back[run.cc]) == len(run.rows)
        assert [r["server_cwnd"] for r in back[run.cc]] == [None if v is None else float(v) for v in
                                                            (row[3] for row in run.rows)]
    assert [p.name for p in tmp_path.iterdir()] == ["c.csv"]  # no temporary file left
    with pytest.raises(OutputError):
        write_compare_csv(str(tmp_path / "no" / "such" / "dir.csv"), runs)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_compare_csv_unwritable(tmp_path: Path) -> None:
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(OutputError):
            write_compare_csv(str(tmp_path / "c.csv"), recorded())
    finally:
        tmp_path.chmod(0o700)


def test_moving_mean() -> None:
    assert moving_mean([2, 4, 6, 8], 2) == [2, 3, 5, 7]
    assert moving_mean([1, 2], 1) == [1, 2]


# ---------------------------------------------------------------------------------------------------
# the screen


@sync
async def test_compare_screen() -> None:
    app = compare_app()
    async with app.run_test(size=(120, 35)) as pilot:
        await pilot.pause()
        table = app.query_one(DataTable)
        assert table.row_count == 3
        assert [str(table.get_row_at(i)[0]) for i in range(3)] == list(CCS)
        assert "22.1 ms" in str(table.get_row_at(2)[4])  # bbr's mean RTT
        title = str(app.query_one("#title", Static).render())
        assert all(cc in title for cc in CCS) and "queue 200 frames" in title
        graphs = list(app.query(CompareGraph))
        assert [g.column for g in graphs] == ["server_cwnd", "server_rtt_ms", "throughput_bps"]
        for g in graphs:
            drawn = str(g.render())
            assert any(0x2800 < ord(ch) <= 0x28FF for ch in drawn)  # braille: the curves are there
        assert "PASS  bufferbloat" in str(app.query_one("#verdict", Static).render())
        await pilot.press("q")
    assert app.return_code == 0


def test_compare_snapshot(snap_compare: Any) -> None:
    """The bufferbloat comparison: reno and cubic's RTT climbing with the queue, bbr's flat."""
    assert snap_compare(compare_app(), terminal_size=(120, 35))


@sync
async def test_live_view_names_the_servers_algorithm(tmp_path: Path) -> None:
    """``rawtui demo --cc bbr``: the header and the knob strip say what the server's TCP_INFO says."""
    lines = []
    for line in (RECORDED.parent.parent / "lab_demo.ndjson").read_text().splitlines():
        if line.startswith("{") and '"server_tcp_info"' in line:
            line = json.dumps({**json.loads(line), "cc": "bbr"})
        lines.append(line)
    path = tmp_path / "lab.ndjson"
    path.write_text("\n".join(lines) + "\n")
    app = RawtuiApp(NdjsonReplay(path, speed=0, hold=True), title="rawtui demo --cc bbr",
                    lab_control="/tmp/rawtui-demo/control.sock")
    async with app.run_test(size=(120, 35)) as pilot:
        await settle(pilot)
        text = screen_text(app)
        assert " server bbr " in text.splitlines()[0]  # the header's first line
        assert "server cc bbr  loss 2.2%" in text  # the knob strip
