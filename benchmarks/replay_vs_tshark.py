"""`rawtui replay --headless FILE` against `tshark -r FILE -q -z conv,tcp` on the same capture, in one run.

    python benchmarks/replay_vs_tshark.py FILE.pcap            # a capture you have (pcap, pcapng, .gz)
    sudo python benchmarks/replay_vs_tshark.py --record 200M   # records one first, in a lab

``--record SIZE`` builds a client – router – server lab, serves a SIZE file from the server namespace,
turns off TSO/GSO on the server's veth (so the capture holds MTU-sized frames, as on a real network, and
not 64 kB super-frames), and captures curl's download (``--limit-rate 40M``: at full speed tcpdump drops
frames here) with tcpdump on the client's interface; the file is
deleted at the end (``--keep`` keeps it). Each command runs ``--runs`` times (default 3), alternating: rawtui,
tshark as asked (``-q -z conv,tcp``, default preferences: it reassembles the TCP stream for the HTTP
dissector), and tshark with ``-o tcp.desegment_tcp_streams:FALSE`` (the same table without reassembly);
the best and the median wall time of each are printed, with the ratios (tshark's time over rawtui's: above
1 means rawtui is faster). A tshark run is given up after ``--tshark-timeout`` seconds. rawtui's exit code
and its summary (the body's sha256) are checked: a replay that fails is not a time.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from rawtui.lab.server import make_file, sha256_file
from rawtui.lab.tcpdump import start_tcpdump
from rawtui.lab.topology import Lab
from rawtui.recording import open_capture
from rawtui.recording.observe import peek_tcp

SIZES = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def parse_size(text: str) -> int:
    unit = SIZES.get(text[-1:].upper())
    return int(float(text[:-1]) * unit) if unit else int(text)


def record(size: int, path: Path, rate: str = "40M") -> None:
    """A capture of curl downloading ``size`` bytes in a fresh lab (tcpdump on the client's eth0), at most
    ``rate`` per second: faster, tcpdump drops frames here (its capture would hold holes, not a download)."""
    curl = shutil.which("curl")
    if curl is None:
        sys.exit("curl is not installed")
    with tempfile.TemporaryDirectory(prefix="rawtui-bench-") as tmp, Lab.create() as lab:
        www = Path(tmp)
        os.chmod(www, 0o755)
        make_file(www / "big.bin", size, seed=1)
        lab.set_offloads(lab.server_ns, lab.server_if, tso=False, gso=False)
        server = lab.popen(lab.server_ns, [sys.executable, "-m", "rawtui.lab.server", "--root", str(www),
                                           "--port", "8080"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            assert server.stdout is not None
            line = server.stdout.readline().decode()
            if not line.startswith("ready"):
                sys.exit(f"the lab server did not start: {line!r}")
            with start_tcpdump(lab, lab.client_ns, path, lab.client_if, "tcp port 8080 or arp") as dump:
                start = time.monotonic()
                lab.run(lab.client_ns, [curl, "-sS", "--limit-rate", rate, "-o", str(www / "out.bin"),
                                        f"http://{lab.server_ip}:8080/big.bin"], check=True, timeout=600)
                took = time.monotonic() - start
                dump.wait_for("the end of the connection", lambda p: p.stat().st_size > size and _closed(p),
                              timeout=120)
                dump.proc.send_signal(signal.SIGINT)
                dump.proc.wait(30)
            ok = sha256_file(www / "out.bin") == sha256_file(www / "big.bin")
            print(f"recorded {path} ({path.stat().st_size / 1e6:.1f} MB) of a {size / 1e6:.0f} MB download "
                  f"in {took:.1f} s; body {'intact' if ok else 'DIFFERENT'}")
        finally:
            lab.stop(server)


def _closed(path: Path) -> bool:
    """Both FINs and the last ACK are in the capture (read with rawtui's reader)."""
    fins, last = 0, 0
    for frame in open_capture(path):
        p = peek_tcp(frame.linktype, frame.data)
        if p is not None:
            fins += p.flags & 1
            last = p.flags
    return fins >= 2 and last == 0x10


def timed(argv: list[str], check: str, timeout: float | None = None) -> float | None:
    """Wall seconds of one run (None when it passed ``timeout``); exits when the command fails."""
    start = time.perf_counter()
    try:
        r = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    took = time.perf_counter() - start
    if r.returncode != 0 or check not in r.stdout + r.stderr:
        sys.exit(f"{' '.join(argv)} failed ({r.returncode}): {(r.stderr or r.stdout)[-500:]}")
    return took


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", nargs="?", help="the capture (else --record)")
    p.add_argument("--record", metavar="SIZE", help="record a capture of a SIZE download in a lab first (root)")
    p.add_argument("--keep", action="store_true", help="keep the recorded capture")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--tshark-timeout", type=float, default=900, metavar="S",
                   help="give up on a tshark run after S seconds (default 900)")
    ns = p.parse_args()
    tshark = shutil.which("tshark")
    if tshark is None:
        sys.exit("tshark is not installed")
    made: Path | None = None
    if ns.file:
        path = Path(ns.file)
    elif ns.record:
        made = path = Path(tempfile.gettempdir()) / f"rawtui-bench-{os.getpid()}.pcap"
        record(parse_size(ns.record), path)
    else:
        p.error("give a FILE or --record SIZE")
    try:
        size = path.stat().st_size
        rawtui = [sys.executable, "-m", "rawtui", "replay", "--headless", str(path)]
        commands = {
            "rawtui": (rawtui, "sha256"),
            "tshark": ([tshark, "-r", str(path), "-q", "-z", "conv,tcp"], "TCP Conversations"),
            # the same statistics without reassembling the TCP stream for the HTTP dissector (tshark's
            # default reassembles the whole body; on a 200 MB download that takes minutes here)
            "tshark-noreasm": ([tshark, "-r", str(path), "-q", "-z", "conv,tcp", "-o",
                                "tcp.desegment_tcp_streams:FALSE"], "TCP Conversations"),
        }
        times: dict[str, list[float | None]] = {name: [] for name in commands}
        for _ in range(ns.runs):
            for name, (argv, check) in commands.items():
                times[name].append(timed(argv, check, None if name == "rawtui" else ns.tshark_timeout))
        print(f"{path.name}: {size / 1e6:.1f} MB, {ns.runs} runs each (wall time, seconds)")
        best: dict[str, float | None] = {}
        for name, ts in times.items():
            done = [t for t in ts if t is not None]
            best[name] = min(done) if len(done) == len(ts) else None
            if best[name] is None:
                print(f"  {name:15s} did not finish within {ns.tshark_timeout:g} s")
            else:
                print(f"  {name:15s} best {min(done):7.2f}  median {statistics.median(done):7.2f}  "
                      f"({size / 1e6 / min(done):.0f} MB/s)")
        ours = best["rawtui"]
        assert ours is not None
        for name in ("tshark", "tshark-noreasm"):
            other = best[name]
            ratio = f"> {ns.tshark_timeout / ours:.0f}" if other is None else f"{other / ours:.2f}"
            faster = "rawtui faster" if other is None or other > ours else "tshark faster"
            print(f"  {name} / rawtui = {ratio} ({faster})")
    finally:
        if made is not None and not ns.keep:
            made.unlink(missing_ok=True)
        elif made is not None:
            print(f"kept {made}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
