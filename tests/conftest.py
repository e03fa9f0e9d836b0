"""Fixtures for lab tests: the namespace lab, files to serve, servers, and a way to run rawtui in the lab.

Tests marked ``@pytest.mark.lab`` need root and network namespaces. Without them they are skipped, or
fail when ``RAWTUI_REQUIRE_LAB=1`` (as in CI) so a broken lab can never pass as "all skipped".
"""

from __future__ import annotations

import functools
import os
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

from rawtui.lab.nginx import find_nginx, start_nginx
from rawtui.lab.server import make_file, sha256_file
from rawtui.lab.topology import Lab, LabError, cleanup_stale_labs

REPO_ROOT = Path(__file__).resolve().parent.parent
PYSERVER_PORT = 8080
NGINX_PORT = 80
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


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("lab") is not None:
        reason = lab_unavailable_reason()
        if reason is not None:
            lab_unavailable(reason)


# ---------------------------------------------------------------------------------------------------
# the lab


def _make_lab() -> Lab:
    reason = lab_unavailable_reason()
    if reason is not None:
        lab_unavailable(reason)
    try:
        return Lab.create()
    except LabError as exc:
        lab_unavailable(f"cannot build the lab: {exc}")


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    """The session's client – router – server lab. Leave it as you found it (or use ``fresh_lab``)."""
    the_lab = _make_lab()
    try:
        yield the_lab
    finally:
        the_lab.destroy()


@pytest.fixture
def fresh_lab() -> Iterator[Lab]:
    """A lab of its own for one test (for tests that impair links or change offloads); ~0.2 s.

    Checked for leaks like the session lab before it is destroyed.
    """
    the_lab = _make_lab()
    try:
        yield the_lab
        problems = find_leaks(the_lab)
        if problems:
            pytest.fail("; ".join(problems), pytrace=False)
    finally:
        the_lab.destroy()


@pytest.fixture(autouse=True)
def _lab_leak_check(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each test that used the session lab: no rawtui* nft table, no process in the client ns."""
    yield
    if "lab" not in request.fixturenames:
        return
    try:
        the_lab = request.getfixturevalue("lab")
    except (LabError, pytest.skip.Exception, pytest.fail.Exception):
        return
    if the_lab.destroyed:
        return
    problems = find_leaks(the_lab)
    if problems:
        pytest.fail("; ".join(problems), pytrace=False)


def find_leaks(the_lab: Lab) -> list[str]:
    """What a test left behind in the client namespace (processes, rawtui* nft tables); cleans it up."""
    problems = []
    pids = the_lab.pids("client")
    if pids:
        problems.append(
            "processes left running in the client namespace: " + "; ".join(map(_describe_pid, pids))
        )
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    nft = shutil.which("nft")
    if nft is not None:
        res = the_lab.run("client", [nft, "list", "tables"], capture_output=True, text=True, timeout=20)
        for line in res.stdout.splitlines():
            parts = line.split()  # "table inet rawtui_1234"
            if len(parts) == 3 and parts[0] == "table" and parts[2].startswith("rawtui"):
                problems.append(f"nft table left in the client namespace: {parts[1]} {parts[2]}")
                the_lab.run("client", [nft, "delete", "table", parts[1], parts[2]], capture_output=True)
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


def _child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for Python children: rawtui importable even when it is not installed."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


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
            env=_child_env(),
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
                env=_child_env(env),
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
