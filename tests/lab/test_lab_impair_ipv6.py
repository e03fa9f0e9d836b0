"""The impairment relay over IPv6, with the kernel as the client (curl -6 in the client namespace): every
knob acts on IPv6 TCP and the file still arrives byte-exact; the relay's counters and its router_action
reports say what it did; neighbor discovery stays with the router's kernel; a frame too large for the
next link is answered with ICMPv6 Packet Too Big (IPv4: fragmentation needed) and the sender's kernel
lowers its path MTU. Plus the pure parts (too_big_reply, the IPv6 frame surgery) without a lab.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from conftest import child_env, require_tool

from rawtui.lab.control import LabControl, Subscription
from rawtui.lab.impair import (
    Pipe,
    corrupt_frame,
    fix_l4_checksum,
    segment_tcp,
    start_relay,
    too_big_reply,
)
from rawtui.lab.server import make_file, sha256_file
from rawtui.lab.topology import Lab
from rawtui.wire import (
    build_ethernet,
    build_ipv4,
    build_ipv6,
    build_tcp,
    mac_bytes,
    parse_icmp,
    parse_icmpv6,
    parse_ipv4,
    parse_ipv6,
)
from rawtui.wire import tcp as wtcp
from rawtui.wire.checksum import pseudo_header_residue, residue
from rawtui.wire.icmpv6 import PacketTooBig, quoted_tcp6
from rawtui.wire.ipv6 import ip6_bytes, ip6_str, link_local_from_mac

lab_test = pytest.mark.lab
PORT = 8080
SIZE = 4 << 20


class Relay6(NamedTuple):
    lab: Lab
    ctl: LabControl
    control: str
    proc: subprocess.Popen[str]
    www: Path


@pytest.fixture
def relay6(fresh_lab6: Lab, tmp_path: Path) -> Iterator[Relay6]:
    """A dual-stack lab forwarding through the relay (seed 1), the lab server on :: serving a 4 MB file."""
    tmp = tempfile.mkdtemp(prefix="rtimp6")
    control = os.path.join(tmp, "c.sock")
    www = tmp_path / "www"
    www.mkdir()
    make_file(www / "f.bin", SIZE, seed=6)
    proc = start_relay(fresh_lab6, control, seed=1)
    server = _start_server(fresh_lab6, www)
    ctl = LabControl(control)
    try:
        yield Relay6(fresh_lab6, ctl, control, proc, www)
    finally:
        ctl.close()
        fresh_lab6.stop(server)
        fresh_lab6.stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)


def _start_server(lab: Lab, root: Path) -> subprocess.Popen[str]:
    server = lab.popen(lab.server_ns, [sys.executable, "-m", "rawtui.lab.server", "--root", str(root), "--bind", "::",
                                       "--port", str(PORT)], stdout=subprocess.PIPE, text=True, env=child_env())
    assert server.stdout is not None and server.stdout.readline().startswith("ready http://[::]:")
    return server


def _curl(lab: Lab, url: str, out: Path, *extra: str) -> None:
    res = lab.run(lab.client_ns, [require_tool("curl"), "-sS", "--max-time", "120", *extra, "-o", str(out), url],
                  capture_output=True, text=True, timeout=150)
    assert res.returncode == 0, res.stderr


def _url(lab: Lab, family: int = 6) -> str:
    host = f"[{lab.server_ip6}]" if family == 6 else lab.server_ip
    return f"http://{host}:{PORT}/f.bin"


def _read(lab: Lab, ns: str, path: str) -> str:
    return str(lab.run(ns, ["cat", path], capture_output=True, text=True).stdout.strip())


def _stats(ctl: LabControl) -> dict[str, dict[str, int]]:
    return dict(ctl.state()["stats"])


# ICMPv6 echo from this namespace: argv = address, interface (for a link-local one), count; prints the
# number of replies (the kernel fills in the ICMPv6 checksum of a raw ICMPv6 socket).
_PING6 = """
import os, socket, struct, sys
dst, ifname, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
s.settimeout(5.0)
ident, got = os.getpid() & 0xFFFF, 0
for i in range(n):
    s.sendto(struct.pack("!BBHHH", 128, 0, 0, ident, i) + b"rawtui", (dst, 0, 0, socket.if_nametoindex(ifname)))
    while True:
        try:
            data = s.recv(2048)
        except TimeoutError:
            break
        if data[0] == 129 and struct.unpack_from("!HH", data, 4) == (ident, i):
            got += 1
            break
print(got)
"""


def _ping6(lab: Lab, dst: str, n: int = 5) -> int:
    res = lab.run(lab.client_ns, [sys.executable, "-c", _PING6, dst, lab.client_if, str(n)], capture_output=True,
                  text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return int(res.stdout)


@lab_test
def test_relay_forwards_ipv6_and_leaves_neighbor_discovery_to_the_router(relay6: Relay6, tmp_path: Path) -> None:
    """No knobs: curl -6 through the relay is byte-exact, the kernel's IPv6 forwarding is off while the relay
    runs (so the frames crossed through it: it counted them) and back on after. Traffic for the router
    itself is not relayed: with the client's neighbor cache flushed (so it solicits the router's MAC again,
    to its solicited-node multicast group), echoes to the router's global and link-local addresses are
    answered by the router's kernel and the relay's counters do not move."""
    lab = relay6.lab
    assert _read(lab, lab.router_ns, "/proc/sys/net/ipv6/conf/all/forwarding") == "0"
    assert _read(lab, lab.router_ns, "/proc/sys/net/ipv4/ip_forward") == "0"
    out = tmp_path / "got"
    _curl(lab, _url(lab), out, "-6")
    assert sha256_file(out) == sha256_file(relay6.www / "f.bin")
    st = _stats(relay6.ctl)
    assert st["down"]["frames_out"] >= SIZE // 1440 and st["up"]["frames_out"] > 0
    assert st["down"]["send_errors"] == st["up"]["send_errors"] == 0
    assert st["down"]["ttl_expired"] == st["down"]["too_big"] == 0
    router_ll = ip6_str(link_local_from_mac(mac_bytes(lab.mac(lab.router_ns, lab.router_cif))))
    before = _stats(relay6.ctl)
    res = lab.run(lab.client_ns, ["ip", "-6", "neigh", "flush", "dev", lab.client_if], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert _ping6(lab, lab.router_client_ip6) == 5
    assert _ping6(lab, router_ll) == 5
    assert _ping6(lab, lab.server_ip6) == 5  # through the relay: counted
    after = _stats(relay6.ctl)
    assert after["up"]["frames_in"] - before["up"]["frames_in"] == 5
    assert after["down"]["frames_in"] - before["down"]["frames_in"] == 5
    lab.stop(relay6.proc)
    assert _read(lab, lab.router_ns, "/proc/sys/net/ipv6/conf/all/forwarding") == "1"
    assert _read(lab, lab.router_ns, "/proc/sys/net/ipv4/ip_forward") == "1"


# knob -> (the relay counter that must count it, in the direction the knob is set)
KNOBS: dict[str, tuple[str, dict[str, Any], str]] = {
    "loss": ("down", {"loss": 2}, "lost"),
    "reorder": ("down", {"reorder": 2}, "reordered"),
    "duplicate": ("down", {"dup": 2}, "duplicated"),
    "corrupt": ("down", {"corrupt": 1}, "corrupted"),
    "ack-loss": ("up", {"loss": 5}, "lost"),
    "rate": ("down", {"rate_bps": 20_000_000, "queue": 30}, "queue_max"),
}
REPORTED = {"lost": "drop", "reordered": "reorder", "duplicated": "duplicate", "corrupted": "corrupt"}


@lab_test
@pytest.mark.parametrize("knob", list(KNOBS))
def test_knob_over_ipv6_with_curl(relay6: Relay6, tmp_path: Path, knob: str) -> None:
    """Each knob on IPv6 TCP: the file arrives byte-exact (TCP repaired what the relay did), the relay's
    counter for it is non-zero, and each frame it acted on was reported, with the sequence number relative
    to the ISN the pipe learned from the IPv6 SYN / SYN-ACK."""
    direction, knobs, counter = KNOBS[knob]
    sub = Subscription(relay6.control)
    try:
        relay6.ctl.set(direction, **knobs)
        out = tmp_path / "got"
        _curl(relay6.lab, _url(relay6.lab), out, "-6")
        assert sha256_file(out) == sha256_file(relay6.www / "f.bin")
        st = _stats(relay6.ctl)[direction]  # (state publishes every report its counters count first)
        assert st[counter] > 0, st
        assert st["send_errors"] == 0
        if counter not in REPORTED:
            return
        reports = []
        while (msg := sub.next(timeout=0.5)) is not None:
            if msg.get("type") == "router_action" and msg["action"] == REPORTED[counter]:
                reports.append(msg)
        assert len(reports) == st[counter]
        assert all(not r["absolute"] and r["direction"] == direction for r in reports)
        ports = {(r["sport"], r["dport"]) for r in reports}
        assert len(ports) == 1 and (PORT in ports.pop())
        if direction == "down":  # relative to the server's ISN: inside the response
            assert all(0 <= r["seq"] <= SIZE + 1000 for r in reports)
    finally:
        sub.close()


@lab_test
def test_delay_over_ipv6_is_applied_to_each_frame(relay6: Relay6, tmp_path: Path) -> None:
    """delay 20 ms down: every frame of the transfer went through the delay line (the relay reports the
    delay it chose for each: 20 ms exactly, no jitter), and the file is byte-exact."""
    relay6.ctl.set("down", delay_ms=20)
    relay6.ctl.request({"cmd": "delays", "dir": "down", "clear": True})
    out = tmp_path / "got"
    _curl(relay6.lab, _url(relay6.lab), out, "-6")
    assert sha256_file(out) == sha256_file(relay6.www / "f.bin")
    delays = relay6.ctl.request({"cmd": "delays", "dir": "down"})["delays"]["down"]
    assert len(delays) >= SIZE // 1440
    assert set(delays) == {20.0}


@lab_test
@pytest.mark.parametrize("family", [6, 4])
def test_too_big_lowers_the_servers_path_mtu(fresh_lab6: Lab, tmp_path: Path, family: int) -> None:
    """The client's link is 1280 bytes on the router's side (rc0, the relay's out port for the data), 1500
    everywhere else: the client advertises an MSS for 1500, the server's full-sized frames reach the relay,
    which answers each with ICMPv6 Packet Too Big (IPv4: fragmentation needed, DF being set) from the
    router's address; the server's kernel caches a path MTU of 1280 for the client and the transfer
    completes byte-exact."""
    lab = fresh_lab6
    res = lab.run(lab.router_ns, ["ip", "link", "set", "dev", lab.router_cif, "mtu", "1280"], capture_output=True,
                  text=True)
    assert res.returncode == 0, res.stderr
    www = tmp_path / "www"
    www.mkdir()
    make_file(www / "f.bin", 1 << 20, seed=5)
    control = os.path.join(tempfile.mkdtemp(prefix="rtimp6"), "c.sock")
    relay = start_relay(lab, control, seed=1)
    server = _start_server(lab, www)
    try:
        out = tmp_path / "got"
        _curl(lab, _url(lab, family), out, f"-{family}")
        assert sha256_file(out) == sha256_file(www / "f.bin")
        with LabControl(control) as ctl:
            down = ctl.state()["stats"]["down"]
        assert down["too_big"] > 0
        assert down["send_errors"] == 0  # nothing larger than 1280 was sent out of rc0
        client = lab.client_ip6 if family == 6 else lab.client_ip
        route = lab.run(lab.server_ns, ["ip", f"-{family}", "route", "get", client], capture_output=True, text=True)
        assert "mtu 1280" in route.stdout, route.stdout
    finally:
        lab.stop(server)
        lab.stop(relay)
        shutil.rmtree(os.path.dirname(control), ignore_errors=True)


@lab_test
def test_ipv6_super_frames_are_split_not_answered(fresh_lab6: Lab, tmp_path: Path) -> None:
    """Offloads left on: the server's IPv6 TSO super-frames reach the relay larger than any link's MTU;
    they never crossed a wire, so the relay splits them like GSO (and completes their checksums) instead
    of answering Packet Too Big, and a 1 % loss still acts on wire-sized frames."""
    lab = fresh_lab6
    www = tmp_path / "www"
    www.mkdir()
    make_file(www / "f.bin", SIZE, seed=3)
    control = os.path.join(tempfile.mkdtemp(prefix="rtimp6"), "c.sock")
    relay = start_relay(lab, control, seed=2, prepare=False)
    server = _start_server(lab, www)
    try:
        with LabControl(control) as ctl:
            ctl.set("down", loss=1)
            out = tmp_path / "got"
            _curl(lab, _url(lab), out, "-6")
            assert sha256_file(out) == sha256_file(www / "f.bin")
            down = ctl.state()["stats"]["down"]
        assert down["segmented"] > 0 and down["too_big"] == 0
        assert down["lost"] > 0 and down["send_errors"] == 0
        assert down["frames_in"] >= SIZE // 1440  # counted after splitting: wire-sized frames
    finally:
        lab.stop(server)
        lab.stop(relay)
        shutil.rmtree(os.path.dirname(control), ignore_errors=True)


# ---------------------------------------------------------------------------------------------------
# without a lab

C6, S6 = ip6_bytes("2001:db8:1::2"), ip6_bytes("2001:db8:2::2")
R6 = ip6_bytes("2001:db8:2::1")


def _tcp6(seq: int, payload: bytes = b"", flags: int = wtcp.ACK | wtcp.PSH, src: bytes = S6, dst: bytes = C6) -> bytearray:
    seg = wtcp.TcpSegment(8080, 40001, seq, 1, flags, 512, payload=payload)
    return bytearray(build_ethernet(b"\xaa" * 6, b"\xbb" * 6, 0x86DD, build_ipv6(src, dst, 6, build_tcp(seg, src, dst))))


def _l4_ok(frame: bytes | bytearray) -> bool:
    ip, l4 = parse_ipv6(bytes(frame[14:]))
    return (pseudo_header_residue(ip.src, ip.dst, ip.proto, len(l4)) + residue(l4)) % 0xFFFF == 0


def test_too_big_reply_is_a_packet_too_big_quoting_the_packet() -> None:
    big = _tcp6(1000, b"x" * 1440)
    reply = too_big_reply(big, 1280, b"\x01" * 6 + b"\x02" * 6, None, R6)
    assert reply is not None and reply[12:14] == b"\x86\xdd" and reply[:12] == b"\x01" * 6 + b"\x02" * 6
    ip, body = parse_ipv6(reply[14:])
    assert (ip.src, ip.dst, ip.proto) == (R6, S6, 58)
    assert ip.total_length == 1280  # as much of the packet as fits in the minimum MTU (RFC 4443 2.4 (c))
    msg = parse_icmpv6(body, ip.src, ip.dst)  # the checksum verified
    assert isinstance(msg, PacketTooBig) and msg.mtu == 1280
    q = quoted_tcp6(msg.invoking)
    assert q is not None and (q.src, q.dst, q.src_port, q.dst_port, q.seq) == (S6, C6, 8080, 40001, 1000)
    # no answer to an ICMPv6 error, nor without an address to answer from
    assert too_big_reply(reply, 1280, b"\0" * 12, None, R6) is None
    assert too_big_reply(big, 1280, b"\0" * 12, None, None) is None


def test_too_big_reply_ipv4_only_with_df() -> None:
    c4, s4, r4 = bytes([10, 77, 1, 2]), bytes([10, 77, 2, 2]), bytes([10, 77, 1, 1])
    seg = wtcp.TcpSegment(8080, 40001, 7, 1, wtcp.ACK, 512, payload=b"y" * 1460)
    for df in (True, False):
        frame = build_ethernet(b"\xaa" * 6, b"\xbb" * 6, 0x0800,
                               build_ipv4(s4, c4, 6, build_tcp(seg, s4, c4), dont_fragment=df))
        reply = too_big_reply(frame, 1280, b"\x01" * 12, r4, None)
        if not df:
            assert reply is None  # may be fragmented: the relay splits it instead
            continue
        assert reply is not None
        ip, body = parse_ipv4(reply[14:])
        assert (ip.src, ip.dst, ip.proto) == (r4, s4, 1)
        msg = parse_icmp(body)
        assert msg.is_fragmentation_needed and msg.next_hop_mtu == 1280
        assert len(msg.data) == 576 - 28  # RFC 1812: as much as fits in 576 bytes


def test_ipv6_frame_surgery() -> None:
    """The pipe's helpers on IPv6 frames: checksum completion, GSO-like splitting, one-bit corruption,
    ISN learning and the reports' relative sequence numbers."""
    f = _tcp6(5, b"z" * 3000)
    f[14 + 40 + 16 : 14 + 40 + 18] = b"\0\0"
    assert not _l4_ok(f) and fix_l4_checksum(f) and _l4_ok(f)
    parts = segment_tcp(f, 1500)
    assert [len(p) for p in parts] == [14 + 1500, 14 + 1500, 14 + 40 + 20 + 3000 - 2 * 1440]
    assert all(_l4_ok(p) for p in parts)
    assert [parse_ipv6(bytes(p[14:]))[0].payload_length for p in parts] == [1460, 1460, 20 + 120]
    g = bytearray(f)
    corrupt_frame(g, random.Random(1))
    assert sum((a ^ b).bit_count() for a, b in zip(f, g, strict=True)) == 1
    assert g[: 14 + 40 + 20] == f[: 14 + 40 + 20] and not _l4_ok(g)  # headers intact, the payload's bit
    pipe = Pipe("down", random.Random(1))
    pipe.set_knobs(pipe.knobs.updated({"loss": 100}))
    pipe.push(_tcp6(0xFFFF_FF00, flags=wtcp.SYN | wtcp.ACK), 0.0)
    pipe.push(_tcp6(0xFFFF_FF01 + 1000, b"d" * 100), 0.0)
    drops = [a for a in pipe.actions if a["length"] == 100]
    assert len(drops) == 1 and drops[0]["seq"] == 1001 and not drops[0]["absolute"]
