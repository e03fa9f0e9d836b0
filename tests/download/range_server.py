"""A small static HTTP/1.1 server for the resume tests, run in the lab's server namespace: what Python's
http.server lacks and a resume needs (``Range: bytes=N-`` / ``N-M``, ``If-Range`` with the ETag or the
Last-Modified date, 206 with Content-Range, 416 with ``bytes */SIZE``), plus a log of every request's
method, target and headers (one JSON line each, ``--log``) so tests can see what rawtui sent.

    python range_server.py --root DIR --port 8090 [--log FILE]    # prints "ready" once listening
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import threading
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")
_LOG_LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "range-server/1"
    root = "."
    log_path: str | None = None

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve(head=False)

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def _serve(self, head: bool) -> None:
        if self.log_path:
            line = json.dumps({"method": self.command, "target": self.path, "headers": list(self.headers.items())})
            with _LOG_LOCK, open(self.log_path, "a") as f:
                f.write(line + "\n")
        name = unquote(urlsplit(self.path).path).lstrip("/")
        path = os.path.join(self.root, name)
        if not name or "/" in name or not os.path.isfile(path):
            self._small(404, b"not found\n")
            return
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            size = st.st_size
            etag = f'"{st.st_mtime_ns:x}-{size:x}"'
            last_modified = formatdate(st.st_mtime, usegmt=True)
            first, last = 0, size - 1
            status = 200
            want = self.headers.get("Range")
            if_range = self.headers.get("If-Range")
            if want and (if_range is None or if_range in (etag, last_modified)):
                m = _RANGE.match(want.strip())
                if m:
                    first = int(m.group(1))
                    last = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
                    if first >= size:
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{size}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    status = 206
            length = max(0, last - first + 1)
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(length))
            self.send_header("ETag", etag)
            self.send_header("Last-Modified", last_modified)
            self.send_header("Accept-Ranges", "bytes")
            if status == 206:
                self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
            self.end_headers()
            if not head and length:
                try:
                    self.connection.sendfile(f, first, length)
                except (ConnectionError, TimeoutError):
                    self.close_connection = True

    def _small(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--root", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--log")
    ns = p.parse_args(argv)
    Handler.root, Handler.log_path = ns.root, ns.log
    server = ThreadingHTTPServer(("0.0.0.0", ns.port), Handler)
    server.daemon_threads = True
    print("ready", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
