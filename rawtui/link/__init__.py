"""The only I/O: the AF_PACKET socket, route discovery, the firewall guard, the pcap writer."""

from rawtui.api import lazy

__all__ = [
    "FirewallGuard", "PacketSocket", "PcapWriter", "RouteInfo", "cleanup_stale", "explain_route",
    "list_interfaces", "read_pcap", "resolve_host", "resolve_route",
]
__getattr__ = lazy(__name__, {
    "PacketSocket": "afpacket", "FirewallGuard": "firewall", "cleanup_stale": "firewall", "PcapWriter": "pcap",
    "read_pcap": "pcap", "RouteInfo": "route", "explain_route": "route", "list_interfaces": "route",
    "resolve_host": "route", "resolve_route": "route",
})
