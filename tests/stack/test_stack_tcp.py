"""The sans-IO TCP machine driven by scripted segments and a fake clock.

Every segment the machine produces is parsed back with ``parse_tcp(verify=True)`` (and dpkt for the
handshake) so checksums, options and flags are cross-checked; code paths are asserted by named counters.
"""

from __future__ import annotations

import dpkt
import pytest

from rawtui import events as ev
from rawtui.stack.tcp import (
    M32,
    TcpConnection,
    seq_diff,
    seq_ge,
    seq_gt,
    seq_le,
    seq_lt,
    wscale_for,
)
from rawtui.stack.tcp_states import TRANSITIONS
from rawtui.wire.tcp import ACK, FIN, PSH, RST, SYN, TcpOptions, TcpSegment, build_tcp, parse_tcp

LIP = bytes([10, 0, 2, 15])
RIP = bytes([10, 0, 2, 2])
LPORT, RPORT = 40000, 8080
ISN = 1000
PISN = 5000


def make(**kw) -> TcpConnection:
    args = {"local_ip": LIP, "remote_ip": RIP, "local_port": LPORT, "remote_port": RPORT, "isn": ISN}
    args.update(kw)
    return TcpConnection(**args)


def out(conn: TcpConnection) -> list[TcpSegment]:
    """Our segments, parsed back with checksum verification (they travel LIP -> RIP)."""
    return [parse_tcp(b, LIP, RIP, verify=True) for b in conn.take_segments()]


def of(events, cls):
    return [e for e in events if isinstance(e, cls)]


class Peer:
    """The server side of the script: builds segments in its sequence space (stream offsets)."""

    def __init__(self, conn: TcpConnection, isn: int = PISN, ts: bool = True, wscale: int | None = 7,
                 sack: bool = True, mss: int | None = 1460, window: int = 65535) -> None:
        self.conn = conn
        self.isn = isn
        self.ts = ts
        self.wscale = wscale
        self.sack = sack
        self.mss = mss
        self.window = window  # raw field value
        self.tsval = 777
        self.tsecr = 0

    def opts(self, **kw) -> TcpOptions:
        ts = (self.tsval, self.tsecr) if self.ts else None
        return TcpOptions(ts=ts, **kw)

    def synack(self, syn: TcpSegment, **over) -> TcpSegment:
        if syn.options.ts:
            self.tsecr = syn.options.ts[0]
        o = TcpOptions(mss=self.mss, wscale=self.wscale, sack_permitted=self.sack,
                       ts=(self.tsval, self.tsecr) if self.ts else None)
        kw = {"src_port": RPORT, "dst_port": LPORT, "seq": self.isn, "ack": (syn.seq + 1) & M32, "flags": SYN | ACK,
                  "window": self.window, "options": o}
        kw.update(over)
        return TcpSegment(**kw)

    def seg(self, off: int = 0, payload: bytes = b"", flags: int = ACK, ack: int | None = None,
            window: int | None = None, **over) -> TcpSegment:
        """A segment whose first byte is stream offset ``off`` (0 = first byte after the SYN)."""
        if ack is None:
            ack = self.conn.snd_nxt
        kw = {"src_port": RPORT, "dst_port": LPORT, "seq": (self.isn + 1 + off) & M32, "ack": ack & M32,
                  "flags": flags, "window": self.window if window is None else window, "options": self.opts(),
                  "payload": payload}
        kw.update(over)
        return TcpSegment(**kw)

    def ack_for(self, seg: TcpSegment) -> None:
        """Remember the TSval to echo (what a peer's TS.Recent would hold)."""
        if seg.options.ts:
            self.tsecr = seg.options.ts[0]


def establish(now: float = 0.0, rtt: float = 0.05, conn_kw: dict | None = None, **peer_kw):
    conn = make(**(conn_kw or {}))
    conn.connect(now)
    (syn,) = out(conn)
    peer = Peer(conn, **peer_kw)
    conn.on_segment(peer.synack(syn), now + rtt)
    segs = out(conn)
    assert conn.state == "ESTABLISHED"
    assert segs and segs[0].flags == ACK
    peer.ack_for(segs[-1])
    return conn, peer


STREAM = bytes(range(256)) * 400  # 102400 bytes of known data


# ---------------------------------------------------------------------------------------- helpers


def test_seq_arithmetic_wraps():
    assert seq_lt(M32, 0) and seq_lt(0xFFFFFFF0, 5)
    assert seq_gt(5, 0xFFFFFFF0) and seq_le(7, 7) and seq_ge(7, 7)
    assert not seq_lt(7, 7)
    assert seq_diff(5, 0xFFFFFFF0) == 21 and seq_diff(0xFFFFFFF0, 5) == -21
    assert wscale_for(65535) == 0 and wscale_for(65536) == 1 and wscale_for(8 << 20) == 8


def test_transitions_table_is_consistent():
    states = {s for s, _ in TRANSITIONS} | set(TRANSITIONS.values())
    assert states == {"CLOSED", "SYN-SENT", "ESTABLISHED", "FIN-WAIT-1", "FIN-WAIT-2", "CLOSE-WAIT",
                      "CLOSING", "LAST-ACK", "TIME-WAIT"}


# ---------------------------------------------------------------------------------------- handshake


def test_syn_carries_our_options_and_handshake_negotiates():
    conn = make(ts_offset=5)
    conn.connect(1.0)
    raw = conn.take_segments()
    assert len(raw) == 1
    syn = parse_tcp(raw[0], LIP, RIP, verify=True)
    assert syn.flags == SYN and syn.seq == ISN and syn.ack == 0
    assert syn.options.mss == 1460 and syn.options.sack_permitted
    assert syn.options.wscale == 8  # 8 MiB needs a shift of 8
    assert syn.options.ts == (1005, 0)
    assert syn.window == 65535
    # cross-check with dpkt
    d = dpkt.tcp.TCP(raw[0])
    assert d.flags == dpkt.tcp.TH_SYN and d.seq == ISN and d.sport == LPORT and d.dport == RPORT
    opts = dict(dpkt.tcp.parse_opts(d.opts))
    assert opts[dpkt.tcp.TCP_OPT_MSS] == (1460).to_bytes(2, "big")
    assert conn.state == "SYN-SENT" and conn.next_deadline == pytest.approx(2.0)

    peer = Peer(conn, mss=1400, wscale=7)
    conn.on_segment(peer.synack(syn), 1.03)
    assert conn.state == "ESTABLISHED"
    (ack,) = out(conn)
    assert ack.flags == ACK and ack.seq == ISN + 1 and ack.ack == PISN + 1
    assert ack.options.ts == (1035, 777)  # TSval = ms + offset, TSecr = the peer's TSval
    assert ack.window == (8 << 20) >> 8 or ack.window == 0xFFFF
    evs = conn.take_events()
    (hs,) = of(evs, ev.Handshake)
    assert (hs.mss, hs.peer_mss, hs.wscale, hs.peer_wscale, hs.sack, hs.timestamps) == (1400, 1400, 8, 7, True,
                                                                                         True)
    assert hs.rtt_ms == pytest.approx(30.0)
    assert [(s.old, s.new) for s in of(evs, ev.TcpState)] == [("CLOSED", "SYN-SENT"), ("SYN-SENT", "ESTABLISHED")]
    assert conn.smss == 1388  # MSS minus the 12-byte timestamp option
    assert conn.srtt == pytest.approx(0.03) and conn.rttvar == pytest.approx(0.015)
    assert conn.rto == pytest.approx(0.2)  # 0.03 + 4*0.015 = 0.09 -> min_rto
    assert conn.next_deadline is None


def test_handshake_without_options_uses_defaults():
    conn = make()
    conn.connect(0.0)
    (syn,) = out(conn)
    peer = Peer(conn, ts=False, wscale=None, sack=False, mss=None)
    conn.on_segment(peer.synack(syn), 0.1)
    assert conn.mss == 536 and conn.peer_mss == 536
    assert not conn.sack_ok and not conn.ts_ok and conn.rcv_wscale == 0 and conn.snd_wscale == 0
    (ack,) = out(conn)
    assert ack.options.ts is None and ack.window == 65535  # unscaled: capped at 64K
    (hs,) = of(conn.take_events(), ev.Handshake)
    assert hs.wscale is None and hs.peer_wscale is None and hs.rtt_ms == pytest.approx(100.0)


def test_synack_with_wrong_ack_gets_rst_and_is_not_followed():
    conn = make()
    conn.connect(0.0)
    (syn,) = out(conn)
    peer = Peer(conn)
    conn.on_segment(peer.synack(syn, ack=ISN + 77), 0.05)
    assert conn.state == "SYN-SENT"
    (rst,) = out(conn)
    assert rst.flags == RST and rst.seq == ISN + 77
    assert conn.counters["bad_synack"] == 1
    # an RST with a bad ACK is never answered with a RST
    conn.on_segment(peer.synack(syn, ack=ISN + 77, flags=RST | ACK), 0.06)
    assert out(conn) == [] and conn.state == "SYN-SENT"


def test_refused_by_rst_ack():
    conn = make()
    conn.connect(0.0)
    (_syn,) = out(conn)
    rst = TcpSegment(RPORT, LPORT, 0, ISN + 1, RST | ACK, 0)
    conn.on_segment(rst, 0.001)
    assert conn.state == "CLOSED"
    assert conn.error is not None and conn.error.message == "connection refused by 10.0.2.2:8080"
    assert conn.error.exit_code == 5
    assert out(conn) == [] and conn.next_deadline is None
    assert conn.counters["rst_in"] == 1


def test_rst_without_ack_in_syn_sent_is_ignored():
    conn = make()
    conn.connect(0.0)
    out(conn)
    conn.on_segment(TcpSegment(RPORT, LPORT, 0, 0, RST, 0), 0.001)
    assert conn.state == "SYN-SENT" and conn.error is None


def test_syn_retries_with_backoff_then_timeout():
    conn = make(syn_retries=3)
    conn.connect(0.0)
    out(conn)
    times = []
    now = 0.0
    while conn.state == "SYN-SENT":
        dl = conn.next_deadline
        assert dl is not None
        conn.on_timer(dl - 0.001)  # early: harmless
        assert out(conn) == []
        now = dl
        conn.on_timer(now)
        segs = out(conn)
        if segs:
            assert segs[0].flags == SYN and segs[0].seq == ISN
            times.append(now)
    assert times == [1.0, 3.0, 7.0]
    assert now == 15.0
    assert conn.error is not None
    assert conn.error.message == "connection timed out (no answer to SYN after 4 tries)"
    assert conn.counters["syn_retransmits"] == 3
    rts = of(conn.take_events(), ev.Retransmit)
    assert [r.reason for r in rts] == ["syn"] * 3


def test_wrong_port_is_ignored_and_counted():
    conn, peer = establish()
    conn.on_segment(peer.seg(0, b"x", dst_port=1), 1.0)
    conn.on_segment(peer.seg(0, b"x", src_port=81), 1.0)
    assert conn.counters["bad_port"] == 2 and conn.rcv_buffered == 0 and out(conn) == []


def test_second_synack_with_other_isn_gets_challenge_ack():
    conn, peer = establish()
    conn.take_events()
    other = peer.synack(TcpSegment(LPORT, RPORT, ISN, 0, SYN, 0), seq=PISN + 0x40000000)  # far outside
    conn.on_segment(other, 1.0)
    assert conn.state == "ESTABLISHED"
    (ack,) = out(conn)
    assert ack.flags == ACK and ack.ack == PISN + 1  # not followed
    assert conn.counters["challenge_acks"] == 1
    assert conn.peer_isn == PISN


def test_retransmitted_synack_is_acked_again():
    conn, peer = establish()
    conn.on_segment(peer.synack(TcpSegment(LPORT, RPORT, ISN, 0, SYN, 0)), 1.0)
    (ack,) = out(conn)
    assert ack.ack == PISN + 1 and conn.state == "ESTABLISHED"


# ---------------------------------------------------------------------------------------- receive


def test_request_then_in_order_response():
    conn, peer = establish()
    conn.take_events()
    conn.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 0.1)
    (req,) = out(conn)
    assert req.flags == ACK | PSH and req.seq == ISN + 1 and bytes(req.payload).startswith(b"GET /")
    assert conn.next_deadline == pytest.approx(0.1 + conn.rto)
    peer.ack_for(req)
    now = 0.15
    off = 0
    for _ in range(6):
        conn.on_segment(peer.seg(off, STREAM[off:off + 1448], ack=ISN + 1 + len(req.payload)), now)
        off += 1448
        now += 0.001
    assert conn.snd_una == conn.snd_nxt and conn.next_deadline is None  # 6 segments: 3 ACKs, none pending
    assert conn.read() == STREAM[:off]
    assert conn.rcv_buffered == 0
    acks = out(conn)
    assert len(acks) == 3  # one ACK per two full segments
    assert [a.ack - PISN - 1 for a in acks] == [2896, 5792, 8688]
    c = conn.counters
    assert c["bytes_in"] == off and c["out_of_order"] == 0 and c["dup_data"] == 0
    evs = conn.take_events()
    assert len(of(evs, ev.SegmentIn)) == 6
    assert of(evs, ev.SegmentIn)[-1].seq == 1 + 5 * 1448


def test_delayed_ack_timer():
    conn, peer = establish(now=0.0)
    conn.on_segment(peer.seg(0, b"hello"), 1.0)
    assert out(conn) == []
    assert conn.next_deadline == pytest.approx(1.04)
    conn.on_timer(1.039)
    assert out(conn) == []
    conn.on_timer(1.04)
    (a,) = out(conn)
    assert a.ack == PISN + 1 + 5
    assert conn.counters["delayed_acks"] == 1 and conn.next_deadline is None


def test_super_segment_is_acked_at_once():
    conn, peer = establish()
    big = STREAM[:65160]
    conn.on_segment(peer.seg(0, big), 1.0)
    (a,) = out(conn)
    assert a.ack == PISN + 1 + 65160
    assert conn.read() == big


def test_loss_gives_ooo_sack_dupacks_and_hole_fill_delivers_once():
    conn, peer = establish()
    conn.take_events()
    m = 1448
    conn.on_segment(peer.seg(0, STREAM[0:m]), 1.0)
    # segment 1 lost; 2, 3, 4 arrive
    for k in (2, 3, 4):
        conn.on_segment(peer.seg(k * m, STREAM[k * m:(k + 1) * m]), 1.0 + k * 0.001)
    dups = out(conn)
    assert len(dups) == 3
    for k, d in zip((2, 3, 4), dups, strict=True):
        assert d.ack == PISN + 1 + m  # stuck at the hole
        left, right = d.options.sack[0]
        assert left == PISN + 1 + 2 * m and right == PISN + 1 + (k + 1) * m
        assert d.options.ts is not None
    assert conn.rcv_buffered == 4 * m
    assert conn.read() == STREAM[:m]  # only in-order data is readable
    evs = conn.take_events()
    assert [e.seq for e in of(evs, ev.OutOfOrder)] == [1 + 2 * m, 1 + 3 * m, 1 + 4 * m]
    # segment 0 was not acknowledged yet (delayed ACK): the first of the three ACKs acknowledges it, the
    # two after it repeat its number: duplicate ACKs, as the sender counts them
    assert [(e.count, e.direction) for e in of(evs, ev.DupAck)] == [(1, "out"), (2, "out")]
    assert conn.counters["out_of_order"] == 3 and conn.counters["dup_acks_sent"] == 2
    # the retransmission fills the hole: immediate ACK for everything
    conn.on_segment(peer.seg(m, STREAM[m:2 * m]), 1.2)
    (a,) = out(conn)
    assert a.ack == PISN + 1 + 5 * m and a.options.sack == ()
    assert conn.read() == STREAM[m:5 * m]
    assert conn.rcv_buffered == 0 and conn.counters["holes_filled"] == 1


def test_sack_blocks_most_recent_first_and_limited():
    conn, peer = establish()
    m = 100
    # blocks at 2, 4, 6 (holes between): 3 immediate dup ACKs, the newest block first
    for k in (2, 4, 6):
        conn.on_segment(peer.seg(k * m, STREAM[k * m:(k + 1) * m]), 1.0)
    last = out(conn)[-1]
    base = PISN + 1
    assert last.options.sack == ((base + 600, base + 700), (base + 400, base + 500), (base + 200, base + 300))
    # a 4th block: a new block is never held back (SACK compression only holds growth of the highest one)
    conn.on_segment(peer.seg(8 * m, STREAM[8 * m:9 * m]), 1.0)
    (last,) = out(conn)
    assert last.options.sack == ((base + 800, base + 900), (base + 600, base + 700), (base + 400, base + 500))
    # without timestamps: 4 blocks
    conn, peer = establish(ts=False)
    for k in (2, 4, 6, 8):
        conn.on_segment(peer.seg(k * m, STREAM[k * m:(k + 1) * m]), 1.0)
    last = out(conn)[-1]
    assert len(last.options.sack) == 4 and last.options.sack[0] == (base + 800, base + 900)


def test_sack_compression_like_linux():
    """After three immediate dup ACKs for one RCV.NXT, out-of-order segments are acknowledged at most once
    per min(1 ms, RTT/20), or after 44 held back; any ACK sent resets it; a hole filled ACKs at once."""
    from rawtui.stack.tcp import COMP_SACK_DELAY, COMP_SACK_NR, DUPACK_THRESH

    conn, peer = establish(rtt=0.05)
    conn.take_events()
    m = 1000
    t = 1.0
    sent = []
    for k in range(2, 2 + DUPACK_THRESH + 10):  # segment 0 and 1 lost
        conn.on_segment(peer.seg(k * m, STREAM[k * m:(k + 1) * m]), t)
        sent.append(len(out(conn)))
    assert sent == [1] * DUPACK_THRESH + [0] * 10
    assert conn.counters["sacks_compressed"] == 10 and conn.counters["dup_acks_sent"] == DUPACK_THRESH
    # the RTT is 50 ms: the compressed SACK is due after min(1 ms, 50 ms / 20)
    assert conn.next_deadline == pytest.approx(t + min(COMP_SACK_DELAY, 0.05 / 20))
    conn.on_timer(conn.next_deadline - 1e-6)
    assert out(conn) == []
    conn.on_timer(conn.next_deadline)
    (a,) = out(conn)
    assert a.ack == PISN + 1 and a.options.sack[0] == (PISN + 1 + 2 * m, PISN + 1 + (3 + DUPACK_THRESH + 9) * m)
    dups = [e for e in conn.take_events() if isinstance(e, ev.DupAck)]
    assert [e.count for e in dups] == [1, 2, 3, 4]
    # COMP_SACK_NR held back: the next one goes at once
    k0 = 2 + DUPACK_THRESH + 10
    for k in range(k0, k0 + COMP_SACK_NR):
        conn.on_segment(peer.seg(k * m, STREAM[k * m:(k + 1) * m]), t + 0.01)
    assert out(conn) == []
    k = k0 + COMP_SACK_NR
    conn.on_segment(peer.seg(k * m, STREAM[k * m:(k + 1) * m]), t + 0.01)
    assert len(out(conn)) == 1
    # the first hole filled: RCV.NXT moves, an immediate ACK, and three immediate dup ACKs again
    conn.on_segment(peer.seg(0, STREAM[0:m]), t + 0.02)
    (a,) = out(conn)
    assert a.ack == PISN + 1 + m
    first = k + 1
    last = first + DUPACK_THRESH
    for j in range(first, last + 1):
        conn.on_segment(peer.seg(j * m, STREAM[j * m:(j + 1) * m]), t + 0.03)
    assert len(out(conn)) == DUPACK_THRESH
    conn.on_segment(peer.seg(m, STREAM[m:2 * m]), t + 0.04)
    (a,) = out(conn)
    assert a.ack == PISN + 1 + (last + 1) * m and a.options.sack == ()
    conn.on_timer(t + 0.045)  # nothing held back any more: no SACK goes out later
    assert all(not x.options.sack for x in out(conn))
    assert conn.read() == STREAM[:(last + 1) * m]


def test_sack_compression_holds_back_only_growth_of_the_highest_block():
    """A segment that starts a block or fills a hole between blocks changes what the SACK blocks say: it is
    acknowledged at once, so no change goes unreported between two compressed ACKs."""
    conn, peer = establish()
    m = 1000
    for k in range(2, 8):  # 0 lost: 3 immediate dup ACKs, then 7.. held back (they grow the block)
        conn.on_segment(peer.seg(k * m, STREAM[k * m:(k + 1) * m]), 1.0)
    assert len(out(conn)) == 3
    conn.on_segment(peer.seg(9 * m, STREAM[9 * m:10 * m]), 1.0)  # 8 lost: a new block
    (a,) = out(conn)
    assert a.options.sack[0] == (PISN + 1 + 9 * m, PISN + 1 + 10 * m)
    conn.on_segment(peer.seg(10 * m, STREAM[10 * m:11 * m]), 1.0)  # grows it: held back
    assert out(conn) == []
    conn.on_segment(peer.seg(8 * m, STREAM[8 * m:9 * m]), 1.0)  # 8 resent: merges the blocks, at once
    (a,) = out(conn)
    assert a.ack == PISN + 1 and a.options.sack[0] == (PISN + 1 + 2 * m, PISN + 1 + 11 * m)
    conn.on_segment(peer.seg(5 * m, STREAM[5 * m:6 * m]), 1.0)  # old data again (inside a block): at once
    assert len(out(conn)) == 1 and conn.counters["dup_data"] == 1
    conn.on_timer(2.0)
    assert out(conn) == []  # nothing was left held back


def test_no_sack_no_compression():
    conn, peer = establish(sack=False)
    m = 100
    for k in range(2, 12):
        conn.on_segment(peer.seg(k * m, STREAM[k * m:(k + 1) * m]), 1.0)
    assert len(out(conn)) == 10  # RFC 5681 4.2: an immediate duplicate ACK for each
    assert conn.counters["sacks_compressed"] == 0


def test_reordering_and_overlaps_merge():
    conn, peer = establish()
    pieces = [(300, 500), (0, 100), (450, 700), (100, 350), (700, 1000), (50, 900)]
    for a, b in pieces:
        conn.on_segment(peer.seg(a, STREAM[a:b]), 1.0)
    assert conn.read() == STREAM[:1000]
    assert conn.rcv_buffered == 0


def test_duplicate_data_below_rcv_nxt():
    conn, peer = establish()
    conn.on_segment(peer.seg(0, STREAM[:1000]), 1.0)
    out(conn)
    conn.take_events()
    peer.tsval += 100  # resent by the server (a copy made by the network would carry the old TSval)
    conn.on_segment(peer.seg(0, STREAM[:1000]), 1.1)
    (a,) = out(conn)  # answered at once
    assert a.ack == PISN + 1 + 1000
    evs = conn.take_events()
    (d,) = of(evs, ev.DupData)
    assert d.seq == 1 and d.length == 1000
    assert of(evs, ev.SegmentIn)[0].note == "dup"
    assert conn.counters["dup_data"] == 1
    assert conn.read() == STREAM[:1000]
    # partial overlap: the new part is kept, once
    conn.on_segment(peer.seg(500, STREAM[500:1500]), 1.2)
    assert conn.read() == STREAM[1000:1500]
    assert conn.counters["partial_dup"] == 1


def test_out_of_window_data_dropped_and_acked():
    conn, peer = establish(conn_kw={"rcv_buf": 10000})
    conn.on_segment(peer.seg(20000, b"z" * 100), 1.0)
    (a,) = out(conn)
    assert a.ack == PISN + 1
    assert conn.counters["out_of_window"] == 1 and conn.rcv_buffered == 0
    # data straddling the right edge is trimmed to the window
    conn.on_segment(peer.seg(0, STREAM[:12000]), 1.1)
    assert conn.rcv_buffered == 10000
    assert conn.read() == STREAM[:10000]


def test_zero_window_probe_and_window_update():
    conn, peer = establish(conn_kw={"rcv_buf": 8192}, wscale=None)
    assert conn.rcv_wscale == 0
    conn.on_segment(peer.seg(0, STREAM[:4096]), 1.0)
    conn.on_segment(peer.seg(4096, STREAM[4096:8192]), 1.001)
    acks = out(conn)
    assert acks[-1].window == 0 and acks[-1].ack == PISN + 1 + 8192
    assert conn.rcv_buffered == 8192
    # the peer probes with one byte: dropped, ACKed with window 0
    conn.on_segment(peer.seg(8192, STREAM[8192:8193]), 1.5)
    (a,) = out(conn)
    assert a.window == 0 and a.ack == PISN + 1 + 8192
    # Linux-style probe (seq = rcv_nxt - 1, no data)
    conn.on_segment(peer.seg(8191), 1.6)
    (a,) = out(conn)
    assert a.window == 0
    assert conn.counters["window_probes_in"] == 2 and conn.rcv_buffered == 8192
    # the app reads a little: not enough to announce (SWS avoidance)
    assert conn.read(100) == STREAM[:100]
    assert out(conn) == []
    assert conn.read() == STREAM[100:8192]
    (upd,) = out(conn)
    assert upd.window == 8192 and upd.ack == PISN + 1 + 8192
    assert conn.counters["window_updates"] == 1
    assert of(conn.take_events(), ev.SegmentOut)[-1].note == "window-update"


def test_window_reaches_zero_with_scaling_and_never_shrinks_right_edge():
    conn, peer = establish(conn_kw={"rcv_buf": 1 << 20})
    ws = conn.rcv_wscale
    assert ws == 5
    edge = 0
    off = 0
    while off < (1 << 20):
        n = min(60000, (1 << 20) - off)
        conn.on_segment(peer.seg(off, STREAM[:n] if n <= len(STREAM) else b"x" * n), 1.0)
        off += n
        for a in out(conn):
            new_edge = (a.ack - PISN - 1) + (a.window << ws)
            assert new_edge >= edge
            edge = new_edge
            last = a
    assert last.window == 0
    assert conn.rcv_buffered == 1 << 20


def test_ts_recent_follows_in_order_segments_only():
    conn, peer = establish()
    peer.tsval = 1000
    conn.on_segment(peer.seg(0, b"a" * 10), 1.0)
    assert conn.ts_recent == 1000
    peer.tsval = 2000
    conn.on_segment(peer.seg(500, b"b" * 10), 1.01)  # out of order: does not cover rcv_nxt
    assert conn.ts_recent == 1000
    (d,) = out(conn)
    assert d.options.ts[1] == 1000


# ---------------------------------------------------------------------------------------- close


def test_peer_fin_close_wait_then_last_ack_closed():
    conn, peer = establish()
    conn.take_events()
    conn.on_segment(peer.seg(0, b"body", flags=ACK | PSH | FIN), 1.0)
    assert conn.state == "CLOSE-WAIT" and conn.peer_eof
    (a,) = out(conn)
    assert a.ack == PISN + 1 + 4 + 1
    assert conn.read() == b"body"
    conn.close(1.1)
    assert conn.state == "LAST-ACK"
    (fin,) = out(conn)
    assert fin.flags == FIN | ACK and fin.seq == ISN + 1
    conn.on_segment(peer.seg(5, ack=ISN + 2), 1.15)
    assert conn.state == "CLOSED" and conn.error is None and conn.next_deadline is None
    states = [(e.old, e.new) for e in of(conn.take_events(), ev.TcpState)]
    assert states == [("ESTABLISHED", "CLOSE-WAIT"), ("CLOSE-WAIT", "LAST-ACK"), ("LAST-ACK", "CLOSED")]


def test_fin_out_of_order_waits_for_the_data():
    conn, peer = establish()
    conn.on_segment(peer.seg(100, STREAM[100:200], flags=ACK | FIN), 1.0)
    assert not conn.peer_eof and conn.state == "ESTABLISHED"
    conn.on_segment(peer.seg(0, STREAM[:100]), 1.1)
    assert conn.peer_eof and conn.state == "CLOSE-WAIT"
    assert out(conn)[-1].ack == PISN + 1 + 201
    assert conn.read() == STREAM[:200]


def test_our_close_first_fin_wait_time_wait():
    conn, peer = establish(conn_kw={"time_wait": 1.0})
    conn.close(0.1)  # nothing sent yet: the FIN can wait for the data (SYN-SENT would defer it)
    assert conn.state == "FIN-WAIT-1"
    (seg,) = out(conn)
    assert seg.flags == ACK | FIN and seg.seq == ISN + 1
    with pytest.raises(Exception, match="cannot send"):
        conn.send(b"late", 0.1)
    assert conn.state == "FIN-WAIT-1"
    conn.on_segment(peer.seg(0, ack=ISN + 2), 0.15)
    assert conn.state == "FIN-WAIT-2"
    conn.on_segment(peer.seg(0, b"resp", flags=ACK | FIN, ack=ISN + 2), 0.2)
    assert conn.state == "TIME-WAIT" and conn.peer_eof
    (a,) = out(conn)
    assert a.ack == PISN + 1 + 5
    # a retransmitted FIN is answered again
    conn.on_segment(peer.seg(0, b"resp", flags=ACK | FIN, ack=ISN + 2), 0.5)
    (a,) = out(conn)
    assert a.ack == PISN + 1 + 5
    assert conn.next_deadline == pytest.approx(1.5)
    conn.on_timer(1.5)
    assert conn.state == "CLOSED" and conn.error is None
    assert conn.read() == b"resp"


def test_simultaneous_close_closing():
    conn, peer = establish()
    conn.close(1.0)
    (_fin,) = out(conn)
    conn.on_segment(peer.seg(0, flags=ACK | FIN, ack=ISN + 1), 1.01)  # peer FIN, not acking ours
    assert conn.state == "CLOSING"
    conn.on_segment(peer.seg(1, ack=ISN + 2), 1.02)
    assert conn.state == "TIME-WAIT"


def test_fin_retransmitted_by_rto():
    conn, _peer = establish()
    conn.close(1.0)
    (fin,) = out(conn)
    dl = conn.next_deadline
    conn.on_timer(dl)
    (again,) = out(conn)
    assert again.flags & FIN and again.seq == fin.seq
    assert conn.counters["rto_timeouts"] == 1


# ---------------------------------------------------------------------------------------- RST


def test_rst_exactly_at_rcv_nxt_resets():
    conn, peer = establish()
    conn.on_segment(peer.seg(0, b"abc"), 1.0)
    conn.on_segment(peer.seg(3, flags=RST), 1.1)
    assert conn.state == "CLOSED"
    assert conn.error is not None and conn.error.message == "connection reset by peer"
    assert out(conn) == []  # never answer a RST with a RST


def test_rst_in_window_gets_challenge_ack_and_outside_is_dropped():
    conn, peer = establish()
    conn.on_segment(peer.seg(1000, flags=RST | ACK), 1.0)
    assert conn.state == "ESTABLISHED"
    (a,) = out(conn)
    assert a.flags == ACK and a.ack == PISN + 1
    assert conn.counters["challenge_acks"] == 1
    conn.on_segment(peer.seg(100 << 20, flags=RST), 1.1)
    assert conn.state == "ESTABLISHED" and out(conn) == []
    assert conn.counters["rst_ignored"] == 1 and conn.counters["challenge_acks"] == 1


def test_abort_sends_rst():
    conn, _peer = establish()
    conn.abort(1.0)
    (r,) = out(conn)
    assert r.flags & RST and r.seq == ISN + 1
    assert conn.state == "CLOSED" and conn.error is None


# ---------------------------------------------------------------------------------------- send path


def test_request_lost_rto_backoff_and_rto_doubling():
    conn, _peer = establish(rtt=0.1, conn_kw={"max_retries": 3})
    rto0 = conn.rto
    assert rto0 == pytest.approx(0.1 + 4 * 0.05)
    conn.send(b"GET /big HTTP/1.1\r\n\r\n", 1.0)
    (req,) = out(conn)
    times = []
    rtos = []
    while conn.state == "ESTABLISHED":
        dl = conn.next_deadline
        conn.on_timer(dl)
        segs = out(conn)
        if segs:
            assert segs[0].seq == req.seq and bytes(segs[0].payload) == bytes(req.payload)
            times.append(dl)
            rtos.append(conn.rto)
    assert times == pytest.approx([1.0 + rto0, 1.0 + 3 * rto0, 1.0 + 7 * rto0])
    assert rtos == pytest.approx([2 * rto0, 4 * rto0, 8 * rto0])
    assert conn.error is not None and conn.error.message == "connection timed out: 3 retransmissions unanswered"
    assert conn.counters["rto_timeouts"] == 3 and conn.counters["retransmits"] == 3
    rts = of(conn.take_events(), ev.Retransmit)
    assert [(r.reason, r.backoff) for r in rts] == [("rto", 1), ("rto", 2), ("rto", 3)]


def test_rto_then_ack_resumes_go_back_n():
    conn, peer = establish(rtt=0.1)
    body = STREAM[:10 * conn.smss]
    conn.send(body, 1.0)
    first = out(conn)
    assert len(first) == 10  # IW10
    conn.on_timer(conn.next_deadline)
    (r,) = out(conn)  # cwnd collapsed to one segment
    assert r.seq == ISN + 1 and conn.cc.window == conn.smss
    assert conn.cc.ssthresh == max(len(body) // 2, 2 * conn.smss)
    conn.on_segment(peer.seg(0, ack=ISN + 1 + conn.smss), 2.0)
    again = out(conn)
    assert [s.seq for s in again] == [ISN + 1 + conn.smss, ISN + 1 + 2 * conn.smss]  # slow start: 2
    assert conn.counters["retransmits"] == 3


def test_three_dup_acks_fast_retransmit_before_rto():
    conn, peer = establish(rtt=0.1)
    conn.on_segment(peer.seg(0), 0.5)  # the peer's scaled window becomes known
    m = conn.smss
    conn.send(STREAM[:8 * m], 1.0)
    segs = out(conn)
    assert len(segs) == 8
    deadline = conn.next_deadline
    # segment 0 lost: the peer acks nothing new, three times
    for k in range(3):
        conn.on_segment(peer.seg(0, ack=ISN + 1), 1.1 + k * 0.001)
    (fr,) = out(conn)
    assert fr.seq == ISN + 1 and bytes(fr.payload) == STREAM[:m]
    assert conn.counters["fast_retransmits"] == 1 and conn.counters["dup_acks_in"] == 3
    assert conn.cc.in_recovery and conn.cc.ssthresh == 4 * m and conn.cc.window == 7 * m
    evs = conn.take_events()
    assert [(d.count, d.direction) for d in of(evs, ev.DupAck)] == [(1, "in"), (2, "in"), (3, "in")]
    assert of(evs, ev.Retransmit)[0].reason == "fast"
    assert 1.103 < deadline
    # full ACK ends recovery
    conn.on_segment(peer.seg(0, ack=ISN + 1 + 8 * m), 1.2)
    assert not conn.cc.in_recovery and conn.snd_una == conn.snd_max
    assert conn.next_deadline is None


def test_newreno_partial_ack_retransmits_next_hole():
    conn, peer = establish(rtt=0.1)
    conn.on_segment(peer.seg(0), 0.5)  # the peer's scaled window becomes known
    m = conn.smss
    conn.send(STREAM[:8 * m], 1.0)
    out(conn)
    for k in range(3):
        conn.on_segment(peer.seg(0, ack=ISN + 1), 1.1)
    out(conn)
    conn.on_segment(peer.seg(0, ack=ISN + 1 + 3 * m), 1.2)  # partial: segment 3 lost too
    segs = out(conn)
    assert segs[0].seq == ISN + 1 + 3 * m
    assert conn.cc.in_recovery


def test_large_request_is_segmented_and_flow_controlled():
    conn, peer = establish(rtt=0.01, window=4000, wscale=0)
    body = STREAM[:20000]
    conn.send(body, 1.0)
    segs = out(conn)
    assert sum(len(s.payload) for s in segs) <= 4000
    got = b"".join(bytes(s.payload) for s in segs)
    now = 1.0
    while conn.snd_una != (ISN + 1 + len(body)) & M32:
        now += 0.01
        conn.on_segment(peer.seg(0, ack=conn.snd_nxt), now)
        segs = out(conn)
        for s in segs:
            assert len(s.payload) <= conn.smss
        got += b"".join(bytes(s.payload) for s in segs)
    assert got == body


def test_zero_window_probing_by_us():
    conn, peer = establish(rtt=0.1)
    conn.on_segment(peer.seg(0, window=0), 0.5)  # the peer closes its window
    conn.send(b"POST data", 1.0)
    assert out(conn) == []
    dl = conn.next_deadline
    assert dl == pytest.approx(1.0 + conn.rto)
    conn.on_timer(dl)
    (p,) = out(conn)
    assert p.seq == ISN + 1 and bytes(p.payload) == b"P"
    assert conn.counters["zero_window_probes"] == 1
    dl2 = conn.next_deadline
    assert dl2 - dl == pytest.approx(2 * conn.rto)  # backoff
    conn.on_segment(peer.seg(0, window=0, ack=ISN + 1), dl + 0.1)  # still closed
    conn.on_timer(dl2)
    assert len(out(conn)) == 1 and conn.counters["zero_window_probes"] == 2
    # the window opens: everything goes
    conn.on_segment(peer.seg(0, window=1000, ack=ISN + 1), dl2 + 0.1)
    (d,) = out(conn)
    assert bytes(d.payload) == b"POST data"
    rts = of(conn.take_events(), ev.Retransmit)
    assert [r.reason for r in rts] == ["probe", "probe"]


def test_probe_byte_accepted_by_peer():
    conn, peer = establish(rtt=0.1)
    conn.on_segment(peer.seg(0, window=0), 0.5)
    conn.send(b"AB", 1.0)
    conn.on_timer(conn.next_deadline)
    out(conn)
    conn.on_segment(peer.seg(0, window=100, ack=ISN + 2), 2.0)
    (d,) = out(conn)
    assert d.seq == ISN + 2 and bytes(d.payload) == b"B"


def test_rtt_rto_rfc6298_numbers_without_timestamps():
    conn, peer = establish(rtt=0.1, ts=False)
    # first sample 100 ms: SRTT 100, RTTVAR 50, RTO = 100 + 200 = 300 ms
    assert conn.srtt == pytest.approx(0.1) and conn.rttvar == pytest.approx(0.05)
    assert conn.rto == pytest.approx(0.3)
    conn.send(b"x" * 100, 1.0)
    out(conn)
    conn.on_segment(peer.seg(0, ack=ISN + 101), 1.2)  # R = 200 ms
    # RTTVAR = 3/4*50 + 1/4*|100-200| = 62.5; SRTT = 7/8*100 + 1/8*200 = 112.5; RTO = 112.5 + 250
    assert conn.rttvar == pytest.approx(0.0625)
    assert conn.srtt == pytest.approx(0.1125)
    assert conn.rto == pytest.approx(0.3625)
    # Karn: a retransmitted segment gives no sample
    conn.send(b"y" * 100, 2.0)
    out(conn)
    conn.on_timer(conn.next_deadline)
    out(conn)
    samples = conn.counters["rtt_samples"]
    conn.on_segment(peer.seg(0, ack=ISN + 201), 5.0)
    assert conn.counters["rtt_samples"] == samples
    assert conn.rto == pytest.approx(2 * 0.3625)  # the backed-off RTO is kept until a new sample


def test_rtt_from_timestamps_and_min_rto():
    conn, peer = establish(rtt=0.002)
    assert conn.rto == pytest.approx(0.2)  # min_rto
    conn.send(b"x" * 10, 1.0)
    (d,) = out(conn)
    peer.ack_for(d)
    conn.on_segment(peer.seg(0, ack=ISN + 11), 1.004)
    assert conn.srtt == pytest.approx(0.875 * 0.002 + 0.125 * 0.004)


def test_window_events_on_cc_change_and_rate_limited():
    conn, peer = establish()
    evs = conn.take_events()
    (w,) = of(evs, ev.Window)
    assert w.cwnd == conn.cc.window and w.rto_ms == pytest.approx(200.0)
    now = 1.0
    for k in range(100):  # 100 segments over 50 ms
        conn.on_segment(peer.seg(k * 100, STREAM[k * 100:(k + 1) * 100]), now)
        now += 0.0005
    ws = of(conn.take_events(), ev.Window)
    assert 4 <= len(ws) <= 6
    assert ws[-1].rcv_nxt > 0


def test_peer_flight_estimate_uses_receiver_rtt():
    conn, peer = establish(rtt=0.01)
    # ACK sent at 0.01 with TSval 10; data echoing it arrives over time
    now = 0.02
    off = 0
    for _ in range(200):
        seg = peer.seg(off, STREAM[:1000])
        conn.on_segment(seg, now)
        for a in out(conn):
            peer.ack_for(a)
        off += 1000
        now += 0.001
    assert conn.rcv_rtt is not None and conn.rcv_rtt > 0
    assert conn.peer_flight > 0


def test_sequence_wraparound_both_directions():
    isn = 0xFFFFFFFF - 5
    pisn = 0xFFFFFFFF - 700
    conn, peer = establish(conn_kw={"isn": isn}, isn=pisn)
    conn.send(STREAM[:3000], 0.1)
    segs = out(conn)
    assert segs[0].seq == (isn + 1) & M32
    conn.on_segment(peer.seg(0, ack=(isn + 1 + 3000) & M32), 0.2)
    assert conn.snd_una == (isn + 3001) & M32 and conn.send_pending == 0
    m = 500
    order = [0, 2, 1, 3, 5, 4, 6]
    for k in order:
        conn.on_segment(peer.seg(k * m, STREAM[k * m:(k + 1) * m], ack=conn.snd_nxt), 0.3)
    assert conn.read() == STREAM[:7 * m]
    assert conn.rcv_nxt == (pisn + 1 + 7 * m) & M32
    conn.on_segment(peer.seg(7 * m, flags=ACK | FIN, ack=conn.snd_nxt), 0.4)
    assert conn.peer_eof
    evs = conn.take_events()
    assert max(e.seq for e in of(evs, ev.SegmentIn)) <= 7 * m + 1


def test_segments_parse_with_dpkt_too():
    conn, peer = establish()
    conn.on_segment(peer.seg(0, STREAM[:100]), 1.0)
    conn.on_segment(peer.seg(300, STREAM[300:400]), 1.0)
    raw = conn.take_segments()
    d = dpkt.tcp.TCP(raw[-1])
    assert d.ack == PISN + 1 + 100 and d.flags & dpkt.tcp.TH_ACK
    opts = dict(dpkt.tcp.parse_opts(d.opts))
    assert dpkt.tcp.TCP_OPT_SACK in opts


def test_build_round_trip_of_peer_segments():
    """Sanity: the Peer's segments survive build/parse (what the link layer would hand us)."""
    conn, peer = establish()
    s = peer.seg(0, b"hello")
    back = parse_tcp(build_tcp(s, RIP, LIP), RIP, LIP, verify=True)
    conn.on_segment(back, 1.0)
    assert conn.read() == b"hello"


def test_send_and_close_before_established_are_deferred():
    conn = make()
    conn.send(b"GET / HTTP/1.0\r\n\r\n", 0.0)
    conn.connect(0.0)
    conn.close(0.0)
    assert conn.state == "SYN-SENT"
    (syn,) = out(conn)
    peer = Peer(conn)
    conn.on_segment(peer.synack(syn), 0.05)
    segs = out(conn)
    assert segs[0].flags == ACK and segs[1].flags == ACK | PSH | FIN
    assert bytes(segs[1].payload) == b"GET / HTTP/1.0\r\n\r\n"
    assert conn.state == "FIN-WAIT-1"


def test_close_in_syn_sent_without_data_closes():
    conn = make()
    conn.connect(0.0)
    out(conn)
    conn.close(0.1)
    assert conn.state == "CLOSED" and conn.next_deadline is None


def test_peer_sack_blocks_reported_relative():
    conn, peer = establish()
    conn.send(STREAM[:5000], 1.0)
    out(conn)
    conn.take_events()
    conn.on_segment(peer.seg(0, ack=ISN + 1, options=TcpOptions(ts=(1, 1), sack=((ISN + 2001, ISN + 3001),))), 1.1)
    (si,) = of(conn.take_events(), ev.SegmentIn)
    assert si.sack == ((2001, 3001),)


def test_only_fin_unanswered_closes_quietly():
    conn, _peer = establish(conn_kw={"max_retries": 2})
    conn.close(1.0)
    while conn.state != "CLOSED":
        conn.on_timer(conn.next_deadline)
    assert conn.error is None and conn.counters["rto_timeouts"] == 2


def test_counters_are_all_present_from_the_start():
    conn = make()
    for name in ("segments_in", "segments_out", "retransmits", "fast_retransmits", "rto_timeouts", "dup_data",
                 "out_of_order", "dup_acks_sent", "dup_acks_in", "challenge_acks", "bad_port", "out_of_window",
                 "zero_window_probes", "window_updates", "bytes_in", "bytes_out"):
        assert conn.counters[name] == 0
