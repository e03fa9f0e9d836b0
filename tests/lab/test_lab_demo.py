"""`rawtui demo` as a user runs it: options, knobs reaching the router, the nginx variant with its
sock_diag ground truth, exit codes (usage, privilege, a phenomenon that did not appear), interruption,
and that the lab is always removed."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import child_env, lab_unavailable

from rawtui.events import Handshake, LabKnobs, ServerTcpInfo
from rawtui.lab.demo import cli_knobs, describe_knobs, merge_knobs, parse_size, parser
from rawtui.lab.nginx import find_nginx
from rawtui.lab.scenarios import SCENARIOS, load_events
from rawtui.lab.topology import list_netns

lab_test = pytest.mark.lab
pytest_plugins = ("userland",)  # test_demo_needs_root runs as another user (tests/userland.py)


def _demo(*args: str, timeout: float = 120, prefix: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    argv = [*(prefix or []), sys.executable, "-m", "rawtui", "demo", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=child_env(),
                          stdin=subprocess.DEVNULL, check=False)


def _lab_gone(stderr: str) -> None:
    m = re.search(r"^lab (rt[0-9a-f]{6}):", stderr, re.MULTILINE)
    assert m, stderr[-3000:]
    assert not [ns for ns in list_netns() if ns.startswith(m.group(1))]


# ---------------------------------------------------------------------------------------------------
# no root needed


def test_list_scenarios() -> None:
    res = _demo("--list-scenarios")
    assert res.returncode == 0
    for name, s in SCENARIOS.items():
        assert name in res.stdout and s.look_for in res.stdout


def test_bad_knob_values_are_usage_errors() -> None:
    for args in (["--loss", "120"], ["--rate", "fast"], ["--delay", "soon"], ["--scenario", "nope"]):
        res = _demo(*args)
        assert res.returncode == 2, (args, res.stderr)
        assert "usage: rawtui demo" in res.stderr


def test_cli_knobs_merge_over_the_scenario() -> None:
    ns = parser().parse_args(["--loss", "3", "--delay", "0.1s", "--rate", "20mbit", "--dir", "both"])
    knobs = merge_knobs(SCENARIOS["lossy-long-path"], cli_knobs(ns), ns.dir)
    assert knobs["down"] == {"delay_ms": 100.0, "loss": 3.0, "rate_bps": 20_000_000}
    assert knobs["up"] == {"delay_ms": 100.0, "loss": 3.0, "rate_bps": 20_000_000}
    assert "rate 20 Mbit/s" in describe_knobs(knobs)
    assert merge_knobs(None, {"dup": 1.0}, "up") == {"down": {}, "up": {"dup": 1.0}}
    assert parse_size("1.5M") == 3 << 19


@pytest.mark.needs_root  # to run the demo as another user
def test_demo_needs_root(userland) -> None:
    # from the readable copy (tests/userland.py): the checkout may be under a 0700 directory
    res = subprocess.run(userland.rawtui("demo", "--headless", "--size", "1K"), capture_output=True, text=True,
                         timeout=60, env=userland.env(), stdin=subprocess.DEVNULL, check=False, cwd="/",
                         user=65534, group=65534, extra_groups=[])
    assert res.returncode == 3, res.stderr
    assert "run it as root" in res.stderr


# ---------------------------------------------------------------------------------------------------
# in the lab


@lab_test
def test_cli_knobs_reach_the_router(tmp_path: Path) -> None:
    events = tmp_path / "e.ndjson"
    res = _demo("--headless", "--size", "1M", "--loss", "1", "--delay", "20ms", "--rate", "50mbit", "--queue", "200",
                "--dir", "both", "--events", str(events))
    assert res.returncode == 0, res.stderr[-3000:]
    assert "PASS  file byte-exact" in res.stderr
    assert "server->client: loss 1 %, delay 20 ms, rate 50 Mbit/s, queue 200 frames" in res.stderr
    _lab_gone(res.stderr)
    evs = load_events(str(events))
    knobs = [e for e in evs if isinstance(e, LabKnobs)][-1]
    for d in (knobs.down, knobs.up):
        assert (d["loss"], d["delay_ms"], d["rate_bps"], d["queue"]) == (1.0, 20.0, 50_000_000, 200)
    hs = next(e for e in evs if isinstance(e, Handshake))
    assert hs.rtt_ms >= 39.5  # 20 ms each way


@lab_test
def test_nginx_with_sock_diag_ground_truth(tmp_path: Path) -> None:
    if find_nginx() is None:
        lab_unavailable("nginx is not installed (apt-get install nginx-light)")
    events = tmp_path / "e.ndjson"
    res = _demo("--headless", "--fast", "--server", "nginx", "--scenario", "slow-start", "--events", str(events))
    assert res.returncode == 0, res.stderr[-3000:]
    assert "PASS  slow-start" in res.stderr
    evs = load_events(str(events))
    port = next(e for e in evs if isinstance(e, Handshake)).local_port
    samples = [e for e in evs if isinstance(e, ServerTcpInfo)]
    assert samples and all(s.peer_port == port for s in samples)
    _lab_gone(res.stderr)


@lab_test
def test_exit_1_when_the_phenomenon_does_not_appear() -> None:
    """--corrupt 0 overrides the corruption scenario's knob: the file is fine but no checksum drop is seen."""
    res = _demo("--headless", "--fast", "--scenario", "corruption", "--corrupt", "0", "--size", "1M")
    assert res.returncode == 1, res.stderr[-3000:]
    assert "PASS  file byte-exact" in res.stderr
    assert "FAIL  corruption: no checksum drop" in res.stderr
    _lab_gone(res.stderr)


@lab_test
def test_sigterm_removes_the_lab() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "rawtui", "demo", "--headless", "--size", "50M", "--rate", "10mbit"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env(),
                            stdin=subprocess.DEVNULL, start_new_session=True)
    assert proc.stderr is not None
    line = ""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not line.startswith("lab "):
        line = proc.stderr.readline()
    m = re.match(r"lab (rt[0-9a-f]{6}):", line)
    assert m, line
    time.sleep(1.5)
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        pytest.fail("the demo did not stop on SIGTERM")
    proc.stdout.close()  # type: ignore[union-attr]
    proc.stderr.close()
    assert proc.returncode in (130, 143), proc.returncode
    assert not [ns for ns in list_netns() if ns.startswith(m.group(1))]
