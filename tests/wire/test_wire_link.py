"""Link-layer headers of captures (rawtui.wire.link): every link type read, arbitrary bytes never raise
anything but the documented refusal, and the offsets agree with dpkt's SLL, SLL2, loopback and Ethernet
(802.1Q / QinQ) parsers."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rawtui.wire.errors import WireError
from rawtui.wire.link import (
    ETH_P_8021AD,
    ETH_P_8021Q,
    ETH_P_ARP,
    ETH_P_IP,
    ETH_P_IPV6,
    LINKTYPE_NAMES,
    PACKET_OUTGOING,
    Layer3,
    NetProto,
    UnsupportedLinkType,
    decapsulate,
    linktype_name,
)

dpkt = pytest.importorskip("dpkt")
loopback = pytest.importorskip("dpkt.loopback")
sll = pytest.importorskip("dpkt.sll")
sll2 = pytest.importorskip("dpkt.sll2")

IPV4 = bytes([0x45]) + bytes(19)
IPV6 = bytes([0x60, 0, 0, 0, 0, 0, 59, 64]) + bytes(32)  # no next header

MAC_A, MAC_B = bytes.fromhex("020000000001"), bytes.fromhex("0200000000fe")
ethertypes = st.sampled_from([ETH_P_IP, ETH_P_ARP, ETH_P_IPV6, 0x1234, 0x0842])
tci = st.integers(0, 0xFFFF)
# what dpkt reads too: untagged, 802.1Q, and QinQ as 802.1ad specifies it (S-tag outside, C-tag inside)
tags = st.one_of(st.just([]), st.tuples(st.just(ETH_P_8021Q), tci).map(lambda t: [t]),
                 st.tuples(tci, tci).map(lambda t: [(ETH_P_8021AD, t[0]), (ETH_P_8021Q, t[1])]))
payloads = st.binary(max_size=64)
ARP = bytes.fromhex("0001080006040001") + MAC_A + bytes(4) + bytes(6) + bytes(4)
VALID = {ETH_P_IP: IPV4, ETH_P_IPV6: IPV6, ETH_P_ARP: ARP}


def ethernet(ethertype: int, vlans: list[tuple[int, int]], payload: bytes) -> bytes:
    return MAC_B + MAC_A + b"".join(struct.pack("!HH", t, tci) for t, tci in vlans) + \
        struct.pack("!H", ethertype) + payload


def test_ethernet_with_tags() -> None:
    l3 = decapsulate(1, ethernet(ETH_P_IP, [(ETH_P_8021AD, 0x2064), (ETH_P_8021Q, 42)], IPV4))
    assert l3 == Layer3(NetProto.IPV4, 22, ETH_P_IP, MAC_A, MAC_B, (0x064, 42), None)
    assert decapsulate(1, ethernet(ETH_P_ARP, [], b"")) == Layer3(NetProto.ARP, 14, ETH_P_ARP, MAC_A, MAC_B)
    assert decapsulate(1, MAC_B + MAC_A + b"\x81\x00\x00") is None  # a tag cut short
    assert decapsulate(1, b"\0" * 13) is None


def test_cooked_captures() -> None:
    v1 = struct.pack("!HHH8sH", PACKET_OUTGOING, 1, 6, MAC_A + b"\0\0", ETH_P_IPV6) + IPV6
    assert decapsulate(113, v1) == Layer3(NetProto.IPV6, 16, ETH_P_IPV6, MAC_A, None, (), PACKET_OUTGOING)
    v2 = struct.pack("!HHIHBB8s", ETH_P_IP, 0, 3, 1, 0, 6, MAC_A + b"\0\0") + IPV4
    assert decapsulate(276, v2) == Layer3(NetProto.IPV4, 20, ETH_P_IP, MAC_A, None, (), 0)
    tunnel = struct.pack("!HHIHBB8s", ETH_P_IP, 0, 3, 65534, 0, 0, b"\0" * 8) + IPV4  # a tun device: no address
    assert decapsulate(276, tunnel) == Layer3(NetProto.IPV4, 20, ETH_P_IP, None, None, (), 0)
    assert decapsulate(113, v1[:15]) is None and decapsulate(276, v2[:19]) is None


def test_raw_and_loopback() -> None:
    assert decapsulate(101, IPV4) == Layer3(NetProto.IPV4, 0)
    assert decapsulate(101, IPV6) == Layer3(NetProto.IPV6, 0)
    assert decapsulate(228, IPV6) == Layer3(NetProto.OTHER, 0)  # 228 is IPv4 only
    assert decapsulate(229, IPV6) == Layer3(NetProto.IPV6, 0)
    assert decapsulate(101, b"") is None
    for family, proto in [(2, NetProto.IPV4), (10, NetProto.IPV6), (24, NetProto.IPV6), (28, NetProto.IPV6),
                          (30, NetProto.IPV6), (17, NetProto.OTHER)]:
        for order in "<>":  # NULL: the writer's byte order
            assert decapsulate(0, struct.pack(order + "I", family) + IPV4) == Layer3(proto, 4, family)
        assert decapsulate(108, struct.pack("!I", family) + IPV4) == Layer3(proto, 4, family)
    assert decapsulate(0, b"\2\0\0") is None


def test_other_link_types_are_refused_by_name() -> None:
    with pytest.raises(UnsupportedLinkType, match=r"^link type IEEE 802.11 \(105\) is not one rawtui reads"):
        decapsulate(105, b"\0" * 64)
    assert linktype_name(276) == "Linux cooked v2 (SLL2) (276)" and linktype_name(4242) == "4242"


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 300), st.binary(max_size=80))
def test_arbitrary_bytes_never_raise_anything_else(linktype: int, data: bytes) -> None:
    try:
        l3 = decapsulate(linktype, data)
    except UnsupportedLinkType:
        assert linktype not in LINKTYPE_NAMES
        return
    except WireError as exc:  # pragma: no cover - a failure
        raise AssertionError(f"unexpected {exc!r}") from exc
    assert linktype in LINKTYPE_NAMES
    if l3 is not None:
        assert 0 <= l3.offset <= len(data)


# -- against dpkt -------------------------------------------------------------------------------------------

@settings(max_examples=200, deadline=None)
@given(ethertypes, tags, payloads)
def test_ethernet_against_dpkt(ethertype: int, vlans: list[tuple[int, int]], payload: bytes) -> None:
    frame = ethernet(ethertype, vlans, VALID.get(ethertype, b"") + payload)
    l3 = decapsulate(1, frame)
    assert l3 is not None
    ref = dpkt.ethernet.Ethernet(frame)  # dpkt gives up on tags before a payload it cannot parse: a valid one
    inner = ref.vlan_tags[-1].type if getattr(ref, "vlan_tags", None) else ref.type
    assert inner == ethertype == l3.ethertype
    assert (ref.src, ref.dst) == (l3.src_mac, l3.dst_mac)
    assert [t.id for t in getattr(ref, "vlan_tags", [])] == list(l3.vlans)
    assert l3.offset == 14 + 4 * len(vlans)


@settings(max_examples=200, deadline=None)
@given(ethertypes, st.integers(0, 4), st.binary(min_size=8, max_size=8), payloads)
def test_sll_against_dpkt(ethertype: int, pkttype: int, addr: bytes, payload: bytes) -> None:
    frame = struct.pack("!HHH8sH", pkttype, 1, 6, addr, ethertype) + payload
    l3 = decapsulate(113, frame)
    ref = sll.SLL(frame)
    assert l3 is not None and (ref.type, ref.ethtype, ref.hdr[:6]) == (pkttype, l3.ethertype, l3.src_mac)
    assert l3.offset == len(ref) - len(ref.data) == 16 and l3.pkttype == pkttype


@settings(max_examples=200, deadline=None)
@given(ethertypes, st.integers(0, 4), st.integers(0, 2**32 - 1), st.binary(min_size=8, max_size=8), payloads)
def test_sll2_against_dpkt(ethertype: int, pkttype: int, ifindex: int, addr: bytes, payload: bytes) -> None:
    frame = struct.pack("!HHIHBB8s", ethertype, 0, ifindex, 1, pkttype, 6, addr) + payload
    l3 = decapsulate(276, frame)
    ref = sll2.SLL2(frame)
    assert l3 is not None and (ref.ethtype, ref.type, ref.hdr[:6]) == (l3.ethertype, l3.pkttype, l3.src_mac)
    assert l3.offset == len(ref) - len(ref.data) == 20


@settings(max_examples=100, deadline=None)
@given(st.sampled_from([2, 24, 28, 30]), st.sampled_from(["<", ">"]))
def test_loopback_against_dpkt(family: int, order: str) -> None:
    frame = struct.pack(order + "I", family) + (IPV4 if family == 2 else IPV6)
    l3 = decapsulate(0, frame)
    ref = loopback.Loopback(frame)  # dpkt guesses the byte order the same way
    assert l3 is not None and ref.family == l3.ethertype == family
    assert l3.proto is (NetProto.IPV4 if family == 2 else NetProto.IPV6)
