"""WebSocket connections read from a capture (RFC 6455), for OCPP-J.

Sans-IO: :class:`WebSocketStream` takes each side's bytes in order and gives back the opening
handshake (the request's path, which names the charging station in OCPP-J, and the subprotocol
the server chose) and every complete message with its time, unmasked, defragmented and, when the
handshake agreed on permessage-deflate (RFC 7692), inflated, honouring
``client_/server_no_context_takeover``. Control frames give the close code and reason.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

CLIENT = "client"
SERVER = "server"
#: the most an opening handshake may take before the stream is taken for something else
MAX_HANDSHAKE = 64 * 1024
#: the largest message put back together (OCPP messages are far smaller)
MAX_MESSAGE = 16 * 1024 * 1024


@dataclass(frozen=True)
class Opening:
    """The HTTP upgrade: request and answer."""

    at: float
    path: str
    #: the subprotocols the client offered, and the one the server chose
    offered: tuple[str, ...]
    chosen: str | None
    status: int | None
    #: HTTP Basic authentication was sent (the password itself is not given out)
    basic_auth: bool = False

    @property
    def station_id(self) -> str:
        """The last path segment, percent-decoded: OCPP-J's charging station identity."""
        return unquote(urlsplit(self.path).path.rstrip("/").rsplit("/", 1)[-1])


@dataclass(frozen=True)
class Message:
    side: str
    at: float
    text: bool
    data: bytes


@dataclass(frozen=True)
class Control:
    side: str
    at: float
    #: "close", "ping" or "pong"
    kind: str
    code: int | None = None
    reason: str = ""


@dataclass(frozen=True)
class Problem:
    side: str
    at: float
    summary: str


@dataclass
class _Side:
    buffer: bytearray = field(default_factory=bytearray)
    head: bytes | None = None  # the HTTP head, once complete
    parts: list[bytes] = field(default_factory=list)
    compressed: bool = False
    text: bool = False
    inflater: zlib._Decompress | None = None
    stopped: bool = False


class WebSocketStream:
    def __init__(self) -> None:
        self._sides = {CLIENT: _Side(), SERVER: _Side()}
        self.opening: Opening | None = None
        self._request: tuple[str, tuple[str, ...], bool] | None = None
        self._deflate = False
        self._no_takeover = {CLIENT: False, SERVER: False}

    def feed(self, side: str, at: float, data: bytes) -> list[Opening | Message | Control | Problem]:
        state = self._sides[side]
        if state.stopped:
            return []
        state.buffer += data
        out: list[Opening | Message | Control | Problem] = []
        if state.head is None:
            end = state.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(state.buffer) > MAX_HANDSHAKE:
                    state.stopped = True
                    out.append(Problem(side, at, f"{side}: no end of the HTTP head in {len(state.buffer)} bytes"))
                return out
            state.head = bytes(state.buffer[:end])
            del state.buffer[:end + 4]
            out += self._http(side, at, state.head)
        while not state.stopped and self.opening is not None and self.opening.status == 101:
            frame = self._frame(side, at)
            if frame is None:
                break
            out += frame
        return out

    def _http(self, side: str, at: float, head: bytes) -> list:
        lines = head.decode("latin-1").split("\r\n")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if side == CLIENT:
            parts = lines[0].split()
            path = parts[1] if len(parts) >= 2 else "/"
            offered = tuple(p.strip() for p in headers.get("sec-websocket-protocol", "").split(",") if p.strip())
            self._request = (path, offered, headers.get("authorization", "").lower().startswith("basic "))
            return []
        parts = lines[0].split()
        status = int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else None
        path, offered, basic = self._request or ("/", (), False)
        for extension in headers.get("sec-websocket-extensions", "").split(","):
            params = [p.strip().lower() for p in extension.split(";")]
            if params and params[0] == "permessage-deflate":
                self._deflate = True
                self._no_takeover = {CLIENT: "client_no_context_takeover" in params,
                                     SERVER: "server_no_context_takeover" in params}
        self.opening = Opening(at, path, offered, headers.get("sec-websocket-protocol") or None, status, basic)
        out: list = [self.opening]
        if status == 101:  # the client's frames may already be waiting
            client = self._sides[CLIENT]
            while not client.stopped:
                frame = self._frame(CLIENT, at)
                if frame is None:
                    break
                out += frame
        return out

    def _frame(self, side: str, at: float) -> list | None:
        state = self._sides[side]
        buffer = state.buffer
        if state.head is None or len(buffer) < 2:
            return None
        first, second = buffer[0], buffer[1]
        length, offset = second & 0x7F, 2
        if length == 126:
            if len(buffer) < 4:
                return None
            length, offset = int.from_bytes(buffer[2:4], "big"), 4
        elif length == 127:
            if len(buffer) < 10:
                return None
            length, offset = int.from_bytes(buffer[2:10], "big"), 10
        if length > MAX_MESSAGE:
            state.stopped = True
            return [Problem(side, at, f"{side}: a frame of {length} bytes announced; the rest of this direction "
                                      f"is not read")]
        masked = bool(second & 0x80)
        key = b""
        if masked:
            if len(buffer) < offset + 4:
                return None
            key, offset = bytes(buffer[offset:offset + 4]), offset + 4
        if len(buffer) < offset + length:
            return None
        payload = bytes(buffer[offset:offset + length])
        del buffer[:offset + length]
        if masked and payload:
            mask = (key * (length // 4 + 1))[:length]
            payload = (int.from_bytes(payload, "big") ^ int.from_bytes(mask, "big")).to_bytes(length, "big")
        opcode, final = first & 0x0F, bool(first & 0x80)
        if opcode >= 0x8:
            return [self._control(side, at, opcode, payload)]
        if opcode in (0x1, 0x2):
            state.parts, state.text, state.compressed = [], opcode == 0x1, bool(first & 0x40) and self._deflate
        elif opcode != 0x0:
            return [Problem(side, at, f"{side}: a frame with opcode 0x{opcode:X}, which RFC 6455 does not define")]
        state.parts.append(payload)
        if not final:
            return []
        data = b"".join(state.parts)
        state.parts = []
        if state.compressed:
            try:
                data = self._inflate(side, data)
            except zlib.error as exc:
                state.stopped = True
                return [Problem(side, at, f"{side}: a compressed message does not inflate ({exc}); the rest of "
                                          "this direction is not read")]
        return [Message(side, at, state.text, data)]

    def _inflate(self, side: str, data: bytes) -> bytes:
        state = self._sides[side]
        if state.inflater is None or self._no_takeover[side]:
            state.inflater = zlib.decompressobj(-15)
        return state.inflater.decompress(data + b"\x00\x00\xff\xff", MAX_MESSAGE)

    def _control(self, side: str, at: float, opcode: int, payload: bytes) -> Control:
        if opcode == 0x8:
            self._sides[side].stopped = True
            code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
            return Control(side, at, "close", code, payload[2:].decode("utf-8", "replace"))
        return Control(side, at, "ping" if opcode == 0x9 else "pong" if opcode == 0xA else f"0x{opcode:X}")
