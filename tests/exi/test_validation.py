"""encode() validates a message against the schema and names the path of what is wrong."""

from __future__ import annotations

import copy

import pytest

from harness import exi
from tests.exi.testdata import load_vectors

VECTORS = load_vectors()


def vector_message(schema: str, message: str) -> dict:
    return copy.deepcopy(next(v["json"] for v in VECTORS
                              if v["schema"] == schema and v["message"] == message))


def encode_error(message: dict, schema: str, fragment: bool = False) -> str:
    with pytest.raises(exi.EncodeError) as caught:
        exi.encode(message, schema, fragment)
    return str(caught.value)


def test_value_above_a_facet_maximum_names_path_and_bound():
    message = vector_message("iso2", "ChargeParameterDiscoveryReq")
    limit = message["V2G_Message"]["Body"]["ChargeParameterDiscoveryReq"]["DC_EVChargeParameter"]
    limit["EVMaximumCurrentLimit"]["Multiplier"] = 4
    assert encode_error(message, "iso2") == (
        "V2G_Message.Body.ChargeParameterDiscoveryReq.DC_EVChargeParameter."
        "EVMaximumCurrentLimit.Multiplier: 4 is above the maximum 3 (unitMultiplierType)")


def test_value_below_a_facet_minimum():
    message = vector_message("din", "CurrentDemandReq")
    message["V2G_Message"]["Body"]["CurrentDemandReq"]["DC_EVStatus"]["EVRESSSOC"] = -1
    assert encode_error(message, "din").endswith(
        "DC_EVStatus.EVRESSSOC: -1 is below the minimum 0 (percentValueType)")


def test_missing_required_element_names_it():
    message = vector_message("iso2", "ChargeParameterDiscoveryReq")
    del message["V2G_Message"]["Body"]["ChargeParameterDiscoveryReq"]["RequestedEnergyTransferMode"]
    assert encode_error(message, "iso2") == (
        "V2G_Message.Body.ChargeParameterDiscoveryReq: missing required element "
        "'RequestedEnergyTransferMode' before 'DC_EVChargeParameter'")


def test_missing_required_element_at_the_end():
    message = vector_message("din", "CurrentDemandReq")
    del message["V2G_Message"]["Body"]["CurrentDemandReq"]["EVTargetVoltage"]
    assert "CurrentDemandReq: missing required element 'EVTargetVoltage' after" in \
        encode_error(message, "din")


def test_missing_choice_lists_the_alternatives():
    message = vector_message("iso20", "AuthorizationSetupRes")
    del message["AuthorizationSetupRes"]["PnC_ASResAuthorizationMode"]
    assert encode_error(message, "iso20") == (
        "AuthorizationSetupRes: missing required element: one of 'EIM_ASResAuthorizationMode', "
        "'PnC_ASResAuthorizationMode' after 'CertificateInstallationService'")


def test_two_alternatives_of_a_choice_are_an_error():
    message = vector_message("iso20", "AuthorizationReq")
    message["AuthorizationReq"] = {
        "Header": message["AuthorizationReq"]["Header"], "SelectedAuthorizationService": "EIM",
        "EIM_AReqAuthorizationMode": {},
        "PnC_AReqAuthorizationMode": message["AuthorizationReq"]["PnC_AReqAuthorizationMode"]}
    assert encode_error(message, "iso20").startswith(
        "AuthorizationReq: 'PnC_AReqAuthorizationMode' is not allowed here after "
        "'EIM_AReqAuthorizationMode'")


def test_unknown_enumeration_value():
    message = vector_message("iso2", "ChargeParameterDiscoveryReq")
    message["V2G_Message"]["Body"]["ChargeParameterDiscoveryReq"]["RequestedEnergyTransferMode"] = \
        "AC_four_phase"
    assert "RequestedEnergyTransferMode: unknown value 'AC_four_phase' (EnergyTransferModeType: " \
        in encode_error(message, "iso2")


def test_unknown_key():
    message = vector_message("iso2", "SessionSetupReq")
    message["V2G_Message"]["Body"]["SessionSetupReq"]["EVCCId"] = "00"
    assert encode_error(message, "iso2").startswith(
        "V2G_Message.Body.SessionSetupReq: unknown key 'EVCCId' for SessionSetupReqType "
        "(allowed: EVCCID)")


def test_too_many_repetitions():
    message = vector_message("iso20", "AuthorizationSetupRes")
    message["AuthorizationSetupRes"]["AuthorizationServices"] = ["EIM", "PnC", "EIM"]
    assert encode_error(message, "iso20") == \
        "AuthorizationSetupRes: too many 'AuthorizationServices' elements"


def test_too_few_repetitions_of_a_list():
    message = {"supportedAppProtocolReq": {"AppProtocol": []}}
    assert encode_error(message, "sap") == \
        "supportedAppProtocolReq: missing required element 'AppProtocol'"


def test_list_item_path_has_its_index():
    message = vector_message("sap", "supportedAppProtocolReq")
    protocol = dict(message["supportedAppProtocolReq"]["AppProtocol"][0], Priority=21)
    message["supportedAppProtocolReq"]["AppProtocol"].append(protocol)
    assert encode_error(message, "sap") == (
        "supportedAppProtocolReq.AppProtocol[1].Priority: 21 is above the maximum 20 "
        "(priorityType)")


@pytest.mark.parametrize("field, value, reason", [
    ("SessionID", "00112233445566778899", "10 bytes exceed the maximum 8 (sessionIDType)"),
    ("SessionID", "0G", "not valid hex (sessionIDType): '0G'"),
    ("SessionID", "0 1", "not valid hex (sessionIDType): '0 1'"),
    ("SessionID", 12, "expected a hex string (sessionIDType), got 12"),
])
def test_hex_binary_checks(field, value, reason):
    message = vector_message("iso2", "SessionSetupReq")
    message["V2G_Message"]["Header"][field] = value
    assert encode_error(message, "iso2") == f"V2G_Message.Header.{field}: {reason}"


def test_wrong_json_types():
    message = vector_message("din", "CurrentDemandReq")
    status = message["V2G_Message"]["Body"]["CurrentDemandReq"]["DC_EVStatus"]
    status["EVReady"] = 1
    assert encode_error(message, "din").endswith(
        "DC_EVStatus.EVReady: expected true or false (boolean), got 1")
    status["EVReady"] = True
    status["EVRESSSOC"] = True
    assert encode_error(message, "din").endswith(
        "DC_EVStatus.EVRESSSOC: expected an integer (percentValueType), got True")


def test_string_length_facets():
    message = vector_message("iso2", "SessionSetupRes")
    message["V2G_Message"]["Body"]["SessionSetupRes"]["EVSEID"] = "DE*1"
    assert encode_error(message, "iso2").endswith(
        "SessionSetupRes.EVSEID: 4 characters are fewer than the minimum 7 (evseIDType)")


def test_base64_length_facet():
    message = {"AuthorizationReq": {"Id": "ID1", "GenChallenge": "AAAA"}}
    assert encode_error(message, "iso2", fragment=True) == (
        "AuthorizationReq.GenChallenge: 3 bytes are fewer than the minimum 16 (genChallengeType)")


def test_abstract_element_is_an_error():
    message = {"V2G_Message": {"Header": {"SessionID": "00"}, "Body": {"BodyElement": {}}}}
    assert encode_error(message, "din") == ("V2G_Message.Body.BodyElement: BodyBaseType is "
                                            "abstract: use one of the elements that substitute "
                                            "for it")


def test_missing_required_attribute():
    message = {"CertificateInstallationReq": {"OEMProvisioningCert": "AAAA"}}
    assert encode_error(message, "iso2", fragment=True) == (
        "CertificateInstallationReq: missing required attribute 'Id' before "
        "'OEMProvisioningCert'")


def test_document_root_must_be_a_global_element():
    assert encode_error({"EVCCID": "00"}, "iso2") == "'EVCCID' is not a global element of " \
        "schema iso2 (encode it as a fragment)"
    assert encode_error({}, "iso2") == "a document has exactly one root element, got 0 keys: "


def test_keys_out_of_schema_order_are_accepted():
    message = vector_message("iso2", "SessionSetupRes")
    body = message["V2G_Message"]["Body"]["SessionSetupRes"]
    shuffled = {key: body[key] for key in reversed(body)}
    expected = exi.encode(message, "iso2")
    message["V2G_Message"]["Body"]["SessionSetupRes"] = shuffled
    assert exi.encode(message, "iso2") == expected


def test_binary_values_may_be_given_as_bytes():
    message = vector_message("iso2", "SessionSetupReq")
    expected = exi.encode(message, "iso2")
    header = message["V2G_Message"]["Header"]
    header["SessionID"] = bytes.fromhex(header["SessionID"])
    assert exi.encode(message, "iso2") == expected
