"""Hostile frames injected during a real download in the lab: the download still completes byte-exact and
rawtui's events show what it did with them.

Two attackers, each a raw AF_PACKET socket (:class:`rawtui.link.afpacket.PacketSocket`) in its namespace:

- *off-link*, in the server namespace: IPv4 frames spoofing the server's connection, routed to the client by
  the router: RSTs with in-window but wrong sequence numbers (challenge ACKs, RFC 5961 3), RSTs and data far
  outside the window (dropped), in-window SYNs (challenge ACKs, 4), data with an ACK older than
  SND.UNA - MAX.SND.WND (challenge ACK, 5; never delivered).
- *on-link*, in the router namespace on the client's link (an ARP reply or a broken frame cannot cross a
  router, so this is where a LAN attacker sits): a bogus ARP reply claiming the gateway's IP with another
  MAC (``arp_ignored``, "MAC changed", not followed), TCP frames with a bad checksum, a bad data offset,
  cut options, an IPv4 fragment, and noise.

Each attacker learns the connection by sniffing the client's segments (client port, the ACK it sends = its
RCV.NXT, its SND.NXT), fires once enough data has flowed, and prints what it sent as JSON.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import child_env, lab_unavailable

from rawtui.lab.server import sha256_file

pytestmark = pytest.mark.lab


INJECTOR = r"""
import json, os, random, select, struct, sys, time
from rawtui.link.afpacket import PacketSocket
from rawtui.wire.arp import OP_REPLY, ArpPacket, build_arp
from rawtui.wire.checksum import checksum_from_residue, internet_checksum, pseudo_header_residue, residue
from rawtui.wire.ethernet import ETH_P_ARP, ETH_P_IP, build_ethernet, mac_bytes, parse_ethernet
from rawtui.wire.ipv4 import PROTO_TCP, build_ipv4, ip_bytes, parse_ipv4
from rawtui.wire.tcp import ACK, RST, SYN, TcpOptions, TcpSegment, build_tcp, parse_tcp

role, ifname, dst_mac, client_ip, server_ip, gw_ip, sport, after = sys.argv[1:9]
dst_mac, cip, sip, gw, sport, after = mac_bytes(dst_mac), ip_bytes(client_ip), ip_bytes(server_ip), \
    ip_bytes(gw_ip), int(sport), int(after)
sock = PacketSocket(ifname)
sock.set_filter(client_ip, None, sport)  # the client's segments to the server
print("ready", flush=True)
rnd = random.Random(1)
cport = rcv_nxt = snd_nxt = peer_isn = None
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    select.select([sock.fileno()], [], [], 0.5)
    got = sock.recv()
    if got is None:
        continue
    eth = parse_ethernet(got[0])
    if eth.ethertype != ETH_P_IP:
        continue  # the filter also keeps ARP
    ip, payload = parse_ipv4(eth.payload, verify=False)
    seg = parse_tcp(payload, ip.src, ip.dst, verify=False)
    if seg.flags & SYN:
        cport, wscale = seg.src_port, seg.options.wscale or 0
        continue
    if cport is None or not seg.flags & ACK:
        continue
    if peer_isn is None:
        peer_isn = (seg.ack - 1) & 0xFFFFFFFF  # the handshake's ACK
    rcv_nxt, snd_nxt = seg.ack, (seg.seq + len(seg.payload)) & 0xFFFFFFFF
    if (rcv_nxt - peer_isn) & 0xFFFFFFFF >= after:
        break
else:
    print(json.dumps({"error": "never saw enough of the connection"}), flush=True)
    sys.exit(1)
# The freshest of the client's segments already queued here (a busy machine can leave this reader far behind)
# gives the right edge it advertised. RCV.NXT only grows and the right edge never moves back (RFC 9293
# 3.8.6.2.1), so a sequence number just below that edge stays inside the window until the transfer has
# covered nearly the whole window, not merely a fixed distance ahead of a stale ACK.
edge = None
while True:
    got = sock.recv()
    if got is None:
        break
    eth = parse_ethernet(got[0])
    if eth.ethertype != ETH_P_IP:
        continue
    ip, payload = parse_ipv4(eth.payload, verify=False)
    seg = parse_tcp(payload, ip.src, ip.dst, verify=False)
    if seg.flags & ACK and seg.src_port == cport and not seg.flags & (SYN | RST):
        rcv_nxt, snd_nxt = seg.ack, (seg.seq + len(seg.payload)) & 0xFFFFFFFF
        edge = (rcv_nxt + (seg.window << wscale)) & 0xFFFFFFFF
if edge is None:
    edge = (rcv_nxt + (seg.window << wscale)) & 0xFFFFFFFF

M = 0xFFFFFFFF
sent = {}


def tcp(seq, ack, flags, payload=b"", window=502):
    return build_tcp(TcpSegment(sport, cport, seq & M, ack & M, flags, window, TcpOptions(), payload), sip, cip)


def emit(kind, l3_payload, ethertype=ETH_P_IP):
    frame = build_ethernet(dst_mac, sock.mac, ethertype, l3_payload)
    sock.send(frame)
    sent[kind] = sent.get(kind, 0) + 1


def ip(tcp_bytes, **kw):
    return build_ipv4(sip, cip, PROTO_TCP, tcp_bytes, **kw)


def fix_tcp_checksum(raw):
    raw = bytearray(raw)
    raw[16:18] = b"\0\0"
    r = pseudo_header_residue(sip, cip, PROTO_TCP, len(raw)) + residue(raw)
    raw[16:18] = checksum_from_residue(r).to_bytes(2, "big")
    return bytes(raw)


if role == "offlink":
    for i in range(30):  # in the window (just below its right edge), never exactly at RCV.NXT
        emit("rst_in_window", ip(tcp(edge - 100_000 - 1000 * i, snd_nxt, RST | ACK)))
    for i in range(10):
        emit("rst_far", ip(tcp(rcv_nxt + 0x70000000 + i, snd_nxt, RST)))
    for i in range(10):
        emit("data_far", ip(tcp(rcv_nxt + 0x40000000 + 1000 * i, snd_nxt, ACK, b"EVIL" * 100)))
    for i in range(5):
        emit("syn_in_window", ip(tcp(rcv_nxt + 3_000_000 + i, 0, SYN)))
    for i in range(5):  # RFC 5961 5.2: right place, impossible ACK
        emit("data_old_ack", ip(tcp(rcv_nxt + 4_000_000 + 1000 * i, snd_nxt - 0x20000000, ACK, b"EVIL" * 100)))
else:
    gw_mac_fake = bytes.fromhex("02666666666666")
    arp = ArpPacket(OP_REPLY, gw_mac_fake, gw, dst_mac, cip)
    for _ in range(3):
        frame = build_ethernet(dst_mac, gw_mac_fake, ETH_P_ARP, build_arp(arp))
        sock.send(frame)
        sent["arp_spoof"] = sent.get("arp_spoof", 0) + 1
    good = tcp(rcv_nxt + 5_000_000, snd_nxt, ACK, b"X" * 200)
    for i in range(10):
        bad = bytearray(good)
        bad[40 + i] ^= 0x40
        emit("bad_tcp_checksum", ip(bytes(bad)))
    for off_byte in (0x00, 0x30, 0xF0):
        raw = bytearray(good)
        raw[12] = off_byte
        emit("bad_data_offset", ip(fix_tcp_checksum(raw)))
    cut = bytearray(tcp(rcv_nxt + 5_000_000, snd_nxt, ACK))
    cut[12] = 0x60
    cut += b"\x01\x01\x08\x0a"  # NOP NOP, then a timestamp option cut after 2 of its 10 bytes
    emit("cut_options", ip(fix_tcp_checksum(cut)))
    for _ in range(3):  # a first fragment: MF set (later fragments never pass rawtui's socket filter)
        frag = bytearray(ip(good, dont_fragment=False))
        frag[6:8] = b"\x20\x00"
        frag[10:12] = b"\0\0"
        frag[10:12] = internet_checksum(frag[:20]).to_bytes(2, "big")
        emit("ip_fragment", bytes(frag))
    for _ in range(20):
        emit("noise", rnd.randbytes(rnd.randrange(40, 1500)), rnd.choice([0x0800, 0x86DD, 0x1234, 0x0806]))
print(json.dumps({"sent": sent, "at": (rcv_nxt - peer_isn) & M, "window": (edge - rcv_nxt) & M}), flush=True)
"""


def start_injector(lab, role: str, ns: str, ifname: str, dst_mac: str, port: int, after: int) -> subprocess.Popen:
    argv = [sys.executable, "-c", INJECTOR, role, ifname, dst_mac, lab.client_ip, lab.server_ip,
            lab.router_client_ip, str(port), str(after)]
    proc = lab.popen(ns, argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env())
    assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
    return proc


def report(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def test_hostile_frames_during_a_download(fresh_lab, www, run_rawtui, tmp_path):
    lab = fresh_lab
    # rx checksum offload off on the client: otherwise veth marks frames sent through AF_PACKET as
    # "checksum verified" (TP_STATUS_CSUM_VALID) and a bad checksum is never looked at
    if not lab.set_offloads("c", lab.client_if, rx=False):
        lab_unavailable("ethtool is not installed: cannot turn rx checksum offload off")
    port = 8090
    server = lab.popen(lab.server_ns, [sys.executable, "-m", "rawtui.lab.server", "--root", str(www.root),
                                       "--port", str(port)], stdout=subprocess.PIPE, text=True, env=child_env())
    try:
        assert server.stdout.readline().startswith("ready")
        offlink = start_injector(lab, "offlink", lab.server_ns, lab.server_if, lab.mac("r", lab.router_sif),
                                 port, 4 << 20)
        onlink = start_injector(lab, "onlink", lab.router_ns, lab.router_cif, lab.mac("c", lab.client_if),
                                port, 8 << 20)
        r = run_rawtui(lab, "--headless", "-q", "--events", "ev.ndjson", "-o", "out.bin",
                       f"http://{lab.server_ip}:{port}/50m.bin")
        off, on = report(offlink), report(onlink)
    finally:
        lab.stop(server)
    assert r.returncode == 0, r.stderr
    assert sha256_file(tmp_path / "out.bin") == www.sha256["50m.bin"]
    evs = [json.loads(line) for line in (tmp_path / "ev.ndjson").read_text().splitlines()]
    done = evs[-1]
    assert done["type"] == "done" and done["sha256"] == www.sha256["50m.bin"]
    c = done["counters"]
    print("\ninjected:", off, on, "\ncounters:", {k: c[k] for k in (
        "challenge_acks", "rst_in", "rst_ignored", "syn_in", "out_of_window", "old_acks", "malformed",
        "ip_fragments", "csum_drop_tcp", "csum_kernel_verified", "csum_offloaded")})
    s_off, s_on = off["sent"], on["sent"]
    # RFC 5961: an RST that is not exactly at RCV.NXT never resets: inside the window it gets a challenge
    # ACK, outside it is dropped. (The attacker aims just below the right edge of the freshest ACK it read;
    # only a transfer that covered nearly a whole window before the RSTs land puts some behind it.)
    notes = [e["note"] for e in evs if e["type"] == "segment_in" and "R" in e["flags"]]
    rst_sent = s_off["rst_in_window"] + s_off["rst_far"]
    assert len(notes) == rst_sent and notes.count("reset") == 0
    assert notes.count("challenge") >= s_off["rst_in_window"] // 2
    assert notes.count("challenge") + notes.count("out-of-window") == rst_sent
    assert c["rst_ignored"] == notes.count("out-of-window") >= s_off["rst_far"]
    # every SYN gets a challenge ACK, wherever it lands; data far away or with an impossible ACK is dropped
    assert c["syn_in"] == s_off["syn_in_window"]
    syn_notes = [e["note"] for e in evs if e["type"] == "segment_in" and e["flags"] == "S"]
    assert syn_notes == ["challenge"] * s_off["syn_in_window"]
    assert c["out_of_window"] >= s_off["data_far"]
    assert c["challenge_acks"] >= notes.count("challenge") + s_off["syn_in_window"]
    out_notes = [e["note"] for e in evs if e["type"] == "segment_out"]
    assert out_notes.count("challenge") == c["challenge_acks"]
    # the LAN attacker: ARP spoof reported, not followed; broken frames counted, never data
    ignored = [e for e in evs if e["type"] == "arp_ignored"]
    assert len(ignored) >= s_on["arp_spoof"]
    assert all(e["reason"].startswith("MAC changed from ") and e["mac"] == "02:66:66:66:66:66" for e in ignored)
    drops = [e for e in evs if e["type"] == "checksum_drop"]
    assert len(drops) >= s_on["bad_tcp_checksum"] and c["csum_drop_tcp"] >= s_on["bad_tcp_checksum"]
    malformed = [e for e in evs if e["type"] == "malformed"]
    print("malformed:", [e["reason"] for e in malformed])
    assert len(malformed) >= s_on["bad_data_offset"] + s_on["cut_options"] + s_on["ip_fragment"]
    assert c["ip_fragments"] >= s_on["ip_fragment"]
