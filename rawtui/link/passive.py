"""A receive-only AF_PACKET socket: every frame of one interface, both directions, with the kernel's
timestamp, for watching connections that other programs make (``rawtui watch``).

It sends nothing, ever: the class has no way to write a frame, installs no firewall rule and attaches
no filter. Frames this host sends (curl's half of the conversation) come with ``outgoing`` set (the
kernel's ``PACKET_OUTGOING``); the ones it receives without. Each frame carries the kernel's receive
timestamp (``SO_TIMESTAMPNS``) and what the kernel knows about its checksum (``PACKET_AUXDATA``: frames
sent by this host usually carry a checksum the NIC would fill in, ``CSUM_NOT_READY``).

There is no backpressure on a tap: a reader that falls behind loses frames in the kernel. The socket's
buffer is forced large (tens of MB) and :meth:`PassiveSocket.kernel_drops` says how many were lost, so a
watcher can say its picture has holes instead of pretending otherwise.
"""

from __future__ import annotations

import select
import socket
import struct
from dataclasses import dataclass
from pathlib import Path

from rawtui.errors import LinkError, PrivilegeError
from rawtui.link.afpacket import (
    CSUM_KERNEL_VALID,
    CSUM_NOT_READY,
    CSUM_UNKNOWN,
    ETH_P_ALL,
    PACKET_AUXDATA,
    PACKET_OUTGOING,
    PACKET_STATISTICS,
    SO_RCVBUFFORCE,
    SOL_PACKET,
    TP_STATUS_CSUM_VALID,
    TP_STATUS_CSUMNOTREADY,
)
from rawtui.link.closing import Closing

__all__ = ["PassiveFrame", "PassiveSocket"]

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
SCM_TIMESTAMPNS = SO_TIMESTAMPNS
BUFFER_SIZE = 256 * 1024  # a GRO/TSO super-frame is at most ~64 KB; room to spare
_AUXDATA = struct.Struct("=IIIHHHH")  # struct tpacket_auxdata: tp_status first
_TIMESPEC = struct.Struct("=qq")  # struct timespec on 64-bit Linux
_ANCILLARY = socket.CMSG_SPACE(_AUXDATA.size) + socket.CMSG_SPACE(_TIMESPEC.size)
_TPACKET_STATS = struct.Struct("=II")
ARPHRD_LOOPBACK = 772


def _is_loopback(ifname: str) -> bool:
    try:
        return Path(f"/sys/class/net/{ifname}/type").read_text().strip() == str(ARPHRD_LOOPBACK)
    except OSError:
        return ifname == "lo"


@dataclass(frozen=True, slots=True)
class PassiveFrame:
    """One frame as the tap saw it: its bytes (a copy), the kernel's timestamp (seconds since the epoch),
    whether this host sent it, its checksum state (``CSUM_*`` of :mod:`rawtui.link.afpacket`) and its
    interface index."""

    data: bytes
    ts: float
    outgoing: bool
    csum: int = CSUM_UNKNOWN
    ifindex: int = 0


class PassiveSocket(Closing):
    """A non-blocking, receive-only AF_PACKET socket on one interface (all protocols, both directions)."""

    def __init__(self, ifname: str, rcvbuf: int = 64 << 20) -> None:
        self.ifname = ifname
        try:
            self.ifindex = socket.if_nametoindex(ifname)
        except OSError:
            raise LinkError(f"unknown interface '{ifname}'") from None
        try:
            # protocol 0: nothing is queued until bind() names the interface and ETH_P_ALL
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        except PermissionError:
            raise PrivilegeError(
                "watching an interface needs root or CAP_NET_RAW: run with sudo, or grant CAP_NET_RAW"
            ) from None
        try:
            try:
                sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, rcvbuf)
            except PermissionError:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            sock.bind((ifname, ETH_P_ALL))  # CPython puts the protocol in network order
        except OSError as exc:
            sock.close()
            raise LinkError(f"cannot open a raw socket on '{ifname}': {exc.strerror}") from None
        sock.setblocking(False)
        self.loopback = _is_loopback(ifname)
        self._sock = sock
        self._buffer = bytearray(BUFFER_SIZE)
        self.frames = 0  # frames read so far
        self.frames_out = 0  # ...of which this host sent

    def recv(self) -> PassiveFrame | None:
        """The next queued frame, or None when there is none."""
        while True:
            try:
                size, ancillary, _flags, address = self._sock.recvmsg_into([self._buffer], _ANCILLARY)
            except (BlockingIOError, InterruptedError):
                return None
            if not (self.loopback and address[2] == PACKET_OUTGOING):
                break
            # on loopback every frame is seen twice, going out and coming in: the second copy is kept
        ts = 0.0
        csum = CSUM_UNKNOWN
        for level, kind, data in ancillary:
            if level == SOL_PACKET and kind == PACKET_AUXDATA and len(data) >= _AUXDATA.size:
                status = _AUXDATA.unpack_from(data)[0]
                if status & TP_STATUS_CSUMNOTREADY:
                    csum = CSUM_NOT_READY
                elif status & TP_STATUS_CSUM_VALID:
                    csum = CSUM_KERNEL_VALID
            elif level == socket.SOL_SOCKET and kind == SCM_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
                sec, nsec = _TIMESPEC.unpack_from(data)
                ts = sec + nsec / 1e9
        outgoing = address[2] == PACKET_OUTGOING
        self.frames += 1
        self.frames_out += outgoing
        return PassiveFrame(bytes(self._buffer[:size]), ts, outgoing, csum, self.ifindex)

    def wait(self, timeout: float) -> bool:
        """Whether a frame is queued, waiting up to ``timeout`` seconds for one."""
        try:
            return bool(select.select([self._sock], [], [], timeout)[0])
        except InterruptedError:
            return False

    def kernel_drops(self) -> int:
        """Frames the kernel dropped because the reader fell behind, since the last call (reading resets)."""
        try:
            raw = self._sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, _TPACKET_STATS.size)
        except OSError:
            return 0
        return int(_TPACKET_STATS.unpack(raw[: _TPACKET_STATS.size])[1])

    def fileno(self) -> int:
        return self._sock.fileno()

    def close(self) -> None:
        self._sock.close()

