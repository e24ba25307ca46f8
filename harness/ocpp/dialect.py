"""How a charging station says the same things in OCPP 1.6 and in 2.0.1 / 2.1.

The reference EVSE thinks in one vocabulary (a connector became occupied, a transaction started,
here is a meter sample, the CSMS asks for a remote start); a dialect turns that into the
version's messages and reads the version's requests back into it. 2.1 keeps 2.0.1's transaction
and status messages, so both use :class:`Ocpp2Dialect`. Every difference between the versions
that the station's code would otherwise branch on lives here; the station picks its dialect once
(:func:`dialect_for`).
"""

from __future__ import annotations

import abc
import datetime as _dt
import enum
import json
from dataclasses import dataclass
from typing import Any, Callable

from harness.ocpp.station import OutboxItem
from harness.ocpp.timing import timestamp
from harness.ocpp.versions import PNC_VENDOR_ID, OcppVersion


class ConnectorState(enum.Enum):
    """What a connector is doing, in the richer 1.6 vocabulary; 2.x reports less detail."""

    AVAILABLE = "Available"
    PREPARING = "Preparing"  # plugged in or authorized, no energy yet
    CHARGING = "Charging"
    SUSPENDED_EV = "SuspendedEV"
    SUSPENDED_EVSE = "SuspendedEVSE"
    FINISHING = "Finishing"  # transaction over, cable still in
    UNAVAILABLE = "Unavailable"
    FAULTED = "Faulted"

    @property
    def v2(self) -> str:
        """OCPP 2.x ConnectorStatusEnumType."""
        if self is ConnectorState.AVAILABLE:
            return "Available"
        if self in (ConnectorState.UNAVAILABLE, ConnectorState.FAULTED):
            return self.value
        return "Occupied"

    @property
    def charging_state(self) -> str:
        """OCPP 2.x ChargingStateEnumType for a connector with a transaction."""
        return {ConnectorState.CHARGING: "Charging", ConnectorState.SUSPENDED_EV: "SuspendedEV",
                ConnectorState.SUSPENDED_EVSE: "SuspendedEVSE",
                ConnectorState.AVAILABLE: "Idle"}.get(self, "EVConnected")


@dataclass(frozen=True)
class MeterSample:
    """One reading of the station's own meter."""

    timestamp: str
    imported_wh: float
    exported_wh: float
    power_w: float
    soc: float | None = None  # percent, when the EV tells it (ISO 15118)
    context: str = "Sample.Periodic"


@dataclass
class StationTransaction:
    """A transaction as the station keeps it. ``transaction_id`` is the station's own id (2.x);
    on 1.6 ``csms_id`` is the integer the CSMS assigned once StartTransaction got through."""

    transaction_id: str
    evse_id: int
    id_token: str | None
    started: str
    meter_start_wh: float
    #: the meter reading at the start, which 1.6 can only report with the StopTransaction
    begin_sample: "MeterSample | None" = None
    remote_start_id: int | None = None
    csms_id: int | None = None
    seq_no: int = 0
    ended: bool = False
    charging_state: str = "EVConnected"
    token_type: str = "ISO14443"
    #: OCPP 2.1 OperationModeEnumType the transaction runs in (the charging profiles' mode)
    operation_mode: str = "ChargingOnly"

    def next_seq(self) -> int:
        value = self.seq_no
        self.seq_no += 1
        return value


@dataclass(frozen=True)
class RemoteStart:
    """A remote start request (1.6 RemoteStartTransaction, 2.x RequestStartTransaction) as the
    station reads it."""

    id_token: str
    token_type: str = "ISO14443"
    remote_start_id: int | None = None
    evse_id: int | None = None  # None: any free EVSE




class StationDialect(abc.ABC):
    """What a station says and reads differently per version."""

    version_family: str

    # -- what the station sends -------------------------------------------------------------

    @abc.abstractmethod
    def status(self, evse_id: int, state: ConnectorState, *, error_code: str = "NoError") -> tuple[str, dict[str, Any]]:
        """The StatusNotification for a connector's state (``error_code``: 1.6 ChargePointErrorCode)."""

    @abc.abstractmethod
    def authorize(self, token: str, token_type: str = "ISO14443") -> tuple[str, dict[str, Any]]:
        """The Authorize request for a token."""

    @abc.abstractmethod
    def authorization_status(self, response: dict[str, Any]) -> str:
        """The status in an Authorize response."""

    @abc.abstractmethod
    def contract_authorize(self, emaid: str, *, certificate: str | None = None,
                           hash_data: list[dict[str, str]] | None = None) -> tuple[str, dict[str, Any]]:
        """Authorize for Plug & Charge (C07): the eMAID with the contract chain (PEM, for the CSMS
        to validate) or its OCSP hash data (the station validated the chain)."""

    @abc.abstractmethod
    def contract_verdict(self, response: dict[str, Any]) -> tuple[str, str | None]:
        """(idToken status, certificateStatus or None) of the answer to :meth:`contract_authorize`."""

    def ev_charging_needs(self, evse_id: int, needs: Any) -> tuple[str, dict[str, Any]] | None:
        """NotifyEVChargingNeeds for the EV's charge parameters (a harness.v2g.equipment
        .ChargingNeeds); None where the version has no such message (1.6)."""
        return None

    def ev_charging_schedule(self, evse_id: int, schedule: Any) -> tuple[str, dict[str, Any]] | None:
        """NotifyEVChargingSchedule for the power profile the EV announced (a
        harness.v2g.equipment.EvSchedule); None where the version has no such message (1.6)."""
        return None

    @abc.abstractmethod
    def sign_secc_certificate(self, csr: str) -> tuple[str, dict[str, Any]]:
        """The request that asks the CSMS to sign the SECC's CSR (OCPP 2.0.1 A03)."""

    @abc.abstractmethod
    def sign_status(self, response: dict[str, Any]) -> str:
        """Accepted or Rejected: the CSMS's answer to :meth:`sign_secc_certificate`."""

    @abc.abstractmethod
    def ev_certificate(self, schema_version: str, action: str, exi_request: str) -> tuple[str, dict[str, Any]]:
        """Get15118EVCertificate (M01 Install, M02 Update): the EV's EXI request for the CSMS."""

    @abc.abstractmethod
    def ev_certificate_answer(self, response: dict[str, Any]) -> tuple[str, str | None]:
        """(status, exiResponse) of the answer to :meth:`ev_certificate`."""

    @abc.abstractmethod
    def sampled_values(self, sample: MeterSample) -> list[dict[str, Any]]:
        """A meter sample as the version's SampledValue list."""

    @abc.abstractmethod
    def transaction_started(self, tx: StationTransaction, trigger: str, *, offline: bool,
                            sample: MeterSample) -> OutboxItem:
        """The message that reports a transaction's start."""

    @abc.abstractmethod
    def charging_state_changed(self, tx: StationTransaction, *, offline: bool,
                               sample: Callable[[], MeterSample]) -> OutboxItem | None:
        """The message that reports ``tx.charging_state`` has changed, None when the version has
        none (``sample`` is read only for a message that carries it)."""

    @abc.abstractmethod
    def transaction_updated(self, tx: StationTransaction, trigger: str, *, offline: bool,
                            sample: MeterSample) -> OutboxItem:
        """The message that carries a meter sample taken during a transaction."""

    def iso15118_failure(self, tx: StationTransaction, failure: Any, *, offline: bool,
                         sample: Callable[[], MeterSample]) -> OutboxItem | None:
        """The transaction message that reports an ISO 15118 failure (a row of
        harness.ocpp.iso15118_failures); None where the version reports it by status alone (1.6)."""
        return None

    @abc.abstractmethod
    def operation_mode_changed(self, tx: StationTransaction, *, offline: bool,
                               sample: Callable[[], MeterSample]) -> OutboxItem | None:
        """OCPP 2.1: the TransactionEvent (OperationModeChanged) that reports ``tx.operation_mode``
        has changed; None where the version has no operation modes."""

    @abc.abstractmethod
    def transaction_ended(self, tx: StationTransaction, trigger: str, reason: str, *, offline: bool,
                          sample: MeterSample) -> OutboxItem:
        """The message that reports a transaction's end. ``trigger`` and ``reason`` are 2.x's
        TriggerReasonEnumType and ReasonEnumType."""

    @abc.abstractmethod
    def idle_meter_values(self, evse_id: int, sample: MeterSample) -> dict[str, Any]:
        """A MeterValues request for a connector without a transaction."""

    # -- how the station reads the CSMS's requests and answers them ---------------------------

    @abc.abstractmethod
    def remote_start(self, payload: dict[str, Any]) -> RemoteStart:
        """Read a remote start request."""

    @abc.abstractmethod
    def refers_to(self, tx: StationTransaction, transaction_id: Any) -> bool:
        """Whether the transaction id in a remote stop request names ``tx``."""

    @abc.abstractmethod
    def availability(self, payload: dict[str, Any]) -> tuple[int, bool]:
        """Read a ChangeAvailability request: (EVSE id, 0 for the whole station; operative)."""

    @abc.abstractmethod
    def unlock_status(self, *, known: bool, in_transaction: bool) -> str:
        """The UnlockConnector answer for a connector that is known or not, in a transaction or not."""


class Ocpp2Dialect(StationDialect):
    version_family = "2"

    def __init__(self, *, v21: bool = False) -> None:
        #: 2.1: transactionInfo.operationMode, TransactionEvent OperationModeChanged
        self.v21 = v21

    def ev_charging_needs(self, evse_id: int, needs: Any) -> tuple[str, dict[str, Any]] | None:
        """OCPP 2.0.1 K15: ChargingNeedsType from the EV's ChargeParameterDiscoveryReq (AC: energy
        and currents; DC: limits, energy, SoC); the departure as a time. 2.1 adds, for an
        ISO 15118-20 EV, v2xChargingParameters, controlMode and mobilityNeedsMode, and names the
        bidirectional transfers (AC_BPT, DC_BPT)."""
        charging: dict[str, Any] = {"requestedEnergyTransfer": needs.energy_transfer}
        if needs.departure_s is not None:
            departure = _dt.datetime.now(_dt.timezone.utc) + _dt.timedelta(seconds=needs.departure_s)
            charging["departureTime"] = departure.isoformat(timespec="seconds").replace("+00:00", "Z")
        whole = {k: round(v) for k, v in (("energyAmount", needs.energy_wh), ("evMinCurrent", needs.min_current),
                                            ("evMaxCurrent", needs.max_current), ("evMaxVoltage", needs.max_voltage),
                                            ("evMaxPower", needs.max_power), ("stateOfCharge", needs.soc))
                 if v is not None}
        bidirectional = needs.energy_transfer.endswith("BPT")
        if not self.v21 and bidirectional:  # 2.0.1 knows no BPT: the direction-less name
            charging["requestedEnergyTransfer"] = "DC" if needs.energy_transfer.startswith("DC") else "AC_three_phase"
        if needs.energy_transfer.startswith("AC"):
            if {"energyAmount", "evMinCurrent", "evMaxCurrent", "evMaxVoltage"} <= whole.keys():
                charging["acChargingParameters"] = {k: whole[k] for k in ("energyAmount", "evMinCurrent",
                                                                           "evMaxCurrent", "evMaxVoltage")}
        elif {"evMaxCurrent", "evMaxVoltage"} <= whole.keys():
            charging["dcChargingParameters"] = {k: whole[k] for k in ("evMaxCurrent", "evMaxVoltage", "energyAmount",
                                                                       "evMaxPower", "stateOfCharge") if k in whole}
        if self.v21 and needs.control is not None:
            # 2.1: what an ISO 15118-20 EV says, discharge included (V2XChargingParametersType)
            v2x = {key: value for key, value in (
                ("minChargePower", needs.min_power), ("maxChargePower", needs.max_power),
                ("minDischargePower", needs.min_discharge_power), ("maxDischargePower", needs.max_discharge_power),
                ("maxChargeCurrent", needs.max_current), ("minChargeCurrent", needs.min_current),
                ("maxVoltage", needs.max_voltage), ("evTargetEnergyRequest", needs.target_energy_wh),
                ("evMinEnergyRequest", needs.min_energy_wh), ("evMaxEnergyRequest", needs.max_energy_wh),
                ("evMinV2XEnergyRequest", needs.min_v2x_energy_wh), ("evMaxV2XEnergyRequest", needs.max_v2x_energy_wh),
                ("targetSoC", needs.target_soc)) if value is not None}
            if v2x:
                if "targetSoC" in v2x:
                    v2x["targetSoC"] = round(v2x["targetSoC"])
                charging["v2xChargingParameters"] = v2x
            charging["controlMode"] = "DynamicControl" if needs.control == "dynamic" else "ScheduledControl"
            # -20: in dynamic mode the SECC may provide the mobility needs too
            charging["mobilityNeedsMode"] = "EVCC_SECC" if needs.control == "dynamic" else "EVCC"
        return "NotifyEVChargingNeeds", {"evseId": evse_id, "chargingNeeds": charging}

    def ev_charging_schedule(self, evse_id: int, schedule: Any) -> tuple[str, dict[str, Any]] | None:
        """OCPP 2.0.1 K17: the EV's power profile in W from now (timeBase), periods from its
        entries; the schedule's id is the one the EV chose (1 where it chose none)."""
        periods = [{"startPeriod": int(start), "limit": round(float(power), 1)} for start, power in schedule.periods]
        return "NotifyEVChargingSchedule", {
            "timeBase": timestamp(), "evseId": evse_id,
            "chargingSchedule": {"id": schedule.schedule_id if schedule.schedule_id is not None else 1,
                                 "chargingRateUnit": "W", "chargingSchedulePeriod": periods}}

    def status(self, evse_id: int, state: ConnectorState, *, error_code: str = "NoError") -> tuple[str, dict[str, Any]]:
        return "StatusNotification", {"timestamp": timestamp(), "connectorStatus": state.v2,
                                      "evseId": evse_id, "connectorId": 1}

    def authorize(self, token: str, token_type: str = "ISO14443") -> tuple[str, dict[str, Any]]:
        return "Authorize", {"idToken": {"idToken": token, "type": token_type}}

    def authorization_status(self, response: dict[str, Any]) -> str:
        return response.get("idTokenInfo", {}).get("status", "Invalid")

    def contract_authorize(self, emaid: str, *, certificate: str | None = None,
                           hash_data: list[dict[str, str]] | None = None) -> tuple[str, dict[str, Any]]:
        return "Authorize", _contract_request({"idToken": emaid, "type": "eMAID"}, certificate, hash_data)

    def contract_verdict(self, response: dict[str, Any]) -> tuple[str, str | None]:
        return _verdict(response.get("idTokenInfo"), response.get("certificateStatus"))

    def sign_secc_certificate(self, csr: str) -> tuple[str, dict[str, Any]]:
        return "SignCertificate", {"csr": csr, "certificateType": "V2GCertificate"}

    def sign_status(self, response: dict[str, Any]) -> str:
        return str(response.get("status", "Rejected"))

    def ev_certificate(self, schema_version: str, action: str, exi_request: str) -> tuple[str, dict[str, Any]]:
        return "Get15118EVCertificate", {"iso15118SchemaVersion": schema_version, "action": action,
                                         "exiRequest": exi_request}

    def ev_certificate_answer(self, response: dict[str, Any]) -> tuple[str, str | None]:
        return _certificate_answer(response)

    def sampled_values(self, sample: MeterSample) -> list[dict[str, Any]]:
        values = [
            {"value": round(sample.imported_wh, 3), "measurand": "Energy.Active.Import.Register",
             "context": sample.context, "unitOfMeasure": {"unit": "Wh"}},
            {"value": round(sample.exported_wh, 3), "measurand": "Energy.Active.Export.Register",
             "context": sample.context, "unitOfMeasure": {"unit": "Wh"}},
            {"value": round(max(sample.power_w, 0.0) + 0.0, 1), "measurand": "Power.Active.Import",
             "context": sample.context, "unitOfMeasure": {"unit": "W"}},
            {"value": round(max(-sample.power_w, 0.0) + 0.0, 1), "measurand": "Power.Active.Export",
             "context": sample.context, "unitOfMeasure": {"unit": "W"}},
        ]
        if sample.soc is not None:
            values.append({"value": round(sample.soc, 1), "measurand": "SoC", "context": sample.context,
                           "unitOfMeasure": {"unit": "Percent"}})
        return values

    def transaction_event(self, tx: StationTransaction, event_type: str, trigger: str, *,
                          offline: bool, sample: MeterSample | None = None,
                          stopped_reason: str | None = None, with_token: bool = False) -> dict[str, Any]:
        info: dict[str, Any] = {"transactionId": tx.transaction_id, "chargingState": tx.charging_state}
        if self.v21:
            info["operationMode"] = tx.operation_mode
        if tx.remote_start_id is not None and event_type == "Started":
            info["remoteStartId"] = tx.remote_start_id
        if stopped_reason:
            info["stoppedReason"] = stopped_reason
        payload: dict[str, Any] = {
            "eventType": event_type,
            "timestamp": sample.timestamp if sample else timestamp(),
            "triggerReason": trigger,
            "seqNo": tx.next_seq(),
            "transactionInfo": info,
            "evse": {"id": tx.evse_id, "connectorId": 1},
        }
        if offline:
            payload["offline"] = True
        if with_token and tx.id_token is not None:
            payload["idToken"] = {"idToken": tx.id_token, "type": tx.token_type}
        if sample is not None:
            payload["meterValue"] = [{"timestamp": sample.timestamp, "sampledValue": self.sampled_values(sample)}]
        return payload

    # The TransactionEvents are made when they happen (seqNo, offline flag, sample) and sent as
    # made, whenever the station is back online.

    def transaction_started(self, tx: StationTransaction, trigger: str, *, offline: bool,
                            sample: MeterSample) -> OutboxItem:
        payload = self.transaction_event(tx, "Started", trigger, offline=offline, sample=sample, with_token=True)
        return OutboxItem("TransactionEvent", lambda: payload)

    def charging_state_changed(self, tx: StationTransaction, *, offline: bool,
                               sample: Callable[[], MeterSample]) -> OutboxItem | None:
        payload = self.transaction_event(tx, "Updated", "ChargingStateChanged", offline=offline, sample=sample())
        return OutboxItem("TransactionEvent", lambda: payload)

    def transaction_updated(self, tx: StationTransaction, trigger: str, *, offline: bool,
                            sample: MeterSample) -> OutboxItem:
        payload = self.transaction_event(tx, "Updated", trigger, offline=offline, sample=sample)
        return OutboxItem("TransactionEvent", lambda: payload)

    def iso15118_failure(self, tx: StationTransaction, failure: Any, *, offline: bool,
                         sample: Callable[[], MeterSample]) -> OutboxItem | None:
        return self.transaction_updated(tx, failure.ocpp2.fields["triggerReason"], offline=offline, sample=sample())

    def operation_mode_changed(self, tx: StationTransaction, *, offline: bool,
                               sample: Callable[[], MeterSample]) -> OutboxItem | None:
        if not self.v21:
            return None
        payload = self.transaction_event(tx, "Updated", "OperationModeChanged", offline=offline, sample=sample())
        return OutboxItem("TransactionEvent", lambda: payload)

    def transaction_ended(self, tx: StationTransaction, trigger: str, reason: str, *, offline: bool,
                          sample: MeterSample) -> OutboxItem:
        payload = self.transaction_event(tx, "Ended", trigger, offline=offline, sample=sample, stopped_reason=reason)
        return OutboxItem("TransactionEvent", lambda: payload)

    def idle_meter_values(self, evse_id: int, sample: MeterSample) -> dict[str, Any]:
        return {"evseId": evse_id, "meterValue": [
            {"timestamp": sample.timestamp, "sampledValue": self.sampled_values(sample)}]}

    def remote_start(self, payload: dict[str, Any]) -> RemoteStart:
        token = payload["idToken"]
        return RemoteStart(token["idToken"], token.get("type", "ISO14443"), payload.get("remoteStartId"),
                           payload.get("evseId"))

    def refers_to(self, tx: StationTransaction, transaction_id: Any) -> bool:
        return transaction_id == tx.transaction_id  # the station's own id

    def availability(self, payload: dict[str, Any]) -> tuple[int, bool]:
        return (payload.get("evse") or {}).get("id", 0), payload["operationalStatus"] == "Operative"

    def unlock_status(self, *, known: bool, in_transaction: bool) -> str:
        if not known:
            return "UnknownConnector"
        return "OngoingAuthorizedTransaction" if in_transaction else "Unlocked"


#: 2.x ReasonEnumType -> 1.6 StopTransaction reason (anything else is "Other")
_STOP_REASONS_16 = {"EVDisconnected": "EVDisconnected", "Remote": "Remote", "Local": "Local",
                    "ImmediateReset": "HardReset"}


class Ocpp16Dialect(StationDialect):
    version_family = "1.6"

    def status(self, evse_id: int, state: ConnectorState, *, error_code: str = "NoError") -> tuple[str, dict[str, Any]]:
        return "StatusNotification", {"connectorId": evse_id, "errorCode": error_code, "status": state.value,
                                      "timestamp": timestamp()}

    def authorize(self, token: str, token_type: str = "ISO14443") -> tuple[str, dict[str, Any]]:
        return "Authorize", {"idTag": token}

    def authorization_status(self, response: dict[str, Any]) -> str:
        return response.get("idTagInfo", {}).get("status", "Invalid")

    def contract_authorize(self, emaid: str, *, certificate: str | None = None,
                           hash_data: list[dict[str, str]] | None = None) -> tuple[str, dict[str, Any]]:
        # the note's Authorize.req: idToken is the eMAID as a string (identifierString[0..20])
        inner = _contract_request(emaid, certificate, hash_data)
        return "DataTransfer", {"vendorId": PNC_VENDOR_ID, "messageId": "Authorize",
                                "data": json.dumps(inner, separators=(",", ":"))}

    def contract_verdict(self, response: dict[str, Any]) -> tuple[str, str | None]:
        inner = _note_data(response)
        if inner is None:
            return "Invalid", None  # the CSMS does not speak the application note
        return _verdict(inner.get("idTokenInfo"), inner.get("certificateStatus"))

    def sign_secc_certificate(self, csr: str) -> tuple[str, dict[str, Any]]:
        return "DataTransfer", {"vendorId": PNC_VENDOR_ID, "messageId": "SignCertificate",
                                "data": json.dumps({"csr": csr}, separators=(",", ":"))}

    def sign_status(self, response: dict[str, Any]) -> str:
        inner = _note_data(response)
        return str(inner.get("status", "Rejected")) if inner is not None else "Rejected"

    def ev_certificate(self, schema_version: str, action: str, exi_request: str) -> tuple[str, dict[str, Any]]:
        return "DataTransfer", {"vendorId": PNC_VENDOR_ID, "messageId": "Get15118EVCertificate",
                                "data": json.dumps({"iso15118SchemaVersion": schema_version, "action": action,
                                                    "exiRequest": exi_request}, separators=(",", ":"))}

    def ev_certificate_answer(self, response: dict[str, Any]) -> tuple[str, str | None]:
        inner = _note_data(response)
        return _certificate_answer(inner) if inner is not None else ("Failed", None)

    def sampled_values(self, sample: MeterSample) -> list[dict[str, Any]]:
        # 1.6 sends values as strings (SampledValue.value is a string in the 1.6 schema)
        values = [
            {"value": f"{sample.imported_wh:.3f}", "measurand": "Energy.Active.Import.Register",
             "context": sample.context, "unit": "Wh"},
            {"value": f"{sample.exported_wh:.3f}", "measurand": "Energy.Active.Export.Register",
             "context": sample.context, "unit": "Wh"},
            {"value": f"{max(sample.power_w, 0.0) + 0.0:.1f}", "measurand": "Power.Active.Import",
             "context": sample.context, "unit": "W"},
            {"value": f"{max(-sample.power_w, 0.0) + 0.0:.1f}", "measurand": "Power.Active.Export",
             "context": sample.context, "unit": "W"},
        ]
        if sample.soc is not None:
            values.append({"value": f"{sample.soc:.1f}", "measurand": "SoC", "context": sample.context,
                           "unit": "Percent"})
        return values

    def start_transaction(self, tx: StationTransaction) -> dict[str, Any]:
        payload = {"connectorId": tx.evse_id, "idTag": tx.id_token or "", "meterStart": int(round(tx.meter_start_wh)),
                   "timestamp": tx.started}
        return payload

    def stop_transaction(self, tx: StationTransaction, sample: MeterSample, reason: str) -> dict[str, Any]:
        assert tx.csms_id is not None, "StopTransaction before the CSMS assigned a transaction id"
        # transactionData carries the begin and end readings of every register: StartTransaction
        # has room for the import register only (meterStart), in whole Wh
        readings = [s for s in (tx.begin_sample, sample) if s is not None]
        payload: dict[str, Any] = {"transactionId": tx.csms_id, "meterStop": int(round(sample.imported_wh)),
                                   "timestamp": sample.timestamp, "reason": reason,
                                   "transactionData": [{"timestamp": s.timestamp,
                                                        "sampledValue": self.sampled_values(s)} for s in readings]}
        if tx.id_token:
            payload["idTag"] = tx.id_token
        return payload

    def meter_values(self, tx: StationTransaction, sample: MeterSample) -> dict[str, Any]:
        payload: dict[str, Any] = {"connectorId": tx.evse_id,
                                   "meterValue": [{"timestamp": sample.timestamp,
                                                   "sampledValue": self.sampled_values(sample)}]}
        if tx.csms_id is not None:
            payload["transactionId"] = tx.csms_id
        return payload

    # The messages are made when they are sent: the transactionId the CSMS assigns in answer to
    # StartTransaction is not known before (and StartTransaction may still be queued).

    def transaction_started(self, tx: StationTransaction, trigger: str, *, offline: bool,
                            sample: MeterSample) -> OutboxItem:
        def assigned(result: dict[str, Any]) -> None:
            tx.csms_id = result.get("transactionId")

        return OutboxItem("StartTransaction", lambda: self.start_transaction(tx), assigned)

    def charging_state_changed(self, tx: StationTransaction, *, offline: bool,
                               sample: Callable[[], MeterSample]) -> OutboxItem | None:
        return None  # 1.6 tells it by StatusNotification only

    def transaction_updated(self, tx: StationTransaction, trigger: str, *, offline: bool,
                            sample: MeterSample) -> OutboxItem:
        return OutboxItem("MeterValues", lambda: self.meter_values(tx, sample))

    def operation_mode_changed(self, tx: StationTransaction, *, offline: bool,
                               sample: Callable[[], MeterSample]) -> OutboxItem | None:
        return None  # operation modes are OCPP 2.1's

    def transaction_ended(self, tx: StationTransaction, trigger: str, reason: str, *, offline: bool,
                          sample: MeterSample) -> OutboxItem:
        reason16 = _STOP_REASONS_16.get(reason, "Other")
        return OutboxItem("StopTransaction", lambda: self.stop_transaction(tx, sample, reason16))

    def idle_meter_values(self, evse_id: int, sample: MeterSample) -> dict[str, Any]:
        return {"connectorId": evse_id, "meterValue": [
            {"timestamp": sample.timestamp, "sampledValue": self.sampled_values(sample)}]}

    def remote_start(self, payload: dict[str, Any]) -> RemoteStart:
        return RemoteStart(payload["idTag"], evse_id=payload.get("connectorId"))

    def refers_to(self, tx: StationTransaction, transaction_id: Any) -> bool:
        return transaction_id == tx.csms_id  # the CSMS's id, the one StartTransaction got back

    def availability(self, payload: dict[str, Any]) -> tuple[int, bool]:
        return payload["connectorId"], payload["type"] == "Operative"

    def unlock_status(self, *, known: bool, in_transaction: bool) -> str:
        return "Unlocked" if known else "NotSupported"


def dialect_for(version: OcppVersion) -> StationDialect:
    return Ocpp16Dialect() if version is OcppVersion.V16 else Ocpp2Dialect(v21=version is OcppVersion.V21)


def _contract_request(token: Any, certificate: str | None, hash_data: list[dict[str, str]] | None) -> dict[str, Any]:
    request: dict[str, Any] = {"idToken": token}
    if certificate is not None:
        request["certificate"] = certificate
    if hash_data:
        request["iso15118CertificateHashData"] = hash_data
    return request


def _note_data(response: dict[str, Any]) -> dict[str, Any] | None:
    """The application note's answer inside an accepted DataTransfer response (None: none)."""
    if response.get("status") != "Accepted":
        return None
    try:
        inner = json.loads(response.get("data") or "")
    except (ValueError, RecursionError, TypeError):
        return None
    return inner if isinstance(inner, dict) else None


def _verdict(token_info: Any, certificate_status: Any) -> tuple[str, str | None]:
    """(idToken status, certificateStatus) from a CSMS's answer, whatever shape it has: a field
    of the wrong type reads as no acceptance ("Invalid"; a certificateStatus that is not text: "CertChainError")."""
    status = token_info.get("status") if isinstance(token_info, dict) else None
    if certificate_status is not None and not isinstance(certificate_status, str):
        certificate_status = "CertChainError"
    return (status if isinstance(status, str) else "Invalid"), certificate_status


def _certificate_answer(answer: dict[str, Any]) -> tuple[str, str | None]:
    status, exi_response = answer.get("status"), answer.get("exiResponse")
    return (status if isinstance(status, str) else "Failed",
            exi_response if isinstance(exi_response, str) and exi_response else None)

