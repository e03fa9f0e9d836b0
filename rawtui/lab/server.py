"""The lab's built-in HTTP/1.1 server: static files plus endpoints that exercise a client's edge cases.

Run it as ``python -m rawtui.lab.server --root DIR --port 8080 [--bind ::]``; it prints one line
starting with ``ready`` once it is listening, and nothing else unless ``--verbose``. The default ``::``
listens on IPv6 and IPv4 at once (a dual-stack socket: IPV6_V6ONLY off; an IPv4 client shows as
``::ffff:a.b.c.d``); ``--bind 0.0.0.0`` is IPv4 only.

Ground truth for the teaching lab: with ``--report PATH`` it samples TCP_INFO (getsockopt) of every
connection it is serving every ``--report-every`` seconds (default 0.01) and publishes the samples as
``{"type": "tcp_info", ...}`` JSON lines on the lab's control socket (see :mod:`rawtui.lab.control`).
For another server in the same namespace (nginx), ``python -m rawtui.lab.server --sample-port 80
--report PATH`` does the same from outside, through the kernel's sock_diag netlink interface.
Each sample names the connection's congestion control as the kernel reports it (``cc``: getsockopt
TCP_CONGESTION, or sock_diag's INET_DIAG_CONG); ``--cc reno|cubic|bbr`` makes the server use that one
(setsockopt TCP_CONGESTION on the listening socket and on every connection it accepts).

Endpoints (``<name>`` is a file under the root):

- ``/<name>``                 the file, with Content-Length, sent with sendfile(2); keep-alive
- ``/chunked/<name>``         the file, ``Transfer-Encoding: chunked``, chunk sizes varying in 1..65536
- ``/close/<name>``           the file with no Content-Length and ``Connection: close`` (close-delimited)
- ``/redirect/<n>/<path>``    302 to ``/redirect/<n-1>/<path>``; ``/redirect/0/<path>`` 302s to ``/<path>``
- ``/redirect-loop``          302 to itself
- ``/status/<code>``          that status (200..599) with a small text body
- ``/truncated/<name>``       the file's full Content-Length, half of the body, then the connection closes
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import faulthandler
import hashlib
import json
import os
import random
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from functools import partial
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import unquote, urlsplit

__all__ = [
    "CHUNK_SIZE_RANGE", "LabHTTPServer", "LabRequestHandler", "TcpInfoReporter", "diag_tcp_infos", "main",
    "make_file", "parse_tcp_info", "sha256_file", "socket_cc", "tcp_info_message",
]

CHUNK_SIZE_RANGE = (1, 65536)
_MIB = 1 << 20


def make_file(path: str | os.PathLike[str], size: int, seed: int = 0) -> Path:
    """Write ``size`` deterministic pseudo-random bytes (a function of ``seed`` and ``size``) to ``path``."""
    path = Path(path)
    rng = random.Random(seed)
    with path.open("wb") as f:
        left = size
        while left > 0:
            n = min(left, _MIB)
            f.write(rng.randbytes(n))
            left -= n
    return path


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's contents."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


class LabRequestHandler(SimpleHTTPRequestHandler):
    """SimpleHTTPRequestHandler speaking HTTP/1.1, with sendfile for bodies and the test endpoints."""

    protocol_version = "HTTP/1.1"
    server_version = "rawtui-lab/1"
    timeout = 300  # idle keep-alive connections (and stalled sends) give up after this many seconds
    verbose = False

    def version_string(self) -> str:
        return self.server_version

    # -- dispatch ---------------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._dispatch(head=False)

    def do_HEAD(self) -> None:
        self._dispatch(head=True)

    def _dispatch(self, head: bool) -> None:
        path = unquote(urlsplit(self.path).path)
        routes: list[tuple[str, Callable[[str, bool], None]]] = [
            ("/chunked/", self._chunked),
            ("/close/", self._close_delimited),
            ("/truncated/", self._truncated),
            ("/redirect/", self._redirect),
            ("/status/", self._status),
        ]
        if path == "/redirect-loop":
            self._send_small(302, "redirect loop\n", head, [("Location", "/redirect-loop")])
            return
        for prefix, handler in routes:
            if path.startswith(prefix):
                handler(path[len(prefix) :], head)
                return
        if head:
            super().do_HEAD()
        else:
            super().do_GET()

    # -- static files -----------------------------------------------------------------------------

    def copyfile(self, source: Any, outputfile: Any) -> None:
        """Send a file body with sendfile(2) when it is a real file going to our socket."""
        if outputfile is self.wfile and hasattr(source, "fileno"):
            self.connection.sendfile(source)
        else:
            super().copyfile(source, outputfile)

    # -- endpoints --------------------------------------------------------------------------------

    def _open(self, name: str) -> tuple[BinaryIO, int] | None:
        """Open a file below the root, or send 404 and return None."""
        fs_path = self.translate_path("/" + name)
        try:
            f = open(fs_path, "rb")  # noqa: SIM115 - the caller closes it
        except OSError:
            self.send_error(HTTPStatus.NOT_FOUND, "File not found")
            return None
        return f, os.fstat(f.fileno()).st_size

    def _chunked(self, name: str, head: bool) -> None:
        opened = self._open(name)
        if opened is None:
            return
        f, size = opened
        with f:
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            if head:
                return
            rng = random.Random(size)
            lo, hi = CHUNK_SIZE_RANGE
            while True:
                # mostly large chunks, with some tiny ones so chunk headers straddle segments
                n = rng.randint(lo, 64) if rng.random() < 0.25 else rng.randint(lo, hi)
                data = f.read(n)
                if not data:
                    break
                self.wfile.write(b"%x\r\n%b\r\n" % (len(data), data))
            self.wfile.write(b"0\r\n\r\n")

    def _close_delimited(self, name: str, head: bool) -> None:
        opened = self._open(name)
        if opened is None:
            return
        f, _size = opened
        with f:
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            if not head:
                self.connection.sendfile(f)

    def _truncated(self, name: str, head: bool) -> None:
        opened = self._open(name)
        if opened is None:
            return
        f, size = opened
        with f:
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(size))
            self.end_headers()
            self.close_connection = True
            if not head and size // 2:
                self.connection.sendfile(f, 0, size // 2)

    def _redirect(self, rest: str, head: bool) -> None:
        count, sep, target = rest.partition("/")
        if not sep or not count.isdigit():
            self._send_small(400, "use /redirect/<n>/<path>\n", head)
            return
        n = int(count)
        location = f"/redirect/{n - 1}/{target}" if n > 0 else f"/{target}"
        self._send_small(302, f"redirect to {location}\n", head, [("Location", location)])

    def _status(self, rest: str, head: bool) -> None:
        if not rest.isdigit() or not 200 <= int(rest) <= 599:
            self._send_small(400, "use /status/<code> with 200 <= code <= 599\n", head)
            return
        code = int(rest)
        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = "Status"
        if code in (204, 304):  # no body, no Content-Length
            self.send_response(code, phrase)
            self.end_headers()
            return
        self._send_small(code, f"{code} {phrase}\n", head, reason=phrase)

    def _send_small(
        self,
        code: int,
        text: str,
        head: bool,
        headers: list[tuple[str, str]] | None = None,
        reason: str | None = None,
    ) -> None:
        body = text.encode()
        self.send_response(code, reason)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for key, value in headers or []:
            self.send_header(key, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    # -- connection tracking (for the TCP_INFO reporter) ---------------------------------------------

    def setup(self) -> None:
        super().setup()
        cc = getattr(self.server, "cc", None)
        if cc:  # accepted sockets inherit the listener's; said again, so no route or default can differ
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, cc.encode())
        track = getattr(self.server, "track", None)
        if track is not None:
            track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
            # With a reporter, keep the socket open until everything sent is acknowledged: the kernel
            # would deliver it after close() anyway, but TCP_INFO can only be read through an open socket.
            linger = getattr(self.server, "linger", None)
            if linger is not None:
                linger(self.connection)
        finally:
            untrack = getattr(self.server, "untrack", None)
            if untrack is not None:
                untrack(self.connection)

    # -- quiet ------------------------------------------------------------------------------------

    def handle(self) -> None:
        try:
            super().handle()
        except (ConnectionError, TimeoutError):
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        if self.verbose:
            super().log_message(format, *args)


class LabHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer with a longer listen backlog that does not print client disconnects; an IPv6
    address (``::``) makes it a dual-stack server."""

    request_queue_size = 128
    daemon_threads = True
    reporter: TcpInfoReporter | None = None
    cc: str | None = None  # the congestion control of every connection (None: the namespace's default)

    def server_bind(self) -> None:
        if self.address_family == socket.AF_INET6:  # "::" takes IPv4 clients too
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        if self.cc:
            self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, self.cc.encode())
        super().server_bind()

    def track(self, conn: socket.socket) -> None:
        if self.reporter is not None:
            self.reporter.track(conn)

    def untrack(self, conn: socket.socket) -> None:
        if self.reporter is not None:
            self.reporter.untrack(conn)

    def linger(self, conn: socket.socket) -> None:
        if self.reporter is not None:
            self.reporter.wait_drained(conn)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


# ---------------------------------------------------------------------------------------------------
# ground truth: TCP_INFO samples for the lab's control socket

TCP_INFO_SIZE = 256  # as much of struct tcp_info as we read (the kernel copies min(its size, ours))
CA_STATES = ("open", "disorder", "cwr", "recovery", "loss")
TCP_STATES = {
    1: "ESTABLISHED", 2: "SYN-SENT", 3: "SYN-RECEIVED", 4: "FIN-WAIT-1", 5: "FIN-WAIT-2", 6: "TIME-WAIT",
    7: "CLOSED", 8: "CLOSE-WAIT", 9: "LAST-ACK", 10: "LISTEN", 11: "CLOSING",
}
_TI_HEAD = struct.Struct("=8B24I")  # state .. total_retrans (104 bytes)
_INFINITE_SSTHRESH = 0x7FFFFFFF


def parse_tcp_info(raw: bytes) -> dict[str, int]:
    """The fields of a Linux ``struct tcp_info`` we use, by name (missing tail fields read as 0)."""
    raw = raw.ljust(TCP_INFO_SIZE, b"\0")
    h = _TI_HEAD.unpack_from(raw)
    d = dict(zip(
        ("state", "ca_state", "retransmits", "probes", "backoff", "options", "wscale", "flags",
         "rto", "ato", "snd_mss", "rcv_mss", "unacked", "sacked", "lost", "retrans", "fackets",
         "last_data_sent", "last_ack_sent", "last_data_recv", "last_ack_recv", "pmtu", "rcv_ssthresh",
         "rtt", "rttvar", "snd_ssthresh", "snd_cwnd", "advmss", "reordering", "rcv_rtt", "rcv_space",
         "total_retrans"),
        h, strict=True,
    ))
    (d["pacing_rate"], d["max_pacing_rate"], d["bytes_acked"], d["bytes_received"]) = struct.unpack_from(
        "=4Q", raw, 104)
    d["notsent_bytes"], d["min_rtt"] = struct.unpack_from("=2I", raw, 144)
    d["delivery_rate"] = struct.unpack_from("=Q", raw, 160)[0]
    d["bytes_sent"], d["bytes_retrans"] = struct.unpack_from("=2Q", raw, 200)
    d["dsack_dups"], d["reord_seen"], d["rcv_ooopack"], d["snd_wnd"] = struct.unpack_from("=4I", raw, 216)
    d["total_rto"] = struct.unpack_from("=H", raw, 240)[0]
    return d


def socket_cc(sock: socket.socket) -> str:
    """The congestion control a TCP socket uses, as the kernel says (getsockopt TCP_CONGESTION)."""
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, _CC_NAME_MAX).split(b"\0", 1)[0].decode()


_CC_NAME_MAX = 16  # TCP_CA_NAME_MAX


def tcp_info_message(info: dict[str, int], peer_port: int, sample_t: float, cc: str = "") -> dict[str, object]:
    """The control-socket message (fields of :class:`rawtui.events.ServerTcpInfo`) for one sample; ``cc``
    is the connection's congestion control."""
    mss = info["snd_mss"]
    ssthresh = info["snd_ssthresh"]
    ca = info["ca_state"]
    return {
        "type": "tcp_info",
        "cwnd_bytes": info["snd_cwnd"] * mss,
        "ssthresh_bytes": None if ssthresh >= _INFINITE_SSTHRESH else ssthresh * mss,
        "rtt_ms": info["rtt"] / 1000.0,
        "rttvar_ms": info["rttvar"] / 1000.0,
        "min_rtt_ms": info["min_rtt"] / 1000.0 if info["min_rtt"] != 0xFFFFFFFF else 0.0,
        "retrans_total": info["total_retrans"],
        "pacing_bps": info["pacing_rate"] if info["pacing_rate"] < (1 << 63) else 0,
        "delivery_bps": info["delivery_rate"],
        "mss": mss,
        "ca_state": CA_STATES[ca] if ca < len(CA_STATES) else str(ca),
        "state": TCP_STATES.get(info["state"], str(info["state"])),
        "rto_ms": info["rto"] / 1000.0,
        "backoff": info["backoff"],
        "unacked": info["unacked"],
        "lost": info["lost"],
        "retrans_out": info["retrans"],
        "bytes_acked": info["bytes_acked"],
        "bytes_retrans": info["bytes_retrans"],
        "snd_wnd": info["snd_wnd"],
        "probes": info["probes"],
        "total_rto": info["total_rto"],
        "reord_seen": info["reord_seen"],
        "peer_port": peer_port,
        "sample_t": round(sample_t, 6),
        "cc": cc,
    }


_CHANGE_KEYS = ("bytes_acked", "snd_cwnd", "snd_ssthresh", "ca_state", "state", "total_retrans", "snd_wnd",
                "probes", "backoff", "unacked", "retrans", "lost")


class TcpInfoReporter(threading.Thread):
    """Every ``every`` seconds, sample TCP_INFO of the tracked connections (or, with ``sample_port``, of
    every connection from that local port found through sock_diag) and publish the samples that changed
    (at least every 0.25 s while a connection lives) on the control socket at ``path``."""

    def __init__(self, path: str, every: float = 0.01, sample_port: int | None = None) -> None:
        super().__init__(name="tcp-info-reporter", daemon=True)
        self.path = path
        self.every = every
        self.sample_port = sample_port
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._next_connect = 0.0
        self._last: dict[int, tuple[tuple[int, ...], float]] = {}
        self._halt = threading.Event()

    def track(self, conn: socket.socket) -> None:
        with self._lock:
            self._conns.add(conn)

    def untrack(self, conn: socket.socket) -> None:
        self._sample_socket(conn, force=True)  # the last word on this connection
        with self._lock:
            self._conns.discard(conn)

    def stop(self) -> None:
        self._halt.set()

    def wait_drained(self, conn: socket.socket, limit: float = 60.0) -> None:
        """Wait (up to ``limit`` s) until the connection has nothing unsent or unacknowledged, or is no
        longer established; meanwhile the sampling thread keeps reporting it."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            try:
                info = parse_tcp_info(conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, TCP_INFO_SIZE))
            except OSError:
                return
            if info["state"] not in (1, 8) or (info["unacked"] == 0 and info["notsent_bytes"] == 0):
                return
            time.sleep(self.every)

    def run(self) -> None:
        while not self._halt.wait(self.every):
            try:
                if self.sample_port is not None:
                    for peer_port, raw, cc in diag_tcp_infos(self.sample_port):
                        self._publish_if_changed(peer_port, parse_tcp_info(raw), False, cc)
                else:
                    with self._lock:
                        conns = list(self._conns)
                    for conn in conns:
                        self._sample_socket(conn)
            except OSError:
                continue

    def _sample_socket(self, conn: socket.socket, force: bool = False) -> None:
        try:
            raw = conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, TCP_INFO_SIZE)
            peer_port = conn.getpeername()[1]
            cc = socket_cc(conn)
        except OSError:
            return
        self._publish_if_changed(peer_port, parse_tcp_info(raw), force, cc)

    def _publish_if_changed(self, peer_port: int, info: dict[str, int], force: bool, cc: str = "") -> None:
        now = time.monotonic()
        key = tuple(info[k] for k in _CHANGE_KEYS)
        last = self._last.get(peer_port)
        if not force and last is not None and last[0] == key and now - last[1] < 0.25:
            return
        if info["state"] == 10:  # LISTEN
            return
        self._last[peer_port] = (key, now)
        self._send(tcp_info_message(info, peer_port, now, cc))

    def _send(self, msg: dict[str, object]) -> None:
        with self._lock:
            if self._sock is None:
                now = time.monotonic()
                if now < self._next_connect:
                    return
                self._next_connect = now + 0.5
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    sock.settimeout(0.5)
                    sock.connect(self.path)
                except OSError:
                    sock.close()
                    return
                self._sock = sock
            try:
                self._sock.sendall(json.dumps(msg, separators=(",", ":")).encode() + b"\n")
            except OSError:
                with contextlib.suppress(OSError):
                    self._sock.close()
                self._sock = None


# sock_diag (NETLINK_SOCK_DIAG, <linux/inet_diag.h>): TCP_INFO of sockets owned by another process
_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST_DUMP = 0x1 | 0x300
_NLMSG_DONE = 3
_NLMSG_ERROR = 2
_INET_DIAG_INFO = 2
_INET_DIAG_CONG = 4
_DIAG_MSG = struct.Struct("=BBBB HH 16s16s I 8s IIIII")  # struct inet_diag_msg (72 bytes)


def diag_tcp_infos(local_port: int) -> list[tuple[int, bytes, str]]:
    """(peer port, raw struct tcp_info, congestion control) of every TCP socket (IPv4, then IPv6) in this
    namespace bound to ``local_port`` and not listening, via sock_diag."""
    return [*_diag_tcp_infos(socket.AF_INET, local_port), *_diag_tcp_infos(socket.AF_INET6, local_port)]


def _diag_tcp_infos(family: int, local_port: int) -> list[tuple[int, bytes, str]]:
    states = 0xFFFFFFFF & ~(1 << 10)  # all but LISTEN
    ext = (1 << (_INET_DIAG_INFO - 1)) | (1 << (_INET_DIAG_CONG - 1))
    req = struct.pack("=BBBBI", family, socket.IPPROTO_TCP, ext, 0, states)
    req += struct.pack("!HH", local_port, 0) + bytes(32) + struct.pack("=I8s", 0, b"\xff" * 8)
    hdr = struct.pack("=IHHII", 16 + len(req), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST_DUMP, 1, 0)
    out: list[tuple[int, bytes, str]] = []
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG) as nl:
        nl.settimeout(1.0)
        nl.sendto(hdr + req, (0, 0))
        while True:
            data = nl.recv(1 << 16)
            pos = 0
            while pos + 16 <= len(data):
                length, kind, _flags, _seq, _pid = struct.unpack_from("=IHHII", data, pos)
                if length < 16:
                    return out
                if kind in (_NLMSG_DONE, _NLMSG_ERROR):
                    return out
                body = pos + 16
                msg = _DIAG_MSG.unpack_from(data, body)
                sport, dport = socket.ntohs(msg[4]), socket.ntohs(msg[5])
                a = body + _DIAG_MSG.size
                end = pos + length
                info: bytes | None = None
                cc = ""
                while a + 4 <= end:
                    alen, atype = struct.unpack_from("=HH", data, a)
                    if alen < 4:
                        break
                    if atype == _INET_DIAG_INFO:
                        info = bytes(data[a + 4 : a + alen])
                    elif atype == _INET_DIAG_CONG:
                        cc = bytes(data[a + 4 : a + alen]).split(b"\0", 1)[0].decode(errors="replace")
                    a += (alen + 3) & ~3
                if info is not None and sport == local_port:
                    out.append((dport, info, cc))
                pos += (length + 3) & ~3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rawtui.lab.server", description=__doc__.splitlines()[0])
    parser.add_argument("--root", help="directory to serve")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--bind", default="::",
                        help="address to listen on (default ::, IPv6 and IPv4; 0.0.0.0: IPv4 only)")
    parser.add_argument("--verbose", action="store_true", help="log each request to stderr")
    parser.add_argument("--report", metavar="PATH", help="publish TCP_INFO samples on the lab control socket")
    parser.add_argument("--report-every", type=float, default=0.01, metavar="S",
                        help="seconds between TCP_INFO samples (default 0.01)")
    parser.add_argument("--sample-port", type=int, metavar="PORT",
                        help="no server: sample the connections of another server on PORT (needs --report)")
    parser.add_argument("--cc", metavar="NAME",
                        help="the congestion control of the server's connections (reno, cubic, bbr...)")
    args = parser.parse_args(argv)
    if hasattr(signal, "SIGUSR1"):
        faulthandler.register(signal.SIGUSR1)  # `kill -USR1 PID`: every thread's stack on stderr
    if args.sample_port is not None:
        if not args.report:
            parser.error("--sample-port needs --report PATH")
        reporter = TcpInfoReporter(args.report, args.report_every, sample_port=args.sample_port)
        reporter.start()
        print(f"ready sampling port {args.sample_port}", flush=True)
        try:
            while reporter.is_alive():
                reporter.join(1.0)
        except KeyboardInterrupt:
            pass
        return 0
    if not args.root:
        parser.error("--root DIR is required")
    root = Path(args.root)
    if not root.is_dir():
        parser.error(f"--root {args.root}: not a directory")
    handler = partial(LabRequestHandler, directory=str(root))
    LabRequestHandler.verbose = args.verbose
    LabHTTPServer.cc = args.cc
    if ":" in args.bind:
        LabHTTPServer.address_family = socket.AF_INET6
    try:
        server = LabHTTPServer((args.bind, args.port), handler)
    except OSError as exc:
        refused = args.cc and exc.errno in (errno.ENOENT, errno.EPERM)  # not in the kernel / not allowed
        what = f"congestion control {args.cc!r} refused" if refused else f"cannot listen on {args.bind}:{args.port}"
        print(f"{what}: {exc.strerror}", file=sys.stderr)
        return 1
    if args.report:
        server.reporter = TcpInfoReporter(args.report, args.report_every)
        server.reporter.start()
    host = f"[{args.bind}]" if ":" in args.bind else args.bind
    print(f"ready http://{host}:{args.port}/ root={root}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
