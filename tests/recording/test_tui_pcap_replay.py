"""The pcap replay: a capture of a download, analysed receiver-side by the stack's own code.

The captures here are built frame by frame with rawtui's own wire builders (no root, deterministic): a
download with a lost and resent segment, reordering, a duplicate, corrupted frames and a resent request.
The lab tests (tests/views/test_lab_tui.py) replay real captures: rawtui's own ``--pcap`` and curl's under
dumpcap.
"""

from __future__ import annotations

import asyncio
import hashlib
import struct
from collections import Counter
from pathlib import Path

import pytest

from rawtui.errors import UsageError
from rawtui.events import (
    ArpReply,
    ArpRequest,
    ChecksumDrop,
    Done,
    DupData,
    Event,
    Handshake,
    HttpResponse,
    Info,
    OutOfOrder,
    Retransmit,
    Route,
    SegmentIn,
    SegmentOut,
    TcpState,
    Window,
)
from rawtui.link.pcap import PcapWriter
from rawtui.recording import PcapReplay, load_events, open_replay
from rawtui.views.tui.app import RawtuiApp
from rawtui.views.tui.model import ViewModel
from rawtui.views.tui.screens import SummaryScreen
from rawtui.views.tui.testing import screen_text, settle
from rawtui.wire.arp import OP_REPLY, OP_REQUEST, ArpPacket, build_arp
from rawtui.wire.ethernet import BROADCAST, ETH_P_ARP, ETH_P_IP, build_ethernet, mac_bytes
from rawtui.wire.ipv4 import PROTO_TCP, build_ipv4, ip_bytes
from rawtui.wire.tcp import ACK, FIN, PSH, SYN, TcpOptions, TcpSegment, build_tcp

CLIENT_MAC, GW_MAC = mac_bytes("02:00:0a:00:01:02"), mac_bytes("02:00:0a:00:01:01")
CLIENT, GW, SERVER = ip_bytes("10.0.1.2"), ip_bytes("10.0.1.1"), ip_bytes("10.0.2.2")
CPORT, SPORT = 40000, 8080
CISN, SISN = 1_000_000, 3_000_000_000
SEG = 1000
BODY = bytes(i * 7 % 251 for i in range(20 * SEG))
HEAD = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nContent-Type: application/octet-stream\r\n\r\n" % len(BODY)
REQUEST = b"GET /big.bin HTTP/1.1\r\nHost: example.test:8080\r\nUser-Agent: test\r\n\r\n"
T0 = 1_700_000_000.0  # capture timestamps (epoch seconds)


class Capture:
    """Writes a pcap of one connection, frame by frame, as a capture on the client would see it."""

    def __init__(self, path: Path) -> None:
        self.w = PcapWriter(path)
        self.t = 0.0
        self.ident = 0

    def at(self, t: float) -> Capture:
        self.t = t
        return self

    def arp(self, op: int) -> None:
        if op == OP_REQUEST:
            pkt = ArpPacket(OP_REQUEST, CLIENT_MAC, CLIENT, b"\0" * 6, GW)
            self.w.write(build_ethernet(BROADCAST, CLIENT_MAC, ETH_P_ARP, build_arp(pkt)), T0 + self.t)
        else:
            pkt = ArpPacket(OP_REPLY, GW_MAC, GW, CLIENT_MAC, CLIENT)
            self.w.write(build_ethernet(CLIENT_MAC, GW_MAC, ETH_P_ARP, build_arp(pkt)), T0 + self.t)

    def tcp(self, from_client: bool, seq: int, ack: int, flags: int, payload: bytes = b"", *, window: int = 512,
            opts: TcpOptions | None = None, ts: tuple[int, int] | None = None, corrupt: str = "",
            snap: int | None = None) -> None:
        if opts is None:
            opts = TcpOptions(ts=ts) if ts else TcpOptions()
        src, dst = (CLIENT, SERVER) if from_client else (SERVER, CLIENT)
        sp, dp = (CPORT, SPORT) if from_client else (SPORT, CPORT)
        seg = TcpSegment(sp, dp, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, flags, window, opts, payload)
        self.ident += 1
        frame = bytearray(build_ethernet(GW_MAC if from_client else CLIENT_MAC, CLIENT_MAC if from_client else GW_MAC,
                                         ETH_P_IP, build_ipv4(src, dst, PROTO_TCP, build_tcp(seg, src, dst),
                                                              ident=self.ident, ttl=64 if from_client else 63)))
        if corrupt == "tcp":
            frame[-1] ^= 0xFF if payload else 0
            frame[14 + 20 + 4] ^= 0x01 if not payload else 0
        elif corrupt == "ipv4":
            frame[14 + 8] ^= 0x10  # the TTL, covered by the header checksum
        data = bytes(frame)
        if snap is not None:  # a record of the first ``snap`` bytes of a longer frame, as tcpdump -s writes
            self.w.flush()
            sec, usec = divmod(round((T0 + self.t) * 1e6), 1_000_000)
            self.w._file.write(struct.pack("<IIII", sec, usec, min(snap, len(data)), len(data)) + data[:snap])
        else:
            self.w.write(data, T0 + self.t)

    def close(self) -> None:
        self.w.close()


def write_download(path: Path, *, with_handshake: bool = True, snap: int | None = None) -> None:
    """A 20 kB download at 10 ms RTT: request resent once; data segment 3 lost and resent (4 and 5 arrive
    out of order), segment 8 arrives twice, segment 11 first arrives with a bad TCP checksum, one frame
    with a bad IPv4 checksum; the server closes, then the client."""
    c = Capture(path)
    rtt = 0.010
    ts_c, ts_s = 500_000, 900_000  # the hosts' timestamp clocks (ms)

    def cts(t: float) -> tuple[int, int]:
        return (ts_c + int(t * 1000), ts_s + int((t - rtt / 2) * 1000))

    def sts(t: float, echo: int) -> tuple[int, int]:
        return (ts_s + int(t * 1000), echo)

    if with_handshake:
        c.at(0.0).arp(OP_REQUEST)
        c.at(0.0004).arp(OP_REPLY)
        syn_opts = TcpOptions(mss=1460, wscale=7, sack_permitted=True, ts=(ts_c + 1, 0))
        c.at(0.001).tcp(True, CISN, 0, SYN, window=64240, opts=syn_opts)
        synack = TcpOptions(mss=1460, wscale=7, sack_permitted=True, ts=(ts_s + 6, ts_c + 1))
        c.at(0.011).tcp(False, SISN, CISN + 1, SYN | ACK, window=65160, opts=synack)
        c.at(0.0111).tcp(True, CISN + 1, SISN + 1, ACK, ts=cts(0.0111))
        c.at(0.0112).tcp(True, CISN + 1, SISN + 1, PSH | ACK, REQUEST, ts=(ts_c + 11, ts_s + 6))
    # the request went unanswered: resent after 200 ms (the same TSval echo marks the resend)
    c.at(0.2112).tcp(True, CISN + 1, SISN + 1, PSH | ACK, REQUEST, ts=(ts_c + 211, ts_s + 6))
    t = 0.2212
    c.at(t).tcp(False, SISN + 1, CISN + 1 + len(REQUEST), ACK, ts=sts(t, ts_c + 211), window=509)
    stream = HEAD + BODY
    segs = [stream[i:i + SEG] for i in range(0, len(stream), SEG)]
    order = [0, 1, 2, 4, 5, 3, 6, 7, 8, 8, 9, 10, 11, 11, *range(12, len(segs))]
    bad = {11}  # its first copy is corrupted
    seen: set[int] = set()
    acked = 0
    for n, i in enumerate(order):
        t = 0.232 + n * 0.001
        seq = SISN + 1 + i * SEG
        corrupt = "tcp" if i in bad else ""
        bad.discard(i)
        if n == 16:
            c.at(t - 0.0005).tcp(False, seq, CISN + 1 + len(REQUEST), ACK, segs[i], ts=sts(t, ts_c + 211),
                                 corrupt="ipv4", snap=snap)
        c.at(t).tcp(False, seq, CISN + 1 + len(REQUEST), ACK | (PSH if i == len(segs) - 1 else 0), segs[i],
                    ts=sts(t, ts_c + 211), corrupt=corrupt, snap=snap)
        if corrupt:
            continue
        seen.add(i)
        # the client's ACK: cumulative, with SACK for what is held beyond a hole
        while acked < len(segs) and acked in seen:
            acked += 1
        ack = SISN + 1 + sum(len(s) for s in segs[:acked])
        held = sorted(j for j in seen if j > acked)
        opts = TcpOptions(ts=cts(t + 0.0001))
        if held:
            lo, hi = held[0], held[-1] + 1
            opts = TcpOptions(ts=cts(t + 0.0001),
                              sack=((SISN + 1 + lo * SEG, SISN + 1 + sum(len(s) for s in segs[:hi])),))
        c.at(t + 0.0001).tcp(True, CISN + 1 + len(REQUEST), ack, ACK, opts=opts)
    t += 0.002
    end = SISN + 1 + len(stream)
    c.at(t).tcp(False, end, CISN + 1 + len(REQUEST), FIN | ACK, ts=sts(t, ts_c + 240))
    c.at(t + 0.0001).tcp(True, CISN + 1 + len(REQUEST), end + 1, FIN | ACK, ts=cts(t + 0.0001))
    c.at(t + 0.0101).tcp(False, end + 1, CISN + 2 + len(REQUEST), ACK, ts=sts(t + 0.0101, ts_c + 241))
    c.close()


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pcap") / "download.pcap"
    write_download(path)
    return path


def of(events: list[Event], cls: type) -> list:  # type: ignore[type-arg]
    return [e for e in events if isinstance(e, cls)]


def test_the_capture_is_found_and_its_path_described(capture: Path) -> None:
    src = open_replay(capture, speed=0)
    assert isinstance(src, PcapReplay)
    assert src.title == "http://example.test:8080/big.bin"
    evs = list(src.events())
    route = of(evs, Route)[0]
    assert (route.src_ip, route.src_mac, route.dst_ip) == ("10.0.1.2", "02:00:0a:00:01:02", "10.0.2.2")
    assert route.gateway == "10.0.1.1" and route.next_hop == "10.0.1.1" and route.iface == "download.pcap"
    assert [(e.target_ip, e.attempt) for e in of(evs, ArpRequest)] == [("10.0.1.1", 1)]
    reply = of(evs, ArpReply)[0]
    assert reply.mac == "02:00:0a:00:01:01" and reply.rtt_ms == pytest.approx(0.4, abs=0.01)
    assert [e.t for e in evs] == sorted(e.t for e in evs) and evs[0].t == 0.0


def test_the_handshake_and_states_come_from_the_stack(capture: Path) -> None:
    evs = load_events(capture)
    hs = of(evs, Handshake)[0]
    assert (hs.local_port, hs.remote_port, hs.isn, hs.peer_isn) == (CPORT, SPORT, CISN, SISN)
    assert (hs.mss, hs.wscale, hs.peer_wscale, hs.sack, hs.timestamps) == (1460, 7, 7, True, True)
    assert hs.rtt_ms == pytest.approx(10.0, abs=0.01)
    states = [e.new for e in of(evs, TcpState)]
    assert states == ["SYN-SENT", "ESTABLISHED", "CLOSE-WAIT", "LAST-ACK", "CLOSED"]


def test_receiver_side_analysis(capture: Path) -> None:
    evs = load_events(capture)
    # the lost segment 3: 4 and 5 arrive beyond the hole
    ooo = of(evs, OutOfOrder)
    assert [(e.seq, e.length) for e in ooo] == [(1 + 4 * SEG, SEG), (1 + 5 * SEG, SEG)]
    assert [e.note for e in of(evs, SegmentIn) if e.length][:7] == ["", "", "", "ooo", "ooo", "fill", ""]
    # segment 8 twice: duplicate data; 11 first corrupted: a checksum drop, not a duplicate
    assert [(e.seq, e.length) for e in of(evs, DupData)] == [(1 + 8 * SEG, SEG)]
    drops = Counter(e.layer for e in of(evs, ChecksumDrop))
    assert drops == {"tcp": 1, "ipv4": 1}
    # what the client did is read from the capture: its resent request, its dup ACKs with SACK
    assert [(e.seq, e.length) for e in of(evs, Retransmit)] == [(1, len(REQUEST))]
    outs = of(evs, SegmentOut)
    assert [o.note for o in outs if o.length] == ["", "retransmit"]
    dup_acks = [o for o in outs if o.note == "dup-ack"]
    assert len(dup_acks) == 2 and dup_acks[0].sack == ((1 + 4 * SEG, 1 + 5 * SEG),)
    # windows: the client's own, scaled by its shift; RTT from the server's echo of the client's TSval
    win = of(evs, Window)[-1]
    assert win.rwnd == 512 << 7 and win.peer_rwnd == 512 << 7
    assert win.srtt_ms == pytest.approx(10.0, abs=1.5)


def test_http_progress_and_done(capture: Path) -> None:
    evs = load_events(capture)
    resp = of(evs, HttpResponse)[0]
    assert (resp.status, resp.content_length) == (200, len(BODY))
    done = of(evs, Done)[0]
    assert done.bytes == len(BODY) and done.sha256 == hashlib.sha256(BODY).hexdigest()
    assert done.counters["csum_drop_tcp"] == 1 and done.counters["out_of_order"] == 2
    m = ViewModel(title="http://example.test:8080/big.bin")
    m.apply_all(evs)
    c = m.counters
    assert (c.retransmits, c.dup_data, c.out_of_order, c.dup_acks_out) == (1, 1, 2, 2)
    assert (c.checksum_ipv4, c.checksum_tcp, c.malformed) == (1, 1, 0)
    assert m.received == len(BODY) and m.phase == "DONE"
    assert [s.label for s in m.ladder] == [
        "SYN", "SYN,ACK", "ACK", "GET /big.bin", "GET /big.bin (again)", "HTTP 200 OK", "data",
        "server resent seq 8,001 (spurious) · 2 so far", "FIN", "FIN", "ACK"]


def test_a_capture_without_the_handshake(tmp_path: Path) -> None:
    path = tmp_path / "mid.pcap"
    write_download(path, with_handshake=False)
    evs = load_events(path)
    assert any(isinstance(e, Info) and "after the handshake" in e.message for e in evs)
    assert [e.new for e in of(evs, TcpState)] == ["SYN-SENT", "ESTABLISHED", "CLOSE-WAIT", "LAST-ACK", "CLOSED"]
    assert not of(evs, Handshake)  # nothing was negotiated in the capture
    assert [(e.seq, e.length) for e in of(evs, OutOfOrder)] == [(1 + 4 * SEG, SEG), (1 + 5 * SEG, SEG)]
    assert of(evs, Done)[0].sha256 == hashlib.sha256(BODY).hexdigest()


def test_a_capture_cut_by_its_snap_length(tmp_path: Path) -> None:
    """tcpdump -s 128, or the live view's `s` key: headers only. Sequence analysis still works; the
    payload is unknown, so no HTTP and no checksums."""
    path = tmp_path / "snap.pcap"
    write_download(path, snap=128)
    evs = load_events(path)
    assert [(e.seq, e.length) for e in of(evs, OutOfOrder)] == [(1 + 4 * SEG, SEG), (1 + 5 * SEG, SEG)]
    assert not of(evs, HttpResponse) and not of(evs, Done)
    # the IPv4 header is whole: still checked; the TCP checksum covers bytes the capture did not keep
    assert [e.layer for e in of(evs, ChecksumDrop)] == ["ipv4"]
    assert any(isinstance(e, Info) and "snap length" in e.message for e in evs)
    assert [e.new for e in of(evs, TcpState)][-1] == "CLOSED"
    m = ViewModel()
    m.apply_all(evs)
    assert m.received == len(HEAD) + len(BODY)  # TCP payload bytes, the HTTP head included


def test_not_a_pcap(tmp_path: Path) -> None:
    ng = tmp_path / "x.pcapng"
    ng.write_bytes(struct.pack("<I", 0x0A0D0D0A) + b"\0" * 28)
    with pytest.raises(UsageError, match="not a capture rawtui can read .pcapng: .*byte-order mark"):
        open_replay(ng)  # pcapng is read (tests/recording/test_capture.py); this one's header is broken
    empty = tmp_path / "empty.pcap"
    PcapWriter(empty).close()
    with pytest.raises(UsageError, match="no TCP"):
        open_replay(empty)



def test_the_app_shows_a_replayed_capture(capture: Path) -> None:
    async def run() -> None:
        src = PcapReplay(capture, speed=0)
        app = RawtuiApp(src, title=src.title)
        async with app.run_test(size=(120, 35)) as pilot:
            await settle(pilot)
            assert isinstance(app.screen, SummaryScreen)
            summary = screen_text(app)
            assert hashlib.sha256(BODY).hexdigest() in summary and "a capture, replayed" in summary
            # the summary counts what the screen counted (Done.counters names these differently)
            assert "checksum drops IPv4 1  ·  TCP 1" in summary and "retransmitted by us 1" in summary
            await pilot.press("escape")
            await pilot.pause()
            text = screen_text(app)
            for label in ("SYN,ACK", "data x", "FIN"):
                assert label in text, label
            ladder = [s.label for s in app.model.ladder]
            assert "GET /big.bin (again)" in ladder and "HTTP 200 OK" in ladder
            assert "download.pcap (a capture, replayed)" in text and "gw 10.0.1.1 02:00:0a:00:01:01" in text
            assert "MSS 1460 · ws 7/7 · SACK ✓ · TS ✓" in text
            assert "checksum drop IPv4/TCP         1 / 1" in text and "arrived above a hole               2" in text
            assert "100.0 %" in text or "DONE" in text
            await pilot.press("q")

    asyncio.run(run())
