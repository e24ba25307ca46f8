"""Power schedules over time (harness.v2g.schedules): what the SECC offers encodes to valid -2,
DIN and -20 messages and reads back as the same steps, and the EV follows the step in force at
each moment, whoever sent the schedule."""

from __future__ import annotations

import pytest

from harness import exi
from harness.v2g import schedules
from harness.v2g.battery import Battery
from harness.v2g.schedules import HORIZON_S, Bounds, Offer
from harness.v2g.values import physical, physical_value, rational, rational_value
from harness.v2g.vehicle import ChargePlan, Vehicle

OFFERS = (Offer(0, 11040.0, 5000.0), Offer(600, 5520.0, 2000.0), Offer(3600, 11040.0, 0.0, setpoint_w=-3000.0))


def test_a_step_is_in_force_from_its_start_until_the_next():
    steps = [Bounds(0, 1.0), Bounds(10, 2.0), Bounds(20, 3.0)]
    assert [schedules.at(steps, t).upper_w for t in (0, 9.9, 10, 19, 20, 1e6)] == [1, 1, 2, 2, 3, 3]
    assert schedules.at([Bounds(5, 7.0)], 0) is None  # before the first step: nothing in force yet
    assert schedules.at([], 3) is None and schedules.limit_at((), 3) == float("inf")


def test_a_pmax_schedule_has_an_entry_per_step_and_the_last_lasts_to_the_horizon():
    entries = schedules.pmax_entries(OFFERS, lambda watts: physical(watts, "W"))
    assert [e["RelativeTimeInterval"] for e in entries] == [{"start": 0}, {"start": 600},
                                                            {"start": 3600, "duration": HORIZON_S - 3600}]
    assert schedules.from_pmax_entries(entries, physical_value) == (
        Bounds(0, 11040.0), Bounds(600, 5520.0), Bounds(3600, 11040.0))


def test_a_multi_entry_sa_schedule_is_a_valid_iso15118_2_message():
    """PMaxScheduleType allows 1024 PMaxScheduleEntry (ISO 15118-2 XSD); the EXI codec takes them."""
    body = {"ResponseCode": "OK", "EVSEProcessing": "Finished", "SAScheduleList": {"SAScheduleTuple": [{
        "SAScheduleTupleID": 1, "PMaxSchedule": {"PMaxScheduleEntry": schedules.pmax_entries(
            OFFERS, lambda watts: physical(watts, "W"))}}]},
        "AC_EVSEChargeParameter": {"AC_EVSEStatus": {"NotificationMaxDelay": 0, "EVSENotification": "None",
                                                     "RCD": False},
                                   "EVSENominalVoltage": physical(230, "V"), "EVSEMaxCurrent": physical(16, "A")}}
    message = {"V2G_Message": {"Header": {"SessionID": "0102030405060708"},
                               "Body": {"ChargeParameterDiscoveryRes": body}}}
    decoded = exi.decode(exi.encode(message, "iso2"), "iso2")
    entries = decoded["V2G_Message"]["Body"]["ChargeParameterDiscoveryRes"]["SAScheduleList"]["SAScheduleTuple"][0][
        "PMaxSchedule"]["PMaxScheduleEntry"]
    assert [physical_value(e["PMax"]) for e in entries] == [11040.0, 5520.0, 11040.0]


def test_the_20_schedules_bound_from_above_and_below_and_keep_their_anchor():
    charging = schedules.power_schedule(OFFERS, lambda offer: offer.upper_w, rational, anchor=1_800_000_000)
    discharging = schedules.power_schedule(OFFERS, lambda offer: offer.lower_w, rational, anchor=1_800_000_000)
    listed = charging["PowerSchedule"]["PowerScheduleEntries"]["PowerScheduleEntry"]
    assert [e["Duration"] for e in listed] == [600, 3000, HORIZON_S - 3600]
    anchor, bounds = schedules.from_power_schedules(charging, discharging, rational_value)
    assert anchor == 1_800_000_000
    assert bounds == (Bounds(0, 11040.0, -5000.0), Bounds(600, 5520.0, -2000.0), Bounds(3600, -3000.0, -3000.0))


def test_a_discharging_schedule_on_another_anchor_is_read_on_the_charging_ones_time_base():
    charging = {"PowerSchedule": {"TimeAnchor": 1000, "PowerScheduleEntries": {"PowerScheduleEntry": [
        {"Duration": 100, "Power": rational(5000)}]}}}
    discharging = {"PowerSchedule": {"TimeAnchor": 1050, "PowerScheduleEntries": {"PowerScheduleEntry": [
        {"Duration": 50, "Power": rational(-1000)}]}}}
    assert schedules.from_power_schedules(charging, discharging, rational_value)[1] == (
        Bounds(0, 5000.0, None), Bounds(50, 5000.0, -1000.0))


def test_no_more_entries_than_the_schemas_allow():
    many = [Offer(i, 1000.0 + i) for i in range(1500)]
    assert len(schedules.pmax_entries(many, float)) == schedules.MAX_ENTRIES == 1024
    assert len(schedules.power_schedule(many, lambda o: o.limit_w, float, 0)["PowerSchedule"][
        "PowerScheduleEntries"]["PowerScheduleEntry"]) == 1024


class _Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def vehicle():
    clock = _Clock()
    ev = Vehicle(mac="020000000001", battery=Battery(60_000, 0.5, 22_000, max_discharge_w=11_000), clock=clock)
    ev.plan = ChargePlan(phases=3)
    return ev, clock


def test_an_ev_keeps_within_the_pmax_in_force_even_if_the_current_offer_stays_high(vehicle):
    """A -2 SAScheduleTuple's PMax caps the charging power at each time, whatever EVSEMaxCurrent
    says."""
    ev, clock = vehicle
    ev.grant.ac_max_current = 32.0
    ev.grant.take_schedule((Bounds(0, 11040.0), Bounds(600, 5520.0)), clock.now, follow=False)
    assert ev.ac_current() == pytest.approx(16.0)
    clock.now += 600
    assert ev.ac_current() == pytest.approx(8.0)
    ev.grant.drop_schedule()
    assert ev.ac_current() == pytest.approx(22_000 / 690)  # the battery's own limit again


def test_an_ev_in_20_scheduled_mode_follows_the_bound_its_wish_picks_at_each_time(vehicle):
    ev, clock = vehicle
    ev.plan = ChargePlan(protocols=("iso20-ac",), energy="AC_BPT", phases=3, discharge=True)
    ev.grant.ac_max_current = 32.0
    ev.grant.take_schedule((Bounds(0, 11040.0, -5000.0), Bounds(600, 5520.0, -2000.0)), clock.now, follow=True)
    assert ev.target() == -5000.0 and ev.discharging()
    clock.now += 601
    assert ev.target() == -2000.0
    ev.plan = ChargePlan(protocols=("iso20-ac",), energy="AC_BPT", phases=3, discharge=False)
    assert ev.target() == 5520.0
    ev.grant.target_power = 4000.0  # a charge loop's EVSETargetActivePower is a command
    assert ev.target() == 4000.0
