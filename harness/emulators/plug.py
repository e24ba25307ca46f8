"""What every EV emulator does at the plug.

Plugging in puts the control pilot in state B and starts the EV's control loop; unplugging stops
it, lets the current fall to zero and puts the pilot back to A. While plugged, the energy that
flowed through the cable since the last look goes into the battery: import charges it, export
(bidirectional transfer) discharges it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from harness.emulators.power import PowerFlow
from harness.iec61851.pilot import CpState, PilotLine
from harness.trace import Layer, Recorder
from harness.v2g.battery import Battery


class PluggedEv:
    """Base of the EV emulators: subclasses give the battery and the control loop."""

    def __init__(self, recorder: Recorder, *, name: str, control_period: float) -> None:
        self.recorder = recorder
        self.name = name
        self.control_period = control_period
        self.pilot: PilotLine | None = None
        self.line: PowerFlow | None = None
        self._task: asyncio.Task | None = None
        self._imported = 0.0
        self._exported = 0.0

    @property
    def battery(self) -> Battery:
        raise NotImplementedError

    @property
    def plugged(self) -> bool:
        return self.pilot is not None

    def _plug_facts(self) -> tuple[str, dict[str, Any], dict[str, Any]]:
        """What the PlugIn event says beyond the state of charge: summary, payload, keys."""
        return "", {}, {}

    async def _control(self) -> None:
        raise NotImplementedError

    async def plug_in(self, pilot: PilotLine, line: PowerFlow) -> None:
        if self.pilot is not None:
            raise RuntimeError(f"{self.name} is already plugged in")
        self.pilot, self.line = pilot, line
        reading = line.read()
        self._imported, self._exported = reading.imported_wh, reading.exported_wh
        note, payload, keys = self._plug_facts()
        self.recorder.emit(Layer.PILOT, "PlugIn", f"{self.name} plugged in (SoC {self.battery.soc:.0%}{note})",
                           src=self.name, payload={"soc": self.battery.soc, **payload},
                           keys={"evse_id": pilot.evse_id, **keys})
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
        _, _, keys = self._plug_facts()
        self.recorder.emit(Layer.PILOT, "Unplug", f"{self.name} unplugged (SoC {self.battery.soc:.0%})",
                           src=self.name, payload={"soc": self.battery.soc},
                           keys={"evse_id": pilot.evse_id, **keys})

    def _account(self) -> None:
        """Move the energy that flowed since the last look into the battery."""
        if self.line is None:
            return
        reading = self.line.read()
        delta_wh = (reading.imported_wh - self._imported) - (reading.exported_wh - self._exported)
        self._imported, self._exported = reading.imported_wh, reading.exported_wh
        self.battery.integrate(delta_wh * 3600.0, 1.0)
