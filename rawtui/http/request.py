"""What the request says: the headers rawtui sends, and the user's additions to them (curl's options).

:class:`RequestOptions` holds what the command line asked for (``-H``, ``-A``, ``-e``, ``--compressed``,
``-I``) and the resume range; :func:`build_headers` turns it into the header list of one request. Pure:
no I/O, so the tests check every combination directly.

``-H`` follows curl: ``-H 'Name: value'`` adds a header, or replaces rawtui's own header of that name
(``-H 'User-Agent: x'``, ``-H 'Accept: text/html'``); ``-H 'Name:'`` removes rawtui's header of that name;
``-H 'Name;'`` sends the header with an empty value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from rawtui import __version__
from rawtui.errors import UsageError

DEFAULT_USER_AGENT = f"rawtui/{__version__}"
COMPRESSED_ENCODINGS = "gzip, deflate"  # what --compressed asks for: zlib decodes both
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")  # RFC 9110 field-name


@dataclass(frozen=True, slots=True)
class HeaderOption:
    """One ``-H``: ``value`` None removes rawtui's header of that name (curl's ``-H 'Name:'``)."""

    name: str
    value: str | None


def parse_header_option(text: str, flag: str = "-H") -> HeaderOption:
    """``'Name: value'`` (or curl's ``'Name:'`` / ``'Name;'``) as a :class:`HeaderOption`; a malformed
    one is a :class:`UsageError` (exit 2) naming the flag."""
    def bad(why: str) -> UsageError:
        return UsageError(f"bad {flag} {text!r}: {why}; use {flag} 'Name: value'")

    if "\r" in text or "\n" in text or "\0" in text:
        raise bad("a header cannot hold a line break or a NUL")
    colon = text.find(":")
    if colon < 0:
        if text.endswith(";") and _TOKEN.match(text[:-1]):
            return HeaderOption(text[:-1], "")  # curl: 'Name;' sends the header empty
        raise bad("no ':' between the name and the value")
    name, value = text[:colon], text[colon + 1 :].strip(" \t")
    if not name:
        raise bad("the header name is empty")
    if not _TOKEN.match(name):
        raise bad(f"{name!r} is not a valid header name")
    if not value:
        return HeaderOption(name, None)  # curl: 'Name:' removes the header
    if any(ord(c) < 0x20 and c != "\t" or ord(c) == 0x7F for c in value):
        raise bad("the value holds a control character")
    return HeaderOption(name, value)


def check_header_value(value: str, flag: str) -> str:
    """A value for ``-A`` or ``-e``: one line, no control character (else exit 2 naming ``flag``)."""
    if any(ord(c) < 0x20 and c != "\t" or ord(c) == 0x7F for c in value):
        raise UsageError(f"bad {flag} {value!r}: it holds a line break or a control character")
    return value


@dataclass(frozen=True, slots=True)
class RequestOptions:
    """What the user asked to change in the request (the same for every request of a run)."""

    user_agent: str | None = None  # -A
    referer: str | None = None  # -e
    compressed: bool = False  # --compressed: ask for gzip or deflate (decoded as it streams)
    head: bool = False  # -I: a HEAD request
    headers: tuple[HeaderOption, ...] = field(default_factory=tuple)  # -H, in order

    @property
    def method(self) -> str:
        return "HEAD" if self.head else "GET"


def build_headers(
    host: str, opts: RequestOptions, *, range_from: int = 0, if_range: str | None = None,
    connection: str | None = "close",
) -> list[tuple[str, str]]:
    """The request's headers: rawtui's own, then ``-A``/``-e``/``--compressed``, the resume range
    (``Range: bytes=N-`` and ``If-Range`` when ``range_from`` > 0), then each ``-H`` replacing or removing
    a header of the same name (case-insensitive) or adding one. ``connection`` None sends no Connection
    header (HTTP/1.1 keep-alive by default)."""
    compressed = opts.compressed and range_from == 0  # a range is of the identity bytes: never compressed
    headers: list[tuple[str, str]] = [
        ("Host", host),
        ("User-Agent", opts.user_agent if opts.user_agent is not None else DEFAULT_USER_AGENT),
        ("Accept", "*/*"),
        ("Accept-Encoding", COMPRESSED_ENCODINGS if compressed else "identity"),
    ]
    if opts.referer:
        headers.append(("Referer", opts.referer))
    if range_from > 0:
        headers.append(("Range", f"bytes={range_from}-"))
        if if_range:
            headers.append(("If-Range", if_range))
    if connection is not None:
        headers.append(("Connection", connection))
    own = {k.lower() for k, _ in headers}  # rawtui's headers: a -H of the same name replaces or removes one
    for h in opts.headers:
        key = h.name.lower()
        if h.value is None:
            if key == "host":
                raise UsageError("bad -H 'Host:': HTTP/1.1 requires a Host header; give it a value instead")
            headers = [(k, v) for k, v in headers if k.lower() != key]
            own.discard(key)
        elif key in own:
            own.discard(key)  # replaced once: a second -H of that name adds another line, as curl does
            headers = [(h.name, h.value) if k.lower() == key else (k, v) for k, v in headers]
        else:
            headers.append((h.name, h.value))
    return headers
