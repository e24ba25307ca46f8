"""Hostile clients the robustness tests share."""

from __future__ import annotations

import asyncio
import socket


async def silent_connections(host: str, port: int, count: int, *,
                             burst: bool = False) -> tuple[list[asyncio.StreamWriter], int]:
    """Open ``count`` TCP connections that never send a byte; returns their writers (close them)
    and how many of them the server closed at once. ``burst``: all connected at once, without
    letting the event loop run between them (the server then finds them all in its backlog)."""
    if burst:
        sockets = [socket.create_connection((host, port)) for _ in range(count)]
        opened = [await asyncio.open_connection(sock=sock) for sock in sockets]
    else:
        opened = [await asyncio.open_connection(host, port) for _ in range(count)]
    await asyncio.sleep(0.3)
    dropped = 0
    for reader, _ in opened:
        try:
            async with asyncio.timeout(0.2):
                dropped += await reader.read(1) == b""
        except TimeoutError:
            pass
    return [writer for _, writer in opened], dropped
