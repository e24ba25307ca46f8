"""The generic SCPI driver: a lab describes its analyzer in YAML and the harness drives it."""

from __future__ import annotations

import time

import pytest

from harness.power.analyzer import IntegrationState, Wiring
from harness.power.generic import CommandMapError, GenericScpi, load_command_map

WT_AS_A_MAP = """
model: lab-wt-by-map
errors: {query: ":STATus:ERRor?", empty: '^0,'}
configure:
  ac1: [":INPut:WIRing P1W2"]
  ac3: [":INPut:WIRing P3W4"]
read:
  setup: [":NUMeric:NUMber 5;ITEM1 U,1;ITEM2 I,1;ITEM3 P,SIGMA;ITEM4 WPP,SIGMA;ITEM5 WPM,SIGMA"]
  query: ":NUMeric:VALue?"
  fields: [U1, I1, P, E+, E-]
integration:
  start: ":INTEGrate:STARt"
  stop: ":INTEGrate:STOP"
  reset: ":INTEGrate:RESet"
  state: ":INTEGrate:STATe?"
  states: {RESet: reset, STARt: running, STOP: stopped, TIMeup: timeup, ERRor: error}
local: ":COMMunicate:REMote OFF"
"""


def test_generic_driver_from_yaml_drives_the_simulated_analyzer_over_tcp(serve, tmp_path):
    path = tmp_path / "lab-wt.yaml"
    path.write_text(WT_AS_A_MAP)
    server = serve("wt")
    with GenericScpi(server.resource, load_command_map(path)) as analyzer:
        analyzer.configure(Wiring.AC3)
        analyzer.reset_integration()
        analyzer.start_integration()
        time.sleep(0.2)
        reading = analyzer.read()
        assert reading.channels[0].voltage == pytest.approx(230.0) and reading.power == pytest.approx(11040)
        assert reading.imported_wh > 0 and analyzer.integration_state() is IntegrationState.RUNNING
        analyzer.make_safe()
        assert analyzer.integration_state() is IntegrationState.STOPPED
    assert ":COMMunicate:REMote OFF" in server.analyzer.log  # make_safe handed the front panel back


def test_every_problem_of_a_map_is_named_with_its_path(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("""
model: broken
errors: {empty: '('}
read: {query: ":X?", fields: [U1, Volts], energy_unit: MWh}
integration: {start: S, stop: T, reset: R, state: "Q?", states: {RUN: sprinting}}
colour: blue
""")
    with pytest.raises(CommandMapError) as error:
        load_command_map(path)
    problems = "\n".join(error.value.problems)
    for expected in ("errors.query: is required", "errors.empty: not a regular expression",
                     "read.fields[1]: 'Volts' is not", "read.energy_unit: must be one of",
                     "integration.states.RUN: must be one of", "colour"):
        assert expected in problems, problems
