"""The EVCC checks each response against its table, as the SECC checks each request: a response
that does not answer the request it sent, that comes with no request outstanding, that is no
response at all, or that answers a request its table does not allow in its state ends the
session with a sequence error naming the role, the state and the message."""

from __future__ import annotations

import pytest

from harness import exi
from harness.emulators.charge_port import ChargePort
from harness.v2g import din, faults, messages, sap
from harness.v2g.battery import Battery
from harness.v2g.equipment import EvseCapabilities
from harness.v2g.faults import FaultPlan
from harness.v2g.machine import Close, Finished, Notice, Send
from harness.v2g.session import EvccSession, SeccSession
from harness.v2g.timers import Timing
from harness.v2g.vehicle import ChargePlan, Vehicle
from tests.v2g.lockstep import first_send
from tests.v2g.lockstep import run as lockstep
from tests.v2g.pair import start_pair, vehicle

TIMING = Timing(scale=0.0)


def _sessions(protocol: str, energy: str = "DC", *, cycles: int = 2,
              timing: Timing = TIMING) -> tuple[EvccSession, SeccSession]:
    caps = EvseCapabilities(protocols=(protocol,), cable_check_rounds=1)
    tls = "TLSv1.3" if protocol.startswith("iso20") else None
    secc = SeccSession(ChargePort(caps), supported=[sap.protocol(protocol)], tls=tls, timing=timing)
    ev = Vehicle("0A1B2C3D4E5F", Battery(60000.0, 0.4, 50000.0, 11000.0), vin="WHARNESS000000001",
                 plan=ChargePlan(protocols=(protocol,), energy=energy, cycles=cycles))
    return EvccSession(ev, offered=[protocol], timing=timing), secc


def _until(evcc: EvccSession, secc: SeccSession, request: str, *, answered: int = 0) -> float:
    """Run both machines until the EVCC has sent ``request`` (and ``answered`` of them were
    answered): the SECC does not see that one. Returns the time."""
    now, seen = 0.0, 0
    events = evcc.start(now)
    for _ in range(500):
        send = first_send(events)
        if send is None:
            assert evcc.deadline is not None and not evcc.finished, evcc.outcome
            now = evcc.deadline
            events = evcc.poll(now)
            continue
        if send.name == request:
            if seen == answered:
                return now
            seen += 1
        answer = first_send(secc.receive(send.payload_type, send.data, now))
        assert answer is not None, secc.outcome
        events = evcc.receive(answer.payload_type, answer.data, now)
    raise AssertionError(f"the EVCC never sent {request}")


def _response(secc: SeccSession, request: str, code: str = "OK") -> Send:
    """The SECC's response to ``request`` (mandatory content, ``code``), whatever its state."""
    assert secc.rules is not None
    return secc._encode(messages.response_name(request), secc.rules.secc_failure(secc, request, code))


def _refusal(events: list) -> tuple[Notice, Finished]:
    notices = [e for e in events if isinstance(e, Notice)]
    finished = [e for e in events if isinstance(e, Finished)]
    assert notices and finished and any(isinstance(e, Close) for e in events), events
    return notices[0], finished[0]


@pytest.mark.parametrize("protocol, sent, state, unasked", [
    ("din", "ServiceDiscoveryReq", "SessionSetupRes", "CableCheckReq"),
    ("iso2", "ServiceDiscoveryReq", "SessionSetupRes", "ChargeParameterDiscoveryReq"),
    ("iso20-dc", "AuthorizationSetupReq", "SessionSetupRes", "DC_CableCheckReq"),
], ids=["din", "iso2", "iso20"])
def test_a_response_to_another_request_ends_the_session_naming_role_state_and_message(protocol, sent, state, unasked):
    evcc, secc = _sessions(protocol)
    now = _until(evcc, secc, sent)
    assert evcc.state == state and evcc.sent_name == sent
    wrong = _response(secc, unasked)
    notice, finished = _refusal(evcc.receive(wrong.payload_type, wrong.data, now))
    response = messages.response_name(unasked)
    assert notice.name == "SequenceError"
    assert notice.details["role"] == "EVCC" and notice.details["state"] == state
    assert notice.details["message"] == response and notice.details["sent"] == sent
    for text in (notice.summary, finished.outcome.reason):
        assert "EVCC" in text and state in text and response in text, text
        assert f"expected {messages.response_name(sent)}, got {response}" in text
    assert not finished.outcome.ok and evcc.finished
    assert evcc.receive(wrong.payload_type, wrong.data, now) == []  # nothing after the end


def test_the_clause_the_evcc_applies_is_the_protocols():
    evcc, secc = _sessions("iso20-dc")
    now = _until(evcc, secc, "AuthorizationSetupReq")
    wrong = _response(secc, "SessionStopReq")
    notice, _ = _refusal(evcc.receive(wrong.payload_type, wrong.data, now))
    assert "[V2G20-459]" in notice.summary

    evcc, secc = _sessions("iso2")
    now = _until(evcc, secc, "ServiceDiscoveryReq")
    wrong = _response(secc, "SessionStopReq")
    notice, _ = _refusal(evcc.receive(wrong.payload_type, wrong.data, now))
    assert "[V2G2-538]" in notice.summary


def test_a_failed_response_to_another_request_keeps_its_code():
    """The response code of a response the EVCC did not ask for still goes to the outcome."""
    evcc, secc = _sessions("iso2")
    now = _until(evcc, secc, "ServiceDiscoveryReq")
    wrong = _response(secc, "PaymentServiceSelectionReq", "FAILED_SequenceError")
    notice, finished = _refusal(evcc.receive(wrong.payload_type, wrong.data, now))
    assert finished.outcome.response_code == "FAILED_SequenceError"
    assert "got PaymentServiceSelectionRes FAILED_SequenceError" in notice.summary


def test_a_response_while_no_request_is_outstanding_is_a_sequence_error():
    """Between two charge loop requests (the EV waits its loop interval) nothing is asked."""
    evcc, secc = _sessions("iso2", cycles=3, timing=Timing(scale=1.0))
    now = _until(evcc, secc, "CurrentDemandReq", answered=1)  # the second one is sent: the first was answered
    repeated = _response(secc, "CurrentDemandReq")
    evcc.receive(repeated.payload_type, repeated.data, now)  # answers the second: the third waits
    assert evcc.sent_name is None and evcc.deadline is not None and not evcc.finished
    notice, finished = _refusal(evcc.receive(repeated.payload_type, repeated.data, now))
    assert notice.name == "SequenceError" and notice.details == {
        "role": "EVCC", "state": "CurrentDemandRes", "message": "CurrentDemandRes", "sent": None}
    assert "no request is outstanding" in finished.outcome.reason and "EVCC in state CurrentDemandRes" in \
        finished.outcome.reason


def test_a_request_from_the_secc_is_not_a_response():
    evcc, secc = _sessions("din")
    now = _until(evcc, secc, "ServiceDiscoveryReq")
    request = secc._encode("SessionSetupReq", {"EVCCID": "0A1B2C3D4E5F"})
    notice, finished = _refusal(evcc.receive(request.payload_type, request.data, now))
    assert notice.name == "NotAResponse" and notice.details["role"] == "EVCC"
    assert "EVCC in state SessionSetupRes refuses SessionSetupReq: it is not a response" in finished.outcome.reason


def test_a_response_to_a_request_the_table_does_not_allow_in_the_state_is_refused():
    """The EVCC's context is what the table's guards read: a response that answers a request the
    guards forbid in the EVCC's state (here: its context says the authorization is still
    Ongoing, so ChargeParameterDiscoveryReq may not follow) is not taken."""
    evcc, secc = _sessions("din")
    now = _until(evcc, secc, "ChargeParameterDiscoveryReq")
    assert evcc.state == "ContractAuthenticationRes"
    evcc.context.processing = "Ongoing"
    answer = first_send(secc.receive(*_sent(evcc, secc, now), now))
    assert answer is not None and answer.name == "ChargeParameterDiscoveryRes"
    notice, finished = _refusal(evcc.receive(answer.payload_type, answer.data, now))
    assert notice.details["state"] == "ContractAuthenticationRes"
    assert "it answers ChargeParameterDiscoveryReq, which may not follow ContractAuthenticationRes" in notice.summary
    assert "EVCC" in finished.outcome.reason


def _sent(evcc: EvccSession, secc: SeccSession, now: float) -> tuple[int, bytes]:
    """The request the EVCC sent last, rebuilt (the run stopped before the SECC saw it)."""
    assert evcc.sent_name == "ChargeParameterDiscoveryReq"
    send = evcc._encode("ChargeParameterDiscoveryReq", din.RULES._ev_charge_parameter(evcc))
    return send.payload_type, send.data


def test_the_handshake_is_checked_too():
    """Before the handshake only supportedAppProtocolRes answers (the EVCC decodes nothing else)."""
    evcc, _ = _sessions("iso2")
    evcc.start(0.0)
    echoed = exi.encode(sap.request(sap.offer(["iso2"])), "sap")  # the SECC sends the EV's request back
    notice, finished = _refusal(evcc.receive(0x8001, echoed, 0.0))
    assert notice.name == "NotAResponse" and notice.details["state"] == "Start"
    assert notice.details["sent"] == "supportedAppProtocolReq"
    assert "EVCC in state Start refuses supportedAppProtocolReq" in finished.outcome.reason


def test_a_whole_session_passes_the_evccs_check_on_every_response():
    """The EVCC's context keeps what the guards read as the SECC's does: no normal session trips
    its own check."""
    for protocol, energy in (("din", "DC"), ("iso2", "AC"), ("iso2", "DC"), ("iso20-ac", "AC"), ("iso20-dc", "DC")):
        evcc, secc = _sessions(protocol, energy)
        lockstep(evcc, secc)
        assert evcc.outcome is not None and evcc.outcome.ok, (protocol, energy, evcc.outcome)


def test_the_secc_refusal_names_its_role_state_and_message_too():
    evcc, secc = _sessions("iso2")
    now = _until(evcc, secc, "ServiceDiscoveryReq")
    out_of_sequence = evcc._encode("PowerDeliveryReq", {"ChargeProgress": "Start", "SAScheduleTupleID": 1})
    events = secc.receive(out_of_sequence.payload_type, out_of_sequence.data, now)
    notice = next(e for e in events if isinstance(e, Notice))
    assert notice.name == "SequenceError" and "[V2G2-538]" in notice.summary
    assert notice.details["role"] == "SECC" and notice.details["state"] == "SessionSetupRes"
    assert notice.details["message"] == "PowerDeliveryReq"
    assert "SECC in state SessionSetupRes refuses PowerDeliveryReq" in secc.outcome.reason


def test_the_adapter_records_the_evccs_sequence_error_on_the_timeline(run):
    async def scenario():
        pair = await start_pair(faults=FaultPlan([faults.duplicate("SessionSetupRes")]))
        try:
            outcome = await pair.charge(vehicle(ChargePlan(protocols=("iso2",), cycles=1)))
        finally:
            await pair.close()
        return pair, outcome

    pair, outcome = run(scenario())
    refused = pair.recorder.first(name="SequenceError", observer="ev")
    assert refused is not None, [e.name for e in pair.recorder.select(observer="ev")]
    assert "EVCC in state SessionSetupRes refuses SessionSetupRes" in refused.summary
    assert not outcome.ok and "expected ServiceDiscoveryRes, got SessionSetupRes" in outcome.reason
