"""The lab's side channel: JSON lines on a unix-domain stream socket (a path, so it works across the lab's
network namespaces), served by the impairment relay on the router.

Who talks on it:

- the relay (:class:`ControlHub`, in ``rawtui.lab.impair``) applies knob changes and broadcasts the
  knobs' state (``{"type": "knobs", "down": {...}, "up": {...}, "note": "..."}``) and its counters
  (``{"type": "stats", "down": {...}, "up": {...}}``, every 0.25 s while they change), and reports each
  thing it does to a TCP frame as it happens (``router_action``, below);
- the lab HTTP server (``python -m rawtui.lab.server --report PATH``) publishes TCP_INFO samples of its
  connections (``{"type": "tcp_info", ...}``) every ~10 ms while it sends;
- ``rawtui demo`` announces the scenario (``{"cmd": "announce", "scenario": {...}}``) and sets knobs;
- rawtui itself (:class:`LabChannel`, ``--lab-control PATH``) subscribes and turns what it hears into
  events (:class:`~rawtui.events.ServerTcpInfo`, ``LabKnobs``, ``LabStats``, ``LabScenario``,
  ``RouterAction``);
- the live view changes knobs from its own thread with :class:`LabControl`.

Commands (one JSON object per line; an ``"id"`` is echoed in the reply)::

    {"cmd": "set", "dir": "down"|"up"|"both", "loss": 2.0, "delay_ms": 40, "jitter_ms": 5,
     "rate_bps": 20000000, "queue": 50, "reorder": 1, "dup": 1, "corrupt": 0.5}
    {"cmd": "blackout", "seconds": 3, "dir": "both"}
    {"cmd": "arm", "dir": "down"|"up", "after_bytes": 1048576, "then": {"cmd": "blackout", ...}}
            (run ``then`` once that many more bytes of frames have entered that direction's pipe)
    {"cmd": "reset"}        {"cmd": "state"}        {"cmd": "subscribe"}
    {"cmd": "delays", "dir": "down"|"up"|"both", "clear": true}   (the delay chosen for each recent frame)
    {"cmd": "seed", "seed": 7}   (restart the relay's random choices: the same seed, the same drops again)
    {"cmd": "announce", "scenario": {"name": ..., "title": ..., "explanation": ..., "look_for": ...}}

Replies: ``{"type": "reply", "id": ..., "ok": true, "knobs": {...}}`` or ``{"ok": false, "error": "..."}``.
Any line with a ``"type"`` and no ``"cmd"`` is a publication: it is passed on to every subscriber.

The router's actions, one publication per TCP frame it dropped, duplicated, held back or corrupted (sent
in a batch each turn of the relay's loop, always before the ``stats`` that count them)::

    {"type": "router_action", "direction": "down", "action": "drop", "seq": 1234567, "length": 1448,
     "flags": "A", "sport": 8080, "dport": 40001, "router_t": 5123.456789, "note": "loss 1 %",
     "absolute": false}

``action`` is one of ``drop`` (random loss), ``blackout``, ``queue-drop`` (the bottleneck queue was
full), ``duplicate``, ``reorder`` (held back behind later frames) or ``corrupt``; ``seq`` is relative to
the sender's ISN when the relay forwarded the connection's SYN (else ``absolute``), ``router_t`` the relay's
monotonic clock. Delaying a frame is not reported frame by frame (every frame is delayed by the knob):
``delays`` returns the delay chosen for each recent frame.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import select
import socket
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import fields
from typing import Any, Self

from rawtui.events import Event, Info, LabKnobs, LabScenario, LabStats, RouterAction, ServerTcpInfo

__all__ = ["ControlError", "ControlHub", "LabChannel", "LabControl", "Subscription", "message_to_event"]

MAX_LINE = 1 << 16  # longer lines close the connection
MAX_BACKLOG = 4 << 20  # bytes queued for a slow subscriber before its messages are dropped
_dumps = json.JSONEncoder(separators=(",", ":")).encode


class ControlError(RuntimeError):
    """The control socket cannot be reached, or a command was refused; the message says which."""


def _encode(msg: dict[str, Any]) -> bytes:
    return _dumps(msg).encode() + b"\n"


# ---------------------------------------------------------------------------------------------------
# server side


class _Conn:
    __slots__ = ("dropped", "inbuf", "outbuf", "sock", "subscriber")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        self.subscriber = False
        self.dropped = 0


class ControlHub:
    """A non-blocking JSON-lines server for a select() loop someone else runs (the relay's).

    Call :meth:`fds` / :meth:`wfds` for the descriptors to watch and :meth:`handle` / :meth:`handle_write`
    when one is ready. ``on_command(msg) -> dict`` applies a command and returns the reply's fields (raise
    ``ValueError`` or a ``RuntimeError`` subclass to refuse it). Never blocks on a slow client.
    """

    def __init__(self, path: str, on_command: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        self.path = path
        self._on_command = on_command
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISSOCK(os.lstat(path).st_mode):
                os.unlink(path)
        self._listen = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o077)  # only the owner (root) may turn the knobs
        try:
            self._listen.bind(path)
        finally:
            os.umask(old_umask)
        self._listen.listen(16)
        self._listen.setblocking(False)
        self._conns: dict[int, _Conn] = {}
        self._knobs: dict[str, Any] | None = None
        self._scenario: dict[str, Any] | None = None

    def fds(self) -> list[int]:
        return [self._listen.fileno(), *self._conns]

    def wfds(self) -> list[int]:
        return [fd for fd, c in self._conns.items() if c.outbuf]

    def handle(self, fd: int) -> None:
        if fd == self._listen.fileno():
            self._accept()
            return
        conn = self._conns.get(fd)
        if conn is None:
            return
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(fd)
            return
        if not data:
            self._drop(fd)
            return
        conn.inbuf += data
        while True:
            nl = conn.inbuf.find(b"\n")
            if nl < 0:
                if len(conn.inbuf) > MAX_LINE:
                    self._drop(fd)
                return
            line = bytes(conn.inbuf[:nl])
            del conn.inbuf[: nl + 1]
            if line.strip():
                self._message(conn, line)
            if fd not in self._conns:
                return

    def handle_write(self, fd: int) -> None:
        conn = self._conns.get(fd)
        if conn is not None:
            self._flush(conn)

    def publish(self, msg: dict[str, Any]) -> None:
        """Send ``msg`` to every subscriber."""
        data = _encode(msg)
        for conn in list(self._conns.values()):
            if conn.subscriber:
                self._queue(conn, data)

    def publish_many(self, msgs: list[dict[str, Any]]) -> None:
        """Send ``msgs`` to every subscriber, in order, as one write each (the relay's batch of reports)."""
        data = b"".join(_encode(m) for m in msgs)
        for conn in list(self._conns.values()):
            if conn.subscriber:
                self._queue(conn, data)

    def set_knobs(self, msg: dict[str, Any]) -> None:
        """Remember the knobs' state (sent to each new subscriber) and publish it."""
        self._knobs = msg
        self.publish(msg)

    def close(self) -> None:
        for fd in list(self._conns):
            self._drop(fd)
        self._listen.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)

    # -- internals --------------------------------------------------------------------------------

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._listen.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            sock.setblocking(False)
            self._conns[sock.fileno()] = _Conn(sock)

    def _drop(self, fd: int) -> None:
        conn = self._conns.pop(fd, None)
        if conn is not None:
            conn.sock.close()

    def _queue(self, conn: _Conn, data: bytes) -> None:
        if len(conn.outbuf) + len(data) > MAX_BACKLOG:
            conn.dropped += 1  # a subscriber that does not read loses messages, never stalls the relay
            return
        conn.outbuf += data
        self._flush(conn)

    def _flush(self, conn: _Conn) -> None:
        while conn.outbuf:
            try:
                n = conn.sock.send(conn.outbuf)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self._drop(conn.sock.fileno())
                return
            del conn.outbuf[:n]

    def _reply(self, conn: _Conn, msg: dict[str, Any], fields_: dict[str, Any]) -> None:
        reply: dict[str, Any] = {"type": "reply"}
        if "id" in msg:
            reply["id"] = msg["id"]
        reply.update(fields_)
        self._queue(conn, _encode(reply))

    def _message(self, conn: _Conn, line: bytes) -> None:
        try:
            msg = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            self._reply(conn, {}, {"ok": False, "error": "not a JSON object"})
            return
        if not isinstance(msg, dict):
            self._reply(conn, {}, {"ok": False, "error": "not a JSON object"})
            return
        cmd = msg.get("cmd")
        if cmd is None:
            if isinstance(msg.get("type"), str) and msg["type"] != "reply":
                self.publish(msg)
            return
        if cmd == "subscribe":
            conn.subscriber = True
            self._reply(conn, msg, {"ok": True})
            if self._scenario is not None:
                self._queue(conn, _encode(self._scenario))
            if self._knobs is not None:
                self._queue(conn, _encode(self._knobs))
            return
        if cmd == "announce":
            scenario = msg.get("scenario")
            if not isinstance(scenario, dict):
                self._reply(conn, msg, {"ok": False, "error": "announce: 'scenario' must be an object"})
                return
            self._scenario = {"type": "scenario", **scenario}
            self.publish(self._scenario)
            self._reply(conn, msg, {"ok": True})
            return
        if cmd == "ping":
            self._reply(conn, msg, {"ok": True})
            return
        try:
            result = self._on_command(msg)
        except (ValueError, TypeError, RuntimeError) as exc:
            self._reply(conn, msg, {"ok": False, "error": str(exc)})
            return
        self._reply(conn, msg, {"ok": True, **result})


# ---------------------------------------------------------------------------------------------------
# client side


def _connect(path: str, timeout: float) -> socket.socket:
    """Connect to the control socket, retrying while it does not exist yet (up to ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            sock.connect(path)
            return sock
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            sock.close()
            if time.monotonic() >= deadline:
                raise ControlError(f"no lab control socket at {path}: {exc.strerror}") from None
            time.sleep(0.05)
        except OSError as exc:
            sock.close()
            raise ControlError(f"cannot connect to the lab control socket {path}: {exc.strerror}") from None


_TCP_INFO_FIELDS = {f.name for f in fields(ServerTcpInfo)} - {"t"}
_ROUTER_ACTION_FIELDS = {f.name for f in fields(RouterAction)} - {"t"}


def message_to_event(msg: dict[str, Any], t: float) -> Event | None:
    """The event for one message from the control socket (None for messages rawtui does not show)."""
    kind = msg.get("type")
    try:
        if kind == "router_action":
            return RouterAction(t, **{k: v for k, v in msg.items() if k in _ROUTER_ACTION_FIELDS})
        if kind == "tcp_info":
            return ServerTcpInfo(t, **{k: v for k, v in msg.items() if k in _TCP_INFO_FIELDS})
        if kind == "knobs":
            return LabKnobs(t, dict(msg.get("down") or {}), dict(msg.get("up") or {}), str(msg.get("note", "")))
        if kind == "stats":
            return LabStats(t, dict(msg.get("down") or {}), dict(msg.get("up") or {}))
        if kind == "scenario":
            return LabScenario(t, str(msg.get("name", "")), str(msg.get("title", "")),
                               str(msg.get("explanation", "")), str(msg.get("look_for", "")))
        if kind == "reply" and msg.get("ok") is False:
            return Info(t, f"lab: {msg.get('error', 'command refused')}", "warning")
    except TypeError:  # a message from a newer/older lab with fields we do not know how to fill
        return Info(t, f"lab: could not read a {kind!r} message", "warning")
    return None


class LabChannel:
    """rawtui's end of the side channel: subscribes, and turns messages into events.

    Made for the session's select() loop: watch :meth:`fileno`, call :meth:`poll` when it is readable.
    Never raises after construction and never makes the loop spin: if the lab goes away, the channel
    reports it once (an Info event) and goes quiet. :meth:`send` may be called from another thread.
    """

    def __init__(self, path: str, connect_timeout: float = 2.0) -> None:
        self.path = path
        self._sock: socket.socket | None = None
        self._buf = bytearray()
        self._pending: list[Event] = []
        self._lock = threading.Lock()
        self._extra_fd = -1
        # A pipe nobody writes to after the first wake-up byte: what fileno() means once the lab is gone.
        self._quiet_r, self._quiet_w = os.pipe()
        os.set_blocking(self._quiet_r, False)
        try:
            sock = _connect(path, connect_timeout)
            sock.settimeout(connect_timeout)
            sock.sendall(_encode({"cmd": "subscribe"}))
            # Wait for the hub's reply (read byte by byte: what follows it stays in the socket, so the
            # caller's select sees it): from then on no publication is missed, e.g. the router's
            # report on the first frame of the connection rawtui is about to open.
            with contextlib.suppress(TimeoutError):
                while (b := sock.recv(1)) != b"\n":
                    if not b:
                        raise ControlError("the lab control socket closed")
            sock.setblocking(False)
            self._sock = sock
            self._fd = sock.fileno()
        except (ControlError, OSError) as exc:
            self._fd = self._quiet_r
            self._pending.append(Info(0.0, f"lab control channel unavailable: {exc}", "warning"))
            os.write(self._quiet_w, b"!")

    def fileno(self) -> int:
        return self._fd

    def poll(self, now: float) -> list[Event]:
        """Read what has arrived; return it as events stamped ``now``."""
        out: list[Event] = []
        if self._pending:
            for pending in self._pending:
                pending.t = now
            out, self._pending = self._pending, []
            with contextlib.suppress(BlockingIOError):
                os.read(self._quiet_r, 64)
        sock = self._sock
        if sock is None:
            return out
        closed = False
        while True:
            try:
                data = sock.recv(1 << 16)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                closed = True
                break
            if not data:
                closed = True
                break
            self._buf += data
        buf = self._buf
        start = 0
        while True:
            nl = buf.find(b"\n", start)
            if nl < 0:
                break
            line = bytes(buf[start:nl])
            start = nl + 1
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if isinstance(msg, dict):
                ev = message_to_event(msg, now)
                if ev is not None:
                    out.append(ev)
        del buf[:start]
        if closed:
            out.append(Info(now, "lab control channel closed: no more server TCP_INFO or knob updates",
                            "warning"))
            self._go_quiet()
        return out

    def final_report(self, now: float, timeout: float = 1.0) -> list[Event]:
        """What is still queued on the channel, then the router's counters as they are now (a ``state``
        request on a connection of its own): the summary's router count is then the relay's last word,
        not its last 0.25 s broadcast. Never raises; empty when the lab is gone."""
        out = self.poll(now)
        if self._sock is None:
            return out
        try:
            with LabControl(self.path, timeout=timeout, connect_timeout=timeout) as ctl:
                stats = ctl.state().get("stats") or {}
        except (ControlError, OSError, ValueError):
            return out
        out += self.poll(now)  # router reports published before the state reply
        ev = message_to_event({"type": "stats", **stats}, now)
        if ev is not None:
            out.append(ev)
        return out

    def send(self, cmd: dict[str, Any]) -> None:
        """Send a command (e.g. ``{"cmd": "set", "dir": "down", "loss": 2}``); its reply, if it is an error,
        comes back through :meth:`poll` as an Info warning. Silently dropped when the lab is gone."""
        with self._lock:
            sock = self._sock
            if sock is None:
                return
            view = memoryview(_encode(cmd))
            deadline = time.monotonic() + 1.0
            # the socket stays non-blocking: the session thread may be reading it at this very moment
            while view:
                try:
                    view = view[sock.send(view) :]
                except (BlockingIOError, InterruptedError):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return
                    select.select([], [sock], [], left)
                except OSError:
                    return

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None
            for fd in (self._quiet_r, self._quiet_w, self._extra_fd):
                if fd >= 0:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            self._quiet_r = self._quiet_w = self._extra_fd = -1

    def _go_quiet(self) -> None:
        """Keep the fd number the caller watches, but make it a pipe that never becomes readable."""
        with self._lock:
            sock = self._sock
            if sock is None:
                return
            fd = sock.detach()
            os.dup2(self._quiet_r, fd)  # the watched number now means the silent pipe; closed in close()
            self._extra_fd = fd
            self._sock = None


class LabControl:
    """Request/response client for turning the lab's knobs, safe to call from any thread (e.g. the TUI's).

    >>> lab = LabControl("/tmp/rawtui-demo-xyz/control.sock")
    >>> lab.set("down", loss=2, delay_ms=40)      # returns the new knob state of both directions
    >>> lab.blackout(3)                           # both directions, 3 seconds, starting now
    >>> lab.state()["stats"]["down"]["lost"]
    """

    def __init__(self, path: str, timeout: float = 5.0, connect_timeout: float = 2.0) -> None:
        self.path = path
        self.timeout = timeout
        self._sock = _connect(path, connect_timeout)
        self._sock.settimeout(timeout)
        self._buf = bytearray()
        self._lock = threading.Lock()
        self._next_id = 0

    def request(self, cmd: dict[str, Any]) -> dict[str, Any]:
        """Send one command, wait for its reply; ControlError if refused or if no reply comes."""
        with self._lock:
            self._next_id += 1
            rid = self._next_id
            try:
                self._sock.sendall(_encode({**cmd, "id": rid}))
                deadline = time.monotonic() + self.timeout
                while True:
                    nl = self._buf.find(b"\n")
                    if nl >= 0:
                        line = bytes(self._buf[:nl])
                        del self._buf[: nl + 1]
                        msg = json.loads(line)
                        if isinstance(msg, dict) and msg.get("type") == "reply" and msg.get("id") == rid:
                            break
                        continue
                    if time.monotonic() > deadline:
                        raise ControlError(f"no reply from the lab to {cmd.get('cmd')!r}")
                    data = self._sock.recv(1 << 16)
                    if not data:
                        raise ControlError("the lab control socket closed")
                    self._buf += data
            except TimeoutError:
                raise ControlError(f"no reply from the lab to {cmd.get('cmd')!r}") from None
            except OSError as exc:
                if exc.errno in (errno.EPIPE, errno.ECONNRESET):
                    raise ControlError("the lab control socket closed") from None
                raise ControlError(f"lab control socket: {exc.strerror or exc}") from None
        if not msg.get("ok"):
            raise ControlError(str(msg.get("error", "command refused")))
        return msg

    def set(self, dir: str = "down", note: str | None = None, **knobs: float) -> dict[str, Any]:
        """Change knobs (names: see ``rawtui.lab.impair.KNOB_NAMES``) for ``dir`` = down, up or both.
        Returns ``{"down": {...}, "up": {...}}``, the state after the change."""
        cmd: dict[str, Any] = {"cmd": "set", "dir": dir, **knobs}
        if note:
            cmd["note"] = note
        return dict(self.request(cmd)["knobs"])

    def blackout(self, seconds: float, dir: str = "both") -> dict[str, Any]:
        """Drop every frame (in ``dir``) for ``seconds``, starting now; 0 ends a blackout early."""
        return dict(self.request({"cmd": "blackout", "seconds": seconds, "dir": dir})["knobs"])

    def reset(self) -> dict[str, Any]:
        """Every knob back to a perfect link."""
        return dict(self.request({"cmd": "reset"})["knobs"])

    def state(self) -> dict[str, Any]:
        """``{"knobs": {"down": ..., "up": ...}, "stats": {"down": ..., "up": ...}}``."""
        msg = self.request({"cmd": "state"})
        return {"knobs": msg["knobs"], "stats": msg["stats"]}

    def delays(self, dir: str = "both", clear: bool = False) -> dict[str, list[float]]:
        """The delay (ms) the relay chose for each frame it delayed lately (``rawtui.lab.impair.DELAY_LOG``
        per direction), oldest first: ``{"down": [...], "up": [...]}``; ``clear`` starts a new record."""
        return dict(self.request({"cmd": "delays", "dir": dir, "clear": clear})["delays"])

    def seed(self, seed: int) -> None:
        """Restart the relay's random choices from ``seed``: the frames that follow meet the same drops (and
        jitter, corruption...) as after any other ``seed(seed)`` with the same knobs."""
        self.request({"cmd": "seed", "seed": seed})

    def announce(self, scenario: dict[str, Any]) -> None:
        """Tell every subscriber (now and later) which scenario runs and what to look for."""
        self.request({"cmd": "announce", "scenario": scenario})

    def close(self) -> None:
        with self._lock:
            self._sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Subscription:
    """A blocking subscriber for scripts and the demo: read the raw messages (dicts) one by one."""

    def __init__(self, path: str, connect_timeout: float = 2.0) -> None:
        self._sock = _connect(path, connect_timeout)
        self._sock.settimeout(None)
        self._sock.sendall(_encode({"cmd": "subscribe"}))
        self._buf = bytearray()
        self.closed = False

    def next(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The next message, or None on timeout or once the socket has closed (then :attr:`closed`)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            nl = self._buf.find(b"\n")
            if nl >= 0:
                line = bytes(self._buf[:nl])
                del self._buf[: nl + 1]
                try:
                    msg = json.loads(line)
                except ValueError:
                    continue
                if isinstance(msg, dict):
                    return msg
                continue
            if self.closed:
                return None
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return None
            self._sock.settimeout(left)
            try:
                data = self._sock.recv(1 << 16)
            except TimeoutError:
                return None
            except OSError:
                data = b""
            if not data:
                self.closed = True
                return None
            self._buf += data

    def close(self) -> None:
        self._sock.close()
