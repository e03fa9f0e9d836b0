"""The TLS channel: TLS through ``ssl.MemoryBIO`` (sans-IO), with the interface of
:mod:`rawtui.http.channel` (imported for ``https://`` URLs only).
"""

from __future__ import annotations

import ssl
import time
from dataclasses import dataclass

from rawtui.errors import TlsError


@dataclass(frozen=True, slots=True)
class TlsSummary:
    version: str
    cipher: str
    alpn: str | None
    subject: str
    issuer: str
    not_after: str
    verified: bool
    handshake_ms: float


def make_context(cafile: str | None = None, insecure: bool = False, keylog: str | None = None) -> ssl.SSLContext:
    """System CAs, hostname check, TLS 1.2+, ALPN http/1.1; or a private CA; or no verification at all."""
    try:
        ctx = ssl.create_default_context(cafile=cafile)
    except (OSError, ssl.SSLError) as e:
        raise TlsError(f"cannot load the CA file {cafile}: {getattr(e, 'strerror', None) or e}") from None
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_alpn_protocols(["http/1.1"])
    if insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if keylog:
        ctx.keylog_filename = keylog
    return ctx


def _name(parts: object) -> str:
    """A certificate name (getpeercert()'s tuple of RDNs of (key, value) pairs) as "k=v, k=v"."""
    if not parts or not isinstance(parts, tuple):
        return ""
    return ", ".join(f"{k}={v}" for rdn in parts for k, v in rdn)


class TlsChannel:
    tls = True

    def __init__(self, ctx: ssl.SSLContext, hostname: str) -> None:
        self.hostname = hostname
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self._obj = ctx.wrap_bio(self._in, self._out, server_hostname=hostname)
        self.ready = False
        self._started_at = 0.0
        self.summary: TlsSummary | None = None
        self.closed = False

    def start(self) -> bytes:
        self._started_at = time.monotonic()
        self._handshake()
        return self._out.read()

    def _handshake(self) -> None:
        try:
            self._obj.do_handshake()
        except ssl.SSLWantReadError:
            return
        except ssl.SSLCertVerificationError as e:
            why = e.verify_message or str(e)
            raise TlsError(f"the certificate of {self.hostname} was refused: {why}") from None
        except ssl.SSLError as e:
            raise TlsError(f"TLS handshake with {self.hostname} failed: {e.reason or e}") from None
        self.ready = True
        self.summary = self._summarise()

    def _summarise(self) -> TlsSummary:
        obj = self._obj
        cert = obj.getpeercert() or {}
        cipher = obj.cipher()
        verified = obj.context.verify_mode != ssl.CERT_NONE
        return TlsSummary(
            version=obj.version() or "?",
            cipher=cipher[0] if cipher else "?",
            alpn=obj.selected_alpn_protocol(),
            subject=_name(cert.get("subject")) if verified else "(not verified: --insecure)",
            issuer=_name(cert.get("issuer")) if verified else "",
            not_after=str(cert.get("notAfter", "")),
            verified=verified,
            handshake_ms=round((time.monotonic() - self._started_at) * 1000, 3),
        )

    def incoming(self, data: bytes) -> bytes:
        self._in.write(data)
        if not self.ready:
            self._handshake()
            if not self.ready:
                return b""
        return self._read_all()

    def _read_all(self) -> bytes:
        chunks: list[bytes] = []
        while True:
            try:
                chunk = self._obj.read(1 << 20)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:  # close_notify
                self.closed = True
                break
            except ssl.SSLError as e:
                raise TlsError(f"TLS error from {self.hostname}: {e.reason or e}") from None
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)

    def take_wire(self) -> bytes:
        return self._out.read()

    def outgoing(self, plaintext: bytes) -> bytes:
        self._obj.write(plaintext)
        return self._out.read()

    def eof(self) -> bytes:
        self._in.write_eof()
        try:
            return self._read_all()
        except TlsError:
            return b""  # a ragged EOF: HTTP's own framing decides whether the body is complete
