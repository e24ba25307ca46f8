"""Power schedules over time: what an SECC offers for the hours ahead, and what an EV follows.

The SECC side is a list of :class:`Offer` (from the charger's charging profiles, the composite
schedule over the horizon): from ``start`` seconds on, charge at most ``limit_w``, discharge at most
``discharge_w``, and follow ``setpoint_w`` when the backend set one. The EV side is a list of
:class:`Bounds`: the power it may take from ``start`` on lies between ``lower_w`` (negative:
discharge) and ``upper_w``. The encodings:

- ISO 15118-2 and DIN 70121 PMaxSchedule: PMaxScheduleEntry with a RelativeTimeInterval whose
  ``start`` counts seconds from the response ("Start of the interval, in seconds from NOW",
  RelativeTimeIntervalType), the last one with a ``duration``; PMax bounds the charging power.
- ISO 15118-20 PowerSchedule: consecutive PowerScheduleEntry, each with a Duration, from the
  TimeAnchor; the ChargingSchedule bounds the power from above, the DischargingSchedule (BPT) from
  below. The harness's SECC anchors at the response's Unix time; an anchor of 0, which some SECCs
  send, is read as "from the response".

Both standards allow at most 1024 entries per schedule (the schemas' maxOccurs); the horizon is a
day, as the harness's SECC has always offered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Protocol, Sequence, TypeVar

HORIZON_S = 86400
MAX_ENTRIES = 1024


@dataclass(frozen=True)
class Offer:
    """What the charger allows from ``start`` (s from the schedule's start) on, in W."""

    start: float
    limit_w: float
    discharge_w: float = 0.0  # a magnitude
    setpoint_w: float | None = None

    @property
    def upper_w(self) -> float:
        """The upper bound of a -20 ChargingSchedule: a setpoint is both bounds."""
        return self.setpoint_w if self.setpoint_w is not None else self.limit_w

    @property
    def lower_w(self) -> float:
        """The lower bound of a -20 DischargingSchedule (<= 0)."""
        return min(self.setpoint_w, 0.0) if self.setpoint_w is not None else -self.discharge_w


@dataclass(frozen=True)
class Bounds:
    """What the EV may do from ``start`` (s from the schedule's start) on, in W (negative: discharge)."""

    start: float
    upper_w: float
    lower_w: float | None = None


class _Timed(Protocol):
    @property
    def start(self) -> float: ...


T = TypeVar("T", bound=_Timed)


def at(steps: Sequence[T], elapsed: float) -> T | None:
    """The step in force ``elapsed`` seconds after the schedule's start (None before its first
    step begins, and for no steps)."""
    found: T | None = None
    for step in steps:
        if step.start > elapsed:
            break
        found = step
    return found


def limit_at(offers: Sequence[Offer], elapsed: float) -> float:
    """The charge limit in force ``elapsed`` seconds after the offers' start (W; no offer: none)."""
    found = at(offers, elapsed)
    return float("inf") if found is None else found.limit_w


def _capped(offers: Sequence[Offer]) -> Sequence[Offer]:
    return offers[:MAX_ENTRIES]


# -- ISO 15118-2 and DIN 70121 PMaxSchedule ---------------------------------------------------------

def pmax_entries(offers: Sequence[Offer], encode: Callable[[float], Any],
                 horizon_s: int = HORIZON_S) -> list[dict[str, Any]]:
    """PMaxScheduleEntry for the offers' charge limits (``encode`` makes a PMax of watts)."""
    chosen = _capped(offers)
    entries: list[dict[str, Any]] = []
    for index, offer in enumerate(chosen):
        interval: dict[str, Any] = {"start": int(offer.start)}
        if index == len(chosen) - 1:
            interval["duration"] = max(1, horizon_s - int(offer.start))
        entries.append({"RelativeTimeInterval": interval, "PMax": encode(offer.limit_w)})
    return entries


def from_pmax_entries(entries: Sequence[Mapping[str, Any]], decode: Callable[[Any], float]) -> tuple[Bounds, ...]:
    """The bounds a PMaxSchedule sets (``decode`` reads a PMax as watts), in the order of their
    starts."""
    found = [Bounds(float(entry["RelativeTimeInterval"]["start"]), decode(entry["PMax"]), None) for entry in entries]
    return tuple(sorted(found, key=lambda b: b.start))


# -- ISO 15118-20 PowerSchedule ---------------------------------------------------------------------

def power_schedule(offers: Sequence[Offer], value: Callable[[Offer], float], encode: Callable[[float], Any],
                   anchor: int, horizon_s: int = HORIZON_S) -> dict[str, Any]:
    """A PowerSchedule: one PowerScheduleEntry per offer (``value`` picks its bound), each lasting
    until the next one starts, the last until the horizon."""
    chosen = _capped(offers)
    entries = []
    for index, offer in enumerate(chosen):
        end = chosen[index + 1].start if index + 1 < len(chosen) else horizon_s
        entries.append({"Duration": max(1, int(end - offer.start)), "Power": encode(value(offer))})
    return {"PowerSchedule": {"TimeAnchor": anchor, "PowerScheduleEntries": {"PowerScheduleEntry": entries}}}


def _steps(schedule: Mapping[str, Any] | None, decode: Callable[[Any], float]) -> tuple[int, list[tuple[float, float]]]:
    """(TimeAnchor, [(start from the anchor, power)]) of a -20 charging or discharging schedule."""
    power = (schedule or {}).get("PowerSchedule") or {}
    listed = (power.get("PowerScheduleEntries") or {}).get("PowerScheduleEntry") or []
    steps, start = [], 0.0
    for entry in listed:
        steps.append((start, decode(entry["Power"])))
        start += float(entry["Duration"])
    return int(power.get("TimeAnchor") or 0), steps


def from_power_schedules(charging: Mapping[str, Any] | None, discharging: Mapping[str, Any] | None,
                         decode: Callable[[Any], float]) -> tuple[int, tuple[Bounds, ...]]:
    """(TimeAnchor, bounds) of a -20 ScheduleTuple's ChargingSchedule and DischargingSchedule (the
    discharging one read against the charging one's anchor)."""
    anchor, upper = _steps(charging, decode)
    other, lower = _steps(discharging, decode)
    if lower and anchor and other:
        lower = [(start + other - anchor, power) for start, power in lower]
    starts = sorted({start for start, _ in upper} | {start for start, _ in lower})
    bounds = []
    for start in starts:
        high = at([_Step(s, p) for s, p in upper], start)
        low = at([_Step(s, p) for s, p in lower], start)
        bounds.append(Bounds(start, high.power if high is not None else float("inf"),
                             low.power if low is not None else None))
    return anchor, tuple(bounds)


@dataclass(frozen=True)
class _Step:
    start: float
    power: float
