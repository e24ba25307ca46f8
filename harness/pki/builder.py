"""Building certificates with the ``cryptography`` x509 builders.

A certificate is a readable chain of builder calls; an :class:`Issued` keeps the certificate with
its private key so it can sign the next one down the chain.
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PrivateKey = ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class Issued:
    """A certificate and the private key that belongs to it."""

    cert: x509.Certificate
    key: PrivateKey

    @property
    def subject_cn(self) -> str:
        return self.cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value


def name(common_name: str, organization: str | None = None) -> x509.Name:
    parts = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        parts.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(parts)


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)


def _base(subject: x509.Name, issuer: x509.Name, public_key, *, days: int,
          not_before: _dt.datetime | None = None) -> x509.CertificateBuilder:
    start = not_before or _now() - _dt.timedelta(minutes=5)  # tolerate clock skew between peers
    return (x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + _dt.timedelta(days=days))
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False))


def root_ca(common_name: str, *, organization: str | None = None, days: int = 3650,
            curve: ec.EllipticCurve | None = None) -> Issued:
    """A self-signed root CA."""
    key = ec.generate_private_key(curve or ec.SECP256R1())
    subject = name(common_name, organization)
    cert = (_base(subject, subject, key.public_key(), days=days)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_key_usage(cert_sign=True), critical=True)
            .sign(key, hashes.SHA256()))
    return Issued(cert, key)


def sub_ca(issuer: Issued, common_name: str, *, organization: str | None = None, days: int = 1825,
           path_length: int | None = 0) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (_base(name(common_name, organization), issuer.cert.subject, key.public_key(), days=days)
            .add_extension(_authority_key_id(issuer), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
            .add_extension(_key_usage(cert_sign=True), critical=True)
            .sign(issuer.key, hashes.SHA256()))
    return Issued(cert, key)


def leaf(issuer: Issued, common_name: str, *, organization: str | None = None, days: int = 365,
         server_names: Iterable[str] = (), client: bool = False, server: bool = False) -> Issued:
    """An end-entity certificate for TLS: ``server_names`` become subjectAltNames (DNS or IP)."""
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (_base(name(common_name, organization), issuer.cert.subject, key.public_key(), days=days)
               .add_extension(_authority_key_id(issuer), critical=False)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(_key_usage(digital_signature=True, key_agreement=True), critical=True))
    usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + (
        [ExtendedKeyUsageOID.CLIENT_AUTH] if client else [])
    if usages:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    alt_names = [_general_name(n) for n in server_names]
    if alt_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    return Issued(builder.sign(issuer.key, hashes.SHA256()), key)


def write_pem(path: Path, *certs: x509.Certificate) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs))
    return path


def write_key(path: Path, key: PrivateKey, password: bytes | None = None) -> Path:
    """Write a private key readable by its owner only (0600), optionally encrypted."""
    path.parent.mkdir(parents=True, exist_ok=True)
    encryption = (serialization.BestAvailableEncryption(password) if password
                  else serialization.NoEncryption())
    data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(path, 0o600)  # an existing file keeps its mode through O_CREAT
    return path


def _key_usage(*, cert_sign: bool = False, digital_signature: bool = False,
               key_agreement: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=key_agreement, key_cert_sign=cert_sign,
        crl_sign=cert_sign, encipher_only=False, decipher_only=False)


def _authority_key_id(issuer: Issued) -> x509.AuthorityKeyIdentifier:
    ski = issuer.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def _general_name(value: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(value))
    except ValueError:
        return x509.DNSName(value)
