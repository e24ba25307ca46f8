"""The mock CSMS against real WebSocket clients over real TCP and TLS."""

from __future__ import annotations

import asyncio
import json
import random
import ssl

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidMessage, InvalidStatus

from harness.ocpp.csms import MockCsms
from harness.ocpp.endpoint import ConnectionLost
from harness.ocpp.frames import ERROR_CODES, Violation
from harness.ocpp.security import SecurityPolicy, basic_auth_header
from harness.ocpp.versions import OcppVersion
from harness.pki.ocpp import STATION_FAULTS, generate_ocpp_pki
from harness.pki.tls import ocpp_client_context
from harness.trace import Recorder
from tests.hostile import silent_connections

PASSWORD = "station-password-0001"
BOOT = {"reason": "PowerUp", "chargingStation": {"model": "M", "vendorName": "V"}}


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return generate_ocpp_pki(tmp_path_factory.mktemp("pki"), station_ids=["CS1"])


def _auth(station="CS1", password=PASSWORD):
    return {"Authorization": basic_auth_header(station, password)}


async def _call(ws, message_id, action, payload):
    await ws.send(json.dumps([2, message_id, action, payload]))
    return json.loads(await asyncio.wait_for(ws.recv(), 5))


def _names(recorder):
    return [e.name for e in recorder]


def test_subprotocol_negotiation(run):
    async def scenario():
        recorder = Recorder()
        csms = MockCsms(recorder, versions=[OcppVersion.V201, OcppVersion.V16])
        await csms.start()
        try:
            async with connect(csms.url("CS1"), subprotocols=["ocpp1.6", "ocpp2.0.1"], additional_headers=_auth()) as ws:
                assert ws.subprotocol == "ocpp2.0.1"  # the CSMS's preference wins
            async with connect(csms.url("CS1"), subprotocols=["ocpp1.6"], additional_headers=_auth()) as ws:
                assert ws.subprotocol == "ocpp1.6"
            with pytest.raises(InvalidStatus) as refused:
                async with connect(csms.url("CS1"), subprotocols=["ocpp2.1"], additional_headers=_auth()):
                    pass
            assert refused.value.response.status_code == 400
            with pytest.raises(InvalidStatus):
                async with connect(csms.url("CS1"), additional_headers=_auth()):
                    pass
        finally:
            await csms.stop()
        refusals = recorder.select(name="ConnectionRefused")
        assert len(refusals) == 2 and all(e.payload["status"] == 400 for e in refusals)

    run(scenario())


@pytest.mark.parametrize("headers, reason", [
    ({}, "missing or malformed"),
    ({"Authorization": "Bearer abc"}, "missing or malformed"),
    ({"Authorization": "Basic !!!"}, "missing or malformed"),
    (_auth(password="wrong-password-000"), "wrong password"),
    (_auth(station="OTHER"), "is not the station id"),
])
def test_profile_1_refuses_bad_credentials(run, headers, reason):
    async def scenario():
        recorder = Recorder()
        csms = MockCsms(recorder, security=SecurityPolicy(profile=1, credentials={"CS1": PASSWORD}))
        await csms.start()
        try:
            with pytest.raises(InvalidStatus) as refused:
                async with connect(csms.url("CS1"), subprotocols=["ocpp2.0.1"], additional_headers=headers):
                    pass
            assert refused.value.response.status_code == 401
            assert refused.value.response.headers.get("WWW-Authenticate", "").startswith("Basic")
            async with connect(csms.url("CS1"), subprotocols=["ocpp2.0.1"], additional_headers=_auth()) as ws:
                assert (await _call(ws, "1", "BootNotification", BOOT))[2]["status"] == "Accepted"
        finally:
            await csms.stop()
        refusal = recorder.first(name="ConnectionRefused")
        assert reason in refusal.payload["reason"]

    run(scenario())


def test_auto_commissioning_is_recorded(run):
    async def scenario():
        recorder = Recorder()
        csms = MockCsms(recorder)  # no credentials configured
        await csms.start()
        try:
            async with connect(csms.url("ANY-STATION"), subprotocols=["ocpp2.0.1"],
                               additional_headers=_auth("ANY-STATION", "whatever-password")):
                pass
        finally:
            await csms.stop()
        assert "auto-commissioned" in recorder.first(name="Connected").payload["notes"][0]

    run(scenario())


def test_profile_2_tls_and_refusals(run, pki):
    async def scenario():
        recorder = Recorder()
        policy = SecurityPolicy(profile=2, credentials={"CS1": PASSWORD}, server=pki.csms_server)
        csms = MockCsms(recorder, security=policy)
        await csms.start()
        try:
            async with connect(csms.url("CS1"), subprotocols=["ocpp2.0.1"], additional_headers=_auth(),
                               ssl=ocpp_client_context(pki.csms_root)) as ws:
                assert (await _call(ws, "1", "Heartbeat", {}))[0] == 3
            old = ocpp_client_context(pki.csms_root, minimum=ssl.TLSVersion.TLSv1_1, maximum=ssl.TLSVersion.TLSv1_1)
            with pytest.raises((ssl.SSLError, ConnectionError)):  # the server aborts the handshake
                async with connect(csms.url("CS1"), subprotocols=["ocpp2.0.1"], additional_headers=_auth(), ssl=old):
                    pass
            with pytest.raises(InvalidStatus):
                async with connect(csms.url("CS1"), subprotocols=["ocpp2.0.1"], ssl=ocpp_client_context(pki.csms_root),
                                   additional_headers=_auth(password="wrong-password-000")):
                    pass
            await asyncio.sleep(0.1)
        finally:
            await csms.stop()
        connected = recorder.first(name="Connected")
        assert connected.payload["tls"]["version"] in ("TLSv1.2", "TLSv1.3")
        failure = recorder.first(name="TlsHandshakeFailed")
        assert failure is not None and "PROTOCOL" in failure.payload["reason"]
        assert recorder.first(name="TlsNotEstablished") is not None
        assert recorder.first(name="ConnectionRefused").payload["status"] == 401

    run(scenario())


def test_profile_3_client_certificates(run, pki):
    async def scenario():
        recorder = Recorder()
        policy = SecurityPolicy(profile=3, server=pki.csms_server, client_ca=pki.csms_root)
        csms = MockCsms(recorder, security=policy)
        await csms.start()
        try:
            async with connect(csms.url("CS1"), subprotocols=["ocpp2.0.1"],
                               ssl=_client_context(pki, pki.stations["CS1"])) as ws:
                assert (await _call(ws, "1", "Heartbeat", {}))[0] == 3
            with pytest.raises((ssl.SSLError, ConnectionError, ConnectionClosed, EOFError, InvalidMessage)):
                async with connect(csms.url("CS1"), subprotocols=["ocpp2.0.1"], ssl=_client_context(pki, None)) as ws:
                    await ws.recv()  # no certificate at all
            await asyncio.sleep(0.1)
        finally:
            await csms.stop()
        assert recorder.first(name="Connected").payload["tls"]["client_certificate"]
        assert len(recorder.select(name="TlsNotEstablished")) == 1

    run(scenario())


def _client_context(pki, files):
    """A station's TLS context from Python's ssl module alone, presenting ``files`` (None: no
    certificate)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(pki.csms_root)
    if files is not None:
        context.load_cert_chain(files.chain, files.key)
    return context


@pytest.mark.parametrize("fault", list(STATION_FAULTS))
def test_profile_3_refuses_a_faulty_station_certificate(run, pki, fault):
    """OCPP 2.0.1 A00 client authentication, with the client built from Python's ssl and the
    websockets library only: a certificate the CSMS must not accept ends the attempt, in the TLS
    handshake (the chain) or with HTTP 401 (a good chain for another station), and the CSMS says
    which on its timeline."""
    async def scenario():
        recorder = Recorder()
        policy = SecurityPolicy(profile=3, server=pki.csms_server, client_ca=pki.csms_root)
        csms = MockCsms(recorder, security=policy)
        await csms.start()
        try:
            # TLS 1.3 checks the client certificate after the client thinks the handshake is done,
            # so a refusal in TLS may surface as a failed HTTP upgrade
            with pytest.raises((InvalidStatus, ssl.SSLError, ConnectionError, ConnectionClosed, EOFError,
                                InvalidMessage)) as refused:
                async with connect(csms.url("CS1"), subprotocols=["ocpp2.0.1"], open_timeout=5,
                                   ssl=_client_context(pki, pki.faulty_stations["CS1"][fault])) as ws:
                    await asyncio.wait_for(ws.recv(), 5)
            await asyncio.sleep(0.1)
        finally:
            await csms.stop()
        assert recorder.first(name="Connected") is None, f"a station certificate {STATION_FAULTS[fault]} got in"
        if fault == "other-station":
            assert isinstance(refused.value, InvalidStatus) and refused.value.response.status_code == 401
            assert "CN" in recorder.first(name="ConnectionRefused").payload["reason"]
        else:
            failed = recorder.first(name="TlsHandshakeFailed")
            assert failed is not None and recorder.first(name="TlsNotEstablished") is not None
            # what OpenSSL on the CSMS's side named as the defect (its X509 verify error strings)
            expected = {"untrusted-root": "unable to get local issuer certificate",
                        "expired": "certificate has expired", "not-yet-valid": "certificate is not yet valid",
                        "bad-signature": "certificate signature failure",
                        "server-only": "unsuitable certificate purpose"}[fault]
            assert expected in failed.payload["error"], failed.payload

    run(scenario())


def test_scripted_answers(run):
    async def scenario():
        recorder = Recorder()
        csms = MockCsms(recorder)
        await csms.start()
        script = csms.script
        try:
            async with connect(csms.url("CS1"), subprotocols=["ocpp2.0.1"], additional_headers=_auth()) as ws:
                script.when("BootNotification", times=1).reject()
                assert (await _call(ws, "1", "BootNotification", BOOT))[2]["status"] == "Rejected"
                assert (await _call(ws, "2", "BootNotification", BOOT))[2]["status"] == "Accepted"  # rule retired
                script.when("Authorize", where=lambda p: p["idToken"]["idToken"] == "BAD").reject()
                token = {"idToken": {"idToken": "BAD", "type": "ISO14443"}}
                assert (await _call(ws, "3", "Authorize", token))[2]["idTokenInfo"]["status"] == "Invalid"
                token["idToken"]["idToken"] = "GOOD"
                assert (await _call(ws, "4", "Authorize", token))[2]["idTokenInfo"]["status"] == "Accepted"
                script.when("Heartbeat").reply({"currentTime": "not-a-time-on-purpose"})
                assert (await _call(ws, "5", "Heartbeat", {}))[2] == {"currentTime": "not-a-time-on-purpose"}
                script.when("Heartbeat").error("InternalError", "boom")
                assert (await _call(ws, "6", "Heartbeat", {}))[2:4] == ["InternalError", "boom"]
                script.when("Heartbeat", times=1).default(delay=0.3)
                started = asyncio.get_running_loop().time()
                await _call(ws, "7", "Heartbeat", {})
                assert asyncio.get_running_loop().time() - started >= 0.3
                script.when("StatusNotification").silent()
                await ws.send(json.dumps([2, "8", "StatusNotification", {
                    "timestamp": "2026-01-01T00:00:00Z", "connectorStatus": "Available", "evseId": 1, "connectorId": 1}]))
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(ws.recv(), 0.3)
                script.when("MeterValues").drop()
                await ws.send(json.dumps([2, "9", "MeterValues", {
                    "evseId": 1, "meterValue": [{"timestamp": "2026-01-01T00:00:00Z",
                                                 "sampledValue": [{"value": 1.0}]}]}]))
                with pytest.raises(ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), 5)
        finally:
            await csms.stop()
        assert recorder.first(name="Disconnect") is not None

    run(scenario())


def test_csms_call_while_the_stations_call_is_in_flight(run):
    """Both directions at once: the CSMS's own call completes while it still owes the station
    an answer, and the receive loop keeps running meanwhile."""

    async def scenario():
        recorder = Recorder()
        csms = MockCsms(recorder)
        await csms.start()
        csms.script.when("Heartbeat").default(delay=0.5)
        try:
            async with connect(csms.url("CS1"), subprotocols=["ocpp2.0.1"], additional_headers=_auth()) as ws:
                await ws.send(json.dumps([2, "hb", "Heartbeat", {}]))
                await asyncio.sleep(0.05)  # the CSMS now holds the Heartbeat
                ours = asyncio.ensure_future(csms.call("CS1", "GetVariables", {"getVariableData": [
                    {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}]}, timeout=5))
                incoming = json.loads(await asyncio.wait_for(ws.recv(), 5))
                assert incoming[0] == 2 and incoming[2] == "GetVariables"
                await ws.send(json.dumps([3, incoming[1], {"getVariableResult": [{
                    "attributeStatus": "Accepted", "attributeValue": "300",
                    "component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}]}]))
                result = await asyncio.wait_for(ours, 5)
                assert result["getVariableResult"][0]["attributeValue"] == "300"
                heartbeat_answer = json.loads(await asyncio.wait_for(ws.recv(), 5))
                assert heartbeat_answer[:2] == [3, "hb"]
        finally:
            await csms.stop()
        order = [(e.name, e.payload["type"]) for e in recorder.select(layer="ocpp")
                 if isinstance(e.payload, dict) and "type" in e.payload]
        assert order == [("Heartbeat", "CALL"), ("GetVariables", "CALL"), ("GetVariables", "CALLRESULT"),
                         ("Heartbeat", "CALLRESULT")]

    run(scenario())


def _malformed_frames(count: int, version: OcppVersion, seed: int = 15118):
    """(frame, expected messageId, expected violation) of many kinds."""
    rng = random.Random(seed)
    garbage = "".join(chr(rng.randrange(32, 127)) for _ in range(64))
    kinds = [
        lambda i: ("{not json " + garbage[: i % 60], "-1", Violation.NOT_JSON),
        lambda i: (json.dumps({"messageTypeId": 2, "id": str(i)}), "-1", Violation.NOT_RPC),
        lambda i: (json.dumps([2]), "-1", Violation.NOT_RPC),
        lambda i: (json.dumps([2, i, "Heartbeat", {}]), "-1", Violation.NOT_RPC),
        lambda i: (json.dumps([2, f"m{i}", "Heartbeat"]), f"m{i}", Violation.NOT_RPC),
        lambda i: (json.dumps([rng.choice([0, 1, 7, 9, 99]), f"m{i}", {}]), f"m{i}", Violation.UNKNOWN_MESSAGE_TYPE),
        lambda i: (json.dumps([2, f"m{i}", "Heartbeat", [1, 2]]), f"m{i}", Violation.PAYLOAD_NOT_OBJECT),
        lambda i: (json.dumps([2, f"m{i}", f"NoSuchAction{i}", {}]), f"m{i}", Violation.UNKNOWN_ACTION),
        lambda i: (json.dumps([2, f"m{i}", "RequestStartTransaction", {"idToken": {"idToken": "x", "type": "Local"},
                                                                       "remoteStartId": 1}]),
                   f"m{i}", Violation.UNSUPPORTED_ACTION),
        lambda i: (json.dumps([2, f"m{i}", "BootNotification", {"reason": "PowerUp"}]), f"m{i}",
                   Violation.MISSING_PROPERTY),
        lambda i: (json.dumps([2, f"m{i}", "Heartbeat", {"unexpected": i}]), f"m{i}", Violation.ADDITIONAL_PROPERTY),
        lambda i: (json.dumps([2, f"m{i}", "BootNotification", {"reason": "PowerUp", "chargingStation":
                                                                {"model": i, "vendorName": "V"}}]),
                   f"m{i}", Violation.WRONG_TYPE),
        lambda i: (json.dumps([2, f"m{i}", "BootNotification", {"reason": "Sunrise", "chargingStation":
                                                                {"model": "M", "vendorName": "V"}}]),
                   f"m{i}", Violation.BAD_VALUE),
        lambda i: (json.dumps([2, f"m{i}", "BootNotification", {"reason": "PowerUp", "chargingStation":
                                                                {"model": "M" * 100, "vendorName": "V"}}]),
                   f"m{i}", Violation.BAD_VALUE),
    ]
    for i in range(count):
        yield kinds[i % len(kinds)](i)


def test_a_thousand_malformed_frames_each_answered_and_the_station_still_served(run):
    async def scenario():
        recorder = Recorder()
        csms = MockCsms(recorder)
        await csms.start()
        version = OcppVersion.V201
        mismatches = []
        try:
            async with connect(csms.url("CS1"), subprotocols=["ocpp2.0.1"], additional_headers=_auth()) as ws:
                sent = 0
                for frame, message_id, violation in _malformed_frames(1400, version):
                    await ws.send(frame)
                    answer = json.loads(await asyncio.wait_for(ws.recv(), 5))
                    expected = [4, message_id, ERROR_CODES[violation][version]]
                    if answer[:3] != expected or not isinstance(answer[4], dict):
                        mismatches.append((frame[:80], answer[:3], expected))
                    sent += 1
                assert (await _call(ws, "after", "Heartbeat", {}))[0] == 3
        finally:
            await csms.stop()
        assert sent == 1400 and not mismatches, mismatches[:5]
        malformed = [e for e in recorder.select(observer="csms") if isinstance(e.payload, dict)
                     and e.payload.get("violation")]
        # every bad frame is answered; the timeline has each of the first ones with its violation
        # and then their count (a flood costs the trace little, and nothing goes unsaid)
        suppressed = sum(e.payload["suppressed"] for e in recorder.select(name="BadInputSuppressed"))
        assert len(malformed) + suppressed == 1400 and suppressed > 0
        assert recorder.first(name="Disconnected").payload["reason"].startswith("closed")

    run(scenario(), timeout=120)


def test_floods_and_vanishing_stations_do_not_take_the_csms_down(run):
    async def scenario():
        recorder = Recorder()
        csms = MockCsms(recorder, response_timeout=2)
        await csms.start()
        try:
            # a flood of calls, then the station vanishes without closing
            ws = await connect(csms.url("CS1"), subprotocols=["ocpp2.0.1"], additional_headers=_auth())
            for i in range(2000):
                await ws.send(json.dumps([2, f"f{i}", "Heartbeat", {}]))
            ws.transport.abort()
            # a station that disconnects while the CSMS waits for its answer
            async with connect(csms.url("CS2"), subprotocols=["ocpp2.0.1"],
                               additional_headers=_auth("CS2", PASSWORD)) as ws2:
                await csms.wait_connected("CS2", 5)
                pending = asyncio.ensure_future(csms.call("CS2", "Reset", {"type": "Immediate"}))
                await ws2.recv()
            with pytest.raises(ConnectionLost):
                await pending
            # a frame far over the size limit
            async with connect(csms.url("CS3"), subprotocols=["ocpp2.0.1"], max_size=None,
                               additional_headers=_auth("CS3", PASSWORD)) as ws3:
                await ws3.send(json.dumps([2, "big", "DataTransfer", {"vendorId": "x", "data": "y" * (5 << 20)}]))
                with pytest.raises(ConnectionClosed):
                    await asyncio.wait_for(ws3.recv(), 5)
            # and the CSMS still serves
            async with connect(csms.url("CS4"), subprotocols=["ocpp2.0.1"],
                               additional_headers=_auth("CS4", PASSWORD)) as ws4:
                assert (await _call(ws4, "1", "BootNotification", BOOT))[2]["status"] == "Accepted"
        finally:
            await csms.stop()
        reasons = [e.payload["reason"] for e in recorder.select(name="Disconnected")]
        assert any("1009" in r for r in reasons), reasons

    run(scenario(), timeout=120)


def test_restart_changes_the_policy_on_the_same_port(run, pki):
    async def scenario():
        csms = MockCsms(Recorder())
        await csms.start()
        port = csms.port
        await csms.restart(SecurityPolicy(profile=2, server=pki.csms_server))
        try:
            assert csms.port == port and csms.url("CS1").startswith("wss://")
            async with connect(csms.url("CS1"), subprotocols=["ocpp2.0.1"], additional_headers=_auth(),
                               ssl=ocpp_client_context(pki.csms_root)) as ws:
                assert (await _call(ws, "1", "Heartbeat", {}))[0] == 3
        finally:
            await csms.stop()

    run(scenario())


def test_the_csms_sends_each_frame_at_once(run):
    """TCP_NODELAY on the CSMS's side of every connection: OCPP frames are small and come one
    after another, so with Nagle's algorithm a CALL waited behind an unacknowledged frame for the
    station's delayed ACK (about 40 ms on Linux loopback, measured by bench/v2g_latency.py)."""
    import socket

    async def scenario():
        csms = MockCsms(Recorder())
        await csms.start()
        try:
            async with connect(csms.url("CS1"), subprotocols=["ocpp2.0.1"], additional_headers=_auth()) as ws:
                for _ in range(100):
                    if "CS1" in csms.sessions:
                        break
                    await asyncio.sleep(0.01)
                server_side = csms.session("CS1").endpoint.transport.transport.get_extra_info("socket")
                assert server_side.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
                assert ws.transport.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        finally:
            await csms.stop()

    run(scenario())


def test_the_csms_tls_key_log_is_readable_by_its_owner_only(run, pki, tmp_path):
    """At profile 2 the key log decrypts the Basic-auth password: 0600, like the keys."""
    keylog = tmp_path / "tls-keys.log"

    async def scenario():
        policy = SecurityPolicy(profile=2, credentials={"CS1": PASSWORD}, server=pki.csms_server, keylog=keylog)
        csms = MockCsms(Recorder(), security=policy)
        await csms.start()
        try:
            async with connect(csms.url("CS1"), subprotocols=["ocpp2.0.1"], additional_headers=_auth(),
                               ssl=ocpp_client_context(pki.csms_root)) as ws:
                assert (await _call(ws, "1", "Heartbeat", {}))[0] == 3
        finally:
            await csms.stop()

    run(scenario())
    assert keylog.stat().st_mode & 0o777 == 0o600 and keylog.read_text().strip()


def test_profile_3_serves_only_the_listed_stations(run, tmp_path):
    """With a station list (`csms serve --station CS1`), a certificate the CA issued to another
    station gets that station nowhere: only listed stations connect, each with its own name."""
    pki = generate_ocpp_pki(tmp_path / "pki", station_ids=["CS1", "CS1-OTHER"])

    async def scenario():
        recorder = Recorder()
        policy = SecurityPolicy(profile=3, credentials={"CS1": ""}, server=pki.csms_server, client_ca=pki.csms_root)
        csms = MockCsms(recorder, security=policy)
        await csms.start()
        try:
            with pytest.raises(InvalidStatus, match="401"):
                async with connect(csms.url("CS1-OTHER"), subprotocols=["ocpp2.0.1"],
                                   ssl=_client_context(pki, pki.stations["CS1-OTHER"])):
                    pass
            with pytest.raises(InvalidStatus, match="401"):  # a listed name with another station's certificate
                async with connect(csms.url("CS1"), subprotocols=["ocpp2.0.1"],
                                   ssl=_client_context(pki, pki.stations["CS1-OTHER"])):
                    pass
            async with connect(csms.url("CS1"), subprotocols=["ocpp2.0.1"],
                               ssl=_client_context(pki, pki.stations["CS1"])) as ws:
                assert (await _call(ws, "1", "Heartbeat", {}))[0] == 3
        finally:
            await csms.stop()
        return [e.payload["reason"] for e in recorder.select(name="ConnectionRefused")]

    reasons = run(scenario())
    assert reasons[0] == "unknown station 'CS1-OTHER': not among the stations this CSMS serves"
    assert reasons[1] == "client certificate CN 'CS1-OTHER' is not the station id 'CS1'"


def test_a_connected_station_cannot_be_taken_over_with_other_credentials(run):
    """Auto-commissioning (no station list) accepts any password for a new station id, but a second
    connection for a connected station must present the first one's credentials: another password
    is refused with 401 and the station stays connected. With the same credentials (a station
    that reconnects) the new connection wins and the old one is closed with a close frame."""

    async def scenario():
        recorder = Recorder()
        csms = MockCsms(recorder)  # no credentials: auto-commissioning
        await csms.start()
        try:
            async with connect(csms.url("CS9"), subprotocols=["ocpp2.0.1"],
                               additional_headers=_auth("CS9", "first-password-0001")) as first:
                assert (await _call(first, "1", "Heartbeat", {}))[0] == 3
                with pytest.raises(InvalidStatus, match="401"):
                    async with connect(csms.url("CS9"), subprotocols=["ocpp2.0.1"],
                                       additional_headers=_auth("CS9", "intruder-password-01")):
                        pass
                assert (await _call(first, "2", "Heartbeat", {}))[0] == 3  # still connected, still served
                async with connect(csms.url("CS9"), subprotocols=["ocpp2.0.1"],
                                   additional_headers=_auth("CS9", "first-password-0001")) as second:
                    with pytest.raises(ConnectionClosed) as closed:
                        await asyncio.wait_for(first.recv(), 5)
                    assert (await _call(second, "3", "Heartbeat", {}))[0] == 3
        finally:
            await csms.stop()
        return recorder, closed.value

    recorder, closed = run(scenario())
    assert closed.rcvd is not None and closed.rcvd.code == 1000  # a close frame, not a dropped socket
    assert "replaced by a new connection" in closed.rcvd.reason
    refused = recorder.first(name="ConnectionRefused")
    assert refused.payload["status"] == 401 and "connected with other credentials" in refused.payload["reason"]
    assert recorder.first(name="ConnectionReplaced") is not None


@pytest.mark.parametrize("segment, why", [
    ("%2E%2E%2Fetc%2Fpasswd", "outside OCPP's identifierString ('/')"),
    ("CS%001", "outside OCPP's identifierString ('\\x00')"),
    ("C" * 1000, "has 1000 characters, at most 48"),
    ("CS%FF%FE", "not UTF-8 once percent-decoded"),
    ("CS%0D%0A1", "outside OCPP's identifierString ('\\n', '\\r')"),
    ("CS%201", "outside OCPP's identifierString (' ')"),
], ids=["dot-dot-slash", "nul", "long", "invalid-utf8", "crlf", "space"])
def test_a_station_identity_outside_ocpps_rules_is_refused_with_400(run, segment, why):
    """Station identities are OCPP identifierStrings of at most 48 characters: anything else is
    refused in the upgrade with 400 and a ConnectionRefused event saying why, before any password
    is looked at (so two ids cannot collide through U+FFFD, and no path or NUL reaches a log)."""
    async def scenario():
        recorder = Recorder()
        csms = MockCsms(recorder)
        await csms.start()
        try:
            with pytest.raises(InvalidStatus, match="400"):
                async with connect(f"ws://127.0.0.1:{csms.port}/{segment}", subprotocols=["ocpp2.0.1"],
                                   additional_headers=_auth("X", "whatever-password-01")):
                    pass
            async with connect(csms.url("CP-1_a=b+d|e@f.g*"), subprotocols=["ocpp2.0.1"],
                               additional_headers=_auth("CP-1_a=b+d|e@f.g*", "whatever-password-01")) as ws:
                assert (await _call(ws, "1", "Heartbeat", {}))[0] == 3
        finally:
            await csms.stop()
        return recorder.first(name="ConnectionRefused")

    refused = run(scenario())
    assert refused.payload["status"] == 400 and why in refused.payload["reason"], refused.payload


def test_any_action_name_gets_a_callerror_and_the_schema_cache_stays_bounded(run):
    """Action names a station may send (255 characters and more, a path, NUL, non-ASCII letters,
    thousands of distinct ones) get CALLERROR NotImplemented each, the connection keeps serving,
    and no name reaches the file system or grows the validator cache."""
    from harness.ocpp import frames

    names = ["A" * 255, "A" * 300, "Heartbeat/../x", "\x00", "Ä" * 200] + [f"Made{n}Up" for n in range(2000)]

    async def scenario():
        csms = MockCsms(Recorder())
        await csms.start()
        try:
            async with connect(csms.url("CS1"), subprotocols=["ocpp2.0.1"], additional_headers=_auth()) as ws:
                answers = [await _call(ws, str(n), name, {}) for n, name in enumerate(names)]
                return answers, await _call(ws, "last", "Heartbeat", {})
        finally:
            await csms.stop()

    answers, heartbeat = run(scenario())
    assert all(a[0] == 4 and a[2] == "NotImplemented" for a in answers), [a for a in answers if a[0] != 4][:3]
    assert all(len(a[3]) <= 255 for a in answers)  # errorDescription stays a short string
    assert heartbeat[0] == 3
    assert frames._validator.cache_info().currsize <= len(frames._schema_names(OcppVersion.V201)) * 3


def test_a_station_flooding_calls_it_never_reads_the_answers_of_is_cut_off(run):
    """OCPP-J has a peer wait for each answer; a station that sends thousands of CALLs without
    reading one answer makes the CSMS hold at most MAX_UNANSWERED of them, then close with 1008
    (TooManyCalls on the timeline); another station is served all along."""
    from harness.ocpp.endpoint import MAX_UNANSWERED

    async def scenario():
        recorder = Recorder()
        csms = MockCsms(recorder)
        await csms.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", csms.port)
            key = "dGhlIHNhbXBsZSBub25jZQ=="
            writer.write((f"GET /FLOOD HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                          f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: "
                          f"ocpp2.0.1\r\nAuthorization: {basic_auth_header('FLOOD', 'flood-password-0001')}\r\n\r\n")
                         .encode())
            await writer.drain()
            assert b" 101 " in await reader.readuntil(b"\r\n\r\n")
            call = json.dumps([2, "1", "Heartbeat", {}]).encode()
            frame = bytes((0x81, 0x80 | len(call))) + b"\x00\x00\x00\x00" + call  # masked with a zero key
            for _ in range(5000):  # never reading the answers
                writer.write(frame)
                if writer.transport.get_write_buffer_size() > 1 << 20:
                    break  # the CSMS stopped reading: TCP holds the rest
            async with connect(csms.url("OTHER"), subprotocols=["ocpp2.0.1"],
                               additional_headers=_auth("OTHER", "other-password-0001")) as ws:
                assert (await _call(ws, "x", "Heartbeat", {}))[0] == 3
            deadline = asyncio.get_running_loop().time() + 15
            while recorder.first(name="TooManyCalls") is None and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.1)
            writer.close()
            return recorder
        finally:
            await csms.stop()

    recorder = run(scenario())
    cut = recorder.first(name="TooManyCalls")
    assert cut is not None and cut.payload["limit"] == MAX_UNANSWERED, "the flood was never cut off"
    answered = [e for e in recorder.select(name="Heartbeat", observer="csms") if e.keys.get("station_id") == "FLOOD"
                and e.payload.get("type") == "CALLRESULT"]
    assert len(answered) < 5000


def test_a_connection_stuck_in_a_frame_or_silent_is_closed_by_the_keepalive(run):
    """A client that announces a 4 MB frame and sends nothing of it, and one that never answers a
    ping: both closed once the CSMS's ping goes unanswered (keepalive 0.5 s here, 120 s by default)."""
    async def scenario():
        recorder = Recorder()
        csms = MockCsms(recorder, keepalive=0.5)
        await csms.start()
        closed = []
        try:
            for name, tail in (("STUCK", bytes((0x82, 0xFF)) + (4 * 1024 * 1024).to_bytes(8, "big")), ("QUIET", b"")):
                reader, writer = await asyncio.open_connection("127.0.0.1", csms.port)
                writer.write((f"GET /{name} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                              f"Sec-WebSocket-Protocol: ocpp2.0.1\r\nAuthorization: "
                              f"{basic_auth_header(name, 'some-password-00001')}\r\n\r\n").encode() + tail)
                await writer.drain()
                started = asyncio.get_running_loop().time()
                try:
                    async with asyncio.timeout(10):
                        while await reader.read(65536):
                            pass  # pings and the close frame; never a pong
                    closed.append((name, asyncio.get_running_loop().time() - started))
                except TimeoutError:
                    closed.append((name, None))
                writer.close()
        finally:
            await csms.stop()
        return closed

    closed = run(scenario())
    assert all(seconds is not None for _, seconds in closed), f"still open after 10 s: {closed}"


@pytest.mark.parametrize("burst", [False, True], ids=["one-by-one", "burst"])
@pytest.mark.parametrize("profile", [1, 2])
def test_a_peer_with_many_connections_in_their_handshake_gets_no_more(run, pki, profile, burst):
    """40 TCP connections from one address that never start TLS (profile 2) or never send their
    HTTP upgrade (profile 1): the CSMS holds MAX_PENDING_PER_PEER of them and closes the rest at
    once (one ConnectionRefused event with the count, not one per connection); a station from
    another address is served meanwhile. Also when all 40 arrive at once."""
    from harness.ocpp.csms import MAX_PENDING_PER_PEER

    async def scenario():
        recorder = Recorder()
        policy = SecurityPolicy(profile=profile, credentials={"CS1": PASSWORD},
                                server=pki.csms_server if profile == 2 else None)
        csms = MockCsms(recorder, security=policy, host="0.0.0.0")
        await csms.start()
        silent: list = []
        try:
            silent, dropped = await silent_connections("127.0.0.1", csms.port, 40, burst=burst)
            tls = {"ssl": _client_context_no_hostname(pki)} if profile == 2 else {}
            async with connect(f"{'wss' if profile == 2 else 'ws'}://127.0.0.2:{csms.port}/CS1",
                               subprotocols=["ocpp2.0.1"], additional_headers=_auth(),
                               local_addr=("127.0.0.2", 0), **tls) as ws:
                served = (await _call(ws, "1", "Heartbeat", {}))[0] == 3
            return recorder, dropped, served
        finally:
            for writer in silent:
                writer.close()
            await csms.stop()

    recorder, dropped, served = run(scenario())
    assert dropped == 40 - MAX_PENDING_PER_PEER and served
    refusals = recorder.select(name="ConnectionRefused")
    assert 1 <= len(refusals) <= 3 and sum(e.payload.get("refused", 0) for e in refusals) >= 1


def _client_context_no_hostname(pki):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(pki.csms_root)
    context.check_hostname = False  # the CSMS's certificate names 127.0.0.1, the station came via 127.0.0.2
    return context


def test_a_burst_of_refused_frames_is_answered_each_and_recorded_as_a_count(run):
    """300 CALLs of an unknown action in a burst: every one gets its CALLERROR, the timeline keeps
    the first harness.trace.limits.RECORDED of them and then one BadInputSuppressed with the count (so a
    flood costs trace a few kB, and nothing goes unsaid)."""
    from harness.trace.limits import RECORDED as BAD_INPUT_RECORDED

    async def scenario():
        recorder = Recorder()
        csms = MockCsms(recorder)
        await csms.start()
        try:
            async with connect(csms.url("CS1"), subprotocols=["ocpp2.0.1"], additional_headers=_auth()) as ws:
                answers = [await _call(ws, str(n), "MadeUpAction", {}) for n in range(300)]
        finally:
            await csms.stop()
        return recorder, answers

    recorder, answers = run(scenario())
    assert all(a[0] == 4 for a in answers)
    recorded = [e for e in recorder.select(name="MadeUpAction", observer="csms") if e.payload.get("type") == "CALL"]
    assert len(recorded) == BAD_INPUT_RECORDED
    [suppressed] = recorder.select(name="BadInputSuppressed")
    assert suppressed.payload["suppressed"] == 300 - BAD_INPUT_RECORDED
