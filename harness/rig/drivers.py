"""The registry of drivers: for each role of a rig, the kinds a rig file may name and the class
that drives each.

Adding a kind (a new link hardware, an instrument family, a charger interface) means writing one
driver class and adding one line here; the rig file reader takes its choices from this table and
the rig builds the role's driver from it. Classes are named, not imported, so reading a rig file
(and deciding at test collection what the rig can run) does not load the emulators; the probes of
``harness rig check`` do, since each driver class says what to probe for its kind.

``by_operator`` says which rig capabilities a kind offers only when the rig's operator can do an
action for it: without an EV emulator the "ev" capability needs someone to plug in.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

from harness.rig.operator import OPERATORS

if TYPE_CHECKING:
    from harness.rig.config import RigConfig

#: the roles of a rig in set-up order: the CSMS listens before the EVSE connects, the link carries
#: the EVSE's SLAC, the pilot is the EVSE's connector, the meter measures the EVSE's cable, the EV
#: plugs in last
ROLES = ("csms", "link", "evse", "pilot", "meter", "ev")


@dataclass(frozen=True)
class Kind:
    #: "module:Class" of the driver
    driver: str
    #: what this kind is, for `harness rig check` and the docs
    summary: str
    #: capability -> operator action it needs on this kind (harness.rig.operator.ACTIONS)
    by_operator: Mapping[str, str] = field(default_factory=dict)


KINDS: Mapping[str, Mapping[str, Kind]] = {
    "csms": {
        "mock": Kind("harness.rig.csms:MockCsmsDriver", "the harness's mock CSMS"),
    },
    "link": {
        "loopback": Kind("harness.rig.link:LoopbackLink", "no SLAC; V2G on ::1"),
        "veth": Kind("harness.rig.link:VethLink", "an emulated power line of network namespaces and modem emulators"),
        "nic": Kind("harness.rig.link:NicLink", "a Green PHY NIC of this machine"),
    },
    "evse": {
        "emulated": Kind("harness.rig.evse:EmulatedEvse", "the reference EVSE"),
        "lab": Kind("harness.rig.evse:LabEvse", "a charger under test",
                    by_operator={"local_id_token": "present_token", "power_cycle": "power_cycle"}),
    },
    "pilot": {
        "simulated": Kind("harness.rig.pilot:SimulatedPilotDriver", "the reference EVSE's pilot line in memory"),
        "lab": Kind("harness.rig.pilot:LabPilot", "pilot hardware at a charger's plug (no driver in the harness yet)"),
        "none": Kind("harness.rig.pilot:NoPilot", "no pilot the harness can drive"),
    },
    "meter": {
        "none": Kind("harness.rig.meter:NoMeter", "no power analyzer"),
        "simulated": Kind("harness.rig.meter:SimulatedMeter", "the simulated analyzer, over pyvisa-py sockets"),
        "visa": Kind("harness.rig.meter:VisaMeter", "a lab power analyzer over VISA"),
    },
    "ev": {
        "emulated": Kind("harness.rig.ev:EmulatedEv", "the harness's EV emulators (basic and ISO 15118)"),
        "none": Kind("harness.rig.ev:NoEv", "no EV emulator; an operator may plug in", by_operator={"ev": "plug_in"}),
        "lab": Kind("harness.rig.ev:LabEv", "an EV under test, plugged in by the operator; the harness plays the "
                                            "charger", by_operator={"ev": "plug_in"}),
    },
}


def kinds(role: str) -> tuple[str, ...]:
    """The kinds a rig file may name for ``role``."""
    return tuple(KINDS[role])


def kind(role: str, name: str) -> Kind:
    try:
        return KINDS[role][name]
    except KeyError:
        raise ValueError(f"{role}.kind {name!r} is not one of {', '.join(KINDS.get(role, {}))}") from None


def driver_class(role: str, name: str) -> type[Any]:
    """The driver class of ``role``'s kind ``name`` (imported now)."""
    module, _, attribute = kind(role, name).driver.partition(":")
    return getattr(importlib.import_module(module), attribute)


def offered_capabilities(config: "RigConfig") -> frozenset[str]:
    """What the rig file says the charger offers, less what nothing on the rig can do: a kind's
    capability that needs an operator action (:data:`harness.rig.drivers.KINDS`, ``by_operator``)
    when the rig's operator cannot do it. Decided from the rig file alone, so test collection can
    skip what the rig cannot run before anything comes up."""
    operator = OPERATORS[config.operator.kind]
    capabilities = set(config.evse.capabilities)
    for role in ROLES:
        for capability, action in kind(role, getattr(config, role).kind).by_operator.items():
            if not operator.able(config.operator, action):
                capabilities.discard(capability)
    return frozenset(capabilities)
