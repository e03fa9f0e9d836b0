"""Sources that replay a recording as an :class:`~rawtui.events.EventSource`, so views run without root.

A replay is a source of timed events: :class:`Replay` owns the pacing (real speed scaled by ``speed``,
or as fast as possible), the ``stop`` handling and the exit code; a subclass only says where the events
come from (:meth:`Replay.events`). :class:`NdjsonReplay` reads our own ``--events`` log.
:class:`PcapReplay` reads a capture of any TCP download (ours, tcpdump's, Wireshark's: pcap or pcapng,
maybe gzip-compressed, see :mod:`rawtui.recording.capture`) and analyses it receiver-side with the stack's own code: the server's frames go through the same parsing, checksum
checks and :class:`~rawtui.stack.tcp.TcpConnection` as live, set up as the client of the captured
connection; what the real client sent comes from the capture (:class:`FlowObserver`, which also serves
a live capture).
"""

from __future__ import annotations

from pathlib import Path

from rawtui.errors import UsageError
from rawtui.events import Event
from rawtui.recording.capture import Capture, CapturedFrame, CaptureError, NotACapture, open_capture
from rawtui.recording.conversations import Conversation, ConversationTable, conversations, format_table
from rawtui.recording.ndjson import NdjsonReplay, decode
from rawtui.recording.observe import FlowObserver
from rawtui.recording.pcap import CapturedFlow, PcapReplay, find_flow
from rawtui.recording.replay import Replay

__all__ = [
    "Capture", "CaptureError", "CapturedFlow", "CapturedFrame", "Conversation", "ConversationTable", "FlowObserver", "NdjsonReplay", "NotACapture",
    "PcapReplay",
    "Replay", "conversations", "decode", "find_flow", "format_table", "load_events", "open_capture", "open_replay",
]



def open_replay(
    path: str | Path, *, speed: float | None = 1.0, hold: bool = False, stream: int | None = None,
    keylog: str | Path | None = None,
) -> NdjsonReplay | PcapReplay:
    """The replay source for a recording: a capture (pcap or pcapng, by its magic number; gzip-compressed
    or not) or our NDJSON events (gzip-compressed or not). ``stream`` and ``keylog`` are for captures."""
    p = Path(path)
    try:
        open_capture(p)
    except NotACapture:
        if stream is not None or keylog is not None:
            raise UsageError(f"{p} is not a capture: --stream and --keylog are for pcap/pcapng files") from None
        return NdjsonReplay(p, speed=speed, hold=hold)
    return PcapReplay(p, speed=speed, hold=hold, stream=stream, keylog=keylog)


def load_events(path: str | Path) -> list[Event]:
    """All events of a recording, NDJSON or pcap (for tests and tools)."""
    return list(open_replay(path, speed=0).events())
