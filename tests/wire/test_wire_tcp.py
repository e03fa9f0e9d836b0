"""TCP segments (RFC 9293) and their options (RFC 9293 MSS, RFC 7323 window scale and timestamps,
RFC 2018 SACK)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rawtui.wire.checksum import pseudo_header_residue, reference_checksum
from rawtui.wire.errors import ChecksumError, WireError
from rawtui.wire.ipv4 import PROTO_TCP, build_ipv4, parse_ipv4
from rawtui.wire.tcp import (
    ACK,
    CWR,
    ECE,
    FIN,
    MIN_HEADER,
    NO_OPTIONS,
    PSH,
    RST,
    SYN,
    URG,
    TcpOptions,
    TcpSegment,
    build_options,
    build_pure_ack,
    build_tcp,
    flags_str,
    parse_options,
    parse_tcp,
)

CLIENT, SERVER = bytes([192, 0, 2, 1]), bytes([192, 0, 2, 2])


def h(text: str) -> bytes:
    """Hex with spaces, newlines and # comments allowed."""
    return bytes.fromhex("".join(line.split("#")[0].replace(" ", "") for line in text.splitlines()))


# A Linux-style SYN, 192.0.2.1:49152 -> 192.0.2.2:80, written out from the RFC 9293 layout.
SYN_SEGMENT = h(
    """
    c0 00  00 50       # ports 49152 -> 80
    01 02 03 04        # sequence number
    00 00 00 00        # acknowledgment number
    a0 02              # data offset 10 (40 bytes), flags SYN
    fa f0              # window 64240
    04 b4              # checksum
    00 00              # urgent pointer
    02 04 05 b4        # MSS 1460
    04 02              # SACK permitted
    08 0a 00 00 00 01 00 00 00 00  # timestamps TSval 1, TSecr 0
    01                 # NOP
    03 03 07           # window scale 7
    """
)
SYN_OPTIONS = TcpOptions(mss=1460, wscale=7, sack_permitted=True, ts=(1, 0))

# A data segment 192.0.2.2:80 -> 192.0.2.1:49152 with the 12-byte NOP NOP TS block.
DATA_PAYLOAD = b"HTTP/1.1 200 OK\r\n"
DATA_SEGMENT = h(
    """
    00 50  c0 00
    0a 0b 0c 0d        # seq
    01 02 03 05        # ack
    80 18              # data offset 8 (32 bytes), flags PSH ACK
    01 f5              # window 501
    aa a7              # checksum
    00 00
    01 01 08 0a 00 00 ab cd 00 00 00 01  # NOP NOP TS(0xabcd, 1)
    """
) + DATA_PAYLOAD


def _pseudo(src: bytes, dst: bytes, n: int) -> bytes:
    return src + dst + struct.pack("!BBH", 0, PROTO_TCP, n)


# -- known bytes --------------------------------------------------------------------------------------


def test_known_checksums_match_reference() -> None:
    assert reference_checksum(_pseudo(CLIENT, SERVER, 40) + SYN_SEGMENT) == 0
    assert reference_checksum(_pseudo(SERVER, CLIENT, len(DATA_SEGMENT)) + DATA_SEGMENT) == 0


def test_parse_known_syn() -> None:
    seg = parse_tcp(SYN_SEGMENT, CLIENT, SERVER)
    assert (seg.src_port, seg.dst_port, seg.seq, seg.ack) == (49152, 80, 0x01020304, 0)
    assert seg.flags == SYN
    assert seg.window == 64240
    assert seg.checksum == 0x04B4
    assert seg.urgent == 0
    assert seg.header_length == 40
    assert seg.options == SYN_OPTIONS
    assert bytes(seg.payload) == b""


def test_build_known_syn() -> None:
    seg = TcpSegment(49152, 80, 0x01020304, 0, SYN, 64240, SYN_OPTIONS)
    assert build_tcp(seg, CLIENT, SERVER) == SYN_SEGMENT


def test_parse_known_data_segment() -> None:
    seg = parse_tcp(DATA_SEGMENT, SERVER, CLIENT)
    assert (seg.src_port, seg.dst_port, seg.seq, seg.ack) == (80, 49152, 0x0A0B0C0D, 0x01020305)
    assert seg.flags == PSH | ACK
    assert seg.has(PSH) and seg.has(ACK) and not seg.has(SYN)
    assert seg.window == 501
    assert seg.options == TcpOptions(ts=(0xABCD, 1))
    assert seg.header_length == 32
    assert isinstance(seg.payload, memoryview)
    assert bytes(seg.payload) == DATA_PAYLOAD


def test_build_known_data_segment() -> None:
    seg = TcpSegment(80, 49152, 0x0A0B0C0D, 0x01020305, PSH | ACK, 501, TcpOptions(ts=(0xABCD, 1)), DATA_PAYLOAD)
    assert build_tcp(seg, SERVER, CLIENT) == DATA_SEGMENT


def test_build_ignores_checksum_and_header_length_fields() -> None:
    seg = TcpSegment(49152, 80, 0x01020304, 0, SYN, 64240, SYN_OPTIONS, checksum=0xDEAD, header_length=60)
    assert build_tcp(seg, CLIENT, SERVER) == SYN_SEGMENT


# -- round trips --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_round_trip_buffer_types(kind: type) -> None:
    seg = TcpSegment(1, 65535, 2**32 - 1, 12345, FIN | ACK, 0, NO_OPTIONS, kind(b"bye"), urgent=7)
    got = parse_tcp(kind(build_tcp(seg, CLIENT, SERVER)), CLIENT, SERVER)
    assert (got.src_port, got.dst_port, got.seq, got.ack, got.flags, got.window, got.urgent) == (
        1, 65535, 2**32 - 1, 12345, FIN | ACK, 0, 7)
    assert got.options is NO_OPTIONS
    assert got.header_length == MIN_HEADER
    assert bytes(got.payload) == b"bye"


def test_seq_and_ack_wrap_modulo_2_32() -> None:
    seg = TcpSegment(1, 2, 2**32 + 5, 2**33 + 6, ACK, 100)
    got = parse_tcp(build_tcp(seg, CLIENT, SERVER), CLIENT, SERVER)
    assert (got.seq, got.ack) == (5, 6)


def test_equal_but_not_identical_empty_options() -> None:
    seg = TcpSegment(1, 2, 3, 4, ACK, 5, TcpOptions())
    assert len(build_tcp(seg, CLIENT, SERVER)) == MIN_HEADER


def test_in_ipv4_packet() -> None:
    tcp_bytes = build_tcp(TcpSegment(49152, 80, 1, 2, PSH | ACK, 502, TcpOptions(ts=(9, 8)), b"GET /"),
                          CLIENT, SERVER)
    ip, payload = parse_ipv4(build_ipv4(CLIENT, SERVER, PROTO_TCP, tcp_bytes) + bytes(6))
    seg = parse_tcp(payload, ip.src, ip.dst)
    assert bytes(seg.payload) == b"GET /"
    assert seg.options.ts == (9, 8)


def test_64k_payload_super_frame() -> None:
    """A GRO/TSO super-frame: IPv4 total length 65535 (the most it can say)."""
    payload = bytes(i * 7 & 0xFF for i in range(0xFFFF - 40))
    seg = TcpSegment(80, 49152, 10, 20, ACK, 501, NO_OPTIONS, payload)
    packet = build_ipv4(SERVER, CLIENT, PROTO_TCP, build_tcp(seg, SERVER, CLIENT))
    assert len(packet) == 0xFFFF
    ip, tcp_bytes = parse_ipv4(packet)
    got = parse_tcp(tcp_bytes, ip.src, ip.dst)
    assert got.payload == payload
    bad = bytearray(packet)
    bad[-1] ^= 1
    with pytest.raises(ChecksumError):
        parse_tcp(parse_ipv4(bad)[1], ip.src, ip.dst)


def test_64k_payload_beyond_ipv4() -> None:
    """parse_tcp itself takes any length (a receive offload may hand it more than IPv4 can describe)."""
    payload = b"z" * 65536
    seg = parse_tcp(build_tcp(TcpSegment(1, 2, 3, 4, ACK, 5, NO_OPTIONS, payload), CLIENT, SERVER), CLIENT,
                    SERVER)
    assert len(seg.payload) == 65536


# -- errors -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", range(MIN_HEADER))
def test_shorter_than_header(n: int) -> None:
    with pytest.raises(WireError) as e:
        parse_tcp(SYN_SEGMENT[:n], CLIENT, SERVER)
    assert not isinstance(e.value, ChecksumError)


@pytest.mark.parametrize("offset", range(5))
def test_data_offset_below_5(offset: int) -> None:
    bad = SYN_SEGMENT[:12] + bytes([offset << 4]) + SYN_SEGMENT[13:]
    with pytest.raises(WireError, match="data offset") as e:
        parse_tcp(bad, CLIENT, SERVER, verify=False)
    assert not isinstance(e.value, ChecksumError)


@pytest.mark.parametrize("n", range(MIN_HEADER, 40))
def test_data_offset_beyond_segment(n: int) -> None:
    with pytest.raises(WireError, match="data offset"):
        parse_tcp(SYN_SEGMENT[:n], CLIENT, SERVER, verify=False)


@pytest.mark.parametrize("byte", [b for b in range(40) if b != 12])  # (byte 12 holds the data offset)
def test_bad_checksum_has_layer(byte: int) -> None:
    bad = bytearray(SYN_SEGMENT)
    bad[byte] ^= 0x04
    with pytest.raises(ChecksumError) as e:
        parse_tcp(bad, CLIENT, SERVER)
    assert e.value.layer == "tcp"
    assert isinstance(e.value, WireError)


def test_checksum_covers_the_pseudo_header() -> None:
    with pytest.raises(ChecksumError) as e:
        parse_tcp(SYN_SEGMENT, CLIENT, bytes([192, 0, 2, 3]))
    assert e.value.layer == "tcp"
    with pytest.raises(ChecksumError):
        parse_tcp(SYN_SEGMENT, bytes([10, 0, 2, 1]), SERVER)
    with pytest.raises(ChecksumError):
        parse_tcp(DATA_SEGMENT[:-1], SERVER, CLIENT)  # the length is in the pseudo-header too
    # Swapping src and dst leaves the sum alone: the checksum cannot tell (a limit of RFC 1071 sums).
    parse_tcp(SYN_SEGMENT, SERVER, CLIENT)


def test_verify_false_reads_bad_checksum() -> None:
    bad = SYN_SEGMENT[:16] + b"\0\0" + SYN_SEGMENT[18:]
    seg = parse_tcp(bad, CLIENT, SERVER, verify=False)
    assert seg.checksum == 0
    assert seg.options == SYN_OPTIONS


def test_checksum_matches_manual_computation() -> None:
    seg = TcpSegment(5000, 6000, 111, 222, PSH | ACK, 1000, TcpOptions(sack=((1, 2),)), b"odd length!")
    wire = build_tcp(seg, CLIENT, SERVER)
    zeroed = wire[:16] + b"\0\0" + wire[18:]
    assert int.from_bytes(wire[16:18], "big") == reference_checksum(_pseudo(CLIENT, SERVER, len(wire)) + zeroed)


# -- options ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("", NO_OPTIONS),
        ("02 04 05 b4", TcpOptions(mss=1460)),
        ("02 04 ff ff", TcpOptions(mss=65535)),
        ("02 04 00 00", TcpOptions(mss=0)),
        ("01 03 03 00", TcpOptions(wscale=0)),
        ("01 03 03 0e", TcpOptions(wscale=14)),
        ("01 03 03 0f", TcpOptions(wscale=14)),  # RFC 7323 2.3: > 14 is treated as 14
        ("01 03 03 ff", TcpOptions(wscale=14)),
        ("04 02", TcpOptions(sack_permitted=True)),
        ("01 01 04 02", TcpOptions(sack_permitted=True)),
        ("08 0a 00 00 00 01 ff ff ff ff", TcpOptions(ts=(1, 0xFFFFFFFF))),
        ("01 01 08 0a 12 34 56 78 9a bc de f0", TcpOptions(ts=(0x12345678, 0x9ABCDEF0))),
        ("08 0a 12 34 56 78 9a bc de f0 01 01", TcpOptions(ts=(0x12345678, 0x9ABCDEF0))),
        ("01 01 05 0a 00 00 00 01 00 00 00 02", TcpOptions(sack=((1, 2),))),
        ("05 12" + " 00 00 00 01 00 00 00 02" + " ff ff ff f0 00 00 00 10",
         TcpOptions(sack=((1, 2), (0xFFFFFFF0, 0x10)))),
        ("05 1a" + " 00 00 00 0a 00 00 00 0b" * 3, TcpOptions(sack=((10, 11),) * 3)),
        ("05 22" + " 00 00 00 0a 00 00 00 0b" * 4, TcpOptions(sack=((10, 11),) * 4)),
        ("00", NO_OPTIONS),  # EOL
        ("00 00 00 00", NO_OPTIONS),
        ("01 01 01 01", NO_OPTIONS),
        ("02 04 05 b4 00 ff ff ff", TcpOptions(mss=1460)),  # nothing after EOL is read
        ("00 02 04 05 b4", NO_OPTIONS),
        ("00 02", NO_OPTIONS),  # (a truncated option after EOL is not an error)
        ("1e 04 00 00", TcpOptions(unknown=(30,))),  # MPTCP
        ("22 02 01 01", TcpOptions(unknown=(34,))),  # TCP Fast Open cookie request
        ("fe 06 f9 89 00 00 02 04 05 b4", TcpOptions(mss=1460, unknown=(254,))),  # RFC 6994 experiment
        ("13 12" + " 00" * 16 + " 01 01", TcpOptions(unknown=(19,))),  # TCP MD5 signature
        ("09 02 0a 02 04 02", TcpOptions(sack_permitted=True, unknown=(9, 10))),
        ("02 04 05 b4 02 04 02 18", TcpOptions(mss=536)),  # a repeated option: the last one wins
    ],
)
def test_parse_options(raw: str, expected: TcpOptions) -> None:
    assert parse_options(h(raw)) == expected
    assert parse_options(memoryview(h(raw))) == expected


def test_parse_all_options_together() -> None:
    raw = h("02 04 05 b4  04 02  08 0a 00 00 00 07 00 00 00 08  01 03 03 09  fd 04 00 00")
    assert parse_options(raw) == TcpOptions(1460, 9, True, (), (7, 8), (253,))


def test_parse_sack_with_timestamps_like_linux() -> None:
    raw = h("01 01 08 0a 00 00 00 07 00 00 00 08  01 01 05 12") + struct.pack("!4I", 100, 200, 300, 400)
    assert parse_options(raw) == TcpOptions(ts=(7, 8), sack=((100, 200), (300, 400)))


@pytest.mark.parametrize(
    "raw",
    [
        "02",  # kind, no length byte
        "01 01 01 08",
        "fe",
        "02 04 05",  # length beyond the options
        "08 0a 00 00 00 01 00 00 00",
        "05 0a 00 00 00 01 00 00 00",
        "fe 08 00 00",
        "02 00 05 b4",  # length < 2
        "02 01 05 b4",
        "fe 00",
        "fe 01",
        "02 03 05",  # MSS of the wrong length
        "02 05 05 b4 00",
        "03 02",  # window scale of the wrong length
        "03 04 07 00",
        "04 03 00",  # SACK-permitted of the wrong length
        "04 04 00 00",
        "05 02",  # SACK without blocks
        "05 06 00 00 00 01",  # SACK of a non-multiple of 8
        "05 0b" + " 00" * 9,
        "08 08 00 00 00 01 00 00",  # timestamps of the wrong length
        "08 0c" + " 00" * 10,
        "01 01 08 0a 00 00 00 01 00 00 00",  # 11 bytes: not the fast path, truncated
    ],
)
def test_bad_options(raw: str) -> None:
    with pytest.raises(WireError) as e:
        parse_options(h(raw))
    assert not isinstance(e.value, ChecksumError)


def test_bad_options_in_a_segment() -> None:
    seg = bytearray(SYN_SEGMENT)
    seg[21] = 0x10  # MSS length 16: runs past the end of the options
    with pytest.raises(WireError):
        parse_tcp(seg, CLIENT, SERVER, verify=False)


# -- build_options ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("opts", "raw"),
    [
        (NO_OPTIONS, ""),
        (TcpOptions(mss=1460), "02 04 05 b4"),
        (TcpOptions(sack_permitted=True), "01 01 04 02"),
        (TcpOptions(ts=(1, 2)), "01 01 08 0a 00 00 00 01 00 00 00 02"),
        (TcpOptions(wscale=7), "01 03 03 07"),
        (TcpOptions(sack=((1, 2),)), "01 01 05 0a 00 00 00 01 00 00 00 02"),
        (SYN_OPTIONS, "02 04 05 b4 04 02 08 0a 00 00 00 01 00 00 00 00 01 03 03 07"),
        (TcpOptions(mss=1460, sack_permitted=True, wscale=7), "02 04 05 b4 01 01 04 02 01 03 03 07"),
        (TcpOptions(mss=1460, wscale=7), "02 04 05 b4 01 03 03 07"),
        (TcpOptions(unknown=(30, 34)), ""),  # unknown kinds are never sent
    ],
)
def test_build_options_known(opts: TcpOptions, raw: str) -> None:
    out = build_options(opts)
    assert out == h(raw)
    assert len(out) % 4 == 0
    assert parse_options(out) == TcpOptions(opts.mss, opts.wscale, opts.sack_permitted, opts.sack, opts.ts)


@pytest.mark.parametrize("blocks", [1, 2, 3, 4])
def test_build_sack_blocks(blocks: int) -> None:
    sack = tuple((i * 1000, i * 1000 + 500) for i in range(blocks))
    out = build_options(TcpOptions(sack=sack))
    assert len(out) == 4 + 8 * blocks
    assert parse_options(out) == TcpOptions(sack=sack)
    out = build_options(TcpOptions(sack=sack[:3], ts=(5, 6)))  # with timestamps: at most 3 fit
    assert parse_options(out) == TcpOptions(sack=sack[:3], ts=(5, 6))


def test_build_options_too_long() -> None:
    with pytest.raises(WireError):
        build_options(TcpOptions(sack=((1, 2),) * 5))
    with pytest.raises(WireError):
        build_options(TcpOptions(ts=(1, 2), sack=((1, 2),) * 4))


def test_build_options_wscale_above_14_is_read_back_as_14() -> None:
    assert parse_options(build_options(TcpOptions(wscale=15))) == TcpOptions(wscale=14)


def test_build_syn_ack_round_trip() -> None:
    opts = TcpOptions(mss=1400, wscale=10, sack_permitted=True, ts=(123, 456))
    seg = TcpSegment(80, 49152, 7, 0x01020305, SYN | ACK, 65160, opts)
    got = parse_tcp(build_tcp(seg, SERVER, CLIENT), SERVER, CLIENT)
    assert got.options == opts
    assert got.header_length == 40
    assert got.flags == SYN | ACK


# -- flags --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "text"),
    [
        (0, "."),
        (SYN, "S"),
        (SYN | ACK, "SA"),
        (ACK, "A"),
        (PSH | ACK, "PA"),
        (FIN | ACK, "FA"),
        (FIN | PSH | ACK, "FPA"),
        (RST, "R"),
        (RST | ACK, "RA"),
        (URG | ACK, "AU"),
        (SYN | ECE | CWR, "SEC"),
        (0xFF, "SFRPAUEC"),
    ],
)
def test_flags_str(flags: int, text: str) -> None:
    assert flags_str(flags) == text


def test_flag_values() -> None:
    assert [FIN, SYN, RST, PSH, ACK, URG, ECE, CWR] == [1 << i for i in range(8)]


def test_flags_byte_is_parsed_whole() -> None:
    raw = bytearray(build_tcp(TcpSegment(1, 2, 3, 4, 0xFF, 5), CLIENT, SERVER))
    assert parse_tcp(raw, CLIENT, SERVER).flags == 0xFF
    raw[12] |= 0x0F  # reserved bits and the old NS bit are not flags here
    assert parse_tcp(raw, CLIENT, SERVER, verify=False).flags == 0xFF


@settings(max_examples=300, deadline=None)
@given(
    seq=st.integers(0, 2**32 - 1), ack=st.integers(0, 2**32 - 1), window=st.integers(0, 0xFFFF),
    ts=st.none() | st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)),
    blocks=st.lists(st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)), max_size=4),
)
def test_pure_ack_is_what_build_tcp_makes(seq: int, ack: int, window: int, ts: tuple[int, int] | None,
                                          blocks: list[tuple[int, int]]) -> None:
    """The ACK fast builder and the general one agree byte for byte (one rule: the layout and checksum)."""
    sack = tuple(blocks[: 3 if ts else 4])
    src, dst = bytes([10, 0, 2, 15]), bytes([10, 0, 2, 2])
    general = build_tcp(TcpSegment(40000, 8080, seq, ack, ACK, window, TcpOptions(ts=ts, sack=sack)), src, dst)
    fast = build_pure_ack(40000, 8080, seq, ack, window, ts, sack, pseudo_header_residue(src, dst, PROTO_TCP, 0))
    assert fast == general
    assert parse_tcp(fast, src, dst, verify=True).options == TcpOptions(ts=ts, sack=sack)
