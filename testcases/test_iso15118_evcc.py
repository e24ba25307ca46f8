"""How an EV reacts when the EVSE breaks the rules (the EVSE side plays the tester).

Here the EV is under test and the reference EVSE commits the faults, so these cases need the
harness's EVSE: an emulated rig (where the EV is the harness's own emulator), or a rig with an EV
under test (``ev: {kind: lab}``). Every verdict rests on what the harness's SECC saw of the EV
(:attr:`harness.rig.hlc.SessionResult.secc`: its TLS handshakes, the requests it sent, when it
closed), never on the EV's own account, so an EV the harness knows nothing of is judged the
same way as its own emulator.
"""

from __future__ import annotations

import pytest

from harness.ocpp import commands
from harness.pki.faults import CATALOGUE
from harness.pki.profiles import Role
from harness.rig.hlc import timing
from harness.rig.secc_view import Connection
from harness.v2g import faults
from harness.verdicts import Inconclusive

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


#: how much later than its timer the SECC may see an EV's close: the EV's own scheduling and the
#: TCP FIN on the way (the standards give the timer, not a tolerance; this one is the harness's)
CLOSE_MARGIN_S = 0.5


def _connection(result, *, tls: bool | None = None) -> Connection:
    """The EV's first connection to the SECC in this plug-in; inconclusive when the EV never made
    one, or not the kind the case needs (``tls``), so the fault never came into play."""
    first = result.secc.first
    if first is None:
        raise Inconclusive(f"the EV never connected to the SECC, so the fault did not come into play "
                           f"({result.secc.describe()}; the EV's outcome: {result.outcome.reason})")
    if tls is not None and (first.tls is not None or first.tls_refused) != tls:
        raise Inconclusive(f"the case needs a {'TLS' if tls else 'plain TCP'} connection, the EV made another "
                           f"({first.describe()})")
    return first


def _committed(result, kind: str, what: str) -> None:
    """Inconclusive unless the SECC committed its fault ``kind`` in this plug-in."""
    if not result.secc.faults(kind):
        raise Inconclusive(f"the EV's session never reached the point where the SECC {what} "
                           f"({result.secc.describe()})")


def _stopped_after(connection: Connection, request: str, what: str, rule: str) -> None:
    after = connection.after(request)
    if after is None:
        raise Inconclusive(f"the EV never sent {request} ({connection.describe()})")
    assert after == [], f"the EV sent {len(after)} more request(s) after {what}: {', '.join(after[:4])}; {rule}"


@pytest.mark.case("V2G-EVCC-001")
@pytest.mark.requires("ev", "iso15118", "remote_start")
def test_ev_stops_after_a_failed_response(rig, csms, evse, ev, step):
    csms.call(*commands.remote_start(evse.version, "EVCC-001"))  # authorization, to reach the failure
    evse.inject_v2g(faults.response_code("ChargeParameterDiscoveryRes", "FAILED"))
    result = ev.charge(protocol="iso2", energy="AC", tls=False, cycles=2)
    connection = _connection(result)
    _committed(result, "code", "answers ChargeParameterDiscoveryReq with FAILED")
    _stopped_after(connection, "ChargeParameterDiscoveryReq", "ChargeParameterDiscoveryRes FAILED",
                   "a response code starting with FAILED ends the session ([V2G20-735]; ISO 15118-2 8.8.4, the "
                   "EVCC state machine)")


@pytest.mark.case("V2G-EVCC-002")
@pytest.mark.requires("ev", "iso15118")
def test_ev_gives_up_when_a_response_never_comes(rig, evse, ev, step):
    evse.inject_v2g(faults.drop("ServiceDiscoveryRes"))
    result = ev.charge(protocol="iso2", energy="AC", tls=False, cycles=2)
    connection = _connection(result)
    _committed(result, "drop", "leaves ServiceDiscoveryReq unanswered")
    _stopped_after(connection, "ServiceDiscoveryReq", "its unanswered ServiceDiscoveryReq",
                   "the EV stops waiting at V2G_EVCC_Msg_Timeout and ends the session (ISO 15118-2 Table 109)")
    timers = timing(rig)
    limit = timers.timeout(timers.of(connection.outcome.get("protocol") or "iso2").msg("ServiceDiscoveryReq"))
    asked = next(e for e in connection.requests() if e.name == "ServiceDiscoveryReq")
    closed = connection.closed
    assert connection.closed_by_ev and closed is not None, (
        f"the EV did not close the connection after V2G_EVCC_Msg_Timeout ({limit:g} s on this rig): "
        f"{connection.describe()} (ISO 15118-2 Table 109)")
    waited = closed.mono - asked.mono
    with step(f"the EV closed the connection {waited:.2f} s after its ServiceDiscoveryReq (timer {limit:g} s)"):
        assert waited <= limit + CLOSE_MARGIN_S, (
            f"the EV closed the connection {waited:.2f} s after its unanswered ServiceDiscoveryReq; "
            f"V2G_EVCC_Msg_Timeout is {limit:g} s on this rig (ISO 15118-2 Table 109; the harness allows "
            f"{CLOSE_MARGIN_S:g} s more)")


@pytest.mark.case("V2G-EVCC-003")
@pytest.mark.requires("ev", "iso15118")
def test_ev_refuses_an_untrusted_secc_certificate(rig, evse, ev, step):
    evse.inject_v2g(faults.fail_tls())
    result = ev.charge(protocol="iso2", energy="AC", identification="PnC", tls=True, cycles=1)
    _connection(result, tls=True)
    _talked_to_a_bad_secc(result, "a certificate from a V2G root the EV does not trust",
                          "ISO 15118-2 7.7.3: the EVCC authenticates the SECC by its chain to a V2G root it trusts")


@pytest.mark.case("V2G-EVCC-004")
@pytest.mark.requires("ev", "iso15118")
def test_ev_closes_on_undecodable_exi(rig, evse, ev, step):
    evse.inject_v2g(faults.corrupt("PaymentServiceSelectionRes", bits=32))
    result = ev.charge(protocol="iso2", energy="AC", tls=False, cycles=1)
    connection = _connection(result)
    _committed(result, "corrupt", "sends an undecodable PaymentServiceSelectionRes")
    _stopped_after(connection, "PaymentServiceSelectionReq", "an undecodable PaymentServiceSelectionRes",
                   "a message that does not decode is no response (ISO 15118-2 7.9, EXI)")


@pytest.mark.case("V2G-EVCC-005")
@pytest.mark.requires("ev", "iso15118")
def test_ev_refuses_an_unexpected_response(rig, evse, ev, step):
    evse.inject_v2g(faults.repeat("PaymentServiceSelectionRes"))
    result = ev.charge(protocol="iso2", energy="AC", tls=False, cycles=1)
    connection = _connection(result)
    _committed(result, "repeat", "sends PaymentServiceSelectionRes a second time")
    after = connection.after("PaymentServiceSelectionReq")
    if after is None:
        raise Inconclusive(f"the EV never sent PaymentServiceSelectionReq ({connection.describe()})")
    # the EV may have sent its next request on the first response before the repeat reached it;
    # anything after that answers a response the EV should have refused
    assert len(after) <= 1, (
        f"the EV took a second PaymentServiceSelectionRes as the answer to {after[0]} and went on with "
        f"{', '.join(after[1:4])}; a response that does not answer the request outstanding ends the session "
        f"(ISO 15118-2 8.8.4, the EVCC state machine)")


@pytest.mark.case("V2G-EVCC-006")
@pytest.mark.requires("ev", "iso15118")
def test_ev_ignores_a_malformed_v2gtp_header(rig, evse, ev, step):
    evse.inject_v2g(faults.bad_header("SessionSetupRes", version=0x02, inverse=0xFD))
    result = ev.charge(protocol="iso2", energy="AC", tls=False, cycles=1)
    connection = _connection(result)
    _committed(result, "header", "sends SessionSetupRes with a malformed V2GTP header")
    _stopped_after(connection, "SessionSetupReq", "a SessionSetupRes with protocol version 0x02",
                   "a message whose V2GTP header does not check out is not processed ([V2G20-090]), so no "
                   "SessionSetupRes arrived")


def _talked_to_a_bad_secc(result, what: str, rule: str) -> None:
    """No V2G request on any connection the EV opened to an SECC presenting ``what``."""
    talked = [c for c in result.secc.connections if c.requests()]
    sent = [name for c in talked for name in c.request_names()]
    assert not sent, (f"the EV accepted an SECC presenting {what} and sent {len(sent)} request(s), "
                      f"{', '.join(sent[:3])}{', ...' if len(sent) > 3 else ''}; {rule}")


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
    connection = _connection(result, tls=True)
    with step(f"the EV does not talk to an SECC with that chain (the SECC saw: {result.secc.describe()})"):
        sent = [name for c in result.secc.connections for name in c.request_names()]
        reaction("ISO 15118", "the EV's first V2G message", expected="none: TLS refused, or closed before a request",
                 observed=f"{len(sent)} requests, from {sent[0]}" if sent else f"none ({connection.describe()})",
                 judged=True, agrees=not sent)
        _talked_to_a_bad_secc(result, f"a chain with {fault.id} ({fault.description})",
                              "ISO 15118-2 7.7.3: the EVCC authenticates the SECC by its chain to a V2G root it "
                              "trusts (RFC 5280 6: validity, signatures, CA constraints, key usage; -2: secp256r1 "
                              "keys; -20: secp521r1 or Ed448)")
