"""SDP, the SECC Discovery Protocol (ISO 15118-2 7.10.1, -20 7.10.1): how an EV finds the SECC's
IP address and port over UDP, and whether it will speak TLS.

Request (V2GTP payload type 0x9000, 2 bytes): Security (0x00 TLS, 0x10 no transport security),
Transport protocol (0x00 TCP, 0x10 UDP). Response (0x9001, 20 bytes): the SECC's IPv6 address
(16 bytes), port (2, big-endian), Security, Transport protocol. The EV sends the request to the
link's all-nodes multicast address ff02::1 on UDP port 15118 and repeats it when no valid response
came in time (:data:`harness.v2g.timers.SDP`; [V2G20-157] .. [V2G20-161]); the SECC answers to the
sender. A response the EV must not use -- a port outside the dynamic ports 49152-65535 (ISO 15118-20
Table 10, [V2G20-078]; ISO 15118-2 Table 15), another transport than asked for, no unicast address
-- counts as no response: the EV ignores it (on the timeline, with the reason) and asks again.

:class:`SdpClient` is the sans-IO client; :func:`discover` and :class:`SdpServer` are the asyncio
adapters. On the default emulated rig the EV asks ::1 by unicast instead of multicast; on the
netns rig both ends make their sockets in their own network namespace (``sockets``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import struct
from dataclasses import dataclass
from typing import Any

from harness.trace import Layer, Recorder
from harness.trace.limits import BadInputLimit
from harness.v2g.recording import endpoint_key
from harness.v2g.timers import SDP, SdpTimers
from harness.v2g.transport import SECC_PORTS, SocketFactory, scope_index, split_scope
from harness.v2g.v2gtp import HeaderError, PayloadType, V2gtpMessage, read_datagram
from harness.v2g.v2gtp import encode as v2gtp_encode

SDP_PORT = 15118
ALL_NODES = "ff02::1"
SECURED = 0x00        # TLS
UNSECURED = 0x10      # no transport layer security
TCP = 0x00
UDP = 0x10


class SdpError(ValueError):
    pass


@dataclass(frozen=True)
class SdpRequest:
    security: int = UNSECURED
    transport: int = TCP

    def payload(self) -> bytes:
        return bytes((self.security, self.transport))

    @classmethod
    def parse(cls, payload: bytes) -> "SdpRequest":
        if len(payload) != 2:
            raise SdpError(f"SDP request payload is {len(payload)} bytes, not 2")
        request = cls(payload[0], payload[1])
        if request.security not in (SECURED, UNSECURED) or request.transport not in (TCP, UDP):
            raise SdpError(f"SDP request security 0x{payload[0]:02X} / transport 0x{payload[1]:02X} "
                           f"not defined (0x00 or 0x10 each)")
        return request

    @property
    def tls(self) -> bool:
        return self.security == SECURED


@dataclass(frozen=True)
class SdpResponse:
    address: str
    port: int
    security: int = UNSECURED
    transport: int = TCP

    def payload(self) -> bytes:
        return ipaddress.IPv6Address(split_scope(self.address)[0]).packed + struct.pack(
            ">HBB", self.port, self.security, self.transport)

    @classmethod
    def parse(cls, payload: bytes) -> "SdpResponse":
        if len(payload) != 20:
            raise SdpError(f"SDP response payload is {len(payload)} bytes, not 20")
        port, security, transport = struct.unpack(">HBB", payload[16:])
        if security not in (SECURED, UNSECURED) or transport not in (TCP, UDP):
            raise SdpError(f"SDP response security 0x{security:02X} / transport 0x{transport:02X} not defined")
        if port == 0:
            raise SdpError("SDP response port 0")
        return cls(str(ipaddress.IPv6Address(payload[:16])), port, security, transport)

    @property
    def tls(self) -> bool:
        return self.security == SECURED

    def problems(self, request: SdpRequest) -> list[str]:
        """What makes this response one an EVCC must not use for ``request``: a port outside the
        dynamic ports, another transport than the TCP asked for, an address that is not a
        unicast address of the SECC."""
        found = []
        if self.port not in SECC_PORTS:
            found.append(f"SECC port {self.port} is outside the dynamic ports {SECC_PORTS.start}-"
                         f"{SECC_PORTS.stop - 1} (IETF RFC 6335) the SECC must listen on")
        if self.transport != request.transport:
            found.append(f"transport protocol 0x{self.transport:02X} where 0x{request.transport:02X} was asked for")
        address = ipaddress.IPv6Address(split_scope(self.address)[0])
        if address.is_multicast or address.is_unspecified:
            found.append(f"SECC address {address} is not a unicast address")
        return found


# -- sans-IO client --------------------------------------------------------------------------------

@dataclass(frozen=True)
class SdpGiveUp:
    attempts: int


class SdpClient:
    """Sends the request, repeats it after ``timers.response_timeout`` up to ``timers.attempts``
    times, and takes the first valid response."""

    def __init__(self, request: SdpRequest, *, timers: SdpTimers = SDP, timeout_scale=lambda s: s) -> None:
        self.request = request
        self.timers = timers
        self.timeout_scale = timeout_scale
        self.attempts = 0
        self.deadline: float | None = None
        self.response: SdpResponse | None = None
        self.ignored: list[str] = []

    def datagram(self) -> bytes:
        return v2gtp_encode(PayloadType.SDP_REQUEST, self.request.payload())

    def start(self, now: float) -> bytes:
        return self._send(now)

    def _send(self, now: float) -> bytes:
        self.attempts += 1
        self.deadline = now + self.timeout_scale(self.timers.response_timeout)
        return self.datagram()

    def receive(self, datagram: bytes, now: float) -> SdpResponse | None:
        message = read_datagram(datagram, {PayloadType.SDP_RESPONSE})
        if isinstance(message, HeaderError):
            self.ignored.append(str(message))
            return None
        try:
            response = SdpResponse.parse(message.payload)
        except SdpError as exc:
            self.ignored.append(str(exc))
            return None
        problems = response.problems(self.request)
        if problems:  # not an answer the EV can use: it waits for another or asks again
            self.ignored.append("; ".join(problems))
            return None
        self.response = response
        self.deadline = None
        return self.response

    def poll(self, now: float) -> bytes | SdpGiveUp | None:
        if self.response is not None or self.deadline is None or now < self.deadline:
            return None
        if self.attempts >= self.timers.attempts:
            self.deadline = None
            return SdpGiveUp(self.attempts)
        return self._send(now)


def answer(datagram: bytes, *, address: str, tcp_port: int | None, tls_port: int | None,
           tls_policy: str = "optional") -> tuple[V2gtpMessage | HeaderError, SdpResponse | None, str]:
    """The SECC's answer to one datagram: (what arrived, the response or None, why)."""
    message = read_datagram(datagram, {PayloadType.SDP_REQUEST})
    if isinstance(message, HeaderError):
        return message, None, f"ignored: {message}"
    try:
        request = SdpRequest.parse(message.payload)
    except SdpError as exc:
        return message, None, f"ignored: {exc}"
    if request.transport != TCP:
        return message, None, "ignored: only TCP is offered"
    tls = tls_port is not None and (request.tls or tls_policy == "required")
    if tls_policy == "none" or tls_port is None:
        tls = False
    port = tls_port if tls else tcp_port
    if port is None or port not in SECC_PORTS:  # no server of that kind, or one on a port no EV may use
        return message, None, f"ignored: no {'TLS' if tls else 'TCP'} server on a port an SDP response may name"
    response = SdpResponse(address, port, SECURED if tls else UNSECURED, TCP)
    return message, response, "TLS" if tls else "TCP"


# -- asyncio adapters --------------------------------------------------------------------------------

class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[bytes, tuple]] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    # asyncio hands a DatagramProtocol a DatagramTransport, but mypy checks the override against
    # BaseProtocol's BaseTransport too (typeshed's DatagramProtocol ignores the same error)
    def connection_made(self, transport: asyncio.DatagramTransport) -> None:  # type: ignore[override]
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.queue.put_nowait((data, addr))


class SdpServer:
    """Answers SDP requests on UDP ``port`` at ``host`` (and, for a link-local host, on the
    all-nodes group of its interface)."""

    def __init__(self, recorder: Recorder, host: str, port: int, *, tcp_port: int | None, tls_port: int | None,
                 tls_policy: str = "optional", side: str = "evse", sockets: SocketFactory | None = None) -> None:
        self.recorder = recorder
        self.sockets = sockets or socket.socket
        self.host = host
        self.port = port
        self.tcp_port = tcp_port
        self.tls_port = tls_port
        self.tls_policy = tls_policy
        self.side = side
        self._transport: asyncio.DatagramTransport | None = None
        self._task: asyncio.Task | None = None
        #: datagrams it ignores: a flood of them is recorded as its first ones and a count
        self._bad_input = BadInputLimit(self._suppressed)

    def _suppressed(self, suppressed: int, recorded: int, window_s: float) -> None:
        self.recorder.emit(Layer.SDP, "BadInputSuppressed", f"{suppressed} more SDP datagram(s) ignored within "
                           f"{window_s:g} s, not recorded one by one", src="ev", dst=self.side, observer=self.side,
                           payload={"suppressed": suppressed, "recorded": recorded, "window_s": window_s})

    @property
    def bound_port(self) -> int | None:
        if self._transport is None:
            return None
        return self._transport.get_extra_info("sockname")[1]

    async def start(self) -> None:
        address, scope = split_scope(self.host)
        sock = self.sockets(socket.AF_INET6, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        index = scope_index(scope)
        if ipaddress.IPv6Address(address).is_link_local:
            sock.bind(("::", self.port, 0, index))
            group = socket.inet_pton(socket.AF_INET6, ALL_NODES) + struct.pack("@I", index)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, group)
        else:
            sock.bind((address, self.port, 0, index))
        loop = asyncio.get_running_loop()
        self._transport, protocol = await loop.create_datagram_endpoint(_Datagrams, sock=sock)
        self._task = asyncio.create_task(self._serve(protocol))
        self.recorder.emit(Layer.SDP, "SdpServerListening", f"SDP server on [{self.host}]:{self.bound_port}",
                           src=self.side, payload={"host": self.host, "port": self.bound_port})

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._transport is not None:
            self._transport.close()
        self._bad_input.flush()

    async def _serve(self, protocol: _Datagrams) -> None:
        address = split_scope(self.host)[0]
        while True:
            data, sender = await protocol.queue.get()
            peer = f"[{sender[0]}]:{sender[1]}"
            message, response, why = answer(data, address=address, tcp_port=self.tcp_port,
                                            tls_port=self.tls_port, tls_policy=self.tls_policy)
            if response is None and not self._bad_input.admit():
                continue  # a flood of datagrams it ignores: counted, not recorded one by one
            shown = data[8:24].hex(" ").upper() + (f" ... ({len(data) - 8} bytes)" if len(data) > 24 else "")
            self.recorder.emit(Layer.SDP, "SdpRequest", f"SDP request from {peer}: {shown}",
                               src="ev", dst=self.side, observer=self.side,
                               payload={"datagram": data.hex().upper(), "peer": peer})
            if response is None:
                self.recorder.emit(Layer.SDP, "SdpIgnored", f"SDP datagram from {peer} {why}", src=self.side,
                                   observer=self.side, payload={"datagram": data.hex().upper(), "reason": why})
                continue
            reply = v2gtp_encode(PayloadType.SDP_RESPONSE, response.payload())
            assert self._transport is not None
            self._transport.sendto(reply, sender)
            self.recorder.emit(Layer.SDP, "SdpResponse", f"SDP response to {peer}: [{response.address}]:"
                               f"{response.port} {why}", src=self.side, dst="ev", observer=self.side,
                               payload={"datagram": reply.hex().upper(), "address": response.address,
                                        "port": response.port, "tls": response.tls},
                               keys={"secc": endpoint_key(response.address, response.port)})


ETH_P_IPV6 = 0x86DD
_UDP = 17


def describe(frame: bytes) -> tuple[Layer, str, str] | None:
    """Layer, name and summary of a captured SDP datagram (Ethernet, IPv6 without extension
    headers, UDP to or from port 15118; a dissector for :class:`harness.trace.pcap.LinkCapture`);
    None for any other frame."""
    if len(frame) < 14 + 40 + 8 or int.from_bytes(frame[12:14], "big") != ETH_P_IPV6 or frame[14 + 6] != _UDP:
        return None
    udp = frame[54:62]
    source, destination = int.from_bytes(udp[0:2], "big"), int.from_bytes(udp[2:4], "big")
    if SDP_PORT not in (source, destination):
        return None
    payload = frame[62:]
    kind = int.from_bytes(payload[2:4], "big") if len(payload) >= 8 else 0
    names: dict[int, str] = {PayloadType.SDP_REQUEST: "SdpRequest", PayloadType.SDP_RESPONSE: "SdpResponse"}
    name = names.get(kind, "SdpDatagram")
    return Layer.SDP, name, f"{name} UDP {source} -> {destination}"


async def discover(recorder: Recorder, *, tls: bool, target: str = ALL_NODES, port: int = SDP_PORT,
                   iface: str | None = None, timers: SdpTimers = SDP, timeout_scale=lambda s: s,
                   side: str = "ev", sockets: SocketFactory | None = None) -> SdpResponse:
    """Find the SECC: send SDP requests to ``target`` (multicast on ``iface``, a name or an
    interface index, or unicast) until a response arrives; SdpError after the last attempt.
    ``sockets`` makes the UDP socket (in the EV's network namespace on the netns rig)."""
    loop = asyncio.get_running_loop()
    address, scope = split_scope(target)
    scope = scope or iface
    index = scope_index(scope)
    sock = (sockets or socket.socket)(socket.AF_INET6, socket.SOCK_DGRAM)
    if ipaddress.IPv6Address(address).is_multicast:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 1)
        sock.bind(("::", 0, 0, index))
    else:
        sock.bind(("::1" if address == "::1" else "::", 0, 0, index if ipaddress.IPv6Address(address).is_link_local else 0))
    transport, protocol = await loop.create_datagram_endpoint(_Datagrams, sock=sock)
    client = SdpClient(SdpRequest(SECURED if tls else UNSECURED, TCP), timers=timers, timeout_scale=timeout_scale)
    destination = (address, port, 0, index)
    try:
        datagram: bytes | SdpGiveUp | None = client.start(loop.time())
        while True:
            if isinstance(datagram, SdpGiveUp):
                ignored = f"; responses ignored: {client.ignored[-1]}" if client.ignored else ""
                recorder.emit(Layer.SDP, "SdpNoResponse", f"no usable SDP response after {datagram.attempts} "
                              f"requests{ignored}", src=side, observer=side, payload={"ignored": client.ignored})
                raise SdpError(f"no usable SDP response from [{target}]:{port} after {datagram.attempts} "
                               f"requests{ignored}")
            if isinstance(datagram, bytes):
                transport.sendto(datagram, destination)
                recorder.emit(Layer.SDP, "SdpRequest", f"SDP request #{client.attempts} to [{target}]:{port} "
                              f"({'TLS' if tls else 'TCP'})", src=side, dst="evse", observer=side,
                              payload={"datagram": datagram.hex().upper(), "to": target, "port": port})
            timeout = max(0.0, (client.deadline or loop.time()) - loop.time())
            try:
                async with asyncio.timeout(timeout):
                    data, sender = await protocol.queue.get()
            except (TimeoutError, asyncio.TimeoutError):
                datagram = client.poll(loop.time())
                continue
            response = client.receive(data, loop.time())
            if response is None:
                recorder.emit(Layer.SDP, "SdpIgnored", f"SDP datagram ignored: {client.ignored[-1]}", src="evse",
                              dst=side, observer=side, payload={"datagram": data.hex().upper()})
                datagram = None
                continue
            host = response.address
            if ipaddress.IPv6Address(host).is_link_local and scope:
                host = f"{host}%{scope}"
            recorder.emit(Layer.SDP, "SdpResponse", f"SDP response: SECC at [{host}]:{response.port} "
                          f"({'TLS' if response.tls else 'TCP'})", src="evse", dst=side, observer=side,
                          payload={"datagram": data.hex().upper(), "address": host, "port": response.port,
                                   "tls": response.tls}, keys={"secc": endpoint_key(host, response.port)})
            return SdpResponse(host, response.port, response.security, response.transport)
    finally:
        transport.close()
