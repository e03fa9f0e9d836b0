"""curl's options without a network: bad values (exit 2 naming the flag), the read-rate command through the
forked child, the live view's read-rate keys, retries in the ladder, and Retry-After."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from rawtui.download.forked import ForkedSource
from rawtui.events import Emit, Event, Info, RateLimit, Retry, TcpState
from rawtui.http.client import parse_retry_after
from rawtui.views.tui.app import RawtuiApp
from rawtui.views.tui.model import ViewModel
from rawtui.views.tui.testing import screen_text, settle, sync


@pytest.mark.parametrize(("args", "flag"), [
    (["--limit-rate", "2X"], "--limit-rate"),
    (["--limit-rate", "0"], "--limit-rate"),
    (["--retry", "-1"], "--retry"),
    (["--retry", "three"], "--retry"),
    (["--retry-delay", "soon"], "--retry-delay"),
    (["--retry-max-time", "-5"], "--retry-max-time"),
    (["--max-time", "abc"], "--max-time"),
    (["--connect-timeout", "nan"], "--connect-timeout"),
    (["--no-such-flag"], "--no-such-flag"),
    (["-o", "a", "-o", "b"], "-o"),
])
def test_bad_flags_are_exit_2_with_the_flags_name(args, flag):
    r = subprocess.run([sys.executable, "-m", "rawtui", *args, "http://10.77.2.2/x"], check=False,
                       capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rawtui: error: "), r.stderr  # one line, no usage dump
    assert flag in lines[0]


def test_retry_after_seconds_and_http_date():
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412490.0) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


class RateScript:
    """Runs in the forked child: waits for a rate command, tells it back, ends."""

    def __init__(self) -> None:
        self.rates: list[float | None] = []
        self.got = threading.Event()

    def set_limit_rate(self, rate: float | None) -> None:
        self.rates.append(rate)
        if len(self.rates) == 2:
            self.got.set()

    def run(self, emit: Emit, stop: threading.Event) -> int:
        if not self.got.wait(20):
            return 99
        emit(Info(0.0, f"rates {self.rates}"))
        return 0


def test_the_rate_reaches_the_forked_child():
    script = RateScript()
    forked = ForkedSource(script, set_rate=script.set_limit_rate)
    seen: list[Event] = []
    try:
        forked.set_rate(1.5 * (1 << 20))
        forked.set_rate(None)
        code = forked.run(seen.append, threading.Event())
    finally:
        forked.close()
    assert code == 0
    assert [e.message for e in seen if isinstance(e, Info)] == [f"rates {[1.5 * (1 << 20), None]}"]


class ListSource:
    def __init__(self, events: list[Event]) -> None:
        self.events = events
        self.exhausted = threading.Event()

    def run(self, emit: Emit, stop: threading.Event) -> int:
        for ev in self.events:
            emit(ev)
        self.exhausted.set()
        stop.wait()
        return 0


@sync
async def test_read_rate_keys_halve_and_double_the_limit():
    asked: list[float | None] = []
    events: list[Event] = [TcpState(0.01, "CLOSED", "ESTABLISHED"), RateLimit(0.02, 2 << 20, 512 << 10)]
    app = RawtuiApp(ListSource(events), title="http://10.77.2.2:8080/f.bin", on_set_rate=asked.append)
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        await pilot.press("minus")
        assert asked == [1 << 20]
        app.model.apply(RateLimit(0.5, 1 << 20, 512 << 10))  # what the child says back
        await pilot.press("plus")
        assert asked == [1 << 20, 2 << 20]


@sync
async def test_without_a_live_download_the_rate_keys_do_nothing():
    app = RawtuiApp(ListSource([TcpState(0.01, "CLOSED", "ESTABLISHED")]), title="replay")
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        await pilot.press("minus")
        assert "Read rate" not in screen_text(app)


def test_retries_are_steps_in_the_ladder():
    m = ViewModel(title="x")
    m.apply(Retry(2.5, 2, 4, 1.0, "connection reset by peer", "http://h/f", 0))
    m.apply(Retry(4.0, 3, 4, 2.0, "connection refused by 10.0.0.1:80", "http://h/f", 5000))
    labels = [s.label for s in m.ladder]
    assert labels[0] == "attempt 2/4 in 1 s, from zero: connection reset by peer"
    assert labels[1].startswith("attempt 3/4 in 2 s, from byte 5,000")
    assert len(m.retries) == 2
