"""The reference EVSE's answers to the CSMS's requests: one small handler per action, marked with
:func:`harness.ocpp.routing.answers` as the mock CSMS's are (:mod:`harness.ocpp.behaviour`).

A handler that names the actions of both generations (RemoteStartTransaction in 1.6,
RequestStartTransaction in 2.x) is offered for those the station's version defines; what the
versions say differently in the requests and answers is the dialect's. A handler answers at once;
what the request sets in motion runs after the answer is sent (``Result(..., then=...)``) or on
the connector's event queue.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Callable, Mapping

from harness.emulators.evse_connector import EVSE, Authorization, Connector, StatusReporter, enqueue
from harness.emulators.evse_device import AUTHORIZE_REMOTE_START, DeviceModel, EvseSettings
from harness.emulators.evse_smart import SmartCharging
from harness.emulators.evse_transactions import Transactions
from harness.ocpp import frames
from harness.ocpp.dialect import ConnectorState, StationDialect
from harness.ocpp.endpoint import Handler, IncomingCall, OcppCallFailed, Reply, Result
from harness.ocpp.routing import Answering, answers
from harness.ocpp.smart_charging import ChargingProfile, ProfileError
from harness.ocpp.station import StationClient
from harness.ocpp.versions import PNC_VENDOR_ID, OcppVersion
from harness.trace import Layer, Recorder

#: what TriggerMessage can ask for
_TRIGGERABLE = {"BootNotification", "Heartbeat", "StatusNotification", "MeterValues", "TransactionEvent"}


class StationHandlers(Answering):
    def __init__(self, recorder: Recorder, settings: EvseSettings, connectors: Mapping[int, Connector], *,
                 station: StationClient, dialect: StationDialect, device: DeviceModel,
                 transactions: Transactions, status: StatusReporter, smart: SmartCharging,
                 hlc: Callable[[], Any] = lambda: None) -> None:
        self.recorder = recorder
        #: the ISO 15118 side (harness.emulators.evse_hlc.EvseHlc) or None, asked when needed
        self.hlc = hlc
        self.settings = settings
        self.connectors = connectors
        self.station = station
        self.dialect = dialect
        self.device = device
        self.transactions = transactions
        self.status = status
        self.smart = smart
        self._handlers: dict[str, Handler] = {}
        for action in self.routes:
            handler = self.answer_for(action)
            if handler is not None and frames.is_known_action(action, station.version):
                self._handlers[action] = handler

    def handler(self, action: str) -> Handler | None:
        """The handler for an incoming action, None when the station does not answer it."""
        return self._handlers.get(action)

    # -- transactions (F01-F03, 1.6 Remote Start / Stop) -----------------------------------------

    def _free_connector(self, evse_id: int | None) -> Connector | None:
        if evse_id:
            connector = self.connectors.get(evse_id)
            return connector if connector and connector.transaction is None and connector.available else None
        return next((c for c in self.connectors.values() if c.transaction is None and c.available), None)

    @answers("RequestStartTransaction", "RemoteStartTransaction")
    async def remote_start(self, call: IncomingCall) -> Reply:
        """RequestStartTransaction (2.x, F01/F02) or RemoteStartTransaction (1.6)."""
        request = self.dialect.remote_start(call.payload)
        authorization = Authorization(request.id_token, "remote", request.remote_start_id, request.token_type)
        connector = self._free_connector(request.evse_id)
        if connector is None:
            return Result({"status": "Rejected"})
        profile = call.payload.get("chargingProfile")
        if profile:
            try:
                connector.start_profile = ChargingProfile.from_ocpp(profile)
            except ProfileError as exc:
                self.recorder.emit(Layer.OCPP, "ChargingProfileRefused", f"RequestStartTransaction's chargingProfile "
                                   f"is not used: {exc}", src=EVSE, payload={"reason": str(exc)})

        async def start() -> None:
            if self.device.value(AUTHORIZE_REMOTE_START) == "true":
                if await self.transactions.authorize(authorization.token, authorization.token_type) != "Accepted":
                    return
            await enqueue(connector, ("authorized", authorization, "RemoteStart"))

        return Result({"status": "Accepted"}, then=start)

    @answers("RequestStopTransaction", "RemoteStopTransaction")
    async def remote_stop(self, call: IncomingCall) -> Reply:
        """RequestStopTransaction (2.x, F03) or RemoteStopTransaction (1.6, whose id is the CSMS's)."""
        wanted = call.payload["transactionId"]
        connector = next((c for c in self.connectors.values()
                          if c.transaction is not None and self.dialect.refers_to(c.transaction, wanted)), None)
        if connector is None:
            return Result({"status": "Rejected"})
        return Result({"status": "Accepted"}, then=lambda: enqueue(connector, ("stop", "RemoteStop", "Remote")))

    # -- smart charging (K01, K05, K08, K09, K10) -------------------------------------------------

    @answers("SetChargingProfile")
    async def set_charging_profile(self, call: IncomingCall) -> Reply:
        evse_id = int(call.payload.get("evseId", call.payload.get("connectorId", 0)))
        raw = call.payload.get("chargingProfile", call.payload.get("csChargingProfiles"))
        status, why = await self.smart.set_profile(evse_id, raw or {})
        self.recorder.emit(Layer.OCPP, "ChargingProfileSet" if status == "Accepted" else "ChargingProfileRefused",
                           f"SetChargingProfile {status}: {why}", src=EVSE, payload={"status": status, "reason": why})
        answer: dict[str, Any] = {"status": status}
        if status != "Accepted" and self.station.version is not OcppVersion.V16:
            answer["statusInfo"] = {"reasonCode": "InvalidProfile", "additionalInfo": why[:512]}
        return Result(answer)

    @answers("UpdateDynamicSchedule")
    async def update_dynamic_schedule(self, call: IncomingCall) -> Reply:
        status, why = await self.smart.update_dynamic(int(call.payload["chargingProfileId"]),
                                                      call.payload.get("scheduleUpdate") or {})
        self.recorder.emit(Layer.OCPP, "DynamicScheduleUpdated" if status == "Accepted" else "DynamicScheduleRefused",
                           f"UpdateDynamicSchedule {status}: {why}", src=EVSE, payload={"status": status, "reason": why})
        answer: dict[str, Any] = {"status": status}
        if status != "Accepted":
            answer["statusInfo"] = {"reasonCode": "InvalidProfile", "additionalInfo": why[:512]}
        return Result(answer)

    @answers("ClearChargingProfile")
    async def clear_charging_profile(self, call: IncomingCall) -> Reply:
        payload = call.payload
        criteria = payload.get("chargingProfileCriteria") or {}
        status = await self.smart.clear(
            profile_id=payload.get("chargingProfileId", payload.get("id")),
            evse_id=criteria.get("evseId", payload.get("connectorId")),
            purpose=criteria.get("chargingProfilePurpose", payload.get("chargingProfilePurpose")),
            stack_level=criteria.get("stackLevel", payload.get("stackLevel")))
        return Result({"status": status})

    @answers("GetCompositeSchedule")
    async def get_composite_schedule(self, call: IncomingCall) -> Reply:
        evse_id = int(call.payload.get("evseId", call.payload.get("connectorId", 0)))
        try:
            start, schedule = self.smart.composite(evse_id, int(call.payload["duration"]),
                                                   call.payload.get("chargingRateUnit"))
        except KeyError:
            return Result({"status": "Rejected"})
        if self.station.version is OcppVersion.V16:
            return Result({"status": "Accepted", "connectorId": evse_id, "scheduleStart": start,
                           "chargingSchedule": {**schedule, "startSchedule": start}})
        return Result({"status": "Accepted", "schedule": {"evseId": evse_id, "scheduleStart": start, **schedule}})

    @answers("GetChargingProfiles")
    async def get_charging_profiles(self, call: IncomingCall) -> Reply:
        criteria = call.payload.get("chargingProfile") or {}
        found = self.smart.profiles(evse_id=call.payload.get("evseId"), purpose=criteria.get("chargingProfilePurpose"),
                                    stack_level=criteria.get("stackLevel"), ids=criteria.get("chargingProfileId"))
        if not found:
            return Result({"status": "NoProfiles"})
        request_id = call.payload["requestId"]

        async def report() -> None:
            evses = sorted(found)
            for index, evse in enumerate(evses):
                await self.station.send("ReportChargingProfiles", {
                    "requestId": request_id, "chargingLimitSource": "CSO", "evseId": evse,
                    "chargingProfile": found[evse], "tbc": index < len(evses) - 1})

        return Result({"status": "Accepted"}, then=report)

    # -- TriggerMessage (F06) ---------------------------------------------------------------------

    @answers("TriggerMessage")
    async def trigger_message(self, call: IncomingCall) -> Reply:
        requested = call.payload["requestedMessage"]
        if requested == "SignV2GCertificate":
            return self._renewal_trigger()
        evse_id = (call.payload.get("evse") or {}).get("id") or call.payload.get("connectorId") or 1
        connector = self.connectors.get(evse_id)
        if requested not in _TRIGGERABLE or connector is None:
            return Result({"status": "NotImplemented" if requested not in _TRIGGERABLE else "Rejected"})
        return Result({"status": "Accepted"}, then=lambda: enqueue(connector, ("trigger", requested)))

    async def triggered(self, connector: Connector, requested: str) -> None:
        """Send what a TriggerMessage asked for (run on the connector's event queue)."""
        try:
            await self._send_triggered(connector, requested)
        except OcppCallFailed as exc:
            self.recorder.emit(Layer.OCPP, "TriggeredMessageFailed", f"triggered {requested} not sent: {exc}",
                               src=EVSE, keys={"evse_id": connector.evse_id})

    async def _send_triggered(self, connector: Connector, requested: str) -> None:
        if requested == "BootNotification":
            await self.station.send("BootNotification", self.station.boot_payload())
        elif requested == "Heartbeat":
            await self.station.send("Heartbeat", {})
        elif requested == "StatusNotification":
            await self.status.report(connector)
        elif connector.transaction is not None:
            self.transactions.send_meter_values(connector, connector.transaction, "Trigger")
        elif requested == "MeterValues":
            sample = self.transactions.sample(connector, "Trigger")
            await self.station.send("MeterValues", self.dialect.idle_meter_values(connector.evse_id, sample))

    # -- availability and the station as a whole ------------------------------------------------

    @answers("Reset")
    async def reset(self, call: IncomingCall) -> Reply:
        async def reboot() -> None:
            for connector in self.connectors.values():
                if connector.transaction is not None:
                    await enqueue(connector, ("stop", "ResetCommand", "ImmediateReset"))
            await asyncio.sleep(0)
            await self.station.reboot("RemoteReset")

        return Result({"status": "Accepted"}, then=reboot)

    @answers("ChangeAvailability")
    async def change_availability(self, call: IncomingCall) -> Reply:
        evse_id, available = self.dialect.availability(call.payload)
        targets = list(self.connectors.values()) if not evse_id else [self.connectors.get(evse_id)]
        if any(t is None for t in targets):
            return Result({"status": "Rejected"})
        if any(t.transaction is not None for t in targets if t is not None) and not available:
            return Result({"status": "Scheduled"})

        async def apply() -> None:
            for connector in targets:
                assert connector is not None
                connector.available = available
                await self.status.set_state(connector, ConnectorState.AVAILABLE if not connector.plugged
                                            else ConnectorState.PREPARING)

        return Result({"status": "Accepted"}, then=apply)

    @answers("UnlockConnector")
    async def unlock_connector(self, call: IncomingCall) -> Reply:
        evse_id = call.payload.get("evseId", call.payload.get("connectorId"))
        connector = self.connectors.get(evse_id) if evse_id is not None else None
        return Result({"status": self.dialect.unlock_status(
            known=connector is not None, in_transaction=connector is not None and connector.transaction is not None)})

    @answers("DataTransfer")
    async def data_transfer(self, call: IncomingCall) -> Reply:
        # the OCA application note "Using ISO 15118 Plug & Charge with OCPP 1.6": TriggerMessage
        # (SignV2GCertificate) and CertificateSigned, the 2.0.1 messages as JSON text in data
        if call.payload.get("vendorId") != PNC_VENDOR_ID:
            return Result({"status": "UnknownVendorId"})
        message = call.payload.get("messageId")
        try:
            inner = json.loads(call.payload.get("data") or "")
        except (ValueError, RecursionError):
            inner = None
        if message not in ("TriggerMessage", "CertificateSigned", "GetInstalledCertificateIds", "InstallCertificate",
                           "DeleteCertificate"):
            return Result({"status": "UnknownMessageId"})
        if not isinstance(inner, dict):
            return Result({"status": "Rejected"})
        answer: Result
        if message in ("GetInstalledCertificateIds", "InstallCertificate", "DeleteCertificate"):
            answer = Result(self._roots_answer(message, inner))
        elif message == "TriggerMessage":
            if inner.get("requestedMessage") != "SignV2GCertificate":
                answer = Result({"status": "NotImplemented"})
            else:
                answer = self._renewal_trigger()
        else:
            answer = Result({"status": self._install(inner.get("certificateChain"))})
        return Result({"status": "Accepted", "data": json.dumps(answer.payload, separators=(",", ":"))},
                      then=answer.then)

    # -- installed roots (M03-M05) ------------------------------------------------------------------

    def _roots(self) -> Any:
        hlc = self.hlc()
        return hlc.roots if hlc is not None else None

    def _roots_answer(self, action: str, request: dict[str, Any]) -> dict[str, Any]:
        roots = self._roots()
        if action == "GetInstalledCertificateIds":
            found = roots.ids(request.get("certificateType")) if roots is not None else []
            return {"status": "Accepted", "certificateHashDataChain": found} if found else {"status": "NotFound"}
        if roots is None:
            status, why = ("Rejected" if action == "InstallCertificate" else "NotFound"), "no ISO 15118 side"
        elif action == "InstallCertificate":
            status, why = roots.install(request.get("certificateType"), request.get("certificate"))
        else:
            status, why = roots.delete(request.get("certificateHashData"))
        self.recorder.emit(Layer.OCPP, f"{action}Done", f"{action}: {status} ({why})", src=EVSE,
                           payload={"status": status, "reason": why})
        return {"status": status}

    @answers("GetInstalledCertificateIds", "InstallCertificate", "DeleteCertificate")
    async def installed_roots(self, call: IncomingCall) -> Reply:
        if call.version is OcppVersion.V16:
            # the 1.6 security whitepaper's messages manage the OCPP roots (CentralSystemRootCertificate,
            # ManufacturerRootCertificate), which this EVSE does not keep; the V2G and MO roots go
            # through the application note's DataTransfer
            return Result({"status": {"InstallCertificate": "Rejected"}.get(call.action, "NotFound")})
        return Result(self._roots_answer(call.action, call.payload))

    # -- SECC certificate (A03 with certificateType V2GCertificate) -------------------------------

    def _renewal_trigger(self) -> Result:
        hlc = self.hlc()
        if hlc is None or hlc.secc is None or hlc.secc.tls is None:
            return Result({"status": "Rejected"})  # no SECC with TLS to renew the certificate of
        async def renew() -> None:
            await self.renew_secc_certificate()

        return Result({"status": "Accepted"}, then=renew)

    async def renew_secc_certificate(self) -> str:
        """Send a CSR for a new SECC certificate; the CSMS's answer (Accepted or Rejected)."""
        action, payload = self.dialect.sign_secc_certificate(self.hlc().certificate_request())
        try:
            status = self.dialect.sign_status(await self.station.send(action, payload))
        except OcppCallFailed as exc:
            status = f"not sent ({exc})"
        self.recorder.emit(Layer.OCPP, "SeccCertificateRequested", f"SECC certificate request: {status}",
                           src=EVSE, payload={"status": status})
        return status

    @answers("CertificateSigned")
    async def certificate_signed(self, call: IncomingCall) -> Reply:
        # the reference EVSE renews its SECC certificate only; a 1.6 CertificateSigned (the security
        # whitepaper's) and a 2.x one without certificateType are for the station's OCPP certificate too
        if call.payload.get("certificateType") != "V2GCertificate":
            return Result({"status": "Rejected"})
        return Result({"status": self._install(call.payload.get("certificateChain"))})

    def _install(self, chain: Any) -> str:
        hlc = self.hlc()
        refusal = "no SECC" if hlc is None else hlc.awaits_secc_chain()
        invalid = None
        if refusal is None and hlc is not None:
            invalid = "certificateChain is not a string" if not isinstance(chain, str) else hlc.install_secc_chain(chain)
        if refusal is not None or invalid is not None:
            reason = refusal or invalid
            self.recorder.emit(Layer.OCPP, "SeccCertificateRefused", f"SECC certificate refused: {reason}",
                               src=EVSE, payload={"reason": reason})
            if invalid is not None:
                # A02/A03: a chain that fails the checks is discarded and reported as a security event
                self.station.security_event("station_certificate", f"V2GCertificate: {invalid}")
            return "Rejected"
        return "Accepted"

    # -- the device model (B06-B08, 1.6 Get/ChangeConfiguration) ----------------------------------

    @answers("GetVariables")
    async def get_variables(self, call: IncomingCall) -> Reply:
        return Result({"getVariableResult": self.device.get_variables(call.payload["getVariableData"])})

    @answers("SetVariables")
    async def set_variables(self, call: IncomingCall) -> Reply:
        return Result({"setVariableResult": self.device.set_variables(call.payload["setVariableData"])})

    @answers("GetConfiguration")
    async def get_configuration(self, call: IncomingCall) -> Reply:
        return Result(self.device.get_configuration(call.payload.get("key")))

    @answers("ChangeConfiguration")
    async def change_configuration(self, call: IncomingCall) -> Reply:
        return Result({"status": self.device.change_configuration(call.payload["key"], call.payload["value"])})
