"""``harness trace sessions FILE``: the charging sessions of a timeline, joined across protocols;
``harness trace show FILE``: the timeline in the terminal, filtered by session, layer, observer,
case and time; ``harness trace pcap FILE``: a capture from any tool read into a timeline."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from harness.cli import UsageError, shown


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("trace", help="read a timeline (trace.jsonl) back")
    sub = parser.add_subparsers(dest="trace_command", metavar="ACTION", required=True)
    sessions = sub.add_parser(
        "sessions", help="the charging sessions, joined from SLAC to the OCPP transaction",
        description="Join each ISO 15118 session of a trace.jsonl to its SLAC match, SDP exchange and OCPP "
                    "transaction through the keys the EV and the CSMS saw (harness.correlation.sessions), and "
                    "print them with what did not join. Exit status 1 when a session has a problem.")
    sessions.add_argument("file", type=Path, metavar="FILE", help="a trace.jsonl (a report folder's, or any)")
    sessions.add_argument("--json", action="store_true", help="one JSON object per session")
    sessions.add_argument("--ev-observer", help="whose view of SLAC, SDP and ISO 15118 (default ev, or capture "
                                                "for a trace read from a capture)")
    sessions.add_argument("--csms-observer", help="whose view of OCPP (default csms, or capture)")
    sessions.set_defaults(handler=trace_sessions)
    show = sub.add_parser(
        "show", help="print a timeline, filtered",
        description="Print the events of a trace.jsonl one per line: seconds since the first event shown, layer, "
                    "who saw it, direction and summary. Filters combine.")
    show.add_argument("file", type=Path, metavar="FILE", help="a trace.jsonl, or a report folder")
    show.add_argument("--session", type=int, metavar="N",
                      help="only the time of charging session N as `harness trace sessions` numbers them")
    show.add_argument("--layer", action="append", help="only this layer (ocpp, v2g, slac, sdp, pilot, meter, grid, "
                                                       "rig, fault, verdict); repeatable")
    show.add_argument("--observer", help="only what this side saw (ev, evse, csms, meter, capture...)")
    show.add_argument("--case", help="only the events of test cases whose node id contains this (a case id)")
    show.add_argument("--from", dest="start", type=float, metavar="S", help="from S seconds after the first event")
    show.add_argument("--to", dest="end", type=float, metavar="S", help="up to S seconds after the first event")
    show.add_argument("--keys", action="store_true", help="print each event's correlation keys too")
    show.set_defaults(handler=trace_show)
    pcap = sub.add_parser(
        "pcap", help="read a capture (pcap, pcapng) into a timeline",
        description="Read a capture from any tool into timeline events the way the harness records them "
                    "(observer 'capture'): SLAC, SDP, V2GTP with decoded EXI, OCPP-J over WebSocket, and TLS "
                    "decrypted with an NSS key log. Writes a trace.jsonl that `harness trace sessions` and "
                    "`harness trace show` read, and prints what was found and what could not be read.")
    pcap.add_argument("file", type=Path, metavar="FILE", help="a .pcap or .pcapng file")
    pcap.add_argument("--keylog", type=Path, action="append", metavar="K",
                      help="an NSS key log (SSLKEYLOGFILE) with the TLS secrets; repeatable. Without it, the key "
                           "logs of a report folder are used when the capture is in one (FILE's .keys.log beside "
                           "it, captures/v2g-tls-keys.log, tls-keys.log)")
    pcap.add_argument("--out", type=Path, help="where to write the timeline (default FILE with .trace.jsonl)")
    pcap.add_argument("--show", action="store_true", help="print the timeline too")
    pcap.set_defaults(handler=trace_pcap)


def _load(file: Path):
    from harness.trace import Recorder
    from harness.trace.recorder import TraceFileError

    path = file / "trace.jsonl" if file.is_dir() else file
    try:
        return Recorder.load(path)
    except (OSError, TraceFileError) as exc:
        raise UsageError(str(exc)) from None


def trace_show(args: argparse.Namespace, extra: list[str]) -> int:
    from harness.correlation.sessions import join

    recorder = _load(args.file)
    events = recorder.select()
    if not events:
        return 0
    origin = events[0].mono
    low = origin + args.start if args.start is not None else float("-inf")
    high = origin + args.end if args.end is not None else float("inf")
    if args.session is not None:
        found = join(events)
        if not 1 <= args.session <= len(found):
            raise UsageError(f"--session {args.session}: the trace has {len(found)} charging session(s)")
        first, last = found[args.session - 1].window()
        low, high = max(low, first), min(high, last)
    layers = set(args.layer or ())
    printed = 0
    for event in events:
        if not low <= event.mono <= high or (layers and event.layer.value not in layers):
            continue
        if (args.observer and event.observer != args.observer) or (args.case and args.case not in event.test):
            continue
        keys = ("  " + " ".join(f"{k}={v}" for k, v in event.keys.items())) if args.keys and event.keys else ""
        print(f"{event.mono - origin:10.3f}  {event.layer.value:7} {event.observer:8} {event.direction:14} "
              f"{shown(event.summary)}{shown(keys)}")
        printed += 1
    if printed == 0:
        print("(no event matches)")
    return 0


def trace_sessions(args: argparse.Namespace, extra: list[str]) -> int:
    from harness.correlation.sessions import join

    recorder = _load(args.file)
    events = recorder.select()
    found = join(events, ev_observer=args.ev_observer or _observer(events, "ev"),
                 csms_observer=args.csms_observer or _observer(events, "csms"))
    for number, session in enumerate(found, 1):
        if args.json:
            print(json.dumps(session.as_dict(), separators=(",", ":")))
            continue
        print(f"{number}. {shown(session.describe())}")
        if session.joins:
            print("   joined: " + "; ".join(f"{hop}: {how}" for hop, how in session.joins.items()))
        for problem in session.problems:
            print(f"   PROBLEM: {shown(problem)}")
        for note in session.notes:
            print(f"   note: {shown(note)}")
    if not args.json:
        problems = sum(len(s.problems) for s in found)
        print(f"{len(found)} session(s), {problems} problem(s)")
    return 1 if any(s.problems for s in found) else 0


def _observer(events, preferred: str) -> str:
    """``preferred`` when the trace has its view; ``capture`` for a trace read from a capture."""
    seen = {event.observer for event in events}
    return preferred if preferred in seen or "capture" not in seen else "capture"


def _keylogs_beside(capture: Path) -> list[Path]:
    """Where a report folder keeps the TLS secrets of a capture: a case's ``<case>.keys.log``
    beside it, the SECC's ``v2g-tls-keys.log`` in ``captures/`` and the run's ``tls-keys.log``."""
    return [capture.with_suffix(".keys.log"), capture.parent / "v2g-tls-keys.log",
            capture.parent.parent / "tls-keys.log"]


def trace_pcap(args: argparse.Namespace, extra: list[str]) -> int:
    from collections import Counter

    from harness.capture.decode import CaptureError, read_capture_file
    from harness.capture.tls import KeyLog, KeyLogError

    keylogs = list(args.keylog or ())
    if not keylogs:
        keylogs = [path for path in _keylogs_beside(args.file) if path.is_file()]
        for path in keylogs:
            print(f"key log: {path} (found beside the capture)")
    keylog = KeyLog()
    try:
        for path in keylogs:
            keylog.merge(KeyLog.read(path))
    except (OSError, KeyLogError) as exc:
        raise UsageError(str(exc)) from None
    out = args.out or args.file.with_name(args.file.name.rsplit(".", 1)[0] + ".trace.jsonl")
    if out.exists():
        out.unlink()  # a timeline is written afresh, not appended to
    try:
        recorder, summary = read_capture_file(args.file, out, keylog=keylog)
    except CaptureError as exc:
        raise UsageError(str(exc)) from None
    recorder.close()
    layers = Counter(event.layer.value for event in recorder)
    print(f"{args.file}: {summary.packets} packets, {summary.events} events ("
          + ", ".join(f"{layer} {count}" for layer, count in sorted(layers.items())) + ")")
    for line in summary.connections:
        print(f"  TCP {shown(line)}")
    if summary.problems:
        print(f"not read ({len(summary.problems)}):")
        for problem in summary.problems:
            print(f"  - {shown(problem)}")
    print(f"timeline: {out}  (harness trace sessions {out}; harness trace show {out})")
    if args.show:
        origin = recorder.select()[0].mono if len(recorder) else 0.0
        for event in recorder:
            print(f"{event.mono - origin:10.3f}  {event.layer.value:7} {event.src:6} {shown(event.summary)}")
    return 0
