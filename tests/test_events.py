"""The event stream's NDJSON form round-trips every event type.

The types are enumerated from ``rawtui.events`` itself, so a new event class that is not registered,
or whose fields do not survive the NDJSON writer and reader, fails here without anyone editing this file.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import types
import typing
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rawtui import events as E
from rawtui.recording import load_events
from rawtui.views.ndjson import NdjsonWriter

# Every Event subclass the module defines (not the registry: a class missing from it is what we look for).
ALL_TYPES: list[type[E.Event]] = sorted(
    (obj for obj in vars(E).values() if isinstance(obj, type) and issubclass(obj, E.Event) and obj is not E.Event),
    key=lambda cls: cls.__name__,
)


def _hints(cls: type[E.Event]) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.name != "t"}


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _sample(hint: Any, seed: int) -> Any:
    """A value of type ``hint`` that is no field's default (non-zero, non-empty, not None, not first)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        (inner,) = [a for a in args if a is not type(None)]
        return _sample(inner, seed)
    if hint is bool:
        return True
    if hint is int:
        return 1000 + seed
    if hint is float:
        return 12.25 + seed
    if hint is str:
        return f"v{seed} é→✓ \"quoted\"\n"
    if isinstance(hint, type) and issubclass(hint, enum.Enum):  # State, Medium...: not the first member
        members = list(hint)
        return members[1 + seed % (len(members) - 1)]
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return tuple(_sample(args[0], seed + i) for i in range(2))
    if origin is tuple:
        return tuple(_sample(a, seed + i) for i, a in enumerate(args))
    if origin is list:
        return [_sample(args[0], seed + i) for i in range(2)]
    if origin is dict:
        return {f"k{i}": _sample(args[1], seed + i) for i in range(2)}
    raise TypeError(f"no sample value for {hint!r}: teach _sample (and to_dict/from_dict?) this type")


def build(cls: type[E.Event]) -> E.Event:
    """An instance with every field set to a value other than its default."""
    hints = _hints(cls)
    kwargs = {name: _sample(hint, i) for i, (name, hint) in enumerate(hints.items())}
    ev = cls(t=1.234567, **kwargs)
    for f in dataclasses.fields(cls):
        default = _default(f)
        assert default is dataclasses.MISSING or getattr(ev, f.name) != default, (cls.__name__, f.name)
    return ev


def _round_trip(evs: list[E.Event], path: Path) -> list[E.Event]:
    writer = NdjsonWriter(str(path))
    for ev in evs:
        writer(ev)
    writer.close()
    return load_events(path)  # the reader `rawtui replay` uses


def test_the_module_defines_the_types_we_expect() -> None:
    assert len(ALL_TYPES) >= 27  # the count when this test was written: the enumeration is not empty
    assert {E.Handshake, E.SegmentIn, E.ServerTcpInfo, E.LabScenario} <= set(ALL_TYPES)


def test_every_type_is_registered_under_its_own_name() -> None:
    assert set(E.EVENT_TYPES.values()) == set(ALL_TYPES), "an Event class missing from EVENT_TYPES"
    assert len(E.EVENT_TYPES) == len(ALL_TYPES), "two Event classes share one NDJSON type name"
    for name, cls in E.EVENT_TYPES.items():
        assert cls.type == name


@pytest.mark.parametrize("cls", ALL_TYPES, ids=lambda cls: cls.__name__)
def test_every_type_round_trips_through_the_ndjson_log(cls: type[E.Event], tmp_path: Path) -> None:
    ev = build(cls)
    (back,) = _round_trip([ev], tmp_path / "events.ndjson")
    assert type(back) is cls
    assert back == ev
    for f in dataclasses.fields(cls):  # same values *and* same container types (tuples stay tuples)
        assert type(getattr(back, f.name)) is type(getattr(ev, f.name)), f.name


def test_a_log_of_every_type_reads_back_in_order(tmp_path: Path) -> None:
    evs = [build(cls) for cls in ALL_TYPES]
    path = tmp_path / "events.ndjson"
    assert _round_trip(evs, path) == evs
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["type"] for line in lines] == [cls.type for cls in ALL_TYPES]


# -- the same with values hypothesis chooses --------------------------------------------------------


def _strategy(hint: Any) -> st.SearchStrategy[Any]:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return st.one_of(*(st.none() if a is type(None) else _strategy(a) for a in args))
    if hint is float:  # JSON has no NaN (and NaN != NaN)
        return st.floats(allow_nan=False, allow_infinity=False)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return st.lists(_strategy(args[0]), max_size=4).map(tuple)
    if origin is tuple:
        return st.tuples(*map(_strategy, args))
    if origin is list:
        return st.lists(_strategy(args[0]), max_size=4)
    if origin is dict:
        return st.dictionaries(_strategy(args[0]), _strategy(args[1]), max_size=4)
    return st.from_type(hint)


_TIMES = st.integers(0, 10**12).map(lambda us: us / 1e6)  # the log keeps t to the microsecond
EVENTS = st.one_of(
    *(st.builds(cls, t=_TIMES, **{n: _strategy(h) for n, h in _hints(cls).items()}) for cls in ALL_TYPES)
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(evs=st.lists(EVENTS, min_size=1, max_size=8))
def test_any_events_round_trip(evs: list[E.Event], tmp_path: Path) -> None:
    assert _round_trip(evs, tmp_path / "any.ndjson") == evs


def test_the_event_log_reaches_a_follower_within_its_flush_interval(tmp_path: Path) -> None:
    """A reader following --events sees every line once the events' clock has moved FLUSH_EVERY past it."""
    path = tmp_path / "ev.ndjson"
    writer = NdjsonWriter(str(path))
    try:
        writer(E.Info(0.0, "first"))  # the first event flushes
        assert len(path.read_text().splitlines()) == 1
        writer(E.Info(0.1, "held"))  # buffered: a busy download does not write each event alone
        assert len(path.read_text().splitlines()) == 1
        writer(E.Info(0.1 + NdjsonWriter.FLUSH_EVERY, "later"))
        assert [e.message for e in load_events(path)] == ["first", "held", "later"]  # type: ignore[attr-defined]
    finally:
        writer.close()
