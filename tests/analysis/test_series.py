"""``--series``: the time series at a fixed step, from a recorded lab run and through the CLI (replay)."""

from __future__ import annotations

import csv
import itertools
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import child_env

from rawtui.analysis.series import COLUMNS, SeriesWriter, TimeSeries
from rawtui.events import DupData, PeerRetransmit, SegmentIn, ServerTcpInfo, Window
from rawtui.recording import load_events

RECORDED = Path(__file__).resolve().parents[1] / "fixtures" / "recorded" / "v1" / "fast-retransmit.ndjson"


def _series(step: float) -> tuple[TimeSeries, list]:
    events = load_events(RECORDED)
    ts = TimeSeries(step)
    for ev in events:
        ts(ev)
    return ts, events


def test_rows_at_the_step_from_the_recorded_fast_retransmit() -> None:
    ts, events = _series(0.01)
    rows = [dict(zip(COLUMNS, r, strict=True)) for r in ts.rows()]
    ts_ = [r["t"] for r in rows]
    assert all(b > a for a, b in itertools.pairwise(ts_))
    assert all(abs((b - a) - 0.01) < 1e-9 for a, b in itertools.pairwise(ts_))
    assert ts_[0] <= events[0].t + 0.01 and ts_[-1] >= events[-1].t
    payload = sum(ev.length for ev in events if isinstance(ev, SegmentIn))
    assert rows[-1]["bytes"] == payload == 4_194_493
    assert sum(r["throughput_bps"] for r in rows) * 0.01 == pytest.approx(payload)
    assert max(r["throughput_bps"] for r in rows) > 10e6  # bytes/s: a 0.3 s transfer, tens of MB/s at its peak
    # columns are empty until known, then filled
    first_window = min(ev.t for ev in events if isinstance(ev, Window))
    first_info = min(ev.t for ev in events if isinstance(ev, ServerTcpInfo))
    for r in rows:
        assert (r["rwnd"] is not None) == (r["t"] >= first_window)
        assert (r["server_cwnd"] is not None) == (r["t"] >= first_info)
        assert r["server_ssthresh"] is None or r["server_ssthresh"] > 0
    samples = [ev for ev in events if isinstance(ev, ServerTcpInfo)]
    assert rows[-1]["server_cwnd"] == samples[-1].cwnd_bytes
    assert rows[-1]["server_retrans_total"] == samples[-1].retrans_total == 14
    # without classified retransmissions: the segments that filled a hole, and the duplicates
    fills = sum(1 for ev in events if isinstance(ev, SegmentIn) and ev.note == "fill" and ev.length)
    dups = sum(1 for ev in events if isinstance(ev, DupData))
    assert rows[-1]["server_retransmits"] == fills + dups
    counts = [r["server_retransmits"] for r in rows]
    assert counts == sorted(counts)


def test_classified_retransmissions_are_counted_when_the_stream_has_them() -> None:
    ts = TimeSeries(0.1)
    ts(SegmentIn(0.05, 0, 1, "A", 65535, 1000))
    ts(PeerRetransmit(0.15, 0, 1000, "fast", 20.0, 3))
    ts(SegmentIn(0.15, 0, 1, "A", 65535, 1000, note="fill"))
    ts(PeerRetransmit(0.42, 1000, 1000, "timeout", 400.0))
    rows = ts.rows()
    assert [r[0] for r in rows] == [0.1, 0.2, 0.3, 0.4, 0.5]
    assert [r[COLUMNS.index("server_retransmits")] for r in rows] == [0, 1, 1, 1, 2]
    assert [r[COLUMNS.index("throughput_bps")] for r in rows] == [10_000.0, 10_000.0, 0.0, 0.0, 0.0]


def test_the_writer_renames_a_whole_file(tmp_path: Path) -> None:
    out = tmp_path / "s.csv"
    w = SeriesWriter(str(out), 0.05)
    for ev in load_events(RECORDED):
        w(ev)
    assert not out.exists()  # nothing under the name before it is complete
    w.close()
    with out.open() as f:
        rows = list(csv.reader(f))
    assert tuple(rows[0]) == COLUMNS
    assert list(tmp_path.iterdir()) == [out]


def test_replay_writes_the_series(tmp_path: Path) -> None:
    out = tmp_path / "series.csv"
    res = subprocess.run([sys.executable, "-m", "rawtui", "replay", str(RECORDED), "--headless", "--speed", "0",
                          "--series", str(out), "--series-step", "0.02"],
                         capture_output=True, text=True, timeout=120, env=child_env(), check=False)
    assert res.returncode == 0, res.stderr[-2000:]
    with out.open() as f:
        rows = list(csv.DictReader(f))
    ts, _ = _series(0.02)
    want = ts.rows()
    assert len(rows) == len(want) > 10
    assert [float(r["t"]) for r in rows] == [w[0] for w in want]
    assert int(rows[-1]["bytes"]) == 4_194_493 and rows[-1]["server_cwnd"] and rows[0]["server_cwnd"] == ""
