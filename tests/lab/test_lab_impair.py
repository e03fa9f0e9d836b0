"""The lab's impairments, measured: each knob does what it says, counted two ways (the relay's own counters
and what arrives at the other namespace), plus the control socket and the Pipe's logic on a fake clock.

The lab tests send known numbers of UDP datagrams (one 1514-byte frame each, unless small) through the
router with a relay started with a fixed seed, so a run is reproducible; tolerances are still those a
random process of that size needs (e.g. 2 % +- 0.5 % of 10,000 frames is +- 3.5 sigma).

Nothing here depends on how fast the machine is: the sink stops once it has accounted for every frame the
relay says it forwarded (not after an idle spell), delays are checked on the delays the relay reports it
chose (a measured RTT only has to be at least that), and where a measured time is the point (a rate, a
blackout's length) the bound that physics guarantees is tight and the other one is wide, with the reason.
"""

from __future__ import annotations

import json
import os
import random
import select
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from conftest import child_env, require_tool

from rawtui.events import Info, LabKnobs, LabScenario, LabStats, RouterAction, ServerTcpInfo
from rawtui.lab.control import (
    ControlError,
    ControlHub,
    LabChannel,
    LabControl,
    Subscription,
    message_to_event,
)
from rawtui.lab.impair import (
    ACTIONS,
    REORDER_GAP,
    ImpairError,
    Knobs,
    Pipe,
    corrupt_frame,
    fix_l4_checksum,
    parse_ms,
    parse_rate,
    segment_tcp,
    start_relay,
)
from rawtui.lab.server import make_file, parse_tcp_info, sha256_file
from rawtui.lab.topology import Lab
from rawtui.wire import build_ethernet, build_ipv4, build_tcp
from rawtui.wire import tcp as wtcp
from rawtui.wire.checksum import verify

lab_test = pytest.mark.lab

# ---------------------------------------------------------------------------------------------------
# UDP tools run inside the namespaces

# Receives datagrams "<seq> ..." on a port. Once it has printed "ready" it reads one number from stdin:
# how many datagrams the relay forwarded to it (the relay's own count, taken once it had sent them all).
# It stops when every one of them is accounted for (received, or rejected by the kernel for a bad UDP
# checksum or a full receive buffer), or after `limit` seconds in all, and prints {"seqs": [...],
# "times": [...], "csum_errors": n, "rcvbuf_errors": n}: the sequence numbers in arrival order, their
# kernel arrival timestamps, and the kernel's rejects (InCsumErrors, RcvbufErrors) meanwhile.
_SINK = textwrap.dedent(
    """
    import json, select, socket, struct, sys, time
    port, limit, v6 = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3] == "6"
    def kernel_rejects():
        if v6:
            values = dict(l.split() for l in open("/proc/net/snmp6") if l.startswith("Udp6"))
            return {k: int(values["Udp6" + k]) for k in ("InCsumErrors", "RcvbufErrors")}
        lines = [l.split() for l in open("/proc/net/snmp") if l.startswith("Udp:")]
        return {k: int(lines[1][lines[0].index(k)]) for k in ("InCsumErrors", "RcvbufErrors")}
    r0 = kernel_rejects()
    s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, 33, 256 << 20)  # SO_RCVBUFFORCE: the sink must not be the bottleneck
    s.setsockopt(socket.SOL_SOCKET, 35, 1)  # SO_TIMESTAMPNS: arrival times stamped by the kernel
    s.bind(("::" if v6 else "0.0.0.0", port))
    s.setblocking(False)
    print("ready", flush=True)
    seqs, times, expected, rejects = [], [], None, {}
    end = time.monotonic() + limit
    anc = socket.CMSG_SPACE(16)
    stdin = sys.stdin.fileno()
    while (left := end - time.monotonic()) > 0:
        if expected is not None:
            r1 = kernel_rejects()
            rejects = {k: r1[k] - r0[k] for k in r1}
            if len(seqs) + sum(rejects.values()) >= expected:
                break
        ready, _, _ = select.select([s] + ([stdin] if expected is None else []), [], [], min(left, 0.1))
        if stdin in ready:
            line = sys.stdin.readline()
            if not line:
                break
            expected = int(line)
        while s in ready:
            try:
                data, cmsgs, _, _ = s.recvmsg(65536, anc)
            except BlockingIOError:
                break
            sec, nsec = struct.unpack("=qq", cmsgs[0][2][:16]) if cmsgs else (time.time(), 0)
            seqs.append(int(data.split(b" ", 1)[0]))
            times.append(sec + nsec / 1e9)
    r1 = kernel_rejects()
    print(json.dumps({"seqs": seqs, "times": times, "csum_errors": r1["InCsumErrors"] - r0["InCsumErrors"],
                      "rcvbuf_errors": r1["RcvbufErrors"] - r0["RcvbufErrors"]}), flush=True)
    """
)

# Sends `n` datagrams "<seq> xxxx..." of `size` bytes to dst:port at `rate` per second (0 = flat out).
_SOURCE = textwrap.dedent(
    """
    import socket, sys, time
    dst, port, n, size, rate = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
    s = socket.socket(socket.AF_INET6 if ":" in dst else socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
    pad = b"x" * size
    t0 = time.perf_counter()
    sent = 0
    for i in range(n):
        if rate:
            due = t0 + i / rate
            while time.perf_counter() < due:
                pass
        msg = (b"%d " % i + pad)[:size]
        while True:
            try:
                s.sendto(msg, (dst, port))
                sent += 1
                break
            except BlockingIOError:
                time.sleep(0.0005)
            except OSError:
                break
    print(sent, time.perf_counter() - t0, flush=True)
    """
)

# UDP echo server / RTT probe (one probe at a time; null for a probe with no answer within 10 s).
_ECHO = textwrap.dedent(
    """
    import socket, sys
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", int(sys.argv[1])))
    print("ready", flush=True)
    while True:
        data, addr = s.recvfrom(2048)
        s.sendto(data, addr)
    """
)
_RTT = textwrap.dedent(
    """
    import json, socket, sys, time
    dst, port, n, gap = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(10.0)
    rtts = []
    for i in range(n):
        t = time.perf_counter()
        s.sendto(b"%d" % i, (dst, port))
        while True:
            try:
                data = s.recv(2048)
            except (TimeoutError, socket.timeout):
                data = None
                break
            if data == b"%d" % i:
                break
        rtts.append(None if data is None else (time.perf_counter() - t) * 1000.0)
        time.sleep(gap)
    print(json.dumps(rtts), flush=True)
    """
)

PORT = 9999
FRAME_PAYLOAD = 1472  # one full 1514-byte Ethernet frame per datagram
FRAME_PAYLOAD6 = 1452  # the same over IPv6 (a 40-byte header)
RELAY_WAIT = 30.0  # seconds to wait for the relay to have read and sent every frame (normally ms)


class RelayLab(NamedTuple):
    lab: Lab
    ctl: LabControl
    control: str
    proc: subprocess.Popen[str]


class Flow(NamedTuple):
    got: dict[str, Any]  # what the sink received (see _SINK)
    st: dict[str, int]  # the relay's counters for the direction, this flow only
    sent: int  # datagrams the source sent
    secs: float  # how long the source took to send them


@pytest.fixture
def relay_lab(fresh_lab: Lab) -> Iterator[RelayLab]:
    """A fresh lab whose router forwards through the impairment relay (seed 1), and a LabControl."""
    tmp = tempfile.mkdtemp(prefix="rtimp")
    control = os.path.join(tmp, "c.sock")
    proc = start_relay(fresh_lab, control, seed=1)
    ctl = LabControl(control)
    try:
        yield RelayLab(fresh_lab, ctl, control, proc)
    finally:
        ctl.close()
        fresh_lab.stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)


def _sink(lab: Lab, ns: str, limit: float = 60.0, family: int = 4) -> subprocess.Popen[str]:
    proc = lab.popen(ns, [sys.executable, "-c", _SINK, str(PORT), str(limit), str(family)],
                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


def _sink_result(lab: Lab, proc: subprocess.Popen[str], expected: int, timeout: float = 90.0) -> dict[str, Any]:
    """Tell the sink how many datagrams to account for; its report once it has."""
    out, _ = proc.communicate(f"{expected}\n", timeout=timeout)
    lab.stop(proc)
    return dict(json.loads(out.strip().splitlines()[-1]))


def _source_argv(dst: str, n: int, size: int = FRAME_PAYLOAD, rate: float = 20_000) -> list[str]:
    return [sys.executable, "-c", _SOURCE, dst, str(PORT), str(n), str(size), str(rate)]


def _send(lab: Lab, ns: str, dst: str, n: int, size: int = FRAME_PAYLOAD, rate: float = 20_000) -> tuple[int, float]:
    res = lab.run(ns, _source_argv(dst, n, size, rate), capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    sent, secs = res.stdout.split()
    return int(sent), float(secs)


def _relay_done(rl: RelayLab, direction: str, before: dict[str, int], sent: int) -> dict[str, int]:
    """Wait until the relay has read (or the kernel has dropped, full socket buffer: ``rx_drops``) all
    ``sent`` frames of ``direction`` and it holds none back; return its counters for them (the difference
    to ``before``; queue_max as it is)."""
    deadline = time.monotonic() + RELAY_WAIT
    while True:
        after = rl.ctl.state()["stats"][direction]
        seen = after["frames_in"] + after["rx_drops"] - before["frames_in"] - before["rx_drops"]
        if seen >= sent and after["queued"] == 0:
            break
        assert time.monotonic() < deadline, (
            f"the relay saw {seen} of {sent} frames and still holds {after['queued']} after {RELAY_WAIT:.0f} s"
        )
        time.sleep(0.02)
    delta = {k: after[k] - before[k] for k in after if k not in ("queue_len", "queue_max", "queued")}
    delta["queue_max"] = after["queue_max"]
    return delta


def _ends(rl: RelayLab, direction: str, family: int = 4) -> tuple[str, str, str]:
    """(source namespace, sink namespace, sink address) for a flow in ``direction`` ("up": client -> server)."""
    lab = rl.lab
    if direction == "up":
        return lab.client_ns, lab.server_ns, lab.server_ip6 if family == 6 else lab.server_ip
    return lab.server_ns, lab.client_ns, lab.client_ip6 if family == 6 else lab.client_ip


def _flow(rl: RelayLab, direction: str, n: int, exact: bool = True, family: int = 4, **kw: Any) -> Flow:
    """Send n datagrams in ``direction``; every frame the relay forwarded is accounted for at the sink.
    ``exact``: the relay must have read every frame (none dropped by the kernel before it could).
    ``family`` 6: over IPv6 (a dual-stack lab), 1514-byte frames unless ``size`` says otherwise."""
    src_ns, dst_ns, dst_ip = _ends(rl, direction, family)
    if family == 6:
        kw.setdefault("size", FRAME_PAYLOAD6)
    before = rl.ctl.state()["stats"][direction]
    sink = _sink(rl.lab, dst_ns, family=family)
    try:
        sent, secs = _send(rl.lab, src_ns, dst_ip, n, **kw)
        st = _relay_done(rl, direction, before, sent)
        got = _sink_result(rl.lab, sink, st["frames_out"])
    finally:
        rl.lab.stop(sink)
    assert got["rcvbuf_errors"] == 0, "the sink's receive buffer overflowed: it, not the relay, lost frames"
    if exact:
        assert st["rx_drops"] == 0, "the relay's receive buffer overflowed: frames were lost before any knob"
    return Flow(got, st, sent, secs)


def _rtts(rl: RelayLab, n: int = 30, gap: float = 0.02) -> list[float]:
    """Round-trip times (ms) of ``n`` UDP probes, one at a time, client -> server -> client."""
    lab = rl.lab
    echo = lab.popen(lab.server_ns, [sys.executable, "-c", _ECHO, str(PORT)], stdout=subprocess.PIPE, text=True)
    try:
        assert echo.stdout is not None and echo.stdout.readline().strip() == "ready"
        res = lab.run(lab.client_ns, [sys.executable, "-c", _RTT, lab.server_ip, str(PORT), str(n), str(gap)],
                      capture_output=True, text=True, timeout=60 + 10 * n)
        assert res.returncode == 0, res.stderr
        rtts = json.loads(res.stdout)
        assert None not in rtts, f"probes without an answer within 10 s: {rtts}"
        return list(rtts)
    finally:
        lab.stop(echo)


def _start_server(lab: Lab, root: Path, *extra: str) -> subprocess.Popen[str]:
    server = lab.popen(lab.server_ns, [sys.executable, "-m", "rawtui.lab.server", "--root", str(root),
                                       "--port", "8080", *extra], stdout=subprocess.PIPE, text=True, env=child_env())
    assert server.stdout is not None and server.stdout.readline().startswith("ready")
    return server


# ---------------------------------------------------------------------------------------------------
# knobs, measured in the lab


@lab_test
def test_relay_forwards_exactly_and_lab_still_routes(relay_lab: RelayLab) -> None:
    """No knobs: every frame crosses the router once (the kernel's forwarding is off), in order."""
    rl = relay_lab
    assert rl.lab.ping("client", rl.lab.server_ip)
    assert rl.lab.ping("client", rl.lab.router_client_ip)  # the router's own address is not relayed
    forward = rl.lab.run(rl.lab.router_ns, ["cat", "/proc/sys/net/ipv4/ip_forward"], capture_output=True, text=True)
    assert forward.stdout.strip() == "0"
    got, st, sent, _ = _flow(rl, "up", 5000)
    assert sent == 5000
    assert got["seqs"] == list(range(5000))
    assert st["frames_in"] == st["frames_out"] == 5000
    assert st["segmented"] == 0 and st["csum_fixed"] == 0  # offloads are off: frames are wire-sized
    rl.lab.stop(rl.proc)
    forward = rl.lab.run(rl.lab.router_ns, ["cat", "/proc/sys/net/ipv4/ip_forward"], capture_output=True, text=True)
    assert forward.stdout.strip() == "1"  # restored when the relay exits
    assert rl.lab.ping("client", rl.lab.server_ip)


@lab_test
def test_relay_copes_with_offloads_left_on(fresh_lab: Lab, tmp_path: Path) -> None:
    """Without prepare_lab the server's TSO super-frames and offloaded checksums reach the relay: it splits
    them like GSO and completes the checksums, so a 1 % loss still acts on wire-sized frames."""
    lab = fresh_lab
    control = os.path.join(tempfile.mkdtemp(prefix="rtimp"), "c.sock")
    relay = start_relay(lab, control, seed=2, prepare=False)
    make_file(tmp_path / "8m.bin", 8 << 20, seed=3)
    server = _start_server(lab, tmp_path)
    try:
        with LabControl(control) as ctl:
            ctl.set("down", loss=1)
            out = tmp_path / "out.bin"
            res = lab.run(lab.client_ns, [require_tool("curl"), "-s", "-o", str(out),
                                          f"http://{lab.server_ip}:8080/8m.bin"], timeout=120)
            assert res.returncode == 0
            assert sha256_file(out) == sha256_file(tmp_path / "8m.bin")
            down = ctl.state()["stats"]["down"]
        assert down["segmented"] > 0
        assert down["lost"] > 0 and down["send_errors"] == 0
        assert down["frames_in"] >= (8 << 20) // 1448  # counted after splitting: wire-sized frames
    finally:
        lab.stop(server)
        lab.stop(relay)
        shutil.rmtree(os.path.dirname(control), ignore_errors=True)


@lab_test
@pytest.mark.parametrize("direction", ["up", "down"])
def test_loss_2_percent(relay_lab: RelayLab, direction: str) -> None:
    relay_lab.ctl.set(direction, loss=2)
    got, st, sent, _ = _flow(relay_lab, direction, 10_000)
    lost = sent - len(got["seqs"])
    assert lost == st["lost"], "what went missing is exactly what the relay dropped"
    assert 150 <= lost <= 250, f"2 % +- 0.5 % of 10,000 frames, got {lost}"
    assert got["seqs"] == sorted(got["seqs"])


@lab_test
def test_seed_replays_the_same_drops(relay_lab: RelayLab) -> None:
    """The seed command restarts the random choices: the same seed drops the same frames of a flow again
    (the benchmark gives curl and rawtui one loss pattern this way); another seed drops others."""
    relay_lab.ctl.set("up", loss=10)

    def lost_after(seed: int) -> set[int]:
        relay_lab.ctl.seed(seed)
        got, _, sent, _ = _flow(relay_lab, "up", 2000)
        return set(range(sent)) - set(got["seqs"])

    first = lost_after(11)
    assert 100 <= len(first) <= 300
    assert lost_after(11) == first
    assert lost_after(12) != first
    with pytest.raises(ControlError, match="whole number"):
        relay_lab.ctl.request({"cmd": "seed", "seed": "x"})


@lab_test
def test_delay_adds_40ms_to_rtt(relay_lab: RelayLab) -> None:
    rl = relay_lab
    rl.ctl.set("down", delay_ms=40)
    rl.ctl.delays(clear=True)
    rtts = _rtts(rl)
    chosen = rl.ctl.delays()
    # The relay's decisions: one per echo reply (the only frames going down), each exactly the knob, and
    # none for the requests going up.
    assert chosen == {"down": [40.0] * len(rtts), "up": []}
    # The relay holds each reply at least 40 ms after it arrived, which is after its probe left: no RTT
    # is shorter (same clock, CLOCK_MONOTONIC, in both processes; 0.01 ms for float rounding).
    assert min(rtts) >= 40.0 - 0.01
    # The delay is added once, not twice (both directions, or twice per frame). Wide on purpose: on a
    # loaded machine any probe can wait for a CPU, and the median of 30 shrugs off a few that do.
    assert statistics.median(rtts) < 80, rtts


@lab_test
def test_jitter_spreads_delay_uniformly(relay_lab: RelayLab) -> None:
    rl = relay_lab
    rl.ctl.set("down", delay_ms=40, jitter_ms=10)
    rl.ctl.delays(clear=True)
    rtts = _rtts(rl, n=60, gap=0.03)
    chosen = rl.ctl.delays()["down"]
    assert len(chosen) == len(rtts) == 60  # one decision per echo reply
    # The distribution of the delays the relay chose: uniform on 40 +- 10 ms.
    assert all(30.0 <= d <= 50.0 for d in chosen), chosen
    assert 37.0 <= statistics.mean(chosen) <= 43.0  # the mean of 60 draws: sd 0.75 ms
    assert 4.5 <= statistics.stdev(chosen) <= 7.0  # 20 / sqrt(12) = 5.77 ms; sd of the estimate ~0.33
    quarters = [sum(1 for d in chosen if 30 + 5 * q <= d < 35 + 5 * q) for q in range(4)]
    quarters[3] += chosen.count(50.0)
    assert all(5 <= c <= 25 for c in quarters), quarters  # 15 expected in each 5 ms band, sd 3.4
    # What was measured: no reply came back sooner than the delay chosen for it (in order: jitter
    # never reorders, and the probes go one at a time).
    assert all(rtt >= d - 0.01 for rtt, d in zip(rtts, chosen, strict=True)), list(zip(rtts, chosen, strict=True))


@lab_test
def test_rate_20mbit_with_curl(relay_lab: RelayLab, tmp_path: Path) -> None:
    lab = relay_lab.lab
    make_file(tmp_path / "5m.bin", 5 << 20)
    server = _start_server(lab, tmp_path)
    try:
        relay_lab.ctl.set("down", rate_bps=20_000_000, queue=100)
        res = lab.run(lab.client_ns, [require_tool("curl"), "-s", "-o", "/dev/null", "-w", "%{speed_download}",
                                      f"http://{lab.server_ip}:8080/5m.bin"], capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, res.stderr
        mbit = float(res.stdout) * 8 / 1e6
        # Never faster than the link: the relay serialises every whole frame at 20 Mbit/s, and curl's
        # time includes all of that schedule (its payload rate is at most 20 * 1448 / 1514 = 19.1).
        assert mbit <= 20.0, f"curl measured {mbit:.2f} Mbit/s through a 20 Mbit/s link"
        # Not throttled further: wide, because a relay that waits for a CPU sends late (its schedule
        # catches up, but the transfer's end may slip).
        assert mbit >= 14.0, f"curl measured {mbit:.2f} Mbit/s through a 20 Mbit/s link"
        st = relay_lab.ctl.state()["stats"]["down"]
        assert 0 < st["queue_max"] <= 100
        assert st["frames_out"] >= (5 << 20) // 1448
    finally:
        lab.stop(server)


@lab_test
def test_rate_and_queue_with_udp(relay_lab: RelayLab) -> None:
    """A burst into a 1 Mbit/s link with a 50-frame queue: the queue fills, the rest is dropped at its tail,
    and what gets through leaves at the link's rate."""
    relay_lab.ctl.set("up", rate_bps=1_000_000, queue=50)
    got, st, sent, _ = _flow(relay_lab, "up", 500, rate=0)
    n = len(got["seqs"])
    assert n == st["frames_out"], "what arrived is what the relay let through"
    assert st["queue_drops"] == sent - n, "and the rest was dropped at the queue's tail"
    assert st["queue_max"] == 50
    # The queue's 50 frames, plus one frame per 12.1 ms while the burst came in: a few when the relay
    # reads the burst at once (usually 0-6), more if it was descheduled in the middle of it.
    assert 50 <= n <= 100, n
    # The link's rate, from the kernel's arrival stamps: the median gap, which ignores the bunches a late
    # relay sends when it catches up with its schedule. Wide (+-20 %) for the same reason.
    frame_time = 1514 * 8 / 1_000_000
    gap = statistics.median(b - a for a, b in zip(got["times"], got["times"][1:], strict=False))
    assert 0.8 * frame_time <= gap <= 1.2 * frame_time, f"{1514 * 8 / gap / 1e6:.3f} Mbit/s"


@lab_test
def test_reorder_2_percent(relay_lab: RelayLab) -> None:
    relay_lab.ctl.set("up", reorder=2)
    got, st, sent, _ = _flow(relay_lab, "up", 10_000)
    seqs = got["seqs"]
    assert sorted(seqs) == list(range(sent)), "reordering loses nothing"
    late = 0
    top = -1
    for s in seqs:
        if s < top:
            late += 1
        top = max(top, s)
    # Every late frame is one the relay held back; a held frame released by the time limit before later
    # frames passed it (the source paused) may still arrive in order.
    assert st["reordered"] - st["reorder_expired"] <= late <= st["reordered"]
    assert 150 <= st["reordered"] <= 250, f"2 % +- 0.5 % of 10,000 frames held back, got {st['reordered']}"
    # each late frame was overtaken by REORDER_GAP later ones
    pos = {s: i for i, s in enumerate(seqs)}
    displaced = [pos[s] - s for s in seqs if pos[s] > s]
    assert statistics.median(displaced) == REORDER_GAP


@lab_test
def test_duplicate_2_percent(relay_lab: RelayLab) -> None:
    relay_lab.ctl.set("up", dup=2)
    got, st, sent, _ = _flow(relay_lab, "up", 10_000)
    seqs = got["seqs"]
    dups = len(seqs) - len(set(seqs))
    assert set(seqs) == set(range(sent))
    assert dups == st["duplicated"]
    assert 150 <= dups <= 250, f"2 % +- 0.5 % of 10,000 frames duplicated, got {dups}"


@lab_test
def test_corrupt_2_percent_caught_by_checksums(relay_lab: RelayLab) -> None:
    """Corrupted frames are still routed (IP header intact) and the receiver's UDP checksum rejects them."""
    relay_lab.ctl.set("up", corrupt=2)
    got, st, sent, _ = _flow(relay_lab, "up", 10_000)
    missing = sent - len(got["seqs"])
    assert missing == st["corrupted"] == got["csum_errors"]
    assert 150 <= missing <= 250, f"2 % +- 0.5 % of 10,000 frames corrupted, got {missing}"


@lab_test
def test_blackout_drops_everything_for_n_seconds(relay_lab: RelayLab) -> None:
    """A blackout armed to start after exactly 500 of the source's frames (an Ethernet frame of a 100-byte
    UDP datagram is 142 bytes): the relay, not a clock, decides where it falls."""
    rl = relay_lab
    src_ns, dst_ns, dst_ip = _ends(rl, "up")
    before = rl.ctl.state()["stats"]["up"]
    reply = rl.ctl.request({"cmd": "arm", "dir": "up", "after_bytes": 500 * 142 - 1,
                            "then": {"cmd": "blackout", "seconds": 1.0, "dir": "up"}})
    assert reply["armed"] == {"down": 0, "up": 1}
    sink = _sink(rl.lab, dst_ns)
    source = rl.lab.popen(src_ns, _source_argv(dst_ip, 3000, size=100, rate=1000), stdout=subprocess.PIPE, text=True)
    try:
        out, _ = source.communicate(timeout=120)
        sent = int(out.split()[0])
        st = _relay_done(rl, "up", before, sent)
        got = _sink_result(rl.lab, sink, st["frames_out"])
    finally:
        rl.lab.stop(source)
        rl.lab.stop(sink)
    seqs, times = got["seqs"], got["times"]
    assert seqs == sorted(seqs)
    missing = sorted(set(range(sent)) - set(seqs))
    assert len(missing) == st["blackout_drops"] > 0
    assert missing == list(range(missing[0], missing[-1] + 1)), "one blackout: one run of missing frames"
    assert missing[0] == 500 and missing[-1] < sent - 1, "frames flowed before and after it"
    # The relay forwarded the last frame before the blackout before it began, and the first one after it
    # once it had ended: their arrivals are at least the blackout's 1 s apart (kernel timestamps; 10 ms for
    # clock slew). No upper bound: a source or relay waiting for a CPU just then makes the gap longer.
    i = seqs.index(missing[0] - 1)
    gap = times[i + 1] - times[i]
    assert gap >= 0.99, f"a 1 s blackout, the gap was {gap:.3f} s"
    assert rl.ctl.state()["knobs"]["up"]["blackout_s"] == 0


def _throughput(rl: RelayLab, families: tuple[int, ...]) -> dict[str, float]:
    """Frames per second through the relay, flat out, with no knob and with a 1 ms delay, per family."""
    results = {}
    for label in ("no knobs", "delay 1 ms"):
        for family in families:
            rl.ctl.reset()
            if label != "no knobs":
                rl.ctl.set("up", delay_ms=1)
            got, st, _sent, _ = _flow(rl, "up", 60_000, exact=False, rate=0, family=family)  # flat out: may overflow
            times = got["times"]
            results[f"IPv{family} {label}"] = (len(times) - 1) / (times[-1] - times[0])
            assert st["frames_out"] == len(got["seqs"])
    return results


def _print_throughput(capsys: pytest.CaptureFixture[str], results: dict[str, float]) -> None:
    with capsys.disabled():
        print("\nrelay throughput (1514-byte frames): "
              + ", ".join(f"{k}: {v / 1000:.0f}k frames/s = {v * 1514 * 8 / 1e9:.2f} Gbit/s" for k, v in results.items()))


@lab_test
def test_relay_throughput(relay_lab: RelayLab, capsys: pytest.CaptureFixture[str]) -> None:
    """How many frames per second the relay forwards when nothing limits it (reported, with a low floor:
    the sender and the relay share the machine's cores with everything else)."""
    results = _throughput(relay_lab, (4,))
    _print_throughput(capsys, results)
    # 60-120k frames/s on an idle 2-core machine; the floor only catches a relay that waits per frame
    # (a scheduler tick each would be ~1k/s), with room for a machine whose other core is busy.
    assert results["IPv4 no knobs"] >= 5_000


@lab_test
def test_relay_throughput_both_families(fresh_lab6: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    """The same measurement on a dual-stack lab, IPv4 and IPv6 flows through one relay in the same run
    (their ratio is the number to read: the machine's load moves both)."""
    tmp = tempfile.mkdtemp(prefix="rtimp")
    control = os.path.join(tmp, "c.sock")
    proc = start_relay(fresh_lab6, control, seed=1)
    try:
        with LabControl(control) as ctl:
            results = _throughput(RelayLab(fresh_lab6, ctl, control, proc), (4, 6))
    finally:
        fresh_lab6.stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)
    _print_throughput(capsys, results)
    assert results["IPv6 no knobs"] >= 5_000 and results["IPv4 no knobs"] >= 5_000


@lab_test
def test_control_channel_events_and_errors(relay_lab: RelayLab) -> None:
    """Knob changes reach a LabChannel as LabKnobs, counters as LabStats, publications as-is; bad commands
    come back as errors, never break the relay."""
    ch = LabChannel(relay_lab.control)
    try:
        with pytest.raises(ControlError, match="percentage"):
            relay_lab.ctl.set("down", loss=120)
        with pytest.raises(ControlError, match="unknown knob"):
            relay_lab.ctl.set("down", lossy=1)
        with pytest.raises(ControlError, match="dir"):
            relay_lab.ctl.set("sideways", loss=1)
        state = relay_lab.ctl.set("both", loss=1.5, delay_ms=20)
        assert state["down"]["loss"] == state["up"]["loss"] == 1.5
        relay_lab.ctl.announce({"name": "x", "title": "T", "explanation": "E", "look_for": "L"})
        pub = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        pub.connect(relay_lab.control)
        pub.sendall(b'{"type":"tcp_info","cwnd_bytes":14480,"ssthresh_bytes":null,"rtt_ms":1.0,"rttvar_ms":0.5,'
                    b'"retrans_total":0,"pacing_bps":1,"delivery_bps":2,"mss":1448,"peer_port":5}\n')
        assert relay_lab.lab.ping("client", relay_lab.lab.server_ip)
        events: list[Any] = []
        wanted = {LabKnobs, LabScenario, ServerTcpInfo, LabStats}
        deadline = time.monotonic() + 20  # a wait, not a bound: normally met within 0.25 s
        while time.monotonic() < deadline and not wanted <= {type(e) for e in events}:
            if select.select([ch.fileno()], [], [], 0.2)[0]:
                events += ch.poll(time.monotonic())
        pub.close()
        kinds = {type(e) for e in events}
        assert wanted <= kinds, kinds
        knobs = [e for e in events if isinstance(e, LabKnobs)][-1]
        assert knobs.down["loss"] == 1.5 and "loss 1.5 %" in knobs.note
        ti = next(e for e in events if isinstance(e, ServerTcpInfo))
        assert ti.cwnd_bytes == 14480 and ti.ssthresh_bytes is None and ti.peer_port == 5
        # the lab goes away: one warning, then the channel is quiet (no busy loop)
        relay_lab.lab.stop(relay_lab.proc)
        got: list[Any] = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not any(isinstance(e, Info) for e in got):
            if select.select([ch.fileno()], [], [], 0.2)[0]:
                got += ch.poll(time.monotonic())
        assert [e for e in got if isinstance(e, Info)], got
        assert not select.select([ch.fileno()], [], [], 0.2)[0]
    finally:
        ch.close()


@lab_test
def test_server_reports_tcp_info(relay_lab: RelayLab, tmp_path: Path) -> None:
    """The lab server samples TCP_INFO while it sends and publishes it: cwnd, RTT (with the delay), bytes."""
    lab = relay_lab.lab
    make_file(tmp_path / "2m.bin", 2 << 20)
    sub = Subscription(relay_lab.control)
    server = _start_server(lab, tmp_path, "--report", relay_lab.control)
    try:
        relay_lab.ctl.set("down", delay_ms=20, rate_bps=50_000_000)
        res = lab.run(lab.client_ns, [require_tool("curl"), "-s", "-o", "/dev/null",
                                      f"http://{lab.server_ip}:8080/2m.bin"], timeout=60)
        assert res.returncode == 0
        samples: list[dict[str, Any]] = []
        # until the connection's last word (sampled when it ends: everything acknowledged)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(s["bytes_acked"] >= (2 << 20) for s in samples):
            msg = sub.next(timeout=1.0)
            if msg is not None and msg.get("type") == "tcp_info":
                samples.append(msg)
        assert max(s["bytes_acked"] for s in samples) >= (2 << 20)
        # The transfer takes at least 0.34 s (2 MiB at 50 Mbit/s) and the server samples every 10 ms:
        # ~35 samples; a sampler thread starved of CPU on a loaded machine still gets a few turns.
        assert len(samples) >= 5
        # Slow start from the initial window of 10 segments: cwnd grows by at most what is acknowledged
        # (whatever the moment each sample was taken; 4 segments of slack for short ones, e.g. headers).
        for s in samples:
            assert s["cwnd_bytes"] <= 14 * s["mss"] + s["bytes_acked"], s
        assert max(s["cwnd_bytes"] for s in samples) > 20 * samples[0]["mss"]
        assert max(s["rtt_ms"] for s in samples) >= 20
    finally:
        sub.close()
        lab.stop(server)


# ---------------------------------------------------------------------------------------------------
# the router's reports (router_action) on real TCP connections

# A TCP client in the client namespace, driven line by line from stdin: connects and prints its port,
# sends the request on "go", then prints how many bytes of response it read until the server closed.
_CLIENT = textwrap.dedent(
    """
    import socket, sys
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=60)
    print(s.getsockname()[1], flush=True)
    sys.stdin.readline()
    s.sendall(sys.argv[3].encode())
    n = 0
    while data := s.recv(65536):
        n += len(data)
    print(n, flush=True)
    """
)


def _next_action(sub: Subscription, data: bool = False, **want: Any) -> dict[str, Any]:
    """The next router_action whose fields include ``want`` (and a payload if ``data``); a wait, not a
    bound: normally at once."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        msg = sub.next(timeout=1.0)
        if (msg is not None and msg.get("type") == "router_action" and want.items() <= msg.items()
                and (msg["length"] or not data)):
            return msg
    raise AssertionError(f"no router_action with {want} within 30 s")


@lab_test
def test_router_reports_relative_seqs_of_a_connection_opened_on_the_fast_path(relay_lab: RelayLab,
                                                                               tmp_path: Path) -> None:
    """The SYN and SYN-ACK cross the router with no knob on (the relay's fast path: no Pipe), yet a drop
    later in the connection is reported relative to each side's ISN: the request at seq 1 going up, the
    response at seq 1 coming down (tshark's numbering), with the connection's ports."""
    lab = relay_lab.lab
    make_file(tmp_path / "f.bin", 20_000)
    server = _start_server(lab, tmp_path)
    sub = Subscription(relay_lab.control)
    request = "GET /f.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    client = lab.popen(lab.client_ns, [sys.executable, "-c", _CLIENT, lab.server_ip, "8080", request],
                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert client.stdin is not None and client.stdout is not None
        port = int(client.stdout.readline())  # connected: the handshake is over
        relay_lab.ctl.set("up", loss=100)
        client.stdin.write("go\n")
        client.stdin.flush()
        up = _next_action(sub, direction="up", action="drop")
        assert (up["seq"], up["length"], up["absolute"], up["flags"]) == (1, len(request), False, "PA")
        assert (up["sport"], up["dport"], up["note"]) == (port, 8080, "loss 100 %")
        relay_lab.ctl.set("down", loss=100)  # before the request's retransmission may pass
        relay_lab.ctl.set("up", loss=0)
        # the server's ACK of the request may come first (seq 1 too, no payload), then the response
        down = _next_action(sub, True, direction="down", action="drop", seq=1, absolute=False)
        assert (down["sport"], down["dport"]) == (8080, port)
        relay_lab.ctl.reset()
        out, _ = client.communicate(timeout=60)
        assert int(out.split()[-1]) > 20_000  # the whole response (and its header) arrived after all
    finally:
        sub.close()
        lab.stop(client)
        lab.stop(server)


COUNTERS = {"drop": "lost", "blackout": "blackout_drops", "queue-drop": "queue_drops", "duplicate": "duplicated",
            "reorder": "reordered", "corrupt": "corrupted"}  # each action, and the relay's counter for it
assert tuple(COUNTERS) == ACTIONS


def _covered(ranges: list[tuple[int, int]], start: int, end: int) -> bool:
    """Whether [start, end) lies within the union of ``ranges`` ([a, b) pairs)."""
    reach = start
    for a, b in sorted(ranges):
        if a > reach:
            break
        reach = max(reach, b)
        if reach >= end:
            return True
    return reach >= end


@lab_test
def test_router_actions_in_rawtuis_log_match_the_relays_counters(relay_lab: RelayLab, tmp_path: Path,
                                                                 run_rawtui: Any) -> None:
    """A real download through every knob at once (loss, corruption, duplication, reordering, a full
    bottleneck queue, and a blackout armed at 1 MiB): the RouterAction events in rawtui's NDJSON log (read
    back through the replay) are, per direction and action, exactly as many as the relay's counters say;
    every data frame the router dropped (or corrupted) is, at its relative seq, data rawtui received
    after all; an ACK it dropped carries one of rawtui's own sequence numbers. The knobs are reset once
    3.5 MiB have passed, so nothing is dropped after rawtui has stopped listening."""
    from rawtui.events import SegmentIn, SegmentOut
    from rawtui.recording.ndjson import NdjsonReplay

    lab = relay_lab.lab
    size = 4 << 20
    make_file(tmp_path / "4m.bin", size)
    server = _start_server(lab, tmp_path, "--report", relay_lab.control)
    try:
        relay_lab.ctl.set("down", loss=2, corrupt=0.5, dup=0.5, reorder=0.5, rate_bps=100_000_000, queue=30)
        relay_lab.ctl.request({"cmd": "arm", "dir": "down", "after_bytes": 1 << 20,
                               "then": {"cmd": "blackout", "seconds": 0.3}})
        relay_lab.ctl.request({"cmd": "arm", "dir": "down", "after_bytes": 3584 << 10, "then": {"cmd": "reset"}})
        res = run_rawtui(lab, f"http://{lab.server_ip}:8080/4m.bin", "-o", "out.bin", "--headless",
                         "--lab-control", relay_lab.control, "--events", "e.ndjson")
        assert res.returncode == 0, res.stderr[-3000:]
        stats = relay_lab.ctl.state()["stats"]
    finally:
        lab.stop(server)
    assert sha256_file(tmp_path / "out.bin") == sha256_file(tmp_path / "4m.bin")
    events = list(NdjsonReplay(tmp_path / "e.ndjson", speed=None).events())
    actions = [e for e in events if isinstance(e, RouterAction)]
    for d in ("down", "up"):
        got = {a: sum(1 for e in actions if e.direction == d and e.action == a) for a in COUNTERS}
        assert got == {a: stats[d][name] for a, name in COUNTERS.items()}, (d, stats[d])
    assert not any(e.absolute for e in actions)
    down = {a: stats["down"][name] for a, name in COUNTERS.items()}
    assert all(down.values()), down  # every kind of action happened
    received = [(e.seq, e.seq + e.length) for e in events if isinstance(e, SegmentIn) and e.length]
    lost = [e for e in actions if e.direction == "down" and e.length and e.action in ("drop", "blackout",
                                                                                       "queue-drop", "corrupt")]
    assert lost
    for e in lost:
        assert e.seq + e.length <= size + 1000, e  # a relative number (the response header is < 1000 bytes)
        assert _covered(received, e.seq, e.seq + e.length), e
    ours = {e.seq for e in events if isinstance(e, SegmentOut)}
    assert all(e.seq in ours for e in actions if e.direction == "up"), [e for e in actions if e.direction == "up"]
    assert all((e.sport, e.dport) == (8080, actions[0].dport) for e in actions if e.direction == "down")


# ---------------------------------------------------------------------------------------------------
# no root needed: the Pipe on a fake clock, frame surgery, parsing, the control protocol


def _frame(payload: bytes = b"x" * 100, proto: int = 17) -> bytearray:
    """An Ethernet + IPv4 + UDP/TCP frame with correct checksums."""
    from rawtui.wire.checksum import internet_checksum

    l4 = (struct_pack_udp(len(payload)) if proto == 17 else struct_pack_tcp()) + payload
    ip = bytearray(b"\x45\x00" + (20 + len(l4)).to_bytes(2, "big") + b"\x12\x34\x40\x00\x40" + bytes([proto])
                   + b"\x00\x00" + bytes([10, 77, 2, 2, 10, 77, 1, 2]))
    c = internet_checksum(bytes(ip))
    ip[10:12] = c.to_bytes(2, "big")
    f = bytearray(b"\xaa" * 6 + b"\xbb" * 6 + b"\x08\x00") + ip + l4
    fix_l4_checksum(f)
    return f


def struct_pack_udp(n: int) -> bytes:
    return (9999).to_bytes(2, "big") + (9999).to_bytes(2, "big") + (8 + n).to_bytes(2, "big") + b"\0\0"


def struct_pack_tcp() -> bytes:
    return (80).to_bytes(2, "big") + (5555).to_bytes(2, "big") + (1000).to_bytes(4, "big") + (1).to_bytes(4, "big") \
        + bytes([0x50, 0x19]) + (512).to_bytes(2, "big") + b"\0\0\0\0"


def _l4_ok(f: bytearray) -> bool:
    from rawtui.wire.checksum import pseudo_header_residue

    total = int.from_bytes(f[16:18], "big")
    seg = bytes(f[34 : 14 + total])
    return verify(seg, pseudo_header_residue(bytes(f[26:30]), bytes(f[30:34]), f[23], len(seg)))


def test_pipe_loss_dup_reorder_counts() -> None:
    pipe = Pipe("down", random.Random(7))
    pipe.set_knobs(Knobs(loss=10, dup=5))
    out: list[bytearray] = []
    for i in range(20_000):
        pipe.push(bytearray(i.to_bytes(4, "big")), i * 1e-4)
        pipe.due(i * 1e-4, out)
    assert pipe.stats["lost"] + len(out) - pipe.stats["duplicated"] == 20_000
    assert 1800 <= pipe.stats["lost"] <= 2200
    assert 800 <= pipe.stats["duplicated"] <= 1100


def test_pipe_delay_jitter_never_reorders() -> None:
    pipe = Pipe("up", random.Random(3))
    pipe.set_knobs(Knobs(delay_ms=40, jitter_ms=30))
    out: list[bytearray] = []
    t = 0.0
    for i in range(1000):
        pipe.push(bytearray(i.to_bytes(4, "big")), t)
        t += 0.001
    assert pipe.next_deadline is not None and pipe.next_deadline >= 0.010
    pipe.due(0.0099, out)
    assert out == []
    pipe.due(10.0, out)
    assert [int.from_bytes(f, "big") for f in out] == list(range(1000))


def test_pipe_reports_the_delay_it_chose_for_each_frame() -> None:
    """The delay log the relay's `delays` command returns: one entry per frame, the drawn delay (never
    below 0), and each frame leaves no earlier than its push time plus that delay."""
    pipe = Pipe("down", random.Random(5))
    pipe.push(bytearray(b"no knob"), 0.0)
    assert list(pipe.delays) == []
    pipe.set_knobs(Knobs(delay_ms=10, jitter_ms=20))
    release: dict[int, float] = {}
    out: list[bytearray] = []
    for i in range(2000):
        now = i * 0.01
        pipe.push(bytearray(i.to_bytes(4, "big")), now)
        pipe.due(now, out)
        release.update((int.from_bytes(f, "big"), now) for f in out)
        out.clear()
    pipe.due(1e9, out)
    release.update((int.from_bytes(f, "big"), 1e9) for f in out)
    delays = list(pipe.delays)
    assert len(delays) == 2000 and min(delays) == 0.0 and 29.0 < max(delays) <= 30.0
    assert 0.2 < delays.count(0.0) / 2000 < 0.3  # 10 +- 20 ms: a quarter of the draws are below 0
    # due() is called every 10 ms here, so a frame leaves at the first call at or after its time
    assert all(release[i] >= i * 0.01 + d / 1000 - 1e-9 for i, d in enumerate(delays))


def test_pipe_rate_is_a_serialising_link_with_a_drop_tail_queue() -> None:
    pipe = Pipe("down")
    pipe.set_knobs(Knobs(rate_bps=1_000_000, queue=10))
    for _ in range(15):
        pipe.push(bytearray(1250), 0.0)  # 10 ms each at 1 Mbit/s
    assert pipe.stats["queue_drops"] == 5
    out: list[bytearray] = []
    pipe.due(0.0101, out)
    assert len(out) == 1
    pipe.due(0.0501, out)
    assert len(out) == 5
    pipe.due(1.0, out)
    assert len(out) == 10


def test_pipe_reorder_holds_back_behind_gap_frames() -> None:
    pipe = Pipe("down", random.Random(1))
    pipe.set_knobs(Knobs(reorder=100))
    out: list[bytearray] = []
    pipe.push(bytearray(b"A"), 0.0)
    pipe.due(0.0, out)
    assert out == [] and pipe.stats["reordered"] == 1
    pipe.set_knobs(Knobs())
    for i in range(REORDER_GAP):
        pipe.push(bytearray(b"%d" % i), 0.0)
        pipe.due(0.0, out)
    assert out == [b"0", b"1", b"2", b"A"]
    pipe.set_knobs(Knobs(reorder=100))
    pipe.push(bytearray(b"B"), 1.0)
    pipe.due(1.0, out)
    pipe.due(1.0 + 0.051, out)  # nothing followed: released after the hold limit
    assert out[-1] == b"B"
    assert pipe.queued() == 0
    assert (pipe.stats["reordered"], pipe.stats["reorder_expired"]) == (2, 1)  # A passed, B expired


def test_pipe_blackout() -> None:
    pipe = Pipe("down")
    pipe.blackout(2.0, now=10.0)
    out: list[bytearray] = []
    pipe.push(bytearray(b"a"), 11.0)
    pipe.due(11.0, out)
    pipe.push(bytearray(b"b"), 12.5)
    pipe.due(12.5, out)
    assert out == [b"b"] and pipe.stats["blackout_drops"] == 1
    assert pipe.idle


def test_pipe_arm_fires_once_the_bytes_have_passed() -> None:
    pipe = Pipe("down")
    pipe.arm(250, {"cmd": "blackout", "seconds": 1})
    pipe.arm(1000, {"cmd": "set", "loss": 1})
    assert not pipe.idle
    out: list[bytearray] = []
    for i in range(3):  # 100 + 100 + 100 bytes: the third frame crosses 250
        pipe.push(bytearray(100), float(i))
        assert pipe.fired == ([] if i < 2 else [{"cmd": "blackout", "seconds": 1}])
    pipe.due(3.0, out)
    assert len(out) == 3, "the frame that crosses the mark still passes"
    pipe.fired.clear()
    for i in range(8):  # 700 left after the first three: the eighth frame crosses it
        pipe.push(bytearray(100), 4.0 + i)
    assert pipe.fired == [{"cmd": "set", "loss": 1}] and not pipe.armed
    pipe.due(20.0, out)
    assert pipe.idle


SERVER_IP, CLIENT_IP = bytes([10, 77, 2, 2]), bytes([10, 77, 1, 2])


def _tcp_frame(seq: int, payload: bytes = b"", flags: int = wtcp.ACK | wtcp.PSH, *, ack: int = 1,
               src: bytes = SERVER_IP, dst: bytes = CLIENT_IP, sport: int = 8080, dport: int = 40001) -> bytearray:
    """An Ethernet + IPv4 + TCP frame built with rawtui.wire (checksums filled, padded to 60 bytes)."""
    seg = wtcp.TcpSegment(sport, dport, seq, ack, flags, 512, payload=payload)
    ip = build_ipv4(src, dst, 6, build_tcp(seg, src, dst))
    return bytearray(build_ethernet(b"\xaa" * 6, b"\xbb" * 6, 0x0800, ip))


ISN = 0xFFFF_F000  # the server's ISN in these tests: its relative sequence numbers wrap past 2**32


def _synack(isn: int = ISN) -> bytearray:
    return _tcp_frame(isn, flags=wtcp.SYN | wtcp.ACK, ack=1001)


def test_pipe_reports_each_drop_with_the_relative_seq() -> None:
    """Random loss: one `drop` report per lost frame, with the sequence number relative to the ISN of
    the SYN-ACK the pipe forwarded (wrapping past 2**32), the payload length, flags, ports, the pipe's
    time and the knob; the frames that came out are exactly the others."""
    pipe = Pipe("down", random.Random(11))
    out: list[bytearray] = []
    pipe.push(_synack(), 0.0)
    pipe.set_knobs(Knobs(loss=10))
    sent = {}
    for i in range(2000):
        rel = 1 + 1448 * i
        pipe.push(_tcp_frame(ISN + rel, b"d" * 1448), 1.0 + i * 1e-3)
        sent[rel] = 1.0 + i * 1e-3
    pipe.due(10.0, out)
    arrived = {(int.from_bytes(f[38:42], "big") - ISN) & 0xFFFFFFFF for f in out}
    reports = pipe.actions
    assert len(reports) == pipe.stats["lost"] and 150 <= len(reports) <= 250
    assert {r["seq"] for r in reports} == set(sent) - arrived
    for r in reports:
        assert r == {"type": "router_action", "direction": "down", "action": "drop", "seq": r["seq"],
                     "length": 1448, "flags": "PA", "sport": 8080, "dport": 40001,
                     "router_t": round(sent[r["seq"]], 6), "note": "loss 10 %", "absolute": False}
    # they make RouterAction events as they are
    ev = message_to_event(reports[0], 2.5)
    assert isinstance(ev, RouterAction) and (ev.t, ev.seq, ev.note, ev.absolute) == (2.5, reports[0]["seq"],
                                                                                        "loss 10 %", False)


def test_pipe_reports_every_kind_of_action_as_its_counters_count_them() -> None:
    """Loss, corruption, duplication, the full queue, reordering and a blackout at once: per action, as
    many reports as the counter it bumps; a corrupted frame is reported with its seq before the flip."""
    pipe = Pipe("down", random.Random(2))
    out: list[bytearray] = []
    pipe.push(_synack(), 0.0)
    pipe.set_knobs(Knobs(loss=3, corrupt=3, dup=3, reorder=3, rate_bps=100_000_000, queue=20))
    sent: set[int] = set()
    now = 0.0
    for i in range(5000):
        if i == 2500:
            pipe.blackout(0.05, now)
        rel = 1 + 1000 * i
        sent.add(rel)
        pipe.push(_tcp_frame(ISN + rel, b"d" * 1000), now)
        pipe.due(now, out)
        now += 50e-6 if i % 400 < 200 else 150e-6  # bursts faster than 100 Mbit/s fill the queue
    pipe.due(now + 1.0, out)
    by_action = {a: [r for r in pipe.actions if r["action"] == a] for a in COUNTERS}
    for action, name in COUNTERS.items():
        assert len(by_action[action]) == pipe.stats[name] > 0, (action, pipe.stats)
    assert all(r["seq"] in sent and not r["absolute"] for r in pipe.actions)
    assert by_action["blackout"][0]["note"] == "blackout 0.05 s"
    assert by_action["queue-drop"][0]["note"] == "queue 20 frames full at 100 Mbit/s"
    assert by_action["reorder"][0]["note"] == f"reorder 3 %: held back behind {REORDER_GAP} frames"
    assert {r["note"] for r in by_action["corrupt"]} == {"corrupt 3 %: one bit flipped"}
    assert {r["note"] for r in by_action["duplicate"]} == {"dup 3 %"}
    times = [r["router_t"] for r in pipe.actions if r["action"] != "reorder"]
    assert times == sorted(times) and times[-1] < now


def test_pipe_reports_tcp_frames_only_and_absolute_seqs_without_a_syn() -> None:
    """UDP is counted, not reported; a connection whose SYN the pipe never saw keeps its absolute
    numbers (relative False); a new SYN on the same 4-tuple starts a new numbering; ``record`` off (the
    relay without a control socket): nothing is kept."""
    pipe = Pipe("up", random.Random(1))
    pipe.set_knobs(Knobs(loss=100))
    pipe.push(_frame(proto=17), 1.0)
    assert pipe.stats["lost"] == 1 and pipe.actions == []
    pipe.push(_tcp_frame(123_456, b"GET", src=CLIENT_IP, dst=SERVER_IP, sport=40001, dport=8080), 2.0)
    (r,) = pipe.actions
    assert (r["direction"], r["seq"], r["absolute"], r["length"], r["sport"], r["dport"]) == (
        "up", 123_456, True, 3, 40001, 8080)
    pipe.actions.clear()
    syn = _tcp_frame(5000, flags=wtcp.SYN, ack=0, src=CLIENT_IP, dst=SERVER_IP, sport=40001, dport=8080)
    pipe.push(syn, 3.0)  # dropped too, but learned first
    pipe.push(_tcp_frame(5001, b"GET", src=CLIENT_IP, dst=SERVER_IP, sport=40001, dport=8080), 4.0)
    assert [(r["seq"], r["flags"], r["length"], r["absolute"]) for r in pipe.actions] == [
        (0, "S", 0, False), (1, "PA", 3, False)]
    other_port = _tcp_frame(5001, b"GET", src=CLIENT_IP, dst=SERVER_IP, sport=40002, dport=8080)
    pipe.push(other_port, 5.0)
    assert pipe.actions[-1]["absolute"] is True
    quiet = Pipe("up", random.Random(1))
    quiet.record = False
    quiet.set_knobs(Knobs(loss=100))
    quiet.push(_tcp_frame(1, b"x"), 0.0)
    assert quiet.stats["lost"] == 1 and quiet.actions == []


def test_pipe_learns_isns_from_frames_it_only_forwards() -> None:
    """learn_isn: what the relay calls for a SYN that takes the fast path (no knob on): the pipe still
    numbers that connection's frames relative to it once a knob acts on them."""
    pipe = Pipe("down", random.Random(1))
    pipe.learn_isn(memoryview(_synack(7)))
    pipe.learn_isn(_tcp_frame(99, b"not a SYN"))  # ignored
    pipe.learn_isn(_frame(proto=17))  # ignored
    pipe.set_knobs(Knobs(loss=100))
    pipe.push(_tcp_frame(7 + 1 + 1448, b"d" * 1448), 1.0)
    assert [(r["seq"], r["absolute"]) for r in pipe.actions] == [(1449, False)]


def test_corrupt_flips_one_payload_bit_and_breaks_only_the_l4_checksum() -> None:
    rng = random.Random(5)
    for proto in (17, 6):
        for _ in range(200):
            f = _frame(bytes(range(256)) * 4, proto)
            orig = bytes(f)
            corrupt_frame(f, rng)
            diff = [i for i in range(len(f)) if f[i] != orig[i]]
            assert len(diff) == 1 and (f[diff[0]] ^ orig[diff[0]]).bit_count() == 1
            assert diff[0] >= 34 + (8 if proto == 17 else 20)  # payload only
            assert f[:34] == orig[:34]
            assert not _l4_ok(f)
    f = _frame(b"", 6)  # no payload: a header bit, still caught
    corrupt_frame(f, rng)
    assert not _l4_ok(f)


def test_segment_tcp_splits_a_super_frame_like_gso() -> None:
    big = _frame(bytes(range(256)) * 20, 6)  # 5120 bytes of payload, PSH+FIN set
    parts = segment_tcp(big, 1500)
    assert [len(p) for p in parts] == [1514, 1514, 1514, 14 + 40 + 5120 - 3 * 1460]
    assert b"".join(bytes(p[54:]) for p in parts) == bytes(big[54:])
    for i, p in enumerate(parts):
        assert _l4_ok(p)
        assert int.from_bytes(p[38:42], "big") == 1000 + 1460 * i
        assert bool(p[47] & 0x01) == (i == len(parts) - 1)  # FIN on the last one only


def test_parse_rate_and_ms() -> None:
    assert parse_rate("20mbit") == 20_000_000
    assert parse_rate("500kbit") == 500_000
    assert parse_rate("1G") == 1_000_000_000
    assert parse_ms("40ms") == 40 and parse_ms("0.5s") == 500 and parse_ms("40") == 40
    with pytest.raises(ImpairError):
        parse_rate("fast")
    with pytest.raises(ImpairError):
        Knobs().updated({"loss": -1})
    with pytest.raises(ImpairError):
        Knobs().updated({"delay_ms": float("nan")})


def test_parse_tcp_info_layout() -> None:
    import struct

    raw = bytearray(256)
    raw[1] = 3  # recovery
    struct.pack_into("=I", raw, 8 + 2 * 4, 1448)  # snd_mss
    struct.pack_into("=I", raw, 8 + 15 * 4, 25_000)  # rtt (us)
    struct.pack_into("=I", raw, 8 + 17 * 4, 0x7FFFFFFF)  # ssthresh: infinite
    struct.pack_into("=I", raw, 8 + 18 * 4, 42)  # cwnd
    struct.pack_into("=I", raw, 8 + 23 * 4, 7)  # total_retrans
    struct.pack_into("=Q", raw, 120, 123456)  # bytes_acked
    struct.pack_into("=I", raw, 228, 65536)  # snd_wnd
    struct.pack_into("=H", raw, 240, 2)  # total_rto
    d = parse_tcp_info(bytes(raw))
    assert (d["ca_state"], d["snd_mss"], d["rtt"], d["snd_cwnd"], d["total_retrans"]) == (3, 1448, 25_000, 42, 7)
    assert (d["bytes_acked"], d["snd_wnd"], d["total_rto"]) == (123456, 65536, 2)
    assert parse_tcp_info(bytes(raw[:104]))["bytes_acked"] == 0  # an older kernel's shorter struct


def test_control_hub_protocol_without_a_lab(tmp_path: Path) -> None:
    """The hub in a thread of its own, LabControl and LabChannel talking to it over a real unix socket."""
    path = str(tmp_path / "hub.sock")
    knobs = {"down": Knobs(), "up": Knobs()}

    def on_command(cmd: dict[str, Any]) -> dict[str, Any]:
        if cmd["cmd"] != "set":
            raise ImpairError(f"unknown command {cmd['cmd']!r}")
        changes = {k: v for k, v in cmd.items() if k not in ("cmd", "dir", "id")}
        knobs[cmd["dir"]] = knobs[cmd["dir"]].updated(changes)
        state = {d: k.to_dict() for d, k in knobs.items()}
        hub.set_knobs({"type": "knobs", **state, "note": "changed"})
        return {"knobs": state}

    hub = ControlHub(path, on_command)
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            r, w, _ = select.select(hub.fds(), hub.wfds(), [], 0.05)
            for fd in r:
                hub.handle(fd)
            for fd in w:
                hub.handle_write(fd)

    th = threading.Thread(target=loop, daemon=True)
    th.start()
    try:
        ch = LabChannel(path)
        ctl = LabControl(path)
        assert ctl.set("down", loss=3)["down"]["loss"] == 3
        with pytest.raises(ControlError, match="unknown command"):
            ctl.request({"cmd": "explode"})
        ch.send({"cmd": "set", "dir": "up", "delay_ms": 5})
        ch.send({"cmd": "set", "dir": "up", "loss": 999})  # refused: comes back as an Info warning
        events: list[Any] = []
        deadline = time.monotonic() + 20  # a wait, not a bound: normally met at once
        while time.monotonic() < deadline and len([e for e in events if isinstance(e, (LabKnobs, Info))]) < 3:
            if select.select([ch.fileno()], [], [], 0.1)[0]:
                events += ch.poll(1.5)
        assert next(e.down["loss"] for e in events if isinstance(e, LabKnobs)) == 3
        assert any(isinstance(e, LabKnobs) and e.up["delay_ms"] == 5 for e in events)
        assert any(isinstance(e, Info) and "percentage" in e.message for e in events)
        assert all(e.t == 1.5 for e in events)
        ctl.close()
        ch.close()
        missing = LabChannel(str(tmp_path / "nothing.sock"), connect_timeout=0.1)
        assert select.select([missing.fileno()], [], [], 0.1)[0]
        (warning,) = missing.poll(0.0)
        assert isinstance(warning, Info) and "unavailable" in warning.message
        assert not select.select([missing.fileno()], [], [], 0.05)[0]
        missing.close()
    finally:
        stop.set()
        th.join()
        hub.close()
