"""NewReno congestion control against the numbers of RFC 5681, 6582 and 6928."""

from __future__ import annotations

from rawtui.stack.congestion import SSTHRESH_INFINITE, Reno, initial_window

MSS = 1448


def test_initial_window_rfc6928():
    assert initial_window(1460) == 14600
    assert initial_window(1448) == 14480  # 10 * MSS is below 14600
    assert initial_window(536) == 5360
    assert initial_window(9000) == 18000  # max(2*MSS, 14600) wins for jumbo segments
    assert Reno(MSS).window == 14480 and Reno(MSS).ssthresh == SSTHRESH_INFINITE
    assert Reno(MSS, syn_lost=True).window == MSS


def test_slow_start_grows_one_mss_per_ack_at_most():
    cc = Reno(MSS)
    cc.on_ack(MSS, 0.0)
    assert cc.window == 11 * MSS
    cc.on_ack(10 * MSS, 0.0)  # a stretch ACK counts as one MSS (ABC, L = 1)
    assert cc.window == 12 * MSS
    cc.on_ack(100, 0.0)
    assert cc.window == 12 * MSS + 100
    cc.on_ack(0, 0.0)
    assert cc.window == 12 * MSS + 100


def test_congestion_avoidance_one_mss_per_window():
    cc = Reno(MSS)
    cc.ssthresh = 4 * MSS
    cc.cwnd = 4 * MSS
    for _ in range(3):
        cc.on_ack(MSS, 0.0)
    assert cc.window == 4 * MSS
    cc.on_ack(MSS, 0.0)  # a whole window acknowledged
    assert cc.window == 5 * MSS
    for _ in range(5):
        cc.on_ack(MSS, 0.0)
    assert cc.window == 6 * MSS


def test_fast_retransmit_and_recovery():
    cc = Reno(MSS)
    cc.on_fast_retransmit(flight=20 * MSS)
    assert cc.ssthresh == 10 * MSS and cc.window == 13 * MSS and cc.in_recovery
    cc.on_dup_ack()
    assert cc.window == 14 * MSS
    cc.on_partial_ack(3 * MSS)  # deflate by 3, add back 1
    assert cc.window == 12 * MSS and cc.in_recovery
    cc.on_recovery_exit(flight=4 * MSS)
    assert cc.window == 5 * MSS and not cc.in_recovery  # min(ssthresh, max(flight, MSS) + MSS)
    cc.on_fast_retransmit(flight=2 * MSS)
    assert cc.ssthresh == 2 * MSS  # never below 2 * SMSS
    cc.on_recovery_exit()
    assert cc.window == 2 * MSS


def test_dup_ack_outside_recovery_does_nothing():
    cc = Reno(MSS)
    cc.on_dup_ack()
    assert cc.window == 10 * MSS


def test_rto_collapses_to_one_segment():
    cc = Reno(MSS)
    cc.on_rto(flight=10 * MSS)
    assert cc.window == MSS and cc.ssthresh == 5 * MSS and not cc.in_recovery
    cc.on_rto(flight=MSS)
    assert cc.ssthresh == 2 * MSS
    # slow start again up to ssthresh, then linear
    cc.on_ack(MSS, 0.0)
    assert cc.window == 2 * MSS
    cc.on_ack(MSS, 0.0)  # cwnd == ssthresh: congestion avoidance from here
    assert cc.window == 2 * MSS
    cc.on_ack(MSS, 0.0)  # a whole cwnd (2 MSS) acknowledged: + 1 MSS
    assert cc.window == 3 * MSS


class FixedWindow:
    """A controller of the test's own: a constant window of two segments, and a log of every call."""

    def __init__(self, mss: int, *, syn_lost: bool = False) -> None:
        self.mss = mss
        self.ssthresh = 1 << 30
        self.in_recovery = False
        self.calls: list[str] = ["syn_lost" if syn_lost else "new"]

    @property
    def window(self) -> int:
        return 2 * self.mss

    def on_ack(self, acked_bytes: int, now: float) -> None:
        self.calls.append(f"ack {acked_bytes}")

    def on_dup_ack(self) -> None:
        self.calls.append("dup")

    def on_fast_retransmit(self, flight: int) -> None:
        self.calls.append("fast")

    def on_partial_ack(self, acked_bytes: int) -> None:
        self.calls.append("partial")

    def on_recovery_exit(self, flight: int | None = None) -> None:
        self.calls.append("exit")

    def on_rto(self, flight: int) -> None:
        self.calls.append(f"rto {flight}")


def test_the_connection_sends_what_a_plugged_in_controller_allows() -> None:
    from test_stack_tcp import establish, out

    conn, peer = establish(conn_kw={"congestion": FixedWindow})
    cc = conn.cc
    assert isinstance(cc, FixedWindow) and cc.calls == ["new"]  # made again once established
    conn.send(bytes(10 * conn.smss), 1.0)
    sent = out(conn)
    assert sum(len(s.payload) for s in sent) == 2 * conn.smss  # its window, not Reno's 10 segments
    conn.on_segment(peer.seg(0, ack=sent[-1].seq + len(sent[-1].payload)), 1.05)
    assert cc.calls[-1] == f"ack {2 * conn.smss}"
    assert sum(len(s.payload) for s in out(conn)) == 2 * conn.smss
    deadline = conn.next_deadline
    assert deadline is not None
    conn.on_timer(deadline)
    assert cc.calls[-1] == f"rto {2 * conn.smss}"
