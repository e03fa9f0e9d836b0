"""The impairment relay's CPU cost per forwarded frame, IPv4 and IPv6, in a fresh dual-stack lab.

    sudo .venv/bin/python benchmarks/relay_cost.py --frames 200000 --reps 3
    git archive HEAD rawtui | tar -x -C /tmp/before       # then, the relay before a change beside it:
    sudo .venv/bin/python benchmarks/relay_cost.py --tree before=/tmp/before --tree after=. --rounds 3

A UDP source in the client namespace sends ``--frames`` datagrams of one full 1514-byte frame each, flat
out, to a server-side socket that never reads them (the server's kernel drops them once its buffer is
full: no receiver in the way); the relay forwards them up with no knob on (its fast path) and, with
``--delay``, through a 1 ms delay line (its pipe). Printed per family and repetition: the relay process's
CPU time (utime + stime, /proc/PID/stat) divided by the frames it read (its own ``frames_in``), in
microseconds per frame. CPU time, not a rate: another process on the machine slows a rate measured at
the receiver a lot and this number little. ``--tree NAME=DIR`` runs the relay of the rawtui package in
DIR (its own ``start_relay``), each tree in turn per round, so before/after share the machine's moods.
Nothing is asserted: the numbers are for reading (the README's table).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

_SOURCE = textwrap.dedent("""
    import socket, sys
    dst, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    s = socket.socket(socket.AF_INET6 if ":" in dst else socket.AF_INET, socket.SOCK_DGRAM)
    pad = b"x" * size
    for _ in range(n):
        try:
            s.sendto(pad, (dst, 9999))
        except OSError:
            pass
""")
_SINK = textwrap.dedent("""
    import socket, time
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.bind(("::", 9999))
    print("ready", flush=True)
    time.sleep(3600)
""")

# run inside a tree's interpreter path: one lab, one relay, every family and repetition; JSON on stdout
_MEASURE = textwrap.dedent("""
    import json, os, sys, tempfile, time, shutil, subprocess
    root, frames, reps, delay, source, sink = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1", sys.argv[5], sys.argv[6]
    sys.path.insert(0, root)
    from rawtui.lab.control import LabControl
    from rawtui.lab.impair import start_relay
    from rawtui.lab.topology import Lab

    def cpu(pid):
        f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")

    lab = Lab.create(ipv6=True)
    tmp = tempfile.mkdtemp(prefix="rtcost")
    out = {}
    try:
        control = os.path.join(tmp, "c.sock")
        relay = start_relay(lab, control, seed=1)
        s = lab.popen(lab.server_ns, [sys.executable, "-c", sink], stdout=subprocess.PIPE, text=True)
        s.stdout.readline()
        with LabControl(control) as ctl:
            if delay:
                ctl.set("up", delay_ms=1)
            for family, dst, size in ((4, lab.server_ip, 1472), (6, lab.server_ip6, 1452)):
                runs = []
                for _ in range(reps):
                    before = ctl.state()["stats"]["up"]["frames_in"]
                    t0 = cpu(relay.pid)
                    lab.run(lab.client_ns, [sys.executable, "-c", source, dst, str(frames), str(size)], check=True)
                    while ctl.state()["stats"]["up"]["queued"]:
                        time.sleep(0.01)
                    time.sleep(0.2)  # the relay's last batch read
                    n = ctl.state()["stats"]["up"]["frames_in"] - before
                    if n >= frames // 10:  # (a relay without IPv6 leaves it to the kernel: nothing to measure)
                        runs.append((cpu(relay.pid) - t0) / n * 1e6)
                out[family] = runs
        print(json.dumps(out))
    finally:
        lab.destroy()
        shutil.rmtree(tmp, ignore_errors=True)
""")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=200_000)
    p.add_argument("--reps", type=int, default=3, help="repetitions per family in one lab")
    p.add_argument("--rounds", type=int, default=1, help="times to run every tree, in turn")
    p.add_argument("--delay", action="store_true", help="a 1 ms delay on: the pipe's path, not the fast path")
    p.add_argument("--tree", action="append", metavar="NAME=DIR", help="a rawtui checkout to measure (default: this one)")
    ns = p.parse_args()
    if os.geteuid() != 0:
        print("the lab needs root", file=sys.stderr)
        return 1
    trees = [t.split("=", 1) for t in ns.tree] if ns.tree else [["this", str(Path(__file__).resolve().parent.parent)]]
    results: dict[str, dict[str, list[float]]] = {name: {"4": [], "6": []} for name, _ in trees}
    for _ in range(ns.rounds):
        for name, root in trees:
            res = subprocess.run([sys.executable, "-c", _MEASURE, os.path.abspath(root), str(ns.frames), str(ns.reps),
                                  "1" if ns.delay else "0", _SOURCE, _SINK], capture_output=True, text=True, check=False,
                                 cwd=tempfile.gettempdir())
            if res.returncode != 0:
                print(f"{name}: {res.stderr.strip()[-2000:]}", file=sys.stderr)
                return 1
            got = json.loads(res.stdout)
            for fam, runs in got.items():
                results[name][fam] += runs
                if runs:
                    print(f"{name} IPv{fam}: " + " ".join(f"{r:.2f}" for r in runs) + " us/frame", flush=True)
    print(f"relay CPU per frame ({'1 ms delay' if ns.delay else 'no knob'}, 1514-byte frames), median:")
    for name, fams in results.items():
        print(f"  {name}: " + ", ".join(f"IPv{f} {statistics.median(v):.2f} us ({1e6 / statistics.median(v) / 1000:.0f}k "
                                        "frames/s of one core)" for f, v in fams.items() if v))
    return 0


if __name__ == "__main__":
    sys.exit(main())
