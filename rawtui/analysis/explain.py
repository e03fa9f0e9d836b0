"""What just happened: one plain-language line for each notable moment of a download, with the numbers
that prove it (:class:`~rawtui.analysis.events.Explain` events).

:class:`Explainer` is sans-IO: fed every event of the stream in order (:meth:`Explainer.feed`), it returns
the explanations to add after it, using only the events' own times (no clock, no I/O), so a recording
replayed gives the same lines as the live download did. :class:`Explained` wraps any event source with
it: the CLI puts it once between a source and its listeners (the views, the NDJSON log), so every consumer
gets the same lines. A recording's own ``explain`` lines are dropped there and made again: never twice.

What it explains: a hole (first loss), 3 duplicate ACKs, the server's retransmissions (fast, timeout, tail
loss probe, spurious; from :class:`~rawtui.events.PeerRetransmit`, or, in recordings made before it
existed, from the holes filled and the data repeated), reordering (a hole filled sooner than any resend
could come back, or the router saying so), the server's fast recovery and its retransmission timer with
its backoff, slow start giving way to congestion avoidance (:class:`~rawtui.events.ServerTcpInfo`, the
lab's TCP_INFO samples), the zero window, window probes and the window update, SYN retries, checksum
drops, a path MTU lowered by a Packet Too Big or fragmentation-needed (:class:`~rawtui.events.PathMtu`), and what the lab's router did (:class:`~rawtui.events.RouterAction`, or its counters,
:class:`~rawtui.events.LabStats`).

Repetition is rate-limited per topic: the first time in full, the 2nd and 3rd in short, then one short
line per ``EVERY`` seconds of event time at most, aggregating what came in between ("12 more fast
retransmits in 1.0 s (40 in all); latest: ..."), so a download with 10,000 losses gives a few lines a
second, not 10,000.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rawtui.analysis.events import Explain
from rawtui.events import (
    ChecksumDrop,
    Done,
    DupAck,
    DupData,
    Emit,
    Error,
    Event,
    EventSource,
    Handshake,
    LabKnobs,
    LabStats,
    OutOfOrder,
    PathMtu,
    PeerRetransmit,
    ReadStall,
    Retransmit,
    RouterAction,
    SegmentIn,
    SegmentOut,
    ServerTcpInfo,
    TcpState,
    Window,
)

__all__ = ["EVERY", "SHORT", "Explained", "Explainer"]

EVERY = 1.0  # seconds of event time between two lines of one topic, once it repeated SHORT times
SHORT = 3  # occurrences of a topic told one by one before the aggregation starts
LINUX_MIN_RTO_MS = 200.0
MAX_HOLES = 1024  # holes tracked at once (each is a few numbers); the oldest go first
MAX_ROUTER_MEMORY = 4096  # router actions remembered by sequence number, to name a hole's cause

# router actions, as a sentence's verb and the topic's nouns
_ACTIONS = {
    "drop": ("dropped", "router drop", "router drops"),
    "blackout": ("dropped (blackout)", "blackout drop", "blackout drops"),
    "queue-drop": ("dropped (queue full)", "queue drop", "queue drops"),
    "duplicate": ("duplicated", "router duplicate", "router duplicates"),
    "reorder": ("held back (reordered)", "router reorder", "router reorders"),
    "corrupt": ("corrupted", "router corruption", "router corruptions"),
}
# LabStats counters (legacy recordings): counter -> action
_STATS = {"lost": "drop", "blackout_drops": "blackout", "queue_drops": "queue-drop", "duplicated": "duplicate",
          "reordered": "reorder", "corrupted": "corrupt"}
_CLOSING = {"FIN-WAIT-1", "CLOSE-WAIT", "CLOSING", "LAST-ACK", "TIME-WAIT", "CLOSED"}


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, 11th, 12th, 13th, 21st..."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _ms(seconds: float) -> str:
    ms = seconds * 1000
    if ms >= 1000:
        return f"{seconds:.2f} s"
    if ms >= 10:
        return f"{ms:.0f} ms"
    return f"{ms:.1f} ms"


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" if n == 1 else f"{n:,} {word}s"


def _bytes(n: int) -> str:
    return f"{n:,} bytes" if n != 1 else "1 byte"


@dataclass(slots=True)
class _Topic:
    """The rate limiter of one topic (see the module's docstring)."""

    singular: str
    plural: str
    count: int = 0  # occurrences so far
    held: int = 0  # occurrences not told yet
    held_since: float = 0.0
    latest: str = ""  # the short text of the latest held occurrence
    latest_seq: int | None = None
    told_t: float = float("-inf")


@dataclass(slots=True)
class _Hole:
    start: int
    end: int
    opened: float  # event time it was seen
    dupacks_before: int  # duplicate ACKs we had sent when it opened
    router: RouterAction | None = None  # what the router did to its first byte, when it said so


@dataclass(slots=True)
class _Fill:
    """A hole filled, in a recording without PeerRetransmit: explained once the segment's events are all in."""

    t: float
    seq: int
    length: int
    silence: float
    hole: _Hole | None
    dupacks: int
    repeated: bool  # data we already had (DupData), not a hole filled


class Explainer:
    """Feed it every event in order; it returns the :class:`Explain` events to add after each one.

    ``every`` and ``short`` tune the rate limiting (see the module's docstring).
    """

    def __init__(self, *, every: float = EVERY, short: int = SHORT) -> None:
        self.every = every
        self.short = short
        self._topics: dict[str, _Topic] = {}
        self._due = float("inf")  # the earliest time a held topic may be told
        self._out: list[Explain] = []
        # the path and the two ends
        self._rtt: float | None = None  # seconds, the best current estimate
        self._min_rtt: float | None = None
        self._server: ServerTcpInfo | None = None
        self._server_rto: float | None = None  # seconds
        self._recovery_since: float | None = None
        self._slow_start_below = False  # seen in slow start with a known ssthresh (cwnd < ssthresh)
        self._knobs: dict[str, float] = {}
        self._stats: dict[str, int] = {}
        self._router_seen = False  # RouterAction events come: the LabStats counters are not needed
        self._router_by_seq: dict[int, RouterAction] = {}
        # the receiver's view of the server's data
        self._last_in: float | None = None  # when the previous segment from the server came
        self._high = 0  # the highest sequence end received
        self._holes: list[_Hole] = []
        self._dupacks = 0  # duplicate ACKs sent so far
        self._classified = False  # PeerRetransmit events come: the stack classifies, not us
        self._pending: list[_Fill] = []
        self._pending_t = 0.0
        self._last_fill: tuple[int, _Hole | None] | None = None
        self._last_reordered: int | None = None
        self._local_port = 0
        self._timeout_episode = False  # holes being refilled after a timeout (go-back-N)
        # windows and the handshake
        self._syn_t: float | None = None
        self._zero_since: float | None = None
        self._probes = 0
        self._probe_t: float | None = None
        self._server_probes = 0

        self._handlers: dict[str, Callable[[Any], None]] = {
            "segment_in": self._segment_in, "segment_out": self._segment_out, "out_of_order": self._out_of_order,
            "dup_data": self._dup_data, "dup_ack": self._dup_ack, "peer_retransmit": self._peer_retransmit,
            "retransmit": self._retransmit, "checksum_drop": self._checksum_drop, "window": self._window,
            "path_mtu": self._path_mtu,
            "tcp_state": self._tcp_state, "handshake": self._handshake, "server_tcp_info": self._server_tcp_info,
            "lab_knobs": self._lab_knobs, "lab_stats": self._lab_stats, "router_action": self._router_action,
            "read_stall": self._read_stall, "done": self._end, "error": self._end,
        }

    # -- the interface -------------------------------------------------------------------------------

    def feed(self, ev: Event) -> list[Explain]:
        """The explanations ``ev`` brings (and the held ones now due), in order; ``[]`` for most events.

        An ending (``done``, ``error``) also tells everything still held: put those lines before it.
        An :class:`Explain` fed in (a recording's own) is ignored: the explanations are made here.
        """
        t = ev.t
        if self._pending and (t > self._pending_t or ev.type == "peer_retransmit"):
            self._resolve_pending(ev)
        if t >= self._due:
            self._tell_due(t)
        handler = self._handlers.get(ev.type)
        if handler is not None:
            handler(ev)
        if not self._out:
            return []
        out, self._out = self._out, []
        return out

    def flush(self, t: float) -> list[Explain]:
        """Tell everything held now (the stream ended without a ``done``)."""
        self._resolve_pending(None)
        self._tell_due(float("inf"), now=t)
        out, self._out = self._out, []
        return out

    # -- telling -------------------------------------------------------------------------------------

    def _say(self, t: float, topic: str, text: str, seq: int | None = None) -> None:
        self._out.append(Explain(t, topic, text, seq))

    def _tell(self, t: float, topic: str, nouns: tuple[str, str], full: str, short: str,
              seq: int | None = None, key: str | None = None) -> None:
        """One occurrence of ``topic``: told in full the first time, short the 2nd and 3rd, then at most
        one line per ``every`` seconds (held ones are aggregated)."""
        key = key or topic
        s = self._topics.get(key)
        if s is None:
            s = self._topics[key] = _Topic(*nouns)
        s.count += 1
        if s.count == 1:
            s.told_t = t
            self._say(t, topic, full, seq)
            return
        if s.count <= self.short or (s.held == 0 and t - s.told_t >= self.every):
            s.told_t = t
            self._say(t, topic, f"{ordinal(s.count)} {s.singular}: {short}", seq)
            return
        if s.held == 0:
            s.held_since = t
        s.held += 1
        s.latest, s.latest_seq = short, seq
        self._due = min(self._due, s.told_t + self.every)

    def _tell_due(self, t: float, now: float | None = None) -> None:
        self._due = float("inf")
        at = t if now is None else now
        for key, s in self._topics.items():
            if not s.held:
                continue
            if s.told_t + self.every <= t:
                topic = key.partition(":")[0]
                span = at - s.told_t
                what = s.singular if s.held == 1 else s.plural
                self._say(at, topic, f"{s.held:,} more {what} in {_ms(span)} ({s.count:,} in all); latest: {s.latest}",
                          s.latest_seq)
                s.held, s.told_t = 0, at
            else:
                self._due = min(self._due, s.told_t + self.every)

    # -- numbers used in the texts -------------------------------------------------------------------

    def _rtt_text(self) -> str:
        return f"RTT {_ms(self._rtt)}" if self._rtt else "one round trip"

    def _rto_text(self) -> str:
        if self._server_rto:
            return f"its retransmission timer ({_ms(self._server_rto)})"
        return f"its retransmission timer (at least {LINUX_MIN_RTO_MS:.0f} ms)"

    def _timeout_threshold(self) -> float:
        """Silence after which a resend is the server's timer, not a reaction to our duplicate ACKs."""
        if self._server_rto:
            return 0.8 * self._server_rto
        return max(0.8 * LINUX_MIN_RTO_MS / 1000, 1.5 * (self._rtt or 0.0))

    def _note_rtt(self, seconds: float | None) -> None:
        if not seconds or seconds <= 0:
            return
        self._rtt = seconds
        if self._min_rtt is None or seconds < self._min_rtt:
            self._min_rtt = seconds

    def _router_note(self, hole: _Hole | None) -> str:
        r = hole.router if hole is not None else None
        if r is None:
            return ""
        verb = _ACTIONS.get(r.action, (r.action,))[0]
        why = f" ({r.note})" if r.note else ""
        return f"; the router {verb} it{why}"

    # -- the server's data: holes, fills, repeats ----------------------------------------------------

    def _segment_in(self, ev: SegmentIn) -> None:
        last, self._last_in = self._last_in, ev.t
        end = ev.seq + ev.length
        note = ev.note
        if note == "fill":
            self._filled(ev.t, ev.seq, ev.length, ev.t - last if last is not None else 0.0, repeated=False)
        elif note == "zero-window-probe" or (
            self._zero_since is not None and ev.length <= 1 and "F" not in ev.flags and "R" not in ev.flags
        ):  # while the window is shut, the server sends nothing but probes
            self._probe_in(ev.t, ev.seq)
        elif note == "" and self._holes and ev.length:
            self._drop_holes_below(end)
        self._high = max(self._high, end)

    def _out_of_order(self, ev: OutOfOrder) -> None:
        base = max(self._high, ev.expected)
        t = ev.t
        if ev.seq > base:  # data above a gap: a new hole
            first = not self._holes and ev.buffered == ev.length
            start = ev.expected if first else base
            self._open_hole(t, start, ev.seq, first_in_episode=first)
        elif ev.seq < self._high and self._hole_at(ev.seq) is not None:  # it fills a hole above RCV.NXT
            silence = t - self._last_in if self._last_in is not None else 0.0
            self._filled(t, ev.seq, ev.length, silence, repeated=False)
        self._drop_holes_below(ev.expected)
        self._high = max(self._high, ev.seq + ev.length)

    def _open_hole(self, t: float, start: int, end: int, *, first_in_episode: bool) -> None:
        router = self._router_in(start, end)
        hole = _Hole(start, end, t, self._dupacks, router)
        self._holes.append(hole)
        if len(self._holes) > MAX_HOLES:
            del self._holes[0]
        if first_in_episode:
            self._timeout_episode = False
        size = end - start
        cause = self._router_note(hole)
        full = (f"First loss: seq {start:,} ({_bytes(size)}) is missing and data above it arrived{cause}. "
                f"rawtui keeps what came, and ACKs {start:,} again (a duplicate ACK, with SACK blocks) "
                "to tell the server")
        self._tell(t, "loss", ("hole", "holes"), full, f"seq {start:,} missing ({_bytes(size)}){cause}",
                   start)

    def _router_in(self, start: int, end: int) -> RouterAction | None:
        if not self._router_by_seq:
            return None
        for seq, r in self._router_by_seq.items():
            if start <= seq < end:
                return r
        return None

    def _hole_at(self, seq: int) -> _Hole | None:
        for h in self._holes:
            if h.start <= seq < h.end:
                return h
        return None

    def _drop_holes_below(self, seq: int) -> None:
        """Data at or above ``seq`` is in order: every hole below it is gone."""
        if self._holes and self._holes[0].start < seq:
            self._holes = [h for h in self._holes if h.end > seq]
            if self._holes and self._holes[0].start < seq:
                self._holes[0].start = seq

    def _take(self, hole: _Hole, seq: int, length: int) -> None:
        """``[seq, seq + length)`` arrived inside ``hole``."""
        end = seq + length
        if seq <= hole.start and end >= hole.end:
            self._holes.remove(hole)
        elif seq <= hole.start:
            hole.start = end
        elif end >= hole.end:
            hole.end = seq
        else:  # the middle: two holes
            self._holes.insert(self._holes.index(hole) + 1, _Hole(end, hole.end, hole.opened,
                                                                  hole.dupacks_before, hole.router))
            hole.end = seq

    def _filled(self, t: float, seq: int, length: int, silence: float, *, repeated: bool) -> None:
        hole = self._hole_at(seq)
        snapshot = None
        dupacks = 0
        if hole is not None:
            snapshot = _Hole(hole.start, hole.end, hole.opened, hole.dupacks_before, hole.router)
            dupacks = self._dupacks - hole.dupacks_before
            self._take(hole, seq, length)
        self._last_fill = (seq, snapshot)
        if self._reordered(t, seq, snapshot):
            self._last_reordered = seq
            return
        if self._classified:
            return
        self._pending.append(_Fill(t, seq, length, silence, snapshot, dupacks, repeated))
        self._pending_t = t

    def _reordered(self, t: float, seq: int, hole: _Hole | None) -> bool:
        """A hole filled by data that was late, not lost: the router said so, or it came sooner than any
        resend could (the first duplicate ACK needs a round trip to bring one back)."""
        r = self._router_by_seq.get(seq)
        said = r is not None and r.action == "reorder"
        if hole is None:
            return False
        early = self._min_rtt is not None and t - hole.opened < 0.5 * self._min_rtt
        if not (said or early):
            return False
        wait = t - hole.opened
        why = (f"the router held it back ({r.note or 'reorder'})" if said and r is not None else
               f"sooner than any resend could come back ({self._rtt_text()})")
        full = (f"Reordering: seq {seq:,} arrived {_ms(wait)} after data above it, {why}: it was late, not "
                "lost (the server resends it only if 3 duplicate ACKs reached it first)")
        self._tell(t, "reorder", ("reordering", "reorderings"), full,
                   f"seq {seq:,} late by {_ms(wait)}", seq)
        return True

    def _dup_data(self, ev: DupData) -> None:
        silence = ev.t - self._last_in if self._last_in is not None else 0.0
        r = self._router_by_seq.get(ev.seq)
        if r is not None and r.action == "duplicate":
            self._tell(ev.t, "duplicate", ("duplicate", "duplicates"),
                       f"Duplicate: seq {ev.seq:,} ({_bytes(ev.length)}) arrived twice because the router copied "
                       f"it ({r.note or 'dup'}): not a resend; rawtui ignores the copy and ACKs again",
                       f"seq {ev.seq:,} copied by the router", ev.seq)
            return
        if self._classified:
            return
        self._pending.append(_Fill(ev.t, ev.seq, ev.length, silence, None, 0, True))
        self._pending_t = ev.t

    def _resolve_pending(self, ev: Event | None) -> None:
        """The segment's events are all in: a PeerRetransmit among them means the stack classifies (the
        legacy guess is dropped), else the guess is told."""
        pending, self._pending = self._pending, []
        if isinstance(ev, PeerRetransmit):
            self._classified = True
            return
        for f in pending:
            self._legacy_resend(f)

    def _legacy_resend(self, f: _Fill) -> None:
        """A recording without PeerRetransmit: classify the server's resend by what came before it."""
        if f.silence >= self._timeout_threshold():
            self._timeout_episode = True
            self._explain_resend(f.t, f.seq, f.length, "timeout", f.silence, f.dupacks, f.hole)
        elif f.repeated:
            self._explain_resend(f.t, f.seq, f.length, "spurious", f.silence, f.dupacks, f.hole)
        elif self._timeout_episode:
            self._explain_resend(f.t, f.seq, f.length, "after-timeout", f.silence, f.dupacks, f.hole)
        else:
            self._explain_resend(f.t, f.seq, f.length, "fast", f.silence, f.dupacks, f.hole)

    def _peer_retransmit(self, ev: PeerRetransmit) -> None:
        self._classified = True
        hole = self._hole_at(ev.seq)
        snapshot = None
        if hole is not None:
            snapshot = _Hole(hole.start, hole.end, hole.opened, hole.dupacks_before, hole.router)
            self._take(hole, ev.seq, ev.length)
        elif self._last_fill is not None and self._last_fill[0] == ev.seq:  # its segment's events came first
            snapshot = self._last_fill[1]
        if ev.seq == self._last_reordered:
            return  # told as reordering already
        if ev.kind != "spurious" and self._reordered(ev.t, ev.seq, snapshot):
            return
        if ev.kind == "spurious":
            r = self._router_by_seq.get(ev.seq)
            if r is not None and r.action == "duplicate":
                return  # told as the router's duplicate by the dup_data that came with it
        self._explain_resend(ev.t, ev.seq, ev.length, ev.kind, ev.silence_ms / 1000, ev.dup_acks, snapshot)

    def _explain_resend(self, t: float, seq: int, length: int, kind: str, silence: float, dupacks: int,
                        hole: _Hole | None) -> None:
        waited = f", {_ms(t - hole.opened)} after the hole opened" if hole is not None else ""
        cause = self._router_note(hole)
        if kind == "fast":
            rtts = f" ({self._rtt_text()})" if hole is not None and self._rtt else ""
            acks = f"{dupacks} duplicate ACKs" if dupacks else "duplicate ACKs and SACK blocks"
            full = (f"Fast retransmit: the server resent seq {seq:,} ({_bytes(length)}) after {acks}"
                    f"{waited}{rtts}, without waiting for {self._rto_text()}{cause}")
            short = f"seq {seq:,} after {dupacks} dup ACKs{waited}"
            self._tell(t, "fast-retransmit", ("fast retransmit", "fast retransmits"), full, short, seq)
        elif kind == "timeout":
            backoff = self._server.backoff if self._server is not None else 0
            extra = f"; backoff {backoff}: each expiry doubles the timer" if backoff > 1 else ""
            full = (f"Timeout retransmit: after {_ms(silence)} of silence the server's retransmission timer "
                    f"fired and it resent seq {seq:,} ({_bytes(length)}); it starts again from a window of "
                    f"1 segment (slow start){extra}")
            self._tell(t, "timeout", ("timeout retransmit", "timeout retransmits"), full,
                       f"seq {seq:,} after {_ms(silence)} of silence", seq)
        elif kind == "after-timeout":
            self._tell(t, "timeout", ("timeout retransmit", "timeout retransmits"),
                       f"Resent after the timeout: seq {seq:,} ({_bytes(length)}): the server goes back to the "
                       "first unacknowledged byte and resends, in slow start",
                       f"seq {seq:,}, resent after the timeout", seq)
        elif kind == "tlp":
            full = (f"Tail loss probe: after {_ms(silence)} without an ACK (about 2 RTT, before "
                    f"{self._rto_text()}) the server resent its last segment, seq {seq:,}, to provoke one")
            self._tell(t, "tlp", ("tail loss probe", "tail loss probes"), full,
                       f"seq {seq:,} after {_ms(silence)}", seq)
        elif kind == "spurious":
            full = (f"Spurious retransmit: seq {seq:,} ({_bytes(length)}) arrived again; rawtui already had it. "
                    "The server resent data that was not lost (an ACK was lost or late); rawtui answers with a "
                    "D-SACK so it can tell")
            self._tell(t, "spurious", ("spurious retransmit", "spurious retransmits"), full,
                       f"seq {seq:,}, which rawtui already had", seq)

    def _dup_ack(self, ev: DupAck) -> None:
        if ev.direction != "out":
            return
        self._dupacks += 1
        if ev.count == 3:
            hole = self._hole_at(ev.ack)
            since = f" in {_ms(ev.t - hole.opened)}" if hole is not None else ""
            full = (f"3 duplicate ACKs for seq {ev.ack:,} sent{since}: the signal for the server to resend it "
                    f"now (fast retransmit, RFC 5681) instead of waiting for {self._rto_text()}")
            self._tell(ev.t, "dup-acks", ("3-dup-ACK signal", "3-dup-ACK signals"), full,
                       f"seq {ev.ack:,}{since}", ev.ack)

    # -- the server's own state (the lab's TCP_INFO samples) -----------------------------------------

    def _ours(self, port: int) -> bool:
        """A lab report about this connection (the lab may serve others at the same time)."""
        return not port or not self._local_port or port == self._local_port

    def _server_tcp_info(self, ev: ServerTcpInfo) -> None:
        if not self._ours(ev.peer_port):
            return
        prev, self._server = self._server, ev
        if ev.rto_ms:
            self._server_rto = ev.rto_ms / 1000
        self._note_rtt(ev.rtt_ms / 1000 if ev.rtt_ms else None)
        old = prev.ca_state if prev is not None else "open"
        new = ev.ca_state
        t = ev.t
        ss = f", ssthresh {ev.ssthresh_bytes:,}" if ev.ssthresh_bytes is not None else ""
        if new != old:
            if new == "recovery":
                self._recovery_since = t
                full = (f"Server entered fast recovery: {ev.lost} segment(s) marked lost, "
                        f"{ev.retrans_total} resent in all; cwnd {ev.cwnd_bytes:,} bytes{ss}. It resends "
                        "the holes while new data keeps flowing")
                self._tell(t, "recovery", ("recovery", "recoveries"), full,
                           f"{ev.lost} lost, cwnd {ev.cwnd_bytes:,}{ss}", key="recovery:in")
            elif new == "loss":
                self._tell_rto(t, ev, first=True)
            elif new == "open" and old in ("recovery", "loss"):
                since = self._recovery_since
                took = f" after {_ms(t - since)}" if since is not None and old == "recovery" else ""
                what = "recovery" if old == "recovery" else "the loss state (its timeout's recovery)"
                repaired = "every hole repaired; " if old == "recovery" else ""
                full = (f"Server left {what}{took}: {repaired}cwnd {ev.cwnd_bytes:,} bytes{ss}, "
                        f"{_plural(ev.retrans_total, 'retransmission')} in all")
                self._tell(t, "recovery", ("recovery ended", "recoveries ended"), full,
                           f"cwnd {ev.cwnd_bytes:,}{ss}{took}", key="recovery:out")
                self._recovery_since = None
        elif new == "loss" and prev is not None and ev.backoff > prev.backoff:
            self._tell_rto(t, ev, first=False)
        self._slow_start(ev)
        if ev.probes > self._server_probes and not self._probes:  # none seen on the wire: the server's count
            self._tell(t, "window-probe", ("window probe", "window probes"),
                       f"Window probe: the server asks whether rawtui's window reopened ({ev.probes} probe(s) "
                       "unanswered so far); its persist timer backs off each time",
                       f"{ev.probes} unanswered")
        self._server_probes = ev.probes

    def _tell_rto(self, t: float, ev: ServerTcpInfo, *, first: bool) -> None:
        rto = f"RTO {ev.rto_ms:.0f} ms"
        if first:
            full = (f"The server's retransmission timer fired (no ACK for a whole RTO): it now assumes "
                    f"everything in flight lost, cwnd back to {ev.cwnd_bytes:,} bytes "
                    f"({max(1, ev.cwnd_bytes // max(ev.mss, 1))} segment), backoff {ev.backoff}, {rto}")
            self._tell(t, "rto", ("server RTO", "server RTOs"), full,
                       f"backoff {ev.backoff}, {rto}", key="rto:server")
        else:
            full = (f"RTO again: still no ACK, so the server doubles its timer (backoff {ev.backoff}, {rto}) "
                    "and resends the first unacknowledged segment once more")
            self._tell(t, "rto", ("RTO backoff", "RTO backoffs"), full,
                       f"backoff {ev.backoff}, {rto}", key="rto:backoff")

    def _slow_start(self, ev: ServerTcpInfo) -> None:
        if ev.ca_state != "open" or ev.ssthresh_bytes is None:
            return
        if ev.cwnd_bytes < ev.ssthresh_bytes:
            self._slow_start_below = True
        elif self._slow_start_below:
            self._slow_start_below = False
            full = (f"Server left slow start: cwnd {ev.cwnd_bytes:,} bytes reached ssthresh "
                    f"{ev.ssthresh_bytes:,}; now congestion avoidance: about +1 segment ({ev.mss} bytes) per "
                    "RTT instead of doubling")
            self._tell(ev.t, "slow-start", ("end of slow start", "ends of slow start"), full,
                       f"cwnd {ev.cwnd_bytes:,} >= ssthresh {ev.ssthresh_bytes:,}")

    # -- rawtui's own side ---------------------------------------------------------------------------

    def _handshake(self, ev: Handshake) -> None:
        self._local_port = ev.local_port
        self._note_rtt(ev.rtt_ms / 1000 if ev.rtt_ms else None)

    def _tcp_state(self, ev: TcpState) -> None:
        if ev.new == "SYN-SENT":
            self._syn_t = ev.t
        elif ev.new in _CLOSING:
            self._resolve_pending(None)
            self._tell_due(float("inf"), now=ev.t)

    def _retransmit(self, ev: Retransmit) -> None:
        t = ev.t
        if ev.reason == "syn":
            since = f" {_ms(t - self._syn_t)} after the first" if self._syn_t is not None else ""
            full = (f"SYN retry: no SYN-ACK came, so rawtui sends its SYN again (attempt {ev.backoff + 1}{since}); "
                    "the wait doubles after each try")
            self._tell(t, "syn-retry", ("SYN retry", "SYN retries"), full, f"attempt {ev.backoff + 1}")
        elif ev.reason == "rto":
            self._tell(t, "rto", ("RTO of rawtui", "RTOs of rawtui"),
                       f"rawtui's own retransmission timer fired: it resent seq {ev.seq:,} ({_bytes(ev.length)}) of "
                       f"its request, backoff {ev.backoff} (the timer doubles each time)",
                       f"seq {ev.seq:,}, backoff {ev.backoff}", ev.seq, key="rto:ours")
        elif ev.reason == "probe":
            self._tell(t, "window-probe", ("probe of the server's window", "probes of the server's window"),
                       f"rawtui probes the server's zero window with 1 byte (probe {ev.backoff + 1})",
                       f"probe {ev.backoff + 1}", ev.seq, key="window-probe:ours")
        elif ev.reason in ("fast", "sack"):
            self._tell(t, "fast-retransmit", ("fast retransmit of rawtui", "fast retransmits of rawtui"),
                       f"rawtui resent seq {ev.seq:,} of its request after the server's duplicate ACKs",
                       f"seq {ev.seq:,}", ev.seq, key="fast-retransmit:ours")

    def _window(self, ev: Window) -> None:
        self._note_rtt(ev.srtt_ms / 1000 if ev.srtt_ms and self._server is None else None)
        if ev.rwnd == 0:
            self._zero(ev.t)
        elif self._zero_since is not None:
            self._reopened(ev.t, ev.rwnd)

    def _segment_out(self, ev: SegmentOut) -> None:
        if "S" in ev.flags or "R" in ev.flags:
            return
        if ev.window == 0:
            self._zero(ev.t)
        elif self._zero_since is not None and ev.note == "window-update":
            self._reopened(ev.t, None)

    def _read_stall(self, ev: ReadStall) -> None:
        self._tell(ev.t, "stall", ("read stall", "read stalls"),
                   f"Read stall: rawtui stops reading for {ev.seconds:g} s after {ev.after_bytes:,} bytes of body "
                   "(--stall), so its receive buffer fills and the window it advertises falls to zero",
                   f"{ev.seconds:g} s after {ev.after_bytes:,} bytes")

    def _zero(self, t: float) -> None:
        if self._zero_since is not None:
            return
        self._zero_since = t
        self._probes = 0
        self._probe_t = None
        self._tell(t, "zero-window", ("zero window", "zero windows"),
                   "Zero window: rawtui's receive buffer is full (the application is not reading), so it "
                   "advertises a window of 0: the server must stop sending and probe until it reopens",
                   "the receive buffer is full again")

    def _probe_in(self, t: float, seq: int) -> None:
        self._probes += 1
        gap = f", {_ms(t - self._probe_t)} after the previous one" if self._probe_t is not None else ""
        since = f" {_ms(t - self._zero_since)} into the zero window" if self._zero_since is not None else ""
        self._probe_t = t
        self._tell(t, "window-probe", ("window probe", "window probes"),
                   f"Window probe: the server sent a probe{since} (probe {self._probes}{gap}) to learn whether the "
                   "window reopened; rawtui answers with window 0 again. Its persist timer backs off each time",
                   gap.removeprefix(", ") or "sent", seq)

    def _reopened(self, t: float, rwnd: int | None) -> None:
        since = self._zero_since
        self._zero_since = None
        size = f" to {rwnd:,} bytes" if rwnd else ""
        took = f" after {_ms(t - since)} at zero" if since is not None else ""
        probes = f" and {self._probes} probe(s)" if self._probes else ""
        self._tell(t, "window-update", ("window update", "window updates"),
                   f"Window update: the application reads again and rawtui reopens its window{size}{took}"
                   f"{probes}; the server resumes sending", f"window reopened{size}{took}")

    def _checksum_drop(self, ev: ChecksumDrop) -> None:
        corrupt = self._knobs.get("corrupt")
        why = f" (the router corrupts {corrupt:g} %)" if corrupt else ""
        self._tell(ev.t, "checksum", ("checksum drop", "checksum drops"),
                   f"Checksum drop: a {ev.length:,}-byte frame failed its {ev.layer.upper()} checksum: corrupted on "
                   f"the way{why}. rawtui drops it as if lost; the server resends it",
                   f"{ev.layer.upper()}, {ev.length:,}-byte frame")

    def _path_mtu(self, ev: PathMtu) -> None:
        v6 = "packet too big" in ev.source
        what = ("an ICMPv6 Packet Too Big: IPv6 routers never fragment, they drop a packet too big for the "
                "next link and say so" if v6 else "an ICMP fragmentation-needed: the packet had Don't Fragment set")
        said = f"packets of {ev.reported:,} bytes get through" if ev.reported else "(no size said: guessed from RFC 1191's plateaus)"
        self._tell(ev.t, "path-mtu", ("path MTU drop", "path MTU drops"),
                   f"Path MTU: a router sent {what}; {said}. The MSS drops from {ev.old_mss:,} to {ev.mss:,} bytes "
                   f"(MTU {ev.mtu:,} less {ev.mtu - ev.mss} bytes of headers) and what was in flight is sent again "
                   "in segments that fit",
                   f"path MTU {ev.mtu:,}, MSS {ev.old_mss:,} -> {ev.mss:,}")

    # -- the lab's router ----------------------------------------------------------------------------

    def _lab_knobs(self, ev: LabKnobs) -> None:
        self._knobs = dict(ev.down)

    def _router_action(self, ev: RouterAction) -> None:
        if not self._ours(ev.dport if ev.direction == "down" else ev.sport):
            return
        self._router_seen = True
        if ev.direction == "down" and ev.length and ev.relative:  # absolute numbers cannot match a hole
            memory = self._router_by_seq
            memory[ev.seq] = ev
            if len(memory) > MAX_ROUTER_MEMORY:
                del memory[next(iter(memory))]
        verb, one, many = _ACTIONS.get(ev.action, (ev.action, f"router {ev.action}", f"router {ev.action}s"))
        who = "server -> client" if ev.direction == "down" else "client -> server"
        what = f"seq {ev.seq:,} ({_bytes(ev.length)})" if ev.length else f"a {ev.flags or 'TCP'} segment"
        why = f" ({ev.note})" if ev.note else ""
        self._tell(ev.t, "router", (one, many),
                   f"Router {verb} {what}, {who}, at t={ev.t:.2f} s{why}",
                   f"{what}{why}", ev.seq if ev.length else None, key=f"router:{ev.action}")

    def _lab_stats(self, ev: LabStats) -> None:
        prev, self._stats = self._stats, dict(ev.down)
        if self._router_seen:
            return
        for counter, action in _STATS.items():
            n = ev.down.get(counter, 0) - prev.get(counter, 0)
            if n <= 0:
                continue
            verb, one, many = _ACTIONS[action]
            knob = {"drop": "loss", "corrupt": "corrupt", "duplicate": "dup", "reorder": "reorder"}.get(action)
            why = f" ({knob} {self._knobs[knob]:g} %)" if knob and self._knobs.get(knob) else ""
            if action == "blackout" and self._knobs.get("blackout_s"):
                why = f" (blackout {self._knobs['blackout_s']:g} s)"
            frames = "1 frame" if n == 1 else f"{n} frames"
            total = ev.down.get(counter, 0)
            self._tell(ev.t, "router", (one, many),
                       f"Router {verb} {frames} of the server's since its last report{why}: {total} in all",
                       f"{frames}{why}, {total} in all", key=f"router:{action}")

    def _end(self, ev: Done | Error) -> None:
        self._resolve_pending(None)
        self._tell_due(float("inf"), now=ev.t)


class Explained:
    """An :class:`~rawtui.events.EventSource` that adds the :class:`Explainer`'s lines to another's stream,
    each right after the event that caused it (before an ending ``done`` / ``error``, which stays last).
    A recording's own ``explain`` events are dropped: they are made again here, never twice.

    Other attributes (``title``, ``exhausted``...) are the wrapped source's.
    """

    def __init__(self, source: EventSource) -> None:
        self.source = source

    def __getattr__(self, name: str) -> Any:
        if name == "source":  # not set yet (copy, pickle): no recursion
            raise AttributeError(name)
        return getattr(self.source, name)

    def run(self, emit: Emit, stop: threading.Event) -> int:
        explainer = Explainer()
        feed = explainer.feed
        last_t = [0.0]  # the newest time emitted: the stream stays in time order

        def tell(x: Event) -> None:
            # A line about an earlier moment (resolved once a later event showed what it was) is stamped
            # when it is told, never before an event already emitted: the log stays sorted by time.
            x.t = max(x.t, last_t[0])
            emit(x)

        def explained(ev: Event) -> None:
            if ev.type == "explain":
                return
            out = feed(ev)
            if not out:
                last_t[0] = max(last_t[0], ev.t)
                emit(ev)
            elif ev.type in ("done", "error"):
                for x in out:
                    tell(x)
                last_t[0] = max(last_t[0], ev.t)
                emit(ev)
            else:
                last_t[0] = max(last_t[0], ev.t)
                emit(ev)
                for x in out:
                    tell(x)

        code = self.source.run(explained, stop)
        for x in explainer.flush(last_t[0]):
            tell(x)
        return code
