"""An event source run in a forked child process: the network stack on a core (and a GIL) of its own.

The live view and the stack would otherwise share one interpreter lock: every millisecond Textual spends
importing, composing and painting is a millisecond the stack does not read frames (measured: a 200 MB
download took the live view ~2x the headless time, with the process's CPU time equal to its wall time).
:class:`ForkedSource` forks at once (before Textual is imported: the parent has no other thread yet but
its signal watcher, rawtui.cli.Endings, which holds no lock the child needs), runs the source in the
child, and hands its events back over a pipe in pickled batches; the parent's :meth:`ForkedSource.run` is
an :class:`~rawtui.events.EventSource` that reads them.

Events cross the pipe as plain tuples, ``(class number, field values)`` (:class:`EventCodec`): encoding and
pickling them costs less than half of pickling the event objects, unpickling and rebuilding them less than
half of unpickling the objects, and they take 38 bytes instead of 60 (``benchmarks/live_view_cost.py``).
Both sides have the same class table: the child is a fork.

The stack never waits for the view: the child writes without blocking; when the pipe is full it keeps
the batches (bounded: past ``MAX_BACKLOG`` bytes it drops the per-segment events, never the others, and
says how many it dropped). Per-segment events travel in batches every ``FLUSH_EVERY`` seconds; every other
event (ARP, handshake, response, errors, the end) goes at once. Commands go the other way on a second pipe:
stop (``q``, a signal) and save-pcap (the view's ``s`` key: the kept frames live in the child, which
therefore stays after the download, until the parent calls :meth:`ForkedSource.close` or exits). When the
parent dies, the child sees the command pipe close and stops cleanly (firewall rule removed, nothing under
the final name: the body so far stays in FILE.part for ``-C -``); :meth:`ForkedSource.close` waits for that,
for a bounded time.

Signals: the terminal's (SIGINT, SIGHUP) reach the whole process group, but only the parent acts on them
(it tells the child to stop); the child ignores them. SIGTERM sent to the child itself stops it the same
clean way. Whatever happens, the child ends at most ``GRACE`` seconds after it was told to go (SIGTERM, or
the parent gone), ``HURRY`` after a second SIGTERM: no wait in it is unbounded then.
"""

from __future__ import annotations

import fcntl
import operator
import os
import pickle
import select
import signal
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import fields
from typing import Any

from rawtui.errors import EXIT_INTERRUPTED, RawtuiError
from rawtui.events import EVENT_TYPES, Emit, Error, Event, EventSource, Info

FLUSH_EVERY = 0.02  # seconds per-segment events may wait in the child
BATCH = 512  # ...or this many
MAX_BACKLOG = 64 << 20  # bytes of batches the child keeps while the pipe is full
_BULK = frozenset({"segment_in", "segment_out", "window", "dup_ack", "out_of_order", "dup_data"})
_LEN = struct.Struct("=I")
_F_SETPIPE_SZ = 1031
_STOP, _PCAP, _RATE = b"S", b"P", b"R"
_RATE_ARG = struct.Struct("=d")  # after _RATE: the new rate in bytes per second, 0 for no limit
GRACE = 1.5  # seconds the child has to end cleanly once told to go by SIGTERM or by the parent's death
HURRY = 0.5  # ...at most this long after a second SIGTERM
CLOSE_TIMEOUT = 2.0  # seconds ForkedSource.close waits for the child before SIGKILL
STOP_WAIT = 5.0  # seconds run() waits for the child's end after forwarding a stop
FLUSH_TIMEOUT = 2.0  # seconds the child waits for the parent to take its last events
_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


class EventCodec:
    """Events as ``(class number, field values)`` tuples and back: what crosses the pipe (cheaper to pickle
    and to unpickle than the objects). An event of a class not in the table travels as itself."""

    def __init__(self) -> None:
        self.classes: list[type[Event]] = sorted(EVENT_TYPES.values(), key=lambda c: c.type)
        self._getters: dict[type, tuple[int, Callable[[Any], Any]]] = {}
        for code, cls in enumerate(self.classes):
            names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
            if len(names) > 1:  # (attrgetter of one name gives the value, not a tuple: such an event goes as is)
                self._getters[cls] = (code, operator.attrgetter(*names))
        self.bulk_codes = frozenset(code for code, cls in enumerate(self.classes) if cls.type in _BULK)

    def encode(self, ev: Any) -> Any:
        entry = self._getters.get(type(ev))
        if entry is None:
            return ev
        code, getter = entry
        return (code, getter(ev))

    def encodes(self, cls: type) -> bool:
        """Events of ``cls`` travel as tuples (every event class with more than its time does)."""
        return cls in self._getters

    def bulk(self, item: Any) -> bool:
        """A per-segment event (encoded or not): what may be dropped when the view falls far behind."""
        if type(item) is tuple and type(item[0]) is int:
            return item[0] in self.bulk_codes
        return getattr(item, "type", None) in _BULK

    def time(self, item: Any) -> float:
        """An item's event time (0 for a message that is not an event)."""
        if type(item) is tuple and type(item[0]) is int:
            return float(item[1][0])  # ``t``, the first field of every event
        return float(getattr(item, "t", 0.0))

    def decode(self, item: Any) -> Any:
        """An event again; a ``(name, value)`` message or an event sent as itself comes back unchanged."""
        if type(item) is tuple and type(item[0]) is int:
            return self.classes[item[0]](*item[1])
        return item


CODEC = EventCodec()


class ForkedSource:
    """Fork now and run ``source`` in the child; :meth:`run` in the parent yields its events."""

    def __init__(self, source: EventSource, *, save_pcap: Callable[[], str] | None = None,
                 set_rate: Callable[[float | None], None] | None = None) -> None:
        self.title: str = getattr(source, "title", "")
        self._can_save_pcap = save_pcap is not None
        ev_r, ev_w = os.pipe()
        cmd_r, cmd_w = os.pipe()
        for fd in (ev_w, cmd_w):
            try:
                fcntl.fcntl(fd, _F_SETPIPE_SZ, 1 << 20)
            except OSError:
                pass  # the default 64 KB pipe works too, with more round trips
        # no signal handler may run between the fork and the child's own handlers (the parent's would
        # act for the parent): the signals wait, blocked, until each side has its handlers
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
        pid = os.fork()
        if pid == 0:  # the child: never returns
            os.close(ev_r)
            os.close(cmd_w)
            _child(source, save_pcap, set_rate, ev_w, cmd_r, mask)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
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
        self._close_lock = threading.Lock()
        self._exit_code: int | None = None  # what the source returned (the child's message)
        self._reaped: int | None = None  # the child's exit status, once waited for

    # -- the parent ---------------------------------------------------------------------------------

    def run(self, emit: Emit, stop: threading.Event) -> int:
        """Emit the child's events as they come; forward ``stop``; return the source's exit code (130 when
        the child has not ended ``STOP_WAIT`` seconds after the stop: :meth:`close` then ends it)."""
        stopped_at: float | None = None
        while self._exit_code is None:
            if stop.is_set():
                if stopped_at is None:
                    stopped_at = time.monotonic()
                    self._command(_STOP)
                elif time.monotonic() - stopped_at > STOP_WAIT:
                    return EXIT_INTERRUPTED
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

    def close(self, timeout: float = CLOSE_TIMEOUT) -> int:
        """Let the child go (it finishes its clean-up first) and wait for it, ``timeout`` seconds at most:
        then it is killed (and the firewall table it leaves removed). Returns its exit code."""
        with self._close_lock:  # run()'s thread (the child died) or the caller's: once
            if self._reaped is None:
                self._reaped = self._end_child(timeout)
                if self._exit_code is None:
                    self._exit_code = self._reaped
            return self._reaped

    def let_go(self) -> None:
        """The parent is about to leave without waiting (a forced exit): the child ends by itself when its
        command pipe closes with us; make sure it can (a stopped child is woken: SIGCONT)."""
        if self._reaped is None:
            try:
                os.kill(self.pid, signal.SIGCONT)
            except ProcessLookupError:
                pass

    def _end_child(self, timeout: float) -> int:
        try:
            os.close(self._commands)  # the child sees the end of its command pipe: it stops and exits
        except OSError:
            pass
        status = _wait_child(self.pid, timeout)
        if status is None:  # stuck: end it the hard way, and remove what it could not
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            status = _wait_child(self.pid, 2.0)
            try:
                from rawtui.link.firewall import cleanup_stale

                cleanup_stale()
            except Exception:  # noqa: BLE001, S110 - the next run removes a stale table too
                pass
        with self._read_lock:  # never while run() or save_pcap() reads it
            try:
                os.close(self._events)
            except OSError:
                pass
        if status is None:
            return EXIT_INTERRUPTED
        code = os.waitstatus_to_exitcode(status)
        return 128 - code if code < 0 else code  # killed by a signal: 128 + its number

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

    def set_rate(self, rate: float | None) -> None:
        """Change the download's ``--limit-rate`` (None: no limit) in the child (the view's rate keys)."""
        self._command(_RATE + _RATE_ARG.pack(rate or 0.0))

    def _messages(self) -> list[Any]:
        """The complete batches in the buffer, decoded: events, and ``(name, value)`` messages."""
        out: list[Any] = []
        buf = self._buf
        decode = CODEC.decode
        pos = 0
        while len(buf) - pos >= 4:
            (n,) = _LEN.unpack_from(buf, pos)
            if len(buf) - pos - 4 < n:
                break
            out.extend(map(decode, pickle.loads(memoryview(buf)[pos + 4 : pos + 4 + n])))
            pos += 4 + n
        del buf[:pos]
        return out

    def _command(self, what: bytes) -> None:
        try:
            os.write(self._commands, what)
        except OSError:
            pass  # the child is gone already


def _wait_child(pid: int, timeout: float) -> int | None:
    """The child's wait status once it has exited, or None if it is still running after ``timeout``."""
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return 0  # reaped elsewhere
        if done:
            return status
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        time.sleep(min(delay, left))
        delay = min(delay * 2, 0.02)


# -- the child -----------------------------------------------------------------------------------------


def _child(source: EventSource, save_pcap: Callable[[], str] | None,
           set_rate: Callable[[float | None], None] | None, ev_fd: int, cmd_fd: int,
           mask: set[int | signal.Signals]) -> None:
    code = 1
    try:
        # the terminal's Ctrl+C and hang-up reach the whole process group: they are the parent's to handle
        # (it tells us to stop, or its death does). SIGTERM for us alone: its handler only writes to a pipe
        # (no lock: it runs between two bytecodes of the main thread, whatever that thread holds).
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, lambda signum, frame: _poke(wake_w))
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        out = _Outbox(ev_fd)
        stop = threading.Event()
        parent_gone = threading.Event()
        threading.Thread(target=_commands, args=(cmd_fd, wake_r, stop, parent_gone, save_pcap, set_rate, out),
                         daemon=True).start()
        try:
            code = source.run(out.emit, stop)
        except BaseException as exc:  # noqa: BLE001 - said in one line, as the session does
            out.emit(Error(0.0, f"internal error: {type(exc).__name__}: {exc}", 1))
            code = 1
        out.send_now(("exit", code))
        out.close(FLUSH_TIMEOUT)
        if save_pcap is not None:
            while not parent_gone.wait(1.0):  # the kept frames stay available to the view's "save pcap" key
                pass
    finally:
        os._exit(code)


def _poke(fd: int) -> None:
    try:
        os.write(fd, b"T")
    except OSError:
        pass  # the pipe is full: a SIGTERM is already pending there


def _commands(fd: int, wake: int, stop: threading.Event, parent_gone: threading.Event,
              save_pcap: Callable[[], str] | None, set_rate: Callable[[float | None], None] | None,
              out: _Outbox) -> None:
    """The child's command thread: the parent's commands, SIGTERM, and the deadline once told to go."""
    watch = [fd, wake]
    pending = b""  # a command whose argument has not all come yet
    deadline: float | None = None
    terms = 0
    while True:
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        ready = select.select(watch, [], [], timeout)[0]
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            os._exit(EXIT_INTERRUPTED)  # the clean end did not come in time: no wait may keep us
        if wake in ready:
            terms += len(os.read(wake, 64))
            stop.set()
            limit = now + (GRACE if terms == 1 else HURRY)
            deadline = limit if deadline is None else min(deadline, limit)
        if fd not in ready:
            continue
        try:
            data = os.read(fd, 64)
        except OSError:
            data = b""
        if not data:  # the parent let us go, or is gone: stop cleanly, and soon
            stop.set()
            parent_gone.set()
            watch.remove(fd)
            deadline = now + GRACE if deadline is None else min(deadline, now + GRACE)
            continue
        pending += data
        i = 0
        while i < len(pending):
            byte = pending[i]
            if byte == _RATE[0]:
                if len(pending) - i - 1 < _RATE_ARG.size:
                    break  # the rest of it comes with the next read
                (rate,) = _RATE_ARG.unpack_from(pending, i + 1)
                i += 1 + _RATE_ARG.size
                if set_rate is not None:
                    set_rate(rate if rate > 0 else None)
                continue
            i += 1
            if byte == _STOP[0]:
                stop.set()
            elif byte == _PCAP[0]:
                try:
                    reply: tuple[str, str] = ("pcap", save_pcap() if save_pcap else "")
                except (OSError, RawtuiError) as exc:
                    reply = ("pcap-error", f"cannot save the capture: {exc}")
                out.send_now(reply)
        pending = pending[i:]


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
        self._closed = False
        self._encode = CODEC.encode

    def emit(self, ev: Event) -> None:
        batch = self._batch
        batch.append(self._encode(ev))
        if ev.type in _BULK:
            now = time.monotonic()
            if len(batch) < BATCH and now - self._last < FLUSH_EVERY:
                return
        self._flush()

    def send_now(self, item: Any) -> None:
        with self._lock:
            self._batch.append(item)
        self._flush()
        if self._closed:
            self._drain(FLUSH_TIMEOUT)

    def _flush(self) -> None:
        with self._lock:
            batch, self._batch = self._batch, []
            self._last = time.monotonic()
            if batch:
                if self._dropped and self._backlog_bytes < MAX_BACKLOG // 2:
                    batch.insert(0, Info(CODEC.time(batch[0]), f"the live view fell behind: "
                                         f"{self._dropped:,} per-segment events were not shown", "warning"))
                    self._dropped = 0
                data = pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL)
                if self._backlog_bytes + len(data) > MAX_BACKLOG:
                    kept = [e for e in batch if not CODEC.bulk(e)]
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

    def close(self, timeout: float = FLUSH_TIMEOUT) -> None:
        """Flush everything, now waiting for the parent if need be (the download is over), ``timeout``
        seconds at most (a parent that reads no more gets no more). Later sends (pcap replies) wait too."""
        self._closed = True
        self._flush()
        self._drain(timeout)

    def _drain(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                self._write()
                if not self._backlog:
                    return
            left = deadline - time.monotonic()
            if left <= 0:
                with self._lock:
                    self._backlog.clear()
                    self._backlog_bytes = 0
                return
            try:
                select.select([], [self.fd], [], min(left, 0.1))
            except (OSError, ValueError):
                return
