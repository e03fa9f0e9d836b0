"""Events of a download as a whole: the route chosen, progress, the end (done or error), notes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from rawtui.stack.events import Event, Medium


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
    family: int = 4  # 4 or 6: the address family used
    family_reason: str = ""  # why that family ("a literal IPv6 address", "-4", "AAAA and a route for it"...)
    medium: Medium = Medium.ETHERNET  # IP: a point-to-point path, no link header (tun, WireGuard, PPP)

    def __post_init__(self) -> None:  # read back from NDJSON as a plain string
        self.medium = Medium(self.medium)


@dataclass(slots=True)
class Progress(Event):
    type: ClassVar[str] = "progress"
    bytes: int  # of the file (a resume counts what was there), or of the wire when the body is decoded
    total: int | None
    speed_bps: float  # bytes per second, recent
    file_bytes: int | None = None  # --compressed: the decoded bytes written so far (``bytes`` is the wire's)


@dataclass(slots=True)
class Done(Event):
    type: ClassVar[str] = "done"
    bytes: int
    sha256: str
    duration_s: float
    path: str
    counters: dict[str, int] = field(default_factory=dict)
    wire_bytes: int | None = None  # --compressed: the body's size on the wire (``bytes``: the file's)
    resumed_from: int = 0  # -C -: bytes the file already had from an interrupted download


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
class ReadStall(Event):
    """``--stall``: the application stops reading now, for ``seconds``, after ``after_bytes`` of body: the
    receive buffer fills and the advertised window falls to zero (a state tests and ``--explain`` rely on)."""

    type: ClassVar[str] = "read_stall"
    after_bytes: int
    seconds: float


@dataclass(slots=True)
class Retry(Event):
    """A transient failure (``--retry``): the next attempt starts after ``delay_s`` seconds."""

    type: ClassVar[str] = "retry"
    attempt: int  # the attempt about to start: 2 for the first retry
    attempts: int  # at most this many attempts in all (--retry N: N + 1)
    delay_s: float
    reason: str  # the failure, in the error's own words
    url: str
    resume_from: int = 0  # bytes of the body kept (a Range request); 0: restart from zero


@dataclass(slots=True)
class RateLimit(Event):
    """The application's read rate (``--limit-rate``, or changed in the live view): it reads at most this
    many bytes per second from the receive buffer, so the advertised window closes and the server slows."""

    type: ClassVar[str] = "rate_limit"
    bytes_per_s: float | None  # None: no limit
    rcv_buf: int  # the receive buffer the window is taken from, sized for the rate
