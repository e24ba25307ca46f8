"""Random valid messages of every message type in every schema survive encode -> decode.

The examples per test are few by default (the parametrization already covers ~190 message
types); set EXI_HYPOTHESIS_EXAMPLES for a longer run.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness import exi
from tests.exi.strategies import body_elements, document, document_roots, fragment

EXAMPLES = int(os.environ.get("EXI_HYPOTHESIS_EXAMPLES", "10"))
PROPERTY = settings(max_examples=EXAMPLES, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _message_types() -> list[tuple[str, str, str | None]]:
    """(schema, root element, body element): the V2G_Message bodies of DIN and -2, the Req/Res
    root elements of the other schemas, and every global element of xmldsig."""
    cases = []
    for schema in exi.SCHEMAS:
        roots = document_roots(schema)
        if "V2G_Message" in roots:
            cases += [(schema, "V2G_Message", body) for body in body_elements(schema)]
        elif schema == "xmldsig":
            cases += [(schema, root, None) for root in roots]
        else:
            cases += [(schema, root, None) for root in roots if root.endswith(("Req", "Res"))]
    return cases


MESSAGE_TYPES = _message_types()


@pytest.mark.parametrize("schema, root, body", MESSAGE_TYPES,
                         ids=[f"{s}-{b or r}" for s, r, b in MESSAGE_TYPES])
@PROPERTY
@given(data=st.data())
def test_random_message_survives_encode_decode(schema, root, body, data):
    message = data.draw(document(schema, root, body), label="message")
    encoded = exi.encode(message, schema)
    assert exi.decode(encoded, schema) == message


@pytest.mark.parametrize("schema", exi.SCHEMAS)
@settings(PROPERTY, max_examples=EXAMPLES * 5)
@given(data=st.data())
def test_random_document_of_any_global_element_survives_encode_decode(schema, data):
    root = data.draw(st.sampled_from(document_roots(schema)), label="root")
    message = data.draw(document(schema, root), label="message")
    assert exi.decode(exi.encode(message, schema), schema) == message


@pytest.mark.parametrize("schema", exi.SCHEMAS)
@settings(PROPERTY, max_examples=EXAMPLES * 10)
@given(data=st.data())
def test_random_fragment_of_any_element_survives_encode_decode(schema, data):
    message = data.draw(fragment(schema), label="fragment")
    encoded = exi.encode(message, schema, fragment=True)
    assert exi.decode(encoded, schema, fragment=True) == message


#: elements ISO 15118 signs (referenced from SignedInfo and digested as EXI fragments)
SIGNED_FRAGMENTS = {
    "iso2": ["AuthorizationReq", "MeteringReceiptReq", "CertificateInstallationReq",
             "CertificateUpdateReq", "ContractSignatureCertChain",
             "ContractSignatureEncryptedPrivateKey", "DHpublickey", "eMAID", "SalesTariff"],
    "iso20": ["PnC_AReqAuthorizationMode", "OEMProvisioningCertificateChain",
              "SignedInstallationData", "SignedMeteringData", "AbsolutePriceSchedule",
              "PriceLevelSchedule"],
    "xmldsig": ["SignedInfo"],
}


@pytest.mark.parametrize("schema, key", [(s, k) for s, keys in SIGNED_FRAGMENTS.items()
                                         for k in keys],
                         ids=[f"{s}-{k}" for s, keys in SIGNED_FRAGMENTS.items() for k in keys])
@PROPERTY
@given(data=st.data())
def test_random_signed_fragment_survives_encode_decode(schema, key, data):
    message = data.draw(fragment(schema, [key]), label="fragment")
    encoded = exi.encode(message, schema, fragment=True)
    assert exi.decode(encoded, schema, fragment=True) == message


def test_an_attribute_has_one_json_spelling():
    """The -2 eMAID fragment's Id, spelled with its namespace and by its local name, would encode
    to the same bytes and so come back spelled one way: the qualified spelling is refused."""
    message = {"eMAID": {"Id": "id1", "value": "DE*HAR*C12345678"}}
    assert exi.decode(exi.encode(message, "iso2", fragment=True), "iso2", fragment=True) == message
    qualified = {"eMAID": {"{urn:iso:15118:2:2013:MsgDataTypes}Id": "id1", "value": "DE*HAR*C12345678"}}
    with pytest.raises(exi.EncodeError, match="write it 'Id'"):
        exi.encode(qualified, "iso2", fragment=True)
