"""Command line: `rawtui URL`, `rawtui replay FILE`, `rawtui demo`, `rawtui lab ...`.

Every error a user can hit ends as one line ``rawtui: error: ...`` on stderr and an exit code
(0 ok, 2 usage, 3 privilege, 4 interface/route/ARP, 5 TCP, 6 HTTP, 7 output file), never a traceback.
"""

from __future__ import annotations

import argparse
import gc
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from types import FrameType
from typing import TYPE_CHECKING

from . import __version__
from .errors import EXIT_INTERRUPTED, EXIT_USAGE, RawtuiError
from .eventlog import NdjsonWriter, fanout
from .source import EventSource
from .stack.events import Done, Error, Event

if TYPE_CHECKING:
    from .forked import ForkedSource

SUBCOMMANDS = ("replay", "demo", "lab", "interfaces")

EPILOG = """\
exit codes: 0 ok, 2 usage, 3 missing privilege (root or CAP_NET_RAW+CAP_NET_ADMIN),
4 interface/route/ARP failure, 5 TCP failure (refused, reset, timeout), 6 HTTP error or bad response,
7 output file error, 8 TLS failure (certificate refused, handshake failed), 130 interrupted.
other commands: rawtui replay FILE, rawtui demo, rawtui lab down"""


def _download_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rawtui",
        description="Download a URL over HTTP with rawtui's own TCP/IP/ARP stack on an AF_PACKET raw socket, "
        "and watch the stack work live.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("url", help="http:// or https:// URL to download")
    p.add_argument("-i", "--interface", metavar="IFACE", help="use this interface instead of the kernel's choice")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="where to save the body (default: the URL's file name here; - for stdout)")
    p.add_argument("--events", metavar="FILE", help="write the event stream as NDJSON")
    p.add_argument("--pcap", metavar="FILE", help="write every frame sent and received (classic pcap)")
    p.add_argument("--headless", action="store_true", help="progress bar and summary instead of the live view")
    p.add_argument("--timeout", type=float, default=30.0, metavar="S",
                   help="give up after S seconds without a frame from the server (default 30)")
    p.add_argument("--exit-on-done", action="store_true", help="live view: exit when the download ends")
    p.add_argument("--stall", metavar="BYTES:SECONDS",
                   help="teaching knob: stop reading after BYTES of body for SECONDS (zero window)")
    p.add_argument("--cacert", metavar="FILE", help="https: trust the CA certificates in FILE (PEM)")
    p.add_argument("--insecure", action="store_true", help="https: do NOT verify the server's certificate")
    p.add_argument("--keylog", metavar="FILE", help="https: write TLS keys (SSLKEYLOGFILE format) for Wireshark")
    p.add_argument("--lab-control", metavar="PATH", help=argparse.SUPPRESS)  # set by `rawtui demo`
    p.add_argument("--tui-headless", action="store_true", help=argparse.SUPPRESS)  # the app, no terminal
    p.add_argument("-q", "--quiet", action="store_true", help="headless: no progress bar or summary")
    p.add_argument("--version", action="version", version=f"rawtui {__version__}")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if args and args[0] in SUBCOMMANDS:
            return _subcommand(args[0], args[1:])
        return _download(args)
    except RawtuiError as e:
        _say_error(e.message)
        return e.exit_code
    except KeyboardInterrupt:
        _say_error("interrupted")
        return 130
    finally:
        if argv is None:  # the program itself (not a caller in the same process): it exits next
            # spare the interpreter's last garbage collection, which walks every object the imports
            # made (~40 ms for pyroute2's alone): the process's memory goes back to the OS anyway
            gc.freeze()


def _say_error(message: str) -> None:
    print(f"rawtui: error: {message}", file=sys.stderr)


def _download(argv: list[str]) -> int:
    ns = _download_parser().parse_args(argv)
    from .privilege import prepare_download
    from .session import Options, Session

    # become the sudo user keeping only CAP_NET_RAW+CAP_NET_ADMIN (not the demo's child: it works in
    # the demo's root-owned directory); exit 3 naming what is missing
    prepare_download(drop=not ns.lab_control)

    options = Options(url=ns.url, iface=ns.interface, output=ns.output, pcap=ns.pcap, idle_timeout=ns.timeout,
                      lab_control=ns.lab_control, cacert=ns.cacert, insecure=ns.insecure, keylog=ns.keylog)
    if ns.stall:
        try:
            at, _, secs = ns.stall.partition(":")
            options.stall_at, options.stall_for = int(at), float(secs)
        except ValueError:
            raise RawtuiError(f"bad --stall {ns.stall!r}: use BYTES:SECONDS, e.g. 1000000:3", EXIT_USAGE) from None
    session = Session(options)
    if ns.tui_headless:
        log = NdjsonWriter(ns.events) if ns.events else None
        forked = _fork(session, None)
        try:
            return _run_tui(forked, log, True, ns.url, headless_app=True, lab_control=ns.lab_control)
        finally:
            forked.close()
            if log is not None:
                log.close()
    headless = ns.headless or not (sys.stdout.isatty() and sys.stdin.isatty()) or ns.output == "-"
    # per-segment events only when someone reads them: the live view or the NDJSON log
    options.segment_events = bool(ns.events or ns.lab_control) or not headless
    if headless:
        return run_source(session, headless=True, events_path=ns.events, quiet=ns.quiet, title=ns.url)
    session.keep_frames()  # for the app's "save pcap" key
    forked = _fork(session, session.save_pcap)
    try:
        return run_source(forked, headless=False, events_path=ns.events, exit_on_done=ns.exit_on_done,
                          title=ns.url, save_pcap=forked.save_pcap, lab_control=ns.lab_control)
    finally:
        forked.close()


def _fork(session: EventSource, save_pcap: Callable[[], str] | None) -> ForkedSource:
    """The live view's download runs in a child process (rawtui.forked): the stack and Textual then use
    a core and an interpreter lock each. Forked now, before Textual is imported: no thread exists yet."""
    from .forked import ForkedSource

    return ForkedSource(session, save_pcap=save_pcap)


def run_source(
    source: EventSource, *, headless: bool, events_path: str | None = None, quiet: bool = False,
    exit_on_done: bool = False, title: str = "", save_pcap: Callable[[], str] | None = None,
    lab_control: str | None = None,
) -> int:
    """Run a source under the headless view or the Textual app, with the NDJSON log if asked."""
    log = NdjsonWriter(events_path) if events_path else None
    try:
        if headless:
            return _run_headless(source, log, quiet)
        return _run_tui(source, log, exit_on_done, title, save_pcap=save_pcap, lab_control=lab_control)
    finally:
        if log is not None:
            log.close()


def _run_headless(source: EventSource, log: Callable[[Event], None] | None, quiet: bool) -> int:
    from .headless import HeadlessView

    view = HeadlessView(quiet=quiet)
    stop = threading.Event()
    errors: list[Error] = []

    def remember(ev: Event) -> None:
        if isinstance(ev, Error):
            errors.append(ev)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        code = source.run(fanout(view, log, remember), stop)
    finally:
        view.close()
        for s, h in old.items():
            signal.signal(s, h)
    if code != 0:
        message = errors[-1].message if errors else f"failed with exit code {code}"
        _say_error(message)
    return code


def _run_tui(
    source: EventSource, log: Callable[[Event], None] | None, exit_on_done: bool, title: str,
    *, headless_app: bool = False, save_pcap: Callable[[], str] | None = None, lab_control: str | None = None,
) -> int:
    """The Textual app; ``headless_app`` runs it without a terminal (benchmarks, scripts)."""
    from .tui.started import StartedSource  # imports nothing from Textual

    recorder = EventRecorder()

    class Logged:
        def run(self, emit: Callable[[Event], None], stop: threading.Event) -> int:
            def tee(ev: Event) -> None:
                recorder(ev)
                if log is not None:
                    log(ev)
                emit(ev)

            return source.run(tee, stop)

    started = StartedSource(Logged())  # the source starts now, while Textual is imported
    try:
        from .tui.app import RawtuiApp

        app = RawtuiApp(started, title=title, exit_on_done=exit_on_done or headless_app,
                        on_save_pcap=save_pcap, on_save_events=recorder.save, lab_control=lab_control)
    except BaseException:
        started.stop_event.set()
        raise

    def on_signal(signum: int, frame: FrameType | None) -> None:
        app.stop_event.set()  # the source ends cleanly (firewall rule removed, no partial file)...
        app.call_later(app.exit, EXIT_INTERRUPTED)  # ...and the app leaves once it has

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        size = (120, 35) if headless_app and not os.environ.get("COLUMNS") else None
        code = app.run(headless=headless_app, size=size)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    code = int(code) if code is not None else EXIT_INTERRUPTED
    if code != 0 and recorder.errors:
        _say_error(recorder.errors[-1].message)
    elif code == 0 and recorder.done is not None and not headless_app:
        d = recorder.done
        print(f"rawtui: saved {d.path} ({d.bytes:,} bytes, sha256 {d.sha256})", file=sys.stderr)
    return code


class EventRecorder:
    """Keeps the stream for the app's "save events" key: every event but the per-segment ones, and the
    newest 200,000 of those (a bounded ring), written out as NDJSON on demand."""

    def __init__(self, max_segments: int = 200_000) -> None:
        self.events: list[Event] = []
        self.segments: deque[Event] = deque(maxlen=max_segments)
        self.errors: list[Error] = []
        self.done: Done | None = None

    def __call__(self, ev: Event) -> None:
        if ev.type in ("segment_in", "segment_out"):
            self.segments.append(ev)
            return
        self.events.append(ev)
        if isinstance(ev, Error):
            self.errors.append(ev)
        elif isinstance(ev, Done):
            self.done = ev

    def save(self) -> str:
        path = time.strftime("rawtui-%Y%m%d-%H%M%S.ndjson")
        merged = sorted([*self.events, *list(self.segments)], key=lambda e: e.t)
        writer = NdjsonWriter(path)
        try:
            for ev in merged:
                writer(ev)
        finally:
            writer.close()
        return os.path.abspath(path)


# -- subcommands --------------------------------------------------------------------------------


def _subcommand(name: str, argv: list[str]) -> int:
    if name == "replay":
        return _replay(argv)
    if name == "demo":
        from .lab.demo import main as demo_main

        return demo_main(argv)
    if name == "lab":
        return _lab(argv)
    if name == "interfaces":
        from .interfaces import main as interfaces_main

        return interfaces_main(argv)
    raise RawtuiError(f"unknown command {name}", EXIT_USAGE)


def _replay(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="rawtui replay", description="Replay a recording on the live view: rawtui's NDJSON events, or a pcap of any TCP download (analysed by rawtui's own stack).")
    p.add_argument("file")
    p.add_argument("--speed", type=float, default=1.0, help="1 = real time, 0 = as fast as possible")
    p.add_argument("--headless", action="store_true")
    ns = p.parse_args(argv)
    if not os.path.exists(ns.file):
        raise RawtuiError(f"no such file: {ns.file}", EXIT_USAGE)
    from .replay import open_replay

    source = open_replay(ns.file, speed=ns.speed)
    headless = ns.headless or not sys.stdout.isatty()
    return run_source(source, headless=headless, title=getattr(source, "title", "") or f"replay {ns.file}")


def _lab(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="rawtui lab", description="Manage the built-in lab's namespaces.")
    p.add_argument("action", choices=["down"], help="down: remove labs left by dead rawtui processes")
    p.parse_args(argv)
    from .lab.topology import cleanup_stale_labs

    removed = cleanup_stale_labs()
    print("removed: " + (", ".join(removed) if removed else "nothing"))
    return 0
