"""TLS wire formats (RFC 8446, RFC 5246): records, handshake messages, and the hello fields a capture's
analysis needs. Pure parsing, no cryptography (decryption is :mod:`rawtui.http.tls_decrypt`).

:class:`RecordReader` cuts one direction of a TCP byte stream into records; :class:`HandshakeReader` cuts
the handshake records' contents into messages (a message may span records, a record may hold several);
:func:`parse_client_hello` and :func:`parse_server_hello` read what decides the connection (randoms,
version, cipher suite, SNI, ALPN); :func:`parse_certificate` the DER certificates;
:func:`looks_like_tls` recognises a connection's first bytes as a ClientHello.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from rawtui.wire.errors import WireError

CHANGE_CIPHER_SPEC, ALERT, HANDSHAKE, APPLICATION_DATA, HEARTBEAT = 20, 21, 22, 23, 24
CONTENT_TYPES = {20: "ChangeCipherSpec", 21: "Alert", 22: "Handshake", 23: "ApplicationData", 24: "Heartbeat"}

HS_CLIENT_HELLO, HS_SERVER_HELLO, HS_NEW_SESSION_TICKET, HS_ENCRYPTED_EXTENSIONS = 1, 2, 4, 8
HS_CERTIFICATE, HS_FINISHED, HS_KEY_UPDATE = 11, 20, 24
HANDSHAKE_TYPES = {
    0: "HelloRequest", 1: "ClientHello", 2: "ServerHello", 4: "NewSessionTicket", 5: "EndOfEarlyData",
    8: "EncryptedExtensions", 11: "Certificate", 12: "ServerKeyExchange", 13: "CertificateRequest",
    14: "ServerHelloDone", 15: "CertificateVerify", 16: "ClientKeyExchange", 20: "Finished", 24: "KeyUpdate",
}

VERSIONS = {0x0300: "SSLv3", 0x0301: "TLSv1", 0x0302: "TLSv1.1", 0x0303: "TLSv1.2", 0x0304: "TLSv1.3"}
TLS12, TLS13 = 0x0303, 0x0304

# IANA names of the suites a capture's analysis names (others are shown by number)
CIPHER_SUITES = {
    0x1301: "TLS_AES_128_GCM_SHA256", 0x1302: "TLS_AES_256_GCM_SHA384", 0x1303: "TLS_CHACHA20_POLY1305_SHA256",
    0x1304: "TLS_AES_128_CCM_SHA256", 0x1305: "TLS_AES_128_CCM_8_SHA256",
    0xC02B: "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", 0xC02C: "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    0xC02F: "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", 0xC030: "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    0x009E: "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256", 0x009F: "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384",
    0x009C: "TLS_RSA_WITH_AES_128_GCM_SHA256", 0x009D: "TLS_RSA_WITH_AES_256_GCM_SHA384",
    0xCCA8: "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", 0xCCA9: "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    0xCCAA: "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    0xC013: "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", 0xC014: "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    0xC027: "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", 0xC028: "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384",
    0x002F: "TLS_RSA_WITH_AES_128_CBC_SHA", 0x0035: "TLS_RSA_WITH_AES_256_CBC_SHA",
}

EXT_SERVER_NAME, EXT_ALPN, EXT_SUPPORTED_VERSIONS = 0, 16, 43
# A HelloRetryRequest is a ServerHello with this random (RFC 8446 4.1.3)
HRR_RANDOM = bytes.fromhex("cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")
MAX_RECORD = (1 << 14) + 2048  # TLSCiphertext.length limit (RFC 8446 5.2); a larger one is not TLS


def version_name(v: int) -> str:
    return VERSIONS.get(v, f"0x{v:04x}")


def suite_name(code: int) -> str:
    return CIPHER_SUITES.get(code, f"0x{code:04X}")


def content_type_name(ctype: int) -> str:
    return CONTENT_TYPES.get(ctype, f"type {ctype}")


@dataclass(frozen=True, slots=True)
class TlsRecord:
    """One record as on the wire: its 5-byte header (the AAD of TLS 1.3) and its fragment."""

    content_type: int
    version: int
    header: bytes
    fragment: bytes

    @property
    def name(self) -> str:
        return content_type_name(self.content_type)


class RecordReader:
    """Cuts one direction of the in-order byte stream into whole records. ``feed`` returns the records
    completed by the bytes given; a header that is not a TLS record's raises :class:`WireError` (and
    the reader refuses everything after it)."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self.broken = False
        self.records = 0

    def feed(self, data: bytes) -> list[TlsRecord]:
        if self.broken:
            return []
        self._buf += data
        out: list[TlsRecord] = []
        buf = self._buf
        i = 0
        while len(buf) - i >= 5:
            ctype, version, length = struct.unpack_from("!BHH", buf, i)
            if ctype not in CONTENT_TYPES or version >> 8 != 3 or length > MAX_RECORD:
                self.broken = True
                head = bytes(buf[i:i + 5]).hex()
                del buf[:]
                raise WireError(f"not a TLS record header ({head}) after {self.records} records")
            if len(buf) - i < 5 + length:
                break
            out.append(TlsRecord(ctype, version, bytes(buf[i:i + 5]), bytes(buf[i + 5:i + 5 + length])))
            i += 5 + length
            self.records += 1
        del buf[:i]
        return out


class HandshakeReader:
    """Handshake messages from the contents of handshake records: ``feed`` returns ``(type, body)``."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self._buf += data
        out: list[tuple[int, bytes]] = []
        buf = self._buf
        i = 0
        while len(buf) - i >= 4:
            mtype = buf[i]
            length = int.from_bytes(buf[i + 1:i + 4], "big")
            if len(buf) - i < 4 + length:
                break
            out.append((mtype, bytes(buf[i + 4:i + 4 + length])))
            i += 4 + length
        del buf[:i]
        return out


class _Cursor:
    """Bounds-checked reads over a message body (a short one raises :class:`WireError`)."""

    def __init__(self, data: bytes, what: str) -> None:
        self.data, self.i, self.what = data, 0, what

    def take(self, n: int) -> bytes:
        if self.i + n > len(self.data):
            raise WireError(f"{self.what} cut short at byte {self.i} (wanted {n} more)")
        out = self.data[self.i:self.i + n]
        self.i += n
        return out

    def uint(self, n: int) -> int:
        return int.from_bytes(self.take(n), "big")

    def vector(self, len_bytes: int) -> bytes:
        return self.take(self.uint(len_bytes))

    @property
    def left(self) -> int:
        return len(self.data) - self.i


def _extensions(cur: _Cursor) -> dict[int, bytes]:
    if cur.left == 0:
        return {}
    block = _Cursor(cur.vector(2), cur.what + " extensions")
    exts: dict[int, bytes] = {}
    while block.left:
        etype = block.uint(2)
        exts[etype] = block.vector(2)
    return exts


def _alpn_list(data: bytes) -> list[str]:
    cur = _Cursor(data, "ALPN")
    block = _Cursor(cur.vector(2), "ALPN list")
    out = []
    while block.left:
        out.append(block.vector(1).decode("ascii", "replace"))
    return out


@dataclass(frozen=True, slots=True)
class ClientHello:
    random: bytes
    session_id: bytes
    cipher_suites: tuple[int, ...]
    server_name: str | None = None
    alpn: tuple[str, ...] = ()
    versions: tuple[int, ...] = ()  # supported_versions, when sent


@dataclass(frozen=True, slots=True)
class ServerHello:
    random: bytes
    legacy_version: int
    cipher_suite: int
    version: int  # negotiated: supported_versions when present, else the legacy field
    alpn: str | None = None  # TLS 1.2 sends it here; TLS 1.3 in EncryptedExtensions
    extensions: dict[int, bytes] = field(default_factory=dict)

    @property
    def retry_request(self) -> bool:
        return self.random == HRR_RANDOM


def parse_client_hello(body: bytes) -> ClientHello:
    cur = _Cursor(body, "ClientHello")
    cur.take(2)  # legacy_version
    random = cur.take(32)
    session_id = cur.vector(1)
    suites_raw = cur.vector(2)
    suites = tuple(struct.unpack(f"!{len(suites_raw) // 2}H", suites_raw[: len(suites_raw) // 2 * 2]))
    cur.vector(1)  # compression methods
    exts = _extensions(cur)
    name = None
    if EXT_SERVER_NAME in exts:
        sn = _Cursor(exts[EXT_SERVER_NAME], "server_name")
        names = _Cursor(sn.vector(2), "server_name list")
        while names.left:
            kind, value = names.uint(1), names.vector(2)
            if kind == 0:
                name = value.decode("ascii", "replace")
                break
    versions: tuple[int, ...] = ()
    if EXT_SUPPORTED_VERSIONS in exts:
        sv = _Cursor(exts[EXT_SUPPORTED_VERSIONS], "supported_versions").vector(1)
        versions = tuple(struct.unpack(f"!{len(sv) // 2}H", sv[: len(sv) // 2 * 2]))
    alpn = tuple(_alpn_list(exts[EXT_ALPN])) if EXT_ALPN in exts else ()
    return ClientHello(random, session_id, suites, name, alpn, versions)


def parse_server_hello(body: bytes) -> ServerHello:
    cur = _Cursor(body, "ServerHello")
    legacy = cur.uint(2)
    random = cur.take(32)
    cur.vector(1)  # session id echo
    suite = cur.uint(2)
    cur.uint(1)  # compression
    exts = _extensions(cur)
    version = legacy
    if EXT_SUPPORTED_VERSIONS in exts and len(exts[EXT_SUPPORTED_VERSIONS]) == 2:
        version = int.from_bytes(exts[EXT_SUPPORTED_VERSIONS], "big")
    alpn_list = _alpn_list(exts[EXT_ALPN]) if EXT_ALPN in exts else []
    return ServerHello(random, legacy, suite, version, alpn_list[0] if alpn_list else None, exts)


def parse_encrypted_extensions(body: bytes) -> str | None:
    """The ALPN protocol the server chose (TLS 1.3's EncryptedExtensions), or None."""
    exts = _extensions(_Cursor(body, "EncryptedExtensions"))
    alpn = _alpn_list(exts[EXT_ALPN]) if EXT_ALPN in exts else []
    return alpn[0] if alpn else None


def parse_certificate(body: bytes, tls13: bool) -> list[bytes]:
    """The DER certificates of a Certificate message, the server's own first."""
    cur = _Cursor(body, "Certificate")
    if tls13:
        cur.vector(1)  # certificate_request_context
    block = _Cursor(cur.vector(3), "certificate_list")
    out = []
    while block.left:
        out.append(block.vector(3))
        if tls13:
            block.vector(2)  # per-certificate extensions
    return out


def looks_like_tls(data: bytes) -> bool:
    """Whether a connection's first client bytes are a TLS record holding a ClientHello."""
    return (len(data) >= 6 and data[0] == HANDSHAKE and data[1] == 3 and data[2] <= 4
            and data[5] == HS_CLIENT_HELLO)
