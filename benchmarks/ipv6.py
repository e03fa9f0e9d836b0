"""IPv6 against IPv4: rawtui's goodput over each family on the same uncapped lab link, in the same run.

A dual-stack lab (``Lab.create(ipv6=True)``: kernel forwarding in the router, no relay, offloads as the
kernel sets them) and one server listening on both families (nginx when installed, else the embedded
server; ``--server``) serve one random file. Inside the client namespace ``rawtui --headless`` over
IPv4 and over IPv6, and ``curl -4`` / ``curl -6`` for reference, download it in turn, alternating,
``--reps`` times each; every download is checked byte-exact. Goodput is the file's size over the
download's own time (rawtui: its summary's duration, from the session's start to the last body byte;
curl: ``time_total``) and, beside it, over the wall time of the whole process. It prints the medians and
the ratios IPv6 / IPv4 (the goal: rawtui's IPv6 goodput ≥ 0.9× its IPv4 goodput); nothing is asserted.

    sudo .venv/bin/python benchmarks/ipv6.py                 # 200 MiB, 5 reps
    sudo .venv/bin/python benchmarks/ipv6.py --size-mib 50 --reps 9
"""

from __future__ import annotations

import argparse
import compileall
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
from rawtui.lab.nginx import find_nginx, start_nginx
from rawtui.lab.server import make_file, sha256_file
from rawtui.lab.topology import Lab

PORT = 8080
MIB = 1 << 20

# Runs inside the client namespace. argv[1] = JSON list of (name, argv, events path or ""), argv[2] = reps,
# argv[3] = the output file, argv[4] = its expected sha256. Prints one JSON object: name -> runs of
# (wall s, transfer s or None, exit code, byte-exact).
_HARNESS = """
import hashlib, json, subprocess, sys, time
clients, reps, out, want = json.loads(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
runs = {name: [] for name, _, _ in clients}
def digest(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()
for _ in range(reps):
    for name, argv, events in clients:
        t0 = time.perf_counter()
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              text=True)
        wall = time.perf_counter() - t0
        transfer = None
        if events:
            for line in open(events):
                event = json.loads(line)
                if event["type"] == "done":
                    transfer = event["duration_s"]
        elif done.returncode == 0:
            transfer = float(done.stdout.strip() or "nan")
        runs[name].append((wall, transfer, done.returncode, done.returncode == 0 and digest(out) == want))
print(json.dumps(runs))
"""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--size-mib", type=int, default=200)
    p.add_argument("--server", choices=["auto", "nginx", "python"], default="auto")
    ns = p.parse_args(argv)
    if os.geteuid() != 0:
        print("ipv6.py: the lab needs root", file=sys.stderr)
        return 3
    compileall.compile_dir(ROOT / "rawtui", quiet=1)  # no child compiles a module inside its timed run
    server = ns.server if ns.server != "auto" else ("nginx" if find_nginx() else "python")
    size = ns.size_mib * MIB
    with Lab.create(ipv6=True) as lab, tempfile.TemporaryDirectory(prefix="rawtui-ipv6-bench-") as tmp:
        www = Path(tmp) / "www"
        www.mkdir()
        make_file(www / "f.bin", size, seed=6)
        want = sha256_file(www / "f.bin")
        if server == "nginx":
            handle = start_nginx(lab, www, PORT)
            stop = handle.stop
        else:
            proc = start_pyserver(lab, str(www), PORT)  # (listening on ::, both families)

            def stop() -> None:
                lab.stop(proc)
        urls = {4: f"http://{lab.server_ip}:{PORT}/f.bin", 6: f"http://[{lab.server_ip6}]:{PORT}/f.bin"}
        out = str(Path(tmp) / "got")
        clients = []
        for family in (4, 6):
            events = str(Path(tmp) / f"ev{family}.ndjson")
            clients.append((f"rawtui IPv{family}", [sys.executable, "-m", "rawtui", "--headless", "-q", "-o", out,
                                                    "--events", events, urls[family]], events))
        for family in (4, 6):
            clients.append((f"curl -{family}", ["curl", "-s", f"-{family}", "-o", out, "-w", "%{time_total}",
                                                urls[family]], ""))
        try:
            res = lab.run(lab.client_ns, [sys.executable, "-c", _HARNESS, json.dumps(clients), str(ns.reps), out,
                                          want], capture_output=True, text=True, cwd=str(ROOT),
                          timeout=120 + 60 * ns.reps)
        finally:
            stop()
        if res.returncode != 0:
            print(res.stderr, file=sys.stderr)
            return 1
    runs = json.loads(res.stdout)
    print(f"{ns.size_mib} MiB over the uncapped dual-stack lab link, server {server}, {ns.reps} reps each, "
          "alternating (MB/s: 10^6 bytes per second; median [min-max])")
    print(f"  {'client':12s} {'goodput (transfer)':>26s} {'goodput (whole process)':>28s}")
    medians: dict[str, tuple[float, float]] = {}
    failed = 0
    for name, samples in runs.items():
        good = [(wall, transfer) for wall, transfer, code, exact in samples if code == 0 and exact]
        failed += len(samples) - len(good)
        if not good:
            print(f"  {name:12s} every run failed")
            continue
        transfer = [size / t / 1e6 for _, t in good if t]
        whole = [size / w / 1e6 for w, _ in good]
        medians[name] = (statistics.median(transfer), statistics.median(whole))
        print(f"  {name:12s} {_spread(transfer):>26s} {_spread(whole):>28s}"
              + (f"   ({len(samples) - len(good)} failed or not byte-exact)" if len(good) < len(samples) else ""))
    for tool in ("rawtui", "curl"):
        v4, v6 = medians.get(f"{tool} IPv4" if tool == "rawtui" else "curl -4"), \
            medians.get(f"{tool} IPv6" if tool == "rawtui" else "curl -6")
        if v4 and v6:
            goal = "  (goal ≥ 0.9: " + ("✓" if v6[0] / v4[0] >= 0.9 else "✗") + ")" if tool == "rawtui" else ""
            print(f"  {tool} IPv6 / IPv4: {v6[0] / v4[0]:.2f} (transfer), {v6[1] / v4[1]:.2f} (whole process){goal}")
    if "rawtui IPv6" in medians and "curl -6" in medians:
        print(f"  rawtui / curl over IPv6: {medians['rawtui IPv6'][0] / medians['curl -6'][0]:.2f} (transfer)")
    return 1 if failed else 0


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):7.0f} [{min(values):.0f}-{max(values):.0f}]"


if __name__ == "__main__":
    sys.exit(main())
