"""What the receiver's SACK blocks say, and in which order (RFC 2018 section 4), sans-IO.

RFC 2018 section 4: "The first SACK block ... MUST specify the contiguous block of data containing the
segment which triggered this ACK", and the receiver "SHOULD include as many distinct SACK blocks as
possible", repeating "the most recently reported SACK blocks" after the first. Linux keeps that order in
``tp->selective_acks`` (tcp_sack_new_ofo_skb: the block a segment lands in rotates to the front, the others
keep their order). A burst of segments growing one block must not make the receiver forget the order of
the others.
"""

from __future__ import annotations

from rawtui.stack.reassembly import Reassembly
from rawtui.stack.tcp import M32, STRETCH_SEGMENTS, TcpConnection
from rawtui.wire.tcp import ACK, FIN, SYN, TcpOptions, TcpSegment, parse_tcp

LIP, RIP = bytes([10, 0, 2, 15]), bytes([10, 0, 2, 2])
LPORT, RPORT, ISN, PISN = 40000, 8080, 1000, 5000
M = 1000


def _out(conn: TcpConnection) -> list[TcpSegment]:
    return [parse_tcp(b, LIP, RIP, verify=True) for b in conn.take_segments()]


def _established(rtt: float = 0.05) -> TcpConnection:
    """A connection whose SYN left at 0 and whose SYN-ACK came ``rtt`` later."""
    conn = TcpConnection(local_ip=LIP, remote_ip=RIP, local_port=LPORT, remote_port=RPORT, isn=ISN)
    conn.connect(0.0)
    (syn,) = _out(conn)
    assert syn.options.ts is not None
    conn.on_segment(TcpSegment(RPORT, LPORT, PISN, (ISN + 1) & M32, SYN | ACK, 65535,
                               TcpOptions(mss=1460, wscale=7, sack_permitted=True, ts=(777, syn.options.ts[0]))),
                    rtt)
    _out(conn)
    return conn


def _seg(conn: TcpConnection, k: int) -> TcpSegment:
    """Segment number ``k`` (M bytes at stream offset k * M) from the peer."""
    return TcpSegment(RPORT, LPORT, (PISN + 1 + k * M) & M32, conn.snd_nxt, ACK, 65535,
                      TcpOptions(ts=(800 + k, 0)), bytes([k & 0xFF]) * M)


def _blocks(ack: TcpSegment) -> list[tuple[int, int]]:
    """The SACK blocks of an ACK as segment numbers [first, end)."""
    base = PISN + 1
    return [((a - base) // M, (b - base) // M) for a, b in ack.options.sack]


def test_reassembly_remembers_the_order_blocks_were_touched_in_not_just_the_last_eight_segments() -> None:
    r = Reassembly()
    r.add(700, b"d" * 100)  # D
    r.add(100, b"a" * 100)  # A
    r.add(500, b"c" * 100)  # C
    r.add(300, b"b" * 10)   # B
    for k in range(1, 10):  # nine more segments grow B: it stays first, the others keep their order
        r.add(300 + 10 * k, b"b" * 10)
    assert r.sack_blocks(4) == [(300, 400), (500, 600), (100, 200), (700, 800)]
    assert r.sack_blocks(3) == [(300, 400), (500, 600), (100, 200)]
    # a segment merging two blocks: the merged block first, the rest in their order
    r.add(400, b"x" * 100)
    assert r.sack_blocks(4) == [(300, 600), (100, 200), (700, 800)]


def test_a_retransmission_block_is_repeated_after_a_burst_grows_the_highest_block() -> None:
    """RFC 2018 section 4: after the block of the segment that triggered the ACK come the most recently
    reported ones. Here a retransmission lands alone in a hole (block F), then the highest block T grows
    by ten segments (their ACKs compressed into one, as Linux does): that ACK reports T, then F (reported
    by the ACK before), then the next most recent; not the lowest blocks by position."""
    conn = _established()
    # segment 0 lost (the hole at RCV.NXT), 1-9 lost; blocks L1 = 10-14, L2 = 20-24, T = 30-34
    for k in (*range(10, 15), *range(20, 25), *range(30, 35)):
        conn.on_segment(_seg(conn, k), 1.0)
    while conn.next_deadline is not None and conn.next_deadline <= 1.01:
        conn.on_timer(conn.next_deadline)
    acks = _out(conn)
    assert _blocks(acks[-1]) == [(30, 35), (20, 25), (10, 15)]
    conn.on_segment(_seg(conn, 5), 1.02)  # a retransmission alone in the hole: reported at once, first
    (a,) = _out(conn)
    assert _blocks(a) == [(5, 6), (30, 35), (20, 25)]
    for k in range(35, 45):  # T grows: held back (SACK compression), then one ACK
        conn.on_segment(_seg(conn, k), 1.03)
    assert _out(conn) == []
    deadline = conn.next_deadline
    assert deadline is not None
    conn.on_timer(deadline)
    (a,) = _out(conn)
    assert a.ack == PISN + 1  # segment 0 still missing
    assert _blocks(a) == [(30, 45), (5, 6), (20, 25)]


def test_receive_coalescing_is_half_the_compressed_sack_bound_and_only_while_data_flows() -> None:
    """The I/O loop may let frames gather for ``receive_coalesce`` after a wake-up: half of the bound a
    compressed SACK waits (one helper for both), only once data flows on an established connection."""
    conn = _established()  # RTT 50 ms (the SYN at 0, the SYN-ACK at 0.05)
    assert conn.receive_coalesce == 0.0  # no data yet: the request must leave at once
    conn.on_segment(_seg(conn, 0), 1.0)
    assert conn.receive_coalesce == min(0.001, 0.05 / 20) / 2 == 0.0005
    # the compressed SACK's delay, same connection: a hole, three immediate dup ACKs, then one held back
    for k in range(2, 6):
        conn.on_segment(_seg(conn, k), 2.0)
    assert conn.next_deadline is not None
    assert abs((conn.next_deadline - 2.0) - 2 * conn.receive_coalesce) < 1e-12
    # a LAN's RTT: 25 us, less than a sleep costs (the session then does not wait at all)
    fast = _established(rtt=0.001)
    fast.on_segment(_seg(fast, 0), 0.002)
    assert abs(fast.receive_coalesce - 0.001 / 40) < 1e-12
    # the peer's FIN: the close goes at once
    fin = TcpSegment(RPORT, LPORT, (PISN + 1 + M) & M32, fast.snd_nxt, ACK | FIN, 65535, TcpOptions(ts=(900, 0)))
    fast.on_segment(fin, 0.003)
    assert fast.receive_coalesce == 0.0


def test_a_batch_of_in_order_segments_gets_one_ack_at_its_end_up_to_the_stretch_limit() -> None:
    """hold_acks / release_acks (GRO's stretch ACK): in-order data of one batch is acknowledged once, when
    the batch ends, or every STRETCH_SEGMENTS segments; anything else (a hole) is answered at once."""
    plain = _established()
    for k in range(6):
        plain.on_segment(_seg(plain, k), 1.0)
    assert len(_out(plain)) == 3  # one ACK per two full segments

    conn = _established()
    conn.hold_acks()
    for k in range(6):
        conn.on_segment(_seg(conn, k), 1.0)
    assert _out(conn) == []
    conn.release_acks(1.001)
    (ack,) = _out(conn)
    assert ack.ack == (PISN + 1 + 6 * M) & M32
    conn.release_acks(1.002)  # nothing more held
    assert _out(conn) == []

    conn.hold_acks()
    for k in range(6, 6 + STRETCH_SEGMENTS + 4):
        conn.on_segment(_seg(conn, k), 2.0)
    (mid,) = _out(conn)  # at the limit, inside the batch
    assert mid.ack == (PISN + 1 + (6 + STRETCH_SEGMENTS) * M) & M32
    conn.on_segment(_seg(conn, 6 + STRETCH_SEGMENTS + 5), 2.0)  # one segment lost before it: a hole
    (dup,) = _out(conn)
    assert dup.ack == (PISN + 1 + (6 + STRETCH_SEGMENTS + 4) * M) & M32 and dup.options.sack
    conn.release_acks(2.001)
    assert _out(conn) == []  # the dup ACK already acknowledged everything in order
