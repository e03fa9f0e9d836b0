"""The NDJSON replay source: pacing, stop, exit codes, bad input."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from rawtui.errors import EXIT_INTERRUPTED, EXIT_LINK, UsageError
from rawtui.events import Done, Error, Event, Handshake, to_dict
from rawtui.recording import NdjsonReplay, load_events, open_replay

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def run(src: NdjsonReplay, stop: threading.Event | None = None) -> tuple[int, list[Event]]:
    got: list[Event] = []
    code = src.run(got.append, stop or threading.Event())
    return code, got


def test_fixtures_are_labelled_synthesized() -> None:
    fixtures = sorted(FIXTURES.glob("*.ndjson"))
    assert fixtures, f"no fixtures in {FIXTURES}"
    for p in fixtures:
        assert p.read_text().startswith("# SYNTHESIZED"), p


def test_replays_every_event_in_order_and_returns_done_code() -> None:
    src = NdjsonReplay(FIXTURES / "complete_download.ndjson", speed=0)
    code, got = run(src)
    assert code == 0
    assert isinstance(got[-1], Done)
    assert got == load_events(FIXTURES / "complete_download.ndjson")
    assert [e.t for e in got] == sorted(e.t for e in got)
    assert src.exhausted.is_set() and src.emitted == len(got)


def test_error_stream_returns_the_error_code() -> None:
    code, got = run(NdjsonReplay(FIXTURES / "error_arp_timeout.ndjson", speed=None))
    assert code == EXIT_LINK and isinstance(got[-1], Error)


def test_roundtrip_of_handshake_with_boolean_sack(tmp_path: Path) -> None:
    hs = Handshake(0.5, 40000, 80, 1, 2, 1460, 1460, 7, None, True, False, 12.5)
    p = tmp_path / "e.ndjson"
    p.write_text(json.dumps(to_dict(hs)) + "\n\n# comment\n")
    assert load_events(p) == [hs]


def test_speed_scales_time(tmp_path: Path) -> None:
    # the error stream spans 3.0 s of event time: at speed 30 it takes ~0.1 s
    t0 = time.monotonic()
    code, _ = run(NdjsonReplay(FIXTURES / "error_arp_timeout.ndjson", speed=30))
    took = time.monotonic() - t0
    assert code == EXIT_LINK
    # At least the scaled 0.1 s (the replay sleeps); well under the unscaled 3.0 s, with room for a
    # loaded machine: the point is that the speed scales time, not how fast this machine is.
    assert 0.08 <= took < 1.5


def test_stop_is_honoured_promptly() -> None:
    stop = threading.Event()
    src = NdjsonReplay(FIXTURES / "error_arp_timeout.ndjson", speed=1)
    threading.Timer(0.2, stop.set).start()
    t0 = time.monotonic()
    code, got = run(src, stop)
    assert code == EXIT_INTERRUPTED
    assert len(got) < 7 and not src.exhausted.is_set()  # stopped before the stream's end: counted
    assert time.monotonic() - t0 < 2.0  # and well before its 3.0 s at speed 1 (wide: a loaded machine)


def test_hold_waits_for_stop_after_the_last_event() -> None:
    stop = threading.Event()
    src = NdjsonReplay(FIXTURES / "arp_in_progress.ndjson", speed=0, hold=True)
    result: list[int] = []
    th = threading.Thread(target=lambda: result.append(src.run(lambda e: None, stop)))
    th.start()
    assert src.exhausted.wait(2)
    assert th.is_alive()
    stop.set()
    th.join(2)
    assert result == [0]


def test_bad_input(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        NdjsonReplay(tmp_path / "missing.ndjson")
    bad = tmp_path / "bad.ndjson"
    bad.write_text('{"t": 0, "type": "nonsense"}\n')
    with pytest.raises(UsageError, match="bad.ndjson:1"):
        load_events(bad)
    with pytest.raises(UsageError, match="no such file|cannot read"):
        open_replay(tmp_path / "x.pcap")
    with pytest.raises(UsageError):
        NdjsonReplay(FIXTURES / "arp_in_progress.ndjson", speed=-1)
    assert isinstance(open_replay(FIXTURES / "arp_in_progress.ndjson"), NdjsonReplay)
