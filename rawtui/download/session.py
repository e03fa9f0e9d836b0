"""A live download: the link (socket, route, firewall, pcap) wired to the stack and to HTTP.

:class:`Session` is an :class:`~rawtui.events.EventSource`: ``run(emit, stop)`` does the whole job in the
calling thread (the headless view's main thread, or the Textual app's worker) and returns the exit code.
Every exit path closes the socket, removes the firewall rule and leaves no partial file under the final
name.
"""

from __future__ import annotations

import os
import random
import select
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from rawtui.aside import Aside
from rawtui.download.output import OutputFile, resolve_output
from rawtui.download.pacing import ReadPacer, buffer_for, human_rate
from rawtui.download.resume import Action, PartMeta, decide, resume_plan
from rawtui.errors import (
    EXIT_INTERRUPTED,
    EXIT_TCP,
    HttpError,
    LinkError,
    RawtuiError,
    TcpError,
    TlsError,
    UsageError,
)
from rawtui.http.channel import PlainChannel, RecordTracker
from rawtui.http.client import REDIRECT_STATUSES, BadBody, BodyCut, HttpExchange, Url, parse_url
from rawtui.http.decode import DECODABLE, BodyDecoder, content_codings
from rawtui.http.request import RequestOptions
from rawtui.link.afpacket import PacketSocket, Unbound
from rawtui.link.firewall import FirewallGuard, cleanup_stale
from rawtui.link.pcap import LINKTYPE_ETHERNET, LINKTYPE_RAW, PcapWriter
from rawtui.link.route import RouteInfo, choose_address, resolve_route

if TYPE_CHECKING:
    import ssl

    from rawtui.http.tls import TlsChannel
    from rawtui.lab.control import LabChannel
from rawtui.events import (
    Done,
    Emit,
    Error,
    HttpResponse,
    Info,
    Medium,
    Progress,
    RateLimit,
    ReadStall,
    Redirect,
    Retry,
    Route,
    TlsInfo,
    TlsRecord,
)
from rawtui.stack.host import Host
from rawtui.stack.p2p import DESCRIPTION as P2P_DESCRIPTION
from rawtui.stack.tcp_states import OVER, State
from rawtui.wire.ethernet import mac_bytes
from rawtui.wire.ipv4 import ip_bytes
from rawtui.wire.ipv6 import endpoint_text, split_zone

RING_SNAPLEN = 128  # bytes of each frame kept for the live view's "save pcap" (headers, like tcpdump -s)
RECV_BATCH = 256  # frames handled before the application side gets a turn
# ... or fewer: once a batch has put this share of the receive buffer in order (GRO frames are up to 64 KB:
# 256 of them would fill it, and a reader that had no turn shows the server a closing, even zero, window)
RECV_BATCH_SHARE = 4
# A wake-up costs more than the frame it finds (select, the loop's checks and timers, an ACK's send, and
# caches the server and the relay cooled meanwhile): at 100 Mbit/s frames come every ~120 us, and rawtui
# woke ~21,500 times for 36,000 frames.
# Once data flows, the loop waits TcpConnection.receive_coalesce (min(0.5 ms, RTT / 40)) after a wake-up
# for more to arrive, as a NIC's interrupt moderation does (measured: see the README's "Performance").
# Shorter holds are not worth a sleep (the kernel's timer slack alone is 50 us): RTTs under 8 ms.
COALESCE_MIN = 0.0002
PROGRESS_EVERY = 0.1  # seconds between progress events


COALESCE = 256 << 10


@dataclass(frozen=True, slots=True)
class _Family:
    """What a connection builds and says differently for IPv4 and IPv6: decided once, from the route."""

    address: Callable[[str], bytes]  # an address's text to its bytes (IPv6: a zone, if any, dropped)
    headers: int  # IP + TCP header bytes without options: MSS = MTU - headers
    min_mss: int  # the smallest MSS the family's minimum MTU allows (RFC 879's 536; IPv6: 1280 - 60)
    resolution: str  # how the next hop's MAC is found, in words
    tag: str  # the Info line's prefix
    no_answer: str  # the next hop did not answer, in words


_FAMILIES = {
    4: _Family(ip_bytes, 40, 536, "ARP exchange", "arp", "no ARP reply from the next hop"),
    6: _Family(lambda text: split_zone(text)[0], 60, 1220, "neighbor discovery", "ndp",
               "no neighbor advertisement from the next hop"),
}


def coalesce(pieces: list[bytes], limit: int = COALESCE, small: int = 16 << 10) -> list[bytes]:
    """Join runs of consecutive small pieces (under ``small`` bytes: MTU-sized segments) into chunks of at
    most ``limit`` bytes; bigger pieces (GRO/TSO super-frames) pass as they are: no copy for nothing."""
    out: list[bytes] = []
    group: list[bytes] = []
    size = 0
    for p in pieces:
        n = len(p)
        if group and (n >= small or size + n > limit):
            out.append(group[0] if len(group) == 1 else b"".join(group))
            group, size = [], 0
        if n >= small:
            out.append(p)
            continue
        group.append(p)
        size += n
    if group:
        out.append(group[0] if len(group) == 1 else b"".join(group))
    return out


@dataclass(slots=True)
class Options:
    url: str
    iface: str | None = None
    family: int | None = None  # -4 / -6: only that IP version (None: curl's choice, IPv6 when routable)
    output: str | None = None  # None: the URL's file name in the current directory; "-": stdout
    pcap: str | None = None
    idle_timeout: float = 30.0  # seconds without a frame from the server before giving up
    max_redirects: int = 5
    rcv_buf: int = 8 << 20
    user_agent: str | None = None
    stall_at: int | None = None  # teaching knob: stop reading after this many body bytes...
    stall_for: float = 0.0  # ...for this long, so our advertised window falls to zero
    cacert: str | None = None  # https: trust this CA file instead of the system store
    insecure: bool = False  # https: do not verify the certificate (loudly)
    keylog: str | None = None  # https: SSLKEYLOGFILE-format key log, so Wireshark can decrypt the pcap
    segment_events: bool = True  # per-segment events (the live view, --events); off saves ~10 % CPU
    lab_control: str | None = None  # the lab's control socket: server TCP_INFO samples and knob changes
    request: RequestOptions = field(default_factory=RequestOptions)  # -H, -A, -e, --compressed, -I
    continue_at: bool = False  # -C -: continue FILE.part (Range + If-Range) instead of starting again
    output_dir: str | None = None  # --output-dir: the directory of a relative output name
    limit_rate: float | None = None  # --limit-rate: bytes per second the application reads (None: no limit)
    retries: int = 0  # --retry N: attempts after the first one, on a transient failure
    retry_delay: float | None = None  # --retry-delay S (None: curl's 1 s, doubling for each retry)
    retry_max_time: float = 0.0  # --retry-max-time S: no new attempt after S seconds of trying (0: no limit)
    max_time: float = 0.0  # --max-time S: each URL's whole job (attempts, redirects) within S (0: no limit)
    connect_timeout: float = 0.0  # --connect-timeout S: ARP, handshake and TLS within S (0: no limit)
    more: list[tuple[str, str | None]] = field(default_factory=list)  # further URLs and their -o, in order


RETRY_STATUSES = (408, 429, 500, 502, 503, 504)  # what curl's --retry takes for transient
MAX_BACKOFF = 600.0  # seconds: curl's longest wait between retries
LINGER = 1.0  # seconds a closing connection may take for the FIN exchange


class _Stopped(Exception):
    pass


class _Stale(Exception):
    """A kept-alive connection the server had closed before it answered our next request."""


class _Conn:
    """One TCP connection: its socket, firewall rule, machine and byte channel. Kept between requests to
    the same server when both sides allow it (HTTP keep-alive)."""

    def __init__(self, key: tuple[str, str, int], sock: PacketSocket, host: Host, guard: FirewallGuard,
                 chan: PlainChannel | TlsChannel, sweep: Aside[list[str]]) -> None:
        self.key = key
        self.sweep = sweep  # the stale rules' sweep started with it (cleanup_stale)
        self.sock = sock
        self.host = host
        self.guard = guard
        self.chan = chan
        self.started = False  # the channel has started (TLS: the ClientHello left)
        self.records_in = RecordTracker() if chan.tls else None
        self.records_out = RecordTracker() if chan.tls else None
        self.counted: dict[str, int] = {}  # counter values already reported in a URL's summary
        self.opened_at = 0.0
        self.family = _FAMILIES[4]  # the route's (_connect)
        self.wakeups = 0  # times frames were waiting when the loop looked (see Session._pump)
        self.coalesced = 0  # of those, times the loop first let more gather (TcpConnection.receive_coalesce)
        self.cut = False  # the last batch ended on RECV_BATCH_SHARE of the buffer, frames still waiting

    @property
    def usable(self) -> bool:
        tcp = self.host.tcp
        return tcp.state is State.ESTABLISHED and not tcp.peer_eof and tcp.error is None and self.host.error is None


class Session:
    """Download ``options.url`` (then ``options.more``) with rawtui's own stack. Implements EventSource."""

    def __init__(self, options: Options, *, early_socket: Aside[Unbound] | None = None) -> None:
        """``early_socket``: the raw socket being opened ahead, beside the program's imports (cli.py's
        headless download): the first connection uses it; closed at the end if none did."""
        self.options = options
        self._early_socket = early_socket
        self._closing: list[Aside[None]] = []  # sockets being closed (_drop); run() waits for them
        self.route: RouteInfo | None = None
        self.result_path: str | None = None
        self._t0 = time.monotonic()
        self._pcap: PcapWriter | None = None
        self._completed_at: float | None = None  # when the last body byte arrived
        self._side: LabChannel | None = None
        self._tls_ctx: ssl.SSLContext | None = None
        self._ring: deque[tuple[float, bytes, int]] | None = None  # recent frames, headers only
        self._ring_snaplen = RING_SNAPLEN
        # the body of the final response (rawtui.download.resume): where the next request starts, and how
        # the body lands (decoded or not, checked against which size)
        self.range_from = 0  # Range: bytes=N- on the next request (a resume)
        self.if_range: str | None = None  # ...and its If-Range validator
        self._decoder: BodyDecoder | None = None  # --compressed: the body's Content-Encoding undone
        self._skip_body = False  # a 416 for a complete part file: its small body is not the file's
        self._expected_size: int | None = None  # the whole file's size, when the server said it
        self._progress_total: int | None = None
        self._validator: str | None = None  # the body's ETag or Last-Modified: a retry's If-Range
        self._url_text = options.url  # the URL being downloaded (of options.url and options.more)
        self._conn: _Conn | None = None
        self._macs: dict[tuple[str, str], bytes] = {}  # (interface, next hop) -> MAC: ARP once per run
        self._pacer = ReadPacer(options.limit_rate, options.stall_at, options.stall_for)
        self._deadline: float | None = None  # --max-time for the current URL, on the session's clock
        self._rate_wanted: float | None = options.limit_rate
        self._rate_asked = 0  # set_limit_rate() calls so far (any thread)
        self._rate_applied = 0

    def discard_early_socket(self) -> None:
        """Close the socket opened ahead if no connection took it (an error before any, or no run)."""
        early, self._early_socket = self._early_socket, None
        if early is not None:
            try:
                early.result().close()
            except RawtuiError:  # it could not be opened: the connection would have said so
                pass

    def keep_frames(self, count: int = 100_000, snaplen: int = RING_SNAPLEN) -> None:
        """Keep the newest ``count`` frames (their first ``snaplen`` bytes: the headers) for save_pcap."""
        self._ring = deque(maxlen=count)
        self._ring_snaplen = snaplen

    def save_pcap(self) -> str:
        """Write the kept frames to ``rawtui-<time>.pcap`` here; returns its path (the live view's `s`)."""
        path = self.options.pcap or time.strftime("rawtui-%Y%m%d-%H%M%S.pcap")
        if self._pcap is not None:
            self._pcap.flush()  # --pcap already records every frame, whole
            return os.path.abspath(path)
        ring = list(self._ring or ())
        with PcapWriter(path) as w:
            if self.route is not None and self.route.medium is Medium.IP:
                w.set_linktype(LINKTYPE_RAW)
            for ts, head, size in ring:
                w.write(head, ts, size)
        return os.path.abspath(path)

    def set_limit_rate(self, rate: float | None) -> None:
        """A new ``--limit-rate`` (None: none) from now on; any thread (the live view's key, through the
        forked child's command pipe). The download's loop applies it at its next turn."""
        self._rate_wanted = rate
        self._rate_asked += 1

    def now(self) -> float:
        return time.monotonic() - self._t0

    # -- EventSource --------------------------------------------------------------------------

    def run(self, emit: Emit, stop: threading.Event) -> int:
        self._t0 = time.monotonic()
        opts = self.options
        code = 0
        try:
            try:
                if opts.pcap:
                    try:
                        self._pcap = PcapWriter(opts.pcap)
                    except OSError as e:
                        raise RawtuiError(f"cannot write the capture {opts.pcap}: {e.strerror}", 7) from None
                if opts.lab_control:
                    from rawtui.lab.control import LabChannel

                    self._side = LabChannel(opts.lab_control)
            except RawtuiError as e:
                emit(Error(self.now(), e.message, e.exit_code))
                return e.exit_code
            if opts.limit_rate is not None:
                emit(RateLimit(self.now(), opts.limit_rate, buffer_for(opts.limit_rate, opts.rcv_buf)))
            targets = [(opts.url, opts.output), *opts.more]
            for i, (url_text, output) in enumerate(targets):
                nxt = targets[i + 1][0] if i + 1 < len(targets) else None
                c = self._download(url_text, output, nxt, emit, stop)
                if c:
                    code = c  # curl's rule: the exit code of the last URL that failed
                if c == EXIT_INTERRUPTED:
                    break
            return code
        finally:
            try:
                self._drop(emit, {}, graceful=not stop.is_set())
            finally:
                self.discard_early_socket()
                for closing in self._closing:
                    closing.result()
                self._closing.clear()
                if self._pcap is not None:
                    self._pcap.close()
                if self._side is not None:
                    self._side.close()

    # -- one URL: its attempts and redirects -----------------------------------------------------

    def _download(self, url_text: str, output: str | None, next_url: str | None, emit: Emit,
                  stop: threading.Event) -> int:
        """Fetch one URL into its file: retries, redirects, then the summary (Done) or the Error; returns
        the exit code."""
        opts = self.options
        out: OutputFile | None = None
        counters: dict[str, int] = {}
        self._url_text = url_text
        self._completed_at = None
        self.range_from, self.if_range, self._validator = 0, None, None
        self._decoder, self._skip_body, self._expected_size, self._progress_total = None, False, None, None
        try:
            url = parse_url(url_text)
            head = opts.request.head
            out = OutputFile("-" if head else resolve_output(url.filename, output, opts.output_dir))
            begun = self.now()
            self._deadline = begun + opts.max_time if opts.max_time > 0 else None
            attempt = 1
            while True:
                try:
                    url = self._redirects(parse_url(url_text), out, emit, stop, counters)
                    break
                except RawtuiError as e:
                    self._drop(emit, counters, graceful=False)  # a failed connection is never reused
                    delay = self._retry_delay(e, attempt, begun, out)
                    if delay is None:
                        raise
                    attempt += 1
                    offset = self._resume_point(out)
                    self.range_from, self.if_range = offset, (self._validator if offset else None)
                    emit(Retry(self.now(), attempt, opts.retries + 1, round(delay, 3), e.message, url_text, offset))
                    if out.size and not offset:
                        emit(Info(self.now(), f"attempt {attempt} starts from zero: the {out.size:,} bytes "
                                  "received cannot be continued (no validator, or a decoded body)"))
                    if stop.wait(delay):
                        raise _Stopped() from None
            if next_url is None or not self._same_server(url, next_url):
                self._drop(emit, counters, graceful=True)  # the FIN exchange before the summary
            if self._decoder is not None:
                out.write(self._decoder.finish())
            path = out.commit(self._expected_size)
            self.result_path = path
            elapsed = self._completed_at if self._completed_at is not None else self.now()
            dec = self._decoder
            if self._side is not None:
                for ev in self._side.final_report(self.now()):
                    emit(ev)
            emit(Done(self.now(), out.size, out.sha256.hexdigest(), round(elapsed, 6), path, counters,
                      wire_bytes=dec.wire_bytes if dec is not None else None, resumed_from=self.range_from))
            return 0
        except RawtuiError as e:
            self._drop(emit, counters, graceful=False)
            if out is not None and isinstance(e, BadBody):  # a broken body: nothing sound to continue
                out.discard()
            emit(Error(self.now(), e.message + _kept(out), e.exit_code))
            return e.exit_code
        except _Stopped:
            self._drop(emit, counters, graceful=False)
            emit(Error(self.now(), "interrupted: the download was stopped before it finished" + _kept(out),
                       EXIT_INTERRUPTED))
            return EXIT_INTERRUPTED
        except Exception as e:  # noqa: BLE001 - a bug: still clean up and say it in one line
            try:
                self._drop(emit, counters, graceful=False)
            finally:
                emit(Error(self.now(), f"internal error: {type(e).__name__}: {e}" + _kept(out), 1))
            return 1

    def _retry_delay(self, e: RawtuiError, attempt: int, begun: float, out: OutputFile) -> float | None:
        """Seconds to wait before another attempt after ``e``, or None: no retry (curl's rules)."""
        opts = self.options
        if not e.transient or attempt > opts.retries:
            return None
        if out.to_stdout and out.size:
            return None  # what went to stdout cannot be taken back
        if e.retry_after is not None:
            delay = e.retry_after  # the server said when (429, 503)
        elif opts.retry_delay is not None:
            delay = opts.retry_delay
        else:
            delay = min(MAX_BACKOFF, float(2 ** (attempt - 1)))  # 1, 2, 4, ... s
        now = self.now()
        if opts.retry_max_time > 0 and now + delay - begun > opts.retry_max_time:
            return None
        if self._deadline is not None and now + delay >= self._deadline:
            return None
        return delay

    def _resume_point(self, out: OutputFile) -> int:
        """Where a retry may continue the body (Range), or 0: from zero."""
        if out.to_stdout or not out.began or not out.resumable or self._decoder is not None:
            return 0
        if self._skip_body or self._validator is None:
            return 0
        return out.size

    def _redirects(self, url: Url, out: OutputFile, emit: Emit, stop: threading.Event,
                   counters: dict[str, int]) -> Url:
        """Fetch ``url`` following redirects; returns the URL the body came from."""
        for hop in range(self.options.max_redirects + 1):
            location = self._fetch(url, out, emit, stop, counters)
            if location is None:
                return url
            if hop == self.options.max_redirects:
                raise HttpError(f"too many redirects (more than {self.options.max_redirects})")
            try:
                nxt = parse_url(location)
            except UsageError as e:  # the server's doing, not the user's: an HTTP error, exit 6
                raise HttpError(f"cannot follow the redirect to {location!r}: {e.message}") from None
            emit(Redirect(self.now(), 0, location, hop + 1))
            url = nxt
        return url

    @staticmethod
    def _same_server(url: Url, other: str) -> bool:
        try:
            o = parse_url(other)
        except UsageError:
            return False
        return (url.scheme, url.host, url.port) == (o.scheme, o.host, o.port)

    # -- connections ------------------------------------------------------------------------------

    def _fetch(
        self, url: Url, out: OutputFile, emit: Emit, stop: threading.Event, counters: dict[str, int]
    ) -> str | None:
        """Fetch one URL over the kept connection to its server, or a new one; return a redirect location
        or None when the body is in ``out``."""
        key = (url.scheme, url.host, url.port)
        conn = self._conn
        if conn is not None and (conn.key != key or not conn.usable):
            self._drop(emit, counters, graceful=True)
            conn = None
        if conn is not None:
            emit(Info(self.now(), f"reusing the connection to {endpoint_text(url.host, url.port)} (HTTP keep-alive)"))
            self._open_output(out, emit)
            try:
                return self._transfer(conn, url, out, emit, stop, counters)
            except _Stale:
                self._drop(emit, counters, graceful=False)
                emit(Info(self.now(), "the server had closed the kept connection: opening a new one"))
        conn = self._connect(url, out, emit)
        try:
            return self._transfer(conn, url, out, emit, stop, counters)
        except _Stale:  # (never on a new connection: said for what it is)
            raise TcpError("the connection closed before the response was complete") from None

    def _connect(self, url: Url, out: OutputFile, emit: Emit) -> _Conn:
        """Route, socket, firewall rule and a started TCP machine for ``url``'s server, kept in ``_conn``."""
        opts = self.options
        destination = choose_address(url.address, opts.family)
        dst_ip, family_reason = destination.address, destination.reason  # (with its zone: fe80::2%eth0)
        sock: PacketSocket | None = None
        guard: FirewallGuard | None = None
        # the sweep of stale rules (a netlink dump, `iptables -S`: 3-10 ms) runs beside the connection (it
        # touches only the tables of dead processes); what it removed is said when the connection ends
        sweep = Aside(cleanup_stale, "rawtui-sweep")
        try:
            if opts.iface:
                sock = self._packet_socket(opts.iface)  # fail early on privilege / bad name
            route = resolve_route(dst_ip, opts.iface)
            self.route = route
            if sock is None:
                sock = self._packet_socket(route.iface)
            family = _FAMILIES[route.family]
            emit(Route(self.now(), route.iface, route.ifindex, route.src_ip, route.src_mac, route.dst_ip,
                       route.gateway, route.next_hop, route.mtu, route.reason, route.warning, route.family,
                       family_reason, route.medium))
            if route.warning:
                emit(Info(self.now(), route.warning, "warning"))
            ethernet = route.medium is Medium.ETHERNET
            if not ethernet:
                emit(Info(self.now(), f"next hop: {P2P_DESCRIPTION} ({route.iface}: bare IP packets, no ARP)"))
            if self._pcap is not None:
                self._pcap.set_linktype(LINKTYPE_ETHERNET if ethernet else LINKTYPE_RAW)
            self._open_output(out, emit)  # after the privilege check, before any packet
            local_port = random.randint(32768, 60999)
            sock.set_filter(dst_ip, url.port, local_port)
            address = family.address
            host = Host(
                local_mac=mac_bytes(route.src_mac) if ethernet else b"", local_ip=address(route.src_ip),
                next_hop_ip=address(route.next_hop if ethernet else dst_ip), remote_ip=address(dst_ip),
                remote_port=url.port, medium=route.medium, local_port=local_port, isn=random.getrandbits(32),
                mss=max(family.min_mss, route.mtu - family.headers), rcv_buf=opts.rcv_buf,
                ts_offset=random.getrandbits(32), iface=route.iface,
                next_hop_role="gateway" if route.gateway else "host", segment_events=opts.segment_events,
                local_addresses=tuple(map(address, route.local_addresses)),
            )
            # the window scale fits the whole buffer (a rate raised later may use it); a rate limit takes
            # only what the rate needs, so the server's first burst, before the window closes, stays small
            host.tcp.rcv_buf = buffer_for(self._pacer.rate, opts.rcv_buf)
            guard = FirewallGuard(dst_ip, url.port, local_port)
            guard.install()
            emit(Info(self.now(), f"firewall: {guard.description}"))
            conn = _Conn((url.scheme, url.host, url.port), sock, host, guard, self._channel(url), sweep)
            conn.opened_at = self.now()
            conn.family = family
            mac = self._macs.get((route.iface, route.next_hop))
            if mac is not None:
                emit(Info(self.now(), f"{family.tag}: {route.next_hop} is at {mac.hex(':')}, known from an "
                          f"earlier connection of this run: no {family.resolution}"))
            self._conn = conn
            host.start(self.now(), mac)
            return conn
        except BaseException:
            sweep.join()
            if self._conn is None:
                if guard is not None:
                    guard.remove()
                if sock is not None:
                    sock.close()
            raise

    def _packet_socket(self, ifname: str) -> PacketSocket:
        """A raw socket on ``ifname``: the one opened ahead, if any is left, else a new one."""
        early, self._early_socket = self._early_socket, None
        return PacketSocket(ifname, unbound=early.result() if early is not None else None)

    def _open_output(self, out: OutputFile, emit: Emit) -> None:
        """Open the output file (an unwritable path fails before any packet) and plan its resume."""
        if not out.opened:
            out.open()
            self._plan_resume(out, emit)

    def _drop(self, emit: Emit, counters: dict[str, int], *, graceful: bool) -> None:
        """Close the kept connection: a FIN and the closing exchange (``LINGER`` seconds at most) when
        ``graceful``, else a RST (never a half-open connection left behind); then the firewall rule and
        the socket go."""
        conn = self._conn
        if conn is None:
            return
        self._conn = None
        host, tcp = conn.host, conn.host.tcp
        try:
            if graceful and tcp.state not in OVER and tcp.error is None and host.error is None:
                host.close(self.now())
                self._flush(conn, emit)  # the FIN leaves first
                # the ring's release (two RCU grace periods) begins now, beside the FIN's round trip, not
                # after it: a ring-less twin receives the rest of the connection
                conn.sock.shed_ring()
                until = self.now() + LINGER
                while tcp.state not in OVER and self.now() < until:
                    self._flush(conn, emit)
                    self._pump(conn, min(0.05, max(0.0, until - self.now())), emit)
            elif tcp.state not in OVER and tcp.state is not State.SYN_SENT:
                host.abort(self.now())
            self._flush(conn, emit)
            self._count(conn, counters)
        finally:
            # the socket's release waits for an RCU grace period (two with its ring, if not shed above), the
            # firewall's netlink socket for another (the deleted table freed): beside each other, the
            # output's commit and the summary; run() waits for them at its end
            self._closing.append(Aside(conn.sock.close, "rawtui-close"))
            try:
                conn.guard.remove(self._closing)
            finally:
                for stale in conn.sweep.result():
                    emit(Info(self.now(), f"removed a stale firewall rule: {stale}"))

    def _count(self, conn: _Conn, counters: dict[str, int]) -> None:
        """Add what the connection counted since the last call to ``counters`` (a URL's summary)."""
        _, kernel_drops = conn.sock.kernel_stats()  # frames lost because rawtui fell behind (full ring/buffer)
        counters["kernel_drops"] = counters.get("kernel_drops", 0) + kernel_drops
        total: dict[str, int] = {}
        for d in (conn.host.counters, conn.host.tcp.counters,
                  {"rx_wakeups": conn.wakeups, "rx_coalesced": conn.coalesced}):
            for k, v in d.items():
                total[k] = total.get(k, 0) + v
        for k, v in total.items():
            counters[k] = counters.get(k, 0) + v - conn.counted.get(k, 0)
        conn.counted = total

    def _send_frames(self, conn: _Conn) -> None:
        frames = conn.host.take_frames()
        if frames:
            pcap, ring, snap, sock = self._pcap, self._ring, self._ring_snaplen, conn.sock
            wall = time.time()
            for f in frames:
                sock.send(f)
                if pcap is not None:
                    pcap.write(f, wall)
                if ring is not None:
                    ring.append((wall, f[:snap], len(f)))

    def _flush(self, conn: _Conn, emit: Emit) -> None:
        self._send_frames(conn)
        for ev in conn.host.take_events():
            emit(ev)

    def _pump(self, conn: _Conn, timeout: float, emit: Emit) -> int:
        """Wait up to ``timeout`` for frames (and the lab's side channel), hand them to the machine, run
        its timers; returns how many frames came."""
        sock, host = conn.sock, conn.host
        fd = sock.fileno()
        side = self._side
        side_fd = side.fileno() if side is not None else -1
        if sock.backlog:  # frames read ahead of a handover (PacketSocket.shed_ring): nothing to wait for
            r = [fd]
        else:
            r, _, _ = select.select([fd] if side is None else [fd, side_fd], [], [], timeout)
        if side is not None and side_fd in r:
            for ev in side.poll(self.now()):
                emit(ev)
        n = 0
        if fd in r:
            conn.wakeups += 1
            hold = host.receive_coalesce
            if hold >= COALESCE_MIN and not conn.cut:  # data flows in: let the next frames join this one
                conn.coalesced += 1  # (interrupt moderation; not when the last batch left frames waiting)
                time.sleep(hold)
            pcap, ring, snap, now = self._pcap, self._ring, self._ring_snaplen, self.now
            tcp = host.tcp
            enough = tcp.bytes_received + tcp.rcv_buf // RECV_BATCH_SHARE
            conn.cut = False
            host.hold_acks()  # these frames are all here now: their in-order ACK leaves once, after them
            while n < RECV_BATCH:
                if tcp.bytes_received >= enough:
                    conn.cut = True  # the reader's turn first
                    break
                got = sock.recv()
                if got is None:
                    break
                frame, csum = got
                ft = now()
                if pcap is not None:
                    pcap.write(frame, time.time())
                if ring is not None:
                    ring.append((time.time(), bytes(frame[:snap]), len(frame)))
                host.on_frame(frame, ft, csum)
                if host.has_frames:
                    self._send_frames(conn)  # any other ACK leaves now, not after the batch: the sender's clock
                n += 1
            host.release_acks(now())
            if host.has_frames:
                self._send_frames(conn)
            if host.arp.mac and self.route is not None:  # (a point-to-point link has none to keep)
                self._macs[(self.route.iface, self.route.next_hop)] = host.arp.mac
        t = self.now()
        deadline = host.next_deadline
        if deadline is not None and t >= deadline:
            host.on_timer(t)
        return n

    def _apply_rate(self, conn: _Conn, emit: Emit, t: float) -> None:
        """The rate set_limit_rate() asked for: into the pacer, and a receive buffer that fits it."""
        self._rate_applied = self._rate_asked
        rate = self._rate_wanted
        self._pacer.set_rate(rate, t)
        tcp = conn.host.tcp
        tcp.rcv_buf = max(tcp.rcv_buf, buffer_for(rate, self.options.rcv_buf))  # grows, never shrinks
        emit(RateLimit(t, rate, tcp.rcv_buf))
        emit(Info(t, f"rate limit: {human_rate(rate)}" + (
            " (rawtui reads no faster: its advertised window holds the server to it)" if rate else "")))

    # -- one request on one connection ------------------------------------------------------------

    def _transfer(
        self, conn: _Conn, url: Url, out: OutputFile, emit: Emit, stop: threading.Event,
        counters: dict[str, int],
    ) -> str | None:
        opts = self.options
        req = opts.request
        if req.user_agent is None and opts.user_agent:
            req = replace(req, user_agent=opts.user_agent)
        http = HttpExchange(url, options=req, range_from=self.range_from, if_range=self.if_range)
        http.keep_alive = True
        host = conn.host
        tcp = host.tcp
        now = self.now
        reused = conn.started
        request_sent = False
        chan = conn.chan
        redirect: str | None = None
        last_rx = now()
        last_progress = 0.0
        progress_bytes = 0
        progress_t = now()
        speed = 0.0
        closing_since: float | None = None
        pacer = self._pacer
        connect_by = conn.opened_at + opts.connect_timeout if opts.connect_timeout > 0 and not reused else None
        max_by = self._deadline
        records_in, records_out = conn.records_in, conn.records_out

        def flush() -> None:
            self._flush(conn, emit)

        def send(data: bytes, t: float) -> None:
            """Application bytes (TLS records, or the plain request) into the connection."""
            if records_out is not None:
                for kind, length in records_out.feed(data):
                    emit(TlsRecord(t, "out", kind, length))
            host.send(data, t)

        def stale() -> bool:
            """The kept connection ended before any answer to this request: the server closed it, idle."""
            return reused and http.response is None and (
                tcp.peer_eof or tcp.error is not None or tcp.state is State.CLOSED)

        try:
            while True:
                flush()
                if host.error is not None:
                    err = host.error
                    if isinstance(err, LinkError) and host.arp.failed:
                        err.transient = True  # no ARP reply / advertisement (yet): another attempt may get one
                    raise err
                if stop.is_set():
                    raise _Stopped()
                t = now()
                if self._rate_applied != self._rate_asked:
                    self._apply_rate(conn, emit, t)
                if max_by is not None and t >= max_by:
                    raise RawtuiError(f"timed out: --max-time {opts.max_time:g} s reached with {out.size:,} bytes "
                                      f"of {url.text} received", EXIT_TCP)
                if connect_by is not None:
                    if request_sent:
                        connect_by = None
                    elif t >= connect_by:
                        what = (conn.family.no_answer if host.arp.mac is None else
                                "no answer to the SYN" if tcp.state is State.SYN_SENT else "TLS handshake unfinished")
                        raise TcpError(f"connection timed out: no connection to {endpoint_text(url.host, url.port)} within "
                                       f"{opts.connect_timeout:g} s ({what}; --connect-timeout)")
                # the application side: TCP bytes <-> (TLS) <-> HTTP
                if not conn.started and tcp.state is State.ESTABLISHED:
                    conn.started = True
                    wire = chan.start()
                    if wire:
                        send(wire, t)
                if conn.started and chan.ready and not request_sent:
                    if chan.tls and not reused:
                        flush()  # the stack's earlier events first: the stream stays in time order
                        self._on_tls(chan, emit, t)
                    send(chan.outgoing(http.request()), t)
                    request_sent = True
                if pacer.stall_begins(t, out.size):
                    emit(Info(t, f"not reading for {pacer.stall_for:g} s: the receive buffer fills "
                              "and the advertised window falls to zero"))
                    emit(ReadStall(t, out.size, pacer.stall_for))
                allowed = pacer.allowance(t)  # --limit-rate, --stall: what the reader takes now
                if conn.started and closing_since is None and allowed != 0:
                    data = host.read(allowed)
                    if allowed is not None and data:
                        pacer.took(sum(map(len, data)))
                    if len(data) > 1:
                        data = coalesce(data)  # a pass through TLS/HTTP/output per 256 KB, not per segment
                    for piece in data:
                        if records_in is not None:
                            for kind, length in records_in.feed(piece):
                                emit(TlsRecord(t, "in", kind, length))
                        plain = chan.incoming(piece)
                        wire = chan.take_wire()
                        if wire:
                            send(wire, t)
                        if not plain:
                            continue
                        had_response = http.response is not None
                        chunks = http.receive(plain)
                        if not had_response and http.response is not None:
                            flush()  # the stack's earlier events first: the stream stays in time order
                            self._on_response(http, out, emit, t)
                            redirect = http.redirect_location
                        if redirect is None:
                            for c in chunks:
                                self._body(out, c)
                    if not request_sent and chan.ready:
                        continue  # the TLS handshake just finished: send the request first
                    if not data and tcp.peer_eof and not http.complete:
                        if stale():
                            raise _Stale()
                        if not chan.ready:
                            raise TlsError("the server closed the connection during the TLS handshake")
                        had_response = http.response is not None
                        tail = chan.eof()
                        chunks = (http.receive(tail) if tail else []) + http.receive_eof()  # BodyCut: transient
                        if not had_response and http.response is not None:
                            flush()  # the stack's earlier events first: the stream stays in time order
                            self._on_response(http, out, emit, t)
                            redirect = http.redirect_location
                        if redirect is None:
                            for c in chunks:
                                self._body(out, c)
                        if not http.complete:
                            raise BodyCut("the server closed the connection before the response was complete")
                    if http.complete:
                        if redirect is None:
                            self._completed_at = now()
                        if http.reusable and conn.usable:
                            flush()
                            break  # the connection stays open for the next request (keep-alive)
                        if redirect is not None:
                            self._drop(emit, counters, graceful=False)
                            break
                        host.close(t)
                        closing_since = t
                        flush()
                    if t - last_progress >= PROGRESS_EVERY and redirect is None:
                        dt = t - progress_t
                        measured = self._progress_bytes(out)
                        if dt >= 0.25:
                            speed = (measured - progress_bytes) / dt
                            progress_bytes, progress_t = measured, t
                        emit(self._progress(t, out, http, speed))
                        last_progress = t
                if closing_since is not None:
                    # linger briefly for the FIN exchange, never for long
                    if tcp.state in OVER or t - closing_since > LINGER:
                        break
                elif stale():
                    raise _Stale()
                elif tcp.error is not None:
                    raise tcp.error
                elif tcp.state is State.CLOSED and request_sent:
                    raise TcpError("the connection closed before the response was complete")
                # wait for frames or the next timer
                deadline = host.next_deadline
                timeout = 0.1 if deadline is None else min(0.1, max(0.0, deadline - t))
                wait = pacer.wait(t) if tcp.rcv_buffered else None
                if wait is not None:
                    timeout = min(timeout, wait)  # the reader's next turn (--limit-rate, --stall)
                for by in (max_by, connect_by):
                    if by is not None:
                        timeout = min(timeout, max(0.0, by - t))
                if t - last_rx > opts.idle_timeout and host.arp.done:
                    what = "no answer from" if not request_sent else "nothing received from"
                    raise TcpError(f"timed out: {what} {endpoint_text(url.host, url.port)} for {opts.idle_timeout:g} s")
                flush()  # what the application side just queued (the request, ACKs) leaves now
                if self._pump(conn, timeout, emit):
                    last_rx = now()
        finally:
            if self._conn is conn:
                self._flush(conn, emit)
                self._count(conn, counters)

        if redirect is None:
            emit(self._progress(now(), out, http, speed))
        return redirect

    def _channel(self, url: Url) -> PlainChannel | TlsChannel:
        if url.scheme != "https":
            return PlainChannel()
        from rawtui.http.tls import TlsChannel, make_context  # ssl: for https only

        if self._tls_ctx is None:
            o = self.options
            self._tls_ctx = make_context(o.cacert, o.insecure, o.keylog)
        return TlsChannel(self._tls_ctx, url.host)

    def _on_tls(self, chan: PlainChannel | TlsChannel, emit: Emit, t: float) -> None:
        summary = getattr(chan, "summary", None)
        if summary is None:
            return
        emit(TlsInfo(t, summary.version, summary.cipher, summary.alpn, summary.subject, summary.issuer,
                     summary.not_after, summary.verified, summary.handshake_ms))
        if not summary.verified:
            emit(Info(t, "--insecure: the server's certificate was NOT verified", "warning"))

    def _on_response(self, http: HttpExchange, out: OutputFile, emit: Emit, t: float) -> None:
        """(``t``: this turn of the loop's time, so the event stream stays in time order.)"""
        assert http.response is not None
        status = http.response.status_code
        reason = http.response.reason.decode("latin-1", "replace")
        emit(HttpResponse(t, status, reason, http.content_length, http.headers))
        if self.options.request.head:  # -I: the response head is the output, as curl -I prints it
            _print_head(http)
        if status >= 400 and not (status == 416 and http.range_from > 0):
            transient = status in RETRY_STATUSES
            raise HttpError(f"HTTP {status} {reason} for {http.url.text}", transient=transient,
                            retry_after=http.retry_after if transient else None)
        if self.options.request.head or status in REDIRECT_STATUSES:
            return
        self._begin_body(http, out, emit, t)

    # -- the body: resume, decoding, size -------------------------------------------------------------

    def _plan_resume(self, out: OutputFile, emit: Emit) -> None:
        """FILE.part found at the start: continue it (``-C -``: Range from its end) or remove it (said)."""
        if out.to_stdout:
            return
        name = out.path
        t = self.now()
        if not self.options.continue_at:
            if out.found:
                emit(Info(t, f"removed {out.tmp_path} ({out.found:,} bytes), left by an interrupted download; "
                          "-C - would have continued it", "warning"))
            out.begin_body(Action.RESTART)
            return
        if not out.found:
            emit(Info(t, f"-C -: no partial download {name}.part: downloading {name} from the start"))
            out.begin_body(Action.RESTART)
            return
        validator, why_not = resume_plan(out.found_meta, out.found, self._url_text, name)
        if validator is None:
            emit(Info(t, why_not or f"cannot continue {name}.part: downloading again from zero", "warning"))
            out.begin_body(Action.RESTART)
            return
        self.range_from, self.if_range = out.found, validator
        emit(Info(t, f"-C -: {name}.part holds {out.found:,} bytes: asking for the rest (Range: "
                  f"bytes={out.found}-, If-Range: {validator})"))

    def _begin_body(self, http: HttpExchange, out: OutputFile, emit: Emit, t: float) -> None:
        """The final response's head: append to the part file, restart it, or take it as complete; and
        whether the body is decoded on the way (``--compressed``)."""
        assert http.response is not None
        status = http.response.status_code
        d = decide(status, http.range_from, content_range=http.header("content-range"),
                   content_length=http.content_length, etag=http.header("etag"),
                   last_modified=http.header("last-modified"), meta=out.meta, name=out.path)
        if d.note is not None:
            emit(Info(t, d.note, "warning" if d.action is Action.RESTART else "info"))
        if d.action is not Action.APPEND:
            self.range_from, self.if_range = 0, None
        codings = content_codings(http.header("content-encoding"))
        self._decoder = None
        if codings and self.options.request.compressed:
            if len(codings) == 1 and codings[0] in DECODABLE:
                self._decoder = BodyDecoder(codings[0])
            else:
                emit(Info(t, f"the body is encoded as {', '.join(codings)}, which rawtui cannot decode: it is "
                          "saved as it came", "warning"))
        out.resumable = not codings  # a Range is of the encoded bytes: a decoded file cannot be continued
        meta = PartMeta(self._url_text, http.header("etag"), http.header("last-modified"), d.total)
        self._validator = meta.validator
        out.begin_body(d.action, meta)
        self._skip_body = d.action is Action.COMPLETE
        self._expected_size = d.total if self._decoder is None and not codings else None
        self._progress_total = d.total if self._decoder is None else http.content_length

    def _body(self, out: OutputFile, chunk: bytes) -> None:
        if self._skip_body:
            return
        if self._decoder is not None:
            chunk = self._decoder.feed(chunk)
        out.write(chunk)

    def _progress_bytes(self, out: OutputFile) -> int:
        """The bytes counted against the progress total: of the file, or of the wire when decoding."""
        return self._decoder.wire_bytes if self._decoder is not None else out.size

    def _progress(self, t: float, out: OutputFile, http: HttpExchange, speed: float) -> Progress:
        total = self._progress_total if http.response is not None else None
        if self._decoder is not None:
            return Progress(t, self._decoder.wire_bytes, total, speed, file_bytes=out.size)
        return Progress(t, out.size, total, speed)


def _kept(out: OutputFile | None) -> str:
    """An unfinished download's end: keep FILE.part for -C - (the error says so) or remove it."""
    kept = out.keep() if out is not None else 0
    if out is None or not kept:
        return ""
    return f"; {kept:,} bytes kept in {out.path}.part (-C - continues it)"


def _print_head(http: HttpExchange) -> None:
    """The status line and headers, as they came (curl -I)."""
    import sys

    r = http.response
    assert r is not None
    lines = [f"HTTP/{r.http_version.decode()} {r.status_code} {r.reason.decode('latin-1')}".rstrip()]
    lines += [f"{k.decode('latin-1')}: {v.decode('latin-1')}" for k, v in r.headers.raw_items()]
    try:
        sys.stdout.write("\r\n".join(lines) + "\r\n\r\n")
        sys.stdout.flush()
    except OSError:
        pass
