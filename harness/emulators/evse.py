"""The reference EVSE: a charging station that stands in for a DUT on emulated rigs.

Physical side: one pilot line, contactor and power flow per EVSE (connector 1 each), a current
limit from the hardware and from charging profiles. Protocol side: the OCPP station client, in
the version the rig asks for. Its behaviour follows OCPP 2.0.1 with TxStartPoint=PowerPathClosed
(a transaction starts when the EV is connected *and* authorized) and TxStopPoint=EVConnected,
Authorized (it ends when the EV leaves or authorization ends); on 1.6 the same events become
StartTransaction / MeterValues / StopTransaction.

Each connector processes its events (pilot changes, authorizations, stop requests) one at a time
in its own task, so the order of what the station reports always matches the order of what
happened.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from harness.iec61851.pilot import DIGITAL_COMMUNICATION, NO_PWM, CpState, SimulatedPilot, duty_for_current
from harness.emulators.power import PowerFlow
from harness.ocpp.dialect import (ConnectorState, MeterSample, Ocpp16Dialect, StationTransaction, dialect_for,
                                  timestamp)
from harness.ocpp.endpoint import ConnectionLost, Handler, IncomingCall, OcppCallFailed, Reply, Result
from harness.ocpp.station import CsmsLink, OutboxItem, StationClient, StationIdentity
from harness.ocpp.timing import OcppTimers
from harness.ocpp.versions import OcppVersion
from harness.trace import Layer, Recorder

EVSE = "evse"


@dataclass(frozen=True)
class EvseSettings:
    station_id: str
    identity: StationIdentity
    evse_count: int = 1
    max_current: float = 32.0  # A per phase the hardware can give
    phases: int = 3
    voltage: float = 230.0
    authorize_remote_start: bool = False  # AuthCtrlr.AuthorizeRemoteStart
    offline_tx_for_unknown_id: bool = True  # AuthCtrlr.OfflineTxForUnknownIdEnabled
    ev_connection_timeout: float = 120.0  # TxCtrlr.EVConnectionTimeOut, protocol seconds


@dataclass
class Authorization:
    token: str
    source: str  # "local" or "remote"
    remote_start_id: int | None = None
    token_type: str = "ISO14443"


@dataclass
class Connector:
    evse_id: int
    pilot: SimulatedPilot
    line: PowerFlow
    max_current: float
    state: ConnectorState = ConnectorState.AVAILABLE
    authorization: Authorization | None = None
    transaction: StationTransaction | None = None
    limit_amps: float | None = None  # from a charging profile
    available: bool = True
    events: asyncio.Queue = field(default_factory=asyncio.Queue)
    meter_task: asyncio.Task | None = None
    connection_timer: asyncio.Task | None = None
    #: ISO 15118: 5 % duty (digital communication) instead of the nominal PWM
    digital: bool = False
    #: the EV's state of charge in percent, when it tells it (ISO 15118)
    soc: float | None = None

    @property
    def plugged(self) -> bool:
        return self.pilot.state is not CpState.A

    def offered_current(self) -> float:
        if self.transaction is None or not self.available:
            return 0.0
        limit = self.max_current if self.limit_amps is None else min(self.max_current, self.limit_amps)
        return limit


class ReferenceEvse:
    def __init__(self, recorder: Recorder, settings: EvseSettings, link: CsmsLink, timers: OcppTimers,
                 hlc: Any = None) -> None:
        self.recorder = recorder
        self.settings = settings
        self.timers = timers
        self.version = link.version
        self.dialect = dialect_for(link.version)
        self.connectors = {
            evse_id: Connector(evse_id, SimulatedPilot(recorder, evse_id=evse_id),
                               PowerFlow(voltage=settings.voltage, phases=settings.phases), settings.max_current)
            for evse_id in range(1, settings.evse_count + 1)
        }
        self.variables = _device_model(settings, timers)
        self.station = StationClient(recorder, station_id=settings.station_id, link=link,
                                     identity=settings.identity, timers=timers, handlers=self._handler,
                                     on_online=self._report_all_statuses)
        self._workers: list[asyncio.Task] = []
        self._handlers = self._handler_table()
        #: the ISO 15118 side (harness.emulators.evse_hlc.EvseHlc), when the EVSE has one
        self.hlc = hlc

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        for connector in self.connectors.values():
            connector.pilot.on_state_change(
                lambda old, new, c=connector: c.events.put_nowait(("pilot", old, new)))
            self._workers.append(asyncio.create_task(self._connector_worker(connector)))
        self.station.start()
        if self.hlc is not None:
            await self.hlc.start(self)

    async def make_safe(self, timeout: float) -> None:
        """Open every contactor, end every transaction and try to deliver what is queued."""
        for connector in self.connectors.values():
            connector.line.set(contactor_closed=False)
            await connector.pilot.set_duty(NO_PWM)
            if connector.transaction is not None:
                await self._end_transaction(connector, "AbnormalCondition", "Other")
        try:
            await self.station.drained(timeout)
        except TimeoutError:
            self.recorder.emit(Layer.RIG, "EvseQueueNotDrained", f"{self.station.queued} transaction "
                               "messages still queued at teardown", src=EVSE)

    async def stop(self) -> None:
        for task in self._workers:
            task.cancel()
        for connector in self.connectors.values():
            for task in (connector.meter_task, connector.connection_timer):
                if task is not None:
                    task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers.clear()
        if self.hlc is not None:
            await self.hlc.stop()
        await self.station.stop()

    # -- what a person at the charger can do ------------------------------------------------

    async def present_id_token(self, token: str, evse_id: int = 1, token_type: str = "ISO14443") -> str:
        """Hold a token to the reader: authorize it (online with the CSMS, offline by policy) and
        start or stop the transaction. Returns the authorization status."""
        connector = self.connectors[evse_id]
        tx = connector.transaction
        if tx is not None and tx.id_token == token:
            await self._enqueue(connector, ("stop", "StopAuthorized", "Local"))
            return "Accepted"
        status = await self._authorize(token, token_type)
        if status == "Accepted":
            await self._enqueue(connector, ("authorized", Authorization(token, "local", token_type=token_type),
                                            "Authorized"))
        return status

    async def _authorize(self, token: str, token_type: str) -> str:
        action, payload = self.dialect.authorize(token, token_type)
        try:
            response = await self.station.send(action, payload)
        except ConnectionLost:
            status = "Accepted" if self.settings.offline_tx_for_unknown_id else "Invalid"
            self.recorder.emit(Layer.OCPP, "OfflineAuthorization", f"offline: token {token} {status} by local "
                               "policy (OfflineTxForUnknownIdEnabled)", src=EVSE, keys={"id_token": token})
            return status
        except OcppCallFailed:
            return "Invalid"
        return self.dialect.authorization_status(response)

    # -- connector state machine --------------------------------------------------------------

    async def _enqueue(self, connector: Connector, event: tuple) -> None:
        await connector.events.put(event)

    async def _connector_worker(self, connector: Connector) -> None:
        while True:
            event = await connector.events.get()
            try:
                await self._process(connector, event)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug in the emulator must be visible, not silent
                self.recorder.emit(Layer.FAULT, "EvseEmulatorError", f"reference EVSE failed on {event[0]}: {exc!r}",
                                   src=EVSE, keys={"evse_id": connector.evse_id})

    async def _process(self, connector: Connector, event: tuple) -> None:
        kind = event[0]
        if kind == "pilot":
            _, old, new = event
            if old is CpState.A and new is not CpState.A:
                await self._plugged_in(connector)
            elif new is CpState.A:
                await self._unplugged(connector)
            elif new in (CpState.C, CpState.D):
                await self._ev_ready(connector, True)
            elif new is CpState.B:
                await self._ev_ready(connector, False)
        elif kind == "authorized":
            _, authorization, trigger = event
            connector.authorization = authorization
            if connector.plugged:
                await self._start_transaction(connector, trigger)
            else:
                await self._set_state(connector, ConnectorState.PREPARING)
                self._arm_connection_timer(connector)
        elif kind == "stop":
            _, trigger, reason = event
            await self._stop_energy(connector)
            if connector.transaction is not None:
                await self._end_transaction(connector, trigger, reason)
            connector.authorization = None
            await self._set_state(connector, ConnectorState.FINISHING if connector.plugged else ConnectorState.AVAILABLE)
        elif kind == "limit":
            await self._apply_limit(connector)
        elif kind == "trigger":
            await self._triggered(connector, event[1])

    async def _plugged_in(self, connector: Connector) -> None:
        self._cancel(connector, "connection_timer")
        if self.hlc is not None:
            await self.hlc.plugged_in(connector)
        if connector.authorization is not None:
            await self._start_transaction(connector, "CablePluggedIn")
        else:
            await self._set_state(connector, ConnectorState.PREPARING)

    async def _unplugged(self, connector: Connector) -> None:
        if self.hlc is not None:
            await self.hlc.unplugged(connector)
        await self._stop_energy(connector)
        if connector.transaction is not None:
            await self._end_transaction(connector, "EVDeparted", "EVDisconnected")
        connector.authorization = None
        await self._set_state(connector, ConnectorState.AVAILABLE)

    async def _ev_ready(self, connector: Connector, ready: bool) -> None:
        tx = connector.transaction
        if tx is None:
            return
        if ready and connector.offered_current() >= 6.0:
            connector.line.set(contactor_closed=True)
            await self._charging_state(connector, ConnectorState.CHARGING)
        else:
            connector.line.set(contactor_closed=False)
            await self._charging_state(connector, ConnectorState.SUSPENDED_EV if connector.offered_current() >= 6.0
                                       else ConnectorState.SUSPENDED_EVSE)

    async def _stop_energy(self, connector: Connector) -> None:
        connector.line.set(contactor_closed=False)
        await connector.pilot.set_duty(NO_PWM)

    async def _apply_limit(self, connector: Connector) -> None:
        if connector.transaction is None:
            return
        await connector.pilot.set_duty(self.duty(connector))
        await self._ev_ready(connector, connector.pilot.state in (CpState.C, CpState.D))

    # -- transactions ---------------------------------------------------------------------

    def duty(self, connector: Connector) -> float:
        """The PWM duty cycle the connector shows: 5 % while digital communication is asked for
        (ISO 15118-3), else the current it offers (IEC 61851-1)."""
        if connector.digital:
            return DIGITAL_COMMUNICATION
        return duty_for_current(connector.offered_current()) if connector.transaction is not None else NO_PWM

    def _sample(self, connector: Connector, context: str = "Sample.Periodic") -> MeterSample:
        reading = connector.line.read()
        return MeterSample(timestamp(), reading.imported_wh, reading.exported_wh, reading.power, connector.soc, context)

    async def _start_transaction(self, connector: Connector, trigger: str) -> None:
        authorization = connector.authorization
        assert authorization is not None
        self._cancel(connector, "connection_timer")
        sample = self._sample(connector, "Transaction.Begin")
        tx = StationTransaction(transaction_id=uuid.uuid4().hex[:20], evse_id=connector.evse_id,
                                id_token=authorization.token, started=sample.timestamp,
                                meter_start_wh=sample.imported_wh, begin_sample=sample,
                                remote_start_id=authorization.remote_start_id, token_type=authorization.token_type)
        connector.transaction = tx
        offline = not self.station.online
        if isinstance(self.dialect, Ocpp16Dialect):
            dialect = self.dialect

            def assigned(result: dict[str, Any]) -> None:
                tx.csms_id = result.get("transactionId")

            self.station.enqueue(OutboxItem("StartTransaction", lambda: dialect.start_transaction(tx), assigned))
        else:
            payload = self.dialect.transaction_event(tx, "Started", trigger, offline=offline, sample=sample,
                                                     with_token=True)
            self.station.enqueue(OutboxItem("TransactionEvent", lambda: payload))
        self.recorder.emit(Layer.OCPP, "StationTransactionStarted", f"EVSE {connector.evse_id} starts transaction "
                           f"{tx.transaction_id} for {authorization.token} ({trigger})", src=EVSE,
                           keys={"transaction_id": tx.transaction_id, "id_token": authorization.token,
                                 "evse_id": connector.evse_id})
        await self._set_state(connector, ConnectorState.PREPARING)
        await connector.pilot.set_duty(self.duty(connector))
        connector.meter_task = asyncio.create_task(self._meter_values(connector, tx))
        if connector.pilot.state in (CpState.C, CpState.D):
            await self._ev_ready(connector, True)

    async def _charging_state(self, connector: Connector, state: ConnectorState) -> None:
        tx = connector.transaction
        if tx is None or state.charging_state == tx.charging_state:
            await self._set_state(connector, state)
            return
        tx.charging_state = state.charging_state
        if not isinstance(self.dialect, Ocpp16Dialect):
            payload = self.dialect.transaction_event(tx, "Updated", "ChargingStateChanged",
                                                     offline=not self.station.online, sample=self._sample(connector))
            self.station.enqueue(OutboxItem("TransactionEvent", lambda: payload))
        await self._set_state(connector, state)

    async def _meter_values(self, connector: Connector, tx: StationTransaction) -> None:
        while True:
            await asyncio.sleep(float(self.variables[("SampledDataCtrlr", "TxUpdatedInterval")][0]) * self.timers.scale)
            if tx.ended:
                return
            self._send_meter_values(connector, tx, "MeterValuePeriodic")

    def _send_meter_values(self, connector: Connector, tx: StationTransaction, trigger: str) -> None:
        sample = self._sample(connector, "Sample.Periodic" if trigger == "MeterValuePeriodic" else "Trigger")
        if isinstance(self.dialect, Ocpp16Dialect):
            dialect = self.dialect
            self.station.enqueue(OutboxItem("MeterValues", lambda: dialect.meter_values(tx, sample)))
        else:
            payload = self.dialect.transaction_event(tx, "Updated", trigger, offline=not self.station.online,
                                                     sample=sample)
            self.station.enqueue(OutboxItem("TransactionEvent", lambda: payload))

    async def _end_transaction(self, connector: Connector, trigger: str, reason: str) -> None:
        tx = connector.transaction
        assert tx is not None
        self._cancel(connector, "meter_task")
        tx.ended = True
        tx.charging_state = "EVConnected" if connector.plugged else "Idle"
        sample = self._sample(connector, "Transaction.End")
        if isinstance(self.dialect, Ocpp16Dialect):
            dialect = self.dialect
            reason16 = {"EVDisconnected": "EVDisconnected", "Remote": "Remote", "Local": "Local",
                        "ImmediateReset": "HardReset"}.get(reason, "Other")
            self.station.enqueue(OutboxItem("StopTransaction", lambda: dialect.stop_transaction(tx, sample, reason16)))
        else:
            payload = self.dialect.transaction_event(tx, "Ended", trigger, offline=not self.station.online,
                                                     sample=sample, stopped_reason=reason)
            self.station.enqueue(OutboxItem("TransactionEvent", lambda: payload))
        connector.transaction = None
        self.recorder.emit(Layer.OCPP, "StationTransactionEnded", f"EVSE {connector.evse_id} ends transaction "
                           f"{tx.transaction_id} ({trigger}, {reason})", src=EVSE,
                           keys={"transaction_id": tx.transaction_id, "evse_id": connector.evse_id})

    def _arm_connection_timer(self, connector: Connector) -> None:
        self._cancel(connector, "connection_timer")

        async def expire() -> None:
            await asyncio.sleep(self.timers.wait(self.settings.ev_connection_timeout))
            if connector.transaction is None and not connector.plugged:
                connector.authorization = None
                self.recorder.emit(Layer.OCPP, "EVConnectionTimeout", f"EVSE {connector.evse_id}: no EV within "
                                   "EVConnectionTimeOut, authorization dropped", src=EVSE,
                                   keys={"evse_id": connector.evse_id})
                await self._set_state(connector, ConnectorState.AVAILABLE)

        connector.connection_timer = asyncio.create_task(expire())

    @staticmethod
    def _cancel(connector: Connector, attribute: str) -> None:
        task = getattr(connector, attribute)
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        setattr(connector, attribute, None)

    # -- status reporting -----------------------------------------------------------------

    async def _set_state(self, connector: Connector, state: ConnectorState) -> None:
        if not connector.available:
            state = ConnectorState.UNAVAILABLE
        changed = state is not connector.state
        connector.state = state
        if changed:
            await self._report_status(connector)

    async def _report_status(self, connector: Connector) -> None:
        action, payload = self.dialect.status(connector.evse_id, connector.state)
        try:
            await self.station.send(action, payload)
        except OcppCallFailed:
            pass  # offline: the status is reported again when the station is back (on_online)

    async def _report_all_statuses(self) -> None:
        for connector in self.connectors.values():
            await self._report_status(connector)

    # -- requests from the CSMS ---------------------------------------------------------------

    def _handler(self, action: str) -> Handler | None:
        return self._handlers.get(action)

    def _handler_table(self) -> dict[str, Handler]:
        if self.version is OcppVersion.V16:
            table: dict[str, Callable[[IncomingCall], Awaitable[Reply]]] = {
                "RemoteStartTransaction": self._remote_start,
                "RemoteStopTransaction": self._remote_stop,
                "GetConfiguration": self._get_configuration,
                "ChangeConfiguration": self._change_configuration,
                "Reset": self._reset,
            }
        else:
            table = {
                "RequestStartTransaction": self._remote_start,
                "RequestStopTransaction": self._remote_stop,
                "GetVariables": self._get_variables,
                "SetVariables": self._set_variables,
                "Reset": self._reset,
            }
        table.update({
            "SetChargingProfile": self._set_charging_profile,
            "ClearChargingProfile": self._clear_charging_profile,
            "TriggerMessage": self._trigger_message,
            "ChangeAvailability": self._change_availability,
            "UnlockConnector": self._unlock_connector,
            "DataTransfer": self._data_transfer,
        })
        return table

    def _free_connector(self, evse_id: int | None) -> Connector | None:
        if evse_id:
            connector = self.connectors.get(evse_id)
            return connector if connector and connector.transaction is None and connector.available else None
        return next((c for c in self.connectors.values() if c.transaction is None and c.available), None)

    async def _remote_start(self, call: IncomingCall) -> Reply:
        """RequestStartTransaction (2.x, F01/F02) or RemoteStartTransaction (1.6)."""
        payload = call.payload
        if self.version is OcppVersion.V16:
            authorization = Authorization(payload["idTag"], "remote")
            evse_id = payload.get("connectorId")
        else:
            token = payload["idToken"]
            authorization = Authorization(token["idToken"], "remote", payload.get("remoteStartId"),
                                          token.get("type", "ISO14443"))
            evse_id = payload.get("evseId")
        connector = self._free_connector(evse_id)
        if connector is None:
            return Result({"status": "Rejected"})
        profile = payload.get("chargingProfile")
        if profile:
            connector.limit_amps = self._profile_limit(profile)

        async def start() -> None:
            if self.variables[("AuthCtrlr", "AuthorizeRemoteStart")][0] == "true":
                if await self._authorize(authorization.token, authorization.token_type) != "Accepted":
                    return
            await self._enqueue(connector, ("authorized", authorization, "RemoteStart"))

        return Result({"status": "Accepted"}, then=start)

    async def _remote_stop(self, call: IncomingCall) -> Reply:
        """RequestStopTransaction (2.x, F03) or RemoteStopTransaction (1.6, whose id is the CSMS's)."""
        wanted = call.payload["transactionId"]
        connector = next((c for c in self.connectors.values() if c.transaction is not None and wanted in
                          (c.transaction.transaction_id if self.version is not OcppVersion.V16 else None,
                           c.transaction.csms_id)), None)
        if connector is None:
            return Result({"status": "Rejected"})
        return Result({"status": "Accepted"},
                      then=lambda: self._enqueue(connector, ("stop", "RemoteStop", "Remote")))

    def _profile_limit(self, profile: dict[str, Any]) -> float | None:
        """The limit of the first period of the profile's first schedule, in A per phase.

        A full composite-schedule evaluation (stacking, validity, recurrence) is the smart
        charging suite's business; the reference EVSE applies the period in force at the start.
        """
        schedules = profile.get("chargingSchedule")
        schedule = schedules[0] if isinstance(schedules, list) else schedules
        if not schedule:
            return None
        periods = schedule.get("chargingSchedulePeriod") or []
        if not periods:
            return None
        limit = float(periods[0]["limit"])
        if schedule.get("chargingRateUnit") == "W":
            phases = periods[0].get("numberPhases", self.settings.phases)
            limit = limit / (self.settings.voltage * max(1, phases))
        return limit

    async def _set_charging_profile(self, call: IncomingCall) -> Reply:
        evse_id = call.payload.get("evseId", call.payload.get("connectorId", 0))
        profile = call.payload.get("chargingProfile", call.payload.get("csChargingProfiles"))
        targets = list(self.connectors.values()) if not evse_id else [self.connectors.get(evse_id)]
        if any(t is None for t in targets) or not profile:
            return Result({"status": "Rejected"})
        limit = self._profile_limit(profile)
        for connector in targets:
            assert connector is not None
            connector.limit_amps = limit
            await self._enqueue(connector, ("limit",))
        return Result({"status": "Accepted"})

    async def _clear_charging_profile(self, call: IncomingCall) -> Reply:
        for connector in self.connectors.values():
            connector.limit_amps = None
            await self._enqueue(connector, ("limit",))
        return Result({"status": "Accepted"})

    async def _trigger_message(self, call: IncomingCall) -> Reply:
        requested = call.payload["requestedMessage"]
        evse_id = (call.payload.get("evse") or {}).get("id") or call.payload.get("connectorId") or 1
        connector = self.connectors.get(evse_id)
        supported = {"BootNotification", "Heartbeat", "StatusNotification", "MeterValues", "TransactionEvent"}
        if requested not in supported or connector is None:
            return Result({"status": "NotImplemented" if requested not in supported else "Rejected"})
        return Result({"status": "Accepted"}, then=lambda: self._enqueue(connector, ("trigger", requested)))

    async def _triggered(self, connector: Connector, requested: str) -> None:
        try:
            await self._send_triggered(connector, requested)
        except OcppCallFailed as exc:
            self.recorder.emit(Layer.OCPP, "TriggeredMessageFailed", f"triggered {requested} not sent: {exc}",
                               src=EVSE, keys={"evse_id": connector.evse_id})

    async def _send_triggered(self, connector: Connector, requested: str) -> None:
        if requested == "BootNotification":
            await self.station.send("BootNotification", self.station._boot_payload())
        elif requested == "Heartbeat":
            await self.station.send("Heartbeat", {})
        elif requested == "StatusNotification":
            await self._report_status(connector)
        elif connector.transaction is not None:
            self._send_meter_values(connector, connector.transaction, "Trigger")
        elif requested == "MeterValues":
            sample = self._sample(connector, "Trigger")
            values = {"evseId": connector.evse_id, "meterValue": [
                {"timestamp": sample.timestamp, "sampledValue": self.dialect.sampled_values(sample)}]}
            if isinstance(self.dialect, Ocpp16Dialect):
                values = {"connectorId": connector.evse_id, "meterValue": values["meterValue"]}
            await self.station.send("MeterValues", values)

    async def _reset(self, call: IncomingCall) -> Reply:
        async def reboot() -> None:
            for connector in self.connectors.values():
                if connector.transaction is not None:
                    await self._enqueue(connector, ("stop", "ResetCommand", "ImmediateReset"))
            await asyncio.sleep(0)
            await self.station.reboot("RemoteReset")

        return Result({"status": "Accepted"}, then=reboot)

    async def _change_availability(self, call: IncomingCall) -> Reply:
        if self.version is OcppVersion.V16:
            evse_id, available = call.payload["connectorId"], call.payload["type"] == "Operative"
        else:
            evse_id = (call.payload.get("evse") or {}).get("id", 0)
            available = call.payload["operationalStatus"] == "Operative"
        targets = list(self.connectors.values()) if not evse_id else [self.connectors.get(evse_id)]
        if any(t is None for t in targets):
            return Result({"status": "Rejected"})
        if any(t.transaction is not None for t in targets if t is not None) and not available:
            return Result({"status": "Scheduled"})

        async def apply() -> None:
            for connector in targets:
                assert connector is not None
                connector.available = available
                await self._set_state(connector, ConnectorState.AVAILABLE if not connector.plugged
                                      else ConnectorState.PREPARING)

        return Result({"status": "Accepted"}, then=apply)

    async def _unlock_connector(self, call: IncomingCall) -> Reply:
        evse_id = call.payload.get("evseId", call.payload.get("connectorId"))
        connector = self.connectors.get(evse_id)
        if connector is None:
            return Result({"status": "UnknownConnector" if self.version is not OcppVersion.V16 else "NotSupported"})
        if connector.transaction is not None and self.version is not OcppVersion.V16:
            return Result({"status": "OngoingAuthorizedTransaction"})
        return Result({"status": "Unlocked"})

    async def _data_transfer(self, call: IncomingCall) -> Reply:
        return Result({"status": "UnknownVendorId"})

    # -- configuration ------------------------------------------------------------------------

    def _variable(self, key: tuple[str, str]) -> tuple[str, str]:
        value, mutability = self.variables[key]
        if key == _HEARTBEAT:  # the interval in force, which the CSMS may have set at boot
            value = str(int(round(self.station.heartbeat_interval / self.timers.scale)))
        return value, mutability

    def _set_variable(self, key: tuple[str, str], value: str) -> None:
        self.variables[key] = (value, self.variables[key][1])
        if key == _HEARTBEAT:
            self.station.set_heartbeat_interval(self.timers.wait(float(value)))

    async def _get_variables(self, call: IncomingCall) -> Reply:
        results = []
        for item in call.payload["getVariableData"]:
            component, variable = item["component"]["name"], item["variable"]["name"]
            entry = {"component": item["component"], "variable": item["variable"]}
            if item.get("attributeType", "Actual") != "Actual":
                results.append({**entry, "attributeStatus": "NotSupportedAttributeType"})
            elif (component, variable) in self.variables:
                value, mutability = self._variable((component, variable))
                if mutability == "WriteOnly":
                    results.append({**entry, "attributeStatus": "Rejected"})
                else:
                    results.append({**entry, "attributeStatus": "Accepted", "attributeValue": value})
            elif any(c == component for c, _ in self.variables):
                results.append({**entry, "attributeStatus": "UnknownVariable"})
            else:
                results.append({**entry, "attributeStatus": "UnknownComponent"})
        return Result({"getVariableResult": results})

    async def _set_variables(self, call: IncomingCall) -> Reply:
        results = []
        for item in call.payload["setVariableData"]:
            component, variable = item["component"]["name"], item["variable"]["name"]
            entry = {"component": item["component"], "variable": item["variable"]}
            key = (component, variable)
            if key not in self.variables:
                status = "UnknownVariable" if any(c == component for c, _ in self.variables) else "UnknownComponent"
            elif self.variables[key][1] == "ReadOnly":
                status = "Rejected"
            elif not _valid_value(key, item["attributeValue"]):
                status = "Rejected"
            else:
                self._set_variable(key, item["attributeValue"])
                status = "Accepted"
            results.append({**entry, "attributeStatus": status})
        return Result({"setVariableResult": results})

    async def _get_configuration(self, call: IncomingCall) -> Reply:
        keys = call.payload.get("key") or [_KEYS_16[k] for k in _KEYS_16 if k in self.variables]
        known, unknown = [], []
        by_name = {name: key for key, name in _KEYS_16.items()}
        for name in keys:
            key = by_name.get(name)
            if key is None or key not in self.variables:
                unknown.append(name)
                continue
            value, mutability = self._variable(key)
            known.append({"key": name, "readonly": mutability == "ReadOnly", "value": value})
        result: dict[str, Any] = {"configurationKey": known}
        if unknown:
            result["unknownKey"] = unknown
        return Result(result)

    async def _change_configuration(self, call: IncomingCall) -> Reply:
        by_name = {name: key for key, name in _KEYS_16.items()}
        key = by_name.get(call.payload["key"])
        if key is None:
            return Result({"status": "NotSupported"})
        if self.variables[key][1] == "ReadOnly" or not _valid_value(key, call.payload["value"]):
            return Result({"status": "Rejected"})
        self._set_variable(key, call.payload["value"])
        return Result({"status": "Accepted"})


# The reference EVSE's device model: (component, variable) -> (value, mutability). OCPP 2.0.1
# Part 2 Appendix "Standardized components and variables"; 1.6 keys in _KEYS_16.
def _device_model(settings: EvseSettings, timers: OcppTimers) -> dict[tuple[str, str], tuple[str, str]]:
    return {
        ("OCPPCommCtrlr", "HeartbeatInterval"): (str(int(OcppTimers().heartbeat_interval)), "ReadWrite"),
        ("OCPPCommCtrlr", "MessageTimeout"): (str(int(OcppTimers().message_timeout)), "ReadOnly"),
        ("SampledDataCtrlr", "TxUpdatedInterval"): (str(int(OcppTimers().meter_value_interval)), "ReadWrite"),
        ("SampledDataCtrlr", "TxUpdatedMeasurands"): (
            "Energy.Active.Import.Register,Energy.Active.Export.Register,Power.Active.Import,Power.Active.Export",
            "ReadWrite"),
        ("AuthCtrlr", "AuthorizeRemoteStart"): ("true" if settings.authorize_remote_start else "false", "ReadWrite"),
        ("AuthCtrlr", "OfflineTxForUnknownIdEnabled"): (
            "true" if settings.offline_tx_for_unknown_id else "false", "ReadWrite"),
        ("TxCtrlr", "TxStartPoint"): ("PowerPathClosed", "ReadOnly"),
        ("TxCtrlr", "TxStopPoint"): ("EVConnected,Authorized", "ReadOnly"),
        ("TxCtrlr", "EVConnectionTimeOut"): (str(int(settings.ev_connection_timeout)), "ReadWrite"),
        ("SecurityCtrlr", "Identity"): (settings.station_id, "ReadOnly"),
    }


_KEYS_16: dict[tuple[str, str], str] = {
    ("OCPPCommCtrlr", "HeartbeatInterval"): "HeartbeatInterval",
    ("SampledDataCtrlr", "TxUpdatedInterval"): "MeterValueSampleInterval",
    ("SampledDataCtrlr", "TxUpdatedMeasurands"): "MeterValuesSampledData",
    ("AuthCtrlr", "AuthorizeRemoteStart"): "AuthorizeRemoteTxRequests",
    ("AuthCtrlr", "OfflineTxForUnknownIdEnabled"): "AllowOfflineTxForUnknownId",
    ("TxCtrlr", "EVConnectionTimeOut"): "ConnectionTimeOut",
}

_HEARTBEAT = ("OCPPCommCtrlr", "HeartbeatInterval")
_INTEGER_VARIABLES = {_HEARTBEAT, ("SampledDataCtrlr", "TxUpdatedInterval"),
                      ("TxCtrlr", "EVConnectionTimeOut")}
_BOOLEAN_VARIABLES = {("AuthCtrlr", "AuthorizeRemoteStart"), ("AuthCtrlr", "OfflineTxForUnknownIdEnabled")}


def _valid_value(key: tuple[str, str], value: str) -> bool:
    if key in _INTEGER_VARIABLES:
        return value.isdigit() and int(value) > 0
    if key in _BOOLEAN_VARIABLES:
        return value in ("true", "false")
    return True
