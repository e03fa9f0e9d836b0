"""The live view for real, in the lab: the Textual app drives the real session to a byte-exact download,
and real captures of downloads (rawtui's own ``--pcap``, curl's under dumpcap) replay on the same screen.

The app runs without a terminal: ``--tui-headless`` (the CLI's way: ``app.run(headless=True)`` and exit on
done) and Textual's ``run_test`` with a Pilot inside the client namespace (a small script run with
``ip netns exec``), so the panels can be checked while the real stack downloads.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO_ROOT, child_env, require_tool

from rawtui.events import Done, Handshake, HttpResponse, to_dict
from rawtui.lab.server import sha256_file
from rawtui.recording import PcapReplay
from rawtui.views.tui.app import RawtuiApp
from rawtui.views.tui.screens import SummaryScreen
from rawtui.views.tui.testing import screen_text, settle

pytestmark = pytest.mark.lab

SIZE = (120, 35)



# -- the real app, the real session ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["1m7.bin", "50m.bin"])
def test_the_app_downloads_byte_exact(run_rawtui, pyserver, www, name):
    """`rawtui --tui-headless`: the Textual app (no terminal, a 120x35 screen) runs the session to the end."""
    r = run_rawtui("--tui-headless", "-o", "out.bin", "--events", "ev.ndjson", f"{pyserver}/{name}",
                   env={"COLUMNS": "120", "LINES": "35"})
    assert r.returncode == 0, r.stderr
    assert sha256_file(r.cwd / "out.bin") == www.sha256[name]
    done = [json.loads(line) for line in (r.cwd / "ev.ndjson").read_text().splitlines() if '"done"' in line]
    assert len(done) == 1 and done[0]["bytes"] == www.size(name) and done[0]["sha256"] == www.sha256[name]
    assert not [p.name for p in r.cwd.iterdir() if "rawtui-part" in p.name]


def test_the_app_reports_a_failure_with_its_exit_code(run_rawtui, pyserver):
    r = run_rawtui("--tui-headless", "-o", "out.bin", f"{pyserver}/no-such-file.bin")
    assert r.returncode == 6, r.stderr
    assert "404" in r.stderr
    assert not (r.cwd / "out.bin").exists()


PILOT_SCRIPT = textwrap.dedent('''
    """Run inside the client namespace: the app with the real Session, under a Pilot."""
    import asyncio, io, json, sys, time
    from rich.console import Console
    from rawtui.download.session import Options, Session
    from rawtui.views.tui.app import RawtuiApp
    from rawtui.views.tui.screens import SummaryScreen
    from rawtui.views.tui.testing import settle

    url, out, report = sys.argv[1:4]

    def screen_text(app):
        w, h = app.size
        console = Console(width=w, height=h, file=io.StringIO(), record=True, legacy_windows=False)
        console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
        return console.export_text()

    async def main():
        session = Session(Options(url=url, output=out))
        app = RawtuiApp(session, title=url)
        result = {}
        async with app.run_test(size=(120, 35)) as pilot:
            deadline = time.monotonic() + 60
            while not app.source_finished and time.monotonic() < deadline:
                await pilot.pause(0.05)
            await settle(pilot)
            result["summary"] = isinstance(app.screen, SummaryScreen)
            result["summary_text"] = screen_text(app)
            await pilot.press("escape")
            await pilot.pause()
            m = app.model
            result["text"] = screen_text(app)
            result["ladder"] = [s.label for s in m.ladder]
            result["phase"] = m.phase
            result["received"] = m.received
            result["segments_in"] = m.counters.segments_in
            result["arp_mac"] = m.arp_mac
            result["handshake"] = m.handshake is not None
            result["graph_points"] = len(m.graphs.seq_data)
            await pilot.press("q")
            await pilot.pause(0.2)
        result["return_value"] = app.return_value
        with open(report, "w") as f:
            json.dump(result, f)

    asyncio.run(main())
''')


def test_run_test_in_the_namespace_with_the_real_session(lab, pyserver, www, tmp_path):
    """Textual's run_test with a Pilot, the real Session, inside the client namespace."""
    script = tmp_path / "pilot.py"
    script.write_text(PILOT_SCRIPT)
    out, report = tmp_path / "out.bin", tmp_path / "report.json"
    url = f"{pyserver}/1m7.bin"
    r = lab.run(lab.client_ns, [sys.executable, str(script), url, str(out), str(report)], cwd=tmp_path,
                capture_output=True, text=True, timeout=120, env=child_env())
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(report.read_text())
    assert sha256_file(out) == www.sha256["1m7.bin"]
    assert res["return_value"] == 0
    assert res["summary"] and "Download complete" in res["summary_text"] and www.sha256["1m7.bin"] in res["summary_text"]
    assert res["phase"] == "DONE" and res["received"] == www.size("1m7.bin")
    assert res["handshake"] and res["arp_mac"] and res["segments_in"] > 10 and res["graph_points"] > 0
    for label in ("SYN", "SYN,ACK", "ACK", "GET /1m7.bin", "HTTP 200 OK", "data"):
        assert label in res["ladder"], label
    text = res["text"]
    assert "DONE" in text and lab.client_if in text and f"{lab.server_ip}:8080" in text
    assert "Counters" in text and "Packets" in text and "Seq (" in text


# -- real captures, replayed ---------------------------------------------------------------------------


def replay_in_app(path: Path) -> dict[str, Any]:
    """Replay a capture at speed 0 in the app (a Pilot) and report what it shows."""
    out: dict[str, Any] = {}

    async def run() -> None:
        src = PcapReplay(path, speed=0)
        app = RawtuiApp(src)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            out["summary"] = isinstance(app.screen, SummaryScreen)
            out["summary_text"] = screen_text(app)
            await pilot.press("escape")
            await pilot.pause()
            out["text"] = screen_text(app)
            out["model"] = app.model
            out["title"] = src.title
            await pilot.press("q")
            await pilot.pause(0.1)

    asyncio.run(run())
    return out


def check_replayed_download(res: dict[str, Any], lab, www, name: str) -> None:
    m = res["model"]
    assert res["title"] == f"http://{lab.server_ip}:8080/{name}"
    assert res["summary"] and www.sha256[name] in res["summary_text"]
    assert m.done is not None and m.done.bytes == www.size(name) and m.done.sha256 == www.sha256[name]
    assert m.handshake is not None and m.handshake.mss == 1460
    assert m.arp_mac is not None  # the capture starts with the ARP exchange
    labels = [s.label for s in m.ladder]
    for label in ("SYN", "SYN,ACK", "ACK", f"GET /{name}", "HTTP 200 OK", "data"):
        assert label in labels, label
    c = m.counters
    assert c.segments_in > 10 and c.segments_out > 5
    assert (c.checksum_ipv4, c.checksum_tcp, c.malformed) == (0, 0, 0)  # offloaded checksums are not drops
    text = res["text"]
    assert "(a capture, replayed)" in text and f"gw {lab.router_client_ip}" in text
    assert "MSS 1460" in text and "SACK ✓" in text and "TS ✓" in text
    assert "DONE" in text and "TCP " in text


def test_replay_of_rawtuis_own_capture(run_rawtui, pyserver, www, lab):
    r = run_rawtui("--headless", "-o", "out.bin", "--pcap", "cap.pcap", "--events", "ev.ndjson",
                   f"{pyserver}/1m7.bin")
    assert r.returncode == 0, r.stderr
    res = replay_in_app(r.cwd / "cap.pcap")
    check_replayed_download(res, lab, www, "1m7.bin")
    # the same connection, analysed live and from the capture by the same code
    live = [json.loads(line) for line in (r.cwd / "ev.ndjson").read_text().splitlines()]
    hs = next(e for e in live if e["type"] == "handshake")
    got: Handshake = res["model"].handshake
    assert (got.local_port, got.isn, got.peer_isn, got.wscale, got.peer_wscale) == (
        hs["local_port"], hs["isn"], hs["peer_isn"], hs["wscale"], hs["peer_wscale"])
    seg_in = sum(1 for e in live if e["type"] == "segment_in")
    assert res["model"].counters.segments_in == seg_in


def test_replay_of_a_curl_capture(lab, pyserver, www, tmp_path):
    """curl downloads while dumpcap captures on the client's interface (a classic pcap); the capture
    replays with the ARP exchange (the neighbour cache is flushed first), the handshake and the body."""
    dumpcap, curl = require_tool("dumpcap"), require_tool("curl")
    cap = tmp_path / "curl.pcap"
    lab.run(lab.client_ns, ["ip", "neigh", "flush", "dev", lab.client_if], capture_output=True, timeout=10)
    proc = lab.popen(lab.client_ns, [dumpcap, "-q", "-P", "-i", lab.client_if, "-w", str(cap),
                                     "-f", "tcp port 8080 or arp"],
                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (cap.exists() and cap.stat().st_size >= 24):
            time.sleep(0.05)  # dumpcap writes the file header once it captures
        time.sleep(0.3)
        r = lab.run(lab.client_ns, [curl, "-sS", "-o", str(tmp_path / "out.bin"), f"{pyserver}/1m7.bin"],
                    capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        time.sleep(0.3)
    finally:
        proc.send_signal(signal.SIGINT)  # dumpcap flushes and closes the file
        try:
            proc.wait(10)
        finally:
            lab.stop(proc)
    assert sha256_file(tmp_path / "out.bin") == www.sha256["1m7.bin"]
    res = replay_in_app(cap)
    check_replayed_download(res, lab, www, "1m7.bin")
    events = list(PcapReplay(cap, speed=0).events())
    resp = next(e for e in events if isinstance(e, HttpResponse))
    assert resp.status == 200 and resp.content_length == www.size("1m7.bin")
    assert any(isinstance(e, Done) for e in events)


def test_rawtui_replay_command_reads_a_pcap(run_rawtui, pyserver, www, tmp_path):
    """`rawtui replay FILE.pcap --headless`: the CLI path, no terminal."""
    r = run_rawtui("--headless", "-o", "out.bin", "--pcap", "cap.pcap", f"{pyserver}/1m.bin")
    assert r.returncode == 0, r.stderr
    rr = subprocess.run([sys.executable, "-m", "rawtui", "replay", str(r.cwd / "cap.pcap"), "--speed", "0",
                         "--headless"], check=False, capture_output=True, text=True, timeout=60, cwd=REPO_ROOT,
                        env=child_env())
    assert rr.returncode == 0, rr.stderr
    out = rr.stdout + rr.stderr
    assert www.sha256["1m.bin"] in out and "HTTP 200 OK" in out and "(a capture, replayed)" in out


def test_a_lossy_capture_is_analysed_like_the_live_session(fresh_lab, www, tmp_path):
    """Loss, reordering, duplicates and corrupted frames on the way down (the lab's impairment relay):
    the replay of rawtui's own capture finds exactly what the live session found, frame for frame, since
    the same code looks at the same frames."""
    from rawtui.lab.control import LabControl
    from rawtui.lab.demo import start_pyserver
    from rawtui.lab.impair import start_relay

    control = str(tmp_path / "control.sock")
    relay = start_relay(fresh_lab, control, seed=7)
    server = start_pyserver(fresh_lab, str(www.root))
    try:
        with LabControl(control) as ctl:
            ctl.set("down", loss=2, reorder=3, dup=1, corrupt=1, delay_ms=5)
            ctl.set("up", delay_ms=5)
            url = f"http://{fresh_lab.server_ip}:8080/1m7.bin"
            r = fresh_lab.run(fresh_lab.client_ns, [sys.executable, "-m", "rawtui", "--headless", "-q",
                                                    "-o", "out.bin", "--pcap", "cap.pcap", "--events", "ev.ndjson",
                                                    url], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                              env=child_env())
            assert r.returncode == 0, r.stderr
    finally:
        fresh_lab.stop(server)
        fresh_lab.stop(relay)
    assert sha256_file(tmp_path / "out.bin") == www.sha256["1m7.bin"]
    live = [json.loads(line) for line in (tmp_path / "ev.ndjson").read_text().splitlines()]
    replayed = [to_dict(e) for e in PcapReplay(tmp_path / "cap.pcap", speed=0).events()]

    def analysis(evs: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "segments_in": [(e["seq"], e["length"], e["flags"], e["note"]) for e in evs if e["type"] == "segment_in"],
            "out_of_order": [(e["seq"], e["length"]) for e in evs if e["type"] == "out_of_order"],
            "dup_data": [(e["seq"], e["length"]) for e in evs if e["type"] == "dup_data"],
            "dup_acks": [e["ack"] for e in evs if e["type"] == "dup_ack" and e["direction"] == "out"],
            "checksum_drops": [e["layer"] for e in evs if e["type"] == "checksum_drop"],
            "states": [e["new"] for e in evs if e["type"] == "tcp_state"],
            "segments_out": [(e["seq"], e["ack"], e["flags"], e["length"]) for e in evs
                             if e["type"] == "segment_out"],
        }

    a, b = analysis(live), analysis(replayed)
    assert a["out_of_order"] or a["dup_data"] or a["checksum_drops"], "the impairments did nothing"
    for key in a:
        assert b[key] == a[key], key
    done = next(e for e in replayed if e["type"] == "done")
    assert done["sha256"] == www.sha256["1m7.bin"]
