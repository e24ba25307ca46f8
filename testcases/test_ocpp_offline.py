"""Offline behaviour: transaction messages made while the CSMS is unreachable are queued and
delivered, in order and complete, once the station is back (E11, E12). The CSMS goes offline the
way OCTT does it: it closes the connection and accepts no reconnect for a while."""

from __future__ import annotations

import time

import pytest

from harness.ocpp import commands
from harness.plugin.paths import charging_paths


def _charging_transaction(rig, csms, evse, ev, token: str, path: str):
    mark = rig.trace.now()
    ev.plug_in(path=path)
    assert csms.call(*commands.remote_start(evse.version, token))["status"] == "Accepted"
    tx = csms.wait_transaction(since=mark, timeout=rig.scaled(60) + 5,
                               where=lambda t: t.id_token == token and t.started_at is not None)
    csms.wait_charging(since=mark, timeout=rig.scaled(60) + 5)
    return mark, tx


def _offline(rig, csms, seconds: float) -> tuple[float, float]:
    went = rig.trace.now()
    csms.go_offline()
    time.sleep(seconds)
    came = rig.trace.now()
    csms.come_online()
    csms.wait_connected(rig.scaled(120) + 10)
    return went, came


def _check_delivery(evse, tx) -> None:
    if evse.version.value == "1.6":
        return  # 1.6 carries neither seqNo nor an offline flag
    assert not tx.seq_problems(), "; ".join(tx.seq_problems())
    assert any(tx.offline_flags), "no TransactionEvent was marked offline"


@pytest.mark.case("OCPP-OFF-001")
@pytest.mark.requires("remote_start", "ev", "offline")
@pytest.mark.parametrize("path", charging_paths())
def test_connection_lost_during_transaction(rig, csms, evse, ev, step, kpi, path):
    mark, tx = _charging_transaction(rig, csms, evse, ev, "OFF001-TOKEN", path)
    offline_for = csms.meter_value_interval() * 3 + 0.2
    with step(f"the CSMS is unreachable for {offline_for:.1f} s while the EV charges"):
        _, came = _offline(rig, csms, offline_for)
    with step("the queued meter values arrive after reconnecting, in order, marked offline"):
        def caught_up(t):
            late = [m for m in t.messages if m.mono > came]
            return t.transaction_id == tx.transaction_id and len(late) >= 2

        tx = csms.wait_transaction(since=mark, timeout=rig.scaled(120) + 10, where=caught_up,
                                   what="the queued transaction messages")
        queued = [m for m in tx.messages if m.mono > came]
        kpi("queued_messages_delivered", len(queued), "")
        _check_delivery(evse, tx)
        energy = [s.value for s in tx.values("Energy.Active.Import.Register")]
        assert energy == sorted(energy), f"energy register went backwards: {energy}"


@pytest.mark.case("OCPP-OFF-002")
@pytest.mark.requires("remote_start", "ev", "offline")
@pytest.mark.parametrize("path", charging_paths())
def test_transaction_ended_while_offline(rig, csms, evse, ev, step, path):
    mark, tx = _charging_transaction(rig, csms, evse, ev, "OFF002-TOKEN", path)
    went = rig.trace.now()
    with step("the CSMS goes offline and the EV leaves"):
        csms.go_offline()
        ev.unplug()
        time.sleep(rig.scaled(10) + 0.2)
        csms.come_online()
        csms.wait_connected(rig.scaled(120) + 10)
    with step("the end of the transaction is delivered after reconnecting"):
        tx = csms.wait_transaction(since=mark, timeout=rig.scaled(120) + 10, what="the queued end of the transaction",
                                   where=lambda t: t.transaction_id == tx.transaction_id and t.ended)
        assert tx.stopped_reason == "EVDisconnected", f"stoppedReason {tx.stopped_reason!r}"
        ended_at = tx.messages[-1]
        assert ended_at.mono > went, "the end was reported before the CSMS went offline"
        _check_delivery(evse, tx)
