"""`python -m rawtui.tools.bench`: rawtui against curl, side by side in one run, on the lab's links.

For each link the lab is built, a file generated and served (nginx when installed, else the embedded
server), then curl, ``rawtui --headless`` and the Textual app (run headless, no terminal) download it in
turn, alternating, ``--reps`` times each. Every download is checked byte-exact. The table gives goodput
(file size / wall time of the whole process, start-up included, as a user waits for it), CPU seconds and
peak RSS of the downloading process, and the ratios rawtui/curl and TUI/headless. Targets are printed
beside the numbers; nothing is asserted.

Links: 1 uncapped veth (kernel forwarding, offloads as the kernel sets them); 2 a 100 Mbit/s bottleneck
with 20 ms RTT; 3 2 % loss with 20 ms RTT; 4 a 1 GB file uncapped (peak RSS). Links 2 and 3 go through
the lab's impairment relay (rawtui.lab.impair).
"""

from __future__ import annotations

import argparse
import compileall
import datetime as dt
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

from rawtui.lab.server import make_file, sha256_file
from rawtui.lab.topology import Lab

CLIENTS = ("curl", "headless", "tui")


@dataclass
class Link:
    number: int
    name: str
    size: int
    down: dict[str, float] = field(default_factory=dict)  # relay knobs, server -> client
    up: dict[str, float] = field(default_factory=dict)  # relay knobs, client -> server
    targets: dict[str, float] = field(default_factory=dict)  # ratio goals, printed beside the numbers

    @property
    def relayed(self) -> bool:
        return bool(self.down or self.up)


def links(quick: bool) -> list[Link]:
    mb = 1 << 20
    return [
        Link(1, "uncapped veth", 8 * mb if quick else 200 * mb,
             targets={"headless/curl": 0.30, "tui/headless": 0.80}),
        Link(2, "100 Mbit/s, 20 ms RTT", 4 * mb if quick else 50 * mb,
             down={"rate_bps": 100_000_000, "delay_ms": 10, "queue": 200}, up={"delay_ms": 10},
             targets={"headless/curl": 0.95}),
        Link(3, "2 % loss, 20 ms RTT", 2 * mb if quick else 20 * mb,
             down={"loss": 2.0, "delay_ms": 10}, up={"delay_ms": 10}, targets={"headless/curl": 0.80}),
        Link(4, "1 GB uncapped (peak RSS)", 32 * mb if quick else 1024 * mb,
             targets={"headless RSS MB": 80}),
    ]


@dataclass
class Run:
    client: str
    seconds: float
    cpu: float
    rss_mb: float
    ok: bool
    note: str = ""


def _wait(proc: subprocess.Popen[bytes], timeout: float) -> tuple[int, float, float]:
    """Wait for the child; return (exit code, CPU seconds, peak RSS MB) from its own rusage."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024
        if time.monotonic() > deadline:
            proc.kill()
            pid, status, ru = os.wait4(proc.pid, 0)
            proc.returncode = -9
            return -9, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024
        time.sleep(0.005)


def run_client(lab: Lab, client: str, url: str, out: Path, want: str, timeout: float) -> Run:
    if client == "curl":
        argv = ["curl", "-s", "-o", str(out), url]
    else:
        argv = [sys.executable, "-m", "rawtui", "-q", "-o", str(out), url]
        argv.insert(3, "--headless" if client == "headless" else "--tui-headless")
    t0 = time.monotonic()
    proc = subprocess.Popen(lab.exec_argv(lab.client_ns, argv), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    code, cpu, rss = _wait(proc, timeout)
    seconds = time.monotonic() - t0
    err = proc.stderr.read().decode(errors="replace").strip() if proc.stderr else ""
    ok = code == 0 and out.exists() and sha256_file(out) == want
    note = "" if ok else (err.splitlines()[-1] if err else f"exit {code}")
    out.unlink(missing_ok=True)
    return Run(client, seconds, cpu, rss, ok, note)


def bench_link(link: Link, reps: int, server: str, console: Console) -> dict[str, list[Run]]:
    results: dict[str, list[Run]] = {c: [] for c in CLIENTS}
    with Lab.create() as lab, tempfile.TemporaryDirectory(prefix="rawtui-bench-") as tmp:
        www = Path(tmp) / "www"
        www.mkdir()
        src = make_file(www / "f.bin", link.size)
        want = sha256_file(src)
        if link.relayed:
            from rawtui.lab.control import LabControl
            from rawtui.lab.impair import start_relay

            control = str(Path(tmp) / "control.sock")
            start_relay(lab, control)
            with LabControl(control) as ctl:
                if link.down:
                    ctl.set("down", None, **link.down)
                if link.up:
                    ctl.set("up", None, **link.up)
        if server == "nginx":
            from rawtui.lab.nginx import start_nginx

            url = start_nginx(lab, www, 80).url + "/f.bin"
        else:
            from rawtui.lab.demo import start_pyserver

            start_pyserver(lab, str(www), 8080)
            url = f"http://{lab.server_ip}:8080/f.bin"
        out = Path(tmp) / "out.bin"
        timeout = 60 + link.size / 1e6  # generous: >= 1 MB/s
        for rep in range(reps):
            for client in CLIENTS:
                r = run_client(lab, client, url, out, want, timeout)
                results[client].append(r)
                mbps = link.size / 1e6 / r.seconds
                status = "ok" if r.ok else f"[red]FAILED[/] {r.note}"
                console.print(f"  link {link.number} rep {rep + 1} {client:8} {mbps:8.1f} MB/s  "
                              f"cpu {r.cpu:5.2f} s  rss {r.rss_mb:6.1f} MB  {status}", highlight=False)
    return results


def _median(runs: list[Run], attr: str) -> float:
    vals = [getattr(r, attr) for r in runs if r.ok]
    return statistics.median(vals) if vals else float("nan")


def summarise(all_results: list[tuple[Link, dict[str, list[Run]]]]) -> tuple[Table, list[str]]:
    tbl = Table(title="rawtui vs curl (median of the runs; goodput = size / wall time of the process)")
    for col in ("link", "size", "client", "MB/s", "CPU s", "peak RSS MB", "runs ok"):
        tbl.add_column(col, justify="right" if col not in ("link", "client") else "left")
    md = ["| link | size | client | MB/s | CPU s | peak RSS MB | runs ok |", "|---|---:|---|---:|---:|---:|---:|"]
    ratios: list[str] = []
    for link, res in all_results:
        speeds = {}
        for client in CLIENTS:
            runs = res[client]
            secs = _median(runs, "seconds")
            speed = link.size / 1e6 / secs if not math.isnan(secs) else float("nan")
            speeds[client] = speed
            row = (f"{link.number} {link.name}", f"{link.size / (1 << 20):.0f} MiB", client, f"{speed:.1f}",
                   f"{_median(runs, 'cpu'):.2f}", f"{_median(runs, 'rss_mb'):.0f}",
                   f"{sum(r.ok for r in runs)}/{len(runs)}")
            tbl.add_row(*row)
            md.append("| " + " | ".join(row) + " |")
        hc = speeds["headless"] / speeds["curl"]
        th = speeds["tui"] / speeds["headless"]
        rss = _median(res["headless"], "rss_mb")
        line = f"link {link.number} ({link.name}): headless/curl {hc:.2f}, tui/headless {th:.2f}, " \
               f"headless peak RSS {rss:.0f} MB"
        goals = ", ".join(f"{k} goal {v:g}" for k, v in link.targets.items())
        ratios.append(f"{line}   [{goals}]")
    return tbl, md + [""] + [f"- {r}" for r in ratios]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m rawtui.tools.bench", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small files, 1 repetition (CI)")
    p.add_argument("--reps", type=int, default=None, help="repetitions per client (default 3, quick 1)")
    p.add_argument("--links", default="1,2,3,4", help="which links, e.g. 1,3")
    p.add_argument("--server", choices=["auto", "nginx", "python"], default="auto")
    p.add_argument("--markdown", metavar="FILE", help="also write the table as Markdown")
    ns = p.parse_args(argv)
    if os.geteuid() != 0:
        print("rawtui.tools.bench: error: the benchmark builds network namespaces: run it as root", file=sys.stderr)
        return 3
    reps = ns.reps or (1 if ns.quick else 3)
    # the children import this very package: compile it first, as pip does on install, or with
    # PYTHONDONTWRITEBYTECODE set every child would compile every module inside its timed start-up
    compileall.compile_dir(Path(__file__).resolve().parents[1], quiet=1)
    server = ns.server
    if server == "auto":
        from rawtui.lab.nginx import find_nginx

        server = "nginx" if find_nginx() else "python"
    wanted = {int(x) for x in ns.links.split(",") if x.strip()}
    console = Console(stderr=True, emoji=False)
    results = []
    for link in links(ns.quick):
        if link.number in wanted:
            console.print(f"[bold]link {link.number}: {link.name}, {link.size / (1 << 20):.0f} MiB, "
                          f"server {server}[/]")
            results.append((link, bench_link(link, reps, server, console)))
    tbl, md = summarise(results)
    out = Console(emoji=False)
    out.print(tbl)
    for line in md:
        if line.startswith("- "):
            out.print(line[2:], highlight=False)
    if ns.markdown:
        head = (f"Measured {dt.date.today().isoformat()} on {platform.node() or 'this machine'}: "
                f"{os.cpu_count()} cores, Python {platform.python_version()}, Linux {platform.release()}, "
                f"server {server}, {reps} run(s) per client.\n\n")
        Path(ns.markdown).write_text(head + "\n".join(md) + "\n")
    failed = sum(not r.ok for _, res in results for runs in res.values() for r in runs)
    if failed:
        print(f"rawtui.tools.bench: {failed} download(s) failed or were not byte-exact", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

