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
