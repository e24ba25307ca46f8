"""Packets of a capture file: pcap or pcapng, from any tool, down to Ethernet frames, IP
datagrams and their TCP or UDP segments.

:func:`read_capture` yields every packet with its time and number (1-based, as Wireshark counts)
whatever the file's byte order, time resolution or link type (Ethernet, Linux cooked v1 and v2
as ``tcpdump -i any`` writes, raw IP, BSD loopback). :func:`dissect` finds the IPv4 or IPv6
datagram in a packet and its TCP or UDP header. A file that is cut short or broken ends the
reading with a :class:`CaptureError` that names the file and the byte offset, after the packets
before it were given out.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
ETH_P_VLAN = (0x8100, 0x88A8)
TCP = 6
UDP = 17

LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = (12, 14, 101)
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276


class CaptureError(ValueError):
    """A capture file that cannot be read on; the message says which and where."""


@dataclass(frozen=True, slots=True)
class Packet:
    number: int
    at: float
    linktype: int
    data: bytes

    @property
    def ethernet(self) -> bytes | None:
        """The whole Ethernet frame, when the capture kept it (link type Ethernet)."""
        return self.data if self.linktype == LINKTYPE_ETHERNET and len(self.data) >= 14 else None


@dataclass(frozen=True, slots=True)
class Segment:
    """A TCP segment or UDP datagram, with the addresses it travelled between."""

    protocol: int
    src: str
    dst: str
    sport: int
    dport: int
    payload: bytes
    #: TCP only: sequence number and flags
    seq: int = 0
    flags: int = 0

    @property
    def syn(self) -> bool:
        return bool(self.flags & 0x02)

    @property
    def ack(self) -> bool:
        return bool(self.flags & 0x10)

    @property
    def fin(self) -> bool:
        return bool(self.flags & 0x01)

    @property
    def rst(self) -> bool:
        return bool(self.flags & 0x04)


def read_capture(path: Path) -> Iterator[Packet]:
    """Every packet of a pcap or pcapng file."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise CaptureError(f"{path}: {exc.strerror or exc}") from None
    if len(data) < 4:
        raise CaptureError(f"{path}: {len(data)} bytes, not a capture file")
    if data[:4] == b"\x0a\x0d\x0d\x0a":
        yield from _pcapng(path, data)
    else:
        yield from _pcap(path, data)


def _pcap(path: Path, data: bytes) -> Iterator[Packet]:
    magics = {0xA1B2C3D4: 1e-6, 0xA1B23C4D: 1e-9}
    for order in "<>":
        magic = struct.unpack(order + "I", data[:4])[0]
        if magic in magics:
            scale = magics[magic]
            break
    else:
        raise CaptureError(f"{path}: neither pcap nor pcapng (magic {data[:4].hex()})")
    if len(data) < 24:
        raise CaptureError(f"{path}: the pcap header is cut short")
    linktype = struct.unpack(order + "I", data[20:24])[0] & 0x0FFFFFFF
    offset, number = 24, 0
    while offset < len(data):
        if offset + 16 > len(data):
            raise CaptureError(f"{path}: packet {number + 1} at byte {offset}: its record header is cut short")
        seconds, fraction, length, _ = struct.unpack(order + "IIII", data[offset:offset + 16])
        if offset + 16 + length > len(data):
            raise CaptureError(f"{path}: packet {number + 1} at byte {offset}: {length} bytes announced, "
                               f"{len(data) - offset - 16} left in the file")
        number += 1
        yield Packet(number, seconds + fraction * scale, linktype, data[offset + 16:offset + 16 + length])
        offset += 16 + length


def _pcapng(path: Path, data: bytes) -> Iterator[Packet]:
    offset, number = 0, 0
    order = "<"
    interfaces: list[tuple[int, float]] = []  # (link type, seconds per timestamp unit) per section
    while offset < len(data):
        if offset + 12 > len(data):
            raise CaptureError(f"{path}: block at byte {offset} is cut short")
        kind = struct.unpack(order + "I", data[offset:offset + 4])[0]
        if data[offset:offset + 4] == b"\x0a\x0d\x0d\x0a":  # section header: its own byte order
            magic = data[offset + 8:offset + 12]
            order = "<" if magic == b"\x4d\x3c\x2b\x1a" else ">" if magic == b"\x1a\x2b\x3c\x4d" else ""
            if not order:
                raise CaptureError(f"{path}: section header at byte {offset} has no byte-order magic")
            interfaces = []
            kind = 0x0A0D0D0A
        length = struct.unpack(order + "I", data[offset + 4:offset + 8])[0]
        if length < 12 or length % 4 or offset + length > len(data):
            raise CaptureError(f"{path}: block at byte {offset} has length {length}")
        body = data[offset + 8:offset + length - 4]
        if kind == 1:  # interface description
            linktype = struct.unpack(order + "H", body[0:2])[0]
            interfaces.append((linktype, _resolution(body[8:], order)))
        elif kind in (6, 3, 2):  # enhanced, simple, obsolete packet block
            if kind == 3:
                interface, stamp, captured = 0, None, struct.unpack(order + "I", body[0:4])[0]
                captured = min(captured, len(body) - 4)
                packet = body[4:4 + captured]
            else:
                if kind == 6:
                    interface, high, low, captured = struct.unpack(order + "IIII", body[0:16])
                else:
                    interface, _, high, low, captured = struct.unpack(order + "HHIII", body[0:16])
                stamp = (high << 32) | low
                packet = body[20:20 + captured]
            if interface >= len(interfaces):
                raise CaptureError(f"{path}: packet block at byte {offset} names interface {interface}, "
                                   f"which the file did not describe")
            linktype, unit = interfaces[interface]
            number += 1
            yield Packet(number, stamp * unit if stamp is not None else 0.0, linktype, packet)
        offset += length


def _resolution(options: bytes, order: str) -> float:
    """Seconds per timestamp unit from an interface's options (if_tsresol; default microseconds)."""
    offset = 0
    while offset + 4 <= len(options):
        code, length = struct.unpack(order + "HH", options[offset:offset + 4])
        if code == 0:
            break
        if code == 9 and length >= 1:
            value = options[offset + 4]
            return 2.0 ** -(value & 0x7F) if value & 0x80 else 10.0 ** -value
        offset += 4 + length + (-length % 4)
    return 1e-6


def network_layer(packet: Packet) -> tuple[int, bytes] | None:
    """(ethertype, payload) of a packet: what its link layer carries."""
    data, linktype = packet.data, packet.linktype
    if linktype == LINKTYPE_ETHERNET:
        if len(data) < 14:
            return None
        ethertype, offset = int.from_bytes(data[12:14], "big"), 14
        while ethertype in ETH_P_VLAN and len(data) >= offset + 4:
            ethertype, offset = int.from_bytes(data[offset + 2:offset + 4], "big"), offset + 4
        return ethertype, data[offset:]
    if linktype == LINKTYPE_LINUX_SLL and len(data) >= 16:
        return int.from_bytes(data[14:16], "big"), data[16:]
    if linktype == LINKTYPE_LINUX_SLL2 and len(data) >= 20:
        return int.from_bytes(data[0:2], "big"), data[20:]
    if linktype in (LINKTYPE_NULL, LINKTYPE_LOOP) and len(data) >= 4:
        family = data[0] if data[0] else data[3]  # host byte order of the writer
        return (ETH_P_IP if family == 2 else ETH_P_IPV6 if family in (10, 24, 28, 30) else 0), data[4:]
    if linktype in (*LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6) and data:
        return (ETH_P_IP if data[0] >> 4 == 4 else ETH_P_IPV6), data
    return None


def dissect(packet: Packet) -> Segment | None:
    """The TCP segment or UDP datagram a packet carries (None for anything else, and for
    fragments: the protocols here never need IP fragmentation)."""
    found = network_layer(packet)
    if found is None:
        return None
    ethertype, data = found
    if ethertype == ETH_P_IP and len(data) >= 20 and data[0] >> 4 == 4:
        header = (data[0] & 0x0F) * 4
        total = int.from_bytes(data[2:4], "big")
        if int.from_bytes(data[6:8], "big") & 0x3FFF:  # more fragments, or an offset
            return None
        protocol = data[9]
        src, dst = str(ipaddress.IPv4Address(data[12:16])), str(ipaddress.IPv4Address(data[16:20]))
        body = data[header:total if total >= header else len(data)]
    elif ethertype == ETH_P_IPV6 and len(data) >= 40 and data[0] >> 4 == 6:
        protocol = data[6]
        src, dst = str(ipaddress.IPv6Address(data[8:24])), str(ipaddress.IPv6Address(data[24:40]))
        body = data[40:40 + int.from_bytes(data[4:6], "big")]
        while protocol in (0, 43, 60) and len(body) >= 8:  # hop-by-hop, routing, destination options
            protocol, body = body[0], body[(body[1] + 1) * 8:]
        if protocol == 44:  # a fragment
            return None
    else:
        return None
    if protocol == UDP and len(body) >= 8:
        sport, dport, length = struct.unpack(">HHH", body[:6])
        return Segment(UDP, src, dst, sport, dport, body[8:length] if length >= 8 else body[8:])
    if protocol == TCP and len(body) >= 20:
        sport, dport, seq = struct.unpack(">HHI", body[:8])
        offset = (body[12] >> 4) * 4
        return Segment(TCP, src, dst, sport, dport, body[offset:], seq=seq, flags=body[13])
    return None
