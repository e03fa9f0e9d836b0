"""Three witnesses of the server's retransmissions, per loss pattern: rawtui's classification (its
``peer_retransmit`` events and ``network_copies`` / ``network_late`` counters), the lab router's own log of
what it did to each frame (``router_action``, read here from the relay's control socket, not from rawtui),
and the server's TCP_INFO (``retrans_total``); plus tshark's analysis of rawtui's own pcap.

One download per pattern (random loss, a burst, tail loss, a blackout in both directions, duplication,
reordering), each through a relay with a fixed ``--seed``. Where the router acts is a point in the data
(knobs armed by bytes, see ``rawtui.lab.scenarios.Action``), never a moment on the clock, and nothing waits
for a time window: the relay's log is complete once it holds as many reports as the relay's counters
count, and the server's last TCP_INFO word is the one sampled after everything was acknowledged.

The relations checked are exact, per sequence number (relative, as tshark and the router number them).
With ``sends(s)`` the copies of ``s`` the server sent, which the three witnesses fix between them as
``arrivals(s) - router duplicates(s) + router drops(s)`` (arrivals read from rawtui's pcap):

- the server's ``retrans_total`` is ``sum(sends(s) - 1)`` (+ the SYN-ACKs the router dropped);
- rawtui reports one filling retransmission for each ``s`` the router dropped and whose later copy
  reached us, and one *repeat* for each further copy of the server's that reached us (data it had);
  never one where the server did not send twice;
- each copy the router made is a ``network_copies``; each original that came behind later frames (held
  back by the router, or overtaken in the kernel) is a ``network_late`` (even when the server's
  retransmission filled its hole first);
- where a receiver cannot see a resend by definition (the rest of a go-back-N after a timeout is, to it,
  in-order new data), the test says so and asserts the relation that does hold.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from conftest import child_env, require_tool

from rawtui import events as ev
from rawtui.lab.control import LabControl, Subscription
from rawtui.lab.impair import start_relay
from rawtui.lab.scenarios import MIB, load_events
from rawtui.lab.server import make_file, sha256_file
from rawtui.lab.topology import Lab
from rawtui.stack.tcp import M32, TcpConnection
from rawtui.wire.tcp import ACK, TcpOptions, TcpSegment, parse_tcp

lab_test = pytest.mark.lab

FRAME = 1514  # a full data frame on the lab's links (offloads off: 1448 bytes of payload)
WAIT = 60.0  # a bound on waiting for what must come (the relay's last reports, the server's last word)
COUNTERS = {"drop": "lost", "blackout": "blackout_drops", "queue-drop": "queue_drops", "duplicate": "duplicated",
            "reorder": "reordered", "corrupt": "corrupted"}  # each router action and the counter it bumps
LOSSES = ("drop", "blackout", "queue-drop", "corrupt")  # actions after which the server must send again
# Random knobs are reset once 3.5 MiB of a 4 MiB response have passed: a frame dropped or held back at the
# very end could be resent (or released) after rawtui has stopped capturing, and no witness could be exact.
CLEAN_END = ((3584 << 10, {"cmd": "reset"}),)
TSHARK_FILTER = ("tcp.srcport == 8080 && tcp.len > 0 && (tcp.analysis.retransmission || "
                 "tcp.analysis.fast_retransmission || tcp.analysis.out_of_order || "
                 "tcp.analysis.spurious_retransmission)")


class Run(NamedTuple):
    events: list[ev.Event]  # rawtui's NDJSON log
    actions: list[dict[str, Any]]  # the relay's reports on our connection, as it published them
    info: dict[str, Any]  # the server's last TCP_INFO word on our connection
    arrivals: list[tuple[int, int, int]]  # (seq, length, TSval) of each server data segment rawtui captured
    tshark: list[tuple[int, str]]  # (seq, tshark's flag) of each segment tshark's analysis flags
    counters: dict[str, int]  # rawtui's TCP counters at the end
    ids: list[int]  # the IPv4 ID of each arrival (the server numbers its packets in the order it sends them)

    def by_action(self, *names: str, direction: str = "down") -> Counter[int]:
        """How many times the router did one of ``names`` to a data frame at each seq."""
        return Counter(a["seq"] for a in self.actions
                       if a["direction"] == direction and a["length"] and a["action"] in names)

    def resent(self, repeat: bool | None = None) -> list[ev.PeerRetransmit]:
        return [e for e in self.events if isinstance(e, ev.PeerRetransmit) and (repeat is None or e.repeat == repeat)]

    def arrived(self) -> Counter[int]:
        return Counter(s for s, _, _ in self.arrivals)

    def notes(self, note: str) -> Counter[int]:
        return Counter(e.seq for e in self.events if isinstance(e, ev.SegmentIn) and e.length and e.note == note)

    def above(self) -> list[int]:
        """For each arrival, the highest seq that had come before it (-1: none)."""
        highest, out = -1, []
        for s, _, _ in self.arrivals:
            out.append(highest)
            highest = max(highest, s)
        return out

    def in_order_resends(self) -> set[int]:
        """The seqs the router dropped whose first copy to reach us came in order (nothing above them had
        come). Either the original got through and a later resend was lost (our ACKs were), or the resend
        came as, to a receiver, new data: the rest of a go-back-N after a timeout, or a lost last segment
        resent right after the last hole was filled. rawtui can find those only by their timer's silence
        and their TSecr; tshark not at all."""
        drops, above, seen = self.by_action(*LOSSES), self.above(), set()
        out = set()
        for i, (s, _, _) in enumerate(self.arrivals):
            if s not in seen and drops[s] and above[i] < s:
                out.add(s)
            seen.add(s)
        return out


class _Collector(threading.Thread):
    """Reads the relay's publications (router_action, tcp_info) into a list, and lets a test wait for one."""

    def __init__(self, control: str) -> None:
        super().__init__(daemon=True)
        self.sub = Subscription(control)
        self.msgs: list[dict[str, Any]] = []
        self.cond = threading.Condition()
        self.halt = False

    def run(self) -> None:
        while not self.halt and not self.sub.closed:
            msg = self.sub.next(timeout=0.5)
            if msg is not None:
                with self.cond:
                    self.msgs.append(msg)
                    self.cond.notify_all()

    def wait_for(self, what: str, pred: Any) -> list[dict[str, Any]]:
        """Block until ``pred(msgs)`` holds (a wait for what must come; WAIT bounds a broken run)."""
        deadline = time.monotonic() + WAIT
        with self.cond:
            while not pred(self.msgs):
                left = deadline - time.monotonic()
                assert left > 0, f"{what}: not within {WAIT:.0f} s"
                self.cond.wait(left)
            return list(self.msgs)

    def close(self) -> None:
        self.halt = True
        self.sub.close()


@pytest.fixture
def work(tmp_path: Path) -> Iterator[Path]:
    """A short directory for the control socket (a socket path must stay under 108 bytes)."""
    d = Path(tempfile.mkdtemp(prefix="rtwit"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _tshark_rows(pcap: Path, *fields: str, display: str) -> list[list[str]]:
    res = subprocess.run([require_tool("tshark"), "-n", "-r", str(pcap), "-Y", display, "-T", "fields",
                          *[a for f in fields for a in ("-e", f)]],
                         capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stderr[-2000:]
    return [line.split("\t") for line in res.stdout.splitlines() if line]


def _download(lab: Lab, tmp: Path, work: Path, seed: int, size: int, down: dict[str, float] | None = None,
              arms: tuple[tuple[int, dict[str, Any]], ...] = ()) -> Run:
    """Download a ``size``-byte file through a relay seeded with ``seed`` (knobs ``down`` on the data's
    way, commands ``arms`` armed at byte counts of the server's frames); the witnesses' records."""
    require_tool("tshark")
    control = str(work / "c.sock")
    relay = start_relay(lab, control, seed=seed)
    www = tmp / "www"
    www.mkdir()
    make_file(www / "f.bin", size, seed=seed)
    server = lab.popen(lab.server_ns, [sys.executable, "-m", "rawtui.lab.server", "--root", str(www), "--port",
                                       "8080", "--report", control], stdout=subprocess.PIPE, text=True,
                       env=child_env())
    collector = _Collector(control)
    collector.start()
    try:
        assert server.stdout is not None and server.stdout.readline().startswith("ready")
        with LabControl(control) as ctl:
            if down:
                ctl.set("down", **down)
            for at, then in arms:
                ctl.request({"cmd": "arm", "dir": "down", "after_bytes": at, "then": then})
        res = lab.run(lab.client_ns, [sys.executable, "-m", "rawtui", f"http://{lab.server_ip}:8080/f.bin",
                                      "-o", "out.bin", "--headless", "--lab-control", control,
                                      "--events", "e.ndjson", "--pcap", "p.pcap"],
                      cwd=tmp, capture_output=True, text=True, timeout=120, env=child_env())
        assert res.returncode == 0, res.stderr[-3000:]
        assert sha256_file(tmp / "out.bin") == sha256_file(www / "f.bin")
        events = load_events(str(tmp / "e.ndjson"))
        port = next(e.local_port for e in events if isinstance(e, ev.Handshake))
        done = next(e for e in events if isinstance(e, ev.Done))
        counters = dict(done.counters)
        delivered = counters["bytes_delivered"]  # the response, header included: what the server sent once

        def last_word(msgs: list[dict[str, Any]]) -> bool:
            return any(m.get("type") == "tcp_info" and m.get("peer_port") == port and m["unacked"] == 0
                       and m["bytes_acked"] >= delivered for m in msgs)

        collector.wait_for("the server's TCP_INFO with everything acknowledged", last_word)
        with LabControl(control) as ctl:
            stats = ctl.state()["stats"]  # the relay publishes every report these count before it replies
        want = Counter({(d, a): stats[d][name] for d in ("down", "up") for a, name in COUNTERS.items()})
        msgs = collector.wait_for(f"the relay's reports {dict(want)}", lambda ms: Counter(
            (m["direction"], m["action"]) for m in ms if m.get("type") == "router_action") == want)
    finally:
        collector.close()
        lab.stop(server)
        lab.stop(relay)
    actions = [m for m in msgs if m.get("type") == "router_action"]
    assert all(not a["absolute"] and port in (a["sport"], a["dport"]) for a in actions), actions[:5]
    info = next(m for m in reversed(msgs) if m.get("type") == "tcp_info" and m.get("peer_port") == port)
    pcap = tmp / "p.pcap"
    rows = _tshark_rows(pcap, "tcp.seq", "tcp.len", "tcp.options.timestamp.tsval", "ip.id",
                        display="tcp.srcport == 8080 && tcp.len > 0")
    arrivals = [(int(s), int(n), int(tsv)) for s, n, tsv, _ in rows]
    ids = [int(i, 0) for _, _, _, i in rows]
    flags = ("spurious", "fast", "retransmission", "out-of-order")
    tshark = [(int(row[0]), next(f for f, v in zip(flags, row[1:], strict=True) if v)) for row in _tshark_rows(
        pcap, "tcp.seq", "tcp.analysis.spurious_retransmission", "tcp.analysis.fast_retransmission",
        "tcp.analysis.retransmission", "tcp.analysis.out_of_order", display=TSHARK_FILTER)]
    return Run(events, actions, info, arrivals, tshark, counters, ids)


def _witnesses(run: Run) -> str:
    """The exact relations every pattern shares (see the module docstring); returns a summary line.
    A seq the router dropped whose first copy to reach us came in order (:meth:`Run.in_order_resends`) may
    be, to a receiver, new data: rawtui reports it at most once as a fill (when its timer rule finds it);
    every other dropped seq exactly once."""
    invisible = run.in_order_resends()
    drops, dups, held = run.by_action(*LOSSES), run.by_action("duplicate"), run.by_action("reorder")
    arrived = run.arrived()
    sends = {s: arrived[s] - dups[s] + drops[s] for s in set(arrived) | set(drops)}
    assert all(arrived[s] >= 1 for s in drops), "a dropped seq never reached us (yet the file is whole)"
    # the server: every copy beyond the first of a seq is one of its retransmissions
    synacks = sum(1 for a in run.actions if a["direction"] == "down" and a["action"] in LOSSES and "S" in a["flags"])
    assert run.info["retrans_total"] == sum(n - 1 for n in sends.values()) + synacks, (run.info, drops, dups)
    # late originals: the original of a seq the router did not drop (its first transmission: the lowest
    # IPv4 ID among its arrivals) reached us after a segment above it. Held back by the router (reorder),
    # or by the kernel: a relay that moves between CPUs hands its frames to two CPUs' queues, and they can
    # overtake each other (seen beside a CPU hog: five originals after a later one, none of them held)
    original: dict[int, int] = {}
    for i, (s, _, _) in enumerate(run.arrivals):
        if not drops[s] and (s not in original or 0 < (run.ids[original[s]] - run.ids[i]) & 0xFFFF < 0x8000):
            original[s] = i
    above = run.above()
    late = {s for s, i in original.items() if above[i] > s}
    reordered = set(held) | late
    # rawtui, per seq
    fills = Counter(e.seq for e in run.resent(repeat=False))
    repeats = Counter(e.seq for e in run.resent(repeat=True))
    resent_first = {s for s in reordered if fills[s]}  # the server's resend filled the hole before the original
    for s in set(drops) | set(fills) | set(repeats) | reordered:
        if s in invisible:
            assert fills[s] <= 1, (s, fills[s])
        else:
            assert fills[s] == (1 if drops[s] or s in resent_first else 0), (s, drops[s], fills[s], held[s])
        # each further server copy that reached us, once we had the data (a late original is not one)
        extra = arrived[s] - dups[s] - 1 - (1 if s in resent_first and s in late else 0)
        assert repeats[s] == extra, (s, arrived[s], dups[s], repeats[s])
    assert all(sends[s] >= 2 for s in fills), "rawtui reported a resend the server never made"
    c = run.counters
    assert c["network_copies"] == sum(dups.values()), (c["network_copies"], dups)
    assert c["network_late"] == len(late), (c["network_late"], sorted(late))
    assert c["peer_retrans"] == len(run.resent())
    kinds = Counter(e.kind for e in run.resent())
    return (f"server {run.info['retrans_total']} · router {dict(Counter(a['action'] for a in run.actions))} · "
            f"rawtui {len(run.resent())} {dict(kinds)} copies {c['network_copies']} late {c['network_late']} · "
            f"tshark {len(run.tshark)} {dict(Counter(f for _, f in run.tshark))}")


def _tshark_agrees(run: Run, tolerance: int) -> int:
    """tshark flags every server data segment that came below the highest seq seen, or again: our
    retransmissions (fills and repeats), network copies and late originals alike (it has no timestamps
    reasoning, and calls some of them out-of-order rather than retransmissions). So, per seq, tshark's
    flags should be rawtui's peer_retransmit + network copies + late originals, except the resends that
    came in order (:meth:`Run.in_order_resends`, found by rawtui from the silence and the echoed timestamp:
    tshark never saw their originals). Returns the number of differences, asserted <= ``tolerance``."""
    fills = Counter(e.seq for e in run.resent(repeat=False))
    late_fills = run.notes("fill") - fills  # a late original that filled its hole (no retransmission)
    ours = Counter(e.seq for e in run.resent()) + run.notes("copy") + run.notes("late") + late_fills
    for s in run.in_order_resends():
        ours[s] -= fills[s]
    ours = +ours
    theirs = Counter(s for s, _ in run.tshark)
    diff = sum(((ours - theirs) + (theirs - ours)).values())
    assert diff <= tolerance, (sorted((ours - theirs).items()), sorted((theirs - ours).items()))
    return diff


def _seed(default: int) -> int:
    """The relay's seed: the test's own, or RAWTUI_WITNESS_SEED (how the tolerances were measured)."""
    return int(os.environ.get("RAWTUI_WITNESS_SEED", default))


def _say(name: str, line: str) -> None:
    print(f"\n{name}: {line}")  # the three witnesses and tshark, for `pytest -s`


# ---------------------------------------------------------------------------------------------------
# one download per loss pattern


@lab_test
def test_random_loss(fresh_lab: Lab, tmp_path: Path, work: Path) -> None:
    """1.5 % random loss on the way down (4 MiB, seed 3; knobs reset at 3.5 MiB): every dropped seq is
    later filled by exactly one retransmission rawtui saw (a resend lost again is counted twice by the router
    and by the server, once by rawtui: the seq arrives once), except a resend that came in order (nothing
    above it had arrived: 0-2 per run, see Run.in_order_resends), which no receiver can tell from new data;
    the server's retrans_total is the router's drops. tshark: the same seqs, measured 0 differences over
    seeds 1-5 (also under a CPU hog); it names many fills out-of-order rather than retransmissions."""
    run = _download(fresh_lab, tmp_path, work, _seed(3), 4 * MIB, down={"loss": 1.5}, arms=CLEAN_END)
    assert run.by_action(*LOSSES)
    _say("random loss", _witnesses(run))
    assert {e.kind for e in run.resent()} <= {"fast", "timeout", "tlp"}
    _tshark_agrees(run, 0)


@lab_test
def test_burst(fresh_lab: Lab, tmp_path: Path, work: Path) -> None:
    """A burst: the router drops every frame from 1 MiB on for 10 frames' bytes (loss 100 % armed at
    1 MiB, off again 10 frames later: a point in the data, whatever the clock). Ten consecutive holes,
    each filled once (by a fast retransmission, unless the machine is busy); the server counts 10 plus any
    copy it sent again. tshark: the same seqs (0
    differences over seeds 1-5), most of them named retransmission or out-of-order, not fast."""
    run = _download(fresh_lab, tmp_path, work, _seed(1), 4 * MIB,
                    arms=((MIB, {"cmd": "set", "dir": "down", "loss": 100, "note": "burst"}),
                          (MIB + 10 * FRAME, {"cmd": "set", "dir": "down", "loss": 0})))
    drops = run.by_action(*LOSSES)
    assert len(drops) == 10 and max(drops) - min(drops) == 9 * 1448, drops
    _say("burst", _witnesses(run))
    # each hole filled once; a further copy the server sent (a busy machine's late ACKs can fire its timer
    # after the fast retransmission) is a repeat, which _witnesses counts exactly against what reached us
    assert sorted(e.seq for e in run.resent(repeat=False)) == sorted(drops)
    _tshark_agrees(run, 0)


@lab_test
def test_tail_loss(fresh_lab: Lab, tmp_path: Path, work: Path) -> None:
    """Tail loss: a 0.3 s blackout on the way down armed ~3000 bytes before the end of a 2 MiB response,
    so the last segments are lost, and the server's tail-loss probe (sent ~2 SRTT later) with them. Only its
    retransmission timer gets data through: the head of the tail, in order after a silence of the RTO,
    which rawtui names a timeout retransmission (its TSecr echoes our ACK of everything before it). The rest
    of the tail follows it as a go-back-N: to a receiver that is in-order new data (no hole, no repeat), so
    rawtui cannot count it by definition, and nor can tshark, which sees no retransmission at all (it never
    saw the originals). What holds exactly: every dropped seq arrived once; the first is a timeout
    retransmission; rawtui reports nothing else but (possibly) those tail seqs; the server's
    retrans_total equals the router's drops (the probe and any repeated drop included)."""
    size = 2 * MIB
    at = 74 + (size + 200 - 3000) * FRAME // 1448  # the SYN-ACK, then full frames (~200 bytes of header)
    run = _download(fresh_lab, tmp_path, work, _seed(1), size,
                    arms=((at, {"cmd": "blackout", "dir": "down", "seconds": 0.3}),))
    drops = run.by_action(*LOSSES)
    end = max(s + n for s, n, _ in run.arrivals)
    assert len(drops) >= 2 and max(s + n for s, n, _ in run.arrivals if s == max(drops)) == end, drops
    head = min(drops)
    first = run.resent()[0]
    assert (first.seq, first.kind, first.repeat) == (head, "timeout", False), first
    assert run.info["retrans_total"] == sum(drops.values())
    assert run.in_order_resends() == set(drops)
    _say("tail loss", _witnesses(run))
    # measured over seeds 1-5: tshark flags nothing; rawtui's one timeout retransmission is in order
    _tshark_agrees(run, 0)
    assert run.tshark == []


@lab_test
def test_blackout_both_directions(fresh_lab: Lab, tmp_path: Path, work: Path) -> None:
    """A 0.3 s blackout of both directions at 1 MiB: the data in flight is lost on the way down and our
    ACKs on the way up, so the server's timer resends its oldest unacknowledged segment, which we had (a
    timeout retransmission, a repeat: D-SACKed); then, with F-RTO's new data showing the holes, it fills
    each dropped seq once. Exact: one repeat at a seq the router never dropped (our ACKs of it were lost:
    the router's up-direction blackout reports), one fill per dropped seq, the server's count = drops +
    that repeat. tshark: the same seqs (0 differences over seeds 1-5; it calls the repeat spurious)."""
    run = _download(fresh_lab, tmp_path, work, _seed(2), 4 * MIB,
                    arms=((MIB, {"cmd": "blackout", "dir": "both", "seconds": 0.3}),))
    drops = run.by_action(*LOSSES)
    assert drops and any(a["direction"] == "up" and a["action"] == "blackout" for a in run.actions)
    _say("blackout", _witnesses(run))
    repeats = run.resent(repeat=True)
    # the timer's resend of data we had (its ACK was lost); an earlier resend of it may have been dropped
    assert repeats and all(e.kind == "timeout" for e in repeats), repeats
    assert run.counters["dsacks_sent"] >= len(repeats)
    _tshark_agrees(run, 0)


@lab_test
def test_duplication(fresh_lab: Lab, tmp_path: Path, work: Path) -> None:
    """2 % duplication on the way down: each copy the router made is a network copy (same TSval), none a
    retransmission; the server resent nothing. tshark calls every copy a retransmission (or spurious):
    per seq, its flags are our network copies (0 differences over seeds 1-5)."""
    run = _download(fresh_lab, tmp_path, work, _seed(1), 4 * MIB, down={"dup": 2}, arms=CLEAN_END)
    dups = run.by_action("duplicate")
    assert dups
    _say("duplication", _witnesses(run))
    assert run.resent() == [] and run.info["retrans_total"] == 0
    assert run.notes("copy") == dups
    _tshark_agrees(run, 0)


@lab_test
def test_reordering(fresh_lab: Lab, tmp_path: Path, work: Path) -> None:
    """2 % reordering on the way down (a frame held back behind 3 later ones): each held original that
    came after a higher seq is a late original (network_late), not a retransmission. The server, fooled
    by the reordering, sometimes resends anyway: such a resend is a repeat (spurious) when the original had
    filled the hole, or the fill when it came first (then the original is late, and not a copy). Exact:
    rawtui's retransmissions = the server's retrans_total, seq by seq with the copies that arrived twice.
    tshark calls every late original a (fast) retransmission or out-of-order: per seq its flags are
    our late originals + retransmissions (0 differences over seeds 1-5)."""
    run = _download(fresh_lab, tmp_path, work, _seed(1), 4 * MIB, down={"reorder": 2}, arms=CLEAN_END)
    assert run.by_action("reorder")
    _say("reordering", _witnesses(run))
    assert run.counters["network_late"] > 0 and run.counters["network_copies"] == 0
    assert len(run.resent()) == run.info["retrans_total"]
    _tshark_agrees(run, 0)


# ---------------------------------------------------------------------------------------------------
# the classification fixed while writing these (no root needed)


RECEIVED = bytes(range(256)) * 20  # what the server sends in the two tests below, 1,000 bytes a segment


def _receiving() -> TcpConnection:
    """A connection past its handshake with timestamps and SACK, ready to receive the server's data."""
    lip, rip = bytes([10, 0, 2, 15]), bytes([10, 0, 2, 2])
    conn = TcpConnection(local_ip=lip, remote_ip=rip, local_port=40000, remote_port=8080, isn=1000, sack=True,
                         timestamps=True)
    conn.connect(0.0)
    (syn,) = [parse_tcp(b, lip, rip, verify=True) for b in conn.take_segments()]
    assert syn.options.ts is not None
    opts = TcpOptions(mss=1460, wscale=7, sack_permitted=True, ts=(100, syn.options.ts[0]))
    conn.on_segment(TcpSegment(8080, 40000, 5000, 1001, 0x12, 65535, opts), 0.05)
    conn.take_segments()
    return conn


def _data_segment(conn: TcpConnection, off: int, tsval: int) -> TcpSegment:
    """The server's 1,000 bytes at offset ``off`` of RECEIVED, with TSval ``tsval``."""
    return TcpSegment(8080, 40000, (5001 + off) & M32, conn.snd_nxt, ACK, 65535, TcpOptions(ts=(tsval, 0)),
                      RECEIVED[off : off + 1000])


def test_late_original_after_its_retransmission_is_late_not_a_network_copy() -> None:
    """Seen in test_reordering (seed 1, seq 4192150): the router held the original back, the server's
    RACK timer resent it and the resend filled the hole; then the original came. Its TSval is older than
    the newest (so it was counted a network copy), but no older than the hole's opener: it is the
    original, late. A real copy of the resend (its TSval) stays a copy."""
    conn = _receiving()
    data = RECEIVED

    for off, tsval, t in ((0, 101, 0.1), (2000, 103, 0.101), (3000, 104, 0.102), (1000, 110, 0.11),
                          (1000, 102, 0.111), (1000, 110, 0.112)):  # the hole, its resend, the original, a copy
        conn.on_segment(_data_segment(conn, off, tsval), t)
    c = conn.counters
    assert (c["peer_retrans"], c["network_late"], c["network_copies"], c["dsacks_sent"]) == (1, 1, 1, 2)
    notes = [e.note for e in conn.take_events() if isinstance(e, ev.SegmentIn)]
    assert notes[-3:] == ["fill", "late", "copy"]
    assert conn.read() == data[:4000]


def test_a_resend_held_back_behind_newer_data_is_a_resend_not_a_network_copy() -> None:
    """Seen in test_reordering (seed 1, seq 126166, once in a CI run beside a CPU hog): the router held
    the original back and it filled its hole late; the server, fooled, resent it, and the router held the
    resend back too, behind newer data. Its TSval is older than the newest (so it was counted a network
    copy), but newer than the late original's: another transmission, the server's (spurious) resend. A
    real copy of the late original (its TSval) stays a copy."""
    conn = _receiving()
    data = RECEIVED

    # in order; the hole's opener and one more; the original, late; newer data; the server's resend of the
    # original (sent after it, held back behind the newer data); a copy of the late original
    for off, tsval, t in ((0, 101, 0.1), (2000, 102, 0.101), (3000, 102, 0.102), (1000, 102, 0.103),
                          (4000, 110, 0.11), (1000, 105, 0.111), (1000, 102, 0.112)):
        conn.on_segment(_data_segment(conn, off, tsval), t)
    c = conn.counters
    assert (c["peer_retrans"], c["network_late"], c["network_copies"]) == (1, 1, 1)
    resent = [e for e in conn.take_events() if isinstance(e, ev.PeerRetransmit)]
    assert [(e.seq, e.repeat) for e in resent] == [(1001, True)]  # (relative to the peer's ISN)
    assert conn.read() == data[:5000]
