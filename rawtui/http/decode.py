"""Content-Encoding decoded as the body streams (``--compressed``): gzip and deflate, with zlib.

:class:`BodyDecoder` takes the body as it comes off the wire and returns the file's bytes; ``finish()``
says whether the compressed stream ended properly (a truncated gzip body is an error, not a short file).
Sans-IO: bytes in, bytes out.
"""

from __future__ import annotations

import zlib

from rawtui.http.client import BadBody

DECODABLE = ("gzip", "x-gzip", "deflate")


def content_codings(header: str | None) -> list[str]:
    """The codings of a Content-Encoding header, in the order they were applied (``identity`` dropped)."""
    if not header:
        return []
    return [c.strip().lower() for c in header.split(",") if c.strip() and c.strip().lower() != "identity"]


class BodyDecoder:
    """Undo one Content-Encoding (``gzip`` / ``x-gzip`` / ``deflate``) as the body streams.

    ``deflate`` is meant to be zlib-wrapped (RFC 9112), but some servers send raw deflate: the first bytes
    decide. Several gzip members one after the other (``cat a.gz b.gz``) decode as one stream, as gzip(1)
    does.
    """

    def __init__(self, coding: str) -> None:
        if coding not in DECODABLE:
            raise ValueError(f"cannot decode {coding!r}")
        self.coding = coding
        self.wire_bytes = 0
        self.file_bytes = 0
        self._gzip = coding != "deflate"
        self._d = zlib.decompressobj(31 if self._gzip else 15)
        self._started = False  # deflate: wrapped or raw is decided on the first bytes
        self._head = b""

    def feed(self, data: bytes) -> bytes:
        self.wire_bytes += len(data)
        if not data:
            return b""
        try:
            out = self._feed(data)
        except zlib.error as e:
            raise BadBody(f"the server's {self.coding} body is corrupt: {e}") from None
        self.file_bytes += len(out)
        return out

    def _feed(self, data: bytes) -> bytes:
        if not self._gzip and not self._started:
            self._head += data
            if len(self._head) < 2:
                return b""
            self._started = True
            data, self._head = self._head, b""
            cmf, flg = data[0], data[1]
            if not (cmf & 0x0F == 8 and (cmf << 8 | flg) % 31 == 0):
                self._d = zlib.decompressobj(-15)  # no zlib header: raw deflate
        out = [self._d.decompress(data)]
        while self._gzip and self._d.eof and self._d.unused_data:
            rest = self._d.unused_data
            self._d = zlib.decompressobj(31)  # another gzip member
            out.append(self._d.decompress(rest))
        return b"".join(out)

    def finish(self) -> bytes:
        """The end of the body: the last bytes; an error if the compressed stream was cut short."""
        tail = b""
        if self._head:  # a deflate body of one byte: not a stream at all
            raise BadBody(f"the server's {self.coding} body is truncated: it ended before the stream did")
        try:
            tail = self._d.flush()
        except zlib.error as e:
            raise BadBody(f"the server's {self.coding} body is corrupt: {e}") from None
        if self.wire_bytes and not self._d.eof:
            raise BadBody(f"the server's {self.coding} body is truncated: it ended before the stream did")
        self.file_bytes += len(tail)
        return tail
