"""``harness trace sessions FILE``: the charging sessions of a timeline, joined across protocols;
``harness trace show FILE``: the timeline in the terminal, filtered by session, layer, observer,
case and time."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from harness.cli import UsageError


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
    sessions.add_argument("--ev-observer", default="ev", help="whose view of SLAC, SDP and ISO 15118 (default ev)")
    sessions.add_argument("--csms-observer", default="csms", help="whose view of OCPP (default csms)")
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
    shown = 0
    for event in events:
        if not low <= event.mono <= high or (layers and event.layer.value not in layers):
            continue
        if (args.observer and event.observer != args.observer) or (args.case and args.case not in event.test):
            continue
        keys = ("  " + " ".join(f"{k}={v}" for k, v in event.keys.items())) if args.keys and event.keys else ""
        print(f"{event.mono - origin:10.3f}  {event.layer.value:7} {event.observer:8} {event.direction:14} "
              f"{event.summary}{keys}")
        shown += 1
    if shown == 0:
        print("(no event matches)")
    return 0


def trace_sessions(args: argparse.Namespace, extra: list[str]) -> int:
    from harness.correlation.sessions import join

    recorder = _load(args.file)
    found = join(recorder.select(), ev_observer=args.ev_observer, csms_observer=args.csms_observer)
    for number, session in enumerate(found, 1):
        if args.json:
            print(json.dumps(session.as_dict(), separators=(",", ":")))
            continue
        print(f"{number}. {session.describe()}")
        if session.joins:
            print("   joined: " + "; ".join(f"{hop}: {how}" for hop, how in session.joins.items()))
        for problem in session.problems:
            print(f"   PROBLEM: {problem}")
        for note in session.notes:
            print(f"   note: {note}")
    if not args.json:
        problems = sum(len(s.problems) for s in found)
        print(f"{len(found)} session(s), {problems} problem(s)")
    return 1 if any(s.problems for s in found) else 0
