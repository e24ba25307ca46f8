"""One driver class per kind, chosen through the registry; a new kind is one class and one line."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from harness.iec61851.pilot import PilotLine
from harness.rig import drivers
from harness.rig.config import RigFileError, load_rig, parse_rig
from harness.rig.drivers import KINDS, Kind, driver_class, offered_capabilities
from harness.rig.operator import OperatorConfig
from harness.rig.pilot import PilotDriver, SimulatedPilotDriver
from harness.rig.rig import Rig
from harness.rig.role import Driver
from harness.trace import Recorder

ROOT = Path(__file__).resolve().parents[2]
EMULATED = ROOT / "rigs" / "emulated.yaml"
LAB = ROOT / "rigs" / "lab-example.yaml"


@pytest.mark.parametrize("role, kind", [(role, kind) for role, kinds in KINDS.items() for kind in kinds])
def test_every_registered_kind_names_a_driver_class(role, kind):
    cls = driver_class(role, kind)
    assert issubclass(cls, Driver), f"{role}.{kind} -> {cls} is not a driver"


def test_the_rig_file_reader_takes_its_choices_from_the_registry():
    data = {"name": "x", "kind": "emulated", "csms": {}, "evse": {"station_id": "S", "ocpp": {"version": "2.0.1"}},
            "meter": {"kind": "oscilloscope"}}
    with pytest.raises(RigFileError) as caught:
        parse_rig(data)
    assert "meter.kind: must be one of none, simulated, visa" in str(caught.value)


def test_unknown_kind_is_named_with_the_choices():
    with pytest.raises(ValueError, match="link.kind 'carrier-pigeon' is not one of loopback, veth, nic"):
        driver_class("link", "carrier-pigeon")


def test_capabilities_that_need_an_operator_are_decided_from_the_rig_file():
    lab = load_rig(LAB)
    assert lab.evse.kind == "lab" and lab.ev.kind == "none"
    lab = dataclasses.replace(lab, evse=dataclasses.replace(lab.evse, capabilities=("ev", "local_id_token",
                                                                                     "remote_start")))

    def offered(operator: OperatorConfig) -> frozenset[str]:
        return offered_capabilities(dataclasses.replace(lab, operator=operator))

    # nobody at the bench: no plugging in (no EV emulator), no token at a real charger
    assert offered(OperatorConfig(kind="none")) == {"remote_start"}
    assert offered(OperatorConfig(kind="command", commands={"present_token": "rfid {token}"})) == \
        {"remote_start", "local_id_token"}
    assert offered(OperatorConfig(kind="prompt")) == {"remote_start", "local_id_token", "ev"}
    # the emulated rig's kinds need nobody: it offers what its file says
    emulated = load_rig(EMULATED)
    assert offered_capabilities(emulated) == frozenset(emulated.evse.capabilities)


class CountingPilot(SimulatedPilotDriver):
    """A lab's pilot box, as a test stands one in: the simulated line, counting what the rig does."""

    calls: list[str] = []

    async def activate(self) -> None:
        CountingPilot.calls.append("activate")
        self.record("PilotBoxOpen", "pilot box ready")

    async def make_safe(self) -> None:
        CountingPilot.calls.append("make_safe")

    async def deactivate(self) -> None:
        CountingPilot.calls.append("deactivate")

    def line(self, evse_id: int) -> PilotLine:
        CountingPilot.calls.append(f"line {evse_id}")
        return super().line(evse_id)


def test_a_new_kind_is_one_class_and_one_registry_line(tmp_path, monkeypatch):
    pilots = {**KINDS["pilot"], "box": Kind(f"{__name__}:CountingPilot", "a pilot box")}
    monkeypatch.setattr(drivers, "KINDS", {**KINDS, "pilot": pilots})
    text = EMULATED.read_text().replace("pilot:\n  kind: simulated\n", "pilot:\n  kind: box\n")
    text = text.replace("../fixtures/", f"{ROOT / 'fixtures'}/")  # the profiles, from where the copy is
    rig_file = tmp_path / "rig.yaml"
    rig_file.write_text(text)
    config = load_rig(rig_file)
    assert config.pilot.kind == "box"
    CountingPilot.calls = []
    rig = Rig(config, run_dir=tmp_path / "run", trace=Recorder(tmp_path / "trace.jsonl"), run_id="t")
    with rig:
        assert isinstance(rig.pilot.driver, CountingPilot) and isinstance(rig.pilot.driver, PilotDriver)
        rig.evse.wait_registered(30)
        rig.ev.plug_in()  # the EV reaches the pilot through the role, so through the new driver
        assert rig.trace.wait_for(5, name="CpState", where=lambda e: e.payload["to"] == "B")
    assert CountingPilot.calls[0] == "activate" and "line 1" in CountingPilot.calls, CountingPilot.calls
    assert CountingPilot.calls[-2:] == ["make_safe", "deactivate"]
    assert rig.trace.last(name="PilotBoxOpen") is not None
