"""One host's view of the wire, sans-IO: Ethernet frames in, Ethernet frames out.

:class:`Host` ties the formats of :mod:`rawtui.wire` to the machines (a next-hop resolver,
:class:`TcpConnection` for the one connection). It parses every frame, verifies checksums (unless the
kernel says the checksum is not computed yet, or already verified: checksum offload), counts and reports
what it drops, and wraps the TCP machine's segments in IP and Ethernet headers.

The address family is decided once, from the length of the addresses (4 bytes: IPv4, 16: IPv6), in
``__init__``: which resolver (:class:`ArpResolver` or :class:`NdpResolver`, the same shape), which
Ethernet types are handled and by what (``_handlers``), which IP header wraps a segment (``_wrap``) and
which fast path reads the connection's segments. Nothing after that asks the family again. The medium
(:class:`Medium`: Ethernet, or bare IP packets on a point-to-point link such as tun or WireGuard) is
decided there too: the fast paths and the general path read the IP header at ``medium.link_header``, a
frame's link header is built by ``_link`` (Ethernet's, or none), and the resolver of a point-to-point link
(:class:`PointToPoint`) is done at once. ICMP errors
for the connection (IPv4's fragmentation-needed, ICMPv6's Packet Too Big) lower its MSS
(:meth:`TcpConnection.on_path_mtu`).
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from rawtui.errors import LinkError, TcpError
from rawtui.stack.arp import ArpResolver
from rawtui.stack.events import ChecksumDrop, Event, Malformed, Medium
from rawtui.stack.ndp import NdpResolver
from rawtui.stack.p2p import NO_LINK_ADDRESS, PointToPoint
from rawtui.stack.resolver import Resolver
from rawtui.stack.tcp import TcpConnection
from rawtui.stack.tcp_states import OVER
from rawtui.wire.arp import parse_arp
from rawtui.wire.checksum import checksum_from_residue, residue
from rawtui.wire.errors import ChecksumError, WireError
from rawtui.wire.ethernet import ETH_P_ARP, ETH_P_IP, ETH_P_IPV6, EthernetFrame, parse_ethernet
from rawtui.wire.icmp import PROTO_ICMP, QuotedTcp, parse_icmp, quoted_tcp4
from rawtui.wire.icmpv6 import PacketTooBig, parse_icmpv6, quoted_tcp6
from rawtui.wire.ipv4 import PROTO_TCP, ip_str, parse_ipv4
from rawtui.wire.ipv6 import NH_ICMPV6, ip6_str, parse_ipv6
from rawtui.wire.tcp import NO_OPTIONS, TcpSegment, parse_options, parse_tcp

# What the link layer knows about a received frame's checksum (PACKET_AUXDATA).
CSUM_UNKNOWN = 0  # verify it ourselves
CSUM_NOT_READY = 1  # TP_STATUS_CSUMNOTREADY: sent by a local stack with checksum offload, not filled in
CSUM_KERNEL_VALID = 2  # TP_STATUS_CSUM_VALID: the NIC/kernel verified it

# The fast path's view of a frame: Ethernet II (untagged) + IPv4 without options + the TCP fixed header.
# Its first word is what precedes the IPv4 total length (EtherType, version/IHL, TOS); without a link header
# (Medium.IP) the same fields follow version/IHL and TOS: one check, ``head >> 8``, for both media.
_FAST4 = {Medium.ETHERNET: (struct.Struct("!12xIHHHxBxx4s4sHHIIBBHHH"), ETH_P_IP << 8 | 0x45),
          Medium.IP: (struct.Struct("!HHHHxBxx4s4sHHIIBBHHH"), 0x45)}
# The same for IPv6: Ethernet II (untagged) + the fixed IPv6 header + the TCP fixed header (74 bytes); the
# first word holds the EtherType and the version nibble (``head >> 12``), or the version nibble alone.
_FAST6 = {Medium.ETHERNET: (struct.Struct("!12xI2xHBx16s16sHHIIBBHHH"), ETH_P_IPV6 << 4 | 6),
          Medium.IP: (struct.Struct("!H2xHBx16s16sHHIIBBHHH"), 6)}
_ETH = struct.Struct("!6s6sH")
_IP4 = struct.Struct("!BBHHHBBH4s4s")
_IP6 = struct.Struct("!IHBB16s16s")
_IP6_VERSION = 0x60000000  # version 6, traffic class 0, flow label 0


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
        local_addresses: tuple[bytes, ...] = (),
        medium: Medium = Medium.ETHERNET,
        **tcp_options: object,
    ) -> None:
        """``local_ip`` and the others are 4-byte (IPv4) or 16-byte (IPv6) addresses. ``local_addresses``:
        our other addresses on the link (IPv6: the link-local one), whose neighbor solicitations we answer
        as well as ``local_ip``'s. ``medium``: what frames begin with (Medium.IP: the IP header, no
        resolver; ``local_mac`` is then unused)."""
        self.local_mac = local_mac
        self.medium = medium
        self.local_ip = local_ip
        self.remote_ip = remote_ip
        self.iface = iface
        self.next_hop_role = next_hop_role  # "gateway" or "host", for the error message
        ipv6 = len(local_ip) == 16
        if len({len(local_ip), len(remote_ip), len(next_hop_ip)}) != 1:
            raise ValueError("local, remote and next-hop addresses of one Host are of one family")
        # the next hop's resolver: ARP or neighbor discovery (the same calls)
        self.arp: Resolver
        if medium is Medium.IP:  # a point-to-point link: nothing to resolve
            self.arp = PointToPoint(local_ip, next_hop_ip)
        elif ipv6:
            self.arp = NdpResolver(local_mac, local_ip, next_hop_ip, own_ips=local_addresses, retries=arp_retries,
                                   interval=arp_interval)
        else:
            self.arp = ArpResolver(local_mac, local_ip, next_hop_ip, retries=arp_retries, interval=arp_interval)
        if ipv6:
            tcp_options.setdefault("mss", 1440)  # 1500 - 40 (IPv6) - 20 (TCP)
        self.tcp = TcpConnection(
            local_ip=local_ip, remote_ip=remote_ip, local_port=local_port, remote_port=remote_port, isn=isn,
            **tcp_options,  # type: ignore[arg-type]
        )
        self.counters: dict[str, int] = {
            "frames_in": 0, "frames_out": 0, "csum_drop_ipv4": 0, "csum_drop_tcp": 0, "csum_offloaded": 0,
            "csum_kernel_verified": 0, "malformed": 0, "ip_fragments": 0, "not_ours": 0,
            "csum_drop_icmp": 0, "csum_drop_icmpv6": 0, "icmp_errors": 0,
        }
        # what each Ethernet type goes to, and how a segment is wrapped: the family's one decision
        self._handlers: dict[int, Callable[[EthernetFrame, float, int], None]]
        self._wrap: Callable[[bytes], bytes]
        if ipv6:
            self._handlers = {ETH_P_IPV6: self._on_ipv6}
            self._wrap = self._wrap6
        else:
            self._handlers = {ETH_P_IP: self._on_ipv4}
            if medium is Medium.ETHERNET:
                self._handlers[ETH_P_ARP] = self._on_arp
            self._wrap = self._wrap4
        self._ipv6 = ipv6
        # where the IP header starts, how a frame is taken apart and what goes before a packet: the medium's
        lh = self._lh = medium.link_header
        self._parse: Callable[[bytes | memoryview], EthernetFrame]
        self._link: Callable[[int], bytes]
        if medium is Medium.IP:
            self._parse, self._link = _parse_ip_packet, _no_link_header
        else:
            self._parse, self._link = parse_ethernet, self._ethernet_header
        self._fast4_struct, self._fast4_head = _FAST4[medium]
        self._fast6_struct, self._fast6_head = _FAST6[medium]
        self._fast_min = lh + (60 if ipv6 else 40)  # the shortest frame a fast path reads
        self._progress = 0  # the connection's progress mark, for neighbor reachability (on_timer)
        self._ident = isn & 0xFFFF
        # the IPv4 header's fixed words (version/IHL, DF, TTL/protocol, addresses) for _wrap's checksum
        self._ip_sum = 0x4500 + 0x4000 + (64 << 8 | PROTO_TCP) + sum(
            int.from_bytes(a[i:i + 2], "big") for a in (local_ip, remote_ip) for i in (0, 2))
        # the TCP pseudo-header's fixed part, to verify checksums on the fast path
        # (as a residue: a 16-byte address is a 128-bit integer, not worth adding up per frame)
        self._ph_sum = (int.from_bytes(remote_ip, "big") + int.from_bytes(local_ip, "big") + PROTO_TCP) % 0xFFFF
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
            self.arp.cached(next_hop_mac, now)
        self._collect(now)

    @property
    def next_deadline(self) -> float | None:
        a = self.arp.next_deadline  # resolving; for NDP also the entry's ageing (None for a resolved ARP)
        t = self.tcp.next_deadline if self._connected else None
        if a is None:
            return t
        return a if t is None else min(a, t)

    def on_timer(self, now: float) -> None:
        arp = self.arp
        if self._connected:
            # forward progress since the last timer confirms the next hop is reachable (RFC 4861 7.3.1)
            mark = self.tcp.bytes_received + self.tcp.snd_una
            if mark != self._progress:
                self._progress = mark
                arp.confirm(now)
        if arp.next_deadline is not None:
            arp.on_timer(now)
        if self._connected:
            self.tcp.on_timer(now)
        self._collect(now)

    def on_frame(self, frame: bytes | memoryview, now: float, csum: int = CSUM_UNKNOWN) -> None:
        """Handle one received frame. ``frame`` may be a view into a reused buffer: nothing keeps it."""
        c = self.counters
        c["frames_in"] += 1
        if self._ipv6:
            if self._connected and len(frame) >= self._fast_min and self._fast6(frame, now, csum):
                return
        elif self._connected and len(frame) >= self._fast_min:
            # The fast path: the connection's untagged IPv4 TCP frames without IP options, both checksums
            # good, parsed in one unpack. Anything else (and any doubt) takes the general path below,
            # which parses again and counts and reports what it drops.
            (head, total, ident, frag, proto, src, dst, sport, dport, seq, ack, off, flags, win, tsum,
             urg) = self._fast4_struct.unpack_from(frame)
            hl = (off >> 4) << 2
            lh = self._lh
            if (head >> 8 == self._fast4_head and proto == PROTO_TCP and not frag & 0x3FFF
                    and src == self.remote_ip and dst == self.local_ip and 40 + hl - 20 <= total
                    and total + lh <= len(frame) and hl >= 20):
                mv = memoryview(frame)
                end = lh + total
                if csum == CSUM_UNKNOWN:
                    ok = residue(mv[lh:lh + 20]) == 0 and (
                        self._ph_sum + total - 20 + residue(mv[lh + 20:end])) % 0xFFFF == 0
                else:
                    ok = True
                    c["csum_offloaded" if csum == CSUM_NOT_READY else "csum_kernel_verified"] += 1
                if ok:
                    try:
                        options = parse_options(mv[lh + 40:lh + 20 + hl]) if hl > 20 else NO_OPTIONS
                    except WireError as e:
                        c["malformed"] += 1
                        self._events.append(Malformed(now, str(e), len(frame)))
                        return
                    self.tcp.on_segment(
                        TcpSegment(sport, dport, seq, ack, flags, win, options, mv[lh + 20 + hl:end], urg, tsum, hl),
                        now, ident)
                    self._collect_tcp()
                    return
        try:
            eth = self._parse(frame)
            handler = self._handlers.get(eth.ethertype)
            if handler is None:
                c["not_ours"] += 1
                return
            handler(eth, now, csum)
        except ChecksumError as e:
            c["csum_drop_" + e.layer] += 1
            self._events.append(ChecksumDrop(now, e.layer, len(frame)))
        except WireError as e:
            c["malformed"] += 1
            self._events.append(Malformed(now, str(e), len(frame)))
        self._collect(now)

    # -- the general path, by Ethernet type (see _handlers) ----------------------------------------

    def _on_arp(self, eth: EthernetFrame, now: float, csum: int) -> None:
        assert isinstance(self.arp, ArpResolver)
        self.arp.on_arp(parse_arp(eth.payload), now)

    def _on_ipv4(self, eth: EthernetFrame, now: float, csum: int) -> None:
        ip, payload = parse_ipv4(eth.payload)
        if ip.proto == PROTO_ICMP and ip.dst == self.local_ip:
            msg = parse_icmp(payload, verify=csum == CSUM_UNKNOWN)
            mtu = msg.next_hop_mtu
            if mtu is not None:
                self._on_icmp_error(quoted_tcp4(msg.data), mtu, ip_str(ip.src), now)
            else:
                self.counters["not_ours"] += 1
            return
        if ip.proto != PROTO_TCP or ip.src != self.remote_ip or ip.dst != self.local_ip:
            self.counters["not_ours"] += 1
            return
        if ip.is_fragment:
            self._fragment("IPv4", ip.total_length, now)
            return
        self._on_tcp(payload, ip.src, ip.dst, now, csum, ip.ident)

    def _on_ipv6(self, eth: EthernetFrame, now: float, csum: int) -> None:
        ip, payload = parse_ipv6(eth.payload)
        if ip.proto == NH_ICMPV6 and not ip.is_fragment:
            msg = parse_icmpv6(payload, ip.src, ip.dst, verify=csum == CSUM_UNKNOWN)
            if isinstance(msg, PacketTooBig):
                self._on_icmp_error(quoted_tcp6(msg.invoking), msg.mtu, ip6_str(ip.src), now)
            elif isinstance(self.arp, NdpResolver):  # neighbor discovery (the resolver judges the rest)
                self.arp.on_ndp(msg, ip.src, ip.dst, ip.hop_limit, eth.src, now)
            else:  # a point-to-point link has no neighbors to discover
                self.counters["not_ours"] += 1
            return
        if ip.src != self.remote_ip or ip.dst != self.local_ip or (ip.proto != PROTO_TCP and not ip.is_fragment):
            self.counters["not_ours"] += 1
            return
        if ip.is_fragment:
            self._fragment("IPv6", ip.total_length, now)
            return
        self._on_tcp(payload, ip.src, ip.dst, now, csum)

    def _on_tcp(self, payload: memoryview, src: bytes, dst: bytes, now: float, csum: int, ip_id: int = -1) -> None:
        c = self.counters
        if csum == CSUM_UNKNOWN:
            seg = parse_tcp(payload, src, dst, verify=True)
        else:
            c["csum_offloaded" if csum == CSUM_NOT_READY else "csum_kernel_verified"] += 1
            seg = parse_tcp(payload, src, dst, verify=False)
        if self._connected:
            self.tcp.on_segment(seg, now, ip_id)
        else:
            c["not_ours"] += 1

    def _fragment(self, family: str, length: int, now: float) -> None:
        c = self.counters
        c["ip_fragments"] += 1
        c["malformed"] += 1
        self._events.append(Malformed(now, f"{family} fragment dropped (rawtui does not reassemble)", length))

    def _on_icmp_error(self, quoted: QuotedTcp | None, mtu: int, sender: str, now: float) -> None:
        """A path-MTU error from router ``sender``: for our connection (the quoted segment's addresses and
        ports), lower its MSS."""
        if (quoted is None or not self._connected or quoted.src != self.local_ip or quoted.dst != self.remote_ip
                or quoted.src_port != self.tcp.local_port or quoted.dst_port != self.tcp.remote_port):
            self.counters["not_ours"] += 1
            return
        self.counters["icmp_errors"] += 1
        self.tcp.on_path_mtu(mtu, now, seq=quoted.seq, quoted_length=quoted.length, sender=sender)

    def _fast6(self, frame: bytes | memoryview, now: float, csum: int) -> bool:
        """The IPv6 fast path: the connection's untagged TCP frames without extension headers, the
        checksum good, parsed in one unpack (what the IPv4 one in :meth:`on_frame` does). False: any doubt,
        and the general path parses again, counts and reports."""
        (head, plen, nh, src, dst, sport, dport, seq, ack, off, flags, win, tsum,
         urg) = self._fast6_struct.unpack_from(frame)
        hl = (off >> 4) << 2
        lh = self._lh
        end = lh + 40 + plen
        if not (head >> 12 == self._fast6_head and nh == PROTO_TCP and src == self.remote_ip
                and dst == self.local_ip and 20 <= hl <= plen and end <= len(frame)):
            return False
        c = self.counters
        mv = memoryview(frame)
        if csum == CSUM_UNKNOWN:
            if (self._ph_sum + plen + residue(mv[lh + 40:end])) % 0xFFFF:
                return False
        else:
            c["csum_offloaded" if csum == CSUM_NOT_READY else "csum_kernel_verified"] += 1
        try:
            options = parse_options(mv[lh + 60:lh + 40 + hl]) if hl > 20 else NO_OPTIONS
        except WireError as e:
            c["malformed"] += 1
            self._events.append(Malformed(now, str(e), len(frame)))
            return True
        self.tcp.on_segment(
            TcpSegment(sport, dport, seq, ack, flags, win, options, mv[lh + 40 + hl:end], urg, tsum, hl), now)
        self._collect_tcp()
        return True

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

    def hold_acks(self) -> None:
        """Frames that were waiting together follow: see :meth:`TcpConnection.hold_acks`."""
        if self._connected:
            self.tcp.hold_acks()

    def release_acks(self, now: float) -> None:
        """The batch is over: the ACK it held back leaves (:meth:`take_frames`)."""
        if self._connected:
            self.tcp.release_acks(now)
            self._collect_tcp()

    @property
    def receive_coalesce(self) -> float:
        """How long arriving frames may gather before :meth:`on_frame` sees them (seconds; 0: at once):
        the connection's :attr:`TcpConnection.receive_coalesce`."""
        return self.tcp.receive_coalesce if self._connected else 0.0

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

    def _wrap4(self, segment: bytes) -> bytes:
        """The link header + IPv4 (no options, DF, TTL 64) around a TCP segment."""
        self._ident = ident = (self._ident + 1) & 0xFFFF
        total = 20 + len(segment)
        csum = checksum_from_residue(self._ip_sum + total + ident)
        return self._link(ETH_P_IP) + _IP4.pack(0x45, 0, total, ident, 0x4000, 64, PROTO_TCP, csum, self.local_ip,
                                                self.remote_ip) + segment

    def _wrap6(self, segment: bytes) -> bytes:
        """The link header + IPv6 (no extension headers, hop limit 64) around a TCP segment."""
        return self._link(ETH_P_IPV6) + _IP6.pack(_IP6_VERSION, len(segment), PROTO_TCP, 64, self.local_ip,
                                                  self.remote_ip) + segment

    def _ethernet_header(self, ethertype: int) -> bytes:
        """Ethernet's link header, to the resolved next hop."""
        assert self.arp.mac is not None
        return _ETH.pack(self.arp.mac, self.local_mac, ethertype)

    def _collect(self, now: float) -> None:
        arp = self.arp
        if not arp.done or arp.has_output:
            self._frames.extend(arp.take_frames())
            self._events.extend(arp.take_events())
        if arp.failed and self.error is None:
            self.error = LinkError(arp.failure_message(self.iface, self.next_hop_role))
            return
        if not self._connected and arp.mac is not None:
            self._connected = True
            self.tcp.connect(now)
            self._progress = self.tcp.bytes_received + self.tcp.snd_una
        if self._connected:
            if self.tcp.has_output:
                arp.used(now)  # a stale neighbor entry starts its delay (a no-op for ARP)
            self._collect_tcp()

    def _collect_tcp(self) -> None:
        tcp = self.tcp
        if tcp.has_output:
            self._frames.extend(map(self._wrap, tcp.take_segments()))
            self._events.extend(tcp.take_events())
        if tcp.error is not None and self.error is None:
            self.error = tcp.error


def _no_link_header(ethertype: int) -> bytes:
    """A point-to-point link's header: none (the socket's address says the protocol)."""
    return b""


def _parse_ip_packet(packet: bytes | memoryview) -> EthernetFrame:
    """A bare IP packet (Medium.IP) in the shape the handlers take: its version nibble as the EtherType."""
    mv = memoryview(packet)
    if not len(mv):
        raise WireError("empty packet on a point-to-point link")
    version = mv[0] >> 4
    ethertype = ETH_P_IP if version == 4 else ETH_P_IPV6 if version == 6 else 0
    return EthernetFrame(NO_LINK_ADDRESS, NO_LINK_ADDRESS, ethertype, mv)
