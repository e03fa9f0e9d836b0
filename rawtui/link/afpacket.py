"""A Linux AF_PACKET raw socket bound to one interface: the stack's only way to send and receive frames.

Frames go out exactly as the caller built them and come in whole (up to ~65 KB GRO/TSO super-frames),
each with what the kernel knows about its checksum. A classic BPF filter keeps everything except the next
hop's resolution (ARP, or ICMPv6's neighbor discovery), the routers' ICMP errors and the one TCP
connection's frames in the kernel.

Receiving uses a PACKET_RX_RING (TPACKET_V2) shared with the kernel through mmap: the kernel writes each
frame into the next 2 KB slot with a status word (ready, checksum state), rawtui reads it in place and
hands the slot back, so a frame costs no system call (~2 us instead of ~6 us for recvmsg with
PACKET_AUXDATA, measured). A frame too big for a slot (a super-frame) is also queued whole on the socket
(PACKET_COPY_THRESH) and read from there, in order. Where the ring cannot be set up, recvmsg with
PACKET_AUXDATA does the same job.

A layer-3 interface (tun, WireGuard, PPP: :class:`Medium` IP, decided from its link type) gets a
SOCK_DGRAM socket: the kernel hands over and takes bare IP packets (no link header, the filter reads the
IP header at offset 0), and each packet is sent to an address naming its protocol (IPv4 or IPv6).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import ipaddress
import mmap
import os
import socket
import struct
from collections import deque

from rawtui.aside import Aside
from rawtui.errors import LinkError, PrivilegeError
from rawtui.link.closing import Closing
from rawtui.link.medium import link_type_name, medium_of
from rawtui.stack.events import Medium

# <linux/if_ether.h>, <linux/if_packet.h>, <asm-generic/socket.h>, <linux/sockios.h>
ETH_P_ALL = 0x0003
ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
ETH_P_8021Q = 0x8100
ETH_P_IPV6 = 0x86DD
SOL_PACKET = 263
PACKET_AUXDATA = 8
PACKET_RX_RING = 5
PACKET_STATISTICS = 6
PACKET_COPY_THRESH = 7
PACKET_VERSION = 10
TPACKET_V2 = 1
PACKET_IGNORE_OUTGOING = 23
PACKET_OUTGOING = 4  # sll_pkttype of a frame this host sent
SO_RCVBUFFORCE = 33
SO_ATTACH_FILTER = 26
SIOCGIFHWADDR = 0x8927
SKF_AD_PROTOCOL = -0x1000  # SKF_AD_OFF + SKF_AD_PROTOCOL: a BPF load of the packet's protocol (skb->protocol)

TP_STATUS_KERNEL = 0x0
TP_STATUS_USER = 0x1
TP_STATUS_COPY = 0x2
TP_STATUS_CSUMNOTREADY = 0x8
TP_STATUS_VLAN_VALID = 0x10
TP_STATUS_CSUM_VALID = 0x80

# What recv() says about a frame's checksums.
CSUM_UNKNOWN = 0  # the kernel says nothing: verify it yourself
CSUM_NOT_READY = 1  # checksum offload: not computed yet, the bytes on hand cannot be verified
CSUM_KERNEL_VALID = 2  # the kernel (or the NIC) already verified it

RECV_BUFFER_SIZE = 256 * 1024
_AUXDATA = struct.Struct("=IIIHHHH")  # struct tpacket_auxdata
_ANCILLARY_SIZE = socket.CMSG_SPACE(_AUXDATA.size)

# The receive ring: RING_FRAMES slots of RING_SLOT bytes (a tpacket2_hdr, a sockaddr_ll, an MTU frame),
# in blocks of RING_BLOCK bytes (physically contiguous kernel memory: keep it small).
RING_SLOT = 2048
RING_BLOCK = 64 * 1024
RING_FRAMES = 4096  # 8 MB: ~6 MB of MTU frames waiting, ~0.5 s at 100 Mbit/s
_TPACKET2_HDR = struct.Struct("=IIIHH")  # tp_status, tp_len, tp_snaplen, tp_mac, tp_net (of tpacket2_hdr)
_STATUS = struct.Struct("=I")
_SLL_PKTTYPE = 32 + 10  # sockaddr_ll follows the 32-byte tpacket2_hdr; sll_pkttype is its 11th byte
_TPACKET_STATS = struct.Struct("=II")  # struct tpacket_stats: tp_packets, tp_drops

# Classic BPF opcodes (<linux/filter.h>)
_LD_W_ABS = 0x20
_LD_H_ABS = 0x28
_LD_B_ABS = 0x30
_LD_H_IND = 0x48
_LD_B_IND = 0x50
_LDX_B_MSH = 0xB1
_JEQ_K = 0x15
_JSET_K = 0x45
_RET_K = 0x06
_ACCEPT = 0xFFFF_FFFF
_REJECT = 0

BpfInsn = tuple[int, int, int, int]  # (code, jt, jf, k), as in struct sock_filter
_Asm = tuple[int, str | None, str | None, int]  # jt/jf as labels; None = next instruction
_JUMP_ACCEPT: _Asm = (_JEQ_K, "accept", "accept", 0)  # both branches jump: an unconditional jump
_JUMP_REJECT: _Asm = (_JEQ_K, "reject", "reject", 0)
_ICMP_UNREACHABLE = 3  # ICMP type destination unreachable (code 4: fragmentation needed)
_NH_ICMPV6 = 58
_NH_EXTENSIONS = (0, 43, 44, 60)  # hop-by-hop, routing, fragment, destination options (RFC 8200)


def build_filter(
    remote_ip: str, remote_port: int | None = None, local_port: int | None = None, *,
    medium: Medium = Medium.ETHERNET,
) -> list[BpfInsn]:
    """Return a classic BPF program keeping what the stack needs of the link for one remote address.

    IPv4 (a dotted address): ARP, TCP from remote_ip (and the given ports), and ICMP destination-unreachable
    from anyone (a router's fragmentation-needed). IPv6: TCP from remote_ip (and the ports) right after the
    fixed header, or behind extension headers (the stack walks them and counts what is not ours), and
    ICMPv6 from anyone (neighbor discovery, Packet Too Big). The same test is made on untagged frames and
    on frames behind one 802.1Q tag. On Medium.IP (a SOCK_DGRAM socket: the packet starts at its IP
    header) the packet's protocol is the kernel's, and there is no ARP and no tag.
    """
    address = ipaddress.ip_address(remote_ip)
    if address.version == 6:
        kinds, test = [ETH_P_IPV6], _ipv6_test
    else:
        kinds, test = [ETH_P_ARP, ETH_P_IP], _ipv4_test
    ends: list[_Asm | str] = ["accept", (_RET_K, None, None, _ACCEPT), "reject", (_RET_K, None, None, _REJECT)]
    if medium is Medium.IP:
        return _assemble([(_LD_H_ABS, None, None, SKF_AD_PROTOCOL & 0xFFFF_FFFF),
                          (_JEQ_K, None, "reject", kinds[-1]),
                          *test(0, int(address), remote_port, local_port), *ends])
    program: list[_Asm | str] = [(_LD_H_ABS, None, None, 12)]
    for tag in (0, 4):
        if tag:
            program.append((_LD_H_ABS, None, None, 16))
        for kind in kinds:
            target = "accept" if kind == ETH_P_ARP else f"net_{tag}"
            program.append((_JEQ_K, target, None, kind))
        program.append((_JEQ_K, None, "reject", ETH_P_8021Q) if not tag else _JUMP_REJECT)
    for tag in (0, 4):
        program += [f"net_{tag}", *test(14 + tag, int(address), remote_port, local_port)]
    return _assemble(program + ends)


def _assemble(program: list[_Asm | str]) -> list[BpfInsn]:
    """Instructions with label jumps (a str in the list marks where the label is) as struct sock_filter."""
    labels: dict[str, int] = {}
    code: list[_Asm] = []
    for item in program:
        if isinstance(item, str):
            labels[item] = len(code)
        else:
            code.append(item)

    def offset(at: int, label: str | None) -> int:
        return 0 if label is None else labels[label] - at - 1

    return [(op, offset(i, jt), offset(i, jf), k) for i, (op, jt, jf, k) in enumerate(code)]


def _ipv4_test(net: int, ip: int, remote_port: int | None, local_port: int | None) -> list[_Asm | str]:
    """Instructions testing the IPv4 header at offset net; they end in a jump to "accept" or "reject"."""
    icmp = f"icmp4_{net}"
    code: list[_Asm | str] = [
        (_LD_B_ABS, None, None, net + 9),
        (_JEQ_K, None, icmp, socket.IPPROTO_TCP),
        (_LD_W_ABS, None, None, net + 12),
        (_JEQ_K, None, "reject", ip),
    ]
    if remote_port is not None or local_port is not None:
        code += [
            (_LD_H_ABS, None, None, net + 6),
            (_JSET_K, "reject", None, 0x1FFF),  # a later fragment carries no TCP header
            (_LDX_B_MSH, None, None, net),  # X = IPv4 header length
        ]
        if remote_port is not None:
            code += [(_LD_H_IND, None, None, net), (_JEQ_K, None, "reject", remote_port)]
        if local_port is not None:
            code += [(_LD_H_IND, None, None, net + 2), (_JEQ_K, None, "reject", local_port)]
    return code + [
        _JUMP_ACCEPT,
        icmp,  # ICMP destination unreachable (fragmentation needed...), from any router: the stack judges it
        (_JEQ_K, None, "reject", socket.IPPROTO_ICMP),
        (_LD_H_ABS, None, None, net + 6),
        (_JSET_K, "reject", None, 0x1FFF),
        (_LDX_B_MSH, None, None, net),
        (_LD_B_IND, None, None, net),
        (_JEQ_K, "accept", "reject", _ICMP_UNREACHABLE),
    ]


def _ipv6_test(net: int, ip: int, remote_port: int | None, local_port: int | None) -> list[_Asm | str]:
    """Instructions testing the IPv6 header at offset net; they end in a jump to "accept" or "reject"."""
    words = [(ip >> shift) & 0xFFFF_FFFF for shift in (96, 64, 32, 0)]
    tcp = f"tcp6_{net}"
    code: list[_Asm | str] = [
        (_LD_B_ABS, None, None, net + 6),  # the next header
        (_JEQ_K, "accept", None, _NH_ICMPV6),  # neighbor discovery, Packet Too Big: from any neighbor
    ]
    for i, word in enumerate(words):  # the source address, one word at a time
        code += [(_LD_W_ABS, None, None, net + 8 + 4 * i), (_JEQ_K, None, "reject", word)]
    code += [(_LD_B_ABS, None, None, net + 6), (_JEQ_K, tcp, None, socket.IPPROTO_TCP)]
    for header in _NH_EXTENSIONS:  # a chain: the stack walks it (and counts what is not ours)
        code.append((_JEQ_K, "accept", None, header))
    code += [_JUMP_REJECT, tcp]
    if remote_port is not None:
        code += [(_LD_H_ABS, None, None, net + 40), (_JEQ_K, None, "reject", remote_port)]
    if local_port is not None:
        code += [(_LD_H_ABS, None, None, net + 42), (_JEQ_K, None, "reject", local_port)]
    return code + [_JUMP_ACCEPT]


def _csum_state(status: int) -> int:
    """CSUM_* from the kernel's status word for a frame (a ring slot's, or PACKET_AUXDATA's)."""
    if status & TP_STATUS_CSUMNOTREADY:
        return CSUM_NOT_READY
    if status & TP_STATUS_CSUM_VALID:
        return CSUM_KERNEL_VALID
    return CSUM_UNKNOWN


class Unbound(Closing):
    """An AF_PACKET socket with its receive ring, bound to no interface yet: what :class:`PacketSocket`
    takes over. Setting the ring up waits for the kernel (an RCU grace period and 8 MB zeroed: 8-13 ms
    measured) with the GIL released (:func:`_setsockopt_unlocked`), so it can be made ahead, beside the
    program's imports (:class:`rawtui.aside.Aside`)."""

    def __init__(self, ring: bool = True, medium: Medium = Medium.ETHERNET) -> None:
        self.medium = medium  # SOCK_RAW for Ethernet; SOCK_DGRAM (no link header) for a layer-3 link
        kind = socket.SOCK_RAW if medium is Medium.ETHERNET else socket.SOCK_DGRAM
        try:
            # protocol 0 receives nothing until bind() names the interface and ETH_P_ALL
            self.sock = socket.socket(socket.AF_PACKET, kind, 0)
        except PermissionError:
            raise PrivilegeError(_NO_PRIVILEGE) from None
        self.ring = _setup_ring(self.sock) if ring else None
        self.taken = False  # a PacketSocket owns it now (and closes it)

    def close(self) -> None:
        """Close it unless a PacketSocket took it."""
        if self.taken:
            return
        self.taken = True
        if self.ring is not None:
            self.ring.close()
        self.sock.close()


_NO_PRIVILEGE = "opening a raw socket needs root or CAP_NET_RAW: run with sudo, or grant CAP_NET_RAW+CAP_NET_ADMIN"


def _setsockopt_unlocked(sock: socket.socket, level: int, option: int, value: bytes) -> None:
    """``sock.setsockopt(level, option, value)`` with the GIL released: CPython's own holds it through the
    system call, and the receive ring's waits in the kernel (8-13 ms measured), which stopped the imports
    it runs beside for as long (a 1-byte download: 103.8 against 116.7 ms, median of 20). libc's, through
    ctypes, which releases the GIL for the call."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setsockopt(sock.fileno(), level, option, value, len(value)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _setup_ring(sock: socket.socket) -> mmap.mmap | None:
    """The PACKET_RX_RING mapped, or None where it cannot be set up (old kernel, memory): recvmsg with
    PACKET_AUXDATA does the job then."""
    try:
        sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V2)
        _setsockopt_unlocked(sock, SOL_PACKET, PACKET_RX_RING, struct.pack(
            "=IIII", RING_BLOCK, RING_FRAMES * RING_SLOT // RING_BLOCK, RING_SLOT, RING_FRAMES))
        sock.setsockopt(SOL_PACKET, PACKET_COPY_THRESH, 1)  # bigger frames: also queued whole
        return mmap.mmap(sock.fileno(), RING_FRAMES * RING_SLOT, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    except OSError:
        return None


class PacketSocket(Closing):
    """A non-blocking AF_PACKET socket on one interface that does not read back its own frames.

    The interface's link type decides its :attr:`medium` (and the socket's type: see the module's notes).
    ``unbound``: a socket opened ahead (:class:`Unbound`) to use instead of opening one here; it is then
    this object's (closed with it, or at once if the interface is unknown). One opened for another medium
    is closed beside (``replaced``) and a socket of the right type opened here."""

    def __init__(self, ifname: str, rcvbuf: int = 64 << 20, ring: bool = True, *,
                 unbound: Unbound | None = None) -> None:
        self.ifname = ifname
        try:
            self.ifindex = socket.if_nametoindex(ifname)
            arphrd, self.mac = _link_address(ifname)
        except OSError as e:
            if unbound is not None:
                unbound.close()
            if isinstance(e, PermissionError):  # (a sandbox that refuses sockets at all)
                raise PrivilegeError(_NO_PRIVILEGE) from None
            raise LinkError(f"unknown interface '{ifname}'") from None
        medium = medium_of(arphrd)
        if medium is None:
            if unbound is not None:
                unbound.close()
            raise LinkError(f"interface '{ifname}' is of link type {link_type_name(arphrd)}: rawtui runs on "
                            "Ethernet and on layer-3 (tun, WireGuard, PPP, IP tunnel) interfaces")
        self.medium = medium
        self.replaced: Aside[None] | None = None  # an early socket of the wrong type, closing beside
        if unbound is not None and unbound.medium is not medium:
            self.replaced = Aside(unbound.close, "rawtui-replaced")  # its ring's release waits for the kernel
            unbound = None
        if unbound is None:
            unbound = Unbound(ring, medium)
        unbound.taken = True
        sock = unbound.sock
        self._sock = sock
        self._ring: mmap.mmap | None = unbound.ring
        self._ring_view: memoryview | None = memoryview(self._ring) if self._ring is not None else None
        self._slot = 0  # the next ring slot to look at
        self._held = -1  # offset of the slot handed out by the last recv(), released by the next
        self._rcvbuf = rcvbuf
        self._backlog: deque[tuple[bytes, int]] = deque()  # frames read ahead of a handover (shed_ring)
        self._echo: deque[bytes] | None = None  # of those, what the twin may hold again
        self._echo_started = False
        self._shed: Aside[None] | None = None  # the ring's socket, being released (shed_ring)
        self._shed_drops = 0  # its kernel drops, not yet reported by kernel_stats
        try:
            self._skip_outgoing = self._configure(sock)
        except OSError as exc:
            self.close()
            raise LinkError(f"cannot bind a raw socket to '{ifname}': {exc.strerror}") from None
        # where each packet goes on a layer-3 link (a SOCK_DGRAM socket): the address says its protocol
        self._to = {4: (ifname, ETH_P_IP), 6: (ifname, ETH_P_IPV6)} if medium is Medium.IP else None
        self._buffer = bytearray(RECV_BUFFER_SIZE)
        self._view = memoryview(self._buffer)
        self._filter: ctypes.Array[ctypes.c_char] | None = None
        self._program: list[BpfInsn] | None = None

    def _configure(self, sock: socket.socket) -> bool:
        """Bind ``sock`` to the interface and set it up as the receiving socket; True when the kernel cannot
        leave out this host's own frames (before 4.20: recv() skips them)."""
        sock.bind((self.ifname, ETH_P_ALL))  # CPython converts the protocol to network order here
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, self._rcvbuf)
        except PermissionError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self._rcvbuf)
        sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
        skip_outgoing = False
        try:
            sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
        except OSError:
            skip_outgoing = True
        sock.setblocking(False)
        return skip_outgoing

    @property
    def uses_ring(self) -> bool:
        return self._ring is not None

    @property
    def backlog(self) -> int:
        """Frames recv() returns before any the socket holds (read ahead by :meth:`shed_ring`): a caller that
        waits with select() on :meth:`fileno` first takes these."""
        return len(self._backlog)

    def shed_ring(self) -> None:
        """Go on receiving without the ring: a ring-less twin (the same interface, filter and options) takes
        over, and the ring's socket is released in a thread. That release waits for two RCU grace periods
        (~24 ms measured); begun before a connection's last exchange (the FIN's round trip), it ends beside
        it, and the twin's own release at the end waits for one. Nothing when there is no ring (or no more).

        No frame is lost or seen twice: the twin is bound before the ring is read out (into the backlog) and
        released, so a frame that came between reaches both, and the twin's first frames that repeat the
        backlog's last ones, byte for byte and in order, are left out."""
        if self._ring is None or self._program is None:
            return
        old, kind = self._sock, self._sock.type
        twin = socket.socket(socket.AF_PACKET, kind, 0)
        try:
            twin_filter = self._attach_to(twin, self._program)
            skip_outgoing = self._configure(twin)
        except OSError:
            twin.close()
            return  # the ring stays: nothing changes
        while (got := self.recv()) is not None:
            self._backlog.append((bytes(got[0]), got[1]))
        self._echo = deque(frame for frame, _ in self._backlog)
        _, self._shed_drops = self.kernel_stats()
        ring, self._ring, self._ring_view, self._held = self._ring, None, None, -1
        self._sock, self._skip_outgoing = twin, skip_outgoing
        self._filter = twin_filter
        self._shed = Aside(lambda: _release(ring, old), "rawtui-ring-release")

    def kernel_stats(self) -> tuple[int, int]:
        """(frames passed to this socket, frames the kernel dropped because rawtui fell behind) since the
        last call (PACKET_STATISTICS; reading resets them)."""
        try:
            raw = self._sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, _TPACKET_STATS.size)
        except OSError:
            return 0, 0
        packets, drops = _TPACKET_STATS.unpack(raw[: _TPACKET_STATS.size])
        drops, self._shed_drops = drops + self._shed_drops, 0
        return packets, drops

    def set_filter(
        self, remote_ip: str, remote_port: int | None = None, local_port: int | None = None
    ) -> None:
        """Keep only what :func:`build_filter` passes for remote_ip (and these ports); frames queued before
        are dropped."""
        program = build_filter(remote_ip, remote_port, local_port, medium=self.medium)
        self._attach([(_RET_K, 0, 0, _REJECT)])
        while self._drain_one():
            pass
        self._attach(program)

    def _attach(self, program: list[BpfInsn]) -> None:
        self._filter = self._attach_to(self._sock, program)
        self._program = program

    def _attach_to(self, sock: socket.socket, program: list[BpfInsn]) -> ctypes.Array[ctypes.c_char]:
        code = b"".join(struct.pack("=HBBI", *insn) for insn in program)
        buf = ctypes.create_string_buffer(code, len(code))
        fprog = struct.pack("HL", len(program), ctypes.addressof(buf))  # struct sock_fprog
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
        return buf  # (kept alive while the socket lives)

    def _drain_one(self) -> bool:
        if self._ring is not None:
            return self.recv() is not None
        try:
            self._sock.recv_into(self._buffer)
        except BlockingIOError:
            return False
        return True

    def recv(self) -> tuple[memoryview, int] | None:
        """Return (frame, checksum state CSUM_*) or None when nothing is queued.

        The frame is a view into a buffer (or ring slot) reused by the next recv: copy it to keep it.
        A VLAN tag the kernel stripped stays stripped: the frame is then untagged.
        """
        ring = self._ring
        if ring is not None:
            if self._held >= 0:
                _STATUS.pack_into(ring, self._held, TP_STATUS_KERNEL)  # hand the last slot back
                self._held = -1
            while True:
                off = self._slot * RING_SLOT
                status, length, snaplen, mac, _net = _TPACKET2_HDR.unpack_from(ring, off)
                if not status & TP_STATUS_USER:
                    return None
                self._slot = (self._slot + 1) % RING_FRAMES
                if self._skip_outgoing and ring[off + _SLL_PKTTYPE] == PACKET_OUTGOING:
                    _STATUS.pack_into(ring, off, TP_STATUS_KERNEL)
                    continue
                self._held = off
                csum = _csum_state(status)
                if snaplen == length:
                    assert self._ring_view is not None
                    return self._ring_view[off + mac : off + mac + snaplen], csum
                if status & TP_STATUS_COPY:  # the whole frame waits on the socket's queue, in order
                    try:
                        size = self._sock.recv_into(self._buffer)
                    except BlockingIOError:
                        size = 0
                    if size == length:
                        return self._view[:size], csum
                # cut to the slot and no copy (the socket's buffer was full): drop it, TCP resends
                _STATUS.pack_into(ring, off, TP_STATUS_KERNEL)
                self._held = -1
                continue
        if self._backlog:
            frame, csum = self._backlog.popleft()
            return memoryview(frame), csum
        while True:
            try:
                size, ancillary, _flags, address = self._sock.recvmsg_into([self._buffer], _ANCILLARY_SIZE)
            except BlockingIOError:
                return None
            if self._skip_outgoing and address[2] == PACKET_OUTGOING:
                continue
            echo = self._echo
            if echo is not None and self._echoed(echo, self._view[:size]):
                continue
            csum = CSUM_UNKNOWN
            for level, kind, data in ancillary:
                if level == SOL_PACKET and kind == PACKET_AUXDATA and len(data) >= _AUXDATA.size:
                    csum = _csum_state(_AUXDATA.unpack_from(data)[0])
            return self._view[:size], csum

    def _echoed(self, echo: deque[bytes], frame: memoryview) -> bool:
        """True for a twin's frame that the ring handed over already (shed_ring): the first one equal to
        a frame read out of the ring, then each next one while they follow the same order."""
        if self._echo_started:
            if echo and echo[0] == frame:
                echo.popleft()
                return True
        else:
            self._echo_started = True
            for i, seen in enumerate(echo):
                if seen == frame:
                    for _ in range(i + 1):
                        echo.popleft()
                    return True
        self._echo = None  # past the overlap: the rest is new
        return False

    def recv_many(self, max_frames: int = 64) -> list[tuple[bytes, int]]:
        """Return up to max_frames queued frames, copied, with their checksum states."""
        frames: list[tuple[bytes, int]] = []
        while len(frames) < max_frames:
            got = self.recv()
            if got is None:
                break
            frames.append((bytes(got[0]), got[1]))
        return frames

    def send(self, frame: bytes | bytearray | memoryview) -> bool:
        """Send one complete frame of the medium (an Ethernet frame, or an IP packet); False when the socket
        buffer is full and it was dropped."""
        try:
            if self._to is None:
                self._sock.send(frame)
            else:
                self._sock.sendto(frame, self._to[frame[0] >> 4])
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as exc:
            if exc.errno == errno.ENOBUFS:
                return False
            raise LinkError(f"cannot send on '{self.ifname}': {exc.strerror}") from None
        return True

    def fileno(self) -> int:
        return self._sock.fileno()

    def close(self) -> None:
        if self.replaced is not None:
            self.replaced.result()
            self.replaced = None
        if self._shed is not None:  # the ring's socket, released beside: this one's release beside it
            shed, self._shed = self._shed, None
            self._sock.close()
            shed.result()
            return
        ring, self._ring, self._ring_view = self._ring, None, None
        _release(ring, self._sock)


def _release(ring: mmap.mmap | None, sock: socket.socket) -> None:
    """Unmap a socket's ring (if any) and close the socket: the kernel's release waits for RCU grace periods."""
    if ring is not None:
        try:
            ring.close()
        except BufferError:  # a frame view is still alive somewhere: the mapping goes with the socket
            pass
    sock.close()


def _link_address(ifname: str) -> tuple[int, bytes]:
    """The interface's link type (ARPHRD_*) and hardware address (SIOCGIFHWADDR, on any socket)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        reply = fcntl.ioctl(probe.fileno(), SIOCGIFHWADDR, struct.pack("16s16x", ifname.encode()))
    family = struct.unpack_from("=H", reply, 16)[0]  # struct ifreq: name[16], sockaddr{u16 family, data[14]}
    return family, reply[18:24]
