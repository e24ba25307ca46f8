"""An SECC and an EV in one event loop, over real TCP (and TLS) on ::1, for the harness's tests."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.emulators.charge_port import ChargePort
from harness.emulators.hlc_ev import HlcEv
from harness.iec61851.pilot import SimulatedPilot
from harness.trace import Recorder
from harness.v2g.battery import Battery
from harness.v2g.credentials import V2gMaterial
from harness.v2g.equipment import EvseCapabilities
from harness.v2g.faults import FaultPlan
from harness.v2g.machine import Outcome
from harness.v2g.secc import Secc, SeccConfig
from harness.v2g.timers import Timing
from harness.v2g.vehicle import ChargePlan, Vehicle

#: the rigs' pace: no waits, timeouts at their floor
FAST = Timing(scale=0.0, min_timeout=0.5)


MAC = "0A1B2C3D4E5F"
VIN = "WHARNESS000000001"


def vehicle(plan: ChargePlan, *, soc: float = 0.4, mac: str = MAC, vin: str = VIN) -> Vehicle:
    return Vehicle(mac, Battery(60000.0, soc, 50000.0, 11000.0), plan=plan, vin=vin)


@dataclass
class Pair:
    recorder: Recorder
    port: ChargePort
    secc: Secc
    material: V2gMaterial | None = None
    outcomes: list[Outcome] = field(default_factory=list)
    pilot: SimulatedPilot = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self.pilot = SimulatedPilot(self.recorder)

    async def charge(self, ev: Vehicle, *, tls: bool = False, faults: FaultPlan | None = None,
                     resume_session_id: str | None = None, timing: Timing = FAST) -> Outcome:
        context = None
        if tls:
            assert self.material is not None
            context = self.material.evcc_context(ev.plan.protocols)
        port = self.secc.tls_port if tls else self.secc.tcp_port
        # the EV on a plug: pilot and power flow, so AC current is drawn and the battery fills
        car = HlcEv(self.recorder, ev, timing=timing, control_period=0.005)
        await car.plug_in(self.pilot, self.port.line)
        try:
            outcome = await car.charge("::1", port, context=context, faults=faults,
                                       resume_session_id=resume_session_id)
        finally:
            await car.unplug()
        await asyncio.wait_for(self._settled(), 5.0)
        self.outcomes.append(outcome)
        broken = self.recorder.select(layer="fault", name=("SeccError", "EvccError"))
        if broken:  # a bug of the harness, not a protocol outcome
            raise AssertionError("\n".join(f"{e.summary}\n{e.payload.get('traceback')}" for e in broken))
        return outcome

    async def _settled(self) -> None:
        while self.secc.active:
            await asyncio.sleep(0.005)

    async def close(self) -> None:
        await self.secc.stop()


async def start_pair(*, capabilities: EvseCapabilities | None = None, material: V2gMaterial | None = None,
                     timing: Timing = FAST, faults: FaultPlan | None = None, recorder: Recorder | None = None,
                     **port_options: Any) -> Pair:
    recorder = recorder or Recorder()
    caps = capabilities or EvseCapabilities()
    if material is not None:
        port_options.setdefault("provisioning", material.provisioning())
        port_options.setdefault("tariff_key", material.tariff_key("iso2"))
        port_options.setdefault("mo_roots", material.all_mo_roots())
    port = ChargePort(caps, **port_options)
    config = SeccConfig(tls=material.secc_tls() if material is not None else None,
                        protocols=caps.protocols)
    secc = Secc(recorder, port, config, timing=timing, faults=faults)
    await secc.start()
    return Pair(recorder, port, secc, material)


def generated_material(directory: Path) -> V2gMaterial:
    return V2gMaterial.generate(directory, keylog=directory / "tls-keys.log")
