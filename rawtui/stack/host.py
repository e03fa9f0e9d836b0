"""One host's view of the wire, sans-IO: Ethernet frames in, Ethernet frames out.

:class:`Host` ties the formats of :mod:`rawtui.wire` to the machines (:class:`ArpResolver` for the next
hop, :class:`TcpConnection` for the one connection). It parses every frame, verifies checksums (unless
the kernel says the checksum is not computed yet, or already verified: checksum offload), counts and
reports what it drops, and wraps the TCP machine's segments in IPv4 and Ethernet headers.
"""

from __future__ import annotations

import struct

from rawtui.errors import LinkError, TcpError
from rawtui.stack.arp import ArpResolver
from rawtui.stack.events import ChecksumDrop, Event, Malformed
from rawtui.stack.tcp import TcpConnection
from rawtui.stack.tcp_states import OVER
from rawtui.wire.arp import parse_arp
from rawtui.wire.checksum import checksum_from_residue, residue
from rawtui.wire.errors import ChecksumError, WireError
from rawtui.wire.ethernet import ETH_P_ARP, ETH_P_IP, parse_ethernet
from rawtui.wire.ipv4 import PROTO_TCP, ip_str, parse_ipv4
from rawtui.wire.tcp import NO_OPTIONS, TcpSegment, parse_options, parse_tcp

# What the link layer knows about a received frame's checksum (PACKET_AUXDATA).
CSUM_UNKNOWN = 0  # verify it ourselves
CSUM_NOT_READY = 1  # TP_STATUS_CSUMNOTREADY: sent by a local stack with checksum offload, not filled in
CSUM_KERNEL_VALID = 2  # TP_STATUS_CSUM_VALID: the NIC/kernel verified it

# The fast path's view of a frame: Ethernet II (untagged) + IPv4 without options + the TCP fixed header.
_ETH_IP_TCP = struct.Struct("!12xHBxHxxHxBxx4s4sHHIIBBHHH")
_ETH_IP = struct.Struct("!6s6sHBBHHHBBH4s4s")


class Host:
    def __init__(
        self,
        *,
        local_mac: bytes,
        local_ip: bytes,
        next_hop_ip: bytes,
        remote_ip: bytes,
        remote_port: int,
        local_port: int,
        isn: int,
        arp_retries: int = 3,
        arp_interval: float = 1.0,
        iface: str = "",
        next_hop_role: str = "next hop",
        **tcp_options: object,
    ) -> None:
        self.local_mac = local_mac
        self.local_ip = local_ip
        self.remote_ip = remote_ip
        self.iface = iface
        self.next_hop_role = next_hop_role  # "gateway" or "host", for the error message
        self.arp = ArpResolver(local_mac, local_ip, next_hop_ip, retries=arp_retries, interval=arp_interval)
        self.tcp = TcpConnection(
            local_ip=local_ip, remote_ip=remote_ip, local_port=local_port, remote_port=remote_port, isn=isn,
            **tcp_options,  # type: ignore[arg-type]
        )
        self.counters: dict[str, int] = {
            "frames_in": 0, "frames_out": 0, "csum_drop_ipv4": 0, "csum_drop_tcp": 0, "csum_offloaded": 0,
            "csum_kernel_verified": 0, "malformed": 0, "ip_fragments": 0, "not_ours": 0,
        }
        self._ident = isn & 0xFFFF
        # the IPv4 header's fixed words (version/IHL, DF, TTL/protocol, addresses) for _wrap's checksum
        self._ip_sum = 0x4500 + 0x4000 + (64 << 8 | PROTO_TCP) + sum(
            int.from_bytes(a[i:i + 2], "big") for a in (local_ip, remote_ip) for i in (0, 2))
        # the TCP pseudo-header's fixed part, to verify checksums on the fast path
        self._ph_sum = int.from_bytes(remote_ip, "big") + int.from_bytes(local_ip, "big") + PROTO_TCP
        self._frames: list[bytes] = []
        self._events: list[Event] = []
        self._connected = False
        self.error: LinkError | TcpError | None = None

    # -- driving ---------------------------------------------------------------------------------

    def start(self, now: float, next_hop_mac: bytes | None = None) -> None:
        """Resolve the next hop, then connect. ``next_hop_mac``: already known (an earlier connection's
        ARP answer): no ARP exchange, the SYN leaves at once."""
        if next_hop_mac is None:
            self.arp.start(now)
        else:
            self.arp.mac = next_hop_mac
        self._collect(now)

    @property
    def next_deadline(self) -> float | None:
        a = self.arp.next_deadline if not self.arp.done else None
        t = self.tcp.next_deadline if self._connected else None
        if a is None:
            return t
        return a if t is None else min(a, t)

    def on_timer(self, now: float) -> None:
        if not self.arp.done:
            self.arp.on_timer(now)
        if self._connected:
            self.tcp.on_timer(now)
        self._collect(now)

    def on_frame(self, frame: bytes | memoryview, now: float, csum: int = CSUM_UNKNOWN) -> None:
        """Handle one received frame. ``frame`` may be a view into a reused buffer: nothing keeps it."""
        c = self.counters
        c["frames_in"] += 1
        if self._connected and len(frame) >= 54:
            # The fast path: the connection's untagged IPv4 TCP frames without IP options, both checksums
            # good, parsed in one unpack. Anything else (and any doubt) takes the general path below,
            # which parses again and counts and reports what it drops.
            (etype, vihl, total, frag, proto, src, dst, sport, dport, seq, ack, off, flags, win, tsum,
             urg) = _ETH_IP_TCP.unpack_from(frame)
            hl = (off >> 4) << 2
            if (etype == ETH_P_IP and vihl == 0x45 and proto == PROTO_TCP and not frag & 0x3FFF
                    and src == self.remote_ip and dst == self.local_ip and 40 + hl - 20 <= total
                    and total + 14 <= len(frame) and hl >= 20):
                mv = memoryview(frame)
                end = 14 + total
                if csum == CSUM_UNKNOWN:
                    ok = residue(mv[14:34]) == 0 and (
                        self._ph_sum + total - 20 + residue(mv[34:end])) % 0xFFFF == 0
                else:
                    ok = True
                    c["csum_offloaded" if csum == CSUM_NOT_READY else "csum_kernel_verified"] += 1
                if ok:
                    try:
                        options = parse_options(mv[54:34 + hl]) if hl > 20 else NO_OPTIONS
                    except WireError as e:
                        c["malformed"] += 1
                        self._events.append(Malformed(now, str(e), len(frame)))
                        return
                    self.tcp.on_segment(
                        TcpSegment(sport, dport, seq, ack, flags, win, options, mv[34 + hl:end], urg, tsum, hl), now)
                    self._collect_tcp()
                    return
        try:
            eth = parse_ethernet(frame)
            if eth.ethertype == ETH_P_IP:
                ip, payload = parse_ipv4(eth.payload)
                if ip.proto != PROTO_TCP or ip.src != self.remote_ip or ip.dst != self.local_ip:
                    c["not_ours"] += 1
                    return
                if ip.is_fragment:
                    c["ip_fragments"] += 1
                    c["malformed"] += 1
                    self._events.append(Malformed(now, "IPv4 fragment dropped (rawtui does not reassemble)",
                                                  ip.total_length))
                    return
                if csum == CSUM_UNKNOWN:
                    seg = parse_tcp(payload, ip.src, ip.dst, verify=True)
                else:
                    c["csum_offloaded" if csum == CSUM_NOT_READY else "csum_kernel_verified"] += 1
                    seg = parse_tcp(payload, ip.src, ip.dst, verify=False)
                if self._connected:
                    self.tcp.on_segment(seg, now)
                else:
                    c["not_ours"] += 1
            elif eth.ethertype == ETH_P_ARP:
                self.arp.on_arp(parse_arp(eth.payload), now)
            else:
                c["not_ours"] += 1
                return
        except ChecksumError as e:
            c["csum_drop_" + e.layer] += 1
            self._events.append(ChecksumDrop(now, e.layer, len(frame)))
        except WireError as e:
            c["malformed"] += 1
            self._events.append(Malformed(now, str(e), len(frame)))
        self._collect(now)

    # -- the application side (pass-through to the connection) ----------------------------------

    def send(self, data: bytes, now: float) -> None:
        self.tcp.send(data, now)
        self._collect(now)

    def close(self, now: float) -> None:
        if self._connected:
            self.tcp.close(now)
            self._collect(now)

    def abort(self, now: float) -> None:
        if self._connected and self.tcp.state not in OVER:
            self.tcp.abort(now)
            self._collect(now)

    def read(self, max_bytes: int | None = None) -> list[bytes]:
        """The in-order data the connection holds (``max_bytes`` of it at most), as received chunks;
        frees the receive window."""
        if max_bytes is None:
            chunks = self.tcp.read_chunks()
        else:
            data = self.tcp.read(max_bytes)
            chunks = [data] if data else []
        if chunks:
            self._frames.extend(self._wrap(s) for s in self.tcp.take_segments())
            self._events.extend(self.tcp.take_events())
        return chunks

    # -- output ----------------------------------------------------------------------------------

    @property
    def has_frames(self) -> bool:
        """Frames wait to be sent (take_frames)."""
        return bool(self._frames)

    def take_frames(self) -> list[bytes]:
        out, self._frames = self._frames, []
        self.counters["frames_out"] += len(out)
        return out

    def take_events(self) -> list[Event]:
        out, self._events = self._events, []
        return out

    def _wrap(self, segment: bytes) -> bytes:
        """Ethernet + IPv4 (no options, DF, TTL 64) around a TCP segment, in one pack."""
        self._ident = ident = (self._ident + 1) & 0xFFFF
        total = 20 + len(segment)
        csum = checksum_from_residue(self._ip_sum + total + ident)
        assert self.arp.mac is not None
        return _ETH_IP.pack(self.arp.mac, self.local_mac, ETH_P_IP, 0x45, 0, total, ident, 0x4000, 64, PROTO_TCP,
                            csum, self.local_ip, self.remote_ip) + segment

    def _collect(self, now: float) -> None:
        arp = self.arp
        if not arp.done or arp.has_output:
            self._frames.extend(arp.take_frames())
            self._events.extend(arp.take_events())
        if arp.failed and self.error is None:
            hop = ip_str(arp.target_ip)
            on = f" on {self.iface}" if self.iface else ""
            link = f"{self.iface}'s" if self.iface else "this"
            self.error = LinkError(
                f"no ARP reply from {hop}{on} after {arp.attempts} tries: the {self.next_hop_role} {hop} is not on"
                f" {link} link, or it is down"
            )
            return
        if not self._connected and arp.mac is not None:
            self._connected = True
            self.tcp.connect(now)
        if self._connected:
            self._collect_tcp()

    def _collect_tcp(self) -> None:
        tcp = self.tcp
        if tcp.has_output:
            self._frames.extend(map(self._wrap, tcp.take_segments()))
            self._events.extend(tcp.take_events())
        if tcp.error is not None and self.error is None:
            self.error = tcp.error
