"""ICMPv6 and neighbor discovery messages (rawtui.wire.icmpv6), IPv4's ICMP with fragmentation-needed
(rawtui.wire.icmp), and the TCP flow an error quotes."""

from __future__ import annotations

import os
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rawtui.wire.checksum import reference_checksum
from rawtui.wire.errors import ChecksumError, WireError
from rawtui.wire.icmp import (
    CODE_FRAG_NEEDED,
    DEST_UNREACHABLE,
    ECHO_REQUEST,
    IcmpMessage,
    build_icmp,
    fragmentation_needed,
    parse_icmp,
    plateau_below,
    quoted_tcp4,
)
from rawtui.wire.icmpv6 import (
    NEIGHBOR_SOLICIT,
    Echo,
    Icmpv6Message,
    Icmpv6Other,
    NdpOptions,
    NeighborAdvert,
    NeighborSolicit,
    PacketTooBig,
    Prefix,
    RouterAdvert,
    RouterSolicit,
    build_icmpv6,
    parse_icmpv6,
    parse_ndp_options,
    quoted_tcp6,
)
from rawtui.wire.ipv4 import PROTO_TCP, build_ipv4
from rawtui.wire.ipv6 import NH_DSTOPTS, NH_ICMPV6, NH_TCP, build_ipv6, extension, ip6_bytes, solicited_node
from rawtui.wire.tcp import ACK, TcpSegment, build_tcp

SCALE = max(1, int(os.environ.get("WIRE_HYPOTHESIS_SCALE", "1")))
FAST = settings(max_examples=150 * SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow])

LL = ip6_bytes("fe80::1")
A = ip6_bytes("2001:db8::1")
B = ip6_bytes("2001:db8:1::2")
MAC = bytes.fromhex("020000000001")

MESSAGES: list[Icmpv6Message] = [
    NeighborSolicit(A, NdpOptions(source_lladdr=MAC)),
    NeighborSolicit(A),
    NeighborAdvert(A, router=True, solicited=True, override=True, options=NdpOptions(target_lladdr=MAC)),
    NeighborAdvert(B, solicited=True),
    RouterSolicit(NdpOptions(source_lladdr=MAC)),
    RouterAdvert(64, True, False, 1800, 30000, 1000,
                 NdpOptions(source_lladdr=MAC, mtu=1400, prefixes=(Prefix(A[:8] + bytes(8), 64, True, True, 86400,
                                                                            14400),))),
    Echo(0x1234, 7, b"ping"),
    Echo(0x1234, 7, b"pong", reply=True),
    PacketTooBig(1280, bytes(range(200))),
    Icmpv6Other(1, 4, bytes(4) + bytes(range(48))),  # destination unreachable, port unreachable
]


@pytest.mark.parametrize("msg", MESSAGES, ids=lambda m: type(m).__name__)
def test_round_trip_with_the_pseudo_header_checksum(msg: Icmpv6Message) -> None:
    raw = build_icmpv6(msg, LL, B)
    assert parse_icmpv6(raw, LL, B) == msg
    # the checksum is RFC 4443 2.3's: over the IPv6 pseudo-header (next header 58) and the message
    pseudo = LL + B + struct.pack("!I", len(raw)) + bytes(3) + bytes((NH_ICMPV6,))
    assert struct.unpack_from("!H", raw, 2)[0] == reference_checksum(pseudo + raw[:2] + b"\0\0" + raw[4:])
    with pytest.raises(ChecksumError) as e:
        parse_icmpv6(raw, LL, A)
    assert e.value.layer == "icmpv6"
    assert parse_icmpv6(raw, LL, A, verify=False) == msg


def test_neighbor_solicitation_bytes() -> None:
    raw = build_icmpv6(NeighborSolicit(A, NdpOptions(source_lladdr=MAC)), LL, solicited_node(A))
    assert raw[0] == NEIGHBOR_SOLICIT and raw[1] == 0 and raw[4:8] == bytes(4) and raw[8:24] == A
    assert raw[24:] == b"\x01\x01" + MAC  # source link-layer address option, length 1 (8 bytes)


def test_advertisement_flags_are_the_top_three_bits() -> None:
    raw = build_icmpv6(NeighborAdvert(A, router=False, solicited=True, override=True), A, LL)
    assert raw[4:8] == b"\x60\0\0\0"


@pytest.mark.parametrize(("body", "message"), [
    (struct.pack("!BBH", NEIGHBOR_SOLICIT, 1, 0) + bytes(20), "code 1"),
    (struct.pack("!BBH", NEIGHBOR_SOLICIT, 0, 0) + bytes(10), "shorter than 24"),
    (struct.pack("!BBH", NEIGHBOR_SOLICIT, 0, 0) + bytes(4) + b"\xff" + bytes(15), "multicast target"),
    (struct.pack("!BBH", NEIGHBOR_SOLICIT, 0, 0) + bytes(20) + b"\x01\x00" + bytes(6), "length 0"),
    (struct.pack("!BBH", NEIGHBOR_SOLICIT, 0, 0) + bytes(20) + b"\x01\x02" + bytes(6), "overruns"),
    (struct.pack("!BBH", NEIGHBOR_SOLICIT, 0, 0) + bytes(20) + b"\x01", "truncated"),
    (struct.pack("!BBH", NEIGHBOR_SOLICIT, 0, 0) + bytes(20) + b"\x01\x02" + bytes(14), "not Ethernet"),
    (struct.pack("!BBH", 128, 0, 0), "shorter than 8"),
    (struct.pack("!BBH", 2, 0, 0), "packet too big"),
    (b"\x80\0", "shorter than its 4-byte header"),
])
def test_malformed_messages(body: bytes, message: str) -> None:
    with pytest.raises(WireError, match=message):
        parse_icmpv6(body, LL, B, verify=False)


def test_unknown_options_are_skipped() -> None:
    opts = parse_ndp_options(b"\x0e\x01" + bytes(6) + b"\x01\x01" + MAC)
    assert opts.unknown == (14,) and opts.source_lladdr == MAC


@FAST
@given(blob=st.binary(max_size=120), kind=st.sampled_from([1, 2, 3, 128, 129, 133, 134, 135, 136, 137, 200]))
def test_arbitrary_messages_raise_only_wire_error(blob: bytes, kind: int) -> None:
    for data in (blob, bytes((kind, 0, 0, 0)) + blob):
        try:
            parse_icmpv6(data, LL, B, verify=False)
        except WireError:
            pass


@FAST
@given(target=st.binary(min_size=16, max_size=16).filter(lambda a: a[0] != 0xFF), flags=st.integers(0, 7),
       sll=st.none() | st.binary(min_size=6, max_size=6), tll=st.none() | st.binary(min_size=6, max_size=6),
       mtu=st.none() | st.integers(0, 2**32 - 1))
def test_ndp_round_trip(target: bytes, flags: int, sll: bytes | None, tll: bytes | None, mtu: int | None) -> None:
    opts = NdpOptions(sll, tll, mtu)
    for msg in (NeighborSolicit(target, opts), NeighborAdvert(target, bool(flags & 4), bool(flags & 2), bool(flags & 1),
                                                              opts)):
        assert parse_icmpv6(build_icmpv6(msg, A, B), A, B) == msg


# -- what an error quotes ---------------------------------------------------------------------------


def test_packet_too_big_quotes_our_tcp_segment() -> None:
    seg = build_tcp(TcpSegment(40000, 80, 0xFFFFFF00, 5, ACK, 100, payload=bytes(1400)), A, B)
    ours = build_ipv6(A, B, NH_TCP, seg, extensions=[extension(NH_DSTOPTS)])
    ptb = PacketTooBig(1280, ours[:1232])
    back = parse_icmpv6(build_icmpv6(ptb, LL, A), LL, A)
    assert isinstance(back, PacketTooBig) and back.mtu == 1280
    q = quoted_tcp6(back.invoking)
    assert q is not None
    assert (q.src, q.dst, q.src_port, q.dst_port, q.seq, q.length) == (A, B, 40000, 80, 0xFFFFFF00, len(ours))
    assert quoted_tcp6(ours[:40 + 8 + 7]) is None  # cut before the sequence number
    assert quoted_tcp6(build_ipv6(A, B, 17, bytes(8))) is None  # not TCP


def test_fragmentation_needed() -> None:
    seg = build_tcp(TcpSegment(40000, 80, 1, 5, ACK, 100, payload=bytes(1460)), bytes(4), bytes([10, 0, 0, 1]))
    ours = build_ipv4(bytes(4), bytes([10, 0, 0, 1]), PROTO_TCP, seg)
    raw = build_icmp(fragmentation_needed(1400, ours[:28]))
    msg = parse_icmp(raw)
    assert (msg.type, msg.code, msg.is_fragmentation_needed, msg.next_hop_mtu) == (
        DEST_UNREACHABLE, CODE_FRAG_NEEDED, True, 1400)
    assert reference_checksum(raw[:2] + b"\0\0" + raw[4:]) == struct.unpack_from("!H", raw, 2)[0]
    q = quoted_tcp4(msg.data)
    assert q is not None and (q.src_port, q.dst_port, q.seq, q.length) == (40000, 80, 1, len(ours))
    assert quoted_tcp4(ours[:27]) is None
    bad = bytearray(raw)
    bad[9] ^= 1
    with pytest.raises(ChecksumError):
        parse_icmp(bytes(bad))
    echo = parse_icmp(build_icmp(IcmpMessage(ECHO_REQUEST, 0, b"\0\1\0\2", b"hi")))
    assert echo.next_hop_mtu is None and not echo.is_fragmentation_needed and echo.data == b"hi"
    with pytest.raises(WireError):
        parse_icmp(b"\3\4\0\0")
    with pytest.raises(WireError):
        build_icmp(IcmpMessage(3, 4, b"", b""))


@FAST
@given(quote=st.binary(min_size=40, max_size=120), plen=st.integers(0, 0xFFFF), total=st.integers(0, 0xFFFF))
def test_any_quote_gives_a_flow_or_none(quote: bytes, plen: int, total: int) -> None:
    """Whatever an error quotes (lengths that lie included), the flow is read or None: never an exception."""
    v6 = build_ipv6(A, B, NH_TCP, b"")[:4] + plen.to_bytes(2, "big") + bytes((NH_TCP, 64)) + A + B + quote
    v4 = bytes((0x45, 0)) + total.to_bytes(2, "big") + bytes(5) + bytes((PROTO_TCP,)) + bytes(10) + quote
    for q in (quoted_tcp6(v6), quoted_tcp6(quote), quoted_tcp4(v4), quoted_tcp4(quote)):
        assert q is None or 0 <= q.seq < 2**32
    short = build_ipv6(A, B, NH_TCP, b"")[:4] + (4).to_bytes(2, "big") + bytes((NH_TCP, 64)) + A + B + bytes(20)
    assert quoted_tcp6(short) is None  # its payload length says 4 bytes: no room for ports and a sequence number


def test_rfc1191_plateaus() -> None:
    assert plateau_below(1500) == 1492 and plateau_below(1492) == 1006 and plateau_below(9000) == 8166
    assert plateau_below(60) == 68 and plateau_below(70) == 68
