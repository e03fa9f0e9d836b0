"""The fault matrix: downloads through the lab's impairment relay, each one byte-exact (sha256 of the source).

One lab for the module: the relay (:func:`rawtui.lab.impair.start_relay`) forwards and impairs every frame
between client and server, the lab server reports its own TCP_INFO on the control socket, and rawtui runs
with ``--lab-control`` so the NDJSON events carry the server's ground truth (``server_tcp_info``: its
retransmissions) next to rawtui's own counters (checksum drops, duplicate and out-of-order data). The
relay's counters (frames lost, corrupted, duplicated, reordered, queue and blackout drops) are read
before and after each run.

Directions: ``down`` is server -> client (the data), ``up`` client -> server (the request and ACKs).
Loss, corruption, reordering and duplication act on the data direction; "loss + delay" and the blackout
act on both.

The table of every case (duration, retransmissions, checksum drops, byte-exact) is printed at the end of
the module (``pytest -s``) and written to ``$RAWTUI_FAULT_TABLE`` (default /tmp/rawtui-fault-matrix.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import child_env, lab_unavailable

from rawtui.lab.control import LabControl
from rawtui.lab.impair import start_relay
from rawtui.lab.server import make_file, sha256_file
from rawtui.lab.topology import Lab, LabError

pytestmark = pytest.mark.lab

PORT = 8080
TABLE = Path(os.environ.get("RAWTUI_FAULT_TABLE", "/tmp/rawtui-fault-matrix.md"))


@dataclass(frozen=True)
class Case:
    name: str
    down: dict[str, float] = field(default_factory=dict)
    up: dict[str, float] = field(default_factory=dict)
    blackout: float = 0.0  # seconds, both directions, once a quarter of the body has arrived


CASES = [
    Case("no fault"),
    Case("loss 1 %", down={"loss": 1}),
    Case("loss 5 %", down={"loss": 5}),
    Case("loss 10 %", down={"loss": 10}),
    Case("corruption 1 %", down={"corrupt": 1}),
    Case("reordering 2 %", down={"reorder": 2}),
    Case("duplication 2 %", down={"dup": 2}),
    Case("100 Mbit/s, queue 20", down={"rate_bps": 100_000_000, "queue": 20}),
    Case("blackout 3 s", blackout=3.0),
    Case("loss 2 % + delay 20 ms", down={"loss": 2, "delay_ms": 20}, up={"loss": 2, "delay_ms": 20}),
]
# (case, size): sizes per case chosen to keep the non-slow matrix around 3-4 minutes on 2 cores
SIZES = {"1m.bin": 1 << 20, "50m.bin": 50 << 20}
SLOW_SIZES = {"1g.bin": 1 << 30}

ROWS: list[dict] = []


@dataclass
class FaultLab:
    lab: Lab
    control: str
    www: Path
    sha: dict[str, str]
    ctl: LabControl


@pytest.fixture(scope="module")
def faultlab(www, tmp_path_factory):
    try:
        lab = Lab.create()
    except LabError as exc:
        lab_unavailable(f"cannot build the lab: {exc}")
    control = str(tmp_path_factory.mktemp("faults") / "control.sock")
    try:
        start_relay(lab, control, seed=5)
        server = lab.popen(lab.server_ns, [sys.executable, "-m", "rawtui.lab.server", "--root", str(www.root),
                                           "--port", str(PORT), "--report", control],
                           stdout=subprocess.PIPE, text=True, env=child_env())
        assert server.stdout.readline().startswith("ready")
        with LabControl(control) as ctl:
            yield FaultLab(lab, control, www.root, dict(www.sha256), ctl)
    finally:
        lab.destroy()
        _write_table()


def _write_table() -> None:
    if not ROWS:
        return
    head = ("| case | size | duration s | server retransmissions | relay drops | rawtui checksum drops | "
            "rawtui dup / out-of-order | byte-exact |")
    lines = [head, "|" + "---|" * 8]
    for r in ROWS:
        lines.append(f"| {r['case']} | {r['size']} | {r['duration']:.2f} | {r['server_retrans']} | "
                     f"{r['relay_drops']} | {r['csum_drops']} | {r['dup']} / {r['ooo']} | "
                     f"{'yes' if r['exact'] else 'NO'} |")
    text = "\n".join(lines) + "\n"
    TABLE.write_text(text)
    print("\n\nfault matrix (also in " + str(TABLE) + "):\n" + text)


def _stats(ctl: LabControl) -> dict[str, int]:
    st = ctl.state()["stats"]
    keys = ("lost", "corrupted", "duplicated", "reordered", "queue_drops", "blackout_drops", "frames_in")
    return {f"{d}.{k}": int(st[d].get(k, 0)) for d in ("down", "up") for k in keys}


def download(fl: FaultLab, case: Case, name: str, cwd: Path, timeout: float) -> dict:
    size = (SIZES | SLOW_SIZES)[name]
    fl.ctl.reset()
    if case.down:
        fl.ctl.set("down", **case.down)
    if case.up:
        fl.ctl.set("up", **case.up)
    if case.blackout:  # once a quarter of the body has passed the router: counted by the relay, no race
        fl.ctl.request({"cmd": "arm", "dir": "down", "after_bytes": size // 4,
                        "then": {"cmd": "blackout", "seconds": case.blackout, "dir": "both"}})
    before = _stats(fl.ctl)
    argv = [sys.executable, "-m", "rawtui", "--headless", "-q", "-o", "out.bin", "--events", "ev.ndjson",
            "--lab-control", fl.control, f"http://{fl.lab.server_ip}:{PORT}/{name}"]
    t0 = time.monotonic()
    proc = fl.lab.popen(fl.lab.client_ns, argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                        text=True, env=child_env())
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        fl.lab.stop(proc)
        pytest.fail(f"{case.name}, {name}: no result within {timeout} s")
    finally:
        fl.ctl.reset()
    wall = time.monotonic() - t0
    after = _stats(fl.ctl)
    delta = {k: after[k] - before[k] for k in after}
    assert proc.returncode == 0, f"{case.name}, {name}: exit {proc.returncode}: {err}"
    evs = [json.loads(line) for line in (cwd / "ev.ndjson").read_text().splitlines() if line.strip()]
    done = evs[-1]
    assert done["type"] == "done"
    exact = sha256_file(cwd / "out.bin") == fl.sha[name] == done["sha256"] and done["bytes"] == size
    port = next(e["local_port"] for e in evs if e["type"] == "handshake")
    infos = [e for e in evs if e["type"] == "server_tcp_info" and e.get("peer_port") == port]
    c = done["counters"]
    row = {
        "case": case.name, "size": {1 << 20: "1 MB", 50 << 20: "50 MB", 1 << 30: "1 GB"}[size],
        "duration": done["duration_s"], "wall": wall,
        "server_retrans": max((e["retrans_total"] for e in infos), default="n/a"),
        "relay_drops": sum(delta[f"{d}.{k}"] for d in ("down", "up") for k in ("lost", "queue_drops",
                                                                               "blackout_drops")),
        "corrupted": delta["down.corrupted"], "duplicated": delta["down.duplicated"],
        "reordered": delta["down.reordered"],
        "csum_drops": c["csum_drop_tcp"] + c["csum_drop_ipv4"], "dup": c["dup_data"], "ooo": c["out_of_order"],
        "exact": exact, "frames_in": c["frames_in"], "wakeups": c["rx_wakeups"], "coalesced": c["rx_coalesced"],
    }
    ROWS.append(row)
    print(f"\n{row}")
    assert exact, f"{case.name}, {name}: not byte-exact"
    assert "rawtui_" not in fl.lab.run(fl.lab.client_ns, ["nft", "list", "tables"], capture_output=True,
                                       text=True).stdout
    return row | {"delta": delta}


def _check_case(case: Case, row: dict) -> None:
    d = row["delta"]
    # every wake-up found a frame; it waited for more only once data flowed with an RTT of 8 ms or more
    assert 0 <= row["coalesced"] <= row["wakeups"] <= row["frames_in"]
    if case.down.get("delay_ms", 0) + case.up.get("delay_ms", 0) >= 8:
        assert row["coalesced"] > 0
    if case.name.startswith("loss"):
        assert d["down.lost"] > 0 and row["server_retrans"] not in (0, "n/a")
    if case.name.startswith("corruption"):
        assert d["down.corrupted"] > 0 and row["csum_drops"] >= d["down.corrupted"] * 0.9
    if case.name.startswith("reordering"):
        assert d["down.reordered"] > 0 and row["ooo"] > 0
    if case.name.startswith("duplication"):
        assert d["down.duplicated"] > 0 and row["dup"] > 0
    if case.blackout:
        assert d["down.blackout_drops"] + d["up.blackout_drops"] > 0
        assert row["duration"] >= case.blackout


TIMEOUTS = {"1m.bin": 60, "50m.bin": 240, "1g.bin": 900}


@pytest.mark.parametrize("name", list(SIZES))
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_fault_matrix(faultlab, tmp_path, case, name):
    row = download(faultlab, case, name, tmp_path, TIMEOUTS[name])
    _check_case(case, row)


@pytest.fixture(scope="module")
def gigabyte(faultlab):
    path = faultlab.www / "1g.bin"
    if not path.exists():
        make_file(path, 1 << 30, seed=42)
    faultlab.sha["1g.bin"] = sha256_file(path)
    yield "1g.bin"
    path.unlink(missing_ok=True)


@pytest.mark.slow
@pytest.mark.parametrize("case", [CASES[0], pytest.param(CASES[1], marks=pytest.mark.slower)],
                         ids=[CASES[0].name, CASES[1].name])
def test_fault_matrix_1g(faultlab, gigabyte, tmp_path, case):
    row = download(faultlab, case, gigabyte, tmp_path, TIMEOUTS[gigabyte])
    _check_case(case, row)
    (tmp_path / "out.bin").unlink()
