"""Ethernet II frames (with 802.1Q tags skipped on parse)."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from rawtui.wire.errors import WireError

ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
ETH_P_8021Q = 0x8100
ETH_P_8021AD = 0x88A8
BROADCAST = b"\xff" * 6
HEADER_LEN = 14
MIN_FRAME = 60  # without the FCS, which the NIC adds

_HDR = struct.Struct("!6s6sH")


@dataclass(slots=True)  # not frozen: a frozen __init__ costs ~3 us per record, per frame
class EthernetFrame:
    dst: bytes
    src: bytes
    ethertype: int
    payload: memoryview  # may include trailing padding: the IPv4 total length says where data ends
    vlan: int | None = None  # the (outer) VLAN ID when a tag was skipped


def parse_ethernet(buf: bytes | bytearray | memoryview) -> EthernetFrame:
    mv = memoryview(buf)
    if len(mv) < HEADER_LEN:
        raise WireError(f"frame of {len(mv)} bytes is shorter than an Ethernet header")
    dst, src, ethertype = _HDR.unpack_from(mv, 0)
    off = HEADER_LEN
    vlan = None
    while ethertype in (ETH_P_8021Q, ETH_P_8021AD):
        if len(mv) < off + 4:
            raise WireError("truncated 802.1Q tag")
        tci, ethertype = struct.unpack_from("!HH", mv, off)
        if vlan is None:
            vlan = tci & 0x0FFF
        off += 4
    return EthernetFrame(dst, src, ethertype, mv[off:], vlan)


def build_ethernet(dst: bytes, src: bytes, ethertype: int, payload: bytes | bytearray | memoryview) -> bytes:
    """A frame ready for AF_PACKET: header + payload, zero-padded to the 60-byte minimum."""
    frame = _HDR.pack(dst, src, ethertype) + bytes(payload)
    if len(frame) < MIN_FRAME:
        frame += bytes(MIN_FRAME - len(frame))
    return frame


def mac_str(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


def mac_bytes(text: str) -> bytes:
    parts = text.split(":")
    if len(parts) != 6 or not all(1 <= len(p) <= 2 and all(c in _HEX for c in p) for p in parts):
        raise ValueError(f"not a MAC address: {text!r}")  # int(p, 16) alone takes " 1", "+1", "0x1"
    return bytes(int(p, 16) for p in parts)


_HEX = frozenset("0123456789abcdefABCDEF")
