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

Each scenario has two paces. As defined here it is the *fast* run (``rawtui demo --fast``: a few seconds
or less, for CI and the tests). :meth:`Scenario.watchable` gives the default run, made to be watched: a
slower, longer path (``watch``: rate, delay, size, more actions) on which the phenomenon repeats for
15-60 s (``about_s``, measured in the lab). :meth:`Scenario.what_you_saw` sums a run up with its numbers,
for the end of the demo and the live view's done screen.

Every scenario runs over IPv6 as it is (``rawtui demo --ipv6 --scenario NAME``: a dual-stack lab, the URL
with the server's IPv6 literal, the relay impairing IPv6 frames): nothing here depends on the address
family. The checks read rawtui's events, the server's TCP_INFO and the router's counters, none of which
names an address, and an IPv6 frame's 20 more header bytes move an action's byte mark by 1.4 %.
"""

from __future__ import annotations

import itertools
import json
import statistics
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
    PeerRetransmit,
    Progress,
    SegmentIn,
    SegmentOut,
    ServerTcpInfo,
    from_dict,
)
from rawtui.lab.compare import RunMetrics, run_metrics
from rawtui.lab.events import server_frames_lost

__all__ = ["BUFFERBLOAT_MARGIN", "RANDOM_LOSS_MARGIN", "SCENARIOS", "Action", "Scenario", "get_scenario", "load_events",
           "server_samples"]

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
    about_s: float = 0.0  # how long a run at ``size`` takes, roughly (measured in the lab)
    watch: dict[str, Any] = field(default_factory=dict)  # the fields the watchable run changes
    summary: Callable[[Sequence[Event]], list[str]] | None = None  # what_you_saw's sentences
    # ``--compare``: the verdict on the runs side by side (algorithm -> numbers), and what it shows
    compare: Callable[[dict[str, RunMetrics]], Findings | None] | None = None  # None: nothing to compare
    compare_look_for: str = ""

    def watchable(self) -> Scenario:
        """The default run, made to be watched (15-60 s; ``watch``); this scenario itself when it has
        none. Its actions scale with a ``--size`` other than its own (:meth:`for_size`)."""
        if not self.watch:
            return self
        return replace(self, **{"sizing": _scale_actions, **self.watch}, watch={})

    @property
    def pace(self) -> str:
        """How long a run takes, for the announcement: "about 30 s" (or "a few seconds")."""
        if self.about_s >= 5:
            return f"about {self.about_s:.0f} s"
        return "about a second" if self.about_s < 2 else "a few seconds"

    def what_you_saw(self, events: Sequence[Event]) -> list[str]:
        """The run summed up for the student, a few sentences with their numbers (from the events: the
        server's TCP_INFO, the router's counters, rawtui's own receipts)."""
        lines = self.summary(events) if self.summary is not None else []
        return lines or self.examine(events)[1]

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
        about = adapted.about_s * size / self.size if self.size and size != self.size else adapted.about_s
        return replace(adapted, size=size, about_s=round(about, 1))

    def check(self, events: Sequence[Event]) -> list[str]:
        """What is missing for this phenomenon (empty: it really happened)."""
        return self.checker(events)[0]

    def examine(self, events: Sequence[Event]) -> Findings:
        """(failures, evidence): the check's verdict and what was seen, in sentences."""
        return self.checker(events)

    def announcement(self) -> dict[str, Any]:
        """The scenario as announced on the control socket (becomes a LabScenario event)."""
        return {"name": self.name, "title": f"{self.title} ({self.pace})", "explanation": self.explanation,
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


def _cc_of(events: Sequence[Event]) -> str:
    """The server's congestion control, as its TCP_INFO samples say ("" if none does)."""
    return next((s.cc for s in reversed(server_samples(events)) if s.cc), "")


def check_bufferbloat(events: Sequence[Event]) -> Findings:
    m = run_metrics_of(events)
    if not m.rtt_samples:
        return [_no_samples()], []
    evidence = [(f"{m.cc_seen or 'the server'}: mean RTT {m.rtt_mean_ms:.0f} ms over {m.rtt_samples} TCP_INFO "
                f"samples, up to {m.rtt_max_ms:.0f} ms, on a path of {m.min_rtt_ms:.0f} ms: {m.queue_delay_ms:.0f} ms "
                f"of queueing on average (the router's queue held up to {m.queue_max} frames)")]
    failures = []
    if m.queue_max < 5:
        failures.append(f"the router's queue never grew (at most {m.queue_max} frames): no bottleneck")
    elif m.cc_seen == "bbr":  # the other side of the lesson: nothing to fill
        evidence.append("bbr paced at the bottleneck's rate: the queue stayed short")
    elif m.queue_max < 20:
        failures.append(f"the router's queue never grew (at most {m.queue_max} frames): no bottleneck")
    elif m.rtt_max_ms < 3 * max(1.0, m.min_rtt_ms):
        failures.append(f"{m.cc_seen or 'the server'} never filled the queue: its RTT stayed below 3x the "
                        f"path's ({m.rtt_max_ms:.0f} ms, path {m.min_rtt_ms:.0f} ms)")
    return failures, evidence


def saw_bufferbloat(events: Sequence[Event]) -> list[str]:
    return check_bufferbloat(events)[1]


def check_random_loss(events: Sequence[Event]) -> Findings:
    m = run_metrics_of(events)
    samples = server_samples(events)
    if not samples:
        return [_no_samples()], []
    cuts = [c for c in _congestion_cuts(samples) if c[2] == "recovery"]
    evidence = [(f"{m.cc_seen or 'the server'}: {m.goodput_bps / 1e6:.1f} Mbit/s; the router dropped "
                f"{m.router_drops} frames at random, the server retransmitted {m.retrans} segments and went "
                f"through {len(cuts)} fast recoveries")]
    failures = []
    if m.router_drops == 0:
        failures.append("the router dropped nothing: the random loss is missing")
    if m.retrans == 0:
        failures.append("the server retransmitted nothing")
    return failures, evidence


def saw_random_loss(events: Sequence[Event]) -> list[str]:
    return check_random_loss(events)[1]


def run_metrics_of(events: Sequence[Event]) -> RunMetrics:
    return run_metrics(_cc_of(events), events)


BUFFERBLOAT_MARGIN = 1.5  # BBR's mean RTT at least 1.5 times below a loss-based run's (measured: 2.6-7.2 times
# lower; 2.6-2.7 with a 2 MB file, or with the live view drawing each run on a 2-core machine)
RANDOM_LOSS_MARGIN = 1.5  # BBR's goodput at least 1.5 times Reno's (measured: 2.4-5.2 times)


def compare_bufferbloat(runs: dict[str, RunMetrics]) -> Findings | None:
    """BBR against each loss-based run: its mean RTT (the server's TCP_INFO samples) lower by
    :data:`BUFFERBLOAT_MARGIN` at least. None without BBR and a loss-based algorithm to compare."""
    bbr = runs.get("bbr")
    others = [m for cc, m in runs.items() if cc in ("reno", "cubic")]
    if bbr is None or not others:
        return None
    failures, evidence = [], []
    for m in others:
        ratio = m.rtt_mean_ms / bbr.rtt_mean_ms if bbr.rtt_mean_ms > 0 else 0.0
        evidence.append(f"{m.cc}: mean RTT {m.rtt_mean_ms:.0f} ms ({m.queue_delay_ms:.0f} ms in queues, the router's "
                        f"queue up to {m.queue_max} frames); bbr: {bbr.rtt_mean_ms:.0f} ms ({bbr.queue_delay_ms:.0f} ms, "
                        f"up to {bbr.queue_max} frames): {ratio:.1f} times lower")
        if not ratio >= BUFFERBLOAT_MARGIN:
            failures.append(f"bbr's mean RTT ({bbr.rtt_mean_ms:.0f} ms) is not {BUFFERBLOAT_MARGIN:g} times below "
                            f"{m.cc}'s ({m.rtt_mean_ms:.0f} ms)")
    return failures, evidence


def compare_random_loss(runs: dict[str, RunMetrics]) -> Findings | None:
    """BBR's goodput against Reno's (else CUBIC's): higher by :data:`RANDOM_LOSS_MARGIN` at least. None
    without BBR and a loss-based algorithm to compare."""
    bbr = runs.get("bbr")
    other = runs.get("reno") or runs.get("cubic")
    if bbr is None or other is None:
        return None
    ratio = bbr.goodput_bps / other.goodput_bps if other.goodput_bps > 0 else 0.0
    evidence = [f"{m.cc}: {m.goodput_bps / 1e6:.1f} Mbit/s, {m.router_drops} frames lost at the router, "
                f"{m.retrans} retransmitted" for m in runs.values()]
    evidence.append(f"bbr's goodput is {ratio:.1f} times {other.cc}'s")
    failures = []
    if not ratio >= RANDOM_LOSS_MARGIN:
        failures.append(f"bbr's goodput ({bbr.goodput_bps / 1e6:.1f} Mbit/s) is not {RANDOM_LOSS_MARGIN:g} times "
                        f"{other.cc}'s ({other.goodput_bps / 1e6:.1f} Mbit/s)")
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


def _scale_actions(s: Scenario, size: int) -> Scenario:
    """A watchable run for another file size: its actions fall at the same fractions of the file."""
    if size == s.size or not s.actions:
        return s
    return replace(s, actions=tuple(replace(a, at_bytes=a.at_bytes * size // s.size) for a in s.actions))


# ---------------------------------------------------------------------------------------------------
# what you saw: the run summed up with its numbers


def _ms_of(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0


def _rtt_s(events: Sequence[Event], samples: Sequence[ServerTcpInfo]) -> float:
    """The path's round trip, seconds: the server's smoothed RTT (median), else our handshake's."""
    rtts = [s.rtt_ms for s in samples if s.rtt_ms > 0]
    if rtts:
        return _median(rtts) / 1000.0
    hs = [ev for ev in events if isinstance(ev, Handshake)]
    return hs[-1].rtt_ms / 1000.0 if hs else 0.0


def _router(events: Sequence[Event]) -> dict[str, int]:
    last = None
    for ev in events:
        if isinstance(ev, LabStats):
            last = ev
    return dict(last.down) if last is not None else {}


def _peer_retransmits(events: Sequence[Event]) -> dict[str, int]:
    """The server's retransmissions as rawtui classified them (kind -> count; empty without them)."""
    kinds: dict[str, int] = {}
    for ev in events:
        if isinstance(ev, PeerRetransmit):
            kinds[ev.kind] = kinds.get(ev.kind, 0) + 1
    return kinds


def _congestion_cuts(samples: Sequence[ServerTcpInfo]) -> list[tuple[ServerTcpInfo, ServerTcpInfo, str]]:
    """(before, lowest, ca_state) for each congestion event the server went through: the last sample before
    it entered recovery / loss, and the one with the smallest cwnd until it left (Linux lowers the cwnd
    step by step in recovery, PRR, and may raise it again before leaving)."""
    cuts = []
    before: ServerTcpInfo | None = None
    low: ServerTcpInfo | None = None
    entered: str | None = None
    for s in samples:
        if s.ca_state in ("recovery", "loss"):
            if entered is None:
                entered, low = s.ca_state, s
            elif low is not None and s.cwnd_bytes < low.cwnd_bytes:
                low = s
        elif entered is not None:
            if before is not None and low is not None:
                cuts.append((before, low, entered))
            entered, before = None, s
        else:
            before = s
    return cuts


def _cut_words(cuts: Sequence[tuple[ServerTcpInfo, ServerTcpInfo, str]]) -> str:
    fast = [c for c in cuts if c[2] == "recovery" and 0 < c[1].cwnd_bytes < c[0].cwnd_bytes]
    if not fast:
        return ""
    ratio = _median([b.cwnd_bytes / a.cwnd_bytes for a, b, _ in fast])
    return f"the server cut its cwnd {len(fast)} times (to {ratio:.0%} of it, median) in fast recovery"


def _server_retrans(samples: Sequence[ServerTcpInfo]) -> int:
    return max((s.retrans_total for s in samples), default=0)


def _repairs(events: Sequence[Event], samples: Sequence[ServerTcpInfo]) -> str:
    """How the server's retransmissions reached us: classified (PeerRetransmit), else the fast-retransmit
    episodes, the hole fills and the duplicates."""
    kinds = _peer_retransmits(events)
    total = _server_retrans(samples)
    own = f"; the server counts {total} retransmissions" if samples else ""
    if kinds:
        words = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items(), key=lambda kv: -kv[1]))
        return f"{sum(kinds.values())} retransmissions by the server reached rawtui ({words}){own}"
    fills = sum(1 for ev in events if isinstance(ev, SegmentIn) and ev.note == "fill" and ev.length > 0)
    dups = sum(1 for ev in events if isinstance(ev, DupData))
    return f"{fills} holes filled and {dups} duplicate segments reached rawtui{own}"


def _freezes(events: Sequence[Event], at_least: float = 0.5) -> list[tuple[float, float]]:
    """(start, length) of each time no new byte arrived for ``at_least`` seconds (from the progress
    events, which come every 0.1 s whatever arrives)."""
    out = []
    last_bytes, since = -1, 0.0
    for ev in events:
        if not isinstance(ev, Progress):
            continue
        if ev.bytes != last_bytes:
            if last_bytes > 0 and ev.t - since >= at_least:
                out.append((since, ev.t - since))
            last_bytes, since = ev.bytes, ev.t
    return out


def saw_slow_start(events: Sequence[Event]) -> list[str]:
    samples = [s for s in server_samples(events) if s.cwnd_bytes > 0 and s.mss > 0]
    growth = [s for s in samples if s.ssthresh_bytes is None]
    if not growth:
        return []
    first, peak = growth[0], max(growth, key=lambda s: s.cwnd_bytes)
    rtt = _rtt_s(events, growth[:5])
    took = peak.sample_t - first.sample_t
    lines = [(f"slow start: the server's cwnd went from {first.cwnd_bytes // first.mss} to "
             f"{peak.cwnd_bytes // peak.mss} segments (x{peak.cwnd_bytes / first.cwnd_bytes:.0f}) in {took:.1f} s, "
             f"doubling every round trip (which grew from {_ms_of(rtt)} to {_ms_of(peak.rtt_ms / 1000)} as the "
             "router's queue filled)")]
    restarts = [c for c in _congestion_cuts(samples) if c[2] == "loss"]
    if restarts:
        low = min(b.cwnd_bytes // b.mss for _, b, _ in restarts)
        lines.append(f"{len(restarts)} times a blackout made the server time out: it started again from "
                     f"{low} segment{'s' if low > 1 else ''} and doubled again, up to its ssthresh (half the "
                     "window it had)")
    return lines


def saw_sawtooth(events: Sequence[Event]) -> list[str]:
    samples = [s for s in server_samples(events) if s.state == "ESTABLISHED" and s.cwnd_bytes > 0]
    cycles = sawtooth_cycles(samples)
    if not cycles:
        return []
    lows = [a.cwnd_bytes // max(1, a.mss) for a, _ in cycles]
    highs = [b.cwnd_bytes // max(1, b.mss) for _, b in cycles]
    period = _median([b.sample_t - a.sample_t for a, b in cycles])
    drops = _router(events).get("queue_drops", 0)
    return [(f"{len(cycles)} teeth: each time the cwnd climbed one segment per round trip from about "
            f"{_median(lows):.0f} to {_median(highs):.0f} segments (in {period:.1f} s), the router's queue "
            f"overflowed and the window was halved ({drops} frames dropped by the full queue)"),
            _repairs(events, samples)]


def saw_fast_retransmit(events: Sequence[Event]) -> list[str]:
    samples = server_samples(events)
    router = _router(events)
    losses = server_frames_lost(router)
    episodes = _fast_retransmits(events)
    rtt = _rtt_s(events, samples)
    kinds = _peer_retransmits(events)
    fast = kinds.get("fast", len(episodes))
    lines = []
    if episodes:
        waits = [fill - first for first, fill, _ in episodes]
        within = sum(1 for w in waits if rtt > 0 and w <= 1.5 * rtt)
        lines.append(f"{losses} loss{'es' if losses != 1 else ''} at the router, {fast} repaired by fast "
                     "retransmit: the hole was "
                     f"filled {_ms_of(_median(waits))} (median) after the first dup ACK"
                     + (f", {within} of {len(waits)} within about one round trip ({_ms_of(rtt)})" if rtt > 0 else ""))
    else:
        lines.append(f"{losses} loss{'es' if losses != 1 else ''} at the router")
    timeouts = kinds.get("timeout", 0) or max((s.total_rto for s in samples), default=0)
    if timeouts:
        lines.append(f"{timeouts} needed the retransmission timer instead")
    cut = _cut_words(_congestion_cuts(samples))
    if cut:
        lines.append(cut)
    lines.append(_repairs(events, samples))
    return lines


def saw_timeout(events: Sequence[Event]) -> list[str]:
    samples = server_samples(events)
    freezes = [f for f in _freezes(events) if f[1] >= 1.0]
    router = _router(events)
    lines = []
    if freezes:
        lines.append(f"the transfer froze {len(freezes)} times ("
                     + ", ".join(f"{length:.1f} s at {start:.1f} s" for start, length in freezes)
                     + f"): the router dropped {router.get('blackout_drops', 0)} frames in its blackouts")
    rtos = max((s.total_rto for s in samples), default=0)
    backoff = max((s.backoff for s in samples), default=0)
    rto = max((s.rto_ms for s in samples), default=0.0)
    if samples:
        lines.append(f"the server's retransmission timer fired {rtos or 'several'} times, backing off up to "
                     f"{backoff} doublings (RTO up to {rto:.0f} ms); each time the link came back, its "
                     "retransmission got through and the window started again from one segment")
    timeouts = [ev for ev in events if isinstance(ev, PeerRetransmit) and ev.kind == "timeout"]
    if timeouts:
        lines.append(f"rawtui saw {len(timeouts)} timeout retransmissions, after silences of "
                     + ", ".join(f"{ev.silence_ms / 1000:.1f} s" for ev in timeouts[:6]))
    return lines


def saw_zero_window(events: Sequence[Event]) -> list[str]:
    zero = [ev for ev in events if isinstance(ev, SegmentOut) and ev.window == 0 and "R" not in ev.flags]
    if not zero:
        return []
    reopen = next((ev for ev in events if isinstance(ev, SegmentOut) and ev.window > 0 and ev.t > zero[0].t
                   and "R" not in ev.flags), None)
    closed = (reopen.t if reopen is not None else zero[-1].t) - zero[0].t
    probes = [ev for ev in events if isinstance(ev, SegmentIn) and zero[0].t <= ev.t
              and (reopen is None or ev.t <= reopen.t) and ev.length <= 1 and not set(ev.flags) & set("SFR")]
    gaps = [b.t - a.t for a, b in itertools.pairwise(probes)]
    lines = [f"rawtui's window was 0 for {closed:.1f} s: the server sent {len(probes)} window probes"
             + (", spaced " + ", ".join(f"{g:.1f}" for g in gaps[:8]) + " s apart: its persist timer doubles"
                if gaps else "")]
    if reopen is not None:
        lines.append(f"at {reopen.t:.1f} s rawtui read again and opened its window; the server resumed at once")
    return lines


def saw_reorder(events: Sequence[Event]) -> list[str]:
    samples = server_samples(events)
    held = _router(events).get("reordered", 0)
    ooo = [ev for ev in events if isinstance(ev, OutOfOrder)]
    fills = [ev for ev in events if isinstance(ev, SegmentIn) and ev.note == "fill" and ev.length > 0]
    lines = [(f"the router held back {held} frames; {len(ooo)} segments arrived above a hole, and "
             f"{len(fills)} holes were filled, most by the late original")]
    kinds = _peer_retransmits(events)
    spurious = kinds.get("spurious", 0) or sum(1 for ev in events if isinstance(ev, DupData))
    if samples:
        lines.append(f"the server detected reordering {samples[-1].reord_seen} times and retransmitted "
                     f"{_server_retrans(samples)} segments, {spurious} of them for nothing (rawtui had the data)")
    return lines


def saw_corruption(events: Sequence[Event]) -> list[str]:
    samples = server_samples(events)
    drops = [ev for ev in events if isinstance(ev, ChecksumDrop)]
    corrupted = _router(events).get("corrupted", 0)
    return [(f"the router flipped a bit in {corrupted} frames; rawtui's checksum caught {len(drops)} and dropped "
            "them, as if lost"), _repairs(events, samples) + ": the file arrived byte-exact"]


def saw_lossy_long_path(events: Sequence[Event]) -> list[str]:
    samples = server_samples(events)
    rtt = _rtt_s(events, samples)
    router = _router(events)
    done = [ev for ev in events if isinstance(ev, Progress)]
    lines = [f"a {_ms_of(rtt)} round trip and {router.get('lost', 0)} losses at the router"]
    if len(done) >= 2 and done[-1].t > done[0].t:
        rate = (done[-1].bytes - done[0].bytes) * 8 / (done[-1].t - done[0].t) / 1e6
        lines.append(f"{rate:.1f} Mbit/s on average: every loss halves the window, and it takes many "
                     "long round trips to grow back")
    cut = _cut_words(_congestion_cuts(samples))
    if cut:
        lines.append(cut)
    lines.append(_repairs(events, samples))
    return lines


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
            summary=saw_slow_start,
            about_s=1.5,
            watch={
                "size": 24 * MIB, "about_s": 25.0,
                "down": {"delay_ms": 400, "rate_bps": 10_000_000, "queue": 400},
                "actions": (Action(8 * MIB, {"cmd": "blackout", "seconds": 1.5, "dir": "both"}),
                            Action(16 * MIB, {"cmd": "blackout", "seconds": 1.5, "dir": "both"})),
                "explanation": (
                    "A clean but long path: 400 ms round trip, 10 Mbit/s. A new connection does not know the "
                    "path's capacity, so the server starts with 10 segments in flight and, for every segment "
                    "acknowledged, allows one more: the window doubles each round trip (slowly enough to "
                    "watch) until it fills the path. Twice the link then goes dark for 1.5 s: the server "
                    "times out, and starts again from one segment, doubling again."
                ),
            },
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
            summary=saw_sawtooth,
            about_s=3.5,
            watch={
                "size": 12 * MIB, "about_s": 26.0,
                "down": {"rate_bps": 4_000_000, "queue": 20, "delay_ms": 50},
                "explanation": (
                    "A 4 Mbit/s bottleneck with a 20-frame queue and 50 ms of delay, and the server switched "
                    "to Reno. After slow start the window grows by one segment per round trip until the "
                    "queue overflows; the lost segment is fast-retransmitted and the window is halved. "
                    "Again and again, a tooth every second or two."
                ),
            },
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
            summary=saw_fast_retransmit,
            about_s=0.5,
            watch={
                "size": 9 * MIB, "about_s": 26.0,
                "down": {"loss": 0.5, "delay_ms": 40, "rate_bps": 3_000_000, "queue": 100},
                "explanation": (
                    "0.5 % of the server's segments are dropped at random on a 3 Mbit/s, 40 ms path: a loss "
                    "about every second. Each later segment arrives out of order; rawtui answers the first "
                    "three at once with duplicate ACKs (with SACK blocks), then, as Linux does, one "
                    "compressed SACK per millisecond. After three duplicate ACKs the server resends the "
                    "missing segment at once: fast retransmit, one round trip after the loss, well before "
                    "its retransmission timer (>= 200 ms) would fire; and it halves its window."
                ),
            },
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
            summary=saw_timeout,
            about_s=4.0,
            watch={
                "size": 4 * MIB, "about_s": 30.0,
                "down": {"delay_ms": 20, "rate_bps": 2_000_000},
                "actions": tuple(Action(n * MIB, {"cmd": "blackout", "seconds": 3.0, "dir": "both"})
                                 for n in (1, 2, 3)),
                "explanation": (
                    "A 2 Mbit/s path that goes dark in both directions for 3 s, three times (after 1, 2 and "
                    "3 MB). No duplicate ACKs can come back, so the server's only way out is its "
                    "retransmission timer: it resends after its RTO, hears nothing, doubles the RTO and "
                    "tries again, until the link returns."
                ),
            },
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
            summary=saw_zero_window,
            about_s=3.5,
            watch={
                "size": 16 * MIB, "about_s": 21.0, "stall": "1000000:15",
                "down": {"rate_bps": 16_000_000},
                "explanation": (
                    "rawtui stops reading after 1 MB for 15 s, on a 16 Mbit/s path. Its 8 MB receive buffer "
                    "fills in about 4 s, the window it advertises shrinks to 0 and the server must stop "
                    "sending. The server's persist timer then sends window probes, further and further "
                    "apart, until rawtui reads again and opens the window."
                ),
            },
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
            summary=saw_reorder,
            about_s=0.5,
            watch={
                "size": 8 * MIB, "about_s": 24.0,
                "down": {"reorder": 2, "delay_ms": 20, "rate_bps": 3_000_000},
                "explanation": (
                    "2 % of the server's segments are held back behind the next three, on a 3 Mbit/s, 20 ms "
                    "path. Each early segment leaves a hole that the late one fills a moment later. Three "
                    "duplicate ACKs look exactly like a loss, so the server may retransmit for nothing."
                ),
            },
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
            summary=saw_corruption,
            about_s=0.5,
            watch={
                "size": 8 * MIB, "about_s": 24.0,
                "down": {"corrupt": 1, "delay_ms": 20, "rate_bps": 3_000_000},
                "explanation": (
                    "1 % of the server's segments get one bit flipped in their payload on the router (a "
                    "3 Mbit/s, 20 ms path). The TCP checksum no longer matches, so rawtui drops them as if "
                    "they were lost, and the server retransmits. The file still arrives byte-exact."
                ),
            },
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
            summary=saw_lossy_long_path,
            about_s=4.0,
            watch={
                "size": 4 * MIB, "about_s": 25.0,
                "down": {"delay_ms": 30, "loss": 1, "rate_bps": 2_000_000},
                "explanation": (
                    "30 ms each way (60 ms RTT), 2 Mbit/s and 1 % loss from the server. Every loss costs at "
                    "least a round trip to repair and shrinks the window, and on a long path the window "
                    "takes long to grow back: throughput falls below the link's capacity."
                ),
            },
        ),
        Scenario(
            name="bufferbloat",
            title="Bufferbloat: a deep queue at the bottleneck (CUBIC or Reno fill it, BBR does not)",
            explanation=(
                "A 10 Mbit/s bottleneck with a deep 200-frame queue (0.24 s of data) and 10 ms of delay. "
                "Loss-based algorithms (Reno, CUBIC) grow their window until a loss: the extra segments wait "
                "in the queue, which fills, so the round trip grows far beyond the path's 10 ms. "
                "BBR measures the bottleneck's rate and the path's RTT and sends at that rate: the queue "
                "stays short, and so does the RTT. The server runs CUBIC; compare: rawtui demo --compare "
                "cubic,bbr --scenario bufferbloat."
            ),
            look_for="the server's RTT (the RTT graph) climbing far above the path's own as the queue fills",
            size=4 * MIB,
            down={"rate_bps": 10_000_000, "queue": 200, "delay_ms": 10},
            server_cc="cubic",  # the kernels' usual default; --cc bbr (or --compare) shows the other side
            checker=lambda events: check_bufferbloat(events),
            summary=lambda events: saw_bufferbloat(events),
            compare=lambda runs: compare_bufferbloat(runs),
            compare_look_for="BBR's mean RTT at least 1.5x below that of the loss-based algorithms",
            about_s=3.6,
            min_size=3 * MIB,
            size_note="a smaller file ends before the queue has filled (at 2 MB CUBIC's mean RTT was only 2.6 "
            "times BBR's)",
            watch={
                "size": 12 * MIB, "about_s": 25.0,
                "down": {"rate_bps": 4_000_000, "queue": 400, "delay_ms": 20},
                "explanation": (
                    "A 4 Mbit/s bottleneck with a deep 400-frame queue (1.2 s of data) and 20 ms of delay. "
                    "Loss-based algorithms (Reno, CUBIC) grow their window until the queue overflows: it "
                    "stays full, and every segment waits in it, so the round trip grows to a second and "
                    "more. BBR measures the bottleneck's rate and the path's RTT and sends at that rate: "
                    "the queue stays short, and so does the RTT. The server runs CUBIC; compare: rawtui demo --compare "
                    "cubic,bbr --scenario bufferbloat."
                ),
            },
        ),
        Scenario(
            name="random-loss",
            title="Random loss: 1 % of segments lost, not from congestion (BBR keeps its rate, Reno does not)",
            explanation=(
                "A 20 Mbit/s path, 40 ms of delay, and 1 % of the server's segments dropped at random: "
                "noise, not a full queue. Reno (and CUBIC) read every loss as congestion and halve their "
                "window, so they never reach the link's rate; BBR paces at the rate it measures and "
                "ignores isolated losses. The server runs Reno; compare: rawtui demo --compare reno,cubic,bbr --scenario "
                "random-loss."
            ),
            look_for="the server's cwnd cut again and again at each loss, throughput far below the link's rate",
            size=2 * MIB,
            down={"loss": 1, "delay_ms": 40, "rate_bps": 20_000_000, "queue": 100},
            server_cc="reno",  # --cc bbr (or --compare) shows the other side
            checker=lambda events: check_random_loss(events),
            summary=lambda events: saw_random_loss(events),
            compare=lambda runs: compare_random_loss(runs),
            compare_look_for="BBR's goodput at least 1.5x Reno's under the same random loss",
            about_s=4.0,
            min_size=1 * MIB,
            size_note="a smaller file ends before enough losses happened",
            watch={
                "size": 12 * MIB, "about_s": 30.0,
                "down": {"loss": 1, "delay_ms": 40, "rate_bps": 10_000_000, "queue": 100},
                "explanation": (
                    "A 10 Mbit/s path, 40 ms of delay, and 1 % of the server's segments dropped at random: "
                    "noise, not a full queue. Reno (and CUBIC) read every loss as congestion and halve their "
                    "window, so they never reach the link's rate; BBR paces at the rate it measures and "
                    "ignores isolated losses. The server runs Reno; compare: rawtui demo --compare reno,cubic,bbr --scenario "
                    "random-loss."
                ),
            },
        ),
    )
}


def get_scenario(name: str) -> Scenario:
    try:
        return SCENARIOS[name]
    except KeyError:
        raise KeyError(f"unknown scenario {name!r} (scenarios: {', '.join(SCENARIOS)})") from None
