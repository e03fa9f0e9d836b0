"""The TCP machine against a hostile or confused peer: what tests/stack/test_stack_tcp.py does not cover yet.

RFC 5961: SYNs in any synchronized state and ACKs older than SND.UNA - MAX.SND.WND (blind data injection)
get a challenge ACK; floods of in-window RSTs never reset the connection unless one is exact. Memory:
out-of-order data is bounded by the window in bytes *and* in the number of holes it may open.
"""

from __future__ import annotations

import random

import pytest
from test_stack_tcp import ISN, LPORT, PISN, RPORT, STREAM, establish, out

from rawtui.stack.tcp import M32, MAX_OOO_BLOCKS
from rawtui.wire.tcp import ACK, FIN, PSH, RST, SYN, TcpSegment

REQUEST = b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n"


def with_request_acked():
    """Established, our request sent and acknowledged by the peer (so SND.UNA moved)."""
    conn, peer = establish()
    conn.send(REQUEST, 0.1)
    out(conn)
    conn.on_segment(peer.seg(0, ack=conn.snd_nxt), 0.15)
    out(conn)
    assert conn.snd_una == (ISN + 1 + len(REQUEST)) & M32
    return conn, peer


@pytest.mark.parametrize("where", [0, 5, 70000, 1 << 30])
@pytest.mark.parametrize("state", ["ESTABLISHED", "CLOSE-WAIT", "FIN-WAIT-2"])
def test_syn_in_any_synchronized_state_gets_a_challenge_ack(where, state):
    conn, peer = with_request_acked()
    conn.on_segment(peer.seg(0, b"abc"), 0.2)
    if state == "CLOSE-WAIT":
        conn.on_segment(peer.seg(3, flags=ACK | FIN), 0.21)
    elif state == "FIN-WAIT-2":
        conn.close(0.21)
        fin = out(conn)[-1]
        assert fin.flags & FIN
        conn.on_segment(peer.seg(3, ack=conn.snd_nxt), 0.22)
    out(conn)
    assert conn.state == state
    conn.on_segment(peer.seg(where, flags=SYN, ack=0), 0.3)
    (a,) = out(conn)
    assert a.flags == ACK and a.ack == conn.rcv_nxt
    assert conn.state == state and conn.counters["challenge_acks"] == 1 and conn.error is None


def test_blind_data_injection_with_an_old_ack_is_dropped():
    """RFC 5961 5.2: data whose ACK is older than SND.UNA - MAX.SND.WND is not delivered; a challenge ACK
    goes out. (Before the fix such data went straight into the stream.)"""
    conn, peer = with_request_acked()
    conn.on_segment(peer.seg(0, b"real"), 0.2)
    assert conn.read() == b"real"
    for old_ack in ((ISN - 0x40000000) & M32, (conn.snd_una - conn._max_snd_wnd - 1) & M32, (ISN - 1) & M32):
        if ((conn.snd_una - old_ack) & M32) <= conn._max_snd_wnd:
            continue  # (ISN - 1 is only "far" with a small window)
        conn.on_segment(peer.seg(4, b"EVIL", ack=old_ack), 0.3)
        (a,) = out(conn)
        assert a.flags == ACK and a.ack == PISN + 1 + 4
        assert conn.read() == b""
    assert conn.counters["challenge_acks"] >= 2
    # an ACK that is merely old (the peer had not seen our request yet: reordering) is still fine
    conn.on_segment(peer.seg(4, b"more", ack=ISN + 1), 0.4)
    assert conn.read() == b"more"


def test_fin_with_an_unacceptable_ack_does_not_end_the_stream():
    conn, peer = with_request_acked()
    conn.on_segment(peer.seg(0, flags=ACK | FIN, ack=(ISN - 0x10000000) & M32), 0.3)
    assert conn.state == "ESTABLISHED" and not conn.peer_eof
    conn.on_segment(peer.seg(100 << 20, flags=ACK | FIN), 0.31)  # far beyond the window
    assert conn.state == "ESTABLISHED" and not conn.peer_eof


def test_rst_flood_never_resets_unless_exact():
    conn, peer = with_request_acked()
    rnd = random.Random(3)
    got = bytearray()
    off = 0
    for i in range(2000):
        if i % 10 == 0:
            conn.on_segment(peer.seg(off, STREAM[off:off + 1000]), 1.0 + i * 1e-3)
            off += 1000
            got += conn.read()
        guess = rnd.randrange(-(1 << 20), 1 << 24)
        if guess == off:
            guess += 1
        conn.on_segment(peer.seg(guess, flags=rnd.choice([RST, RST | ACK])), 1.0 + i * 1e-3)
        segs = out(conn)
        assert all(not s.flags & RST for s in segs)  # never a RST for a RST
        assert len(segs) <= 1
    assert conn.state == "ESTABLISHED" and bytes(got) == STREAM[:off]
    c = conn.counters
    assert c["rst_in"] == 2000 and c["challenge_acks"] + c["rst_ignored"] == 2000 and c["challenge_acks"] > 100


def test_out_of_order_holes_are_bounded():
    """1-byte segments at every other offset: at most MAX_OOO_BLOCKS holes are held, the rest is dropped
    (and ACKed); once the peer resends in order, the stream is exact."""
    conn, peer = establish(conn_kw={"rcv_buf": 1 << 20})
    n = MAX_OOO_BLOCKS + 500
    for k in range(1, n + 1):
        conn.on_segment(peer.seg(2 * k, STREAM[2 * k:2 * k + 1]), 1.0)
        assert len(conn._ooo) <= MAX_OOO_BLOCKS
    out(conn)
    assert conn.counters["ooo_limit_drops"] == n - MAX_OOO_BLOCKS
    assert conn.counters["out_of_order"] == MAX_OOO_BLOCKS
    got = bytearray()
    for off in range(0, 2 * n + 2, 1400):  # the peer's go-back-N resend
        conn.on_segment(peer.seg(off, STREAM[off:off + 1400]), 2.0)
        got += conn.read()
    assert bytes(got) == STREAM[: len(got)] and len(got) >= 2 * n + 1
    assert len(conn._ooo) == 0


def test_data_on_the_synack_is_not_taken_but_not_lost_either():
    """A SYN-ACK carrying data: we ACK only the SYN (rawtui does not take data before the handshake is
    done), the peer resends it, and the stream starts at the right byte."""
    from test_stack_tcp import LIP, RIP, Peer, make

    from rawtui.wire.tcp import parse_tcp

    conn = make()
    conn.connect(0.0)
    (syn,) = out(conn)
    peer = Peer(conn)
    sa = peer.synack(syn)
    conn.on_segment(TcpSegment(sa.src_port, sa.dst_port, sa.seq, sa.ack, sa.flags, sa.window, sa.options,
                               b"early"), 0.05)
    (a,) = [parse_tcp(b, LIP, RIP) for b in conn.take_segments()]
    assert conn.state == "ESTABLISHED" and a.ack == PISN + 1
    conn.on_segment(peer.seg(0, b"early data", flags=ACK | PSH), 0.1)
    assert conn.read() == b"early data"


def test_segments_to_other_ports_never_touch_state():
    conn, peer = with_request_acked()
    before = (conn.rcv_nxt, conn.snd_una, conn.snd_wnd, conn.state)
    conn.on_segment(peer.seg(0, b"x", flags=RST, src_port=RPORT + 1), 0.5)
    conn.on_segment(peer.seg(0, b"x", flags=SYN, dst_port=LPORT + 1), 0.5)
    conn.on_segment(peer.seg(0, b"x" * 100, window=0, dst_port=LPORT - 1), 0.5)
    assert (conn.rcv_nxt, conn.snd_una, conn.snd_wnd, conn.state) == before
    assert conn.counters["bad_port"] == 3 and out(conn) == []


def test_rto_never_resends_beyond_what_the_window_let_out():
    """A peer window smaller than our request: the RTO resends only the bytes that went out, so SND.NXT
    stays within SND.MAX and the peer's ACK of them (with its data) is taken. (Before the fix the RTO sent
    a whole SMSS, SND.NXT passed SND.MAX, and every later segment acking it was dropped as "ack_unsent":
    the download stalled.)"""
    conn, peer = establish(window=200, wscale=None)
    conn.send(b"G" * 1000, 0.1)
    (first,) = out(conn)
    assert len(first.payload) == 200
    conn.on_timer(conn.next_deadline)
    (again,) = out(conn)
    assert again.seq == first.seq and len(again.payload) == 200
    assert conn.snd_nxt == conn.snd_max
    conn.on_segment(peer.seg(0, b"hello", ack=conn.snd_nxt, window=200), 2.0)
    assert conn.read() == b"hello" and conn.counters["ack_unsent"] == 0
    nxt = out(conn)
    assert [len(s.payload) for s in nxt if s.payload] == [200]  # the next 200 bytes, as the window allows
