"""`rawtui demo`: build the lab, serve a generated file from the server namespace, download it with
rawtui from the client namespace, check it is byte-exact, tear everything down.

The download runs as a child ``ip netns exec <client> python -m rawtui ...`` that inherits the terminal,
so the live view (or the headless progress bar) is exactly what a user of ``rawtui URL`` sees.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
from types import FrameType

from ..errors import EXIT_USAGE, PrivilegeError, RawtuiError
from .server import make_file, sha256_file
from .topology import Lab, LabError

_SIZE = re.compile(r"^(\d+(?:\.\d+)?)([kKmMgG]?)i?[bB]?$")


def parse_size(text: str) -> int:
    m = _SIZE.match(text.strip())
    if not m:
        raise RawtuiError(f"bad size {text!r}: use e.g. 500K, 50M, 1G", EXIT_USAGE)
    mult = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[m.group(2).lower()]
    return int(float(m.group(1)) * mult)


def start_pyserver(lab: Lab, root: str, port: int = 8080) -> subprocess.Popen[str]:
    """The embedded HTTP server in the server namespace; returns once it is listening."""
    proc = lab.popen(
        lab.server_ns, [sys.executable, "-m", "rawtui.lab.server", "--root", root, "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("ready"):
        err = proc.stderr.read() if proc.stderr else ""
        raise LabError(f"the lab HTTP server did not start: {err.strip() or line.strip()}")
    return proc


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rawtui demo",
        description="Build a client - router - server lab of network namespaces, serve a generated file, "
        "and download it with rawtui's own stack.",
    )
    p.add_argument("--size", default="50M", help="size of the generated file (default 50M)")
    p.add_argument("--server", choices=["python", "nginx"], default="python",
                   help="the lab's HTTP server (default: Python's http.server, no install needed)")
    p.add_argument("--headless", action="store_true", help="progress bar and summary instead of the live view")
    p.add_argument("--events", metavar="FILE", help="write the event stream as NDJSON")
    p.add_argument("--pcap", metavar="FILE", help="write every frame sent and received")
    p.add_argument("--exit-on-done", action="store_true", help="live view: exit when the download ends")
    return p


def main(argv: list[str]) -> int:
    ns = _parser().parse_args(argv)
    size = parse_size(ns.size)
    if os.geteuid() != 0:
        raise PrivilegeError("the demo builds network namespaces: run it as root (sudo rawtui demo)")
    lab: Lab | None = None

    def on_signal(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, on_signal)
    try:
        with tempfile.TemporaryDirectory(prefix="rawtui-demo-") as tmp:
            www = os.path.join(tmp, "www")
            os.mkdir(www)
            name = f"demo-{ns.size.lower()}.bin"
            src = make_file(os.path.join(www, name), size)
            want = sha256_file(src)
            try:
                lab = Lab.create()
            except LabError as e:
                raise RawtuiError(f"cannot build the lab: {e}", 4) from None
            if ns.server == "nginx":
                from .nginx import start_nginx

                start_nginx(lab, www, port=80)
                url = f"http://{lab.server_ip}/{name}"
            else:
                start_pyserver(lab, www, 8080)
                url = f"http://{lab.server_ip}:8080/{name}"
            out = os.path.join(tmp, "downloaded.bin")
            argv_child = [sys.executable, "-m", "rawtui", url, "-o", out]
            if ns.headless:
                argv_child.append("--headless")
            if ns.exit_on_done:
                argv_child.append("--exit-on-done")
            if ns.events:
                argv_child += ["--events", os.path.abspath(ns.events)]
            if ns.pcap:
                argv_child += ["--pcap", os.path.abspath(ns.pcap)]
            print(f"lab {lab.prefix}: client {lab.client_ip} -> router -> server {lab.server_ip}; "
                  f"downloading {url} ({size:,} bytes)", file=sys.stderr, flush=True)
            code = subprocess.call(lab.exec_argv(lab.client_ns, argv_child))
            if code != 0:
                return code
            got = sha256_file(out)
            verdict = "byte-exact" if got == want else "MISMATCH"
            print(f"demo: sha256 {got} ({verdict})", file=sys.stderr)
            return 0 if got == want else 1
    except KeyboardInterrupt:
        print("rawtui: demo interrupted; lab removed", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, old)
        if lab is not None:
            lab.destroy()
