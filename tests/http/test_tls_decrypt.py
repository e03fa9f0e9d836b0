"""TLS seen from a capture (rawtui.wire.tls, rawtui.http.tls_decrypt): a real TLS connection between two
``ssl.MemoryBIO`` ends (OpenSSL on both sides), its two byte streams fed to a TlsObserver with the key log
OpenSSL wrote; the decrypted application data must be exactly what the server sent.

The TLS 1.3 suites other than OpenSSL's first choice are picked in a child process through OPENSSL_CONF
(Python's ``ssl`` cannot set TLS 1.3 suites); TLS 1.2 suites with ``set_ciphers``.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import child_env, require_tool

from rawtui.http.tls_decrypt import TlsObserver, hkdf_expand_label, load_keylog, parse_keylog, tls12_prf
from rawtui.lab.pki import make_pki
from rawtui.wire.errors import WireError
from rawtui.wire.tls import RecordReader, looks_like_tls

REQUEST = b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n"


def converse(tmp: Path, *, version: str = "1.3", ciphers: str | None = None, body: bytes = b"") -> dict:
    """One TLS connection in memory: (client bytes, server bytes) as chunks in wire order, the key log,
    the negotiated version and cipher. The server answers the request with ``body`` in 3 writes."""
    pki = make_pki(tmp / "pki", "127.0.0.1")
    keylog = tmp / "keys.txt"
    cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    cctx.load_verify_locations(pki.ca)
    cctx.keylog_filename = str(keylog)
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(*map(str, pki.good))
    if version == "1.2":
        cctx.maximum_version = ssl.TLSVersion.TLSv1_2
    if ciphers:
        cctx.set_ciphers(ciphers)
    cin, cout, sin, sout = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    client = cctx.wrap_bio(cin, cout, server_hostname="127.0.0.1")
    server = sctx.wrap_bio(sin, sout, server_side=True)
    wire: list[tuple[str, bytes]] = []

    def pump() -> None:
        for src, dst, direction in ((cout, sin, "out"), (sout, cin, "in")):
            data = src.read()
            if data:
                wire.append((direction, data))
                dst.write(data)

    for _ in range(20):
        for end in (client, server):
            try:
                end.do_handshake()
            except ssl.SSLWantReadError:
                pass
        pump()
    client.write(REQUEST)
    pump()
    got = b""
    while len(got) < len(REQUEST):
        got += server.read()
    assert got == REQUEST
    third = max(1, len(body) // 3)
    for i in range(0, len(body), third):
        server.write(body[i:i + third])
        pump()
    received = b""
    while len(received) < len(body):
        received += client.read()
        pump()
    return {"wire": wire, "keylog": keylog.read_text(), "version": client.version(),
            "cipher": client.cipher()[0], "received": received}


def observe(conv: dict, keylog: str | None) -> tuple[TlsObserver, dict[str, bytes], list[tuple[str, str]]]:
    obs = TlsObserver(parse_keylog(keylog) if keylog is not None else None, "K")
    plain = {"out": b"", "in": b""}
    notes: list[tuple[str, str]] = []
    for direction, data in conv["wire"]:
        # in small pieces: records and handshake messages split across TCP segments
        for i in range(0, len(data), 700):
            out = obs.feed(direction, data[i:i + 700])
            plain[direction] += out.plaintext
            notes += out.notes
    return obs, plain, notes


BODY = os.urandom(100_000)


@pytest.mark.parametrize("version, ciphers, suite", [
    ("1.3", None, "TLS_AES_256_GCM_SHA384"),
    ("1.2", "ECDHE-ECDSA-AES128-GCM-SHA256", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"),
    ("1.2", "ECDHE-ECDSA-AES256-GCM-SHA384", "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"),
    ("1.2", "ECDHE-ECDSA-CHACHA20-POLY1305", "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"),
])
def test_decrypts_both_directions(tmp_path, version, ciphers, suite):
    conv = converse(tmp_path, version=version, ciphers=ciphers, body=BODY)
    obs, plain, notes = observe(conv, conv["keylog"])
    assert obs.version == f"TLSv{version}" == conv["version"]
    assert obs.cipher == suite
    assert plain["out"] == REQUEST and plain["in"] == BODY
    assert obs.undecrypted == 0 and obs.decrypting and obs.handshake_done
    assert obs.server_name is None  # an IP address is not sent as SNI
    assert obs.certificate is not None and "127.0.0.1" in obs.certificate.subject
    assert "rawtui lab test CA" in obs.certificate.issuer
    assert any("decrypted with the secrets of K" in text for text, _ in notes)


_CHILD = """
import json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from test_tls_decrypt import converse, observe, BODY
conv = converse(Path(sys.argv[1]), body=BODY)
obs, plain, notes = observe(conv, conv["keylog"])
print(json.dumps({"cipher": obs.cipher, "ssl": conv["cipher"], "ok": plain["in"] == BODY and plain["out"] != b"",
                  "undecrypted": obs.undecrypted}))
"""


@pytest.mark.parametrize("suite", ["TLS_AES_128_GCM_SHA256", "TLS_CHACHA20_POLY1305_SHA256"])
def test_tls13_other_suites(tmp_path, suite):
    conf = tmp_path / "openssl.cnf"
    conf.write_text("openssl_conf = c\n[c]\nssl_conf = s\n[s]\nsystem_default = d\n[d]\n"
                    f"Ciphersuites = {suite}\n")
    res = subprocess.run([sys.executable, "-c", _CHILD, str(tmp_path), str(Path(__file__).parent.parent)],
                         capture_output=True, text=True, timeout=120, cwd=Path(__file__).parent, check=False,
                         env=child_env(OPENSSL_CONF=str(conf), PYTHONPATH=f"{Path(__file__).parent}:"
                                       f"{Path(__file__).parent.parent}:{child_env().get('PYTHONPATH', '')}"))
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out == {"cipher": suite, "ssl": suite, "ok": True, "undecrypted": 0}


def test_without_the_flows_secrets_records_only(tmp_path):
    conv = converse(tmp_path, body=BODY)
    other = converse(tmp_path / "other", body=b"x")
    obs, plain, notes = observe(conv, other["keylog"])
    assert plain == {"out": b"", "in": b""}
    assert not obs.decrypting and obs.handshake_done and obs.undecrypted > 0
    assert [level for text, level in notes if "has no secrets for this connection" in text] == ["warning"]
    assert obs.certificate is None  # TLS 1.3: the certificate is encrypted


def test_without_a_keylog_tls12_still_shows_the_certificate(tmp_path):
    conv = converse(tmp_path, version="1.2", ciphers="ECDHE-ECDSA-AES128-GCM-SHA256", body=BODY)
    obs, plain, notes = observe(conv, None)
    assert plain == {"out": b"", "in": b""} and notes == []
    assert obs.certificate is not None and obs.version == "TLSv1.2"
    sizes = sum(n for direction, data in conv["wire"] if direction == "in" for n in [len(data)])
    assert sizes > len(BODY)


def test_only_the_handshake_secrets_no_application_data(tmp_path):
    conv = converse(tmp_path, body=BODY)
    partial = "\n".join(line for line in conv["keylog"].splitlines() if "HANDSHAKE" in line)
    obs, plain, notes = observe(conv, partial)
    assert plain == {"out": b"", "in": b""}
    assert obs.certificate is not None  # the handshake itself was decrypted
    assert any("lacks the traffic secrets" in text for text, _ in notes)


def test_record_sizes_match_the_wire(tmp_path):
    conv = converse(tmp_path, body=BODY)
    obs = TlsObserver()
    total = 0
    for direction, data in conv["wire"]:
        if direction == "in":
            total += sum(5 + n for _, n in obs.feed("in", data).records)
    assert total == sum(len(d) for direction, d in conv["wire"] if direction == "in")


def test_not_tls_is_one_note():
    obs = TlsObserver()
    out = obs.feed("in", b"HTTP/1.1 200 OK\r\n\r\n")
    assert len(out.notes) == 1 and "not a TLS record header" in out.notes[0][0]
    assert obs.feed("in", b"\x16\x03\x03\x00\x01x").records == []  # stays off
    with pytest.raises(WireError):
        RecordReader().feed(b"\x16\x03\x03\xff\xff")


def test_looks_like_tls(tmp_path):
    conv = converse(tmp_path)
    assert looks_like_tls(conv["wire"][0][1])
    assert not looks_like_tls(b"GET / HTTP/1.1\r\n") and not looks_like_tls(b"\x16\x03")


def test_hkdf_expand_label_rfc8448():
    # RFC 8448 section 3 (simple 1-RTT handshake): the server's handshake traffic key and IV
    secret = bytes.fromhex("b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38")
    assert hkdf_expand_label(secret, "key", b"", 16).hex() == "3fce516009c21727d0f2e4e86ee403bc"
    assert hkdf_expand_label(secret, "iv", b"", 12).hex() == "5d313eb2671276ee13000b30"


def test_tls12_prf_known_answer():
    # the widely used TLS 1.2 PRF (SHA-256) test vector (IETF TLS WG mailing list, 2009)
    secret = bytes.fromhex("9bbe436ba940f017b17652849a71db35")
    seed = bytes.fromhex("a0ba9f936cda311827a6f796ffd5198c")
    out = tls12_prf(secret, b"test label", seed, 100)
    assert out[:16].hex() == "e3f229ba727be17b8d122620557cd453"
    assert out[-4:].hex() == "87347b66"


def test_keylog_errors(tmp_path):
    from rawtui.errors import UsageError

    (tmp_path / "empty.txt").write_text("# nothing\nGARBAGE 00 11\n")
    with pytest.raises(UsageError, match="holds no TLS secrets"):
        load_keylog(tmp_path / "empty.txt")
    with pytest.raises(UsageError, match="cannot read the key log"):
        load_keylog(tmp_path / "missing.txt")


def test_key_update_both_directions(tmp_path):
    """openssl s_client's `K` command: a KeyUpdate that asks the server for one too. The request after it
    and the server's answer are decrypted with the next generation of keys (RFC 8446 7.2). The bytes are
    taken by a relay between s_client and s_server on the loopback."""
    import socket
    import threading

    openssl = require_tool("openssl")
    pki = make_pki(tmp_path / "pki", "127.0.0.1")
    server = subprocess.Popen([openssl, "s_server", "-accept", "127.0.0.1:0", "-www", "-tls1_3", "-naccept", "1",
                               "-cert", str(pki.good[0]), "-key", str(pki.good[1])],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    relay = socket.create_server(("127.0.0.1", 0))
    wire: list[tuple[str, bytes]] = []
    lock = threading.Lock()

    def pipe(a: socket.socket, b: socket.socket, direction: str) -> None:
        while data := a.recv(65536):
            with lock:
                wire.append((direction, data))
            b.sendall(data)
        b.shutdown(socket.SHUT_WR)

    def run_relay(port: int) -> None:
        c, _ = relay.accept()
        s = socket.create_connection(("127.0.0.1", port))
        t = threading.Thread(target=pipe, args=(c, s, "out"))
        t.start()
        pipe(s, c, "in")
        t.join()
        c.close()
        s.close()

    client = None
    try:
        assert server.stdout is not None
        while not (line := server.stdout.readline()).startswith("ACCEPT"):
            assert line, "s_server did not start"
        relaying = threading.Thread(target=run_relay, args=(int(line.rsplit(":", 1)[1]),), daemon=True)
        relaying.start()
        client = subprocess.Popen([openssl, "s_client", "-connect", f"127.0.0.1:{relay.getsockname()[1]}",
                                   "-tls1_3", "-keylogfile", str(tmp_path / "k.txt"), "-CAfile", str(pki.ca)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert client.stdin is not None and client.stdout is not None
        client.stdin.write("K\n")  # a line of its own: s_client reads a command per read
        client.stdin.flush()
        while "KEYUPDATE" not in (line := client.stdout.readline()):
            assert line, "s_client did not update its keys"
        client.stdin.write("GET / HTTP/1.0\r\n\r\n")
        client.stdin.flush()
        relaying.join(timeout=30)  # s_server -www answers and closes
        assert not relaying.is_alive()
    finally:
        for proc in (client, server):
            if proc is not None:
                proc.kill()
                proc.wait()
        relay.close()
    obs, plain, _ = observe({"wire": wire}, (tmp_path / "k.txt").read_text())
    assert plain["out"] == b"GET / HTTP/1.0\r\n\r\n"
    assert plain["in"].startswith(b"HTTP/1.0 200 ok\r\n")
    assert obs.undecrypted == 0
    assert [(s.current, len(s.keys)) for s in obs.sides.values()] == [(2, 3), (2, 3)]  # handshake, 0, 1


@pytest.mark.parametrize("version, ciphers", [("1.3", None), ("1.2", "ECDHE-ECDSA-AES128-GCM-SHA256")])
def test_mutated_streams_never_raise(tmp_path, version, ciphers):
    """Any bytes a capture may hold (bit flips, cuts in the records): the observer notes what it cannot
    read and never raises."""
    import random

    conv = converse(tmp_path, version=version, ciphers=ciphers, body=b"x" * 5000)
    keys = parse_keylog(conv["keylog"])
    rng = random.Random(1)
    for i in range(600):
        obs = TlsObserver(keys if i % 2 else None, "K")
        for direction, data in conv["wire"]:
            b = bytearray(data)
            for _ in range(rng.randint(0, 5)):
                b[rng.randrange(len(b))] = rng.randrange(256)
            if rng.random() < 0.1:
                b = b[: rng.randrange(len(b) + 1)]
            obs.feed(direction, bytes(b))


def test_a_certificate_that_does_not_parse(tmp_path):
    """TLS 1.2 shows the certificate in the clear: one with X.509 version 4 (found by mutating streams;
    cryptography raises InvalidVersion, not ValueError) is no certificate, and no exception."""
    conv = converse(tmp_path, version="1.2", ciphers="ECDHE-ECDSA-AES128-GCM-SHA256", body=b"x")
    v3 = bytes.fromhex("a003020102")  # [0] EXPLICIT INTEGER 2: X.509 v3
    wire = [(d, data.replace(v3, bytes.fromhex("a003020104")) if d == "in" else data) for d, data in conv["wire"]]
    assert wire != conv["wire"]
    obs, plain, _ = observe({"wire": wire}, conv["keylog"])
    assert obs.certificate is None and obs.version == "TLSv1.2"
    assert plain["in"] == b"x"  # the certificate is not in the transcript we check: decryption goes on
