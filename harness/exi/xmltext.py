"""The XML text of a message in JSON form, for people reading a decoded message.

The namespaces come from the grammar tables; each gets the prefix the schema files use and is
declared on the root element.
"""

from __future__ import annotations

from xml.sax.saxutils import escape, quoteattr

from harness.exi import grammar as g
from harness.exi.codec import SimpleType, codec_for

#: where the namespace declarations go in a root element's start tag, once all are known
_DECLARATIONS = "\0"


def to_xml(message: dict, schema: str, fragment: bool = False) -> str:
    """Render a decoded message (a document, or the elements of a fragment one after the other)
    as indented XML; every top-level element declares the namespaces it uses."""
    codec = codec_for(schema)
    entries = {key: (ns, t) for key, ns, t in (codec.fragment if fragment else codec.document)}
    out: list[str] = []
    for key, value in message.items():
        ns, type_index = entries[key]
        for item in value if isinstance(value, list) else [value]:
            used: set[int] = set()
            lines: list[str] = []
            _element(codec, key, ns, type_index, item, 0, lines, used)
            declarations = "".join(
                f" xmlns:{codec.prefixes[n]}={quoteattr(codec.namespaces[n])}"
                for n in sorted(used) if codec.namespaces[n])
            lines[0] = lines[0].replace(_DECLARATIONS, declarations, 1)
            out += lines
    return "\n".join(out) + "\n"


def _name(codec, key: str, ns: int, used: set) -> str:
    local = key.rpartition("}")[2]
    if codec.namespaces[ns]:
        used.add(ns)
        return f"{codec.prefixes[ns]}:{local}"
    return local


def _text(value) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    return escape(str(value))


def _element(codec, key, ns, type_index, value, depth, lines, used):
    indent = "  " * depth
    name = _name(codec, key, ns, used)
    entry = codec.types[type_index]
    if isinstance(entry, SimpleType) or not isinstance(value, dict):
        start = f"{indent}<{name}{_DECLARATIONS if depth == 0 else ''}"
        lines.append(f"{start}/>" if value is None else f"{start}>{_text(value)}</{name}>")
        return
    keys = entry.keys
    aliases = codec.relaxed_attribute_keys.get(key, {}) if entry.relaxed else {}
    attributes = []
    children = []
    text = None
    for child_key, child_value in value.items():
        lookup: str = aliases.get(child_key) or child_key
        is_attribute, child_ns, child_type = keys.get(lookup, (False, None, None))
        if is_attribute:
            attributes.append(f" {_name(codec, lookup, child_ns, used)}="
                              f"{quoteattr(_text(child_value))}")
        elif child_key == g.VALUE_KEY:
            text = child_value
        else:
            children.append((lookup, child_ns, child_type, child_value))
    start = f"{indent}<{name}{_DECLARATIONS if depth == 0 else ''}{''.join(attributes)}"
    if not children:
        lines.append(f"{start}/>" if text is None else f"{start}>{_text(text)}</{name}>")
        return
    lines.append(f"{start}>" + ("" if text is None else _text(text)))
    for child_key, child_ns, child_type, child_value in children:
        for item in child_value if isinstance(child_value, list) else [child_value]:
            _element(codec, child_key, child_ns, child_type, item, depth + 1, lines, used)
    lines.append(f"{indent}</{name}>")
