"""Cross-check rawtui's IPv6, ICMPv6 and TCP-over-IPv6 against dpkt: frames rawtui builds parse in dpkt to
the same fields (dpkt recomputes the same checksums, with its own pseudo-header code), and frames dpkt
builds parse in rawtui with their checksums verified."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rawtui.wire.ethernet import ETH_P_IPV6, build_ethernet, parse_ethernet
from rawtui.wire.icmpv6 import (
    Echo,
    NdpOptions,
    NeighborAdvert,
    NeighborSolicit,
    PacketTooBig,
    build_icmpv6,
    parse_icmpv6,
)
from rawtui.wire.ipv6 import (
    NH_DSTOPTS,
    NH_FRAGMENT,
    NH_HOPOPTS,
    NH_ICMPV6,
    NH_ROUTING,
    NH_TCP,
    build_ipv6,
    extension,
    fragment_body,
    ip6_bytes,
    parse_ipv6,
    solicited_node,
)
from rawtui.wire.tcp import ACK, PSH, SYN, TcpOptions, TcpSegment, build_options, build_tcp, parse_tcp

dpkt = pytest.importorskip("dpkt")

SCALE = max(1, int(os.environ.get("WIRE_HYPOTHESIS_SCALE", "1")))
MAC_A, MAC_B = bytes.fromhex("020000000001"), bytes.fromhex("0200000000fe")
A, B = ip6_bytes("2001:db8::1"), ip6_bytes("2001:db8:77::2")
LL = ip6_bytes("fe80::1")
u32 = st.integers(0, 0xFFFFFFFF)


def _dpkt_ip6(frame: bytes) -> object:
    eth = dpkt.ethernet.Ethernet(frame)
    assert eth.type == ETH_P_IPV6
    assert isinstance(eth.data, dpkt.ip6.IP6)
    return eth.data


def _same_after_dpkt_recomputes(ip6: object, packet: bytes) -> None:
    ip6.data.sum = 0  # type: ignore[attr-defined]  # zero: dpkt fills it in from the pseudo-header
    assert bytes(ip6) == packet  # type: ignore[call-overload]


@settings(max_examples=100 * SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seq=u32, ack=u32, flags=st.sampled_from([SYN, ACK, ACK | PSH]), payload=st.binary(max_size=1440),
       ts=st.none() | st.tuples(u32, u32), hop=st.integers(1, 255), flow=st.integers(0, 0xFFFFF))
def test_tcp_over_ipv6_to_dpkt(seq: int, ack: int, flags: int, payload: bytes, ts: tuple[int, int] | None,
                               hop: int, flow: int) -> None:
    seg = TcpSegment(40000, 443, seq, ack, flags, 501, TcpOptions(mss=1440 if flags == SYN else None, ts=ts), payload)
    packet = build_ipv6(A, B, NH_TCP, build_tcp(seg, A, B), hop_limit=hop, flow_label=flow)
    ip6 = _dpkt_ip6(build_ethernet(MAC_B, MAC_A, ETH_P_IPV6, packet))
    assert (ip6.v, ip6.src, ip6.dst, ip6.nxt, ip6.hlim, ip6.flow, ip6.plen) == (  # type: ignore[attr-defined]
        6, A, B, NH_TCP, hop, flow, len(packet) - 40)
    tcp = ip6.data  # type: ignore[attr-defined]
    assert isinstance(tcp, dpkt.tcp.TCP)
    assert (tcp.sport, tcp.dport, tcp.seq, tcp.ack, tcp.flags, tcp.win) == (40000, 443, seq, ack, flags, 501)
    assert tcp.data == payload and tcp.opts == build_options(seg.options)
    _same_after_dpkt_recomputes(ip6, packet)


def test_extension_headers_to_dpkt() -> None:
    seg = build_tcp(TcpSegment(40000, 80, 1, 2, ACK, 100, payload=b"data"), A, B)
    exts = [extension(NH_HOPOPTS, bytes((1, 0))), extension(NH_DSTOPTS, bytes((0x1E, 3)) + b"abc"),
            extension(NH_ROUTING, bytes((4, 0)) + bytes(4)), (NH_FRAGMENT, fragment_body(0, False, 99))]
    packet = build_ipv6(A, B, NH_TCP, seg, extensions=exts)
    ip6 = _dpkt_ip6(build_ethernet(MAC_B, MAC_A, ETH_P_IPV6, packet))
    kinds = [type(h).__name__ for h in ip6.all_extension_headers]  # type: ignore[attr-defined]
    assert kinds == ["IP6HopOptsHeader", "IP6DstOptsHeader", "IP6RoutingHeader", "IP6FragmentHeader"]
    assert ip6.p == NH_TCP and isinstance(ip6.data, dpkt.tcp.TCP)  # type: ignore[attr-defined]
    assert ip6.data.data == b"data"  # type: ignore[attr-defined]
    frag = ip6.all_extension_headers[-1]  # type: ignore[attr-defined]
    assert (frag.frag_off, frag.m_flag, frag.id) == (0, 0, 99)
    ip, _ = parse_ipv6(packet)
    assert ip.header_length == 40 + sum(len(h) for h in ip6.all_extension_headers)  # type: ignore[attr-defined]


@pytest.mark.parametrize("msg", [
    NeighborSolicit(A, NdpOptions(source_lladdr=MAC_A)),
    NeighborAdvert(A, solicited=True, override=True, options=NdpOptions(target_lladdr=MAC_A)),
    Echo(7, 9, b"hello"),
    PacketTooBig(1280, build_ipv6(B, A, NH_TCP, build_tcp(TcpSegment(80, 40000, 1, 2, ACK, 9, payload=bytes(60)),
                                                          B, A))),
], ids=lambda m: type(m).__name__)
def test_icmpv6_to_dpkt(msg: object) -> None:
    dst = solicited_node(A) if isinstance(msg, NeighborSolicit) else B
    body = build_icmpv6(msg, LL, dst)  # type: ignore[arg-type]
    packet = build_ipv6(LL, dst, NH_ICMPV6, body, hop_limit=255)
    ip6 = _dpkt_ip6(build_ethernet(MAC_B, MAC_A, ETH_P_IPV6, packet))
    icmp = ip6.data  # type: ignore[attr-defined]
    assert isinstance(icmp, dpkt.icmp6.ICMP6)
    assert (icmp.type, icmp.code) == (body[0], body[1])
    if isinstance(msg, Echo):
        assert (icmp.data.id, icmp.data.seq, icmp.data.data) == (7, 9, b"hello")
    if isinstance(msg, PacketTooBig):
        assert icmp.data.mtu == 1280
    _same_after_dpkt_recomputes(ip6, packet)


# -- dpkt builds, rawtui parses ---------------------------------------------------------------------


@settings(max_examples=100 * SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seq=u32, ack=u32, payload=st.binary(max_size=1440), hop=st.integers(0, 255))
def test_dpkt_tcp_over_ipv6_to_rawtui(seq: int, ack: int, payload: bytes, hop: int) -> None:
    tcp = dpkt.tcp.TCP(sport=80, dport=40000, seq=seq, ack=ack, flags=ACK, win=1000, data=payload)
    ip6 = dpkt.ip6.IP6(src=B, dst=A, nxt=NH_TCP, hlim=hop, plen=len(bytes(tcp)), data=tcp)
    frame = bytes(dpkt.ethernet.Ethernet(src=MAC_B, dst=MAC_A, type=ETH_P_IPV6, data=ip6))
    eth = parse_ethernet(frame)
    assert eth.ethertype == ETH_P_IPV6
    ip, data = parse_ipv6(eth.payload)
    assert (ip.src, ip.dst, ip.proto, ip.hop_limit) == (B, A, NH_TCP, hop)
    seg = parse_tcp(data, ip.src, ip.dst, verify=True)
    assert (seg.seq, seg.ack, bytes(seg.payload)) == (seq, ack, payload)


def test_dpkt_icmpv6_to_rawtui() -> None:
    echo = dpkt.icmp6.ICMP6(type=128, code=0, data=dpkt.icmp6.ICMP6.Echo(id=3, seq=4, data=b"x" * 33))
    ip6 = dpkt.ip6.IP6(src=LL, dst=B, nxt=NH_ICMPV6, hlim=64, plen=len(bytes(echo)), data=echo)
    ip, data = parse_ipv6(bytes(ip6))
    assert parse_icmpv6(data, ip.src, ip.dst, verify=True) == Echo(3, 4, b"x" * 33)
    big = dpkt.icmp6.ICMP6(type=2, code=0, data=dpkt.icmp6.ICMP6.TooBig(mtu=1400, data=b"q" * 60))
    ip6 = dpkt.ip6.IP6(src=LL, dst=A, nxt=NH_ICMPV6, hlim=64, plen=len(bytes(big)), data=big)
    ip, data = parse_ipv6(bytes(ip6))
    assert parse_icmpv6(data, ip.src, ip.dst) == PacketTooBig(1400, b"q" * 60)
