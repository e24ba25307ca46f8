"""The physical side of the emulators and what they stand on: the pilot's duty cycles
(harness.iec61851), the power flow, the battery (harness.v2g.battery)."""

from __future__ import annotations

import pytest

from harness.emulators.power import PowerFlow
from harness.iec61851.pilot import duty_for_current, offered_current
from harness.v2g.battery import Battery


@pytest.mark.parametrize("duty, amps", [
    (5.0, 0.0), (7.5, 0.0), (8.0, 6.0), (10.0, 6.0), (16.0, 9.6), (50.0, 30.0), (85.0, 51.0),
    (90.0, 65.0), (96.0, 80.0), (97.0, 80.0), (98.0, 0.0), (100.0, 0.0),
])
def test_iec_61851_duty_cycle_table(duty, amps):
    assert offered_current(duty) == pytest.approx(amps)


@pytest.mark.parametrize("amps", [6, 10, 16, 32, 51, 63, 80])
def test_duty_for_current_inverts_the_table(amps):
    assert offered_current(duty_for_current(amps)) == pytest.approx(amps, abs=0.1)
    assert duty_for_current(5.9) == 100.0


def test_energy_is_integrated_exactly_for_piecewise_constant_power():
    now = [0.0]
    flow = PowerFlow(voltage=230.0, phases=3, clock=lambda: now[0])
    flow.set(current=16.0)  # contactor open: no power yet
    now[0] = 10.0
    assert flow.read().imported_wh == 0.0
    flow.set(contactor_closed=True)
    now[0] = 3610.0
    assert flow.read().imported_wh == pytest.approx(230 * 16 * 3)
    flow.set(current=-10.0)  # discharging
    now[0] = 3610.0 + 1800.0
    reading = flow.read()
    assert reading.exported_wh == pytest.approx(230 * 10 * 3 / 2) and reading.power == pytest.approx(-6900.0)


def test_battery_tapers_near_full_and_integrates():
    battery = Battery(capacity_wh=10_000, soc=0.5, max_charge_w=10_000)
    assert battery.acceptance_w() == 10_000
    battery.integrate(10_000, 1800)
    assert battery.soc == pytest.approx(1.0) and battery.full and battery.acceptance_w() == 0
    battery.soc = 0.9
    assert battery.acceptance_w() == pytest.approx(5_000)
    with pytest.raises(ValueError):
        Battery(capacity_wh=1, soc=1.5, max_charge_w=1)
