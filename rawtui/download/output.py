"""The downloaded file: written to ``FILE.part`` beside the target, renamed only when complete.

Nothing half-written ever stands under the final name. An interrupted download keeps ``FILE.part`` and
``FILE.part.meta`` (which version of which URL those bytes are: :mod:`rawtui.download.resume`) so that
``-C -`` can continue it. ``-`` means standard output (streamed, no rename, nothing kept).
When run through sudo, the finished file is handed to the invoking user (SUDO_UID / SUDO_GID).

For a retry within one run (``--retry``): call :meth:`OutputFile.begin_body` again with the decision
:func:`rawtui.download.resume.decide` made of the new response (``offset`` = :attr:`OutputFile.size`):
``APPEND`` goes on where the file is, ``RESTART`` empties it first; both are ordered after what is still
being written.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import BinaryIO

from rawtui.download.resume import Action, PartMeta, part_path, read_meta, remove_meta, write_meta
from rawtui.errors import HttpError, OutputError


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
KEEP_TIMEOUT = 1.0  # seconds keep() lets the writer write what is pending (what is on disk is kept anyway)


def resolve_output(url_name: str, output: str | None = None, output_dir: str | None = None) -> str:
    """The file a URL is saved to, as curl names it: ``output`` (``-o``), or the URL's own name
    (``url_name``: ``-O``, the default); an ``output`` that is a directory, or ends with ``/``, means the
    URL's name inside it; ``output_dir`` (``--output-dir``) is the directory for a relative name. ``-``
    is standard output."""
    if output == "-":
        return "-"
    path = url_name if not output else output
    if output and (output.endswith(os.sep) or os.path.isdir(output)):
        path = os.path.join(output, url_name)
    if output_dir:
        path = os.path.join(output_dir, path)
    return path


@dataclass(frozen=True, slots=True)
class _Reset:
    """Writer-thread order: empty the part file (a restart from zero) and save ``meta`` beside it."""

    meta: PartMeta | None


@dataclass(frozen=True, slots=True)
class _HashPrefix:
    """Writer-thread order: hash the first ``size`` bytes already in the part file (a resume)."""

    size: int


class OutputFile:
    """The body's destination. Hashing and writing run in a writer thread (both release the GIL), so the
    stack's loop only hands over chunks; at most ``max_pending`` bytes wait in memory (backpressure).

    Received pieces (one per TCP segment, ~1.4 kB) are gathered into ``HANDOFF``-byte chunks first: one
    thread handoff (a lock, a wake-up, a GIL switch) and one write(2) per chunk instead of per segment.

    No wait is unbounded: a disk that takes nothing for ``STALL_TIMEOUT`` seconds is an error,
    :meth:`keep` (an interrupted download: ``FILE.part`` stays for ``-C -``) lets the writer finish for
    ``KEEP_TIMEOUT`` at most, and :meth:`discard` (nothing worth keeping) skips what is pending and waits
    ``DISCARD_TIMEOUT`` at most for a write in progress, so a signal's clean end is never held by a slow
    disk. Bytes are written in order, so whatever stands in ``FILE.part`` is a prefix of the body.
    """

    def __init__(self, path: str, max_pending: int = 8 << 20) -> None:
        self.path = path
        self.to_stdout = path == "-"
        self.tmp_path: str | None = None  # FILE.part while it is open
        self._f: BinaryIO | None = None
        self.sha256 = hashlib.sha256()
        self.size = 0  # bytes of the file so far: what a resume started from, plus what came since
        self.found = 0  # bytes FILE.part held when it was opened (an earlier run's partial download)
        self.found_meta: PartMeta | None = None  # ... and its FILE.part.meta
        self.meta: PartMeta | None = None  # which version the part file holds now (found, or this run's)
        self.began = False  # begin_body() was called: the part file is this run's
        self.resumable = True  # False: the kept bytes could not be continued (a decoded body): not kept
        self._max_pending = max_pending
        self._pending: deque[bytes | _Reset | _HashPrefix | None] = deque()
        self._pending_bytes = 0
        self._gather: list[bytes] = []
        self._gathered = 0
        self._cond = threading.Condition()
        self._error: OSError | None = None
        self._discarding = False  # discard(): the writer skips what is still pending
        self._writer: threading.Thread | None = None
        self._fd = -1  # FILE.part's descriptor (the writer thread truncates and hashes through it)

    @property
    def opened(self) -> bool:
        return self._f is not None

    def open(self) -> None:
        """Open ``FILE.part`` now (created if missing, never emptied here: :attr:`found` says what it holds),
        so an unwritable directory fails before any packet is sent. One rawtui at a time per part file."""
        if self.to_stdout:
            self._f = sys.stdout.buffer
        else:
            if os.path.isdir(self.path):
                raise OutputError(f"cannot write {self.path}: it is a directory")
            tmp = part_path(self.path)
            try:
                fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
            except OSError as e:
                if e.errno == errno.ELOOP:  # never written through a link someone else may have planted
                    raise OutputError(f"cannot write {self.path}: {tmp} is a symbolic link") from None
                raise OutputError(f"cannot write {self.path}: {_why(e)}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                raise OutputError(f"cannot write {self.path}: another download is writing {tmp}") from None
            self.found = os.fstat(fd).st_size
            self.found_meta = self.meta = read_meta(self.path) if self.found else None
            self.tmp_path = tmp
            os.lseek(fd, 0, os.SEEK_END)
            self._fd = fd
            self._f = os.fdopen(fd, "r+b", buffering=0)
        self._writer = threading.Thread(target=self._write_loop, name="rawtui-writer", daemon=True)
        self._writer.start()

    def begin_body(self, action: Action, meta: PartMeta | None = None) -> None:
        """The response's body is about to come: ``RESTART`` empties the part file (and saves ``meta``, which
        version it now holds, unless None); ``APPEND`` continues after its :attr:`size` bytes (the first time:
        the :attr:`found` ones, hashed first); ``COMPLETE`` takes the part file as the whole file (416).
        Ordered after every byte written before: a retry in the same run may call it again."""
        if self.to_stdout:
            if action is not Action.RESTART or self.size:
                raise OutputError("cannot continue a download written to standard output")
            self.began = True
            return
        if action is Action.RESTART:
            self.size = 0
            self.meta = meta if self.resumable else None
            self._enqueue(_Reset(self.meta))
        elif not self.began:  # the found bytes: the start of the file
            self.size = self.found
            self._enqueue(_HashPrefix(self.found))
        self.began = True

    def write(self, data: bytes) -> None:
        if not data:
            return
        if not self.began:
            self.begin_body(Action.RESTART)
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

    def _enqueue(self, data: bytes | _Reset | _HashPrefix) -> None:
        if not isinstance(data, bytes):
            self._hand_over()  # what was gathered goes first
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
            self._pending_bytes += len(data) if isinstance(data, bytes) else 0
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
            if not isinstance(chunk, bytes):
                try:
                    if self._error is None and not self._discarding:
                        h = self._order(chunk)
                except OSError as e:
                    self._error = e
                continue
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

    def _order(self, order: _Reset | _HashPrefix) -> hashlib._Hash:
        """Carry out a writer-thread order; returns the hash to go on with."""
        fd = self._fd
        if isinstance(order, _Reset):
            remove_meta(self.path)  # first: old bytes never stand beside a meta file that is not theirs
            # Only a part file that holds something: on ext4, truncating even an empty file to 0 makes its
            # close start the writeback of everything written since (auto_da_alloc, for the replace-by-
            # truncate pattern): measured, a 200 MiB download's close took 70-100 ms instead of ~0.
            if os.fstat(fd).st_size:
                os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            self.sha256 = hashlib.sha256()
            if order.meta is not None:
                write_meta(self.path, order.meta)
            return self.sha256
        h = self.sha256
        done = 0
        while done < order.size:
            block = os.pread(fd, min(1 << 20, order.size - done), done)
            if not block:
                raise OSError(errno.EIO, f"{self.tmp_path} is shorter than {order.size} bytes")
            h.update(block)
            done += len(block)
        os.lseek(fd, order.size, os.SEEK_SET)
        return h

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

    def commit(self, expected_size: int | None = None) -> str:
        """Wait for the writer, check the size (``expected_size``: the whole file's, when the server said
        it), close and move into place; returns the final path. A wrong size is an HTTP error (exit 6)."""
        if not self.began:
            self.begin_body(Action.RESTART)  # an empty body: the part file may still hold an older one
        if not self._finish_writer(COMMIT_TIMEOUT):
            self.keep()
            raise OutputError(f"cannot write {self.path}: the disk took nothing for {COMMIT_TIMEOUT:g} s")
        if self._error is not None:
            e = self._error
            self.keep()
            raise OutputError(f"cannot write {self.path}: {_why(e)}")
        if expected_size is not None and self.size != expected_size:
            got = self.size
            self.discard()
            raise HttpError(f"the file is {got:,} bytes where the server said {expected_size:,}: not saved")
        if self.to_stdout:
            return "-"
        assert self._f is not None and self.tmp_path is not None
        try:
            os.fchmod(self._f.fileno(), 0o644)
            _hand_to_sudo_user(self.tmp_path)
            os.replace(self.tmp_path, self.path)  # still locked: nobody else starts on FILE.part meanwhile
            remove_meta(self.path)
            self._f.close()
        except OSError as e:
            self.keep()
            raise OutputError(f"cannot write {self.path}: {_why(e)}") from None
        self.tmp_path = None
        self._f = None
        return self.path

    def keep(self) -> int:
        """An unfinished download: keep ``FILE.part`` (and its meta) for ``-C -`` when it holds something
        that can be continued, else remove it. Never raises, bounded (``KEEP_TIMEOUT``). Returns the bytes
        kept (0: nothing kept)."""
        if self.to_stdout or self.tmp_path is None or (self.began and not self.resumable):
            self.discard()
            return 0
        try:
            self._hand_over()
        except OutputError:
            pass  # the writer's error: what is on disk is kept
        self._finish_writer(KEEP_TIMEOUT)  # a write still going on leaves a shorter prefix: still a prefix
        try:
            kept = os.fstat(self._fd).st_size
        except OSError:
            kept = 0
        if kept == 0:
            self.discard()
            return 0
        self._discarding = True
        if self._f is not None:
            try:
                self._f.close()
            except OSError:
                pass
        self._f = None
        self.tmp_path = None
        return kept

    def discard(self) -> None:
        """Remove the part file and its meta (idempotent, never raises, bounded: see ``DISCARD_TIMEOUT``)."""
        self._discarding = True
        self._gather = []
        self._gathered = 0
        self._finish_writer(DISCARD_TIMEOUT)
        if self.tmp_path is not None:  # removed while still locked: nobody else starts on it meanwhile
            try:
                os.unlink(self.tmp_path)
                remove_meta(self.path)
            except OSError:
                pass
            self.tmp_path = None
        if self._f is not None and not self.to_stdout:
            try:
                self._f.close()
            except OSError:
                pass
        self._f = None


def _hand_to_sudo_user(path: str) -> None:
    if os.geteuid() != 0:
        return
    uid, gid = os.environ.get("SUDO_UID"), os.environ.get("SUDO_GID")
    if uid and gid and uid.isdigit() and gid.isdigit():
        os.chown(path, int(uid), int(gid))
