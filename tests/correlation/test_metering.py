"""The metering cross-check: agreement within class + analyzer + one register step, and a failure
message that shows every number it compared."""

from __future__ import annotations

import pytest

from harness.correlation.metering import assert_metering, check_energy, check_metering, register_resolution
from harness.ocpp.transactions import SampledValue, TransactionView
from harness.power.analyzer import ChannelReading, Measurement
from harness.power.sampler import MeterRun, record
from harness.trace import Layer, Recorder


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def _measurement(power: float, imported: float) -> Measurement:
    return Measurement((ChannelReading(1, 230.0, power / 230.0, power),), power, imported, 0.0)


def _session(charger_readings: list[float], power_reports: list[float], analyzer_wh: float):
    """A run of 10 s at 3680 W measured every second, and a transaction reporting ``charger_readings``."""
    clock = Clock()
    trace = Recorder(clock=clock)
    run = MeterRun(trace, clock(), first=_measurement(0.0, 0.0), instrument="sim at TCPIP::x", accuracy=0.1)
    for second in range(11):
        record(trace, _measurement(3680.0, analyzer_wh * second / 10))
        clock.t += 1.0
    run.last = _measurement(3680.0, analyzer_wh)
    run.ended = clock()
    tx = TransactionView("CP-1", "tx-1")
    for index, value in enumerate(charger_readings):
        context = "Transaction.Begin" if index == 0 else \
            "Transaction.End" if index == len(charger_readings) - 1 else "Sample.Periodic"
        tx.samples.append(SampledValue(f"t{index}", "Energy.Active.Import.Register", value, "Wh", context))
    for index, power in enumerate(power_reports):
        values = [{"measurand": "Power.Active.Import", "value": power, "context": "Sample.Periodic",
                   "unitOfMeasure": {"unit": "W"}}]
        clock.t = run.started + 3.0 + index * 3
        tx.messages.append(trace.emit(Layer.OCPP, "TransactionEvent", "tx", src="evse", observer="csms",
                                      payload={"type": "CALL", "payload": {"meterValue": [
                                          {"timestamp": f"p{index}", "sampledValue": values}]}}))
    return tx, run


def test_agreement_within_class_analyzer_and_register_step():
    tx, run = _session([1000.0, 1005.0, 1010.0, 1010.2], [3690.0, 3670.0], analyzer_wh=10.2)
    check = assert_metering(tx, run, dut_class="A")
    energy = check.energy[0]
    assert energy.reported_wh == pytest.approx(10.2) and energy.resolution_wh == 0.1
    assert energy.tolerance_wh == pytest.approx(10.2 * 0.021 + 0.1)
    assert check.power.compared == 2 and abs(check.power.worst_percent) < 0.5


def test_a_disagreeing_meter_fails_with_every_number_explained():
    tx, run = _session([1000, 1006, 1012], [3900.0], analyzer_wh=10.0)
    with pytest.raises(AssertionError) as failure:
        assert_metering(tx, run, dut_class="B")
    text = str(failure.value)
    assert "charger 12.0000 Wh, analyzer 10.0000 Wh, difference +2.0000 Wh (+20.000 %)" in text
    assert "allowed +-1.1100 Wh = class B (1 %) + analyzer 0.1 % of 10.0000 Wh + register resolution 1 Wh" in text
    assert "charger register readings: 1000, 1006, 1012" in text
    assert "charger 3900.0 W, analyzer 3680.0 W (+5.98 %)" in text


def test_too_few_readings_is_a_failure_not_an_error():
    tx, run = _session([1000.0], [], analyzer_wh=10.0)
    check = check_metering(tx, run)
    assert not check.ok and "fewer than two register readings" in check.explain()


def test_unknown_class_and_register_resolution():
    tx, run = _session([1.0, 2.0], [], analyzer_wh=1.0)
    with pytest.raises(ValueError, match="unknown accuracy class 'Z'"):
        check_energy(tx, run, dut_class="Z")
    assert register_resolution([12.0, 15.0]) == 1.0
    assert register_resolution([12.5, 15.25]) == 0.01
    assert register_resolution([0.1234]) == 0.001


def test_energy_between_interpolates_the_integrator():
    _, run = _session([0.0, 1.0], [], analyzer_wh=10.0)
    imported, exported = run.energy_between(run.started + 2.5, run.started + 7.5)
    assert imported == pytest.approx(5.0) and exported == 0.0


def test_ocpp16_meter_start_and_stop_are_whole_wh():
    tx, run = _session([3.37, 7.04], [], analyzer_wh=10.7)
    tx.meter_start_wh, tx.meter_stop_wh = 0.0, 11.0  # integers by the 1.6 schema, rounded from 10.7
    check = check_energy(tx, run)
    assert check.resolution_wh == 1.0 and check.ok, check.explain()


def test_a_charger_sample_taken_at_a_step_the_analyzer_shows_next_is_not_compared():
    """The analyzer samples every 0.1 s on the emulated rig: a charger reading taken just after
    the power dropped cannot be held against the analyzer's reading from before the drop, but a
    steady disagreement still fails."""
    from harness.correlation.metering import check_power

    clock = Clock()
    trace = Recorder(clock=clock)
    run = MeterRun(trace, clock(), first=_measurement(0.0, 0.0), instrument="sim at TCPIP::x", accuracy=0.1)
    for tick in range(30):  # 6 kW for 2 s, then 0 W
        record(trace, _measurement(6000.0 if tick < 20 else 0.0, 0.0))
        clock.t += 0.1
    run.ended = clock()
    tx = TransactionView("CP-1", "tx-1")
    for at, reported in ((run.started + 1.5, 6000.0), (run.started + 1.95, 0.0), (run.started + 1.6, 3000.0)):
        clock.t = at
        tx.messages.append(trace.emit(Layer.OCPP, "TransactionEvent", "tx", src="evse", observer="csms", payload={
            "type": "CALL", "payload": {"meterValue": [{"timestamp": f"{at}", "sampledValue": [
                {"measurand": "Power.Active.Import", "value": reported, "context": "Sample.Periodic"}]}]}}))
    check = check_power(tx, run)
    assert check.compared == 2 and check.skipped == 1  # the 0 W at 1.95 s: the drop shows at 2.0 s
    assert len(check.details) == 1 and "charger 3000.0 W" in check.details[0]


def test_a_reading_that_answered_late_counts_at_the_moment_it_was_asked_for():
    """A busy link delays an analyzer's answer; its integrator value belongs to the moment of the
    query, so the run's energy between two instants is interpolated on those moments."""
    clock = Clock()
    trace = Recorder(clock=clock)
    run = MeterRun(trace, clock(), first=_measurement(0.0, 0.0))
    for second, (asked_late_by, imported) in enumerate([(0.0, 0.0), (0.0, 1.0), (0.8, 2.0), (0.0, 3.0)]):
        asked = clock()
        clock.t += asked_late_by  # the third answer arrives 0.8 s after it was asked for
        record(trace, _measurement(3600.0, imported), read_at=asked)
        clock.t = 101.0 + second
    run.ended = clock()
    imported, _ = run.energy_between(100.0, 102.0)
    assert imported == pytest.approx(2.0)  # placed at its answer (102.8), it would read 1.56
    assert [t for t, _ in run.power_series()] == [100.0, 101.0, 102.0, 103.0]
