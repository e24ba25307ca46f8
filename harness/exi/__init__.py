"""Schema-informed EXI codec for DIN 70121, ISO 15118-2 and ISO 15118-20.

    >>> from harness import exi
    >>> message = exi.decode(bytes.fromhex("80400040"), "sap")
    >>> message
    {'supportedAppProtocolRes': {'ResponseCode': 'OK_SuccessfulNegotiation', 'SchemaID': 1}}
    >>> exi.encode(message, "sap").hex().upper()
    '80400040'

A message is the JSON form of the document (or fragment): element local names as keys in schema
order, repeated elements as lists, hexBinary as uppercase hex, base64Binary as base64, attributes
as plain keys and simple content next to attributes as ``"value"``; the top key is the root
element, or for a fragment the fragment's element(s).

:func:`encode` validates the message against the schema. :func:`encode_unchecked` is for
negative tests: it encodes facet violations, unknown enumeration values and missing required
content as far as EXI can represent them (see ``harness.exi.codec``); its output is not a valid
message.

The grammars are generated from the schemas by ``tools/gen_exi.py`` into
``harness.exi.grammars``; nothing here reads schema files.
"""

from __future__ import annotations

from harness.exi.codec import codec_for
from harness.exi.errors import DecodeError, EncodeError, ExiError

#: the schemas the codec knows; "iso20" is the -20 CommonMessages namespace
SCHEMAS: tuple[str, ...] = (
    "sap", "din", "iso2", "iso20", "iso20-ac", "iso20-dc", "iso20-wpt", "iso20-acdp", "xmldsig",
)

__all__ = ["SCHEMAS", "DecodeError", "EncodeError", "ExiError", "decode", "encode",
           "encode_unchecked"]


def _codec(schema: str, error: type[ExiError]):
    if schema not in SCHEMAS:
        raise error(f"unknown schema {schema!r} (known: {', '.join(SCHEMAS)})")
    return codec_for(schema)


def decode(data: bytes, schema: str, fragment: bool = False) -> dict:
    """Decode an EXI document (or with ``fragment=True`` an EXI fragment) into its JSON form.

    Raises :class:`DecodeError`, naming the bit offset, the element path and the reason, for any
    input that is not such a stream; never anything else.
    """
    codec = _codec(schema, DecodeError)
    try:
        return codec.decode(data, fragment)
    except DecodeError:
        raise
    except RecursionError:  # pragma: no cover - MAX_DEPTH keeps nesting far below the limit
        raise DecodeError("elements nested too deeply") from None
    except Exception as exc:  # pragma: no cover - a bug; keep the promise of one error type
        raise DecodeError(f"internal decoder error {type(exc).__name__}: {exc}") from exc


def encode(message: dict, schema: str, fragment: bool = False) -> bytes:
    """Encode a message in JSON form, validating it against the schema first.

    Raises :class:`EncodeError` naming the element path and what is wrong (missing required
    element, value out of a facet's range, unknown enumeration value, wrong choice, unknown key).
    """
    return _codec(schema, EncodeError).encode(message, fragment, checked=True)


def violation(message: dict, schema: str, fragment: bool = False) -> str | None:
    """What in a message (JSON form, e.g. just decoded) breaks the schema, or None if nothing does.

    A decoder must let some of it through (EXI carries untyped values and missing content in
    non-strict grammars): a value out of its facets, an empty required element. Whoever acts on
    a received message asks this first, so its rules never meet a value the schema forbids.
    """
    try:
        _codec(schema, EncodeError).encode(message, fragment, checked=True)
    except EncodeError as exc:
        return str(exc)
    return None


def encode_unchecked(message: dict, schema: str, fragment: bool = False) -> bytes:
    """UNSAFE, for negative tests: encode a message that violates the schema on purpose.

    Facet violations are encoded in the typed representation when it can carry them (an n-bit
    integer above its maximum but within its bits, an over-long string or binary, an unsigned
    value beyond unsignedShort) and otherwise as untyped values (CH/AT [untyped value]); unknown
    enumeration values as untyped strings; missing required elements at the end of an element
    with a second-level EE; missing required attributes before content with an empty untyped
    character event; abstract elements and types as they are. What EXI cannot represent without
    built-in element grammars (unknown keys, too many repetitions, two choices, a required
    element missing before a present one) still raises :class:`EncodeError`.
    """
    return _codec(schema, EncodeError).encode(message, fragment, checked=False)
