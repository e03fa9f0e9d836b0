"""rawtui.link.afpacket: the BPF program (checked by a small cBPF interpreter) and a real veth pair."""

from __future__ import annotations

import collections
import errno
import json
import socket
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import child_env, sh

from rawtui.errors import LinkError, PrivilegeError
from rawtui.link import afpacket
from rawtui.link.afpacket import PacketSocket, build_filter
from rawtui.stack.events import Medium

REPO = Path(__file__).resolve().parents[2]

SERVER_IP, CLIENT_IP = "10.9.0.1", "10.9.0.2"
SERVER_MAC, CLIENT_MAC = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")


# --- frames built by hand --------------------------------------------------------------------------


def ether(payload: bytes, ethertype: int, dst: bytes = CLIENT_MAC, src: bytes = SERVER_MAC) -> bytes:
    return dst + src + struct.pack("!H", ethertype) + payload


def vlan(payload: bytes, ethertype: int, vid: int = 5) -> bytes:
    return ether(struct.pack("!HH", vid, ethertype) + payload, 0x8100)


def ipv4(
    payload: bytes,
    src: str = SERVER_IP,
    dst: str = CLIENT_IP,
    proto: int = 6,
    options: bytes = b"",
    frag: int = 0x4000,
) -> bytes:
    ihl = 5 + len(options) // 4
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x40 | ihl, 0, 4 * ihl + len(payload), 1, frag, 64, proto, 0,
        socket.inet_aton(src), socket.inet_aton(dst),
    )  # fmt: skip
    return header + options + payload


def tcp(sport: int = 8080, dport: int = 40000, flags: int = 0x12, data: bytes = b"") -> bytes:
    return struct.pack("!HHIIBBHHH", sport, dport, 1000, 2000, 5 << 4, flags, 65535, 0, 0) + data


def arp(sender_ip: str = SERVER_IP, target_ip: str = CLIENT_IP) -> bytes:
    body = struct.pack(
        "!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1,
        SERVER_MAC, socket.inet_aton(sender_ip), b"\0" * 6, socket.inet_aton(target_ip),
    )  # fmt: skip
    return body + b"\0" * 18  # padded to the Ethernet minimum


def tcp_frame(**kwargs: Any) -> bytes:
    ports = {key: kwargs.pop(key) for key in ("sport", "dport") if key in kwargs}
    return ether(ipv4(tcp(**ports), **kwargs), 0x0800)


# --- a classic BPF interpreter, enough for the instructions build_filter uses ------------------------


def run_bpf(program: list[tuple[int, int, int, int]], packet: bytes, protocol: int = 0) -> int:
    """``protocol``: the packet's skb->protocol, for the ancillary load (ldh [SKF_AD_PROTOCOL])."""
    a = x = pc = 0
    while True:
        code, jt, jf, k = program[pc]
        pc += 1
        if code == 0x28 and k == 0xFFFFF000:  # ldh #proto
            a = protocol
        elif code in (0x20, 0x28, 0x30, 0x48, 0x50):  # ld [k] (w, h, b), ldh [x + k], ldb [x + k]
            size = {0x20: 4, 0x28: 2, 0x30: 1, 0x48: 2, 0x50: 1}[code]
            at = k + (x if code in (0x48, 0x50) else 0)
            if at + size > len(packet):
                return 0  # the kernel rejects a load past the end
            a = int.from_bytes(packet[at : at + size], "big")
        elif code == 0xB1:  # ldxb 4*([k]&0xf)
            if k >= len(packet):
                return 0
            x = 4 * (packet[k] & 0xF)
        elif code == 0x15:  # jeq #k
            pc += jt if a == k else jf
        elif code == 0x45:  # jset #k
            pc += jt if a & k else jf
        elif code == 0x06:  # ret #k
            return k
        else:
            raise AssertionError(f"unexpected BPF opcode {code:#x}")


FILTERED = build_filter(SERVER_IP, 8080, 40000)


@pytest.mark.parametrize(
    ("frame", "accepted"),
    [
        (ether(arp(), 0x0806), True),
        (tcp_frame(), True),
        (tcp_frame(options=b"\x01\x01\x01\x00"), True),  # IHL 6: the ports move by 4 bytes
        (tcp_frame(options=b"\x01" * 40), True),  # IHL 15
        (tcp_frame(src="10.9.0.3"), False),
        (tcp_frame(sport=8081), False),
        (tcp_frame(dport=40001), False),
        (tcp_frame(sport=40000, dport=8080), False),
        (ether(ipv4(b"\0" * 8, proto=17), 0x0800), False),  # UDP
        (ether(b"\x60" + b"\0" * 60, 0x86DD), False),  # IPv6
        (tcp_frame(frag=0x2000), True),  # first fragment: has the TCP header
        (tcp_frame(frag=0x0010), False),  # later fragment: no TCP header
        (vlan(ipv4(tcp()), 0x0800), True),
        (vlan(ipv4(tcp(), options=b"\x01\x01\x01\x00"), 0x0800), True),
        (vlan(ipv4(tcp(dport=1)), 0x0800), False),
        (vlan(arp(), 0x0806), True),
        (ether(ipv4(tcp())[:21], 0x0800), False),  # cut inside the TCP header
        (b"\xff" * 13, False),
    ],
)
def test_filter_accepts_exactly_arp_and_the_connection(frame: bytes, accepted: bool) -> None:
    assert (run_bpf(FILTERED, frame) != 0) is accepted


def test_filter_without_ports_accepts_any_tcp_from_the_host() -> None:
    program = build_filter(SERVER_IP)
    assert run_bpf(program, tcp_frame(sport=1, dport=2))
    assert run_bpf(program, tcp_frame(frag=0x0010))
    assert not run_bpf(program, tcp_frame(src="10.9.0.3"))
    only_local = build_filter(SERVER_IP, local_port=40000)
    assert run_bpf(only_local, tcp_frame(sport=1))
    assert not run_bpf(only_local, tcp_frame(dport=1))


def icmp_frame(icmp_type: int = 3, src: str = "10.9.0.254", frag: int = 0x4000, options: bytes = b"") -> bytes:
    quoted = ipv4(tcp(sport=40000, dport=8080), src=CLIENT_IP, dst=SERVER_IP)[:28]
    return ether(ipv4(struct.pack("!BBHHH", icmp_type, 4, 0, 0, 1400) + quoted, src=src, proto=1, frag=frag,
                      options=options), 0x0800)


def test_ipv4_filter_passes_icmp_unreachable_from_any_router() -> None:
    """Fragmentation needed comes from a router on the path, not from the server."""
    assert run_bpf(FILTERED, icmp_frame())
    assert run_bpf(FILTERED, icmp_frame(options=b"\x01" * 8))  # IHL 7: the type moves
    assert run_bpf(FILTERED, ether(struct.pack("!HH", 5, 0x0800) + icmp_frame()[14:], 0x8100))
    assert not run_bpf(FILTERED, icmp_frame(icmp_type=8))  # an echo request: not the stack's business
    assert not run_bpf(FILTERED, icmp_frame(frag=0x0010))  # a later fragment: no ICMP header


SERVER_IP6, CLIENT_IP6, ROUTER_LL = "2001:db8:2::2", "2001:db8:1::2", "fe80::1"


def ipv6(payload: bytes, nh: int = 6, src: str = SERVER_IP6, dst: str = CLIENT_IP6) -> bytes:
    return struct.pack("!IHBB16s16s", 6 << 28, len(payload), nh, 64,
                       socket.inet_pton(socket.AF_INET6, src), socket.inet_pton(socket.AF_INET6, dst)) + payload


def tcp6_frame(**kwargs: Any) -> bytes:
    ports = {key: kwargs.pop(key) for key in ("sport", "dport") if key in kwargs}
    return ether(ipv6(tcp(**ports), **kwargs), 0x86DD)


def icmp6(icmp_type: int) -> bytes:
    return struct.pack("!BBH", icmp_type, 0, 0) + b"\0" * 20


FILTERED6 = build_filter(SERVER_IP6, 8080, 40000)
HOP_BY_HOP = struct.pack("!BB6s", 6, 0, b"\x01\x04" + b"\0" * 4)  # next: TCP, PadN


@pytest.mark.parametrize(
    ("frame", "accepted"),
    [
        (tcp6_frame(), True),
        (tcp6_frame(src="2001:db8:2::3"), False),
        (tcp6_frame(src="2001:db8:3::2"), False),  # the first word differs
        (tcp6_frame(src="2001:db8:2::2:0"), False),  # the last word differs
        (tcp6_frame(sport=8081), False),
        (tcp6_frame(dport=40001), False),
        (ether(ipv6(HOP_BY_HOP + tcp(), nh=0), 0x86DD), True),  # a chain: the stack walks it
        (ether(ipv6(HOP_BY_HOP + tcp(), nh=0, src="2001:db8:2::9"), 0x86DD), False),
        (ether(ipv6(b"\0" * 8, nh=17), 0x86DD), False),  # UDP
        (ether(ipv6(icmp6(135), nh=58, src=ROUTER_LL, dst="ff02::1:ff00:2"), 0x86DD), True),  # NS
        (ether(ipv6(icmp6(136), nh=58, src=ROUTER_LL), 0x86DD), True),  # NA
        (ether(ipv6(icmp6(2), nh=58, src="2001:db8:1::1"), 0x86DD), True),  # Packet Too Big
        (vlan(ipv6(tcp()), 0x86DD), True),
        (vlan(ipv6(tcp(dport=1)), 0x86DD), False),
        (vlan(ipv6(icmp6(136), nh=58, src=ROUTER_LL), 0x86DD), True),
        (ether(ipv6(tcp())[:43], 0x86DD), False),  # cut inside the TCP ports
        (ether(arp(), 0x0806), False),  # IPv6 has no ARP
        (tcp_frame(), False),  # IPv4
        (b"\xff" * 13, False),
    ],
)
def test_ipv6_filter_accepts_the_connection_and_neighbor_discovery(frame: bytes, accepted: bool) -> None:
    assert (run_bpf(FILTERED6, frame) != 0) is accepted


def test_ipv6_filter_without_ports_and_with_a_zone() -> None:
    program = build_filter(SERVER_IP6)
    assert run_bpf(program, tcp6_frame(sport=1, dport=2))
    assert not run_bpf(program, tcp6_frame(src="2001:db8:2::3"))
    link_local = build_filter("fe80::2%eth0", 80, 40000)  # a zone says the interface, not the address
    assert run_bpf(link_local, tcp6_frame(src="fe80::2", sport=80))
    assert not run_bpf(link_local, tcp6_frame(src="fe80::3", sport=80))


@pytest.mark.parametrize("program", [FILTERED, FILTERED6, build_filter(SERVER_IP), build_filter(SERVER_IP6)])
def test_filter_jumps_stay_inside_every_program(program: list[tuple[int, int, int, int]]) -> None:
    for index, (code, jt, jf, _k) in enumerate(program):
        assert 0 <= jt < 256 and 0 <= jf < 256
        if code != 0x06:
            assert index + 1 + max(jt, jf) < len(program)
    assert program[-1] == (0x06, 0, 0, 0)


IP_FILTERED = build_filter(SERVER_IP, 8080, 40000, medium=Medium.IP)


@pytest.mark.parametrize(
    ("packet", "protocol", "accepted"),
    [
        (ipv4(tcp()), 0x0800, True),
        (ipv4(tcp(), options=b"\x01\x01\x01\x00"), 0x0800, True),
        (ipv4(tcp(sport=8081)), 0x0800, False),
        (ipv4(tcp(dport=40001)), 0x0800, False),
        (ipv4(tcp(), src="10.9.0.3"), 0x0800, False),
        (ipv4(tcp(), frag=0x0010), 0x0800, False),
        (ipv4(b"\0" * 8, proto=17), 0x0800, False),
        (ipv4(tcp()), 0x86DD, False),  # what the kernel says the packet is, not its first bytes
        (ipv4(tcp())[:21], 0x0800, False),
    ],
)
def test_the_layer3_filter_reads_the_ip_header_at_offset_0(packet: bytes, protocol: int, accepted: bool) -> None:
    assert (run_bpf(IP_FILTERED, packet, protocol) != 0) is accepted
    assert not [insn for insn in IP_FILTERED if insn[3] in (0x0806, 0x8100)]  # no ARP, no VLAN tags there


IP_FILTERED6 = build_filter(SERVER_IP6, 8080, 40000, medium=Medium.IP)


@pytest.mark.parametrize(
    ("packet", "protocol", "accepted"),
    [
        (ipv6(tcp()), 0x86DD, True),
        (ipv6(tcp(sport=8081)), 0x86DD, False),
        (ipv6(tcp(), src="2001:db8:2::3"), 0x86DD, False),
        (ipv6(icmp6(2), nh=58, src="2001:db8:1::1"), 0x86DD, True),  # Packet Too Big
        (ipv6(tcp()), 0x0800, False),
    ],
)
def test_the_layer3_filter_speaks_ipv6_too(packet: bytes, protocol: int, accepted: bool) -> None:
    assert (run_bpf(IP_FILTERED6, packet, protocol) != 0) is accepted


def test_filter_jumps_stay_inside_the_program() -> None:
    for index, (code, jt, jf, _k) in enumerate(FILTERED):
        assert 0 <= jt < 256 and 0 <= jf < 256
        if code != 0x06:
            assert index + 1 + max(jt, jf) < len(FILTERED)
    assert FILTERED[-1] == (0x06, 0, 0, 0)


def test_unknown_interface_is_a_link_error() -> None:
    with pytest.raises(LinkError, match="unknown interface 'rtlink-nope0'"):
        PacketSocket("rtlink-nope0")


def test_missing_privilege_is_a_privilege_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(afpacket.socket, "if_nametoindex", lambda _name: 7)
    monkeypatch.setattr(afpacket.socket, "socket", refuse)
    with pytest.raises(PrivilegeError, match="CAP_NET_RAW") as caught:
        PacketSocket("eth9")
    assert caught.value.exit_code == 3


def test_the_rings_setsockopt_sets_what_it_is_given_and_says_why_it_refused() -> None:
    """The ring's setsockopt goes through libc (the GIL released while the kernel sets the ring up): the
    option it sets is the socket's, and a refusal is CPython's OSError with the errno."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        afpacket._setsockopt_unlocked(s, socket.SOL_SOCKET, socket.SO_RCVBUF, struct.pack("i", 65536))
        assert s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) == 2 * 65536  # the kernel doubles it
        with pytest.raises(OSError) as refused:
            afpacket._setsockopt_unlocked(s, afpacket.SOL_PACKET, afpacket.PACKET_RX_RING, b"\0" * 16)
        assert refused.value.errno == errno.ENOPROTOOPT and refused.value.strerror


@pytest.mark.needs_root
def test_a_socket_opened_ahead_is_closed_when_nothing_takes_it() -> None:
    """The headless download opens its socket (and ring) in a thread beside the imports (cli.py): a socket
    no connection takes is closed by its owner's close(); one a PacketSocket took, by the PacketSocket."""
    spare = afpacket.Unbound()
    assert spare.ring is not None  # the ring is set up before any interface is known
    spare.close()
    assert spare.sock.fileno() == -1 and spare.ring.closed
    taken = afpacket.Unbound()
    with pytest.raises(LinkError, match="unknown interface"):  # taken, then refused: closed at once
        PacketSocket("rtlink-nope0", unbound=taken)
    assert taken.sock.fileno() == -1


# --- lab: a veth pair va <-> vb inside a throwaway namespace -----------------------------------------


def run_in(ns: str, code: str, *args: str) -> Any:
    """Run Python code inside namespace ns; return the JSON it prints last."""
    done = subprocess.run(
        ["ip", "netns", "exec", ns, sys.executable, "-c", code, *args],
        check=False, capture_output=True, text=True, timeout=60, cwd=REPO,
        env=child_env(),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture
def veth_ns(netns: Callable[[], str]) -> str:
    ns = netns()
    sh(ns, "ip", "link", "add", "va", "type", "veth", "peer", "name", "vb")
    sh(ns, "ip", "link", "set", "va", "up")
    sh(ns, "ip", "link", "set", "vb", "up")
    return ns


EXCHANGE = """
import json, select, sys, time
from rawtui.link.afpacket import PacketSocket, CSUM_UNKNOWN, CSUM_NOT_READY, CSUM_KERNEL_VALID

ring = sys.argv[1] == "ring"
early, frames = bytes.fromhex(sys.argv[2]), [bytes.fromhex(f) for f in sys.argv[3:]]
rx, tx = PacketSocket("vb", ring=ring), PacketSocket("va", ring=ring)
out = {"rx_mac": rx.mac.hex(":"), "rx_index": rx.ifindex, "tx_mac": tx.mac.hex(":"), "ring": rx.uses_ring}
tx.send(early)
time.sleep(0.2)
rx.set_filter("10.9.0.1", 8080, 40000)
out["empty_after_filter"] = rx.recv() is None
out["sent"] = [tx.send(f) for f in frames]
got, deadline = [], time.monotonic() + 2
while len(got) < len(frames) and time.monotonic() < deadline:
    select.select([rx], [], [], 0.1)
    got += rx.recv_many()
time.sleep(0.2)
got += rx.recv_many()
out["got"] = [frame.hex() for frame, _ in got]
out["csum"] = [c in (CSUM_UNKNOWN, CSUM_NOT_READY, CSUM_KERNEL_VALID) for _, c in got]
out["tx_reads_back_own"] = tx.recv() is not None
out["rx_empty_at_end"] = rx.recv() is None
rx.close(); tx.close()
print(json.dumps(out))
"""


@pytest.mark.lab
@pytest.mark.parametrize("mode", ["ring", "recvmsg"])
def test_filtered_socket_receives_exactly_the_matching_frames(veth_ns: str, mode: str) -> None:
    links = {link["ifname"]: link for link in json.loads(sh(veth_ns, "ip", "-j", "link", "show"))}
    vb_mac = bytes.fromhex(links["vb"]["address"].replace(":", ""))
    matching = [
        ether(arp(), 0x0806, dst=vb_mac),
        ether(ipv4(tcp(data=b"hello")), 0x0800, dst=vb_mac),
        ether(ipv4(tcp(), options=b"\x01\x01\x01\x00"), 0x0800, dst=vb_mac),
    ]
    others = [
        ether(ipv4(tcp(sport=8081)), 0x0800, dst=vb_mac),
        ether(ipv4(tcp(dport=40001)), 0x0800, dst=vb_mac),
        ether(ipv4(tcp(), src="10.9.0.3"), 0x0800, dst=vb_mac),
        ether(ipv4(b"\0" * 8, proto=17), 0x0800, dst=vb_mac),
    ]
    early = ether(ipv4(tcp(sport=1)), 0x0800, dst=vb_mac)  # queued before the filter: drained
    frames = [others[0], matching[0], others[1], matching[1], others[2], matching[2], others[3]]
    out = run_in(veth_ns, EXCHANGE, mode, early.hex(), *(frame.hex() for frame in frames))

    assert out["ring"] is (mode == "ring")
    assert out["rx_mac"] == links["vb"]["address"]
    assert out["tx_mac"] == links["va"]["address"]
    assert out["rx_index"] == links["vb"]["ifindex"]
    assert out["empty_after_filter"] is True
    assert all(out["sent"])
    assert out["got"] == [frame.hex() for frame in matching]
    assert all(out["csum"])
    assert out["tx_reads_back_own"] is False
    assert out["rx_empty_at_end"] is True


SHED = """
import json, os, select, sys, time
from rawtui.link.afpacket import PacketSocket

template, total, at = bytes.fromhex(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
rx = PacketSocket("vb")
rx.set_filter("10.9.0.1", 8080, 40000)
out = {"ring_before": rx.uses_ring}
sender = os.fork()
if sender == 0:  # another process: it keeps sending while the receiver reads the ring out
    tx = PacketSocket("va", ring=False)
    for i in range(total):
        while not tx.send(template[:-4] + i.to_bytes(4, "big")):
            time.sleep(0.0001)
        if i % 16 == 0:
            time.sleep(0.0001)
    os._exit(0)
got, deadline = [], time.monotonic() + 20
while len(got) < total and time.monotonic() < deadline:
    if len(got) >= at and rx.uses_ring:
        time.sleep(0.005)  # frames wait in the ring, and more come while it is read out
        select.select([rx], [], [], 10)  # (at least one, however busy the machine)
        rx.shed_ring()
        out["backlog"] = rx.backlog
    if not rx.backlog:
        select.select([rx], [], [], 0.1)
    got += [int.from_bytes(frame[-4:], "big") for frame, _ in rx.recv_many()]
os.waitpid(sender, 0)
time.sleep(0.2)
got += [int.from_bytes(frame[-4:], "big") for frame, _ in rx.recv_many()]
out["got"] = got
out["ring_after"] = rx.uses_ring
out["drops"] = rx.kernel_stats()[1]
rx.close()
out["closed"] = rx.fileno() == -1
print(json.dumps(out))
"""


@pytest.mark.lab
def test_shedding_the_ring_mid_stream_loses_and_repeats_no_frame(veth_ns: str) -> None:
    """A download's end hands reception to a ring-less twin while the ring's socket is released beside
    (session.py, before the FIN): a stream of numbered frames crossing the handover arrives whole, once
    each and in order."""
    vb_mac = bytes.fromhex(json.loads(sh(veth_ns, "ip", "-j", "link", "show", "vb"))[0]["address"].replace(":", ""))
    template = ether(ipv4(tcp(data=b"\0\0\0\0")), 0x0800, dst=vb_mac)
    total = 3000
    out = run_in(veth_ns, SHED, template.hex(), str(total), "700")
    assert out["ring_before"] is True and out["ring_after"] is False
    assert out["backlog"] > 0  # the ring held frames when it was shed
    assert out["got"] == list(range(total))
    assert out["drops"] == 0 and out["closed"] is True


def test_the_twins_first_frames_that_repeat_the_rings_last_are_left_out() -> None:
    """What both sockets received while the twin was bound and the ring not yet read out: the twin's
    first frame matches some frame the ring gave, and the next ones follow that order; the first frame
    that does not ends the overlap for good."""
    sock = object.__new__(PacketSocket)
    sock._echo, sock._echo_started = collections.deque([b"a", b"b", b"c", b"d"]), False
    assert sock._echoed(sock._echo, memoryview(b"c")) is True  # the twin was bound after "b"
    assert sock._echoed(sock._echo, memoryview(b"d")) is True
    assert sock._echoed(sock._echo, memoryview(b"e")) is False and sock._echo is None  # new from here
    sock._echo, sock._echo_started = collections.deque([b"a", b"b"]), False
    assert sock._echoed(sock._echo, memoryview(b"x")) is False and sock._echo is None  # no overlap at all
    sock._echo, sock._echo_started = collections.deque([b"a", b"b", b"c"]), False
    assert sock._echoed(sock._echo, memoryview(b"a")) is True
    assert sock._echoed(sock._echo, memoryview(b"c")) is False  # "b" never came twice: the overlap is over
    assert sock._echo is None


@pytest.mark.lab
def test_ipv6_filter_in_the_kernel_receives_exactly_the_matching_frames(veth_ns: str) -> None:
    """The kernel's verifier takes the IPv6 program, and it filters as the interpreter says."""
    links = {link["ifname"]: link for link in json.loads(sh(veth_ns, "ip", "-j", "link", "show"))}
    vb_mac = bytes.fromhex(links["vb"]["address"].replace(":", ""))
    matching = [
        ether(ipv6(tcp(data=b"hello")), 0x86DD, dst=vb_mac),
        ether(ipv6(icmp6(136), nh=58, src=ROUTER_LL), 0x86DD, dst=vb_mac),
        ether(ipv6(HOP_BY_HOP + tcp(), nh=0), 0x86DD, dst=vb_mac),
    ]
    others = [
        ether(ipv6(tcp(sport=8081)), 0x86DD, dst=vb_mac),
        ether(ipv6(tcp(), src="2001:db8:2::3"), 0x86DD, dst=vb_mac),
        ether(arp(), 0x0806, dst=vb_mac),
        ether(ipv4(tcp()), 0x0800, dst=vb_mac),
    ]
    frames = [others[0], matching[0], others[1], matching[1], others[2], matching[2], others[3]]
    code = EXCHANGE.replace('"10.9.0.1"', f'"{SERVER_IP6}"')
    out = run_in(veth_ns, code, "ring", others[0].hex(), *(frame.hex() for frame in frames))
    assert out["empty_after_filter"] is True
    assert out["got"] == [frame.hex() for frame in matching]


@pytest.mark.lab
def test_kernel_stripped_vlan_tag_arrives_untagged(veth_ns: str) -> None:
    links = {link["ifname"]: link for link in json.loads(sh(veth_ns, "ip", "-j", "link", "show"))}
    vb_mac = bytes.fromhex(links["vb"]["address"].replace(":", ""))
    payload = ipv4(tcp(data=b"tagged"))
    tagged = ether(struct.pack("!HH", 5, 0x0800) + payload, 0x8100, dst=vb_mac)
    out = run_in(veth_ns, EXCHANGE, "ring", tagged.hex(), tagged.hex())
    assert out["got"] == [ether(payload, 0x0800, dst=vb_mac).hex()]


KERNEL_TCP = """
import json, select, socket, subprocess, sys, time
from rawtui.link.afpacket import PacketSocket, CSUM_NOT_READY

client_ns = sys.argv[1]
server = socket.create_server(("10.9.0.1", 8080))
with PacketSocket("vb") as rx:
    rx.set_filter("10.9.0.2", 40000, 8080)
    code = ("import socket; s = socket.create_connection(('10.9.0.1', 8080), timeout=5, "
            "source_address=('10.9.0.2', 40000)); s.sendall(b'x' * 100000); s.close()")
    subprocess.run(["ip", "netns", "exec", client_ns, sys.executable, "-c", code], check=True, timeout=20)
    conn, _ = server.accept()
    while conn.recv(65536):
        pass
    time.sleep(0.2)
    got = rx.recv_many(10000)
print(json.dumps({"frames": len(got), "not_ready": sum(c == CSUM_NOT_READY for _, c in got),
                  "largest": max(len(f) for f, _ in got)}))
"""


@pytest.mark.lab
def test_kernel_tcp_frames_with_checksum_offload_are_flagged(netns: Callable[[], str]) -> None:
    server_ns, client_ns = netns(), netns()
    sh(server_ns, "ip", "link", "add", "vb", "type", "veth", "peer", "name", "va", "netns", client_ns)
    sh(server_ns, "ip", "addr", "add", "10.9.0.1/24", "dev", "vb")
    sh(client_ns, "ip", "addr", "add", "10.9.0.2/24", "dev", "va")
    for ns, name in ((server_ns, "vb"), (client_ns, "va")):
        sh(ns, "ip", "link", "set", name, "up")
    out = run_in(server_ns, KERNEL_TCP, client_ns)
    assert out["frames"] >= 3
    assert out["not_ready"] >= 1  # veth's tx checksum offload: the kernel says so in PACKET_AUXDATA


BIG_FRAMES = """
import json, select, sys, time
from rawtui.link.afpacket import PacketSocket, RING_FRAMES

frames = [bytes.fromhex(f) for f in sys.argv[1:]]
rx, tx = PacketSocket("vb"), PacketSocket("va")
rx.set_filter("10.9.0.1", 8080, 40000)
for f in frames:
    assert tx.send(f)
time.sleep(0.2)
got = [bytes(f).hex() for f, _ in rx.recv_many(100)]
rx.kernel_stats()
# overflow the ring: more frames than slots, none read; the kernel drops the rest and says so
small = frames[0]
for _ in range(RING_FRAMES + 300):
    tx.send(small)
time.sleep(0.3)
packets, drops = rx.kernel_stats()
n = 0
while rx.recv() is not None:
    n += 1
print(json.dumps({"ring": rx.uses_ring, "got": got, "packets": packets, "drops": drops, "read": n,
                  "slots": RING_FRAMES}))
"""


@pytest.mark.lab
def test_ring_frames_bigger_than_a_slot_arrive_whole_and_in_order_and_drops_are_counted(veth_ns: str) -> None:
    for name in ("va", "vb"):
        sh(veth_ns, "ip", "link", "set", name, "mtu", "9000")
    links = {link["ifname"]: link for link in json.loads(sh(veth_ns, "ip", "-j", "link", "show"))}
    vb_mac = bytes.fromhex(links["vb"]["address"].replace(":", ""))
    sizes = [100, 8000, 1400, 3000, 5]  # payload bytes: 2nd and 4th do not fit a 2 KB slot
    frames = [ether(ipv4(tcp(data=bytes([i]) * n)), 0x0800, dst=vb_mac) for i, n in enumerate(sizes)]
    out = run_in(veth_ns, BIG_FRAMES, *(f.hex() for f in frames))
    assert out["ring"] is True
    assert out["got"] == [f.hex() for f in frames]
    assert out["read"] == out["slots"]  # a full ring: every slot held a frame
    assert out["drops"] >= 300 - 5 and out["packets"] >= out["slots"] + out["drops"] - 5


TUN_EXCHANGE = """
import fcntl, json, os, select, struct, subprocess, sys, time
from rawtui.link.afpacket import PacketSocket, Unbound

fd = os.open("/dev/net/tun", os.O_RDWR)
fcntl.ioctl(fd, 0x400454CA, struct.pack("16sH", b"tq0", 0x0001 | 0x1000))  # TUNSETIFF: IFF_TUN | IFF_NO_PI
for cmd in (["ip", "addr", "add", "10.9.0.2", "peer", "10.9.0.1/32", "dev", "tq0"], ["ip", "link", "set", "tq0", "up"]):
    subprocess.run(cmd, check=True)
frames = [bytes.fromhex(f) for f in sys.argv[2:]]
sock = PacketSocket("tq0", unbound=Unbound() if sys.argv[1] == "early" else None)
out = {"medium": sock.medium.value, "ring": sock.uses_ring, "replaced": sock.replaced is not None}
sock.set_filter("10.9.0.1", 8080, 40000)
for f in frames:
    os.write(fd, f)  # as if they came out of the tunnel
got, deadline = [], time.monotonic() + 2
while time.monotonic() < deadline and len(got) < 2:
    select.select([sock], [], [], 0.1)
    got += sock.recv_many()
out["got"] = [frame.hex() for frame, _ in got]
reply = frames[0][:12] + frames[0][16:20] + frames[0][12:16] + frames[0][20:]
out["sent"] = sock.send(reply)
seen, deadline = [], time.monotonic() + 2
while reply.hex() not in seen and time.monotonic() < deadline:
    if select.select([fd], [], [], 0.1)[0]:
        seen.append(os.read(fd, 65536).hex())
out["tunnel_got_it"] = reply.hex() in seen
sock.close()
print(json.dumps(out))
"""


@pytest.mark.lab
@pytest.mark.parametrize("early", ["early", "none"])
def test_a_tun_device_gets_a_layer3_socket(netns: Callable[[], str], early: str) -> None:
    """On a tun (ARPHRD_NONE): a SOCK_DGRAM socket with its ring, bare IP packets in and out, the filter at
    offset 0; a SOCK_RAW socket opened ahead is replaced."""
    ns = netns()
    matching = [ipv4(tcp(data=b"hello")), ipv4(tcp(), options=b"\x01\x01\x01\x00")]
    others = [ipv4(tcp(sport=8081)), ipv4(tcp(), src="10.9.0.3")]
    frames = [matching[0], others[0], others[1], matching[1]]
    out = run_in(ns, TUN_EXCHANGE, early, *(frame.hex() for frame in frames))
    assert (out["medium"], out["ring"], out["replaced"]) == ("ip", True, early == "early")
    assert out["got"] == [frame.hex() for frame in matching]
    assert out["sent"] and out["tunnel_got_it"]
