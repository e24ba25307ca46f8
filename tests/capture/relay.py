"""A TCP relay that writes what passes through it as a pcap, for tests without root.

Real clients and servers (OpenSSL's TLS, the websockets library, the harness's CSMS) talk
through it; every chunk each side sends becomes TCP segments of at most :data:`MSS` bytes with
consistent sequence numbers, between two made-up addresses, after a SYN handshake and before a
FIN each way. ``disorder=True`` writes each chunk's segments in reverse order and repeats the
first one, as a tap sees retransmissions and reordering.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path

from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

from harness.trace.pcap import PcapWriter

MSS = 1400


class RecordingRelay:
    def __init__(self, target: tuple[str, int], pcap: Path, *, ipv6: bool = False, disorder: bool = False,
                 addresses: tuple[str, str] | None = None, server_port: int | None = None) -> None:
        self.target = target
        self.writer = PcapWriter(pcap)
        self.ipv6 = ipv6
        self.disorder = disorder
        self.addresses = addresses or (("fd00::1", "fd00::2") if ipv6 else ("10.0.0.1", "10.0.0.2"))
        self.server_port = server_port or target[1]
        self._client_ports = itertools.count(40000)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            await task
        self.writer.close()

    def _packet(self, from_client: bool, port: int, seq: int, ack: int, flags: str, payload: bytes = b"") -> None:
        client, server = self.addresses
        src, dst = (client, server) if from_client else (server, client)
        sport, dport = (port, self.server_port) if from_client else (self.server_port, port)
        ip = IPv6(src=src, dst=dst) if self.ipv6 else IP(src=src, dst=dst)
        frame = Ether(src="02:00:00:00:00:01" if from_client else "02:00:00:00:00:02",
                      dst="02:00:00:00:00:02" if from_client else "02:00:00:00:00:01") / ip / TCP(
            sport=sport, dport=dport, seq=seq % 2 ** 32, ack=ack % 2 ** 32, flags=flags) / payload
        self.writer.write(time.time_ns(), bytes(frame))

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        port = next(self._client_ports)
        seqs = {True: 1_000_000, False: 4_294_000_000}  # the server's wraps around 2^32
        self._packet(True, port, seqs[True] - 1, 0, "S")
        self._packet(False, port, seqs[False] - 1, seqs[True], "SA")
        self._packet(True, port, seqs[True], seqs[False], "A")
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter, from_client: bool) -> None:
            while data := await source.read(65536):
                segments = []
                for offset in range(0, len(data), MSS):
                    segments.append((seqs[from_client] + offset, data[offset:offset + MSS]))
                if self.disorder and len(segments) > 1:
                    segments = [*reversed(segments), segments[-1]]
                elif self.disorder:
                    segments = segments * 2
                for seq, chunk in segments:
                    self._packet(from_client, port, seq, seqs[not from_client], "PA", chunk)
                seqs[from_client] += len(data)
                sink.write(data)
                await sink.drain()
            self._packet(from_client, port, seqs[from_client], seqs[not from_client], "FA")
            seqs[from_client] += 1
            if sink.can_write_eof():
                sink.write_eof()

        try:
            await asyncio.gather(pump(reader, upstream_writer, True), pump(upstream_reader, writer, False))
        except (ConnectionError, OSError):
            pass
        finally:
            for w in (writer, upstream_writer):
                w.close()
        self._tasks.discard(task)
