"""The vocabulary of the generated grammar tables in ``harness.exi.grammars``.

``tools/gen_exi.py`` turns the XML schemas into one module per schema; the codec in
``harness.exi.codec`` interprets them. Both sides import the constants below, so the meaning of a
table entry is defined here and nowhere else.

A generated module holds plain tuples:

``NAMESPACES``
    namespace URIs; productions refer to them by index. ``PREFIXES`` holds the prefix the schema
    files use for each (for XML output).
``DATATYPES``
    ``(kind, name, *parameters)`` per simple type, see the ``DT_*`` kinds below.
``TYPES``
    one entry per element content grammar: ``(TYPE_SIMPLE, name, datatype, start_state)``,
    ``(TYPE_COMPLEX, name, start_state, abstract, keys)`` or
    ``(TYPE_RELAXED, name, start_state, False, ())`` (the relaxed element fragment grammar of
    EXI 1.0 §8.5.3). ``keys`` are the JSON keys of the type in schema order (attributes sorted,
    the value, then elements in particle order).
``STATES``
    ``(width, productions, second_level, untyped_next)`` per grammar non-terminal. ``width`` is the
    number of bits of the first event code part; it counts one extra value, the escape to the
    second level, whenever ``second_level`` is not empty (EXI 1.0 §6.2, §8.5.4.4.1). Production
    *i* of the tuple has event code *i*. ``second_level`` is the index of a tuple in
    ``SECOND_LEVEL`` naming the undeclared productions in event code order; ``untyped_next`` is
    the state after a CH [untyped value] at the second level.
``DOCUMENT`` / ``FRAGMENT``
    ``(width, ((key, namespace, type), ...))``: the SE productions of DocContent (§8.5.1) and
    FragmentContent (§8.5.2), sorted by local name then namespace; event code = position.
``RELAXED_ATTRIBUTE_KEYS``
    ``{element key: {local name: attribute key}}`` for elements decoded with the relaxed grammar
    whose attributes' local names are ambiguous in it (iso2 ``eMAID``'s ``Id``); the JSON form
    uses the local name.

Keys are local names; where one list (document, fragment, relaxed grammar) has two qnames with
the same local name, the key is ``{namespace}local``.

A production is a tuple whose first item is its kind:

``(P_AT, key, datatype, next, namespace)``
    AT(qname) with a schema-typed value.
``(P_SE, key, type, next, namespace, repeated)``
    SE(qname); ``repeated`` says the JSON value is a list. ``next`` is a state index, or for an
    element particle with bounds other than 0..1 or 1..1 a tuple ``(min, max, below_min,
    in_range, at_max)``: which of the three states follows depends on how many elements of that
    particle have been seen (EXI 1.0 §8.5.4.1.5 unrolls bounded particles into copies; the three
    states are all the copies can differ in). ``max`` is ``None`` when unbounded.
``(P_EE,)``
    EE.
``(P_CH, "value", datatype, next)``
    CH [schema-typed value] (simple content).
``(P_CH_MIXED, "value", None, next)``
    CH [untyped value] of mixed content.
``(P_SE_ANY, None, None, next)`` / ``(P_AT_ANY, None, None, next)``
    SE(*) / AT(*) from wildcards; recognised for event code widths, their content is not
    supported (it needs built-in element grammars).
"""

from __future__ import annotations

# --- datatype kinds (EXI 1.0 §7.1) -------------------------------------------------------------
#: (DT_BOOLEAN, name)
DT_BOOLEAN = "boolean"
#: (DT_NBIT, name, bits, minimum, maximum): n-bit unsigned offset from minimum (§7.1.5, §7.1.9)
DT_NBIT = "nbit"
#: (DT_UNSIGNED, name, minimum, maximum_or_None): Unsigned Integer (§7.1.6)
DT_UNSIGNED = "unsigned"
#: (DT_INTEGER, name, minimum_or_None, maximum_or_None): sign bit and Unsigned Integer (§7.1.5)
DT_INTEGER = "integer"
#: (DT_STRING, name, min_length, max_length_or_None): literal strings only (§7.1.10, §7.3.3)
DT_STRING = "string"
#: (DT_ENUM, name, values): n-bit index into the values in schema order (§7.2)
DT_ENUM = "enum"
#: (DT_HEX, name, min_length, max_length_or_None): Binary (§7.1.1), JSON as uppercase hex
DT_HEX = "hexBinary"
#: (DT_BASE64, name, min_length, max_length_or_None): Binary (§7.1.1), JSON as base64
DT_BASE64 = "base64Binary"

# --- element content grammar kinds ---------------------------------------------------------------
TYPE_SIMPLE = "simple"
TYPE_COMPLEX = "complex"
TYPE_RELAXED = "relaxed"

# --- production kinds ----------------------------------------------------------------------------
P_AT = 0
P_SE = 1
P_EE = 2
P_CH = 3
P_CH_MIXED = 4
P_SE_ANY = 5
P_AT_ANY = 6

# --- second-level (undeclared) productions, EXI 1.0 §8.5.4.4.1 ---------------------------------------
U_EE = "EE"
U_XSI_TYPE = "AT(xsi:type)"
U_XSI_NIL = "AT(xsi:nil)"
U_AT_ANY = "AT(*)"
#: AT(qname) [untyped value] for each declared attribute, then AT(*) [untyped value]: third level
U_AT_UNTYPED = "AT [untyped value]"
U_SE_ANY = "SE(*)"
U_CH_UNTYPED = "CH [untyped value]"

#: the key of simple content and of untyped character data in the JSON form
VALUE_KEY = "value"


def bits_for(count: int) -> int:
    """Bits of an n-bit unsigned integer that distinguishes ``count`` values (EXI 1.0 §6.2)."""
    return (count - 1).bit_length() if count > 1 else 0
