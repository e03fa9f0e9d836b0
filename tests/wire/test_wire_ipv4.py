"""IPv4 headers (RFC 791): parse (options skipped, padding cut by total length, checksum verified)
and build."""

from __future__ import annotations

import struct

import pytest

from rawtui.wire.checksum import internet_checksum, reference_checksum
from rawtui.wire.errors import ChecksumError, WireError
from rawtui.wire.ipv4 import (
    FLAG_DF,
    FLAG_MF,
    MIN_HEADER,
    PROTO_TCP,
    IPv4Header,
    build_ipv4,
    ip_bytes,
    ip_str,
    parse_ipv4,
)

SRC, DST = bytes([192, 168, 0, 1]), bytes([192, 168, 0, 199])


def h(text: str) -> bytes:
    """Hex with spaces, newlines and # comments allowed."""
    return bytes.fromhex("".join(line.split("#")[0].replace(" ", "") for line in text.splitlines()))


# The classic worked example of an IPv4 header checksum (a UDP packet of 0x73 = 115 bytes).
KNOWN_HEADER = h(
    """
    45                 # version 4, IHL 5
    00                 # TOS
    00 73              # total length 115
    00 00              # identification
    40 00              # flags DF, fragment offset 0
    40                 # TTL 64
    11                 # protocol UDP
    b8 61              # header checksum
    c0 a8 00 01        # 192.168.0.1
    c0 a8 00 c7        # 192.168.0.199
    """
)
KNOWN_PAYLOAD = bytes(range(95))


def _with_checksum(hdr: bytes) -> bytes:
    hdr = hdr[:10] + b"\0\0" + hdr[12:]
    return hdr[:10] + internet_checksum(hdr).to_bytes(2, "big") + hdr[12:]


def _header(*, vihl: int = 0x45, total: int = 40, frag: int = 0x4000, proto: int = PROTO_TCP,
            options: bytes = b"") -> bytes:
    return _with_checksum(struct.pack("!BBHHHBBH4s4s", vihl, 0, total, 0x1234, frag, 64, proto, 0, SRC, DST)
                          + options)


# -- known bytes --------------------------------------------------------------------------------------


def test_known_header_checksum() -> None:
    assert reference_checksum(KNOWN_HEADER[:10] + b"\0\0" + KNOWN_HEADER[12:]) == 0xB861
    assert reference_checksum(KNOWN_HEADER) == 0


def test_parse_known_header() -> None:
    hdr, payload = parse_ipv4(KNOWN_HEADER + KNOWN_PAYLOAD)
    assert hdr == IPv4Header(
        src=SRC, dst=DST, proto=17, ttl=64, ident=0, flags=FLAG_DF, frag_offset=0, total_length=115,
        header_length=20, tos=0, checksum=0xB861, options=b"",
    )
    assert not hdr.is_fragment
    assert bytes(payload) == KNOWN_PAYLOAD
    assert isinstance(payload, memoryview)


def test_build_known_header() -> None:
    assert build_ipv4(SRC, DST, 17, KNOWN_PAYLOAD) == KNOWN_HEADER + KNOWN_PAYLOAD


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_round_trip(kind: type) -> None:
    packet = build_ipv4(SRC, DST, PROTO_TCP, kind(b"x" * 33), ident=0x1_2345, ttl=3, dont_fragment=False,
                        tos=0xB8)
    hdr, payload = parse_ipv4(kind(packet))
    assert (hdr.src, hdr.dst, hdr.proto, hdr.ttl, hdr.ident, hdr.tos) == (SRC, DST, PROTO_TCP, 3, 0x2345, 0xB8)
    assert hdr.flags == 0
    assert (hdr.total_length, hdr.header_length) == (53, 20)
    assert hdr.checksum == int.from_bytes(packet[10:12], "big")
    assert bytes(payload) == b"x" * 33


def test_build_sets_df_by_default() -> None:
    hdr, _ = parse_ipv4(build_ipv4(SRC, DST, PROTO_TCP, b""))
    assert hdr.flags == FLAG_DF
    assert hdr.frag_offset == 0
    assert not hdr.is_fragment


# -- padding and lengths ------------------------------------------------------------------------------


def test_ethernet_padding_cut_by_total_length() -> None:
    packet = build_ipv4(SRC, DST, PROTO_TCP, bytes(20))
    hdr, payload = parse_ipv4(packet + bytes(6))
    assert hdr.total_length == 40
    assert len(payload) == 20


@pytest.mark.parametrize("n", range(MIN_HEADER))
def test_shorter_than_header(n: int) -> None:
    with pytest.raises(WireError) as e:
        parse_ipv4(KNOWN_HEADER[:n])
    assert not isinstance(e.value, ChecksumError)


@pytest.mark.parametrize("version", [0, 1, 5, 6, 15])
def test_wrong_version(version: int) -> None:
    with pytest.raises(WireError, match="version"):
        parse_ipv4(_header(vihl=(version << 4) | 5) + bytes(20))


@pytest.mark.parametrize("ihl", range(5))
def test_header_length_below_20(ihl: int) -> None:
    with pytest.raises(WireError, match="header length"):
        parse_ipv4(_header(vihl=0x40 | ihl) + bytes(40), verify=False)


def test_header_length_beyond_buffer() -> None:
    hdr = _header(vihl=0x4F, total=60)  # claims 60 bytes of header; has 20 + 4
    with pytest.raises(WireError, match="header length"):
        parse_ipv4(hdr + bytes(4), verify=False)


@pytest.mark.parametrize("total", [0, 1, 19])
def test_total_length_below_header(total: int) -> None:
    with pytest.raises(WireError, match="total length"):
        parse_ipv4(_header(total=total) + bytes(40))


def test_total_length_below_header_with_options() -> None:
    with pytest.raises(WireError, match="total length"):
        parse_ipv4(_header(vihl=0x46, total=22, options=bytes(4)) + bytes(40))


def test_total_length_beyond_buffer() -> None:
    packet = build_ipv4(SRC, DST, PROTO_TCP, bytes(100))
    parse_ipv4(packet)
    for n in (MIN_HEADER, 21, 60, 119):
        with pytest.raises(WireError, match="total length") as e:
            parse_ipv4(packet[:n])
        assert not isinstance(e.value, ChecksumError)


def test_header_only_packet() -> None:
    hdr, payload = parse_ipv4(_header(total=20))
    assert hdr.total_length == hdr.header_length == 20
    assert len(payload) == 0


# -- super-frames -------------------------------------------------------------------------------------


def test_max_total_length_accepted() -> None:
    payload = bytes(range(256)) * 255 + bytes(range(235))
    assert MIN_HEADER + len(payload) == 0xFFFF
    packet = build_ipv4(SRC, DST, PROTO_TCP, payload)
    assert packet[2:4] == b"\xff\xff"
    hdr, got = parse_ipv4(packet)
    assert hdr.total_length == 0xFFFF
    assert got == payload


def test_build_rejects_too_large() -> None:
    with pytest.raises(WireError):
        build_ipv4(SRC, DST, PROTO_TCP, bytes(0xFFFF - MIN_HEADER + 1))


# -- options ------------------------------------------------------------------------------------------


def test_router_alert_option_skipped() -> None:
    opts = h("94 04 00 00")  # RFC 2113 Router Alert
    packet = _header(vihl=0x46, total=24 + 5, options=opts) + b"hello" + b"pad"
    hdr, payload = parse_ipv4(packet)
    assert hdr.header_length == 24
    assert hdr.options == opts
    assert bytes(payload) == b"hello"


def test_maximum_options_skipped() -> None:
    opts = h("07 27 04") + bytes(36) + h("00")  # Record Route with 9 slots, then EOL: 40 bytes
    assert len(opts) == 40
    packet = _header(vihl=0x4F, total=60 + 3, options=opts) + b"abc"
    hdr, payload = parse_ipv4(packet)
    assert hdr.header_length == 60
    assert hdr.options == opts
    assert bytes(payload) == b"abc"


def test_options_are_checksummed() -> None:
    packet = bytearray(_header(vihl=0x46, total=24, options=h("94 04 00 00")))
    packet[22] ^= 0x01
    with pytest.raises(ChecksumError):
        parse_ipv4(packet)
    assert parse_ipv4(packet, verify=False)[0].options == h("94 04 01 00")


# -- fragments ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frag", "flags", "offset", "is_fragment"),
    [
        (0x0000, 0, 0, False),
        (0x4000, FLAG_DF, 0, False),
        (0x2000, FLAG_MF, 0, True),  # first fragment
        (0x2001, FLAG_MF, 8, True),  # middle fragment
        (0x00B9, 0, 185 * 8, True),  # last fragment
        (0x1FFF, 0, 0x1FFF * 8, True),
        (0x8000, 0x4, 0, False),  # the reserved ("evil") bit
        (0xE000 | 0x1FFF, 0x7, 0xFFF8, True),
    ],
)
def test_fragments(frag: int, flags: int, offset: int, is_fragment: bool) -> None:
    hdr, _ = parse_ipv4(_header(frag=frag) + bytes(20))
    assert hdr.flags == flags
    assert hdr.frag_offset == offset
    assert hdr.is_fragment is is_fragment


# -- checksum -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("byte", range(MIN_HEADER))
def test_any_header_bit_flip_is_a_checksum_error_or_wire_error(byte: int) -> None:
    packet = bytearray(KNOWN_HEADER + KNOWN_PAYLOAD)
    packet[byte] ^= 0x01
    with pytest.raises(WireError):
        parse_ipv4(packet)


@pytest.mark.parametrize("byte", [1, 4, 5, 7, 8, 9, 10, 11, 12, 15, 16, 19])
def test_bad_checksum_has_layer(byte: int) -> None:
    packet = bytearray(KNOWN_HEADER + KNOWN_PAYLOAD)
    packet[byte] ^= 0x10
    with pytest.raises(ChecksumError) as e:
        parse_ipv4(packet)
    assert e.value.layer == "ipv4"
    assert isinstance(e.value, WireError)
    assert isinstance(e.value, ValueError)
    hdr, _ = parse_ipv4(packet, verify=False)  # verify=False reads it anyway
    assert hdr.checksum == int.from_bytes(packet[10:12], "big")


def test_payload_is_not_checksummed() -> None:
    packet = bytearray(KNOWN_HEADER + KNOWN_PAYLOAD)
    packet[40] ^= 0xFF
    _, payload = parse_ipv4(packet)
    assert payload[20] == KNOWN_PAYLOAD[20] ^ 0xFF


def test_zero_checksum_field_is_not_special() -> None:
    """IPv4 has no "no checksum" value: a zeroed field is just wrong (unless it happens to be right)."""
    packet = KNOWN_HEADER[:10] + b"\0\0" + KNOWN_HEADER[12:]
    with pytest.raises(ChecksumError):
        parse_ipv4(packet + KNOWN_PAYLOAD)


def test_negative_zero_checksum_accepted() -> None:
    """A header whose other words sum to 0xffff has checksum 0; 0xffff there must verify too (RFC 1624)."""
    base = bytearray(_header(total=20))
    # Tune the identification field so the rest of the header sums to -0.
    base[4:6] = b"\0\0"
    base[10:12] = b"\0\0"
    need = internet_checksum(bytes(base))
    base[4:6] = need.to_bytes(2, "big")  # the rest sums to S; adding ~S gives 0xffff
    assert internet_checksum(bytes(base)) == 0
    parse_ipv4(bytes(base))
    base[10:12] = b"\xff\xff"
    parse_ipv4(bytes(base))


# -- addresses ----------------------------------------------------------------------------------------


def test_ip_str_and_bytes() -> None:
    assert ip_str(SRC) == "192.168.0.1"
    assert ip_bytes("192.168.0.199") == DST
    assert ip_bytes("0.0.0.0") == bytes(4)
    assert ip_bytes("255.255.255.255") == b"\xff" * 4
    for addr in (SRC, DST, bytes([10, 0, 0, 1]), bytes([1, 2, 3, 4])):
        assert ip_bytes(ip_str(addr)) == addr


@pytest.mark.parametrize(
    "text",
    ["", "1.2.3", "1.2.3.4.5", "256.0.0.1", "1.2.3.-4", "1.2.3.4 junk", " 1.2.3.4", "1.2.3.4\n", "a.b.c.d",
     "010.0.0.1", "0x1.2.3.4", "1..2.3", "1.2.3.", "1.2.3.1000", "١.2.3.4", "+1.2.3.4"],
)
def test_ip_bytes_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        ip_bytes(text)
