"""The reference EVSE's transactions: authorizing a token, and what the station reports from the
start of a transaction to its end (meter values on the way).

OCPP 2.0.1 with TxStartPoint=PowerPathClosed and TxStopPoint=EVConnected,Authorized; on 1.6 the
same events become StartTransaction / MeterValues / StopTransaction. The version's messages are
the dialect's (:mod:`harness.ocpp.dialect`); transaction messages go through the station's outbox,
so they are delivered in order, online or later.
"""

from __future__ import annotations

import asyncio
import uuid

from harness.emulators.evse_connector import EVSE, Connector, StatusReporter, cancel_task, duty
from harness.emulators.evse_device import CONTRACT_VALIDATION_OFFLINE, TX_UPDATED_INTERVAL, DeviceModel, EvseSettings
from harness.ocpp.dialect import ConnectorState, MeterSample, StationDialect, StationTransaction
from harness.ocpp.endpoint import ConnectionLost, OcppCallFailed
from harness.ocpp.iso15118_failures import Failure
from harness.ocpp.station import StationClient
from harness.ocpp.timing import OcppTimers, timestamp
from harness.trace import Layer, Recorder


class Transactions:
    def __init__(self, recorder: Recorder, settings: EvseSettings, *, station: StationClient,
                 dialect: StationDialect, timers: OcppTimers, device: DeviceModel, status: StatusReporter) -> None:
        self.recorder = recorder
        self.settings = settings
        self.station = station
        self.dialect = dialect
        self.timers = timers
        self.device = device
        self.status = status

    async def authorize(self, token: str, token_type: str) -> str:
        """Authorize a token with the CSMS, offline by local policy. Returns the status."""
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

    async def authorize_contract(self, emaid: str, *, certificate: str | None = None,
                                 hash_data: list[dict[str, str]] | None = None) -> tuple[str, str | None]:
        """Plug & Charge through the CSMS (C07): (idToken status, certificateStatus). Offline, a
        contract the station validated itself (hash data) is accepted only with
        ContractValidationOffline true; one it could not validate never is."""
        action, payload = self.dialect.contract_authorize(emaid, certificate=certificate, hash_data=hash_data)
        try:
            response = await self.station.send(action, payload)
        except ConnectionLost:
            offline_ok = hash_data is not None and self.device.value(CONTRACT_VALIDATION_OFFLINE) == "true"
            status = "Accepted" if offline_ok else "Invalid"
            self.recorder.emit(Layer.OCPP, "OfflineAuthorization", f"offline: contract {emaid} {status} by local "
                               "policy (ContractValidationOffline)", src=EVSE, keys={"id_token": emaid})
            return status, None
        except (OcppCallFailed, ValueError) as exc:  # ValueError: the request did not pass its own schema
            self.recorder.emit(Layer.OCPP, "ContractAuthorizationFailed", f"contract {emaid} not authorized: {exc}",
                               src=EVSE, keys={"id_token": emaid})
            return "Invalid", None
        return self.dialect.contract_verdict(response)

    async def ev_certificate(self, schema_version: str, action: str, exi_request: str) -> tuple[str, str | None]:
        """Get15118EVCertificate: (status, exiResponse); offline or refused: ("Failed", None)."""
        request, payload = self.dialect.ev_certificate(schema_version, action, exi_request)
        try:
            response = await self.station.send(request, payload)
        except (ConnectionLost, OcppCallFailed, ValueError) as exc:
            self.recorder.emit(Layer.OCPP, "EvCertificateUnavailable", f"Get15118EVCertificate {action} not "
                               f"answered: {exc}", src=EVSE)
            return "Failed", None
        return self.dialect.ev_certificate_answer(response)

    def sample(self, connector: Connector, context: str = "Sample.Periodic") -> MeterSample:
        reading = connector.line.read()
        offset = (self.settings.misbehave.meter_clock_offset_s
                  if context not in ("Transaction.Begin", "Transaction.End") else 0.0)
        return MeterSample(timestamp(offset), reading.imported_wh, reading.exported_wh, reading.power, connector.soc, context)

    async def start(self, connector: Connector, trigger: str) -> None:
        """Start a transaction for the connector's authorization, offer current and meter it."""
        authorization = connector.authorization
        assert authorization is not None
        sample = self.sample(connector, "Transaction.Begin")
        misbehave = self.settings.misbehave
        tx = StationTransaction(transaction_id=misbehave.transaction_id or uuid.uuid4().hex[:20],
                                evse_id=connector.evse_id, id_token=misbehave.id_token or authorization.token,
                                started=sample.timestamp,
                                meter_start_wh=sample.imported_wh, begin_sample=sample,
                                remote_start_id=authorization.remote_start_id, token_type=authorization.token_type)
        connector.transaction = tx
        self.station.enqueue(self.dialect.transaction_started(tx, trigger, offline=not self.station.online,
                                                              sample=sample))
        self.recorder.emit(Layer.OCPP, "StationTransactionStarted", f"EVSE {connector.evse_id} starts transaction "
                           f"{tx.transaction_id} for {authorization.token} ({trigger})", src=EVSE,
                           keys={"transaction_id": tx.transaction_id, "id_token": authorization.token,
                                 "evse_id": connector.evse_id})
        await self.status.set_state(connector, ConnectorState.PREPARING)
        await connector.pilot.set_duty(duty(connector))
        connector.meter_task = asyncio.create_task(self._meter_values(connector, tx))

    async def charging_state(self, connector: Connector, state: ConnectorState) -> None:
        """Move the connector to ``state``, reporting the transaction's charging state if it changed."""
        tx = connector.transaction
        if tx is None or state.charging_state == tx.charging_state:
            await self.status.set_state(connector, state)
            return
        before, tx.charging_state = tx.charging_state, state.charging_state
        # a sample taken at the change, not periodically: the start or end of an interruption
        context = ("Interruption.Begin" if tx.charging_state.startswith("Suspended")
                   else "Interruption.End" if before.startswith("Suspended") else "Other")
        item = self.dialect.charging_state_changed(tx, offline=not self.station.online,
                                                   sample=lambda: self.sample(connector, context))
        if item is not None:
            self.station.enqueue(item)
        await self.status.set_state(connector, state)

    async def iso15118_failure(self, connector: Connector, failure: Failure) -> None:
        """The ISO 15118 session failed while the transaction runs: the power path opens and the
        station reports it as :mod:`harness.ocpp.iso15118_failures` says (2.x TransactionEvent with
        the row's triggerReason; 1.6 StatusNotification with its errorCode)."""
        tx = connector.transaction
        if tx is None:
            return
        connector.line.set(contactor_closed=False)
        state = ConnectorState(failure.state)
        tx.charging_state = state.charging_state
        item = self.dialect.iso15118_failure(tx, failure, offline=not self.station.online,
                                             sample=lambda: self.sample(connector, "Other"))
        if item is not None:
            self.station.enqueue(item)
        self.recorder.emit(Layer.OCPP, "Iso15118FailureReported", f"EVSE {connector.evse_id}: {failure.iso15118}: "
                           f"reported as {failure.report(self.station.version.value).describe()}",
                           src=EVSE, payload={"failure": failure.id}, keys={"transaction_id": tx.transaction_id,
                                                                            "evse_id": connector.evse_id})
        await self.status.set_state(connector, state, error_code=failure.ocpp16.fields.get("errorCode", "NoError"))

    def operation_mode(self, connector: Connector, mode: str) -> None:
        """The charging profiles put the transaction in another operation mode (OCPP 2.1)."""
        tx = connector.transaction
        if tx is None or tx.operation_mode == mode:
            return
        tx.operation_mode = mode
        item = self.dialect.operation_mode_changed(tx, offline=not self.station.online,
                                                   sample=lambda: self.sample(connector, "Other"))
        if item is not None:
            self.station.enqueue(item)

    async def _meter_values(self, connector: Connector, tx: StationTransaction) -> None:
        while True:
            await asyncio.sleep(float(self.device.value(TX_UPDATED_INTERVAL)) * self.timers.scale)
            if tx.ended:
                return
            self.send_meter_values(connector, tx, "MeterValuePeriodic")

    def send_meter_values(self, connector: Connector, tx: StationTransaction, trigger: str) -> None:
        sample = self.sample(connector, "Sample.Periodic" if trigger == "MeterValuePeriodic" else "Trigger")
        self.station.enqueue(self.dialect.transaction_updated(tx, trigger, offline=not self.station.online,
                                                              sample=sample))

    async def end(self, connector: Connector, trigger: str, reason: str) -> None:
        """End the connector's transaction (TxStopPoint); ``trigger`` and ``reason`` in 2.x's words."""
        tx = connector.transaction
        assert tx is not None
        cancel_task(connector, "meter_task")
        tx.ended = True
        tx.charging_state = "EVConnected" if connector.plugged else "Idle"
        sample = self.sample(connector, "Transaction.End")
        self.station.enqueue(self.dialect.transaction_ended(tx, trigger, reason, offline=not self.station.online,
                                                            sample=sample))
        connector.transaction = None
        self.recorder.emit(Layer.OCPP, "StationTransactionEnded", f"EVSE {connector.evse_id} ends transaction "
                           f"{tx.transaction_id} ({trigger}, {reason})", src=EVSE,
                           keys={"transaction_id": tx.transaction_id, "evse_id": connector.evse_id})
