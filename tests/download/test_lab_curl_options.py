"""curl's options for a download people rely on, in the lab: --limit-rate through the impairment relay
(rate from the events, zero frames dropped by the router), several URLs on one kept-alive connection,
--retry across a server restart, --max-time and --connect-timeout (exit 5), HTTP 503 retried.

Every assertion is on what the system reports (the event log's timestamps and counts, the relay's
counters, sha256 of the file), never on a wall-clock window.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import child_env, lab_unavailable

from rawtui.lab.control import LabControl
from rawtui.lab.impair import start_relay
from rawtui.lab.server import make_file, sha256_file
from rawtui.lab.topology import Lab, LabError

pytestmark = pytest.mark.lab

PORT = 8080
RESTART_PORT = 8081
FILES = {"40m.bin": 40 << 20, "10m.bin": 10 << 20, "a.bin": 3 << 20, "b.bin": (1 << 20) + 7}


@dataclass
class RelayLab:
    lab: Lab
    ctl: LabControl
    root: Path
    sha: dict[str, str]

    @property
    def base(self) -> str:
        return f"http://{self.lab.server_ip}:{PORT}"

    def server(self, port: int) -> subprocess.Popen[str]:
        proc = self.lab.popen(self.lab.server_ns, [sys.executable, "-m", "rawtui.lab.server", "--root",
                                                   str(self.root), "--port", str(port)],
                              stdout=subprocess.PIPE, text=True, env=child_env())
        assert proc.stdout is not None and proc.stdout.readline().startswith("ready")
        return proc

    def rawtui(self, cwd: Path, *args: str, **kw) -> subprocess.Popen[str]:
        argv = [sys.executable, "-m", "rawtui", "--headless", "-q", "--events", "ev.ndjson", *args]
        return self.lab.popen(self.lab.client_ns, argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=child_env(), **kw)


@pytest.fixture(scope="module")
def rl(tmp_path_factory):
    try:
        lab = Lab.create()
    except LabError as exc:
        lab_unavailable(f"cannot build the lab: {exc}")
    root = tmp_path_factory.mktemp("www")
    for name, size in FILES.items():
        make_file(root / name, size, seed=size)
    control = str(tmp_path_factory.mktemp("relay") / "control.sock")
    try:
        start_relay(lab, control, seed=3)
        with LabControl(control) as ctl:
            r = RelayLab(lab, ctl, root, {n: sha256_file(root / n) for n in FILES})
            server = r.server(PORT)
            try:
                yield r
            finally:
                lab.stop(server)
    finally:
        lab.destroy()


def run(rl: RelayLab, cwd: Path, *args: str, timeout: float = 120) -> tuple[int, str, list[dict]]:
    proc = rl.rawtui(cwd, *args)
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        rl.lab.stop(proc)
        pytest.fail(f"rawtui {' '.join(args)}: no result within {timeout} s")
    return proc.returncode, err, events(cwd)


def events(cwd: Path) -> list[dict]:
    path = cwd / "ev.ndjson"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def relay_drops(ctl: LabControl) -> dict[str, int]:
    st = ctl.state()["stats"]
    return {f"{d}.{k}": int(st[d].get(k, 0)) for d in ("down", "up") for k in ("lost", "queue_drops", "blackout_drops")}


def test_limit_rate_2m_over_20_s_is_held_by_the_window_with_no_drop(rl, tmp_path):
    rl.ctl.reset()
    rl.ctl.set("down", delay_ms=5)  # a path with a round trip, like a real one
    before = relay_drops(rl.ctl)
    try:
        code, err, evs = run(rl, tmp_path, "--limit-rate", "2M", "-o", "out.bin", f"{rl.base}/40m.bin")
    finally:
        after = relay_drops(rl.ctl)
        rl.ctl.reset()
    assert code == 0, err
    assert sha256_file(tmp_path / "out.bin") == rl.sha["40m.bin"]
    data = [e for e in evs if e["type"] == "segment_in" and e["length"]]
    span = data[-1]["t"] - data[0]["t"]
    rate = sum(e["length"] for e in data) / span
    print(f"\n--limit-rate 2M: {rate / (1 << 20):.3f} MiB/s on the wire over {span:.2f} s; relay {after}")
    assert rate == pytest.approx(2 << 20, rel=0.10)
    assert span >= 18.0  # 40 MiB at 2 MiB/s: the events' own clock says the transfer took its 20 s
    assert {k: after[k] - before[k] for k in after} == dict.fromkeys(after, 0)  # no frame dropped by the router
    windows = [e["rwnd"] for e in evs if e["type"] == "window" and e["t"] > data[0]["t"] + 1]
    assert windows and min(windows) < 512 << 10  # the advertised window is what holds the server
    (limit,) = [e for e in evs if e["type"] == "rate_limit"]
    assert limit["bytes_per_s"] == 2 << 20


def test_two_urls_on_one_server_share_one_handshake_and_arp(rl, tmp_path):
    rl.ctl.reset()
    code, err, evs = run(rl, tmp_path, "-o", "one.bin", "-o", "two.bin", f"{rl.base}/a.bin", f"{rl.base}/b.bin")
    assert code == 0, err
    assert sha256_file(tmp_path / "one.bin") == rl.sha["a.bin"]
    assert sha256_file(tmp_path / "two.bin") == rl.sha["b.bin"]
    kinds = [e["type"] for e in evs]
    assert kinds.count("handshake") == 1  # HTTP keep-alive: the second request on the same connection
    assert kinds.count("done") == 2  # one summary each
    assert kinds.count("arp_request") == 1
    dones = [e for e in evs if e["type"] == "done"]
    assert [d["bytes"] for d in dones] == [FILES["a.bin"], FILES["b.bin"]]


def test_urls_without_o_take_their_own_names(rl, tmp_path):
    rl.ctl.reset()
    code, err, _ = run(rl, tmp_path, f"{rl.base}/b.bin", f"{rl.base}/a.bin")
    assert code == 0, err
    assert sha256_file(tmp_path / "a.bin") == rl.sha["a.bin"]
    assert sha256_file(tmp_path / "b.bin") == rl.sha["b.bin"]


def test_retry_3_across_a_server_restart_mid_transfer(rl, tmp_path):
    """The server is stopped at 30 % (the rate limit makes that moment easy to catch), then started again:
    rawtui retries and ends byte-exact."""
    rl.ctl.reset()
    server = rl.server(RESTART_PORT)
    url = f"http://{rl.lab.server_ip}:{RESTART_PORT}/10m.bin"
    proc = rl.rawtui(tmp_path, "--retry", "3", "--limit-rate", "2M", "-o", "out.bin", url)
    part = tmp_path / "out.bin.part"
    try:
        while proc.poll() is None:
            try:
                if part.stat().st_size >= FILES["10m.bin"] * 3 // 10:
                    break
            except FileNotFoundError:
                pass
            time.sleep(0.005)
        assert proc.poll() is None, "rawtui ended before 30 %"
        rl.lab.stop(server)
        server = rl.server(RESTART_PORT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            rl.lab.stop(proc)
        rl.lab.stop(server)
    assert proc.returncode == 0, err
    assert sha256_file(tmp_path / "out.bin") == rl.sha["10m.bin"]
    evs = events(tmp_path)
    retries = [e for e in evs if e["type"] == "retry"]
    assert 1 <= len(retries) <= 3
    assert retries[0]["attempt"] == 2 and retries[0]["attempts"] == 4
    assert [e["type"] for e in evs].count("handshake") == len(retries) + 1
    assert evs[-1]["type"] == "done" and evs[-1]["bytes"] == FILES["10m.bin"]


def test_max_time_exits_5_when_its_time_is_up(rl, tmp_path):
    rl.ctl.reset()
    code, err, evs = run(rl, tmp_path, "--limit-rate", "1M", "--max-time", "2", "-o", "out.bin",
                         f"{rl.base}/10m.bin")
    assert code == 5, err
    assert "--max-time 2 s" in err
    assert evs[-1]["type"] == "error" and evs[-1]["exit_code"] == 5
    assert evs[-1]["t"] >= 2.0
    assert not (tmp_path / "out.bin").exists()


def test_connect_timeout_exits_5(rl, tmp_path):
    rl.ctl.reset()
    nobody = rl.lab.server_ip.rsplit(".", 1)[0] + ".99"  # the router finds no one there: no SYN-ACK
    code, err, evs = run(rl, tmp_path, "--connect-timeout", "1", "-o", "x.bin", f"http://{nobody}:{PORT}/a.bin")
    assert code == 5, err
    assert "--connect-timeout" in err and "no answer to the SYN" in err
    assert evs[-1]["type"] == "error" and evs[-1]["t"] >= 1.0


def test_503_is_retried_then_reported(rl, tmp_path):
    rl.ctl.reset()
    code, err, evs = run(rl, tmp_path, "--retry", "2", "--retry-delay", "0.2", "-o", "x.bin",
                         f"{rl.base}/status/503")
    assert code == 6, err
    retries = [e for e in evs if e["type"] == "retry"]
    assert [r["attempt"] for r in retries] == [2, 3]
    assert all(r["delay_s"] == 0.2 and "503" in r["reason"] for r in retries)
    gaps = [b["t"] - a["t"] for a, b in zip(retries, [*retries[1:], evs[-1]], strict=True)]
    assert all(g >= 0.2 for g in gaps)  # each attempt waited its delay (the events' clock)


def test_404_is_not_retried(rl, tmp_path):
    rl.ctl.reset()
    code, err, evs = run(rl, tmp_path, "--retry", "3", "-o", "x.bin", f"{rl.base}/missing.bin")
    assert code == 6, err
    assert not [e for e in evs if e["type"] == "retry"]
