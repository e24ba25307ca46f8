"""The reference EVSE: a charging station that stands in for a DUT on emulated rigs.

Physical side: one pilot line, contactor and power flow per EVSE (connector 1 each), a current
limit from the hardware and from charging profiles. Protocol side: the OCPP station client, in
the version the rig asks for. Its behaviour follows OCPP 2.0.1 with TxStartPoint=PowerPathClosed
(a transaction starts when the EV is connected *and* authorized) and TxStopPoint=EVConnected,
Authorized (it ends when the EV leaves or authorization ends); on 1.6 the same events become
StartTransaction / MeterValues / StopTransaction.

:class:`ReferenceEvse` composes the parts:

- :mod:`harness.emulators.evse_connector`: the connectors and their state machine (each
  connector processes its events one at a time in its own task, so the order of what the
  station reports always matches the order of what happened), and the status they report;
- :mod:`harness.emulators.evse_transactions`: authorization and the transaction messages;
- :mod:`harness.emulators.evse_handlers`: the answers to the CSMS's requests;
- :mod:`harness.emulators.evse_device`: the settings and the device model (variables, 1.6
  configuration keys).

What OCPP 1.6 and 2.x say differently is the dialect's (:mod:`harness.ocpp.dialect`), chosen once
from the version.
"""

from __future__ import annotations

from typing import Any

from harness.emulators.evse_connector import EVSE, Authorization, Connector, ConnectorMachine, StatusReporter, enqueue
from harness.emulators.evse_connector import duty as _duty
from harness.emulators.evse_device import DeviceModel, EvseSettings
from harness.emulators.evse_handlers import StationHandlers
from harness.emulators.evse_smart import SmartCharging
from harness.emulators.evse_transactions import Transactions
from harness.emulators.power import PowerFlow
from harness.iec61851.pilot import NO_PWM, SimulatedPilot
from harness.ocpp.dialect import dialect_for
from harness.ocpp.endpoint import ConnectionLost, Handler, OcppCallFailed
from harness.ocpp.station import CsmsLink, StationClient
from harness.ocpp.timing import OcppTimers
from harness.ocpp.versions import OcppVersion
from harness.trace import Layer, Recorder

__all__ = ["Authorization", "Connector", "EvseSettings", "ReferenceEvse"]


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
        self.station = StationClient(recorder, station_id=settings.station_id, link=link,
                                     identity=settings.identity, timers=timers, handlers=self._handler,
                                     on_online=self._back_online, on_offline=self._gone_offline,
                                     boot_reason=settings.misbehave.boot_reason or "PowerUp")
        self.device = DeviceModel(settings, self.station, timers)
        #: (component, variable) -> (value, mutability): the device model's variables
        self.variables = self.device.variables
        self.status = StatusReporter(self.station, self.dialect, self.connectors)
        self.transactions = Transactions(recorder, settings, station=self.station, dialect=self.dialect,
                                         timers=timers, device=self.device, status=self.status)
        v16 = link.version is OcppVersion.V16
        self.smart = SmartCharging(recorder, self.connectors, voltage=settings.voltage, phases=settings.phases,
                                   transaction_key=lambda tx: str(tx.csms_id) if v16 else tx.transaction_id,
                                   puller=None if link.version is not OcppVersion.V21 else self._pull_schedule)
        self.handlers = StationHandlers(recorder, settings, self.connectors, station=self.station,
                                        dialect=self.dialect, device=self.device, transactions=self.transactions,
                                        status=self.status, smart=self.smart, hlc=lambda: self.machine.hlc)
        self.machine = ConnectorMachine(recorder, self.connectors, timers=timers,
                                        ev_connection_timeout=settings.ev_connection_timeout, status=self.status,
                                        transactions=self.transactions, triggered=self.handlers.triggered, hlc=hlc)

    @property
    def hlc(self) -> Any:
        """The ISO 15118 side (harness.emulators.evse_hlc.EvseHlc), when the EVSE has one."""
        return self.machine.hlc

    @hlc.setter
    def hlc(self, hlc: Any) -> None:
        self.machine.hlc = hlc

    def _handler(self, action: str) -> Handler | None:
        return self.handlers.handler(action)

    async def _back_online(self) -> None:
        await self.smart.connection_changed(True)
        await self.status.report_all()

    async def _gone_offline(self) -> None:
        await self.smart.connection_changed(False)

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        self.machine.start()
        self.station.start()
        if self.hlc is not None:
            await self.hlc.start(self)

    async def make_safe(self, timeout: float) -> None:
        """Open every contactor, end every transaction and try to deliver what is queued."""
        for connector in self.connectors.values():
            connector.line.set(contactor_closed=False)
            await connector.pilot.set_duty(NO_PWM)
            if connector.transaction is not None:
                await self.transactions.end(connector, "AbnormalCondition", "Other")
        try:
            await self.station.drained(timeout)
        except TimeoutError:
            self.recorder.emit(Layer.RIG, "EvseQueueNotDrained", f"{self.station.queued} transaction "
                               "messages still queued at teardown", src=EVSE)

    async def power_cut(self) -> None:
        """The mains supply is gone: the CSMS connection drops without a word, then everything
        else stops (a fresh :class:`ReferenceEvse` is the charger powered up again)."""
        await self.station.power_cut()
        self.recorder.emit(Layer.RIG, "EvsePowerCut", "reference EVSE: mains supply off", src=EVSE)
        await self.stop()

    async def stop(self) -> None:
        await self.smart.stop()
        await self.machine.stop()
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
            await enqueue(connector, ("stop", "StopAuthorized", "Local"))
            return "Accepted"
        status = await self.authorize(token, token_type)
        if status == "Accepted":
            await enqueue(connector, ("authorized", Authorization(token, "local", token_type=token_type),
                                      "Authorized"))
        return status

    async def authorize(self, token: str, token_type: str) -> str:
        """Authorize a token with the CSMS (offline by local policy); the status."""
        return await self.transactions.authorize(token, token_type)

    async def authorize_contract(self, emaid: str, *, certificate: str | None = None,
                                 hash_data: list[dict[str, str]] | None = None) -> tuple[str, str | None]:
        """Plug & Charge through the CSMS: (idToken status, certificateStatus)."""
        return await self.transactions.authorize_contract(emaid, certificate=certificate, hash_data=hash_data)

    async def notify(self, action: str, payload: dict[str, Any]) -> None:
        """Tell the CSMS what the EV said (2.x NotifyEVChargingNeeds, NotifyEVChargingSchedule);
        the CSMS's answer, or why it could not be sent, is on the timeline."""
        evse_id = payload.get("evseId")
        try:
            answer = await self.station.send(action, payload)
        except (ConnectionLost, OcppCallFailed) as exc:
            self.recorder.emit(Layer.OCPP, "EvNotificationNotSent", f"{action} not sent: {exc}", src=EVSE,
                               keys={"evse_id": evse_id})
            return
        self.recorder.emit(Layer.OCPP, "EvNotificationSent", f"EVSE {evse_id}: {action} answered "
                           f"{answer.get('status')}", src=EVSE, payload={"action": action, "status": answer.get("status")},
                           keys={"evse_id": evse_id})

    async def _pull_schedule(self, profile_id: int) -> dict[str, Any] | None:
        """PullDynamicScheduleUpdate for a Dynamic profile (OCPP 2.1): the CSMS's answer, or None
        when the CSMS could not be asked (on the timeline, with the reason)."""
        try:
            return await self.station.send("PullDynamicScheduleUpdate", {"chargingProfileId": profile_id})
        except (ConnectionLost, OcppCallFailed) as exc:
            self.recorder.emit(Layer.OCPP, "DynamicScheduleNotPulled", f"PullDynamicScheduleUpdate for profile "
                               f"{profile_id} not answered: {exc}", src=EVSE, payload={"profile_id": profile_id})
            return None

    async def ev_certificate(self, schema_version: str, action: str, exi_request: str) -> tuple[str, str | None]:
        """An EV's contract installation or update through the CSMS: (status, exiResponse)."""
        return await self.transactions.ev_certificate(schema_version, action, exi_request)

    def duty(self, connector: Connector) -> float:
        """The PWM duty cycle the connector shows (see :func:`harness.emulators.evse_connector.duty`)."""
        return _duty(connector)
