"""The control pilot (CP) line between EV and EVSE, IEC 61851-1 Annex A.

The EV chooses the state (it switches the resistors), the EVSE chooses the PWM duty cycle that
announces the current it offers; 5 % means "use digital communication" (ISO 15118-3 starts SLAC
on state B with 5 %).
"""

from __future__ import annotations

import asyncio
import enum
from typing import Callable, Protocol

from harness.trace import Layer, Recorder


class CpState(enum.StrEnum):
    A = "A"  # EV not connected
    B = "B"  # EV connected, not ready for energy
    C = "C"  # EV connected, ready, charging
    D = "D"  # as C, ventilation required
    E = "E"  # CP shorted or no supply: error
    F = "F"  # EVSE not available


#: duty cycle of a steady, non-oscillating CP (no current offered yet)
NO_PWM = 100.0
#: duty cycle requesting digital communication (IEC 61851-1 A.2.3, ISO 15118-3)
DIGITAL_COMMUNICATION = 5.0


def offered_current(duty: float) -> float:
    """Maximum current in A that a duty cycle (percent) offers; 0 where charging is not allowed.

    IEC 61851-1:2017 Table A.8; at 5 % the current comes from the digital communication, which is
    not the pilot's business, so it reads as 0 here.
    """
    if 8.0 <= duty < 10.0:
        return 6.0
    if 10.0 <= duty <= 85.0:
        return duty * 0.6
    if 85.0 < duty <= 96.0:
        return (duty - 64.0) * 2.5
    if 96.0 < duty <= 97.0:
        return 80.0
    return 0.0


def duty_for_current(amps: float) -> float:
    """The duty cycle offering ``amps`` (the inverse of :func:`offered_current`); below 6 A no
    current can be offered, so the CP stays steady."""
    if amps < 6.0:
        return NO_PWM
    if amps <= 51.0:
        return round(amps / 0.6, 1)
    if amps <= 80.0:
        return round(amps / 2.5 + 64.0, 1)
    return 97.0


class PilotLine(Protocol):
    """The CP line as both ends use it, simulated or driven by lab hardware: the EV sets the state,
    the EVSE the PWM duty; listeners hear state changes."""

    #: the connector (EVSE id) this line belongs to; names it on the timeline
    evse_id: int
    state: CpState
    duty: float

    async def set_state(self, state: CpState) -> None: ...

    async def set_duty(self, duty: float) -> None: ...

    async def wait_for(self, predicate: Callable[["PilotLine"], bool], timeout: float) -> None: ...

    def on_state_change(self, listener: Callable[[CpState, CpState], None]) -> None: ...

    def remove_state_listener(self, listener: Callable[[CpState, CpState], None]) -> None: ...


class SimulatedPilot:
    """A CP line in memory: both ends see the same state and duty; every change is on the
    timeline (layer ``pilot``)."""

    def __init__(self, recorder: Recorder, *, evse_id: int = 1) -> None:
        self.recorder = recorder
        self.evse_id = evse_id
        self.state = CpState.A
        self.duty = NO_PWM
        self._changed: asyncio.Condition | None = None
        self._listeners: list[Callable[[CpState, CpState], None]] = []

    def _condition(self) -> asyncio.Condition:
        if self._changed is None:
            self._changed = asyncio.Condition()
        return self._changed

    def on_state_change(self, listener: Callable[[CpState, CpState], None]) -> None:
        self._listeners.append(listener)

    def remove_state_listener(self, listener: Callable[[CpState, CpState], None]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    async def set_state(self, state: CpState) -> None:
        """The EV side switches the CP state."""
        state = CpState(state)
        old, self.state = self.state, state
        if old is state:
            return
        self.recorder.emit(Layer.PILOT, "CpState", f"CP state {old} -> {state}", src="ev", dst="evse",
                           payload={"from": old.value, "to": state.value}, keys={"evse_id": self.evse_id})
        for listener in list(self._listeners):
            listener(old, state)
        await self._notify()

    async def set_duty(self, duty: float) -> None:
        """The EVSE side sets the PWM duty cycle (percent; 100 = no PWM)."""
        if duty == self.duty:
            return
        old, self.duty = self.duty, duty
        self.recorder.emit(Layer.PILOT, "PwmDuty", f"PWM duty {old:g} % -> {duty:g} % "
                           f"({offered_current(duty):g} A offered)", src="evse", dst="ev",
                           payload={"from": old, "to": duty, "amps": offered_current(duty)},
                           keys={"evse_id": self.evse_id})
        await self._notify()

    async def wait_for(self, predicate: Callable[["SimulatedPilot"], bool], timeout: float) -> None:
        condition = self._condition()
        async with asyncio.timeout(timeout):
            async with condition:
                await condition.wait_for(lambda: predicate(self))

    async def _notify(self) -> None:
        condition = self._condition()
        async with condition:
            condition.notify_all()
