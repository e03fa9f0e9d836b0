"""`rawtui interfaces [URL]`: every interface and route, which one a download would use and why (IPv4 or
IPv6, and which family for a name with both), and an ARP probe.

The listing and the route explanation need no privileges (netlink dumps and lookups, the ethtool
GET ioctls, /sys). ``--probe`` resolves the next hop for real through a raw socket (ARP, or IPv6's
neighbor discovery), with the same sans-IO resolver a download uses, and needs root or CAP_NET_RAW.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import select
import socket
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rich import box
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from rawtui.errors import EXIT_LINK, EXIT_OK, LinkError, UsageError
from rawtui.link.ethtool import Offloads, read_offloads
from rawtui.link.route import (
    InterfaceInfo,
    MatchedRoute,
    Override,
    RouteExplanation,
    RouteInfo,
    choose_address,
    explain_route,
    list_interfaces,
    list_routes,
)
from rawtui.stack.events import Medium

MIN_IPV4_MTU = 576  # RFC 791: the datagram size every IPv4 host must be able to accept
PROBE_TRIES = 3
PROBE_INTERVAL = 1.0

OFFLOAD_LEGEND = (
    "Offloads listed are on. GRO/LRO: received frames can be bigger than the MTU (rawtui takes them as "
    "they come). TSO/GSO and tx-csum change what the kernel sends, not rawtui's frames, which leave "
    "whole and checksummed. rx-csum: frames may arrive with checksums already verified or not yet "
    "computed; rawtui reads which from the kernel (PACKET_AUXDATA) instead of counting them as bad."
)


@dataclass(frozen=True, slots=True)
class InterfaceRow:
    """One line of the listing: the interface, its offloads and what is wrong with it for rawtui."""

    info: InterfaceInfo
    offloads: Offloads | None  # None: the driver reports no features
    usable: bool  # rawtui can download through it
    warnings: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ProbeStep:
    """One line of the ARP (neighbor discovery) exchange."""

    t: float  # seconds since the first request
    kind: str  # "request", "reply", "ignored", "answered" (IPv6: we answered a solicitation for our address)
    text: str


@dataclass(frozen=True, slots=True)
class ProbeResult:
    iface: str
    src_ip: str
    src_mac: str
    target_ip: str  # the next hop: the gateway, or the host when it is on-link
    steps: tuple[ProbeStep, ...]
    attempts: int
    mac: str | None  # who answered
    rtt_ms: float | None
    kernel_neighbour: str | None  # the kernel's own ARP (neighbor) cache entry: "aa:bb:.. (REACHABLE)"
    error: str | None
    family: int = 4  # 6: neighbor discovery, not ARP


@dataclass(frozen=True, slots=True)
class Destination:
    url: str
    host: str
    ip: str  # with its zone for a link-local IPv6 address ("fe80::2%eth0")
    port: int
    family: int = 4
    reason: str = ""  # why this address (and family): "AAAA and A records; IPv6 because ..."


@dataclass(frozen=True, slots=True)
class Report:
    interfaces: tuple[InterfaceRow, ...]
    destination: Destination | None = None
    forced: str | None = None  # -i IFACE
    explanation: RouteExplanation | None = None
    probe: ProbeResult | None = None
    routes: tuple[MatchedRoute, ...] = ()  # the main tables, IPv4 then IPv6

    @property
    def exit_code(self) -> int:
        if self.explanation is not None and self.explanation.error is not None:
            return EXIT_LINK
        if self.probe is not None and self.probe.error is not None:
            return EXIT_LINK
        return EXIT_OK


# -- what to say ----------------------------------------------------------------------------------


def interface_warnings(info: InterfaceInfo) -> list[str]:
    """What keeps rawtui from using an interface, or makes it odd, in plain words."""
    if info.kind == "loopback":
        return ["loopback: rawtui cannot use it (raw sockets cannot reach loopback)"]
    out: list[str] = []
    if info.medium is None:
        out.append(f"link type {info.kind}: rawtui cannot run there (it runs on Ethernet and layer-3 links)")
    elif info.medium is Medium.IP:
        out.append("layer-3 link: bare IP packets, point-to-point (no link-layer address to resolve)")
    if not info.up:
        out.append("down")
    elif not info.carrier and info.ethernet:
        out.append("no carrier: nothing is connected, or the other end is down")
    if not info.ipv4:
        ipv6_only = " (IPv6 only)" if _global_ipv6(info) else ""
        out.append(f"no IPv4 address: a port of {info.master}, use {info.master}" if info.master
                   else f"no IPv4 address{ipv6_only}")  # fmt: skip
    if 0 < info.mtu < MIN_IPV4_MTU:
        out.append(f"MTU {info.mtu} is below {MIN_IPV4_MTU}, the IPv4 minimum: expect tiny segments or none")
    return out


def _global_ipv6(info: InterfaceInfo) -> bool:
    """An IPv6 address beyond the link-local one every interface has (fe80::/10)."""
    return any(not address.lower().startswith(("fe8", "fe9", "fea", "feb")) for address in info.ipv6)


def interface_row(info: InterfaceInfo, offloads: Offloads | None) -> InterfaceRow:
    addressed = bool(info.ipv4) or (_global_ipv6(info) and not info.master)
    usable = info.medium is not None and info.up and addressed and info.kind != "loopback"
    return InterfaceRow(info, offloads, usable, tuple(interface_warnings(info)))


def list_rows() -> tuple[InterfaceRow, ...]:
    rows = []
    for info in list_interfaces():
        try:
            offloads = read_offloads(info.name)
        except OSError:
            offloads = None
        rows.append(interface_row(info, offloads))
    return tuple(rows)


def build_report(
    url: str | None, iface: str | None = None, *, probe: bool = False, family: int | None = None
) -> Report:
    """Everything `rawtui interfaces` shows, as records (the rich and the JSON output are views of it).
    ``family``: -4 / -6, as for a download."""
    rows = list_rows()
    routes = tuple(list_routes())
    if url is None:
        return Report(rows, routes=routes)
    from rawtui.http.client import parse_url

    parsed = parse_url(url)
    chosen = choose_address(parsed.address, family)
    destination = Destination(parsed.text, parsed.host, chosen.address, parsed.port, chosen.family, chosen.reason)
    explanation = explain_route(chosen.address, iface)
    result = None
    if probe and explanation.route is not None and explanation.route.medium is Medium.ETHERNET:
        result = probe_next_hop(explanation.route)  # (a point-to-point link has nothing to ask)
    return Report(rows, destination, iface, explanation, result, routes)


# -- the ARP probe --------------------------------------------------------------------------------


def probe_next_hop(
    route: RouteInfo,
    *,
    tries: int = PROBE_TRIES,
    interval: float = PROBE_INTERVAL,
    clock: Callable[[], float] = time.monotonic,
    wait: Callable[[Any, float], object] | None = None,
) -> ProbeResult:
    """Resolve route.next_hop out of route.iface for real, as a download would (ARP, or neighbor
    discovery for IPv6), and report the exchange.

    clock and wait (block until the socket is readable or the timeout passes) are for tests.
    """
    from rawtui.events import (
        ArpIgnored,
        ArpReply,
        ArpRequest,
        NdpAdvert,
        NdpAnswered,
        NdpIgnored,
        NdpSolicit,
    )
    from rawtui.link.afpacket import PacketSocket
    from rawtui.stack.arp import ArpResolver
    from rawtui.stack.host import CSUM_UNKNOWN
    from rawtui.stack.ndp import NdpResolver
    from rawtui.wire.arp import parse_arp
    from rawtui.wire.errors import WireError
    from rawtui.wire.ethernet import ETH_P_ARP, ETH_P_IPV6, mac_bytes, mac_str, parse_ethernet
    from rawtui.wire.icmpv6 import parse_icmpv6
    from rawtui.wire.ipv4 import ip_bytes
    from rawtui.wire.ipv6 import NH_ICMPV6, ip6_bytes, parse_ipv6

    kernel_entry = _kernel_neighbour(route.ifindex, route.next_hop)
    local_mac = mac_bytes(route.src_mac)
    resolver: ArpResolver | NdpResolver
    if route.family == 6:
        resolver = NdpResolver(
            local_mac, ip6_bytes(route.src_ip), ip6_bytes(route.next_hop),
            own_ips=tuple(map(ip6_bytes, route.local_addresses)), retries=tries, interval=interval,
        )  # fmt: skip
    else:
        resolver = ArpResolver(local_mac, ip_bytes(route.src_ip), ip_bytes(route.next_hop), retries=tries,
                               interval=interval)  # fmt: skip
    steps: list[ProbeStep] = []
    rtt: float | None = None
    with PacketSocket(route.iface) as sock:
        sock.set_filter(route.next_hop)
        t0 = clock()
        resolver.start(0.0)
        while True:
            for frame in resolver.take_frames():
                sock.send(frame)
            for ev in resolver.take_events():
                if isinstance(ev, ArpRequest):
                    steps.append(ProbeStep(ev.t, "request", f"who-has {ev.target_ip} tell {route.src_ip}"
                                           f" (try {ev.attempt} of {tries})"))  # fmt: skip
                elif isinstance(ev, NdpSolicit):
                    steps.append(ProbeStep(ev.t, "request", f"neighbor solicitation for {ev.target_ip} from "
                                           f"{route.src_ip} (try {ev.attempt} of {tries})"))  # fmt: skip
                elif isinstance(ev, ArpReply | NdpAdvert):
                    rtt = ev.rtt_ms
                    what = "is-at" if isinstance(ev, ArpReply) else "advertised at"
                    steps.append(ProbeStep(ev.t, "reply", f"{ev.ip} {what} {ev.mac} (RTT {ev.rtt_ms:.3f} ms)"))
                elif isinstance(ev, ArpIgnored | NdpIgnored):
                    what = "is-at" if isinstance(ev, ArpIgnored) else "at"
                    steps.append(ProbeStep(ev.t, "ignored", f"{ev.ip} {what} {ev.mac}: ignored, {ev.reason}"))
                elif isinstance(ev, NdpAnswered):
                    steps.append(ProbeStep(ev.t, "answered", f"{ev.asker_ip} asked for {ev.target_ip} (ours): "
                                           "advertised our MAC"))  # fmt: skip
            if resolver.done:
                break
            deadline = resolver.next_deadline
            timeout = 0.0 if deadline is None else max(0.0, deadline - (clock() - t0))
            (wait or _wait_readable)(sock, timeout)
            now = clock() - t0
            for frame, csum in sock.recv_many():
                try:
                    eth = parse_ethernet(frame)
                    if eth.ethertype == ETH_P_ARP and isinstance(resolver, ArpResolver):
                        resolver.on_arp(parse_arp(eth.payload), now)
                    elif eth.ethertype == ETH_P_IPV6 and isinstance(resolver, NdpResolver):
                        ip, payload = parse_ipv6(eth.payload)
                        if ip.proto == NH_ICMPV6:
                            msg = parse_icmpv6(payload, ip.src, ip.dst, verify=csum == CSUM_UNKNOWN)
                            resolver.on_ndp(msg, ip.src, ip.dst, ip.hop_limit, eth.src, now)
                except WireError:
                    continue
            resolver.on_timer(now)
    mac = mac_str(resolver.mac) if resolver.mac is not None else None
    error = None
    if mac is None:
        said = resolver.failure_message(route.iface) if isinstance(resolver, NdpResolver) else None
        error = no_reply_message(route, resolver.attempts, said)
    return ProbeResult(
        route.iface, route.src_ip, route.src_mac, route.next_hop, tuple(steps), resolver.attempts, mac, rtt,
        kernel_entry, error, route.family,
    )  # fmt: skip


def _wait_readable(sock: Any, timeout: float) -> None:
    select.select([sock], [], [], timeout)


def no_reply_message(route: RouteInfo, attempts: int, resolver_said: str | None = None) -> str:
    """Why a probe went unanswered (``resolver_said``: the resolver's own sentence, NDP's), naming what is
    not on the link."""
    what = f"the gateway {route.gateway}" if route.gateway else f"the host {route.next_hop}"
    first = resolver_said or f"no ARP reply from {route.next_hop} on {route.iface} after {attempts} tries"
    return f"{first}: {what} is not on {route.iface}'s link, or it is down"


_NUD_STATES = {
    0x01: "INCOMPLETE", 0x02: "REACHABLE", 0x04: "STALE", 0x08: "DELAY", 0x10: "PROBE", 0x20: "FAILED",
    0x40: "NOARP", 0x80: "PERMANENT",
}  # fmt: skip


def _kernel_neighbour(ifindex: int, ip: str) -> str | None:
    """The kernel's own ARP (neighbor) cache entry for ip on ifindex: "aa:bb:cc:dd:ee:ff (REACHABLE)", or
    None."""
    from pyroute2 import IPRoute  # type: ignore[import-untyped]

    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    with IPRoute() as ipr:
        for entry in ipr.get_neighbours(family=family, ifindex=ifindex):
            if entry.get("NDA_DST") == ip:
                state = _NUD_STATES.get(entry["state"], hex(entry["state"]))
                lladdr = entry.get("NDA_LLADDR")
                return f"{lladdr} ({state})" if lladdr else f"no address ({state})"
    return None


# -- output -------------------------------------------------------------------------------------


def to_json(report: Report) -> dict[str, Any]:
    out: dict[str, Any] = {
        "interfaces": [
            {
                **dataclasses.asdict(row.info),
                "offloads": None if row.offloads is None else dataclasses.asdict(row.offloads),
                "usable": row.usable,
                "warnings": list(row.warnings),
            }
            for row in report.interfaces
        ],
        "routes": [dataclasses.asdict(route) for route in report.routes],
    }
    if report.destination is not None:
        out["destination"] = dataclasses.asdict(report.destination)
        out["forced"] = report.forced
    if report.explanation is not None:
        out.update(dataclasses.asdict(report.explanation))
    if report.probe is not None:
        out["probe"] = dataclasses.asdict(report.probe)
    return out


def render(report: Report) -> Group:
    """The report as rich renderables."""
    parts: list[Any] = [_interface_table(report)]
    notes = _notes(report)
    if notes is not None:
        parts.append(notes)
    parts += [Text(""), Text(OFFLOAD_LEGEND, style="dim")]
    if report.routes:
        parts += [Text(""), _routes_table(report.routes)]
    if report.explanation is not None and report.destination is not None:
        parts += [Text(""), _route_grid(report.destination, report.explanation, report.forced)]
        parts += [Text(""), _override_table(report.explanation)]
    if report.probe is not None:
        parts += [Text(""), _probe_grid(report.probe)]
    return Group(*parts)


def _state(info: InterfaceInfo) -> Text:
    if not info.up:
        return Text("down", style="red")
    if not info.carrier:
        return Text("no carrier", style="yellow")
    return Text("up", style="green")


def _interface_table(report: Report) -> Table:
    chosen = None
    if report.explanation is not None:
        chosen = report.forced or report.explanation.kernel_iface
    table = Table(title="Interfaces", title_justify="left", title_style="bold", box=box.SIMPLE_HEAD)
    for column in ("Interface / MAC", "Kind", "State", "Addresses", "MTU", "Offloads"):
        table.add_column(column, justify="right" if column == "MTU" else "left", overflow="fold",
                         no_wrap=column in ("Interface / MAC", "Addresses", "MTU"))  # fmt: skip
    for row in report.interfaces:
        info = row.info
        name = Text(info.name, style="bold" if row.usable else "dim")
        if info.name == chosen:
            name.append(" ◀", style="cyan")
        name.append(f"\n{info.mac or '-'}", style="dim")
        kind = info.kind if info.vlan_id is None else f"vlan {info.vlan_id}"
        if info.parent:
            kind = f"{kind} on {info.parent}"
        offloads = "?" if row.offloads is None else " ".join(row.offloads.enabled()) or "none"
        addresses = "\n".join((*info.ipv4, *info.ipv6)) or "-"
        table.add_row(name, kind, _state(info), addresses, str(info.mtu), offloads)
    return table


def _routes_table(routes: tuple[MatchedRoute, ...]) -> Table:
    """The main routing tables, as `ip route` and `ip -6 route` list them."""
    table = Table(title="Routes (table main)", title_justify="left", title_style="bold", box=box.SIMPLE_HEAD)
    table.add_column("Family", no_wrap=True)
    table.add_column("Route", overflow="fold")
    for route in routes:
        family = "IPv6" if route.prefix is not None and ":" in route.prefix else "IPv4"
        table.add_row(family, route.describe().removesuffix(" table main").replace(" table main ", " "))
    return table


def _notes(report: Report) -> Table | None:
    notes = [(row.info.name, "; ".join(row.warnings)) for row in report.interfaces if row.warnings]
    if not notes:
        return None
    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True)
    grid.add_column(style="yellow")
    for name, text in notes:
        grid.add_row(name, text)
    return grid


def _route_grid(dest: Destination, exp: RouteExplanation, forced: str | None) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.title = (
        f"Route to {dest.host} ({dest.ip}, port {dest.port})"
        if dest.host != dest.ip
        else (f"Route to {dest.ip} (port {dest.port})")
    )
    grid.title_justify = "left"
    grid.title_style = "bold"
    grid.add_column(style="dim")
    grid.add_column()
    if dest.reason:
        grid.add_row("address", f"IPv{dest.family}: {dest.reason}")
    if exp.kernel_iface is not None:
        grid.add_row("kernel's choice", exp.kernel_iface)
    elif exp.kernel_error:
        grid.add_row("kernel's choice", Text(f"none: {exp.kernel_error}", style="red"))
    if exp.matched is not None:
        grid.add_row("matched route", exp.matched.describe())
        rule = exp.matched.rule
        grid.add_row("policy rule", f"{rule.priority}: {rule.text}" if rule else
                     Text("could not be worked out (the kernel's rules are not all understood here)"))  # fmt: skip
    route = exp.route
    if route is not None:
        grid.add_row("interface", f"{route.iface} (-i)" if forced else route.iface)
        grid.add_row("source", f"{route.src_ip}  {route.src_mac}")
        asks = "ARPs for" if route.family == 4 else "asks neighbor discovery (NS/NA) for"
        if route.medium is Medium.IP:
            grid.add_row("next hop", f"point-to-point: no link-layer address, nothing to resolve on {route.iface}")
        elif route.gateway:
            link_local = " (link-local)" if route.family == 6 and route.gateway.startswith("fe80:") else ""
            grid.add_row("next hop", f"gateway {route.gateway}{link_local}: rawtui {asks} it on {route.iface}")
        else:
            grid.add_row("next hop", f"on-link: rawtui {asks} {route.next_hop} itself on {route.iface}")
        if route.local_addresses:
            grid.add_row("also ours", f"{', '.join(route.local_addresses)} (rawtui answers solicitations for it)")
        grid.add_row("MTU", str(route.mtu))
        grid.add_row("why", route.reason)
        if route.warning:
            grid.add_row("warning", Text(route.warning, style="yellow"))
    if exp.error is not None:
        grid.add_row("error", Text(exp.error, style="bold red"))
    return grid


def _override_table(exp: RouteExplanation) -> Table:
    table = Table(title=f"With -i IFACE, to reach {exp.dst_ip}", title_justify="left")
    for column in ("Interface", "Would go", "Source", "What would happen"):
        table.add_column(column, overflow="fold", no_wrap=column == "Interface")
    for ov in exp.overrides:
        name = Text(ov.iface, style="bold" if ov.usable else "dim")
        if ov.kernel_choice:
            name.append(" (kernel)", style="cyan")
        table.add_row(name, _summary(ov), ov.src_ip or "-", ov.detail)
    return table


def _summary(ov: Override) -> Text:
    if not ov.usable:
        return Text(ov.summary, style="dim")
    if not ov.reaches:
        return Text(ov.summary, style="red")
    return Text(ov.summary, style="green")


def _probe_grid(probe: ProbeResult) -> Table:
    grid = Table.grid(padding=(0, 2))
    what = "Neighbor discovery probe" if probe.family == 6 else "ARP probe"
    grid.title = f"{what} for {probe.target_ip} on {probe.iface}"
    grid.title_justify = "left"
    grid.title_style = "bold"
    grid.add_column(justify="right", style="dim")
    grid.add_column()
    grid.add_row("from", f"{probe.src_ip}  {probe.src_mac}")
    arrows = {"request": "→", "reply": "←", "ignored": "←", "answered": "⇄"}
    for step in probe.steps:
        style = {"reply": "green", "ignored": "yellow"}.get(step.kind, "")
        grid.add_row(f"{step.t:.3f} s", Text(f"{arrows[step.kind]} {step.text}", style=style))
    grid.add_row("kernel cache", probe.kernel_neighbour or "no entry for it")
    if probe.error is not None:
        grid.add_row("result", Text(probe.error, style="bold red"))
    else:
        grid.add_row(
            "result", Text(f"{probe.target_ip} is at {probe.mac}, RTT {probe.rtt_ms:.3f} ms", style="green")
        )
    return grid


# -- command line -------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rawtui interfaces",
        description="List the network interfaces as rawtui sees them; with a URL, say which interface, "
        "source address and next hop a download would use, and why.",
        epilog="Without --probe no privileges are needed. exit codes: 0 ok, 2 usage, 3 missing privilege "
        "(--probe), 4 the route cannot be used or the next hop did not answer.",
    )
    p.add_argument("url", nargs="?", help="http:// URL (or host) to explain the route to")
    p.add_argument("-i", "--interface", metavar="IFACE", help="explain a download forced through IFACE")
    family = p.add_mutually_exclusive_group()
    family.add_argument("-4", "--ipv4", dest="family", action="store_const", const=4,
                        help="IPv4 only, as a download with -4")
    family.add_argument("-6", "--ipv6", dest="family", action="store_const", const=6,
                        help="IPv6 only, as a download with -6")
    p.add_argument("--probe", action="store_true",
                   help="ARP the next hop (IPv6: neighbor discovery) for real and show the exchange "
                   "(needs root or CAP_NET_RAW)")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print one JSON document instead of tables")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    ns = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    if ns.url is None and (ns.probe or ns.interface):
        raise UsageError(f"{'--probe' if ns.probe else '-i'} needs a URL: rawtui interfaces [--probe] URL")
    try:
        report = build_report(ns.url, ns.interface, probe=ns.probe, family=ns.family)
    except LinkError as exc:
        if not ns.json:
            raise
        print(json.dumps({"error": exc.message, "exit_code": exc.exit_code}, indent=2))
        return exc.exit_code
    if ns.json:
        print(json.dumps(to_json(report), indent=2))
    else:
        Console(emoji=False).print(render(report))
    code = report.exit_code
    if code != EXIT_OK:
        exp = report.explanation
        message = exp.error if exp is not None and exp.error is not None else None
        if message is None and report.probe is not None:
            message = report.probe.error
        print(f"rawtui: error: {message}", file=sys.stderr)
    return code


__all__ = [
    "Destination",
    "InterfaceRow",
    "ProbeResult",
    "ProbeStep",
    "Report",
    "build_report",
    "interface_warnings",
    "main",
    "no_reply_message",
    "probe_next_hop",
    "render",
    "to_json",
]
