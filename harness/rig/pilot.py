"""The pilot role: the control pilot line at the charger's plug (IEC 61851-1), as the EV side of
the rig drives it.

- ``simulated`` (:class:`SimulatedPilotDriver`): the reference EVSE's pilot line in memory, one
  per connector; the EV emulators switch its state, the reference EVSE its PWM duty.
- ``lab`` (:class:`LabPilot`): pilot hardware at a real charger's plug. The harness has no driver
  for such hardware yet, so cases that need the EV emulator there are skipped, saying so.
- ``none`` (:class:`NoPilot`): nothing drives the pilot (a lab rig whose operator plugs in).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

from harness.iec61851.pilot import PilotLine
from harness.rig.check import ProbeResult
from harness.rig.config import RigConfig
from harness.rig.role import Driver, Role, RoleUnavailable

if TYPE_CHECKING:
    from harness.rig.rig import Rig


class PilotRole(Role):
    name = "pilot"
    driver: "PilotDriver"

    def __init__(self, rig: "Rig", driver: type["PilotDriver"]) -> None:
        super().__init__(rig)
        self.config = rig.config.pilot
        self.driver = driver(self)

    def line(self, evse_id: int = 1) -> PilotLine:
        """The pilot line of the charger's ``evse_id`` as the EV side drives it."""
        return self.driver.line(evse_id)


class PilotDriver(Driver):
    def line(self, evse_id: int) -> PilotLine:
        raise NotImplementedError


class SimulatedPilotDriver(PilotDriver):
    """``pilot: {kind: simulated}``: the reference EVSE's connector's line in memory."""

    def line(self, evse_id: int) -> PilotLine:
        return self.rig.evse.connector(evse_id).pilot


class LabPilot(PilotDriver):
    """``pilot: {kind: lab, resource}``: pilot hardware the harness cannot drive yet."""

    @classmethod
    def probe(cls, config: RigConfig) -> Iterator[ProbeResult]:
        yield ProbeResult("pilot", False, f"no lab pilot driver is part of this harness version "
                                          f"(resource {config.pilot.resource}); use pilot.kind: none and let the "
                                          f"rig's operator plug in (operator.kind: prompt or command)")

    def line(self, evse_id: int) -> PilotLine:
        raise RoleUnavailable(f"the EV emulator at a real charger's plug needs pilot hardware "
                              f"({self.role.config.resource}), and the harness has no driver for it yet; let "
                              f"the rig's operator plug in (ev: {{kind: none}}, operator section of the rig file)")


class NoPilot(PilotDriver):
    """``pilot: {kind: none}``."""

    def line(self, evse_id: int) -> PilotLine:
        raise RoleUnavailable("this rig has no pilot the harness can drive (pilot.kind: none)")
