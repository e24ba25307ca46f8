"""Grid-driven power: a demand-response event reaches the CSMS, its strategy sets a charging
profile (OCPP 2.1 operationMode, setpoint, dischargeLimit), the charger carries the new target into
the ISO 15118 session, and the analyzer measures what flows.

The grid's request and the operator's requirements come from scenario files
(``fixtures/grid/``): the power, the tolerance once settled, and the response-time limit of each
hop (``harness.correlation.latency``). Every hop is a KPI of the case, and the plot shows the
requested against the measured power.
"""

from __future__ import annotations

import threading
import time

import pytest

from harness.correlation.latency import grid_hops
from harness.correlation.metering import EXPORT, IMPORT, check_metering
from harness.ocpp import commands, grid
from harness.ocpp.versions import OcppVersion
from harness.trace import TraceTimeout
from harness.v2g.values import rational_value

EXPORT_SCENARIO = grid.load_scenario("evening-peak-export")
IMPORT_SCENARIO = grid.load_scenario("import-cap")
PROTOCOLS = {"AC_BPT": "iso20-ac", "DC_BPT": "iso20-dc", "AC": "iso20-ac", "DC": "iso20-dc"}
#: how long the EV charges before the grid event, and how long the power is held and measured once
#: it settled (s)
BASELINE_S = 0.5
HOLD_S = 1.5
#: the TxDefaultProfile under the limit strategy's discharge: the EV may charge, not discharge
BASELINE_W = 11000.0


def _baseline(csms) -> None:
    profile = {"id": 900, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile",
               "chargingProfileKind": "Relative",
               "chargingSchedule": [{"id": 900, "chargingRateUnit": "W",
                                     "chargingSchedulePeriod": [{"startPeriod": 0, "limit": BASELINE_W}]}]}
    answer = csms.call("SetChargingProfile", {"evseId": 1, "chargingProfile": profile})
    assert answer["status"] == "Accepted", f"SetChargingProfile (TxDefaultProfile, ChargingOnly) answered {answer}"


class DemandResponse:
    """Sends one grid event once the EV's charge loop runs, holds the power for HOLD_S once the
    analyzer sees it within tolerance, then has the EV end its session."""

    def __init__(self, rig, csms, ev, meter, event: grid.GridEvent, strategy: str, tolerance_w: float) -> None:
        self.rig, self.csms, self.ev, self.meter = rig, csms, ev, meter
        self.event, self.strategy, self.tolerance_w = event, strategy, tolerance_w
        self.outcome = None
        self.window: tuple[float, float] | None = None
        self.problem: BaseException | None = None
        self.mark = rig.trace.now()
        self.thread = threading.Thread(target=self._run, name="demand response")

    #: the power the case expects to settle (W; None: what the event asks for)
    wanted_w: float | None = None
    #: the scenario's maxOfflineDuration for the profile (s, grid time)
    max_offline_s: float | None = None
    #: what the case does once the power settled, before the EV ends its session
    then = None
    #: a 2.1 Dynamic profile (grid_update rewrites it)
    dynamic = False
    #: a Dynamic profile the charger pulls this often (s, grid time; None: the CSMS pushes)
    pull_every_s: float | None = None

    @property
    def requested_w(self) -> float:
        if self.wanted_w is not None:
            return self.wanted_w
        return -self.event.export_w if self.event.export_w is not None else float(self.event.import_w or 0.0)

    def _run(self) -> None:
        try:
            rig = self.rig
            rig.trace.wait_for(rig.scaled(60) + 5, layer="v2g", observer="evse", since=self.mark,
                               name=("AC_ChargeLoopReq", "DC_ChargeLoopReq", "ChargingStatusReq", "CurrentDemandReq"))
            time.sleep(BASELINE_S)
            self.outcome = self.csms.grid_event(self.event, self.strategy, max_offline_s=self.max_offline_s,
                                                dynamic=self.dynamic, pull_every_s=self.pull_every_s)
            if self.outcome.status == "Accepted":
                wanted = self.requested_w
                try:
                    settled = self.meter.wait_power(lambda p: abs(p - wanted) <= self.tolerance_w, timeout=10.0,
                                                    since=self.outcome.signalled_at)
                    time.sleep(HOLD_S)
                    self.window = (settled.mono, rig.trace.now())
                except TraceTimeout:
                    pass  # judged below, from the timeline
                if self.window is not None and self.then is not None:
                    self.then()
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            self.problem = exc
        finally:
            self.ev.end_session()

    def __enter__(self) -> "DemandResponse":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.thread.join(30)
        if self.problem is not None:
            raise self.problem


def _judge_power(reaction, run, dr: DemandResponse, what: str) -> None:
    wanted = dr.requested_w
    if dr.window is None:
        samples = [p for t, p in run.power_series() if t >= (dr.outcome.signalled_at if dr.outcome else 0)]
        seen = f"{min(samples) / 1000:.2f} .. {max(samples) / 1000:.2f} kW" if samples else "no samples"
        reaction("analyzer", what, expected=f"{wanted / 1000:.2f} kW", observed=f"never within "
                 f"{dr.tolerance_w:.0f} W ({seen})", judged=True, agrees=False)
        raise AssertionError(f"the analyzer never measured {wanted / 1000:.2f} kW (+-{dr.tolerance_w:.0f} W) after "
                             f"the grid event ({seen}); the charger and the EV are to follow the charging profile")
    start, end = dr.window
    imported, exported = run.energy_between(start, end)
    average = (imported - exported) * 3600.0 / (end - start)
    ok = abs(average - wanted) <= dr.tolerance_w
    reaction("analyzer", what, expected=f"{wanted / 1000:.2f} kW +-{dr.tolerance_w:.0f} W",
             observed=f"{average / 1000:.3f} kW over {end - start:.1f} s", judged=True, agrees=ok)
    assert ok, (f"over {end - start:.1f} s after it settled the analyzer measured {average:.0f} W on average; "
                f"the grid asked for {wanted:.0f} W (tolerance {dr.tolerance_w:.0f} W)")


def _judge_latency(rig, kpi, reaction, dr: DemandResponse, scenario: grid.Scenario) -> None:
    assert dr.outcome is not None
    hops = grid_hops(rig.trace.select(since=dr.outcome.signalled_at), dr.outcome.signalled_at, dr.requested_w,
                     dr.tolerance_w)
    for name, seconds in hops.hops():
        if seconds is not None:
            kpi(f"hop {name}", seconds * 1000.0, "ms", f"grid signal chain: time to '{name}' from the hop before")
    if hops.chain_s is not None:
        kpi("grid signal to power settled", hops.chain_s * 1000.0, "ms", "the whole chain")
    assert hops.missing is None, f"the grid signal's path broke off: {hops.missing} ({hops.describe()})"
    took = {**{name: seconds for name, seconds in hops.hops()}, "chain": hops.chain_s}
    over = {name: (took[name], limit) for name, limit in scenario.latency_limits.items()
            if took.get(name) is not None and took[name] > limit}
    limits = ", ".join(f"{name} <= {limit:g} s" for name, limit in scenario.latency_limits.items())
    reaction("grid", "hop latencies", expected=limits or "(no limits)", observed=hops.describe(), judged=True,
             agrees=not over)
    assert not over, ", ".join(f"'{name}' took {took_s:.3f} s, the scenario {scenario.name} allows {limit:g} s"
                               for name, (took_s, limit) in over.items())


def _judge_operation_mode(csms, reaction, dr: DemandResponse) -> None:
    profile = dr.outcome.decision.profile
    wanted = profile["chargingSchedule"][0]["chargingSchedulePeriod"][0].get("operationMode", "ChargingOnly")
    reports = [m.payload["payload"] for m in csms.messages("TransactionEvent", since=dr.outcome.signalled_at,
                                                            kind="CALL")]
    modes = [(r.get("triggerReason"), r.get("transactionInfo", {}).get("operationMode")) for r in reports]
    changed = [mode for trigger, mode in modes if trigger == "OperationModeChanged"]
    ok = wanted in changed
    reaction("OCPP", "TransactionEvent OperationModeChanged", expected=f"operationMode {wanted}",
             observed=", ".join(str(m) for m in changed) or "none", judged=True, agrees=ok)
    assert ok, (f"the charger did not report the transaction's new operationMode {wanted} (TransactionEvent with "
                f"triggerReason OperationModeChanged and transactionInfo.operationMode; OCPP 2.1); it reported "
                f"{modes or 'no TransactionEvent'}")


@pytest.mark.case("V2G-DR-001")
@pytest.mark.requires("remote_start", "iso15118", "discharge", "ev", "charging_profiles")
@pytest.mark.parametrize("strategy", ["setpoint", "limit"])
@pytest.mark.parametrize("control", ["scheduled", "dynamic"])
@pytest.mark.parametrize("energy", ["AC_BPT", "DC_BPT"])
def test_a_demand_response_event_makes_the_ev_export(rig, csms, evse, ev, meter, step, reaction, kpi, evidence,
                                                     energy, control, strategy):
    if evse.version is not OcppVersion.V21:
        pytest.skip(f"discharge commanded through OCPP needs OCPP 2.1 (operationMode, setpoint, dischargeLimit); "
                    f"this charger speaks OCPP {evse.version.value}")
    scenario = EXPORT_SCENARIO
    event = scenario.events[0]
    assert event.export_w is not None
    tolerance = event.export_w * scenario.tolerance_percent / 100.0
    token = f"DR001-{energy}-{control}-{strategy}".upper().replace("_", "")
    if strategy == "limit":
        with step(f"a TxDefaultProfile lets the EV charge up to {BASELINE_W / 1000:g} kW and not discharge "
                  "(ChargingOnly); the EV would like to discharge"):
            _baseline(csms)
    with meter.measuring() as run:
        with step(f"remote start; an ISO 15118-20 {energy} session in {control} mode; during it the grid asks for "
                  f"{event.describe()} ({strategy} strategy)"):
            assert csms.call(*commands.remote_start(evse.version, token))["status"] == "Accepted"
            dr = DemandResponse(rig, csms, ev, meter, event, strategy, tolerance)
            dr.max_offline_s = scenario.max_offline_s
            with dr:
                result = ev.charge(protocol=PROTOCOLS[energy], energy=energy, control=control,
                                   discharge=strategy == "limit", cycles=None)
            assert dr.outcome is not None and dr.outcome.status == "Accepted", (
                f"SetChargingProfile for the grid event answered {dr.outcome and dr.outcome.status}: "
                f"{dr.outcome and dr.outcome.decision.profile}")
            assert result.ok, result.outcome.reason
        with step("unplug: the transaction ends with its final register readings"):
            ev.unplug()
            tx = csms.wait_transaction(since=dr.mark, timeout=rig.scaled(60) + 5, what="the transaction's end",
                                       where=lambda t: t.id_token == token and t.ended)
    evidence.attach(meter.plot(run, f"V2G-DR-001-{energy}-{control}-{strategy}",
                               title=f"V2G-DR-001 {energy} {control}, {strategy} strategy: requested and measured"))
    with step(f"the EV exports {event.export_w / 1000:g} kW (+-{scenario.tolerance_percent:g} %) once settled"):
        _judge_power(reaction, run, dr, "export once settled")
    with step("the charger reports the transaction's operation mode"):
        _judge_operation_mode(csms, reaction, dr)
    with step(f"the charger's registers agree with the analyzer (class {rig.config.meter.dut_class})"):
        check = check_metering(tx, run, dut_class=rig.config.meter.dut_class)
        export = [e for e in check.energy if e.measurand == EXPORT]
        assert export, f"the charger reported no {EXPORT} for the transaction\n{check.explain()}"
        kpi("analyzer_export_wh", export[0].measured_wh, "Wh", "energy the analyzer integrated as export")
        assert check.ok, f"the charger's meter disagrees with the analyzer\n{check.explain()}"
    with step("each hop from the grid signal to the settled power within the scenario's limits"):
        _judge_latency(rig, kpi, reaction, dr, scenario)


@pytest.mark.case("V2G-DR-002")
@pytest.mark.requires("remote_start", "iso15118", "ev", "charging_profiles")
@pytest.mark.parametrize("protocol, energy, control", [
    ("iso2", "AC", "scheduled"), ("iso20-ac", "AC", "scheduled"), ("iso20-ac", "AC", "dynamic"),
    ("iso20-dc", "DC", "dynamic")], ids=["iso2-ac", "iso20-ac-scheduled", "iso20-ac-dynamic", "iso20-dc-dynamic"])
def test_an_import_cap_during_a_session_is_followed(rig, csms, evse, ev, meter, step, reaction, kpi, evidence,
                                                    protocol, energy, control):
    if evse.version is OcppVersion.V16:
        pytest.skip("the grid strategies set OCPP 2.x charging profiles; this charger speaks OCPP 1.6")
    scenario = IMPORT_SCENARIO
    event = scenario.events[0]
    assert event.import_w is not None
    tolerance = event.import_w * scenario.tolerance_percent / 100.0
    token = f"DR002-{protocol}-{control}".upper().replace("_", "")
    with meter.measuring() as run:
        with step(f"remote start; an {protocol} {energy} session in {control} mode; during it the grid caps "
                  f"the import ({event.describe()}, limit strategy)"):
            assert csms.call(*commands.remote_start(evse.version, token))["status"] == "Accepted"
            with DemandResponse(rig, csms, ev, meter, event, "limit", tolerance) as dr:
                options = {"control": control} if protocol.startswith("iso20") else {}
                result = ev.charge(protocol=protocol, energy=energy, cycles=None, **options)
            assert dr.outcome is not None and dr.outcome.status == "Accepted", (
                f"SetChargingProfile for the grid event answered {dr.outcome and dr.outcome.status}")
            assert result.ok, result.outcome.reason
        ev.unplug()
        tx = csms.wait_transaction(since=dr.mark, timeout=rig.scaled(60) + 5, what="the transaction's end",
                                   where=lambda t: t.id_token == token and t.ended)
    evidence.attach(meter.plot(run, f"V2G-DR-002-{protocol}-{control}",
                               title=f"V2G-DR-002 {protocol} {control}: import capped at "
                                     f"{event.import_w / 1000:g} kW"))
    with step(f"the charging power follows the cap ({event.import_w / 1000:g} kW +-{scenario.tolerance_percent:g} %)"):
        _judge_power(reaction, run, dr, "import once capped")
    with step(f"the charger's import register agrees with the analyzer (class {rig.config.meter.dut_class})"):
        check = check_metering(tx, run, dut_class=rig.config.meter.dut_class)
        assert [e for e in check.energy if e.measurand == IMPORT], check.explain()
        assert check.ok, f"the charger's meter disagrees with the analyzer\n{check.explain()}"
    with step("each hop from the grid signal to the settled power within the scenario's limits"):
        _judge_latency(rig, kpi, reaction, dr, scenario)


def _loop_pairs(result, energy: str) -> list[tuple[float, float]]:
    """(the EV's EVMaximumDischargePower, the charger's target) per dynamic charge-loop exchange, in
    W (DC: the current the charger delivered times the voltage), in order."""
    prefix = "AC" if energy.startswith("AC") else "DC"
    requests = result.sent(f"{prefix}_ChargeLoopReq")
    responses = result.received(f"{prefix}_ChargeLoopRes")
    pairs = []
    for request, response in zip(requests, responses):
        asked = request[f"{prefix}_ChargeLoopReq"]
        mode = next((v for k, v in asked.items() if k.endswith("CLReqControlMode")), {}) or {}
        if "EVMaximumDischargePower" not in mode:
            continue
        answer = response[f"{prefix}_ChargeLoopRes"]
        if prefix == "AC":
            control = next((v for k, v in answer.items() if k.endswith("CLResControlMode")), {}) or {}
            target = rational_value(control.get("EVSETargetActivePower"))
        else:
            target = rational_value(answer["EVSEPresentCurrent"]) * rational_value(answer["EVSEPresentVoltage"])
        pairs.append((rational_value(mode["EVMaximumDischargePower"]), target))
    return pairs


@pytest.mark.case("V2G-DR-003")
@pytest.mark.requires("remote_start", "iso15118", "discharge", "ev", "charging_profiles")
@pytest.mark.parametrize("limit", ["ev-maximum-below-request", "ev-at-minimum-soc"])
@pytest.mark.parametrize("energy", ["AC_BPT", "DC_BPT"])
def test_a_discharge_beyond_the_evs_limits_is_not_asked_of_it(rig, csms, evse, ev, meter, step, reaction, evidence,
                                                             energy, limit):
    if evse.version is not OcppVersion.V21:
        pytest.skip(f"discharge commanded through OCPP needs OCPP 2.1; this charger speaks OCPP {evse.version.value}")
    event = EXPORT_SCENARIO.events[0]
    assert event.export_w is not None
    if limit == "ev-maximum-below-request":
        ev_max_w = event.export_w * 0.6
        ev.set_battery(max_discharge_kw=ev_max_w / 1000.0)
        said = f"the EV discharges {ev_max_w / 1000:g} kW at most"
    else:
        ev_max_w = 0.0
        ev.set_battery(soc=rig.ev.hlc.profile.min_soc)
        said = "the EV is at its minimum state of charge"
    wanted = -min(event.export_w, ev_max_w)
    tolerance = event.export_w * EXPORT_SCENARIO.tolerance_percent / 100.0
    token = f"DR003-{energy}-{limit}".upper().replace("_", "")[:20]
    with meter.measuring() as run:
        with step(f"{said}; in a dynamic {energy} session the grid asks for {event.describe()}"):
            assert csms.call(*commands.remote_start(evse.version, token))["status"] == "Accepted"
            dr = DemandResponse(rig, csms, ev, meter, event, "setpoint", tolerance)
            dr.wanted_w = wanted
            with dr:
                result = ev.charge(protocol=PROTOCOLS[energy], energy=energy, control="dynamic", cycles=None)
            assert dr.outcome is not None and dr.outcome.status == "Accepted"
            assert result.ok, result.outcome.reason
        ev.unplug()
    evidence.attach(meter.plot(run, f"V2G-DR-003-{energy}-{limit}",
                               title=f"V2G-DR-003 {energy}: {said}"))
    with step("the charger never asks the EV for more discharge than the EV announced"):
        pairs = _loop_pairs(result, energy)
        beyond = [(allowed, target) for allowed, target in pairs if target < -allowed - max(50.0, 0.01 * allowed)]
        reaction("ISO 15118", "targets against EVMaximumDischargePower", expected="target >= -EVMaximumDischargePower",
                 observed=(f"{len(beyond)} of {len(pairs)} beyond, e.g. {beyond[0][1]:.0f} W against "
                           f"{beyond[0][0]:.0f} W" if beyond else f"all {len(pairs)} within"),
                 judged=True, agrees=not beyond and bool(pairs))
        assert pairs, "no dynamic charge-loop exchange carried the EV's EVMaximumDischargePower"
        assert not beyond, (f"the charger asked the EV to discharge {-beyond[0][1]:.0f} W while the EV announced "
                            f"EVMaximumDischargePower {beyond[0][0]:.0f} W ({len(beyond)} of {len(pairs)} exchanges): "
                            "in dynamic mode the target must stay within the EV's maxima (ISO 15118-20 "
                            "Dynamic_AC_CLReqControlMode / Dynamic_DC_CLReqControlMode)")
    with step(f"the analyzer measures {-wanted / 1000:g} kW of export, what the EV can give"):
        _judge_power(reaction, run, dr, "export within the EV's limits")


@pytest.mark.case("V2G-DR-004")
@pytest.mark.requires("remote_start", "iso15118", "discharge", "ev", "charging_profiles", "offline")
@pytest.mark.parametrize("energy", ["AC_BPT", "DC_BPT"])
def test_discharge_ends_when_the_csms_stays_away_longer_than_the_profile_allows(rig, csms, evse, ev, meter, step,
                                                                             reaction, kpi, evidence, energy):
    if evse.version is not OcppVersion.V21:
        pytest.skip(f"maxOfflineDuration and discharge setpoints are OCPP 2.1's; this charger speaks OCPP "
                    f"{evse.version.value}")
    scenario = EXPORT_SCENARIO
    event = scenario.events[0]
    assert event.export_w is not None and scenario.max_offline_s is not None
    allowed_s = max(0, round(rig.scaled(scenario.max_offline_s)))
    tolerance = event.export_w * scenario.tolerance_percent / 100.0
    token = f"DR004-{energy}".replace("_", "")
    lost: dict[str, float] = {}

    def lose_the_csms() -> None:
        lost["at"] = rig.trace.now()
        csms.go_offline()
        try:
            ended = meter.wait_power(lambda p: p >= -tolerance, timeout=allowed_s + 10.0, since=lost["at"])
            lost["export_ended"] = ended.mono
        except TraceTimeout:
            pass
        finally:
            csms.come_online()

    with meter.measuring() as run:
        with step(f"an export of {event.export_w / 1000:g} kW with maxOfflineDuration {allowed_s} s "
                  f"({scenario.max_offline_s:g} s scaled); once it flows the CSMS goes away"):
            assert csms.call(*commands.remote_start(evse.version, token))["status"] == "Accepted"
            dr = DemandResponse(rig, csms, ev, meter, event, "setpoint", tolerance)
            dr.max_offline_s = scenario.max_offline_s
            dr.then = lose_the_csms
            with dr:
                result = ev.charge(protocol=PROTOCOLS[energy], energy=energy, control="dynamic", cycles=None)
            assert dr.window is not None, "the export never settled before the CSMS went away"
            assert result.ok, result.outcome.reason
        ev.unplug()
    evidence.attach(meter.plot(run, f"V2G-DR-004-{energy}", title=f"V2G-DR-004 {energy}: the CSMS lost during export"))
    with step(f"the export goes on for maxOfflineDuration ({allowed_s} s), then the charger falls back"):
        took = lost.get("export_ended", float("inf")) - lost["at"]
        if took != float("inf"):
            kpi("export after the CSMS was lost", took, "s", f"maxOfflineDuration {allowed_s} s")
        margin = 1.0 + 3 * rig.config.meter.sample_period  # the watcher's wake-up and the analyzer's samples
        ok = allowed_s * 0.9 <= took <= allowed_s + margin
        reaction("OCPP", "export once offline", expected=f"ends after {allowed_s} s (+{margin:.1f} s)",
                 observed="never ended" if took == float("inf") else f"ended after {took:.2f} s", judged=True, agrees=ok)
        assert took != float("inf"), (f"the EV still exported {allowed_s + 10:g} s after the charger lost the CSMS; a "
                                      f"profile with maxOfflineDuration {allowed_s} s \"becomes invalid for as long as "
                                      "it is offline and the Charging Station reverts back to a valid profile with a "
                                      "lower stack level\" (OCPP 2.1 ChargingProfileType.maxOfflineDuration)")
        assert took >= allowed_s * 0.9, (f"the export ended {took:.2f} s after the charger lost the CSMS, before the "
                                         f"profile's maxOfflineDuration of {allowed_s} s ran out")
        assert took <= allowed_s + margin, (f"the export ended {took:.2f} s after the CSMS was lost; maxOfflineDuration "
                                            f"is {allowed_s} s")


#: how an update reaches a Dynamic profile (OCPP 2.1): the CSMS pushes it, or the charger pulls it
#: every DYN_UPDATE_S (grid time; dynUpdateInterval)
UPDATE_DELIVERY = {"push": "UpdateDynamicSchedule", "pull": "PullDynamicScheduleUpdate"}
DYN_UPDATE_S = 60.0


@pytest.mark.case("V2G-DR-005")
@pytest.mark.requires("remote_start", "iso15118", "discharge", "ev", "charging_profiles")
@pytest.mark.parametrize("delivery", list(UPDATE_DELIVERY))
@pytest.mark.parametrize("energy", ["AC_BPT", "DC_BPT"])
def test_a_dynamic_profile_follows_each_update_from_the_grid(rig, csms, evse, ev, meter, step, reaction, kpi,
                                                              evidence, energy, delivery):
    action = UPDATE_DELIVERY[delivery]
    if evse.version is not OcppVersion.V21:
        pytest.skip(f"Dynamic charging profiles and {action} are OCPP 2.1's; this charger speaks OCPP "
                    f"{evse.version.value}")
    first = EXPORT_SCENARIO.events[0]
    assert first.export_w is not None
    later = grid.event("the peak eases", export_kw=first.export_w * 0.6 / 1000.0, duration_s=first.duration_s)
    tolerance = first.export_w * EXPORT_SCENARIO.tolerance_percent / 100.0
    token = f"DR005-{energy}-{delivery}".replace("_", "")
    pull_s = max(1, round(rig.scaled(DYN_UPDATE_S))) if delivery == "pull" else 0
    updated: dict = {}

    def update_the_export() -> None:
        outcome = csms.grid_update(dr.outcome, later)
        updated["outcome"] = outcome
        if outcome.status in ("Accepted", "Published"):
            try:  # a pulled update arrives at the charger's next question, at most an interval later
                settled = meter.wait_power(lambda p: abs(p + later.export_w) <= tolerance, timeout=10.0 + pull_s,
                                           since=outcome.signalled_at)
                time.sleep(HOLD_S)
                updated["window"] = (settled.mono, rig.trace.now())
            except TraceTimeout:
                pass

    how = ("UpdateDynamicSchedule asks for" if delivery == "push" else
           f"the charger, asking every {pull_s} s (dynUpdateInterval), is given")
    with meter.measuring() as run:
        with step(f"a Dynamic TxProfile asks for {first.describe()}; once the export settles, {how} "
                  f"{later.export_w / 1000:g} kW"):
            assert csms.call(*commands.remote_start(evse.version, token))["status"] == "Accepted"
            dr = DemandResponse(rig, csms, ev, meter, first, "setpoint", tolerance)
            dr.dynamic = True
            dr.pull_every_s = DYN_UPDATE_S if delivery == "pull" else None
            dr.then = update_the_export
            with dr:
                result = ev.charge(protocol=PROTOCOLS[energy], energy=energy, control="dynamic", cycles=None)
            assert dr.outcome is not None and dr.outcome.status == "Accepted", \
                f"SetChargingProfile (Dynamic) answered {dr.outcome and dr.outcome.status}"
            assert result.ok, result.outcome.reason
        ev.unplug()
    evidence.attach(meter.plot(run, f"V2G-DR-005-{energy}-{delivery}",
                               title=f"V2G-DR-005 {energy}: a Dynamic profile updated ({action})"))
    with step(f"the first export settles at {first.export_w / 1000:g} kW"):
        _judge_power(reaction, run, dr, "export before the update")
    with step(f"after {action} the export settles at {later.export_w / 1000:g} kW"):
        outcome = updated.get("outcome")
        assert outcome is not None, "the first export never settled, so no update was sent"
        if delivery == "push":
            assert outcome.status == "Accepted", f"UpdateDynamicSchedule answered {outcome.status}"
        else:
            asked = csms.messages(action, since=outcome.signalled_at, kind="CALL")
            reaction("OCPP", action, expected=f"the charger asks within {pull_s} s of the last update",
                     observed=f"asked {len(asked)} time(s) after the update was published", judged=True,
                     agrees=bool(asked))
            assert asked, (f"the charger never sent {action} for profile {outcome.decision.profile['id']} "
                           f"(dynUpdateInterval {pull_s} s): \"Interval in seconds after receipt of last update, "
                           f"when to request a profile update by sending a PullDynamicScheduleUpdateRequest "
                           f"message\" (OCPP 2.1 ChargingProfileType.dynUpdateInterval)")
        after = DemandResponse(rig, csms, ev, meter, later, "setpoint", tolerance)
        after.outcome, after.window = outcome, updated.get("window")
        _judge_power(reaction, run, after, "export after the update")
        hops = grid_hops(rig.trace.select(since=outcome.signalled_at), outcome.signalled_at, -later.export_w,
                         tolerance, action=action)
        if hops.chain_s is not None:
            kpi("update to power settled", hops.chain_s * 1000.0, "ms", "grid signal to the updated power settled"
                + (f" (includes the wait for the charger's next question, up to {pull_s} s)" if pull_s else ""))
        assert hops.missing is None, f"the update's path broke off: {hops.missing} ({hops.describe()})"
