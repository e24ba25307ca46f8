"""CSMS-initiated requests in each version's words.

Suites ask for "remote start with this token" and get the version-correct CALL for the DUT
(1.6 RemoteStartTransaction vs 2.x RequestStartTransaction, and so on).
"""

from __future__ import annotations

import datetime as _dt
from typing import Any, Sequence

from harness.ocpp.versions import OcppVersion

Call = tuple[str, dict[str, Any]]
_V16 = OcppVersion.V16


def remote_start(version: OcppVersion, id_token: str, *, evse_id: int | None = None,
                 remote_start_id: int = 1) -> Call:
    if version is _V16:
        payload: dict[str, Any] = {"idTag": id_token}
        if evse_id is not None:
            payload["connectorId"] = evse_id
        return "RemoteStartTransaction", payload
    payload = {"idToken": {"idToken": id_token, "type": "ISO14443"}, "remoteStartId": remote_start_id}
    if evse_id is not None:
        payload["evseId"] = evse_id
    return "RequestStartTransaction", payload


def remote_stop(version: OcppVersion, transaction_id: str) -> Call:
    if version is _V16:
        return "RemoteStopTransaction", {"transactionId": int(transaction_id)}
    return "RequestStopTransaction", {"transactionId": transaction_id}


def trigger(version: OcppVersion, message: str, *, evse_id: int | None = None) -> Call:
    payload: dict[str, Any] = {"requestedMessage": message}
    if evse_id is not None:
        if version is _V16:
            payload["connectorId"] = evse_id
        else:
            payload["evse"] = {"id": evse_id}
    return "TriggerMessage", payload


def reset(version: OcppVersion, *, immediate: bool = True) -> Call:
    if version is _V16:
        return "Reset", {"type": "Hard" if immediate else "Soft"}
    return "Reset", {"type": "Immediate" if immediate else "OnIdle"}


def charging_limit(version: OcppVersion, amps: float, *, evse_id: int = 1, profile_id: int = 1) -> Call:
    """A TxDefaultProfile limiting ``evse_id`` to ``amps`` per phase from now on (K01)."""
    period = {"startPeriod": 0, "limit": float(amps)}
    if version is _V16:
        return "SetChargingProfile", {"connectorId": evse_id, "csChargingProfiles": {
            "chargingProfileId": profile_id, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile",
            "chargingProfileKind": "Relative",
            "chargingSchedule": {"chargingRateUnit": "A", "chargingSchedulePeriod": [period]}}}
    return "SetChargingProfile", {"evseId": evse_id, "chargingProfile": {
        "id": profile_id, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Relative",
        "chargingSchedule": [{"id": profile_id, "chargingRateUnit": "A", "chargingSchedulePeriod": [period]}]}}


def stepped_limit(version: OcppVersion, steps: Sequence[tuple[int, float]], start: _dt.datetime, *,
                  evse_id: int = 1, profile_id: int = 1) -> Call:
    """An Absolute TxDefaultProfile from ``start`` on: (seconds from ``start``, A per phase) per
    period (K01)."""
    periods = [{"startPeriod": int(at), "limit": float(amps)} for at, amps in steps]
    schedule = {"chargingRateUnit": "A", "chargingSchedulePeriod": periods,
                "startSchedule": start.astimezone(_dt.timezone.utc).replace(microsecond=0).isoformat().replace(
                    "+00:00", "Z")}
    if version is _V16:
        return "SetChargingProfile", {"connectorId": evse_id, "csChargingProfiles": {
            "chargingProfileId": profile_id, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile",
            "chargingProfileKind": "Absolute", "chargingSchedule": schedule}}
    return "SetChargingProfile", {"evseId": evse_id, "chargingProfile": {
        "id": profile_id, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Absolute", "chargingSchedule": [{"id": profile_id, **schedule}]}}


def clear_charging_profile(version: OcppVersion, profile_id: Any) -> Call:
    """ClearChargingProfile of one profile by its id (K10)."""
    return "ClearChargingProfile", {"id": profile_id} if version is _V16 else {"chargingProfileId": profile_id}


def get_variable(version: OcppVersion, component: str, variable: str, key_16: str) -> Call:
    """Read one configuration value: a 2.x variable or its 1.6 configuration key."""
    if version is _V16:
        return "GetConfiguration", {"key": [key_16]}
    return "GetVariables", {"getVariableData": [{"component": {"name": component}, "variable": {"name": variable}}]}


def harmless(version: OcppVersion) -> Call:
    """A call every station must answer and that changes nothing: reading the heartbeat interval
    (1.6 GetConfiguration is Core; 2.x GetVariables is in every station's device model). Whether a
    station answers it shows that it is registered and responsive."""
    return get_variable(version, "OCPPCommCtrlr", "HeartbeatInterval", "HeartbeatInterval")


def variable_value(response: dict[str, Any]) -> str | None:
    """The value in a GetVariables / GetConfiguration answer, None when the station has none."""
    if "getVariableResult" in response:
        result = (response["getVariableResult"] or [{}])[0]
        return result.get("attributeValue") if result.get("attributeStatus") == "Accepted" else None
    keys = response.get("configurationKey") or []
    return keys[0].get("value") if keys else None


def set_variable(version: OcppVersion, component: str, variable: str, key_16: str, value: str) -> Call:
    """Write one configuration value: a 2.x variable or its 1.6 configuration key."""
    if version is _V16:
        return "ChangeConfiguration", {"key": key_16, "value": value}
    return "SetVariables", {"setVariableData": [{"attributeValue": value, "component": {"name": component},
                                                 "variable": {"name": variable}}]}


def variable_accepted(response: dict[str, Any]) -> bool:
    """Whether a SetVariables / ChangeConfiguration answer accepted the value."""
    if "setVariableResult" in response:
        return (response["setVariableResult"] or [{}])[0].get("attributeStatus") == "Accepted"
    return response.get("status") == "Accepted"
