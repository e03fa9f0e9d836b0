"""Impairments on the lab's router: loss, delay + jitter, a rate-limited bottleneck queue, reordering,
duplication, corruption and blackouts, per direction, changeable live.

This kernel has no netem, so the router forwards the lab's traffic itself: a relay process in the
router namespace (``python -m rawtui.lab.impair relay ...``) reads every IPv4 frame (and in a dual-stack
lab, ``--ipv6``, every IPv6 frame) arriving on ``rc0`` and ``rs0`` with AF_PACKET, passes it through a
:class:`Pipe` (one per direction, shared by both families) and writes it out of the other interface with
the next hop's MAC address and the TTL decremented (IPv4, with its header checksum updated) or the hop
limit (IPv6, which has no header checksum). While the relay runs, the router's own forwarding is off
(``ip_forward=0``, and ``net.ipv6.conf.all.forwarding=0`` with ``--ipv6``; restored when the relay
exits), so every frame crosses the router exactly once, through the relay. ARP, neighbor discovery
(multicast, or to the router's own addresses, link-local ones included) and all traffic for the router's
own addresses stay with the router's kernel: each family has its own socket and cBPF filter.

A wire-sized frame larger than the next link's MTU is answered as a router would: ICMPv6 Packet Too Big
(RFC 4443 3.2, RFC 8200 5) from the router's address on the sender's link, or for IPv4 with DF set ICMP
fragmentation needed with the next-hop MTU (RFC 1191); the sender lowers its path MTU. Counted as
``too_big``. (A frame larger than the link it *arrived* on cannot have crossed a wire: it is a GRO/TSO
super-frame, split like GSO, below; so is an IPv4 TCP frame without DF.)

Directions: ``down`` is server -> client (the data), ``up`` is client -> server (requests and ACKs).

Frames are MTU-sized: :func:`prepare_lab` turns TSO/GSO/GRO and TX checksum offload off on the four lab
interfaces (SIOCETHTOOL ioctls: no ethtool binary needed). Should a super-frame or a frame with an
offloaded (not yet computed) checksum still arrive, the relay segments it / completes the checksum in
software and counts it (``segmented`` / ``csum_fixed``), so a knob always acts on wire-sized frames and
what leaves the router always carries real checksums (a corrupted frame is then caught by the receiver).

The relay also serves the lab's control socket (:class:`rawtui.lab.control.ControlHub`): knob changes
come in as JSON lines, knob states, the relay's counters and the lab server's TCP_INFO samples go out.

The path's truth: each thing a pipe does to a TCP frame is reported as it happens, one ``router_action``
message per frame (published once per loop iteration, before the relay waits again): ``drop`` (random
loss), ``blackout``, ``queue-drop`` (the bottleneck queue was full), ``duplicate``, ``reorder`` (held
back) and ``corrupt``, with the frame's direction, TCP sequence number, payload length, flags and ports,
the relay's monotonic time and a note naming the knob (``"loss 1 %"``). Sequence numbers are relative to
the sender's ISN, as tshark shows them: each pipe learns the ISN of the connections whose SYN or SYN-ACK
it forwards (per 4-tuple; absolute, with ``absolute: true``, for a connection whose SYN it never saw).
The per-direction counters count every frame of either family; the reports cover the TCP frames only (in
the lab, all of them; over IPv6, a SYN is recognised without extension headers). Delay is not an action
reported per frame: every frame is delayed by the same knob (plus its jitter), and the ``delays`` command
returns the delay chosen for each recent frame. Recording costs
nothing on the fast path: only a SYN is looked at there (one comparison for every larger frame), and
TCP headers are parsed only for the frames a pipe acts on.

Measured on the 2-core lab machine (tests/lab/test_lab_impair.py, IPv4 and IPv6 alike): see
``RELAY_THROUGHPUT`` below.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import errno
import fcntl
import math
import os
import random
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections import deque
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from rawtui.wire.checksum import checksum_from_residue, pseudo_header_residue, residue
from rawtui.wire.errors import WireError
from rawtui.wire.icmp import PROTO_ICMP, build_icmp, fragmentation_needed
from rawtui.wire.icmpv6 import PacketTooBig, build_icmpv6
from rawtui.wire.ipv4 import build_ipv4
from rawtui.wire.ipv6 import (
    NH_DSTOPTS,
    NH_FRAGMENT,
    NH_HOPOPTS,
    NH_ICMPV6,
    NH_ROUTING,
    build_ipv6,
    ip6_bytes,
    parse_ipv6,
)
from rawtui.wire.tcp import flags_str

if TYPE_CHECKING:
    from rawtui.lab.control import ControlHub
    from rawtui.lab.topology import Lab

__all__ = [
    "DIRECTIONS",
    "KNOB_NAMES",
    "ImpairError",
    "Knobs",
    "Pipe",
    "Relay",
    "child_env",
    "parse_ms",
    "parse_rate",
    "prepare_lab",
    "set_offloads",
    "start_relay",
]

DIRECTIONS = ("down", "up")
REORDER_GAP = 3  # a reordered frame is sent after this many later frames of its direction...
REORDER_HOLD_MAX = 0.05  # ...or after this many seconds, whichever comes first
DEFAULT_QUEUE = 100  # bottleneck queue (frames) when a rate is set and no queue size is given
STATS_EVERY = 0.25  # seconds between counter broadcasts on the control socket
BATCH = 512  # frames drained from one socket before the other side gets a turn
DELAY_LOG = 10_000  # per direction, the delays (ms) chosen for the last this many delayed frames
# Measured in tests/lab/test_lab_impair.py::test_relay_throughput (no knobs, 1514-byte frames, 2 cores).
RELAY_THROUGHPUT = ("60-120k frames/s (0.7-1.45 Gbit/s of 1514-byte frames) with no knob on, 45-110k with one; "
                    "IPv4 and IPv6 alike (benchmarks/relay_cost.py: ~6.2 us of CPU per frame either way)")

ARMABLE = ("set", "blackout", "reset")  # what a pipe may arm to run after a number of bytes
ISN_TABLE = 4096  # connections whose ISN a pipe remembers (the oldest learned is forgotten first)
_SYN_MAX = 14 + 60 + 60  # the longest frame a (data-less) SYN can be: Ethernet, IPv4, TCP (IPv6: 14 + 40 + 60)
ACTIONS = ("drop", "blackout", "queue-drop", "duplicate", "reorder", "corrupt")  # router_action's actions

STAT_NAMES = (
    "frames_in", "frames_out", "bytes_out", "lost", "blackout_drops", "queue_drops", "corrupted",
    "duplicated", "reordered", "reorder_expired", "csum_fixed", "segmented", "send_errors", "ttl_expired",
    "rx_drops", "queue_len", "queue_max", "too_big",
)
# reordered: frames held back; reorder_expired: those of them released by REORDER_HOLD_MAX before
# REORDER_GAP later frames had passed them (so they may arrive in order after all). rx_drops: frames the
# kernel dropped before the relay could read them (its socket's buffer was full: PACKET_STATISTICS),
# counted whenever the counters are read; not in frames_in. too_big: frames larger than the next link's MTU
# answered with ICMPv6 Packet Too Big or ICMP fragmentation needed (counted in frames_in, not frames_out).


class ImpairError(RuntimeError):
    """A knob value or an impairment setup that cannot work; the message says why in one sentence."""


# ---------------------------------------------------------------------------------------------------
# knobs


@dataclass(slots=True)
class Knobs:
    """One direction's impairments. Zero everywhere is a perfect link."""

    loss: float = 0.0  # % of frames dropped at random
    delay_ms: float = 0.0  # added one-way delay
    jitter_ms: float = 0.0  # +- uniform spread on the delay (never reorders frames: see `reorder`)
    rate_bps: int = 0  # bottleneck rate in bit/s of Ethernet frame bytes; 0 = unlimited
    queue: int = DEFAULT_QUEUE  # bottleneck queue in frames (drop-tail), used with rate_bps
    reorder: float = 0.0  # % of frames held back behind the next REORDER_GAP frames
    dup: float = 0.0  # % of frames sent twice
    corrupt: float = 0.0  # % of frames with one bit flipped in the TCP/UDP payload (checksums catch it)

    @property
    def active(self) -> bool:
        return bool(
            self.loss or self.delay_ms or self.jitter_ms or self.rate_bps or self.reorder or self.dup
            or self.corrupt
        )

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)

    def updated(self, changes: dict[str, Any]) -> Knobs:
        """A copy with ``changes`` applied; ImpairError on an unknown knob or a value out of range."""
        new = Knobs(**asdict(self))
        for name, value in changes.items():
            if name not in KNOB_NAMES:
                raise ImpairError(f"unknown knob {name!r} (knobs: {', '.join(KNOB_NAMES)})")
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ImpairError(f"knob {name}: expected a number, got {value!r}")
            setattr(new, name, _check_knob(name, value))
        return new


def _check_knob(name: str, value: float) -> float | int:
    if not math.isfinite(value):
        raise ImpairError(f"knob {name}: {value!r} is not a finite number")
    if name in ("loss", "reorder", "dup", "corrupt"):
        if not 0 <= value <= 100:
            raise ImpairError(f"knob {name}: {value:g} is not a percentage between 0 and 100")
        return float(value)
    if name in ("delay_ms", "jitter_ms"):
        if not 0 <= value <= 10_000:
            raise ImpairError(f"knob {name}: {value:g} ms is outside 0..10000 ms")
        return float(value)
    if name == "rate_bps":
        if value != 0 and not 8_000 <= value <= 100_000_000_000:
            raise ImpairError(f"knob rate_bps: {value:g} bit/s is outside 8 kbit/s..100 Gbit/s (0 = unlimited)")
        return int(value)
    if name == "queue":
        if not 1 <= value <= 1_000_000:
            raise ImpairError(f"knob queue: {value:g} frames is outside 1..1000000")
        return int(value)
    raise ImpairError(f"unknown knob {name!r}")


KNOB_NAMES = tuple(f.name for f in fields(Knobs))

_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]?)(bit|bps|b)?(?:/s)?\s*$", re.IGNORECASE)
_MS = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(us|ms|s)?\s*$", re.IGNORECASE)


def parse_rate(text: str) -> int:
    """ "20mbit", "20M", "500kbit", "1gbit", "2000000" -> bit/s (SI prefixes, like tc)."""
    m = _RATE.match(text)
    if not m:
        raise ImpairError(f"bad rate {text!r}: use e.g. 20mbit, 500kbit, 1gbit")
    mult = {"": 1, "k": 1_000, "m": 1_000_000, "g": 1_000_000_000}[m.group(2).lower()]
    return int(float(m.group(1)) * mult)


def parse_ms(text: str) -> float:
    """ "40ms", "40", "0.5s", "500us" -> milliseconds (a bare number is milliseconds)."""
    m = _MS.match(text)
    if not m:
        raise ImpairError(f"bad duration {text!r}: use e.g. 40ms, 0.5s")
    return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0, None: 1.0}[
        m.group(2).lower() if m.group(2) else None
    ]


# ---------------------------------------------------------------------------------------------------
# frame surgery (Ethernet + IPv4 or IPv6 + TCP/UDP, no options assumed beyond what the headers say)

_ETH = 14
_PROTO_TCP = 6
_PROTO_UDP = 17
_IP6_LEN = 40
_IP6_PLEN = _ETH + 4  # IPv6 payload length
_IP6_NH = _ETH + 6  # IPv6 next header
_IP6_HOP = _ETH + 7  # IPv6 hop limit
_IP6_ADDRS = slice(_ETH + 8, _ETH + 40)  # IPv6 source and destination
_IP4_ADDRS = slice(_ETH + 12, _ETH + 20)
_IP6_EXT = frozenset((NH_HOPOPTS, NH_ROUTING, NH_FRAGMENT, NH_DSTOPTS))


def _is_ipv6(frame: bytes | bytearray | memoryview) -> bool:
    return frame[12] == 0x86 and frame[13] == 0xDD


def _layout(frame: bytes | bytearray | memoryview) -> tuple[int, int, int, bool] | None:
    """(upper-layer protocol, where its header starts, where the packet ends, whether it is a fragment
    other than the first) of an Ethernet frame carrying IPv4 or IPv6 (extension headers walked by
    :func:`rawtui.wire.ipv6.parse_ipv6`); None when it is cut short or unparseable."""
    n = len(frame)
    if n < _ETH + 20:
        return None
    if _is_ipv6(frame):
        if n < _ETH + _IP6_LEN:
            return None
        end = min(_ETH + _IP6_LEN + int.from_bytes(frame[_IP6_PLEN : _IP6_PLEN + 2], "big"), n)
        nh = frame[_IP6_NH]
        if nh not in _IP6_EXT:
            return nh, _ETH + _IP6_LEN, end, False
        try:
            hdr, _ = parse_ipv6(memoryview(frame)[_ETH:end])
        except WireError:
            return None
        return hdr.proto, _ETH + hdr.header_length, end, bool(hdr.fragment and hdr.fragment.offset)
    end = min(_ETH + int.from_bytes(frame[_ETH + 2 : _ETH + 4], "big"), n)
    later = bool((frame[_ETH + 6] & 0x1F) | frame[_ETH + 7])
    return frame[_ETH + 9], _ETH + (frame[_ETH] & 0x0F) * 4, end, later


def _addresses(frame: bytes | bytearray | memoryview) -> bytes:
    """The source and destination addresses, one after the other (8 bytes for IPv4, 32 for IPv6)."""
    return bytes(frame[_IP6_ADDRS] if _is_ipv6(frame) else frame[_IP4_ADDRS])


def _syn_at(frame: bytes | bytearray | memoryview) -> int:
    """Where the TCP flags of a TCP frame are, looked up without parsing (IPv6 without extension headers:
    a SYN never carries one in the lab), else 0. The relay's fast path inlines the same two cases."""
    if _is_ipv6(frame):
        return _ETH + _IP6_LEN + 13 if frame[_IP6_NH] == _PROTO_TCP else 0
    return _ETH + 13 + (frame[_ETH] & 0x0F) * 4 if frame[_ETH + 9] == _PROTO_TCP else 0


def fix_l4_checksum(frame: bytearray) -> bool:
    """Compute the TCP/UDP checksum of an IPv4 or IPv6 frame in place (for offloaded, not-yet-filled
    checksums); the pseudo-header is the family's (:func:`pseudo_header_residue` takes either)."""
    lay = _layout(frame)
    if lay is None or lay[3]:
        return False
    proto, l4, end, _ = lay
    if proto == _PROTO_TCP:
        off = l4 + 16
    elif proto == _PROTO_UDP:
        off = l4 + 6
    else:
        return False
    if off + 2 > end:
        return False
    frame[off] = frame[off + 1] = 0
    addrs = _addresses(frame)
    half = len(addrs) // 2
    r = residue(memoryview(frame)[l4:end]) + pseudo_header_residue(addrs[:half], addrs[half:], proto, end - l4)
    c = checksum_from_residue(r)
    if proto == _PROTO_UDP and c == 0:
        c = 0xFFFF
    frame[off] = c >> 8
    frame[off + 1] = c & 0xFF
    return True


def _ip_header_checksum(frame: bytearray) -> None:
    ihl = (frame[_ETH] & 0x0F) * 4
    frame[_ETH + 10] = frame[_ETH + 11] = 0
    c = checksum_from_residue(residue(memoryview(frame)[_ETH : _ETH + ihl]))
    frame[_ETH + 10] = c >> 8
    frame[_ETH + 11] = c & 0xFF


def segment_tcp(frame: bytes | bytearray | memoryview, mtu: int) -> list[bytearray]:
    """Split an oversized IPv4/TCP or IPv6/TCP frame (a TSO/GRO super-frame) into MTU-sized frames, like
    GSO would.

    Each piece gets its own length (IPv4: total length, id and header checksum; IPv6: payload length), its
    own sequence number and TCP checksum; FIN and PSH stay on the last piece, CWR on the first. Returns []
    for anything else.
    """
    frame = bytes(frame)
    lay = _layout(frame)
    if lay is None or lay[0] != _PROTO_TCP or lay[3]:
        return []
    _, l4, end, _ = lay
    v6 = _is_ipv6(frame)
    iphl = l4 - _ETH  # with IPv6's extension headers
    doff = (frame[l4 + 12] >> 4) * 4 if l4 + 13 <= end else 0
    data0 = l4 + doff
    mss = mtu - iphl - doff
    if mss <= 0 or doff < 20 or data0 > end:
        return []
    ip_id = int.from_bytes(frame[_ETH + 4 : _ETH + 6], "big")
    seq = int.from_bytes(frame[l4 + 4 : l4 + 8], "big")
    flags = frame[l4 + 13]
    head = frame[:data0]
    out: list[bytearray] = []
    pos = data0
    while pos < end:
        chunk = frame[pos : pos + mss] if pos + mss <= end else frame[pos:end]
        last = pos + len(chunk) >= end
        f = bytearray(head)
        f += chunk
        if v6:
            f[_IP6_PLEN : _IP6_PLEN + 2] = (iphl - _IP6_LEN + doff + len(chunk)).to_bytes(2, "big")
        else:
            f[_ETH + 2 : _ETH + 4] = (iphl + doff + len(chunk)).to_bytes(2, "big")
            f[_ETH + 4 : _ETH + 6] = ((ip_id + len(out)) & 0xFFFF).to_bytes(2, "big")
            _ip_header_checksum(f)
        f[l4 + 4 : l4 + 8] = ((seq + pos - data0) & 0xFFFFFFFF).to_bytes(4, "big")
        fl = flags
        if not last:
            fl &= ~0x09  # FIN, PSH
        if out:
            fl &= ~0x80  # CWR
        f[l4 + 13] = fl
        fix_l4_checksum(f)
        out.append(f)
        pos += len(chunk)
    return out


def corrupt_frame(frame: bytearray, rng: random.Random) -> None:
    """Flip one bit after the IP header: in the TCP/UDP payload when there is one, else in the L4 header.

    The IP header (IPv4 or IPv6, with its extension headers) stays intact, so the frame is still routed;
    the TCP/UDP checksum no longer matches, so the receiver drops the frame (one flipped bit always
    changes a ones'-complement sum).
    """
    lay = _layout(frame)
    if lay is None:
        return
    proto, l4, end, later = lay
    if later:  # the middle of a fragmented packet: its data, wherever
        start = l4
    elif proto == _PROTO_TCP and l4 + 13 < end:
        start = l4 + (frame[l4 + 12] >> 4) * 4
    elif proto == _PROTO_UDP:
        start = l4 + 8
    else:
        start = l4
    if start >= end:  # no payload: a header bit (not the data offset, so the receiver still parses it)
        start = l4
        if proto == _PROTO_TCP and not later and end - l4 >= 20:
            pos = l4 + rng.choice((4, 5, 6, 7, 8, 9, 10, 11, 14, 15))  # seq, ack, window
            frame[pos] ^= 1 << rng.randrange(8)
            return
    if start >= end:
        return
    pos = rng.randrange(start, end)
    frame[pos] ^= 1 << rng.randrange(8)


# ---------------------------------------------------------------------------------------------------
# one direction's pipeline (sans-IO: frames in with a time, frames out when due)


class Pipe:
    """Loss, corruption, duplication -> bottleneck (rate + drop-tail queue) -> delay + jitter -> reorder.

    ``push(frame, now)`` takes a frame (a bytearray the pipe may keep and modify); ``due(now, out)``
    appends the frames whose time has come to ``out``; ``next_deadline`` says when to call ``due`` next.
    No I/O and no clock: tests drive it with a fake clock and a seeded ``random.Random``.

    While ``record`` is on, each action on a TCP frame appends a ``router_action`` message (a dict ready
    for the control socket, see the module's docstring) to ``actions``, for the relay to take and publish.
    """

    def __init__(self, name: str, rng: random.Random | None = None) -> None:
        self.name = name
        self.knobs = Knobs()
        self.stats: dict[str, int] = dict.fromkeys(STAT_NAMES, 0)
        self.blackout_until = 0.0
        self._rng = rng or random.Random()
        self._line: deque[tuple[float, bytearray]] = deque()  # (release time, frame), times ascending
        self._departures: deque[float] = deque()  # when each frame in the bottleneck queue has left it
        self._link_free = 0.0
        self._last_release = 0.0
        self._held: list[list[Any]] = []  # [frames still to pass, deadline, frame]
        # The delay (ms, delay_ms +- jitter, never below 0) chosen for each frame while delay or jitter is
        # on, oldest first: what the relay decided, for tests and the `delays` command, not what a clock
        # measured (a frame leaves no earlier than that, later if an earlier frame was given more).
        self.delays: deque[float] = deque(maxlen=DELAY_LOG)
        # Commands armed to run once a number of bytes (whole frames, as they reach the pipe) has passed:
        # [bytes still to pass, command], in arming order. ``fired`` collects those whose moment came, for
        # the relay to apply before the next frame: where a scenario acts is then a property of the data,
        # not of how fast anything else on the machine runs.
        self.armed: list[list[Any]] = []
        self.fired: list[dict[str, Any]] = []
        self.record = True
        self.actions: list[dict[str, Any]] = []
        # the ISN of the sender of each connection travelling this way, by (src ip, dst ip, sport, dport)
        self._isn: dict[bytes, int] = {}
        self._blackout_s = 0.0  # the length of the blackout in force, for the reports' note

    @property
    def idle(self) -> bool:
        """True when a frame may bypass the pipe: no knob, no blackout, nothing queued, nothing armed."""
        return not (self.knobs.active or self.blackout_until or self._line or self._held or self.armed)

    def arm(self, after_bytes: int, command: dict[str, Any]) -> None:
        """Run ``command`` (by the relay) once ``after_bytes`` more bytes of frames have entered the pipe."""
        self.armed.append([after_bytes, command])

    @property
    def next_deadline(self) -> float | None:
        t = self._line[0][0] if self._line else None
        for h in self._held:
            if t is None or h[1] < t:
                t = h[1]
        if self.blackout_until and (t is None or self.blackout_until < t):
            t = self.blackout_until
        return t

    def set_knobs(self, knobs: Knobs) -> None:
        self.knobs = knobs
        if not knobs.rate_bps:
            self._departures.clear()

    def blackout(self, seconds: float, now: float) -> None:
        self.blackout_until = now + seconds if seconds > 0 else 0.0
        self._blackout_s = seconds

    def learn_isn(self, frame: bytes | bytearray | memoryview) -> None:
        """Remember the sender's ISN if ``frame`` is a TCP SYN (or SYN-ACK): what this pipe reports of the
        connection from then on has sequence numbers relative to it."""
        lay = _layout(frame)
        if lay is None or lay[0] != _PROTO_TCP or lay[3]:
            return
        l4 = lay[1]
        if lay[2] < l4 + 20 or not frame[l4 + 13] & 0x02:
            return
        key = _addresses(frame) + bytes(frame[l4 : l4 + 4])
        isns = self._isn
        isns.pop(key, None)  # a new connection on the same 4-tuple: the newest ISN, and the youngest entry
        isns[key] = int.from_bytes(frame[l4 + 4 : l4 + 8], "big")
        if len(isns) > ISN_TABLE:
            del isns[next(iter(isns))]

    def _report(self, frame: bytearray, action: str, note: str, now: float) -> None:
        """Record ``action`` on ``frame`` if it is a TCP frame (the first fragment, if fragmented)."""
        lay = _layout(frame)
        if lay is None or lay[0] != _PROTO_TCP or lay[3]:
            return
        _, l4, end, _ = lay
        if end < l4 + 20:
            return
        seq = int.from_bytes(frame[l4 + 4 : l4 + 8], "big")
        isn = self._isn.get(_addresses(frame) + bytes(frame[l4 : l4 + 4]))
        self.actions.append({
            "type": "router_action", "direction": self.name, "action": action,
            "seq": seq if isn is None else (seq - isn) & 0xFFFFFFFF,
            "length": max(0, end - l4 - (frame[l4 + 12] >> 4) * 4), "flags": flags_str(frame[l4 + 13]),
            "sport": (frame[l4] << 8) | frame[l4 + 1], "dport": (frame[l4 + 2] << 8) | frame[l4 + 3],
            "router_t": round(now, 6), "note": note, "absolute": isn is None,
        })

    def blackout_left(self, now: float) -> float:
        return max(0.0, self.blackout_until - now) if self.blackout_until else 0.0

    def push(self, frame: bytearray, now: float) -> None:
        st = self.stats
        st["frames_in"] += 1
        n = len(frame)
        if _ETH + 20 <= n <= _SYN_MAX and self.record:  # a SYN? (a data frame is larger)
            i = _syn_at(frame)
            if i and i < n and frame[i] & 0x02:
                self.learn_isn(frame)
        if self.armed:
            keep = []
            for a in self.armed:
                a[0] -= len(frame)
                if a[0] < 0:  # this frame crossed the mark: it passes, the command applies to the next
                    self.fired.append(a[1])
                else:
                    keep.append(a)
            self.armed = keep
        if self.blackout_until:
            if now < self.blackout_until:
                st["blackout_drops"] += 1
                if self.record:
                    self._report(frame, "blackout", f"blackout {self._blackout_s:g} s", now)
                return
            self.blackout_until = 0.0
        k = self.knobs
        rnd = self._rng.random
        if k.loss and rnd() * 100.0 < k.loss:
            st["lost"] += 1
            if self.record:
                self._report(frame, "drop", f"loss {k.loss:g} %", now)
            return
        if k.corrupt and rnd() * 100.0 < k.corrupt:
            if self.record:  # before the bit flips: it may be one of the sequence number's
                self._report(frame, "corrupt", f"corrupt {k.corrupt:g} %: one bit flipped", now)
            corrupt_frame(frame, self._rng)
            st["corrupted"] += 1
        self._enqueue(frame, now)
        if k.dup and rnd() * 100.0 < k.dup:
            st["duplicated"] += 1
            if self.record:
                self._report(frame, "duplicate", f"dup {k.dup:g} %", now)
            self._enqueue(bytearray(frame), now)

    def _enqueue(self, frame: bytearray, now: float) -> None:
        k = self.knobs
        t = now
        if k.rate_bps:
            deps = self._departures
            while deps and deps[0] <= now:
                deps.popleft()
            if len(deps) >= k.queue:
                self.stats["queue_drops"] += 1
                if self.record:
                    self._report(frame, "queue-drop", f"queue {k.queue} frames full at {k.rate_bps / 1e6:g} Mbit/s",
                                 now)
                return
            start = max(now, self._link_free)
            t = start + len(frame) * 8.0 / k.rate_bps
            self._link_free = t
            deps.append(t)
            n = len(deps)
            self.stats["queue_len"] = n
            self.stats["queue_max"] = max(self.stats["queue_max"], n)
        if k.delay_ms or k.jitter_ms:
            d = k.delay_ms
            if k.jitter_ms:
                d += self._rng.uniform(-k.jitter_ms, k.jitter_ms)
            if d > 0:
                t += d / 1000.0
            self.delays.append(max(d, 0.0))
        t = max(t, self._last_release)  # jitter never reorders
        self._last_release = t
        self._line.append((t, frame))

    def due(self, now: float, out: list[bytearray]) -> None:
        """Append the frames due at ``now`` to ``out`` in sending order."""
        line = self._line
        reorder = self.knobs.reorder
        rnd = self._rng.random
        while line and line[0][0] <= now:
            frame = line.popleft()[1]
            if reorder and rnd() * 100.0 < reorder:
                self.stats["reordered"] += 1
                if self.record:
                    self._report(frame, "reorder", f"reorder {reorder:g} %: held back behind {REORDER_GAP} frames",
                                 now)
                self._held.append([REORDER_GAP, now + REORDER_HOLD_MAX, frame])
                continue
            out.append(frame)
            if self._held:
                self._pass_held(now, out, 1)
        if self._held:
            self._pass_held(now, out, 0)
        if self._departures:
            deps = self._departures
            while deps and deps[0] <= now:
                deps.popleft()
            self.stats["queue_len"] = len(deps)

    def _pass_held(self, now: float, out: list[bytearray], passed: int) -> None:
        keep = []
        for h in self._held:
            h[0] -= passed
            if h[0] <= 0:
                out.append(h[2])
            elif now >= h[1]:
                out.append(h[2])
                self.stats["reorder_expired"] += 1
            else:
                keep.append(h)
        self._held = keep

    def queued(self) -> int:
        return len(self._line) + len(self._held)

    def state(self, now: float) -> dict[str, Any]:
        d: dict[str, Any] = self.knobs.to_dict()
        d["blackout_s"] = round(self.blackout_left(now), 3)
        return d


# ---------------------------------------------------------------------------------------------------
# offloads (SIOCETHTOOL, legacy per-feature commands: no ethtool binary needed)

_SIOCETHTOOL = 0x8946
_ETHTOOL_SET = {"tx": 0x17, "sg": 0x19, "tso": 0x1F, "gso": 0x24, "gro": 0x2C}
_ETHTOOL_GET = {"tx": 0x16, "sg": 0x18, "tso": 0x1E, "gso": 0x23, "gro": 0x2B}


def _ethtool(ifname: str, cmd: int, data: int = 0) -> int:
    buf = ctypes.create_string_buffer(struct.pack("II", cmd, data), 8)
    ifr = struct.pack("16sP", ifname.encode(), ctypes.addressof(buf))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        fcntl.ioctl(s.fileno(), _SIOCETHTOOL, ifr)
    return int(struct.unpack("II", buf.raw[:8])[1])


def set_offloads(ifname: str, **features: bool) -> dict[str, bool]:
    """Set offloads (``tx``, ``sg``, ``tso``, ``gso``, ``gro``) of an interface in *this* namespace.

    Returns the features' values read back. Raises ImpairError if the kernel refuses.
    """
    for name, on in features.items():
        if name not in _ETHTOOL_SET:
            raise ImpairError(f"unknown offload {name!r} (known: {', '.join(_ETHTOOL_SET)})")
        try:
            _ethtool(ifname, _ETHTOOL_SET[name], int(on))
        except OSError as exc:
            raise ImpairError(f"cannot turn {name} {'on' if on else 'off'} on {ifname}: {exc.strerror}") from None
    return {name: bool(_ethtool(ifname, _ETHTOOL_GET[name])) for name in features}


_OFFLOADS_OFF = {"gro": False, "gso": False, "tso": False, "tx": False}


def prepare_lab(lab: Lab) -> None:
    """Offloads off on the lab's four interfaces, so every frame on the lab links is MTU-sized and carries
    a real checksum (what the relay needs; rawtui then verifies every checksum itself)."""
    argv_for = [
        (lab.client_ns, [lab.client_if]),
        (lab.router_ns, [lab.router_cif, lab.router_sif]),
        (lab.server_ns, [lab.server_if]),
    ]
    for ns, ifnames in argv_for:
        res = lab.run(
            ns, [sys.executable, "-m", "rawtui.lab.impair", "offloads", *ifnames],
            capture_output=True, text=True, timeout=30, env=child_env(),
        )
        if res.returncode != 0:
            raise ImpairError(f"could not turn offloads off in {ns}: {(res.stderr or res.stdout).strip()}")


def child_env() -> dict[str, str]:
    """The environment for our Python children: this rawtui importable even when it is not installed."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parent.parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


# ---------------------------------------------------------------------------------------------------
# the relay (I/O)

_ETH_P_IP = 0x0800
_ETH_P_IPV6 = 0x86DD
_SOL_PACKET = 263
_PACKET_AUXDATA = 8
_PACKET_IGNORE_OUTGOING = 23
_SO_RCVBUFFORCE = 33
_SO_SNDBUFFORCE = 32
_SO_ATTACH_FILTER = 26
_PACKET_STATISTICS = 6
_TPACKET_STATS = struct.Struct("=II")  # tp_packets, tp_drops (reading them resets them)
_TP_STATUS_CSUMNOTREADY = 0x8
_AUX = struct.Struct("=IIIHHHH")
_ANC = socket.CMSG_SPACE(_AUX.size)
_SKF_AD_PKTTYPE = 0xFFFFF000 + 4
_SIOCGIFADDR = 0x8915
ICMP_ERROR_HOP_LIMIT = 64  # the TTL / hop limit of the relay's Packet Too Big and fragmentation-needed
ICMP4_QUOTE = 576 - 20 - 8  # RFC 1812 4.3.2.3: quote as much of the packet as fits in 576 bytes

# A cBPF program as (opcode, jump-if-true, jump-if-false, k) with the jumps given as labels (a str: the
# instruction after that label; 0: the next one), resolved by _assemble.
_Insn = tuple[int, "str | int", "str | int", int]
_LD_H, _LD_W, _LD_B, _JEQ, _RET = 0x28, 0x20, 0x30, 0x15, 0x06


def _assemble(prog: list[_Insn | str]) -> tuple[bytes, int]:
    labels: dict[str, int] = {}
    insns: list[_Insn] = []
    for item in prog:
        if isinstance(item, str):
            labels[item] = len(insns)
        else:
            insns.append(item)

    def jump(target: str | int, at: int) -> int:
        off = labels[target] - at - 1 if isinstance(target, str) else target
        if not 0 <= off <= 255:
            raise ImpairError(f"relay filter: a jump of {off} instructions (too many local addresses)")
        return off

    code = b"".join(struct.pack("=HBBI", op, jump(jt, i), jump(jf, i), k) for i, (op, jt, jf, k) in enumerate(insns))
    return code, len(insns)


def _relay_filter(local_ips: list[str]) -> tuple[bytes, int]:
    """cBPF: IPv4 frames addressed to this host's MAC (PACKET_HOST) but not to one of its own IPs."""
    prog: list[_Insn | str] = [
        (_LD_H, 0, 0, 12),  # ethertype
        (_JEQ, 0, "reject", _ETH_P_IP),
        (_LD_W, 0, 0, _SKF_AD_PKTTYPE),
        (_JEQ, 0, "reject", 0),  # PACKET_HOST
        (_LD_W, 0, 0, 30),  # the IPv4 destination
    ]
    prog += [(_JEQ, "reject", 0, int.from_bytes(socket.inet_aton(ip), "big")) for ip in local_ips]
    prog += [(_RET, 0, 0, 0x40000), "reject", (_RET, 0, 0, 0)]
    return _assemble(prog)


def _relay_filter6(local_ips: list[bytes]) -> tuple[bytes, int]:
    """cBPF: IPv6 frames addressed to this host's MAC (PACKET_HOST) but to neither a multicast group nor
    one of its own addresses (neighbor discovery stays with the router's kernel, as ARP does)."""
    prog: list[_Insn | str] = [
        (_LD_H, 0, 0, 12),  # ethertype
        (_JEQ, 0, "reject", _ETH_P_IPV6),
        (_LD_W, 0, 0, _SKF_AD_PKTTYPE),
        (_JEQ, 0, "reject", 0),  # PACKET_HOST
        (_LD_B, 0, 0, 38),  # the destination's first byte
        (_JEQ, "reject", 0, 0xFF),  # multicast
    ]
    for i, ip in enumerate(local_ips):  # the 4 words of each own address: all equal -> reject
        words = struct.unpack("!4I", ip)
        for w, word in enumerate(words):
            prog.append((_LD_W, 0, 0, 38 + 4 * w))
            prog.append((_JEQ, "reject" if w == 3 else 0, f"not{i}", word))
        prog.append(f"not{i}")
    prog += [(_RET, 0, 0, 0x40000), "reject", (_RET, 0, 0, 0)]
    return _assemble(prog)


def _own_ip6() -> list[tuple[bytes, str, int]]:
    """(address, interface, scope) of every IPv6 address of this namespace (/proc/net/if_inet6; scope
    0 is global, 0x20 link-local)."""
    try:
        text = Path("/proc/net/if_inet6").read_text()
    except OSError:  # IPv6 not in this kernel
        return []
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 6:
            out.append((bytes.fromhex(parts[0]), parts[5], int(parts[3], 16)))
    return out


def _own_ip4(ifname: str) -> bytes | None:
    """The (first) IPv4 address of ``ifname``, None without one (SIOCGIFADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            res = fcntl.ioctl(s.fileno(), _SIOCGIFADDR, struct.pack("256s", ifname.encode()[:15]))
        except OSError:
            return None
    return bytes(res[20:24])


def _packet_socket(ifname: str, ethertype: int, bpf: tuple[bytes, int], rcvbuf: int) -> tuple[socket.socket, Any]:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ethertype))
    code, count = bpf
    prog = ctypes.create_string_buffer(code, len(code))
    sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, struct.pack("HL", count, ctypes.addressof(prog)))
    sock.bind((ifname, ethertype))
    for opt, fallback in ((_SO_RCVBUFFORCE, socket.SO_RCVBUF), (_SO_SNDBUFFORCE, socket.SO_SNDBUF)):
        try:
            sock.setsockopt(socket.SOL_SOCKET, opt, rcvbuf)
        except PermissionError:
            sock.setsockopt(socket.SOL_SOCKET, fallback, rcvbuf)
    sock.setsockopt(_SOL_PACKET, _PACKET_AUXDATA, 1)
    with contextlib.suppress(OSError):
        sock.setsockopt(_SOL_PACKET, _PACKET_IGNORE_OUTGOING, 1)
    return sock, prog


class _Port:
    """One router interface: an AF_PACKET socket for IPv4 frames (and, with ``local_ips6``, one for IPv6
    frames: each family's socket and filter stay as simple as IPv4's alone), and where frames leaving it
    go. Frames of both families leave through ``sock``: what a raw socket sends is the frame as given."""

    def __init__(self, ifname: str, local_ips: list[str], rcvbuf: int, local_ips6: list[bytes] | None = None) -> None:
        self.ifname = ifname
        self.sock, self._filter = _packet_socket(ifname, _ETH_P_IP, _relay_filter(local_ips), rcvbuf)
        self.sock6: socket.socket | None = None
        self.fd6 = -1
        if local_ips6 is not None:
            self.sock6, self._filter6 = _packet_socket(ifname, _ETH_P_IPV6, _relay_filter6(local_ips6), rcvbuf)
            self.fd6 = self.sock6.fileno()
        self.mac = _read_mac(ifname)
        self.mtu = int(Path(f"/sys/class/net/{ifname}/mtu").read_text())
        self.fd = self.sock.fileno()
        # the router's own addresses on this link: the source of its ICMP errors to the hosts behind it
        self.addr4 = _own_ip4(ifname)
        mine = sorted((scope, addr) for addr, name, scope in _own_ip6() if name == ifname)  # global first
        self.addr6 = mine[0][1] if mine else None
        self.header = b""  # dst MAC + src MAC for frames sent out of this port
        self.pipe: Pipe | None = None  # the pipe for frames *leaving* through this port
        self.aux_always = False  # read PACKET_AUXDATA for every frame (an offloaded checksum was seen)
        self.count = 0

    def sockets(self) -> list[socket.socket]:
        return [self.sock] if self.sock6 is None else [self.sock, self.sock6]

    def send(self, frame: bytes | bytearray | memoryview) -> bool:
        try:
            self.sock.send(frame)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as exc:
            if exc.errno in (errno.ENOBUFS, errno.EMSGSIZE, errno.ENETDOWN, errno.ENXIO):
                return False
            raise
        return True

    def close(self) -> None:
        for s in self.sockets():
            s.close()


def too_big_reply(frame: bytes | bytearray | memoryview, mtu: int, header: bytes, addr4: bytes | None,
                  addr6: bytes | None) -> bytes | None:
    """The router's answer to a frame too large for the next link's ``mtu``, as an Ethernet frame behind
    ``header`` (the sender's MAC and ours): ICMPv6 Packet Too Big (RFC 4443 3.2, RFC 8200 5) from
    ``addr6``, or for an IPv4 packet with DF set ICMP fragmentation needed with the next-hop MTU (RFC
    1191 4) from ``addr4``. None when no answer is due: IPv4 without DF (the relay splits it), no own
    address to answer from, or the packet is itself an ICMP error (RFC 4443 2.4 (e), RFC 1812 4.3.2.7)."""
    frame = bytes(frame)
    lay = _layout(frame)
    if lay is None:
        return None
    proto, l4, end, later = lay
    if _is_ipv6(frame):
        sender = frame[_ETH + 8 : _ETH + 24]
        if addr6 is None or sender[0] == 0xFF or sender == bytes(16) or (
                proto == NH_ICMPV6 and not later and l4 < end and frame[l4] < 128):
            return None
        msg = build_icmpv6(PacketTooBig(mtu, frame[_ETH:end]), addr6, sender)
        return header + b"\x86\xdd" + build_ipv6(addr6, sender, NH_ICMPV6, msg, hop_limit=ICMP_ERROR_HOP_LIMIT)
    if not frame[_ETH + 6] & 0x40 or addr4 is None:  # no DF: may be fragmented (the relay splits TCP)
        return None
    if proto == PROTO_ICMP and not later and l4 < end and frame[l4] not in (0, 8):  # only echoes
        return None
    quote = frame[_ETH : min(end, _ETH + ICMP4_QUOTE)]
    sender = frame[_ETH + 12 : _ETH + 16]
    icmp = build_icmp(fragmentation_needed(mtu, quote))
    return header + b"\x08\x00" + build_ipv4(addr4, sender, PROTO_ICMP, icmp, ttl=ICMP_ERROR_HOP_LIMIT,
                                             dont_fragment=False)


def _read_mac(ifname: str) -> bytes:
    text = Path(f"/sys/class/net/{ifname}/address").read_text().strip()
    return bytes.fromhex(text.replace(":", ""))


def _mac(text: str) -> bytes:
    b = bytes.fromhex(text.replace(":", "").replace("-", ""))
    if len(b) != 6:
        raise ImpairError(f"bad MAC address {text!r}")
    return b


def _sysctl(path: str, value: str | None = None) -> str | None:
    """Read (and with ``value``, set) a /proc/sys file; its old value, None when it does not exist."""
    p = Path(path)
    try:
        old = p.read_text().strip()
    except FileNotFoundError:
        return None
    if value is not None:
        p.write_text(value + "\n")
    return old


_FORWARDING = ("/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv6/conf/all/forwarding")


def _forwarding(values: dict[str, str | None]) -> dict[str, str | None]:
    """Set the kernel's forwarding switches (path -> value; None: leave it); their old values."""
    return {path: _sysctl(path, value) if value is not None else None for path, value in values.items()}


class Relay:
    """Forward IPv4 (and with ``ipv6``, IPv6) between the router's client-side and server-side interfaces
    through two Pipes (one per direction, shared by both families)."""

    def __init__(
        self, *, cif: str, sif: str, client_mac: str, server_mac: str, local_ips: list[str],
        control: str | None = None, rcvbuf: int = 32 << 20, seed: int | None = None, ipv6: bool = False,
    ) -> None:
        rng = self.rng = random.Random(seed)  # the pipes' one generator: the "seed" command restarts it
        self.pipes = {"down": Pipe("down", rng), "up": Pipe("up", rng)}
        ips4 = [ip for ip in local_ips if ":" not in ip]
        ips6: list[bytes] | None = None
        if ipv6:  # the given ones and every address of the router's own (link-local ones included)
            ips6 = list(dict.fromkeys([ip6_bytes(ip) for ip in local_ips if ":" in ip]
                                      + [addr for addr, _, _ in _own_ip6()]))
        self.ipv6 = ipv6
        self.c = _Port(cif, ips4, rcvbuf, ips6)  # faces the client: frames from it go up
        self.s = _Port(sif, ips4, rcvbuf, ips6)  # faces the server: frames from it go down
        self.c.header = _mac(client_mac) + self.c.mac
        self.s.header = _mac(server_mac) + self.s.mac
        self.c.pipe = self.pipes["down"]  # leaving through c = travelling down
        self.s.pipe = self.pipes["up"]
        self.hub: ControlHub | None = None
        if control:
            from rawtui.lab.control import ControlHub

            self.hub = ControlHub(control, self._command)
            self._broadcast_knobs("no impairment yet: a perfect link")
        for p in self.pipes.values():
            p.record = self.hub is not None  # nobody to tell: no reports
        self._stop = False
        self._last_stats: dict[str, dict[str, int]] = {}
        self._buf = bytearray(1 << 18)
        self._view = memoryview(self._buf)
        self._old_forward: dict[str, str | None] = {}

    # -- control ----------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        now = time.monotonic()
        return {d: p.state(now) for d, p in self.pipes.items()}

    def stats(self) -> dict[str, dict[str, int]]:
        # frames from the client go up (they leave through s), frames from the server go down
        for src, dst in ((self.c, self.s), (self.s, self.c)):
            assert dst.pipe is not None
            for sock in src.sockets():
                with contextlib.suppress(OSError):
                    raw = sock.getsockopt(_SOL_PACKET, _PACKET_STATISTICS, _TPACKET_STATS.size)
                    dst.pipe.stats["rx_drops"] += _TPACKET_STATS.unpack(raw)[1]
        out = {}
        for d, p in self.pipes.items():
            s = dict(p.stats)
            s["queued"] = p.queued()
            out[d] = s
        return out

    def _dirs(self, cmd: dict[str, Any]) -> list[str]:
        d = cmd.get("dir", "both")
        if d == "both":
            return list(DIRECTIONS)
        if d not in DIRECTIONS:
            raise ImpairError(f"bad dir {d!r}: use down, up or both")
        return [d]

    def _command(self, cmd: dict[str, Any]) -> dict[str, Any]:
        """Apply one control command; returns the reply (raises ImpairError / ValueError on bad input)."""
        name = cmd.get("cmd")
        now = time.monotonic()
        if name == "set":
            changes = {k: v for k, v in cmd.items() if k not in ("cmd", "dir", "id", "note")}
            dirs = self._dirs(cmd)
            new = {d: self.pipes[d].knobs.updated(changes) for d in dirs}  # validate all, then apply
            for d, k in new.items():
                self.pipes[d].set_knobs(k)
            note = cmd.get("note") or _describe_change(dirs, changes)
            self._broadcast_knobs(note)
            return {"knobs": self.state()}
        if name == "reset":
            for p in self.pipes.values():
                p.set_knobs(Knobs())
                p.blackout(0, now)
                p.armed.clear()
            self._broadcast_knobs(cmd.get("note") or "all knobs reset: a perfect link")
            return {"knobs": self.state()}
        if name == "blackout":
            seconds = cmd.get("seconds")
            if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds <= 3600:
                raise ImpairError("blackout: seconds must be a number between 0 and 3600")
            dirs = self._dirs(cmd)
            for d in dirs:
                self.pipes[d].blackout(float(seconds), now)
            what = "both directions" if len(dirs) == 2 else dirs[0]
            note = cmd.get("note") or (f"blackout: every frame dropped ({what}) for {seconds:g} s"
                                        if seconds else "blackout cancelled")
            self._broadcast_knobs(note)
            return {"knobs": self.state()}
        if name == "arm":
            after, then = cmd.get("after_bytes"), cmd.get("then")
            if isinstance(after, bool) or not isinstance(after, int) or after < 0:
                raise ImpairError("arm: after_bytes must be a whole number of bytes >= 0")
            if not isinstance(then, dict) or then.get("cmd") not in ARMABLE:
                raise ImpairError(f"arm: then must be a command object, one of {', '.join(ARMABLE)}")
            dirs = self._dirs(cmd)
            if len(dirs) != 1:
                raise ImpairError("arm: dir must be down or up (whose bytes are counted)")
            self.pipes[dirs[0]].arm(after, dict(then))
            return {"knobs": self.state(), "armed": {d: len(p.armed) for d, p in self.pipes.items()}}
        if name == "state":
            self._publish_actions()  # every action these counters count is reported before the reply
            return {"knobs": self.state(), "stats": self.stats()}
        if name == "seed":  # the same random choices again, from here on (a benchmark's runs face one pattern)
            seed = cmd.get("seed")
            if isinstance(seed, bool) or not isinstance(seed, int):
                raise ImpairError("seed: a whole number")
            self.rng.seed(seed)
            return {"knobs": self.state()}
        if name == "delays":
            dirs = self._dirs(cmd)
            delays = {d: list(self.pipes[d].delays) for d in dirs}
            if cmd.get("clear"):
                for d in dirs:
                    self.pipes[d].delays.clear()
            return {"delays": delays}
        raise ImpairError(f"unknown command {name!r} (set, reset, blackout, arm, state, delays, seed)")

    def _fire(self, pipe: Pipe) -> None:
        """Apply the commands ``pipe`` armed and whose moment has come (a bad one is reported, not raised:
        it was checked when armed)."""
        fired, pipe.fired = pipe.fired, []
        for cmd in fired:
            try:
                self._command(cmd)
            except (ImpairError, ValueError) as exc:
                print(f"armed command {cmd}: {exc}", file=sys.stderr, flush=True)

    def _broadcast_knobs(self, note: str) -> None:
        if self.hub is not None:
            self.hub.set_knobs({"type": "knobs", **self.state(), "note": note})

    def _publish_actions(self) -> None:
        """Publish what the pipes did to TCP frames since the last call (``router_action`` messages)."""
        msgs: list[dict[str, Any]] = []
        for p in self.pipes.values():
            if p.actions:
                msgs += p.actions
                p.actions = []
        if self.hub is not None and msgs:
            self.hub.publish_many(msgs)

    def _broadcast_stats(self) -> None:
        if self.hub is None:
            return
        st = self.stats()
        if st != self._last_stats:
            self._last_stats = st
            self.hub.publish({"type": "stats", **st})

    # -- the loop ---------------------------------------------------------------------------------

    def stop(self) -> None:
        self._stop = True

    def run(self, ready: Any = None) -> None:
        # every frame crosses the router once, through the relay: the kernel's forwarding is off meanwhile
        self._old_forward = _forwarding({_FORWARDING[0]: "0", _FORWARDING[1]: "0" if self.ipv6 else None})
        try:
            if ready is not None:
                ready()
            self._loop()
        finally:
            _forwarding(self._old_forward)
            if self.hub is not None:
                self.hub.close()
            self.c.close()
            self.s.close()

    def _loop(self) -> None:
        ports = {self.c.fd: (self.c, self.s, False), self.s.fd: (self.s, self.c, False)}
        if self.ipv6:
            ports |= {self.c.fd6: (self.c, self.s, True), self.s.fd6: (self.s, self.c, True)}
        port_fds = list(ports)
        pipes = self.pipes
        out: list[bytearray] = []
        next_stats = time.monotonic() + STATS_EVERY
        blackout_on = False
        while not self._stop:
            now = time.monotonic()
            wake = next_stats
            for port in (self.c, self.s):
                pipe = port.pipe
                assert pipe is not None
                if pipe._line or pipe._held:
                    self._flush(port, now, out)
                dl = pipe.next_deadline
                if dl is not None and dl < wake:
                    wake = dl
            on = False
            for p in pipes.values():
                if p.blackout_until:
                    if now >= p.blackout_until:
                        p.blackout_until = 0.0  # over (else its deadline, now past, would make us spin)
                    else:
                        on = True
            if blackout_on and not on:
                self._broadcast_knobs("blackout over: frames flow again")
            blackout_on = on
            if pipes["down"].actions or pipes["up"].actions:
                self._publish_actions()  # before the stats: a subscriber never sees a count before its reports
            if now >= next_stats:
                self._broadcast_stats()
                next_stats = now + STATS_EVERY
            fds = list(port_fds)
            wfds: list[int] = []
            if self.hub is not None:
                fds += self.hub.fds()
                wfds = self.hub.wfds()
            timeout = max(0.0, wake - time.monotonic())
            try:
                readable, writable, _ = select.select(fds, wfds, [], timeout)
            except InterruptedError:
                continue
            for fd in readable:
                route = ports.get(fd)
                if route is not None:
                    self._drain(route[0], route[1], out, route[2])
                elif self.hub is not None:
                    self.hub.handle(fd)
            if self.hub is not None:
                for fd in writable:
                    self.hub.handle_write(fd)

    def _flush(self, port: _Port, now: float, out: list[bytearray]) -> None:
        pipe = port.pipe
        assert pipe is not None
        pipe.due(now, out)
        if out:
            st = pipe.stats
            for f in out:
                if port.send(f):
                    st["frames_out"] += 1
                    st["bytes_out"] += len(f)
                else:
                    st["send_errors"] += 1
            out.clear()

    def _drain(self, src: _Port, dst: _Port, out: list[bytearray], v6: bool = False) -> None:
        """Read up to BATCH frames of one family (``v6``: src's IPv6 socket) from ``src`` and forward them
        out of ``dst`` through its pipe.

        The fast path (no knob on this direction, nothing queued) rewrites the frame in the receive buffer
        and sends it from there: no allocation (a frame small enough to be a SYN is looked at, for the ISN
        the pipe's reports need). Checksum-offload status (PACKET_AUXDATA) is read on every 32nd frame
        only, and on every frame once one needed its checksum completed. The TTL (IPv4, with the header
        checksum updated) or hop limit (IPv6: no header checksum) is decremented on both paths.

        A frame larger than ``dst``'s MTU: a super-frame (larger than ``src``'s MTU too: GRO or TSO, never
        on a wire) is split like GSO; a wire-sized one is answered, as a router would, with ICMPv6 Packet
        Too Big or (IPv4 with DF) ICMP fragmentation needed, and counted as ``too_big``.
        """
        sock = src.sock6 if v6 else src.sock
        assert sock is not None
        recv_into = sock.recv_into
        recvmsg_into = sock.recvmsg_into
        buf, view = self._buf, self._view
        bufs = [buf]
        pipe = dst.pipe
        assert pipe is not None
        st = pipe.stats
        header = dst.header
        limit = _ETH + dst.mtu
        in_limit = _ETH + src.mtu
        raw_send = dst.sock.send
        idle = pipe.idle
        now = time.monotonic()
        aux = src.aux_always
        count = src.count
        dontwait = socket.MSG_DONTWAIT
        syn_max = _SYN_MAX
        proto_at = _IP6_NH if v6 else _ETH + 9  # the upper-layer protocol (IPv6: without extension headers)
        minimum = _ETH + (_IP6_LEN if v6 else 20)
        fwd = nbytes = errors = 0
        for _ in range(BATCH):
            not_ready = False
            try:
                if aux or not count & 31:
                    n, anc, _flags, _addr = recvmsg_into(bufs, _ANC, dontwait)
                    for level, kind, data in anc:
                        if level == _SOL_PACKET and kind == _PACKET_AUXDATA:
                            not_ready = bool(_AUX.unpack_from(data)[0] & _TP_STATUS_CSUMNOTREADY)
                    if not_ready:
                        src.aux_always = aux = True
                else:
                    n = recv_into(buf, 0, dontwait)
            except (BlockingIOError, InterruptedError):
                break
            count += 1
            if n < minimum:
                continue
            if v6:
                hop = buf[21]
                if hop <= 1:
                    st["ttl_expired"] += 1
                    continue
                buf[0:12] = header
                buf[21] = hop - 1
            else:
                ttl = buf[22]
                if ttl <= 1:
                    st["ttl_expired"] += 1
                    continue
                buf[0:12] = header
                buf[22] = ttl - 1
                c = ((buf[24] << 8) | buf[25]) + 0x100  # RFC 1141 incremental update for TTL - 1
                c = (c & 0xFFFF) + (c >> 16)
                buf[24] = c >> 8
                buf[25] = c & 0xFF
            if idle and n <= limit and not not_ready:
                if n <= syn_max and buf[proto_at] == 6:  # a TCP SYN? (a data frame is larger: one comparison)
                    i = 67 if v6 else 27 + ((buf[14] & 0x0F) << 2)  # the flags, as _syn_at finds them
                    if i < n and buf[i] & 0x02:
                        pipe.learn_isn(view[:n])
                fwd += 1
                try:
                    raw_send(view[:n])
                    nbytes += n
                except OSError:
                    errors += 1
                continue
            if limit < n <= in_limit and self._too_big(src, dst, view[:n], st):
                continue
            if n > limit:
                frames = segment_tcp(view[:n], dst.mtu)
                st["segmented"] += 1
                if not frames:
                    st["send_errors"] += 1
                    continue
            else:
                f = bytearray(view[:n])
                if not_ready:
                    fix_l4_checksum(f)
                    st["csum_fixed"] += 1
                frames = [f]
            for f in frames:
                if idle:
                    pipe.learn_isn(f)  # (rare: a super-frame, or a checksum to complete)
                    self._send_direct(dst, f, st)
                else:
                    pipe.push(f, now)
                    if pipe.fired:
                        self._fire(pipe)
        src.count = count
        if fwd:
            st["frames_in"] += fwd
            st["frames_out"] += fwd - errors
            st["bytes_out"] += nbytes
            st["send_errors"] += errors
        if not idle:
            self._flush(dst, time.monotonic(), out)

    @staticmethod
    def _too_big(src: _Port, dst: _Port, frame: memoryview, st: dict[str, int]) -> bool:
        """Answer a wire-sized frame too large for ``dst`` back out of ``src`` (:func:`too_big_reply`);
        False when no answer is due (IPv4 without DF: the caller splits it)."""
        reply = too_big_reply(frame, dst.mtu, src.header, src.addr4, src.addr6)
        if reply is None:
            return False
        st["frames_in"] += 1
        st["too_big"] += 1
        if not src.send(reply):
            st["send_errors"] += 1
        return True

    @staticmethod
    def _send_direct(dst: _Port, f: bytearray, st: dict[str, int]) -> None:
        st["frames_in"] += 1
        if dst.send(f):
            st["frames_out"] += 1
            st["bytes_out"] += len(f)
        else:
            st["send_errors"] += 1


def _describe_change(dirs: list[str], changes: dict[str, Any]) -> str:
    where = "both directions" if len(dirs) == 2 else dirs[0]
    parts = []
    for k, v in changes.items():
        if k in ("loss", "reorder", "dup", "corrupt"):
            parts.append(f"{k} {v:g} %")
        elif k in ("delay_ms", "jitter_ms"):
            parts.append(f"{k[:-3]} {v:g} ms")
        elif k == "rate_bps":
            parts.append("rate unlimited" if not v else f"rate {v / 1e6:g} Mbit/s")
        elif k == "queue":
            parts.append(f"queue {v} frames")
    return f"{where}: " + (", ".join(parts) if parts else "no change")


# ---------------------------------------------------------------------------------------------------
# starting it from the lab


def start_relay(lab: Lab, control: str, *, seed: int | None = None, prepare: bool = True,
                timeout: float = 20.0) -> subprocess.Popen[str]:
    """Turn offloads off (unless ``prepare`` is False), start the relay in the router namespace serving
    the control socket at ``control``; return once it forwards (the process is stopped by lab.destroy)."""
    if prepare:
        prepare_lab(lab)
    argv = [
        sys.executable, "-m", "rawtui.lab.impair", "relay",
        "--cif", lab.router_cif, "--sif", lab.router_sif,
        "--client-mac", lab.mac(lab.client_ns, lab.client_if),
        "--server-mac", lab.mac(lab.server_ns, lab.server_if),
        "--local-ip", lab.router_client_ip, "--local-ip", lab.router_server_ip,
        "--control", control,
    ]
    if lab.ipv6:
        argv += ["--ipv6", "--local-ip", lab.router_client_ip6, "--local-ip", lab.router_server_ip6]
    if seed is not None:
        argv += ["--seed", str(seed)]
    err = tempfile.TemporaryFile()  # noqa: SIM115 - stderr to a file: never a pipe nobody reads
    try:
        proc = lab.popen(lab.router_ns, argv, stdout=subprocess.PIPE, stderr=err, text=True, env=child_env())
        assert proc.stdout is not None
        deadline = time.monotonic() + timeout
        line = ""
        while time.monotonic() < deadline:
            r, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
            if r:
                line = proc.stdout.readline()
                break
        if not line.startswith("ready"):
            lab.stop(proc)
            err.seek(0)
            text = err.read().decode(errors="replace")
            raise ImpairError(f"the impairment relay did not start: {(text or line).strip()[-800:]}")
    finally:
        err.close()
    return proc


# ---------------------------------------------------------------------------------------------------
# command line (run inside the lab's namespaces)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m rawtui.lab.impair", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("relay", help="forward and impair IPv4 (and IPv6) between two interfaces (router namespace)")
    r.add_argument("--cif", required=True, help="interface facing the client")
    r.add_argument("--sif", required=True, help="interface facing the server")
    r.add_argument("--client-mac", required=True)
    r.add_argument("--server-mac", required=True)
    r.add_argument("--local-ip", action="append", default=[],
                   help="the router's own addresses (not relayed; with --ipv6 every address of the namespace "
                   "is its own too)")
    r.add_argument("--ipv6", action="store_true", help="relay IPv6 too (the kernel's IPv6 forwarding is off meanwhile)")
    r.add_argument("--control", help="serve the control socket at this path")
    r.add_argument("--seed", type=int, help="seed the random choices (reproducible runs)")
    o = sub.add_parser("offloads", help="turn TSO/GSO/GRO/TX checksum offload off (this namespace)")
    o.add_argument("ifnames", nargs="+")
    ns = p.parse_args(argv)
    if ns.command == "offloads":
        try:
            for ifname in ns.ifnames:
                got = set_offloads(ifname, **_OFFLOADS_OFF)
                still = [k for k, v in got.items() if v]
                if still:
                    print(f"{ifname}: could not turn off {', '.join(still)}", file=sys.stderr)
                    return 1
        except ImpairError as exc:
            print(str(exc), file=sys.stderr)
            return 1
        return 0
    try:
        relay = Relay(cif=ns.cif, sif=ns.sif, client_mac=ns.client_mac, server_mac=ns.server_mac,
                      local_ips=ns.local_ip, control=ns.control, seed=ns.seed, ipv6=ns.ipv6)
    except (OSError, ValueError, ImpairError) as exc:
        print(f"cannot start the relay: {exc}", file=sys.stderr)
        return 1

    def on_signal(signum: int, frame: FrameType | None) -> None:
        relay.stop()

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    relay.run(ready=lambda: print(f"ready {ns.cif}<->{ns.sif} control={ns.control}", flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
