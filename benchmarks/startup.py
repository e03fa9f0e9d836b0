"""Start-up: the wall time of a 1-byte download, rawtui against curl, in the lab (root).

The lab is built, nginx (or the embedded server) serves a 1-byte file, and inside the client namespace
``rawtui --headless -q`` and ``curl -s`` fetch it in turn, ``--runs`` times each; the wall time of each
whole process (interpreter start to exit) is measured from inside the namespace, so ``ip netns exec``
is not counted. It prints the median, the minimum and the maximum; nothing is asserted.

    sudo python benchmarks/startup.py                    # median of 10
    sudo python benchmarks/startup.py --runs 20 --events # and the start-up timeline of the last run
    sudo python benchmarks/startup.py --tree /tmp/old     # also another checkout of rawtui, alternating
    sudo python benchmarks/startup.py --loud              # without -q (the progress bar and summary)

``--events`` makes one more rawtui run with ``--events`` and prints its timeline: when (ms on the
session's clock, which starts once the imports are done) the route was known, the firewall rule
installed, ARP asked and answered, the handshake done, the response in, the connection closed, the
summary out.
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
from rawtui.lab.topology import Lab

# Runs inside the client namespace: argv[1] = JSON list of (name, argv, cwd), argv[2] = runs.
_HARNESS = """
import json, resource, subprocess, sys, time
clients, runs = json.loads(sys.argv[1]), int(sys.argv[2])
out = {name: [] for name, _, _ in clients}
def cpu():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime
for _ in range(runs):
    for name, argv, cwd in clients:
        c0, t0 = cpu(), time.perf_counter()
        code = subprocess.run(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL).returncode
        out[name].append((time.perf_counter() - t0, code, cpu() - c0))
print(json.dumps(out))
"""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--events", action="store_true", help="print the start-up timeline of one more run")
    p.add_argument("--server", choices=["auto", "nginx", "python"], default="auto")
    p.add_argument("--tree", action="append", default=[], metavar="DIR",
                   help="also time the rawtui of this checkout (python -m rawtui run from DIR)")
    p.add_argument("--loud", action="store_true", help="without -q: the progress bar and the summary")
    ns = p.parse_args(argv)
    if os.geteuid() != 0:
        print("startup.py: the lab needs root", file=sys.stderr)
        return 3
    trees = [ROOT, *(Path(t).resolve() for t in ns.tree)]
    for tree in trees:  # as pip does on install: no child compiles a module inside its timed start-up
        compileall.compile_dir(tree / "rawtui", quiet=1)
    with Lab.create() as lab, tempfile.TemporaryDirectory(prefix="rawtui-startup-") as tmp:
        www = Path(tmp) / "www"
        www.mkdir()
        (www / "one").write_bytes(b"x")
        server = ns.server
        if server == "auto":
            server = "nginx" if find_nginx() else "python"
        if server == "nginx":
            handle = start_nginx(lab, www, 80)
            url, stop = handle.url + "/one", handle.stop
        else:
            proc = start_pyserver(lab, str(www), 8080)
            url = f"http://{lab.server_ip}:8080/one"

            def stop() -> None:
                lab.stop(proc)
        try:
            out = Path(tmp) / "got"
            quiet = [] if ns.loud else ["-q"]
            clients = [(f"rawtui {tree}" if i else "rawtui",
                        [sys.executable, "-m", "rawtui", "--headless", *quiet, "-o", str(out), url], str(tree))
                       for i, tree in enumerate(trees)]
            clients.append(("curl", ["curl", "-s", "-o", str(out), url], str(ROOT)))
            res = lab.run(lab.client_ns, [sys.executable, "-c", _HARNESS, json.dumps(clients), str(ns.runs)],
                          capture_output=True, text=True, cwd=str(ROOT), timeout=60 + 30 * ns.runs)
            if res.returncode != 0:
                print(res.stderr, file=sys.stderr)
                return 1
            times = json.loads(res.stdout)
            print(f"1-byte download, server {server}, {ns.runs} runs each, wall time of the process:")
            for name, runs in times.items():
                secs = [t for t, _, _ in runs]
                bad = sum(code != 0 for _, code, _ in runs)
                cpu = statistics.median(c for _, _, c in runs)
                print(f"  {name:20s} median {statistics.median(secs) * 1e3:7.1f} ms   min {min(secs) * 1e3:7.1f}"
                      f"   max {max(secs) * 1e3:7.1f} ms   CPU median {cpu * 1e3:6.1f} ms"
                      + (f"   ({bad} failed)" if bad else ""))
            if ns.events:
                ev = Path(tmp) / "events.ndjson"
                lab.run(lab.client_ns, [sys.executable, "-m", "rawtui", "--headless", "-q", "-o", str(out),
                                        "--events", str(ev), url], cwd=str(ROOT), timeout=60)
                _timeline(ev)
        finally:
            stop()
    return 0


def _timeline(path: Path) -> None:
    print("  timeline of one more run (ms on the session's clock):")
    for line in path.read_text().splitlines():
        e = json.loads(line)
        if e["type"] not in ("segment_in", "segment_out", "window", "progress"):
            what = e.get("new") or e.get("message") or ""
            print(f"    {e['t'] * 1e3:8.1f}  {e['type']} {what}"[:110])


if __name__ == "__main__":
    sys.exit(main())
