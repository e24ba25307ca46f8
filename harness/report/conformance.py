"""conformance.json: the run (rig, DUT, harness version, start/end) and one entry per test case.

Verdicts follow conformance-testing practice: ``pass``, ``fail`` (the DUT did not do what the
standard requires), ``inconc`` (the test could not decide), ``error`` (the harness or the rig
failed, not the DUT), ``skip`` (not applicable to this rig or DUT) and ``notrun`` (the run
stopped before it: interrupted, ``-x``, a rig that failed; ``run.complete`` is false then and
``run.stopped`` says why).
"""

from __future__ import annotations

import datetime as _dt
import json
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import harness
from harness.report.catalogue import TestCase

VERDICTS = ("pass", "fail", "inconc", "error", "skip", "notrun")
#: how people read each verdict
#: how a verdict reads where it is not its own word (others read as they are spelled)
VERDICT_LABELS = {"notrun": "not run"}
SCHEMA = "harness-conformance/1"


@dataclass
class Kpi:
    name: str
    value: float
    unit: str = ""
    description: str = ""


@dataclass(frozen=True)
class Reaction:
    """What the device under test was expected to do on one protocol, and what it did: the
    report shows these side by side. ``judged``: the verdict rests on this row; otherwise it is
    shown for the reader (the rule does not fix it exactly, ``note`` says why)."""

    protocol: str
    what: str
    expected: str
    observed: str
    judged: bool = False
    note: str = ""
    #: whether the observation is what was expected (None: the texts are equal)
    agrees: bool | None = None

    @property
    def matches(self) -> bool:
        return self.expected == self.observed if self.agrees is None else self.agrees


@dataclass
class CaseResult:
    case: TestCase
    nodeid: str
    parameters: dict[str, Any]
    verdict: str = "pass"
    message: str = ""
    started: str = ""
    duration_s: float = 0.0
    kpis: list[Kpi] = field(default_factory=list)
    reactions: list[Reaction] = field(default_factory=list)
    #: first and last timeline sequence numbers recorded while the test ran
    trace_span: tuple[int, int] | None = None
    evidence: dict[str, list[str]] = field(default_factory=dict)
    #: the charging sessions of the case, joined across protocols (harness.correlation.sessions)
    sessions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def instance_id(self) -> str:
        """The case id plus its parameters, stable across runs: OCPP-SEC-002[profile-2]."""
        if "[" in self.nodeid:
            return f"{self.case.id}[{self.nodeid.rsplit('[', 1)[1]}"
        return self.case.id

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.case.id,
            "instance": self.instance_id,
            "title": self.case.title,
            "suite": self.case.suite.id,
            "suite_title": self.case.suite.title,
            "dut": self.case.suite.dut,
            "parameters": self.parameters,
            "verdict": self.verdict,
            "message": self.message,
            "references": {k: list(v) for k, v in self.case.references.items()},
            "kpis": [asdict(k) for k in self.kpis],
            "reactions": [{**asdict(r), "matches": r.matches} for r in self.reactions],
            "started": self.started,
            "duration_s": round(self.duration_s, 3),
            "evidence": {**self.evidence,
                         **({"trace_span": list(self.trace_span)} if self.trace_span else {})},
            "sessions": self.sessions,
            "nodeid": self.nodeid,
        }


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def source_commit() -> str | None:
    """The git commit the harness runs from (with ``+changes`` when its files differ from it), or
    None for an installed copy without its repository."""
    import subprocess

    root = Path(harness.__file__).resolve().parents[1]
    if not (root / ".git").exists():
        return None
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        changed = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                 capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+changes" if changed else "") if commit else None


def file_digest(path: Path) -> str:
    """The first 12 hex digits of a file's SHA-256: which version of a catalogue a run used."""
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def build(*, run_id: str, started: str, finished: str, rig: dict[str, Any], dut: dict[str, Any] | None,
          results: list[CaseResult], command: list[str], stopped: str | None = None,
          rig_problems: list[str] | None = None, ev: dict[str, Any] | None = None,
          provenance: dict[str, Any] | None = None) -> dict[str, Any]:
    """``dut``: the charger under test (its BootNotification); ``ev``: the EV of the rig, the device
    under test of cases whose suite says ``dut: ev``."""
    summary = {verdict: 0 for verdict in VERDICTS}
    for result in results:
        summary[result.verdict] += 1
    return {
        "schema": SCHEMA,
        "run": {
            "id": run_id,
            "started": started,
            "finished": finished,
            "harness_version": harness.__version__,
            **(provenance or {}),
            "python": platform.python_version(),
            "host": platform.node(),
            "command": command,
            "rig": rig,
            "dut": dut,
            "ev": ev,
            "summary": summary,
            "complete": stopped is None and not summary["notrun"],
            "stopped": stopped,
            "rig_problems": list(rig_problems or []),
        },
        "cases": [r.to_json() for r in results],
    }


def write(path: Path, document: dict[str, Any]) -> None:
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(document, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    temporary.replace(path)
