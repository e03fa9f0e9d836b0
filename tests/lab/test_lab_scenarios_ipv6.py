"""`rawtui demo --ipv6` with rawtui as the client: a dual-stack lab, the file served on the server's IPv6
address (the URL holds its literal), the relay impairing IPv6 frames, rawtui downloading over IPv6: a plain
run with knobs, nginx, `--compare`. Every scenario over IPv6 is in tests/lab/test_lab_scenarios.py
(parametrized by family); the relay's IPv6 with the kernel as the client in tests/lab/test_lab_impair_ipv6.py.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import run_demo

from rawtui.download.events import Route
from rawtui.events import Done, Event, ServerTcpInfo
from rawtui.lab.scenarios import load_events, server_samples
from rawtui.lab.server import make_file, sha256_file
from rawtui.lab.topology import Lab

lab_test = pytest.mark.lab
SERVER6 = Lab.server_ip6  # the dual-stack lab's server address (a dataclass default)


def _demo(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return run_demo("--ipv6", *args, timeout=timeout)


def _over_ipv6(res: subprocess.CompletedProcess[str], events: list[Event]) -> None:
    """The demo announced the IPv6 URL, and rawtui's route was IPv6 to the server's address."""
    assert f"client 2001:db8:1::2 -> router -> server {SERVER6}" in res.stderr
    assert f"downloading http://[{SERVER6}]:8080/" in res.stderr
    routes = [e for e in events if isinstance(e, Route)]
    assert routes and all(r.family == 6 and r.dst_ip == SERVER6 for r in routes), routes


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
