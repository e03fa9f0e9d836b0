"""Signals handled without a lock: the part every command's ending shares (``cli.Endings``, the demo's).

A Python signal handler runs in the main thread between two bytecodes, maybe while that thread holds
the very lock the handler would take (``Event.set``, ``print``, Textual's queues): a deadlock no later
signal can break. So a :class:`SignalPipe` handler writes the signal's number to a pipe, and a daemon
thread of the subclass (:meth:`SignalPipe._watch`) does the rest. A zero byte tells that thread to leave.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Self

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class SignalPipe:
    """Installs a handler for :data:`SIGNALS` (not SIGHUP under ``nohup``) for the ``with`` block."""

    THREAD_NAME = "rawtui-signals"

    def __init__(self) -> None:
        self._old: dict[int, Callable[[int, FrameType | None], object] | int | None] = {}
        self._pipe: tuple[int, int] | None = None
        self._nohup = False  # SIGHUP was ignored: the user asked to outlive the terminal

    def __enter__(self) -> Self:
        if threading.current_thread() is not threading.main_thread():
            return self  # handlers can only be installed from the main thread (a caller in a test)
        r, w = os.pipe()
        os.set_blocking(w, False)
        self._pipe = (r, w)
        for s in SIGNALS:
            if s == signal.SIGHUP and signal.getsignal(s) is signal.SIG_IGN:
                self._nohup = True
                continue
            self._old[s] = signal.signal(s, self._handler)
        threading.Thread(target=self._run_watch, args=(r, w), name=self.THREAD_NAME, daemon=True).start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        for s, h in self._old.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)
        self._old.clear()
        if self._pipe is not None:
            w = self._pipe[1]
            self._pipe = None
            write_quietly(w, b"\0")  # the watcher closes both ends and leaves

    def _post(self, signum: int) -> None:
        """From the handler: hand the signal to the watcher (a full pipe holds enough signals already)."""
        pipe = self._pipe
        if pipe is not None:
            write_quietly(pipe[1], bytes([signum]))

    def _run_watch(self, r: int, w: int) -> None:
        try:
            self._watch(r)
        finally:
            for fd in (r, w):
                try:
                    os.close(fd)
                except OSError:
                    pass

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        raise NotImplementedError

    def _watch(self, r: int) -> None:
        """Read signal numbers from ``r`` until a zero byte; the subclass decides what each one does."""
        raise NotImplementedError


def write_quietly(fd: int, data: bytes) -> None:
    try:
        os.write(fd, data)
    except OSError:
        pass


def isatty(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False


def was_tty(fd: int) -> bool:
    """Whether ``fd`` is a terminal, or a terminal that hung up (isatty says no, the device says tty)."""
    if isatty(fd):
        return True
    try:
        target = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return False
    return target.startswith(("/dev/pts/", "/dev/tty"))


def point_at_devnull(fds: list[int]) -> None:
    """Point these standard streams (a terminal that hung up) at /dev/null: writes then go nowhere
    instead of failing with EIO, and a reader gets an end-of-file at once, as from the hung-up terminal
    (never a read that blocks, which a stand-in pipe would give a reader select() had just woken)."""
    try:
        null = os.open(os.devnull, os.O_RDWR)
    except OSError:
        return
    for fd in fds:
        try:
            os.dup2(null, fd)
        except OSError:
            pass
    os.close(null)
