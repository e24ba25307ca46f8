"""How pytest outcomes become conformance verdicts, in a suite of our own making."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

pytest_plugins = ["pytester"]

CATALOGUE = """
suites:
  demo: {title: Demo}
cases:
  DEMO-PASS: {suite: demo, title: passes, references: {ocpp: [B01]}}
  DEMO-FAIL: {suite: demo, title: the DUT misbehaves}
  DEMO-ERROR: {suite: demo, title: the harness breaks}
  DEMO-INCONC: {suite: demo, title: cannot decide}
  DEMO-SKIP: {suite: demo, title: needs what the rig lacks}
  DEMO-XFAIL: {suite: demo, title: known to fail}
"""

SUITE = """
import pytest
from harness.plugin import inconclusive

@pytest.mark.case("DEMO-PASS")
def test_pass(evse, kpi, reaction):
    kpi("answer", 42, "units")
    reaction("OCPP", "BootNotification", expected="Accepted", observed="Accepted", judged=True)
    reaction("ISO 15118", "a code", expected="FAILED_CertificateExpired", observed="FAILED_CertChainError",
             note="shown only")

@pytest.mark.case("DEMO-FAIL")
def test_fail(evse):
    assert evse.identity()["vendor"] == "Someone Else"

@pytest.mark.case("DEMO-ERROR")
def test_error(evse):
    raise RuntimeError("the instrument went away")

@pytest.mark.case("DEMO-INCONC")
def test_inconclusive(evse):
    inconclusive("no reference measurement")

@pytest.mark.case("DEMO-SKIP")
@pytest.mark.requires("no-such-capability")
def test_skip(evse):
    pass

@pytest.mark.case("DEMO-XFAIL")
@pytest.mark.xfail(reason="known firmware bug")
def test_xfail(evse):
    assert False
"""


def test_outcomes_map_to_verdicts(pytester):
    pytester.makefile(".yaml", catalogue=CATALOGUE)
    pytester.makepyfile(test_demo=SUITE)
    report = pytester.path / "report"
    result = pytester.runpytest_subprocess(f"--harness-rig={ROOT / 'rigs' / 'emulated.yaml'}",
                                           f"--harness-report-dir={report}",
                                           "-p", "no:cacheprovider")
    document = json.loads((report / "conformance.json").read_text())
    verdicts = {case["id"]: case["verdict"] for case in document["cases"]}
    assert verdicts == {"DEMO-PASS": "pass", "DEMO-FAIL": "fail", "DEMO-ERROR": "error", "DEMO-INCONC": "inconc",
                        "DEMO-SKIP": "skip", "DEMO-XFAIL": "inconc"}, result.stdout.str()[-3000:]
    failed = next(c for c in document["cases"] if c["id"] == "DEMO-FAIL")
    # a bare assert reads as the line that failed, not as pytest's rewritten "where ... = ..." lines
    assert failed["message"] == ("the check `assert evse.identity()[\"vendor\"] == \"Someone Else\"` "
                                 "did not hold"), failed["message"]
    assert "no-such-capability" in next(c for c in document["cases"] if c["id"] == "DEMO-SKIP")["message"]
    passed = next(c for c in document["cases"] if c["id"] == "DEMO-PASS")
    assert passed["kpis"][0]["value"] == 42
    # expected beside observed, per protocol, with whether the verdict rests on the row
    assert [(r["protocol"], r["matches"], r["judged"]) for r in passed["reactions"]] == [
        ("OCPP", True, True), ("ISO 15118", False, False)]
    page = (report / "conformance.html").read_text()
    assert "<th>Expected</th><th>Observed</th><th>Agrees</th>" in page
    # the failures come first, before the DUT and the rig, with their exchange as a swimlane
    first = page[page.index("<h2>What failed</h2>"):page.index("<h2>Device under test</h2>")]
    assert "DEMO-FAIL" in first and "DEMO-ERROR" in first and "DEMO-PASS" not in first
    assert "<th>EV</th><th>Charger</th><th>CSMS</th>" in first
    assert "addEventListener('input', zoom)" in page  # the swimlanes' zoom, inside the page
    assert "FAILED_CertChainError</code></td><td class='differs'>no</td><td>shown, not judged" in page


def test_a_test_without_a_catalogue_entry_is_refused(pytester):
    pytester.makefile(".yaml", catalogue=CATALOGUE)
    pytester.makepyfile(test_bad=textwrap.dedent("""
        import pytest

        def test_unnamed():
            pass

        @pytest.mark.case("NOT-IN-CATALOGUE")
        def test_unknown():
            pass
    """))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret != 0
    output = result.stdout.str() + result.stderr.str()
    assert "test_unnamed: a conformance test needs @pytest.mark.case" in output
    assert "'NOT-IN-CATALOGUE' is not in" in output


def test_a_broken_rig_file_stops_the_run_with_its_problems(pytester):
    pytester.makefile(".yaml", rig="name: x\nkind: emulated\ncsms: {}\nevse: {station_id: S}\n")
    result = pytester.runpytest_subprocess(f"--harness-rig={pytester.path / 'rig.yaml'}")
    assert result.ret == 4  # pytest's usage error
    assert "evse.ocpp: is required" in result.stderr.str()
    assert "Traceback" not in result.stderr.str()


def test_a_long_swimlane_shows_its_last_rows_and_widens_or_zooms_on_request():
    """A failure's exchange shows its last rows first; all of them are in the page (hidden, not
    dropped), each row carries its time, and the page's own script zooms to a window of seconds."""
    from harness.report.html import SWIMLANE_ROWS, _swimlane
    from harness.trace import Layer, Recorder

    clock = iter(i * 0.05 for i in range(1000))
    trace = Recorder(clock=lambda: next(clock))
    for number in range(100):
        trace.emit(Layer.OCPP, f"Action{number}", f"CALL Action{number}", src="evse", dst="csms", observer="csms")
    page = _swimlane(trace.select(), "lane-x")
    assert page.count("<tr class='l-ocpp early'") == 100 - SWIMLANE_ROWS
    assert page.count("<tr class='l-ocpp'") == SWIMLANE_ROWS
    assert "all 100 rows" in page and "class='zf'" in page and "data-t='4.950'" in page


def test_with_an_ev_under_test_the_swimlane_is_the_harness_chargers_view_of_it():
    """An EV under test is a black box with no timeline of its own: its exchange is what the
    harness's SECC saw (and the faults it committed), each response with its code. Elsewhere the
    charger's own view stays out of the swimlane."""
    from harness.report.html import _swimlane
    from harness.trace import Layer, Recorder

    trace = Recorder()
    trace.emit(Layer.V2G, "AuthorizationReq", "ev -> evse: AuthorizationReq", src="ev", dst="evse", observer="evse",
               payload={"message": {"AuthorizationReq": {}}})
    trace.emit(Layer.V2G, "AuthorizationRes", "evse -> ev: AuthorizationRes FAILED_ChallengeInvalid", src="evse",
               dst="ev", observer="evse", payload={"message": {"AuthorizationRes": {}}})
    trace.emit(Layer.FAULT, "FaultDrop", "evse injects drop of ServiceDiscoveryRes", src="evse", observer="evse")
    seen = _swimlane(trace.select(), "lane-ev", ev_under_test=True)
    assert "AuthorizationRes FAILED_ChallengeInvalid" in seen and "AuthorizationReq" in seen
    assert "evse injects drop of ServiceDiscoveryRes" in seen
    assert "AuthorizationRes" not in _swimlane(trace.select(), "lane-evse")
