"""ISO 15118-20 sessions (TLS 1.3, mutual authentication) between the EVCC and the reference SECC."""

from __future__ import annotations

import pytest

from harness.v2g.credentials import V2gMaterial
from harness.v2g.vehicle import ChargePlan
from v2g_pair import VIN, start_pair, vehicle



def _messages(recorder, observer="ev"):
    return [e for e in recorder.select(layer="v2g", observer=observer) if e.payload and "message" in e.payload]


def _run(run, material, plan, **pair_options):
    ev = vehicle(plan)
    if plan.identification == "PnC":
        ev.credentials = material.ev_credentials("iso20")

    async def scenario():
        pair = await start_pair(material=material, **pair_options)
        try:
            return await pair.charge(ev, tls=True), pair, ev
        finally:
            await pair.close()

    return run(scenario())


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


def test_iso20_is_refused_without_tls(run, material: V2gMaterial):
    ev = vehicle(ChargePlan(protocols=("iso20-ac", "iso2"), energy="AC", cycles=1))

    async def scenario():
        pair = await start_pair(material=material)
        try:
            return await pair.charge(ev, tls=False)
        finally:
            await pair.close()

    outcome = run(scenario())
    assert outcome.ok and outcome.protocol == "iso2"  # the SECC fell back to the EV's second choice


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
