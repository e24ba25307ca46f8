"""Plug & Charge with contracts a charger must refuse: revoked at their OCSP responder, or with a
defect of the PKI catalogue (expired, bad signature, untrusted root, missing Sub-CA, ...).

The EV emulator presents the contract; the charger under test validates it itself or through the
CSMS (OCPP 2.0.1 C07). Whichever it does, it must not let the EV charge: no OK authorization, no
PowerDelivery, no transaction for the eMAID. Each case also puts the expected ISO 15118 response
code (the one that names the defect) beside the one observed, and what the CSMS answered.
"""

from __future__ import annotations

import json

import pytest
from cryptography import x509

from harness.ocpp.contracts import CERTIFICATE_STATUS_FOR
from harness.ocpp.security import security_event_type
from harness.ocpp.versions import PNC_VENDOR_ID, OcppVersion
from harness.pki.faults import CATALOGUE
from harness.pki.profiles import Generation, Role
from harness.pki.signing import SIGNING_FAULTS
from harness.pki.validate import Reason
from harness.v2g.pnc import CONTRACT_REFUSALS

PROTOCOLS = {"iso2": ("iso2", "AC", Generation.ISO2), "iso20": ("iso20-dc", "DC", Generation.ISO20)}
#: every contract defect of the catalogue on each generation; ISO 15118-20 messages carry no eMAID
#: beside the contract certificate (its CN is the eMAID), so "CN is not the eMAID" is -2 only
CONTRACT_FAULTS = [pytest.param(generation, fault, id=f"{fault.id}-{generation}")
                   for fault in CATALOGUE if fault.applies_to(Role.CONTRACT)
                   for generation in PROTOCOLS
                   if not (generation == "iso20" and fault.reason is Reason.COMMON_NAME)]


def _refusal(result) -> str | None:
    codes = result.response_codes()
    return next((codes[m] for m in ("PaymentDetailsRes", "AuthorizationRes") if m in codes
                 and not codes[m].startswith("OK")), None)


def _common_name(certificate: x509.Certificate) -> str:
    return str(certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value)


def _refused_without_charging(rig, csms, reaction, result, emaid: str, mark: float, why: str) -> None:
    """The rule every case checks, put beside what happened."""
    codes = result.response_codes()
    answers = ", ".join(f"{m} {codes[m]}" for m in ("PaymentDetailsRes", "AuthorizationRes") if m in codes)
    refused = _refusal(result) is not None
    charged = "PowerDeliveryReq" in result.names("sent")
    billed = [t for t in csms.transactions(since=mark) if t.id_token == emaid]
    observed = [answers or "no authorization answer"] + (["PowerDelivery"] if charged else []) + (
        [f"transaction {billed[0].transaction_id} for {emaid}"] if billed else [])
    reaction("ISO 15118 + OCPP", "the session", expected="refused: no OK authorization, no PowerDelivery, no transaction",
             observed="; ".join(observed), judged=True, agrees=refused and not charged and not billed)
    assert refused, f"{answers or 'no authorization answer'}: the charger accepted a contract {why}"
    assert not charged, f"the EV was let on to PowerDelivery with a contract {why}"
    assert not billed, f"a transaction started for the eMAID {emaid} of a contract {why}"


def _reactions_to_a_refused_contract(rig, reaction, reason: Reason, generation: Generation, refusal: str | None,
                                     mark: float) -> None:
    """The response code the EV got and the CSMS's answer, each beside the one that names the defect."""
    refusals = CONTRACT_REFUSALS[generation]
    reaction("ISO 15118", "the refusal's response code", expected=refusals.get(reason, refusals[None]),
             observed=refusal or "none", note="ISO 15118-2/-20 name a code per defect; the harness shows the "
                                              "code and does not fail a charger on it (the rule is not quoted)")
    answers = [e.payload["certificate_status"] for e in rig.trace.select(name="ContractVerdict", observer="csms",
                                                                         since=mark)]
    status = CERTIFICATE_STATUS_FOR.get(reason, "CertChainError")
    reaction("OCPP", "Authorize: the CSMS's certificateStatus", expected=f"{status}, or no Authorize (the charger "
             f"refuses on its own)", observed=", ".join(answers) or "no Authorize with the contract",
             agrees=not answers or answers[-1] == status,
             note="C07: the charger asks the CSMS (hash data or the chain) unless it refuses the contract itself")


@pytest.mark.case("V2G-PNC-001")
@pytest.mark.requires("ev", "iso15118", "plug_and_charge")
@pytest.mark.parametrize("generation", list(PROTOCOLS))
def test_a_revoked_contract_does_not_charge(rig, csms, ev, step, reaction, generation):
    protocol, energy, pki_generation = PROTOCOLS[generation]
    contract = ev.contract(protocol)
    emaid = _common_name(contract)
    with step(f"the contract's OCSP responder reports it revoked (serial {contract.serial_number:X})"):
        csms.revoke(contract.serial_number)
    mark = rig.trace.now()
    with step("the EV presents the revoked contract"):
        result = ev.charge(protocol=protocol, energy=energy, identification="PnC", tls=True, cycles=1)
    _reactions_to_a_refused_contract(rig, reaction, Reason.REVOKED, pki_generation, _refusal(result), mark)
    with step("the charger refuses it: no OK authorization, no PowerDelivery, no transaction"):
        _refused_without_charging(rig, csms, reaction, result, emaid, mark, "its OCSP responder reports revoked "
                                  "(OCPP 2.0.1 C07: revocation is checked through the CSMS)")


@pytest.mark.case("V2G-PNC-002")
@pytest.mark.requires("ev", "iso15118", "plug_and_charge")
@pytest.mark.parametrize("generation, fault", CONTRACT_FAULTS)
def test_a_faulty_contract_chain_does_not_charge(rig, csms, ev, step, reaction, generation, fault):
    protocol, energy, pki_generation = PROTOCOLS[generation]
    emaid = _common_name(ev.contract(protocol))
    mark = rig.trace.now()
    with step(f"the EV presents a contract chain with {fault.id}: {fault.description}"):
        result = ev.charge(protocol=protocol, energy=energy, identification="PnC", tls=True, cycles=1,
                           contract_fault=fault.id)
    _reactions_to_a_refused_contract(rig, reaction, fault.reason, pki_generation, _refusal(result), mark)
    with step("the charger refuses it: no OK authorization, no PowerDelivery, no transaction"):
        _refused_without_charging(rig, csms, reaction, result, emaid, mark, f"with {fault.id} ({fault.description})")


def _trigger_secc_renewal(rig, csms, evse, step, mark: float) -> tuple[bool, object]:
    """TriggerMessage SignV2GCertificate, then the charger's CSR and the CSMS's signing; the
    CSMS's CertificateRequestSigned note."""
    v16 = evse.version is OcppVersion.V16
    with step("the CSMS asks for a new SECC certificate (TriggerMessage SignV2GCertificate)"):
        if v16:
            answer = csms.call("DataTransfer", {"vendorId": PNC_VENDOR_ID, "messageId": "TriggerMessage",
                                                "data": json.dumps({"requestedMessage": "SignV2GCertificate"})})
            status = json.loads(answer.get("data") or "{}").get("status") if answer["status"] == "Accepted" else None
        else:
            status = csms.call("TriggerMessage", {"requestedMessage": "SignV2GCertificate"})["status"]
        assert status == "Accepted", f"TriggerMessage SignV2GCertificate answered {status} (OCPP 2.0.1 A02, F06)"
    with step("the charger sends a certificate signing request the CSMS signs"):
        if v16:
            csms.wait_for_message("DataTransfer", since=mark, timeout=rig.scaled(60) + 5,
                                  where=lambda p: p.get("messageId") == "SignCertificate")
        else:
            csms.wait_for_message("SignCertificate", since=mark, timeout=rig.scaled(60) + 5,
                                  where=lambda p: p.get("certificateType") == "V2GCertificate")
        refused = rig.trace.select(name="CertificateRequestRefused", observer="csms", since=mark)
        assert not refused, f"the CSMS could not sign the charger's CSR: {refused[0].payload['reason']}"
        return v16, rig.trace.wait_for(10, name="CertificateRequestSigned", observer="csms", since=mark)


def _certificate_signed_status(rig, v16: bool, mark: float) -> str | None:
    answer = _answer_to_csms_call(rig, "DataTransfer" if v16 else "CertificateSigned", mark, rig.scaled(60) + 5,
                                  lambda p: not v16 or p.get("messageId") == "CertificateSigned")
    return json.loads(answer.get("data") or "{}").get("status") if v16 else answer.get("status")


def _secc_serial_shown(result) -> str | None:
    connected = [e for e in result.events if e.name == "TcpConnected" and e.observer == "ev"]
    return connected[0].payload["secc_certificate"]["serial"] if connected else None


@pytest.mark.case("V2G-PNC-003")
@pytest.mark.requires("ev", "iso15118", "plug_and_charge")
def test_the_charger_renews_its_secc_certificate_through_the_csms(rig, csms, evse, ev, step):
    no_signer, _ = csms.plug_and_charge_backend()
    if no_signer:
        pytest.skip(no_signer)
    mark = rig.trace.now()
    v16, signed = _trigger_secc_renewal(rig, csms, evse, step, mark)
    with step(f"the charger accepts the signed chain (serial {signed.payload['serial']})"):
        status = _certificate_signed_status(rig, v16, mark)
        assert status == "Accepted", f"CertificateSigned with a chain of the run's V2G PKI answered {status}"
    with step("the next EV is shown the new certificate in the TLS handshake"):
        result = ev.charge(protocol="iso2", energy="AC", identification="PnC", tls=True, cycles=1)
        shown = _secc_serial_shown(result)
        assert shown == signed.payload["serial"], (
            f"the SECC presented serial {shown or 'nothing'}, not the certificate it accepted "
            f"(serial {signed.payload['serial']})")
        assert result.ok, result.outcome.reason


@pytest.mark.case("V2G-PNC-004")
@pytest.mark.requires("ev", "iso15118", "plug_and_charge")
@pytest.mark.parametrize("fault", list(SIGNING_FAULTS))
def test_the_charger_refuses_a_faulty_secc_certificate_from_the_csms(rig, csms, evse, ev, step, reaction, fault):
    event_type = security_event_type("station_certificate", v16=evse.version is OcppVersion.V16)
    before = _secc_serial_shown(ev.charge(protocol="iso2", energy="AC", identification="PnC", tls=True, cycles=1))
    csms.sign_faultily(fault)
    mark = rig.trace.now()
    v16, signed = _trigger_secc_renewal(rig, csms, evse, step, mark)
    with step(f"the CSMS sends a chain in which {SIGNING_FAULTS[fault]}; the charger answers Rejected"):
        status = _certificate_signed_status(rig, v16, mark)
        reaction("OCPP", "CertificateSigned status", expected="Rejected", observed=str(status), judged=True)
        assert status == "Rejected", (
            f"CertificateSigned answered {status} for a chain in which {SIGNING_FAULTS[fault]} (OCPP 2.0.1 A02: the "
            f"station checks validity period, certificate properties and hierarchy, and rejects what fails)")
    with step(f"the charger reports the security event {event_type}"):
        csms.expect_security_event(event_type, since=mark, timeout=rig.scaled(60) + 5, reaction=reaction)
    with step("the next EV is still shown the certificate the charger had before"):
        result = ev.charge(protocol="iso2", energy="AC", identification="PnC", tls=True, cycles=1)
        shown = _secc_serial_shown(result)
        reaction("ISO 15118", "SECC certificate in the next TLS handshake", expected=f"serial {before} (kept)",
                 observed=f"serial {shown}", judged=True, agrees=shown == before)
        assert shown != signed.payload["serial"], f"the SECC presents the faulty certificate (serial {shown})"
        assert shown == before, f"the SECC presented serial {shown}, before the faulty chain it presented {before}"
        assert result.ok, result.outcome.reason


def _answer_to_csms_call(rig, action: str, since: float, timeout: float, match) -> dict:
    """The EVSE's CALLRESULT payload to the CSMS's CALL ``action`` whose payload ``match`` accepts."""
    call = rig.trace.wait_for(timeout, layer="ocpp", name=action, observer="csms", src="csms", since=since,
                              where=lambda e: e.payload.get("type") == "CALL" and match(e.payload.get("payload") or {}))
    result = rig.trace.wait_for(timeout, layer="ocpp", name=action, observer="csms", since=since,
                                where=lambda e: e.payload.get("type") in ("CALLRESULT", "CALLERROR")
                                and e.payload.get("message_id") == call.payload["message_id"])
    assert result.payload["type"] == "CALLRESULT", f"{action} answered with {result.payload.get('error')}"
    return result.payload.get("payload") or {}
