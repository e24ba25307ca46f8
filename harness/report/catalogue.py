"""The test-case catalogue: stable ids, titles, suites and standard references.

One YAML file next to the suites (testcases/catalogue.yaml) is the only place a test case's id,
title and references live; the pytest plugin attaches them to each test and every report reads
them from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from harness.yamlfile import FileProblems, Problems, Reader, read_yaml

#: reference kinds a case may cite, and how reports label them
REFERENCE_KINDS = {
    "ocpp": "OCPP use case / requirement",
    "octt": "OCTT test case",
    "iso15118": "ISO 15118 requirement",
    "din70121": "DIN 70121 requirement",
    "iec61851": "IEC 61851-1 clause",
    "ietf": "IETF RFC",
}


class CatalogueError(FileProblems):
    """A catalogue that cannot be used, or a test case id that is not in it."""


#: the file name of a catalogue: the nearest one in a test's folder or above governs it
CATALOGUE_FILE = "catalogue.yaml"

#: which side of the plug a suite tests: the charger (the usual DUT) or the EV
DUTS = ("evse", "ev")


@dataclass(frozen=True)
class Suite:
    id: str
    title: str
    #: the device under test of the suite's cases (``evse`` or ``ev``)
    dut: str = "evse"


@dataclass(frozen=True)
class TestCase:
    id: str
    title: str
    suite: Suite
    references: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    description: str = ""

    def reference_list(self) -> list[str]:
        return [ref for refs in self.references.values() for ref in refs]


@dataclass(frozen=True)
class Catalogue:
    path: Path
    suites: Mapping[str, Suite]
    cases: Mapping[str, TestCase]

    def case(self, case_id: str) -> TestCase:
        try:
            return self.cases[case_id]
        except KeyError:
            raise CatalogueError(self.path, [f"test case id {case_id!r} is not in it"]) from None


def load_catalogue(path: Path) -> Catalogue:
    data = read_yaml(path, CatalogueError)
    problems = Problems()
    top = Reader(data, "", problems)
    suites: dict[str, Suite] = {}
    suites_reader = top.section("suites", required=True)
    for suite_id in list(suites_reader.data):
        entry = suites_reader.section(str(suite_id))
        suites[str(suite_id)] = Suite(str(suite_id), entry.str("title", str(suite_id), required=True),
                                      entry.str("dut", "evse", choices=DUTS) or "evse")
        entry.done()
    cases: dict[str, TestCase] = {}
    cases_reader = top.section("cases", required=True)
    for case_id in list(cases_reader.data):
        entry = cases_reader.section(str(case_id))
        suite_id = entry.str("suite", required=True)
        if suite_id is not None and suite_id not in suites:
            problems.add(f"cases.{case_id}.suite", f"unknown suite {suite_id!r}")
        references_reader = entry.section("references")
        references = {kind: tuple(references_reader.str_list(kind, [])) for kind in REFERENCE_KINDS
                      if references_reader.has(kind)}
        references_reader.done()
        cases[str(case_id)] = TestCase(str(case_id), entry.str("title", "", required=True),
                                       suites.get(suite_id or "", Suite(suite_id or "?", suite_id or "?")),
                                       references, entry.str("description", ""))
        entry.done()
    top.done()
    if problems:
        raise CatalogueError(path, problems.items)
    return Catalogue(path, suites, cases)
