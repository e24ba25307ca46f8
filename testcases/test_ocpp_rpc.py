"""OCPP-J message handling of the EVSE under test: concurrency, malformed frames, CALLERRORs and
retries."""

from __future__ import annotations

import json

import pytest

from harness.ocpp import commands
from harness.ocpp.frames import Violation, acceptable_codes


def _answer_to(message_id: str):
    """Any frame the station sent with this messageId: a CALLRESULT, a CALLERROR, or a malformed
    frame of either (the endpoint records the messageId of a malformed frame when it can read it)."""
    def match(event) -> bool:
        body = event.payload if isinstance(event.payload, dict) else {}
        return body.get("message_id") == message_id and body.get("type") != "CALL"

    return match


@pytest.mark.case("OCPP-RPC-001")
def test_csms_call_while_station_call_pending(rig, csms, evse, step):
    hold = rig.scaled(10)  # the CSMS sits on the station's Heartbeat this long
    csms.script.when("Heartbeat", times=1).default(delay=hold)
    mark = rig.trace.now()
    with step("the station sends a Heartbeat and the CSMS keeps it waiting"):
        assert csms.call(*commands.trigger(evse.version, "Heartbeat"))["status"] == "Accepted"
        heartbeat = csms.wait_for_message("Heartbeat", since=mark, timeout=rig.scaled(30) + 5)
    with step("meanwhile the CSMS calls the station, which answers"):
        csms.call(*commands.get_variable(evse.version, "OCPPCommCtrlr", "HeartbeatInterval", "HeartbeatInterval"),
                  timeout=hold * 4 + 5)
        ours = csms.messages(kind="CALLRESULT", since=heartbeat.mono)
        ours = [e for e in ours if e.src == "evse"]
    with step("and only then the CSMS answers the Heartbeat"):
        answer = rig.trace.wait_for(hold * 4 + 5, name="Heartbeat", observer="csms", src="csms", since=heartbeat.mono,
                                    where=lambda e: e.payload.get("type") == "CALLRESULT")
    assert ours and ours[0].seq < answer.seq, (
        "the station answered the CSMS's call only after its own Heartbeat was answered")


# Frames a DUT must answer with a CALLERROR without dropping the connection:
# (id, what is wrong, frame text or None for the payload-based cases)
MALFORMED = [
    ("not-json", Violation.NOT_JSON, "this is not JSON"),
    ("unknown-type", Violation.UNKNOWN_MESSAGE_TYPE, '[9,"rpc-type",{}]'),
    ("unknown-action", Violation.UNKNOWN_ACTION, '[2,"rpc-action","NoSuchAction",{}]'),
    ("missing-property", Violation.MISSING_PROPERTY, '[2,"rpc-missing","TriggerMessage",{}]'),
    ("wrong-type", Violation.WRONG_TYPE, '[2,"rpc-type2","TriggerMessage",{"requestedMessage":42}]'),
    ("bad-value", Violation.BAD_VALUE, '[2,"rpc-value","TriggerMessage",{"requestedMessage":"NoSuchMessage"}]'),
    ("extra-property", Violation.ADDITIONAL_PROPERTY,
     '[2,"rpc-extra","TriggerMessage",{"requestedMessage":"Heartbeat","notInTheSchema":1}]'),
]


@pytest.mark.case("OCPP-RPC-002")
@pytest.mark.parametrize("name, violation, frame", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_frame_answered(rig, csms, evse, step, name, violation, frame):
    mark = rig.trace.now()
    message = json.loads(frame)[1] if frame.startswith("[") else "-1"
    with step(f"send a frame with {violation.value}"):
        csms.send_raw(frame)
    v16 = evse.version.value == "1.6"
    if violation is Violation.UNKNOWN_MESSAGE_TYPE and v16:
        with step("OCPP-J 1.6 §4.1.3: a message with an unknown message type is ignored"):
            try:
                answer = rig.trace.wait_for(rig.scaled(30) + 2, observer="csms", src="evse", since=mark,
                                            where=_answer_to(message))
            except AssertionError:
                answer = None
            assert answer is None, f"the station answered {answer.summary}; OCPP-J 1.6 §4.1.3 says it shall " \
                                   f"ignore a message whose type number it does not know"
    else:
        with step("the station answers with a CALLERROR the specification allows"):
            try:
                answer = rig.trace.wait_for(rig.scaled(30) + 5, observer="csms", src="evse", since=mark,
                                            where=_answer_to(message))
            except AssertionError:
                if violation is Violation.NOT_JSON and v16:
                    pytest.skip("OCPP 1.6 does not say how to answer a frame whose messageId cannot be read")
                raise AssertionError(f"no answer with messageId {message!r} within {rig.scaled(30) + 5:g} s") \
                    from None
            assert "violation" not in answer.payload, (
                f"the station answered with an invalid {answer.payload.get('type', 'frame')}: "
                f"{answer.payload.get('detail')} (sent: {answer.payload.get('frame')})")
            assert answer.payload["type"] == "CALLERROR", f"answered {answer.payload['type']}, expected CALLERROR"
            code = answer.payload["error"]["code"]
            allowed = acceptable_codes(violation, evse.version)
            assert code in allowed, f"CALLERROR {code}, expected one of {sorted(allowed)}"
    with step("the connection stays up and the station keeps working"):
        assert csms.connected and not csms.messages("Disconnected", since=mark)
        probe = rig.trace.now()
        assert csms.call(*commands.trigger(evse.version, "Heartbeat"))["status"] == "Accepted"
        csms.wait_for_message("Heartbeat", since=probe, timeout=rig.scaled(30) + 5)


@pytest.mark.case("OCPP-RPC-003")
def test_callerror_from_csms_tolerated(rig, csms, evse, step):
    csms.script.when("StatusNotification", times=1).error("InternalError", "the CSMS failed on purpose")
    mark = rig.trace.now()
    with step("the CSMS answers a StatusNotification with CALLERROR InternalError"):
        assert csms.call(*commands.trigger(evse.version, "StatusNotification", evse_id=1))["status"] == "Accepted"
        csms.wait_for_message("StatusNotification", since=mark, timeout=rig.scaled(30) + 5)
    with step("the station stays connected and keeps answering"):
        probe = rig.trace.now()
        assert csms.call(*commands.trigger(evse.version, "Heartbeat"))["status"] == "Accepted"
        csms.wait_for_message("Heartbeat", since=probe, timeout=rig.scaled(30) + 5)
        assert not csms.messages("Disconnected", since=mark)


@pytest.mark.case("OCPP-RPC-004")
@pytest.mark.requires("remote_start", "ev", "basic_charging")
def test_unanswered_transaction_message_retried(rig, csms, evse, ev, step, kpi):
    action = "StartTransaction" if evse.version.value == "1.6" else "TransactionEvent"
    csms.script.when(action, times=1).silent()
    mark = rig.trace.now()
    with step(f"the CSMS does not answer the first {action}"):
        ev.plug_in()
        assert csms.call(*commands.remote_start(evse.version, "RPC004-TOKEN"))["status"] == "Accepted"
        first = csms.wait_for_message(action, since=mark, timeout=rig.scaled(60) + 5)
    with step("the station sends the same message again"):
        again = csms.wait_for_message(action, since=first.mono + 1e-6, timeout=rig.scaled(30 + 60 * 2) + 10)
        kpi("retry_after_s", again.mono - first.mono, "s")
        before, after = first.payload["payload"], again.payload["payload"]
        if action == "TransactionEvent":
            assert (after["seqNo"], after["eventType"]) == (before["seqNo"], before["eventType"]), (
                f"retried seqNo {after['seqNo']} {after['eventType']}, first was {before['seqNo']} {before['eventType']}")
            assert after["transactionInfo"]["transactionId"] == before["transactionInfo"]["transactionId"]
        else:
            assert after == before, "the repeated StartTransaction differs from the first"
