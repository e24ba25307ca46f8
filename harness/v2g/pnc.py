"""Plug & Charge pieces both sides need: certificate chains in messages, contract checks, and the
contract delivery of CertificateInstallation / CertificateUpdate.

A CertificateChain travels as Certificate (the leaf, DER in base64) and SubCertificates (the
Sub-CAs). The SECC validates a contract chain against the MO roots it has ([V2G20-2564]; -2
PaymentDetailsReq); both standards let it leave the check to a secondary actor (the CSMS, once
Plug & Charge goes through OCPP), but a chain that nobody validates is never accepted: without MO
roots and without a backend that checks, :func:`check_contract` refuses. Its
:class:`ContractCheck` says who checked and why a chain was refused; mapping a refusal to each
generation's response code is :data:`CONTRACT_REFUSALS`, one table.

A certificate provisioning service issues a fresh contract certificate from the MO Sub-CA 2 of
its PKI, encrypts the key for the EV (harness.pki.contract_key) and signs the delivery with the
CPS key (ISO 15118-2 Annex J: the elements ContractSignatureCertChain,
ContractSignatureEncryptedPrivateKey, DHpublickey, eMAID): the mock CSMS behind
Get15118EVCertificate (:mod:`harness.v2g.provisioning`), or ``evse serve``'s SECC itself, which
has no CSMS. :class:`ContractDelivery` and :func:`delivery_body` are what both use.
"""

from __future__ import annotations

import base64
import datetime as _dt
from dataclasses import dataclass, field
from typing import Any, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from harness.pki.profiles import Generation, Role, same_emaid
from harness.pki.validate import Reason, ValidationResult, policy_for, validate_chain
from harness.pki.xmldsig import verify_message
from harness.v2g.machine import Notice


class CertificateDataError(ValueError):
    """A certificate in a message that does not parse; the message names which."""


def der_b64(certificate: x509.Certificate) -> str:
    return base64.b64encode(certificate.public_bytes(serialization.Encoding.DER)).decode()


def chain_json(chain: Sequence[x509.Certificate], *, element_id: str | None = None) -> dict:
    """CertificateChainType (JSON form): the leaf, then its Sub-CAs."""
    result: dict = {}
    if element_id:
        result["Id"] = element_id
    result["Certificate"] = der_b64(chain[0])
    if len(chain) > 1:
        result["SubCertificates"] = {"Certificate": [der_b64(c) for c in chain[1:]]}
    return result


def chain_from_json(value: dict, what: str = "certificate chain") -> list[x509.Certificate]:
    items = [value["Certificate"], *((value.get("SubCertificates") or {}).get("Certificate") or [])]
    chain = []
    for index, item in enumerate(items):
        try:
            chain.append(x509.load_der_x509_certificate(base64.b64decode(item)))
        except (ValueError, TypeError) as exc:
            where = "Certificate" if index == 0 else f"SubCertificates[{index - 1}]"
            raise CertificateDataError(f"{what}: {where} is not a DER certificate ({exc})") from None
    return chain


def certificate_from_b64(value: str, what: str) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(base64.b64decode(value))
    except (ValueError, TypeError) as exc:
        raise CertificateDataError(f"{what} is not a DER certificate ({exc})") from None


def common_name(certificate: x509.Certificate) -> str:
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else ""


def root_certificate_ids(roots: Sequence[x509.Certificate]) -> dict:
    """ListOfRootCertificateIDs: issuer name and serial of each trusted root."""
    return {"RootCertificateID": [
        {"X509IssuerName": root.issuer.rfc4514_string(), "X509SerialNumber": root.serial_number}
        for root in roots[:20]]}


#: why the SECC refuses a contract chain -> the response code it answers with, per generation: -2
#: PaymentDetailsRes FAILED_* (the chain as a whole is FAILED_CertChainError), -20 AuthorizationRes
#: WARNING_* ([V2G20-1978]: a problem is answered with EVSEProcessing Finished and a warning)
CONTRACT_REFUSALS: dict[Generation, dict[Reason | None, str]] = {
    Generation.ISO2: {
        Reason.EXPIRED: "FAILED_CertificateExpired",
        Reason.REVOKED: "FAILED_CertificateRevoked",
        None: "FAILED_CertChainError",
    },
    Generation.ISO20: {
        Reason.EXPIRED: "WARNING_CertificateExpired",
        Reason.NOT_YET_VALID: "WARNING_CertificateNotYetValid",
        Reason.REVOKED: "WARNING_CertificateRevoked",
        None: "WARNING_CertificateValidationError",
    },
}


#: what a backend said about a contract (the CSMS's certificateStatus in its answer to Authorize,
#: OCPP 2.0.1 AuthorizeCertificateStatusEnumType; "Rejected": the eMAID itself was not accepted)
#: -> the AuthorizationRes ResponseCode the SECC answers with once it knows. -2 has a FAILED_* code
#: for each (spelled FAILED_ContractCanceled); -20 answers a problem with a WARNING_* code and
#: EVSEProcessing Finished ([V2G20-1978]), and has none for a cancelled contract.
BACKEND_REFUSALS: dict[Generation, dict[str, str]] = {
    Generation.ISO2: {
        "SignatureError": "FAILED_SignatureError",
        "CertificateExpired": "FAILED_CertificateExpired",
        "CertificateRevoked": "FAILED_CertificateRevoked",
        "NoCertificateAvailable": "FAILED_NoCertificateAvailable",
        "CertChainError": "FAILED_CertChainError",
        "ContractCancelled": "FAILED_ContractCanceled",
        "Rejected": "FAILED",
    },
    Generation.ISO20: {
        "SignatureError": "FAILED_SignatureError",
        "CertificateExpired": "WARNING_CertificateExpired",
        "CertificateRevoked": "WARNING_CertificateRevoked",
        "NoCertificateAvailable": "WARNING_NoCertificateAvailable",
        "CertChainError": "WARNING_CertificateValidationError",
        "ContractCancelled": "WARNING_GeneralPnCAuthorizationError",
        "Rejected": "WARNING_GeneralPnCAuthorizationError",
    },
}


def authorization_refusal(status: str, generation: Generation) -> str | None:
    """The ResponseCode for an authorization outcome (:meth:`Equipment.authorize`), None while
    it is Accepted or Ongoing."""
    return BACKEND_REFUSALS[generation].get(status)


@dataclass(frozen=True)
class ContractCheck:
    """What became of a contract chain: ``refusal`` is the response code to answer with (None:
    accepted); ``checked_by`` says who validated it, for the timeline."""

    refusal: str | None
    checked_by: str
    detail: str
    result: ValidationResult | None = None

    @property
    def ok(self) -> bool:
        return self.refusal is None


def check_contract(chain: Sequence[x509.Certificate], anchors: Sequence[x509.Certificate], *,
                   emaid: str | None, generation: Generation = Generation.ISO2,
                   at: _dt.datetime | None = None) -> ContractCheck:
    """Validate a contract chain against the MO roots ``anchors`` with the generation's rules
    (curves and hashes, key usage, DC, validity; the leaf's CN is ``emaid`` when given)."""
    refusals = CONTRACT_REFUSALS[generation]
    if not anchors:
        return ContractCheck(refusals[None], "nobody", "no MO root certificate to validate the contract chain "
                                                       "against, and no backend that validates it")
    checked_by = f"the SECC, against {len(anchors)} MO root(s): " + ", ".join(common_name(a) for a in anchors)
    result = validate_chain(chain, anchors, policy=policy_for(generation, Role.CONTRACT, common_name=None), at=at)
    if not result.ok:
        return ContractCheck(refusals.get(result.reason, refusals[None]), checked_by, str(result), result)
    if emaid is not None and not same_emaid(common_name(chain[0]), emaid):
        return ContractCheck(refusals[None], checked_by, f"the contract certificate's CN {common_name(chain[0])!r} "
                                                         f"is not the eMAID {emaid!r}", result)
    return ContractCheck(None, checked_by, "valid", result)


def contract_notice(check: ContractCheck) -> Notice:
    """The SECC's contract check on the timeline: accepted or refused, and by whom."""
    if check.ok:
        return Notice("ContractAccepted", f"SECC: contract chain accepted, validated by {check.checked_by}",
                      {"checked_by": check.checked_by})
    return Notice("ContractRefused", f"SECC: contract chain refused ({check.refusal}), validated by "
                  f"{check.checked_by}: {check.detail}",
                  {"checked_by": check.checked_by, "refusal": check.refusal, "detail": check.detail})


#: OCPP Get15118EVCertificate iso15118SchemaVersion (the namespace of the schema the EXI of the
#: certificate messages is encoded with), by PKI generation: -2's MsgDef, -20's CommonMessages
PROVISIONING_NAMESPACES: dict[str, str] = {
    "iso2": "urn:iso:15118:2:2013:MsgDef",
    "iso20": "urn:iso:std:iso:15118:-20:CommonMessages",
}


@dataclass
class ContractDelivery:
    """A contract for the EV, ready for CertificateInstallationRes / CertificateUpdateRes."""

    contract_chain: list[x509.Certificate]
    encrypted_private_key: bytes
    dh_public_key: bytes
    emaid: str
    #: SAProvisioningCertificateChain: the CPS leaf and Sub-CAs whose key signs the delivery
    cps_chain: list[x509.Certificate]
    cps_key: Any = field(repr=False, default=None)


def delivery_body(delivery: ContractDelivery, request: str) -> dict:
    """CertificateInstallationRes / CertificateUpdateRes (-2) for a delivered contract, OK; the
    elements carry the Ids the CPS signature references (ISO 15118-2 8.4.3.10/8.4.3.11, Annex J)."""
    body: dict[str, Any] = {
        "ResponseCode": "OK",
        "SAProvisioningCertificateChain": chain_json(delivery.cps_chain),
        "ContractSignatureCertChain": chain_json(delivery.contract_chain, element_id="id1"),
        "ContractSignatureEncryptedPrivateKey": {"Id": "id2",
                                                 "value": base64.b64encode(delivery.encrypted_private_key).decode()},
        "DHpublickey": {"Id": "id3", "value": base64.b64encode(delivery.dh_public_key).decode()},
        "eMAID": {"Id": "id4", "value": delivery.emaid}}
    if request == "CertificateUpdateReq":
        body["RetryCounter"] = 0
    return body


def chain_json_iso20(chain: Sequence[x509.Certificate], *, element_id: str | None = None) -> dict:
    """An -20 certificate chain (CertificateChainType, SignedCertificateChainType with
    ``element_id``, ContractCertificateChainType): the leaf, then SubCertificates (1 to 3)."""
    if not 2 <= len(chain) <= 4:
        raise ValueError(f"an ISO 15118-20 contract or provisioning chain has 1 to 3 Sub-CAs, not {len(chain) - 1}")
    return chain_json(chain, element_id=element_id)


def delivery_body_iso20(delivery: ContractDelivery) -> dict:
    """CertificateInstallationRes (-20) for a delivered contract, OK: the CPS chain, and the
    SignedInstallationData the CPS signs (contract chain, ECDH curve, the ephemeral public key and
    the encrypted contract key; ISO 15118-20 CommonMessages, 7.9.2.5)."""
    return {"ResponseCode": "OK", "EVSEProcessing": "Finished",
            "CPSCertificateChain": chain_json(delivery.cps_chain),
            "SignedInstallationData": {
                "Id": "id1", "ContractCertificateChain": chain_json_iso20(delivery.contract_chain),
                "ECDHCurve": "SECP521", "DHPublicKey": base64.b64encode(delivery.dh_public_key).decode(),
                "SECP521_EncryptedPrivateKey": base64.b64encode(delivery.encrypted_private_key).decode()},
            "RemainingContractCertificateChains": 0}


def empty_delivery_iso20() -> dict:
    """The mandatory elements of a refused -20 CertificateInstallationRes at their minimal sizes
    ([V2G20-736]; the key fields have fixed lengths: DHPublicKey 133 bytes, the SECP521 key 94)."""
    empty = base64.b64encode(b"\0").decode()
    return {"EVSEProcessing": "Finished", "CPSCertificateChain": {"Certificate": empty},
            "SignedInstallationData": {"Id": "id1", "ContractCertificateChain": {
                "Certificate": empty, "SubCertificates": {"Certificate": [empty]}},
                "ECDHCurve": "SECP521", "DHPublicKey": base64.b64encode(bytes(133)).decode(),
                "SECP521_EncryptedPrivateKey": base64.b64encode(bytes(94)).decode()},
            "RemainingContractCertificateChains": 0}


def signed_delivery(message: dict, family: str, cps_chain: dict, contract_chain: dict,
                    names: tuple[str, str]) -> tuple[list[x509.Certificate], list[x509.Certificate]] | str:
    """The CPS chain and the contract chain of a CertificateInstallationRes / UpdateRes whose
    signature the CPS leaf makes (what ``names`` calls the two chains in messages), or what is
    wrong with it."""
    try:
        cps = chain_from_json(cps_chain, names[0])
        contract = chain_from_json(contract_chain, names[1])
    except CertificateDataError as exc:
        return str(exc)
    verification = verify_message(message, family, cps[0])
    if not verification.ok:
        return f"certificate delivery signature: {verification}"
    return cps, contract


def empty_delivery() -> dict:
    """The mandatory elements of a refused CertificateInstallationRes / CertificateUpdateRes,
    with placeholder content ([V2G2-736])."""
    empty = base64.b64encode(b"\0").decode()
    return {"SAProvisioningCertificateChain": {"Certificate": empty},
            "ContractSignatureCertChain": {"Certificate": empty},
            "ContractSignatureEncryptedPrivateKey": {"Id": "id2", "value": empty},
            "DHpublickey": {"Id": "id3", "value": empty}, "eMAID": {"Id": "id4", "value": "ZZ000000000000"}}  # eMAIDType: 14 to 15 characters

