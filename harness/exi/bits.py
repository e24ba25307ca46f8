"""Bit-packed reading and writing (EXI 1.0 §7.1.9 with alignment bit-packed: most significant
bit first, no padding between items)."""

from __future__ import annotations

from harness.exi.errors import DecodeError

#: longest Unsigned Integer accepted (EXI 1.0 §7.1.6 requires values below 2**31; the schemas
#: need 64-bit values and X.509 serial numbers of up to 20 octets). The limit keeps hostile
#: input from building huge integers.
MAX_UNSIGNED_OCTETS = 64

#: inputs up to this many bytes are read from one Python integer (a shift and a mask per read);
#: longer ones through a window of the bytes around the position, so that reading stays linear
WHOLE_INPUT_LIMIT = 512


class BitReader:
    """Reads n-bit unsigned integers from a byte string.

    Every read checks the remaining length first, so a corrupt length prefix fails instead of
    over-reading or allocating.
    """

    __slots__ = ("data", "value", "size", "pos")

    def __init__(self, data: bytes, start_bit: int = 0):
        self.data = data
        self.value = int.from_bytes(data, "big") if len(data) <= WHOLE_INPUT_LIMIT else None
        self.size = len(data) * 8
        self.pos = start_bit

    def remaining(self) -> int:
        return self.size - self.pos

    def read(self, n: int) -> int:
        end = self.pos + n
        if end > self.size:
            raise DecodeError(f"truncated: {n} more bits needed, {self.size - self.pos} left",
                              self.pos)
        if self.value is not None:
            self.pos = end
            return (self.value >> (self.size - end)) & ((1 << n) - 1)
        first = self.pos >> 3
        last = (end + 7) >> 3
        self.pos = end
        return (int.from_bytes(self.data[first:last], "big") >> ((last << 3) - end)) \
            & ((1 << n) - 1)

    def read_bytes(self, count: int) -> bytes:
        """``count`` octets from the current (not necessarily byte-aligned) position."""
        if count * 8 > self.size - self.pos:
            raise DecodeError(f"length {count} exceeds the {(self.size - self.pos) // 8} bytes "
                              f"left", self.pos)
        start = self.pos >> 3
        shift = self.pos & 7
        self.pos += count * 8
        if not shift:
            return self.data[start:start + count]
        window = int.from_bytes(self.data[start:start + count + 1], "big")
        return ((window >> (8 - shift)) & ((1 << (count * 8)) - 1)).to_bytes(count, "big")

    def read_unsigned(self) -> int:
        """Unsigned Integer (EXI 1.0 §7.1.6): 7-bit groups, least significant first."""
        result = 0
        shift = 0
        while True:
            octet = self.read(8)
            result |= (octet & 0x7F) << shift
            if octet < 0x80:
                return result
            shift += 7
            if shift >= 7 * MAX_UNSIGNED_OCTETS:
                raise DecodeError(f"unsigned integer longer than {MAX_UNSIGNED_OCTETS} octets",
                                  self.pos)


class BitWriter:
    """Collects n-bit unsigned integers; whole bytes move to a bytearray as they fill up."""

    __slots__ = ("out", "acc", "count")

    def __init__(self):
        self.out = bytearray()
        self.acc = 0
        self.count = 0

    def write(self, value: int, n: int) -> None:
        self.acc = (self.acc << n) | value
        self.count += n
        if self.count > 512:
            self._flush()

    def _flush(self) -> None:
        keep = self.count & 7
        self.out += (self.acc >> keep).to_bytes(self.count >> 3, "big")
        self.acc &= (1 << keep) - 1
        self.count = keep

    def write_bytes(self, data: bytes) -> None:
        if self.count & 7 == 0:
            self._flush()
            self.out += data
        else:
            self.write(int.from_bytes(data, "big"), len(data) * 8)

    def write_unsigned(self, value: int) -> None:
        """Unsigned Integer (EXI 1.0 §7.1.6)."""
        if value < 0x80:
            self.write(value, 8)
            return
        octets = bytearray()
        while value >= 0x80:
            octets.append((value & 0x7F) | 0x80)
            value >>= 7
        octets.append(value)
        self.write_bytes(bytes(octets))

    def getvalue(self) -> bytes:
        """The bytes written so far, the last one padded with zero bits."""
        pad = -self.count & 7
        if pad:
            self.write(0, pad)
        self._flush()
        return bytes(self.out)
