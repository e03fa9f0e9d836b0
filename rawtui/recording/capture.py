"""Capture files as other tools write them: classic pcap, pcapng, either gzip-compressed.

:func:`open_capture` reads the file's header (and says :class:`CaptureError` when it is no capture);
the :class:`Capture` it returns yields one :class:`CapturedFrame` per packet record, numbered from 1 as
Wireshark numbers them (``frame.number``), with the timestamp in epoch seconds and the link type of the
interface it was captured on. A capture cut short or corrupt mid-way ends the iteration: ``truncated_at``
then says the number of the frame that could not be read and ``problem`` why.

Read: classic pcap in both byte orders, micro- and nanosecond magic, the FCS-length bits of the link-type
field (the FCS is cut off the frames); pcapng section header, interface description (link type,
``if_tsresol``, ``if_tsoffset``), enhanced, simple and (obsolete) packet blocks, any number of interfaces
and sections, both byte orders; other blocks are skipped. dpkt's readers were not enough here (its pcapng
reader takes the first interface's link type and resolution for every packet and reads a block's declared
length whatever it is), and the format is small, so it is read here.

Bounded on any input: a record or block longer than :data:`MAX_RECORD` is corruption (nothing that size
is allocated), every record consumes its own bytes, so the work is linear in the file's size.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from rawtui.errors import UsageError

__all__ = ["MAX_RECORD", "Capture", "CaptureError", "CapturedFrame", "NotACapture", "is_gzip", "open_capture"]

MAX_RECORD = 1 << 24  # 16 MiB: larger than any snap length in use (262144) by far
GZIP_MAGIC = b"\x1f\x8b"
PCAP_MAGIC_MICRO = 0xA1B2C3D4
PCAP_MAGIC_NANO = 0xA1B23C4D
PCAPNG_SHB = 0x0A0D0D0A
PCAPNG_BOM = 0x1A2B3C4D
_BT_IDB, _BT_PB, _BT_SPB, _BT_EPB = 1, 2, 3, 6
_OPT_TSRESOL, _OPT_TSOFFSET = 9, 14
_READ_BUFFER = 1 << 20
_CHUNK = 1 << 18


class CaptureError(UsageError):
    """The file is not a capture rawtui reads (exit code 2, a usage error): one line naming the file."""


class NotACapture(CaptureError):
    """The file starts with neither a pcap nor a pcapng magic number (maybe another kind of recording)."""


@dataclass(slots=True)
class CapturedFrame:
    """One packet record: ``number`` counts from 1 (Wireshark's frame.number), ``ts`` is epoch seconds,
    ``interface`` the pcapng interface index (0 for classic pcap), ``data`` the captured bytes."""

    number: int
    ts: float
    linktype: int
    data: bytes
    interface: int = 0


def is_gzip(path: str | Path) -> bool:
    """Whether the file starts with the gzip magic number."""
    try:
        with open(path, "rb") as f:
            return f.read(2) == GZIP_MAGIC
    except OSError:
        return False


def _open(path: Path) -> tuple[BinaryIO, bool]:
    """The file, decompressed when gzip (and whether it was)."""
    raw = open(path, "rb", buffering=_READ_BUFFER)  # noqa: SIM115 - the caller closes it
    if raw.read(2) == GZIP_MAGIC:
        raw.close()
        return gzip.open(path, "rb"), True  # type: ignore[return-value]
    raw.seek(0)
    return raw, False


_GZIP_ERRORS = (OSError, EOFError, zlib.error)


def open_capture(path: str | Path) -> Capture:
    """The capture at ``path`` (pcap or pcapng, maybe gzip-compressed). Raises :class:`CaptureError` when the
    file cannot be read or is not a capture."""
    p = Path(path)
    try:
        f, compressed = _open(p)
    except OSError as exc:
        raise CaptureError(f"cannot read the capture {p}: {exc.strerror or exc}") from None
    try:
        head = f.read(4)
    except _GZIP_ERRORS as exc:
        raise NotACapture(f"{p}: not a capture (a damaged gzip file: {exc})") from None
    finally:
        f.close()
    kind = _kind(head)
    if kind is None:
        what = "gzip-compressed file" if compressed else "file"
        raise NotACapture(f"{p}: not a capture: this {what} is neither pcap nor pcapng")
    cap = Capture(p, kind, compressed)
    cap.check_header()
    return cap


def _kind(head: bytes) -> str | None:
    if len(head) < 4:
        return None
    for order in "<>":
        magic = struct.unpack(order + "I", head)[0]
        if magic in (PCAP_MAGIC_MICRO, PCAP_MAGIC_NANO):
            return "pcap"
    if struct.unpack("<I", head)[0] == PCAPNG_SHB:
        return "pcapng"
    return None


class _Corrupt(Exception):
    """The capture cannot be read past this point (the message says why)."""


class _Interface:
    __slots__ = ("linktype", "offset", "scale", "snaplen")

    def __init__(self, linktype: int, snaplen: int, scale: int, offset: int) -> None:
        self.linktype = linktype
        self.snaplen = snaplen
        self.scale = scale  # units per second: 10**6 by default
        self.offset = offset  # if_tsoffset, seconds


class Capture:
    """A capture file; iterate for its :class:`CapturedFrame` records (each iteration reads the file anew).

    After an iteration: ``frames`` read, ``truncated_at`` (the frame number that could not be read, or
    None when the file ended cleanly) with ``problem`` saying why, ``linktypes`` seen, and ``bytes_read``
    (the work done, for tests of the linear bound).
    """

    def __init__(self, path: Path, kind: str, compressed: bool) -> None:
        self.path = path
        self.kind = kind  # "pcap" | "pcapng"
        self.compressed = compressed
        self.truncated_at: int | None = None
        self.problem: str | None = None
        self.frames = 0
        self.bytes_read = 0
        self.linktypes: set[int] = set()

    @property
    def description(self) -> str:
        return ("gzip-compressed " if self.compressed else "") + self.kind

    def check_header(self) -> None:
        """Raise :class:`CaptureError` when the file header itself is unreadable."""
        f, _ = _open(self.path)
        try:
            if self.kind == "pcap":
                self._pcap_header(f)
            else:
                self._shb(f)
        except (_Corrupt, *_GZIP_ERRORS) as exc:
            raise CaptureError(f"{self.path}: not a capture rawtui can read ({self.description}: {exc})") from None
        finally:
            f.close()

    def __iter__(self) -> Iterator[CapturedFrame]:
        self.truncated_at = None
        self.problem = None
        self.frames = 0
        self.bytes_read = 0
        f, _ = _open(self.path)
        try:
            reader = self._pcap(f) if self.kind == "pcap" else self._pcapng(f)
            try:
                for frame in reader:
                    self.frames += 1
                    yield frame
            except _Corrupt as exc:
                self.truncated_at = self.frames + 1
                self.problem = str(exc)
            except _GZIP_ERRORS as exc:
                self.truncated_at = self.frames + 1
                self.problem = f"the gzip stream is damaged ({exc})"
        finally:
            f.close()

    # -- reading with a count of the work -------------------------------------------------------------

    def _read(self, f: BinaryIO, n: int) -> bytes:
        b = f.read(n)
        self.bytes_read += len(b)
        return b

    def _exact(self, f: BinaryIO, n: int, what: str) -> bytes:
        b = self._read(f, n)
        if len(b) < n:
            raise _Corrupt(f"the file ends in the middle of {what}")
        return b

    # -- classic pcap ---------------------------------------------------------------------------------

    def _pcap_header(self, f: BinaryIO) -> tuple[str, int, int, int]:
        """(byte order, fraction divisor, link type, FCS bytes) from the 24-byte header."""
        head = self._exact(f, 24, "the pcap file header")
        order = "<" if struct.unpack_from("<I", head)[0] in (PCAP_MAGIC_MICRO, PCAP_MAGIC_NANO) else ">"
        magic, major, _minor, _zone, _sigfigs, _snaplen, field = struct.unpack(order + "IHHiIII", head)
        if major != 2:
            raise _Corrupt(f"pcap version {major} is not 2")
        divisor = 1_000_000_000 if magic == PCAP_MAGIC_NANO else 1_000_000
        fcs = (field >> 28) * 2 if field & 0x04000000 else 0  # the F bit: FCS length in 16-bit words
        return order, divisor, field & 0xFFFF, fcs

    def _pcap(self, f: BinaryIO) -> Iterator[CapturedFrame]:
        order, divisor, linktype, fcs = self._pcap_header(f)
        self.linktypes.add(linktype)
        unpack = struct.Struct(order + "IIII").unpack_from
        number = 0
        read = f.read
        buf, pos = b"", 0  # records are cut from chunks of the file: two reads a frame cost more
        while True:
            have = len(buf) - pos
            if have < 16:
                more = read(_CHUNK)
                self.bytes_read += len(more)
                if not more:
                    if have:
                        raise _Corrupt("the file ends in the middle of a record header")
                    return
                buf, pos = buf[pos:] + more, 0
                continue
            sec, frac, incl, orig = unpack(buf, pos)
            if incl > MAX_RECORD:
                raise _Corrupt(f"a record length of {incl:,} bytes is impossible")
            end = pos + 16 + incl
            if end > len(buf):  # the frame goes on in the next chunk (at most MAX_RECORD is asked for)
                more = read(max(_CHUNK, end - len(buf)))
                self.bytes_read += len(more)
                if not more:
                    raise _Corrupt("the file ends in the middle of a frame")
                buf, pos = buf[pos:] + more, 0
                continue
            data = buf[pos + 16:end]
            pos = end
            if fcs and incl == orig and incl >= fcs:
                data = data[:-fcs]
            number += 1
            yield CapturedFrame(number, sec + frac / divisor, linktype, data, 0)

    # -- pcapng ---------------------------------------------------------------------------------------

    def _shb(self, f: BinaryIO) -> str:
        """Read the file's first block, a section header: its byte order."""
        head = self._exact(f, 12, "a section header")
        return self._section(f, head[4:8], head[8:12])

    def _section(self, f: BinaryIO, length_bytes: bytes, bom: bytes) -> str:
        """The rest of a section header whose type, length and byte-order mark were read: its byte order."""
        if bom == b"\x4d\x3c\x2b\x1a":
            order = "<"
        elif bom == b"\x1a\x2b\x3c\x4d":
            order = ">"
        else:
            raise _Corrupt("a pcapng section header with an unknown byte-order mark")
        length = struct.unpack(order + "I", length_bytes)[0]
        if length < 28 or length % 4 or length > MAX_RECORD:
            raise _Corrupt(f"a section header length of {length:,} bytes is impossible")
        body = self._exact(f, length - 12, "a section header")
        major = struct.unpack_from(order + "H", body, 0)[0]
        if major != 1:
            raise _Corrupt(f"pcapng version {major} is not 1")
        if struct.unpack_from(order + "I", body, length - 16)[0] != length:
            raise _Corrupt("a section header's two lengths differ")
        return order

    def _pcapng(self, f: BinaryIO) -> Iterator[CapturedFrame]:
        order = self._shb(f)
        u32 = struct.Struct(order + "I")
        head_s = struct.Struct(order + "II")
        epb = struct.Struct(order + "IIIII")
        interfaces: list[_Interface] = []
        number = 0
        read = f.read
        while True:
            head = read(8)
            if not head:
                return
            if len(head) < 8:
                raise _Corrupt("the file ends in the middle of a block header")
            if head[:4] == b"\x0a\x0d\x0d\x0a":  # a new section: byte order and interfaces start again
                order = self._section(f, head[4:8], self._exact(f, 4, "a section header"))
                u32 = struct.Struct(order + "I")
                head_s = struct.Struct(order + "II")
                epb = struct.Struct(order + "IIIII")
                interfaces = []
                continue
            btype, length = head_s.unpack(head)
            if length < 12 or length % 4 or length > MAX_RECORD:
                raise _Corrupt(f"a block length of {length:,} bytes is impossible")
            body = read(length - 8)
            self.bytes_read += 8 + len(body)
            if len(body) < length - 8:
                raise _Corrupt("the file ends in the middle of a block")
            if u32.unpack_from(body, length - 12)[0] != length:
                raise _Corrupt("a block's two lengths differ")
            n = length - 12  # the block body without the trailing length
            if btype == _BT_EPB:
                if n < 20:
                    raise _Corrupt("an enhanced packet block too short for its header")
                iface, hi, lo, caplen, _orig = epb.unpack_from(body, 0)
                if caplen > n - 20:
                    raise _Corrupt("an enhanced packet block shorter than its packet")
                if iface >= len(interfaces):
                    raise _Corrupt(f"a packet of interface {iface}, which was never described")
                i = interfaces[iface]
                number += 1
                yield CapturedFrame(number, _ts(hi, lo, i), i.linktype, body[20:20 + caplen], iface)
            elif btype == _BT_SPB:
                if n < 4 or not interfaces:
                    raise _Corrupt("a simple packet block without its interface or length")
                orig = u32.unpack_from(body, 0)[0]
                i = interfaces[0]
                caplen = min(orig, n - 4, i.snaplen or orig)
                number += 1
                yield CapturedFrame(number, 0.0, i.linktype, body[4:4 + caplen], 0)
            elif btype == _BT_PB:
                if n < 20:
                    raise _Corrupt("a packet block too short for its header")
                iface = struct.unpack_from(order + "H", body, 0)[0]
                _i, hi, lo, caplen, _orig = epb.unpack_from(body, 0)
                if caplen > n - 20 or iface >= len(interfaces):
                    raise _Corrupt("a packet block with a bad length or interface")
                i = interfaces[iface]
                number += 1
                yield CapturedFrame(number, _ts(hi, lo, i), i.linktype, body[20:20 + caplen], iface)
            elif btype == _BT_IDB:
                interfaces.append(self._idb(body, n, order))
                self.linktypes.add(interfaces[-1].linktype)
            # any other block (name resolution, statistics, custom, decryption secrets...) is skipped

    @staticmethod
    def _idb(body: bytes, n: int, order: str) -> _Interface:
        if n < 8:
            raise _Corrupt("an interface description block too short")
        linktype, _res, snaplen = struct.unpack_from(order + "HHI", body, 0)
        scale, offset = 1_000_000, 0
        pos = 8
        while pos + 4 <= n:
            code, olen = struct.unpack_from(order + "HH", body, pos)
            pos += 4
            if code == 0:
                break
            if pos + olen > n:
                raise _Corrupt("an interface option longer than its block")
            if code == _OPT_TSRESOL and olen >= 1:
                v = body[pos]
                scale = 1 << (v & 0x7F) if v & 0x80 else 10 ** v
            elif code == _OPT_TSOFFSET and olen >= 8:
                offset = struct.unpack_from(order + "q", body, pos)[0]
            pos += (olen + 3) & ~3
        return _Interface(linktype, snaplen, scale, offset)


def _ts(hi: int, lo: int, i: _Interface) -> float:
    units = (hi << 32) | lo
    sec, frac = divmod(units, i.scale)
    return i.offset + sec + frac / i.scale
