"""The interoperability matrix over several runs: which feature (a test case, with its parameters)
passed for which pairing of device under test and EV profile, and what failed where.

Each run is a report folder (its conformance.json). A column is one pairing, named by the charger's
identity (its BootNotification: vendor, model, firmware) and the EV profile the rig drove; when
several runs tested the same pairing, the latest run's verdict of a feature stands and the column
says how many runs it merges. A row is one feature, in the order the runs met them, grouped by
suite. The matrix is written as a self-contained HTML page and as CSV (one row per feature, one
column per pairing) for a spreadsheet.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.report.html import BADGE_STYLE, badge
from harness.report.html import escape as _e


class InteropError(ValueError):
    """A run folder that cannot be read; the message names it."""


@dataclass
class Pairing:
    dut: str
    ev: str
    runs: list[str] = field(default_factory=list)
    #: feature (case instance) -> the case as the latest run reported it
    cases: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.dut} / {self.ev}"


def _dut_name(run: dict[str, Any]) -> str:
    dut = run.get("dut") or {}
    named = " ".join(str(dut[k]) for k in ("vendor", "model") if dut.get(k))
    firmware = f" fw {dut['firmware_version']}" if dut.get("firmware_version") else ""
    return (named + firmware) or str(dut.get("station_id") or (run.get("rig") or {}).get("name") or "unknown DUT")


def _ev_name(run: dict[str, Any]) -> str:
    ev = run.get("ev") or {}
    if ev.get("kind") == "lab":  # an EV under test: the VIN the lab gave, else the EVCCID it sent
        return "EV under test " + str(ev.get("vin") or ", ".join(ev.get("evccid") or []) or "(unidentified)")
    return str(ev.get("profile") or ev.get("kind") or "no EV")


def load_run(folder: Path) -> dict[str, Any]:
    path = folder / "conformance.json" if folder.is_dir() else folder
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        document["run"], document["cases"]  # noqa: B018 - both must be there
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InteropError(f"{path}: not a conformance.json the harness wrote ({exc})") from None
    return document


def matrix(runs: list[dict[str, Any]]) -> tuple[list[Pairing], list[tuple[str, str, str]]]:
    """(the pairings, in the order first met; the features as (suite title, instance, title))."""
    pairings: dict[tuple[str, str], Pairing] = {}
    features: dict[str, tuple[str, str, str]] = {}
    for document in sorted(runs, key=lambda d: str(d["run"].get("started", ""))):
        run = document["run"]
        key = (_dut_name(run), _ev_name(run))
        pairing = pairings.setdefault(key, Pairing(*key))
        pairing.runs.append(str(run.get("id")))
        for case in document["cases"]:
            features.setdefault(case["instance"], (case.get("suite_title") or case.get("suite") or "",
                                                   case["instance"], case.get("title", "")))
            pairing.cases[case["instance"]] = {**case, "run": run.get("id")}
    by_suite: dict[str, list[tuple[str, str, str]]] = {}
    for feature in features.values():  # in the order the runs met them, grouped by suite
        by_suite.setdefault(feature[0], []).append(feature)
    return list(pairings.values()), [f for group in by_suite.values() for f in group]


def write(runs: list[dict[str, Any]], out: Path) -> tuple[Path, Path]:
    """interop.html and interop.csv in ``out``."""
    pairings, features = matrix(runs)
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / "interop.csv"
    with csv_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["suite", "feature", "title", *[p.label for p in pairings]])
        for suite, instance, title in features:
            writer.writerow([suite, instance, title,
                             *[p.cases.get(instance, {}).get("verdict", "not tested") for p in pairings]])
    html_path = out / "interop.html"
    html_path.write_text(_page(pairings, features, len(runs)), encoding="utf-8")
    return html_path, csv_path


_STYLE = BADGE_STYLE + """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em;color:#1d232a}
table{border-collapse:collapse;margin:.5em 0} th,td{border:1px solid #d0d7de;padding:3px 8px;text-align:left;
vertical-align:top} th{background:#f3f5f7;font-size:12px} td.s{background:#f6f8fa;font-weight:600}
.v{font-size:11px;padding:0 6px} .muted{color:#57606a} code{font:12px ui-monospace,monospace} .wrap{overflow-x:auto}
@media print{body{margin:0;font-size:11px}}
"""


def _cell(case: dict[str, Any] | None) -> str:
    if case is None:
        return "<td class='muted'>not tested</td>"
    verdict = case["verdict"]
    why = case.get("message", "").strip().splitlines()[0] if verdict != "pass" and case.get("message") else ""
    return f"<td title='{_e(why)}'>{badge(verdict)}</td>"


def _page(pairings: list[Pairing], features: list[tuple[str, str, str]], runs: int) -> str:
    head = "".join(f"<th>{_e(p.dut)}<br>EV profile: {_e(p.ev)}<br><span class='muted'>{len(p.runs)} run(s)</span></th>"
                   for p in pairings)
    rows, suite = [], None
    for title_of_suite, instance, title in features:
        if title_of_suite != suite:
            suite = title_of_suite
            rows.append(f"<tr><td class='s' colspan='{len(pairings) + 1}'>{_e(suite)}</td></tr>")
        rows.append(f"<tr><td><code>{_e(instance)}</code> {_e(title)}</td>"
                    + "".join(_cell(p.cases.get(instance)) for p in pairings) + "</tr>")
    failed = []
    for pairing in pairings:
        bad = [c for c in pairing.cases.values() if c["verdict"] in ("fail", "error")]
        if bad:
            items = "".join(f"<li><code>{_e(c['instance'])}</code> {badge(c['verdict'])} {_e(c.get('message', ''))}"
                            f" <span class='muted'>(run {_e(c['run'])})</span></li>" for c in bad)
            failed.append(f"<h3>{_e(pairing.label)}</h3><ul>{items}</ul>")
    counts = {p.label: sum(1 for c in p.cases.values() if c["verdict"] == "pass") for p in pairings}
    summary = "; ".join(f"{_e(label)}: {n} of {len(features)} features pass" for label, n in counts.items())
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>Interoperability matrix</title>"
            f"<style>{_STYLE}</style></head><body><h1>Interoperability matrix</h1>"
            f"<p class='muted'>{runs} run(s), {len(pairings)} pairing(s) of device under test and EV profile, "
            f"{len(features)} feature(s). A feature a pairing was not tested on says so. {summary}.</p>"
            f"<h2>What failed</h2>{''.join(failed) or '<p>Nothing failed.</p>'}"
            f"<h2>Matrix</h2><div class='wrap'><table><tr><th>Feature</th>{head}</tr>{''.join(rows)}</table></div>"
            f"</body></html>")
