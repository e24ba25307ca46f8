"""The EV emulator's physical side: plug, pilot and battery.

Without high-level communication an EV charges by the pilot alone (IEC 61851-1 basic charging):
it closes state C when the EVSE's PWM offers current and takes at most what is offered, what its
on-board charger can take and what its battery accepts. The ISO 15118 side of the EV builds on
this same plug.
"""

from __future__ import annotations

import asyncio

from harness.emulators.battery import Battery
from harness.emulators.pilot import CpState, SimulatedPilot, offered_current
from harness.emulators.power import PowerFlow
from harness.trace import Layer, Recorder

#: below this current IEC 61851-1 does not allow charging
MIN_CURRENT = 6.0


class BasicEv:
    def __init__(self, recorder: Recorder, battery: Battery, *, max_current: float = 32.0,
                 phases: int = 3, control_period: float = 0.1, name: str = "ev") -> None:
        self.recorder = recorder
        self.battery = battery
        self.max_current = max_current
        self.phases = phases
        self.control_period = control_period
        self.name = name
        self.wants_energy = True
        self.pilot: SimulatedPilot | None = None
        self.line: PowerFlow | None = None
        self._task: asyncio.Task | None = None
        self._last_wh = 0.0

    @property
    def plugged(self) -> bool:
        return self.pilot is not None

    async def plug_in(self, pilot: SimulatedPilot, line: PowerFlow) -> None:
        if self.pilot is not None:
            raise RuntimeError(f"{self.name} is already plugged in")
        self.pilot, self.line = pilot, line
        self._last_wh = line.read().imported_wh
        self.recorder.emit(Layer.PILOT, "PlugIn", f"{self.name} plugged in (SoC {self.battery.soc:.0%})",
                           src=self.name, payload={"soc": self.battery.soc}, keys={"evse_id": pilot.evse_id})
        await pilot.set_state(CpState.B)
        self._task = asyncio.create_task(self._control())

    async def unplug(self) -> None:
        if self.pilot is None or self.line is None:
            return
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self._account()
        self.line.set(current=0.0)
        pilot, self.pilot, self.line = self.pilot, None, None
        await pilot.set_state(CpState.A)
        self.recorder.emit(Layer.PILOT, "Unplug", f"{self.name} unplugged (SoC {self.battery.soc:.0%})",
                           src=self.name, payload={"soc": self.battery.soc}, keys={"evse_id": pilot.evse_id})

    def _account(self) -> None:
        """Move the energy that flowed since the last look into the battery."""
        assert self.line is not None
        reading = self.line.read()
        self.battery.integrate(1.0, (reading.imported_wh - self._last_wh) * 3600.0)
        self._last_wh = reading.imported_wh

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
