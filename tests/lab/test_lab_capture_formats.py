"""One download, captured by the tools people use, in every format they write: rawtui's analysis of each is
the same.

curl downloads 1m7.bin in the lab while, in the client's namespace, tcpdump captures on eth0 (classic pcap,
Ethernet: the reference), on ``-i any`` (Linux cooked v2, link type 276, as tcpdump writes it here), on
``-i any -y LINUX_SLL`` (113), with nanosecond timestamps, and dumpcap captures pcapng; two one-direction
captures (the client's frames on eth0, Ethernet; the server's on ``any``, SLL) are merged by mergecap into
one pcapng with two interfaces of different link types. editcap converts the reference to pcapng and to
nanosecond pcap, gzip compresses the pcapng.

What is compared. A converted file (editcap, gzip) holds the same frames with the same times: the whole
event stream as NDJSON holds it (``to_dict``) must be equal, but for the link-level events (``route``, ARP)
and the frame length of a ``checksum_drop`` (it counts the link header); floats are rounded to the
microsecond (seconds) or 1e-3 of their unit (ms, bytes/s), so a nanosecond file converted from microseconds
compares equal. A capture made by another socket (``-i any``, dumpcap, the nanosecond tcpdump, the merged
one) stamps the same frame a few microseconds apart (measured: 1-10 us) and may see two frames of the same
moment in the other order: it is compared on the summary: the body's size and SHA-256, the response, the
handshake, every counter of the analysis (``done.counters``: segments, bytes, ACKs, retransmissions,
checksums, GRO aggregates...) and the multiset of segments in and out.
"""

from __future__ import annotations

import gzip
import os
import select
import shutil
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import require_tool

from rawtui.events import Done, Event, Handshake, HttpResponse, SegmentIn, SegmentOut, to_dict
from rawtui.lab.topology import Lab
from rawtui.recording import load_events, open_capture
from rawtui.recording.observe import peek_tcp

pytestmark = [pytest.mark.lab, pytest.mark.needs_tool("tcpdump", "dumpcap", "editcap", "mergecap", "curl")]

LINK = ("route", "arp_request", "arp_reply", "arp_ignored")


def normal(evs: list[Event], name: str) -> list[dict[str, Any]]:
    out = []
    for e in evs:
        d = to_dict(e)
        if d["type"] in LINK:
            continue
        if d["type"] == "checksum_drop":
            d.pop("length")
        if d["type"] == "info":
            d["message"] = d["message"].replace(name, "FILE")
        for k, v in d.items():
            if isinstance(v, float):
                d[k] = round(v, 6 if k == "t" else 3)
        out.append(d)
    return out


def start(lab: Lab, argv: list[str], ready: str) -> subprocess.Popen[bytes]:
    """A capture program in the client's namespace, returned once it says ``ready`` on stderr (read with
    os.read: a buffered readline could hold the line that select() no longer sees)."""
    proc = lab.popen(lab.client_ns, argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, bufsize=0)
    assert proc.stderr is not None
    fd = proc.stderr.fileno()
    said = b""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        chunk = os.read(fd, 4096) if r else b""
        if not chunk:
            break
        said += chunk
        if ready.encode() in said:
            return proc
    lab.stop(proc)
    raise AssertionError(f"{argv[0]} did not start: {said.decode(errors='replace').strip()}")


def tcp_frames(path: Path, keep: Callable[[bytes, bytes], bool] = lambda s, d: True) -> int:
    """TCP frames in a capture (whose (src, dst) ``keep`` accepts), read while it is being written."""
    if not path.exists() or path.stat().st_size < 24:
        return 0
    n = 0
    for f in open_capture(path):
        p = peek_tcp(f.linktype, f.data)
        if p is not None and keep(p.src, p.dst):
            n += 1
    return n


def wait_until(what: str, cond: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {what}")
        time.sleep(0.05)  # polling files the capture programs write: they give no other sign


@pytest.fixture(scope="module")
def captures(lab: Lab, pyserver: str, www: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tcpdump, dumpcap, editcap, mergecap, curl = (require_tool(t) for t in
                                                ("tcpdump", "dumpcap", "editcap", "mergecap", "curl"))
    d = tmp_path_factory.mktemp("formats")
    c = lab.client_ns
    lab.run(c, ["ip", "neigh", "flush", "dev", lab.client_if], capture_output=True, timeout=10)
    me = lab.client_ip
    td = [tcpdump, "-U", "-s", "0", "-n"]
    specs = {
        "eth.pcap": (td + ["-i", lab.client_if, "-w", str(d / "eth.pcap"), "tcp or arp"], "listening on"),
        "any.pcap": (td + ["-i", "any", "-w", str(d / "any.pcap"), "tcp or arp"], "listening on"),
        "sll.pcap": (td + ["-i", "any", "-y", "LINUX_SLL", "-w", str(d / "sll.pcap"), "tcp or arp"], "listening on"),
        "nano.pcap": (td + ["--time-stamp-precision=nano", "-i", lab.client_if, "-w", str(d / "nano.pcap"),
                            "tcp or arp"], "listening on"),
        "dumpcap.pcapng": ([dumpcap, "-n", "-i", lab.client_if, "-w", str(d / "dumpcap.pcapng"),
                            "-f", "tcp or arp"], "Capturing on"),
        "up.pcap": (td + ["-i", lab.client_if, "-w", str(d / "up.pcap"), f"arp or (tcp and src host {me})"],
                    "listening on"),
        "down.pcap": (td + ["-i", "any", "-y", "LINUX_SLL", "-w", str(d / "down.pcap"), f"tcp and dst host {me}"],
                      "listening on"),
    }
    procs = []
    try:
        for argv, ready in specs.values():
            procs.append(start(lab, argv, ready))
        r = lab.run(c, [curl, "-sS", "-o", str(d / "out.bin"), f"{pyserver}/1m7.bin"], capture_output=True,
                    text=True, timeout=60)
        assert r.returncode == 0, r.stderr

        def fins(path: Path) -> int:
            return sum(1 for f in open_capture(path) if (p := peek_tcp(f.linktype, f.data)) and p.flags & 1)

        # the connection's end is in the reference: both FINs and the last ACK after them
        wait_until("both FINs and the last ACK in eth.pcap",
                   lambda: fins(d / "eth.pcap") >= 2 and _ends_with_ack(d / "eth.pcap"))
        total = tcp_frames(d / "eth.pcap")
        up = tcp_frames(d / "eth.pcap", lambda s, _d: s == bytes(map(int, me.split("."))))
        for name in ("any.pcap", "sll.pcap", "nano.pcap", "dumpcap.pcapng"):
            wait_until(f"{total} TCP frames in {name}", lambda n=name: tcp_frames(d / n) >= total)
        wait_until("the client's frames", lambda: tcp_frames(d / "up.pcap") >= up)
        wait_until("the server's frames", lambda: tcp_frames(d / "down.pcap") >= total - up)
    finally:
        for p in procs:
            p.send_signal(signal.SIGINT)  # both flush and close their files
        for p in procs:
            try:
                p.wait(10)
            finally:
                lab.stop(p)
    assert (d / "out.bin").read_bytes() and www.sha256["1m7.bin"]
    subprocess.run([editcap, "-F", "pcapng", str(d / "eth.pcap"), str(d / "editcap.pcapng")], check=True)
    subprocess.run([editcap, "-F", "nsecpcap", str(d / "eth.pcap"), str(d / "editcap-nsec.pcap")], check=True)
    subprocess.run([mergecap, "-F", "pcapng", "-w", str(d / "merged.pcapng"), str(d / "up.pcap"),
                    str(d / "down.pcap")], check=True)
    (d / "dumpcap.pcapng.gz").write_bytes(gzip.compress((d / "dumpcap.pcapng").read_bytes()))
    gz = shutil.which("gzip")
    if gz:  # and by gzip itself
        subprocess.run([gz, "-k", "-f", str(d / "eth.pcap")], check=True)
    return {p.name: p for p in d.iterdir()}


def _ends_with_ack(path: Path) -> bool:
    last = None
    for f in open_capture(path):
        p = peek_tcp(f.linktype, f.data)
        if p is not None:
            last = p
    return last is not None and last.flags == 0x10  # a pure ACK: the one after the second FIN


def test_the_link_types_tcpdump_and_dumpcap_write(captures: dict[str, Path]) -> None:
    kinds = {}
    for name in ("eth.pcap", "any.pcap", "sll.pcap", "nano.pcap", "dumpcap.pcapng", "merged.pcapng",
                 "editcap.pcapng", "editcap-nsec.pcap", "dumpcap.pcapng.gz"):
        cap = open_capture(captures[name])
        frames = list(cap)
        assert cap.truncated_at is None, (name, cap.problem)
        kinds[name] = (cap.description, tuple(sorted({f.linktype for f in frames})))
    assert kinds == {
        "eth.pcap": ("pcap", (1,)), "any.pcap": ("pcap", (276,)), "sll.pcap": ("pcap", (113,)),
        "nano.pcap": ("pcap", (1,)), "dumpcap.pcapng": ("pcapng", (1,)), "merged.pcapng": ("pcapng", (1, 113)),
        "editcap.pcapng": ("pcapng", (1,)), "editcap-nsec.pcap": ("pcap", (1,)),
        "dumpcap.pcapng.gz": ("gzip-compressed pcapng", (1,)),
    }


@pytest.mark.parametrize(("name", "ref"), [("editcap.pcapng", "eth.pcap"), ("editcap-nsec.pcap", "eth.pcap"),
                                         ("eth.pcap.gz", "eth.pcap"), ("dumpcap.pcapng.gz", "dumpcap.pcapng")])
def test_a_converted_capture_gives_the_same_event_stream(captures: dict[str, Path], www: Any, name: str,
                                                         ref: str) -> None:
    want = load_events(captures[ref])
    done = [e for e in want if isinstance(e, Done)]
    assert done and done[0].sha256 == www.sha256["1m7.bin"]
    assert normal(load_events(captures[name]), name) == normal(want, ref)


# Counters of the order frames were seen in: two capturing sockets can see two frames of one moment in
# either order (a CI run under load: eth.pcap had one server segment before its predecessor, sll.pcap and
# the merged capture did not: out_of_order 1 vs 0, 8,688 bytes), so they are the capture's, not the flow's.
ORDER_COUNTERS = frozenset({"out_of_order", "out_of_order_bytes", "holes_opened", "holes_filled", "network_late"})
# ...and the ACKs the analysing machine would send itself: its timers (the delayed ACK's 40 ms, a compressed
# SACK's min(1 ms, RTT / 20)) run on the capture's clock, and a frame that falls at a deadline, stamped a few
# microseconds apart by two sockets, comes before it in one capture and after it in the other (a full suite
# under load: 27 ACKs from eth.pcap, 28 from the four others). What the client really sent is in the
# segments below, compared exactly.
ORDER_COUNTERS |= {"acks_sent", "sacks_compressed", "delayed_acks"}


def summary(evs: list[Event]) -> dict[str, Any]:
    """What does not depend on the capturing socket's clock or on the order of frames that arrived at the
    same moment: the body, the handshake, the response, every counter but ORDER_COUNTERS (and the machine's
    own ACKs), and the segments as a multiset."""
    done = next(e for e in evs if isinstance(e, Done))
    hs = next(e for e in evs if isinstance(e, Handshake))
    resp = next(e for e in evs if isinstance(e, HttpResponse))
    segments = Counter((e.type, e.seq, e.ack, e.flags, e.length) for e in evs if isinstance(e, SegmentIn | SegmentOut))
    counters = {k: v for k, v in done.counters.items() if k not in ORDER_COUNTERS}
    return {"body": (done.bytes, done.sha256), "counters": counters, "response": (resp.status, resp.content_length),
            "handshake": (hs.isn, hs.peer_isn, hs.mss, hs.peer_mss, hs.wscale, hs.peer_wscale, hs.sack, hs.timestamps),
            "segments": segments}


@pytest.mark.parametrize("name", ["any.pcap", "sll.pcap", "dumpcap.pcapng", "nano.pcap", "merged.pcapng"])
def test_a_capture_by_another_socket_gives_the_same_analysis(captures: dict[str, Path], www: Any, name: str) -> None:
    """Two capturing sockets stamp the same frame a few microseconds apart, and may see two frames of the
    same moment in either order: compared is the summary (above), which holds every count."""
    ref = summary(load_events(captures["eth.pcap"]))
    assert ref["body"] == (www.size("1m7.bin"), www.sha256["1m7.bin"])
    assert summary(load_events(captures[name])) == ref


def test_the_merged_capture_has_both_interfaces(captures: dict[str, Path]) -> None:
    frames = list(open_capture(captures["merged.pcapng"]))
    assert {(f.interface, f.linktype) for f in frames} == {(0, 1), (1, 113)}
    assert len(frames) == len(list(open_capture(captures["up.pcap"]))) + len(list(open_capture(captures["down.pcap"])))
    assert [f.number for f in frames] == list(range(1, len(frames) + 1))
