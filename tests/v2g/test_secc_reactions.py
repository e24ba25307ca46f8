"""How the reference SECC reacts to an EV that breaks the rules (a probe plays the EV)."""

from __future__ import annotations

from harness.v2g.probe import V2gProbe, code
from harness.v2g.timers import Timing
from harness.v2g.v2gtp import PayloadType, encode
from tests.v2g.pair import start_pair

EVCCID = {"EVCCID": "0A1B2C3D4E5F"}


def _with_probe(run, script, **pair_options):
    async def scenario():
        pair = await start_pair(**pair_options)
        probe = await V2gProbe.open(pair.recorder, "::1", pair.secc.tcp_port)
        try:
            return await script(probe), pair
        finally:
            await probe.close()
            await pair.close()

    return run(scenario())


def test_a_request_out_of_sequence_gets_failed_sequence_error_and_the_connection_closes(run):
    async def script(probe):
        await probe.handshake("iso2")
        await probe.request("SessionSetupReq", EVCCID)
        answer = await probe.request("ChargeParameterDiscoveryReq", {
            "RequestedEnergyTransferMode": "AC_three_phase_core", "AC_EVChargeParameter": {
                "DepartureTime": 0, "EAmount": {"Multiplier": 0, "Unit": "Wh", "Value": 100},
                "EVMaxVoltage": {"Multiplier": 0, "Unit": "V", "Value": 400},
                "EVMaxCurrent": {"Multiplier": 0, "Unit": "A", "Value": 32},
                "EVMinCurrent": {"Multiplier": 0, "Unit": "A", "Value": 6}}})
        return answer, await probe.closed_by_peer(2.0)

    (answer, closed), pair = _with_probe(run, script)
    assert "ChargeParameterDiscoveryRes" in answer["V2G_Message"]["Body"]  # the response to that request
    assert code(answer) == "FAILED_SequenceError"
    assert closed
    assert pair.recorder.first(name="SequenceError", observer="evse") is not None


def test_an_unknown_session_id_gets_failed_unknown_session(run):
    async def script(probe):
        await probe.handshake("iso2")
        await probe.request("SessionSetupReq", EVCCID)
        answer = await probe.request("ServiceDiscoveryReq", {}, session_id="DEADBEEFDEADBEEF")
        return answer, await probe.closed_by_peer(2.0)

    (answer, closed), _ = _with_probe(run, script)
    assert code(answer) == "FAILED_UnknownSession" and closed


def test_a_wrong_v2gtp_version_closes_the_connection_unanswered(run):
    async def script(probe):
        await probe.handshake("iso2")
        frame = encode(PayloadType.EXI, bytes.fromhex("809802000000000000000011D0"), version=0x02, inverse=0xFD)
        await probe.send_raw(frame, "a V2GTP header with version 0x02")
        return await probe.response(1.0), await probe.closed_by_peer(2.0)

    (answer, closed), pair = _with_probe(run, script)
    assert answer is None and closed
    rejected = pair.recorder.first(name="V2gtpHeaderRejected", observer="evse")
    assert rejected is not None and rejected.payload["closed"]


def test_an_unsupported_payload_type_is_ignored_and_the_session_goes_on(run):
    async def script(probe):
        await probe.handshake("iso2")
        await probe.send_raw(encode(0x8105, b"\x80\x00"), "payload type 0x8105")
        return await probe.request("SessionSetupReq", EVCCID)

    answer, pair = _with_probe(run, script)
    assert code(answer) == "OK_NewSessionEstablished"
    assert pair.recorder.first(name="V2gtpHeaderRejected", observer="evse").payload["closed"] is False


def test_undecodable_exi_closes_the_connection(run):
    async def script(probe):
        await probe.handshake("iso2")
        await probe.send_exi(bytes.fromhex("80FFFFFFFF"), what="garbage EXI")
        return await probe.closed_by_peer(2.0)

    closed, pair = _with_probe(run, script)
    assert closed
    assert pair.recorder.first(name="UndecodableMessage", observer="evse") is not None


def test_no_common_protocol_fails_the_negotiation_and_closes(run):
    async def script(probe):
        answer = await probe.handshake("din")
        return answer, await probe.closed_by_peer(2.0)

    from harness.v2g.equipment import EvseCapabilities

    (answer, closed), _ = _with_probe(run, script, capabilities=EvseCapabilities(protocols=("iso2",)))
    assert answer == {"supportedAppProtocolRes": {"ResponseCode": "Failed_NoNegotiation"}} and closed


def test_a_silent_ev_is_dropped_after_the_sequence_timeout(run):
    timing = Timing(scale=0.01, min_timeout=0.2)  # V2G_SECC_Sequence_Timeout 60 s -> 0.6 s

    async def script(probe):
        await probe.handshake("iso2")
        await probe.request("SessionSetupReq", EVCCID)
        return await probe.closed_by_peer(5.0)

    closed, pair = _with_probe(run, script, timing=timing)
    assert closed
    assert pair.recorder.first(name="SequenceTimeout", observer="evse") is not None
    assert "V2G_SECC_Sequence_Timeout" in pair.secc.outcomes[-1].reason


def test_plug_and_charge_is_not_offered_without_tls(run):
    async def script(probe):
        await probe.handshake("iso2")
        await probe.request("SessionSetupReq", EVCCID)
        return await probe.request("ServiceDiscoveryReq", {})

    answer, _ = _with_probe(run, script)
    body = answer["V2G_Message"]["Body"]["ServiceDiscoveryRes"]
    assert body["PaymentOptionList"]["PaymentOption"] == ["ExternalPayment"]


def test_a_request_type_the_protocol_has_but_the_secc_does_not_serve_is_refused(run):
    """DIN 70121's schema has ChargingStatusReq (AC), which a DC-only DIN SECC never expects."""

    async def script(probe):
        await probe.handshake("din")
        await probe.request("SessionSetupReq", {"EVCCID": "0A1B2C3D4E5F"})
        answer = await probe.request("ChargingStatusReq", {})
        return answer, await probe.closed_by_peer(2.0)

    (answer, closed), pair = _with_probe(run, script)
    assert closed
    assert answer is None or code(answer) == "FAILED_SequenceError"
    assert pair.recorder.select(layer="fault", name="SeccError") == []


def test_hostile_payloads_never_break_the_secc():
    """Whatever bytes follow the handshake, the sans-IO SECC answers or closes; it never raises."""
    import random

    from harness import exi
    from harness.emulators.charge_port import ChargePort
    from harness.v2g import sap
    from harness.v2g.equipment import EvseCapabilities
    from harness.v2g.machine import Close
    from harness.v2g.session import SeccSession

    chooser = random.Random(15118)
    for trial in range(300):
        family = chooser.choice(["din", "iso2", "iso20-dc"])
        session = SeccSession(ChargePort(EvseCapabilities()), supported=[sap.protocol(family)], tls="TLSv1.3")
        session.receive(0x8001, exi.encode(sap.request(sap.offer([family])), "sap"), 0.0)
        payload_type = 0x8001 if family != "iso20-dc" else chooser.choice([0x8002, 0x8004])
        garbage = bytes([0x80]) + bytes(chooser.randrange(256) for _ in range(chooser.randrange(0, 60)))
        events = session.receive(payload_type, garbage, 0.0)
        assert session.finished or any(isinstance(e, Close) for e in events) or events, trial


def test_a_handshake_the_decoder_lets_through_but_the_schema_forbids_fails_the_negotiation(run):
    """A supportedAppProtocolReq with an empty Priority (EXI's non-strict grammar carries it;
    the schema requires an unsignedByte 1..20): Failed_NoNegotiation and the connection closed,
    with the reason on the timeline; the SECC's rules never see the null."""
    from harness import exi

    request = {"supportedAppProtocolReq": {"AppProtocol": [{
        "ProtocolNamespace": "urn:iso:15118:2:2013:MsgDef", "VersionNumberMajor": 2, "VersionNumberMinor": 0,
        "SchemaID": 1, "Priority": None}]}}

    async def script(probe):
        await probe.send_exi(exi.encode_unchecked(request, "sap"), what="a handshake with an empty Priority")
        return await probe.response(2.0), await probe.closed_by_peer(2.0)

    (answer, closed), pair = _with_probe(run, script)
    assert answer == {"supportedAppProtocolRes": {"ResponseCode": "Failed_NoNegotiation"}} and closed
    failed = pair.recorder.first(name="NegotiationFailed", observer="evse")
    assert "Priority: missing value" in failed.summary, failed.summary


def test_a_request_that_breaks_its_schema_gets_failed_and_the_connection_closes(run):
    """The siblings: any request whose values the decoder lets through but the schema forbids
    (here a SessionSetupReq EVCCID of 8 bytes where -2 allows 6) is refused with FAILED before the
    session's rules see it."""
    from harness import exi
    from harness.v2g import messages

    async def script(probe):
        await probe.handshake("iso2")
        message = messages.wrap("iso2", "SessionSetupReq", {"EVCCID": "0A1B2C3D4E5F6071"}, "00")
        await probe.send_exi(exi.encode_unchecked(message, "iso2"), what="an EVCCID of 8 bytes")
        return await probe.response(2.0), await probe.closed_by_peer(2.0)

    (answer, closed), pair = _with_probe(run, script)
    assert answer is not None and code(answer) == "FAILED" and closed
    refusal = pair.recorder.first(name="FAILED", observer="evse")
    assert "SessionSetupReq breaks the iso2 schema" in refusal.summary and "EVCCID" in refusal.summary


def test_an_ev_trickling_bytes_is_still_dropped_after_the_sequence_timeout(run):
    """V2G_SECC_Sequence_Timeout runs from the last complete message: one byte every 0.2 s of a
    request that never completes does not keep the connection open (0.6 s at this scale)."""
    import time

    from harness import exi
    from harness.v2g import messages

    timing = Timing(scale=0.01, min_timeout=0.2)  # V2G_SECC_Sequence_Timeout 60 s -> 0.6 s

    async def script(probe):
        await probe.handshake("iso2")
        await probe.request("SessionSetupReq", EVCCID)
        request = encode(PayloadType.EXI, exi.encode(messages.wrap("iso2", "ServiceDiscoveryReq", {},
                                                                   probe.view.session_id), "iso2"))
        started = time.monotonic()
        for byte in request[:-1]:  # never the last byte
            try:
                await probe.send_raw(bytes((byte,)), "one byte")
            except Exception:  # the SECC closed the connection: what the test waits for
                break
            if await probe.closed_by_peer(0.2):
                break
        return time.monotonic() - started

    _, pair = _with_probe(run, script, timing=timing)
    # the trickle lasts about 4 s; before the fix every byte restarted the timer and it never fired
    assert pair.recorder.first(name="SequenceTimeout", observer="evse") is not None
