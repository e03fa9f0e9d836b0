"""A throwaway PKI for the lab's HTTPS tests: a test CA and server certificates, good and bad.

Needs the ``cryptography`` package (a test dependency). Certificates name the server by IP address
(subjectAltName IP), so no resolver setup is needed in the namespaces.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class Pki:
    ca: Path  # the test CA's certificate (PEM): what --cacert takes
    good: tuple[Path, Path]  # (cert, key) for the server IP, signed by the CA
    expired: tuple[Path, Path]  # for the server IP, signed by the CA, expired yesterday
    wrong_host: tuple[Path, Path]  # signed by the CA, for another IP
    unknown_ca: tuple[Path, Path]  # for the server IP, signed by a CA nobody trusts


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "rawtui lab"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _ca(cn: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn)).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _leaf(ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey], ip: str, *, expired: bool = False
          ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    ca_cert, ca_key = ca
    key = _key()
    now = dt.datetime.now(dt.UTC)
    start, end = (now - dt.timedelta(days=10), now - dt.timedelta(days=1)) if expired else \
        (now - dt.timedelta(days=1), now + dt.timedelta(days=30))
    cert = (
        x509.CertificateBuilder().subject_name(_name(ip)).issuer_name(ca_cert.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(end)
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def _write(directory: Path, name: str, pair: tuple[x509.Certificate, ec.EllipticCurvePrivateKey]
           ) -> tuple[Path, Path]:
    cert, key = pair
    c, k = directory / f"{name}.crt", directory / f"{name}.key"
    c.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    k.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()))
    k.chmod(0o600)
    return c, k


def make_pki(directory: str | Path, server_ip: str, other_ip: str = "10.77.2.99") -> Pki:
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    ca = _ca("rawtui lab test CA")
    rogue = _ca("rawtui rogue CA")
    ca_path = d / "ca.crt"
    ca_path.write_bytes(ca[0].public_bytes(serialization.Encoding.PEM))
    return Pki(
        ca=ca_path,
        good=_write(d, "good", _leaf(ca, server_ip)),
        expired=_write(d, "expired", _leaf(ca, server_ip, expired=True)),
        wrong_host=_write(d, "wrong-host", _leaf(ca, other_ip)),
        unknown_ca=_write(d, "unknown-ca", _leaf(rogue, server_ip)),
    )


def nginx_tls_servers(pki: Pki, ip: str, root: str | Path, ports: dict[str, int]) -> str:
    """nginx ``server`` blocks: one TLS site per certificate kind on its port, plus an http->https
    redirect site on ``ports["redirect"]``."""
    blocks = []
    for kind in ("good", "expired", "wrong_host", "unknown_ca"):
        cert, key = getattr(pki, kind)
        blocks.append(f"""
    server {{
        listen {ip}:{ports[kind]} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        root {root};
    }}""")
    blocks.append(f"""
    server {{
        listen {ip}:{ports["redirect"]};
        return 301 https://{ip}:{ports["good"]}$request_uri;
    }}""")
    return "\n".join(blocks)
