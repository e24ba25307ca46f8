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


TCP_PORT, TLS_PORT = 50001, 50002


@pytest.mark.parametrize("asked, policy, tls_port, port, secured", [
    (True, "optional", TLS_PORT, TLS_PORT, True), (False, "optional", TLS_PORT, TCP_PORT, False),
    (False, "required", TLS_PORT, TLS_PORT, True), (True, "none", TLS_PORT, TCP_PORT, False),
    (True, "optional", None, TCP_PORT, False)])
def test_the_server_answers_with_the_port_of_the_security_it_offers(asked, policy, tls_port, port, secured):
    datagram = encode(PayloadType.SDP_REQUEST, sdp.SdpRequest(sdp.SECURED if asked else sdp.UNSECURED).payload())
    _, response, _ = sdp.answer(datagram, address="::1", tcp_port=TCP_PORT, tls_port=tls_port, tls_policy=policy)
    assert (response.port, response.tls) == (port, secured)


def test_the_server_ignores_what_is_not_an_sdp_request():
    _, response, why = sdp.answer(encode(PayloadType.EXI, b"\x10\x00"), address="::1", tcp_port=TCP_PORT,
                                  tls_port=None)
    assert response is None and "0x8001 not supported" in why


@pytest.mark.parametrize("tcp_port", [None, 0, 38535])
def test_the_server_never_names_a_port_outside_the_dynamic_ports(tcp_port):
    # ISO 15118-2 7.10.1.2 / -20 / DIN 70121: the SECC port of an SDP response is a Dynamic Port
    # (IETF RFC 6335, 49152-65535); without a server there, there is nothing to answer
    datagram = encode(PayloadType.SDP_REQUEST, sdp.SdpRequest(sdp.UNSECURED).payload())
    _, response, why = sdp.answer(datagram, address="::1", tcp_port=tcp_port, tls_port=None)
    assert response is None and "ignored" in why


@pytest.mark.parametrize("port, transport, address, problem", [
    (38535, sdp.TCP, "fe80::1", "SECC port 38535 is outside the dynamic ports 49152-65535"),
    (49151, sdp.TCP, "fe80::1", "SECC port 49151 is outside"),
    (50000, sdp.UDP, "fe80::1", "transport protocol 0x10 where 0x00 was asked for"),
    (50000, sdp.TCP, "ff02::1", "is not a unicast address"),
    (50000, sdp.TCP, "::", "is not a unicast address")])
def test_the_ev_ignores_a_response_it_must_not_use(port, transport, address, problem):
    client = sdp.SdpClient(sdp.SdpRequest(sdp.UNSECURED, sdp.TCP))
    client.start(0.0)
    bad = sdp.SdpResponse(address, port, sdp.UNSECURED, transport).payload()
    assert client.receive(encode(PayloadType.SDP_RESPONSE, bad), 0.1) is None
    assert problem in client.ignored[-1]
    assert client.response is None and client.deadline is not None  # it keeps waiting, then asks again


@pytest.mark.parametrize("port", [49152, 65535])
def test_the_ends_of_the_dynamic_ports_are_usable(port):
    client = sdp.SdpClient(sdp.SdpRequest())
    client.start(0.0)
    good = sdp.SdpResponse("fe80::1", port).payload()
    assert client.receive(encode(PayloadType.SDP_RESPONSE, good), 0.1).port == port


def test_discovery_over_udp_on_loopback(run):
    recorder = Recorder()

    async def scenario():
        server = sdp.SdpServer(recorder, "::1", 0, tcp_port=TCP_PORT, tls_port=TLS_PORT)
        await server.start()
        try:
            found = await sdp.discover(recorder, tls=True, target="::1", port=server.bound_port)
        finally:
            await server.stop()
        return found

    found = run(scenario())
    assert (found.address, found.port, found.tls) == ("::1", TLS_PORT, True)
    names = [(e.observer, e.name) for e in recorder.select(layer="sdp")]
    assert ("ev", "SdpRequest") in names and ("evse", "SdpResponse") in names and ("ev", "SdpResponse") in names


def test_discovery_gives_up_when_nobody_answers(run):
    recorder = Recorder()

    async def scenario():
        return await sdp.discover(recorder, tls=False, target="::1", port=9, timers=SdpTimers(0.02, 3))

    with pytest.raises(sdp.SdpError, match="after 3 requests"):
        run(scenario())
    assert len(recorder.select(layer="sdp", name="SdpRequest")) == 3


def test_discovery_names_why_the_only_answer_was_unusable(run):
    """A non-conforming SECC (a bare UDP socket here) names a port outside the dynamic ports: the
    EV ignores the answer, asks again, and gives up with the reason in the error."""
    import asyncio
    import socket

    recorder = Recorder()
    bad = encode(PayloadType.SDP_RESPONSE, sdp.SdpResponse("::1", 38535).payload())

    async def scenario():
        server = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        server.bind(("::1", 0))
        server.setblocking(False)
        loop = asyncio.get_running_loop()

        async def answer_badly():
            while True:
                _, sender = await loop.sock_recvfrom(server, 64)
                await loop.sock_sendto(server, bad, sender)

        answering = asyncio.create_task(answer_badly())
        try:
            return await sdp.discover(recorder, tls=False, target="::1", port=server.getsockname()[1],
                                      timers=SdpTimers(0.05, 2))
        finally:
            answering.cancel()
            server.close()

    with pytest.raises(sdp.SdpError, match="SECC port 38535 is outside the dynamic ports"):
        run(scenario())
    assert len(recorder.select(layer="sdp", name="SdpIgnored", observer="ev")) == 2


def test_the_secc_listens_on_a_dynamic_port_unless_told_one(run):
    from harness.v2g.transport import SECC_PORTS, SeccPortError, listen

    async def nothing(connection):
        pass

    async def scenario():
        listeners = [await listen("::1", 0, nothing) for _ in range(5)]
        ports = [listener.port for listener in listeners]
        for listener in listeners:
            await listener.close()
        with pytest.raises(SeccPortError, match="38535 is outside the dynamic ports 49152-65535"):
            await listen("::1", 38535, nothing)
        return ports

    assert all(port in SECC_PORTS for port in run(scenario()))


def test_evse_serve_refuses_a_port_outside_the_dynamic_ports(harness_command):
    import subprocess

    result = subprocess.run([*harness_command, "evse", "serve", "--iface", "lo", "--port", "15118"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "--port 15118 is outside the dynamic ports 49152-65535" in result.stderr


def test_a_flood_of_datagrams_the_sdp_server_ignores_is_recorded_as_a_count(run):
    """300 SDP datagrams of 65 kB that are no request: the server stays up and answers a real
    request afterwards; the timeline keeps the first harness.trace.limits.RECORDED of them (each
    payload cut to its head, size and digest) and then their count."""
    import asyncio
    import socket

    from harness.trace import Recorder
    from harness.trace.limits import RECORDED
    from harness.v2g.sdp import SdpRequest, SdpServer
    from harness.v2g.v2gtp import PayloadType, encode

    async def scenario():
        recorder = Recorder()
        server = SdpServer(recorder, "::1", 0, tcp_port=50000, tls_port=None)
        await server.start()
        sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        sock.settimeout(2)
        try:
            junk = b"\x01\xfe\x90\x00" + (65000).to_bytes(4, "big") + b"Z" * 65000
            for _ in range(300):
                sock.sendto(junk, ("::1", server.bound_port))
                await asyncio.sleep(0.002)  # UDP: a receive buffer holds only a few of these
            await asyncio.sleep(0.5)
            sock.sendto(encode(PayloadType.SDP_REQUEST, SdpRequest().payload()), ("::1", server.bound_port))
            answered = await asyncio.to_thread(sock.recvfrom, 100)
        finally:
            sock.close()
            await server.stop()
        return recorder, answered

    recorder, answered = run(scenario())
    assert answered[0][2:4] == b"\x90\x01"  # an SDP response
    ignored = recorder.select(name="SdpIgnored")
    suppressed = sum(e.payload["suppressed"] for e in recorder.select(name="BadInputSuppressed"))
    # all but a datagram or two the kernel may drop on a busy machine
    assert len(ignored) == RECORDED and 250 <= len(ignored) + suppressed <= 300
    assert ignored[0].payload["truncated"] and ignored[0].payload["size"] > 130000
