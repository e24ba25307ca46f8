"""What every role of a rig is, and how a role says the rig cannot do something.

A role (csms, link, evse, pilot, meter, ev) is what the suites talk to; the kind the rig file
names for it (``evse: {kind: lab}``) picks its driver from :mod:`harness.rig.drivers`. Roles come
up in :data:`harness.rig.drivers.ROLES` order, are made safe and go down in reverse order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator

from harness.trace import Layer

if TYPE_CHECKING:
    from harness.rig.check import ProbeResult
    from harness.rig.config import RigConfig
    from harness.rig.rig import Rig


class RoleUnavailable(Exception):
    """A test asked for something this rig cannot do (no EV, no operator, no pilot hardware...);
    the case is skipped with these words."""


class Role:
    """The life of a role on a rig: activate, make safe, deactivate, each its driver's unless the
    role adds to it; :meth:`record` puts what it did on the timeline (layer ``rig``)."""

    name = "role"
    driver: "Driver"

    def __init__(self, rig: "Rig") -> None:
        self.rig = rig

    async def activate(self) -> None:
        await self.driver.activate()

    async def make_safe(self) -> None:
        await self.driver.make_safe()

    async def deactivate(self) -> None:
        await self.driver.deactivate()

    def record(self, name: str, summary: str, **payload: Any) -> None:
        self.rig.trace.emit(Layer.RIG, name, summary, src=self.name, payload=payload or None)


class Driver:
    """One kind of a role (``meter: {kind: visa}``): the role delegates what differs between kinds
    to it. Its life follows its role's."""

    def __init__(self, role: Any) -> None:
        self.role = role
        self.rig: "Rig" = role.rig

    @classmethod
    def probe(cls, config: "RigConfig") -> Iterator["ProbeResult"]:
        """What `harness rig check` looks at for this kind, without starting anything
        (:mod:`harness.rig.check`)."""
        return iter(())

    async def activate(self) -> None:
        pass

    async def make_safe(self) -> None:
        pass

    async def deactivate(self) -> None:
        pass

    def record(self, name: str, summary: str, **payload: Any) -> None:
        self.role.record(name, summary, **payload)
