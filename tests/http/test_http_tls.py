"""The TLS channel's sans-IO pieces: record tracking, contexts, and a real handshake between two
MemoryBIO endpoints (no network)."""

import ssl

import pytest

from rawtui.http.channel import PlainChannel, RecordTracker
from rawtui.http.tls import TlsChannel, TlsError, make_context


def records(stream: bytes, step: int) -> list[tuple[str, int]]:
    r = RecordTracker()
    out: list[tuple[str, int]] = []
    for i in range(0, len(stream), step):
        out += r.feed(stream[i : i + step])
    return out


@pytest.mark.parametrize("step", [1, 2, 3, 5, 7, 100])
def test_record_boundaries_in_any_pieces(step):
    stream = bytes([22, 3, 3, 0, 4]) + b"abcd" + bytes([23, 3, 3, 0, 2]) + b"xy" + bytes([21, 3, 3, 0, 0])
    assert records(stream, step) == [("Handshake", 4), ("ApplicationData", 2), ("Alert", 0)]


def test_plain_channel_passes_through():
    c = PlainChannel()
    assert c.ready and c.start() == b"" and c.incoming(b"x") == b"x" and c.outgoing(b"y") == b"y"


def test_insecure_context_does_not_verify():
    ctx = make_context(insecure=True)
    assert ctx.verify_mode == ssl.CERT_NONE and not ctx.check_hostname
    assert make_context().verify_mode == ssl.CERT_REQUIRED


def test_missing_ca_file_is_a_tls_error(tmp_path):
    with pytest.raises(TlsError, match="cannot load the CA file"):
        make_context(cafile=str(tmp_path / "nope.pem"))


def test_handshake_and_data_between_memory_endpoints(tmp_path):
    crypto = pytest.importorskip("cryptography")
    assert crypto
    from rawtui.lab.pki import make_pki

    pki = make_pki(tmp_path, "10.77.2.2")
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(*pki.good)
    s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    client = TlsChannel(make_context(cafile=str(pki.ca)), "10.77.2.2")

    def pump_server() -> bytes:
        try:
            server.do_handshake()
        except ssl.SSLWantReadError:
            pass
        return s_out.read()

    s_in.write(client.start())
    for _ in range(5):
        client.incoming(pump_server())
        s_in.write(client.take_wire())
        if client.ready:
            break
    assert client.ready and client.summary is not None and client.summary.verified
    s_in.write(client.outgoing(b"GET / HTTP/1.1\r\n\r\n"))
    tickets = pump_server()  # the server finishes its side (TLS 1.3 session tickets)
    assert server.read(100) == b"GET / HTTP/1.1\r\n\r\n"
    server.write(b"hello")
    assert client.incoming(tickets + s_out.read()) == b"hello"


def test_wrong_host_is_refused(tmp_path):
    pytest.importorskip("cryptography")
    from rawtui.lab.pki import make_pki

    pki = make_pki(tmp_path, "10.77.2.2")
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(*pki.wrong_host)
    s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    client = TlsChannel(make_context(cafile=str(pki.ca)), "10.77.2.2")
    s_in.write(client.start())
    try:
        server.do_handshake()
    except ssl.SSLWantReadError:
        pass
    with pytest.raises(TlsError, match="certificate of 10.77.2.2 was refused.*mismatch"):
        client.incoming(s_out.read())
