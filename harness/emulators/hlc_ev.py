"""The EV emulator with high-level communication: an EVCC on the same plug as the basic EV.

Plugged in, it puts the CP in state B and runs V2G sessions (:func:`harness.v2g.evcc.run_session`)
with the :class:`~harness.v2g.vehicle.Vehicle` it stands for. Physically it does what an EV does:
it switches the CP to C before energy flows and back to B after, draws on AC the current the
session grants (negative when it feeds back, BPT), and moves the energy that flows through the
cable into its battery (DC current is set by the charger's power stage).
"""

from __future__ import annotations

import asyncio
import ssl
import time

from harness.emulators.charge_port import ChargePort
from harness.emulators.plug import PluggedEv
from harness.iec61851.pilot import CpState
from harness.trace import Layer, Recorder
from harness.v2g.battery import Battery
from harness.v2g.equipment import EvseCapabilities
from harness.v2g.evcc import run_session
from harness.v2g.faults import FaultPlan
from harness.v2g.machine import Outcome
from harness.v2g.session import EvccSession
from harness.v2g.timers import STANDARD, Timing
from harness.v2g.transport import SocketFactory
from harness.v2g.vehicle import Vehicle


class HlcEv(PluggedEv):
    def __init__(self, recorder: Recorder, vehicle: Vehicle, *, timing: Timing = STANDARD,
                 control_period: float = 0.02, name: str = "ev", self_metered: bool = False) -> None:
        super().__init__(recorder, name=name, control_period=control_period)
        self.vehicle = vehicle
        self.timing = timing
        self.session: EvccSession | None = None
        self.last_outcome: Outcome | None = None
        #: no cable shared with the EVSE (``harness ev run`` against another process or a real
        #: charger): the battery follows what the EV measures itself -- the DC current the EVSE
        #: reports, the AC current the EV draws
        self.self_metered = self_metered
        self._metered_at: float | None = None
        #: the EVSE's target power the EV follows now (AC), for the timeline
        self._followed: float | None = None

    @property
    def battery(self) -> Battery:
        return self.vehicle.battery

    def _plug_facts(self) -> tuple[str, dict, dict]:
        return ", ISO 15118", {"hlc": True}, {"ev_mac": self.vehicle.mac}

    async def charge(self, host: str, port: int, *, context: ssl.SSLContext | None = None,
                     faults: FaultPlan | None = None, resume_session_id: str | None = None,
                     sockets: SocketFactory | None = None, keep_pilot: bool = False) -> Outcome:
        """One V2G session with the SECC at ``host``/``port`` (``sockets``: how the EV's sockets
        are made, in its network namespace on the netns rig). ``keep_pilot``: the pilot stays as
        the session left it (an EV whose communication controller went away, not the vehicle);
        otherwise the EV returns to state B."""
        if self.pilot is None:
            raise RuntimeError(f"{self.name} is not plugged in")
        self.vehicle.stop_requested = False
        self.vehicle.grant.ac_max_current = None
        self.vehicle.grant.target_power = None
        self.vehicle.grant.drop_schedule()

        def keep(session: EvccSession) -> None:
            self.session = session

        try:
            outcome = await run_session(self.recorder, self.vehicle, host, port, context=context, timing=self.timing,
                                        faults=faults, resume_session_id=resume_session_id, set_cp=self._set_cp,
                                        on_session=keep, on_response=self._apply, sockets=sockets,
                                        stand_in=lambda: ChargePort(EvseCapabilities()))
        finally:
            self.vehicle.grant.ac_max_current = 0.0
            self._apply()
            if self.pilot is not None and self.pilot.state is not CpState.B and not keep_pilot:
                await self.pilot.set_state(CpState.B)
            self._account()
        self.last_outcome = outcome
        return outcome

    async def _set_cp(self, state: str) -> None:
        if self.pilot is not None:
            self._apply()
            await self.pilot.set_state(CpState(state))
            self._apply()

    def _account(self) -> None:
        if self.self_metered:
            self._meter_self()
        else:
            super()._account()

    def _meter_self(self) -> None:
        now = time.monotonic()
        elapsed, self._metered_at = (now - self._metered_at if self._metered_at else 0.0), now
        vehicle = self.vehicle
        charging = self.pilot is not None and self.pilot.state in (CpState.C, CpState.D)
        if not charging or elapsed <= 0:
            return
        if vehicle.plan.dc:
            power = (vehicle.grant.dc_present_current or 0.0) * vehicle.pack_voltage()
        else:
            power = vehicle.ac_current() * vehicle.ac_nominal_voltage * vehicle.plan.phases
        vehicle.battery.integrate(power, elapsed)

    def _apply(self) -> None:
        """AC: draw what the session grants (the charger's power stage drives DC)."""
        if self.line is None or self.pilot is None:
            return
        reading = self.line.read()
        if reading.phases == 0:
            return
        current = self.vehicle.ac_current() if self.pilot.state in (CpState.C, CpState.D) else 0.0
        if current != reading.current:
            self.line.set(current=current, phases=self.vehicle.plan.phases if reading.phases else None)
        self._followed_now(current)

    def _followed_now(self, current: float) -> None:
        """A PowerApplied event when what the EV follows changed: the EVSE's target power (-20),
        else the maximum current it offers (-2 EVSEMaxCurrent), as power."""
        vehicle = self.vehicle
        volts = vehicle.ac_nominal_voltage * vehicle.plan.phases
        target = vehicle.target()
        if target is None and vehicle.grant.ac_max_current:
            target = vehicle.grant.ac_max_current * volts
        if target is None:
            self._followed = None
            return
        if self._followed is not None and abs(target - self._followed) < 1.0:
            return
        self._followed = target
        power = current * volts
        self.recorder.emit(Layer.V2G, "PowerApplied", f"{self.name} follows the EVSE's {target / 1000:.2f} kW: "
                           f"draws {power / 1000:.2f} kW", src=self.name, observer=self.name,
                           payload={"target_w": target, "power_w": power})

    async def _control(self) -> None:
        while True:
            self._account()
            self._apply()
            await asyncio.sleep(self.control_period)
