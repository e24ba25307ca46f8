"""The netns rig's suite, run several times while other CPU-bound processes compete for the cores:
whether every run gives the same verdicts (a run on a loaded CI host must not blame the charger
for the harness being slow), and how long each run takes. Needs root.

    sudo .venv/bin/python bench/netns_under_load.py [--runs 5] [--hogs 2] [pytest args, e.g. -k SLAC]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _hog() -> None:  # pragma: no cover - runs in a child process until killed
    while True:
        pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--hogs", type=int, default=2, help="CPU-bound processes running meanwhile (default 2)")
    parser.add_argument("--rig", default=str(ROOT / "rigs" / "emulated-netns.yaml"))
    args, extra = parser.parse_known_args()
    harness = Path(sys.executable).with_name("harness")
    hogs = [multiprocessing.Process(target=_hog, daemon=True) for _ in range(args.hogs)]
    for hog in hogs:
        hog.start()
    runs = []
    try:
        with tempfile.TemporaryDirectory(prefix="netns-load-") as folder:
            for index in range(args.runs):
                report = Path(folder) / f"run{index}"
                started = time.monotonic()
                subprocess.run([str(harness), "run", "--rig", args.rig, "--report-dir", str(report), *extra],
                               cwd=ROOT, capture_output=True, text=True)
                elapsed = time.monotonic() - started
                cases = json.loads((report / "conformance.json").read_text())["cases"]
                verdicts = {c["instance"]: c["verdict"] for c in cases}
                messages = {c["instance"]: c["message"] for c in cases if c["verdict"] not in ("pass", "skip")}
                runs.append((elapsed, verdicts))
                print(f"run {index + 1}: {elapsed:.1f} s, {dict(Counter(verdicts.values()))}", flush=True)
                for instance, message in messages.items():
                    print(f"    {instance} {verdicts[instance]}: {message.splitlines()[0][:160]}", flush=True)
    finally:
        for hog in hogs:
            hog.terminate()
    first = runs[0][1]
    same = all(verdicts == first for _, verdicts in runs)
    times = sorted(elapsed for elapsed, _ in runs)
    print(f"{args.runs} runs with {args.hogs} CPU hogs: verdicts {'identical' if same else 'DIFFER'}; "
          f"{len(first)} cases; wall time median {times[len(times) // 2]:.1f} s, max {times[-1]:.1f} s")
    if not same:
        for instance in sorted(first):
            seen = [verdicts.get(instance) for _, verdicts in runs]
            if len(set(seen)) > 1:
                print(f"  {instance}: {seen}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
