"""The one typed event stream.

Every receipt and decision of the stack is one of these small records. The same stream feeds the
headless view, the Textual app, the NDJSON log (`--events`) and the replay. ``t`` is seconds since the
session started (the stack is handed relative times, so it never reads a clock).

Serialisation: :func:`to_dict` gives ``{"t": ..., "type": ..., <fields>}``; :func:`from_dict` inverts it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .tcp_states import State


@dataclass(slots=True)
class Event:
    """Base class. Subclasses set ``type`` (the NDJSON name)."""

    type: ClassVar[str] = "event"
    t: float


@dataclass(slots=True)
class Route(Event):
    """Which interface, source address and next hop the session uses, and why."""

    type: ClassVar[str] = "route"
    iface: str
    ifindex: int
    src_ip: str
    src_mac: str
    dst_ip: str
    gateway: str | None  # None when the destination is on-link
    next_hop: str
    mtu: int
    reason: str  # "kernel route" or "-i IFACE"
    warning: str | None = None


@dataclass(slots=True)
class ArpRequest(Event):
    type: ClassVar[str] = "arp_request"
    target_ip: str
    attempt: int  # 1-based


@dataclass(slots=True)
class ArpReply(Event):
    type: ClassVar[str] = "arp_reply"
    ip: str
    mac: str
    rtt_ms: float


@dataclass(slots=True)
class ArpIgnored(Event):
    """An ARP reply that did not count: unsolicited, from another IP, or a changed MAC."""

    type: ClassVar[str] = "arp_ignored"
    ip: str
    mac: str
    reason: str


@dataclass(slots=True)
class TcpState(Event):
    """The connection moved from one state to another (values are the RFC's names, e.g. "SYN-SENT")."""

    type: ClassVar[str] = "tcp_state"
    old: State
    new: State

    def __post_init__(self) -> None:  # read back from NDJSON as plain strings
        self.old, self.new = State(self.old), State(self.new)


@dataclass(slots=True)
class Handshake(Event):
    """What the SYN / SYN-ACK negotiated."""

    type: ClassVar[str] = "handshake"
    local_port: int
    remote_port: int
    isn: int
    peer_isn: int
    mss: int  # the MSS we send with (min of ours and the peer's)
    peer_mss: int
    wscale: int | None  # our shift, None when not negotiated
    peer_wscale: int | None
    sack: bool
    timestamps: bool
    rtt_ms: float


@dataclass(slots=True)
class SegmentIn(Event):
    """A TCP segment from the peer that passed the checksum (accepted or not: see ``note``)."""

    type: ClassVar[str] = "segment_in"
    seq: int  # relative to the peer's ISN (0 before the SYN-ACK is known)
    ack: int  # relative to our ISN
    flags: str  # e.g. "SA", "A", "PA", "FA", "R"
    window: int  # bytes (already scaled)
    length: int  # payload bytes
    sack: tuple[tuple[int, int], ...] = ()  # relative
    note: str = ""  # "", "dup", "ooo", "out-of-window", "challenge", ...


@dataclass(slots=True)
class SegmentOut(Event):
    type: ClassVar[str] = "segment_out"
    seq: int  # relative to our ISN
    ack: int  # relative to the peer's ISN
    flags: str
    window: int  # bytes (unscaled value we advertise)
    length: int
    sack: tuple[tuple[int, int], ...] = ()
    note: str = ""  # "", "retransmit", "dup-ack", "probe", "challenge", "window-update"


@dataclass(slots=True)
class Retransmit(Event):
    """We resent data (or a SYN / FIN)."""

    type: ClassVar[str] = "retransmit"
    seq: int  # relative
    length: int
    reason: str  # "rto", "fast", "sack", "syn", "probe"
    backoff: int = 0


@dataclass(slots=True)
class DupData(Event):
    """The peer sent data we already had (a retransmission by the server)."""

    type: ClassVar[str] = "dup_data"
    seq: int
    length: int


@dataclass(slots=True)
class OutOfOrder(Event):
    """Data beyond rcv.nxt arrived: a hole exists."""

    type: ClassVar[str] = "out_of_order"
    seq: int
    length: int
    expected: int
    buffered: int  # bytes held in the reassembly buffer after this segment


@dataclass(slots=True)
class DupAck(Event):
    """Sent: a duplicate ACK (we got out-of-order data); received: the peer repeats its ACK."""

    type: ClassVar[str] = "dup_ack"
    ack: int
    count: int
    direction: str = "out"  # "out" (we sent it) or "in" (from the peer)


@dataclass(slots=True)
class ChecksumDrop(Event):
    type: ClassVar[str] = "checksum_drop"
    layer: str  # "ipv4" or "tcp"
    length: int


@dataclass(slots=True)
class Malformed(Event):
    """A frame we could not parse, or a segment we dropped as invalid."""

    type: ClassVar[str] = "malformed"
    reason: str
    length: int


@dataclass(slots=True)
class Window(Event):
    """Congestion and flow-control state, emitted when it changes (rate-limited by the stack)."""

    type: ClassVar[str] = "window"
    cwnd: int
    ssthresh: int
    rwnd: int  # what we advertise, bytes
    peer_rwnd: int  # what the peer advertises, bytes
    in_flight: int  # our bytes in flight
    srtt_ms: float | None
    rttvar_ms: float | None
    rto_ms: float
    peer_flight: int = 0  # receiver-side estimate of the server's bytes in flight
    rcv_nxt: int = 0  # relative: bytes received in order


@dataclass(slots=True)
class Progress(Event):
    type: ClassVar[str] = "progress"
    bytes: int
    total: int | None
    speed_bps: float  # bytes per second, recent


@dataclass(slots=True)
class HttpResponse(Event):
    type: ClassVar[str] = "http_response"
    status: int
    reason: str
    content_length: int | None
    headers: list[tuple[str, str]] = field(default_factory=list)


@dataclass(slots=True)
class Redirect(Event):
    type: ClassVar[str] = "redirect"
    status: int
    location: str
    hop: int


@dataclass(slots=True)
class Done(Event):
    type: ClassVar[str] = "done"
    bytes: int
    sha256: str
    duration_s: float
    path: str
    counters: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class Error(Event):
    type: ClassVar[str] = "error"
    message: str
    exit_code: int


@dataclass(slots=True)
class Info(Event):
    """A plain-words note for the user (warnings, firewall rule installed/removed, ...)."""

    type: ClassVar[str] = "info"
    message: str
    level: str = "info"  # "info" or "warning"


@dataclass(slots=True)
class TlsInfo(Event):
    """The TLS handshake finished: what was negotiated and who the server proved to be."""

    type: ClassVar[str] = "tls"
    version: str
    cipher: str
    alpn: str | None
    subject: str
    issuer: str
    not_after: str
    verified: bool
    handshake_ms: float


@dataclass(slots=True)
class TlsRecord(Event):
    """A TLS record began in the byte stream (its header only: the content stays encrypted)."""

    type: ClassVar[str] = "tls_record"
    direction: str  # "in" (from the server) or "out"
    content_type: str  # "Handshake", "ApplicationData", "Alert", "ChangeCipherSpec"...
    length: int


EVENT_TYPES: dict[str, type[Event]] = {
    cls.type: cls
    for cls in (
        Route, ArpRequest, ArpReply, ArpIgnored, TcpState, Handshake, SegmentIn, SegmentOut, Retransmit,
        DupData, OutOfOrder, DupAck, ChecksumDrop, Malformed, Window, Progress, HttpResponse, Redirect,
        Done, Error, Info, TlsInfo, TlsRecord,
    )
}


def to_dict(ev: Event) -> dict[str, Any]:
    d: dict[str, Any] = {"t": round(ev.t, 6), "type": ev.type}
    for f in dataclasses.fields(ev):
        if f.name != "t":
            d[f.name] = getattr(ev, f.name)
    return d


def from_dict(d: dict[str, Any]) -> Event:
    """Rebuild an event from :func:`to_dict` output (tuples come back from JSON lists)."""
    cls = EVENT_TYPES[d["type"]]
    kwargs: dict[str, Any] = {}
    names = {f.name for f in dataclasses.fields(cls)}
    for k, v in d.items():
        if k == "type" or k not in names:
            continue
        if k == "sack" and isinstance(v, list):  # SACK blocks (Handshake.sack is a plain bool)
            v = tuple(tuple(x) for x in v)
        if k == "headers" and v is not None:
            v = [tuple(x) for x in v]
        kwargs[k] = v
    return cls(**kwargs)


# -- the teaching lab's side channel (rawtui.lab.control); ``t`` is when rawtui received the message ----


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


@dataclass(slots=True)
class LabScenario(Event):
    """Which teaching scenario the lab runs, and what to look for on screen."""

    type: ClassVar[str] = "lab_scenario"
    name: str
    title: str
    explanation: str
    look_for: str = ""


for _cls in (ServerTcpInfo, LabKnobs, LabStats, LabScenario):
    EVENT_TYPES[_cls.type] = _cls
del _cls
