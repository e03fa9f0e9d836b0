"""rawtui.link.pcap: round trips, foreign variants of the format, and what tshark and dpkt make of it."""

from __future__ import annotations

import io
import socket
import struct
import subprocess
from pathlib import Path

import dpkt  # type: ignore[import-untyped]
import pytest

from rawtui.errors import OutputError
from rawtui.link.pcap import LINKTYPE_ETHERNET, LINKTYPE_RAW, SNAPLEN, PcapFormatError, PcapWriter, read_pcap


def frame(sport: int, payload: bytes = b"") -> bytes:
    tcp = struct.pack("!HHIIBBHHH", sport, 80, 1, 0, 5 << 4, 0x02, 65535, 0, 0) + payload
    ip = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0x4000, 64, 6, 0,
        socket.inet_aton("10.0.0.1"), socket.inet_aton("10.0.0.2"),
    )  # fmt: skip
    return bytes.fromhex("020000000002020000000001") + b"\x08\x00" + ip + tcp


FRAMES = [(1_700_000_000.123456, frame(40000)), (1_700_000_000.5, frame(40001, b"x" * 1400)),
          (1_700_000_001.000001, frame(40002, b"y" * 64000))]  # fmt: skip


def test_round_trip_through_a_path(tmp_path: Path) -> None:
    path = tmp_path / "run.pcap"
    with PcapWriter(path) as writer:
        for ts, data in FRAMES:
            writer.write(memoryview(data), ts)
    assert writer.frames == 3
    back = list(read_pcap(path))
    assert [data for _, data in back] == [data for _, data in FRAMES]
    assert [round(ts, 6) for ts, _ in back] == [ts for ts, _ in FRAMES]
    header = path.read_bytes()[:24]
    assert struct.unpack("<IHHiIII", header) == (0xA1B2C3D4, 2, 4, 0, 0, SNAPLEN, 1)


def test_file_object_is_flushed_but_left_open() -> None:
    buffer = io.BytesIO()
    writer = PcapWriter(buffer)
    writer.write(FRAMES[0][1], FRAMES[0][0])
    writer.close()
    writer.close()
    assert not buffer.closed
    buffer.seek(0)
    assert list(read_pcap(buffer)) == [(pytest.approx(FRAMES[0][0], abs=1e-6), FRAMES[0][1])]


def test_writes_are_batched() -> None:
    class CountingFile(io.BytesIO):
        writes = 0

        def write(self, data: object) -> int:  # type: ignore[override]
            self.writes += 1
            return super().write(data)  # type: ignore[arg-type]

    target = CountingFile()
    with PcapWriter(target) as writer:
        for index in range(2000):
            writer.write(frame(index), index)
    assert target.writes <= 2
    assert len(list(read_pcap(io.BytesIO(target.getvalue())))) == 2000


def test_microsecond_rounding_carries_into_seconds() -> None:
    buffer = io.BytesIO()
    with PcapWriter(buffer) as writer:
        writer.write(b"\0" * 14, 9.9999999)
    assert struct.unpack_from("<II", buffer.getvalue(), 24) == (10, 0)


def test_frames_beyond_snaplen_are_cut() -> None:
    buffer = io.BytesIO()
    with PcapWriter(buffer) as writer:
        writer.write(b"z" * (SNAPLEN + 10), 1.0)
    assert struct.unpack_from("<II", buffer.getvalue(), 32) == (SNAPLEN, SNAPLEN + 10)
    assert len(next(read_pcap(io.BytesIO(buffer.getvalue())))[1]) == SNAPLEN


@pytest.mark.parametrize(("order", "magic", "fraction", "divisor"), [
    (">", 0xA1B2C3D4, 250_000, 1e6), ("<", 0xA1B23C4D, 250_000_000, 1e9), (">", 0xA1B23C4D, 5, 1e9),
])  # fmt: skip
def test_reads_both_byte_orders_and_nanoseconds(
    order: str, magic: int, fraction: int, divisor: float
) -> None:
    data = frame(1)
    blob = struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, 65535, 1)
    blob += struct.pack(order + "IIII", 100, fraction, len(data), len(data)) + data
    assert list(read_pcap(io.BytesIO(blob))) == [(100 + fraction / divisor, data)]


def test_truncated_last_record_ends_the_file() -> None:
    buffer = io.BytesIO()
    with PcapWriter(buffer) as writer:
        writer.write(frame(1), 1.0)
        writer.write(frame(2), 2.0)
    cut = buffer.getvalue()[:-5]
    assert [data for _, data in read_pcap(io.BytesIO(cut))] == [frame(1)]


@pytest.mark.parametrize(("blob", "message"), [
    (b"\x0a\x0d\x0d\x0a" + b"\0" * 40, "pcapng"),
    (b"GIF89a" + b"\0" * 40, "unknown magic"),
    (b"\xd4\xc3\xb2\xa1", "shorter than a pcap header"),
    (struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 101), "link type 101 is not Ethernet"),
])  # fmt: skip
def test_foreign_files_are_refused(blob: bytes, message: str) -> None:
    with pytest.raises(PcapFormatError, match=message):
        list(read_pcap(io.BytesIO(blob)))


def test_unwritable_path_is_an_output_error(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="cannot write pcap file"):
        PcapWriter(tmp_path / "missing" / "run.pcap")


def test_dpkt_reads_what_we_write(tmp_path: Path) -> None:
    path = tmp_path / "run.pcap"
    with PcapWriter(path) as writer:
        for ts, data in FRAMES:
            writer.write(data, ts)
    with path.open("rb") as file:
        records = list(dpkt.pcap.Reader(file))
    assert [bytes(data) for _, data in records] == [data for _, data in FRAMES]
    assert [dpkt.ethernet.Ethernet(data).data.data.sport for _, data in records] == [40000, 40001, 40002]


@pytest.mark.needs_tool("tshark")
def test_tshark_reads_what_we_write(tmp_path: Path) -> None:
    path = tmp_path / "run.pcap"
    with PcapWriter(path) as writer:
        for ts, data in FRAMES:
            writer.write(data, ts)
    done = subprocess.run(
        ["tshark", "-r", str(path), "-T", "fields", "-e", "frame.len", "-e", "tcp.srcport"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    rows = [line.split("\t") for line in done.stdout.splitlines()]
    assert rows == [[str(len(data)), str(40000 + index)] for index, (_, data) in enumerate(FRAMES)]


def test_cut_frames_read_back(tmp_path):
    """The live view's "save pcap" keeps only each frame's head: the record says both lengths."""
    from rawtui.link.pcap import PcapWriter, read_pcap

    path = tmp_path / "heads.pcap"
    with PcapWriter(path) as w:
        w.write(b"h" * 128, 1.5, 1514)
        w.write(b"a" * 60, 2.0)
    frames = list(read_pcap(path))
    assert [len(f) for _, f in frames] == [128, 60]
    raw = path.read_bytes()
    incl, orig = struct.unpack_from("<II", raw, 24 + 8)
    assert (incl, orig) == (128, 1514)


def test_a_layer3_capture_is_raw_ip_until_its_first_frame(tmp_path: Path) -> None:
    path = tmp_path / "tun.pcap"
    with PcapWriter(path) as writer:
        writer.set_linktype(LINKTYPE_RAW)  # before any frame: the header says so
        for ts, data in FRAMES:
            writer.write(data[14:], ts)  # bare IP packets, as on a tun
        writer.set_linktype(LINKTYPE_RAW)  # the same again: nothing to change
        with pytest.raises(OutputError, match="one pcap file holds one link type"):
            writer.set_linktype(LINKTYPE_ETHERNET)
    raw = path.read_bytes()
    assert struct.unpack_from("<I", raw, 20)[0] == LINKTYPE_RAW
    records = list(dpkt.pcap.Reader(io.BytesIO(raw)))
    assert [bytes(dpkt.ip.IP(data).data)[:2] for _, data in records] == [
        struct.pack("!H", port) for port in (40000, 40001, 40002)]
