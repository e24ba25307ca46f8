"""How fast the harness reads a power analyzer: full readings per second through pyvisa-py over a
real TCP socket against the simulated analyzer (both dialects), and the simulator's own message
rate without the socket. Tells what sampling period a rig can ask for.

    .venv/bin/python bench/meter_bench.py --seconds 5
"""

from __future__ import annotations

import argparse
import statistics
import time

from harness.emulators.analyzer import SimulatedAnalyzer, flow_from
from harness.emulators.analyzer_server import AnalyzerServer
from harness.emulators.power import PowerFlow
from harness.power.analyzer import Wiring
from harness.power.hioki import HiokiPw33xx
from harness.power.yokogawa import YokogawaWt
from harness.rig.loop import LoopThread


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    line = PowerFlow(voltage=230.0, phases=3)
    line.set(current=16.0, contactor_closed=True)
    loop = LoopThread("bench")
    loop.start()
    try:
        for dialect, driver, model in (("wt", YokogawaWt, "yokogawa-wt1800"), ("hioki", HiokiPw33xx, "hioki-pw3337")):
            server = loop.run(AnalyzerServer(SimulatedAnalyzer(flow_from(line), dialect=dialect)).start(), 5)
            with driver(server.resource, model=model) as analyzer:
                analyzer.configure(Wiring.AC3)
                latencies = []
                end = time.perf_counter() + args.seconds
                while time.perf_counter() < end:
                    start = time.perf_counter()
                    analyzer.read()
                    latencies.append(time.perf_counter() - start)
            loop.run(server.stop(), 5)
            latencies.sort()
            print(f"{model:16} via pyvisa-py: {len(latencies) / args.seconds:7.0f} readings/s, median "
                  f"{statistics.median(latencies) * 1000:.2f} ms, p99 {latencies[int(len(latencies) * 0.99)] * 1000:.2f} ms")
        simulator = SimulatedAnalyzer(flow_from(line), dialect="wt", update_interval=0.0)
        simulator.handle(":INP:WIR P3W4;:NUM:NUM 12;" + ";".join(f"ITEM{i} U,1" for i in range(1, 13)))
        count, end = 0, time.perf_counter() + args.seconds
        while time.perf_counter() < end:
            simulator.handle(":NUMeric:NORMal:VALue?")
            count += 1
        print(f"simulator core (no socket): {count / args.seconds:7.0f} 12-item readings/s")
    finally:
        loop.stop()


if __name__ == "__main__":
    main()
