"""Which interface, source address and next hop reach a destination, asked of the kernel over netlink;
IPv4 and IPv6 alike (the family is a parameter of the same lookups), and which address of a name to use
(:func:`choose_address`: curl's choice, IPv6 when the kernel routes it).

Everything comes from rtnetlink through pyroute2, no interface name is assumed. One shortcut: a
download with the kernel's choice (no -i) on a machine with only the standard policy rules asks
the kernel itself, three rtnetlink requests built and read here (the rules, `ip route get`, the link;
IPv6 adds the link's addresses: ~0.2 ms, ~0.3 ms for IPv6, where `ip -j` took ~7 ms in three processes) instead of importing pyroute2 (0.2-0.3 s of CPU,
measured, on every download); anything else, and anything unusual in those answers (an error, a
non-unicast route, a link that is not an up Ethernet one), goes the pyroute2 way, which explains it. The lab tests check that both ways give the same answer. With an interface forced by the user (-i), the next hop is worked out on that interface
and a warning says when the kernel would have chosen another one. :func:`explain_route` says why:
the routing table entry that matched, the policy rule that chose its table, and what ``-i`` would do
with every other interface.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import struct
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rawtui.errors import LinkError, UsageError
from rawtui.link.medium import link_type_name, medium_of
from rawtui.stack.events import Medium
from rawtui.wire.ipv6 import split_zone

if TYPE_CHECKING:
    from pyroute2 import IPRoute  # type: ignore[import-untyped]

ARPHRD_ETHER = 1
ARPHRD_LOOPBACK = 772
IFF_UP = 0x1
RT_TABLE_UNSPEC = 0  # in a lookup answer: no table entry matched (the kernel assumed on-link)
RT_TABLE_MAIN = 254
RTN_UNICAST = 1
RTN_LOCAL = 2
RTM_F_LOOKUP_TABLE = 0x1000  # report the table the route came from (`ip route get` sets it)
RTM_F_FIB_MATCH = 0x2000  # report the matching table entry itself (`ip route get fibmatch`)
FR_ACT_TO_TBL = 1
FR_ACT_GOTO = 2
FIB_RULE_INVERT = 0x2
NO_SUPPRESS = 0xFFFF_FFFF
SYSFS_NET = Path("/sys/class/net")
IFA_F_NODAD_ISSUES = 0x08 | 0x40  # IFA_F_DADFAILED | IFA_F_TENTATIVE: an address not (yet) usable
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_ROUTE_TYPES = {
    1: "unicast", 2: "local", 3: "broadcast", 4: "anycast", 5: "multicast", 6: "blackhole",
    7: "unreachable", 8: "prohibit", 9: "throw", 10: "nat",
}  # fmt: skip
_RULE_ACTIONS = {3: "nop", 6: "blackhole", 7: "unreachable", 8: "prohibit"}
_TABLE_NAMES = {253: "default", 254: "main", 255: "local"}
_PROTOCOLS = {
    0: "unspec", 1: "redirect", 2: "kernel", 3: "boot", 4: "static", 8: "gated", 9: "ra", 10: "mrt",
    11: "zebra", 12: "bird", 13: "dnrouted", 14: "xorp", 15: "ntk", 16: "dhcp", 17: "mrouted",
    18: "keepalived", 42: "babel", 99: "openr", 186: "bgp", 187: "isis", 188: "ospf", 189: "rip",
    192: "eigrp",
}  # fmt: skip
_ARPHRD_KINDS = {1: "ether", 772: "loopback", 65534: "none"}
POINT_TO_POINT = "point-to-point"  # a layer-3 link's next hop: no link-layer address to resolve
_STACKED_KINDS = {"vlan", "macvlan", "macvtap", "ipvlan", "ipvtap"}  # IFLA_LINK names the lower device


def _iproute() -> IPRoute:
    """A netlink route socket. pyroute2 is imported here, when a route is asked for, not with this
    module: its package imports every netlink family it knows (~0.2 s), which a download that fails
    before its route lookup (usage, privilege) should not wait for."""
    from pyroute2 import IPRoute  # type: ignore[import-untyped]

    return IPRoute()


@dataclass(frozen=True, slots=True)
class RouteInfo:
    """How to reach dst_ip: out of iface, from src_ip/src_mac, through next_hop."""

    iface: str
    ifindex: int
    src_ip: str
    src_mac: str  # "aa:bb:cc:dd:ee:ff"
    dst_ip: str
    gateway: str | None  # None: the destination is on-link
    next_hop: str  # the gateway, or dst_ip when on-link: the address to ARP for; POINT_TO_POINT on Medium.IP
    mtu: int
    reason: str  # why this interface and next hop, for the user
    warning: str | None
    medium: Medium = Medium.ETHERNET  # IP: a layer-3 link (tun, WireGuard, PPP): no MAC, nothing to resolve
    family: int = 4  # 4 or 6: the IP version of dst_ip (and src_ip, next_hop)
    local_addresses: tuple[str, ...] = ()  # IPv6: the interface's other addresses (its link-local one),
    #                                        which the Host answers neighbor solicitations for


@dataclass(frozen=True, slots=True)
class InterfaceInfo:
    """One network interface as `rawtui interfaces` lists it."""

    name: str
    index: int
    kind: str  # IFLA_INFO_KIND ("veth", "bridge", "vlan", "tun"...), else "physical", "wireless",
    #            "loopback", or the link type ("ether", "none")
    up: bool  # administratively up (IFF_UP)
    carrier: bool
    operstate: str  # "UP", "DOWN", "UNKNOWN", "LOWERLAYERDOWN"...
    mac: str
    ipv4: tuple[str, ...]  # "a.b.c.d/nn"
    mtu: int
    ethernet: bool  # ARPHRD_ETHER
    master: str | None = None  # the bridge (or bond) it is a port of
    parent: str | None = None  # the interface a vlan/macvlan is stacked on
    vlan_id: int | None = None
    medium: Medium | None = None  # what rawtui would speak on it (None: a link type it cannot use)
    ipv6: tuple[str, ...] = ()  # "2001:db8::2/64", "fe80::1/64"


@dataclass(frozen=True, slots=True)
class PolicyRule:
    """One `ip rule`: the rule that sent a lookup to its routing table."""

    priority: int
    table: int | None  # None when the rule does not point at a table (goto, blackhole...)
    text: str  # as `ip rule` prints it: "from all to 10.9.9.9 lookup 100"

    @property
    def is_default(self) -> bool:
        """One of the three rules every namespace starts with (local, main, default)."""
        return (self.priority, self.text) in _DEFAULT_RULES


_DEFAULT_RULES = {
    (0, "from all lookup local"),
    (32766, "from all lookup main"),
    (32767, "from all lookup default"),
}


@dataclass(frozen=True, slots=True)
class MatchedRoute:
    """The routing table entry a lookup ended on (`ip route get fibmatch`) and the rule that led there."""

    table: int
    table_name: str  # "main", "local", "default" or the number
    prefix: str | None  # "0.0.0.0/0"; None when the kernel would not say
    metric: int
    protocol: str  # "kernel", "boot", "static", "dhcp"...
    type: str  # "unicast", "local", "unreachable"...
    gateway: str | None
    iface: str | None
    rule: PolicyRule | None  # None: no rule could be found that leads to this table

    def describe(self) -> str:
        """Like a line of `ip route show table T`: "default via 10.77.1.1 dev eth0 metric 100 proto dhcp"."""
        words = [] if self.type == "unicast" else [self.type]
        words.append("default" if self.prefix in ("0.0.0.0/0", "::/0") else self.prefix or "?")
        if self.gateway:
            words.append(f"via {self.gateway}")
        if self.iface:
            words.append(f"dev {self.iface}")
        words.append(f"table {self.table_name}")
        if self.metric:
            words.append(f"metric {self.metric}")
        words.append(f"proto {self.protocol}")
        return " ".join(words)


@dataclass(frozen=True, slots=True)
class Override:
    """What `-i IFACE` would do to reach one destination."""

    iface: str
    kernel_choice: bool  # the kernel would use this interface anyway
    usable: bool  # rawtui can run on it: Ethernet, up, with an address of the destination's family
    reaches: bool  # a route through it leads to the destination (or the destination is on its subnet)
    src_ip: str | None
    gateway: str | None
    next_hop: str | None  # what rawtui would ARP for
    matched: MatchedRoute | None
    summary: str  # a few words: "via 10.77.1.1", "on-link", "cannot reach", "unusable"
    detail: str  # one sentence


@dataclass(frozen=True, slots=True)
class RouteExplanation:
    """Why the kernel would send traffic for dst_ip where it would, and what `-i` could change."""

    dst_ip: str
    kernel_iface: str | None  # the kernel's output interface, usable by rawtui or not
    kernel_error: str | None  # why the kernel has no route ("Network is unreachable")
    matched: MatchedRoute | None  # the kernel's routing table entry
    route: RouteInfo | None  # what a download would use (the kernel's choice, or the forced interface)
    error: str | None  # why a download cannot use it
    overrides: tuple[Override, ...]  # every interface of the namespace, by index


@dataclass(frozen=True, slots=True)
class Destination:
    """The address a download goes to (of which family), and why that one."""

    ip: str  # without its zone
    family: int  # 4 or 6
    reason: str  # "a literal IPv6 address", "AAAA and A records; IPv6 because the kernel routes ... via eth0"
    zone: str | None = None  # the interface of a link-local IPv6 address ("eth0")

    @property
    def address(self) -> str:
        """ip with its zone ("fe80::2%eth0"), as :func:`resolve_route` takes it."""
        return f"{self.ip}%{self.zone}" if self.zone else self.ip


def choose_address(host: str, family: int | None = None) -> Destination:
    """The address to download from, as curl chooses it: a literal as it is; a name's IPv6 address
    (its first AAAA record) when the kernel has a usable route for it, else its IPv4 one. ``family``
    (4 or 6: -4, -6) allows only that family. LinkError (exit 4) when the name has no address of it."""
    literal = _literal(host)
    if literal is not None:
        if family is not None and literal.family != family:
            raise UsageError(f"{host} is an IPv{literal.family} address, but -{family} asks for IPv{family}")
        return literal
    try:
        infos = socket.getaddrinfo(host, None, socket.AF_UNSPEC, socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        detail = exc.strerror if isinstance(exc, socket.gaierror) else str(exc)
        raise LinkError(f"cannot resolve host '{host}': {detail}") from None
    v4 = list(dict.fromkeys(str(info[4][0]) for info in infos if info[0] == socket.AF_INET))
    v6 = list(dict.fromkeys(str(info[4][0]) for info in infos if info[0] == socket.AF_INET6))  # "%zone" kept

    def named(address: str, family: int, reason: str) -> Destination:
        ip, _, zone = address.partition("%")
        return Destination(ip, family, reason, zone or None)

    if family is not None:
        wanted, other = (v4, v6) if family == 4 else (v6, v4)
        if not wanted:
            raise LinkError(
                f"host '{host}' has no IPv{family} address (it has {', '.join(other)}); drop -{family}"
            )
        also = f", not its {'AAAA' if family == 4 else 'A'} record" if other else ""
        return named(wanted[0], family, f"-{family}: its {'A' if family == 4 else 'AAAA'} record{also}")
    if not v6 and not v4:
        raise LinkError(f"cannot resolve host '{host}': no IPv4 or IPv6 address")
    if not v6:
        return named(v4[0], 4, "A record only")
    if not v4:
        return named(v6[0], 6, "AAAA record only")
    try:
        route = resolve_route(v6[0])
    except (LinkError, UsageError) as exc:
        no_route = exc.message.startswith("no IPv6 route")
        why = "no IPv6 route" if no_route else f"no usable IPv6 route ({exc.message})"
        return named(v4[0], 4, f"AAAA and A records; IPv4: {why}")
    why = f"IPv6 because the kernel routes {v6[0]} via {route.iface}"
    return named(v6[0], 6, f"AAAA and A records; {why}")


def _literal(host: str) -> Destination | None:
    """A literal IPv4 or IPv6 address (with its zone: "fe80::2%eth0"), else None (a name)."""
    try:
        return Destination(str(ipaddress.IPv4Address(host)), 4, "a literal IPv4 address")
    except ValueError:
        pass
    if ":" not in host:
        return None
    try:
        packed, zone = split_zone(host.removeprefix("[").removesuffix("]"))
    except ValueError as exc:
        raise UsageError(f"bad IPv6 address '{host}': {exc}") from None
    where = f" on {zone}" if zone else ""
    return Destination(str(ipaddress.IPv6Address(packed)), 6, f"a literal IPv6 address{where}", zone)


def list_interfaces(sysfs: Path = SYSFS_NET) -> list[InterfaceInfo]:
    """Return every interface of this network namespace, by index.

    sysfs is only read to tell physical and wireless devices from virtual ones.
    """
    with _iproute() as ipr:
        addresses: dict[tuple[int, int], list[str]] = {}
        for family in (socket.AF_INET, socket.AF_INET6):
            for addr in ipr.get_addr(family=family):
                address = addr.get("IFA_LOCAL") or addr.get("IFA_ADDRESS")
                addresses.setdefault((family, addr["index"]), []).append(f"{address}/{addr['prefixlen']}")
        links = list(ipr.get_links())
    names = {link["index"]: str(link.get("IFLA_IFNAME")) for link in links}
    return sorted(
        (
            _interface(link, addresses.get((socket.AF_INET, link["index"]), []), names, sysfs,
                       addresses.get((socket.AF_INET6, link["index"]), []))
            for link in links
        ),
        key=lambda info: info.index,
    )


def list_routes() -> list[MatchedRoute]:
    """The main routing table of each family, IPv4 then IPv6, as `ip route` and `ip -6 route` list it."""
    out = []
    with _iproute() as ipr:
        names = {link["index"]: str(link.get("IFLA_IFNAME")) for link in ipr.get_links()}
        for family, unspecified in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
            for route in ipr.get_routes(family=family, table=RT_TABLE_MAIN):
                oif = route.get("RTA_OIF")
                out.append(MatchedRoute(
                    table=RT_TABLE_MAIN,
                    table_name=_table_name(RT_TABLE_MAIN),
                    prefix=f"{route.get('RTA_DST') or unspecified}/{route['dst_len']}",
                    metric=int(route.get("RTA_PRIORITY") or 0),
                    protocol=_PROTOCOLS.get(route["proto"], str(route["proto"])),
                    type=_ROUTE_TYPES.get(route["type"], str(route["type"])),
                    gateway=route.get("RTA_GATEWAY"),
                    iface=names.get(oif) if oif else None,
                    rule=None,
                ))  # fmt: skip
    return out


def interface_kind(link: Any, sysfs: Path = SYSFS_NET) -> str:
    """What kind of interface an RTM_NEWLINK message describes, in one word."""
    info_kind = link.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND")
    if info_kind == "tun":
        return "tun" if link["ifi_type"] != ARPHRD_ETHER else "tap"
    if info_kind:
        return str(info_kind)
    if link["ifi_type"] == ARPHRD_LOOPBACK:
        return "loopback"
    device = _sysfs_dir(link, sysfs)
    if device is not None:
        if (device / "wireless").exists() or (device / "phy80211").exists():
            return "wireless"
        if (device / "device").exists():
            return "physical"
    return _ARPHRD_KINDS.get(link["ifi_type"], "other")


def _sysfs_dir(link: Any, sysfs: Path) -> Path | None:
    """/sys/class/net/NAME, if it describes this very interface (sysfs may be another namespace's)."""
    device = sysfs / str(link.get("IFLA_IFNAME"))
    try:
        index = int((device / "ifindex").read_text().strip())
    except (OSError, ValueError):
        return None
    return device if index == link["index"] else None


def _interface(
    link: Any, ipv4: list[str], names: dict[int, str], sysfs: Path, ipv6: list[str] | None = None
) -> InterfaceInfo:
    kind = interface_kind(link, sysfs)
    master = link.get("IFLA_MASTER")
    lower = link.get("IFLA_LINK")
    parent = None
    if kind in _STACKED_KINDS and lower and link.get("IFLA_LINK_NETNSID") is None:
        parent = names.get(lower, f"#{lower}")
    vlan_id = link.get_nested("IFLA_LINKINFO", "IFLA_INFO_DATA", "IFLA_VLAN_ID") if kind == "vlan" else None
    return InterfaceInfo(
        name=link.get("IFLA_IFNAME"),
        index=link["index"],
        kind=kind,
        up=bool(link["flags"] & IFF_UP),
        carrier=bool(link.get("IFLA_CARRIER")),
        operstate=str(link.get("IFLA_OPERSTATE") or "UNKNOWN"),
        mac=str(link.get("IFLA_ADDRESS") or ""),
        ipv4=tuple(ipv4),
        mtu=int(link.get("IFLA_MTU") or 0),
        ethernet=link["ifi_type"] == ARPHRD_ETHER,
        master=names.get(master, f"#{master}") if master else None,
        parent=parent,
        vlan_id=int(vlan_id) if vlan_id is not None else None,
        medium=medium_of(link["ifi_type"]),
        ipv6=tuple(ipv6 or ()),
    )


def resolve_route(dst_ip: str, iface: str | None = None, *, shortcut: bool = True) -> RouteInfo:
    """Return how to reach dst_ip: the kernel's choice, or the next hop on iface when one is forced.

    dst_ip is IPv4 or IPv6; a link-local IPv6 one names its interface with a zone (``fe80::2%eth0``) or
    with iface, which is then the link it lives on rather than an override of the kernel's choice.
    """
    dst, oif, iface = _destination(dst_ip, iface)
    if iface is None and shortcut:
        quick = _kernel_choice_by_ip(dst, oif)
        if quick is not None:
            return quick
    with _iproute() as ipr:
        rules = _rules(ipr, dst.version)
        return _resolve(ipr, dst, iface, rules, _lookup(ipr, str(dst), oif=oif))


def explain_route(dst_ip: str, iface: str | None = None) -> RouteExplanation:
    """Say how dst_ip would be reached and why: the kernel's lookup, and what `-i` would do on each interface.

    Raises LinkError only for destinations no interface can reach (loopback, multicast...); an unusable
    route is reported in the answer's ``error``.
    """
    dst, oif, iface = _destination(dst_ip, iface)
    with _iproute() as ipr:
        rules = _rules(ipr, dst.version)
        links = sorted(ipr.get_links(), key=lambda link: link["index"])
        names = {link["index"]: str(link.get("IFLA_IFNAME")) for link in links}
        kernel = _lookup(ipr, str(dst), oif=oif)
        kernel_oif = kernel.reply.get("RTA_OIF") if kernel.reply is not None else None
        matched = _matched(kernel, rules, dst, None, None, names) if kernel.reply is not None else None
        route: RouteInfo | None = None
        error: str | None = None
        try:
            route = _resolve(ipr, dst, iface, rules, kernel)
        except LinkError as exc:
            error = exc.message
        overrides = tuple(_override(ipr, dst, link, kernel_oif, rules, names) for link in links)
    return RouteExplanation(
        dst_ip=str(dst),
        kernel_iface=names.get(kernel_oif) if kernel_oif else None,
        kernel_error=kernel.error or None,
        matched=matched,
        route=route,
        error=error,
        overrides=overrides,
    )


def _destination(dst_ip: str, iface: str | None) -> tuple[IPAddress, int | None, str | None]:
    """dst_ip checked, the index of the interface a link-local IPv6 one lives on (its zone, else -i: the
    lookup is then made out of it, not overridden), and the interface still to force."""
    dst, zone = _check_destination(dst_ip)
    if not (dst.version == 6 and dst.is_link_local):
        return dst, None, iface
    if zone is not None and iface is not None and zone != iface:
        raise UsageError(f"{dst_ip} is on {zone}, but -i says {iface}")
    name = zone or iface
    if name is None:
        raise UsageError(
            f"cannot route to {dst}: a link-local address needs its interface ({dst}%eth0, "
            f"in a URL [{dst}%25eth0], or -i eth0)"
        )
    try:
        return dst, socket.if_nametoindex(name), None
    except OSError:
        names = ", ".join(name for _index, name in socket.if_nameindex())
        raise LinkError(f"unknown interface '{name}' (available: {names})") from None


def _check_destination(dst_ip: str) -> tuple[IPAddress, str | None]:
    """The address and its IPv6 zone (None without one)."""
    zone = None
    dst: IPAddress
    try:
        if ":" in dst_ip:
            packed, zone = split_zone(dst_ip)
            dst = ipaddress.IPv6Address(packed)
        else:
            dst = ipaddress.IPv4Address(dst_ip)
    except ValueError as exc:
        detail = str(exc) if "zone" in str(exc) else "not an IP address"
        raise LinkError(f"cannot route to '{dst_ip}': {detail}") from None
    if isinstance(dst, ipaddress.IPv6Address) and dst.ipv4_mapped is not None:
        raise LinkError(f"cannot route to {dst}: an IPv4-mapped address, use {dst.ipv4_mapped}")
    if dst.is_loopback:
        raise LinkError(f"cannot reach {dst}: raw sockets cannot reach loopback, use a real interface")
    if dst.is_multicast or dst == ipaddress.IPv4Address("255.255.255.255") or dst.is_unspecified:
        raise LinkError(f"cannot download from {dst}: it is not a unicast address")
    return dst, zone


def _resolve(
    ipr: IPRoute, dst: IPAddress, iface: str | None, rules: list[Any], kernel: _Lookup
) -> RouteInfo:
    if iface is None:
        if kernel.reply is None:
            raise LinkError(_no_route(dst, kernel.error))
        return _kernel_choice(ipr, dst, kernel, rules)
    return _forced_choice(ipr, dst, iface, kernel, rules)


def _no_route(dst: IPAddress, error: str) -> str:
    """No route for the family: "no IPv6 route to 2001:db8::9 (see `ip -6 route`)"."""
    if error != os.strerror(errno.ENETUNREACH):
        return f"no route to {dst}: {error}"  # an unreachable or prohibit route, a policy rule...
    return f"no IPv{dst.version} route to {dst} (see `ip{' -6' if dst.version == 6 else ''} route`)"


# -- asking the kernel ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Lookup:
    """One `ip route get` answer (None and why not), with the table entry behind it (`fibmatch`)."""

    reply: Any  # None when the kernel has no route
    error: str
    fib: Any  # None when no table entry matched

    @property
    def table(self) -> int:
        if self.reply is None:
            return RT_TABLE_UNSPEC
        return int(self.reply.get("RTA_TABLE") or self.reply["table"])


def _lookup(ipr: IPRoute, dst: str, oif: int | None = None, src: str | None = None) -> _Lookup:
    """The kernel's route for dst (out of oif, from src, when given), as `ip route get` asks for it."""
    query: dict[str, Any] = {"dst": dst, "family": socket.AF_INET6 if ":" in dst else socket.AF_INET}
    if oif is not None:
        query["oif"] = oif
    if src is not None:
        query["src"] = src
    from pyroute2.netlink.exceptions import NetlinkError  # type: ignore[import-untyped]

    try:
        answer = list(ipr.route("get", flags=RTM_F_LOOKUP_TABLE, **query))
    except NetlinkError as exc:
        return _Lookup(None, exc.args[1] if len(exc.args) > 1 else str(exc), None)
    if not answer:
        return _Lookup(None, "the kernel gave no answer", None)
    found = _Lookup(answer[0], "", None)
    if found.table == RT_TABLE_UNSPEC:
        return found
    try:
        fib = list(ipr.route("get", flags=RTM_F_LOOKUP_TABLE | RTM_F_FIB_MATCH, **query))
    except NetlinkError:
        return found
    return _Lookup(found.reply, "", fib[0] if fib else None)


def _lookup_via(
    ipr: IPRoute, dst: IPAddress, index: int, rules: list[Any]
) -> tuple[_Lookup, str | None]:
    """The kernel's route for dst out of interface index, and the source address it picks.

    When source-based rules exist (`ip rule add from ...`), the lookup is made again from that
    source address, as a connection from it would be routed.
    """
    first = _lookup(ipr, str(dst), oif=index)
    src = first.reply.get("RTA_PREFSRC") if first.reply is not None else None
    if src and any(rule["src_len"] for rule in rules):
        again = _lookup(ipr, str(dst), oif=index, src=src)
        if again.reply is not None:
            return again, src
    return first, src


def _rules(ipr: IPRoute, version: int = 4) -> list[Any]:
    family = socket.AF_INET6 if version == 6 else socket.AF_INET
    return sorted(ipr.get_rules(family=family), key=lambda rule: rule.get("FRA_PRIORITY") or 0)


# -- the kernel's choice, or -i ------------------------------------------------------------------


# rtnetlink, for the shortcut (<linux/rtnetlink.h>, <linux/fib_rules.h>, <linux/if_link.h>)
_RTM_GETLINK = 18
_RTM_GETADDR = 22
_RTM_GETROUTE = 26
_RTM_GETRULE = 34
_NLM_F_REQUEST = 0x1
_NLM_F_DUMP = 0x300
_NLMSG_ERROR = 2
_NLMSG_DONE = 3
_NLMSG = struct.Struct("=IHHII")  # struct nlmsghdr
_RTMSG = struct.Struct("=BBBBBBBBI")  # struct rtmsg; struct fib_rule_hdr has the same layout
_IFINFOMSG = struct.Struct("=BxHiII")  # struct ifinfomsg
_IFADDRMSG = struct.Struct("=BBBBI")  # struct ifaddrmsg
_RTA = struct.Struct("=HH")
_RTA_DST, _RTA_OIF, _RTA_GATEWAY, _RTA_PREFSRC, _RTA_METRICS, _RTA_TABLE = 1, 4, 5, 7, 8, 15
_RTAX_MTU = 2
_IFA_ADDRESS, _IFA_FLAGS = 1, 8
_IFLA_ADDRESS, _IFLA_IFNAME, _IFLA_MTU = 1, 3, 4
_FRA_PRIORITY, _FRA_SUPPRESS_PREFIXLEN, _FRA_TABLE, _FRA_PROTOCOL = 6, 14, 15, 21
_IFF_LOWER_UP = 0x10000
# (priority, table): local, main and (IPv4 only) default
_STANDARD_RULES: dict[int, list[tuple[int, int]]] = {
    socket.AF_INET: [(0, 255), (32766, 254), (32767, 253)],
    socket.AF_INET6: [(0, 255), (32766, 254)],
}


def _rtnl_ask(sock: socket.socket, kind: int, flags: int, body: bytes) -> list[tuple[bytes, dict[int, bytes]]]:
    """One rtnetlink request; its answers as (fixed header, attributes). OSError when the kernel refuses."""
    sock.send(_NLMSG.pack(_NLMSG.size + len(body), kind, _NLM_F_REQUEST | flags, 1, 0) + body)
    fixed = {_RTM_GETLINK: _IFINFOMSG.size, _RTM_GETADDR: _IFADDRMSG.size}.get(kind, _RTMSG.size)
    out: list[tuple[bytes, dict[int, bytes]]] = []
    while True:
        data = sock.recv(1 << 16)
        off = 0
        while off + _NLMSG.size <= len(data):
            length, reply = _NLMSG.unpack_from(data, off)[:2]
            payload = data[off + _NLMSG.size: off + length]
            off += (length + 3) & ~3
            if reply == _NLMSG_DONE:
                return out
            if reply == _NLMSG_ERROR:
                code = -struct.unpack_from("=i", payload)[0]
                if code:
                    raise OSError(code, os.strerror(code))
                return out
            out.append((payload[:fixed], _rtattrs(payload, fixed)))
        if not flags & _NLM_F_DUMP and out:
            return out


def _rtattrs(payload: bytes, off: int) -> dict[int, bytes]:
    """The attributes (struct rtattr) of a message from off on, by type (nested ones left packed)."""
    attrs: dict[int, bytes] = {}
    while off + _RTA.size <= len(payload):
        alen, atype = _RTA.unpack_from(payload, off)
        if alen < _RTA.size:
            break
        attrs[atype & 0x3FFF] = payload[off + _RTA.size: off + alen]
        off += (alen + 3) & ~3
    return attrs


def _standard_rules(sock: socket.socket, family: int) -> bool:
    """Only the policy rules every namespace starts with (no selectors, no other rule)."""
    found = []
    ask = _RTMSG.pack(family, 0, 0, 0, 0, 0, 0, 0, 0)
    for head, attrs in _rtnl_ask(sock, _RTM_GETRULE, _NLM_F_DUMP, ask):
        _family, dst_len, src_len, tos, table, _r1, _r2, action, flags = _RTMSG.unpack(head)
        if dst_len or src_len or tos or flags or action != FR_ACT_TO_TBL:
            return False
        if set(attrs) - {_FRA_PRIORITY, _FRA_SUPPRESS_PREFIXLEN, _FRA_TABLE, _FRA_PROTOCOL}:
            return False
        if _FRA_SUPPRESS_PREFIXLEN in attrs and attrs[_FRA_SUPPRESS_PREFIXLEN] != b"\xff\xff\xff\xff":
            return False
        if _FRA_TABLE in attrs:
            table = int.from_bytes(attrs[_FRA_TABLE], sys.byteorder)
        found.append((int.from_bytes(attrs.get(_FRA_PRIORITY, b"\0\0\0\0"), sys.byteorder), table))
    return found == _STANDARD_RULES[family]


def _kernel_choice_by_ip(dst: IPAddress, oif: int | None = None) -> RouteInfo | None:
    """The kernel's choice as :func:`_kernel_choice` makes it, from rtnetlink requests made here (the
    rules, `ip route get` (out of oif), the link, and for IPv6 the link's addresses); None when the
    answer needs the full explanation (policy rules, errors, unusual routes or links), which pyroute2
    gives. One function for both families: only the address sizes and the standard rules differ."""
    family = socket.AF_INET6 if dst.version == 6 else socket.AF_INET
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as sock:
            sock.settimeout(5.0)
            sock.bind((0, 0))
            if not _standard_rules(sock, family):
                return None
            body = _RTMSG.pack(family, dst.max_prefixlen, 0, 0, 0, 0, 0, 0, RTM_F_LOOKUP_TABLE)
            body += _RTA.pack(_RTA.size + len(dst.packed), _RTA_DST) + dst.packed
            if oif is not None:
                body += _RTA.pack(_RTA.size + 4, _RTA_OIF) + struct.pack("=i", oif)
            routes = _rtnl_ask(sock, _RTM_GETROUTE, 0, body)
            if len(routes) != 1:
                return None
            head, attrs = routes[0]
            table, rtype = _RTMSG.unpack(head)[4], _RTMSG.unpack(head)[7]
            if _RTA_TABLE in attrs:
                table = int.from_bytes(attrs[_RTA_TABLE], sys.byteorder)
            if rtype != RTN_UNICAST or _RTA_OIF not in attrs or _RTA_PREFSRC not in attrs:
                return None
            if table not in (RT_TABLE_MAIN, 253):
                return None
            index = int.from_bytes(attrs[_RTA_OIF], sys.byteorder)
            src = str(ipaddress.ip_address(attrs[_RTA_PREFSRC]))
            gateway = str(ipaddress.ip_address(attrs[_RTA_GATEWAY])) if _RTA_GATEWAY in attrs else None
            metrics = _rtattrs(attrs.get(_RTA_METRICS, b""), 0)
            route_mtu = int.from_bytes(metrics[_RTAX_MTU], sys.byteorder) if _RTAX_MTU in metrics else None
            links = _rtnl_ask(sock, _RTM_GETLINK, 0, _IFINFOMSG.pack(socket.AF_UNSPEC, 0, index, 0, 0))
            local: tuple[str, ...] = ()
            if family == socket.AF_INET6:
                dump = _rtnl_ask(sock, _RTM_GETADDR, _NLM_F_DUMP, _IFADDRMSG.pack(family, 0, 0, 0, 0))
                local = tuple(
                    str(ipaddress.IPv6Address(addr[_IFA_ADDRESS]))
                    for head, addr in dump
                    if _IFADDRMSG.unpack(head)[4] == index and _IFA_ADDRESS in addr
                    and not _addr_flags(_IFADDRMSG.unpack(head)[2], addr.get(_IFA_FLAGS)) & IFA_F_NODAD_ISSUES
                )
                if src not in local:
                    return None
                local = tuple(address for address in local if address != src)
    except (OSError, ValueError, struct.error):
        return None
    if len(links) != 1:
        return None
    head, link = links[0]
    _family, kind, _index, flags, _change = _IFINFOMSG.unpack(head)
    mac = link.get(_IFLA_ADDRESS, b"")
    medium = medium_of(kind)
    if (medium is None or not flags & IFF_UP or (medium is Medium.ETHERNET and len(mac) != 6)
            or _IFLA_IFNAME not in link or _IFLA_MTU not in link):
        return None
    ethernet = medium is Medium.ETHERNET
    name = link[_IFLA_IFNAME].rstrip(b"\0").decode(errors="replace")
    via = f"via {gateway}" if gateway else "on-link"
    link_mtu = int.from_bytes(link[_IFLA_MTU], sys.byteorder)
    return RouteInfo(
        iface=name,
        ifindex=index,
        src_ip=src,
        src_mac=mac.hex(":") if ethernet else "",
        dst_ip=str(dst),
        gateway=gateway,
        next_hop=(gateway or str(dst)) if ethernet else POINT_TO_POINT,
        mtu=min(link_mtu, route_mtu) if route_mtu else link_mtu,
        reason=f"kernel route (table {_table_name(table)}, {dst} {via} dev {name})",
        warning=None if flags & _IFF_LOWER_UP else f"interface '{name}' has no carrier",
        medium=medium,
        family=dst.version,
        local_addresses=local,
    )


def _addr_flags(ifa_flags: int, attr: bytes | None) -> int:
    """An address's flags: IFA_FLAGS (32 bits) when the kernel sends it, else ifa_flags (8 bits)."""
    return int.from_bytes(attr, sys.byteorder) if attr is not None and len(attr) == 4 else ifa_flags


def _kernel_choice(ipr: IPRoute, dst: IPAddress, kernel: _Lookup, rules: list[Any]) -> RouteInfo:
    route = kernel.reply
    if route["type"] == RTN_LOCAL:
        raise LinkError(
            f"cannot reach {dst}: it is an address of this machine, which raw sockets cannot reach"
        )
    if route["type"] != RTN_UNICAST:
        kind = _ROUTE_TYPES.get(route["type"], str(route["type"]))
        raise LinkError(f"cannot reach {dst}: the kernel route to it is of type {kind}")
    link = _usable_link(ipr, route.get("RTA_OIF"))
    name = link.get("IFLA_IFNAME")
    networks = _networks(ipr, link["index"], dst.version)
    if not networks:
        raise LinkError(f"interface '{name}' has no IPv{dst.version} address")
    gateway = route.get("RTA_GATEWAY")
    src = route.get("RTA_PREFSRC") or _pick_source(networks, dst)
    via = f"via {gateway}" if gateway else "on-link"
    reason = f"kernel route (table {_table_name(kernel.table)}, {dst} {via} dev {name})"
    matched = _matched(kernel, rules, dst, None, None, {})
    if matched.rule is not None and not matched.rule.is_default:
        reason = f"{reason[:-1]}; rule {matched.rule.priority}: {matched.rule.text})"
    return _route_info(link, src, dst, gateway, reason, None, networks, _route_mtu(route))


def _forced_choice(
    ipr: IPRoute, dst: IPAddress, iface: str, kernel: _Lookup, rules: list[Any]
) -> RouteInfo:
    found = ipr.link_lookup(ifname=iface)
    if not found:
        names = ", ".join(info.name for info in list_interfaces())
        raise LinkError(f"unknown interface '{iface}' (available: {names})")
    link = _usable_link(ipr, found[0])
    index = link["index"]
    networks = _networks(ipr, index, dst.version)
    if not networks:
        raise LinkError(f"interface '{iface}' has no IPv{dst.version} address")
    if kernel.reply is not None and kernel.reply["type"] == RTN_LOCAL:
        raise LinkError(
            f"cannot reach {dst}: it is an address of this machine, which raw sockets cannot reach"
        )
    warnings = []
    forced, src = _lookup_via(ipr, dst, index, rules)
    gateway: str | None = None
    on_subnet = any(dst in net.network for net in networks)
    if forced.table != RT_TABLE_UNSPEC and forced.reply["type"] == RTN_UNICAST:
        gateway = forced.reply.get("RTA_GATEWAY")
        if gateway is None and on_subnet:
            how = f"{dst} is on-link"
        else:
            fib = forced.fib
            prefix = (
                "a route" if fib is None else _prefix_text(fib.get("RTA_DST") or _any(dst), fib["dst_len"])
            )
            via = f"via {gateway}" if gateway else "on-link"
            default = prefix in ("0.0.0.0/0", "::/0")
            how = f"{'default' if default else prefix} {via}, table {_table_name(forced.table)}"
    elif on_subnet:
        how = f"{dst} is on-link"
    else:
        how = f"no route via {iface}, assuming {dst} is on-link"
        warnings.append(f"no route to {dst} via {iface}: assuming it is on-link")
    kernel_oif = None if kernel.reply is None else kernel.reply.get("RTA_OIF")
    if kernel.reply is None:
        warnings.append(f"the kernel has no route to {dst}")
    elif kernel_oif != index:
        warnings.append(f"the kernel would use {_link_name(ipr, kernel_oif)}, not {iface}")
    if src is None or ipaddress.ip_address(src) not in {net.ip for net in networks}:
        src = _pick_source(networks, dst)
    route_mtu = _route_mtu(forced.reply) if forced.reply is not None else None
    return _route_info(link, src, dst, gateway, f"-i {iface} (override, {how})", "; ".join(warnings) or None,
                       networks, route_mtu)  # fmt: skip


def _override(
    ipr: IPRoute,
    dst: IPAddress,
    link: Any,
    kernel_oif: int | None,
    rules: list[Any],
    names: dict[int, str],
) -> Override:
    """What `-i` with this interface would do for dst."""
    name = str(link.get("IFLA_IFNAME"))
    index = link["index"]
    chosen = index == kernel_oif

    def refused(detail: str) -> Override:
        return Override(name, chosen, False, False, None, None, None, None, "unusable", detail)

    if link["ifi_type"] == ARPHRD_LOOPBACK:
        return refused("loopback: raw sockets cannot reach anything through it")
    if medium_of(link["ifi_type"]) is None:
        return refused(f"link type {link_type_name(link['ifi_type'])}: rawtui cannot run there")
    if not link["flags"] & IFF_UP:
        return refused(f"it is down: bring it up with `ip link set {name} up`")
    networks = _networks(ipr, index, dst.version)
    if not networks:
        master = link.get("IFLA_MASTER")
        if master:
            port_of = names.get(master, master)
            return refused(f"no IPv{dst.version} address: it is a port of {port_of}, use that")
        return refused(f"no IPv{dst.version} address")
    carrier = "" if link.get("IFLA_CARRIER") else "; it has no carrier"
    look, src = _lookup_via(ipr, dst, index, rules)
    subnets = ", ".join(str(net.network) for net in networks)
    if look.reply is None:
        return Override(name, chosen, True, False, src, None, None, None, "cannot reach",
                        f"the kernel has no route to {dst} through {name}: {look.error}{carrier}")  # fmt: skip
    src = look.reply.get("RTA_PREFSRC") or _pick_source(networks, dst)
    on_subnet = any(dst in net.network for net in networks)
    if look.table == RT_TABLE_UNSPEC and not on_subnet:
        guess = (f"send to {dst} into that link, where only its far end could answer it"
                 if medium_of(link["ifi_type"]) is Medium.IP else
                 f"ARP for {dst} on that link and get no reply unless it is really there")
        return Override(
            name, chosen, True, False, src, None, str(dst), None, "cannot reach",
            f"this subnet ({subnets}) cannot reach the host: no route to {dst} through {name}, so rawtui "
            f"would {guess}{carrier}",
        )  # fmt: skip
    if look.table == RT_TABLE_UNSPEC:
        return Override(name, chosen, True, True, src, None, str(dst), None, "on-link",
                        f"on-link: {dst} is on {subnets}{carrier}")  # fmt: skip
    matched = _matched(look, rules, dst, src, name, names)
    if look.reply["type"] != RTN_UNICAST:
        return Override(name, chosen, True, False, src, None, None, matched, "cannot reach",
                        f"the route through {name} is {matched.type}: {matched.describe()}{carrier}")  # fmt: skip
    gateway = look.reply.get("RTA_GATEWAY")
    summary = f"via {gateway}" if gateway else "on-link"
    if medium_of(link["ifi_type"]) is Medium.IP:
        return Override(name, chosen, True, True, src, gateway, POINT_TO_POINT, matched, POINT_TO_POINT,
                        f"{POINT_TO_POINT} (no link-layer address): {matched.describe()}{carrier}")
    rule = (
        f" (rule {matched.rule.priority}: {matched.rule.text})"
        if matched.rule and not matched.rule.is_default
        else ""
    )
    return Override(name, chosen, True, True, src, gateway, gateway or str(dst), matched, summary,
                    f"{summary}: {matched.describe()}{rule}{carrier}")  # fmt: skip


# -- which table entry, which rule --------------------------------------------------------------


def _matched(
    look: _Lookup,
    rules: list[Any],
    dst: IPAddress,
    src: str | None,
    oifname: str | None,
    names: dict[int, str],
) -> MatchedRoute:
    reply, fib = look.reply, look.fib
    table = look.table
    entry = fib if fib is not None else reply
    prefix = None
    if fib is not None:
        prefix = f"{fib.get('RTA_DST') or _any(dst)}/{fib['dst_len']}"
    oif = reply.get("RTA_OIF")
    return MatchedRoute(
        table=table,
        table_name=_table_name(table),
        prefix=prefix,
        metric=int(entry.get("RTA_PRIORITY") or 0),
        protocol=_PROTOCOLS.get(entry["proto"], str(entry["proto"])) if fib is not None else "?",
        type=_ROUTE_TYPES.get(reply["type"], str(reply["type"])),
        gateway=reply.get("RTA_GATEWAY"),
        iface=names.get(oif) if oif else None,
        rule=selecting_rule(rules, table, fib["dst_len"] if fib is not None else None, dst, src, oifname),
    )


def selecting_rule(
    rules: list[Any],
    table: int,
    prefixlen: int | None,
    dst: IPAddress,
    src: str | None,
    oifname: str | None,
) -> PolicyRule | None:
    """The first policy rule that matches the lookup and leads to table, walking them as the kernel does.

    The lookup is a locally generated one (input interface lo), with no firewall mark, protocol or
    ports, from this process's uid: what `ip route get` asks.
    """
    goto: int | None = None
    for rule in rules:
        priority = rule.get("FRA_PRIORITY") or 0
        if goto is not None and priority < goto:
            continue
        goto = None
        if not rule_matches(rule, dst, src, oifname):
            continue
        if rule["action"] == FR_ACT_GOTO:
            goto = rule.get("FRA_GOTO")
            continue
        if rule["action"] != FR_ACT_TO_TBL:
            if rule["action"] in _RULE_ACTIONS and _RULE_ACTIONS[rule["action"]] != "nop":
                return None  # the lookup ends here: it cannot have found a table entry
            continue
        if (rule.get("FRA_TABLE") or rule["table"]) != table:
            continue  # the kernel looked in that table first and found nothing (or was told to ignore it)
        suppress = rule.get("FRA_SUPPRESS_PREFIXLEN")
        if (
            suppress is not None
            and suppress != NO_SUPPRESS
            and prefixlen is not None
            and prefixlen <= suppress
        ):
            continue
        return PolicyRule(priority, table, rule_text(rule))
    return None


def rule_matches(
    rule: Any,
    dst: IPAddress,
    src: str | None = None,
    oifname: str | None = None,
    *,
    iifname: str = "lo",
    mark: int = 0,
    uid: int | None = None,
) -> bool:
    """Whether an RTM_NEWRULE message selects a lookup for dst (fib_rule_match + fib4/fib6_rule_match)."""
    uid = os.getuid() if uid is None else uid
    ok = True
    if rule.get("FRA_IIFNAME") and rule.get("FRA_IIFNAME") != iifname:
        ok = False
    if rule.get("FRA_OIFNAME") and rule.get("FRA_OIFNAME") != oifname:
        ok = False
    fwmark = rule.get("FRA_FWMARK")
    mask = rule.get("FRA_FWMASK")
    if mask is None:
        mask = 0xFFFF_FFFF if fwmark else 0
    if (mark ^ (fwmark or 0)) & mask:
        ok = False
    if rule.get("FRA_L3MDEV"):
        ok = False  # VRF lookups: not a plain locally generated flow
    uids = rule.get("FRA_UID_RANGE")
    if uids and not uids["start"] <= uid <= uids["end"]:
        ok = False
    if rule.get("FRA_IP_PROTO"):
        ok = False
    for ports in (rule.get("FRA_SPORT_RANGE"), rule.get("FRA_DPORT_RANGE")):
        if ports and not ports["start"] <= 0 <= ports["end"]:
            ok = False
    if rule["dst_len"] and dst not in _network(rule.get("FRA_DST") or _any(dst), rule["dst_len"]):
        ok = False
    if rule["src_len"] and ipaddress.ip_address(src or _any(dst)) not in _network(
        rule.get("FRA_SRC") or _any(dst), rule["src_len"]
    ):
        ok = False
    if rule["tos"]:
        ok = False
    return not ok if rule["flags"] & FIB_RULE_INVERT else ok


def rule_text(rule: Any) -> str:
    """An RTM_NEWRULE message as `ip rule` prints it, without the priority."""
    words = ["not"] if rule["flags"] & FIB_RULE_INVERT else []
    words += ["from", _prefix_text(rule.get("FRA_SRC"), rule["src_len"]) if rule["src_len"] else "all"]
    if rule["dst_len"]:
        words += ["to", _prefix_text(rule.get("FRA_DST"), rule["dst_len"])]
    for word, value in (("tos", hex(rule["tos"]) if rule["tos"] else None),
                        ("iif", rule.get("FRA_IIFNAME")), ("oif", rule.get("FRA_OIFNAME")),
                        ("ipproto", rule.get("FRA_IP_PROTO"))):  # fmt: skip
        if value:
            words += [word, str(value)]
    if rule.get("FRA_FWMARK") or rule.get("FRA_FWMASK"):
        mask = rule.get("FRA_FWMASK")
        mark = hex(rule.get("FRA_FWMARK") or 0)
        words += ["fwmark", mark if mask in (None, 0xFFFF_FFFF) else f"{mark}/{hex(mask)}"]
    for word, key in (
        ("uidrange", "FRA_UID_RANGE"),
        ("sport", "FRA_SPORT_RANGE"),
        ("dport", "FRA_DPORT_RANGE"),
    ):
        ports = rule.get(key)
        if ports:
            words += [word, f"{ports['start']}-{ports['end']}"]
    if rule.get("FRA_L3MDEV"):
        words.append("lookup [l3mdev-table]")
    elif rule["action"] == FR_ACT_TO_TBL:
        words += ["lookup", _table_name(rule.get("FRA_TABLE") or rule["table"])]
    elif rule["action"] == FR_ACT_GOTO:
        words += ["goto", str(rule.get("FRA_GOTO"))]
    else:
        words.append(_RULE_ACTIONS.get(rule["action"], f"action {rule['action']}"))
    suppress = rule.get("FRA_SUPPRESS_PREFIXLEN")
    if suppress is not None and suppress != NO_SUPPRESS:
        words += ["suppress_prefixlength", str(suppress)]
    return " ".join(words)


def _prefix_text(address: str | None, prefixlen: int) -> str:
    """As iproute2 prints a prefix: a host route without its /32 (/128)."""
    return str(address) if prefixlen == (128 if ":" in str(address) else 32) else f"{address}/{prefixlen}"


def _network(address: str, prefixlen: int) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(f"{address}/{prefixlen}", strict=False)


def _any(dst: IPAddress) -> str:
    """The unspecified address of dst's family: what the kernel leaves out of a default route."""
    return "::" if dst.version == 6 else "0.0.0.0"


def _table_name(table: int) -> str:
    return _TABLE_NAMES.get(table, str(table))


# -- links and addresses ------------------------------------------------------------------------


def _usable_link(ipr: IPRoute, index: int | None) -> Any:
    """The link at index, checked to be an Ethernet-like or a layer-3 interface that is up."""
    if index is None:
        raise LinkError("the kernel route names no output interface")
    link = next(iter(ipr.link("get", index=index)))
    name = link.get("IFLA_IFNAME")
    if medium_of(link["ifi_type"]) is None:
        raise LinkError(f"interface '{name}' is of link type {link_type_name(link['ifi_type'])}: rawtui needs "
                        "an Ethernet or a layer-3 (tun, WireGuard, PPP, IP tunnel) interface")
    if not link["flags"] & IFF_UP:
        raise LinkError(f"interface '{name}' is down: bring it up with `ip link set {name} up`")
    return link


def _link_name(ipr: IPRoute, index: int | None) -> str:
    from pyroute2.netlink.exceptions import NetlinkError  # type: ignore[import-untyped]

    try:
        return str(next(iter(ipr.link("get", index=index))).get("IFLA_IFNAME"))
    except (NetlinkError, StopIteration):
        return f"interface #{index}"


Network = ipaddress.IPv4Interface | ipaddress.IPv6Interface


def _networks(ipr: IPRoute, index: int, version: int = 4) -> list[Network]:
    """The interface's addresses of one family, without those still tentative or failed (IPv6 DAD)."""
    return [
        ipaddress.ip_interface(f"{addr.get('IFA_LOCAL') or addr.get('IFA_ADDRESS')}/{addr['prefixlen']}")
        for addr in ipr.get_addr(index=index, family=socket.AF_INET6 if version == 6 else socket.AF_INET)
        if not _addr_flags(addr["flags"], (addr.get("IFA_FLAGS") or 0).to_bytes(4, sys.byteorder))
        & IFA_F_NODAD_ISSUES
    ]


def _pick_source(networks: list[Network], dst: IPAddress) -> str:
    """The interface's address on dst's subnet, else its first one (of dst's scope: a global
    destination is not reached from a link-local address)."""
    for net in networks:
        if dst in net.network:
            return str(net.ip)
    for net in networks:
        if net.ip.is_link_local == dst.is_link_local:
            return str(net.ip)
    return str(networks[0].ip)


def _route_mtu(route: Any) -> int | None:
    """The MTU a route carries (`ip route ... mtu 1280`, or one learnt from Packet Too Big), if any."""
    metrics = route.get("RTA_METRICS")
    mtu = metrics.get("RTAX_MTU") if metrics is not None else None
    return int(mtu) if mtu else None


def _route_info(
    link: Any,
    src: str,
    dst: IPAddress,
    gateway: str | None,
    reason: str,
    warning: str | None,
    networks: list[Network],
    route_mtu: int | None,
) -> RouteInfo:
    if not link.get("IFLA_CARRIER"):
        no_carrier = f"interface '{link.get('IFLA_IFNAME')}' has no carrier"
        warning = f"{warning}; {no_carrier}" if warning else no_carrier
    medium = medium_of(link["ifi_type"]) or Medium.ETHERNET
    ethernet = medium is Medium.ETHERNET
    return RouteInfo(
        iface=link.get("IFLA_IFNAME"),
        ifindex=link["index"],
        src_ip=str(src),
        src_mac=str(link.get("IFLA_ADDRESS")) if ethernet else "",
        dst_ip=str(dst),
        gateway=gateway,
        next_hop=(gateway or str(dst)) if ethernet else POINT_TO_POINT,
        mtu=min(int(link.get("IFLA_MTU")), route_mtu or 1 << 32),
        reason=reason,
        warning=warning,
        medium=medium,
        family=dst.version,
        local_addresses=(
            tuple(str(net.ip) for net in networks if str(net.ip) != src) if dst.version == 6 else ()
        ),
    )
