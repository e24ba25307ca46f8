"""`harness run -n N`: the cases spread over pytest-xdist workers, each with its own emulated rig,
and one merged report whose verdicts are those of a serial run."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from harness.trace import Recorder

ROOT = Path(__file__).resolve().parents[2]
SELECTION = "boot or rpc or two_sessions_in_a_row or blocked_token"


def _run(harness_command, report: Path, *options: str) -> dict:
    result = subprocess.run(harness_command + ["run", "--report-dir", str(report), *options, "-k", SELECTION],
                            cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    return json.loads((report / "conformance.json").read_text())


def test_two_workers_give_the_verdicts_of_a_serial_run_in_one_report(tmp_path, harness_command):
    serial = _run(harness_command, tmp_path / "serial")
    parallel = _run(harness_command, tmp_path / "parallel", "-n", "2")
    verdicts = {c["instance"]: c["verdict"] for c in serial["cases"]}
    assert {c["instance"]: c["verdict"] for c in parallel["cases"]} == verdicts
    assert [c["instance"] for c in parallel["cases"]] == [c["instance"] for c in serial["cases"]]  # same order
    run = parallel["run"]
    assert run["workers"] == ["gw0", "gw1"] and run["complete"] and run["summary"] == serial["run"]["summary"]
    # each case's evidence leads into the merged timeline: its span holds its own events
    trace = Recorder.load(tmp_path / "parallel" / "trace.jsonl")
    events = {e.seq: e for e in trace}
    for case in parallel["cases"]:
        first, last = case["evidence"]["trace_span"]
        assert events[first].test == case["nodeid"] and events[last].name == "TestVerdict"
        assert events[last].payload["nodeid"] == case["nodeid"]
    joined = [s for c in parallel["cases"] if c["id"] == "CORR-001" for s in c["sessions"]]
    assert joined and all(s["ocpp"] is not None and not s["problems"] for s in joined)
    # the two rigs ran side by side: the merged timeline still joins each rig's sessions to its own
    # transactions (events keyed by worker), without a problem
    assert {e.keys.get("worker") for e in trace if e.test} == {"gw0", "gw1"}
    joined_all = subprocess.run(harness_command + ["trace", "sessions", str(tmp_path / "parallel")], cwd=ROOT,
                                capture_output=True, text=True, timeout=120)
    assert joined_all.returncode == 0 and " 0 problem(s)" in joined_all.stdout, joined_all.stdout[-2000:]
    # where lo is captured (root), a worker's captures hold its own rig's V2G traffic only
    from harness.capture.packets import dissect, read_capture

    captures = sorted((tmp_path / "parallel" / "workers").glob("gw*/captures/*.pcap"))
    if captures:
        ports: dict[str, set[int]] = {}
        for event in trace:
            if event.name in ("SeccListening", "SdpServerListening") and isinstance(event.payload, dict):
                listening = {event.payload.get(k) for k in ("tcp_port", "tls_port", "port")} - {None}
                ports.setdefault(event.keys.get("worker", ""), set()).update(int(p) for p in listening)
        assert set(ports) == {"gw0", "gw1"} and not ports["gw0"] & ports["gw1"], ports
        for capture in captures:
            own = ports[capture.parent.parent.name]
            for packet in read_capture(capture):
                segment = dissect(packet)
                assert segment is None or {segment.sport, segment.dport} & own, \
                    f"{capture.name}: packet {packet.number} ({segment.sport} -> {segment.dport}) is another rig's"
    page = (tmp_path / "parallel" / "conformance.html").read_text()
    assert "<td>workers</td><td>2 (gw0, gw1): a parallel run" in page  # a reader sees it was one
    assert "CORR-001" in page and (tmp_path / "parallel" / "junit.xml").read_text().count("<testcase") == len(verdicts)
