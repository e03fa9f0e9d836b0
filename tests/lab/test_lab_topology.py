"""The lab itself: namespaces, routing, the built-in HTTP server's endpoints, nginx, teardown."""

from __future__ import annotations

import contextlib
import os
import random
import re
import secrets
import shutil
import signal
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from conftest import child_env, require_tool, sha256_bytes

from rawtui.lab.server import CHUNK_SIZE_RANGE, make_file, sha256_file
from rawtui.lab.topology import LAB_RUN_DIR, Lab, LabError, cleanup_stale_labs

if TYPE_CHECKING:
    from conftest import Www

lab_test = pytest.mark.lab

# A raw HTTP/1.1 exchange run inside the client namespace: the response bytes, exactly as received,
# go to stdout. With keep_alive=0 the request says "Connection: close"; either way the script reads
# until the server closes and exits 3 if that takes longer than the timeout.
_RAW_HTTP = textwrap.dedent(
    """
    import socket, sys
    host, port, method, path, keep_alive = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
    req = f"{method} {path} HTTP/1.1\\r\\nHost: {host}\\r\\nUser-Agent: lab-test\\r\\n"
    if keep_alive == "0":
        req += "Connection: close\\r\\n"
    s = socket.create_connection((host, port), timeout=10)
    s.sendall((req + "\\r\\n").encode())
    out = bytearray()
    try:
        while chunk := s.recv(1 << 20):
            out += chunk
    except TimeoutError:
        sys.stdout.buffer.write(bytes(out))
        sys.exit(3)
    sys.stdout.buffer.write(bytes(out))
    """
)


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]  # lower-case names; no repeated headers in these tests
    body: bytes


def raw_http(
    lab: Lab, path: str, *, method: str = "GET", keep_alive: bool = False, port: int = 8080
) -> RawResponse:
    res = lab.run(
        "client",
        [sys.executable, "-c", _RAW_HTTP, lab.server_ip, str(port), method, path, "1" if keep_alive else "0"],
        capture_output=True,
        timeout=60,
    )
    assert res.returncode == 0, f"exit {res.returncode} (3: server did not close): {res.stderr.decode()}"
    head, sep, body = res.stdout.partition(b"\r\n\r\n")
    assert sep, f"no end of headers in {res.stdout[:300]!r}"
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return RawResponse(status, headers, body)


def decode_chunked(body: bytes) -> tuple[bytes, list[int]]:
    """Decode a chunked body (no trailers); return the data and the chunk sizes."""
    data, sizes, pos = bytearray(), list[int](), 0
    while True:
        eol = body.index(b"\r\n", pos)
        size = int(body[pos:eol].split(b";")[0], 16)
        pos = eol + 2
        if size == 0:
            assert body[pos:] == b"\r\n", "bad chunked terminator"
            return bytes(data), sizes
        sizes.append(size)
        data += body[pos : pos + size]
        assert body[pos + size : pos + size + 2] == b"\r\n"
        pos += size + 2


def curl(lab: Lab, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return lab.run("client", [require_tool("curl"), "-sS", *args], capture_output=True, text=True, timeout=timeout)


def netns_names() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


# ---------------------------------------------------------------------------------------------------
# helpers that need no root


def test_make_file_is_deterministic(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    size = (3 << 20) + 5
    make_file(a, size, seed=1)
    make_file(b, size, seed=1)
    make_file(c, size, seed=2)
    assert a.stat().st_size == size
    assert sha256_file(a) == sha256_file(b) != sha256_file(c)
    assert sha256_file(a) == sha256_bytes(a.read_bytes())
    make_file(tmp_path / "e", 0)
    assert (tmp_path / "e").read_bytes() == b""


def test_decode_chunked_helper() -> None:
    assert decode_chunked(b"3\r\nabc\r\n1\r\nd\r\n0\r\n\r\n") == (b"abcd", [3, 1])


# ---------------------------------------------------------------------------------------------------
# topology


@lab_test
def test_namespaces_addresses_and_pid_file(lab: Lab) -> None:
    assert set(lab.namespaces) <= netns_names()
    assert lab.namespaces == (f"{lab.prefix}-c", f"{lab.prefix}-r", f"{lab.prefix}-s")
    addrs = lab.run(
        "client", ["ip", "-o", "-4", "addr", "show", "dev", lab.client_if], capture_output=True, text=True
    )
    assert "10.77.1.2/24" in addrs.stdout
    link = lab.run(
        "client", ["ip", "-o", "link", "show", "dev", lab.client_if], capture_output=True, text=True
    )
    assert " mtu 1500 " in link.stdout and "state UP" in link.stdout
    route = lab.run("server", ["ip", "route", "show", "default"], capture_output=True, text=True)
    assert "via 10.77.2.1" in route.stdout
    fwd = lab.run("router", ["cat", "/proc/sys/net/ipv4/ip_forward"], capture_output=True, text=True)
    assert fwd.stdout.strip() == "1"
    assert re.fullmatch(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}", lab.mac("client", lab.client_if))
    # the pid file names this (creating) process
    assert (LAB_RUN_DIR / f"{lab.prefix}.pid").read_text().split()[0] == str(os.getpid())
    # no lab interface in the root namespace
    root_links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    assert lab.router_cif not in root_links and lab.router_sif not in root_links


@lab_test
def test_ping_through_the_router(lab: Lab) -> None:
    assert lab.ping("client", lab.server_ip)
    assert lab.ping("server", lab.client_ip)
    assert lab.ping("client", lab.router_client_ip)
    assert not lab.ping("client", "10.77.3.3", timeout=0.3)


@lab_test
def test_dual_stack_lab_forwards_ipv6(lab6: Lab, tmp_path: Path) -> None:
    """Lab.create(ipv6=True): global addresses usable at once (no DAD), IPv6 routes, the router forwarding;
    a kernel client reaches a server bound to :: through it, and the plain lab has no IPv6 at all."""
    addrs = lab6.run("client", ["ip", "-o", "-6", "addr", "show", "dev", lab6.client_if],
                     capture_output=True, text=True).stdout
    assert f"{lab6.client_ip6}/64" in addrs and "tentative" not in addrs
    route = lab6.run("client", ["ip", "-6", "route", "show", "default"], capture_output=True, text=True)
    assert f"via {lab6.router_client_ip6}" in route.stdout
    fwd = lab6.run("router", ["cat", "/proc/sys/net/ipv6/conf/all/forwarding"], capture_output=True, text=True)
    assert fwd.stdout.strip() == "1"
    body = b"dual-stack\n" * 100
    (tmp_path / "f").write_bytes(body)
    server = lab6.popen("server", [sys.executable, "-m", "http.server", "--bind", "::", "--directory",
                                    str(tmp_path), "8086"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        res = lab6.run("client", ["curl", "-sS", "--retry", "20", "--retry-connrefused", "--retry-delay", "0",
                                  "-o", str(tmp_path / "got"), f"http://[{lab6.server_ip6}]:8086/f"],
                       capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, res.stderr
        assert (tmp_path / "got").read_bytes() == body
    finally:
        lab6.stop(server)


@lab_test
def test_plain_lab_has_no_ipv6(lab: Lab) -> None:
    addrs = lab.run("client", ["ip", "-o", "-6", "addr"], capture_output=True, text=True)
    assert addrs.stdout.strip() == ""


# ---------------------------------------------------------------------------------------------------
# whole files, both servers


@lab_test
@pytest.mark.parametrize("name", ["empty.bin", "one.bin", "1m.bin", "1m7.bin", "50m.bin"])
@pytest.mark.parametrize("server", ["pyserver", "nginx"])
def test_curl_downloads_match(
    lab: Lab, www: Www, request: pytest.FixtureRequest, server: str, name: str, tmp_path: Path
) -> None:
    base = request.getfixturevalue(server)
    out = tmp_path / name
    res = curl(lab, "-o", str(out), "-w", "%{http_code}", f"{base}/{name}")
    assert res.returncode == 0, res.stderr
    assert res.stdout == "200"
    assert sha256_file(out) == www.sha256[name]


@lab_test
def test_pyserver_static_headers_and_keepalive(lab: Lab, www: Www, pyserver: str) -> None:
    resp = raw_http(lab, "/1m7.bin")
    assert resp.status == 200
    assert resp.headers["content-length"] == str(www.size("1m7.bin"))
    assert sha256_bytes(resp.body) == www.sha256["1m7.bin"]
    head = raw_http(lab, "/1m.bin", method="HEAD")
    assert head.headers["content-length"] == str(1 << 20) and head.body == b""
    assert raw_http(lab, "/missing.bin").status == 404
    # two requests, one connection
    res = curl(
        lab,
        "-o",
        "/dev/null",
        "-o",
        "/dev/null",
        "-w",
        "%{num_connects}\n",
        f"{pyserver}/one.bin",
        f"{pyserver}/one.bin",
    )
    assert res.stdout.split() == ["1", "0"], res.stderr


# ---------------------------------------------------------------------------------------------------
# test endpoints


@lab_test
def test_chunked_endpoint(lab: Lab, www: Www, pyserver: str) -> None:
    resp = raw_http(lab, "/chunked/1m7.bin")
    assert resp.status == 200
    assert resp.headers["transfer-encoding"] == "chunked"
    assert "content-length" not in resp.headers
    data, sizes = decode_chunked(resp.body)
    assert sha256_bytes(data) == www.sha256["1m7.bin"]
    lo, hi = CHUNK_SIZE_RANGE
    assert all(lo <= n <= hi for n in sizes)
    assert len(set(sizes)) > 10 and min(sizes) < 100 and max(sizes) > 30000
    empty = raw_http(lab, "/chunked/empty.bin")
    assert empty.body == b"0\r\n\r\n"
    assert raw_http(lab, "/chunked/missing.bin").status == 404


@lab_test
def test_close_delimited_endpoint(lab: Lab, www: Www, pyserver: str) -> None:
    resp = raw_http(lab, "/close/1m.bin", keep_alive=True)  # the server must close anyway
    assert resp.status == 200
    assert resp.headers["connection"] == "close"
    assert "content-length" not in resp.headers and "transfer-encoding" not in resp.headers
    assert sha256_bytes(resp.body) == www.sha256["1m.bin"]


@lab_test
def test_truncated_endpoint(lab: Lab, www: Www, pyserver: str) -> None:
    resp = raw_http(lab, "/truncated/1m7.bin", keep_alive=True)  # the server must close early
    size = www.size("1m7.bin")
    assert resp.status == 200
    assert resp.headers["content-length"] == str(size)
    assert len(resp.body) == size // 2
    assert resp.body == www.path("1m7.bin").read_bytes()[: size // 2]
    res = curl(lab, "-o", "/dev/null", f"{pyserver}/truncated/1m.bin")
    assert res.returncode == 18  # CURLE_PARTIAL_FILE


@lab_test
def test_redirect_endpoints(lab: Lab, www: Www, pyserver: str, tmp_path: Path) -> None:
    first = raw_http(lab, "/redirect/3/1m.bin")
    assert (first.status, first.headers["location"]) == (302, "/redirect/2/1m.bin")
    last = raw_http(lab, "/redirect/0/dir/x.bin")
    assert (last.status, last.headers["location"]) == (302, "/dir/x.bin")
    out = tmp_path / "r.bin"
    res = curl(
        lab, "-L", "-o", str(out), "-w", "%{num_redirects} %{http_code}", f"{pyserver}/redirect/3/1m.bin"
    )
    assert res.stdout == "4 200", res.stderr
    assert sha256_file(out) == www.sha256["1m.bin"]
    loop = raw_http(lab, "/redirect-loop")
    assert (loop.status, loop.headers["location"]) == (302, "/redirect-loop")
    res = curl(lab, "-L", "--max-redirs", "5", "-o", "/dev/null", f"{pyserver}/redirect-loop")
    assert res.returncode == 47  # CURLE_TOO_MANY_REDIRECTS


@lab_test
@pytest.mark.parametrize("code", [200, 301, 404, 418, 500, 503])
def test_status_endpoint(lab: Lab, pyserver: str, code: int) -> None:
    resp = raw_http(lab, f"/status/{code}")
    assert resp.status == code
    assert resp.body.startswith(str(code).encode())
    assert resp.headers["content-length"] == str(len(resp.body))


@lab_test
def test_status_endpoint_without_body_and_bad_codes(lab: Lab, pyserver: str) -> None:
    resp = raw_http(lab, "/status/204")
    assert resp.status == 204 and resp.body == b"" and "content-length" not in resp.headers
    assert raw_http(lab, "/status/99").status == 400
    assert raw_http(lab, "/status/abc").status == 400


# ---------------------------------------------------------------------------------------------------
# lifecycle


# Opens a lab namespace the way `ip netns exec` does, says so, then waits for a line on stdin before it
# setns()es into it: a process caught between the two steps, deterministically, when destroy() runs.
_ENTERING = textwrap.dedent(
    """
    import ctypes, os, sys, time
    fd = os.open(sys.argv[1], os.O_RDONLY)
    print("opened", flush=True)
    sys.stdin.readline()
    if ctypes.CDLL(None, use_errno=True).setns(fd, 0x40000000) != 0:  # CLONE_NEWNET
        sys.exit(f"setns failed: errno {ctypes.get_errno()}")
    os.close(fd)
    print("inside", flush=True)
    time.sleep(300)
    """
)

# Inside a namespace: fork children as fast as it can (each lingers 60 s, marked by argv[1]) and say so
# once it has 20: destroy() runs while it is forking.
_FORKER = textwrap.dedent(
    """
    import os, sys, time
    for i in range(400):
        if os.fork() == 0:
            time.sleep(60)
            os._exit(0)
        if i == 20:
            print("forking", flush=True)
    time.sleep(60)
    """
)


def _exit_status(proc: subprocess.Popen[str], timeout: float = 10.0) -> int | None:
    """The exit status of ``proc``, or None if it is still running after ``timeout`` seconds."""
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return None


def _netns_file(ns: str) -> str:
    return next(p for p in (f"/run/netns/{ns}", f"/var/run/netns/{ns}") if os.path.exists(p))


def _pids_with_arg(token: str) -> list[int]:
    """Live (not zombie) processes with ``token`` among their arguments."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                args = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if token.encode() in args and not _gone_or_zombie(int(entry.name)):
                pids.append(int(entry.name))
    return pids


@lab_test
def test_destroy_removes_everything_and_is_idempotent() -> None:
    """destroy() kills what the lab started, what was started in its namespaces behind its back, and a
    process still entering one (it has opened the namespace but not yet setns()ed): none survives."""
    lab = Lab.create()
    names = set(lab.namespaces)
    procs: list[subprocess.Popen[str]] = []
    try:
        assert names <= netns_names()
        sleeper = lab.popen("client", ["sleep", "300"])
        # not tracked by the lab, and inside the server namespace before destroy() begins
        stray = subprocess.Popen(lab.exec_argv("server", ["sh", "-c", "echo inside; exec sleep 300"]),
                                 stdout=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
        procs.append(stray)
        entering = subprocess.Popen([sys.executable, "-c", _ENTERING, _netns_file(lab.router_ns)],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                    start_new_session=True)  # fmt: skip
        procs.append(entering)
        assert stray.stdout is not None and stray.stdout.readline() == "inside\n"
        assert entering.stdout is not None and entering.stdout.readline() == "opened\n"

        lab.destroy()

        assert not names & netns_names()
        assert sleeper.poll() is not None
        assert _exit_status(stray) == -signal.SIGKILL, "a process inside a namespace survived destroy()"
        # let it go on: had destroy() missed it, it would now enter the (nameless) namespace and sleep
        assert entering.stdin is not None
        try:
            entering.stdin.write("go\n")
            entering.stdin.flush()
        except BrokenPipeError:
            pass
        assert _exit_status(entering) == -signal.SIGKILL, "a process entering a namespace survived destroy()"
        assert not (LAB_RUN_DIR / f"{lab.prefix}.pid").exists()
        lab.destroy()
        with pytest.raises(LabError):
            lab.run("client", ["true"])
    finally:
        lab.destroy()
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()


@lab_test
def test_destroy_kills_a_process_that_is_forking() -> None:
    """Children forked while destroy() kills their parent are inside the namespace too: killed as well."""
    lab = Lab.create()
    token = f"rtfork-{secrets.token_hex(4)}"
    forker = subprocess.Popen(lab.exec_argv("client", [sys.executable, "-c", _FORKER, token]),
                              stdout=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
    try:
        assert forker.stdout is not None and forker.stdout.readline() == "forking\n"
        lab.destroy()
        assert _exit_status(forker) == -signal.SIGKILL
        assert _pids_with_arg(token) == []
    finally:
        lab.destroy()
        for pid in _pids_with_arg(token):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if forker.poll() is None:
            forker.kill()
        forker.wait()


@lab_test
def test_context_manager(tmp_path: Path) -> None:
    with Lab.create() as lab:
        assert lab.ping("client", lab.server_ip)
    assert not set(lab.namespaces) & netns_names()


@lab_test
def test_create_failure_tears_down(monkeypatch: pytest.MonkeyPatch) -> None:
    prefix = "rt" + random.randbytes(3).hex()
    real_build = Lab._build

    def failing_build(self: Lab) -> None:
        real_build(self)
        raise LabError("injected failure")

    monkeypatch.setattr(Lab, "_build", failing_build)
    with pytest.raises(LabError, match="injected failure"):
        Lab.create(prefix)
    assert not {f"{prefix}-c", f"{prefix}-r", f"{prefix}-s"} & netns_names()
    assert not (LAB_RUN_DIR / f"{prefix}.pid").exists()


@lab_test
def test_prefix_in_use_is_refused_and_left_alone(lab: Lab) -> None:
    with pytest.raises(LabError, match="already in use"):
        Lab.create(lab.prefix)
    assert set(lab.namespaces) <= netns_names()
    assert lab.ping("client", lab.server_ip)
    with pytest.raises(LabError, match="bad lab prefix"):
        Lab.create("no spaces")


@lab_test
def test_cleanup_stale_labs(lab: Lab) -> None:
    # A process that builds a lab, starts a process inside it and dies without cleaning up.
    script = textwrap.dedent(
        """
        import os, signal, subprocess
        from rawtui.lab.topology import Lab
        lab = Lab.create()
        p = lab.popen("client", ["sleep", "300"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        print(lab.prefix, p.pid, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    res = subprocess.run(
        [sys.executable, "-c", script], check=False, capture_output=True, text=True, env=child_env(), timeout=60
    )
    assert res.returncode == -9, res.stderr
    prefix, sleeper = res.stdout.split()
    stale = {f"{prefix}-c", f"{prefix}-r", f"{prefix}-s"}
    assert stale <= netns_names()
    removed = cleanup_stale_labs()
    assert stale <= set(removed)
    assert lab.client_ns not in removed  # our creator is alive
    assert not stale & netns_names()
    assert set(lab.namespaces) <= netns_names()
    assert not (LAB_RUN_DIR / f"{prefix}.pid").exists()
    assert _gone_or_zombie(int(sleeper))  # cleanup_stale_labs returns once it has killed everything inside


def _gone_or_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rfind(")") + 2] == "Z"


@lab_test
def test_set_offloads(fresh_lab: Lab) -> None:
    applied = fresh_lab.set_offloads("server", fresh_lab.server_if, tso=False, gso=False)
    if shutil.which("ethtool") is None:
        assert applied is False
        return
    assert applied is True
    out = fresh_lab.run(
        "server", ["ethtool", "-k", fresh_lab.server_if], capture_output=True, text=True
    ).stdout
    assert "tcp-segmentation-offload: off" in out
    assert "generic-segmentation-offload: off" in out
    with pytest.raises(LabError):
        fresh_lab.set_offloads("server", fresh_lab.server_if, no_such_feature=False)
