"""Neighbor discovery (rawtui.stack.ndp), driven with scripted messages and a fake clock: solicitations to
the solicited-node group, retries and the failure, advertisements judged by their flags (RFC 4861 7.2.5),
the REACHABLE / STALE / DELAY / PROBE ageing, and answering solicitations for our own address."""

from __future__ import annotations

import pytest

from rawtui.events import NdpAdvert, NdpAnswered, NdpIgnored, NdpSolicit, NeighborChange, NeighborState
from rawtui.stack.ndp import NdpResolver
from rawtui.wire.ethernet import ETH_P_IPV6, parse_ethernet
from rawtui.wire.icmpv6 import (
    Echo,
    NdpOptions,
    NeighborAdvert,
    NeighborSolicit,
    parse_icmpv6,
)
from rawtui.wire.ipv6 import (
    ALL_NODES,
    NH_ICMPV6,
    UNSPECIFIED,
    ip6_bytes,
    link_local_from_mac,
    parse_ipv6,
    solicited_node,
)

MAC = bytes.fromhex("020000000001")
GW_MAC = bytes.fromhex("020000000099")
OTHER_MAC = bytes.fromhex("0200000000aa")
IP = ip6_bytes("2001:db8:1::2")
OWN_LL = link_local_from_mac(MAC)
GW = ip6_bytes("fe80::1")
S = NeighborState


def resolver(**kw: float) -> NdpResolver:
    return NdpResolver(MAC, IP, GW, own_ips=(OWN_LL,), **kw)  # type: ignore[arg-type]


def na(*, solicited: bool = True, override: bool = True, mac: bytes | None = GW_MAC, target: bytes = GW,
       router: bool = True) -> NeighborAdvert:
    return NeighborAdvert(target, router, solicited, override, NdpOptions(target_lladdr=mac))


def decode(frame: bytes) -> tuple[bytes, bytes, bytes, int, object]:
    """(Ethernet dst, IPv6 src, IPv6 dst, hop limit, the ICMPv6 message) of a frame the resolver sent."""
    eth = parse_ethernet(frame)
    assert eth.ethertype == ETH_P_IPV6 and eth.src == MAC
    ip, data = parse_ipv6(eth.payload)
    assert ip.proto == NH_ICMPV6
    return eth.dst, ip.src, ip.dst, ip.hop_limit, parse_icmpv6(data, ip.src, ip.dst, verify=True)


def states(events: list[object]) -> list[tuple[str, str]]:
    return [(e.old, e.new) for e in events if isinstance(e, NeighborChange)]


def resolved(now: float = 0.0) -> NdpResolver:
    r = resolver()
    r.start(now)
    r.on_ndp(na(), GW, IP, 255, GW_MAC, now)
    r.take_frames()
    r.take_events()
    return r


def test_solicitation_goes_to_the_solicited_node_group() -> None:
    r = resolver()
    r.start(0.0)
    (frame,) = r.take_frames()
    dst_mac, src, dst, hop, msg = decode(frame)
    assert dst == solicited_node(GW) and dst_mac == bytes.fromhex("3333ff000001")
    assert src == IP and hop == 255
    assert msg == NeighborSolicit(GW, NdpOptions(source_lladdr=MAC))
    (ev,) = r.take_events()
    assert isinstance(ev, NdpSolicit) and (ev.target_ip, ev.attempt, ev.unicast) == ("fe80::1", 1, False)
    assert r.next_deadline == 1.0 and r.state is S.INCOMPLETE and not r.done


def test_three_solicitations_one_second_apart_then_the_error() -> None:
    r = resolver()
    r.start(0.0)
    r.on_timer(0.999)  # early: nothing
    assert len(r.take_frames()) == 1
    r.on_timer(1.0)
    r.on_timer(2.0)
    assert len(r.take_frames()) == 2
    assert r.next_deadline == 3.0 and not r.failed
    r.on_timer(3.0)
    assert r.failed and r.done and r.mac is None and r.next_deadline is None and r.take_frames() == []
    evs = r.take_events()
    assert [e.attempt for e in evs if isinstance(e, NdpSolicit)] == [1, 2, 3]
    assert states(evs) == [("incomplete", "failed")]
    assert r.failure_message("eth0") == "no answer from fe80::1 on eth0 to 3 neighbor solicitations"
    r.on_ndp(na(), GW, IP, 255, GW_MAC, 3.5)  # too late: stays failed
    assert r.mac is None


def test_solicited_advertisement_makes_it_reachable() -> None:
    r = resolver()
    r.start(0.0)
    r.take_events()
    r.on_ndp(na(), GW, IP, 255, GW_MAC, 0.0025)
    assert r.mac == GW_MAC and r.done and r.state is S.REACHABLE
    adv, change = r.take_events()
    assert isinstance(adv, NdpAdvert) and adv.mac == "02:00:00:00:00:99" and abs(adv.rtt_ms - 2.5) < 1e-6
    assert adv.solicited and adv.override and adv.router
    assert isinstance(change, NeighborChange) and (change.old, change.new) == ("incomplete", "reachable")
    assert r.next_deadline == pytest.approx(30.0025)  # REACHABLE_TIME


def test_unsolicited_advertisement_while_resolving_is_stale() -> None:
    r = resolver()
    r.start(0.0)
    r.on_ndp(na(solicited=False), GW, ALL_NODES, 255, GW_MAC, 0.1)
    assert r.mac == GW_MAC and r.state is S.STALE and r.next_deadline is None


def test_advertisements_that_do_not_count() -> None:
    r = resolver()
    r.on_ndp(na(), GW, IP, 255, GW_MAC, 0.0)  # nothing asked yet: no entry to fill
    r.start(0.0)
    r.on_ndp(na(target=ip6_bytes("fe80::7")), GW, IP, 255, GW_MAC, 0.1)
    r.on_ndp(na(target=IP), GW, IP, 255, GW_MAC, 0.1)
    r.on_ndp(na(mac=None), GW, IP, 255, GW_MAC, 0.1)
    r.on_ndp(na(), GW, ALL_NODES, 255, GW_MAC, 0.1)  # solicited, yet multicast
    r.on_ndp(na(), GW, IP, 64, GW_MAC, 0.1)  # routed here: not from this link
    r.on_ndp(Echo(1, 2), GW, IP, 255, GW_MAC, 0.1)  # not neighbor discovery: not ours
    assert r.mac is None and r.state is S.INCOMPLETE
    reasons = [e.reason for e in r.take_events() if isinstance(e, NdpIgnored)]
    assert reasons == ["unsolicited advertisement", "advertisement for an address we did not ask",
                       "another node claims our address", "no target link-layer address option",
                       "solicited advertisement to a multicast address", "hop limit 64, not 255: not sent on this link"]


def test_a_different_mac_without_override_only_makes_it_stale() -> None:
    r = resolved()
    r.on_ndp(na(mac=OTHER_MAC, override=False), GW, IP, 255, OTHER_MAC, 1.0)
    assert r.mac == GW_MAC and r.state is S.STALE
    evs = r.take_events()
    assert any(isinstance(e, NdpIgnored) and "override flag is clear" in e.reason for e in evs)
    assert states(evs) == [("reachable", "stale")]


def test_a_different_mac_with_override_is_followed() -> None:
    r = resolved()
    r.on_ndp(na(mac=OTHER_MAC, solicited=False, override=True), GW, ALL_NODES, 255, OTHER_MAC, 1.0)
    assert r.mac == OTHER_MAC and r.state is S.STALE
    r.on_ndp(na(mac=OTHER_MAC, solicited=True, override=False), GW, IP, 255, OTHER_MAC, 1.5)
    assert r.state is S.REACHABLE  # same MAC, solicited: confirmed


def test_ageing_reachable_stale_delay_probe() -> None:
    r = resolved()
    r.on_timer(30.0)
    assert r.state is S.STALE and r.next_deadline is None
    r.used(31.0)
    assert r.state is S.DELAY and r.next_deadline == 36.0
    r.on_timer(36.0)
    assert r.state is S.PROBE
    (probe,) = r.take_frames()
    dst_mac, _, dst, _, msg = decode(probe)
    assert (dst_mac, dst) == (GW_MAC, GW) and isinstance(msg, NeighborSolicit)  # unicast, to the cached MAC
    assert [e.unicast for e in r.take_events() if isinstance(e, NdpSolicit)] == [True]
    r.on_ndp(na(router=False), GW, IP, 255, GW_MAC, 36.2)
    assert r.state is S.REACHABLE and r.next_deadline == pytest.approx(66.2)


def test_connection_progress_confirms_reachability() -> None:
    r = resolved()
    r.on_timer(30.0)
    r.used(31.0)
    r.confirm(32.0)  # the connection made progress during DELAY: no probe needed
    assert r.state is S.REACHABLE and r.next_deadline == 62.0
    r.on_timer(36.0)
    assert r.take_frames() == []
    r.confirm(50.0)
    assert r.next_deadline == 80.0


def test_unanswered_probes_resolve_again_then_fail() -> None:
    r = resolved()
    r.on_timer(30.0)
    r.used(30.0)
    for t in (35.0, 36.0, 37.0, 38.0, 39.0, 40.0):
        r.on_timer(t)
    frames = [decode(f) for f in r.take_frames()]
    assert [f[0] for f in frames] == [GW_MAC] * 3 + [bytes.fromhex("3333ff000001")] * 3  # 3 probes, 3 multicast
    assert r.mac == GW_MAC and not r.failed  # the old MAC is used while resolving again
    r.on_timer(41.0)
    assert r.failed
    assert [s[1] for s in states(r.take_events())] == ["stale", "delay", "probe", "incomplete", "failed"]


def test_answers_a_solicitation_for_our_address() -> None:
    r = resolved()
    router_ll = ip6_bytes("fe80::1")
    ns = NeighborSolicit(IP, NdpOptions(source_lladdr=GW_MAC))
    r.on_ndp(ns, router_ll, solicited_node(IP), 255, GW_MAC, 5.0)
    (frame,) = r.take_frames()
    dst_mac, src, dst, hop, msg = decode(frame)
    assert (dst_mac, src, dst, hop) == (GW_MAC, IP, router_ll, 255)
    assert msg == NeighborAdvert(IP, router=False, solicited=True, override=True, options=NdpOptions(target_lladdr=MAC))
    (ev,) = r.take_events()
    assert isinstance(ev, NdpAnswered) and (ev.asker_ip, ev.target_ip) == ("fe80::1", "2001:db8:1::2")
    # the link-local address too, and without a source link-layer option: back to the frame's source MAC
    r.on_ndp(NeighborSolicit(OWN_LL), ip6_bytes("fe80::9"), OWN_LL, 255, OTHER_MAC, 6.0)
    dst_mac, src, dst, _, msg = decode(r.take_frames()[0])
    assert (dst_mac, src, dst) == (OTHER_MAC, OWN_LL, ip6_bytes("fe80::9"))


def test_duplicate_address_detection_is_answered_to_all_nodes() -> None:
    r = resolved()
    r.on_ndp(NeighborSolicit(IP), UNSPECIFIED, solicited_node(IP), 255, OTHER_MAC, 1.0)
    dst_mac, _, dst, _, msg = decode(r.take_frames()[0])
    assert (dst_mac, dst) == (bytes.fromhex("333300000001"), ALL_NODES)
    assert isinstance(msg, NeighborAdvert) and not msg.solicited and msg.override
    r.on_ndp(NeighborSolicit(IP, NdpOptions(source_lladdr=OTHER_MAC)), UNSPECIFIED, solicited_node(IP), 255,
             OTHER_MAC, 1.0)  # invalid: duplicate address detection carries no source link-layer address
    assert r.take_frames() == []


def test_solicitations_for_others_are_not_answered() -> None:
    r = resolved()
    r.on_ndp(NeighborSolicit(ip6_bytes("2001:db8:1::3")), GW, solicited_node(IP), 255, GW_MAC, 1.0)
    assert r.take_frames() == [] and r.take_events() == []


def test_the_next_hops_own_solicitation_resolves_it() -> None:
    r = resolver()
    r.start(0.0)
    r.take_events()
    r.take_frames()
    r.on_ndp(NeighborSolicit(IP, NdpOptions(source_lladdr=GW_MAC)), GW, solicited_node(IP), 255, GW_MAC, 0.3)
    assert r.mac == GW_MAC and r.state is S.STALE and r.done and r.next_deadline is None
    (answer,) = r.take_frames()
    assert decode(answer)[0] == GW_MAC
    assert states(r.take_events()) == [("incomplete", "stale")]
    r.used(0.4)  # the SYN leaves through the stale entry
    r.confirm(0.41)  # its SYN-ACK came back
    assert r.state is S.REACHABLE
