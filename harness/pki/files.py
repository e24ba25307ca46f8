"""Reading certificates and keys from files, with errors that name the file and say what is wrong.

A harness user points a rig file or a command at certificate material made elsewhere; when it is
the wrong thing, the message must say which file and why (missing, unreadable, not a certificate,
a key where a certificate was expected, encrypted without a password, wrong password).
"""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from harness.pki.builder import PrivateKey

_PEM_CERT = b"-----BEGIN CERTIFICATE-----"
_PEM_ANY = b"-----BEGIN "


class CertificateFileError(ValueError):
    """A certificate, key or CRL file that cannot be used; the message names the file."""

    def __init__(self, path: Path | str, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path = Path(path)
        self.problem = problem


def _read(path: Path | str, what: str) -> bytes:
    path = Path(path)
    if not path.exists():
        raise CertificateFileError(path, f"no such {what} file")
    if path.is_dir():
        raise CertificateFileError(path, f"is a directory, not a {what} file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CertificateFileError(path, f"cannot read {what} file ({exc.strerror or exc})") from None
    if not data.strip():
        raise CertificateFileError(path, f"empty file, expected a {what}")
    return data


def _pem_label(data: bytes) -> str | None:
    start = data.find(_PEM_ANY)
    if start < 0:
        return None
    end = data.find(b"-----", start + len(_PEM_ANY))
    return data[start + len(_PEM_ANY):end].decode("ascii", "replace") if end > 0 else None


def load_certificates(path: Path | str) -> list[x509.Certificate]:
    """All certificates of a PEM bundle (leaf first, as written) or of one DER certificate."""
    data = _read(path, "certificate")
    if _PEM_CERT in data:
        try:
            return x509.load_pem_x509_certificates(data)
        except ValueError as exc:
            raise CertificateFileError(path, f"damaged PEM certificate ({exc})") from None
    label = _pem_label(data)
    if label is not None:
        raise CertificateFileError(path, f"expected a certificate, found a PEM {label}")
    try:
        return [x509.load_der_x509_certificate(data)]
    except ValueError:
        raise CertificateFileError(path, "not a certificate (neither PEM nor DER X.509)") from None


def load_certificate(path: Path | str) -> x509.Certificate:
    certs = load_certificates(path)
    if len(certs) != 1:
        raise CertificateFileError(path, f"expected one certificate, found {len(certs)}")
    return certs[0]


def load_private_key(path: Path | str, password: bytes | str | None = None) -> PrivateKey:
    """A PEM or DER private key of a type the standards use (EC, Ed448, RSA); encrypted keys need
    ``password``."""
    key = load_any_private_key(path, password)
    if not isinstance(key, (ec.EllipticCurvePrivateKey, ed448.Ed448PrivateKey, rsa.RSAPrivateKey)):
        raise CertificateFileError(path, f"unsupported private key type {type(key).__name__} "
                                         f"(expected an EC, Ed448 or RSA key)")
    return key


def load_any_private_key(path: Path | str, password: bytes | str | None = None) -> PrivateKeyTypes:
    """A PEM or DER private key of any type cryptography reads (a TLS key need not be one the
    harness issues); encrypted keys need ``password``."""
    data = _read(path, "private key")
    if isinstance(password, str):
        password = password.encode()
    label = _pem_label(data)
    if label is not None and "PRIVATE KEY" not in label:
        raise CertificateFileError(path, f"expected a private key, found a PEM {label}")
    loader = (serialization.load_pem_private_key if label is not None
              else serialization.load_der_private_key)
    try:
        return loader(data, password=password)
    except TypeError as exc:
        if password is None:
            raise CertificateFileError(path, "private key is password-protected and no password "
                                             "was given") from None
        raise CertificateFileError(path, f"private key is not encrypted but a password was given "
                                         f"({exc})") from None
    except ValueError as exc:
        if label == "ENCRYPTED PRIVATE KEY" or (password is not None and "decrypt" in str(exc).lower()):
            raise CertificateFileError(path, "wrong password for the private key") from None
        if label is None:
            raise CertificateFileError(path, "not a private key (neither PEM nor DER)") from None
        raise CertificateFileError(path, f"not a usable private key ({exc})") from None
    except Exception as exc:  # UnsupportedAlgorithm and friends
        raise CertificateFileError(path, f"unsupported private key ({exc})") from None


def load_crl(path: Path | str) -> x509.CertificateRevocationList:
    data = _read(path, "CRL")
    try:
        if _pem_label(data) is not None:
            return x509.load_pem_x509_crl(data)
        return x509.load_der_x509_crl(data)
    except ValueError:
        raise CertificateFileError(path, "not a certificate revocation list") from None

