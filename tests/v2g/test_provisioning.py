"""The certificate provisioning service behind OCPP Get15118EVCertificate: an EV's EXI
CertificateInstallationReq / CertificateUpdateReq (ISO 15118-2 8.4.3.10, 8.4.3.11) in, the CPS-signed
response out; the contract chain judged by the openssl command line, the key decrypted as an EV
would (ISO 15118-2 Annex J / harness.pki.contract_key)."""

from __future__ import annotations

import base64
import json
from importlib import resources

import pytest

from harness import exi
from harness.pki.builder import KeyAlgorithm
from harness.pki.contract_key import EncryptedContractKey, decrypt_iso2, decrypt_iso20
from harness.pki.iso15118 import build_iso15118_pki
from harness.pki.profiles import Generation, Role
from harness.pki.xmldsig import sign_message, verify_message
from harness.v2g import messages, pnc
from harness.v2g.credentials import V2gMaterial
from harness.v2g.provisioning import ContractProvisioning
from tests.pki.openssl_cli import needs_openssl, verify

SCHEMA_VERSION = "urn:iso:15118:2:2013:MsgDef"
ISO20_SCHEMA_VERSION = "urn:iso:std:iso:15118:-20:CommonMessages"
#: OCPP 2.0.1 Get15118EVCertificateResponse.exiResponse, as the schema the ocpp package ships says
OCPP201_EXI_RESPONSE_MAX = json.loads((resources.files("ocpp") / "v201" / "schemas" /
                                       "Get15118EVCertificateResponse.json").read_text())[
    "properties"]["exiResponse"]["maxLength"]


@pytest.fixture(scope="module")
def material(tmp_path_factory):
    return V2gMaterial.generate(tmp_path_factory.mktemp("provisioning"))


@pytest.fixture(scope="module")
def service(material):
    return ContractProvisioning(material.provisioning().deliver,
                                oem_roots=[material.iso2.issued[Role.OEM_ROOT].cert,
                                           material.iso20.issued[Role.OEM_ROOT].cert],
                                mo_roots=material.all_mo_roots(),
                                authorities=[a.cert for a in material.authorities()])


def _request(name: str, body: dict, key) -> str:
    schema = messages.schema_of("iso2", name)
    message = sign_message(messages.wrap("iso2", name, body, "0A0B0C0D0E0F1011"), schema, key, elements=(name,))
    return base64.b64encode(exi.encode(message, schema)).decode()


def _installation(material, *, oem=None, key=None) -> str:
    pki = material.iso2
    oem = oem or pki.issued[Role.OEM_PROVISIONING]
    return _request("CertificateInstallationReq", {
        "Id": "id1", "OEMProvisioningCert": pnc.der_b64(oem.cert),
        "ListOfRootCertificateIDs": pnc.root_certificate_ids([pki.issued[Role.V2G_ROOT].cert])}, key or oem.key)


def _response(answer, name: str) -> tuple[dict, dict]:
    assert answer.status == "Accepted", answer.detail
    message = exi.decode(base64.b64decode(answer.exi_response), messages.schema_of("iso2", name))
    assert messages.name_of(message) == name
    return message, messages.body_of(message)


@needs_openssl
def test_an_installation_request_gets_a_signed_contract_the_ev_can_open(service, material, tmp_path):
    oem = material.iso2.issued[Role.OEM_PROVISIONING]
    answer = service.answer(SCHEMA_VERSION, "Install", _installation(material))
    message, body = _response(answer, "CertificateInstallationRes")
    assert body["ResponseCode"] == "OK"
    assert message["V2G_Message"]["Header"]["SessionID"] == "0A0B0C0D0E0F1011"
    cps = pnc.chain_from_json(body["SAProvisioningCertificateChain"])
    assert verify_message(message, "iso2", cps[0]).ok
    chain = pnc.chain_from_json(body["ContractSignatureCertChain"])
    verdict = verify(tmp_path, chain, material.mo_roots("iso2"), suite_b=True)
    assert verdict.ok, verdict
    key = decrypt_iso2(EncryptedContractKey(base64.b64decode(body["DHpublickey"]["value"]),
                                            base64.b64decode(body["ContractSignatureEncryptedPrivateKey"]["value"])),
                       oem.key, contract_certificate=chain[0])
    assert key.public_key().public_numbers() == chain[0].public_key().public_numbers()
    assert body["eMAID"]["value"] == pnc.common_name(chain[0])
    assert len(answer.exi_response) <= OCPP201_EXI_RESPONSE_MAX


def test_an_update_request_gets_a_new_contract_and_a_retry_counter(service, material):
    credentials = material.ev_credentials("iso2")
    request = _request("CertificateUpdateReq", {
        "Id": "id1", "ContractSignatureCertChain": pnc.chain_json(credentials.contract_chain),
        "eMAID": credentials.emaid,
        "ListOfRootCertificateIDs": pnc.root_certificate_ids(credentials.v2g_roots)}, credentials.contract_key)
    _, body = _response(service.answer(SCHEMA_VERSION, "Update", request), "CertificateUpdateRes")
    assert body["ResponseCode"] == "OK" and body["RetryCounter"] == 0
    assert pnc.chain_from_json(body["ContractSignatureCertChain"])[0] != credentials.contract_chain[0]


def test_an_oem_certificate_of_an_unknown_oem_is_a_chain_error(service, material):
    stranger = build_iso15118_pki(Generation.ISO2).issued[Role.OEM_PROVISIONING]
    _, body = _response(service.answer(SCHEMA_VERSION, "Install", _installation(material, oem=stranger)),
                        "CertificateInstallationRes")
    assert body["ResponseCode"] == "FAILED_CertChainError"


def test_a_request_not_signed_by_its_oem_certificate_is_a_signature_error(service, material):
    other = material.iso2.issued[Role.CONTRACT].key
    _, body = _response(service.answer(SCHEMA_VERSION, "Install", _installation(material, key=other)),
                        "CertificateInstallationRes")
    assert body["ResponseCode"] == "FAILED_SignatureError"


@pytest.mark.parametrize("schema, action, request_text, why", [
    ("urn:din:70121:2012:MsgDef", "Install", None, "this service provisions"),
    (SCHEMA_VERSION, "Renew", None, "is not one of Install, Update"),
    (ISO20_SCHEMA_VERSION, "Update", None, "is not one of Install for"),
    (SCHEMA_VERSION, "Install", "not base64!", "not a base64 EXI"),
    (SCHEMA_VERSION, "Install", base64.b64encode(b"\x80\x98\x02").decode(), "not a base64 EXI"),
    (SCHEMA_VERSION, "Update", "install", "not the CertificateUpdateReq of Update"),
], ids=["din", "unknown-action", "iso20-update", "not-base64", "not-exi", "wrong-message"])
def test_a_request_the_service_cannot_read_fails(service, material, schema, action, request_text, why):
    text = _installation(material) if request_text in (None, "install") else request_text
    answer = service.answer(schema, action, text)
    assert answer.status == "Failed" and answer.exi_response is None
    assert why in answer.detail, answer.detail


def test_material_without_mo_keys_starts_an_secc_that_offers_no_sales_tariff(tmp_path, material):
    """A lab gives its SECC chain and keys, not the MO's: loading it must not ask for MO Sub-CA 2's
    key (which signs SalesTariffs); the SECC then offers none in Plug & Charge sessions."""
    import shutil

    for part in ("iso2", "iso20"):
        (tmp_path / part).mkdir()
        for name in ("secc.pem", "secc.key", "secc-chain.pem", "v2g-root.pem", "oem-root.pem", "mo-root.pem"):
            source = material.path(part, name)
            if source.is_file():
                shutil.copy(source, tmp_path / part / name)
    lab = V2gMaterial.load(tmp_path)
    assert lab.tariff_key("iso2") is None
    assert lab.secc_tls().iso2 is not None
    assert lab.mo_roots("iso2") == material.mo_roots("iso2")


def test_an_update_for_another_emaid_is_refused(service, material):
    """The contract that signs a CertificateUpdateReq is the one renewed: a request for another
    account's eMAID gets no contract."""
    credentials = material.ev_credentials("iso2")
    request = _request("CertificateUpdateReq", {
        "Id": "id1", "ContractSignatureCertChain": pnc.chain_json(credentials.contract_chain),
        "eMAID": "DEXYZC99999999",
        "ListOfRootCertificateIDs": pnc.root_certificate_ids(credentials.v2g_roots)}, credentials.contract_key)
    _, body = _response(service.answer(SCHEMA_VERSION, "Update", request), "CertificateUpdateRes")
    assert body["ResponseCode"] == "FAILED_ContractCanceled"


# -- ISO 15118-20 ----------------------------------------------------------------------------------

def _installation_iso20(material, *, pki=None, key=None) -> str:
    pki = pki or material.iso20
    chain = pki.chain(Role.OEM_PROVISIONING)
    message = sign_message(messages.wrap("iso20", "CertificateInstallationReq", {
        "OEMProvisioningCertificateChain": pnc.chain_json_iso20(chain.presented, element_id="id1"),
        "ListOfRootCertificateIDs": pnc.root_certificate_ids([pki.issued[Role.V2G_ROOT].cert]),
        "MaximumContractCertificateChains": 1}, "0A0B0C0D0E0F1011", timestamp=1_700_000_000),
        "iso20", key or chain.leaf.key, elements=("OEMProvisioningCertificateChain",))
    return base64.b64encode(exi.encode(message, "iso20")).decode()


def _response_iso20(answer) -> tuple[dict, dict]:
    assert answer.status == "Accepted", answer.detail
    message = exi.decode(base64.b64decode(answer.exi_response), "iso20")
    assert messages.name_of(message) == "CertificateInstallationRes"
    return message, messages.body_of(message)


@needs_openssl
def test_an_iso20_installation_gets_a_secp521r1_contract_the_ev_can_open(service, material, tmp_path):
    """-20 CertificateInstallationRes: SignedInstallationData signed by the CPS key, the contract
    chain valid against the -20 MO root (openssl), the secp521r1 key sealed for the OEM
    provisioning key with the PCID in the AAD, in the fields' fixed sizes (133 and 94 bytes)."""
    oem = material.iso20.issued[Role.OEM_PROVISIONING]
    message, body = _response_iso20(service.answer(ISO20_SCHEMA_VERSION, "Install", _installation_iso20(material)))
    assert body["ResponseCode"] == "OK" and body["EVSEProcessing"] == "Finished"
    cps = pnc.chain_from_json(body["CPSCertificateChain"])
    assert verify_message(message, "iso20", cps[0]).ok
    data = body["SignedInstallationData"]
    chain = pnc.chain_from_json(data["ContractCertificateChain"])
    verdict = verify(tmp_path, chain, material.mo_roots("iso20"))
    assert verdict.ok, verdict
    dh, sealed = base64.b64decode(data["DHPublicKey"]), base64.b64decode(data["SECP521_EncryptedPrivateKey"])
    assert (len(dh), len(sealed), data["ECDHCurve"]) == (133, 94, "SECP521")
    key = decrypt_iso20(EncryptedContractKey(dh, sealed), oem.key, pcid=pnc.common_name(oem.cert),
                        contract_certificate=chain[0])
    assert key.public_key().public_numbers() == chain[0].public_key().public_numbers()


def test_an_iso20_installation_from_an_unknown_oem_or_badly_signed_is_refused_with_the_20_codes(service, material):
    stranger = build_iso15118_pki(Generation.ISO20, KeyAlgorithm.SECP521R1)
    _, body = _response_iso20(service.answer(ISO20_SCHEMA_VERSION, "Install",
                                             _installation_iso20(material, pki=stranger)))
    assert body["ResponseCode"] == "WARNING_CertificateValidationError"
    other = material.iso20.issued[Role.CONTRACT].key
    _, body = _response_iso20(service.answer(ISO20_SCHEMA_VERSION, "Install", _installation_iso20(material, key=other)))
    assert body["ResponseCode"] == "FAILED_SignatureError"
    assert len(base64.b64decode(body["SignedInstallationData"]["DHPublicKey"])) == 133  # [V2G20-736] still valid
