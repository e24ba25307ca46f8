"""The DC steps DIN 70121 and ISO 15118-2 share (harness.v2g.dc), the typed session contexts, and
the DC timers read from the timer tables only."""

from __future__ import annotations

import pytest

from harness import exi
from harness.emulators.charge_port import ChargePort
from harness.v2g import dc, din, iso2, iso20, messages, sap, timers
from harness.v2g.equipment import EvseCapabilities
from harness.v2g.machine import Context, Notice, Send, context_of
from harness.v2g.session import SeccSession
from harness.v2g.values import physical


def test_din_and_iso2_write_their_dc_evse_status_in_their_schemas_order():
    """DIN 70121 DC_EVSEStatusType: EVSEIsolationStatus?, EVSEStatusCode, NotificationMaxDelay,
    EVSENotification; -2's: NotificationMaxDelay, EVSENotification, EVSEIsolationStatus?, EVSEStatusCode."""
    assert list(dc.din_dc_evse_status(isolation="Valid")["DC_EVSEStatus"]) == [
        "EVSEIsolationStatus", "EVSEStatusCode", "NotificationMaxDelay", "EVSENotification"]
    assert list(dc.iso2_dc_evse_status(isolation="Valid")["DC_EVSEStatus"]) == [
        "NotificationMaxDelay", "EVSENotification", "EVSEIsolationStatus", "EVSEStatusCode"]
    assert "EVSEIsolationStatus" not in dc.din_dc_evse_status()["DC_EVSEStatus"]


def test_both_protocols_take_the_dc_steps_from_one_place():
    for rules in (din.RULES, iso2.RULES):
        assert isinstance(rules, dc.DcRules)
        for step in ("_secc_CableCheckReq", "_secc_PreChargeReq", "_secc_CurrentDemandReq",
                     "_secc_WeldingDetectionReq", "_after_CableCheckRes", "_after_PreChargeRes",
                     "_after_CurrentDemandRes", "_after_WeldingDetectionRes"):
            assert getattr(type(rules), step) is getattr(dc.DcRules, step), (rules.family, step)


def _secc(protocol: str, caps: EvseCapabilities) -> SeccSession:
    session = SeccSession(ChargePort(caps), supported=[sap.protocol(protocol)], tls=None)
    session.receive(0x8001, exi.encode(sap.request(sap.offer([protocol])), "sap"), 0.0)
    return session


def _request(session: SeccSession, name: str, body: dict) -> list:
    message = messages.wrap(session.family, name, body, session.session_id or "00")
    return session.receive(0x8001, exi.encode(message, messages.schema_of(session.family, name)), 0.0)


def test_a_dc_only_iso2_secc_answers_an_early_charge_parameter_discovery_with_a_sequence_error():
    """[V2G2-538]: the response that belongs to the request. Before the EV named its mode the
    DC-only SECC answers in DC, with a DC_EVSEStatus in its DC_EVSEChargeParameter (it used to
    put the AC status there, which does not encode, and closed without an answer)."""
    session = _secc("iso2", EvseCapabilities(energy=("DC",)))
    _request(session, "SessionSetupReq", {"EVCCID": "0A1B2C3D4E5F"})
    events = _request(session, "ChargeParameterDiscoveryReq", {
        "RequestedEnergyTransferMode": "DC_extended", "DC_EVChargeParameter": {
            "DC_EVStatus": {"EVReady": True, "EVErrorCode": "NO_ERROR", "EVRESSSOC": 40},
            "EVMaximumCurrentLimit": physical(100, "A"), "EVMaximumVoltageLimit": physical(400, "V")}})
    assert not [e for e in events if isinstance(e, Notice) and e.name == "NoResponse"], events
    answer = next(e for e in events if isinstance(e, Send))
    body = messages.body_of(answer.message)
    assert answer.name == "ChargeParameterDiscoveryRes" and body["ResponseCode"] == "FAILED_SequenceError"
    assert "DC_EVSEStatus" in body["DC_EVSEChargeParameter"]


@pytest.mark.parametrize("protocol, kind", [("din", din.DinSecc), ("iso2", iso2.Iso2Secc),
                                            ("iso20-dc", iso20.Iso20Secc)])
def test_the_rules_give_each_session_a_typed_context(protocol, kind):
    session = SeccSession(ChargePort(EvseCapabilities()), supported=[sap.protocol(protocol)], tls="TLSv1.3")
    assert type(session.context) is Context  # before the handshake
    session.receive(0x8001, exi.encode(sap.request(sap.offer([protocol])), "sap"), 0.0)
    assert type(session.context) is kind and context_of(session, kind) is session.context
    with pytest.raises(AttributeError, match="no field 'proccessing'"):
        session.context.proccessing = "Finished"  # type: ignore[attr-defined]
    with pytest.raises(TypeError, match="not the Iso20Evcc"):
        context_of(session, iso20.Iso20Evcc)


def test_the_dc_timers_come_from_the_tables_only():
    assert (timers.DIN.cable_check(), timers.DIN.pre_charge()) == (38.0, 7.0)
    assert (timers.ISO2.cable_check(), timers.ISO2.pre_charge()) == (40.0, 7.0)
    assert (timers.ISO20.cable_check(), timers.ISO20.pre_charge()) == (40.0, 7.0)
    with pytest.raises(LookupError, match="sap timer table has no cable_check_timeout"):
        timers.SAP.cable_check()
    for table in timers.PROTOCOL_TIMERS.values():  # every value written out in its table
        assert table.ongoing_timeout and table.ongoing_performance and table.communication_setup_timeout
