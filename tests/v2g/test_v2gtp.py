"""V2GTP framing: the header, stream reassembly and the reaction to headers a receiver rejects."""

from __future__ import annotations

import pytest

from harness.v2g.v2gtp import (
    HeaderError,
    PayloadType,
    V2gtpMessage,
    V2gtpReader,
    check_header,
    encode,
    parse_header,
    read_datagram,
)

EXI = bytes.fromhex("80400040")


def test_header_layout_is_version_inverse_type_length_big_endian():
    frame = encode(PayloadType.EXI, EXI)
    assert frame[:8] == bytes.fromhex("01FE800100000004")
    assert frame[8:] == EXI
    assert parse_header(frame[:8]) == (0x01, 0xFE, 0x8001, 4)


def test_iso20_payload_types_are_the_standards():
    assert [int(p) for p in (PayloadType.ISO20_MAIN, PayloadType.ISO20_AC, PayloadType.ISO20_DC)] == [
        0x8002, 0x8003, 0x8004]
    assert (PayloadType.SDP_REQUEST, PayloadType.SDP_RESPONSE) == (0x9000, 0x9001)


def test_a_message_arriving_byte_by_byte_is_reassembled():
    reader = V2gtpReader()
    frame = encode(PayloadType.EXI, EXI) + encode(PayloadType.ISO20_DC, b"\x80\x01\x02")
    out = []
    for byte in frame:
        out += reader.feed(bytes([byte]))
    assert out == [V2gtpMessage(0x8001, EXI), V2gtpMessage(0x8004, b"\x80\x01\x02")]
    assert reader.pending == 0


def test_two_messages_in_one_segment_come_out_in_order():
    reader = V2gtpReader()
    out = reader.feed(encode(PayloadType.EXI, b"\x01") + encode(PayloadType.EXI, b"\x02"))
    assert [m.payload for m in out] == [b"\x01", b"\x02"]


@pytest.mark.parametrize("version, inverse", [(0x02, 0xFD), (0x01, 0xFF), (0x00, 0x00)])
def test_a_wrong_version_loses_the_framing_and_closes(version, inverse):
    reader = V2gtpReader()
    out = reader.feed(encode(PayloadType.EXI, EXI, version=version, inverse=inverse) + encode(PayloadType.EXI, EXI))
    assert len(out) == 1 and isinstance(out[0], HeaderError) and out[0].close
    assert "protocol version" in out[0].reason
    assert reader.feed(encode(PayloadType.EXI, EXI)) == []  # nothing is read after that


def test_an_unsupported_payload_type_is_skipped_and_reading_goes_on():
    reader = V2gtpReader({PayloadType.EXI})
    out = reader.feed(encode(0x8004, b"\xAA" * 5) + encode(PayloadType.EXI, EXI))
    assert isinstance(out[0], HeaderError) and not out[0].close
    assert "0x8004 not supported" in out[0].reason
    assert out[1] == V2gtpMessage(0x8001, EXI)


def test_a_payload_longer_than_the_receiver_accepts_closes():
    reader = V2gtpReader(max_payload=100)
    out = reader.feed(encode(PayloadType.EXI, b"", length=101))
    assert isinstance(out[0], HeaderError) and out[0].close and "exceeds" in out[0].reason


def test_header_checks_run_in_the_standards_order():
    # version first, then payload type, then length ([V2G20-090], [V2G20-092], [V2G20-094])
    header = encode(0x1234, b"", version=0x02, length=10**6)[:8]
    assert "version" in check_header(header, {0x8001}, 100)
    header = encode(0x1234, b"", length=10**6)[:8]
    assert "payload type" in check_header(header, {0x8001}, 100)


def test_datagrams_must_carry_exactly_the_announced_length():
    good = encode(PayloadType.SDP_REQUEST, b"\x10\x00")
    assert read_datagram(good, {PayloadType.SDP_REQUEST}) == V2gtpMessage(0x9000, b"\x10\x00")
    short = good[:-1]
    assert "datagram carries 1 bytes" in read_datagram(short, {PayloadType.SDP_REQUEST}).reason
    assert "shorter than a V2GTP header" in read_datagram(b"\x01\xfe", {PayloadType.SDP_REQUEST}).reason


def test_v2g_connections_send_each_message_at_once():
    """TCP_NODELAY on both ends of a V2G connection (the SECC's accepted socket and the EV's):
    each charge-loop message must leave when written, not wait for the peer's delayed ACK."""
    import asyncio
    import socket

    from harness.v2g.transport import connect, listen

    async def scenario() -> None:
        seen: list[int] = []

        async def handler(connection) -> None:
            sock = connection.writer.get_extra_info("socket")
            seen.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

        listener = await listen("::1", 0, handler)
        try:
            ev = await connect("::1", listener.port)
            try:
                await asyncio.sleep(0.05)
                assert ev.writer.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            finally:
                await ev.close()
        finally:
            await listener.close()
        assert seen == [1]

    asyncio.run(scenario())
