"""The test-case catalogue as a document a lab plans with: per suite, each case's id, title, the
device it tests, the standards' clauses it checks, the parameters it runs with and what the rig
must offer for it.

The catalogue (catalogue.yaml) says what a case checks; what a rig must offer is in the test code
(``@pytest.mark.requires`` capabilities, and the rig parts a test asks for as fixtures: a power
analyzer, a link that carries SLAC). The test modules are read as source (their syntax tree),
never imported, so the document can be made without a rig or the test dependencies.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

from harness.report.catalogue import REFERENCE_KINDS, Catalogue

#: rig parts a test asks for by fixture, and how the document names them
FIXTURE_NEEDS = {"meter": "power analyzer", "link": "a link that carries SLAC (netns or lab rig)"}


@dataclass
class CaseCode:
    """What the test code of one case says: capabilities, rig parts, parameters."""

    requires: list[str] = field(default_factory=list)
    needs: list[str] = field(default_factory=list)
    parameters: list[str] = field(default_factory=list)


def _mark(decorator: ast.expr) -> tuple[str, list[ast.expr]] | None:
    """("case", args) for ``@pytest.mark.case(...)`` and the like."""
    if not isinstance(decorator, ast.Call):
        return None
    func = decorator.func
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Attribute) and func.value.attr == "mark":
        return func.attr, list(decorator.args)
    return None


def _strings(nodes: list[ast.expr]) -> list[str]:
    return [node.value for node in nodes if isinstance(node, ast.Constant) and isinstance(node.value, str)]


def read_test_code(folder: Path) -> dict[str, CaseCode]:
    """Case id -> what its test functions in ``folder``'s test_*.py say (merged when several)."""
    found: dict[str, CaseCode] = {}
    for path in sorted(folder.glob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            marks = [m for m in (_mark(d) for d in node.decorator_list) if m is not None]
            case_ids = [s for name, args in marks if name == "case" for s in _strings(args[:1])]
            if not case_ids:
                continue
            code = found.setdefault(case_ids[0], CaseCode())
            for name, args in marks:
                if name == "requires":
                    code.requires += [c for c in _strings(args) if c not in code.requires]
                elif name == "parametrize":
                    for names in _strings(args[:1]):
                        code.parameters += [p.strip() for p in names.split(",")
                                            if p.strip() and p.strip() not in code.parameters]
            arguments = {a.arg for a in node.args.args}
            code.needs += [need for fixture, need in FIXTURE_NEEDS.items() if fixture in arguments and need not in code.needs]
    return found


def document(catalogue: Catalogue, code: dict[str, CaseCode]) -> str:
    """The catalogue as Markdown."""
    lines = ["# Test-case catalogue", "",
             f"Made from `{catalogue.path.name}` and the test code beside it: {len(catalogue.cases)} cases in "
             f"{len(catalogue.suites)} suites. \"Rig must offer\" lists the capabilities a rig file declares "
             "(`capabilities:`) and the parts it must have; a rig without them skips the case and says why.", ""]
    for suite in catalogue.suites.values():
        members = [case for case in catalogue.cases.values() if case.suite.id == suite.id]
        if not members:
            continue
        tested = "the EV" if suite.dut == "ev" else "the charger"
        lines += [f"## {suite.title}", "", f"Suite `{suite.id}`; the device under test is {tested}.", "",
                  "| Case | Title | Checks | Parameters | Rig must offer |", "| --- | --- | --- | --- | --- |"]
        for case in members:
            info = code.get(case.id, CaseCode())
            checks = "; ".join(f"{REFERENCE_KINDS.get(kind, kind)}: {', '.join(refs)}"
                               for kind, refs in case.references.items() if refs)
            offer = ", ".join([f"`{c}`" for c in info.requires] + info.needs) or "—"
            if case.id not in code:
                offer = "(no test in the suite yet)"
            lines.append(f"| `{case.id}` | {_cell(case.title)} | {_cell(checks) or '—'} | "
                         f"{', '.join(info.parameters) or '—'} | {offer} |")
        lines.append("")
    return "\n".join(lines)


def _cell(text: str) -> str:
    """Text for a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")
