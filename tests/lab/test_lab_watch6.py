"""``rawtui watch`` over IPv6 in the dual-stack lab: curl -6 downloads while the watch, started before it in
the client namespace, follows the connection passively (``--host`` an IPv6 address) and ends when it ends.

The router's forward hook drops 1 % of the server's segments (nftables ``numgen random``, as in
test_lab_tshark_agreement6.py). Checked against witnesses that are not rawtui's: the served file's sha256,
tshark's retransmissions (and the fills it names out of order) on the pcap the watch wrote, and the kernel's TCP state of curl's AF_INET6 socket
(inet_diag), named ``[addr]:port`` like the flow.
"""

from __future__ import annotations

import select
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import child_env, require_tool
from test_lab_tshark_agreement6 import PORT, impair_rules

from rawtui import events as ev
from rawtui.lab.impair import prepare_lab
from rawtui.lab.scenarios import load_events
from rawtui.lab.server import make_file, sha256_file
from rawtui.lab.topology import Lab

SIZE = 4 << 20
WAIT = 120.0


@pytest.mark.lab
def test_watch_follows_curl_over_ipv6(fresh_lab6: Lab, tmp_path: Path) -> None:
    lab = fresh_lab6
    curl, tshark, nft = require_tool("curl"), require_tool("tshark"), require_tool("nft")
    prepare_lab(lab)
    (tmp_path / "impair.nft").write_text(impair_rules(lab, loss_down=10, dup_down=0, loss_up=0))
    r = lab.run(lab.router_ns, [nft, "-f", str(tmp_path / "impair.nft")], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    www = tmp_path / "www"
    www.mkdir()
    make_file(www / "f.bin", SIZE, seed=6)
    server = lab.popen(lab.server_ns, [sys.executable, "-m", "http.server", "--bind", "::", "--directory", str(www),
                                       str(PORT)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    watch = None
    try:
        watch = lab.popen(lab.client_ns, [sys.executable, "-m", "rawtui", "watch", "--headless", "-i", lab.client_if,
                                          "--host", lab.server_ip6, "--pcap", "w.pcap", "--events", "w.ndjson"],
                          cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env())
        assert watch.stderr is not None
        ready, _, _ = select.select([watch.stderr], [], [], 30)
        assert ready, "rawtui watch said nothing"
        line = watch.stderr.readline()
        assert line.startswith(f"rawtui: watching {lab.client_if} (receive-only"), line
        res = lab.run(lab.client_ns, [curl, "-6", "-s", "--retry", "50", "--retry-connrefused", "--retry-delay", "0",
                                      "--limit-rate", "20M", "-o", str(tmp_path / "out.bin"),
                                      f"http://[{lab.server_ip6}]:{PORT}/f.bin"],
                      capture_output=True, text=True, timeout=WAIT)
        assert res.returncode == 0, res.stderr
        _out, err = watch.communicate(timeout=WAIT)  # it ends by itself when the connection does
        assert watch.returncode == 0, err[-3000:]
    finally:
        if watch is not None and watch.poll() is None:
            lab.stop(watch)
        lab.stop(server)
    served = sha256_file(www / "f.bin")
    assert sha256_file(tmp_path / "out.bin") == served
    events = load_events(str(tmp_path / "w.ndjson"))
    done = next(e for e in events if isinstance(e, ev.Done))
    assert done.bytes == SIZE and done.sha256 == served
    route = next(e for e in events if isinstance(e, ev.Route))
    assert (route.family, route.src_ip, route.dst_ip) == (6, lab.client_ip6, lab.server_ip6)
    assert any(isinstance(e, ev.NdpAdvert) and e.ip == lab.router_client_ip6 for e in events)
    # the server's retransmissions, against tshark's reading of the watch's own frames
    data = f"tcp.srcport == {PORT} && tcp.len > 0"
    counts = []
    for display in (f"{data} && tcp.analysis.retransmission",
                    f"{data} && tcp.analysis.out_of_order && !tcp.analysis.retransmission"):
        out = subprocess.run([tshark, "-n", "-r", str(tmp_path / "w.pcap"), "-Y", display, "-T", "fields", "-e",
                              "frame.number"], capture_output=True, text=True, timeout=120, check=False)
        assert out.returncode == 0, out.stderr[-2000:]
        counts.append(len(out.stdout.split()))
    # (no delay here: at a sub-millisecond RTT a resend carries its original's millisecond timestamp, so
    # rawtui names some fills "late" rather than resent; compared as test_lab_tshark_agreement.py compares)
    c = done.counters
    ours, theirs = c["peer_retrans"] + c["network_late"] + c["network_copies"], sum(counts)
    assert ours > 0 and abs(ours - theirs) <= 2, (ours, counts)
    # the kernel's state of curl's socket: an AF_INET6 one, named as the flow is
    handshake = next(e for e in events if isinstance(e, ev.Handshake))
    kernel = [e for e in events if isinstance(e, ev.KernelTcpInfo)]
    assert kernel, f"no inet_diag sample of curl's socket: {err[-3000:]}"
    assert {k.local for k in kernel} == {f"[{lab.client_ip6}]:{handshake.local_port}"}
    assert {k.remote for k in kernel} == {f"[{lab.server_ip6}]:{PORT}"} and all(k.role == "receiver" for k in kernel)
    print(f"\nwatch6: {done.bytes:,} bytes; server retransmissions rawtui {ours}, tshark {theirs}; "
          f"{len(kernel)} kernel samples")
