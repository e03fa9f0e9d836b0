"""The stack's events, and the base and registry of the one typed event stream.

Every receipt and decision of the stack is one of these small records. The same stream feeds the
headless view, the Textual app, the NDJSON log (`--events`) and the replay. ``t`` is seconds since the
session started (the stack is handed relative times, so it never reads a clock). Events of the layers
above live with their owners (:mod:`rawtui.http.events`, :mod:`rawtui.download.events`,
:mod:`rawtui.lab.events`); :mod:`rawtui.events` gathers them all.

Serialisation: :func:`to_dict` gives ``{"t": ..., "type": ..., <fields>}``; :func:`from_dict` inverts it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar

from rawtui.stack.tcp_states import State

EVENT_TYPES: dict[str, type[Event]] = {}  # NDJSON name -> class: every subclass that sets ``type``


@dataclass(slots=True)
class Event:
    """Base class. Subclasses set ``type`` (the NDJSON name) and are registered in :data:`EVENT_TYPES`
    by that alone; the owners of the other events (``http.events``, ``download.events``,
    ``lab.events``) subclass it the same way, and :mod:`rawtui.events` imports them all."""

    type: ClassVar[str] = "event"
    t: float

    def __init_subclass__(cls) -> None:  # no super(): dataclass(slots=True) remakes the class
        name = cls.__dict__.get("type")
        if isinstance(name, str):
            known = EVENT_TYPES.get(name)
            if known is not None and known.__qualname__ != cls.__qualname__:
                raise TypeError(f"two event classes named {name!r}: {known.__qualname__}, {cls.__qualname__}")
            EVENT_TYPES[name] = cls  # the slotted class dataclass() makes replaces the first one


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


class Medium(StrEnum):
    """What a link's frames begin with, as smoltcp's ``Medium``: an Ethernet header (Ethernet, veth, tap:
    next hops resolved by ARP / neighbor discovery), or the IP header itself (tun, WireGuard, PPP, IP-in-IP:
    a point-to-point path with no link-layer address; pcap link type raw IP). Decided once per interface;
    every layer asks it, not the interface's name or type."""

    ETHERNET = "ethernet"
    IP = "ip"

    @property
    def link_header(self) -> int:
        """Bytes before the IP header in a frame of this medium."""
        return 14 if self is Medium.ETHERNET else 0


class NeighborState(StrEnum):
    """A neighbor cache entry's reachability (RFC 4861 7.3.2), as :mod:`rawtui.stack.ndp` keeps it."""

    INCOMPLETE = "incomplete"  # solicited to its solicited-node multicast address, no answer yet
    REACHABLE = "reachable"  # a solicited advertisement, or forward progress of our connection, lately
    STALE = "stale"  # an address heard without confirmation, or REACHABLE_TIME passed: used, not trusted
    DELAY = "delay"  # we sent through a stale entry: the connection's progress has 5 s to confirm it
    PROBE = "probe"  # unicast solicitations to the cached address
    FAILED = "failed"  # no answer to the solicitations


@dataclass(slots=True)
class NdpSolicit(Event):
    """We sent a neighbor solicitation (RFC 4861 7.2.2): multicast to resolve, unicast to probe."""

    type: ClassVar[str] = "ndp_solicit"
    target_ip: str
    attempt: int  # 1-based
    unicast: bool = False  # a reachability probe to the cached MAC (PROBE state)


@dataclass(slots=True)
class NdpAdvert(Event):
    """A neighbor advertisement that counted: the next hop's MAC (the ``ArpReply`` of IPv6)."""

    type: ClassVar[str] = "ndp_advert"
    ip: str
    mac: str
    rtt_ms: float
    solicited: bool = False
    override: bool = False
    router: bool = False


@dataclass(slots=True)
class NdpIgnored(Event):
    """A neighbor advertisement or solicitation that did not count (and why)."""

    type: ClassVar[str] = "ndp_ignored"
    ip: str
    mac: str
    reason: str


@dataclass(slots=True)
class NdpAnswered(Event):
    """We answered a neighbor solicitation for our own address (else the router cannot send to us)."""

    type: ClassVar[str] = "ndp_answered"
    asker_ip: str
    asker_mac: str
    target_ip: str


@dataclass(slots=True)
class NeighborChange(Event):
    """The next hop's neighbor cache entry changed state (values of :class:`NeighborState`)."""

    type: ClassVar[str] = "neighbor_state"
    ip: str
    old: str
    new: str
    reason: str = ""


@dataclass(slots=True)
class PathMtu(Event):
    """An ICMPv6 Packet Too Big or ICMP fragmentation-needed lowered the MSS we send with (RFC 8201 /
    RFC 1191)."""

    type: ClassVar[str] = "path_mtu"
    mtu: int  # the path MTU now used
    reported: int  # what the message said (0: an old router's fragmentation-needed without it)
    mss: int  # our MSS now (the TCP payload a full segment may carry, options not counted)
    old_mss: int
    source: str  # "icmpv6 packet too big" or "icmp fragmentation needed"
    sender: str = ""  # the router that said it (the ICMP message's source address)


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


class RetransmitKind(StrEnum):
    """How a retransmission by the peer looks from the receiver (classified by the TCP machine)."""

    FAST = "fast"  # it repaired a hole we had reported with >= 3 duplicate ACKs (or SACK blocks)
    TIMEOUT = "timeout"  # it came after a silence of the order of the sender's RTO
    TLP = "tlp"  # a tail-loss probe: the tail resent ~2 RTT after the sender went quiet, before any RTO
    SPURIOUS = "spurious"  # data we already had, no timer explaining it (answered with a D-SACK, RFC 2883)


@dataclass(slots=True)
class PeerRetransmit(Event):
    """The peer resent data: a segment that filled a hole or repeated data we had, classified."""

    type: ClassVar[str] = "peer_retransmit"
    seq: int  # relative to the peer's ISN
    length: int
    kind: str  # a RetransmitKind value
    silence_ms: float  # how long nothing had come from the peer before it
    dup_acks: int = 0  # duplicate ACKs we had sent for the hole it filled
    repeat: bool = False  # all its data we had already: needless (a D-SACK answered it), whatever its kind


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
    layer: str  # "ipv4", "tcp", "icmp" or "icmpv6"
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




