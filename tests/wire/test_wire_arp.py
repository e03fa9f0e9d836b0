"""ARP for IPv4 over Ethernet (RFC 826)."""

from __future__ import annotations

import pytest

from rawtui.wire.arp import ARP_LEN, OP_REPLY, OP_REQUEST, ArpPacket, build_arp, parse_arp
from rawtui.wire.errors import WireError
from rawtui.wire.ethernet import BROADCAST, ETH_P_ARP, build_ethernet, parse_ethernet

MAC_A = bytes.fromhex("020000000001")
MAC_B = bytes.fromhex("0200000000fe")
IP_A, IP_B = bytes([192, 0, 2, 1]), bytes([192, 0, 2, 254])


def h(text: str) -> bytes:
    """Hex with spaces, newlines and # comments allowed."""
    return bytes.fromhex("".join(line.split("#")[0].replace(" ", "") for line in text.splitlines()))


# RFC 826 layout: ar$hrd ar$pro ar$hln ar$pln ar$op ar$sha ar$spa ar$tha ar$tpa
REQUEST = h(
    """
    00 01              # hardware type: Ethernet
    08 00              # protocol type: IPv4
    06 04              # hardware / protocol address lengths
    00 01              # operation: request
    02 00 00 00 00 01  # sender MAC
    c0 00 02 01        # sender IP 192.0.2.1
    00 00 00 00 00 00  # target MAC: unknown
    c0 00 02 fe        # target IP 192.0.2.254 ("who has")
    """
)
REPLY = h(
    """
    0001 0800 06 04 0002
    02 00 00 00 00 fe  c0 00 02 fe
    02 00 00 00 00 01  c0 00 02 01
    """
)


def test_lengths() -> None:
    assert ARP_LEN == 28 == len(REQUEST) == len(REPLY)


def test_parse_known_request() -> None:
    assert parse_arp(REQUEST) == ArpPacket(OP_REQUEST, MAC_A, IP_A, bytes(6), IP_B)


def test_parse_known_reply() -> None:
    assert parse_arp(REPLY) == ArpPacket(OP_REPLY, MAC_B, IP_B, MAC_A, IP_A)


def test_build_known() -> None:
    assert build_arp(ArpPacket(OP_REQUEST, MAC_A, IP_A, bytes(6), IP_B)) == REQUEST
    assert build_arp(ArpPacket(OP_REPLY, MAC_B, IP_B, MAC_A, IP_A)) == REPLY


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_parse_buffer_types(kind: type) -> None:
    assert parse_arp(kind(REPLY)).op == OP_REPLY


def test_in_a_padded_frame() -> None:
    """An ARP frame is padded to 60 bytes; the 18 trailing bytes are ignored."""
    frame = build_ethernet(BROADCAST, MAC_A, ETH_P_ARP, REQUEST)
    assert len(frame) == 60
    f = parse_ethernet(frame)
    assert f.ethertype == ETH_P_ARP
    assert parse_arp(f.payload) == parse_arp(REQUEST)
    assert parse_arp(REQUEST + b"\xa5" * 18) == parse_arp(REQUEST)


@pytest.mark.parametrize("n", range(ARP_LEN))
def test_truncated(n: int) -> None:
    with pytest.raises(WireError):
        parse_arp(REQUEST[:n])


@pytest.mark.parametrize(
    ("offset", "value"),
    [
        (0, b"\x00\x06"),  # hardware type IEEE 802
        (2, b"\x86\xdd"),  # protocol IPv6
        (4, b"\x08"),  # hardware address length
        (5, b"\x10"),  # protocol address length
        (6, b"\x00\x00"),  # operation 0
        (6, b"\x00\x03"),  # RARP request
        (6, b"\x00\x04"),  # RARP reply
        (6, b"\x01\x01"),
    ],
)
def test_rejects_other_formats(offset: int, value: bytes) -> None:
    bad = REQUEST[:offset] + value + REQUEST[offset + len(value) :]
    with pytest.raises(WireError):
        parse_arp(bad)


def test_gratuitous_arp_round_trip() -> None:
    pkt = ArpPacket(OP_REQUEST, MAC_A, IP_A, BROADCAST, IP_A)
    assert parse_arp(build_arp(pkt)) == pkt
