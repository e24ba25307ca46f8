"""ISO 15118-2 sessions between the EV emulator's EVCC and the reference SECC, over real TCP/TLS."""

from __future__ import annotations

import pytest

from harness import exi
from harness.v2g import messages
from harness.v2g.credentials import V2gMaterial
from harness.v2g.equipment import EvseCapabilities
from harness.v2g.vehicle import ChargePlan
from tests.v2g.pair import MAC, start_pair, vehicle

AC_EIM = ["supportedAppProtocolReq", "supportedAppProtocolRes", "SessionSetupReq", "SessionSetupRes",
          "ServiceDiscoveryReq", "ServiceDiscoveryRes", "PaymentServiceSelectionReq", "PaymentServiceSelectionRes",
          "AuthorizationReq", "AuthorizationRes", "ChargeParameterDiscoveryReq", "ChargeParameterDiscoveryRes",
          "PowerDeliveryReq", "PowerDeliveryRes"] + ["ChargingStatusReq", "ChargingStatusRes"] * 3 + [
          "PowerDeliveryReq", "PowerDeliveryRes", "SessionStopReq", "SessionStopRes"]


def _messages(recorder, observer):
    return [e for e in recorder.select(layer="v2g", observer=observer) if e.payload and "message" in e.payload]


def test_ac_eim_session_runs_to_session_stop(run):
    async def scenario():
        pair = await start_pair()
        try:
            outcome = await pair.charge(vehicle(ChargePlan(protocols=("iso2",), energy="AC", cycles=3)))
        finally:
            await pair.close()
        return pair, outcome

    pair, outcome = run(scenario())
    assert outcome.ok and outcome.protocol == "iso2" and outcome.reason == "session terminated"
    assert [e.name for e in _messages(pair.recorder, "ev")] == AC_EIM
    assert [e.name for e in _messages(pair.recorder, "evse")] == AC_EIM
    assert pair.secc.outcomes[-1].ok
    assert pair.port.session.evccid == "0A1B2C3D4E5F" and pair.port.session.ended == "Terminate"


def test_every_message_is_on_the_timeline_with_its_keys_and_exact_bytes(run):
    async def scenario():
        pair = await start_pair()
        try:
            await pair.charge(vehicle(ChargePlan(protocols=("iso2",), energy="DC", cycles=2)))
        finally:
            await pair.close()
        return pair

    pair = run(scenario())
    events = _messages(pair.recorder, "ev")
    session_id = pair.secc.outcomes[-1].session_id
    for event in events:
        payload = event.payload
        data = bytes.fromhex(payload["exi"])
        decoded = exi.decode(data, payload["schema"])
        assert decoded == payload["message"]
        assert exi.encode(decoded, payload["schema"]) == data  # byte for byte
        assert event.src in ("ev", "evse") and event.dst in ("ev", "evse") and event.src != event.dst
        if event.name not in ("supportedAppProtocolReq", "supportedAppProtocolRes", "SessionSetupReq"):
            assert event.keys["session_id"] == session_id, event.name
        assert event.keys.get("evccid") == "0A1B2C3D4E5F" or event.name.startswith("supported")


def test_dc_eim_session_checks_the_cable_precharges_and_detects_welding(run):
    caps = EvseCapabilities(cable_check_rounds=3)

    async def scenario():
        pair = await start_pair(capabilities=caps)
        try:
            outcome = await pair.charge(vehicle(ChargePlan(protocols=("iso2",), energy="DC", cycles=4)))
        finally:
            await pair.close()
        return pair, outcome

    pair, outcome = run(scenario())
    assert outcome.ok
    names = [e.name for e in _messages(pair.recorder, "ev") if e.src == "ev"]
    assert names.count("CableCheckReq") == 3  # Ongoing twice, then Finished
    assert names.count("CurrentDemandReq") == 4
    assert names[-3:] == ["PowerDeliveryReq", "WeldingDetectionReq", "SessionStopReq"]
    assert pair.port.line.read().imported_wh > 0  # the DC stage delivered energy


def test_an_ongoing_authorization_is_repeated_until_finished(run):
    async def scenario():
        pair = await start_pair(ongoing_rounds=2)
        try:
            return await pair.charge(vehicle(ChargePlan(protocols=("iso2",), cycles=1))), pair
        finally:
            await pair.close()

    outcome, pair = run(scenario())
    assert outcome.ok
    responses = [e.payload["message"]["V2G_Message"]["Body"]["AuthorizationRes"]["EVSEProcessing"]
                 for e in _messages(pair.recorder, "ev") if e.name == "AuthorizationRes"]
    assert responses == ["Ongoing", "Ongoing", "Finished"]


def test_pause_then_resume_joins_the_old_session(run):
    async def scenario():
        pair = await start_pair()
        try:
            first = await pair.charge(vehicle(ChargePlan(protocols=("iso2",), cycles=1, pause=True)))
            second = await pair.charge(vehicle(ChargePlan(protocols=("iso2",), cycles=1)),
                                       resume_session_id=first.session_id)
        finally:
            await pair.close()
        return pair, first, second

    pair, first, second = run(scenario())
    assert first.ok and first.paused
    assert second.ok and second.session_id == first.session_id
    setups = [e.payload["message"]["V2G_Message"]["Body"]["SessionSetupRes"]["ResponseCode"]
              for e in _messages(pair.recorder, "ev") if e.name == "SessionSetupRes"]
    assert setups == ["OK_NewSessionEstablished", "OK_OldSessionJoined"]


def test_renegotiation_asked_by_the_evse(run):
    async def scenario():
        pair = await start_pair()
        pair.port.pending_notification = "ReNegotiation"
        try:
            return await pair.charge(vehicle(ChargePlan(protocols=("iso2",), cycles=3))), pair
        finally:
            await pair.close()

    outcome, pair = run(scenario())
    assert outcome.ok
    sent = [e.name for e in _messages(pair.recorder, "ev") if e.src == "ev"]
    progress = [e.payload["message"]["V2G_Message"]["Body"]["PowerDeliveryReq"]["ChargeProgress"]
                for e in _messages(pair.recorder, "ev") if e.name == "PowerDeliveryReq" and e.src == "ev"]
    assert progress == ["Start", "Renegotiate", "Start", "Stop"]
    assert sent.count("ChargeParameterDiscoveryReq") == 2


def test_stop_charging_from_the_evse_ends_the_loop(run):
    async def scenario():
        pair = await start_pair()
        pair.port.pending_notification = "StopCharging"
        try:
            return await pair.charge(vehicle(ChargePlan(protocols=("iso2",), cycles=10))), pair
        finally:
            await pair.close()

    outcome, pair = run(scenario())
    assert outcome.ok
    sent = [e.name for e in _messages(pair.recorder, "ev") if e.src == "ev"]
    assert sent.count("ChargingStatusReq") == 1


@pytest.mark.parametrize("energy", ["AC", "DC"])
def test_plug_and_charge_over_tls(run, material: V2gMaterial, energy):
    ev = vehicle(ChargePlan(protocols=("iso2",), energy=energy, identification="PnC", cycles=2))
    ev.credentials = material.ev_credentials("iso2")

    async def scenario():
        pair = await start_pair(material=material, mo_roots=material.mo_roots("iso2"))
        try:
            return await pair.charge(ev, tls=True), pair
        finally:
            await pair.close()

    outcome, pair = run(scenario())
    assert outcome.ok, outcome.reason
    names = [e.name for e in _messages(pair.recorder, "ev") if e.src == "ev"]
    assert "PaymentDetailsReq" in names and "AuthorizationReq" in names
    assert pair.port.session.authorized.startswith("PnC:")
    connected = pair.recorder.first(name="TcpConnected", observer="ev")
    assert connected.payload["tls"] == "TLSv1.2"


def test_certificate_installation_gives_the_ev_a_contract(run, material: V2gMaterial):
    ev = vehicle(ChargePlan(protocols=("iso2",), identification="PnC", cycles=1, certificate="install"))
    ev.credentials = material.ev_credentials("iso2", contract=False)

    async def scenario():
        pair = await start_pair(material=material, mo_roots=material.mo_roots("iso2"))
        try:
            return await pair.charge(ev, tls=True), pair
        finally:
            await pair.close()

    outcome, pair = run(scenario())
    assert outcome.ok, outcome.reason
    assert ev.credentials.contract_chain and ev.credentials.contract_key is not None
    names = [e.name for e in _messages(pair.recorder, "ev") if e.src == "ev"]
    assert names[names.index("PaymentServiceSelectionReq") + 1] == "CertificateInstallationReq"


def test_metering_receipts_when_the_evse_asks_for_them(run, material: V2gMaterial):
    ev = vehicle(ChargePlan(protocols=("iso2",), identification="PnC", cycles=4))
    ev.credentials = material.ev_credentials("iso2")

    async def scenario():
        pair = await start_pair(capabilities=EvseCapabilities(receipt_every=2), material=material)
        try:
            return await pair.charge(ev, tls=True), pair
        finally:
            await pair.close()

    outcome, pair = run(scenario())
    assert outcome.ok, outcome.reason
    responses = [e.payload["message"]["V2G_Message"]["Body"]["MeteringReceiptRes"]["ResponseCode"]
                 for e in _messages(pair.recorder, "ev") if e.name == "MeteringReceiptRes"]
    assert responses == ["OK", "OK"]


def test_din_dc_session_runs_to_session_stop(run):
    async def scenario():
        pair = await start_pair(capabilities=EvseCapabilities(cable_check_rounds=2))
        try:
            return await pair.charge(vehicle(ChargePlan(protocols=("din",), energy="DC", cycles=3))), pair
        finally:
            await pair.close()

    outcome, pair = run(scenario())
    assert outcome.ok and outcome.protocol == "din", outcome.reason
    sent = [e.name for e in _messages(pair.recorder, "ev") if e.src == "ev"]
    assert sent == ["supportedAppProtocolReq", "SessionSetupReq", "ServiceDiscoveryReq", "ServicePaymentSelectionReq",
                    "ContractAuthenticationReq", "ChargeParameterDiscoveryReq", "CableCheckReq", "CableCheckReq",
                    "PreChargeReq", "PowerDeliveryReq", "CurrentDemandReq", "CurrentDemandReq", "CurrentDemandReq",
                    "PowerDeliveryReq", "WeldingDetectionReq", "SessionStopReq"]
    assert pair.port.line.read().imported_wh > 0


def test_certificate_update_renews_the_contract(run, material: V2gMaterial):
    ev = vehicle(ChargePlan(protocols=("iso2",), identification="PnC", cycles=1, certificate="update"))
    ev.credentials = material.ev_credentials("iso2")
    old_leaf = ev.credentials.contract_chain[0]

    async def scenario():
        pair = await start_pair(material=material, mo_roots=material.mo_roots("iso2"))
        try:
            return await pair.charge(ev, tls=True), pair
        finally:
            await pair.close()

    outcome, pair = run(scenario())
    assert outcome.ok, outcome.reason
    assert ev.credentials.contract_chain[0] != old_leaf
    sent = [e.name for e in _messages(pair.recorder, "ev") if e.src == "ev"]
    assert sent[sent.index("PaymentServiceSelectionReq") + 1] == "CertificateUpdateReq"


def test_a_reordered_request_is_held_back_and_the_ev_times_out(run):
    from harness.v2g import faults
    from harness.v2g.faults import FaultPlan

    async def scenario():
        pair = await start_pair()
        try:
            return await pair.charge(vehicle(ChargePlan(protocols=("iso2",), cycles=1)),
                                     faults=FaultPlan([faults.reorder("ServiceDiscoveryReq")])), pair
        finally:
            await pair.close()

    outcome, pair = run(scenario())
    assert not outcome.ok and "V2G_EVCC_Msg_Timeout" in outcome.reason
    assert pair.recorder.first(name="FaultReorder", observer="ev") is not None


@pytest.mark.parametrize("offered", [("iso20-ac", "iso2", "din"), ("iso20-dc", "din")], ids=["to-iso2", "to-din"])
def test_the_evccid_follows_the_protocol_the_secc_chose(run, offered):
    """An EV that prefers -20 meets a charger that offers only -2 and DIN: the session runs in the
    protocol chosen, and its EVCCID is the EV's MAC ([V2G2-879]), not the -20 identifier
    ([V2G20-1062]) it would have sent in a -20 session."""
    energy = "DC" if "iso20-dc" in offered else "AC"
    ev = vehicle(ChargePlan(protocols=offered, energy=energy, cycles=2))
    caps = EvseCapabilities(protocols=("iso2", "din"))
    expected = "iso2" if "iso2" in offered else "din"

    async def scenario():
        pair = await start_pair(capabilities=caps)
        try:
            return pair, await pair.charge(ev)
        finally:
            await pair.close()

    pair, outcome = run(scenario())
    assert outcome.ok and outcome.protocol == expected, outcome.reason
    setup = next(e for e in pair.recorder.select(layer="v2g", observer="ev", name="SessionSetupReq"))
    assert messages.body_of(setup.payload["message"])["EVCCID"] == MAC
    assert pair.port.session.evccid == MAC


@pytest.fixture(scope="module")
def foreign(tmp_path_factory):
    """A second, unrelated PKI: its MO Sub-CAs chain to an MO root the charger does not trust."""
    from tests.v2g.pair import generated_material

    return generated_material(tmp_path_factory.mktemp("foreign-pki"))


def _pnc(run, material, credentials, **port_options):
    ev = vehicle(ChargePlan(protocols=("iso2",), energy="AC", identification="PnC", cycles=2))
    ev.credentials = credentials

    async def scenario():
        pair = await start_pair(material=material, **port_options)
        try:
            return await pair.charge(ev, tls=True), pair
        finally:
            await pair.close()

    return run(scenario())


def test_a_contract_chain_from_a_foreign_mo_is_refused(run, material: V2gMaterial, foreign: V2gMaterial):
    """The contract chain's Sub-CAs chain to an MO root the SECC does not have: PaymentDetailsRes
    FAILED_CertChainError, and the timeline says who validated it and why it failed."""
    mixed = material.ev_credentials("iso2")
    mixed.contract_chain = foreign.ev_credentials("iso2").contract_chain
    mixed.contract_key = foreign.ev_credentials("iso2").contract_key
    mixed.emaid = foreign.ev_credentials("iso2").emaid
    outcome, pair = _pnc(run, material, mixed)
    assert outcome.response_code == "FAILED_CertChainError"
    refused = pair.recorder.last(name="ContractRefused", observer="evse")
    assert refused.payload["checked_by"].startswith("the SECC, against 2 MO root(s)")
    assert "untrusted-root" in refused.payload["detail"]


def test_a_contract_nobody_can_validate_is_refused(run, material: V2gMaterial):
    """No MO roots at the charger and no backend that validates: the SECC does not take the
    chain on trust (only its expiry date used to be checked)."""
    outcome, pair = _pnc(run, material, material.ev_credentials("iso2"), mo_roots=[])
    assert outcome.response_code == "FAILED_CertChainError"
    refused = pair.recorder.last(name="ContractRefused", observer="evse")
    assert refused.payload["checked_by"] == "nobody" and "no MO root certificate" in refused.summary


def test_an_accepted_contract_says_who_validated_it(run, material: V2gMaterial):
    outcome, pair = _pnc(run, material, material.ev_credentials("iso2"))
    assert outcome.ok, outcome.reason
    accepted = pair.recorder.last(name="ContractAccepted", observer="evse")
    assert "validated by the SECC, against 2 MO root(s)" in accepted.summary


def test_the_ev_presents_the_contract_of_the_generation_the_secc_chose(run, material: V2gMaterial):
    """An EV with a -20 and a -2 contract meets a charger that chose -2: it presents the -2
    contract (secp256r1), which the charger validates against its -2 MO root."""
    ev = vehicle(ChargePlan(protocols=("iso20-ac", "iso2"), energy="AC", identification="PnC", cycles=2))
    ev.wallet = {"iso20": material.ev_credentials("iso20"), "iso2": material.ev_credentials("iso2")}
    ev.credentials = ev.wallet["iso20"]

    async def scenario():
        pair = await start_pair(material=material, capabilities=EvseCapabilities(protocols=("iso2",)))
        try:
            return await pair.charge(ev, tls=True), pair
        finally:
            await pair.close()

    outcome, pair = run(scenario())
    assert outcome.ok and outcome.protocol == "iso2", outcome.reason
    assert ev.credentials is ev.wallet["iso2"]
    assert pair.recorder.last(name="ContractAccepted", observer="evse") is not None
