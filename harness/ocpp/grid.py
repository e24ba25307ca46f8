"""Grid signals and how the mock CSMS turns them into charging profiles.

A demand-response scenario (``fixtures/grid/*.yaml``, :func:`load_scenario`) is a list of grid
events: when one starts (seconds after the scenario starts), how long it lasts, and what the grid
asks for: an import or export power at the connection, a price, or the grid frequency. A
*strategy* is the CSMS's decision: it turns one event into the OCPP 2.1 ``chargingProfile`` of a
SetChargingProfile for the EVSE, a pure function of the event and of what the CSMS knows (the
transaction, the station's nominal voltage). Two strategies ship:

- ``setpoint`` (:class:`SetpointStrategy`): operationMode CentralSetpoint, the requested power as
  the ``setpoint`` (negative: export), bounded by the same ``limit`` or ``dischargeLimit`` so the
  overshoot stays within the request (OCPP 2.1 ChargingSchedulePeriodType.setpoint: "When a limit
  and/or dischargeLimit are given the overshoot when following setpoint must remain within these
  values").
- ``limit`` (:class:`LimitStrategy`): bounds only, and the EV decides within them: an import
  request caps charging (operationMode ChargingOnly, ``limit``); an export request allows
  discharge up to the request and stops charging (operationMode ExternalLimits, ``limit`` 0,
  ``dischargeLimit``). ExternalLimits is the mode chosen for "the CSMS sets the bounds, the EV
  chooses within them"; the harness had no text of OCPP 2.1 Part 2 Q that names one mode for it.

Price and frequency signals become power requests through the strategy's thresholds: a price at
or above ``price_export_at`` asks for ``signal_export_w`` of export, one at or below
``price_charge_at`` for ``signal_import_w`` of import; a frequency at or below
``frequency_export_at`` (under-frequency: the grid lacks power) asks for export, one at or above
``frequency_import_at`` for import. Anything in between asks for nothing (no profile).

Times in a scenario are the grid's (seconds); a rig with ``timing.scale`` plays them scaled like
every protocol timer, and the profile's duration is the scaled one.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from harness.yamlfile import FileProblems, Problems, Reader, read_yaml

#: the folder of the scenarios the harness ships (relative to the repository)
SCENARIOS = Path(__file__).resolve().parents[2] / "fixtures" / "grid"


class ScenarioError(FileProblems):
    """A grid scenario file that cannot be used; every problem named with its path."""


@dataclass(frozen=True)
class GridEvent:
    """One demand-response event. Powers are magnitudes in W at the grid connection."""

    name: str
    start_s: float = 0.0
    duration_s: float = 900.0
    import_w: float | None = None
    export_w: float | None = None
    price: float | None = None  # per kWh
    frequency_hz: float | None = None

    def describe(self) -> str:
        if self.export_w is not None:
            what = f"export {self.export_w / 1000:g} kW"
        elif self.import_w is not None:
            what = f"import at most {self.import_w / 1000:g} kW"
        elif self.price is not None:
            what = f"price {self.price:g}/kWh"
        else:
            what = f"frequency {self.frequency_hz:g} Hz"
        return f"{self.name}: {what} for {self.duration_s:g} s"

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


#: what a scenario's latency limits may name: the hops of harness.correlation.latency and "chain"
LATENCY_HOPS = ("decided", "profile sent", "acknowledged", "target sent to EV", "power applied", "power settled",
                "chain")


@dataclass(frozen=True)
class Scenario:
    """Grid events, and what the grid operator requires of the response: the power within
    ``tolerance_percent`` of the request, and each hop (and the whole chain, from the signal to
    the power settled) within its limit in seconds (real time: the devices' reactions are not
    scaled)."""

    name: str
    description: str
    events: tuple[GridEvent, ...]
    tolerance_percent: float = 2.0
    latency_limits: dict[str, float] = field(default_factory=dict)
    #: how long a profile set for an event stays in force once the charger has lost the CSMS
    #: (OCPP 2.1 maxOfflineDuration; None: for as long as the event lasts)
    max_offline_s: float | None = None


def load_scenario(path: Path | str) -> Scenario:
    """A scenario file, checked: every problem named by its place (``events[1].export_kw: ...``)."""
    path = Path(path)
    if not path.suffix and not path.exists():
        path = SCENARIOS / f"{path}.yaml"  # a shipped scenario by name
    data = read_yaml(path, ScenarioError)
    problems = Problems()
    top = Reader(data, "", problems)
    name = top.str("name", path.stem)
    description = top.str("description", "")
    tolerance = top.float("tolerance_percent", 2.0, exclusive_minimum=0.0)
    max_offline = top.float("max_offline_s", None, minimum=0.0)
    limits_reader = top.section("latency_limits_s")
    limits = {hop: limits_reader.float(hop, None, exclusive_minimum=0.0) for hop in LATENCY_HOPS}
    limits_reader.done()
    events = [found for index, item in enumerate(top.sections("events", required=True))
              if (found := _event(item, index)) is not None]
    top.done()
    if problems:
        raise ScenarioError(path, problems.items)
    return Scenario(name, description, tuple(sorted(events, key=lambda e: e.start_s)), tolerance,
                    {hop: limit for hop, limit in limits.items() if limit is not None}, max_offline)


def _event(item: Reader, index: int) -> GridEvent | None:
    name = item.str("name", f"event {index + 1}")
    start = item.float("start_s", 0.0, minimum=0.0)
    duration = item.float("duration_s", 900.0, exclusive_minimum=0.0)
    signals = {key: item.float(key, None, minimum=minimum) for key, minimum in
               (("import_kw", 0.0), ("export_kw", 0.0), ("price", None), ("frequency_hz", 0.0))}
    item.done()
    given = [key for key, value in signals.items() if value is not None]
    if len(given) != 1:
        item.problems.add(item.path, "needs exactly one of import_kw, export_kw, price, frequency_hz "
                                     f"(got {', '.join(given) or 'none'})")
        return None
    kw = {"import_kw": "import_w", "export_kw": "export_w"}
    values = {kw.get(key, key): (value * 1000.0 if key in kw and value is not None else value)
              for key, value in signals.items()}
    return GridEvent(name=name, start_s=start, duration_s=duration, **values)


def event(name: str = "DR event", *, import_kw: float | None = None, export_kw: float | None = None,
          price: float | None = None, frequency_hz: float | None = None, start_s: float = 0.0,
          duration_s: float = 900.0) -> GridEvent:
    """A grid event made in a test (the same checks as a scenario file's)."""
    given = [v for v in (import_kw, export_kw, price, frequency_hz) if v is not None]
    if len(given) != 1:
        raise ValueError("a grid event asks for exactly one of import_kw, export_kw, price, frequency_hz")
    if any(v is not None and v < 0 for v in (import_kw, export_kw)) or duration_s <= 0 or start_s < 0:
        raise ValueError("powers and start are not negative, the duration is positive")
    return GridEvent(name, start_s, duration_s, None if import_kw is None else import_kw * 1000.0,
                     None if export_kw is None else export_kw * 1000.0, price, frequency_hz)


# -- strategies ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Decision:
    """What a strategy decided for one event: the chargingProfile to set (None: nothing to do)
    and the signed power it asks for at the connection (W; negative: export)."""

    profile: dict[str, Any] | None
    requested_w: float | None
    why: str


@dataclass(frozen=True)
class Thresholds:
    price_export_at: float = 0.40
    price_charge_at: float = 0.05
    frequency_export_at: float = 49.8
    frequency_import_at: float = 50.2
    signal_export_w: float = 5000.0
    signal_import_w: float = 11000.0


class Strategy(Protocol):
    @property
    def name(self) -> str: ...

    def decide(self, event: GridEvent, *, profile_id: int, duration_s: int, transaction_id: str | None,
               now: _dt.datetime, max_offline_s: int | None = None, dynamic: bool = False) -> Decision: ...

    def period(self, event: GridEvent) -> tuple[dict[str, Any] | None, float | None, str]:
        """The schedule period an event asks for (None: nothing to do), the signed power it
        requests and why; also the scheduleUpdate of UpdateDynamicSchedule."""
        ...


def requested_power(event: GridEvent, thresholds: Thresholds = Thresholds()) -> tuple[float | None, str]:
    """The signed power (W; negative: export) an event asks for, and why."""
    if event.export_w is not None:
        return -event.export_w, f"the grid asks for {event.export_w / 1000:g} kW of export"
    if event.import_w is not None:
        return event.import_w, f"the grid allows {event.import_w / 1000:g} kW of import"
    t = thresholds
    if event.price is not None:
        if event.price >= t.price_export_at:
            return -t.signal_export_w, f"price {event.price:g} >= {t.price_export_at:g}: export"
        if event.price <= t.price_charge_at:
            return t.signal_import_w, f"price {event.price:g} <= {t.price_charge_at:g}: charge"
        return None, f"price {event.price:g} between the thresholds: nothing to do"
    assert event.frequency_hz is not None
    if event.frequency_hz <= t.frequency_export_at:
        return -t.signal_export_w, f"under-frequency {event.frequency_hz:g} Hz: export"
    if event.frequency_hz >= t.frequency_import_at:
        return t.signal_import_w, f"over-frequency {event.frequency_hz:g} Hz: charge"
    return None, f"frequency {event.frequency_hz:g} Hz within the band: nothing to do"


def _profile(period: dict[str, Any], *, profile_id: int, duration_s: int, transaction_id: str | None,
             now: _dt.datetime, max_offline_s: int | None = None, dynamic: bool = False) -> dict[str, Any]:
    schedule: dict[str, Any] = {"id": profile_id, "chargingRateUnit": "W", "duration": duration_s,
                                "chargingSchedulePeriod": [{"startPeriod": 0, **period}]}
    if not dynamic:
        schedule["startSchedule"] = now.replace(microsecond=0).isoformat().replace("+00:00", "Z")
    profile: dict[str, Any] = {
        "id": profile_id, "stackLevel": 1,
        "chargingProfilePurpose": "TxProfile" if transaction_id else "TxDefaultProfile",
        # Dynamic (2.1): one period, rewritten by UpdateDynamicSchedule as the grid asks again
        "chargingProfileKind": "Dynamic" if dynamic else "Absolute",
        "chargingSchedule": [schedule]}
    if transaction_id:
        profile["transactionId"] = transaction_id
    if max_offline_s is not None:
        profile["maxOfflineDuration"] = max_offline_s
    return profile


class _Strategy:
    """What both strategies share: a profile around the period the strategy chooses."""

    thresholds: Thresholds

    def period(self, event: GridEvent) -> tuple[dict[str, Any] | None, float | None, str]:
        raise NotImplementedError

    def decide(self, event: GridEvent, *, profile_id: int, duration_s: int, transaction_id: str | None,
               now: _dt.datetime, max_offline_s: int | None = None, dynamic: bool = False) -> Decision:
        period, power, why = self.period(event)
        if period is None:
            return Decision(None, None, why)
        return Decision(_profile(period, profile_id=profile_id, duration_s=duration_s, transaction_id=transaction_id,
                                 now=now, max_offline_s=max_offline_s, dynamic=dynamic), power, why)


@dataclass(frozen=True)
class SetpointStrategy(_Strategy):
    name: str = "setpoint"
    thresholds: Thresholds = Thresholds()

    def period(self, event: GridEvent) -> tuple[dict[str, Any] | None, float | None, str]:
        power, why = requested_power(event, self.thresholds)
        if power is None:
            return None, None, why
        period: dict[str, Any] = {"operationMode": "CentralSetpoint", "setpoint": round(power, 1)}
        if power < 0:
            period["dischargeLimit"] = round(power, 1)
        else:
            period["limit"] = round(power, 1)
        return period, power, f"{why}: setpoint {power / 1000:g} kW"


@dataclass(frozen=True)
class LimitStrategy(_Strategy):
    name: str = "limit"
    thresholds: Thresholds = Thresholds()

    def period(self, event: GridEvent) -> tuple[dict[str, Any] | None, float | None, str]:
        power, why = requested_power(event, self.thresholds)
        if power is None:
            return None, None, why
        if power < 0:
            period: dict[str, Any] = {"operationMode": "ExternalLimits", "limit": 0.0, "dischargeLimit": round(power, 1)}
            said = f"discharge at most {-power / 1000:g} kW, no charging"
        else:
            period = {"limit": round(power, 1)}  # ChargingOnly, the default: valid on 2.0.1 too
            said = f"charge at most {power / 1000:g} kW"
        return period, power, f"{why}: {said}"


def needs_v21(profile: dict[str, Any]) -> bool:
    """Whether a chargingProfile uses what only OCPP 2.1 has (operation modes, setpoints,
    discharge limits, offline validity, Dynamic profiles)."""
    return "maxOfflineDuration" in profile or profile.get("chargingProfileKind") == "Dynamic" or any(
        key in period for schedule in profile.get("chargingSchedule", [])
        for period in schedule.get("chargingSchedulePeriod", [])
        for key in ("operationMode", "setpoint", "dischargeLimit"))


STRATEGIES: dict[str, Strategy] = {"setpoint": SetpointStrategy(), "limit": LimitStrategy()}


def strategy(name: str) -> Strategy:
    try:
        return STRATEGIES[name]
    except KeyError:
        raise ValueError(f"unknown grid strategy {name!r} (known: {', '.join(STRATEGIES)})") from None
