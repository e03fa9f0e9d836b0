"""End to end in the lab: rawtui's own stack downloads from a real HTTP server, byte-exact.

Each test runs ``python -m rawtui`` inside the client namespace (the ``run_rawtui`` fixture) against the
embedded Python server or nginx in the server namespace, and compares the sha256 of what landed with the
source. The conftest checks after each test that no rawtui nft table and no process is left behind.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import child_env

from rawtui.lab.server import sha256_file

pytestmark = pytest.mark.lab
pytest_plugins = ("userland",)  # runs as another user (tests/userland.py)

SIZES = ["empty.bin", "one.bin", "1m.bin", "1m7.bin", "50m.bin"]


def no_partial_files(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if p.name.endswith((".part", ".part.meta"))]


@pytest.mark.parametrize("name", SIZES)
def test_download_python_server(run_rawtui, pyserver, www, name):
    r = run_rawtui("--headless", f"{pyserver}/{name}")
    assert r.returncode == 0, r.stderr
    got = r.cwd / name
    assert sha256_file(got) == www.sha256[name]
    assert got.stat().st_size == www.size(name)
    assert no_partial_files(r.cwd) == []


@pytest.mark.parametrize("name", SIZES)
def test_download_nginx(run_rawtui, nginx, www, name):
    r = run_rawtui("--headless", "-o", "out.bin", f"{nginx}/{name}")
    assert r.returncode == 0, r.stderr
    assert sha256_file(r.cwd / "out.bin") == www.sha256[name]


def test_chunked_body(run_rawtui, pyserver, www):
    r = run_rawtui("--headless", "-o", "c.bin", f"{pyserver}/chunked/1m7.bin")
    assert r.returncode == 0, r.stderr
    assert sha256_file(r.cwd / "c.bin") == www.sha256["1m7.bin"]


def test_close_delimited_body(run_rawtui, pyserver, www):
    r = run_rawtui("--headless", "-o", "c.bin", f"{pyserver}/close/1m.bin")
    assert r.returncode == 0, r.stderr
    assert sha256_file(r.cwd / "c.bin") == www.sha256["1m.bin"]


def test_redirects_are_followed(run_rawtui, pyserver, www, tmp_path):
    events = tmp_path / "ev.ndjson"
    r = run_rawtui("--headless", "--events", events, f"{pyserver}/redirect/2/1m.bin")
    assert r.returncode == 0, r.stderr
    assert sha256_file(r.cwd / "1m.bin") == www.sha256["1m.bin"]
    kinds = [json.loads(line)["type"] for line in events.read_text().splitlines()]
    assert kinds.count("redirect") == 3  # /redirect/2 -> /redirect/1 -> /redirect/0 -> /1m.bin
    assert kinds.count("handshake") == 1  # HTTP keep-alive: every hop on the one connection


def test_redirect_loop_is_an_http_error(run_rawtui, pyserver):
    r = run_rawtui("--headless", "-o", "x.bin", f"{pyserver}/redirect-loop")
    assert r.returncode == 6
    assert "too many redirects" in r.stderr
    assert not (r.cwd / "x.bin").exists() and no_partial_files(r.cwd) == []


def test_404_is_exit_6_and_no_file(run_rawtui, pyserver):
    r = run_rawtui("--headless", f"{pyserver}/missing.bin")
    assert r.returncode == 6
    assert r.stderr.strip().splitlines()[-1].startswith("rawtui: error: HTTP 404")
    assert "Traceback" not in r.stderr
    assert list(r.cwd.iterdir()) == []


def test_truncated_body_is_exit_6_and_no_file(run_rawtui, pyserver, www):
    """A lost connection: exit 6, nothing under the final name, what came kept in 1m.bin.part for -C -."""
    r = run_rawtui("--headless", f"{pyserver}/truncated/1m.bin")
    assert r.returncode == 6, r.stderr
    assert "truncated" in r.stderr and "524,288 bytes kept in 1m.bin.part" in r.stderr
    assert sorted(p.name for p in r.cwd.iterdir()) == ["1m.bin.part", "1m.bin.part.meta"]
    assert (r.cwd / "1m.bin.part").read_bytes() == www.path("1m.bin").read_bytes()[: 1 << 19]


def test_closed_port_is_exit_5_quickly(run_rawtui, lab, tmp_path_factory):
    events = tmp_path_factory.mktemp("closed") / "ev.ndjson"  # not in the cwd, which must stay empty
    r = run_rawtui("--headless", "--events", events, f"http://{lab.server_ip}:9/x.bin", timeout=30)
    assert r.returncode == 5, r.stderr
    assert "refused" in r.stderr
    assert list(r.cwd.iterdir()) == []
    # "quickly", counted rather than timed: the server's RST answered the first SYN, and rawtui gave up
    # at once, with no retransmission (an RTO wait would be one)
    evs = [json.loads(line) for line in events.read_text().splitlines() if line.strip()]
    assert [e for e in evs if e["type"] == "retransmit"] == []
    assert [e["flags"] for e in evs if e["type"] == "segment_out"] == ["S"]
    assert any(e["type"] == "segment_in" and "R" in e["flags"] for e in evs)


def test_unknown_interface_is_exit_4(run_rawtui, pyserver):
    r = run_rawtui("--headless", "-i", "nosuch0", f"{pyserver}/one.bin")
    assert r.returncode == 4
    assert "unknown interface" in r.stderr and "Traceback" not in r.stderr


def test_explicit_interface(run_rawtui, pyserver, www, lab):
    r = run_rawtui("--headless", "-i", lab.client_if, "-o", "o.bin", f"{pyserver}/1m.bin")
    assert r.returncode == 0, r.stderr
    assert sha256_file(r.cwd / "o.bin") == www.sha256["1m.bin"]


def test_stdout_output(run_rawtui, pyserver, www, lab):
    argv = [sys.executable, "-m", "rawtui", "--headless", "-q", "-o", "-", f"{pyserver}/1m7.bin"]
    r = lab.run(lab.client_ns, argv, capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert hashlib.sha256(r.stdout).hexdigest() == www.sha256["1m7.bin"]


def test_unwritable_directory_is_exit_7(run_rawtui, pyserver):
    r = run_rawtui("--headless", "-o", "/proc/rawtui-cannot-write/x.bin", f"{pyserver}/one.bin")
    assert r.returncode == 7, r.stderr
    assert "cannot write" in r.stderr


_AS_NOBODY = r"""
import os, sys
import rawtui.cli, rawtui.download.session, rawtui.views.headless, rawtui.link.route  # import while root can read
import io, pyroute2, h11, rich.console, rich.progress
rich.console.Console(file=io.StringIO()).print(":wave: warm up rich's lazy imports")
os.setgroups([]); os.setgid(65534); os.setuid(65534)
sys.exit(rawtui.cli.main(sys.argv[1:]))
"""


def test_non_root_user_is_exit_3(lab, pyserver, userland):
    # from the readable copy (tests/userland.py): the checkout may be under a 0700 directory
    argv = [userland.python, "-c", _AS_NOBODY, "--headless", "-o", "/tmp/rawtui-nobody.bin", f"{pyserver}/one.bin"]
    r = lab.run(lab.client_ns, argv, capture_output=True, text=True, timeout=60, env=userland.env(), cwd="/")
    assert r.returncode == 3, r.stderr
    assert "CAP_NET_RAW" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.needs_tool("setpriv")
def test_root_without_cap_net_raw_is_exit_3(lab, pyserver, tmp_path):
    argv = ["setpriv", "--inh-caps=-all", "--bounding-set=-net_raw,-net_admin", sys.executable, "-m", "rawtui",
            "--headless", "-o", str(tmp_path / "x.bin"), f"{pyserver}/one.bin"]
    r = lab.run(lab.client_ns, argv, capture_output=True, text=True, timeout=60, env=child_env())
    assert r.returncode == 3, r.stderr
    assert "CAP_NET_RAW" in r.stderr


def test_a_reader_that_keeps_up_keeps_the_window_open(run_rawtui, nginx, www, tmp_path):
    """The file is written as fast as frames come, so the window the server sees stays open: the loop gives
    the reader its turn after a quarter of the receive buffer (GRO frames are up to 64 KB: a batch of 256
    of them used to fill the buffer before the reader ran, and ACKs said "window 0" to a server that had
    done nothing wrong)."""
    events = tmp_path / "ev.ndjson"
    r = run_rawtui("--headless", "-q", "--events", events, "-o", "o.bin", f"{nginx}/50m.bin")
    assert r.returncode == 0, r.stderr
    records = [json.loads(line) for line in events.read_text().splitlines()]
    shake = next(d for d in records if d["type"] == "handshake")
    acks = [d["window"] << shake["wscale"] for d in records if d["type"] == "segment_out" and "S" not in d["flags"]]
    done = records[-1]
    assert done["sha256"] == www.sha256["50m.bin"] and len(acks) > 100
    assert min(acks) >= (8 << 20) // 2, sorted(acks)[:10]  # the default buffer, 8 MiB; within a quarter + a frame
    assert done["counters"]["window_updates"] == 0  # never closed far enough to need one


def test_events_and_pcap(run_rawtui, pyserver, www, tmp_path):
    events, pcap = tmp_path / "ev.ndjson", tmp_path / "cap.pcap"
    r = run_rawtui("--headless", "--events", events, "--pcap", pcap, "-o", "o.bin", f"{pyserver}/1m.bin")
    assert r.returncode == 0, r.stderr
    records = [json.loads(line) for line in events.read_text().splitlines()]
    kinds = {d["type"] for d in records}
    for needed in ("route", "arp_request", "arp_reply", "tcp_state", "handshake", "segment_in", "segment_out",
                   "window", "progress", "done"):
        assert needed in kinds, needed
    assert all(isinstance(d["t"], float | int) for d in records)
    times = [d["t"] for d in records]
    assert times == sorted(times)
    done = records[-1]
    assert done["type"] == "done" and done["sha256"] == www.sha256["1m.bin"] and done["bytes"] == 1 << 20
    if shutil.which("tshark"):
        out = subprocess.run(["tshark", "-r", str(pcap), "-T", "fields", "-e", "frame.protocols"],
                             capture_output=True, text=True, timeout=60, check=False)
        assert out.returncode == 0, out.stderr
        protos = out.stdout.split()
        assert any(p.endswith("arp") for p in protos)
        assert sum("tcp" in p for p in protos) > 10
        assert any("http" in p for p in protos)


def test_kernel_rst_guard_removed_and_connection_survives(run_rawtui, pyserver, lab, www):
    """With the guard, the kernel's RST never reaches the server: the transfer completes; after it the
    table is gone (the conftest also checks)."""
    r = run_rawtui("--headless", "-o", "o.bin", f"{pyserver}/1m.bin")
    assert r.returncode == 0, r.stderr
    tables = lab.run(lab.client_ns, ["nft", "list", "tables"], capture_output=True, text=True).stdout
    assert "rawtui" not in tables
