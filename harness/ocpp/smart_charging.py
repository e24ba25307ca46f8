"""Charging profiles and the composite schedule, as pure functions (OCPP 2.0.1/2.1 functional
block K; OCPP 1.6 Smart Charging): what limit applies to an EVSE at an instant, and the schedule
GetCompositeSchedule reports.

The rules, from OCPP 2.0.1 Part 2 3.5 "Stacking charging profiles" and 3.6 "Combining Charging
Profile Purposes" (1.6: 3.13.2, 3.13.4):

- Within one purpose the *leading* profile at an instant is the valid one (validFrom/validTo) of
  the highest stack level whose schedule has a period defined at that instant. A profile outside
  its validity, or whose schedule has ended (``duration``) or not begun, does not shadow a lower
  one.
- A TxProfile applies to the transaction it names only, and while one leads it replaces the
  TxDefaultProfile for that transaction.
- Across purposes the limit is the lowest of the leading profiles' limits: the station's maximum
  (ChargingStationMaxProfile, 1.6 ChargePointMaxProfile, on EVSE 0), external constraints
  (ChargingStationExternalConstraints), and the transaction's profile (TxProfile, else
  TxDefaultProfile).
- Absolute schedules start at startSchedule; Relative ones at the transaction's start (without a
  transaction, at the instant asked about); Recurring ones at the latest daily or weekly
  repetition of startSchedule.

OCPP 2.1 bidirectional power transfer (V2X, functional block Q) adds to each period an
``operationMode`` (absent: ChargingOnly), a signed ``setpoint`` the EV should follow as closely as
possible (negative: discharge) and a ``dischargeLimit`` (<= 0); ``limit`` becomes optional where
the mode does not need it (the schema's own words: "Optional only when not required by the
operationMode, as in CentralSetpoint, ExternalSetpoint, ExternalLimits, LocalFrequency,
LocalLoadBalancing"). "When a limit and/or dischargeLimit are given the overshoot when following
setpoint must remain within these values", so a period whose setpoint lies outside them is refused.
Across purposes: the charge limit is the lowest of the limits, the discharge allowed the smallest
magnitude of the dischargeLimits, and the operation mode and setpoint are the transaction's
profile's (TxProfile, else TxDefaultProfile), clamped into those limits. Discharge is allowed only
in a mode other than ChargingOnly and Idle; Idle transfers nothing.

Per phase (OCPP 2.1): "When using chargingRateUnit = W, this field represents the sum of the power
of all phases, unless values are provided for L2 and L3, in which case this field represents phase
L1" (ChargingSchedulePeriodType.limit; setpoint and dischargeLimit say the same). The harness's
EVSEs load their phases evenly, so per-phase values become what binds an even load: the smallest
limit, the dischargeLimit of the smallest magnitude, the mean setpoint (in W times three, the
sum over the phases; in A per phase). Only one of _L2 and _L3 is refused as ambiguous.

Chosen where the texts available to the harness do not say: a profile installed for one EVSE
takes precedence over a station-wide one (EVSE 0) of the same purpose whatever their stack levels
(as 1.6 3.13.2 describes connector-specific TxDefaultProfiles); the station maximum is applied to
each EVSE alone (right for a one-EVSE station); limits in W and A convert with the period's
numberPhases (default 3) and the nominal voltage given.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import functools
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

CHARGING_ONLY = "ChargingOnly"
IDLE = "Idle"
CENTRAL_SETPOINT = "CentralSetpoint"
EXTERNAL_LIMITS = "ExternalLimits"
#: OperationModeEnumType (OCPP 2.1)
OPERATION_MODES = (IDLE, CHARGING_ONLY, CENTRAL_SETPOINT, "ExternalSetpoint", EXTERNAL_LIMITS, "CentralFrequency",
                   "LocalFrequency", "LocalLoadBalancing")
#: the modes in which a period needs no limit (ChargingSchedulePeriodType.limit, OCPP 2.1 schema)
LIMIT_OPTIONAL = (CENTRAL_SETPOINT, "ExternalSetpoint", EXTERNAL_LIMITS, "LocalFrequency", "LocalLoadBalancing")
STATION_MAX = "ChargingStationMaxProfile"
EXTERNAL = "ChargingStationExternalConstraints"
TX_DEFAULT = "TxDefaultProfile"
TX = "TxProfile"
#: 1.6 names -> 2.x names
PURPOSE_ALIASES = {"ChargePointMaxProfile": STATION_MAX}
PURPOSES = (STATION_MAX, EXTERNAL, TX_DEFAULT, TX)
#: chargingProfileKind; Dynamic (2.1): one period that UpdateDynamicSchedule (or
#: PullDynamicScheduleUpdate) rewrites, in force from the transaction's start like a Relative one
DYNAMIC = "Dynamic"
KINDS = ("Absolute", "Relative", "Recurring", DYNAMIC)
#: the fields of a period that may be given per phase (OCPP 2.1 _L2, _L3), and how the values of
#: the three phases become the one an even load obeys
PHASED: dict[str, Any] = {"limit": min, "dischargeLimit": max, "setpoint": lambda values: sum(values) / len(values)}
#: the fields of ChargingScheduleUpdateType the harness applies (not the reactive setpoints)
UPDATE_FIELDS = tuple(f"{name}{phase}" for name in PHASED for phase in ("", "_L2", "_L3"))
RECURRENCE = {"Daily": _dt.timedelta(days=1), "Weekly": _dt.timedelta(weeks=1)}
DEFAULT_PHASES = 3


class ProfileError(ValueError):
    """A charging profile the station cannot take; the message names the field."""


@dataclass(frozen=True)
class Period:
    start: int  # seconds from the schedule's start
    limit: float | None  # None: the operation mode needs none (2.1)
    phases: int | None = None
    #: OCPP 2.1: the discharge limit (<= 0), the signed setpoint, the operation mode
    discharge_limit: float | None = None
    setpoint: float | None = None
    mode: str = CHARGING_ONLY


@dataclass(frozen=True)
class Schedule:
    unit: str  # "A" or "W"
    periods: tuple[Period, ...]
    start: _dt.datetime | None = None  # startSchedule
    duration: int | None = None  # seconds


@dataclass(frozen=True)
class ChargingProfile:
    id: int
    stack_level: int
    purpose: str
    kind: str  # Absolute, Relative, Recurring
    schedules: tuple[Schedule, ...]
    recurrency: str | None = None
    valid_from: _dt.datetime | None = None
    valid_to: _dt.datetime | None = None
    transaction_id: str | None = None
    #: OCPP 2.1: seconds the profile stays valid once the station is offline (None: for ever), and
    #: whether it is then invalid for good
    max_offline_s: int | None = None
    invalid_after_offline: bool = False
    #: OCPP 2.1 dynUpdateInterval of a Dynamic profile: seconds after the last update at which
    #: the station asks for the next with PullDynamicScheduleUpdate (None: it is only pushed)
    update_interval_s: int | None = None

    @classmethod
    def from_ocpp(cls, data: Mapping[str, Any]) -> "ChargingProfile":
        """A 2.0.1/2.1 chargingProfile or a 1.6 csChargingProfiles, checked."""
        try:
            purpose = PURPOSE_ALIASES.get(data["chargingProfilePurpose"], data["chargingProfilePurpose"])
            raw = data["chargingSchedule"]
            schedules = tuple(_schedule(s) for s in (raw if isinstance(raw, list) else [raw]))
            profile = cls(id=int(data.get("id", data.get("chargingProfileId"))),
                          stack_level=int(data["stackLevel"]), purpose=purpose,
                          kind=data["chargingProfileKind"], schedules=schedules,
                          recurrency=data.get("recurrencyKind"), valid_from=_time(data.get("validFrom")),
                          valid_to=_time(data.get("validTo")),
                          transaction_id=None if data.get("transactionId") is None else str(data["transactionId"]),
                          max_offline_s=None if data.get("maxOfflineDuration") is None
                          else int(data["maxOfflineDuration"]),
                          invalid_after_offline=bool(data.get("invalidAfterOfflineDuration", False)),
                          update_interval_s=int(data["dynUpdateInterval"]) or None
                          if data.get("dynUpdateInterval") is not None else None)
        except (KeyError, TypeError, ValueError) as exc:
            raise ProfileError(f"chargingProfile: {exc}") from None
        if purpose not in PURPOSES:
            raise ProfileError(f"chargingProfilePurpose {purpose!r} is not one of {', '.join(PURPOSES)}")
        if profile.kind not in KINDS:
            raise ProfileError(f"chargingProfileKind {profile.kind!r}")
        if profile.kind == "Recurring" and (profile.recurrency not in RECURRENCE
                                            or any(s.start is None for s in profile.schedules)):
            raise ProfileError("a Recurring profile needs recurrencyKind Daily or Weekly and a startSchedule")
        if profile.kind == "Absolute" and any(s.start is None for s in profile.schedules):
            raise ProfileError("an Absolute profile needs a startSchedule")
        if profile.update_interval_s is not None and (profile.update_interval_s < 0 or profile.kind != DYNAMIC):
            raise ProfileError(f"dynUpdateInterval {profile.update_interval_s} belongs to a Dynamic profile and is "
                               "not negative")
        return profile


def _time(value: Any) -> _dt.datetime | None:
    if value is None:
        return None
    moment = _dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"{value!r} has no time zone")
    return moment


def _schedule(data: Mapping[str, Any]) -> Schedule:
    unit = data["chargingRateUnit"]
    if unit not in ("A", "W"):
        raise ValueError(f"chargingRateUnit {unit!r}")
    periods = tuple(_period(p, unit) for p in data["chargingSchedulePeriod"])
    if not periods or periods[0].start != 0:
        raise ValueError("chargingSchedulePeriod must start with startPeriod 0")
    if any(b.start <= a.start for a, b in zip(periods, periods[1:])):
        raise ValueError("chargingSchedulePeriod startPeriods must increase")
    duration = data.get("duration")
    return Schedule(unit, periods, _time(data.get("startSchedule")), None if duration is None else int(duration))


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def _phases(data: Mapping[str, Any], name: str, unit: str, where: str) -> list[float] | None:
    """A period's value on each of the three phases (None: not given): the per-phase values when
    given (``name`` then being phase L1's), else the value split evenly (W) or as it is (A)."""
    value = _number(data.get(name))
    l2, l3 = _number(data.get(f"{name}_L2")), _number(data.get(f"{name}_L3"))
    if l2 is None and l3 is None:
        return None if value is None else [value / 3 if unit == "W" else value] * 3
    if l2 is None or l3 is None or value is None:
        raise ValueError(f"{where}: {name}_L2 and {name}_L3 come with {name} (then phase L1's); this period gives "
                         + ", ".join(k for k in (name, f"{name}_L2", f"{name}_L3") if data.get(k) is not None))
    return [value, l2, l3]


def _even(data: Mapping[str, Any], name: str, unit: str, phases: list[float] | None) -> float | None:
    """The value an even load obeys, for the whole EVSE (W: the sum over the phases; A: per phase)."""
    if phases is None:
        return None
    if data.get(f"{name}_L2") is None:
        return _number(data.get(name))  # given for all phases: as it is
    even = float(PHASED[name](phases))
    return even * 3 if unit == "W" else even


def _period(data: Mapping[str, Any], unit: str) -> Period:
    mode = data.get("operationMode", CHARGING_ONLY)
    if mode not in OPERATION_MODES:
        raise ValueError(f"operationMode {mode!r}")
    where = f"the period at startPeriod {data.get('startPeriod')}"
    limit, discharge, setpoint = (_phases(data, name, unit, where) for name in PHASED)
    period = Period(int(data["startPeriod"]), _even(data, "limit", unit, limit),
                    None if data.get("numberPhases") is None else int(data["numberPhases"]),
                    _even(data, "dischargeLimit", unit, discharge), _even(data, "setpoint", unit, setpoint), mode)
    if period.limit is None and mode not in LIMIT_OPTIONAL:
        raise ValueError(f"{where} has no limit, which operationMode {mode} requires")
    if mode == CENTRAL_SETPOINT and period.setpoint is None:
        raise ValueError(f"{where} is in operationMode {CENTRAL_SETPOINT} without a setpoint to follow")
    if any(value > 0 for value in discharge or ()):
        raise ValueError(f"{where}: dischargeLimit {period.discharge_limit:g} must not be positive")
    # "the overshoot when following setpoint must remain within these values": phase by phase
    phased = any(data.get(f"{name}_L2") is not None for name in PHASED)
    for index, wanted in enumerate(setpoint or ()):
        assert setpoint is not None
        on = f" on phase L{index + 1}" if phased else ""
        if limit is not None and wanted > limit[index] + 1e-9:
            raise ValueError(f"{where}: setpoint {_shown(data, 'setpoint', setpoint, index, phased):g} above its "
                             f"limit {_shown(data, 'limit', limit, index, phased):g}{on}")
        if discharge is not None and wanted < discharge[index] - 1e-9:
            raise ValueError(f"{where}: setpoint {_shown(data, 'setpoint', setpoint, index, phased):g} below its "
                             f"dischargeLimit {_shown(data, 'dischargeLimit', discharge, index, phased):g}{on}")
    return period


def _shown(data: Mapping[str, Any], name: str, phases: list[float], index: int, phased: bool) -> float:
    """A value as the CSMS wrote it, for a message: the phase's own, or the one for all phases."""
    return phases[index] if phased and data.get(f"{name}_L2") is not None else float(data[name])


def discharges(mode: str) -> bool:
    """Whether an operation mode lets the EV discharge (not ChargingOnly, not Idle)."""
    return mode not in (CHARGING_ONLY, IDLE)


@dataclass(frozen=True)
class Limit:
    """What the composite schedule says for an EVSE at an instant, in A per phase (W converted
    with the nominal voltage and the period's phases): the charge limit (inf: none), the
    discharge allowed (a magnitude; 0 when the mode forbids discharge, None: nothing limits it),
    the signed setpoint to follow (None: none), the operation mode, and where it came from (the
    profile id per purpose, for the timeline)."""

    amps: float
    sources: tuple[tuple[str, int], ...] = ()
    discharge_amps: float | None = None
    setpoint_amps: float | None = None
    mode: str = CHARGING_ONLY

    def describe(self) -> str:
        parts = [self.mode] if self.mode != CHARGING_ONLY else []
        if self.setpoint_amps is not None:
            parts.append(f"setpoint {self.setpoint_amps:.1f} A")
        if self.amps != math.inf:
            parts.append(f"limit {self.amps:.1f} A")
        if self.discharge_amps is not None and discharges(self.mode):
            parts.append(f"discharge limit {self.discharge_amps:.1f} A")
        return ", ".join(parts) or "no limit"


@dataclass
class ProfileStore:
    """The profiles a station holds, by EVSE (0: the station)."""

    voltage: float = 230.0
    profiles: dict[int, list[ChargingProfile]] = field(default_factory=dict)

    def install(self, evse_id: int, profile: ChargingProfile) -> None:
        """Replace a profile with the same id, or one with the same purpose and stack level on the
        same EVSE (2.0.1 K01: the new one replaces it); a station maximum belongs on EVSE 0, a
        TxProfile names its transaction."""
        if profile.purpose == STATION_MAX and evse_id != 0:
            raise ProfileError(f"a {STATION_MAX} is installed on evseId 0, not {evse_id}")
        if profile.purpose == TX and (evse_id == 0 or profile.transaction_id is None):
            raise ProfileError("a TxProfile is installed on an EVSE for a transaction (transactionId)")
        for held in self.profiles.values():
            held[:] = [p for p in held if p.id != profile.id]
        mine = self.profiles.setdefault(evse_id, [])
        mine[:] = [p for p in mine if not (p.purpose == profile.purpose and p.stack_level == profile.stack_level)]
        mine.append(profile)

    def update_dynamic(self, profile_id: int, update: Mapping[str, Any]) -> ChargingProfile:
        """UpdateDynamicSchedule: the Dynamic profile ``profile_id`` with its period's limit,
        dischargeLimit and setpoint replaced by those ``update`` gives (the others kept), checked
        as a new period would be; ProfileError names what is wrong."""
        for held in self.profiles.values():
            for index, profile in enumerate(held):
                if profile.id != profile_id:
                    continue
                if profile.kind != DYNAMIC:
                    raise ProfileError(f"charging profile {profile_id} is {profile.kind}, not {DYNAMIC}")
                lone = [f"{name}{phase}" for name in PHASED for phase in ("_L2", "_L3")
                        if f"{name}{phase}" in update and name not in update]
                if lone:  # the period's own value is for all phases; the update's L1 is missing
                    raise ProfileError(f"scheduleUpdate: {', '.join(lone)} without the phase L1 value")
                first, *rest = profile.schedules
                period = first.periods[0]
                fields = {"startPeriod": 0, "limit": period.limit, "numberPhases": period.phases,
                          "dischargeLimit": period.discharge_limit, "setpoint": period.setpoint,
                          "operationMode": period.mode}
                fields.update({k: v for k, v in update.items() if k in UPDATE_FIELDS})
                try:
                    changed = _period({k: v for k, v in fields.items() if v is not None}, first.unit)
                except (KeyError, TypeError, ValueError) as exc:
                    raise ProfileError(f"scheduleUpdate: {exc}") from None
                schedule = dataclasses.replace(first, periods=(changed, *first.periods[1:]))
                held[index] = dataclasses.replace(profile, schedules=(schedule, *rest))
                return held[index]
        raise ProfileError(f"there is no charging profile {profile_id}")

    def offline_deadlines(self) -> list[tuple[int, int, bool]]:
        """(profile id, maxOfflineDuration, invalidAfterOfflineDuration) of the profiles that end
        when the station is offline that long."""
        return [(p.id, p.max_offline_s, p.invalid_after_offline) for held in self.profiles.values() for p in held
                if p.max_offline_s is not None]

    def clear(self, *, profile_id: int | None = None, evse_id: int | None = None, purpose: str | None = None,
              stack_level: int | None = None) -> int:
        """Remove the profiles matching every criterion given; how many went."""
        purpose = PURPOSE_ALIASES.get(purpose or "", purpose)
        removed = 0
        for evse, held in self.profiles.items():
            keep = [p for p in held if not ((profile_id is None or p.id == profile_id)
                                            and (evse_id is None or evse == evse_id)
                                            and (purpose is None or p.purpose == purpose)
                                            and (stack_level is None or p.stack_level == stack_level))]
            removed += len(held) - len(keep)
            held[:] = keep
        return removed

    def select(self, *, evse_id: int | None = None, purpose: str | None = None,
               stack_level: int | None = None, ids: Iterable[int] | None = None) -> list[tuple[int, ChargingProfile]]:
        wanted = set(ids) if ids is not None else None
        return [(evse, p) for evse, held in sorted(self.profiles.items()) for p in held
                if (evse_id is None or evse == evse_id) and (purpose is None or p.purpose == purpose)
                and (stack_level is None or p.stack_level == stack_level) and (wanted is None or p.id in wanted)]

    # -- the limit ---------------------------------------------------------------------------------

    def limit_at(self, at: _dt.datetime, evse_id: int, *, transaction_id: str | None = None,
                 transaction_start: _dt.datetime | None = None, offline_for: float | None = None) -> Limit | None:
        """The composite of the leading profiles at ``at`` for ``evse_id`` (None: no profile
        applies); ``offline_for``: the seconds the station has been offline (2.1
        maxOfflineDuration: "After this period the charging profile becomes invalid for as long as
        it is offline and the Charging Station reverts back to a valid profile with a lower stack
        level")."""
        leading: list[tuple[Period, float, tuple[str, int]]] = []
        relative_start = transaction_start or at
        lead = functools.partial(self._leading, at=at, evse_id=evse_id, relative_start=relative_start,
                                 transaction_id=transaction_id, offline_for=offline_for)
        for purpose in (STATION_MAX, EXTERNAL):
            found = lead(purpose)
            if found is not None:
                leading.append(found)
        tx = lead(TX) if transaction_id else None
        own = tx or lead(TX_DEFAULT)
        if own is not None:
            leading.append(own)
        if not leading:
            return None
        amps = min((self.amps(p.limit, unit_scale) for p, unit_scale, _ in leading if p.limit is not None),
                   default=math.inf)
        mode = own[0].mode if own is not None else CHARGING_ONLY
        discharge: float | None = None
        if own is not None and not discharges(mode):
            discharge = 0.0
        else:
            magnitudes = [abs(self.amps(p.discharge_limit, scale)) for p, scale, _ in leading
                          if p.discharge_limit is not None]
            discharge = min(magnitudes) if magnitudes else None
        setpoint: float | None = None
        if mode == IDLE:
            amps, setpoint = 0.0, 0.0
        elif own is not None and own[0].setpoint is not None:
            setpoint = min(amps, self.amps(own[0].setpoint, own[1]))
            if discharge is not None:
                setpoint = max(-discharge, setpoint)
        return Limit(amps, tuple(source for _, _, source in leading), discharge, setpoint, mode)

    def _leading(self, purpose: str, *, at: _dt.datetime, evse_id: int, relative_start: _dt.datetime,
                 transaction_id: str | None,
                 offline_for: float | None = None) -> tuple[Period, float, tuple[str, int]] | None:
        """The leading profile's period now, the divisor that turns its values into A, its source."""
        # the EVSE's own profiles before the station-wide ones; within each, the highest stack level
        # that is valid and has a period defined now
        for evse in ((evse_id, 0) if evse_id != 0 else (0,)):
            held = sorted((p for p in self.profiles.get(evse, []) if p.purpose == purpose),
                          key=lambda p: -p.stack_level)
            for profile in held:
                if purpose == TX and profile.transaction_id != transaction_id:
                    continue
                if (profile.valid_from and at < profile.valid_from) or (profile.valid_to and at >= profile.valid_to):
                    continue
                if offline_for is not None and profile.max_offline_s is not None and offline_for >= profile.max_offline_s:
                    continue
                found = self._period_at(profile, at, relative_start)
                if found is not None:
                    return found[0], found[1], (purpose, profile.id)
        return None

    def _period_at(self, profile: ChargingProfile, at: _dt.datetime,
                   relative_start: _dt.datetime) -> tuple[Period, float] | None:
        for schedule in profile.schedules:
            start = _schedule_start(profile, schedule, at, relative_start)
            if start is None or at < start:
                continue
            elapsed = (at - start).total_seconds()
            if schedule.duration is not None and elapsed >= schedule.duration:
                continue
            period = [p for p in schedule.periods if p.start <= elapsed][-1]
            scale = 1.0 if schedule.unit == "A" else self.voltage * (period.phases or DEFAULT_PHASES)
            return period, scale
        return None

    @staticmethod
    def amps(value: float, scale: float) -> float:
        """A value of a period in A per phase (``scale``: 1 for A, volts x phases for W)."""
        return value / scale

    # -- GetCompositeSchedule ----------------------------------------------------------------------

    def composite(self, start: _dt.datetime, duration: int, evse_id: int, *, unit: str = "A",
                  transaction_id: str | None = None, transaction_start: _dt.datetime | None = None,
                  fallback_amps: float | None = None, phases: int = DEFAULT_PHASES) -> list[dict[str, Any]]:
        """chargingSchedulePeriod of the composite schedule from ``start`` for ``duration``
        seconds, in ``unit``: a period wherever the limit changes (``fallback_amps`` where no
        profile limits the EVSE)."""
        periods: list[dict[str, Any]] = []
        scale = 1.0 if unit == "A" else self.voltage * phases
        for offset, found in self.ahead(start, duration, evse_id, transaction_id=transaction_id,
                                        transaction_start=transaction_start):
            moment = start + _dt.timedelta(seconds=offset)
            amps = found.amps if found is not None and found.amps != math.inf else fallback_amps
            if amps is None:
                continue
            values: dict[str, Any] = {"limit": round(amps * scale, 1)}
            if found is not None and found.mode != CHARGING_ONLY:  # the 2.1 fields, where they say something
                values["operationMode"] = found.mode
                if found.setpoint_amps is not None:
                    values["setpoint"] = round(found.setpoint_amps * scale, 1)
                if found.discharge_amps is not None:
                    values["dischargeLimit"] = round(-found.discharge_amps * scale, 1) or 0.0
            if periods and {k: v for k, v in periods[-1].items() if k not in ("startPeriod", "numberPhases")} == values:
                continue
            entry: dict[str, Any] = {"startPeriod": int((moment - start).total_seconds()), **values}
            if unit == "W":
                entry["numberPhases"] = phases
            periods.append(entry)
        return periods

    def ahead(self, start: _dt.datetime, duration: int, evse_id: int, *, transaction_id: str | None = None,
              transaction_start: _dt.datetime | None = None,
              offline_for: float | None = None) -> list[tuple[float, Limit | None]]:
        """(seconds from ``start``, what applies from then on) at ``start`` and at each instant in
        the next ``duration`` seconds when the profiles may change what applies."""
        end = start + _dt.timedelta(seconds=duration)
        moments = {start}
        for evse in {evse_id, 0}:
            for profile in self.profiles.get(evse, []):
                moments.update(m for m in self._changes(profile, start, end, transaction_start or start)
                               if start <= m < end)
        return [((moment - start).total_seconds(),
                 self.limit_at(moment, evse_id, transaction_id=transaction_id, transaction_start=transaction_start,
                               offline_for=offline_for))
                for moment in sorted(moments)]

    def _changes(self, profile: ChargingProfile, start: _dt.datetime, end: _dt.datetime,
                 relative_start: _dt.datetime) -> list[_dt.datetime]:
        """Every instant in [start, end) at which ``profile`` may change what it says."""
        found = [m for m in (profile.valid_from, profile.valid_to) if m is not None]
        for schedule in profile.schedules:
            origins: list[_dt.datetime] = []
            if profile.kind == "Recurring" and schedule.start is not None:
                step = RECURRENCE[profile.recurrency or "Daily"]
                first = _schedule_start(profile, schedule, start, relative_start) or schedule.start
                moment = first
                while moment < end:
                    origins.append(moment)
                    moment += step
            else:
                origin = _schedule_start(profile, schedule, start, relative_start)
                if origin is not None:
                    origins.append(origin)
            for origin in origins:
                found += [origin + _dt.timedelta(seconds=p.start) for p in schedule.periods]
                if schedule.duration is not None:
                    found.append(origin + _dt.timedelta(seconds=schedule.duration))
        return found


def _schedule_start(profile: ChargingProfile, schedule: Schedule, at: _dt.datetime,
                    relative_start: _dt.datetime) -> _dt.datetime | None:
    if profile.kind in ("Relative", DYNAMIC):
        return relative_start
    if schedule.start is None:
        return None
    if profile.kind == "Recurring":
        step = RECURRENCE[profile.recurrency or "Daily"]
        if at < schedule.start:
            return schedule.start
        return schedule.start + step * ((at - schedule.start) // step)
    return schedule.start
