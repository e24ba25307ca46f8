"""A run that does not get through every case says so: interrupted, stopped by -x, a rig that
cannot come up, a charger that never connects. The cases it did not run are listed as not run with
the reason, counted, and the report and conformance.json say the run is incomplete; a rig problem
is one line, not a traceback per case; a missing charger costs one boot timeout, not one per case."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CATALOGUE = """suites:
  demo: {title: Demo}
cases:
  DEMO-001: {suite: demo, title: First}
  DEMO-002: {suite: demo, title: Second}
  DEMO-003: {suite: demo, title: Third}
  DEMO-004: {suite: demo, title: Fourth}
"""


def _suite(folder: Path, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "catalogue.yaml").write_text(CATALOGUE)
    (folder / "test_demo.py").write_text("import time\nimport pytest\n\n" + body)
    return folder / "test_demo.py"


def _run(harness_command, *args, timeout=300):
    return subprocess.run(harness_command + ["run", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def _document(report: Path) -> dict:
    return json.loads((report / "conformance.json").read_text())


def test_x_stops_after_the_first_failure_and_lists_the_rest_as_not_run(tmp_path, harness_command):
    suite = _suite(tmp_path / "cases", """
@pytest.mark.case("DEMO-001")
def test_one(rig):
    pass

@pytest.mark.case("DEMO-002")
def test_two(rig):
    assert False, "the DUT broke a rule"

@pytest.mark.case("DEMO-003")
def test_three(rig):
    pass

@pytest.mark.case("DEMO-004")
def test_four(rig):
    pass
""")
    report = tmp_path / "report"
    result = _run(harness_command, "--report-dir", str(report), str(suite), "-x")
    assert result.returncode == 1, result.stdout[-3000:]
    run = _document(report)["run"]
    assert run["complete"] is False and "(-x / --maxfail)" in run["stopped"]
    assert run["summary"] == {"pass": 1, "fail": 1, "inconc": 0, "error": 0, "skip": 0, "notrun": 2}
    cases = {c["id"]: c for c in _document(report)["cases"]}
    assert cases["DEMO-003"]["verdict"] == "notrun" and "stopped after 1 failed case" in cases["DEMO-003"]["message"]
    assert "INCOMPLETE" in result.stdout and "2 not run" in result.stdout
    page = (report / "conformance.html").read_text()
    assert "Incomplete run" in page and "2 of 4 cases were not run" in page
    # one TestVerdict per case, the failed one included
    verdicts = [json.loads(line) for line in (report / "trace.jsonl").read_text().splitlines()
                if '"TestVerdict"' in line]
    assert sorted(v["payload"]["nodeid"].rsplit("::", 1)[1] for v in verdicts) == [
        "test_four", "test_one", "test_three", "test_two"]


def test_ctrl_c_leaves_a_report_that_says_interrupted(tmp_path, harness_command):
    suite = _suite(tmp_path / "cases", "\n".join(f"""
@pytest.mark.case("DEMO-00{n}")
def test_{n}(rig):
    time.sleep(3)
""" for n in range(1, 5)))
    report = tmp_path / "report"
    process = subprocess.Popen(harness_command + ["run", "--report-dir", str(report), str(suite)], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            trace = report / "trace.jsonl"
            if trace.exists() and trace.read_text().count('"TestStarted"') >= 2:
                break
            time.sleep(0.05)
        time.sleep(0.5)
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 2, output[-3000:]
    document = _document(report)
    run = document["run"]
    assert run["complete"] is False and run["stopped"] == "interrupted (Ctrl-C or SIGTERM)"
    verdicts = {c["id"]: c for c in document["cases"]}
    assert verdicts["DEMO-001"]["verdict"] == "pass"
    assert verdicts["DEMO-002"]["verdict"] == "notrun"
    assert "it was running when the run stopped" in verdicts["DEMO-002"]["message"]
    assert [verdicts[f"DEMO-00{n}"]["verdict"] for n in (3, 4)] == ["notrun", "notrun"]
    assert run["summary"]["pass"] == 1 and run["summary"]["notrun"] == 3
    assert "INCOMPLETE: interrupted" in output
    assert "Incomplete run" in (report / "conformance.html").read_text()


def test_a_rig_that_cannot_come_up_stops_the_run_with_one_line_per_problem(tmp_path, harness_command):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    rig = (ROOT / "rigs" / "emulated.yaml").read_text().replace("  port: 0              # any free port",
                                                                f"  port: {port}")
    rig = rig.replace("../fixtures/", str(ROOT / "fixtures") + "/")
    (tmp_path / "busy.yaml").write_text(rig)
    report = tmp_path / "report"
    try:
        result = _run(harness_command, "--rig", str(tmp_path / "busy.yaml"), "--report-dir", str(report))
    finally:
        busy.close()
    assert result.returncode == 2, result.stdout[-3000:]
    assert f"rig problem: csms listen address 127.0.0.1:{port}: cannot listen there" in result.stdout
    assert "Traceback" not in result.stdout and len(result.stdout.splitlines()) < 40, result.stdout
    run = _document(report)["run"]
    assert run["complete"] is False and "cannot be used" in run["stopped"]
    assert run["summary"]["notrun"] > 50 and sum(v for k, v in run["summary"].items() if k != "notrun") == 0
    assert any("cannot listen there" in p for p in run["rig_problems"])


def test_a_charger_that_never_connects_costs_one_boot_timeout(tmp_path, harness_command):
    suite = _suite(tmp_path / "cases", "\n".join(f"""
@pytest.mark.case("DEMO-00{n}")
def test_{n}(evse):
    pass
""" for n in range(1, 5)))
    rig = tmp_path / "lab.yaml"
    rig.write_text(
        "name: quiet-bench\nkind: lab\n"
        f"lock: {tmp_path / 'bench.lock'}\n"
        "csms: {host: 0.0.0.0, port: 0}\n"
        "evse: {kind: lab, station_id: CP-SILENT, boot_timeout: 2, "
        "ocpp: {version: '2.0.1', password: lab-password-000001}}\n"
        "ev: {kind: none}\npilot: {kind: none}\n")
    report = tmp_path / "report"
    started = time.monotonic()
    result = _run(harness_command, "--rig", str(rig), "--report-dir", str(report), str(suite))
    elapsed = time.monotonic() - started
    assert result.returncode != 0
    cases = {c["id"]: c for c in _document(report)["cases"]}
    first = cases["DEMO-001"]
    assert first["verdict"] == "error"
    assert "CP-SILENT did not connect to the CSMS at ws://" in first["message"]
    assert "no connection attempt reached the CSMS" in first["message"]
    assert [cases[f"DEMO-00{n}"]["verdict"] for n in (2, 3, 4)] == ["notrun"] * 3
    assert "did not connect" in cases["DEMO-004"]["message"]
    assert elapsed < 2 * 3 + 20, f"{elapsed:.1f} s: the boot timeout was waited out more than once"
    # where the charger should have connected, said as the run started, with this host's address
    urls = [line for line in result.stdout.splitlines() if line.startswith("charger URL: ws://")]
    assert urls and all("/CP-SILENT " in url and "0.0.0.0" not in url for url in urls), result.stdout[:2000]


def test_the_reason_a_charger_was_refused_is_in_the_verdict(tmp_path, harness_command):
    """A charger that keeps presenting the wrong password: the case says what the CSMS refused,
    not only that nothing connected."""
    import threading

    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    from harness.ocpp.security import basic_auth_header

    suite = _suite(tmp_path / "cases", """
@pytest.mark.case("DEMO-001")
def test_1(evse):
    pass
""")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    rig = tmp_path / "lab.yaml"
    rig.write_text(
        "name: wrong-password-bench\nkind: lab\n"
        f"lock: {tmp_path / 'bench.lock'}\n"
        f"csms: {{host: 0.0.0.0, port: {port}}}\n"
        "evse: {kind: lab, station_id: CP-7, boot_timeout: 4, "
        "ocpp: {version: '2.0.1', password: lab-password-000001}}\n"
        "ev: {kind: none}\npilot: {kind: none}\n")
    stop = threading.Event()

    def charger_with_a_wrong_password():
        headers = {"Authorization": basic_auth_header("CP-7", "not-the-password-1")}
        while not stop.wait(0.3):
            try:
                with connect(f"ws://127.0.0.1:{port}/CP-7", subprotocols=["ocpp2.0.1"], additional_headers=headers,
                             open_timeout=2):
                    pass
            except (InvalidStatus, OSError):
                pass

    thread = threading.Thread(target=charger_with_a_wrong_password, daemon=True)
    thread.start()
    try:
        result = _run(harness_command, "--rig", str(rig), "--report-dir", str(tmp_path / "report"), str(suite))
    finally:
        stop.set()
        thread.join(5)
    case = _document(tmp_path / "report")["cases"][0]
    assert case["verdict"] == "error", result.stdout[-2000:]
    assert "the CSMS refused meanwhile: refused CP-7" in case["message"] and "401" in case["message"], case


def test_a_module_that_cannot_be_collected_is_named_and_nothing_looks_complete(tmp_path, harness_command):
    suite = _suite(tmp_path / "cases", """
@pytest.mark.case("DEMO-001")
def test_one(rig):
    pass
""")
    (suite.parent / "test_broken.py").write_text("from harness.nowhere import nothing\n")
    report = tmp_path / "report"
    result = _run(harness_command, "--report-dir", str(report), str(suite.parent))
    assert result.returncode != 0, result.stdout[-3000:]
    run = _document(report)["run"]
    assert run["complete"] is False
    assert "could not be collected" in run["stopped"] and "test_broken.py" in run["stopped"], run["stopped"]
    assert "interrupted" not in run["stopped"]
    page = (report / "report.html").read_text()  # pytest-html lists the collection error as a row
    assert "test_broken.py" in page
