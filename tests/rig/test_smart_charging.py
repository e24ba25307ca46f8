"""The reference EVSE's charging profiles on the emulated rig, with every answer checked by the mock
CSMS against the OCPP JSON schemas the ocpp package ships (2.0.1 and 1.6)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.ocpp import commands
from harness.rig.config import load_rig
from harness.rig.rig import Rig
from harness.trace import Recorder

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", params=["emulated.yaml", "emulated-ocpp201.yaml", "emulated-ocpp16.yaml"],
                ids=["ocpp21", "ocpp201", "ocpp16"])
def rig(request, tmp_path_factory):
    directory = tmp_path_factory.mktemp("smart")
    rig = Rig(load_rig(ROOT / "rigs" / request.param), run_dir=directory / "run",
              trace=Recorder(directory / "trace.jsonl"), run_id="smart")
    rig.setup()
    yield rig
    assert rig.teardown() == []


def _v16(rig) -> bool:
    return rig.evse.version.value == "1.6"


def _composite_limits(rig) -> list[float]:
    if _v16(rig):
        answer = rig.csms.call("GetCompositeSchedule", {"connectorId": 1, "duration": 120})
        return [p["limit"] for p in answer["chargingSchedule"]["chargingSchedulePeriod"]]
    answer = rig.csms.call("GetCompositeSchedule", {"evseId": 1, "duration": 120})
    return [p["limit"] for p in answer["schedule"]["chargingSchedulePeriod"]]


def test_stack_levels_and_the_station_maximum_make_the_composite(rig):
    rig.restore()
    assert rig.csms.call(*commands.charging_limit(rig.evse.version, 20, profile_id=11))["status"] == "Accepted"
    name, payload = commands.charging_limit(rig.evse.version, 12, profile_id=12)
    profile = payload["csChargingProfiles" if _v16(rig) else "chargingProfile"]
    profile["stackLevel"] = 1
    assert rig.csms.call(name, payload)["status"] == "Accepted"
    assert _composite_limits(rig) == [12.0]
    station = dict(payload, **({"connectorId": 0} if _v16(rig) else {"evseId": 0}))
    station_profile = dict(profile, stackLevel=0, chargingProfilePurpose="ChargePointMaxProfile" if _v16(rig)
                           else "ChargingStationMaxProfile", chargingProfileKind="Absolute",
                           **({"chargingProfileId": 13} if _v16(rig) else {"id": 13}))
    schedule = station_profile["chargingSchedule"]
    schedule = dict(schedule if _v16(rig) else schedule[0], startSchedule="2026-01-01T00:00:00Z")
    schedule["chargingSchedulePeriod"] = [{"startPeriod": 0, "limit": 10.0}]
    station_profile["chargingSchedule"] = schedule if _v16(rig) else [schedule]
    station[("csChargingProfiles" if _v16(rig) else "chargingProfile")] = station_profile
    assert rig.csms.call(name, station)["status"] == "Accepted"
    assert _composite_limits(rig) == [10.0]
    # cleared by purpose under the version's own name for the station maximum
    purpose = station_profile["chargingProfilePurpose"]
    clear = {"chargingProfilePurpose": purpose} if _v16(rig) else {"chargingProfileCriteria": {
        "chargingProfilePurpose": purpose}}
    assert rig.csms.call("ClearChargingProfile", clear)["status"] == "Accepted"
    assert _composite_limits(rig) == [12.0]
    # the case's profiles do not outlive it: the rig clears them
    rig.restore()
    assert _composite_limits(rig) == [float(rig.config.evse.max_current)]


def test_a_tx_profile_without_a_transaction_is_rejected_with_the_reason(rig):
    rig.restore()
    name, payload = commands.charging_limit(rig.evse.version, 6, profile_id=21)
    key = "csChargingProfiles" if _v16(rig) else "chargingProfile"
    payload[key]["chargingProfilePurpose"] = "TxProfile"
    answer = rig.csms.call(name, payload)
    assert answer["status"] == "Rejected"
    if not _v16(rig):
        assert "transaction" in answer["statusInfo"]["additionalInfo"]
    clear = {"id": 999} if _v16(rig) else {"chargingProfileId": 999}
    assert rig.csms.call("ClearChargingProfile", clear)["status"] == "Unknown"


def test_get_charging_profiles_reports_what_the_evse_holds(rig):
    if _v16(rig):
        pytest.skip("GetChargingProfiles and ReportChargingProfiles are OCPP 2.x messages")
    rig.restore()
    assert rig.csms.call(*commands.charging_limit(rig.evse.version, 16, profile_id=31))["status"] == "Accepted"
    mark = rig.trace.now()
    answer = rig.csms.call("GetChargingProfiles", {"requestId": 7, "chargingProfile": {
        "chargingProfilePurpose": "TxDefaultProfile"}})
    assert answer["status"] == "Accepted"
    report = rig.csms.wait_for_message("ReportChargingProfiles", since=mark, timeout=10)
    body = report.payload["payload"]
    assert body["requestId"] == 7 and body["evseId"] == 1 and [p["id"] for p in body["chargingProfile"]] == [31]
    none = rig.csms.call("GetChargingProfiles", {"requestId": 8, "chargingProfile": {"stackLevel": 9}})
    assert none["status"] == "NoProfiles"


def test_the_rig_ends_a_discharge_when_it_restores(rig):
    """Teardown and restore always end discharge: a case that leaves the EV exporting (here, the
    session still running when the case ends) leaves no current on the cable and no grid profile
    on the charger for the next case."""
    import threading

    from harness.ocpp import grid

    if rig.evse.version.value != "2.1":
        pytest.skip("discharge is commanded through OCPP 2.1 profiles; this rig's charger speaks "
                    f"{rig.evse.version.value}")
    rig.restore()
    assert rig.csms.call(*commands.remote_start(rig.evse.version, "DISCHARGE-LEFT"))["status"] == "Accepted"
    mark = rig.trace.now()
    exporting = threading.Event()

    def export_then_leave_it() -> None:
        rig.trace.wait_for(10, name="AC_ChargeLoopReq", observer="evse", since=mark)
        rig.csms.grid_event(grid.event(export_kw=5), "setpoint")
        rig.trace.wait_for(10, name="PowerApplied", since=mark, where=lambda e: e.payload.get("target_w", 0) < 0)
        exporting.set()
        rig.restore()  # what the plugin does after a case, here while the EV still discharges

    helper = threading.Thread(target=export_then_leave_it)
    helper.start()
    rig.ev.charge(protocol="iso20-ac", energy="AC_BPT", control="dynamic", cycles=None)
    helper.join(30)
    assert exporting.is_set(), "the EV never exported"
    cable = rig.evse.connector(1).line.read()
    assert cable.current == 0.0 and not cable.contactor_closed, cable
    profiles = rig.csms.call("GetChargingProfiles", {"requestId": 77, "chargingProfile": {}})
    assert profiles["status"] == "NoProfiles", f"the grid profile outlived the case: {profiles}"
