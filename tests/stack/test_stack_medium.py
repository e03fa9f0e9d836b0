"""A Host on a point-to-point link (Medium.IP: tun, WireGuard, PPP), driven packet by packet with a fake
clock: no resolver runs (the SYN is the first packet out, a bare IP packet), the connection's packets are
read on the fast path and the general path at offset 0, for IPv4 and IPv6, and what a point-to-point link
cannot carry for us (ARP, neighbor discovery, other IP versions, nothing at all) is counted, never raised."""

from __future__ import annotations

import random

import pytest

from rawtui.events import Malformed, PathMtu
from rawtui.stack.events import Medium
from rawtui.stack.host import CSUM_KERNEL_VALID, Host
from rawtui.stack.p2p import DESCRIPTION, PointToPoint
from rawtui.wire.arp import OP_REPLY, ArpPacket, build_arp
from rawtui.wire.checksum import internet_checksum
from rawtui.wire.icmp import PROTO_ICMP, build_icmp, fragmentation_needed
from rawtui.wire.icmpv6 import NdpOptions, NeighborSolicit, build_icmpv6
from rawtui.wire.ipv4 import PROTO_TCP, build_ipv4, parse_ipv4
from rawtui.wire.ipv6 import (
    NH_HOPOPTS,
    NH_ICMPV6,
    NH_TCP,
    build_ipv6,
    extension,
    ip6_bytes,
    parse_ipv6,
    solicited_node,
)
from rawtui.wire.tcp import ACK, PSH, SYN, TcpOptions, TcpSegment, build_tcp, parse_tcp

LPORT, RPORT, ISN, PISN = 40000, 8080, 1000, 5000
STREAM = random.Random(14).randbytes(100_000)
FAMILIES = {
    4: (bytes([10, 78, 0, 2]), bytes([10, 78, 0, 1]), bytes([10, 77, 2, 2])),
    6: (ip6_bytes("fd00:78::2"), ip6_bytes("fd00:78::1"), ip6_bytes("2001:db8:2::2")),
}


class TunRig:
    """Our Host on tun0 and the far server's packets, built as the peer's kernel would send them."""

    def __init__(self, family: int) -> None:
        self.family = family
        self.lip, self.peer, self.srv = FAMILIES[family]
        self.host = Host(local_mac=b"", local_ip=self.lip, next_hop_ip=self.peer, remote_ip=self.srv,
                         remote_port=RPORT, local_port=LPORT, isn=ISN, iface="tun0", medium=Medium.IP, mss=1380)
        self.now = 0.0
        self.got = bytearray()

    def ip(self, proto: int, payload: bytes, src: bytes | None = None, **kw: object) -> bytes:
        src = self.srv if src is None else src
        if self.family == 4:
            return build_ipv4(src, self.lip, proto, payload, **kw)  # type: ignore[arg-type]
        return build_ipv6(src, self.lip, proto, payload, **kw)  # type: ignore[arg-type]

    def segment(self, off: int = 0, payload: bytes = b"", flags: int = ACK) -> bytes:
        seg = TcpSegment(RPORT, LPORT, (PISN + 1 + off) & 0xFFFFFFFF, self.host.tcp.snd_nxt, flags, 0xFFFF,
                         TcpOptions(ts=(100, 0)), payload)
        return build_tcp(seg, self.srv, self.lip)

    def tcp_of(self, packet: bytes) -> TcpSegment:
        if self.family == 4:
            ip4, data = parse_ipv4(packet)
            src, dst = ip4.src, ip4.dst
        else:
            ip6, data = parse_ipv6(packet)
            src, dst = ip6.src, ip6.dst
        assert (src, dst) == (self.lip, self.srv)
        return parse_tcp(data, src, dst, verify=True)

    def feed(self, packet: bytes, csum: int = 0) -> tuple[list[bytes], list[object]]:
        self.now += 0.001
        self.host.on_frame(packet, self.now, csum)
        self.got += b"".join(self.host.read())
        return self.host.take_frames(), self.host.take_events()

    def connect(self) -> None:
        self.host.start(self.now)
        (syn_packet,) = self.host.take_frames()  # no ARP, no neighbor solicitation: the SYN at once
        assert syn_packet[0] >> 4 == self.family
        syn = self.tcp_of(syn_packet)
        assert syn.flags == SYN and syn.options.mss == 1380  # from the tun's MTU (1420), as the session sets it
        synack = TcpSegment(RPORT, LPORT, PISN, ISN + 1, SYN | ACK, 0xFFFF,
                            TcpOptions(mss=1380, wscale=7, sack_permitted=True, ts=(100, syn.options.ts[0])))
        self.feed(self.ip(PROTO_TCP, build_tcp(synack, self.srv, self.lip)))
        assert self.host.tcp.state.value == "ESTABLISHED"


def test_the_point_to_point_resolver_is_done_at_once() -> None:
    p2p = PointToPoint(bytes(4), bytes(4))
    p2p.start(0.0)
    assert p2p.done and p2p.mac == b"" and not p2p.failed and p2p.next_deadline is None
    assert not p2p.has_output and DESCRIPTION == "point-to-point: no link-layer address"


@pytest.mark.parametrize("family", [4, 6])
def test_connects_without_resolution_and_receives_on_the_fast_path(family: int) -> None:
    rig = TunRig(family)
    rig.connect()
    sent = 0
    for _ in range(30):
        rig.feed(rig.ip(PROTO_TCP, rig.segment(sent, STREAM[sent:sent + 1368], ACK | PSH)))
        sent += 1368
    assert bytes(rig.got) == STREAM[:sent]
    acks = rig.host.take_frames()
    assert all(rig.tcp_of(a).flags == ACK for a in acks)
    c = rig.host.counters
    assert (c["malformed"], c["not_ours"], c["csum_drop_tcp"], c["csum_drop_ipv4"]) == (0, 0, 0, 0)


@pytest.mark.parametrize("family", [4, 6])
def test_the_general_path_reads_the_same_stream(family: int) -> None:
    rig = TunRig(family)
    rig.connect()
    seg = rig.segment(0, STREAM[:1000], ACK | PSH)
    if family == 4:  # IP options: not the fast path's shape
        packet = bytearray(build_ipv4(rig.srv, rig.lip, PROTO_TCP, seg))
        head = bytearray(packet[:20]) + bytes([1, 1, 1, 0])  # NOP NOP NOP EOL
        head[0] = 0x46
        head[2:4] = (len(packet) + 4).to_bytes(2, "big")
        head[10:12] = b"\0\0"
        head[10:12] = internet_checksum(bytes(head)).to_bytes(2, "big")
        slow = bytes(head) + bytes(packet[20:])
    else:  # an extension header
        slow = build_ipv6(rig.srv, rig.lip, NH_TCP, seg, extensions=[extension(NH_HOPOPTS, bytes((1, 0)))])
    rig.feed(slow)
    rig.feed(rig.ip(PROTO_TCP, rig.segment(1000, STREAM[1000:2000], ACK | PSH)), csum=CSUM_KERNEL_VALID)
    assert bytes(rig.got) == STREAM[:2000] and rig.host.counters["csum_kernel_verified"] == 1


@pytest.mark.parametrize("family", [4, 6])
def test_what_a_point_to_point_link_cannot_carry_for_us_is_counted(family: int) -> None:
    rig = TunRig(family)
    rig.connect()
    arp = build_arp(ArpPacket(OP_REPLY, bytes(6), rig.peer, bytes(6), rig.lip)) if family == 4 else b""
    if arp:
        rig.feed(arp)  # an ARP packet's first byte (hardware type 0x0001): version 0, not IP
    _, events = rig.feed(b"")
    assert [e.reason for e in events if isinstance(e, Malformed)] == ["empty packet on a point-to-point link"]
    rig.feed(bytes([0x50]) + bytes(40))  # IP version 5
    rig.feed(rig.ip(PROTO_TCP, rig.segment(0, b"x", ACK | PSH), src=rig.peer))  # another source
    if family == 6:  # neighbor discovery: nothing to answer on a tun
        ns = NeighborSolicit(rig.lip, NdpOptions())
        frames, _ = rig.feed(build_ipv6(rig.peer, solicited_node(rig.lip), NH_ICMPV6,
                                        build_icmpv6(ns, rig.peer, solicited_node(rig.lip)), hop_limit=255))
        assert frames == []
    c = rig.host.counters
    assert (c["malformed"], c["not_ours"]) == (1, 3)
    assert rig.got == b""


def test_fragmentation_needed_from_the_tunnel_lowers_the_mss() -> None:
    rig = TunRig(4)
    rig.connect()
    rig.host.send(bytes(3000), rig.now)
    first = rig.host.take_frames()[0]
    icmp = build_icmp(fragmentation_needed(1280, first[:28]))
    _, events = rig.feed(build_ipv4(rig.peer, rig.lip, PROTO_ICMP, icmp))
    (pmtu,) = [e for e in events if isinstance(e, PathMtu)]
    assert (pmtu.mtu, rig.host.tcp.mss) == (1280, 1240)
