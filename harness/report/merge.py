"""One report from the workers of a parallel run (``harness run -n N``).

Each pytest-xdist worker brings up its own emulated rig and writes a complete report folder of
its own under ``workers/<id>/`` of the run's. When the run ends, the controller merges them into
the run's conformance.json and trace.jsonl, so the run reads like a serial one:

- cases in the order of collection, each from the worker that ran it (a case no worker ran is
  ``notrun``, with why the run stopped);
- the timeline: the controller's own events, then each worker's block in turn, times kept, each
  event with the key ``worker`` (the rigs ran side by side: what one rig's EV did never joins the
  other rig's CSMS, see :func:`harness.correlation.sessions.join`); a case's ``trace_span`` is
  renumbered into the merged timeline (its events stay contiguous);
- evidence paths (captures, plots) point into ``workers/<id>/``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.report.conformance import VERDICTS
from harness.trace import Recorder
from harness.trace.recorder import TraceFileError


def merge_workers(document: dict[str, Any], report_dir: Path, trace: Recorder) -> tuple[dict[str, Any], Recorder]:
    """The run's ``document`` (the controller's, without cases) with the workers' cases, and
    ``trace`` with the workers' timelines appended."""
    run = document["run"]
    ran: dict[str, dict[str, Any]] = {}
    collected: list[dict[str, Any]] = []
    problems: list[str] = []
    workers: list[str] = []
    for folder in sorted((report_dir / "workers").iterdir(), key=_worker_order):
        path = folder / "conformance.json"
        if not path.is_file():
            problems.append(f"worker {folder.name} left no conformance.json (it crashed or was killed)")
            continue
        worker = json.loads(path.read_text(encoding="utf-8"))
        workers.append(folder.name)
        try:
            mapping = trace.adopt(Recorder.load(folder / "trace.jsonl"), keys={"worker": folder.name})
        except (OSError, TraceFileError) as exc:
            problems.append(f"worker {folder.name}: its trace.jsonl does not read ({exc})")
            mapping = {}
        prefix = f"workers/{folder.name}/"
        for case in worker.get("cases", []):
            ran[case["nodeid"]] = _moved(case, mapping, prefix, folder)
        if not collected:
            collected = worker.get("collected", [])
        for key in ("dut", "ev"):
            if run.get(key) is None and worker["run"].get(key) is not None:
                run[key] = worker["run"][key]
        run["rig_problems"] = [*run.get("rig_problems", []), *worker["run"].get("rig_problems", [])]
        if run.get("stopped") is None and worker["run"].get("stopped"):
            run["stopped"] = f"worker {folder.name}: {worker['run']['stopped']}"
    order = [case["nodeid"] for case in collected] or list(ran)
    by_id = {case["nodeid"]: case for case in collected}
    cases = []
    for nodeid in order:
        case = ran.get(nodeid)
        if case is None:
            case = dict(by_id[nodeid])
            case["message"] = f"not run: {run.get('stopped') or 'no worker ran it before the run ended'}"
        cases.append(case)
    cases += [case for nodeid, case in ran.items() if nodeid not in by_id]
    summary = {verdict: 0 for verdict in VERDICTS}
    for case in cases:
        summary[case["verdict"]] += 1
    run.update(summary=summary, workers=workers, complete=run.get("stopped") is None and not summary["notrun"]
               and not problems)
    if problems:
        run["stopped"] = run.get("stopped") or "; ".join(problems)
    document["cases"] = cases
    return document, trace


def _worker_order(folder: Path) -> tuple[int, str]:
    digits = "".join(c for c in folder.name if c.isdigit())
    return (int(digits) if digits else 0, folder.name)


def _moved(case: dict[str, Any], mapping: dict[int, int], prefix: str, folder: Path) -> dict[str, Any]:
    case = dict(case)
    evidence = {}
    for kind, value in (case.get("evidence") or {}).items():
        if kind == "trace_span" and value:
            first, last = value
            evidence[kind] = [mapping.get(first, first), mapping.get(last, last)]
        elif isinstance(value, list):
            evidence[kind] = [prefix + item if isinstance(item, str) and (folder / item).exists() else item
                              for item in value]
        else:
            evidence[kind] = value
    case["evidence"] = evidence
    return case
