"""Smart charging: the limits a CSMS sets with charging profiles, as the charger reports them
(GetCompositeSchedule, OCPP 2.0.1 K08; 1.6 3.13) and as they reach the EV over ISO 15118.

The limit a charging profile sets in A per phase is compared in W with the charger's nominal
voltage and phase count from the rig file (the EV sees power, not current, in ISO 15118).
"""

from __future__ import annotations

import pytest

from harness.ocpp import commands
from harness.ocpp.versions import OcppVersion

LIMIT_A = 8.0


def _composite(csms, evse, duration: int = 300) -> dict:
    if evse.version is OcppVersion.V16:
        answer = csms.call("GetCompositeSchedule", {"connectorId": 1, "duration": duration, "chargingRateUnit": "A"})
        assert answer["status"] == "Accepted", f"GetCompositeSchedule answered {answer}"
        return answer["chargingSchedule"]
    answer = csms.call("GetCompositeSchedule", {"evseId": 1, "duration": duration, "chargingRateUnit": "A"})
    assert answer["status"] == "Accepted", f"GetCompositeSchedule answered {answer}"
    return answer["schedule"]


def _clear(csms, evse) -> str:
    payload = {"id": 1} if evse.version is OcppVersion.V16 else {"chargingProfileId": 1}
    return csms.call("ClearChargingProfile", payload)["status"]


@pytest.mark.case("OCPP-SC-001")
@pytest.mark.requires("charging_profiles")
def test_the_composite_schedule_reports_the_limit(rig, csms, evse, step, reaction):
    with step(f"a TxDefaultProfile limits EVSE 1 to {LIMIT_A:g} A"):
        response = csms.call(*commands.charging_limit(evse.version, LIMIT_A))
        assert response["status"] == "Accepted", f"SetChargingProfile answered {response}"
    with step("GetCompositeSchedule reports it from now on"):
        schedule = _composite(csms, evse)
        first = (schedule.get("chargingSchedulePeriod") or [{}])[0]
        reaction("OCPP", "composite schedule, first period", expected=f"startPeriod 0, limit <= {LIMIT_A:g} A",
                 observed=f"startPeriod {first.get('startPeriod')}, limit {first.get('limit')} "
                          f"{schedule.get('chargingRateUnit')}", judged=True,
                 agrees=first.get("startPeriod") == 0 and float(first.get("limit", 1e9)) <= LIMIT_A)
        assert first.get("startPeriod") == 0 and float(first.get("limit", 1e9)) <= LIMIT_A, (
            f"the composite schedule starts with {first}; the TxDefaultProfile limits to {LIMIT_A:g} A "
            "(OCPP 2.0.1 Part 2 3.6: the lowest limit of the leading profiles)")
    with step("after ClearChargingProfile the limit is gone"):
        assert _clear(csms, evse) == "Accepted"
        periods = _composite(csms, evse).get("chargingSchedulePeriod") or []
        assert not any(float(p["limit"]) <= LIMIT_A for p in periods), \
            f"the composite schedule still holds the cleared {LIMIT_A:g} A limit: {periods}"


@pytest.mark.case("OCPP-SC-002")
@pytest.mark.requires("charging_profiles", "remote_start", "ev", "iso15118")
@pytest.mark.parametrize("protocol", ["iso2", "iso20-ac"])
def test_the_limit_reaches_the_ev_over_iso15118(rig, csms, evse, ev, step, reaction, protocol):
    config = rig.config.evse
    allowed_w = LIMIT_A * config.voltage * config.phases
    with step(f"a TxDefaultProfile limits EVSE 1 to {LIMIT_A:g} A ({allowed_w:.0f} W)"):
        response = csms.call(*commands.charging_limit(evse.version, LIMIT_A))
        assert response["status"] == "Accepted", f"SetChargingProfile answered {response}"
    assert csms.call(*commands.remote_start(evse.version, f"SC002-{protocol}".upper()))["status"] == "Accepted"
    result = ev.charge(protocol=protocol, energy="AC", identification="EIM", cycles=2)
    assert result.ok, result.outcome.reason
    with step("the power the charger offers in ISO 15118 is within the limit"):
        if protocol == "iso2":
            answer = result.received("ChargeParameterDiscoveryRes")[0]["V2G_Message"]["Body"]["ChargeParameterDiscoveryRes"]
            entry = answer["SAScheduleList"]["SAScheduleTuple"][0]["PMaxSchedule"]["PMaxScheduleEntry"][0]["PMax"]
            offered, what = entry["Value"] * 10 ** entry["Multiplier"], "SAScheduleTuple PMax"
        else:
            answer = result.received("AC_ChargeParameterDiscoveryRes")[0]["AC_ChargeParameterDiscoveryRes"]
            value = answer["AC_CPDResEnergyTransferMode"]["EVSEMaximumChargePower"]
            offered, what = value["Value"] * 10 ** value["Exponent"], "EVSEMaximumChargePower"
        reaction("ISO 15118", what, expected=f"<= {allowed_w:.0f} W", observed=f"{offered:.0f} W", judged=True,
                 agrees=offered <= allowed_w * 1.001)
        assert offered <= allowed_w * 1.001, (
            f"{what} offers {offered:.0f} W while a charging profile limits the EVSE to {LIMIT_A:g} A "
            f"({allowed_w:.0f} W at {config.voltage:g} V, {config.phases} phases): the composite schedule goes "
            "into the ISO 15118 limits (OCPP 2.0.1 K15)")
