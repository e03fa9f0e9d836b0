"""The one typed event stream: every event type, the registry the NDJSON reader uses, and what a
source of events is.

Data flows one way: a *source* (a live download, :mod:`rawtui.download`; a recording,
:mod:`rawtui.recording`) runs and emits typed events; *views* (:mod:`rawtui.views`: headless, the
Textual app, the NDJSON log) and the pcap writer listen. Each event type lives with its owner
(:mod:`rawtui.events`, :mod:`rawtui.http.events`, :mod:`rawtui.download.events`,
:mod:`rawtui.lab.events`, :mod:`rawtui.analysis.events`); importing this module registers them all, so :func:`from_dict` knows every
``type`` a log can hold.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol

from rawtui.analysis.events import Explain
from rawtui.download.events import Done, Error, Info, Progress, RateLimit, ReadStall, Retry, Route
from rawtui.http.events import HttpResponse, Redirect, TlsInfo, TlsRecord
from rawtui.lab.events import LabKnobs, LabScenario, LabStats, RouterAction, ServerTcpInfo
from rawtui.stack.events import (
    EVENT_TYPES,
    ArpIgnored,
    ArpReply,
    ArpRequest,
    ChecksumDrop,
    DupAck,
    DupData,
    Event,
    Handshake,
    Malformed,
    Medium,
    NdpAdvert,
    NdpAnswered,
    NdpIgnored,
    NdpSolicit,
    NeighborChange,
    NeighborState,
    OutOfOrder,
    PathMtu,
    PeerRetransmit,
    Retransmit,
    RetransmitKind,
    SegmentIn,
    SegmentOut,
    TcpState,
    Window,
    from_dict,
    to_dict,
)
from rawtui.watch.events import KernelTcpInfo

__all__ = [
    "EVENT_TYPES", "ArpIgnored", "ArpReply", "ArpRequest", "ChecksumDrop", "Done", "DupAck", "DupData", "Emit",
    "Error", "Event", "EventSource", "Explain", "Handshake", "HttpResponse", "Info", "KernelTcpInfo", "LabKnobs", "LabScenario",
    "LabStats", "Malformed", "Medium", "NdpAdvert", "NdpAnswered", "NdpIgnored", "NdpSolicit", "NeighborChange",
    "NeighborState", "OutOfOrder", "PathMtu", "PeerRetransmit", "Progress", "RateLimit", "ReadStall", "Redirect",
    "Retransmit",
    "RetransmitKind", "Retry",
    "Route", "RouterAction", "SegmentIn", "SegmentOut", "ServerTcpInfo", "TcpState", "TlsInfo", "TlsRecord", "Window", "from_dict", "to_dict",
]

Emit = Callable[[Event], None]


class EventSource(Protocol):
    """Runs to completion in the calling (worker) thread, emitting events as they happen.

    ``emit`` must not block for long: views queue what they get and draw on their own schedule.
    ``stop`` is set by the view to ask for a clean early end (close the connection, remove the firewall
    rule, nothing under the final name: a download keeps its body so far in FILE.part for ``-C -``). Returns the process exit code (0 on success); on failure the last event
    emitted is an ``Error`` with the same code.
    """

    def run(self, emit: Emit, stop: threading.Event) -> int: ...
