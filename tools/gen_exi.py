#!/usr/bin/env python3
"""Generate the EXI grammar tables in ``harness/exi/grammars/`` from the XML schemas.

Usage: ``python tools/gen_exi.py [SCHEMA_DIR] [--out DIR]``. SCHEMA_DIR defaults to
``../shared/schemas`` relative to the repository root, DIR to ``harness/exi/grammars``. The
output is deterministic: the same schema files always give the same bytes, so the committed
modules can be checked by regenerating them (tests/exi/test_generator.py).

The work follows EXI 1.0 §8.5: a small XML Schema reader builds the schema components, then for
each element content grammar the normalized grammar is built directly as a Glushkov automaton of
the content model (positions = element and wildcard particles in depth-first "schema order",
§8.5.4.3), which accepts exactly what the proto-grammar of §8.5.4.1 accepts and has the same
productions in every state. Particles with bounds other than 0..1 and 1..1 are not unrolled into
{max occurs} copies (§8.5.4.1.5) but get three states (fewer than min seen, in range, max seen)
and a counter kept by the codec. Event codes are assigned per §8.5.4.3 and the undeclared
productions of non-strict grammars are added per §8.5.4.4.1 (with the options ISO 15118 uses:
no prefixes, comments, PIs, DTD or self-contained elements).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as a script from a source tree
    sys.path.insert(0, str(REPO_ROOT))

from harness.exi import grammar as g  # noqa: E402  (after the path fix above)

XS = "http://www.w3.org/2001/XMLSchema"
DEFAULT_SCHEMA_DIR = REPO_ROOT.parent / "shared" / "schemas"
DEFAULT_OUT_DIR = REPO_ROOT / "harness" / "exi" / "grammars"

#: schema name -> (entry schema file, description); each grammar covers the entry file and
#: everything it imports
SCHEMAS: dict[str, tuple[str, str]] = {
    "sap": ("V2G_CI_AppProtocol.xsd", "supportedAppProtocol handshake (urn:iso:15118:2:2010:AppProtocol)"),
    "din": ("din_spec/V2G_CI_MsgDef.xsd", "DIN SPEC 70121 (urn:din:70121:2012:MsgDef)"),
    "iso2": ("iso15118_2/V2G_CI_MsgDef.xsd", "ISO 15118-2 (urn:iso:15118:2:2013:MsgDef)"),
    "iso20": ("iso15118_20/V2G_CI_CommonMessages.xsd", "ISO 15118-20 common messages"),
    "iso20-ac": ("iso15118_20/V2G_CI_AC.xsd", "ISO 15118-20 AC messages"),
    "iso20-dc": ("iso15118_20/V2G_CI_DC.xsd", "ISO 15118-20 DC messages"),
    "iso20-wpt": ("iso15118_20/V2G_CI_WPT.xsd", "ISO 15118-20 WPT messages"),
    "iso20-acdp": ("iso15118_20/V2G_CI_ACDP.xsd", "ISO 15118-20 ACDP messages"),
    "xmldsig": ("xmldsig-core-schema.xsd", "W3C XML Signature (http://www.w3.org/2000/09/xmldsig#)"),
}


class SchemaError(Exception):
    """The schemas use something this generator does not support."""


def module_name(schema: str) -> str:
    return schema.replace("-", "_")


# =================================================================================================
# Schema components (the subset of XML Schema 1.0 the V2G schemas use)
# =================================================================================================

QName = tuple  # (namespace, local name)


@dataclass(eq=False)
class SimpleType:
    name: str | None
    ns: str
    base: "SimpleType | None"
    facets: dict = field(default_factory=dict)
    builtin: bool = False
    description: str = ""

    def label(self) -> str:
        return self.name or self.description or "anonymous simple type"


@dataclass(eq=False)
class AttributeUse:
    name: str
    ns: str
    type: SimpleType
    required: bool


@dataclass(eq=False)
class Wildcard:
    kind: str  # "any" (##any), "other" (##other) or "list" (explicit namespaces)
    namespaces: tuple = ()


@dataclass(eq=False)
class Group:
    compositor: str  # sequence | choice | all
    particles: list


@dataclass(eq=False)
class Particle:
    min: int
    max: int | None  # None = unbounded
    term: object  # Element | Wildcard | Group


@dataclass(eq=False)
class ComplexType:
    name: str | None
    ns: str
    abstract: bool = False
    mixed: bool = False
    attributes: list = field(default_factory=list)
    attribute_wildcard: Wildcard | None = None
    content: object = None  # None (empty) | Particle | SimpleType (simple content)
    description: str = ""

    def label(self) -> str:
        return self.name or self.description or "anonymous complex type"


@dataclass(eq=False)
class Element:
    name: str
    ns: str
    type: object = None  # SimpleType | ComplexType, resolved lazily
    abstract: bool = False
    nillable: bool = False
    head: "Element | None" = None
    is_global: bool = False

    @property
    def qname(self) -> QName:
        return (self.ns, self.name)


# --- built-in simple types -------------------------------------------------------------------------

INT64 = 2**63
BUILTIN_BASES = {
    "anySimpleType": None,
    "string": "anySimpleType", "normalizedString": "string", "token": "normalizedString",
    "language": "token", "Name": "token", "NMTOKEN": "token", "NCName": "Name",
    "ID": "NCName", "IDREF": "NCName", "ENTITY": "NCName",
    "anyURI": "anySimpleType", "QName": "anySimpleType", "NOTATION": "anySimpleType",
    "boolean": "anySimpleType", "base64Binary": "anySimpleType", "hexBinary": "anySimpleType",
    "float": "anySimpleType", "double": "anySimpleType", "decimal": "anySimpleType",
    "duration": "anySimpleType", "dateTime": "anySimpleType", "time": "anySimpleType",
    "date": "anySimpleType", "gYearMonth": "anySimpleType", "gYear": "anySimpleType",
    "gMonthDay": "anySimpleType", "gDay": "anySimpleType", "gMonth": "anySimpleType",
    "integer": "decimal", "nonPositiveInteger": "integer", "negativeInteger": "nonPositiveInteger",
    "long": "integer", "int": "long", "short": "int", "byte": "short",
    "nonNegativeInteger": "integer", "unsignedLong": "nonNegativeInteger",
    "unsignedInt": "unsignedLong", "unsignedShort": "unsignedInt", "unsignedByte": "unsignedShort",
    "positiveInteger": "nonNegativeInteger",
}
BUILTIN_FACETS = {
    "nonPositiveInteger": {"maxInclusive": 0}, "negativeInteger": {"maxInclusive": -1},
    "long": {"minInclusive": -INT64, "maxInclusive": INT64 - 1},
    "int": {"minInclusive": -(2**31), "maxInclusive": 2**31 - 1},
    "short": {"minInclusive": -(2**15), "maxInclusive": 2**15 - 1},
    "byte": {"minInclusive": -128, "maxInclusive": 127},
    "nonNegativeInteger": {"minInclusive": 0}, "unsignedLong": {"maxInclusive": 2**64 - 1},
    "unsignedInt": {"maxInclusive": 2**32 - 1}, "unsignedShort": {"maxInclusive": 2**16 - 1},
    "unsignedByte": {"maxInclusive": 255}, "positiveInteger": {"minInclusive": 1},
}
BINARY_KINDS = {"hexBinary": g.DT_HEX, "base64Binary": g.DT_BASE64}


# =================================================================================================
# Reading schema documents
# =================================================================================================


@dataclass
class SchemaDocument:
    path: Path
    root: ET.Element
    target_ns: str
    element_qualified: bool
    attribute_qualified: bool
    prefixes: dict  # prefix -> namespace


class SchemaSet:
    """All components of one entry schema file and the files it imports or includes."""

    def __init__(self, schema_dir: Path, entry: str):
        self.schema_dir = schema_dir
        self.documents: list[SchemaDocument] = []
        self._loaded: set[Path] = set()
        self.builtins: dict[str, SimpleType] = {}
        self.elements: dict[QName, Element] = {}  # global element declarations
        self.all_elements: list[Element] = []  # every element declaration, global and local
        self.attributes: dict[QName, ET.Element] = {}
        self._type_nodes: dict[QName, tuple[ET.Element, SchemaDocument]] = {}
        self._types: dict[QName, object] = {}
        self._element_nodes: dict[QName, tuple[ET.Element, SchemaDocument]] = {}
        self.prefix_of: dict[str, str] = {}  # namespace -> prefix used in the schema files
        self._load(schema_dir / entry)
        # create every declaration, so the fragment grammar sees local elements too (§8.5.2)
        for qname in sorted(self._element_nodes, key=lambda q: (q[1], q[0])):
            self.global_element(qname)
        for qname in sorted(self._type_nodes, key=lambda q: (q[1], q[0])):
            self.named_type(qname)

    # --- loading ------------------------------------------------------------------------------

    def _resolve_location(self, base: Path, location: str) -> Path:
        candidate = (base.parent / location).resolve()
        if candidate.exists():
            return candidate
        # the -20 and DIN files expect xmldsig-core-schema.xsd next to them; find it by name
        matches = sorted(p for p in self.schema_dir.rglob(Path(location).name))
        if len(matches) != 1:
            raise SchemaError(f"{base.name}: cannot resolve schemaLocation {location!r}")
        return matches[0].resolve()

    def _load(self, path: Path) -> None:
        path = path.resolve()
        if path in self._loaded:
            return
        self._loaded.add(path)
        prefixes = {}
        root = None
        for event, item in ET.iterparse(path, events=("start-ns", "start")):
            if event == "start-ns":
                prefix, uri = item
                if prefixes.get(prefix, uri) != uri:
                    raise SchemaError(f"{path.name}: prefix {prefix!r} redefined")
                prefixes[prefix] = uri
                if prefix and uri != XS:
                    self.prefix_of.setdefault(uri, prefix)
            elif root is None:
                root = item
        assert root is not None
        doc = SchemaDocument(
            path=path,
            root=root,
            target_ns=root.get("targetNamespace", ""),
            element_qualified=root.get("elementFormDefault") == "qualified",
            attribute_qualified=root.get("attributeFormDefault") == "qualified",
            prefixes=prefixes,
        )
        self.documents.append(doc)
        for child in root:
            tag = _local(child.tag)
            if tag in ("import", "include"):
                location = child.get("schemaLocation")
                if location:
                    self._load(self._resolve_location(path, location))
            elif tag == "element":
                self._register(self._element_nodes, (doc.target_ns, child.get("name")), child, doc)
            elif tag in ("complexType", "simpleType"):
                self._register(self._type_nodes, (doc.target_ns, child.get("name")), child, doc)
            elif tag == "attribute":
                self.attributes[(doc.target_ns, child.get("name"))] = (child, doc)
            elif tag in ("group", "attributeGroup", "redefine", "notation"):
                raise SchemaError(f"{path.name}: xs:{tag} is not supported")

    @staticmethod
    def _register(table, qname, node, doc):
        if qname in table:
            raise SchemaError(f"{doc.path.name}: {qname} declared twice")
        table[qname] = (node, doc)

    # --- QName resolution ---------------------------------------------------------------------

    @staticmethod
    def _qname(value: str, doc: SchemaDocument) -> QName:
        prefix, _, local = value.rpartition(":")
        if prefix not in doc.prefixes and prefix:
            raise SchemaError(f"{doc.path.name}: unknown prefix in {value!r}")
        return (doc.prefixes.get(prefix, ""), local)

    def builtin(self, name: str) -> SimpleType:
        if name not in BUILTIN_BASES:
            raise SchemaError(f"built-in type xs:{name} is not supported")
        if name not in self.builtins:
            base = BUILTIN_BASES[name]
            self.builtins[name] = SimpleType(
                name=name, ns=XS, base=self.builtin(base) if base else None,
                facets=dict(BUILTIN_FACETS.get(name, {})), builtin=True,
            )
        return self.builtins[name]

    def named_type(self, qname: QName):
        if qname[0] == XS:
            if qname[1] == "anyType":
                return self.any_type()
            return self.builtin(qname[1])
        if qname not in self._types:
            if qname not in self._type_nodes:
                raise SchemaError(f"unknown type {qname}")
            node, doc = self._type_nodes[qname]
            self._types[qname] = None  # guards against circular derivations
            if _local(node.tag) == "simpleType":
                self._types[qname] = self._simple_type(node, doc, qname[1])
            else:
                self._types[qname] = self._complex_type(node, doc, qname[1])
        result = self._types[qname]
        if result is None:
            raise SchemaError(f"circular type definition {qname}")
        return result

    def any_type(self) -> ComplexType:
        """The complex ur-type: any attributes, mixed content of any elements (§8.5.4.1.3)."""
        if ("", "#anyType") not in self._types:
            self._types[("", "#anyType")] = ComplexType(
                name="anyType", ns=XS, mixed=True, attribute_wildcard=Wildcard("any"),
                content=Particle(1, 1, Group("sequence", [Particle(0, None, Wildcard("any"))])),
            )
        return self._types[("", "#anyType")]

    def global_element(self, qname: QName) -> Element:
        if qname not in self.elements:
            if qname not in self._element_nodes:
                raise SchemaError(f"unknown element {qname}")
            node, doc = self._element_nodes[qname]
            element = Element(
                name=qname[1], ns=qname[0], abstract=node.get("abstract") == "true",
                nillable=node.get("nillable") == "true", is_global=True,
            )
            self.elements[qname] = element
            self.all_elements.append(element)
            if node.get("substitutionGroup"):
                element.head = self.global_element(self._qname(node.get("substitutionGroup"), doc))
            element.type = self._element_type(node, doc, element)
        return self.elements[qname]

    # --- component construction ---------------------------------------------------------------

    def _element_type(self, node, doc, element):
        if node.get("type"):
            return self.named_type(self._qname(node.get("type"), doc))
        for child in node:
            tag = _local(child.tag)
            if tag == "complexType":
                return self._complex_type(child, doc, None, f"type of element {element.name}")
            if tag == "simpleType":
                return self._simple_type(child, doc, None, f"type of element {element.name}")
        if element.head is not None:  # XML Schema: the head's type is the default
            return element.head.type
        return self.any_type()

    def _simple_type(self, node, doc, name, description=""):
        children = [c for c in node if _local(c.tag) != "annotation"]
        if len(children) != 1 or _local(children[0].tag) != "restriction":
            raise SchemaError(f"{doc.path.name}: simple type {name}: only restriction is supported")
        restriction = children[0]
        if restriction.get("base"):
            base = self.named_type(self._qname(restriction.get("base"), doc))
        else:
            inline = [c for c in restriction if _local(c.tag) == "simpleType"]
            base = self._simple_type(inline[0], doc, None, description)
        if not isinstance(base, SimpleType):
            raise SchemaError(f"simple type {name} derives from a complex type")
        return SimpleType(name=name, ns=doc.target_ns, base=base,
                          facets=_facets(restriction, name, doc), description=description)

    def _complex_type(self, node, doc, name, description=""):
        ctype = ComplexType(name=name, ns=doc.target_ns, abstract=node.get("abstract") == "true",
                            mixed=node.get("mixed") == "true", description=description)
        body = [c for c in node if _local(c.tag) != "annotation"]
        if body and _local(body[0].tag) in ("complexContent", "simpleContent"):
            content_node = body[0]
            if content_node.get("mixed") == "true":
                ctype.mixed = True
            derivation = [c for c in content_node if _local(c.tag) != "annotation"][0]
            kind = _local(derivation.tag)
            base = self.named_type(self._qname(derivation.get("base"), doc))
            own_attributes, own_wildcard = self._attributes(derivation, doc)
            if _local(content_node.tag) == "simpleContent":
                if kind != "extension":
                    raise SchemaError(f"{ctype.label()}: simpleContent restriction not supported")
                if isinstance(base, SimpleType):
                    ctype.content = base
                    base_attributes = []
                else:
                    if not isinstance(base.content, SimpleType):
                        raise SchemaError(f"{ctype.label()}: simpleContent of a non-simple base")
                    ctype.content = base.content
                    base_attributes = base.attributes
                ctype.attributes = base_attributes + own_attributes
                ctype.attribute_wildcard = own_wildcard
            else:
                if kind != "extension":
                    raise SchemaError(f"{ctype.label()}: complexContent restriction not supported")
                own = self._content_particle(derivation, doc)
                base_content = base.content
                if isinstance(base_content, SimpleType):
                    raise SchemaError(f"{ctype.label()}: complex extension of simple content")
                if _is_empty(base_content):
                    ctype.content = own
                elif _is_empty(own):
                    ctype.content = base_content
                else:  # XML Schema §3.4.2: a sequence of the base particle and the extension
                    ctype.content = Particle(1, 1, Group("sequence", [base_content, own]))
                ctype.attributes = base.attributes + own_attributes
                ctype.attribute_wildcard = own_wildcard or base.attribute_wildcard
                ctype.mixed = ctype.mixed or base.mixed
        else:
            ctype.content = self._content_particle(node, doc)
            ctype.attributes, ctype.attribute_wildcard = self._attributes(node, doc)
        names = [(a.ns, a.name) for a in ctype.attributes]
        if len(set(names)) != len(names):
            raise SchemaError(f"{ctype.label()}: duplicate attribute")
        return ctype

    def _attributes(self, node, doc):
        uses, wildcard = [], None
        for child in node:
            tag = _local(child.tag)
            if tag == "attribute":
                if child.get("use") == "prohibited":
                    continue
                if child.get("ref"):
                    qname = self._qname(child.get("ref"), doc)
                    decl, decl_doc = self.attributes[qname]
                    uses.append(AttributeUse(qname[1], qname[0],
                                             self._attribute_type(decl, decl_doc),
                                             child.get("use") == "required"))
                else:
                    form = child.get("form")
                    qualified = form == "qualified" if form else doc.attribute_qualified
                    uses.append(AttributeUse(child.get("name"), doc.target_ns if qualified else "",
                                             self._attribute_type(child, doc),
                                             child.get("use") == "required"))
            elif tag == "anyAttribute":
                wildcard = _wildcard(child, doc)
        return uses, wildcard

    def _attribute_type(self, node, doc):
        if node.get("type"):
            result = self.named_type(self._qname(node.get("type"), doc))
        else:
            inline = [c for c in node if _local(c.tag) == "simpleType"]
            result = (self._simple_type(inline[0], doc, None, f"type of attribute {node.get('name')}")
                      if inline else self.builtin("anySimpleType"))
        if not isinstance(result, SimpleType):
            raise SchemaError(f"attribute {node.get('name')} has a complex type")
        return result

    def _content_particle(self, node, doc):
        for child in node:
            tag = _local(child.tag)
            if tag in ("sequence", "choice", "all"):
                return self._group_particle(child, doc)
            if tag == "group":
                raise SchemaError("xs:group is not supported")
        return None

    def _group_particle(self, node, doc):
        particles = []
        for child in node:
            tag = _local(child.tag)
            if tag in ("sequence", "choice", "all"):
                particles.append(self._group_particle(child, doc))
            elif tag == "element":
                particles.append(self._element_particle(child, doc))
            elif tag == "any":
                particles.append(Particle(*_occurs(child), _wildcard(child, doc)))
            elif tag != "annotation":
                raise SchemaError(f"{doc.path.name}: xs:{tag} in a model group is not supported")
        return Particle(*_occurs(node), Group(_local(node.tag), particles))

    def _element_particle(self, node, doc):
        if node.get("ref"):
            term = self.global_element(self._qname(node.get("ref"), doc))
        else:
            form = node.get("form")
            qualified = form == "qualified" if form else doc.element_qualified
            term = Element(name=node.get("name"), ns=doc.target_ns if qualified else "",
                           nillable=node.get("nillable") == "true")
            self.all_elements.append(term)
            term.type = self._element_type(node, doc, term)
        return Particle(*_occurs(node), term)

    # --- derived information ------------------------------------------------------------------

    def substitution_set(self, element: Element) -> list[Element]:
        """The element and every global element that reaches it by substitution (§8.5.4.1.6)."""
        members = [element]
        for candidate in self.elements.values():
            head = candidate.head
            while head is not None:
                if head is element:
                    members.append(candidate)
                    break
                head = head.head
        return sorted(members, key=lambda e: (e.name, e.ns))


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _occurs(node) -> tuple[int, int | None]:
    low = int(node.get("minOccurs", "1"))
    high = node.get("maxOccurs", "1")
    return low, None if high == "unbounded" else int(high)


def _wildcard(node, doc) -> Wildcard:
    value = node.get("namespace", "##any")
    if value == "##any":
        return Wildcard("any")
    if value == "##other":
        return Wildcard("other", (doc.target_ns,))
    names = []
    for item in value.split():
        names.append(doc.target_ns if item == "##targetNamespace" else "" if item == "##local" else item)
    return Wildcard("list", tuple(sorted(names)))


def _is_empty(content) -> bool:
    """Empty content: no particle, or a model group without particles."""
    return content is None or (isinstance(content, Particle) and isinstance(content.term, Group)
                               and not content.term.particles)


FACET_NAMES = {"enumeration", "minInclusive", "maxInclusive", "minExclusive", "maxExclusive",
               "length", "minLength", "maxLength", "pattern", "whiteSpace", "totalDigits",
               "fractionDigits"}


def _facets(restriction, name, doc) -> dict:
    facets: dict = {}
    for child in restriction:
        tag = _local(child.tag)
        if tag in ("annotation", "simpleType"):
            continue
        if tag not in FACET_NAMES:
            raise SchemaError(f"{doc.path.name}: facet {tag} of {name}")
        value = child.get("value")
        if tag == "enumeration":
            facets.setdefault("enumeration", []).append(value)
        elif tag == "pattern":
            raise SchemaError(f"{doc.path.name}: pattern facets (restricted character sets, "
                              f"EXI 1.0 §7.1.10.1) are not supported ({name})")
        elif tag in ("whiteSpace", "totalDigits", "fractionDigits"):
            continue  # no influence on the EXI representation of the types in use
        else:
            facets[tag] = int(value)
    return facets


# =================================================================================================
# EXI datatype representation of simple types (EXI 1.0 §7)
# =================================================================================================


def _chain(stype: SimpleType):
    while stype is not None:
        yield stype
        stype = stype.base


def datatype_of(stype: SimpleType) -> tuple:
    """The DATATYPES entry of a simple type: (kind, name, *parameters)."""
    chain = list(_chain(stype))
    builtin = next(t for t in chain if t.builtin)
    label = stype.label()
    enumeration = next((t.facets["enumeration"] for t in chain if "enumeration" in t.facets), None)
    family = [t.name for t in _chain(builtin)]
    if enumeration is not None:
        if "string" not in family:
            raise SchemaError(f"{label}: enumeration of {builtin.name} is not supported")
        return (g.DT_ENUM, label, tuple(enumeration))
    if "integer" in family:
        low = high = None
        for t in chain:  # the most restrictive bounds anywhere in the derivation chain
            facets = t.facets
            for value in (facets.get("minInclusive"), _plus(facets.get("minExclusive"), 1)):
                if value is not None and (low is None or value > low):
                    low = value
            for value in (facets.get("maxInclusive"), _plus(facets.get("maxExclusive"), -1)):
                if value is not None and (high is None or value < high):
                    high = value
        if low is not None and high is not None and high - low + 1 <= 4096:  # §7.1.5
            return (g.DT_NBIT, label, g.bits_for(high - low + 1), low, high)
        if low is not None and low >= 0:
            return (g.DT_UNSIGNED, label, low, high)
        return (g.DT_INTEGER, label, low, high)
    if builtin.name == "boolean":
        return (g.DT_BOOLEAN, label)
    lengths = _lengths(chain)
    if builtin.name in BINARY_KINDS:
        return (BINARY_KINDS[builtin.name], label) + lengths
    if "string" in family or builtin.name in ("anyURI", "anySimpleType"):
        return (g.DT_STRING, label) + lengths
    raise SchemaError(f"{label}: datatype {builtin.name} is not supported")


def _plus(value, delta):
    return None if value is None else value + delta


def _lengths(chain) -> tuple[int, int | None]:
    low, high = 0, None
    for t in chain:
        facets = t.facets
        if "length" in facets:
            low = max(low, facets["length"])
            high = facets["length"] if high is None else min(high, facets["length"])
        if "minLength" in facets:
            low = max(low, facets["minLength"])
        if "maxLength" in facets:
            high = facets["maxLength"] if high is None else min(high, facets["maxLength"])
    return (low, high)


# =================================================================================================
# Grammar construction
# =================================================================================================

ATTRIBUTE_START, ATTRIBUTE, CONTENT = "attribute-start", "attribute", "content"


@dataclass(eq=False)
class State:
    phase: str
    productions: list  # sorted production tuples (with state objects as targets for now)
    label: str
    untyped_next: "State | None" = None
    index: int = -1

    def second_level(self) -> tuple:
        """The undeclared productions of EXI 1.0 §8.5.4.4.1 for this state, in code order."""
        has_ee = any(p[0] == g.P_EE for p in self.productions)
        result = [] if has_ee else [g.U_EE]
        if self.phase == ATTRIBUTE_START:
            result += [g.U_XSI_TYPE, g.U_XSI_NIL]
        if self.phase in (ATTRIBUTE_START, ATTRIBUTE):
            result += [g.U_AT_ANY, g.U_AT_UNTYPED]
        result += [g.U_SE_ANY, g.U_CH_UNTYPED]
        return tuple(result)


@dataclass
class Position:
    index: int
    particle: Particle
    counted: bool  # bounds other than 0..1 and 1..1: needs a counter


class GrammarBuilder:
    """Builds the tables of one schema set."""

    def __init__(self, schemas: SchemaSet):
        self.schemas = schemas
        self.namespaces: list[str] = [""]
        self.datatypes: list[tuple] = []
        self._datatype_index: dict[tuple, int] = {}
        self.types: list[list] = []  # [kind, name, datatype or start, start or abstract, keys]
        self._type_index: dict[object, int] = {}
        self.states: list[State] = []
        self._pending: list[tuple[object, int]] = []
        self._element_types = self._declared_types()

    # --- shared tables ------------------------------------------------------------------------

    def namespace(self, uri: str) -> int:
        if uri not in self.namespaces:
            self.namespaces.append(uri)
        return self.namespaces.index(uri)

    def datatype(self, stype: SimpleType) -> int:
        entry = datatype_of(stype)
        if entry not in self._datatype_index:
            self._datatype_index[entry] = len(self.datatypes)
            self.datatypes.append(entry)
        return self._datatype_index[entry]

    def new_state(self, phase, label) -> State:
        state = State(phase=phase, productions=[], label=label)
        state.index = len(self.states)
        self.states.append(state)
        return state

    def _declared_types(self) -> dict[QName, list]:
        """Element qname -> the distinct (type, nillable) pairs it is declared with."""
        result: dict[QName, list] = {}
        for element in self.schemas.all_elements:
            entries = result.setdefault(element.qname, [])
            if not any(t is element.type and n == element.nillable for t, n in entries):
                entries.append((element.type, element.nillable))
        return result

    # --- element content grammars -------------------------------------------------------------

    def type_grammar(self, typedef) -> int:
        """Index in TYPES of the grammar of an element of this type; built on first use."""
        if typedef in self._type_index:
            return self._type_index[typedef]
        index = len(self.types)
        self._type_index[typedef] = index
        if isinstance(typedef, SimpleType):
            datatype = self.datatype(typedef)
            self.types.append([g.TYPE_SIMPLE, typedef.label(), datatype, None, ()])
        else:
            self.types.append([g.TYPE_COMPLEX, typedef.label(), None, typedef.abstract, ()])
        self._pending.append((typedef, index))
        return index

    def build_pending(self) -> None:
        while self._pending:
            typedef, index = self._pending.pop(0)
            if isinstance(typedef, SimpleType):
                self.types[index][3] = self._simple_grammar(typedef, self.types[index][2])
            else:
                self.types[index][2], self.types[index][4] = self._complex_grammar(typedef)

    def _simple_grammar(self, stype: SimpleType, datatype: int) -> int:
        """§8.5.4.1.3.1: Type_0: CH [schema-typed value] Type_1; Type_1: EE."""
        name = stype.label()
        start = self.new_state(ATTRIBUTE_START, f"{name}: start")
        content2 = self.new_state(CONTENT, f"{name}: content2")
        after = self.new_state(CONTENT, f"{name}: after value")
        start.productions = [(g.P_CH, g.VALUE_KEY, datatype, after)]
        content2.productions = list(start.productions)
        after.productions = [(g.P_EE,)]
        start.untyped_next, content2.untyped_next, after.untyped_next = content2, content2, after
        return start.index

    def _complex_grammar(self, ctype: ComplexType) -> int:
        name = ctype.label()
        attributes = sorted(ctype.attributes, key=lambda a: (a.name, a.ns))
        start = self.new_state(ATTRIBUTE_START, f"{name}: start")
        after_attribute = [self.new_state(ATTRIBUTE, f"{name}: after @{a.name}") for a in attributes]
        # content2 of §8.5.4.4.1 (a content-phase copy of the content start) is also the target
        # of CH in mixed content from the attribute states (Content_0 of §8.5.4.1.3.2)
        content_start = self.new_state(CONTENT, f"{name}: content start")
        mixed = ctype.mixed and isinstance(ctype.content, Particle)

        # content: Glushkov automaton over the element and wildcard particles
        content = ctype.content
        keys_seen: dict[str, str] = {a.name: "attribute" for a in attributes}
        if isinstance(content, SimpleType):
            after_value = self.new_state(CONTENT, f"{name}: after value")
            after_value.productions = [(g.P_EE,)]
            after_value.untyped_next = after_value
            begin = [(g.P_CH, g.VALUE_KEY, self.datatype(content), after_value)]
            keys_seen[g.VALUE_KEY] = "simple content"
            position_states = []
            self._element_keys = []
        else:
            begin, position_states = self._particle_states(ctype, content, content_start, mixed,
                                                           keys_seen)
        if mixed:
            keys_seen.setdefault(g.VALUE_KEY, "mixed content")
            # §8.5.4.1.3.2: CH [untyped value] is added to the Content states only; the attribute
            # states see the one of Content_0 when all remaining attributes are optional
            begin = begin + [(g.P_CH_MIXED, g.VALUE_KEY, None, content_start)]

        # attributes (§8.5.4.1.3.2, §8.5.4.1.4): closure(i) = what may come before attribute i
        def closure(i):
            if i == len(attributes):
                result = list(begin)
            else:
                a = attributes[i]
                result = [(g.P_AT, a.name, self.datatype(a.type), after_attribute[i],
                           self.namespace(a.ns))]
                if not a.required:
                    result += closure(i + 1)
            return result

        wildcard = ctype.attribute_wildcard is not None
        for state, i in [(start, 0)] + [(s, k + 1) for k, s in enumerate(after_attribute)]:
            productions = closure(i)
            if wildcard:
                productions.append((g.P_AT_ANY, None, None, state))
            state.productions = productions
            state.untyped_next = content_start
        content_start.productions = list(begin)
        content_start.untyped_next = content_start
        for state in position_states:
            if mixed:
                state.productions.append((g.P_CH_MIXED, g.VALUE_KEY, None, state))
            state.untyped_next = state
        for state in [start, content_start, *after_attribute, *position_states]:
            state.productions = _sorted_productions(state.productions)
        # the JSON keys in schema order: attributes as sorted above, the value, then the
        # elements in the order of their particles
        order = [a.name for a in attributes]
        if g.VALUE_KEY in keys_seen:
            order.append(g.VALUE_KEY)
        for key in self._element_keys:
            if key not in order:
                order.append(key)
        return start.index, tuple(order)

    def _particle_states(self, ctype, content, content_start, mixed, keys_seen):
        """First productions of the content and the states after each position (§8.5.4.1.5-8)."""
        name = ctype.label()
        self._element_keys = []
        if content is None:
            return [(g.P_EE,)], []
        positions: list[Position] = []
        follow: dict[int, list[int]] = {}

        def walk(particle: Particle, inside_repetition: bool):
            """Returns (nullable, first, last) of the particle; fills positions and follow."""
            term = particle.term
            repeated_group = particle.max is None or particle.max > 1
            if isinstance(term, (Element, Wildcard)):
                counted = not (particle.min <= 1 and particle.max == 1) and not (
                    particle.min <= 1 and particle.max is None)
                if counted and inside_repetition:
                    raise SchemaError(f"{name}: bounded repetition inside a repeated group")
                position = Position(len(positions), particle, counted)
                positions.append(position)
                follow[position.index] = []
                if particle.max is None and not counted:
                    follow[position.index].append(position.index)  # unbounded: loops
                return particle.min == 0, [position.index], {position.index}
            if not isinstance(term, Group) or term.compositor == "all":
                raise SchemaError(f"{name}: model group {getattr(term, 'compositor', term)}")
            if repeated_group and (particle.max is not None or particle.min > 1):
                raise SchemaError(f"{name}: bounded repetition of a model group")
            inner = inside_repetition or repeated_group
            if term.compositor == "sequence":
                nullable, first, last = True, [], set()
                for child in term.particles:
                    c_nullable, c_first, c_last = walk(child, inner)
                    for p in last:
                        _extend(follow[p], c_first)
                    if nullable:
                        _extend(first, c_first)
                    last = (last | c_last) if c_nullable else set(c_last)
                    nullable = nullable and c_nullable
            else:  # choice
                nullable, first, last = not term.particles, [], set()
                for child in term.particles:
                    c_nullable, c_first, c_last = walk(child, inner)
                    _extend(first, c_first)
                    last |= c_last
                    nullable = nullable or c_nullable
            if particle.max is None:
                for p in last:
                    _extend(follow[p], first)
            return nullable or particle.min == 0, first, last

        nullable, first, last = walk(content, False)
        self._element_keys = [member.name for position in positions
                              if isinstance(position.particle.term, Element)
                              for member in self.schemas.substitution_set(position.particle.term)]

        # JSON keys: one per element qname, a list when the element may occur more than once
        occurrences: dict[str, int] = {}
        key_namespace: dict[str, str] = {}
        repeated_positions: set[str] = set()
        for position in positions:
            term = position.particle.term
            if isinstance(term, Element):
                for member in self.schemas.substitution_set(term):
                    other = keys_seen.get(member.name)
                    if other is not None and other != "element":
                        raise SchemaError(f"{name}: {member.name} is both {other} and element")
                    keys_seen[member.name] = "element"
                    if key_namespace.setdefault(member.name, member.ns) != member.ns:
                        raise SchemaError(f"{name}: two child elements named {member.name}")
                    occurrences[member.name] = occurrences.get(member.name, 0) + 1
                    if position.particle.max != 1 or _under_repetition(content, position.particle):
                        repeated_positions.add(member.name)
        list_keys = set(repeated_positions)
        for key, count in occurrences.items():
            if count > 1 and _positions_can_cooccur(content, key, self.schemas):
                list_keys.add(key)
        for position in positions:
            if position.counted:
                members = self.schemas.substitution_set(position.particle.term)
                if len(members) != 1 or occurrences[members[0].name] != 1:
                    raise SchemaError(f"{name}: counted particle with several names")

        def se_productions(index: int, target) -> list:
            term = positions[index].particle.term
            if isinstance(term, Wildcard):
                if term.kind in ("any", "other"):  # §8.5.4.1.7: SE(*)
                    return [(g.P_SE_ANY, None, index, target)]
                raise SchemaError(f"{name}: SE(uri:*) wildcards are not supported")
            members = self.schemas.substitution_set(term)
            for member in members:
                if member.abstract and not getattr(member.type, "abstract", False):
                    # the codec knows abstract types only; an abstract element of a concrete
                    # type would pass its validation
                    raise SchemaError(f"abstract element {member.name} has a concrete type")
            return [(g.P_SE, member.name, self.type_grammar(member.type), target,
                     self.namespace(member.ns), member.name in list_keys, index)
                    for member in members]

        # states after each position; counted positions get three (below min, in range, at max)
        after: dict[int, object] = {}
        states: list[State] = []
        for position in positions:
            label = f"{name}: after {_position_label(position)}"
            if position.counted:
                particle = position.particle
                in_range = self.new_state(CONTENT, label + " (in range)")
                at_max = self.new_state(CONTENT, label + " (at max)") if particle.max is not None \
                    else None
                below = self.new_state(CONTENT, label + " (below min)") if particle.min > 1 else None
                after[position.index] = (particle.min, particle.max, below, in_range, at_max)
                states += [s for s in (below, in_range, at_max) if s is not None]
            else:
                state = self.new_state(CONTENT, label)
                after[position.index] = state
                states.append(state)

        def productions_after(position_list, ends):
            result = []
            for p in position_list:
                result += se_productions(p, after[p])
            if ends:
                result.append((g.P_EE,))
            return result

        for position in positions:
            others = productions_after(follow[position.index], position.index in last)
            target = after[position.index]
            if position.counted:
                _, _, below, in_range, at_max = target
                again = se_productions(position.index, target)
                if below is not None:
                    below.productions = again
                in_range.productions = again + others
                if at_max is not None:
                    at_max.productions = others
            else:
                target.productions = others
        begin = productions_after(first, nullable)
        return begin, states

    # --- the relaxed element fragment grammar (§8.5.3) ----------------------------------------

    def relaxed_grammar(self, fragment_elements) -> int:
        attributes: dict[QName, list] = {}
        for typedef in self._all_complex_types():
            for a in typedef.attributes:
                attributes.setdefault((a.ns, a.name), []).append(a.type)
        index = len(self.types)
        self.types.append([g.TYPE_RELAXED, "element fragment grammar", None, False, ()])
        ef0 = self.new_state(ATTRIBUTE_START, "element fragment: start")
        ef2 = self.new_state(CONTENT, "element fragment: content")
        local_names = [q[1] for q in attributes]
        at_productions = []
        for qname in sorted(attributes, key=lambda q: (q[1], q[0])):
            types = {self.datatype(t) for t in attributes[qname]}
            datatype = types.pop() if len(types) == 1 else self.datatype(self.schemas.builtin("string"))
            key = qname[1] if local_names.count(qname[1]) == 1 else "{%s}%s" % qname
            at_productions.append((g.P_AT, key, datatype, ef0, self.namespace(qname[0])))
        se_productions = [(g.P_SE, key, type_index, ef2, self.namespace(ns), None, -1)
                          for key, ns, type_index in fragment_elements]
        ef0.productions = at_productions + [(g.P_AT_ANY, None, None, ef0)] + se_productions + [
            (g.P_SE_ANY, None, -1, ef2), (g.P_EE,), (g.P_CH_MIXED, g.VALUE_KEY, None, ef2)]
        ef2.productions = se_productions + [(g.P_SE_ANY, None, -1, ef2), (g.P_EE,),
                                            (g.P_CH_MIXED, g.VALUE_KEY, None, ef2)]
        ef0.untyped_next, ef2.untyped_next = ef2, ef2
        self.types[index][2] = ef0.index
        return index

    def _all_complex_types(self):
        seen, result = set(), []
        for element in self.schemas.all_elements:
            t = element.type
            if isinstance(t, ComplexType) and id(t) not in seen:
                seen.add(id(t))
                result.append(t)
        for qname in sorted(self.schemas._types, key=lambda q: (q[1], q[0])):
            t = self.schemas._types[qname]
            if isinstance(t, ComplexType) and id(t) not in seen:
                seen.add(id(t))
                result.append(t)
        return result

    # --- document and fragment grammars -------------------------------------------------------

    def build(self) -> dict:
        schemas = self.schemas
        globals_sorted = sorted(schemas.elements.values(), key=lambda e: (e.name, e.ns))
        document = self._top_level([(e.name, e.ns, e.type) for e in globals_sorted])
        # §8.5.2: unique qnames of all element declarations; several declarations of one qname
        # with different types (or nillable) use the relaxed element fragment grammar
        fragment_qnames = sorted(self._element_types, key=lambda q: (q[1], q[0]))
        relaxed = [q for q in fragment_qnames if len(self._element_types[q]) > 1]
        fragment_entries = []
        for qname in fragment_qnames:
            types = self._element_types[qname]
            fragment_entries.append((qname[1], qname[0], types[0][0] if len(types) == 1 else None))
        fragment = self._top_level(fragment_entries, relaxed_index=-1)
        self.build_pending()
        relaxed_index = None
        if relaxed:
            relaxed_index = self.relaxed_grammar(fragment)
            fragment = [(k, ns, relaxed_index if t == -1 else t) for k, ns, t in fragment]
            for state in self.states:
                state.productions = [
                    p[:2] + (relaxed_index,) + p[3:] if p[0] == g.P_SE and p[2] == -1 else p
                    for p in state.productions]
            self.build_pending()
        return {
            "document": (g.bits_for(len(document) + 1), tuple(document)),
            "fragment": (g.bits_for(len(fragment) + 2), tuple(fragment)),
            "relaxed": self._relaxed_attribute_names(relaxed, fragment),
        }

    def _relaxed_attribute_names(self, relaxed, fragment) -> dict:
        """Per element decoded with the relaxed grammar: the attribute keys of that grammar
        (qualified where local names collide) of the attributes its own declarations use,
        by local name, so the JSON form can say "Id" as for any other element."""
        at_keys = {}
        for typedef in self._all_complex_types():
            for a in typedef.attributes:
                at_keys[(a.ns, a.name)] = a.name
        local_names = [name for _, name in at_keys]
        result = {}
        for qname in relaxed:
            key = next(k for k, ns, _ in fragment
                       if self.namespaces[ns] == qname[0] and k.endswith(qname[1]))
            names = {}
            for typedef, _ in self._element_types[qname]:
                for a in getattr(typedef, "attributes", ()):
                    if local_names.count(a.name) > 1:
                        names[a.name] = "{%s}%s" % (a.ns, a.name)
            if names:
                result[key] = dict(sorted(names.items()))
        return result

    def _top_level(self, entries, relaxed_index=None):
        local_names = [name for name, _, _ in entries]
        result = []
        for name, ns, typedef in entries:
            key = name if local_names.count(name) == 1 else "{%s}%s" % (ns, name)
            type_index = relaxed_index if typedef is None else self.type_grammar(typedef)
            result.append((key, self.namespace(ns), type_index))
        return result

    @staticmethod
    def _label(qname):
        return "{%s}%s" % qname


def _extend(target: list, items) -> None:
    for item in items:
        if item not in target:
            target.append(item)
    target.sort()


def _position_label(position: Position) -> str:
    term = position.particle.term
    return term.name if isinstance(term, Element) else "wildcard"


def _under_repetition(content: Particle, target: Particle) -> bool:
    """Whether some model group around ``target`` may repeat."""
    def search(particle, repeated):
        if particle is target:
            return repeated
        if isinstance(particle.term, Group):
            inner = repeated or particle.max is None or particle.max > 1
            for child in particle.term.particles:
                found = search(child, inner)
                if found is not None:
                    return found
        return None
    return bool(search(content, False))


def _positions_can_cooccur(content: Particle, key: str, schemas: SchemaSet) -> bool:
    """Whether two particles declaring ``key`` can both occur in one instance (not in a choice)."""
    def count(particle):
        term = particle.term
        if isinstance(term, Element):
            return 1 if any(m.name == key for m in schemas.substitution_set(term)) else 0
        if isinstance(term, Wildcard):
            return 0
        counts = [count(child) for child in term.particles]
        return max(counts, default=0) if term.compositor == "choice" else sum(counts)
    return count(content) > 1


PRODUCTION_ORDER = {g.P_AT: 0, g.P_AT_ANY: 1, g.P_SE: 2, g.P_SE_ANY: 3, g.P_EE: 4, g.P_CH: 5,
                    g.P_CH_MIXED: 5}


def _sorted_productions(productions: list) -> list:
    """Event code order of §8.5.4.3: AT(qname) by local name and uri, AT(*), SE(qname) in schema
    order (the order of the particles; within one particle's substitution group by name), SE(*),
    EE, CH."""
    def key(p):
        kind = p[0]
        if kind == g.P_AT:
            return (0, p[1], "", 0)
        if kind == g.P_SE:
            return (2, "", "", p[6])
        if kind == g.P_SE_ANY:
            return (3, "", "", p[2])
        return (PRODUCTION_ORDER[kind], "", "", 0)
    unique = []
    for p in productions:
        if p not in unique:
            unique.append(p)
    # the sort is stable: members of one substitution group keep their lexicographic order
    return sorted(unique, key=key)


# =================================================================================================
# Output
# =================================================================================================

KIND_NAMES = {g.P_AT: "AT", g.P_SE: "SE", g.P_EE: "EE", g.P_CH: "CH", g.P_CH_MIXED: "CH_MIXED",
              g.P_SE_ANY: "SE_ANY", g.P_AT_ANY: "AT_ANY"}


def render_module(schema: str, builder: GrammarBuilder, tops: dict) -> str:
    entry, description = SCHEMAS[schema]
    states = builder.states
    second_levels: list[tuple] = []
    for state in states:
        if state.second_level() not in second_levels:
            second_levels.append(state.second_level())

    def target(t):
        if isinstance(t, tuple):
            low, high, below, in_range, at_max = t
            return "(%d, %r, %s, %d, %s)" % (low, high, below.index if below else None,
                                             in_range.index, at_max.index if at_max else None)
        return str(t.index)

    def production(p):
        kind = p[0]
        if kind == g.P_AT:
            return "(AT, %r, %d, %s, %d)" % (p[1], p[2], target(p[3]), p[4])
        if kind == g.P_SE:
            return "(SE, %r, %d, %s, %d, %r)" % (p[1], p[2], target(p[3]), p[4], p[5])
        if kind == g.P_EE:
            return "(EE,)"
        if kind == g.P_CH:
            return "(CH, %r, %d, %s)" % (p[1], p[2], target(p[3]))
        if kind == g.P_CH_MIXED:
            return "(CH_MIXED, %r, None, %s)" % (p[1], target(p[3]))
        return "(%s, None, None, %s)" % (KIND_NAMES[kind], target(p[3]))

    lines = [
        f'"""EXI grammar tables for {schema}: {description}.',
        "",
        f"Generated by tools/gen_exi.py from {entry} and the files it imports; do not edit.",
        "The table layout is described in harness.exi.grammar.",
        '"""',
        "",
        "IMPORTS",
        "",
        f"SCHEMA = {schema!r}",
        "",
        "NAMESPACES = (",
    ]
    lines += [f"    {uri!r},  # {i}" for i, uri in enumerate(builder.namespaces)]
    lines += [")", "", "PREFIXES = ("]
    used_prefixes: list[str] = []
    for i, uri in enumerate(builder.namespaces):
        prefix = builder.schemas.prefix_of.get(uri, "" if not uri else f"ns{i}")
        if prefix in used_prefixes:
            prefix = f"ns{i}"
        used_prefixes.append(prefix)
        lines.append(f"    {prefix!r},")
    lines += [")", "", "DATATYPES = ("]
    lines += [f"    {entry!r},  # {i}" for i, entry in enumerate(builder.datatypes)]
    lines += [")", "", "TYPES = ("]
    kind_const = {g.TYPE_SIMPLE: "TYPE_SIMPLE", g.TYPE_COMPLEX: "TYPE_COMPLEX",
                  g.TYPE_RELAXED: "TYPE_RELAXED"}
    for i, (kind, name, a, b, keys) in enumerate(builder.types):
        if kind == g.TYPE_SIMPLE:
            lines.append(f"    ({kind_const[kind]}, {name!r}, {a}, {b}),  # {i}")
        else:
            lines.append(f"    ({kind_const[kind]}, {name!r}, {a}, {b!r}, {keys!r}),  # {i}")
    lines += [")", "", "SECOND_LEVEL = ("]
    u_names = {g.U_EE: "U_EE", g.U_XSI_TYPE: "U_XSI_TYPE", g.U_XSI_NIL: "U_XSI_NIL",
               g.U_AT_ANY: "U_AT_ANY", g.U_AT_UNTYPED: "U_AT_UNTYPED", g.U_SE_ANY: "U_SE_ANY",
               g.U_CH_UNTYPED: "U_CH_UNTYPED"}
    for i, level in enumerate(second_levels):
        lines.append(f"    ({', '.join(u_names[u] for u in level)},),  # {i}")
    lines += [")", "", "STATES = ("]
    for state in states:
        prods = state.productions
        width = g.bits_for(len(prods) + 1)  # every state has undeclared productions
        lines.append(f"    # {state.index}: {state.label}")
        body = ", ".join(production(p) for p in prods)
        lines.append(f"    ({width}, ({body},), {second_levels.index(state.second_level())}, "
                     f"{state.untyped_next.index}),")
    lines += [")", ""]
    for name in ("document", "fragment"):
        width, entries = tops[name]
        lines.append(f"{name.upper()} = ({width}, (")
        lines += [f"    ({key!r}, {ns}, {t})," for key, ns, t in entries]
        lines += ["))", ""]
    # annotated: the dict is empty for most schemas, and mypy cannot infer the type of {}
    lines.append("RELAXED_ATTRIBUTE_KEYS: dict[str, dict[str, str]] = {")
    lines += [f"    {key!r}: {names!r}," for key, names in tops["relaxed"].items()]
    lines += ["}", ""]
    # import the vocabulary the tables use, under the short names they are written with
    text = "\n".join(lines)
    names = {"P_AT": "AT", "P_CH": "CH", "P_CH_MIXED": "CH_MIXED", "P_EE": "EE", "P_SE": "SE",
             "P_SE_ANY": "SE_ANY", "P_AT_ANY": "AT_ANY"}
    names.update({name: name for name in list(kind_const.values()) + list(u_names.values())})
    used = [f"{name} as {alias}" if name != alias else name
            for name, alias in sorted(names.items())
            if re.search(rf"[(, ]{alias}[,)]", text)]
    imports = ["from harness.exi.grammar import ("]
    line = "   "
    for item in used:
        if len(line) + len(item) + 2 > 100:
            imports.append(line)
            line = "   "
        line += f" {item},"
    imports += [line, ")"]
    return text.replace("IMPORTS", "\n".join(imports), 1)


def generate(schema_dir: Path, out_dir: Path, only: list[str] | None = None) -> list[Path]:
    written = []
    out_dir.mkdir(parents=True, exist_ok=True)
    for schema in only or list(SCHEMAS):
        entry, _ = SCHEMAS[schema]
        schemas = SchemaSet(schema_dir, entry)
        builder = GrammarBuilder(schemas)
        tops = builder.build()
        text = render_module(schema, builder, tops)
        path = out_dir / f"{module_name(schema)}.py"
        path.write_text(text, encoding="utf-8")
        written.append(path)
    init = out_dir / "__init__.py"
    init.write_text(
        '"""Generated EXI grammar tables, one module per schema (see tools/gen_exi.py)."""\n',
        encoding="utf-8")
    written.append(init)
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("schema_dir", nargs="?", type=Path, default=DEFAULT_SCHEMA_DIR)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT_DIR)
    parser.add_argument("--schema", action="append", choices=sorted(SCHEMAS),
                        help="generate only this schema (repeatable)")
    args = parser.parse_args(argv)
    if not args.schema_dir.is_dir():
        parser.error(f"schema directory {args.schema_dir} not found")
    for path in generate(args.schema_dir, args.out, args.schema):
        print(os.path.relpath(path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
