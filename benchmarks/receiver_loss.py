"""The server's view of rawtui as a receiver under loss, beside curl's kernel, on the same seeded loss.

    sudo .venv/bin/python benchmarks/receiver_loss.py --link lossy-wan --seeds 1 2 3 --reps 3
    git archive HEAD rawtui | tar -x -C /tmp/before       # then, the code before a change beside it:
    sudo .venv/bin/python benchmarks/receiver_loss.py --clients curl --tree before=/tmp/before --tree after=.

For every seed and repetition, curl and ``rawtui --headless`` download the same file from nginx through
the lab's impairment relay, which is restarted with that seed before each download (so each client meets
the same loss decisions frame by frame, until their flights diverge). Printed per download: wall time,
goodput, what the relay dropped (random loss, bottleneck queue full) and the server namespace's TCP
counters over the download (``nstat -az`` before and after: recoveries, fast retransmits, loss probes,
timeouts, D-SACKs received, undos, ACKs received, ...). At the end: per seed, the median goodput of each
client and its ratio to curl's, and the mean counters per client. Clients: ``curl``, ``curl+hog`` (curl
beside a busy loop, the CPU load rawtui adds), ``headless`` (this checkout) and, with ``--tree NAME=DIR``,
the rawtui package in DIR run from there. ``--pcap DIR`` also captures the client's interface with
tcpdump (the receivers' ACKs, SACK blocks and windows). Nothing is asserted: the numbers are for reading.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rawtui.lab.control import LabControl
from rawtui.lab.impair import start_relay
from rawtui.lab.nginx import start_nginx
from rawtui.lab.server import make_file, sha256_file
from rawtui.lab.topology import Lab

MB = 1 << 20
LINKS = {  # name: (size, down knobs, up knobs)
    "loss2": (20 * MB, {"loss": 2.0, "delay_ms": 10}, {"delay_ms": 10}),
    "lossy-wan": (50 * MB, {"loss": 1.0, "delay_ms": 25, "rate_bps": 50_000_000, "queue": 400}, {"delay_ms": 25}),
    "loss2-fast": (20 * MB, {"loss": 2.0}, {}),
}
COUNTERS = (
    "TcpRetransSegs", "TcpExtTCPSackRecovery", "TcpExtTCPFastRetrans", "TcpExtTCPLossProbes",
    "TcpExtTCPLossProbeRecovery", "TcpExtTCPTimeouts", "TcpExtTCPSpuriousRTOs", "TcpExtTCPDSACKRecv",
    "TcpExtTCPDSACKOfoRecv", "TcpExtTCPSACKReneging", "TcpExtTCPSackShifted", "TcpExtTCPSackMerged",
    "TcpExtTCPSACKReorder", "TcpExtTCPTSReorder", "TcpExtTCPLostRetransmit", "TcpExtTCPSackFailures",
    "TcpExtTCPDSACKIgnoredNoUndo", "TcpExtTCPFullUndo", "TcpExtTCPPartialUndo", "TcpExtTCPSpuriousRtxHostQueues",
    "TcpExtTCPWantZeroWindowAdv", "TcpExtTCPRcvQDrop", "TcpInSegs", "TcpOutSegs",
)


TREES: dict[str, str] = {}  # client name -> a directory holding another rawtui package (--tree)


def nstat(lab: Lab) -> dict[str, int]:
    out = lab.run(lab.server_ns, ["nstat", "-a", "-z", "-s", "--json"], capture_output=True, text=True).stdout
    data = json.loads(out)
    return {k: int(v) for k, v in next(iter(data.values())).items()}


def one(lab: Lab, tmp: Path, client: str, url: str, want: str, seed: int, knobs: tuple[dict, dict],
        pcap: Path | None) -> dict[str, float]:
    control = str(tmp / f"control-{client}-{seed}.sock")
    relay = start_relay(lab, control, seed=seed)
    dump = hog = None
    ctl = LabControl(control)
    try:
        ctl.set("down", None, **knobs[0])
        if knobs[1]:
            ctl.set("up", None, **knobs[1])
        if pcap is not None:
            dump = lab.popen(lab.client_ns, ["tcpdump", "-q", "-s", "100", "-i", lab.client_if, "-w",
                                             str(pcap), "tcp"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            assert dump.stderr is not None
            dump.stderr.readline()  # "listening on ..."
        out = tmp / "out.bin"
        if client in ("curl", "curl+hog"):  # curl+hog: beside a busy loop, as much CPU as rawtui takes
            argv = ["curl", "-s", "-o", str(out), url]
            if client == "curl+hog":
                hog = lab.popen(lab.client_ns, [sys.executable, "-c", "while True: pass"])
        else:
            argv = [sys.executable, "-m", "rawtui", "--headless", "-q", "-o", str(out), url]
            if client in TREES:  # another copy of rawtui's sources (before / after a change), same run
                argv = ["env", f"PYTHONPATH={TREES[client]}", *argv]
        before = nstat(lab)
        t0 = time.monotonic()
        # `python -m` puts the working directory first on sys.path: a tree's client runs from inside it
        code = lab.run(lab.client_ns, argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       cwd=TREES.get(client, os.getcwd())).returncode
        wall = time.monotonic() - t0
        after = nstat(lab)
        relay_stats = ctl.state()["stats"]["down"]
        ok = code == 0 and out.exists() and sha256_file(out) == want
        out.unlink(missing_ok=True)
    finally:
        ctl.close()
        if hog is not None:
            lab.stop(hog)
        if dump is not None:
            lab.stop(dump)
        lab.stop(relay)
    row: dict[str, float] = {"wall": wall, "ok": float(ok), "lost": relay_stats.get("lost", 0),
                             "queue_drops": relay_stats.get("queue_drops", 0)}
    row.update({k: after.get(k, 0) - before.get(k, 0) for k in COUNTERS})
    return row


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--link", choices=sorted(LINKS), default="loss2")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--size", type=int, help="file size in MiB (default: the link's)")
    p.add_argument("--clients", nargs="+", default=["curl", "headless"])
    p.add_argument("--tree", action="append", default=[], metavar="NAME=DIR",
                   help="also run the rawtui package found in DIR (e.g. a `git archive` of another commit) as client NAME")
    p.add_argument("--pcap", type=Path, help="a directory for tcpdump captures of every download")
    p.add_argument("--json", type=Path, help="write every row here")
    a = p.parse_args()
    if os.geteuid() != 0:
        print("receiver_loss: run it as root (it builds a lab of network namespaces)", file=sys.stderr)
        return 2
    missing = [t for t in ("nstat", "curl", *(["tcpdump"] if a.pcap else [])) if shutil.which(t) is None]
    if missing:
        print(f"receiver_loss: not installed: {', '.join(missing)}", file=sys.stderr)
        return 2
    size, down, up = LINKS[a.link]
    for spec in a.tree:
        name, _, d = spec.partition("=")
        TREES[name] = str(Path(d).resolve())
        if name not in a.clients:
            a.clients.append(name)
    if a.size:
        size = a.size * MB
    rows: list[dict[str, object]] = []
    with Lab.create() as lab, tempfile.TemporaryDirectory(prefix="rawtui-rl-") as tmpd:
        tmp = Path(tmpd)
        www = tmp / "www"
        www.mkdir()
        want = sha256_file(make_file(www / "f.bin", size))
        url = start_nginx(lab, www, 80).url + "/f.bin"
        if a.pcap:
            a.pcap.mkdir(parents=True, exist_ok=True)
        for seed in a.seeds:
            for rep in range(a.reps):
                for client in a.clients:
                    pcap = a.pcap / f"{client}-s{seed}-r{rep}.pcap" if a.pcap else None
                    r = one(lab, tmp, client, url, want, seed, (down, up), pcap)
                    mbs = size / 1e6 / r["wall"]
                    rows.append({"client": client, "seed": seed, "rep": rep, "mbs": mbs, **r})
                    print(f"seed {seed} rep {rep} {client:8} {mbs:7.2f} MB/s {r['wall']:6.2f} s "
                          f"{'ok' if r['ok'] else 'FAILED'}  lost {r['lost']:4.0f} qdrop {r['queue_drops']:4.0f} retrans {r['TcpRetransSegs']:5.0f} "
                          f"rec {r['TcpExtTCPSackRecovery']:4.0f} tlp {r['TcpExtTCPLossProbes']:4.0f} "
                          f"rto {r['TcpExtTCPTimeouts']:3.0f} dsack {r['TcpExtTCPDSACKRecv']:4.0f} "
                          f"undo {r['TcpExtTCPFullUndo'] + r['TcpExtTCPPartialUndo']:3.0f} "
                          f"reneg {r['TcpExtTCPSACKReneging']:3.0f} lostrtx {r['TcpExtTCPLostRetransmit']:3.0f}",
                          flush=True)
    if a.json:
        a.json.write_text(json.dumps(rows, indent=1))
    ratios = []
    for seed in a.seeds:
        med = {c: statistics.median(float(r["mbs"]) for r in rows if r["client"] == c and r["seed"] == seed)  # type: ignore[arg-type]
               for c in a.clients}
        print(f"seed {seed}: median MB/s " + ", ".join(f"{c} {v:.2f}" for c, v in med.items()) + "; " + ", ".join(
            f"{c}/curl {med[c] / med['curl']:.2f}" for c in a.clients if c != "curl" and "curl" in med))
        ratios.append({c: med[c] / med["curl"] for c in a.clients if c != "curl" and "curl" in med})
    for c in a.clients:
        if c != "curl" and "curl" in a.clients:
            xs = [r[c] for r in ratios]
            print(f"link {a.link}: {c}/curl per seed {', '.join(f'{x:.2f}' for x in xs)}; mean {statistics.mean(xs):.2f}")
    for c in a.clients:
        mine = [r for r in rows if r["client"] == c]
        print(f"{c:8} mean counters: " + ", ".join(
            f"{k.removeprefix('TcpExt').removeprefix('Tcp')} {statistics.mean(float(r[k]) for r in mine):.1f}"  # type: ignore[arg-type]
            for k in ("lost", "queue_drops", *COUNTERS) if any(r[k] for r in mine)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
