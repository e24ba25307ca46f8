"""Hypothesis strategies for random valid messages, built by walking the codec's own grammars.

A message is drawn element by element: in each grammar state one of the productions that can
still reach the end of the element is chosen (attributes, child elements, values, EE), so every
message respects the content model, the occurrence bounds and the facets. Wildcard content
(which the codec does not support) and abstract elements and types (not valid XML) are never
chosen.
"""

from __future__ import annotations

import base64

from hypothesis import strategies as st

from harness.exi import grammar as g
from harness.exi.codec import ComplexType, SimpleType, _next_state, codec_for

#: repetitions of one element beyond its minimum are capped here to keep examples small, except
#: that particles with a maximum up to this are sometimes filled to the maximum
REPEAT_CAP = 3
#: strings and binaries are capped at this length (plus their minimum length)
LENGTH_CAP = 24
#: the relaxed element fragment grammar can nest anything; keep it shallow
RELAXED_DEPTH = 2

_analysis: dict[str, tuple[set, set]] = {}


def _targets(target):
    if target.__class__ is tuple:
        return [t for t in target[2:] if t is not None]
    return [target]


def _finishing(schema: str) -> tuple[set, set]:
    """(states from which EE is reachable, types with an instance), by fixed point."""
    if schema not in _analysis:
        codec = codec_for(schema)
        finishing: set[int] = set()
        instantiable: set[int] = {i for i, t in enumerate(codec.types)
                                  if isinstance(t, SimpleType)}
        changed = True
        while changed:
            changed = False
            for state in codec.states:
                if state.index in finishing:
                    continue
                if any(_usable(codec, p, instantiable) and (
                        p[0] == g.P_EE or any(t in finishing for t in _targets(p[3])))
                       for p in state.productions):
                    finishing.add(state.index)
                    changed = True
            for i, entry in enumerate(codec.types):
                if i not in instantiable and isinstance(entry, ComplexType) \
                        and entry.start in finishing:
                    instantiable.add(i)
                    changed = True
        _analysis[schema] = (finishing, instantiable)
    return _analysis[schema]


def _usable(codec, production, instantiable) -> bool:
    kind = production[0]
    if kind == g.P_SE:
        child = codec.types[production[2]]
        return production[2] in instantiable and not getattr(child, "abstract", False)
    return kind in (g.P_EE, g.P_AT, g.P_CH, g.P_CH_MIXED)


def value(datatype: tuple) -> st.SearchStrategy:
    """Valid values of a DATATYPES entry, in their JSON form."""
    kind = datatype[0]
    if kind == g.DT_BOOLEAN:
        return st.booleans()
    if kind == g.DT_NBIT:
        return st.integers(datatype[3], datatype[4])
    if kind == g.DT_UNSIGNED:
        high = datatype[3] if datatype[3] is not None else 2**80
        return st.integers(datatype[2], high)
    if kind == g.DT_INTEGER:
        low = datatype[2] if datatype[2] is not None else -(2**80)
        high = datatype[3] if datatype[3] is not None else 2**80
        return st.integers(low, high)
    if kind == g.DT_ENUM:
        return st.sampled_from(datatype[2])
    low, high = datatype[2], datatype[3]
    cap = low + LENGTH_CAP if high is None else min(high, low + LENGTH_CAP)
    sizes = st.integers(low, cap) if high is None or high <= cap else st.one_of(
        st.integers(low, cap), st.just(high))
    if kind == g.DT_STRING:
        return sizes.flatmap(lambda n: st.text(min_size=n, max_size=n))
    binary = sizes.flatmap(lambda n: st.binary(min_size=n, max_size=n))
    if kind == g.DT_HEX:
        return binary.map(lambda b: b.hex().upper())
    return binary.map(lambda b: base64.b64encode(b).decode("ascii"))


@st.composite
def element(draw, schema: str, type_index: int, depth: int = 0):
    """The JSON value of an element whose content grammar is TYPES[type_index]."""
    codec = codec_for(schema)
    entry = codec.types[type_index]
    if isinstance(entry, SimpleType):
        return draw(value(codec.datatypes[entry.datatype]))
    finishing, instantiable = _finishing(schema)
    state = codec.states[entry.start]
    result: dict = {}
    had_element = False
    steps = 0
    while True:
        steps += 1
        options = []
        for production in state.productions:
            kind = production[0]
            if not _usable(codec, production, instantiable):
                continue
            if kind == g.P_EE:
                options.append(production)
                continue
            if not any(t in finishing for t in _targets(production[3])):
                continue
            key = production[1]
            if kind == g.P_SE:
                if entry.relaxed and (depth >= RELAXED_DEPTH or key in result):
                    continue
                if production[5] is False and key in result:
                    continue
                if production[5] and len(result.get(key, ())) >= REPEAT_CAP:
                    target = production[3]
                    high = target[1] if target.__class__ is tuple else None
                    below = target.__class__ is tuple and len(result[key]) < target[0]
                    if not below and (high is None or high > 24 or steps > 200):
                        continue
            elif kind in (g.P_AT, g.P_CH) and key in result:
                continue
            elif kind == g.P_CH_MIXED and (had_element or g.VALUE_KEY in result):
                continue
            options.append(production)
        assert options, f"no way forward in state {state.index} of {entry.name}"
        ends = [p for p in options if p[0] == g.P_EE]
        if ends and (steps > 60 or draw(st.integers(0, 3)) == 0):
            return result
        choices = [p for p in options if p[0] != g.P_EE] or ends
        production = choices[draw(st.integers(0, len(choices) - 1))]
        kind = production[0]
        if kind == g.P_EE:
            return result
        key = production[1]
        if kind == g.P_SE:
            child = draw(element(schema, production[2], depth + 1))
            if production[5]:
                result.setdefault(key, []).append(child)
            else:
                result[key] = child
            had_element = True
        elif kind in (g.P_AT, g.P_CH):
            result[key] = draw(value(codec.datatypes[production[2]]))
        else:  # mixed text
            result[key] = draw(st.text(max_size=LENGTH_CAP))
        target = production[3]
        if target.__class__ is tuple:
            state = codec.states[_next_state(target, len(result[key]))]
        else:
            state = codec.states[target]


def document_roots(schema: str) -> list[str]:
    """Global elements that can be the root of a valid document."""
    codec = codec_for(schema)
    _, instantiable = _finishing(schema)
    return [key for key, _, t in codec.document
            if t in instantiable and not getattr(codec.types[t], "abstract", False)]


def body_elements(schema: str) -> list[str]:
    """The message types of a DIN or -2 V2G_Message: the elements that may fill its Body."""
    codec = codec_for(schema)
    _, v2g_type = codec.document_codes["V2G_Message"]
    body = codec.types[codec.types[v2g_type].keys["Body"][2]]
    _, instantiable = _finishing(schema)
    return [p[1] for p in codec.states[body.start].productions
            if p[0] == g.P_SE and p[2] in instantiable and not codec.types[p[2]].abstract]


@st.composite
def document(draw, schema: str, root: str, body: str | None = None):
    """A whole document with the given root element; for V2G_Message, with ``body`` as the
    message in its Body."""
    codec = codec_for(schema)
    _, type_index = codec.document_codes[root]
    if body is None:
        return {root: draw(element(schema, type_index))}
    v2g = codec.types[type_index]
    header_type = v2g.keys["Header"][2]
    body_type = codec.types[v2g.keys["Body"][2]]
    message_type = body_type.keys[body][2]
    return {root: {"Header": draw(element(schema, header_type)),
                   "Body": {body: draw(element(schema, message_type))}}}


@st.composite
def fragment(draw, schema: str, keys: list[str] | None = None):
    """An EXI fragment of one element (any element declared in the schema, or one of keys)."""
    codec = codec_for(schema)
    _, instantiable = _finishing(schema)
    candidates = keys or [key for key, _, t in codec.fragment
                          if t in instantiable and not getattr(codec.types[t], "abstract", False)]
    key = draw(st.sampled_from(candidates))
    _, type_index = codec.fragment_codes[key]
    drawn = draw(element(schema, type_index))
    # an attribute the element declares is spelled by its local name in the JSON form (the
    # qualified spelling of the same attribute is refused: one spelling per attribute)
    local = {qualified: name for name, qualified in codec.relaxed_attribute_keys.get(key, {}).items()}
    return {key: {local.get(k, k): v for k, v in drawn.items()} if isinstance(drawn, dict) else drawn}
