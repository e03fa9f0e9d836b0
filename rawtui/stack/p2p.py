"""The next hop of a point-to-point link (tun, WireGuard, PPP, IP-in-IP: :attr:`Medium.IP`), sans-IO.

Such a link has no link-layer address: nothing to ask, nothing to wait for. :class:`PointToPoint` is the
resolver of that medium, done at once (its ``mac`` is empty: the frames carry no link header), so
:class:`~rawtui.stack.host.Host` drives it like :class:`~rawtui.stack.arp.ArpResolver` and
:class:`~rawtui.stack.ndp.NdpResolver` and nothing above asks which medium it is on.
"""

from __future__ import annotations

from rawtui.stack.resolver import Resolver

NO_LINK_ADDRESS = b""  # a point-to-point link's "MAC": frames begin with the IP header
DESCRIPTION = "point-to-point: no link-layer address"


class PointToPoint(Resolver):
    """Resolved as soon as started: a point-to-point link delivers to its one peer."""

    def __init__(self, local_ip: bytes, target_ip: bytes) -> None:
        super().__init__(NO_LINK_ADDRESS, local_ip, target_ip, 0, 0.0)

    def start(self, now: float) -> None:
        self.mac = NO_LINK_ADDRESS

    def cached(self, mac: bytes, now: float) -> None:
        self.mac = NO_LINK_ADDRESS

    def on_timer(self, now: float) -> None:
        """Nothing to retry."""

    def used(self, now: float) -> None:
        """No reachability state: the link itself is the neighbor."""

    def confirm(self, now: float) -> None:
        """No reachability state: the link itself is the neighbor."""

    def failure_message(self, iface: str = "", role: str = "next hop") -> str:
        return f"{DESCRIPTION} on {iface or 'this link'}: nothing to resolve"  # never fails
