"""Replay a capture (pcap or pcapng, maybe gzip-compressed) of any TCP download, analysed receiver-side by
rawtui's own stack (:class:`~rawtui.recording.observe.FlowObserver`): the server's frames go through the
same parsing, checksum checks and :class:`~rawtui.stack.tcp.TcpConnection` as live, set up as the client of
the captured connection; what the real client sent comes from the capture."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from rawtui.errors import UsageError
from rawtui.events import Event, Info
from rawtui.recording.capture import open_capture
from rawtui.recording.conversations import conversations, find_flow
from rawtui.recording.observe import CapturedFlow, FlowObserver, addr_text
from rawtui.recording.replay import Replay

__all__ = ["CapturedFlow", "PcapReplay", "find_flow"]

class PcapReplay(Replay):
    """Replays a capture of a TCP download, analysed receiver-side by a
    :class:`~rawtui.recording.observe.FlowObserver` (see there for what the analysis is).

    The file is pcap or pcapng, maybe gzip-compressed (:func:`~rawtui.recording.capture.open_capture`), of
    any link type :mod:`rawtui.wire.link` reads. The connection is ``stream`` (Wireshark's ``tcp.stream``
    number, :mod:`rawtui.recording.conversations`), by default the largest HTTP or HTTPS download (else the
    largest TCP flow, IPv4 or IPv6; a capture without TCP is refused, saying why). With
    ``keylog`` (SSLKEYLOGFILE format) a TLS connection is decrypted when the file has its secrets. A capture
    that breaks off (cut short, corrupt) gives the analysis of what came before it and says "capture
    truncated at frame N".
    """

    PROGRESS_EVERY = FlowObserver.PROGRESS_EVERY

    def __init__(self, path: str | Path, *, speed: float | None = 1.0, hold: bool = False,
                 stream: int | None = None, keylog: str | Path | None = None) -> None:
        super().__init__(speed=speed, hold=hold)
        self.path = Path(path)
        if not self.path.is_file():
            raise UsageError(f"cannot read the capture {self.path}: no such file")
        self.keylog = None
        if keylog is not None:
            from rawtui.http.tls_decrypt import load_keylog  # cryptography loads for --keylog only

            self.keylog = load_keylog(keylog)
        self.capture = open_capture(self.path)
        self.table = conversations(self.capture)
        self.choice = ""
        conv, why = self.table.pick(stream)  # says why when there is nothing to analyse
        self.stream: int = conv.index
        self.flow = self.table.flow(conv)
        n = len(self.table.conversations)
        if n > 1 or stream is not None:
            self.choice = (f"stream {conv.index} of {n} (0-{n - 1}), {why}: `rawtui replay {self.path.name} "
                           "--list` lists them, --stream N analyses another")
        if conv.kind == "TLS":
            (sip, sport) = conv.server
            host = conv.what.split("SNI ", 1)[1].rstrip(")") if "SNI " in conv.what else addr_text(sip)
            self.title = f"https://{host}" + (f":{sport}" if sport != 443 else "") + " (TLS)"
        else:
            self.title = self.flow.url if conv.kind == "HTTP" else f"{self.flow.name} (TCP)"
        if n > 1:
            self.title += f"  [stream {conv.index} of {n}]"
        self.keylog_name = str(keylog) if keylog is not None else ""
        self.counters: dict[str, int] = {}
        self.observer: FlowObserver | None = None

    def events(self) -> Iterator[Event]:
        observer = self.observer = FlowObserver(self.flow, self.path.name, keylog=self.keylog,
                                                keylog_name=self.keylog_name, choice=self.choice)
        feed = observer.feed
        for frame in self.capture:
            evs = feed(frame)
            if evs:
                yield from evs
        if not observer.analysed:
            raise UsageError(f"{self.path}: no frame of {self.flow.name} could be read")
        cap = self.capture
        end = observer.finish()
        if cap.truncated_at is not None:
            t = end[0].t if end else 0.0
            yield Info(t, f"capture truncated at frame {cap.truncated_at}: {cap.problem}", "warning")
        yield from end
        self.counters = observer.final_counters
