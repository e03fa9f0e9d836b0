"""Ethernet II frames: build (with minimum-size padding), parse (with 802.1Q / QinQ tags skipped)."""

from __future__ import annotations

import pytest

from rawtui.wire.errors import WireError
from rawtui.wire.ethernet import (
    BROADCAST,
    ETH_P_8021AD,
    ETH_P_8021Q,
    ETH_P_ARP,
    ETH_P_IP,
    HEADER_LEN,
    MIN_FRAME,
    EthernetFrame,
    build_ethernet,
    mac_bytes,
    mac_str,
    parse_ethernet,
)
from rawtui.wire.ipv4 import PROTO_TCP, build_ipv4, parse_ipv4
from rawtui.wire.tcp import SYN, TcpSegment, build_tcp, parse_tcp

SRC_MAC = bytes.fromhex("020000000001")
DST_MAC = bytes.fromhex("0200000000fe")
SRC_IP, DST_IP = bytes([192, 0, 2, 1]), bytes([192, 0, 2, 2])


def h(text: str) -> bytes:
    """Hex with spaces, newlines and # comments allowed."""
    return bytes.fromhex("".join(line.split("#")[0].replace(" ", "") for line in text.splitlines()))


# An ARP request (42 bytes) padded to the 60-byte minimum, written out from the Ethernet II layout.
ARP_FRAME = h(
    """
    ff ff ff ff ff ff  02 00 00 00 00 01  08 06
    00 01 08 00 06 04 00 01  02 00 00 00 00 01  c0 00 02 01  00 00 00 00 00 00  c0 00 02 02
    00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
    """
)


def test_parse_known_arp_frame() -> None:
    f = parse_ethernet(ARP_FRAME)
    assert f.dst == BROADCAST
    assert f.src == SRC_MAC
    assert f.ethertype == ETH_P_ARP
    assert f.vlan is None
    assert isinstance(f.payload, memoryview)
    assert len(f.payload) == 46  # the 28-byte ARP packet plus 18 bytes of padding: Ethernet keeps it
    assert bytes(f.payload[:8]) == h("0001 0800 0604 0001")


def test_build_pads_to_minimum() -> None:
    arp = ARP_FRAME[HEADER_LEN : HEADER_LEN + 28]
    assert build_ethernet(BROADCAST, SRC_MAC, ETH_P_ARP, arp) == ARP_FRAME
    assert len(build_ethernet(BROADCAST, SRC_MAC, ETH_P_ARP, b"")) == MIN_FRAME


@pytest.mark.parametrize("n", [46, 47, 100, 1500, 9000])
def test_build_does_not_pad_large_frames(n: int) -> None:
    payload = bytes(range(256)) * (n // 256) + bytes(range(n % 256))
    frame = build_ethernet(DST_MAC, SRC_MAC, ETH_P_IP, payload)
    assert frame == DST_MAC + SRC_MAC + b"\x08\x00" + payload


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_round_trip(kind: type) -> None:
    payload = b"hello, ethernet" * 5
    frame = build_ethernet(DST_MAC, SRC_MAC, 0x88B5, kind(payload))
    f = parse_ethernet(kind(frame))
    assert f == EthernetFrame(DST_MAC, SRC_MAC, 0x88B5, memoryview(payload), None)


def test_header_only_frame() -> None:
    f = parse_ethernet(DST_MAC + SRC_MAC + b"\x08\x00")
    assert f.ethertype == ETH_P_IP
    assert len(f.payload) == 0


@pytest.mark.parametrize("n", range(HEADER_LEN))
def test_short_frame(n: int) -> None:
    with pytest.raises(WireError):
        parse_ethernet(ARP_FRAME[:n])


# -- 802.1Q ------------------------------------------------------------------------------------------


def test_single_vlan_tag() -> None:
    frame = h(
        """
        02 00 00 00 00 fe  02 00 00 00 00 01
        81 00  60 64        # TPID 802.1Q; TCI: PCP 3, DEI 0, VID 100
        08 00  45 00
        """
    )
    f = parse_ethernet(frame)
    assert (f.dst, f.src) == (DST_MAC, SRC_MAC)
    assert f.ethertype == ETH_P_IP
    assert f.vlan == 100
    assert bytes(f.payload) == h("45 00")


def test_vlan_id_masks_pcp_and_dei() -> None:
    frame = DST_MAC + SRC_MAC + h("8100 fffe 0806") + bytes(28)
    f = parse_ethernet(frame)
    assert f.vlan == 0xFFE
    assert f.ethertype == ETH_P_ARP


@pytest.mark.parametrize("outer_tpid", [ETH_P_8021AD, ETH_P_8021Q])
def test_qinq_reports_outer_vlan(outer_tpid: int) -> None:
    frame = DST_MAC + SRC_MAC + outer_tpid.to_bytes(2, "big") + h("00c8  8100 0064  0800") + b"\x45payload"
    f = parse_ethernet(frame)
    assert f.vlan == 200  # the outer (service) tag
    assert f.ethertype == ETH_P_IP
    assert bytes(f.payload) == b"\x45payload"


def test_vlan_zero_is_reported_as_zero_not_none() -> None:
    f = parse_ethernet(DST_MAC + SRC_MAC + h("8100 a000 0800"))  # priority-tagged frame: VID 0
    assert f.vlan == 0
    assert f.ethertype == ETH_P_IP


@pytest.mark.parametrize(
    "tags",
    [h("8100"), h("8100 0064"), h("8100 0064 08"), h("88a8 00c8 8100 0064"), h("88a8 00c8 8100")],
)
def test_truncated_vlan_tag(tags: bytes) -> None:
    with pytest.raises(WireError):
        parse_ethernet(DST_MAC + SRC_MAC + tags)


def test_many_stacked_tags_are_bounded_by_the_frame() -> None:
    frame = DST_MAC + SRC_MAC + h("8100 0001") * 500 + h("0800")
    f = parse_ethernet(frame)
    assert f.vlan == 1
    assert f.ethertype == ETH_P_IP
    with pytest.raises(WireError):
        parse_ethernet(frame[:-2])


# -- padding: the IPv4 total length says where the data ends ------------------------------------------


def _syn_packet() -> bytes:
    seg = build_tcp(TcpSegment(40000, 80, 1, 0, SYN, 64240), SRC_IP, DST_IP)
    return build_ipv4(SRC_IP, DST_IP, PROTO_TCP, seg, ident=7)


def test_padding_stripped_by_ipv4_total_length() -> None:
    packet = _syn_packet()
    assert len(packet) == 40
    frame = build_ethernet(DST_MAC, SRC_MAC, ETH_P_IP, packet)
    assert len(frame) == 60
    f = parse_ethernet(frame)
    assert len(f.payload) == 46  # 6 bytes of padding still here
    ip, seg_bytes = parse_ipv4(f.payload)
    assert ip.total_length == 40
    assert len(seg_bytes) == 20  # ... and gone here
    seg = parse_tcp(seg_bytes, ip.src, ip.dst)  # the checksum would fail if the padding were included
    assert (seg.src_port, seg.dst_port, seg.flags) == (40000, 80, SYN)


def test_nonzero_padding_stripped_too() -> None:
    """Some NICs and switches pad with garbage rather than zeros."""
    frame = DST_MAC + SRC_MAC + h("8100 0064 0800") + _syn_packet() + b"\xa5" * 6
    f = parse_ethernet(frame)
    assert f.vlan == 100
    ip, seg_bytes = parse_ipv4(f.payload)
    seg = parse_tcp(seg_bytes, ip.src, ip.dst)
    assert bytes(seg.payload) == b""


# -- MAC addresses -----------------------------------------------------------------------------------


def test_mac_str_and_bytes() -> None:
    assert mac_str(SRC_MAC) == "02:00:00:00:00:01"
    assert mac_str(BROADCAST) == "ff:ff:ff:ff:ff:ff"
    assert mac_bytes("02:00:00:00:00:01") == SRC_MAC
    assert mac_bytes("FF:ff:Ff:fF:ff:ff") == BROADCAST
    assert mac_bytes("2:0:0:0:0:1") == SRC_MAC
    for mac in (SRC_MAC, DST_MAC, BROADCAST, bytes(range(6)), bytes(range(250, 256))):
        assert mac_bytes(mac_str(mac)) == mac


@pytest.mark.parametrize(
    "text",
    ["", "02:00:00:00:00", "02:00:00:00:00:01:02", "02-00-00-00-00-01", "020:0:0:0:0:1", "100:0:0:0:0:0",
     "0x2:0:0:0:0:1", "+2:0:0:0:0:1", " 2:0:0:0:0:1", "2:0:0:0:0:1 ", "g0:0:0:0:0:1", "::::::", "2:0:0::0:1"],
)
def test_mac_bytes_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        mac_bytes(text)
