"""ARP resolver for one next hop (RFC 826), sans-IO.

Broadcast a who-has, retry a few times, accept only a reply *from the asked IP*. After the answer, keep
watching: a different MAC claiming the next hop is reported (``ArpIgnored`` "MAC changed"), never
silently followed. Unsolicited replies and replies from other IPs are ignored (and reported).
"""

from __future__ import annotations

from rawtui.stack.events import ArpIgnored, ArpReply, ArpRequest
from rawtui.stack.resolver import Resolver
from rawtui.wire.arp import OP_REPLY, OP_REQUEST, ArpPacket, build_arp
from rawtui.wire.ethernet import BROADCAST, ETH_P_ARP, build_ethernet, mac_str
from rawtui.wire.ipv4 import ip_str


class ArpResolver(Resolver):
    def __init__(
        self, local_mac: bytes, local_ip: bytes, target_ip: bytes, *, retries: int = 3, interval: float = 1.0
    ) -> None:
        super().__init__(local_mac, local_ip, target_ip, retries, interval)
        self._first_sent_at: float | None = None

    def start(self, now: float) -> None:
        self._send_request(now)

    def cached(self, mac: bytes, now: float) -> None:
        """The next hop's MAC is already known (an earlier connection's answer): no request."""
        self.mac = mac

    def used(self, now: float) -> None:
        """We sent through the entry. ARP keeps no reachability state (NDP's resolver does)."""

    def confirm(self, now: float) -> None:
        """The connection made progress. ARP keeps no reachability state (NDP's resolver does)."""

    def failure_message(self, iface: str = "", role: str = "next hop") -> str:
        hop = ip_str(self.target_ip)
        on = f" on {iface}" if iface else ""
        link = f"{iface}'s" if iface else "this"
        return (f"no ARP reply from {hop}{on} after {self.attempts} tries: the {role} {hop} is not on {link} link,"
                " or it is down")

    def _send_request(self, now: float) -> None:
        self.attempts += 1
        pkt = ArpPacket(OP_REQUEST, self.local_mac, self.local_ip, b"\0" * 6, self.target_ip)
        self._frames.append(build_ethernet(BROADCAST, self.local_mac, ETH_P_ARP, build_arp(pkt)))
        self._sent_at = now
        if self._first_sent_at is None:
            self._first_sent_at = now
        self._deadline = now + self.interval
        self._events.append(ArpRequest(now, ip_str(self.target_ip), self.attempts))

    def on_timer(self, now: float) -> None:
        if self._deadline is None or now < self._deadline or self.done:
            return
        if self.attempts >= self.retries:
            self.failed = True
            self._deadline = None
            return
        self._send_request(now)

    def on_arp(self, pkt: ArpPacket, now: float) -> None:
        if pkt.op != OP_REPLY:
            return  # requests are the kernel's business: it owns our IP and answers them
        ip, mac = ip_str(pkt.sender_ip), mac_str(pkt.sender_mac)
        if pkt.sender_ip != self.target_ip:
            self._events.append(ArpIgnored(now, ip, mac, "reply from an IP we did not ask"))
            return
        if self.mac is not None:
            if pkt.sender_mac != self.mac:
                self._events.append(
                    ArpIgnored(now, ip, mac, f"MAC changed from {mac_str(self.mac)}: not followed")
                )
            return
        if self.attempts == 0:
            self._events.append(ArpIgnored(now, ip, mac, "unsolicited reply"))
            return
        if pkt.target_ip != self.local_ip:
            self._events.append(ArpIgnored(now, ip, mac, "reply addressed to another IP"))
            return
        self.mac = pkt.sender_mac
        self._deadline = None
        self._events.append(ArpReply(now, ip, mac, round((now - self._sent_at) * 1000, 3)))
