"""The inet_diag reader (rawtui.link.tcpdiag) against ``ss -tin`` on real sockets of a network namespace:
a connection on its loopback carries 1 MB one way and rests; both of its sockets read the same from the
reader as from ss (the same kernel numbers through two programs)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable

import pytest
from conftest import child_env, require_tool

from rawtui.link.tcpdiag import TcpDiagReader

CHILD = r"""
import dataclasses, json, socket, subprocess, sys
from rawtui.link.tcpdiag import TcpDiagReader
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen()
c = socket.create_connection(srv.getsockname()); a, _ = srv.accept()
a.sendall(b"x" * 1_000_000)
got = 0
while got < 1_000_000:
    got += len(c.recv(1 << 20))
c.sendall(b"ok"); assert a.recv(2) == b"ok"
ends = ("127.0.0.1", c.getsockname()[1], "127.0.0.1", srv.getsockname()[1])
with TcpDiagReader() as r:
    for _ in range(10_000):  # until the connection rests (all acknowledged) and stays so across the ss run
        mine = r.find(*ends)
        if any(d.unacked for d in mine):
            continue
        ss = subprocess.run([sys.argv[1], "-tinH"], capture_output=True, text=True,
                            check=True).stdout
        if r.find(*ends) == mine:
            break
    else:
        sys.exit("the connection never rested")
print(json.dumps({"diag": [dataclasses.asdict(d) for d in mine], "ss": ss}))
"""


def _ss_entries(text: str) -> dict[tuple[str, str], dict[str, str]]:
    """``ss -tinH`` output (State Recv-Q Send-Q Local Peer, then the info line): per (local, peer), the key:value words of its info line (and the algorithm)."""
    out: dict[tuple[str, str], dict[str, str]] = {}
    lines = text.splitlines()
    for head, info in zip(lines[::2], lines[1::2], strict=True):
        parts = head.split()
        words: dict[str, str] = {"state": parts[0]}
        for w in info.split():
            k, sep, v = w.partition(":")
            if sep:
                words[k] = v
            elif re.fullmatch(r"[a-z_]+", w) and "algorithm" not in words:
                words["algorithm"] = w
        out[(parts[3], parts[4])] = words
    return out


@pytest.mark.lab
def test_the_reader_says_what_ss_says(netns: Callable[[], str]) -> None:
    ss = require_tool("ss")
    ns = netns()
    subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
    res = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", CHILD, ss], capture_output=True,
                         text=True, timeout=60, env=child_env(), check=False)
    assert res.returncode == 0, res.stderr[-2000:]
    got = json.loads(res.stdout)
    entries = _ss_entries(got["ss"])
    assert len(got["diag"]) == 2 and len(entries) == 2, got
    for d in got["diag"]:
        words = entries[(f"{d['local_ip']}:{d['local_port']}", f"{d['remote_ip']}:{d['remote_port']}")]
        assert d["state"] == "ESTABLISHED" and words["state"] == "ESTAB"
        assert d["congestion"] == words["algorithm"]
        assert d["cwnd"] == int(words["cwnd"]) > 0
        assert d["mss"] == int(words["mss"])
        assert d["rto_ms"] == pytest.approx(float(words["rto"]))
        rtt, rttvar = (float(x) for x in words["rtt"].split("/"))
        assert d["rtt_ms"] == pytest.approx(rtt, abs=0.001) and d["rttvar_ms"] == pytest.approx(rttvar, abs=0.001)
        assert d["ssthresh"] == (int(words["ssthresh"]) if "ssthresh" in words else None)
        assert d["bytes_acked"] == int(words.get("bytes_acked", 0))
        assert d["bytes_received"] == int(words.get("bytes_received", 0))
        assert (d["retrans"], d["total_retrans"]) == tuple(int(x) for x in words.get("retrans", "0/0").split("/"))
    receiver, sender = sorted(got["diag"], key=lambda d: d["bytes_acked"])
    assert sender["bytes_acked"] == 1_000_000 and receiver["bytes_received"] == 1_000_000
    assert receiver["bytes_acked"] == 3 and sender["bytes_received"] == 2  # "ok" (+ 1: the connecting end's SYN)


def test_the_reader_runs_without_root() -> None:
    """A dump needs no privilege; the test process's own connection is in it."""
    import socket

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    with srv, socket.create_connection(srv.getsockname()) as c, TcpDiagReader() as r:
        a, _ = srv.accept()
        ports = c.getsockname()[1], srv.getsockname()[1]
        with a:
            found = r.find("127.0.0.1", ports[0], "127.0.0.1", ports[1])
    assert {(d.local_port, d.state) for d in found} == {(ports[0], "ESTABLISHED"), (ports[1], "ESTABLISHED")}
    assert all(d.cwnd > 0 and d.mss > 0 for d in found)
