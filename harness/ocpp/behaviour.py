"""The mock CSMS's default answers: one small handler per action.

A behaviour change for a test is a scripted rule (:mod:`harness.ocpp.script`); a change of what a
well-behaved CSMS answers is one handler here. Handlers return payloads that satisfy the
version's response schema (a test checks every one of them).
"""

from __future__ import annotations

import datetime as _dt
import itertools
import threading
from typing import Any, Mapping

from harness.ocpp.endpoint import Handler, IncomingCall, Result
from harness.ocpp.routing import Answering, answers
from harness.ocpp.versions import STATION_ACTIONS, OcppVersion

_V16 = OcppVersion.V16


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class CsmsBehaviour(Answering):
    """What a conforming, cooperative CSMS answers: one method per action, marked with
    :func:`~harness.ocpp.routing.answers`.

    ``id_tokens`` maps token -> authorization status ("Accepted", "Blocked", "Invalid",
    "Expired"...); tokens not in it get ``unknown_token_status``.
    """

    def __init__(self, *, heartbeat_interval: int = 300, id_tokens: Mapping[str, str] | None = None,
                 unknown_token_status: str = "Accepted") -> None:
        self.heartbeat_interval = heartbeat_interval
        self.id_tokens = dict(id_tokens or {})
        self.unknown_token_status = unknown_token_status
        self._transaction_ids = itertools.count(1)
        self._lock = threading.Lock()

    def handler(self, action: str, version: OcppVersion) -> Handler | None:
        method = self.answer_for(action)
        if method is None or action not in STATION_ACTIONS[version]:
            return None

        async def answer(call: IncomingCall) -> Result:
            return Result(method(call))

        return answer

    def token_status(self, token: str | None) -> str:
        if token is None:
            return "Accepted"
        return self.id_tokens.get(token, self.unknown_token_status)

    def _token_info(self, call: IncomingCall, token: str | None) -> dict[str, Any]:
        status = self.token_status(token)
        if call.version is _V16:
            # 1.6 has no "Unknown" and calls it idTagInfo
            return {"idTagInfo": {"status": status if status != "Unknown" else "Invalid"}}
        return {"idTokenInfo": {"status": status}}

    # -- provisioning --------------------------------------------------------------------

    @answers("BootNotification")
    def boot_notification(self, call: IncomingCall) -> dict[str, Any]:
        return {"currentTime": utc_now(), "interval": self.heartbeat_interval, "status": "Accepted"}

    @answers("Heartbeat")
    def heartbeat(self, call: IncomingCall) -> dict[str, Any]:
        return {"currentTime": utc_now()}

    # -- authorization and transactions ---------------------------------------------------

    @answers("Authorize")
    def authorize(self, call: IncomingCall) -> dict[str, Any]:
        token = call.payload.get("idTag") if call.version is _V16 else call.payload["idToken"]["idToken"]
        return self._token_info(call, token)

    @answers("StartTransaction")
    def start_transaction(self, call: IncomingCall) -> dict[str, Any]:
        with self._lock:
            transaction_id = next(self._transaction_ids)
        return {"transactionId": transaction_id, **self._token_info(call, call.payload["idTag"])}

    @answers("StopTransaction")
    def stop_transaction(self, call: IncomingCall) -> dict[str, Any]:
        token = call.payload.get("idTag")
        return self._token_info(call, token) if token is not None else {}

    @answers("TransactionEvent")
    def transaction_event(self, call: IncomingCall) -> dict[str, Any]:
        token = call.payload.get("idToken")
        # E01.FR.xx/C: idTokenInfo is returned when the request carried an idToken
        return self._token_info(call, token["idToken"]) if token else {}

    # -- everything a CSMS simply acknowledges ---------------------------------------------

    @answers("StatusNotification", "MeterValues", "NotifyEvent", "NotifyReport", "NotifyMonitoringReport",
             "SecurityEventNotification", "FirmwareStatusNotification", "LogStatusNotification",
             "DiagnosticsStatusNotification", "SignedFirmwareStatusNotification", "NotifyChargingLimit",
             "ClearedChargingLimit", "ReportChargingProfiles", "ReservationStatusUpdate",
             "NotifyCustomerInformation", "NotifyDisplayMessages", "PublishFirmwareStatusNotification",
             "NotifyPeriodicEventStream", "NotifyDERAlarm", "NotifyDERStartStop", "ReportDERControl")
    def acknowledge(self, call: IncomingCall) -> dict[str, Any]:
        return {}

    @answers("NotifyEVChargingNeeds", "NotifyEVChargingSchedule")
    def accept_ev_information(self, call: IncomingCall) -> dict[str, Any]:
        return {"status": "Accepted"}

    @answers("DataTransfer")
    def data_transfer(self, call: IncomingCall) -> dict[str, Any]:
        # OCPP 1.6 §4.3 / 2.0.1 P01: a receiver that does not know the vendorId says so
        return {"status": "UnknownVendorId"}

