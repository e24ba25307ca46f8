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

For ISO 15118-20 (``urn:iso:std:iso:15118:-20:CommonMessages``, Install only: -20 has no
CertificateUpdate): the OEMProvisioningCertificateChain element is signed with its leaf's key and
must chain to a known OEM root by the -20 rules; the response's SignedInstallationData carries
the contract chain, the ephemeral secp521r1 key and the contract key sealed with AES-GCM
(harness.pki.contract_key, whose -20 key derivation is an assumption named there), signed with
the -20 CPS key. Refusals use the -20 codes (FAILED_SignatureError, WARNING_CertificateExpired,
WARNING_CertificateValidationError, WARNING_NoCertificateAvailable...).
"""

from __future__ import annotations

import base64
import binascii
import time
from dataclasses import dataclass
from typing import Callable, Sequence

from cryptography import x509

from harness import exi
from harness.pki.profiles import Generation, Role, same_emaid
from harness.pki.validate import OcspCheck, issuers_among, policy_for, validate_chain
from harness.pki.xmldsig import sign_message, verify_message
from harness.v2g import messages, pnc

#: the ISO 15118 schema versions this service provisions, and the harness's schema key
SCHEMA_VERSIONS = {namespace: generation for generation, namespace in pnc.PROVISIONING_NAMESPACES.items()}
#: OCPP's action -> the request it carries, per generation (-20 has no CertificateUpdate)
REQUESTS = {"iso2": {"Install": "CertificateInstallationReq", "Update": "CertificateUpdateReq"},
            "iso20": {"Install": "CertificateInstallationReq"}}
GENERATIONS = {"iso2": Generation.ISO2, "iso20": Generation.ISO20}

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
        expected = REQUESTS[schema].get(action)
        if expected is None:
            return ProvisioningAnswer("Failed", None, f"action {action!r} is not one of {', '.join(REQUESTS[schema])} "
                                                      f"for {schema_version}")
        try:
            data = base64.b64decode(exi_request, validate=True)
            message = exi.decode(data, schema)
        except (binascii.Error, ValueError) as exc:
            return ProvisioningAnswer("Failed", None, f"exiRequest is not a base64 EXI {expected} ({exc})")
        name = messages.name_of(message)
        if name != expected:
            return ProvisioningAnswer("Failed", None, f"exiRequest holds {name}, not the {expected} of {action}")
        body = messages.body_of(message)
        session_id = messages.session_id_of(message) or ""
        code, delivery, detail = self._deliver(expected, body, message, schema)
        answer_name = expected.replace("Req", "Res")
        if delivery is None:
            response_body = {"ResponseCode": code,
                             **(pnc.empty_delivery_iso20() if schema == "iso20" else pnc.empty_delivery())}
            if expected == "CertificateUpdateReq":
                response_body["RetryCounter"] = 0
            response = messages.wrap(schema, answer_name, response_body, session_id, timestamp=int(time.time()))
        else:
            body_out = pnc.delivery_body_iso20(delivery) if schema == "iso20" else pnc.delivery_body(delivery, expected)
            response = sign_message(messages.wrap(schema, answer_name, body_out, session_id, timestamp=int(time.time())),
                                    messages.schema_of(schema, answer_name), delivery.cps_key)
        encoded = exi.encode(response, messages.schema_of(schema, answer_name))
        return ProvisioningAnswer("Accepted", base64.b64encode(encoded).decode(), f"{code}: {detail}")

    def _deliver(self, request: str, body: dict, message: dict,
                 schema: str) -> tuple[str, pnc.ContractDelivery | None, str]:
        if schema == "iso20":
            return self._deliver_iso20(body, message)
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

    def _deliver_iso20(self, body: dict, message: dict) -> tuple[str, pnc.ContractDelivery | None, str]:
        """-20 CertificateInstallationReq: the OEMProvisioningCertificateChain (signed by the EV with
        its leaf's key, the Sub-CAs beside it) must chain to a known OEM root with the -20 rules;
        refusals use the -20 codes (FAILED_SignatureError, WARNING_Certificate*)."""
        refusals = pnc.CONTRACT_REFUSALS[Generation.ISO20]
        try:
            chain = pnc.chain_from_json(body["OEMProvisioningCertificateChain"], "OEMProvisioningCertificateChain")
        except pnc.CertificateDataError as exc:
            return refusals[None], None, str(exc)
        verification = verify_message(message, "iso20", chain[0])
        if not verification.ok:
            return "FAILED_SignatureError", None, f"CertificateInstallationReq signature: {verification}"
        result = validate_chain(chain, self.oem_roots, policy=policy_for(Generation.ISO20, Role.OEM_PROVISIONING),
                                ocsp=self.ocsp)
        if not result.ok:
            assert result.reason is not None
            return refusals.get(result.reason, refusals[None]), None, f"the OEM provisioning chain: {result}"
        delivery = self.deliver("install", oem_chain=chain, generation="iso20")
        if delivery is None:
            return "WARNING_NoCertificateAvailable", None, "no -20 contract to deliver"
        return "OK", delivery, f"contract {delivery.emaid} (serial {delivery.contract_chain[0].serial_number:X})"
