"""Congestion control in the lab: ``rawtui demo --cc`` really changes the server's algorithm (its kernel
says so in every TCP_INFO sample: getsockopt TCP_CONGESTION for the Python server, sock_diag's
INET_DIAG_CONG for nginx), and ``--compare`` runs the same link once per algorithm, byte-exact, with the
bufferbloat lesson visible in the server's own RTT samples.

The margin asserted (``BUFFERBLOAT_MARGIN``): BBR's mean RTT (the mean of the server's smoothed RTT over
its TCP_INFO samples while data was in flight) at least 1.5 times below CUBIC's and Reno's, on the
bufferbloat scenario's fast run (10 Mbit/s, a 200-frame queue, 10 ms, 4 MB). Measured over 4 headless
runs (seeds 1, 2, 3, 7), on a machine shared with other work: CUBIC 139.8-140.3 ms, Reno 157.9-173.7 ms,
BBR 22.1-33.4 ms, 4.2 to 7.2 times lower; 2.7 times when the live view drew each run (a busy 2-core
machine slows rawtui's ACKs, which BBR's RTT feels most). Not a timing: the RTTs are what the server's
kernel measured.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import child_env, lab_unavailable

from rawtui.analysis.compare import read_compare_csv
from rawtui.events import Done, ServerTcpInfo
from rawtui.lab.compare import run_metrics
from rawtui.lab.nginx import find_nginx
from rawtui.lab.scenarios import BUFFERBLOAT_MARGIN, SCENARIOS, load_events, server_samples
from rawtui.lab.server import make_file, sha256_file

lab_test = pytest.mark.lab


def _demo(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rawtui", "demo", *args], capture_output=True, text=True,
                          timeout=timeout, env=child_env(), stdin=subprocess.DEVNULL, check=False)


# ---------------------------------------------------------------------------------------------------
# no root needed


@pytest.mark.parametrize("args, words", [
    (["--compare", "reno"], "name at least two"),
    (["--compare", "reno,vegas"], "unknown congestion control 'vegas'"),
    (["--compare", "bbr,bbr"], "each congestion control once"),
    (["--compare", "reno,bbr", "--cc", "bbr"], "--cc: not with --compare"),
    (["--cc", "vegas"], "invalid choice"),
])
def test_bad_cc_options_are_usage_errors(args: list[str], words: str) -> None:
    res = _demo(*args)
    assert res.returncode == 2, res.stderr
    assert words in res.stderr
    assert "Traceback" not in res.stderr


# ---------------------------------------------------------------------------------------------------
# in the lab


@lab_test
def test_cc_changes_the_python_servers_algorithm(tmp_path: Path) -> None:
    """The namespace's default here is the kernel's (bbr on this machine's kind): reno and cubic must
    come from the server's setsockopt."""
    for cc in ("reno", "cubic"):
        events = tmp_path / f"{cc}.ndjson"
        res = _demo("--headless", "--cc", cc, "--size", "1M", "--delay", "5ms", "--events", str(events))
        assert res.returncode == 0, res.stderr[-3000:]
        assert f"PASS  the server's connection used {cc}" in res.stderr
        samples = server_samples(load_events(str(events)))
        assert len(samples) >= 3
        assert {s.cc for s in samples} == {cc}


@lab_test
def test_cc_with_nginx_sets_the_namespace_default(tmp_path: Path) -> None:
    if find_nginx() is None:
        lab_unavailable("nginx is not installed (apt-get install nginx-light)")
    events = tmp_path / "nginx.ndjson"
    res = _demo("--headless", "--server", "nginx", "--cc", "reno", "--size", "1M", "--delay", "5ms",
                "--events", str(events))
    assert res.returncode == 0, res.stderr[-3000:]
    samples = [ev for ev in load_events(str(events)) if isinstance(ev, ServerTcpInfo)]
    assert samples and {s.cc for s in samples} == {"reno"}  # sock_diag's INET_DIAG_CONG


@lab_test
@pytest.mark.timeout(180)  # three runs of about 4 s each, and the labs around them
def test_compare_bufferbloat_headless(tmp_path: Path) -> None:
    scenario = SCENARIOS["bufferbloat"]
    want = sha256_file(make_file(tmp_path / "want.bin", scenario.size))  # the demo's file: same generator
    events = tmp_path / "ev.ndjson"
    series = tmp_path / "curves.csv"
    res = _demo("--compare", "reno,cubic,bbr", "--scenario", "bufferbloat", "--fast", "--headless",
                "--seed", "7", "--events", str(events), "--series", str(series))
    assert res.returncode == 0, res.stderr[-4000:]
    for cc in ("reno", "cubic", "bbr"):
        assert res.stdout.count(f"\n{cc} ") == 1, res.stdout  # one table row each
    metrics = {}
    for cc in ("reno", "cubic", "bbr"):
        evs = load_events(str(tmp_path / f"ev-{cc}.ndjson"))
        done = [ev for ev in evs if isinstance(ev, Done)]
        assert len(done) == 1 and done[0].sha256 == want and done[0].bytes == scenario.size, cc
        assert {s.cc for s in server_samples(evs)} == {cc}
        metrics[cc] = run_metrics(cc, evs)
        assert metrics[cc].rtt_samples >= 50, (cc, metrics[cc])
    bbr = metrics["bbr"]
    for cc in ("reno", "cubic"):
        assert bbr.rtt_mean_ms * BUFFERBLOAT_MARGIN <= metrics[cc].rtt_mean_ms, metrics
    assert "PASS  bufferbloat" in res.stderr
    curves = read_compare_csv(str(series))
    assert list(curves) == ["reno", "cubic", "bbr"]
    for rows in curves.values():
        assert any(r["server_cwnd"] for r in rows) and (rows[-1]["bytes"] or 0) >= scenario.size
    with series.open() as f:
        assert next(csv.reader(f))[:2] == ["cc", "t"]
