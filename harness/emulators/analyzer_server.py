"""The simulated analyzer on a real TCP socket: a thin asyncio adapter around SimulatedAnalyzer.

One program message per line (LF, a CR before it is ignored); each response message goes back
with the dialect's terminator. The harness reaches it with pyvisa-py as
``TCPIP::127.0.0.1::<port>::SOCKET``, exactly like a LAN instrument. For fault tests the server can
go silent, answer garbage or drop every connection.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Callable

from harness.emulators.analyzer import SimulatedAnalyzer

TERMINATORS = {"wt": b"\n", "hioki": b"\r\n"}
MAX_LINE = 64 * 1024
#: seconds a client may stay without sending a complete message before its connection is closed
IDLE_TIMEOUT_S = 300.0


class AnalyzerServer:
    def __init__(self, analyzer: SimulatedAnalyzer, *, host: str = "127.0.0.1", port: int = 0,
                 on_message: Callable[[str, str | None], None] | None = None,
                 idle_timeout: float = IDLE_TIMEOUT_S) -> None:
        self.analyzer = analyzer
        #: a connection without a complete message for this long is closed (the harness's own
        #: sampler asks every fraction of a second; a client that went away does not hold a slot)
        self.idle_timeout = idle_timeout
        self.host = host
        self.port = port
        self.on_message = on_message
        #: None, "silent" (read but never answer), "garbage" (answer bytes that are not a reply)
        self.fault: str | None = None
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def resource(self) -> str:
        return f"TCPIP::{self.host}::{self.port}::SOCKET"

    async def start(self) -> "AnalyzerServer":
        self._server = await asyncio.start_server(self._serve, self.host, self.port, limit=MAX_LINE)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        terminator = TERMINATORS[self.analyzer.dialect]
        try:
            while True:
                try:
                    async with asyncio.timeout(self.idle_timeout):
                        line = await reader.readuntil(b"\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, TimeoutError):
                    return
                message = line.decode("ascii", errors="replace").strip()
                if not message:
                    continue
                response = self.analyzer.handle(message)
                if self.on_message is not None:
                    self.on_message(message, response)
                if self.fault == "silent":
                    continue
                if self.fault == "garbage" and response is not None:
                    writer.write(b"\x15?#garbage&%\xfe" + terminator)
                elif response is not None:
                    writer.write(response.encode("ascii") + terminator)
                await writer.drain()
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def drop_connections(self) -> int:
        """Close every client connection (the server keeps listening); returns how many."""
        writers = list(self._writers)
        for writer in writers:
            writer.close()
        for writer in writers:
            with contextlib.suppress(Exception):
                await writer.wait_closed()
        return len(writers)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self.drop_connections()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None
