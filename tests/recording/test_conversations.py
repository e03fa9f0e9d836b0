"""The conversation table of a capture (rawtui.recording.conversations) on a capture written here: port
reuse, a retransmitted SYN, an IPv6 connection, a connection whose handshake is not in the capture, HTTP,
TLS (a real ClientHello with SNI) and other. The stream numbers must be tshark's ``tcp.stream``."""

from __future__ import annotations

import ssl
import struct
import subprocess
from pathlib import Path

import pytest
from capture_files import Rec, pcap_bytes
from conftest import require_tool

from rawtui.errors import UsageError
from rawtui.recording import PcapReplay, conversations, format_table
from rawtui.wire.ethernet import build_ethernet
from rawtui.wire.ipv4 import PROTO_TCP, build_ipv4, ip_bytes
from rawtui.wire.tcp import ACK, FIN, PSH, SYN, TcpOptions, TcpSegment, build_tcp

MAC_C, MAC_S = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")
C, S = ip_bytes("10.0.0.1"), ip_bytes("10.0.0.2")
C6, S6 = bytes.fromhex("fd00" + "00" * 13 + "01"), bytes.fromhex("fd00" + "00" * 13 + "02")


def client_hello(name: str) -> bytes:
    ctx = ssl.create_default_context()
    obj = ctx.wrap_bio(ssl.MemoryBIO(), out := ssl.MemoryBIO(), server_hostname=name)
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return out.read()


class Writer:
    def __init__(self) -> None:
        self.recs: list[Rec] = []
        self.t = 0

    def v4(self, src: bytes, sp: int, dst: bytes, dp: int, seq: int, ack: int, flags: int, data: bytes = b"",
           opts: TcpOptions | None = None) -> None:
        seg = TcpSegment(sp, dp, seq, ack, flags, 65535, opts or TcpOptions(), data)
        ip = build_ipv4(src, dst, PROTO_TCP, build_tcp(seg, src, dst))
        macs = (MAC_S, MAC_C) if src == C else (MAC_C, MAC_S)
        self._add(build_ethernet(*macs, 0x0800, ip))

    def v6(self, src: bytes, sp: int, dst: bytes, dp: int, seq: int, flags: int, data: bytes = b"") -> None:
        tcp = struct.pack("!HHIIBBHHH", sp, dp, seq, 0, 5 << 4, flags, 65535, 0, 0) + data
        ip6 = struct.pack("!IHBB", 6 << 28, len(tcp), PROTO_TCP, 64) + src + dst + tcp
        self._add(build_ethernet(MAC_S, MAC_C, 0x86DD, ip6))

    def _add(self, frame: bytes) -> None:
        self.t += 1
        self.recs.append(Rec(1_700_000_000, self.t * 1000, frame))

    def connection(self, cport: int, sport: int, isn: int, request: bytes, response: bytes,
                   syn_twice: bool = False) -> None:
        mss = TcpOptions(mss=1460)
        self.v4(C, cport, S, sport, isn, 0, SYN, opts=mss)
        if syn_twice:
            self.v4(C, cport, S, sport, isn, 0, SYN, opts=mss)
        self.v4(S, sport, C, cport, 9000, isn + 1, SYN | ACK, opts=mss)
        self.v4(C, cport, S, sport, isn + 1, 9001, ACK)
        self.v4(C, cport, S, sport, isn + 1, 9001, ACK | PSH, request)
        self.v4(S, sport, C, cport, 9001, isn + 1 + len(request), ACK | PSH, response)
        self.v4(S, sport, C, cport, 9001 + len(response), isn + 1 + len(request), FIN | ACK)
        self.v4(C, cport, S, sport, isn + 1 + len(request), 9002 + len(response), FIN | ACK)
        self.v4(S, sport, C, cport, 9002 + len(response), isn + 2 + len(request), ACK)


RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    w = Writer()
    w.connection(40000, 80, 1000, b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n", RESPONSE)  # 0
    w.connection(40001, 80, 5000, b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n", RESPONSE * 3, syn_twice=True)  # 1
    w.v6(C6, 5000, S6, 7000, 1, SYN)  # 2: IPv6
    w.v6(S6, 7000, C6, 5000, 1, SYN | ACK)
    w.connection(40000, 80, 77777, b"GET /c HTTP/1.1\r\nHost: x\r\n\r\n", RESPONSE)  # 3: the pair of 0, reused
    w.connection(40002, 443, 9, client_hello("example.org"), b"\x16\x03\x03\x00\x02\x02\x00")  # 4: TLS
    w.connection(40003, 9000, 9, b"SEND 5\n", b"12345" * 40)  # 5: other
    # 6: no handshake in the capture: the server's data first
    w.v4(S, 8080, C, 50000, 100, 200, ACK | PSH, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi")
    w.v4(C, 50000, S, 8080, 200, 140, ACK)
    path = tmp_path_factory.mktemp("conv") / "many.pcap"
    path.write_bytes(pcap_bytes(w.recs, 1))
    return path


def test_table(capture: Path) -> None:
    table = conversations(capture)
    convs = table.conversations
    assert [c.index for c in convs] == list(range(7))
    assert [c.kind for c in convs] == ["HTTP", "HTTP", "other", "HTTP", "TLS", "other", "HTTP"]
    assert [c.ipv6 for c in convs] == [False, False, True, False, False, False, False]
    assert convs[1].frames_up == 5 and convs[1].frames_down == 4  # the SYN twice: one stream
    assert convs[3].client == convs[0].client and convs[3].request.startswith(b"GET /c")
    assert convs[4].what == "TLS (SNI example.org)"
    assert convs[0].what == "HTTP (GET /a)" and convs[2].what == "other"  # IPv6: analysed like the others
    assert convs[2].name.startswith("[") and "]:" in convs[2].name
    assert convs[6].client == (C, 50000) and not convs[6].oriented  # from the status line: the server spoke
    assert all(c.ended for i, c in enumerate(convs) if i not in (2, 6))
    assert convs[1].bytes_down == len(RESPONSE) * 3
    conv, why = table.pick(None)
    assert conv.index == 1 and why == "the largest HTTP/HTTPS download"
    lines = format_table(table, 1)
    assert len(lines) == 8 and lines[2].startswith("*") and "GET /b" in lines[2]


def test_numbers_are_tsharks(capture: Path) -> None:
    tshark = require_tool("tshark")
    res = subprocess.run([tshark, "-n", "-r", str(capture), "-T", "fields", "-e", "tcp.stream", "-e",
                          "tcp.srcport", "-e", "tcp.dstport"], capture_output=True, text=True, timeout=60,
                         check=False)
    assert res.returncode == 0, res.stderr
    theirs: dict[int, set[int]] = {}
    for line in res.stdout.splitlines():
        stream, sport, dport = line.split("\t")
        theirs.setdefault(int(stream), set()).update((int(sport), int(dport)))
    ours = {c.index: {c.client[1], c.server[1]} for c in conversations(capture).conversations}
    assert ours == theirs


def test_picking(capture: Path) -> None:
    table = conversations(capture)
    assert table.pick(2) == (table.conversations[2], "chosen with --stream")  # IPv6, analysed since issue 14
    with pytest.raises(UsageError, match="the capture's TCP streams are 0-6"):
        table.pick(7)
    replay = PcapReplay(capture, speed=0, stream=5)
    events = list(replay.events())
    done = [e for e in events if e.type == "done"]
    assert done and done[0].bytes == 200 and "stream 5 of 7" in replay.choice
    assert "[stream 5 of 7]" in replay.title
    tls = PcapReplay(capture, speed=0, stream=4)
    assert tls.title.startswith("https://example.org")
    records = [e for e in tls.events() if e.type == "tls_record"]
    assert [(e.direction, e.content_type) for e in records][:2] == [("out", "Handshake"), ("in", "Handshake")]
