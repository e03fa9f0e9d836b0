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
