"""The timer tables and how a rig scales them."""

from __future__ import annotations

from harness.v2g import timers
from harness.v2g.timers import Timing


def test_the_tables_hold_the_standards_values():
    assert timers.ISO2.msg("CurrentDemandReq") == 0.25
    assert timers.ISO2.msg("PowerDeliveryReq") == 5.0
    assert timers.ISO2.msg("SessionSetupReq") == 2.0
    assert timers.ISO2.sequence("ChargeParameterDiscoveryRes") == 60.0
    assert timers.ISO20.msg("DC_ChargeLoopReq") == 0.5
    assert timers.ISO20.sequence("AC_ChargeLoopRes") == 0.5
    assert timers.ISO20.sequence("SessionSetupRes") == 60.0
    assert (timers.ISO2.ongoing_timeout, timers.ISO2.cable_check_timeout, timers.ISO2.pre_charge_timeout) == (60, 40, 7)
    assert (timers.SDP.response_timeout, timers.SDP.attempts) == (0.25, 50)


def test_a_lab_rig_uses_them_as_they_are():
    assert Timing().timeout(0.25) == 0.25 and Timing().wait(0.25) == 0.25


def test_an_emulated_rig_scales_timeouts_down_to_a_floor_and_waits_to_nothing():
    timing = Timing(scale=0.02, min_timeout=0.5)
    assert timing.timeout(60.0) == 1.2          # 60 s * 0.02
    assert timing.timeout(2.0) == 0.5           # floored
    assert timing.timeout(0.25) == 0.25         # never longer than the standard's value
    assert timing.wait(0.25) == 0.005
    assert Timing(scale=0.0).wait(10.0) == 0.0


def test_the_protocol_family_picks_the_table():
    assert Timing().of("iso20-ac") is timers.ISO20
    assert Timing().of("din") is timers.DIN
