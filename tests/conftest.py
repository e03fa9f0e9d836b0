"""Fixtures for lab tests: the namespace lab, files to serve, servers, and a way to run rawtui in the lab;
and the helpers every test file shares (:func:`child_env`, :func:`nft_tables`, :func:`require_tool`).

What a test needs, and what happens without it (skipped; under ``RAWTUI_REQUIRE_LAB=1``, as in CI, a
failure, so a broken lab machine can never pass as "all skipped"):

- ``@pytest.mark.lab``: root, iproute2 and network namespaces;
- ``@pytest.mark.needs_root``: root only (e.g. dropping privileges);
- ``@pytest.mark.needs_tool("tshark", ...)`` or :func:`require_tool` inside a test: a command that
  ``.ci/run`` installs (tshark, dumpcap, curl, ethtool, nft, nginx, setpriv, unshare...).

Never use ``skipif`` or ``pytest.skip`` for these: they bypass ``RAWTUI_REQUIRE_LAB``. A skip that is not
about the lab machine (e.g. this kernel has no 802.1Q VLAN support) stays a skip and says so.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple, NoReturn

import pytest

from rawtui.lab import impair
from rawtui.lab.nginx import find_nginx, start_nginx
from rawtui.lab.server import make_file, sha256_file
from rawtui.lab.topology import Lab, LabError, cleanup_stale_labs, list_netns

REPO_ROOT = Path(__file__).resolve().parent.parent
PYSERVER_PORT = 8080
NGINX_PORT = 80
SLOW_TIMEOUT = 1800  # seconds, for tests marked slow (a 1 GB download through an impaired link)
SLOWER_TIMEOUT = 3600  # for tests marked slower (run by hand)
WWW_FILES = {
    "empty.bin": 0,
    "one.bin": 1,
    "1m.bin": 1 << 20,
    "1m7.bin": (1 << 20) + 7,
    "50m.bin": 50 << 20,
}


# ---------------------------------------------------------------------------------------------------
# availability: skip, or fail under RAWTUI_REQUIRE_LAB=1


def lab_required() -> bool:
    return os.environ.get("RAWTUI_REQUIRE_LAB") == "1"


def lab_unavailable(reason: str) -> NoReturn:
    """Fail (RAWTUI_REQUIRE_LAB=1) or skip the current test because the lab cannot be used."""
    if lab_required():
        pytest.fail(f"RAWTUI_REQUIRE_LAB=1 but {reason}", pytrace=False)
    pytest.skip(reason)


@functools.cache
def lab_unavailable_reason() -> str | None:
    """Why lab tests cannot run here (not root, no `ip`, namespaces refused), or None."""
    if os.geteuid() != 0:
        return "lab tests need root (network namespaces)"
    ip = shutil.which("ip")
    if ip is None:
        return "lab tests need the `ip` command (iproute2)"
    probe = f"rtprobe{secrets.token_hex(3)}"
    res = subprocess.run([ip, "netns", "add", probe], capture_output=True, text=True, check=False)
    if res.returncode != 0:
        return f"cannot create a network namespace: {res.stderr.strip()}"
    subprocess.run([ip, "netns", "delete", probe], capture_output=True, check=False)
    return None


def pytest_sessionstart(session: pytest.Session) -> None:
    # Under `sudo bash .ci/run`, SUDO_UID would make every rawtui child drop to the invoking user, who
    # cannot write into root's temp directories: the tests that want a drop set these themselves.
    for name in ("SUDO_UID", "SUDO_GID", "SUDO_USER", "SUDO_COMMAND"):
        os.environ.pop(name, None)
    if os.geteuid() == 0 and shutil.which("ip"):
        try:
            removed = cleanup_stale_labs()
        except LabError as exc:
            print(f"rawtui: could not clean up stale labs: {exc}", file=sys.stderr)
        else:
            if removed:
                print(f"rawtui: removed stale lab namespaces: {' '.join(removed)}", file=sys.stderr)


def require_tool(name: str) -> str:
    """The path of command ``name``; skip the test when it is missing (fail under RAWTUI_REQUIRE_LAB=1:
    CI installs every tool the tests use, so a missing one there is a broken machine, not a pass)."""
    path = shutil.which(name)
    if path is None:
        lab_unavailable(f"{name} is not installed")
    return path


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The global per-test timeout (pyproject.toml) is for ordinary tests; the long ones get their own.
    for item in items:
        if item.get_closest_marker("timeout") is not None:
            continue
        if item.get_closest_marker("slower") is not None:
            item.add_marker(pytest.mark.timeout(SLOWER_TIMEOUT))
        elif item.get_closest_marker("slow") is not None:
            item.add_marker(pytest.mark.timeout(SLOW_TIMEOUT))


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("lab") is not None:
        reason = lab_unavailable_reason()
        if reason is not None:
            lab_unavailable(reason)
    if item.get_closest_marker("needs_root") is not None and os.geteuid() != 0:
        lab_unavailable("this test needs root")
    for marker in item.iter_markers("needs_tool"):
        for name in marker.args:
            require_tool(name)


# ---------------------------------------------------------------------------------------------------
# the lab


def _make_lab(*, ipv6: bool = False, vpn: bool = False) -> Lab:
    reason = lab_unavailable_reason()
    if reason is not None:
        lab_unavailable(reason)
    try:
        return Lab.create(ipv6=ipv6, vpn=vpn)
    except LabError as exc:
        lab_unavailable(f"cannot build the lab: {exc}")


def _lab_for(*, fresh: bool, **kind: bool) -> Iterator[Lab]:
    """A lab of ``kind`` (Lab.create's ipv6 / vpn) for a fixture; a ``fresh`` one (one test's own) is checked
    for leaks like the session labs before it is destroyed."""
    the_lab = _make_lab(**kind)
    try:
        yield the_lab
        if fresh:
            problems = find_leaks(the_lab)
            if problems:
                pytest.fail("; ".join(problems), pytrace=False)
    finally:
        the_lab.destroy()


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    """The session's client – router – server lab. Leave it as you found it (or use ``fresh_lab``)."""
    yield from _lab_for(fresh=False)


@pytest.fixture(scope="session")
def lab6() -> Iterator[Lab]:
    """The session's dual-stack lab (``Lab.create(ipv6=True)``). Leave it as you found it."""
    yield from _lab_for(fresh=False, ipv6=True)


@pytest.fixture(scope="session")
def lab_vpn() -> Iterator[Lab]:
    """The session's "VPN" lab (``Lab.create(vpn=True)``): the server only through the client's tun0 and the
    lab's userspace tunnel; dual-stack: tun0 carries IPv4 and IPv6. Leave it as you found it."""
    yield from _lab_for(fresh=False, vpn=True, ipv6=True)


@pytest.fixture
def fresh_lab6() -> Iterator[Lab]:
    """A dual-stack lab of its own for one test; checked for leaks before it is destroyed."""
    yield from _lab_for(fresh=True, ipv6=True)


@pytest.fixture
def fresh_lab() -> Iterator[Lab]:
    """A lab of its own for one test (for tests that impair links or change offloads); ~0.2 s.

    Checked for leaks like the session lab before it is destroyed.
    """
    yield from _lab_for(fresh=True)


def run_demo(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """``rawtui demo --headless ARGS`` to its end (a failure past ``timeout``); asserts that the demo said
    its lab and left none of its namespaces behind."""
    try:
        res = subprocess.run([sys.executable, "-m", "rawtui", "demo", "--headless", *args], capture_output=True,
                             text=True, timeout=timeout, env=child_env(), stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"rawtui demo {' '.join(args)} did not finish in {timeout} s: {exc.stderr!r}"[-3000:],
                    pytrace=False)
    m = re.search(r"^lab (rt[0-9a-f]{6}):", res.stderr, re.MULTILINE)
    assert m, res.stderr[-3000:]
    left = [ns for ns in list_netns() if ns.startswith(m.group(1))]
    assert not left, f"the demo left namespaces behind: {left}"
    return res


def start_lab_server(lab: Lab, root: Path, port: int, *args: str) -> subprocess.Popen[bytes]:
    """rawtui.lab.server (its default: `::`, both families) in the server namespace, once it said "ready"
    (its line is checked); ``args`` go to the server."""
    proc = lab.popen("server", [sys.executable, "-m", "rawtui.lab.server", "--root", str(root), "--port",
                                str(port), *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=child_env())
    assert proc.stdout is not None
    deadline = time.monotonic() + 20
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while (left := deadline - time.monotonic()) > 0 and not sel.select(left):
            pass
    line = proc.stdout.readline().decode(errors="replace")
    if not line.startswith("ready"):
        lab.stop(proc)
        pytest.fail(f"the lab server did not start: {line!r}", pytrace=False)
    return proc


@pytest.fixture(autouse=True)
def _lab_leak_check(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each test that used the session lab: no rawtui* nft table, no process in the client ns."""
    yield
    for name in ("lab", "lab6", "lab_vpn"):
        if name not in request.fixturenames:
            continue
        try:
            the_lab = request.getfixturevalue(name)
        except (LabError, pytest.skip.Exception, pytest.fail.Exception):
            continue
        if the_lab.destroyed:
            continue
        problems = find_leaks(the_lab)
        if problems:
            pytest.fail("; ".join(problems), pytrace=False)


def find_leaks(the_lab: Lab) -> list[str]:
    """What a test left behind in the client namespace (processes, rawtui* nft tables); cleans it up."""
    problems = []
    pids = [pid for pid in the_lab.pids("client") if pid not in the_lab.started_pids]  # (the VPN's tunnel)
    if pids:
        problems.append(
            "processes left running in the client namespace: " + "; ".join(map(_describe_pid, pids))
        )
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    for family, name in nft_table_entries(the_lab.client_ns) if shutil.which("nft") else []:
        if name.startswith("rawtui"):
            problems.append(f"nft table left in the client namespace: {family} {name}")
            the_lab.run("client", ["nft", "delete", "table", family, name], capture_output=True)
    return problems


def _describe_pid(pid: int) -> str:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        cmd = "?"
    return f"{pid} ({cmd})"


# ---------------------------------------------------------------------------------------------------
# files and servers


class Www(NamedTuple):
    """The served directory and the SHA-256 of each file in it (``root, sha256 = www`` works)."""

    root: Path
    sha256: dict[str, str]

    def path(self, name: str) -> Path:
        return self.root / name

    def size(self, name: str) -> int:
        return WWW_FILES[name]


@pytest.fixture(scope="session")
def www(tmp_path_factory: pytest.TempPathFactory) -> Www:
    """empty.bin (0 B), one.bin (1 B), 1m.bin, 1m7.bin (1 MiB + 7 B), 50m.bin; deterministic contents."""
    root = tmp_path_factory.mktemp("www")
    sha = {}
    for seed, (name, size) in enumerate(WWW_FILES.items()):
        make_file(root / name, size, seed=seed)
        sha[name] = sha256_file(root / name)
    return Www(root, sha)


def child_env(extra: dict[str, str] | None = None, **more: str) -> dict[str, str]:
    """The environment for Python children: this rawtui importable even when it is not installed,
    unbuffered output, plus ``extra`` / ``more`` (e.g. ``child_env(COLUMNS="120")``)."""
    env = impair.child_env()
    env.update(extra or {})
    env.update(more)
    return env


STALL_TOLD = "Read stall:"  # --explain's line when --stall stops the reading (a ReadStall event)


class StderrLines:
    """A child's stderr, read line by line on a thread: a test waits for a line the program prints
    (e.g. ``--explain``'s "Read stall:"), a state the program reports, instead of a wall-clock window."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None
        self.proc = proc
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._eof = False
        self._thread = threading.Thread(target=self._read, args=(proc.stderr,), daemon=True)
        self._thread.start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._eof = True
            self._changed.notify_all()

    @property
    def text(self) -> str:
        with self._changed:
            return "".join(self.lines)

    def wait_for(self, needle: str, timeout: float = 120.0) -> None:
        """Until a line contains ``needle``; fails (with what was said) if the program ends first or after
        ``timeout`` (a bound for a machine far busier than CI's, not the expected time)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not any(needle in line for line in self.lines):
                left = deadline - time.monotonic()
                if self._eof or left <= 0:
                    why = "the program ended" if self._eof else f"{timeout:g} s passed"
                    pytest.fail(f"{why} before it said {needle!r}:\n{''.join(self.lines)[-3000:]}", pytrace=False)
                self._changed.wait(left)

    def finish(self, timeout: float = 30.0) -> str:
        """Wait for the program to end (killed if it does not within ``timeout``); all of its stderr."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass  # killed below: the caller's assertions on the exit status say so
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self._thread.join(timeout)
        return self.text


def sh(ns: str, *command: str) -> str:
    """Run a command in network namespace ``ns``; its stdout (a failure raises)."""
    return subprocess.run(
        ["ip", "netns", "exec", ns, *command], check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture
def netns() -> Iterator[Callable[[], str]]:
    """A factory of empty namespaces (IPv6 off, so the kernel stays quiet), all deleted afterwards."""
    made: list[str] = []

    def make() -> str:
        name = f"rtlink-{secrets.token_hex(4)}"
        subprocess.run(["ip", "netns", "add", name], check=True)
        made.append(name)
        sh(name, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
        return name

    try:
        yield make
    finally:
        for name in made:
            subprocess.run(["ip", "netns", "del", name], check=False)


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of ``data`` (of a file: ``rawtui.lab.server.sha256_file``)."""
    return hashlib.sha256(data).hexdigest()


def nft_table_entries(ns: str) -> list[tuple[str, str]]:
    """(family, name) of every nftables table in network namespace ``ns`` (`nft -j list tables`)."""
    nft = require_tool("nft")
    res = subprocess.run(["ip", "netns", "exec", ns, nft, "-j", "list", "tables"], capture_output=True,
                         text=True, timeout=20, check=True)  # fmt: skip
    items = json.loads(res.stdout)["nftables"]
    return [(item["table"]["family"], item["table"]["name"]) for item in items if "table" in item]


def nft_tables(ns: str) -> list[str]:
    """The names of the nftables tables in network namespace ``ns`` (e.g. ``["rawtui_1234_40000"]``)."""
    return [name for _family, name in nft_table_entries(ns)]


@pytest.fixture(scope="session")
def pyserver(lab: Lab, www: Www, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """rawtui.lab.server on port 8080 in the server namespace; the value is the base URL (no slash)."""
    logdir = tmp_path_factory.mktemp("pyserver")
    stderr_path = logdir / "stderr.log"
    with stderr_path.open("wb") as stderr:
        proc = lab.popen(
            lab.server_ns,
            [
                sys.executable,
                "-m",
                "rawtui.lab.server",
                "--root",
                str(www.root),
                "--port",
                str(PYSERVER_PORT),
            ],
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=child_env(),
        )
    try:
        line = _wait_ready_line(proc, timeout=20)
        if not line.startswith("ready"):
            pytest.fail(
                f"the lab HTTP server did not start (exit {proc.poll()}): {line!r} "
                f"{stderr_path.read_text(errors='replace')[-2000:]}",
                pytrace=False,
            )
        threading.Thread(target=_drain, args=(proc,), daemon=True).start()
        yield f"http://{lab.server_ip}:{PYSERVER_PORT}"
    finally:
        lab.stop(proc)


def _wait_ready_line(proc: subprocess.Popen[bytes], timeout: float) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while (left := deadline - time.monotonic()) > 0:
            if sel.select(left):
                return proc.stdout.readline().decode(errors="replace").strip()
    return f"(no output within {timeout} s)"


def _drain(proc: subprocess.Popen[bytes]) -> None:
    assert proc.stdout is not None
    for _ in proc.stdout:
        pass


@pytest.fixture(scope="session")
def nginx(lab: Lab, www: Www) -> Iterator[str]:
    """nginx on port 80 in the server namespace serving ``www``; the value is the base URL (no slash)."""
    if find_nginx() is None:
        lab_unavailable("nginx is not installed (apt-get install nginx-light)")
    handle = start_nginx(lab, www.root, NGINX_PORT)
    try:
        yield handle.url
    finally:
        handle.stop()


# ---------------------------------------------------------------------------------------------------
# running rawtui


RunRawtui = Callable[..., "subprocess.CompletedProcess[str]"]


@pytest.fixture
def run_rawtui(request: pytest.FixtureRequest, tmp_path: Path) -> RunRawtui:
    """``run_rawtui([lab,] *args, timeout=120, env=None)`` runs ``python -m rawtui ARGS`` in the client ns.

    The first argument may be a Lab (e.g. ``fresh_lab``); otherwise the session ``lab`` is used. The
    working directory is the test's ``tmp_path`` (also set as ``result.cwd``), so relative ``-o``,
    ``--events`` and ``--pcap`` paths land there. stdout and stderr are captured as text.
    """

    def run(*args: Any, timeout: float = 120.0, env: dict[str, str] | None = None) -> Any:
        if args and isinstance(args[0], Lab):
            the_lab, args = args[0], args[1:]
        else:
            the_lab = request.getfixturevalue("lab")
        argv = [sys.executable, "-m", "rawtui", *map(str, args)]
        try:
            result = the_lab.run(
                the_lab.client_ns,
                argv,
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=timeout,
                env=child_env(env),
            )
        except subprocess.TimeoutExpired as exc:
            out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else exc.stdout
            err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else exc.stderr
            pytest.fail(
                f"rawtui {' '.join(map(str, args))} did not finish within {timeout} s\n"
                f"--- stdout\n{(out or '')[-4000:]}\n--- stderr\n{(err or '')[-4000:]}",
                pytrace=False,
            )
        result.cwd = tmp_path  # type: ignore[attr-defined]
        return result

    return run
