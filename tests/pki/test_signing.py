"""The CSMS's CA signing a charger's SECC certificate request (OCPP 2.0.1 SignCertificate,
certificateType V2GCertificate), judged by the openssl command line and the harness's own
ISO 15118-2 SECC policy."""

from __future__ import annotations

from dataclasses import replace

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from harness.pki.iso15118 import build_iso15118_pki
from harness.pki.profiles import Generation, Role
from harness.pki.signing import SIGNING_FAULTS, CsrSigner, SigningRefused
from harness.pki.validate import Reason, policy_for, validate_chain
from tests.pki.openssl_cli import OPENSSL, needs_openssl, verify


@pytest.fixture(scope="module")
def pki():
    return build_iso15118_pki(Generation.ISO2)


@pytest.fixture
def signer(pki):
    issuer = pki.issued[Role.CPO_SUB_CA_2]
    return CsrSigner(issuer, (issuer.cert, pki.issued[Role.CPO_SUB_CA_1].cert), ocsp_url=pki.ocsp_url())


def _csr(key, *attributes: x509.NameAttribute) -> str:
    names = attributes or (x509.NameAttribute(x509.NameOID.COMMON_NAME, "DEHARE7654321"),
                           x509.NameAttribute(x509.NameOID.ORGANIZATION_NAME, "Harness CPO"),
                           x509.NameAttribute(x509.NameOID.DOMAIN_COMPONENT, "CPO"))
    request = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(list(names))).sign(key, hashes.SHA256())
    return request.public_bytes(serialization.Encoding.PEM).decode()


@needs_openssl
def test_a_signed_secc_certificate_passes_openssl_and_the_secc_policy(signer, pki, tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    chain = signer.sign(_csr(key))
    assert chain[0].public_key().public_numbers() == key.public_key().public_numbers()
    assert chain[1:] == [pki.issued[Role.CPO_SUB_CA_2].cert, pki.issued[Role.CPO_SUB_CA_1].cert]
    verdict = verify(tmp_path, chain, [pki.issued[Role.V2G_ROOT].cert], suite_b=True)
    assert verdict.ok, verdict
    result = validate_chain(chain, [pki.issued[Role.V2G_ROOT].cert], policy=policy_for(Generation.ISO2, Role.SECC))
    assert result.ok, result


@pytest.mark.parametrize("key, why", [
    (ec.generate_private_key(ec.SECP384R1()), "secp384r1"),
    (rsa.generate_private_key(public_exponent=65537, key_size=2048), "RSAPublicKey"),
], ids=["p384", "rsa"])
def test_a_key_iso15118_2_does_not_use_is_refused(signer, key, why):
    with pytest.raises(SigningRefused, match=why):
        signer.sign(_csr(key))


def test_a_request_without_common_name_is_refused(signer):
    key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(SigningRefused, match="no common name"):
        signer.sign(_csr(key, x509.NameAttribute(x509.NameOID.ORGANIZATION_NAME, "Harness CPO")))


@pytest.mark.parametrize("text, why", [("not a csr", "not a PEM"), ("", "not a PEM")])
def test_text_that_is_no_csr_is_refused(signer, text, why):
    with pytest.raises(SigningRefused, match=why):
        signer.sign(text)


@pytest.mark.parametrize("key, attributes, why", [
    (ec.generate_private_key(ec.SECP256K1()), None, "ISO 15118 uses"),
    (ec.generate_private_key(ec.SECP256R1()), (x509.NameAttribute(x509.NameOID.COMMON_NAME, "DEHARE7654321"),),
     "DC=CPO"),
], ids=["secp256k1", "no-dc"])
def test_requests_outside_the_secc_profile_are_refused(signer, key, attributes, why):
    with pytest.raises(SigningRefused, match=why):
        signer.sign(_csr(key, *(attributes or ())))


# X509_V_ERR codes openssl reports for each deliberate fault (openssl's x509_vfy.h)
_OPENSSL_ERRORS = {"expired": 10, "not-yet-valid": 9, "bad-signature": 7, "untrusted-issuer": 19}


@pytest.mark.parametrize("fault", list(SIGNING_FAULTS))
def test_a_faulty_signer_gives_chains_a_charger_must_refuse(signer, pki, tmp_path, fault):
    """Every deliberate fault breaks the rule it names, as the SECC policy sees it and, where the
    fault is one of plain X.509, as openssl sees it; the rest of the chain stays as a good one."""
    key = ec.generate_private_key(ec.SECP256R1())
    chain = replace(signer, fault=fault).sign(_csr(key))
    root = pki.issued[Role.V2G_ROOT].cert
    result = validate_chain(chain, [root], policy=policy_for(Generation.ISO2, Role.SECC))
    same_key = chain[0].public_key().public_numbers() == key.public_key().public_numbers()
    if fault == "other-key":
        assert result.ok and not same_key  # a good certificate, only not for the requested key
        return
    assert same_key
    assert not result.ok
    expected = {"expired": Reason.EXPIRED, "not-yet-valid": Reason.NOT_YET_VALID, "bad-signature": Reason.BAD_SIGNATURE,
                "untrusted-issuer": Reason.UNTRUSTED_ROOT, "without-dc-cpo": Reason.DOMAIN_COMPONENT}[fault]
    assert result.reason is expected, result
    if fault in _OPENSSL_ERRORS and OPENSSL is not None:
        verdict = verify(tmp_path, chain, [root], suite_b=True)
        assert not verdict.ok and _OPENSSL_ERRORS[fault] in verdict.errors, verdict


def test_an_unknown_signing_fault_is_refused_at_once(signer):
    with pytest.raises(ValueError, match="unknown signing fault 'typo'.*expired"):
        replace(signer, fault="typo")
