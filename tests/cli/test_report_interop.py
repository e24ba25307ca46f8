"""`harness report interop`: one matrix over runs of several DUTs and EV profiles."""

from __future__ import annotations

import csv
import json
import subprocess


def _run(folder, run_id, started, dut, ev, verdicts):
    folder.mkdir(parents=True)
    cases = [{"id": case_id.split("[")[0], "instance": case_id, "title": f"title of {case_id}", "suite": "demo",
              "suite_title": "Demo suite", "verdict": verdict, "message": "" if verdict == "pass" else
              f"{case_id} broke a rule"} for case_id, verdict in verdicts.items()]
    run = {"id": run_id, "started": started, "rig": {"name": "lab"},
           "dut": {"station_id": "CS1", "vendor": dut[0], "model": dut[1], "firmware_version": dut[2]},
           "ev": {"kind": "emulated", "profile": ev}}
    (folder / "conformance.json").write_text(json.dumps({"run": run, "cases": cases}))
    return folder


def test_three_runs_make_one_matrix_with_what_failed(tmp_path, harness_command):
    runs = [
        _run(tmp_path / "a", "r1", "2026-12-01T10:00:00+00:00", ("Acme", "AC22", "1.0"), "EV-A",
             {"OCPP-BOOT-001": "pass", "V2G-SES-002[ac]": "fail"}),
        _run(tmp_path / "b", "r2", "2026-12-02T10:00:00+00:00", ("Acme", "AC22", "1.0"), "EV-B",
             {"OCPP-BOOT-001": "pass", "V2G-SES-002[ac]": "pass", "V2G-SES-002[dc]": "skip"}),
        # the same pairing as the first, later: its verdicts stand
        _run(tmp_path / "c", "r3", "2026-12-03T10:00:00+00:00", ("Acme", "AC22", "1.0"), "EV-A",
             {"V2G-SES-002[ac]": "pass"}),
        _run(tmp_path / "d", "r4", "2026-12-04T10:00:00+00:00", ("Volt", "DC150", "2.3"), "EV-A",
             {"OCPP-BOOT-001": "error"}),
    ]
    out = tmp_path / "matrix"
    result = subprocess.run(harness_command + ["report", "interop", *map(str, runs), "--out", str(out)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    rows = list(csv.reader((out / "interop.csv").open()))
    assert rows[0] == ["suite", "feature", "title", "Acme AC22 fw 1.0 / EV-A", "Acme AC22 fw 1.0 / EV-B",
                       "Volt DC150 fw 2.3 / EV-A"]
    table = {row[1]: row[3:] for row in rows[1:]}
    assert table == {"OCPP-BOOT-001": ["pass", "pass", "error"], "V2G-SES-002[ac]": ["pass", "pass", "not tested"],
                     "V2G-SES-002[dc]": ["not tested", "skip", "not tested"]}
    page = (out / "interop.html").read_text()
    assert "2 run(s)" in page and "OCPP-BOOT-001 broke a rule" in page and "Demo suite" in page


def test_a_folder_without_results_is_named(tmp_path, harness_command):
    (tmp_path / "empty").mkdir()
    result = subprocess.run(harness_command + ["report", "interop", str(tmp_path / "empty"), "--out",
                                               str(tmp_path / "out")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "empty/conformance.json: not a conformance.json" in result.stderr
