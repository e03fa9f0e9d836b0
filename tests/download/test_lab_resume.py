"""Resume and curl's request options in the lab, byte-exact by sha256.

An interrupted download (SIGINT, SIGTERM) at ~30 % keeps ``out.bin.part`` and ``out.bin.part.meta``; ``-C -``
continues it with ``Range`` + ``If-Range`` (206), restarts from zero when the file changed (200) or when
the server ignores ranges (200), and takes a complete part as the file (416). The moment to interrupt is
not timed: ``--stall BYTES:120`` stops rawtui reading at 30 % of the file, and the test waits until rawtui
says the stall began (``--explain``: a ``read_stall`` event), then sends the signal. (Waiting for the part
file to reach the stall point was a race: the writer hands the disk 256 KB at a time, so a file within
256 KB of it did not mean rawtui had read that far.)

Servers: ``range_server.py`` (a small Python server with Range, If-Range and a request log), nginx (with
gzip on for text/plain), and the lab's own Python server (which ignores Range, like http.server).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from conftest import STALL_TOLD, StderrLines, child_env, lab_unavailable

from rawtui.download.output import HANDOFF
from rawtui.download.resume import PartMeta, write_meta
from rawtui.lab.nginx import find_nginx, start_nginx
from rawtui.lab.server import make_file, sha256_file
from rawtui.lab.topology import Lab

pytestmark = pytest.mark.lab

RANGE_PORT = 8090
NGINX_PORT = 8091
SIZE = 20 << 20
STALL_AT = SIZE * 3 // 10  # the interrupted run stops reading at 30 %
RANGE_SERVER = str(Path(__file__).with_name("range_server.py"))


class Served(NamedTuple):
    root: Path
    python: str  # base URLs
    nginx: str
    log: Path  # range_server.py's request log


@pytest.fixture(scope="module")
def served(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    if find_nginx() is None:
        lab_unavailable("nginx is not installed (apt-get install nginx-light)")
    root = tmp_path_factory.mktemp("resume-www")
    make_file(root / "20m.bin", SIZE, seed=20)
    make_file(root / "1m7.bin", (1 << 20) + 7, seed=3)
    (root / "text.txt").write_bytes(b"".join(b"%08d: a line of very compressible text\n" % i
                                             for i in range(100_000)))
    log = root.parent / "requests.ndjson"
    proc = lab.popen(lab.server_ns, [sys.executable, RANGE_SERVER, "--root", str(root), "--port", str(RANGE_PORT),
                                     "--log", str(log)], stdout=subprocess.PIPE, text=True, env=child_env())
    nginx = None
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        nginx = start_nginx(lab, root, NGINX_PORT, extra_conf="    gzip on;\n    gzip_types text/plain;\n"
                                                              "    gzip_min_length 0;\n")
        yield Served(root, f"http://{lab.server_ip}:{RANGE_PORT}", nginx.url, log)
    finally:
        if nginx is not None:
            nginx.stop()
        lab.stop(proc)


def base(served: Served, server: str) -> str:
    return served.python if server == "python" else served.nginx


def events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def of_type(evs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in evs if e["type"] == kind]


def requests(served: Served, target: str) -> list[dict[str, Any]]:
    return [r for r in events(served.log) if r["target"] == target] if served.log.exists() else []


def header(request: dict[str, Any], name: str) -> str | None:
    return next((v for k, v in request["headers"] if k.lower() == name.lower()), None)


def interrupt_at_30_percent(lab: Lab, url: str, cwd: Path, sig: int, *extra: str) -> tuple[int, str]:
    """rawtui stalls at 30 % (--stall) and says so (--explain's "Read stall" line), then ``sig``: (part size,
    stderr)."""
    argv = [sys.executable, "-m", "rawtui", "--headless", "--explain", "--stall", f"{STALL_AT}:120", "-o", "out.bin",
            "--events", "ev1.ndjson", *extra, url]
    proc = lab.popen(lab.client_ns, argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                     env=child_env())
    part = cwd / "out.bin.part"
    err = StderrLines(proc)
    try:
        err.wait_for(STALL_TOLD)  # the stall began: STALL_AT bytes were read (on disk or not yet)
    except BaseException:
        err.finish(0)
        raise
    os.kill(proc.pid, sig)
    said = err.finish(30)
    assert proc.returncode == 130, said
    assert "Traceback" not in said
    assert not (cwd / "out.bin").exists()  # never under the final name
    assert part.exists(), said
    size = part.stat().st_size
    assert f"{size:,} bytes kept in out.bin.part (-C - continues it)" in said, said
    assert size >= STALL_AT  # everything read before the stall was written out before the end
    return size, said


def assert_prefix(part: Path, served_file: Path) -> None:
    data = part.read_bytes()
    with served_file.open("rb") as f:
        assert data == f.read(len(data)), "the part file is not the start of the served file"


# -- resume after a signal --------------------------------------------------------------------------------


@pytest.mark.parametrize("server", ["python", "nginx"])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_resume_after_a_signal_at_30_percent(lab, served, run_rawtui, tmp_path, server, sig):
    url = f"{base(served, server)}/20m.bin"
    kept, _ = interrupt_at_30_percent(lab, url, tmp_path, sig)
    assert_prefix(tmp_path / "out.bin.part", served.root / "20m.bin")
    meta = json.loads((tmp_path / "out.bin.part.meta").read_text())
    assert meta["url"] == url and meta["total"] == SIZE and meta["etag"]

    r = run_rawtui("--headless", "-C", "-", "-o", "out.bin", "--events", "ev2.ndjson", url)
    assert r.returncode == 0, r.stderr
    assert sha256_file(tmp_path / "out.bin") == sha256_file(served.root / "20m.bin")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ev1.ndjson", "ev2.ndjson", "out.bin"]
    evs = events(tmp_path / "ev2.ndjson")
    (resp,) = of_type(evs, "http_response")
    assert resp["status"] == 206 and resp["content_length"] == SIZE - kept
    assert {k.lower(): v for k, v in resp["headers"]}["content-range"] == f"bytes {kept}-{SIZE - 1}/{SIZE}"
    (done,) = of_type(evs, "done")
    assert done["resumed_from"] == kept and done["bytes"] == SIZE
    assert done["sha256"] == sha256_file(served.root / "20m.bin")  # the whole file's, the kept part included
    if server == "python":  # what rawtui asked for, as the server saw it
        last = requests(served, "/20m.bin")[-1]
        assert header(last, "Range") == f"bytes={kept}-" and header(last, "If-Range") == meta["etag"]


@pytest.mark.parametrize("server", ["python", "nginx"])
def test_resume_refused_when_the_file_changed_restarts_from_zero(lab, served, run_rawtui, tmp_path, server):
    name = f"changing-{server}.bin"
    served_file = served.root / name
    make_file(served_file, SIZE, seed=41)
    url = f"{base(served, server)}/{name}"
    interrupt_at_30_percent(lab, url, tmp_path, signal.SIGTERM)
    # a new version: other bytes, another size, another date (so both ETag and Last-Modified change)
    make_file(served_file, SIZE + 12345, seed=42)
    st = served_file.stat()
    os.utime(served_file, ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000_000))

    r = run_rawtui("--headless", "-C", "-", "-o", "out.bin", "--events", "ev2.ndjson", url)
    assert r.returncode == 0, r.stderr
    assert sha256_file(tmp_path / "out.bin") == sha256_file(served_file)
    said = " ".join(r.stderr.split())
    assert said.count("the file changed on the server since the partial download") == 1, r.stderr
    evs = events(tmp_path / "ev2.ndjson")
    assert [e["status"] for e in of_type(evs, "http_response")] == [200]
    (done,) = of_type(evs, "done")
    assert done["resumed_from"] == 0 and done["bytes"] == SIZE + 12345
    assert not (tmp_path / "out.bin.part").exists() and not (tmp_path / "out.bin.part.meta").exists()


def test_a_server_that_ignores_ranges_restarts_from_zero_said_once(run_rawtui, pyserver, www, tmp_path):
    """rawtui.lab.server (http.server) ignores Range: a 200 to a resume means from zero, once."""
    url = f"{pyserver}/1m7.bin"
    head = run_rawtui("-I", url)
    assert head.returncode == 0, head.stderr
    fields = dict(line.split(": ", 1) for line in head.stdout.splitlines()[1:] if ": " in line)
    (tmp_path / "out.bin.part").write_bytes(www.path("1m7.bin").read_bytes()[:300_000])
    write_meta(str(tmp_path / "out.bin"), PartMeta(url, None, fields["Last-Modified"], www.size("1m7.bin")))
    r = run_rawtui("--headless", "-C", "-", "-o", "out.bin", "--events", "ev.ndjson", url)
    assert r.returncode == 0, r.stderr
    assert sha256_file(tmp_path / "out.bin") == www.sha256["1m7.bin"]
    said = " ".join(r.stderr.split())
    assert said.count("the server does not resume (it ignored the range request)") == 1, r.stderr
    (done,) = of_type(events(tmp_path / "ev.ndjson"), "done")
    assert done["resumed_from"] == 0 and done["bytes"] == www.size("1m7.bin")


@pytest.mark.parametrize("server", ["python", "nginx"])
def test_a_complete_part_is_416_already_complete(run_rawtui, served, tmp_path, server):
    url = f"{base(served, server)}/1m7.bin"
    head = run_rawtui("-I", url)
    assert head.returncode == 0, head.stderr
    assert head.stdout.splitlines()[0] == "HTTP/1.1 200 OK"  # (CRLF lines, read here as text)
    fields = {k.lower(): v for k, v in (line.split(": ", 1) for line in head.stdout.splitlines()[1:] if ": " in line)}
    shutil.copyfile(served.root / "1m7.bin", tmp_path / "out.bin.part")
    size = (served.root / "1m7.bin").stat().st_size
    write_meta(str(tmp_path / "out.bin"), PartMeta(url, fields["etag"], fields["last-modified"], size))
    r = run_rawtui("--headless", "-C", "-", "-o", "out.bin", "--events", "ev.ndjson", url)
    assert r.returncode == 0, r.stderr
    assert sha256_file(tmp_path / "out.bin") == sha256_file(served.root / "1m7.bin")
    evs = events(tmp_path / "ev.ndjson")
    assert [e["status"] for e in of_type(evs, "http_response")] == [416]
    assert any("already complete" in e["message"] for e in of_type(evs, "info"))
    (done,) = of_type(evs, "done")
    assert done["bytes"] == size and done["sha256"] == sha256_file(served.root / "1m7.bin")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ev.ndjson", "out.bin"]


def test_a_stale_part_without_C_is_removed_and_said(run_rawtui, served, tmp_path):
    (tmp_path / "out.bin.part").write_bytes(b"left over from another day")
    r = run_rawtui("--headless", "-o", "out.bin", f"{served.python}/1m7.bin")
    assert r.returncode == 0, r.stderr
    assert "warning: removed out.bin.part (26 bytes)" in " ".join(r.stderr.split())
    assert sha256_file(tmp_path / "out.bin") == sha256_file(served.root / "1m7.bin")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_C_without_a_part_is_a_normal_download(run_rawtui, served, tmp_path):
    r = run_rawtui("--headless", "-C", "-", "-o", "out.bin", "--events", "ev.ndjson", f"{served.python}/1m7.bin")
    assert r.returncode == 0, r.stderr
    assert sha256_file(tmp_path / "out.bin") == sha256_file(served.root / "1m7.bin")
    assert any("no partial download out.bin.part" in e["message"]
               for e in of_type(events(tmp_path / "ev.ndjson"), "info"))
    assert header(requests(served, "/1m7.bin")[-1], "Range") is None


# -- compression ---------------------------------------------------------------------------------------


def test_compressed_against_nginx_gzip(run_rawtui, served, tmp_path):
    original = served.root / "text.txt"
    r = run_rawtui("--headless", "--compressed", "-o", "t.txt", "--events", "ev.ndjson", f"{served.nginx}/text.txt")
    assert r.returncode == 0, r.stderr
    assert sha256_file(tmp_path / "t.txt") == sha256_file(original)
    evs = events(tmp_path / "ev.ndjson")
    (resp,) = of_type(evs, "http_response")
    assert {k.lower(): v for k, v in resp["headers"]}["content-encoding"] == "gzip"
    (done,) = of_type(evs, "done")
    assert done["bytes"] == original.stat().st_size and 0 < done["wire_bytes"] < done["bytes"] // 5
    progress = of_type(evs, "progress")
    assert progress[-1]["bytes"] == done["wire_bytes"] and progress[-1]["file_bytes"] == done["bytes"]
    summary = " ".join(r.stderr.split())  # the summary (on stderr) says both sizes
    assert f"{done['wire_bytes']:,} bytes on the wire -> {done['bytes']:,} bytes in the file" in summary
    # without --compressed, the same nginx sends the file as it is
    plain = run_rawtui("--headless", "-o", "p.txt", "--events", "ev2.ndjson", f"{served.nginx}/text.txt")
    assert plain.returncode == 0, plain.stderr
    assert sha256_file(tmp_path / "p.txt") == sha256_file(original)
    (resp,) = of_type(events(tmp_path / "ev2.ndjson"), "http_response")
    assert "content-encoding" not in {k.lower() for k, _ in resp["headers"]}
    assert of_type(events(tmp_path / "ev2.ndjson"), "done")[0]["wire_bytes"] is None


# -- request headers, HEAD, output names --------------------------------------------------------------------


def test_H_A_e_are_seen_by_the_server(run_rawtui, served, tmp_path):
    r = run_rawtui("--headless", "-q", "-o", "x.bin", "-H", "X-Rawtui-Test: 42", "-H", "Accept:",
                   "-H", "X-Empty;", "-A", "agent/1.0", "-e", "http://ref.example/page",
                   f"{served.python}/1m7.bin?headers")
    assert r.returncode == 0, r.stderr
    (req,) = requests(served, "/1m7.bin?headers")
    assert req["method"] == "GET"
    assert header(req, "X-Rawtui-Test") == "42" and header(req, "X-Empty") == ""
    assert header(req, "User-Agent") == "agent/1.0" and header(req, "Referer") == "http://ref.example/page"
    assert header(req, "Accept") is None  # -H 'Accept:' removed rawtui's
    assert sha256_file(tmp_path / "x.bin") == sha256_file(served.root / "1m7.bin")


def test_malformed_H_is_exit_2_naming_the_flag(run_rawtui, served):
    r = run_rawtui("--headless", "-H", "no colon here", f"{served.python}/1m7.bin")
    assert r.returncode == 2
    assert r.stderr.strip() == ("rawtui: error: argument -H/--header: 'no colon here': no ':' between the name "
                                "and the value; use -H 'Name: value'")
    assert list(r.cwd.iterdir()) == []


def test_I_prints_the_head_and_saves_nothing(run_rawtui, served, tmp_path):
    r = run_rawtui("-I", f"{served.python}/1m7.bin?head")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()  # CRLF lines, as curl -I prints them (read here as text)
    assert lines[0] == "HTTP/1.1 200 OK" and lines[-1] == "" and r.stdout.endswith("\n\n")
    assert f"Content-Length: {(1 << 20) + 7}" in lines and any(x.startswith("ETag: ") for x in lines)
    assert r.stderr == ""
    assert list(tmp_path.iterdir()) == []
    assert requests(served, "/1m7.bin?head")[-1]["method"] == "HEAD"
    missing = run_rawtui("-I", f"{served.python}/missing.bin")
    assert missing.returncode == 6 and missing.stdout.splitlines()[0] == "HTTP/1.1 404 Not Found"
    assert missing.stderr.strip().startswith("rawtui: error: HTTP 404")


def test_O_and_o_dir_and_output_dir(run_rawtui, served, tmp_path):
    want = sha256_file(served.root / "1m7.bin")
    url = f"{served.python}/1m7.bin"
    (tmp_path / "sub").mkdir()
    (tmp_path / "dest").mkdir()
    for args, where in [
        (["-O"], tmp_path / "1m7.bin"),
        (["-o", "sub/"], tmp_path / "sub" / "1m7.bin"),
        (["-o", "sub"], tmp_path / "sub" / "1m7.bin"),  # an existing directory, without the slash
        (["--output-dir", "dest", "-O"], tmp_path / "dest" / "1m7.bin"),
        (["--output-dir", "dest", "-o", "named.bin"], tmp_path / "dest" / "named.bin"),
    ]:
        if where.exists():
            where.unlink()
        r = run_rawtui("--headless", "-q", *args, url)
        assert r.returncode == 0, (args, r.stderr)
        assert sha256_file(where) == want, args
    missing = run_rawtui("--headless", "-q", "--output-dir", "nowhere", "-O", url)
    assert missing.returncode == 7 and "the directory does not exist" in missing.stderr


def test_an_interrupted_compressed_download_keeps_nothing(lab, served, tmp_path):
    """A decoded body cannot be continued with a Range (of the encoded bytes): nothing is kept."""
    stall = 1_000_000  # decoded bytes: a fifth of text.txt
    argv = [sys.executable, "-m", "rawtui", "--headless", "--compressed", "--stall", f"{stall}:120", "-o", "t.txt",
            f"{served.nginx}/text.txt"]
    proc = lab.popen(lab.client_ns, argv, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                     env=child_env())
    part = tmp_path / "t.txt.part"
    try:
        deadline = time.monotonic() + 60
        while not (part.exists() and part.stat().st_size >= stall - HANDOFF):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the download never reached its stall"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert "kept" not in err
    assert list(tmp_path.iterdir()) == []
