"""Plug & Charge with contracts a charger must refuse: revoked at their OCSP responder, or with a
defect of the PKI catalogue (expired, bad signature, untrusted root, missing Sub-CA, ...).

The EV emulator presents the contract; the charger under test validates it itself or through the
CSMS (OCPP 2.0.1 C07). Whichever it does, it must not let the EV charge: no OK authorization, no
PowerDelivery, no transaction for the eMAID. Each case also puts the expected ISO 15118 response
code (the one that names the defect) beside the one observed, and what the CSMS answered.
"""

from __future__ import annotations

import pytest
from cryptography import x509

from harness.pki.faults import CATALOGUE
from harness.pki.profiles import Generation, Role
from harness.pki.validate import Reason
from harness.v2g.pnc import CONTRACT_REFUSALS

PROTOCOLS = {"iso2": ("iso2", "AC", Generation.ISO2), "iso20": ("iso20-dc", "DC", Generation.ISO20)}
#: every contract defect of the catalogue on each generation; ISO 15118-20 messages carry no eMAID
#: beside the contract certificate (its CN is the eMAID), so "CN is not the eMAID" is -2 only
CONTRACT_FAULTS = [pytest.param(generation, fault, id=f"{fault.id}-{generation}")
                   for fault in CATALOGUE if fault.applies_to(Role.CONTRACT)
                   for generation in PROTOCOLS
                   if not (generation == "iso20" and fault.reason is Reason.COMMON_NAME)]


def _common_name(certificate: x509.Certificate) -> str:
    return str(certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value)


def _refused_without_charging(rig, csms, result, emaid: str, mark: float, why: str) -> str:
    """The rule every case checks; returns the refusal code the EV got."""
    codes = result.response_codes()
    checked = [m for m in ("PaymentDetailsRes", "AuthorizationRes") if m in codes]
    refusal = next((codes[m] for m in checked if not codes[m].startswith("OK")), None)
    assert refusal is not None, (
        f"{', '.join(f'{m} {codes[m]}' for m in checked) or 'no authorization answer'}: the charger accepted "
        f"a contract {why}")
    assert "PowerDeliveryReq" not in result.names("sent"), f"the EV was let on to PowerDelivery with a contract {why}"
    assert not [t for t in csms.transactions(since=mark) if t.id_token == emaid], \
        f"a transaction started for the eMAID {emaid} of a contract {why}"
    return refusal


def _csms_answers(rig, mark: float) -> list[str]:
    return [e.payload["certificate_status"] for e in rig.trace.select(name="ContractVerdict", observer="csms",
                                                                       since=mark)]


@pytest.mark.case("V2G-PNC-001")
@pytest.mark.requires("ev", "iso15118", "plug_and_charge")
@pytest.mark.parametrize("generation", list(PROTOCOLS))
def test_a_revoked_contract_does_not_charge(rig, csms, ev, step, generation):
    protocol, energy, pki_generation = PROTOCOLS[generation]
    contract = ev.contract(protocol)
    emaid = _common_name(contract)
    with step(f"the contract's OCSP responder reports it revoked (serial {contract.serial_number:X})"):
        csms.revoke(contract.serial_number)
    mark = rig.trace.now()
    with step("the EV presents the revoked contract"):
        result = ev.charge(protocol=protocol, energy=energy, identification="PnC", tls=True, cycles=1)
    with step("the charger refuses it: no OK authorization, no PowerDelivery, no transaction"):
        refusal = _refused_without_charging(rig, csms, result, emaid, mark, "its OCSP responder reports revoked "
                                            "(OCPP 2.0.1 C07: revocation is checked through the CSMS)")
    expected = CONTRACT_REFUSALS[pki_generation][Reason.REVOKED]
    with step(f"expected {expected}; observed {refusal}; the CSMS answered {_csms_answers(rig, mark) or 'nothing'}"):
        pass


@pytest.mark.case("V2G-PNC-002")
@pytest.mark.requires("ev", "iso15118", "plug_and_charge")
@pytest.mark.parametrize("generation, fault", CONTRACT_FAULTS)
def test_a_faulty_contract_chain_does_not_charge(rig, csms, ev, step, generation, fault):
    protocol, energy, pki_generation = PROTOCOLS[generation]
    emaid = _common_name(ev.contract(protocol))
    mark = rig.trace.now()
    with step(f"the EV presents a contract chain with {fault.id}: {fault.description}"):
        result = ev.charge(protocol=protocol, energy=energy, identification="PnC", tls=True, cycles=1,
                           contract_fault=fault.id)
    with step("the charger refuses it: no OK authorization, no PowerDelivery, no transaction"):
        refusal = _refused_without_charging(rig, csms, result, emaid, mark, f"with {fault.id} ({fault.description})")
    refusals = CONTRACT_REFUSALS[pki_generation]
    expected = refusals.get(fault.reason, refusals[None])
    with step(f"expected {expected}; observed {refusal}; the CSMS answered {_csms_answers(rig, mark) or 'nothing'}"):
        pass
