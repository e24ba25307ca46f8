"""The property tests, randomized: new examples every run, many more of them than the test command
runs (it uses a fixed, derandomized set). Run it nightly or before a release; a failure prints the
seed and the example to reproduce it.

    .venv/bin/python bench/properties.py [--examples N] [--seed S] [pytest args]
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: the modules with Hypothesis properties
PROPERTY_TESTS = ["tests/exi/test_properties.py", "tests/exi/test_robustness.py",
                  "tests/v2g/test_secc_tls.py"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=100, help="examples per EXI property (default 100)")
    parser.add_argument("--seed", type=int, default=None, help="Hypothesis seed (default: a random one, printed)")
    args, extra = parser.parse_known_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2 ** 32)
    env = {**os.environ, "HYPOTHESIS_PROFILE": "explore", "EXI_HYPOTHESIS_EXAMPLES": str(args.examples)}
    print(f"seed {seed}, {args.examples} examples per EXI property", flush=True)
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             f"--hypothesis-seed={seed}", *PROPERTY_TESTS, *extra], cwd=ROOT, env=env)
    print(f"{'passed' if result.returncode == 0 else 'FAILED'} in {time.monotonic() - started:.0f} s "
          f"(seed {seed}: --seed {seed} reproduces it)")
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
