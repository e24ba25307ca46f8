"""Log correlation: a charger's sessions told as one story across protocols.

A lab reads a failure by following one session from the SLAC match through SDP and ISO 15118 to
the OCPP transaction the CSMS billed. That only works if the charger keeps the identifiers apart:
a new transactionId for each transaction, the eMAID a Plug & Charge EV presented as the
transaction's idToken, meter values dated within their transaction. The join uses what the EV and
the CSMS saw, nothing the charger reports about itself (harness.correlation.sessions).
"""

from __future__ import annotations

import pytest

from harness.correlation.sessions import join
from harness.ocpp import commands

PATHS = [
    pytest.param("din", "DC", "EIM", id="din-dc-eim", marks=pytest.mark.requires("remote_start")),
    pytest.param("iso2", "AC", "EIM", id="iso2-ac-eim", marks=pytest.mark.requires("remote_start")),
    pytest.param("iso2", "DC", "PnC", id="iso2-dc-pnc", marks=pytest.mark.requires("plug_and_charge")),
    pytest.param("iso20-dc", "DC", "PnC", id="iso20-dc-pnc", marks=pytest.mark.requires("plug_and_charge")),
]


def _one_session(rig, csms, evse, ev, protocol, energy, identification, token, mark):
    if identification == "EIM":
        response = csms.call(*commands.remote_start(evse.version, token))
        assert response.get("status") == "Accepted", f"remote start refused: {response}"
    result = ev.charge(protocol=protocol, energy=energy, identification=identification,
                       tls=identification == "PnC" or protocol.startswith("iso20"), cycles=2)
    assert result.ok, result.outcome.reason
    ev.unplug()
    csms.wait_transaction(since=mark, timeout=rig.scaled(60) + 5, what="the end of the session's transaction",
                          where=lambda t: t.ended)
    return result


@pytest.mark.case("CORR-001")
@pytest.mark.requires("ev", "iso15118")
@pytest.mark.parametrize("protocol, energy, identification", PATHS)
def test_two_sessions_in_a_row_each_join_their_own_transaction(rig, csms, evse, ev, step, protocol, energy,
                                                               identification):
    mark = rig.trace.now()
    results = []
    for number in (1, 2):
        with step(f"charging session {number}: {protocol} {energy} {identification}, then unplugged"):
            results.append(_one_session(rig, csms, evse, ev, protocol, energy, identification,
                                        f"CORR-{protocol[:6]}-{number}".upper(), rig.trace.now()))
    joined = join(rig.trace.select(since=mark))
    found = []
    for number, result in enumerate(results, 1):
        with step(f"session {number} ({result.session_id}) joins one transaction, without a problem"):
            [session] = [s for s in joined if s.v2g is not None and s.v2g.session_id == result.session_id] or [None]
            assert session is not None, f"ISO 15118 session {result.session_id} is not on the EV's timeline"
            assert not session.problems, "; ".join(session.problems)
            assert session.transaction is not None, (
                f"no OCPP transaction ran at the CSMS while ISO 15118 session {result.session_id} ran")
            if identification == "PnC":
                assert session.joins["ocpp"] == "idToken = eMAID", (
                    f"transaction {session.transaction.transaction_id} has idToken {session.transaction.id_token}; "
                    f"the EV presented eMAID {session.v2g.emaid} (OCPP 2.0.1 C07: the transaction is authorized by "
                    "the contract's eMAID)")
            if rig.link.kind != "loopback":  # a link that carries SLAC
                assert session.slac is not None, f"no SLAC match before ISO 15118 session {result.session_id}"
            found.append(session)
    with step("the two sessions have their own SessionID and their own transactionId"):
        first, second = found
        assert first.v2g.session_id != second.v2g.session_id, (
            f"both sessions ran under SessionID {first.v2g.session_id}: the charger must give a session that "
            "starts with SessionID 0 a new one (ISO 15118-2 8.4.3.2 SessionSetup)")
        assert first.transaction.transaction_id != second.transaction.transaction_id, (
            f"both sessions were billed under transactionId {first.transaction.transaction_id}")
        if first.slac is not None and second.slac is not None:
            assert first.slac.run_id != second.slac.run_id, (
                f"both sessions joined SLAC run {first.slac.run_id}: each plug-in matches afresh (ISO 15118-3 9.1)")
        notes = [n for s in found for n in s.notes if "sessions" in n]
        assert not notes, "; ".join(notes)
