"""Cross-check rawtui.wire against dpkt, a test-only reference implementation: frames built by rawtui parse
in dpkt to the same fields (and dpkt recomputes the same checksums), and frames built by dpkt parse in
rawtui with their checksums verified."""

from __future__ import annotations

import os
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rawtui.wire.arp import OP_REPLY, OP_REQUEST, ArpPacket, build_arp, parse_arp
from rawtui.wire.ethernet import ETH_P_ARP, ETH_P_IP, build_ethernet, parse_ethernet
from rawtui.wire.ipv4 import FLAG_DF, PROTO_TCP, build_ipv4, parse_ipv4
from rawtui.wire.tcp import (
    ACK,
    FIN,
    NO_OPTIONS,
    OPT_MSS,
    OPT_NOP,
    OPT_SACK,
    OPT_SACK_OK,
    OPT_TS,
    OPT_WSCALE,
    PSH,
    SYN,
    TcpOptions,
    TcpSegment,
    build_options,
    build_tcp,
    parse_tcp,
)

dpkt = pytest.importorskip("dpkt")

# Example counts keep the whole tests/wire/ run under 15 s; WIRE_HYPOTHESIS_SCALE=10 digs deeper.
SCALE = max(1, int(os.environ.get("WIRE_HYPOTHESIS_SCALE", "1")))
MAC_A, MAC_B = bytes.fromhex("020000000001"), bytes.fromhex("0200000000fe")
IP_A, IP_B = bytes([192, 0, 2, 1]), bytes([198, 51, 100, 7])

u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
addr = st.binary(min_size=4, max_size=4)
options = st.builds(
    TcpOptions,
    mss=st.none() | u16,
    wscale=st.none() | st.integers(0, 14),
    sack_permitted=st.booleans(),
    sack=st.lists(st.tuples(u32, u32), max_size=4).map(tuple),
    ts=st.none() | st.tuples(u32, u32),
)


def _rawtui_frame(seg: TcpSegment, src: bytes, dst: bytes, *, ident: int = 0x4242, ttl: int = 64,
                  tos: int = 0, df: bool = True) -> bytes:
    packet = build_ipv4(src, dst, PROTO_TCP, build_tcp(seg, src, dst), ident=ident, ttl=ttl, tos=tos,
                        dont_fragment=df)
    return build_ethernet(MAC_B, MAC_A, ETH_P_IP, packet)


def _dpkt_options(o: TcpOptions) -> dict[int, object]:
    """Decode options with dpkt's own parser into {kind: value}."""
    out: dict[int, object] = {}
    for item in dpkt.tcp.parse_opts(build_options(o)):
        assert item is not None, "dpkt could not parse rawtui's options"
        kind, data = item
        if kind == OPT_NOP:
            continue
        if kind == OPT_MSS:
            out[kind] = struct.unpack("!H", data)[0]
        elif kind == OPT_WSCALE:
            out[kind] = data[0]
        elif kind == OPT_SACK_OK:
            out[kind] = data
        elif kind == OPT_SACK:
            out[kind] = tuple(struct.unpack_from("!II", data, i) for i in range(0, len(data), 8))
        elif kind == OPT_TS:
            out[kind] = struct.unpack("!II", data)
        else:
            out[kind] = data
    return out


def _expected_options(o: TcpOptions) -> dict[int, object]:
    out: dict[int, object] = {}
    if o.mss is not None:
        out[OPT_MSS] = o.mss
    if o.wscale is not None:
        out[OPT_WSCALE] = o.wscale
    if o.sack_permitted:
        out[OPT_SACK_OK] = b""
    if o.sack:
        out[OPT_SACK] = o.sack
    if o.ts is not None:
        out[OPT_TS] = o.ts
    return out


def _options_fit(o: TcpOptions) -> bool:
    n = (4 if o.mss is not None else 0) + (4 if o.wscale is not None else 0)
    n += 12 if o.sack_permitted and o.ts is not None else 4 * o.sack_permitted + 12 * (o.ts is not None)
    n += 4 + 8 * len(o.sack) if o.sack else 0
    return n <= 40


def _check_against_dpkt(frame: bytes, seg: TcpSegment, src: bytes, dst: bytes) -> None:
    eth = dpkt.ethernet.Ethernet(frame)
    assert (eth.dst, eth.src, eth.type) == (MAC_B, MAC_A, ETH_P_IP)
    ip = eth.data
    assert isinstance(ip, dpkt.ip.IP)
    assert (ip.v, ip.hl, ip.p, ip.src, ip.dst) == (4, 5, PROTO_TCP, src, dst)
    tcp = ip.data
    assert isinstance(tcp, dpkt.tcp.TCP)
    assert (tcp.sport, tcp.dport) == (seg.src_port, seg.dst_port)
    assert (tcp.seq, tcp.ack) == (seg.seq, seg.ack)
    assert (tcp.flags, tcp.win, tcp.urp) == (seg.flags, seg.window, seg.urgent)
    assert tcp.data == bytes(seg.payload)
    assert tcp.opts == build_options(seg.options)
    assert _dpkt_options(seg.options) == _expected_options(seg.options)
    # dpkt recomputes both checksums (a zero sum means "fill me in") and gets the same bytes.
    packet = bytes(ip)
    ip.sum = 0
    tcp.sum = 0
    assert bytes(ip) == packet
    assert packet == frame[14 : 14 + len(packet)]


# -- rawtui builds, dpkt parses -----------------------------------------------------------------------


def test_syn_to_dpkt() -> None:
    seg = TcpSegment(49152, 80, 0x01020304, 0, SYN, 64240, TcpOptions(1460, 7, True, (), (1, 0)))
    frame = _rawtui_frame(seg, IP_A, IP_B)
    _check_against_dpkt(frame, seg, IP_A, IP_B)
    ip = dpkt.ethernet.Ethernet(frame).data
    assert (ip.id, ip.ttl, ip.tos, ip.df, ip.mf, ip.offset, ip.len) == (0x4242, 64, 0, 1, 0, 0, 60)


def test_data_with_sack_to_dpkt() -> None:
    seg = TcpSegment(80, 49152, 2**32 - 3, 77, PSH | ACK, 501,
                     TcpOptions(ts=(5, 6), sack=((100, 200), (300, 400), (2**32 - 1, 7))), b"x" * 1400)
    _check_against_dpkt(_rawtui_frame(seg, IP_B, IP_A, df=False, tos=0x10), seg, IP_B, IP_A)


def test_padded_frame_to_dpkt() -> None:
    seg = TcpSegment(1, 2, 3, 4, FIN | ACK, 5)
    frame = _rawtui_frame(seg, IP_A, IP_B)
    assert len(frame) == 60
    _check_against_dpkt(frame, seg, IP_A, IP_B)


def test_super_frame_to_dpkt() -> None:
    seg = TcpSegment(80, 49152, 1, 2, ACK, 501, NO_OPTIONS, bytes(i & 0xFF for i in range(0xFFFF - 40)))
    frame = _rawtui_frame(seg, IP_B, IP_A)
    _check_against_dpkt(frame, seg, IP_B, IP_A)


@settings(max_examples=100 * SCALE, deadline=None)
@given(
    sport=u16, dport=u16, seq=u32, ack=u32, flags=st.integers(0, 0xFF), win=u16, urg=u16, opts=options,
    payload=st.binary(max_size=300), src=addr, dst=addr, ident=u16, ttl=st.integers(0, 255),
    tos=st.integers(0, 255), df=st.booleans(),
)
def test_random_segments_to_dpkt(sport: int, dport: int, seq: int, ack: int, flags: int, win: int, urg: int,
                                 opts: TcpOptions, payload: bytes, src: bytes, dst: bytes, ident: int,
                                 ttl: int, tos: int, df: bool) -> None:
    if not _options_fit(opts):
        opts = TcpOptions(opts.mss, opts.wscale, opts.sack_permitted, opts.sack[:2], None)
    seg = TcpSegment(sport, dport, seq, ack, flags, win, opts, payload, urg)
    frame = _rawtui_frame(seg, src, dst, ident=ident, ttl=ttl, tos=tos, df=df)
    _check_against_dpkt(frame, seg, src, dst)
    ip = dpkt.ethernet.Ethernet(frame).data
    assert (ip.id, ip.ttl, ip.tos, ip.df, ip.len) == (ident, ttl, tos, int(df), 40 + len(build_options(opts))
                                                      + len(payload))


# -- dpkt builds, rawtui parses -----------------------------------------------------------------------


def _dpkt_frame(*, sport: int, dport: int, seq: int, ack: int, flags: int, win: int, opts: bytes,
                payload: bytes, src: bytes, dst: bytes, ident: int = 1, ttl: int = 64, tos: int = 0,
                frag: int = 0, ip_opts: bytes = b"", urp: int = 0) -> bytes:
    tcp = dpkt.tcp.TCP(sport=sport, dport=dport, seq=seq, ack=ack, flags=flags, win=win, urp=urp, sum=0,
                       opts=opts, data=payload)
    tcp.off = 5 + len(opts) // 4
    ip = dpkt.ip.IP(src=src, dst=dst, p=PROTO_TCP, ttl=ttl, id=ident, tos=tos, sum=0, opts=ip_opts, data=tcp)
    ip.hl = 5 + len(ip_opts) // 4
    ip._flags_offset = frag
    eth = dpkt.ethernet.Ethernet(src=MAC_A, dst=MAC_B, type=ETH_P_IP, data=ip)
    return bytes(eth)


def test_dpkt_syn_to_rawtui() -> None:
    raw_opts = bytes.fromhex("020405b4 0402 080a0000000100000000 01 030307")
    frame = _dpkt_frame(sport=49152, dport=80, seq=1, ack=0, flags=dpkt.tcp.TH_SYN, win=64240, opts=raw_opts,
                        payload=b"", src=IP_A, dst=IP_B, frag=0x4000)
    f = parse_ethernet(frame)
    assert (f.dst, f.src, f.ethertype, f.vlan) == (MAC_B, MAC_A, ETH_P_IP, None)
    ip, tcp_bytes = parse_ipv4(f.payload)
    assert (ip.src, ip.dst, ip.proto, ip.flags, ip.total_length) == (IP_A, IP_B, PROTO_TCP, FLAG_DF, 60)
    seg = parse_tcp(tcp_bytes, ip.src, ip.dst)
    assert (seg.src_port, seg.dst_port, seg.seq, seg.ack, seg.flags, seg.window) == (49152, 80, 1, 0, SYN, 64240)
    assert seg.options == TcpOptions(1460, 7, True, (), (1, 0))


def test_dpkt_ip_options_and_fragment_to_rawtui() -> None:
    frame = _dpkt_frame(sport=1, dport=2, seq=3, ack=4, flags=dpkt.tcp.TH_ACK, win=5, opts=b"", payload=b"frag",
                        src=IP_A, dst=IP_B, ip_opts=bytes.fromhex("94040000"), frag=0x2000 | 3)
    ip, payload = parse_ipv4(parse_ethernet(frame).payload)
    assert ip.header_length == 24
    assert ip.options == bytes.fromhex("94040000")
    assert ip.is_fragment
    assert ip.frag_offset == 24
    assert bytes(payload[20:]) == b"frag"


def test_dpkt_vlan_frames_to_rawtui() -> None:
    ip = dpkt.ip.IP(src=IP_A, dst=IP_B, p=PROTO_TCP, sum=0,
                    data=dpkt.tcp.TCP(sport=7, dport=8, flags=dpkt.tcp.TH_ACK, sum=0, data=b"tagged"))
    one = dpkt.ethernet.Ethernet(src=MAC_A, dst=MAC_B, data=ip,
                                 vlan_tags=[dpkt.ethernet.VLANtag8021Q(id=100, pri=5)])
    two = dpkt.ethernet.Ethernet(src=MAC_A, dst=MAC_B, data=ip,
                                 vlan_tags=[dpkt.ethernet.VLANtag8021Q(id=200), dpkt.ethernet.VLANtag8021Q(id=100)])
    for eth, vlan in ((one, 100), (two, 200)):
        f = parse_ethernet(bytes(eth))
        assert (f.vlan, f.ethertype) == (vlan, ETH_P_IP)
        hdr, tcp_bytes = parse_ipv4(f.payload)
        assert bytes(parse_tcp(tcp_bytes, hdr.src, hdr.dst).payload) == b"tagged"


@settings(max_examples=100 * SCALE, deadline=None)
@given(
    sport=u16, dport=u16, seq=u32, ack=u32, flags=st.integers(0, 0xFF), win=u16, urp=u16, opts=options,
    payload=st.binary(max_size=300), src=addr, dst=addr, ident=u16, ttl=st.integers(0, 255),
    tos=st.integers(0, 255),
)
def test_random_dpkt_segments_to_rawtui(sport: int, dport: int, seq: int, ack: int, flags: int, win: int,
                                        urp: int, opts: TcpOptions, payload: bytes, src: bytes, dst: bytes,
                                        ident: int, ttl: int, tos: int) -> None:
    if not _options_fit(opts):
        opts = TcpOptions(opts.mss, opts.wscale, opts.sack_permitted, opts.sack[:2], None)
    raw_opts = build_options(opts)
    frame = _dpkt_frame(sport=sport, dport=dport, seq=seq, ack=ack, flags=flags, win=win, opts=raw_opts,
                        payload=payload, src=src, dst=dst, ident=ident, ttl=ttl, tos=tos, urp=urp)
    f = parse_ethernet(frame)
    ip, tcp_bytes = parse_ipv4(f.payload)  # verifies dpkt's IPv4 checksum
    assert (ip.src, ip.dst, ip.ident, ip.ttl, ip.tos) == (src, dst, ident, ttl, tos)
    seg = parse_tcp(tcp_bytes, ip.src, ip.dst)  # verifies dpkt's TCP checksum
    assert (seg.src_port, seg.dst_port, seg.seq, seg.ack) == (sport, dport, seq, ack)
    assert (seg.flags, seg.window, seg.urgent) == (flags, win, urp)
    assert seg.options == opts
    assert bytes(seg.payload) == payload
    d = dpkt.ethernet.Ethernet(frame).data
    assert (ip.checksum, seg.checksum) == (d.sum, d.data.sum)


# -- ARP ----------------------------------------------------------------------------------------------


def test_arp_against_dpkt() -> None:
    pkt = ArpPacket(OP_REQUEST, MAC_A, IP_A, bytes(6), IP_B)
    d = dpkt.arp.ARP(build_arp(pkt))
    assert (d.hrd, d.pro, d.hln, d.pln, d.op) == (1, ETH_P_IP, 6, 4, OP_REQUEST)
    assert (d.sha, d.spa, d.tha, d.tpa) == (MAC_A, IP_A, bytes(6), IP_B)
    reply = dpkt.arp.ARP(op=dpkt.arp.ARP_OP_REPLY, sha=MAC_B, spa=IP_B, tha=MAC_A, tpa=IP_A)
    frame = bytes(dpkt.ethernet.Ethernet(src=MAC_B, dst=MAC_A, type=ETH_P_ARP, data=reply))
    f = parse_ethernet(frame)
    assert f.ethertype == ETH_P_ARP
    assert parse_arp(f.payload) == ArpPacket(OP_REPLY, MAC_B, IP_B, MAC_A, IP_A)
