"""The lab's servers on IPv6 and its names: rawtui.lab.server listens on `::` (IPv6 and IPv4 at once),
nginx on `[::]` too in a dual-stack lab, and ``Lab.write_hosts`` names addresses inside a namespace.
Checked with the kernel's own clients (curl, getent), byte-exact."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from conftest import lab_unavailable, start_lab_server

from rawtui.lab.server import sha256_file
from rawtui.lab.topology import ETC_NETNS, Lab, LabError

if TYPE_CHECKING:
    from conftest import Www

pytestmark = pytest.mark.lab

PORT = 8096


@pytest.fixture(scope="module")
def dual_server(lab6: Lab, www: Www) -> Iterator[subprocess.Popen[bytes]]:
    proc = start_lab_server(lab6, www.root, PORT)
    try:
        yield proc
    finally:
        lab6.stop(proc)


def curl(lab: Lab, *args: str) -> subprocess.CompletedProcess[str]:
    return lab.run("client", ["curl", "-sS", "--max-time", "60", *args], capture_output=True, text=True, timeout=90)


@pytest.mark.parametrize("family", ["-6", "-4"])
def test_lab_server_listens_on_both_families_by_default(
    lab6: Lab, www: Www, dual_server: subprocess.Popen[bytes], family: str, tmp_path: Path
) -> None:
    host = f"[{lab6.server_ip6}]" if family == "-6" else lab6.server_ip
    res = curl(lab6, family, "-o", str(tmp_path / "o.bin"), f"http://{host}:{PORT}/1m7.bin")
    assert res.returncode == 0, res.stderr
    assert sha256_file(tmp_path / "o.bin") == www.sha256["1m7.bin"]


def test_lab_server_bound_to_ipv4_only_refuses_ipv6(lab6: Lab, www: Www, tmp_path: Path) -> None:
    proc = start_lab_server(lab6, www.root, PORT + 1, "--bind", "0.0.0.0")
    try:
        ok = curl(lab6, "-4", "-o", str(tmp_path / "o.bin"), f"http://{lab6.server_ip}:{PORT + 1}/one.bin")
        refused = curl(lab6, "-6", "-o", str(tmp_path / "x.bin"), f"http://[{lab6.server_ip6}]:{PORT + 1}/one.bin")
    finally:
        lab6.stop(proc)
    assert ok.returncode == 0 and sha256_file(tmp_path / "o.bin") == www.sha256["one.bin"]
    assert refused.returncode == 7, refused.stderr  # curl: "Failed to connect"


def test_nginx_listens_on_ipv6_in_a_dual_stack_lab(lab6: Lab, lab: Lab, www: Www, tmp_path: Path) -> None:
    from rawtui.lab.nginx import find_nginx, start_nginx

    if find_nginx() is None:
        lab_unavailable("nginx is not installed (apt-get install nginx-light)")
    with start_nginx(lab6, www.root, 8097) as handle:
        assert handle.url6 == f"http://[{lab6.server_ip6}]:8097"
        for family, base in (("-6", handle.url6), ("-4", handle.url)):
            res = curl(lab6, family, "-o", str(tmp_path / f"o{family}.bin"), f"{base}/1m.bin")
            assert res.returncode == 0, res.stderr
            assert sha256_file(tmp_path / f"o{family}.bin") == www.sha256["1m.bin"]
    with start_nginx(lab, www.root, 8097) as plain, pytest.raises(LabError, match="dual-stack lab"):
        _ = plain.url6  # the IPv4-only lab: no IPv6 at all


def test_write_hosts_names_addresses_inside_the_namespace_only(www: Www) -> None:
    lab = Lab.create(ipv6=True)
    try:
        hosts = lab.write_hosts({"www.lab": [lab.server_ip, lab.server_ip6], "v6only.lab": [lab.server_ip6]})
        assert hosts == ETC_NETNS / lab.client_ns / "hosts"
        both = lab.run("client", ["getent", "ahosts", "www.lab"], capture_output=True, text=True)
        assert lab.server_ip in both.stdout and lab.server_ip6 in both.stdout, both.stderr
        only6 = lab.run("client", ["getent", "ahostsv4", "v6only.lab"], capture_output=True, text=True)
        assert only6.returncode != 0  # no A record: an IPv4-only lookup finds nothing
        elsewhere = lab.run("server", ["getent", "hosts", "www.lab"], capture_output=True, text=True)
        assert elsewhere.returncode != 0  # the server namespace has the machine's /etc/hosts
        lab.write_hosts({"www.lab": [lab.server_ip6]})  # rewritten, not appended
        again = lab.run("client", ["getent", "ahosts", "www.lab"], capture_output=True, text=True)
        assert lab.server_ip6 in again.stdout and lab.server_ip not in again.stdout
    finally:
        lab.destroy()
    assert not (ETC_NETNS / lab.client_ns).exists()
