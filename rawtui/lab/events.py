"""Events of the teaching lab's side channel (:mod:`rawtui.lab.control`); ``t`` is when rawtui
received the message."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from rawtui.stack.events import Event


@dataclass(slots=True)
class ServerTcpInfo(Event):
    """Ground truth: the lab server's own TCP state for a connection (getsockopt TCP_INFO), sampled every
    ~10 ms while it sends. Rates are bytes per second, like ``Progress.speed_bps``."""

    type: ClassVar[str] = "server_tcp_info"
    cwnd_bytes: int  # snd_cwnd * snd_mss
    ssthresh_bytes: int | None  # None while still in the first slow start (ssthresh "infinite")
    rtt_ms: float  # the server's smoothed RTT
    rttvar_ms: float
    retrans_total: int  # segments the server has retransmitted (tcpi_total_retrans)
    pacing_bps: int
    delivery_bps: int
    mss: int
    ca_state: str = "open"  # open, disorder, cwr, recovery (fast retransmit), loss (after an RTO)
    state: str = ""  # the server socket's TCP state, e.g. "ESTABLISHED"
    rto_ms: float = 0.0
    backoff: int = 0  # consecutive RTO expiries right now (tcpi_retransmits)
    unacked: int = 0  # segments in flight
    lost: int = 0  # segments the server currently believes lost
    retrans_out: int = 0  # retransmitted segments not yet acknowledged (tcpi_retrans)
    bytes_acked: int = 0
    bytes_retrans: int = 0
    snd_wnd: int = 0  # our advertised window as the server sees it, bytes
    probes: int = 0  # zero-window probes sent without an answer
    total_rto: int = 0  # RTO expiries so far (kernel >= 6.7; 0 before)
    reord_seen: int = 0  # reordering events the server detected
    peer_port: int = 0  # the connection's client port (rawtui's local port)
    sample_t: float = 0.0  # when the server took the sample (its monotonic clock, seconds)
    min_rtt_ms: float = 0.0  # the lowest RTT the server measured on this connection (tcpi_min_rtt)
    cc: str = ""  # the connection's congestion control as the server's kernel says (TCP_CONGESTION): "bbr"


@dataclass(slots=True)
class LabKnobs(Event):
    """The impairments now in force on the lab's router, per direction (``down`` = server to client):
    ``loss``, ``reorder``, ``dup``, ``corrupt`` (%), ``delay_ms``, ``jitter_ms``, ``rate_bps`` (0 =
    unlimited), ``queue`` (frames), ``blackout_s`` (seconds left). ``note`` says what just changed."""

    type: ClassVar[str] = "lab_knobs"
    down: dict[str, float] = field(default_factory=dict)
    up: dict[str, float] = field(default_factory=dict)
    note: str = ""


@dataclass(slots=True)
class LabStats(Event):
    """The router's counters per direction: frames_in/out, lost, blackout_drops, queue_drops, corrupted,
    duplicated, reordered, queue_len, queue_max, ... (sent every 0.25 s while they change)."""

    type: ClassVar[str] = "lab_stats"
    down: dict[str, int] = field(default_factory=dict)
    up: dict[str, int] = field(default_factory=dict)


SERVER_FRAMES_LOST = ("lost", "blackout_drops", "queue_drops", "corrupted")  # LabStats.down counters


def server_frames_lost(down: Mapping[str, int]) -> int:
    """Frames of the server's that the router dropped or corrupted on their way to the client (each one the
    server had to send again), from a :class:`LabStats` ``down`` dict: the router's witness."""
    return sum(int(down.get(k, 0)) for k in SERVER_FRAMES_LOST)


@dataclass(slots=True)
class LabScenario(Event):
    """Which teaching scenario the lab runs, and what to look for on screen."""

    type: ClassVar[str] = "lab_scenario"
    name: str
    title: str
    explanation: str
    look_for: str = ""


@dataclass(slots=True)
class RouterAction(Event):
    """One thing the lab's router did to one TCP frame: the path's truth, reported by the relay as it
    happens. ``seq`` is relative to the sender's ISN (the relay saw the SYN / SYN-ACK), as tshark shows it;
    absolute when the relay never saw that connection's SYN (``absolute``). ``t`` is when rawtui
    heard of it (on the same machine, a fraction of a millisecond after ``router_t``)."""

    type: ClassVar[str] = "router_action"
    direction: str  # "down" (server -> client) or "up" (client -> server)
    action: str  # "drop" (random loss), "blackout", "queue-drop", "duplicate", "reorder", "corrupt"
    seq: int
    length: int  # TCP payload bytes
    flags: str = ""  # TCP flags of the frame, e.g. "A", "PA"
    sport: int = 0
    dport: int = 0
    router_t: float = 0.0  # the relay's monotonic clock, seconds
    note: str = ""  # why, e.g. "loss 1 %", "blackout 3 s"
    absolute: bool = False  # ``seq`` is the absolute sequence number (the relay did not see the SYN)

    @property
    def relative(self) -> bool:
        """``seq`` is relative to the sender's ISN (the usual case)."""
        return not self.absolute
