"""HTTP/1.1 over the stack's byte stream, with h11 doing the protocol.

:class:`HttpExchange` is sans-IO like the rest of the stack: :meth:`request` gives the bytes to send,
:meth:`receive` takes bytes from the connection and returns body chunks, :meth:`receive_eof` says the
peer closed. Status handling (redirects, 4xx/5xx) is decided here; the session acts on it.
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass
from urllib.parse import unquote, urljoin, urlsplit

import h11

from rawtui import __version__
from rawtui.errors import HttpError, UsageError
from rawtui.http.request import RequestOptions, build_headers

REDIRECT_STATUSES = (301, 302, 303, 307, 308)


class BodyCut(HttpError):
    """The connection ended before the body did (a lost connection, not a bad response): what arrived is a
    sound prefix of the body, kept in FILE.part for ``-C -``."""

    transient = True  # a lost connection: --retry tries again (continuing with Range when it can)


class BadBody(HttpError):
    """The body broke the protocol (a bad chunk, more than Content-Length, a corrupt gzip stream): the
    partial file is not kept, there is nothing sound to continue."""


MAX_HEADER_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Url:
    scheme: str
    host: str  # a name or an address; an IPv6 literal without its brackets and zone ("2001:db8::2")
    port: int
    target: str  # path and query, as sent in the request line
    text: str
    zone: str | None = None  # the interface of a link-local IPv6 literal: [fe80::2%25eth0] -> "eth0"

    @property
    def is_ipv6(self) -> bool:
        return ":" in self.host

    @property
    def address(self) -> str:
        """The host as a route lookup takes it: with its zone ("fe80::2%eth0")."""
        return f"{self.host}%{self.zone}" if self.zone else self.host

    @property
    def is_literal(self) -> bool:
        """An IP address, not a name: no SNI is sent for it (RFC 6066 3)."""
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return False
        return True

    @property
    def host_header(self) -> str:
        """Host: an IPv6 literal in brackets, without its zone (RFC 6874 4: the zone means nothing to the
        server), the port when it is not the scheme's."""
        host = f"[{self.host}]" if self.is_ipv6 else self.host
        default = 80 if self.scheme == "http" else 443
        return host if self.port == default else f"{host}:{self.port}"

    @property
    def filename(self) -> str:
        """The last path segment, as curl -O would name the file (index.html for an empty one)."""
        path = urlsplit(self.text).path
        name = path.rsplit("/", 1)[-1]
        return name if name not in ("", ".", "..") else "index.html"


def parse_url(text: str) -> Url:
    if "://" not in text:
        text = "http://" + text
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as e:
        raise UsageError(f"bad URL {text!r}: {e}") from None
    if parts.scheme not in ("http", "https"):
        raise UsageError(f"unsupported URL scheme {parts.scheme!r}: rawtui downloads http:// and https:// URLs")
    if not parts.hostname:
        raise UsageError(f"no host in URL {text!r}")
    host, zone = _host_and_zone(parts.hostname, text)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return Url(parts.scheme, host, port or (443 if parts.scheme == "https" else 80), target, text, zone)


def _host_and_zone(hostname: str, text: str) -> tuple[str, str | None]:
    """urlsplit's hostname (already checked to be an IPv6 address when it was in brackets) split into the
    address and its zone. RFC 6874: the zone follows "%25" (the encoded "%"); a bare "%" is taken too, as
    curl and browsers do. A zone belongs to a link-local address and names an interface."""
    if ":" not in hostname:
        return hostname, None
    address, sep, rest = hostname.partition("%")
    try:
        ip = ipaddress.IPv6Address(address)
    except ValueError:  # IPvFuture ([v1.x]): urlsplit lets it through
        raise UsageError(f"bad URL {text!r}: {hostname!r} is not an IPv6 address") from None
    if not sep:
        return ip.compressed, None
    zone = unquote(rest.removeprefix("25"))
    if not zone or len(zone) > 15 or any(c in zone for c in "/%: \t\n"):
        raise UsageError(f"bad URL {text!r}: {zone!r} is not an interface name (as in [fe80::1%25eth0])")
    if not ip.is_link_local:
        raise UsageError(f"bad URL {text!r}: a zone (%25{zone}) belongs to a link-local address, not {ip}")
    return ip.compressed, zone


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Retry-After (RFC 9110 10.2.3): seconds, or an HTTP-date (seconds from ``now``, the epoch time)."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    from email.utils import parsedate_to_datetime  # here: the email package costs ~5 ms at start-up

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class HttpExchange:
    """One request and its response on one connection."""

    def __init__(
        self, url: Url, user_agent: str = f"rawtui/{__version__}", *, options: RequestOptions | None = None,
        range_from: int = 0, if_range: str | None = None,
    ) -> None:
        self.url = url
        self.user_agent = user_agent
        self.options = options if options is not None else RequestOptions(user_agent=user_agent)
        self.range_from = range_from  # resume: ask for the body from this byte on (Range, If-Range)
        self.if_range = if_range
        self.conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEADER_BYTES)
        self.response: h11.Response | None = None
        self.content_length: int | None = None
        self.body_bytes = 0
        self.complete = False
        self._remaining: int | None = None  # Content-Length body bytes still due, once past the headers
        self._head_fed = 0  # bytes fed before the response head was parsed
        self.keep_alive = False  # True: no "Connection: close", the connection may serve another request

    def request(self) -> bytes:
        headers = build_headers(self.url.host_header, self.options, range_from=self.range_from,
                                if_range=self.if_range, connection=None if self.keep_alive else "close")
        # values as the bytes the user gave (curl sends argv's bytes: UTF-8, or what the locale could not
        # decode, kept by Python as surrogate escapes); h11 would refuse anything but ASCII text
        req = h11.Request(method=self.options.method, target=self.url.target,
                          headers=[(k.encode("ascii"), v.encode("utf-8", "surrogateescape")) for k, v in headers])
        return self.conn.send(req) + self.conn.send(h11.EndOfMessage())

    @property
    def status(self) -> int | None:
        return self.response.status_code if self.response is not None else None

    @property
    def headers(self) -> list[tuple[str, str]]:
        if self.response is None:
            return []
        return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in self.response.headers]

    def header(self, name: str) -> str | None:
        name_b = name.lower().encode()
        if self.response is not None:
            for k, v in self.response.headers:
                if k == name_b:
                    return v.decode("latin-1")
        return None

    @property
    def reusable(self) -> bool:
        """The response is complete and both sides keep the connection open (HTTP/1.1 keep-alive): the
        next request to this server may use it."""
        r = self.response
        if not self.keep_alive or not self.complete or r is None or r.http_version != b"1.1":
            return False
        if any(t.strip() == "close" for t in (self.header("connection") or "").lower().split(",")):
            return False
        # a body the close delimits has ended with the connection
        return self.content_length is not None or self.header("transfer-encoding") is not None or (
            self.options.method == "HEAD" or r.status_code in (204, 304))

    @property
    def retry_after(self) -> float | None:
        """The response's Retry-After in seconds (delay-seconds or an HTTP-date), or None."""
        return parse_retry_after(self.header("retry-after"))

    @property
    def redirect_location(self) -> str | None:
        """The absolute URL to follow, when the response is a redirect."""
        if self.status in REDIRECT_STATUSES:
            loc = self.header("location")
            if not loc:
                raise HttpError(f"HTTP {self.status} redirect without a Location header")
            return urljoin(self.url.text, loc)
        return None

    def receive(self, data: bytes) -> list[bytes]:
        """Feed bytes from the connection; returns the body chunks they completed."""
        if not data:
            return []  # h11 would take b"" for the end of the stream: that is receive_eof()
        if self._remaining is not None:
            return self._counted_body(data)
        if self.response is None:
            self._head_fed += len(data)
        try:
            self.conn.receive_data(data)
            return self._drain()
        except h11.RemoteProtocolError as e:
            raise (BadBody if self.response is not None else HttpError)(self._protocol_message(e)) from None

    def receive_eof(self) -> list[bytes]:
        """The peer closed its side (FIN)."""
        if self.complete:
            return []
        if self._remaining is not None:
            raise BodyCut(f"the server closed the connection after {self.body_bytes} of {self.content_length}"
                          " body bytes: the body is truncated")
        try:
            self.conn.receive_data(b"")
            return self._drain()
        except h11.RemoteProtocolError as e:
            cls = BodyCut if self.response is not None else HttpError
            raise cls(self._protocol_message(e, eof=True)) from None

    def _protocol_message(self, e: h11.RemoteProtocolError, eof: bool = False) -> str:
        if self.response is None:
            if eof and self._head_fed:
                return (f"bad HTTP response from the server: the connection closed after {self._head_fed} bytes"
                        " that are not an HTTP response head")
            if eof:
                return "the server closed the connection before sending a response"
            if e.error_status_hint == 431:  # h11: "Request Header Fields Too Large" (its buffer limit)
                return f"the response header is longer than {MAX_HEADER_BYTES // 1024} KB"
            return f"bad HTTP response from the server: {e}"
        if eof and self.content_length is not None:
            return (f"the server closed the connection after {self.body_bytes} of {self.content_length} body"
                    " bytes: the body is truncated")
        if eof:
            return f"the server closed the connection in the middle of the body: {e}"
        return f"bad HTTP response body: {e}"

    def _countable(self) -> bool:
        assert self.response is not None
        status = self.response.status_code
        return (self.header("transfer-encoding") is None and status >= 200 and status not in (204, 304)
                and self.options.method != "HEAD"  # a HEAD response's Content-Length announces no body
                and self.conn.their_state is h11.SEND_BODY)

    def _counted_body(self, data: bytes) -> list[bytes]:
        assert self._remaining is not None
        n = len(data)
        if n > self._remaining:
            raise BadBody(f"the server sent more than the declared Content-Length of {self.content_length}"
                            " bytes")
        self._remaining -= n
        self.body_bytes += n
        if self._remaining == 0:
            self.complete = True
        return [data] if n else []

    def _drain(self) -> list[bytes]:
        chunks: list[bytes] = []
        while True:
            ev = self.conn.next_event()
            if ev is h11.NEED_DATA or ev is h11.PAUSED:
                return chunks
            if isinstance(ev, h11.InformationalResponse):
                continue
            if isinstance(ev, h11.Response):
                # h11 bounds only a head that is still incomplete: one that arrived whole is measured here
                if self._head_fed - len(self.conn.trailing_data[0]) > MAX_HEADER_BYTES:
                    raise HttpError(f"the response header is longer than {MAX_HEADER_BYTES // 1024} KB")
                self.response = ev
                cl = self.header("content-length")
                if cl is not None:
                    try:
                        self.content_length = int(cl)
                    except ValueError:
                        raise HttpError(f"bad Content-Length {cl!r}") from None
                    if self.content_length < 0:
                        raise HttpError(f"negative Content-Length {cl!r}")
                    if self._countable():
                        # h11 has parsed the head and checked the framing; a Content-Length body is
                        # then just counted here, which saves h11's two extra copies of every byte.
                        self._remaining = self.content_length
                        leftover = bytes(self.conn.trailing_data[0])
                        return chunks + self._counted_body(leftover)
            elif isinstance(ev, h11.Data):
                self.body_bytes += len(ev.data)
                chunks.append(bytes(ev.data))
            elif isinstance(ev, h11.EndOfMessage):
                self.complete = True
                return chunks
            elif isinstance(ev, h11.ConnectionClosed):
                return chunks
