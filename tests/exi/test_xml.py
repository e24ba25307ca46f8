"""The XML view of decoded messages is well-formed and carries the schema namespaces."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from harness import exi
from harness.exi.xmltext import to_xml
from tests.exi.testdata import load_vectors, vector_ids

VECTORS = load_vectors()


@pytest.mark.parametrize("vector", VECTORS, ids=vector_ids(VECTORS))
def test_xml_of_every_vector_is_well_formed(vector):
    root = ET.fromstring(to_xml(vector["json"], vector["schema"]))
    assert root.tag.endswith("}" + next(iter(vector["json"])))


def test_namespaces_and_attributes_follow_the_schema():
    vector = next(v for v in VECTORS if v["schema"] == "iso2" and v["message"] ==
                  "ChargeParameterDiscoveryRes" and "Signature" in v["json"]["V2G_Message"]["Header"])
    root = ET.fromstring(to_xml(vector["json"], "iso2"))
    dsig = "{http://www.w3.org/2000/09/xmldsig#}"
    types = "{urn:iso:15118:2:2013:MsgDataTypes}"
    assert root.tag == "{urn:iso:15118:2:2013:MsgDef}V2G_Message"
    reference = root.find(f"*/{dsig}Signature/{dsig}SignedInfo/{dsig}Reference")
    assert reference.get("URI") == "#id1"  # xmldsig attributes are unqualified
    tariff = root.find(f".//{types}SalesTariff")
    assert tariff.get(f"{types}Id") == "id1"  # -2 attributes are qualified


def test_relaxed_fragment_element_and_text():
    text = to_xml({"eMAID": {"Id": "id4", "value": "DE8AA123456789"}}, "iso2", fragment=True)
    root = ET.fromstring(text)
    assert root.tag == "{urn:iso:15118:2:2013:MsgBody}eMAID"
    assert root.get("{urn:iso:15118:2:2013:MsgDataTypes}Id") == "id4"
    assert root.text == "DE8AA123456789"


def test_special_characters_are_escaped():
    message = {"supportedAppProtocolReq": {"AppProtocol": [{
        "ProtocolNamespace": "urn:a&b<c>", "VersionNumberMajor": 1, "VersionNumberMinor": 0,
        "SchemaID": 1, "Priority": 1}]}}
    assert exi.decode(exi.encode(message, "sap"), "sap") == message
    root = ET.fromstring(to_xml(message, "sap"))
    assert root.find("AppProtocol/ProtocolNamespace").text == "urn:a&b<c>"
