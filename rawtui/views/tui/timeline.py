"""The session's history, for the timeline cursor: every event in compact form, and the view model at any
event, fast on long recordings. Plain Python, no Textual.

Memory stays bounded by design:

* Events are kept column-wise (:mod:`array`): a TCP segment, the bulk of any stream, costs ~40 bytes
  (time, kind, sequence and ACK numbers, window, length, a code for its flags and one for its note; SACK
  blocks only when there are some) instead of a ~250-byte event object. Other events (windows, progress,
  explanations...: a few per thousand segments) are kept as they are.
* Checkpoints: a copy of the view model every ``every`` events (without its packet ring, which is rebuilt
  from the packet index), at most ``max_checkpoints`` of them: past that, every other one is dropped and
  the interval doubles. The model's series and lists are themselves bounded (:class:`ViewModel`), so a
  checkpoint costs ~100-200 kB whatever the session's length.
* At most ``max_events`` events are recorded (10 million: ~0.5 GB, a ~9 GB download); the live view goes
  on past that, the cursor reaches the last one recorded.

:meth:`Timeline.state_at` gives the model after event ``i``: from the current cursor state when ``i`` is a
little ahead of it (one event: one ``apply``), else from the nearest checkpoint at or before ``i``, replaying
at most ``every`` events. Replaying from a checkpoint leaves finer copies every ``LOCAL_EVERY`` events in
that stretch, so that stepping backwards event by event costs a short replay, not a long one.
"""

from __future__ import annotations

import bisect
import itertools
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import fields, is_dataclass

from rawtui.events import Event, Explain, SegmentIn, SegmentOut
from rawtui.views.tui.describe import summary
from rawtui.views.tui.model import PACKET_TYPES, ROUTER_DROPS, ViewModel

#: Event types always worth a jump (``[`` / ``]``); explanations, zero windows and resets are added.
NOTABLE_TYPES = frozenset({"peer_retransmit", "retransmit", "checksum_drop", "malformed", "retry", "error", "done",
                           "path_mtu"})

_SEG_IN, _SEG_OUT, _OTHER = 0, 1, 2
_KINDS = {"segment_in": _SEG_IN, "segment_out": _SEG_OUT}
_SEGMENT_TYPES = frozenset(_KINDS)
_ANCHOR_LOOKBACK = 8  # an explanation belongs to the event just before it at the same time


class Timeline:
    """Records the events fed to the live model (:meth:`feed`) and rebuilds the model at any of them."""

    LOCAL_EVERY = 1024

    def __init__(self, *, every: int = 8192, max_checkpoints: int = 256, max_events: int = 10_000_000) -> None:
        if every < self.LOCAL_EVERY or every % self.LOCAL_EVERY:
            raise ValueError(f"checkpoint interval must be a multiple of {self.LOCAL_EVERY}")
        self.every = every
        self.max_checkpoints = max_checkpoints
        self.max_events = max_events  # past this many (~0.5 GB of columns, a ~9 GB download) none is recorded
        self.full = False  # max_events reached: the history ends there, the live model goes on
        # one entry per event
        self._kind = array("b")
        self._t = array("d")
        self._pos = array("i")  # index into the segment columns or into _others
        # segment columns
        self._seq = array("q")
        self._ack = array("q")
        self._win = array("q")
        self._len = array("q")
        self._flags = array("B")
        self._note = array("B")
        self._sack: dict[int, tuple[tuple[int, int], ...]] = {}
        self._codes: dict[str, int] = {}
        self._strings: list[str] = []
        self._others: list[Event] = []
        # packets (the model's packet list numbers them 1, 2, ...): event index of each
        self._packets = array("i")
        # notable events (sorted indices), and the explanation told about an event (anchor -> explain index)
        self.notable = array("i")
        self.explained: dict[int, int] = {}
        self._out_zero = False
        # checkpoints: _checkpoints[k] = the model after k * every events (without its packet ring)
        self._checkpoints: list[ViewModel] = []
        self._local: dict[int, ViewModel] = {}  # finer copies in the stretch replayed last (count -> model)
        self._local_block = -1
        self._cursor: tuple[int, ViewModel] | None = None  # (events applied, model) of the last state_at
        self._ring = 5000

    def __len__(self) -> int:
        return len(self._kind)

    @property
    def checkpoints(self) -> int:
        return len(self._checkpoints)

    # -- recording -------------------------------------------------------------------------------------

    def feed(self, model: ViewModel, events: Sequence[Event]) -> int:
        """Record ``events`` and fold them into ``model`` (the live one), copying it at every checkpoint.
        ``model`` must have been fed by this timeline only, from its first event."""
        if not self._checkpoints:
            self._ring = model.packets.maxlen or self._ring
            self._checkpoints.append(model.copy(packets=False))
        n = len(events)
        done = 0
        while done < n:
            if len(self) >= self.max_events:
                self.full = True
                model.apply_all(events[done:] if done else events)
                break
            room = min(self.every * len(self._checkpoints), self.max_events) - len(self)
            chunk = events if done == 0 and room >= n else events[done:done + room]
            self._record(chunk)
            model.apply_all(chunk)
            done += len(chunk)
            if len(self) == self.every * len(self._checkpoints) and len(self) < self.max_events:
                self._checkpoint(model)
        return n

    def _checkpoint(self, model: ViewModel) -> None:
        self._checkpoints.append(model.copy(packets=False))
        if len(self._checkpoints) > self.max_checkpoints:
            del self._checkpoints[1::2]  # keep the even ones: multiples of twice the interval
            self.every *= 2
            self._local.clear()
            self._local_block = -1

    def _code(self, s: str) -> int | None:
        code = self._codes.get(s)
        if code is None:
            if len(self._strings) >= 255:
                return None
            code = self._codes[s] = len(self._strings)
            self._strings.append(s)
        return code

    def _record(self, events: Sequence[Event]) -> None:
        """Append a batch, column by column (the live view's hot path: ~1 us an event)."""
        segs = [ev for ev in events if ev.type in _SEGMENT_TYPES]
        strings = {ev.flags for ev in segs} | {ev.note for ev in segs}  # type: ignore[attr-defined]
        for text in strings - self._codes.keys():
            self._code(text)
        if not strings <= self._codes.keys():  # more distinct flags and notes than codes: one by one
            self._record_each(events)
            return
        codes = self._codes
        try:  # built aside first: a field of the wrong type leaves the columns as they were
            cols = (array("q", [ev.seq for ev in segs]), array("q", [ev.ack for ev in segs]),  # type: ignore[attr-defined]
                    array("q", [ev.window for ev in segs]), array("q", [ev.length for ev in segs]),  # type: ignore[attr-defined]
                    array("B", [codes[ev.flags] for ev in segs]), array("B", [codes[ev.note] for ev in segs]))  # type: ignore[attr-defined]
        except (TypeError, OverflowError):
            self._record_each(events)
            return
        first = len(self._kind)
        nseg = len(self._seq)
        kinds = [_KINDS.get(ev.type, _OTHER) for ev in events]
        self._kind.extend(kinds)
        self._t.extend([ev.t for ev in events])
        seg_no, other_no = itertools.count(nseg), itertools.count(len(self._others))
        self._pos.extend([next(other_no) if k == _OTHER else next(seg_no) for k in kinds])
        for column, values in zip((self._seq, self._ack, self._win, self._len, self._flags, self._note), cols,
                                  strict=True):
            column.extend(values)
        for k, ev in enumerate(segs):
            if ev.sack:  # type: ignore[attr-defined]
                self._sack[nseg + k] = ev.sack  # type: ignore[attr-defined]
        # packets, notable events: the segments' from their columns, the other events one by one (few)
        at = [first + k for k, kind in enumerate(kinds) if kind != _OTHER]
        notable: list[int] = []
        zero = self._out_zero
        resets = {code for text, code in codes.items() if "R" in text and text in strings}
        for i, ev in zip(at, segs, strict=True):
            if ev.type == "segment_out":
                if ev.window == 0:  # type: ignore[attr-defined]
                    if not zero:
                        notable.append(i)  # our window closed
                    zero = True
                else:
                    zero = False
            if resets and codes[ev.flags] in resets:  # type: ignore[attr-defined]
                notable.append(i)
        self._out_zero = zero
        others = self._others
        for k, kind in enumerate(kinds):
            if kind == _OTHER:
                ev = events[k]
                others.append(ev)
                typ = ev.type
                if typ in PACKET_TYPES:
                    at.append(first + k)
                if typ in NOTABLE_TYPES or (typ == "router_action" and ev.action in ROUTER_DROPS):  # type: ignore[attr-defined]
                    notable.append(first + k)
                elif typ == "explain":
                    for i in sorted(notable):
                        self._add_notable(i)
                    notable = []
                    self._anchor(first + k, ev.t)
        at.sort()
        self._packets.extend(at)
        for i in sorted(notable):
            self._add_notable(i)

    def _add_notable(self, i: int) -> None:
        notable = self.notable
        if not notable or notable[-1] < i:
            notable.append(i)
        elif notable[bisect.bisect_left(notable, i)] != i:
            notable.insert(bisect.bisect_left(notable, i), i)

    def _record_each(self, events: Sequence[Event]) -> None:
        """The same, event by event, any segment that cannot be coded kept as an event."""
        kind, ts, pos = self._kind.append, self._t.append, self._pos.append
        seq, ack, win, ln = self._seq.append, self._ack.append, self._win.append, self._len.append
        flags, note = self._flags.append, self._note.append
        codes, sacks, others = self._codes, self._sack, self._others
        packets, notable = self._packets.append, self.notable
        i = len(self._kind)
        nseg = len(self._seq)
        for ev in events:
            typ = ev.type
            if typ == "segment_in" or typ == "segment_out":
                f, nt = codes.get(ev.flags), codes.get(ev.note)  # type: ignore[attr-defined]
                if f is None:
                    f = self._code(ev.flags)  # type: ignore[attr-defined]
                if nt is None:
                    nt = self._code(ev.note)  # type: ignore[attr-defined]
                if f is not None and nt is not None and _fits(ev):
                    out = typ == "segment_out"
                    kind(_SEG_OUT if out else _SEG_IN)
                    ts(ev.t)
                    pos(nseg)
                    seq(ev.seq)  # type: ignore[attr-defined]
                    ack(ev.ack)  # type: ignore[attr-defined]
                    win(ev.window)  # type: ignore[attr-defined]
                    ln(ev.length)  # type: ignore[attr-defined]
                    flags(f)
                    note(nt)
                    if ev.sack:  # type: ignore[attr-defined]
                        sacks[nseg] = ev.sack  # type: ignore[attr-defined]
                    nseg += 1
                    packets(i)
                    if out:
                        zero = ev.window == 0  # type: ignore[attr-defined]
                        if zero and not self._out_zero:
                            notable.append(i)  # our window closed
                        self._out_zero = zero
                    if "R" in ev.flags:  # type: ignore[attr-defined]
                        notable.append(i)
                    i += 1
                    continue
            kind(_OTHER)
            ts(ev.t)
            pos(len(others))
            others.append(ev)
            if typ in PACKET_TYPES:
                packets(i)
            if typ in NOTABLE_TYPES or (typ == "router_action" and ev.action in ROUTER_DROPS):  # type: ignore[attr-defined]
                notable.append(i)
            elif typ == "explain":
                self._anchor(i, ev.t)
            i += 1

    def _anchor(self, i: int, t: float) -> None:
        """An explanation at ``i``: it tells about the event just before it at the same time (or itself)."""
        anchor = i
        for j in range(i - 1, max(-1, i - 1 - _ANCHOR_LOOKBACK), -1):
            if self._t[j] != t:
                break
            if self._kind[j] != _OTHER or self._others[self._pos[j]].type != "explain":
                anchor = j
                break
        self.explained.setdefault(anchor, i)
        self._add_notable(anchor)

    # -- reading -----------------------------------------------------------------------------------------

    def event(self, i: int) -> Event:
        """Event ``i`` (0-based), as it was fed."""
        return self.pick((i,))[0]

    def events(self, start: int, stop: int) -> list[Event]:
        """Events ``start`` to ``stop - 1``."""
        return self.pick(range(start, stop))

    def pick(self, indices: Iterable[int]) -> list[Event]:
        """The events at ``indices``, rebuilt from the columns (the replay's hot path)."""
        kind, ts, pos, others = self._kind, self._t, self._pos, self._others
        seq, ack, win, ln, flags, note = self._seq, self._ack, self._win, self._len, self._flags, self._note
        s, sack = self._strings, self._sack.get
        out: list[Event] = []
        add = out.append
        for i in indices:
            k = kind[i]
            p = pos[i]
            if k == _OTHER:
                add(others[p])
            else:
                add((SegmentOut if k else SegmentIn)(ts[i], seq[p], ack[p], s[flags[p]], win[p], ln[p], sack(p, ()),
                                                     s[note[p]]))
        return out

    def time(self, i: int) -> float:
        return self._t[i]

    def index_at(self, t: float) -> int:
        """The last event at or before time ``t`` (0 when none is)."""
        return max(0, bisect.bisect_right(self._t, t) - 1)

    def next_notable(self, i: int) -> int | None:
        """The first notable event after ``i``."""
        k = bisect.bisect_right(self.notable, i)
        return self.notable[k] if k < len(self.notable) else None

    def prev_notable(self, i: int) -> int | None:
        """The last notable event before ``i``."""
        k = bisect.bisect_left(self.notable, i)
        return self.notable[k - 1] if k > 0 else None

    def explanation(self, i: int) -> Explain | None:
        """What the explainer said about event ``i`` (or event ``i`` itself when it is an explanation)."""
        j = self.explained.get(i)
        ev = self.event(j if j is not None else i)
        return ev if isinstance(ev, Explain) else None

    def packet_number(self, i: int) -> int:
        """How many packets came up to event ``i`` included: the number of the packet listed last."""
        return bisect.bisect_right(self._packets, i)

    def state_at(self, i: int) -> ViewModel:
        """The view model after events 0 to ``i``. The returned model belongs to the timeline: it changes
        at the next call (copy it to keep it)."""
        n = len(self)
        if not 0 <= i < n:
            raise IndexError(f"event {i} of {n}")
        count = i + 1
        cur = self._cursor
        if cur is not None and cur[0] <= count <= cur[0] + self.LOCAL_EVERY:
            base_count, model = cur
        else:
            base_count, model = self._restore(count)
        self._replay(model, base_count, count)
        self._cursor = (count, model)
        return model

    def _restore(self, count: int) -> tuple[int, ViewModel]:
        """A fresh copy of the nearest saved state at or before ``count`` events, packet ring rebuilt."""
        block = min(count // self.every, len(self._checkpoints) - 1)
        base_count, base = block * self.every, self._checkpoints[block]
        if block != self._local_block:
            self._local.clear()
            self._local_block = block
        else:
            near = max((c for c in self._local if c <= count), default=-1)
            if near > base_count:
                base_count, base = near, self._local[near]
        model = base.copy()
        # the packet ring: the packets before the saved state that the replay will not push out
        p = model.packet_count
        coming = self.packet_number(count - 1) - p
        first = max(0, p - max(0, self._ring - coming))
        have = model.packets[0][0] - 1 if model.packets else p  # a finer copy keeps its ring
        if first < have:
            missing = self.pick(self._packets[first:have])
            model.packets.extendleft(zip(range(have, first, -1), reversed(missing), strict=True))
        return base_count, model

    def _replay(self, model: ViewModel, start: int, stop: int) -> None:
        """Apply events ``start`` to ``stop - 1``; leave finer copies on the way in the current block."""
        local = self.LOCAL_EVERY
        block = self._local_block
        pos = start
        while pos < stop:
            nxt = min(stop, (pos // local + 1) * local)
            model.apply_all(self.events(pos, nxt))
            pos = nxt
            if pos % local == 0 and pos // self.every == block and pos not in self._local and pos < stop:
                self._local[pos] = model.copy()

    # -- what the header says ------------------------------------------------------------------------------

    def describe(self, i: int) -> str:
        """One line for event ``i``: a packet as in the list, any other event by its type and fields."""
        return describe_event(self.event(i))


def _fits(ev: Event) -> bool:
    """A segment whose numbers fit the columns (any other is kept as it is)."""
    return all(type(v) is int and -(1 << 63) <= v < 1 << 63
               for v in (ev.seq, ev.ack, ev.window, ev.length))  # type: ignore[attr-defined]


def describe_event(ev: Event) -> str:
    """A packet as the packet list says it; another event as ``type field=value ...``."""
    if ev.type in PACKET_TYPES:
        return summary(ev)
    if isinstance(ev, Explain):
        return f"explain ({ev.topic})"
    parts = [ev.type]
    if is_dataclass(ev):
        for f in fields(ev)[1:]:
            value = getattr(ev, f.name)
            if isinstance(value, (dict, list, tuple)) or value is None or value == "":
                continue
            text = f"{value:.6g}" if isinstance(value, float) else str(value)
            parts.append(f"{f.name}={text[:40]}")
            if len(parts) > 6:
                break
    return " ".join(parts)
