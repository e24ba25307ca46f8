"""Sampling the analyzer in the background onto the timeline, and energy over any interval.

The sampler reads the analyzer at a fixed period in a thread of its own (pyvisa blocks; the rig's
event loop must not) and records every reading as a ``meter`` event (observer ``meter``). A
failure of the instrument stops the sampler, is recorded as a ``fault`` event naming instrument
and command, and is raised again to the test at its next call: evidence first, then the error.

Energy over an interval comes from the instrument's own integrator (cumulative WP+ and WP- in
every sample), interpolated linearly between samples, so it needs no trust in the sampling rate.
"""

from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass, field

from harness.power.analyzer import InstrumentError, Measurement, PowerAnalyzer
from harness.trace import Event, Layer, Recorder

OBSERVER = "meter"
SAMPLE = "MeterSample"


def sample_payload(reading: Measurement) -> dict:
    return {"power_w": round(reading.power, 3), "voltage_v": round(reading.voltage, 4),
            "current_a": round(reading.current, 5), "imported_wh": round(reading.imported_wh, 6),
            "exported_wh": round(reading.exported_wh, 6),
            "channels": [[c.channel, round(c.voltage, 4), round(c.current, 5), round(c.power, 3)]
                         for c in reading.channels]}


def record(trace: Recorder, reading: Measurement, name: str = SAMPLE, keys: dict | None = None, *,
           read_at: float | None = None) -> Event:
    """A reading on the timeline. ``read_at``: when it was asked for (timeline clock); the event
    itself is stamped when the answer came, which a busy link or instrument can delay, so the
    series of a run (:class:`MeterRun`) places each reading at the moment it was asked for."""
    payload = sample_payload(reading)
    if read_at is not None:
        payload["read_at"] = read_at
    return trace.emit(Layer.METER, name, reading.summary(), src=OBSERVER, observer=OBSERVER, payload=payload,
                      keys=keys)


def read(trace: Recorder, analyzer: PowerAnalyzer, name: str = SAMPLE, keys: dict | None = None) -> Measurement:
    """Ask ``analyzer`` for a reading and record it with the moment it was asked for."""
    asked = trace.now()
    reading = analyzer.read()
    record(trace, reading, name, keys, read_at=asked)
    return reading


class MeterSampler:
    def __init__(self, analyzer: PowerAnalyzer, trace: Recorder, period: float, *, keys: dict | None = None) -> None:
        self.analyzer = analyzer
        self.trace = trace
        self.period = period
        self.keys = keys
        self.error: InstrumentError | None = None
        self.count = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="meter sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        next_at = self.trace.now()
        while not self._stop.is_set():
            try:
                read(self.trace, self.analyzer, keys=self.keys)
                self.count += 1
            except InstrumentError as exc:
                self.error = exc
                self.trace.emit(Layer.FAULT, "InstrumentFailed", str(exc), src=OBSERVER, observer=OBSERVER,
                                payload={"instrument": exc.instrument, "command": exc.command, "problem": exc.problem})
                return
            next_at += self.period
            self._stop.wait(max(0.0, next_at - self.trace.now()))

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        """Stop sampling (waits for a read in progress; a read never outlasts the VISA timeout)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30.0)
            self._thread = None

    def raise_error(self) -> None:
        if self.error is not None:
            raise self.error


@dataclass
class MeterRun:
    """One measured stretch: the integrator was reset and started at ``started`` and stopped at
    ``ended``; the samples in between are on the timeline."""

    trace: Recorder
    started: float
    ended: float | None = None
    first: Measurement | None = None
    last: Measurement | None = None
    instrument: str = ""
    accuracy: float = 0.0  # the analyzer's uncertainty, percent
    _cache: list = field(default_factory=list)

    @property
    def imported_wh(self) -> float:
        return (self.last.imported_wh - self.first.imported_wh) if self.last and self.first else 0.0

    @property
    def exported_wh(self) -> float:
        return (self.last.exported_wh - self.first.exported_wh) if self.last and self.first else 0.0

    def samples(self) -> list[Event]:
        return self.trace.select(layer=Layer.METER, observer=OBSERVER, since=self.started, until=self.ended,
                                 name=(SAMPLE, "MeterRunStarted", "MeterRunEnded"))

    def _series(self) -> tuple[list[float], list[dict]]:
        """(when each reading was asked for, its payload), in order."""
        events = self.samples()
        times: list[float] = []
        payloads: list[dict] = []
        for event in events:
            at = float(event.payload.get("read_at", event.mono))
            times.append(max(at, times[-1]) if times else at)  # in order even if a clock skewed
            payloads.append(event.payload)
        return times, payloads

    def energy_between(self, start: float, end: float) -> tuple[float, float]:
        """(imported, exported) Wh between two monotonic times, from the integrator readings."""
        times, payloads = self._series()
        if len(times) < 2:
            return 0.0, 0.0
        return (_interpolate(times, [p["imported_wh"] for p in payloads], end)
                - _interpolate(times, [p["imported_wh"] for p in payloads], start),
                _interpolate(times, [p["exported_wh"] for p in payloads], end)
                - _interpolate(times, [p["exported_wh"] for p in payloads], start))

    def power_at(self, when: float) -> float | None:
        """The last sampled power at or before ``when``."""
        times, payloads = self._series()
        index = bisect.bisect_right(times, when) - 1
        return payloads[index]["power_w"] if index >= 0 else None

    def power_series(self) -> list[tuple[float, float]]:
        times, payloads = self._series()
        return [(t, p["power_w"]) for t, p in zip(times, payloads)]


def _interpolate(times: list[float], values: list[float], when: float) -> float:
    if when <= times[0]:
        return values[0]
    if when >= times[-1]:
        return values[-1]
    index = bisect.bisect_right(times, when)
    t0, t1 = times[index - 1], times[index]
    v0, v1 = values[index - 1], values[index]
    return v0 + (v1 - v0) * ((when - t0) / (t1 - t0) if t1 > t0 else 0.0)
