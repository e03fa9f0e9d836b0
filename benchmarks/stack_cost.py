"""Per-frame CPU cost of rawtui's receive path, sans-IO: no sockets, no lab, no root.

A simulated server sends a stream as real Ethernet/IPv4/TCP frames (timestamps, checksums) into a
connected :class:`rawtui.stack.host.Host`; the application side reads every 16 frames, as the session
does. With ``--loss P`` each data frame is lost with probability P and sent again ``--rtx-after``
frames later (what a SACK sender's fast retransmit looks like from the receiver: a stretch of
out-of-order segments, then the hole filled). Frames are built before the clock starts; the time
measured is Host.on_frame + take_frames/take_events + read + due timers, i.e. what the stack costs per
frame. The simulated clock advances 20 us per frame.

    python benchmarks/stack_cost.py                   # in order and 2 % loss, 20,000 frames each
    python benchmarks/stack_cost.py --loss 5 --frames 50000 --events
    python benchmarks/stack_cost.py --profile         # cProfile of the 2 % loss case
    python benchmarks/stack_cost.py --ipv6            # IPv4 and IPv6 frames (1428-byte payloads), same run
    python benchmarks/stack_cost.py --csum kernel     # checksums the kernel vouched for (skipped, counted)

It prints microseconds per frame and frames per second (best of ``--reps``); nothing is asserted.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from rawtui.stack.host import CSUM_KERNEL_VALID, CSUM_NOT_READY, CSUM_UNKNOWN, Host
from rawtui.wire.arp import OP_REPLY, ArpPacket, build_arp
from rawtui.wire.ethernet import ETH_P_ARP, ETH_P_IP, ETH_P_IPV6, build_ethernet
from rawtui.wire.ipv4 import PROTO_TCP, build_ipv4
from rawtui.wire.ipv6 import build_ipv6, ip6_bytes
from rawtui.wire.tcp import ACK, PSH, SYN, TcpOptions, TcpSegment, build_tcp, parse_tcp

CMAC, SMAC = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")
CIP, SIP = bytes([10, 77, 1, 2]), bytes([10, 77, 2, 2])
CPORT, SPORT = 40000, 80
CIP6, SIP6 = ip6_bytes("2001:db8:1::2"), ip6_bytes("2001:db8:2::2")
MSS = 1448  # payload with the timestamp option, as on a 1500-byte MTU
MSS6 = 1428  # the same over IPv6 (20 more bytes of IP header)


def server_frame(seg: TcpSegment, ipv6: bool = False) -> bytes:
    if ipv6:
        return build_ethernet(CMAC, SMAC, ETH_P_IPV6, build_ipv6(SIP6, CIP6, PROTO_TCP, build_tcp(seg, SIP6, CIP6)))
    return build_ethernet(CMAC, SMAC, ETH_P_IP, build_ipv4(SIP, CIP, PROTO_TCP, build_tcp(seg, SIP, CIP)))


def connect(events: bool, ipv6: bool = False) -> tuple[Host, int, float]:
    """A Host past ARP (or a known neighbor, IPv6) and the handshake; returns it, the server's ISN + 1 and
    the clock."""
    cip, sip = (CIP6, SIP6) if ipv6 else (CIP, SIP)
    host = Host(local_mac=CMAC, local_ip=cip, next_hop_ip=sip, remote_ip=sip, remote_port=SPORT,
                local_port=CPORT, isn=1000, mss=1440 if ipv6 else 1460, segment_events=events)
    now = 0.0
    if ipv6:
        host.start(now, next_hop_mac=SMAC)
    else:
        host.start(now)
        host.take_frames()
        arp = build_arp(ArpPacket(OP_REPLY, SMAC, SIP, CMAC, CIP))
        host.on_frame(build_ethernet(CMAC, SMAC, ETH_P_ARP, arp), now)
    (syn_frame,) = host.take_frames()
    syn = parse_tcp(syn_frame[54 if ipv6 else 34:], cip, sip)
    assert syn.flags == SYN
    sisn = 7_000_000
    opts = TcpOptions(mss=1460, wscale=7, sack_permitted=True, ts=(1, syn.options.ts[0]))
    now += 0.001
    host.on_frame(server_frame(TcpSegment(SPORT, CPORT, sisn, syn.seq + 1, SYN | ACK, 65535, opts), ipv6), now)
    host.take_frames()
    host.take_events()
    assert host.tcp.state == "ESTABLISHED"
    return host, sisn + 1, now


def plan(nframes: int, loss: float, rtx_after: int, seed: int) -> list[int]:
    """The order the server's data segments arrive in (segment indexes), losses resent later."""
    rnd = random.Random(seed)
    order: list[int] = []
    pending: list[tuple[int, int]] = []  # (resend at position, index)
    i = 0
    while len(order) < nframes:
        while pending and pending[0][0] <= len(order):
            order.append(pending.pop(0)[1])
        if rnd.random() < loss:
            pending.append((len(order) + rtx_after, i))
        else:
            order.append(i)
        i += 1
    return order[:nframes]


def build_frames(order: list[int], seq0: int, ack: int, ipv6: bool = False) -> list[bytes]:
    mss = MSS6 if ipv6 else MSS
    payload = bytes(range(256)) * (mss // 256 + 1)
    payload = payload[:mss]
    frames = []
    for k, i in enumerate(order):
        seg = TcpSegment(SPORT, CPORT, (seq0 + i * mss) & 0xFFFFFFFF, ack, ACK | PSH, 2000,
                         TcpOptions(ts=(1000 + k, 0)), payload)
        frames.append(server_frame(seg, ipv6))
    return frames


CSUM = {"software": CSUM_UNKNOWN, "kernel": CSUM_KERNEL_VALID, "offloaded": CSUM_NOT_READY}


def run_once(frames: list[bytes], events: bool, ipv6: bool = False, csum: int = CSUM_UNKNOWN) -> tuple[float, Host]:
    host, _, now = connect(events, ipv6)
    dt = 20e-6
    on_frame, take_frames, take_events, read = host.on_frame, host.take_frames, host.take_events, host.read
    t0 = time.perf_counter()
    for k, f in enumerate(frames):
        now += dt
        on_frame(f, now, csum)
        if k & 15 == 15:
            read()
            deadline = host.next_deadline
            if deadline is not None and now >= deadline:
                host.on_timer(now)
            take_frames()
            take_events()
    read()
    take_frames()
    take_events()
    return time.perf_counter() - t0, host


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=20_000)
    p.add_argument("--loss", type=float, default=None, help="percent; default: run 0 and 2")
    p.add_argument("--rtx-after", type=int, default=60, help="frames between a loss and its resend")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--events", action="store_true", help="per-segment events on (the live view's mode)")
    p.add_argument("--profile", action="store_true", help="cProfile one run (2 %% loss unless --loss)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--ipv6", action="store_true", help="IPv4 and IPv6 frames, one after the other, same run")
    p.add_argument("--csum", choices=list(CSUM), default="software",
                   help="what the link says of each frame's checksums: software (verify them: the default), "
                        "kernel (TP_STATUS_CSUM_VALID), offloaded (TP_STATUS_CSUMNOTREADY)")
    ns = p.parse_args(argv)
    losses = [ns.loss] if ns.loss is not None else ([2.0] if ns.profile else [0.0, 2.0])
    for loss, ipv6 in [(loss, v6) for loss in losses for v6 in ((False, True) if ns.ipv6 else (False,))]:
        probe, seq0, _ = connect(ns.events, ipv6)
        order = plan(ns.frames, loss / 100, ns.rtx_after, ns.seed)
        frames = build_frames(order, seq0, probe.tcp.snd_nxt, ipv6)
        if ns.profile:
            prof = cProfile.Profile()
            prof.enable()
            run_once(frames, ns.events, ipv6, CSUM[ns.csum])
            prof.disable()
            pstats.Stats(prof).sort_stats("tottime").print_stats(25)
            continue
        best = min(run_once(frames, ns.events, ipv6, CSUM[ns.csum])[0] for _ in range(ns.reps))
        _, host = run_once(frames, ns.events, ipv6, CSUM[ns.csum])
        c = host.tcp.counters
        h = host.counters
        checked = h["frames_in"] - h["csum_kernel_verified"] - h["csum_offloaded"]
        print(f"{'IPv6' if ipv6 else 'IPv4'}  loss {loss:4.1f} %  events {'on ' if ns.events else 'off'}  "
              f"csum {ns.csum:9s} ({checked} verified here)  {len(frames)} frames  "
              f"{best / len(frames) * 1e6:6.2f} us/frame  {len(frames) / best / 1e3:7.1f} kframes/s  "
              f"{len(frames) * (MSS6 if ipv6 else MSS) / best / 1e6:6.1f} MB/s   acks {c['acks_sent']}  "
              f"out-of-order {c['out_of_order']}  holes filled {c['holes_filled']}  "
              f"delivered {c['bytes_delivered']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
