"""rawtui.download.forked: a source run in a forked child, its events back over a pipe (no root, no network)."""

from __future__ import annotations

import os
import threading
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rawtui.download.forked import ForkedSource
from rawtui.download.session import coalesce
from rawtui.errors import RawtuiError
from rawtui.events import Done, Info, SegmentIn


class Script:
    """A source that emits ``n`` segment events and a Done, or waits for stop; runs in the child."""

    def __init__(self, n: int = 3, wait_for_stop: bool = False, code: int = 0, raises: bool = False) -> None:
        self.n, self.wait_for_stop, self.code, self.raises = n, wait_for_stop, code, raises
        self.saved = 0

    def run(self, emit, stop) -> int:
        emit(Info(0.0, f"child {os.getpid()}"))
        for i in range(self.n):
            emit(SegmentIn(0.001 * i, i, 0, "A", 1000, 1448))
        if self.raises:
            raise ValueError("boom")
        if self.wait_for_stop:
            if not stop.wait(20):
                return 99
            emit(Info(1.0, "stopped"))
            return 130
        emit(Done(1.0, self.n, "x" * 64, 1.0, "/tmp/x", {}))
        return self.code

    def save_pcap(self) -> str:
        self.saved += 1
        return f"/tmp/saved-{os.getpid()}-{self.saved}.pcap"


def collect(src: ForkedSource, stop: threading.Event | None = None) -> tuple[int, list]:
    got: list = []
    code = src.run(got.append, stop or threading.Event())
    return code, got


def test_events_come_back_in_order_from_another_process_and_the_exit_code() -> None:
    src = ForkedSource(Script(n=5000, code=7))
    code, got = collect(src)
    assert code == 7 and src.close() == 7
    assert got[0].message != f"child {os.getpid()}"  # it ran in the child
    assert [e.seq for e in got if isinstance(e, SegmentIn)] == list(range(5000))
    assert isinstance(got[-1], Done)


def test_stop_reaches_the_child_and_it_ends_cleanly() -> None:
    src = ForkedSource(Script(n=0, wait_for_stop=True))
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    t0 = time.monotonic()
    code, got = collect(src, stop)
    assert code == 130 and time.monotonic() - t0 < 5
    assert got[-1].message == "stopped"
    assert src.close() == 130


def test_closing_the_parent_side_stops_a_running_child() -> None:
    src = ForkedSource(Script(n=0, wait_for_stop=True))
    time.sleep(0.2)
    assert src.close() == 130  # the command pipe closed: the child stopped its source and exited


def test_save_pcap_is_answered_by_the_child_even_after_the_download() -> None:
    script = Script(n=2)
    src = ForkedSource(script, save_pcap=script.save_pcap)
    code, _ = collect(src)
    assert code == 0
    first = src.save_pcap()
    assert first.startswith("/tmp/saved-") and f"-{os.getpid()}-" not in first  # the child's pid
    assert src.save_pcap().endswith("-2.pcap")  # the child's state: it is still there
    assert src.close() == 0
    with pytest.raises(RawtuiError):
        src.save_pcap()


def test_without_kept_frames_save_pcap_says_so() -> None:
    src = ForkedSource(Script(n=1))
    collect(src)
    with pytest.raises(RawtuiError):
        src.save_pcap()
    src.close()


def test_an_exception_in_the_child_is_one_error_event_and_exit_1() -> None:
    src = ForkedSource(Script(n=1, raises=True))
    code, got = collect(src)
    assert code == 1 and got[-1].type == "error" and "ValueError: boom" in got[-1].message
    src.close()


@given(st.lists(st.binary(max_size=3000), max_size=40), st.integers(min_value=1, max_value=10_000))
def test_coalesce_keeps_the_bytes_and_bounds_the_chunks(pieces: list[bytes], limit: int) -> None:
    out = coalesce(pieces, limit)
    assert b"".join(out) == b"".join(pieces)
    assert len(out) <= len(pieces)
    for chunk in out:
        assert len(chunk) <= limit or chunk in pieces


def _recorded_events() -> list:
    from pathlib import Path

    from rawtui.recording import load_events

    fixtures = Path(__file__).resolve().parents[1] / "fixtures"
    return [ev for path in sorted([*fixtures.glob("*.ndjson"), *fixtures.glob("recorded/*.ndjson")])
            for ev in load_events(path)]


def test_every_event_crosses_the_pipe_as_a_tuple_and_comes_back_equal() -> None:
    """The child sends (class number, field values); the parent rebuilds the very same events."""
    import pickle

    from rawtui.download.forked import CODEC
    from rawtui.events import EVENT_TYPES

    assert all(CODEC.encodes(cls) for cls in EVENT_TYPES.values())  # none travels as a pickled object
    events = _recorded_events()
    assert len({type(ev) for ev in events}) >= 20
    for ev in events:
        sent = CODEC.encode(ev)
        assert type(sent) is tuple and type(sent[0]) is int
        back = CODEC.decode(pickle.loads(pickle.dumps(sent)))
        assert type(back) is type(ev) and back == ev
        assert CODEC.time(sent) == ev.t
    assert CODEC.decode(("exit", 3)) == ("exit", 3)  # the child's messages pass as they are


def test_a_view_far_behind_loses_segment_events_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nobody reads the pipe while the child emits: past MAX_BACKLOG the per-segment events are dropped,
    every other event still arrives, in order."""
    from rawtui.download import forked

    monkeypatch.setattr(forked, "MAX_BACKLOG", 20_000)
    r, w = os.pipe()
    out = forked._Outbox(w)
    sent = 0
    for i in range(20):
        out.emit(Info(float(i), f"note {i}"))
        for j in range(500):
            out.emit(SegmentIn(i + j * 1e-4, sent, 0, "A", 1000, 1448))
            sent += 1
    src = ForkedSource.__new__(ForkedSource)
    src._buf = bytearray()
    got: list = []
    reader = threading.Thread(target=lambda: got.extend(_read_all(r)))
    reader.start()
    out.close(5.0)
    os.close(w)
    reader.join(10)
    src._buf += b"".join(got)
    events = src._messages()
    notes = [e.message for e in events if isinstance(e, Info) and e.message.startswith("note")]
    assert notes == [f"note {i}" for i in range(20)]
    seqs = [e.seq for e in events if isinstance(e, SegmentIn)]
    assert seqs == sorted(seqs) and 0 < len(seqs) < sent


def _read_all(fd: int) -> list[bytes]:
    chunks = []
    while True:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            os.close(fd)
            return chunks
        chunks.append(chunk)
