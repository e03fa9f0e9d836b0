"""rawtui.http.request (the headers of a request: -H, -A, -e, --compressed, -I, Range) and
rawtui.http.decode (gzip / deflate undone as the body streams)."""

from __future__ import annotations

import gzip
import zlib

import h11
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rawtui.errors import EXIT_USAGE, HttpError, UsageError
from rawtui.http.client import HttpExchange, parse_url
from rawtui.http.decode import BodyDecoder, content_codings
from rawtui.http.request import (
    DEFAULT_USER_AGENT,
    HeaderOption,
    RequestOptions,
    build_headers,
    check_header_value,
    parse_header_option,
)


def names(headers: list[tuple[str, str]]) -> list[str]:
    return [k for k, _ in headers]


def test_default_headers() -> None:
    h = build_headers("h:8080", RequestOptions())
    assert h == [("Host", "h:8080"), ("User-Agent", DEFAULT_USER_AGENT), ("Accept", "*/*"),
                 ("Accept-Encoding", "identity"), ("Connection", "close")]


def test_user_agent_referer_compressed() -> None:
    h = dict(build_headers("h", RequestOptions(user_agent="curl/8", referer="http://a/b", compressed=True)))
    assert h["User-Agent"] == "curl/8" and h["Referer"] == "http://a/b"
    assert h["Accept-Encoding"] == "gzip, deflate"


def test_range_and_if_range_for_a_resume_and_never_compressed() -> None:
    h = build_headers("h", RequestOptions(compressed=True), range_from=1234, if_range='"abc"')
    d = dict(h)
    assert d["Range"] == "bytes=1234-" and d["If-Range"] == '"abc"'
    assert d["Accept-Encoding"] == "identity"  # a range of the identity bytes
    assert "Range" not in dict(build_headers("h", RequestOptions(), range_from=0, if_range='"abc"'))


def test_keep_alive_sends_no_connection_header() -> None:
    assert "Connection" not in names(build_headers("h", RequestOptions(), connection=None))


@pytest.mark.parametrize(("text", "want"), [
    ("X-Test: 1", HeaderOption("X-Test", "1")),
    ("X-Test:1", HeaderOption("X-Test", "1")),
    ("X-Test:   spaced value  ", HeaderOption("X-Test", "spaced value")),
    ("X-Test: a: b", HeaderOption("X-Test", "a: b")),
    ("Accept:", HeaderOption("Accept", None)),  # curl: remove
    ("Accept:   ", HeaderOption("Accept", None)),
    ("X-Empty;", HeaderOption("X-Empty", "")),  # curl: send empty
])
def test_header_option_parsing(text: str, want: HeaderOption) -> None:
    assert parse_header_option(text) == want


@pytest.mark.parametrize("text", ["no colon", ": value", "Bad Name: x", "X: a\r\nInjected: 1", "X: a\nb",
                                  "Ä: x", "X: a\x01b", ""])
def test_malformed_header_option_is_a_usage_error_naming_the_flag(text: str) -> None:
    with pytest.raises(UsageError) as e:
        parse_header_option(text)
    assert e.value.exit_code == EXIT_USAGE
    assert e.value.message.startswith("bad -H ")


def test_header_options_replace_remove_and_add() -> None:
    opts = RequestOptions(user_agent="ua", headers=(
        parse_header_option("user-agent: mine"),  # replaces rawtui's (and -A), in place
        parse_header_option("Accept-Encoding:"),  # removes
        parse_header_option("X-One: 1"),
        parse_header_option("X-One: 2"),  # a second one of a new name: both are sent
        parse_header_option("Connection: keep-alive"),
    ))
    h = build_headers("h", opts)
    assert h == [("Host", "h"), ("user-agent", "mine"), ("Accept", "*/*"), ("Connection", "keep-alive"),
                 ("X-One", "1"), ("X-One", "2")]


def test_removed_then_added_again() -> None:
    opts = RequestOptions(headers=(parse_header_option("Accept:"), parse_header_option("Accept: text/html")))
    assert dict(build_headers("h", opts))["Accept"] == "text/html"


def test_host_cannot_be_removed_but_can_be_replaced() -> None:
    with pytest.raises(UsageError, match="Host"):
        build_headers("h", RequestOptions(headers=(parse_header_option("Host:"),)))
    assert build_headers("h", RequestOptions(headers=(parse_header_option("Host: other"),)))[0] == ("Host", "other")


def test_user_agent_and_referer_values_are_checked() -> None:
    assert check_header_value("curl/8.0", "-A") == "curl/8.0"
    with pytest.raises(UsageError, match="bad -e"):
        check_header_value("http://a\r\nX: y", "-e")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_any_accepted_header_makes_a_request_h11_can_send(text: str) -> None:
    try:
        opt = parse_header_option(text)
    except UsageError:
        return
    if opt.name.lower() == "host" and opt.value is None:
        return
    x = HttpExchange(parse_url("http://h/x"), options=RequestOptions(headers=(opt,)))
    wire = x.request()
    server = h11.Connection(h11.SERVER)
    server.receive_data(wire)
    ev = server.next_event()
    assert isinstance(ev, h11.Request)


def test_a_non_ascii_header_value_goes_out_as_the_users_bytes() -> None:
    """As curl: argv's bytes, UTF-8 here, and bytes the locale could not decode (surrogate escapes) as they were."""
    opts = RequestOptions(headers=(parse_header_option("X-Name: café"), parse_header_option("X-Raw: \udcff")))
    wire = HttpExchange(parse_url("http://h/x"), options=opts).request()
    assert b"X-Name: caf\xc3\xa9\r\n" in wire and b"X-Raw: \xff\r\n" in wire


def test_head_request_and_range_on_the_wire() -> None:
    x = HttpExchange(parse_url("http://h:81/f.bin"), options=RequestOptions(head=True, referer="http://r/"),
                     range_from=10, if_range='"e"')
    server = h11.Connection(h11.SERVER)
    server.receive_data(x.request())
    ev = server.next_event()
    assert isinstance(ev, h11.Request) and ev.method == b"HEAD" and ev.target == b"/f.bin"
    got = {k.decode(): v.decode() for k, v in ev.headers}
    assert got["host"] == "h:81" and got["range"] == "bytes=10-" and got["if-range"] == '"e"'
    assert got["referer"] == "http://r/"
    # the HEAD response's Content-Length announces no body
    x.receive(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nETag: \"e\"\r\n\r\n")
    assert x.complete and x.content_length == 1000 and x.header("etag") == '"e"'


# -- decoding -----------------------------------------------------------------------------------------


def feed_in_pieces(dec: BodyDecoder, data: bytes, step: int) -> bytes:
    out = [dec.feed(data[i:i + step]) for i in range(0, len(data), step)]
    out.append(dec.finish())
    return b"".join(out)


BODY = b"".join(b"line %d of a compressible text\n" % i for i in range(20_000))


@pytest.mark.parametrize("step", [1, 7, 1448, 1 << 20])
@pytest.mark.parametrize(("coding", "encode"), [
    ("gzip", gzip.compress),
    ("x-gzip", gzip.compress),
    ("deflate", zlib.compress),  # the standard: zlib-wrapped
    ("deflate", lambda b: zlib.compress(b)[2:-4]),  # raw deflate, as some servers send it
])
def test_decoders_give_the_body_back_whatever_the_pieces(coding, encode, step) -> None:
    wire = encode(BODY)
    dec = BodyDecoder(coding)
    assert feed_in_pieces(dec, wire, step) == BODY
    assert dec.wire_bytes == len(wire) and dec.file_bytes == len(BODY)


def test_gzip_members_one_after_another_decode_as_one() -> None:
    dec = BodyDecoder("gzip")
    assert feed_in_pieces(dec, gzip.compress(b"abc") + gzip.compress(b"def"), 5) == b"abcdef"


def test_a_truncated_or_corrupt_stream_is_an_error() -> None:
    wire = gzip.compress(BODY)
    dec = BodyDecoder("gzip")
    dec.feed(wire[: len(wire) // 2])
    with pytest.raises(HttpError, match="truncated"):
        dec.finish()
    with pytest.raises(HttpError, match="corrupt"):
        BodyDecoder("gzip").feed(b"\x1f\x8b\x08\x00garbage-garbage-garbage")


def test_content_codings() -> None:
    assert content_codings(None) == [] and content_codings("identity") == []
    assert content_codings("GZIP") == ["gzip"] and content_codings("deflate, gzip") == ["deflate", "gzip"]


# -- the command line ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("argv", "words"), [
    (["-H", "no colon"], "argument -H/--header: 'no colon': no ':' between the name and the value"),
    (["-H", "Bad Name: x"], "argument -H/--header: 'Bad Name: x': 'Bad Name' is not a valid header name"),
    (["-A", "a\nb"], "argument -A/--user-agent: 'a\\nb' holds a line break"),
    (["-e", "http://r/\r\nX: 1"], "argument -e/--referer:"),
    (["-C", "100"], "argument -C/--continue-at: '100': only '-C -' is supported"),
    (["-C", "-", "-o", "-"], "-C - continues a file: it cannot be used with -o -"),
])
def test_bad_curl_flags_are_exit_2_naming_the_flag(argv: list[str], words: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from rawtui.cli import main

    assert main([*argv, "http://10.0.0.1/x.bin"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("rawtui: error: ") and words in err and err.count("\n") == 1, err
