"""Pure packet formats: bytes <-> small typed records, build and parse, checksums. No I/O.

Each protocol module (Ethernet, ARP, IPv4, ICMP, IPv6, ICMPv6 with neighbor discovery, TCP) has a record
(a dataclass), ``parse_*`` (bytes -> record, raising :class:`WireError` / :class:`ChecksumError`) and
``build_*`` (record -> bytes, checksum filled).
"""

from rawtui.wire.arp import ArpPacket, build_arp, parse_arp
from rawtui.wire.checksum import internet_checksum, pseudo_header_residue, residue, verify
from rawtui.wire.errors import ChecksumError, WireError
from rawtui.wire.ethernet import EthernetFrame, build_ethernet, mac_bytes, mac_str, parse_ethernet
from rawtui.wire.icmp import IcmpMessage, build_icmp, parse_icmp
from rawtui.wire.icmpv6 import Icmpv6Message, build_icmpv6, parse_icmpv6
from rawtui.wire.ipv4 import IPv4Header, build_ipv4, ip_bytes, ip_str, parse_ipv4
from rawtui.wire.ipv6 import IPv6Header, build_ipv6, ip6_bytes, ip6_str, parse_ipv6
from rawtui.wire.tcp import (
    TcpOptions,
    TcpSegment,
    build_pure_ack,
    build_tcp,
    flags_str,
    parse_options,
    parse_tcp,
)

__all__ = [
    "ArpPacket", "ChecksumError", "EthernetFrame", "IPv4Header", "IPv6Header", "IcmpMessage", "Icmpv6Message",
    "TcpOptions", "TcpSegment", "WireError",
    "build_arp", "build_ethernet", "build_icmp", "build_icmpv6", "build_ipv4", "build_ipv6", "build_pure_ack",
    "build_tcp", "flags_str", "internet_checksum", "ip6_bytes", "ip6_str", "ip_bytes", "ip_str", "mac_bytes",
    "mac_str", "parse_arp", "parse_ethernet", "parse_icmp", "parse_icmpv6", "parse_ipv4", "parse_ipv6",
    "parse_options", "parse_tcp", "pseudo_header_residue", "residue", "verify",
]
