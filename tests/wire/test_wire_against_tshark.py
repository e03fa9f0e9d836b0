"""Cross-check rawtui-built frames with Wireshark's dissectors: write a classic pcap by hand and ask
tshark (with checksum validation switched on) whether the IPv4 and TCP checksums are good."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from rawtui.wire.ethernet import ETH_P_IP, build_ethernet
from rawtui.wire.ipv4 import PROTO_TCP, build_ipv4
from rawtui.wire.tcp import ACK, FIN, PSH, RST, SYN, TcpOptions, TcpSegment, build_tcp

TSHARK = shutil.which("tshark")
pytestmark = pytest.mark.needs_tool("tshark")  # a failure, not a skip, under RAWTUI_REQUIRE_LAB=1 (CI)

MAC_A, MAC_B = bytes.fromhex("020000000001"), bytes.fromhex("0200000000fe")
IP_A, IP_B = bytes([192, 0, 2, 1]), bytes([198, 51, 100, 7])
# epan's proto_checksum_enum_e, as tshark -T fields prints it
CHECKSUM_BAD, CHECKSUM_GOOD = "0", "1"


def write_pcap(path: Path, frames: list[bytes]) -> None:
    """A classic libpcap file: microsecond timestamps, LINKTYPE_ETHERNET."""
    with path.open("wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        for i, frame in enumerate(frames):
            f.write(struct.pack("<IIII", 1_700_000_000 + i, 0, len(frame), len(frame)))
            f.write(frame)


def tshark_fields(path: Path, *fields: str) -> list[list[str]]:
    assert TSHARK is not None
    cmd = [TSHARK, "-n", "-r", str(path), "-T", "fields", "-E", "separator=,",
           "-o", "tcp.check_checksum:TRUE", "-o", "ip.check_checksum:TRUE",
           "-o", "tcp.desegment_tcp_streams:FALSE", "-o", "tcp.relative_sequence_numbers:FALSE"]
    for field in fields:
        cmd += ["-e", field]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True).stdout
    return [line.split(",") for line in out.splitlines()]


def frame(seg: TcpSegment, src: bytes, dst: bytes, ident: int) -> bytes:
    packet = build_ipv4(src, dst, PROTO_TCP, build_tcp(seg, src, dst), ident=ident)
    return build_ethernet(MAC_B, MAC_A, ETH_P_IP, packet)


SEGMENTS = [
    (TcpSegment(49152, 80, 0x01020304, 0, SYN, 64240, TcpOptions(1460, 7, True, (), (1, 0))), IP_A, IP_B),
    (TcpSegment(80, 49152, 0xFFFFFFF0, 0x01020305, SYN | ACK, 65160, TcpOptions(1400, 10, True, (), (9, 1))),
     IP_B, IP_A),
    (TcpSegment(49152, 80, 0x01020305, 0xFFFFFFF1, ACK, 502, TcpOptions(ts=(2, 9))), IP_A, IP_B),
    (TcpSegment(49152, 80, 0x01020305, 0xFFFFFFF1, PSH | ACK, 502, TcpOptions(ts=(3, 9)),
                b"GET / HTTP/1.1\r\nHost: example\r\n\r\n"), IP_A, IP_B),
    (TcpSegment(80, 49152, 0xFFFFFFF1, 0x01020327, ACK, 501, TcpOptions(ts=(10, 3)), bytes(range(256)) * 5
                + b"odd"), IP_B, IP_A),  # a full-sized 1463-byte payload of odd length
    (TcpSegment(49152, 80, 0x01020327, 0x5BF, ACK, 502, TcpOptions(ts=(4, 10), sack=((1, 2), (3, 4), (5, 6)))),
     IP_A, IP_B),
    (TcpSegment(49152, 80, 0x01020327, 0x5BF, FIN | ACK, 502), IP_A, IP_B),  # padded to 60 bytes
    (TcpSegment(80, 49152, 0x5BF, 0, RST, 0), IP_B, IP_A),
]


def test_tshark_agrees_checksums_are_good(tmp_path: Path) -> None:
    frames = [frame(seg, src, dst, i) for i, (seg, src, dst) in enumerate(SEGMENTS)]
    pcap = tmp_path / "rawtui.pcap"
    write_pcap(pcap, frames)
    rows = tshark_fields(pcap, "tcp.srcport", "tcp.seq_raw", "tcp.ack_raw", "tcp.len",
                         "tcp.checksum.status", "ip.checksum.status")
    assert len(rows) == len(SEGMENTS)
    for (seg, _, _), row in zip(SEGMENTS, rows, strict=True):
        srcport, seq, ack, tcp_len, tcp_status, ip_status = row
        assert (int(srcport), int(seq), int(tcp_len)) == (seg.src_port, seg.seq, len(seg.payload))
        if seg.flags & ACK:
            assert int(ack) == seg.ack
        assert tcp_status == CHECKSUM_GOOD, row
        assert ip_status == CHECKSUM_GOOD, row


def test_tshark_decodes_options(tmp_path: Path) -> None:
    seg, src, dst = SEGMENTS[0]
    pcap = tmp_path / "syn.pcap"
    write_pcap(pcap, [frame(seg, src, dst, 1)])
    [row] = tshark_fields(pcap, "tcp.options.mss_val", "tcp.options.wscale.shift", "tcp.options.sack_perm",
                          "tcp.options.timestamp.tsval", "tcp.options.timestamp.tsecr", "tcp.flags",
                          "tcp.window_size_value", "tcp.hdr_len")
    mss, shift, sack_perm, tsval, tsecr, flags, window, hdr_len = row
    assert (int(mss), int(shift), int(tsval), int(tsecr)) == (1460, 7, 1, 0)
    assert sack_perm != ""
    assert int(flags, 16) == SYN
    assert (int(window), int(hdr_len)) == (64240, 40)


def test_tshark_sees_bad_checksums(tmp_path: Path) -> None:
    """The negative control: corrupted frames must come back Bad, or the test above proves nothing."""
    seg, src, dst = SEGMENTS[3]
    good = frame(seg, src, dst, 1)
    bad_ip = bytearray(good)
    bad_ip[14 + 10] ^= 0x01  # the IPv4 checksum field
    bad_tcp = bytearray(good)
    bad_tcp[-1] ^= 0x01  # the last payload byte
    pcap = tmp_path / "bad.pcap"
    write_pcap(pcap, [bytes(bad_ip), bytes(bad_tcp)])
    rows = tshark_fields(pcap, "ip.checksum.status", "tcp.checksum.status")
    assert rows[0][0] == CHECKSUM_BAD
    assert rows[1] == [CHECKSUM_GOOD, CHECKSUM_BAD]
