"""How the EVSE under test reacts when the EV breaks the rules (the EV side plays the tester).

A probe EV speaks exactly what each case needs -- requests out of order, foreign SessionIDs,
malformed V2GTP headers, broken EXI, protocols the EVSE does not know -- and the case checks
the reaction the standard prescribes, as seen from the EV side.
"""

from __future__ import annotations

import time

import pytest

from harness.v2g import faults
from harness.v2g.probe import code
from harness.v2g.timers import ISO2 as ISO2_TIMERS
from harness.v2g.v2gtp import PayloadType, encode

EVCCID = {"EVCCID": "0A1B2C3D4E5F"}
AC_PARAMETER = {"RequestedEnergyTransferMode": "AC_three_phase_core", "AC_EVChargeParameter": {
    "DepartureTime": 0, "EAmount": {"Multiplier": 0, "Unit": "Wh", "Value": 100},
    "EVMaxVoltage": {"Multiplier": 0, "Unit": "V", "Value": 400},
    "EVMaxCurrent": {"Multiplier": 0, "Unit": "A", "Value": 32},
    "EVMinCurrent": {"Multiplier": 0, "Unit": "A", "Value": 6}}}


def _body(message, name):
    root = message["V2G_Message"]["Body"] if "V2G_Message" in message else message
    return root[name]


@pytest.mark.case("V2G-SECC-001")
@pytest.mark.requires("ev", "iso15118")
def test_out_of_sequence_request_gets_failed_sequence_error(rig, evse, ev, step):
    with ev.hlc.probe() as probe:
        probe.handshake("iso2")
        assert code(probe.request("SessionSetupReq", EVCCID)) == "OK_NewSessionEstablished"
        with step("ChargeParameterDiscoveryReq right after SessionSetup"):
            answer = probe.request("ChargeParameterDiscoveryReq", AC_PARAMETER)
            assert answer is not None, "no answer to the out-of-sequence request"
            body = _body(answer, "ChargeParameterDiscoveryRes")  # the response belonging to the request
            assert body["ResponseCode"] == "FAILED_SequenceError"
        with step("the EVSE ends the session and closes the connection"):
            assert probe.closed_by_peer(rig.scaled(60) + 2.0)


@pytest.mark.case("V2G-SECC-002")
@pytest.mark.requires("ev", "iso15118")
def test_iso20_out_of_sequence_request_gets_failed_sequence_error(rig, evse, ev, step):
    with ev.hlc.probe(tls=True, generation="iso20") as probe:
        probe.handshake("iso20-dc")
        assert code(probe.request("SessionSetupReq", {"EVCCID": "WHARNESS000000001"})) == "OK_NewSessionEstablished"
        answer = probe.request("ServiceDiscoveryReq", {})
        assert answer is not None and code(answer) == "FAILED_SequenceError"
        assert "ServiceDiscoveryRes" in answer
        assert probe.closed_by_peer(rig.scaled(60) + 2.0)


@pytest.mark.case("V2G-SECC-003")
@pytest.mark.requires("ev", "iso15118")
def test_unknown_session_id_gets_failed_unknown_session(rig, evse, ev, step):
    with ev.hlc.probe() as probe:
        probe.handshake("iso2")
        probe.request("SessionSetupReq", EVCCID)
        answer = probe.request("ServiceDiscoveryReq", {}, session_id="0102030405060708")
        assert code(answer) == "FAILED_UnknownSession"
        assert probe.closed_by_peer(rig.scaled(60) + 2.0)


#: how far the EVSE may be off V2G_SECC_Sequence_Timeout, either way: a share of the timeout, plus
#: what a busy host or a charger's timer granularity adds
SEQUENCE_TOLERANCE = 0.1
SEQUENCE_SLACK_S = 0.3


@pytest.mark.case("V2G-SECC-004")
@pytest.mark.requires("ev", "iso15118")
def test_silent_ev_is_dropped_after_the_sequence_timeout(rig, evse, ev, step, kpi):
    # V2G_SECC_Sequence_Timeout (ISO 15118-2 Table 109: 60 s), as this rig runs it
    timeout = ev.hlc.timing.timeout(ISO2_TIMERS.sequence("SessionSetupRes"))
    early = timeout * (1 - SEQUENCE_TOLERANCE) - SEQUENCE_SLACK_S
    late = timeout * (1 + SEQUENCE_TOLERANCE) + SEQUENCE_SLACK_S
    with ev.hlc.probe() as probe:
        probe.handshake("iso2")
        probe.request("SessionSetupReq", EVCCID)
        started = time.monotonic()
        with step("the EV sends nothing after SessionSetupRes"):
            closed = probe.closed_by_peer(late + 1.0)
        waited = time.monotonic() - started
    kpi("sequence_timeout_s", waited, "s", f"time until the EVSE closed the connection (expected {timeout:g} s)")
    assert closed, f"the EVSE kept the connection open {late + 1.0:.2f} s, past V2G_SECC_Sequence_Timeout " \
                   f"({timeout:g} s on this rig)"
    assert early <= waited <= late, (
        f"the EVSE closed the connection after {waited:.2f} s; V2G_SECC_Sequence_Timeout is {timeout:g} s on this "
        f"rig, so between {early:.2f} and {late:.2f} s (±{SEQUENCE_TOLERANCE:.0%} + {SEQUENCE_SLACK_S:g} s)")


@pytest.mark.case("V2G-SECC-005")
@pytest.mark.requires("ev", "iso15118")
@pytest.mark.parametrize("version, inverse", [(0x02, 0xFD), (0x01, 0x01)], ids=["version-2", "bad-inverse"])
def test_wrong_v2gtp_version_is_not_answered(rig, evse, ev, step, version, inverse):
    with ev.hlc.probe() as probe:
        probe.handshake("iso2")
        frame = encode(PayloadType.EXI, bytes.fromhex("809802000000000000000011D0184B88F8434D2000"),
                       version=version, inverse=inverse)
        probe.send_raw(frame, f"SessionSetupReq with V2GTP version 0x{version:02X}/0x{inverse:02X}")
        assert probe.response(1.0) is None, "the EVSE answered a message with a wrong V2GTP version"


@pytest.mark.case("V2G-SECC-006")
@pytest.mark.requires("ev", "iso15118")
def test_unknown_payload_type_is_ignored(rig, evse, ev, step):
    with ev.hlc.probe() as probe:
        probe.handshake("iso2")
        probe.send_raw(encode(0xA001, b"\x80\x00"), "a manufacturer-specific payload type 0xA001")
        with step("the session goes on as if nothing had come"):
            assert code(probe.request("SessionSetupReq", EVCCID)) == "OK_NewSessionEstablished"


@pytest.mark.case("V2G-SECC-007")
@pytest.mark.requires("ev", "iso15118")
def test_undecodable_exi_ends_the_connection(rig, evse, ev, step):
    with ev.hlc.probe() as probe:
        probe.handshake("iso2")
        probe.request("SessionSetupReq", EVCCID)
        probe.send_exi(bytes.fromhex("80FFFFFFFFFFFF"), what="EXI that decodes to nothing")
        assert probe.response(1.0) is None
        assert probe.closed_by_peer(rig.scaled(60) + 2.0)


@pytest.mark.case("V2G-SECC-008")
@pytest.mark.requires("ev", "iso15118")
def test_no_common_protocol_fails_the_handshake(rig, evse, ev, step):
    with ev.hlc.probe() as probe:
        from harness import exi

        request = {"supportedAppProtocolReq": {"AppProtocol": [
            {"ProtocolNamespace": "urn:example:not-a-v2g-protocol", "VersionNumberMajor": 9,
             "VersionNumberMinor": 0, "SchemaID": 1, "Priority": 1}]}}
        probe.send_exi(exi.encode(request, "sap"), what="supportedAppProtocolReq for an unknown protocol")
        answer = probe.response(5.0)
        assert answer == {"supportedAppProtocolRes": {"ResponseCode": "Failed_NoNegotiation"}}
        assert probe.closed_by_peer(rig.scaled(60) + 2.0)


@pytest.mark.case("V2G-SECC-009")
@pytest.mark.requires("ev", "iso15118")
def test_failed_responses_carry_the_mandatory_parameters_only(rig, evse, ev, step):
    with ev.hlc.probe() as probe:
        probe.handshake("iso2")
        probe.request("SessionSetupReq", EVCCID)
        answer = probe.request("PowerDeliveryReq", {"ChargeProgress": "Start", "SAScheduleTupleID": 1})
        body = _body(answer, "PowerDeliveryRes")
        assert body["ResponseCode"] == "FAILED_SequenceError"
        assert set(body) <= {"ResponseCode", "AC_EVSEStatus", "DC_EVSEStatus", "EVSEStatus"}


@pytest.mark.case("V2G-SECC-010")
@pytest.mark.requires("ev", "iso15118", "plug_and_charge")
def test_tampered_signature_gets_failed_signature_error(rig, evse, ev, step):
    forged = "A" * 86 + "=="
    result = ev.charge(protocol="iso20-dc", energy="DC", identification="PnC", cycles=1, faults=[
        faults.replace("AuthorizationReq", "Header.Signature.SignatureValue", {"value": forged})])
    assert not result.ok
    assert result.response_codes().get("AuthorizationRes") == "FAILED_SignatureError"


@pytest.mark.case("V2G-SECC-011")
@pytest.mark.requires("ev", "iso15118")
def test_iso20_is_not_chosen_without_tls(rig, evse, ev, step):
    with ev.hlc.probe(tls=False) as probe:
        answer = probe.handshake("iso20-ac")
        assert answer.get("supportedAppProtocolRes", {}).get("ResponseCode") == "Failed_NoNegotiation"


@pytest.mark.case("V2G-SECC-012")
@pytest.mark.requires("ev", "iso15118")
@pytest.mark.parametrize("tls", [False, True], ids=["tcp", "tls"])
def test_sdp_names_the_secc_and_the_security_asked_for(rig, evse, ev, step, tls):
    with ev.hlc.probe(tls=tls) as probe:
        answer = probe.handshake("iso2")
        assert answer["supportedAppProtocolRes"]["ResponseCode"].startswith("OK")
    response = rig.trace.last(layer="sdp", name="SdpResponse", observer="ev")
    assert response is not None and response.payload["tls"] is tls
