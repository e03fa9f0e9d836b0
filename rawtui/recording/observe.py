"""The receiver-side analysis of one TCP connection, one captured frame at a time.

:class:`FlowObserver` is what ``rawtui replay CAPTURE`` runs over a file and what a passive live
capture can run over a socket: it is fed :class:`~rawtui.recording.capture.CapturedFrame` records
(:meth:`FlowObserver.feed`) and gives rawtui's events. The server's frames go through the same parsing,
checksum checks and :class:`~rawtui.stack.tcp.TcpConnection` as live, set up as the client of the captured
connection; what the real client sent comes from the capture. :class:`CapturedFlow` says which connection
and what is known of its path (found by :func:`~rawtui.recording.pcap.find_flow` for a file).
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rawtui.errors import HttpError, RawtuiError, TcpError
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
    Medium,
    NdpAdvert,
    NdpIgnored,
    NdpSolicit,
    Progress,
    Retransmit,
    Route,
    SegmentOut,
    TcpState,
    Window,
)
from rawtui.http.client import HttpExchange, parse_url
from rawtui.http.events import TlsInfo, TlsRecord
from rawtui.recording.capture import CapturedFrame
from rawtui.stack.tcp import M32, TcpConnection
from rawtui.stack.tcp_states import State
from rawtui.wire.arp import OP_REPLY, OP_REQUEST, parse_arp
from rawtui.wire.checksum import pseudo_header_residue
from rawtui.wire.errors import ChecksumError, WireError
from rawtui.wire.ethernet import mac_str
from rawtui.wire.icmpv6 import NeighborAdvert, NeighborSolicit, parse_icmpv6
from rawtui.wire.ipv4 import PROTO_TCP, parse_ipv4
from rawtui.wire.ipv6 import NH_ICMPV6, endpoint_text, parse_ipv6
from rawtui.wire.link import ETH_P_IP, LINKTYPE_ETHERNET, LINKTYPE_NAMES, Layer3, NetProto, decapsulate
from rawtui.wire.tcp import ACK, FIN, RST, SYN, TcpSegment, flags_str, parse_tcp
from rawtui.wire.tls import looks_like_tls

if TYPE_CHECKING:
    from rawtui.http.tls_decrypt import Keylog, TlsObserver

__all__ = ["CapturedFlow", "FlowObserver", "PeekedTcp", "addr_text", "endpoint_text", "peek_tcp"]


def addr_text(addr: bytes) -> str:
    """An IPv4 (4 bytes) or IPv6 (16 bytes) address as text, IPv6 in RFC 5952's form (``2001:db8::1``)."""
    return str(ipaddress.ip_address(addr))


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
    medium: Medium = Medium.ETHERNET  # IP: the capture's frames have no link-layer addresses (raw IP, a tun)

    @property
    def ipv6(self) -> bool:
        return len(self.client_ip) == 16

    @property
    def name(self) -> str:
        return f"{endpoint_text(self.client_ip, self.client_port)} -> {endpoint_text(self.server_ip, self.server_port)}"

    @property
    def url(self) -> str:
        """The request's URL, from its first line and Host header (else the server's address)."""
        host = endpoint_text(self.server_ip, self.server_port)
        target = "/"
        head = self.request.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
        parts = head[0].split()
        if len(parts) >= 2 and parts[1].startswith("/") and _visible(parts[1]):
            target = parts[1]
        for line in head[1:]:
            k, _, v = line.partition(":")
            if k.strip().lower() == "host" and v.strip() and _visible(v.strip()):
                host = v.strip()
        scheme = "https" if self.server_port == 443 else "http"
        return f"{scheme}://{host}{target}"


def _visible(text: str) -> bool:
    """Printable ASCII without spaces: what a URL's host and path may hold here (a capture may be mangled)."""
    return all(33 <= ord(c) < 127 for c in text)


@dataclass(slots=True)
class PeekedTcp:
    """A frame's IPv4 or IPv6 + TCP addressing, read without verifying anything (:func:`peek_tcp`)."""

    l3: Layer3
    ip: memoryview  # from the IP header to the end of the frame
    src: bytes
    dst: bytes
    sport: int
    dport: int
    flags: int
    ttl: int  # IPv6: the hop limit

    @property
    def ipv6(self) -> bool:
        return self.l3.proto is NetProto.IPV6


def peek_tcp(linktype: int, data: bytes) -> PeekedTcp | None:
    """IPv4 or IPv6 + TCP ports and flags of a frame of any link type rawtui reads, without verifying
    anything; None for anything else (another protocol, a link type rawtui does not read, a frame cut too
    short, an IPv6 fragment)."""
    l3: Layer3 | None
    if linktype == LINKTYPE_ETHERNET and data[12:14] == b"\x08\x00":  # the common case, without decapsulate
        l3 = Layer3(NetProto.IPV4, 14, ETH_P_IP, data[6:12], data[:6])
    elif linktype not in LINKTYPE_NAMES:
        return None
    else:
        l3 = decapsulate(linktype, data)
    if l3 is None:
        return None
    if l3.proto is NetProto.IPV6:
        return _peek_tcp6(l3, memoryview(data)[l3.offset:])
    if l3.proto is not NetProto.IPV4:
        return None
    ip = memoryview(data)[l3.offset:]
    if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != PROTO_TCP:
        return None
    ihl = (ip[0] & 0x0F) * 4
    if ihl < 20 or len(ip) < ihl + 14:
        return None
    sport, dport = struct.unpack_from("!HH", ip, ihl)
    return PeekedTcp(l3, ip, bytes(ip[12:16]), bytes(ip[16:20]), sport, dport, ip[ihl + 13], ip[8])


def _peek_tcp6(l3: Layer3, ip: memoryview) -> PeekedTcp | None:
    """:func:`peek_tcp` for IPv6: TCP right after the fixed header (the usual case, read even when the
    capture's snap length cut the packet), else after its extension headers as the stack walks them."""
    if len(ip) < 40 or ip[0] >> 4 != 6:
        return None
    off = 40
    if ip[6] != PROTO_TCP:
        try:
            ip6, _ = parse_ipv6(ip)
        except WireError:
            return None
        if ip6.proto != PROTO_TCP or (ip6.fragment is not None and ip6.fragment.offset):
            return None  # (a first fragment names its connection: counted and dropped as malformed, as live)
        off = ip6.header_length
    if len(ip) < off + 14:
        return None
    sport, dport = struct.unpack_from("!HH", ip, off)
    return PeekedTcp(l3, ip, bytes(ip[8:24]), bytes(ip[24:40]), sport, dport, ip[off + 13], ip[7])


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


class FlowObserver:
    """Rawtui's receiver-side analysis of one captured TCP connection, fed one frame at a time.

    Frames from the server are parsed and checked like live frames (IPv4 and TCP checksums: a bad one is
    a ``checksum_drop``, a frame that does not parse is ``malformed``) and fed to a
    :class:`~rawtui.stack.tcp.TcpConnection` standing in for the client, whose events (handshake, state
    changes, out-of-order, duplicate data, dup ACKs, windows, RTT, the server's flight) are the analysis.
    The client's frames become ``segment_out`` events (and ``retransmit`` when they resend data); its ARP
    exchange becomes ``arp_request`` / ``arp_reply``. The in-order byte stream goes through the HTTP parser
    for the response, progress and, when the body is complete, ``done`` with its SHA-256.

    Checksums the capturing host never computed are not held against the frames: a TCP checksum field
    holding only the pseudo-header sum (checksum offload), a segment longer than the MSS (merged by
    GRO/LRO before the capture), or a frame cut short by the capture's snap length (its missing payload
    reads as zeros: no HTTP parsing then).

    Event times are seconds since the first frame of the connection. ``name`` is what the first events
    call the source (the file's name). :meth:`feed` takes every frame (those of other connections are
    counted and ignored); :meth:`finish` gives the closing events. ``started`` says whether any frame
    of the connection was seen; ``final_counters`` holds the machine's and the observer's counters after :meth:`finish`.
    """

    PROGRESS_EVERY = 0.1  # seconds of capture time between progress events, like live

    def __init__(self, flow: CapturedFlow, name: str = "capture", *, keylog: Keylog | None = None,
                 keylog_name: str = "", choice: str = "") -> None:
        self.name = name
        self.flow = flow
        self.choice = choice  # which of the capture's connections this is, and why (a line at the start)
        # TLS (the client's first bytes are a ClientHello): records, handshake, and with the key log the
        # decrypted HTTP; a stream that is neither TLS nor HTTP is analysed as a plain byte stream
        self.tls: TlsObserver | None = None
        self.keylog, self.keylog_name = keylog, keylog_name
        self.tls_started: float | None = None
        self.tls_info_sent = False
        self.tls_records = {"out": [0, 0], "in": [0, 0]}  # records, bytes, by direction
        self.byte_stream = False  # not HTTP: progress, done and sha256 are of the TCP byte stream
        self.started = False
        self.final_counters: dict[str, int] = {}
        self.last_ts: float | None = None  # the capture time of the connection's last frame
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
             "snap_truncated", "malformed", "dup_acks_sent", "holes_opened", "zero_windows_sent"), 0)
        self.dupacks_out = 0  # the client's duplicate ACKs in a row (for one ACK number)
        # what the capture shows beside the machine's view (compared with tshark's tcp.analysis flags):
        # holes_opened: a server segment (data, FIN or ACK, not RST) starting above the highest sequence
        # number seen so far (tshark: lost_segment);
        # zero_windows_sent: the client's segments advertising a zero window (tshark: zero_window)
        self.srv_hi: int | None = None  # relative end of the highest server data seen
        self._maybe_tls(flow.request)

    # -- the pass --------------------------------------------------------------------------------------

    def feed(self, frame: CapturedFrame) -> list[Event]:
        """The events one captured frame makes (none for a frame of another connection)."""
        self.counters["frames"] += 1
        evs = self._frame(frame)
        if evs is None:
            self.counters["frames_other"] += 1
            return []
        self.last_ts = frame.ts
        if not self.started:
            self.started = True
            evs = self._start() + evs
        t = frame.ts - (self.t0 if self.t0 is not None else frame.ts)
        progress = self._progress(t)
        if progress is not None:
            evs.append(progress)
        return evs

    def finish(self, ts: float | None = None) -> list[Event]:
        """The closing events: the last progress, what could not be verified, and ``done`` (the body was
        complete), ``error`` (the connection failed) or "the capture ends here". ``ts`` (epoch seconds)
        defaults to the connection's last frame."""
        if ts is None:
            ts = self.last_ts
        t = 0.0 if ts is None or self.t0 is None else ts - self.t0
        return self._end(t)

    def _rel(self, ts: float) -> float:
        if self.t0 is None:
            self.t0 = ts
        return ts - self.t0

    def _start(self) -> list[Event]:
        flow = self.flow
        name = self.name
        out: list[Event] = []
        routed = flow.server_ttl not in (0, 64, 128, 255)  # an unchanged initial TTL: no router on the way
        gateway = addr_text(flow.gateway_ip) if flow.gateway_ip and flow.gateway_ip != flow.server_ip else None
        if gateway is None and routed and flow.gateway_ip is None:
            gateway = "?"
        next_hop = gateway if gateway and gateway != "?" else addr_text(flow.server_ip)
        family = 6 if flow.ipv6 else 4
        syn_mss = flow.syn.options.mss if flow.syn is not None else None
        mtu = (syn_mss or self.mss) + (60 if flow.ipv6 else 40)  # what the client's SYN says its link carries
        client_mac = mac_str(flow.client_mac) if flow.client_mac else "?"
        out.append(Route(0.0, name, 0, addr_text(flow.client_ip), client_mac, addr_text(flow.server_ip), gateway,
                         next_hop, mtu, "a capture, replayed", family=family,
                         family_reason="read from the capture", medium=flow.medium))
        note = f"replaying {name}: {flow.name}, {flow.data_bytes:,} bytes of data from the server"
        out.append(Info(0.0, note))
        if self.choice:
            out.append(Info(0.0, self.choice))
        if flow.syn is None:
            out.append(Info(0.0, "the capture starts after the handshake: window scale and options unknown,"
                            " windows are shown unscaled", "warning"))
        return out

    # -- one frame ---------------------------------------------------------------------------------------

    def _frame(self, captured: CapturedFrame) -> list[Event] | None:
        """The events of one frame, or None when it is not about our connection."""
        flow = self.flow
        ts, frame = captured.ts, captured.data
        peek = peek_tcp(captured.linktype, frame)
        if peek is None:
            return self._arp(captured)
        src, dst, sport, dport = peek.src, peek.dst, peek.sport, peek.dport
        if (src, sport, dst, dport) == (flow.client_ip, flow.client_port, flow.server_ip, flow.server_port):
            from_server = False
        elif (src, sport, dst, dport) == (flow.server_ip, flow.server_port, flow.client_ip, flow.client_port):
            from_server = True
        else:
            return None
        t = self._rel(ts)
        ip_buf = peek.ip
        v6 = peek.ipv6
        total = 40 + struct.unpack_from("!H", ip_buf, 4)[0] if v6 else struct.unpack_from("!H", ip_buf, 2)[0]
        truncated = total > len(ip_buf)
        if truncated:  # the capture kept only the first bytes (snap length): the rest reads as zeros
            self.counters["snap_truncated"] += 1
            self.truncated = True
            ip_buf = memoryview(bytes(ip_buf) + bytes(total - len(ip_buf)))
        try:
            ip_id = -1  # (IPv6 has none)
            if v6:  # no header checksum; extension headers walked, fragments dropped as live
                ip6, tcp_buf = parse_ipv6(ip_buf)
                fragment = ip6.is_fragment
            else:
                ip, tcp_buf = parse_ipv4(ip_buf, verify=from_server)  # a snap length keeps the IPv4 header
                fragment, ip_id = ip.is_fragment, ip.ident
            if fragment:
                self.counters["malformed"] += 1
                family = "IPv6" if v6 else "IPv4"
                return [Malformed(t, f"{family} fragment dropped (rawtui does not reassemble)", len(frame))]
            verify = from_server and not truncated and self._verifiable(tcp_buf, src, dst)
            seg = parse_tcp(tcp_buf, src, dst, verify=verify)
        except ChecksumError as exc:
            if not from_server:
                return []  # the client's own frames: the capturing host may not have filled them in yet
            self.counters["csum_drop_" + exc.layer] += 1
            return [ChecksumDrop(t, exc.layer, len(frame))]
        except WireError as exc:
            self.counters["malformed"] += 1
            return [Malformed(t, str(exc), len(frame))]
        if from_server:
            return self._server(seg, t, ip_id)
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

    def _arp(self, captured: CapturedFrame) -> list[Event] | None:
        """The client's ARP exchange: its who-has requests and the replies to it."""
        flow = self.flow
        ts = captured.ts
        if captured.linktype not in LINKTYPE_NAMES:
            return None
        l3 = decapsulate(captured.linktype, captured.data)
        if l3 is not None and l3.proto is NetProto.IPV6:
            return self._ndp(memoryview(captured.data)[l3.offset:], ts)
        if l3 is None or l3.proto is not NetProto.ARP:
            return None
        try:
            pkt = parse_arp(memoryview(captured.data)[l3.offset:])
        except WireError:
            return None
        next_hops = (flow.gateway_ip, flow.server_ip)
        if pkt.op == OP_REQUEST and pkt.sender_ip == flow.client_ip and pkt.target_ip in next_hops:
            t = self._rel(ts)
            n = self.arp_tries[pkt.target_ip] = self.arp_tries.get(pkt.target_ip, 0) + 1
            self.arp_sent_at[pkt.target_ip] = t
            return [ArpRequest(t, addr_text(pkt.target_ip), n)]
        if pkt.op == OP_REPLY and pkt.target_ip == flow.client_ip and pkt.sender_ip in next_hops:
            t = self._rel(ts)
            ip, mac = addr_text(pkt.sender_ip), mac_str(pkt.sender_mac)
            sent = self.arp_sent_at.get(pkt.sender_ip)
            if sent is None:
                return [ArpIgnored(t, ip, mac, "unsolicited reply")]
            if self.arp_done:
                return [ArpIgnored(t, ip, mac, "a second reply")]
            self.arp_done = True
            return [ArpReply(t, ip, mac, round((t - sent) * 1000, 3))]
        return None

    def _ndp(self, ip: memoryview, ts: float) -> list[Event] | None:
        """The client's neighbor discovery (IPv6's ARP): its solicitations for the next hop, and the
        advertisements that answer it, as :meth:`_arp` reads ARP."""
        flow = self.flow
        try:
            ip6, body = parse_ipv6(ip)
            if ip6.proto != NH_ICMPV6 or ip6.is_fragment:
                return None
            msg = parse_icmpv6(body, ip6.src, ip6.dst, verify=False)
        except WireError:
            return None
        next_hops = (flow.gateway_ip, flow.server_ip)
        if isinstance(msg, NeighborSolicit) and msg.target in next_hops and (
                ip6.src == flow.client_ip or msg.options.source_lladdr == flow.client_mac != b""):
            t = self._rel(ts)
            n = self.arp_tries[msg.target] = self.arp_tries.get(msg.target, 0) + 1
            self.arp_sent_at[msg.target] = t
            return [NdpSolicit(t, addr_text(msg.target), n, unicast=ip6.dst == msg.target)]
        if isinstance(msg, NeighborAdvert) and msg.target in next_hops and msg.options.target_lladdr is not None:
            t = self._rel(ts)
            ip_text, mac = addr_text(msg.target), mac_str(msg.options.target_lladdr)
            sent = self.arp_sent_at.get(msg.target)
            if sent is None:
                return [NdpIgnored(t, ip_text, mac, "unsolicited advertisement")]
            if self.arp_done:
                return [NdpIgnored(t, ip_text, mac, "a second advertisement")]
            self.arp_done = True
            return [NdpAdvert(t, ip_text, mac, round((t - sent) * 1000, 3), msg.solicited, msg.override,
                              msg.router)]
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
                    if rel <= 1 and self.tls is None:  # the client's first bytes (a live watch learns them now)
                        self._maybe_tls(new)
                    if self.tls is not None:
                        out.extend(self._tls("out", new, t))
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
        if flags & ACK and conn.state is not State.SYN_SENT:
            conn.note_window_advertised(self.client_window, t)
        if seg.window == 0 and not flags & (SYN | FIN | RST):
            self.counters["zero_windows_sent"] += 1
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

    def _server(self, seg: TcpSegment, t: float, ip_id: int = -1) -> list[Event]:
        conn = self.conn
        if conn is None:
            if seg.flags & SYN:
                return []  # a SYN-ACK before any SYN we know of
            conn = self._synthetic_handshake(None, seg, t)
        if seg.flags & ACK and not seg.payload and not seg.flags & (SYN | FIN):
            self.srv_dupacks = self.srv_dupacks + 1 if seg.ack == self.srv_ack else 0
        elif seg.flags & ACK:
            self.srv_dupacks = 0
        if not seg.flags & (SYN | RST) and conn.state is not State.SYN_SENT:  # any segment, data or not
            start = (seg.seq - conn.peer_isn - 1) & M32
            end = start + len(seg.payload) + (1 if seg.flags & FIN else 0)
            hi = self.srv_hi if self.srv_hi is not None or self.synthetic else 0  # after a SYN-ACK: byte 0
            if hi is not None and 0 < start - hi < 1 << 30:
                self.counters["holes_opened"] += 1
            if hi is None or 0 < end - hi < 1 << 30:
                self.srv_hi = end
        self.srv_ack = seg.ack
        conn.on_segment(seg, t, ip_id)
        chunks = conn.read_chunks()
        out = self._machine_events()
        for chunk in chunks:
            out.extend(self._stream(chunk, t))
        if conn.peer_eof and self.byte_stream and self.completed_at is None and not self.truncated:
            self.completed_at = t  # the server closed: its byte stream is complete
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

    def _maybe_tls(self, first: bytes) -> None:
        """Follow TLS when the client's first bytes are a ClientHello (and no response was read yet)."""
        if self.tls is None and self.http is None and not self.byte_stream and looks_like_tls(first):
            from rawtui.http.tls_decrypt import TlsObserver  # cryptography loads for TLS flows only

            self.tls = TlsObserver(self.keylog, self.keylog_name)

    def _tls(self, direction: str, data: bytes, t: float) -> list[Event]:
        """One direction's bytes through the TLS observer: its records, its notes, the handshake's outcome
        once both sides encrypt, and the decrypted bytes from the server into the HTTP parser."""
        tls = self.tls
        assert tls is not None
        if self.tls_started is None:
            self.tls_started = t
        got = tls.feed(direction, data)
        out: list[Event] = [TlsRecord(t, direction, kind, length) for kind, length in got.records]
        tally = self.tls_records[direction]
        tally[0] += len(got.records)
        tally[1] += sum(length for _, length in got.records)
        out.extend(Info(t, text, level) for text, level in got.notes)
        if tls.handshake_done and not self.tls_info_sent:
            self.tls_info_sent = True
            cert = tls.certificate
            out.append(TlsInfo(t, tls.version, tls.cipher, tls.alpn,
                               cert.subject if cert else "(not seen: encrypted in the capture)",
                               cert.issuer if cert else "", cert.not_after if cert else "", False,
                               round((t - self.tls_started) * 1000, 3)))
        if direction == "in" and got.plaintext:
            out.extend(self._http(got.plaintext, t))
        return out

    def _stream(self, chunk: bytes, t: float) -> list[Event]:
        out: list[Event] = []
        self.stream_bytes += len(chunk)
        if self.tls is not None:
            return self._tls("in", chunk, t)
        if self.http is None and not self.byte_stream and not self.truncated and not _http_like(
                self.flow.request, chunk):
            self.byte_stream = True
            out.append(Info(t, "not HTTP: analysed as a TCP byte stream (progress, done and sha256 are of the "
                            "bytes the server sent)"))
        if self.byte_stream:
            self.body.update(chunk)
            self.body_bytes += len(chunk)
            return out
        return out + self._http(chunk, t)

    def _http(self, chunk: bytes, t: float) -> list[Event]:
        out: list[Event] = []
        if not self.http_ok or self.truncated:
            if self.http_ok and self.truncated:
                self.http_ok = False
                out.append(Info(t, "the capture cut the frames short (snap length): no HTTP parsing, progress"
                                " counts TCP payload bytes", "warning"))
            return out
        if self.http is None:
            try:
                self.http = HttpExchange(parse_url(self.flow.url))
            except (RawtuiError, ValueError):  # a request line or Host the capture mangled: the server's address
                self.http = HttpExchange(parse_url(
                    f"http://{endpoint_text(self.flow.server_ip, self.flow.server_port)}/"))
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

    def _progress(self, t: float) -> Progress | None:
        if t - self.last_progress < self.PROGRESS_EVERY or self.conn is None:
            return None
        got, total = self._received()
        if got == 0 and self.last_progress < 0:
            return None
        t_mark, b_mark = self.progress_mark
        if b_mark == 0 and got:  # the first bytes: measure from here
            self.progress_mark = (t, got)
        elif t - t_mark >= 0.25:  # like live: the rate over the last quarter second or more
            self.speed = (got - b_mark) / (t - t_mark)
            self.progress_mark = (t, got)
        elif not self.speed and t > t_mark:
            self.speed = (got - b_mark) / (t - t_mark)
        self.last_progress = t
        return Progress(t, got, total, self.speed)

    @property
    def analysed(self) -> bool:
        """Whether any TCP segment of the connection went through the machine."""
        return self.conn is not None

    def _end(self, t: float) -> list[Event]:
        conn = self.conn
        if conn is None:
            return [Info(t, f"no frame of {self.flow.name} could be read", "warning")]
        got, total = self._received()
        out: list[Event] = [Progress(t, got, total, self.speed)]
        c = self.counters
        unchecked = c["csum_offloaded"] + c["gro_aggregates"] + c["snap_truncated"]
        if unchecked:
            out.append(Info(t, f"{unchecked:,} frames from the server could not be checksum-verified: "
                            f"{c['csum_offloaded']:,} offloaded, {c['gro_aggregates']:,} merged by GRO, "
                            f"{c['snap_truncated']:,} cut by the snap length"))
        counters = {**conn.counters, **c}
        del counters["sacks_compressed"]  # the machine's own ACK decisions: the capture shows the client's
        self.final_counters = counters
        if self.tls is not None:
            (n_out, b_out), (n_in, b_in) = self.tls_records["out"], self.tls_records["in"]
            line = (f"TLS: {n_in:,} records ({b_in:,} bytes) from the server, {n_out:,} ({b_out:,} bytes) from "
                    f"the client")
            if self.tls.undecrypted:
                line += f"; {self.tls.undecrypted:,} not decrypted"
            out.append(Info(t, line))
        if self.completed_at is not None and (self.byte_stream or (self.http is not None and self.http_ok)):
            duration = self.completed_at
            out.append(Done(t, self.body_bytes, self.body.hexdigest(), round(duration, 6), "", counters))
        elif conn.error is not None:
            out.append(Error(t, f"in the capture: {conn.error.message}", conn.error.exit_code))
        else:
            if total is not None and got < total:  # a warning: the headless view's last word without a summary
                out.append(Info(t, f"the capture ends here, before the download's end ({got:,} of {total:,} "
                                "bytes of the body seen)", "warning"))
            else:
                out.append(Info(t, "the capture ends here"))
        return out


def _http_like(request: bytes, first: bytes) -> bool:
    """Whether a connection is HTTP: the client's first bytes are a request line (or the client sent
    nothing the capture holds), or the server's first bytes are a status line."""
    if first.startswith(b"HTTP/"):
        return True
    if not request:
        return not first or first[:1].isalpha() and b" " in first[:32]
    line = request.split(b"\n", 1)[0]
    return b" HTTP/1." in line and line[:1].isupper()
