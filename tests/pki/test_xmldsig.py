"""XML signatures over EXI: the Annex J.2 example, signatures recorded between two other
implementations, and sign-then-verify for each signed message type of ISO 15118-2 and -20."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from harness import exi
from harness.pki.contract_key import encrypt_iso2, encrypt_iso20
from harness.pki.profiles import DEFAULT_EMAID, DEFAULT_PCID, Role
from harness.pki.xmldsig import (
    ISO2_ECDSA_SHA256,
    SignatureError,
    sign_fragments,
    sign_message,
    signed_info,
    verify_fragments,
    verify_message,
)

VECTORS = Path(__file__).resolve().parents[1] / "vectors"


@pytest.fixture(scope="module")
def annex_j2() -> dict:
    return json.loads((VECTORS / "xmldsig_iso2_annex_j2.json").read_text())


def _annex_key(vector) -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(int(vector["private_key_hex"], 16), ec.SECP256R1())


def _annex_public(vector) -> ec.EllipticCurvePublicKey:
    return ec.EllipticCurvePublicKey.from_encoded_point(
        ec.SECP256R1(), bytes.fromhex("04" + vector["public_key_xy_hex"]))


# -- Annex J.2 -----------------------------------------------------------------------------------

def test_annex_j2_digest_of_the_published_fragment(annex_j2):
    fragment = bytes.fromhex(annex_j2["authorization_req_fragment"]["hex"])
    digest = ISO2_ECDSA_SHA256.digest(fragment)
    assert digest.hex() == annex_j2["authorization_req_fragment"]["sha256_hex"]
    reference = annex_j2["signed_info_fragment"]["content"]["SignedInfo"]["Reference"][0]
    assert base64.b64decode(reference["DigestValue"]) == digest


def test_annex_j2_fragments_encode_to_the_published_bytes(annex_j2):
    assert exi.encode(annex_j2["authorization_req_fragment"]["content"], "iso2",
                      fragment=True).hex() == annex_j2["authorization_req_fragment"]["hex"]
    ours = signed_info([("ID1", bytes.fromhex(annex_j2["authorization_req_fragment"]["hex"]))],
                       ISO2_ECDSA_SHA256)
    assert ours == annex_j2["signed_info_fragment"]["content"]
    assert exi.encode(ours, "xmldsig", fragment=True).hex() == annex_j2["signed_info_fragment"]["hex"]


def _annex_signature(vector, value: bytes) -> dict:
    return {**vector["signed_info_fragment"]["content"],
            "SignatureValue": {"value": base64.b64encode(value).decode()}}


def test_annex_j2_published_signature_verifies(annex_j2):
    fragments = {"ID1": bytes.fromhex(annex_j2["authorization_req_fragment"]["hex"])}
    signature = _annex_signature(annex_j2, bytes.fromhex(annex_j2["signature_rs_hex"]))
    published_signed_info = bytes.fromhex(annex_j2["signed_info_fragment"]["hex"])
    assert verify_fragments(signature, fragments, _annex_public(annex_j2),
                            signed_info_exi=published_signed_info).ok
    assert verify_fragments(signature, fragments, _annex_public(annex_j2)).ok  # re-encoded
    assert _annex_key(annex_j2).public_key() == _annex_public(annex_j2)


def test_annex_j2_signing_the_same_content_verifies(annex_j2):
    fragment = bytes.fromhex(annex_j2["authorization_req_fragment"]["hex"])
    signature = sign_fragments([("ID1", fragment)], _annex_key(annex_j2))
    assert signature["SignedInfo"] == annex_j2["signed_info_fragment"]["content"]["SignedInfo"]
    assert len(base64.b64decode(signature["SignatureValue"]["value"])) == 64  # raw r || s
    assert verify_fragments(signature, {"ID1": fragment}, _annex_public(annex_j2)).ok


def test_annex_j2_tampered_fragment_names_the_reference(annex_j2):
    fragment = bytearray.fromhex(annex_j2["authorization_req_fragment"]["hex"])
    fragment[-1] ^= 1
    signature = _annex_signature(annex_j2, bytes.fromhex(annex_j2["signature_rs_hex"]))
    result = verify_fragments(signature, {"ID1": bytes(fragment)}, _annex_public(annex_j2))
    assert result.failures == ("reference #ID1: digest does not match the element",)


def test_annex_j2_wrong_key_names_the_signature_value(annex_j2):
    signature = _annex_signature(annex_j2, bytes.fromhex(annex_j2["signature_rs_hex"]))
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    result = verify_fragments(signature, {"ID1": bytes.fromhex(
        annex_j2["authorization_req_fragment"]["hex"])}, other)
    assert len(result.failures) == 1 and result.failures[0].startswith("SignatureValue")


# -- signatures recorded between two other implementations ---------------------------------------

def _recorded(schema: str, message: str) -> list[dict]:
    rows = [json.loads(line) for line in (VECTORS / "exi_sessions.jsonl").read_text().splitlines()]
    return [r for r in rows if r["schema"] == schema and r["message"] == message
            and '"Signature"' in json.dumps(r["json"])]


@pytest.mark.parametrize("index", [0, 1])
def test_recorded_iso20_authorization_req_verifies(index):
    """-20 PnC AuthorizationReq carries its contract certificate, so the signature can be
    checked end to end against a signer that is not us."""
    row = _recorded("iso20", "AuthorizationReq")[index]
    message = row["json"]
    chain = message["AuthorizationReq"]["PnC_AReqAuthorizationMode"]["ContractCertificateChain"]
    contract = x509.load_der_x509_certificate(base64.b64decode(chain["Certificate"]))
    assert verify_message(message, "iso20", contract).ok
    forged = copy.deepcopy(message)
    forged["AuthorizationReq"]["PnC_AReqAuthorizationMode"]["GenChallenge"] = \
        base64.b64encode(bytes(16)).decode()
    assert verify_message(forged, "iso20", contract).failures == (
        "reference #id1 (PnC_AReqAuthorizationMode): digest does not match the element",)


def test_recorded_iso2_signatures_have_matching_digests():
    """The -2 recordings do not carry their signer's certificate with them; the references
    still have to match the elements as our codec encodes them."""
    from harness.pki.xmldsig import signed_fragments
    rows = _recorded("iso2", "AuthorizationReq") + _recorded("iso2", "ChargeParameterDiscoveryRes")
    assert rows
    for row in rows:
        message = row["json"]
        fragments = signed_fragments(message, "iso2")
        for reference in message["V2G_Message"]["Header"]["Signature"]["SignedInfo"]["Reference"]:
            _, fragment = fragments[reference["URI"][1:]]
            assert base64.b64decode(reference["DigestValue"]) == ISO2_ECDSA_SHA256.digest(fragment)


# -- sign then verify, per message type ----------------------------------------------------------

def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _der(cert: x509.Certificate) -> str:
    return _b64(cert.public_bytes(Encoding.DER))


def _iso2_chain(pki, role: Role, element_id: str | None = None) -> dict:
    chain = pki.chain(role)
    result = {"Certificate": _der(chain.leaf.cert),
              "SubCertificates": {"Certificate": [_der(c) for c in chain.intermediates]}}
    return {"Id": element_id, **result} if element_id else result


def _iso2(body: dict) -> dict:
    return {"V2G_Message": {"Header": {"SessionID": "0102030405060708"}, "Body": body}}


def iso2_messages(pki) -> dict[str, tuple[dict, Role]]:
    """Each signed -2 message type and the role whose key signs it."""
    oem = pki.issued[Role.OEM_PROVISIONING]
    delivered = encrypt_iso2(pki.issued[Role.CONTRACT].key, oem.cert)
    installation = {
        "ResponseCode": "OK",
        "SAProvisioningCertificateChain": _iso2_chain(pki, Role.CPS),
        "ContractSignatureCertChain": _iso2_chain(pki, Role.CONTRACT, "id1"),
        "ContractSignatureEncryptedPrivateKey": {"Id": "id2",
                                                 "value": _b64(delivered.encrypted_private_key)},
        "DHpublickey": {"Id": "id3", "value": _b64(delivered.dh_public_key)},
        "eMAID": {"Id": "id4", "value": DEFAULT_EMAID},
    }
    return {
        "AuthorizationReq": (_iso2({"AuthorizationReq": {
            "Id": "id1", "GenChallenge": _b64(b"0123456789abcdef")}}), Role.CONTRACT),
        "MeteringReceiptReq": (_iso2({"MeteringReceiptReq": {
            "Id": "id1", "SessionID": "0102030405060708", "SAScheduleTupleID": 1,
            "MeterInfo": {"MeterID": "HARNESS-METER-1", "MeterReading": 12345}}}), Role.CONTRACT),
        "CertificateInstallationRes": (_iso2({"CertificateInstallationRes": installation}), Role.CPS),
        "CertificateUpdateRes": (_iso2({"CertificateUpdateRes": {**installation,
                                                                  "RetryCounter": 0}}), Role.CPS),
    }


def iso20_messages(pki) -> dict[str, tuple[dict, Role]]:
    header = {"SessionID": "0102030405060708", "TimeStamp": 1795750470}
    contract = pki.chain(Role.CONTRACT)
    contract_chain = {"Certificate": _der(contract.leaf.cert),
                      "SubCertificates": {"Certificate": [_der(c) for c in contract.intermediates]}}
    messages = {
        "AuthorizationReq": ({"AuthorizationReq": {
            "Header": dict(header), "SelectedAuthorizationService": "PnC",
            "PnC_AReqAuthorizationMode": {"Id": "id1", "GenChallenge": _b64(b"0123456789abcdef"),
                                          "ContractCertificateChain": contract_chain}}},
            Role.CONTRACT),
        "MeteringConfirmationReq": ({"MeteringConfirmationReq": {
            "Header": dict(header),
            "SignedMeteringData": {"Id": "id1", "SessionID": "0102030405060708",
                                   "MeterInfo": {"MeterID": "HARNESS-METER-1",
                                                 "ChargedEnergyReadingWh": 12345},
                                   "Dynamic_SMDTControlMode": {}}}}, Role.CONTRACT),
    }
    if pki.algorithm.value == "secp521r1":  # the Ed448 variant needs an X448 key, see contract_key
        delivered = encrypt_iso20(contract.leaf.key, pki.issued[Role.OEM_PROVISIONING].cert,
                                  pcid=DEFAULT_PCID, contract_certificate=contract.leaf.cert)
        cps = pki.chain(Role.CPS)
        messages["CertificateInstallationRes"] = ({"CertificateInstallationRes": {
            "Header": dict(header), "ResponseCode": "OK", "EVSEProcessing": "Finished",
            "CPSCertificateChain": {"Certificate": _der(cps.leaf.cert), "SubCertificates": {
                "Certificate": [_der(c) for c in cps.intermediates]}},
            "SignedInstallationData": {"Id": "id1", "ContractCertificateChain": contract_chain,
                                       "ECDHCurve": "SECP521",
                                       "DHPublicKey": _b64(delivered.dh_public_key),
                                       "SECP521_EncryptedPrivateKey": _b64(
                                           delivered.encrypted_private_key)},
            "RemainingContractCertificateChains": 0}}, Role.CPS)
    return messages


ISO2_TYPES = ["AuthorizationReq", "MeteringReceiptReq", "CertificateInstallationRes",
              "CertificateUpdateRes"]
ISO20_TYPES = ["AuthorizationReq", "MeteringConfirmationReq", "CertificateInstallationRes"]


@pytest.mark.parametrize("kind", ISO2_TYPES)
def test_iso2_sign_then_verify(iso2_pki, kind):
    message, role = iso2_messages(iso2_pki)[kind]
    signer = iso2_pki.issued[role]
    signed = sign_message(message, "iso2", signer.key)
    references = signed["V2G_Message"]["Header"]["Signature"]["SignedInfo"]["Reference"]
    assert len(references) == (4 if "Certificate" in kind else 1)
    assert verify_message(signed, "iso2", signer.cert).ok
    exi.decode(exi.encode(signed, "iso2"), "iso2")  # the signed message is a valid message


@pytest.mark.parametrize("kind", ISO20_TYPES)
@pytest.mark.parametrize("pki_name", ["iso20_pki", "iso20_ed448_pki"])
def test_iso20_sign_then_verify(request, pki_name, kind):
    pki = request.getfixturevalue(pki_name)
    messages = iso20_messages(pki)
    if kind not in messages:
        pytest.skip("CertificateInstallationRes for Ed448 needs an X448 OEM key (not derived)")
    message, role = messages[kind]
    signer = pki.issued[role]
    signed = sign_message(message, "iso20", signer.key)
    method = signed[kind]["Header"]["Signature"]["SignedInfo"]["SignatureMethod"]["Algorithm"]
    assert method.endswith("ecdsa-sha512" if pki.algorithm.value == "secp521r1" else "eddsa-ed448")
    assert verify_message(signed, "iso20", signer.cert).ok
    exi.encode(signed, "iso20")


def test_iso2_tampered_installation_names_the_reference(iso2_pki):
    message, role = iso2_messages(iso2_pki)["CertificateInstallationRes"]
    signed = sign_message(message, "iso2", iso2_pki.issued[role].key)
    signed["V2G_Message"]["Body"]["CertificateInstallationRes"]["eMAID"]["value"] = "DEHARC87654321"
    result = verify_message(signed, "iso2", iso2_pki.issued[role].cert)
    assert result.failures == ("reference #id4 (eMAID): digest does not match the element",)


def test_iso2_dropped_reference_is_reported(iso2_pki):
    message, role = iso2_messages(iso2_pki)["CertificateInstallationRes"]
    signer = iso2_pki.issued[role]
    signed = sign_message(message, "iso2", signer.key, elements=["ContractSignatureCertChain",
                                                                   "ContractSignatureEncryptedPrivateKey",
                                                                   "DHpublickey"])
    result = verify_message(signed, "iso2", signer.cert)
    assert result.failures == ("eMAID (#id4) is not covered by the signature",)


def test_iso2_signed_by_someone_else(iso2_pki):
    message, _ = iso2_messages(iso2_pki)["AuthorizationReq"]
    signed = sign_message(message, "iso2", iso2_pki.issued[Role.SECC].key)
    result = verify_message(signed, "iso2", iso2_pki.issued[Role.CONTRACT].cert)
    assert len(result.failures) == 1 and result.failures[0].startswith("SignatureValue")


def test_unsigned_message_type_is_refused(iso2_pki):
    with pytest.raises(SignatureError, match="not a signed message"):
        sign_message(_iso2({"SessionStopReq": {"ChargingSession": "Terminate"}}), "iso2",
                     iso2_pki.issued[Role.CONTRACT].key)
