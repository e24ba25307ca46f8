"""The per-hop table the latency benchmarks print: p50, p95 and max in milliseconds."""

from __future__ import annotations

import statistics
from typing import Iterable, Mapping, Sequence


def print_hops(hops: Sequence[str], rounds: Iterable[Mapping[str, float]]) -> None:
    """One line per hop over ``rounds`` (seconds per hop, one mapping per round)."""
    rounds = list(rounds)
    width = max(len(h) for h in hops) + 2
    print(f"{'hop':<{width}}{'p50':>9}{'p95':>9}{'max':>9}")
    for hop in hops:
        values = sorted(r[hop] * 1000 for r in rounds)
        p95 = values[min(len(values) - 1, round(0.95 * (len(values) - 1)))]
        print(f"{hop:<{width}}{statistics.median(values):>9.2f}{p95:>9.2f}{values[-1]:>9.2f}")
