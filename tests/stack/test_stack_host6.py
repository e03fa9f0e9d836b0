"""A Host for IPv6 (Ethernet + IPv6 + neighbor discovery + TCP), driven frame by frame with a fake clock:
the solicitation before the SYN, the connection's frames on the fast path and the general path (extension
headers), fragments and foreign frames counted, the router's solicitation answered, Packet Too Big and
IPv4's fragmentation-needed lowering the MSS, the no-answer error; then random and mutated IPv6 frames
through the parsers and a connected Host: nothing but the typed wire error may come out of a parser, and
the Host never raises."""

from __future__ import annotations

import os
import random

import pytest

from rawtui.events import ChecksumDrop, Malformed, NdpAnswered, NdpSolicit, PathMtu
from rawtui.stack.host import CSUM_KERNEL_VALID, Host
from rawtui.wire.arp import OP_REPLY, ArpPacket, build_arp
from rawtui.wire.errors import WireError
from rawtui.wire.ethernet import ETH_P_ARP, ETH_P_IP, ETH_P_IPV6, build_ethernet, parse_ethernet
from rawtui.wire.icmp import build_icmp, fragmentation_needed
from rawtui.wire.icmpv6 import (
    Echo,
    Icmpv6Message,
    NdpOptions,
    NeighborAdvert,
    NeighborSolicit,
    PacketTooBig,
    build_icmpv6,
    parse_icmpv6,
)
from rawtui.wire.ipv4 import PROTO_TCP, build_ipv4
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
    link_local_from_mac,
    multicast_mac,
    parse_ipv6,
    solicited_node,
)
from rawtui.wire.tcp import ACK, PSH, SYN, TcpOptions, TcpSegment, build_tcp, parse_tcp

MAC = bytes.fromhex("020000000001")
GW_MAC = bytes.fromhex("020000000099")
LIP = ip6_bytes("2001:db8:1::2")
LL = link_local_from_mac(MAC)
GW = ip6_bytes("fe80::1")
SRV = ip6_bytes("2001:db8:2::2")
LPORT, RPORT, ISN, PISN = 40000, 8080, 1000, 5000
STREAM = random.Random(6).randbytes(200_000)
# 10^5 frames for the fuzz (the number); RAWTUI_FUZZ6_FRAMES to change it
FUZZ_FRAMES = int(os.environ.get("RAWTUI_FUZZ6_FRAMES", "100000"))


class Rig6:
    def __init__(self, **kw: object) -> None:
        self.host = Host(local_mac=MAC, local_ip=LIP, next_hop_ip=GW, remote_ip=SRV, remote_port=RPORT,
                         local_port=LPORT, isn=ISN, iface="eth0", next_hop_role="gateway", local_addresses=(LL,),
                         **kw)
        self.now = 0.0
        self.got = bytearray()

    def icmp(self, msg: Icmpv6Message, src: bytes = GW, dst: bytes = LIP, hop: int = 255) -> bytes:
        return build_ethernet(MAC, GW_MAC, ETH_P_IPV6, build_ipv6(src, dst, NH_ICMPV6, build_icmpv6(msg, src, dst),
                                                                  hop_limit=hop))

    def segment(self, off: int = 0, payload: bytes = b"", flags: int = ACK, **over: object) -> TcpSegment:
        kw: dict[str, object] = {"src_port": RPORT, "dst_port": LPORT, "seq": (PISN + 1 + off) & 0xFFFFFFFF,
                                 "ack": self.host.tcp.snd_nxt, "flags": flags, "window": 0xFFFF,
                                 "options": TcpOptions(ts=(100, 0)), "payload": payload}
        kw.update(over)
        return TcpSegment(**kw)  # type: ignore[arg-type]

    def frame(self, seg: TcpSegment, exts: list[tuple[int, bytes]] | None = None, src: bytes = SRV) -> bytes:
        return build_ethernet(MAC, GW_MAC, ETH_P_IPV6, build_ipv6(src, LIP, NH_TCP, build_tcp(seg, src, LIP),
                                                                  extensions=exts or ()))

    def feed(self, frame: bytes, dt: float = 0.001, csum: int = 0) -> tuple[list[bytes], list[object]]:
        self.now += dt
        self.host.on_frame(frame, self.now, csum)
        self.got += b"".join(self.host.read())
        return self.host.take_frames(), self.host.take_events()

    def connect(self) -> None:
        self.host.start(self.now)
        (ns,) = self.host.take_frames()
        eth = parse_ethernet(ns)
        assert eth.dst == multicast_mac(solicited_node(GW)) and eth.ethertype == ETH_P_IPV6
        frames, _ = self.feed(self.icmp(NeighborAdvert(GW, True, True, True, NdpOptions(target_lladdr=GW_MAC)),
                                        dst=LIP))
        (syn_frame,) = frames
        syn = tcp_of(syn_frame)
        assert syn.flags == SYN and syn.options.mss == 1440  # 1500 - 40 - 20: the IPv6 default
        synack = TcpSegment(RPORT, LPORT, PISN, ISN + 1, SYN | ACK, 0xFFFF,
                            TcpOptions(mss=1440, wscale=7, sack_permitted=True, ts=(100, syn.options.ts[0])))
        self.feed(self.frame(synack))
        assert self.host.tcp.state.value == "ESTABLISHED"


def tcp_of(frame: bytes) -> TcpSegment:
    eth = parse_ethernet(frame)
    assert eth.ethertype == ETH_P_IPV6 and eth.dst == GW_MAC and eth.src == MAC
    ip, data = parse_ipv6(eth.payload)
    assert (ip.src, ip.dst, ip.proto, ip.hop_limit) == (LIP, SRV, NH_TCP, 64)
    return parse_tcp(data, ip.src, ip.dst, verify=True)


def test_connects_after_neighbor_discovery_and_receives_on_the_fast_path() -> None:
    rig = Rig6()
    rig.connect()
    sent = 0
    for i in range(20):
        rig.feed(rig.frame(rig.segment(sent, STREAM[sent:sent + 1428], ACK | PSH)))
        sent += 1428
    assert bytes(rig.got) == STREAM[:sent]
    frames = rig.host.take_frames()
    assert all(tcp_of(f).flags == ACK for f in frames)
    c = rig.host.counters
    assert c["malformed"] == 0 and c["not_ours"] == 0 and c["csum_drop_tcp"] == 0


def test_extension_headers_take_the_general_path_to_the_same_stream() -> None:
    rig = Rig6()
    rig.connect()
    exts = [extension(NH_HOPOPTS, bytes((1, 0))), extension(NH_DSTOPTS), extension(NH_ROUTING, bytes(6)),
            (NH_FRAGMENT, fragment_body(0, False, 3))]  # an atomic fragment is the whole packet
    rig.feed(rig.frame(rig.segment(0, STREAM[:1000], ACK | PSH), exts))
    rig.feed(rig.frame(rig.segment(1000, STREAM[1000:2000], ACK | PSH)), csum=CSUM_KERNEL_VALID)
    assert bytes(rig.got) == STREAM[:2000] and rig.host.counters["csum_kernel_verified"] == 1


def test_fragments_bad_checksums_and_foreign_frames_are_counted() -> None:
    rig = Rig6()
    rig.connect()
    seg = rig.segment(0, STREAM[:100], ACK | PSH)
    _, events = rig.feed(rig.frame(seg, [(NH_FRAGMENT, fragment_body(0, True, 9))]))
    assert [e.reason for e in events if isinstance(e, Malformed)] == [
        "IPv6 fragment dropped (rawtui does not reassemble)"]
    bad = bytearray(rig.frame(seg))
    bad[-1] ^= 1
    _, events = rig.feed(bytes(bad))
    assert [e.layer for e in events if isinstance(e, ChecksumDrop)] == ["tcp"]
    rig.feed(rig.frame(seg, src=ip6_bytes("2001:db8::66")))  # another source
    rig.feed(build_ethernet(MAC, GW_MAC, ETH_P_IP, build_ipv4(bytes(4), bytes(4), PROTO_TCP, bytes(20))))
    rig.feed(build_ethernet(MAC, GW_MAC, ETH_P_ARP, build_arp(ArpPacket(OP_REPLY, GW_MAC, bytes(4), MAC, bytes(4)))))
    rig.feed(rig.icmp(Echo(1, 1), src=SRV, hop=64))  # an echo: not the resolver's, not a path error
    rig.feed(MAC + GW_MAC + b"\x86\xdd" + build_ipv6(SRV, LIP, NH_TCP, b"")[:30])  # truncated, unpadded
    c = rig.host.counters
    assert (c["ip_fragments"], c["csum_drop_tcp"], c["not_ours"], c["malformed"]) == (1, 1, 3, 2)
    assert rig.got == b""


def test_answers_the_routers_solicitation_for_our_address() -> None:
    rig = Rig6()
    rig.connect()
    frames, events = rig.feed(rig.icmp(NeighborSolicit(LIP, NdpOptions(source_lladdr=GW_MAC)), dst=solicited_node(LIP)))
    (answer,) = frames
    eth = parse_ethernet(answer)
    ip, data = parse_ipv6(eth.payload)
    msg = parse_icmpv6(data, ip.src, ip.dst)
    assert eth.dst == GW_MAC and (ip.src, ip.dst, ip.hop_limit) == (LIP, GW, 255)
    assert msg == NeighborAdvert(LIP, False, True, True, NdpOptions(target_lladdr=MAC))
    assert any(isinstance(e, NdpAnswered) for e in events)
    frames, _ = rig.feed(rig.icmp(NeighborSolicit(LL), dst=solicited_node(LL)))  # the link-local address too
    assert len(frames) == 1


def test_packet_too_big_for_our_connection_lowers_the_mss() -> None:
    rig = Rig6()
    rig.connect()
    rig.host.send(bytes(3000), rig.now)
    out = rig.host.take_frames()
    first = out[0]
    eth = parse_ethernet(first)
    other = bytearray(eth.payload[:1232])
    other[40:42] = (LPORT + 1).to_bytes(2, "big")  # another connection's packet: not ours
    _, events = rig.feed(rig.icmp(PacketTooBig(1280, bytes(other)), src=GW))
    assert rig.host.tcp.mss == 1440 and rig.host.counters["not_ours"] == 1
    frames, events = rig.feed(rig.icmp(PacketTooBig(1280, bytes(eth.payload[:1232])), src=ip6_bytes("2001:db8::1")))
    (pmtu,) = [e for e in events if isinstance(e, PathMtu)]
    assert (pmtu.mtu, pmtu.mss, rig.host.tcp.mss, rig.host.counters["icmp_errors"]) == (1280, 1220, 1220, 1)
    assert pmtu.sender == "2001:db8::1"  # the router that said it
    assert frames and all(len(f) <= 14 + 1280 for f in frames)  # resent in packets that fit


def test_fragmentation_needed_lowers_an_ipv4_connections_mss() -> None:
    lip, gw, srv = bytes([10, 0, 1, 2]), bytes([10, 0, 1, 1]), bytes([10, 0, 2, 2])
    host = Host(local_mac=MAC, local_ip=lip, next_hop_ip=gw, remote_ip=srv, remote_port=RPORT, local_port=LPORT,
                isn=ISN)
    host.start(0.0, next_hop_mac=GW_MAC)
    (syn_frame,) = host.take_frames()
    syn = parse_tcp(syn_frame[34:], lip, srv)
    synack = TcpSegment(RPORT, LPORT, PISN, ISN + 1, SYN | ACK, 0xFFFF, TcpOptions(mss=1460, ts=(1, syn.options.ts[0])))
    host.on_frame(build_ethernet(MAC, GW_MAC, ETH_P_IP, build_ipv4(srv, lip, PROTO_TCP, build_tcp(synack, srv, lip))),
                  0.01)
    host.send(bytes(3000), 0.02)
    first = host.take_frames()[1]  # after the handshake's ACK
    icmp = build_icmp(fragmentation_needed(1400, first[14:14 + 28]))
    host.on_frame(build_ethernet(MAC, GW_MAC, ETH_P_IP, build_ipv4(gw, lip, 1, icmp)), 0.03)
    assert host.tcp.mss == 1360 and host.tcp.path_mtu == 1400
    assert [(e.source, e.sender) for e in host.take_events() if isinstance(e, PathMtu)] == [
        ("icmp fragmentation needed", "10.0.1.1")]


def test_no_answer_is_the_documented_error() -> None:
    rig = Rig6()
    rig.host.start(0.0)
    for t in (1.0, 2.0, 3.0):
        rig.host.on_timer(t)
    assert [e.attempt for e in rig.host.take_events() if isinstance(e, NdpSolicit)] == [1, 2, 3]
    assert rig.host.error is not None and rig.host.error.exit_code == 4
    assert rig.host.error.message == "no answer from fe80::1 on eth0 to 3 neighbor solicitations"


def test_a_known_mac_skips_the_solicitation() -> None:
    rig = Rig6()
    rig.host.start(0.0, next_hop_mac=GW_MAC)
    (syn,) = rig.host.take_frames()
    # cached: STALE, and the SYN sent through it starts the DELAY (RFC 4861 7.3.3)
    assert tcp_of(syn).flags == SYN and rig.host.arp.state.value == "delay"


def test_mixed_families_are_refused() -> None:
    with pytest.raises(ValueError):
        Host(local_mac=MAC, local_ip=LIP, next_hop_ip=bytes(4), remote_ip=SRV, remote_port=1, local_port=2, isn=0)


# -- random IPv6 frames --------------------------------------------------------------------------------


def _mutate(rnd: random.Random, frame: bytes) -> bytes:
    b = bytearray(frame)
    for _ in range(rnd.randrange(1, 4)):
        k = rnd.random()
        if k < 0.5 and b:
            i = rnd.randrange(len(b))
            b[i] ^= 1 << rnd.randrange(8)
        elif k < 0.7 and b:
            b[rnd.randrange(len(b))] = rnd.randrange(256)
        elif k < 0.85:
            del b[rnd.randrange(len(b) + 1):]
        else:
            b += rnd.randbytes(rnd.randrange(1, 40))
    return bytes(b)


def _valid6(rnd: random.Random, rig: Rig6) -> bytes:
    k = rnd.random()
    if k < 0.5:
        off = rnd.randrange(0, 50_000)
        n = rnd.choice([0, 1, 100, 1428])
        exts: list[tuple[int, bytes]] = []
        if rnd.random() < 0.4:
            pool = [extension(NH_HOPOPTS, bytes((1, 0))), extension(NH_DSTOPTS, bytes((0x1E, 1, 0))),
                    extension(NH_ROUTING, bytes(6)), (NH_FRAGMENT, fragment_body(rnd.choice([0, 8, 1448]),
                                                                                rnd.random() < 0.5, 1))]
            exts = [e for e in pool if rnd.random() < 0.5]
            exts.sort(key=lambda e: e[0] != NH_HOPOPTS)  # hop-by-hop first when present
        return rig.frame(rig.segment(off, STREAM[off:off + n], rnd.choice([ACK, ACK | PSH])), exts)
    msgs: list[Icmpv6Message] = [
        NeighborSolicit(LIP, NdpOptions(source_lladdr=GW_MAC)), NeighborAdvert(GW, True, True, True,
                                                                               NdpOptions(target_lladdr=GW_MAC)),
        PacketTooBig(rnd.choice([0, 1280, 1400, 9000]), rnd.randbytes(rnd.randrange(0, 200))), Echo(1, 2, b"x"),
        PacketTooBig(rnd.choice([1280, 1400]), _mutate(rnd, _ours(rnd, rig))),  # a quote of ours, maybe lying
    ]
    return rig.icmp(rnd.choice(msgs), dst=rnd.choice([LIP, solicited_node(LIP)]))


def _ours(rnd: random.Random, rig: Rig6) -> bytes:
    """The start of a packet we sent (what a Packet Too Big quotes), of the connection's flow."""
    seg = TcpSegment(LPORT, RPORT, (rig.host.tcp.snd_una + rnd.randrange(-5, 5)) & 0xFFFFFFFF, 0, ACK, 100,
                     payload=bytes(rnd.randrange(0, 1500)))
    return build_ipv6(LIP, SRV, NH_TCP, build_tcp(seg, LIP, SRV))[:rnd.choice([1232, 48, 60, 100])]


def _parse_all(frame: bytes) -> None:
    """Every parser the frame reaches: only WireError may come out."""
    try:
        eth = parse_ethernet(frame)
        ip, data = parse_ipv6(eth.payload)
    except WireError:
        return
    for verify in (True, False):
        try:
            parse_tcp(data, ip.src, ip.dst, verify=verify)
        except WireError:
            pass
        try:
            parse_icmpv6(data, ip.src, ip.dst, verify=verify)
        except WireError:
            pass


def test_random_ipv6_frames_through_the_parsers_and_a_connected_host() -> None:
    rnd = random.Random(14)
    rig = Rig6()
    rig.connect()
    before = rig.host.counters["frames_in"]
    counts = {"random": 0, "valid": 0, "mutated": 0}
    for i in range(FUZZ_FRAMES):
        k = rnd.random()
        if k < 0.2:
            head = bytes((0x60 | rnd.randrange(16),))
            frame = MAC + GW_MAC + b"\x86\xdd" + head + rnd.randbytes(rnd.randrange(0, 120))
            counts["random"] += 1
        elif k < 0.5:
            frame = _valid6(rnd, rig)
            counts["valid"] += 1
        else:
            frame = _mutate(rnd, _valid6(rnd, rig))
            counts["mutated"] += 1
        _parse_all(frame)
        rig.host.on_frame(frame, 1.0 + i * 1e-4)  # must not raise
        rig.host.read()
        rig.host.take_frames()
        rig.host.take_events()
    c = rig.host.counters
    assert c["frames_in"] - before == FUZZ_FRAMES and min(counts.values()) > FUZZ_FRAMES // 10
    # the run reached every outcome
    assert c["malformed"] > 0 and c["csum_drop_tcp"] > 0 and c["ip_fragments"] > 0 and c["not_ours"] > 0
    assert c["csum_drop_icmpv6"] > 0 and c["icmp_errors"] > 0 and rig.host.tcp.counters["segments_in"] > 1000
    assert rig.host.error is None or rig.host.error.exit_code in (4, 5)


def test_the_connections_progress_confirms_the_neighbor() -> None:
    rig = Rig6()
    rig.host.start(0.0, next_hop_mac=GW_MAC)
    (syn_frame,) = rig.host.take_frames()
    syn = tcp_of(syn_frame)
    assert rig.host.arp.state.value == "delay" and rig.host.next_deadline == 1.0  # the SYN's timer first
    synack = TcpSegment(RPORT, LPORT, PISN, ISN + 1, SYN | ACK, 0xFFFF, TcpOptions(mss=1440, ts=(1, syn.options.ts[0])))
    rig.feed(rig.frame(synack), dt=0.01)
    rig.host.on_timer(5.0)
    assert rig.host.arp.state.value == "reachable"
    assert not [f for f in rig.host.take_frames() if parse_ethernet(f).payload[6] == NH_ICMPV6]


def test_without_progress_the_neighbor_is_probed() -> None:
    rig = Rig6()
    rig.host.start(0.0, next_hop_mac=GW_MAC)
    rig.host.take_frames()
    for t in (1.0, 3.0, 5.0):  # SYN retransmissions, then the end of the DELAY
        rig.host.on_timer(t)
    probes = [f for f in rig.host.take_frames() if parse_ethernet(f).payload[6] == NH_ICMPV6]
    assert rig.host.arp.state.value == "probe" and len(probes) == 1 and parse_ethernet(probes[0]).dst == GW_MAC
