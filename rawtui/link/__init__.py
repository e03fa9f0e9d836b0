"""The only I/O: the AF_PACKET socket, route discovery, the firewall guard, the pcap writer."""

from rawtui.api import lazy

__all__ = [
    "Destination", "FirewallGuard", "PacketSocket", "PcapWriter", "RouteInfo", "choose_address",
    "cleanup_stale", "explain_route", "list_interfaces", "read_pcap", "resolve_route",
]
__getattr__ = lazy(__name__, {
    "PacketSocket": "afpacket", "FirewallGuard": "firewall", "cleanup_stale": "firewall", "PcapWriter": "pcap",
    "read_pcap": "pcap", "RouteInfo": "route", "explain_route": "route", "list_interfaces": "route",
    "choose_address": "route", "Destination": "route", "resolve_route": "route",
})
