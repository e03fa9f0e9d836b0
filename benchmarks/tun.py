"""The tun path: `rawtui --headless` against curl through the lab's VPN (root).

The lab is built with ``Lab.create(vpn=True)``: the client reaches the server only through tun0 and the
lab's userspace UDP tunnel (rawtui/lab/tunnel.py, MTU 1420), a layer-3 link where rawtui runs on a
SOCK_DGRAM packet socket (Medium.IP). nginx (or the embedded Python server) serves a file of ``--size``
MB; inside the client namespace curl and rawtui fetch it in turn, ``--reps`` times each (alternating, so
both meet the same machine), every download checked byte-exact by SHA-256. The time of each is the wall
time of the whole process (start-up included), measured from inside the namespace. It prints every run,
the medians, and the ratio of the medians (rawtui / curl goodput); nothing is asserted.

Each ``--rates`` entry is a tunnel capacity: 0 is the tunnel as fast as it goes (two Python processes
moving every packet: on a 2-core machine they share the CPUs with the server, the kernel and the client,
so the client's own cost per packet shows); N > 0 shapes the router's tun0 to N Mbit/s (tc tbf, the
direction of the download), a VPN whose uplink is the bottleneck, as a real one's is.

    sudo python benchmarks/tun.py                        # 50 MB, 5 runs each, uncapped and 200 Mbit/s
    sudo python benchmarks/tun.py --size 100 --reps 7 --server python --rates 0
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from rawtui.lab.demo import start_pyserver
from rawtui.lab.impair import child_env
from rawtui.lab.nginx import find_nginx, start_nginx
from rawtui.lab.server import make_file, sha256_file
from rawtui.lab.topology import Lab

# Runs inside the client namespace: argv[1] = JSON list of (name, argv), argv[2] = reps, argv[3] = output.
_HARNESS = """
import hashlib, json, os, subprocess, sys, time
clients, reps, out = json.loads(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
res = {name: [] for name, _ in clients}
for _ in range(reps):
    for name, argv in clients:
        if os.path.exists(out):
            os.unlink(out)
        t0 = time.perf_counter()
        code = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL).returncode
        wall = time.perf_counter() - t0
        digest = ""
        if os.path.exists(out):
            with open(out, "rb") as f:
                digest = hashlib.file_digest(f, "sha256").hexdigest()
        res[name].append((wall, code, digest))
print(json.dumps(res))
"""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=50, help="MB (10^6 bytes) to download")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--server", choices=["auto", "nginx", "python"], default="auto")
    p.add_argument("--rates", default="0,200", help="tunnel capacities in Mbit/s, comma-separated (0: uncapped)")
    ns = p.parse_args(argv)
    rates = [int(r) for r in ns.rates.split(",")]
    if os.geteuid() != 0:
        print("tun.py: the lab needs root", file=sys.stderr)
        return 3
    size = ns.size * 1_000_000
    with Lab.create(vpn=True) as lab, tempfile.TemporaryDirectory(prefix="rawtui-tun-") as tmp:
        www = Path(tmp) / "www"
        www.mkdir()
        want = sha256_file(make_file(www / "f.bin", size, seed=14))
        server = ns.server
        if server == "auto":
            server = "nginx" if find_nginx() else "python"
        if server == "nginx":
            handle = start_nginx(lab, www, 80)
            url, stop = handle.url + "/f.bin", handle.stop
        else:
            proc = start_pyserver(lab, str(www), 8080)
            url = f"http://{lab.server_ip}:8080/f.bin"

            def stop() -> None:
                lab.stop(proc)
        load = os.getloadavg()[0]
        print(f"tun path (lab VPN: tun0 MTU 1420, userspace UDP tunnel), {ns.size} MB, server {server}, "
              f"{ns.reps} runs each, alternating; load average before {load:.2f}")
        failed = 0
        try:
            out = str(Path(tmp) / "got")
            clients = [("curl", ["curl", "-s", "-o", out, url]),
                       ("rawtui", [sys.executable, "-m", "rawtui", "--headless", "-q", "-o", out, url])]
            for rate in rates:
                tc = ["tc", "qdisc", "replace", "dev", lab.tun_if, "root"]
                tc += ["tbf", "rate", f"{rate}mbit", "burst", "256kb", "latency", "50ms"] if rate else ["pfifo_fast"]
                lab.run(lab.router_ns, tc, check=True)
                res = lab.run(lab.client_ns, [sys.executable, "-c", _HARNESS, json.dumps(clients), str(ns.reps),
                                              out], capture_output=True, text=True, cwd=str(ROOT),
                              timeout=120 + 60 * ns.reps, env=child_env())
                if res.returncode != 0:
                    print(res.stderr, file=sys.stderr)
                    return 1
                print(f" tunnel {'uncapped' if not rate else f'shaped to {rate} Mbit/s'}:")
                failed += _report(json.loads(res.stdout), size, want)
        finally:
            stop()
    print(f"  load average after {os.getloadavg()[0]:.2f}")
    return 1 if failed else 0


def _report(runs: dict[str, list[tuple[float, int, str]]], size: int, want: str) -> int:
    medians = {}
    failed = 0
    for name, rows in runs.items():
        speeds = []
        for wall, code, digest in rows:
            ok = code == 0 and digest == want
            failed += not ok
            speeds.append(size / wall / 1e6 if ok else 0.0)
        medians[name] = statistics.median(speeds)
        print(f"  {name:7s} MB/s " + " ".join(f"{s:6.1f}" for s in speeds)
              + f"   median {medians[name]:6.1f}" + (f"   ({failed} failed or not byte-exact)" if failed else ""))
    if medians.get("curl"):
        print(f"  rawtui / curl (medians): {medians['rawtui'] / medians['curl']:.2f}   (goal >= 0.9)")
    return failed


if __name__ == "__main__":
    sys.exit(main())
