"""Words for packets: one-line summaries, the packet-list filter, and the decoded-layers tree.

Pure functions over events (and the view model for addresses): no Textual here, so they are tested
directly. Events carry decoded fields, not frames; the tree rebuilds the layers from those fields and the
session's addresses, and shows a hex dump only when an event carries raw bytes (a ``raw`` attribute).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from rich.text import Text

from rawtui.events import (
    ArpIgnored,
    ArpReply,
    ArpRequest,
    ChecksumDrop,
    Event,
    Malformed,
    Medium,
    NdpAdvert,
    NdpAnswered,
    NdpIgnored,
    NdpSolicit,
    PathMtu,
    SegmentIn,
    SegmentOut,
    TlsRecord,
)
from rawtui.views.tui.model import ViewModel, solicited_group
from rawtui.wire.ethernet import mac_str
from rawtui.wire.ipv6 import ip6_bytes, multicast_mac

_FLAG_NAMES = {"F": "FIN", "S": "SYN", "R": "RST", "P": "PSH", "A": "ACK", "U": "URG", "E": "ECE", "C": "CWR"}
_FLAG_BITS = {"F": 0x01, "S": 0x02, "R": 0x04, "P": 0x08, "A": 0x10, "U": 0x20, "E": 0x40, "C": 0x80}
_NOTES = {
    "dup": "duplicate data: the server resent bytes we already had (answered with a D-SACK)",
    "copy": "a copy made by the network: bytes we had, with their original's timestamp (not resent)",
    "late": "the original, late: the server's retransmission had filled its hole first (reordered by the network)",
    "ooo": "arrived above a hole: out of order, kept in the reassembly buffer",
    "fill": "filled a hole: resent by the server (or, if its timestamp is older, late from the network)",
    "out-of-window": "outside the receive window: dropped",
    "challenge": "challenge ACK (RFC 5961)",
    "retransmit": "our retransmission",
    "dup-ack": "duplicate ACK: tells the server about the hole (with SACK blocks)",
    "probe": "zero-window probe",
    "window-update": "window update",
}

FILTER_HELP = (
    "in  out  arp  ndp  icmp  tcp  tls  data  retrans  dup  ooo  drop  flags:R  flags:SA  t>1.5  t<2  !term  text"
)

#: For students: what each neighbor-discovery message and the path-MTU error is for (the detail tree's
#: "Analysis"). RFC 4861 (neighbor discovery), RFC 8201 / RFC 1191 (path MTU discovery).
EXPLAIN = {
    "ndp_solicit": (
        "Neighbor Solicitation: IPv6's ARP request. It asks 'who has this address?', not to everyone (IPv6 "
        "has no broadcast) but to the target's solicited-node multicast group ff02::1:ffXX:XXXX (the "
        "address's last 24 bits), which only hosts with such an address listen to."),
    "ndp_solicit_unicast": (
        "A unicast Neighbor Solicitation: a reachability probe. The entry was STALE, we sent through it "
        "(DELAY) and the connection made no progress that would confirm it, so we ask the cached MAC directly "
        "(PROBE) before trusting it again."),
    "ndp_advert": (
        "Neighbor Advertisement: IPv6's ARP reply, with the target's MAC in its target link-layer address "
        "option. Flags: S (solicited: an answer to our question, so the neighbor is REACHABLE), O (override: "
        "replace a cached MAC), R (the sender is a router)."),
    "ndp_ignored": (
        "This neighbor-discovery message did not count: RFC 4861 says which to believe (hop limit 255, so it "
        "came from this link; a target we asked about; the flags) and the rest are ignored."),
    "ndp_answered": (
        "Someone (usually the router, before it forwards the server's first packet to us) asked for one of "
        "our addresses: rawtui answers with a solicited Neighbor Advertisement, as the kernel would, or the "
        "router could not reach us."),
    "path_mtu": (
        "A router on the path could not forward a packet this big (IPv6 routers never fragment: they drop "
        "and say Packet Too Big; IPv4 routers do the same for packets with DF set: fragmentation needed). "
        "Path MTU discovery: the connection lowers its MSS to fit and resends what was in flight."),
}

#: The Ethernet type and name of each family's header.
_FAMILY = {4: ("0x0800", "IPv4"), 6: ("0x86dd", "IPv6")}



def direction(ev: Event) -> str:
    """``out`` for what we sent, ``in`` for what we received (or dropped)."""
    if ev.type == "tls_record":
        return "out" if getattr(ev, "direction", "in") == "out" else "in"
    return "out" if ev.type in ("segment_out", "arp_request", "ndp_solicit", "ndp_answered") else "in"


def protocol(ev: Event) -> str:
    if ev.type.startswith("arp"):
        return "ARP"
    if ev.type.startswith("ndp"):
        return "NDP"
    if ev.type == "path_mtu":
        return "ICMPv6" if "packet too big" in getattr(ev, "source", "") else "ICMP"
    if ev.type.startswith("segment"):
        return "TCP"
    if ev.type == "checksum_drop":
        return getattr(ev, "layer", "").upper() or "?"
    if ev.type == "tls_record":
        return "TLS"
    return "?"


def window_bytes(ev: SegmentIn | SegmentOut, out_shift: int = 0) -> int:
    """The receive window a segment advertises, in bytes. Received segments carry it scaled already; the
    ones we send carry the 16-bit field, to be shifted by our window scale ``out_shift`` (not in a SYN)."""
    if isinstance(ev, SegmentOut) and "S" not in ev.flags:
        return ev.window << out_shift
    return ev.window


def summary(ev: Event, *, short: bool = False, out_shift: int = 0) -> str:
    """A one-line description, as in a capture tool's Info column (``short``: for narrow lists).
    ``out_shift``: our window scale, to show the windows we advertise in bytes."""
    if isinstance(ev, (SegmentIn, SegmentOut)) and short:
        if ev.length:
            s = f"{ev.flags:<3}{ev.seq}:{ev.seq + ev.length} ack {ev.ack}"
        else:
            s = f"{ev.flags:<3}ack {ev.ack} win {window_bytes(ev, out_shift)}"
        return s + (f" [{ev.note}]" if ev.note else "")
    if isinstance(ev, (SegmentIn, SegmentOut)):
        s = f"{ev.flags:<3} seq={ev.seq} ack={ev.ack} win={window_bytes(ev, out_shift)} len={ev.length}"
        if ev.sack:
            s += " sack=" + ",".join(f"{a}-{b}" for a, b in ev.sack)
        if ev.note:
            s += f" [{ev.note}]"
        return s
    if isinstance(ev, ArpRequest):
        return f"ARP who-has {ev.target_ip}? (try {ev.attempt})"
    if isinstance(ev, ArpReply):
        return f"ARP {ev.ip} is-at {ev.mac} ({ev.rtt_ms:.2f} ms)"
    if isinstance(ev, ArpIgnored):
        return f"ARP ignored: {ev.ip} is-at {ev.mac}, {ev.reason}"
    if isinstance(ev, NdpSolicit):
        if ev.unicast:
            return f"NS who-has {ev.target_ip}? (unicast probe {ev.attempt})"
        return f"NS who-has {ev.target_ip}? to its solicited-node group (try {ev.attempt})"
    if isinstance(ev, NdpAdvert):
        flags = "".join(f for f, on in (("R", ev.router), ("S", ev.solicited), ("O", ev.override)) if on)
        return f"NA {ev.ip} is-at {ev.mac} [{flags or '-'}] ({ev.rtt_ms:.2f} ms)"
    if isinstance(ev, NdpIgnored):
        return f"NDP ignored: {ev.ip} ({ev.mac}), {ev.reason}"
    if isinstance(ev, NdpAnswered):
        return f"NA to {ev.asker_ip} ({ev.asker_mac}): {ev.target_ip} is us"
    if isinstance(ev, PathMtu):
        what = "Packet Too Big" if "packet too big" in ev.source else "fragmentation needed"
        told = f"{ev.reported}" if ev.reported else "not said"
        sender = f" from {ev.sender}" if ev.sender else ""
        return f"{what}{sender}: path MTU {ev.mtu} (said {told}): MSS {ev.old_mss} → {ev.mss}"
    if isinstance(ev, ChecksumDrop):
        return f"DROP bad {ev.layer.upper()} checksum ({ev.length} B)"
    if isinstance(ev, Malformed):
        return f"DROP malformed ({ev.length} B): {ev.reason}"
    if isinstance(ev, TlsRecord):
        return f"TLS {ev.content_type} record, {ev.length:,} B"
    return ev.type


def row_style(ev: Event) -> str:
    """A Rich style for the row, by what happened."""
    note = getattr(ev, "note", "")
    if ev.type in ("checksum_drop", "malformed"):
        return "bold red"
    if note in ("retransmit", "dup", "copy"):
        return "bold red" if note == "retransmit" else "red"
    if note in ("ooo", "late"):
        return "magenta"
    if note == "dup-ack":
        return "yellow"
    if ev.type.startswith(("arp", "ndp")):
        return "cyan"
    if ev.type == "path_mtu":
        return "bold yellow"
    if ev.type == "tls_record":
        return "blue" if getattr(ev, "content_type", "") == "ApplicationData" else "bold blue"
    flags = getattr(ev, "flags", "")
    if "R" in flags:
        return "bold red"
    if "S" in flags or "F" in flags:
        return "bold green"
    return ""


def styled_summary(ev: Event, *, short: bool = False, out_shift: int = 0) -> Text:
    return Text(summary(ev, short=short, out_shift=out_shift), style=row_style(ev), overflow="ellipsis",
                no_wrap=True)


# -- the filter ------------------------------------------------------------------------------------

Predicate = Callable[[Event], bool]

_T_RE = re.compile(r"^t([<>]=?)(\d+(?:\.\d*)?)$")


def _term(token: str) -> Predicate:
    tok = token.lower()
    if tok in ("in", "out"):
        return lambda e: direction(e) == tok
    if tok == "arp":
        return lambda e: e.type.startswith("arp")
    if tok in ("ndp", "nd", "neighbor"):
        return lambda e: e.type.startswith("ndp")
    if tok in ("icmp", "icmpv6", "pmtu", "mtu"):  # what rawtui shows of ICMP: NDP and the path-MTU errors
        return lambda e: e.type.startswith("ndp") or e.type == "path_mtu"
    if tok == "tcp":
        return lambda e: e.type.startswith("segment")
    if tok == "tls":
        return lambda e: e.type == "tls_record"
    if tok == "data":
        return lambda e: getattr(e, "length", 0) > 0 and e.type.startswith("segment")
    if tok in ("retrans", "retransmit", "rexmit", "retransmission"):
        return lambda e: getattr(e, "note", "") in ("retransmit", "dup")
    if tok in ("dup", "dupack", "dup-ack"):
        return lambda e: getattr(e, "note", "") in ("dup", "dup-ack")
    if tok in ("ooo", "out-of-order"):
        return lambda e: getattr(e, "note", "") == "ooo"
    if tok in ("drop", "drops", "bad", "cksum", "checksum", "malformed"):
        return lambda e: e.type in ("checksum_drop", "malformed")
    if tok.startswith("flags:"):
        want = token.split(":", 1)[1].upper()
        return lambda e: e.type.startswith("segment") and all(f in getattr(e, "flags", "") for f in want)
    m = _T_RE.match(tok)
    if m:
        op, val = m.group(1), float(m.group(2))
        ops: dict[str, Predicate] = {
            "<": lambda e: e.t < val, "<=": lambda e: e.t <= val,
            ">": lambda e: e.t > val, ">=": lambda e: e.t >= val,
        }
        return ops[op]
    return lambda e: tok in summary(e).lower() or tok in e.type


def _negate(p: Predicate) -> Predicate:
    return lambda e: not p(e)


def parse_filter(text: str) -> Predicate | None:
    """A predicate for the packet list: every space-separated term must match (``!term`` negates).
    None for an empty filter (everything matches)."""
    terms: list[Predicate] = []
    for token in text.split():
        if token.startswith("!") and len(token) > 1:
            terms.append(_negate(_term(token[1:])))
        else:
            terms.append(_term(token))
    if not terms:
        return None
    return lambda e: all(p(e) for p in terms)


# -- the decoded-layers tree -------------------------------------------------------------------------


@dataclass(slots=True)
class Node:
    label: str
    children: list[Node] = field(default_factory=list)

    def add(self, label: str) -> Node:
        n = Node(label)
        self.children.append(n)
        return n


def _flags(flags: str) -> str:
    bits = sum(_FLAG_BITS.get(f, 0) for f in flags)
    names = ", ".join(_FLAG_NAMES.get(f, f) for f in flags)
    return f"0x{bits:03x} [{names}]"


def hexdump(raw: bytes, width: int = 16) -> list[str]:
    lines = []
    for off in range(0, len(raw), width):
        chunk = raw[off:off + width]
        hx = " ".join(f"{b:02x}" for b in chunk)
        asc = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{off:04x}  {hx:<{width * 3}} {asc}")
    return lines


def detail_tree(no: int, ev: Event, model: ViewModel) -> Node:
    """The decoded layers of packet ``no``, rebuilt from its event and the session's addresses."""
    d = direction(ev)
    arrow = "sent" if d == "out" else "received"
    root = Node(f"#{no} {arrow} at t={ev.t:.6f} s")
    r = model.route
    our_ip, our_mac = (r.src_ip, r.src_mac) if r else ("?", "?")
    peer_ip = r.dst_ip if r else "?"
    hop_mac = model.arp_mac or "?"
    hs = model.handshake

    family = r.family if r else 4
    p2p = r is not None and r.medium == Medium.IP
    etype, ip_name = _FAMILY.get(family, _FAMILY[4])

    def link(src_mac: str, dst_mac: str, etype: str, name: str) -> None:
        if p2p:
            root.add("no link header (point-to-point: the frame begins with the IP header)")
            return
        eth = root.add("Ethernet II")
        eth.add(f"src {src_mac}")
        eth.add(f"dst {dst_mac}")
        eth.add(f"type {etype} ({name})")

    if isinstance(ev, (SegmentIn, SegmentOut)):
        link(*((our_mac, hop_mac) if d == "out" else (hop_mac, our_mac)), etype, ip_name)
        ip = root.add(ip_name)
        src_ip, dst_ip = (our_ip, peer_ip) if d == "out" else (peer_ip, our_ip)
        ip.add(f"src {src_ip}")
        ip.add(f"dst {dst_ip}")
        if family == 6:
            ip.add("next header 6 (TCP)")
            ip.add(f"payload length {20 + ev.length} (no extension headers)")
        else:
            ip.add("protocol 6 (TCP)")
            ip.add(f"length {40 + ev.length} (no options)")
        tcp = root.add("TCP")
        if hs is not None:
            sp, dp = (hs.local_port, hs.remote_port) if d == "out" else (hs.remote_port, hs.local_port)
            tcp.add(f"ports {sp} -> {dp}")
            isn_seq, isn_ack = (hs.isn, hs.peer_isn) if d == "out" else (hs.peer_isn, hs.isn)
            tcp.add(f"seq {ev.seq}  (raw {(isn_seq + ev.seq) % 2**32})")
            tcp.add(f"ack {ev.ack}  (raw {(isn_ack + ev.ack) % 2**32})")
        else:
            tcp.add(f"seq {ev.seq} (relative)")
            tcp.add(f"ack {ev.ack} (relative)")
        tcp.add(f"flags {_flags(ev.flags)}")
        shift = model.out_shift
        if isinstance(ev, SegmentOut) and "S" not in ev.flags and shift:
            tcp.add(f"window {ev.window:,} x {1 << shift} (scale {shift}) = {window_bytes(ev, shift):,} B")
        else:
            tcp.add(f"window {ev.window:,} B")
        tcp.add(f"payload {ev.length:,} B")
        if ev.sack:
            sack = tcp.add(f"SACK blocks ({len(ev.sack)})")
            for a, b in ev.sack:
                sack.add(f"{a} - {b}  ({b - a} bytes)")
        if ev.note:
            root.add("Analysis").add(_NOTES.get(ev.note, ev.note))
    elif isinstance(ev, (ArpRequest, ArpReply, ArpIgnored)):
        eth = root.add("Ethernet II")
        arp = root.add("ARP")
        if isinstance(ev, ArpRequest):
            eth.add(f"src {our_mac}")
            eth.add("dst ff:ff:ff:ff:ff:ff (broadcast)")
            arp.add("operation 1 (request)")
            arp.add(f"sender {our_ip} / {our_mac}")
            arp.add(f"target {ev.target_ip} / 00:00:00:00:00:00")
            arp.add(f"attempt {ev.attempt}")
        else:
            eth.add(f"src {ev.mac}")
            eth.add(f"dst {our_mac}")
            arp.add("operation 2 (reply)")
            arp.add(f"sender {ev.ip} / {ev.mac}")
            arp.add(f"target {our_ip} / {our_mac}")
            if isinstance(ev, ArpReply):
                arp.add(f"round trip {ev.rtt_ms:.3f} ms")
            else:
                root.add("Analysis").add(f"ignored: {ev.reason}")
        eth.add("type 0x0806 (ARP)")
    elif isinstance(ev, (NdpSolicit, NdpAdvert, NdpIgnored, NdpAnswered)):
        _ndp_tree(root, ev, our_ip, our_mac)
    elif isinstance(ev, PathMtu):
        v6 = "packet too big" in ev.source
        icmp = root.add("ICMPv6 Packet Too Big (type 2)" if v6 else "ICMP Destination Unreachable (type 3 code 4)")
        if ev.sender:
            icmp.add(f"from {ev.sender}: the router whose next link is too small")
        icmp.add(f"MTU said {ev.reported}" if ev.reported else "next-hop MTU not said (a router older than RFC 1191)")
        icmp.add("quotes the start of a segment we sent (our addresses, ports and a sequence number in flight)")
        conn = root.add("Connection")
        conn.add(f"path MTU now {ev.mtu}")
        conn.add(f"MSS {ev.old_mss} → {ev.mss} (MTU - {ev.mtu - ev.mss} bytes of IP and TCP headers)")
        root.add("Analysis").add(EXPLAIN["path_mtu"])
    elif isinstance(ev, TlsRecord):
        tls = root.add("TLS record")
        tls.add(f"content type {ev.content_type}")
        tls.add(f"length {ev.length:,} B")
        root.add("Analysis").add(
            "the record's header, read from the TCP byte stream; its content is encrypted (--keylog lets "
            "Wireshark decrypt a capture)" if ev.content_type == "ApplicationData" else
            "the record's header, read from the TCP byte stream")
    else:
        drop = root.add("Dropped frame")
        drop.add(summary(ev))
        if isinstance(ev, ChecksumDrop):
            drop.add("the frame arrived damaged: its checksum does not match its bytes")
    raw = getattr(ev, "raw", None)
    if isinstance(raw, (bytes, bytearray)):
        hx = root.add(f"Hex dump ({len(raw)} bytes)")
        for line in hexdump(bytes(raw)):
            hx.add(line)
    else:
        root.add("Hex dump").add("not recorded: events carry fields, not frames")
    return root


def _ndp_tree(root: Node, ev: NdpSolicit | NdpAdvert | NdpIgnored | NdpAnswered, our_ip: str, our_mac: str) -> None:
    """The layers of a neighbor-discovery message (RFC 4861), rebuilt from its event."""
    eth = root.add("Ethernet II")
    ip = root.add("IPv6")
    if isinstance(ev, NdpSolicit):
        eth.add(f"src {our_mac}")
        group = solicited_group(ev.target_ip)
        eth.add(f"dst {'the cached MAC (unicast)' if ev.unicast else multicast_mac_text(group)}")
        ip.add(f"src {our_ip}")
        ip.add(f"dst {ev.target_ip if ev.unicast else group + ' (solicited-node multicast)'}")
        msg = root.add("ICMPv6 Neighbor Solicitation (type 135)")
        msg.add(f"target {ev.target_ip}")
        msg.add(f"source link-layer address {our_mac}")
        msg.add(f"attempt {ev.attempt}")
        explain = EXPLAIN["ndp_solicit_unicast" if ev.unicast else "ndp_solicit"]
    elif isinstance(ev, NdpAnswered):
        eth.add(f"src {our_mac}")
        eth.add(f"dst {ev.asker_mac}")
        ip.add(f"src {ev.target_ip}")
        ip.add(f"dst {ev.asker_ip}")
        msg = root.add("ICMPv6 Neighbor Advertisement (type 136)")
        msg.add(f"target {ev.target_ip}")
        msg.add("flags S O (solicited, override)")
        msg.add(f"target link-layer address {our_mac}")
        explain = EXPLAIN["ndp_answered"]
    else:
        eth.add(f"src {ev.mac}")
        eth.add(f"dst {our_mac}")
        ip.add(f"src {ev.ip}")
        ip.add(f"dst {our_ip}")
        msg = root.add("ICMPv6 neighbor discovery")
        msg.add(f"target {ev.ip}")
        msg.add(f"link-layer address {ev.mac}")
        if isinstance(ev, NdpAdvert):
            msg.label = "ICMPv6 Neighbor Advertisement (type 136)"
            flags = [n for n, on in (("R router", ev.router), ("S solicited", ev.solicited),
                                     ("O override", ev.override)) if on]
            msg.add(f"flags {', '.join(flags) or 'none'}")
            msg.add(f"round trip {ev.rtt_ms:.3f} ms")
            explain = EXPLAIN["ndp_advert"]
        else:
            root.add("Analysis").add(f"ignored: {ev.reason}")
            explain = EXPLAIN["ndp_ignored"]
    eth.add("type 0x86dd (IPv6)")
    ip.add("next header 58 (ICMPv6) · hop limit 255 (neighbor discovery never crosses a router)")
    root.add("Analysis" if isinstance(ev, (NdpSolicit, NdpAdvert, NdpAnswered)) else "Why").add(explain)


def multicast_mac_text(group: str) -> str:
    """``33:33:ff:xx:xx:xx (multicast)`` for an IPv6 multicast group."""
    try:
        return mac_str(multicast_mac(ip6_bytes(group))) + " (multicast)"
    except ValueError:
        return "multicast"
