"""The composite schedule (OCPP 2.0.1 Part 2 3.5 "Stacking charging profiles", 3.6 "Combining
Charging Profile Purposes"; 1.6 3.13) as the reference EVSE computes it."""

from __future__ import annotations

import datetime as _dt
import math

import pytest

from harness.ocpp.smart_charging import ChargingProfile, ProfileError, ProfileStore

T0 = _dt.datetime(2026, 12, 7, 12, 0, tzinfo=_dt.timezone.utc)


def _iso(moment: _dt.datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def profile(id_: int, purpose: str, stack: int, periods, *, kind="Absolute", unit="A", start=T0, duration=None,
            **extra) -> ChargingProfile:
    schedule = {"id": 1, "chargingRateUnit": unit,
                "chargingSchedulePeriod": [{"startPeriod": s, "limit": limit} for s, limit in periods]}
    if start is not None and kind != "Relative":
        schedule["startSchedule"] = _iso(start)
    if duration is not None:
        schedule["duration"] = duration
    return ChargingProfile.from_ocpp({"id": id_, "stackLevel": stack, "chargingProfilePurpose": purpose,
                                      "chargingProfileKind": kind, "chargingSchedule": [schedule], **extra})


def at(seconds: float) -> _dt.datetime:
    return T0 + _dt.timedelta(seconds=seconds)


def test_the_highest_valid_stack_level_with_a_period_leads_and_then_yields():
    """3.5: the leading schedule has a period defined at that time and the highest stack level
    that is valid then; one that ended does not shadow the lower one."""
    store = ProfileStore()
    store.install(1, profile(1, "TxDefaultProfile", 0, [(0, 32)]))
    store.install(1, profile(2, "TxDefaultProfile", 1, [(0, 10)], duration=600))
    assert store.limit_at(at(10), 1).amps == 10
    assert store.limit_at(at(600), 1).amps == 32
    store.install(1, profile(3, "TxDefaultProfile", 2, [(0, 8)], validTo=_iso(at(100))))
    assert store.limit_at(at(50), 1).amps == 8
    assert store.limit_at(at(100), 1).amps == 10  # past validTo: stack level 1 leads again


def test_the_lowest_limit_of_the_purposes_wins():
    """3.6: the composite is the lowest limit among the leading profiles of the purposes."""
    store = ProfileStore()
    store.install(0, profile(1, "ChargingStationMaxProfile", 0, [(0, 16)]))
    store.install(1, profile(2, "TxDefaultProfile", 0, [(0, 32)]))
    limit = store.limit_at(at(1), 1)
    assert limit.amps == 16 and set(limit.sources) == {("ChargingStationMaxProfile", 1), ("TxDefaultProfile", 2)}
    store.install(1, profile(3, "TxDefaultProfile", 1, [(0, 10)]))
    assert store.limit_at(at(1), 1).amps == 10


def test_a_tx_profile_replaces_the_default_for_its_transaction_only():
    store = ProfileStore()
    store.install(0, profile(1, "TxDefaultProfile", 0, [(0, 20)]))
    store.install(1, profile(2, "TxProfile", 0, [(0, 25)], transactionId="TX-1"))
    assert store.limit_at(at(1), 1, transaction_id="TX-1").amps == 25  # replaces, even when higher
    assert store.limit_at(at(1), 1, transaction_id="TX-2").amps == 20
    assert store.limit_at(at(1), 1).amps == 20


def test_an_evse_profile_comes_before_a_station_wide_one():
    store = ProfileStore()
    store.install(0, profile(1, "TxDefaultProfile", 5, [(0, 20)]))
    store.install(1, profile(2, "TxDefaultProfile", 0, [(0, 12)]))
    assert store.limit_at(at(1), 1).amps == 12
    assert store.limit_at(at(1), 2).amps == 20


def test_watts_are_converted_with_the_periods_phases():
    store = ProfileStore(voltage=230.0)
    one_phase = ChargingProfile.from_ocpp({
        "id": 1, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile", "chargingProfileKind": "Absolute",
        "chargingSchedule": [{"id": 1, "startSchedule": _iso(T0), "chargingRateUnit": "W",
                              "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 7360, "numberPhases": 1}]}]})
    store.install(1, one_phase)
    assert store.limit_at(at(1), 1).amps == pytest.approx(32.0)
    store.install(1, profile(2, "TxDefaultProfile", 0, [(0, 11040)], unit="W"))  # replaces: same level
    assert store.limit_at(at(1), 1).amps == pytest.approx(16.0)  # three phases by default


def test_relative_schedules_start_with_the_transaction_and_recurring_ones_repeat():
    store = ProfileStore()
    store.install(1, profile(1, "TxDefaultProfile", 0, [(0, 6), (300, 16)], kind="Relative"))
    started = at(1000)
    assert store.limit_at(at(1100), 1, transaction_start=started).amps == 6
    assert store.limit_at(at(1300), 1, transaction_start=started).amps == 16
    evening = T0.replace(hour=18)
    store.install(0, profile(2, "ChargingStationMaxProfile", 0, [(0, 8), (3600, 32)], kind="Recurring",
                             start=evening, recurrencyKind="Daily"))
    next_evening = evening + _dt.timedelta(days=1, minutes=30)
    assert store.limit_at(next_evening, 1, transaction_start=next_evening).amps == 6
    assert store.limit_at(next_evening + _dt.timedelta(minutes=40), 1,
                          transaction_start=next_evening).amps == 16  # 19:10: the evening cap lifted


def test_the_composite_schedule_lists_each_change_once():
    store = ProfileStore()
    store.install(0, profile(1, "ChargingStationMaxProfile", 0, [(0, 32), (1800, 16)]))
    store.install(1, profile(2, "TxDefaultProfile", 0, [(0, 20), (600, 20), (3600, 6)]))
    assert store.composite(T0, 7200, 1) == [{"startPeriod": 0, "limit": 20.0}, {"startPeriod": 1800, "limit": 16.0},
                                            {"startPeriod": 3600, "limit": 6.0}]
    watts = store.composite(T0, 1000, 1, unit="W")
    assert watts == [{"startPeriod": 0, "limit": 13800.0, "numberPhases": 3}]


def test_without_profiles_the_composite_is_the_evses_own_limit():
    assert ProfileStore().composite(T0, 60, 1, fallback_amps=32.0) == [{"startPeriod": 0, "limit": 32.0}]
    assert ProfileStore().limit_at(T0, 1) is None


def test_installing_replaces_by_id_and_by_purpose_and_stack_level():
    store = ProfileStore()
    store.install(1, profile(1, "TxDefaultProfile", 0, [(0, 10)]))
    store.install(2, profile(1, "TxDefaultProfile", 3, [(0, 11)]))  # same id, elsewhere: the old one goes
    assert [(e, p.id) for e, p in store.select()] == [(2, 1)]
    store.install(2, profile(7, "TxDefaultProfile", 3, [(0, 12)]))  # same purpose and level on EVSE 2
    assert [(e, p.id) for e, p in store.select()] == [(2, 7)]
    assert store.clear(purpose="TxDefaultProfile") == 1 and store.select() == []


@pytest.mark.parametrize("data, why", [
    ({"chargingProfileKind": "Absolute"}, "needs a startSchedule"),
    ({"chargingProfileKind": "Recurring"}, "recurrencyKind"),
    ({"chargingProfilePurpose": "Nonsense"}, "chargingProfilePurpose 'Nonsense'"),
    ({"periods": [{"startPeriod": 5, "limit": 6}]}, "must start with startPeriod 0"),
    ({"periods": [{"startPeriod": 0, "limit": 6}, {"startPeriod": 0, "limit": 8}]}, "must increase"),
    ({"dynUpdateInterval": 60}, "dynUpdateInterval 60 belongs to a Dynamic profile"),
    ({"chargingProfileKind": "Dynamic", "dynUpdateInterval": -1}, "dynUpdateInterval -1"),
], ids=["absolute-without-start", "recurring-without-kind", "purpose", "first-period", "order",
        "interval-of-a-static-profile", "negative-interval"])
def test_profiles_the_station_cannot_take_say_why(data, why):
    schedule = {"id": 1, "chargingRateUnit": "A",
                "chargingSchedulePeriod": data.pop("periods", [{"startPeriod": 0, "limit": 6}])}
    raw = {"id": 1, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile", "chargingProfileKind": "Relative",
           "chargingSchedule": [schedule], **data}
    with pytest.raises(ProfileError, match=why):
        ChargingProfile.from_ocpp(raw)


def test_a_station_max_belongs_on_evse_0_and_a_tx_profile_names_its_transaction():
    store = ProfileStore()
    with pytest.raises(ProfileError, match="evseId 0"):
        store.install(1, profile(1, "ChargingStationMaxProfile", 0, [(0, 16)]))
    with pytest.raises(ProfileError, match="transactionId"):
        store.install(1, profile(2, "TxProfile", 0, [(0, 16)]))


def test_ocpp16_profiles_read_the_same():
    raw = {"chargingProfileId": 4, "stackLevel": 1, "chargingProfilePurpose": "ChargePointMaxProfile",
           "chargingProfileKind": "Absolute",
           "chargingSchedule": {"startSchedule": _iso(T0), "chargingRateUnit": "A",
                                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.0}]}}
    parsed = ChargingProfile.from_ocpp(raw)
    assert (parsed.id, parsed.purpose) == (4, "ChargingStationMaxProfile")


# -- OCPP 2.1 V2X: operation modes, setpoints, discharge limits ----------------------------------

def v2x(id_: int, purpose: str, stack: int, period: dict, *, transaction_id=None) -> ChargingProfile:
    data = {"id": id_, "stackLevel": stack, "chargingProfilePurpose": purpose, "chargingProfileKind": "Absolute",
            "chargingSchedule": [{"id": id_, "chargingRateUnit": "W", "startSchedule": _iso(T0),
                                  "chargingSchedulePeriod": [{"startPeriod": 0, **period}]}]}
    if transaction_id:
        data["transactionId"] = transaction_id
    return ChargingProfile.from_ocpp(data)


def test_a_central_setpoint_is_followed_within_the_other_purposes_limits():
    """2.1 setpoint: "the EV should follow as close as possible ... the overshoot when following
    setpoint must remain within" the limits; negative: discharge."""
    store = ProfileStore()
    store.install(1, v2x(1, "TxProfile", 1, {"operationMode": "CentralSetpoint", "setpoint": -6900.0,
                                               "dischargeLimit": -6900.0}, transaction_id="TX-1"))
    found = store.limit_at(at(1), 1, transaction_id="TX-1")
    assert found.mode == "CentralSetpoint" and found.setpoint_amps == pytest.approx(-10.0)
    assert found.discharge_amps == pytest.approx(10.0) and found.amps == math.inf
    # a station maximum that allows less discharge clamps the setpoint
    store.install(0, v2x(2, "ChargingStationMaxProfile", 0, {"operationMode": "ExternalLimits", "limit": 22080.0,
                                                              "dischargeLimit": -3450.0}))
    found = store.limit_at(at(1), 1, transaction_id="TX-1")
    assert found.setpoint_amps == pytest.approx(-5.0) and found.discharge_amps == pytest.approx(5.0)


def test_charging_only_and_idle_allow_no_discharge():
    """operationMode absent is ChargingOnly: no discharge; Idle: no transfer at all."""
    store = ProfileStore()
    store.install(1, profile(1, "TxDefaultProfile", 0, [(0, 16)]))
    assert store.limit_at(at(1), 1).discharge_amps == 0.0
    store.install(1, v2x(2, "TxDefaultProfile", 1, {"operationMode": "Idle", "limit": 0.0}))
    found = store.limit_at(at(1), 1)
    assert (found.amps, found.setpoint_amps, found.discharge_amps) == (0.0, 0.0, 0.0)
    store.install(1, v2x(3, "TxDefaultProfile", 2, {"operationMode": "ExternalLimits", "limit": 0.0,
                                                     "dischargeLimit": -6900.0}))
    found = store.limit_at(at(1), 1)
    assert found.amps == 0.0 and found.discharge_amps == pytest.approx(10.0) and found.setpoint_amps is None
    # without any profile nothing limits discharge
    assert ProfileStore().limit_at(at(1), 1) is None


@pytest.mark.parametrize("period, why", [
    ({"operationMode": "ChargingOnly"}, "requires"),
    ({"operationMode": "CentralSetpoint", "limit": 1000.0}, "without a setpoint"),
    ({"operationMode": "CentralSetpoint", "setpoint": 5000.0, "limit": 1000.0}, "above its limit"),
    ({"operationMode": "CentralSetpoint", "setpoint": -5000.0, "dischargeLimit": -1000.0}, "below its dischargeLimit"),
    ({"operationMode": "ExternalLimits", "dischargeLimit": 1000.0}, "must not be positive"),
    ({"operationMode": "Discharging", "limit": 1.0}, "operationMode"),
])
def test_a_v2x_period_that_cannot_be_followed_is_refused(period, why):
    with pytest.raises(ProfileError, match=why):
        v2x(1, "TxDefaultProfile", 0, period)


def test_the_composite_schedule_reports_the_v2x_fields():
    store = ProfileStore()
    store.install(1, v2x(1, "TxDefaultProfile", 0, {"operationMode": "CentralSetpoint", "setpoint": -6900.0,
                                                     "dischargeLimit": -6900.0}))
    assert store.composite(T0, 60, 1, unit="W", fallback_amps=32.0) == [
        {"startPeriod": 0, "limit": 22080.0, "operationMode": "CentralSetpoint", "setpoint": -6900.0,
         "dischargeLimit": -6900.0, "numberPhases": 3}]


def test_offline_a_profile_lapses_after_its_max_offline_duration():
    """2.1 maxOfflineDuration: "After this period the charging profile becomes invalid for as long
    as it is offline and the Charging Station reverts back to a valid profile with a lower stack
    level"; absent, the profile stays valid offline."""
    store = ProfileStore()
    store.install(1, profile(1, "TxDefaultProfile", 0, [(0, 16)]))
    store.install(1, profile(2, "TxDefaultProfile", 1, [(0, 8)], maxOfflineDuration=60))
    assert store.limit_at(at(1), 1).amps == 8
    assert store.limit_at(at(1), 1, offline_for=59.0).amps == 8
    assert store.limit_at(at(1), 1, offline_for=60.0).amps == 16  # back to the lower stack level
    assert store.offline_deadlines() == [(2, 60, False)]


def test_update_dynamic_schedule_rewrites_the_period_of_a_dynamic_profile_only():
    """2.1 UpdateDynamicSchedule: the Dynamic profile's period takes the update's limit,
    dischargeLimit and setpoint; the update must still make a period that can be followed."""
    store = ProfileStore()
    dynamic = ChargingProfile.from_ocpp({
        "id": 5, "stackLevel": 1, "chargingProfilePurpose": "TxDefaultProfile", "chargingProfileKind": "Dynamic",
        "chargingSchedule": [{"id": 5, "chargingRateUnit": "W", "chargingSchedulePeriod": [
            {"startPeriod": 0, "operationMode": "CentralSetpoint", "setpoint": -6900.0, "dischargeLimit": -6900.0}]}]})
    store.install(1, dynamic)
    assert store.limit_at(at(1), 1).setpoint_amps == pytest.approx(-10.0)  # in force at once, no startSchedule
    store.update_dynamic(5, {"setpoint": -3450.0, "dischargeLimit": -3450.0})
    found = store.limit_at(at(1), 1)
    assert found.setpoint_amps == pytest.approx(-5.0) and found.discharge_amps == pytest.approx(5.0)
    with pytest.raises(ProfileError, match="below its dischargeLimit"):
        store.update_dynamic(5, {"setpoint": -6900.0})
    store.install(1, profile(6, "TxDefaultProfile", 0, [(0, 16)]))
    with pytest.raises(ProfileError, match="not Dynamic"):
        store.update_dynamic(6, {"limit": 8.0})
    with pytest.raises(ProfileError, match="no charging profile 7"):
        store.update_dynamic(7, {"limit": 8.0})


def test_per_phase_values_bind_an_even_load_on_their_weakest_phase():
    """2.1 ChargingSchedulePeriodType.limit: "When using chargingRateUnit = W, this field
    represents the sum of the power of all phases, unless values are provided for L2 and L3, in
    which case this field represents phase L1" (setpoint and dischargeLimit alike)."""
    store = ProfileStore()  # 230 V
    store.install(1, v2x(1, "TxDefaultProfile", 0, {"limit": 3680.0}))
    assert store.limit_at(at(1), 1).amps == pytest.approx(3680 / 690)  # the sum of three phases
    store.install(1, v2x(1, "TxDefaultProfile", 0, {"limit": 3680.0, "limit_L2": 2300.0, "limit_L3": 3680.0}))
    assert store.limit_at(at(1), 1).amps == pytest.approx(10.0)  # phase L2's 2300 W binds
    store.install(1, v2x(1, "TxDefaultProfile", 0, {
        "operationMode": "CentralSetpoint", "setpoint": -2300.0, "setpoint_L2": -1150.0, "setpoint_L3": -1150.0,
        "dischargeLimit": -2300.0, "dischargeLimit_L2": -1150.0, "dischargeLimit_L3": -2300.0}))
    found = store.limit_at(at(1), 1)
    assert found.discharge_amps == pytest.approx(5.0)  # 1150 W on L2
    assert found.setpoint_amps == pytest.approx(-5.0)  # the mean -1533 W per phase, clamped into L2's limit
    amps = profile(2, "TxDefaultProfile", 0, [(0, 16)])
    per_phase = ChargingProfile.from_ocpp({
        "id": 2, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile", "chargingProfileKind": "Relative",
        "chargingSchedule": [{"id": 1, "chargingRateUnit": "A", "chargingSchedulePeriod": [
            {"startPeriod": 0, "limit": 16.0, "limit_L2": 10.0, "limit_L3": 16.0}]}]})
    assert ProfileStore(profiles={1: [amps]}).limit_at(at(1), 1).amps == 16.0
    assert ProfileStore(profiles={1: [per_phase]}).limit_at(at(1), 1).amps == 10.0


@pytest.mark.parametrize("period, why", [
    ({"limit": 3680.0, "limit_L2": 2300.0}, "limit_L2 and limit_L3 come with limit"),
    ({"operationMode": "CentralSetpoint", "setpoint_L2": -1.0, "setpoint_L3": -1.0}, "setpoint_L2 and setpoint_L3"),
])
def test_half_given_per_phase_values_are_refused(period, why):
    with pytest.raises(ProfileError, match=why):
        v2x(1, "TxDefaultProfile", 0, period)


def test_a_per_phase_update_names_phase_l1_too():
    store = ProfileStore()
    store.install(1, ChargingProfile.from_ocpp({
        "id": 5, "stackLevel": 1, "chargingProfilePurpose": "TxDefaultProfile", "chargingProfileKind": "Dynamic",
        "chargingSchedule": [{"id": 5, "chargingRateUnit": "W", "chargingSchedulePeriod": [
            {"startPeriod": 0, "limit": 6900.0}]}]}))
    with pytest.raises(ProfileError, match="limit_L2, limit_L3 without the phase L1 value"):
        store.update_dynamic(5, {"limit_L2": 1150.0, "limit_L3": 1150.0})
    store.update_dynamic(5, {"limit": 2300.0, "limit_L2": 1150.0, "limit_L3": 2300.0})
    assert store.limit_at(at(1), 1).amps == pytest.approx(5.0)
