"""The downloaded file: written to a temporary file beside the target, renamed only when complete.

Nothing half-written ever stands under the final name. ``-`` means standard output (streamed, no rename).
When run through sudo, the finished file is handed to the invoking user (SUDO_UID / SUDO_GID).
"""

from __future__ import annotations

import errno
import hashlib
import os
import sys
import tempfile
import threading
import time
from collections import deque
from typing import BinaryIO

from rawtui.errors import OutputError


def _why(e: OSError) -> str:
    if e.errno == errno.ENOSPC:
        return "the disk is full"
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "permission denied"
    if e.errno == errno.ENOENT:
        return "the directory does not exist"
    if e.errno == errno.EISDIR:
        return "it is a directory"
    return e.strerror or str(e)


HANDOFF = 256 << 10  # bytes gathered before the writer thread gets them
STALL_TIMEOUT = 60.0  # seconds the disk may take nothing while the memory allowance is full: then an error
COMMIT_TIMEOUT = 120.0  # seconds commit() waits for the writer to finish the pending bytes
DISCARD_TIMEOUT = 1.0  # seconds discard() waits for a write(2) in progress (the rest is skipped)


class OutputFile:
    """The body's destination. Hashing and writing run in a writer thread (both release the GIL), so the
    stack's loop only hands over chunks; at most ``max_pending`` bytes wait in memory (backpressure).

    Received pieces (one per TCP segment, ~1.4 kB) are gathered into ``HANDOFF``-byte chunks first: one
    thread handoff (a lock, a wake-up, a GIL switch) and one write(2) per chunk instead of per segment.

    No wait is unbounded: a disk that takes nothing for ``STALL_TIMEOUT`` seconds is an error, and
    :meth:`discard` (an interrupted download) skips what is pending and waits ``DISCARD_TIMEOUT`` at most
    for a write in progress, so a signal's clean end is never held by a slow disk.
    """

    def __init__(self, path: str, max_pending: int = 8 << 20) -> None:
        self.path = path
        self.to_stdout = path == "-"
        self.tmp_path: str | None = None
        self._f: BinaryIO | None = None
        self.sha256 = hashlib.sha256()
        self.size = 0
        self._max_pending = max_pending
        self._pending: deque[bytes | None] = deque()
        self._pending_bytes = 0
        self._gather: list[bytes] = []
        self._gathered = 0
        self._cond = threading.Condition()
        self._error: OSError | None = None
        self._discarding = False  # discard(): the writer skips what is still pending
        self._writer: threading.Thread | None = None

    @property
    def opened(self) -> bool:
        return self._f is not None

    def open(self) -> None:
        """Create the temporary file now, so an unwritable directory fails before any packet is sent."""
        if self.to_stdout:
            self._f = sys.stdout.buffer
        else:
            if os.path.isdir(self.path):
                raise OutputError(f"cannot write {self.path}: it is a directory")
            directory = os.path.dirname(os.path.abspath(self.path))
            base = os.path.basename(self.path)
            try:
                fd, self.tmp_path = tempfile.mkstemp(prefix=f".{base}.", suffix=".rawtui-part", dir=directory)
            except OSError as e:
                raise OutputError(f"cannot write {self.path}: {_why(e)}") from None
            self._f = os.fdopen(fd, "wb", buffering=0)
        self._writer = threading.Thread(target=self._write_loop, name="rawtui-writer", daemon=True)
        self._writer.start()

    def write(self, data: bytes) -> None:
        if not data:
            return
        n = len(data)
        self.size += n
        if n >= HANDOFF // 4:  # big enough on its own: no gathering copy
            self._hand_over()  # what was gathered before it goes first
            self._enqueue(data)
            return
        self._gather.append(data)
        self._gathered += n
        if self._gathered >= HANDOFF:
            self._hand_over()

    def _hand_over(self) -> None:
        gather = self._gather
        if not gather:
            return
        data = gather[0] if len(gather) == 1 else b"".join(gather)
        self._gather = []
        self._gathered = 0
        self._enqueue(data)

    def _enqueue(self, data: bytes) -> None:
        with self._cond:
            if self._error is not None:
                raise OutputError(f"cannot write {self.path}: {_why(self._error)}")
            stalled = time.monotonic() + STALL_TIMEOUT
            while self._pending_bytes >= self._max_pending and self._error is None:
                before = self._pending_bytes
                self._cond.wait(0.5)
                if self._pending_bytes < before:
                    stalled = time.monotonic() + STALL_TIMEOUT
                elif time.monotonic() > stalled:
                    raise OutputError(f"cannot write {self.path}: the disk took nothing for {STALL_TIMEOUT:g} s")
            self._pending.append(data)
            self._pending_bytes += len(data)
            self._cond.notify_all()

    def _write_loop(self) -> None:
        f = self._f
        assert f is not None
        h = self.sha256
        while True:
            with self._cond:
                while not self._pending:
                    self._cond.wait(1.0)
                chunk = self._pending.popleft()
            if chunk is None:
                return
            try:
                if self._error is None and not self._discarding:
                    h.update(chunk)
                    view = memoryview(chunk)
                    while view:
                        n = f.write(view)
                        view = view[n or len(view):]
                    if self.to_stdout:
                        f.flush()
            except OSError as e:
                self._error = e
            with self._cond:
                self._pending_bytes -= len(chunk)
                self._cond.notify_all()

    def _finish_writer(self, timeout: float) -> bool:
        """Hand the writer its last chunk and wait for it (``timeout`` seconds at most); False if it is
        still busy then (a write(2) that does not return: it is a daemon thread, left behind)."""
        if self._writer is None:
            return True
        if not self._discarding:
            try:
                self._hand_over()
            except OutputError:
                pass  # the writer's error is reported by commit()
        with self._cond:
            self._pending.append(None)
            self._cond.notify_all()
        self._writer.join(timeout)
        if self._writer.is_alive():
            return False
        self._writer = None
        return True

    def commit(self) -> str:
        """Wait for the writer, close and move into place; returns the final path."""
        if not self._finish_writer(COMMIT_TIMEOUT):
            self.discard()
            raise OutputError(f"cannot write {self.path}: the disk took nothing for {COMMIT_TIMEOUT:g} s")
        if self._error is not None:
            e = self._error
            self.discard()
            raise OutputError(f"cannot write {self.path}: {_why(e)}")
        if self.to_stdout:
            return "-"
        assert self._f is not None and self.tmp_path is not None
        try:
            self._f.close()
            os.chmod(self.tmp_path, 0o644)
            _hand_to_sudo_user(self.tmp_path)
            os.replace(self.tmp_path, self.path)
        except OSError as e:
            self.discard()
            raise OutputError(f"cannot write {self.path}: {_why(e)}") from None
        self.tmp_path = None
        self._f = None
        return self.path

    def discard(self) -> None:
        """Remove the temporary file (idempotent, never raises, bounded: see ``DISCARD_TIMEOUT``)."""
        self._discarding = True
        self._gather = []
        self._gathered = 0
        self._finish_writer(DISCARD_TIMEOUT)
        if self._f is not None and not self.to_stdout:
            try:
                self._f.close()
            except OSError:
                pass
        self._f = None
        if self.tmp_path is not None:
            try:
                os.unlink(self.tmp_path)
            except OSError:
                pass
            self.tmp_path = None


def _hand_to_sudo_user(path: str) -> None:
    if os.geteuid() != 0:
        return
    uid, gid = os.environ.get("SUDO_UID"), os.environ.get("SUDO_GID")
    if uid and gid and uid.isdigit() and gid.isdigit():
        os.chown(path, int(uid), int(gid))
