"""TLS seen from a capture: the handshake, the record sizes, and, with the connection's secrets from a key
log (SSLKEYLOGFILE format), the decrypted application data.

:func:`load_keylog` reads the key log that ``rawtui --keylog``, curl and browsers write. A
:class:`TlsObserver` is fed the two in-order byte streams of one connection (``"out"``: the client's,
``"in"``: the server's) and says, per chunk, which records began, which application bytes they carried
(once decrypted), and notes worth a line. The key schedules are RFC 8446 7.1-7.3 (TLS 1.3: the traffic
keys from ``*_HANDSHAKE_TRAFFIC_SECRET`` and ``*_TRAFFIC_SECRET_0``, and the KeyUpdate chain) and RFC 5246
6.3 (TLS 1.2: the key block from the ``CLIENT_RANDOM`` master secret); AES-128/256-GCM and
ChaCha20-Poly1305 come from the ``cryptography`` package. Anything else is analysed as records only.

Which key a record is under is found by trying: the current key, else the next one the schedule knows
(handshake -> application -> updates). A record that no key opens is counted, never guessed at.
"""

from __future__ import annotations

import hashlib
import hmac
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

from rawtui.errors import UsageError
from rawtui.wire.errors import WireError
from rawtui.wire.tls import (
    APPLICATION_DATA,
    CHANGE_CIPHER_SPEC,
    HANDSHAKE,
    HS_CERTIFICATE,
    HS_CLIENT_HELLO,
    HS_ENCRYPTED_EXTENSIONS,
    HS_KEY_UPDATE,
    HS_SERVER_HELLO,
    TLS12,
    TLS13,
    ClientHello,
    HandshakeReader,
    RecordReader,
    ServerHello,
    TlsRecord,
    parse_certificate,
    parse_client_hello,
    parse_encrypted_extensions,
    parse_server_hello,
    suite_name,
    version_name,
)

# -- the key log ----------------------------------------------------------------------------------------

KEYLOG_LABELS = (
    "CLIENT_RANDOM", "CLIENT_EARLY_TRAFFIC_SECRET", "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
    "SERVER_HANDSHAKE_TRAFFIC_SECRET", "CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0", "EXPORTER_SECRET",
)

Keylog = dict[bytes, dict[str, bytes]]  # client random -> label -> secret


def parse_keylog(text: str) -> Keylog:
    """The secrets of an SSLKEYLOGFILE text, by client random; comments and unknown labels are skipped."""
    out: Keylog = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 3 or parts[0] not in KEYLOG_LABELS:
            continue
        try:
            random, secret = bytes.fromhex(parts[1]), bytes.fromhex(parts[2])
        except ValueError:
            continue
        if len(random) == 32:
            out.setdefault(random, {})[parts[0]] = secret
    return out


def load_keylog(path: str | Path) -> Keylog:
    """The key log at ``path``; a file that cannot be read, or holds no secret at all, is a usage error."""
    p = Path(path)
    try:
        text = p.read_text("ascii", errors="replace")
    except OSError as exc:
        raise UsageError(f"cannot read the key log {p}: {exc.strerror}") from None
    keys = parse_keylog(text)
    if not keys:
        raise UsageError(f"{p} holds no TLS secrets (SSLKEYLOGFILE format: 'CLIENT_RANDOM <hex> <hex>' or "
                         f"'CLIENT_TRAFFIC_SECRET_0 <hex> <hex>' lines)")
    return keys


# -- key schedules --------------------------------------------------------------------------------------


def hkdf_expand_label(secret: bytes, label: str, context: bytes, length: int, sha384: bool = False) -> bytes:
    """RFC 8446 7.1 HKDF-Expand-Label."""
    full = b"tls13 " + label.encode("ascii")
    info = length.to_bytes(2, "big") + bytes([len(full)]) + full + bytes([len(context)]) + context
    algo: hashes.HashAlgorithm = hashes.SHA384() if sha384 else hashes.SHA256()
    return HKDFExpand(algo, length, info).derive(secret)


def tls12_prf(secret: bytes, label: bytes, seed: bytes, length: int, sha384: bool = False) -> bytes:
    """RFC 5246 5: PRF(secret, label, seed) = P_hash(secret, label + seed)."""
    digest = hashlib.sha384 if sha384 else hashlib.sha256
    seed = label + seed
    out, a = b"", seed
    while len(out) < length:
        a = hmac.new(secret, a, digest).digest()
        out += hmac.new(secret, a + seed, digest).digest()
    return out[:length]


@dataclass(frozen=True, slots=True)
class Suite:
    """What decrypting a cipher suite takes: the AEAD, its key length, the hash of its key schedule."""

    aead: Callable[[bytes], AESGCM | ChaCha20Poly1305]
    key_len: int
    sha384: bool
    chacha: bool = False


_GCM128, _GCM256 = Suite(AESGCM, 16, False), Suite(AESGCM, 32, True)
_CHACHA = Suite(ChaCha20Poly1305, 32, False, chacha=True)
TLS13_SUITES = {0x1301: _GCM128, 0x1302: _GCM256, 0x1303: _CHACHA}
TLS12_SUITES = {
    0xC02B: _GCM128, 0xC02F: _GCM128, 0x009E: _GCM128, 0x009C: _GCM128,
    0xC02C: _GCM256, 0xC030: _GCM256, 0x009F: _GCM256, 0x009D: _GCM256,
    0xCCA8: _CHACHA, 0xCCA9: _CHACHA, 0xCCAA: _CHACHA,
}


class _Key:
    """One direction's key at one point of the schedule, with its record sequence number."""

    def __init__(self, suite: Suite, key: bytes, iv: bytes, tls13: bool, secret: bytes = b"") -> None:
        self.suite = suite
        self.aead = suite.aead(key)
        self.iv = iv
        self.tls13 = tls13
        self.secret = secret  # TLS 1.3: the traffic secret, for the next KeyUpdate
        self.seq = 0

    @classmethod
    def tls13_from(cls, suite: Suite, secret: bytes) -> _Key:
        key = hkdf_expand_label(secret, "key", b"", suite.key_len, suite.sha384)
        iv = hkdf_expand_label(secret, "iv", b"", 12, suite.sha384)
        return cls(suite, key, iv, True, secret)

    def updated(self) -> _Key:
        """The next generation after a KeyUpdate (RFC 8446 7.2)."""
        n = 48 if self.suite.sha384 else 32
        return _Key.tls13_from(self.suite, hkdf_expand_label(self.secret, "traffic upd", b"", n, self.suite.sha384))

    def _nonce(self) -> bytes:
        pad = self.seq.to_bytes(len(self.iv), "big")
        return bytes(a ^ b for a, b in zip(self.iv, pad, strict=True))

    def open(self, rec: TlsRecord) -> tuple[int, bytes] | None:
        """(content type, plaintext) of a record under this key, or None when it does not open."""
        frag = rec.fragment
        try:
            if self.tls13:
                inner = self.aead.decrypt(self._nonce(), frag, rec.header)
                body = inner.rstrip(b"\0")
                if not body:
                    return None
                ctype, plain = body[-1], body[:-1]
            else:
                seq = self.seq.to_bytes(8, "big")
                if self.suite.chacha:
                    nonce, ct = self._nonce(), frag
                else:
                    nonce, ct = self.iv + frag[:8], frag[8:]
                aad = seq + bytes([rec.content_type]) + rec.version.to_bytes(2, "big") + \
                    max(0, len(ct) - 16).to_bytes(2, "big")
                ctype, plain = rec.content_type, self.aead.decrypt(nonce, ct, aad)
        except (InvalidTag, ValueError):
            return None
        self.seq += 1
        return ctype, plain


# -- one connection -------------------------------------------------------------------------------------


@dataclass(slots=True)
class TlsOutput:
    """What a chunk of one direction's stream held: the records that began (wire content type, length),
    the application bytes they carried once decrypted, and notes ``(text, level)`` for the log."""

    records: list[tuple[str, int]] = field(default_factory=list)
    plaintext: bytes = b""
    notes: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Certificate:
    subject: str
    issuer: str
    not_after: str


class _Side:
    def __init__(self) -> None:
        self.records = RecordReader()
        self.handshake = HandshakeReader()
        self.encrypting = False  # its records are encrypted from here on (TLS 1.2: after its CCS)
        self.keys: list[_Key] = []  # the keys its records may be under, in schedule order
        self.current = 0
        self.decrypted = 0
        self.undecrypted = 0  # encrypted records no key opened
        self.finished = False


class TlsObserver:
    """One TLS connection, from the two in-order byte streams of a capture (see the module)."""

    def __init__(self, keylog: Keylog | None = None, keylog_name: str = "") -> None:
        self.keylog = keylog
        self.keylog_name = keylog_name or "the key log"
        self.sides = {"out": _Side(), "in": _Side()}
        self.client_hello: ClientHello | None = None
        self.server_hello: ServerHello | None = None
        self.alpn: str | None = None
        self.certificate: Certificate | None = None
        self.decrypting = False  # keys are in place for both directions
        self.broken = False  # a stream stopped being TLS

    @property
    def version(self) -> str:
        return version_name(self.server_hello.version) if self.server_hello else "?"

    @property
    def cipher(self) -> str:
        return suite_name(self.server_hello.cipher_suite) if self.server_hello else "?"

    @property
    def server_name(self) -> str | None:
        return self.client_hello.server_name if self.client_hello else None

    @property
    def handshake_done(self) -> bool:
        """Both sides switched to encrypted records: the handshake is over as far as the wire shows."""
        return self.sides["out"].encrypting and self.sides["in"].encrypting

    @property
    def undecrypted(self) -> int:
        return sum(s.undecrypted for s in self.sides.values())

    def feed(self, direction: str, data: bytes) -> TlsOutput:
        side = self.sides[direction]
        out = TlsOutput()
        if self.broken:
            return out
        try:
            records = side.records.feed(data)
        except WireError as exc:
            self.broken = True
            out.notes.append((f"TLS: {exc}: the rest of the connection is not read as TLS", "warning"))
            return out
        plain: list[bytes] = []
        for rec in records:
            out.records.append((rec.name, len(rec.fragment)))
            self._record(direction, side, rec, plain, out)
        out.plaintext = b"".join(plain)
        return out

    def _record(self, direction: str, side: _Side, rec: TlsRecord, plain: list[bytes], out: TlsOutput) -> None:
        sh = self.server_hello
        tls13 = sh is not None and sh.version == TLS13
        if rec.content_type == CHANGE_CIPHER_SPEC:
            if not tls13:
                side.encrypting = True
            return
        encrypted = side.encrypting or (tls13 and rec.content_type == APPLICATION_DATA)
        if not encrypted:
            if rec.content_type == HANDSHAKE:
                for mtype, body in side.handshake.feed(rec.fragment):
                    self._handshake(direction, mtype, body, out)
            return
        side.encrypting = True
        if not side.keys:
            side.undecrypted += 1
            return
        opened = self._open(side, rec)
        if opened is None:
            side.undecrypted += 1
            if side.undecrypted == 1:
                out.notes.append(((f"TLS: a record from the {'client' if direction == 'out' else 'server'} "
                                  f"does not decrypt with the secrets of {self.keylog_name}"), "warning"))
            return
        side.decrypted += 1
        ctype, data = opened
        if ctype == APPLICATION_DATA:
            plain.append(data)
        elif ctype == HANDSHAKE:
            for mtype, body in side.handshake.feed(data):
                self._handshake(direction, mtype, body, out)
                if mtype == HS_KEY_UPDATE and tls13:
                    key = side.keys[side.current]
                    side.keys[side.current + 1:] = [key.updated()]
                    side.current += 1

    @staticmethod
    def _open(side: _Side, rec: TlsRecord) -> tuple[int, bytes] | None:
        for i in range(side.current, len(side.keys)):
            opened = side.keys[i].open(rec)
            if opened is not None:
                side.current = i
                return opened
        return None

    def _handshake(self, direction: str, mtype: int, body: bytes, out: TlsOutput) -> None:
        try:
            if mtype == HS_CLIENT_HELLO and direction == "out" and self.client_hello is None:
                self.client_hello = parse_client_hello(body)
            elif mtype == HS_SERVER_HELLO and direction == "in":
                hello = parse_server_hello(body)
                if hello.retry_request:
                    return
                self.server_hello = hello
                self.alpn = hello.alpn
                self._keys(out)
            elif mtype == HS_ENCRYPTED_EXTENSIONS and direction == "in":
                self.alpn = parse_encrypted_extensions(body)
            elif mtype == HS_CERTIFICATE and direction == "in" and self.certificate is None:
                tls13 = self.server_hello is not None and self.server_hello.version == TLS13
                certs = parse_certificate(body, tls13)
                if certs:
                    self.certificate = _describe(certs[0])
        except WireError as exc:
            out.notes.append((f"TLS: {exc}", "warning"))

    def _keys(self, out: TlsOutput) -> None:
        """Once both hellos are known: the keys of both directions from the key log, or why there are none."""
        ch, sh = self.client_hello, self.server_hello
        if self.keylog is None or sh is None:
            return
        if ch is None:
            out.notes.append(("TLS: the capture lacks the ClientHello: not decrypted", "warning"))
            return
        what = f"{version_name(sh.version)} {suite_name(sh.cipher_suite)}"
        secrets = self.keylog.get(ch.random)
        if secrets is None:
            out.notes.append(((f"TLS: {self.keylog_name} has no secrets for this connection (client random "
                              f"{ch.random.hex()[:16]}...): not decrypted, analysed as TLS records"), "warning"))
            return
        if sh.version == TLS13 and sh.cipher_suite in TLS13_SUITES:
            suite = TLS13_SUITES[sh.cipher_suite]
            for direction, who in (("out", "CLIENT"), ("in", "SERVER")):
                keys = [_Key.tls13_from(suite, secrets[label]) for label in
                        (f"{who}_HANDSHAKE_TRAFFIC_SECRET", f"{who}_TRAFFIC_SECRET_0") if label in secrets]
                self.sides[direction].keys = keys
            if not any(f"{w}_TRAFFIC_SECRET_0" in secrets for w in ("CLIENT", "SERVER")):
                out.notes.append(((f"TLS: {self.keylog_name} lacks the traffic secrets of this connection: "
                                  "application data not decrypted"), "warning"))
                return
        elif sh.version == TLS12 and sh.cipher_suite in TLS12_SUITES:
            suite = TLS12_SUITES[sh.cipher_suite]
            master = secrets.get("CLIENT_RANDOM")
            if master is None:
                out.notes.append(((f"TLS: {self.keylog_name} lacks the CLIENT_RANDOM master secret of this "
                                  "connection: not decrypted"), "warning"))
                return
            iv_len = 12 if suite.chacha else 4
            block = tls12_prf(master, b"key expansion", sh.random + ch.random, 2 * (suite.key_len + iv_len),
                              suite.sha384)
            k = suite.key_len
            ckey, skey = block[:k], block[k:2 * k]
            civ, siv = block[2 * k:2 * k + iv_len], block[2 * k + iv_len:]
            self.sides["out"].keys = [_Key(suite, ckey, civ, False)]
            self.sides["in"].keys = [_Key(suite, skey, siv, False)]
        else:
            out.notes.append(((f"TLS: {what} is not decrypted (rawtui decrypts TLS 1.3 and TLS 1.2 with AES-GCM "
                              "or ChaCha20-Poly1305): analysed as TLS records"), "warning"))
            return
        self.decrypting = True
        out.notes.append((f"TLS: {what}, decrypted with the secrets of {self.keylog_name}", "info"))


def _describe(der: bytes) -> Certificate | None:
    """Subject, issuer and expiry of a DER certificate from the wire, or None when it does not parse."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # what a capture holds is not ours to lint (e.g. a negative serial)
            cert = x509.load_der_x509_certificate(der)
            return Certificate(cert.subject.rfc4514_string(), cert.issuer.rfc4514_string(),
                               cert.not_valid_after_utc.strftime("%b %d %H:%M:%S %Y GMT"))
    except (ValueError, TypeError, x509.InvalidVersion):
        return None
