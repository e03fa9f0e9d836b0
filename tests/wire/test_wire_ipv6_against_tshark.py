"""Cross-check rawtui's IPv6 frames with Wireshark's dissectors: TCP over IPv6 (with extension headers),
neighbor solicitations and advertisements, Packet Too Big, echo: tshark must find the fields rawtui put
there and call the TCP and ICMPv6 checksums (over the IPv6 pseudo-header) good, and bad when corrupted."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_wire_against_tshark import CHECKSUM_BAD, CHECKSUM_GOOD, tshark_fields, write_pcap

from rawtui.wire.ethernet import ETH_P_IPV6, build_ethernet
from rawtui.wire.icmpv6 import (
    Echo,
    Icmpv6Message,
    NdpOptions,
    NeighborAdvert,
    NeighborSolicit,
    PacketTooBig,
    build_icmpv6,
)
from rawtui.wire.ipv6 import (
    NH_DSTOPTS,
    NH_FRAGMENT,
    NH_HOPOPTS,
    NH_ICMPV6,
    NH_TCP,
    build_ipv6,
    extension,
    fragment_body,
    ip6_bytes,
    multicast_mac,
    solicited_node,
)
from rawtui.wire.tcp import ACK, PSH, SYN, TcpOptions, TcpSegment, build_tcp

pytestmark = pytest.mark.needs_tool("tshark")

MAC_A, MAC_B = bytes.fromhex("020000000001"), bytes.fromhex("0200000000fe")
A, B = ip6_bytes("2001:db8::1"), ip6_bytes("2001:db8:77::2")
LL_A, LL_B = ip6_bytes("fe80::1"), ip6_bytes("fe80::2")


def tcp_frame(seg: TcpSegment, src: bytes, dst: bytes, exts: list[tuple[int, bytes]] | None = None) -> bytes:
    return build_ethernet(MAC_B, MAC_A, ETH_P_IPV6, build_ipv6(src, dst, NH_TCP, build_tcp(seg, src, dst),
                                                               extensions=exts or ()))


def icmp_frame(msg: Icmpv6Message, src: bytes, dst: bytes, dst_mac: bytes = MAC_B) -> bytes:
    return build_ethernet(dst_mac, MAC_A, ETH_P_IPV6,
                          build_ipv6(src, dst, NH_ICMPV6, build_icmpv6(msg, src, dst), hop_limit=255))


SEGMENTS = [
    (TcpSegment(40000, 80, 0x01020304, 0, SYN, 64800, TcpOptions(1440, 7, True, (), (1, 0))), None),
    (TcpSegment(40000, 80, 0x01020305, 9, PSH | ACK, 502, TcpOptions(ts=(3, 9)), b"GET / HTTP/1.1\r\n\r\n"), None),
    (TcpSegment(40000, 80, 0x01020305, 9, ACK, 502, payload=bytes(range(256)) * 5 + b"odd"),
     [extension(NH_HOPOPTS, bytes((1, 0))), extension(NH_DSTOPTS, bytes((0x1E, 3)) + b"abc")]),
    (TcpSegment(40000, 80, 7, 9, ACK, 502, payload=b"x"), [(NH_FRAGMENT, fragment_body(0, False, 5))]),
]


def test_tshark_agrees_tcp_over_ipv6_checksums_are_good(tmp_path: Path) -> None:
    pcap = tmp_path / "tcp6.pcap"
    write_pcap(pcap, [tcp_frame(seg, A, B, exts) for seg, exts in SEGMENTS])
    rows = tshark_fields(pcap, "ipv6.src", "ipv6.dst", "tcp.srcport", "tcp.seq_raw", "tcp.len", "tcp.checksum.status")
    assert len(rows) == len(SEGMENTS)
    for (seg, _), row in zip(SEGMENTS, rows, strict=True):
        src, dst, sport, seq, length, status = row
        assert (src, dst, int(sport), int(seq), int(length)) == ("2001:db8::1", "2001:db8:77::2", 40000, seg.seq,
                                                                 len(seg.payload))
        assert status == CHECKSUM_GOOD, row


def test_tshark_decodes_neighbor_discovery(tmp_path: Path) -> None:
    group = solicited_node(LL_B)
    frames = [
        icmp_frame(NeighborSolicit(LL_B, NdpOptions(source_lladdr=MAC_A)), LL_A, group, multicast_mac(group)),
        icmp_frame(NeighborAdvert(LL_B, router=True, solicited=True, override=True,
                                  options=NdpOptions(target_lladdr=MAC_B)), LL_B, LL_A),
        icmp_frame(PacketTooBig(1280, build_ipv6(A, B, NH_TCP, build_tcp(SEGMENTS[2][0], A, B))[:1232]), LL_B, A),
        icmp_frame(Echo(0x77, 3, b"ping"), A, B),
    ]
    pcap = tmp_path / "nd.pcap"
    write_pcap(pcap, frames)
    rows = tshark_fields(pcap, "eth.dst", "icmpv6.type", "icmpv6.checksum.status", "icmpv6.nd.ns.target_address",
                         "icmpv6.nd.na.target_address", "icmpv6.nd.na.flag.s", "icmpv6.nd.na.flag.o",
                         "icmpv6.opt.linkaddr", "icmpv6.mtu", "icmpv6.echo.identifier")
    ns, na, ptb, echo = rows
    assert ns[:5] == ["33:33:ff:00:00:02", "135", CHECKSUM_GOOD, "fe80::2", ""]
    assert ns[7] == "02:00:00:00:00:01"
    assert na[1:3] == ["136", CHECKSUM_GOOD] and na[4] == "fe80::2" and na[7] == "02:00:00:00:00:fe"
    assert {na[5], na[6]} <= {"1", "True"}  # tshark prints booleans as 1 or True depending on its version
    assert ptb[1:3] == ["2", CHECKSUM_GOOD] and ptb[8] == "1280"
    assert echo[1:3] == ["128", CHECKSUM_GOOD] and int(echo[9], 16) == 0x77


def test_tshark_sees_bad_ipv6_checksums(tmp_path: Path) -> None:
    """The negative control: a flipped bit must come back Bad, or the tests above prove nothing."""
    tcp = bytearray(tcp_frame(SEGMENTS[1][0], A, B))
    tcp[-1] ^= 0x01
    ns = bytearray(icmp_frame(NeighborSolicit(LL_B, NdpOptions(source_lladdr=MAC_A)), LL_A, solicited_node(LL_B)))
    ns[-1] ^= 0x01
    pcap = tmp_path / "bad6.pcap"
    write_pcap(pcap, [bytes(tcp), bytes(ns)])
    rows = tshark_fields(pcap, "tcp.checksum.status", "icmpv6.checksum.status")
    assert rows[0][0] == CHECKSUM_BAD and rows[1][1] == CHECKSUM_BAD
