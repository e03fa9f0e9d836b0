"""Every teaching scenario over IPv6, with rawtui as the client: `rawtui demo --ipv6` builds a dual-stack
lab, serves the file on the server's IPv6 address (the URL holds its literal), relays and impairs the
IPv6 frames, and rawtui downloads over IPv6. Each run is byte-exact and its phenomenon is seen, as over
IPv4 (tests/lab/test_lab_scenarios.py); `--compare` and `--cc` work over IPv6 too.

These need rawtui's own IPv6 download path (issue 14: route lookup, neighbor discovery and TCP over
IPv6 in the session); until that is in the tree they fail at the download ("rawtui speaks IPv4 only").
On a copy of this tree with the ip6-route/ip6-path helpers' work in progress applied (2026-12-04 08:50
UTC) all of them passed (12 in 43 s).
The relay's IPv6 itself is tested with the kernel as the client in tests/lab/test_lab_impair_ipv6.py.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import child_env

from rawtui.download.events import Route
from rawtui.events import Done, Event, ServerTcpInfo
from rawtui.lab.scenarios import SCENARIOS, load_events, server_samples
from rawtui.lab.server import make_file, sha256_file
from rawtui.lab.topology import Lab, list_netns

lab_test = pytest.mark.lab
SERVER6 = Lab.server_ip6  # the dual-stack lab's server address (a dataclass default)


def _demo(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    try:
        res = subprocess.run([sys.executable, "-m", "rawtui", "demo", "--headless", "--ipv6", *args],
                             capture_output=True, text=True, timeout=timeout, env=child_env(),
                             stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"rawtui demo --ipv6 {' '.join(args)} did not finish in {timeout} s: {exc.stderr!r}"[-3000:],
                    pytrace=False)
    m = re.search(r"^lab (rt[0-9a-f]{6}):", res.stderr, re.MULTILINE)
    assert m, res.stderr[-3000:]
    assert not [ns for ns in list_netns() if ns.startswith(m.group(1))], "the demo left namespaces behind"
    return res


def _over_ipv6(res: subprocess.CompletedProcess[str], events: list[Event]) -> None:
    """The demo announced the IPv6 URL, and rawtui's route was IPv6 to the server's address."""
    assert f"client 2001:db8:1::2 -> router -> server {SERVER6}" in res.stderr
    assert f"downloading http://[{SERVER6}]:8080/" in res.stderr
    routes = [e for e in events if isinstance(e, Route)]
    assert routes and all(r.family == 6 and r.dst_ip == SERVER6 for r in routes), routes


@lab_test
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario_passes_over_ipv6(name: str, tmp_path: Path) -> None:
    events = tmp_path / "events.ndjson"
    res = _demo("--fast", "--scenario", name, "--events", str(events), "--seed", "1")
    assert res.returncode == 0, res.stderr[-4000:]
    assert "PASS  file byte-exact" in res.stderr
    assert f"PASS  {name}:" in res.stderr
    evs = load_events(str(events))
    _over_ipv6(res, evs)
    assert {"lab_scenario", "lab_knobs", "server_tcp_info", "done"} <= {e.type for e in evs}
    assert SCENARIOS[name].check(evs) == []


@lab_test
def test_demo_ipv6_downloads_over_ipv6(tmp_path: Path) -> None:
    """A plain `rawtui demo --ipv6` with knobs: byte-exact, and the server's TCP_INFO (sampled on its
    IPv6 connection) reached the event stream."""
    events = tmp_path / "e.ndjson"
    size = 3 << 20
    want = sha256_file(make_file(tmp_path / "want.bin", size))  # the demo's file: the same generator
    res = _demo("--size", "3M", "--loss", "1", "--delay", "10ms", "--events", str(events), "--seed", "2")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "PASS  file byte-exact" in res.stderr
    evs = load_events(str(events))
    _over_ipv6(res, evs)
    done = [e for e in evs if isinstance(e, Done)]
    assert len(done) == 1 and done[0].sha256 == want
    assert server_samples(evs) and all(isinstance(s, ServerTcpInfo) for s in server_samples(evs))


@lab_test
def test_demo_ipv6_with_nginx(tmp_path: Path) -> None:
    """nginx listens on [::] in the dual-stack lab: the demo downloads from it over IPv6, byte-exact."""
    events = tmp_path / "e.ndjson"
    res = _demo("--server", "nginx", "--size", "2M", "--loss", "1", "--events", str(events), "--seed", "4")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "PASS  file byte-exact" in res.stderr
    assert f"downloading http://[{SERVER6}]/" in res.stderr
    routes = [e for e in load_events(str(events)) if isinstance(e, Route)]
    assert routes and all(r.family == 6 and r.dst_ip == SERVER6 for r in routes), routes


@lab_test
@pytest.mark.timeout(180)
def test_compare_over_ipv6(tmp_path: Path) -> None:
    events = tmp_path / "ev.ndjson"
    res = _demo("--compare", "reno,cubic", "--size", "2M", "--delay", "5ms", "--seed", "3", "--events", str(events))
    assert res.returncode == 0, res.stderr[-4000:]
    for cc in ("reno", "cubic"):
        evs = load_events(str(tmp_path / f"ev-{cc}.ndjson"))
        _over_ipv6(res, evs)
        assert {s.cc for s in server_samples(evs)} == {cc}
