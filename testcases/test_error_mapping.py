"""What went wrong on the ISO 15118 side, as the charger reports it through OCPP.

One case per row of :data:`harness.ocpp.iso15118_failures.TABLE`: the EV makes its communication
fail the row's way while a transaction runs (TRIGGERS: SLAC, the TLS handshake, or the ISO 15118
session), and the charger's next report of the transaction must be the one the row names (2.x TransactionEvent triggerReason
and chargingState; 1.6 StatusNotification status and errorCode). The harness's own tests check
that TRIGGERS and the table name the same rows.
"""

from __future__ import annotations

from typing import Callable

import pytest

from harness.ocpp import commands
from harness.ocpp.frames import value_at
from harness.ocpp.iso15118_failures import BY_ID, TABLE
from harness.ocpp.versions import OcppVersion
from harness.slac.ev import EvFaults, Failed
from harness.v2g import faults
from harness.verdicts import HarnessFailure, NotApplicable


def _in_the_charge_loop(make_faults: Callable[..., list[faults.Fault]]) -> Callable[..., float | None]:
    """A row the EV makes happen at the third ChargingStatusReq of an ISO 15118-2 AC session;
    judged from the moment the charger reported charging."""
    def trigger(rig, ev) -> float | None:
        # the vehicle stays ready (state C): its communication failed, not its wish to charge
        ev.charge(protocol="iso2", energy="AC", identification="EIM", cycles=6, faults=make_faults(rig),
                  keep_pilot=True)
        return None
    return trigger


def _tls_refused(rig, ev) -> float | None:
    """The EV trusts only a V2G root the charger's SECC certificate does not chain to; judged from
    the moment the EV saw the handshake fail (the charger cannot have known before)."""
    mark = rig.trace.now()
    result = ev.charge(protocol="iso2", energy="AC", identification="EIM", cycles=6, faults=[faults.fail_tls()],
                       tls=True, keep_pilot=True)
    if result.sdp is not None and not result.sdp.tls:
        raise NotApplicable("the charger offers no TLS in SDP, so there is no handshake to fail")
    seen = rig.trace.select(observer="ev", since=mark, name="TlsHandshakeFailed")
    if not seen:
        raise HarnessFailure(f"the EV was to refuse the TLS handshake and did not: {result.outcome.reason}")
    return seen[0].mono


def _slac_failed(rig, ev) -> float | None:
    """The EV's CM_SLAC_MATCH.REQ comes after TT_EVSE_match_session (as in SLAC-004), so no match
    is made; judged from the moment the EV gave up."""
    if not rig.link.slac:
        raise NotApplicable(f"needs a link that carries SLAC (netns or lab rig); this rig's link is {rig.link.kind}")
    ev.hlc.plug_in()
    result = rig.link.match(faults=EvFaults(match_delay=rig.link.timers.TT_EVSE_match_session * 1.5))
    if not isinstance(result, Failed):
        raise HarnessFailure("the EV was to fail SLAC and matched")
    assert rig.link.last_match_at is not None
    return rig.link.last_match_at


#: how the EV makes each row happen, and from which moment the charger's report is judged (None:
#: from the moment it reported charging)
TRIGGERS: dict[str, Callable[..., float | None]] = {
    "slac-failed": _slac_failed,
    "tls-handshake-failed": _tls_refused,
    # silent for longer than V2G_SECC_Sequence_Timeout (ISO 15118-2 Table 109: 60 s, scaled)
    "ev-silent": _in_the_charge_loop(lambda rig: [faults.delay("ChargingStatusReq", rig.scaled(60) + 1.0,
                                                               occurrence=3)]),
    "ev-connection-closed": _in_the_charge_loop(lambda rig: [faults.close("ChargingStatusReq", occurrence=3)]),
    # a request with another SessionID: FAILED_UnknownSession, and the SECC ends the session
    "secc-failed-response": _in_the_charge_loop(lambda rig: [faults.replace(
        "ChargingStatusReq", "Header.SessionID", "0102030405060708", occurrence=3)]),
}


@pytest.mark.case("ERR-MAP-001")
@pytest.mark.requires("remote_start", "ev", "iso15118")
@pytest.mark.parametrize("row", [row.id for row in TABLE])
def test_an_iso15118_failure_is_reported_through_ocpp(rig, csms, evse, ev, step, reaction, row: str):
    failure = BY_ID[row]
    v16 = evse.version is OcppVersion.V16
    expected = failure.report(evse.version.value)
    token = f"ERRMAP-{failure.id}".upper()[:20]
    when = "before any ISO 15118 session" if failure.before_session else "while the EV charges (ISO 15118-2 AC)"
    with step(f"{when}, {failure.iso15118}"):
        assert csms.call(*commands.remote_start(evse.version, token))["status"] == "Accepted"
        mark = rig.trace.now()
        after = TRIGGERS[failure.id](rig, ev)
        tx = csms.wait_transaction(since=mark, timeout=rig.scaled(60) + 5, what="the transaction",
                                   where=lambda t: t.id_token == token)
        if after is None:
            after = csms.wait_charging(timeout=rig.scaled(60) + 5, since=mark).mono
    with step(f"the charger reports it: {expected.describe()}"):
        def matches(payload: dict) -> bool:
            """The first report of the connector or transaction after it: a change of state, not a
            periodic meter value (the charger may take the timers' time to decide)."""
            if v16:
                return payload.get("connectorId") == 1 and (failure.before_session or payload.get("status") != "Charging")
            info = payload.get("transactionInfo", {})
            return (info.get("transactionId") == tx.transaction_id and payload.get("triggerReason") != "MeterValuePeriodic"
                    and (failure.before_session or info.get("chargingState") != "Charging"))

        try:
            report = csms.wait_for_message(expected.message, since=after, timeout=rig.scaled(60) + 10,
                                           where=matches,
                                           what="the charger's next report of the transaction")
            payload = report.payload["payload"]
            observed = {path: value_at(payload, path) for path in expected.fields}
        except AssertionError:
            observed = {}
        wrong = {path: value for path, value in expected.fields.items() if observed.get(path) != value}
        reaction("OCPP", expected.message, expected=expected.describe(),
                 observed=(f"{expected.message} " + ", ".join(f"{k} {observed.get(k)}" for k in expected.fields))
                 if observed else f"no {expected.message}", judged=True, agrees=not wrong)
        assert observed, f"the charger sent no {expected.message} about the transaction after: {failure.iso15118}"
        assert not wrong, (f"after {failure.iso15118}, the charger's first {expected.message} says "
                           f"{', '.join(f'{k} {observed.get(k)}' for k in wrong)}; expected {expected.describe()} "
                           f"({'; '.join(failure.references)})")
