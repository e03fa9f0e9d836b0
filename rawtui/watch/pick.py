"""Which connection ``rawtui watch`` follows, when several cross the interface (no I/O: frames in, a choice
out).

The rules, in order:

- a frame counts only if it matches the filter (``--host``: either end's address; ``--port``: either
  end's port; ``--stream-filter A:P-B:Q``: exactly that connection, either way round);
- with a filter given, the first matching connection that shows a SYN or carries data is followed at
  once;
- without one, the first connection to carry ``PICK_BYTES`` of payload in one direction is followed (the
  biggest transfer, found early); until then the frames of each candidate are kept (its SYN included), so
  the analysis of the one chosen starts at its beginning. A candidate that keeps more than
  ``MAX_FRAMES`` frames without getting there (an interactive session) is dropped, and so are the oldest
  candidates beyond ``MAX_CANDIDATES``;
- when the watch has to end before any choice (a signal, ``--count``), the biggest candidate is followed;
- once followed, a connection is never swapped for another: a watch reports one connection, from its
  first frame seen to its end (FIN both ways and acknowledged, or RST).
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from dataclasses import dataclass, field

from rawtui.errors import UsageError
from rawtui.recording.capture import CapturedFrame
from rawtui.wire.tcp import RST, SYN

__all__ = ["MAX_CANDIDATES", "MAX_FRAMES", "PICK_BYTES", "Candidate", "Endpoint", "FlowFilter", "FlowPicker"]

PICK_BYTES = 64 * 1024
MAX_FRAMES = 4096
MAX_CANDIDATES = 256

Endpoint = tuple[bytes, int]  # (IPv4 address, 4 bytes, or IPv6 address, 16 bytes; port)


def _ip(text: str, what: str) -> bytes:
    try:
        return ipaddress.ip_address(text).packed
    except ValueError:
        raise UsageError(f"bad {what} {text!r}: use an IPv4 or IPv6 address, e.g. 10.77.2.2 or 2001:db8:2::2"
                         ) from None


def _endpoint(text: str) -> Endpoint:
    host, sep, port = text.strip().rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"bad --stream-filter end {text!r}: use IP:PORT, e.g. 10.77.2.2:8080 or "
                         "[2001:db8:2::2]:8080")
    if host.startswith("[") and host.endswith("]"):  # an IPv6 address, as in a URL
        host = host[1:-1]
    return _ip(host, "--stream-filter address"), int(port)


@dataclass(frozen=True, slots=True)
class FlowFilter:
    """Which connections may be followed: any (all fields None), or those matching every field given."""

    host: bytes | None = None
    port: int | None = None
    exact: frozenset[Endpoint] | None = None

    @classmethod
    def parse(cls, host: str | None = None, port: int | None = None, stream: str | None = None) -> FlowFilter:
        """From the command line: ``--host H``, ``--port P``, ``--stream-filter A:P-B:Q`` (UsageError when bad)."""
        if port is not None and not 0 < port < 65536:
            raise UsageError(f"bad --port {port}: use 1 to 65535")
        exact = None
        if stream is not None:
            a, sep, b = stream.partition("-[") if "-[" in stream else stream.partition("-")  # [v6]:port-[v6]:port
            if sep == "-[":
                b = "[" + b
            if not sep:
                raise UsageError(f"bad --stream-filter {stream!r}: use IP:PORT-IP:PORT, e.g. "
                                 "10.77.1.2:40000-10.77.2.2:8080")
            exact = frozenset((_endpoint(a), _endpoint(b)))
        return cls(_ip(host, "--host") if host is not None else None, port, exact)

    @property
    def given(self) -> bool:
        return self.host is not None or self.port is not None or self.exact is not None

    def matches(self, a: Endpoint, b: Endpoint) -> bool:
        if self.host is not None and self.host not in (a[0], b[0]):
            return False
        if self.port is not None and self.port not in (a[1], b[1]):
            return False
        return self.exact is None or frozenset((a, b)) == self.exact


@dataclass(slots=True)
class Candidate:
    """A connection seen on the wire: its ends, the payload each way, who sent the SYN, its frames so far."""

    a: Endpoint  # the end of its first frame's sender
    b: Endpoint
    first_ts: float
    syn_from: Endpoint | None = None  # the client: the sender of a SYN without ACK
    payload: dict[Endpoint, int] = field(default_factory=dict)  # bytes sent by each end
    frames: list[CapturedFrame] = field(default_factory=list)
    ended: bool = False  # a RST was seen

    @property
    def key(self) -> frozenset[Endpoint]:
        return frozenset((self.a, self.b))

    @property
    def biggest(self) -> int:
        return max(self.payload.values(), default=0)

    @property
    def client(self) -> Endpoint:
        """The receiving end for the analysis: the SYN's sender, else the end that received more data."""
        if self.syn_from is not None:
            return self.syn_from
        return self.a if self.payload.get(self.b, 0) >= self.payload.get(self.a, 0) else self.b

    @property
    def server(self) -> Endpoint:
        return self.b if self.client == self.a else self.a


class FlowPicker:
    """Offer it every TCP frame (:meth:`offer`); it says when the connection to follow is chosen."""

    def __init__(self, flt: FlowFilter | None = None, pick_bytes: int = PICK_BYTES, max_frames: int = MAX_FRAMES,
                 max_candidates: int = MAX_CANDIDATES) -> None:
        self.filter = flt or FlowFilter()
        self.pick_bytes = pick_bytes
        self.max_frames = max_frames
        self.max_candidates = max_candidates
        self.candidates: OrderedDict[frozenset[Endpoint], Candidate] = OrderedDict()
        self.dropped: set[frozenset[Endpoint]] = set()  # not transfers: never chosen
        self.chosen: Candidate | None = None

    def offer(self, frame: CapturedFrame, src: Endpoint, dst: Endpoint, flags: int, payload: int) -> Candidate | None:
        """Note one TCP frame; returns the chosen candidate when this frame decides it (its kept frames,
        this one included, are then the start of the connection), else None."""
        if self.chosen is not None or not self.filter.matches(src, dst):
            return None
        key = frozenset((src, dst))
        if key in self.dropped:
            return None
        cand = self.candidates.get(key)
        if cand is None:
            cand = self.candidates[key] = Candidate(src, dst, frame.ts)
            while len(self.candidates) > self.max_candidates:
                old, _ = self.candidates.popitem(last=False)
                self.dropped.add(old)
        if flags & SYN and not flags & 0x10 and cand.syn_from is None:
            cand.syn_from = src
        if flags & RST:
            cand.ended = True
        cand.payload[src] = cand.payload.get(src, 0) + payload
        cand.frames.append(frame)
        if self.filter.given and (flags & SYN or payload):
            return self._choose(cand)
        if cand.payload[src] >= self.pick_bytes:
            return self._choose(cand)
        if len(cand.frames) > self.max_frames:
            del self.candidates[key]
            self.dropped.add(key)
        return None

    def settle(self) -> Candidate | None:
        """The watch ends before a choice: the candidate that carried the most (the first of equals), or None."""
        if self.chosen is None:
            best = max(self.candidates.values(), key=lambda c: c.biggest, default=None)
            if best is not None and best.biggest:
                self._choose(best)
        return self.chosen

    def _choose(self, cand: Candidate) -> Candidate:
        self.chosen = cand
        self.candidates.clear()
        return cand
