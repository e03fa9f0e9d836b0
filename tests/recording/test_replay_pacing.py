"""A paced replay keeps the recording's time but does not wait through idle gaps (a capture whose clock
jumped by years must still end); an unpaced one (``--headless``) never waits. A fake clock counts the
waiting: nothing here depends on how fast the machine is."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from rawtui.events import Event, Info, Progress
from rawtui.recording import replay as replay_mod
from rawtui.recording.replay import IDLE_KEEP_S, Replay, describe_gap

YEAR = 365.25 * 86400


class Recorded(Replay):
    def __init__(self, times: list[float], speed: float | None) -> None:
        super().__init__(speed=speed)
        self.times = times

    def events(self) -> Iterator[Event]:
        for t in self.times:
            yield Progress(t, int(t), None, 0.0)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.waited = 0.0

    def monotonic(self) -> float:
        return self.now


class FakeStop(threading.Event):
    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self.clock = clock

    def wait(self, timeout: float | None = None) -> bool:
        assert timeout is not None
        self.clock.now += timeout
        self.clock.waited += timeout
        return False


def run(times: list[float], speed: float | None, monkeypatch: pytest.MonkeyPatch) -> tuple[FakeClock, list[Event]]:
    clock = FakeClock()
    monkeypatch.setattr(replay_mod, "time", clock)
    got: list[Event] = []
    assert Recorded(times, speed).run(got.append, FakeStop(clock)) == 0
    return clock, got


def test_a_jump_of_years_is_compressed_and_said(monkeypatch: pytest.MonkeyPatch) -> None:
    times = [0.0, 1.0, 1.0 + 3 * YEAR, 1.5 + 3 * YEAR, 3.5 + 3 * YEAR]
    clock, got = run(times, 1.0, monkeypatch)
    notes = [e.message for e in got if isinstance(e, Info)]
    assert notes == [f"idle 3 years compressed to {IDLE_KEEP_S:g} s"]
    assert [e.t for e in got if isinstance(e, Progress)] == times
    assert clock.waited == pytest.approx(1.0 + IDLE_KEEP_S + 0.5 + 2.0, abs=1e-6)  # gaps of 2 s are kept


def test_speed_scales_what_is_left(monkeypatch: pytest.MonkeyPatch) -> None:
    clock, got = run([0.0, 4.0, 64.0], 2.0, monkeypatch)
    assert [e.message for e in got if isinstance(e, Info)] == ["idle 60 s compressed to 1 s"]
    assert clock.waited == pytest.approx(2.0 + 0.5, abs=1e-6)


@pytest.mark.parametrize("speed", [0.0, None])
def test_as_fast_as_possible_never_waits(speed: float | None, monkeypatch: pytest.MonkeyPatch) -> None:
    clock, got = run([0.0, 1.0, 1.0 + 3 * YEAR], speed, monkeypatch)
    assert clock.waited == 0 and not [e for e in got if isinstance(e, Info)]


def test_describe_gap() -> None:
    assert [describe_gap(s) for s in (6, 150, 3 * 3600, 5 * 86400, 3 * YEAR)] == [
        "6 s", "2 min", "3 h", "5 days", "3 years"]
