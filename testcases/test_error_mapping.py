"""What went wrong on the ISO 15118 side, as the charger reports it through OCPP.

One case per row of :data:`harness.ocpp.iso15118_failures.TABLE`: the EV makes the ISO 15118
session fail the row's way while a transaction runs (TRIGGERS, the EV's faults), and the charger's
next report of the transaction must be the one the row names (2.x TransactionEvent triggerReason
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
from harness.v2g import faults
from harness.verdicts import HarnessFailure, NotApplicable

#: how the EV makes each row happen in an ISO 15118-2 AC session: at the third ChargingStatusReq,
#: or, for a row before the session, when it connects
TRIGGERS: dict[str, Callable[..., list[faults.Fault]]] = {
    # the EV trusts only a V2G root the charger's SECC certificate does not chain to
    "tls-handshake-failed": lambda rig: [faults.fail_tls()],
    # silent for longer than V2G_SECC_Sequence_Timeout (ISO 15118-2 Table 109: 60 s, scaled)
    "ev-silent": lambda rig: [faults.delay("ChargingStatusReq", rig.scaled(60) + 1.0, occurrence=3)],
    "ev-connection-closed": lambda rig: [faults.close("ChargingStatusReq", occurrence=3)],
    # a request with another SessionID: FAILED_UnknownSession, and the SECC ends the session
    "secc-failed-response": lambda rig: [faults.replace("ChargingStatusReq", "Header.SessionID", "0102030405060708",
                                                        occurrence=3)],
}
#: what the EV records when a row before the session happened (its side of the failure)
EV_SEES = {"tls-handshake-failed": "TlsHandshakeFailed"}


@pytest.mark.case("ERR-MAP-001")
@pytest.mark.requires("remote_start", "ev", "iso15118")
@pytest.mark.parametrize("row", [row.id for row in TABLE])
def test_an_iso15118_failure_is_reported_through_ocpp(rig, csms, evse, ev, step, reaction, row: str):
    failure = BY_ID[row]
    v16 = evse.version is OcppVersion.V16
    expected = failure.report(evse.version.value)
    token = f"ERRMAP-{failure.id}".upper()[:20]
    when = "when the EV connects" if failure.before_session else "while the EV charges"
    with step(f"{when} (ISO 15118-2 AC), {failure.iso15118}"):
        assert csms.call(*commands.remote_start(evse.version, token))["status"] == "Accepted"
        mark = rig.trace.now()
        # the vehicle stays ready (state C): its communication failed, not its wish to charge
        result = ev.charge(protocol="iso2", energy="AC", identification="EIM", cycles=6,
                           faults=TRIGGERS[failure.id](rig), keep_pilot=True,
                           **({"tls": True} if failure.before_session else {}))
        tx = csms.wait_transaction(since=mark, timeout=rig.scaled(60) + 5, what="the transaction",
                                   where=lambda t: t.id_token == token)
        if failure.before_session:
            if result.sdp is not None and not result.sdp.tls:
                raise NotApplicable(f"the charger offers no TLS in SDP, so there is no handshake to fail ({row})")
            # judged from the moment the EV saw it fail: the charger cannot have known before
            seen = rig.trace.select(observer="ev", since=mark, name=EV_SEES[failure.id])
            if not seen:
                raise HarnessFailure(f"the EV was to make the session fail ({EV_SEES[failure.id]}) and did not: "
                                     f"{result.outcome.reason}")
            after = seen[0].mono
        else:
            after = csms.wait_charging(timeout=rig.scaled(60) + 5, since=mark).mono
    with step(f"the charger reports it: {expected.describe()}"):
        def matches(payload: dict) -> bool:  # the first report of the connector or transaction after it
            if v16:
                return payload.get("connectorId") == 1 and (failure.before_session or payload.get("status") != "Charging")
            info = payload.get("transactionInfo", {})
            return info.get("transactionId") == tx.transaction_id and (failure.before_session
                                                                       or info.get("chargingState") != "Charging")

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
