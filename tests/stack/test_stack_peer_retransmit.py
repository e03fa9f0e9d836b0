"""The server's retransmissions as the receiver sees them: found, classified, told from the network's own
copies and reorderings by their timestamps, answered with a D-SACK (RFC 2883).

The TCP machine is driven with crafted segments and an explicit clock; every segment it sends is parsed
back with its checksum verified. The handshake RTT is 50 ms, so (see ``rawtui.stack.tcp``) a silence of
75 ms is a tail-loss probe's, one of 180 ms or more a retransmission timeout's.
"""

from __future__ import annotations

from rawtui import events as ev
from rawtui.stack.tcp import M32, TcpConnection
from rawtui.wire.tcp import ACK, TcpOptions, TcpSegment, parse_tcp

LIP, RIP = bytes([10, 0, 2, 15]), bytes([10, 0, 2, 2])
LPORT, RPORT = 40000, 8080
ISN, PISN = 1000, 5000
MSS = 1000  # the segments' payload here
STREAM = bytes(range(256)) * 200


class Peer:
    """The server: segments at stream offsets, with its own TSval clock and the TSecr it would echo."""

    def __init__(self, conn: TcpConnection, ts: bool = True, sack: bool = True) -> None:
        self.conn = conn
        self.ts = ts
        self.sack = sack
        self.tsval = 100
        self.tsecr = 0

    def seg(self, off: int, n: int = MSS, tsval: int | None = None, tsecr: int | None = None,
            window: int = 65535) -> TcpSegment:
        ts = ((self.tsval if tsval is None else tsval), (self.tsecr if tsecr is None else tsecr)) if self.ts else None
        return TcpSegment(RPORT, LPORT, (PISN + 1 + off) & M32, self.conn.snd_nxt, ACK, window,
                          TcpOptions(ts=ts), STREAM[off : off + n])


def out(conn: TcpConnection) -> list[TcpSegment]:
    return [parse_tcp(b, LIP, RIP, verify=True) for b in conn.take_segments()]


def of(events: list, cls: type) -> list:
    return [e for e in events if isinstance(e, cls)]


def establish(ts: bool = True, sack: bool = True) -> tuple[TcpConnection, Peer]:
    conn = TcpConnection(local_ip=LIP, remote_ip=RIP, local_port=LPORT, remote_port=RPORT, isn=ISN,
                         sack=sack, timestamps=ts)
    conn.connect(0.0)
    (syn,) = out(conn)
    peer = Peer(conn, ts, sack)
    opts = TcpOptions(mss=1460, wscale=7, sack_permitted=sack, ts=(peer.tsval, syn.options.ts[0]) if ts else None)
    conn.on_segment(TcpSegment(RPORT, LPORT, PISN, ISN + 1, 0x12, 65535, opts), 0.05)
    acks = out(conn)
    assert conn.state == "ESTABLISHED" and acks
    echo(peer, acks)
    conn.take_events()
    return conn, peer


def echo(peer: Peer, acks: list[TcpSegment]) -> None:
    """The peer got our last segment: it echoes that TSval from now on."""
    if acks and acks[-1].options.ts:
        peer.tsecr = acks[-1].options.ts[0]


def feed(conn: TcpConnection, peer: Peer, seg: TcpSegment, now: float) -> tuple[list[TcpSegment], list]:
    conn.on_segment(seg, now)
    acks = out(conn)
    return acks, conn.take_events()


def flow(conn: TcpConnection, peer: Peer, offs: list[int], t0: float, step: float = 0.001) -> float:
    """The peer sends these segments ``step`` apart, its TSval ticking 1 per segment, echoing our ACKs."""
    t = t0
    for off in offs:
        t += step
        peer.tsval += 1
        acks, _ = feed(conn, peer, peer.seg(off), t)
        echo(peer, acks)
    return t


def resent(events: list) -> list[ev.PeerRetransmit]:
    return of(events, ev.PeerRetransmit)


def relative_sack(seg: TcpSegment) -> list[tuple[int, int]]:
    """The SACK blocks of our ACK as stream offsets."""
    return [((s - PISN - 1) & M32, (e - PISN - 1) & M32) for s, e in seg.options.sack]


# ------------------------------------------------------------------------------------------ fast


def test_hole_filled_after_three_dup_acks_is_a_fast_retransmission():
    conn, peer = establish()
    t = flow(conn, peer, [0, 1000, 3000, 4000, 5000], 0.1)  # 2000..3000 lost
    assert conn.counters["dup_acks_sent"] == 3
    peer.tsval += 30  # resent ~1 RTT later
    acks, evs = feed(conn, peer, peer.seg(2000), t + 0.03)
    (r,) = resent(evs)
    assert (r.seq, r.length, r.kind, r.dup_acks) == (2001, MSS, "fast", 3)
    assert abs(r.silence_ms - 30.0) < 1e-6
    assert of(evs, ev.SegmentIn)[0].note == "fill"
    assert acks[-1].ack == PISN + 1 + 6000 and not acks[-1].options.sack  # all delivered, no SACK left
    c = conn.counters
    assert (c["peer_retrans"], c["peer_retrans_fast"], c["holes_filled"]) == (1, 1, 1)
    assert c["peer_retrans_timeout"] == c["peer_retrans_tlp"] == c["peer_retrans_spurious"] == 0


def test_hole_between_held_blocks_filled_is_counted_once_with_its_dup_acks():
    conn, peer = establish()
    t = flow(conn, peer, [0, 1000, 3000, 5000, 6000], 0.1)  # 2000 and 4000 lost: two holes
    peer.tsval += 30
    _, evs = feed(conn, peer, peer.seg(4000), t + 0.03)  # the upper hole first: above the lower one
    (r,) = resent(evs)
    assert (r.seq, r.kind) == (4001, "fast")
    assert r.dup_acks == 2  # sent since that hole opened (for the segments at 5000 and 6000)
    peer.tsval += 1
    _, evs = feed(conn, peer, peer.seg(2000), t + 0.031)
    (r,) = resent(evs)
    assert (r.seq, r.kind, r.dup_acks) == (2001, "fast", 4)  # 3000, 5000, 6000 and the fill at 4000
    assert conn.counters["peer_retrans_fast"] == 2 and conn.counters["holes_filled"] == 1
    assert conn.read() == STREAM[:7000]


def test_fast_and_general_paths_classify_alike():
    """A fill with the peer's window unchanged takes the fast path; with it changed, the general one."""
    results = []
    for window in (65535, 60000):
        conn, peer = establish()
        t = flow(conn, peer, [0, 1000, 3000, 4000, 5000], 0.1)
        peer.tsval += 30
        _, evs = feed(conn, peer, peer.seg(2000, window=window), t + 0.03)
        results.append([(r.seq, r.kind, r.dup_acks) for r in resent(evs)])
        assert conn.counters["peer_retrans_fast"] == 1
    assert results[0] == results[1] == [(2001, "fast", 3)]


# ------------------------------------------------------------------------------------------ timeout


def test_hole_filled_after_a_long_silence_is_a_timeout_retransmission():
    conn, peer = establish()
    t = flow(conn, peer, [0, 1000, 3000], 0.1)  # one segment above the hole: too few for a fast retransmit
    peer.tsval += 400
    _, evs = feed(conn, peer, peer.seg(2000), t + 0.4)
    (r,) = resent(evs)
    assert (r.kind, r.dup_acks) == ("timeout", 1)
    assert abs(r.silence_ms - 400.0) < 1e-6
    assert conn.counters["peer_retrans_timeout"] == 1


def test_in_order_data_after_a_silence_echoing_our_ack_of_everything_is_a_timeout_retransmission():
    """After a blackout nothing arrives above the hole: the RTO's resend comes in order. Its TSecr echoes
    our ACK of everything before it: the server sent it knowing nothing was missing below it."""
    conn, peer = establish()
    t = flow(conn, peer, [0, 1000, 2000, 3000], 0.1)
    assert conn.rcv_nxt == PISN + 1 + 4000 and peer.tsecr  # our last ACK acknowledged all
    peer.tsval += 1000
    _, evs = feed(conn, peer, peer.seg(4000), t + 1.0)
    (r,) = resent(evs)
    assert (r.seq, r.kind, r.dup_acks) == (4001, "timeout", 0)
    assert of(evs, ev.SegmentIn)[0].note == ""  # in order: delivered as usual
    assert conn.read() == STREAM[:5000]


def test_in_order_data_after_a_silence_sent_before_our_last_ack_is_not_a_retransmission():
    conn, peer = establish()
    t = flow(conn, peer, [0, 1000, 2000, 3000], 0.1)
    old_echo = peer.tsecr
    acks, _ = feed(conn, peer, peer.seg(4000, tsval=peer.tsval + 1), t + 0.001)
    acks, _ = feed(conn, peer, peer.seg(5000, tsval=peer.tsval + 1), t + 0.002)
    echo(peer, acks)
    # new data echoing an older ACK of ours (one that acknowledged less): it was in flight, sent
    # from the server's window, then delayed: no resend
    _, evs = feed(conn, peer, peer.seg(6000, tsval=peer.tsval + 2, tsecr=old_echo), t + 0.5)
    assert not resent(evs)
    assert conn.counters["peer_retrans"] == 0


def test_in_order_data_after_a_silence_with_the_very_next_ip_id_is_new_data_after_a_pause():
    """The same silence and echo as a timer's resend, but its IPv4 ID is the one right after the last packet
    we got (counting each MSS of a GRO-merged frame): the server sent nothing in between, so nothing was
    lost: it is new data after a pause of the application, not a probe or a timeout's resend."""
    for gap, resends in ((0, 0), (1, 1)):  # gap 1: one packet numbered between never reached us
        conn, peer = establish()
        ip_id, t = _ordered_ids(conn, peer, 100, 0.1)  # offsets 0..9999, IDs 100..109
        conn.on_segment(peer.seg(10 * MSS, 3 * MSS), t + 0.001, ip_id)  # a GRO frame: 3 segments, 3 IDs
        echo(peer, out(conn))
        peer.tsval += 1000
        conn.on_segment(peer.seg(13 * MSS), t + 1.0, (ip_id + 3 + gap) & 0xFFFF)
        assert len(resent(conn.take_events())) == resends, gap
        assert conn.read() == STREAM[: 14 * MSS]


def test_no_retransmission_before_the_first_data_or_after_a_tight_window():
    conn, peer = establish()
    # the response's first byte, long after the handshake: nothing was resent
    _, evs = feed(conn, peer, peer.seg(0), 2.0)
    assert not resent(evs)
    # our window was tight (the server waited for us), then reopened: its next data is fresh
    small = TcpConnection(local_ip=LIP, remote_ip=RIP, local_port=LPORT, remote_port=RPORT, isn=ISN,
                          rcv_buf=3000)
    small.connect(0.0)
    (syn,) = out(small)
    p2 = Peer(small)
    small.on_segment(TcpSegment(RPORT, LPORT, PISN, ISN + 1, 0x12, 65535,
                                TcpOptions(mss=1460, wscale=7, sack_permitted=True, ts=(100, syn.options.ts[0]))), 0.05)
    echo(p2, out(small))
    t = flow(small, p2, [0, 1000, 2000], 0.1)  # the window is full
    assert small.take_segments() == []
    small.read()  # the app reads: a window update goes out
    acks = out(small)
    assert acks and acks[-1].window > 0
    echo(p2, acks)
    p2.tsval += 500
    _, evs = feed(small, p2, p2.seg(3000), t + 0.5)
    assert not resent(evs)


# ------------------------------------------------------------------------------------------ tlp, spurious


def test_repeat_of_the_highest_segment_after_a_probe_silence_is_a_tlp_with_a_dsack():
    conn, peer = establish()
    t = flow(conn, peer, [0, 1000, 2000, 3000], 0.1)
    peer.tsval += 100
    acks, evs = feed(conn, peer, peer.seg(3000), t + 0.1)  # 100 ms: 2 RTT, short of the RTO
    (r,) = resent(evs)
    assert (r.seq, r.kind) == (3001, "tlp")
    assert of(evs, ev.SegmentIn)[0].note == "dup"
    (a,) = acks
    assert a.ack == PISN + 1 + 4000
    assert relative_sack(a) == [(3000, 4000)]  # D-SACK: the duplicate, below the ACK (RFC 2883 4.1.1)
    assert conn.counters["peer_retrans_tlp"] == 1 and conn.counters["dsacks_sent"] == 1


def test_repeat_of_older_data_is_spurious_and_dsacked():
    conn, peer = establish()
    t = flow(conn, peer, [0, 1000, 2000, 3000], 0.1)
    peer.tsval += 5
    acks, evs = feed(conn, peer, peer.seg(1000), t + 0.005)
    (r,) = resent(evs)
    assert (r.seq, r.kind, r.length) == (1001, "spurious", MSS)
    assert relative_sack(acks[-1]) == [(1000, 2000)]
    assert conn.counters["peer_retrans_spurious"] == 1 and conn.counters["dup_data"] == 1
    # the next ACK carries no D-SACK any more
    peer.tsval += 1
    acks, _ = feed(conn, peer, peer.seg(4000), t + 0.006)
    acks2, _ = feed(conn, peer, peer.seg(5000), t + 0.007)
    assert all(not a.options.sack for a in acks + acks2)


def test_repeat_inside_a_held_block_dsacks_the_duplicate_then_its_block():
    conn, peer = establish()
    t = flow(conn, peer, [0, 2000, 3000, 4000], 0.1)  # held: 2000..5000
    peer.tsval += 5
    acks, evs = feed(conn, peer, peer.seg(3000), t + 0.005)
    (r,) = resent(evs)
    assert r.kind == "spurious"
    (a,) = acks
    assert a.ack == PISN + 1 + 1000
    assert relative_sack(a) == [(3000, 4000), (2000, 5000)]  # RFC 2883 4.1.2
    peer.tsval += 1
    acks, _ = feed(conn, peer, peer.seg(6000), t + 0.006)
    assert relative_sack(acks[-1])[0] == (6000, 7000)  # back to plain SACK


def test_partly_old_resend_is_spurious_and_dsacks_the_old_part():
    conn, peer = establish()
    t = flow(conn, peer, [0, 1000], 0.1)
    peer.tsval += 5
    acks, evs = feed(conn, peer, peer.seg(1500, 1000), t + 0.005)  # 1500..2000 old, 2000..2500 new
    (r,) = resent(evs)
    assert r.kind == "spurious"
    assert acks and acks[-1].ack == PISN + 1 + 2500  # answered at once
    assert relative_sack(acks[-1]) == [(1500, 2000)]
    assert conn.read() == STREAM[:2500]


# ------------------------------------------------------------------------------------------ the network's doing


def test_network_copy_carries_its_originals_tsval_and_is_not_a_retransmission():
    conn, peer = establish()
    t = flow(conn, peer, [0, 1000], 0.1)
    acks, evs = feed(conn, peer, peer.seg(1000), t + 0.0001)  # the copy, right after: same TSval
    assert not resent(evs)
    assert of(evs, ev.SegmentIn)[0].note == "copy"
    assert relative_sack(acks[-1]) == [(1000, 2000)]  # still D-SACKed: the sender may learn of it
    # a copy of an older segment, late: an older TSval than the newest seen
    _, evs = feed(conn, peer, peer.seg(0, tsval=peer.tsval - 1), t + 0.002)
    assert not resent(evs)
    c = conn.counters
    assert (c["network_copies"], c["peer_retrans"], c["dup_data"], c["dsacks_sent"]) == (2, 0, 2, 2)


def test_reordered_original_filling_a_hole_is_late_not_resent():
    conn, peer = establish()
    base = peer.tsval
    t = 0.1
    for i, off in enumerate([0, 2000, 3000, 4000]):  # sent in order at TSval base+1.., 1000 held back
        t += 0.001
        feed(conn, peer, peer.seg(off, tsval=base + 1 + (i + (1 if off > 1000 else 0))), t)
    _, evs = feed(conn, peer, peer.seg(1000, tsval=base + 2), t + 0.001)  # sent before 2000 was
    assert not resent(evs)
    assert of(evs, ev.SegmentIn)[0].note == "fill"
    c = conn.counters
    assert (c["network_late"], c["peer_retrans"], c["holes_filled"]) == (1, 0, 1)
    assert conn.read() == STREAM[:5000]


def test_same_millisecond_as_the_opener_is_late_too():
    conn, peer = establish()
    feed(conn, peer, peer.seg(0, tsval=200), 0.1)
    feed(conn, peer, peer.seg(2000, tsval=201), 0.101)
    _, evs = feed(conn, peer, peer.seg(1000, tsval=201), 0.102)
    assert not resent(evs) and conn.counters["network_late"] == 1


def _ordered_ids(conn: TcpConnection, peer: Peer, first_id: int, t: float) -> tuple[int, float]:
    """In-order data whose IPv4 IDs count up by one per segment, as Linux numbers a connection's packets."""
    ip_id = first_id
    for off in range(0, 10 * MSS, MSS):
        t += 0.001
        peer.tsval += 1
        conn.on_segment(peer.seg(off), t, ip_id)
        echo(peer, out(conn))
        ip_id = (ip_id + 1) & 0xFFFF
    return ip_id, t


def test_same_millisecond_as_the_opener_the_ordered_ip_id_tells_a_fast_retransmission():
    """On a sub-millisecond path the fast retransmission can carry the opener's TSval: its IPv4 ID, after
    the opener's, says it was sent later (a retransmission), where the timestamps alone call it late."""
    conn, peer = establish()
    ip_id, t = _ordered_ids(conn, peer, 65530, 0.1)  # (the IDs wrap past 65535 on the way)
    conn.on_segment(peer.seg(11 * MSS), t + 0.0001, ip_id + 1)  # 10000 lost (ID ip_id): a hole opens
    for k in range(2, 4):
        conn.on_segment(peer.seg((10 + k) * MSS), t + 0.0001 * k, ip_id + k)
    out(conn)
    conn.on_segment(peer.seg(10 * MSS), t + 0.0005, ip_id + 4)  # resent in the same tick, a later ID
    evs = conn.take_events()
    assert [r.kind for r in resent(evs)] == ["fast"] and conn.counters["network_late"] == 0
    # the original after all (same tick, the ID before the opener's): late, not a copy or a resend
    conn.on_segment(peer.seg(10 * MSS), t + 0.0006, ip_id)
    evs = conn.take_events()
    assert not resent(evs) and conn.counters["network_late"] == 1 and conn.counters["network_copies"] == 0
    assert conn.read() == STREAM[: 14 * MSS]


def test_a_loss_among_the_first_segments_is_told_by_the_ip_id_too():
    """The flaky case the lab met: the 4th segment lost, resent within the same tick as the 5th. Three steps
    of the IDs are evidence enough (random IDs: a small forward step ~1.6 % of the time)."""
    conn, peer = establish()
    peer.tsval = 300
    for off, ip_id in ((0, 50), (MSS, 51), (2 * MSS, 52), (4 * MSS, 54)):
        conn.on_segment(peer.seg(off), 0.1, ip_id)
    conn.on_segment(peer.seg(3 * MSS), 0.1005, 55)
    assert [r.kind for r in resent(conn.take_events())] == ["fast"] and conn.counters["network_late"] == 0


def test_same_millisecond_as_the_opener_with_an_ip_id_before_it_is_late():
    conn, peer = establish()
    ip_id, t = _ordered_ids(conn, peer, 7, 0.1)
    conn.on_segment(peer.seg(11 * MSS), t + 0.0001, ip_id + 1)
    conn.on_segment(peer.seg(10 * MSS), t + 0.0002, ip_id)  # held back by the network, same tick
    assert not resent(conn.take_events()) and conn.counters["network_late"] == 1


def test_same_millisecond_with_unordered_ip_ids_stays_late():
    """IDs that do not count up (random, or all zero) tell nothing: a tie in TSval stays the late original."""
    for ids in ([0] * 20, [(i * 40503) & 0xFFFF for i in range(20)]):
        conn, peer = establish()
        t = 0.1
        for k, off in enumerate(range(0, 10 * MSS, MSS)):
            t += 0.001
            peer.tsval += 1
            conn.on_segment(peer.seg(off), t, ids[k])
        conn.on_segment(peer.seg(11 * MSS), t + 0.0001, ids[10])
        conn.on_segment(peer.seg(10 * MSS), t + 0.0005, (ids[10] + 1) & 0xFFFF)
        assert not resent(conn.take_events()) and conn.counters["network_late"] == 1, ids[:3]


# ------------------------------------------------------------------------------------------ without options


def test_without_timestamps_every_fill_and_repeat_is_counted_as_resent():
    conn, peer = establish(ts=False)
    t = flow(conn, peer, [0, 2000, 3000, 4000], 0.1)
    _, evs = feed(conn, peer, peer.seg(1000), t + 0.001)
    assert [r.kind for r in resent(evs)] == ["fast"]
    acks, evs = feed(conn, peer, peer.seg(1000), t + 0.002)  # a copy, maybe: nothing says so
    assert [r.kind for r in resent(evs)] == ["spurious"]
    assert relative_sack(acks[-1]) == [(1000, 2000)]
    assert conn.counters["network_copies"] == 0


def test_without_sack_no_dsack_is_sent():
    conn, peer = establish(sack=False)
    t = flow(conn, peer, [0, 1000], 0.1)
    peer.tsval += 5
    acks, evs = feed(conn, peer, peer.seg(0), t + 0.005)
    assert [r.kind for r in resent(evs)] == ["spurious"]
    assert not acks[-1].options.sack and conn.counters["dsacks_sent"] == 0


def test_peer_retransmit_event_round_trips_through_ndjson():
    conn, peer = establish()
    t = flow(conn, peer, [0, 2000, 3000, 4000], 0.1)
    peer.tsval += 30
    _, evs = feed(conn, peer, peer.seg(1000), t + 0.03)
    (r,) = resent(evs)
    assert ev.from_dict(ev.to_dict(r)) == r


def test_repeat_after_a_timeout_silence_is_a_timeout_marked_as_a_repeat():
    """Our ACKs were lost (a blackout both ways): the server's RTO resends data we had."""
    conn, peer = establish()
    t = flow(conn, peer, [0, 1000, 2000, 3000], 0.1)
    peer.tsval += 3000
    acks, evs = feed(conn, peer, peer.seg(1000), t + 3.0)
    (r,) = resent(evs)
    assert (r.kind, r.repeat) == ("timeout", True)
    assert relative_sack(acks[-1]) == [(1000, 2000)]
    assert conn.counters["peer_retrans_timeout"] == 1 and conn.counters["peer_retrans_spurious"] == 0
