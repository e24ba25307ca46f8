"""The reference EVSE's smart charging (OCPP 2.0.1 K01 SetChargingProfile, K05/K10 Clear, K08
GetCompositeSchedule, K09 GetChargingProfiles with ReportChargingProfiles; the 1.6 Smart Charging
profile): the profiles it holds, and the current each connector offers, which is the composite
schedule's limit at the moment asked (:mod:`harness.ocpp.smart_charging`).

The limit reaches the EV the way the connector offers it: the PWM duty, and for ISO 15118 the
power the SECC offers (:meth:`harness.emulators.bridge.OcppBridge.power_limit`). A watcher wakes
at each change of a connector's limit (a new period, a profile's end) and re-applies it.

A Dynamic profile (OCPP 2.1) changes by UpdateDynamicSchedule from the CSMS, or, when it has a
dynUpdateInterval, by the station asking: "Interval in seconds after receipt of last update, when
to request a profile update by sending a PullDynamicScheduleUpdateRequest message"
(ChargingProfileType.dynUpdateInterval). One task per such profile asks that long after the last
update, however it came.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import datetime as _dt
import math
import time
from typing import Any, Awaitable, Callable, Mapping

from harness.emulators.evse_connector import EVSE, Connector, enqueue
from harness.ocpp import smart_charging as sc
from harness.ocpp.dialect import StationTransaction
from harness.ocpp.smart_charging import ChargingProfile, Limit, ProfileError, ProfileStore
from harness.trace import Layer, Recorder

#: the watcher looks again at least this often (a transaction's start moves Relative schedules)
WATCH_INTERVAL_S = 2.0

#: asks the CSMS for a Dynamic profile's update (PullDynamicScheduleUpdate): the CSMS's answer,
#: or None when it could not be asked (the reason is then on the timeline)
Puller = Callable[[int], Awaitable[Mapping[str, Any] | None]]


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


class SmartCharging:
    def __init__(self, recorder: Recorder, connectors: Mapping[int, Connector], *, voltage: float, phases: int,
                 transaction_key: Callable[[StationTransaction], str], puller: Puller | None = None) -> None:
        self.recorder = recorder
        self.connectors = connectors
        self.phases = phases
        self.store = ProfileStore(voltage=voltage)
        #: the profiles as the CSMS sent them, by id, for GetChargingProfiles
        self.raw: dict[int, dict[str, Any]] = {}
        #: how the CSMS names a transaction (2.x: the station's id; 1.6: the CSMS's integer)
        self.transaction_key = transaction_key
        self._applied: dict[int, Limit | None] = {}
        self._watcher: asyncio.Task | None = None
        #: when the station lost the CSMS (None: online), for the profiles' maxOfflineDuration
        self.offline_since: _dt.datetime | None = None
        self.puller = puller
        #: the Dynamic profiles the station pulls updates for: the task, and when the last update came
        self._pulling: dict[int, asyncio.Task] = {}
        self._updated_at: dict[int, float] = {}
        for connector in connectors.values():
            connector.profile_limit = self.limit
            connector.profile_ahead = self.ahead

    # -- the limit -----------------------------------------------------------------------------

    def _transaction(self, connector: Connector | None) -> dict[str, Any]:
        """The connector's transaction as the profile store asks about it (its key and start)."""
        tx = connector.transaction if connector is not None else None
        if tx is None:
            return {"transaction_id": None, "transaction_start": None}
        return {"transaction_id": self.transaction_key(tx), "transaction_start": _started(tx)}

    def limit(self, connector: Connector) -> Limit | None:
        """What the composite schedule says for the connector now (None: no profile)."""
        transaction = self._transaction(connector)
        if transaction["transaction_id"] is not None and connector.start_profile is not None:
            # RequestStartTransaction's profile is the TxProfile of the transaction it started (F01)
            self.store.install(connector.evse_id, dataclasses.replace(connector.start_profile,
                                                                      transaction_id=transaction["transaction_id"]))
            connector.start_profile = None
        return self.store.limit_at(_now(), connector.evse_id, offline_for=self._offline_for(), **transaction)

    def ahead(self, connector: Connector, horizon_s: int) -> list[tuple[float, Limit | None]]:
        """What the composite schedule says for the connector from now over ``horizon_s``: (seconds
        from now, limit) at each change, the first at 0."""
        self.limit(connector)  # a start profile becomes the transaction's TxProfile first
        return self.store.ahead(_now(), horizon_s, connector.evse_id, offline_for=self._offline_for(),
                                **self._transaction(connector))

    def _offline_for(self) -> float | None:
        return None if self.offline_since is None else (_now() - self.offline_since).total_seconds()

    async def connection_changed(self, online: bool) -> None:
        """The station lost or regained the CSMS: profiles with a maxOfflineDuration lapse after it
        (OCPP 2.1 ChargingProfileType), for good with invalidAfterOfflineDuration."""
        if online:
            offline_for = self._offline_for()
            if offline_for is not None:
                for profile_id, limit_s, for_good in self.store.offline_deadlines():
                    if for_good and offline_for >= limit_s:
                        self.store.clear(profile_id=profile_id)
                        self.raw.pop(profile_id, None)
            self.offline_since = None
        elif self.offline_since is None:
            self.offline_since = _now()
        await self.changed()

    async def changed(self) -> None:
        """Re-apply every connector's limit now, and keep watching for the next change."""
        for connector in self.connectors.values():
            await self._apply(connector)
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.create_task(self._watch(), name="charging profile watcher")

    async def stop(self) -> None:
        tasks = [*self._pulling.values(), *([self._watcher] if self._watcher is not None else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._watcher = None
        self._pulling.clear()

    async def _apply(self, connector: Connector) -> None:
        found = self.limit(connector)
        if connector.evse_id not in self._applied or self._applied[connector.evse_id] != found:
            self._applied[connector.evse_id] = found
            amps = None if found is None or found.amps == math.inf else found.amps
            self.recorder.emit(Layer.OCPP, "ChargingLimitApplied", f"EVSE {connector.evse_id}: "
                               f"{'no charging limit' if found is None else found.describe()} (composite schedule)",
                               src=EVSE, payload={"evse_id": connector.evse_id, "amps": amps,
                                                  "mode": None if found is None else found.mode,
                                                  "setpoint_amps": None if found is None else found.setpoint_amps,
                                                  "discharge_amps": None if found is None else found.discharge_amps},
                               keys={"evse_id": connector.evse_id})
            await enqueue(connector, ("limit",))

    async def _watch(self) -> None:
        while any(self.store.profiles.values()):
            await asyncio.sleep(self._until_next_change())
            for connector in self.connectors.values():
                await self._apply(connector)

    def _until_next_change(self) -> float:
        now = _now()
        waits = [WATCH_INTERVAL_S]
        offline_for = self._offline_for()
        if offline_for is not None:  # a profile lapsing offline is a change too
            waits += [limit_s - offline_for for _, limit_s, _ in self.store.offline_deadlines() if limit_s > offline_for]
        for connector in self.connectors.values():
            periods = self.store.composite(now, 86400, connector.evse_id, **self._transaction(connector))
            waits += [p["startPeriod"] for p in periods if p["startPeriod"] > 0][:1]
        return max(0.05, min(waits))

    # -- the CSMS's requests --------------------------------------------------------------------

    async def set_profile(self, evse_id: int, raw: Mapping[str, Any]) -> tuple[str, str]:
        """(status, why) for SetChargingProfile on ``evse_id`` (0: the station)."""
        if evse_id and evse_id not in self.connectors:
            return "Rejected", f"there is no EVSE {evse_id}"
        try:
            profile = ChargingProfile.from_ocpp(raw)
            if profile.purpose == sc.TX and profile.transaction_id is None:
                tx = self.connectors[evse_id].transaction if evse_id else None
                if tx is None:
                    return "Rejected", "a TxProfile needs a transaction on the EVSE"
                profile = dataclasses.replace(profile, transaction_id=self.transaction_key(tx))
            self.store.install(evse_id, profile)
        except (ProfileError, KeyError) as exc:
            return "Rejected", str(exc)
        self.raw[profile.id] = copy.deepcopy(dict(raw))
        self._pull(profile)
        await self.changed()
        return "Accepted", f"profile {profile.id} ({profile.purpose}, stack level {profile.stack_level}) on EVSE {evse_id}"

    async def update_dynamic(self, profile_id: int, update: Mapping[str, Any]) -> tuple[str, str]:
        """(status, why) for UpdateDynamicSchedule (OCPP 2.1), or for the update a
        PullDynamicScheduleUpdate brought."""
        try:
            self.store.update_dynamic(profile_id, update)
        except ProfileError as exc:
            return "Rejected", str(exc)
        self._updated_at[profile_id] = time.monotonic()
        raw = self.raw.get(profile_id)
        if raw is not None:  # GetChargingProfiles reports the profile as it stands now
            period = raw["chargingSchedule"][0]["chargingSchedulePeriod"][0]
            for name in sc.PHASED:  # a value given anew replaces the old one, per phase or not
                if name in update:
                    period.pop(f"{name}_L2", None)
                    period.pop(f"{name}_L3", None)
            period.update({k: v for k, v in update.items() if k in sc.UPDATE_FIELDS})
            raw["dynUpdateTime"] = _iso(_now().replace(microsecond=0))
        await self.changed()
        return "Accepted", f"profile {profile_id} updated: " + ", ".join(f"{k} {v}" for k, v in update.items()
                                                                           if k in sc.UPDATE_FIELDS)

    async def clear(self, *, profile_id: int | None, evse_id: int | None, purpose: str | None,
                    stack_level: int | None) -> str:
        held = {p.id for _, p in self.store.select()}
        self.store.clear(profile_id=profile_id, evse_id=evse_id, purpose=purpose, stack_level=stack_level)
        removed = held - {p.id for _, p in self.store.select()}
        for id_ in removed:
            self.raw.pop(id_, None)
        self._stop_pulling(removed)
        await self.changed()
        return "Accepted" if removed else "Unknown"

    # -- PullDynamicScheduleUpdate (OCPP 2.1) -----------------------------------------------------

    def _pull(self, profile: ChargingProfile) -> None:
        """Ask for ``profile``'s updates every dynUpdateInterval from now on (a profile that
        replaces one with the same id takes over its task)."""
        self._stop_pulling({profile.id})
        if profile.kind != sc.DYNAMIC or not profile.update_interval_s or self.puller is None:
            return
        self._updated_at[profile.id] = time.monotonic()
        self._pulling[profile.id] = asyncio.create_task(self._pull_updates(profile.id, profile.update_interval_s),
                                                        name=f"PullDynamicScheduleUpdate {profile.id}")

    def _stop_pulling(self, ids: set[int]) -> None:
        for id_ in ids:
            task = self._pulling.pop(id_, None)
            if task is not None and task is not asyncio.current_task():
                task.cancel()
            self._updated_at.pop(id_, None)

    async def _pull_updates(self, profile_id: int, interval_s: int) -> None:
        assert self.puller is not None
        while any(p.id == profile_id for _, p in self.store.select()):
            due = self._updated_at.get(profile_id, time.monotonic()) + interval_s
            if due > time.monotonic():
                await asyncio.sleep(due - time.monotonic())
                continue  # an UpdateDynamicSchedule may have come meanwhile
            self._updated_at[profile_id] = time.monotonic()  # not asked again before the interval, answer or not
            answer = await self.puller(profile_id)
            if answer is None or answer.get("status") != "Accepted" or not answer.get("scheduleUpdate"):
                continue
            status, why = await self.update_dynamic(profile_id, answer["scheduleUpdate"])
            self.recorder.emit(Layer.OCPP, "DynamicScheduleUpdated" if status == "Accepted"
                               else "DynamicScheduleRefused", f"PullDynamicScheduleUpdate: {status}: {why}",
                               src=EVSE, payload={"status": status, "reason": why, "pulled": True})
        self._pulling.pop(profile_id, None)

    def composite(self, evse_id: int, duration: int, unit: str | None) -> tuple[str, dict[str, Any]]:
        """(scheduleStart, the composite's fields) for GetCompositeSchedule; KeyError for an
        unknown EVSE."""
        connector = self.connectors[evse_id] if evse_id else None
        start = _now().replace(microsecond=0)
        unit = unit or "A"
        periods = self.store.composite(start, duration, evse_id, unit=unit, phases=self.phases,
                                       fallback_amps=connector.max_current if connector is not None else None,
                                       **self._transaction(connector))
        return _iso(start), {"duration": duration, "chargingRateUnit": unit, "chargingSchedulePeriod": periods}

    def profiles(self, *, evse_id: int | None, purpose: str | None, stack_level: int | None,
                 ids: list[int] | None) -> dict[int, list[dict[str, Any]]]:
        """The profiles held that match, as the CSMS sent them, by EVSE."""
        found: dict[int, list[dict[str, Any]]] = {}
        for evse, profile in self.store.select(evse_id=evse_id, purpose=purpose, stack_level=stack_level, ids=ids):
            found.setdefault(evse, []).append(self.raw.get(profile.id, {"id": profile.id}))
        return found


def _started(tx: StationTransaction | None) -> _dt.datetime | None:
    if tx is None:
        return None
    try:
        return _dt.datetime.fromisoformat(tx.started.replace("Z", "+00:00"))
    except (AttributeError, ValueError):
        return None


def _iso(moment: _dt.datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")

