"""Capture files of every container, byte order and link type, written in-process for the tests.

These writers are independent of rawtui's reader (they follow the formats' specifications: pcap, the
pcapng draft, tcpdump's LINKTYPE_* pages), so a test can take the frames of one Ethernet capture, write them
as pcapng big-endian with nanosecond timestamps on two interfaces, as Linux cooked SLL2, raw IP..., and
compare rawtui's analysis of each.
"""

from __future__ import annotations

import gzip
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

ETH_P_IP, ETH_P_ARP, ETH_P_IPV6, ETH_P_8021Q, ETH_P_8021AD = 0x0800, 0x0806, 0x86DD, 0x8100, 0x88A8


@dataclass
class Rec:
    """A frame with its time (epoch seconds as an exact pair) and the interface it was captured on."""

    sec: int
    nsec: int
    data: bytes
    iface: int = 0

    @property
    def ts(self) -> float:
        return self.sec + self.nsec / 1e9


def read_classic(path: Path) -> list[Rec]:
    """The records of a little-endian microsecond Ethernet pcap (what rawtui's PcapWriter writes)."""
    buf = path.read_bytes()
    assert struct.unpack_from("<I", buf)[0] == 0xA1B2C3D4
    out, pos = [], 24
    while pos + 16 <= len(buf):
        sec, usec, incl, _orig = struct.unpack_from("<IIII", buf, pos)
        out.append(Rec(sec, usec * 1000, buf[pos + 16:pos + 16 + incl]))
        pos += 16 + incl
    return out


# -- link types: an Ethernet frame made into another link's frame ---------------------------------------

def relink(eth: bytes, linktype: int, *, vlans: Sequence[tuple[int, int]] = (), null_order: str = "<",
           outgoing: bool = False) -> bytes | None:
    """``eth`` (an Ethernet II frame) as a frame of ``linktype``; None when that link cannot carry it (ARP on
    raw IP). ``vlans``: (TPID, VLAN ID) tags to insert, outermost first (Ethernet only)."""
    dst, src, ethertype, payload = eth[:6], eth[6:12], struct.unpack_from("!H", eth, 12)[0], eth[14:]
    if linktype == 1:
        tags = b"".join(struct.pack("!HH", tpid, vid) for tpid, vid in vlans)
        return dst + src + tags + struct.pack("!H", ethertype) + payload
    if linktype == 113:  # Linux SLL: packet type, ARPHRD_ETHER, address length 6, address (8), protocol
        return struct.pack("!HHH8sH", 4 if outgoing else 0, 1, 6, src + b"\0\0", ethertype) + payload
    if linktype == 276:  # SLL2: protocol, reserved, ifindex, ARPHRD_ETHER, packet type, address length, address
        return struct.pack("!HHIHBB8s", ethertype, 0, 7, 1, 4 if outgoing else 0, 6, src + b"\0\0") + payload
    if ethertype not in (ETH_P_IP, ETH_P_IPV6):
        return None
    ip = _strip_padding(payload) if ethertype == ETH_P_IP else payload
    if linktype in (101, 228, 229):
        return ip
    family = 2 if ethertype == ETH_P_IP else 30
    if linktype == 0:
        return struct.pack(null_order + "I", family) + ip
    if linktype == 108:
        return struct.pack("!I", family) + ip
    raise ValueError(linktype)


def _strip_padding(ip: bytes) -> bytes:
    total = struct.unpack_from("!H", ip, 2)[0] if len(ip) >= 4 else len(ip)
    return ip[:total] if total <= len(ip) else ip


# -- classic pcap ----------------------------------------------------------------------------------------

def pcap_bytes(recs: Iterable[Rec], linktype: int, *, order: str = "<", nano: bool = False, fcs: int = 0,
               snaplen: int = 262144) -> bytes:
    """A classic pcap. ``fcs``: bytes of FCS appended to every frame and announced in the link-type field."""
    field = linktype | ((0x04000000 | (fcs // 2) << 28) if fcs else 0)
    out = bytearray(struct.pack(order + "IHHiIII", 0xA1B23C4D if nano else 0xA1B2C3D4, 2, 4, 0, 0, snaplen, field))
    for r in recs:
        data = r.data + b"\xee" * fcs
        frac = r.nsec if nano else r.nsec // 1000
        out += struct.pack(order + "IIII", r.sec, frac, len(data), len(data)) + data
    return bytes(out)


# -- pcapng ------------------------------------------------------------------------------------------------

def _block(order: str, btype: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    n = len(body) + 12
    return struct.pack(order + "II", btype, n) + body + struct.pack(order + "I", n)


def _option(order: str, code: int, value: bytes) -> bytes:
    return struct.pack(order + "HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def shb(order: str = "<") -> bytes:
    body = struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1) + _option(order, 4, b"rawtui tests") + \
        _option(order, 0, b"")
    return _block(order, 0x0A0D0D0A, body)


def idb(order: str, linktype: int, tsresol: int | None = None, tsoffset: int = 0, snaplen: int = 262144) -> bytes:
    opts = _option(order, 2, b"eth0")
    if tsresol is not None:
        opts += _option(order, 9, bytes([tsresol]))
    if tsoffset:
        opts += _option(order, 14, struct.pack(order + "q", tsoffset))
    return _block(order, 1, struct.pack(order + "HHI", linktype, 0, snaplen) + opts + _option(order, 0, b""))


def units_per_second(tsresol: int | None) -> int:
    if tsresol is None:
        return 1_000_000
    return 1 << (tsresol & 0x7F) if tsresol & 0x80 else 10 ** tsresol


def epb(order: str, rec: Rec, tsresol: int | None, tsoffset: int = 0) -> bytes:
    per_s = units_per_second(tsresol)
    units = (rec.sec - tsoffset) * per_s + rec.nsec * per_s // 1_000_000_000
    body = struct.pack(order + "IIIII", rec.iface, units >> 32, units & 0xFFFFFFFF, len(rec.data), len(rec.data))
    return _block(order, 6, body + rec.data + b"\0" * (-len(rec.data) % 4) + _option(order, 1, b"a comment")
                  + _option(order, 0, b""))


def spb(order: str, data: bytes) -> bytes:
    return _block(order, 3, struct.pack(order + "I", len(data)) + data)


def unknown_block(order: str) -> bytes:
    return _block(order, 0x0BAD, b"something a reader must skip") + _block(order, 5, b"\0" * 12)  # + stats


def pcapng_bytes(recs: Iterable[Rec], interfaces: Sequence[tuple[int, int | None]], *, order: str = "<",
                 tsoffset: int = 0, unknown: bool = True) -> bytes:
    """A pcapng: one section, ``interfaces`` as (link type, if_tsresol byte or None); each record on its
    ``iface``; unknown blocks between the packets when ``unknown``."""
    out = bytearray(shb(order))
    for linktype, res in interfaces:
        out += idb(order, linktype, res, tsoffset)
    for i, r in enumerate(recs):
        if unknown and i % 7 == 3:
            out += unknown_block(order)
        out += epb(order, r, interfaces[r.iface][1], tsoffset)
    return bytes(out)


def gzipped(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)
