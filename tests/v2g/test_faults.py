"""Faults committed on purpose: each is on the timeline, and the other side reacts as the
standard says."""

from __future__ import annotations

import pytest

from harness.v2g import faults
from harness.v2g.faults import FaultPlan, flip_bits, set_path
from harness.v2g.vehicle import ChargePlan
from tests.v2g.pair import start_pair, vehicle


def _session(run, *, evse_faults=(), ev_faults=(), cycles=2, energy="AC"):
    async def scenario():
        pair = await start_pair(faults=FaultPlan(list(evse_faults)))
        try:
            plan = FaultPlan(list(ev_faults))
            outcome = await pair.charge(vehicle(ChargePlan(protocols=("iso2",), energy=energy, cycles=cycles)),
                                        faults=plan)
        finally:
            await pair.close()
        return pair, outcome

    return run(scenario())


def test_a_failed_response_code_ends_the_session_on_the_ev_side(run):
    pair, outcome = _session(run, evse_faults=[faults.response_code("ChargeParameterDiscoveryRes", "FAILED")])
    assert not outcome.ok and outcome.response_code == "FAILED"
    fault = pair.recorder.first(layer="fault", observer="evse")
    assert fault.name == "FaultCode" and "ChargeParameterDiscoveryRes" in fault.summary
    sent = [e.name for e in pair.recorder.select(layer="v2g", observer="ev", src="ev") if e.payload.get("message")]
    assert sent[-1] == "ChargeParameterDiscoveryReq"  # nothing after the FAILED response


def test_a_dropped_response_runs_out_the_evs_message_timeout(run):
    pair, outcome = _session(run, evse_faults=[faults.drop("ServiceDiscoveryRes")])
    assert not outcome.ok and "V2G_EVCC_Msg_Timeout" in outcome.reason
    assert pair.recorder.first(name="MessageTimeout", observer="ev") is not None


def test_corrupted_exi_is_not_answered_and_the_connection_closes(run):
    pair, outcome = _session(run, ev_faults=[faults.corrupt("ServiceDiscoveryReq", bits=24)])
    assert not outcome.ok
    assert pair.secc.outcomes[-1].ok is False
    assert pair.recorder.first(layer="fault", name="FaultCorrupt", observer="ev") is not None


def test_a_replaced_session_id_is_refused_by_the_secc(run):
    pair, outcome = _session(run, ev_faults=[faults.replace("ServiceDiscoveryReq", "Header.SessionID", "0102030405060708")])
    assert outcome.response_code == "FAILED_UnknownSession"


def test_a_skipped_state_gives_a_sequence_error(run):
    pair, outcome = _session(run, ev_faults=[faults.skip("ChargeParameterDiscoveryReq")])
    assert outcome.response_code == "FAILED_SequenceError"
    sent = [e.name for e in pair.recorder.select(layer="v2g", observer="ev", src="ev") if e.payload.get("message")]
    assert "ChargeParameterDiscoveryReq" not in sent and sent[-1] == "PowerDeliveryReq"


def test_a_repeated_request_is_a_sequence_error(run):
    pair, outcome = _session(run, ev_faults=[faults.repeat("PaymentServiceSelectionReq")])
    assert outcome.response_code == "FAILED_SequenceError"


def test_a_duplicated_response_makes_the_ev_stop_at_the_unexpected_message(run):
    pair, outcome = _session(run, evse_faults=[faults.duplicate("SessionSetupRes")])
    assert not outcome.ok and "expected ServiceDiscoveryRes, got SessionSetupRes" in outcome.reason


def test_a_delayed_response_within_the_timeout_is_fine(run):
    pair, outcome = _session(run, evse_faults=[faults.delay("SessionSetupRes", 0.1)])
    assert outcome.ok


def test_the_secc_closing_tcp_ends_the_ev_session(run):
    pair, outcome = _session(run, evse_faults=[faults.close("PowerDeliveryRes")])
    assert not outcome.ok and outcome.reason == "connection lost"


def test_a_malformed_header_from_the_evse_is_ignored_by_the_ev(run):
    pair, outcome = _session(run, evse_faults=[faults.bad_header("ServiceDiscoveryRes", version=0x03)])
    assert not outcome.ok
    rejected = pair.recorder.first(name="V2gtpHeaderRejected", observer="ev")
    assert rejected is not None and "version 0x03" in rejected.summary


def test_flip_bits_is_reproducible_and_spares_the_exi_header():
    data = bytes(range(32))
    assert flip_bits(data, 5) == flip_bits(data, 5) != data
    assert flip_bits(data, 5)[0] == data[0]


def test_set_path_reaches_header_and_body():
    message = {"V2G_Message": {"Header": {"SessionID": "00"}, "Body": {"SessionSetupReq": {"EVCCID": "01"}}}}
    assert set_path(message, "Header.SessionID", "FF")["V2G_Message"]["Header"]["SessionID"] == "FF"
    assert set_path(message, "SessionSetupReq.EVCCID", "02")["V2G_Message"]["Body"]["SessionSetupReq"]["EVCCID"] == "02"
    assert message["V2G_Message"]["Header"]["SessionID"] == "00"  # the original is untouched


def test_a_fault_names_its_message():
    with pytest.raises(ValueError, match="names the message"):
        faults.Fault("drop")
    with pytest.raises(ValueError, match="unknown fault kind"):
        faults.Fault("explode", "SessionSetupReq")


def test_the_ev_gives_up_when_the_session_is_not_set_up_in_time(run):
    from harness.v2g import timers
    from harness.v2g.timers import Timing

    # V2G_EVCC_CommunicationSetup_Timeout (20 s) scaled by 0.005 is 0.1 s, shorter than the delay
    # of SessionSetupRes; the session ends for that reason (it is checked before the message timeout)
    timing = Timing(scale=0.005, min_timeout=0.1)
    assert timing.timeout(timers.SAP.communication_setup_timeout) == 0.1

    async def scenario():
        pair = await start_pair(faults=FaultPlan([faults.delay("SessionSetupRes", 0.3)]), timing=timing)
        try:
            return await pair.charge(vehicle(ChargePlan(protocols=("iso2",), cycles=1)), timing=timing), pair
        finally:
            await pair.close()

    outcome, pair = run(scenario())
    assert not outcome.ok and outcome.reason == "V2G_EVCC_CommunicationSetup_Timeout"
