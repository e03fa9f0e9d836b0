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
    type: ClassVar[str] = "tcp_state"
    old: str
    new: str


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


EVENT_TYPES: dict[str, type[Event]] = {
    cls.type: cls
    for cls in (
        Route, ArpRequest, ArpReply, ArpIgnored, TcpState, Handshake, SegmentIn, SegmentOut, Retransmit,
        DupData, OutOfOrder, DupAck, ChecksumDrop, Malformed, Window, Progress, HttpResponse, Redirect,
        Done, Error, Info, TlsInfo,
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
        if k == "sack" and v is not None:
            v = tuple(tuple(x) for x in v)
        if k == "headers" and v is not None:
            v = [tuple(x) for x in v]
        kwargs[k] = v
    return cls(**kwargs)
