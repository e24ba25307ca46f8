"""SDP: payloads, the client's retries, the server's choice, and a real UDP exchange on ::1."""

from __future__ import annotations

import pytest

from harness.trace import Recorder
from harness.v2g import sdp
from harness.v2g.timers import SdpTimers
from harness.v2g.v2gtp import PayloadType, encode


def test_request_and_response_payloads():
    assert sdp.SdpRequest(sdp.SECURED, sdp.TCP).payload() == b"\x00\x00"
    response = sdp.SdpResponse("fe80::1", 50000, sdp.UNSECURED, sdp.TCP)
    payload = response.payload()
    assert len(payload) == 20 and payload[:2] == b"\xfe\x80" and payload[16:] == bytes.fromhex("C3501000")
    assert sdp.SdpResponse.parse(payload) == response


@pytest.mark.parametrize("payload, problem", [(b"\x00", "1 bytes, not 2"), (b"\x20\x00", "not defined")])
def test_malformed_requests_are_named(payload, problem):
    with pytest.raises(sdp.SdpError, match=problem):
        sdp.SdpRequest.parse(payload)


def test_the_client_repeats_then_gives_up():
    client = sdp.SdpClient(sdp.SdpRequest(), timers=SdpTimers(response_timeout=0.25, attempts=3))
    first = client.start(0.0)
    assert first == encode(PayloadType.SDP_REQUEST, b"\x10\x00")
    assert client.poll(0.2) is None
    assert client.poll(0.26) == first and client.attempts == 2
    assert client.poll(0.52) == first and client.attempts == 3
    assert client.poll(0.80) == sdp.SdpGiveUp(3)


def test_the_client_takes_the_first_valid_response_and_ignores_the_rest():
    client = sdp.SdpClient(sdp.SdpRequest())
    client.start(0.0)
    assert client.receive(encode(PayloadType.SDP_RESPONSE, b"\x00" * 19), 0.1) is None
    assert "19 bytes" in client.ignored[-1]
    good = sdp.SdpResponse("::1", 61851).payload()
    assert client.receive(encode(PayloadType.SDP_RESPONSE, good), 0.1).port == 61851
    assert client.poll(10.0) is None


@pytest.mark.parametrize("asked, policy, tls_port, port, secured", [
    (True, "optional", 2, 2, True), (False, "optional", 2, 1, False), (False, "required", 2, 2, True),
    (True, "none", 2, 1, False), (True, "optional", None, 1, False)])
def test_the_server_answers_with_the_port_of_the_security_it_offers(asked, policy, tls_port, port, secured):
    datagram = encode(PayloadType.SDP_REQUEST, sdp.SdpRequest(sdp.SECURED if asked else sdp.UNSECURED).payload())
    _, response, _ = sdp.answer(datagram, address="::1", tcp_port=1, tls_port=tls_port, tls_policy=policy)
    assert (response.port, response.tls) == (port, secured)


def test_the_server_ignores_what_is_not_an_sdp_request():
    _, response, why = sdp.answer(encode(PayloadType.EXI, b"\x10\x00"), address="::1", tcp_port=1, tls_port=None)
    assert response is None and "0x8001 not supported" in why


def test_discovery_over_udp_on_loopback(run):
    recorder = Recorder()

    async def scenario():
        server = sdp.SdpServer(recorder, "::1", 0, tcp_port=4711, tls_port=4712)
        await server.start()
        try:
            found = await sdp.discover(recorder, tls=True, target="::1", port=server.bound_port)
        finally:
            await server.stop()
        return found

    found = run(scenario())
    assert (found.address, found.port, found.tls) == ("::1", 4712, True)
    names = [(e.observer, e.name) for e in recorder.select(layer="sdp")]
    assert ("ev", "SdpRequest") in names and ("evse", "SdpResponse") in names and ("ev", "SdpResponse") in names


def test_discovery_gives_up_when_nobody_answers(run):
    recorder = Recorder()

    async def scenario():
        return await sdp.discover(recorder, tls=False, target="::1", port=9, timers=SdpTimers(0.02, 3))

    with pytest.raises(sdp.SdpError, match="after 3 requests"):
        run(scenario())
    assert len(recorder.select(layer="sdp", name="SdpRequest")) == 3
