"""Neighbor discovery for one IPv6 next hop (RFC 4861), sans-IO: the ARP of IPv6.

The same shape as :class:`rawtui.stack.arp.ArpResolver` (``start``, ``on_timer``, ``next_deadline``,
``mac``, ``failed``, ``take_frames``, ``take_events``) plus what IPv6 adds:

- the solicitation goes to the target's solicited-node multicast address (ff02::1:ffXX:XXXX, MAC
  33:33:ff:XX:XX:XX), with our MAC in a source link-layer address option, hop limit 255; up to
  ``retries`` (MAX_MULTICAST_SOLICIT, 3) of them, RETRANS_TIMER (1 s) apart;
- advertisements are judged as RFC 4861 7.2.5 says: the solicited flag makes the entry REACHABLE, an
  unsolicited one STALE; a different MAC replaces the cached one only with the override flag (else the
  entry only goes STALE, and an :class:`NdpIgnored` says so);
- the entry ages (7.3.2): REACHABLE for ``reachable_time`` after the last confirmation (a solicited
  advertisement, or :meth:`confirm`: the connection made forward progress, 7.3.1), then STALE; sending
  through a STALE entry (:meth:`used`) starts DELAY, and without a confirmation in ``delay`` seconds
  PROBE sends up to 3 unicast solicitations to the cached MAC. When those go unanswered the entry is
  resolved again from INCOMPLETE (multicast; the old MAC is used meanwhile), and when that fails too
  the resolver has ``failed``;
- it answers solicitations for our own addresses (7.2.4): a client must, or the router, which
  solicits us before it forwards the server's first packet to us, can never send to us. A solicitation
  from the next hop carrying its link-layer address also fills the entry (STALE, 7.2.3).

Hop limit 255 is checked on everything received (7.1: proof it was sent on this link).
"""

from __future__ import annotations

from rawtui.stack.events import (
    NdpAdvert,
    NdpAnswered,
    NdpIgnored,
    NdpSolicit,
    NeighborChange,
    NeighborState,
)
from rawtui.stack.resolver import Resolver
from rawtui.wire.ethernet import ETH_P_IPV6, build_ethernet, mac_str
from rawtui.wire.icmpv6 import (
    Icmpv6Message,
    NdpOptions,
    NeighborAdvert,
    NeighborSolicit,
    build_icmpv6,
)
from rawtui.wire.ipv6 import (
    ALL_NODES,
    NH_ICMPV6,
    UNSPECIFIED,
    build_ipv6,
    ip6_str,
    is_multicast,
    multicast_mac,
    solicited_node,
)

MAX_MULTICAST_SOLICIT = 3
MAX_UNICAST_SOLICIT = 3
RETRANS_TIMER = 1.0
REACHABLE_TIME = 30.0  # the base value; a host randomises it (x 0.5..1.5): the caller may pass its own
DELAY_FIRST_PROBE_TIME = 5.0
NDP_HOP_LIMIT = 255

INCOMPLETE, REACHABLE, STALE = NeighborState.INCOMPLETE, NeighborState.REACHABLE, NeighborState.STALE
DELAY, PROBE, FAILED = NeighborState.DELAY, NeighborState.PROBE, NeighborState.FAILED


class NdpResolver(Resolver):
    """Resolves and watches one next hop; answers solicitations for ``local_ip`` and ``own_ips``."""

    def __init__(
        self, local_mac: bytes, local_ip: bytes, target_ip: bytes, *, own_ips: tuple[bytes, ...] = (),
        retries: int = MAX_MULTICAST_SOLICIT, interval: float = RETRANS_TIMER,
        reachable_time: float = REACHABLE_TIME, delay: float = DELAY_FIRST_PROBE_TIME,
    ) -> None:
        super().__init__(local_mac, local_ip, target_ip, retries, interval)  # attempts: of the current round
        self.own_ips = frozenset((local_ip, *own_ips))
        self.reachable_time = reachable_time
        self.delay = delay
        self.state = INCOMPLETE
        self.solicitations = 0  # all of them
        self._started = False

    # -- driving (done: a MAC to send to, in whatever state, or given up) -------------------------

    def start(self, now: float) -> None:
        self._started = True
        self._solicit(now)

    def on_timer(self, now: float) -> None:
        if self._deadline is None or now < self._deadline or self.failed:
            return
        self._deadline = None
        state = self.state
        if state is REACHABLE:
            self._set(STALE, now, "no confirmation for the reachable time")
        elif state is DELAY:
            self._set(PROBE, now, "no confirmation in the delay")
            self.attempts = 0
            self._solicit(now)
        elif state is PROBE:
            if self.attempts < MAX_UNICAST_SOLICIT:
                self._solicit(now)
            else:
                self._set(INCOMPLETE, now, f"no answer to {self.attempts} unicast probes: resolving again")
                self.attempts = 0
                self._solicit(now)
        elif state is INCOMPLETE:
            if self.attempts < self.retries:
                self._solicit(now)
            else:
                self.failed = True
                self._set(FAILED, now, f"no answer to {self.attempts} neighbor solicitations")

    def cached(self, mac: bytes, now: float) -> None:
        """The next hop's MAC is already known (an earlier connection's answer): no solicitation; the
        entry is STALE (RFC 4861 7.3.3: the first packet through it starts DELAY)."""
        self.mac = mac
        self._set(STALE, now, "known from an earlier connection")

    def used(self, now: float) -> None:
        """We sent a packet through the entry (RFC 4861 7.3.3): a STALE one starts its DELAY."""
        if self.state is STALE:
            self._set(DELAY, now, "used while stale")
            self._deadline = now + self.delay

    def confirm(self, now: float) -> None:
        """Upper-layer confirmation (RFC 4861 7.3.1): the connection made forward progress (new data or
        a new ACK from the peer), so the neighbor is reachable."""
        if self.mac is None or self.failed:
            return
        if self.state is not REACHABLE:
            self._set(REACHABLE, now, "the connection made progress")
        self._deadline = now + self.reachable_time

    def failure_message(self, iface: str = "", role: str = "next hop") -> str:
        """The error for no answer (``role`` is the caller's word for the next hop; NDP's sentence names
        the address alone: "no answer from fe80::1 on eth0 to 3 neighbor solicitations")."""
        on = f" on {iface}" if iface else ""
        return f"no answer from {ip6_str(self.target_ip)}{on} to {self.attempts} neighbor solicitations"

    def on_ndp(self, msg: Icmpv6Message, src_ip: bytes, dst_ip: bytes, hop_limit: int, src_mac: bytes,
               now: float) -> None:
        """Handle one received ICMPv6 message (its IPv6 addresses and hop limit, the frame's source MAC).
        Messages other than NS and NA (router advertisements...) are not this resolver's."""
        if not isinstance(msg, NeighborSolicit | NeighborAdvert):
            return
        if hop_limit != NDP_HOP_LIMIT:
            self._events.append(NdpIgnored(now, ip6_str(src_ip), mac_str(src_mac),
                                           f"hop limit {hop_limit}, not 255: not sent on this link"))
            return
        if isinstance(msg, NeighborAdvert):
            self._on_advert(msg, dst_ip, src_mac, now)
        else:
            self._on_solicit(msg, src_ip, dst_ip, src_mac, now)

    # -- received messages ---------------------------------------------------------------------

    def _on_advert(self, na: NeighborAdvert, dst_ip: bytes, src_mac: bytes, now: float) -> None:
        lladdr = na.options.target_lladdr
        ip, mac = ip6_str(na.target), mac_str(lladdr if lladdr is not None else src_mac)
        if na.target != self.target_ip:
            why = ("another node claims our address" if na.target in self.own_ips
                   else "advertisement for an address we did not ask")
            self._events.append(NdpIgnored(now, ip, mac, why))
            return
        if na.solicited and is_multicast(dst_ip):
            self._events.append(NdpIgnored(now, ip, mac, "solicited advertisement to a multicast address"))
            return
        if self.failed:
            return
        rtt = round((now - self._sent_at) * 1000, 3)
        if self.mac is None:  # INCOMPLETE (7.2.5): the advertisement must carry the address
            if not self._started:
                self._events.append(NdpIgnored(now, ip, mac, "unsolicited advertisement"))
                return
            if lladdr is None:
                self._events.append(NdpIgnored(now, ip, mac, "no target link-layer address option"))
                return
            self.mac = lladdr
            self._events.append(NdpAdvert(now, ip, mac, rtt, na.solicited, na.override, na.router))
            if na.solicited:
                self._reachable(now, "solicited advertisement")
            else:
                self._set(STALE, now, "unsolicited advertisement")
                self._deadline = None
            return
        changed = lladdr is not None and lladdr != self.mac
        if changed and not na.override:
            self._events.append(NdpIgnored(
                now, ip, mac, f"MAC differs from {mac_str(self.mac)} and the override flag is clear: not followed"))
            if self.state is REACHABLE:
                self._set(STALE, now, "a different MAC advertised")
                self._deadline = None
            return
        if changed:
            assert lladdr is not None
            self._events.append(NdpAdvert(now, ip, mac, rtt, na.solicited, na.override, na.router))
            self.mac = lladdr
        if na.solicited:
            self._reachable(now, "solicited advertisement")
        elif changed:
            self._set(STALE, now, f"override to {mac}")
            self._deadline = None

    def _on_solicit(self, ns: NeighborSolicit, src_ip: bytes, dst_ip: bytes, src_mac: bytes, now: float) -> None:
        sll = ns.options.source_lladdr
        dad = src_ip == UNSPECIFIED
        if dad and (dst_ip != solicited_node(ns.target) or sll is not None):
            self._events.append(NdpIgnored(now, "::", mac_str(src_mac), "invalid duplicate address detection"))
            return
        if src_ip == self.target_ip and sll is not None and sll != self.mac and not self.failed:
            # 7.2.3: the next hop told us its address: cache it, STALE (a resolution in progress ends)
            old = self.mac
            self.mac = sll
            rtt = round((now - self._sent_at) * 1000, 3)
            self._events.append(NdpAdvert(now, ip6_str(src_ip), mac_str(sll), rtt))
            why = "its solicitation carried its MAC" if old is None else f"its MAC changed from {mac_str(old)}"
            self._set(STALE, now, why)
            self._deadline = None
        if ns.target not in self.own_ips:
            return  # for another node on the link (its solicited-node group is shared with ours)
        # 7.2.4: answer to the asker (to all nodes for duplicate address detection), override set
        answer = NeighborAdvert(ns.target, solicited=not dad, override=True,
                                options=NdpOptions(target_lladdr=self.local_mac))
        dst = ALL_NODES if dad else src_ip
        dst_mac = multicast_mac(ALL_NODES) if dad else (sll if sll is not None else src_mac)
        self._frames.append(self._frame(dst_mac, ns.target, dst, answer))
        self._events.append(NdpAnswered(now, ip6_str(src_ip), mac_str(dst_mac), ip6_str(ns.target)))

    # -- output ----------------------------------------------------------------------------------

    def _solicit(self, now: float) -> None:
        self.attempts += 1
        self.solicitations += 1
        unicast = self.state is PROBE
        if unicast:
            assert self.mac is not None
            dst, dst_mac = self.target_ip, self.mac
        else:
            dst = solicited_node(self.target_ip)
            dst_mac = multicast_mac(dst)
        ns = NeighborSolicit(self.target_ip, NdpOptions(source_lladdr=self.local_mac))
        self._frames.append(self._frame(dst_mac, self.local_ip, dst, ns))
        self._sent_at = now
        self._deadline = now + self.interval
        self._events.append(NdpSolicit(now, ip6_str(self.target_ip), self.attempts, unicast))

    def _frame(self, dst_mac: bytes, src: bytes, dst: bytes, msg: Icmpv6Message) -> bytes:
        packet = build_ipv6(src, dst, NH_ICMPV6, build_icmpv6(msg, src, dst), hop_limit=NDP_HOP_LIMIT)
        return build_ethernet(dst_mac, self.local_mac, ETH_P_IPV6, packet)

    def _reachable(self, now: float, reason: str) -> None:
        if self.state is not REACHABLE:
            self._set(REACHABLE, now, reason)
        self._deadline = now + self.reachable_time

    def _set(self, new: NeighborState, now: float, reason: str) -> None:
        old, self.state = self.state, new
        self._events.append(NeighborChange(now, ip6_str(self.target_ip), old.value, new.value, reason))
