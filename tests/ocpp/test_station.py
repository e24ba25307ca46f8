"""The OCPP station client and the reference EVSE against the mock CSMS over real WebSockets."""

from __future__ import annotations

import asyncio

import pytest

from harness.emulators.ev import BasicEv
from harness.emulators.evse import EvseSettings, ReferenceEvse
from harness.ocpp.csms import MockCsms
from harness.ocpp.station import CsmsLink, StationIdentity
from harness.ocpp.timing import OcppTimers
from harness.ocpp.transactions import transactions
from harness.ocpp.versions import OcppVersion
from harness.trace import Recorder
from harness.v2g.battery import Battery

TIMERS = OcppTimers().scaled(0.01)


async def _station(version=OcppVersion.V201):
    recorder = Recorder()
    csms = MockCsms(recorder, response_timeout=1.0)
    await csms.start()
    evse = ReferenceEvse(recorder, EvseSettings("CS1", StationIdentity("V", "M")),
                         CsmsLink(csms.url("CS1"), version, "station-password-0001"), TIMERS)
    await evse.start()
    await asyncio.wait_for(evse.station.registered.wait(), 10)
    return recorder, csms, evse


async def _charging(recorder, csms, evse, token="T"):
    ev = BasicEv(recorder, Battery(50_000, 0.5, 11_000))
    connector = evse.connectors[1]
    await ev.plug_in(connector.pilot, connector.line)
    action = "RemoteStartTransaction" if evse.version is OcppVersion.V16 else "RequestStartTransaction"
    payload = {"idTag": token} if evse.version is OcppVersion.V16 else \
        {"idToken": {"idToken": token, "type": "ISO14443"}, "remoteStartId": 1}
    assert (await csms.call("CS1", action, payload))["status"] == "Accepted"
    for _ in range(200):
        if connector.line.read().power > 0:
            return ev
        await asyncio.sleep(0.01)
    raise AssertionError("no energy flows")


@pytest.mark.parametrize("version", [OcppVersion.V201, OcppVersion.V16], ids=str)
def test_offline_messages_are_queued_and_replayed_in_order(run, version):
    async def scenario():
        recorder, csms, evse = await _station(version)
        try:
            ev = await _charging(recorder, csms, evse)
            await csms.stop()  # the CSMS goes away mid-transaction
            await asyncio.sleep(TIMERS.meter_value_interval * 3.5)
            await ev.unplug()  # and the transaction ends while offline
            await asyncio.sleep(0.05)
            assert evse.station.queued >= 3
            await csms.start()
            await evse.station.drained(15)
        finally:
            await evse.stop()
            await csms.stop()
        tx = transactions(recorder, station_id="CS1")[0]
        assert tx.ended and tx.stopped_reason == "EVDisconnected"
        if version is OcppVersion.V201:
            assert not tx.seq_problems()
            assert tx.offline_flags[0] is False and all(tx.offline_flags[-3:])
        energy = [s.value for s in tx.values("Energy.Active.Import.Register")]
        assert len(energy) >= 4 and energy == sorted(energy)
        assert tx.energy_wh() > 0

    run(scenario())


def test_a_message_the_csms_never_accepts_is_dropped_after_its_attempts(run):
    async def scenario():
        recorder, csms, evse = await _station()
        csms.script.when("TransactionEvent").error("InternalError")
        try:
            await _charging(recorder, csms, evse)
            drop = recorder.wait_for
            await asyncio.get_running_loop().run_in_executor(None, lambda: drop(15, name="TransactionMessageDropped"))
        finally:
            await evse.stop()
            await csms.stop()
        calls = [e for e in recorder.select(name="TransactionEvent", observer="csms")
                 if e.payload.get("type") == "CALL"]
        first_seq = calls[0].payload["payload"]["seqNo"]
        assert [c.payload["payload"]["seqNo"] for c in calls[:3]] == [first_seq] * 3  # same message, 3 attempts

    run(scenario())


def test_boot_pending_then_accepted(run):
    async def scenario():
        recorder = Recorder()
        csms = MockCsms(recorder)
        csms.script.when("BootNotification", times=2).reply(
            {"status": "Pending", "interval": 10, "currentTime": "2026-01-01T00:00:00Z"})
        await csms.start()
        evse = ReferenceEvse(recorder, EvseSettings("CS1", StationIdentity("V", "M")),
                             CsmsLink(csms.url("CS1"), OcppVersion.V201, "station-password-0001"), TIMERS)
        await evse.start()
        try:
            await asyncio.wait_for(evse.station.registered.wait(), 10)
        finally:
            await evse.stop()
            await csms.stop()
        boots = [e for e in recorder.select(name="BootNotification", observer="csms") if e.payload["type"] == "CALL"]
        assert len(boots) == 3
        assert boots[1].mono - boots[0].mono >= TIMERS.wait(10) * 0.95
        # nothing but BootNotification while pending
        between = [e.name for e in recorder.select(observer="csms", src="evse", since=boots[0].mono,
                                                   until=boots[2].mono) if e.payload and e.payload.get("type") == "CALL"]
        assert set(between) == {"BootNotification"}

    run(scenario())


def test_set_variables_and_profiles_change_what_the_station_does(run):
    async def scenario():
        recorder, csms, evse = await _station()
        try:
            ev = await _charging(recorder, csms, evse)
            full = evse.connectors[1].line.read().power
            answer = await csms.call("CS1", "SetChargingProfile", {"evseId": 1, "chargingProfile": {
                "id": 1, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile", "chargingProfileKind": "Relative",
                "chargingSchedule": [{"id": 1, "chargingRateUnit": "W",
                                      "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 4140.0}]}]}})
            assert answer["status"] == "Accepted"
            await asyncio.sleep(0.3)
            limited = evse.connectors[1].line.read().power
            result = await csms.call("CS1", "SetVariables", {"setVariableData": [
                {"attributeValue": "abc", "component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}},
                {"attributeValue": "7", "component": {"name": "Nope"}, "variable": {"name": "X"}},
                {"attributeValue": "7", "component": {"name": "TxCtrlr"}, "variable": {"name": "TxStartPoint"}}]})
            await ev.unplug()
        finally:
            await evse.stop()
            await csms.stop()
        assert full > 10_000 and limited == pytest.approx(4140.0, rel=0.01)
        assert [r["attributeStatus"] for r in result["setVariableResult"]] == ["Rejected", "UnknownComponent", "Rejected"]

    run(scenario())


def test_a_dynamic_profile_with_an_update_interval_is_pulled_and_the_answer_applied(run):
    """OCPP 2.1 ChargingProfileType.dynUpdateInterval: "Interval in seconds after receipt of last
    update, when to request a profile update by sending a PullDynamicScheduleUpdateRequest"."""
    profile = {"id": 31, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile",
               "chargingProfileKind": "Dynamic", "dynUpdateInterval": 1,
               "chargingSchedule": [{"id": 1, "chargingRateUnit": "W", "chargingSchedulePeriod": [
                   {"startPeriod": 0, "operationMode": "CentralSetpoint", "setpoint": -4000.0,
                    "dischargeLimit": -4000.0}]}]}

    def pulls(recorder):
        return [e for e in recorder.select(name="PullDynamicScheduleUpdate", observer="csms")
                if e.payload["type"] == "CALL"]

    async def scenario():
        recorder, csms, evse = await _station(OcppVersion.V21)
        try:
            csms.behaviour.publish_dynamic_schedule(31, {"setpoint": -3000.0, "dischargeLimit": -3000.0})
            assert (await csms.call("CS1", "SetChargingProfile", {"evseId": 1, "chargingProfile": profile}))[
                "status"] == "Accepted"
            await asyncio.sleep(1.5)
            assert evse.smart.store.profiles[1][0].schedules[0].periods[0].setpoint == -3000.0
            pushed = recorder.now()
            assert (await csms.call("CS1", "UpdateDynamicSchedule", {"chargingProfileId": 31, "scheduleUpdate": {
                "setpoint": -2000.0, "dischargeLimit": -2000.0}}))["status"] == "Accepted"
            await asyncio.sleep(1.5)
            after_push = [e.mono for e in pulls(recorder) if e.mono > pushed]
            csms.behaviour.publish_dynamic_schedule(31, None)  # the CSMS no longer knows it: Rejected
            await asyncio.sleep(1.2)
            assert evse.smart.store.profiles[1], "a Rejected pull does not remove the profile"
            assert (await csms.call("CS1", "ClearChargingProfile", {"chargingProfileId": 31}))["status"] == "Accepted"
            cleared = recorder.now()
            await asyncio.sleep(1.5)
        finally:
            await evse.stop()
            await csms.stop()
        asked = [e.mono for e in pulls(recorder)]
        assert len(asked) >= 3
        assert all(later - earlier >= 0.95 for earlier, later in zip(asked, asked[1:]))
        # an update pushed meanwhile counts as the last update: the next question waits for it
        assert after_push and after_push[0] - pushed >= 0.95
        assert not [t for t in asked if t > cleared + 0.05], "a cleared profile is not asked about"
        answers = [e.payload["payload"] for e in recorder.select(name="PullDynamicScheduleUpdate", observer="csms")
                   if e.payload["type"] == "CALLRESULT"]
        assert answers[0] == {"status": "Accepted", "scheduleUpdate": {"setpoint": -3000.0, "dischargeLimit": -3000.0}}
        assert answers[-1]["status"] == "Rejected"

    run(scenario())
