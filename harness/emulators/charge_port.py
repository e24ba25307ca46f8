"""A charging point's power stage and local policy behind the SECC: the :class:`Equipment` the
reference SECC asks, without OCPP.

The power stage is a model: AC hands the EV the current per phase its limits allow (the EV's
on-board charger draws it); DC follows the EV's voltage and current targets within the stage's
limits, ramping at ``current_ramp`` / ``voltage_ramp`` (A/s, V/s of rig time, 0 = at once),
negative current for discharge (BPT). Energy flows through the connector's :class:`PowerFlow`.
Authorization is local: a policy of accept, reject or "ongoing for a while, then accept".

:class:`harness.emulators.bridge.OcppBridge` extends it with the OCPP station: authorization,
transactions and meter values through the CSMS.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Sequence

from harness.emulators.power import PowerFlow
from harness.pki.profiles import Generation
from harness.v2g.equipment import EvseCapabilities, Present
from harness.v2g.pnc import ContractCheck, check_contract
from harness.v2g.schedules import Offer


@dataclass
class SessionRecord:
    session_id: str
    evccid: str | None
    protocol: str
    ended: str | None = None
    paused: bool = False
    authorized: str | None = None


class ChargePort:
    """Implements :class:`harness.v2g.equipment.Equipment` for one connector."""

    def __init__(self, capabilities: EvseCapabilities, line: PowerFlow | None = None, *,
                 authorization: str = "accept", ongoing_rounds: int = 0,
                 provisioning: Any = None, mo_roots: Sequence[Any] = (), tariff_key: Any = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.capabilities = capabilities
        self.line = line or PowerFlow(voltage=capabilities.ac_nominal_voltage, phases=capabilities.ac_phases)
        #: "accept", "reject"; answered after ``ongoing_rounds`` "Ongoing"s
        self.authorization = authorization
        self.ongoing_rounds = ongoing_rounds
        self.provisioning = provisioning
        self.mo_roots = list(mo_roots)
        self.tariff_key = tariff_key
        self.clock = clock
        idle = self.line.read()
        #: what the line is between sessions (the AC supply a basic EV sees), restored after DC
        self._idle = (idle.voltage, idle.phases)
        self.sessions: list[SessionRecord] = []
        self.ev_soc: float | None = None
        self.ev_ready: bool | None = None
        #: the EVSENotification the next responses carry ("None", "StopCharging", "ReNegotiation")
        self.pending_notification = "None"
        self._authorize_asked = 0
        self._cable_checks = 0
        self._energy: str | None = None
        self._discharge = False
        self._target_voltage = 0.0
        self._target_current = 0.0
        self._stamp = clock()

    # -- session and authorization ------------------------------------------------------------

    @property
    def session(self) -> SessionRecord | None:
        return self.sessions[-1] if self.sessions else None

    def session_started(self, session_id: str, evccid: str | None, protocol: str) -> None:
        self.sessions.append(SessionRecord(session_id, evccid, protocol))
        self._authorize_asked = 0
        self._cable_checks = 0

    def session_ended(self, session_id: str | None, reason: str, paused: bool) -> None:
        self._stop_power()
        for record in reversed(self.sessions):
            if record.session_id == session_id and record.ended is None:
                record.ended, record.paused = reason, paused
                break

    def connection_failed(self, reason: str) -> None:
        """Nothing started, so there is nothing to stop; the station reports it (the OCPP bridge)."""

    def authorize(self, method: str, *, emaid: str | None = None, contract_chain: Sequence[Any] = ()) -> str:
        self._authorize_asked += 1
        if self._authorize_asked <= self.ongoing_rounds:
            return "Ongoing"
        status = "Accepted" if self.authorization == "accept" else "Rejected"
        if self.session is not None:
            self.session.authorized = f"{method}:{emaid or ''}:{status}"
        return status

    def notification(self) -> str:
        notification = self.pending_notification
        if notification == "ReNegotiation":
            if self._energy is None:
                return "None"  # renegotiation is asked for while energy flows
            self.pending_notification = "None"  # one renegotiation per request
        return notification

    def ev_status(self, *, soc: float | None = None, ready: bool | None = None) -> None:
        if soc is not None:
            self.ev_soc = float(soc)
        if ready is not None:
            self.ev_ready = ready

    # -- power stage ----------------------------------------------------------------------------

    def cable_check(self) -> bool:
        self._cable_checks += 1
        if self._cable_checks == 1:
            self.line.set(phases=0, voltage=0.0, current=0.0)
        return self._cable_checks >= self.capabilities.cable_check_rounds

    def energy_transfer(self, start: bool, energy: str, *, discharge: bool = False) -> bool:
        if not start:
            self._stop_power()
            return True
        self._energy, self._discharge = energy, discharge
        if energy.startswith("DC"):
            self.line.set(phases=0, contactor_closed=True)
        else:
            self.line.set(phases=self.capabilities.ac_phases, voltage=self.capabilities.ac_nominal_voltage,
                          contactor_closed=True)
        return True

    def _stop_power(self) -> None:
        reading = self.line.read()
        if reading.phases == 0:  # after DC (or a cable check): back to the idle AC supply
            self.line.set(current=0.0, voltage=self._idle[0], phases=self._idle[1], contactor_closed=False)
        self.line.set(contactor_closed=False)
        self._energy = None
        self._target_current = 0.0

    def _ramp(self, present: float, target: float, rate: float, elapsed: float) -> float:
        if rate <= 0 or elapsed <= 0:
            return target
        step = rate * elapsed
        return target if abs(target - present) <= step else present + step * (1 if target > present else -1)

    def _follow(self, voltage: float, current: float) -> Present:
        caps = self.capabilities
        now = self.clock()
        elapsed, self._stamp = now - self._stamp, now
        reading = self.line.read()
        wanted_v = min(max(voltage, 0.0), caps.dc_max_voltage)
        limit_i = caps.dc_max_current if current >= 0 else caps.dc_max_discharge_current
        limit_p = self.power_limit("DC") if current >= 0 else self.discharge_limit("DC")
        wanted_i = max(-limit_i, min(limit_i, current))
        power_limited = wanted_v > 0 and abs(wanted_i) * wanted_v > limit_p
        if power_limited:
            wanted_i = (limit_p / wanted_v) * (1 if wanted_i >= 0 else -1)
        out_v = self._ramp(reading.voltage, wanted_v, caps.voltage_ramp, elapsed)
        out_i = self._ramp(reading.current if reading.contactor_closed else 0.0, wanted_i, caps.current_ramp, elapsed)
        self.line.set(voltage=out_v, current=out_i, phases=0)
        return Present(out_v, out_i, current_limit_achieved=abs(current) > limit_i,
                       voltage_limit_achieved=voltage > caps.dc_max_voltage, power_limit_achieved=power_limited)

    def pre_charge(self, voltage: float, current: float) -> Present:
        present = self._follow(voltage, 0.0)
        present.current = 0.0
        return present

    def current_demand(self, voltage: float, current: float) -> Present:
        return self._follow(voltage, current)

    def ac_target(self, power: float | None = None) -> float:
        caps = self.capabilities
        if power is not None:
            return min(caps.ac_max_current, abs(power) / (caps.ac_nominal_voltage * caps.ac_phases))
        return caps.ac_max_current

    def present(self) -> Present:
        reading = self.line.read()
        if not reading.contactor_closed:
            return Present(0.0, 0.0)
        return Present(reading.voltage, reading.current)

    def meter_wh(self) -> tuple[float, float]:
        reading = self.line.read()
        return reading.imported_wh, reading.exported_wh

    # -- Plug & Charge --------------------------------------------------------------------------

    def check_contract(self, chain: Sequence[Any], *, generation: Generation, emaid: str | None) -> ContractCheck:
        return check_contract(chain, self.mo_roots, emaid=emaid, generation=generation)

    def certificate_service(self, request: str, *, oem_chain: Sequence[Any] = (), contract_chain: Sequence[Any] = (),
                            emaid: str | None = None, generation: str = "iso2") -> Any:
        if self.provisioning is None:
            return None
        return self.provisioning.deliver(request, oem_chain=oem_chain, contract_chain=contract_chain, emaid=emaid,
                                         generation=generation)

    def ev_charging_needs(self, needs: Any) -> None:
        pass  # a charger without a backend has nobody to tell

    def ev_charging_schedule(self, schedule: Any) -> None:
        pass

    def power_limit(self, energy: str) -> float:
        return self.capabilities.max_power(energy)

    def discharge_limit(self, energy: str) -> float:
        return self.capabilities.max_discharge_power(energy)

    def power_setpoint(self, energy: str) -> float | None:
        return None  # without a backend the EV's demand decides

    def power_schedule(self, energy: str) -> Sequence[Offer]:
        return (Offer(0, self.power_limit(energy), self.discharge_limit(energy), self.power_setpoint(energy)),)

    def installs_certificates(self, generation: str) -> bool:
        return self.provisioning is not None

    def certificate_relay(self, request: str, message: dict,
                          schema: str) -> Callable[[], Awaitable[dict | None]] | None:
        return None  # this charger provisions contracts itself (certificate_service)
