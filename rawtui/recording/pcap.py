"""Replay a pcap of any TCP download, analysed receiver-side by rawtui's own stack: the server's frames
go through the same parsing, checksum checks and :class:`~rawtui.stack.tcp.TcpConnection` as live, set up
as the client of the captured connection; what the real client sent comes from the capture."""

from __future__ import annotations

import dataclasses
import hashlib
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rawtui.errors import HttpError, TcpError, UsageError
from rawtui.events import (
    ArpIgnored,
    ArpReply,
    ArpRequest,
    ChecksumDrop,
    Done,
    DupAck,
    Error,
    Event,
    HttpResponse,
    Info,
    Malformed,
    Progress,
    Retransmit,
    Route,
    SegmentOut,
    TcpState,
    Window,
)
from rawtui.http.client import HttpExchange, parse_url
from rawtui.link.pcap import PcapFormatError, read_pcap
from rawtui.recording.replay import Replay
from rawtui.stack.tcp import M32, TcpConnection
from rawtui.stack.tcp_states import State
from rawtui.wire.arp import OP_REPLY, OP_REQUEST, parse_arp
from rawtui.wire.checksum import pseudo_header_residue
from rawtui.wire.errors import ChecksumError, WireError
from rawtui.wire.ethernet import ETH_P_ARP, ETH_P_IP, EthernetFrame, mac_str, parse_ethernet
from rawtui.wire.ipv4 import PROTO_TCP, ip_str, parse_ipv4
from rawtui.wire.tcp import ACK, FIN, RST, SYN, TcpSegment, flags_str, parse_tcp


@dataclass(slots=True)
class CapturedFlow:
    """The TCP connection a capture is replayed for, and what the capture tells about its path."""

    client_ip: bytes
    client_port: int
    server_ip: bytes
    server_port: int
    client_mac: bytes = b""
    hop_mac: bytes = b""  # where the client's frames went: the gateway's MAC, or the server's when on-link
    syn: TcpSegment | None = None  # the client's (first) SYN: ISN and options
    server_ttl: int = 0
    data_bytes: int = 0  # server -> client payload
    gateway_ip: bytes | None = None  # the IP the client resolved to ``hop_mac``, when the capture has the ARP
    request: bytes = b""  # the start of what the client sent (the HTTP request)

    @property
    def name(self) -> str:
        return f"{ip_str(self.client_ip)}:{self.client_port} -> {ip_str(self.server_ip)}:{self.server_port}"

    @property
    def url(self) -> str:
        """The request's URL, from its first line and Host header (else the server's address)."""
        host = f"{ip_str(self.server_ip)}:{self.server_port}"
        target = "/"
        head = self.request.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
        parts = head[0].split()
        if len(parts) >= 2 and parts[1].startswith("/"):
            target = parts[1]
        for line in head[1:]:
            k, _, v = line.partition(":")
            if k.strip().lower() == "host" and v.strip():
                host = v.strip()
        scheme = "https" if self.server_port == 443 else "http"
        return f"{scheme}://{host}{target}"


_FlowKey = tuple[bytes, int, bytes, int]


def _peek_tcp(frame: bytes) -> tuple[EthernetFrame, bytes, bytes, int, int, int, int] | None:
    """Ethernet + IPv4 + TCP ports and flags without verifying anything: (eth, src, dst, sport, dport,
    flags, ttl), or None for anything else."""
    try:
        eth = parse_ethernet(frame)
    except WireError:
        return None
    if eth.ethertype != ETH_P_IP:
        return None
    ip = eth.payload
    if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != PROTO_TCP:
        return None
    ihl = (ip[0] & 0x0F) * 4
    if len(ip) < ihl + 14:
        return None
    sport, dport = struct.unpack_from("!HH", ip, ihl)
    return eth, bytes(ip[12:16]), bytes(ip[16:20]), sport, dport, ip[ihl + 13], ip[8]


def find_flow(path: str | Path) -> CapturedFlow:
    """The connection to replay: of the connections whose SYN the capture holds, the one that carried the
    most data from the server (the first on a tie); without any SYN, the flow with the most data."""
    flows: dict[_FlowKey, CapturedFlow] = {}  # by (client ip, port, server ip, port), from the client's SYN
    data: dict[_FlowKey, int] = {}  # payload bytes by direction (src ip, port, dst ip, port)
    arp_replies: dict[bytes, bytes] = {}  # mac -> ip, from ARP replies
    for _ts, frame in read_pcap(path):
        peek = _peek_tcp(frame)
        if peek is None:
            try:
                eth = parse_ethernet(frame)
                if eth.ethertype == ETH_P_ARP:
                    pkt = parse_arp(eth.payload)
                    if pkt.op == OP_REPLY:
                        arp_replies.setdefault(pkt.sender_mac, pkt.sender_ip)
            except WireError:
                pass
            continue
        eth, src, dst, sport, dport, flags, ttl = peek
        key = (src, sport, dst, dport)
        if flags & SYN and not flags & ACK and key not in flows:
            try:
                ip, payload = parse_ipv4(eth.payload, verify=False)
                seg = parse_tcp(payload, ip.src, ip.dst, verify=False)
            except WireError:
                continue
            flows[key] = CapturedFlow(src, sport, dst, dport, bytes(eth.src), bytes(eth.dst), seg)
        ipb = eth.payload
        ihl = (ipb[0] & 0x0F) * 4
        total = struct.unpack_from("!H", ipb, 2)[0]
        thl = (ipb[ihl + 12] >> 4) * 4
        n = max(0, total - ihl - thl)
        data[key] = data.get(key, 0) + n
        if n and key in flows and len(flows[key].request) < 4096:
            flows[key].request += bytes(ipb[ihl + thl:total])
        rev = (dst, dport, src, sport)
        if rev in flows and not flows[rev].server_ttl:
            flows[rev].server_ttl = ttl
    if flows:
        for key, flow in flows.items():
            flow.data_bytes = data.get((key[2], key[3], key[0], key[1]), 0)
        best = max(flows.values(), key=lambda f: f.data_bytes)  # max() keeps the first of equals
    elif data:
        (src, sport, dst, dport), _ = max(data.items(), key=lambda kv: kv[1])
        best = CapturedFlow(dst, dport, src, sport, data_bytes=data[(src, sport, dst, dport)])
    else:
        raise UsageError(f"{path}: no TCP over IPv4 in this capture")
    gw = arp_replies.get(best.hop_mac)
    if gw is not None:
        best.gateway_ip = gw
    return best


class _ObservedConnection(TcpConnection):
    """A :class:`TcpConnection` standing in for the client of a captured connection.

    The capture decides what the client sent: the replay feeds the machine the client's SYN, data, FIN and
    RST as they appear (``connect``, ``send``, ``close``, ``abort``) and throws away the segments the
    machine builds. Its timestamp clock is the real client's: every TSval the client sent is noted with
    its capture time (so the server's echoes give the RTT exactly as live), and the machine's own
    segments reuse the client's latest TSval without noting it.
    """

    client_tsval = 0

    def note_client_tsval(self, tsval: int, now: float) -> None:
        self.client_tsval = tsval
        self._ts_note(tsval, now)

    def _tsval(self, now: float) -> int:
        return self.client_tsval


class PcapReplay(Replay):
    """Replays a classic pcap of a TCP download (Ethernet, IPv4), analysed receiver-side.

    The connection is found by :func:`find_flow`. Frames from the server are parsed and checked like live
    frames (IPv4 and TCP checksums: a bad one is a ``checksum_drop``, a frame that does not parse is
    ``malformed``) and fed to an :class:`_ObservedConnection`, whose events (handshake, state changes,
    out-of-order, duplicate data, dup ACKs, windows, RTT, the server's flight) are the analysis. The
    client's frames become ``segment_out`` events (and ``retransmit`` when they resend data); its ARP
    exchange becomes ``arp_request`` / ``arp_reply``. The in-order byte stream goes through the HTTP
    parser for the response, progress and, when the body is complete, ``done`` with its SHA-256.

    Checksums the capturing host never computed are not held against the frames: a TCP checksum field
    holding only the pseudo-header sum (checksum offload), a segment longer than the MSS (merged by
    GRO/LRO before the capture), or a frame cut short by the capture's snap length (its missing payload
    reads as zeros: no HTTP parsing then).
    """

    PROGRESS_EVERY = 0.1  # seconds of capture time between progress events, like live

    def __init__(self, path: str | Path, *, speed: float | None = 1.0, hold: bool = False) -> None:
        super().__init__(speed=speed, hold=hold)
        self.path = Path(path)
        if not self.path.is_file():
            raise UsageError(f"cannot read the capture {self.path}: no such file")
        try:
            self.flow = find_flow(self.path)
        except PcapFormatError as exc:
            raise UsageError(f"{self.path}: {exc}") from None
        self.title = self.flow.url  # for the view's title (the request's URL, as live)
        self.counters: dict[str, int] = {}

    def events(self) -> Iterator[Event]:
        try:
            yield from _Analysis(self, self.flow).run()
        except PcapFormatError as exc:
            raise UsageError(f"{self.path}: {exc}") from None


class _Analysis:
    """One pass over the capture for :class:`PcapReplay` (see there)."""

    def __init__(self, replay: PcapReplay, flow: CapturedFlow) -> None:
        self.replay = replay
        self.flow = flow
        self.t0: float | None = None
        self.conn: _ObservedConnection | None = None
        self.synthetic = False  # no SYN in the capture: the handshake was made up
        self.isn = 0  # the client's ISN
        self._pending: list[Event] = []  # machine events to emit with the next ones
        self.mss = 1460
        self.syn_count = 0
        self.sent_hi = 0  # relative end of the client's data seen so far
        self.fin_sent = False
        self.last_ack: int | None = None
        self.last_win = -1
        self.client_window = 0  # the client's last advertised window, bytes
        self.srv_ack: int | None = None
        self.srv_dupacks = 0
        self.http: HttpExchange | None = None
        self.http_ok = True
        self.body = hashlib.sha256()
        self.body_bytes = 0
        self.stream_bytes = 0
        self.truncated = False
        self.completed_at: float | None = None
        self.last_progress = -1.0
        self.progress_mark = (0.0, 0)
        self.speed = 0.0
        self.arp_tries: dict[bytes, int] = {}
        self.arp_sent_at: dict[bytes, float] = {}
        self.arp_done = False
        self.counters = dict.fromkeys(
            ("frames", "frames_other", "csum_drop_ipv4", "csum_drop_tcp", "csum_offloaded", "gro_aggregates",
             "snap_truncated", "malformed", "dup_acks_sent"), 0)
        self.dupacks_out = 0  # the client's duplicate ACKs in a row (for one ACK number)

    # -- the pass --------------------------------------------------------------------------------------

    def run(self) -> Iterator[Event]:
        flow = self.flow
        mss = flow.syn.options.mss if flow.syn is not None and flow.syn.options.mss else 1460
        self.mss = mss
        started = False
        t = 0.0
        for ts, frame in read_pcap(self.replay.path):
            self.counters["frames"] += 1
            evs = self._frame(ts, frame)
            if evs is None:
                self.counters["frames_other"] += 1
                continue
            if not started:
                started = True
                yield from self._start()
            t = ts - (self.t0 or ts)
            yield from evs
            yield from self._progress(t)
        yield from self._end(t)

    def _rel(self, ts: float) -> float:
        if self.t0 is None:
            self.t0 = ts
        return ts - self.t0

    def _start(self) -> Iterator[Event]:
        flow = self.flow
        name = self.replay.path.name
        routed = flow.server_ttl not in (0, 64, 128, 255)  # an unchanged initial TTL: no router on the way
        gateway = ip_str(flow.gateway_ip) if flow.gateway_ip and flow.gateway_ip != flow.server_ip else None
        if gateway is None and routed and flow.gateway_ip is None:
            gateway = "?"
        next_hop = gateway if gateway and gateway != "?" else ip_str(flow.server_ip)
        mtu = self.mss + 40
        client_mac = mac_str(flow.client_mac) if flow.client_mac else "?"
        yield Route(0.0, name, 0, ip_str(flow.client_ip), client_mac, ip_str(flow.server_ip), gateway, next_hop, mtu,
                    "a capture, replayed")
        note = f"replaying {name}: {flow.name}, {flow.data_bytes:,} bytes of data from the server"
        yield Info(0.0, note)
        if flow.syn is None:
            yield Info(0.0, "the capture starts after the handshake: window scale and options unknown, windows"
                       " are shown unscaled", "warning")

    # -- one frame ---------------------------------------------------------------------------------------

    def _frame(self, ts: float, frame: bytes) -> list[Event] | None:
        """The events of one frame, or None when it is not about our connection."""
        flow = self.flow
        peek = _peek_tcp(frame)
        if peek is None:
            return self._arp(ts, frame)
        eth, src, dst, sport, dport, _flags, _ttl = peek
        if (src, sport, dst, dport) == (flow.client_ip, flow.client_port, flow.server_ip, flow.server_port):
            from_server = False
        elif (src, sport, dst, dport) == (flow.server_ip, flow.server_port, flow.client_ip, flow.client_port):
            from_server = True
        else:
            return None
        t = self._rel(ts)
        ip_buf = eth.payload
        total = struct.unpack_from("!H", ip_buf, 2)[0]
        truncated = total > len(ip_buf)
        if truncated:  # the capture kept only the first bytes (snap length): the rest reads as zeros
            self.counters["snap_truncated"] += 1
            self.truncated = True
            ip_buf = memoryview(bytes(ip_buf) + bytes(total - len(ip_buf)))
        try:
            ip, tcp_buf = parse_ipv4(ip_buf, verify=from_server)  # a snap length keeps the IPv4 header
            if ip.is_fragment:
                self.counters["malformed"] += 1
                return [Malformed(t, "IPv4 fragment dropped (rawtui does not reassemble)", len(frame))]
            verify = from_server and not truncated and self._verifiable(tcp_buf, src, dst)
            seg = parse_tcp(tcp_buf, ip.src, ip.dst, verify=verify)
        except ChecksumError as exc:
            if not from_server:
                return []  # the client's own frames: the capturing host may not have filled them in yet
            self.counters["csum_drop_" + exc.layer] += 1
            return [ChecksumDrop(t, exc.layer, len(frame))]
        except WireError as exc:
            self.counters["malformed"] += 1
            return [Malformed(t, str(exc), len(frame))]
        if from_server:
            return self._server(seg, t)
        return self._client(seg, t)

    def _verifiable(self, tcp_buf: memoryview, src: bytes, dst: bytes) -> bool:
        """False for a TCP checksum the capturing host had not computed: only the pseudo-header sum is in
        the field (checksum offload), or the segment is longer than the MSS (several merged by GRO)."""
        if len(tcp_buf) - (tcp_buf[12] >> 4) * 4 > max(self.mss, 536):
            self.counters["gro_aggregates"] += 1
            return False
        field = struct.unpack_from("!H", tcp_buf, 16)[0]
        if field % 0xFFFF == pseudo_header_residue(src, dst, PROTO_TCP, len(tcp_buf)) % 0xFFFF:
            self.counters["csum_offloaded"] += 1
            return False
        return True

    def _arp(self, ts: float, frame: bytes) -> list[Event] | None:
        """The client's ARP exchange: its who-has requests and the replies to it."""
        flow = self.flow
        try:
            eth = parse_ethernet(frame)
            if eth.ethertype != ETH_P_ARP:
                return None
            pkt = parse_arp(eth.payload)
        except WireError:
            return None
        next_hops = (flow.gateway_ip, flow.server_ip)
        if pkt.op == OP_REQUEST and pkt.sender_ip == flow.client_ip and pkt.target_ip in next_hops:
            t = self._rel(ts)
            n = self.arp_tries[pkt.target_ip] = self.arp_tries.get(pkt.target_ip, 0) + 1
            self.arp_sent_at[pkt.target_ip] = t
            return [ArpRequest(t, ip_str(pkt.target_ip), n)]
        if pkt.op == OP_REPLY and pkt.target_ip == flow.client_ip and pkt.sender_ip in next_hops:
            t = self._rel(ts)
            ip, mac = ip_str(pkt.sender_ip), mac_str(pkt.sender_mac)
            sent = self.arp_sent_at.get(pkt.sender_ip)
            if sent is None:
                return [ArpIgnored(t, ip, mac, "unsolicited reply")]
            if self.arp_done:
                return [ArpIgnored(t, ip, mac, "a second reply")]
            self.arp_done = True
            return [ArpReply(t, ip, mac, round((t - sent) * 1000, 3))]
        return None

    # -- the client's frames: what it sent is a fact of the capture -------------------------------------

    def _connection(self, isn: int, syn: TcpSegment | None, t: float) -> _ObservedConnection:
        flow = self.flow
        o = syn.options if syn is not None else None
        wscale = o.wscale if o is not None and o.wscale is not None else 0
        conn = _ObservedConnection(
            local_ip=flow.client_ip, remote_ip=flow.server_ip, local_port=flow.client_port,
            remote_port=flow.server_port, isn=isn, mss=self.mss,
            rcv_buf=0xFFFF << wscale,  # the largest buffer with the client's scale: the window never limits
            sack=bool(o and o.sack_permitted), timestamps=bool(o and o.ts is not None),
            ts_offset=((o.ts[0] - int(t * 1000)) & M32) if o is not None and o.ts is not None else 0,
        )
        if o is not None and o.ts is not None:
            conn.note_client_tsval(o.ts[0], t)
        return conn

    def _client(self, seg: TcpSegment, t: float) -> list[Event]:
        out: list[Event] = []
        flags = seg.flags
        if flags & SYN:
            self.syn_count += 1
            if self.conn is None:
                self.conn = self._connection(seg.seq, seg, t)
                self.conn.connect(t)
                self.isn = seg.seq
            else:
                out.append(Retransmit(t, 0, 0, "syn", self.syn_count - 1))
            out.extend(self._machine_events())
            out.append(SegmentOut(t, 0, 0, flags_str(flags), seg.window, 0, (),
                                  "retransmit" if self.syn_count > 1 else ""))
            return out
        conn = self.conn
        if conn is None:  # the capture starts after the handshake
            conn = self._synthetic_handshake(seg, None, t)
        opts = seg.options
        if opts.ts is not None:
            conn.note_client_tsval(opts.ts[0], t)
        payload = seg.payload
        n = len(payload)
        rel = (seg.seq - self.isn) & M32
        note = ""
        try:
            if n:
                end = rel + n
                if end <= self.sent_hi:
                    note = "retransmit"
                    reason = "fast" if self.srv_dupacks >= 3 else "rto"
                    out.append(Retransmit(t, rel, n, reason, 0))
                else:
                    new = bytes(payload[max(0, self.sent_hi - rel):])
                    if rel < self.sent_hi:
                        note = "retransmit"
                    self.sent_hi = end
                    conn.send(new, t)
            if flags & FIN and not self.fin_sent:
                self.fin_sent = True
                conn.close(t)
            if flags & RST:
                conn.abort(t)
        except TcpError:
            pass  # the machine disagrees (e.g. already closed): the capture is the truth
        ack = (seg.ack - self.peer_isn) & M32 if flags & ACK and self.peer_isn is not None else 0
        shift = conn.rcv_wscale if conn.state is not State.SYN_SENT else 0
        self.client_window = seg.window << shift
        if not n and not note and flags == ACK:
            if ack == self.last_ack and (seg.options.sack or conn.ooo_bytes):
                note = "dup-ack"
            elif ack == self.last_ack and seg.window > self.last_win:
                note = "window-update"
        if flags & ACK and ack != self.last_ack:
            self.dupacks_out = 0
        if note == "dup-ack":  # what the client really sent (its SACK compression, timers) decides, as live
            self.dupacks_out += 1
            self.counters["dup_acks_sent"] += 1
            out.extend(self._machine_events())
            out.append(DupAck(t, ack, self.dupacks_out, "out"))
        if flags & ACK:
            self.last_ack = ack
            self.last_win = seg.window
        sack: tuple[tuple[int, int], ...] = ()
        if opts.sack and self.peer_isn is not None:
            sack = tuple(((a - self.peer_isn) & M32, (b - self.peer_isn) & M32) for a, b in opts.sack)
        out.extend(self._machine_events())
        out.append(SegmentOut(t, rel, ack, flags_str(flags), seg.window, n, sack, note))
        return out

    @property
    def peer_isn(self) -> int | None:
        conn = self.conn
        if conn is None or conn.state is State.SYN_SENT:
            return None
        return conn.peer_isn

    def _synthetic_handshake(self, client_seg: TcpSegment | None, server_seg: TcpSegment | None,
                             t: float) -> _ObservedConnection:
        """A capture without the SYN: start the machine as if the handshake happened just before (no options)."""
        if client_seg is not None:
            isn, peer_isn = (client_seg.seq - 1) & M32, (client_seg.ack - 1) & M32
        else:
            assert server_seg is not None
            isn, peer_isn = (server_seg.ack - 1) & M32, (server_seg.seq - 1) & M32
        self.synthetic = True
        self.isn = isn
        conn = self.conn = self._connection(isn, None, t)
        conn.connect(t)
        flow = self.flow
        synack = TcpSegment(flow.server_port, flow.client_port, peer_isn, (isn + 1) & M32, SYN | ACK, 0xFFFF)
        conn.on_segment(synack, t)
        conn.take_segments()
        self._pending = [e for e in conn.take_events() if isinstance(e, TcpState)]  # not the made-up SYN-ACK
        self.sent_hi = 1
        return conn

    # -- the server's frames: through the machine, as live ----------------------------------------------

    def _server(self, seg: TcpSegment, t: float) -> list[Event]:
        conn = self.conn
        if conn is None:
            if seg.flags & SYN:
                return []  # a SYN-ACK before any SYN we know of
            conn = self._synthetic_handshake(None, seg, t)
        if seg.flags & ACK and not seg.payload and not seg.flags & (SYN | FIN):
            self.srv_dupacks = self.srv_dupacks + 1 if seg.ack == self.srv_ack else 0
        elif seg.flags & ACK:
            self.srv_dupacks = 0
        self.srv_ack = seg.ack
        conn.on_segment(seg, t)
        chunks = conn.read_chunks()
        out = self._machine_events()
        for chunk in chunks:
            out.extend(self._stream(chunk, t))
        if conn.peer_eof and self.http is not None and self.http_ok and not self.http.complete:
            try:
                self.http.receive_eof()
                self._check_complete(t)
            except HttpError as exc:
                out.append(Info(t, f"HTTP: {exc}", "warning"))
                self.http_ok = False
        return out

    def _machine_events(self) -> list[Event]:
        """The machine's events, less the segments it would have sent (the capture says what was sent);
        its windows carry the window the real client advertised."""
        conn = self.conn
        assert conn is not None
        conn.take_segments()
        out, self._pending = self._pending, []
        for ev in conn.take_events():
            if isinstance(ev, SegmentOut) or (isinstance(ev, DupAck) and ev.direction == "out"):
                continue  # the capture says what the client sent
            if isinstance(ev, Window):
                ev = dataclasses.replace(ev, rwnd=self.client_window)
            out.append(ev)
        return out

    # -- the byte stream: HTTP ----------------------------------------------------------------------------

    def _stream(self, chunk: bytes, t: float) -> list[Event]:
        out: list[Event] = []
        self.stream_bytes += len(chunk)
        if not self.http_ok or self.truncated:
            if self.http_ok and self.truncated:
                self.http_ok = False
                out.append(Info(t, "the capture cut the frames short (snap length): no HTTP parsing, progress"
                                " counts TCP payload bytes", "warning"))
            return out
        if self.http is None:
            self.http = HttpExchange(parse_url(self.flow.url))
            self.http.request()  # h11 reads a response only after a request
        http = self.http
        had_response = http.response is not None
        try:
            chunks = http.receive(chunk)
        except HttpError as exc:
            self.http_ok = False
            out.append(Info(t, f"not an HTTP response we can read ({exc}): progress counts TCP payload bytes",
                            "warning"))
            return out
        if not had_response and http.response is not None:
            reason = http.response.reason.decode("latin-1", "replace")
            out.append(HttpResponse(t, http.response.status_code, reason, http.content_length, http.headers))
        for c in chunks:
            self.body.update(c)
            self.body_bytes += len(c)
        self._check_complete(t)
        return out

    def _check_complete(self, t: float) -> None:
        if self.http is not None and self.http.complete and self.completed_at is None:
            self.completed_at = t

    # -- progress and the end -----------------------------------------------------------------------------

    def _received(self) -> tuple[int, int | None]:
        """Bytes received so far and the total expected: the HTTP body when it parses, else TCP bytes."""
        if self.http is not None and self.http_ok and self.http.response is not None:
            return self.body_bytes, self.http.content_length
        return self.stream_bytes, None

    def _progress(self, t: float) -> Iterator[Event]:
        if t - self.last_progress < PcapReplay.PROGRESS_EVERY or self.conn is None:
            return
        got, total = self._received()
        if got == 0 and self.last_progress < 0:
            return
        t_mark, b_mark = self.progress_mark
        if b_mark == 0 and got:  # the first bytes: measure from here
            self.progress_mark = (t, got)
        elif t - t_mark >= 0.25:  # like live: the rate over the last quarter second or more
            self.speed = (got - b_mark) / (t - t_mark)
            self.progress_mark = (t, got)
        elif not self.speed and t > t_mark:
            self.speed = (got - b_mark) / (t - t_mark)
        self.last_progress = t
        yield Progress(t, got, total, self.speed)

    def _end(self, t: float) -> Iterator[Event]:
        conn = self.conn
        replay = self.replay
        if conn is None:
            raise UsageError(f"{replay.path}: no frame of {self.flow.name} could be read")
        got, total = self._received()
        yield Progress(t, got, total, self.speed)
        c = self.counters
        unchecked = c["csum_offloaded"] + c["gro_aggregates"] + c["snap_truncated"]
        if unchecked:
            yield Info(t, f"{unchecked:,} frames from the server could not be checksum-verified: "
                       f"{c['csum_offloaded']:,} offloaded, {c['gro_aggregates']:,} merged by GRO, "
                       f"{c['snap_truncated']:,} cut by the snap length")
        counters = {**conn.counters, **c}
        del counters["sacks_compressed"]  # the machine's own ACK decisions: the capture shows the client's
        replay.counters = counters
        if self.completed_at is not None and self.http is not None and self.http_ok:
            duration = self.completed_at
            yield Done(t, self.body_bytes, self.body.hexdigest(), round(duration, 6), "", counters)  # not saved
        elif conn.error is not None:
            yield Error(t, f"in the capture: {conn.error.message}", conn.error.exit_code)
        else:
            yield Info(t, "the capture ends here")
