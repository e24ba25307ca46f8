"""Every published and recorded vector decodes to its JSON form and encodes back to its bytes."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from harness import exi
from tests.exi.testdata import load_annex_j2, load_vectors, vector_ids

VECTORS = load_vectors()


@pytest.mark.parametrize("vector", VECTORS, ids=vector_ids(VECTORS))
def test_vector_decodes_to_its_json(vector):
    assert exi.decode(bytes.fromhex(vector["hex"]), vector["schema"]) == vector["json"]


@pytest.mark.parametrize("vector", VECTORS, ids=vector_ids(VECTORS))
def test_vector_json_encodes_to_its_bytes(vector):
    assert exi.encode(vector["json"], vector["schema"]).hex() == vector["hex"].lower()


def test_every_vector_schema_is_known():
    assert {vector["schema"] for vector in VECTORS} <= set(exi.SCHEMAS)


ANNEX_J2 = load_annex_j2()
FRAGMENTS = {
    "authorization_req_fragment": "iso2",
    "signed_info_fragment": "xmldsig",
}


@pytest.mark.parametrize("part", FRAGMENTS)
def test_annex_j2_fragment_encodes_to_published_bytes_and_digest(part):
    fragment = ANNEX_J2[part]
    data = exi.encode(fragment["content"], FRAGMENTS[part], fragment=True)
    assert data.hex() == fragment["hex"]
    assert hashlib.sha256(data).hexdigest() == fragment["sha256_hex"]


@pytest.mark.parametrize("part", FRAGMENTS)
def test_annex_j2_fragment_decodes_to_its_content(part):
    fragment = ANNEX_J2[part]
    data = bytes.fromhex(fragment["hex"])
    assert exi.decode(data, FRAGMENTS[part], fragment=True) == fragment["content"]


def test_annex_j2_signature_verifies_over_the_encoded_signed_info():
    """The whole chain: the digest of the AuthorizationReq fragment is in SignedInfo, and the
    ECDSA P-256 signature is over the EXI-encoded SignedInfo fragment."""
    authorization = exi.encode(ANNEX_J2["authorization_req_fragment"]["content"], "iso2",
                               fragment=True)
    signed_info = ANNEX_J2["signed_info_fragment"]["content"]
    digest = signed_info["SignedInfo"]["Reference"][0]["DigestValue"]
    assert base64.b64decode(digest) == hashlib.sha256(authorization).digest()

    xy = bytes.fromhex(ANNEX_J2["public_key_xy_hex"])
    public_key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + xy)
    rs = bytes.fromhex(ANNEX_J2["signature_rs_hex"])
    signature = encode_dss_signature(int.from_bytes(rs[:32], "big"), int.from_bytes(rs[32:], "big"))
    public_key.verify(signature, exi.encode(signed_info, "xmldsig", fragment=True),
                      ec.ECDSA(hashes.SHA256()))
