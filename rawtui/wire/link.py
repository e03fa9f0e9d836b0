"""Link-layer headers as captures hold them: which network protocol a captured frame carries, and where.

A capture file says its link type (tcpdump's LINKTYPE_* numbers); :func:`decapsulate` reads the link
header of one frame of that type and gives a :class:`Layer3`: the network protocol (IPv4, IPv6, ARP,
other), the offset of the network header in the frame, and what the link header tells besides (Ethernet
MACs, 802.1Q / 802.1ad tags, the Linux cooked header's packet type and address).

Link types read: Ethernet (1, with 802.1Q and QinQ tags), Linux cooked captures SLL (113, ``tcpdump -y
LINUX_SLL``) and SLL2 (276, what ``tcpdump -i any`` writes), raw IP (101, and 228 / 229 for IPv4 / IPv6
only), BSD loopback NULL (0, the address family in the writer's byte order) and LOOP (108, network order).
Any other link type raises :class:`UnsupportedLinkType`, which names it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import Enum

from rawtui.wire.errors import WireError

LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276

LINKTYPE_NAMES = {
    LINKTYPE_NULL: "NULL (BSD loopback)", LINKTYPE_ETHERNET: "Ethernet", LINKTYPE_RAW: "raw IP",
    LINKTYPE_LOOP: "LOOP (OpenBSD loopback)", LINKTYPE_LINUX_SLL: "Linux cooked (SLL)",
    LINKTYPE_IPV4: "raw IPv4", LINKTYPE_IPV6: "raw IPv6", LINKTYPE_LINUX_SLL2: "Linux cooked v2 (SLL2)",
}
# a few common ones that rawtui does not read, so the refusal can name them
_OTHER_NAMES = {
    6: "IEEE 802.5 Token Ring", 9: "PPP", 10: "FDDI", 50: "PPP in HDLC", 104: "Cisco HDLC",
    105: "IEEE 802.11", 127: "IEEE 802.11 radiotap", 147: "user-defined (147)", 192: "PPI",
    195: "IEEE 802.15.4", 201: "Bluetooth H4", 220: "USB (Linux, mmapped)", 249: "netlink",
    253: "netlink", 263: "IPMI", 274: "Linux nflog",
}

ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
ETH_P_8021Q = 0x8100
ETH_P_8021AD = 0x88A8
ETH_P_QINQ_OLD = 0x9100
_VLAN_TPIDS = frozenset((ETH_P_8021Q, ETH_P_8021AD, ETH_P_QINQ_OLD))

# BSD address families in NULL / LOOP headers: AF_INET is 2 everywhere; AF_INET6 differs by system
AF_INET = 2
AF_INET6 = frozenset((10, 24, 28, 30))  # Linux, NetBSD/OpenBSD, FreeBSD, macOS

# Linux cooked header packet types (sll_pkttype): who the frame was for
PACKET_HOST, PACKET_BROADCAST, PACKET_MULTICAST, PACKET_OTHERHOST, PACKET_OUTGOING = 0, 1, 2, 3, 4
ARPHRD_ETHER = 1

_ETH = struct.Struct("!6s6sH")
_VLAN = struct.Struct("!HH")
_SLL = struct.Struct("!HHH8sH")  # packet type, ARPHRD type, address length, address (8), protocol
_SLL2 = struct.Struct("!HHIHBB8s")  # protocol, reserved, ifindex, ARPHRD type, packet type, addr len, address
_U32LE = struct.Struct("<I")


class NetProto(Enum):
    """The network protocol a frame carries."""

    IPV4 = "IPv4"
    IPV6 = "IPv6"
    ARP = "ARP"
    OTHER = "other"


_BY_ETHERTYPE = {ETH_P_IP: NetProto.IPV4, ETH_P_IPV6: NetProto.IPV6, ETH_P_ARP: NetProto.ARP}


class UnsupportedLinkType(WireError):
    """A capture of a link type rawtui does not read (the message names it)."""

    def __init__(self, linktype: int) -> None:
        super().__init__(f"link type {linktype_name(linktype)} is not one rawtui reads (it reads "
                         + ", ".join(f"{name} ({lt})" for lt, name in sorted(LINKTYPE_NAMES.items())) + ")")
        self.linktype = linktype


@dataclass(slots=True)
class Layer3:
    """What the link header of one frame says: the network protocol and where its header starts.

    ``ethertype`` is the raw protocol number when the link has one (the Ethernet type, SLL protocol; the
    address family for NULL / LOOP; None for raw IP). ``src_mac`` / ``dst_mac`` are set for Ethernet
    (``src_mac`` also for a cooked capture with a 6-byte address), ``vlans`` lists the VLAN IDs of the
    802.1Q / 802.1ad tags, outermost first, and ``pkttype`` is a cooked capture's packet type
    (``PACKET_OUTGOING`` = sent by the capturing host).
    """

    proto: NetProto
    offset: int
    ethertype: int | None = None
    src_mac: bytes | None = None
    dst_mac: bytes | None = None
    vlans: tuple[int, ...] = ()
    pkttype: int | None = None


def linktype_name(linktype: int) -> str:
    """``"Ethernet (1)"``, ``"IEEE 802.11 (105)"``, ``"266"``: a link type for a message."""
    name = LINKTYPE_NAMES.get(linktype) or _OTHER_NAMES.get(linktype)
    return f"{name} ({linktype})" if name else str(linktype)


def decapsulate(linktype: int, data: bytes | bytearray | memoryview) -> Layer3 | None:
    """The network layer of a frame of ``linktype``; None when the frame is too short for its link header.

    Raises :class:`UnsupportedLinkType` for a link type not listed in the module's docstring.
    """
    if linktype == LINKTYPE_ETHERNET:
        return _ethernet(data)
    if linktype == LINKTYPE_LINUX_SLL2:
        if len(data) < 20:
            return None
        proto, _res, _ifindex, hatype, pkttype, alen, addr = _SLL2.unpack_from(data, 0)
        return _after_ethertype(data, 20, proto, addr[:6] if alen == 6 and hatype == ARPHRD_ETHER else None,
                                None, (), pkttype)
    if linktype == LINKTYPE_LINUX_SLL:
        if len(data) < 16:
            return None
        pkttype, hatype, alen, addr, proto = _SLL.unpack_from(data, 0)
        return _after_ethertype(data, 16, proto, addr[:6] if alen == 6 and hatype == ARPHRD_ETHER else None,
                                None, (), pkttype)
    if linktype in (LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6):
        if not data:
            return None
        version = data[0] >> 4
        proto = NetProto.IPV4 if version == 4 else NetProto.IPV6 if version == 6 else NetProto.OTHER
        if (linktype == LINKTYPE_IPV4 and proto is not NetProto.IPV4) or (
                linktype == LINKTYPE_IPV6 and proto is not NetProto.IPV6):
            proto = NetProto.OTHER
        return Layer3(proto, 0)
    if linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
        if len(data) < 4:
            return None
        if linktype == LINKTYPE_LOOP:
            family = struct.unpack_from("!I", data, 0)[0]
        else:  # the writer's byte order, not said anywhere: a family fits in the low 16 bits
            family = _U32LE.unpack_from(data, 0)[0]
            if family > 0xFFFF:
                family = struct.unpack_from("!I", data, 0)[0]
        proto = NetProto.IPV4 if family == AF_INET else NetProto.IPV6 if family in AF_INET6 else NetProto.OTHER
        return Layer3(proto, 4, family)
    raise UnsupportedLinkType(linktype)


def _ethernet(data: bytes | bytearray | memoryview) -> Layer3 | None:
    if len(data) < 14:
        return None
    dst, src, ethertype = _ETH.unpack_from(data, 0)
    return _after_ethertype(data, 14, ethertype, src, dst, (), None)


def _after_ethertype(data: bytes | bytearray | memoryview, off: int, ethertype: int, src: bytes | None,
                     dst: bytes | None, vlans: tuple[int, ...], pkttype: int | None) -> Layer3 | None:
    """Skip 802.1Q / 802.1ad tags after an EtherType at ``off``; None when a tag is cut short."""
    n = len(data)
    while ethertype in _VLAN_TPIDS:
        if n < off + 4:
            return None
        tci, ethertype = _VLAN.unpack_from(data, off)
        vlans += (tci & 0x0FFF,)
        off += 4
    return Layer3(_BY_ETHERTYPE.get(ethertype, NetProto.OTHER), off, ethertype, src, dst, vlans, pkttype)
