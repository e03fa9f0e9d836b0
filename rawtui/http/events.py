"""Events of the protocols on top of TCP: the HTTP response head, redirects, TLS."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from rawtui.stack.events import Event


@dataclass(slots=True)
class HttpResponse(Event):
    type: ClassVar[str] = "http_response"
    status: int
    reason: str
    content_length: int | None
    headers: list[tuple[str, str]] = field(default_factory=list)


@dataclass(slots=True)
class Redirect(Event):
    type: ClassVar[str] = "redirect"
    status: int
    location: str
    hop: int


@dataclass(slots=True)
class TlsInfo(Event):
    """The TLS handshake finished: what was negotiated and who the server proved to be."""

    type: ClassVar[str] = "tls"
    version: str
    cipher: str
    alpn: str | None
    subject: str
    issuer: str
    not_after: str
    verified: bool
    handshake_ms: float


@dataclass(slots=True)
class TlsRecord(Event):
    """A TLS record began in the byte stream (its header only: the content stays encrypted)."""

    type: ClassVar[str] = "tls_record"
    direction: str  # "in" (from the server) or "out"
    content_type: str  # "Handshake", "ApplicationData", "Alert", "ChangeCipherSpec"...
    length: int
