"""The TCP client's states and the one table that moves between them (RFC 9293 section 3.3.2).

``State`` values are the names the NDJSON log carries (``"SYN-SENT"``); ``Input`` names what happened.
:func:`next_state` is the only authority: :class:`rawtui.stack.tcp.TcpConnection` changes its state
through it and nowhere else, so a reader sees every allowed move in :data:`TRANSITIONS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum, StrEnum


class State(StrEnum):
    """A TCP connection state as RFC 9293 names it (only those a client passes through)."""

    CLOSED = "CLOSED"
    SYN_SENT = "SYN-SENT"
    ESTABLISHED = "ESTABLISHED"
    FIN_WAIT_1 = "FIN-WAIT-1"
    FIN_WAIT_2 = "FIN-WAIT-2"
    CLOSE_WAIT = "CLOSE-WAIT"
    CLOSING = "CLOSING"
    LAST_ACK = "LAST-ACK"
    TIME_WAIT = "TIME-WAIT"


class Input(Enum):
    """What makes a connection change state."""

    CONNECT = "connect"  # the app opens: our SYN goes out
    SYN_ACK = "syn-ack"  # the peer's acceptable SYN-ACK
    CLOSE = "close"  # the app closes: our FIN (queued behind our data)
    FIN = "fin"  # the peer's FIN, in order
    FIN_ACKED = "fin-acked"  # the peer acknowledged our FIN
    TIME_WAIT_OVER = "time-wait-over"  # 2 MSL passed in TIME-WAIT
    RESET = "reset"  # an acceptable RST from the peer (or a refused SYN)
    ABORT = "abort"  # the app aborts: our RST
    GIVE_UP = "give-up"  # retransmissions unanswered: the connection timed out


S = State
_OPEN = (S.SYN_SENT, S.ESTABLISHED, S.FIN_WAIT_1, S.FIN_WAIT_2, S.CLOSE_WAIT, S.CLOSING, S.LAST_ACK, S.TIME_WAIT)
_RETRANSMITTING = (S.SYN_SENT, S.ESTABLISHED, S.FIN_WAIT_1, S.CLOSE_WAIT, S.CLOSING, S.LAST_ACK)

TRANSITIONS: Mapping[tuple[State, Input], State] = {
    (S.CLOSED, Input.CONNECT): S.SYN_SENT,
    (S.SYN_SENT, Input.SYN_ACK): S.ESTABLISHED,
    (S.SYN_SENT, Input.CLOSE): S.CLOSED,
    (S.ESTABLISHED, Input.CLOSE): S.FIN_WAIT_1,
    (S.ESTABLISHED, Input.FIN): S.CLOSE_WAIT,
    (S.CLOSE_WAIT, Input.CLOSE): S.LAST_ACK,
    (S.FIN_WAIT_1, Input.FIN_ACKED): S.FIN_WAIT_2,
    (S.FIN_WAIT_1, Input.FIN): S.CLOSING,
    (S.FIN_WAIT_2, Input.FIN): S.TIME_WAIT,
    (S.CLOSING, Input.FIN_ACKED): S.TIME_WAIT,
    (S.LAST_ACK, Input.FIN_ACKED): S.CLOSED,
    (S.TIME_WAIT, Input.TIME_WAIT_OVER): S.CLOSED,
    **{(s, Input.RESET): S.CLOSED for s in _OPEN},
    **{(s, Input.ABORT): S.CLOSED for s in _OPEN},
    **{(s, Input.GIVE_UP): S.CLOSED for s in _RETRANSMITTING},
}

SYNCHRONIZED = frozenset(_OPEN) - {S.SYN_SENT}
RECEIVING = frozenset({S.ESTABLISHED, S.FIN_WAIT_1, S.FIN_WAIT_2})  # the peer's data still accepted
SENDING = frozenset({S.ESTABLISHED, S.CLOSE_WAIT, S.FIN_WAIT_1, S.LAST_ACK, S.CLOSING})  # we may (re)send
RESET_IS_ERROR = frozenset({S.ESTABLISHED, S.FIN_WAIT_1, S.FIN_WAIT_2, S.CLOSE_WAIT})
OVER = frozenset({S.CLOSED, S.TIME_WAIT})  # nothing more will be exchanged (TIME-WAIT only re-ACKs)


def next_state(state: State, what: Input) -> State:
    """The state after ``what`` happens in ``state``; AssertionError when the table has no such move."""
    new = TRANSITIONS.get((state, what))
    if new is None:
        raise AssertionError(f"no TCP transition from {state} on {what.value!r}")
    return new
