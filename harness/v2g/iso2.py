"""ISO 15118-2: the session table and both sides' steps (AC and DC, EIM and Plug & Charge).

The table below is the whole message sequence (ISO 15118-2 8.8.2 / Figures 107-108): after each
response, the requests the EVCC may send, each with the condition under which it may. The SECC
answers anything else with FAILED_SequenceError ([V2G2-538]); the EVCC chooses among the allowed
ones by its plan, and takes only the response to the request it sent.

The DC steps (CableCheck, PreCharge, CurrentDemand, WeldingDetection) are DIN 70121's too
(:mod:`harness.v2g.dc`); what -2 says differently of them is in the hooks of :class:`Iso2Rules`.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from cryptography import x509

from harness.pki.contract_key import EncryptedContractKey, decrypt_iso2
from harness.pki.profiles import Generation
from harness.pki.xmldsig import verify_message
from harness.v2g import dc, messages, pnc, schedules
from harness.v2g.dc import DcEvcc, DcRules, DcSecc
from harness.v2g.equipment import ChargingNeeds, EvSchedule
from harness.v2g.machine import START, Context, Reply, Request, Stop, Table, context_of, schedule_notice, target_notice
from harness.v2g.messages import is_zero_session
from harness.v2g.values import physical, physical_value

if TYPE_CHECKING:  # the machines hand themselves to these rules
    from harness.v2g.session import EvccSession, SeccSession

ALWAYS = "always"

#: after <response> the EVCC may send <request> when <guard>
NEXT: dict[str, dict[str, str]] = {
    START:                         {"SessionSetupReq": ALWAYS},
    "SessionSetupRes":             {"ServiceDiscoveryReq": ALWAYS, "SessionStopReq": ALWAYS},
    "ServiceDiscoveryRes":         {"ServiceDetailReq": ALWAYS, "PaymentServiceSelectionReq": ALWAYS,
                                    "SessionStopReq": ALWAYS},
    "ServiceDetailRes":            {"ServiceDetailReq": ALWAYS, "PaymentServiceSelectionReq": ALWAYS,
                                    "SessionStopReq": ALWAYS},
    "PaymentServiceSelectionRes":  {"AuthorizationReq": "eim", "PaymentDetailsReq": "pnc",
                                    "CertificateInstallationReq": "pnc", "CertificateUpdateReq": "pnc",
                                    "SessionStopReq": ALWAYS},
    "CertificateInstallationRes":  {"PaymentDetailsReq": "pnc", "SessionStopReq": ALWAYS},
    "CertificateUpdateRes":        {"PaymentDetailsReq": "pnc", "SessionStopReq": ALWAYS},
    "PaymentDetailsRes":           {"AuthorizationReq": "pnc", "SessionStopReq": ALWAYS},
    "AuthorizationRes":            {"AuthorizationReq": "ongoing", "ChargeParameterDiscoveryReq": "finished",
                                    "SessionStopReq": ALWAYS},
    "ChargeParameterDiscoveryRes": {"ChargeParameterDiscoveryReq": "ongoing", "PowerDeliveryReq": "ac_finished",
                                    "CableCheckReq": "dc_finished", "SessionStopReq": ALWAYS},
    "CableCheckRes":               {"CableCheckReq": ALWAYS, "PreChargeReq": "finished", "SessionStopReq": ALWAYS},
    "PreChargeRes":                {"PreChargeReq": ALWAYS, "PowerDeliveryReq": ALWAYS, "SessionStopReq": ALWAYS},
    "PowerDeliveryRes":            {"ChargingStatusReq": "ac_started", "CurrentDemandReq": "dc_started",
                                    "ChargeParameterDiscoveryReq": "renegotiating",
                                    "WeldingDetectionReq": "dc_stopped", "SessionStopReq": "stopped"},
    "ChargingStatusRes":           {"ChargingStatusReq": ALWAYS, "MeteringReceiptReq": "pnc",
                                    "PowerDeliveryReq": ALWAYS},
    "CurrentDemandRes":            {"CurrentDemandReq": ALWAYS, "MeteringReceiptReq": "pnc",
                                    "PowerDeliveryReq": ALWAYS},
    "MeteringReceiptRes":          {"ChargingStatusReq": "ac", "CurrentDemandReq": "dc", "PowerDeliveryReq": ALWAYS},
    "WeldingDetectionRes":         {"WeldingDetectionReq": ALWAYS, "SessionStopReq": ALWAYS},
}


@dataclass
class Iso2Context(Context):
    """What the table's guards read; both sides keep it (the EVCC from the responses)."""

    #: SelectedPaymentOption: "ExternalPayment" (EIM) or "Contract" (Plug & Charge)
    payment: str | None = None
    #: a DC energy transfer; None while the SECC does not know (before ChargeParameterDiscoveryReq)
    dc: bool | None = None
    #: ChargeProgress of the last PowerDelivery: "Start", "Stop" or "Renegotiate"
    progress: str | None = None


@dataclass
class Iso2Secc(Iso2Context, DcSecc):
    """The -2 SECC's session context."""

    #: the EnergyTransferModes the SECC offers, the PaymentOptions it offered
    modes: list[str] = field(default_factory=list)
    payments: list[str] = field(default_factory=list)
    #: the EV's RequestedEnergyTransferMode and its charge parameter
    mode: str | None = None
    ev_parameter: dict | None = None
    #: Plug & Charge: the contract of PaymentDetailsReq and the GenChallenge sent for it
    contract_chain: list[x509.Certificate] | None = None
    emaid: str | None = None
    challenge: str | None = None
    signature_checked: bool = False
    #: the SAScheduleTuples offered (ID -> the offers their PMaxSchedule was made of) and the one
    #: the EV chose
    schedules: dict[int, tuple[schedules.Offer, ...]] = field(default_factory=dict)
    schedule: int | None = None
    #: ReceiptRequired of the last charge loop response
    receipt: bool = False


@dataclass
class Iso2Evcc(Iso2Context, DcEvcc):
    """The -2 EVCC's session context."""

    #: the RequestedEnergyTransferMode it uses
    mode: str | None = None
    #: Plug & Charge: the GenChallenge of PaymentDetailsRes
    challenge: str | None = None
    #: the SAScheduleTupleID it chose
    schedule: int | None = None
    #: ChargeProgress of the PowerDeliveryReq awaiting its response
    progress_sent: str | None = None
    #: ChargingSession of its SessionStopReq: "Terminate" or "Pause"
    stop_kind: str | None = None
    #: MeterInfo of the charge loop response that asked for a receipt
    receipt_meter: dict | None = None
    renegotiated: bool = False


def _c(s: Any) -> Iso2Context:
    return context_of(s, Iso2Context)


GUARDS = {
    ALWAYS: lambda s: True,
    "eim": lambda s: _c(s).payment == "ExternalPayment",
    "pnc": lambda s: _c(s).payment == "Contract",
    "ongoing": lambda s: _c(s).processing != "Finished",
    "finished": lambda s: _c(s).processing == "Finished",
    "ac": lambda s: not _c(s).dc,
    "dc": lambda s: bool(_c(s).dc),
    "ac_finished": lambda s: not _c(s).dc and _c(s).processing == "Finished",
    "dc_finished": lambda s: bool(_c(s).dc) and _c(s).processing == "Finished",
    "ac_started": lambda s: not _c(s).dc and _c(s).progress == "Start",
    "dc_started": lambda s: bool(_c(s).dc) and _c(s).progress == "Start",
    "renegotiating": lambda s: _c(s).progress == "Renegotiate",
    "dc_stopped": lambda s: bool(_c(s).dc) and _c(s).progress == "Stop",
    "stopped": lambda s: _c(s).progress == "Stop",
}

TABLE = Table("iso2", NEXT, GUARDS)
TABLE.check()

#: ISO 15118-2 ServiceIDs of the harness's SECC: 1 the charge service, 2 contract certificates
CHARGE_SERVICE = 1
CERTIFICATE_SERVICE = 2
#: ServiceDetail parameter sets of the certificate service (-2 Table 105)
CERTIFICATE_PARAMETER_SETS = {"install": 1, "update": 2}
SCHEDULE_ID = 1
SALES_TARIFF_ID = "id1"


def transfer_mode(energy: str, phases: int = 3) -> str:
    """The -2 EnergyTransferMode for a harness energy mode."""
    if energy.startswith("DC"):
        return "DC_extended"
    return "AC_three_phase_core" if phases == 3 else "AC_single_phase_core"


def _energy_of(mode: str) -> str:
    return "DC" if mode.startswith("DC") else "AC"


def _secc(s: SeccSession) -> Iso2Secc:
    return context_of(s, Iso2Secc)


def _evcc(e: EvccSession) -> Iso2Evcc:
    return context_of(e, Iso2Evcc)


class Iso2Rules(DcRules):
    family = "iso2"
    table = TABLE
    # the harness's -2 EV goes on to PreCharge only once the EVSE reports the isolation Valid or Warning
    isolation_gates_pre_charge = True

    # -- what -2 says differently of the DC steps (see harness.v2g.dc) --------------------------

    def dc_evse_status(self, s: SeccSession, *, loop: bool = False) -> dict:
        """-2's DC_EVSEStatus, with EVSEIsolationStatus from the start (Invalid until the cable
        check passed)."""
        notification = s.equipment.notification() if loop else "None"
        return dc.iso2_dc_evse_status(notification=notification,
                                      isolation="Valid" if _secc(s).isolation_checked else "Invalid")

    def dc_failure_status(self) -> dict:
        return dc.iso2_dc_evse_status(code="EVSE_NotReady")

    def current_demand_extras(self, s: SeccSession) -> dict:
        """-2 CurrentDemandRes: EVSEID, SAScheduleTupleID, and MeterInfo/ReceiptRequired."""
        c = _secc(s)
        c.receipt = self._receipt_required(s)
        return {"EVSEID": s.equipment.capabilities.evse_id,
                "SAScheduleTupleID": c.schedule if c.schedule is not None else SCHEDULE_ID,
                "MeterInfo": self._meter_info(s), "ReceiptRequired": c.receipt}

    def current_demand_failure_extras(self, s: SeccSession) -> dict:
        return {"EVSEID": s.equipment.capabilities.evse_id, "SAScheduleTupleID": SCHEDULE_ID}

    def after_pre_charge(self, e: EvccSession) -> Request:
        return self._power_delivery(e, "Start")

    def after_current_demand(self, e: EvccSession, body: dict) -> Request | Stop:
        return self._after_loop(e, body)

    def after_welding_detection(self, e: EvccSession) -> Request:
        return self._session_stop(e)

    # ================================= SECC =================================================

    def secc_start(self, s: SeccSession) -> None:
        caps = s.equipment.capabilities
        modes = []
        if "AC" in caps.energy:
            modes.append("AC_three_phase_core" if caps.ac_phases == 3 else "AC_single_phase_core")
        if "DC" in caps.energy:
            modes.append("DC_extended")
        s.context = Iso2Secc(modes=modes)

    def secc_stand_in(self, stand_in: SeccSession, ev: EvccSession) -> None:
        """What a stand-in SECC takes over from the EV's session: payment, DC and the mode, and
        a schedule that allows any power (the EV's ChargingProfile is not what is tested)."""
        c, chosen = _secc(stand_in), _evcc(ev)
        c.payment, c.dc, c.mode = chosen.payment, chosen.dc, chosen.mode
        if not c.schedules:
            c.schedules = {SCHEDULE_ID: (schedules.Offer(0, 1e9),)}

    def secc_handle(self, s: SeccSession, name: str, body: dict, message: dict) -> Reply:
        return getattr(self, f"_secc_{name}")(s, body, message)

    def _status(self, s: SeccSession, *, loop: bool = False, dc: bool | None = None) -> dict:
        """AC_EVSEStatus or DC_EVSEStatus: for ``dc``, or else the mode the EV chose."""
        if dc is None:
            dc = _secc(s).dc
        if dc:
            return self.dc_evse_status(s, loop=loop)
        # notifications go out in the charge loop, where the EV acts on them
        notification = s.equipment.notification() if loop else "None"
        return {"AC_EVSEStatus": {"NotificationMaxDelay": 0, "EVSENotification": notification, "RCD": False}}

    def _secc_SessionSetupReq(self, s: SeccSession, body: dict, message: dict) -> Reply:
        incoming = message["V2G_Message"]["Header"]["SessionID"]
        code = "OK_NewSessionEstablished"
        if not is_zero_session(incoming) and incoming in s.paused:
            s.session_id = incoming
            saved = s.paused.pop(incoming)
            if isinstance(saved, Iso2Secc):  # the schedule of the paused session goes on
                _secc(s).schedule = saved.schedule
            code = "OK_OldSessionJoined"
        else:
            s.session_id = s.new_session_id()
        s.equipment.session_started(s.session_id, body.get("EVCCID"), "iso2")
        return Reply({"ResponseCode": code, "EVSEID": s.equipment.capabilities.evse_id,
                      "EVSETimeStamp": s.wall_time()})

    def _secc_ServiceDiscoveryReq(self, s: SeccSession, body: dict, message: dict) -> Reply:
        caps = s.equipment.capabilities
        payments = []
        if "EIM" in caps.identification:
            payments.append("ExternalPayment")
        if "PnC" in caps.identification and s.tls:
            payments.append("Contract")  # Plug & Charge only over TLS
        c = _secc(s)
        c.payments = payments
        result: dict[str, Any] = {"ResponseCode": "OK", "PaymentOptionList": {"PaymentOption": payments},
                  "ChargeService": {"ServiceID": CHARGE_SERVICE, "ServiceName": "AC_DC_Charging",
                                    "ServiceCategory": "EVCharging", "FreeService": caps.free_service,
                                    "SupportedEnergyTransferMode": {"EnergyTransferMode": c.modes}}}
        if "Contract" in payments and caps.certificate_service:
            result["ServiceList"] = {"Service": [{"ServiceID": CERTIFICATE_SERVICE, "ServiceName": "Certificate",
                                                  "ServiceCategory": "ContractCertificate", "FreeService": True}]}
        return Reply(result)

    def _secc_ServiceDetailReq(self, s: SeccSession, body: dict, message: dict) -> Reply:
        service = body["ServiceID"]
        if service == CHARGE_SERVICE:
            return Reply({"ResponseCode": "OK", "ServiceID": service})
        if service == CERTIFICATE_SERVICE and "Contract" in _secc(s).payments:
            return Reply({"ResponseCode": "OK", "ServiceID": service, "ServiceParameterList": {"ParameterSet": [
                {"ParameterSetID": number, "Parameter": [{"Name": "Service", "stringValue": kind.capitalize()}]}
                for kind, number in CERTIFICATE_PARAMETER_SETS.items()]}})
        return Reply({"ResponseCode": "FAILED_ServiceIDInvalid", "ServiceID": service})

    def _secc_PaymentServiceSelectionReq(self, s: SeccSession, body: dict, message: dict) -> Reply:
        payment = body["SelectedPaymentOption"]
        if payment not in _secc(s).payments:
            return Reply({"ResponseCode": "FAILED_PaymentSelectionInvalid"})
        selected = {item["ServiceID"] for item in body["SelectedServiceList"]["SelectedService"]}
        if CHARGE_SERVICE not in selected:
            return Reply({"ResponseCode": "FAILED_NoChargeServiceSelected"})
        known = {CHARGE_SERVICE} | ({CERTIFICATE_SERVICE} if payment == "Contract" else set())
        if selected - known:
            return Reply({"ResponseCode": "FAILED_ServiceSelectionInvalid"})
        _secc(s).payment = payment
        return Reply({"ResponseCode": "OK"})

    def _secc_CertificateInstallationReq(self, s: SeccSession, body: dict, message: dict) -> Reply:
        relayed = self._relayed(s, "CertificateInstallationReq", message)
        if relayed is not None:
            return relayed
        try:
            oem = pnc.certificate_from_b64(body["OEMProvisioningCert"], "OEMProvisioningCert")
        except pnc.CertificateDataError:
            return Reply(self.secc_failure(s, "CertificateInstallationReq", "FAILED_CertChainError"))
        delivery = s.equipment.certificate_service("install", oem_chain=[oem])
        return self._delivery(s, "CertificateInstallationReq", delivery)

    def _relayed(self, s: SeccSession, request: str, message: dict) -> Reply | None:
        return self.secc_relayed(s, request, message, messages.schema_of("iso2", request),
                                 "FAILED_NoCertificateAvailable")

    def _secc_CertificateUpdateReq(self, s: SeccSession, body: dict, message: dict) -> Reply:
        relayed = self._relayed(s, "CertificateUpdateReq", message)
        if relayed is not None:
            return relayed
        try:
            chain = pnc.chain_from_json(body["ContractSignatureCertChain"], "ContractSignatureCertChain")
        except pnc.CertificateDataError:
            return Reply(self.secc_failure(s, "CertificateUpdateReq", "FAILED_CertChainError"))
        delivery = s.equipment.certificate_service("update", contract_chain=chain, emaid=body.get("eMAID"))
        return self._delivery(s, "CertificateUpdateReq", delivery)

    def _delivery(self, s: SeccSession, request: str, delivery: pnc.ContractDelivery | None) -> Reply:
        if delivery is None:
            return Reply(self.secc_failure(s, request, "FAILED_NoCertificateAvailable"))
        return Reply(pnc.delivery_body(delivery, request), sign=(delivery.cps_key, ()))

    def _secc_PaymentDetailsReq(self, s: SeccSession, body: dict, message: dict) -> Reply:
        try:
            chain = pnc.chain_from_json(body["ContractSignatureCertChain"], "ContractSignatureCertChain")
        except pnc.CertificateDataError as exc:
            s.facts["contract_problem"] = str(exc)
            return Reply(self._payment_details_failed("FAILED_CertChainError", s))
        check = s.equipment.check_contract(chain, generation=Generation.ISO2, emaid=body["eMAID"])
        notice = pnc.contract_notice(check)
        if not check.ok:
            s.facts["contract_problem"] = check.detail
            return Reply(self._payment_details_failed(check.refusal, s), notices=(notice,))
        c = _secc(s)
        c.contract_chain, c.emaid = chain, body["eMAID"]
        s.emaid = c.emaid
        challenge = c.challenge = base64.b64encode(s.random_bytes(16)).decode()
        return Reply({"ResponseCode": "OK", "GenChallenge": challenge, "EVSETimeStamp": s.wall_time()},
                     notices=(notice,))

    def _payment_details_failed(self, code: str, s: SeccSession) -> dict:
        return self.secc_failure(s, "PaymentDetailsReq", code)

    def _secc_AuthorizationReq(self, s: SeccSession, body: dict, message: dict) -> Reply:
        c = _secc(s)
        if c.payment == "Contract":
            if body.get("GenChallenge") != c.challenge:
                return Reply({"ResponseCode": "FAILED_ChallengeInvalid", "EVSEProcessing": "Finished"})
            # the table lets PnC AuthorizationReq follow PaymentDetailsRes only, which kept the chain
            assert c.contract_chain, "Plug & Charge AuthorizationReq without the contract of PaymentDetailsReq"
            if not c.signature_checked:
                verification = verify_message(message, "iso2", c.contract_chain[0])
                if not verification.ok:
                    s.facts["signature_problem"] = str(verification)
                    return Reply({"ResponseCode": "FAILED_SignatureError", "EVSEProcessing": "Finished"})
                c.signature_checked = True
            status = s.equipment.authorize("PnC", emaid=c.emaid, contract_chain=c.contract_chain)
        else:
            status = s.equipment.authorize("EIM")
        refusal = pnc.authorization_refusal(status, Generation.ISO2)
        if refusal is not None:
            s.facts["authorization_problem"] = status
            return Reply({"ResponseCode": refusal, "EVSEProcessing": "Finished"})
        c.processing = "Finished" if status == "Accepted" else "Ongoing"
        return Reply({"ResponseCode": "OK", "EVSEProcessing": c.processing})

    def _secc_ChargeParameterDiscoveryReq(self, s: SeccSession, body: dict, message: dict) -> Reply:
        mode = body["RequestedEnergyTransferMode"]
        dc = mode.startswith("DC")
        c = _secc(s)
        c.dc = dc
        if mode not in c.modes:
            return Reply(self.secc_failure(s, "ChargeParameterDiscoveryReq", "FAILED_WrongEnergyTransferMode"))
        parameter = body.get("DC_EVChargeParameter" if dc else "AC_EVChargeParameter")
        c.mode = mode
        if parameter is None:
            return Reply(self.secc_failure(s, "ChargeParameterDiscoveryReq", "FAILED_WrongChargeParameter"))
        c.ev_parameter = parameter
        if dc:
            s.equipment.ev_status(soc=parameter["DC_EVStatus"]["EVRESSSOC"])
        s.equipment.ev_charging_needs(_charging_needs(mode, parameter, dc))
        c.processing = "Finished"
        energy = _energy_of(mode)
        offers = s.equipment.power_schedule(energy)
        max_power = offers[0].limit_w
        tuple_ = {"SAScheduleTupleID": SCHEDULE_ID, "PMaxSchedule": {
            "PMaxScheduleEntry": schedules.pmax_entries(offers, lambda watts: physical(watts, "W"))}}
        sign = None
        if c.payment == "Contract" and getattr(s.equipment, "tariff_key", None) is not None:
            tuple_["SalesTariff"] = {"Id": SALES_TARIFF_ID, "SalesTariffID": 10, "NumEPriceLevels": 1,
                                     "SalesTariffEntry": [{"RelativeTimeInterval": {"start": 0, "duration": 86400},
                                                           "EPriceLevel": 1}]}
            sign = (s.equipment.tariff_key, ("SalesTariff",))
        c.schedules = {SCHEDULE_ID: tuple(offers)}
        result: dict[str, Any] = {"ResponseCode": "OK", "EVSEProcessing": "Finished",
                                  "SAScheduleList": {"SAScheduleTuple": [tuple_]}}
        result.update(self._charge_parameter(s, dc))
        return Reply(result, sign=sign, notices=(schedule_notice(max_power),))

    def _charge_parameter(self, s: SeccSession, dc: bool) -> dict:
        caps = s.equipment.capabilities
        if dc:
            return self.dc_evse_charge_parameter(s)
        return {"AC_EVSEChargeParameter": {
            **self._status(s, dc=False),
            "EVSENominalVoltage": physical(caps.ac_nominal_voltage, "V"),
            "EVSEMaxCurrent": physical(s.equipment.ac_target(), "A", low=-1)}}

    def _secc_PowerDeliveryReq(self, s: SeccSession, body: dict, message: dict) -> Reply:
        progress = body["ChargeProgress"]
        c = _secc(s)
        dc = bool(c.dc)
        if progress == "Start":
            if body["SAScheduleTupleID"] not in c.schedules:
                return Reply(self.secc_failure(s, "PowerDeliveryReq", "FAILED_TariffSelectionInvalid"))
            offered = c.schedules[body["SAScheduleTupleID"]]
            entries = (body.get("ChargingProfile") or {}).get("ProfileEntry") or []
            # each entry of the EV's ChargingProfile within the PMax in force at its start
            if any(physical_value(e["ChargingProfileEntryMaxPower"])
                   > schedules.limit_at(offered, int(e["ChargingProfileEntryStart"])) * 1.001 for e in entries):
                return Reply(self.secc_failure(s, "PowerDeliveryReq", "FAILED_ChargingProfileInvalid"))
            c.schedule = body["SAScheduleTupleID"]
            if not s.equipment.energy_transfer(True, "DC" if dc else "AC"):
                return Reply(self.secc_failure(s, "PowerDeliveryReq", "FAILED_PowerDeliveryNotApplied"))
            if entries:
                s.equipment.ev_charging_schedule(EvSchedule(tuple(
                    (int(e["ChargingProfileEntryStart"]), physical_value(e["ChargingProfileEntryMaxPower"]))
                    for e in entries), c.schedule))
        elif progress == "Stop":
            s.equipment.energy_transfer(False, "DC" if dc else "AC")
        c.progress = progress
        if dc and "DC_EVPowerDeliveryParameter" in body:
            s.equipment.ev_status(soc=body["DC_EVPowerDeliveryParameter"]["DC_EVStatus"]["EVRESSSOC"])
        return Reply({"ResponseCode": "OK", **self._status(s)})

    def _meter_info(self, s: SeccSession) -> dict:
        imported, _ = s.equipment.meter_wh()
        return {"MeterID": s.equipment.capabilities.meter_id, "MeterReading": int(imported), "TMeter": s.wall_time()}

    def _receipt_required(self, s: SeccSession) -> bool:
        every = s.equipment.capabilities.receipt_every
        c = _secc(s)
        c.loops += 1
        return c.payment == "Contract" and every > 0 and c.loops % every == 0

    def _secc_ChargingStatusReq(self, s: SeccSession, body: dict, message: dict) -> Reply:
        c = _secc(s)
        receipt = c.receipt = self._receipt_required(s)
        amps = s.equipment.ac_target()
        caps = s.equipment.capabilities
        return Reply({"ResponseCode": "OK", "EVSEID": caps.evse_id,
                      "SAScheduleTupleID": c.schedule if c.schedule is not None else SCHEDULE_ID,
                      "EVSEMaxCurrent": physical(amps, "A", low=-1),
                      "MeterInfo": self._meter_info(s), "ReceiptRequired": receipt,
                      **self._status(s, loop=True)},
                     notices=target_notice(c, amps * caps.ac_nominal_voltage * caps.ac_phases))

    def _secc_MeteringReceiptReq(self, s: SeccSession, body: dict, message: dict) -> Reply:
        chain = _secc(s).contract_chain
        if body.get("SessionID") != s.session_id:
            return Reply(self.secc_failure(s, "MeteringReceiptReq", "FAILED_UnknownSession"))
        if chain is None or not verify_message(message, "iso2", chain[0]).ok:
            return Reply(self.secc_failure(s, "MeteringReceiptReq", "FAILED_MeteringSignatureNotValid"))
        return Reply({"ResponseCode": "OK", **self._status(s)})

    def _secc_SessionStopReq(self, s: SeccSession, body: dict, message: dict) -> Reply:
        pause = body["ChargingSession"] == "Pause"
        c = _secc(s)
        if c.progress == "Start":  # the EV left without PowerDelivery(Stop)
            s.equipment.energy_transfer(False, "DC" if c.dc else "AC")
        if pause and s.session_id:
            s.paused[s.session_id] = replace(c)
        s.equipment.session_ended(s.session_id, "Pause" if pause else "Terminate", pause)
        return Reply({"ResponseCode": "OK"}, ends=True, paused=pause)

    def secc_failure(self, s: SeccSession, request: str, code: str) -> dict:
        """The mandatory content of each response, with ``code`` ([V2G2-538] needs the response
        that belongs to the refused request)."""
        caps = s.equipment.capabilities
        c = _secc(s)
        # before ChargeParameterDiscoveryReq named the mode: DC only if the SECC offers nothing else
        dc = c.dc if c.dc is not None else ("DC" in caps.energy and "AC" not in caps.energy)
        status = self._status(s, dc=dc)
        bodies: dict[str, dict] = {
            "SessionSetupReq": {"EVSEID": caps.evse_id},
            "ServiceDiscoveryReq": {"PaymentOptionList": {"PaymentOption": ["ExternalPayment"]},
                                    "ChargeService": {"ServiceID": CHARGE_SERVICE, "ServiceCategory": "EVCharging",
                                                      "FreeService": False, "SupportedEnergyTransferMode": {
                                                          "EnergyTransferMode": c.modes or ["DC_extended"]}}},
            "ServiceDetailReq": {"ServiceID": CHARGE_SERVICE},
            "PaymentServiceSelectionReq": {},
            "PaymentDetailsReq": {"GenChallenge": base64.b64encode(bytes(16)).decode(), "EVSETimeStamp": 0},
            "AuthorizationReq": {"EVSEProcessing": "Finished"},
            "ChargeParameterDiscoveryReq": {"EVSEProcessing": "Finished", **self._charge_parameter(s, dc)},
            "PowerDeliveryReq": status,
            "ChargingStatusReq": {"EVSEID": caps.evse_id, "SAScheduleTupleID": SCHEDULE_ID, "ReceiptRequired": False,
                                  "AC_EVSEStatus": {"NotificationMaxDelay": 0, "EVSENotification": "None",
                                                    "RCD": False}},
            "MeteringReceiptReq": status,
            **self.dc_failure_bodies(s),
            "SessionStopReq": {},
            "CertificateInstallationReq": pnc.empty_delivery(),
            "CertificateUpdateReq": pnc.empty_delivery(),
        }
        return {"ResponseCode": code, **bodies.get(request, {})}

    # ================================= EVCC =================================================

    def evcc_first(self, e: EvccSession) -> Request:
        e.context = Iso2Evcc(dc=e.ev.plan.dc)
        return Request("SessionSetupReq", {"EVCCID": e.evccid})

    def evcc_next(self, e: EvccSession, name: str, body: dict, message: dict) -> Request | Stop:
        return getattr(self, f"_after_{name}")(e, body, message)

    def _again(self, e: EvccSession, name: str, body: dict) -> Request:
        return Request(name, body, delay=e.timing.wait(e.ev.plan.ongoing_interval))

    def _after_SessionSetupRes(self, e: EvccSession, body: dict, message: dict) -> Request | Stop:
        e.facts["session_setup"] = body["ResponseCode"]
        return Request("ServiceDiscoveryReq", {})

    def _after_ServiceDiscoveryRes(self, e: EvccSession, body: dict, message: dict) -> Request | Stop:
        plan = e.ev.plan
        payment = "Contract" if plan.identification == "PnC" else "ExternalPayment"
        offered = body["PaymentOptionList"]["PaymentOption"]
        if payment not in offered:
            return Stop(False, f"the EVSE does not offer {payment} (offers {', '.join(offered)})")
        mode = transfer_mode(plan.energy, plan.phases)
        modes = body["ChargeService"]["SupportedEnergyTransferMode"]["EnergyTransferMode"]
        if mode not in modes:
            return Stop(False, f"the EVSE does not offer {mode} (offers {', '.join(modes)})")
        c = _evcc(e)
        c.payment, c.mode = payment, mode
        selected = [{"ServiceID": body["ChargeService"]["ServiceID"]}]
        services = {s["ServiceID"] for s in (body.get("ServiceList") or {}).get("Service", [])}
        if payment == "Contract" and plan.certificate and CERTIFICATE_SERVICE in services:
            selected.append({"ServiceID": CERTIFICATE_SERVICE,
                             "ParameterSetID": CERTIFICATE_PARAMETER_SETS[plan.certificate]})
        return Request("PaymentServiceSelectionReq", {"SelectedPaymentOption": payment,
                                                      "SelectedServiceList": {"SelectedService": selected}})

    def _after_ServiceDetailRes(self, e: EvccSession, body: dict, message: dict) -> Request | Stop:
        return Stop(False, "ServiceDetailRes was not asked for")

    def _after_PaymentServiceSelectionRes(self, e: EvccSession, body: dict, message: dict) -> Request | Stop:
        plan = e.ev.plan
        if _evcc(e).payment == "ExternalPayment":
            return Request("AuthorizationReq", {})
        credentials = e.ev.credentials
        if plan.certificate == "install":
            if not credentials.oem_chain:
                return Stop(False, "certificate installation needs an OEM provisioning certificate")
            return Request("CertificateInstallationReq", {
                "Id": "id1", "OEMProvisioningCert": pnc.der_b64(credentials.oem_chain[0]),
                "ListOfRootCertificateIDs": pnc.root_certificate_ids(credentials.v2g_roots)},
                sign=(credentials.oem_key, ("CertificateInstallationReq",)))
        if plan.certificate == "update":
            return Request("CertificateUpdateReq", {
                "Id": "id1", "ContractSignatureCertChain": pnc.chain_json(credentials.contract_chain),
                "eMAID": credentials.emaid,
                "ListOfRootCertificateIDs": pnc.root_certificate_ids(credentials.v2g_roots)},
                sign=(credentials.contract_key, ("CertificateUpdateReq",)))
        return self._payment_details(e)

    def _payment_details(self, e: EvccSession) -> Request | Stop:
        credentials = e.ev.credentials
        if not credentials.contract_chain or credentials.contract_key is None:
            return Stop(False, "Plug & Charge without a contract certificate")
        e.emaid = credentials.emaid
        return Request("PaymentDetailsReq", {"eMAID": credentials.emaid,
                                             "ContractSignatureCertChain": pnc.chain_json(credentials.contract_chain)})

    def _after_CertificateInstallationRes(self, e: EvccSession, body: dict, message: dict) -> Request | Stop:
        return self._take_delivery(e, body, message, e.ev.credentials.oem_key)

    def _after_CertificateUpdateRes(self, e: EvccSession, body: dict, message: dict) -> Request | Stop:
        return self._take_delivery(e, body, message, e.ev.credentials.contract_key)

    def _take_delivery(self, e: EvccSession, body: dict, message: dict, recipient_key: Any) -> Request | Stop:
        opened = pnc.signed_delivery(message, "iso2", body["SAProvisioningCertificateChain"],
                                     body["ContractSignatureCertChain"],
                                     ("SAProvisioningCertificateChain", "ContractSignatureCertChain"))
        if isinstance(opened, str):
            return Stop(False, opened)
        _, chain = opened
        delivered = EncryptedContractKey(base64.b64decode(body["DHpublickey"]["value"]),
                                         base64.b64decode(body["ContractSignatureEncryptedPrivateKey"]["value"]))
        try:
            key = decrypt_iso2(delivered, recipient_key, contract_certificate=chain[0])
        except ValueError as exc:
            return Stop(False, f"contract key: {exc}")
        credentials = e.ev.credentials
        credentials.contract_chain, credentials.contract_key = chain, key
        credentials.emaid = body["eMAID"]["value"]
        e.facts["contract_installed"] = credentials.emaid
        return self._payment_details(e)

    def _after_PaymentDetailsRes(self, e: EvccSession, body: dict, message: dict) -> Request | Stop:
        _evcc(e).challenge = body["GenChallenge"]
        return self._pnc_authorization(e)

    def _pnc_authorization(self, e: EvccSession, delay: float = 0.0) -> Request:
        return Request("AuthorizationReq", {"Id": "id1", "GenChallenge": _evcc(e).challenge}, delay=delay,
                       sign=(e.ev.credentials.contract_key, ("AuthorizationReq",)))

    def _after_AuthorizationRes(self, e: EvccSession, body: dict, message: dict) -> Request | Stop:
        c = _evcc(e)
        c.processing = body["EVSEProcessing"]
        if body["EVSEProcessing"] != "Finished":
            if c.payment == "Contract":
                return self._pnc_authorization(e, e.timing.wait(e.ev.plan.ongoing_interval))
            return self._again(e, "AuthorizationReq", {})
        return Request("ChargeParameterDiscoveryReq", self._charge_parameter_request(e))

    def _charge_parameter_request(self, e: EvccSession) -> dict:
        ev = e.ev
        c = _evcc(e)
        if c.dc:
            # -2's DC_EVChargeParameter starts with the DepartureTime of EVChargeParameterType
            parameter = {"DepartureTime": ev.departure_time, **self.dc_ev_charge_parameter(e)}
            return {"RequestedEnergyTransferMode": c.mode, "DC_EVChargeParameter": parameter}
        return {"RequestedEnergyTransferMode": c.mode, "AC_EVChargeParameter": {
            "DepartureTime": ev.departure_time,
            "EAmount": physical(ev.energy_request_wh(), "Wh"),
            "EVMaxVoltage": physical(ev.ac_nominal_voltage * 1.1, "V"),
            "EVMaxCurrent": physical(ev.ac_max_current, "A"),
            "EVMinCurrent": physical(ev.ac_min_current, "A")}}

    def _after_ChargeParameterDiscoveryRes(self, e: EvccSession, body: dict, message: dict) -> Request | Stop:
        c = _evcc(e)
        c.processing = body["EVSEProcessing"]
        if body["EVSEProcessing"] != "Finished":
            return self._again(e, "ChargeParameterDiscoveryReq", self._charge_parameter_request(e))
        tuples = ((body.get("SAScheduleList") or {}).get("SAScheduleTuple")) or []
        if not tuples:
            return Stop(False, "ChargeParameterDiscoveryRes offers no SAScheduleTuple")
        chosen = tuples[0]
        c.schedule = chosen["SAScheduleTupleID"]
        entries = chosen["PMaxSchedule"]["PMaxScheduleEntry"]
        steps = schedules.from_pmax_entries(entries, physical_value)
        grant = e.ev.grant
        grant.max_power = steps[0].upper_w if steps else None
        grant.take_schedule(steps, e.ev.clock(), follow=False)  # PMax caps the power over time
        pmax = grant.max_power or 0.0
        if c.dc:
            parameter = body["DC_EVSEChargeParameter"]
            self.take_dc_evse_limits(e, parameter, physical_value(parameter.get("EVSEMaximumPowerLimit"), pmax))
            return self._cable_check(e, cp="C")
        parameter = body["AC_EVSEChargeParameter"]
        grant.ac_max_current = physical_value(parameter["EVSEMaxCurrent"])
        return self._power_delivery(e, "Start", cp="C")

    def _power_delivery(self, e: EvccSession, progress: str, *, cp: str | None = None, delay: float = 0.0) -> Request:
        c = _evcc(e)
        body: dict[str, Any] = {"ChargeProgress": progress,
                                "SAScheduleTupleID": c.schedule if c.schedule is not None else SCHEDULE_ID}
        if progress == "Start":
            body["ChargingProfile"] = {"ProfileEntry": _profile_entries(e)}
        if c.dc:
            body["DC_EVPowerDeliveryParameter"] = {"DC_EVStatus": self.dc_ev_status(e),
                                                   "BulkChargingComplete": False,
                                                   "ChargingComplete": e.ev.charging_complete()}
        c.progress_sent = progress
        return Request("PowerDeliveryReq", body, cp=cp, delay=delay)

    def _after_PowerDeliveryRes(self, e: EvccSession, body: dict, message: dict) -> Request | Stop:
        c = _evcc(e)
        progress = c.progress = c.progress_sent
        if progress == "Start":
            return self._loop_request(e, delay=0.0)
        if progress == "Renegotiate":
            c.processing = "Finished"
            return Request("ChargeParameterDiscoveryReq", self._charge_parameter_request(e))
        # Stop
        e.ev.grant.ac_max_current = 0.0
        if c.dc:
            return self._welding_detection(e)
        return self._session_stop(e)

    def _session_stop(self, e: EvccSession) -> Request:
        kind = "Pause" if e.ev.plan.pause else "Terminate"
        _evcc(e).stop_kind = kind
        return Request("SessionStopReq", {"ChargingSession": kind}, cp="B")

    def _loop_request(self, e: EvccSession, delay: float) -> Request:
        if _evcc(e).dc:
            return self._current_demand(e, delay)
        return Request("ChargingStatusReq", {}, delay=delay)

    def _after_loop(self, e: EvccSession, body: dict) -> Request | Stop:
        c = _evcc(e)
        c.loops += 1
        loops = c.loops
        status = body.get("AC_EVSEStatus") or body.get("DC_EVSEStatus") or {}
        notification = status.get("EVSENotification", "None")
        e.ev.grant.notification = notification
        plan = e.ev.plan
        if body.get("ReceiptRequired") and c.payment == "Contract":
            c.receipt_meter = body.get("MeterInfo")
            return self._metering_receipt(e, body)
        if notification == "StopCharging" or not e.ev.keep_going(loops):
            return self._power_delivery(e, "Stop", cp="B")
        if notification == "ReNegotiation" or (plan.renegotiate_after and loops == plan.renegotiate_after
                                               and not c.renegotiated):
            c.renegotiated = True
            return self._power_delivery(e, "Renegotiate")
        return self._loop_request(e, e.timing.wait(plan.loop_interval))

    def _after_ChargingStatusRes(self, e: EvccSession, body: dict, message: dict) -> Request | Stop:
        if "EVSEMaxCurrent" in body:
            e.ev.grant.ac_max_current = physical_value(body["EVSEMaxCurrent"])
        return self._after_loop(e, body)

    def _metering_receipt(self, e: EvccSession, body: dict) -> Request:
        meter = body.get("MeterInfo") or {"MeterID": "unknown"}
        schedule = _evcc(e).schedule
        return Request("MeteringReceiptReq", {"Id": "id1", "SessionID": e.session_id,
                                              "SAScheduleTupleID": schedule if schedule is not None else SCHEDULE_ID,
                                              "MeterInfo": meter},
                       sign=(e.ev.credentials.contract_key, ("MeteringReceiptReq",)))

    def _after_MeteringReceiptRes(self, e: EvccSession, body: dict, message: dict) -> Request | Stop:
        if not e.ev.keep_going(_evcc(e).loops):
            return self._power_delivery(e, "Stop", cp="B")
        return self._loop_request(e, e.timing.wait(e.ev.plan.loop_interval))

    def _after_SessionStopRes(self, e: EvccSession, body: dict, message: dict) -> Request | Stop:
        paused = _evcc(e).stop_kind == "Pause"
        return Stop(True, "session paused" if paused else "session terminated", paused=paused)


RULES = Iso2Rules()


def _charging_needs(mode: str, parameter: dict, is_dc: bool) -> ChargingNeeds:
    """The EV's ChargeParameterDiscoveryReq parameters in the shape every protocol shares."""
    if is_dc:
        return dc.charging_needs(parameter)

    def value(name: str) -> float | None:
        return physical_value(parameter[name]) if name in parameter else None

    return ChargingNeeds("AC_single_phase" if mode.startswith("AC_single") else "AC_three_phase",
                         energy_wh=value("EAmount"), max_current=value("EVMaxCurrent"),
                         min_current=value("EVMinCurrent"), max_voltage=value("EVMaxVoltage"),
                         departure_s=parameter.get("DepartureTime"))


#: ProfileEntry of a ChargingProfile (ISO 15118-2 ChargingProfileType: maxOccurs 24)
MAX_PROFILE_ENTRIES = 24


def _profile_entries(e: EvccSession) -> list[dict[str, Any]]:
    """The EV's ChargingProfile for PowerDeliveryReq Start: its maximum power within each PMax of
    the chosen SAScheduleTuple, on the tuple's time base (the first 24)."""
    ev = e.ev
    steps = ev.grant.schedule or (schedules.Bounds(0.0, ev.max_charge_power),)
    return [{"ChargingProfileEntryStart": int(step.start),
             "ChargingProfileEntryMaxPower": physical(min(step.upper_w, ev.max_charge_power), "W")}
            for step in steps[:MAX_PROFILE_ENTRIES]]
