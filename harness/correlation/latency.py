"""The hops from a grid signal to measured power, found on the timeline.

A grid event travels: the grid signal reaches the CSMS (``GridSignal``), its strategy decides
(``CsmsDecision``), the CSMS sends SetChargingProfile (the CALL as the CSMS sent it), the charger
acknowledges (the CALLRESULT as the CSMS received it), an ISO 15118 message carries the new
target to the EV (the SECC's ``TargetPower`` or ``SchedulePower`` at the requested power; a
charger may do so before its CALLRESULT reaches the CSMS, and that hop then counts 0), the power
stage follows (``PowerApplied``: the EV on AC, the charger's DC stage on DC, which takes the
target while it answers the EV, so that hop is 0 there) and the analyzer
sees the power settle within tolerance (the first of ``SETTLED_SAMPLES`` consecutive meter samples
within it). :func:`grid_hops` reads those moments from the events; every hop is the time from the
previous moment, and a hop that did not happen is None with the reason.

What the times include: the waits the standards impose (the EV's next charge-loop request, the
analyzer's sample period) are inside the ISO 15118 and settle hops. ``bench/v2g_latency.py``
measures the harness's own processing without them.

A Dynamic profile the charger pulls (OCPP 2.1 dynUpdateInterval) turns the two OCPP moments
around: the charger asks (its PullDynamicScheduleUpdate CALL) and the CSMS answers with the update
(the CALLRESULT); the wait for the charger's next question, which the profile's interval sets, is
inside the "charger asked" hop (:data:`PULL_MOMENTS`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

from harness.trace import Event

#: the moments in order, after the grid signal; the hop ending at each is named after it
MOMENTS = ("decided", "profile sent", "acknowledged", "target sent to EV", "power applied", "power settled")
#: the same for an update the charger pulls
PULL_MOMENTS = ("decided", "charger asked", "update answered", *MOMENTS[3:])
PULL = "PullDynamicScheduleUpdate"
#: consecutive analyzer samples within tolerance that make the power settled
SETTLED_SAMPLES = 3


@dataclass
class GridHops:
    """When each moment happened (timeline clock, s), and why one is missing."""

    signal: float
    moments: dict[str, float | None] = field(default_factory=dict)
    missing: str | None = None
    names: tuple[str, ...] = MOMENTS

    def hops(self) -> list[tuple[str, float | None]]:
        """(moment, seconds since the previous moment) in order; None once one is missing."""
        result: list[tuple[str, float | None]] = []
        previous: float | None = self.signal
        for name in self.names:
            at = self.moments.get(name)
            result.append((name, None if at is None or previous is None else at - previous))
            previous = at
        return result

    @property
    def chain_s(self) -> float | None:
        settled = self.moments.get(self.names[-1])
        return None if settled is None else settled - self.signal

    def describe(self) -> str:
        parts = [f"{name} +{seconds * 1000:.0f} ms" for name, seconds in self.hops() if seconds is not None]
        tail = f"; {self.missing}" if self.missing else ""
        return ", ".join(parts) + tail


def _frame(event: Event, action: str, kind: str) -> bool:
    payload = event.payload
    return (event.name == action and event.observer == "csms" and isinstance(payload, dict)
            and payload.get("type") == kind)


def _near(value: float | None, wanted: float, tolerance: float) -> bool:
    return value is not None and abs(value - wanted) <= tolerance


def _carries(event: Event, wanted: float, tolerance: float) -> bool:
    """An SECC notice whose target is the requested power: a charge-loop target, or the bound of
    a schedule in the requested direction."""
    if event.src != "evse" or not isinstance(event.payload, dict):
        return False
    if event.name == "TargetPower":
        return _near(event.payload.get("target_w"), wanted, tolerance)
    if event.name == "SchedulePower":
        return _near(event.payload.get("lower_w" if wanted < 0 else "upper_w"), wanted, tolerance)
    return False


def grid_hops(events: Iterable[Event], signal_at: float, requested_w: float, tolerance_w: float, *,
              action: str = "SetChargingProfile") -> GridHops:
    """The moments of one grid event (its GridSignal at ``signal_at``, timeline clock) in
    ``events`` (the timeline from the signal on), for a requested power (W, negative: export) and
    the tolerance within which the power counts as reached; ``action``: the CALL that carries the
    decision (UpdateDynamicSchedule for a Dynamic profile's update; PullDynamicScheduleUpdate for
    an update the charger pulls, whose moments are :data:`PULL_MOMENTS`)."""
    later = [e for e in events if e.mono >= signal_at]
    pulled = action == PULL
    found = GridHops(signal_at, names=PULL_MOMENTS if pulled else MOMENTS)
    decided, sent, answered, target, applied, settled = found.names
    why = {
        decided: "the CSMS made no decision (CsmsDecision)",
        sent: f"the charger did not ask ({PULL})" if pulled else f"the CSMS sent no {action}",
        answered: f"the CSMS did not answer {PULL}" if pulled else f"the charger did not answer {action}",
        target: f"no ISO 15118 message carried {requested_w / 1000:.2f} kW to the EV",
        applied: "neither the EV nor the charger's power stage followed the new target",
        settled: f"the analyzer never saw {SETTLED_SAMPLES} samples within {tolerance_w:.0f} W of "
                 f"{requested_w:.0f} W",
    }
    matchers: dict[str, Callable[[Event], bool]] = {
        decided: lambda e: e.name == "CsmsDecision",
        sent: lambda e: _frame(e, action, "CALL"),
        answered: lambda e: _frame(e, action, "CALLRESULT"),
        target: lambda e: _carries(e, requested_w, tolerance_w),
        applied: lambda e: e.name == "PowerApplied" and isinstance(e.payload, dict)
        and _near(e.payload.get("target_w"), requested_w, tolerance_w),
    }
    since = signal_at
    for name in found.names:
        if name == settled:
            at = _settled(later, since, requested_w, tolerance_w)
        else:
            match = matchers[name]
            # a pushing charger may carry the target to the EV before its CALLRESULT reaches the
            # CSMS, and on DC its power stage takes the target while it answers the EV's request:
            # both are looked for from the moment the charger has the update on (the CALL it was
            # sent in, or the answer to its question)
            start = (found.moments.get(answered if pulled else sent) or since) if name in (target, applied) \
                else since
            at = next((e.mono for e in later if e.mono >= start and match(e)), None)
            if at is not None:
                at = max(at, since)  # that hop then takes no time of its own
        if at is None:
            found.missing = why[name]
            break
        found.moments[name] = at
        since = at
    return found


def _settled(events: Sequence[Event], since: float, wanted: float, tolerance: float) -> float | None:
    samples = [e for e in events if e.name == "MeterSample" and e.mono >= since and isinstance(e.payload, dict)]
    run = 0
    for index, sample in enumerate(samples):
        run = run + 1 if _near(sample.payload.get("power_w"), wanted, tolerance) else 0
        if run == SETTLED_SAMPLES:
            return samples[index - SETTLED_SAMPLES + 1].mono
    return None
