"""How an EV reacts when the EVSE breaks the rules (the EVSE side plays the tester).

Here the EV is under test and the reference EVSE commits the faults, so these cases need the
harness's EVSE (an emulated rig, or a lab rig in EV-as-DUT mode). What the EV did is read from
the timeline as the EVSE saw it and from the session's outcome.
"""

from __future__ import annotations

import pytest

from harness.ocpp import commands
from harness.v2g import faults


def _ev_requests_after(rig, mark, name):
    events = rig.trace.select(layer="v2g", observer="evse", src="ev", since=mark)
    names = [e.name for e in events if e.payload and e.payload.get("message")]
    return names[names.index(name) + 1:] if name in names else None


@pytest.mark.case("V2G-EVCC-001")
@pytest.mark.requires("ev", "iso15118", "remote_start")
def test_ev_stops_after_a_failed_response(rig, csms, evse, ev, step):
    csms.call(*commands.remote_start(evse.version, "EVCC-001"))  # authorization, to reach the failure
    evse.inject_v2g(faults.response_code("ChargeParameterDiscoveryRes", "FAILED"))
    mark = rig.trace.now()
    result = ev.charge(protocol="iso2", energy="AC", tls=False, cycles=2)
    assert not result.ok and result.outcome.response_code == "FAILED"
    assert _ev_requests_after(rig, mark, "ChargeParameterDiscoveryReq") == [], \
        "the EV sent requests after a FAILED response"


@pytest.mark.case("V2G-EVCC-002")
@pytest.mark.requires("ev", "iso15118")
def test_ev_gives_up_when_a_response_never_comes(rig, evse, ev, step):
    evse.inject_v2g(faults.drop("ServiceDiscoveryRes"))
    result = ev.charge(protocol="iso2", energy="AC", tls=False, cycles=2)
    assert not result.ok and "V2G_EVCC_Msg_Timeout" in result.outcome.reason


@pytest.mark.case("V2G-EVCC-003")
@pytest.mark.requires("ev", "iso15118")
def test_ev_refuses_an_untrusted_secc_certificate(rig, evse, ev, step):
    evse.inject_v2g(faults.fail_tls())
    result = ev.charge(protocol="iso2", energy="AC", identification="PnC", tls=True, cycles=1)
    assert not result.ok and "TlsHandshakeFailed" in result.outcome.reason


@pytest.mark.case("V2G-EVCC-004")
@pytest.mark.requires("ev", "iso15118")
def test_ev_closes_on_undecodable_exi(rig, evse, ev, step):
    evse.inject_v2g(faults.corrupt("PaymentServiceSelectionRes", bits=32))
    result = ev.charge(protocol="iso2", energy="AC", tls=False, cycles=1)
    assert not result.ok
    assert rig.trace.last(layer="v2g", name="UndecodableMessage", observer="ev") is not None


@pytest.mark.case("V2G-EVCC-005")
@pytest.mark.requires("ev", "iso15118")
def test_ev_refuses_an_unexpected_response(rig, evse, ev, step):
    evse.inject_v2g(faults.repeat("PaymentServiceSelectionRes"))
    result = ev.charge(protocol="iso2", energy="AC", tls=False, cycles=1)
    assert not result.ok and "expected PaymentServiceSelectionRes" in result.outcome.reason


@pytest.mark.case("V2G-EVCC-006")
@pytest.mark.requires("ev", "iso15118")
def test_ev_ignores_a_malformed_v2gtp_header(rig, evse, ev, step):
    evse.inject_v2g(faults.bad_header("SessionSetupRes", version=0x02, inverse=0xFD))
    result = ev.charge(protocol="iso2", energy="AC", tls=False, cycles=1)
    assert not result.ok
    rejected = rig.trace.last(layer="v2g", name="V2gtpHeaderRejected", observer="ev")
    assert rejected is not None
