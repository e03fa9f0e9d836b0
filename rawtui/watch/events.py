"""The event of ``rawtui watch``'s kernel overlay: a local socket's own TCP state, read over inet_diag."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rawtui.stack.events import Event


@dataclass(slots=True)
class KernelTcpInfo(Event):
    """The kernel's TCP state of this host's socket of the watched connection (netlink ``inet_diag``:
    what ``ss -ti`` shows), sampled while the connection lives. ``role`` says whose socket it is:
    ``"sender"`` when it sends the data being watched (its cwnd is the true cwnd of the transfer: the
    overlay on rawtui's estimate, like the lab server's TCP_INFO) or ``"receiver"`` when it receives it
    (curl's socket: its cwnd is the one of its own, small, sending side). Rates in bytes per second."""

    type: ClassVar[str] = "kernel_tcp_info"
    role: str
    local: str  # "ip:port" of the socket
    remote: str
    state: str  # e.g. "ESTABLISHED"
    congestion: str  # the algorithm (cubic, reno, bbr...)
    ca_state: str  # open, disorder, cwr, recovery, loss
    cwnd: int  # segments
    cwnd_bytes: int  # cwnd * mss
    ssthresh_bytes: int | None  # None in the first slow start ("infinite")
    mss: int
    rtt_ms: float
    rttvar_ms: float
    rto_ms: float
    retrans_total: int  # segments this socket retransmitted over its life
    retrans_out: int = 0  # retransmitted, not yet acknowledged
    lost: int = 0
    unacked: int = 0
    pacing_bps: int = 0
    delivery_bps: int = 0
    bytes_acked: int = 0
    bytes_received: int = 0
    bytes_retrans: int = 0
    rcv_space: int = 0
    snd_wnd: int = 0
    backoff: int = 0
