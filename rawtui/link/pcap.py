"""Classic pcap files: write the frames a run sends and receives, read them back for replay.

The writer makes what tcpdump and Wireshark read (magic 0xa1b2c3d4, version 2.4, Ethernet or, for a
layer-3 link, raw IP (LINKTYPE_RAW), microsecond timestamps) and buffers records into large writes. The
reader also takes nanosecond-resolution files and either byte order.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from rawtui.errors import OutputError
from rawtui.link.closing import Closing

LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101  # bare IPv4 / IPv6 packets: a tun, WireGuard or PPP link (Medium.IP)
SNAPLEN = 262144
MAGIC_MICRO = 0xA1B2C3D4
MAGIC_NANO = 0xA1B23C4D
PCAPNG_MAGIC = 0x0A0D0D0A

_HEADER = struct.Struct("<IHHiIII")  # magic, version major/minor, thiszone, sigfigs, snaplen, linktype
_RECORD = struct.Struct("<IIII")  # ts_sec, ts_usec, incl_len, orig_len
_FLUSH_AT = 1 << 20


class PcapFormatError(ValueError):
    """The file is not a classic pcap file of Ethernet frames."""


class PcapWriter(Closing):
    """Append frames with their timestamps to a pcap file (a path, or a binary file left open on close)."""

    def __init__(self, target: str | Path | BinaryIO) -> None:
        if isinstance(target, str | Path):
            try:
                self._file: BinaryIO = open(target, "wb")  # noqa: SIM115 - closed by close()
            except OSError as exc:
                raise OutputError(f"cannot write pcap file '{target}': {exc.strerror}") from None
            self._owns_file = True
        else:
            self._file = target
            self._owns_file = False
        self.linktype = LINKTYPE_ETHERNET
        self._pending = bytearray(_HEADER.pack(MAGIC_MICRO, 2, 4, 0, 0, SNAPLEN, self.linktype))
        self._started = False  # the header left: the link type is fixed
        self.frames = 0

    def set_linktype(self, linktype: int) -> None:
        """The capture's link type (LINKTYPE_ETHERNET, LINKTYPE_RAW), until the first frame is written:
        a classic pcap file holds one. OutputError for a change after that."""
        if linktype == self.linktype:
            return
        if self.frames or self._started:
            raise OutputError(f"the capture already holds link type {self.linktype} frames: one pcap file holds "
                              f"one link type, not also {linktype} (write one capture per interface kind)")
        self.linktype = linktype
        self._pending[:_HEADER.size] = _HEADER.pack(MAGIC_MICRO, 2, 4, 0, 0, SNAPLEN, linktype)

    def write(self, frame: bytes | bytearray | memoryview, ts: float, orig_len: int | None = None) -> None:
        """Add one frame captured at ts (seconds since the epoch); frames beyond SNAPLEN are cut.

        ``orig_len``: the frame's length on the wire when ``frame`` is already a cut-down copy."""
        sec, usec = divmod(round(ts * 1_000_000), 1_000_000)
        size = len(frame) if orig_len is None else max(orig_len, len(frame))
        kept = min(len(frame), SNAPLEN)
        self._pending += _RECORD.pack(sec, usec, kept, size)
        self._pending += frame[:kept]
        self.frames += 1
        if len(self._pending) >= _FLUSH_AT:
            self._write_out()

    def _write_out(self) -> None:
        self._started = True
        try:
            self._file.write(self._pending)
        except OSError as exc:
            raise OutputError(f"cannot write the pcap file: {exc.strerror}") from None
        self._pending.clear()

    def flush(self) -> None:
        """Write out buffered records and flush the file."""
        self._write_out()
        self._file.flush()

    def close(self) -> None:
        """Flush, and close the file if this writer opened it. Closing twice is harmless."""
        if self._file.closed:
            return
        self.flush()
        if self._owns_file:
            self._file.close()


def read_pcap(source: str | Path | BinaryIO) -> Iterator[tuple[float, bytes]]:
    """Yield (timestamp in epoch seconds, frame) for each record; a truncated last record ends it."""
    if isinstance(source, str | Path):
        with open(source, "rb", buffering=1 << 20) as file:
            yield from _read(file)
    else:
        yield from _read(source)


def _read(file: BinaryIO) -> Iterator[tuple[float, bytes]]:
    header = file.read(_HEADER.size)
    if len(header) < _HEADER.size:
        raise PcapFormatError("not a pcap file: shorter than a pcap header")
    order, divisor = _byte_order(header)
    _magic, _major, _minor, _zone, _sigfigs, _snaplen, linktype = struct.unpack(order + "IHHiIII", header)
    if linktype != LINKTYPE_ETHERNET:
        raise PcapFormatError(f"pcap link type {linktype} is not Ethernet (1)")
    record = struct.Struct(order + "IIII")
    while True:
        head = file.read(record.size)
        if len(head) < record.size:
            return
        sec, frac, incl_len, _orig_len = record.unpack(head)
        frame = file.read(incl_len)
        if len(frame) < incl_len:
            return
        yield sec + frac / divisor, frame


def _byte_order(header: bytes) -> tuple[str, int]:
    """The struct byte order and the timestamp fraction divisor that the magic number says."""
    for order in ("<", ">"):
        magic = struct.unpack_from(order + "I", header)[0]
        if magic == MAGIC_MICRO:
            return order, 1_000_000
        if magic == MAGIC_NANO:
            return order, 1_000_000_000
    if struct.unpack_from("<I", header)[0] == PCAPNG_MAGIC:
        raise PcapFormatError("this is a pcapng file: convert it with `editcap -F pcap` first")
    raise PcapFormatError("not a pcap file: unknown magic number")
