"""The reference EVSE's settings and its device model: the variables a CSMS reads and writes.

The device model holds (component, variable) -> (value, mutability), after OCPP 2.0.1 Part 2
Appendix "Standardized components and variables". A 2.x CSMS reaches it with GetVariables /
SetVariables; a 1.6 CSMS with GetConfiguration / ChangeConfiguration, through the 1.6
configuration keys of the variables that have one (:data:`KEYS_16`). Values are in protocol
units (seconds as the standards count them); the heartbeat interval is the one in force at the
station client, which the CSMS may also have set at boot.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.ocpp.station import StationClient, StationIdentity
from harness.ocpp.timing import OcppTimers

Key = tuple[str, str]  # (component, variable)


@dataclass(frozen=True)
class Misbehaviour:
    """The OCPP rules the reference EVSE breaks when its profile says so (``misbehave:``): it plays
    a non-conforming charger, so the harness's own checks can be shown to fail one."""

    #: every transaction reported under this one transactionId (2.x; a 1.6 CSMS hands out ids)
    transaction_id: str | None = None
    #: every transaction reported with this idToken, whatever was authorized
    id_token: str | None = None
    #: meter values within a transaction (all but its begin and end) dated this many seconds from
    #: when they were taken
    meter_clock_offset_s: float = 0.0
    #: the reason of its BootNotification after it powered up (2.x; a conforming one says PowerUp)
    boot_reason: str | None = None


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
    misbehave: Misbehaviour = field(default_factory=Misbehaviour)


HEARTBEAT: Key = ("OCPPCommCtrlr", "HeartbeatInterval")
TX_UPDATED_INTERVAL: Key = ("SampledDataCtrlr", "TxUpdatedInterval")
AUTHORIZE_REMOTE_START: Key = ("AuthCtrlr", "AuthorizeRemoteStart")
#: C07: may the station hand a contract chain it cannot validate to the CSMS (C07.FR.06)?
CENTRAL_CONTRACT_VALIDATION: Key = ("ISO15118Ctrlr", "CentralContractValidationAllowed")
#: C07: may the station accept a contract it validated itself while the CSMS cannot be reached?
CONTRACT_VALIDATION_OFFLINE: Key = ("ISO15118Ctrlr", "ContractValidationOffline")

#: the 1.6 configuration key of each variable that has one
KEYS_16: dict[Key, str] = {
    HEARTBEAT: "HeartbeatInterval",
    TX_UPDATED_INTERVAL: "MeterValueSampleInterval",
    ("SampledDataCtrlr", "TxUpdatedMeasurands"): "MeterValuesSampledData",
    AUTHORIZE_REMOTE_START: "AuthorizeRemoteTxRequests",
    ("AuthCtrlr", "OfflineTxForUnknownIdEnabled"): "AllowOfflineTxForUnknownId",
    ("TxCtrlr", "EVConnectionTimeOut"): "ConnectionTimeOut",
    # the configuration keys of the OCA application note "Using ISO 15118 Plug & Charge with OCPP 1.6"
    CENTRAL_CONTRACT_VALIDATION: "CentralContractValidationAllowed",
    CONTRACT_VALIDATION_OFFLINE: "ContractValidationOffline",
}
_BY_NAME_16 = {name: key for key, name in KEYS_16.items()}

_INTEGER_VARIABLES = {HEARTBEAT, TX_UPDATED_INTERVAL, ("TxCtrlr", "EVConnectionTimeOut")}
_BOOLEAN_VARIABLES = {AUTHORIZE_REMOTE_START, ("AuthCtrlr", "OfflineTxForUnknownIdEnabled"), CENTRAL_CONTRACT_VALIDATION,
                      CONTRACT_VALIDATION_OFFLINE}


def initial_variables(settings: EvseSettings) -> dict[Key, tuple[str, str]]:
    """The device model at power-up: (component, variable) -> (value, mutability)."""
    return {
        HEARTBEAT: (str(int(OcppTimers().heartbeat_interval)), "ReadWrite"),
        ("OCPPCommCtrlr", "MessageTimeout"): (str(int(OcppTimers().message_timeout)), "ReadOnly"),
        TX_UPDATED_INTERVAL: (str(int(OcppTimers().meter_value_interval)), "ReadWrite"),
        ("SampledDataCtrlr", "TxUpdatedMeasurands"): (
            "Energy.Active.Import.Register,Energy.Active.Export.Register,Power.Active.Import,Power.Active.Export",
            "ReadWrite"),
        AUTHORIZE_REMOTE_START: ("true" if settings.authorize_remote_start else "false", "ReadWrite"),
        ("AuthCtrlr", "OfflineTxForUnknownIdEnabled"): (
            "true" if settings.offline_tx_for_unknown_id else "false", "ReadWrite"),
        ("TxCtrlr", "TxStartPoint"): ("PowerPathClosed", "ReadOnly"),
        ("TxCtrlr", "TxStopPoint"): ("EVConnected,Authorized", "ReadOnly"),
        ("TxCtrlr", "EVConnectionTimeOut"): (str(int(settings.ev_connection_timeout)), "ReadWrite"),
        ("SecurityCtrlr", "Identity"): (settings.station_id, "ReadOnly"),
        CENTRAL_CONTRACT_VALIDATION: ("true", "ReadWrite"),
        CONTRACT_VALIDATION_OFFLINE: ("false", "ReadWrite"),
    }


def valid_value(key: Key, value: str) -> bool:
    if key in _INTEGER_VARIABLES:
        return value.isdigit() and int(value) > 0
    if key in _BOOLEAN_VARIABLES:
        return value in ("true", "false")
    return True


class DeviceModel:
    def __init__(self, settings: EvseSettings, station: StationClient, timers: OcppTimers) -> None:
        self.station = station
        self.timers = timers
        #: (component, variable) -> (value, mutability)
        self.variables = initial_variables(settings)

    def value(self, key: Key) -> str:
        """The stored value of a variable."""
        return self.variables[key][0]

    def read(self, key: Key) -> tuple[str, str]:
        """(value, mutability) of a variable, as the CSMS reads it."""
        value, mutability = self.variables[key]
        if key == HEARTBEAT:  # the interval in force, which the CSMS may have set at boot
            value = str(int(round(self.station.heartbeat_interval / self.timers.scale)))
        return value, mutability

    def write(self, key: Key, value: str) -> None:
        self.variables[key] = (value, self.variables[key][1])
        if key == HEARTBEAT:
            self.station.set_heartbeat_interval(self.timers.wait(float(value)))

    def _has_component(self, component: str) -> bool:
        return any(c == component for c, _ in self.variables)

    # -- 2.x: GetVariables / SetVariables -----------------------------------------------------

    def get_variables(self, requested: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The getVariableResult list for a GetVariables request's getVariableData."""
        results = []
        for item in requested:
            component, variable = item["component"]["name"], item["variable"]["name"]
            entry = {"component": item["component"], "variable": item["variable"]}
            if item.get("attributeType", "Actual") != "Actual":
                results.append({**entry, "attributeStatus": "NotSupportedAttributeType"})
            elif (component, variable) in self.variables:
                value, mutability = self.read((component, variable))
                if mutability == "WriteOnly":
                    results.append({**entry, "attributeStatus": "Rejected"})
                else:
                    results.append({**entry, "attributeStatus": "Accepted", "attributeValue": value})
            elif self._has_component(component):
                results.append({**entry, "attributeStatus": "UnknownVariable"})
            else:
                results.append({**entry, "attributeStatus": "UnknownComponent"})
        return results

    def set_variables(self, requested: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The setVariableResult list for a SetVariables request's setVariableData."""
        results = []
        for item in requested:
            component, variable = item["component"]["name"], item["variable"]["name"]
            entry = {"component": item["component"], "variable": item["variable"]}
            key = (component, variable)
            if key not in self.variables:
                status = "UnknownVariable" if self._has_component(component) else "UnknownComponent"
            elif self.variables[key][1] == "ReadOnly":
                status = "Rejected"
            elif not valid_value(key, item["attributeValue"]):
                status = "Rejected"
            else:
                self.write(key, item["attributeValue"])
                status = "Accepted"
            results.append({**entry, "attributeStatus": status})
        return results

    # -- 1.6: GetConfiguration / ChangeConfiguration ------------------------------------------

    def get_configuration(self, names: list[str] | None) -> dict[str, Any]:
        """The GetConfiguration answer for the keys asked for (all known keys when none)."""
        keys = names or [KEYS_16[k] for k in KEYS_16 if k in self.variables]
        known, unknown = [], []
        for name in keys:
            key = _BY_NAME_16.get(name)
            if key is None or key not in self.variables:
                unknown.append(name)
                continue
            value, mutability = self.read(key)
            known.append({"key": name, "readonly": mutability == "ReadOnly", "value": value})
        result: dict[str, Any] = {"configurationKey": known}
        if unknown:
            result["unknownKey"] = unknown
        return result

    def change_configuration(self, name: str, value: str) -> str:
        """The ChangeConfiguration status for setting key ``name`` to ``value``."""
        key = _BY_NAME_16.get(name)
        if key is None:
            return "NotSupported"
        if self.variables[key][1] == "ReadOnly" or not valid_value(key, value):
            return "Rejected"
        self.write(key, value)
        return "Accepted"
