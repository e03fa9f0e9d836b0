"""What the screen shows, aggregated from the event stream: plain Python, no Textual.

:class:`ViewModel` folds events into bounded state (a ring of recent packets, decimated series for the
graphs, counters, the next-hop log (ARP or neighbor discovery) and the connection ladder). It is cheap per event, so the app can apply
100k events a second and still redraw only a few times a second. Each screen area has a version number
that ``apply`` bumps when the area changes; widgets redraw when theirs moved.
"""

from __future__ import annotations

import copy
import dataclasses
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from rawtui.events import (
    ArpIgnored,
    ArpReply,
    ArpRequest,
    ChecksumDrop,
    Done,
    DupAck,
    DupData,
    Error,
    Event,
    Explain,
    Handshake,
    HttpResponse,
    Info,
    KernelTcpInfo,
    LabKnobs,
    LabScenario,
    LabStats,
    Malformed,
    NdpAdvert,
    NdpAnswered,
    NdpIgnored,
    NdpSolicit,
    NeighborChange,
    OutOfOrder,
    PathMtu,
    PeerRetransmit,
    Progress,
    RateLimit,
    Redirect,
    Retransmit,
    Retry,
    Route,
    RouterAction,
    SegmentIn,
    SegmentOut,
    ServerTcpInfo,
    TcpState,
    TlsInfo,
    Window,
)
from rawtui.lab.events import server_frames_lost
from rawtui.stack.tcp_states import State
from rawtui.wire.ipv6 import ip6_str, solicited_node, split_zone

#: Event types listed in the packet list: frames on the wire, and the TLS records seen in the byte stream.
PACKET_TYPES = frozenset(
    {"segment_in", "segment_out", "arp_request", "arp_reply", "arp_ignored", "checksum_drop", "malformed",
     "tls_record", "ndp_solicit", "ndp_advert", "ndp_ignored", "ndp_answered", "path_mtu"}
)

#: RouterAction actions that drop the frame on the router (a corrupted one is dropped by our checksum).
ROUTER_DROPS = frozenset({"drop", "blackout", "queue-drop"})

#: Explanations kept for the ticker (rawtui.analysis.explain makes them).
EXPLANATIONS_KEPT = 20

#: Event types a lab scenario's "what you saw" reads (rawtui.lab.scenarios), kept while there is room.
LAB_TYPES = frozenset(
    {"handshake", "server_tcp_info", "lab_stats", "dup_data", "out_of_order", "dup_ack", "checksum_drop",
     "peer_retransmit", "progress", "done", "segment_in", "segment_out"}
)
LAB_EVENTS_KEPT = 200_000


def _kept_for_lab(ev: Any) -> bool:
    """Segments only when they are notable: a note (fill, ooo, a probe...) or our zero window."""
    typ = ev.type
    if typ == "segment_in":
        return bool(ev.note)
    if typ == "segment_out":
        return bool(ev.note) or ev.window == 0
    return True


#: Screen areas, each with its own version number.
AREAS = ("header", "arp", "ladder", "counters", "progress", "graphs", "packets", "lab", "explain")


class Series:
    """An (x, y) series that never holds more than ``cap`` points: when full it keeps every other point
    and from then on takes one sample in two (then four, ...). Deterministic for a given stream."""

    __slots__ = ("_skip", "_stride", "cap", "xs", "ys")

    def __init__(self, cap: int = 2000) -> None:
        self.cap = cap
        self.xs: list[float] = []
        self.ys: list[float] = []
        self._stride = 1
        self._skip = 0

    def add(self, x: float, y: float) -> None:
        self._skip += 1
        if self._skip < self._stride:
            return
        self._skip = 0
        self.xs.append(x)
        self.ys.append(y)
        if len(self.xs) >= self.cap:
            del self.xs[1::2]
            del self.ys[1::2]
            self._stride *= 2

    def __len__(self) -> int:
        return len(self.xs)

    def copy(self) -> Series:
        """An independent copy (the timeline's checkpoints, rawtui.views.tui.timeline)."""
        s = Series(self.cap)
        s.xs, s.ys, s._stride, s._skip = self.xs[:], self.ys[:], self._stride, self._skip
        return s


class Rate:
    """Bytes per second in bins of time that widen with the transfer, so a 0.3 s download and a 30 s one
    both fill the graph: bins start at ``width`` seconds (1 ms) and, when more than ``cap`` of them would
    be needed, pairs merge and the width doubles (bins stay aligned on multiples of the width, so merging
    is exact). Deterministic for a given stream; ``xs`` are the bins' middles, ``ys`` their rates."""

    __slots__ = ("_bins", "_first", "cap", "width")

    def __init__(self, cap: int = 128, width: float = 0.001) -> None:
        self.cap = cap
        self.width = width
        self._first: int | None = None  # the first bin's index (its start is index * width)
        self._bins: list[int] = []

    def add(self, t: float, nbytes: int) -> None:
        i = int(t / self.width)
        if self._first is None:
            self._first = i
        while i - self._first >= self.cap:
            self._widen()
            i = int(t / self.width)
        j = max(0, i - self._first)  # (an event a little out of order counts in the first bin)
        bins = self._bins
        if j >= len(bins):
            bins.extend([0] * (j + 1 - len(bins)))
        bins[j] += nbytes

    def _widen(self) -> None:
        assert self._first is not None
        first = self._first // 2
        merged = [0] * ((self._first + len(self._bins) - 1) // 2 - first + 1)
        for j, b in enumerate(self._bins):
            merged[(self._first + j) // 2 - first] += b
        self._first, self._bins, self.width = first, merged, self.width * 2

    @property
    def xs(self) -> list[float]:
        if self._first is None:
            return []
        return [(self._first + j + 0.5) * self.width for j in range(len(self._bins))]

    @property
    def ys(self) -> list[float]:
        return [b / self.width for b in self._bins]

    @property
    def now_bps(self) -> float:
        """The rate over the last whole bin (the last one is still filling)."""
        bins = self._bins
        return (bins[-2] if len(bins) >= 2 else bins[-1] if bins else 0) / self.width

    def __len__(self) -> int:
        return len(self._bins)

    def copy(self) -> Rate:
        """An independent copy."""
        r = Rate(self.cap, self.width)
        r._first, r._bins = self._first, self._bins[:]
        return r


@dataclass(slots=True)
class Counters:
    retransmits: int = 0  # ours
    dup_data: int = 0  # data we had, again (resent by the server, or copied by the network)
    peer_retrans: int = 0  # the server's retransmissions that reached us, by kind below (PeerRetransmit)
    peer_fast: int = 0
    peer_timeout: int = 0
    peer_tlp: int = 0
    peer_spurious: int = 0
    out_of_order: int = 0
    dup_acks_out: int = 0
    dup_acks_in: int = 0
    checksum_ipv4: int = 0
    checksum_tcp: int = 0
    checksum_icmp: int = 0
    malformed: int = 0
    arp_ignored: int = 0
    segments_in: int = 0
    segments_out: int = 0
    bytes_in: int = 0  # TCP payload bytes received (including duplicates)


@dataclass(slots=True)
class LadderStep:
    """One arrow of the connection ladder."""

    t: float
    direction: str  # "out" (client -> server) or "in"
    label: str
    style: str = ""
    count: int = 1  # for the data step: segments so far


@dataclass(slots=True)
class ArpLine:
    """One line of the next-hop panel: an ARP or neighbor-discovery exchange, or a neighbor state change."""

    t: float
    kind: str  # "request", "reply", "ignored", "answered", "state"
    text: str


@dataclass(slots=True)
class Graphs:
    cwnd: Series = field(default_factory=Series)
    peer_flight: Series = field(default_factory=Series)
    rwnd: Series = field(default_factory=Series)
    peer_rwnd: Series = field(default_factory=Series)
    seq_data: Series = field(default_factory=lambda: Series(3000))  # segment_in: top of each segment
    seq_ack: Series = field(default_factory=Series)  # segment_out: our ACK
    seq_window: Series = field(default_factory=Series)  # our ACK + our window
    seq_retrans: Series = field(default_factory=lambda: Series(500))  # the server resent (peer_retransmit)
    seq_ooo: Series = field(default_factory=lambda: Series(500))  # arrived beyond a hole
    seq_router_drop: Series = field(default_factory=lambda: Series(500))  # the lab's router dropped it (top)
    throughput: Rate = field(default_factory=Rate)  # bytes/s: payload received per bin of time
    server_cwnd: Series = field(default_factory=Series)  # the lab server's true cwnd (TCP_INFO), bytes
    server_ssthresh: Series = field(default_factory=Series)  # its ssthresh, once it left slow start


def solicited_group(target: str) -> str:
    """The solicited-node multicast group a neighbor solicitation for ``target`` goes to (``ff02::1:ffXX:XXXX``,
    RFC 4291 2.7.1); ``target`` itself when it is not an IPv6 address."""
    try:
        return ip6_str(solicited_node(split_zone(target)[0]))
    except ValueError:
        return target


def request_label(title: str) -> str:
    """``GET /path`` when the title is a URL, else ``request``."""
    if "://" in title:
        rest = title.split("://", 1)[1]
        path = "/" + rest.split("/", 1)[1] if "/" in rest else "/"
        return f"GET {path}"
    return "request"


class ViewModel:
    """Everything the panels draw, folded from events. Not thread-safe: used in the UI thread only."""

    def __init__(self, *, title: str = "", ring_size: int = 5000) -> None:
        self.title = title
        self.versions: dict[str, int] = dict.fromkeys(AREAS, 0)
        self.events_seen = 0
        self.t_last = 0.0
        # header
        self.route: Route | None = None
        self.tcp_state: State = State.CLOSED
        self.infos: deque[Info] = deque(maxlen=20)
        self.http: HttpResponse | None = None
        self.redirects: list[Redirect] = []
        self.retries: list[Retry] = []  # --retry: the attempts after the first
        self.rate_limit: float | None = None  # --limit-rate (bytes per second), or None
        self.done: Done | None = None
        self.error: Error | None = None
        self.source_code: int | None = None  # set by the app when the source returned
        # the next hop: ARP (IPv4) or neighbor discovery (IPv6) fill the same fields
        self.arp: deque[ArpLine] = deque(maxlen=40)
        self.arp_tries = 0
        self.arp_target: str | None = None
        self.arp_mac: str | None = None
        self.arp_rtt_ms: float | None = None
        self.arp_first_t: float | None = None
        self.resolver: str | None = None  # "ARP" or "NDP", once one spoke
        self.neighbor_state: str | None = None  # NDP: the next hop's entry (NeighborState values)
        self.path_mtu: PathMtu | None = None  # the last Packet Too Big / fragmentation-needed that lowered the MSS
        # ladder
        self.ladder: list[LadderStep] = []
        self.handshake: Handshake | None = None
        self.out_shift = 0  # our window scale: SegmentOut.window << out_shift = bytes (not in a SYN)
        self._data_step: LadderStep | None = None
        self._resent_step: LadderStep | None = None  # the server's retransmissions, the latest shown
        self._request_seen = False
        self._fin_in = self._fin_out = self._last_ack_drawn = False
        self._synack_seen = False
        self._ack_after_synack = False
        # counters, windows, progress
        self.counters = Counters()
        self.window: Window | None = None
        self.progress: Progress | None = None
        self.progress_t0: float | None = None
        # HTTPS
        self.tls: TlsInfo | None = None
        # the teaching lab (rawtui demo)
        self.server_info: ServerTcpInfo | None = None
        self.kernel_info: dict[str, KernelTcpInfo] = {}  # `rawtui watch`: this host's socket(s), by role
        self.lab_knobs: LabKnobs | None = None
        self.lab_stats: LabStats | None = None
        self.lab_scenario: LabScenario | None = None
        self.lab_events: list[Event] = []  # once a scenario is announced: what its "what you saw" reads
        self.explanations: deque[Explain] = deque(maxlen=EXPLANATIONS_KEPT)  # what just happened, newest last
        self.router_actions: dict[str, int] = {}  # what the lab's router did to TCP frames, per action
        self.router_drop: RouterAction | None = None  # the last data frame it dropped on the way to us
        self.router_drops = 0  # data frames it dropped on the way to us
        # graphs and packets
        self.graphs = Graphs()
        self.packets: deque[tuple[int, Event]] = deque(maxlen=ring_size)
        self.packet_count = 0  # numbers the packets: 1, 2, ...

    # -- folding -------------------------------------------------------------------------------------

    def apply(self, ev: Event) -> None:
        self.apply_all((ev,))

    def apply_all(self, events: Iterable[Event]) -> int:
        """Fold a batch of events (the hot loop: ~1-2 us per segment). Returns how many."""
        handlers = _HANDLERS
        packet_types = PACKET_TYPES
        packets = self.packets
        n_packets = self.packet_count
        t_last = self.t_last
        seen: set[str] = set()
        count = 0
        lab_types, lab_events = LAB_TYPES, self.lab_events
        for ev in events:
            typ = ev.type
            h = handlers.get(typ)
            if h is not None:
                h(self, ev)
            if typ in packet_types:
                n_packets += 1
                packets.append((n_packets, ev))
            if (typ in lab_types and self.lab_scenario is not None and len(lab_events) < LAB_EVENTS_KEPT
                    and _kept_for_lab(ev)):
                lab_events.append(ev)
            t_last = max(t_last, ev.t)
            seen.add(typ)
            count += 1
        self.packet_count = n_packets
        self.t_last = t_last
        self.events_seen += count
        v = self.versions
        for typ in seen:
            for area in _AREAS_BY_TYPE.get(typ, ("header",)):
                v[area] += 1
        return count

    def _route(self, ev: Route) -> None:
        self.route = ev

    def _tcp_state(self, ev: TcpState) -> None:
        self.tcp_state = ev.new

    def _info(self, ev: Info) -> None:
        self.infos.append(ev)

    def _arp_request(self, ev: ArpRequest) -> None:
        self.resolver = "ARP"
        self.arp_tries = max(self.arp_tries, ev.attempt)
        self.arp_target = ev.target_ip
        if self.arp_first_t is None:
            self.arp_first_t = ev.t
        self.arp.append(ArpLine(ev.t, "request", f"who-has {ev.target_ip}? try {ev.attempt}"))

    def _arp_reply(self, ev: ArpReply) -> None:
        self.arp_mac = ev.mac
        self.arp_rtt_ms = ev.rtt_ms
        self.arp.append(ArpLine(ev.t, "reply", f"is-at {ev.mac}"))

    def _arp_ignored(self, ev: ArpIgnored) -> None:
        self.counters.arp_ignored += 1
        self.arp.append(ArpLine(ev.t, "ignored", f"ignored {ev.ip} ({ev.reason})"))

    def _ndp_solicit(self, ev: NdpSolicit) -> None:
        self.resolver = "NDP"
        if ev.unicast:  # a reachability probe to the cached MAC (PROBE): not a try to resolve
            self.arp.append(ArpLine(ev.t, "request", f"NS unicast probe {ev.attempt}"))
            return
        self.arp_tries = max(self.arp_tries, ev.attempt)
        self.arp_target = ev.target_ip
        if self.arp_first_t is None:
            self.arp_first_t = ev.t
        # the group it went to, not the target (on the panel's first line): ff02::1:ffXX:XXXX fits
        self.arp.append(ArpLine(ev.t, "request", f"NS {solicited_group(ev.target_ip)} try {ev.attempt}"))

    def _ndp_advert(self, ev: NdpAdvert) -> None:
        self.resolver = "NDP"
        self.arp_mac = ev.mac
        self.arp_rtt_ms = ev.rtt_ms
        flags = "".join(f for f, on in (("R", ev.router), ("S", ev.solicited), ("O", ev.override)) if on)
        self.arp.append(ArpLine(ev.t, "reply", f"NA {ev.mac} {flags}".rstrip()))

    def _ndp_ignored(self, ev: NdpIgnored) -> None:
        self.counters.arp_ignored += 1
        self.arp.append(ArpLine(ev.t, "ignored", f"ignored {ev.ip} ({ev.reason})"))

    def _ndp_answered(self, ev: NdpAnswered) -> None:
        self.arp.append(ArpLine(ev.t, "answered", "NA: answered for us"))

    def _neighbor_state(self, ev: NeighborChange) -> None:
        self.neighbor_state = ev.new
        self.arp.append(ArpLine(ev.t, "state", f"{ev.old.upper()} -> {ev.new.upper()}"))

    def _path_mtu(self, ev: PathMtu) -> None:
        self.path_mtu = ev
        what = "Too Big" if "packet too big" in ev.source else "Frag. needed"
        self._step(ev.t, "in", f"{what}: MTU {ev.mtu}", "yellow")

    def _handshake(self, ev: Handshake) -> None:
        self.handshake = ev
        self.out_shift = ev.wscale or 0

    def _step(self, t: float, direction: str, label: str, style: str = "") -> None:
        self.ladder.append(LadderStep(t, direction, label, style))

    def _segment_in(self, ev: SegmentIn) -> None:
        c = self.counters
        c.segments_in += 1
        flags = ev.flags
        length = ev.length
        if (flags != "A" and flags != "PA") or self._fin_in:
            self._segment_in_control(ev, flags, length)
        if length:
            c.bytes_in += length
            d = self._data_step
            if d is None and not self.tls_pending:  # (the server's TLS handshake flight is not the response)
                d = self._data_step = LadderStep(ev.t, "in", "data", "data", 0)
                self.ladder.append(d)
            if d is not None:
                d.count += 1
            g = self.graphs
            g.throughput.add(ev.t, length)
            top = ev.seq + length
            g.seq_data.add(ev.t, top)
            if ev.note == "ooo":
                g.seq_ooo.add(ev.t, top)

    def _segment_in_control(self, ev: SegmentIn, flags: str, length: int) -> None:
        """The rare segments: SYN-ACK, RST, FIN, and the last ACK of the close."""
        if "S" in flags:
            self._synack_seen = True
            self._step(ev.t, "in", "SYN,ACK" if "A" in flags else "SYN")
        if "R" in flags:
            self._step(ev.t, "in", "RST", "red")
        if "F" in flags and not self._fin_in:
            self._fin_in = True
            self._step(ev.t, "in", "FIN")
        elif self._fin_in and self._fin_out and not self._last_ack_drawn and "A" in flags and not length:
            self._last_ack_drawn = True
            self._step(ev.t, "in", "ACK")

    def _segment_out(self, ev: SegmentOut) -> None:
        self.counters.segments_out += 1
        flags = ev.flags
        if flags != "A" or ev.length or not self._ack_after_synack or self._fin_in:
            self._segment_out_control(ev, flags)
        if self.handshake is not None and "A" in flags:
            g = self.graphs
            g.seq_ack.add(ev.t, ev.ack)
            # our segments carry the 16-bit window field: scale it (never in a SYN)
            g.seq_window.add(ev.t, ev.ack + (ev.window if "S" in flags else ev.window << self.out_shift))

    def _segment_out_control(self, ev: SegmentOut, flags: str) -> None:
        retry = ev.note == "retransmit"
        if "S" in flags:
            self._step(ev.t, "out", "SYN (again)" if retry else "SYN", "yellow" if retry else "")
        elif "R" in flags:
            self._step(ev.t, "out", "RST", "red")
        elif ev.length and (not self._request_seen or (retry and self._data_step is None)):
            self._request_seen = True
            label = "TLS ClientHello" if self.tls_pending else request_label(self.title)
            self._step(ev.t, "out", f"{label} (again)" if retry else label, "yellow" if retry else "")
        elif self._synack_seen and not self._ack_after_synack and flags == "A" and not ev.length:
            self._ack_after_synack = True
            self._step(ev.t, "out", "ACK")
        if "F" in flags and not self._fin_out:
            self._fin_out = True
            self._step(ev.t, "out", "FIN")
        elif self._fin_in and self._fin_out and not self._last_ack_drawn and "F" not in flags and "A" in flags:
            self._last_ack_drawn = True
            self._step(ev.t, "out", "ACK")

    def _retransmit(self, ev: Retransmit) -> None:
        self.counters.retransmits += 1

    def _dup_data(self, ev: DupData) -> None:
        self.counters.dup_data += 1

    def _peer_retransmit(self, ev: PeerRetransmit) -> None:
        c = self.counters
        c.peer_retrans += 1
        name = "peer_" + ev.kind
        if hasattr(c, name):
            setattr(c, name, getattr(c, name) + 1)
        self.graphs.seq_retrans.add(ev.t, ev.seq + ev.length)
        # one ladder step for them all, showing the latest: its sequence number and kind
        label = f"server resent seq {ev.seq:,} ({ev.kind}) · {c.peer_retrans:,} so far"
        step = self._resent_step
        if step is None:
            step = self._resent_step = LadderStep(ev.t, "in", label, "resent")
            self.ladder.append(step)
        else:
            step.label = label
        step.count = c.peer_retrans

    def _out_of_order(self, ev: OutOfOrder) -> None:
        self.counters.out_of_order += 1

    def _dup_ack(self, ev: DupAck) -> None:
        if ev.direction == "in":
            self.counters.dup_acks_in += 1
        else:
            self.counters.dup_acks_out += 1

    def _checksum_drop(self, ev: ChecksumDrop) -> None:
        if ev.layer == "ipv4":
            self.counters.checksum_ipv4 += 1
        elif ev.layer == "tcp":
            self.counters.checksum_tcp += 1
        else:  # icmp, icmpv6: the path-MTU and neighbor-discovery messages
            self.counters.checksum_icmp += 1

    def _malformed(self, ev: Malformed) -> None:
        self.counters.malformed += 1

    def _window(self, ev: Window) -> None:
        self.window = ev
        g = self.graphs
        g.cwnd.add(ev.t, ev.cwnd)
        g.peer_flight.add(ev.t, ev.peer_flight)
        g.rwnd.add(ev.t, ev.rwnd)
        g.peer_rwnd.add(ev.t, ev.peer_rwnd)

    def _progress(self, ev: Progress) -> None:
        if self.progress_t0 is None:
            self.progress_t0 = ev.t
        if not self.counters.segments_in and ev.bytes > self.received:  # a stream without segments
            self.graphs.throughput.add(ev.t, ev.bytes - self.received)
        self.progress = ev

    def _http_response(self, ev: HttpResponse) -> None:
        self.http = ev
        step = LadderStep(ev.t, "in", f"HTTP {ev.status} {ev.reason}".strip(), "green" if ev.status < 300 else "red")
        # The response header travels in the first data segments: draw it above the data arrow.
        if self._data_step in self.ladder:
            step.t = self._data_step.t  # type: ignore[union-attr]
            self.ladder.insert(self.ladder.index(self._data_step), step)
        else:
            self.ladder.append(step)

    def _redirect(self, ev: Redirect) -> None:
        self.redirects.append(ev)
        self._step(ev.t, "in", f"{ev.status} -> {ev.location}", "yellow")

    def _retry(self, ev: Retry) -> None:
        """--retry: the attempt that failed ends in the ladder, the next one gets its own arrows."""
        self.retries.append(ev)
        start = f"from byte {ev.resume_from:,}" if ev.resume_from else "from zero"
        self._step(ev.t, "out", f"attempt {ev.attempt}/{ev.attempts} in {ev.delay_s:g} s, {start}: {ev.reason}",
                   "bold yellow")
        self._data_step = None  # the new attempt's data is a new arrow, its FIN too
        self._fin_in = self._fin_out = self._last_ack_drawn = False

    def _rate_limit(self, ev: RateLimit) -> None:
        self.rate_limit = ev.bytes_per_s

    def _tls(self, ev: TlsInfo) -> None:
        self.tls = ev
        if ev.verified:
            self._step(ev.t, "in", f"{ev.version} done {ev.handshake_ms:.1f} ms", "green")
        else:
            self._step(ev.t, "in", f"{ev.version} NOT VERIFIED", "red")
        self._request_seen = False  # the next data we send is the HTTP request

    def _server_tcp_info(self, ev: ServerTcpInfo) -> None:
        self.server_info = ev
        g = self.graphs
        g.server_cwnd.add(ev.t, ev.cwnd_bytes)
        if ev.ssthresh_bytes is not None:
            g.server_ssthresh.add(ev.t, ev.ssthresh_bytes)

    def _kernel_tcp_info(self, ev: KernelTcpInfo) -> None:
        """`rawtui watch`: the kernel's state of a local socket. The sending socket's cwnd is the transfer's
        true cwnd: the same line as the lab server's TCP_INFO."""
        self.kernel_info[ev.role] = ev
        if ev.role == "sender":
            self.graphs.server_cwnd.add(ev.t, ev.cwnd_bytes)
            if ev.ssthresh_bytes is not None:
                self.graphs.server_ssthresh.add(ev.t, ev.ssthresh_bytes)

    def _lab_knobs(self, ev: LabKnobs) -> None:
        self.lab_knobs = ev

    def _lab_stats(self, ev: LabStats) -> None:
        self.lab_stats = ev

    def _lab_scenario(self, ev: LabScenario) -> None:
        self.lab_scenario = ev

    def _explain(self, ev: Explain) -> None:
        self.explanations.append(ev)

    def _router_action(self, ev: RouterAction) -> None:
        self.router_actions[ev.action] = self.router_actions.get(ev.action, 0) + 1
        if ev.direction == "down" and ev.length and ev.action in ROUTER_DROPS:
            self.router_drop = ev
            self.router_drops += 1
            self.graphs.seq_router_drop.add(ev.t, ev.seq + ev.length)

    def _done(self, ev: Done) -> None:
        self.done = ev

    def _error(self, ev: Error) -> None:
        self.error = ev

    def copy(self, *, packets: bool = True) -> ViewModel:
        """An independent copy of the state (the timeline's checkpoints: rawtui.views.tui.timeline).
        Events are immutable and shared; everything ``apply`` mutates is copied. ``packets=False``
        leaves the packet ring empty (``packet_count`` still says how many came)."""
        new = copy.copy(self)
        steps = {id(s): dataclasses.replace(s) for s in self.ladder}
        new.ladder = [steps[id(s)] for s in self.ladder]
        for name in ("_data_step", "_resent_step"):
            step = getattr(self, name)
            if step is not None:
                setattr(new, name, steps.get(id(step)) or dataclasses.replace(step))
        new.versions = dict(self.versions)
        new.infos = deque(self.infos, maxlen=self.infos.maxlen)
        new.arp = deque(self.arp, maxlen=self.arp.maxlen)
        new.explanations = deque(self.explanations, maxlen=self.explanations.maxlen)
        new.redirects = self.redirects[:]
        new.retries = self.retries[:]
        new.lab_events = self.lab_events[:]
        new.router_actions = dict(self.router_actions)
        new.kernel_info = dict(self.kernel_info)
        new.counters = dataclasses.replace(self.counters)
        new.graphs = Graphs(**{f.name: getattr(self.graphs, f.name).copy() for f in dataclasses.fields(Graphs)})
        new.packets = deque(self.packets if packets else (), maxlen=self.packets.maxlen)
        return new

    # -- derived values ------------------------------------------------------------------------------

    @property
    def tls_pending(self) -> bool:
        """An https:// session whose TLS handshake has not finished yet."""
        return self.tls is None and self.title.startswith("https://")

    def what_you_saw(self) -> list[str]:
        """The announced lab scenario's summary of this run, with its numbers ([] outside the lab)."""
        from rawtui.lab.scenarios import SCENARIOS

        sc = self.lab_scenario
        if sc is None or sc.name not in SCENARIOS:
            return []
        return SCENARIOS[sc.name].what_you_saw(self.lab_events)

    def witnesses(self) -> tuple[int, int | None, int | None]:
        """The server's retransmissions as rawtui saw them, as the lab server's TCP_INFO counts them and as
        the lab router's drops on the way to us imply them (None: no such witness, outside the lab)."""
        info = self.server_info
        hs = self.handshake
        server = None
        if info is not None and (not info.peer_port or hs is None or info.peer_port == hs.local_port):
            server = info.retrans_total
        router = server_frames_lost(self.lab_stats.down) if self.lab_stats is not None else None
        return self.counters.peer_retrans, server, router

    @property
    def lab_active(self) -> bool:
        """The lab's side channel spoke (rawtui demo): show the lab line."""
        return self.lab_knobs is not None or self.lab_scenario is not None or bool(self.kernel_info)

    @property
    def total(self) -> int | None:
        if self.progress is not None and self.progress.total is not None:
            return self.progress.total
        if self.http is not None:
            return self.http.content_length
        return None

    @property
    def received(self) -> int:
        if self.done is not None:
            return self.done.bytes
        return self.progress.bytes if self.progress is not None else 0

    @property
    def speed_bps(self) -> float:
        """Recent speed, from the last progress event (event time, not the wall clock)."""
        if self.done is not None and self.done.duration_s > 0:
            return self.done.bytes / self.done.duration_s
        return self.progress.speed_bps if self.progress is not None else 0.0

    @property
    def eta_s(self) -> float | None:
        total, speed = self.total, self.speed_bps
        if self.done is not None:
            return 0.0
        if total is None or speed <= 0:
            return None
        return max(0.0, (total - self.received) / speed)

    @property
    def phase(self) -> str:
        """One word for where the session is."""
        if self.error is not None:
            return "ERROR"
        if self.done is not None:
            return "DONE"
        if self.source_code is not None:
            return "ENDED"
        if self.http is not None or (self._data_step is not None):
            return "DOWNLOADING"
        if self.tcp_state is not State.CLOSED:
            return "CONNECTING" if self.tcp_state is State.SYN_SENT else self.tcp_state.value
        if self.arp_tries and self.arp_mac is None:
            return "RESOLVING"
        if self.route is not None:
            return "STARTING"
        return "WAITING"


_HANDLERS: dict[str, Callable[[ViewModel, Any], None]] = {
    "route": ViewModel._route,
    "tcp_state": ViewModel._tcp_state,
    "info": ViewModel._info,
    "arp_request": ViewModel._arp_request,
    "arp_reply": ViewModel._arp_reply,
    "arp_ignored": ViewModel._arp_ignored,
    "ndp_solicit": ViewModel._ndp_solicit,
    "ndp_advert": ViewModel._ndp_advert,
    "ndp_ignored": ViewModel._ndp_ignored,
    "ndp_answered": ViewModel._ndp_answered,
    "neighbor_state": ViewModel._neighbor_state,
    "path_mtu": ViewModel._path_mtu,
    "handshake": ViewModel._handshake,
    "segment_in": ViewModel._segment_in,
    "segment_out": ViewModel._segment_out,
    "retransmit": ViewModel._retransmit,
    "dup_data": ViewModel._dup_data,
    "peer_retransmit": ViewModel._peer_retransmit,
    "out_of_order": ViewModel._out_of_order,
    "dup_ack": ViewModel._dup_ack,
    "checksum_drop": ViewModel._checksum_drop,
    "malformed": ViewModel._malformed,
    "window": ViewModel._window,
    "progress": ViewModel._progress,
    "http_response": ViewModel._http_response,
    "redirect": ViewModel._redirect,
    "retry": ViewModel._retry,
    "rate_limit": ViewModel._rate_limit,
    "done": ViewModel._done,
    "error": ViewModel._error,
    "tls": ViewModel._tls,
    "server_tcp_info": ViewModel._server_tcp_info,
    "kernel_tcp_info": ViewModel._kernel_tcp_info,
    "lab_knobs": ViewModel._lab_knobs,
    "lab_stats": ViewModel._lab_stats,
    "lab_scenario": ViewModel._lab_scenario,
    "explain": ViewModel._explain,
    "router_action": ViewModel._router_action,
}


#: Which screen areas an event type can change (bumped once per batch).
_AREAS_BY_TYPE: dict[str, tuple[str, ...]] = {
    "route": ("header", "arp"),
    "tcp_state": ("header", "ladder"),
    "info": ("header", "progress"),
    "arp_request": ("arp", "packets"),
    "arp_reply": ("arp", "header", "packets"),
    "arp_ignored": ("arp", "counters", "packets"),
    "ndp_solicit": ("arp", "packets"),
    "ndp_advert": ("arp", "header", "packets"),
    "ndp_ignored": ("arp", "counters", "packets"),
    "ndp_answered": ("arp", "packets"),
    "neighbor_state": ("arp",),
    "path_mtu": ("ladder", "header", "packets"),
    "handshake": ("ladder", "header"),
    "segment_in": ("ladder", "counters", "graphs", "packets"),
    "segment_out": ("ladder", "counters", "graphs", "packets"),
    "retransmit": ("counters",),
    "dup_data": ("counters", "graphs"),
    "peer_retransmit": ("counters", "graphs", "ladder"),
    "out_of_order": ("counters",),
    "dup_ack": ("counters",),
    "checksum_drop": ("counters", "packets"),
    "malformed": ("counters", "packets"),
    "window": ("counters", "graphs"),
    "progress": ("progress", "graphs"),
    "http_response": ("header", "progress", "ladder"),
    "redirect": ("header", "ladder"),
    "retry": ("header", "ladder", "progress"),
    "rate_limit": ("header", "progress"),
    "done": ("header", "progress", "ladder", "arp"),
    "error": ("header", "progress", "arp", "ladder"),
    "tls_record": ("packets",),
    "tls": ("header", "ladder"),
    "server_tcp_info": ("graphs", "counters"),
    "kernel_tcp_info": ("graphs", "lab"),
    "lab_knobs": ("lab",),
    "lab_stats": ("lab", "counters"),
    "lab_scenario": ("lab",),
    "explain": ("explain",),
    "router_action": ("graphs", "lab"),
}
