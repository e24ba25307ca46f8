"""DIN SPEC 70121: the session table and both sides' steps (DC, external identification).

DIN 70121 is the DC-only ancestor of ISO 15118-2: the same message flow with ServicePayment-
Selection and ContractAuthentication instead of PaymentServiceSelection and Authorization, a
ReadyToChargeState flag instead of ChargeProgress, and no Plug & Charge. The SECC's PMaxSchedule
covers 24 h ([V2G-DC-559]), its duration in seconds ([V2G-DC-338]).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harness.v2g.machine import START, Reply, Request, Rules, Stop, Table

from harness.v2g.values import percent, physical, physical_value

if TYPE_CHECKING:  # the machines hand themselves to these rules
    from harness.v2g.session import EvccSession, SeccSession

ALWAYS = "always"

#: after <response> the EVCC may send <request> when <guard>
NEXT: dict[str, dict[str, str]] = {
    START:                         {"SessionSetupReq": ALWAYS},
    "SessionSetupRes":             {"ServiceDiscoveryReq": ALWAYS, "SessionStopReq": ALWAYS},
    "ServiceDiscoveryRes":         {"ServicePaymentSelectionReq": ALWAYS, "SessionStopReq": ALWAYS},
    "ServicePaymentSelectionRes":  {"ContractAuthenticationReq": ALWAYS, "SessionStopReq": ALWAYS},
    "ContractAuthenticationRes":   {"ContractAuthenticationReq": "ongoing", "ChargeParameterDiscoveryReq": "finished",
                                    "SessionStopReq": ALWAYS},
    "ChargeParameterDiscoveryRes": {"ChargeParameterDiscoveryReq": "ongoing", "CableCheckReq": "finished",
                                    "SessionStopReq": ALWAYS},
    "CableCheckRes":               {"CableCheckReq": ALWAYS, "PreChargeReq": "finished", "SessionStopReq": ALWAYS},
    "PreChargeRes":                {"PreChargeReq": ALWAYS, "PowerDeliveryReq": ALWAYS, "SessionStopReq": ALWAYS},
    "PowerDeliveryRes":            {"CurrentDemandReq": "started", "WeldingDetectionReq": "stopped",
                                    "SessionStopReq": "stopped"},
    "CurrentDemandRes":            {"CurrentDemandReq": ALWAYS, "PowerDeliveryReq": ALWAYS},
    "WeldingDetectionRes":         {"WeldingDetectionReq": ALWAYS, "SessionStopReq": ALWAYS},
}

GUARDS = {
    ALWAYS: lambda s: True,
    "ongoing": lambda s: s.context.get("processing", "Finished") != "Finished",
    "finished": lambda s: s.context.get("processing", "Finished") == "Finished",
    "started": lambda s: s.context.get("ready") is True,
    "stopped": lambda s: s.context.get("ready") is False,
}

TABLE = Table("din", NEXT, GUARDS)
TABLE.check()

CHARGE_SERVICE = 1
SCHEDULE_ID = 1
PRE_CHARGE_TOLERANCE_V = 20.0
WELDING_VOLTAGE_V = 60.0
SHORT_MAX = 32767


def evse_id_hex(evse_id: str) -> str:
    """DIN's EVSEID is hexBinary: the ID's ASCII bytes (at most 32)."""
    return evse_id.encode("ascii", "replace")[:32].hex().upper()


class DinRules(Rules):
    family = "din"
    table = TABLE

    # ================================= SECC =================================================

    def secc_start(self, s: SeccSession) -> None:
        s.context.update(dc=True, loops=0)

    def secc_handle(self, s: SeccSession, name: str, body: dict, message: dict) -> Reply:
        return getattr(self, f"_secc_{name}")(s, body, message)

    def _status(self, s: SeccSession, *, loop: bool = False) -> dict:
        notification = s.equipment.notification() if loop else "None"
        status: dict[str, Any] = {}
        if s.context.get("isolation_checked"):
            status["EVSEIsolationStatus"] = "Valid"
        status.update(EVSEStatusCode="EVSE_Ready", NotificationMaxDelay=0, EVSENotification=notification)
        return {"DC_EVSEStatus": status}

    def _secc_SessionSetupReq(self, s: SeccSession, body: dict, message: dict) -> Reply:
        s.session_id = s.new_session_id()
        s.equipment.session_started(s.session_id, body.get("EVCCID"), "din")
        return Reply({"ResponseCode": "OK_NewSessionEstablished",
                      "EVSEID": evse_id_hex(s.equipment.capabilities.evse_id), "DateTimeNow": s.wall_time()})

    def _secc_ServiceDiscoveryReq(self, s: SeccSession, body: dict, message: dict) -> Reply:
        caps = s.equipment.capabilities
        return Reply({"ResponseCode": "OK", "PaymentOptions": {"PaymentOption": ["ExternalPayment"]},
                      "ChargeService": {"ServiceTag": {"ServiceID": CHARGE_SERVICE, "ServiceCategory": "EVCharging"},
                                        "FreeService": caps.free_service, "EnergyTransferType": "DC_extended"}})

    def _secc_ServicePaymentSelectionReq(self, s: SeccSession, body: dict, message: dict) -> Reply:
        if body["SelectedPaymentOption"] != "ExternalPayment":
            return Reply({"ResponseCode": "FAILED_PaymentSelectionInvalid"})
        if CHARGE_SERVICE not in {x["ServiceID"] for x in body["SelectedServiceList"]["SelectedService"]}:
            return Reply({"ResponseCode": "FAILED_ServiceSelectionInvalid"})
        return Reply({"ResponseCode": "OK"})

    def _secc_ContractAuthenticationReq(self, s: SeccSession, body: dict, message: dict) -> Reply:
        status = s.equipment.authorize("EIM")
        if status == "Rejected":
            return Reply({"ResponseCode": "FAILED", "EVSEProcessing": "Finished"})
        processing = "Finished" if status == "Accepted" else "Ongoing"
        s.context["processing"] = processing
        return Reply({"ResponseCode": "OK", "EVSEProcessing": processing})

    def _evse_charge_parameter(self, s: SeccSession) -> dict:
        caps = s.equipment.capabilities
        return {"DC_EVSEChargeParameter": {
            **self._status(s),
            "EVSEMaximumCurrentLimit": physical(caps.dc_max_current, "A"),
            "EVSEMaximumPowerLimit": physical(caps.dc_max_power, "W"),
            "EVSEMaximumVoltageLimit": physical(caps.dc_max_voltage, "V"),
            "EVSEMinimumCurrentLimit": physical(caps.dc_min_current, "A"),
            "EVSEMinimumVoltageLimit": physical(caps.dc_min_voltage, "V"),
            "EVSEPeakCurrentRipple": physical(caps.dc_peak_current_ripple, "A", low=-1)}}

    def _secc_ChargeParameterDiscoveryReq(self, s: SeccSession, body: dict, message: dict) -> Reply:
        if body["EVRequestedEnergyTransferType"] not in ("DC_extended", "DC_core", "DC_combo_core"):
            return Reply(self.secc_failure(s, "ChargeParameterDiscoveryReq", "FAILED_WrongEnergyTransferType"))
        parameter = body.get("DC_EVChargeParameter")
        if parameter is None:
            return Reply(self.secc_failure(s, "ChargeParameterDiscoveryReq", "FAILED_WrongChargeParameter"))
        s.equipment.ev_status(soc=parameter["DC_EVStatus"]["EVRESSSOC"])
        s.context["processing"] = "Finished"
        pmax = min(SHORT_MAX, int(s.equipment.capabilities.dc_max_power))
        return Reply({"ResponseCode": "OK", "EVSEProcessing": "Finished",
                      "SAScheduleList": {"SAScheduleTuple": [{"SAScheduleTupleID": SCHEDULE_ID, "PMaxSchedule": {
                          "PMaxScheduleID": 0, "PMaxScheduleEntry": [
                              {"RelativeTimeInterval": {"start": 0, "duration": 86400}, "PMax": pmax}]}}]},
                      **self._evse_charge_parameter(s)})

    def _secc_CableCheckReq(self, s: SeccSession, body: dict, message: dict) -> Reply:
        s.equipment.ev_status(soc=body["DC_EVStatus"]["EVRESSSOC"], ready=body["DC_EVStatus"]["EVReady"])
        done = s.equipment.cable_check()
        s.context["isolation_checked"] = done
        processing = "Finished" if done else "Ongoing"
        s.context["processing"] = processing
        return Reply({"ResponseCode": "OK", **self._status(s), "EVSEProcessing": processing})

    def _secc_PreChargeReq(self, s: SeccSession, body: dict, message: dict) -> Reply:
        present = s.equipment.pre_charge(physical_value(body["EVTargetVoltage"]),
                                         physical_value(body["EVTargetCurrent"]))
        return Reply({"ResponseCode": "OK", **self._status(s),
                      "EVSEPresentVoltage": physical(present.voltage, "V", low=-1)})

    def _secc_PowerDeliveryReq(self, s: SeccSession, body: dict, message: dict) -> Reply:
        ready = body["ReadyToChargeState"]
        if ready and not s.equipment.energy_transfer(True, "DC"):
            return Reply(self.secc_failure(s, "PowerDeliveryReq", "FAILED_PowerDeliveryNotApplied"))
        if not ready:
            s.equipment.energy_transfer(False, "DC")
        s.context["ready"] = ready
        return Reply({"ResponseCode": "OK", **self._status(s)})

    def _secc_CurrentDemandReq(self, s: SeccSession, body: dict, message: dict) -> Reply:
        s.equipment.ev_status(soc=body["DC_EVStatus"]["EVRESSSOC"])
        present = s.equipment.current_demand(physical_value(body["EVTargetVoltage"]),
                                             physical_value(body["EVTargetCurrent"]))
        caps = s.equipment.capabilities
        return Reply({"ResponseCode": "OK", **self._status(s, loop=True),
                      "EVSEPresentVoltage": physical(present.voltage, "V", low=-1),
                      "EVSEPresentCurrent": physical(present.current, "A", low=-1),
                      "EVSECurrentLimitAchieved": present.current_limit_achieved,
                      "EVSEVoltageLimitAchieved": present.voltage_limit_achieved,
                      "EVSEPowerLimitAchieved": present.power_limit_achieved,
                      "EVSEMaximumVoltageLimit": physical(caps.dc_max_voltage, "V"),
                      "EVSEMaximumCurrentLimit": physical(caps.dc_max_current, "A"),
                      "EVSEMaximumPowerLimit": physical(caps.dc_max_power, "W")})

    def _secc_WeldingDetectionReq(self, s: SeccSession, body: dict, message: dict) -> Reply:
        return Reply({"ResponseCode": "OK", **self._status(s),
                      "EVSEPresentVoltage": physical(s.equipment.present().voltage, "V", low=-1)})

    def _secc_SessionStopReq(self, s: SeccSession, body: dict, message: dict) -> Reply:
        if s.context.get("ready"):
            s.equipment.energy_transfer(False, "DC")
        s.equipment.session_ended(s.session_id, "Terminate", False)
        return Reply({"ResponseCode": "OK"}, ends=True)

    def secc_failure(self, s: SeccSession, request: str, code: str) -> dict:
        """Mandatory content only (DIN 70121 9.4.1, like [V2G2-736])."""
        caps = s.equipment.capabilities
        status = {"DC_EVSEStatus": {"EVSEStatusCode": "EVSE_NotReady", "NotificationMaxDelay": 0,
                                    "EVSENotification": "None"}}
        zero_v = physical(0, "V")
        bodies: dict[str, dict] = {
            "SessionSetupReq": {"EVSEID": "00"},
            "ServiceDiscoveryReq": {"PaymentOptions": {"PaymentOption": ["ExternalPayment"]},
                                    "ChargeService": {"ServiceTag": {"ServiceID": CHARGE_SERVICE,
                                                                     "ServiceCategory": "EVCharging"},
                                                      "FreeService": False, "EnergyTransferType": "DC_extended"}},
            "ServicePaymentSelectionReq": {},
            "ContractAuthenticationReq": {"EVSEProcessing": "Finished"},
            "ChargeParameterDiscoveryReq": {
                "EVSEProcessing": "Finished",
                "SAScheduleList": {"SAScheduleTuple": [{"SAScheduleTupleID": SCHEDULE_ID, "PMaxSchedule": {
                    "PMaxScheduleID": 0, "PMaxScheduleEntry": [{"RelativeTimeInterval": {"start": 0}, "PMax": 0}]}}]},
                "DC_EVSEChargeParameter": {**status, "EVSEMaximumCurrentLimit": physical(0, "A"),
                                           "EVSEMaximumVoltageLimit": zero_v, "EVSEMinimumCurrentLimit": physical(0, "A"),
                                           "EVSEMinimumVoltageLimit": zero_v, "EVSEPeakCurrentRipple": physical(0, "A")}},
            "CableCheckReq": {**status, "EVSEProcessing": "Finished"},
            "PreChargeReq": {**status, "EVSEPresentVoltage": zero_v},
            "PowerDeliveryReq": status,
            "CurrentDemandReq": {**status, "EVSEPresentVoltage": zero_v, "EVSEPresentCurrent": physical(0, "A"),
                                 "EVSECurrentLimitAchieved": False, "EVSEVoltageLimitAchieved": False,
                                 "EVSEPowerLimitAchieved": False},
            "WeldingDetectionReq": {**status, "EVSEPresentVoltage": zero_v},
            "SessionStopReq": {},
        }
        del caps
        return {"ResponseCode": code, **bodies.get(request, {})}

    # ================================= EVCC =================================================

    def evcc_first(self, e: EvccSession) -> Request:
        e.context.update(loops=0, dc=True, welding=0)
        if not e.ev.plan.dc:
            e.context["stop"] = "DIN 70121 is DC only"
        return Request("SessionSetupReq", {"EVCCID": e.evccid})

    def evcc_next(self, e: EvccSession, name: str, body: dict, message: dict) -> Request | Stop:
        return getattr(self, f"_after_{name}")(e, body, message)

    def _ev_status(self, e: EvccSession, ready: bool = True) -> dict:
        return {"EVReady": ready, "EVErrorCode": "NO_ERROR", "EVRESSSOC": e.ev.soc_percent}

    def _after_SessionSetupRes(self, e: EvccSession, body: dict, message: dict) -> Request | Stop:
        if e.context.get("stop"):
            return Request("SessionStopReq", {})
        return Request("ServiceDiscoveryReq", {})

    def _after_ServiceDiscoveryRes(self, e: EvccSession, body: dict, message: dict) -> Request | Stop:
        if "ExternalPayment" not in body["PaymentOptions"]["PaymentOption"]:
            return Stop(False, "the EVSE does not offer ExternalPayment")
        service = body["ChargeService"]["ServiceTag"]["ServiceID"]
        return Request("ServicePaymentSelectionReq", {"SelectedPaymentOption": "ExternalPayment",
                                                      "SelectedServiceList": {"SelectedService": [{"ServiceID": service}]}})

    def _after_ServicePaymentSelectionRes(self, e: EvccSession, body: dict, message: dict) -> Request | Stop:
        return Request("ContractAuthenticationReq", {})

    def _after_ContractAuthenticationRes(self, e: EvccSession, body: dict, message: dict) -> Request | Stop:
        e.context["processing"] = body["EVSEProcessing"]
        if body["EVSEProcessing"] != "Finished":
            return Request("ContractAuthenticationReq", {}, delay=e.timing.wait(e.ev.plan.ongoing_interval))
        return Request("ChargeParameterDiscoveryReq", self._ev_charge_parameter(e))

    def _ev_charge_parameter(self, e: EvccSession) -> dict:
        ev = e.ev
        return {"EVRequestedEnergyTransferType": "DC_extended", "DC_EVChargeParameter": {
            "DC_EVStatus": self._ev_status(e),
            "EVMaximumCurrentLimit": physical(ev.dc_max_current, "A"),
            "EVMaximumPowerLimit": physical(ev.max_charge_power, "W"),
            "EVMaximumVoltageLimit": physical(ev.dc_max_voltage, "V"),
            "EVEnergyCapacity": physical(ev.energy_capacity_wh(), "Wh"),
            "EVEnergyRequest": physical(ev.energy_request_wh(), "Wh"),
            "FullSOC": percent(ev.target_soc), "BulkSOC": percent(min(ev.target_soc, 0.8))}}

    def _after_ChargeParameterDiscoveryRes(self, e: EvccSession, body: dict, message: dict) -> Request | Stop:
        e.context["processing"] = body["EVSEProcessing"]
        if body["EVSEProcessing"] != "Finished":
            return Request("ChargeParameterDiscoveryReq", self._ev_charge_parameter(e),
                           delay=e.timing.wait(e.ev.plan.ongoing_interval))
        parameter = body["DC_EVSEChargeParameter"]
        grant = e.ev.grant
        grant.dc_max_current = physical_value(parameter["EVSEMaximumCurrentLimit"])
        grant.dc_max_voltage = physical_value(parameter["EVSEMaximumVoltageLimit"])
        grant.dc_max_power = physical_value(parameter.get("EVSEMaximumPowerLimit"), 0.0) or None
        return Request("CableCheckReq", {"DC_EVStatus": self._ev_status(e)}, cp="C")

    def _after_CableCheckRes(self, e: EvccSession, body: dict, message: dict) -> Request | Stop:
        e.context["processing"] = body["EVSEProcessing"]
        if body["EVSEProcessing"] != "Finished":
            if e.elapsed_since_first("CableCheckReq") > e.timing.timeout(e.timing.of("din").cable_check_timeout or 38):
                return Stop(False, "V2G_EVCC_CableCheck_Timeout")
            return Request("CableCheckReq", {"DC_EVStatus": self._ev_status(e)},
                           delay=e.timing.wait(e.ev.plan.ongoing_interval))
        return self._pre_charge(e)

    def _pre_charge(self, e: EvccSession, delay: float = 0.0) -> Request:
        return Request("PreChargeReq", {"DC_EVStatus": self._ev_status(e),
                                        "EVTargetVoltage": physical(e.ev.pack_voltage(), "V", low=-1),
                                        "EVTargetCurrent": physical(2.0, "A")}, delay=delay)

    def _after_PreChargeRes(self, e: EvccSession, body: dict, message: dict) -> Request | Stop:
        present = physical_value(body["EVSEPresentVoltage"])
        if abs(present - e.ev.pack_voltage()) > PRE_CHARGE_TOLERANCE_V:
            if e.elapsed_since_first("PreChargeReq") > e.timing.timeout(e.timing.of("din").pre_charge_timeout or 7):
                return Stop(False, "V2G_EVCC_PreCharge_Timeout")
            return self._pre_charge(e, e.timing.wait(e.ev.plan.ongoing_interval))
        return self._power_delivery(e, True)

    def _power_delivery(self, e: EvccSession, ready: bool, cp: str | None = None) -> Request:
        e.context["ready_sent"] = ready
        return Request("PowerDeliveryReq", {"ReadyToChargeState": ready, "DC_EVPowerDeliveryParameter": {
            "DC_EVStatus": self._ev_status(e), "BulkChargingComplete": False,
            "ChargingComplete": e.ev.charging_complete()}}, cp=cp)

    def _after_PowerDeliveryRes(self, e: EvccSession, body: dict, message: dict) -> Request | Stop:
        e.context["ready"] = e.context.get("ready_sent")
        if e.context["ready"]:
            return self._current_demand(e)
        return Request("WeldingDetectionReq", {"DC_EVStatus": self._ev_status(e, ready=False)})

    def _current_demand(self, e: EvccSession, delay: float = 0.0) -> Request:
        ev = e.ev
        return Request("CurrentDemandReq", {
            "DC_EVStatus": self._ev_status(e),
            "EVTargetCurrent": physical(ev.dc_target_current(), "A", low=-1),
            "EVMaximumVoltageLimit": physical(ev.dc_max_voltage, "V"),
            "EVMaximumCurrentLimit": physical(ev.dc_max_current, "A"),
            "EVMaximumPowerLimit": physical(ev.max_charge_power, "W"),
            "BulkChargingComplete": False, "ChargingComplete": ev.charging_complete(),
            "EVTargetVoltage": physical(ev.pack_voltage(), "V", low=-1)}, delay=delay)

    def _after_CurrentDemandRes(self, e: EvccSession, body: dict, message: dict) -> Request | Stop:
        e.context["loops"] += 1
        grant = e.ev.grant
        grant.dc_present_voltage = physical_value(body["EVSEPresentVoltage"])
        grant.dc_present_current = physical_value(body["EVSEPresentCurrent"])
        notification = body["DC_EVSEStatus"]["EVSENotification"]
        grant.notification = notification
        if notification == "StopCharging" or not e.ev.keep_going(e.context["loops"]):
            return self._power_delivery(e, False, cp="B")
        return self._current_demand(e, e.timing.wait(e.ev.plan.loop_interval))

    def _after_WeldingDetectionRes(self, e: EvccSession, body: dict, message: dict) -> Request | Stop:
        e.context["welding"] += 1
        if physical_value(body["EVSEPresentVoltage"]) > WELDING_VOLTAGE_V and e.context["welding"] < 20:
            return Request("WeldingDetectionReq", {"DC_EVStatus": self._ev_status(e, ready=False)},
                           delay=e.timing.wait(e.ev.plan.ongoing_interval))
        return Request("SessionStopReq", {}, cp="B")

    def _after_SessionStopRes(self, e: EvccSession, body: dict, message: dict) -> Request | Stop:
        if e.context.get("stop"):
            return Stop(False, e.context["stop"])
        return Stop(True, "session terminated")


RULES = DinRules()
