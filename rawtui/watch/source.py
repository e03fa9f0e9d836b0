"""``rawtui watch``: the live view of a connection another program makes on this host, seen passively.

:class:`WatchSource` is an :class:`~rawtui.events.EventSource`. It reads every frame of one interface from
a receive-only tap (:class:`~rawtui.link.passive.PassiveSocket`: nothing is sent, no firewall rule),
writes them to ``--pcap`` as they come, chooses the connection to follow
(:class:`~rawtui.watch.pick.FlowPicker`), and runs that connection's frames through the very analysis
``rawtui replay`` runs over a capture file (:class:`~rawtui.recording.observe.FlowObserver`: rawtui's own
stack standing in for the receiving end). While the connection lives, the kernel's TCP state of this
host's socket of it (netlink inet_diag, :class:`~rawtui.link.tcpdiag.TcpDiagReader`) is sampled and
emitted as :class:`~rawtui.watch.events.KernelTcpInfo`.

How a watch ends, and its exit code:

- 0: the connection ended (FIN both ways and both acknowledged, or a RST), or ``--count`` frames of it were
  seen;
- 5: ``--idle`` seconds passed without a frame of the followed connection (the summary so far first);
- 130: a signal (Ctrl-C, SIGTERM, SIGHUP) or the view's ``q``: the summary so far, then "interrupted".
"""

from __future__ import annotations

import dataclasses
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Protocol

from rawtui.errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_TCP
from rawtui.events import Done, Emit, Error, Event, Info, KernelTcpInfo, Progress, Route
from rawtui.link.pcap import PcapWriter
from rawtui.link.tcpdiag import TcpDiag
from rawtui.recording.capture import CapturedFrame
from rawtui.recording.observe import CapturedFlow, FlowObserver, PeekedTcp, addr_text, peek_tcp
from rawtui.stack.tcp import M32
from rawtui.watch.pick import Candidate, Endpoint, FlowFilter, FlowPicker
from rawtui.wire.arp import OP_REPLY, parse_arp
from rawtui.wire.errors import WireError
from rawtui.wire.ethernet import ETH_P_ARP, ETH_P_IPV6
from rawtui.wire.ipv4 import PROTO_TCP, parse_ipv4
from rawtui.wire.ipv6 import NH_ICMPV6, endpoint_text, parse_ipv6
from rawtui.wire.link import LINKTYPE_ETHERNET
from rawtui.wire.tcp import ACK, FIN, RST, SYN, TcpSegment, parse_tcp

__all__ = ["DiagSource", "FrameTap", "WatchOptions", "WatchSource"]

BATCH = 512  # frames read per turn of the loop, between checks of the stop flag and the kernel's state
WAIT = 0.05  # seconds a turn waits for a frame
DIAG_COST_FACTOR = 20  # at most 1/20 of the time goes to inet_diag dumps
SAMPLE_CHECK = 64  # frames between looks at the clock for the next kernel sample
REQUEST_KEPT = 4096  # bytes of the client's first data kept for the URL (the request line and Host)


class FrameTap(Protocol):
    """Where frames come from: :class:`~rawtui.link.passive.PassiveSocket`, or a recording in tests."""

    frames: int
    frames_out: int

    def recv(self) -> PassiveFrameLike | None: ...
    def wait(self, timeout: float) -> bool: ...
    def kernel_drops(self) -> int: ...


class PassiveFrameLike(Protocol):
    @property
    def data(self) -> bytes: ...
    @property
    def ts(self) -> float: ...
    @property
    def outgoing(self) -> bool: ...


class DiagSource(Protocol):
    """The kernel's TCP state of local sockets: :class:`~rawtui.link.tcpdiag.TcpDiagReader`, or a fake."""

    def find(self, a_ip: str, a_port: int, b_ip: str, b_port: int) -> list[TcpDiag]: ...


@dataclass(slots=True)
class WatchOptions:
    iface: str
    filter: FlowFilter = dataclasses.field(default_factory=FlowFilter)
    pcap: str | None = None
    count: int = 0  # end after this many frames of the followed connection (0: no limit)
    idle: float = 30.0  # end (exit 5) after this many seconds without a frame of it (0: never)
    diag_every: float = 0.02  # seconds between inet_diag samples while the connection lives


def _payload_len(peek: PeekedTcp) -> int:
    """The TCP payload bytes of a frame (IPv4: total length; IPv6: payload length, less what precedes TCP)."""
    ip = peek.ip
    if peek.ipv6:
        if len(ip) < 40:
            return 0
        end = 40 + struct.unpack_from("!H", ip, 4)[0]
        off = 40 if ip[6] == PROTO_TCP else None
        if off is None:  # extension headers: walk them as the stack does
            try:
                off = parse_ipv6(ip)[0].header_length
            except WireError:
                return 0
        if len(ip) < off + 13:
            return 0
        return max(0, end - off - (ip[off + 12] >> 4) * 4)
    ihl = (ip[0] & 0x0F) * 4
    total = struct.unpack_from("!H", ip, 2)[0]
    if len(ip) < ihl + 13:
        return 0
    return max(0, total - ihl - (ip[ihl + 12] >> 4) * 4)


def _is_ndp(data: bytes) -> bool:
    """An Ethernet frame carrying ICMPv6 right after the IPv6 header (neighbor discovery never has
    extension headers): kept like ARP for the start of the followed connection."""
    return len(data) >= 55 and struct.unpack_from("!H", data, 12)[0] == ETH_P_IPV6 and data[20] == NH_ICMPV6


def kernel_event(t: float, d: TcpDiag, server: Endpoint) -> KernelTcpInfo:
    """The event for one inet_diag sample; ``server`` is the end that sends the watched data."""
    role = "sender" if (d.local_ip, d.local_port) == (addr_text(server[0]), server[1]) else "receiver"
    return KernelTcpInfo(
        t, role, endpoint_text(d.local_ip, d.local_port), endpoint_text(d.remote_ip, d.remote_port), d.state,
        d.congestion, d.ca_state, d.cwnd, d.cwnd_bytes, None if d.ssthresh is None else d.ssthresh * d.mss, d.mss, d.rtt_ms,
        d.rttvar_ms, d.rto_ms, d.total_retrans, d.retrans, d.lost, d.unacked, d.pacing_bps, d.delivery_bps,
        d.bytes_acked, d.bytes_received, d.bytes_retrans, d.rcv_space, d.snd_wnd, d.backoff)


def _advertised(data: bytes, mac: bytes) -> bytes | None:
    """The target of a neighbor advertisement whose target link-layer address is ``mac`` (None: not one)."""
    from rawtui.wire.icmpv6 import NeighborAdvert, parse_icmpv6

    try:
        ip6, body = parse_ipv6(memoryview(data)[14:])
        msg = parse_icmpv6(body, ip6.src, ip6.dst, verify=False)
    except WireError:
        return None
    if isinstance(msg, NeighborAdvert) and msg.options.target_lladdr == mac:
        return msg.target
    return None


class _Closing:
    """The end of a TCP connection as the wire shows it: each side's FIN and its acknowledgement, or a RST."""

    def __init__(self) -> None:
        self.fin_end: dict[Endpoint, int] = {}  # sequence number just after each side's FIN
        self.acked: set[Endpoint] = set()
        self.reset = False

    def note(self, src: Endpoint, dst: Endpoint, seg: TcpSegment) -> None:
        if seg.flags & RST:
            self.reset = True
            return
        if seg.flags & FIN and src not in self.fin_end:
            self.fin_end[src] = (seg.seq + len(seg.payload) + 1 + (1 if seg.flags & SYN else 0)) & M32
        end = self.fin_end.get(dst)
        if end is not None and seg.flags & ACK and ((seg.ack - end) & M32) < (1 << 31):
            self.acked.add(dst)

    @property
    def closed(self) -> bool:
        return self.reset or (len(self.fin_end) == 2 and set(self.fin_end) <= self.acked)


class WatchSource:
    """Follows one connection on ``tap`` (see the module docstring); ``diag`` None: no kernel overlay."""

    def __init__(self, options: WatchOptions, tap: FrameTap, diag: DiagSource | None = None) -> None:
        self.options = options
        self.tap = tap
        self.diag = diag
        self.picker = FlowPicker(options.filter)
        self.chosen: Candidate | None = None
        self.observer: FlowObserver | None = None
        self.closing = _Closing()
        self.number = 0  # frames read (their pcap frame numbers)
        self.followed_frames = 0
        self.kernel_samples = 0
        self.kernel_drops = 0
        self.ended = False
        self.request = bytearray()
        self._arps: deque[CapturedFrame] = deque(maxlen=64)  # recent ARP frames, for the chosen flow's start
        self._last_diag: dict[str, KernelTcpInfo] = {}
        self._samples: deque[tuple[float, KernelTcpInfo]] = deque()  # (when, sample): not emitted yet
        self._last_frame = time.monotonic()
        self._next_diag = 0.0
        self._pcap: PcapWriter | None = None
        self.title = f"watch {options.iface}"

    # -- the loop ----------------------------------------------------------------------------------------

    def run(self, emit: Emit, stop: threading.Event) -> int:
        opts = self.options
        if opts.pcap:
            self._pcap = PcapWriter(opts.pcap)
        code = EXIT_OK
        try:
            while not self.ended:
                if stop.is_set():
                    code = EXIT_INTERRUPTED
                    break
                caught_up = True  # every frame queued so far has been read
                if self.tap.wait(WAIT):
                    for n in range(BATCH):
                        frame = self.tap.recv()
                        if frame is None:
                            break
                        self._frame(frame.data, frame.ts, emit)
                        if self.ended:
                            break
                        if n % SAMPLE_CHECK == SAMPLE_CHECK - 1:
                            self._maybe_sample()  # on the clock, even while the analysis lags behind
                    else:
                        caught_up = False
                now = time.monotonic()
                if self.observer is not None and not self.ended:
                    self._maybe_sample()
                    if caught_up:
                        self._release(emit, None)
                    if opts.idle and now - self._last_frame > opts.idle:
                        code = EXIT_TCP
                        break
                self.kernel_drops += self.tap.kernel_drops()
            return self._end(emit, code)
        finally:
            if self._pcap is not None:
                self._pcap.close()

    def _frame(self, data: bytes, ts: float, emit: Emit) -> None:
        self.number += 1
        if self._pcap is not None:
            self._pcap.write(data, ts)
        frame = CapturedFrame(self.number, ts, LINKTYPE_ETHERNET, data)
        peek = peek_tcp(LINKTYPE_ETHERNET, data)
        if peek is None:
            if len(data) >= 14 and (struct.unpack_from("!H", data, 12)[0] == ETH_P_ARP or _is_ndp(data)):
                if self.observer is not None:
                    self._emit(self.observer.feed(frame), emit)
                else:
                    self._arps.append(frame)
            return
        src, dst = (peek.src, peek.sport), (peek.dst, peek.dport)
        if self.observer is None:
            chosen = self.picker.offer(frame, src, dst, peek.flags, _payload_len(peek))
            if chosen is not None:
                self._follow(chosen, emit)
            return
        chosen = self.chosen
        assert chosen is not None
        if {src, dst} != {chosen.a, chosen.b}:
            return
        self._connection_frame(frame, src, dst, emit)

    def _connection_frame(self, frame: CapturedFrame, src: Endpoint, dst: Endpoint, emit: Emit) -> None:
        observer = self.observer
        assert observer is not None and self.chosen is not None
        self._last_frame = time.monotonic()
        self.followed_frames += 1
        seg = self._segment(frame.data)
        if seg is not None:
            if src == self.chosen.client and seg.payload and len(self.request) < REQUEST_KEPT:
                self.request += bytes(seg.payload[: REQUEST_KEPT - len(self.request)])
                observer.flow.request = bytes(self.request)  # the URL, before the first response bytes
            self.closing.note(src, dst, seg)
        if self._samples:
            self._release(emit, frame.ts)  # the samples taken before this frame came, before its events
        self._emit(observer.feed(frame), emit)
        if self.closing.closed or (self.options.count and self.followed_frames >= self.options.count):
            self.ended = True

    @staticmethod
    def _segment(data: bytes) -> TcpSegment | None:
        peek = peek_tcp(LINKTYPE_ETHERNET, data)
        if peek is None:
            return None
        try:
            if peek.ipv6:
                ip6, tcp = parse_ipv6(peek.ip)
                return parse_tcp(tcp, ip6.src, ip6.dst, verify=False)
            ip, tcp = parse_ipv4(peek.ip, verify=False)
            return parse_tcp(tcp, ip.src, ip.dst, verify=False)
        except WireError:
            return None

    # -- the chosen connection ---------------------------------------------------------------------------

    def _follow(self, cand: Candidate, emit: Emit) -> None:
        self.chosen = cand
        client, server = cand.client, cand.server
        flow = CapturedFlow(client[0], client[1], server[0], server[1])
        for f in cand.frames:  # what the kept frames say of the path: the SYN, the MACs, the server's TTL
            peek = peek_tcp(LINKTYPE_ETHERNET, f.data)
            if peek is None:
                continue
            if (peek.src, peek.sport) == client and not flow.client_mac:
                flow.client_mac, flow.hop_mac = f.data[6:12], f.data[0:6]
            if (peek.src, peek.sport) == client and peek.flags & SYN and flow.syn is None:
                flow.syn = self._segment(f.data)
            if (peek.src, peek.sport) == server and not flow.server_ttl:
                flow.server_ttl = peek.ttl
            if (peek.src, peek.sport) == server:
                flow.data_bytes += _payload_len(peek)
        for a in self._arps:
            if _is_ndp(a.data):  # an advertisement of the MAC the client's frames go to: the gateway's address
                gateway = _advertised(a.data, flow.hop_mac)
                if gateway is not None:
                    flow.gateway_ip = gateway
                continue
            try:
                pkt = parse_arp(memoryview(a.data)[14:])
            except WireError:
                continue
            if pkt.op == OP_REPLY and pkt.sender_mac == flow.hop_mac:
                flow.gateway_ip = pkt.sender_ip
        self.observer = FlowObserver(flow, name=self.options.iface)
        self._next_diag = 0.0
        self._maybe_sample()  # at once: the socket may not live long (kept until the frames catch up)
        emit(Info(0.0, f"following {flow.name} on {self.options.iface} (receive-only: nothing is sent)"))
        for a in self._arps:
            if a.ts <= cand.first_ts:
                self._emit(self.observer.feed(a), emit)
        self._arps.clear()
        frames, cand.frames = cand.frames, []
        for f in frames:
            peek = peek_tcp(LINKTYPE_ETHERNET, f.data)
            assert peek is not None
            self._connection_frame(f, (peek.src, peek.sport), (peek.dst, peek.dport), emit)
            if self.ended:
                break

    def _emit(self, events: list[Event], emit: Emit) -> None:
        for ev in events:
            if isinstance(ev, Route):
                ev = dataclasses.replace(ev, reason=f"watched on {self.options.iface}, receive-only")
            elif isinstance(ev, Info) and ev.message.startswith("replaying "):
                continue  # the observer's words for a file; _follow said what is followed
            emit(ev)

    def _maybe_sample(self) -> None:
        now = time.monotonic()
        if self.observer is not None and not self.ended and now >= self._next_diag:
            self._sample()
            took = time.monotonic() - now  # a dump lists every TCP socket: rarer on a host with many
            self._next_diag = now + max(self.options.diag_every, DIAG_COST_FACTOR * took)

    def _release(self, emit: Emit, upto: float | None) -> None:
        """Emit the kernel samples taken up to ``upto`` (epoch time of the last frame analysed; None: all),
        so the stream stays in time order while the analysis catches up with the wire."""
        observer = self.observer
        while self._samples and (upto is None or self._samples[0][0] <= upto):
            when, ev = self._samples.popleft()
            t0 = observer.t0 if observer is not None and observer.t0 is not None else when
            emit(dataclasses.replace(ev, t=when - t0))

    def _sample(self) -> None:
        """One inet_diag sample of this host's sockets of the connection, kept (:meth:`_release`) for each
        socket whose state changed. Stamped with the time it was taken."""
        if self.diag is None or self.chosen is None:
            return
        a, b = self.chosen.a, self.chosen.b
        when = time.time()
        for d in self.diag.find(addr_text(a[0]), a[1], addr_text(b[0]), b[1]):
            ev = kernel_event(0.0, d, self.chosen.server)
            if self._last_diag.get(ev.local) == ev:
                continue
            self._last_diag[ev.local] = ev
            self.kernel_samples += 1
            self._samples.append((when, ev))

    # -- the end ------------------------------------------------------------------------------------------

    def _end(self, emit: Emit, code: int) -> int:
        if self.observer is None and code != EXIT_OK:
            cand = self.picker.settle()
            if cand is not None:
                self._follow(cand, emit)
        observer = self.observer
        if observer is None:
            what = "interrupted" if code == EXIT_INTERRUPTED else "the watch ended"
            emit(Error(0.0, f"{what}: no connection to follow was seen on {self.options.iface} "
                       f"({self.number:,} frames)", code or EXIT_INTERRUPTED))
            return code or EXIT_INTERRUPTED
        if code == EXIT_OK:
            self._sample()  # the last word, if the socket is still there
        last = max([observer.last_ts or 0.0, *(when for when, _ in self._samples)])
        self._release(emit, None)
        finish = observer.finish(last or None)  # the end: the last frame, or the last sample if later
        mine = {"watch_frames": self.number, "watch_frames_out": self.tap.frames_out,
                "watch_connection_frames": self.followed_frames, "kernel_samples": self.kernel_samples,
                "kernel_drops": self.kernel_drops}
        t = finish[0].t if finish else 0.0
        done = next((e for e in finish if isinstance(e, Done)), None)
        for ev in finish:
            if isinstance(ev, Error):  # the connection failed (reset...): a fact of what was watched
                ev = Info(ev.t, f"in the connection: {ev.message}", "warning")
            if ev is done:
                continue
            self._emit([ev], emit)
        if self.kernel_drops:
            emit(Info(t, f"the kernel dropped {self.kernel_drops:,} frames this watch could not read in time: "
                      "the analysis has holes the connection did not have", "warning"))
        if done is None:  # no HTTP body to verify (not HTTP, TLS, or cut short): the bytes the stream carried
            got = next((e.bytes for e in reversed(finish) if isinstance(e, Progress)), 0)
            done = Done(t, got, "", round(t, 6), "", dict(observer.final_counters))
        done = dataclasses.replace(done, counters={**done.counters, **mine})
        emit(done)
        if code == EXIT_INTERRUPTED:
            emit(Error(t, "interrupted", EXIT_INTERRUPTED))
        elif code != EXIT_OK:
            emit(Error(t, f"no frame of {observer.flow.name} for {self.options.idle:g} s (--idle)", code))
        return code
