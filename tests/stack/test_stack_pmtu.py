"""Path MTU in the TCP machine (TcpConnection.on_path_mtu): an ICMPv6 Packet Too Big (RFC 8201) or an ICMP
fragmentation-needed (RFC 1191) lowers the MSS we send with, resends what was in flight in segments that
fit, and says so with a PathMtu event; errors not about our data, and MTUs that would not lower it, are
ignored; the family's minimum MTU is a floor. Also TCP over IPv6 end to end through the handshake."""

from __future__ import annotations

import pytest

from rawtui import events as ev
from rawtui.stack.tcp import TcpConnection
from rawtui.wire.ipv6 import ip6_bytes
from rawtui.wire.tcp import ACK, SYN, TcpOptions, TcpSegment, parse_tcp

L6, R6 = ip6_bytes("2001:db8::2"), ip6_bytes("2001:db8:2::2")
L4, R4 = bytes([10, 0, 2, 15]), bytes([10, 0, 2, 2])
LPORT, RPORT, ISN, PISN = 40000, 80, 1000, 5000


def connect(local: bytes, remote: bytes, *, mss: int, peer_mss: int = 1460, ts: bool = True) -> TcpConnection:
    conn = TcpConnection(local_ip=local, remote_ip=remote, local_port=LPORT, remote_port=RPORT, isn=ISN, mss=mss)
    conn.connect(0.0)
    (syn,) = [parse_tcp(b, local, remote) for b in conn.take_segments()]
    assert syn.flags == SYN and syn.options.mss == mss
    opts = TcpOptions(mss=peer_mss, wscale=7, sack_permitted=True, ts=(1, syn.options.ts[0]) if ts else None)
    conn.on_segment(TcpSegment(RPORT, LPORT, PISN, ISN + 1, SYN | ACK, 65535, opts), 0.01)
    conn.take_segments()
    conn.take_events()
    return conn


def sent(conn: TcpConnection, local: bytes, remote: bytes) -> list[TcpSegment]:
    return [parse_tcp(b, local, remote, verify=True) for b in conn.take_segments()]


def test_tcp_over_ipv6_handshake_and_checksums() -> None:
    conn = connect(L6, R6, mss=1440)
    assert conn.mss == 1440 and conn.smss == 1428 and conn.state.value == "ESTABLISHED"


def test_packet_too_big_lowers_the_mss_and_resends_what_was_in_flight() -> None:
    conn = connect(L6, R6, mss=1440)
    conn.send(bytes(4000), 0.02)
    first = sent(conn, L6, R6)
    assert [len(s.payload) for s in first] == [1428, 1428, 1144]
    assert conn.on_path_mtu(1280, 0.03, seq=first[1].seq)
    # 1280 - 40 (IPv6) - 20 (TCP) = 1220; the timestamp option takes 12 of it
    assert (conn.mss, conn.smss, conn.path_mtu, conn.cc.mss) == (1220, 1208, 1280, 1208)
    resent = sent(conn, L6, R6)
    assert resent[0].seq == first[0].seq and sum(len(s.payload) for s in resent) == 4000
    assert all(len(s.payload) <= 1208 for s in resent)
    events = conn.take_events()
    (pmtu,) = [e for e in events if isinstance(e, ev.PathMtu)]
    assert (pmtu.mtu, pmtu.reported, pmtu.mss, pmtu.old_mss, pmtu.source) == (
        1280, 1280, 1220, 1440, "icmpv6 packet too big")
    assert {e.reason for e in events if isinstance(e, ev.Retransmit)} == {"pmtu"}
    assert conn.counters["pmtu_lowered"] == 1 and conn.counters["retransmits"] == len(resent)


def test_ipv6_never_below_1280() -> None:
    conn = connect(L6, R6, mss=1440)
    assert conn.on_path_mtu(600, 0.03)
    assert conn.path_mtu == 1280 and conn.mss == 1220
    (pmtu,) = [e for e in conn.take_events() if isinstance(e, ev.PathMtu)]
    assert pmtu.reported == 600
    assert not conn.on_path_mtu(1000, 0.04)  # 1280 again: nothing to lower
    assert conn.counters["pmtu_ignored"] == 1


def test_fragmentation_needed_over_ipv4() -> None:
    conn = connect(L4, R4, mss=1460)
    assert conn.on_path_mtu(1400, 0.03)
    assert (conn.mss, conn.path_mtu) == (1360, 1400)
    (pmtu,) = [e for e in conn.take_events() if isinstance(e, ev.PathMtu)]
    assert pmtu.source == "icmp fragmentation needed"
    assert conn.on_path_mtu(10, 0.04) and conn.mss == 28  # RFC 791's 68 bytes, minus 40 of headers


def test_an_old_routers_zero_mtu_takes_the_plateau_below() -> None:
    conn = connect(L4, R4, mss=1460)
    assert conn.on_path_mtu(0, 0.03, quoted_length=1500)
    assert conn.path_mtu == 1492 and conn.mss == 1452
    assert conn.on_path_mtu(0, 0.04)  # no length quoted: the plateau below the current packet size
    assert conn.path_mtu == 1006


@pytest.mark.parametrize("mtu", [1500, 9000])
def test_larger_mtus_are_ignored(mtu: int) -> None:
    conn = connect(L4, R4, mss=1460)
    assert not conn.on_path_mtu(mtu, 0.03)
    assert conn.mss == 1460 and conn.take_events() == [] and conn.counters["pmtu_ignored"] == 1


def test_errors_about_data_we_did_not_send_are_ignored() -> None:
    conn = connect(L6, R6, mss=1440)
    conn.send(bytes(2000), 0.02)
    segs = sent(conn, L6, R6)
    beyond = (segs[-1].seq + len(segs[-1].payload) + 1) & 0xFFFFFFFF
    before = (ISN - 5) & 0xFFFFFFFF
    assert not conn.on_path_mtu(1280, 0.03, seq=beyond)
    assert not conn.on_path_mtu(1280, 0.03, seq=before)
    assert conn.mss == 1440 and conn.counters["pmtu_ignored"] == 2 and conn.take_segments() == []


def test_nothing_in_flight_lowers_without_resending() -> None:
    conn = connect(L6, R6, mss=1440)
    assert conn.on_path_mtu(1300, 0.03)
    assert conn.mss == 1240 and conn.take_segments() == []
    conn.send(bytes(3000), 0.04)
    assert max(len(s.payload) for s in sent(conn, L6, R6)) == 1228


def test_a_packet_too_big_for_the_syn_caps_the_negotiated_mss() -> None:
    conn = TcpConnection(local_ip=L6, remote_ip=R6, local_port=LPORT, remote_port=RPORT, isn=ISN, mss=1440)
    conn.connect(0.0)
    conn.take_segments()
    assert conn.on_path_mtu(1280, 0.001, seq=ISN)
    conn.on_segment(TcpSegment(RPORT, LPORT, PISN, ISN + 1, SYN | ACK, 65535, TcpOptions(mss=1440, wscale=7)),
                    0.01)
    assert conn.mss == 1220 and conn.smss == 1220


def test_after_the_connection_is_over_it_is_ignored() -> None:
    conn = connect(L6, R6, mss=1440)
    conn.abort(0.02)
    assert not conn.on_path_mtu(1280, 0.03)


def test_refused_names_an_ipv6_endpoint_with_brackets() -> None:
    conn = TcpConnection(local_ip=L6, remote_ip=R6, local_port=LPORT, remote_port=RPORT, isn=ISN)
    conn.connect(0.0)
    conn.on_segment(TcpSegment(RPORT, LPORT, 0, ISN + 1, 0x04 | ACK, 0), 0.01)
    assert conn.error is not None and "[2001:db8:2::2]:80" in conn.error.message
