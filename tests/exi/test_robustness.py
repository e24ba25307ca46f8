"""Hostile input: garbage, truncated, over-long and mutated streams only ever raise DecodeError,
which says where (bit offset, element path) and why."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness import exi
from tests.exi.testdata import load_vectors, vector_ids

VECTORS = load_vectors()
EXAMPLES = int(os.environ.get("EXI_HYPOTHESIS_EXAMPLES", "10"))
FUZZ = settings(max_examples=EXAMPLES * 30, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def decode_or_error(data: bytes, schema: str, fragment: bool):
    """Decode; a DecodeError is an acceptable outcome, anything else fails the test."""
    try:
        return exi.decode(data, schema, fragment)
    except exi.DecodeError as error:
        # the public decode() turns an unexpected exception into this reason: a bug
        assert not error.reason.startswith("internal decoder error"), str(error)
        assert str(error).startswith("bit "), str(error)
        assert 0 <= error.bit <= len(data) * 8
        return None


@FUZZ
@given(data=st.binary(max_size=300), schema=st.sampled_from(exi.SCHEMAS),
       fragment=st.booleans())
def test_random_bytes_only_raise_decode_error(data, schema, fragment):
    decode_or_error(data, schema, fragment)


@FUZZ
@given(body=st.binary(max_size=300), schema=st.sampled_from(exi.SCHEMAS),
       fragment=st.booleans())
def test_random_bodies_after_a_valid_header_only_raise_decode_error(body, schema, fragment):
    decode_or_error(b"\x80" + body, schema, fragment)


def _mutate(data: bytes, kind: int, position: int, value: int) -> bytes:
    position %= len(data)
    if kind == 0:  # flip one bit
        return data[:position] + bytes([data[position] ^ (1 << (value % 8))]) + data[position + 1:]
    if kind == 1:  # replace a byte
        return data[:position] + bytes([value]) + data[position + 1:]
    if kind == 2:  # insert a byte
        return data[:position] + bytes([value]) + data[position:]
    if kind == 3:  # delete a byte
        return data[:position] + data[position + 1:]
    return data[:position]  # truncate


@FUZZ
@given(vector=st.sampled_from(VECTORS),
       mutations=st.lists(st.tuples(st.integers(0, 4), st.integers(0, 2**16), st.integers(0, 255)),
                          min_size=1, max_size=4),
       fragment=st.booleans())
def test_mutated_vectors_only_raise_decode_error(vector, mutations, fragment):
    data = bytes.fromhex(vector["hex"])
    for mutation in mutations:
        if data:
            data = _mutate(data, *mutation)
    decode_or_error(data, vector["schema"], fragment)


@pytest.mark.parametrize("vector", VECTORS, ids=vector_ids(VECTORS))
def test_every_truncation_of_a_vector_is_an_error(vector):
    data = bytes.fromhex(vector["hex"])
    for length in range(len(data)):
        with pytest.raises(exi.DecodeError):
            exi.decode(data[:length], vector["schema"])


@pytest.mark.parametrize("vector", VECTORS[:5], ids=vector_ids(VECTORS)[:5])
def test_bytes_after_the_document_are_an_error(vector):
    data = bytes.fromhex(vector["hex"]) + b"\x00"
    with pytest.raises(exi.DecodeError, match="1 bytes after the end of the document"):
        exi.decode(data, vector["schema"])


def test_empty_input_is_an_error():
    with pytest.raises(exi.DecodeError, match="empty input"):
        exi.decode(b"", "iso2")


@pytest.mark.parametrize("header", [b"\x00", b"\x81", b"\xa0", b"$EXI\x80"])
def test_other_headers_are_errors(header):
    with pytest.raises(exi.DecodeError, match="header"):
        exi.decode(header + b"\x00" * 4, "iso2")


def test_non_zero_padding_is_an_error():
    # supportedAppProtocolRes ends three bits into its last byte: 0x40 -> 0x41 sets padding
    with pytest.raises(exi.DecodeError, match="padding bits"):
        exi.decode(bytes.fromhex("80400041"), "sap")


def test_error_names_bit_offset_and_element_path():
    # the SessionSetupReq of the known vectors, cut inside EVCCID
    data = bytes.fromhex("809802000000000000000011d0184b88")
    with pytest.raises(exi.DecodeError) as caught:
        exi.decode(data, "iso2")
    error = caught.value
    assert error.path == ["V2G_Message", "Body", "SessionSetupReq", "EVCCID"]
    assert error.bit == 102
    assert str(error) == ("bit 102 in V2G_Message.Body.SessionSetupReq.EVCCID: binary length 6 "
                          "exceeds the 2 bytes left")


def test_length_prefix_beyond_the_input_is_an_error_not_an_allocation():
    # EVCCID (hexBinary) announcing 2**31 bytes: 5-octet Unsigned Integer 0x80 0x80 0x80 0x80 0x08
    prefix = bytes.fromhex("809802000000000000000011d0")  # ... up to EVCCID's CH event
    # the length of EVCCID starts at bit 102 (see the test above)
    bits = "".join(f"{b:08b}" for b in prefix)[:102] + "".join(
        f"{b:08b}" for b in (0x80, 0x80, 0x80, 0x80, 0x08))
    bits += "0" * (-len(bits) % 8)
    data = int(bits, 2).to_bytes(len(bits) // 8, "big")
    with pytest.raises(exi.DecodeError, match="length 2147483648 exceeds"):
        exi.decode(data, "iso2")


def test_endless_unsigned_integer_is_an_error():
    data = bytes.fromhex("809802") + b"\xff" * 2000
    with pytest.raises(exi.DecodeError, match="unsigned integer longer than"):
        exi.decode(data, "iso2")


def test_undeclared_element_is_reported_as_unsupported():
    # iso2 DocContent: 80 global elements, so code 80 (7 bits) is SE(*)
    data = bytes([0x80, 80 << 1, 0])
    with pytest.raises(exi.DecodeError, match=r"SE\(\*\)"):
        exi.decode(data, "iso2")


def test_unknown_schema_is_an_error():
    with pytest.raises(exi.DecodeError, match="unknown schema"):
        exi.decode(b"\x80", "iso15118-2")


def test_non_bytes_input_is_an_error():
    with pytest.raises(exi.DecodeError, match="expected bytes"):
        exi.decode("8098", "iso2")
