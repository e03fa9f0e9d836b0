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
from typing import BinaryIO

from .errors import OutputError

CHUNK = 1 << 20


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


class OutputFile:
    def __init__(self, path: str) -> None:
        self.path = path
        self.to_stdout = path == "-"
        self.tmp_path: str | None = None
        self._f: BinaryIO | None = None
        self._buf = bytearray()
        self.sha256 = hashlib.sha256()
        self.size = 0

    @property
    def opened(self) -> bool:
        return self._f is not None

    def open(self) -> None:
        """Create the temporary file now, so an unwritable directory fails before any packet is sent."""
        if self.to_stdout:
            self._f = sys.stdout.buffer
            return
        if os.path.isdir(self.path):
            raise OutputError(f"cannot write {self.path}: it is a directory")
        directory = os.path.dirname(os.path.abspath(self.path))
        base = os.path.basename(self.path)
        try:
            fd, self.tmp_path = tempfile.mkstemp(prefix=f".{base}.", suffix=".rawtui-part", dir=directory)
        except OSError as e:
            raise OutputError(f"cannot write {self.path}: {_why(e)}") from None
        self._f = os.fdopen(fd, "wb", buffering=0)

    def write(self, data: bytes) -> None:
        self.sha256.update(data)
        self.size += len(data)
        self._buf += data
        if len(self._buf) >= CHUNK:
            self._flush()

    def _flush(self) -> None:
        if not self._buf:
            return
        assert self._f is not None
        try:
            self._f.write(self._buf)
            if self.to_stdout:
                self._f.flush()
        except OSError as e:
            raise OutputError(f"cannot write {self.path}: {_why(e)}") from None
        self._buf.clear()

    def commit(self) -> str:
        """Flush, close and move into place; returns the final path."""
        self._flush()
        if self.to_stdout:
            return "-"
        assert self._f is not None and self.tmp_path is not None
        try:
            os.fsync(self._f.fileno())
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
        """Remove the temporary file (idempotent, never raises)."""
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
