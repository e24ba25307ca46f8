#!/usr/bin/env python3
"""Wall time of complete V2G sessions: the EV emulator against the reference SECC and its power
stage, in one process over real TCP/TLS on ::1, every message recorded on a timeline.

    python bench/session_bench.py [--repeat N] [--profile iso2-ac|iso20-dc-bpt]

Two sessions, timers scaled to zero wait (no pauses between requests; timeouts stay at their
floor): one ISO 15118-2 AC session with 10 charge-loop cycles over TCP, and one ISO 15118-20
DC_BPT session (10 cycles) over TLS 1.3 with mutual authentication. Each is run ``repeat``
times; the figures are the median and the best run, and messages per second over the median.
Not a test: the figures depend on the machine. Goal: under 300 ms per session.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import platform
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from harness.emulators.charge_port import ChargePort  # noqa: E402
from harness.emulators.hlc_ev import HlcEv  # noqa: E402
from harness.iec61851.pilot import SimulatedPilot  # noqa: E402
from harness.trace import Recorder  # noqa: E402
from harness.v2g.battery import Battery  # noqa: E402
from harness.v2g.credentials import V2gMaterial  # noqa: E402
from harness.v2g.equipment import EvseCapabilities  # noqa: E402
from harness.v2g.secc import Secc, SeccConfig  # noqa: E402
from harness.v2g.timers import Timing  # noqa: E402
from harness.v2g.vehicle import ChargePlan, Vehicle  # noqa: E402

TIMING = Timing(scale=0.0)
SCENARIOS = {
    "iso2-ac": dict(plan=ChargePlan(protocols=("iso2",), energy="AC", cycles=10), tls=False),
    "iso20-dc-bpt": dict(plan=ChargePlan(protocols=("iso20-dc",), energy="DC_BPT", cycles=10), tls=True),
}


async def one_session(name: str, material: V2gMaterial) -> tuple[float, int, bool]:
    scenario = SCENARIOS[name]
    recorder = Recorder()
    port = ChargePort(EvseCapabilities())
    secc = Secc(recorder, port, SeccConfig(tls=material.secc_tls()), timing=TIMING)
    await secc.start()
    vehicle = Vehicle("0A1B2C3D4E5F", Battery(60000.0, 0.4, 50000.0, 11000.0), plan=scenario["plan"])
    ev = HlcEv(recorder, vehicle, timing=TIMING)
    await ev.plug_in(SimulatedPilot(recorder), port.line)
    tls = scenario["tls"]
    context = material.evcc_context(scenario["plan"].protocols) if tls else None
    started = time.perf_counter()
    outcome = await ev.charge("::1", secc.tls_port if tls else secc.tcp_port, context=context)
    elapsed = time.perf_counter() - started
    await ev.unplug()
    await secc.stop()
    messages = len([e for e in recorder.select(layer="v2g", observer="ev") if e.payload and "exi" in e.payload])
    return elapsed, messages, outcome.ok


async def main(repeat: int, only: str | None, profile: bool) -> int:
    material = V2gMaterial.generate(Path(tempfile.mkdtemp(prefix="session-bench-")))
    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs; "
          f"{repeat} runs per session, timers scaled to zero wait")
    worst = 0.0
    for name in SCENARIOS:
        if only and name != only:
            continue
        await one_session(name, material)  # warm-up: imports, grammars, TLS contexts
        times, counts = [], set()
        profiler = cProfile.Profile() if profile else None
        for _ in range(repeat):
            if profiler:
                profiler.enable()
            elapsed, messages, ok = await one_session(name, material)
            if profiler:
                profiler.disable()
            if not ok:
                print(f"{name}: session did not end OK")
                return 1
            times.append(elapsed)
            counts.add(messages)
        median = statistics.median(times)
        worst = max(worst, median)
        count = max(counts)
        print(f"{name:13} median {median * 1000:7.1f} ms  best {min(times) * 1000:7.1f} ms  "
              f"{count} messages  {count / median:7.0f} messages/s")
        if profiler:
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
    print(f"goal < 300 ms per session: {'met' if worst < 0.3 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--only", choices=sorted(SCENARIOS))
    parser.add_argument("--profile", action="store_true", help="cProfile the runs and print the top entries")
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.repeat, args.only, args.profile)))
