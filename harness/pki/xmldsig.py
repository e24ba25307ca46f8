"""XML signatures over EXI, as ISO 15118-2 (7.9.2.4.2, Annex J) and -20 define them.

A signature covers elements of the message that carry an ``Id``. For each, the digest is taken
over the element encoded on its own as an EXI fragment of the message schema (canonical EXI); the
references go into a ``SignedInfo``, which is itself EXI-encoded as an xmldsig fragment, and that
byte string is what the key signs. The ``SignatureValue`` is the raw signature: r || s for ECDSA
(each as wide as the curve), the 114-byte EdDSA signature for Ed448. The ``Signature`` element
goes into the message header.

Which elements a message type signs is the table :data:`SIGNED_ELEMENTS`; which algorithms a key
signs with is :data:`SUITES`. The algorithm URIs for -2 are those of Annex J.2; for -20 on
secp521r1 ecdsa-sha512 with SHA-512 digests; for Ed448 the RFC 9231 URI eddsa-ed448 with SHA-512
digests, which we could not confirm against the -20 text (some implementations use SHAKE256).

Verification returns every problem it finds: a reference whose digest does not match (named by
its URI and element), an element the message type must sign that no reference covers, and a
SignatureValue that does not verify.
"""

from __future__ import annotations

import base64
import copy
from dataclasses import dataclass
from typing import Iterator, Mapping, Sequence

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from harness import exi
from harness.pki.builder import KeyAlgorithm

CANONICAL_EXI = "http://www.w3.org/TR/canonical-exi/"


@dataclass(frozen=True)
class SignatureSuite:
    """The algorithms a key of one type signs V2G messages with."""

    name: str
    key_algorithm: KeyAlgorithm
    signature_method: str
    digest_method: str
    digest_hash: hashes.HashAlgorithm

    def digest(self, data: bytes) -> bytes:
        h = hashes.Hash(self.digest_hash)
        h.update(data)
        return h.finalize()

    def sign(self, key, data: bytes) -> bytes:
        if self.key_algorithm is KeyAlgorithm.ED448:
            return key.sign(data)
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(self.key_algorithm.prehash)))
        width = (key.curve.key_size + 7) // 8
        return r.to_bytes(width, "big") + s.to_bytes(width, "big")

    def verify(self, public_key, signature: bytes, data: bytes) -> bool:
        try:
            if self.key_algorithm is KeyAlgorithm.ED448:
                public_key.verify(signature, data)
                return True
            width = (public_key.curve.key_size + 7) // 8
            if len(signature) != 2 * width:
                return False
            der = encode_dss_signature(int.from_bytes(signature[:width], "big"),
                                       int.from_bytes(signature[width:], "big"))
            public_key.verify(der, data, ec.ECDSA(self.key_algorithm.prehash))
            return True
        except (InvalidSignature, TypeError, ValueError, AttributeError):
            return False


ISO2_ECDSA_SHA256 = SignatureSuite(
    "ecdsa-sha256", KeyAlgorithm.SECP256R1,
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
    "http://www.w3.org/2001/04/xmlenc#sha256", hashes.SHA256())
ISO20_ECDSA_SHA512 = SignatureSuite(
    "ecdsa-sha512", KeyAlgorithm.SECP521R1,
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512",
    "http://www.w3.org/2001/04/xmlenc#sha512", hashes.SHA512())
ISO20_ED448 = SignatureSuite(
    "eddsa-ed448", KeyAlgorithm.ED448,
    "http://www.w3.org/2021/04/xmldsig-more#eddsa-ed448",
    "http://www.w3.org/2001/04/xmlenc#sha512", hashes.SHA512())

SUITES: tuple[SignatureSuite, ...] = (ISO2_ECDSA_SHA256, ISO20_ECDSA_SHA512, ISO20_ED448)

#: the elements (by local name) each message type signs: ISO 15118-2 8.4 / Annex J and the -20
#: message definitions (CommonMessages), one reference per element
SIGNED_ELEMENTS: dict[tuple[str, str], tuple[str, ...]] = {
    ("iso2", "AuthorizationReq"): ("AuthorizationReq",),
    ("iso2", "MeteringReceiptReq"): ("MeteringReceiptReq",),
    ("iso2", "CertificateInstallationRes"): ("ContractSignatureCertChain",
                                             "ContractSignatureEncryptedPrivateKey",
                                             "DHpublickey", "eMAID"),
    ("iso2", "CertificateUpdateRes"): ("ContractSignatureCertChain",
                                       "ContractSignatureEncryptedPrivateKey",
                                       "DHpublickey", "eMAID"),
    ("iso2", "ChargeParameterDiscoveryRes"): ("SalesTariff",),
    ("iso20", "AuthorizationReq"): ("PnC_AReqAuthorizationMode",),
    ("iso20", "MeteringConfirmationReq"): ("SignedMeteringData",),
    ("iso20", "CertificateInstallationReq"): ("OEMProvisioningCertificateChain",),
    ("iso20", "CertificateInstallationRes"): ("SignedInstallationData",),
}


class SignatureError(ValueError):
    """A message cannot be signed as asked (no such element, unknown message type, key type)."""


@dataclass(frozen=True)
class Verification:
    failures: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.failures

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        return "signature valid" if self.ok else "; ".join(self.failures)


def suite_for(key) -> SignatureSuite:
    algorithm = KeyAlgorithm.of(key)
    for suite in SUITES:
        if suite.key_algorithm is algorithm:
            return suite
    raise SignatureError(f"no V2G signature suite for {algorithm.value} keys")


def _suite_by_method(uri: str) -> SignatureSuite | None:
    return next((s for s in SUITES if s.signature_method == uri), None)


# -- fragments and SignedInfo --------------------------------------------------------------------

def signed_info(references: Sequence[tuple[str, bytes]], suite: SignatureSuite) -> dict:
    """The SignedInfo (JSON form) for ``(Id, EXI fragment)`` pairs, in that order."""
    return {"SignedInfo": {
        "CanonicalizationMethod": {"Algorithm": CANONICAL_EXI},
        "SignatureMethod": {"Algorithm": suite.signature_method},
        "Reference": [{
            "URI": f"#{element_id}",
            "Transforms": {"Transform": [{"Algorithm": CANONICAL_EXI}]},
            "DigestMethod": {"Algorithm": suite.digest_method},
            "DigestValue": base64.b64encode(suite.digest(fragment)).decode(),
        } for element_id, fragment in references],
    }}


def encode_signed_info(info: dict) -> bytes:
    """SignedInfo as the xmldsig EXI fragment the signature is computed over."""
    return exi.encode(info, "xmldsig", fragment=True)


def sign_fragments(references: Sequence[tuple[str, bytes]], key,
                   suite: SignatureSuite | None = None) -> dict:
    """The Signature element (JSON form, without the ``Signature`` key) over EXI fragments."""
    suite = suite or suite_for(key)
    info = signed_info(references, suite)
    value = suite.sign(key, encode_signed_info(info))
    return {**info, "SignatureValue": {"value": base64.b64encode(value).decode()}}


def verify_fragments(signature: dict, fragments: Mapping[str, bytes], public_key, *,
                     names: Mapping[str, str] | None = None,
                     signed_info_exi: bytes | None = None) -> Verification:
    """Check every reference of ``signature`` against ``fragments`` (by Id) and the
    SignatureValue over the SignedInfo (re-encoded, unless its bytes are given)."""
    if isinstance(public_key, x509.Certificate):
        public_key = public_key.public_key()
    names = names or {}
    failures: list[str] = []
    info = signature["SignedInfo"]
    suite = _suite_by_method(info["SignatureMethod"]["Algorithm"])
    if suite is None:
        return Verification((f"SignatureMethod {info['SignatureMethod']['Algorithm']} is not "
                             f"one ISO 15118 uses",))
    if info["CanonicalizationMethod"]["Algorithm"] != CANONICAL_EXI:
        failures.append(f"CanonicalizationMethod is not {CANONICAL_EXI}")
    for reference in info["Reference"]:
        uri = reference.get("URI", "")
        element_id = uri[1:] if uri.startswith("#") else uri
        label = f"reference {uri}" + (f" ({names[element_id]})" if element_id in names else "")
        if reference["DigestMethod"]["Algorithm"] != suite.digest_method:
            failures.append(f"{label}: DigestMethod {reference['DigestMethod']['Algorithm']} does "
                            f"not go with {suite.signature_method}")
            continue
        fragment = fragments.get(element_id)
        if fragment is None:
            failures.append(f"{label}: no element with this Id")
            continue
        if base64.b64decode(reference["DigestValue"]) != suite.digest(fragment):
            failures.append(f"{label}: digest does not match the element")
    try:
        value = base64.b64decode(signature["SignatureValue"]["value"])
    except (KeyError, ValueError):
        value = b""
    encoded = signed_info_exi if signed_info_exi is not None else encode_signed_info(
        {"SignedInfo": info})
    if not suite.verify(public_key, value, encoded):
        failures.append(f"SignatureValue: does not verify ({suite.name}) with the signer's key")
    return Verification(tuple(failures))


# -- whole messages ------------------------------------------------------------------------------

def message_type(message: dict, schema: str) -> str:
    if "V2G_Message" in message:
        return next(iter(message["V2G_Message"]["Body"]))
    return next(iter(message))


def _header(message: dict) -> dict:
    if "V2G_Message" in message:
        return message["V2G_Message"]["Header"]
    return next(iter(message.values()))["Header"]


def _schema_family(schema: str) -> str:
    return "iso20" if schema.startswith("iso20") else schema


def elements_with_id(message: dict) -> Iterator[tuple[str, dict]]:
    """Every element of the message that has an Id, as ``(local name, element)``."""
    def walk(node, name):
        if isinstance(node, dict):
            if "Id" in node and name is not None:
                yield name, node
            for key, value in node.items():
                if key != "Signature":
                    yield from walk(value, key)
        elif isinstance(node, list):
            for item in node:
                yield from walk(item, name)

    yield from walk(message, None)


def signed_fragments(message: dict, schema: str) -> dict[str, tuple[str, bytes]]:
    """``Id -> (element name, EXI fragment)`` for every element with an Id."""
    return {element["Id"]: (name, exi.encode({name: element}, schema, fragment=True))
            for name, element in elements_with_id(message)}


def sign_message(message: dict, schema: str, key, *, elements: Sequence[str] | None = None,
                 suite: SignatureSuite | None = None) -> dict:
    """A copy of ``message`` with a Signature in its header over the elements its type signs
    (or the named ``elements``)."""
    kind = message_type(message, schema)
    wanted = elements or SIGNED_ELEMENTS.get((_schema_family(schema), kind))
    if not wanted:
        raise SignatureError(f"{schema} {kind} is not a signed message; name the elements to sign")
    fragments = signed_fragments(message, schema)
    references = []
    for name in wanted:
        found = [(i, f) for i, (n, f) in fragments.items() if n == name]
        if not found:
            raise SignatureError(f"{kind} has no {name} element with an Id to sign")
        references.extend(found)
    signed = copy.deepcopy(message)
    _header(signed)["Signature"] = sign_fragments(references, key, suite)
    return signed


def verify_message(message: dict, schema: str, signer) -> Verification:
    """Verify the header Signature of ``message`` with ``signer`` (certificate or public key)."""
    header = _header(message)
    if "Signature" not in header:
        return Verification(("message has no Signature in its header",))
    fragments = signed_fragments(message, schema)
    result = verify_fragments(header["Signature"], {i: f for i, (_, f) in fragments.items()},
                              signer, names={i: n for i, (n, _) in fragments.items()})
    kind = message_type(message, schema)
    referenced = {r.get("URI", "")[1:] for r in header["Signature"]["SignedInfo"]["Reference"]}
    missing = [f"{name} (#{i}) is not covered by the signature"
               for i, (name, _) in fragments.items()
               if name in SIGNED_ELEMENTS.get((_schema_family(schema), kind), ()) and i not in referenced]
    return Verification(result.failures + tuple(missing))
