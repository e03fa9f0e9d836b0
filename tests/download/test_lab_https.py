"""HTTPS over rawtui's own stack: TLS through ssl.MemoryBIO, verified against a test CA, in the lab."""

from __future__ import annotations

import json

import pytest
from conftest import lab_unavailable

from rawtui.lab.server import sha256_file

pytestmark = pytest.mark.lab

PORTS = {"good": 443, "expired": 8443, "wrong_host": 9443, "unknown_ca": 10443, "redirect": 8081}


@pytest.fixture(scope="session")
def tls_site(lab, www, tmp_path_factory):
    pytest.importorskip("cryptography")
    from rawtui.lab.nginx import find_nginx, start_nginx
    from rawtui.lab.pki import make_pki, nginx_tls_servers

    if find_nginx() is None:
        lab_unavailable("nginx is not installed (apt-get install nginx-light)")
    pki = make_pki(tmp_path_factory.mktemp("pki"), lab.server_ip)
    extra = nginx_tls_servers(pki, lab.server_ip, www.root, PORTS)
    handle = start_nginx(lab, www.root, 8088, extra_conf=extra)
    try:
        yield pki
    finally:
        handle.stop()


@pytest.mark.parametrize("name", ["empty.bin", "1m.bin", "50m.bin"])
def test_https_download_is_byte_exact(run_rawtui, lab, www, tls_site, name, tmp_path):
    r = run_rawtui("--headless", "--cacert", tls_site.ca, "--events", "ev.ndjson", "-o", "o.bin",
                   f"https://{lab.server_ip}/{name}")
    assert r.returncode == 0, r.stderr
    assert sha256_file(r.cwd / "o.bin") == www.sha256[name]
    events = [json.loads(line) for line in (r.cwd / "ev.ndjson").read_text().splitlines()]
    (tls,) = [e for e in events if e["type"] == "tls"]
    assert tls["verified"] and tls["version"] in ("TLSv1.2", "TLSv1.3")
    assert tls["alpn"] in (None, "http/1.1")
    assert "rawtui lab test CA" in tls["issuer"] and lab.server_ip in tls["subject"]
    records = [(e["direction"], e["content_type"]) for e in events if e["type"] == "tls_record"]
    assert ("out", "Handshake") in records and ("in", "Handshake") in records
    assert ("out", "ApplicationData") in records  # the request
    if name != "empty.bin":
        assert ("in", "ApplicationData") in records


@pytest.mark.parametrize(
    "kind, words",
    [("expired", "expired"), ("wrong_host", "mismatch"), ("unknown_ca", "unable to get local issuer")],
)
def test_bad_certificates_are_refused(run_rawtui, lab, tls_site, kind, words):
    r = run_rawtui("--headless", "--cacert", tls_site.ca, "-o", "o.bin",
                   f"https://{lab.server_ip}:{PORTS[kind]}/1m.bin")
    assert r.returncode == 8, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("rawtui: error: the certificate of") and words in last.lower(), last
    assert "Traceback" not in r.stderr
    assert not (r.cwd / "o.bin").exists()


def test_system_store_does_not_know_the_lab_ca(run_rawtui, lab, tls_site):
    r = run_rawtui("--headless", "-o", "o.bin", f"https://{lab.server_ip}/1m.bin")
    assert r.returncode == 8 and "certificate" in r.stderr


def test_insecure_works_and_warns(run_rawtui, lab, www, tls_site):
    r = run_rawtui("--headless", "--insecure", "-o", "o.bin", f"https://{lab.server_ip}:{PORTS['expired']}/1m.bin")
    assert r.returncode == 0, r.stderr
    assert sha256_file(r.cwd / "o.bin") == www.sha256["1m.bin"]
    assert "NOT verified" in r.stderr


def test_http_to_https_redirect(run_rawtui, lab, www, tls_site):
    r = run_rawtui("--headless", "--cacert", tls_site.ca, f"http://{lab.server_ip}:{PORTS['redirect']}/1m7.bin")
    assert r.returncode == 0, r.stderr
    assert sha256_file(r.cwd / "1m7.bin") == www.sha256["1m7.bin"]


def test_keylog_written(run_rawtui, lab, tls_site):
    r = run_rawtui("--headless", "--cacert", tls_site.ca, "--keylog", "keys.txt", "-o", "o.bin",
                   f"https://{lab.server_ip}/one.bin")
    assert r.returncode == 0, r.stderr
    keys = (r.cwd / "keys.txt").read_text()
    assert "CLIENT_" in keys or "CLIENT_RANDOM" in keys


def test_https_under_2_percent_loss_is_byte_exact(fresh_lab, www, run_rawtui, tmp_path):
    """TLS records ride on rawtui's TCP: losses are repaired below TLS, which never sees them."""
    pytest.importorskip("cryptography")
    from rawtui.lab.control import LabControl
    from rawtui.lab.impair import start_relay
    from rawtui.lab.nginx import start_nginx
    from rawtui.lab.pki import make_pki, nginx_tls_servers

    lab = fresh_lab
    pki = make_pki(tmp_path / "pki", lab.server_ip)
    control = str(tmp_path / "control.sock")
    start_relay(lab, control, seed=7)
    with LabControl(control) as ctl:
        ctl.set("down", loss=2.0)
        handle = start_nginx(lab, www.root, 8088, extra_conf=nginx_tls_servers(pki, lab.server_ip, www.root, PORTS))
        try:
            r = run_rawtui(lab, "--headless", "--cacert", pki.ca, "--events", "ev.ndjson", "-o", "o.bin",
                           f"https://{lab.server_ip}/1m7.bin", timeout=180)
        finally:
            handle.stop()
        lost = ctl.state()["stats"]["down"]["lost"]
    assert r.returncode == 0, r.stderr
    assert sha256_file(r.cwd / "o.bin") == www.sha256["1m7.bin"]
    assert lost > 0  # the relay really dropped frames on the way
    kinds = [json.loads(line)["type"] for line in (r.cwd / "ev.ndjson").read_text().splitlines()]
    assert "out_of_order" in kinds or "dup_data" in kinds
