"""SDP and V2GTP over TCP/TLS with sockets made by the caller: how the netns rig puts the EV and
the SECC each in a network namespace of its own (tested here on ::1, without root; the netns rig's
own tests run the same over the emulated power line)."""

from __future__ import annotations

import socket

from harness.emulators.charge_port import ChargePort
from harness.emulators.hlc_ev import HlcEv
from harness.iec61851.pilot import SimulatedPilot
from harness.trace import Recorder
from harness.v2g import sdp
from harness.v2g.equipment import EvseCapabilities
from harness.v2g.secc import Secc, SeccConfig
from harness.v2g.vehicle import ChargePlan
from tests.v2g.pair import FAST, vehicle


class Sockets:
    """A socket factory that remembers what it made and which of its sockets got an address: the
    SECC's port search makes another socket when a port it drew is taken (``bind_secc_port``)."""

    def __init__(self) -> None:
        self.made: list[tuple[int, int]] = []
        self.bound: list[tuple[int, int]] = []

    def __call__(self, family: int, kind: int, proto: int = 0) -> socket.socket:
        self.made.append((family, kind))
        factory = self

        class Remembered(socket.socket):
            def bind(self, address, /) -> None:
                super().bind(address)
                factory.bound.append((family, kind))

        return Remembered(family, kind, proto)


def test_discovery_and_a_tls_session_use_each_sides_sockets(run, material):
    recorder = Recorder()
    evse_sockets, ev_sockets = Sockets(), Sockets()

    async def scenario():
        port = ChargePort(EvseCapabilities(), provisioning=material.provisioning(),
                          tariff_key=material.tariff_key("iso2"))
        secc = Secc(recorder, port, SeccConfig(tls=material.secc_tls(), sockets=evse_sockets), timing=FAST)
        await secc.start()
        server = sdp.SdpServer(recorder, "::1", 0, tcp_port=secc.tcp_port, tls_port=secc.tls_port,
                               sockets=evse_sockets)
        await server.start()
        car = HlcEv(recorder, vehicle(ChargePlan(protocols=("iso2",), energy="AC", cycles=2)), timing=FAST)
        await car.plug_in(SimulatedPilot(recorder), port.line)
        try:
            found = await sdp.discover(recorder, tls=True, target="::1", port=server.bound_port, sockets=ev_sockets)
            outcome = await car.charge(found.address, found.port, context=material.evcc_context("iso2"),
                                       sockets=ev_sockets)
        finally:
            await car.unplug()
            await server.stop()
            await secc.stop()
        return found, outcome

    found, outcome = run(scenario())
    assert found.tls and outcome.ok, outcome.reason
    assert recorder.first(name="TcpConnected", observer="ev").payload["tls"] == "TLSv1.2"
    v6 = socket.AF_INET6
    # the SECC's plain and TLS listeners and its SDP socket; the EV's SDP socket and connection
    assert sorted(evse_sockets.bound) == sorted([(v6, socket.SOCK_STREAM), (v6, socket.SOCK_STREAM),
                                                 (v6, socket.SOCK_DGRAM)])
    assert set(evse_sockets.made) == set(evse_sockets.bound)
    assert sorted(ev_sockets.made) == sorted([(v6, socket.SOCK_DGRAM), (v6, socket.SOCK_STREAM)])
