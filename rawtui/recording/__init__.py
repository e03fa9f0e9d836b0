"""Sources that replay a recording as an :class:`~rawtui.events.EventSource`, so views run without root.

A replay is a source of timed events: :class:`Replay` owns the pacing (real speed scaled by ``speed``,
or as fast as possible), the ``stop`` handling and the exit code; a subclass only says where the events
come from (:meth:`Replay.events`). :class:`NdjsonReplay` reads our own ``--events`` log.
:class:`PcapReplay` reads a classic pcap of any TCP download (ours, tcpdump's, Wireshark's) and analyses
it receiver-side with the stack's own code: the server's frames go through the same parsing, checksum
checks and :class:`~rawtui.stack.tcp.TcpConnection` as live, set up as the client of the captured
connection; what the real client sent comes from the capture.
"""

from __future__ import annotations

from pathlib import Path

from rawtui.errors import UsageError
from rawtui.events import Event
from rawtui.recording.ndjson import NdjsonReplay, decode
from rawtui.recording.pcap import CapturedFlow, PcapReplay, find_flow
from rawtui.recording.replay import Replay

__all__ = ["CapturedFlow", "NdjsonReplay", "PcapReplay", "Replay", "decode", "find_flow", "load_events", "open_replay"]

PCAP_MAGICS = {b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d"}
PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"


def open_replay(
    path: str | Path, *, speed: float | None = 1.0, hold: bool = False
) -> NdjsonReplay | PcapReplay:
    """The replay source for a recording: a pcap capture (by its magic number) or our NDJSON events."""
    p = Path(path)
    try:
        with p.open("rb") as f:
            magic = f.read(4)
    except OSError as exc:
        raise UsageError(f"cannot read the recording {p}: {exc.strerror}") from None
    if magic in PCAP_MAGICS:
        return PcapReplay(p, speed=speed, hold=hold)
    if magic == PCAPNG_MAGIC:
        raise UsageError(f"{p} is a pcapng file: rawtui reads classic pcap. Convert it with "
                         f"`editcap -F pcap {p} out.pcap`, or capture with `tshark -F pcap` / `tcpdump -w`")
    return NdjsonReplay(p, speed=speed, hold=hold)


def load_events(path: str | Path) -> list[Event]:
    """All events of a recording, NDJSON or pcap (for tests and tools)."""
    return list(open_replay(path, speed=0).events())
