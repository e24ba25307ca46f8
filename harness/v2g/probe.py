"""A V2G client that sends exactly what a test says: the EV side of negative test cases.

The EV emulator always follows the protocol (unless a fault plan says otherwise); a probe does
nothing by itself. A test opens one, makes the handshake, sends requests in any order with any
SessionID, malformed V2GTP headers or broken EXI, and looks at what the EVSE answers and whether
it closes the connection. Everything it sends and receives is on the timeline (observer ``ev``).
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from harness import exi
from harness.trace import Layer, Recorder
from harness.v2g import messages, recording, sap
from harness.v2g.machine import Received, Send
from harness.v2g.transport import ConnectionClosed, SocketFactory, V2gConnection, connect
from harness.v2g.v2gtp import HeaderError, PayloadType
from harness.v2g.v2gtp import encode as v2gtp_encode

SIDE = recording.EV


class _View:
    """What the recording helpers need to know of a session."""

    def __init__(self) -> None:
        self.protocol: sap.AppProtocol | None = None
        self.session_id: str | None = None
        self.evccid: str | None = None
        self.evse_id: str | None = None

    @property
    def family(self) -> str | None:
        return self.protocol.family if self.protocol else None


class V2gProbe:
    def __init__(self, recorder: Recorder, connection: V2gConnection) -> None:
        self.recorder = recorder
        self.connection = connection
        self.view = _View()

    @classmethod
    async def open(cls, recorder: Recorder, host: str, port: int, *, context: ssl.SSLContext | None = None,
                   timeout: float = 10.0, sockets: SocketFactory | None = None) -> "V2gProbe":
        connection = await connect(host, port, context=context, timeout=timeout,
                                   accepted=frozenset(int(p) for p in PayloadType), sockets=sockets)
        probe = cls(recorder, connection)
        recording.record(recorder, SIDE, "ProbeConnected", f"probe connected to [{host}]:{port}", probe.view,
                         payload={"tls": connection.tls_version})
        return probe

    @property
    def session_id(self) -> str | None:
        return self.view.session_id

    @property
    def family(self) -> str:
        return self.view.family or "iso2"

    async def handshake(self, *protocols: str) -> dict:
        """supportedAppProtocolReq offering ``protocols`` (most wanted first); the response."""
        offered = sap.offer(protocols)
        response = await self.exchange_message("supportedAppProtocolReq", sap.request(offered))
        if response is not None:
            try:
                self.view.protocol = sap.accepted(response, offered)
            except sap.NegotiationError:
                pass
        return response or {}

    def message(self, name: str, body: dict, *, session_id: str | None = None, timestamp: int | None = None) -> dict:
        sid = session_id if session_id is not None else (self.view.session_id or messages.NO_SESSION[self.family])
        if self.family == "iso20" and timestamp is None:
            import time
            timestamp = int(time.time())
        return messages.wrap(self.family, name, body, sid, timestamp=timestamp)

    async def request(self, name: str, body: dict, *, session_id: str | None = None,
                      timeout: float = 5.0) -> dict | None:
        """Send request ``name`` and return the response (None if the connection closed or
        nothing came within ``timeout``). A SessionSetupRes's SessionID is kept."""
        response = await self.exchange_message(name, self.message(name, body, session_id=session_id), timeout=timeout)
        if response is not None and messages.name_of(response) == "SessionSetupRes":
            self.view.session_id = messages.session_id_of(response)
            self.view.evse_id = messages.body_of(response).get("EVSEID")
        return response

    async def exchange_message(self, name: str, message: dict, *, timeout: float = 5.0,
                               unchecked: bool = False) -> dict | None:
        schema = messages.schema_of(self.family, name)
        data = (exi.encode_unchecked if unchecked else exi.encode)(message, schema)
        payload_type = messages.payload_type_of(self.family, name)
        await self.connection.send(payload_type, data)
        recording.record_message(self.recorder, SIDE, Send(name, message, data, payload_type, schema), self.view)
        return await self.response(timeout)

    async def send_raw(self, frame: bytes, what: str = "raw bytes") -> None:
        """Bytes as they are (a V2GTP header and payload of the test's making)."""
        await self.connection.send_raw(frame)
        self.recorder.emit(Layer.V2G, "ProbeRaw", f"probe sends {what}: {frame[:16].hex(' ').upper()}"
                           + (" ..." if len(frame) > 16 else ""), src=SIDE, dst="evse", observer=SIDE,
                           payload={"frame": frame.hex().upper()}, keys=recording.keys_of(self.view))

    async def send_exi(self, data: bytes, payload_type: int = PayloadType.EXI, what: str = "EXI") -> None:
        await self.send_raw(v2gtp_encode(payload_type, data), what)

    async def response(self, timeout: float = 5.0) -> dict | None:
        """The next message from the EVSE, decoded (None: closed, timed out or undecodable)."""
        try:
            item = await self.connection.receive(timeout)
        except (ConnectionClosed, TimeoutError, asyncio.TimeoutError):
            return None
        if isinstance(item, HeaderError):
            return None
        family = self.view.family
        try:
            schema, message = messages.decode(family, item.payload_type, item.payload)
        except exi.DecodeError:
            return None
        received = Received(messages.name_of(message), message, item.payload, item.payload_type, schema)
        recording.record_message(self.recorder, SIDE, received, self.view)
        return message

    async def closed_by_peer(self, timeout: float) -> bool:
        """Whether the EVSE closes the connection within ``timeout`` (reading anything that
        still comes)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            try:
                await self.connection.receive(remaining)
            except ConnectionClosed:
                return True
            except (TimeoutError, asyncio.TimeoutError):
                return False

    async def close(self) -> None:
        await self.connection.close()


def body(message: dict | None) -> dict[str, Any]:
    return messages.body_of(message) if message else {}


def code(message: dict | None) -> str | None:
    return body(message).get("ResponseCode") if message else None
