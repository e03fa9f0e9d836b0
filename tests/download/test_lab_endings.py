"""Endings that must be clean: the server dies, resets or goes silent mid-body; the disk fills up; the
directory is read-only. Each one: a clear one-line error, the right exit code, no file under the final
name (and no partial file left), the firewall table removed. (SIGTERM, Ctrl-C and kill -9 of rawtui itself
are in test_lab_signals.py.)

The server here is a few lines of Python sockets in the server namespace, so each test decides exactly
when the body stops: it sends the head (Content-Length: 50 MiB) and the first 2 MiB, prints ``mid``, then
holds still until the test acts (SIGKILL, SIGSTOP, an nft reject rule) or does what its mode says.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab

REPO = str(Path(__file__).resolve().parents[2])
TOTAL = 50 << 20
FIRST = 2 << 20
_ports = itertools.count(9300)

SERVER = r"""
import socket, struct, sys, time
port, mode, total, first = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("0.0.0.0", port))
ls.listen(4)
print("ready", flush=True)
c, _ = ls.accept()
req = b""
while b"\r\n\r\n" not in req:
    d = c.recv(65536)
    if not d:
        sys.exit(0)
    req += d
if mode == "linger0":  # a close (or death) with a RST instead of a FIN
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nContent-Type: application/octet-stream\r\n\r\n" % total)
block = bytes(range(256)) * 256
sent = 0
def send(upto, pause=0.0):
    global sent
    while sent < upto:
        n = min(len(block), upto - sent)
        c.sendall(block[:n])
        sent += n
        if pause:
            time.sleep(pause)
send(first)
print("mid", sent, flush=True)
if mode == "trickle":  # keep sending slowly (so the client keeps ACKing) until told otherwise
    try:
        send(total, pause=0.01)
    except OSError as e:
        print("send failed:", e, flush=True)
time.sleep(3600)
"""


def nft_tables(lab, ns: str | None = None) -> str:
    return lab.run(ns or lab.client_ns, ["nft", "list", "tables"], capture_output=True, text=True).stdout


def env() -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("SUDO_")}
    e["PYTHONPATH"] = REPO
    return e


class Server:
    def __init__(self, lab, mode: str = "hold") -> None:
        self.lab = lab
        self.port = next(_ports)
        self.proc = lab.popen(lab.server_ns, [sys.executable, "-c", SERVER, str(self.port), mode, str(TOTAL),
                                              str(FIRST)], stdout=subprocess.PIPE, text=True, env=env())
        assert self.readline(10) == "ready"
        self.url = f"http://{lab.server_ip}:{self.port}/big.bin"

    def readline(self, timeout: float) -> str:
        import selectors

        assert self.proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            if not sel.select(timeout):
                return f"(nothing within {timeout} s)"
        return self.proc.stdout.readline().strip()

    def wait_mid(self) -> None:
        line = self.readline(20)
        assert line.startswith("mid"), line
        time.sleep(0.3)  # the first 2 MiB reach the client

    def stop(self) -> None:
        try:
            os.kill(self.proc.pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
        self.lab.stop(self.proc)


@pytest.fixture
def server(lab):
    made: list[Server] = []

    def make(mode: str = "hold") -> Server:
        s = Server(lab, mode)
        made.append(s)
        return s

    yield make
    for s in made:
        s.stop()


def start_rawtui(lab, url: str, cwd: Path, *extra: str, tui: bool = False) -> subprocess.Popen:
    view = ["--tui-headless"] if tui else ["--headless", "-q"]
    argv = [sys.executable, "-m", "rawtui", *view, "-o", "out.bin", "--events", "ev.ndjson", *extra, url]
    return lab.popen(lab.client_ns, argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                     env=env())


def finish(proc: subprocess.Popen, timeout: float = 30) -> tuple[int, str]:
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err


def events(cwd: Path) -> list[dict]:
    return [json.loads(line) for line in (cwd / "ev.ndjson").read_text().splitlines() if line.strip()]


def assert_clean(lab, cwd: Path, code: int, err: str, want_code: int, *words: str) -> None:
    assert code == want_code, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("rawtui: error: "), err
    for w in words:
        assert w in last, (w, last)
    assert "Traceback" not in err
    # no out.bin; what came before the connection broke is kept in out.bin.part for -C -, and said
    names = {p.name for p in cwd.iterdir()}
    assert names - {"out.bin.part", "out.bin.part.meta"} == {"ev.ndjson"}, names
    assert ("out.bin.part" in names) == ("bytes kept in out.bin.part" in last), (names, last)
    assert "rawtui_" not in nft_tables(lab)
    evs = events(cwd)
    assert evs[-1]["type"] == "error" and evs[-1]["exit_code"] == want_code
    assert not any(e["type"] == "done" for e in evs)


@pytest.mark.parametrize("tui", [False, True], ids=["headless", "tui"])
def test_server_killed_mid_body_is_a_truncated_body(lab, server, tmp_path, tui):
    """SIGKILL: the server's kernel closes with a FIN after what it had queued: exit 6, truncated."""
    srv = server()
    proc = start_rawtui(lab, srv.url, tmp_path, tui=tui)
    srv.wait_mid()
    os.kill(srv.proc.pid, signal.SIGKILL)
    code, err = finish(proc)
    assert_clean(lab, tmp_path, code, err, 6, "closed the connection after", f"of {TOTAL}", "truncated")


def test_server_killed_with_a_reset_mid_body(lab, server, tmp_path):
    """SO_LINGER 0 then SIGKILL: the kernel sends a RST instead of a FIN: exit 5, reset."""
    srv = server("linger0")
    proc = start_rawtui(lab, srv.url, tmp_path)
    srv.wait_mid()
    os.kill(srv.proc.pid, signal.SIGKILL)
    code, err = finish(proc)
    assert_clean(lab, tmp_path, code, err, 5, "connection reset by peer")


def test_reset_injected_by_the_server_firewall_mid_body(lab, server, tmp_path):
    """An nft rule in the server namespace answers the client's ACKs with RSTs (reject with tcp reset)
    while the server keeps sending: RSTs not at rcv.nxt only get challenge ACKs, the one that is exact
    resets: exit 5."""
    srv = server("trickle")
    proc = start_rawtui(lab, srv.url, tmp_path)
    srv.wait_mid()
    rule = (f"table inet rtreject {{ chain input {{ type filter hook input priority 0; policy accept; "
            f"ip saddr {lab.client_ip} tcp dport {srv.port} reject with tcp reset; }}; }}")
    r = lab.run(lab.server_ns, ["nft", rule], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    try:
        code, err = finish(proc)
    finally:
        lab.run(lab.server_ns, ["nft", "delete", "table", "inet", "rtreject"], capture_output=True)
    assert_clean(lab, tmp_path, code, err, 5, "connection reset by peer")
    rsts = [e for e in events(tmp_path) if e["type"] == "segment_in" and "R" in e["flags"]]
    assert rsts and rsts[-1]["note"] == "reset"


@pytest.mark.parametrize("how", ["sigstop", "silent"])
def test_server_stops_sending_is_an_idle_timeout(lab, server, tmp_path, how):
    """The server stops (SIGSTOP) or just stops writing: --timeout 2 ends it: exit 5, timed out."""
    srv = server()
    proc = start_rawtui(lab, srv.url, tmp_path, "--timeout", "2")
    srv.wait_mid()
    if how == "sigstop":
        os.kill(srv.proc.pid, signal.SIGSTOP)
    t0 = time.monotonic()
    code, err = finish(proc)
    waited = time.monotonic() - t0
    assert_clean(lab, tmp_path, code, err, 5, "timed out: nothing received from", "for 2 s")
    assert 1.2 < waited < 10


FULL_DISK = r"""
d=$1; shift
mount -t tmpfs -o size=1m rawtui-full "$d"
set +e
"$@"
rc=$?
echo "left in the directory: [$(ls -A "$d")]" >&2
exit $rc
"""

READ_ONLY = r"""
d=$1; shift
mount --bind "$d" "$d"
mount -o remount,bind,ro "$d"
exec "$@"
"""


def in_private_mounts(lab, script: str, directory: Path, argv: list[str], cwd: Path):
    """Run argv in the client namespace inside a private mount namespace prepared by script (the mounts
    vanish with the process)."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is missing")
    wrapped = ["unshare", "-m", "--propagation", "private", "sh", "-ec", script, "sh", str(directory), *argv]
    return lab.run(lab.client_ns, wrapped, cwd=cwd, capture_output=True, text=True, timeout=120, env=env())


@pytest.mark.parametrize("tui", [False, True], ids=["headless", "tui"])
def test_disk_full_is_exit_7_and_nothing_half_written(lab, pyserver, tmp_path, tui):
    """50 MiB into a 1 MiB tmpfs: the writer thread meets ENOSPC, the session stops: exit 7 "the disk is
    full", nothing under the final name; what fitted is kept in big.bin.part for -C - once there is room."""
    small = tmp_path / "small"
    small.mkdir()
    view = ["--tui-headless"] if tui else ["--headless", "-q"]
    argv = [sys.executable, "-m", "rawtui", *view, "-o", str(small / "big.bin"), "--events", "ev.ndjson",
            f"{pyserver}/50m.bin"]
    r = in_private_mounts(lab, FULL_DISK, small, argv, tmp_path)
    assert r.returncode == 7, r.stderr
    assert "rawtui: error: cannot write " in r.stderr and "the disk is full" in r.stderr
    left = r.stderr.split("left in the directory: [", 1)[1].split("]", 1)[0].split()
    assert set(left) <= {"big.bin.part", "big.bin.part.meta"}, left
    assert "Traceback" not in r.stderr
    assert "rawtui_" not in nft_tables(lab)
    assert events(tmp_path)[-1]["type"] == "error"


def test_read_only_directory_is_exit_7_before_any_packet(lab, pyserver, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    argv = [sys.executable, "-m", "rawtui", "--headless", "-q", "-o", str(ro / "x.bin"), "--events", "ev.ndjson",
            f"{pyserver}/1m.bin"]
    r = in_private_mounts(lab, READ_ONLY, ro, argv, tmp_path)
    assert r.returncode == 7, r.stderr
    assert "cannot write" in r.stderr and "permission denied" in r.stderr
    assert list(ro.iterdir()) == []
    kinds = [e["type"] for e in events(tmp_path)]
    assert "segment_out" not in kinds and "arp_request" not in kinds  # it failed before sending anything
    assert "rawtui_" not in nft_tables(lab)


def test_output_is_a_directory_is_exit_7(run_rawtui, pyserver, tmp_path):
    """The file's own name is a directory (``-o DIR`` means the URL's name inside DIR, as ``-o DIR/``)."""
    (tmp_path / "one.bin").mkdir()
    r = run_rawtui("--headless", "-o", ".", f"{pyserver}/one.bin")
    assert r.returncode == 7, r.stderr
    assert "it is a directory" in r.stderr
