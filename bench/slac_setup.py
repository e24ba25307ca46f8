"""Set-up of the emulated power line plus one SLAC match, timed (needs root).

    .venv/bin/python bench/slac_setup.py --runs 10 --scale 0.1

Each run builds the namespaces, veth pairs and bridge, starts the modem emulators and pyslac's
EVSE, lets the EV match it (CP state B, 5 %) and tears everything down; it prints the median and
worst of each part. The goal (issue: SLAC over Green PHY) is set-up plus match under 3 s with
timers scaled.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time

from harness.iec61851.pilot import CpState, SimulatedPilot
from harness.netns import unavailable_reason
from harness.rig.plc import PowerLine
from harness.slac.ev import Matched
from harness.slac.evse import PyslacEvse
from harness.slac.io import EvSlacSession
from harness.slac.timing import STANDARD
from harness.trace import Recorder


async def one_match(line: PowerLine, scale: float) -> dict[str, float]:
    timers = STANDARD.scaled(scale)
    marks = {"start": time.monotonic()}
    line.start_modems()
    pilot = SimulatedPilot(line.recorder)
    evse = PyslacEvse(line.recorder, line.stations["evse"].endpoint, timers=timers)
    await evse.start(pilot)
    marks["evse_ready"] = time.monotonic()
    ev = EvSlacSession(line.recorder, line.stations["ev"].endpoint, timers=timers)
    try:
        await pilot.set_state(CpState.B)
        result = await ev.match_when_pilot_allows(pilot, 10)
    finally:
        ev.close()
        await evse.stop()
    if not isinstance(result, Matched):
        raise SystemExit(f"no match: {result.reason}")
    marks["matched"] = time.monotonic()
    return {"evse_ready_s": marks["evse_ready"] - marks["start"], "match_s": marks["matched"] - marks["evse_ready"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--scale", type=float, default=0.1, help="timer scale (the netns rig uses 0.1)")
    args = parser.parse_args()
    reason = unavailable_reason()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    rows = []
    for _ in range(args.runs):
        started = time.monotonic()
        line = PowerLine.build(Recorder(), {"ev": "ev", "evse": "evse"})
        built = time.monotonic()
        try:
            parts = asyncio.run(one_match(line, args.scale))
        finally:
            line.close()
        ended = time.monotonic()
        rows.append({"namespaces_s": built - started, **parts, "total_s": parts["evse_ready_s"] + parts["match_s"]
                     + built - started, "teardown_s": ended - started - (built - started) - parts["evse_ready_s"]
                     - parts["match_s"]})
    print(f"{args.runs} runs, timers x{args.scale:g}")
    for key in rows[0]:
        values = [r[key] for r in rows]
        print(f"  {key:14} median {statistics.median(values) * 1000:7.1f} ms   worst {max(values) * 1000:7.1f} ms")
    worst = max(r["total_s"] for r in rows)
    print(f"set-up + one SLAC match: worst {worst:.3f} s ({'under' if worst < 3 else 'OVER'} the 3 s goal)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
