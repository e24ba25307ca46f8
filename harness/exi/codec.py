"""The schema-informed EXI codec: a small interpreter over the generated grammar tables.

One :class:`SchemaCodec` per schema compiles the tables of ``harness.exi.grammars.<schema>``
into lookup structures once (:class:`State`, per-datatype value functions) and then decodes and
encodes with them. The options are those DIN 70121 and ISO 15118 use: header byte 0x80 (no
cookie, no options), bit-packed, non-strict schema-informed grammars, no string table hits
(every string value is a literal, EXI 1.0 §7.3.3), no built-in element grammars, and prefixes,
comments, PIs, DTDs and self-contained elements not preserved (§8.3).

Deviations from the schema that EXI represents with second-level event codes (§8.5.4.4.1) are
decoded where the JSON form can carry them and produced by the unchecked encoder:

* EE where the schema requires more content (a message missing required elements at the end);
* CH [untyped value] where a typed value is expected (a value the datatype cannot represent,
  e.g. an unknown enumeration value or an integer beyond the n-bit range) -- decoded as a string;
* AT(qname) [untyped value] for declared attributes -- decoded as a string;
* an empty CH [untyped value] in the attribute part (how a required attribute can be dropped
  while content follows).

xsi:type, xsi:nil, SE(*), AT(*) and non-empty untyped character data in element-only content
need built-in element grammars or type substitution and are reported as unsupported.
"""

from __future__ import annotations

import base64
import binascii
import importlib
import re
from typing import Any

from harness.exi import grammar as g
from harness.exi.bits import MAX_UNSIGNED_OCTETS, BitReader, BitWriter
from harness.exi.errors import DecodeError, EncodeError

#: EXI header of ISO 15118 streams: distinguishing bits 10, no options, version 1 (§5)
HEADER = 0x80

#: nesting limit for the recursive relaxed element fragment grammar (§8.5.3), so hostile input
#: cannot exhaust the interpreter stack; schema-typed grammars are not recursive
MAX_DEPTH = 64

_HEX = re.compile(r"[0-9A-Fa-f]*")


class _Unrepresentable(Exception):
    """Raised by a value encoder in unchecked mode: the value needs an untyped representation."""


class State:
    """A grammar non-terminal compiled for both directions."""

    __slots__ = ("index", "width", "productions", "count", "second", "second_width",
                 "untyped_next", "by_key", "ee_code", "ch_code", "attribute_productions",
                 "second_codes", "attribute_phase")

    def __init__(self, index, width, productions, second, untyped_next):
        self.index = index
        self.width = width
        self.productions = productions
        self.count = len(productions)  # also the escape code to the second level
        self.second = second
        self.second_width = g.bits_for(len(second))
        self.untyped_next = untyped_next
        self.by_key = {}
        self.ee_code = None
        self.ch_code = None
        self.attribute_productions = []
        for code, production in enumerate(productions):
            kind = production[0]
            if kind == g.P_EE:
                self.ee_code = code
            elif kind in (g.P_SE, g.P_AT, g.P_CH, g.P_CH_MIXED):
                self.by_key[production[1]] = (code, production)
                if kind == g.P_AT:
                    self.attribute_productions.append(production)
                elif kind == g.P_CH:
                    self.ch_code = code
        self.second_codes = {kind: code for code, kind in enumerate(second)}
        self.attribute_phase = g.U_AT_ANY in self.second_codes

    def expected(self, limit: int = 12) -> str:
        names = [f"'{p[1]}'" for p in self.productions if p[0] in (g.P_SE, g.P_AT)]
        if len(names) > limit:
            names[limit:] = [f"... ({len(names) - limit} more)"]
        if self.ch_code is not None:
            names.append("a value")
        if self.ee_code is not None:
            names.append("the end of the element")
        return ", ".join(names) if names else "nothing"


def _next_state(target, count):
    """The state after the ``count``-th element of a counted particle (see harness.exi.grammar)."""
    low, high, below, in_range, at_max = target
    if count < low:
        return below
    if high is None or count < high:
        return in_range
    return at_max


class ComplexType:
    __slots__ = ("name", "start", "abstract", "relaxed", "attribute_keys", "rank", "keys")

    def __init__(self, name, start, abstract, relaxed):
        self.name = name
        self.start = start
        self.abstract = abstract
        self.relaxed = relaxed
        self.attribute_keys = ()  # in the sorted order of §8.5.4.1.3.2
        self.rank = {}  # JSON key -> position in schema order (harness.exi.grammar TYPES)
        self.keys = {}  # JSON key -> (is_attribute, namespace, child type or None)


class SimpleType:
    __slots__ = ("name", "datatype", "start", "after_value")

    def __init__(self, name, datatype, start, after_value):
        self.name = name
        self.datatype = datatype
        self.start = start
        self.after_value = after_value


class SchemaCodec:
    """Decoder and encoder for one schema's generated tables."""

    def __init__(self, schema: str):
        tables = importlib.import_module(f"harness.exi.grammars.{schema.replace('-', '_')}")
        self.schema = schema
        self.tables = tables
        self.namespaces = tables.NAMESPACES
        self.prefixes = tables.PREFIXES
        self.datatypes = tables.DATATYPES
        self.value_decoders = [_value_decoder(dt) for dt in tables.DATATYPES]
        self.value_encoders = [_value_encoder(dt) for dt in tables.DATATYPES]
        self.states = [State(i, width, productions, tables.SECOND_LEVEL[second], untyped_next)
                       for i, (width, productions, second, untyped_next)
                       in enumerate(tables.STATES)]
        self.types: list[SimpleType | ComplexType] = []
        for kind, name, a, b, *rest in tables.TYPES:
            if kind == g.TYPE_SIMPLE:
                start = self.states[b]
                self.types.append(SimpleType(name, a, start, self.states[start.productions[0][3]]))
            else:
                ctype = ComplexType(name, a, b, kind == g.TYPE_RELAXED)
                ctype.rank = {key: i for i, key in enumerate(rest[0])}
                self._describe_keys(ctype)
                self.types.append(ctype)
        self.document_width, self.document = tables.DOCUMENT
        self.fragment_width, self.fragment = tables.FRAGMENT
        self.relaxed_attribute_keys = tables.RELAXED_ATTRIBUTE_KEYS
        self.document_codes = {key: (code, t) for code, (key, _, t) in enumerate(self.document)}
        self.fragment_codes = {key: (code, t) for code, (key, _, t) in enumerate(self.fragment)}

    def _describe_keys(self, ctype: ComplexType) -> None:
        """Collect the JSON keys a complex type's grammar can produce, and their schema order."""
        seen = set()
        stack = [ctype.start]
        while stack:
            index = stack.pop()
            if index in seen:
                continue
            seen.add(index)
            state = self.states[index]
            for production in state.productions:
                kind = production[0]
                if kind == g.P_AT:
                    ctype.keys[production[1]] = (True, production[4], None)
                elif kind == g.P_SE:
                    ctype.keys[production[1]] = (False, production[4], production[2])
                elif kind in (g.P_CH, g.P_CH_MIXED):
                    ctype.keys[g.VALUE_KEY] = (False, None, None)
                if kind != g.P_EE:
                    stack += _targets(production[3])
            stack.append(state.untyped_next)
        ctype.attribute_keys = tuple(sorted(k for k, v in ctype.keys.items() if v[0]))

    # ============================================================================================
    # decoding
    # ============================================================================================

    def decode(self, data: bytes, fragment: bool = False):
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise DecodeError(f"expected bytes, got {type(data).__name__}")
        data = bytes(data)
        if not data:
            raise DecodeError("empty input: no EXI header")
        if data[0] != HEADER:
            raise DecodeError(f"EXI header 0x{data[0]:02X} is not 0x80 (ISO 15118 uses no "
                              f"cookie, no options, format version 1)")
        reader = BitReader(data, 8)
        message: dict[str, Any] = {}  # the JSON form: values of any JSON type
        if fragment:
            count = len(self.fragment)
            while True:
                code = reader.read(self.fragment_width)
                if code == count + 1:  # ED
                    break
                key, _, type_index = self._top_element(reader, code, self.fragment)
                value = self._decode_element(reader, type_index, key, 0)
                if key in message:
                    _append(message, key, value)
                else:
                    message[key] = value
        else:
            code = reader.read(self.document_width)
            key, _, type_index = self._top_element(reader, code, self.document)
            message[key] = self._decode_element(reader, type_index, key, 0)
            # DocEnd: ED is the only production left after pruning CM and PI: no bits
        left = reader.remaining()
        if left >= 8:
            raise DecodeError(f"{left // 8} bytes after the end of the "
                              f"{'fragment' if fragment else 'document'}", reader.pos)
        if left and reader.read(left):
            raise DecodeError("padding bits after the end are not zero", reader.pos - left)
        return message

    def _top_element(self, reader, code, entries):
        if code < len(entries):
            return entries[code]
        if code == len(entries):
            raise DecodeError("SE(*): an element not declared in the schema (needs built-in "
                              "element grammars, not supported)", reader.pos)
        raise DecodeError(f"invalid event code {code}", reader.pos)

    def _decode_element(self, reader, type_index, key, depth):
        try:
            entry = self.types[type_index]
            if entry.__class__ is SimpleType:
                # fast path of §8.5.4.1.3.1: CH (code 0 of 1 bit) then EE (code 0 of 1 bit)
                if reader.read(1) == 0:
                    value = self.value_decoders[entry.datatype](reader)
                    if reader.read(1) == 0:
                        return value
                    result = self._decode_states(reader, entry.after_value, {g.VALUE_KEY: value},
                                                 depth, escaped=True)
                else:
                    result = self._decode_states(reader, entry.start, {}, depth, escaped=True)
                return result.get(g.VALUE_KEY)
            if depth >= MAX_DEPTH:
                raise DecodeError(f"elements nested deeper than {MAX_DEPTH}", reader.pos)
            result = self._decode_states(reader, self.states[entry.start], {}, depth)
            if entry.relaxed and key in self.relaxed_attribute_keys:
                result = _rename(result, {qualified: local for local, qualified
                                          in self.relaxed_attribute_keys[key].items()})
            return result
        except DecodeError as error:
            error.path.insert(0, key)
            raise

    def _decode_states(self, reader, state, result, depth, escaped=False):
        """Run the grammar from ``state`` until EE; ``escaped`` says the first event code part
        has already been read and was the escape to the second level."""
        states = self.states
        decoders = self.value_decoders
        had_element = False
        while True:
            if escaped:
                escaped = False
                code = state.count
            else:
                code = reader.read(state.width)
            if code < state.count:
                production = state.productions[code]
                kind = production[0]
                if kind == g.P_SE:
                    key = production[1]
                    value = self._decode_element(reader, production[2], key, depth + 1)
                    if production[5]:
                        items = result.get(key)
                        if items is None:
                            items = result[key] = []
                        items.append(value)
                    elif production[5] is None and key in result:  # relaxed grammar: repeats
                        _append(result, key, value)
                    else:
                        result[key] = value
                    had_element = True
                    target = production[3]
                    if target.__class__ is tuple:
                        state = states[_next_state(target, len(result[key]))]
                    else:
                        state = states[target]
                elif kind == g.P_EE:
                    return result
                elif kind == g.P_AT:
                    result[production[1]] = decoders[production[2]](reader)
                    state = states[production[3]]
                elif kind == g.P_CH:
                    if g.VALUE_KEY in result:
                        raise DecodeError("a second value in simple content", reader.pos)
                    result[g.VALUE_KEY] = decoders[production[2]](reader)
                    state = states[production[3]]
                elif kind == g.P_CH_MIXED:
                    text = _read_string(reader)
                    if g.VALUE_KEY in result or had_element:
                        raise DecodeError("mixed content with text after elements or in several "
                                          "pieces is not representable in the JSON form",
                                          reader.pos)
                    result[g.VALUE_KEY] = text
                    state = states[production[3]]
                else:
                    raise DecodeError("SE(*)/AT(*) wildcard content is not supported (needs "
                                      "built-in element grammars)", reader.pos)
            elif code == state.count:
                state = self._decode_second_level(reader, state, result)
                if state is None:
                    return result
            else:
                raise DecodeError(f"invalid event code {code} (only {state.count + 1} defined)",
                                  reader.pos - state.width)

    def _decode_second_level(self, reader, state, result):
        """Undeclared productions (§8.5.4.4.1); returns the next state, None after EE."""
        at = reader.pos
        code = reader.read(state.second_width)
        if code >= len(state.second):
            raise DecodeError(f"invalid second-level event code {code}", at)
        kind = state.second[code]
        if kind == g.U_EE:
            return None
        if kind == g.U_CH_UNTYPED:
            text = _read_string(reader)
            if state.ch_code is not None and g.VALUE_KEY not in result:
                result[g.VALUE_KEY] = text  # a value the datatype cannot represent
            elif text:
                raise DecodeError("untyped character data in element-only content is not "
                                  "supported", at)
            return self.states[state.untyped_next]
        if kind == g.U_AT_UNTYPED:
            attributes = state.attribute_productions
            third = reader.read(g.bits_for(len(attributes) + 1))
            if third < len(attributes):
                production = attributes[third]
                result[production[1]] = _read_string(reader)
                return self.states[production[3]]
            if third == len(attributes):
                raise DecodeError("AT(*) [untyped value]: an undeclared attribute (not "
                                  "supported)", at)
            raise DecodeError(f"invalid third-level event code {third}", at)
        raise DecodeError(f"{kind}: a schema deviation this codec does not support", at)

    # ============================================================================================
    # encoding
    # ============================================================================================

    def encode(self, message, fragment: bool = False, checked: bool = True) -> bytes:
        if not isinstance(message, dict):
            raise EncodeError(f"a message is a dict with the root element as its key, got "
                              f"{type(message).__name__}")
        writer = BitWriter()
        writer.write(HEADER, 8)
        if fragment:
            for key, value in message.items():
                entry = self.fragment_codes.get(key)
                if entry is None:
                    raise EncodeError(f"'{key}' is not an element of schema {self.schema}")
                code, type_index = entry
                items = value if isinstance(value, list) else [value]
                for i, item in enumerate(items):
                    writer.write(code, self.fragment_width)
                    try:
                        self._encode_element(writer, type_index, item, checked, key)
                    except EncodeError as error:
                        error.path.insert(0, key)
                        if isinstance(value, list):
                            error.path.insert(1, i)
                        raise
            writer.write(len(self.fragment) + 1, self.fragment_width)  # ED
        else:
            if len(message) != 1:
                raise EncodeError(f"a document has exactly one root element, got "
                                  f"{len(message)} keys: {', '.join(map(str, message))}")
            ((key, value),) = message.items()
            entry = self.document_codes.get(key)
            if entry is None:
                raise EncodeError(f"'{key}' is not a global element of schema {self.schema}"
                                  + (" (encode it as a fragment)" if key in self.fragment_codes
                                     else ""))
            code, type_index = entry
            writer.write(code, self.document_width)
            try:
                self._encode_element(writer, type_index, value, checked, key)
            except EncodeError as error:
                error.path.insert(0, key)
                raise
        return writer.getvalue()

    def _encode_element(self, writer, type_index, value, checked, key=None):
        entry = self.types[type_index]
        if entry.__class__ is SimpleType:
            if value is None:
                if checked:
                    raise EncodeError("missing value (null)")
                self._escape(writer, entry.start, g.U_EE)  # an element without content
                return
            try:
                bits, payload = self.value_encoders[entry.datatype](value, checked)
            except _Unrepresentable:
                state = self._encode_untyped(writer, entry.start, entry.start.productions[0], value)
                self._escape(writer, state, g.U_EE)
                return
            # §8.5.4.1.3.1: CH [schema-typed value] is code 0 of 1 bit, then EE is code 0 of 1 bit
            writer.write(0, 1)
            if bits >= 0:
                writer.write(payload, bits)
            else:
                _write_value(writer, bits, payload)
            writer.write(0, 1)
            return
        if not isinstance(value, dict):
            raise EncodeError(f"expected an object for {entry.name}, got {type(value).__name__}")
        if checked and entry.abstract:
            raise EncodeError(f"{entry.name} is abstract: use one of the elements that "
                              f"substitute for it")
        if entry.relaxed and key in self.relaxed_attribute_keys:
            names = self.relaxed_attribute_keys[key]
            spelled = next((local for local, qualified in names.items() if qualified in value), None)
            if spelled is not None:  # one JSON spelling per attribute: what decode gives back
                raise EncodeError(f"attribute {names[spelled]!r}: write it {spelled!r} (the JSON form names "
                                  f"the attribute {key} declares by its local name)")
            value = _rename(value, names)
        self._encode_complex(writer, entry, value, checked)

    def _encode_complex(self, writer, ctype, value, checked):
        states = self.states
        state = states[ctype.start]
        keys = list(value)
        if not ctype.relaxed:
            rank = ctype.rank
            try:
                ranks = [rank[k] for k in keys]
            except KeyError:
                unknown = next(k for k in keys if k not in rank)
                allowed = [k for k in rank if not self._abstract_key(ctype, k)]
                raise EncodeError(f"unknown key '{unknown}' for {ctype.name} (allowed: "
                                  f"{', '.join(allowed) or 'none'})") from None
            if ranks != sorted(ranks):
                keys.sort(key=rank.__getitem__)
        else:
            first = states[ctype.start]
            keys.sort(key=lambda k: 0 if first.by_key.get(k, (0, (None,)))[1][0] == g.P_AT else 1)
        encoders = self.value_encoders
        previous = None
        for key in keys:
            item = value[key]
            items = item if isinstance(item, list) and key != g.VALUE_KEY else (item,)
            for index, one in enumerate(items):
                entry = state.by_key.get(key)
                if entry is None:
                    state = self._unexpected(writer, state, key, previous, ctype, checked)
                    entry = state.by_key[key]
                code, production = entry
                kind = production[0]
                try:
                    if kind == g.P_SE:
                        writer.write(code, state.width)
                        self._encode_element(writer, production[2], one, checked, key)
                    elif kind == g.P_CH_MIXED:
                        if not isinstance(one, str):
                            raise EncodeError(f"mixed content text must be a string, got {one!r}")
                        writer.write(code, state.width)
                        _write_string(writer, one)
                    else:  # AT or CH with a schema-typed value
                        try:
                            bits, payload = encoders[production[2]](one, checked)
                        except _Unrepresentable:
                            state = self._encode_untyped(writer, state, production, one)
                            previous = key
                            continue
                        writer.write(code, state.width)
                        if bits >= 0:
                            writer.write(payload, bits)
                        else:
                            _write_value(writer, bits, payload)
                except EncodeError as error:
                    if items is item:
                        error.path.insert(0, index)
                    error.path.insert(0, key)
                    raise
                target = production[3]
                if target.__class__ is tuple:
                    state = states[_next_state(target, index + 1)]
                else:
                    state = states[target]
                previous = key
        if state.ee_code is not None:
            writer.write(state.ee_code, state.width)
        elif checked:
            raise EncodeError(self._missing(state, previous))
        else:
            self._escape(writer, state, g.U_EE)

    def _abstract_key(self, ctype, key) -> bool:
        child = ctype.keys.get(key, (False, None, None))[2]
        return child is not None and getattr(self.types[child], "abstract", False)

    def _encode_untyped(self, writer, state, production, value):
        """AT(qname) [untyped value] or CH [untyped value] (§8.5.4.4.1) for a value the
        datatype cannot represent; returns the next state."""
        if production[0] == g.P_AT:
            self._escape(writer, state, g.U_AT_UNTYPED)
            attributes = state.attribute_productions
            writer.write(attributes.index(production), g.bits_for(len(attributes) + 1))
            _write_string(writer, _lexical(value))
            return self.states[production[3]]
        self._escape(writer, state, g.U_CH_UNTYPED)
        _write_string(writer, _lexical(value))
        return self.states[state.untyped_next]

    def _unexpected(self, writer, state, key, previous, ctype, checked):
        """The current state has no production for ``key``. Unchecked, an attribute part may
        end early with an empty CH [untyped value] (dropping required attributes); otherwise
        this is an error naming what the schema expects here."""
        if not checked and state.attribute_phase and key not in ctype.attribute_keys:
            self._escape(writer, state, g.U_CH_UNTYPED)
            _write_string(writer, "")
            state = self.states[state.untyped_next]
            if key in state.by_key:
                return state
        if key == previous:
            raise EncodeError(f"too many '{key}' elements")
        missing = self._shortest_path(state, lambda s: key in s.by_key)
        if missing:
            raise EncodeError(f"missing required {missing} before '{key}'")
        raise EncodeError(f"'{key}' is not allowed here"
                          + (f" after '{previous}'" if previous else "")
                          + f" (expected {state.expected()})")

    def _missing(self, state, previous) -> str:
        """The error for an element that ends where the schema requires more content."""
        missing = self._shortest_path(state, lambda s: s.ee_code is not None)
        return f"missing required {missing or 'content'}" + (
            f" after '{previous}'" if previous else "")

    def _shortest_path(self, state, goal) -> str:
        """What is missing between ``state`` and the nearest state satisfying ``goal``, as
        "element 'A'", "elements 'A', 'B'" or "element: one of 'A', 'B'" (a choice)."""
        # a production is a tuple whose shape depends on its kind (harness.exi.grammar)
        frontier: list[tuple[State, list[tuple[Any, ...]]]] = [(state, [])]
        seen = {state.index}
        found: list[list[tuple[Any, ...]]] = []
        while frontier and not found:
            following = []
            for current, path in frontier:
                for production in current.productions:
                    if production[0] not in (g.P_SE, g.P_AT, g.P_CH):
                        continue
                    step = path + [production]
                    for target in _targets(production[3]):
                        reached = self.states[target]
                        if goal(reached):
                            found.append(step)
                        elif target not in seen:
                            seen.add(target)
                            following.append((reached, step))
            frontier = following
        if not found:
            return ""

        def name(production):
            return "a value" if production[0] == g.P_CH else f"'{production[1]}'"

        kind = "attribute" if found[0][0][0] == g.P_AT else "element"
        first_steps = list(dict.fromkeys(name(p[0]) for p in found))
        if len(first_steps) > 1 and len(found[0]) == 1:
            return f"{kind}: one of " + ", ".join(first_steps)
        if found[0][0][0] == g.P_CH:
            return "value"
        path = found[0]
        return f"{kind}{'s' if len(path) > 1 else ''} " + ", ".join(name(p) for p in path)

    def _escape(self, writer, state, kind):
        """Write a second-level event code (§8.5.4.4.1)."""
        writer.write(state.count, state.width)
        writer.write(state.second_codes[kind], state.second_width)


def _targets(target):
    """The state indices a production's target refers to."""
    if target.__class__ is tuple:
        return [t for t in target[2:] if t is not None]
    return [target]


def _rename(result: dict, names: dict) -> dict:
    """The dict with keys renamed, in the same order."""
    return {names.get(key, key): value for key, value in result.items()}


def _append(result, key, value):
    """Collect a repeated element where the grammar does not say it is a list (the relaxed
    element fragment grammar, or several top-level elements of a fragment). Element values are
    never lists themselves, so a list here always means repetition."""
    previous = result[key]
    if isinstance(previous, list):
        previous.append(value)
    else:
        result[key] = [previous, value]


# ================================================================================================
# value representations (EXI 1.0 §7.1, §7.2)
# ================================================================================================


def _read_string(reader) -> str:
    """A string value: a literal with length + 2 (§7.3.3); compact identifiers cannot occur
    because ISO 15118 streams never add values to the (then empty) value partitions."""
    at = reader.pos
    length = reader.read_unsigned()
    if length < 2:
        raise DecodeError(f"string table hit ({'local' if length == 0 else 'global'} value "
                          f"partition) but no values are ever added to the string table", at)
    length -= 2
    if length * 8 > reader.remaining():
        raise DecodeError(f"string length {length} exceeds the {reader.remaining() // 8} bytes "
                          f"left", at)
    if length == 0:
        return ""
    raw = reader.read_bytes(length)
    if raw.isascii():
        return raw.decode("ascii")
    # some characters need more than one octet: decode code points one by one (§7.1.10)
    reader.pos -= length * 8
    chars = []
    for _ in range(length):
        point = reader.read_unsigned()
        if point > 0x10FFFF or 0xD800 <= point <= 0xDFFF:
            raise DecodeError(f"invalid character code point {point:#x}", at)
        chars.append(chr(point))
    return "".join(chars)


def _write_string(writer, text: str) -> None:
    writer.write_unsigned(len(text) + 2)
    if text.isascii():
        writer.write_bytes(text.encode("ascii"))
    else:
        for char in text:
            writer.write_unsigned(ord(char))


def _write_value(writer, kind, payload):
    """Values that are not a single n-bit field: ``kind`` is one of the negative markers."""
    if kind == _UNSIGNED:
        writer.write_unsigned(payload)
    elif kind == _INTEGER:
        if payload < 0:
            writer.write(1, 1)
            writer.write_unsigned(-payload - 1)
        else:
            writer.write(0, 1)
            writer.write_unsigned(payload)
    elif kind == _STRING:
        _write_string(writer, payload)
    else:  # _BINARY
        writer.write_unsigned(len(payload))
        writer.write_bytes(payload)


_UNSIGNED, _INTEGER, _STRING, _BINARY = -1, -2, -3, -4


def _lexical(value) -> str:
    """The XML lexical form of a value for an untyped representation."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex().upper()
    return str(value)


def _value_decoder(datatype):
    kind = datatype[0]
    if kind == g.DT_BOOLEAN:
        return lambda reader: reader.read(1) == 1
    if kind == g.DT_NBIT:
        bits, low = datatype[2], datatype[3]
        return lambda reader: low + reader.read(bits)
    if kind == g.DT_UNSIGNED:
        return BitReader.read_unsigned
    if kind == g.DT_INTEGER:
        def integer(reader):
            negative = reader.read(1)
            magnitude = reader.read_unsigned()
            return -magnitude - 1 if negative else magnitude
        return integer
    if kind == g.DT_ENUM:
        values = datatype[2]
        bits = g.bits_for(len(values))

        def enumeration(reader):
            index = reader.read(bits)
            if index >= len(values):
                raise DecodeError(f"enumeration index {index} out of range ({datatype[1]} has "
                                  f"{len(values)} values)", reader.pos - bits)
            return values[index]
        return enumeration
    if kind == g.DT_STRING:
        return _read_string
    if kind in (g.DT_HEX, g.DT_BASE64):
        hexadecimal = kind == g.DT_HEX

        def binary(reader):
            at = reader.pos
            length = reader.read_unsigned()
            if length * 8 > reader.remaining():
                raise DecodeError(f"binary length {length} exceeds the "
                                  f"{reader.remaining() // 8} bytes left", at)
            raw = reader.read_bytes(length)
            return raw.hex().upper() if hexadecimal else base64.b64encode(raw).decode("ascii")
        return binary
    raise ValueError(f"unknown datatype kind {kind}")


def _value_encoder(datatype):
    """A function (value, checked) -> (bits, payload): ``bits`` >= 0 for an n-bit field, else a
    marker for _write_value. Raises EncodeError for invalid values when checked and
    _Unrepresentable when unchecked and the typed representation cannot carry the value."""
    kind, name = datatype[0], datatype[1]

    def invalid(message, checked):
        if checked:
            raise EncodeError(message)
        raise _Unrepresentable

    if kind == g.DT_BOOLEAN:
        def boolean(value, checked):
            if value is True:
                return 1, 1
            if value is False:
                return 1, 0
            invalid(f"expected true or false ({name}), got {value!r}", checked)
        return boolean
    if kind in (g.DT_NBIT, g.DT_UNSIGNED, g.DT_INTEGER):
        low, high = datatype[-2], datatype[-1]
        bits = datatype[2] if kind == g.DT_NBIT else None

        def integer(value, checked):
            if value.__class__ is not int:
                invalid(f"expected an integer ({name}), got {value!r}", checked)
            if low is not None and value < low:
                if checked:
                    raise EncodeError(f"{value} is below the minimum {low} ({name})")
                if kind == g.DT_NBIT or (kind == g.DT_UNSIGNED and value < 0):
                    raise _Unrepresentable  # no negative offset or unsigned value
            if high is not None and value > high:
                if checked:
                    raise EncodeError(f"{value} is above the maximum {high} ({name})")
                if bits is not None and value - low >= 1 << bits:
                    raise _Unrepresentable
            if kind == g.DT_NBIT:
                return bits, value - low
            if abs(value).bit_length() > 7 * MAX_UNSIGNED_OCTETS:
                invalid(f"{value} has more digits than this codec reads back ({name})", checked)
            if kind == g.DT_UNSIGNED:
                return _UNSIGNED, value
            return _INTEGER, value
        return integer
    if kind == g.DT_ENUM:
        values = datatype[2]
        index = {v: i for i, v in enumerate(values)}
        bits = g.bits_for(len(values))

        def enumeration(value, checked):
            position = index.get(value) if isinstance(value, str) else None
            if position is None:
                invalid(f"unknown value {value!r} ({name}: {', '.join(values)})", checked)
            return bits, position
        return enumeration
    if kind == g.DT_STRING:
        low, high = datatype[2], datatype[3]

        def string(value, checked):
            if not isinstance(value, str):
                if checked:
                    raise EncodeError(f"expected a string ({name}), got {value!r}")
                value = _lexical(value)
            if checked:
                if len(value) < low:
                    raise EncodeError(f"{len(value)} characters are fewer than the minimum "
                                      f"{low} ({name})")
                if high is not None and len(value) > high:
                    raise EncodeError(f"{len(value)} characters exceed the maximum {high} "
                                      f"({name})")
                if not value.isascii() and any(0xD800 <= ord(c) <= 0xDFFF for c in value):
                    raise EncodeError(f"string contains a surrogate code point ({name})")
            return _STRING, value
        return string
    if kind in (g.DT_HEX, g.DT_BASE64):
        low, high = datatype[2], datatype[3]
        hexadecimal = kind == g.DT_HEX

        def binary(value, checked):
            if isinstance(value, (bytes, bytearray)):
                raw = bytes(value)
            elif isinstance(value, str):
                try:
                    if hexadecimal:
                        if len(value) % 2 or not _HEX.fullmatch(value):
                            raise ValueError
                        raw = bytes.fromhex(value)
                    else:
                        raw = base64.b64decode(value, validate=True)
                except (ValueError, binascii.Error):
                    invalid(f"not valid {'hex' if hexadecimal else 'base64'} ({name}): "
                            f"{value[:40]!r}", checked)
            else:
                invalid(f"expected a {'hex' if hexadecimal else 'base64'} string ({name}), got "
                        f"{value!r}", checked)
            if checked:
                if len(raw) < low:
                    raise EncodeError(f"{len(raw)} bytes are fewer than the minimum {low} "
                                      f"({name})")
                if high is not None and len(raw) > high:
                    raise EncodeError(f"{len(raw)} bytes exceed the maximum {high} ({name})")
            return _BINARY, raw
        return binary
    raise ValueError(f"unknown datatype kind {kind}")


_CODECS: dict[str, SchemaCodec] = {}


def codec_for(schema: str) -> SchemaCodec:
    codec = _CODECS.get(schema)
    if codec is None:
        codec = _CODECS[schema] = SchemaCodec(schema)
    return codec
