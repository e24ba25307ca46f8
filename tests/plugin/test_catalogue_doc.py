"""The catalogue document (docs/catalogue.md) is what `harness report catalogue` makes now: a case
added or changed in the catalogue or the test code shows in it, and it names what the rig must
offer from the test code."""

from __future__ import annotations

from pathlib import Path

from harness.report.catalogue import CATALOGUE_FILE, load_catalogue
from harness.report.catalogue_doc import document, read_test_code

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "testcases"


def test_the_committed_document_is_up_to_date():
    made = document(load_catalogue(TESTS / CATALOGUE_FILE), read_test_code(TESTS))
    assert (ROOT / "docs" / "catalogue.md").read_text(encoding="utf-8") == made + "\n", (
        "docs/catalogue.md is stale: run `harness report catalogue --out docs/catalogue.md`")


def test_what_the_rig_must_offer_comes_from_the_test_code():
    code = read_test_code(TESTS)
    assert code["OCPP-SC-006"].needs == ["power analyzer"]
    assert "charging_profiles" in code["OCPP-SC-006"].requires and code["OCPP-SC-006"].parameters == ["protocol"]
    assert "a link that carries SLAC (netns or lab rig)" in code["SLAC-001"].needs
    catalogue = load_catalogue(TESTS / CATALOGUE_FILE)
    assert set(code) == set(catalogue.cases), "every catalogued case has a test, and every test a catalogue entry"
