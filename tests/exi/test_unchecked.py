"""encode_unchecked() writes schema violations for negative tests, as far as EXI represents
them, and the decoder reads them back."""

from __future__ import annotations

import pytest

from harness import exi
from tests.exi.test_validation import vector_message
from tests.exi.testdata import load_vectors, vector_ids

VECTORS = load_vectors()


@pytest.mark.parametrize("vector", VECTORS, ids=vector_ids(VECTORS))
def test_valid_messages_encode_identically(vector):
    assert exi.encode_unchecked(vector["json"], vector["schema"]).hex() == vector["hex"].lower()


def _limit(message):
    body = message["V2G_Message"]["Body"]["ChargeParameterDiscoveryReq"]
    return body["DC_EVChargeParameter"]["EVMaximumCurrentLimit"]


def roundtrip(message, schema, fragment=False):
    with pytest.raises(exi.EncodeError):
        exi.encode(message, schema, fragment)
    return exi.decode(exi.encode_unchecked(message, schema, fragment), schema, fragment)


def test_value_above_the_maximum_within_the_n_bits_stays_typed():
    message = vector_message("iso2", "ChargeParameterDiscoveryReq")
    _limit(message)["Multiplier"] = 4  # -3..3 takes 3 bits, so offset 7 still fits
    data = exi.encode_unchecked(message, "iso2")
    assert exi.decode(data, "iso2") == message
    _limit(message)["Multiplier"] = 3
    assert len(exi.encode(message, "iso2")) == len(data)


@pytest.mark.parametrize("value", [-4, 100])
def test_value_outside_the_n_bits_becomes_an_untyped_string(value):
    message = vector_message("iso2", "ChargeParameterDiscoveryReq")
    _limit(message)["Multiplier"] = value
    decoded = roundtrip(message, "iso2")
    assert _limit(decoded)["Multiplier"] == str(value)


def test_unknown_enumeration_value_becomes_an_untyped_string():
    message = vector_message("sap", "supportedAppProtocolRes")
    message["supportedAppProtocolRes"]["ResponseCode"] = "OK_Maybe"
    assert roundtrip(message, "sap") == message


def test_over_long_binary_and_string_stay_typed():
    message = vector_message("iso2", "SessionSetupRes")
    message["V2G_Message"]["Header"]["SessionID"] = "00" * 9
    message["V2G_Message"]["Body"]["SessionSetupRes"]["EVSEID"] = "DE*" * 20
    assert roundtrip(message, "iso2") == message


def test_unsigned_value_beyond_its_type_stays_typed():
    message = {"ServiceDetailReq": {"ServiceID": 70000}}
    assert roundtrip(message, "iso2") == message


def test_missing_required_element_at_the_end_is_a_second_level_end_element():
    message = vector_message("din", "CurrentDemandReq")
    del message["V2G_Message"]["Body"]["CurrentDemandReq"]["EVTargetVoltage"]
    assert roundtrip(message, "din") == message


def test_missing_required_attribute_before_content():
    message = {"CertificateInstallationReq": {
        "OEMProvisioningCert": "AAAA",
        "ListOfRootCertificateIDs": {"RootCertificateID": [
            {"X509IssuerName": "CN=V2G Root", "X509SerialNumber": 12345}]}}}
    assert roundtrip(message, "iso2", fragment=True) == message


def test_element_without_value():
    message = {"V2G_Message": {"Header": {"SessionID": None}, "Body": {}}}
    assert roundtrip(message, "din") == message


def test_abstract_element():
    message = {"V2G_Message": {"Header": {"SessionID": "00"}, "Body": {"BodyElement": {}}}}
    assert roundtrip(message, "din") == message


@pytest.mark.parametrize("change, reason", [
    (lambda body: body.pop("DC_EVStatus"), "missing required element 'DC_EVStatus' before"),
    (lambda body: body.update(Foo=1), "unknown key 'Foo'"),
])
def test_what_needs_built_in_grammars_is_still_an_error(change, reason):
    message = vector_message("din", "CurrentDemandReq")
    change(message["V2G_Message"]["Body"]["CurrentDemandReq"])
    with pytest.raises(exi.EncodeError, match=reason):
        exi.encode_unchecked(message, "din")


def test_too_many_repetitions_are_still_an_error():
    message = vector_message("iso20", "AuthorizationSetupRes")
    message["AuthorizationSetupRes"]["AuthorizationServices"] = ["EIM", "PnC", "EIM"]
    with pytest.raises(exi.EncodeError, match="too many 'AuthorizationServices'"):
        exi.encode_unchecked(message, "iso20")


def test_unsigned_value_below_its_minimum_stays_typed():
    """numericIDType is unsignedInt from 1: 0 still fits the Unsigned Integer representation
    (found by bench/exi_fuzz.py: decode -> encode_unchecked -> decode changed 0 into "0")."""
    data = bytes.fromhex("8054043423b394d574ee8c8e4f4a3d806200000100020480e04180512000")
    message = exi.decode(data, "iso20")
    mode = message["PowerDeliveryReq"]["EVPowerProfile"]["Scheduled_EVPPTControlMode"]
    assert mode["SelectedScheduleTupleID"] == 0
    assert exi.encode_unchecked(message, "iso20") == data


def test_signed_value_below_its_minimum_stays_typed():
    message = vector_message("din", "CurrentDemandReq")
    target = message["V2G_Message"]["Body"]["CurrentDemandReq"]["EVTargetCurrent"]
    target["Value"] = -(2**20)  # xs:short: the Integer representation carries any magnitude
    assert roundtrip(message, "din") == message
