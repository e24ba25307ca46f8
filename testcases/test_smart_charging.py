"""Smart charging: the limits a CSMS sets with charging profiles, as the charger reports them
(GetCompositeSchedule, OCPP 2.0.1 K08; 1.6 3.13) and as they reach the EV over ISO 15118.

The limit a charging profile sets in A per phase is compared in W with the charger's nominal
voltage and phase count from the rig file (the EV sees power, not current, in ISO 15118).
"""

from __future__ import annotations

import datetime as _dt
import threading
import time

import pytest

from harness.ocpp import commands
from harness.ocpp.frames import value_at
from harness.ocpp.versions import OcppVersion
from harness.trace import TraceTimeout
from harness.verdicts import Inconclusive

LIMIT_A = 8.0


def _composite(csms, evse, duration: int = 300) -> dict:
    if evse.version is OcppVersion.V16:
        answer = csms.call("GetCompositeSchedule", {"connectorId": 1, "duration": duration, "chargingRateUnit": "A"})
        assert answer["status"] == "Accepted", f"GetCompositeSchedule answered {answer}"
        return answer["chargingSchedule"]
    answer = csms.call("GetCompositeSchedule", {"evseId": 1, "duration": duration, "chargingRateUnit": "A"})
    assert answer["status"] == "Accepted", f"GetCompositeSchedule answered {answer}"
    return answer["schedule"]


def _clear(csms, evse) -> str:
    return csms.call(*commands.clear_charging_profile(evse.version, 1))["status"]


@pytest.mark.case("OCPP-SC-001")
@pytest.mark.requires("charging_profiles")
def test_the_composite_schedule_reports_the_limit(rig, csms, evse, step, reaction):
    with step(f"a TxDefaultProfile limits EVSE 1 to {LIMIT_A:g} A"):
        response = csms.call(*commands.charging_limit(evse.version, LIMIT_A))
        assert response["status"] == "Accepted", f"SetChargingProfile answered {response}"
    with step("GetCompositeSchedule reports it from now on"):
        schedule = _composite(csms, evse)
        first = (schedule.get("chargingSchedulePeriod") or [{}])[0]
        reaction("OCPP", "composite schedule, first period", expected=f"startPeriod 0, limit <= {LIMIT_A:g} A",
                 observed=f"startPeriod {first.get('startPeriod')}, limit {first.get('limit')} "
                          f"{schedule.get('chargingRateUnit')}", judged=True,
                 agrees=first.get("startPeriod") == 0 and float(first.get("limit", 1e9)) <= LIMIT_A)
        assert first.get("startPeriod") == 0 and float(first.get("limit", 1e9)) <= LIMIT_A, (
            f"the composite schedule starts with {first}; the TxDefaultProfile limits to {LIMIT_A:g} A "
            "(OCPP 2.0.1 Part 2 3.6: the lowest limit of the leading profiles)")
    with step("after ClearChargingProfile the limit is gone"):
        assert _clear(csms, evse) == "Accepted"
        periods = _composite(csms, evse).get("chargingSchedulePeriod") or []
        assert not any(float(p["limit"]) <= LIMIT_A for p in periods), \
            f"the composite schedule still holds the cleared {LIMIT_A:g} A limit: {periods}"


def _power(value: dict | int) -> float:
    """A -2 PhysicalValue, a -20 RationalNumber or a DIN PMax (plain watts) in W."""
    if isinstance(value, (int, float)):
        return float(value)
    return value["Value"] * 10 ** value.get("Multiplier", value.get("Exponent", 0))


def _offers(result, protocol: str) -> dict[str, float]:
    """What the charger offered in its first charge-parameter answer, by field, in W."""
    if protocol.startswith("iso20"):
        answer = result.received("AC_ChargeParameterDiscoveryRes")[0]["AC_ChargeParameterDiscoveryRes"]
        return {"EVSEMaximumChargePower": _power(answer["AC_CPDResEnergyTransferMode"]["EVSEMaximumChargePower"])}
    body = result.received("ChargeParameterDiscoveryRes")[0]["V2G_Message"]["Body"]["ChargeParameterDiscoveryRes"]
    entry = body["SAScheduleList"]["SAScheduleTuple"][0]["PMaxSchedule"]["PMaxScheduleEntry"][0]
    offers = {"SAScheduleTuple PMax": _power(entry["PMax"])}
    if "DC_EVSEChargeParameter" in body:
        offers["EVSEMaximumPowerLimit"] = _power(body["DC_EVSEChargeParameter"]["EVSEMaximumPowerLimit"])
    return offers


@pytest.mark.case("OCPP-SC-002")
@pytest.mark.requires("charging_profiles", "remote_start", "ev", "iso15118")
@pytest.mark.parametrize("protocol, energy", [("iso2", "AC"), ("iso20-ac", "AC"), ("iso2", "DC"), ("din", "DC")],
                         ids=["iso2-ac", "iso20-ac", "iso2-dc", "din-dc"])
def test_the_limit_reaches_the_ev_over_iso15118(rig, csms, evse, ev, step, reaction, protocol, energy):
    config = rig.config.evse
    allowed_w = LIMIT_A * config.voltage * config.phases
    with step(f"a TxDefaultProfile limits EVSE 1 to {LIMIT_A:g} A ({allowed_w:.0f} W)"):
        response = csms.call(*commands.charging_limit(evse.version, LIMIT_A))
        assert response["status"] == "Accepted", f"SetChargingProfile answered {response}"
    assert csms.call(*commands.remote_start(evse.version, f"SC002-{protocol}-{energy}".upper()))["status"] == "Accepted"
    result = ev.charge(protocol=protocol, energy=energy, identification="EIM", cycles=2)
    assert result.ok, result.outcome.reason
    with step(f"the power the charger offers in {protocol} is within the limit"):
        offers = _offers(result, protocol)
        label = "DIN 70121" if protocol == "din" else "ISO 15118"
        for what, offered in offers.items():
            reaction(label, what, expected=f"<= {allowed_w:.0f} W", observed=f"{offered:.0f} W", judged=True,
                     agrees=offered <= allowed_w * 1.001)
        over = {what: offered for what, offered in offers.items() if offered > allowed_w * 1.001}
        assert not over, (
            f"{', '.join(f'{w} offers {v:.0f} W' for w, v in over.items())} while a charging profile limits the "
            f"EVSE to {LIMIT_A:g} A ({allowed_w:.0f} W at {config.voltage:g} V, {config.phases} phases): the "
            "composite schedule goes into the ISO 15118 limits (OCPP 2.0.1 K15)")


def _offered_w(result, protocol: str) -> list[float]:
    """The power the charger offered in each schedule answer of the session, in order."""
    if protocol == "iso2":
        offered = []
        for message in result.received("ChargeParameterDiscoveryRes"):
            body = message["V2G_Message"]["Body"]["ChargeParameterDiscoveryRes"]
            pmax = body["SAScheduleList"]["SAScheduleTuple"][0]["PMaxSchedule"]["PMaxScheduleEntry"][0]["PMax"]
            offered.append(_power(pmax))
        return offered
    offered = []
    for message in result.received("ScheduleExchangeRes"):
        tuples = message["ScheduleExchangeRes"]["Scheduled_SEResControlMode"]["ScheduleTuple"]
        power = tuples[0]["ChargingSchedule"]["PowerSchedule"]["PowerScheduleEntries"]["PowerScheduleEntry"][0]["Power"]
        offered.append(_power(power))
    return offered


@pytest.mark.case("OCPP-SC-003")
@pytest.mark.requires("charging_profiles", "remote_start", "ev", "iso15118")
@pytest.mark.parametrize("protocol", ["iso2", "iso20-ac"])
def test_a_limit_during_a_session_is_renegotiated(rig, csms, evse, ev, step, reaction, kpi, protocol):
    config = rig.config.evse
    allowed_w = LIMIT_A * config.voltage * config.phases
    loop = "ChargingStatusReq" if protocol == "iso2" else "AC_ChargeLoopReq"
    assert csms.call(*commands.remote_start(evse.version, f"SC003-{protocol}".upper()))["status"] == "Accepted"
    mark = rig.trace.now()
    sent: dict[str, float] = {}
    problems: list[BaseException] = []

    def limit_while_charging() -> None:
        try:
            rig.trace.wait_for(rig.scaled(60) + 5, name=loop, observer="evse", since=mark)
            sent["at"] = rig.trace.now()
            sent["status"] = csms.call(*commands.charging_limit(evse.version, LIMIT_A))["status"]
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread below
            problems.append(exc)

    helper = threading.Thread(target=limit_while_charging, name="limit while charging")
    helper.start()
    with step(f"while the EV charges, a TxDefaultProfile limits EVSE 1 to {LIMIT_A:g} A ({allowed_w:.0f} W)"):
        result = ev.charge(protocol=protocol, energy="AC", identification="EIM", cycles=30)
        helper.join(rig.scaled(60) + 10)
        if problems:
            raise problems[0]
        assert sent.get("status") == "Accepted", f"SetChargingProfile answered {sent.get('status')}"
        assert result.ok, result.outcome.reason
    with step("the charger asks the EV to renegotiate and offers the lower power"):
        offered = _offered_w(result, protocol)
        reaction("ISO 15118", "schedules offered in the session", expected=f"a second one, <= {allowed_w:.0f} W",
                 observed=", ".join(f"{w:.0f} W" for w in offered), judged=True,
                 agrees=len(offered) >= 2 and offered[-1] <= allowed_w * 1.001)
        assert len(offered) >= 2, (
            f"the charger offered {len(offered)} schedule(s) in the session: a lower limit during charging must reach "
            "the EV (-2 EVSENotification ReNegotiation, -20 ScheduleRenegotiation; OCPP 2.0.1 K15)")
        assert offered[-1] <= allowed_w * 1.001, f"the renegotiated schedule offers {offered[-1]:.0f} W"
        renegotiated = rig.trace.select(layer="v2g", observer="evse", src="evse", since=sent["at"],
                                        name="ChargeParameterDiscoveryRes" if protocol == "iso2"
                                        else "ScheduleExchangeRes")
        if renegotiated:
            kpi("limit_to_new_schedule_s", renegotiated[0].mono - sent["at"], "s",
                "SetChargingProfile sent to the renegotiated schedule sent to the EV")


def _needs_expected(result, protocol: str, energy: str, v21: bool) -> dict[str, object]:
    """What NotifyEVChargingNeeds must carry, read from what the EV sent (OCPP 2.0.1 K15; 2.1
    V2XChargingParametersType for an ISO 15118-20 EV)."""
    if protocol.startswith("iso20"):
        prefix = "DC" if energy.startswith("DC") else "AC"
        cpd = result.sent(f"{prefix}_ChargeParameterDiscoveryReq")[0][f"{prefix}_ChargeParameterDiscoveryReq"]
        mode = next(v for k, v in cpd.items() if k.endswith("CPDReqEnergyTransferMode"))
        exchange = result.sent("ScheduleExchangeReq")[0]["ScheduleExchangeReq"]
        request = next(v for k, v in exchange.items() if k.endswith("SEReqControlMode"))
        if not v21:
            return {"requestedEnergyTransfer": "DC" if prefix == "DC" else "AC_three_phase"}
        expected: dict[str, object] = {"requestedEnergyTransfer": energy if energy.endswith("BPT") else
                                       ("DC" if prefix == "DC" else "AC_three_phase"),
                                       "v2xChargingParameters.maxChargePower": _power(mode["EVMaximumChargePower"]),
                                       "v2xChargingParameters.evTargetEnergyRequest":
                                           _power(request["EVTargetEnergyRequest"])}
        if "EVMaximumDischargePower" in mode:
            expected["v2xChargingParameters.maxDischargePower"] = _power(mode["EVMaximumDischargePower"])
        return expected
    cpd = result.sent("ChargeParameterDiscoveryReq")[0]["V2G_Message"]["Body"]["ChargeParameterDiscoveryReq"]
    if energy == "DC":
        parameter = cpd["DC_EVChargeParameter"]
        return {"requestedEnergyTransfer": "DC",
                "dcChargingParameters.evMaxCurrent": round(_power(parameter["EVMaximumCurrentLimit"])),
                "dcChargingParameters.evMaxVoltage": round(_power(parameter["EVMaximumVoltageLimit"]))}
    parameter = cpd["AC_EVChargeParameter"]
    return {"requestedEnergyTransfer": "AC_three_phase",
            "acChargingParameters.energyAmount": round(_power(parameter["EAmount"]))}


@pytest.mark.case("OCPP-SC-004")
@pytest.mark.requires("remote_start", "ev", "iso15118")
@pytest.mark.parametrize("protocol, energy", [
    ("iso2", "AC"), ("iso2", "DC"), ("din", "DC"), ("iso20-ac", "AC"),
    pytest.param("iso20-ac", "AC_BPT", marks=pytest.mark.requires("discharge")),
    pytest.param("iso20-dc", "DC_BPT", marks=pytest.mark.requires("discharge"))],
    ids=["iso2-ac", "iso2-dc", "din-dc", "iso20-ac", "iso20-ac-bpt", "iso20-dc-bpt"])
def test_the_evs_charging_needs_reach_the_csms(rig, csms, evse, ev, step, reaction, protocol, energy):
    if evse.version is OcppVersion.V16:
        pytest.skip("OCPP 1.6 has no NotifyEVChargingNeeds")
    token = f"SC004-{protocol}-{energy}".upper().replace("_", "")
    assert csms.call(*commands.remote_start(evse.version, token))["status"] == "Accepted"
    mark = rig.trace.now()
    result = ev.charge(protocol=protocol, energy=energy, identification="EIM", cycles=1)
    assert result.ok, result.outcome.reason
    expected = _needs_expected(result, protocol, energy, evse.version is OcppVersion.V21)
    label = "DIN 70121" if protocol == "din" else "ISO 15118"
    with step(f"the charger passes the {label} EV's charge parameters on (NotifyEVChargingNeeds)"):
        try:
            needs = csms.wait_for_message("NotifyEVChargingNeeds", since=mark, timeout=rig.scaled(30) + 5,
                                          what="a schema-valid request")
            body = needs.payload["payload"]["chargingNeeds"]
        except AssertionError:
            body = None
        observed = {path: value_at(body, path) for path in expected} if body is not None else {}
        wrong = {path: value for path, value in expected.items() if observed.get(path) != value}
        reaction("OCPP", "NotifyEVChargingNeeds", expected=", ".join(f"{k} {v}" for k, v in expected.items()),
                 observed=("no NotifyEVChargingNeeds" if body is None else
                           ", ".join(f"{k} {observed.get(k)}" for k in expected)), judged=True, agrees=not wrong)
        assert body is not None, (f"the charger sent no NotifyEVChargingNeeds after the {label} EV's charge "
                                  "parameters (OCPP 2.0.1 K15)")
        assert not wrong, (f"NotifyEVChargingNeeds carries {', '.join(f'{k} {observed.get(k)}' for k in wrong)}; the EV "
                           f"asked for {', '.join(f'{k} {v}' for k, v in wrong.items())} (OCPP 2.0.1 K15"
                           f"{'; 2.1 V2XChargingParametersType' if evse.version is OcppVersion.V21 else ''})")


def _ev_profile(result, protocol: str) -> list[tuple[int, float]]:
    """The power profile the EV announced at PowerDeliveryReq(Start), as (start s, W) periods."""
    if protocol == "iso2":
        body = result.sent("PowerDeliveryReq")[0]["V2G_Message"]["Body"]["PowerDeliveryReq"]
        return [(int(e["ChargingProfileEntryStart"]), _power(e["ChargingProfileEntryMaxPower"]))
                for e in body["ChargingProfile"]["ProfileEntry"]]
    body = result.sent("PowerDeliveryReq")[0]["PowerDeliveryReq"]
    periods, start = [], 0
    for entry in body["EVPowerProfile"]["EVPowerProfileEntries"]["EVPowerProfileEntry"]:
        periods.append((start, _power(entry["Power"])))
        start += int(entry["Duration"])
    return periods


@pytest.mark.case("OCPP-SC-005")
@pytest.mark.requires("remote_start", "ev", "iso15118")
@pytest.mark.parametrize("protocol, control", [("iso2", None), ("iso20-ac", "scheduled"), ("iso20-ac", "dynamic")],
                         ids=["iso2-ac", "iso20-ac-scheduled", "iso20-ac-dynamic"])
def test_the_evs_charging_schedule_reaches_the_csms(rig, csms, evse, ev, step, reaction, protocol, control):
    if evse.version is OcppVersion.V16:
        pytest.skip("OCPP 1.6 has no NotifyEVChargingSchedule")
    token = f"SC005-{protocol}-{control or ''}".upper().rstrip("-")[:20]
    assert csms.call(*commands.remote_start(evse.version, token))["status"] == "Accepted"
    mark = rig.trace.now()
    options = {"control": control} if control else {}
    result = ev.charge(protocol=protocol, energy="AC", identification="EIM", cycles=1, **options)
    assert result.ok, result.outcome.reason
    announced = _ev_profile(result, protocol)
    with step("the charger passes the power profile the EV announced on (NotifyEVChargingSchedule)"):
        try:
            message = csms.wait_for_message("NotifyEVChargingSchedule", since=mark, timeout=rig.scaled(30) + 5,
                                            what="a schema-valid request")
            schedule = message.payload["payload"]["chargingSchedule"]
            observed = [(p["startPeriod"], float(p["limit"])) for p in schedule["chargingSchedulePeriod"]]
            unit = schedule["chargingRateUnit"]
        except AssertionError:
            observed, unit = None, None
        expected = [(start, round(power, 1)) for start, power in announced]
        ok = observed == expected and unit == "W"
        reaction("OCPP", "NotifyEVChargingSchedule periods", expected=f"{expected} W",
                 observed="none" if observed is None else f"{observed} {unit}", judged=True, agrees=ok)
        assert observed is not None, ("the charger did not pass the EV's power profile on (OCPP 2.0.1 K17: "
                                      "NotifyEVChargingSchedule after the EV's schedule arrives)")
        assert ok, f"NotifyEVChargingSchedule carries {observed} {unit}; the EV announced {expected} W"


def _announced_steps(rig, since: float, protocol: str) -> int:
    """How many steps the first schedule the EV received announced (PMaxScheduleEntry, -20
    PowerScheduleEntry of the ChargingSchedule)."""
    name = "ChargeParameterDiscoveryRes" if protocol == "iso2" else "ScheduleExchangeRes"
    for event in rig.trace.select(layer="v2g", observer="ev", name=name, since=since):
        message = (event.payload or {}).get("message") or {}
        body = message.get("V2G_Message", {}).get("Body", {}).get(name) or message.get(name) or {}
        if protocol == "iso2" and body.get("SAScheduleList"):
            return len(body["SAScheduleList"]["SAScheduleTuple"][0]["PMaxSchedule"]["PMaxScheduleEntry"])
        tuples = (body.get("Scheduled_SEResControlMode") or {}).get("ScheduleTuple") or []
        if tuples:
            return len(tuples[0]["ChargingSchedule"]["PowerSchedule"]["PowerScheduleEntries"]["PowerScheduleEntry"])
    return 0


@pytest.mark.case("OCPP-SC-006")
@pytest.mark.requires("charging_profiles", "remote_start", "ev", "iso15118")
@pytest.mark.parametrize("protocol", ["iso2", "iso20-ac"])
def test_a_later_period_of_a_profile_is_followed_at_its_time(rig, csms, evse, ev, meter, step, reaction, kpi,
                                                              evidence, protocol):
    config = rig.config.evse
    high_a, low_a = 16.0, LIMIT_A
    per_amp = config.voltage * config.phases
    high_w, low_w = high_a * per_amp, low_a * per_amp
    tolerance_w = max(100.0, 0.03 * low_w)
    step_s = max(3, round(rig.scaled(150)))
    started = _dt.datetime.now(_dt.timezone.utc)
    # startSchedule has whole seconds: the second period begins step_s after the truncated start
    boundary = rig.trace.now() + step_s - started.microsecond / 1e6
    with step(f"a TxDefaultProfile allows {high_a:g} A now and {low_a:g} A from {step_s} s on; an ISO 15118 EV "
              f"charges ({protocol})"):
        answer = csms.call(*commands.stepped_limit(evse.version, [(0, high_a), (step_s, low_a)], started))
        assert answer["status"] == "Accepted", f"SetChargingProfile answered {answer}"
        assert csms.call(*commands.remote_start(evse.version, f"SC006-{protocol}".upper()))["status"] == "Accepted"
        mark = rig.trace.now()
        with meter.measuring() as run:
            ev.hlc.charge_in_background(protocol=protocol, energy="AC", identification="EIM")
            try:
                before = _first_sample(meter, lambda p: abs(p - high_w) <= tolerance_w, boundary - rig.trace.now(),
                                       mark)
                after = _first_sample(meter, lambda p: abs(p - low_w) <= tolerance_w, rig.scaled(60) + 10, boundary)
                if after is not None:
                    time.sleep(HOLD_S)  # it stays there
            finally:
                ev.unplug()
    if before is None and max((t for t, _ in run.power_series() if t < boundary), default=mark) < mark + 0.5:
        raise Inconclusive(f"the EV was not charging before the second period began ({step_s} s was too short "
                           "for this rig's session set-up)")
    evidence.attach(meter.plot(run, f"OCPP-SC-006-{protocol}", title=f"OCPP-SC-006 {protocol}: a profile's second "
                                                                     f"period"))
    announced = _announced_steps(rig, mark, protocol)
    reaction("ISO 15118", "how the charger told the EV", expected="(not judged: a schedule with both periods, "
             "or a renegotiation at the change)", observed=f"the first schedule announced {announced} step(s)",
             judged=False, agrees=True)
    rule = ("\"startPeriod: Start of the period, in seconds from the start of schedule. The value of StartPeriod also "
            "defines the stop time of the previous period.\" (OCPP 2.0.1 ChargingSchedulePeriodType)")
    with step(f"the EV takes {high_w / 1000:.2f} kW before the change and {low_w / 1000:.2f} kW after it"):
        reaction("analyzer", "first period", expected=f"{high_w:.0f} W", observed="reached" if before else
                 "not reached before the change", judged=True, agrees=before is not None)
        assert before is not None, (f"the analyzer never measured {high_w:.0f} W (+-{tolerance_w:.0f} W) in the first "
                                    f"{step_s} s, while the profile allowed {high_a:g} A; {rule}")
        over = [] if after is None else [p for t, p in run.power_series() if t > after.mono and p > low_w + tolerance_w]
        seen = "never" if after is None else f"{after.mono - boundary:+.2f} s after the change"
        reaction("analyzer", "second period", expected=f"{low_w:.0f} W from {step_s} s on",
                 observed=seen + (f"; {len(over)} later sample(s) above it" if over else ""), judged=True,
                 agrees=after is not None and not over)
        assert after is not None, (f"the analyzer never measured {low_w:.0f} W (+-{tolerance_w:.0f} W) after the "
                                   f"second period began; {rule}")
        kpi("period change to power settled", (after.mono - boundary) * 1000.0, "ms",
            "the second period's startPeriod to the first analyzer sample at its limit")
        assert not over, (f"after settling at the second period's limit the analyzer measured up to {max(over):.0f} W; "
                          f"the limit is {low_w:.0f} W; {rule}")


#: how long the power is watched once it reached the second period's limit (s)
HOLD_S = 1.5


def _first_sample(meter, predicate, timeout: float, since: float):
    """The first analyzer sample since ``since`` whose power satisfies ``predicate``, or None."""
    try:
        return meter.wait_power(predicate, timeout=max(0.5, timeout), since=since)
    except TraceTimeout:
        return None
