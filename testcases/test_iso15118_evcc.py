"""How an EV reacts when the EVSE breaks the rules (the EVSE side plays the tester).

Here the EV is under test and the reference EVSE commits the faults, so these cases need the
harness's EVSE (an emulated rig, or a lab rig in EV-as-DUT mode). What the EV did is read from
the timeline as the EVSE saw it and from the session's outcome.
"""

from __future__ import annotations

import pytest

from harness.ocpp import commands
from harness.pki.faults import CATALOGUE
from harness.pki.profiles import Role
from harness.v2g import faults

SECC_FAULTS = [pytest.param(f, id=f.id) for f in CATALOGUE if f.applies_to(Role.SECC)]
#: SECC chain faults the suite shows but does not judge, and why
NOT_JUDGED = {
    "wrong-intermediate-order": "RFC 5246 7.4.2 binds the sender to the order; no EV reaction to a misordered "
                                "chain is required, and TLS 1.3 (RFC 8446 4.4.2) lets receivers reorder",
    "revoked-by-ocsp-leaf": "an EV learns of a revoked SECC certificate through a stapled OCSP response, and the "
                            "harness's SECC cannot staple one (Python's ssl has no OCSP stapling)",
    "revoked-by-crl-leaf": "during the -2 handshake an EV has no network to fetch a CRL from, and the harness's "
                           "SECC cannot staple OCSP responses instead",
    "wrong-signature-hash-leaf": "ISO 15118-2 Annex F tells issuers to sign with ecdsa-with-SHA256; the harness "
                                 "cites no requirement that an EV refuse another hash, so it does not fail one",
    "secc-without-dc-cpo": "ISO 15118-2 Annex F tells issuers to put DC=CPO in the SECC certificate; the harness "
                           "cites no requirement that an EV check it, so it does not fail one",
}


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



@pytest.mark.case("V2G-EVCC-007")
@pytest.mark.requires("ev", "iso15118")
@pytest.mark.parametrize("fault", SECC_FAULTS)
@pytest.mark.parametrize("generation", ["iso2", "iso20"])
def test_ev_refuses_a_faulty_secc_chain(rig, evse, ev, step, reaction, generation, fault):
    why_not = NOT_JUDGED.get(fault.id)
    if why_not:
        pytest.skip(why_not)
    protocol, energy = ("iso20-dc", "DC") if generation == "iso20" else ("iso2", "AC")
    with step(f"the SECC presents its {protocol} chain with {fault.id}: {fault.description}"):
        evse.inject_v2g(faults.fail_tls(fault.id, generation))
    result = ev.charge(protocol=protocol, energy=energy, identification="PnC", tls=True, cycles=1)
    with step(f"the EV does not talk to an SECC with that chain (observed: {result.outcome.reason})"):
        sent = result.names("sent")
        reaction("ISO 15118", "the EV's first V2G message", expected="none: TLS refused, or closed before a request",
                 observed=f"{len(sent)} requests, from {sent[0]}" if sent else f"none ({result.outcome.reason})",
                 judged=True, agrees=not sent and not result.ok)
        assert not result.ok and not sent, (
            f"the EV accepted an SECC chain with {fault.id} ({fault.description}) and sent {len(sent)} requests, "
            f"{', '.join(sent[:3])}{', ...' if len(sent) > 3 else ''}; "
            f"ISO 15118-2 7.7.3: the EVCC authenticates the SECC by its chain to a V2G root it trusts "
            f"(RFC 5280 6: validity, signatures, CA constraints, key usage; -2: secp256r1 keys; -20: "
            f"secp521r1 or Ed448)")

