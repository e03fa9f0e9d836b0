"""`python -m rawtui.tools.bench`: rawtui against curl, side by side in one run, and every goal of the table.

For each link the lab is built, a file generated and served (nginx when installed, else the embedded
server; link 2 always the embedded Python server) once written out to the disk (not written back beside the
timed runs), then, after one untimed curl download (``--warmup``), curl, ``rawtui --headless`` and the live
view (the Textual app run without a terminal: ``--tui-headless``, its download in a forked child as in a
terminal) download it in turn, alternating, ``--reps`` times each. Every download is checked byte-exact. Times are
the wall time of the whole process (start-up included, as a user waits for it); CPU seconds and peak RSS
are the downloading process's own (with the live view's download child). Random loss is seeded and
restarted before every download, so that curl and rawtui meet the same drops (the same frames of their
stream: the relay's ``seed`` command, or an nftables rule counting frames).

The links (``--links 1,3`` reruns some of them):

1. uncapped veth, 200 MiB (kernel forwarding, offloads as the kernel sets them: 64 KB super-frames);
2. the same with the embedded Python server and a 100 MB file;
3. / 4. a 100 Mbit/s bottleneck (queue 200 frames), 20 ms RTT: 25 MB / 50 MiB;
5. 2 % loss, 20 ms RTT, 20 MiB;
6. a lossy WAN: 50 Mbit/s (queue 300 frames), 50 ms RTT, 1 % loss, 50 MiB;
7. 2 % loss, no added delay, the server's TSO/GSO off (every frame MTU-sized), 20 MB: kernel forwarding,
   dropped by an nftables rule on the router (a seeded set of 2 % of the frame numbers modulo 10,000);
8. a 1-byte file, 10 downloads each (start-up: the median wall time);
9. 1 GiB uncapped (peak RSS).

Links 3-6 go through the lab's impairment relay (rawtui.lab.impair). At the end the table of goals is
printed with ✓ / ✗; nothing is asserted: the exit status is 1 only when a download failed or was not
byte-exact.
"""

from __future__ import annotations

import argparse
import compileall
import datetime as dt
import math
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

from rawtui.lab.server import make_file, sha256_file
from rawtui.lab.topology import Lab

CLIENTS = ("curl", "headless", "tui")
SEED = 18  # the loss pattern's seed: the same for every download of a run
MB, MIB = 1_000_000, 1 << 20
NFT_TABLE = "rawtui_bench"
NFT_PERIOD = 10_000  # link 7: frames numbered modulo this; a seeded 2 % of the numbers are dropped


@dataclass
class Link:
    number: int
    name: str
    size: int
    quick_size: int
    server: str = "auto"  # "auto" (the --server choice) or "python"
    down: dict[str, float] = field(default_factory=dict)  # relay knobs, server -> client
    up: dict[str, float] = field(default_factory=dict)  # relay knobs, client -> server
    nft_loss: float = 0.0  # % of the server's data frames dropped by the router's kernel (nftables)
    server_offloads_off: bool = False  # ethtool -K <server veth> tso off gso off
    clients: tuple[str, ...] = CLIENTS
    reps: int | None = None  # this many runs per client whatever --reps says (the 1-byte link)

    @property
    def relayed(self) -> bool:
        return bool(self.down or self.up)


LINKS = [
    Link(1, "uncapped veth", 200 * MIB, 8 * MIB),
    Link(2, "uncapped veth, Python server", 100 * MB, 8 * MB, server="python"),
    Link(3, "100 Mbit/s, 20 ms RTT", 25 * MB, 2 * MB,
         down={"rate_bps": 100_000_000, "delay_ms": 10, "queue": 200}, up={"delay_ms": 10}),
    Link(4, "100 Mbit/s, 20 ms RTT", 50 * MIB, 4 * MIB,
         down={"rate_bps": 100_000_000, "delay_ms": 10, "queue": 200}, up={"delay_ms": 10}),
    Link(5, "2 % loss, 20 ms RTT", 20 * MIB, 2 * MIB, down={"loss": 2.0, "delay_ms": 10}, up={"delay_ms": 10}),
    Link(6, "lossy WAN: 50 Mbit/s, 50 ms RTT, 1 % loss", 50 * MIB, 2 * MIB,
         down={"rate_bps": 50_000_000, "delay_ms": 25, "queue": 300, "loss": 1.0}, up={"delay_ms": 25}),
    Link(7, "2 % loss, no delay, server TSO/GSO off", 20 * MB, 4 * MB, nft_loss=2.0, server_offloads_off=True),
    Link(8, "1-byte file (start-up)", 1, 1, clients=("curl", "headless"), reps=10),
    Link(9, "1 GiB uncapped (peak RSS)", 1024 * MIB, 32 * MIB),
]


@dataclass
class Run:
    client: str
    seconds: float
    cpu: float
    rss_mb: float
    ok: bool
    note: str = ""


Results = dict[int, tuple[Link, int, dict[str, list[Run]]]]  # link number -> (link, size, runs per client)


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
        time.sleep(0.002)


def run_client(lab: Lab, client: str, url: str, out: Path, want: str, timeout: float) -> Run:
    if client == "curl":
        argv = ["curl", "-s", "-o", str(out), url]
    else:
        mode = "--headless" if client == "headless" else "--tui-headless"
        argv = [sys.executable, "-m", "rawtui", mode, "-q", "-o", str(out), url]
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


def settle(path: Path) -> None:
    """Write ``path`` out to the disk now (fsync): a file just made is dirty in the page cache, and its
    writeback, started by the kernel seconds later, would run beside the timed downloads (measured on a VM:
    the first curl of a fresh 1 GiB file took 3.2 s, 3.2 s of CPU, the next ones 1.2-1.4 s)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class NftLoss:
    """Drop ``percent`` % of the server's data frames in the router's forwarding path, the same ones each
    time: frames are numbered by an nftables counter (``numgen inc``) that restarts when the table is made
    again (:meth:`restart`, before every download), and a seeded set of the numbers is dropped."""

    def __init__(self, lab: Lab, tmp: Path, percent: float, port: int) -> None:
        self.lab = lab
        drops = sorted(random.Random(SEED).sample(range(NFT_PERIOD), round(NFT_PERIOD * percent / 100)))
        self.rules = tmp / "loss.nft"
        self.rules.write_text(
            f"table ip {NFT_TABLE} {{ chain forward {{ type filter hook forward priority 0; policy accept; "
            f"ip saddr {lab.server_ip} tcp sport {port} ip length > 100 "
            f"numgen inc mod {NFT_PERIOD} {{ {', '.join(map(str, drops))} }} drop; }}; }}\n")

    def restart(self) -> None:
        self.lab.run(self.lab.router_ns, ["nft", "delete", "table", "ip", NFT_TABLE], capture_output=True)
        res = self.lab.run(self.lab.router_ns, ["nft", "-f", str(self.rules)], capture_output=True, text=True)
        if res.returncode:
            raise SystemExit(f"rawtui.tools.bench: error: nft: {res.stderr.strip()}")


def bench_link(link: Link, size: int, reps: int, server: str, console: Console,
               warmup: int = 1) -> dict[str, list[Run]]:
    results: dict[str, list[Run]] = {c: [] for c in link.clients}
    with ExitStack() as stack:
        lab = stack.enter_context(Lab.create())
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="rawtui-bench-")))
        www = tmp / "www"
        www.mkdir()
        src = make_file(www / "f.bin", size)
        settle(src)
        want = sha256_file(src)
        restart: Callable[[], None] = lambda: None
        if link.relayed:
            from rawtui.lab.control import LabControl
            from rawtui.lab.impair import start_relay

            control = str(tmp / "control.sock")
            start_relay(lab, control, seed=SEED)
            ctl = stack.enter_context(LabControl(control))
            if link.down:
                ctl.set("down", None, **link.down)
            if link.up:
                ctl.set("up", None, **link.up)
            restart = lambda: ctl.seed(SEED)
        if link.server_offloads_off and not lab.set_offloads(lab.server_ns, lab.server_if, tso=False, gso=False):
            console.print("  [yellow]ethtool is not installed: the server's TSO/GSO stay on[/]")
        server = "python" if link.server == "python" else server
        if server == "nginx":
            from rawtui.lab.nginx import start_nginx

            port = 80
            url = start_nginx(lab, www, port).url + "/f.bin"
        else:
            from rawtui.lab.demo import start_pyserver

            port = 8080
            start_pyserver(lab, str(www), port)
            url = f"http://{lab.server_ip}:{port}/f.bin"
        if link.nft_loss:
            restart = NftLoss(lab, tmp, link.nft_loss, port).restart
        out = tmp / "out.bin"
        timeout = 60 + size / 1e6  # generous: >= 1 MB/s
        for _ in range(warmup):  # untimed: the first download of a fresh lab paid for what later ones reuse
            restart()
            r = run_client(lab, "curl", url, out, want, timeout)
            console.print(f"  link {link.number} warm-up curl {r.seconds:7.3f} s  {'ok' if r.ok else r.note}",
                          highlight=False)
        for rep in range(reps):
            for client in link.clients:
                restart()
                r = run_client(lab, client, url, out, want, timeout)
                results[client].append(r)
                status = "ok" if r.ok else f"[red]FAILED[/] {r.note}"
                console.print(f"  link {link.number} rep {rep + 1} {client:8} {size / 1e6 / r.seconds:8.1f} MB/s  "
                              f"{r.seconds:7.3f} s  cpu {r.cpu:5.2f} s  rss {r.rss_mb:6.1f} MB  {status}",
                              highlight=False)
    return results


def _median(runs: list[Run], attr: str) -> float:
    vals = [getattr(r, attr) for r in runs if r.ok]
    return statistics.median(vals) if vals else float("nan")


def _size_text(size: int) -> str:
    if size < 1000:
        return f"{size} B"
    return f"{size / MIB:g} MiB" if size % MIB == 0 else f"{size / MB:g} MB"


@dataclass
class Goal:
    what: str
    links: tuple[int, ...]  # the links it needs
    value: Callable[[Results], tuple[float, str]]  # (the measured value, a note)
    target: float
    higher_is_better: bool = True
    unit: str = ""
    today: str = ""  # the issue's figure before this round

    def judge(self, results: Results) -> tuple[str, str, str]:
        if not all(n in results for n in self.links):
            return "not run", "", "–"
        v, note = self.value(results)
        if math.isnan(v):
            return "failed", note, "✗"
        ok = v >= self.target if self.higher_is_better else v <= self.target
        digits = 0 if self.unit == " MB" else 2
        while digits < 4 and v != self.target and round(v, digits) == self.target:
            digits += 1  # a value that only rounds to the target is shown with the digit that decides
        shown = f"{v:.{digits}f}{self.unit}"
        return shown, note, "✓" if ok else "✗"

    @property
    def goal_text(self) -> str:
        t = f"{self.target:g}{self.unit}"
        return f"≥ {t}" if self.higher_is_better else f"≤ {t}"


def speed(results: Results, n: int, client: str) -> float:
    _, size, res = results[n]
    secs = _median(res[client], "seconds")
    return size / 1e6 / secs if not math.isnan(secs) else float("nan")


def ratio(n: int, a: str = "headless", b: str = "curl") -> Callable[[Results], tuple[float, str]]:
    return lambda r: (speed(r, n, a) / speed(r, n, b), "")


def _live_view(results: Results) -> tuple[float, str]:
    vals = {n: speed(results, n, "tui") / speed(results, n, "headless")
            for n, (link, _, _) in results.items() if "tui" in link.clients}
    vals = {n: v for n, v in vals.items() if not math.isnan(v)}
    if not vals:
        return float("nan"), "no link with the live view"
    worst = min(vals, key=lambda n: vals[n])
    return vals[worst], "worst: link " + str(worst) + " (" + ", ".join(f"{n}: {v:.2f}" for n, v in vals.items()) + ")"


def _start_up(results: Results) -> tuple[float, str]:
    _, _, res = results[8]
    return _median(res["headless"], "seconds"), f"curl {_median(res['curl'], 'seconds'):.3f} s"


def _cpu(results: Results) -> tuple[float, str]:
    _, _, res = results[4]
    ours, curls = _median(res["headless"], "cpu"), _median(res["curl"], "cpu")
    return ours / curls, f"{ours:.2f} s / {curls:.2f} s"


def _rss(results: Results) -> tuple[float, str]:
    _, _, res = results[9]
    return _median(res["headless"], "rss_mb"), f"curl {_median(res['curl'], 'rss_mb'):.0f} MB"


GOALS = [
    Goal("uncapped veth, 200 MiB, headless/curl", (1,), ratio(1), 0.6, today="0.43"),
    Goal("uncapped veth, 100 MB, Python server, headless/curl (wall incl. start-up)", (2,), ratio(2), 0.4,
         today="0.19–0.23"),
    Goal("100 Mbit/s, 20 ms, 25 MB, headless/curl", (3,), ratio(3), 0.95, today="0.89"),
    Goal("100 Mbit/s, 20 ms, 50 MiB, headless/curl", (4,), ratio(4), 0.98, today="0.96"),
    Goal("2 % loss, 20 ms, 20 MiB, headless/curl", (5,), ratio(5), 0.95, today="0.76"),
    Goal("lossy WAN: 50 Mbit/s, 50 ms, 1 % loss, 50 MiB, headless/curl", (6,), ratio(6), 0.95, today="—"),
    Goal("2 % loss, no delay, server TSO/GSO off, 20 MB, headless/curl (wall)", (7,), ratio(7), 0.25,
         today="0.13"),
    Goal("live view / headless, every link", (), _live_view, 0.9, today="0.72 (uncapped)"),
    Goal("1-byte download, headless, wall, median of 10", (8,), _start_up, 0.15, higher_is_better=False,
         unit=" s", today="~0.3 s"),
    Goal("CPU seconds / curl's at 100 Mbit/s (link 4)", (4,), _cpu, 2.5, higher_is_better=False, unit="×",
         today="4–5×"),
    Goal("peak RSS, 1 GiB, headless", (9,), _rss, 60, higher_is_better=False, unit=" MB", today="53 MB"),
]


def summarise(results: Results, quick: bool = False) -> tuple[Table, Table, list[str]]:
    runs_tbl = Table(title="rawtui vs curl (median of the runs; MB/s = size / wall time of the process)")
    cols = ("link", "size", "client", "MB/s", "wall s", "CPU s", "peak RSS MB", "runs ok")
    for col in cols:
        runs_tbl.add_column(col, justify="left" if col in ("link", "client") else "right")
    md = ["| " + " | ".join(cols) + " |", "|---|---:|---|---:|---:|---:|---:|---:|"]
    for n, (link, size, res) in sorted(results.items()):
        for client in link.clients:
            runs = res[client]
            row = (f"{n} {link.name}", _size_text(size), client, f"{speed(results, n, client):.1f}",
                   f"{_median(runs, 'seconds'):.3f}", f"{_median(runs, 'cpu'):.2f}", f"{_median(runs, 'rss_mb'):.0f}",
                   f"{sum(r.ok for r in runs)}/{len(runs)}")
            runs_tbl.add_row(*row)
            md.append("| " + " | ".join(row) + " |")
    goals_tbl = Table(title="the goals" + (" (quick: small files, not the goals' sizes)" if quick else ""))
    gcols = ("goal", "before", "measured", "target", "", "note")
    for col in gcols:
        goals_tbl.add_column(col, justify="left" if col in ("goal", "note") else "right")
    md += ["", "| " + " | ".join(gcols) + " |", "|---|---:|---:|---:|:-:|---|"]
    for g in GOALS:
        if g.links == () and not any("tui" in link.clients for link, _, _ in results.values()):
            continue
        shown, note, mark = g.judge(results)
        grow = (g.what, g.today, shown, g.goal_text, mark, note)
        goals_tbl.add_row(*grow)
        md.append("| " + " | ".join(grow) + " |")
    return runs_tbl, goals_tbl, md


def _cpu_busy() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine so far (/proc/stat)."""
    with open("/proc/stat") as f:
        vals = [int(x) for x in f.readline().split()[1:]]
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
    return sum(vals) - idle, sum(vals)


def _busy_share(a: tuple[int, int], b: tuple[int, int]) -> float:
    return (b[0] - a[0]) / max(1, b[1] - a[1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m rawtui.tools.bench", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small files, 1 repetition (CI): reports, never fails on a ✗")
    p.add_argument("--reps", type=int, default=None, help="repetitions per client (default 3, quick 1)")
    p.add_argument("--links", default=",".join(str(link.number) for link in LINKS),
                   help="which links, e.g. 1,3 (default: all)")
    p.add_argument("--server", choices=["auto", "nginx", "python"], default="auto",
                   help="the server of every link but 2 (always Python's)")
    p.add_argument("--markdown", metavar="FILE", help="also write the tables as Markdown")
    p.add_argument("--warmup", type=int, default=None,
                   help="untimed curl downloads per link before the timed ones (default 1, quick 0)")
    ns = p.parse_args(argv)
    if os.geteuid() != 0:
        print("rawtui.tools.bench: error: the benchmark builds network namespaces: run it as root", file=sys.stderr)
        return 3
    try:
        wanted = {int(x) for x in ns.links.split(",") if x.strip()}
    except ValueError:
        p.error(f"--links {ns.links!r}: link numbers separated by commas, e.g. 1,3")
    unknown = wanted - {link.number for link in LINKS}
    if unknown:
        p.error(f"--links: no link {', '.join(map(str, sorted(unknown)))} (1 to {len(LINKS)})")
    reps = ns.reps or (1 if ns.quick else 3)
    if ns.warmup is not None and ns.warmup < 0:
        p.error(f"--warmup {ns.warmup}: a number of downloads, 0 or more")
    warmup = ns.warmup if ns.warmup is not None else (0 if ns.quick else 1)
    # the children import this very package: compile it first, as pip does on install, or with
    # PYTHONDONTWRITEBYTECODE set every child would compile every module inside its timed start-up
    compileall.compile_dir(Path(__file__).resolve().parents[1], quiet=1)
    server = ns.server
    if server == "auto":
        from rawtui.lab.nginx import find_nginx

        server = "nginx" if find_nginx() else "python"
    console = Console(stderr=True, emoji=False)
    before = _cpu_busy()
    time.sleep(1.0)
    idle_busy = _busy_share(before, _cpu_busy())  # others' load: nothing of ours runs yet
    load_before = os.getloadavg()[0]
    started = time.monotonic()
    run_start = _cpu_busy()
    results: Results = {}
    for link in LINKS:
        if link.number not in wanted:
            continue
        if link.nft_loss and shutil.which("nft") is None:
            console.print(f"[yellow]link {link.number} skipped: it needs nft (Debian: apt-get install nftables)[/]")
            continue
        size = link.quick_size if ns.quick else link.size
        link_reps = min(link.reps, 3) if link.reps and ns.quick else (link.reps or reps)
        console.print(f"[bold]link {link.number}: {link.name}, {_size_text(size)}, "
                      f"server {'python' if link.server == 'python' else server}[/]", highlight=False)
        results[link.number] = (link, size, bench_link(link, size, link_reps, server, console, warmup))
    elapsed = time.monotonic() - started
    during = _busy_share(run_start, _cpu_busy())
    runs_tbl, goals_tbl, md = summarise(results, ns.quick)
    out = Console(emoji=False, width=max(160, Console().width))
    out.print(runs_tbl)
    out.print(goals_tbl)
    machine = (f"{os.cpu_count()} cores; before the run the machine was {100 * idle_busy:.0f} % busy "
               f"(load average {load_before:.2f}), during it {100 * during:.0f} % (this run included); "
               f"the run took {elapsed:.0f} s")
    out.print(machine, highlight=False)
    if ns.markdown:
        head = (f"Measured {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC on {platform.node() or 'this machine'}: "
                f"Python {platform.python_version()}, Linux {platform.release()}, server {server}, "
                f"{reps} run(s) per client{' (quick)' if ns.quick else ''}; {machine}.\n\n")
        Path(ns.markdown).write_text(head + "\n".join(md) + "\n")
    failed = sum(not r.ok for _, _, res in results.values() for runs in res.values() for r in runs)
    if failed:
        print(f"rawtui.tools.bench: {failed} download(s) failed or were not byte-exact", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
