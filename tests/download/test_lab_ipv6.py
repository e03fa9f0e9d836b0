"""End to end over IPv6 in the dual-stack lab: rawtui's own stack (neighbor discovery instead of ARP, TCP
over IPv6) downloads from the embedded server and nginx, byte-exact by sha256; a dual-stack name chooses
IPv6 and ``-4`` forces IPv4 (the route event says which and why); HTTPS; a link-local gateway; Packet Too
Big lowering the MSS mid-transfer (and IPv4's fragmentation-needed, for comparison); no neighbor
advertisement (exit 4)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from conftest import lab_unavailable, start_lab_server

from rawtui.lab.server import sha256_file
from rawtui.lab.topology import Lab

if TYPE_CHECKING:
    from conftest import RunRawtui, Www

pytestmark = pytest.mark.lab

PY_PORT, NGINX_PORT, TLS_PORTS = 8090, 8091, {"good": 443, "expired": 8443, "wrong_host": 9443,
                                              "unknown_ca": 10443, "redirect": 8092}


@pytest.fixture(scope="module")
def pyserver6(lab6: Lab, www: Www) -> Iterator[int]:
    proc = start_lab_server(lab6, www.root, PY_PORT)
    try:
        yield PY_PORT
    finally:
        lab6.stop(proc)


@pytest.fixture(scope="module")
def nginx6(lab6: Lab, www: Www) -> Iterator[str]:
    from rawtui.lab.nginx import find_nginx, start_nginx

    if find_nginx() is None:
        lab_unavailable("nginx is not installed (apt-get install nginx-light)")
    with start_nginx(lab6, www.root, NGINX_PORT) as handle:
        yield handle.url6


def events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def only(evs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = [e for e in evs if e["type"] == kind]
    return found


@pytest.mark.parametrize("name", ["empty.bin", "1m7.bin", "50m.bin"])
def test_ipv6_literal_python_server(run_rawtui: RunRawtui, lab6: Lab, www: Www, pyserver6: int, name: str) -> None:
    r = run_rawtui(lab6, "--headless", "--events", "ev.ndjson", "-o", "o.bin",
                   f"http://[{lab6.server_ip6}]:{pyserver6}/{name}")
    assert r.returncode == 0, r.stderr
    assert sha256_file(r.cwd / "o.bin") == www.sha256[name]
    evs = events(r.cwd / "ev.ndjson")
    route = only(evs, "route")
    assert (route["family"], route["dst_ip"], route["src_ip"]) == (6, lab6.server_ip6, lab6.client_ip6)
    assert route["next_hop"] == lab6.router_client_ip6 and route["medium"] == "ethernet"
    assert route["mtu"] == 1500
    advert = [e for e in evs if e["type"] == "ndp_advert"]
    assert [e["ip"] for e in advert] == [lab6.router_client_ip6]  # the router's MAC by neighbor discovery
    assert not [e for e in evs if e["type"].startswith("arp")]
    handshake = only(evs, "handshake")
    assert handshake["mss"] == 1440  # 1500 - 40 (IPv6) - 20 (TCP)


@pytest.mark.parametrize("name", ["one.bin", "50m.bin"])
def test_ipv6_literal_nginx(run_rawtui: RunRawtui, lab6: Lab, www: Www, nginx6: str, name: str) -> None:
    r = run_rawtui(lab6, "--headless", "--events", "ev.ndjson", "-o", "o.bin", f"{nginx6}/{name}")
    assert r.returncode == 0, r.stderr
    assert sha256_file(r.cwd / "o.bin") == www.sha256[name]
    assert only(events(r.cwd / "ev.ndjson"), "route")["family"] == 6


@pytest.fixture
def dual_name(lab6: Lab) -> Iterator[str]:
    lab6.write_hosts({"www.lab": [lab6.server_ip, lab6.server_ip6], "v6only.lab": [lab6.server_ip6]})
    try:
        yield "www.lab"
    finally:
        lab6.write_hosts({})


@pytest.mark.parametrize(("flag", "family"), [(None, 6), ("-4", 4), ("-6", 6)])
def test_dual_stack_name_prefers_ipv6_and_minus_4_forces_ipv4(
    run_rawtui: RunRawtui, lab6: Lab, www: Www, pyserver6: int, dual_name: str, flag: str | None, family: int
) -> None:
    r = run_rawtui(lab6, "--headless", "--events", "ev.ndjson", "-o", "o.bin", *([flag] if flag else []),
                   f"http://{dual_name}:{pyserver6}/1m7.bin")
    assert r.returncode == 0, r.stderr
    assert sha256_file(r.cwd / "o.bin") == www.sha256["1m7.bin"]
    route = only(events(r.cwd / "ev.ndjson"), "route")
    assert route["family"] == family
    assert route["dst_ip"] == (lab6.server_ip6 if family == 6 else lab6.server_ip)
    if flag:
        assert route["family_reason"].startswith(f"{flag}: its {'A' if family == 4 else 'AAAA'} record")
    else:  # curl's choice: IPv6, since the kernel routes it
        assert route["family_reason"].startswith("AAAA and A records; IPv6 because the kernel routes")


def test_ipv6_only_name_with_minus_4_is_exit_4(run_rawtui: RunRawtui, lab6: Lab, pyserver6: int, dual_name: str) -> None:
    r = run_rawtui(lab6, "--headless", "-4", "-o", "o.bin", f"http://v6only.lab:{pyserver6}/one.bin")
    assert r.returncode == 4, r.stderr
    lines = [line for line in r.stderr.strip().splitlines() if line.startswith("rawtui: error:")]
    assert len(lines) == 1 and "Traceback" not in r.stderr
    assert not (r.cwd / "o.bin").exists()


@pytest.fixture(scope="module")
def tls6(lab6: Lab, www: Www, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    pytest.importorskip("cryptography")
    from rawtui.lab.nginx import find_nginx, start_nginx
    from rawtui.lab.pki import make_pki, nginx_tls_servers

    if find_nginx() is None:
        lab_unavailable("nginx is not installed (apt-get install nginx-light)")
    pki = make_pki(tmp_path_factory.mktemp("pki6"), lab6.server_ip6)  # the certificate names the IPv6 address
    extra = nginx_tls_servers(pki, f"[{lab6.server_ip6}]", www.root, TLS_PORTS)
    with start_nginx(lab6, www.root, 8093, extra_conf=extra):
        yield pki.ca


@pytest.mark.parametrize("name", ["one.bin", "1m7.bin"])
def test_https_over_ipv6_is_byte_exact_and_verified(
    run_rawtui: RunRawtui, lab6: Lab, www: Www, tls6: Path, name: str
) -> None:
    r = run_rawtui(lab6, "--headless", "--cacert", tls6, "--events", "ev.ndjson", "-o", "o.bin",
                   f"https://[{lab6.server_ip6}]/{name}")
    assert r.returncode == 0, r.stderr
    assert sha256_file(r.cwd / "o.bin") == www.sha256[name]
    evs = events(r.cwd / "ev.ndjson")
    tls = only(evs, "tls")
    assert tls["verified"] and lab6.server_ip6 in tls["subject"]
    assert only(evs, "route")["family"] == 6


def test_https_over_ipv6_refuses_a_certificate_for_another_address(run_rawtui: RunRawtui, lab6: Lab, tls6: Path) -> None:
    r = run_rawtui(lab6, "--headless", "--cacert", tls6, "-o", "o.bin",
                   f"https://[{lab6.server_ip6}]:{TLS_PORTS['wrong_host']}/one.bin")
    assert r.returncode == 8, r.stderr
    assert "certificate" in r.stderr.strip().splitlines()[-1]


def test_link_local_gateway(run_rawtui: RunRawtui, fresh_lab6: Lab, www: Www) -> None:
    """The usual IPv6 default route: via the router's link-local address, fe80::1 on eth0."""
    lab = fresh_lab6
    lab.run("router", ["ip", "-6", "addr", "add", "fe80::1/64", "dev", lab.router_cif, "nodad"], check=True)
    lab.run("client", ["ip", "-6", "route", "replace", "default", "via", "fe80::1", "dev", lab.client_if], check=True)
    proc = start_lab_server(lab, www.root, PY_PORT)
    try:
        r = run_rawtui(lab, "--headless", "--events", "ev.ndjson", "-o", "o.bin",
                       f"http://[{lab.server_ip6}]:{PY_PORT}/1m7.bin")
    finally:
        lab.stop(proc)
    assert r.returncode == 0, r.stderr
    assert sha256_file(r.cwd / "o.bin") == www.sha256["1m7.bin"]
    evs = events(r.cwd / "ev.ndjson")
    route = only(evs, "route")
    assert route["gateway"].split("%")[0] == "fe80::1" and route["next_hop"].split("%")[0] == "fe80::1"
    assert [e["ip"].split("%")[0] for e in evs if e["type"] == "ndp_advert"] == ["fe80::1"]


def test_no_neighbor_advertisement_is_exit_4(run_rawtui: RunRawtui, fresh_lab6: Lab) -> None:
    lab = fresh_lab6
    lab.run("client", ["ip", "-6", "route", "replace", "default", "via", "fe80::99", "dev", lab.client_if], check=True)
    r = run_rawtui(lab, "--headless", "--events", "ev.ndjson", "-o", "o.bin", f"http://[{lab.server_ip6}]/one.bin")
    assert r.returncode == 4, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("rawtui: error:") and "Traceback" not in r.stderr
    assert "no answer from fe80::99 on eth0 to 3 neighbor solicitations" in last
    solicits = [e for e in events(r.cwd / "ev.ndjson") if e["type"] == "ndp_solicit"]
    assert [e["attempt"] for e in solicits] == [1, 2, 3]
    assert not (r.cwd / "o.bin").exists()


def test_connect_timeout_says_no_neighbor_advertisement(run_rawtui: RunRawtui, fresh_lab6: Lab) -> None:
    lab = fresh_lab6
    lab.run("client", ["ip", "-6", "route", "replace", "default", "via", "fe80::99", "dev", lab.client_if], check=True)
    r = run_rawtui(lab, "--headless", "--connect-timeout", "0.5", "-o", "o.bin", f"http://[{lab.server_ip6}]/one.bin")
    assert r.returncode == 5, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert "(no neighbor advertisement from the next hop; --connect-timeout)" in last


def test_second_connection_reuses_the_neighbor_entry(
    run_rawtui: RunRawtui, lab6: Lab, www: Www, pyserver6: int
) -> None:
    """The server closes after the first body (/close/): the second URL opens a new connection, whose next
    hop's MAC is known from the first one's neighbor discovery."""
    base = f"http://[{lab6.server_ip6}]:{pyserver6}"
    r = run_rawtui(lab6, "--headless", "--events", "ev.ndjson", "-o", "a.bin", f"{base}/close/one.bin",
                   "-o", "b.bin", f"{base}/1m.bin")
    assert r.returncode == 0, r.stderr
    assert sha256_file(r.cwd / "a.bin") == www.sha256["one.bin"]
    assert sha256_file(r.cwd / "b.bin") == www.sha256["1m.bin"]
    evs = events(r.cwd / "ev.ndjson")
    assert len([e for e in evs if e["type"] == "handshake"]) == 2
    assert len([e for e in evs if e["type"] == "ndp_solicit"]) == 1
    known = [e["message"] for e in evs if e["type"] == "info" and e["message"].startswith("ndp:")]
    mac = only(evs, "ndp_advert")["mac"]
    said = f"ndp: {lab6.router_client_ip6} is at {mac}, known from an earlier connection of this run: "
    assert known == [said + "no neighbor discovery"]


@pytest.mark.parametrize("family", [6, 4])
def test_packet_too_big_lowers_the_mss_mid_transfer(run_rawtui: RunRawtui, fresh_lab6: Lab, www: Www,
                                                    family: int) -> None:
    """A request larger than the path's 1280 bytes: the router's kernel answers our first full segment with
    ICMPv6 Packet Too Big (IPv6), or, our IPv4 segments carrying DF, ICMP fragmentation needed (next-hop
    MTU 1280; the BPF filter lets ICMP from any router through); the connection lowers its MSS and sends the
    request again in smaller segments, all of it at once.

    The limit is the router's route to the server's subnet (``mtu 1280``), not rs0's device MTU: a veth
    drops frames bigger than its MTU that come *in*, so the server's full-size data would vanish silently
    (the server's kernel never learns of the smaller link); the route's MTU is what forwarding checks."""
    lab = fresh_lab6
    if family == 6:
        change = ["-6", "route", "change", "2001:db8:2::/64", "dev", lab.router_sif, "proto", "kernel", "metric",
                  "256", "mtu", "1280"]
        host, want = f"[{lab.server_ip6}]", (1280, 1280, 1440, 1220, "icmpv6 packet too big", lab.router_client_ip6)
    else:
        change = ["route", "change", "10.77.2.0/24", "dev", lab.router_sif, "proto", "kernel", "scope", "link",
                  "src", lab.router_server_ip, "mtu", "1280"]
        host, want = lab.server_ip, (1280, 1280, 1460, 1240, "icmp fragmentation needed", lab.router_client_ip)
    lab.run("router", ["ip", *change], check=True)
    proc = start_lab_server(lab, www.root, PY_PORT)
    try:
        r = run_rawtui(lab, "--headless", "--events", "ev.ndjson", "-o", "o.bin", "-H", "X-Pad: " + "p" * 3000,
                       f"http://{host}:{PY_PORT}/1m7.bin")
    finally:
        lab.stop(proc)
    assert r.returncode == 0, r.stderr
    assert sha256_file(r.cwd / "o.bin") == www.sha256["1m7.bin"]
    evs = events(r.cwd / "ev.ndjson")
    (at, ptb), *_ = [(i, e) for i, e in enumerate(evs) if e["type"] == "path_mtu"]
    assert (ptb["mtu"], ptb["reported"], ptb["old_mss"], ptb["mss"], ptb["source"], ptb["sender"]) == want
    before = [e for e in evs[:at] if e["type"] == "segment_out" and e["length"]]
    after = [e for e in evs[at:] if e["type"] == "segment_out" and e["length"]]
    assert max(e["length"] for e in before) > want[3]  # what the router refused (the MSS less the timestamps)
    assert after and max(e["length"] for e in after) <= want[3]  # the request again, in segments that fit
    resent = [e for e in evs[at:] if e["type"] == "retransmit" and e["reason"] == "pmtu"]
    assert sum(e["length"] for e in resent) == sum(e["length"] for e in before)  # all of it, at once
