"""Hostile or odd HTTP responses: clear errors (exit 6), never a crash, never a file under the final name.

Unit tests drive :class:`rawtui.http.client.HttpExchange` (adding to tests/http/test_http_client.py); the lab
tests send each response from a tiny server of Python sockets in the server namespace and run rawtui
against it.
"""

from __future__ import annotations

import itertools
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from rawtui.errors import HttpError, RawtuiError
from rawtui.http.client import MAX_HEADER_BYTES, HttpExchange, parse_url

URL = parse_url("http://10.77.2.2:8080/x.bin")
OK = b"HTTP/1.1 200 OK\r\n"


def exchange() -> HttpExchange:
    x = HttpExchange(URL)
    x.request()
    return x


def feed(raw: bytes, cuts: list[int] | None = None, eof: bool = True) -> bytes:
    """Feed raw in pieces (at ``cuts``), then EOF; return the body (or raise what the exchange raises)."""
    x = exchange()
    got: list[bytes] = []
    edges = [0, *sorted(cuts or []), len(raw)]
    for a, b in itertools.pairwise(edges):
        got += x.receive(raw[a:b])
    if eof and not x.complete:
        got += x.receive_eof()
    assert x.complete
    return b"".join(got)


def big_head(size: int) -> bytes:
    lines = b"".join(b"X-Filler-%05d: %s\r\n" % (i, b"a" * 90) for i in range(size // 108 + 1))
    return OK + lines + b"Content-Length: 2\r\n\r\nok"


@pytest.mark.parametrize("pieces", [1, 2, 50])
def test_header_longer_than_64k_even_when_it_arrives_whole(pieces):
    """Before the fix a complete 70 KB head arriving in one piece slipped past h11's limit (it only bounds
    an incomplete event)."""
    raw = big_head(70_000)
    cuts = sorted(random.Random(pieces).sample(range(1, len(raw)), pieces - 1))
    with pytest.raises(HttpError, match="longer than 64 KB"):
        feed(raw, cuts)


def test_header_just_under_the_limit_is_fine():
    raw = big_head(MAX_HEADER_BYTES - 2000)
    assert len(raw) < MAX_HEADER_BYTES
    assert feed(raw) == b"ok"


@pytest.mark.parametrize("value", [b"-5", b"99999999999999999999999999", b"+5", b"0x10", b"5, 6", b""])
def test_bad_content_lengths(value):
    with pytest.raises(HttpError, match="Content-Length"):
        feed(OK + b"Content-Length: " + value + b"\r\n\r\nabcde")


def test_conflicting_content_lengths():
    with pytest.raises(HttpError, match="conflicting Content-Length"):
        feed(OK + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nabcde")


@pytest.mark.parametrize("cut", [0, 10, 40])
def test_body_longer_than_declared_in_any_pieces(cut):
    raw = OK + b"Content-Length: 3\r\n\r\nabcdef"
    with pytest.raises(HttpError, match="more than the declared Content-Length of 3"):
        feed(raw, [cut] if cut else [])


def test_body_shorter_than_declared():
    with pytest.raises(HttpError, match="after 3 of 10 body bytes: the body is truncated"):
        feed(OK + b"Content-Length: 10\r\n\r\nabc")


@pytest.mark.parametrize("chunk", [b"-1", b"ffffffffffffffffffffffff", b"zz", b" ", b"3\r\nabcXX"])
def test_bad_chunks(chunk):
    with pytest.raises(HttpError, match="chunk"):
        feed(OK + b"Transfer-Encoding: chunked\r\n\r\n" + chunk + b"\r\nabc\r\n0\r\n\r\n")


def test_chunked_stream_cut_short():
    with pytest.raises(HttpError, match="middle of the body"):
        feed(OK + b"Transfer-Encoding: chunked\r\n\r\n10\r\nabc")


@pytest.mark.parametrize("raw", [
    b"SSH-2.0-OpenSSH_9.2\r\n",  # then the end of the stream: never a complete head
    b"HTTP/2 200\r\n\r\n",
    b"HTTP/1.1 099 Odd\r\nContent-Length: 0\r\n\r\n",
    OK + b"X: a\x00b\r\nContent-Length: 1\r\n\r\na",
    OK + b"Transfer-Encoding: gzip\r\n\r\nabc",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(40),  # a TLS record on plain HTTP
])
def test_garbage_is_a_bad_response(raw):
    with pytest.raises(HttpError, match="bad HTTP response"):
        feed(raw)


def test_empty_pieces_are_not_an_end_of_stream():
    x = exchange()
    assert x.receive(b"") == []
    assert x.receive(OK + b"Content-Length: 2\r\n\r\na") == [b"a"]
    assert x.receive(b"") == [] and not x.complete
    assert x.receive(b"b") == [b"b"] and x.complete


@pytest.mark.parametrize(("location", "why"), [
    ("ftp://10.77.2.2/x.bin", "unsupported URL scheme 'ftp'"),
    ("gopher://h/", "unsupported URL scheme 'gopher'"),
    ("http://h:99999/x", "bad URL"),
])
def test_redirect_to_what_cannot_be_followed_is_a_clear_error(location, why):
    """The session turns these into HTTP errors (exit 6), not usage errors: the lab test below."""
    x = exchange()
    x.receive(b"HTTP/1.1 302 Found\r\nLocation: " + location.encode() + b"\r\nContent-Length: 0\r\n\r\n")
    assert x.redirect_location == location
    with pytest.raises(RawtuiError, match=why):
        parse_url(x.redirect_location)


def test_random_splits_and_noise_never_crash():
    rnd = random.Random(11)
    good = OK + b"Content-Length: 20\r\n\r\n" + b"x" * 20
    chunked = OK + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    for _ in range(2000):
        raw = bytearray(rnd.choice([good, chunked]))
        for _ in range(rnd.randrange(0, 3)):
            raw[rnd.randrange(len(raw))] = rnd.randrange(256)
        cuts = sorted(rnd.sample(range(len(raw) + 1), rnd.randrange(0, 6)))
        try:
            feed(bytes(raw), cuts)
        except HttpError:
            pass


# ---------------------------------------------------------------------------------------------- lab

SERVER = r"""
import socket, sys
port, path = int(sys.argv[1]), sys.argv[2]
response = open(path, "rb").read()
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("0.0.0.0", port))
ls.listen(8)
print("ready", flush=True)
while True:
    c, _ = ls.accept()
    c.settimeout(10)
    try:
        req = b""
        while b"\r\n\r\n" not in req:
            d = c.recv(65536)
            if not d:
                break
            req += d
        c.sendall(response)
        c.shutdown(socket.SHUT_WR)
        while c.recv(65536):
            pass
    except OSError:
        pass
    c.close()
"""

_ports = itertools.count(9400)

LAB_CASES = {
    "header-100k": (big_head(100_000), "the response header is longer than 64 KB"),
    "negative-length": (OK + b"Content-Length: -1\r\n\r\n", "Content-Length"),
    "huge-length": (OK + b"Content-Length: 99999999999999999999999999\r\n\r\nabc", "Content-Length"),
    "longer-body": (OK + b"Content-Length: 1000\r\n\r\n" + b"y" * 5000, "more than the declared Content-Length"),
    "shorter-body": (OK + b"Content-Length: 100000\r\n\r\n" + b"y" * 5000, "after 5000 of 100000 body bytes"),
    "bad-chunk": (OK + b"Transfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\nnothex\r\n", "illegal chunk header"),
    "redirect-ftp": (b"HTTP/1.1 301 Moved\r\nLocation: ftp://10.77.2.2/x.bin\r\nContent-Length: 0\r\n\r\n",
                     "cannot follow the redirect to 'ftp://10.77.2.2/x.bin': unsupported URL scheme 'ftp'"),
    "redirect-self": (b"HTTP/1.1 302 Found\r\nLocation: /x.bin?again\r\nContent-Length: 0\r\n\r\n",
                      "too many redirects"),
    "garbage": (b"SSH-2.0-OpenSSH_9.2\r\n" + bytes(range(256)) * 4, "bad HTTP response"),
    "nothing": (b"", "closed the connection before sending a response"),
}


@pytest.mark.lab
@pytest.mark.parametrize("case", list(LAB_CASES))
def test_hostile_server(lab, run_rawtui, tmp_path, case):
    raw, words = LAB_CASES[case]
    resp = tmp_path / "response.bin"
    resp.write_bytes(raw)
    port = next(_ports)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUDO_")}
    proc = lab.popen(lab.server_ns, [sys.executable, "-c", SERVER, str(port), str(resp)], stdout=subprocess.PIPE,
                      text=True, env=env)
    try:
        assert proc.stdout.readline().strip() == "ready"
        r = run_rawtui("--headless", "-q", "-o", "out.bin", f"http://{lab.server_ip}:{port}/x.bin", timeout=60)
    finally:
        lab.stop(proc)
    assert r.returncode == 6, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("rawtui: error: ") and words in last, last
    assert "Traceback" not in r.stderr
    names = sorted(p.name for p in Path(r.cwd).iterdir())
    if case == "shorter-body":  # a lost connection: what came is kept for -C -, never under the final name
        assert names == ["out.bin.part", "out.bin.part.meta", "response.bin"]
        assert (Path(r.cwd) / "out.bin.part").read_bytes() == b"y" * 5000
        assert "5,000 bytes kept in out.bin.part" in last
    else:
        assert names == ["response.bin"]  # no out.bin, no partial file
