"""--limit-rate and --stall without a network: the rate syntax, the read pacer's token bucket, and the TCP
machine driven by a simulated window-limited sender (fake clock), where the advertised window must hold
the sender to the rate and open again in useful steps (receiver silly-window avoidance)."""

from __future__ import annotations

import statistics

import pytest

from rawtui.download.pacing import MIN_BUFFER, MIN_QUANTUM, ReadPacer, buffer_for, human_rate, parse_rate
from rawtui.errors import UsageError
from rawtui.stack.tcp import TcpConnection
from rawtui.wire.tcp import ACK, SYN, TcpOptions, TcpSegment, parse_tcp

LIP, RIP = bytes([10, 0, 2, 15]), bytes([10, 0, 2, 2])
M32 = 0xFFFFFFFF


@pytest.mark.parametrize(("text", "rate"), [
    ("200K", 200 * 1024), ("2M", 2 * 1024 * 1024), ("2m", 2 << 20), ("1G", 1 << 30), ("50000", 50000),
    ("1.5M", 1.5 * (1 << 20)), ("512KB", 512 * 1024), ("1k", 1024),
])
def test_rate_syntax_is_curls(text, rate):
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["", "2X", "M", "-1M", "1M/s", "fast", "100", "0"])
def test_bad_rates_name_the_flag(text):
    with pytest.raises(UsageError, match="--limit-rate"):
        parse_rate(text)


def test_human_rate():
    assert human_rate(2 << 20) == "2 MB/s"
    assert human_rate(200 * 1024) == "200 KB/s"
    assert human_rate(None) == "unlimited"


def test_buffer_is_a_quarter_second_of_the_rate():
    assert buffer_for(None, 8 << 20) == 8 << 20
    assert buffer_for(2 << 20, 8 << 20) == 512 << 10
    assert buffer_for(10_000, 8 << 20) == MIN_BUFFER
    assert buffer_for(1 << 30, 8 << 20) == 8 << 20


def test_pacer_unlimited_reads_everything():
    p = ReadPacer()
    assert p.allowance(0.0) is None
    assert p.wait(0.0) is None


def test_pacer_token_bucket_keeps_the_rate_on_a_fake_clock():
    rate = 2 << 20
    p = ReadPacer(rate)
    t, read = 0.0, 0
    while t < 10.0:
        n = p.allowance(t)
        assert n is not None
        if n:
            assert n >= p.quantum  # never a read smaller than the quantum: the window opens in steps
            p.took(n)
            read += n
        w = p.wait(t)
        t += w if w else 0.001
    assert read == pytest.approx(rate * 10, rel=0.01)


def test_pacer_burst_is_bounded_after_a_pause():
    p = ReadPacer(1 << 20)
    p.allowance(0.0)
    n = p.allowance(100.0)  # a reader that was away for 100 s gets at most the burst, not 100 MB
    assert n is not None and n <= max(2 * p.quantum, (1 << 20) * 0.05) + 1


def test_pacer_stall_is_a_pause_then_unlimited():
    p = ReadPacer(stall_at=1000, stall_for=3.0)
    assert not p.stall_begins(0.0, 999)
    assert p.allowance(0.0) is None
    assert p.stall_begins(1.0, 1000)
    assert not p.stall_begins(1.5, 2000)  # once
    assert p.allowance(1.5) == 0 and p.wait(1.5) == pytest.approx(2.5)
    assert p.allowance(4.0) is None


def test_pacer_rate_change_keeps_going():
    p = ReadPacer(1 << 20)
    assert p.allowance(0.0)
    p.took(p.allowance(0.0) or 0)
    p.set_rate(4 << 20, 0.0)
    assert p.quantum == int(max(MIN_QUANTUM, (4 << 20) * 0.01))
    assert p.wait(0.0) == pytest.approx(p.quantum / (4 << 20))
    p.set_rate(None, 0.1)
    assert p.allowance(0.1) is None


# -- the TCP machine, a paced reader and a simulated sender -------------------------------------------


class _Sender:
    """A window-limited server: full segments only (sender-side SWS avoidance), each arriving ``owd``
    seconds after it left; our ACKs reach it ``owd`` seconds after they left."""

    def __init__(self, mss: int = 1448, owd: float = 0.005) -> None:
        self.mss, self.owd = mss, owd
        self.isn = 5000
        self.nxt = 0  # stream offset of the next byte to send
        self.edge = 0  # the right edge of our window, as a stream offset, from the ACKs it got
        self.wire: list[tuple[float, TcpSegment]] = []  # segments in flight to us, with arrival time

    def seg(self, off: int, n: int, ack: int) -> TcpSegment:
        return TcpSegment(src_port=8080, dst_port=40000, seq=(self.isn + 1 + off) & M32, ack=ack, flags=ACK,
                          window=65535, options=TcpOptions(), payload=b"x" * n)

    def send(self, now: float, ack: int) -> None:
        while self.edge - self.nxt >= self.mss:
            self.wire.append((now + self.owd, self.seg(self.nxt, self.mss, ack)))
            self.nxt += self.mss


def test_advertised_window_holds_a_sender_to_the_read_rate():
    rate = 1 << 20
    conn = TcpConnection(local_ip=LIP, remote_ip=RIP, local_port=40000, remote_port=8080, isn=1000,
                         timestamps=False, sack=False)
    conn.rcv_buf = buffer_for(rate, 8 << 20)  # what the session does for --limit-rate
    conn.connect(0.0)
    (syn,) = [parse_tcp(b, LIP, RIP) for b in conn.take_segments()]
    s = _Sender()
    conn.on_segment(TcpSegment(src_port=8080, dst_port=40000, seq=s.isn, ack=(syn.seq + 1) & M32,
                               flags=SYN | ACK, window=65535, options=TcpOptions(mss=1460, wscale=7)), 0.01)
    ws = conn.rcv_wscale
    acks: list[tuple[float, TcpSegment]] = []  # in flight to the sender
    pacer = ReadPacer(rate)
    edges: list[int] = []
    delivered: list[tuple[float, int]] = []
    t, dt, total = 0.01, 0.001, 0
    while t < 8.0:
        for a in (parse_tcp(b, LIP, RIP) for b in conn.take_segments()):
            acks.append((t + s.owd, a))
        while acks and acks[0][0] <= t:
            _, a = acks.pop(0)
            edge = ((a.ack - s.isn - 1) & M32) + (a.window << ws)
            if edge > s.edge:
                edges.append(edge - s.edge)
                s.edge = edge
        s.send(t, (syn.seq + 1) & M32)
        while s.wire and s.wire[0][0] <= t:
            _, seg = s.wire.pop(0)
            conn.on_segment(seg, t)
        allowed = pacer.allowance(t)
        if allowed:
            n = len(conn.read(allowed))
            pacer.took(n)
            total += n
            delivered.append((t, total))
        if conn.next_deadline is not None and t >= conn.next_deadline:
            conn.on_timer(t)
        t += dt
    # the sender's rate on the wire: the bytes it sent between 1 s and 8 s, once the first buffer is full
    sent_at_1 = next(b for tt, b in delivered if tt >= 1.0)
    assert (total - sent_at_1) / (delivered[-1][0] - 1.0) == pytest.approx(rate, rel=0.03)
    assert s.nxt - total <= conn.rcv_buf + s.mss  # the server never got far ahead: the window held it
    # the window opened in useful steps: the typical move of the right edge is a whole read quantum
    big = [e for e in edges[5:] if e >= (1 << ws)]
    assert statistics.median(big) >= MIN_QUANTUM - (1 << ws)
    assert conn.counters["window_updates"] > 0
