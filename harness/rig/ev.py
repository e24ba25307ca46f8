"""The EV role: the EV at the charger's plug, as the suites see it (plug in, charge, stop, unplug).

- ``emulated`` (:class:`EmulatedEv`): the harness's EVs on the rig's pilot line and cable: a basic
  EV that charges by PWM alone (IEC 61851-1) and the ISO 15118 EV (:class:`harness.rig.hlc.HlcDriver`:
  ``ev.charge(...)``).
- ``none`` (:class:`NoEv`): no EV emulator; the rig's operator plugs a real EV or a test cable in
  where it can (a lab rig), and the cases that need the harness's EV are skipped.
- ``lab`` (:class:`LabEv`): the EV is the device under test and the harness plays the charger (the
  reference EVSE's SECC and SLAC, the mock CSMS behind it). The rig's operator plugs the EV in and
  out; ``ev.charge(...)`` returns the plug-in as the harness's SECC saw it, the only view the
  EV-side suites judge by (:mod:`harness.rig.secc_view`).
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography import x509

from harness.emulators.ev import BasicEv
from harness.iec61851.pilot import CpState
from harness.rig.hlc import PROTOCOLS_FOR, HlcDriver, SessionResult, material, needs_tls
from harness.rig.role import Driver, Role, RoleUnavailable
from harness.rig.secc_view import collect
from harness.trace import Layer
from harness.v2g.battery import Battery
from harness.v2g.machine import Outcome

if TYPE_CHECKING:
    from harness.rig.rig import Rig


@dataclass(frozen=True)
class ChargingPath:
    """How an EV takes energy at the charger: the capability the rig needs for it, and the ISO
    15118 protocol of the session (None: basic charging on the PWM duty)."""

    capability: str
    protocol: str | None


#: the ways the transaction, offline and metering suites charge, so that a charger without basic
#: PWM charging (an ISO 15118-only or DC charger) gets them too
CHARGING_PATHS: dict[str, ChargingPath] = {
    "pwm": ChargingPath("basic_charging", None),
    "iso15118-2": ChargingPath("iso15118", "iso2"),
    "iso15118-20": ChargingPath("iso15118", "iso20-ac"),
}


class EvRole(Role):
    """The EV at the EVSE's plug."""

    name = "ev"
    driver: "EvDriver"

    def __init__(self, rig: "Rig", driver: type["EvDriver"]) -> None:
        super().__init__(rig)
        self.config = rig.config.ev
        self.driver = driver(self)

    @property
    def vehicle(self) -> BasicEv | None:
        """The basic EV (emulated rigs)."""
        return self.driver.vehicle

    @property
    def hlc(self) -> HlcDriver:
        """The ISO 15118 EV: charge(), probe(), inject()."""
        return self.driver.hlc_driver()

    def restore(self) -> None:
        """Unplugged, willing to charge, with the rig file's state of charge."""
        self.driver.restore()

    @property
    def plugged(self) -> bool:
        """Something is plugged in through this role (the basic EV, the ISO 15118 EV, or the
        operator's cable)."""
        return self.driver.plugged

    def plug_in(self, evse_id: int = 1, *, path: str = "pwm") -> None:
        """Plug in and take energy along ``path`` (:data:`CHARGING_PATHS`): "pwm", the basic EV
        drawing what the PWM duty offers (IEC 61851-1); "iso15118-2" or "iso15118-20", the ISO
        15118 EV in an AC session with EIM that runs until :meth:`unplug` (or
        :meth:`end_session`), waiting for the charger's authorization like a driver would."""
        if path not in CHARGING_PATHS:
            raise ValueError(f"unknown charging path {path!r} (known: {', '.join(CHARGING_PATHS)})")
        protocol = CHARGING_PATHS[path].protocol
        if protocol is None:
            self.driver.plug_in(evse_id)
        else:
            self.hlc.charge_in_background(protocol=protocol, energy="AC", identification="EIM")

    def unplug(self) -> None:
        self.driver.unplug()

    def contract(self, protocol: str) -> x509.Certificate:
        """The contract certificate the harness's EV presents in a Plug & Charge session of
        ``protocol``: the one it holds (installed in an earlier session), else the run PKI's."""
        return self.hlc.contract(protocol)

    def charge(self, **options: Any) -> SessionResult:
        """One ISO 15118 session as the EV (see :meth:`harness.rig.hlc.HlcDriver.charge`):
        ``ev.charge(protocol="iso2", energy="AC", identification="EIM", tls=False)``; with an EV
        under test, one plug-in of it (:meth:`LabEv.charge`)."""
        return self.driver.charge(**options)

    def set_battery(self, *, soc: float | None = None, max_discharge_kw: float | None = None) -> None:
        """The ISO 15118 EV's battery for this case (its state of charge, 0..1, and the most it
        discharges); the rig restores the profile's values after the case."""
        self.hlc.set_battery(soc=soc, max_discharge_kw=max_discharge_kw)

    def end_session(self) -> None:
        """The ISO 15118 EV ends its session at its next charge-loop step (PowerDelivery Stop,
        then SessionStop), as a driver who presses stop; safe to call from another thread."""
        self.hlc.end_session()

    def stop_charging(self) -> None:
        """The EV stops taking energy (CP back to state B) but stays plugged."""
        self.driver.basic().wants_energy = False

    def resume_charging(self) -> None:
        self.driver.basic().wants_energy = True

    @property
    def soc(self) -> float:
        return self.driver.basic().battery.soc


class EvDriver(Driver):
    vehicle: BasicEv | None = None

    @property
    def plugged(self) -> bool:
        return False

    def basic(self) -> BasicEv:
        raise RoleUnavailable("this rig has no EV emulator (ev.kind: none)")

    def hlc_driver(self) -> HlcDriver:
        raise RoleUnavailable("this rig has no ISO 15118 EV emulator (ev.kind: none)")

    def plug_in(self, evse_id: int) -> None:
        raise NotImplementedError

    def unplug(self) -> None:
        raise NotImplementedError

    def restore(self) -> None:
        pass

    def charge(self, **options: Any) -> SessionResult:
        return self.hlc_driver().charge(**options)


class EmulatedEv(EvDriver):
    """``ev: {kind: emulated}``: the basic EV and the ISO 15118 EV, one plugged in at a time."""

    def __init__(self, role: EvRole) -> None:
        super().__init__(role)
        self.hlc = HlcDriver(role)

    async def activate(self) -> None:
        config = self.role.config
        battery = Battery(capacity_wh=config.capacity_kwh * 1000.0, soc=config.soc,
                          max_charge_w=config.max_charge_kw * 1000.0)
        self.vehicle = BasicEv(self.rig.trace, battery, max_current=config.max_current, phases=config.phases)
        await self.hlc.activate()

    async def make_safe(self) -> None:
        if self.vehicle is not None and self.vehicle.plugged:
            await self.vehicle.unplug()
        await self.hlc.make_safe()

    def restore(self) -> None:
        self.hlc.restore()
        vehicle = self.basic()
        self.rig.run(self.make_safe())
        vehicle.wants_energy = True
        vehicle.battery.soc = self.role.config.soc

    def basic(self) -> BasicEv:
        if self.vehicle is None:
            raise RuntimeError("the EV role is not up")
        return self.vehicle

    def hlc_driver(self) -> HlcDriver:
        return self.hlc

    @property
    def plugged(self) -> bool:
        return (self.vehicle is not None and self.vehicle.plugged) or self.hlc.plugged

    def plug_in(self, evse_id: int) -> None:
        vehicle = self.basic()
        if self.hlc.plugged:
            raise RuntimeError("the ISO 15118 EV is plugged in; unplug it before plugging in the basic EV")
        pilot = self.rig.pilot.line(evse_id)
        cable = self.rig.evse.connector(evse_id).line
        self.rig.run(vehicle.plug_in(pilot, cable))

    def unplug(self) -> None:
        if self.hlc.plugged:
            self.hlc.unplug()
            return
        self.rig.run(self.basic().unplug())


class NoEv(EvDriver):
    """``ev: {kind: none}``: the rig's operator plugs in, where the rig has one."""

    def __init__(self, role: EvRole) -> None:
        super().__init__(role)
        #: the connector the operator plugged into
        self.plugged_connector: int | None = None

    @property
    def plugged(self) -> bool:
        return self.plugged_connector is not None

    def plug_in(self, evse_id: int) -> None:
        self.rig.operator.perform("plug_in", connector=evse_id)
        self.plugged_connector = evse_id

    def unplug(self) -> None:
        if self.plugged_connector is None:
            return
        connector, self.plugged_connector = self.plugged_connector, None
        self.rig.operator.perform("unplug", connector=connector)

    def restore(self) -> None:
        self.unplug()


class LabEv(EvDriver):
    """``ev: {kind: lab}``: the EV under test, a black box. The rig's operator plugs it in and out
    (its plug-in command gets the case's wishes and where the EV is: :data:`harness.rig.operator.
    EV_FIELDS`); the simulated pilot stands in for the cable (state B at plug-in, A after); what
    the EV did is what the harness's SECC saw."""

    def __init__(self, role: EvRole) -> None:
        super().__init__(role)
        self.plugged_in = False
        self._plugs = 0
        #: the folder of the plug-in now (the operator's {out}), from plug-in to unplug
        self._out: Path | None = None

    @property
    def plugged(self) -> bool:
        return self.plugged_in

    def hlc_driver(self) -> HlcDriver:
        raise RoleUnavailable("the EV under test (ev.kind: lab) is a black box: the harness cannot have it commit "
                              "faults, open raw connections, run in the background or change its battery")

    def plug_in(self, evse_id: int, fields: dict[str, str] | None = None) -> None:
        if evse_id != 1:
            raise RoleUnavailable("the EV under test is plugged into the reference EVSE's connector 1")
        self._plugs += 1
        self._out = self.rig.run_dir / "ev" / f"plug-{self._plugs:03d}"
        self._out.mkdir(parents=True, exist_ok=True)
        self.rig.operator.perform("plug_in", connector=evse_id, fields={**self._where(), **(fields or {})})
        self.plugged_in = True
        self.record("LabEvPlugged", "the simulated pilot stands in for the EV's cable: state B")
        self.rig.run(self.rig.pilot.line(1).set_state(CpState.B))

    def unplug(self) -> None:
        if not self.plugged_in:
            return
        self.plugged_in = False
        try:
            self.rig.run(self.rig.pilot.line(1).set_state(CpState.A))
        finally:
            self.rig.operator.perform("unplug", connector=1, fields=self._where())

    async def make_safe(self) -> None:
        if self.plugged_in:
            await self.rig.pilot.line(1).set_state(CpState.A)

    def restore(self) -> None:
        self.unplug()

    def _where(self) -> dict[str, str]:
        line = self.rig.link.line
        return {"ev_iface": "plc0" if line is not None else (self.rig.config.link.iface or ""),
                "ev_netns": line.stations["ev"].netns.name if line is not None else "",
                "pki": str(material(self.rig).directory), "time_scale": f"{self.rig.config.time_scale:g}",
                "out": str(self._out or ""), "harness": shlex.join([sys.executable, "-m", "harness"])}

    def charge(self, *, protocol: str | None = None, energy: str | None = None, identification: str | None = None,
               tls: bool | None = None, cycles: int | None | str = "profile", discharge: bool = False,
               timeout: float | None = None, **others: Any) -> SessionResult:
        """One plug-in of the EV under test: the operator plugs it in with the case's wishes,
        the harness waits until every connection it opened to the SECC has ended (at most
        ``ev.session_timeout``), then the operator unplugs it. The result is the SECC's view; an
        EV that never reached the SECC has a failed outcome that says so."""
        asked = {name: value for name, value in others.items() if value not in (None, False, (), [], "profile")}
        if asked:
            raise RoleUnavailable(f"the EV under test (ev.kind: lab) cannot be told {', '.join(sorted(asked))}; "
                                  f"it runs its sessions its own way")
        energy = energy or "AC"
        protocol = protocol if isinstance(protocol, str) else PROTOCOLS_FOR[energy][0]
        identification = identification or "EIM"
        if tls is None:
            tls = needs_tls((protocol,), identification)
        fields = {"protocol": protocol, "energy": energy, "identification": identification,
                  "tls": "yes" if tls else "no", "cycles": str(cycles if isinstance(cycles, int) else 2),
                  "discharge": "yes" if discharge else "no"}
        trace = self.rig.trace
        limit = timeout if timeout is not None else self.rig.scaled(self.role.config.session_timeout)
        mark = trace.now()
        self.plug_in(1, fields)
        try:
            view = collect(trace, mark, timeout=limit, settle=max(0.5, self.rig.scaled(2.0)))
        finally:
            self.unplug()
        first = view.first
        if first is None:
            outcome = Outcome(False, f"the EV under test did not reach the harness's SECC within {limit:g} s "
                                     f"({view.describe()})")
        else:
            ended = first.outcome
            outcome = Outcome(bool(ended.get("ok")), str(ended.get("reason") or first.describe()),
                              ended.get("protocol"), ended.get("session_id"), ended.get("response_code"),
                              bool(ended.get("paused")), int(ended.get("messages") or 0))
        trace.emit(Layer.RIG, "LabEvSession", f"EV under test, as the SECC saw it: {view.describe()}", src="ev",
                   payload={"wishes": fields, "ok": outcome.ok, "connections": len(view.connections)})
        events = [e for e in view.events if e.layer is Layer.V2G and isinstance(e.payload, dict)
                  and "message" in e.payload]
        return SessionResult(outcome, events, tls=first.tls if first is not None else None, trace=trace, mark=mark,
                             _secc=view)
