"""SCPI program messages as an instrument reads them: pure functions, no I/O.

A program message is one line from the controller. It may hold several program message units
separated by ';' (IEEE 488.2 §7.3). A unit is a header, optionally a '?' and arguments. Headers are
paths of mnemonics; each mnemonic has a long form (``NUMeric``) and a short form (the capitals,
``NUM``); either is accepted in any case (SCPI-99 Vol. 1 §6.2.1). Nodes in brackets are optional
(``:NUMeric[:NORMal]:VALue?``), ``<n>`` marks a numeric suffix (``ITEM<n>``, ``ELEMent<n>``).

In a compound message a header that does not start with ':' is relative to the path of the
previous unit minus its last node; common commands (``*IDN?``) leave that path alone
(SCPI-99 Vol. 1 §6.2.4). So ``:NUM:NORM:ITEM1 U,1;ITEM2 I,1`` sets ITEM1 and ITEM2 under
NUMeric:NORMal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


class ScpiSyntaxError(ValueError):
    """A program message unit that cannot be parsed at all (not merely an unknown header)."""


@dataclass(frozen=True)
class ProgramUnit:
    """One command or query from a program message."""

    #: the mnemonics from the root, upper-cased, each with its numeric suffix still attached
    path: tuple[str, ...]
    query: bool
    arguments: tuple[str, ...]
    #: the unit as it was sent (for error messages)
    text: str

    @property
    def common(self) -> bool:
        return bool(self.path) and self.path[0].startswith("*")


def split_units(message: str) -> list[str]:
    """The units of a program message: split on ';' outside quoted strings."""
    units, current, quote = [], [], ""
    for char in message:
        if quote:
            current.append(char)
            if char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
            current.append(char)
        elif char == ";":
            units.append("".join(current))
            current = []
        else:
            current.append(char)
    if quote:
        raise ScpiSyntaxError(f"unterminated string in {message!r}")
    units.append("".join(current))
    return [u.strip() for u in units if u.strip()]


def split_arguments(text: str) -> tuple[str, ...]:
    """Arguments separated by ',' outside quotes, stripped."""
    if not text.strip():
        return ()
    parts, current, quote = [], [], ""
    for char in text:
        if quote:
            current.append(char)
            if char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
            current.append(char)
        elif char == ",":
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    parts.append("".join(current).strip())
    return tuple(parts)


_HEADER = re.compile(r"^(\*?[A-Za-z][A-Za-z0-9_]*(?::[A-Za-z][A-Za-z0-9_]*)*)(\?)?$")


def parse_message(message: str) -> list[ProgramUnit]:
    """Every unit of ``message`` with its header resolved to a path from the root."""
    units = []
    base: tuple[str, ...] = ()
    for text in split_units(message):
        head, _, rest = text.partition(" ")
        head = head.strip()
        if "\t" in head:
            head, _, more = head.partition("\t")
            rest = more + " " + rest
        absolute = head.startswith(":")
        match = _HEADER.match(head[1:] if absolute else head)
        if match is None:
            raise ScpiSyntaxError(f"not a SCPI header: {head!r}")
        nodes = tuple(n.upper() for n in match.group(1).split(":"))
        if nodes[0].startswith("*"):
            path = nodes
        else:
            path = nodes if absolute else base + nodes
            base = path[:-1]
        units.append(ProgramUnit(path, bool(match.group(2)), split_arguments(rest), text))
    return units


# -- header patterns ------------------------------------------------------------------------

@dataclass(frozen=True)
class Node:
    long: str  # upper-case long form
    short: str  # upper-case short form
    optional: bool
    suffix: bool


def compile_pattern(pattern: str) -> tuple[Node, ...]:
    """``":NUMeric[:NORMal]:ITEM<n>"`` -> nodes. Capitals in the pattern are the short form."""
    nodes = []
    for optional, name in re.findall(r"(\[?):?([*A-Za-z][A-Za-z0-9]*(?:<n>)?)\]?", pattern):
        suffix = name.endswith("<n>")
        word = name[:-3] if suffix else name
        short = "".join(c for c in word if c.isupper() or c.isdigit() or c == "*") or word.upper()
        nodes.append(Node(word.upper(), short, bool(optional), suffix))
    return tuple(nodes)


def match_path(nodes: tuple[Node, ...], path: tuple[str, ...]) -> list[int] | None:
    """The numeric suffixes (1 where omitted) if ``path`` names ``nodes``, else None."""
    return _match(nodes, 0, path, 0, [])


def _match(nodes, i, path, j, suffixes):
    if i == len(nodes):
        return suffixes if j == len(path) else None
    node = nodes[i]
    if j < len(path):
        token = path[j]
        value = None
        if node.suffix:
            m = re.match(r"^([A-Z*]+)(\d*)$", token)
            if m:
                token, digits = m.group(1), m.group(2)
                value = int(digits) if digits else 1
        if token in (node.long, node.short):
            found = _match(nodes, i + 1, path, j + 1, suffixes + ([value] if node.suffix else []))
            if found is not None:
                return found
    if node.optional:
        return _match(nodes, i + 1, path, j, suffixes + ([1] if node.suffix else []))
    return None


def keyword(argument: str, *choices: str) -> str | None:
    """The choice (written with its short form in capitals, ``"NORMal"``) that ``argument``
    names in long or short form, any case; None if none does."""
    word = argument.strip().upper()
    for choice in choices:
        short = "".join(c for c in choice if c.isupper() or c.isdigit() or c in "_+-") or choice.upper()
        if word in (choice.upper(), short):
            return choice
    return None


def canonical_state(reply: str, choices: tuple[str, ...]) -> str | None:
    """An instrument's character reply (long or short form, any case) as one of ``choices``."""
    return keyword(reply.strip().strip('"'), *choices)


def boolean(argument: str) -> bool | None:
    """SCPI <Boolean>: ON/OFF or a number (non-zero is true)."""
    word = argument.strip().upper()
    if word == "ON":
        return True
    if word == "OFF":
        return False
    try:
        return round(float(word)) != 0
    except ValueError:
        return None
