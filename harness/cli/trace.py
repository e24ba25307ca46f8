"""``harness trace sessions FILE``: the charging sessions of a timeline, joined across protocols."""

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


def trace_sessions(args: argparse.Namespace, extra: list[str]) -> int:
    from harness.correlation.sessions import join
    from harness.trace import Recorder
    from harness.trace.recorder import TraceFileError

    path = args.file / "trace.jsonl" if args.file.is_dir() else args.file
    try:
        recorder = Recorder.load(path)
    except (OSError, TraceFileError) as exc:
        raise UsageError(str(exc)) from None
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
