"""rawtui's reading of an IPv6 capture agrees with tshark's ``tcp.analysis`` flags, as
test_lab_tshark_agreement.py checks for IPv4 (its counting functions, the same definitions, tolerance 0).

curl -6 downloads 4 MiB from a kernel HTTP server through the dual-stack lab (``Lab.create(ipv6=True)``);
the router's forwarding drops 1 % of the server's segments and duplicates another 1 %, and drops 0.5 % of
the client's ACKs (nftables ``numgen random`` rules in the router's namespace: the kernel here has no
netem, and the impairment relay's IPv6 path is another change). tcpdump captures on the client (TCP and
ICMPv6: the neighbor discovery too), and the file is read by ``rawtui replay`` and by tshark. The capture
is also checked for what only IPv6 has: the route's family, the client's neighbor solicitation for the
router and its advertisement, and the body's SHA-256 against the file served.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import child_env, require_tool
from test_lab_tshark_agreement import rawtui_counts, tshark_counts

from rawtui import events as ev
from rawtui.lab.impair import prepare_lab
from rawtui.lab.server import make_file
from rawtui.lab.tcpdump import start_tcpdump
from rawtui.lab.topology import Lab
from rawtui.recording import conversations, load_events

pytestmark = pytest.mark.lab

PORT = 8080  # tshark_counts tells the server's segments by this source port


def impair_rules(lab: Lab, *, loss_down: int, dup_down: int, loss_up: int) -> str:
    """An nftables table for the router's forward hook: per mille of the server's segments dropped and
    duplicated (a copy sent on to the client), and of the client's segments dropped."""
    return f"""table ip6 rawtui_impair {{
  chain f {{
    type filter hook forward priority 0; policy accept;
    tcp sport {PORT} numgen random mod 1000 < {loss_down} drop
    tcp sport {PORT} numgen random mod 1000 < {dup_down} dup to {lab.client_ip6} device "{lab.router_cif}"
    tcp dport {PORT} numgen random mod 1000 < {loss_up} drop
  }}
}}
"""


def capture_download6(lab: Lab, work: Path, size: int, *, loss_down: int = 10, dup_down: int = 10,
                      loss_up: int = 5, seed: int = 6) -> tuple[Path, Path]:
    """curl -6 through the impaired router, tcpdump on the client; (the capture, the file served), once
    the connection closed both ways."""
    curl = require_tool("curl")
    require_tool("tcpdump")
    nft = require_tool("nft")
    www = work / "www"
    www.mkdir()
    served = make_file(www / "f.bin", size, seed=seed)
    prepare_lab(lab)  # offloads off, as for the relay: every frame MTU-sized, so the rules see each segment
    rules = impair_rules(lab, loss_down=loss_down, dup_down=dup_down, loss_up=loss_up)
    (work / "impair.nft").write_text(rules)
    r = lab.run(lab.router_ns, [nft, "-f", str(work / "impair.nft")], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    server = lab.popen(lab.server_ns, [sys.executable, "-m", "http.server", "--bind", "::", "--directory", str(www),
                                       str(PORT)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        pcap = work / "c6.pcap"
        with start_tcpdump(lab, lab.client_ns, pcap, bpf="tcp or icmp6") as dump:
            r = lab.run(lab.client_ns, [curl, "-6", "-sS", "--retry", "50", "--retry-connrefused", "--retry-delay",
                                        "0", "-o", str(work / "out.bin"), f"http://[{lab.server_ip6}]:{PORT}/f.bin"],
                        capture_output=True, text=True, timeout=180, env=child_env())
            assert r.returncode == 0, r.stderr
            dump.wait_for("the download's connection, closed both ways", lambda p: any(
                c.ended and c.bytes_down > size for c in conversations(p).conversations))
        assert (work / "out.bin").read_bytes() == served.read_bytes()
        return pcap, served
    finally:
        lab.stop(server)
        lab.run(lab.router_ns, [nft, "delete", "table", "ip6", "rawtui_impair"], capture_output=True, timeout=30)


@pytest.fixture
def work() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="rtagree6"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_rawtui_agrees_with_tshark_on_ipv6(fresh_lab6: Lab, work: Path) -> None:
    size = 4 << 20
    pcap, served = capture_download6(fresh_lab6, work, size)
    ours, apart = rawtui_counts(pcap)
    theirs = tshark_counts(pcap)
    print(f"\nIPv6: rawtui {ours} (set apart: {apart})\ntshark {theirs}")
    for what in ("resent", "lost", "dup_ack", "zero_window"):
        assert ours[what] == theirs[what], what
    assert ours["resent"] and ours["lost"] and ours["dup_ack"]
    assert apart["dup_acks_rfc6675"] >= ours["dup_ack"]

    events = load_events(pcap)
    route = next(e for e in events if isinstance(e, ev.Route))
    lab = fresh_lab6
    assert (route.family, route.src_ip, route.dst_ip, route.gateway) == (
        6, lab.client_ip6, lab.server_ip6, lab.router_client_ip6)
    assert route.src_mac == lab.mac("client", lab.client_if)
    solicit = [e for e in events if isinstance(e, ev.NdpSolicit)]
    advert = [e for e in events if isinstance(e, ev.NdpAdvert)]
    assert solicit and solicit[0].target_ip == lab.router_client_ip6 and not solicit[0].unicast
    assert advert and advert[0].mac == lab.mac("router", lab.router_cif) and advert[0].solicited
    done = [e for e in events if isinstance(e, ev.Done)]
    assert done and done[0].bytes == size and done[0].sha256 == hashlib.sha256(served.read_bytes()).hexdigest()
