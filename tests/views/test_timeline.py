"""The timeline (rawtui.views.tui.timeline): the view model at any event, rebuilt from checkpoints, equals
the model folded from the start; the compact history gives the events back; notable events and
explanations are found. No Textual."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path
from typing import Any

import pytest

from rawtui.events import Event, Explain, SegmentIn, SegmentOut
from rawtui.recording import load_events
from rawtui.recording.replay import Replay
from rawtui.views.tui.model import ViewModel
from rawtui.views.tui.timeline import Timeline, describe_event

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
TITLE = "http://10.77.2.2:8080/x"


def fingerprint(m: ViewModel) -> tuple[Any, ...]:
    """Everything a panel reads (not the version numbers, which count batches)."""
    g = m.graphs
    series = {f.name: (list(getattr(g, f.name).xs), list(getattr(g, f.name).ys)) for f in dataclasses.fields(g)}
    return (m.counters, [(s.t, s.direction, s.label, s.style, s.count) for s in m.ladder], series,
            list(m.packets), m.packet_count, m.t_last, m.phase, list(m.explanations), list(m.arp), m.window,
            m.progress, m.http, m.done, m.lab_knobs, m.lab_stats, m.server_info, m.router_drop, m.router_drops,
            dict(m.router_actions), len(m.lab_events), m.tcp_state, m.handshake, list(m.infos))


def folded(events: list[Event], n: int) -> ViewModel:
    m = ViewModel(title=TITLE)
    m.apply_all(events[:n])
    return m


def fed(events: list[Event], every: int, batch: int = 700, **kw: Any) -> tuple[Timeline, ViewModel]:
    tl = Timeline(every=every, **kw)
    live = ViewModel(title=TITLE)
    for k in range(0, len(events), batch):
        tl.feed(live, events[k:k + batch])
    return tl, live


@pytest.fixture(scope="module")
def recorded() -> list[Event]:
    return load_events(FIXTURES / "recorded" / "fast-retransmit.ndjson")


def test_the_live_model_is_the_same_with_or_without_the_timeline(recorded: list[Event]) -> None:
    tl, live = fed(recorded, every=2048)
    assert len(tl) == len(recorded) and tl.checkpoints == 1 + len(recorded) // 2048
    assert fingerprint(live) == fingerprint(folded(recorded, len(recorded)))


def test_events_come_back_as_they_were_fed(recorded: list[Event]) -> None:
    tl, _ = fed(recorded, every=1024)
    assert [tl.event(i) for i in range(len(tl))] == recorded
    assert sum(isinstance(e, (SegmentIn, SegmentOut)) for e in recorded) > len(recorded) // 2  # most kept compact
    assert len(tl._others) == sum(not isinstance(e, (SegmentIn, SegmentOut)) for e in recorded)


@pytest.mark.parametrize("every", [1024, 3072])
def test_state_at_any_event_equals_the_fold_from_the_start(recorded: list[Event], every: int) -> None:
    tl, _ = fed(recorded, every=every)
    rng = random.Random(7)
    n = len(recorded)
    # backwards event by event over a checkpoint, forwards, random jumps, the ends
    order = [*range(3100, 3060, -1), *range(40, 60), *(rng.randrange(n) for _ in range(25)), 0, n - 1, n - 2]
    for i in order:
        assert fingerprint(tl.state_at(i)) == fingerprint(folded(recorded, i + 1)), i


def test_checkpoints_stay_bounded(recorded: list[Event]) -> None:
    tl, _ = fed(recorded, every=1024, max_checkpoints=3)
    assert tl.checkpoints <= 3 and tl.every == 2048  # 6 checkpoints wanted at 1024: every other dropped
    for i in (0, 2047, 2048, 4100, len(recorded) - 1):
        assert fingerprint(tl.state_at(i)) == fingerprint(folded(recorded, i + 1)), i


def test_notable_events_and_their_explanations(recorded: list[Event]) -> None:
    tl, _ = fed(recorded, every=1024)
    kinds = {tl.event(i).type for i in tl.notable}
    assert {"peer_retransmit", "router_action", "done"} <= kinds
    explains = [i for i, e in enumerate(recorded) if isinstance(e, Explain)]
    assert explains and set(tl.explained.values()) <= set(explains)
    # every explanation is attached to a notable event at its own time, just before it
    for anchor, j in tl.explained.items():
        assert anchor in tl.notable and anchor <= j and recorded[anchor].t == recorded[j].t
    first = tl.next_notable(0)
    assert first is not None and tl.prev_notable(first) is None
    exp = tl.explanation(first)
    assert exp is not None and "14,670" in exp.text  # the first drop, seq 14,670
    # the fast retransmit of that segment, with its line
    resent = next(i for i in tl.notable if recorded[i].type == "peer_retransmit")
    line = tl.explanation(resent)
    assert line is not None and line.topic == "fast-retransmit"
    assert tl.next_notable(len(tl) - 1) is None


def test_index_at_a_time_and_packet_numbers(recorded: list[Event]) -> None:
    tl, live = fed(recorded, every=1024)
    i = tl.index_at(recorded[100].t)
    assert recorded[i].t == recorded[100].t and (i + 1 == len(recorded) or recorded[i + 1].t > recorded[100].t)
    assert tl.index_at(-1.0) == 0 and tl.index_at(1e9) == len(tl) - 1
    assert tl.packet_number(len(tl) - 1) == live.packet_count
    assert tl.state_at(100).packet_count == tl.packet_number(100)


def test_describe_event() -> None:
    assert describe_event(SegmentIn(1.0, 10, 1, "A", 100, 1448)).startswith("A   seq=10 ack=1")
    text = describe_event(load_events(FIXTURES / "recorded" / "timeout.ndjson")[-1])
    assert text.startswith("done ")


def test_a_bad_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="multiple"):
        Timeline(every=1000)


class _Events(Replay):
    def __init__(self, events: list[Event], speed: float) -> None:
        super().__init__(speed=speed)
        self._events = events

    def events(self):  # type: ignore[no-untyped-def]
        return iter(self._events)


def test_a_replay_follows_a_speed_change_while_it_runs() -> None:
    """Events 4 s apart (a gap a replay waits through) at a millionth of real time: the replay only ends
    because the speed becomes 0 (as fast as possible) after the first event: taken while it waits."""
    import threading

    replay = _Events([SegmentIn(float(i) * 4, i, 0, "A", 0, 0) for i in range(3)], speed=1e-6)
    got: list[Event] = []

    def emit(ev: Event) -> None:
        got.append(ev)
        replay.speed = 0.0

    assert replay.run(emit, threading.Event()) == 0 and len(got) == 3


def test_odd_segments_are_kept_as_they_came() -> None:
    """A segment whose fields do not fit the columns (a float length from a hand-made log, a flags string
    never seen) is kept as an event object; the rest of the batch is unchanged."""
    events: list[Event] = [SegmentIn(0.1, 1, 0, "A", 10, 1448), SegmentIn(0.2, 2, 0, "A", 10, 1.5),  # type: ignore[arg-type]
                           SegmentOut(0.3, 1, 3, "A", 0, 0), SegmentIn(0.4, 1 << 70, 0, "A", 10, 0)]
    events += [SegmentIn(0.5 + k / 1000, k, 0, f"F{k}", 10, 0) for k in range(300)]  # 300 distinct flags
    tl, _ = fed(events, every=1024, batch=3)
    assert [tl.event(i) for i in range(len(tl))] == events
    assert fingerprint(tl.state_at(len(events) - 1)) == fingerprint(folded(events, len(events)))
    assert 2 in tl.notable  # our zero window


def test_the_history_stops_at_max_events_and_the_live_model_goes_on(recorded: list[Event]) -> None:
    tl, live = fed(recorded, every=1024, max_events=2500)
    assert len(tl) == 2500 and tl.full and tl.checkpoints == 3
    assert fingerprint(live) == fingerprint(folded(recorded, len(recorded)))
    assert fingerprint(tl.state_at(2499)) == fingerprint(folded(recorded, 2500))
