"""Building certificates with the ``cryptography`` x509 builders.

A certificate is a readable chain of builder calls; an :class:`Issued` keeps the certificate with
its private key so it can sign the next one down the chain. :func:`issue` is the one place that
turns a :class:`~harness.pki.profiles.CertificateProfile` into a certificate; :func:`root_ca`,
:func:`sub_ca` and :func:`leaf` are the short forms the OCPP material uses. :func:`reissue` copies a
good certificate with one thing changed, which is how the fault catalogue works.
"""

from __future__ import annotations

import datetime as _dt
import enum
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence, Union

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from harness.pki.private import write_private

PrivateKey = Union[ec.EllipticCurvePrivateKey, ed448.Ed448PrivateKey, rsa.RSAPrivateKey]
PublicKey = Union[ec.EllipticCurvePublicKey, ed448.Ed448PublicKey, rsa.RSAPublicKey]


class KeyAlgorithm(enum.Enum):
    """The key types the standards use, plus the ones faults need to be wrong with."""

    SECP256R1 = "secp256r1"   # ISO 15118-2 (all certificates), OCPP
    SECP384R1 = "secp384r1"   # only as a wrong curve
    SECP521R1 = "secp521r1"   # ISO 15118-20 default ([V2G20-2674])
    ED448 = "ed448"           # ISO 15118-20 alternative ([V2G20-2319])
    RSA2048 = "rsa2048"       # only as a wrong algorithm

    def generate(self) -> PrivateKey:
        if self is KeyAlgorithm.ED448:
            return ed448.Ed448PrivateKey.generate()
        if self is KeyAlgorithm.RSA2048:
            return rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return ec.generate_private_key(_CURVES[self]())

    @classmethod
    def of(cls, key: PrivateKeyTypes | PublicKeyTypes) -> "KeyAlgorithm":
        """The algorithm of any key; TypeError for a key type the standards do not use."""
        if isinstance(key, (ed448.Ed448PrivateKey, ed448.Ed448PublicKey)):
            return cls.ED448
        if isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
            return cls.RSA2048
        if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
            return cls(key.curve.name)
        raise TypeError(f"unsupported key type {type(key).__name__}")

    @property
    def signature_hash(self) -> hashes.HashAlgorithm | None:
        """The hash a key of this type signs with: the curve's size (ECDSA), none (EdDSA)."""
        return {
            KeyAlgorithm.SECP256R1: hashes.SHA256(),
            KeyAlgorithm.SECP384R1: hashes.SHA384(),
            KeyAlgorithm.SECP521R1: hashes.SHA512(),
            KeyAlgorithm.ED448: None,
            KeyAlgorithm.RSA2048: hashes.SHA256(),
        }[self]

    @property
    def prehash(self) -> hashes.HashAlgorithm:
        """:attr:`signature_hash` of a key type that signs a hash (ECDSA, RSA); Ed448 has none."""
        algorithm = self.signature_hash
        if algorithm is None:
            raise ValueError(f"{self.value} keys sign the message itself, not a hash of it")
        return algorithm


_CURVES: dict[KeyAlgorithm, type[ec.EllipticCurve]] = {
    KeyAlgorithm.SECP256R1: ec.SECP256R1,
    KeyAlgorithm.SECP384R1: ec.SECP384R1,
    KeyAlgorithm.SECP521R1: ec.SECP521R1,
}


@dataclass(frozen=True)
class Issued:
    """A certificate and the private key that belongs to it."""

    cert: x509.Certificate
    key: PrivateKey

    @property
    def subject_cn(self) -> str:
        return attribute_text(self.cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0])

    @property
    def algorithm(self) -> KeyAlgorithm:
        return KeyAlgorithm.of(self.key)


class SubjectKeyIdMethod(enum.Enum):
    """How the subject key identifier is computed (RFC 5280 4.2.1.2)."""

    SHA1 = "sha1"            # method 1: SHA-1 of the subjectPublicKey BIT STRING (20 bytes)
    SHA1_64 = "sha1-64"      # method 2: 0b0100 then the low 60 bits of that hash (8 bytes)

    def identifier(self, public_key: PublicKey) -> x509.SubjectKeyIdentifier:
        full = x509.SubjectKeyIdentifier.from_public_key(public_key).digest
        if self is SubjectKeyIdMethod.SHA1:
            return x509.SubjectKeyIdentifier(full)
        low = bytearray(full[-8:])
        low[0] = 0x40 | (low[0] & 0x0F)
        return x509.SubjectKeyIdentifier(bytes(low))


def attribute_text(attribute: x509.NameAttribute) -> str:
    """The value of a text attribute of a name (CN, O, C, DC) of a certificate the harness made.

    cryptography types every value as ``str | bytes``: it gives bytes for a value encoded as a BIT
    STRING (x500UniqueIdentifier), which the harness never puts in a name.
    """
    value = attribute.value
    if not isinstance(value, str):
        raise ValueError(f"name attribute {attribute.rfc4514_attribute_name} is not text: {value!r}")
    return value


def name(common_name: str, organization: str | None = None, *, country: str | None = None,
         domain_component: str | None = None) -> x509.Name:
    """A subject name in the attribute order ISO 15118 examples use: CN, O, C, DC."""
    parts = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        parts.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    if country:
        parts.append(x509.NameAttribute(NameOID.COUNTRY_NAME, country))
    if domain_component:
        parts.append(x509.NameAttribute(NameOID.DOMAIN_COMPONENT, domain_component))
    return x509.Name(parts)


def now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)


#: how far back notBefore is put, so that peers whose clocks lag a little still accept
CLOCK_SKEW = _dt.timedelta(minutes=5)


@dataclass(frozen=True)
class KeyUsage:
    """Key usage bits by name, so profiles read like the standard's tables."""

    digital_signature: bool = False
    non_repudiation: bool = False
    key_encipherment: bool = False
    key_agreement: bool = False
    key_cert_sign: bool = False
    crl_sign: bool = False

    def extension(self) -> x509.KeyUsage:
        return x509.KeyUsage(
            digital_signature=self.digital_signature, content_commitment=self.non_repudiation,
            key_encipherment=self.key_encipherment, data_encipherment=False,
            key_agreement=self.key_agreement, key_cert_sign=self.key_cert_sign,
            crl_sign=self.crl_sign, encipher_only=False, decipher_only=False)


CA_KEY_USAGE = KeyUsage(key_cert_sign=True, crl_sign=True)
TLS_KEY_USAGE = KeyUsage(digital_signature=True, key_agreement=True)


def issue(subject: x509.Name, issuer: Issued | None, *, key: PrivateKey | None = None,
          algorithm: KeyAlgorithm = KeyAlgorithm.SECP256R1, validity: _dt.timedelta,
          not_before: _dt.datetime | None = None, ca: bool, path_length: int | None = None,
          key_usage: KeyUsage, extended_key_usage: Sequence[x509.ObjectIdentifier] = (),
          ski_method: SubjectKeyIdMethod = SubjectKeyIdMethod.SHA1,
          ocsp_url: str | None = None, crl_url: str | None = None,
          alternative_names: Iterable[str] = (), serial: int | None = None,
          signature_hash: hashes.HashAlgorithm | None | str = "issuer") -> Issued:
    """Build and sign one certificate. ``issuer=None`` makes it self-signed (a root).

    ``signature_hash="issuer"`` picks the hash that goes with the signing key (SHA-256 for P-256,
    SHA-512 for P-521, none for Ed448); faults pass another one explicitly.
    """
    key = key or algorithm.generate()
    public_key = key.public_key()
    signer = issuer.key if issuer else key
    issuer_name = issuer.cert.subject if issuer else subject
    start = not_before or now() - CLOCK_SKEW
    builder = (x509.CertificateBuilder()
               .subject_name(subject)
               .issuer_name(issuer_name)
               .public_key(public_key)
               .serial_number(serial or x509.random_serial_number())
               .not_valid_before(start)
               .not_valid_after(start + validity)
               .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length if ca else None),
                              critical=True)
               .add_extension(key_usage.extension(), critical=True)
               .add_extension(ski_method.identifier(public_key), critical=False))
    if issuer is not None:
        builder = builder.add_extension(authority_key_id(issuer.cert), critical=False)
    if extended_key_usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(extended_key_usage)),
                                        critical=False)
    if ocsp_url:
        builder = builder.add_extension(x509.AuthorityInformationAccess([x509.AccessDescription(
            AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(ocsp_url))]),
            critical=False)
    if crl_url:
        builder = builder.add_extension(x509.CRLDistributionPoints([x509.DistributionPoint(
            full_name=[x509.UniformResourceIdentifier(crl_url)], relative_name=None,
            reasons=None, crl_issuer=None)]), critical=False)
    names = [_general_name(n) for n in alternative_names]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return Issued(builder.sign(signer, signature_hash_for(signer, signature_hash)), key)


def reissue(original: Issued, issuer: Issued | None, *,
            change: Callable[[x509.CertificateBuilder], x509.CertificateBuilder] = lambda b: b,
            drop: Iterable[type[x509.ExtensionType]] = (),
            key: PrivateKey | None = None,
            signature_hash: hashes.HashAlgorithm | None | str = "issuer",
            not_before: _dt.datetime | None = None,
            not_after: _dt.datetime | None = None,
            subject: x509.Name | None = None) -> Issued:
    """The same certificate again with some fields changed, signed by ``issuer`` (or itself).

    Everything not named is copied: subject, serial, validity and the extensions (except the
    classes in ``drop``); a new ``key`` also gets a fresh subject key identifier.
    """
    cert = original.cert
    key = key or original.key
    signer = issuer.key if issuer else key
    dropped = tuple(drop)
    builder = (x509.CertificateBuilder()
               .subject_name(subject or cert.subject)
               .issuer_name(issuer.cert.subject if issuer else (subject or cert.subject))
               .public_key(key.public_key())
               .serial_number(cert.serial_number)
               .not_valid_before(not_before or cert.not_valid_before_utc)
               .not_valid_after(not_after or cert.not_valid_after_utc))
    for extension in cert.extensions:
        value = extension.value
        if isinstance(value, dropped):
            continue
        if isinstance(value, x509.SubjectKeyIdentifier) and key is not original.key:
            value = _same_ski_method(value, key.public_key())
        if isinstance(value, x509.AuthorityKeyIdentifier) and issuer is not None:
            value = authority_key_id(issuer.cert)
        builder = builder.add_extension(value, critical=extension.critical)
    builder = change(builder)
    return Issued(builder.sign(signer, signature_hash_for(signer, signature_hash)), key)


def root_ca(common_name: str, *, organization: str | None = None, days: int = 3650,
            curve: ec.EllipticCurve | None = None, algorithm: KeyAlgorithm | None = None,
            domain_component: str | None = None, country: str | None = None) -> Issued:
    """A self-signed root CA."""
    algorithm = algorithm or (KeyAlgorithm(curve.name) if curve else KeyAlgorithm.SECP256R1)
    return issue(name(common_name, organization, country=country,
                      domain_component=domain_component), None,
                 algorithm=algorithm, validity=_dt.timedelta(days=days), ca=True,
                 path_length=None, key_usage=CA_KEY_USAGE)


def sub_ca(issuer: Issued, common_name: str, *, organization: str | None = None, days: int = 1825,
           path_length: int | None = 0, algorithm: KeyAlgorithm | None = None,
           domain_component: str | None = None, country: str | None = None,
           ocsp_url: str | None = None, crl_url: str | None = None) -> Issued:
    return issue(name(common_name, organization, country=country,
                      domain_component=domain_component), issuer,
                 algorithm=algorithm or issuer.algorithm, validity=_dt.timedelta(days=days),
                 ca=True, path_length=path_length, key_usage=CA_KEY_USAGE,
                 ocsp_url=ocsp_url, crl_url=crl_url)


def leaf(issuer: Issued, common_name: str, *, organization: str | None = None, days: int = 365,
         server_names: Iterable[str] = (), client: bool = False, server: bool = False,
         algorithm: KeyAlgorithm | None = None, domain_component: str | None = None,
         country: str | None = None, ocsp_url: str | None = None,
         key_usage: KeyUsage = TLS_KEY_USAGE) -> Issued:
    """An end-entity certificate for TLS: ``server_names`` become subjectAltNames (DNS or IP)."""
    usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + (
        [ExtendedKeyUsageOID.CLIENT_AUTH] if client else [])
    return issue(name(common_name, organization, country=country,
                      domain_component=domain_component), issuer,
                 algorithm=algorithm or issuer.algorithm, validity=_dt.timedelta(days=days),
                 ca=False, key_usage=key_usage, extended_key_usage=usages,
                 alternative_names=server_names, ocsp_url=ocsp_url)


def authority_key_id(issuer_cert: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    ski = issuer_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


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
    return write_private(path, data)


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 fingerprint as colon-separated upper-case hex, the way ``openssl x509`` prints it."""
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def signature_hash_for(signer: PrivateKey, choice: hashes.HashAlgorithm | None | str = "issuer"):
    if choice == "issuer":
        return KeyAlgorithm.of(signer).signature_hash
    return choice


def _same_ski_method(old: x509.SubjectKeyIdentifier, public_key: PublicKey) -> x509.SubjectKeyIdentifier:
    method = SubjectKeyIdMethod.SHA1_64 if len(old.digest) == 8 else SubjectKeyIdMethod.SHA1
    return method.identifier(public_key)


def _general_name(value: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(value))
    except ValueError:
        return x509.DNSName(value)
