"""SLAC (ISO 15118-3) between the harness's EV and the EVSE under test, seen from the EV's side of
the link: what the EVSE answered, when, and whether the EV could join its network.

These cases need a link that carries SLAC and an EV the harness can plug in: the netns rig (a lab
rig with a Green PHY NIC also needs pilot hardware, which the harness does not drive yet);
elsewhere they are skipped. Crosstalk and attenuation need the emulated power line. SLAC-007
runs the whole chain an EV runs after plugging in: SLAC, SDP on the link, an ISO 15118-2 Plug &
Charge session over TLS to SessionStop."""

from __future__ import annotations

import ipaddress

import pytest

from harness.slac import frames as f
from harness.slac.ev import EvFaults, Failed, Matched
from harness.trace import Layer


@pytest.fixture
def link(rig, ev):
    if not rig.link.slac:
        pytest.skip(f"needs a link that carries SLAC (netns or lab rig); this rig's link is {rig.link.kind}")
    yield rig.link
    ev.unplug()


def _from_evse(trace, name: str, since: float) -> list[f.Mme]:
    """SLAC messages the EV received from an EVSE, dissected."""
    events = trace.select(layer=Layer.SLAC, name=name, observer="ev", dst="ev", src="evse", since=since)
    return [f.parse(bytes.fromhex(e.payload["frame"])) for e in events]


@pytest.mark.case("SLAC-001")
@pytest.mark.requires("ev")
def test_slac_match(rig, link, ev, step, kpi):
    mark = rig.trace.now()
    with step("plug in: the EVSE applies 5 % and the EV matches it"):
        ev.plug_in()
        result = link.match()
        assert isinstance(result, Matched), f"no SLAC match: {result.reason}"
    run_id, me = result.run_id, rig.trace.first(name="SlacMatched", observer="ev", since=mark)
    ev_mac = me.keys["ev_mac"]
    kpi("slac_match_s", me.payload["duration_s"], "s", "CP state B with 5 % to the EV's CM_SET_KEY.CNF")
    kpi("attenuation_db", result.attenuation_db, "dB")
    with step("CM_SLAC_PARM.CNF carries the values of ISO 15118-3 Table A.3"):
        cnf = [m for m in _from_evse(rig.trace, "CM_SLAC_PARM.CNF", mark) if m.run_id == run_id][0]
        assert cnf.field("MSoundTargetMAC") == f.BROADCAST
        assert cnf.field("NumberMSounds") == 10 and cnf.field("TimeOut") == 6 and cnf.field("ResponseType") == 1
        assert cnf.field("ForwardingSTA") == ev_mac
        assert (cnf.field("ApplicationType"), cnf.field("SecurityType")) == (0, 0)
    with step("CM_ATTEN_CHAR.IND: to the EV, our RunID, 58 groups, the sounds it heard"):
        indication = [m for m in _from_evse(rig.trace, "CM_ATTEN_CHAR.IND", mark) if m.run_id == run_id][0]
        assert indication.field("SourceAdress") == ev_mac and indication.dst == ev_mac
        assert len(f.groups_of(indication)) == f.ATTEN_GROUPS
        assert 1 <= indication.field("NumberOfSounds") <= 10
    with step("CM_SLAC_MATCH.CNF: MVFLength 0x56, both MACs, a 54-bit NID and a 16-byte NMK"):
        match = [m for m in _from_evse(rig.trace, "CM_SLAC_MATCH.CNF", mark) if m.run_id == run_id][0]
        variable = match.body.VariableField
        assert match.field("MatchVariableFieldLen") == f.MATCH_CNF_MVF_LENGTH
        assert variable.EVMAC == ev_mac and variable.EVSEMAC == match.src == result.evse_mac
        assert bytes(variable.NetworkID)[6] & 0xC0 == 0 and len(bytes(variable.NMK)) == 16


@pytest.mark.case("SLAC-002")
@pytest.mark.requires("ev")
@pytest.mark.parametrize("dut_is", ["near", "far"], ids=["dut-near", "dut-far"])
def test_crosstalk(rig, link, ev, step, dut_is):
    neighbour_db = 55.0 if dut_is == "near" else 8.0
    mark = rig.trace.now()
    neighbour_context = link.neighbour(attenuation_db=neighbour_db)
    neighbour = neighbour_context.__enter__()
    try:
        with step(f"a neighbouring charger at {neighbour_db:g} dB answers the EV too"):
            ev.plug_in()
            result = link.match()
            assert isinstance(result, Matched), f"no SLAC match: {result.reason}"
            assert neighbour.mac in result.candidates and len(result.candidates) == 2
        if dut_is == "near":
            with step("the EV matched the EVSE under test, not the neighbour"):
                assert result.evse_mac != neighbour.mac
        else:
            with step("the EV matched the neighbour; the EVSE under test confirmed no match"):
                assert result.evse_mac == neighbour.mac
                dut_mac = next(m for m in result.candidates if m != neighbour.mac)
                assert not [m for m in _from_evse(rig.trace, "CM_SLAC_MATCH.CNF", mark) if m.src == dut_mac]
    finally:
        neighbour_context.__exit__(None, None, None)


@pytest.mark.case("SLAC-003")
@pytest.mark.requires("ev")
@pytest.mark.parametrize("where", ["CM_START_ATTEN_CHAR.IND", "CM_SLAC_MATCH.REQ"],
                         ids=["start-atten-char", "slac-match"])
def test_wrong_run_id_is_ignored(rig, link, ev, step, where):
    mark = rig.trace.now()
    wrong = {where} | ({"CM_MNBC_SOUND.IND"} if where == "CM_START_ATTEN_CHAR.IND" else set())
    with step(f"the EV sends {where} with another RunID than its CM_SLAC_PARM.REQ"):
        ev.plug_in()
        result = link.match(faults=EvFaults(wrong_run_id_in=frozenset(wrong)))
    answer = "CM_ATTEN_CHAR.IND" if where == "CM_START_ATTEN_CHAR.IND" else "CM_SLAC_MATCH.CNF"
    with step(f"the EVSE sends no {answer}: no match"):
        assert isinstance(result, Failed)
        assert not _from_evse(rig.trace, answer, mark)


@pytest.mark.case("SLAC-004")
@pytest.mark.requires("ev")
def test_late_slac_match_is_not_confirmed(rig, link, ev, step):
    mark = rig.trace.now()
    late = link.timers.TT_EVSE_match_session * 1.5
    with step(f"the EV sends CM_SLAC_MATCH.REQ {late:.2f} s after the attenuation results"):
        ev.plug_in()
        result = link.match(faults=EvFaults(match_delay=late))
    with step("the EVSE, past TT_EVSE_match_session, does not confirm it"):
        assert isinstance(result, Failed)
        assert not _from_evse(rig.trace, "CM_SLAC_MATCH.CNF", mark)


@pytest.mark.case("SLAC-005")
@pytest.mark.requires("ev")
def test_attenuation_over_the_limit(rig, link, ev, step):
    mark = rig.trace.now()
    link.set_attenuation(70.0)
    try:
        with step("the EVSE's modem measures 70 dB: the EV does not match"):
            ev.plug_in()
            result = link.match(attenuation_limit_db=40.0)
            assert isinstance(result, Failed) and "above the limit" in result.reasons[0]
        with step("the EVSE confirmed no match"):
            assert not _from_evse(rig.trace, "CM_SLAC_MATCH.CNF", mark)
    finally:
        link.set_attenuation(link.config_attenuation)


@pytest.mark.case("SLAC-006")
@pytest.mark.requires("ev")
def test_cp_state_a_during_matching(rig, link, ev, step):
    pilot = rig.pilot.line()
    with step("unplug while the EV's SLAC runs: matching stops"):
        ev.plug_in()
        running = rig.loop.submit(_unplug_when_matching_starts(rig, pilot))
        result = link.match()
        running.result(10)
        assert isinstance(result, Failed) and "CP state" in result.reason
    with step("plug in again: a new matching with a new RunID succeeds"):
        ev.unplug()
        ev.plug_in()
        again = link.match()
        assert isinstance(again, Matched), f"no SLAC match after plugging in again: {again.reason}"


async def _unplug_when_matching_starts(rig, pilot):
    import asyncio

    from harness.iec61851.pilot import CpState

    mark = rig.trace.now()
    for _ in range(500):
        if rig.trace.first(name="CM_START_ATTEN_CHAR.IND", observer="ev", since=mark):
            break
        await asyncio.sleep(0.005)
    await pilot.set_state(CpState.A)


ISO2_AC_PNC = ["supportedAppProtocolReq", "SessionSetupReq", "ServiceDiscoveryReq", "PaymentServiceSelectionReq",
               "PaymentDetailsReq", "AuthorizationReq", "ChargeParameterDiscoveryReq", "PowerDeliveryReq",
               "ChargingStatusReq", "PowerDeliveryReq", "SessionStopReq"]


@pytest.mark.case("SLAC-007")
@pytest.mark.requires("ev", "iso15118")
def test_plug_and_charge_over_the_power_line(rig, link, csms, ev, step, kpi):
    trace = rig.trace
    mark = trace.now()
    with step("plug in: CP state B, the EVSE applies 5 %, the EV matches it with SLAC"):
        ev.hlc.plug_in()
        matched = link.match()
        assert isinstance(matched, Matched), f"no SLAC match: {matched.reason}"
    with step("SDP, TLS and an ISO 15118-2 Plug & Charge session to SessionStop, on the logical network"):
        result = ev.charge(protocol="iso2", energy="AC", identification="PnC", tls=True, cycles=3)
        assert result.ok, result.outcome.reason
    sdp_events = trace.select(layer=Layer.SDP, observer="ev", since=mark)
    request = next(e for e in sdp_events if e.name == "SdpRequest")
    response = next(e for e in sdp_events if e.name == "SdpResponse")
    with step("SDP: a request for TLS over TCP to the link's all-nodes group, UDP 15118; the answer "
              "names the SECC's link-local address and its TLS port"):
        assert (request.payload["to"], request.payload["port"]) == ("ff02::1", 15118)
        assert bytes.fromhex(request.payload["datagram"])[8:] == b"\x00\x00", "Security 0x00 (TLS), TCP 0x00"
        assert response.payload["tls"] and ipaddress.IPv6Address(response.payload["address"].split("%")[0]).is_link_local
    with step("the session: the PnC sequence over TLS, every response OK, SessionStop last"):
        assert result.tls == "TLSv1.2"
        sent = result.names("sent")
        assert [n for i, n in enumerate(sent) if i == 0 or n != sent[i - 1]] == ISO2_AC_PNC  # loops folded
        bad = {name: code for name, code in result.response_codes().items() if not code.startswith("OK")}
        assert not bad, f"responses not OK: {bad}"
        stop = result.sent("SessionStopReq")[0]["V2G_Message"]["Body"]["SessionStopReq"]
        assert stop["ChargingSession"] == "Terminate"
    with step("the EVSE authorizes the contract's eMAID at the CSMS"):
        emaid = result.sent("PaymentDetailsReq")[0]["V2G_Message"]["Body"]["PaymentDetailsReq"]["eMAID"]
        csms.wait_for_message("Authorize", since=mark, timeout=rig.scaled(30) + 5,
                              where=lambda p: (p.get("idToken") or {}).get("idToken") == emaid
                              or p.get("idTag") == emaid)
    if link.capture is not None:
        with step("SLAC and SDP crossed the EV's interface (the case's capture)"):
            seen = {e.name for e in trace.select(observer="capture", since=mark)}
            assert {"CM_SLAC_PARM.REQ", "CM_SLAC_MATCH.CNF", "SdpRequest", "SdpResponse"} <= seen, seen
    slac_end = trace.first(layer=Layer.SLAC, name="SlacMatched", observer="ev", since=mark)
    connected = trace.first(layer=Layer.V2G, name="TcpConnected", observer="ev", since=mark)
    ended = trace.first(layer=Layer.V2G, name="SessionEnded", observer="ev", since=mark)
    kpi("slac_match_s", slac_end.payload["duration_s"], "s", "CP state B with 5 % to the EV's CM_SET_KEY.CNF")
    kpi("sdp_s", response.mono - request.mono, "s", "first SDP request to the SDP response")
    kpi("session_s", ended.mono - connected.mono, "s", "TCP/TLS connected to the end of the session (SessionStopRes)")
    kpi("plug_in_to_session_end_s", ended.mono - mark, "s", "plug-in to the end of the session")
