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

Chosen where the texts available to the harness do not say: a profile installed for one EVSE
takes precedence over a station-wide one (EVSE 0) of the same purpose whatever their stack levels
(as 1.6 3.13.2 describes connector-specific TxDefaultProfiles); the station maximum is applied to
each EVSE alone (right for a one-EVSE station); limits in W and A convert with the period's
numberPhases (default 3) and the nominal voltage given.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

STATION_MAX = "ChargingStationMaxProfile"
EXTERNAL = "ChargingStationExternalConstraints"
TX_DEFAULT = "TxDefaultProfile"
TX = "TxProfile"
#: 1.6 names -> 2.x names
PURPOSE_ALIASES = {"ChargePointMaxProfile": STATION_MAX}
PURPOSES = (STATION_MAX, EXTERNAL, TX_DEFAULT, TX)
RECURRENCE = {"Daily": _dt.timedelta(days=1), "Weekly": _dt.timedelta(weeks=1)}
DEFAULT_PHASES = 3


class ProfileError(ValueError):
    """A charging profile the station cannot take; the message names the field."""


@dataclass(frozen=True)
class Period:
    start: int  # seconds from the schedule's start
    limit: float
    phases: int | None = None


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
                          transaction_id=None if data.get("transactionId") is None else str(data["transactionId"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ProfileError(f"chargingProfile: {exc}") from None
        if purpose not in PURPOSES:
            raise ProfileError(f"chargingProfilePurpose {purpose!r} is not one of {', '.join(PURPOSES)}")
        if profile.kind not in ("Absolute", "Relative", "Recurring"):
            raise ProfileError(f"chargingProfileKind {profile.kind!r}")
        if profile.kind == "Recurring" and (profile.recurrency not in RECURRENCE
                                            or any(s.start is None for s in profile.schedules)):
            raise ProfileError("a Recurring profile needs recurrencyKind Daily or Weekly and a startSchedule")
        if profile.kind == "Absolute" and any(s.start is None for s in profile.schedules):
            raise ProfileError("an Absolute profile needs a startSchedule")
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
    periods = tuple(Period(int(p["startPeriod"]), float(p["limit"]),
                           None if p.get("numberPhases") is None else int(p["numberPhases"]))
                    for p in data["chargingSchedulePeriod"])
    if not periods or periods[0].start != 0:
        raise ValueError("chargingSchedulePeriod must start with startPeriod 0")
    if any(b.start <= a.start for a, b in zip(periods, periods[1:])):
        raise ValueError("chargingSchedulePeriod startPeriods must increase")
    duration = data.get("duration")
    return Schedule(unit, periods, _time(data.get("startSchedule")), None if duration is None else int(duration))


@dataclass(frozen=True)
class Limit:
    """A limit and where it came from (the profile id per purpose, for the timeline)."""

    amps: float
    sources: tuple[tuple[str, int], ...] = ()


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
                 transaction_start: _dt.datetime | None = None) -> Limit | None:
        """The lowest limit of the leading profiles at ``at`` for ``evse_id``, in A (None: no
        profile limits it)."""
        candidates: list[tuple[float, tuple[str, int]]] = []
        relative_start = transaction_start or at
        for purpose in (STATION_MAX, EXTERNAL):
            found = self._leading(purpose, at, evse_id, relative_start, transaction_id)
            if found is not None:
                candidates.append(found)
        tx = self._leading(TX, at, evse_id, relative_start, transaction_id) if transaction_id else None
        default = tx or self._leading(TX_DEFAULT, at, evse_id, relative_start, transaction_id)
        if default is not None:
            candidates.append(default)
        if not candidates:
            return None
        return Limit(min(amps for amps, _ in candidates), tuple(source for _, source in candidates))

    def _leading(self, purpose: str, at: _dt.datetime, evse_id: int, relative_start: _dt.datetime,
                 transaction_id: str | None) -> tuple[float, tuple[str, int]] | None:
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
                amps = self._profile_amps(profile, at, relative_start)
                if amps is not None:
                    return amps, (purpose, profile.id)
        return None

    def _profile_amps(self, profile: ChargingProfile, at: _dt.datetime, relative_start: _dt.datetime) -> float | None:
        for schedule in profile.schedules:
            start = _schedule_start(profile, schedule, at, relative_start)
            if start is None or at < start:
                continue
            elapsed = (at - start).total_seconds()
            if schedule.duration is not None and elapsed >= schedule.duration:
                continue
            period = [p for p in schedule.periods if p.start <= elapsed][-1]
            return self.amps(period, schedule.unit)
        return None

    def amps(self, period: Period, unit: str) -> float:
        if unit == "A":
            return period.limit
        return period.limit / (self.voltage * (period.phases or DEFAULT_PHASES))

    # -- GetCompositeSchedule ----------------------------------------------------------------------

    def composite(self, start: _dt.datetime, duration: int, evse_id: int, *, unit: str = "A",
                  transaction_id: str | None = None, transaction_start: _dt.datetime | None = None,
                  fallback_amps: float | None = None, phases: int = DEFAULT_PHASES) -> list[dict[str, Any]]:
        """chargingSchedulePeriod of the composite schedule from ``start`` for ``duration``
        seconds, in ``unit``: a period wherever the limit changes (``fallback_amps`` where no
        profile limits the EVSE)."""
        end = start + _dt.timedelta(seconds=duration)
        moments = {start}
        for evse in {evse_id, 0}:
            for profile in self.profiles.get(evse, []):
                moments.update(m for m in self._changes(profile, start, end, transaction_start or start)
                               if start <= m < end)
        periods: list[dict[str, Any]] = []
        for moment in sorted(moments):
            found = self.limit_at(moment, evse_id, transaction_id=transaction_id, transaction_start=transaction_start)
            amps = found.amps if found is not None else fallback_amps
            if amps is None:
                continue
            limit = round(amps if unit == "A" else amps * self.voltage * phases, 1)
            if periods and periods[-1]["limit"] == limit:
                continue
            entry: dict[str, Any] = {"startPeriod": int((moment - start).total_seconds()), "limit": limit}
            if unit == "W":
                entry["numberPhases"] = phases
            periods.append(entry)
        return periods

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
    if profile.kind == "Relative":
        return relative_start
    if schedule.start is None:
        return None
    if profile.kind == "Recurring":
        step = RECURRENCE[profile.recurrency or "Daily"]
        if at < schedule.start:
            return schedule.start
        return schedule.start + step * ((at - schedule.start) // step)
    return schedule.start
