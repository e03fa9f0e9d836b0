"""ICMP for IPv4 (RFC 792): parse and build, with what a TCP sender needs from it: the next-hop MTU of a
"fragmentation needed" (type 3 code 4, RFC 1191) and the TCP flow of the packet an error quotes.

The checksum covers the ICMP message alone (no pseudo-header, unlike ICMPv6 and TCP).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from rawtui.wire.checksum import internet_checksum, residue
from rawtui.wire.errors import ChecksumError, WireError
from rawtui.wire.ipv4 import PROTO_TCP, parse_ipv4

PROTO_ICMP = 1
ECHO_REPLY, DEST_UNREACHABLE, ECHO_REQUEST, TIME_EXCEEDED = 0, 3, 8, 11
CODE_FRAG_NEEDED = 4
MIN_MTU = 68  # RFC 791: every IPv4 module forwards a 68-byte datagram without fragmenting it
# RFC 1191 section 7: the plateaus to guess from when an old router says "fragmentation needed" with
# a next-hop MTU of 0
PLATEAUS = (65535, 32000, 17914, 8166, 4352, 2002, 1492, 1006, 508, 296, MIN_MTU)

_HDR = struct.Struct("!BBH4s")


@dataclass(frozen=True, slots=True)
class IcmpMessage:
    type: int
    code: int
    rest: bytes  # the 4 bytes after the checksum (identifier and sequence, next-hop MTU, pointer...)
    data: bytes  # an error's quoted packet (IPv4 header + at least 8 bytes), an echo's data

    @property
    def is_fragmentation_needed(self) -> bool:
        return self.type == DEST_UNREACHABLE and self.code == CODE_FRAG_NEEDED

    @property
    def next_hop_mtu(self) -> int | None:
        """A "fragmentation needed"'s MTU field (RFC 1191 4: the low 16 bits; 0 from pre-1191 routers)."""
        if not self.is_fragmentation_needed:
            return None
        return struct.unpack_from("!H", self.rest, 2)[0]


def parse_icmp(buf: bytes | bytearray | memoryview, verify: bool = True) -> IcmpMessage:
    """Parse one message (``buf`` = the IPv4 payload). Raises :class:`ChecksumError` (layer "icmp") or
    :class:`WireError`."""
    mv = memoryview(buf)
    if len(mv) < 8:
        raise WireError(f"ICMP message of {len(mv)} bytes is shorter than its 8-byte header")
    if verify and residue(mv) != 0:
        raise ChecksumError("icmp")
    kind, code, _, rest = _HDR.unpack_from(mv, 0)
    return IcmpMessage(kind, code, rest, bytes(mv[8:]))


def build_icmp(msg: IcmpMessage) -> bytes:
    if len(msg.rest) != 4:
        raise WireError("the ICMP header's second word is 4 bytes")
    data = bytearray(_HDR.pack(msg.type, msg.code, 0, msg.rest) + msg.data)
    struct.pack_into("!H", data, 2, internet_checksum(data))
    return bytes(data)


def fragmentation_needed(mtu: int, invoking: bytes) -> IcmpMessage:
    """The message a router sends when a DF packet does not fit the next hop (for tests and the lab)."""
    return IcmpMessage(DEST_UNREACHABLE, CODE_FRAG_NEEDED, struct.pack("!HH", 0, mtu), invoking)


def plateau_below(total_length: int) -> int:
    """RFC 1191 7: the largest plateau MTU smaller than the packet that did not fit (68 at least)."""
    return next((p for p in PLATEAUS if p < total_length), MIN_MTU)


@dataclass(frozen=True, slots=True)
class QuotedTcp:
    """The TCP packet an ICMP or ICMPv6 error quotes: its addresses, ports and sequence number, enough
    for a connection to tell whether the error is about it (RFC 5927 4.1)."""

    src: bytes
    dst: bytes
    src_port: int
    dst_port: int
    seq: int
    length: int  # the quoted packet's length as its IP header says


def quoted_tcp4(invoking: bytes | memoryview) -> QuotedTcp | None:
    """The TCP flow in an ICMP error's quoted IPv4 packet, or None when it is not a first (or only) TCP
    piece or is cut before the sequence number. Its total length may exceed what was quoted."""
    mv = memoryview(invoking)
    if len(mv) < 28:
        return None
    total = struct.unpack_from("!H", mv, 2)[0]
    try:  # the quote is cut short on purpose: parse its header as if the rest were there
        ip, tcp = parse_ipv4(bytes(mv).ljust(total, b"\0"), verify=False)
    except WireError:
        return None
    if ip.proto != PROTO_TCP or ip.frag_offset or ip.header_length + 8 > len(mv) or len(tcp) < 8:
        return None
    sport, dport, seq = struct.unpack_from("!HHI", tcp, 0)
    return QuotedTcp(ip.src, ip.dst, sport, dport, seq, ip.total_length)
