"""The plugin's options, its environment fallbacks, the user's own report paths, capability skips
decided at collection, and what loading the plugin costs every pytest run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RIG = ROOT / "rigs" / "emulated.yaml"

pytest_plugins = ["pytester"]

CATALOGUE = """
suites:
  demo: {title: Demo}
cases:
  DEMO-BOOT: {suite: demo, title: the charger is there}
  DEMO-LACKING: {suite: demo, title: needs what the rig lacks}
"""

BOOT = """
import pytest

@pytest.mark.case("DEMO-BOOT")
def test_boot(evse):
    assert evse.identity() is not None
"""

LACKING = """
import pytest

@pytest.mark.case("DEMO-LACKING")
@pytest.mark.requires("no-such-capability")
def test_lacking(evse):
    pass
"""


def _verdicts(report: Path) -> dict[str, str]:
    document = json.loads((report / "conformance.json").read_text())
    return {case["id"]: case["verdict"] for case in document["cases"]}


def test_the_rig_and_report_folder_come_from_the_environment(pytester, monkeypatch):
    pytester.makefile(".yaml", catalogue=CATALOGUE)
    pytester.makepyfile(test_demo=BOOT)
    report = pytester.path / "from-env"
    monkeypatch.setenv("HARNESS_RIG", str(RIG))
    monkeypatch.setenv("HARNESS_REPORT_DIR", str(report))
    monkeypatch.setenv("HARNESS_RUN_ID", "run-from-env")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert _verdicts(report) == {"DEMO-BOOT": "pass"}, result.stdout.str()[-2000:]
    assert json.loads((report / "conformance.json").read_text())["run"]["id"] == "run-from-env"


def test_a_users_junitxml_and_html_are_kept(pytester):
    pytester.makefile(".yaml", catalogue=CATALOGUE)
    pytester.makepyfile(test_demo=BOOT)
    report = pytester.path / "report"
    mine = pytester.path / "mine"
    result = pytester.runpytest_subprocess(f"--harness-rig={RIG}", f"--harness-report-dir={report}",
                                           f"--junitxml={mine / 'junit.xml'}", f"--html={mine / 'report.html'}",
                                           "-p", "no:cacheprovider")
    assert _verdicts(report) == {"DEMO-BOOT": "pass"}, result.stdout.str()[-2000:]
    assert (mine / "junit.xml").is_file() and (mine / "report.html").is_file()
    assert not (report / "junit.xml").exists() and not (report / "report.html").exists()
    assert (report / "allure-results").is_dir()  # what the user did not redirect still lands here


def test_a_case_the_rig_cannot_run_is_skipped_before_the_rig_comes_up(pytester):
    pytester.makefile(".yaml", catalogue=CATALOGUE)
    pytester.makepyfile(test_demo=LACKING)
    report = pytester.path / "report"
    result = pytester.runpytest_subprocess(f"--harness-rig={RIG}", f"--harness-report-dir={report}",
                                           "-p", "no:cacheprovider")
    document = json.loads((report / "conformance.json").read_text())
    [case] = document["cases"]
    assert case["verdict"] == "skip", result.stdout.str()[-2000:]
    assert case["message"] == "needs the rig capability 'no-such-capability', which 'emulated' does not offer"
    events = [json.loads(line) for line in (report / "trace.jsonl").read_text().splitlines()]
    assert not [e for e in events if e["name"] in ("RigSetup", "RoleUp")], "the rig came up for nothing"


def test_loading_the_plugin_imports_nothing_heavy():
    # every pytest run in an environment with the harness installed loads the entry point
    code = ("import sys, harness.plugin; "
            "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('harness', 'pytest', '_pytest', 'scapy', 'cryptography', 'yaml', 'websockets', 'pyvisa'))))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert set(loaded) <= {"harness", "harness.plugin", "harness.verdicts"}, loaded


def test_the_short_spellings_of_harness_run_still_work(harness_command, tmp_path):
    report = tmp_path / "report"
    # `--` ends the harness's options: what follows is pytest's
    result = subprocess.run(harness_command + ["run", "--rig", str(RIG), "--report-dir", str(report),
                                               "--", "-k", "test_cold_boot_accepted"],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert _verdicts(report) == {"OCPP-BOOT-001": "pass"}, result.stdout[-2000:]
    assert (report / "junit.xml").is_file()


def test_a_report_shows_no_folder_of_the_machine_in_the_command(tmp_path, monkeypatch):
    from harness.plugin.run import shown_command

    monkeypatch.chdir(tmp_path)
    (tmp_path / "rigs").mkdir()
    inside, outside = str(tmp_path / "rigs" / "lab.yaml"), "/srv/elsewhere/other.yaml"
    assert shown_command(["/usr/bin/pytest", f"--harness-rig={inside}", "--rig", outside, "-k", "x=1"]) == [
        "pytest", "--harness-rig=rigs/lab.yaml", "--rig", "other.yaml", "-k", "x=1"]
