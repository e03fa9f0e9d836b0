"""ARP for IPv4 over Ethernet (RFC 826): the 28-byte packet."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from rawtui.wire.errors import WireError

OP_REQUEST = 1
OP_REPLY = 2
_ARP = struct.Struct("!HHBBH6s4s6s4s")
ARP_LEN = _ARP.size  # 28


@dataclass(frozen=True, slots=True)
class ArpPacket:
    op: int
    sender_mac: bytes
    sender_ip: bytes
    target_mac: bytes
    target_ip: bytes


def parse_arp(buf: bytes | bytearray | memoryview) -> ArpPacket:
    if len(buf) < ARP_LEN:
        raise WireError(f"ARP packet of {len(buf)} bytes is shorter than 28")
    htype, ptype, hlen, plen, op, sha, spa, tha, tpa = _ARP.unpack_from(buf, 0)
    if htype != 1 or ptype != 0x0800 or hlen != 6 or plen != 4:
        raise WireError(f"ARP for htype {htype} ptype {ptype:#06x} is not IPv4 over Ethernet")
    if op not in (OP_REQUEST, OP_REPLY):
        raise WireError(f"unknown ARP operation {op}")
    return ArpPacket(op, sha, spa, tha, tpa)


def build_arp(pkt: ArpPacket) -> bytes:
    return _ARP.pack(1, 0x0800, 6, 4, pkt.op, pkt.sender_mac, pkt.sender_ip, pkt.target_mac, pkt.target_ip)
