"""``rawtui watch`` without a network: its choice of connection (FlowPicker), and WatchSource fed recorded
frames from a fake tap and kernel samples from a fake inet_diag, through the headless and the live view.
The real socket and the real inet_diag are tested in the lab (tests/lab/test_lab_watch.py,
tests/link/test_link_tcpdiag.py)."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rawtui import events as E
from rawtui.cli import main
from rawtui.errors import EXIT_INTERRUPTED, EXIT_TCP, UsageError
from rawtui.link.passive import PassiveFrame
from rawtui.link.pcap import read_pcap
from rawtui.link.tcpdiag import TcpDiag
from rawtui.recording.capture import CapturedFrame
from rawtui.views.headless import HeadlessView
from rawtui.views.tui.app import RawtuiApp
from rawtui.views.tui.testing import screen_text, settle
from rawtui.watch.pick import FlowFilter, FlowPicker
from rawtui.watch.source import WatchOptions, WatchSource
from rawtui.wire.arp import OP_REPLY, OP_REQUEST, ArpPacket, build_arp
from rawtui.wire.ethernet import BROADCAST, ETH_P_ARP, ETH_P_IP, build_ethernet, mac_bytes
from rawtui.wire.ipv4 import PROTO_TCP, build_ipv4, ip_bytes
from rawtui.wire.tcp import ACK, FIN, PSH, SYN, TcpOptions, TcpSegment, build_tcp

CLIENT_MAC, GW_MAC = mac_bytes("02:00:0a:00:01:02"), mac_bytes("02:00:0a:00:01:01")
CLIENT, GW, SERVER, OTHER = ip_bytes("10.0.1.2"), ip_bytes("10.0.1.1"), ip_bytes("10.0.2.2"), ip_bytes("10.0.3.3")
CPORT, SPORT = 40000, 8080
CISN, SISN = 1_000_000, 3_000_000_000
SEG = 1000
BODY = bytes(i * 13 % 251 for i in range(100 * SEG))
HEAD = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(BODY)
REQUEST = b"GET /f.bin HTTP/1.1\r\nHost: 10.0.2.2:8080\r\n\r\n"


class Conversation:
    """Frames of connections as a tap on the client would see them (timestamps from ``t0``)."""

    def __init__(self, t0: float) -> None:
        self.t0 = t0
        self.frames: list[PassiveFrame] = []

    def arp(self, t: float, op: int) -> None:
        if op == OP_REQUEST:
            pkt = ArpPacket(OP_REQUEST, CLIENT_MAC, CLIENT, b"\0" * 6, GW)
            frame = build_ethernet(BROADCAST, CLIENT_MAC, ETH_P_ARP, build_arp(pkt))
        else:
            frame = build_ethernet(CLIENT_MAC, GW_MAC, ETH_P_ARP, build_arp(ArpPacket(OP_REPLY, GW_MAC, GW, CLIENT_MAC,
                                                                                       CLIENT)))
        self.frames.append(PassiveFrame(frame, self.t0 + t, op == OP_REQUEST))

    def tcp(self, t: float, out: bool, seq: int, ack: int, flags: int, payload: bytes = b"", *, window: int = 65535,
            opts: TcpOptions | None = None, server: bytes = SERVER, cport: int = CPORT) -> None:
        src, dst = (CLIENT, server) if out else (server, CLIENT)
        sp, dp = (cport, SPORT) if out else (SPORT, cport)
        seg = TcpSegment(sp, dp, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, flags, window, opts or TcpOptions(), payload)
        ip = build_ipv4(src, dst, PROTO_TCP, build_tcp(seg, src, dst), ttl=64 if out else 63)
        frame = build_ethernet(GW_MAC if out else CLIENT_MAC, CLIENT_MAC if out else GW_MAC, ETH_P_IP, ip)
        self.frames.append(PassiveFrame(frame, self.t0 + t, out))


def download(t0: float, *, lose: int | None = 30, close: bool = True, noise: bool = True) -> Conversation:
    """ARP, handshake, GET, 100 kB of response in 1000-byte segments (segment ``lose`` missing once, resent
    after three dup ACKs), then FIN both ways, each acknowledged. ``noise``: a small unrelated connection
    interleaved (a few hundred bytes to 10.0.3.3)."""
    c = Conversation(t0)
    c.arp(0.0, OP_REQUEST)
    c.arp(0.0003, OP_REPLY)
    c.tcp(0.001, True, CISN, 0, SYN, opts=TcpOptions(mss=1460, wscale=7, sack_permitted=True))
    if noise:
        c.tcp(0.0015, True, 77, 0, SYN, server=OTHER, cport=50000)
    c.tcp(0.011, False, SISN, CISN + 1, SYN | ACK, opts=TcpOptions(mss=1460, wscale=7, sack_permitted=True))
    c.tcp(0.0111, True, CISN + 1, SISN + 1, ACK)
    c.tcp(0.0112, True, CISN + 1, SISN + 1, PSH | ACK, REQUEST)
    if noise:
        c.tcp(0.0113, True, 78, 5, PSH | ACK, b"x" * 300, server=OTHER, cport=50000)
    stream = HEAD + BODY
    segs = [stream[i:i + SEG] for i in range(0, len(stream), SEG)]
    order = list(range(len(segs)))
    if lose is not None:  # missing once; the three segments after it bring dup ACKs; then resent
        order.remove(lose)
        order.insert(order.index(lose + 3) + 1, lose)
    ack_base = CISN + 1 + len(REQUEST)
    have: set[int] = set()
    acked = 0
    t = 0.02
    for i in order:
        t += 0.001
        c.tcp(t, False, SISN + 1 + i * SEG, ack_base, ACK, segs[i])
        have.add(i)
        while acked in have:
            acked += 1
        c.tcp(t + 0.0001, True, ack_base, SISN + 1 + sum(len(s) for s in segs[:acked]), ACK)
    end = SISN + 1 + len(stream)
    if close:
        c.tcp(t + 0.002, False, end, ack_base, FIN | ACK)
        c.tcp(t + 0.0021, True, ack_base, end + 1, FIN | ACK)
        c.tcp(t + 0.012, False, end + 1, ack_base + 1, ACK)
    return c


class FakeTap:
    """The frames of a conversation, then nothing (a quiet interface)."""

    def __init__(self, frames: list[PassiveFrame]) -> None:
        self.queue = list(frames)
        self.frames = 0
        self.frames_out = 0
        self.drained = threading.Event()

    def recv(self) -> PassiveFrame | None:
        if not self.queue:
            self.drained.set()
            return None
        f = self.queue.pop(0)
        self.frames += 1
        self.frames_out += f.outgoing
        return f

    def wait(self, timeout: float) -> bool:
        if self.queue:
            return True
        self.drained.set()
        time.sleep(min(timeout, 0.005))
        return False

    def kernel_drops(self) -> int:
        return 0


class FakeDiag:
    """inet_diag as it would answer for the connection's two ends on this host: the client's (curl) and,
    with ``sender``, the server's too (both on one host). Every call gives a larger cwnd."""

    def __init__(self, sender: bool = False) -> None:
        self.calls = 0
        self.sender = sender

    def find(self, a_ip: str, a_port: int, b_ip: str, b_port: int) -> list[TcpDiag]:
        self.calls += 1
        client = TcpDiag("10.0.1.2", CPORT, "10.0.2.2", SPORT, "ESTABLISHED", 1, 0, "cubic", "open", 10, None, 1448,
                         1.5, 0.5, 201.0, 0, 0, 0, 0, 1, 1, 1, self.calls, 0, 0, 1, 1, 1, 1, 0, 0, 0)
        if not self.sender:
            return [client]
        server = dataclasses.replace(client, local_ip="10.0.2.2", local_port=SPORT, remote_ip="10.0.1.2",
                                     remote_port=CPORT, cwnd=10 + self.calls, ssthresh=40)
        return [client, server]


def run_watch(conv: Conversation, *, flt: FlowFilter | None = None, diag: FakeDiag | None = None,
              stop_when_drained: bool = False, pcap: Path | None = None, idle: float = 30.0,
              count: int = 0) -> tuple[int, list[E.Event], WatchSource]:
    tap = FakeTap(conv.frames)
    opts = WatchOptions("eth9", flt or FlowFilter(), pcap=str(pcap) if pcap else None, idle=idle, count=count)
    source = WatchSource(opts, tap, diag if diag is not None else FakeDiag())
    stop = threading.Event()
    if stop_when_drained:
        threading.Thread(target=lambda: (tap.drained.wait(30), stop.set()), daemon=True).start()
    events: list[E.Event] = []
    code = source.run(events.append, stop)
    return code, events, source


def of(events: list[E.Event], cls: type) -> list:  # type: ignore[type-arg]
    return [e for e in events if isinstance(e, cls)]


# -- which connection ---------------------------------------------------------------------------------


def _frame(n: int) -> CapturedFrame:
    return CapturedFrame(n, float(n), 1, b"")


def test_without_a_filter_the_first_to_carry_64k_is_followed() -> None:
    p = FlowPicker()
    small, big = ((OTHER, 1), (CLIENT, 2)), ((SERVER, 80), (CLIENT, 3))
    assert p.offer(_frame(1), *small, SYN, 0) is None
    assert p.offer(_frame(2), *big, SYN, 0) is None
    sent, n = 0, 2
    while p.chosen is None:
        n += 1
        sent += 1000
        chosen = p.offer(_frame(n), *small, ACK, 1000)
        assert (chosen is not None) == (sent >= 64 * 1024)
    assert p.chosen.key == frozenset(small) and sent == 66_000
    assert [f.number for f in p.chosen.frames][:1] == [1]  # its first frame (the SYN) kept
    assert p.offer(_frame(99), *big, ACK, 70000) is None  # never swapped


def test_a_filter_follows_the_first_match_at_once() -> None:
    p = FlowPicker(FlowFilter.parse(port=8080))
    assert p.offer(_frame(1), (CLIENT, 5), (OTHER, 443), SYN, 0) is None
    assert p.offer(_frame(2), (CLIENT, 6), (SERVER, 8080), ACK, 0) is None  # a bare ACK: nothing to follow yet
    chosen = p.offer(_frame(3), (CLIENT, 7), (SERVER, 8080), SYN, 0)
    assert chosen is not None and chosen.client == (CLIENT, 7) and chosen.server == (SERVER, 8080)
    exact = FlowFilter.parse(stream="10.0.2.2:8080-10.0.1.2:7")
    assert exact.matches((CLIENT, 7), (SERVER, 8080)) and not exact.matches((CLIENT, 6), (SERVER, 8080))
    assert FlowFilter.parse(host="10.0.3.3").matches((CLIENT, 1), (OTHER, 2))


def test_settle_takes_the_biggest_and_chatter_is_dropped() -> None:
    p = FlowPicker(max_frames=10)
    a, b, chat = ((CLIENT, 1), (SERVER, 80)), ((CLIENT, 2), (SERVER, 81)), ((CLIENT, 3), (SERVER, 22))
    p.offer(_frame(1), *a, ACK, 100)
    p.offer(_frame(2), *b, ACK, 5000)
    for n in range(3, 20):
        p.offer(_frame(n), *chat, ACK, 1000)  # 17 frames of it: more than max_frames, so not a transfer
    assert frozenset(chat) in p.dropped
    cand = p.settle()
    assert cand is not None and cand.key == frozenset(b) and cand.client == (SERVER, 81)  # no SYN: the receiver


@pytest.mark.parametrize(("kw", "word"), [
    ({"stream": "10.0.0.1:80"}, "IP:PORT-IP:PORT"), ({"stream": "10.0.0.1:80-x:1"}, "address"),
    ({"host": "example.org"}, "--host"), ({"port": 70000}, "--port"),
])
def test_bad_filters_are_usage_errors(kw: dict[str, object], word: str) -> None:
    with pytest.raises(UsageError, match=word):
        FlowFilter.parse(**kw)  # type: ignore[arg-type]


# -- the source ----------------------------------------------------------------------------------------


@pytest.fixture
def t0() -> Iterator[float]:
    """The conversation happened in the last second: the tap is behind the wire, as a real one can be."""
    yield time.time() - 1.0


def test_a_download_is_followed_to_its_end(t0: float, tmp_path: Path) -> None:
    conv = download(t0)
    code, events, source = run_watch(conv, pcap=tmp_path / "w.pcap")
    assert code == 0 and source.closing.closed
    done = of(events, E.Done)[-1]
    assert done.bytes == len(BODY) and done.sha256 == hashlib.sha256(BODY).hexdigest()
    c = done.counters
    assert c["peer_retrans"] == 1 and c["dup_acks_sent"] == 3  # the one resend, after three dup ACKs
    assert c["watch_frames"] == len(conv.frames) and c["watch_connection_frames"] == len(conv.frames) - 4
    assert c["watch_frames_out"] == sum(f.outgoing for f in conv.frames)
    route = of(events, E.Route)[0]
    assert route.gateway == "10.0.1.1" and "receive-only" in route.reason
    assert [e.ip for e in of(events, E.ArpReply)] == ["10.0.1.1"]
    info = of(events, E.Info)[0]
    assert info.message.startswith("following 10.0.1.2:40000 -> 10.0.2.2:8080 on eth9")
    assert of(events, E.HttpResponse)[0].status == 200
    kernel = of(events, E.KernelTcpInfo)
    assert kernel and {k.role for k in kernel} == {"receiver"} and kernel[0].local == "10.0.1.2:40000"
    assert [e.t for e in events] == sorted(e.t for e in events)  # kernel samples held back in time order
    assert [frame for _ts, frame in read_pcap(tmp_path / "w.pcap")] == [f.data for f in conv.frames]


def test_a_local_sender_draws_the_true_cwnd(t0: float) -> None:
    code, events, _ = run_watch(download(t0), diag=FakeDiag(sender=True))
    assert code == 0
    senders = [k for k in of(events, E.KernelTcpInfo) if k.role == "sender"]
    assert senders and senders[0].local == "10.0.2.2:8080" and senders[0].ssthresh_bytes == 40 * 1448
    assert all(k.cwnd_bytes == k.cwnd * 1448 for k in senders)


def test_interrupted_gives_the_summary_so_far(t0: float) -> None:
    conv = download(t0, close=False)
    code, events, _ = run_watch(conv, stop_when_drained=True)
    assert code == EXIT_INTERRUPTED
    assert isinstance(events[-1], E.Error) and events[-1].exit_code == EXIT_INTERRUPTED
    assert isinstance(events[-2], E.Done) and events[-2].bytes == len(BODY)  # the summary first


def test_idle_ends_with_exit_5(t0: float) -> None:
    code, events, _ = run_watch(download(t0, close=False), idle=0.05)
    assert code == EXIT_TCP and "--idle" in events[-1].message  # type: ignore[attr-defined]
    assert of(events, E.Done)


def test_count_ends_it(t0: float) -> None:
    code, events, source = run_watch(download(t0), count=10)
    assert code == 0 and source.followed_frames == 10 and of(events, E.Done)[-1].counters["watch_connection_frames"] == 10


def test_nothing_to_follow(t0: float) -> None:
    conv = download(t0, noise=False)
    code, events, _ = run_watch(conv, flt=FlowFilter.parse(port=9999), stop_when_drained=True)
    assert code == EXIT_INTERRUPTED and of(events, E.Done) == []
    assert "no connection to follow" in events[-1].message  # type: ignore[attr-defined]


def test_headless_summary_has_the_kernel_line(t0: float) -> None:
    from io import StringIO

    from rich.console import Console

    _, events, _ = run_watch(download(t0))
    out = StringIO()
    view = HeadlessView(console=Console(file=out, width=200))
    for ev in events:
        view(ev)
    text = out.getvalue()
    assert "receiver socket 10.0.1.2:40000  established  cubic  cwnd 10 (14.5 KB)" in text
    assert "inet_diag" in text


def test_the_live_view_shows_a_watch(t0: float) -> None:
    """The Textual app over a WatchSource fed recorded frames: the same screens as a download; the local
    sender's cwnd is the "true" line of the cwnd graph, and the KERNEL line says both sockets."""
    conv = download(t0)

    async def run() -> None:
        src = WatchSource(WatchOptions("eth9", FlowFilter.parse(port=8080)), FakeTap(conv.frames),
                          FakeDiag(sender=True))
        app = RawtuiApp(src, title=src.title)
        async with app.run_test(size=(160, 45)) as pilot:
            await settle(pilot)
            summary = screen_text(app)
            assert hashlib.sha256(BODY).hexdigest() in summary
            await pilot.press("escape")
            await pilot.pause()
            text = screen_text(app)
            assert "KERNEL" in text and "sender socket 10.0.2.2:8080" in text and "receiver socket" in text
            assert "true" in text  # the cwnd graph's legend: the kernel's cwnd of the sending socket
            assert app.model.graphs.server_cwnd.xs
            assert "watched on eth9, receive-only" in text
            await pilot.press("q")

    asyncio.run(run())


# -- the command ---------------------------------------------------------------------------------------


def test_cli_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["watch", "--stream-filter", "nonsense"]) == 2
    assert "rawtui: error: bad --stream-filter" in capsys.readouterr().err
    assert main(["watch", "--count", "-1"]) == 2


def test_cli_unknown_interface(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["watch", "-i", "nosuch0", "--headless"]) in (3, 4)  # 3 without CAP_NET_RAW
    err = capsys.readouterr().err
    assert err.startswith("rawtui: error: ") and "Traceback" not in err
