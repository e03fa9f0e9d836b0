"""Every ending is clean: the terminal closes (SIGHUP), SIGTERM, a double Ctrl-C, q, an exception in the
app, the parent killed; for ``rawtui URL`` (live view and headless), ``rawtui demo`` and ``rawtui replay``.

Each program runs as the session leader of a pseudo-terminal of its own, as in a terminal window or an ssh
session: closing the pty's master is closing the window (the kernel hangs the terminal up and sends
SIGHUP); ``hangup-group`` also sends SIGHUP to the foreground process group, as a shell does when its
terminal closes. SIGINT is restored to its default first (a background job of a script starts with it
ignored: see /work/shared/LAB-NOTES.md).

After each ending: the process exited (generous timeouts: a busy CI machine is not a failure), none of its
processes is left (by pid and by session), no nft table, no namespace (``rawtui demo``), no partial or
temporary file in the working directory. A download is signalled mid-body: ``--stall`` stops reading after
1 MB, so the live view soon shows our zero window (``win=0``) and the server's socket holds unsent bytes
(``ss``), and the body cannot finish before the test acts. ``second-sigint-stuck`` stops the download
child (SIGSTOP) so that the first signal's clean end cannot finish: the second one must end the program.
The last tests need no lab: the forked child, the source thread's bounded wait, and a main thread
deadlocked on a lock (the app's state in the hang this file was written for) still ending on a signal.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import child_env, nft_tables

from rawtui.download.forked import ForkedSource
from rawtui.events import Info
from rawtui.lab.topology import Lab
from rawtui.views.tui.started import StartedSource

EXIT_TIMEOUT = 10.0  # seconds: the program promises 2 s; a busy machine must not fail the test for 3
START_TIMEOUT = 60.0

# Run argv as the session leader with the pty as controlling terminal and SIGINT at its default.
SESSION_LEADER = (
    "import fcntl, os, signal, sys, termios\n"
    "signal.signal(signal.SIGINT, signal.SIG_DFL)\n"
    "fcntl.ioctl(0, termios.TIOCSCTTY, 0)\n"
    "os.execvp(sys.argv[1], sys.argv[1:])\n"
)


class PtyProgram:
    """A program on a pseudo-terminal of its own (its session, its controlling terminal); the output is
    read all along (a terminal nobody reads would block the app)."""

    def __init__(self, argv: list[str], cwd: Path, env: dict[str, str]) -> None:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 35, 120, 0, 0))
        env = dict(env, TERM="xterm-256color", COLUMNS="120", LINES="35")
        self.proc = subprocess.Popen([sys.executable, "-c", SESSION_LEADER, *argv], stdin=slave, stdout=slave,
                                     stderr=slave, cwd=cwd, env=env, start_new_session=True)
        os.close(slave)
        self.pid = self.proc.pid
        self._master = master
        self._out = bytearray()
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        try:
            while not self._closing.is_set():
                if not select.select([self._master], [], [], 0.02)[0]:
                    continue
                try:
                    data = os.read(self._master, 65536)
                except OSError:
                    return
                if not data:
                    return
                with self._lock:
                    self._out += data
        finally:
            os.close(self._master)  # the last reference: the kernel hangs the terminal up

    def type(self, keys: bytes) -> None:
        os.write(self._master, keys)

    @property
    def output(self) -> bytes:
        with self._lock:
            return bytes(self._out)

    def hang_up(self) -> None:
        """Close the terminal (the master side): the session leader gets SIGHUP."""
        self._closing.set()
        self._reader.join(5)

    def wait(self, timeout: float = EXIT_TIMEOUT) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running {timeout} s after the ending: {describe(session_pids(self.pid))}\n"
                        f"--- terminal\n{printable(self.output)[-3000:]}", pytrace=False)

    def kill(self) -> None:
        for pid in session_pids(self.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(5)
        self.hang_up()


def printable(data: bytes) -> str:
    return re.sub(r"\x1b\[[0-9;?<>=]*[A-Za-z]", "", data.decode(errors="replace"))


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rfind(")") + 2 :].split()  # state, ppid, pgrp, session, ...


def alive(pid: int) -> bool:
    st = _stat(pid)
    return st is not None and st[0] not in ("Z", "X")


def session_pids(sid: int) -> list[int]:
    """Live processes of session ``sid`` (the program and whatever it started without a session of its own)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _stat(int(entry))
            if st is not None and st[0] not in ("Z", "X") and int(st[3]) == sid:
                pids.append(int(entry))
    return pids


def children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            out += [int(x) for x in Path(f"/proc/{pid}/task/{tid}/children").read_text().split()]
    except OSError:
        pass
    return out


def describe(pids: list[int]) -> str:
    parts = []
    for pid in pids:
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            wchan = Path(f"/proc/{pid}/wchan").read_text()
        except OSError:
            cmd, wchan = "?", "?"
        parts.append(f"{pid} [{wchan}] {cmd.strip()}")
    return "; ".join(parts) or "(none)"


def wait_for(condition: Callable[[], object], timeout: float, what: str, prog: PtyProgram | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if prog is not None and prog.proc.poll() is not None:
            pytest.fail(f"exited ({prog.proc.returncode}) before {what}:\n{printable(prog.output)[-3000:]}",
                        pytrace=False)
        if time.monotonic() > deadline:
            tail = printable(prog.output)[-3000:] if prog is not None else ""
            pytest.fail(f"{what} did not happen within {timeout} s\n{tail}", pytrace=False)
        time.sleep(0.02)  # polling for the condition, not a wait in place of one


def on_screen(prog: PtyProgram, pattern: str) -> Callable[[], bool]:
    return lambda: re.search(pattern, printable(prog.output)) is not None


def server_stalled(lab: Lab, port: int) -> Callable[[], bool]:
    """The server has a connection from the client with bytes it cannot send: our window is closed."""
    def check() -> bool:
        res = lab.run(lab.server_ns, ["ss", "-Htn", "state", "established", f"( sport = :{port} )"],
                      capture_output=True, text=True, timeout=20)
        peers = (f"{lab.client_ip}:", f"[::ffff:{lab.client_ip}]:")  # (a dual-stack server: IPv4-mapped)
        for line in res.stdout.splitlines():  # Recv-Q Send-Q Local Peer
            parts = line.split()
            if len(parts) >= 4 and parts[3].startswith(peers) and int(parts[1]) > 0:
                return True
        return False

    return check


def has_event(path: Path, kind: str) -> bool:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return False
    return f'"type":"{kind}"' in text


def stop(pid: int) -> None:
    """SIGSTOP ``pid`` and wait until it is stopped (a signal sent after that waits for it, pending)."""
    os.kill(pid, signal.SIGSTOP)
    wait_for(lambda: (_stat(pid) or ["?"])[0] == "T", EXIT_TIMEOUT, f"process {pid} stopped")


def pending(pid: int, sig: int) -> bool:
    """Whether ``sig`` waits, not yet delivered, for process ``pid`` (a stopped one, say)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    m = re.search(r"^ShdPnd:\s*([0-9a-f]+)$", status, re.MULTILINE)
    return m is not None and bool(int(m.group(1), 16) & (1 << (sig - 1)))


def end(prog: PtyProgram, how: str) -> None:
    """Do the ending ``how`` to the program (its pid is its process group and its session).

    ``second-sigint-stuck``: the clean end cannot finish (the download child is stopped: SIGSTOP), so the
    second Ctrl-C is what ends the program; the first is seen handled (the header says STOPPING) first.
    """
    if how == "hangup":
        prog.hang_up()
    elif how == "hangup-group":
        prog.hang_up()
        os.killpg(prog.pid, signal.SIGHUP)
    elif how == "sigterm":
        os.kill(prog.pid, signal.SIGTERM)
    elif how == "double-sigint":
        os.killpg(prog.pid, signal.SIGINT)
        os.killpg(prog.pid, signal.SIGINT)
    elif how == "second-sigint-stuck":
        (child,) = children(prog.pid)
        stop(child)
        os.killpg(prog.pid, signal.SIGINT)
        wait_for(on_screen(prog, " STOPPING "), EXIT_TIMEOUT, "the first SIGINT seen", prog)
        os.killpg(prog.pid, signal.SIGINT)
    elif how == "parent-killed":
        os.kill(prog.pid, signal.SIGKILL)
    else:
        raise AssertionError(how)


PART = {"out.bin.part", "out.bin.part.meta"}  # an interrupted download's body so far, kept for -C -


def assert_part_is_a_prefix(cwd: Path, served: Path) -> None:
    """What the interrupted download kept (if anything) is the start of the file, never under its name."""
    assert not (cwd / "out.bin").exists()
    part = cwd / "out.bin.part"
    if part.exists():
        data = part.read_bytes()
        with served.open("rb") as f:
            assert data == f.read(len(data)), "out.bin.part is not a prefix of the served file"


def assert_no_leftovers(prog: PtyProgram, pids: list[int], cwd: Path, kept: set[str]) -> None:
    deadline = time.monotonic() + EXIT_TIMEOUT
    while (left := [p for p in pids if alive(p)] + session_pids(prog.pid)) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not left, f"processes left: {describe(sorted(set(left)))}"
    names = {p.name for p in cwd.iterdir()}
    assert names <= kept, f"files left: {sorted(names - kept)}"


# ---------------------------------------------------------------------------------------------------
# the live view: rawtui URL


ENDINGS = ["hangup", "hangup-group", "sigterm", "double-sigint", "second-sigint-stuck", "parent-killed"]


@pytest.mark.lab
@pytest.mark.parametrize("how", ENDINGS)
def test_live_view_every_ending_is_clean(lab: Lab, pyserver: str, www: Any, tmp_path: Path, how: str) -> None:
    argv = lab.exec_argv(lab.client_ns, [sys.executable, "-m", "rawtui", f"{pyserver}/50m.bin", "-o", "out.bin",
                                         "--events", "ev.ndjson", "--stall", "1000000:300"])
    prog = PtyProgram(argv, tmp_path, child_env())
    try:
        wait_for(on_screen(prog, r"win=0 "), START_TIMEOUT, "the zero window of the stall", prog)
        wait_for(server_stalled(lab, 8080), START_TIMEOUT, "the stalled body", prog)
        assert any(name.startswith("rawtui_") for name in nft_tables(lab.client_ns))
        pids = [prog.pid, *children(prog.pid)]
        assert len(pids) == 2, describe(pids)  # the app and the download child (rawtui.download.forked)
        mark = len(prog.output)
        t0 = time.monotonic()
        end(prog, how)
        code = prog.wait()
        took = time.monotonic() - t0
        assert_no_leftovers(prog, pids, tmp_path, {"ev.ndjson", *PART})
        print(f"live view, {how}: exit {code} after {took:.2f} s; all gone after {time.monotonic() - t0:.2f} s")
    finally:
        if prog.proc.poll() is None:
            prog.kill()
        prog.hang_up()
    assert not [n for n in nft_tables(lab.client_ns) if n.startswith("rawtui_")]
    assert code == (-signal.SIGKILL if how == "parent-killed" else 130), printable(prog.output)[-2000:]
    assert took < EXIT_TIMEOUT
    assert_part_is_a_prefix(tmp_path, www.path("50m.bin"))
    if how == "sigterm":  # a clean end: the part file holds at least the stall's 1 MB
        assert (tmp_path / "out.bin.part").stat().st_size >= 1_000_000
    if how in ("sigterm", "double-sigint", "second-sigint-stuck"):  # the terminal is still there: put back
        assert b"\x1b[?1049l" in prog.output[mark:], "the alternate screen was not left"
    if how not in ("parent-killed", "second-sigint-stuck"):  # (a forced exit loses the log's buffered tail)
        types = [json.loads(line)["type"] for line in (tmp_path / "ev.ndjson").read_text().splitlines() if line]
        assert types[-1] == "error"  # "interrupted: the download was stopped before it finished"


# rawtui with the app's drain tick raising once a file named "boom" exists (as sys.argv says, via main())
RAISING_APP = (
    "import os, sys\n"
    "from rawtui.views.tui import app\n"
    "tick = app.RawtuiApp._tick\n"
    "def _tick(self):\n"
    "    if os.path.exists('boom'):\n"
    "        raise RuntimeError('boom: a bug in the view')\n"
    "    tick(self)\n"
    "app.RawtuiApp._tick = _tick\n"
    "from rawtui.cli import main\n"
    "sys.argv[0] = 'rawtui'\n"
    "sys.exit(main())\n"
)


@pytest.mark.lab
@pytest.mark.parametrize("how", ["q", "exception"])
def test_live_view_q_or_an_exception_in_the_app_is_clean(lab: Lab, pyserver: str, tmp_path: Path, how: str) -> None:
    args = [f"{pyserver}/50m.bin", "-o", "out.bin", "--events", "ev.ndjson", "--stall", "1000000:300"]
    head = [sys.executable, "-c", RAISING_APP] if how == "exception" else [sys.executable, "-m", "rawtui"]
    prog = PtyProgram(lab.exec_argv(lab.client_ns, [*head, *args]), tmp_path, child_env())
    try:
        wait_for(on_screen(prog, r"win=0 "), START_TIMEOUT, "the zero window of the stall", prog)
        wait_for(server_stalled(lab, 8080), START_TIMEOUT, "the stalled body", prog)
        pids = [prog.pid, *children(prog.pid)]
        mark = len(prog.output)
        t0 = time.monotonic()
        if how == "q":
            prog.type(b"q")
        else:
            (tmp_path / "boom").touch()
        code = prog.wait()
        assert_no_leftovers(prog, pids, tmp_path, {"ev.ndjson", "boom", *PART})
        print(f"live view, {how}: exit {code} after {time.monotonic() - t0:.2f} s")
    finally:
        if prog.proc.poll() is None:
            prog.kill()
        prog.hang_up()
    assert code == (130 if how == "q" else 1), printable(prog.output)[-2000:]
    assert not [n for n in nft_tables(lab.client_ns) if n.startswith("rawtui_")]
    assert b"\x1b[?1049l" in prog.output[mark:], "the alternate screen was not left"
    if how == "exception":
        assert "boom: a bug in the view" in printable(prog.output[mark:])  # Textual shows the traceback


@pytest.mark.lab
@pytest.mark.parametrize("how", ["hangup", "sigterm"])
def test_headless_on_a_terminal_every_ending_is_clean(lab: Lab, pyserver: str, tmp_path: Path, how: str) -> None:
    argv = lab.exec_argv(lab.client_ns, [sys.executable, "-m", "rawtui", "--headless", f"{pyserver}/50m.bin",
                                         "-o", "out.bin", "--events", "ev.ndjson", "--stall", "1000000:300"])
    prog = PtyProgram(argv, tmp_path, child_env())
    try:
        wait_for(server_stalled(lab, 8080), START_TIMEOUT, "the stalled body", prog)
        t0 = time.monotonic()
        end(prog, how)
        code = prog.wait()
        assert_no_leftovers(prog, [prog.pid], tmp_path, {"ev.ndjson", *PART})
        print(f"headless, {how}: exit {code} after {time.monotonic() - t0:.2f} s")
    finally:
        if prog.proc.poll() is None:
            prog.kill()
        prog.hang_up()
    assert code == 130
    assert not [n for n in nft_tables(lab.client_ns) if n.startswith("rawtui_")]


# ---------------------------------------------------------------------------------------------------
# rawtui demo: the lab goes too


def netns_list() -> set[str]:
    res = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True, timeout=20)
    return {line.split()[0] for line in res.stdout.splitlines() if line.strip()}


@pytest.mark.lab
@pytest.mark.parametrize("how", ["hangup", "hangup-group", "sigterm", "double-sigint", "second-sigint-stuck"])
def test_demo_every_ending_removes_the_lab(tmp_path: Path, how: str) -> None:
    # 40 MB at 2 Mbit/s: 168 s, longer than the two waits below may take (START_TIMEOUT each), so the ending
    # always comes mid-download (at 20 Mbit/s, a busy machine could show the live view after the end)
    argv = [sys.executable, "-m", "rawtui", "demo", "--size", "40M", "--rate", "2mbit", "--events", "ev.ndjson"]
    prog = PtyProgram(argv, tmp_path, child_env())
    try:
        wait_for(lambda: has_event(tmp_path / "ev.ndjson", "http_response"), START_TIMEOUT,
                 "the response's head", prog)
        wait_for(lambda: b"\x1b[?1049h" in prog.output, START_TIMEOUT, "the live view on the screen", prog)
        m = re.search(r"lab (rt[0-9a-f]{6}):", printable(prog.output))
        assert m, printable(prog.output)[-2000:]
        prefix = m.group(1)
        namespaces = {f"{prefix}-{r}" for r in "crs"}
        assert namespaces <= netns_list()
        in_lab = [pid for ns in sorted(namespaces) for pid in netns_pids(ns)]  # relay, server, rawtui and its child
        assert len(in_lab) >= 4, describe(in_lab)
        scratch = {Path(arg).parent for pid in in_lab for arg in cmdline(pid) if arg.endswith("control.sock")}
        assert scratch and all(d.name.startswith("rawtui-demo-") for d in scratch)
        mark = len(prog.output)
        t0 = time.monotonic()
        if how == "second-sigint-stuck":  # the download child does not end (stopped): the second one must
            view = next(pid for pid in in_lab if cmdline(pid)[1:3] == ["-m", "rawtui"] and _ppid(pid) == prog.pid)
            stop(view)
            os.kill(prog.pid, signal.SIGINT)
            wait_for(lambda: pending(view, signal.SIGTERM), EXIT_TIMEOUT, "the demo asking its child to end", prog)
            os.kill(prog.pid, signal.SIGINT)
        else:
            end(prog, how)
        code = prog.wait()
        took = time.monotonic() - t0
        assert_no_leftovers(prog, in_lab, tmp_path, {"ev.ndjson"})
        print(f"demo, {how}: exit {code} after {took:.2f} s; all gone after {time.monotonic() - t0:.2f} s")
    finally:
        if prog.proc.poll() is None:
            prog.kill()
        prog.hang_up()
    assert code == 130, printable(prog.output)[-2000:]
    assert not namespaces & netns_list(), "the lab's namespaces are still there"
    assert not Path(f"/run/rawtui-lab/{prefix}.pid").exists()
    assert not [d for d in scratch if d.exists()], "the demo's temporary directory is still there"
    if how in ("sigterm", "double-sigint"):  # the terminal is still there: the live view put it back
        assert b"\x1b[?1049l" in prog.output[mark:], "the alternate screen was not left"


def _ppid(pid: int) -> int:
    st = _stat(pid)
    return int(st[1]) if st is not None else 0


def netns_pids(ns: str) -> list[int]:
    res = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True, check=False, timeout=20)
    return [int(tok) for tok in res.stdout.split() if tok.isdigit()]


def cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


# ---------------------------------------------------------------------------------------------------
# rawtui replay


def test_replay_on_a_terminal_ends_when_the_terminal_closes(tmp_path: Path) -> None:
    recording = tmp_path / "long.ndjson"
    recording.write_text("".join(json.dumps({"t": float(i), "type": "info", "message": f"note {i}"}) + "\n"
                                 for i in range(600)))  # ten minutes of notes at --speed 1
    prog = PtyProgram([sys.executable, "-m", "rawtui", "replay", str(recording)], tmp_path, child_env())
    try:
        wait_for(lambda: b"\x1b[?1049h" in prog.output and b"note 1" in prog.output, START_TIMEOUT,
                 "the live view showing the replay", prog)
        t0 = time.monotonic()
        end(prog, "hangup")
        code = prog.wait()
        assert_no_leftovers(prog, [prog.pid], tmp_path, {"long.ndjson"})
        print(f"replay, hangup: exit {code} after {time.monotonic() - t0:.2f} s")
    finally:
        if prog.proc.poll() is None:
            prog.kill()
        prog.hang_up()
    assert code == 130


# ---------------------------------------------------------------------------------------------------
# the pieces, without a lab: no wait can outlive its bound


class _Waits:
    """A source for the forked child: says it started, then waits for ``stop`` (or ignores it)."""

    def __init__(self, ignore_stop: bool = False) -> None:
        self.ignore_stop = ignore_stop

    def run(self, emit, stop) -> int:
        emit(Info(0.0, "started"))
        if self.ignore_stop:
            time.sleep(60)  # a source stuck in something that never looks at stop
            return 99
        if not stop.wait(30):
            return 99
        emit(Info(1.0, "stopped"))
        return 130


def _first_event(src: ForkedSource) -> tuple[list, threading.Thread, threading.Event]:
    got: list = []
    stop = threading.Event()
    t = threading.Thread(target=lambda: got.append(src.run(got.append, stop)), daemon=True)
    t.start()
    wait_for(lambda: bool(got), EXIT_TIMEOUT, "the child's first event")
    return got, t, stop


def test_forked_child_ignores_the_terminals_signals_and_ends_cleanly_on_sigterm() -> None:
    src = ForkedSource(_Waits())
    got, t, _ = _first_event(src)
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):  # the first two are the parent's to handle
        os.kill(src.pid, sig)
    t.join(EXIT_TIMEOUT)
    assert not t.is_alive()
    assert [e.message for e in got[:-1]] == ["started", "stopped"] and got[-1] == 130  # a clean stop
    assert src.close() == 130


def test_forked_close_ends_a_stuck_child_in_bounded_time() -> None:
    src = ForkedSource(_Waits(ignore_stop=True))
    _first_event(src)
    t0 = time.monotonic()
    assert src.close(timeout=0.5) == 128 + signal.SIGKILL
    assert time.monotonic() - t0 < EXIT_TIMEOUT
    assert not alive(src.pid)


def test_started_source_wait_is_bounded_after_a_stop() -> None:
    class Stuck:
        def run(self, emit, stop) -> int:
            time.sleep(60)
            return 0

    started = StartedSource(Stuck())
    started.STOP_WAIT = 0.2
    started.stop_event.set()
    t0 = time.monotonic()
    assert started.run(started.queue.append, started.stop_event) == 130
    assert time.monotonic() - t0 < EXIT_TIMEOUT


# A main thread deadlocked on a lock (as the app was in Queue.put, its writer thread dead): a signal's
# handler runs between retries of the lock and returns, so only the watcher's deadline can end it.
DEADLOCKED = (
    "import sys, threading\n"
    "from rawtui.cli import Endings\n"
    "with Endings():\n"
    "    lock = threading.Lock()\n"
    "    lock.acquire()\n"
    "    print('ready', flush=True)\n"
    "    lock.acquire()\n"
)


@pytest.mark.parametrize("signals", [[signal.SIGTERM], [signal.SIGINT, signal.SIGINT], [signal.SIGHUP]])
def test_a_deadlocked_main_thread_still_ends_on_a_signal(signals: list[int]) -> None:
    # (Endings handles SIGINT even when it starts ignored, as in a background job of a script)
    proc = subprocess.Popen([sys.executable, "-c", DEADLOCKED], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=child_env(), start_new_session=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        for sig in signals:
            os.kill(proc.pid, sig)
            # the next only once this one was delivered (the kernel merges a pending pair)
            wait_for(lambda s=sig: not pending(proc.pid, s), EXIT_TIMEOUT, "the signal delivered")
        assert proc.wait(EXIT_TIMEOUT) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
