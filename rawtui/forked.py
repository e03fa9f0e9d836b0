"""An event source run in a forked child process: the network stack on a core (and a GIL) of its own.

The live view and the stack would otherwise share one interpreter lock: every millisecond Textual spends
importing, composing and painting is a millisecond the stack does not read frames (measured: a 200 MB
download took the live view ~2x the headless time, with the process's CPU time equal to its wall time).
:class:`ForkedSource` forks at once (before Textual is imported: the parent has no other thread yet), runs
the source in the child, and hands its events back over a pipe in pickled batches; the parent's
:meth:`ForkedSource.run` is an :class:`~rawtui.source.EventSource` that reads them.

The stack never waits for the view: the child writes without blocking; when the pipe is full it keeps
the batches (bounded: past ``MAX_BACKLOG`` bytes it drops the per-segment events, never the others, and
says how many it dropped). Per-segment events travel in batches every ``FLUSH_EVERY`` seconds; every other
event (ARP, handshake, response, errors, the end) goes at once. Commands go the other way on a second pipe:
stop (``q``, a signal) and save-pcap (the view's ``s`` key: the kept frames live in the child, which
therefore stays after the download, until the parent calls :meth:`ForkedSource.close` or exits). When the
parent dies, the child sees the command pipe close and stops cleanly (firewall rule removed, no partial
file); :meth:`ForkedSource.close` waits for that.
"""

from __future__ import annotations

import fcntl
import os
import pickle
import select
import signal
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

from .errors import RawtuiError
from .source import Emit, EventSource
from .stack.events import Error, Event, Info

FLUSH_EVERY = 0.02  # seconds per-segment events may wait in the child
BATCH = 512  # ...or this many
MAX_BACKLOG = 64 << 20  # bytes of batches the child keeps while the pipe is full
_BULK = frozenset({"segment_in", "segment_out", "window", "dup_ack", "out_of_order", "dup_data"})
_LEN = struct.Struct("=I")
_F_SETPIPE_SZ = 1031
_STOP, _PCAP = b"S", b"P"


class ForkedSource:
    """Fork now and run ``source`` in the child; :meth:`run` in the parent yields its events."""

    def __init__(self, source: EventSource, *, save_pcap: Callable[[], str] | None = None) -> None:
        self.title: str = getattr(source, "title", "")
        self._can_save_pcap = save_pcap is not None
        ev_r, ev_w = os.pipe()
        cmd_r, cmd_w = os.pipe()
        for fd in (ev_w, cmd_w):
            try:
                fcntl.fcntl(fd, _F_SETPIPE_SZ, 1 << 20)
            except OSError:
                pass  # the default 64 KB pipe works too, with more round trips
        pid = os.fork()
        if pid == 0:  # the child: never returns
            os.close(ev_r)
            os.close(cmd_w)
            _child(source, save_pcap, ev_w, cmd_r)
        os.close(ev_w)
        os.close(cmd_r)
        self.pid = pid
        self._events = ev_r
        self._commands = cmd_w
        self._buf = bytearray()
        self._pcap_reply: list[Any] = []
        self._pcap_done = threading.Event()
        self._lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._exit_code: int | None = None  # what the source returned (the child's message)
        self._reaped: int | None = None  # the child's exit status, once waited for

    # -- the parent ---------------------------------------------------------------------------------

    def run(self, emit: Emit, stop: threading.Event) -> int:
        """Emit the child's events as they come; forward ``stop``; return the source's exit code."""
        stopped = False
        while self._exit_code is None:
            if stop.is_set() and not stopped:
                stopped = True
                self._command(_STOP)
            r, _, _ = select.select([self._events], [], [], 0.05)
            if not r:
                continue
            if not self._read(emit):  # the child died without saying how it ended
                return self.close()
        return self._exit_code

    def _read(self, emit: Emit | None) -> bool:
        with self._read_lock:  # run()'s thread, or save_pcap() once run() has returned: never both at once
            return self._read_locked(emit)

    def _read_locked(self, emit: Emit | None) -> bool:
        try:
            chunk = os.read(self._events, 1 << 20)
        except OSError:
            chunk = b""
        if not chunk:
            return False
        self._buf += chunk
        for item in self._messages():
            if not isinstance(item, tuple):
                if emit is not None:
                    emit(item)
            elif item[0] == "exit":
                self._exit_code = int(item[1])
            else:  # ("pcap", path) or ("pcap-error", message)
                self._pcap_reply[:] = [item]
                self._pcap_done.set()
        return True

    def close(self) -> int:
        """Let the child go (it finishes its clean-up first) and wait for it; returns its exit code."""
        if self._reaped is not None:
            return self._reaped
        try:
            os.close(self._commands)
        except OSError:
            pass
        _, status = os.waitpid(self.pid, 0)
        try:
            os.close(self._events)
        except OSError:
            pass
        code = os.waitstatus_to_exitcode(status)
        self._reaped = 128 - code if code < 0 else code  # killed by a signal: 128 + its number
        if self._exit_code is None:
            self._exit_code = self._reaped
        return self._reaped

    def save_pcap(self) -> str:
        """Ask the child to write its kept frames to a pcap file; returns the path (the view's ``s``)."""
        if not self._can_save_pcap:
            raise RawtuiError("no frames are kept for a capture here")
        with self._lock:
            if self._reaped is not None:
                raise RawtuiError("the download process has ended")
            self._pcap_done.clear()
            self._command(_PCAP)
            deadline = time.monotonic() + 10.0
            while not self._pcap_done.is_set():
                if self._exit_code is None:  # run() is reading the pipe: it will see the reply
                    self._pcap_done.wait(0.05)
                elif select.select([self._events], [], [], 0.05)[0] and not self._read(None):
                    break  # the source ended: read the pipe here
                if time.monotonic() > deadline:
                    break
            if not self._pcap_done.is_set():
                raise RawtuiError("the download process did not answer")
            kind, value = self._pcap_reply[0]
        if kind != "pcap":
            raise RawtuiError(value)
        return str(value)

    def _messages(self) -> list[Any]:
        out: list[Any] = []
        buf = self._buf
        pos = 0
        while len(buf) - pos >= 4:
            (n,) = _LEN.unpack_from(buf, pos)
            if len(buf) - pos - 4 < n:
                break
            out.extend(pickle.loads(memoryview(buf)[pos + 4 : pos + 4 + n]))
            pos += 4 + n
        del buf[:pos]
        return out

    def _command(self, what: bytes) -> None:
        try:
            os.write(self._commands, what)
        except OSError:
            pass  # the child is gone already



# -- the child -----------------------------------------------------------------------------------------


def _child(source: EventSource, save_pcap: Callable[[], str] | None, ev_fd: int, cmd_fd: int) -> None:
    code = 1
    try:
        # the terminal's Ctrl+C and job-control signals are the parent's to handle: it tells us to stop
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for s in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, signal.SIG_DFL)
        out = _Outbox(ev_fd)
        stop = threading.Event()
        parent_gone = threading.Event()
        threading.Thread(target=_commands, args=(cmd_fd, stop, parent_gone, save_pcap, out), daemon=True).start()
        try:
            code = source.run(out.emit, stop)
        except BaseException as exc:  # noqa: BLE001 - said in one line, as the session does
            out.emit(Error(0.0, f"internal error: {type(exc).__name__}: {exc}", 1))
            code = 1
        out.send_now(("exit", code))
        out.close()
        if save_pcap is not None:
            parent_gone.wait()  # the kept frames stay available to the view's "save pcap" key
    finally:
        os._exit(code)


def _commands(fd: int, stop: threading.Event, parent_gone: threading.Event, save_pcap: Callable[[], str] | None,
              out: _Outbox) -> None:
    while True:
        try:
            data = os.read(fd, 64)
        except OSError:
            data = b""
        if not data:  # the parent let us go, or is gone: stop cleanly
            stop.set()
            parent_gone.set()
            return
        for byte in data:
            if byte == _STOP[0]:
                stop.set()
            elif byte == _PCAP[0]:
                try:
                    reply: tuple[str, str] = ("pcap", save_pcap() if save_pcap else "")
                except (OSError, RawtuiError) as exc:
                    reply = ("pcap-error", f"cannot save the capture: {exc}")
                out.send_now(reply)


class _Outbox:
    """The child's side of the event pipe: batches, never blocks, bounded."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        os.set_blocking(fd, False)
        self._batch: list[Any] = []
        self._last = time.monotonic()
        self._backlog: list[bytes] = []
        self._backlog_bytes = 0
        self._dropped = 0
        self._lock = threading.Lock()  # the command thread sends pcap replies too

    def emit(self, ev: Event) -> None:
        batch = self._batch
        batch.append(ev)
        if ev.type in _BULK:
            now = time.monotonic()
            if len(batch) < BATCH and now - self._last < FLUSH_EVERY:
                return
        self._flush()

    def send_now(self, item: Any) -> None:
        with self._lock:
            self._batch.append(item)
        self._flush()

    def _flush(self) -> None:
        with self._lock:
            batch, self._batch = self._batch, []
            self._last = time.monotonic()
            if batch:
                if self._dropped and self._backlog_bytes < MAX_BACKLOG // 2:
                    batch.insert(0, Info(getattr(batch[0], "t", 0.0), f"the live view fell behind: "
                                         f"{self._dropped:,} per-segment events were not shown", "warning"))
                    self._dropped = 0
                data = pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL)
                if self._backlog_bytes + len(data) > MAX_BACKLOG:
                    kept = [e for e in batch if getattr(e, "type", None) not in _BULK]
                    self._dropped += len(batch) - len(kept)
                    data = pickle.dumps(kept, protocol=pickle.HIGHEST_PROTOCOL) if kept else b""
                if data:
                    self._backlog.append(_LEN.pack(len(data)) + data)
                    self._backlog_bytes += len(data) + 4
            self._write()

    def _write(self) -> None:
        backlog = self._backlog
        while backlog:
            head = backlog[0]
            try:
                n = os.write(self.fd, head)
            except BlockingIOError:
                return
            except OSError:  # the parent is gone: nothing to tell anyone
                backlog.clear()
                self._backlog_bytes = 0
                return
            self._backlog_bytes -= n
            if n == len(head):
                backlog.pop(0)
            else:
                backlog[0] = head[n:]

    def close(self) -> None:
        """Flush everything, now waiting for the parent if need be (the download is over). Later sends
        (pcap replies) block too."""
        os.set_blocking(self.fd, True)
        self._flush()
