"""Grid scenarios and the CSMS's strategies: every shipped scenario loads, a bad file names each
problem, and each strategy's profile is one the OCPP 2.1 schema and the harness's own composite
schedule accept with the meaning intended."""

from __future__ import annotations

import datetime as _dt

import pytest

from harness.ocpp import grid
from harness.ocpp.frames import validate
from harness.ocpp.smart_charging import ChargingProfile, ProfileStore
from harness.ocpp.versions import OcppVersion

NOW = _dt.datetime(2026, 12, 7, 18, 0, tzinfo=_dt.timezone.utc)


@pytest.mark.parametrize("path", sorted(grid.SCENARIOS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_scenario_loads(path):
    scenario = grid.load_scenario(path)
    assert scenario.events and all(e.duration_s > 0 for e in scenario.events)
    assert list(scenario.events) == sorted(scenario.events, key=lambda e: e.start_s)


def test_a_bad_scenario_names_every_problem(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\ntolerance_percent: -1\nlatency_limits_s: {chian: 3}\nevents:\n"
                    "  - {start_s: 0, export_kw: 5, import_kw: 3}\n  - {duration_s: 0, price: 0.3}\n"
                    "  - {export_kw: -2}\n")
    with pytest.raises(grid.ScenarioError) as caught:
        grid.load_scenario(path)
    problems = "\n".join(caught.value.problems)
    assert "tolerance_percent" in problems
    assert "latency_limits_s.chian: unknown field (did you mean 'chain'?)" in problems
    assert "events[0]: needs exactly one of" in problems
    assert "events[1].duration_s" in problems
    assert "events[2].export_kw: must be at least 0" in problems


def test_a_scenario_without_events_is_refused(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("name: empty\nevents: []\n")
    with pytest.raises(grid.ScenarioError, match="events: must be a non-empty list"):
        grid.load_scenario(path)


def _decide(strategy: str, event: grid.GridEvent, transaction_id: str | None = "TX-1") -> grid.Decision:
    return grid.strategy(strategy).decide(event, profile_id=9001, duration_s=60, transaction_id=transaction_id,
                                          now=NOW)


@pytest.mark.parametrize("strategy", sorted(grid.STRATEGIES))
@pytest.mark.parametrize("event", [grid.event(export_kw=5), grid.event(import_kw=6), grid.event(price=0.6),
                                   grid.event(price=0.01), grid.event(frequency_hz=49.7),
                                   grid.event(frequency_hz=50.3)], ids=lambda e: e.describe().split(": ")[1])
def test_each_strategy_sets_a_profile_the_2_1_schema_takes(strategy, event):
    decision = _decide(strategy, event)
    assert decision.profile is not None
    # the schema of the ocpp package (not the harness's own reading) accepts the request
    validate("SetChargingProfile", {"evseId": 1, "chargingProfile": decision.profile}, OcppVersion.V21, request=True)
    ChargingProfile.from_ocpp(decision.profile)  # and the reference EVSE takes it


def test_the_setpoint_strategy_asks_for_exactly_the_power_requested():
    store = ProfileStore()
    store.install(1, ChargingProfile.from_ocpp(_decide("setpoint", grid.event(export_kw=6.9)).profile))
    found = store.limit_at(NOW + _dt.timedelta(seconds=1), 1, transaction_id="TX-1")
    assert found.mode == "CentralSetpoint" and found.setpoint_amps == pytest.approx(-10.0)
    assert found.discharge_amps == pytest.approx(10.0)


def test_the_limit_strategy_bounds_and_lets_the_ev_choose():
    export = _decide("limit", grid.event(export_kw=6.9)).profile
    period = export["chargingSchedule"][0]["chargingSchedulePeriod"][0]
    assert period == {"startPeriod": 0, "operationMode": "ExternalLimits", "limit": 0.0, "dischargeLimit": -6900.0}
    cap = _decide("limit", grid.event(import_kw=4)).profile
    assert cap["chargingSchedule"][0]["chargingSchedulePeriod"][0] == {"startPeriod": 0, "limit": 4000.0}
    assert not grid.needs_v21(cap) and grid.needs_v21(export)


def test_without_a_transaction_the_profile_is_the_default_and_it_ends_with_the_event():
    profile = _decide("setpoint", grid.event(export_kw=5), transaction_id=None).profile
    assert profile["chargingProfilePurpose"] == "TxDefaultProfile" and "transactionId" not in profile
    store = ProfileStore()
    store.install(1, ChargingProfile.from_ocpp(profile))
    assert store.limit_at(NOW + _dt.timedelta(seconds=59), 1) is not None
    assert store.limit_at(NOW + _dt.timedelta(seconds=60), 1) is None  # duration over: nothing asked


@pytest.mark.parametrize("event", [grid.event(price=0.2), grid.event(frequency_hz=50.0)], ids=["price", "frequency"])
def test_a_signal_between_the_thresholds_asks_for_nothing(event):
    for name in grid.STRATEGIES:
        decision = _decide(name, event)
        assert decision.profile is None and "nothing to do" in decision.why


def test_a_grid_event_made_in_a_test_is_checked():
    with pytest.raises(ValueError, match="exactly one"):
        grid.event(export_kw=1, import_kw=1)
    with pytest.raises(ValueError):
        grid.event(export_kw=-1)


@pytest.mark.parametrize("strategy", sorted(grid.STRATEGIES))
def test_a_dynamic_profile_and_its_update_are_valid_2_1_requests(strategy):
    decision = grid.strategy(strategy).decide(grid.event(export_kw=5), profile_id=9001, duration_s=60,
                                              transaction_id="TX-1", now=NOW, dynamic=True)
    assert decision.profile["chargingProfileKind"] == "Dynamic" and grid.needs_v21(decision.profile)
    validate("SetChargingProfile", {"evseId": 1, "chargingProfile": decision.profile}, OcppVersion.V21, request=True)
    period, power, _ = grid.strategy(strategy).period(grid.event(export_kw=3))
    update = {k: v for k, v in period.items() if k in ("limit", "dischargeLimit", "setpoint")}
    validate("UpdateDynamicSchedule", {"chargingProfileId": 9001, "scheduleUpdate": update}, OcppVersion.V21,
             request=True)
    assert power == -3000.0
