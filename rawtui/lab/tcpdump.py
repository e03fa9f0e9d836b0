"""A tcpdump capture in a lab namespace, for tests that compare rawtui's reading of a capture with
tshark's (``rawtui replay``'s conversation list, TLS decryption, the tcp.analysis agreement).

:func:`start_tcpdump` returns once tcpdump says it is listening (its "listening on" line: nothing is
missed after that), writing every frame at once (``-U``) in full (``-s 0``). :meth:`Tcpdump.wait_for`
re-reads the file until a condition on what it holds is true (the last frames of a transfer reach the
file a moment after the transfer's programs have ended); :meth:`Tcpdump.stop` ends tcpdump (SIGTERM: it
flushes and closes the file).
"""

from __future__ import annotations

import select
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Self

from rawtui.lab.topology import Lab, LabError

__all__ = ["Tcpdump", "start_tcpdump"]


class Tcpdump:
    def __init__(self, lab: Lab, proc: subprocess.Popen[str], path: Path) -> None:
        self.lab, self.proc, self.path = lab, proc, path

    def wait_for(self, what: str, ready: Callable[[Path], bool], timeout: float = 30.0) -> None:
        """Block until ``ready(path)`` holds for the capture file (re-read each time tcpdump wrote more);
        ``timeout`` only bounds a broken run (LabError naming ``what``)."""
        deadline = time.monotonic() + timeout
        size = -1
        while True:
            now_size = self.path.stat().st_size if self.path.exists() else 0
            if now_size != size:
                size = now_size
                if ready(self.path):
                    return
            if time.monotonic() > deadline:
                raise LabError(f"tcpdump: {what}: not in {self.path} within {timeout:g} s")
            time.sleep(0.05)  # polling the file's size: tcpdump gives no other sign that it wrote

    def stop(self) -> None:
        self.lab.stop(self.proc)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_tcpdump(lab: Lab, ns: str, path: str | Path, iface: str = "eth0", bpf: str = "tcp or arp",
                  timeout: float = 20.0, buffer_kib: int = 131072) -> Tcpdump:
    """tcpdump on ``iface`` in namespace ``ns`` writing ``path`` (classic pcap, Ethernet); returns once
    it listens. Raises LabError when tcpdump is missing or does not start.

    The kernel buffer is ``buffer_kib`` (``-B``, default 128 MiB): the lab's veth links carry up to a
    GB/s, and with tcpdump's default 2 MiB the kernel drops frames of a 1 MiB transfer before tcpdump
    reads them (measured: a quarter of one connection's frames missing)."""
    tcpdump = shutil.which("tcpdump")
    if tcpdump is None:
        raise LabError("tcpdump is not installed (apt-get install tcpdump)")
    p = Path(path)
    proc = lab.popen(ns, [tcpdump, "-i", iface, "-U", "-s", "0", "-n", "-B", str(buffer_kib), "-w", str(p),
                          *bpf.split()],
                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    deadline = time.monotonic() + timeout
    said = ""
    while time.monotonic() < deadline:
        r, _, _ = select.select([proc.stderr], [], [], max(0.0, deadline - time.monotonic()))
        if not r:
            break
        line = proc.stderr.readline()
        if not line:
            break
        said += line
        if "listening on" in line:
            return Tcpdump(lab, proc, p)
    lab.stop(proc)
    raise LabError(f"tcpdump did not start in {ns}: {said.strip() or 'no output'}")
