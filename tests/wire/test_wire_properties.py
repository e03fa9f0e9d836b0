"""Properties of every parser in rawtui.wire: arbitrary or mutated bytes raise WireError or nothing else,
single-bit corruption is always caught by the checksums, and random valid records round-trip."""

from __future__ import annotations

import os
import struct
from collections.abc import Callable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rawtui.wire.arp import ARP_LEN, ArpPacket, build_arp, parse_arp
from rawtui.wire.errors import ChecksumError, WireError
from rawtui.wire.ethernet import (
    ETH_P_8021AD,
    ETH_P_8021Q,
    ETH_P_IP,
    MIN_FRAME,
    EthernetFrame,
    build_ethernet,
    parse_ethernet,
)
from rawtui.wire.ipv4 import IPv4Header, build_ipv4, parse_ipv4
from rawtui.wire.tcp import (
    MIN_HEADER,
    NO_OPTIONS,
    TcpOptions,
    TcpSegment,
    build_options,
    build_tcp,
    parse_options,
    parse_tcp,
)

# Example counts keep the whole tests/wire/ run under 15 s; WIRE_HYPOTHESIS_SCALE=10 digs deeper.
SCALE = max(1, int(os.environ.get("WIRE_HYPOTHESIS_SCALE", "1")))
FAST = settings(max_examples=150 * SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FEW = settings(max_examples=100 * SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow])

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
mac = st.binary(min_size=6, max_size=6)
addr = st.binary(min_size=4, max_size=4)
raw_options = st.binary(max_size=44)


def options_from(blob: bytes, fit: bool = True) -> TcpOptions:
    """A TcpOptions record from 44 bytes (all zeros: no options), cheaper to draw than st.builds.
    With ``fit``, SACK blocks are dropped until the options fit in 40 bytes."""
    present = blob[0]
    o = TcpOptions(
        mss=int.from_bytes(blob[2:4], "big") if present & 1 else None,
        wscale=blob[4] % 15 if present & 2 else None,
        sack_permitted=bool(present & 4),
        sack=tuple(struct.unpack_from("!II", blob, 12 + 8 * i) for i in range(blob[1] % 5)),
        ts=struct.unpack_from("!II", blob, 4) if present & 8 else None,
    )
    while fit and o.sack and _options_size(o) > 40:
        o = TcpOptions(o.mss, o.wscale, o.sack_permitted, o.sack[:-1], o.ts)
    return o


def _options_size(o: TcpOptions) -> int:
    """What build_options should produce, in bytes (Linux's layout, 4-byte aligned)."""
    return (4 * (o.mss is not None) + 4 * (o.wscale is not None) + (4 + 8 * len(o.sack) if o.sack else 0)
            + (12 if o.sack_permitted and o.ts else 4 * o.sack_permitted + 12 * (o.ts is not None)))


tcp_options = st.binary(min_size=44, max_size=44).map(options_from)
any_tcp_options = st.binary(min_size=44, max_size=44).map(lambda b: options_from(b, fit=False))
arp_packets = st.binary(min_size=21, max_size=21).map(
    lambda b: ArpPacket(1 + (b[0] & 1), b[1:7], b[7:11], b[11:17], b[17:21])
)


def options_recipe(recipe: bytes) -> bytes:
    """Option bytes assembled from plausible pieces chosen by ``recipe``, so that the parser's inner
    branches (and their length checks) are reached far more often than with random bytes."""
    out, i = bytearray(), 0
    while i + 3 <= len(recipe):
        sel, a, b = recipe[i], recipe[i + 1], recipe[i + 2]
        i += 3
        piece = sel % 10
        if piece == 0:
            out += b"\x00"
        elif piece == 1:
            out += b"\x01"
        elif piece == 2:
            out += bytes([2, 4, a, b])
        elif piece == 3:
            out += bytes([3, 3, a])
        elif piece == 4:
            out += b"\x04\x02"
        elif piece == 5:
            n = a % 5
            out += bytes([5, 2 + 8 * n]) + recipe[:8 * n].ljust(8 * n, b"\x5a")
        elif piece == 6:
            out += b"\x08\x0a" + recipe[:8].ljust(8, b"\xa5")
        elif piece == 7:
            out += bytes([9 + a % 247, 2 + b % 9]) + bytes(b % 9)  # an unknown kind, valid length
        else:
            out += bytes([a, b])  # any kind with any length byte
    return bytes(out)


structured_options = st.binary(max_size=30).map(options_recipe)
# Bit positions to flip, from one cheap draw (taken modulo the length of whatever is flipped).
bit_positions = st.binary(min_size=2, max_size=12).map(
    lambda b: [int.from_bytes(b[i : i + 2], "big") for i in range(0, len(b) - 1, 2)]
)


def only_wire_errors(parse: Callable[[bytes], object], data: bytes) -> object | None:
    """Run a parser; WireError is an answer, any other exception fails the test."""
    try:
        return parse(data)
    except WireError:
        return None


def flips(data: bytes, bits: list[int]) -> bytes:
    out = bytearray(data)
    for bit in bits:
        bit %= 8 * len(out)
        out[bit // 8] ^= 0x80 >> (bit % 8)
    return bytes(out)


# -- arbitrary bytes ----------------------------------------------------------------------------------


@FAST
@given(st.binary(max_size=200))
def test_parse_ethernet_arbitrary(data: bytes) -> None:
    f = only_wire_errors(parse_ethernet, data)
    if f is not None:
        assert isinstance(f, EthernetFrame)
        assert len(f.payload) <= len(data) - 14


@FAST
@given(st.binary(max_size=60))
def test_parse_arp_arbitrary(data: bytes) -> None:
    p = only_wire_errors(parse_arp, data)
    if p is not None:
        assert build_arp(p) == data[:ARP_LEN]


@FAST
@given(st.binary(max_size=120), st.booleans())
def test_parse_ipv4_arbitrary(data: bytes, verify: bool) -> None:
    r = only_wire_errors(lambda d: parse_ipv4(d, verify=verify), data)
    if r is not None:
        hdr, payload = r
        assert 20 <= hdr.header_length <= 60
        assert hdr.header_length <= hdr.total_length <= len(data)
        assert len(payload) == hdr.total_length - hdr.header_length


@FAST
@given(st.binary(min_size=20, max_size=120).map(lambda d: bytes([0x40 | d[0] & 0x0F]) + d[1:]), st.booleans())
def test_parse_ipv4_arbitrary_version_4(data: bytes, verify: bool) -> None:
    """Arbitrary bytes behind a version-4 nibble (plain arbitrary bytes rarely get past the first check)."""
    only_wire_errors(lambda d: parse_ipv4(d, verify=verify), data)
    only_wire_errors(lambda d: parse_ipv4(d, verify=verify), data[:2] + len(data).to_bytes(2, "big") + data[4:])


@FAST
@given(st.binary(max_size=120), addr, addr, st.booleans())
def test_parse_tcp_arbitrary(data: bytes, src: bytes, dst: bytes, verify: bool) -> None:
    seg = only_wire_errors(lambda d: parse_tcp(d, src, dst, verify=verify), data)
    if seg is not None:
        assert isinstance(seg, TcpSegment)
        assert MIN_HEADER <= seg.header_length <= min(60, len(data))
        assert bytes(seg.payload) == data[seg.header_length :]


@FAST
@given(st.binary(min_size=20, max_size=100), st.integers(5, 15), addr, addr)
def test_parse_tcp_arbitrary_with_options(data: bytes, offset: int, src: bytes, dst: bytes) -> None:
    """Arbitrary bytes with a plausible data offset, so the options parser sees arbitrary options."""
    data = data[:12] + bytes([offset << 4]) + data[13:]
    only_wire_errors(lambda d: parse_tcp(d, src, dst, verify=False), data)
    only_wire_errors(lambda d: parse_tcp(d, src, dst, verify=True), data)


@FAST
@given(raw_options)
def test_parse_options_arbitrary(data: bytes) -> None:
    o = only_wire_errors(parse_options, data)
    if o is not None:
        _check_options(o)


@FAST
@given(structured_options)
def test_parse_options_structured(data: bytes) -> None:
    o = only_wire_errors(parse_options, data)
    if o is not None:
        _check_options(o)
    only_wire_errors(parse_options, memoryview(data))


def _check_options(o: TcpOptions) -> None:
    assert isinstance(o, TcpOptions)
    assert o.mss is None or 0 <= o.mss <= 0xFFFF
    assert o.wscale is None or 0 <= o.wscale <= 14
    assert 0 <= len(o.sack) <= 31
    assert all(len(block) == 2 for block in o.sack)
    assert o.ts is None or len(o.ts) == 2
    assert all(k not in (0, 1, 2, 3, 4, 5, 8) for k in o.unknown)


# -- valid headers, mutated ---------------------------------------------------------------------------
# (Fields are sliced out of one drawn blob: far cheaper for hypothesis than a dozen separate draws.)

OPTION_SAMPLES = [
    NO_OPTIONS,
    TcpOptions(mss=1460, wscale=7, sack_permitted=True, ts=(1, 0)),
    TcpOptions(mss=536),
    TcpOptions(ts=(0xFFFFFFFF, 0x80000000)),
    TcpOptions(ts=(5, 6), sack=((1, 2), (3, 4), (5, 6))),
    TcpOptions(sack=((0, 0xFFFFFFFF),) * 4),
    TcpOptions(mss=1400, wscale=14, sack_permitted=True),
]


def segment_from(blob: bytes, options: TcpOptions, payload: bytes) -> TcpSegment:
    """A TcpSegment whose numeric fields come from 17 bytes of ``blob``."""
    sport, dport, seq, ack, flags, win, urg = struct.unpack_from("!HHIIBHH", blob)
    return TcpSegment(sport, dport, seq, ack, flags, win, options, payload, urg)


tcp_segments = st.builds(segment_from, st.binary(min_size=17, max_size=17), tcp_options, st.binary(max_size=40))


@st.composite
def valid_frames(draw: st.DrawFn) -> tuple[bytes, bytes, bytes]:
    """An Ethernet frame carrying a valid IPv4 + TCP packet, maybe VLAN-tagged; and its addresses."""
    blob = draw(st.binary(min_size=47, max_size=47))
    src, dst, macs = blob[0:4], blob[4:8], blob[8:20]
    seg = segment_from(blob[20:37], draw(st.sampled_from(OPTION_SAMPLES)), draw(st.binary(max_size=40)))
    ident, ttl, tos, df = struct.unpack_from("!HBBB", blob, 37)
    packet = build_ipv4(src, dst, 6, build_tcp(seg, src, dst), ident=ident, ttl=ttl, tos=tos,
                        dont_fragment=bool(df & 1))
    frame = build_ethernet(macs[:6], macs[6:], ETH_P_IP, packet)
    for i in range(blob[42] % 3):  # 0, 1 or 2 tags
        tpid = ETH_P_8021AD if blob[43] >> i & 1 else ETH_P_8021Q
        frame = frame[:12] + tpid.to_bytes(2, "big") + blob[44 + i : 46 + i] + frame[12:]
    return frame, src, dst


def parse_frame(frame: bytes, src: bytes, dst: bytes, verify: bool = True) -> TcpSegment:
    """The whole receive path; only WireError may escape."""
    f = parse_ethernet(frame)
    if f.ethertype != ETH_P_IP:
        raise WireError("not IPv4")
    _, payload = parse_ipv4(f.payload, verify=verify)
    return parse_tcp(payload, src, dst, verify=verify)


@FEW
@given(valid_frames(), bit_positions, st.booleans())
def test_mutated_frames_raise_only_wire_errors(case: tuple[bytes, bytes, bytes], bits: list[int],
                                               verify: bool) -> None:
    frame, src, dst = case
    only_wire_errors(lambda d: parse_frame(d, src, dst, verify), flips(frame, bits))


@FEW
@given(valid_frames(), st.booleans())
def test_truncation_at_every_length(case: tuple[bytes, bytes, bytes], verify: bool) -> None:
    frame, src, dst = case
    parse_frame(frame, src, dst)
    for n in range(len(frame)):
        only_wire_errors(lambda d: parse_frame(d, src, dst, verify), frame[:n])


@FEW
@given(valid_frames(), st.integers(0, 2**20))
def test_single_bit_flip_in_ip_or_tcp_is_always_caught(case: tuple[bytes, bytes, bytes], pick: int) -> None:
    """Any one flipped bit inside the IPv4 header or the TCP segment is rejected with verify=True."""
    frame, src, dst = case
    f = parse_ethernet(frame)
    start = len(frame) - len(f.payload)
    total = int.from_bytes(frame[start + 2 : start + 4], "big")
    bit = start * 8 + pick % (total * 8)
    bad = flips(frame, [bit])
    try:
        parse_frame(bad, src, dst)
    except WireError:
        pass
    else:
        raise AssertionError(f"bit {bit - start * 8} of the IPv4 packet flipped and nothing noticed")


@FEW
@given(valid_frames(), st.integers(0, 2**20))
def test_bit_flip_in_padding_is_harmless(case: tuple[bytes, bytes, bytes], pick: int) -> None:
    frame, src, dst = case
    f = parse_ethernet(frame)
    start = len(frame) - len(f.payload)
    end = start + int.from_bytes(frame[start + 2 : start + 4], "big")
    if end == len(frame):
        return
    bit = end * 8 + pick % ((len(frame) - end) * 8)
    assert parse_frame(flips(frame, [bit]), src, dst) == parse_frame(frame, src, dst)


@FAST
@given(arp_packets, bit_positions)
def test_mutated_arp(pkt: ArpPacket, bits: list[int]) -> None:
    raw = build_arp(pkt)
    for n in range(len(raw)):
        only_wire_errors(parse_arp, raw[:n])
    only_wire_errors(parse_arp, flips(raw, bits))


@FAST
@given(tcp_options, bit_positions)
def test_mutated_options(o: TcpOptions, bits: list[int]) -> None:
    raw = build_options(o)
    for n in range(len(raw) + 1):
        only_wire_errors(parse_options, raw[:n])
    if raw:
        only_wire_errors(parse_options, flips(raw, bits))


# -- round trips --------------------------------------------------------------------------------------


@FAST
@given(mac, mac, st.integers(0x0600, 0xFFFF).filter(lambda t: t not in (ETH_P_8021Q, ETH_P_8021AD)),
       st.binary(max_size=100))
def test_ethernet_round_trip(dst: bytes, src: bytes, ethertype: int, payload: bytes) -> None:
    frame = build_ethernet(dst, src, ethertype, payload)
    assert len(frame) == max(MIN_FRAME, 14 + len(payload))
    f = parse_ethernet(frame)
    assert (f.dst, f.src, f.ethertype, f.vlan) == (dst, src, ethertype, None)
    assert bytes(f.payload) == payload + bytes(len(frame) - 14 - len(payload))


@FAST
@given(arp_packets)
def test_arp_round_trip(pkt: ArpPacket) -> None:
    assert parse_arp(build_arp(pkt)) == pkt


@FAST
@given(st.binary(min_size=14, max_size=14), st.binary(max_size=100))
def test_ipv4_round_trip(blob: bytes, payload: bytes) -> None:
    src, dst = blob[:4], blob[4:8]
    proto, ident, ttl, tos, df = struct.unpack_from("!BHBB?", blob, 8)
    packet = build_ipv4(src, dst, proto, payload, ident=ident, ttl=ttl, dont_fragment=df, tos=tos)
    hdr, got = parse_ipv4(packet)
    assert hdr == IPv4Header(src, dst, proto, ttl, ident, 0b010 if df else 0, 0, 20 + len(payload), 20, tos,
                             int.from_bytes(packet[10:12], "big"))
    assert bytes(got) == payload
    assert parse_ipv4(packet, verify=False) == (hdr, got)


@FAST
@given(any_tcp_options)
def test_options_round_trip(o: TcpOptions) -> None:
    try:
        raw = build_options(o)
    except WireError:
        assert _options_size(o) > 40
        return
    assert len(raw) == _options_size(o) <= 40
    assert parse_options(raw) == o


def test_wscale_round_trip_clamps() -> None:
    for shift in range(256):
        assert parse_options(build_options(TcpOptions(wscale=shift))) == TcpOptions(wscale=min(shift, 14))


@FAST
@given(tcp_segments, addr, addr)
def test_tcp_round_trip(seg: TcpSegment, src: bytes, dst: bytes) -> None:
    raw = build_tcp(seg, src, dst)
    got = parse_tcp(raw, src, dst)
    assert (got.src_port, got.dst_port, got.seq, got.ack, got.flags, got.window, got.urgent) == (
        seg.src_port, seg.dst_port, seg.seq, seg.ack, seg.flags, seg.window, seg.urgent)
    assert got.options == (seg.options if build_options(seg.options) else NO_OPTIONS)
    assert got.header_length == 20 + len(build_options(seg.options))
    assert bytes(got.payload) == bytes(seg.payload)
    assert got.checksum == int.from_bytes(raw[16:18], "big")
    assert parse_tcp(raw, src, dst, verify=False) == got


@FEW
@given(valid_frames())
def test_full_stack_round_trip(case: tuple[bytes, bytes, bytes]) -> None:
    frame, src, dst = case
    seg = parse_frame(frame, src, dst)
    assert parse_tcp(build_tcp(seg, src, dst), src, dst) == seg


@FEW
@given(valid_frames(), st.integers(0, 0xFFFF))
def test_checksum_errors_name_their_layer(case: tuple[bytes, bytes, bytes], delta: int) -> None:
    """A corrupted checksum field is reported as a ChecksumError of that layer."""
    frame, src, dst = case
    start = len(frame) - len(parse_ethernet(frame).payload)
    for field, layer in ((start + 10, "ipv4"), (start + 20 + 16, "tcp")):
        bad = bytearray(frame)
        old = int.from_bytes(bad[field : field + 2], "big")
        new = (old + 1 + delta % 0xFFFE) & 0xFFFF  # any other value ...
        if {old, new} == {0, 0xFFFF}:  # ... except the other ones'-complement zero, which is equivalent
            continue
        bad[field : field + 2] = new.to_bytes(2, "big")
        try:
            parse_frame(bytes(bad), src, dst)
        except ChecksumError as e:
            assert e.layer == layer
        else:
            raise AssertionError(f"{layer} checksum {old:#06x} -> {new:#06x} went unnoticed")
