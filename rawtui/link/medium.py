"""Which :class:`~rawtui.stack.events.Medium` an interface is, from its link type (ARPHRD_*, as
``ip link`` and SIOCGIFHWADDR say it): Ethernet-like links carry Ethernet frames, layer-3 links (tun,
WireGuard, PPP, IP-in-IP, SIT, GRE) bare IP packets. Every other link type is refused by name."""

from __future__ import annotations

from rawtui.stack.events import Medium

# <linux/if_arp.h>
ARPHRD_ETHER = 1
ARPHRD_PPP = 512
ARPHRD_TUNNEL = 768  # IP-in-IP
ARPHRD_TUNNEL6 = 769  # IP-in-IPv6
ARPHRD_SIT = 776  # IPv6-in-IPv4
ARPHRD_IPGRE = 778
ARPHRD_IP6GRE = 823
ARPHRD_RAWIP = 519  # raw IP (cellular modems)
ARPHRD_NONE = 0xFFFE  # tun, WireGuard
ARPHRD_LOOPBACK = 772

_MEDIUM = {
    ARPHRD_ETHER: Medium.ETHERNET, ARPHRD_NONE: Medium.IP, ARPHRD_PPP: Medium.IP, ARPHRD_TUNNEL: Medium.IP,
    ARPHRD_TUNNEL6: Medium.IP, ARPHRD_SIT: Medium.IP, ARPHRD_IPGRE: Medium.IP, ARPHRD_IP6GRE: Medium.IP,
    ARPHRD_RAWIP: Medium.IP,
}  # fmt: skip
ARPHRD_NAMES = {
    ARPHRD_ETHER: "ether", ARPHRD_NONE: "none", ARPHRD_PPP: "ppp", ARPHRD_TUNNEL: "ipip",
    ARPHRD_TUNNEL6: "tunnel6", ARPHRD_SIT: "sit", ARPHRD_IPGRE: "gre", ARPHRD_IP6GRE: "ip6gre",
    ARPHRD_RAWIP: "rawip", ARPHRD_LOOPBACK: "loopback", 24: "ieee1394", 32: "infiniband", 801: "ieee80211",
    803: "ieee80211_radiotap", 280: "can",
}  # fmt: skip


def medium_of(arphrd: int) -> Medium | None:
    """The medium of a link of this ARPHRD type; None: rawtui cannot run there."""
    return _MEDIUM.get(arphrd)


def link_type_name(arphrd: int) -> str:
    """``ether``, ``none``, ``ppp``...: how ``ip link`` names a link type."""
    return ARPHRD_NAMES.get(arphrd, f"link type {arphrd}")
