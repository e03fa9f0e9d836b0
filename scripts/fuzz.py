"""Fuzz the receive path: generated and mutated frames through every wire parser and ``Host.on_frame``, and
random segment sequences through ``TcpConnection``.

    python scripts/fuzz.py                       # 100,000 frames and 10,000 TCP sequences (the closing note)
    python scripts/fuzz.py --frames 1000000 --sequences 0 --seed 7
    python scripts/fuzz.py --replay-sequence 4711  # one failing sequence again, verbosely

Frames (a): random bytes, plausible headers with random tails, valid segments cut from a known stream (with
random flags, ACKs, windows, options, IP options, padding, VLAN tags, fragment bits), ARP packets, and
mutations of all of those (bit flips, byte sets, truncation, extension, header fields rewritten with the
checksums fixed). Every frame goes through parse_ethernet / parse_arp / parse_ipv4 / parse_tcp /
parse_options (both verify modes): only WireError may come out. Then through a connected Host (checksums
verified): it must not raise, the bytes it delivers must be a prefix of the true stream, the receive buffer
must stay within rcv_buf and the out-of-order holes within MAX_OOO_BLOCKS. A mutated frame that still
passes both checksums although its TCP bytes changed is a checksum collision: no receiver can catch it,
so it goes only to a second "chaos" host checked for everything but the prefix (and it is counted).

TCP sequences (b): establish with random ISNs / options / buffer, then 20..200 random operations
(segments from the stream at random offsets, old data, random flags including RST/SYN/FIN, ACK noise,
window values, app reads, clock jumps and timers, app sends and closes). Property after every step: no
exception, delivered bytes a prefix of the stream, rcv_buffered <= rcv_buf, every segment we emit parses
with a valid checksum. When no FIN/RST/SYN was injected and the connection is still open, a final clean
in-order pass must deliver the whole stream.

``--medium ip``: the Host is on a point-to-point link (tun, WireGuard: frames are bare IP packets); the
same frames are made, and each goes to the Host without its first 14 bytes (the Ethernet header of the
well-formed ones).

Exit status 1 when anything failed; each failure prints the seed that reproduces it.
"""

from __future__ import annotations

import argparse
import os
import random
import struct
import sys
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from rawtui.stack.events import Medium
from rawtui.stack.host import CSUM_KERNEL_VALID, CSUM_NOT_READY, CSUM_UNKNOWN, Host
from rawtui.stack.tcp import M32, MAX_OOO_BLOCKS, TcpConnection, seq_lt
from rawtui.wire.arp import OP_REPLY, OP_REQUEST, ArpPacket, build_arp, parse_arp
from rawtui.wire.checksum import (
    checksum_from_residue,
    internet_checksum,
    pseudo_header_residue,
    residue,
)
from rawtui.wire.errors import WireError
from rawtui.wire.ethernet import ETH_P_8021Q, ETH_P_ARP, ETH_P_IP, build_ethernet, parse_ethernet
from rawtui.wire.ipv4 import PROTO_TCP, build_ipv4, parse_ipv4
from rawtui.wire.tcp import (
    ACK,
    FIN,
    PSH,
    RST,
    SYN,
    URG,
    TcpOptions,
    TcpSegment,
    build_tcp,
    parse_options,
    parse_tcp,
)

MAC = bytes.fromhex("020000000001")
GW_MAC = bytes.fromhex("020000000099")
LIP = bytes([10, 77, 1, 2])
GW = bytes([10, 77, 1, 1])
SRV = bytes([10, 77, 2, 2])
LPORT, RPORT = 40000, 8080
STREAM_LEN = 1 << 20
FLAG_CHOICES = [ACK] * 6 + [ACK | PSH] * 3 + [ACK | FIN, RST, RST | ACK, SYN, SYN | ACK, 0, ACK | URG, FIN]


@dataclass
class Report:
    name: str
    runs: int = 0
    failures: list[str] = field(default_factory=list)
    stats: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    def fail(self, what: str) -> None:
        self.failures.append(what)


# ---------------------------------------------------------------------------------------------------
# (a) frames


def fix_checksums(frame: bytearray, ip_off: int = 14) -> None:
    """Recompute the IPv4 header and TCP checksums of an Ethernet+IPv4+TCP frame in place (best effort)."""
    if len(frame) < ip_off + 20:
        return
    hl = (frame[ip_off] & 0x0F) * 4
    total = int.from_bytes(frame[ip_off + 2:ip_off + 4], "big")
    if hl < 20 or len(frame) < ip_off + hl:
        return
    frame[ip_off + 10:ip_off + 12] = b"\0\0"
    frame[ip_off + 10:ip_off + 12] = internet_checksum(frame[ip_off:ip_off + hl]).to_bytes(2, "big")
    seg_end = min(len(frame), ip_off + max(total, hl))
    t = ip_off + hl
    if seg_end - t < 20:
        return
    frame[t + 16:t + 18] = b"\0\0"
    src, dst = bytes(frame[ip_off + 12:ip_off + 16]), bytes(frame[ip_off + 16:ip_off + 20])
    r = pseudo_header_residue(src, dst, PROTO_TCP, seg_end - t) + residue(frame[t:seg_end])
    frame[t + 16:t + 18] = checksum_from_residue(r).to_bytes(2, "big")


def tcp_bytes(frame: bytes) -> bytes | None:
    """The TCP segment of a well-formed Ethernet+IPv4 frame (None if it does not parse that far)."""
    try:
        eth = parse_ethernet(frame)
        if eth.ethertype != ETH_P_IP:
            return None
        _, payload = parse_ipv4(eth.payload, verify=False)
        return bytes(payload)
    except WireError:
        return None


def verifies(frame: bytes) -> bool:
    try:
        eth = parse_ethernet(frame)
        if eth.ethertype != ETH_P_IP:
            return False
        ip, payload = parse_ipv4(eth.payload, verify=True)
        parse_tcp(payload, ip.src, ip.dst, verify=True)
        return True
    except WireError:
        return False


class FrameGen:
    """Frames for a Host whose peer is SRV:RPORT with peer ISN ``pisn`` and our ISN ``isn``."""

    def __init__(self, rnd: random.Random, stream: bytes, isn: int, pisn: int, host: Host | None = None) -> None:
        self.host = host  # to aim near its RCV.NXT, like a real sender
        self.rnd = rnd
        self.stream = stream
        self.isn = isn
        self.pisn = pisn
        self.snd_nxt = (isn + 1) & M32
        self.tsval = 1

    def options(self) -> TcpOptions:
        r = self.rnd
        k = r.random()
        if k < 0.6:
            self.tsval += r.randrange(0, 3)
            return TcpOptions(ts=(self.tsval & M32, r.getrandbits(32)))
        if k < 0.75:
            n = r.randrange(1, 4)
            blocks = tuple(((self.isn + r.randrange(0, 5000)) & M32, (self.isn + r.randrange(0, 5000)) & M32)
                           for _ in range(n))
            return TcpOptions(ts=(self.tsval, 0), sack=blocks)
        if k < 0.8:
            return TcpOptions(mss=r.randrange(0, 65536), wscale=r.randrange(0, 20), sack_permitted=True)
        return TcpOptions()

    def stream_segment(self) -> tuple[bytes, bool]:
        """A valid frame cut from the stream; True when its payload really is the stream at its seq."""
        r = self.rnd
        k = r.random()
        if k < 0.6 and self.host is not None:  # a flow: at RCV.NXT, a little ahead (loss) or behind (dup)
            nxt = self.host.tcp.bytes_received
            off = nxt + r.choice([0, 0, 0, 0, 1448, 2896, -1448, -1, 1, r.randrange(-5000, 100_000)])
        elif k < 0.9:
            off = int(r.triangular(-3000, STREAM_LEN - 2000, 0))
        else:
            off = r.randrange(-2**31, 2**31)
        length = r.choice([0, 1, 7, 536, 1448, 1448, 1448, 2896, 9000, 64000, r.randrange(0, 3000)])
        lo = max(off, 0)
        payload = self.stream[lo:lo + length]
        if off < 0:  # before the stream: zeros (so not "truthful": it goes to the chaos host)
            payload = bytes(min(length, -off))
        flags = r.choice(FLAG_CHOICES)
        ack = (self.snd_nxt + r.choice([0, 0, 0, 0, -1, 1, -100000, r.getrandbits(32)])) & M32
        seg = TcpSegment(RPORT, LPORT, (self.pisn + 1 + off) & M32, ack, flags, r.choice([0, 1, 502, 65535,
                         r.randrange(0, 65536)]), self.options(), payload, urgent=r.choice([0, 0, 0, 5]))
        raw = build_tcp(seg, SRV, LIP)
        kind = r.random()
        if kind < 0.1:  # IP options
            opts = bytes([1] * r.choice([4, 8, 40]))
            ip = _ipv4_raw(raw, options=opts)
        elif kind < 0.15:  # a first fragment (MF) or a later one
            ip = _ipv4_raw(raw, frag=r.choice([0x2000, 0x0001, 0x2010]))
        else:
            ip = build_ipv4(SRV, LIP, PROTO_TCP, raw, ident=r.getrandbits(16))
        if r.random() < 0.05:  # VLAN tag left in place
            frame = MAC + GW_MAC + struct.pack("!HH", ETH_P_8021Q, r.randrange(4096)) + struct.pack(
                "!H", ETH_P_IP) + ip
        else:
            frame = build_ethernet(MAC, GW_MAC, ETH_P_IP, ip)
        if r.random() < 0.1:
            frame += r.randbytes(r.randrange(1, 60))  # trailing padding / junk
        return frame, off >= 0

    def arp(self) -> bytes:
        r = self.rnd
        op = r.choice([OP_REPLY, OP_REPLY, OP_REQUEST, r.randrange(0, 65536)])
        sender_ip = r.choice([GW, GW, LIP, SRV, r.randbytes(4)])
        sender_mac = r.choice([GW_MAC, GW_MAC, r.randbytes(6)])
        pkt = build_arp(ArpPacket(op % 65536 if op in (1, 2) else 1, sender_mac, sender_ip, MAC,
                                  r.choice([LIP, LIP, r.randbytes(4)])))
        if op not in (1, 2):
            pkt = pkt[:6] + op.to_bytes(2, "big") + pkt[8:]
        return build_ethernet(MAC, sender_mac, ETH_P_ARP, pkt)

    def random_frame(self) -> bytes:
        r = self.rnd
        k = r.random()
        if k < 0.3:
            return r.randbytes(r.choice([0, 1, 13, 14, 15, 33, 34, 53, 54, 60, r.randrange(0, 2000)]))
        head = MAC + GW_MAC + struct.pack("!H", r.choice([ETH_P_IP, ETH_P_IP, ETH_P_ARP, ETH_P_8021Q, 0x86DD]))
        if k < 0.6:
            return head + r.randbytes(r.randrange(0, 1600))
        # plausible IPv4 from the server to us, TCP ports right, the rest random
        ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, r.randrange(0, 1600), 0, 0x4000, 64, PROTO_TCP, 0,
                                   SRV, LIP))
        tcp = bytearray(struct.pack("!HH", RPORT, LPORT) + r.randbytes(r.randrange(0, 120)))
        frame = bytearray(build_ethernet(MAC, GW_MAC, ETH_P_IP, bytes(ip + tcp)))
        if r.random() < 0.5:
            struct.pack_into("!H", frame, 16, len(frame) - 14)
            fix_checksums(frame)
        return bytes(frame)

    def mutate(self, frame: bytes) -> tuple[bytes, bool]:
        """1..4 random mutations; True when one of them rewrote a header field and fixed the checksums."""
        r = self.rnd
        f = bytearray(frame)
        fixed = False
        for _ in range(r.choice([1, 1, 1, 2, 3, 4])):
            k = r.random()
            if not f:
                f += r.randbytes(r.randrange(1, 60))
            elif k < 0.35:
                i = r.randrange(len(f))
                f[i] ^= 1 << r.randrange(8)
            elif k < 0.6:
                f[r.randrange(len(f))] = r.randrange(256)
            elif k < 0.7:
                del f[r.randrange(len(f)):]
            elif k < 0.75:
                f += r.randbytes(r.randrange(1, 3000))
            elif k < 0.9:  # a header field rewritten, then the checksums fixed: a *valid* odd segment
                i = r.randrange(min(len(f), 80))
                f[i] = r.randrange(256)
                fix_checksums(f)
                fixed = True
            else:  # a 16-bit field somewhere in the headers set to an edge value
                i = r.randrange(min(len(f), 80))
                f[i:i + 2] = r.choice([b"\0\0", b"\xff\xff", b"\x80\x00", b"\x00\x01"])
        return bytes(f), fixed


def _ipv4_raw(payload: bytes, options: bytes = b"", frag: int = 0x4000) -> bytes:
    hl = 20 + len(options)
    hdr = bytearray(struct.pack("!BBHHHBBH4s4s", 0x40 | hl // 4, 0, hl + len(payload), 1, frag, 64, PROTO_TCP, 0,
                                SRV, LIP)) + options
    hdr[10:12] = internet_checksum(hdr).to_bytes(2, "big")
    return bytes(hdr) + payload


def _fixed_only_safe(base: bytes, frame: bytes) -> bool:
    """A mutated frame that verifies: True when its TCP segment still carries the same stream bytes at the
    same sequence number as the original (only "safe" fields differ), so the prefix oracle still holds."""
    a, b = tcp_bytes(base), tcp_bytes(frame)
    if a is None or b is None or len(a) < 20 or len(b) < 20:
        return b is None
    pa, pb = a[(a[12] >> 4) * 4:], b[(b[12] >> 4) * 4:]
    return a[4:8] == b[4:8] and a[12] >> 4 == b[12] >> 4 and pa.startswith(pb)


def all_parsers(frame: bytes, stats: Counter[str]) -> None:
    """Every parser over the frame's layers; anything but WireError escapes (and is a failure)."""
    try:
        eth = parse_ethernet(frame)
    except WireError:
        stats["parse:eth_error"] += 1
        return
    body = bytes(eth.payload)
    for name, fn in (("arp", lambda: parse_arp(body)),):
        try:
            fn()
        except WireError:
            stats[f"parse:{name}_error"] += 1
    for verify in (True, False):
        try:
            ip, payload = parse_ipv4(body, verify=verify)
        except WireError:
            stats["parse:ipv4_error"] += 1
            continue
        for v2 in (True, False):
            try:
                parse_tcp(payload, ip.src, ip.dst, verify=v2)
                stats["parse:tcp_ok"] += 1
            except WireError:
                stats["parse:tcp_error"] += 1
    # the options parser alone over any 0..40 bytes of the frame
    if len(body) >= 20:
        start = body[0] % max(1, len(body) - 1)
        try:
            parse_options(body[start:start + (body[-1] % 41)])
        except WireError:
            stats["parse:options_error"] += 1


def new_host(rnd: random.Random, rcv_buf: int, isns: tuple[int, int] | None = None,
             medium: Medium = Medium.ETHERNET) -> tuple[Host, int, int]:
    isn, pisn = isns or (rnd.getrandbits(32), rnd.choice([rnd.getrandbits(32), 0xFFFFFFFF - 5000, 0]))
    host = Host(local_mac=MAC, local_ip=LIP, next_hop_ip=GW, remote_ip=SRV, remote_port=RPORT, local_port=LPORT,
                isn=isn, rcv_buf=rcv_buf, segment_events=rnd.random() < 0.5, medium=medium)
    host.start(0.0)
    lh = medium.link_header
    if lh:
        host.on_frame(build_ethernet(MAC, GW_MAC, ETH_P_ARP, build_arp(ArpPacket(OP_REPLY, GW_MAC, GW, MAC, LIP))),
                      0.001)
    o = TcpOptions(mss=1460, wscale=rnd.choice([None, 0, 7, 14]), sack_permitted=rnd.random() < 0.8,
                   ts=(1, 0) if rnd.random() < 0.8 else None)
    syn_ack = build_tcp(TcpSegment(RPORT, LPORT, pisn, (isn + 1) & M32, SYN | ACK, 65535, o), SRV, LIP)
    host.on_frame(build_ethernet(MAC, GW_MAC, ETH_P_IP, build_ipv4(SRV, LIP, PROTO_TCP, syn_ack))[14 - lh:], 0.01)
    host.take_frames()
    host.take_events()
    return host, isn, pisn


class CheckedHost:
    """A Host plus the oracle: what it delivered so far must be a prefix of the stream."""

    def __init__(self, rnd: random.Random, stream: bytes, prefix_checked: bool, stats: Counter[str],
                 medium: Medium = Medium.ETHERNET) -> None:
        self.medium = medium
        self.strip = 14 - medium.link_header  # the generated frames' bytes that are not this medium's
        self.rnd = rnd
        self.stats = stats
        self.stream = stream
        self.prefix_checked = prefix_checked
        self.connections = 0
        self.reset()

    def reset(self, isns: tuple[int, int] | None = None) -> None:
        self.rcv_buf = self.rnd.choice([4096, 65535, 1 << 20, 8 << 20])
        self.host, isn, pisn = new_host(self.rnd, self.rcv_buf, isns, self.medium)
        self.gen = FrameGen(self.rnd, self.stream, isn, pisn, self.host)
        self.got = 0
        self.now = 0.01
        self.connections += 1

    def collect(self, stats: Counter[str]) -> None:
        """Add this connection's counters (host and TCP) to stats (called before each reset)."""
        name = "checked" if self.prefix_checked else "chaos"
        for k in ("malformed", "csum_drop_ipv4", "csum_drop_tcp", "ip_fragments", "not_ours"):
            stats[f"{name}:{k}"] += self.host.counters[k]
        for k in ("bytes_delivered", "out_of_order", "dup_data", "out_of_window", "challenge_acks", "rst_in",
                  "ooo_limit_drops", "bad_port"):
            stats[f"{name}:{k}"] += self.host.tcp.counters[k]

    def feed(self, frame: bytes, csum: int) -> str | None:
        h = self.host
        self.now += self.rnd.choice([0.0, 0.0001, 0.001, 0.05, 0.5])
        h.on_frame(frame[self.strip:], self.now, csum)
        dl = h.next_deadline
        if dl is not None and dl <= self.now:
            h.on_timer(self.now)
        if h.tcp.rcv_buffered > self.rcv_buf:
            return f"rcv_buffered {h.tcp.rcv_buffered} > rcv_buf {self.rcv_buf}"
        if len(h.tcp._ooo) > MAX_OOO_BLOCKS:
            return f"{len(h.tcp._ooo)} out-of-order blocks"
        if self.rnd.random() < 0.5:
            for chunk in h.read():
                if self.prefix_checked and self.stream[self.got:self.got + len(chunk)] != chunk:
                    return f"delivered bytes at offset {self.got} are not the stream's"
                self.got += len(chunk)
        for f in h.take_frames():
            eth = parse_ethernet(bytes(self.strip) + f)  # (a zero Ethernet header on a bare IP packet)
            if eth.ethertype == ETH_P_IP or self.strip:
                ip, payload = parse_ipv4(eth.payload, verify=True)
                parse_tcp(payload, ip.src, ip.dst, verify=True)
        h.take_events()
        if h.tcp.state in ("CLOSED", "TIME-WAIT", "CLOSE-WAIT", "LAST-ACK") or h.error is not None or \
                self.got > STREAM_LEN - 70000:
            self.collect(self.stats)
            self.reset()
        return None


def fuzz_frames(n: int, seed: int, medium: Medium = Medium.ETHERNET) -> Report:
    rep = Report("frames" if medium is Medium.ETHERNET else f"frames ({medium} medium)")
    rnd = random.Random(seed)
    stream = random.Random(seed ^ 0x5EED).randbytes(STREAM_LEN)
    checked = CheckedHost(random.Random(seed + 1), stream, prefix_checked=True, stats=rep.stats, medium=medium)
    chaos = CheckedHost(random.Random(seed + 2), stream, prefix_checked=False, stats=rep.stats, medium=medium)
    t0 = time.perf_counter()
    # on Medium.IP the host sees a frame without its first 14 bytes: the oracle judges the same bytes, behind
    # a well-formed Ethernet IPv4 header (a mutated EtherType or a VLAN tag means nothing to that host)
    ip_head = build_ethernet(MAC, GW_MAC, ETH_P_IP, b"")[:14]

    def as_seen(frame: bytes) -> bytes:
        return ip_head + frame[14:] if medium is Medium.IP and len(frame) >= 14 else frame

    for i in range(n):
        gen = checked.gen
        k = rnd.random()
        truthful = False
        if k < 0.45:
            frame, truthful = gen.stream_segment()
            frame = as_seen(frame)
            kind = "valid"
        elif k < 0.75:
            base, truthful = gen.stream_segment() if rnd.random() < 0.85 else (gen.arp(), True)
            base = as_seen(base)
            frame, fixed = gen.mutate(base)
            frame = as_seen(frame)
            kind = "mutated"
            if frame != base and verifies(frame) and tcp_bytes(frame) != tcp_bytes(base) and \
                    not _fixed_only_safe(base, frame):
                # it passes both checksums yet claims other stream bytes (seq, data offset, payload):
                # made so on purpose (fields rewritten, checksums fixed) or by chance (a collision)
                kind = "mutated-valid-odd" if fixed else "collision"
                if kind == "collision" and os.environ.get("FUZZ_SHOW_COLLISIONS"):
                    print("collision:", base[:70].hex(), frame[:70].hex(), sep="\n  ")
            elif not truthful:
                kind = "mutated-valid-odd" if verifies(frame) else "mutated"
        elif k < 0.85:
            frame, kind = gen.arp(), "arp"
            if rnd.random() < 0.5:
                frame, _ = gen.mutate(frame)
            frame = as_seen(frame)
        else:
            frame, kind = as_seen(gen.random_frame()), "random"
        rep.stats[f"kind:{kind}"] += 1
        try:
            all_parsers(frame, rep.stats)
        except Exception as e:  # noqa: BLE001 - the point: report, keep going
            rep.fail(f"frame {i} (seed {seed}): parser raised {type(e).__name__}: {e}: {frame[:80].hex()}")
        csum = CSUM_UNKNOWN
        target = checked
        if kind in ("collision", "mutated-valid-odd") or (kind == "mutated" and rnd.random() < 0.02):
            target = chaos  # chaos also gets the odd mutated frame with a "kernel verified" label
            csum = rnd.choice([CSUM_UNKNOWN, CSUM_NOT_READY, CSUM_KERNEL_VALID])
        elif kind == "valid" and not truthful:
            target = chaos
        if target is chaos and (chaos.gen.isn, chaos.gen.pisn) != (gen.isn, gen.pisn):
            chaos.reset((gen.isn, gen.pisn))  # the frame was made for the checked host's connection
        try:
            problem = target.feed(frame, csum)
        except Exception as e:  # noqa: BLE001
            problem = f"raised {type(e).__name__}: {e}\n{traceback.format_exc(limit=4)}"
            target.reset()
        if problem:
            rep.fail(f"frame {i} (seed {seed}, {kind}, {'checked' if target is checked else 'chaos'} host): "
                     f"{problem}: {frame[:80].hex()}")
            target.reset()
        rep.runs += 1
        if i % 2000 == 1999:  # new connections now and then: other buffer sizes, ISNs, options
            for h in (checked, chaos):
                h.collect(rep.stats)
                h.reset()
    rep.seconds = time.perf_counter() - t0
    for name, h in (("checked", checked), ("chaos", chaos)):
        h.collect(rep.stats)
        rep.stats[f"{name}:connections"] = h.connections
    return rep


# ---------------------------------------------------------------------------------------------------
# (b) TCP sequences

SEQ_STREAM = random.Random(99).randbytes(60000)


def one_sequence(seed: int, verbose: bool = False) -> tuple[str | None, Counter[str]]:
    rnd = random.Random(seed)
    stats: Counter[str] = Counter()
    isn = rnd.choice([0, 1000, 0xFFFFFFFF - 3000, 0xFFFFFFFF, 0x7FFFFFFF, rnd.getrandbits(32)])
    pisn = rnd.choice([0, 1000, 0xFFFFFFFF - 3000, 0xFFFFFFFF, 0x7FFFFFFF, rnd.getrandbits(32)])
    ts = rnd.random() < 0.7
    wscale = rnd.choice([None, 0, 3, 7, 14])
    rcv_buf = rnd.choice([3000, 8192, 65535, 200000, 1 << 20])
    conn = TcpConnection(local_ip=LIP, remote_ip=SRV, local_port=LPORT, remote_port=RPORT, isn=isn,
                         rcv_buf=rcv_buf, sack=rnd.random() < 0.8, segment_events=rnd.random() < 0.5)
    now = 0.0
    conn.connect(now)
    (syn,) = [parse_tcp(b, LIP, SRV) for b in conn.take_segments()]
    o = TcpOptions(mss=rnd.choice([None, 536, 1460, 9000]), wscale=wscale, sack_permitted=rnd.random() < 0.8,
                   ts=(1, syn.options.ts[0]) if ts and syn.options.ts else None)
    now += rnd.random() * 0.2
    conn.on_segment(TcpSegment(RPORT, LPORT, pisn, (isn + 1) & M32, SYN | ACK, rnd.choice([0, 1000, 65535]), o),
                    now)
    if conn.state != "ESTABLISHED":
        return "handshake failed", stats
    got = bytearray()
    n = len(SEQ_STREAM)

    def check(where: str) -> str | None:
        if seq_lt(conn.snd_max, conn.snd_nxt) or seq_lt(conn.snd_nxt, conn.snd_una):
            return f"{where}: SND.UNA {conn.snd_una} <= SND.NXT {conn.snd_nxt} <= SND.MAX {conn.snd_max} broken"
        if conn.rcv_buffered > rcv_buf:
            return f"{where}: rcv_buffered {conn.rcv_buffered} > rcv_buf {rcv_buf}"
        if bytes(got) != SEQ_STREAM[: len(got)]:
            return f"{where}: delivered bytes are not a prefix of the stream"
        for raw in conn.take_segments():
            parse_tcp(raw, LIP, SRV, verify=True)
        conn.take_events()
        return None

    try:
        for step in range(rnd.randrange(20, 200)):
            k = rnd.random()
            if k < 0.7:
                off = rnd.randrange(-2000, n)
                length = rnd.choice([0, 1, 100, 536, 1448, 1448, 3000, rnd.randrange(0, 5000)])
                flags = rnd.choice(FLAG_CHOICES)
                lo = max(off, 0)
                payload = SEQ_STREAM[lo:lo + length] if off >= 0 else bytes(min(length, -off))
                ack = (conn.snd_nxt + rnd.choice([0, 0, 0, -1, 1, -5, 5, rnd.getrandbits(32)])) & M32
                seg = TcpSegment(RPORT, LPORT, (pisn + 1 + off) & M32, ack, flags, rnd.randrange(0, 65536),
                                 TcpOptions(ts=(int(now * 1000) & M32, 0)) if ts else TcpOptions(), payload)
                conn.on_segment(seg, now)
                stats["segments"] += 1
            elif k < 0.82:
                got += conn.read(rnd.choice([None, 1, 100, 5000]))
                stats["reads"] += 1
            elif k < 0.95:
                now += rnd.choice([0.001, 0.04, 0.3, 2.0, 30.0])
                dl = conn.next_deadline
                if dl is not None and dl <= now:
                    conn.on_timer(now)
                stats["timers"] += 1
            elif k < 0.997:
                try:
                    conn.send(rnd.randbytes(rnd.randrange(1, 3000)), now)
                except Exception as e:
                    if type(e).__name__ != "TcpError":
                        raise
                stats["sends"] += 1
            else:
                conn.close(now)
                stats["closes"] += 1
            problem = check(f"step {step}")
            if verbose:
                print(step, conn.state, conn.rcv_nxt, conn.rcv_buffered, len(got))
            if problem:
                return problem, stats
        # liveness: unless a FIN or RST was taken, a clean in-order pass delivers the whole stream
        if conn.state == "ESTABLISHED" and not conn.peer_eof and conn._fin_off is None:
            stats["final_passes"] += 1
            off = conn.bytes_received
            stalls = 0
            while off < n:
                room = max(1, min(1448, conn._adv_max - conn._rcv_off))
                conn.on_segment(TcpSegment(RPORT, LPORT, (pisn + 1 + off) & M32, conn.snd_nxt, ACK | PSH, 65535,
                                           TcpOptions(ts=(int(now * 1000) & M32, 0)) if ts else TcpOptions(),
                                           SEQ_STREAM[off:off + room]), now)
                got += conn.read()
                problem = check("final pass")
                if problem:
                    return problem, stats
                stalls = stalls + 1 if conn.bytes_received == off else 0
                if stalls > 3:  # (one probe into a closed window is fine: its ACK opens the window)
                    return f"final pass: stuck at offset {off} (state {conn.state})", stats
                off = conn.bytes_received
            got += conn.read()
            if bytes(got) != SEQ_STREAM:
                return f"final pass: delivered {len(got)} of {n} bytes", stats
    except Exception as e:  # noqa: BLE001
        return f"raised {type(e).__name__}: {e}\n{traceback.format_exc(limit=6)}", stats
    return None, stats


def fuzz_sequences(n: int, seed: int) -> Report:
    rep = Report("tcp sequences")
    t0 = time.perf_counter()
    for i in range(n):
        s = seed * 1_000_003 + i
        problem, stats = one_sequence(s)
        rep.stats.update(stats)
        rep.runs += 1
        if problem:
            rep.fail(f"sequence seed {s}: {problem}")
    rep.seconds = time.perf_counter() - t0
    return rep


# ---------------------------------------------------------------------------------------------------


def print_report(rep: Report) -> None:
    print(f"{rep.name}: {rep.runs:,} in {rep.seconds:.1f} s, {len(rep.failures)} failures")
    for k in sorted(rep.stats):
        print(f"    {k:28} {rep.stats[k]:>12,}")
    for f in rep.failures[:20]:
        print("  FAIL", f)
    if len(rep.failures) > 20:
        print(f"  ... and {len(rep.failures) - 20} more")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=100_000)
    p.add_argument("--sequences", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--medium", choices=[m.value for m in Medium], default=Medium.ETHERNET.value,
                   help="what the Host's frames begin with (ip: bare IP packets, as on a tun device)")
    p.add_argument("--replay-sequence", type=int, metavar="SEED", help="run one TCP sequence verbosely")
    ns = p.parse_args(argv)
    if ns.replay_sequence is not None:
        problem, stats = one_sequence(ns.replay_sequence, verbose=True)
        print(problem or "ok", dict(stats))
        return 1 if problem else 0
    failed = 0
    if ns.frames:
        rep = fuzz_frames(ns.frames, ns.seed, Medium(ns.medium))
        print_report(rep)
        failed += len(rep.failures)
    if ns.sequences:
        rep = fuzz_sequences(ns.sequences, ns.seed)
        print_report(rep)
        failed += len(rep.failures)
    print("FAILED" if failed else "OK: 0 failures")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
