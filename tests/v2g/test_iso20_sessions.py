"""ISO 15118-20 sessions (TLS 1.3, mutual authentication) between the EVCC and the reference SECC."""

from __future__ import annotations

import pytest

from harness.v2g.credentials import V2gMaterial
from harness.v2g.vehicle import ChargePlan
from tests.v2g.pair import VIN, start_pair, vehicle


def _messages(recorder, observer="ev"):
    return [e for e in recorder.select(layer="v2g", observer=observer) if e.payload and "message" in e.payload]


def _run(run, material, plan, *, faults=None, **pair_options):
    ev = vehicle(plan)
    if plan.identification == "PnC":
        ev.credentials = material.ev_credentials("iso20")

    async def scenario():
        pair = await start_pair(material=material, **pair_options)
        try:
            return await pair.charge(ev, tls=True, faults=faults), pair, ev
        finally:
            await pair.close()

    return run(scenario())


def _power_deliveries(recorder):
    return [e.payload["message"]["PowerDeliveryReq"]
            for e in _messages(recorder) if e.name == "PowerDeliveryReq" and e.src == "ev"]


@pytest.mark.parametrize("control", ["scheduled", "dynamic"])
@pytest.mark.parametrize("energy", ["AC", "DC_BPT"])
def test_the_ev_announces_its_power_profile_in_every_control_mode(run, material: V2gMaterial, control, energy):
    """[V2G20-1546]: EVPowerProfile with ChargeProgress Start, Standby and Stop in all control modes,
    in scheduled mode with the ScheduleTupleID; dynamic mode uses its own arm of the profile."""
    protocol = "iso20-dc" if energy.startswith("DC") else "iso20-ac"
    plan = ChargePlan(protocols=(protocol,), energy=energy, control=control, cycles=2)
    outcome, pair, _ = _run(run, material, plan)
    assert outcome.ok, outcome.reason
    sent = [d for d in _power_deliveries(pair.recorder) if d["EVProcessing"] == "Finished"]
    assert [d["ChargeProgress"] for d in sent] == ["Start", "Stop"]
    for delivery in sent:
        profile = delivery["EVPowerProfile"]
        entries = profile["EVPowerProfileEntries"]["EVPowerProfileEntry"]
        assert entries and all(entry["Duration"] > 0 for entry in entries)
        if control == "scheduled":
            assert "Dynamic_EVPPTControlMode" not in profile
            assert profile["Scheduled_EVPPTControlMode"]["SelectedScheduleTupleID"] >= 1
        else:
            assert profile["Dynamic_EVPPTControlMode"] == {} and "Scheduled_EVPPTControlMode" not in profile
    start_power = sent[0]["EVPowerProfile"]["EVPowerProfileEntries"]["EVPowerProfileEntry"][0]["Power"]
    assert start_power["Value"] > 0
    assert not pair.recorder.select(name="EVPowerProfileInvalid")


@pytest.mark.parametrize("control", ["scheduled", "dynamic"])
def test_the_secc_refuses_a_start_without_the_power_profile(run, material: V2gMaterial, control):
    from harness.v2g.faults import REMOVE, FaultPlan, replace

    plan = ChargePlan(protocols=("iso20-ac",), energy="AC", control=control, cycles=2)
    leave_out = FaultPlan([replace("PowerDeliveryReq", "PowerDeliveryReq.EVPowerProfile", REMOVE)])
    outcome, pair, _ = _run(run, material, plan, faults=leave_out)
    assert not outcome.ok and outcome.response_code == "FAILED_EVPowerProfileInvalid"
    refusal = pair.recorder.last(name="EVPowerProfileInvalid", observer="evse")
    assert refusal is not None and "[V2G20-1546]" in refusal.summary


def test_the_secc_refuses_the_profile_of_the_other_control_mode(run, material: V2gMaterial):
    from harness.v2g.faults import FaultPlan, replace

    plan = ChargePlan(protocols=("iso20-ac",), energy="AC", control="scheduled", cycles=2)
    wrong_arm = FaultPlan([replace("PowerDeliveryReq", "PowerDeliveryReq.EVPowerProfile", {
        "TimeAnchor": 0, "Dynamic_EVPPTControlMode": {},
        "EVPowerProfileEntries": {"EVPowerProfileEntry": [{"Duration": 60, "Power": {"Exponent": 3, "Value": 11}}]}})])
    outcome, pair, _ = _run(run, material, plan, faults=wrong_arm)
    assert outcome.response_code == "FAILED_EVPowerProfileInvalid"
    assert "without Scheduled_EVPPTControlMode" in pair.recorder.last(name="EVPowerProfileInvalid").summary


def test_a_stop_without_the_power_profile_is_answered_and_noted(run, material: V2gMaterial):
    from harness.v2g.faults import REMOVE, FaultPlan, replace

    plan = ChargePlan(protocols=("iso20-ac",), energy="AC", control="dynamic", cycles=2)
    # the second PowerDeliveryReq is the Stop
    leave_out = FaultPlan([replace("PowerDeliveryReq", "PowerDeliveryReq.EVPowerProfile", REMOVE, occurrence=2)])
    outcome, pair, _ = _run(run, material, plan, faults=leave_out)
    assert outcome.ok, outcome.reason
    noted = pair.recorder.last(name="EVPowerProfileInvalid", observer="evse")
    assert noted is not None and "PowerDeliveryReq(Stop)" in noted.summary


@pytest.mark.parametrize("energy", ["AC", "DC", "AC_BPT", "DC_BPT"])
@pytest.mark.parametrize("control", ["scheduled", "dynamic"])
def test_full_session_per_energy_mode_and_control_mode(run, material: V2gMaterial, energy, control):
    protocol = "iso20-dc" if energy.startswith("DC") else "iso20-ac"
    plan = ChargePlan(protocols=(protocol,), energy=energy, control=control, cycles=3)
    outcome, pair, ev = _run(run, material, plan)
    assert outcome.ok, outcome.reason
    assert outcome.protocol == protocol
    sent = [e.name for e in _messages(pair.recorder) if e.src == "ev"]
    loop = "DC_ChargeLoopReq" if energy.startswith("DC") else "AC_ChargeLoopReq"
    assert sent.count(loop) == 3
    assert sent[-1] == "SessionStopReq"
    connected = pair.recorder.first(name="TcpConnected", observer="ev")
    assert connected.payload["tls"] == "TLSv1.3"
    assert pair.port.session.evccid == VIN
    assert pair.port.line.read().imported_wh > 0


@pytest.mark.parametrize("energy", ["AC_BPT", "DC_BPT"])
def test_bidirectional_discharge_feeds_energy_back(run, material: V2gMaterial, energy):
    protocol = "iso20-dc" if energy.startswith("DC") else "iso20-ac"
    plan = ChargePlan(protocols=(protocol,), energy=energy, discharge=True, cycles=3)
    outcome, pair, ev = _run(run, material, plan)
    assert outcome.ok, outcome.reason
    channel = [e.payload["message"]["PowerDeliveryReq"].get("BPT_ChannelSelection")
               for e in _messages(pair.recorder) if e.name == "PowerDeliveryReq" and e.src == "ev"]
    assert channel[0] == "Discharge"
    assert pair.port.line.read().exported_wh > 0 and ev.battery.soc < 0.4


def test_plug_and_charge_with_a_signed_authorization(run, material: V2gMaterial):
    plan = ChargePlan(protocols=("iso20-dc",), energy="DC", identification="PnC", cycles=2)
    outcome, pair, ev = _run(run, material, plan, mo_roots=material.mo_roots("iso20"))
    assert outcome.ok, outcome.reason
    request = next(e for e in _messages(pair.recorder) if e.name == "AuthorizationReq" and e.src == "ev")
    assert "Signature" in request.payload["message"]["AuthorizationReq"]["Header"]
    assert pair.port.session.authorized.startswith("PnC:")


def _install(run, material: V2gMaterial, **pair_options):
    """A -20 DC Plug & Charge session of an EV that holds no contract and asks for one."""
    ev = vehicle(ChargePlan(protocols=("iso20-dc",), energy="DC", identification="PnC", cycles=1,
                            certificate="install"))
    ev.credentials = material.ev_credentials("iso20", contract=False)

    async def scenario():
        pair = await start_pair(material=material, **pair_options)
        try:
            return await pair.charge(ev, tls=True), pair, ev
        finally:
            await pair.close()

    return run(scenario())


def test_certificate_installation_at_a_charger_that_provisions_itself(run, material: V2gMaterial):
    """-20 CertificateInstallation without a CSMS (evse serve): AuthorizationSetupRes offers the
    service, the SECC checks the OEM chain's signature and issues a contract, the EV decrypts it
    and authorizes with it."""
    outcome, pair, ev = _install(run, material, mo_roots=material.mo_roots("iso20"))
    assert outcome.ok, outcome.reason
    names = [e.name for e in _messages(pair.recorder) if e.src == "ev"]
    assert names[names.index("AuthorizationSetupReq") + 1] == "CertificateInstallationReq"
    assert ev.credentials.contract_chain and ev.credentials.contract_chain[0].public_key().curve.name == "secp521r1"
    assert pair.port.session.authorized.startswith(f"PnC:{ev.credentials.emaid}")


def test_a_charger_without_provisioning_offers_no_installation(run, material: V2gMaterial):
    outcome, _, _ = _install(run, material, provisioning=None)
    assert not outcome.ok and "offers no certificate installation" in outcome.reason


def test_pause_and_resume(run, material: V2gMaterial):
    ev = vehicle(ChargePlan(protocols=("iso20-ac",), energy="AC", cycles=1, pause=True))

    async def scenario():
        pair = await start_pair(material=material)
        try:
            first = await pair.charge(ev, tls=True)
            ev.plan = ev.plan.with_(pause=False)
            second = await pair.charge(ev, tls=True, resume_session_id=first.session_id)
            return first, second
        finally:
            await pair.close()

    first, second = run(scenario())
    assert first.paused and second.ok and second.session_id == first.session_id


def test_the_ev_does_not_offer_iso20_without_tls13(run, material: V2gMaterial):
    """[V2G20-1237]: no ISO 15118-20 in the supportedAppProtocolReq on a connection below TLS 1.3."""
    ev = vehicle(ChargePlan(protocols=("iso20-ac", "iso2"), energy="AC", cycles=1))

    async def scenario():
        pair = await start_pair(material=material)
        try:
            return await pair.charge(ev, tls=False), pair
        finally:
            await pair.close()

    outcome, pair = run(scenario())
    assert outcome.ok and outcome.protocol == "iso2"
    offered = pair.recorder.first(name="supportedAppProtocolReq", observer="ev").payload["message"]
    assert [p["ProtocolNamespace"] for p in offered["supportedAppProtocolReq"]["AppProtocol"]] == [
        "urn:iso:15118:2:2013:MsgDef"]
    assert "[V2G20-1237]" in pair.recorder.first(name="OfferRestricted", observer="ev").summary


def test_the_secc_does_not_choose_iso20_without_tls13(run, material: V2gMaterial):
    """[V2G20-2356]: an EV that offers -20 over plain TCP (a probe here) gets the -2 it also
    offered, and Failed_NoNegotiation when -20 is all it offers."""
    from harness.v2g.probe import V2gProbe

    async def scenario():
        pair = await start_pair(material=material)
        answers = []
        try:
            for offer in (("iso20-ac", "iso2"), ("iso20-ac",)):
                probe = await V2gProbe.open(pair.recorder, "::1", pair.secc.tcp_port)
                try:
                    answers.append(await probe.handshake(*offer))
                finally:
                    await probe.close()
            return answers
        finally:
            await pair.close()

    mixed, only20 = run(scenario())
    assert mixed["supportedAppProtocolRes"]["ResponseCode"].startswith("OK")
    assert mixed["supportedAppProtocolRes"]["SchemaID"] == 2  # the second offered: -2
    assert only20 == {"supportedAppProtocolRes": {"ResponseCode": "Failed_NoNegotiation"}}


def test_schedule_renegotiation_asked_by_the_evse(run, material: V2gMaterial):
    ev = vehicle(ChargePlan(protocols=("iso20-ac",), energy="AC", cycles=4))

    async def scenario():
        pair = await start_pair(material=material)
        pair.port.pending_notification = "ReNegotiation"
        try:
            return await pair.charge(ev, tls=True), pair
        finally:
            await pair.close()

    outcome, pair = run(scenario())
    assert outcome.ok, outcome.reason
    progress = [e.payload["message"]["PowerDeliveryReq"]["ChargeProgress"]
                for e in _messages(pair.recorder) if e.name == "PowerDeliveryReq" and e.src == "ev"]
    assert progress == ["Start", "ScheduleRenegotiation", "Start", "Stop"]


def test_a_contract_of_the_wrong_curve_and_hash_is_refused(run, material: V2gMaterial):
    """ISO 15118-20 contract certificates are secp521r1 with ecdsa-with-SHA512 or Ed448
    ([V2G20-2674], [V2G20-2319], [V2G20-2673]): a secp256r1/SHA-256 contract chain (one of the
    -2 PKI, which the charger trusts for -2) is refused in a -20 session."""
    plan = ChargePlan(protocols=("iso20-ac",), energy="AC", identification="PnC", cycles=2)
    ev = vehicle(plan)
    ev.credentials = material.ev_credentials("iso20")
    iso2 = material.ev_credentials("iso2")
    ev.credentials.contract_chain, ev.credentials.contract_key = iso2.contract_chain, iso2.contract_key

    async def scenario():
        pair = await start_pair(material=material)
        try:
            return await pair.charge(ev, tls=True), pair
        finally:
            await pair.close()

    outcome, pair = run(scenario())
    assert outcome.response_code == "WARNING_CertificateValidationError"
    refused = pair.recorder.last(name="ContractRefused", observer="evse")
    assert "wrong-algorithm" in refused.payload["detail"]
