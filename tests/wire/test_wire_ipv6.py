"""IPv6 headers, extension headers, fragments and the address helpers (rawtui.wire.ipv6), and TCP over
IPv6: the pseudo-header checked against a slow reference built from RFC 8200 8.1's layout."""

from __future__ import annotations

import os
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rawtui.wire.checksum import pseudo_header_residue, reference_checksum
from rawtui.wire.errors import ChecksumError, WireError
from rawtui.wire.ipv6 import (
    ALL_NODES,
    NH_DSTOPTS,
    NH_FRAGMENT,
    NH_HOPOPTS,
    NH_ICMPV6,
    NH_NONE,
    NH_ROUTING,
    NH_TCP,
    OPT_JUMBO,
    build_ipv6,
    endpoint_text,
    extension,
    fragment_body,
    ip6_bytes,
    ip6_str,
    is_link_local,
    is_scoped,
    link_local_from_mac,
    multicast_mac,
    parse_ipv6,
    solicited_node,
    split_zone,
    with_zone,
)
from rawtui.wire.tcp import ACK, PSH, SYN, TcpOptions, TcpSegment, build_pure_ack, build_tcp, parse_tcp

SCALE = max(1, int(os.environ.get("WIRE_HYPOTHESIS_SCALE", "1")))
FAST = settings(max_examples=150 * SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow])

A = ip6_bytes("2001:db8::1")
B = ip6_bytes("2001:db8:1::2")
addr6 = st.binary(min_size=16, max_size=16)
# a destination option the receiver may skip (type 0x1e: the "skip over" action bits 00)
SKIPPABLE = bytes((0x1E, 3)) + b"abc"


def test_fixed_header_fields() -> None:
    pkt = build_ipv6(A, B, NH_TCP, b"x" * 20, hop_limit=17, traffic_class=0xB8, flow_label=0xABCDE)
    assert len(pkt) == 60 and pkt[0] >> 4 == 6
    ip, payload = parse_ipv6(pkt)
    assert (ip.src, ip.dst, ip.proto, ip.next_header, ip.hop_limit) == (A, B, NH_TCP, NH_TCP, 17)
    assert (ip.traffic_class, ip.flow_label, ip.payload_length, ip.header_length) == (0xB8, 0xABCDE, 20, 40)
    assert ip.total_length == 60 and ip.extensions == () and ip.fragment is None and not ip.is_fragment
    assert bytes(payload) == b"x" * 20


def test_padding_after_the_payload_length_is_dropped() -> None:
    pkt = build_ipv6(A, B, NH_TCP, b"abc") + bytes(11)  # an Ethernet pad
    _, payload = parse_ipv6(pkt)
    assert bytes(payload) == b"abc"


def test_extension_headers_are_walked_and_skipped() -> None:
    exts = [extension(NH_HOPOPTS, bytes((1, 0))), extension(NH_DSTOPTS, SKIPPABLE),
            extension(NH_ROUTING, bytes((4, 0)) + bytes(20)), extension(NH_DSTOPTS)]
    pkt = build_ipv6(A, B, NH_TCP, b"payload", extensions=exts)
    ip, payload = parse_ipv6(pkt)
    assert ip.next_header == NH_HOPOPTS and ip.proto == NH_TCP
    assert ip.extensions == (NH_HOPOPTS, NH_DSTOPTS, NH_ROUTING, NH_DSTOPTS)
    assert ip.header_length == 40 + 8 + 8 + 24 + 8 and bytes(payload) == b"payload"
    assert all(len(body) % 8 == 6 for _, body in exts)  # padded to 8-byte multiples with their 2 bytes


@pytest.mark.parametrize(("offset", "more", "fragment"), [(0, True, True), (1448, True, True),
                                                          (2896, False, True), (0, False, False)])
def test_fragment_header(offset: int, more: bool, fragment: bool) -> None:
    pkt = build_ipv6(A, B, NH_TCP, b"z" * 24, extensions=[(NH_FRAGMENT, fragment_body(offset, more, 0xDEADBEEF))])
    ip, payload = parse_ipv6(pkt)
    assert ip.fragment is not None
    assert (ip.fragment.offset, ip.fragment.more, ip.fragment.ident) == (offset, more, 0xDEADBEEF)
    assert ip.is_fragment is fragment  # offset 0 without M is an atomic fragment (RFC 6946): the whole packet
    assert ip.proto == NH_TCP and bytes(payload) == b"z" * 24


def test_a_later_fragment_ends_the_walk() -> None:
    # the bytes after a non-first fragment header look like a hop-by-hop header: they are data, not read
    pkt = build_ipv6(A, B, NH_HOPOPTS, bytes(16), extensions=[(NH_FRAGMENT, fragment_body(8, False, 1))])
    ip, payload = parse_ipv6(pkt)
    assert ip.is_fragment and ip.proto == NH_HOPOPTS and len(payload) == 16


@pytest.mark.parametrize(("packet", "message"), [
    (build_ipv6(A, B, NH_TCP, b"")[:39], "shorter than its 40-byte header"),
    (b"\x45" + build_ipv6(A, B, NH_TCP, b"")[1:], "version 4 is not 6"),
    (build_ipv6(A, B, NH_TCP, b"abcd")[:43], "truncated"),
    (build_ipv6(A, B, NH_DSTOPTS, bytes((NH_TCP, 0)) + bytes(4)), "truncated"),
    (build_ipv6(A, B, NH_DSTOPTS, bytes((NH_TCP, 3)) + bytes(14)), "overruns the payload"),
    (build_ipv6(A, B, NH_TCP, b"", extensions=[extension(NH_DSTOPTS), extension(NH_HOPOPTS)]),
     "not right after the fixed header"),
    (build_ipv6(A, B, NH_TCP, b"", extensions=[extension(NH_HOPOPTS, bytes((OPT_JUMBO, 4, 0, 1, 0, 0)))]),
     "jumbogram"),
    (build_ipv6(A, B, NH_TCP, b"", extensions=[extension(NH_DSTOPTS, bytes((0x1E, 9)) + bytes(4))]),
     "overruns its header"),
    (build_ipv6(A, B, NH_TCP, b"", extensions=[(NH_FRAGMENT, fragment_body(0, True, 1)),
                                               (NH_FRAGMENT, fragment_body(0, True, 2))]),
     "two IPv6 fragment headers"),
])
def test_malformed_packets_raise_wire_error(packet: bytes, message: str) -> None:
    with pytest.raises(WireError, match=message):
        parse_ipv6(packet)


def test_builder_refusals() -> None:
    with pytest.raises(WireError):
        build_ipv6(A, B, NH_TCP, bytes(65536))
    with pytest.raises(WireError):
        fragment_body(7, True, 1)
    with pytest.raises(WireError):
        extension(NH_TCP, b"")
    with pytest.raises(WireError):
        extension(NH_FRAGMENT, b"")


@FAST
@given(src=addr6, dst=addr6, proto=st.sampled_from([NH_TCP, NH_ICMPV6, NH_NONE, 17]), payload=st.binary(max_size=300),
       hop=st.integers(0, 255), tc=st.integers(0, 255), flow=st.integers(0, 0xFFFFF),
       exts=st.lists(st.sampled_from(["d", "r", "f"]), max_size=4), hbh=st.booleans(), pad=st.binary(max_size=20))
def test_round_trip(src: bytes, dst: bytes, proto: int, payload: bytes, hop: int, tc: int, flow: int,
                    exts: list[str], hbh: bool, pad: bytes) -> None:
    chain = [extension(NH_HOPOPTS, bytes((1, 1, 0)))] if hbh else []
    for e in dict.fromkeys(exts):  # at most one fragment header
        chain.append({"d": extension(NH_DSTOPTS, SKIPPABLE), "r": extension(NH_ROUTING, bytes(6)),
                      "f": (NH_FRAGMENT, fragment_body(0, False, 7))}[e])
    pkt = build_ipv6(src, dst, proto, payload, hop_limit=hop, traffic_class=tc, flow_label=flow, extensions=chain)
    ip, data = parse_ipv6(pkt + pad)
    assert (ip.src, ip.dst, ip.proto, ip.hop_limit, ip.traffic_class, ip.flow_label) == (src, dst, proto, hop, tc, flow)
    assert ip.extensions == tuple(k for k, _ in chain) and bytes(data) == payload
    assert ip.header_length + len(payload) == len(pkt) == ip.total_length


@FAST
@given(blob=st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_wire_error(blob: bytes) -> None:
    for buf in (blob, b"\x60" + blob, build_ipv6(A, B, NH_HOPOPTS, blob)):
        try:
            parse_ipv6(buf)
        except WireError:
            pass


# -- TCP over IPv6 ---------------------------------------------------------------------------------


def _reference_tcp6_checksum(segment: bytes, src: bytes, dst: bytes) -> int:
    """RFC 8200 8.1 written out: src, dst, 32-bit upper-layer length, 3 zero bytes, next header 6."""
    pseudo = src + dst + struct.pack("!I", len(segment)) + bytes(3) + bytes((NH_TCP,))
    zeroed = segment[:16] + b"\0\0" + segment[18:]
    return reference_checksum(pseudo + zeroed)


@FAST
@given(src=addr6, dst=addr6, payload=st.binary(max_size=1500), seq=st.integers(0, 2**32 - 1),
       flags=st.sampled_from([SYN, ACK, ACK | PSH]))
def test_tcp_over_ipv6_checksum_matches_the_rfc_layout(src: bytes, dst: bytes, payload: bytes, seq: int,
                                                        flags: int) -> None:
    seg = TcpSegment(40000, 80, seq, 7, flags, 501, TcpOptions(ts=(1, 2)), payload)
    raw = build_tcp(seg, src, dst)
    assert struct.unpack_from("!H", raw, 16)[0] == _reference_tcp6_checksum(raw, src, dst)
    back = parse_tcp(raw, src, dst)
    assert (back.seq, back.flags, bytes(back.payload), back.options.ts) == (seq, flags, payload, (1, 2))
    corrupted = bytearray(raw)
    corrupted[-1 if payload else 5] ^= 0x10
    with pytest.raises(ChecksumError):
        parse_tcp(bytes(corrupted), src, dst)
    with pytest.raises(ChecksumError):  # the same bytes checked with the other pair of addresses
        parse_tcp(raw, dst, src[:15] + bytes(((src[15] + 1) & 0xFF,)))


def test_pure_ack_over_ipv6_is_build_tcp_byte_for_byte() -> None:
    ph = pseudo_header_residue(A, B, NH_TCP, 0)
    fast = build_pure_ack(40000, 80, 1000, 2000, 501, (5, 6), ((10, 20),), ph)
    slow = build_tcp(TcpSegment(40000, 80, 1000, 2000, ACK, 501, TcpOptions(ts=(5, 6), sack=((10, 20),))), A, B)
    assert fast == slow
    parse_tcp(build_ipv6(A, B, NH_TCP, fast)[40:], A, B)


def test_jumbo_length_pseudo_header_folds_both_halves() -> None:
    # a 32-bit upper-layer length (RFC 8200 8.1) adds its two 16-bit halves: residue arithmetic agrees
    n = 0x12345
    words = A + B + struct.pack("!I", n) + bytes(3) + bytes((NH_TCP,))
    assert pseudo_header_residue(A, B, NH_TCP, n) % 0xFFFF == (0xFFFF - reference_checksum(words)) % 0xFFFF


# -- addresses ----------------------------------------------------------------------------------------


def test_text_forms() -> None:
    assert ip6_str(ip6_bytes("2001:0db8:0000::0001")) == "2001:db8::1"
    assert ip6_str(ip6_bytes("::ffff:192.0.2.1")) == "::ffff:c000:201"
    for bad in ("2001:db8::1::2", "1.2.3.4", "fe80::1%eth0", "", "gggg::"):
        with pytest.raises(ValueError):
            ip6_bytes(bad)
    with pytest.raises(ValueError):
        ip6_str(bytes(4))


def test_zones() -> None:
    assert split_zone("fe80::1%eth0") == (ip6_bytes("fe80::1"), "eth0")
    assert split_zone("2001:db8::1") == (A, None)
    assert split_zone("ff02::1%veth-a") == (ALL_NODES, "veth-a")
    for bad in ("fe80::1%", "2001:db8::1%eth0", "%eth0"):
        with pytest.raises(ValueError):
            split_zone(bad)
    assert with_zone(ip6_bytes("fe80::1"), "eth0") == "fe80::1%eth0"
    assert with_zone(A, "eth0") == "2001:db8::1"  # a global address has no zone
    assert with_zone(ip6_bytes("fe80::1"), None) == "fe80::1"


def test_link_local_and_scopes() -> None:
    # modified EUI-64 (RFC 4291 appendix A): the U/L bit flipped, ff:fe in the middle
    ll = link_local_from_mac(bytes.fromhex("525400123456"))
    assert ip6_str(ll) == "fe80::5054:ff:fe12:3456"
    assert is_link_local(ll) and is_scoped(ll) and is_link_local(ip6_bytes("febf::1"))
    assert not is_link_local(ip6_bytes("fec0::1")) and not is_scoped(A)
    assert is_scoped(ip6_bytes("ff02::2")) and not is_scoped(ip6_bytes("ff05::2"))


def test_solicited_node_address_and_its_mac() -> None:
    target = ip6_bytes("2001:db8::abcd:1234:5678")
    group = solicited_node(target)
    assert ip6_str(group) == "ff02::1:ff34:5678"
    assert multicast_mac(group) == bytes.fromhex("3333ff345678")
    assert multicast_mac(ALL_NODES) == bytes.fromhex("333300000001")
    with pytest.raises(ValueError):
        multicast_mac(A)


def test_endpoint_text_writes_an_address_and_port_as_a_url_does() -> None:
    assert endpoint_text("2001:db8::1", 80) == "[2001:db8::1]:80"
    assert endpoint_text(bytes.fromhex("20010db8" + "00" * 11 + "01"), 8080) == "[2001:db8::1]:8080"
    assert endpoint_text(bytes([192, 0, 2, 1]), 443) == "192.0.2.1:443"
    assert endpoint_text("www.example", 443) == "www.example:443"
