"""How much of a flood of bad input the timeline keeps: the first ones one by one, the rest as a
count, so a peer that sends garbage for hours costs the trace little and nothing goes unsaid."""

from __future__ import annotations

import time
from typing import Callable

#: refused inputs recorded one by one per window, and the window (seconds)
RECORDED = 100
WINDOW_S = 10.0


class BadInputLimit:
    """One source's refused inputs: :meth:`admit` says whether to record the next one; a window
    that ended with some unrecorded hands their count to ``on_suppressed(suppressed, recorded,
    window_s)``, as does :meth:`flush` (call it when the source goes away)."""

    def __init__(self, on_suppressed: Callable[[int, int, float], None], *, recorded: int = RECORDED,
                 window_s: float = WINDOW_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.on_suppressed = on_suppressed
        self.recorded_max = recorded
        self.window_s = window_s
        self.clock = clock
        self._start = float("-inf")
        self._recorded = 0
        self._suppressed = 0

    def admit(self) -> bool:
        now = self.clock()
        if now - self._start >= self.window_s:
            self.flush()
            self._start, self._recorded = now, 1
            return True
        if self._recorded < self.recorded_max:
            self._recorded += 1
            return True
        self._suppressed += 1
        return False

    def flush(self) -> None:
        if self._suppressed:
            self.on_suppressed(self._suppressed, self._recorded, self.window_s)
        self._suppressed = 0
