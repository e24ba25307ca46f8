"""Each driver's command dialogue against pyvisa-sim definitions (analyzers.sim.yaml): the exact
commands it sends, how it parses the replies, and that it reads the error queue after configuring."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.power.analyzer import InstrumentError, IntegrationState, Wiring
from harness.power.generic import GenericScpi, load_command_map
from harness.power.hioki import HiokiPw33xx
from harness.power.models import open_analyzer
from harness.power.yokogawa import YokogawaWt
from harness.power.zes import ZesLmg

HERE = Path(__file__).parent
SIM = f"{HERE / 'analyzers.sim.yaml'}@sim"


def test_yokogawa_wt1800_three_phase_dialogue():
    with YokogawaWt("TCPIP::localhost::7001::SOCKET", model="yokogawa-wt1800", backend=SIM) as wt:
        assert wt.identify().model == "WT1806"
        wt.configure(Wiring.AC3)  # every command known to the instrument: the error queue stays empty
        reading = wt.read()
        assert [c.voltage for c in reading.channels] == [230.10, 229.90, 230.00]
        assert reading.power == 11040.0 and reading.imported_wh == 12.3456 and reading.exported_wh == 0.5
        wt.reset_integration()
        wt.start_integration()
        assert wt.integration_state() is IntegrationState.RUNNING  # "STAR", the short form
        wt.make_safe()  # running: stopped, then local


def test_yokogawa_wt3000_names_its_energy_functions_wh():
    with YokogawaWt("TCPIP::localhost::7002::SOCKET", model="yokogawa-wt3000", backend=SIM) as wt:
        wt.configure(Wiring.AC1)
        with pytest.raises(InstrumentError, match=r"NUMeric:NORMal:VALue\?.*I1: no data"):
            wt.read()  # NAN where a value was asked for


def test_yokogawa_setting_the_instrument_refuses_is_reported_with_the_queue_entry():
    with YokogawaWt("TCPIP::localhost::7002::SOCKET", model="yokogawa-wt3000", backend=SIM) as wt:
        with pytest.raises(InstrumentError, match=r'yokogawa-wt3000 at TCPIP::localhost::7002::SOCKET on '
                                                  r'.*:INPut:WIRing P3W4.*113 "Undefined Header"'):
            wt.configure(Wiring.AC3)  # the simulated WT3000 only knows the single-phase dialogue


def test_hioki_pw3337_dialogue_sums_the_channels_energy():
    with HiokiPw33xx("TCPIP::localhost::7003::SOCKET", model="hioki-pw3337", backend=SIM) as pw:
        assert pw.identify().vendor == "HIOKI"
        pw.configure(Wiring.AC3)
        reading = pw.read()
        assert round(reading.power, 1) == 11039.9
        assert round(reading.imported_wh, 4) == 12.3456 and reading.exported_wh == 0.5
        pw.reset_integration()
        pw.start_integration()
        pw.stop_integration()
        assert pw.integration_state() is IntegrationState.STOPPED


def test_hioki_unknown_command_shows_in_the_event_status_register():
    with HiokiPw33xx("TCPIP::localhost::7003::SOCKET", model="hioki-pw3337", backend=SIM) as pw:
        with pytest.raises(InstrumentError, match=r"\*ESR\? bit 5: command error"):
            pw.configure(Wiring.DC)  # :RECTifier DC is not in this instrument's dialogue


def test_hioki_over_range_marker_is_an_error_naming_the_value():
    with HiokiPw33xx("TCPIP::localhost::7004::SOCKET", model="hioki-pw3335", backend=SIM) as pw:
        pw.configure(Wiring.AC1)
        with pytest.raises(InstrumentError, match=r"MEASure\? U,I,P,PWP,MWP.*I1: over range"):
            pw.read()


def test_zes_lmg_dialogue_one_compound_query_per_reading():
    with ZesLmg("TCPIP::localhost::7005::SOCKET", model="zes-lmg600", backend=SIM) as lmg:
        assert lmg.identify().model == "LMG671"
        lmg.configure(Wiring.AC1)
        reading = lmg.read()
        assert reading.channels[0].current == 16.01 and reading.imported_wh == 2.5 and reading.exported_wh == 0.25
        lmg.start_integration()
        assert lmg.integration_state() is IntegrationState.RUNNING
        lmg.go_local()


def test_generic_driver_from_a_yaml_command_map():
    command_map = load_command_map(HERE / "acme-pa3000.yaml")
    with GenericScpi("TCPIP::localhost::7006::SOCKET", command_map, backend=SIM) as acme:
        assert acme.name == "acme-pa3000 at TCPIP::localhost::7006::SOCKET"
        acme.configure(Wiring.DC)
        reading = acme.read()
        assert reading.channels[0].voltage == 800.0 and reading.power == -100000.0  # exporting
        assert reading.imported_wh == 250.0 and reading.exported_wh == 1500.0  # kWh on the wire
        acme.reset_integration()
        acme.start_integration()
        assert acme.integration_state() is IntegrationState.RUNNING
        acme.make_safe()


def test_a_model_that_is_a_yaml_file_opens_the_generic_driver():
    analyzer = open_analyzer("TCPIP::localhost::7006::SOCKET", "acme-pa3000.yaml", base=HERE, backend=SIM)
    try:
        assert isinstance(analyzer, GenericScpi) and analyzer.model == "acme-pa3000"
    finally:
        analyzer.close()
