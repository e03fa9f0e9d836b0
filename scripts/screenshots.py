"""Write screenshots/*.svg: the live view in its main states, from the test recordings and captures.

    python scripts/screenshots.py            # all of them into screenshots/
    python scripts/screenshots.py --out DIR

The app runs headless (Textual's ``run_test``) on a replay at speed 0 and each picture is taken once
every event was emitted and drawn, so the pictures are the same on every run.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rawtui.analysis.explain import Explained
from rawtui.recording import NdjsonReplay, PcapReplay
from rawtui.views.tui.app import RawtuiApp
from rawtui.views.tui.testing import settle

FIXTURES = ROOT / "tests" / "fixtures"
URL = "http://10.0.2.2:8080/big.bin"

# name -> (recording, hold at the end, terminal size, keys pressed before the picture)
SHOTS: dict[str, tuple[str, bool, tuple[int, int], Sequence[str]]] = {
    "arp-in-progress": ("arp_in_progress", True, (120, 35), ()),
    "mid-download": ("mid_download", True, (120, 35), ()),
    "packet-detail": ("mid_download", True, (120, 35), ("up", "up", "enter")),
    "done": ("complete_download", False, (120, 35), ()),
    "done-view": ("complete_download", False, (120, 35), ("escape",)),
    "error": ("error_arp_timeout", False, (120, 35), ()),
    "help": ("mid_download", True, (120, 35), ("question_mark",)),
    "compact-80x24": ("mid_download", True, (80, 24), ()),
    "lab-demo": ("lab_demo", True, (120, 35), ()),
    # real recordings: `sudo rawtui demo --headless --scenario NAME --events FILE` in the lab
    "scenario-fast-retransmit": ("recorded/fast-retransmit", False, (120, 35), ("escape",)),
    "scenario-timeout": ("recorded/timeout", False, (120, 35), ("escape",)),
    # the timeline cursor after the download: Home, then ] (next notable event) to the fast retransmit
    "timeline-cursor": ("recorded/fast-retransmit", False, (120, 35), ("home", *["right_square_bracket"] * 5)),
}

# `rawtui replay CAPTURE`: a real lab capture (tests/lab/test_lab_tshark_agreement6.py's capture_download6:
# curl -6 through the dual-stack lab, 3 % of the server's segments dropped), after the summary (Escape)
PCAP_SHOTS: dict[str, tuple[str, tuple[int, int], Sequence[str]]] = {
    "ipv6-replay": ("recorded/ipv6-download.pcap", (120, 35), ("escape",)),
}

# shots taken as under `rawtui demo`: the app knows a lab control path (the knob keys show in the footer;
# no key is pressed, so nothing connects to it)
LAB_SHOTS = {"lab-demo", "scenario-fast-retransmit", "scenario-timeout", "timeline-cursor"}
LAB_CONTROL = "/tmp/rawtui-demo/control.sock"


# `rawtui demo --compare reno,cubic,bbr --scenario bufferbloat`: its screen, from the runs' real recordings
COMPARE_SHOTS = {"compare-bufferbloat": ("recorded/compare/bufferbloat", ("reno", "cubic", "bbr"), (120, 35))}


async def shoot_compare(name: str, out: Path) -> Path:
    from rawtui.analysis.compare import curves_of
    from rawtui.lab.scenarios import SCENARIOS, load_events
    from rawtui.views.tui.compare import CompareApp

    recording, ccs, size = COMPARE_SHOTS[name]
    runs = [curves_of(cc, load_events(str(FIXTURES / f"{recording}-{cc}.ndjson"))) for cc in ccs]
    scenario = SCENARIOS["bufferbloat"]
    findings = scenario.compare({r.cc: r.metrics for r in runs}) if scenario.compare else None
    failures, evidence = findings or ([], [])
    verdict = [f"      {line}" for line in evidence] + [f"FAIL  bufferbloat: {f}" for f in failures]
    verdict += [] if failures or findings is None else [f"PASS  bufferbloat: {scenario.compare_look_for}"]
    title = "scenario bufferbloat: server->client: rate 10 Mbit/s, queue 200 frames, delay 10 ms"
    app = CompareApp(runs, title, verdict)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        return Path(app.save_screenshot(filename=f"{name}.svg", path=str(out)))


async def shoot(name: str, out: Path) -> Path:
    if name in COMPARE_SHOTS:
        return await shoot_compare(name, out)
    if name in PCAP_SHOTS:
        capture, size, keys = PCAP_SHOTS[name]
        replay = PcapReplay(FIXTURES / capture, speed=0)
        app = RawtuiApp(Explained(replay), title=replay.title)
    else:
        recording, hold, size, keys = SHOTS[name]
        title = f"rawtui demo --scenario {recording.split('/')[1]}" if recording.startswith("recorded/") else URL
        app = RawtuiApp(Explained(NdjsonReplay(FIXTURES / f"{recording}.ndjson", speed=0, hold=hold)), title=title,
                        lab_control=LAB_CONTROL if name in LAB_SHOTS else None)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        if keys:
            await pilot.press(*keys)
            await pilot.pause()
            await pilot.wait_for_scheduled_animations()
            await pilot.pause()
        path = Path(app.save_screenshot(filename=f"{name}.svg", path=str(out)))
    return path


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "screenshots")
    ap.add_argument("names", nargs="*", metavar="NAME",
                    help=f"which (default: all): {', '.join([*SHOTS, *PCAP_SHOTS, *COMPARE_SHOTS])}")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    unknown = set(args.names) - set(SHOTS) - set(PCAP_SHOTS) - set(COMPARE_SHOTS)
    if unknown:
        ap.error(f"unknown screenshot(s): {', '.join(sorted(unknown))}")
    for name in args.names or [*SHOTS, *PCAP_SHOTS, *COMPARE_SHOTS]:
        print(asyncio.run(shoot(name, args.out)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
