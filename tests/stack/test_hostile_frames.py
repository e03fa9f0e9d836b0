"""Hostile or odd frames through :meth:`rawtui.stack.host.Host.on_frame`, hand-built with the wire builders
and a fake clock: nothing raises, nothing bogus reaches the byte stream, every drop is counted by name.

What is already covered elsewhere: the TCP machine alone (tests/stack/test_stack_tcp.py, test_hostile_tcp.py),
the ARP resolver alone (test_stack_arp.py), the parsers alone (test_wire_properties.py).
"""

from __future__ import annotations

import random
import struct

import pytest

from rawtui.events import ArpIgnored, ChecksumDrop, Malformed, SegmentIn
from rawtui.stack.host import CSUM_KERNEL_VALID, CSUM_NOT_READY, Host
from rawtui.wire.arp import OP_REPLY, OP_REQUEST, ArpPacket, build_arp
from rawtui.wire.checksum import checksum_from_residue, internet_checksum, pseudo_header_residue, residue
from rawtui.wire.ethernet import ETH_P_8021Q, ETH_P_ARP, ETH_P_IP, build_ethernet, parse_ethernet
from rawtui.wire.ipv4 import PROTO_TCP, build_ipv4, parse_ipv4
from rawtui.wire.tcp import ACK, FIN, PSH, RST, SYN, TcpOptions, TcpSegment, build_tcp, parse_tcp

MAC = bytes.fromhex("020000000001")
GW_MAC = bytes.fromhex("020000000099")
EVIL_MAC = bytes.fromhex("02000000e411")
LIP = bytes([10, 77, 1, 2])
GW = bytes([10, 77, 1, 1])
SRV = bytes([10, 77, 2, 2])
LPORT, RPORT = 40000, 8080
ISN, PISN = 1000, 5000
STREAM = bytes(random.Random(7).randbytes(300_000))


def kinds(events, cls):
    return [e for e in events if isinstance(e, cls)]


class Rig:
    """A Host plus the far side of the wire: the gateway's ARP and the server's TCP segments."""

    def __init__(self, rcv_buf: int = 1 << 20, **kw) -> None:
        self.host = Host(local_mac=MAC, local_ip=LIP, next_hop_ip=GW, remote_ip=SRV, remote_port=RPORT,
                         local_port=LPORT, isn=ISN, rcv_buf=rcv_buf, iface="eth0", next_hop_role="gateway", **kw)
        self.now = 0.0
        self.tsval = 100
        self.got = bytearray()

    # -- the far side ---------------------------------------------------------------------------

    def arp(self, op: int = OP_REPLY, sender_ip: bytes = GW, sender_mac: bytes = GW_MAC,
            target_ip: bytes = LIP) -> bytes:
        pkt = ArpPacket(op, sender_mac, sender_ip, MAC, target_ip)
        return build_ethernet(MAC, sender_mac, ETH_P_ARP, build_arp(pkt))

    def segment(self, off: int = 0, payload: bytes = b"", flags: int = ACK, ack: int | None = None,
                window: int = 0xFFFF, **over) -> TcpSegment:
        """A server segment whose first byte is stream offset ``off``."""
        if ack is None:
            ack = self.host.tcp.snd_nxt
        kw = {"src_port": RPORT, "dst_port": LPORT, "seq": (PISN + 1 + off) & 0xFFFFFFFF, "ack": ack,
              "flags": flags, "window": window, "options": TcpOptions(ts=(self.tsval, 0)), "payload": payload}
        kw.update(over)
        return TcpSegment(**kw)

    def frame(self, seg: TcpSegment | bytes, src: bytes = SRV, dst: bytes = LIP, proto: int = PROTO_TCP,
              src_mac: bytes = GW_MAC, **ip_kw) -> bytes:
        raw = build_tcp(seg, src, dst) if isinstance(seg, TcpSegment) else seg
        return build_ethernet(MAC, src_mac, ETH_P_IP, build_ipv4(src, dst, proto, raw, **ip_kw))

    # -- driving --------------------------------------------------------------------------------

    def feed(self, frame: bytes, dt: float = 0.001, csum: int = 0):
        self.now += dt
        self.host.on_frame(frame, self.now, csum)
        self.got += b"".join(self.host.read())
        return self.host.take_frames(), self.host.take_events()

    def connect(self) -> None:
        self.host.start(self.now)
        (req,) = self.host.take_frames()
        assert parse_ethernet(req).ethertype == ETH_P_ARP
        self.feed(self.arp())
        assert self.host.arp.mac == GW_MAC
        o = TcpOptions(mss=1460, wscale=7, sack_permitted=True, ts=(self.tsval, 0))
        frames, _ = self.feed(self.frame(TcpSegment(RPORT, LPORT, PISN, ISN + 1, SYN | ACK, 0xFFFF, o)))
        assert self.host.tcp.state == "ESTABLISHED", self.host.tcp.state
        assert frames  # the handshake's ACK
        self.host.take_events()

    def ours(self, frames: list[bytes]) -> list[TcpSegment]:
        """Our frames, checked (Ethernet to the gateway's MAC, IPv4 checksum, TCP checksum) and parsed."""
        segs = []
        for f in frames:
            eth = parse_ethernet(f)
            assert eth.dst == GW_MAC and eth.src == MAC
            ip, payload = parse_ipv4(eth.payload)
            segs.append(parse_tcp(payload, ip.src, ip.dst, verify=True))
        return segs


def patched_tcp(seg: TcpSegment, offset_byte: int | None = None, options: bytes | None = None,
                src: bytes = SRV, dst: bytes = LIP) -> bytes:
    """A TCP segment with a hand-set data-offset byte and/or raw option bytes, checksum recomputed."""
    raw = bytearray(build_tcp(TcpSegment(seg.src_port, seg.dst_port, seg.seq, seg.ack, seg.flags, seg.window),
                              src, dst))
    if options is not None:
        raw[20:20] = options
        raw[12] = ((20 + len(options)) // 4) << 4
    raw += bytes(seg.payload)
    if offset_byte is not None:
        raw[12] = offset_byte
    raw[16:18] = b"\0\0"
    r = pseudo_header_residue(src, dst, PROTO_TCP, len(raw)) + residue(raw)
    raw[16:18] = checksum_from_residue(r).to_bytes(2, "big")
    return bytes(raw)


def ipv4_with(payload: bytes, *, options: bytes = b"", flags_frag: int = 0x4000, total: int | None = None,
              version: int = 4, src: bytes = SRV, dst: bytes = LIP) -> bytes:
    """A hand-made IPv4 header (options, fragment field, total length), header checksum correct."""
    hl = 20 + len(options)
    tot = hl + len(payload) if total is None else total
    hdr = bytearray(struct.pack("!BBHHHBBH4s4s", (version << 4) | (hl // 4), 0, tot & 0xFFFF, 7, flags_frag, 64,
                                PROTO_TCP, 0, src, dst)) + options
    hdr[10:12] = internet_checksum(hdr).to_bytes(2, "big")
    return bytes(hdr) + payload


@pytest.fixture
def rig() -> Rig:
    r = Rig()
    r.connect()
    return r


# ---------------------------------------------------------------------------------------------- ARP


def test_arp_reply_before_any_request_is_unsolicited():
    r = Rig()
    _, evs = r.feed(r.arp())
    (ig,) = kinds(evs, ArpIgnored)
    assert ig.reason == "unsolicited reply" and r.host.arp.mac is None


def test_spoofed_arp_replies_do_not_resolve_the_gateway():
    r = Rig()
    r.host.start(0.0)
    r.host.take_frames()
    _, evs = r.feed(r.arp(sender_ip=bytes([10, 77, 1, 66]), sender_mac=EVIL_MAC))  # another IP
    _, evs2 = r.feed(r.arp(sender_mac=EVIL_MAC, target_ip=bytes([10, 77, 1, 3])))  # for another host
    frames, evs3 = r.feed(r.arp(op=OP_REQUEST, sender_mac=EVIL_MAC))  # a request claiming the gateway
    assert [e.reason for e in kinds(evs + evs2, ArpIgnored)] == ["reply from an IP we did not ask",
                                                                 "reply addressed to another IP"]
    assert r.host.arp.mac is None and frames == [] and not kinds(evs3, ArpIgnored)
    frames, _ = r.feed(r.arp())  # the real one
    assert r.host.arp.mac == GW_MAC
    assert parse_ethernet(frames[0]).dst == GW_MAC  # the SYN goes to the real gateway


def test_changed_gateway_mac_mid_transfer_is_reported_and_not_followed(rig):
    rig.feed(rig.frame(rig.segment(0, STREAM[:1000])))
    _, evs = rig.feed(rig.arp(sender_mac=EVIL_MAC))
    (ig,) = kinds(evs, ArpIgnored)
    assert ig.reason == "MAC changed from 02:00:00:00:00:99: not followed" and ig.mac == "02:00:00:00:e4:11"
    # a gratuitous request with the new MAC changes nothing either
    rig.feed(rig.arp(op=OP_REQUEST, sender_mac=EVIL_MAC))
    frames, _ = rig.feed(rig.frame(rig.segment(1000, STREAM[1000:4000])))
    assert frames and rig.ours(frames)  # ours() asserts every frame still goes to GW_MAC
    assert rig.host.arp.mac == GW_MAC and bytes(rig.got) == STREAM[:4000]


# ---------------------------------------------------------------------------------------------- addresses


def test_segments_from_the_wrong_ip_or_port_are_dropped_and_counted(rig):
    seg = rig.segment(0, b"EVIL")
    other = bytes([10, 77, 2, 3])
    cases = [
        rig.frame(seg, src=other),  # another server
        rig.frame(build_tcp(seg, SRV, other), dst=other),  # to another host
        rig.frame(rig.segment(0, b"EVIL", src_port=RPORT + 1)),  # another server port
        rig.frame(rig.segment(0, b"EVIL", dst_port=LPORT + 1)),  # another of our ports
        rig.frame(build_tcp(seg, SRV, LIP), proto=17),  # UDP, same bytes
    ]
    out = []
    for f in cases:
        frames, _ = rig.feed(f)
        out += frames
    assert out == [] and rig.got == b""
    assert rig.host.counters["not_ours"] == 3 and rig.host.tcp.counters["bad_port"] == 2
    rig.feed(rig.frame(rig.segment(0, b"real")))
    assert rig.got == b"real"


def test_other_ethertypes_and_vlan_tags(rig):
    seg = build_ipv4(SRV, LIP, PROTO_TCP, build_tcp(rig.segment(0, b"tagged"), SRV, LIP))
    ipv6ish = build_ethernet(MAC, GW_MAC, 0x86DD, seg)
    rig.feed(ipv6ish)
    assert rig.host.counters["not_ours"] == 1 and rig.got == b""
    tagged = MAC + GW_MAC + struct.pack("!HHH", ETH_P_8021Q, 5, ETH_P_IP) + seg
    rig.feed(tagged)  # a VLAN tag the kernel left in place is skipped
    assert rig.got == b"tagged"


# ---------------------------------------------------------------------------------------------- handshake


def test_second_synack_with_another_isn_gets_a_challenge_ack(rig):
    o = TcpOptions(mss=1460, wscale=7, sack_permitted=True, ts=(rig.tsval, 0))
    frames, evs = rig.feed(rig.frame(TcpSegment(RPORT, LPORT, PISN + 12345, ISN + 1, SYN | ACK, 0xFFFF, o)))
    (a,) = rig.ours(frames)
    assert a.flags == ACK and a.ack == PISN + 1
    assert rig.host.tcp.peer_isn == PISN and rig.host.tcp.state == "ESTABLISHED"
    assert [e.note for e in kinds(evs, SegmentIn)] == ["challenge"]
    rig.feed(rig.frame(rig.segment(0, b"still fine")))
    assert rig.got == b"still fine"


def test_syn_on_the_open_connection_gets_a_challenge_ack(rig):
    frames, _ = rig.feed(rig.frame(rig.segment(10, flags=SYN)))
    (a,) = rig.ours(frames)
    assert a.flags == ACK and a.ack == PISN + 1 and rig.host.tcp.counters["challenge_acks"] == 1
    assert rig.host.tcp.state == "ESTABLISHED" and rig.host.error is None


# ---------------------------------------------------------------------------------------------- RST


def test_rsts_in_window_not_at_rcv_nxt_get_challenge_acks_only(rig):
    rig.feed(rig.frame(rig.segment(0, STREAM[:2000])))
    for off in (2001, 3000, 60000):
        frames, _ = rig.feed(rig.frame(rig.segment(off, flags=RST | ACK)))
        (a,) = rig.ours(frames)
        assert a.flags == ACK and a.ack == PISN + 1 + 2000
    frames, _ = rig.feed(rig.frame(rig.segment(50 << 20, flags=RST)))  # far outside: silently dropped
    assert frames == []
    c = rig.host.tcp.counters
    assert (c["challenge_acks"], c["rst_ignored"], c["rst_in"]) == (3, 1, 4)
    assert rig.host.tcp.state == "ESTABLISHED"
    frames, _ = rig.feed(rig.frame(rig.segment(2000, flags=RST)))  # exactly at rcv.nxt: a real reset
    assert frames == [] and rig.host.tcp.state == "CLOSED"
    assert rig.host.error is not None and rig.host.error.message == "connection reset by peer"


# ---------------------------------------------------------------------------------------------- data


def test_data_beyond_the_advertised_window_is_trimmed_or_dropped():
    r = Rig(rcv_buf=10_000)
    r.connect()
    frames, _ = r.feed(r.frame(r.segment(20_000, b"z" * 500)))  # entirely beyond: dropped, ACKed
    (a,) = r.ours(frames)
    assert a.ack == PISN + 1 and r.host.tcp.counters["out_of_window"] == 1
    r.host.on_frame(r.frame(r.segment(0, STREAM[:12_000])), 1.0)  # straddles the right edge: trimmed
    assert r.host.tcp.rcv_buffered <= 10_000
    r.got += b"".join(r.host.read())
    assert bytes(r.got) == STREAM[: len(r.got)] and len(r.got) <= 10_000


def test_data_with_an_ack_for_what_we_never_sent_is_dropped(rig):
    frames, _ = rig.feed(rig.frame(rig.segment(0, b"EVIL", ack=ISN + 1 + 5000)))
    assert rig.got == b"" and rig.host.tcp.counters["ack_unsent"] == 1
    assert rig.ours(frames)[0].ack == PISN + 1


# ---------------------------------------------------------------------------------------------- malformed


@pytest.mark.parametrize("offset_byte", [0x00, 0x40, 0xF0, 0x60])
def test_bad_tcp_data_offsets_are_malformed(rig, offset_byte):
    """Data offset 0 and 16 bytes (below 20), 60 bytes and 24 bytes (beyond a 20+4-byte segment)."""
    raw = patched_tcp(rig.segment(0, b"abc" if offset_byte != 0x60 else b""), offset_byte=offset_byte)
    frames, evs = rig.feed(rig.frame(raw))
    assert frames == [] and rig.got == b""
    (m,) = kinds(evs, Malformed)
    assert "data offset" in m.reason and rig.host.counters["malformed"] == 1


@pytest.mark.parametrize(("options", "valid"), [
    (b"\x02\x04\x05\xb4", True),  # MSS 1460 (control: fine, ignored after the handshake)
    (b"\x01\x01\x02\x04", False),  # NOP NOP, then an MSS cut after 2 of its 4 bytes
    (b"\x01\x01\x08\x0a\x00\x00\x00\x01", False),  # timestamps, 6 of 10 bytes
    (b"\x05\x0c" + bytes(10), False),  # SACK of length 12 (not 2 + 8k)
    (b"\x03\x00\x01\x01", False),  # length 0
    (b"\x01\x01\x01\x02", False),  # NOPs then a kind with no length byte
    (b"\xfe\x30\x00\x00", False),  # an unknown kind claiming 48 bytes
    (b"\x02\x03\x05\x00", False),  # MSS of length 3
])
def test_truncated_or_bad_options_are_malformed(rig, options, valid):
    raw = patched_tcp(rig.segment(0, b"data"), options=options)
    frames, evs = rig.feed(rig.frame(raw))
    if valid:
        assert rig.got == b"data"
        return
    assert rig.got == b"" and frames == []
    assert kinds(evs, Malformed) and rig.host.counters["malformed"] == 1


def test_ip_fragments_are_dropped_and_counted(rig):
    tcp = build_tcp(rig.segment(0, STREAM[:64]), SRV, LIP)
    for ff in (0x2000, 0x2000 | 0, 0x0005, 0x2003):  # MF; MF; offset 40; MF + offset 24
        rig.feed(build_ethernet(MAC, GW_MAC, ETH_P_IP, ipv4_with(tcp, flags_frag=ff)))
    assert rig.got == b"" and rig.host.counters["ip_fragments"] == 4 and rig.host.counters["malformed"] == 4


def test_ip_options_are_skipped(rig):
    tcp = build_tcp(rig.segment(0, b"with options"), SRV, LIP)
    opts = b"\x07\x07\x04" + bytes(4) + b"\x01"  # record route (one slot), NOP: 8 bytes
    rig.feed(build_ethernet(MAC, GW_MAC, ETH_P_IP, ipv4_with(tcp, options=opts)))
    assert rig.got == b"with options" and rig.host.counters["malformed"] == 0


def test_frames_shorter_than_their_headers(rig):
    good = rig.frame(rig.segment(0, b"0123456789"))
    cases = [
        b"",
        good[:10],  # not even an Ethernet header
        good[:14],  # Ethernet only
        good[:14 + 19],  # a cut IPv4 header
        good[:14 + 20 + 10],  # the IPv4 header says more than there is
        build_ethernet(MAC, GW_MAC, ETH_P_IP, ipv4_with(b"\x1f" * 10)),  # a 10-byte "TCP segment"
        build_ethernet(MAC, GW_MAC, ETH_P_IP, ipv4_with(b"", total=10)),  # total length below the header
        build_ethernet(MAC, GW_MAC, ETH_P_ARP, b"\x00\x01\x08\x00"),  # a cut ARP packet
        build_ethernet(MAC, GW_MAC, ETH_P_IP, ipv4_with(b"x" * 20, version=6)),
        MAC + GW_MAC + struct.pack("!H", ETH_P_8021Q) + b"\x00",  # a cut VLAN tag
    ]
    for f in cases:
        frames, _ = rig.feed(f)
        assert frames == []
    assert rig.host.counters["malformed"] == len(cases) and rig.host.counters["not_ours"] == 0
    assert rig.got == b"" and rig.host.tcp.state == "ESTABLISHED"
    rig.feed(good)
    assert rig.got == b"0123456789"


def test_ethernet_padding_and_trailing_junk_are_not_data(rig):
    f = rig.frame(rig.segment(0, b"ab"))
    rig.feed(f + b"JUNKJUNK" * 10)
    assert rig.got == b"ab"


def test_giant_frames(rig):
    """A 65 KB GSO super-frame (what veth delivers) is data; a 1 MB frame of noise is just dropped."""
    big = STREAM[:65_535 - 20 - 32]  # IPv4 total length 65535 with a 32-byte TCP header
    rig.feed(rig.frame(rig.segment(0, big)))
    assert bytes(rig.got) == big
    noise = random.Random(1).randbytes(1 << 20)
    for head in (b"", MAC + GW_MAC + b"\x08\x00", MAC + GW_MAC + b"\x08\x00\x45\x00\xff\xff"):
        frames, _ = rig.feed(head + noise)
        assert frames == []
    assert bytes(rig.got) == big and rig.host.tcp.state == "ESTABLISHED"


def test_bad_checksums_are_counted_per_layer(rig):
    f = bytearray(rig.frame(rig.segment(0, b"payload")))
    ip_bad = bytearray(f)
    ip_bad[14 + 10] ^= 0xFF
    tcp_bad = bytearray(f)
    tcp_bad[-1] ^= 0x01
    _, evs = rig.feed(bytes(ip_bad))
    _, evs2 = rig.feed(bytes(tcp_bad))
    assert [e.layer for e in kinds(evs + evs2, ChecksumDrop)] == ["ipv4", "tcp"]
    assert rig.host.counters["csum_drop_ipv4"] == 1 and rig.host.counters["csum_drop_tcp"] == 1
    assert rig.got == b""
    # the kernel's word (checksum offload) is taken for the TCP checksum
    rig.feed(bytes(tcp_bad), csum=CSUM_NOT_READY)
    assert rig.got == b"payloae" and rig.host.counters["csum_offloaded"] == 1


@pytest.mark.parametrize("csum, counter", [(CSUM_KERNEL_VALID, "csum_kernel_verified"),
                                            (CSUM_NOT_READY, "csum_offloaded")])
def test_checksums_the_kernel_vouched_for_get_no_second_pass(rig, monkeypatch, csum, counter):
    """TP_STATUS_CSUM_VALID (verified by the NIC or the kernel) and TP_STATUS_CSUMNOTREADY (offloaded, not
    filled in): the fast path sums nothing (no residue call), takes the checksums as they are, counts it."""
    import rawtui.stack.host as host_module

    def no_software_checksum(data: object) -> int:
        raise AssertionError("the software checksum ran on a frame the kernel vouched for")

    f = bytearray(rig.frame(rig.segment(0, b"abcd")))
    f[-1] ^= 0x01  # a wrong TCP checksum (the payload's last byte changed): the kernel's word is taken
    monkeypatch.setattr(host_module, "residue", no_software_checksum)
    rig.feed(bytes(f), csum=csum)
    assert rig.got == b"abce"
    c = rig.host.counters
    assert (c[counter], c["csum_drop_ipv4"], c["csum_drop_tcp"]) == (1, 0, 0)
    monkeypatch.undo()
    rig.feed(rig.frame(rig.segment(4, b"ef")))  # CSUM_UNKNOWN: verified here, and counted as neither
    assert rig.got == b"abceef" and c[counter] == 1


def test_fin_and_data_after_a_reset_go_nowhere(rig):
    rig.feed(rig.frame(rig.segment(0, b"abc")))
    rig.feed(rig.frame(rig.segment(3, flags=RST)))
    assert rig.host.tcp.state == "CLOSED"
    frames, _ = rig.feed(rig.frame(rig.segment(3, b"more", flags=ACK | PSH | FIN)))
    assert frames == [] and rig.got == b"abc" and rig.host.tcp.counters["closed_drops"] == 1


def test_random_frames_never_raise(rig):
    """A quick smoke run here; scripts/fuzz.py and test_fuzz_frames.py do this at scale."""
    rnd = random.Random(5)
    good = rig.frame(rig.segment(0, STREAM[:1400]))
    for _ in range(3000):
        f = bytearray(good if rnd.random() < 0.7 else rnd.randbytes(rnd.randrange(0, 200)))
        for _ in range(rnd.randrange(0, 4)):
            if f:
                f[rnd.randrange(len(f))] = rnd.randrange(256)
        if rnd.random() < 0.2:
            f = f[: rnd.randrange(len(f) + 1)]
        rig.feed(bytes(f), dt=0.0001)
    assert bytes(rig.got) == STREAM[: len(rig.got)]
