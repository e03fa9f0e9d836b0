"""Every teaching scenario, end to end: `rawtui demo --headless --scenario X` builds its own lab, downloads
the file through the impaired router and exits 0 only when the file is byte-exact *and* the phenomenon
was seen in the event stream. The checks are also shown to fail on a clean download (they are not
vacuous), and to read the right things from hand-made event streams.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from rawtui.lab.scenarios import SCENARIOS, load_events, sawtooth_cycles
from rawtui.lab.topology import _list_netns
from rawtui.stack.events import DupAck, Handshake, OutOfOrder, SegmentIn, SegmentOut, ServerTcpInfo

REPO_ROOT = Path(__file__).resolve().parent.parent
lab_test = pytest.mark.lab


def _demo(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    try:
        res = subprocess.run([sys.executable, "-m", "rawtui", "demo", "--headless", *args], capture_output=True,
                             text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"rawtui demo {' '.join(args)} did not finish in {timeout} s: {exc.stderr!r}"[-3000:], pytrace=False)
    m = re.search(r"^lab (rt[0-9a-f]{6}):", res.stderr, re.MULTILINE)
    assert m, res.stderr[-3000:]
    left = [ns for ns in _list_netns() if ns.startswith(m.group(1))]
    assert not left, f"the demo left namespaces behind: {left}"
    return res


@lab_test
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario_passes(name: str, tmp_path: Path) -> None:
    events = tmp_path / "events.ndjson"
    res = _demo("--scenario", name, "--events", str(events), "--seed", "1")
    assert res.returncode == 0, res.stderr[-4000:]
    assert "PASS  file byte-exact" in res.stderr
    assert f"PASS  {name}:" in res.stderr
    evs = load_events(str(events))
    kinds = {e.type for e in evs}
    assert {"lab_scenario", "lab_knobs", "server_tcp_info", "done"} <= kinds, kinds
    # the check says the same thing when run again on the recorded stream
    assert SCENARIOS[name].check(evs) == []


@lab_test
def test_checks_fail_on_a_clean_download(tmp_path: Path) -> None:
    """Without impairments no phenomenon (but slow start, which every connection has) is reported."""
    events = tmp_path / "events.ndjson"
    res = _demo("--size", "3M", "--events", str(events))
    assert res.returncode == 0, res.stderr[-3000:]
    assert "PASS  file byte-exact" in res.stderr
    evs = load_events(str(events))
    for name, scenario in SCENARIOS.items():
        if name == "slow-start":
            continue
        assert scenario.check(evs), f"the {name} check passed on a clean download"


# ---------------------------------------------------------------------------------------------------
# the checks on hand-made streams (no root needed)


def _ti(t: float, cwnd: int, ss: int | None = None, ca: str = "open", **kw: object) -> ServerTcpInfo:
    return ServerTcpInfo(t, cwnd * 1000, None if ss is None else ss * 1000, 10.0, 1.0, 0, 0, 0, 1000,
                         ca_state=ca, state="ESTABLISHED", peer_port=4000, sample_t=t, **kw)  # type: ignore[arg-type]


def _hs() -> Handshake:
    return Handshake(0.0, 4000, 80, 1, 1, 1460, 1460, 7, 7, True, True, 1.0)


def test_fast_retransmit_check_needs_three_dup_acks_then_a_fill() -> None:
    fr = SCENARIOS["fast-retransmit"]
    base = [_hs(), _ti(0.1, 10), _ti(0.2, 40, 20, "recovery")]
    stream = base + [
        OutOfOrder(1.0, 2449, 1448, 1001, 1448), DupAck(1.0, 1001, 1),
        DupAck(1.001, 1001, 2), DupAck(1.002, 1001, 3),
        SegmentIn(1.02, 1001, 1, "A", 65535, 1448, note="fill"),
    ]
    assert fr.check(stream) == []
    two = [e for e in stream if not (isinstance(e, DupAck) and e.count == 3)]
    assert fr.check(two)
    slow = [*stream[:-1], SegmentIn(1.5, 1001, 1, "A", 65535, 1448, note="fill")]
    assert fr.check(slow), "a hole filled after the RTO is not a fast retransmit"


def test_zero_window_check() -> None:
    zw = SCENARIOS["zero-window"]
    stream = [
        SegmentOut(1.0, 1, 100, "A", 0, 0),
        SegmentIn(1.2, 99, 1, "A", 65535, 0, note="old"),
        SegmentOut(1.2, 1, 100, "A", 0, 0),
        SegmentIn(1.6, 99, 1, "A", 65535, 0, note="old"),
        SegmentOut(1.6, 1, 100, "A", 0, 0),
        SegmentOut(3.0, 1, 100, "A", 512, 0, note="window-update"),
    ]
    assert zw.check(stream) == []
    assert zw.check([e for e in stream if not isinstance(e, SegmentIn)])  # no probe
    assert zw.check([e for e in stream if not (isinstance(e, SegmentOut) and e.window == 0)])


def test_sawtooth_cycles_are_climbs_ended_by_a_cut() -> None:
    samples = [_ti(0.0, 10), _ti(0.1, 40)]  # slow start: not a tooth
    t = 0.2
    for _ in range(3):
        samples.append(_ti(t, 30, 15, "recovery"))
        for w in range(15, 30):
            t += 0.01
            samples.append(_ti(t, w, 15))
        t += 0.01
    cycles = sawtooth_cycles(samples)
    assert [(a.cwnd_bytes // 1000, b.cwnd_bytes // 1000) for a, b in cycles] == [(15, 29), (15, 29)]
    assert SCENARIOS["sawtooth"].check([_hs(), *samples])  # 2 teeth and no queue drops: not enough
