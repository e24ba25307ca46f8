"""The simulated analyzer over a real socket through pyvisa-py: what a real one accepts from a
program, its error reporting, the integrator's state rules, and readings from the power flow."""

from __future__ import annotations

import time

import pytest

from harness.emulators.analyzer import INTEGRATOR, Flow, SimulatedAnalyzer
from harness.power.analyzer import IntegrationState, Wiring
from harness.power.hioki import HiokiPw33xx
from harness.power.yokogawa import YokogawaWt


def test_wt_identifies_and_accepts_any_case_short_and_long_forms(serve, visa):
    wt = visa(serve("wt").resource)
    assert wt.query("*IDN?").startswith("YOKOGAWA,WT1806-SIM,")
    wt.write(":input:wir p3w4")
    assert wt.query(":INPUT:WIRING?") == "P3W4,P1W2"  # four elements: the fourth stays single-phase
    wt.write(":COMMUNICATE:HEADER ON")
    assert wt.query(":INP:WIR?").startswith(":INPUT:WIRING P3W4")
    assert wt.query(":STAT:ERR?") == '0,"No error"'


def test_wt_compound_message_sets_items_and_answers_all_queries_in_one_line(serve, visa):
    wt = visa(serve("wt").resource)
    wt.write(":INP:WIR P3W4;:NUM:NORM:NUM 3;ITEM1 U,1;ITEM2 I,2;ITEM3 P,SIGMA")
    reply = wt.query(":NUM:NORM:VAL?;*OPC?;:NUMERIC:NORMAL:ITEM3?")
    values, opc, item = reply.split(";")
    u, i, p = (float(v) for v in values.split(","))
    assert (round(u, 1), round(i, 2), round(p)) == (230.0, 16.0, 11040)
    assert opc == "1" and item == "P,SIGMA"


def test_wt_error_queue_names_undefined_headers_and_bad_data(serve, visa):
    wt = visa(serve("wt").resource)
    wt.write(":NUM:NORM:ITEM1 WHP,1")  # a WT3000 function name on a WT1800
    wt.write(":NO:SUCH:HEADER 1")
    wt.write(":NUM:NORM:NUM 999")
    assert wt.query(":STATUS:ERROR?").startswith("141,")
    assert wt.query(":STATUS:ERROR?").startswith("113,")
    assert wt.query(":STATUS:ERROR?").startswith("222,")
    assert wt.query(":STATUS:ERROR?") == '0,"No error"'
    wt.write(":NO:SUCH:HEADER")
    wt.write("*CLS")
    assert wt.query(":STAT:ERR?") == '0,"No error"'
    assert wt.query(":SYSTem:ERRor?;*OPC?") == "1"  # not a WT command: only *OPC? answers
    assert wt.query(":STAT:ERR?").startswith("113,")


def test_rst_returns_settings_to_defaults(serve, visa):
    wt = visa(serve("wt").resource)
    wt.write(":INP:WIR P3W4;:INTEG:STAR")
    wt.write("*RST")
    assert wt.query(":INP:WIR?") == "P1W2,P1W2,P1W2,P1W2" and wt.query(":INTEG:STAT?") == "RES"


def test_integrator_rules_of_the_real_instrument(serve, visa):
    wt = visa(serve("wt").resource)
    assert wt.query(":INTEG:STAT?") == "RES"
    wt.write(":INTEG:STOP")  # nothing to stop
    assert wt.query(":STAT:ERR?").startswith("221,")
    wt.write(":INTEG:STAR")
    assert wt.query(":INTEG:STAT?") == "STAR"
    wt.write(":INTEG:RES;:INP:WIR P3W4;:INTEG:TIM 0,0,1")  # none of these while integrating
    assert [wt.query(":STAT:ERR?")[:3] for _ in range(3)] == ["221", "221", "221"]
    wt.write(":INTEG:STOP;:INTEG:STAR")  # a stop by command may resume
    assert wt.query(":INTEG:STAT?") == "STAR"
    wt.write(":COMM:VERB ON")
    assert wt.query(":INTEG:STAT?") == "START"  # long form when verbose
    assert INTEGRATOR[(IntegrationState.TIMEUP, "reset")] is IntegrationState.RESET
    assert (IntegrationState.TIMEUP, "start") not in INTEGRATOR


def test_integration_timer_stops_at_timeup_and_must_be_reset(serve, visa, line):
    server = serve("wt")
    wt = visa(server.resource)
    wt.write(":INP:WIR P3W4;:NUM:NUM 2;:NUM:ITEM1 WPP,SIGMA;ITEM2 TIME,SIGMA;:INTEG:TIM 0,0,1;:INTEG:STAR")
    time.sleep(1.3)
    assert wt.query(":INTEG:STAT?") == "TIM"
    energy, elapsed = wt.query(":NUM:VAL?").split(",")
    assert elapsed == "1" and float(energy) == pytest.approx(11040 / 3600, rel=0.01)  # one second's worth
    wt.write(":INTEG:STAR")
    assert wt.query(":STAT:ERR?").startswith("221,")
    wt.write(":INTEG:RES;:INTEG:STAR")
    assert wt.query(":INTEG:STAT?") == "STAR"


def test_hioki_dialect_measure_query_and_event_status_register(serve, visa):
    pw = visa(serve("hioki").resource, read_termination="\r\n")
    assert pw.query("*IDN?").startswith("HIOKI,PW3337,")
    assert pw.query(":MEAS? U1,I1,P1").split(",") == ["+230.00E+0", "+16.000E+0", "+3.6800E+3"]
    pw.write(":HEAD ON")
    assert pw.query(":MEASure? U2").startswith("U2 +230.00E+0")
    pw.write(":INTEG:STAT STOP")  # not running: a device-dependent error
    assert pw.query("*ESR?") == "8" and pw.query("*ESR?") == "0"
    pw.write(":NOT:A:COMMAND")
    assert int(pw.query("*ESR?")) & 32


def test_readings_follow_the_flow_and_export_is_negative(serve, line):
    server = serve("wt")
    with YokogawaWt(server.resource) as wt:
        wt.configure(Wiring.AC3)
        wt.reset_integration()
        wt.start_integration()
        time.sleep(0.25)
        line.set(current=-10.0)  # the EV gives energy back
        time.sleep(0.35)
        reading = wt.read()
        assert reading.power == pytest.approx(-230 * 10 * 3, rel=1e-3)
        assert reading.imported_wh > 0 and reading.exported_wh > 0
        wt.stop_integration()
        imported, exported = wt.energy()
        flow = line.read()
        assert imported <= flow.imported_wh and exported <= flow.exported_wh


def test_accuracy_class_bounds_the_gain_error_and_noise_leaves_energy_alone():
    flow = Flow(230.0, 16.0, 3, 11040.0, 100.0, 0.0)
    analyzers = [SimulatedAnalyzer(lambda: flow, accuracy=0.5, seed=seed) for seed in range(20)]
    assert all(abs(a.gain_error) <= 0.005 for a in analyzers)
    assert len({round(a.gain_error, 9) for a in analyzers}) > 1  # drawn, not a constant
    noisy = SimulatedAnalyzer(lambda: flow, accuracy=0.0, noise=1.0, seed=3, update_interval=0.0)
    powers = [noisy.element_values(1)[2] for _ in range(200)]
    assert 0.002 < (max(powers) - min(powers)) / 3680 < 0.1
    quiet = SimulatedAnalyzer(lambda: flow, accuracy=0.0, noise=0.0)
    assert quiet.element_values(2) == (230.0, 16.0, 3680.0)


def test_hioki_driver_against_the_simulated_pw3337(serve):
    server = serve("hioki")
    with HiokiPw33xx(server.resource, model="hioki-pw3337") as pw:
        pw.configure(Wiring.AC3)
        pw.reset_integration()
        pw.start_integration()
        time.sleep(0.2)
        reading = pw.read()
        assert reading.power == pytest.approx(11040, rel=1e-3) and reading.imported_wh > 0
        assert pw.integration_state() is IntegrationState.RUNNING
        pw.make_safe()
        assert pw.integration_state() is IntegrationState.STOPPED


def test_a_client_that_says_nothing_is_let_go(run):
    """Every connection has a deadline: a SCPI client without a complete message for idle_timeout
    seconds (300 by default; 0.3 here), silent or stuck mid-line, is disconnected; a client that
    asks goes on being served."""
    import asyncio

    from harness.emulators.analyzer import constant_flow
    from harness.emulators.analyzer_server import AnalyzerServer

    async def scenario():
        server = await AnalyzerServer(SimulatedAnalyzer(constant_flow(230.0, 10.0, 1)), idle_timeout=0.3).start()
        try:
            silent = await asyncio.open_connection(server.host, server.port)
            half = await asyncio.open_connection(server.host, server.port)
            half[1].write(b"*IDN")  # never the LF
            busy = await asyncio.open_connection(server.host, server.port)
            answers = []
            for _ in range(5):
                busy[1].write(b"*IDN?\n")
                answers.append(await asyncio.wait_for(busy[0].readline(), 2))
                await asyncio.sleep(0.1)
            closed = [await asyncio.wait_for(r.read(), 2) == b"" for r, _ in (silent, half)]
            return answers, closed
        finally:
            await server.stop()

    answers, closed = run(scenario())
    assert all(a.startswith(b"YOKOGAWA") for a in answers) and closed == [True, True]
