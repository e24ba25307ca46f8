"""DIN SPEC 70121: the session table and both sides' steps (DC, external identification).

DIN 70121 is the DC-only ancestor of ISO 15118-2: the same message flow with ServicePayment-
Selection and ContractAuthentication instead of PaymentServiceSelection and Authorization, a
ReadyToChargeState flag instead of ChargeProgress, and no Plug & Charge. The SECC's PMaxSchedule
covers 24 h ([V2G-DC-559]), its duration in seconds ([V2G-DC-338]).

CableCheck, PreCharge, CurrentDemand and WeldingDetection are the steps -2 has too
(:mod:`harness.v2g.dc`); what DIN says differently of them is in the hooks of :class:`DinRules`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.v2g import dc, schedules
from harness.v2g.dc import DcEvcc, DcRules, DcSecc
from harness.v2g.machine import START, Context, Reply, Request, Stop, Table, context_of
from harness.v2g.values import physical, physical_value

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


@dataclass
class DinContext(Context):
    """What the table's guards read; both sides keep it (the EVCC from the responses)."""

    #: ReadyToChargeState of the last PowerDelivery: True started, False stopped, None none yet
    ready: bool | None = None


@dataclass
class DinSecc(DinContext, DcSecc):
    """The DIN SECC's session context."""


@dataclass
class DinEvcc(DinContext, DcEvcc):
    """The DIN EVCC's session context."""

    #: ReadyToChargeState of the PowerDeliveryReq awaiting its response
    ready_sent: bool | None = None
    #: why the EV ends the session right after SessionSetup (None: it goes on)
    stop: str | None = None


def _c(s: Any) -> DinContext:
    return context_of(s, DinContext)


GUARDS = {
    ALWAYS: lambda s: True,
    "ongoing": lambda s: _c(s).processing != "Finished",
    "finished": lambda s: _c(s).processing == "Finished",
    "started": lambda s: _c(s).ready is True,
    "stopped": lambda s: _c(s).ready is False,
}

TABLE = Table("din", NEXT, GUARDS)
TABLE.check()

CHARGE_SERVICE = 1
SCHEDULE_ID = 1
SHORT_MAX = 32767


def evse_id_hex(evse_id: str) -> str:
    """DIN's EVSEID is hexBinary: the ID's ASCII bytes (at most 32)."""
    return evse_id.encode("ascii", "replace")[:32].hex().upper()


class DinRules(DcRules):
    family = "din"
    table = TABLE

    # -- what DIN says differently of the DC steps (see harness.v2g.dc) -------------------------

    def dc_evse_status(self, s: SeccSession, *, loop: bool = False) -> dict:
        """DIN's DC_EVSEStatus; EVSEIsolationStatus (optional in DIN) once the cable check passed."""
        notification = s.equipment.notification() if loop else "None"
        return dc.din_dc_evse_status(notification=notification,
                                     isolation="Valid" if context_of(s, DinSecc).isolation_checked else None)

    def dc_failure_status(self) -> dict:
        return dc.din_dc_evse_status(code="EVSE_NotReady")

    def after_pre_charge(self, e: EvccSession) -> Request:
        return self._power_delivery(e, True)

    def after_current_demand(self, e: EvccSession, body: dict) -> Request | Stop:
        c = context_of(e, DinEvcc)
        c.loops += 1
        notification = body["DC_EVSEStatus"]["EVSENotification"]
        e.ev.grant.notification = notification
        if notification == "StopCharging" or not e.ev.keep_going(c.loops):
            return self._power_delivery(e, False, cp="B")
        return self._current_demand(e, e.timing.wait(e.ev.plan.loop_interval))

    def after_welding_detection(self, e: EvccSession) -> Request:
        return Request("SessionStopReq", {}, cp="B")  # DIN's SessionStopReq is empty

    # ================================= SECC =================================================

    def secc_start(self, s: SeccSession) -> None:
        s.context = DinSecc()

    def secc_handle(self, s: SeccSession, name: str, body: dict, message: dict) -> Reply:
        return getattr(self, f"_secc_{name}")(s, body, message)

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
        context_of(s, DinSecc).processing = processing
        return Reply({"ResponseCode": "OK", "EVSEProcessing": processing})

    def _secc_ChargeParameterDiscoveryReq(self, s: SeccSession, body: dict, message: dict) -> Reply:
        if body["EVRequestedEnergyTransferType"] not in ("DC_extended", "DC_core", "DC_combo_core"):
            return Reply(self.secc_failure(s, "ChargeParameterDiscoveryReq", "FAILED_WrongEnergyTransferType"))
        parameter = body.get("DC_EVChargeParameter")
        if parameter is None:
            return Reply(self.secc_failure(s, "ChargeParameterDiscoveryReq", "FAILED_WrongChargeParameter"))
        s.equipment.ev_status(soc=parameter["DC_EVStatus"]["EVRESSSOC"])
        s.equipment.ev_charging_needs(dc.charging_needs(parameter))
        context_of(s, DinSecc).processing = "Finished"
        entries = schedules.pmax_entries(s.equipment.power_schedule("DC"), lambda watts: min(SHORT_MAX, int(watts)))
        return Reply({"ResponseCode": "OK", "EVSEProcessing": "Finished",
                      "SAScheduleList": {"SAScheduleTuple": [{"SAScheduleTupleID": SCHEDULE_ID, "PMaxSchedule": {
                          "PMaxScheduleID": 0, "PMaxScheduleEntry": entries}}]},
                      **self.dc_evse_charge_parameter(s)})

    def _secc_PowerDeliveryReq(self, s: SeccSession, body: dict, message: dict) -> Reply:
        ready = body["ReadyToChargeState"]
        if ready and not s.equipment.energy_transfer(True, "DC"):
            return Reply(self.secc_failure(s, "PowerDeliveryReq", "FAILED_PowerDeliveryNotApplied"))
        if not ready:
            s.equipment.energy_transfer(False, "DC")
        context_of(s, DinSecc).ready = ready
        return Reply({"ResponseCode": "OK", **self.dc_evse_status(s)})

    def _secc_SessionStopReq(self, s: SeccSession, body: dict, message: dict) -> Reply:
        if context_of(s, DinSecc).ready:
            s.equipment.energy_transfer(False, "DC")
        s.equipment.session_ended(s.session_id, "Terminate", False)
        return Reply({"ResponseCode": "OK"}, ends=True)

    def secc_failure(self, s: SeccSession, request: str, code: str) -> dict:
        """Mandatory content only (DIN 70121 9.4.1, like [V2G2-736])."""
        status = self.dc_failure_status()
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
            **self.dc_failure_bodies(s),
            "PowerDeliveryReq": status,
            "SessionStopReq": {},
        }
        return {"ResponseCode": code, **bodies.get(request, {})}

    # ================================= EVCC =================================================

    def evcc_first(self, e: EvccSession) -> Request:
        e.context = DinEvcc(stop=None if e.ev.plan.dc else "DIN 70121 is DC only")
        return Request("SessionSetupReq", {"EVCCID": e.evccid})

    def evcc_next(self, e: EvccSession, name: str, body: dict, message: dict) -> Request | Stop:
        return getattr(self, f"_after_{name}")(e, body, message)

    def _after_SessionSetupRes(self, e: EvccSession, body: dict, message: dict) -> Request | Stop:
        if context_of(e, DinEvcc).stop:
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
        context_of(e, DinEvcc).processing = body["EVSEProcessing"]
        if body["EVSEProcessing"] != "Finished":
            return Request("ContractAuthenticationReq", {}, delay=e.timing.wait(e.ev.plan.ongoing_interval))
        return Request("ChargeParameterDiscoveryReq", self._ev_charge_parameter(e))

    def _ev_charge_parameter(self, e: EvccSession) -> dict:
        return {"EVRequestedEnergyTransferType": "DC_extended", "DC_EVChargeParameter": self.dc_ev_charge_parameter(e)}

    def _after_ChargeParameterDiscoveryRes(self, e: EvccSession, body: dict, message: dict) -> Request | Stop:
        context_of(e, DinEvcc).processing = body["EVSEProcessing"]
        if body["EVSEProcessing"] != "Finished":
            return Request("ChargeParameterDiscoveryReq", self._ev_charge_parameter(e),
                           delay=e.timing.wait(e.ev.plan.ongoing_interval))
        tuples = ((body.get("SAScheduleList") or {}).get("SAScheduleTuple")) or []
        entries = (tuples[0].get("PMaxSchedule") or {}).get("PMaxScheduleEntry") or [] if tuples else []
        e.ev.grant.take_schedule(schedules.from_pmax_entries(entries, float), e.ev.clock(), follow=False)
        parameter = body["DC_EVSEChargeParameter"]
        # DIN's EVSEMaximumPowerLimit is optional (DC_EVSEChargeParameterType, minOccurs 0)
        self.take_dc_evse_limits(e, parameter, physical_value(parameter.get("EVSEMaximumPowerLimit"), 0.0) or None)
        return self._cable_check(e, cp="C")

    def _power_delivery(self, e: EvccSession, ready: bool, cp: str | None = None) -> Request:
        context_of(e, DinEvcc).ready_sent = ready
        return Request("PowerDeliveryReq", {"ReadyToChargeState": ready, "DC_EVPowerDeliveryParameter": {
            "DC_EVStatus": self.dc_ev_status(e), "BulkChargingComplete": False,
            "ChargingComplete": e.ev.charging_complete()}}, cp=cp)

    def _after_PowerDeliveryRes(self, e: EvccSession, body: dict, message: dict) -> Request | Stop:
        c = context_of(e, DinEvcc)
        c.ready = c.ready_sent
        if c.ready:
            return self._current_demand(e)
        return self._welding_detection(e)

    def _after_SessionStopRes(self, e: EvccSession, body: dict, message: dict) -> Request | Stop:
        stop = context_of(e, DinEvcc).stop
        if stop:
            return Stop(False, stop)
        return Stop(True, "session terminated")


RULES = DinRules()
