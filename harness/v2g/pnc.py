"""Plug & Charge pieces both sides need: certificate chains in messages, contract checks, and the
contract delivery of CertificateInstallation / CertificateUpdate.

A CertificateChain travels as Certificate (the leaf, DER in base64) and SubCertificates (the
Sub-CAs). The SECC checks a contract chain against the MO roots it has (if it has none, the
backend decides; ISO 15118-2 lets the SECC forward the check); mapping a refusal to a response
code is :data:`CONTRACT_REFUSALS`, one table.

The reference charger acts as its own certificate provisioning service: it issues a fresh
contract certificate from the MO Sub-CA 2 of its generated PKI, encrypts the key for the EV
(harness.pki.contract_key) and signs the delivery with the CPS key (ISO 15118-2 Annex J: the
elements ContractSignatureCertChain, ContractSignatureEncryptedPrivateKey, DHpublickey, eMAID).
Through OCPP this becomes Get15118EVCertificate later; :class:`ContractDelivery` is the seam.
"""

from __future__ import annotations

import base64
import datetime as _dt
from dataclasses import dataclass, field
from typing import Any, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from harness.pki.validate import Reason, ValidationResult, policy_for, validate_chain
from harness.pki.profiles import Generation, Role


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


#: why the SECC refuses a contract chain -> the -2 / -20 response code it answers with
CONTRACT_REFUSALS: dict[Reason, str] = {
    Reason.EXPIRED: "FAILED_CertificateExpired",
    Reason.NOT_YET_VALID: "FAILED_CertChainError",
    Reason.REVOKED: "FAILED_CertificateRevoked",
}


def check_contract(chain: Sequence[x509.Certificate], anchors: Sequence[x509.Certificate], *,
                   emaid: str | None, generation: Generation = Generation.ISO2,
                   at: _dt.datetime | None = None) -> tuple[str | None, ValidationResult | None]:
    """(refusal response code or None, validation result). Without anchors only the validity
    period is checked here; the chain is the backend's to judge."""
    if not anchors:
        leaf = chain[0]
        moment = at or _dt.datetime.now(_dt.timezone.utc)
        if leaf.not_valid_after_utc < moment:
            return "FAILED_CertificateExpired", None
        return None, None
    result = validate_chain(chain, anchors, policy=policy_for(generation, Role.CONTRACT, common_name=None), at=at)
    if result.ok:
        if emaid is not None and _normal(common_name(chain[0])) != _normal(emaid):
            return "FAILED_CertChainError", result
        return None, result
    return CONTRACT_REFUSALS.get(result.reason, "FAILED_CertChainError"), result


def _normal(emaid: str) -> str:
    return emaid.replace("-", "").replace("*", "").upper()


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
