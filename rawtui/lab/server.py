"""The lab's built-in HTTP/1.1 server: static files plus endpoints that exercise a client's edge cases.

Run it as ``python -m rawtui.lab.server --root DIR --port 8080 [--bind 0.0.0.0]``; it prints one line
starting with ``ready`` once it is listening, and nothing else unless ``--verbose``.

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
import hashlib
import os
import random
import sys
from collections.abc import Callable
from functools import partial
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import unquote, urlsplit

__all__ = ["CHUNK_SIZE_RANGE", "LabHTTPServer", "LabRequestHandler", "main", "make_file", "sha256_file"]

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
    """ThreadingHTTPServer with a longer listen backlog that does not print client disconnects."""

    request_queue_size = 128
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rawtui.lab.server", description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, help="directory to serve")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--bind", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
    parser.add_argument("--verbose", action="store_true", help="log each request to stderr")
    args = parser.parse_args(argv)
    root = Path(args.root)
    if not root.is_dir():
        parser.error(f"--root {args.root}: not a directory")
    handler = partial(LabRequestHandler, directory=str(root))
    LabRequestHandler.verbose = args.verbose
    try:
        server = LabHTTPServer((args.bind, args.port), handler)
    except OSError as exc:
        print(f"cannot listen on {args.bind}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 1
    print(f"ready http://{args.bind}:{args.port}/ root={root}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
