"""OCPP-J frames: parsing, the CALLERROR table, schema validation, default CSMS answers."""

from __future__ import annotations

import asyncio
import json

import pytest

from harness.ocpp import frames
from harness.ocpp.behaviour import CsmsBehaviour
from harness.ocpp.endpoint import IncomingCall
from harness.ocpp.frames import ERROR_CODES, FrameError, Violation, acceptable_codes
from harness.ocpp.versions import STATION_ACTIONS, OcppVersion, negotiate

V16, V201, V21 = OcppVersion.V16, OcppVersion.V201, OcppVersion.V21


@pytest.mark.parametrize("text, violation, message_id", [
    ("not json", Violation.NOT_JSON, "-1"),
    (b"\xff\xfe", Violation.NOT_JSON, "-1"),
    ("{}", Violation.NOT_RPC, "-1"),
    ("[]", Violation.NOT_RPC, "-1"),
    ("[2]", Violation.NOT_RPC, "-1"),
    ('[2, 17, "Heartbeat", {}]', Violation.NOT_RPC, "-1"),
    ('[2, "' + "x" * 37 + '", "Heartbeat", {}]', Violation.NOT_RPC, "-1"),
    ('[2, "a", "Heartbeat"]', Violation.NOT_RPC, "a"),
    ('[2, "a", 5, {}]', Violation.NOT_RPC, "a"),
    ('[2, "a", "Heartbeat", []]', Violation.PAYLOAD_NOT_OBJECT, "a"),
    ('[8, "a", {}]', Violation.UNKNOWN_MESSAGE_TYPE, "a"),
    ('[true, "a", {}]', Violation.UNKNOWN_MESSAGE_TYPE, "a"),
    ('[2, "a", "B", {"n": ' + "9" * 5000 + "}]", Violation.NOT_JSON, "-1"),
    ("[" * 100000, Violation.NOT_JSON, "-1"),
])
def test_malformed_frames_name_their_violation(text, violation, message_id):
    with pytest.raises(FrameError) as caught:
        frames.parse(text, V201)
    assert caught.value.violation is violation
    assert caught.value.message_id == message_id


def test_2_1_knows_send_and_callresulterror_but_2_0_1_does_not():
    send = '[6, "s1", "NotifyPeriodicEventStream", {}]'
    assert isinstance(frames.parse(send, V21), frames.Send)
    with pytest.raises(FrameError) as caught:
        frames.parse(send, V201)
    assert caught.value.error_code(V201) == "MessageTypeNotSupported"
    assert caught.value.error_code(V16) == "FormationViolation"
    assert isinstance(frames.parse('[5, "r", "FormatViolation", "x", {}]', V21), frames.CallResultError)


def test_every_violation_has_a_code_in_every_version():
    for violation in Violation:
        for version in OcppVersion:
            assert ERROR_CODES[violation][version]
            assert ERROR_CODES[violation][version] in acceptable_codes(violation, version)


@pytest.mark.parametrize("version, payload, violation, code", [
    (V201, {}, Violation.MISSING_PROPERTY, "OccurrenceConstraintViolation"),
    (V16, {}, Violation.MISSING_PROPERTY, "ProtocolError"),
    (V201, {"requestedMessage": 4}, Violation.WRONG_TYPE, "TypeConstraintViolation"),
    (V201, {"requestedMessage": "Nope"}, Violation.BAD_VALUE, "PropertyConstraintViolation"),
    (V201, {"requestedMessage": "Heartbeat", "x": 1}, Violation.ADDITIONAL_PROPERTY, "FormatViolation"),
    (V16, {"requestedMessage": "Heartbeat", "x": 1}, Violation.ADDITIONAL_PROPERTY, "FormationViolation"),
])
def test_schema_violations_map_to_codes(version, payload, violation, code):
    with pytest.raises(FrameError) as caught:
        frames.validate("TriggerMessage", payload, version, request=True, message_id="m")
    assert caught.value.violation is violation
    assert caught.value.error_code(version) == code
    assert caught.value.call_error(version).message_id == "m"


def test_1_6_decimals_pass_multiple_of_checks():
    profile = {"connectorId": 1, "csChargingProfiles": {
        "chargingProfileId": 1, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Relative",
        "chargingSchedule": {"chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 21.4}]}}}
    frames.validate("SetChargingProfile", profile, V16, request=True)


def test_serialize_round_trip():
    call = frames.Call("id-1", "Heartbeat", {})
    assert json.loads(frames.serialize(call)) == [2, "id-1", "Heartbeat", {}]
    assert frames.parse(frames.serialize(call), V201) == call
    long_error = frames.CallError("x", "GenericError", "d" * 400, {})
    assert len(json.loads(frames.serialize(long_error))[3]) == 255  # errorDescription is at most 255


def test_negotiation_prefers_the_servers_order():
    supported = [V201, V21, V16]
    assert negotiate(["ocpp1.6", "ocpp2.0.1"], supported) is V201
    assert negotiate(["ocpp1.6"], supported) is V16
    assert negotiate(["ocpp1.5", "chat"], supported) is None
    assert negotiate([], supported) is None


class _FakeEndpoint:
    def __init__(self, version):
        self.version = version
        self.station_id = "CS1"
        self.notes = []

    def note(self, name, summary, **fields):
        self.notes.append(name)


SAMPLE_REQUESTS = {
    "Authorize": {V16: {"idTag": "T"}, None: {"idToken": {"idToken": "T", "type": "eMAID"},
                                              "certificate": "-----BEGIN CERTIFICATE-----"}},
    "GetCertificateStatus": {None: {"ocspRequestData": {"hashAlgorithm": "SHA256", "issuerNameHash": "00",
                                                        "issuerKeyHash": "00", "serialNumber": "1",
                                                        "responderURL": "http://127.0.0.1:1/ocsp"}}},
    "DataTransfer": {V16: {"vendorId": "org.openchargealliance.iso15118pnc", "messageId": "Authorize",
                           "data": json.dumps({"idToken": "T", "iso15118CertificateHashData": []})}},
    "StartTransaction": {V16: {"connectorId": 1, "idTag": "T", "meterStart": 0, "timestamp": "2026-01-01T00:00:00Z"}},
    "StopTransaction": {V16: {"transactionId": 1, "meterStop": 10, "timestamp": "2026-01-01T00:00:00Z",
                              "idTag": "T"}},
    "TransactionEvent": {None: {"eventType": "Started", "timestamp": "2026-01-01T00:00:00Z",
                                "triggerReason": "Authorized", "seqNo": 0,
                                "transactionInfo": {"transactionId": "t"},
                                "idToken": {"idToken": "T", "type": "ISO14443"}}},
    "PullDynamicScheduleUpdate": {None: {"chargingProfileId": 7}},
}


@pytest.mark.parametrize("version", list(OcppVersion), ids=str)
def test_default_answers_satisfy_the_response_schemas(version):
    behaviour = CsmsBehaviour(id_tokens={"T": "Blocked"})
    behaviour.publish_dynamic_schedule(7, {"setpoint": -4000.0, "dischargeLimit": -4000.0})
    answered = 0
    for action in sorted(STATION_ACTIONS[version]):
        if action not in CsmsBehaviour.routes or frames._schema(version, action, request=False) is None:
            continue  # not answered by default, or a 2.1 SEND that nobody answers
        samples = SAMPLE_REQUESTS.get(action, {})
        request = samples.get(version, samples.get(None, {}))
        handler = behaviour.handler(action, version)
        assert handler is not None
        response = asyncio.run(handler(IncomingCall(_FakeEndpoint(version), "m", action, request))).payload
        frames.validate(action, response, version, request=False)
        answered += 1
    assert answered >= 10


def test_a_data_transfer_nested_deeper_than_the_parser_goes_is_rejected():
    behaviour = CsmsBehaviour()
    handler = behaviour.handler("DataTransfer", V16)
    assert handler is not None
    request = {"vendorId": "org.openchargealliance.iso15118pnc", "messageId": "Authorize",
               "data": "[" * 100_000 + "]" * 100_000}
    answer = asyncio.run(handler(IncomingCall(_FakeEndpoint(V16), "m", "DataTransfer", request))).payload
    assert answer == {"status": "Rejected"}
