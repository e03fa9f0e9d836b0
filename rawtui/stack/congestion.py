"""Congestion control behind a tiny interface (after smoltcp's ``socket/tcp/congestion.rs``).

:class:`Reno` is NewReno: the initial window of RFC 6928, slow start and congestion avoidance of
RFC 5681, fast retransmit / fast recovery with partial-ACK handling of RFC 6582, and the RTO collapse
of RFC 5681 section 3.1. The TCP machine owns the recovery *point* (``recover``) and decides when a
duplicate ACK, a partial ACK or a timeout happened; the controller only moves ``cwnd`` and
``ssthresh``. All amounts are bytes; ``mss`` is the sender's maximum payload per segment (SMSS).
"""

from __future__ import annotations

from typing import Protocol

SSTHRESH_INFINITE = 1 << 30  # RFC 5681: "arbitrarily high" initial ssthresh


def initial_window(mss: int) -> int:
    """RFC 6928: IW = min(10*MSS, max(2*MSS, 14600))."""
    return min(10 * mss, max(2 * mss, 14600))


class CongestionControl(Protocol):
    """What the TCP machine calls (``TcpConnection(congestion=...)`` chooses the implementation).
    ``window`` is the congestion window in bytes."""

    mss: int
    ssthresh: int
    in_recovery: bool

    @property
    def window(self) -> int: ...

    def on_ack(self, acked_bytes: int, now: float) -> None: ...

    def on_dup_ack(self) -> None: ...

    def on_fast_retransmit(self, flight: int) -> None: ...

    def on_partial_ack(self, acked_bytes: int) -> None: ...

    def on_recovery_exit(self, flight: int | None = None) -> None: ...

    def on_rto(self, flight: int) -> None: ...


class CongestionFactory(Protocol):
    """Makes the controller of one connection: ``mss`` is the sender's SMSS; ``syn_lost`` says the SYN
    or SYN-ACK had to be sent again (RFC 6928: the initial window is then one segment)."""

    def __call__(self, mss: int, *, syn_lost: bool = False) -> CongestionControl: ...


class Reno:
    """NewReno congestion control (RFC 5681 + RFC 6582); the default :class:`CongestionFactory`."""

    __slots__ = ("_ca_acked", "cwnd", "in_recovery", "mss", "ssthresh")

    def __init__(self, mss: int, *, syn_lost: bool = False) -> None:
        self.mss = mss
        # RFC 6928 section 2 / RFC 5681 3.1: a lost SYN or SYN-ACK means an IW of one segment.
        self.cwnd = mss if syn_lost else initial_window(mss)
        self.ssthresh = SSTHRESH_INFINITE
        self.in_recovery = False
        self._ca_acked = 0  # bytes acked since the last cwnd increase in congestion avoidance

    @property
    def window(self) -> int:
        return self.cwnd

    def on_ack(self, acked_bytes: int, now: float) -> None:
        """New data acknowledged outside fast recovery."""
        if acked_bytes <= 0:
            return
        if self.cwnd < self.ssthresh:
            # Slow start, RFC 5681 eq. (2) with appropriate byte counting, L = 1 SMSS.
            self.cwnd += min(acked_bytes, self.mss)
        else:
            # Congestion avoidance: one SMSS per cwnd of data acknowledged (RFC 5681 eq. (3) byte-counted).
            self._ca_acked += acked_bytes
            if self._ca_acked >= self.cwnd:
                self._ca_acked -= self.cwnd
                self.cwnd += self.mss

    def on_dup_ack(self) -> None:
        """A further duplicate ACK during fast recovery: inflate (RFC 5681 3.2 step 4)."""
        if self.in_recovery:
            self.cwnd += self.mss

    def on_fast_retransmit(self, flight: int) -> None:
        """The third duplicate ACK: halve, then inflate by the three segments that left the network."""
        self.ssthresh = max(flight // 2, 2 * self.mss)
        self.cwnd = self.ssthresh + 3 * self.mss
        self.in_recovery = True
        self._ca_acked = 0

    def on_partial_ack(self, acked_bytes: int) -> None:
        """RFC 6582 3.2 step 5: deflate by the amount acked, add back one SMSS if that much was acked."""
        self.cwnd -= acked_bytes
        if acked_bytes >= self.mss:
            self.cwnd += self.mss
        self.cwnd = max(self.cwnd, self.mss)

    def on_recovery_exit(self, flight: int | None = None) -> None:
        """A full ACK: RFC 6582 3.2 step 6 option (1) when ``flight`` is known, else option (2)."""
        if flight is None:
            self.cwnd = self.ssthresh
        else:
            self.cwnd = min(self.ssthresh, max(flight, self.mss) + self.mss)
        self.in_recovery = False
        self._ca_acked = 0

    def on_rto(self, flight: int) -> None:
        """RFC 5681 eq. (4) and 3.1: ssthresh = max(FlightSize/2, 2*SMSS), cwnd = 1 SMSS (loss window)."""
        self.ssthresh = max(flight // 2, 2 * self.mss)
        self.cwnd = self.mss
        self.in_recovery = False
        self._ca_acked = 0
