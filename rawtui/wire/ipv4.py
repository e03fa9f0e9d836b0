"""IPv4 headers (RFC 791): parse (options skipped, padding stripped by total length) and build."""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

from rawtui.wire.checksum import internet_checksum, residue
from rawtui.wire.errors import ChecksumError, WireError

PROTO_TCP = 6
FLAG_DF = 0x2
FLAG_MF = 0x1
_HDR = struct.Struct("!BBHHHBBH4s4s")
MIN_HEADER = 20


@dataclass(slots=True)  # not frozen: a frozen __init__ costs ~3 us per record, per frame
class IPv4Header:
    src: bytes
    dst: bytes
    proto: int
    ttl: int
    ident: int
    flags: int  # 3 bits: reserved, DF, MF
    frag_offset: int  # in bytes
    total_length: int
    header_length: int
    tos: int
    checksum: int
    options: bytes = b""

    @property
    def is_fragment(self) -> bool:
        return bool(self.flags & FLAG_MF) or self.frag_offset != 0


def parse_ipv4(
    buf: bytes | bytearray | memoryview, verify: bool = True
) -> tuple[IPv4Header, memoryview]:
    """Parse a header; return it and the payload cut to the total length (Ethernet padding dropped).

    ``verify=False`` skips the header checksum (the kernel vouched for the frame, or it is not ready).
    Raises :class:`ChecksumError` (layer "ipv4") or :class:`WireError`.
    """
    mv = memoryview(buf)
    n = len(mv)
    if n < MIN_HEADER:
        raise WireError(f"IPv4 packet of {n} bytes is shorter than its 20-byte header")
    vihl, tos, total, ident, frag, ttl, proto, csum, src, dst = _HDR.unpack_from(mv, 0)
    if vihl >> 4 != 4:
        raise WireError(f"IP version {vihl >> 4} is not 4")
    hl = (vihl & 0x0F) * 4
    if hl < MIN_HEADER:
        raise WireError(f"IPv4 header length {hl} is below 20")
    if hl > n:
        raise WireError(f"IPv4 header length {hl} exceeds the {n} bytes received")
    if total < hl:
        raise WireError(f"IPv4 total length {total} is smaller than the header ({hl})")
    if total > n:
        raise WireError(f"IPv4 total length {total} exceeds the {n} bytes received (truncated)")
    if verify and residue(mv[:hl]) != 0:
        raise ChecksumError("ipv4")
    hdr = IPv4Header(
        src, dst, proto, ttl, ident, frag >> 13, (frag & 0x1FFF) * 8, total, hl, tos, csum,
        bytes(mv[MIN_HEADER:hl]) if hl > MIN_HEADER else b"",
    )
    return hdr, mv[hl:total]


def build_ipv4(
    src: bytes, dst: bytes, proto: int, payload: bytes | bytearray | memoryview, *,
    ident: int = 0, ttl: int = 64, dont_fragment: bool = True, tos: int = 0,
) -> bytes:
    total = MIN_HEADER + len(payload)
    if total > 0xFFFF:
        raise WireError(f"IPv4 packet of {total} bytes is too large")
    frag = (FLAG_DF << 13) if dont_fragment else 0
    hdr = bytearray(_HDR.pack(0x45, tos, total, ident & 0xFFFF, frag, ttl, proto, 0, src, dst))
    struct.pack_into("!H", hdr, 10, internet_checksum(hdr))
    return bytes(hdr) + bytes(payload)


def ip_str(addr: bytes) -> str:
    return socket.inet_ntoa(addr)


def ip_bytes(text: str) -> bytes:
    """Dotted-quad text to 4 bytes. Strict: ``inet_aton`` alone would accept "1.2.3.4 junk" and read
    "010.0.0.1" as octal (8.0.0.1)."""
    parts = text.split(".")
    if len(parts) != 4 or not all(p.isascii() and p.isdigit() and len(p) <= 3 for p in parts):
        raise ValueError(f"not an IPv4 address: {text!r}")
    if any((len(p) > 1 and p[0] == "0") or int(p) > 255 for p in parts):
        raise ValueError(f"not an IPv4 address: {text!r}")
    return socket.inet_aton(text)
