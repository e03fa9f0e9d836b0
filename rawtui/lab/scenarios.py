"""The teaching lab's named scenarios: for each, the impairments, the file size, what to look for on screen,
and a check that the phenomenon really appeared in the event stream.

A scenario's :meth:`Scenario.check` takes the events of one download (rawtui's own, plus the lab's
``server_tcp_info`` ground truth, ``lab_knobs`` and ``lab_stats`` that arrived over the control channel)
and returns what is missing, as sentences; an empty list means the phenomenon was seen.
:meth:`Scenario.examine` also returns the evidence found, for the demo to print.

A scenario keeps its promise at any file size the user picks between its ``min_size`` and ``max_size``:
:meth:`Scenario.for_size` adapts what depends on the size (a smaller file gets a slower bottleneck or an
earlier blackout), and :meth:`Scenario.size_problem` names the sizes it cannot work with, which the demo
refuses up front (exit 2). The limits were measured in the lab, with a margin.

Remember which side sees what: rawtui is the *receiver*. The server's retransmissions reach us as
``dup_data`` (data we already had) or as the segment that fills a hole (``segment_in`` note ``fill``);
our own ``retransmit`` events are only ever about our request. The server's own view (cwnd, ssthresh,
``ca_state`` "recovery" after a fast retransmit, "loss" after an RTO) comes from its TCP_INFO.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from rawtui.events import (
    ChecksumDrop,
    DupAck,
    DupData,
    Event,
    Handshake,
    LabStats,
    OutOfOrder,
    SegmentIn,
    SegmentOut,
    ServerTcpInfo,
    from_dict,
)

__all__ = ["SCENARIOS", "Action", "Scenario", "get_scenario", "load_events", "server_samples"]

MIB = 1 << 20


@dataclass(frozen=True, slots=True)
class Action:
    """A knob change made during the transfer, by the relay itself once ``at_bytes`` of the server's frames
    have reached it (armed before the download starts: the moment is a point in the data, on any machine)."""

    at_bytes: int
    cmd: dict[str, Any]


Findings = tuple[list[str], list[str]]  # (failures, evidence)


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    explanation: str  # what happens and why, a few lines for the screen
    look_for: str  # the one thing to watch
    size: int  # bytes of the generated file
    checker: Callable[[Sequence[Event]], Findings]
    down: dict[str, float] = field(default_factory=dict)  # knobs server -> client
    up: dict[str, float] = field(default_factory=dict)  # knobs client -> server
    stall: str | None = None  # rawtui --stall BYTES:SECONDS
    server_cc: str | None = None  # the server's congestion control (e.g. "reno"), None = kernel default
    actions: tuple[Action, ...] = ()
    min_size: int = MIB  # smaller files end before the phenomenon can show: refused
    max_size: int | None = None  # larger files would take too long: refused (None: no limit)
    size_note: str = ""  # why min_size / max_size, for the refusal
    sizing: Callable[[Scenario, int], Scenario] | None = None  # adapts the knobs to a file size

    def size_problem(self, size: int) -> str | None:
        """One sentence when a ``size``-byte file cannot show this phenomenon (the demo refuses it), else None."""
        if size < self.min_size:
            return (f"scenario {self.name} needs --size of at least {_mb(self.min_size)} (got {_mb(size)})"
                    + (f": {self.size_note}" if self.size_note else ""))
        if self.max_size is not None and size > self.max_size:
            return (f"scenario {self.name} takes --size up to {_mb(self.max_size)} (got {_mb(size)})"
                    + (f": {self.size_note}" if self.size_note else ""))
        return None

    def size_range(self) -> str:
        """The sizes this scenario accepts, for ``--list-scenarios``."""
        return f"--size {_mb(self.min_size)} to {_mb(self.max_size)}" if self.max_size else \
            f"--size {_mb(self.min_size)} or more"

    def for_size(self, size: int) -> Scenario:
        """This scenario for a ``size``-byte file (an accepted size): knobs, actions and text adapted."""
        adapted = self.sizing(self, size) if self.sizing is not None else self
        return replace(adapted, size=size)

    def check(self, events: Sequence[Event]) -> list[str]:
        """What is missing for this phenomenon (empty: it really happened)."""
        return self.checker(events)[0]

    def examine(self, events: Sequence[Event]) -> Findings:
        """(failures, evidence): the check's verdict and what was seen, in sentences."""
        return self.checker(events)

    def announcement(self) -> dict[str, Any]:
        """The scenario as announced on the control socket (becomes a LabScenario event)."""
        return {"name": self.name, "title": self.title, "explanation": self.explanation,
                "look_for": self.look_for}


def _mb(size: int) -> str:
    """A size for a sentence: 4 MB, 1.5 MB, 512 KB."""
    if size >= MIB:
        return f"{round(size / MIB, 2):g} MB"
    return f"{round(size / 1024):d} KB"


# ---------------------------------------------------------------------------------------------------
# reading the event stream


def load_events(path: str) -> list[Event]:
    """Read an NDJSON event log (``--events``); lines it cannot read are skipped."""
    out: list[Event] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                ev = from_dict(json.loads(line))
            except (ValueError, KeyError, TypeError):
                continue
            out.append(ev)
    return out


def _our_port(events: Sequence[Event]) -> int | None:
    port = None
    for ev in events:
        if isinstance(ev, Handshake):
            port = ev.local_port
    return port


def server_samples(events: Sequence[Event]) -> list[ServerTcpInfo]:
    """The server's TCP_INFO samples of *our* connection (the last handshake's port), in time order."""
    port = _our_port(events)
    return [ev for ev in events if isinstance(ev, ServerTcpInfo) and (port is None or ev.peer_port == port)]


def _data_in(events: Sequence[Event]) -> list[SegmentIn]:
    return [ev for ev in events if isinstance(ev, SegmentIn) and ev.length > 0]


def _no_samples() -> str:
    return ("no TCP_INFO samples from the lab server arrived (is the lab control channel working? "
            "rawtui needs --lab-control)")


def _lab_stat(events: Sequence[Event], direction: str, name: str) -> int:
    last = None
    for ev in events:
        if isinstance(ev, LabStats):
            last = ev
    if last is None:
        return 0
    return int((last.down if direction == "down" else last.up).get(name, 0))


# ---------------------------------------------------------------------------------------------------
# the checks


def check_slow_start(events: Sequence[Event]) -> Findings:
    samples = server_samples(events)
    if not samples:
        return [_no_samples()], []
    growth = [s for s in samples if s.ssthresh_bytes is None and s.cwnd_bytes > 0]
    if not growth:
        return ["the server left slow start before the first sample"], []
    first = growth[0]
    peak = max(growth, key=lambda s: s.cwnd_bytes)
    ratio = peak.cwnd_bytes / first.cwnd_bytes
    evidence = [(f"server cwnd in slow start: {first.cwnd_bytes // first.mss} -> "
                f"{peak.cwnd_bytes // peak.mss} segments in {peak.sample_t - first.sample_t:.2f} s "
                f"(RTT {peak.rtt_ms:.0f} ms), ssthresh still infinite")]
    failures = []
    if ratio < 8:
        failures.append(f"the server's cwnd grew only {ratio:.1f}x in slow start (expected >= 8x)")
        return failures, evidence
    # exponential: from 2x to 8x the initial window (two doublings) within a few RTTs
    t2 = next(s.sample_t for s in growth if s.cwnd_bytes >= 2 * first.cwnd_bytes)
    t8 = next(s.sample_t for s in growth if s.cwnd_bytes >= 8 * first.cwnd_bytes)
    rtt = max(0.001, min(s.rtt_ms for s in growth if s.rtt_ms > 0) / 1000.0)
    rtts = (t8 - t2) / rtt
    evidence.append(f"2x -> 8x the initial window took {rtts:.1f} RTTs (doubling every RTT would take 2)")
    if rtts > 5:
        failures.append(f"the server's cwnd took {rtts:.1f} RTTs to grow from 2x to 8x: not exponential")
    return failures, evidence


def sawtooth_cycles(samples: Sequence[ServerTcpInfo]) -> list[tuple[ServerTcpInfo, ServerTcpInfo]]:
    """(start, peak) of each congestion-avoidance climb that ended in a congestion event: the cwnd at the end
    of one recovery, and its highest value before the next recovery (or RTO) began."""
    cycles = []
    start: ServerTcpInfo | None = None
    peak: ServerTcpInfo | None = None
    for s in samples:
        if s.ca_state in ("recovery", "loss", "cwr"):
            if start is not None and peak is not None and peak.cwnd_bytes >= start.cwnd_bytes + 3 * max(1, s.mss):
                cycles.append((start, peak))
            start = peak = None
        elif s.ssthresh_bytes is not None:  # after the first congestion event: congestion avoidance
            if start is None:
                start = peak = s
            elif peak is None or s.cwnd_bytes > peak.cwnd_bytes:
                peak = s
    return cycles


def check_sawtooth(events: Sequence[Event]) -> Findings:
    samples = [s for s in server_samples(events) if s.state == "ESTABLISHED" and s.cwnd_bytes > 0]
    if not samples:
        return [_no_samples()], []
    cycles = sawtooth_cycles(samples)
    drops = _lab_stat(events, "down", "queue_drops")
    failures, evidence = [], []
    if cycles:
        slopes = []
        for a, b in cycles:
            rtt = max(0.001, (a.rtt_ms + b.rtt_ms) / 2000.0)
            rtts = max(1e-3, (b.sample_t - a.sample_t) / rtt)
            slopes.append((b.cwnd_bytes - a.cwnd_bytes) / max(1, b.mss) / rtts)
        slope = sorted(slopes)[len(slopes) // 2]
        a, b = cycles[len(cycles) // 2]
        evidence.append(f"{len(cycles)} teeth: cwnd climbs {a.cwnd_bytes // a.mss} -> {b.cwnd_bytes // b.mss} "
                        f"segments at ~{slope:.1f} segment per RTT, then is cut at a queue overflow "
                        f"(the router's queue dropped {drops} frames)")
        if not 0.2 <= slope <= 3.0:
            failures.append(f"the climb between cuts is {slope:.1f} segments per RTT, not linear (~1)")
    if len(cycles) < 3:
        failures.append(f"only {len(cycles)} congestion-avoidance climbs ended by a cut (a sawtooth needs >= 3)")
    if drops == 0:
        failures.append("the bottleneck queue never overflowed (no queue drops at the router)")
    return failures, evidence


def _fast_retransmits(events: Sequence[Event]) -> list[tuple[float, float, int]]:
    """(first dup ACK time, fill time, dup ACKs sent) for each hole filled after >= 3 dup ACKs."""
    episodes = []
    dup_first: dict[int, float] = {}
    dup_count: dict[int, int] = {}
    for ev in events:
        if isinstance(ev, DupAck) and ev.direction == "out":
            dup_first.setdefault(ev.ack, ev.t)
            dup_count[ev.ack] = max(dup_count.get(ev.ack, 0), ev.count)
        elif isinstance(ev, SegmentIn) and ev.note == "fill" and ev.length > 0:
            for ack in list(dup_first):
                if ev.seq <= ack < ev.seq + ev.length:
                    if dup_count[ack] >= 3:
                        episodes.append((dup_first[ack], ev.t, dup_count[ack]))
                    del dup_first[ack], dup_count[ack]
    return episodes


def check_fast_retransmit(events: Sequence[Event]) -> Findings:
    samples = server_samples(events)
    episodes = _fast_retransmits(events)
    rto_min_ms = min((s.rto_ms for s in samples if s.rto_ms > 0), default=200.0)
    quick = [e for e in episodes if (e[1] - e[0]) * 1000.0 < rto_min_ms]
    evidence = []
    if quick:
        first = quick[0]
        evidence.append(f"{len(quick)} holes filled by the server's retransmission after >= 3 dup ACKs, "
                        f"faster than its RTO ({rto_min_ms:.0f} ms); first at {first[1]:.2f} s: "
                        f"{first[2]} dup ACKs, filled {(first[1] - first[0]) * 1000:.0f} ms after the first")
    failures = []
    if not quick:
        failures.append("no hole was filled after >= 3 dup ACKs within the server's RTO (no fast retransmit)")
    if not samples:
        failures.append(_no_samples())
    else:
        recov = [s for s in samples if s.ca_state == "recovery"]
        if recov:
            evidence.append(f"server TCP_INFO: ca_state 'recovery' (fast recovery) seen {len(recov)} times")
        else:
            failures.append("the server never reported ca_state 'recovery' (fast recovery)")
        if quick:
            before = [s for s in samples if s.sample_t and s.t <= quick[0][1]]
            if before and (before[-1].total_rto > 0 or before[-1].ca_state == "loss"):
                failures.append("the server had an RTO before the first fast retransmit")
    return failures, evidence


def check_timeout(events: Sequence[Event]) -> Findings:
    data = _data_in(events)
    gap_start = gap_end = None
    best = 0.0
    for a, b in itertools.pairwise(data):
        if b.t - a.t > best:
            best, gap_start, gap_end = b.t - a.t, a.t, b.t
    failures: list[str] = []
    evidence: list[str] = []
    if gap_start is None or gap_end is None or best < 1.0:
        return [f"no gap >= 1 s in the data from the server (longest {best:.2f} s)"], evidence
    evidence.append(f"nothing from the server for {best:.2f} s ({gap_start:.2f} s -> {gap_end:.2f} s)")
    samples = server_samples(events)
    after = [s for s in samples if s.t >= gap_start]
    rto_seen = [s for s in after if s.ca_state == "loss" or s.backoff > 0 or s.total_rto > 0]
    dup_after = [ev for ev in events if isinstance(ev, DupData) and gap_end - 0.01 <= ev.t <= gap_end + 1.0]
    fill_after = [ev for ev in data if ev.note == "fill" and gap_end - 0.01 <= ev.t <= gap_end + 1.0]
    before = [s for s in samples if s.t <= gap_start]
    retrans_grew = bool(before and after and after[-1].retrans_total > before[-1].retrans_total)
    if rto_seen:
        s = rto_seen[0]
        evidence.append(f"server TCP_INFO: ca_state '{s.ca_state}', backoff {max(x.backoff for x in after)}, "
                        f"RTO {max(x.rto_ms for x in after):.0f} ms (exponential backoff)")
    if dup_after or fill_after or retrans_grew:
        evidence.append("then the server's retransmission arrived: "
                        + (f"{len(dup_after)} dup data" if dup_after else "")
                        + (f" {len(fill_after)} hole fills" if fill_after else "")
                        + (" (server retransmissions counted)" if retrans_grew else ""))
    else:
        failures.append("no retransmission from the server after the gap")
    if not samples:
        failures.append(_no_samples())
    elif not rto_seen:
        failures.append("the server never reported an RTO (ca_state 'loss' or backoff > 0) after the gap")
    return failures, evidence


def check_zero_window(events: Sequence[Event]) -> Findings:
    """Our window at 0, and the server's probes while it is (Linux probes with an old sequence number,
    snd.una - 1 and no data, so the receiver must answer with an ACK carrying its current window)."""
    zero_since: float | None = None
    zero_out: list[SegmentOut] = []
    probes: list[SegmentIn] = []
    reopened: SegmentOut | None = None
    for ev in events:
        if isinstance(ev, SegmentOut) and "R" not in ev.flags:
            if ev.window == 0:
                zero_out.append(ev)
                if zero_since is None:
                    zero_since = ev.t
            elif zero_since is not None and reopened is None and ev.t >= zero_since:
                reopened = ev
        elif (isinstance(ev, SegmentIn) and zero_out and reopened is None and ev.length <= 1
              and not set(ev.flags) & set("SFR") and ev.note in ("zero-window-probe", "old", "")):
            probes.append(ev)
    failures, evidence = [], []
    if zero_out:
        evidence.append(f"we advertised a zero window from {zero_out[0].t:.2f} s ({len(zero_out)} segments)")
    else:
        failures.append("rawtui never advertised a zero window")
    if probes:
        gaps = [round(b.t - a.t, 2) for a, b in itertools.pairwise(probes)]
        evidence.append(f"{len(probes)} window probes from the server (no data, sequence number just below "
                        "what we expect), each answered with our zero window"
                        + (f"; spaced {gaps} s apart: the persist timer backs off" if gaps else ""))
    else:
        failures.append("no window probe from the server arrived while our window was zero")
    if reopened is not None:
        evidence.append(f"then we opened the window again ({reopened.note or 'ACK'} with a non-zero window)")
    samples = server_samples(events)
    if any(s.snd_wnd == 0 for s in samples):
        backoff = max(s.backoff for s in samples)
        evidence.append(f"server TCP_INFO agrees: it saw a zero window; its probe timer backed off {backoff} times")
    return failures, evidence


def check_reorder(events: Sequence[Event]) -> Findings:
    ooo = [ev for ev in events if isinstance(ev, OutOfOrder)]
    fills = [ev for ev in _data_in(events) if ev.note == "fill"]
    reordered = _lab_stat(events, "down", "reordered")
    failures, evidence = [], []
    evidence.append(f"the router held back {reordered} frames; {len(ooo)} segments arrived out of order, "
                    f"{len(fills)} holes filled")
    if not ooo:
        failures.append("no segment arrived out of order")
    if not fills:
        failures.append("no hole was filled")
    samples = server_samples(events)
    if samples:
        evidence.append(f"server TCP_INFO: reordering seen {samples[-1].reord_seen} times, "
                        f"{samples[-1].retrans_total} segments retransmitted (spurious ones included)")
    return failures, evidence


def check_corruption(events: Sequence[Event]) -> Findings:
    drops = [ev for ev in events if isinstance(ev, ChecksumDrop)]
    corrupted = _lab_stat(events, "down", "corrupted")
    failures, evidence = [], []
    if drops:
        layers = sorted({d.layer for d in drops})
        evidence.append(f"{len(drops)} frames dropped for a bad {'/'.join(layers)} checksum "
                        f"(the router flipped a bit in {corrupted})")
    else:
        failures.append("no checksum drop (checksum_drop events) at rawtui")
    return failures, evidence


def check_lossy_long_path(events: Sequence[Event]) -> Findings:
    failures, evidence = [], []
    hs = [ev for ev in events if isinstance(ev, Handshake)]
    rtt = hs[-1].rtt_ms if hs else 0.0
    samples = server_samples(events)
    if samples:
        rtt = max(rtt, max(s.rtt_ms for s in samples))
    fills = sum(1 for ev in _data_in(events) if ev.note == "fill")
    dups = sum(1 for ev in events if isinstance(ev, DupData))
    ooo = sum(1 for ev in events if isinstance(ev, OutOfOrder))
    retrans = max((s.retrans_total for s in samples), default=0)
    evidence.append(f"RTT {rtt:.0f} ms; {ooo} out-of-order arrivals, {fills} holes filled by retransmissions, "
                    f"{dups} duplicate segments" + (f"; the server counts {retrans} retransmissions" if retrans else ""))
    if rtt < 50:
        failures.append(f"the RTT stayed below 50 ms (max {rtt:.0f} ms): the long path is missing")
    if fills == 0 and dups == 0 and retrans == 0:
        failures.append("no retransmission reached rawtui: the loss is missing")
    if ooo == 0:
        failures.append("no out-of-order arrivals at rawtui")
    return failures, evidence


# ---------------------------------------------------------------------------------------------------
# sizing: what a scenario changes for a smaller file


def _sawtooth_explanation(rate_bps: float, queue: float) -> str:
    return (f"A {rate_bps / 1e6:g} Mbit/s bottleneck with a {queue:g}-frame queue and 10 ms of delay, and the server "
            "switched to Reno. After slow start the window grows by one segment per round trip until the queue "
            "overflows; the lost segment is fast-retransmitted and the window is halved. Again and again.")


def _size_sawtooth(s: Scenario, size: int) -> Scenario:
    """Under 3 MB the 10 Mbit/s, 20-frame bottleneck ends after 1-3 teeth (about 0.5 MB each): a 5 Mbit/s
    one with a 10-frame queue cuts the window every ~0.2 MB (1 MB: 4-5 teeth)."""
    if size >= 3 * MIB:
        return s
    down = {**s.down, "rate_bps": 5_000_000, "queue": 10}
    return replace(s, down=down, explanation=_sawtooth_explanation(down["rate_bps"], down["queue"]))


def _timeout_explanation(at: int) -> str:
    return (f"After {_mb(at)} the link goes dark in both directions for 3 s. No duplicate ACKs can come back, "
            "so the server's only way out is its retransmission timer: it resends after its RTO, hears nothing, "
            "doubles the RTO and tries again, until the link returns.")


def _size_timeout(s: Scenario, size: int) -> Scenario:
    """Under 3 MB the blackout comes after a third of the file (not after 1 MB), and the link is capped so
    the file takes about 2 s: the rest is still on its way when the blackout starts."""
    if size >= 3 * MIB:
        return s
    at = size // 3
    rate = max(1_000_000, round(size * 8 / 2.0 / 100_000) * 100_000)
    return replace(s, down={**s.down, "rate_bps": rate}, explanation=_timeout_explanation(at),
                   actions=tuple(replace(a, at_bytes=at) for a in s.actions))


# ---------------------------------------------------------------------------------------------------
# the scenarios

SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            name="slow-start",
            title="Slow start: the congestion window doubles every round trip",
            explanation=(
                "A clean 50 ms path (40 Mbit/s). A new connection does not know the path's capacity, so the "
                "server starts with 10 segments in flight and, for every segment acknowledged, allows one "
                "more: the window doubles each round trip until loss or the receiver's window stops it."
            ),
            look_for="the server's cwnd (ground truth) curving upward: 10, 20, 40, 80 ... segments per RTT",
            size=4 * MIB,
            down={"delay_ms": 50, "rate_bps": 40_000_000, "queue": 400},
            checker=check_slow_start,
        ),
        Scenario(
            name="sawtooth",
            title="Sawtooth: congestion avoidance against a bottleneck queue (Reno)",
            explanation=_sawtooth_explanation(10_000_000, 20),
            look_for="cwnd climbing linearly, halving at each queue overflow: a sawtooth",
            size=4 * MIB,
            down={"rate_bps": 10_000_000, "queue": 20, "delay_ms": 10},
            server_cc="reno",
            checker=check_sawtooth,
            sizing=_size_sawtooth,
        ),
        Scenario(
            name="fast-retransmit",
            title="Fast retransmit: isolated losses repaired without waiting for a timeout",
            explanation=(
                "0.5 % of the server's segments are dropped at random (10 ms delay). Each later segment "
                "arrives out of order; rawtui answers the first three at once with duplicate ACKs (with "
                "SACK blocks), then, as Linux does, one compressed SACK per millisecond. After three "
                "duplicate ACKs the server resends the missing segment at once: fast retransmit, well "
                "before its retransmission timer (>= 200 ms) would fire."
            ),
            look_for="out-of-order arrivals, dup ACKs counting 1, 2, 3, then the hole filled",
            size=4 * MIB,
            down={"loss": 0.5, "delay_ms": 10},
            checker=check_fast_retransmit,
        ),
        Scenario(
            name="timeout",
            title="Retransmission timeout: a blackout long enough for RTO and exponential backoff",
            explanation=_timeout_explanation(1 * MIB),
            look_for="the transfer freezing, then the server's retransmission after the blackout",
            size=3 * MIB,
            down={"delay_ms": 10},
            actions=(Action(1 * MIB, {"cmd": "blackout", "seconds": 3.0, "dir": "both"}),),
            checker=check_timeout,
            sizing=_size_timeout,
        ),
        Scenario(
            name="zero-window",
            title="Zero window: the receiver stops reading and the server probes",
            explanation=(
                "rawtui stops reading after 1 MB for 3 s. Its receive buffer fills, the window it "
                "advertises shrinks to 0 and the server must stop sending. The server's persist timer "
                "then sends window probes (backing off) until rawtui reads again and opens the window."
            ),
            look_for="our advertised window falling to 0, window probes, then a window update",
            size=12 * MIB,
            stall="1000000:3",
            checker=check_zero_window,
            min_size=10 * MIB,
            size_note="rawtui's 8 MB receive buffer must fill up after it stops reading at 1 MB, with more "
            "of the file still to come",
        ),
        Scenario(
            name="reorder",
            title="Reordering: segments overtaking each other",
            explanation=(
                "2 % of the server's segments are held back behind the next three (5 ms delay). Each "
                "early segment leaves a hole that the late one fills a moment later. Three duplicate ACKs "
                "look exactly like a loss, so the server may retransmit for nothing."
            ),
            look_for="out-of-order arrivals and holes filled by the late original",
            size=4 * MIB,
            down={"reorder": 2, "delay_ms": 5},
            checker=check_reorder,
        ),
        Scenario(
            name="corruption",
            title="Corruption: checksums at work",
            explanation=(
                "1 % of the server's segments get one bit flipped in their payload on the router. The "
                "TCP checksum no longer matches, so rawtui drops them as if they were lost, and the "
                "server retransmits. The file still arrives byte-exact."
            ),
            look_for="checksum drops counting up, and a byte-exact file at the end",
            size=4 * MIB,
            down={"corrupt": 1},
            checker=check_corruption,
        ),
        Scenario(
            name="lossy-long-path",
            title="A lossy long path: delay and loss together",
            explanation=(
                "30 ms each way (60 ms RTT) and 1 % loss from the server. Every loss costs at least a "
                "round trip to repair and shrinks the window, and on a long path the window takes long "
                "to grow back: throughput falls far below the link's capacity."
            ),
            look_for="a long RTT, retransmissions, and a slow, uneven transfer",
            size=2 * MIB,
            down={"delay_ms": 30, "loss": 1},
            up={"delay_ms": 30},
            checker=check_lossy_long_path,
        ),
    )
}


def get_scenario(name: str) -> Scenario:
    try:
        return SCENARIOS[name]
    except KeyError:
        raise KeyError(f"unknown scenario {name!r} (scenarios: {', '.join(SCENARIOS)})") from None
