"""ISO 15118-20: the session table and both sides' steps (AC, DC, AC_BPT, DC_BPT; scheduled and
dynamic control; EIM and Plug & Charge).

Messages live in three schemas: CommonMessages (V2GTP 0x8002) and the AC or DC ones (0x8003,
0x8004); :func:`harness.v2g.messages.schema_of` picks by name. The SAP namespace fixes AC or DC;
the service selected (AC=1, DC=2, AC_BPT=5, DC_BPT=6; -20 Table 204) and its parameter set fix
bidirectionality and the control mode. The SECC answers unexpected requests with
FAILED_SequenceError ([V2G20-459]), a foreign SessionID with FAILED_UnknownSession
([V2G20-460]), a bad signature with FAILED_SignatureError ([V2G20-461]); FAILED responses carry
only the mandatory parameters at minimal size ([V2G20-736]).

Certificate installation (CertificateInstallationReq/Res, CommonMessages): the EVCC asks for a
contract after AuthorizationSetupRes offers CertificateInstallationService, signing its
OEMProvisioningCertificateChain; the SECC relays the request to its CSMS (OCPP
Get15118EVCertificate) or provisions itself, and the EVCC checks the CPS signature over
SignedInstallationData, decrypts the contract key and authorizes with the new contract.

Not provided: MeteringConfirmation of -20 (the SECC answers it with a sequence error), WPT and
ACDP.

The DC messages of -20 (DC_CableCheck, DC_PreCharge, DC_ChargeLoop, DC_WeldingDetection) differ
from those of DIN 70121 and -2; they share the EVCC's DC timers and the EV's voltage thresholds
with them (:mod:`harness.v2g.dc`).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from harness.pki.contract_key import EncryptedContractKey, decrypt_iso20
from harness.pki.profiles import Generation
from harness.pki.xmldsig import verify_message
from harness.v2g import messages, pnc, schedules
from harness.v2g.dc import (
    PRE_CHARGE_TOLERANCE_V,
    WELDING_ATTEMPTS,
    WELDING_VOLTAGE_V,
    cable_check_expired,
    pre_charge_expired,
)
from harness.v2g.equipment import ISO20_SERVICE_NAMES, ISO20_SERVICES, ChargingNeeds, EvSchedule
from harness.v2g.machine import (
    START,
    Context,
    Notice,
    Reply,
    Request,
    Rules,
    Stop,
    Table,
    context_of,
    schedule_notice,
    target_notice,
)
from harness.v2g.messages import is_zero_session
from harness.v2g.values import percent, rational, rational_value

if TYPE_CHECKING:  # the machines hand themselves to these rules
    from harness.v2g.session import EvccSession, SeccSession

ALWAYS = "always"

#: after <response> the EVCC may send <request> when <guard>
NEXT: dict[str, dict[str, str]] = {
    START:                            {"SessionSetupReq": ALWAYS},
    "SessionSetupRes":                {"AuthorizationSetupReq": ALWAYS, "SessionStopReq": ALWAYS},
    "AuthorizationSetupRes":          {"AuthorizationReq": ALWAYS, "CertificateInstallationReq": ALWAYS,
                                       "SessionStopReq": ALWAYS},
    "CertificateInstallationRes":     {"CertificateInstallationReq": "ongoing", "AuthorizationReq": "finished",
                                       "SessionStopReq": ALWAYS},
    "AuthorizationRes":               {"AuthorizationReq": "ongoing", "ServiceDiscoveryReq": "finished",
                                       "SessionStopReq": ALWAYS},
    "ServiceDiscoveryRes":            {"ServiceDetailReq": ALWAYS, "ServiceSelectionReq": ALWAYS,
                                       "SessionStopReq": ALWAYS},
    "ServiceDetailRes":               {"ServiceDetailReq": ALWAYS, "ServiceSelectionReq": ALWAYS,
                                       "SessionStopReq": ALWAYS},
    "ServiceSelectionRes":            {"AC_ChargeParameterDiscoveryReq": "ac", "DC_ChargeParameterDiscoveryReq": "dc",
                                       "SessionStopReq": ALWAYS},
    "AC_ChargeParameterDiscoveryRes": {"ScheduleExchangeReq": ALWAYS, "SessionStopReq": ALWAYS},
    "DC_ChargeParameterDiscoveryRes": {"ScheduleExchangeReq": ALWAYS, "SessionStopReq": ALWAYS},
    "ScheduleExchangeRes":            {"ScheduleExchangeReq": "ongoing", "PowerDeliveryReq": "to_power_delivery",
                                       "DC_CableCheckReq": "to_cable_check", "SessionStopReq": ALWAYS},
    "DC_CableCheckRes":               {"DC_CableCheckReq": ALWAYS, "DC_PreChargeReq": "finished",
                                       "SessionStopReq": ALWAYS},
    "DC_PreChargeRes":                {"DC_PreChargeReq": ALWAYS, "PowerDeliveryReq": ALWAYS, "SessionStopReq": ALWAYS},
    "PowerDeliveryRes":               {"PowerDeliveryReq": "ev_ongoing", "AC_ChargeLoopReq": "ac_started",
                                       "DC_ChargeLoopReq": "dc_started", "ScheduleExchangeReq": "renegotiating",
                                       "DC_WeldingDetectionReq": "dc_stopped", "SessionStopReq": "stopped"},
    "AC_ChargeLoopRes":               {"AC_ChargeLoopReq": ALWAYS, "PowerDeliveryReq": ALWAYS},
    "DC_ChargeLoopRes":               {"DC_ChargeLoopReq": ALWAYS, "PowerDeliveryReq": ALWAYS},
    "DC_WeldingDetectionRes":         {"DC_WeldingDetectionReq": ALWAYS, "SessionStopReq": ALWAYS},
}


@dataclass
class Iso20Context(Context):
    """What the table's guards read; both sides keep it (the EVCC from the responses)."""

    #: a DC session (the SAP namespace of the connection)
    dc: bool = False
    #: ChargeProgress and EVProcessing of the last PowerDelivery
    progress: str | None = None
    ev_processing: str | None = None


@dataclass
class Iso20Secc(Iso20Context):
    """The -20 SECC's session context."""

    #: the energy transfer services offered (ServiceIDs, -20 Table 204), the authorizations offered
    services: list[int] = field(default_factory=list)
    authorizations: list[str] = field(default_factory=list)
    #: Plug & Charge: the GenChallenge sent, and what became of the EV's signature and contract
    challenge: str | None = None
    signature_checked: bool = False
    contract_checked: pnc.ContractCheck | None = None
    #: the service selected: its ID, energy (AC, DC, AC_BPT, DC_BPT), control mode and bidirectionality
    service: int | None = None
    energy: str | None = None
    control: str | None = None
    bpt: bool = False
    #: the EV's charge parameter and DepartureTime
    ev_parameter: dict | None = None
    departure: int | None = None
    #: the ScheduleTupleIDs offered
    schedules: set[int] = field(default_factory=set)
    #: the EV chose to discharge (BPT_ChannelSelection)
    discharge: bool = False


@dataclass
class Iso20Evcc(Iso20Context):
    """The -20 EVCC's session context."""

    #: bidirectional, and the control mode ("scheduled", "dynamic")
    bpt: bool = False
    control: str = "scheduled"
    #: the authorization it uses ("EIM", "PnC") and the GenChallenge of AuthorizationSetupRes
    authorization: str | None = None
    challenge: str | None = None
    #: the energy transfer service it selected
    service: int | None = None
    #: the ScheduleTupleID it chose and that schedule's power (W)
    schedule: int | None = None
    schedule_power: float | None = None
    #: (ChargeProgress, EVProcessing) of the PowerDeliveryReq awaiting its response
    progress_sent: tuple[str, str] | None = None
    #: EVProcessing of the DC_PreChargeReq awaiting its response
    pre_charge: str | None = None
    #: ChargingSession of its SessionStopReq: "Terminate" or "Pause"
    stop_kind: str | None = None
    #: DC_WeldingDetectionReq sent, and whether the last one said Finished
    welding: int = 0
    welding_done: bool = False


def _c(s: Any) -> Iso20Context:
    return context_of(s, Iso20Context)


def _secc(s: SeccSession) -> Iso20Secc:
    return context_of(s, Iso20Secc)


def _evcc(e: EvccSession) -> Iso20Evcc:
    return context_of(e, Iso20Evcc)


def _renegotiating(s: Any) -> bool:
    return _c(s).progress == "ScheduleRenegotiation"


def _started(s: Any) -> bool:
    return _c(s).progress == "Start" and _c(s).ev_processing == "Finished"


GUARDS = {
    ALWAYS: lambda s: True,
    "ongoing": lambda s: _c(s).processing != "Finished",
    "finished": lambda s: _c(s).processing == "Finished",
    "ac": lambda s: not _c(s).dc,
    "dc": lambda s: _c(s).dc,
    # after a renegotiated schedule a DC session goes back to PowerDelivery, its cable checked already
    "to_power_delivery": lambda s: _c(s).processing == "Finished" and (not _c(s).dc or _renegotiating(s)),
    "to_cable_check": lambda s: _c(s).dc and _c(s).processing == "Finished" and not _renegotiating(s),
    "ev_ongoing": lambda s: _c(s).ev_processing == "Ongoing",
    "ac_started": lambda s: not _c(s).dc and _started(s),
    "dc_started": lambda s: _c(s).dc and _started(s),
    "renegotiating": _renegotiating,
    "dc_stopped": lambda s: _c(s).dc and _c(s).progress == "Stop",
    "stopped": lambda s: _c(s).progress in ("Stop", "Standby"),
}

TABLE = Table("iso20", NEXT, GUARDS)
TABLE.check()

#: ServiceDetail parameter sets the reference SECC offers per service: (set id, control mode)
CONTROL_MODES = {"scheduled": 1, "dynamic": 2}
MOBILITY_NEEDS = {"scheduled": 1, "dynamic": 2}  # 1 ProvidedByEvcc, 2 ProvidedBySecc
SCHEDULE_ID = 1
#: the ChargeProgress values with which an EV announces its power profile [V2G20-1546] (its "Pause"
#: is not among the values of chargeProgressType)
PROFILE_PROGRESS = ("Start", "Standby", "Stop")
#: -2 words for the EVSE's wishes -> -20 EVSENotification
NOTIFICATIONS = {"None": None, "StopCharging": "Terminate", "ReNegotiation": "ScheduleRenegotiation"}


def _charging_needs(c: Iso20Secc, request: dict, dynamic: bool, phases: int) -> ChargingNeeds:
    """What the EV said in its ChargeParameterDiscoveryReq and ScheduleExchangeReq, in the shape
    every protocol shares (for NotifyEVChargingNeeds)."""
    parameter = c.ev_parameter or {}

    def value(source: dict, name: str) -> float | None:
        return rational_value(source[name]) if name in source else None

    energy = c.energy or ("DC" if c.dc else "AC")
    transfer = energy if energy.endswith("BPT") or energy == "DC" else (
        "AC_three_phase" if phases == 3 else "AC_single_phase")
    target_soc = request.get("TargetSOC", parameter.get("TargetSOC"))
    return ChargingNeeds(transfer, energy_wh=value(request, "EVTargetEnergyRequest"),
                         max_current=value(parameter, "EVMaximumChargeCurrent"),
                         min_current=value(parameter, "EVMinimumChargeCurrent"),
                         max_voltage=value(parameter, "EVMaximumVoltage"),
                         max_power=value(parameter, "EVMaximumChargePower"),
                         min_power=value(parameter, "EVMinimumChargePower"),
                         max_discharge_power=value(parameter, "EVMaximumDischargePower"),
                         min_discharge_power=value(parameter, "EVMinimumDischargePower"),
                         target_energy_wh=value(request, "EVTargetEnergyRequest"),
                         min_energy_wh=value(request, "EVMinimumEnergyRequest"),
                         max_energy_wh=value(request, "EVMaximumEnergyRequest"),
                         min_v2x_energy_wh=value(request, "EVMinimumV2XEnergyRequest"),
                         max_v2x_energy_wh=value(request, "EVMaximumV2XEnergyRequest"),
                         target_soc=None if target_soc is None else float(target_soc),
                         departure_s=request.get("DepartureTime"), control="dynamic" if dynamic else "scheduled")


def _ev_schedule(profile: dict) -> EvSchedule:
    """An EVPowerProfile (durations in s, powers in W) as periods from its start."""
    periods, start = [], 0
    for entry in (profile.get("EVPowerProfileEntries") or {}).get("EVPowerProfileEntry") or []:
        periods.append((start, rational_value(entry["Power"])))
        start += int(entry["Duration"])
    scheduled = profile.get("Scheduled_EVPPTControlMode") or {}
    return EvSchedule(tuple(periods), scheduled.get("SelectedScheduleTupleID"))


def _energy_of(service_id: int) -> str:
    return ISO20_SERVICE_NAMES.get(service_id, "?")


class Iso20Rules(Rules):
    family = "iso20"
    table = TABLE

    # ================================= SECC =================================================

    def secc_start(self, s: SeccSession) -> None:
        dc = s.protocol is not None and s.protocol.key == "iso20-dc"
        caps = s.equipment.capabilities
        offered = [name for name in caps.energy if name.startswith("DC") == dc]
        s.context = Iso20Secc(dc=dc, services=[ISO20_SERVICES[name] for name in offered])

    def secc_stand_in(self, stand_in: SeccSession, ev: EvccSession) -> None:
        """A stand-in SECC offers the schedule the EV chooses (the EV's profile is not what is tested)."""
        c = _secc(stand_in)
        c.dc = _evcc(ev).dc
        if not c.schedules:
            c.schedules = {SCHEDULE_ID}

    def secc_handle(self, s: SeccSession, name: str, body: dict, message: dict) -> Reply:
        return getattr(self, f"_secc_{name}")(s, body, message)

    def _status(self, s: SeccSession) -> dict:
        notification = NOTIFICATIONS.get(s.equipment.notification())
        if notification == "ScheduleRenegotiation" and _secc(s).control == "dynamic":
            notification = None  # in dynamic mode each ChargeLoopRes carries the new targets already
        return {"EVSEStatus": {"NotificationMaxDelay": 0, "EVSENotification": notification}} if notification else {}

    def _secc_SessionSetupReq(self, s: SeccSession, body: dict, message: dict) -> Reply:
        incoming = body["Header"]["SessionID"]
        if not is_zero_session(incoming) and incoming in s.paused:
            s.session_id = incoming
            s.paused.pop(incoming)
            code = "OK_OldSessionJoined"
        else:
            s.session_id = s.new_session_id()
            code = "OK_NewSessionEstablished"
        s.equipment.session_started(s.session_id, body.get("EVCCID"), s.protocol.key if s.protocol else "iso20")
        return Reply({"ResponseCode": code, "EVSEID": s.equipment.capabilities.evse_id})

    def _secc_AuthorizationSetupReq(self, s: SeccSession, body: dict, message: dict) -> Reply:
        caps = s.equipment.capabilities
        services = [m for m in ("EIM", "PnC") if m in caps.identification]
        c = _secc(s)
        c.authorizations = services
        result: dict[str, Any] = {"ResponseCode": "OK", "AuthorizationServices": services,
                                  "CertificateInstallationService": "PnC" in services
                                  and s.equipment.installs_certificates("iso20")}
        if "PnC" in services:
            challenge = c.challenge = base64.b64encode(s.random_bytes(16)).decode()
            result["PnC_ASResAuthorizationMode"] = {"GenChallenge": challenge}
        else:
            result["EIM_ASResAuthorizationMode"] = {}
        return Reply(result)

    def _secc_AuthorizationReq(self, s: SeccSession, body: dict, message: dict) -> Reply:
        service = body["SelectedAuthorizationService"]
        c = _secc(s)
        if service not in c.authorizations:
            return Reply({"ResponseCode": "WARNING_AuthorizationSelectionInvalid", "EVSEProcessing": "Finished"})
        if service == "PnC":
            mode = body.get("PnC_AReqAuthorizationMode") or {}
            if mode.get("GenChallenge") != c.challenge:
                return Reply({"ResponseCode": "WARNING_ChallengeInvalid", "EVSEProcessing": "Finished"})
            try:
                chain = pnc.chain_from_json(mode["ContractCertificateChain"], "ContractCertificateChain")
            except (pnc.CertificateDataError, KeyError):
                return Reply({"ResponseCode": "WARNING_CertificateValidationError", "EVSEProcessing": "Finished"})
            s.emaid = pnc.common_name(chain[0])
            if not c.signature_checked:
                verification = verify_message(message, "iso20", chain[0])
                if not verification.ok:
                    s.facts["signature_problem"] = str(verification)
                    return Reply({"ResponseCode": "FAILED_SignatureError", "EVSEProcessing": "Finished"})
                c.signature_checked = True
            notices: tuple[Notice, ...] = ()
            if c.contract_checked is None:  # once; the EV repeats the request while Ongoing
                check = s.equipment.check_contract(chain, generation=Generation.ISO20, emaid=None)
                c.contract_checked = check
                notices = (pnc.contract_notice(check),)
                if not check.ok:
                    s.facts["contract_problem"] = check.detail
                    return Reply({"ResponseCode": check.refusal, "EVSEProcessing": "Finished"}, notices=notices)
            status = s.equipment.authorize("PnC", emaid=pnc.common_name(chain[0]), contract_chain=chain)
            refusal = pnc.authorization_refusal(status, Generation.ISO20)
        else:
            notices = ()
            status = s.equipment.authorize("EIM")
            refusal = "WARNING_EIMAuthorizationFailure" if status == "Rejected" else None
        if refusal is not None:
            s.facts["authorization_problem"] = status
            return Reply({"ResponseCode": refusal, "EVSEProcessing": "Finished"}, notices=notices)
        processing = "Finished" if status == "Accepted" else "Ongoing"
        c.processing = processing
        return Reply({"ResponseCode": "OK", "EVSEProcessing": processing}, notices=notices)

    def _secc_CertificateInstallationReq(self, s: SeccSession, body: dict, message: dict) -> Reply:
        request = "CertificateInstallationReq"
        relayed = self.secc_relayed(s, request, message, messages.schema_of("iso20", request),
                                    "WARNING_NoCertificateAvailable")
        if relayed is not None:
            return relayed
        try:
            chain = pnc.chain_from_json(body["OEMProvisioningCertificateChain"], "OEMProvisioningCertificateChain")
        except pnc.CertificateDataError:
            return Reply(self.secc_failure(s, request, "WARNING_CertificateValidationError"))
        verification = verify_message(message, "iso20", chain[0])
        if not verification.ok:
            s.facts["signature_problem"] = str(verification)
            return Reply(self.secc_failure(s, request, "FAILED_SignatureError"))
        delivery = s.equipment.certificate_service("install", oem_chain=chain, generation="iso20")
        if delivery is None:
            return Reply(self.secc_failure(s, request, "WARNING_NoCertificateAvailable"))
        return Reply(pnc.delivery_body_iso20(delivery), sign=(delivery.cps_key, ()))

    def _secc_ServiceDiscoveryReq(self, s: SeccSession, body: dict, message: dict) -> Reply:
        services = _secc(s).services
        wanted = (body.get("SupportedServiceIDs") or {}).get("ServiceID")
        if wanted:
            services = [x for x in services if x in wanted] or services
        return Reply({"ResponseCode": "OK", "ServiceRenegotiationSupported": False, "EnergyTransferServiceList": {
            "Service": [{"ServiceID": x, "FreeService": s.equipment.capabilities.free_service} for x in services]}})

    def _parameter_sets(self, s: SeccSession, service: int) -> list[dict]:
        caps = s.equipment.capabilities
        dc = _secc(s).dc
        sets = []
        for mode in caps.control_modes:
            parameters = [{"Name": "Connector", "intValue": 2 if dc else (2 if caps.ac_phases == 3 else 1)},
                          {"Name": "ControlMode", "intValue": CONTROL_MODES[mode]},
                          {"Name": "EVSENominalVoltage", "intValue": int(caps.dc_max_voltage if dc
                                                                          else caps.ac_nominal_voltage)},
                          {"Name": "MobilityNeedsMode", "intValue": MOBILITY_NEEDS[mode]},
                          {"Name": "Pricing", "intValue": 0}]
            if _energy_of(service).endswith("BPT"):
                parameters += [{"Name": "BPTChannel", "intValue": 1}, {"Name": "GeneratorMode", "intValue": 1}]
                if not dc:
                    parameters.append({"Name": "GridCodeIslandingDetectionMethod", "intValue": 1})
            sets.append({"ParameterSetID": CONTROL_MODES[mode], "Parameter": parameters})
        return sets

    def _secc_ServiceDetailReq(self, s: SeccSession, body: dict, message: dict) -> Reply:
        service = body["ServiceID"]
        if service not in _secc(s).services:
            return Reply(self.secc_failure(s, "ServiceDetailReq", "FAILED_ServiceIDInvalid"))
        return Reply({"ResponseCode": "OK", "ServiceID": service,
                      "ServiceParameterList": {"ParameterSet": self._parameter_sets(s, service)}})

    def _secc_ServiceSelectionReq(self, s: SeccSession, body: dict, message: dict) -> Reply:
        selected = body["SelectedEnergyTransferService"]
        service, parameter_set = selected["ServiceID"], selected["ParameterSetID"]
        c = _secc(s)
        if service not in c.services:
            return Reply({"ResponseCode": "FAILED_ServiceSelectionInvalid"})
        modes = {number: name for name, number in CONTROL_MODES.items()
                 if name in s.equipment.capabilities.control_modes}
        if parameter_set not in modes:
            return Reply({"ResponseCode": "FAILED_ServiceSelectionInvalid"})
        c.service, c.energy, c.control = service, _energy_of(service), modes[parameter_set]
        c.bpt = c.energy.endswith("BPT")
        return Reply({"ResponseCode": "OK"})

    def _secc_AC_ChargeParameterDiscoveryReq(self, s: SeccSession, body: dict, message: dict) -> Reply:
        c = _secc(s)
        bpt = c.bpt
        key = "BPT_AC_CPDReqEnergyTransferMode" if bpt else "AC_CPDReqEnergyTransferMode"
        if key not in body:
            return Reply(self.secc_failure(s, "AC_ChargeParameterDiscoveryReq", "FAILED_WrongChargeParameter"))
        c.ev_parameter = body[key]
        caps = s.equipment.capabilities
        mode: dict[str, Any] = {"EVSEMaximumChargePower": rational(s.equipment.power_limit("AC")),
                                "EVSEMinimumChargePower": rational(caps.ac_nominal_voltage * caps.ac_min_current),
                                "EVSENominalFrequency": rational(50)}
        if bpt:
            mode.update(EVSEMaximumDischargePower=rational(caps.max_discharge_power("AC")),
                        EVSEMinimumDischargePower=rational(0))
        return Reply({"ResponseCode": "OK",
                      ("BPT_AC_CPDResEnergyTransferMode" if bpt else "AC_CPDResEnergyTransferMode"): mode})

    def _secc_DC_ChargeParameterDiscoveryReq(self, s: SeccSession, body: dict, message: dict) -> Reply:
        c = _secc(s)
        bpt = c.bpt
        key = "BPT_DC_CPDReqEnergyTransferMode" if bpt else "DC_CPDReqEnergyTransferMode"
        if key not in body:
            return Reply(self.secc_failure(s, "DC_ChargeParameterDiscoveryReq", "FAILED_WrongChargeParameter"))
        c.ev_parameter = body[key]
        caps = s.equipment.capabilities
        mode: dict[str, Any] = {"EVSEMaximumChargePower": rational(caps.dc_max_power),
                                "EVSEMinimumChargePower": rational(0),
                                "EVSEMaximumChargeCurrent": rational(caps.dc_max_current),
                                "EVSEMinimumChargeCurrent": rational(caps.dc_min_current),
                                "EVSEMaximumVoltage": rational(caps.dc_max_voltage),
                                "EVSEMinimumVoltage": rational(caps.dc_min_voltage)}
        if bpt:
            mode.update(EVSEMaximumDischargePower=rational(caps.dc_max_discharge_power),
                        EVSEMinimumDischargePower=rational(0),
                        EVSEMaximumDischargeCurrent=rational(caps.dc_max_discharge_current),
                        EVSEMinimumDischargeCurrent=rational(0))
        return Reply({"ResponseCode": "OK",
                      ("BPT_DC_CPDResEnergyTransferMode" if bpt else "DC_CPDResEnergyTransferMode"): mode})

    def _secc_ScheduleExchangeReq(self, s: SeccSession, body: dict, message: dict) -> Reply:
        c = _secc(s)
        energy = c.energy or ("DC" if c.dc else "AC")
        c.processing = "Finished"
        dynamic = "Dynamic_SEReqControlMode" in body
        request = body.get("Dynamic_SEReqControlMode" if dynamic else "Scheduled_SEReqControlMode") or {}
        s.equipment.ev_charging_needs(_charging_needs(c, request, dynamic, s.equipment.capabilities.ac_phases))
        if dynamic:
            request = body["Dynamic_SEReqControlMode"]
            c.departure = request.get("DepartureTime")
            return Reply({"ResponseCode": "OK", "EVSEProcessing": "Finished", "Dynamic_SEResControlMode": {
                "DepartureTime": request.get("DepartureTime", 0)}})
        # the charging schedule bounds the power from above, the discharging schedule from below; a
        # setpoint from the backend is both bounds (the EV is to follow it); one entry wherever the
        # charger's schedule changes over the day, anchored at the response's Unix time
        offers = s.equipment.power_schedule(energy)
        anchor = s.wall_time()
        schedule: dict[str, Any] = {"ScheduleTupleID": SCHEDULE_ID, "ChargingSchedule": schedules.power_schedule(
            offers, lambda offer: offer.upper_w, rational, anchor)}
        if c.bpt:
            schedule["DischargingSchedule"] = schedules.power_schedule(offers, lambda offer: offer.lower_w, rational,
                                                                       anchor)
        c.schedules = {SCHEDULE_ID}
        upper, lower = offers[0].upper_w, offers[0].lower_w
        notice = schedule_notice(upper, lower if c.bpt else None)
        return Reply({"ResponseCode": "OK", "EVSEProcessing": "Finished",
                      "Scheduled_SEResControlMode": {"ScheduleTuple": [schedule]}}, notices=(notice,))

    def _secc_DC_CableCheckReq(self, s: SeccSession, body: dict, message: dict) -> Reply:
        done = s.equipment.cable_check()
        processing = _secc(s).processing = "Finished" if done else "Ongoing"
        return Reply({"ResponseCode": "OK", "EVSEProcessing": processing})

    def _secc_DC_PreChargeReq(self, s: SeccSession, body: dict, message: dict) -> Reply:
        present = s.equipment.pre_charge(rational_value(body["EVTargetVoltage"]), 0.0)
        return Reply({"ResponseCode": "OK", "EVSEPresentVoltage": rational(present.voltage, low=-1)})

    def _secc_PowerDeliveryReq(self, s: SeccSession, body: dict, message: dict) -> Reply:
        progress = body["ChargeProgress"]
        ev_processing = body["EVProcessing"]
        c = _secc(s)
        energy = c.energy or ("DC" if c.dc else "AC")
        discharge = body.get("BPT_ChannelSelection") == "Discharge"
        notices: tuple[Notice, ...] = ()
        if ev_processing == "Finished" and progress in PROFILE_PROGRESS:
            problem = self._profile_problem(s, body.get("EVPowerProfile"))
            if problem is not None and progress != "Stop":
                # the SECC cannot plan the transfer without the profile the EV must announce
                s.facts["power_profile_problem"] = problem
                return Reply(self.secc_failure(s, "PowerDeliveryReq", "FAILED_EVPowerProfileInvalid"),
                             notices=(Notice("EVPowerProfileInvalid", f"SECC refuses PowerDeliveryReq({progress}): "
                                             f"{problem}"),))
            if problem is not None:  # a stop is never refused; what the EV broke goes on the timeline
                notices = (Notice("EVPowerProfileInvalid", f"SECC: PowerDeliveryReq(Stop): {problem}"),)
        if progress == "Start" and ev_processing == "Finished":
            profile = body.get("EVPowerProfile") or {}
            scheduled = profile.get("Scheduled_EVPPTControlMode")
            if scheduled is not None and scheduled["SelectedScheduleTupleID"] not in c.schedules:
                return Reply(self.secc_failure(s, "PowerDeliveryReq", "FAILED_ScheduleSelectionInvalid"))
            if not s.equipment.energy_transfer(True, energy, discharge=discharge):
                return Reply(self.secc_failure(s, "PowerDeliveryReq", "FAILED_PowerDeliveryNotApplied"))
            c.discharge = discharge
            s.equipment.ev_charging_schedule(_ev_schedule(profile))
        elif progress in ("Stop", "Standby"):
            s.equipment.energy_transfer(False, energy)
        c.progress, c.ev_processing = progress, ev_processing
        return Reply({"ResponseCode": "OK"}, notices=notices)

    @staticmethod
    def _profile_problem(s: SeccSession, profile: dict | None) -> str | None:
        """Why ``profile`` is not the EVPowerProfile [V2G20-1546] asks of the EV in this session's
        control mode (in scheduled mode with the ScheduleTupleID), or None."""
        if profile is None:
            return "no EVPowerProfile, which the EVCC shall send in every control mode [V2G20-1546]"
        dynamic = _secc(s).control == "dynamic"
        arm = "Dynamic_EVPPTControlMode" if dynamic else "Scheduled_EVPPTControlMode"
        if arm not in profile:
            return (f"EVPowerProfile without {arm}, in a {'dynamic' if dynamic else 'scheduled'} control mode "
                    f"session [V2G20-1546]")
        return None

    def _meter(self, s: SeccSession) -> dict:
        imported, exported = s.equipment.meter_wh()
        info: dict[str, Any] = {"MeterID": s.equipment.capabilities.meter_id, "ChargedEnergyReadingWh": int(imported)}
        if _secc(s).bpt:
            info["BPT_DischargedEnergyReadingWh"] = int(exported)
        return info

    def _secc_AC_ChargeLoopReq(self, s: SeccSession, body: dict, message: dict) -> Reply:
        self._secc_display(s, body)
        caps = s.equipment.capabilities
        result: dict[str, Any] = {"ResponseCode": "OK", **self._status(s)}
        if body.get("MeterInfoRequested"):
            result["MeterInfo"] = self._meter(s)
        c = _secc(s)
        bpt = "BPT_" if c.bpt else ""
        present = s.equipment.present()
        present_power = present.voltage * present.current * caps.ac_phases if present.voltage else 0.0
        energy = c.energy or "AC"
        charge_limit = s.equipment.power_limit(energy)
        discharge_limit = s.equipment.discharge_limit(energy) if c.bpt else 0.0
        setpoint = s.equipment.power_setpoint(energy)
        dynamic = c.control == "dynamic"
        request = (body.get(f"{bpt}Dynamic_AC_CLReqControlMode") or body.get("Dynamic_AC_CLReqControlMode") or {}
                   if dynamic else {})
        # the EV's own maxima (dynamic mode sends them in every request)
        charge_limit = min(charge_limit, rational_value(request.get("EVMaximumChargePower"), charge_limit))
        discharge_limit = min(discharge_limit, rational_value(request.get("EVMaximumDischargePower"), discharge_limit))
        if setpoint is not None:  # the backend's setpoint, within both sides' limits
            target = min(setpoint, charge_limit) if setpoint >= 0 else -min(-setpoint, discharge_limit)
        else:  # the direction the EV chose at PowerDelivery, as much as the limits allow
            target = -discharge_limit if c.discharge else charge_limit
        if dynamic:
            s.equipment.ac_target(target)
        result[f"{bpt}{'Dynamic' if dynamic else 'Scheduled'}_AC_CLResControlMode"] = {
            "EVSETargetActivePower": rational(target), "EVSEPresentActivePower": rational(present_power)}
        return Reply(result, notices=target_notice(_secc(s), target))

    def _secc_display(self, s: SeccSession, body: dict) -> None:
        soc = (body.get("DisplayParameters") or {}).get("PresentSOC")
        if soc is not None:
            s.equipment.ev_status(soc=soc)

    def _secc_DC_ChargeLoopReq(self, s: SeccSession, body: dict, message: dict) -> Reply:
        self._secc_display(s, body)
        caps = s.equipment.capabilities
        c = _secc(s)
        bpt = "BPT_" if c.bpt else ""
        voltage = rational_value(body["EVPresentVoltage"])
        energy = c.energy or "DC"
        charge_limit = s.equipment.power_limit(energy)
        discharge_limit = s.equipment.discharge_limit(energy) if c.bpt else 0.0
        control: dict[str, Any]
        notices: tuple[Notice, ...] = ()
        if c.control == "dynamic":
            # the SECC decides the current: the backend's setpoint, else the direction the EV chose, as
            # much as both sides' limits allow
            request = body.get(f"{bpt}Dynamic_DC_CLReqControlMode") or body.get("Dynamic_DC_CLReqControlMode") or {}
            volts = max(voltage, 1.0)
            charge_w = min(charge_limit, rational_value(request.get("EVMaximumChargePower"), 0.0),
                           min(caps.dc_max_current, rational_value(request.get("EVMaximumChargeCurrent"), 0.0)) * volts)
            discharge_w = min(discharge_limit, rational_value(request.get("EVMaximumDischargePower"), discharge_limit),
                              min(caps.dc_max_discharge_current,
                                  rational_value(request.get("EVMaximumDischargeCurrent"),
                                                 caps.dc_max_discharge_current)) * volts)
            setpoint = s.equipment.power_setpoint(energy)
            if setpoint is not None:
                target = min(setpoint, charge_w) if setpoint >= 0 else -min(-setpoint, discharge_w)
            else:
                target = -discharge_w if c.discharge else charge_w
            present = s.equipment.current_demand(voltage, target / volts)
            notices = target_notice(_secc(s), target)
            control = {"EVSEMaximumChargePower": rational(charge_limit),
                       "EVSEMinimumChargePower": rational(0),
                       "EVSEMaximumChargeCurrent": rational(caps.dc_max_current),
                       "EVSEMaximumVoltage": rational(caps.dc_max_voltage)}
            if bpt:
                control.update(EVSEMaximumDischargePower=rational(discharge_limit),
                               EVSEMinimumDischargePower=rational(0),
                               EVSEMaximumDischargeCurrent=rational(caps.dc_max_discharge_current),
                               EVSEMinimumVoltage=rational(caps.dc_min_voltage))
            control_key = f"{bpt}Dynamic_DC_CLResControlMode"
        else:
            request = body.get(f"{bpt}Scheduled_DC_CLReqControlMode") or body.get("Scheduled_DC_CLReqControlMode") or {}
            present = s.equipment.current_demand(rational_value(request.get("EVTargetVoltage"), voltage),
                                                 rational_value(request.get("EVTargetCurrent"), 0.0))
            control = {"EVSEMaximumChargePower": rational(charge_limit),
                       "EVSEMaximumChargeCurrent": rational(caps.dc_max_current),
                       "EVSEMaximumVoltage": rational(caps.dc_max_voltage)}
            if bpt:
                control.update(EVSEMaximumDischargePower=rational(discharge_limit),
                               EVSEMaximumDischargeCurrent=rational(caps.dc_max_discharge_current))
            control_key = f"{bpt}Scheduled_DC_CLResControlMode"
        result: dict[str, Any] = {"ResponseCode": "OK", **self._status(s)}
        if body.get("MeterInfoRequested"):
            result["MeterInfo"] = self._meter(s)
        result.update({"EVSEPresentCurrent": rational(present.current, low=-1),
                       "EVSEPresentVoltage": rational(present.voltage, low=-1),
                       "EVSEPowerLimitAchieved": present.power_limit_achieved,
                       "EVSECurrentLimitAchieved": present.current_limit_achieved,
                       "EVSEVoltageLimitAchieved": present.voltage_limit_achieved,
                       control_key: control})
        return Reply(result, notices=notices)

    def _secc_DC_WeldingDetectionReq(self, s: SeccSession, body: dict, message: dict) -> Reply:
        return Reply({"ResponseCode": "OK", "EVSEPresentVoltage": rational(s.equipment.present().voltage, low=-1)})

    def _secc_SessionStopReq(self, s: SeccSession, body: dict, message: dict) -> Reply:
        kind = body["ChargingSession"]
        if kind == "ServiceRenegotiation":
            return Reply({"ResponseCode": "FAILED_NoServiceRenegotiationSupported"})
        c = _secc(s)
        if c.progress == "Start":
            s.equipment.energy_transfer(False, c.energy or "AC")
        pause = kind == "Pause"
        if pause and s.session_id:
            s.paused[s.session_id] = replace(c)
        s.equipment.session_ended(s.session_id, kind, pause)
        return Reply({"ResponseCode": "OK"}, ends=True, paused=pause)

    def secc_failure(self, s: SeccSession, request: str, code: str) -> dict:
        """Mandatory parameters at minimal size ([V2G20-736])."""
        zero = {"Exponent": 0, "Value": 0}
        dc_res = {"EVSEPresentCurrent": zero, "EVSEPresentVoltage": zero, "EVSEPowerLimitAchieved": False,
                  "EVSECurrentLimitAchieved": False, "EVSEVoltageLimitAchieved": False,
                  "Scheduled_DC_CLResControlMode": {}}
        bodies: dict[str, dict] = {
            "SessionSetupReq": {"EVSEID": s.equipment.capabilities.evse_id},
            "AuthorizationSetupReq": {"AuthorizationServices": ["EIM"], "CertificateInstallationService": False,
                                      "EIM_ASResAuthorizationMode": {}},
            "AuthorizationReq": {"EVSEProcessing": "Finished"},
            "CertificateInstallationReq": pnc.empty_delivery_iso20(),
            "ServiceDiscoveryReq": {"ServiceRenegotiationSupported": False,
                                    "EnergyTransferServiceList": {"Service": [{"ServiceID": 1, "FreeService": False}]}},
            "ServiceDetailReq": {"ServiceID": 1, "ServiceParameterList": {"ParameterSet": [
                {"ParameterSetID": 1, "Parameter": [{"Name": "ControlMode", "intValue": 1}]}]}},
            "ServiceSelectionReq": {},
            "AC_ChargeParameterDiscoveryReq": {"AC_CPDResEnergyTransferMode": {
                "EVSEMaximumChargePower": zero, "EVSEMinimumChargePower": zero, "EVSENominalFrequency": zero}},
            "DC_ChargeParameterDiscoveryReq": {"DC_CPDResEnergyTransferMode": {
                "EVSEMaximumChargePower": zero, "EVSEMinimumChargePower": zero, "EVSEMaximumChargeCurrent": zero,
                "EVSEMinimumChargeCurrent": zero, "EVSEMaximumVoltage": zero, "EVSEMinimumVoltage": zero}},
            "ScheduleExchangeReq": {"EVSEProcessing": "Finished", "Dynamic_SEResControlMode": {}},
            "DC_CableCheckReq": {"EVSEProcessing": "Finished"},
            "DC_PreChargeReq": {"EVSEPresentVoltage": zero},
            "PowerDeliveryReq": {},
            "AC_ChargeLoopReq": {"Scheduled_AC_CLResControlMode": {}},
            "DC_ChargeLoopReq": dc_res,
            "DC_WeldingDetectionReq": {"EVSEPresentVoltage": zero},
            "SessionStopReq": {},
        }
        return {"ResponseCode": code, **bodies.get(request, {})}

    # ================================= EVCC =================================================

    def evcc_first(self, e: EvccSession) -> Request:
        plan = e.ev.plan
        dc = e.protocol is not None and e.protocol.key == "iso20-dc"
        e.context = Iso20Evcc(dc=dc, bpt=plan.bpt, control=plan.control)
        return Request("SessionSetupReq", {"EVCCID": e.evccid})

    def evcc_next(self, e: EvccSession, name: str, body: dict, message: dict) -> Request | Stop:
        return getattr(self, f"_after_{name}")(e, body, message)

    def _after_SessionSetupRes(self, e: EvccSession, body: dict, message: dict) -> Request | Stop:
        e.facts["session_setup"] = body["ResponseCode"]
        return Request("AuthorizationSetupReq", {})

    def _after_AuthorizationSetupRes(self, e: EvccSession, body: dict, message: dict) -> Request | Stop:
        wanted = e.ev.plan.identification
        if wanted not in body["AuthorizationServices"]:
            return Stop(False, f"the EVSE does not offer {wanted} (offers {', '.join(body['AuthorizationServices'])})")
        c = _evcc(e)
        c.authorization = wanted
        if wanted == "PnC":
            mode = body.get("PnC_ASResAuthorizationMode") or {}
            if "GenChallenge" not in mode:
                return Stop(False, "AuthorizationSetupRes offers PnC without a GenChallenge")
            c.challenge = mode["GenChallenge"]
            if e.ev.plan.certificate == "install":
                if not body.get("CertificateInstallationService"):
                    return Stop(False, "the EVSE offers no certificate installation (CertificateInstallationService "
                                       "false)")
                return self._certificate_installation(e)
        return self._authorization(e)

    def _certificate_installation(self, e: EvccSession, delay: float = 0.0) -> Request | Stop:
        credentials = e.ev.credentials
        if not credentials.oem_chain or credentials.oem_key is None:
            return Stop(False, "certificate installation needs an OEM provisioning certificate")
        return Request("CertificateInstallationReq", {
            "OEMProvisioningCertificateChain": pnc.chain_json_iso20(credentials.oem_chain, element_id="id1"),
            "ListOfRootCertificateIDs": pnc.root_certificate_ids(credentials.v2g_roots),
            "MaximumContractCertificateChains": 1}, delay=delay,
            sign=(credentials.oem_key, ("OEMProvisioningCertificateChain",)))

    def _after_CertificateInstallationRes(self, e: EvccSession, body: dict, message: dict) -> Request | Stop:
        code = body["ResponseCode"]
        if not code.startswith("OK"):
            return Stop(False, f"CertificateInstallationRes {code}", code=code)
        _evcc(e).processing = body["EVSEProcessing"]
        if body["EVSEProcessing"] != "Finished":
            return self._certificate_installation(e, e.timing.wait(e.ev.plan.ongoing_interval))
        data = body["SignedInstallationData"]
        opened = pnc.signed_delivery(message, "iso20", body["CPSCertificateChain"], data["ContractCertificateChain"],
                                     ("CPSCertificateChain", "ContractCertificateChain"))
        if isinstance(opened, str):
            return Stop(False, opened)
        _, chain = opened
        if data.get("ECDHCurve") != "SECP521" or "SECP521_EncryptedPrivateKey" not in data:
            return Stop(False, f"the delivery's key is sealed for {data.get('ECDHCurve')}; this EV holds a secp521r1 "
                               "OEM provisioning key")
        credentials = e.ev.credentials
        delivered = EncryptedContractKey(base64.b64decode(data["DHPublicKey"]),
                                         base64.b64decode(data["SECP521_EncryptedPrivateKey"]))
        try:
            key = decrypt_iso20(delivered, credentials.oem_key, pcid=pnc.common_name(credentials.oem_chain[0]),
                                contract_certificate=chain[0])
        except ValueError as exc:
            return Stop(False, f"contract key: {exc}")
        credentials.contract_chain, credentials.contract_key = chain, key
        credentials.emaid = pnc.common_name(chain[0])
        e.facts["contract_installed"] = credentials.emaid
        return self._authorization(e)

    def _authorization(self, e: EvccSession, delay: float = 0.0) -> Request | Stop:
        if _evcc(e).authorization == "EIM":
            return Request("AuthorizationReq", {"SelectedAuthorizationService": "EIM",
                                                "EIM_AReqAuthorizationMode": {}}, delay=delay)
        credentials = e.ev.credentials
        if not credentials.contract_chain or credentials.contract_key is None:
            return Stop(False, "Plug & Charge without a contract certificate")
        chain = pnc.chain_json(credentials.contract_chain)
        chain.setdefault("SubCertificates", {"Certificate": []})
        e.emaid = pnc.common_name(credentials.contract_chain[0])
        return Request("AuthorizationReq", {"SelectedAuthorizationService": "PnC", "PnC_AReqAuthorizationMode": {
            "Id": "id1", "GenChallenge": _evcc(e).challenge, "ContractCertificateChain": chain}},
            delay=delay, sign=(credentials.contract_key, ("PnC_AReqAuthorizationMode",)))

    def _after_AuthorizationRes(self, e: EvccSession, body: dict, message: dict) -> Request | Stop:
        if body["ResponseCode"].startswith("WARNING"):
            return Stop(False, f"AuthorizationRes {body['ResponseCode']}", code=body["ResponseCode"])
        _evcc(e).processing = body["EVSEProcessing"]
        if body["EVSEProcessing"] != "Finished":
            return self._authorization(e, e.timing.wait(e.ev.plan.ongoing_interval))
        return Request("ServiceDiscoveryReq", {})

    def _after_ServiceDiscoveryRes(self, e: EvccSession, body: dict, message: dict) -> Request | Stop:
        plan = e.ev.plan
        offered = [s["ServiceID"] for s in body["EnergyTransferServiceList"]["Service"]]
        wanted = ISO20_SERVICES[plan.energy]
        if wanted not in offered:
            return Stop(False, f"the EVSE does not offer the {plan.energy} service (offers {offered})")
        _evcc(e).service = wanted
        return Request("ServiceDetailReq", {"ServiceID": wanted})

    def _after_ServiceDetailRes(self, e: EvccSession, body: dict, message: dict) -> Request | Stop:
        wanted = CONTROL_MODES[e.ev.plan.control]
        chosen = None
        for parameter_set in body["ServiceParameterList"]["ParameterSet"]:
            values = {p["Name"]: next((v for k, v in p.items() if k != "Name"), None) for p in parameter_set["Parameter"]}
            if values.get("ControlMode") == wanted:
                chosen = parameter_set["ParameterSetID"]
                break
        if chosen is None:
            return Stop(False, f"no parameter set with the {e.ev.plan.control} control mode")
        return Request("ServiceSelectionReq", {"SelectedEnergyTransferService": {
            "ServiceID": body["ServiceID"], "ParameterSetID": chosen}})

    def _after_ServiceSelectionRes(self, e: EvccSession, body: dict, message: dict) -> Request | Stop:
        ev = e.ev
        c = _evcc(e)
        if c.dc:
            mode: dict[str, Any] = {"EVMaximumChargePower": rational(ev.max_charge_power),
                                    "EVMinimumChargePower": rational(0),
                                    "EVMaximumChargeCurrent": rational(ev.dc_max_current),
                                    "EVMinimumChargeCurrent": rational(0),
                                    "EVMaximumVoltage": rational(ev.dc_max_voltage),
                                    "EVMinimumVoltage": rational(ev.pack_voltage_empty),
                                    "TargetSOC": percent(ev.target_soc)}
            if c.bpt:
                mode.update(EVMaximumDischargePower=rational(ev.max_discharge_power),
                            EVMinimumDischargePower=rational(0),
                            EVMaximumDischargeCurrent=rational(ev.dc_max_current),
                            EVMinimumDischargeCurrent=rational(0))
            key = "BPT_DC_CPDReqEnergyTransferMode" if c.bpt else "DC_CPDReqEnergyTransferMode"
            return Request("DC_ChargeParameterDiscoveryReq", {key: mode})
        volts = ev.ac_nominal_voltage * ev.plan.phases
        mode = {"EVMaximumChargePower": rational(min(ev.max_charge_power, ev.ac_max_current * volts)),
                "EVMinimumChargePower": rational(ev.ac_min_current * volts)}
        if c.bpt:
            mode.update(EVMaximumDischargePower=rational(ev.max_discharge_power), EVMinimumDischargePower=rational(0))
        key = "BPT_AC_CPDReqEnergyTransferMode" if c.bpt else "AC_CPDReqEnergyTransferMode"
        return Request("AC_ChargeParameterDiscoveryReq", {key: mode})

    def _after_AC_ChargeParameterDiscoveryRes(self, e: EvccSession, body: dict, message: dict) -> Request | Stop:
        mode = body.get("BPT_AC_CPDResEnergyTransferMode") or body.get("AC_CPDResEnergyTransferMode") or {}
        ev = e.ev
        volts = ev.ac_nominal_voltage * ev.plan.phases
        ev.grant.max_power = rational_value(mode.get("EVSEMaximumChargePower"), 0.0)
        ev.grant.ac_max_current = ev.grant.max_power / volts if volts else 0.0
        if ev.discharging():
            ev.grant.ac_max_current = rational_value(mode.get("EVSEMaximumDischargePower"), 0.0) / volts
        return self._schedule_exchange(e)

    def _after_DC_ChargeParameterDiscoveryRes(self, e: EvccSession, body: dict, message: dict) -> Request | Stop:
        mode = body.get("BPT_DC_CPDResEnergyTransferMode") or body.get("DC_CPDResEnergyTransferMode") or {}
        grant = e.ev.grant
        grant.dc_max_current = rational_value(mode.get("EVSEMaximumChargeCurrent"), 0.0)
        grant.dc_max_voltage = rational_value(mode.get("EVSEMaximumVoltage"), 0.0)
        grant.dc_max_power = rational_value(mode.get("EVSEMaximumChargePower"), 0.0)
        return self._schedule_exchange(e)

    def _schedule_exchange(self, e: EvccSession, delay: float = 0.0) -> Request:
        ev = e.ev
        if ev.plan.control == "dynamic":
            mode: dict[str, Any] = {"DepartureTime": ev.departure_time, "MinimumSOC": percent(ev.min_soc),
                                    "TargetSOC": percent(ev.target_soc),
                                    "EVTargetEnergyRequest": rational(ev.energy_request_wh()),
                                    "EVMaximumEnergyRequest": rational(ev.energy_request_wh()),
                                    "EVMinimumEnergyRequest": rational(0)}
            if _evcc(e).bpt:
                v2x = max(0.0, (ev.battery.soc - ev.min_soc) * ev.battery.capacity_wh)
                mode.update(EVMaximumV2XEnergyRequest=rational(v2x), EVMinimumV2XEnergyRequest=rational(0))
            return Request("ScheduleExchangeReq", {"MaximumSupportingPoints": 1024, "Dynamic_SEReqControlMode": mode},
                           delay=delay)
        return Request("ScheduleExchangeReq", {"MaximumSupportingPoints": 1024, "Scheduled_SEReqControlMode": {
            "DepartureTime": ev.departure_time, "EVTargetEnergyRequest": rational(ev.energy_request_wh()),
            "EVMaximumEnergyRequest": rational(ev.energy_request_wh()), "EVMinimumEnergyRequest": rational(0)}},
            delay=delay)

    def _after_ScheduleExchangeRes(self, e: EvccSession, body: dict, message: dict) -> Request | Stop:
        c = _evcc(e)
        c.processing = body["EVSEProcessing"]
        if body["EVSEProcessing"] != "Finished":
            return self._schedule_exchange(e, e.timing.wait(e.ev.plan.ongoing_interval))
        scheduled = body.get("Scheduled_SEResControlMode")
        if scheduled is not None:
            tuples = scheduled.get("ScheduleTuple") or []
            if not tuples:
                return Stop(False, "ScheduleExchangeRes offers no ScheduleTuple")
            chosen = tuples[0]
            c.schedule = chosen["ScheduleTupleID"]
            anchor, steps = schedules.from_power_schedules(chosen.get("ChargingSchedule"),
                                                           chosen.get("DischargingSchedule"), rational_value)
            # the bounds of the step in force set the EV's target (Vehicle.target); an anchor of 0 is
            # read as "from now"
            e.ev.grant.target_power = None  # the new schedule replaces a target an earlier loop carried
            e.ev.grant.take_schedule(steps, float(anchor) if anchor else e.ev.clock(), follow=True)
            target = c.schedule_power = e.ev.target()
            if not c.dc:
                volts = e.ev.ac_nominal_voltage * e.ev.plan.phases
                widest = max((abs(b) for step in steps for b in (step.upper_w, step.lower_w or 0.0)
                              if b != float("inf")), default=abs(target or 0.0))
                e.ev.grant.ac_max_current = max(e.ev.grant.ac_max_current or 0.0, widest / volts)
        if c.progress == "ScheduleRenegotiation":  # the new schedule applies from the next PowerDelivery
            return self._power_delivery(e, "Start")
        if c.dc:
            return Request("DC_CableCheckReq", {}, cp="C")
        return self._power_delivery(e, "Start", cp="C")

    def _power_delivery(self, e: EvccSession, progress: str, *, cp: str | None = None,
                        processing: str = "Finished") -> Request:
        body: dict[str, Any] = {"EVProcessing": processing, "ChargeProgress": progress}
        if processing == "Finished" and progress in PROFILE_PROGRESS:
            body["EVPowerProfile"] = self._power_profile(e, progress)
        c = _evcc(e)
        if progress == "Start" and c.bpt:
            body["BPT_ChannelSelection"] = "Discharge" if e.ev.discharging() else "Charge"
        c.progress_sent = (progress, processing)
        return Request("PowerDeliveryReq", body, cp=cp)

    @staticmethod
    def _power_profile(e: EvccSession, progress: str) -> dict:
        """The EVPowerProfile of PowerDeliveryReq, sent in every control mode at Start, Standby and
        Stop [V2G20-1546]. Scheduled: the power of the chosen schedule, with its ScheduleTupleID.
        Dynamic: the EV's estimate of its fastest profile to its maximum energy request, under the
        lower of its and the EVSE's maximum power (-20 Table 46). Standby and Stop: no power."""
        ev = e.ev
        dynamic = ev.plan.control == "dynamic"
        if progress != "Start":
            power, duration = 0.0, max(1, int(ev.departure_time))
        elif dynamic:
            limits = [p for p in (ev.grant.max_power, ev.grant.dc_max_power) if p]
            power = min([ev.max_discharge_power if ev.discharging() else ev.max_charge_power, *limits])
            energy = (max(0.0, ev.battery.soc - ev.min_soc) * ev.battery.capacity_wh if ev.discharging()
                      else ev.energy_request_wh())
            duration = max(1, int(round(energy * 3600.0 / power))) if power > 0 else max(1, int(ev.departure_time))
        else:
            planned = _evcc(e).schedule_power
            power, duration = (ev.max_charge_power if planned is None else abs(planned)), 86400
        schedule = _evcc(e).schedule
        arm = {"Dynamic_EVPPTControlMode": {}} if dynamic else {
            "Scheduled_EVPPTControlMode": {"SelectedScheduleTupleID": schedule if schedule is not None else SCHEDULE_ID}}
        return {"TimeAnchor": 0, **arm, "EVPowerProfileEntries": {"EVPowerProfileEntry": [
            {"Duration": duration, "Power": rational(-power if ev.discharging() and power else power)}]}}

    def _after_DC_CableCheckRes(self, e: EvccSession, body: dict, message: dict) -> Request | Stop:
        _evcc(e).processing = body["EVSEProcessing"]
        if body["EVSEProcessing"] != "Finished":
            if cable_check_expired(e, self.family, "DC_CableCheckReq"):
                return Stop(False, "V2G_EVCC_CableCheck_Timeout")
            return Request("DC_CableCheckReq", {}, delay=e.timing.wait(e.ev.plan.ongoing_interval))
        return self._pre_charge(e, "Ongoing")

    def _pre_charge(self, e: EvccSession, processing: str, delay: float = 0.0) -> Request:
        _evcc(e).pre_charge = processing
        voltage = e.ev.pack_voltage()
        return Request("DC_PreChargeReq", {"EVProcessing": processing, "EVPresentVoltage": rational(voltage, low=-1),
                                           "EVTargetVoltage": rational(voltage, low=-1)}, delay=delay)

    def _after_DC_PreChargeRes(self, e: EvccSession, body: dict, message: dict) -> Request | Stop:
        if _evcc(e).pre_charge == "Finished":
            return self._power_delivery(e, "Start")
        present = rational_value(body["EVSEPresentVoltage"])
        e.ev.grant.dc_present_voltage = present
        if abs(present - e.ev.pack_voltage()) > PRE_CHARGE_TOLERANCE_V:
            if pre_charge_expired(e, self.family, "DC_PreChargeReq"):
                return Stop(False, "V2G_EVCC_PreCharge_Timeout")
            return self._pre_charge(e, "Ongoing", e.timing.wait(e.ev.plan.ongoing_interval))
        return self._pre_charge(e, "Finished")

    def _after_PowerDeliveryRes(self, e: EvccSession, body: dict, message: dict) -> Request | Stop:
        c = _evcc(e)
        progress, processing = c.progress_sent or ("Start", "Finished")
        c.progress, c.ev_processing = progress, processing
        if progress == "Start":
            return self._loop(e, 0.0)
        if progress == "ScheduleRenegotiation":
            c.processing = "Finished"
            return self._schedule_exchange(e)
        e.ev.grant.ac_max_current = 0.0
        e.ev.grant.target_power = None
        e.ev.grant.drop_schedule()
        if c.dc:
            return Request("DC_WeldingDetectionReq", {"EVProcessing": "Ongoing"})
        return self._session_stop(e)

    def _session_stop(self, e: EvccSession) -> Request:
        kind = "Pause" if e.ev.plan.pause else "Terminate"
        _evcc(e).stop_kind = kind
        return Request("SessionStopReq", {"ChargingSession": kind}, cp="B")

    def _ev_display(self, e: EvccSession) -> dict:
        ev = e.ev
        return {"PresentSOC": ev.soc_percent, "MinimumSOC": percent(ev.min_soc), "TargetSOC": percent(ev.target_soc),
                "ChargingComplete": ev.charging_complete()}

    def _loop(self, e: EvccSession, delay: float) -> Request:
        ev = e.ev
        c = _evcc(e)
        bpt = "BPT_" if c.bpt else ""
        dynamic = ev.plan.control == "dynamic"
        body: dict[str, Any] = {"DisplayParameters": self._ev_display(e), "MeterInfoRequested": False}
        if c.dc:
            voltage = ev.pack_voltage()
            body["EVPresentVoltage"] = rational(voltage, low=-1)
            if dynamic:
                mode: dict[str, Any] = {"DepartureTime": ev.departure_time,
                                        "EVTargetEnergyRequest": rational(ev.energy_request_wh()),
                                        "EVMaximumEnergyRequest": rational(ev.energy_request_wh()),
                                        "EVMinimumEnergyRequest": rational(0),
                                        "EVMaximumChargePower": rational(ev.max_charge_power),
                                        "EVMinimumChargePower": rational(0),
                                        "EVMaximumChargeCurrent": rational(ev.dc_max_current),
                                        "EVMaximumVoltage": rational(ev.dc_max_voltage),
                                        "EVMinimumVoltage": rational(ev.pack_voltage_empty)}
                if bpt:
                    mode.update(EVMaximumDischargePower=rational(ev.battery.available_discharge_w(ev.min_soc)),
                                EVMinimumDischargePower=rational(0),
                                EVMaximumDischargeCurrent=rational(ev.dc_max_current))
                body[f"{bpt}Dynamic_DC_CLReqControlMode"] = mode
            else:
                mode = {"EVTargetCurrent": rational(ev.dc_target_current(), low=-1),
                        "EVTargetVoltage": rational(voltage, low=-1)}
                if bpt:
                    mode.update(EVMaximumDischargePower=rational(ev.max_discharge_power),
                                EVMaximumDischargeCurrent=rational(ev.dc_max_current))
                body[f"{bpt}Scheduled_DC_CLReqControlMode"] = mode
            return Request("DC_ChargeLoopReq", body, delay=delay)
        volts = ev.ac_nominal_voltage * ev.plan.phases
        present = rational(ev.ac_current() * volts)
        if dynamic:
            mode = {"DepartureTime": ev.departure_time,
                    "EVTargetEnergyRequest": rational(ev.energy_request_wh()),
                    "EVMaximumEnergyRequest": rational(ev.energy_request_wh()),
                    "EVMinimumEnergyRequest": rational(0),
                    "EVMaximumChargePower": rational(min(ev.max_charge_power, ev.ac_max_current * volts)),
                    "EVMinimumChargePower": rational(0), "EVPresentActivePower": present,
                    "EVPresentReactivePower": rational(0)}
            if bpt:
                mode.update(EVMaximumDischargePower=rational(ev.battery.available_discharge_w(ev.min_soc)),
                            EVMinimumDischargePower=rational(0))
            body[f"{bpt}Dynamic_AC_CLReqControlMode"] = mode
        else:
            body[f"{bpt}Scheduled_AC_CLReqControlMode"] = {"EVPresentActivePower": present}
        return Request("AC_ChargeLoopReq", body, delay=delay)

    def _after_loop(self, e: EvccSession, body: dict) -> Request | Stop:
        c = _evcc(e)
        c.loops += 1
        notification = (body.get("EVSEStatus") or {}).get("EVSENotification")
        e.ev.grant.notification = notification or "None"
        if notification in ("Terminate", "Pause") or not e.ev.keep_going(c.loops):
            return self._power_delivery(e, "Stop", cp="B")
        if notification == "ScheduleRenegotiation":
            return self._power_delivery(e, "ScheduleRenegotiation")
        return self._loop(e, e.timing.wait(e.ev.plan.loop_interval))

    def _after_AC_ChargeLoopRes(self, e: EvccSession, body: dict, message: dict) -> Request | Stop:
        control: dict = next((v for k, v in body.items() if k.endswith("AC_CLResControlMode")), {}) or {}
        if "EVSETargetActivePower" in control:
            target = rational_value(control["EVSETargetActivePower"])
            e.ev.grant.target_power = target
            volts = e.ev.ac_nominal_voltage * e.ev.plan.phases
            e.ev.grant.ac_max_current = max(e.ev.grant.ac_max_current or 0.0, abs(target) / volts)
        return self._after_loop(e, body)

    def _after_DC_ChargeLoopRes(self, e: EvccSession, body: dict, message: dict) -> Request | Stop:
        grant = e.ev.grant
        grant.dc_present_voltage = rational_value(body["EVSEPresentVoltage"])
        grant.dc_present_current = rational_value(body["EVSEPresentCurrent"])
        return self._after_loop(e, body)

    def _after_DC_WeldingDetectionRes(self, e: EvccSession, body: dict, message: dict) -> Request | Stop:
        c = _evcc(e)
        c.welding += 1
        if c.welding_done:
            return self._session_stop(e)
        if rational_value(body["EVSEPresentVoltage"]) > WELDING_VOLTAGE_V and c.welding < WELDING_ATTEMPTS:
            return Request("DC_WeldingDetectionReq", {"EVProcessing": "Ongoing"},
                           delay=e.timing.wait(e.ev.plan.ongoing_interval))
        c.welding_done = True
        return Request("DC_WeldingDetectionReq", {"EVProcessing": "Finished"})

    def _after_SessionStopRes(self, e: EvccSession, body: dict, message: dict) -> Request | Stop:
        paused = _evcc(e).stop_kind == "Pause"
        return Stop(True, "session paused" if paused else "session terminated", paused=paused)


RULES = Iso20Rules()
