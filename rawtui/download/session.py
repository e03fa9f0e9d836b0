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
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rawtui.download.output import OutputFile
from rawtui.errors import EXIT_INTERRUPTED, HttpError, RawtuiError, TcpError, TlsError, UsageError
from rawtui.http.channel import PlainChannel, RecordTracker
from rawtui.http.client import HttpExchange, Url, parse_url
from rawtui.link.afpacket import PacketSocket
from rawtui.link.firewall import FirewallGuard, cleanup_stale
from rawtui.link.pcap import PcapWriter
from rawtui.link.route import RouteInfo, resolve_host, resolve_route

if TYPE_CHECKING:
    import ssl

    from rawtui.http.tls import TlsChannel
    from rawtui.lab.control import LabChannel
from rawtui.events import Done, Emit, Error, HttpResponse, Info, Progress, Redirect, Route, TlsInfo, TlsRecord
from rawtui.stack.host import Host
from rawtui.stack.tcp_states import OVER, State
from rawtui.wire.ethernet import mac_bytes
from rawtui.wire.ipv4 import ip_bytes

RING_SNAPLEN = 128  # bytes of each frame kept for the live view's "save pcap" (headers, like tcpdump -s)
RECV_BATCH = 256  # frames handled before the application side gets a turn
PROGRESS_EVERY = 0.1  # seconds between progress events


COALESCE = 256 << 10


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


class _Stopped(Exception):
    pass


class Session:
    """Download ``options.url`` with rawtui's own stack. Implements EventSource."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.route: RouteInfo | None = None
        self.result_path: str | None = None
        self._t0 = time.monotonic()
        self._pcap: PcapWriter | None = None
        self._completed_at: float | None = None  # when the last body byte arrived
        self._side: LabChannel | None = None
        self._tls_ctx: ssl.SSLContext | None = None
        self._ring: deque[tuple[float, bytes, int]] | None = None  # recent frames, headers only
        self._ring_snaplen = RING_SNAPLEN

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
            for ts, head, size in ring:
                w.write(head, ts, size)
        return os.path.abspath(path)

    def now(self) -> float:
        return time.monotonic() - self._t0

    # -- EventSource --------------------------------------------------------------------------

    def run(self, emit: Emit, stop: threading.Event) -> int:
        self._t0 = time.monotonic()
        out: OutputFile | None = None
        try:
            url = parse_url(self.options.url)
            out = OutputFile(self.options.output or url.filename)
            if self.options.pcap:
                try:
                    self._pcap = PcapWriter(self.options.pcap)
                except OSError as e:
                    raise RawtuiError(f"cannot write the capture {self.options.pcap}: {e.strerror}", 7) from None
            if self.options.lab_control:
                from rawtui.lab.control import LabChannel

                self._side = LabChannel(self.options.lab_control)
            counters: dict[str, int] = {}
            for hop in range(self.options.max_redirects + 1):
                location = self._fetch(url, out, emit, stop, counters)
                if location is None:
                    break
                if hop == self.options.max_redirects:
                    raise HttpError(f"too many redirects (more than {self.options.max_redirects})")
                try:
                    nxt = parse_url(location)
                except UsageError as e:  # the server's doing, not the user's: an HTTP error, exit 6
                    raise HttpError(f"cannot follow the redirect to {location!r}: {e.message}") from None
                emit(Redirect(self.now(), 0, location, hop + 1))
                url = nxt
            path = out.commit()
            self.result_path = path
            elapsed = self._completed_at if self._completed_at is not None else self.now()
            emit(Done(self.now(), out.size, out.sha256.hexdigest(), round(elapsed, 6), path, counters))
            return 0
        except RawtuiError as e:
            if out is not None:
                out.discard()
            emit(Error(self.now(), e.message, e.exit_code))
            return e.exit_code
        except _Stopped:
            if out is not None:
                out.discard()
            emit(Error(self.now(), "interrupted: the download was stopped before it finished", EXIT_INTERRUPTED))
            return EXIT_INTERRUPTED
        except Exception as e:  # noqa: BLE001 - a bug: still clean up and say it in one line
            if out is not None:
                out.discard()
            emit(Error(self.now(), f"internal error: {type(e).__name__}: {e}", 1))
            return 1
        finally:
            if self._pcap is not None:
                self._pcap.close()
            if self._side is not None:
                self._side.close()

    # -- one connection -------------------------------------------------------------------------

    def _fetch(
        self, url: Url, out: OutputFile, emit: Emit, stop: threading.Event, counters: dict[str, int]
    ) -> str | None:
        """Fetch one URL; return a redirect location or None when the body is in ``out``."""
        opts = self.options
        dst_ip = resolve_host(url.host)
        sock = PacketSocket(opts.iface) if opts.iface else None  # fail early on privilege / bad name
        try:
            route = resolve_route(dst_ip, opts.iface)
            self.route = route
            if sock is None:
                sock = PacketSocket(route.iface)
            emit(Route(self.now(), route.iface, route.ifindex, route.src_ip, route.src_mac, route.dst_ip,
                       route.gateway, route.next_hop, route.mtu, route.reason, route.warning))
            if route.warning:
                emit(Info(self.now(), route.warning, "warning"))
            if not out.opened:
                out.open()  # after the privilege check, before any packet: an unwritable path fails early
            for stale in cleanup_stale():
                emit(Info(self.now(), f"removed a stale firewall rule: {stale}"))
            local_port = random.randint(32768, 60999)
            sock.set_filter(dst_ip, url.port, local_port)
            host = Host(
                local_mac=mac_bytes(route.src_mac), local_ip=ip_bytes(route.src_ip),
                next_hop_ip=ip_bytes(route.next_hop), remote_ip=ip_bytes(dst_ip), remote_port=url.port,
                local_port=local_port, isn=random.getrandbits(32), mss=max(536, route.mtu - 40),
                rcv_buf=opts.rcv_buf, ts_offset=random.getrandbits(32), iface=route.iface,
                next_hop_role="gateway" if route.gateway else "host", segment_events=opts.segment_events,
            )
            guard = FirewallGuard(dst_ip, url.port, local_port)
            guard.install()
            try:
                emit(Info(self.now(), f"firewall: {guard.description}"))
                return self._transfer(sock, host, url, out, emit, stop, counters)
            finally:
                guard.remove()
        finally:
            if sock is not None:
                sock.close()

    def _transfer(
        self, sock: PacketSocket, host: Host, url: Url, out: OutputFile, emit: Emit, stop: threading.Event,
        counters: dict[str, int],
    ) -> str | None:
        http = HttpExchange(url, self.options.user_agent or HttpExchange(url).user_agent)
        tcp = host.tcp
        pcap = self._pcap
        now = self.now
        request_sent = False
        started = False
        chan = self._channel(url)
        redirect: str | None = None
        last_rx = now()
        last_progress = 0.0
        progress_bytes = 0
        progress_t = now()
        speed = 0.0
        closing_since: float | None = None
        stall_until: float | None = None
        fd = sock.fileno()
        watch = [fd]
        side = self._side
        side_fd = -1
        if side is not None:
            side_fd = side.fileno()
            watch.append(side_fd)
        host.start(now())

        ring = self._ring
        snap = self._ring_snaplen
        records_in = RecordTracker() if chan.tls else None
        records_out = RecordTracker() if chan.tls else None

        def send(data: bytes, t: float) -> None:
            """Application bytes (TLS records, or the plain request) into the connection."""
            if records_out is not None:
                for kind, length in records_out.feed(data):
                    emit(TlsRecord(t, "out", kind, length))
            host.send(data, t)

        def send_frames() -> None:
            frames = host.take_frames()
            if frames:
                wall = time.time()
                for f in frames:
                    sock.send(f)
                    if pcap is not None:
                        pcap.write(f, wall)
                    if ring is not None:
                        ring.append((wall, f[:snap], len(f)))

        def flush() -> None:
            send_frames()
            evs = host.take_events()
            for ev in evs:
                emit(ev)

        try:
            while True:
                flush()
                if host.error is not None:
                    raise host.error
                if stop.is_set():
                    raise _Stopped()
                t = now()
                # the application side: TCP bytes <-> (TLS) <-> HTTP
                if not started and tcp.state is State.ESTABLISHED:
                    started = True
                    wire = chan.start()
                    if wire:
                        send(wire, t)
                if started and chan.ready and not request_sent:
                    if chan.tls:
                        flush()  # the stack's earlier events first: the stream stays in time order
                        self._on_tls(chan, emit, t)
                    send(chan.outgoing(http.request()), t)
                    request_sent = True
                reading = True
                if self.options.stall_at is not None and out.size >= self.options.stall_at:
                    if stall_until is None:
                        stall_until = t + self.options.stall_for
                        emit(Info(t, f"not reading for {self.options.stall_for:g} s: the receive buffer fills "
                                  "and the advertised window falls to zero"))
                    reading = t >= stall_until
                if started and closing_since is None and reading:
                    data = host.read()
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
                            self._on_response(http, emit, t)
                            redirect = http.redirect_location
                            if redirect is not None:
                                break
                        for c in chunks:
                            out.write(c)
                    if redirect is not None:
                        closing_since = t
                        host.abort(t)
                        continue
                    if not request_sent and chan.ready:
                        continue  # the TLS handshake just finished: send the request first
                    if not data and tcp.peer_eof and not http.complete:
                        if not chan.ready:
                            raise TlsError("the server closed the connection during the TLS handshake")
                        had_response = http.response is not None
                        tail = chan.eof()
                        chunks = (http.receive(tail) if tail else []) + http.receive_eof()
                        if not had_response and http.response is not None:
                            flush()  # the stack's earlier events first: the stream stays in time order
                            self._on_response(http, emit, t)
                        for c in chunks:
                            out.write(c)
                        if not http.complete:
                            raise HttpError("the server closed the connection before the response was complete")
                    if http.complete:
                        self._completed_at = now()
                        host.close(t)
                        closing_since = t
                        flush()
                    if t - last_progress >= PROGRESS_EVERY:
                        dt = t - progress_t
                        if dt >= 0.25:
                            speed = (out.size - progress_bytes) / dt
                            progress_bytes, progress_t = out.size, t
                        emit(Progress(t, out.size, http.content_length, speed))
                        last_progress = t
                if closing_since is not None:
                    # linger briefly for the FIN exchange, never for long
                    if tcp.state in OVER or t - closing_since > 1.0 or redirect is not None:
                        break
                elif tcp.error is not None:
                    raise tcp.error
                elif tcp.state is State.CLOSED and request_sent:
                    raise TcpError("the connection closed before the response was complete")
                # wait for frames or the next timer
                deadline = host.next_deadline
                timeout = 0.1 if deadline is None else min(0.1, max(0.0, deadline - t))
                if t - last_rx > self.options.idle_timeout and host.arp.done:
                    what = "no answer from" if not request_sent else "nothing received from"
                    raise TcpError(f"timed out: {what} {url.host}:{url.port} for "
                                   f"{self.options.idle_timeout:g} s")
                flush()  # what the application side just queued (the request, ACKs) leaves now
                r, _, _ = select.select(watch, [], [], timeout)
                if side is not None and side_fd in r:
                    for ev in side.poll(now()):
                        emit(ev)
                if fd in r:
                    n = 0
                    while n < RECV_BATCH:
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
                            send_frames()  # an ACK leaves now, not after the batch: the sender's clock
                        n += 1
                    if n:
                        last_rx = now()
                t = now()
                deadline = host.next_deadline
                if deadline is not None and t >= deadline:
                    host.on_timer(t)
        finally:
            # leave the server no half-open connection behind us
            if tcp.state not in OVER and tcp.state is not State.SYN_SENT and redirect is None and not http.complete:
                host.abort(now())
            frames = host.take_frames()
            for f in frames:
                sock.send(f)
                if pcap is not None:
                    pcap.write(f, time.time())
            for ev in host.take_events():
                emit(ev)
            _, kernel_drops = sock.kernel_stats()  # frames lost because rawtui fell behind (full ring/buffer)
            counters["kernel_drops"] = counters.get("kernel_drops", 0) + kernel_drops
            for k, v in host.counters.items():
                counters[k] = counters.get(k, 0) + v
            for k, v in tcp.counters.items():
                counters[k] = counters.get(k, 0) + v

        if redirect is None:
            emit(Progress(now(), out.size, http.content_length, speed))
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

    def _on_response(self, http: HttpExchange, emit: Emit, t: float) -> None:
        """(``t``: this turn of the loop's time, so the event stream stays in time order.)"""
        assert http.response is not None
        status = http.response.status_code
        reason = http.response.reason.decode("latin-1", "replace")
        emit(HttpResponse(t, status, reason, http.content_length, http.headers))
        if status >= 400:
            raise HttpError(f"HTTP {status} {reason} for {http.url.text}")
