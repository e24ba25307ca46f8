"""conformance.html: the conformance report as one self-contained page.

Read from conformance.json and trace.jsonl only, so a report can be re-rendered from a report
folder copied off the lab machine.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any, Iterable

from harness.ocpp.iso15118_failures import TABLE
from harness.report.catalogue import REFERENCE_KINDS
from harness.report.conformance import VERDICT_LABELS
from harness.trace import Event, Recorder

#: the case that checks the error-mapping table row by row
ERROR_MAPPING_CASE = "ERR-MAP-001"

#: how many timeline events a case shows inline; the full timeline is trace.jsonl
EVENTS_PER_CASE = 400

#: how a verdict looks, shared by every page the harness writes (conformance.html, interop.html)
BADGE_STYLE = """
.v{font-weight:700;text-transform:uppercase;padding:1px 8px;border-radius:3px;color:#fff;display:inline-block}
.v-pass{background:#1a7f37}.v-fail{background:#cf222e}.v-error{background:#8250df}.v-inconc{background:#bf8700}
.v-skip{background:#6e7781}.v-notrun{background:#fff;color:#57606a;border:1px dashed #8c959f}
"""

_STYLE = BADGE_STYLE + """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em;color:#1d232a;max-width:1400px}
h1{font-size:1.6em;margin-bottom:.2em} h2{font-size:1.2em;margin-top:1.6em}
table{border-collapse:collapse;width:100%;margin:.5em 0} th,td{border:1px solid #d0d7de;padding:4px 8px;
text-align:left;vertical-align:top} th{background:#f3f5f7} .meta td:first-child{width:14em;font-weight:600}
.incomplete{border:2px solid #cf222e;background:#ffebe9;padding:.6em 1em;border-radius:4px;margin:1em 0}
.incomplete b{color:#cf222e} .summary span{margin-right:1em} td.t{white-space:nowrap} td.why{max-width:28em} code,pre{font:12px/1.4 ui-monospace,monospace}
pre{white-space:pre-wrap;word-break:break-all;background:#f6f8fa;padding:6px;margin:0}
details{margin:.3em 0} summary{cursor:pointer} .ev td{font:12px ui-monospace,monospace}
.muted{color:#57606a} .l-fault td,.l-verdict td{background:#fff8c5}
.rx td.same{color:#1a7f37;font-weight:600} .rx td.differs{color:#9a6700;font-weight:600}
h3{font-size:1.05em;margin:1em 0 .2em} .mx{overflow-x:auto} .matrix{width:auto}
.matrix td:first-child{min-width:24em;max-width:36em} .matrix th{font-weight:400;font-size:11px}
.matrix td{white-space:nowrap} .matrix td:first-child{white-space:normal} .matrix .v{font-size:10px;padding:0 4px}
.views>input{margin-left:1em} .views>label{font-size:12px;margin-right:.5em}
.views input.bb:checked~table tr.o-evse{display:none}
.views input.own:checked~table tr.o-ev,.views input.own:checked~table tr.o-csms{display:none}
.lanes td{font:12px ui-monospace,monospace;width:18%} .lanes td:first-child{width:5em}
.lanes-box>label{font-size:12px;margin-right:.8em} .lanes-box .zoom{font-size:12px} .lanes-box .zoom input{width:6em}
.lanes-box input.last:checked~table tr.early,.lanes tr.out{display:none}
@media print{body{margin:0;font-size:11px;max-width:none} details>summary{list-style:none}
details>*{display:block} tr,img{page-break-inside:avoid} h2{page-break-after:avoid} a{color:inherit}}
"""
#: the swimlanes' zoom: rows outside the seconds typed in are hidden (and the earlier rows shown,
#: so a window reaches back before the last rows); the page works without it
_ZOOM_SCRIPT = """<script>
document.querySelectorAll('.lanes-box').forEach(function (box) {
  var from = box.querySelector('.zf'), to = box.querySelector('.zt');
  if (!from) return;
  function zoom() {
    var low = from.value === '' ? -Infinity : parseFloat(from.value);
    var high = to.value === '' ? Infinity : parseFloat(to.value);
    if (from.value !== '' || to.value !== '') box.querySelector('input.all').checked = true;
    box.querySelectorAll('tr[data-t]').forEach(function (row) {
      var t = parseFloat(row.getAttribute('data-t'));
      row.classList.toggle('out', t < low || t > high);
    });
  }
  from.addEventListener('input', zoom);
  to.addEventListener('input', zoom);
});
</script>"""
#: what a rig's time_scale means, for people reading the report
TIME_SCALE_NOTE = ("the standards' waits and timeouts (ISO 15118 timers, OCPP intervals, SLAC timers) ran at this "
                   "fraction of their values, so an emulated run is fast; 1 means real time (a lab rig)")


def render(document: dict[str, Any], trace: Recorder | None = None, folder: Path | None = None) -> str:
    """The page; with the report ``folder``, evidence images are embedded, so the page keeps them
    when it is sent on its own."""
    run = document["run"]
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>Conformance report "
             f"{_e(run['id'])}</title><style>{_STYLE}</style></head><body>",
             f"<h1>Conformance report</h1><p class='muted'>run {_e(run['id'])} &middot; harness "
             f"{_e(run['harness_version'])} &middot; {_e(run['started'])} to {_e(run['finished'])}</p>"]
    parts.append(_completeness(run))
    parts.append(_summary(run["summary"]))
    ev_under_test = (run.get("ev") or {}).get("kind") == "lab"
    parts.append(_what_failed(document["cases"], trace, ev_under_test=ev_under_test))
    ev_cases = [c for c in document["cases"] if c.get("dut") == "ev"]
    if ev_under_test:
        parts.append("<h2>Device under test: an EV</h2><p>The harness played the charger (its reference EVSE, "
                     "SLAC, SECC and mock CSMS); what the EV did is what the harness's SECC saw of it.</p>")
        parts.append(_table([(k.replace("_", " "), ("; ".join(v) or "none seen") if isinstance(v, list) else v)
                             for k, v in run["ev"].items()]))
    else:
        parts.append("<h2>Device under test</h2>")
        parts.append(_table(_dut_rows(run.get("dut"))))
    if ev_cases and not ev_under_test:
        ev = run.get("ev") or {}
        parts.append(f"<h2>EV under test</h2><p>{len(ev_cases)} cases test the EV, not the charger"
                     f" (marked <b>EV</b> below).</p>")
        if ev.get("note"):
            parts.append(f"<p class='incomplete'><b>Not a product verdict</b>: {_e(ev['note'])}.</p>")
        parts.append(_table([(k.replace("_", " "), ", ".join(v) if isinstance(v, list) else v)
                             for k, v in ev.items() if k != "note"]))
    parts.append("<h2>Rig</h2>")
    rig = run.get("rig") or {}
    rows = [(k, f"{v} — {TIME_SCALE_NOTE}" if k == "time_scale" else v) for k, v in rig.items()]
    if run.get("workers"):
        rows.append(("workers", f"{len(run['workers'])} ({', '.join(run['workers'])}): a parallel run, one rig of "
                                "this kind each; their reports are under workers/ and merged here"))
    parts.append(_table(rows))
    parts.append("<h2>Harness</h2>")
    parts.append(_table(_harness_rows(run)))
    parts.append(_verdict_matrix(document["cases"]))
    parts.append("<h2>Test cases</h2><table><tr><th>Case</th><th>Title</th><th>Verdict</th><th>Why</th>"
                 "<th>References</th><th>KPIs</th><th>Time</th></tr>")
    for case in document["cases"]:
        parts.append(_case_row(case))
    parts.append("</table>")
    mapping = [c for c in document["cases"] if c["id"] == ERROR_MAPPING_CASE]
    if mapping:
        parts.append(_error_mapping(mapping, (run.get("dut") or {}).get("ocpp_version")))
    parts.append("<h2>Details</h2>")
    for case in document["cases"]:
        parts.append(_case_details(case, trace, folder))
    parts.append(f"<p class='muted'>Full timeline: trace.jsonl. Machine-readable results: conformance.json."
                 f" Command: <code>{_e(' '.join(run.get('command') or []))}</code></p>{_ZOOM_SCRIPT}</body></html>")
    return "".join(parts)


#: at most this many failed cases get their exchange on the first screen (the rest are in the details)
FAILURES_FIRST = 10
#: rows of a swimlane (after repeated messages are folded into one), the last ones before the verdict
SWIMLANE_ROWS = 60
#: the most rows a swimlane holds at all (the case's details have the whole timeline)
SWIMLANE_MAX_ROWS = 2000
LANES = (("ev", "EV"), ("evse", "Charger"), ("csms", "CSMS"), ("grid", "Grid"), ("meter", "Analyzer"))


def _what_failed(cases: list[dict[str, Any]], trace: Recorder | None, *, ev_under_test: bool = False) -> str:
    """The failures first: each with its message, expected against observed, its charging
    sessions and the exchange as a swimlane, so a reader sees what went wrong before anything else."""
    failed = [c for c in cases if c["verdict"] in ("fail", "error")]
    if not failed:
        return ""
    seen_by = ("the harness's charger saw the EV under test, and as the CSMS" if ev_under_test
               else "the EV, the CSMS, the grid and the analyzer saw it")
    parts = [f"<h2>What failed</h2><p class='muted'>{len(failed)} case(s). Each: what was expected against what "
             f"was observed, the charging session joined across protocols, and the exchange as {seen_by} "
             "(repeated messages folded).</p>"]
    for case in failed[:FAILURES_FIRST]:
        parts.append(f"<h3>{badge(case['verdict'])} "
                     f"<a href='#{_anchor(case)}'><code>{_e(case['instance'])}</code></a> {_e(case['title'])}</h3>")
        if case.get("message"):
            parts.append(f"<pre>{_e(case['message'])}</pre>")
        if case.get("reactions"):
            parts.append(_reactions_table(case["reactions"]))
        if case.get("sessions"):
            parts.append(_sessions_table(case["sessions"]))
        span = case.get("evidence", {}).get("trace_span")
        if trace is not None and span:
            parts.append(_swimlane([e for e in trace if span[0] <= e.seq <= span[1]], f"lane-{_anchor(case)}",
                                   ev_under_test=ev_under_test))
    if len(failed) > FAILURES_FIRST:
        parts.append(f"<p class='muted'>{len(failed) - FAILURES_FIRST} more failed case(s): see the table below.</p>")
    return "".join(parts)


def _swimlane(events: list[Event], name: str, *, ev_under_test: bool = False) -> str:
    """One column per party, each message in its sender's column with where it went; what the
    charger recorded of itself is left out (the black-box view), and a message repeated back to
    back (a charge loop) is one row with its count. With an EV under test the black box is the EV
    and the harness plays the charger: its SECC's view of SDP and V2G, and the faults it
    committed, are the exchange. The last :data:`SWIMLANE_ROWS` rows show first; the reader
    widens to all of them, or zooms to a window of seconds (``name`` keeps the page's controls
    apart)."""
    lanes = [key for key, _ in LANES]
    charger_side = ("v2g", "sdp", "fault") if ev_under_test else ()
    seen = [e for e in events if (e.observer in ("ev", "csms", "grid", "meter", "harness")
                                  or (e.observer == "evse" and e.layer.value in charger_side))
            and e.layer.value not in ("rig",)]
    folded: list[list[Any]] = []  # [event, count]
    for event in seen:
        if folded and (folded[-1][0].name, folded[-1][0].src, folded[-1][0].dst) == (event.name, event.src, event.dst) \
                and event.layer.value in ("v2g", "meter", "slac"):
            folded[-1][1] += 1
            continue
        folded.append([event, 1])
    shown = folded[-SWIMLANE_MAX_ROWS:]
    start = seen[0].mono if seen else 0.0
    head = "".join(f"<th>{_e(label)}</th>" for _, label in LANES)
    rows = []
    if len(folded) > len(shown):
        rows.append(f"<tr><td colspan='{len(LANES) + 1}' class='muted'>{len(folded) - len(shown)} earlier rows: "
                    "in the case's details</td></tr>")
    for index, (event, count) in enumerate(shown):
        at = event.mono - start
        attributes = f"class='l-{event.layer.value}{' early' if index < len(shown) - SWIMLANE_ROWS else ''}' " \
                     f"data-t='{at:.3f}'"
        times = f" <b>&times;{count}</b>" if count > 1 else ""
        if event.src not in lanes:  # the harness's own steps and verdicts: across the lanes
            rows.append(f"<tr {attributes}><td>{at:+.3f}</td><td colspan='{len(LANES)}'>{_e(event.summary)}</td></tr>")
            continue
        to = dict(LANES).get(event.dst, "")
        text = _payload_text(event)
        label = f"{_e(_v2g_label(event) if event.layer.value == 'v2g' else event.summary)}{times}"
        arrow = f" <span class='muted'>&rarr; {_e(to)}</span>" if to else ""
        cell = (f"<details><summary>{label}{arrow}</summary><pre>{_e(text)}</pre></details>" if text
                else f"{label}{arrow}")
        cells = "".join(f"<td>{cell if key == event.src else ''}</td>" for key in lanes)
        rows.append(f"<tr {attributes}><td>{at:+.3f}</td>{cells}</tr>")
    controls = ""
    if len(shown) > SWIMLANE_ROWS or (shown and shown[-1][0].mono - start > 1.0):
        end = shown[-1][0].mono - start
        controls = (f"<input type='radio' name='{name}' id='{name}-last' class='last' checked>"
                    f"<label for='{name}-last'>last {min(SWIMLANE_ROWS, len(shown))} rows</label>"
                    f"<input type='radio' name='{name}' id='{name}-all' class='all'>"
                    f"<label for='{name}-all'>all {len(shown)} rows</label>"
                    f"<span class='zoom'>zoom to <input type='number' class='zf' step='any' min='0' "
                    f"max='{end:.3f}' placeholder='0'> .. <input type='number' class='zt' step='any' min='0' "
                    f"max='{end:.3f}' placeholder='{end:.1f}'> s</span>")
    return (f"<div class='mx lanes-box'>{controls}<table class='lanes'><tr><th>t (s)</th>{head}</tr>"
            f"{''.join(rows)}</table></div>")


def _v2g_label(event: Event) -> str:
    """A V2G message by its name and response code (the summary without "ev -> evse: "); any
    other V2G event by its name."""
    prefix = f"{event.src} -> {event.dst}: "
    return event.summary[len(prefix):] if event.summary.startswith(prefix) else event.name


def _verdict_matrix(cases: list[dict[str, Any]]) -> str:
    """Per suite, one row per case and one column per parameter set the suite's cases ran with,
    each cell the verdict (linked to the case's details): where a product stands, at a glance."""
    suites: dict[str, list[dict[str, Any]]] = {}
    for case in cases:
        suites.setdefault(case.get("suite_title") or case.get("suite") or "", []).append(case)
    parts = ["<h2>Verdict matrix</h2>"]
    for title, members in suites.items():
        columns: list[str] = []
        rows: dict[str, dict[str, dict[str, Any]]] = {}
        titles: dict[str, str] = {}
        for case in members:
            instance = case["instance"]
            column = instance[len(case["id"]):].strip("[]") or "—"
            if column not in columns:
                columns.append(column)
            rows.setdefault(case["id"], {})[column] = case
            titles[case["id"]] = case["title"]
        head = "".join(f"<th><code>{_e(c)}</code></th>" for c in columns)
        body = []
        for case_id, cells in rows.items():
            shown = "".join(
                f"<td><a href='#{_anchor(cells[c])}'>{badge(cells[c]['verdict'])}</a></td>" if c in cells else "<td></td>" for c in columns)
            body.append(f"<tr><td><code>{_e(case_id)}</code> {_e(titles[case_id])}</td>{shown}</tr>")
        parts.append(f"<h3>{_e(title)}</h3><div class='mx'><table class='matrix'><tr><th>Case</th>{head}</tr>"
                     f"{''.join(body)}</table></div>")
    return "".join(parts)


def _error_mapping(cases: list[dict[str, Any]], version: str | None) -> str:
    """The error-mapping table (harness.ocpp.iso15118_failures) with each row's verdict."""
    verdicts = {str((c.get("parameters") or {}).get("row")): c for c in cases}
    rows = ["<h2>ISO 15118 failures as reported through OCPP</h2><p class='muted'>The error-mapping table "
            "(harness/ocpp/iso15118_failures.py): what the charger must report when its ISO 15118 side fails "
            f"during a transaction, on OCPP {_e(version or '?')}; ERR-MAP-001 checks each row.</p>"
            "<table><tr><th>Row</th><th>ISO 15118</th><th>OCPP report expected</th><th>References</th>"
            "<th>Verdict</th></tr>"]
    for row in TABLE:
        case = verdicts.get(row.id)
        verdict = (f"<a href='#{_anchor(case)}'>{badge(case['verdict'])}</a>"
                   if case else "<span class='muted'>not run</span>")
        report = row.report(version or "")
        rows.append(f"<tr><td>{_e(row.id)}</td><td>{_e(row.iso15118)}</td><td>{_e(report.describe())}</td>"
                    f"<td>{_e('; '.join(row.references))}</td><td>{verdict}</td></tr>")
    rows.append("</table>")
    return "".join(rows)


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _completeness(run: dict[str, Any]) -> str:
    """An incomplete run says so before anything else: why it stopped and how many cases it left."""
    if run.get("complete", True):
        return ""
    total = sum(run["summary"].values())
    problems = "".join(f"<li>{_e(p)}</li>" for p in run.get("rig_problems") or [])
    return (f"<div class='incomplete'><b>Incomplete run</b>: {_e(run.get('stopped') or 'stopped early')}. "
            f"{run['summary'].get('notrun', 0)} of {total} cases were not run; their verdicts are unknown, not "
            f"passed.{f'<ul>{problems}</ul>' if problems else ''}</div>")


def _summary(summary: dict[str, int]) -> str:
    items = "".join(f"<span>{badge(k)} {n}</span>" for k, n in summary.items())
    return f"<p class='summary'>{items}</p>"


def _label(verdict: str) -> str:
    return VERDICT_LABELS.get(verdict, verdict)


def badge(verdict: str) -> str:
    """A verdict as the reports show it (styled by :data:`BADGE_STYLE`)."""
    return f"<span class='v v-{_e(verdict)}'>{_e(_label(verdict))}</span>"


escape = _e


def _table(rows: Iterable[tuple[str, Any]]) -> str:
    body = "".join(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in rows)
    return f"<table class='meta'>{body or '<tr><td>(none)</td><td></td></tr>'}</table>"


def _dut_rows(dut: dict[str, Any] | None) -> list[tuple[str, Any]]:
    if not dut:
        return [("identity", "the DUT never sent a BootNotification and no EV session met it")]
    rows = [(k.replace("_", " "), v) for k, v in dut.items() if k != "iso15118"]
    if "vendor" not in dut:
        rows.insert(0, ("OCPP identity", "no BootNotification seen"))
    iso = dut.get("iso15118") or {}
    for key, label in (("evseid", "ISO 15118 EVSEID"), ("protocols", "ISO 15118 protocols agreed"),
                       ("secc_certificates", "SECC certificate")):
        if iso.get(key):
            rows.append((label, "; ".join(iso[key])))
    return rows


def _harness_rows(run: dict[str, Any]) -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = [("version", run.get("harness_version")),
                                   ("commit", run.get("harness_commit") or "(not from a git checkout)")]
    for path, digest in (run.get("catalogues") or {}).items():
        rows.append(("catalogue", f"{path} (sha256 {digest})"))
    rows += [("python", run.get("python")), ("command", " ".join(run.get("command") or []))]
    return rows


def _references(case: dict[str, Any]) -> str:
    items = []
    for kind, refs in case.get("references", {}).items():
        if refs:
            items.append(f"<span title='{_e(REFERENCE_KINDS.get(kind, kind))}'>{_e(', '.join(refs))}</span>")
    return "<br>".join(items)


def _kpis(case: dict[str, Any]) -> str:
    return "<br>".join(f"{_e(k['name'])}: {k['value']:.4g} {_e(k['unit'])}" for k in case.get("kpis", []))


def _case_row(case: dict[str, Any]) -> str:
    anchor = _anchor(case)
    ev = " <b title='the EV is the device under test of this case'>EV</b>" if case.get("dut") == "ev" else ""
    duration = f"{case['duration_s']:.2f} s" if case["verdict"] != "notrun" else "&mdash;"
    return (f"<tr><td><a href='#{anchor}'><code>{_e(case['instance'])}</code></a>{ev}</td><td>{_e(case['title'])}</td>"
            f"<td>{badge(case['verdict'])}</td>"
            f"<td class='why'>{_e(_why(case))}</td><td>{_references(case)}</td>"
            f"<td>{_kpis(case)}</td><td class='t'>{duration}</td></tr>")


def _why(case: dict[str, Any]) -> str:
    """The first line of a verdict's message, without the exception's type name, for the table;
    the whole message is in the case's details."""
    if case["verdict"] == "pass" or not case.get("message"):
        return ""
    line = case["message"].strip().splitlines()[0]
    head, sep, rest = line.partition(": ")
    if sep and head.isidentifier() and (head.endswith(("Error", "Failure", "Timeout", "Exception")) or head in
                                        ("Skipped",)):
        line = rest
    return line if len(line) <= 200 else line[:199] + "\u2026"


def _anchor(case: dict[str, Any]) -> str:
    return "case-" + "".join(c if c.isalnum() else "-" for c in case["instance"])


def _case_details(case: dict[str, Any], trace: Recorder | None, folder: Path | None = None) -> str:
    parts = [f"<details id='{_anchor(case)}'{' open' if case['verdict'] in ('fail', 'error') else ''}>"
             f"<summary>{badge(case['verdict'])} "
             f"<code>{_e(case['instance'])}</code> {_e(case['title'])}</summary>"]
    if case.get("message"):
        parts.append(f"<pre>{_e(case['message'])}</pre>")
    if case.get("parameters"):
        parts.append(_table(case["parameters"].items()))
    if case.get("reactions"):
        parts.append(_reactions_table(case["reactions"]))
    if case.get("sessions"):
        parts.append(_sessions_table(case["sessions"]))
    captures = case.get("evidence", {}).get("captures", [])
    if captures:
        links = ", ".join(f"<a href='{_e(path)}'>{_e(path)}</a>" for path in captures)
        parts.append(f"<p class='muted'>Captured on the link: {links} (open the pcap in Wireshark with the key log "
                     "as its TLS (Pre)-Master-Secret log; the key log is a secret: <code>harness report bundle</code> "
                     "leaves it out)</p>")
    plots = case.get("evidence", {}).get("plots", [])
    for plot in plots:
        parts.append(f"<p><img alt='{_e(plot)}' src='{_image_source(plot, folder)}' style='max-width:100%'></p>")
    span = case.get("evidence", {}).get("trace_span")
    if trace is not None and span:
        events = [e for e in trace if span[0] <= e.seq <= span[1]]
        parts.append(_events_table(events))
    parts.append("</details>")
    return "".join(parts)


def _reactions_table(reactions: list[dict[str, Any]]) -> str:
    """Expected beside observed, protocol by protocol; a row the verdict does not rest on says so."""
    rows = []
    for r in sorted(reactions, key=lambda r: not r.get("judged")):  # what the verdict rests on first
        judged = "decides the verdict" if r.get("judged") else "shown, not judged"
        comparison = ("same", "yes") if r.get("matches") else ("differs", "no")
        note = f"<br><span class='muted'>{_e(r['note'])}</span>" if r.get("note") else ""
        rows.append(f"<tr><td>{_e(r['protocol'])}</td><td>{_e(r['what'])}</td><td><code>{_e(r['expected'])}</code>"
                    f"</td><td><code>{_e(r['observed'])}</code></td><td class='{comparison[0]}'>{comparison[1]}</td>"
                    f"<td>{judged}{note}</td></tr>")
    return ("<table class='rx'><tr><th>Protocol</th><th>What</th><th>Expected</th><th>Observed</th><th>Agrees</th>"
            "<th>Verdict</th></tr>" + "".join(rows) + "</table>")


def _sessions_table(sessions: list[dict[str, Any]]) -> str:
    """The case's charging sessions, one row each, from the SLAC run to the OCPP transaction, with
    how each hop joined and what did not."""
    def cell(part: dict[str, Any] | None, *names: str) -> str:
        if not part:
            return "<span class='muted'>none</span>"
        return "<br>".join(f"{_e(name)} <code>{_e(part[name])}</code>" for name in names if part.get(name))

    rows = []
    for joined in sessions:
        joins = joined.get("joins", {})
        findings = ([f"<span class='differs'>{_e(p)}</span>" for p in joined.get("problems", [])]
                    + [f"<span class='muted'>{_e(n)}</span>" for n in joined.get("notes", [])])
        rows.append(
            f"<tr><td>{cell(joined.get('slac'), 'run_id', 'ev_mac')}</td><td>{cell(joined.get('sdp'), 'secc')}</td>"
            f"<td>{cell(joined.get('iso15118'), 'protocol', 'session_id', 'evccid', 'emaid')}</td>"
            f"<td>{cell(joined.get('ocpp'), 'transaction_id', 'id_token', 'evse_id')}</td>"
            f"<td>{'<br>'.join(f'{_e(hop)}: {_e(how)}' for hop, how in joins.items())}</td>"
            f"<td>{'<br>'.join(findings)}</td></tr>")
    return ("<p class='muted'>The charging sessions of this case, joined from what the EV and the CSMS saw "
            "(<code>harness trace sessions</code> does the same for any trace.jsonl):</p>"
            "<table class='rx'><tr><th>SLAC</th><th>SDP</th><th>ISO 15118</th><th>OCPP</th><th>Joined by</th>"
            "<th>Findings</th></tr>" + "".join(rows) + "</table>")


def _image_source(plot: str, folder: Path | None) -> str:
    """A data: URI of the image in ``folder`` (the page then needs no other file), else its path."""
    path = folder / plot if folder is not None else None
    if path is not None and path.is_file() and path.suffix.lower() == ".png":
        import base64

        return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")
    return _e(plot)


def _payload_text(event: Event) -> str | None:
    """What a row unfolds to: the OCPP frame, the decoded V2G message, or another payload as JSON."""
    payload = event.payload
    if not isinstance(payload, dict) or not payload:
        return None
    if payload.get("frame"):
        return str(payload["frame"])
    if isinstance(payload.get("message"), dict):
        decoded = json.dumps(payload["message"], indent=1, ensure_ascii=False)
        return decoded + (f"\n\nEXI {payload['exi']}" if payload.get("exi") else "")
    return json.dumps(payload, indent=1, ensure_ascii=False, default=str)


_view_counter = [0]


def _events_table(events: list[Event]) -> str:
    """The case's events, each unfolding to its payload, in one observer's view at a time: as the
    EV and the CSMS saw them (the black-box view of the charger, the default), as the charger saw
    them (the reference EVSE's own records, on emulated rigs), or both."""
    shown = events[:EVENTS_PER_CASE]
    start = shown[0].mono if shown else 0.0
    rows = []
    for event in shown:
        text = _payload_text(event)
        detail = (f"<details><summary>{_e(event.summary)}</summary><pre>{_e(text)}</pre></details>"
                  if text else _e(event.summary))
        rows.append(f"<tr class='l-{event.layer.value} o-{_e(event.observer)}'><td>{event.mono - start:+.3f}</td>"
                    f"<td>{_e(event.layer.value)}</td><td>{_e(event.observer)}</td><td>{_e(event.direction)}</td>"
                    f"<td>{detail}</td></tr>")
    more = (f"<tr><td colspan='5' class='muted'>{len(events) - len(shown)} more events in trace.jsonl</td></tr>"
            if len(events) > len(shown) else "")
    _view_counter[0] += 1
    name = f"view{_view_counter[0]}"
    views = "".join(
        f"<input type='radio' name='{name}' id='{name}-{key}' class='{key}'{' checked' if key == 'bb' else ''}>"
        f"<label for='{name}-{key}'>{label}</label>"
        for key, label in (("bb", "as the EV and the CSMS saw it"), ("own", "as the charger saw it"), ("all", "both")))
    return (f"<div class='views'>{views}<table class='ev'><tr><th>t (s)</th><th>layer</th><th>seen by</th>"
            "<th>direction</th><th>event</th></tr>" + "".join(rows) + more + "</table></div>")


def render_folder(folder: Path) -> Path:
    """Re-render conformance.html from a report folder's conformance.json and trace.jsonl."""
    document = json.loads((folder / "conformance.json").read_text(encoding="utf-8"))
    trace_file = folder / "trace.jsonl"
    trace = Recorder.load(trace_file) if trace_file.exists() else None
    target = folder / "conformance.html"
    target.write_text(render(document, trace, folder), encoding="utf-8")
    return target
