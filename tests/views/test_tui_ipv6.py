"""The views for IPv6 and point-to-point paths (issue 14): the next-hop panel (neighbor discovery, or
nothing to resolve), the header's family and why, full-length IPv6 addresses that keep the layout, the
path MTU in the packet list, the ladder and the summaries, and the words describe.py has for them."""

from __future__ import annotations

import io
import json
from pathlib import Path

from rich.console import Console

from rawtui.events import (
    Done,
    Event,
    Handshake,
    Medium,
    NdpAdvert,
    NdpAnswered,
    NdpIgnored,
    NdpSolicit,
    NeighborChange,
    PathMtu,
    Progress,
    Route,
    SegmentIn,
    SegmentOut,
    TcpState,
    to_dict,
)
from rawtui.recording import NdjsonReplay
from rawtui.stack.tcp_states import State
from rawtui.views.headless import HeadlessView
from rawtui.views.tui.app import RawtuiApp
from rawtui.views.tui.describe import EXPLAIN, detail_tree, parse_filter, protocol, summary
from rawtui.views.tui.model import ViewModel
from rawtui.views.tui.testing import screen_text, settle, sync

# full-length addresses (RFC 5952 keeps all eight groups: nothing to compress), the longest there are
SRC = "2001:db8:1234:5678:9abc:def0:1234:5678"
DST = "2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff"
GW = "fe80::1ff:fe23:4567:890a"  # a link-local gateway, as routers announce themselves
REASON = "AAAA and A records; IPv6 because the kernel routes it"
URL = f"http://[{DST}]/big.bin"


def v6_events(medium: Medium = Medium.ETHERNET) -> list[Event]:
    p2p = medium == Medium.IP
    evs: list[Event] = [Route(0.0, "tun0" if p2p else "eth0", 2, SRC, "" if p2p else "02:00:00:00:01:02", DST,
                              None if p2p else GW, DST if p2p else GW, 1500, "kernel route", None, 6, REASON, medium)]
    if not p2p:
        evs += [
            NdpSolicit(0.001, GW, 1),
            NdpIgnored(0.0015, GW, "02:00:00:00:09:09", "hop limit 64, not 255: not from this link"),
            NdpAdvert(0.0021, GW, "02:00:00:00:01:01", 1.1, solicited=True, override=True, router=True),
            NeighborChange(0.0021, GW, "incomplete", "reachable", "solicited advertisement"),
            NdpAnswered(0.0030, GW, "02:00:00:00:01:01", SRC),
        ]
    evs += [
        TcpState(0.003, State.CLOSED, State.SYN_SENT),
        SegmentOut(0.003, 0, 0, "S", 64800, 0),
        SegmentIn(0.013, 0, 1, "SA", 65000, 0),
        Handshake(0.013, 40000, 80, 1000, 2000, 1440, 1440, 7, 7, True, True, 10.0),
        TcpState(0.013, State.SYN_SENT, State.ESTABLISHED),
        SegmentOut(0.0131, 1, 1, "PA", 64800, 80),
        SegmentIn(0.023, 1, 81, "A", 65000, 1440),
        PathMtu(0.024, 1280, 1280, 1220, 1440, "icmpv6 packet too big"),
        SegmentIn(0.035, 1441, 81, "A", 65000, 1220),
        Progress(0.035, 2660, 10_000, 100_000.0),
    ]
    if not p2p:
        evs += [NeighborChange(30.0, GW, "reachable", "stale", "reachable time passed"),
                NdpSolicit(36.0, GW, 1, unicast=True)]
    return evs


def ndjson(tmp_path: Path, evs: list[Event]) -> Path:
    path = tmp_path / "v6.ndjson"
    path.write_text("".join(json.dumps(to_dict(e)) + "\n" for e in evs))
    return path


async def shown(path: Path, size: tuple[int, int] = (120, 35)) -> str:
    app = RawtuiApp(NdjsonReplay(path, speed=0, hold=True), title=URL)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        return screen_text(app)


@sync
async def test_next_hop_panel_and_header_for_ipv6(tmp_path: Path) -> None:
    text = await shown(ndjson(tmp_path, v6_events()))
    lines = text.splitlines()
    assert all(len(line) <= 120 for line in lines)
    assert "Next hop · NDP" in text and "ARP" not in text
    assert "1 NS · RTT 1.10 ms · STALE" in text  # the resolving tries only: the probe is not one
    assert f"IPv6 · {REASON}" in text
    assert any(SRC in line and f"[{DST}]:80" in line for line in lines)  # whole, with the port after brackets
    assert "│ next hop (gateway)" in text and f"│ {GW} " in text  # too long for one line: whole on its own
    assert "REACHABLE -> STALE" in text and "NS unicast probe 1" in text  # the panel's latest lines
    assert "MSS 1440 → 1220 · ws 7/7" in text and "Too Big: MTU 1280" in text
    assert "RTT 10.0 ms · path MTU 1280" in text
    assert "path MTU 1280" in lines[1]


@sync
async def test_long_addresses_keep_the_layout_in_a_narrow_terminal(tmp_path: Path) -> None:
    text = await shown(ndjson(tmp_path, v6_events()), (80, 24))
    lines = text.splitlines()
    assert len(lines) == 24 and all(len(line) <= 80 for line in lines)
    assert f"[{DST}]:80" in text  # the destination is never the part cut off


@sync
async def test_point_to_point_says_there_is_no_link_layer_address(tmp_path: Path) -> None:
    text = await shown(ndjson(tmp_path, v6_events(Medium.IP)))
    assert "Next hop · point-to-point" in text and "point-to-point:" in text and "no link-layer address" in text
    assert "via tun0" in text and "02:00:00" not in text  # no MACs anywhere


def test_model_folds_neighbor_discovery_and_path_mtu() -> None:
    m = ViewModel(title=URL)
    m.apply_all(v6_events())
    assert (m.resolver, m.arp_tries, m.arp_target, m.arp_mac, m.neighbor_state) == (
        "NDP", 1, GW, "02:00:00:00:01:01", "stale")
    assert m.counters.arp_ignored == 1 and m.path_mtu is not None and m.path_mtu.mss == 1220
    assert [ln.text for ln in m.arp] == [
        "NS ff02::1:ff67:890a try 1",  # the solicited-node group of the gateway
        f"ignored {GW} (hop limit 64, not 255: not from this link)",
        "NA 02:00:00:00:01:01 RSO", "INCOMPLETE -> REACHABLE", "NA: answered for us", "REACHABLE -> STALE",
        "NS unicast probe 1"]
    kinds = [e.type for _, e in m.packets]
    assert kinds[:4] == ["ndp_solicit", "ndp_ignored", "ndp_advert", "ndp_answered"]
    assert "path_mtu" in kinds and "neighbor_state" not in kinds


def test_describe_explains_ndp_and_path_mtu() -> None:
    m = ViewModel(title=URL)
    evs = v6_events()
    m.apply_all(evs)
    solicit, ignored, advert, answered = evs[1], evs[2], evs[3], evs[5]
    pmtu = next(e for e in evs if isinstance(e, PathMtu))
    assert summary(solicit) == f"NS who-has {GW}? to its solicited-node group (try 1)"
    assert summary(advert) == f"NA {GW} is-at 02:00:00:00:01:01 [RSO] (1.10 ms)"
    assert summary(answered) == f"NA to {GW} (02:00:00:00:01:01): {SRC} is us"
    assert summary(pmtu) == "Packet Too Big: path MTU 1280 (said 1280): MSS 1440 → 1220"
    assert [protocol(e) for e in (solicit, ignored, pmtu)] == ["NDP", "NDP", "ICMPv6"]

    def flat(node: object) -> list[str]:
        out = [node.label]  # type: ignore[attr-defined]
        for child in node.children:  # type: ignore[attr-defined]
            out += flat(child)
        return out

    tree = flat(detail_tree(1, solicit, m))
    assert "dst ff02::1:ff67:890a (solicited-node multicast)" in tree and "dst 33:33:ff:67:89:0a (multicast)" in tree
    assert EXPLAIN["ndp_solicit"] in tree
    assert EXPLAIN["ndp_advert"] in flat(detail_tree(3, advert, m))
    tree = flat(detail_tree(7, pmtu, m))
    assert "MSS 1440 → 1220 (MTU - 60 bytes of IP and TCP headers)" in tree and EXPLAIN["path_mtu"] in tree
    seg = next(e for e in evs if isinstance(e, SegmentIn) and e.length)
    tree = flat(detail_tree(9, seg, m))
    assert "type 0x86dd (IPv6)" in tree and f"src {DST}" in tree and "next header 6 (TCP)" in tree
    ndp, icmp = parse_filter("ndp"), parse_filter("icmp")
    assert ndp is not None and icmp is not None
    assert [e.type for e in evs if ndp(e)] == ["ndp_solicit", "ndp_ignored", "ndp_advert", "ndp_answered",
                                               "ndp_solicit"]
    assert sum(1 for e in evs if icmp(e)) == 6

    p2p = ViewModel(title=URL)
    p2p_evs = v6_events(Medium.IP)
    p2p.apply_all(p2p_evs)
    seg = next(e for e in p2p_evs if isinstance(e, SegmentIn) and e.length)
    tree = flat(detail_tree(1, seg, p2p))
    assert "Ethernet II" not in tree and "no link header (point-to-point: the frame begins with the IP header)" in tree


def test_headless_summary_and_lines() -> None:
    out = io.StringIO()
    view = HeadlessView(Console(file=out, width=200, force_terminal=False))
    for e in [*v6_events(), Done(40.0, 2660, "ab" * 32, 40.0, "out.bin", {})]:
        view(e)
    text = out.getvalue()
    assert f"family: IPv6 ({REASON})" in text
    assert f"ndp: {GW} is at 02:00:00:00:01:01 (1.10 ms)" in text
    assert "ndp: probing" in text
    assert "path mtu: 1280 (icmpv6 packet too big): MSS 1440 -> 1220" in text
    assert f"next hop  {GW}  is at 02:00:00:00:01:01  ndp 1.10 ms  STALE" in text
    assert "path mtu  1280 (icmpv6 packet too big): MSS 1440 -> 1220" in text
    assert "checksums  dropped tcp 0" in text  # IPv6 has no header checksum to drop a frame for

    out = io.StringIO()
    view = HeadlessView(Console(file=out, width=200, force_terminal=False))
    for e in [*v6_events(Medium.IP), Done(1.0, 2660, "ab" * 32, 1.0, "out.bin", {})]:
        view(e)
    text = out.getvalue()
    assert f"route: {DST} via point-to-point on tun0" in text
    assert f"next hop  {DST}  point-to-point: no link-layer address" in text
