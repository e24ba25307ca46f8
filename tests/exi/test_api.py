"""The public API of harness.exi: its documented example, schemas and error types."""

from __future__ import annotations

import doctest

import pytest

import harness.exi
from harness import exi


def test_module_example_runs():
    result = doctest.testmod(harness.exi)
    assert result.attempted > 0 and result.failed == 0


def test_errors_share_one_base_that_is_a_value_error():
    assert issubclass(exi.DecodeError, exi.ExiError)
    assert issubclass(exi.EncodeError, exi.ExiError)
    assert issubclass(exi.ExiError, ValueError)


@pytest.mark.parametrize("schema", exi.SCHEMAS)
def test_every_schema_has_grammars(schema):
    with pytest.raises(exi.DecodeError, match="truncated"):
        exi.decode(b"\x80", schema)


def test_unknown_schema_on_encode():
    with pytest.raises(exi.EncodeError, match="unknown schema 'iso15118-20'"):
        exi.encode({}, "iso15118-20")


def test_surrogates_are_rejected_when_encoding():
    message = {"supportedAppProtocolReq": {"AppProtocol": [{
        "ProtocolNamespace": "urn:\ud800", "VersionNumberMajor": 1, "VersionNumberMinor": 0,
        "SchemaID": 1, "Priority": 1}]}}
    with pytest.raises(exi.EncodeError, match="surrogate"):
        exi.encode(message, "sap")


def test_non_ascii_strings_use_one_unsigned_integer_per_code_point():
    message = {"supportedAppProtocolReq": {"AppProtocol": [{
        "ProtocolNamespace": "urn:ä€😀", "VersionNumberMajor": 1, "VersionNumberMinor": 0,
        "SchemaID": 1, "Priority": 1}]}}
    assert exi.decode(exi.encode(message, "sap"), "sap") == message
