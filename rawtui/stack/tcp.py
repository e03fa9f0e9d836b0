"""The sans-IO TCP client connection (RFC 9293, 5681, 6298, 6582, 6928, 7323, 2018, 5961).

No sockets, clocks, threads or randomness: the caller passes ``now`` (seconds) into every call, feeds
checksum-verified segments with :meth:`TcpConnection.on_segment`, calls :meth:`TcpConnection.on_timer`
when ``now >= next_deadline``, and drains :meth:`take_segments` (TCP header + payload, checksum filled)
and :meth:`take_events` (typed records from :mod:`rawtui.events`).

Sequence numbers are modulo 2**32 (``seq_lt`` and friends). The receive side works internally in
*stream offsets* (bytes after the peer's SYN, unbounded integers), converted at the edge, so the
reassembly queue and window arithmetic never wrap. Congestion control lives behind the small
interface of :mod:`rawtui.stack.congestion`.

States and their transitions are :mod:`rawtui.stack.tcp_states`; every move goes through
``_set_state``, which asks that table and emits a :class:`TcpState` event.
"""

from __future__ import annotations

from collections import deque

from rawtui.errors import TcpError
from rawtui.stack.congestion import CongestionControl, CongestionFactory, Reno
from rawtui.stack.events import (
    DupAck,
    DupData,
    Event,
    Handshake,
    OutOfOrder,
    PathMtu,
    PeerRetransmit,
    Retransmit,
    RetransmitKind,
    SegmentIn,
    SegmentOut,
    TcpState,
    Window,
)
from rawtui.stack.reassembly import Reassembly
from rawtui.stack.tcp_states import (
    RECEIVING as _RECEIVING,
)
from rawtui.stack.tcp_states import (
    RESET_IS_ERROR as _RESET_IS_ERROR,
)
from rawtui.stack.tcp_states import (
    SENDING as _SENDING,
)
from rawtui.stack.tcp_states import (
    SYNCHRONIZED as _SYNCHRONIZED,
)
from rawtui.stack.tcp_states import (
    Input,
    State,
    next_state,
)
from rawtui.wire.checksum import pseudo_header_residue
from rawtui.wire.icmp import MIN_MTU as IPV4_MIN_MTU
from rawtui.wire.icmp import plateau_below
from rawtui.wire.ipv4 import PROTO_TCP
from rawtui.wire.ipv6 import MIN_MTU as IPV6_MIN_MTU
from rawtui.wire.ipv6 import endpoint_text
from rawtui.wire.tcp import (
    ACK,
    FIN,
    NO_OPTIONS,
    PSH,
    RST,
    SYN,
    TcpOptions,
    TcpSegment,
    build_pure_ack,
    build_tcp,
    flags_str,
)

M32 = 0xFFFFFFFF
_HALF = 1 << 31
_MOD = 1 << 32

CLOSED, SYN_SENT, ESTABLISHED = State.CLOSED, State.SYN_SENT, State.ESTABLISHED
FIN_WAIT_1, FIN_WAIT_2, CLOSE_WAIT = State.FIN_WAIT_1, State.FIN_WAIT_2, State.CLOSE_WAIT
CLOSING, LAST_ACK, TIME_WAIT = State.CLOSING, State.LAST_ACK, State.TIME_WAIT

COUNTER_NAMES = (
    "segments_in", "segments_out", "bytes_in", "bytes_out", "bytes_delivered",
    "bad_port", "closed_drops", "bad_synack", "out_of_window", "window_probes_in",
    "dup_data", "dup_data_bytes", "partial_dup", "out_of_order", "out_of_order_bytes", "holes_filled",
    "acks_sent", "delayed_acks", "dup_acks_sent", "window_updates", "challenge_acks",
    "acks_in", "dup_acks_in", "ack_unsent", "old_acks", "rtt_samples",
    "retransmits", "fast_retransmits", "rto_timeouts", "syn_retransmits", "zero_window_probes",
    "rst_in", "rst_out", "rst_ignored", "syn_in", "no_ack_drops", "ooo_limit_drops", "sacks_compressed",
    "peer_retrans", "peer_retrans_fast", "peer_retrans_timeout", "peer_retrans_tlp", "peer_retrans_spurious",
    "network_copies", "network_late", "dsacks_sent", "pmtu_lowered", "pmtu_ignored",
)
_FIN_SENT = frozenset({FIN_WAIT_1, CLOSING, LAST_ACK})  # our FIN is out, not yet acknowledged
MAX_OOO_BLOCKS = 4096  # disjoint out-of-order blocks held at most (memory beyond the window's bytes)
# SACK compression, as Linux does it (net.ipv4.tcp_comp_sack_delay_ns / tcp_comp_sack_nr, in
# __tcp_ack_snd_check): for one RCV.NXT the first DUPACK_THRESH out-of-order segments get an immediate
# duplicate ACK (a sender's fast retransmit needs three); after that one ACK with the newest SACK blocks
# goes per min(COMP_SACK_DELAY, RTT / 20), or at once when COMP_SACK_NR segments were held back.
DUPACK_THRESH = 3
# In one batch of frames (hold_acks), in-order data is acknowledged once, unless that would acknowledge
# more than this many full segments at a time (GRO merges up to 64 KB: ~44 segments of 1448 bytes).
STRETCH_SEGMENTS = 16
COMP_SACK_DELAY = 0.001
COMP_SACK_NR = 44
# The server's retransmissions, seen from here (see _resent_*): the silences that tell its timers apart.
# Linux arms its tail-loss probe at PTO = 2 SRTT after its last send, and its retransmission timer at
# RTO >= SRTT + 200 ms (the 200 ms floor of rttvar, tcp_rto_min). So after a silence of
# min(max(180 ms, 3 RTT), RTT + 180 ms) what comes is the RTO's; after 1.5 RTT (at least 10 ms) a probe's.
TIMEOUT_SILENCE = 0.18
TLP_SILENCE = 0.01
# Timestamps tick once a millisecond: on a path faster than that, a fast retransmission can carry the
# TSval of the segment above its hole. Then the IPv4 ID tells which was sent first, when the peer numbers
# its packets in order (Linux: a counter per connection, +1 per segment, GSO and retransmissions included):
# IDs are taken as ordered while at least IPID_ORDERED_MIN steps between the peer's packets were small and
# forward (1..IPID_STEP_MAX) and at most 1 + a quarter as many were anything else (random IDs make a small
# step ~1.6 % of the time; a SYN-ACK's ID may be unrelated). Every step of the first IPID_VOTE_ALL segments
# counts (a loss among the first segments needs the answer), then every IPID_VOTE_EVERY-th (the cost per frame).
IPID_STEP_MAX = 1024
IPID_ORDERED_MIN = 2
IPID_VOTE_ALL = 64
IPID_VOTE_EVERY = 8  # a power of two
_FAST, _TIMEOUT = RetransmitKind.FAST, RetransmitKind.TIMEOUT
_TLP, _SPURIOUS = RetransmitKind.TLP, RetransmitKind.SPURIOUS
_KIND_COUNTER = {k: f"peer_retrans_{k.value}" for k in RetransmitKind}

_FLAG_STR: dict[int, str] = {}


def _fs(flags: int) -> str:
    s = _FLAG_STR.get(flags)
    if s is None:
        s = _FLAG_STR[flags] = flags_str(flags)
    return s


def seq_lt(a: int, b: int) -> bool:
    return 0 < ((b - a) & M32) < _HALF


def seq_le(a: int, b: int) -> bool:
    return ((b - a) & M32) < _HALF


def seq_gt(a: int, b: int) -> bool:
    return seq_lt(b, a)


def seq_ge(a: int, b: int) -> bool:
    return seq_le(b, a)


def seq_diff(a: int, b: int) -> int:
    """a - b as a signed 32-bit distance."""
    d = (a - b) & M32
    return d - _MOD if d >= _HALF else d


def wscale_for(rcv_buf: int) -> int:
    """The smallest shift that lets a 16-bit window describe ``rcv_buf`` (RFC 7323: at most 14)."""
    ws = 0
    while ws < 14 and (0xFFFF << ws) < rcv_buf:
        ws += 1
    return ws


class TcpConnection:
    """One client connection. See the module docstring for the calling convention."""

    def __init__(
        self,
        *,
        local_ip: bytes,
        remote_ip: bytes,
        local_port: int,
        remote_port: int,
        isn: int,
        mss: int = 1460,
        rcv_buf: int = 8 << 20,
        sack: bool = True,
        timestamps: bool = True,
        ts_offset: int = 0,
        syn_retries: int = 5,
        max_retries: int = 8,
        delack: float = 0.04,
        min_rto: float = 0.2,
        max_rto: float = 60.0,
        initial_rto: float = 1.0,
        time_wait: float = 1.0,
        segment_events: bool = True,
        window_event_interval: float = 0.01,
        congestion: CongestionFactory = Reno,
    ) -> None:
        self.local_ip = local_ip
        self.remote_ip = remote_ip
        self.local_port = local_port
        self.remote_port = remote_port
        self.isn = isn & M32
        self.adv_mss = mss  # the MSS option we send
        self.rcv_buf = rcv_buf
        self.want_sack = sack
        self.want_timestamps = timestamps
        self.ts_offset = ts_offset
        self.syn_retries = syn_retries
        self.max_retries = max_retries
        self.delack = delack
        self.min_rto = min_rto
        self.max_rto = max_rto
        self.initial_rto = initial_rto
        self.time_wait = time_wait
        self.segment_events = segment_events
        self._ph_base = pseudo_header_residue(local_ip, remote_ip, PROTO_TCP, 0)
        # the family, from the address length (the pseudo-header above needs nothing more): for path MTU
        self._ipv6 = len(local_ip) == 16
        self.path_mtu: int | None = None  # set when an ICMP error lowered it (on_path_mtu)
        self._pmtu_mss: int | None = None
        self.window_event_interval = window_event_interval

        self.state: State = CLOSED
        self._fast_ok = False
        self.error: TcpError | None = None
        self.peer_eof = False
        self.counters: dict[str, int] = dict.fromkeys(COUNTER_NAMES, 0)

        # negotiated
        self.peer_isn = 0
        self.peer_mss = 536
        self.mss = min(mss, 536)  # the MSS we send with: min(ours, peer's)
        self.smss = self.mss  # payload bytes per full segment (MSS minus the timestamp option)
        self.rcv_wscale = wscale_for(rcv_buf)  # our shift (what we send in the SYN)
        self.snd_wscale = 0  # the peer's shift, applied to its windows
        self.sack_ok = False
        self.ts_ok = False
        self.handshake_rtt: float | None = None

        # send side (sequence numbers)
        self.snd_una = self.isn
        self.snd_nxt = self.isn
        self.snd_max = self.isn
        self.snd_wnd = 0
        self._max_snd_wnd = 0
        self._snd_wl1 = 0
        self._snd_wl2 = 0
        self._sndbuf = bytearray()  # data from snd_una (= isn+1 once established) onward
        self._fin_queued = False
        self._fin_acked = False
        self._probe_out = False  # a zero-window probe byte beyond snd_max may be acked
        self._congestion = congestion
        self.cc: CongestionControl = congestion(self.smss)
        self._dupacks = 0
        self._recover = self.isn
        self._rtx_reason = "rto"

        # RTT / RTO (RFC 6298)
        self.srtt: float | None = None
        self.rttvar: float | None = None
        self.rto = initial_rto
        self._backoff = 0
        self._rtt_seq: int | None = None  # Karn timing without timestamps
        self._rtt_t = 0.0
        # (TSval, first send time, the last ACK number sent with the TSval before it)
        self._ts_sent: deque[tuple[int, float, int]] = deque(maxlen=8192)
        self._syn_count = 0
        self._syn_t = 0.0

        # receive side (stream offsets: 0 = the first data byte after the peer's SYN)
        self.rcv_nxt = 0  # sequence number
        self._rcv_off = 0  # bytes received in order
        self._rd_off = 0  # bytes read by the app
        self._adv_max = 0  # highest right edge we ever advertised (offset)
        self._rxq: deque[bytes] = deque()
        self._rx_len = 0
        self._ooo = Reassembly()
        self._fin_off: int | None = None  # offset of a FIN seen out of order
        self._rcv_mss = 536
        self._unacked = 0  # in-order bytes received since our last ACK
        self._holding = False  # in a batch: in-order ACKs wait for its end (hold_acks)
        self._ack_held = False  # an ACK is due when the batch ends
        self._last_ack_sent = 0
        self._last_wnd_sent = 0  # bytes
        self._ooo_dupacks = 0  # duplicate ACKs sent for the current hole
        self._dupack_rcv_nxt = -1  # SACK compression: the RCV.NXT the counter below is about
        self._dupack_counter = 0  # immediate dup ACKs sent for it (up to DUPACK_THRESH)
        self._comp_sacks = 0  # out-of-order segments whose ACK is being held back
        self.ts_recent = 0
        self._last_tsecr_seen = -1
        self.rcv_rtt: float | None = None  # receiver-side RTT estimate (seconds)
        self.peer_flight = 0
        self._pf_t0 = 0.0
        self._pf_b0 = 0
        # the server's retransmissions (see _resent_*)
        self._rx_t = 0.0  # when the last segment came from the peer
        self._silence = 0.0  # how long nothing had come before the segment being handled
        self._ts_last = -1  # the newest TSval of the peer's data so far (-1: none, or no timestamps)
        self._seq_last = -1  # the sequence number of the last data segment
        self._dsack: tuple[int, int] | None = None  # offsets of duplicate data for the next ACK (RFC 2883)
        # (start, end offsets, TSval and IPv4 ID of the segment that opened the hole) of the latest holes a
        # retransmission filled: the original of that data may still come, late (see _resent_repeat)
        self._resent_fills: deque[tuple[int, int, int, int]] = deque(maxlen=64)
        # (start, end offsets, TSval and IPv4 ID) of the latest late originals that filled a hole: a later
        # transmission of that data is the server's resend, even when it comes behind newer data
        self._late_fills: deque[tuple[int, int, int, int]] = deque(maxlen=64)
        # (IPv4 ID, payload length) of the segment being handled and of the one before (ID -1: none, IPv6)
        self._ipid_cur = self._ipid_last = (-1, 0)
        self._ipid_fwd = 0  # steps from one of the peer's packets to the next (every IPID_VOTE_EVERY-th):
        self._ipid_other = 0  # small and forward, or anything else (see IPID_ORDERED_MIN)
        self._tight_wnd = 0  # we call our window tight below this (2 MSS, set by the handshake)
        self._tight_t = -1.0  # when we last advertised a tight window

        # timers
        self._rtx_at: float | None = None
        self._delack_at: float | None = None
        self._sack_at: float | None = None  # a compressed SACK is due
        self._persist_at: float | None = None
        self._persist_backoff = 0
        self._probes_unanswered = 0
        self._tw_at: float | None = None

        # output
        self._out: list[bytes] = []
        self._events: list[Event] = []
        self._now = 0.0
        self._win_key: tuple[int, int, float] = (0, 0, 0.0)
        self._win_t = -1.0
        self._flowing = False

    # ------------------------------------------------------------------ public API

    @property
    def rcv_buffered(self) -> int:
        return self._rx_len + self._ooo.bytes

    @property
    def ooo_bytes(self) -> int:
        """Bytes held out of order (beyond a hole)."""
        return self._ooo.bytes

    @property
    def bytes_received(self) -> int:
        """Data bytes received in order (delivered to the receive buffer)."""
        return self._rcv_off

    @property
    def receive_coalesce(self) -> float:
        """How long the I/O loop may let arriving frames gather before handing them over, once one has
        come (interrupt moderation, as a NIC's ``rx-usecs``): while data flows in on an established
        connection, half the bound of a compressed SACK's delay, min(0.5 ms, RTT / 40), so that no ACK
        leaves later than 2.5 % of a round trip after its segment came; 0 before the first data byte,
        without an RTT estimate, and in any other state (the handshake, the request, the close go at once).

        Half, not all of it: the ACKs of one gathering leave together and the sender answers each
        gathering with a burst. Measured on the lab's 100 Mbit/s link (a 200-frame queue, 20 ms RTT,
        50 MiB): before ACKs were stretched over a batch (:meth:`hold_acks`), the bottleneck dropped a
        median of ~570 frames with no gathering, ~690 with 0.5 ms, ~1,000 with 1 ms (CPU 2.25, 1.50,
        1.30 s; 8 runs each); with them, 5 runs each in one run: curl's kernel 385 drops, no gathering
        480, 0.5 ms 437 (CPU 0.51, 2.29, 1.37 s), and in another run 1 ms 412 (1.10 s) against 0.5 ms's
        395 (1.19 s)."""
        if self.state is not ESTABLISHED or not self._rcv_off:
            return 0.0
        bound = self._ack_delay_bound()
        return 0.0 if bound is None else bound / 2

    def _ack_delay_bound(self) -> float | None:
        """min(COMP_SACK_DELAY, RTT / 20) with the smaller of the receiver's and the sender's RTT
        estimates (Linux's bound for a compressed SACK), or None before either exists."""
        rtt = self.rcv_rtt
        if rtt is None or (self.srtt is not None and self.srtt < rtt):
            rtt = self.srtt
        return None if rtt is None else min(COMP_SACK_DELAY, rtt / 20)

    @property
    def send_pending(self) -> int:
        """Our data bytes not yet acknowledged."""
        return len(self._sndbuf)

    @property
    def next_deadline(self) -> float | None:
        """The earliest time :meth:`on_timer` must be called (retransmission, delayed ACK, compressed
        SACK, persist, TIME-WAIT), or None when no timer runs. It changes after every call."""
        best: float | None = None
        for t in (self._rtx_at, self._delack_at, self._sack_at, self._persist_at, self._tw_at):
            if t is not None and (best is None or t < best):
                best = t
        return best

    @property
    def has_output(self) -> bool:
        """Segments or events are waiting for :meth:`take_segments` / :meth:`take_events`."""
        return bool(self._out or self._events)

    def take_segments(self) -> list[bytes]:
        """The segments to send, oldest first, and forget them: each a whole TCP header (checksum
        filled for this connection's addresses) plus payload, for the caller to wrap in IP."""
        out = self._out
        self._out = []
        return out

    def take_events(self) -> list[Event]:
        """The events since the last call (:mod:`rawtui.events`), in the order they happened."""
        ev = self._events
        self._events = []
        return ev

    def connect(self, now: float) -> None:
        """Open the connection: the SYN is queued (CLOSED -> SYN-SENT). Raises TcpError when called twice."""
        if self.state != CLOSED or self._syn_count:
            raise TcpError("connect() called twice")
        self._now = now
        self._set_state(Input.CONNECT, now)
        self._send_syn(now)

    def send(self, data: bytes, now: float) -> None:
        """Queue ``data`` for the peer; it leaves as the windows allow (at once if established). Raises
        the connection's error once it failed, or TcpError when the connection no longer sends."""
        if self.error is not None:
            raise self.error
        if self._fin_queued or self.state not in (CLOSED, SYN_SENT, ESTABLISHED, CLOSE_WAIT):
            raise TcpError(f"cannot send: connection is {self.state}" + (" (closing)" if self._fin_queued else ""))
        self._now = now
        self._sndbuf += data
        if self.state in _SENDING:
            self._output(now)

    def close(self, now: float) -> None:
        """Send a FIN after all queued data (a no-op when already closing or closed)."""
        self._now = now
        st = self.state
        if self._fin_queued or st in (CLOSED, FIN_WAIT_1, FIN_WAIT_2, CLOSING, LAST_ACK, TIME_WAIT):
            return
        if st == SYN_SENT:
            if self._sndbuf:
                self._fin_queued = True  # FIN-WAIT-1 once established
            else:
                self._set_state(Input.CLOSE, now)
                self._clear_timers()
            return
        self._fin_queued = True
        self._set_state(Input.CLOSE, now)
        self._output(now)

    def abort(self, now: float) -> None:
        """Send a RST (in synchronized states) and go CLOSED."""
        self._now = now
        if self.state in _SYNCHRONIZED and self.state != TIME_WAIT:
            self._emit(now, self.snd_nxt, RST | ACK, note="abort")
            self.counters["rst_out"] += 1
        self._to_closed(Input.ABORT, now)

    def read(self, max_bytes: int | None = None) -> bytes:
        """In-order data for the app. Frees buffer space; may queue a window update segment."""
        q = self._rxq
        if not q:
            return b""
        if max_bytes is None or max_bytes >= self._rx_len:
            data = q[0] if len(q) == 1 else b"".join(q)
            q.clear()
        else:
            parts: list[bytes] = []
            need = max_bytes
            while need > 0:
                p = q[0]
                if len(p) <= need:
                    parts.append(q.popleft())
                    need -= len(p)
                else:
                    parts.append(p[:need])
                    q[0] = p[need:]
                    need = 0
            data = b"".join(parts)
        n = len(data)
        self._rx_len -= n
        self._rd_off += n
        self.counters["bytes_delivered"] += n
        if self.state in _RECEIVING:
            self._maybe_window_update(self._now)
        return data

    def note_window_advertised(self, window: int, now: float) -> None:
        """A receive window (bytes) advertised for this connection by the real client when the machine
        only observes a capture (its own segments are not sent): a tight one explains the server's silence
        after it as our own would (no timer retransmission is read into the data that follows)."""
        if window < self._tight_wnd:
            self._tight_t = now

    def read_chunks(self) -> list[bytes]:
        """All in-order data for the app, as the chunks it arrived in (no joining copy)."""
        q = self._rxq
        if not q:
            return []
        chunks = list(q)
        q.clear()
        n = self._rx_len
        self._rx_len = 0
        self._rd_off += n
        self.counters["bytes_delivered"] += n
        if self.state in _RECEIVING:
            self._maybe_window_update(self._now)
        return chunks

    def on_path_mtu(self, mtu: int, now: float, *, seq: int | None = None, quoted_length: int = 0,
                    sender: str = "") -> bool:
        """An ICMPv6 Packet Too Big (RFC 8201) or ICMP fragmentation-needed (RFC 1191) for this connection
        said the path carries ``mtu`` bytes: lower the MSS we send with, resend what is in flight in
        segments that fit, and emit :class:`PathMtu`. ``seq`` is the sequence number of the TCP header the
        error quotes: outside SND.UNA..SND.MAX the error is not about data we sent and is ignored (RFC
        5927 4.1, as Linux's tcp_v4_err / tcp_v6_err). ``mtu`` is clamped to the family's minimum (1280
        for IPv6, 68 for IPv4); an IPv4 0 (a router older than RFC 1191) guesses the plateau below
        ``quoted_length``. Only lowers: a larger MTU is ignored. ``sender``: the router that said it, for
        the event. Returns whether the MSS changed."""
        c = self.counters
        if self.state in (CLOSED, TIME_WAIT) or (
                seq is not None and not (seq_le(self.snd_una, seq) and seq_le(seq, self.snd_max))):
            c["pmtu_ignored"] += 1
            return False
        reported = mtu
        overhead = (40 if self._ipv6 else 20) + 20
        if mtu == 0 and not self._ipv6:
            mtu = plateau_below(quoted_length or (self.mss + overhead))
        mtu = max(mtu, IPV6_MIN_MTU if self._ipv6 else IPV4_MIN_MTU)
        new = mtu - overhead
        synced = self.state in _SYNCHRONIZED
        old = self.mss if synced else (self._pmtu_mss or self.adv_mss)
        if new >= old:
            c["pmtu_ignored"] += 1
            return False
        c["pmtu_lowered"] += 1
        self._pmtu_mss = new
        self.path_mtu = mtu
        self._events.append(PathMtu(now, mtu, reported, new, old,
                                    "icmpv6 packet too big" if self._ipv6 else "icmp fragmentation needed", sender))
        if synced:
            self.mss = new
            self.smss = max(new - (12 if self.ts_ok else 0), 1)
            self.cc.mss = self.smss
            if self.snd_max != self.snd_una and self.state in _SENDING:
                # what is in flight was too big and is lost: resend it now in segments that fit (Linux's
                # tcp_simple_retransmit; the window is not cut, as no congestion was seen)
                self._rtx_reason = "pmtu"
                self._rtt_seq = None  # Karn
                self.snd_nxt = self.snd_una
                self._output(now)
        return True

    def on_timer(self, now: float) -> None:
        """Run every timer due at ``now`` (call it when ``now >= next_deadline``; early calls are harmless)."""
        self._now = now
        if self._tw_at is not None and now >= self._tw_at:
            self._tw_at = None
            self._set_state(Input.TIME_WAIT_OVER, now)
            self._clear_timers()
            return
        if self._rtx_at is not None and now >= self._rtx_at:
            self._on_rto(now)
            if self.state == CLOSED:
                return
        if self._persist_at is not None and now >= self._persist_at:
            self._on_persist(now)
            if self.state == CLOSED:
                return
        if self._sack_at is not None and now >= self._sack_at:
            self._sack_at = None
            if self._ooo and self.state in _RECEIVING:
                self._send_ack(now, note="dup-ack")  # the held-back SACK
        if self._delack_at is not None and now >= self._delack_at:
            self._delack_at = None
            self.counters["delayed_acks"] += 1
            self._send_ack(now)
        self._window_event(now)

    # ------------------------------------------------------------------ receive

    def on_segment(self, seg: TcpSegment, now: float, ip_id: int = -1) -> None:
        """Take one segment from the peer, its checksum already verified (by the caller or the NIC);
        ``ip_id``: its IPv4 header's ID (-1: IPv6, or not known), which tells the peer's send order apart
        within one timestamp tick (see IPID_STEP_MAX).

        Anything goes in: segments for other ports, old, duplicate, out-of-window or hostile ones are
        counted and answered as RFC 9293 / 5961 say, never raised. Afterwards, :meth:`take_segments`,
        :meth:`take_events`, :meth:`read_chunks` and :attr:`next_deadline` tell what it decided.
        """
        self._now = now
        c = self.counters
        c["segments_in"] = n = c["segments_in"] + 1
        self._ipid_last = self._ipid_cur
        self._ipid_cur = (ip_id, len(seg.payload))
        if (n <= IPID_VOTE_ALL or not n & (IPID_VOTE_EVERY - 1)) and ip_id >= 0 <= self._ipid_last[0]:
            if 0 < (ip_id - self._ipid_last[0]) & 0xFFFF <= IPID_STEP_MAX:
                self._ipid_fwd += 1
            else:
                self._ipid_other += 1
        self._silence = now - self._rx_t
        self._rx_t = now
        # The fast path (the download's steady state): in-order data at RCV.NXT, nothing queued out of
        # order, a plain ACK of nothing new with the peer's window unchanged, room in our window.
        if (
            self._fast_ok
            and (seg.flags | PSH) == (ACK | PSH)
            and seg.ack == self.snd_una
            and self._fin_off is None
            and seg.dst_port == self.local_port
            and seg.src_port == self.remote_port
            and (seg.window << self.snd_wscale) == self.snd_wnd
        ):
            payload = seg.payload
            plen = len(payload)
            delta = (seg.seq - self.rcv_nxt) & M32
            room = self._adv_max - self._rcv_off
            if plen and delta + plen <= room and (delta or self._ooo.bytes):
                # out of order, or filling the hole at RCV.NXT, wholly inside the window (the steady state
                # of a lossy path): what the general path below would do, without the checks that cannot apply
                c["bytes_in"] += plen
                c["acks_in"] += 1
                self._probes_unanswered = 0
                if delta:
                    if seq_gt(seg.seq, self._snd_wl1):  # _update_window's bookkeeping (window unchanged)
                        self._snd_wl1 = seg.seq
                        self._snd_wl2 = seg.ack
                elif self.ts_ok and (ts := seg.options.ts) is not None:
                    self._ts_recent_update(seg.seq, ts[0])
                note = self._on_data(seg, payload, plen, delta, room, now)
                if self.segment_events:
                    self._seg_in(seg, now, note)
                if not delta or now - self._win_t >= self.window_event_interval:
                    self._window_event(now)
                return
            if delta == 0 and 0 < plen <= self._adv_max - self._rcv_off:
                # in order, nothing held out of order, wholly inside the window: _on_data's first case
                c["bytes_in"] += plen
                c["acks_in"] += 1
                self._snd_wl1 = seg.seq
                if plen > self._rcv_mss and plen <= self.adv_mss:
                    self._rcv_mss = plen
                self._flowing = True
                if self.ts_ok and (ts := seg.options.ts) is not None:
                    self._on_timestamps(seg.seq, ts, now)
                if self._silence >= TLP_SILENCE and self._rcv_off:
                    self._resent_in_order(seg, plen, now)
                self._take_in_order(payload, plen, now)
                self._ack_in_order(plen, now)
                if self.segment_events:
                    self._events.append(
                        SegmentIn(now, (seg.seq - self.peer_isn) & M32, (seg.ack - self.isn) & M32,
                                  _fs(seg.flags), self.snd_wnd, plen)
                    )
                if now - self._win_t >= self.window_event_interval:
                    self._window_event(now)
                return
        if seg.dst_port != self.local_port or seg.src_port != self.remote_port:
            c["bad_port"] += 1
            return
        state = self.state
        if state == SYN_SENT:
            self._on_segment_syn_sent(seg, now)
            return
        if state == CLOSED:
            c["closed_drops"] += 1
            self._seg_in(seg, now, "closed")
            return

        flags = seg.flags
        payload = seg.payload
        plen = len(payload)
        c["bytes_in"] += plen
        seq = seg.seq
        rcv_nxt = self.rcv_nxt
        delta = (seq - rcv_nxt) & M32
        if delta >= _HALF:
            delta -= _MOD
        rcv_wnd = self._adv_max - self._rcv_off
        rcv_wnd = max(rcv_wnd, 0)
        seglen = plen + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)

        # RFC 9293 3.10.7.4 acceptability (a segment starting exactly at RCV.NXT is always looked at:
        # ACKs, RSTs and FINs must get through a zero window; its data is trimmed below).
        if delta == 0:
            acceptable = True
        elif seglen == 0:
            acceptable = 0 <= delta < rcv_wnd
        else:
            acceptable = (0 <= delta < rcv_wnd) or (0 <= delta + seglen - 1 < rcv_wnd) or (
                delta < 0 and delta + seglen > rcv_wnd > 0
            )

        if flags & RST:
            self._on_rst(seg, delta, rcv_wnd, now)
            return

        if flags & SYN:
            # RFC 5961 4.2: a SYN in a synchronized state, whatever its sequence number, gets a challenge ACK.
            c["syn_in"] += 1
            c["challenge_acks"] += 1
            self._seg_in(seg, now, "challenge")
            self._send_ack(now, note="challenge")
            return

        if not acceptable:
            if plen == 0 and rcv_wnd == 0 and -1 <= delta <= 1:
                c["window_probes_in"] += 1
                note = "zero-window-probe"
            elif delta < 0 and delta + seglen <= 0:
                if plen:
                    c["dup_data"] += 1
                    c["dup_data_bytes"] += plen
                    self._events.append(DupData(now, (seq - self.peer_isn) & M32, plen))
                    start = self._rcv_off + delta
                    note = self._resent_repeat(seg, start, start + plen, now)
                else:
                    note = "old"
            elif rcv_wnd == 0 and 0 <= delta <= 1:
                c["window_probes_in"] += 1
                note = "zero-window-probe"
            else:
                c["out_of_window"] += 1
                note = "out-of-window"
            self._seg_in(seg, now, note)
            if state == TIME_WAIT and flags & FIN:
                self._tw_at = now + self.time_wait  # a retransmitted FIN restarts 2*MSL
            self._send_ack(now, note="dup-ack" if note in ("dup", "copy", "late") else "")
            return

        if not flags & ACK:
            c["no_ack_drops"] += 1
            self._seg_in(seg, now, "no-ack")
            return

        # ---- ACK processing (our send side)
        ack = seg.ack
        una = self.snd_una
        d_ack = (ack - una) & M32
        if d_ack:
            limit = (self.snd_max - una) & M32
            if self._probe_out:
                limit += 1
            if d_ack <= limit:
                self._on_new_ack(seg, d_ack, now)
                if self.state == CLOSED:
                    self._seg_in(seg, now, "")
                    return
            elif d_ack < _HALF:
                # RFC 9293: an ACK for something not yet sent: ACK and drop.
                c["ack_unsent"] += 1
                self._seg_in(seg, now, "ack-unsent")
                self._send_ack(now)
                return
            elif ((una - ack) & M32) > self._max_snd_wnd:
                # RFC 5961 5.2: an ACK older than SND.UNA - MAX.SND.WND is a blind injection attempt
                # (its data must not be delivered): drop it, send a challenge ACK.
                c["old_acks"] += 1
                c["challenge_acks"] += 1
                self._seg_in(seg, now, "challenge")
                self._send_ack(now, note="challenge")
                return
            else:
                c["old_acks"] += 1
        else:
            c["acks_in"] += 1
            self._probes_unanswered = 0
            if (
                plen == 0
                and not flags & FIN
                and self.snd_max != una
                and (seg.window << self.snd_wscale) == self.snd_wnd
            ):
                self._on_dup_ack(now)
            self._update_window(seg, now)

        if self.ts_ok and (ts := seg.options.ts) is not None:
            self._ts_recent_update(seq, ts[0])

        note = ""
        state = self.state
        if plen and state in _RECEIVING:
            note = self._on_data(seg, payload, plen, delta, rcv_wnd, now)
        elif flags & FIN and state in _RECEIVING:
            if delta == 0:
                self._on_fin(now)
            elif 0 < delta <= rcv_wnd and self._fin_off is None:
                self._fin_off = self._rcv_off + delta
                self._send_ack(now)
        if self.segment_events:
            self._seg_in(seg, now, note)
        self._window_event(now)

    def _on_data(self, seg: TcpSegment, payload: bytes | memoryview, plen: int, delta: int,
                 rcv_wnd: int, now: float) -> str:
        """Data from the peer (acceptable, in a receiving state): deliver it, hold it out of order or note
        it as old; ACK as RFC 9293 / 5681 / 2018 / 2883 say; classify the server's retransmissions.
        Returns the segment's note ("", "fill", "ooo", "dup", "copy", "late", ...)."""
        c = self.counters
        fin = bool(seg.flags & FIN)
        ts = seg.options.ts if self.ts_ok else None
        partly_old = False
        if delta < 0:  # partly old: trim the front
            c["partial_dup"] += 1
            start = self._rcv_off + delta
            if plen + delta <= 0:  # only the FIN was new
                note = self._resent_repeat(seg, start, start + plen, now)
                if fin:
                    self._on_fin(now)
                else:
                    self._send_ack(now)
                return note
            partly_old = True
            self._dsack_note(start, self._rcv_off)
            payload = payload[-delta:]
            plen += delta
            delta = 0
        room = rcv_wnd - delta
        if plen > room:  # trim to the window; the FIN falls off with the tail
            if room <= 0:
                c["window_probes_in" if rcv_wnd == 0 else "out_of_window"] += 1
                self._send_ack(now)
                return "zero-window-probe" if rcv_wnd == 0 else "out-of-window"
            payload = payload[:room]
            plen = room
            fin = False
        if plen > self._rcv_mss and plen <= self.adv_mss:
            self._rcv_mss = plen
        self._flowing = True
        if ts is not None and ts[1] != self._last_tsecr_seen:
            self._last_tsecr_seen = ts[1]
            self._rcv_rtt_sample(ts[1], now)
        ooo = self._ooo
        off = self._rcv_off + delta
        if delta == 0:
            if not ooo:  # in order, nothing queued
                if partly_old:  # a resend that also carries new data: it repeated some, so it was one
                    self._resent(seg, self._silence_kind() or _SPURIOUS, 0, now)
                elif self._silence >= TLP_SILENCE and off:
                    self._resent_in_order(seg, plen, now)
                self._ts_newest(seg.seq, ts)
                self._take_in_order(payload, plen, now)
                if fin or (self._fin_off is not None and self._fin_off == self._rcv_off):
                    self._on_fin(now)
                    return ""
                if partly_old:
                    self._send_ack(now)  # the D-SACK goes at once
                else:
                    self._ack_in_order(plen, now)
                return ""
            # in order with a queue: it fills the hole at RCV.NXT; merge, deliver what is now contiguous,
            # ACK at once
            self._resent_fill(seg, ts, ooo.hole_under(off, off + plen), off, off + plen, now)
            ooo.add(off, bytes(payload))
            got = ooo.pop_ready(off)
            assert got is not None
            end, pieces = got
            self._deliver(pieces, end - off)
            c["holes_filled"] += 1
            self._peer_flight_update(now)
            if fin and self._fin_off is None:
                self._fin_off = off + plen
            if self._fin_off is not None and self._fin_off <= self._rcv_off:
                self._on_fin(now)
            else:
                self._send_ack(now)
            return "fill"
        # out of order: hold it (inside the window only), dup ACK with SACK at once
        if len(ooo) >= MAX_OOO_BLOCKS:
            # each hole costs ~300 bytes besides its data: a peer sending 1-byte segments at every other
            # offset would make that ~150x the window. Past this many, only data at RCV.NXT is taken
            # (the peer resends the rest; legitimate loss never comes near: it is ~600 holes at 10 %).
            c["ooo_limit_drops"] += 1
            self._send_ack(now, note="dup-ack")
            return "ooo-limit"
        at_edge = off == ooo.last_end  # new data right after the highest block: it only grows that block
        if at_edge:
            new = ooo.add(off, bytes(payload))
            self._ts_newest(seg.seq, ts)
        else:
            hole = ooo.hole_under(off, off + plen)
            if hole is not None:  # it fills (part of) a hole between held blocks
                self._resent_fill(seg, ts, hole, off, off + plen, now)
            elif ooo.block_holding(off, off + plen) is not None:  # all held already
                note = self._resent_repeat(seg, off, off + plen, now)
                c["dup_data"] += 1
                c["dup_data_bytes"] += plen
                if self.segment_events:
                    self._events.append(DupData(now, (seg.seq - self.peer_isn) & M32, plen))
                self._ack_out_of_order(now, False)
                return note
            else:  # above everything held: a new hole opens below it
                self._ts_newest(seg.seq, ts)
            new = ooo.add(off, bytes(payload), (ts[0] if ts is not None else -1, now, c["dup_acks_sent"], self._ipid_cur[0]))
        if fin and self._fin_off is None:
            self._fin_off = off + plen
        if new == 0:  # held already, partly in several blocks
            c["dup_data"] += 1
            c["dup_data_bytes"] += plen
            if self.segment_events:
                self._events.append(DupData(now, (seg.seq - self.peer_isn) & M32, plen))
        else:
            c["out_of_order"] += 1
            c["out_of_order_bytes"] += new
            if self.segment_events:
                self._events.append(
                    OutOfOrder(now, (seg.seq - self.peer_isn) & M32, plen, self._rcv_off + 1, ooo.bytes)
                )
        self._ack_out_of_order(now, at_edge and new > 0)
        return "ooo" if new else "dup"

    # ------------------------------------------------------------------ the server's retransmissions
    #
    # What a receiver can tell. A segment is a retransmission by the server when
    #   - it fills a hole: data below data we already hold (at RCV.NXT or between held blocks), unless its
    #     timestamp says it was sent no later than the segment that opened the hole (TSval <= the opener's):
    #     then it is the original, late (the network reordered it) -> counter network_late;
    #   - or it repeats data we had, unless its TSval says it is a copy made by the network: a copy carries
    #     its original's TSval, which is older than the newest we have seen (or it is the very segment we
    #     just had, again) -> counter network_copies; each repeat is answered with a D-SACK (RFC 2883);
    #     but a repeat sent no later than the opener of a hole that a retransmission has since filled is
    #     that hole's original, late (the network held it back longer than the server waited) -> network_late;
    #   - or it is in-order data after a silence (>= TLP_SILENCE and 1.5 RTT) whose TSecr echoes an ACK of
    #     ours that had already acknowledged everything before it: the server sent it knowing nothing
    #     below was missing and nothing was moving, which a sender in a transfer does only from a timer
    #     (without timestamps: only after a timeout's silence). Not when our window had been tight (the
    #     server was waiting for us) nor before the first data.
    # Its kind (RetransmitKind), in this order:
    #   timeout:  the silence before it reached the server's RTO (see TIMEOUT_SILENCE), even if we had its
    #             data (our ACKs were lost: a spurious timeout; PeerRetransmit.repeat says so);
    #   tlp:      a repeat of our highest data with no hole, or in-order data, after a silence of a
    #             probe's length (see TLP_SILENCE) but short of the RTO's;
    #   spurious: all its data we had, and no timer explains it (reordering fooled the sender);
    #   fast:     it filled a hole we had reported (duplicate ACKs, SACK blocks above it) before any timer.
    # A resend the receiver cannot see: one lost again, one of data it never saw after a first one (the
    # rest of a go-back-N after an RTO look like new data), a probe of data beyond a hole (new to us).

    def _rtt_estimate(self) -> float:
        return self.rcv_rtt or self.srtt or self.handshake_rtt or 0.0

    def _silence_kind(self) -> RetransmitKind | None:
        """TIMEOUT or TLP when the silence before this segment was as long as that timer's, else None."""
        s = self._silence
        if s < TLP_SILENCE:
            return None
        rtt = self._rtt_estimate()
        if s >= min(max(TIMEOUT_SILENCE, 3 * rtt), rtt + TIMEOUT_SILENCE):
            return _TIMEOUT
        return _TLP if s >= 1.5 * rtt else None

    def _ts_newest(self, seq: int, ts: tuple[int, int] | None) -> None:
        """Remember the newest TSval of the peer's data (a network copy carries an older one)."""
        if ts is not None and (self._ts_last < 0 or seq_ge(ts[0], self._ts_last)):
            self._ts_last = ts[0]
            self._seq_last = seq

    def _resent(self, seg: TcpSegment, kind: RetransmitKind, dup_acks: int, now: float,
                repeat: bool = False) -> None:
        """Count and report one retransmission by the server."""
        c = self.counters
        c["peer_retrans"] += 1
        c[_KIND_COUNTER[kind]] += 1
        self._events.append(PeerRetransmit(now, (seg.seq - self.peer_isn) & M32, len(seg.payload), kind.value,
                                           round(self._silence * 1000.0, 3), dup_acks, repeat))

    def _resent_fill(self, seg: TcpSegment, ts: tuple[int, int] | None, hole: object, start: int, end: int,
                     now: float) -> None:
        """A segment that fills (part of) a hole (offsets ``start``..``end``); ``hole`` is (opener's TSval,
        time, dup ACKs sent then, opener's IPv4 ID)."""
        assert isinstance(hole, tuple)
        ts_open, _, dup0, id_open = hole
        if ts is not None and ts_open >= 0 and self._sent_by(ts[0], ts_open, id_open):
            self.counters["network_late"] += 1  # sent before the segment above the hole: late, not resent
            self._late_fills.append((start, end, ts[0], self._ipid_cur[0]))
            return
        kind = _TIMEOUT if self._silence_kind() is _TIMEOUT else _FAST
        self._resent(seg, kind, self.counters["dup_acks_sent"] - dup0, now)
        self._ts_newest(seg.seq, ts)
        if ts_open >= 0:
            self._resent_fills.append((start, end, ts_open, id_open))

    def _send_order(self, tsval: int, ts_other: int, id_other: int) -> int | None:
        """When the segment being handled (TSval ``tsval``) was sent, against another the peer sent (TSval
        ``ts_other``, IPv4 ID ``id_other``): -1 before, 1 after, 0 the same packet (a copy the network made
        carries its TSval and ID), None a tie within one timestamp tick that the IDs cannot break (no ID,
        or the peer's IDs do not count up)."""
        if tsval != ts_other:
            return -1 if seq_lt(tsval, ts_other) else 1 if seq_gt(tsval, ts_other) else 0  # (0: 2^31 apart)
        if id_other < 0 or not self._ip_ids_ordered():
            return None
        step = (self._ipid_cur[0] - id_other) & 0xFFFF  # mod 2^16
        return 0 if step == 0 else 1 if step < 0x8000 else -1

    def _sent_by(self, tsval: int, ts_open: int, id_open: int) -> bool:
        """Was the segment being handled sent no later than the one that opened a hole? A tie the IDs cannot
        break counts as sent before (the original, late)."""
        return self._send_order(tsval, ts_open, id_open) in (None, -1)

    def _sent_after(self, tsval: int, ts_other: int, id_other: int) -> bool:
        """Was the segment being handled sent after another one we received? Not when unknown."""
        return self._send_order(tsval, ts_other, id_other) == 1

    def _ip_ids_ordered(self) -> bool:
        """The segment being handled has an IPv4 ID, and the peer's IDs count up (see IPID_ORDERED_MIN)."""
        fwd = self._ipid_fwd
        return self._ipid_cur[0] >= 0 and fwd >= IPID_ORDERED_MIN and self._ipid_other <= 1 + fwd // 4

    def _ipid_next_packet(self) -> bool:
        """Is the segment being handled the peer's very next packet after the one before it (its ID one
        past that one's last: a GRO-merged frame took an ID per MSS), i.e. nothing was sent in between?"""
        (prev, plen), cur = self._ipid_last, self._ipid_cur[0]
        return prev >= 0 and (cur - prev) & 0xFFFF == max(1, -(-plen // self._rcv_mss)) and self._ip_ids_ordered()

    def _resent_repeat(self, seg: TcpSegment, start: int, end: int, now: float) -> str:
        """Data we had (offsets ``start``..``end``), again: a network copy or a retransmission. Returns
        the segment's note ("copy", "late" or "dup")."""
        ts = seg.options.ts if self.ts_ok else None
        self._dsack_note(start, end)
        if ts is not None and any(a < end and start < b and self._sent_by(ts[0], t, i)
                                  for a, b, t, i in self._resent_fills):
            # sent no later than the segment that opened a hole its retransmission then filled: the
            # original, late (reordered by the network), not a copy the network made
            self.counters["network_late"] += 1
            return "late"
        if ts is not None and self._ts_last >= 0 and (
            seq_lt(ts[0], self._ts_last) or (ts[0] == self._ts_last and seg.seq == self._seq_last)
        ) and not any(a < end and start < b and self._sent_after(ts[0], t, i) for a, b, t, i in self._late_fills):
            # older than the newest: a copy the network made -- unless this data came as a late original
            # and this was sent after it (a newer TSval, or the ID after it): the server's resend, itself
            # held back behind newer data by the network
            self.counters["network_copies"] += 1
            return "copy"
        # after a silence as long as the RTO, the timer sent it (our ACKs were lost, or late); a tail-loss
        # probe resends the highest segment: with no hole, that ends at RCV.NXT
        kind = self._silence_kind()
        if kind is _TLP and (self._ooo or end < self._rcv_off):
            kind = None
        self._resent(seg, kind or _SPURIOUS, 0, now, repeat=True)
        self._ts_newest(seg.seq, ts)
        return "dup"

    def _resent_in_order(self, seg: TcpSegment, plen: int, now: float) -> None:
        """In-order data, nothing held out of order, after a silence: a timer's retransmission? (see above)"""
        kind = self._silence_kind()
        if kind is None or self._tight_t >= now - self._silence - self._rtt_estimate():
            return
        if self._ipid_next_packet():
            return  # the peer's very next packet after the last one we got: nothing sent (and lost) between,
            # so new data after a pause (the server had nothing to send), not a probe or a timer's resend
        ts = seg.options.ts
        if self.ts_ok:
            if ts is None or self._acked_with(ts[1]) != seg.seq:
                return
        elif kind is not _TIMEOUT:
            return
        self._resent(seg, kind, 0, now)

    def _dsack_note(self, start: int, end: int) -> None:
        """Report ``start``..``end`` (offsets) as duplicate data in the next ACK (RFC 2883)."""
        if self.sack_ok:
            self._dsack = (start, end)

    def _sack_option(self) -> tuple[tuple[int, int], ...]:
        """The SACK blocks for an ACK (sequence numbers): a D-SACK first when one is due (RFC 2883 4:
        the duplicate range, then the held block containing it, if any), then the held blocks, the
        most recently changed first (RFC 2018 4)."""
        ooo = self._ooo
        limit = 3 if self.ts_ok else 4
        d = self._dsack
        if d is None:
            blocks = ooo.sack_blocks(limit)
        else:
            self._dsack = None
            self.counters["dsacks_sent"] += 1
            blocks = [d]
            holding = ooo.block_holding(*d) if ooo else None
            if holding is not None:
                blocks.append(holding)
            if ooo:
                blocks += [b for b in ooo.sack_blocks(limit) if b != holding][: limit - len(blocks)]
        base = (self.peer_isn + 1) & M32
        return tuple(((base + s) & M32, (base + e) & M32) for s, e in blocks)

    def _take_in_order(self, payload: bytes | memoryview, plen: int, now: float) -> None:
        """Data at RCV.NXT with nothing held out of order: into the receive queue."""
        self._rxq.append(bytes(payload))
        self._rx_len += plen
        self._rcv_off += plen
        self.rcv_nxt = (self.rcv_nxt + plen) & M32
        self._peer_flight_update(now)

    def _ack_in_order(self, plen: int, now: float) -> None:
        """ACK every second full-sized segment at once, else within the delayed-ACK time (RFC 9293
        3.8.6.3, RFC 5681 section 4.2); while the I/O loop hands over a batch (:meth:`hold_acks`), once
        at its end, for up to STRETCH_SEGMENTS segments (GRO's stretch ACK)."""
        self._unacked += plen
        if self._unacked >= 2 * self._rcv_mss:
            if self._holding and self._unacked < STRETCH_SEGMENTS * self._rcv_mss:
                self._ack_held = True
            else:
                self._send_ack(now)
        elif self._delack_at is None:
            self._delack_at = now + self.delack

    def hold_acks(self) -> None:
        """The I/O loop is handing over frames that were all waiting at once (a batch read from the
        ring): in-order ACKs wait for :meth:`release_acks`, which the loop calls when the batch ends.

        Linux's receiver gets the same effect from GRO: the segments of one NAPI poll merge into one
        and get one (stretch) ACK. Here it saves one ACK frame (one send(2)) per two segments of a
        batch; every other ACK (out of order, SACK, window update, FIN) still leaves at once."""
        self._holding = True

    def release_acks(self, now: float) -> None:
        """The batch is over: the ACK it held back, if any, now (for everything received so far)."""
        self._holding = False
        if self._ack_held:
            self._ack_held = False
            if self._unacked:
                self._send_ack(now)

    def _ts_recent_update(self, seq: int, tsval: int) -> None:
        """RFC 7323 section 4.3: a segment at or before Last.ACK.sent carries the TS.Recent to echo."""
        if seq_le(seq, self._last_ack_sent) and seq_ge(tsval, self.ts_recent):
            self.ts_recent = tsval

    def _on_timestamps(self, seq: int, ts: tuple[int, int], now: float) -> None:
        """A data segment's timestamps: a receiver-side RTT sample from a new TSecr, and TS.Recent."""
        if ts[1] != self._last_tsecr_seen:
            self._last_tsecr_seen = ts[1]
            self._rcv_rtt_sample(ts[1], now)
        self._ts_recent_update(seq, ts[0])
        self._ts_last = ts[0]  # in order, nothing held: the newest (see _ts_newest)
        self._seq_last = seq

    def _ack_out_of_order(self, now: float, compressible: bool) -> None:
        """ACK an out-of-order segment: at once, or compressed (see DUPACK_THRESH and COMP_SACK_*).

        Only a segment that grows the highest block is held back: one ACK's SACK option names at most 3
        (4) blocks, so a segment that starts a block or fills a hole between blocks (a retransmission) is
        reported at once. Otherwise a burst of such changes between two ACKs would leave some never
        reported, and the sender would resend data we hold (measured on the lab's 2 % loss link: about
        one spurious retransmission per hole, and twice the retransmissions of the kernel's receiver).
        """
        if self.sack_ok:
            if self._dupack_rcv_nxt != self._rcv_off:
                self._dupack_rcv_nxt = self._rcv_off
                self._dupack_counter = 0
            if compressible and self._dupack_counter >= DUPACK_THRESH and self._comp_sacks < COMP_SACK_NR:
                self._comp_sacks += 1
                self.counters["sacks_compressed"] += 1
                if self._sack_at is None:
                    bound = self._ack_delay_bound()
                    self._sack_at = now + (COMP_SACK_DELAY if bound is None else bound)
                return
            self._dupack_counter += 1
        self._send_ack(now, note="dup-ack")  # _emit counts it as a duplicate ACK

    def _deliver(self, pieces: list[bytes], n: int) -> None:
        self._rxq.extend(pieces)
        self._rx_len += n
        self._rcv_off += n
        self.rcv_nxt = (self.rcv_nxt + n) & M32
        self._ooo_dupacks = 0

    def _on_fin(self, now: float) -> None:
        """The peer's FIN, with all data before it in the receive buffer."""
        self._fin_off = None
        if self._ooo:
            self._ooo = Reassembly()  # data beyond the FIN is bogus
        self.rcv_nxt = (self.rcv_nxt + 1) & M32
        self.peer_eof = True
        self._set_state(Input.FIN, now)  # ESTABLISHED -> CLOSE-WAIT, FIN-WAIT-1 -> CLOSING, FIN-WAIT-2 -> TIME-WAIT
        if self.state is TIME_WAIT:
            self._enter_time_wait(now)
        self._send_ack(now)

    def _on_segment_syn_sent(self, seg: TcpSegment, now: float) -> None:
        c = self.counters
        flags = seg.flags
        iss1 = (self.isn + 1) & M32
        if flags & ACK and seg.ack != iss1:
            c["bad_synack"] += 1
            self._seg_in(seg, now, "bad-ack")
            if not flags & RST:
                self._emit(now, seg.ack, RST, note="bad-ack")
                c["rst_out"] += 1
            return
        if flags & RST:
            c["rst_in"] += 1
            if flags & ACK:
                self._seg_in(seg, now, "refused")
                self._fail(f"connection refused by {endpoint_text(self.remote_ip, self.remote_port)}", now, Input.RESET)
            else:
                c["rst_ignored"] += 1
                self._seg_in(seg, now, "ignored")
            return
        if not (flags & SYN and flags & ACK):
            c["closed_drops"] += 1
            self._seg_in(seg, now, "ignored")
            return
        # the SYN-ACK: negotiate
        o = seg.options
        self.peer_isn = seg.seq
        self.rcv_nxt = (seg.seq + 1) & M32
        self._last_ack_sent = self.rcv_nxt
        self.snd_una = self.snd_nxt = self.snd_max = iss1
        self._recover = iss1
        self.peer_mss = o.mss if o.mss else 536
        self.mss = max(min(self.adv_mss, self.peer_mss), 88)  # Linux's TCP_MIN_MSS: never absurdly small
        if self._pmtu_mss is not None:  # a Packet Too Big came for our SYN: the path beats the floor
            self.mss = min(self.mss, self._pmtu_mss)
        if o.wscale is not None:
            self.snd_wscale = o.wscale
        else:
            self.rcv_wscale = 0
        self.sack_ok = self.want_sack and o.sack_permitted
        self.ts_ok = self.want_timestamps and o.ts is not None
        self.smss = self.mss - (12 if self.ts_ok else 0)
        self._rcv_mss = min(self.smss, 536)
        self._tight_wnd = 2 * self.smss
        self.snd_wnd = seg.window  # never scaled in a SYN
        self._max_snd_wnd = self.snd_wnd
        self._snd_wl1 = seg.seq
        self._snd_wl2 = seg.ack
        self._adv_max = min(self.rcv_buf, 0xFFFF)  # the window our SYN offered
        if self.ts_ok:
            assert o.ts is not None
            self.ts_recent = o.ts[0]
        # handshake RTT: timestamps make it exact even after SYN retransmissions (else Karn)
        rtt: float | None = None
        if self.ts_ok and o.ts is not None:
            t_sent = self._ts_lookup(o.ts[1])
            if t_sent is not None:
                rtt = now - t_sent
        if rtt is None and self._syn_count == 1:
            rtt = now - self._syn_t
        self._rtx_at = None
        if rtt is not None:
            self._rtt_sample(rtt)
        else:
            self.rto = min(max(3.0, self.initial_rto), self.max_rto)  # RFC 6298 5.7
        self._backoff = 0
        self.handshake_rtt = rtt if rtt is not None else now - self._syn_t
        self.cc = self._congestion(self.smss, syn_lost=self._syn_count > 1)
        self._pf_t0 = now
        self._seg_in(seg, now, "")
        self._set_state(Input.SYN_ACK, now)
        self._events.append(
            Handshake(
                now, self.local_port, self.remote_port, self.isn, self.peer_isn, self.mss, self.peer_mss,
                self.rcv_wscale if o.wscale is not None else None, o.wscale, self.sack_ok, self.ts_ok,
                self.handshake_rtt * 1000.0,
            )
        )
        if self._fin_queued:
            self._set_state(Input.CLOSE, now)
        self._send_ack(now)
        self._output(now)
        self._window_event(now, force=True)

    def _on_rst(self, seg: TcpSegment, delta: int, rcv_wnd: int, now: float) -> None:
        """RFC 5961 section 3: reset only on an exact match; in-window -> challenge ACK; else drop."""
        c = self.counters
        c["rst_in"] += 1
        if delta == 0:
            self._seg_in(seg, now, "reset")
            if self.state in _RESET_IS_ERROR:
                self._fail("connection reset by peer", now, Input.RESET)
            else:
                self._to_closed(Input.RESET, now)
        elif 0 <= delta < max(rcv_wnd, 1):
            c["challenge_acks"] += 1
            self._seg_in(seg, now, "challenge")
            self._send_ack(now, note="challenge")
        else:
            c["rst_ignored"] += 1
            self._seg_in(seg, now, "out-of-window")

    # ------------------------------------------------------------------ ACKs from the peer

    def _update_window(self, seg: TcpSegment, now: float) -> None:
        seq, ack = seg.seq, seg.ack
        if seq_lt(self._snd_wl1, seq) or (self._snd_wl1 == seq and seq_le(self._snd_wl2, ack)):
            old = self.snd_wnd
            wnd = seg.window << self.snd_wscale
            self.snd_wnd = wnd
            self._snd_wl1 = seq
            self._snd_wl2 = ack
            self._max_snd_wnd = max(self._max_snd_wnd, wnd)
            if wnd and not old:
                self._persist_at = None
                self._persist_backoff = 0
                self._output(now)
            elif wnd > old:
                self._output(now)

    def _on_new_ack(self, seg: TcpSegment, acked: int, now: float) -> None:
        c = self.counters
        c["acks_in"] += 1
        ack = seg.ack
        una = self.snd_una
        flight_before = (self.snd_max - una) & M32
        fin_end = self._fin_seq_end() if self._fin_queued else -1
        data_acked = min(acked, len(self._sndbuf))
        if data_acked:
            del self._sndbuf[:data_acked]
        self.snd_una = ack
        if ack == fin_end:
            self._fin_acked = True
        if seq_lt(self.snd_nxt, ack):
            self.snd_nxt = ack
        if seq_lt(self.snd_max, ack):
            self.snd_max = ack
        self._probe_out = False
        self._probes_unanswered = 0
        self._dupacks = 0
        # RTT sample: timestamps (RFC 7323 4.1) or Karn's timed segment
        sample: float | None = None
        ts = seg.options.ts
        if self.ts_ok and ts is not None and ts[1]:
            t_sent = self._ts_lookup(ts[1])
            if t_sent is not None:
                sample = now - t_sent
            else:
                sample = ((int(now * 1000) + self.ts_offset - ts[1]) & M32) / 1000.0
                if sample > 3600:
                    sample = None
        elif self._rtt_seq is not None and seq_ge(ack, self._rtt_seq):
            sample = now - self._rtt_t
            self._rtt_seq = None
        self._backoff = 0
        if sample is not None:
            self._rtt_sample(sample)
        # congestion control (NewReno)
        cc = self.cc
        if cc.in_recovery:
            if seq_ge(ack, self._recover):
                cc.on_recovery_exit((self.snd_max - ack) & M32)
            else:
                cc.on_partial_ack(data_acked)
                self._retransmit_one(now, "fast")
        else:
            cc.on_ack(data_acked, now)
        self._update_window(seg, now)
        # our FIN acknowledged?
        if ack == fin_end and self.state in _FIN_SENT:
            self._set_state(Input.FIN_ACKED, now)  # FIN-WAIT-1 -> FIN-WAIT-2, CLOSING -> TIME-WAIT, LAST-ACK -> CLOSED
            if self.state is TIME_WAIT:
                self._enter_time_wait(now)
            elif self.state is CLOSED:
                self._clear_timers()
                return
        if self.snd_una == self.snd_max:
            self._rtx_at = None
        else:
            self._rtx_at = now + self.rto
        if flight_before:
            self._output(now)

    def _on_dup_ack(self, now: float) -> None:
        c = self.counters
        self._dupacks += 1
        c["dup_acks_in"] += 1
        self._events.append(DupAck(now, (self.snd_una - self.isn) & M32, self._dupacks, "in"))
        cc = self.cc
        if self._dupacks == 3 and not cc.in_recovery and seq_ge(self.snd_una, self._recover):
            flight = (self.snd_max - self.snd_una) & M32
            self._recover = self.snd_max
            cc.on_fast_retransmit(flight)
            c["fast_retransmits"] += 1
            self._retransmit_one(now, "fast")
            self._window_event(now, force=True)
        elif self._dupacks > 3 and cc.in_recovery:
            cc.on_dup_ack()
            self._output(now)

    # ------------------------------------------------------------------ timers

    def _on_rto(self, now: float) -> None:
        self._rtx_at = None
        c = self.counters
        if self.state == SYN_SENT:
            if self._syn_count >= 1 + self.syn_retries:
                self._fail(f"connection timed out (no answer to SYN after {self._syn_count} tries)", now)
                return
            self.rto = min(self.rto * 2, self.max_rto)
            c["syn_retransmits"] += 1
            c["retransmits"] += 1
            self._events.append(Retransmit(now, 0, 0, "syn", self._syn_count))
            self._send_syn(now)
            return
        if self.snd_una == self.snd_max:
            return
        if self._backoff >= self.max_retries:
            if not self._sndbuf and self.state in (FIN_WAIT_1, CLOSING, LAST_ACK):
                self._to_closed(Input.GIVE_UP, now)  # only our FIN is unacknowledged: all data got through
                return
            self._fail(f"connection timed out: {self._backoff} retransmissions unanswered", now)
            return
        self._backoff += 1
        self.rto = min(self.rto * 2, self.max_rto)
        c["rto_timeouts"] += 1
        flight = (self.snd_max - self.snd_una) & M32
        self.cc.on_rto(flight)
        self._recover = self.snd_max  # RFC 6582 section 4
        self._dupacks = 0
        self._rtt_seq = None  # Karn
        self._rtx_reason = "rto"
        # go-back-N: resend the head now (even into a closed window), the rest as ACKs return
        self.snd_nxt = (self.snd_una + self._retransmit_one(now, "rto")) & M32
        self._rtx_at = now + self.rto
        self._window_event(now, force=True)

    def _on_persist(self, now: float) -> None:
        self._persist_at = None
        if self.state not in _SENDING or self.snd_wnd:
            return
        off = (self.snd_nxt - self.snd_una) & M32
        if off >= len(self._sndbuf) or self.snd_nxt != self.snd_una:
            return
        if self._probes_unanswered >= self.max_retries:
            self._fail(f"connection timed out: {self._probes_unanswered} retransmissions unanswered", now)
            return
        self._probes_unanswered += 1
        self.counters["zero_window_probes"] += 1
        self._events.append(
            Retransmit(now, (self.snd_nxt - self.isn) & M32, 1, "probe", self._persist_backoff)
        )
        payload = bytes(self._sndbuf[off : off + 1])
        self._emit(now, self.snd_nxt, ACK, payload, note="probe")
        self._probe_out = True
        self._persist_backoff += 1
        self._persist_at = now + min(self._current_rto() * (1 << self._persist_backoff), self.max_rto)

    def _enter_time_wait(self, now: float) -> None:
        self._rtx_at = None
        self._persist_at = None
        self._tw_at = now + self.time_wait

    # ------------------------------------------------------------------ output

    def _fin_seq_end(self) -> int:
        """The sequence number just after our FIN (valid once close() was called)."""
        return (self.snd_una + len(self._sndbuf) + 1) & M32

    def _output(self, now: float) -> None:
        """Send what the windows allow: new data, the go-back-N resend after an RTO, the FIN."""
        if self.state not in _SENDING:
            return
        buf = self._sndbuf
        total = len(buf)
        una = self.snd_una
        smss = self.smss
        while True:
            nxt = self.snd_nxt
            off = (nxt - una) & M32
            if off < total:
                flight = off
                usable = min(self.cc.window, self.snd_wnd) - flight
                if usable <= 0:
                    break
                n = min(smss, total - off, usable)
                if n < smss and n < total - off and flight > 0:
                    break  # sender-side SWS avoidance: wait for a full segment's room
                payload = bytes(buf[off : off + n])
                flags = ACK
                if off + n == total:
                    flags |= PSH
                    if self._fin_queued:
                        flags |= FIN
                consumed = n + (1 if flags & FIN else 0)
            elif off == total and self._fin_queued and not self._fin_acked:
                payload = b""
                flags = FIN | ACK
                consumed = 1
            else:
                break
            retrans = seq_lt(nxt, self.snd_max)
            if retrans:
                self.counters["retransmits"] += 1
                self._rtt_seq = None
                self._events.append(Retransmit(now, (nxt - self.isn) & M32, len(payload), self._rtx_reason,
                                               self._backoff))
            elif self._rtt_seq is None and not self.ts_ok:
                self._rtt_seq = (nxt + consumed) & M32
                self._rtt_t = now
            self._emit(now, nxt, flags, payload, note="retransmit" if retrans else "")
            nxt = (nxt + consumed) & M32
            self.snd_nxt = nxt
            if seq_lt(self.snd_max, nxt):
                self.snd_max = nxt
            if self._rtx_at is None:
                self._rtx_at = now + self._current_rto()
        # persist: the peer's window is closed, we have data and nothing in flight to learn from
        if (
            self.snd_wnd == 0
            and self.snd_nxt == una
            and total > 0
            and self._persist_at is None
            and self.snd_una == self.snd_max
        ):
            self._persist_at = now + self._current_rto()

    def _retransmit_one(self, now: float, reason: str) -> int:
        """Resend one segment at snd_una (RTO, fast retransmit, NewReno partial ACK); return the
        sequence space it covers."""
        una = self.snd_una
        total = len(self._sndbuf)
        # never more than was sent before (the peer's window may have held it to less): resending new
        # bytes here would put SND.NXT past SND.MAX, and the peer's ACK of them would look "unsent"
        n = min(self.smss, total, (self.snd_max - una) & M32)
        flags = ACK
        if n == total:
            if n:
                flags |= PSH
            if self._fin_queued and self.snd_max == self._fin_seq_end():
                flags |= FIN
        if n == 0 and not flags & FIN:
            return 0
        self.counters["retransmits"] += 1
        self._rtt_seq = None
        self._events.append(Retransmit(now, (una - self.isn) & M32, n, reason, self._backoff))
        self._emit(now, una, flags, bytes(self._sndbuf[:n]), note="retransmit")
        self._rtx_at = now + self._current_rto()
        return n + (1 if flags & FIN else 0)

    def _send_syn(self, now: float) -> None:
        self._syn_count += 1
        self._syn_t = now
        tsval = self._tsval(now)
        opts = TcpOptions(
            mss=self.adv_mss,
            wscale=self.rcv_wscale,
            sack_permitted=self.want_sack,
            ts=(tsval, 0) if self.want_timestamps else None,
        )
        win = min(self.rcv_buf, 0xFFFF)
        self._emit(now, self.isn, SYN, options=opts, window=win, note="retransmit" if self._syn_count > 1 else "")
        self.snd_nxt = self.snd_max = (self.isn + 1) & M32
        self._rtx_at = now + self.rto

    def _send_ack(self, now: float, note: str = "") -> None:
        self._emit(now, self.snd_nxt, ACK, note=note)

    def _emit(
        self,
        now: float,
        seq: int,
        flags: int,
        payload: bytes = b"",
        *,
        note: str = "",
        options: TcpOptions | None = None,
        window: int | None = None,
    ) -> None:
        """Build one segment, queue it, count it, and emit its SegmentOut event."""
        c = self.counters
        synced = self.state in _SYNCHRONIZED
        ack = self.rcv_nxt if flags & ACK else 0
        sack: tuple[tuple[int, int], ...] = ()
        if window is None:
            window = self._window_field() if synced else 0
        fast = False
        if options is None:
            tsval = self._tsval(now) if self.ts_ok else -1
            if self.sack_ok and (self._ooo.bytes or self._dsack is not None) and flags & ACK and not payload:
                sack = self._sack_option()
            if flags == ACK and not payload:  # a pure ACK: one struct.pack and a checksum, no records
                fast = True
                ts = (tsval, self.ts_recent) if tsval >= 0 else None
                self._out.append(build_pure_ack(self.local_port, self.remote_port, seq, ack, window, ts, sack,
                                                self._ph_base))
            elif tsval >= 0 or sack:
                options = TcpOptions(ts=(tsval, self.ts_recent) if tsval >= 0 else None, sack=sack)
            else:
                options = NO_OPTIONS
        elif options.ts is not None:
            self._ts_note(options.ts[0], now)
        if not fast:
            assert options is not None
            seg = TcpSegment(self.local_port, self.remote_port, seq & M32, ack, flags, window, options, payload)
            self._out.append(build_tcp(seg, self.local_ip, self.remote_ip))
        plen = len(payload)
        c["segments_out"] += 1
        c["bytes_out"] += plen
        if flags == ACK and not plen and synced and ack == self._last_ack_sent and (sack or self._ooo.bytes):
            # a duplicate ACK: the same ACK number again while data waits out of order or with a D-SACK
            # (whatever made us send it: an out-of-order segment, a compressed SACK's timer, duplicate
            # data, a window update): what the sender counts, and what a capture of our frames shows
            self._ooo_dupacks += 1
            c["dup_acks_sent"] += 1
            if self.segment_events:
                self._events.append(DupAck(now, (ack - self.peer_isn) & M32, self._ooo_dupacks, "out"))
        if flags & ACK:
            c["acks_sent"] += 1
            self._last_ack_sent = ack
            self._unacked = 0
            self._delack_at = None
            self._sack_at = None  # this ACK carries the newest SACK blocks
            self._comp_sacks = 0
            if synced:
                wnd = self._last_wnd_sent = window << self.rcv_wscale
                if wnd < self._tight_wnd:
                    self._tight_t = now
        if plen:
            self._flowing = True
        if self.segment_events:
            base = (self.peer_isn + 1) & M32
            self._events.append(
                SegmentOut(
                    now,
                    (seq - self.isn) & M32,
                    (ack - self.peer_isn) & M32 if flags & ACK else 0,
                    _fs(flags),
                    window,
                    plen,
                    tuple(((s - base + 1) & M32, (e - base + 1) & M32) for s, e in sack) if sack else (),
                    note,
                )
            )

    def _tsval(self, now: float) -> int:
        v = (int(now * 1000) + self.ts_offset) & M32
        self._ts_note(v, now)
        return v

    def _ts_note(self, v: int, now: float) -> None:
        """Remember when TSval ``v`` was first sent, and the last ACK number sent with the one before."""
        dq = self._ts_sent
        if not dq or dq[-1][0] != v:
            dq.append((v, now, self._last_ack_sent))

    def _acked_with(self, tsecr: int) -> int | None:
        """The last ACK number we sent with TSval ``tsecr`` (None when unknown): what the peer knew we
        had when it sent a segment echoing it."""
        if self._ts_lookup(tsecr) is None:
            return None
        dq = self._ts_sent
        return dq[1][2] if len(dq) > 1 else self._last_ack_sent

    def _ts_lookup(self, tsecr: int) -> float | None:
        """When did we first send TSval ``tsecr``? Drops older entries (echoes move forward)."""
        dq = self._ts_sent
        while dq and dq[0][0] != tsecr and seq_lt(dq[0][0], tsecr):
            dq.popleft()
        if dq and dq[0][0] == tsecr:
            return dq[0][1]
        return None

    # ------------------------------------------------------------------ windows

    def _window_field(self) -> int:
        """The 16-bit window to advertise now (scaled, rounded down, never pulling back the right edge
        we already advertised unless that would overrun the buffer)."""
        ws = self.rcv_wscale
        rcv_off = self._rcv_off
        hard = self._rd_off + self.rcv_buf  # the receive buffer's end, as an offset
        w = (hard - rcv_off) >> ws
        w = min(w, 0xFFFF)
        edge = rcv_off + (w << ws)
        adv = self._adv_max
        if edge < adv:
            need = (adv - rcv_off + (1 << ws) - 1) >> ws
            if need <= 0xFFFF and rcv_off + (need << ws) <= hard:
                w = need
                edge = rcv_off + (need << ws)
        if edge > adv:
            self._adv_max = edge
        return w

    def _advertisable(self) -> int:
        """Bytes we could advertise right now (without side effects)."""
        ws = self.rcv_wscale
        w = (self._rd_off + self.rcv_buf - self._rcv_off) >> ws
        return min(w, 0xFFFF) << ws

    def _maybe_window_update(self, now: float) -> None:
        """RFC 9293 3.8.6.2.2 receiver SWS avoidance: announce an opened window only when it grew a lot."""
        old = max(self._adv_max - self._rcv_off, 0)
        half = self.rcv_buf // 2
        if old > half:
            return  # the peer still sees plenty of room
        new = self._advertisable()
        if new >= 2 * old and new - old >= min(2 * self._rcv_mss, half):
            self.counters["window_updates"] += 1
            self._send_ack(now, note="window-update")
            self._window_event(now, force=True)

    # ------------------------------------------------------------------ RTT / RTO

    def _rtt_sample(self, r: float) -> None:
        """RFC 6298 section 2 (clock granularity G = 1 ms)."""
        if r < 0:
            return
        self.counters["rtt_samples"] += 1
        if self.srtt is None or self.rttvar is None:
            self.srtt = r
            self.rttvar = r / 2
        else:
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - r)
            self.srtt = 0.875 * self.srtt + 0.125 * r
        rto = self.srtt + max(0.001, 4 * self.rttvar)
        self.rto = min(max(rto, self.min_rto), self.max_rto)

    def _current_rto(self) -> float:
        return self.rto

    def _rcv_rtt_sample(self, tsecr: int, now: float) -> None:
        t = self._ts_lookup(tsecr)
        if t is None:
            return
        r = now - t
        self.rcv_rtt = r if self.rcv_rtt is None else 0.875 * self.rcv_rtt + 0.125 * r

    def _peer_flight_update(self, now: float) -> None:
        rtt = self.rcv_rtt or self.handshake_rtt or self.srtt
        if rtt is None:
            return
        if now - self._pf_t0 >= rtt:
            self.peer_flight = self._rcv_off - self._pf_b0
            self._pf_t0 = now
            self._pf_b0 = self._rcv_off

    # ------------------------------------------------------------------ events, state

    def _window_event(self, now: float, force: bool = False) -> None:
        cc = self.cc
        key = (cc.window, cc.ssthresh, self.rto)
        if not force and key == self._win_key and (
            not self._flowing or now - self._win_t < self.window_event_interval
        ):
            return
        self._win_key = key
        self._win_t = now
        self._flowing = False
        self._events.append(
            Window(
                now, cc.window, cc.ssthresh, self._last_wnd_sent, self.snd_wnd,
                (self.snd_nxt - self.snd_una) & M32,
                None if self.srtt is None else self.srtt * 1000.0,
                None if self.rttvar is None else self.rttvar * 1000.0,
                self.rto * 1000.0, self.peer_flight, self._rcv_off,
            )
        )

    def _seg_in(self, seg: TcpSegment, now: float, note: str) -> None:
        if not self.segment_events:
            return
        sack: tuple[tuple[int, int], ...] = ()
        if seg.options.sack:
            isn = self.isn
            sack = tuple(((s - isn) & M32, (e - isn) & M32) for s, e in seg.options.sack)
        win = seg.window if seg.flags & SYN else seg.window << self.snd_wscale
        self._events.append(
            SegmentIn(
                now,
                (seg.seq - self.peer_isn) & M32 if self.peer_isn or self.state != SYN_SENT else 0,
                (seg.ack - self.isn) & M32 if seg.flags & ACK else 0,
                _fs(seg.flags),
                win,
                len(seg.payload),
                sack,
                note,
            )
        )

    def _set_state(self, what: Input, now: float) -> None:
        """The only place the state changes: the move ``tcp_states.TRANSITIONS`` lists for ``what``."""
        old = self.state
        new = next_state(old, what)
        if new is not old:
            self.state = new
            self._fast_ok = new in _RECEIVING
            self._events.append(TcpState(now, old, new))

    def _clear_timers(self) -> None:
        self._rtx_at = self._delack_at = self._sack_at = self._persist_at = self._tw_at = None

    def _to_closed(self, what: Input, now: float) -> None:
        if self.state is not CLOSED:
            self._set_state(what, now)
        self._clear_timers()

    def _fail(self, message: str, now: float, what: Input = Input.GIVE_UP) -> None:
        self.error = TcpError(message)
        self._to_closed(what, now)
