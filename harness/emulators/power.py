"""The power flowing through the cable, and the energy it adds up to.

One :class:`PowerFlow` per EVSE connection: the EVSE opens and closes the contactor, the EV sets
the current it draws (it takes what it is offered), and everyone who measures reads it: the EVSE's own meter and, on emulated rigs,
the simulated power analyzer. Energy is integrated exactly for piecewise-constant power, so every
reader sees the same numbers for the same interval. Positive power flows to the EV (import),
negative back to the grid (export).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Reading:
    at: float  # monotonic seconds
    voltage: float  # V per phase (AC) or DC link voltage
    current: float  # A per phase (AC) or DC current; negative = export
    phases: int  # 1 or 3 for AC, 0 for DC
    contactor_closed: bool
    power: float  # W, total
    imported_wh: float
    exported_wh: float


class PowerFlow:
    def __init__(self, *, voltage: float = 230.0, phases: int = 3,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if phases not in (0, 1, 3):
            raise ValueError("phases must be 1 or 3 (AC) or 0 (DC)")
        self._clock = clock
        self._lock = threading.Lock()
        self._voltage = voltage
        self._current = 0.0
        self._phases = phases
        self._closed = False
        self._since = clock()
        self._imported_ws = 0.0
        self._exported_ws = 0.0

    def _power(self) -> float:
        return self._voltage * self._effective_current() * (self._phases or 1)

    def _effective_current(self) -> float:
        return self._current if self._closed else 0.0

    def _advance(self, now: float) -> None:
        power = self._power()
        elapsed = max(0.0, now - self._since)
        if power >= 0:
            self._imported_ws += power * elapsed
        else:
            self._exported_ws -= power * elapsed
        self._since = now

    def set(self, *, current: float | None = None, voltage: float | None = None,
            phases: int | None = None, contactor_closed: bool | None = None) -> None:
        with self._lock:
            self._advance(self._clock())
            if contactor_closed is not None:
                self._closed = contactor_closed
            if current is not None:
                self._current = current
            if voltage is not None:
                self._voltage = voltage
            if phases is not None:
                self._phases = phases

    def read(self) -> Reading:
        with self._lock:
            now = self._clock()
            self._advance(now)
            return Reading(now, self._voltage, self._effective_current(), self._phases, self._closed,
                           self._power(), self._imported_ws / 3600.0, self._exported_ws / 3600.0)
