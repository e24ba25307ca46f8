"""The certificate provisioning service behind OCPP Get15118EVCertificate (OCPP 2.0.1 M01
Install, M02 Update; the 1.6 application note's DataTransfer): the EXI request the EV sent to the
charger in, the signed EXI response for the EV out.

For ISO 15118-2 (``urn:iso:15118:2:2013:MsgDef``): the request is decoded with the harness's
codec; a CertificateInstallationReq must be signed with the key of its OEMProvisioningCert, which
must chain to an OEM root the service knows; a CertificateUpdateReq must be signed with the key
of its contract certificate, whose chain must lead to an MO root it knows. A good request gets a
new contract (:class:`harness.v2g.pnc.ContractDelivery`: the contract chain, its private key
encrypted for the EV, signed with the CPS key as ISO 15118-2 8.4.3.10/8.4.3.11 and Annex J say);
a bad one gets the response with the code that names the defect (FAILED_SignatureError,
FAILED_CertChainError, FAILED_CertificateExpired, FAILED_CertificateRevoked,
FAILED_NoCertificateAvailable). Either way the OCPP status is Accepted: the EXI response is the
answer. Failed is for a request the service cannot read (not base64, not EXI, another message, a
schema version it does not provision).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Callable, Sequence

from cryptography import x509

from harness import exi
from harness.pki.profiles import Generation, Role, same_emaid
from harness.pki.validate import OcspCheck, issuers_among, policy_for, validate_chain
from harness.pki.xmldsig import sign_message, verify_message
from harness.v2g import messages, pnc, sap

#: the ISO 15118 schema versions this service provisions, and the harness's schema key
SCHEMA_VERSIONS = {sap.ISO2.namespace: "iso2"}
#: OCPP's action -> the request it carries
REQUESTS = {"Install": "CertificateInstallationReq", "Update": "CertificateUpdateReq"}

#: the service's contract issuer: (request "install"/"update", oem chain, contract chain, eMAID)
Deliver = Callable[..., "pnc.ContractDelivery | None"]


@dataclass(frozen=True)
class ProvisioningAnswer:
    """Get15118EVCertificateResponse: ``status`` Accepted or Failed, ``exi_response`` base64."""

    status: str
    exi_response: str | None
    detail: str


class ContractProvisioning:
    def __init__(self, deliver: Deliver, *, oem_roots: Sequence[x509.Certificate],
                 mo_roots: Sequence[x509.Certificate], authorities: Sequence[x509.Certificate] = (),
                 ocsp: OcspCheck | None = None) -> None:
        self.deliver = deliver
        self.oem_roots = list(oem_roots)
        self.mo_roots = list(mo_roots)
        self.authorities = list(authorities)
        #: asks about the revocation of every certificate of the chain (None: not asked)
        self.ocsp = ocsp

    def answer(self, schema_version: str, action: str, exi_request: str) -> ProvisioningAnswer:
        schema = SCHEMA_VERSIONS.get(schema_version)
        if schema is None:
            return ProvisioningAnswer("Failed", None, f"iso15118SchemaVersion {schema_version!r}: this service "
                                      f"provisions {', '.join(SCHEMA_VERSIONS)} only")
        expected = REQUESTS.get(action)
        if expected is None:
            return ProvisioningAnswer("Failed", None, f"action {action!r} is neither Install nor Update")
        try:
            data = base64.b64decode(exi_request, validate=True)
            message = exi.decode(data, schema)
        except (binascii.Error, ValueError) as exc:
            return ProvisioningAnswer("Failed", None, f"exiRequest is not a base64 EXI {expected} ({exc})")
        name = messages.name_of(message)
        if name != expected:
            return ProvisioningAnswer("Failed", None, f"exiRequest holds {name}, not the {expected} of {action}")
        body = messages.body_of(message)
        session_id = message["V2G_Message"]["Header"]["SessionID"]
        code, delivery, detail = self._deliver(expected, body, message, schema)
        if delivery is None:
            response_body = {"ResponseCode": code, **pnc.empty_delivery()}
            if expected == "CertificateUpdateReq":
                response_body["RetryCounter"] = 0
            response = messages.wrap(schema, expected.replace("Req", "Res"), response_body, session_id)
        else:
            response = sign_message(messages.wrap(schema, expected.replace("Req", "Res"),
                                                  pnc.delivery_body(delivery, expected), session_id),
                                    messages.schema_of(schema, expected.replace("Req", "Res")), delivery.cps_key)
        encoded = exi.encode(response, messages.schema_of(schema, expected.replace("Req", "Res")))
        return ProvisioningAnswer("Accepted", base64.b64encode(encoded).decode(), f"{code}: {detail}")

    def _deliver(self, request: str, body: dict, message: dict,
                 schema: str) -> tuple[str, pnc.ContractDelivery | None, str]:
        if request == "CertificateInstallationReq":
            try:
                signer = pnc.certificate_from_b64(body["OEMProvisioningCert"], "OEMProvisioningCert")
            except pnc.CertificateDataError as exc:
                return "FAILED_CertChainError", None, str(exc)
            # a -2 CertificateInstallationReq carries the OEM provisioning certificate alone: its
            # Sub-CAs come from the CAs the service knows
            chain = [signer, *(c for c in issuers_among(signer, self.authorities) if c.issuer != c.subject)]
            anchors, role = self.oem_roots, Role.OEM_PROVISIONING
        else:
            try:
                chain = pnc.chain_from_json(body["ContractSignatureCertChain"], "ContractSignatureCertChain")
            except pnc.CertificateDataError as exc:
                return "FAILED_CertChainError", None, str(exc)
            signer, anchors, role = chain[0], self.mo_roots, Role.CONTRACT
        verification = verify_message(message, schema, signer)
        if not verification.ok:
            return "FAILED_SignatureError", None, f"{request} signature: {verification}"
        if request == "CertificateUpdateReq":
            emaid = body.get("eMAID")
            if not isinstance(emaid, str) or not same_emaid(pnc.common_name(signer), emaid):
                # the contract the request is signed with is the one to renew, for its own eMAID
                return "FAILED_ContractCanceled", None, (f"eMAID {emaid!r} is not the contract's "
                                                         f"{pnc.common_name(signer)!r}")
        result = validate_chain(chain, anchors, policy=policy_for(Generation.ISO2, role), ocsp=self.ocsp)
        if not result.ok:
            assert result.reason is not None
            code = pnc.CONTRACT_REFUSALS[Generation.ISO2].get(result.reason,
                                                              pnc.CONTRACT_REFUSALS[Generation.ISO2][None])
            return code, None, f"the {role.value} chain: {result}"
        if request == "CertificateInstallationReq":
            delivery = self.deliver("install", oem_chain=[signer], generation=schema)
        else:
            delivery = self.deliver("update", contract_chain=chain, emaid=pnc.common_name(signer), generation=schema)
        if delivery is None:
            return "FAILED_NoCertificateAvailable", None, "no contract to deliver"
        return "OK", delivery, f"contract {delivery.emaid} (serial {delivery.contract_chain[0].serial_number:X})"
