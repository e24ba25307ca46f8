"""The DC steps DIN SPEC 70121 and ISO 15118-2 share, for both sides: CableCheck, PreCharge,
CurrentDemand and WeldingDetection, and the DC parts of ChargeParameterDiscovery.

DIN 70121 is the DC-only ancestor of -2: these four message pairs have the same names and the
same elements in both schemas (V2G_CI_MsgBody.xsd), so one set of steps serves both. What the
two standards say differently stays with the protocol's rules, as the hooks of :class:`DcRules`:

- the DC_EVSEStatus. DIN 70121's ``DC_EVSEStatusType`` is EVSEIsolationStatus (optional),
  EVSEStatusCode, NotificationMaxDelay, EVSENotification; -2's extends ``EVSEStatusType``
  (NotificationMaxDelay, EVSENotification) with EVSEIsolationStatus (optional) and
  EVSEStatusCode (both in V2G_CI_MsgDataTypes.xsd): :func:`din_dc_evse_status` and
  :func:`iso2_dc_evse_status`, chosen by :meth:`DcRules.dc_evse_status`;
- CurrentDemandRes: -2 adds EVSEID and SAScheduleTupleID (and MeterInfo, ReceiptRequired for
  Plug & Charge) to DIN's elements: :meth:`DcRules.current_demand_extras`;
- what follows PreCharge, each CurrentDemandRes and the welding detection: PowerDelivery with
  ReadyToChargeState (DIN) or ChargeProgress (-2), SessionStop without or with ChargingSession.

The EVCC's V2G_EVCC_CableCheck_Timeout and V2G_EVCC_PreCharge_Timeout come from the protocol's
timer table (:mod:`harness.v2g.timers`) through :func:`cable_check_expired` and
:func:`pre_charge_expired`, which ISO 15118-20's DC_CableCheck and DC_PreCharge use too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.v2g.equipment import ChargingNeeds
from harness.v2g.machine import Context, Reply, Request, Rules, Stop, context_of, target_notice
from harness.v2g.values import percent, physical, physical_value

if TYPE_CHECKING:  # the machines hand themselves to these rules
    from harness.v2g.session import EvccSession, SeccSession

#: the EV's PreCharge is done when the EVSE's output is this close to its battery voltage
PRE_CHARGE_TOLERANCE_V = 20.0
#: the current the EV asks for while the EVSE pre-charges
PRE_CHARGE_CURRENT_A = 2.0
#: the EV takes the contactors as open (not welded) below this EVSE output voltage
WELDING_VOLTAGE_V = 60.0
#: WeldingDetectionReq the EV sends at most before it stops anyway
WELDING_ATTEMPTS = 20


# -- the DC part of the context ------------------------------------------------------------------

@dataclass
class DcSecc(Context):
    """What the SECC keeps of the DC steps."""

    #: the isolation test passed (CableCheck finished)
    isolation_checked: bool = False


@dataclass
class DcEvcc(Context):
    """What the EVCC keeps of the DC steps."""

    #: WeldingDetectionReq sent so far
    welding: int = 0


# -- DC_EVSEStatus: where DIN 70121 and -2 differ -----------------------------------------------

def din_dc_evse_status(*, notification: str = "None", isolation: str | None = None,
                       code: str = "EVSE_Ready") -> dict:
    """DIN 70121 ``DC_EVSEStatusType``: EVSEIsolationStatus (minOccurs 0), EVSEStatusCode,
    NotificationMaxDelay, EVSENotification."""
    status: dict[str, Any] = {}
    if isolation is not None:
        status["EVSEIsolationStatus"] = isolation
    status.update(EVSEStatusCode=code, NotificationMaxDelay=0, EVSENotification=notification)
    return {"DC_EVSEStatus": status}


def iso2_dc_evse_status(*, notification: str = "None", isolation: str | None = None,
                        code: str = "EVSE_Ready") -> dict:
    """ISO 15118-2 ``DC_EVSEStatusType``: the ``EVSEStatusType`` it extends (NotificationMaxDelay,
    EVSENotification), then EVSEIsolationStatus (minOccurs 0) and EVSEStatusCode."""
    status: dict[str, Any] = {"NotificationMaxDelay": 0, "EVSENotification": notification}
    if isolation is not None:
        status["EVSEIsolationStatus"] = isolation
    status["EVSEStatusCode"] = code
    return {"DC_EVSEStatus": status}


# -- the EVCC's DC timers (all three protocols) --------------------------------------------------

def cable_check_expired(e: EvccSession, family: str, request: str) -> bool:
    """V2G_EVCC_CableCheck_Timeout (``family``'s timer table) has run out since ``request`` was
    first sent."""
    return e.elapsed_since_first(request) > e.timing.timeout(e.timing.of(family).cable_check())


def pre_charge_expired(e: EvccSession, family: str, request: str) -> bool:
    """V2G_EVCC_PreCharge_Timeout (``family``'s timer table) has run out since ``request`` was
    first sent."""
    return e.elapsed_since_first(request) > e.timing.timeout(e.timing.of(family).pre_charge())


# -- the steps -------------------------------------------------------------------------------------

class DcRules(Rules):
    """The DC steps of DIN 70121 and ISO 15118-2 for both sides; the protocol's rules subclass
    it and fill in the hooks (see the module docstring). Their contexts are :class:`DcSecc` and
    :class:`DcEvcc` (and what the protocol adds)."""

    #: the EVCC repeats CableCheckReq until the EVSE reports EVSEIsolationStatus Valid or Warning,
    #: even after EVSEProcessing=Finished (the harness's -2 EV; the element is optional in both
    #: schemas, and the harness's DIN EV goes on at Finished as DIN SECCs often leave it out)
    isolation_gates_pre_charge = False

    # -- hooks: what DIN 70121 and -2 say differently ------------------------------------------

    def dc_evse_status(self, s: SeccSession, *, loop: bool = False) -> dict:
        """``{"DC_EVSEStatus": ...}`` as this standard writes it; ``loop``: in the charge loop,
        where the EVSE's notification goes out."""
        raise NotImplementedError

    def dc_failure_status(self) -> dict:
        """The DC_EVSEStatus of a FAILED response (mandatory elements only)."""
        raise NotImplementedError

    def current_demand_extras(self, s: SeccSession) -> dict:
        """What CurrentDemandRes carries after the elements both standards have."""
        return {}

    def current_demand_failure_extras(self, s: SeccSession) -> dict:
        """The mandatory part of :meth:`current_demand_extras` in a FAILED response."""
        return {}

    def after_pre_charge(self, e: EvccSession) -> Request:
        """The PowerDeliveryReq that starts the energy transfer."""
        raise NotImplementedError

    def after_current_demand(self, e: EvccSession, body: dict) -> Request | Stop:
        """What follows a CurrentDemandRes (its present values already taken)."""
        raise NotImplementedError

    def after_welding_detection(self, e: EvccSession) -> Request:
        """The SessionStopReq after the welding detection."""
        raise NotImplementedError

    # ================================= SECC =================================================

    def dc_evse_charge_parameter(self, s: SeccSession) -> dict:
        caps = s.equipment.capabilities
        return {"DC_EVSEChargeParameter": {
            **self.dc_evse_status(s),
            "EVSEMaximumCurrentLimit": physical(caps.dc_max_current, "A"),
            "EVSEMaximumPowerLimit": physical(s.equipment.power_limit("DC"), "W"),
            "EVSEMaximumVoltageLimit": physical(caps.dc_max_voltage, "V"),
            "EVSEMinimumCurrentLimit": physical(caps.dc_min_current, "A"),
            "EVSEMinimumVoltageLimit": physical(caps.dc_min_voltage, "V"),
            "EVSEPeakCurrentRipple": physical(caps.dc_peak_current_ripple, "A", low=-1)}}

    def _secc_CableCheckReq(self, s: SeccSession, body: dict, message: dict) -> Reply:
        c = context_of(s, DcSecc)
        s.equipment.ev_status(soc=body["DC_EVStatus"]["EVRESSSOC"], ready=body["DC_EVStatus"]["EVReady"])
        done = s.equipment.cable_check()
        c.isolation_checked = done
        c.processing = "Finished" if done else "Ongoing"
        return Reply({"ResponseCode": "OK", **self.dc_evse_status(s), "EVSEProcessing": c.processing})

    def _secc_PreChargeReq(self, s: SeccSession, body: dict, message: dict) -> Reply:
        s.equipment.ev_status(soc=body["DC_EVStatus"]["EVRESSSOC"])
        present = s.equipment.pre_charge(physical_value(body["EVTargetVoltage"]),
                                         physical_value(body["EVTargetCurrent"]))
        return Reply({"ResponseCode": "OK", **self.dc_evse_status(s),
                      "EVSEPresentVoltage": physical(present.voltage, "V", low=-1)})

    def _secc_CurrentDemandReq(self, s: SeccSession, body: dict, message: dict) -> Reply:
        s.equipment.ev_status(soc=body["DC_EVStatus"]["EVRESSSOC"])
        present = s.equipment.current_demand(physical_value(body["EVTargetVoltage"]),
                                             physical_value(body["EVTargetCurrent"]))
        caps = s.equipment.capabilities
        status = self.dc_evse_status(s, loop=True)
        limit = s.equipment.power_limit("DC")
        return Reply({"ResponseCode": "OK", **status,
                      "EVSEPresentVoltage": physical(present.voltage, "V", low=-1),
                      "EVSEPresentCurrent": physical(present.current, "A", low=-1),
                      "EVSECurrentLimitAchieved": present.current_limit_achieved,
                      "EVSEVoltageLimitAchieved": present.voltage_limit_achieved,
                      "EVSEPowerLimitAchieved": present.power_limit_achieved,
                      "EVSEMaximumVoltageLimit": physical(caps.dc_max_voltage, "V"),
                      "EVSEMaximumCurrentLimit": physical(caps.dc_max_current, "A"),
                      "EVSEMaximumPowerLimit": physical(limit, "W"),
                      **self.current_demand_extras(s)}, notices=target_notice(s.context, limit))

    def _secc_WeldingDetectionReq(self, s: SeccSession, body: dict, message: dict) -> Reply:
        present = s.equipment.present()
        return Reply({"ResponseCode": "OK", **self.dc_evse_status(s),
                      "EVSEPresentVoltage": physical(present.voltage, "V", low=-1)})

    def dc_failure_bodies(self, s: SeccSession) -> dict[str, dict]:
        """The mandatory content of the DC responses, for :meth:`Rules.secc_failure`."""
        status = self.dc_failure_status()
        zero_v, zero_a = physical(0, "V"), physical(0, "A")
        return {
            "CableCheckReq": {**status, "EVSEProcessing": "Finished"},
            "PreChargeReq": {**status, "EVSEPresentVoltage": zero_v},
            "CurrentDemandReq": {**status, "EVSEPresentVoltage": zero_v, "EVSEPresentCurrent": zero_a,
                                 "EVSECurrentLimitAchieved": False, "EVSEVoltageLimitAchieved": False,
                                 "EVSEPowerLimitAchieved": False, **self.current_demand_failure_extras(s)},
            "WeldingDetectionReq": {**status, "EVSEPresentVoltage": zero_v},
        }

    # ================================= EVCC =================================================

    @staticmethod
    def dc_ev_status(e: EvccSession, ready: bool = True) -> dict:
        return {"EVReady": ready, "EVErrorCode": "NO_ERROR", "EVRESSSOC": e.ev.soc_percent}

    def dc_ev_charge_parameter(self, e: EvccSession) -> dict:
        """DC_EVChargeParameter from DC_EVStatus on (-2 puts DepartureTime before it)."""
        ev = e.ev
        return {"DC_EVStatus": self.dc_ev_status(e),
                "EVMaximumCurrentLimit": physical(ev.dc_max_current, "A"),
                "EVMaximumPowerLimit": physical(ev.max_charge_power, "W"),
                "EVMaximumVoltageLimit": physical(ev.dc_max_voltage, "V"),
                "EVEnergyCapacity": physical(ev.energy_capacity_wh(), "Wh"),
                "EVEnergyRequest": physical(ev.energy_request_wh(), "Wh"),
                "FullSOC": percent(ev.target_soc), "BulkSOC": percent(min(ev.target_soc, 0.8))}

    @staticmethod
    def take_dc_evse_limits(e: EvccSession, parameter: dict, power: float | None) -> None:
        """The EVSE's DC limits of ChargeParameterDiscoveryRes into the EV's grant; ``power``:
        its maximum power as the protocol reads it."""
        grant = e.ev.grant
        grant.dc_max_current = physical_value(parameter["EVSEMaximumCurrentLimit"])
        grant.dc_max_voltage = physical_value(parameter["EVSEMaximumVoltageLimit"])
        grant.dc_max_power = power

    def _cable_check(self, e: EvccSession, *, cp: str | None = None, delay: float = 0.0) -> Request:
        return Request("CableCheckReq", {"DC_EVStatus": self.dc_ev_status(e)}, cp=cp, delay=delay)

    def _after_CableCheckRes(self, e: EvccSession, body: dict, message: dict) -> Request | Stop:
        c = context_of(e, DcEvcc)
        c.processing = body["EVSEProcessing"]
        isolated = (not self.isolation_gates_pre_charge
                    or body["DC_EVSEStatus"].get("EVSEIsolationStatus") in ("Valid", "Warning"))
        if body["EVSEProcessing"] != "Finished" or not isolated:
            if cable_check_expired(e, self.family, "CableCheckReq"):
                return Stop(False, "V2G_EVCC_CableCheck_Timeout")
            return self._cable_check(e, delay=e.timing.wait(e.ev.plan.ongoing_interval))
        return self._pre_charge(e)

    def _pre_charge(self, e: EvccSession, delay: float = 0.0) -> Request:
        return Request("PreChargeReq", {"DC_EVStatus": self.dc_ev_status(e),
                                        "EVTargetVoltage": physical(e.ev.pack_voltage(), "V", low=-1),
                                        "EVTargetCurrent": physical(PRE_CHARGE_CURRENT_A, "A")}, delay=delay)

    def _after_PreChargeRes(self, e: EvccSession, body: dict, message: dict) -> Request | Stop:
        present = physical_value(body["EVSEPresentVoltage"])
        e.ev.grant.dc_present_voltage = present
        if abs(present - e.ev.pack_voltage()) > PRE_CHARGE_TOLERANCE_V:
            if pre_charge_expired(e, self.family, "PreChargeReq"):
                return Stop(False, "V2G_EVCC_PreCharge_Timeout")
            return self._pre_charge(e, e.timing.wait(e.ev.plan.ongoing_interval))
        return self.after_pre_charge(e)

    def _current_demand(self, e: EvccSession, delay: float = 0.0) -> Request:
        ev = e.ev
        return Request("CurrentDemandReq", {
            "DC_EVStatus": self.dc_ev_status(e),
            "EVTargetCurrent": physical(ev.dc_target_current(), "A", low=-1),
            "EVMaximumVoltageLimit": physical(ev.dc_max_voltage, "V"),
            "EVMaximumCurrentLimit": physical(ev.dc_max_current, "A"),
            "EVMaximumPowerLimit": physical(ev.max_charge_power, "W"),
            "BulkChargingComplete": False, "ChargingComplete": ev.charging_complete(),
            "EVTargetVoltage": physical(ev.pack_voltage(), "V", low=-1)}, delay=delay)

    def _after_CurrentDemandRes(self, e: EvccSession, body: dict, message: dict) -> Request | Stop:
        grant = e.ev.grant
        grant.dc_present_voltage = physical_value(body["EVSEPresentVoltage"])
        grant.dc_present_current = physical_value(body["EVSEPresentCurrent"])
        return self.after_current_demand(e, body)

    def _welding_detection(self, e: EvccSession, delay: float = 0.0) -> Request:
        return Request("WeldingDetectionReq", {"DC_EVStatus": self.dc_ev_status(e, ready=False)}, delay=delay)

    def _after_WeldingDetectionRes(self, e: EvccSession, body: dict, message: dict) -> Request | Stop:
        c = context_of(e, DcEvcc)
        c.welding += 1
        if physical_value(body["EVSEPresentVoltage"]) > WELDING_VOLTAGE_V and c.welding < WELDING_ATTEMPTS:
            return self._welding_detection(e, e.timing.wait(e.ev.plan.ongoing_interval))
        return self.after_welding_detection(e)


def charging_needs(parameter: dict) -> ChargingNeeds:
    """A DC_EVChargeParameter (DIN 70121 and ISO 15118-2 alike) in the shape every protocol shares."""
    def value(name: str) -> float | None:
        return physical_value(parameter[name]) if name in parameter else None

    return ChargingNeeds("DC", energy_wh=value("EVEnergyRequest"), max_current=value("EVMaximumCurrentLimit"),
                         max_voltage=value("EVMaximumVoltageLimit"), max_power=value("EVMaximumPowerLimit"),
                         soc=parameter["DC_EVStatus"].get("EVRESSSOC"), departure_s=parameter.get("DepartureTime"))
