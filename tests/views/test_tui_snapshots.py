"""Snapshots of the live view (pytest-textual-snapshot), from the synthesized recordings.

Deterministic: the replay runs at speed 0, and ``settle`` waits until every event was emitted and drawn
before the picture is taken; speeds, ETAs and times shown come from event times, not the wall clock.
Update with ``pytest tests/views/test_tui_snapshots.py --snapshot-update`` and look at the SVGs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rawtui.analysis.explain import Explained
from rawtui.recording import NdjsonReplay, PcapReplay
from rawtui.views.tui.app import RawtuiApp
from rawtui.views.tui.testing import settle

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
URL = "http://10.0.2.2:8080/big.bin"


def app_for(name: str, *, hold: bool = False) -> RawtuiApp:
    return RawtuiApp(NdjsonReplay(FIXTURES / f"{name}.ndjson", speed=0, hold=hold), title=URL)


def test_arp_in_progress(snap_compare: Any) -> None:
    """Two who-has requests, no answer yet."""
    assert snap_compare(app_for("arp_in_progress", hold=True), terminal_size=(120, 35), run_before=settle)


def test_mid_download(snap_compare: Any) -> None:
    """Data flowing; retransmission, out-of-order, dup ACKs and checksum drops counted and graphed."""
    assert snap_compare(app_for("mid_download", hold=True), terminal_size=(120, 35), run_before=settle)


def test_done(snap_compare: Any) -> None:
    """The download finished: the summary over the final graphs."""
    assert snap_compare(app_for("complete_download"), terminal_size=(120, 35), run_before=settle)


def test_error(snap_compare: Any) -> None:
    """ARP timed out: the error dialog with exit code 4."""
    assert snap_compare(app_for("error_arp_timeout"), terminal_size=(120, 35), run_before=settle)


def test_mid_download_packet_detail(snap_compare: Any) -> None:
    """A packet chosen in the list: its decoded layers beside it."""
    assert snap_compare(app_for("mid_download", hold=True), terminal_size=(120, 35), run_before=settle,
                        press=["up", "up", "enter"])


def test_mid_download_80x24(snap_compare: Any) -> None:
    """A small terminal: no graphs, compact counters."""
    assert snap_compare(app_for("mid_download", hold=True), terminal_size=(80, 24), run_before=settle)


def test_cursor_on_a_fast_retransmit(snap_compare: Any) -> None:
    """The timeline cursor after the download: Home, then ] five times, to the server's fast retransmit;
    every panel at that moment, the "what happened" line in the header, a line on each graph."""
    assert snap_compare(app_for("recorded/fast-retransmit"), terminal_size=(120, 35), run_before=settle,
                        press=["home", *["right_square_bracket"] * 5])


def test_cursor_zoomed_one_step_back(snap_compare: Any) -> None:
    """The same, one event back (before the retransmission), the graphs zoomed around the cursor."""
    assert snap_compare(app_for("recorded/fast-retransmit"), terminal_size=(120, 35), run_before=settle,
                        press=["home", *["right_square_bracket"] * 5, "left", "z"])


def test_ipv6_replay(snap_compare: Any) -> None:
    """A real lab capture of an IPv6 download (curl -6, 3 % of the server's segments dropped), replayed:
    the header's family line, the next-hop panel's neighbor discovery, IPv6 addresses whole (as
    scripts/screenshots.py draws screenshots/ipv6-replay.svg)."""
    replay = PcapReplay(FIXTURES / "recorded" / "ipv6-download.pcap", speed=0)
    app = RawtuiApp(Explained(replay), title=replay.title)
    assert snap_compare(app, terminal_size=(120, 35), run_before=settle, press=["escape"])
