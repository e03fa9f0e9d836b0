"""Which interface, source address and next hop reach a destination, asked of the kernel over netlink.

Everything comes from rtnetlink through pyroute2: no command output is parsed, no interface name
is assumed. With an interface forced by the user (-i), the next hop is worked out on that interface
and a warning says when the kernel would have chosen another one.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Any

from pyroute2 import IPRoute  # type: ignore[import-untyped]
from pyroute2.netlink.exceptions import NetlinkError  # type: ignore[import-untyped]

from rawtui.errors import LinkError

ARPHRD_ETHER = 1
IFF_UP = 0x1
RT_TABLE_MAIN = 254
RTN_UNICAST = 1
RTN_LOCAL = 2
_ROUTE_TYPES = {2: "local", 3: "broadcast", 4: "anycast", 5: "multicast", 6: "blackhole", 7: "unreachable"}
_ARPHRD_KINDS = {1: "ether", 772: "loopback", 65534: "none"}


@dataclass(frozen=True, slots=True)
class RouteInfo:
    """How to reach dst_ip: out of iface, from src_ip/src_mac, through next_hop."""

    iface: str
    ifindex: int
    src_ip: str
    src_mac: str  # "aa:bb:cc:dd:ee:ff"
    dst_ip: str
    gateway: str | None  # None: the destination is on-link
    next_hop: str  # the gateway, or dst_ip when on-link: the address to ARP for
    mtu: int
    reason: str  # why this interface and next hop, for the user
    warning: str | None


@dataclass(frozen=True, slots=True)
class InterfaceInfo:
    """One network interface as `rawtui interfaces` lists it."""

    name: str
    index: int
    kind: str  # "veth", "bridge", "tun"..., else "ether", "loopback", "none" from the link type
    up: bool  # administratively up (IFF_UP)
    carrier: bool
    operstate: str  # "UP", "DOWN", "UNKNOWN", "LOWERLAYERDOWN"...
    mac: str
    ipv4: tuple[str, ...]  # "a.b.c.d/nn"
    mtu: int
    ethernet: bool  # ARPHRD_ETHER: rawtui can use it


def resolve_host(host: str) -> str:
    """Return the IPv4 address of host: a literal as it is, else the first address the resolver gives."""
    try:
        return str(ipaddress.IPv4Address(host))
    except ValueError:
        pass
    try:
        ipaddress.IPv6Address(host.strip("[]"))
    except ValueError:
        pass
    else:
        raise LinkError(f"cannot use {host}: rawtui speaks IPv4 only")
    try:
        infos = socket.getaddrinfo(host, None, socket.AF_INET, socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        detail = exc.strerror if isinstance(exc, socket.gaierror) else str(exc)
        raise LinkError(f"cannot resolve host '{host}': {detail}") from None
    if not infos:
        raise LinkError(f"cannot resolve host '{host}': no IPv4 address")
    return str(infos[0][4][0])


def list_interfaces() -> list[InterfaceInfo]:
    """Return every interface of this network namespace, by index."""
    with IPRoute() as ipr:
        addresses: dict[int, list[str]] = {}
        for addr in ipr.get_addr(family=socket.AF_INET):
            addresses.setdefault(addr["index"], []).append(f"{addr.get('IFA_ADDRESS')}/{addr['prefixlen']}")
        return sorted(
            (_interface(link, addresses.get(link["index"], [])) for link in ipr.get_links()),
            key=lambda info: info.index,
        )


def _interface(link: Any, ipv4: list[str]) -> InterfaceInfo:
    kind = link.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND") or _ARPHRD_KINDS.get(link["ifi_type"], "other")
    return InterfaceInfo(
        name=link.get("IFLA_IFNAME"),
        index=link["index"],
        kind=str(kind),
        up=bool(link["flags"] & IFF_UP),
        carrier=bool(link.get("IFLA_CARRIER")),
        operstate=str(link.get("IFLA_OPERSTATE") or "UNKNOWN"),
        mac=str(link.get("IFLA_ADDRESS") or ""),
        ipv4=tuple(ipv4),
        mtu=int(link.get("IFLA_MTU") or 0),
        ethernet=link["ifi_type"] == ARPHRD_ETHER,
    )


def resolve_route(dst_ip: str, iface: str | None = None) -> RouteInfo:
    """Return how to reach dst_ip: the kernel's choice, or the next hop on iface when one is forced."""
    try:
        dst = ipaddress.IPv4Address(dst_ip)
    except ValueError:
        raise LinkError(f"cannot route to '{dst_ip}': not an IPv4 address") from None
    if dst.is_loopback:
        raise LinkError(f"cannot reach {dst}: raw sockets cannot reach loopback, use a real interface")
    if dst.is_multicast or dst == ipaddress.IPv4Address("255.255.255.255") or dst.is_unspecified:
        raise LinkError(f"cannot download from {dst}: it is not a unicast address")
    with IPRoute() as ipr:
        kernel, kernel_error = _kernel_route(ipr, str(dst))
        if iface is None:
            if kernel is None:
                raise LinkError(f"no route to {dst}: {kernel_error}")
            return _kernel_choice(ipr, dst, kernel)
        return _forced_choice(ipr, dst, iface, kernel)


def _kernel_route(ipr: IPRoute, dst: str) -> tuple[Any | None, str]:
    """The kernel's `route get` answer for dst, or None and why not."""
    try:
        answer = list(ipr.route("get", dst=dst))
    except NetlinkError as exc:
        return None, exc.args[1] if len(exc.args) > 1 else str(exc)
    if not answer:
        return None, "the kernel gave no answer"
    return answer[0], ""


def _kernel_choice(ipr: IPRoute, dst: ipaddress.IPv4Address, route: Any) -> RouteInfo:
    if route["type"] == RTN_LOCAL:
        raise LinkError(
            f"cannot reach {dst}: it is an address of this machine, which raw sockets cannot reach"
        )
    if route["type"] != RTN_UNICAST:
        kind = _ROUTE_TYPES.get(route["type"], str(route["type"]))
        raise LinkError(f"cannot reach {dst}: the kernel route to it is of type {kind}")
    link = _usable_link(ipr, route.get("RTA_OIF"))
    name = link.get("IFLA_IFNAME")
    networks = _ipv4_networks(ipr, link["index"])
    if not networks:
        raise LinkError(f"interface '{name}' has no IPv4 address")
    gateway = route.get("RTA_GATEWAY")
    src = route.get("RTA_PREFSRC") or _pick_source(networks, dst)
    table = route.get("RTA_TABLE") or route["table"]
    table_name = "main" if table == RT_TABLE_MAIN else str(table)
    via = f"via {gateway}" if gateway else "on-link"
    return _route_info(
        link, src, dst, gateway, f"kernel route (table {table_name}, {dst} {via} dev {name})", None
    )


def _forced_choice(ipr: IPRoute, dst: ipaddress.IPv4Address, iface: str, kernel: Any | None) -> RouteInfo:
    found = ipr.link_lookup(ifname=iface)
    if not found:
        names = ", ".join(info.name for info in list_interfaces())
        raise LinkError(f"unknown interface '{iface}' (available: {names})")
    link = _usable_link(ipr, found[0])
    index = link["index"]
    networks = _ipv4_networks(ipr, index)
    if not networks:
        raise LinkError(f"interface '{iface}' has no IPv4 address")
    warnings = []
    gateway: str | None = None
    if any(dst in net.network for net in networks):
        how = f"{dst} is on-link"
    else:
        gateway, found_how = _gateway_on(ipr, index, dst)
        how = found_how or f"no route via {iface}, assuming {dst} is on-link"
        if found_how is None:
            warnings.append(f"no route to {dst} via {iface}: assuming it is on-link")
    kernel_oif = None if kernel is None else kernel.get("RTA_OIF")
    if kernel is None:
        warnings.append(f"the kernel has no route to {dst}")
    elif kernel_oif != index:
        warnings.append(f"the kernel would use {_link_name(ipr, kernel_oif)}, not {iface}")
    prefsrc = kernel.get("RTA_PREFSRC") if kernel is not None and kernel_oif == index else None
    src = prefsrc or _pick_source(networks, dst)
    return _route_info(link, src, dst, gateway, f"-i {iface} (override, {how})", "; ".join(warnings) or None)


def _gateway_on(ipr: IPRoute, index: int, dst: ipaddress.IPv4Address) -> tuple[str | None, str | None]:
    """The longest main-table route out of interface index that covers dst: (gateway, how), or (None, None)."""
    best: tuple[int, str | None] | None = None
    for route in ipr.get_routes(family=socket.AF_INET, table=RT_TABLE_MAIN):
        if route.get("RTA_OIF") != index or route["type"] != RTN_UNICAST:
            continue
        net = ipaddress.IPv4Network(f"{route.get('RTA_DST') or '0.0.0.0'}/{route['dst_len']}", strict=False)
        if dst in net and (best is None or net.prefixlen > best[0]):
            best = (net.prefixlen, route.get("RTA_GATEWAY"))
    if best is None:
        return None, None
    prefixlen, gateway = best
    via = f"via {gateway}" if gateway else "on-link"
    return gateway, f"main table /{prefixlen} route {via}"


def _usable_link(ipr: IPRoute, index: int | None) -> Any:
    """The link at index, checked to be an Ethernet-like interface that is up."""
    if index is None:
        raise LinkError("the kernel route names no output interface")
    link = next(iter(ipr.link("get", index=index)))
    name = link.get("IFLA_IFNAME")
    if link["ifi_type"] != ARPHRD_ETHER:
        kind = _ARPHRD_KINDS.get(link["ifi_type"], f"link type {link['ifi_type']}")
        raise LinkError(f"interface '{name}' is not Ethernet ({kind}): rawtui needs an Ethernet interface")
    if not link["flags"] & IFF_UP:
        raise LinkError(f"interface '{name}' is down: bring it up with `ip link set {name} up`")
    return link


def _link_name(ipr: IPRoute, index: int | None) -> str:
    try:
        return str(next(iter(ipr.link("get", index=index))).get("IFLA_IFNAME"))
    except (NetlinkError, StopIteration):
        return f"interface #{index}"


def _ipv4_networks(ipr: IPRoute, index: int) -> list[ipaddress.IPv4Interface]:
    return [
        ipaddress.IPv4Interface(f"{addr.get('IFA_LOCAL') or addr.get('IFA_ADDRESS')}/{addr['prefixlen']}")
        for addr in ipr.get_addr(index=index, family=socket.AF_INET)
    ]


def _pick_source(networks: list[ipaddress.IPv4Interface], dst: ipaddress.IPv4Address) -> str:
    """The interface's address on dst's subnet, else its first one."""
    for net in networks:
        if dst in net.network:
            return str(net.ip)
    return str(networks[0].ip)


def _route_info(
    link: Any, src: str, dst: ipaddress.IPv4Address, gateway: str | None, reason: str, warning: str | None
) -> RouteInfo:
    if not link.get("IFLA_CARRIER"):
        no_carrier = f"interface '{link.get('IFLA_IFNAME')}' has no carrier"
        warning = f"{warning}; {no_carrier}" if warning else no_carrier
    return RouteInfo(
        iface=link.get("IFLA_IFNAME"),
        ifindex=link["index"],
        src_ip=str(src),
        src_mac=str(link.get("IFLA_ADDRESS")),
        dst_ip=str(dst),
        gateway=gateway,
        next_hop=gateway or str(dst),
        mtu=int(link.get("IFLA_MTU")),
        reason=reason,
        warning=warning,
    )
