"""The EV emulator's physical side: plug, pilot and battery.

Without high-level communication an EV charges by the pilot alone (IEC 61851-1 basic charging):
it closes state C when the EVSE's PWM offers current and takes at most what is offered, what its
on-board charger can take and what its battery accepts. The ISO 15118 side of the EV builds on
this same plug.
"""

from __future__ import annotations

import asyncio

from harness.emulators.plug import PluggedEv
from harness.iec61851.pilot import CpState, offered_current
from harness.trace import Recorder
from harness.v2g.battery import Battery

#: below this current IEC 61851-1 does not allow charging
MIN_CURRENT = 6.0


class BasicEv(PluggedEv):
    def __init__(self, recorder: Recorder, battery: Battery, *, max_current: float = 32.0,
                 phases: int = 3, control_period: float = 0.1, name: str = "ev") -> None:
        super().__init__(recorder, name=name, control_period=control_period)
        self._battery = battery
        self.max_current = max_current
        self.phases = phases
        self.wants_energy = True

    @property
    def battery(self) -> Battery:
        return self._battery

    def current_wanted(self) -> float:
        """What the EV draws now; zero while no usable current is offered or it wants none."""
        assert self.pilot is not None and self.line is not None
        offered = offered_current(self.pilot.duty)
        if not self.wants_energy or self.battery.full or offered < MIN_CURRENT:
            return 0.0
        voltage = self.line.read().voltage
        accepted = self.battery.acceptance_w() / (voltage * self.phases) if voltage > 0 else 0.0
        return max(0.0, min(offered, self.max_current, accepted))

    async def _control(self) -> None:
        assert self.pilot is not None and self.line is not None
        while True:
            self._account()
            current = self.current_wanted()
            if current > 0:
                if self.pilot.state is not CpState.C:
                    await self.pilot.set_state(CpState.C)
                self.line.set(current=current, phases=self.phases)
            else:
                self.line.set(current=0.0)
                if self.pilot.state is CpState.C:
                    await self.pilot.set_state(CpState.B)
            await asyncio.sleep(self.control_period)
