"""The TCP state table, smoltcp style: a builder per state, one test per (state, input) entry.

Every entry of ``tcp_states.TRANSITIONS`` is reached by driving a real :class:`TcpConnection` into the
state and applying the input; the test of the table's coverage fails when an entry has no driver here,
and an AST check makes sure nothing but ``_set_state`` assigns the connection's state.
"""

from __future__ import annotations

import ast
import inspect
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from test_stack_tcp import ISN, Peer, establish, make, out

from rawtui import events as ev
from rawtui.stack import tcp as tcp_module
from rawtui.stack.tcp import TcpConnection
from rawtui.stack.tcp_states import TRANSITIONS, Input, State, next_state
from rawtui.wire.tcp import ACK, FIN, RST, TcpSegment


@dataclass
class At:
    """A connection driven into a state, with the peer that drove it and the clock."""

    conn: TcpConnection
    peer: Peer | None
    syn: TcpSegment | None = None
    now: float = 1.0

    @property
    def peer_off(self) -> int:
        """The peer's next stream offset (its FIN takes one)."""
        return 1 if self.conn.peer_eof else 0


def closed() -> At:
    return At(make(), None)


def syn_sent() -> At:
    conn = make(max_retries=2, syn_retries=1)
    conn.connect(0.0)
    (syn,) = out(conn)
    return At(conn, Peer(conn), syn)


def established() -> At:
    conn, peer = establish(conn_kw={"max_retries": 2})
    return At(conn, peer)


def fin_wait_1() -> At:
    at = established()
    at.conn.close(0.1)
    out(at.conn)
    return at


def fin_wait_2() -> At:
    at = fin_wait_1()
    assert at.peer is not None
    at.conn.on_segment(at.peer.seg(0, ack=ISN + 2), 0.2)
    return at


def close_wait() -> At:
    at = established()
    assert at.peer is not None
    at.conn.on_segment(at.peer.seg(0, flags=ACK | FIN), 0.2)
    out(at.conn)
    return at


def closing() -> At:
    at = fin_wait_1()
    assert at.peer is not None
    at.conn.on_segment(at.peer.seg(0, flags=ACK | FIN, ack=ISN + 1), 0.2)  # not acking our FIN
    return at


def last_ack() -> At:
    at = close_wait()
    at.conn.close(0.3)
    out(at.conn)
    return at


def time_wait() -> At:
    at = fin_wait_2()
    assert at.peer is not None
    at.conn.on_segment(at.peer.seg(0, flags=ACK | FIN, ack=ISN + 2), 0.3)
    return at


BUILDERS: dict[State, Callable[[], At]] = {
    State.CLOSED: closed,
    State.SYN_SENT: syn_sent,
    State.ESTABLISHED: established,
    State.FIN_WAIT_1: fin_wait_1,
    State.FIN_WAIT_2: fin_wait_2,
    State.CLOSE_WAIT: close_wait,
    State.CLOSING: closing,
    State.LAST_ACK: last_ack,
    State.TIME_WAIT: time_wait,
}


def do_connect(at: At) -> None:
    at.conn.connect(at.now)


def do_syn_ack(at: At) -> None:
    assert at.peer is not None and at.syn is not None
    at.conn.on_segment(at.peer.synack(at.syn), at.now)


def do_close(at: At) -> None:
    at.conn.close(at.now)


def do_fin(at: At) -> None:
    assert at.peer is not None
    at.conn.on_segment(at.peer.seg(at.peer_off, flags=ACK | FIN, ack=at.conn.snd_una), at.now)


def do_fin_acked(at: At) -> None:
    assert at.peer is not None
    at.conn.on_segment(at.peer.seg(at.peer_off, ack=at.conn.snd_nxt), at.now)


def do_time_wait_over(at: At) -> None:
    deadline = at.conn.next_deadline
    assert deadline is not None
    at.conn.on_timer(deadline)


def do_reset(at: At) -> None:
    assert at.peer is not None
    if at.conn.state is State.SYN_SENT:  # a refused SYN: RST+ACK acknowledging it
        seg = TcpSegment(src_port=at.syn.dst_port, dst_port=at.syn.src_port, seq=0,  # type: ignore[union-attr]
                         ack=ISN + 1, flags=RST | ACK, window=0)
    else:  # exactly at RCV.NXT (RFC 5961)
        seg = at.peer.seg(at.peer_off, flags=RST, ack=at.conn.snd_una)
    at.conn.on_segment(seg, at.now)


def do_abort(at: At) -> None:
    at.conn.abort(at.now)


def do_give_up(at: At) -> None:
    conn = at.conn
    if conn.state in (State.ESTABLISHED, State.CLOSE_WAIT):
        conn.send(b"unanswered", at.now)  # something to retransmit
    start = conn.state
    for _ in range(64):
        deadline = conn.next_deadline
        assert deadline is not None, f"no timer running in {conn.state}"
        conn.on_timer(deadline)
        out(conn)
        if conn.state is not start:
            return
    raise AssertionError(f"still {conn.state} after 64 timeouts")


DRIVERS: dict[Input, Callable[[At], None]] = {
    Input.CONNECT: do_connect,
    Input.SYN_ACK: do_syn_ack,
    Input.CLOSE: do_close,
    Input.FIN: do_fin,
    Input.FIN_ACKED: do_fin_acked,
    Input.TIME_WAIT_OVER: do_time_wait_over,
    Input.RESET: do_reset,
    Input.ABORT: do_abort,
    Input.GIVE_UP: do_give_up,
}


def test_every_state_has_a_builder_and_every_input_a_driver() -> None:
    assert set(BUILDERS) == set(State)
    assert set(DRIVERS) == set(Input)
    for state, build in BUILDERS.items():
        assert build().conn.state is state, build.__name__


@pytest.mark.parametrize(
    ("state", "what"), sorted(TRANSITIONS, key=lambda k: (list(State).index(k[0]), k[1].value)),
    ids=lambda x: x.name.lower(),
)
def test_transition(state: State, what: Input) -> None:
    at = BUILDERS[state]()
    at.conn.take_events()
    DRIVERS[what](at)
    expected = TRANSITIONS[(state, what)]
    assert at.conn.state is expected
    moves = [(e.old, e.new) for e in at.conn.take_events() if isinstance(e, ev.TcpState)]
    assert moves[0] == (state, expected)  # TIME-WAIT's entry may be followed by its own timer's move


def test_moves_not_in_the_table_are_refused() -> None:
    with pytest.raises(AssertionError, match="no TCP transition from CLOSED on 'fin'"):
        next_state(State.CLOSED, Input.FIN)
    for state in State:
        for what in Input:
            if (state, what) not in TRANSITIONS:
                with pytest.raises(AssertionError):
                    next_state(state, what)


def test_state_values_are_the_ndjson_names() -> None:
    assert [s.value for s in State] == [
        "CLOSED", "SYN-SENT", "ESTABLISHED", "FIN-WAIT-1", "FIN-WAIT-2", "CLOSE-WAIT", "CLOSING",
        "LAST-ACK", "TIME-WAIT",
    ]
    back = ev.from_dict(ev.to_dict(ev.TcpState(0.5, State.CLOSED, State.SYN_SENT)))
    assert isinstance(back, ev.TcpState) and back.new is State.SYN_SENT


def test_only_set_state_assigns_the_state() -> None:
    """No code path in the TCP machine changes ``state`` except ``_set_state`` (and ``__init__``)."""
    tree = ast.parse(inspect.getsource(tcp_module))
    assigners = set()
    for fn in ast.walk(tree):
        if isinstance(fn, ast.FunctionDef):
            for node in ast.walk(fn):
                targets = node.targets if isinstance(node, ast.Assign) else (
                    [node.target] if isinstance(node, ast.AnnAssign | ast.AugAssign) else [])
                for target in targets:
                    if isinstance(target, ast.Attribute) and target.attr == "state":
                        assigners.add(fn.name)
    assert assigners == {"__init__", "_set_state"}
