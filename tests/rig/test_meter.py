"""The meter role on the emulated rig, and an instrument that goes away in the middle of a case:
the error, the verdict and the clean teardown."""

from __future__ import annotations

import json
from pathlib import Path

from harness.ocpp import commands
from harness.rig.config import load_rig
from harness.rig.rig import Rig
from harness.trace import Recorder

ROOT = Path(__file__).resolve().parents[2]
pytest_plugins = ["pytester"]


def test_simulated_analyzer_measures_the_reference_evse_cable(tmp_path):
    rig = Rig(load_rig(ROOT / "rigs" / "emulated.yaml"), run_dir=tmp_path, trace=Recorder(tmp_path / "trace.jsonl"))
    with rig:
        rig.evse.wait_registered(30)
        assert rig.meter.identity.vendor == "YOKOGAWA" and "SOCKET" in rig.meter.resource
        mark = rig.trace.now()
        with rig.meter.measuring() as run:
            rig.ev.plug_in()
            rig.csms.call(*commands.remote_start(rig.evse.version, "METER-ROLE"))
            rig.csms.wait_charging(timeout=10, since=mark)
            rig.meter.wait_power(lambda p: p > 10000, timeout=5, since=mark)
            power = rig.evse.emulator.connectors[1].line.read().power
        assert 0 < run.imported_wh <= rig.evse.emulator.connectors[1].line.read().imported_wh
        assert abs(run.last.power - power) <= 0.002 * power  # within the analyzer's 0.1 % class
        assert len(run.samples()) >= 3
    names = [e.name for e in rig.trace.select(layer="rig")]
    assert "MeterSafe" in names and names[-1] == "RigTeardown"
    assert rig.trace.last(name="RigTeardown").payload["failures"] == []


CATALOGUE = """
suites:
  demo: {title: Demo}
cases:
  DEMO-METER-LOST: {suite: demo, title: the analyzer goes away while measuring}
"""

SUITE = """
import pytest
from harness.ocpp import commands

@pytest.mark.case("DEMO-METER-LOST")
def test_analyzer_lost_mid_measurement(rig, csms, evse, ev, meter):
    mark = rig.trace.now()
    with meter.measuring():
        ev.plug_in()
        csms.call(*commands.remote_start(evse.version, "LOST-TOKEN"))
        csms.wait_charging(timeout=10, since=mark)
        meter.wait_power(lambda p: p > 0, timeout=5, since=mark)
        rig.run(rig.meter.server.drop_connections())  # the LAN cable is pulled
        rig.trace.wait_for(5, layer="fault", name="InstrumentFailed", since=mark)
"""


def test_instrument_lost_mid_measurement_is_an_error_and_teardown_is_clean(pytester):
    pytester.makefile(".yaml", catalogue=CATALOGUE)
    pytester.makepyfile(test_demo=SUITE)
    report = pytester.path / "report"
    result = pytester.runpytest_subprocess(f"--harness-rig={ROOT / 'rigs' / 'emulated.yaml'}",
                                           f"--harness-report-dir={report}", "-p", "no:cacheprovider")
    document = json.loads((report / "conformance.json").read_text())
    case = document["cases"][0]
    assert case["verdict"] == "error", result.stdout.str()[-3000:]  # the rig broke, not the DUT
    assert case["message"].startswith("InstrumentError: power analyzer yokogawa-wt1800 at TCPIP::127.0.0.1::")
    assert "on ':NUMeric:NORMal:VALue?'" in case["message"]
    trace = Recorder.load(report / "trace.jsonl")
    fault = trace.last(name="InstrumentFailed")
    assert fault.payload["command"] == ":NUMeric:NORMal:VALue?"
    restored = trace.first(name="MeterRestored", where=lambda e: e.seq > fault.seq)
    assert restored is not None and "reconnected, integration stopped" in restored.summary  # after the case
    safe = [e for e in trace.select(name="MeterSafe") if e.seq > restored.seq]
    assert safe and "integration stopped, instrument local" in safe[0].summary  # at teardown
    teardown = trace.last(name="RigTeardown")
    assert teardown.payload["failures"] == [] and teardown.seq > safe[-1].seq
    assert "conformance: 1 error" in result.stdout.str()
    assert "error" in (report / "conformance.html").read_text()
