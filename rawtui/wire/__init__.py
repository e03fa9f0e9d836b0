"""Pure packet formats: bytes <-> small typed records, build and parse, checksums. No I/O.

Each protocol module has a record (a dataclass), ``parse_*`` (bytes -> record, raising
:class:`WireError` / :class:`ChecksumError`) and ``build_*`` (record -> bytes, checksum filled).
"""

from rawtui.wire.arp import ArpPacket, build_arp, parse_arp
from rawtui.wire.checksum import internet_checksum, pseudo_header_residue, residue, verify
from rawtui.wire.errors import ChecksumError, WireError
from rawtui.wire.ethernet import EthernetFrame, build_ethernet, mac_bytes, mac_str, parse_ethernet
from rawtui.wire.ipv4 import IPv4Header, build_ipv4, ip_bytes, ip_str, parse_ipv4
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
    "ArpPacket", "ChecksumError", "EthernetFrame", "IPv4Header", "TcpOptions", "TcpSegment", "WireError",
    "build_arp", "build_ethernet", "build_ipv4", "build_pure_ack", "build_tcp", "flags_str",
    "internet_checksum", "ip_bytes", "ip_str", "mac_bytes", "mac_str", "parse_arp", "parse_ethernet",
    "parse_ipv4", "parse_options", "parse_tcp", "pseudo_header_residue", "residue", "verify",
]
