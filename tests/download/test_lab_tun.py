"""Downloads through a layer-3 interface: the lab's "VPN" (``Lab.create(vpn=True)``), where the client
reaches the server only through tun0 and the lab's userspace tunnel. rawtui runs there on a SOCK_DGRAM
packet socket (Medium.IP): no ARP, bare IP packets, a raw-IP (LINKTYPE_RAW) capture, the MSS from the tun's
MTU; HTTP from the Python server and nginx, HTTPS, byte-exact by SHA-256; and what happens without a route."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest
from conftest import _make_lab, child_env, lab_unavailable, require_tool

from rawtui.lab.server import sha256_file
from rawtui.lab.topology import Lab
from rawtui.link.pcap import LINKTYPE_RAW

pytestmark = pytest.mark.lab

PORT = 8080
PORTS = {"good": 443, "expired": 8443, "wrong_host": 9443, "unknown_ca": 10443, "redirect": 8081}


@pytest.fixture(scope="module")
def vpn_server(lab_vpn: Lab, www) -> Iterator[str]:
    """rawtui.lab.server in the VPN lab's server namespace; the base URL."""
    proc = lab_vpn.popen(lab_vpn.server_ns, [sys.executable, "-m", "rawtui.lab.server", "--root", str(www.root),
                                             "--port", str(PORT)], stdout=subprocess.PIPE, env=child_env())
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith(b"ready")
        yield f"http://{lab_vpn.server_ip}:{PORT}"
    finally:
        lab_vpn.stop(proc)


def events_of(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_vpn_lab_reaches_the_server_only_through_tun0(lab_vpn: Lab) -> None:
    route = lab_vpn.run("c", ["ip", "-o", "route", "get", lab_vpn.server_ip], capture_output=True, text=True)
    assert f"dev {lab_vpn.tun_if} src {lab_vpn.client_tun_ip}" in route.stdout
    link = lab_vpn.run("c", ["ip", "-o", "link", "show", lab_vpn.tun_if], capture_output=True, text=True)
    assert "link/none" in link.stdout and f"mtu {lab_vpn.tun_mtu}" in link.stdout
    assert lab_vpn.ping("c", lab_vpn.server_ip)


def test_the_tunnel_is_stopped_with_the_lab() -> None:
    lab = _make_lab(vpn=True)
    started = lab.started_pids
    assert len(started) == 2  # one tunnel end in the client, one in the router
    lab.destroy()
    for pid in started:
        try:
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            continue
        assert state == "Z", f"tunnel process {pid} is still running"  # (a zombie of this test's, at most)


@pytest.mark.parametrize("name", ["1m7.bin", "50m.bin"])
def test_http_over_tun_is_byte_exact_with_a_raw_ip_capture(run_rawtui, lab_vpn, vpn_server, www, name) -> None:
    r = run_rawtui(lab_vpn, "--headless", "--events", "ev.ndjson", "--pcap", "x.pcap", "-o", "o.bin",
                   f"{vpn_server}/{name}")
    assert r.returncode == 0, r.stderr
    assert sha256_file(r.cwd / "o.bin") == www.sha256[name]
    events = events_of(r.cwd / "ev.ndjson")
    (route,) = [e for e in events if e["type"] == "route"]
    assert route["medium"] == "ip" and route["iface"] == lab_vpn.tun_if
    assert route["next_hop"] == "point-to-point" and route["src_mac"] == ""
    assert route["src_ip"] == lab_vpn.client_tun_ip and route["mtu"] == lab_vpn.tun_mtu
    assert any(e["type"] == "info" and "point-to-point: no link-layer address" in e["message"] for e in events)
    assert not [e for e in events if e["type"].startswith("arp")]  # nothing asked, nothing sent
    (hs,) = [e for e in events if e["type"] == "handshake"]
    assert hs["mss"] == lab_vpn.tun_mtu - 40  # the SYN's MSS, from the tun's MTU
    assert any(e["type"] == "info" and e["message"].startswith("firewall:") for e in events)
    # the capture: raw IP packets (LINKTYPE_RAW), every one a packet of the connection, as tshark reads it
    pcap = (r.cwd / "x.pcap").read_bytes()
    assert int.from_bytes(pcap[20:24], "little") == LINKTYPE_RAW
    ours = _count_records(pcap)
    tshark = require_tool("tshark")
    out = subprocess.run([tshark, "-r", str(r.cwd / "x.pcap"), "-T", "fields", "-e", "frame.protocols"],
                         capture_output=True, text=True, check=True).stdout.split()
    assert len(out) == ours and ours > (30_000 if name == "50m.bin" else 700)
    assert all(p.startswith("raw:ip:tcp") for p in out), set(out)


def test_ipv6_over_tun_is_byte_exact(run_rawtui, lab_vpn, vpn_server, www) -> None:
    """The same tun carries IPv6: SOCK_DGRAM, the filter for IPv6 at offset 0, no neighbor discovery, the
    MSS from the tun's MTU less 60, the capture raw IP that tshark reads as IPv6."""
    url = f"http://[{lab_vpn.server_ip6}]:{PORT}/1m7.bin"
    r = run_rawtui(lab_vpn, "--headless", "--events", "ev.ndjson", "--pcap", "x.pcap", "-o", "o.bin", url)
    assert r.returncode == 0, r.stderr
    assert sha256_file(r.cwd / "o.bin") == www.sha256["1m7.bin"]
    events = events_of(r.cwd / "ev.ndjson")
    (route,) = [e for e in events if e["type"] == "route"]
    assert (route["medium"], route["family"], route["iface"], route["src_ip"]) == (
        "ip", 6, lab_vpn.tun_if, lab_vpn.client_tun_ip6)
    assert not [e for e in events if e["type"].startswith(("arp", "ndp"))]  # nothing to resolve
    (hs,) = [e for e in events if e["type"] == "handshake"]
    assert hs["mss"] == lab_vpn.tun_mtu - 60
    tshark = require_tool("tshark")
    out = subprocess.run([tshark, "-r", str(r.cwd / "x.pcap"), "-T", "fields", "-e", "frame.protocols"],
                         capture_output=True, text=True, check=True).stdout.split()
    assert len(out) == _count_records((r.cwd / "x.pcap").read_bytes()) > 700
    assert all(p.startswith("raw:ipv6:tcp") for p in out), set(out)


def _count_records(pcap: bytes) -> int:
    n, off = 0, 24
    while off + 16 <= len(pcap):
        off += 16 + int.from_bytes(pcap[off + 8:off + 12], "little")
        n += 1
    return n


def test_nginx_over_tun(run_rawtui, lab_vpn, www) -> None:
    from rawtui.lab.nginx import find_nginx, start_nginx

    if find_nginx() is None:
        lab_unavailable("nginx is not installed (apt-get install nginx-light)")
    handle = start_nginx(lab_vpn, www.root, 80)
    try:
        r = run_rawtui(lab_vpn, "--headless", "-o", "o.bin", f"{handle.url}/50m.bin")
    finally:
        handle.stop()
    assert r.returncode == 0, r.stderr
    assert sha256_file(r.cwd / "o.bin") == www.sha256["50m.bin"]


def test_https_over_tun(run_rawtui, lab_vpn, www, tmp_path_factory) -> None:
    pytest.importorskip("cryptography")
    from rawtui.lab.nginx import find_nginx, start_nginx
    from rawtui.lab.pki import make_pki, nginx_tls_servers

    if find_nginx() is None:
        lab_unavailable("nginx is not installed (apt-get install nginx-light)")
    pki = make_pki(tmp_path_factory.mktemp("pki-vpn"), lab_vpn.server_ip)
    handle = start_nginx(lab_vpn, www.root, 8088,
                         extra_conf=nginx_tls_servers(pki, lab_vpn.server_ip, www.root, PORTS))
    try:
        r = run_rawtui(lab_vpn, "--headless", "--cacert", pki.ca, "--events", "ev.ndjson", "-o", "o.bin",
                       f"https://{lab_vpn.server_ip}/1m7.bin")
    finally:
        handle.stop()
    assert r.returncode == 0, r.stderr
    assert sha256_file(r.cwd / "o.bin") == www.sha256["1m7.bin"]
    events = events_of(r.cwd / "ev.ndjson")
    (tls,) = [e for e in events if e["type"] == "tls"]
    assert tls["verified"]
    assert [e["medium"] for e in events if e["type"] == "route"] == ["ip"]


def test_interfaces_lists_tun0_as_usable(lab_vpn: Lab) -> None:
    r = lab_vpn.run("c", [sys.executable, "-m", "rawtui", "interfaces", "--json"], capture_output=True, text=True,
                    env=child_env())
    assert r.returncode == 0, r.stderr
    (tun,) = [i for i in json.loads(r.stdout)["interfaces"] if i["name"] == lab_vpn.tun_if]
    assert tun["usable"] and tun["medium"] == "ip" and not tun["ethernet"]
    r = lab_vpn.run("c", [sys.executable, "-m", "rawtui", "interfaces", "--json", f"http://{lab_vpn.server_ip}/"],
                    capture_output=True, text=True, env=child_env())
    assert r.returncode == 0, r.stderr
    route = json.loads(r.stdout)["route"]
    assert route["iface"] == lab_vpn.tun_if and route["medium"] == "ip" and route["next_hop"] == "point-to-point"
    r = lab_vpn.run("c", [sys.executable, "-m", "rawtui", "interfaces", "--probe", f"http://{lab_vpn.server_ip}/"],
                    capture_output=True, text=True, env=child_env(COLUMNS="200"))
    assert r.returncode == 0, r.stderr
    assert "point-to-point: no link-layer address, nothing to resolve on tun0" in r.stdout
    assert "ARP probe" not in r.stdout  # nothing to ask on a point-to-point link


def test_no_route_once_the_tunnel_is_down(run_rawtui) -> None:
    lab = _make_lab(vpn=True)
    try:
        lab.run("c", ["ip", "link", "set", "dev", lab.tun_if, "down"], check=True)  # its routes go with it
        r = run_rawtui(lab, "--headless", "-o", "o.bin", f"http://{lab.server_ip}:{PORT}/1m.bin")
        assert r.returncode == 4, r.stderr
        last = r.stderr.strip().splitlines()[-1]
        assert f"no IPv4 route to {lab.server_ip}" in last, last
        assert "Traceback" not in r.stderr
    finally:
        lab.destroy()
