"""Events of a download as a whole: the route chosen, progress, the end (done or error), notes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from rawtui.stack.events import Event


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
class Progress(Event):
    type: ClassVar[str] = "progress"
    bytes: int
    total: int | None
    speed_bps: float  # bytes per second, recent


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
