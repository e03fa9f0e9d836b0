"""Every teaching scenario, end to end: `rawtui demo --headless --scenario X` builds its own lab, downloads
the file through the impaired router and exits 0 only when the file is byte-exact *and* the phenomenon
was seen in the event stream. The checks are also shown to fail on a clean download (they are not
vacuous), and to read the right things from hand-made event streams.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import child_env, run_demo

from rawtui.download.events import Route
from rawtui.errors import RawtuiError
from rawtui.events import Done, DupAck, Event, Handshake, OutOfOrder, SegmentIn, SegmentOut, ServerTcpInfo
from rawtui.lab.demo import list_scenarios
from rawtui.lab.demo import main as demo_main
from rawtui.lab.scenarios import MIB, SCENARIOS, load_events, sawtooth_cycles

REPO_ROOT = Path(__file__).resolve().parents[2]
lab_test = pytest.mark.lab


def _demo(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return run_demo(*args, timeout=timeout)


@lab_test
@pytest.mark.parametrize("family", [4, 6])
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario_passes(name: str, family: int, tmp_path: Path) -> None:
    """Every scenario, byte-exact with its phenomenon seen, over IPv4 and over IPv6 (``demo --ipv6``: a
    dual-stack lab, the relay impairing IPv6 frames, rawtui's route IPv6 to the server's address)."""
    events = tmp_path / "events.ndjson"
    res = _demo("--fast", "--scenario", name, "--events", str(events), "--seed", "1",
                *(["--ipv6"] if family == 6 else []))
    assert res.returncode == 0, res.stderr[-4000:]
    assert "PASS  file byte-exact" in res.stderr
    assert f"PASS  {name}:" in res.stderr
    evs = load_events(str(events))
    kinds = {e.type for e in evs}
    assert {"lab_scenario", "lab_knobs", "server_tcp_info", "done"} <= kinds, kinds
    routes = [e for e in evs if isinstance(e, Route)]
    assert routes and {r.family for r in routes} == {family}, routes
    # the check says the same thing when run again on the recorded stream
    assert SCENARIOS[name].check(evs) == []


def _watch_run_length(events: list[Event]) -> float:
    """Seconds from our first SYN to the done event: the run's own clock, not the wall clock."""
    syn = next(e.t for e in events if isinstance(e, SegmentOut) and "S" in e.flags)
    done = next(e.t for e in events if isinstance(e, Done))
    return done - syn


@lab_test
def test_default_runs_are_made_to_be_watched(tmp_path: Path) -> None:
    """Without --fast every scenario runs 15-60 s (by its own events' clock) and still passes its check,
    then sums up what was seen. All eight run at once, each in its own lab: the test lasts as long as
    the longest (about 35 s)."""
    env = child_env()
    procs = {}
    for name in SCENARIOS:
        argv = [sys.executable, "-m", "rawtui", "demo", "--headless", "--scenario", name, "--seed", "1",
                "--events", str(tmp_path / f"{name}.ndjson")]
        procs[name] = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                       stdin=subprocess.DEVNULL)
    results = {}
    try:
        for name, proc in procs.items():
            try:
                results[name] = (proc.wait(timeout=300), proc.stderr.read() if proc.stderr else "")
            except subprocess.TimeoutExpired:
                pytest.fail(f"rawtui demo --scenario {name} did not finish in 300 s", pytrace=False)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=10)
            for f in (proc.stdout, proc.stderr):
                if f is not None:
                    f.close()
    lengths = {}
    for name, (code, err) in results.items():
        scenario = SCENARIOS[name].watchable()
        assert code == 0, f"{name}: {err[-4000:]}"
        assert f"PASS  {name}:" in err and "PASS  file byte-exact" in err, err[-3000:]
        assert f"({scenario.pace})" in err, err[:2000]
        assert "what you saw:" in err, err[-3000:]
        evs = load_events(str(tmp_path / f"{name}.ndjson"))
        assert SCENARIOS[name].check(evs) == []
        assert scenario.what_you_saw(evs)
        lengths[name] = _watch_run_length(evs)
    print("\nwatchable run lengths (s): " + ", ".join(f"{n} {v:.1f}" for n, v in lengths.items()))
    short = {n: round(v, 1) for n, v in lengths.items() if not 15.0 <= v <= 60.0}
    assert not short, f"runs outside 15-60 s: {short}"


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


@lab_test
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario_at_its_smallest_size(name: str) -> None:
    """At the smallest size it accepts (below its default) each scenario still shows its phenomenon: the
    knobs scale down with the file (see Scenario.for_size)."""
    s = SCENARIOS[name]
    assert s.min_size < s.size
    res = _demo("--fast", "--scenario", name, "--size", str(s.min_size), "--seed", "1")
    assert res.returncode == 0, res.stderr[-4000:]
    assert f"({s.min_size:,} bytes)" in res.stderr
    assert "PASS  file byte-exact" in res.stderr
    assert f"PASS  {name}:" in res.stderr


# ---------------------------------------------------------------------------------------------------
# sizes (no root needed)


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_a_size_too_small_is_refused_up_front(name: str) -> None:
    s = SCENARIOS[name]
    with pytest.raises(RawtuiError) as info:
        demo_main(["--headless", "--scenario", name, "--size", str(s.min_size - 1)])  # before any lab
    assert info.value.exit_code == 2
    assert info.value.message.startswith(f"scenario {name} needs --size of at least {s.min_size // MIB} MB")
    assert s.size_problem(s.min_size) is None and s.size_problem(s.size) is None
    if s.max_size is not None:
        assert s.size_problem(s.max_size + 1) is not None


def test_zero_window_at_5m_is_one_line_and_exit_2() -> None:
    env = child_env()
    res = subprocess.run([sys.executable, "-m", "rawtui", "demo", "--headless", "--scenario", "zero-window",
                          "--size", "5M"], capture_output=True, text=True, timeout=60, env=env, check=False)
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and res.stdout == ""
    assert res.stderr.startswith("rawtui: error: scenario zero-window needs --size of at least 10 MB (got 5 MB): ")


def test_list_scenarios_gives_the_sizes_each_accepts() -> None:
    text = list_scenarios()
    for name, s in SCENARIOS.items():
        w = s.watchable()
        assert f"{name}  ({w.size // MIB} MB, {w.pace}; {s.size_range()})" in text
        assert f"--fast: {s.size // MIB} MB, {s.pace}" in text
    assert "zero-window  (16 MB, about 21 s; --size 10 MB or more)" in text


def test_knobs_follow_the_size() -> None:
    """The default size gets the scenario as written; a smaller file gets knobs it can show the phenomenon
    with, and the explanation says what they are."""
    for s in SCENARIOS.values():
        assert s.for_size(s.size) == s
    saw = SCENARIOS["sawtooth"].for_size(MIB)
    assert (saw.down["rate_bps"], saw.down["queue"]) == (5_000_000, 10)
    assert saw.explanation.startswith("A 5 Mbit/s bottleneck with a 10-frame queue")
    assert SCENARIOS["sawtooth"].for_size(3 * MIB).down == SCENARIOS["sawtooth"].down
    to = SCENARIOS["timeout"].for_size(MIB)
    assert [a.at_bytes for a in to.actions] == [MIB // 3]
    assert to.actions[0].cmd == SCENARIOS["timeout"].actions[0].cmd
    assert to.down["rate_bps"] == 4_200_000  # 1 MB in about 2 s
    assert to.explanation.startswith("After 341 KB the link goes dark")
    assert SCENARIOS["timeout"].explanation.startswith("After 1 MB the link goes dark")


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
