"""IPv6 captures are analysed like IPv4 ones (issue 14): the download of test_tui_pcap_replay.py (a lost
and resent segment, reordering, a duplicate, a corrupted frame) rewritten frame by frame as IPv6 (the same
TCP headers and payloads, checksums over IPv6's pseudo-header; the ARP exchange becomes a neighbor
solicitation and advertisement) gives the same analysis, event for event, as the IPv4 capture; so do its
raw-IP (LINKTYPE_RAW 101) and SLL2 variants as a tun interface writes them, whose route says point-to-point.
The IPv4 capture's frame with a bad IPv4 header checksum has no IPv6 counterpart (IPv6 has no header
checksum): it is left out of both. Lab captures (curl -6 through the lab, checked against tshark) are in
tests/lab/test_lab_tshark_agreement.py.
"""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path
from typing import Any

import pytest
from capture_files import ETH_P_ARP, ETH_P_IP, ETH_P_IPV6, Rec, pcap_bytes, pcapng_bytes, read_classic
from test_tui_pcap_replay import write_download

from rawtui.cli import main
from rawtui.events import (
    Done,
    Event,
    Medium,
    NdpAdvert,
    NdpSolicit,
    Route,
    to_dict,
)
from rawtui.recording import conversations, format_table, load_events
from rawtui.wire.arp import OP_REPLY, OP_REQUEST, parse_arp
from rawtui.wire.checksum import checksum_from_residue, pseudo_header_residue, residue
from rawtui.wire.icmpv6 import NdpOptions, NeighborAdvert, NeighborSolicit, build_icmpv6
from rawtui.wire.ipv4 import PROTO_TCP
from rawtui.wire.ipv6 import NH_ICMPV6, build_ipv6, ip6_bytes, multicast_mac, solicited_node

V6 = {  # the IPv4 capture's addresses, and their IPv6 counterparts
    bytes([10, 0, 1, 2]): ip6_bytes("2001:db8:1::2"),
    bytes([10, 0, 1, 1]): ip6_bytes("2001:db8:1::1"),
    bytes([10, 0, 2, 2]): ip6_bytes("2001:db8:2::2"),
}
TEXT = {"10.0.1.2": "[2001:db8:1::2]", "10.0.2.2": "[2001:db8:2::2]", "10.0.1.1": "[2001:db8:1::1]"}


def _ipv4_ok(ip: bytes) -> bool:
    return residue(ip[: (ip[0] & 0x0F) * 4]) % 0xFFFF == 0


def to_ipv6(eth: bytes) -> bytes | None:
    """One Ethernet frame of the IPv4 capture as IPv6 (None: the bad-IPv4-checksum frame)."""
    dst_mac, src_mac, ethertype = eth[:6], eth[6:12], struct.unpack_from("!H", eth, 12)[0]
    if ethertype == ETH_P_ARP:
        arp = parse_arp(eth[14:])
        sender, target = V6[arp.sender_ip], V6[arp.target_ip]
        if arp.op == OP_REQUEST:
            group = solicited_node(target)
            ns = NeighborSolicit(target, NdpOptions(source_lladdr=arp.sender_mac))
            ip = build_ipv6(sender, group, NH_ICMPV6, build_icmpv6(ns, sender, group), hop_limit=255)
            return multicast_mac(group) + src_mac + struct.pack("!H", ETH_P_IPV6) + ip
        assert arp.op == OP_REPLY
        na = NeighborAdvert(sender, router=True, solicited=True, override=True,
                            options=NdpOptions(target_lladdr=arp.sender_mac))
        ip = build_ipv6(sender, target, NH_ICMPV6, build_icmpv6(na, sender, target), hop_limit=255)
        return dst_mac + src_mac + struct.pack("!H", ETH_P_IPV6) + ip
    assert ethertype == ETH_P_IP
    ip4 = eth[14:]
    if not _ipv4_ok(ip4):
        return None
    ihl, total = (ip4[0] & 0x0F) * 4, struct.unpack_from("!H", ip4, 2)[0]
    src4, dst4, tcp = ip4[12:16], ip4[16:20], bytearray(ip4[ihl:total])
    src, dst = V6[src4], V6[dst4]
    good4 = (pseudo_header_residue(src4, dst4, PROTO_TCP, len(tcp)) + residue(tcp)) % 0xFFFF == 0
    tcp[16:18] = b"\0\0"
    csum = checksum_from_residue(pseudo_header_residue(src, dst, PROTO_TCP, len(tcp)) + residue(tcp))
    tcp[16:18] = struct.pack("!H", csum if good4 else csum ^ 0x00FF)  # a corrupted segment stays corrupted
    return dst_mac + src_mac + struct.pack("!H", ETH_P_IPV6) + build_ipv6(src, dst, PROTO_TCP, bytes(tcp))


def tun_sll2(ip: bytes) -> bytes:
    """A raw IPv6 packet as tcpdump -i tun0 writes it in SLL2: ARPHRD_NONE, no link-layer address."""
    return struct.pack("!HHIHBB8s", ETH_P_IPV6, 0, 9, 0xFFFE, 0, 0, b"\0" * 8) + ip


@pytest.fixture(scope="module")
def captures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("v6")
    write_download(d / "download.pcap")
    recs = read_classic(d / "download.pcap")
    v4 = [r for r in recs if struct.unpack_from("!H", r.data, 12)[0] != ETH_P_IP or _ipv4_ok(r.data[14:])]
    v6 = [Rec(r.sec, r.nsec, f, r.iface) for r in recs if (f := to_ipv6(r.data)) is not None]
    assert len(v6) == len(v4) == len(recs) - 1
    raw = [Rec(r.sec, r.nsec, r.data[14:]) for r in v6 if r.data[20] == PROTO_TCP]  # a tun: no neighbor discovery
    v4_tcp = [r for r in v4 if struct.unpack_from("!H", r.data, 12)[0] == ETH_P_IP]
    paths = {"v4": d / "v4.pcap", "v6": d / "v6.pcap", "v4-tcp": d / "v4-tcp.pcap", "raw": d / "raw.pcap",
             "sll2": d / "tun.pcapng"}
    paths["v4"].write_bytes(pcap_bytes(v4, 1))
    paths["v6"].write_bytes(pcap_bytes(v6, 1))
    paths["v4-tcp"].write_bytes(pcap_bytes(v4_tcp, 1))
    paths["raw"].write_bytes(pcap_bytes(raw, 101))
    paths["sll2"].write_bytes(pcapng_bytes([Rec(r.sec, r.nsec, tun_sll2(r.data)) for r in raw], [(276, 9)]))
    return paths


def normal(evs: list[Event], name: str) -> list[dict[str, Any]]:
    """The analysis without its link-level events, addresses written as IPv6's (``[addr]:port``)."""
    out = []
    for e in evs:
        if e.type in ("route", "arp_request", "arp_reply", "ndp_solicit", "ndp_advert"):
            continue
        d = to_dict(e)
        if d["type"] == "checksum_drop":
            d.pop("length")  # the frame's length: IPv6's header is 20 bytes longer
        if d["type"] == "info":
            msg = d["message"].replace(name, "FILE")
            for v4, v6 in TEXT.items():
                msg = msg.replace(v4, v6)
            d["message"] = msg
        out.append(d)
    return out


def test_ipv6_capture_gives_the_ipv4_analysis(captures: dict[str, Path]) -> None:
    ref = normal(load_events(captures["v4"]), "v4.pcap")
    evs = load_events(captures["v6"])
    assert any(isinstance(e, Done) for e in evs) and len(ref) > 60
    assert normal(evs, "v6.pcap") == ref
    route = next(e for e in evs if isinstance(e, Route))
    assert (route.family, route.medium, route.src_ip, route.dst_ip, route.gateway, route.src_mac) == (
        6, Medium.ETHERNET, "2001:db8:1::2", "2001:db8:2::2", "2001:db8:1::1", "02:00:0a:00:01:02")
    assert route.mtu == 1460 + 60
    ns = [e for e in evs if isinstance(e, NdpSolicit)]
    na = [e for e in evs if isinstance(e, NdpAdvert)]
    assert [(e.target_ip, e.attempt, e.unicast) for e in ns] == [("2001:db8:1::1", 1, False)]
    assert [(e.ip, e.mac, e.solicited, e.router) for e in na] == [("2001:db8:1::1", "02:00:0a:00:01:01", True, True)]
    assert na[0].rtt_ms == pytest.approx(0.4, abs=0.01)


@pytest.mark.parametrize("variant", ["raw", "sll2"])
def test_a_tun_capture_is_point_to_point(variant: str, captures: dict[str, Path]) -> None:
    """Raw IPv6 (LINKTYPE_RAW) and SLL2 without link-layer addresses (tcpdump on a tun): the same analysis
    as the Ethernet capture without its neighbor discovery; the route says point-to-point."""
    ref = normal(load_events(captures["v4-tcp"]), "v4-tcp.pcap")
    evs = load_events(captures[variant])
    name = captures[variant].name
    assert normal(evs, name) == ref
    route = next(e for e in evs if isinstance(e, Route))
    assert (route.family, route.medium, route.src_mac) == (6, Medium.IP, "?")


def test_list_and_stream_choose_ipv6(captures: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    table = conversations(captures["v6"])
    conv, why = table.pick(None)
    assert (conv.index, conv.ipv6, why) == (0, True, "the largest HTTP/HTTPS download")
    assert conv.name == "[2001:db8:1::2]:40000 -> [2001:db8:2::2]:8080"
    lines = format_table(table, 0)
    assert lines[1].startswith("*    0  [2001:db8:1::2]:") and "HTTP (GET /big.bin)" in lines[1]
    assert table.pick(0)[0] is conv
    assert main(["replay", str(captures["v6"]), "--list"]) == 0
    out = capsys.readouterr().out
    assert "* stream 0: the largest HTTP/HTTPS download" in out and "not analysed" not in out
    assert main(["replay", "--headless", "--stream", "0", str(captures["v6"])]) == 0
    err = capsys.readouterr().err
    assert "ndp: 2001:db8:1::1 is at 02:00:0a:00:01:01" in err and "Traceback" not in err


def test_the_lab_capture_fixture(tmp_path: Path) -> None:
    """tests/fixtures/recorded/ipv6-download.pcap (the IPv6 screenshot's capture: curl -6 in the dual-stack
    lab, 3 % of the server's segments dropped, made with test_lab_tshark_agreement6.capture_download6):
    the body is the file the lab served (make_file, 128 KiB, seed 14), the next hop found by NDP."""
    from rawtui.lab.server import make_file

    served = make_file(tmp_path / "f.bin", 128 << 10, seed=14).read_bytes()
    evs = load_events(Path(__file__).resolve().parents[1] / "fixtures" / "recorded" / "ipv6-download.pcap")
    done = [e for e in evs if isinstance(e, Done)]
    assert done and done[0].bytes == len(served) and done[0].sha256 == hashlib.sha256(served).hexdigest()
    route = next(e for e in evs if isinstance(e, Route))
    assert (route.family, route.src_ip, route.gateway, route.medium) == (6, "2001:db8:1::2", "2001:db8:1::1",
                                                                        Medium.ETHERNET)
    assert [type(e) for e in evs if isinstance(e, (NdpSolicit, NdpAdvert))] == [NdpSolicit, NdpAdvert]
    assert done[0].counters["holes_opened"] > 0  # the router's drops left holes the analysis saw


def test_an_ipv6_fragment_of_the_connection_is_counted_and_dropped(captures: dict[str, Path], tmp_path: Path) -> None:
    """A server segment sent as a first fragment (a fragment header, more to come): ``malformed``, as the
    live stack counts it (rawtui does not reassemble), and the analysis goes on."""
    from capture_files import read_classic

    from rawtui.events import Malformed
    from rawtui.wire.ipv6 import NH_FRAGMENT, fragment_body, parse_ipv6

    recs = read_classic(captures["v6"])
    i = next(k for k, r in enumerate(recs) if r.data[20] == PROTO_TCP and parse_ipv6(r.data[14:])[0].payload_length > 500
             and r.data[14 + 40 + 2:14 + 40 + 4] == (40000).to_bytes(2, "big"))
    ip6, tcp = parse_ipv6(recs[i].data[14:])
    frag = build_ipv6(ip6.src, ip6.dst, PROTO_TCP, bytes(tcp)[:200], extensions=[(NH_FRAGMENT, fragment_body(0, True, 7))])
    recs.insert(i, Rec(recs[i].sec, recs[i].nsec, recs[i].data[:14] + frag))
    path = tmp_path / "frag.pcap"
    path.write_bytes(pcap_bytes(recs, 1))
    evs = load_events(path)
    assert [e.reason for e in evs if isinstance(e, Malformed)] == ["IPv6 fragment dropped (rawtui does not reassemble)"]
    assert any(isinstance(e, Done) for e in evs)
