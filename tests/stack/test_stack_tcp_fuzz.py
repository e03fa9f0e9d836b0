"""Property tests: random segments cut from a known stream never break the receive path."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rawtui.stack.tcp import M32, TcpConnection
from rawtui.wire.tcp import ACK, FIN, PSH, RST, SYN, TcpOptions, TcpSegment, parse_tcp

LIP = bytes([10, 0, 2, 15])
RIP = bytes([10, 0, 2, 2])
LPORT, RPORT = 40000, 8080
STREAM = bytes((i * 7 + (i >> 8)) & 0xFF for i in range(40000))

isns = st.sampled_from([0, 1000, 0xFFFFFFFF - 3000, 0xFFFFFFFF, 0x7FFFFFFF])


def establish(isn: int, pisn: int, ts: bool, wscale: int | None, sack: bool, rcv_buf: int, **kw):
    conn = TcpConnection(local_ip=LIP, remote_ip=RIP, local_port=LPORT, remote_port=RPORT, isn=isn,
                         rcv_buf=rcv_buf, **kw)
    conn.connect(0.0)
    (syn,) = [parse_tcp(b, LIP, RIP) for b in conn.take_segments()]
    o = TcpOptions(mss=1460, wscale=wscale, sack_permitted=sack, ts=(1, syn.options.ts[0]) if ts else None)
    conn.on_segment(TcpSegment(RPORT, LPORT, pisn, (isn + 1) & M32, SYN | ACK, 65535, o), 0.01)
    assert conn.state == "ESTABLISHED"
    return conn


op = st.one_of(
    st.tuples(
        st.just("seg"),
        st.integers(-2000, 40000),  # stream offset (negative: before the stream: old data)
        st.integers(0, 3000),  # length
        st.sampled_from([ACK, ACK | PSH, ACK, ACK, ACK | FIN, RST, RST | ACK, SYN | ACK, 0, SYN, ACK | PSH]),
        st.integers(0, 65535),  # window
        st.integers(-5, 5),  # ack noise
    ),
    st.tuples(st.just("read"), st.integers(0, 20000)),
    st.tuples(st.just("time"), st.floats(0.0, 2.0)),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    isn=isns, pisn=isns, ts=st.booleans(), wscale=st.sampled_from([None, 0, 3, 7, 14]), sack=st.booleans(),
    rcv_buf=st.sampled_from([3000, 8192, 65535, 200000]), ops=st.lists(op, max_size=60),
)
def test_random_segments_never_break_the_receiver(isn, pisn, ts, wscale, sack, rcv_buf, ops):
    conn = establish(isn, pisn, ts, wscale, sack, rcv_buf)
    got = bytearray()
    now = 0.01
    for o in ops:
        if o[0] == "seg":
            _, off, ln, flags, win, dack = o
            lo = max(off, 0)
            payload = STREAM[lo:lo + ln] if off >= 0 else b"\0" * ln  # old data: bytes irrelevant
            if off < 0:
                payload = payload[: max(0, min(ln, -off))]
            seg = TcpSegment(RPORT, LPORT, (pisn + 1 + off) & M32, (conn.snd_nxt + dack) & M32, flags, win,
                             TcpOptions(ts=(int(now * 1000), 0)) if ts else TcpOptions(), payload)
            conn.on_segment(seg, now)
        elif o[0] == "read":
            got += conn.read(o[1] or None)
        else:
            now += o[1]
            dl = conn.next_deadline
            if dl is not None and dl <= now:
                conn.on_timer(now)
        assert conn.rcv_buffered <= rcv_buf
        assert bytes(got) == STREAM[: len(got)]
        for raw in conn.take_segments():
            parse_tcp(raw, LIP, RIP, verify=True)
        conn.take_events()
    got += conn.read()
    assert bytes(got) == STREAM[: len(got)]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    isn=isns, pisn=isns, ts=st.booleans(), sack=st.booleans(),
    cuts=st.lists(st.tuples(st.integers(0, 19999), st.integers(1, 4000)), max_size=40),
    seed=st.randoms(use_true_random=False),
)
def test_reordered_duplicated_stream_is_delivered_exactly_once(isn, pisn, ts, sack, cuts, seed):
    """Random pieces in random order, then a clean in-order pass: the app sees the stream exactly."""
    n = 20000
    conn = establish(isn, pisn, ts, 7, sack, 1 << 16)
    pieces = [(a, min(n, a + ln)) for a, ln in cuts]
    seed.shuffle(pieces)
    got = bytearray()
    now = 0.02
    for a, b in pieces:
        conn.on_segment(TcpSegment(RPORT, LPORT, (pisn + 1 + a) & M32, conn.snd_nxt, ACK, 1000,
                                   TcpOptions(ts=(5, 0)) if ts else TcpOptions(), STREAM[a:b]), now)
        got += conn.read()
    for a in range(0, n, 1448):
        conn.on_segment(TcpSegment(RPORT, LPORT, (pisn + 1 + a) & M32, conn.snd_nxt, ACK, 1000,
                                   TcpOptions(ts=(5, 0)) if ts else TcpOptions(), STREAM[a:min(n, a + 1448)]),
                        now)
        got += conn.read()
    assert bytes(got) == STREAM[:n]
    assert conn.rcv_buffered == 0
    assert conn.bytes_received == n


send_op = st.one_of(
    st.tuples(st.just("send"), st.integers(1, 6000)),
    st.tuples(st.just("close")),
    st.tuples(st.just("abort")),
    st.tuples(st.just("ack"), st.integers(-10, 7000), st.integers(0, 65535),
              st.sampled_from([ACK, ACK, ACK | FIN, ACK | PSH, RST, SYN | ACK]), st.integers(-3, 3)),
    st.tuples(st.just("time"), st.floats(0.0, 5.0)),
    st.tuples(st.just("read")),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(isn=isns, pisn=isns, ts=st.booleans(), wscale=st.sampled_from([None, 0, 7]), ops=st.lists(send_op, max_size=50))
def test_random_acks_and_app_calls_never_break_the_sender(isn, pisn, ts, wscale, ops):
    """Our request side: random sends/closes, random peer ACKs, windows and timers."""
    conn = establish(isn, pisn, ts, wscale, True, 65535)
    sent = bytearray()
    now = 0.01
    peer_off = 0
    for o in ops:
        kind = o[0]
        if kind == "send":
            if conn.state in ("ESTABLISHED", "CLOSE-WAIT") and not conn.error:
                try:
                    conn.send(STREAM[len(sent):len(sent) + o[1]], now)
                    sent += STREAM[len(sent):len(sent) + o[1]]
                except Exception as e:  # noqa: BLE001
                    assert "cannot send" in str(e)
        elif kind == "close":
            conn.close(now)
        elif kind == "abort":
            conn.abort(now)
        elif kind == "ack":
            _, dack, win, flags, dseq = o
            seg = TcpSegment(RPORT, LPORT, (pisn + 1 + peer_off + dseq) & M32, (conn.snd_una + dack) & M32, flags,
                             win, TcpOptions(ts=(int(now * 1000), int(now * 1000) - 1)) if ts else TcpOptions())
            conn.on_segment(seg, now)
            if flags & FIN and conn.peer_eof:
                peer_off = 1
        elif kind == "time":
            now += o[1]
            dl = conn.next_deadline
            if dl is not None and dl <= now:
                conn.on_timer(now)
        else:
            conn.read()
        # every byte we put on the wire is the right byte of the request
        for raw in conn.take_segments():
            s = parse_tcp(raw, LIP, RIP, verify=True)
            if s.payload:
                rel = (s.seq - isn - 1) & M32
                assert bytes(s.payload) == bytes(sent[rel:rel + len(s.payload)])
        assert conn.send_pending <= len(sent)
        if conn.state == "CLOSED":
            assert conn.next_deadline is None
        conn.take_events()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    isn=isns, ts=st.booleans(), size=st.integers(1, 30000),
    drops=st.lists(st.booleans(), max_size=40), ack_drops=st.lists(st.booleans(), max_size=40),
    peer_window=st.sampled_from([2000, 8000, 65535]),
)
def test_lossy_path_delivers_the_request(isn, ts, size, drops, ack_drops, peer_window):
    """A cumulative-ACK peer behind a path that drops some of our segments and some of its ACKs:
    RTO, fast retransmit and go-back-N must get the whole request through, once the losses stop."""
    pisn = 777
    conn = establish(isn, pisn, ts, None, False, 65535, max_retries=100)  # losses may be consecutive
    body = STREAM[:size]
    now = 0.02
    conn.send(body, now)
    conn.close(now)
    got = bytearray()
    peer_fin = False
    drops, ack_drops = list(drops), list(ack_drops)
    for _ in range(2000):
        acks = []
        for raw in conn.take_segments():
            s = parse_tcp(raw, LIP, RIP, verify=True)
            if drops and drops.pop(0):
                continue
            rel = (s.seq - isn - 1) & M32
            if rel <= len(got) and s.payload:  # in order or overlapping: take the new part
                got += bytes(s.payload)[len(got) - rel:]
            if s.flags & FIN and rel + len(s.payload) == len(got):
                peer_fin = True
            tso = TcpOptions(ts=(int(now * 1000), s.options.ts[0])) if ts and s.options.ts else TcpOptions()
            acks.append(TcpSegment(RPORT, LPORT, pisn + 1, (isn + 1 + len(got) + peer_fin) & M32, ACK,
                                   peer_window, tso))
        now += 0.01
        for a in acks:
            if ack_drops and ack_drops.pop(0):
                continue
            conn.on_segment(a, now)
        if conn.state == "FIN-WAIT-2":
            break
        dl = conn.next_deadline
        if not acks and dl is not None:
            now = max(now, dl)
            conn.on_timer(now)
        assert conn.error is None, conn.error
    assert bytes(got) == body
    assert conn.state == "FIN-WAIT-2" and conn.send_pending == 0
