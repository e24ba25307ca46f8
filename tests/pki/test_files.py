"""Unusable certificate and key files give an error that names the file and the problem."""

from __future__ import annotations

import os
import stat

import pytest
from cryptography.hazmat.primitives import serialization

from harness.pki.builder import root_ca, write_key, write_pem
from harness.pki.files import CertificateFileError, load_certificate, load_certificates, load_crl, load_private_key


@pytest.fixture(scope="module")
def material(tmp_path_factory):
    directory = tmp_path_factory.mktemp("material")
    ca = root_ca("Files Test CA")
    write_pem(directory / "ca.pem", ca.cert)
    (directory / "ca.der").write_bytes(ca.cert.public_bytes(serialization.Encoding.DER))
    write_key(directory / "plain.key", ca.key)
    write_key(directory / "locked.key", ca.key, b"secret")
    (directory / "garbage.bin").write_bytes(b"\x00\x01 not a certificate")
    (directory / "empty.pem").write_bytes(b"")
    (directory / "truncated.pem").write_bytes((directory / "ca.pem").read_bytes()[:200])
    return directory


@pytest.mark.parametrize("file, load, problem", [
    ("missing.pem", load_certificate, "no such certificate file"),
    ("garbage.bin", load_certificate, "not a certificate"),
    ("empty.pem", load_certificate, "empty file"),
    ("truncated.pem", load_certificates, "damaged PEM certificate"),
    ("plain.key", load_certificate, "expected a certificate, found a PEM PRIVATE KEY"),
    ("ca.pem", load_private_key, "expected a private key, found a PEM CERTIFICATE"),
    ("garbage.bin", load_private_key, "not a private key"),
    ("locked.key", load_private_key, "password-protected and no password was given"),
    ("ca.pem", load_crl, "not a certificate revocation list"),
], ids=lambda v: v if isinstance(v, str) and "." in v else None)
def test_error_names_the_file_and_the_problem(material, file, load, problem):
    with pytest.raises(CertificateFileError) as raised:
        load(material / file)
    assert str(raised.value).startswith(f"{material / file}: ")
    assert problem in str(raised.value)


def test_wrong_password(material):
    with pytest.raises(CertificateFileError, match=r"locked\.key: wrong password"):
        load_private_key(material / "locked.key", b"guess")


def test_password_for_an_unencrypted_key(material):
    with pytest.raises(CertificateFileError, match=r"plain\.key: private key is not encrypted"):
        load_private_key(material / "plain.key", b"secret")


def test_directory_instead_of_file(material):
    with pytest.raises(CertificateFileError, match="is a directory"):
        load_certificate(material)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file(material, tmp_path):
    path = tmp_path / "secret.pem"
    path.write_bytes((material / "ca.pem").read_bytes())
    path.chmod(0)
    with pytest.raises(CertificateFileError, match=r"secret\.pem: cannot read"):
        load_certificate(path)


def test_good_material_loads(material):
    assert load_certificate(material / "ca.pem") == load_certificate(material / "ca.der")
    load_private_key(material / "locked.key", "secret")
    assert stat.S_IMODE(os.stat(material / "locked.key").st_mode) == 0o600


def test_read_error_is_reported_with_the_file(material, monkeypatch):
    """What an unreadable file looks like when running as root, where modes do not stop reads."""
    from pathlib import Path

    def refuse(self):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_bytes", refuse)
    with pytest.raises(CertificateFileError, match=r"ca\.pem: cannot read certificate file "
                                                   r"\(Permission denied\)"):
        load_certificate(material / "ca.pem")
