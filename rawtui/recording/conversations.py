"""The TCP conversations of a capture, numbered as Wireshark numbers them (``tcp.stream``), and which one
``rawtui replay`` analyses.

:func:`conversations` reads a capture once (:func:`~rawtui.recording.capture.open_capture`, any link type
:mod:`rawtui.wire.link` reads) and returns a :class:`ConversationTable`: for each TCP connection, its two
endpoints (client first when the capture says which side is the client), frames, frame bytes and payload
bytes each way, its first and last frame's times, and what it looks like from its first payload bytes:
``HTTP`` (a request line, or a response status line), ``TLS`` (a ClientHello record, with its SNI) or
``other``. IPv4 and IPv6 connections alike (an IPv6 one's extension headers walked as the stack walks them).

Numbering: a stream is new at the first frame of an address/port pair (either direction), and again when
a SYN without ACK arrives on a known pair with another initial sequence number than that direction's
first one (a reused port: Wireshark's rule, ``packet-tcp.c``).

:meth:`ConversationTable.pick` chooses: ``--stream N`` by number, else the largest HTTP or HTTPS download
(how far the server's data reached in sequence space, resends counted once; the first on a tie), else
the largest TCP flow of any kind.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

from rawtui.errors import UsageError
from rawtui.recording.capture import Capture, open_capture
from rawtui.recording.observe import CapturedFlow, endpoint_text
from rawtui.stack.events import Medium
from rawtui.wire.arp import OP_REPLY, parse_arp
from rawtui.wire.errors import WireError
from rawtui.wire.icmpv6 import NeighborAdvert, parse_icmpv6
from rawtui.wire.ipv4 import PROTO_TCP
from rawtui.wire.ipv6 import NH_ICMPV6, parse_ipv6
from rawtui.wire.link import LINKTYPE_NAMES, NetProto, UnsupportedLinkType, decapsulate
from rawtui.wire.tcp import ACK, FIN, RST, SYN, TcpSegment, parse_tcp
from rawtui.wire.tls import HS_CLIENT_HELLO, HandshakeReader, RecordReader, looks_like_tls, parse_client_hello

__all__ = ["Conversation", "ConversationTable", "conversations", "find_flow", "format_table"]

_REQUEST = re.compile(rb"[A-Z]{3,10} \S+ HTTP/1\.[019]\r?\n")
_HEAD = 4096  # the first bytes of each side's payload kept for the classification
_Endpoint = tuple[bytes, int]


@dataclass(slots=True)
class Conversation:
    """One TCP connection of a capture. ``client`` / ``server`` are the SYN's sender and receiver (else a
    guess, see :meth:`ConversationTable._orient`); ``up`` is client-to-server, ``down`` the other way."""

    index: int  # Wireshark's tcp.stream
    client: _Endpoint
    server: _Endpoint
    ipv6: bool
    first_frame: int
    first_ts: float
    last_ts: float
    syn_seq: dict[_Endpoint, int] = field(default_factory=dict)  # the first seq each side sent (SYN or not)
    frames: dict[_Endpoint, int] = field(default_factory=dict)  # by sender
    frame_bytes: dict[_Endpoint, int] = field(default_factory=dict)
    payload: dict[_Endpoint, int] = field(default_factory=dict)  # TCP payload bytes, resends included
    reach: dict[_Endpoint, int] = field(default_factory=dict)  # the highest seq + len, from the first seq
    head: dict[_Endpoint, bytes] = field(default_factory=dict)  # each sender's first payload bytes
    syn_from: _Endpoint | None = None  # who sent the (first) SYN without ACK
    synack_from: _Endpoint | None = None
    syn: TcpSegment | None = None
    client_mac: bytes = b""
    hop_mac: bytes = b""
    server_ttl: int = 0
    oriented: bool = False  # client/server known from the handshake
    fin_from: set[_Endpoint] = field(default_factory=set)  # the sides that sent a FIN
    reset: bool = False  # a RST was seen
    medium: Medium = Medium.ETHERNET  # IP: its frames carry no link-layer addresses (raw IP, a tun's SLL2)

    @property
    def ended(self) -> bool:
        """Both sides sent their FIN, or a RST ended it."""
        return self.reset or len(self.fin_from) == 2

    def _get(self, d: dict[_Endpoint, int], who: _Endpoint) -> int:
        return d.get(who, 0)

    @property
    def frames_up(self) -> int:
        return self._get(self.frames, self.client)

    @property
    def frames_down(self) -> int:
        return self._get(self.frames, self.server)

    @property
    def bytes_up(self) -> int:
        return self._get(self.payload, self.client)

    @property
    def bytes_down(self) -> int:
        return self._get(self.payload, self.server)

    @property
    def data_down(self) -> int:
        """How far the server's data reached (sequence space, resends counted once): what "largest" means."""
        return self._get(self.reach, self.server)

    @property
    def duration(self) -> float:
        return self.last_ts - self.first_ts

    @property
    def request(self) -> bytes:
        return self.head.get(self.client, b"")

    @property
    def kind(self) -> str:
        up, down = self.request, self.head.get(self.server, b"")
        if _REQUEST.match(up) or down.startswith((b"HTTP/1.0 ", b"HTTP/1.1 ")):
            return "HTTP"
        if looks_like_tls(up):
            return "TLS"
        return "other"

    @property
    def what(self) -> str:
        """The kind and its detail: the request line, the SNI."""
        kind = self.kind
        detail = ""
        if kind == "HTTP" and _REQUEST.match(self.request):
            detail = self.request.split(b"\r\n", 1)[0].decode("latin-1")
            detail = detail.rsplit(" ", 1)[0]  # "GET /big.bin"
        elif kind == "TLS":
            name = _sni(self.request)
            detail = f"SNI {name}" if name else "no SNI"
        return f"{kind} ({detail})" if detail else kind

    def endpoint_str(self, who: _Endpoint) -> str:
        return endpoint_text(*who)

    @property
    def name(self) -> str:
        return f"{self.endpoint_str(self.client)} -> {self.endpoint_str(self.server)}"


def _sni(data: bytes) -> str | None:
    try:
        for rec in RecordReader().feed(data):
            for mtype, body in HandshakeReader().feed(rec.fragment):
                if mtype == HS_CLIENT_HELLO:
                    return parse_client_hello(body).server_name
            break
    except WireError:
        return None
    return None


@dataclass(slots=True)
class ConversationTable:
    path: Path
    conversations: list[Conversation]
    arp_replies: dict[bytes, bytes]  # mac -> ip (ARP replies, and IPv6's neighbor advertisements)
    arp_answers: dict[bytes, bytes] = field(default_factory=dict)  # ip -> the first ip that answered its ARP / NS
    linktypes: set[int] = field(default_factory=set)  # every link type of the capture's frames
    truncated: tuple[int, str] | None = None  # (frame, why) when the capture breaks off

    def pick(self, stream: int | None) -> tuple[Conversation, str]:
        """The conversation to analyse and why it (a phrase for the header)."""
        convs = self.conversations
        if stream is not None:
            if not convs:
                raise UsageError(f"{self.path}: --stream {stream}: the capture holds no TCP connection")
            if not 0 <= stream < len(convs):
                raise UsageError(f"{self.path}: --stream {stream}: the capture's TCP streams are 0-{len(convs) - 1}"
                                 f" (rawtui replay {self.path} --list)")
            return convs[stream], "chosen with --stream"
        web = [c for c in convs if c.kind in ("HTTP", "TLS")]
        if web:
            best = max(web, key=lambda c: c.data_down)  # max() keeps the first of equals
            return best, "the largest HTTP/HTTPS download"
        if not convs:
            raise UsageError(f"{self.path}: {self.why_nothing()}")
        return max(convs, key=lambda c: c.data_down), "the largest TCP flow (none looks like HTTP or TLS)"

    def why_nothing(self) -> str:
        """Why a capture without TCP has nothing to analyse, most telling reason first."""
        unsupported = self.linktypes - set(LINKTYPE_NAMES)
        if unsupported and not self.linktypes & set(LINKTYPE_NAMES):
            return str(UnsupportedLinkType(min(unsupported)))
        if self.truncated is not None:
            frame, why = self.truncated
            return f"no TCP over IPv4 or IPv6 before the capture breaks off at frame {frame} ({why})"
        return "no TCP over IPv4 or IPv6 in this capture"

    def flow(self, conv: Conversation) -> CapturedFlow:
        """The :class:`CapturedFlow` the observer analyses, for one conversation."""
        (cip, cport), (sip, sport) = conv.client, conv.server
        flow = CapturedFlow(cip, cport, sip, sport, conv.client_mac, conv.hop_mac,
                            conv.syn if conv.oriented else None, conv.server_ttl, conv.bytes_down,
                            request=conv.request, medium=conv.medium)
        # the next hop: who has the MAC the client's frames went to (its ARP reply or neighbor advertisement);
        # a cooked capture has no destination MAC: then whoever answered the client's ARP request / NS
        gw = self.arp_replies.get(conv.hop_mac) if conv.hop_mac else self.arp_answers.get(cip)
        if gw is not None:
            flow.gateway_ip = gw
        return flow


def _tcp_of(linktype: int, data: bytes) -> tuple[bool, bytes, bytes, memoryview, int, int] | None:
    """(ipv6, src, dst, tcp header+payload, payload length, ttl) of a TCP frame, else None."""
    l3 = decapsulate(linktype, data)
    if l3 is None:
        return None
    buf = memoryview(data)[l3.offset:]
    if l3.proto is NetProto.IPV4:
        if len(buf) < 20 or buf[0] >> 4 != 4 or buf[9] != PROTO_TCP:
            return None
        ihl = (buf[0] & 0x0F) * 4
        frag = struct.unpack_from("!H", buf, 6)[0] & 0x1FFF
        total = struct.unpack_from("!H", buf, 2)[0]
        if ihl < 20 or frag or len(buf) < ihl + 20:
            return None
        tcp = buf[ihl:total] if total >= ihl + 20 else buf[ihl:]
        return False, bytes(buf[12:16]), bytes(buf[16:20]), tcp, max(0, total - ihl), buf[8]
    if l3.proto is NetProto.IPV6:
        try:
            ip6, tcp6 = parse_ipv6(buf)  # extension headers walked as the stack walks them
        except WireError:
            return None
        if ip6.proto != PROTO_TCP or ip6.is_fragment or len(tcp6) < 20:
            return None
        return True, ip6.src, ip6.dst, tcp6, len(tcp6), ip6.hop_limit
    return None


def conversations(source: str | Path | Capture) -> ConversationTable:
    """Every TCP connection of the capture, numbered as Wireshark's ``tcp.stream`` (see the module)."""
    capture = source if isinstance(source, Capture) else open_capture(source)
    convs: list[Conversation] = []
    current: dict[tuple[_Endpoint, _Endpoint], Conversation] = {}  # by (lower endpoint, higher endpoint)
    arp: dict[bytes, bytes] = {}
    answers: dict[bytes, bytes] = {}
    for frame in capture:
        if frame.linktype not in LINKTYPE_NAMES:
            continue
        data = frame.data
        got = _tcp_of(frame.linktype, data)
        if got is None:
            l3 = decapsulate(frame.linktype, data)
            if l3 is not None and l3.proto is NetProto.ARP:
                try:
                    pkt = parse_arp(memoryview(data)[l3.offset:])
                    if pkt.op == OP_REPLY:
                        arp.setdefault(pkt.sender_mac, pkt.sender_ip)
                        answers.setdefault(pkt.target_ip, pkt.sender_ip)
                except WireError:
                    pass
            elif l3 is not None and l3.proto is NetProto.IPV6:
                _neighbor_advert(memoryview(data)[l3.offset:], arp, answers)
            continue
        ipv6, src, dst, tcp, seg_len, ttl = got
        sport, dport, seq = struct.unpack_from("!HHI", tcp, 0)
        flags = tcp[13]
        thl = (tcp[12] >> 4) * 4
        a, b = (src, sport), (dst, dport)
        key = (a, b) if a <= b else (b, a)
        conv = current.get(key)
        syn_only = flags & (SYN | ACK) == SYN
        if conv is not None and syn_only and a in conv.syn_seq and conv.syn_seq[a] != seq:
            conv = None  # a new connection on a reused port pair
        if conv is None:
            conv = Conversation(len(convs), a, b, ipv6, frame.number, frame.ts, frame.ts)
            first = decapsulate(frame.linktype, data)
            if first is not None and first.src_mac is None and first.dst_mac is None:
                conv.medium = Medium.IP  # raw IP (LINKTYPE_RAW), a tun's cooked frames: no link-layer address
            convs.append(conv)
            current[key] = conv
        conv.last_ts = frame.ts
        conv.syn_seq.setdefault(a, seq)
        conv.frames[a] = conv.frames.get(a, 0) + 1
        conv.frame_bytes[a] = conv.frame_bytes.get(a, 0) + len(data)
        n = max(0, seg_len - thl)
        conv.payload[a] = conv.payload.get(a, 0) + n
        end = (seq - conv.syn_seq[a]) % (1 << 32) + n
        if n and end < 1 << 31 and end > conv.reach.get(a, 0):
            conv.reach[a] = end
        if n:
            have = conv.head.get(a, b"")
            if len(have) < _HEAD:
                conv.head[a] = have + bytes(tcp[thl:thl + n])[: _HEAD - len(have)]
        if flags & FIN:
            conv.fin_from.add(a)
        if flags & RST:
            conv.reset = True
        if syn_only and conv.syn_from is None:
            conv.syn_from = a
            try:
                conv.syn = parse_tcp(tcp, src, dst, verify=False)
            except WireError:
                pass
            l3 = decapsulate(frame.linktype, data)
            if l3 is not None:
                conv.client_mac, conv.hop_mac = l3.src_mac or b"", l3.dst_mac or b""
        elif flags & (SYN | ACK) == SYN | ACK and conv.synack_from is None:
            conv.synack_from = a
        if conv.syn_from is not None and a != conv.syn_from and not conv.server_ttl:
            conv.server_ttl = ttl  # the server's first frame: the route guess reads its TTL
    for conv in convs:
        _orient(conv)
    truncated = (capture.truncated_at, capture.problem or "") if capture.truncated_at is not None else None
    return ConversationTable(capture.path, convs, arp, answers, set(capture.linktypes), truncated)


def _neighbor_advert(ip: memoryview, macs: dict[bytes, bytes], answers: dict[bytes, bytes]) -> None:
    """An IPv6 neighbor advertisement with its target's MAC: the ``arp_replies`` / ``arp_answers`` of IPv6
    (a solicited one answers its destination's solicitation)."""
    try:
        ip6, body = parse_ipv6(ip)
        if ip6.proto != NH_ICMPV6 or ip6.is_fragment:
            return
        msg = parse_icmpv6(body, ip6.src, ip6.dst, verify=False)
    except WireError:
        return
    if isinstance(msg, NeighborAdvert) and msg.options.target_lladdr is not None:
        macs.setdefault(msg.options.target_lladdr, msg.target)
        if msg.solicited:
            answers.setdefault(ip6.dst, msg.target)


def find_flow(source: str | Path | Capture) -> CapturedFlow:
    """The connection :class:`~rawtui.recording.pcap.PcapReplay` analyses by default (the largest HTTP or
    HTTPS download, else the largest TCP flow: :meth:`ConversationTable.pick`); UsageError saying why when
    there is none."""
    table = conversations(source)
    conv, _ = table.pick(None)
    return table.flow(conv)


def _orient(conv: Conversation) -> None:
    """Which side is the client: the SYN's sender; else the SYN-ACK's receiver; else the side whose first
    bytes are an HTTP request or a ClientHello; else the side that sent less."""
    a, b = conv.client, conv.server  # as first seen
    client: _Endpoint | None = None
    if conv.syn_from is not None:
        client = conv.syn_from
        conv.oriented = True
    elif conv.synack_from is not None:
        client = b if conv.synack_from == a else a
    else:
        for side in (a, b):
            head = conv.head.get(side, b"")
            if _REQUEST.match(head) or looks_like_tls(head):
                client = side
                break
        if client is None:
            client = a if conv.payload.get(a, 0) <= conv.payload.get(b, 0) else b
    conv.client, conv.server = (client, b if client == a else a)


def format_table(table: ConversationTable, chosen: int | None = None) -> list[str]:
    """The lines of ``rawtui replay FILE --list``: one per stream, the chosen one marked."""
    w = max([44, *(len(c.name) for c in table.conversations)])  # IPv6 names are longer: never cut one
    lines = [(f"{'stream':>6}  {'client -> server':<{w}} {'frames':>13} {'bytes up':>12} {'bytes down':>14} "
             f"{'duration':>9}  what")]
    for c in table.conversations:
        mark = "*" if c.index == chosen else " "
        frames = f"{c.frames_up}/{c.frames_down}"
        lines.append(f"{mark}{c.index:>5}  {c.name:<{w}} {frames:>13} {c.bytes_up:>12,} {c.bytes_down:>14,} "
                     f"{c.duration:>8.3f}s  {c.what}")
    return lines
