"""What loading the harness costs a pytest run that does not use it.

The plugin is a pytest11 entry point: every pytest run in an environment where the harness is
installed loads ``harness.plugin`` (and, at configure time, ``harness.plugin.run``). This prints
the cumulative import time of each, from ``python -X importtime`` (median of N fresh
interpreters), and the wall time of ``pytest --collect-only`` on an empty folder with and without
the plugin.

    .venv/bin/python bench/plugin_import.py [--repeat 9]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def cumulative_us(module: str, before: str = "") -> int:
    """Microseconds ``import module`` takes in a fresh interpreter (after ``before`` is imported)."""
    code = f"{before}; import {module}" if before else f"import {module}"
    result = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True,
                            check=True)
    for line in result.stderr.splitlines():
        parts = [p.strip() for p in line.removeprefix("import time:").split("|")]
        if len(parts) == 3 and parts[2] == module:
            return int(parts[1])
    raise RuntimeError(f"{module} not in the import-time report")


def collect_seconds(folder: Path, *options: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *options,
                    str(folder)], capture_output=True, cwd=folder, check=False)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()
    rows = [("harness.plugin", ""), ("harness.plugin", "import pytest"), ("harness.plugin.run", "import pytest")]
    for module, before in rows:
        median = statistics.median(cumulative_us(module, before) for _ in range(args.repeat))
        print(f"import {module:20} {'after ' + before if before else 'alone':20} {median / 1000:7.1f} ms")
    with tempfile.TemporaryDirectory() as folder:
        with_plugin = statistics.median(collect_seconds(Path(folder)) for _ in range(args.repeat))
        without = statistics.median(collect_seconds(Path(folder), "-p", "no:harness") for _ in range(args.repeat))
    print(f"pytest --collect-only, empty folder: {with_plugin * 1000:.0f} ms with the plugin, "
          f"{without * 1000:.0f} ms without ({(with_plugin - without) * 1000:+.0f} ms)")


if __name__ == "__main__":
    main()
