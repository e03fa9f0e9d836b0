"""Command line: `rawtui URL`, `rawtui replay FILE`, `rawtui demo`, `rawtui lab ...`.

Every error a user can hit ends as one line ``rawtui: error: ...`` on stderr and an exit code
(0 ok, 2 usage, 3 privilege, 4 interface/route/next hop, 5 TCP, 6 HTTP, 7 output file), never a traceback.

Every ending is clean and prompt (see :class:`Endings`): SIGINT, SIGTERM or SIGHUP (or a terminal that
hangs up) stop the download the clean way (firewall rule removed, nothing under the final name: the body so
far stays in FILE.part for ``-C -``) and the process exits
within ``GRACE`` seconds whatever it was waiting for; a second signal leaves sooner still.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import select
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn

from rawtui import __version__, dataclass_cache
from rawtui.analysis.explain import Explained
from rawtui.endings import SignalPipe, isatty, point_at_devnull
from rawtui.errors import EXIT_INTERRUPTED, EXIT_USAGE, RawtuiError, UsageError
from rawtui.events import Done, Error, Event, EventSource
from rawtui.views.ndjson import NdjsonWriter, fanout

if TYPE_CHECKING:
    from rawtui.analysis.series import SeriesWriter
    from rawtui.aside import Aside
    from rawtui.download.forked import ForkedSource
    from rawtui.link.afpacket import Unbound

SUBCOMMANDS = ("replay", "demo", "lab", "interfaces", "watch")
GRACE = 1.5  # seconds from the first signal to the forced exit
HURRY = 0.5  # ...at most this long after a second signal
EXIT_BOUND = 1.0  # seconds the interpreter may take to exit once main() has returned (joins, atexit)

EPILOG = """\
exit codes: 0 ok, 2 usage, 3 missing privilege (root or CAP_NET_RAW+CAP_NET_ADMIN),
4 interface/route/next-hop (ARP/NDP) failure, 5 TCP failure (refused, reset, timeout, --max-time),
6 HTTP error or bad response, 7 output file error, 8 TLS failure (certificate refused, handshake failed), 130 interrupted.
other commands: rawtui replay FILE, rawtui watch, rawtui demo, rawtui lab down"""


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad option is one line and exit 2 (``rawtui: error: argument --retry: ...``)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _seconds(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not (v >= 0 and math.isfinite(v)):
        raise argparse.ArgumentTypeError(f"{text!r}: use 0 or more seconds")
    return v


def _count(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: use 0 or more")
    return v


def _rate(text: str) -> float:
    from rawtui.download.pacing import parse_rate

    try:
        return parse_rate(text)
    except UsageError as e:
        raise argparse.ArgumentTypeError(e.message.removeprefix("bad --limit-rate ")) from None


def _header(text: str) -> Any:
    from rawtui.http.request import parse_header_option

    try:
        return parse_header_option(text)
    except UsageError as e:
        raise argparse.ArgumentTypeError(e.message.removeprefix("bad -H ")) from None


def _one_line(text: str) -> str:
    if any(ord(c) < 0x20 and c != "\t" or ord(c) == 0x7F for c in text):
        raise argparse.ArgumentTypeError(f"{text!r} holds a line break or a control character")
    return text


def _continue_at(text: str) -> bool:
    if text != "-":
        raise argparse.ArgumentTypeError(f"{text!r}: only '-C -' is supported (continue FILE.part where it ends)")
    return True


def _request_options(p: argparse.ArgumentParser) -> None:
    """curl's request and output options (see README, "Coming from curl")."""
    p.add_argument("-O", "--remote-name", dest="output", action="append_const", const=None,
                   help="save under the URL's own name (the default; per URL, like -o)")
    p.add_argument("--output-dir", metavar="DIR", help="save in DIR (for -O names and relative -o)")
    p.add_argument("-C", "--continue-at", metavar="-", type=_continue_at, default=False,
                   help="continue FILE.part, kept by an interrupted download (Range + If-Range)")
    p.add_argument("-H", "--header", metavar="'NAME: VALUE'", type=_header, action="append", default=[],
                   help="add a request header, or replace rawtui's ('NAME:' removes it); repeatable")
    p.add_argument("-A", "--user-agent", metavar="NAME", type=_one_line, help="the User-Agent header")
    p.add_argument("-e", "--referer", metavar="URL", type=_one_line, help="the Referer header")
    p.add_argument("--compressed", action="store_true",
                   help="ask for gzip or deflate and decode it as it arrives")
    p.add_argument("-I", "--head", action="store_true",
                   help="a HEAD request: print the response headers, save no file")


def _download_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="rawtui",
        description="Download a URL over HTTP with rawtui's own TCP/IP/ARP stack on an AF_PACKET raw socket, "
        "and watch the stack work live.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("url", nargs="+", help="http:// or https:// URL to download (several: one after another)")
    p.add_argument("-i", "--interface", metavar="IFACE", help="use this interface instead of the kernel's choice")
    family = p.add_mutually_exclusive_group()
    family.add_argument("-4", "--ipv4", dest="family", action="store_const", const=4,
                        help="IPv4 only: a name's A records (default: IPv6 when the kernel routes it, else IPv4)")
    family.add_argument("-6", "--ipv6", dest="family", action="store_const", const=6,
                        help="IPv6 only: a name's AAAA records")
    p.add_argument("-o", "--output", metavar="FILE", action="append",
                   help="where to save the body (default: the URL's file name here; - for stdout)")
    _request_options(p)
    p.add_argument("--events", metavar="FILE", help="write the event stream as NDJSON")
    p.add_argument("--pcap", metavar="FILE", help="write every frame sent and received (classic pcap)")
    _series_options(p)
    p.add_argument("--headless", action="store_true", help="progress bar and summary instead of the live view")
    p.add_argument("--timeout", type=float, default=30.0, metavar="S",
                   help="give up after S seconds without a frame from the server (default 30)")
    p.add_argument("--exit-on-done", action="store_true", help="live view: exit when the download ends")
    p.add_argument("--stall", metavar="BYTES:SECONDS",
                   help="teaching knob: stop reading after BYTES of body for SECONDS (zero window)")
    p.add_argument("--limit-rate", metavar="RATE", type=_rate,
                   help="read at most RATE bytes per second (200K, 2M): the advertised window slows the server")
    p.add_argument("--retry", metavar="N", type=_count, default=0,
                   help="try again up to N times on a transient failure (refused, reset, timeout, 408/429/5xx)")
    p.add_argument("--retry-delay", metavar="S", type=_seconds,
                   help="wait S seconds between attempts (default: 1 s, doubling each time)")
    p.add_argument("--retry-max-time", metavar="S", type=_seconds, default=0.0,
                   help="no new attempt after S seconds of trying (default: no limit)")
    p.add_argument("--max-time", metavar="S", type=_seconds, default=0.0,
                   help="give up (exit 5) when a URL's download, attempts included, takes more than S seconds")
    p.add_argument("--connect-timeout", metavar="S", type=_seconds, default=0.0,
                   help="give up on a connection not up (ARP, handshake, TLS) within S seconds (exit 5)")
    p.add_argument("--cacert", metavar="FILE", help="https: trust the CA certificates in FILE (PEM)")
    p.add_argument("--insecure", action="store_true", help="https: do NOT verify the server's certificate")
    p.add_argument("--keylog", metavar="FILE", help="https: write TLS keys (SSLKEYLOGFILE format) for Wireshark")
    p.add_argument("--lab-control", metavar="PATH", help=argparse.SUPPRESS)  # set by `rawtui demo`
    p.add_argument("--tui-headless", action="store_true", help=argparse.SUPPRESS)  # the app, no terminal
    p.add_argument("-q", "--quiet", action="store_true", help="headless: no progress bar or summary")
    p.add_argument("--explain", action="store_true",
                   help="headless: print what just happened, one plain-language line per notable event")
    p.add_argument("--version", action="version", version=f"rawtui {__version__}")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    code = 1
    try:
        if args and args[0] in SUBCOMMANDS:
            code = _subcommand(args[0], args[1:])
        else:
            code = _download(args)
    except RawtuiError as e:
        _say_error(e.message)
        code = e.exit_code
    except KeyboardInterrupt:
        _say_error("interrupted")
        code = 130
    finally:
        if argv is None:  # the program itself (not a caller in the same process): it exits next
            # spare the interpreter's last garbage collection, which walks every object the imports
            # made (~40 ms for pyroute2's alone): the process's memory goes back to the OS anyway
            gc.freeze()
            _bound_the_exit(code)
    return code


def imports_done() -> None:
    """A command's modules are in: the cyclic GC that ``rawtui.__main__.run`` turned off for the imports
    comes back, with what they made frozen out of its way (never walked again). Nothing when the GC was on
    (rawtui.cli called from another program)."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


def _bound_the_exit(code: int) -> None:
    """The interpreter's exit joins every non-daemon thread (Textual's thread workers among them) with no
    timeout: if one is still running, it gets ``EXIT_BOUND`` seconds, then the process ends anyway."""
    main = threading.main_thread()
    if not any(t is not main and t.is_alive() and not t.daemon for t in threading.enumerate()):
        return

    def leave() -> None:
        time.sleep(EXIT_BOUND)
        for f in (sys.stdout, sys.stderr):
            try:
                f.flush()
            except Exception:  # noqa: BLE001, S110 - leaving anyway
                pass
        os._exit(code)

    threading.Thread(target=leave, name="rawtui-exit-bound", daemon=True).start()


def _say_error(message: str) -> None:
    print(f"rawtui: error: {message}", file=sys.stderr)


class Endings(SignalPipe):
    """SIGINT, SIGTERM and SIGHUP (and a terminal that hangs up without one) for one command.

    The handlers only write the signal's number to a pipe (:class:`rawtui.endings.SignalPipe`); a daemon
    thread does the rest:

    * the first signal sets :attr:`stop` (the source ends cleanly: firewall rule removed, the body so far
      kept in FILE.part, nothing under the final name)
      and tells the listeners (:meth:`on_signal`: the app leaves); the process has ``GRACE`` seconds;
    * a second one tells them again with ``again=True`` (the app leaves at once); ``HURRY`` seconds at most;
    * when the time is up, the :meth:`at_deadline` actions run (restore the terminal; 0.3 s at most) and
      the process ends with ``os._exit(130)``: no join, lock or blocked write can keep it alive. A
      download child told to go by the parent's death ends by itself (rawtui.download.forked).

    When the terminal hangs up (noticed at a signal or by polling), the standard streams that were a
    terminal are pointed at /dev/null first: nothing then fails writing to a terminal that is gone (Textual's
    writer thread would die of it, and its bounded queue would then block the app for ever).
    """

    POLL = 0.25  # seconds between checks that the terminal is still there
    THREAD_NAME = "rawtui-endings"

    def __init__(self, grace: float = GRACE, hurry: float = HURRY) -> None:
        super().__init__()
        self.stop = threading.Event()
        self.grace, self.hurry = grace, hurry
        self.received: list[int] = []
        self.deadline: float | None = None
        self.hung_up = False
        self._listeners: list[Callable[[bool], object]] = []
        self._actions: list[Callable[[], object]] = []
        self._ttys = [fd for fd in (0, 1, 2) if isatty(fd)]

    @property
    def signalled(self) -> bool:
        return bool(self.received)

    def on_signal(self, listener: Callable[[bool], object]) -> None:
        """Call ``listener(again)`` at each signal (from the watcher thread); at once if one came already."""
        self._listeners.append(listener)
        if self.received:
            listener(len(self.received) > 1)

    def at_deadline(self, action: Callable[[], object]) -> None:
        """Run ``action`` (quickly!) before the forced exit."""
        self._actions.append(action)

    # -- in the main thread, at any bytecode --------------------------------------------------------

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGHUP and signal.getsignal(signal.SIGCONT) not in (signal.SIG_DFL, None):
            # the hang-up comes with a SIGCONT, whose handler (Textual's) would start the application
            # mode again on the terminal that is gone
            signal.signal(signal.SIGCONT, signal.SIG_DFL)
        self._post(signum)

    # -- the watcher thread -------------------------------------------------------------------------

    def _watch(self, r: int) -> None:
        while True:
            timeout = self.POLL
            if self.deadline is not None:
                timeout = min(timeout, max(0.0, self.deadline - time.monotonic()))
            if select.select([r], [], [], timeout)[0]:
                data = os.read(r, 64)
                for signum in data:
                    if signum == 0:
                        return
                    self._got(signum)
            elif not self.hung_up and self._terminal_gone():
                if self._nohup:  # carry on without it
                    self.hung_up = True
                    point_at_devnull(self._ttys)
                else:
                    self._got(signal.SIGHUP)
            if self.deadline is not None and time.monotonic() >= self.deadline:
                self._give_up()

    def _terminal_gone(self) -> bool:
        return any(not isatty(fd) for fd in self._ttys)

    def _got(self, signum: int) -> None:
        if self._ttys and not self.hung_up and self._terminal_gone():
            self.hung_up = True
            point_at_devnull(self._ttys)  # Textual's writer thread would die of EIO, then its queue block
            if signum == signal.SIGHUP and self.received:
                return  # the same hang-up, seen twice (the signal and the poll): not a second signal
        elif signum == signal.SIGHUP and self.hung_up:
            return
        self.received.append(signum)
        now = time.monotonic()
        again = len(self.received) > 1
        limit = now + (self.hurry if again else self.grace)
        self.deadline = limit if self.deadline is None else min(self.deadline, limit)
        self.stop.set()
        for listener in list(self._listeners):
            try:
                listener(again)
            except Exception:  # noqa: BLE001, S110 - the deadline still holds
                pass

    def _give_up(self) -> None:
        """The clean end did not come in time: the quick actions (0.3 s at most in all), then exit."""
        def run() -> None:
            for action in self._actions:
                try:
                    action()
                except Exception:  # noqa: BLE001, S110 - leaving anyway
                    pass

        t = threading.Thread(target=run, name="rawtui-last-actions", daemon=True)
        t.start()
        t.join(0.3)
        if not self.hung_up and 2 in self._ttys:
            try:
                os.write(2, b"\rrawtui: error: interrupted; the clean-up did not finish in time\r\n")
            except OSError:
                pass
        os._exit(130)



def _download(argv: list[str]) -> int:
    ns = _download_parser().parse_intermixed_args(argv)
    if ns.continue_at and not ns.head and "-" in (ns.output or []):  # a usage error before any privilege check
        raise UsageError("-C - continues a file: it cannot be used with -o - (standard output)")
    from rawtui.download.privilege import prepare_download

    # become the sudo user keeping only CAP_NET_RAW+CAP_NET_ADMIN (not the demo's child: it works in
    # the demo's root-owned directory); exit 3 naming what is missing. Before any thread exists (the
    # signal watcher's among them): capabilities are per thread. (Nothing to clean up exists yet.)
    dataclass_cache.save()  # while the package's __pycache__ may still be writable (root, before a drop)
    prepare_download(drop=not ns.lab_control)
    with Endings() as endings:
        return _download_with(ns, endings)


def _download_with(ns: argparse.Namespace, endings: Endings) -> int:
    # A headless download opens its raw socket now, in a thread, beside the imports that follow: setting up
    # the socket's receive ring waits 8-13 ms in the kernel (an RCU grace period) with the GIL released.
    # (Not for the live view: its download runs in a forked child, and a fork copies no thread.)
    outputs: list[str] = ns.output or []
    early: Aside[Unbound] | None = None
    if not ns.tui_headless and _headless(ns, outputs):
        from rawtui.aside import Aside
        from rawtui.link.afpacket import Unbound

        early = Aside(Unbound, "rawtui-socket")
    try:
        return _download_session(ns, endings, early)
    finally:
        if early is not None:  # not taken by a connection (an error first): closed here
            try:
                early.result().close()
            except RawtuiError:
                pass


def _headless(ns: argparse.Namespace, outputs: list[str]) -> bool:
    """The headless view, not the live one: asked for, no terminal, the body on stdout, or -I."""
    return bool(ns.headless or not (sys.stdout.isatty() and sys.stdin.isatty()) or "-" in outputs or ns.head)


def _download_session(ns: argparse.Namespace, endings: Endings, early: Aside[Unbound] | None) -> int:
    from rawtui.download.session import Options, Session

    imports_done()
    outputs: list[str] = ns.output or []
    if len(outputs) > len(ns.url):
        raise UsageError(f"-o given {len(outputs)} times for {len(ns.url)} URL(s): one -o per URL, in order")
    options = Options(url=ns.url[0], iface=ns.interface, family=ns.family,
                      output=outputs[0] if outputs else None, pcap=ns.pcap,
                      idle_timeout=ns.timeout, lab_control=ns.lab_control, cacert=ns.cacert, insecure=ns.insecure,
                      keylog=ns.keylog, limit_rate=ns.limit_rate, retries=ns.retry, retry_delay=ns.retry_delay,
                      retry_max_time=ns.retry_max_time, max_time=ns.max_time, connect_timeout=ns.connect_timeout)
    from rawtui.http.request import RequestOptions

    options.request = RequestOptions(user_agent=ns.user_agent, referer=ns.referer, compressed=ns.compressed,
                                     head=ns.head, headers=tuple(ns.header))
    options.continue_at, options.output_dir = ns.continue_at and not ns.head, ns.output_dir
    # several URLs: one after another, each with its -o in order (curl's pairing), or its own name
    options.more = [(u, outputs[i] if i < len(outputs) else None) for i, u in enumerate(ns.url) if i]
    title = ns.url[0] if len(ns.url) == 1 else f"{ns.url[0]} (+{len(ns.url) - 1} more)"
    if ns.stall:
        try:
            at, _, secs = ns.stall.partition(":")
            options.stall_at, options.stall_for = int(at), float(secs)
        except ValueError:
            raise RawtuiError(f"bad --stall {ns.stall!r}: use BYTES:SECONDS, e.g. 1000000:3", EXIT_USAGE) from None
    session = Session(options, early_socket=early)
    if endings.signalled:  # before anything started: nothing to clean up
        raise KeyboardInterrupt
    if ns.tui_headless:
        log = _open_log(ns.events, _series(ns))
        session.keep_frames()  # as the live view on a terminal does (its "save pcap" key): the same work
        forked = _fork(session, session.save_pcap, endings)
        try:
            return _run_tui(forked, log, True, title, endings, headless_app=True, lab_control=ns.lab_control,
                            set_rate=forked.set_rate)
        finally:
            forked.close(_close_timeout(endings))
            if log is not None:
                log.close()
    headless = _headless(ns, outputs)
    if ns.head:
        ns.quiet = True  # -I: the headers on stdout are the output (an error is still one line on stderr)
    # per-segment events only when someone reads them: the live view or the NDJSON log
    options.segment_events = bool(ns.events or ns.lab_control or ns.explain or ns.series) or not headless
    if headless:
        return run_source(session, headless=True, events_path=ns.events, series=_series(ns), quiet=ns.quiet,
                          title=title,
                          endings=endings, explain=ns.explain)
    session.keep_frames()  # for the app's "save pcap" key
    forked = _fork(session, session.save_pcap, endings)
    try:
        return run_source(forked, headless=False, events_path=ns.events, series=_series(ns),
                          exit_on_done=ns.exit_on_done,
                          title=title, save_pcap=forked.save_pcap, lab_control=ns.lab_control, endings=endings,
                          set_rate=forked.set_rate)
    finally:
        forked.close(_close_timeout(endings))


def _close_timeout(endings: Endings) -> float:
    """How long to wait for the download child: what is left before the forced exit, when signalled."""
    if endings.deadline is None:
        return 2.0
    return max(0.05, endings.deadline - time.monotonic() - 0.1)


def _fork(session: EventSource, save_pcap: Callable[[], str] | None, endings: Endings) -> ForkedSource:
    """The live view's download runs in a child process (rawtui.download.forked): the stack and Textual then use
    a core and an interpreter lock each. Forked now, before Textual is imported: no other thread than the
    signal watcher exists yet (a fork copies only the calling thread)."""
    from rawtui.download.forked import ForkedSource

    forked = ForkedSource(session, save_pcap=save_pcap, set_rate=getattr(session, "set_limit_rate", None))
    endings.at_deadline(forked.let_go)  # a forced exit: the child ends by itself, clean, once we are gone
    return forked


def run_source(
    source: EventSource, *, headless: bool, events_path: str | None = None, quiet: bool = False,
    exit_on_done: bool = False, title: str = "", save_pcap: Callable[[], str] | None = None,
    lab_control: str | None = None, endings: Endings | None = None, explain: bool = False,
    series: tuple[str, float] | None = None, set_rate: Callable[[float | None], None] | None = None,
) -> int:
    """Run a source under the headless view or the Textual app, with the NDJSON log if asked. Signals are
    handled by ``endings`` (one is installed for the call when not given). ``explain``: the headless view
    prints the explanations too."""
    if endings is None:
        with Endings() as own:
            return run_source(source, headless=headless, events_path=events_path, quiet=quiet,
                              exit_on_done=exit_on_done, title=title, save_pcap=save_pcap,
                              lab_control=lab_control, endings=own, explain=explain, series=series,
                              set_rate=set_rate)
    log = _open_log(events_path, series)
    try:
        if headless:
            return _run_headless(source, log, quiet, endings, explain)
        return _run_tui(source, log, exit_on_done, title, endings, save_pcap=save_pcap, lab_control=lab_control,
                        set_rate=set_rate)
    finally:
        if log is not None:
            log.close()


def _run_headless(source: EventSource, log: Callable[[Event], None] | None, quiet: bool, endings: Endings,
                  explain: bool = False) -> int:
    from rawtui.views.headless import HeadlessView

    source = Explained(source)  # what just happened, for the view and the log alike
    view = HeadlessView(quiet=quiet, explain=explain)
    errors: list[Error] = []

    def remember(ev: Event) -> None:
        if isinstance(ev, Error):
            errors.append(ev)

    try:
        code = source.run(fanout(view, log, remember), endings.stop)
    finally:
        view.close()
    if code != 0:
        message = errors[-1].message if errors else f"failed with exit code {code}"
        _say_error(message)
    return code


_SOURCE_SWITCH_INTERVAL = 0.001  # seconds: the GIL switch interval while the live view starts (see _run_tui)


def _run_tui(
    source: EventSource, log: Callable[[Event], None] | None, exit_on_done: bool, title: str, endings: Endings,
    *, headless_app: bool = False, save_pcap: Callable[[], str] | None = None, lab_control: str | None = None,
    set_rate: Callable[[float | None], None] | None = None,
) -> int:
    """The Textual app; ``headless_app`` runs it without a terminal (benchmarks, scripts)."""
    from rawtui.recording.replay import Replay
    from rawtui.views.tui.started import StartedSource  # imports nothing from Textual

    replay = source if isinstance(source, Replay) else None  # its pace follows the live view's < and >
    source = Explained(source)  # what just happened, for the app, the log and the "save events" key
    recorder = EventRecorder()

    class Logged:
        def run(self, emit: Callable[[Event], None], stop: threading.Event) -> int:
            def tee(ev: Event) -> None:
                recorder(ev)
                if log is not None:
                    log(ev)
                emit(ev)

            return source.run(tee, stop)

    # the source starts now, while Textual is imported; a signal stops it (endings.stop) whatever comes next.
    # The import holds the interpreter lock for long stretches: a short switch interval lets the source's
    # thread take the events as they come (and see the download end) meanwhile.
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(min(switch_interval, _SOURCE_SWITCH_INTERVAL))
    started = StartedSource(Logged(), stop_event=endings.stop)
    gc_on = gc.isenabled()
    try:
        gc.disable()  # Textual's ~0.2 s of imports: ~20 ms of them collecting what cannot be garbage (measured)
        try:
            from rawtui.views.tui.app import RawtuiApp
        finally:
            if gc_on:
                gc.enable()

        app = RawtuiApp(started, title=title, exit_on_done=exit_on_done or headless_app,
                        on_save_pcap=save_pcap, on_save_events=recorder.save, lab_control=lab_control,
                        on_set_rate=set_rate,
                        on_set_speed=(lambda value: setattr(replay, "speed", value)) if replay else None,
                        speed=(replay.speed or 1.0) if replay else 1.0)
    except BaseException:
        started.stop_event.set()
        sys.setswitchinterval(switch_interval)
        raise
    endings.on_signal(app.request_end)  # the app leaves once the source has ended (at once: a second signal)
    restore = _TerminalState.save() if not headless_app else None
    if restore is not None:
        endings.at_deadline(restore.restore)  # the app could not leave: put the terminal back ourselves
    if log is not None:
        endings.at_deadline(lambda: _close_log(log, started.finished))  # its tail, if nobody writes it
    size = (120, 35) if headless_app and not os.environ.get("COLUMNS") else None
    result: int | None
    if endings.signalled:  # while Textual was imported: no screen to show, only the source's clean end
        result = started.run(lambda ev: None, endings.stop)
    elif (exit_on_done or headless_app) and started.finished:
        # the download ended while Textual was imported: its screen would only flash up and vanish
        result = started.run(lambda ev: None, endings.stop)
    else:
        result = app.run(headless=headless_app, size=size)
    sys.setswitchinterval(switch_interval)
    if result is None:  # an exception in the app (it said so), or a signal before it could say anything
        result = EXIT_INTERRUPTED if endings.signalled else (app.return_code or 1)
    code = int(result)
    if code != 0 and recorder.errors:
        _say_error(recorder.errors[-1].message)
    elif code == 0 and recorder.done is not None and not headless_app:
        d = recorder.done
        what = f"saved {d.path}" if d.path else "watched"  # no path: `rawtui watch` (another program's file)
        print(f"rawtui: {what} ({d.bytes:,} bytes, sha256 {d.sha256 or 'not known'})", file=sys.stderr)
    return code


def _series_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--series", metavar="FILE.csv",
                   help="write time series at a fixed step as CSV: windows, flight, the server's true cwnd "
                   "(lab), RTT, throughput, retransmissions")
    p.add_argument("--series-step", metavar="S", type=float, default=0.1,
                   help="the --series time step in seconds (default 0.1)")


def _series(ns: argparse.Namespace) -> tuple[str, float] | None:
    """(path, step) of ``--series``, or None."""
    if not ns.series:
        return None
    if not ns.series_step > 0:
        raise RawtuiError(f"bad --series-step {ns.series_step:g}: it must be more than 0 seconds", EXIT_USAGE)
    return ns.series, ns.series_step


class _Logs:
    """The NDJSON log and the time series, as one listener closed once."""

    def __init__(self, *logs: NdjsonWriter | SeriesWriter) -> None:
        self.logs = logs

    def __call__(self, ev: Event) -> None:
        for log in self.logs:
            log(ev)

    def close(self) -> None:
        for log in self.logs:
            log.close()


def _open_log(events_path: str | None, series: tuple[str, float] | None) -> _Logs | None:
    """The listener writing ``--events`` and ``--series`` (closing it writes them out), or None."""
    logs: list[NdjsonWriter | SeriesWriter] = []
    if series is not None:
        from rawtui.analysis.series import SeriesWriter

        logs.append(SeriesWriter(*series))
    if events_path:
        logs.append(NdjsonWriter(events_path))
    return _Logs(*logs) if logs else None


def _close_log(log: Callable[[Event], None], finished: bool) -> None:
    close = getattr(log, "close", None)
    if finished and close is not None:  # only when no thread writes it any more
        close()


class _TerminalState:
    """The terminal's modes before the app, to put back if the app cannot (a forced exit)."""

    def __init__(self, fd: int, attrs: list[Any]) -> None:
        self.fd, self.attrs = fd, attrs

    @classmethod
    def save(cls) -> _TerminalState | None:
        import termios

        fd = 0
        if not isatty(fd):
            return None
        try:
            return cls(fd, termios.tcgetattr(fd))
        except termios.error:
            return None

    def restore(self) -> None:
        import termios

        if not isatty(self.fd):
            return  # gone with the terminal
        try:
            termios.tcsetattr(self.fd, termios.TCSANOW, self.attrs)
        except termios.error:
            pass
        if isatty(2):  # Textual's output: leave the alternate screen, show the cursor, no mouse reports
            try:
                os.write(2, b"\x1b[<u\x1b[?1049l\x1b[?25h\x1b[?1004l\x1b[?1000l\x1b[?1002l\x1b[?1003l\x1b[?1006l"
                            b"\x1b[?2004l")
            except OSError:
                pass


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
    imports_done()  # the GC stays off only through a download's imports (the start-up measured against curl's)
    if name == "replay":
        return _replay(argv)
    if name == "demo":
        from rawtui.lab.demo import main as demo_main
        from rawtui.views.compare import show_compare  # `--compare`: the series CSV and the screen

        return demo_main(argv, compare_view=show_compare)
    if name == "lab":
        return _lab(argv)
    if name == "watch":
        return _watch(argv)
    if name == "interfaces":
        from rawtui.tools.interfaces import main as interfaces_main

        return interfaces_main(argv)
    raise RawtuiError(f"unknown command {name}", EXIT_USAGE)


def _replay(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="rawtui replay", description="Replay a recording on the live view: rawtui's NDJSON events, or a pcap of any TCP download (analysed by rawtui's own stack).")
    p.add_argument("file")
    p.add_argument("--speed", type=float, default=None,
                   help="1 = real time (the live view's default; idle gaps over 5 s are shortened), 0 = as fast "
                        "as possible (the --headless default)")
    p.add_argument("--headless", action="store_true")
    p.add_argument("--explain", action="store_true", help="headless: print what just happened, line by line")
    p.add_argument("--list", action="store_true",
                   help="a capture: list its TCP connections (numbered as Wireshark's tcp.stream) and exit")
    p.add_argument("--stream", type=int, metavar="N",
                   help="a capture: analyse TCP stream N (default: the largest HTTP/HTTPS download)")
    p.add_argument("--keylog", metavar="FILE",
                   help="a capture: decrypt TLS with these secrets (SSLKEYLOGFILE format, as rawtui --keylog, "
                        "curl and browsers write)")
    _series_options(p)
    ns = p.parse_args(argv)
    if not os.path.exists(ns.file):
        raise RawtuiError(f"no such file: {ns.file}", EXIT_USAGE)
    if ns.list:
        return _replay_list(ns.file, ns.stream)
    with Endings() as endings:
        from rawtui.recording import open_replay

        headless = ns.headless or not sys.stdout.isatty()
        speed = ns.speed if ns.speed is not None else 0.0 if headless else 1.0  # headless: as fast as it can
        source = open_replay(ns.file, speed=speed, stream=ns.stream, keylog=ns.keylog)
        if headless and getattr(source, "choice", ""):
            print(f"replay: {source.choice}", file=sys.stderr)  # type: ignore[union-attr]
        return run_source(source, headless=headless, series=_series(ns),
                          title=getattr(source, "title", "") or f"replay {ns.file}",
                          endings=endings, explain=ns.explain)


def _replay_list(path: str, stream: int | None) -> int:
    """`rawtui replay FILE --list`: the capture's TCP connections, the one a replay analyses marked."""
    from rawtui.recording import NotACapture, conversations, format_table, open_capture

    try:
        capture = open_capture(path)
    except NotACapture:
        raise RawtuiError(f"{path} is not a capture: --list is for pcap/pcapng files", EXIT_USAGE) from None
    table = conversations(capture)
    chosen: int | None = None
    why = ""
    if table.conversations or stream is not None:
        conv, why = table.pick(stream)
        chosen = conv.index
    print(f"{path}: {len(table.conversations)} TCP streams (Wireshark's tcp.stream numbers; bytes are TCP "
          "payload; up = client to server)")
    for line in format_table(table, chosen):
        print(line)
    if chosen is not None:
        print(f"* stream {chosen}: {why}; `rawtui replay {path} --stream N` analyses another")
    if capture.truncated_at is not None:
        print(f"capture truncated at frame {capture.truncated_at}: {capture.problem}")
    return 0


WATCH_EPILOG = """\
Follows one connection: the one the filter names, else the first to carry 64 KiB one way (the
biggest transfer). Nothing is sent and no firewall rule is made: it only listens.
exit codes: 0 the connection ended (FIN both ways, or RST) or --count frames were seen, 2 usage,
3 missing privilege (root or CAP_NET_RAW), 4 interface failure, 5 --idle seconds without a frame of it,
7 cannot write --pcap/--events, 130 interrupted (Ctrl-C, SIGTERM, SIGHUP: the summary so far first)."""


def _watch(argv: list[str]) -> int:
    """`rawtui watch`: the live view of a connection another program makes here, seen passively."""
    p = _Parser(prog="rawtui watch", epilog=WATCH_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
                description="Watch a TCP connection another program (curl, a browser, apt) makes on this host, "
                "from a receive-only raw socket, analysed by rawtui's own stack, with the kernel's TCP state.")
    p.add_argument("-i", "--interface", metavar="IFACE",
                   help="the interface to watch (default: the one the route to --host, or the default route, uses)")
    p.add_argument("--host", metavar="IP", help="follow a connection with this address at either end")
    p.add_argument("--port", metavar="P", type=int, help="follow a connection with this port at either end")
    p.add_argument("--stream-filter", metavar="IP:PORT-IP:PORT", help="follow exactly this connection")
    p.add_argument("--pcap", metavar="FILE", help="save every frame seen on the interface (classic pcap)")
    p.add_argument("--events", metavar="FILE", help="write the event stream as NDJSON")
    p.add_argument("--count", metavar="N", type=_count, default=0,
                   help="end after N frames of the followed connection (default: at its end)")
    p.add_argument("--idle", metavar="S", type=_seconds, default=30.0,
                   help="end (exit 5) after S seconds without a frame of the followed connection (default 30; 0 never)")
    p.add_argument("--headless", action="store_true", help="progress bar and summary instead of the live view")
    p.add_argument("-q", "--quiet", action="store_true", help="headless: no progress bar or summary")
    p.add_argument("--exit-on-done", action="store_true", help="live view: exit when the connection ends")
    ns = p.parse_args(argv)
    from rawtui.watch.pick import FlowFilter

    flt = FlowFilter.parse(ns.host, ns.port, ns.stream_filter)
    iface = ns.interface or _watch_interface(ns.host)
    from rawtui.link.passive import PassiveSocket
    from rawtui.link.tcpdiag import TcpDiagReader
    from rawtui.watch.source import WatchOptions, WatchSource

    with Endings() as endings, PassiveSocket(iface) as tap, TcpDiagReader() as diag:
        what = " ".join(f"{k} {v}" for k, v in (("host", ns.host), ("port", ns.port),
                                                 ("connection", ns.stream_filter)) if v is not None)
        if not ns.quiet:
            print(f"rawtui: watching {iface} (receive-only, nothing is sent) for "
                  f"{what or 'the biggest transfer'}; Ctrl-C ends", file=sys.stderr, flush=True)
        options = WatchOptions(iface, flt, pcap=ns.pcap, count=ns.count, idle=ns.idle)
        source = WatchSource(options, tap, diag)
        headless = ns.headless or not (sys.stdout.isatty() and sys.stdin.isatty())
        if headless:
            return run_source(source, headless=True, events_path=ns.events, quiet=ns.quiet, title=source.title,
                              endings=endings)
        forked = _fork(source, None, endings)
        try:
            return run_source(forked, headless=False, events_path=ns.events, exit_on_done=ns.exit_on_done,
                              title=source.title, endings=endings)
        finally:
            forked.close(_close_timeout(endings))


def _watch_interface(host: str | None) -> str:
    """The interface the kernel would use to reach ``host`` (or anywhere: the default route)."""
    import ipaddress

    from rawtui.link.route import resolve_route

    if host is not None:
        try:
            if ipaddress.ip_address(host).is_loopback:
                return "lo"
        except ValueError:
            raise UsageError(f"bad --host {host!r}: use an IPv4 or IPv6 address") from None
    try:
        return resolve_route(host or "192.0.2.1").iface  # TEST-NET-1: whatever the default route says
    except RawtuiError as exc:
        raise RawtuiError(f"{exc.message}; name the interface to watch with -i", exc.exit_code) from None


def _lab(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="rawtui lab", description="Manage the built-in lab's namespaces.")
    p.add_argument("action", choices=["down"], help="down: remove labs left by dead rawtui processes")
    p.parse_args(argv)
    from rawtui.lab.topology import cleanup_stale_labs

    removed = cleanup_stale_labs()
    print("removed: " + (", ".join(removed) if removed else "nothing"))
    return 0
