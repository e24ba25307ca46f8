"""V2GTP, the V2G transfer protocol: the 8-byte header in front of every SDP and EXI payload.

    | version 0x01 | inverse 0xFE | payload type (2 bytes) | payload length (4 bytes) | payload |

(ISO 15118-2 7.8.3, -20 7.8.3, DIN 70121 8.7.3; all big-endian.) The payload types of the
table below say what a payload is; -20 adds one per schema so a receiver knows which grammar
decodes it (EVerest's libcbv2g and dSPACE's dissector agree on the values).

:class:`V2gtpReader` is a sans-IO stream parser: bytes in, :class:`V2gtpMessage` or
:class:`HeaderError` out. What a receiver does about a bad header is the standards' rule, one
place: the V2GTP entity ignores a message whose header it does not accept (wrong version or
inverse version, a payload type it does not support, a length beyond what it can receive;
ISO 15118-20 7.8.3.3 "V2GTP generic header handler", ISO 15118-2 7.8.3.2 Figure 11). On a TCP
stream a message cannot be skipped without trusting its length, so after a bad version the
stream has lost its framing and the connection is closed: :attr:`HeaderError.close` says so.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

VERSION = 0x01
INVERSE_VERSION = 0xFE
HEADER_LENGTH = 8
#: the largest payload the harness accepts unless told otherwise: a -2 CertificateInstallationRes
#: with full chains is a few kB; this leaves room for -20's and for deliberately large ones
DEFAULT_MAX_PAYLOAD = 64 * 1024

_HEADER = struct.Struct(">BBHI")


class PayloadType(enum.IntEnum):
    """V2GTP payload types (ISO 15118-2 Table 10, -20 Table 13)."""

    EXI = 0x8001                      # SAP, DIN 70121, ISO 15118-2 (-20: SAP only)
    ISO20_MAIN = 0x8002               # ISO 15118-20 CommonMessages
    ISO20_AC = 0x8003
    ISO20_DC = 0x8004
    ISO20_ACDP = 0x8005
    ISO20_WPT = 0x8006
    ISO20_SCHEDULE_RENEGOTIATION = 0x8101
    ISO20_METERING_CONFIRMATION = 0x8102
    ISO20_ACDP_SYSTEM_STATUS = 0x8103
    ISO20_PARKING_STATUS = 0x8104
    SDP_REQUEST = 0x9000
    SDP_RESPONSE = 0x9001
    SDP_REQUEST_WIRELESS = 0x9002
    SDP_RESPONSE_WIRELESS = 0x9003


#: the payload type of each EXI schema's messages on the wire
SCHEMA_PAYLOAD_TYPES: dict[str, PayloadType] = {
    "sap": PayloadType.EXI,
    "din": PayloadType.EXI,
    "iso2": PayloadType.EXI,
    "iso20": PayloadType.ISO20_MAIN,
    "iso20-ac": PayloadType.ISO20_AC,
    "iso20-dc": PayloadType.ISO20_DC,
    "iso20-acdp": PayloadType.ISO20_ACDP,
    "iso20-wpt": PayloadType.ISO20_WPT,
}


@dataclass(frozen=True, slots=True)
class V2gtpMessage:
    payload_type: int
    payload: bytes

    def frame(self) -> bytes:
        return encode(self.payload_type, self.payload)


@dataclass(frozen=True, slots=True)
class HeaderError:
    """A header the receiver does not accept. ``close``: the stream cannot be resynchronised
    (the connection must go); otherwise the message was skipped and reading goes on."""

    reason: str
    header: bytes
    close: bool

    def __str__(self) -> str:
        return f"V2GTP header {self.header.hex(' ').upper()}: {self.reason}"


def encode(payload_type: int, payload: bytes, *, version: int = VERSION,
           inverse: int | None = None, length: int | None = None) -> bytes:
    """A V2GTP frame. ``version``, ``inverse`` and ``length`` other than the true values exist
    for negative tests (a malformed header on purpose)."""
    inverse = (version ^ 0xFF) if inverse is None else inverse
    return _HEADER.pack(version, inverse, payload_type, len(payload) if length is None else length) + payload


def parse_header(header: bytes) -> tuple[int, int, int, int]:
    """(version, inverse version, payload type, payload length) of an 8-byte header."""
    if len(header) != HEADER_LENGTH:
        raise ValueError(f"a V2GTP header is {HEADER_LENGTH} bytes, not {len(header)}")
    return _HEADER.unpack(header)


def check_header(header: bytes, accepted: frozenset[int] | set[int], max_payload: int) -> str | None:
    """Why ``header`` is not acceptable, or None. The order is that of the generic header
    handler: version, payload type, length."""
    version, inverse, payload_type, length = parse_header(header)
    if version != VERSION or inverse != INVERSE_VERSION:
        return (f"protocol version 0x{version:02X} / inverse 0x{inverse:02X} "
                f"(expected 0x{VERSION:02X} / 0x{INVERSE_VERSION:02X})")
    if payload_type not in accepted:
        return f"payload type 0x{payload_type:04X} not supported here"
    if length > max_payload:
        return f"payload length {length} exceeds the {max_payload} bytes this receiver accepts"
    return None


class V2gtpReader:
    """Reassembles V2GTP messages from a byte stream (TCP, TLS) or checks datagrams (UDP).

    ``accepted`` are the payload types this receiver supports; a message of another type is
    skipped (its length is trusted since version and inverse were right) and reported.
    """

    def __init__(self, accepted: frozenset[int] | set[int] | None = None, *,
                 max_payload: int = DEFAULT_MAX_PAYLOAD) -> None:
        self.accepted = frozenset(accepted) if accepted is not None else frozenset(int(p) for p in PayloadType)
        self.max_payload = max_payload
        self._buffer = bytearray()
        self._skip = 0
        self.broken = False  # framing lost after a bad version: nothing more is read

    def feed(self, data: bytes) -> list[V2gtpMessage | HeaderError]:
        """Everything complete in the stream so far, in order."""
        if self.broken:
            return []
        self._buffer += data
        out: list[V2gtpMessage | HeaderError] = []
        while True:
            if self._skip:
                dropped = min(self._skip, len(self._buffer))
                del self._buffer[:dropped]
                self._skip -= dropped
                if self._skip:
                    return out
            if len(self._buffer) < HEADER_LENGTH:
                return out
            header = bytes(self._buffer[:HEADER_LENGTH])
            version, inverse, payload_type, length = parse_header(header)
            problem = check_header(header, self.accepted, self.max_payload)
            if problem is not None:
                framing_lost = version != VERSION or inverse != INVERSE_VERSION or length > self.max_payload
                out.append(HeaderError(problem, header, close=framing_lost))
                if framing_lost:
                    self.broken = True
                    self._buffer.clear()
                    return out
                del self._buffer[:HEADER_LENGTH]
                self._skip = length
                continue
            if len(self._buffer) < HEADER_LENGTH + length:
                return out
            payload = bytes(self._buffer[HEADER_LENGTH:HEADER_LENGTH + length])
            del self._buffer[:HEADER_LENGTH + length]
            out.append(V2gtpMessage(payload_type, payload))

    @property
    def pending(self) -> int:
        """Bytes received that do not make a whole message yet (what a closed stream cut off)."""
        return len(self._buffer)


def read_datagram(datagram: bytes, accepted: frozenset[int] | set[int],
                  max_payload: int = DEFAULT_MAX_PAYLOAD) -> V2gtpMessage | HeaderError:
    """One UDP datagram (SDP) as a message, or why it is ignored: a datagram is one message,
    so its length must match the header's payload length exactly."""
    if len(datagram) < HEADER_LENGTH:
        return HeaderError(f"datagram of {len(datagram)} bytes is shorter than a V2GTP header",
                           datagram, close=False)
    header = datagram[:HEADER_LENGTH]
    problem = check_header(header, accepted, max_payload)
    if problem is not None:
        return HeaderError(problem, header, close=False)
    _, _, payload_type, length = parse_header(header)
    if len(datagram) - HEADER_LENGTH != length:
        return HeaderError(f"payload length {length} but the datagram carries "
                           f"{len(datagram) - HEADER_LENGTH} bytes", header, close=False)
    return V2gtpMessage(payload_type, datagram[HEADER_LENGTH:])
