"""HTTP/1.1 exchange (h11 underneath): framing, redirects, errors — no network needed."""

import pytest

from rawtui.errors import HttpError, UsageError
from rawtui.http.client import HttpExchange, parse_url

URL = parse_url("http://10.77.2.2:8080/dir/big.bin?x=1")


def exchange() -> HttpExchange:
    x = HttpExchange(URL)
    x.request()
    return x


def test_parse_url():
    assert (URL.scheme, URL.host, URL.port, URL.target) == ("http", "10.77.2.2", 8080, "/dir/big.bin?x=1")
    assert URL.filename == "big.bin" and URL.host_header == "10.77.2.2:8080"
    assert parse_url("http://h/").filename == "index.html"
    assert parse_url("h/x").port == 80
    assert parse_url("https://h/x").port == 443 and parse_url("https://h/x").host_header == "h"
    for bad in ("ftp://h/x", "http:///x", "http://h:99999/"):
        with pytest.raises(UsageError):
            parse_url(bad)


@pytest.mark.parametrize(
    ("text", "host", "zone", "port", "host_header", "address"),
    [
        ("http://[2001:db8::2]:8080/x", "2001:db8::2", None, 8080, "[2001:db8::2]:8080", "2001:db8::2"),
        ("https://[2001:DB8:0:0::2]/", "2001:db8::2", None, 443, "[2001:db8::2]", "2001:db8::2"),
        ("http://[fe80::2%25eth0]/", "fe80::2", "eth0", 80, "[fe80::2]", "fe80::2%eth0"),
        ("http://[fe80::2%25Eth.10]:81/", "fe80::2", "Eth.10", 81, "[fe80::2]:81", "fe80::2%Eth.10"),
        ("http://[fe80::2%eth0]/", "fe80::2", "eth0", 80, "[fe80::2]", "fe80::2%eth0"),  # curl takes a bare %
        ("[2001:db8::2]:8080/x", "2001:db8::2", None, 8080, "[2001:db8::2]:8080", "2001:db8::2"),
    ],
)  # fmt: skip
def test_ipv6_literals_and_zones(
    text: str, host: str, zone: str | None, port: int, host_header: str, address: str
) -> None:
    url = parse_url(text)
    assert (url.host, url.zone, url.port, url.host_header, url.address) == (host, zone, port, host_header, address)
    assert url.is_literal and url.is_ipv6
    assert f"Host: {host_header}\r\n".encode() in HttpExchange(url).request()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("http://[2001:db8::zz]/", "does not appear to be an IPv4 or IPv6 address"),
        ("http://[2001:db8::1/", "Invalid IPv6 URL"),
        ("http://[v1.fe80::a+en1]/", "is not an IPv6 address"),
        ("http://[2001:db8::1%25eth0]/", "a zone \\(%25eth0\\) belongs to a link-local address"),
        ("http://[fe80::1%25]/", "'' is not an interface name"),
        ("http://[fe80::1%25a%2Fb]/", "does not appear to be an IPv4 or IPv6 address"),
        ("http://[fe80::1%25abcdefghijklmnop]/", "is not an interface name"),
        ("http://2001:db8::1/", "Port could not be cast"),
    ],
)
def test_bad_ipv6_literals_are_usage_errors(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message) as caught:
        parse_url(text)
    assert caught.value.exit_code == 2 and "\n" not in caught.value.message


def test_names_and_ipv4_are_not_ipv6_literals() -> None:
    assert (URL.is_literal, URL.is_ipv6, URL.zone, URL.address) == (True, False, None, "10.77.2.2")
    name = parse_url("http://Example.TEST/")
    assert (name.host, name.is_literal, name.is_ipv6, name.host_header) == ("example.test", False, False, "example.test")


def _sni(client_hello: bytes) -> bytes | None:
    """The server_name extension's data in a TLS record holding a ClientHello, None without one."""
    body = client_hello[5 + 4:]  # record header, handshake header
    off = 2 + 32  # version, random
    off += 1 + body[off]  # session id
    off += 2 + int.from_bytes(body[off:off + 2], "big")  # cipher suites
    off += 1 + body[off]  # compression methods
    end = off + 2 + int.from_bytes(body[off:off + 2], "big")
    off += 2
    while off < end:
        kind, size = int.from_bytes(body[off:off + 2], "big"), int.from_bytes(body[off + 2:off + 4], "big")
        if kind == 0:
            return body[off + 4:off + 4 + size]
        off += 4 + size
    return None


@pytest.mark.parametrize(("text", "sni"), [("https://example.test/", True), ("https://[2001:db8::2]/", False),
                                           ("https://[fe80::2%25eth0]/", False), ("https://10.77.2.2/", False)])
def test_no_sni_for_ip_literals(text: str, sni: bool) -> None:
    """RFC 6066 3: literal addresses are not sent as server names; the TLS channel gets url.host."""
    import ssl

    from rawtui.http.tls import TlsChannel

    url = parse_url(text)
    found = _sni(TlsChannel(ssl.create_default_context(), url.host).start())
    assert (found is not None) == sni
    if sni:
        assert found is not None and found.endswith(b"example.test")


def test_request_headers():
    data = HttpExchange(URL).request()
    assert data.startswith(b"GET /dir/big.bin?x=1 HTTP/1.1\r\n")
    for h in (b"Host: 10.77.2.2:8080", b"User-Agent: rawtui/", b"Accept-Encoding: identity"):
        assert h in data


@pytest.mark.parametrize("cut", range(0, 60, 7))
def test_content_length_body_in_any_pieces(cut):
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789"
    x = exchange()
    got = b"".join(x.receive(raw[:cut]) + x.receive(raw[cut:])) if cut else b"".join(x.receive(raw))
    assert got == b"0123456789" and x.complete and x.status == 200 and x.content_length == 10


def test_chunked_body():
    x = exchange()
    got = x.receive(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
    assert b"".join(got) == b"abcde" and x.complete


def test_close_delimited_body():
    x = exchange()
    got = x.receive(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nabc")
    got += x.receive_eof()
    assert b"".join(got) == b"abc" and x.complete


def test_truncated_body():
    x = exchange()
    x.receive(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabc")
    with pytest.raises(HttpError, match="after 3 of 5 body bytes"):
        x.receive_eof()


def test_longer_body_than_declared():
    x = exchange()
    with pytest.raises(HttpError, match="more than the declared"):
        x.receive(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nabc")


@pytest.mark.parametrize("value", [b"-1", b"abc", b"1, 2"])
def test_bad_content_length(value):
    x = exchange()
    with pytest.raises(HttpError):
        x.receive(b"HTTP/1.1 200 OK\r\nContent-Length: " + value + b"\r\n\r\n")


def test_bad_chunk_size():
    x = exchange()
    with pytest.raises(HttpError):
        x.receive(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n")


def test_header_longer_than_64k():
    x = exchange()
    with pytest.raises(HttpError, match="64 KB"):
        x.receive(b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 70000)


def test_redirect_location_is_absolute():
    x = exchange()
    x.receive(b"HTTP/1.1 302 Found\r\nLocation: ../other.bin\r\nContent-Length: 0\r\n\r\n")
    assert x.redirect_location == "http://10.77.2.2:8080/other.bin"
    x = exchange()
    x.receive(b"HTTP/1.1 301 Moved\r\nContent-Length: 0\r\n\r\n")
    with pytest.raises(HttpError, match="without a Location"):
        _ = x.redirect_location


def test_eof_before_response():
    x = exchange()
    with pytest.raises(HttpError, match="before sending a response"):
        x.receive_eof()


def test_garbage_response():
    x = exchange()
    with pytest.raises(HttpError):
        x.receive(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
