"""The ARP resolver, driven with scripted packets and a fake clock."""

from rawtui.events import ArpIgnored, ArpReply, ArpRequest
from rawtui.stack.arp import ArpResolver
from rawtui.wire.arp import OP_REPLY, OP_REQUEST, ArpPacket, parse_arp
from rawtui.wire.ethernet import BROADCAST, ETH_P_ARP, parse_ethernet

MAC = bytes.fromhex("020000000001")
GW_MAC = bytes.fromhex("020000000099")
IP = bytes([10, 77, 1, 2])
GW = bytes([10, 77, 1, 1])


def reply(sender_ip: bytes = GW, sender_mac: bytes = GW_MAC, target_ip: bytes = IP) -> ArpPacket:
    return ArpPacket(OP_REPLY, sender_mac, sender_ip, MAC, target_ip)


def test_request_is_a_broadcast_who_has():
    r = ArpResolver(MAC, IP, GW)
    r.start(0.0)
    (frame,) = r.take_frames()
    eth = parse_ethernet(frame)
    assert eth.dst == BROADCAST and eth.src == MAC and eth.ethertype == ETH_P_ARP
    pkt = parse_arp(eth.payload)
    assert pkt.op == OP_REQUEST and pkt.sender_ip == IP and pkt.target_ip == GW and pkt.sender_mac == MAC
    assert len(frame) == 60  # padded to the Ethernet minimum
    (ev,) = r.take_events()
    assert isinstance(ev, ArpRequest) and ev.attempt == 1 and ev.target_ip == "10.77.1.1"
    assert r.next_deadline == 1.0


def test_reply_resolves_with_rtt():
    r = ArpResolver(MAC, IP, GW)
    r.start(0.0)
    r.take_events()
    r.on_arp(reply(), 0.0025)
    assert r.mac == GW_MAC and r.done and r.next_deadline is None
    (ev,) = r.take_events()
    assert isinstance(ev, ArpReply) and ev.mac == "02:00:00:00:00:99" and abs(ev.rtt_ms - 2.5) < 1e-6


def test_retries_then_fails():
    r = ArpResolver(MAC, IP, GW, retries=3, interval=1.0)
    r.start(0.0)
    r.on_timer(0.5)  # early: nothing
    assert len(r.take_frames()) == 1
    r.on_timer(1.0)
    r.on_timer(2.0)
    assert len(r.take_frames()) == 2
    assert [e.attempt for e in r.take_events() if isinstance(e, ArpRequest)] == [1, 2, 3]
    r.on_timer(3.0)
    assert r.failed and r.mac is None and r.next_deadline is None
    assert r.take_frames() == []


def test_only_the_asked_ip_counts():
    r = ArpResolver(MAC, IP, GW)
    r.start(0.0)
    r.take_events()
    r.on_arp(reply(sender_ip=bytes([10, 77, 1, 7])), 0.1)
    assert r.mac is None
    (ev,) = r.take_events()
    assert isinstance(ev, ArpIgnored) and "did not ask" in ev.reason


def test_unsolicited_reply_ignored():
    r = ArpResolver(MAC, IP, GW)
    r.on_arp(reply(), 0.0)
    assert r.mac is None
    (ev,) = r.take_events()
    assert isinstance(ev, ArpIgnored) and ev.reason == "unsolicited reply"


def test_changed_mac_is_reported_not_followed():
    r = ArpResolver(MAC, IP, GW)
    r.start(0.0)
    r.on_arp(reply(), 0.001)
    r.take_events()
    r.on_arp(reply(sender_mac=bytes.fromhex("0200000000aa")), 5.0)
    assert r.mac == GW_MAC
    (ev,) = r.take_events()
    assert isinstance(ev, ArpIgnored) and "MAC changed" in ev.reason


def test_requests_are_ignored():
    r = ArpResolver(MAC, IP, GW)
    r.start(0.0)
    r.take_events()
    r.on_arp(ArpPacket(OP_REQUEST, GW_MAC, GW, b"\0" * 6, IP), 0.1)
    assert r.mac is None and r.take_events() == []
