"""TCP connections of a capture put back together: each side's bytes in order, once.

Sans-IO: :meth:`Reassembly.feed` takes the TCP segments in capture order and gives back what each
side sent, in sequence order, with the time of the segment that completed it. Retransmitted bytes
are given once; segments that arrive early wait for the gap to close; a gap the capture never
fills (the tap dropped a packet) is reported with its size when the connection ends, and what
follows it is given from there (the bytes are lost, the protocol above says what it makes of it).

The side that sent the SYN is the client. A connection whose start the capture missed takes the
endpoint with the higher port as the client (an ephemeral port against a service's).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.capture.packets import Segment

CLIENT = "client"
SERVER = "server"
#: bytes a side may have waiting behind a gap before the gap is given up on
MAX_OUT_OF_ORDER = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Endpoint:
    address: str
    port: int

    def __str__(self) -> str:
        return f"[{self.address}]:{self.port}" if ":" in self.address else f"{self.address}:{self.port}"


@dataclass
class _Side:
    base: int | None = None  # sequence number of the first byte
    delivered: int = 0  # bytes given out (relative to base)
    waiting: dict[int, tuple[float, bytes]] = field(default_factory=dict)
    finished: bool = False


@dataclass
class Connection:
    number: int
    client: Endpoint
    server: Endpoint
    opened: float
    sides: dict[str, _Side] = field(default_factory=lambda: {CLIENT: _Side(), SERVER: _Side()})
    #: the side that sent the first FIN: the one that closed
    first_fin: str | None = None

    def side_of(self, segment: Segment) -> str:
        return CLIENT if Endpoint(segment.src, segment.sport) == self.client else SERVER


@dataclass(frozen=True, slots=True)
class Data:
    connection: Connection
    side: str
    at: float
    data: bytes


@dataclass(frozen=True, slots=True)
class Opened:
    connection: Connection
    at: float


@dataclass(frozen=True, slots=True)
class Closed:
    connection: Connection
    at: float
    #: "fin", "rst" or "end of capture"
    how: str
    side: str


@dataclass(frozen=True, slots=True)
class Gap:
    connection: Connection
    side: str
    at: float
    missing: int


Output = Data | Opened | Closed | Gap


class Reassembly:
    def __init__(self) -> None:
        self._open: dict[tuple[Endpoint, Endpoint], Connection] = {}
        self._count = 0

    def feed(self, at: float, segment: Segment) -> list[Output]:
        a, b = Endpoint(segment.src, segment.sport), Endpoint(segment.dst, segment.dport)
        key = (a, b) if (a.address, a.port) <= (b.address, b.port) else (b, a)
        out: list[Output] = []
        connection = self._open.get(key)
        fresh_syn = segment.syn and not segment.ack
        if connection is not None and fresh_syn and connection.sides[CLIENT].base is not None \
                and (segment.seq + 1) % 2 ** 32 != connection.sides[CLIENT].base:
            out += self._close(connection, at, "fin", CLIENT)  # the port pair is used again
            connection = None
        if connection is None:
            if segment.rst or (not segment.payload and not segment.syn):
                return out
            self._count += 1
            if segment.syn:
                client, server = (a, b) if not segment.ack else (b, a)
            else:
                client, server = (a, b) if a.port >= b.port else (b, a)
            connection = Connection(self._count, client, server, at)
            self._open[key] = connection
            out.append(Opened(connection, at))
        side_name = connection.side_of(segment)
        side = connection.sides[side_name]
        if segment.syn:
            side.base = (segment.seq + 1) % 2 ** 32
            return out
        if side.base is None:
            side.base = segment.seq
        if segment.payload:
            out += self._deliver(connection, side_name, at, (segment.seq - side.base) % 2 ** 32, segment.payload)
        if segment.rst:
            out += self._close(connection, at, "rst", side_name)
        elif segment.fin:
            side.finished = True
            connection.first_fin = connection.first_fin or side_name
            if all(s.finished for s in connection.sides.values()):
                out += self._close(connection, at, "fin", connection.first_fin)
        return out

    def finish(self, at: float) -> list[Output]:
        """The end of the capture: what is still open closes, gaps are given up."""
        out: list[Output] = []
        for connection in list(self._open.values()):
            out += self._close(connection, at, "end of capture", connection.first_fin or CLIENT)
        return out

    def _deliver(self, connection: Connection, side_name: str, at: float, offset: int, payload: bytes) -> list:
        side = connection.sides[side_name]
        if offset > 2 ** 31:  # before what was delivered (wrapped): an old retransmission
            return []
        end = offset + len(payload)
        if end <= side.delivered:
            return []
        if offset > side.delivered:
            side.waiting[offset] = (at, payload)
            if sum(len(p) for _, p in side.waiting.values()) > MAX_OUT_OF_ORDER:
                return self._skip_gap(connection, side_name, at)
            return []
        out: list[Output] = [Data(connection, side_name, at, payload[side.delivered - offset:])]
        side.delivered = end
        return out + self._drain(connection, side_name)

    def _drain(self, connection: Connection, side_name: str) -> list[Output]:
        side = connection.sides[side_name]
        out: list[Output] = []
        while True:
            ready = [o for o in side.waiting if o <= side.delivered]
            if not ready:
                return out
            for offset in sorted(ready):
                stamp, payload = side.waiting.pop(offset)
                if offset + len(payload) > side.delivered:
                    out.append(Data(connection, side_name, stamp, payload[side.delivered - offset:]))
                    side.delivered = offset + len(payload)

    def _skip_gap(self, connection: Connection, side_name: str, at: float) -> list[Output]:
        side = connection.sides[side_name]
        if not side.waiting:
            return []
        first = min(side.waiting)
        missing = first - side.delivered
        side.delivered = first
        return [Gap(connection, side_name, at, missing), *self._drain(connection, side_name)]

    def _close(self, connection: Connection, at: float, how: str, side: str) -> list[Output]:
        out: list[Output] = []
        for name in connection.sides:
            while connection.sides[name].waiting:
                out += self._skip_gap(connection, name, at)
        key = next((k for k, c in self._open.items() if c is connection), None)
        if key is not None:
            del self._open[key]
        return out + [Closed(connection, at, how, side)]
