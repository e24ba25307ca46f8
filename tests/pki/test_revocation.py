"""OCSP responder, CRLs and OCPP's certificate hash data."""

from __future__ import annotations

import re
import subprocess
import urllib.request

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509 import ocsp

from harness.pki.builder import KeyAlgorithm, leaf, root_ca
from harness.pki.profiles import Role
from harness.pki.revocation import OcspClient, OcspError, RevocationServer, build_crl, certificate_hash_data
from harness.pki.validate import OcspStatus
from tests.pki.openssl_cli import OPENSSL, needs_openssl


def test_hash_data_matches_the_ocsp_cert_id(iso2_pki):
    chain = iso2_pki.chain(Role.CONTRACT)
    data = certificate_hash_data(chain.leaf.cert, chain.sub_cas[0].cert)
    request = ocsp.OCSPRequestBuilder().add_certificate(
        chain.leaf.cert, chain.sub_cas[0].cert, hashes.SHA256()).build()
    assert data.hashAlgorithm == "SHA256"
    assert data.issuerNameHash == request.issuer_name_hash.hex()
    assert data.issuerKeyHash == request.issuer_key_hash.hex()
    assert data.serialNumber == format(chain.leaf.cert.serial_number, "X")
    assert data.responderURL == iso2_pki.ocsp_url()
    assert set(data.as_ocpp()) == {"hashAlgorithm", "issuerNameHash", "issuerKeyHash",
                                   "serialNumber", "responderURL"}


@needs_openssl
def test_hash_data_matches_openssl(iso2_pki, tmp_path):
    from harness.pki.builder import write_pem
    chain = iso2_pki.chain(Role.SECC)
    issuer = write_pem(tmp_path / "issuer.pem", chain.sub_cas[0].cert)
    cert = write_pem(tmp_path / "cert.pem", chain.leaf.cert)
    text = subprocess.run([OPENSSL, "ocsp", "-sha256", "-issuer", str(issuer), "-cert", str(cert),
                           "-no_nonce", "-req_text"], capture_output=True, text=True,
                          check=True).stdout
    data = certificate_hash_data(chain.leaf.cert, chain.sub_cas[0].cert)
    assert f"Issuer Name Hash: {data.issuerNameHash.upper()}" in text
    assert f"Issuer Key Hash: {data.issuerKeyHash.upper()}" in text
    # OpenSSL prints whole bytes; OCPP wants the hex value without leading zeros
    printed = re.search(r"Serial Number: ([0-9A-F]+)", text).group(1)
    assert int(printed, 16) == int(data.serialNumber, 16)
    assert not data.serialNumber.startswith("0")


@pytest.mark.parametrize("hash_algorithm", ["SHA384", "SHA512"])
def test_hash_data_with_other_hashes(iso20_pki, hash_algorithm):
    chain = iso20_pki.chain(Role.SECC)
    data = certificate_hash_data(chain.leaf.cert, chain.sub_cas[0].cert,
                                 hash_algorithm=hash_algorithm)
    assert len(data.issuerNameHash) == {"SHA384": 96, "SHA512": 128}[hash_algorithm]


def test_ocsp_good_then_revoked(any_pki):
    chain = any_pki.chain(Role.SECC)
    with RevocationServer(any_pki.authorities) as responder:
        client = OcspClient(responder.ocsp_url)
        assert client(chain.leaf.cert, chain.sub_cas[0].cert) is OcspStatus.GOOD
        responder.revoke(chain.leaf.cert.serial_number)
        assert client(chain.leaf.cert, chain.sub_cas[0].cert) is OcspStatus.REVOKED
        assert client(chain.sub_cas[0].cert, chain.sub_cas[1].cert) is OcspStatus.GOOD


def test_ocsp_responses_signed_with_rsa_are_checked():
    # OCPP and many public PKIs sign with RSA (sha256WithRSAEncryption): the client verifies the
    # PKCS #1 v1.5 signature instead of refusing every such response
    root = root_ca("RSA Test Root", algorithm=KeyAlgorithm.RSA2048)
    issued = leaf(root, "rsa-leaf")
    with RevocationServer([root]) as responder:
        client = OcspClient(responder.ocsp_url)
        assert client(issued.cert, root.cert) is OcspStatus.GOOD
        responder.revoke(issued.cert.serial_number)
        assert client(issued.cert, root.cert) is OcspStatus.REVOKED


def test_ocsp_for_an_unknown_ca_is_not_good(iso2_pki, iso20_pki):
    chain = iso20_pki.chain(Role.SECC)
    with RevocationServer(iso2_pki.authorities) as responder:
        status = OcspClient(responder.ocsp_url)(chain.leaf.cert, chain.sub_cas[0].cert)
    assert status is OcspStatus.UNKNOWN


def test_ocsp_client_reports_an_unreachable_responder(iso2_pki):
    chain = iso2_pki.chain(Role.SECC)
    responder = RevocationServer(iso2_pki.authorities)
    url = responder.ocsp_url
    responder.stop()  # never started: the port is closed again
    with pytest.raises(OcspError, match=url.split("//")[1].split("/")[0]):
        OcspClient(url, timeout=5)(chain.leaf.cert, chain.sub_cas[0].cert)


def test_crl_is_served_and_lists_the_revoked(iso2_pki):
    sub_ca_2 = iso2_pki.issued[Role.CPO_SUB_CA_2]
    leaf = iso2_pki.issued[Role.SECC].cert
    crl = build_crl(sub_ca_2, [leaf.serial_number])
    with RevocationServer([], crls={"cpo.crl": crl}) as server:
        with urllib.request.urlopen(f"{server.base_url}/crl/cpo.crl", timeout=5) as reply:
            served = x509.load_der_x509_crl(reply.read())
    assert served.is_signature_valid(sub_ca_2.cert.public_key())
    assert served.get_revoked_certificate_by_serial_number(leaf.serial_number) is not None


def test_validator_reports_unreachable_responder_as_unknown(iso2_pki):
    from harness.pki.profiles import Generation
    from harness.pki.validate import Reason, policy_for, validate_chain
    chain = iso2_pki.chain(Role.SECC)
    responder = RevocationServer(iso2_pki.authorities)
    url = responder.ocsp_url
    responder.stop()
    result = validate_chain(chain.presented, [chain.root.cert],
                            policy=policy_for(Generation.ISO2, Role.SECC),
                            ocsp=OcspClient(url, timeout=5))
    assert result.reason is Reason.REVOCATION_UNKNOWN, str(result)
