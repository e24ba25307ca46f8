"""The hops of a grid signal found on the timeline (harness.correlation.latency): the order the
events come in on AC and DC, a charger that reaches the EV before its CALLRESULT reaches the CSMS,
and a chain that breaks off."""

from __future__ import annotations

from harness.correlation.latency import MOMENTS, SETTLED_SAMPLES, grid_hops
from harness.trace import Layer, Recorder


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _timeline(order: list[tuple[float, str, dict]]) -> tuple[Recorder, float]:
    clock = Clock()
    trace = Recorder(clock=clock)
    signal_at = clock.now
    trace.emit(Layer.GRID, "GridSignal", "export 5 kW", src="grid", observer="grid")
    for at, name, fields in order:
        clock.now = signal_at + at
        layer = {"MeterSample": Layer.METER, "SetChargingProfile": Layer.OCPP, "CsmsDecision": Layer.OCPP}.get(
            name, Layer.V2G)
        trace.emit(layer, name, name, **fields)
    return trace, signal_at


def _call(kind: str) -> dict:
    return {"observer": "csms", "payload": {"type": kind, "action": "SetChargingProfile"}}


def _samples(start: float, watts: list[float]) -> list[tuple[float, str, dict]]:
    return [(start + 0.1 * i, "MeterSample", {"observer": "meter", "payload": {"power_w": w}})
            for i, w in enumerate(watts)]


def test_an_ac_chain_in_order():
    trace, signal = _timeline([
        (0.002, "CsmsDecision", {"observer": "csms"}),
        (0.003, "SetChargingProfile", _call("CALL")),
        (0.006, "SetChargingProfile", _call("CALLRESULT")),
        (0.004, "TargetPower", {"src": "evse", "payload": {"target_w": 11000.0}}),  # the old target: not it
        (0.010, "TargetPower", {"src": "evse", "payload": {"target_w": -5000.0}}),
        (0.015, "PowerApplied", {"src": "ev", "payload": {"target_w": -5000.0}}),
        *_samples(0.05, [11000.0, -4990.0, -5001.0, -4999.0, -5000.0]),
    ])
    hops = grid_hops(list(trace), signal, -5000.0, 100.0)
    assert hops.missing is None
    assert [name for name, _ in hops.hops()] == list(MOMENTS)
    took = dict(hops.hops())
    assert round(took["decided"], 4) == 0.002 and round(took["target sent to EV"], 4) == 0.004
    assert round(hops.chain_s, 4) == 0.15  # the first of SETTLED_SAMPLES samples within tolerance
    assert SETTLED_SAMPLES == 3


def test_a_dc_stage_applied_while_answering_and_a_target_before_the_acknowledgement_count_zero():
    trace, signal = _timeline([
        (0.002, "CsmsDecision", {"observer": "csms"}),
        (0.003, "SetChargingProfile", _call("CALL")),
        (0.008, "PowerApplied", {"src": "evse", "payload": {"target_w": -5000.0}}),
        (0.008, "TargetPower", {"src": "evse", "payload": {"target_w": -5000.0}}),
        (0.030, "SetChargingProfile", _call("CALLRESULT")),
        *_samples(0.05, [-5000.0] * 3),
    ])
    took = dict(grid_hops(list(trace), signal, -5000.0, 100.0).hops())
    assert took["target sent to EV"] == 0.0 and took["power applied"] == 0.0
    assert round(took["acknowledged"], 4) == 0.027


def test_a_schedule_carries_the_bound_in_the_requested_direction():
    trace, signal = _timeline([
        (0.002, "CsmsDecision", {"observer": "csms"}),
        (0.003, "SetChargingProfile", _call("CALL")),
        (0.004, "SetChargingProfile", _call("CALLRESULT")),
        (0.009, "SchedulePower", {"src": "evse", "payload": {"upper_w": 0.0, "lower_w": -5000.0}}),
        (0.012, "PowerApplied", {"src": "ev", "payload": {"target_w": -5000.0}}),
        *_samples(0.05, [-5000.0] * 3),
    ])
    hops = grid_hops(list(trace), signal, -5000.0, 100.0)
    assert hops.missing is None and round(dict(hops.hops())["target sent to EV"], 4) == 0.005


def test_a_chain_that_breaks_off_says_where():
    trace, signal = _timeline([
        (0.002, "CsmsDecision", {"observer": "csms"}),
        (0.003, "SetChargingProfile", _call("CALL")),
        (0.004, "SetChargingProfile", _call("CALLRESULT")),
        (0.009, "TargetPower", {"src": "evse", "payload": {"target_w": -5000.0}}),
        (0.012, "PowerApplied", {"src": "ev", "payload": {"target_w": -5000.0}}),
        *_samples(0.05, [-5000.0, -5000.0, 0.0, -5000.0, -5000.0]),  # never three in a row
    ])
    hops = grid_hops(list(trace), signal, -5000.0, 100.0)
    assert hops.chain_s is None and "never saw 3 samples within 100 W of -5000 W" in hops.missing
    assert dict(hops.hops())["power settled"] is None
