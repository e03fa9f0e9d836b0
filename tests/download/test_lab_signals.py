"""Every exit path removes the firewall rule and leaves nothing under the final name (what came is kept
in FILE.part for -C -: tests/download/test_lab_resume.py): SIGTERM, Ctrl-C, kill -9.
(Endings on a terminal, the live view and ``rawtui demo``: test_lab_endings_signals.py.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import STALL_TOLD, StderrLines

from rawtui.download.output import HANDOFF

pytestmark = pytest.mark.lab

REPO = str(Path(__file__).resolve().parents[2])


def nft_tables(lab) -> str:
    return lab.run(lab.client_ns, ["nft", "list", "tables"], capture_output=True, text=True).stdout


def start_stalled(lab, url: str, tmp_path: Path, *extra: str) -> tuple[subprocess.Popen, StderrLines]:
    """A download that stopped reading after 1 MB, for 120 s: alive, connected, rule installed. It says when
    (--explain's "Read stall" line), which is after the response head, so ``out.bin.part.meta`` exists: the
    server's unsent bytes (the old condition) also exist before the head is read."""
    argv = [sys.executable, "-m", "rawtui", "--headless", "--explain", "--stall", "1000000:120", "-o", "out.bin",
            *extra, url]
    proc = lab.popen(lab.client_ns, argv, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                     text=True, env=dict(os.environ, PYTHONPATH=REPO))
    err = StderrLines(proc)
    try:
        err.wait_for(STALL_TOLD)
    except BaseException:
        err.finish(0)
        raise
    assert "rawtui_" in nft_tables(lab)
    assert server_has_unsent_bytes(lab, url)  # the server's side of the stall: its body waits for our window
    return proc, err


def server_has_unsent_bytes(lab, url: str) -> bool:
    """The body is on its way and our window is closed: the server's socket to the client holds unsent
    bytes (``ss``; a condition, where a sleep would only hope)."""
    port = url.split(":")[2].split("/")[0]
    res = lab.run(lab.server_ns, ["ss", "-Htn", "state", "established", f"( sport = :{port} )"],
                  capture_output=True, text=True, timeout=20)
    peers = (f"{lab.client_ip}:", f"[::ffff:{lab.client_ip}]:")  # (a dual-stack server: IPv4-mapped)
    for line in res.stdout.splitlines():  # Recv-Q Send-Q Local Peer
        parts = line.split()
        if len(parts) >= 4 and parts[3].startswith(peers) and int(parts[1]) > 0:
            return True
    return False


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_cleans_up(lab, pyserver, tmp_path, sig):
    proc, stderr = start_stalled(lab, f"{pyserver}/50m.bin", tmp_path)
    os.kill(proc.pid, sig)
    err = stderr.finish(30)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert "rawtui_" not in nft_tables(lab)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin.part", "out.bin.part.meta"]
    assert "kept in out.bin.part" in err


def test_kill_9_leaves_a_stale_table_that_the_next_run_removes(lab, pyserver, tmp_path, run_rawtui, www):
    proc, stderr = start_stalled(lab, f"{pyserver}/50m.bin", tmp_path)
    part = tmp_path / "out.bin.part"
    deadline = time.monotonic() + 120
    while part.stat().st_size < 1_000_000 - HANDOFF:  # the stall's first MB, on disk (256 KB at a time)
        assert proc.poll() is None and time.monotonic() < deadline, "the body never reached the disk"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    stderr.finish(30)
    stale = nft_tables(lab)
    assert f"rawtui_{proc.pid}_" in stale  # pid of the child of `ip netns exec` == the python process
    r = run_rawtui("--headless", "--events", "ev.ndjson", "-o", "one.bin", f"{pyserver}/one.bin")
    assert r.returncode == 0, r.stderr
    assert "rawtui_" not in nft_tables(lab)
    assert "removed a stale firewall rule" in (r.cwd / "ev.ndjson").read_text()
    # the killed run's partial file never had the final name; the next run without -C removes it, and says so
    assert not (tmp_path / "out.bin").exists()
    assert (tmp_path / "out.bin.part").exists() and (tmp_path / "out.bin.part.meta").exists()
    kept = part.stat().st_size
    r = run_rawtui("--headless", "-o", "out.bin", f"{pyserver}/one.bin")
    assert r.returncode == 0, r.stderr
    assert f"warning: removed out.bin.part ({kept:,} bytes)" in " ".join(r.stderr.split()), r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ev.ndjson", "one.bin", "out.bin"]
