"""What the power plot draws of the limits the CSMS set (harness.power.plot.limit_marks): each
period of a profile at its time, and the Dynamic updates, read from the timeline alone."""

from __future__ import annotations

import datetime as _dt

import pytest

from harness.power.plot import limit_marks, power_plot
from harness.trace import Layer, Recorder


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _call(trace: Recorder, action: str, payload: dict, kind: str = "CALL") -> None:
    trace.emit(Layer.OCPP, action, f"{kind} {action}", src="csms", observer="csms",
               payload={"type": kind, "payload": payload}, keys={"station_id": "CS1"})


def _stepped(start: _dt.datetime) -> dict:
    return {"evseId": 1, "chargingProfile": {
        "id": 1, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile", "chargingProfileKind": "Absolute",
        "chargingSchedule": [{"id": 1, "chargingRateUnit": "A", "startSchedule": start.isoformat(),
                              "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.0},
                                                         {"startPeriod": 3, "limit": 8.0}]}]}}


def test_each_period_of_a_profile_is_drawn_from_its_time():
    clock = Clock()
    trace = Recorder(clock=clock)
    since = clock()
    # the schedule started 0.5 s before the profile was sent (startSchedule has whole seconds)
    start = _dt.datetime.now(_dt.timezone.utc) - _dt.timedelta(seconds=0.5)
    _call(trace, "SetChargingProfile", _stepped(start))
    clock.t += 10
    marks = limit_marks(trace, since=since, until=clock(), keys={"station_id": "CS1"}, watts_per_amp=690.0)
    (x0, kw0), (x1, kw1) = marks["limit"]
    assert (x0, kw0) == (0.0, pytest.approx(11.04))
    assert x1 == pytest.approx(2.5, abs=0.05) and kw1 == pytest.approx(5.52)


def test_a_later_profile_replaces_what_an_earlier_one_said_for_later():
    clock = Clock()
    trace = Recorder(clock=clock)
    since = clock()
    _call(trace, "SetChargingProfile", _stepped(_dt.datetime.now(_dt.timezone.utc)))
    clock.t += 1
    _call(trace, "SetChargingProfile", {"evseId": 1, "chargingProfile": {
        "id": 2, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile", "chargingProfileKind": "Relative",
        "chargingSchedule": [{"id": 2, "chargingRateUnit": "W", "chargingSchedulePeriod": [
            {"startPeriod": 0, "limit": 4000.0}]}]}})
    clock.t += 10
    marks = limit_marks(trace, since=since, until=clock(), keys=None, watts_per_amp=690.0)
    assert [(round(x, 2), round(kw, 2)) for x, kw in marks["limit"]] == [(0.0, 11.04), (1.0, 4.0)]


def test_pulled_dynamic_updates_are_drawn_once_per_change():
    clock = Clock()
    trace = Recorder(clock=clock)
    since = clock()
    for value in (-3000.0, -3000.0, -2000.0):
        clock.t += 1
        _call(trace, "PullDynamicScheduleUpdate", {"chargingProfileId": 9}, "CALL")
        _call(trace, "PullDynamicScheduleUpdate", {"status": "Accepted", "scheduleUpdate": {"setpoint": value}},
              "CALLRESULT")
    marks = limit_marks(trace, since=since, until=clock() + 1, keys=None, watts_per_amp=690.0)
    assert [(x, kw) for x, kw in marks["setpoint"]] == [(1.0, -3.0), (3.0, -2.0)]


def test_the_plot_draws_from_a_timeline_alone(tmp_path):
    clock = Clock()
    trace = Recorder(clock=clock)
    since = clock()
    _call(trace, "SetChargingProfile", _stepped(_dt.datetime.now(_dt.timezone.utc)))
    for second in range(6):
        trace.emit(Layer.METER, "MeterSample", "P", src="meter", observer="meter",
                   payload={"power_w": 11040.0 if second < 3 else 5520.0})
        clock.t += 1
    path = power_plot(trace, tmp_path / "p.png", since=since, until=clock(), title="stepped")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
