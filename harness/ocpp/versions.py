"""OCPP versions, their WebSocket subprotocols, and which side sends which action."""

from __future__ import annotations

import enum
from typing import Iterable, Sequence


class OcppVersion(enum.StrEnum):
    V16 = "1.6"
    V201 = "2.0.1"
    V21 = "2.1"

    @property
    def subprotocol(self) -> str:
        """The Sec-WebSocket-Protocol token (OCPP-J 1.6 §3.1.2, OCPP 2.0.1 Part 4 §3.1.2)."""
        return f"ocpp{self.value}"

    @property
    def schema_package(self) -> str:
        """The ``ocpp`` library's sub-package holding this version's JSON schemas."""
        return "v" + self.value.replace(".", "")

    @classmethod
    def from_subprotocol(cls, token: str) -> "OcppVersion | None":
        for version in cls:
            if version.subprotocol == token:
                return version
        return None

    @classmethod
    def parse(cls, text: str) -> "OcppVersion":
        """Accepts "1.6", "1.6J", "ocpp1.6", "2.0.1", "ocpp2.0.1", "2.1"."""
        cleaned = str(text).strip().lower().removeprefix("ocpp").removesuffix("j")
        for version in cls:
            if version.value == cleaned:
                return version
        raise ValueError(f"unknown OCPP version {text!r} (known: 1.6, 2.0.1, 2.1)")


def negotiate(offered: Sequence[str], supported: Iterable[OcppVersion]) -> OcppVersion | None:
    """The version to speak: the first of ``supported`` (the server's preference) that the
    client offered. None when nothing matches, in which case the server must refuse the
    WebSocket upgrade (OCPP 2.0.1 Part 4 §3.1.2)."""
    tokens = set(offered)
    for version in supported:
        if version.subprotocol in tokens:
            return version
    return None


# Actions a charging station initiates, i.e. the ones a CSMS answers. Everything else a version
# defines travels the other way. (OCPP 1.6 §4 with the security whitepaper; OCPP 2.0.1 and 2.1
# Part 2, "Messages" per functional block.)
STATION_ACTIONS: dict[OcppVersion, frozenset[str]] = {
    OcppVersion.V16: frozenset({
        "Authorize", "BootNotification", "DataTransfer", "DiagnosticsStatusNotification",
        "FirmwareStatusNotification", "Heartbeat", "MeterValues", "StartTransaction",
        "StatusNotification", "StopTransaction",
        # security whitepaper
        "LogStatusNotification", "SecurityEventNotification", "SignCertificate",
        "SignedFirmwareStatusNotification",
    }),
    OcppVersion.V201: frozenset({
        "Authorize", "BootNotification", "ClearedChargingLimit", "DataTransfer",
        "FirmwareStatusNotification", "Get15118EVCertificate", "GetCertificateStatus", "Heartbeat",
        "LogStatusNotification", "MeterValues", "NotifyChargingLimit", "NotifyCustomerInformation",
        "NotifyDisplayMessages", "NotifyEVChargingNeeds", "NotifyEVChargingSchedule", "NotifyEvent",
        "NotifyMonitoringReport", "NotifyReport", "PublishFirmwareStatusNotification",
        "ReportChargingProfiles", "ReservationStatusUpdate", "SecurityEventNotification",
        "SignCertificate", "StatusNotification", "TransactionEvent",
    }),
}
STATION_ACTIONS[OcppVersion.V21] = STATION_ACTIONS[OcppVersion.V201] | frozenset({
    "BatterySwap", "ClosePeriodicEventStream", "GetCertificateChainStatus", "NotifyDERAlarm",
    "NotifyDERStartStop", "NotifyPeriodicEventStream", "NotifyPriorityCharging", "NotifySettlement",
    "NotifyWebPaymentStarted", "OpenPeriodicEventStream", "PullDynamicScheduleUpdate",
    "ReportDERControl", "VatNumberValidation",
})


#: OCPP 1.6J has no Plug & Charge messages; the OCA application note "Using ISO 15118 Plug & Charge
#: with OCPP 1.6" carries the OCPP 2.0.1 ones (simplified) as JSON text in DataTransfer.data under
#: this vendorId, the 2.0.1 action name as messageId
PNC_VENDOR_ID = "org.openchargealliance.iso15118pnc"

