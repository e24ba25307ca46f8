"""Authorization and transactions, seen from the CSMS while an EV charges at the EVSE."""

from __future__ import annotations

import pytest

from harness.ocpp import commands
from harness.plugin.paths import charging_paths

ENERGY = "Energy.Active.Import.Register"
POWER = "Power.Active.Import"


def _started(token: str):
    return lambda tx: tx.id_token == token and tx.started_at is not None


def _periodic_energy(tx):
    return [s for s in tx.values(ENERGY) if s.context == "Sample.Periodic"]


@pytest.mark.case("OCPP-TX-001")
@pytest.mark.requires("local_id_token", "ev")
@pytest.mark.parametrize("path", charging_paths())
def test_local_authorization_full_transaction(rig, csms, evse, ev, step, kpi, path):
    token = "TX001-TOKEN"
    interval = csms.meter_value_interval()
    mark = rig.trace.now()
    with step("present a valid token: Authorize is accepted"):
        assert evse.present_id_token(token) == "Accepted"
        csms.wait_for_message("Authorize", since=mark, timeout=rig.scaled(30) + 5)
    with step("plug in the EV: the transaction starts with the token"):
        ev.plug_in(path=path)
        tx = csms.wait_transaction(since=mark, timeout=rig.scaled(60) + 5, where=_started(token),
                                   what=f"a transaction for {token}")
        csms.wait_charging(since=mark, timeout=rig.scaled(60) + 5)
    with step("meter values come periodically with a rising energy register"):
        tx = csms.wait_transaction(since=mark, timeout=interval * 4 + 5, what="three periodic meter values",
                                   where=lambda t: t.transaction_id == tx.transaction_id and len(_periodic_energy(t)) >= 3)
        energy = [s.value for s in _periodic_energy(tx)]
        assert energy == sorted(energy), f"energy register went backwards: {energy}"
        assert any(s.value > 0 for s in tx.values(POWER)), "no positive Power.Active.Import while charging"
    with step("unplug: the transaction ends because the EV left"):
        ev.unplug()
        tx = csms.wait_transaction(since=mark, timeout=rig.scaled(60) + 5, what="the transaction's end",
                                   where=lambda t: t.transaction_id == tx.transaction_id and t.ended)
        assert tx.stopped_reason == "EVDisconnected", f"stoppedReason {tx.stopped_reason!r}"
    assert not tx.seq_problems(), "; ".join(tx.seq_problems())
    delivered = tx.energy_wh()
    assert delivered is not None and delivered > 0, f"no energy registered ({delivered})"
    kpi("energy_wh", delivered, "Wh")
    kpi("periodic_meter_values", len(_periodic_energy(tx)), "", "periodic energy readings in the transaction")


@pytest.mark.case("OCPP-TX-002")
@pytest.mark.requires("local_id_token", "ev")
@pytest.mark.parametrize("path", charging_paths())
def test_blocked_token_starts_nothing(rig, csms, evse, ev, step, path):
    token = "TX002-BLOCKED"
    csms.script.when("Authorize").reject()
    mark = rig.trace.now()
    with step("present a token the CSMS refuses"):
        assert evse.present_id_token(token) != "Accepted"
    with step("plug in the EV: no transaction for the token, no charging"):
        ev.plug_in(path=path)
        with pytest.raises(AssertionError):
            csms.wait_transaction(since=mark, timeout=rig.scaled(60) + 2, where=_started(token))
        with pytest.raises(AssertionError):
            csms.wait_charging(since=mark, timeout=1.0)


def _remote_start(rig, csms, evse, token: str, mark: float):
    response = csms.call(*commands.remote_start(evse.version, token, remote_start_id=42))
    assert response["status"] == "Accepted", f"remote start answered {response}"
    return csms.wait_transaction(since=mark, timeout=rig.scaled(60) + 5, where=_started(token),
                                 what=f"a transaction for {token}")


@pytest.mark.case("OCPP-TX-003")
@pytest.mark.requires("remote_start", "ev")
@pytest.mark.parametrize("path", charging_paths())
def test_remote_start_cable_first(rig, csms, evse, ev, step, kpi, path):
    mark = rig.trace.now()
    with step("plug in the EV"):
        ev.plug_in(path=path)
    with step("remote start: the transaction starts and energy flows"):
        request = rig.trace.now()
        tx = _remote_start(rig, csms, evse, "TX003-REMOTE", mark)
        charging = csms.wait_charging(since=mark, timeout=rig.scaled(60) + 5)
        kpi("remote_start_to_charging_s", charging.mono - request, "s")
        if evse.version.value != "1.6":
            assert tx.remote_start_id == 42, f"remoteStartId {tx.remote_start_id}, expected 42"


@pytest.mark.case("OCPP-TX-004")
@pytest.mark.requires("remote_start", "ev")
@pytest.mark.parametrize("path", charging_paths())
def test_remote_start_first(rig, csms, evse, ev, step, path):
    mark = rig.trace.now()
    token = "TX004-REMOTE"
    with step("remote start with no EV plugged in"):
        assert csms.call(*commands.remote_start(evse.version, token))["status"] == "Accepted"
    with step("plug in the EV: the transaction starts for the token and energy flows"):
        ev.plug_in(path=path)
        csms.wait_transaction(since=mark, timeout=rig.scaled(60) + 5, where=_started(token))
        csms.wait_charging(since=mark, timeout=rig.scaled(60) + 5)


@pytest.mark.case("OCPP-TX-005")
@pytest.mark.requires("remote_start", "ev")
@pytest.mark.parametrize("path", charging_paths())
def test_remote_stop(rig, csms, evse, ev, step, kpi, path):
    mark = rig.trace.now()
    ev.plug_in(path=path)
    tx = _remote_start(rig, csms, evse, "TX005-REMOTE", mark)
    csms.wait_charging(since=mark, timeout=rig.scaled(60) + 5)
    with step("remote stop: the transaction ends with stoppedReason Remote"):
        request = rig.trace.now()
        assert csms.call(*commands.remote_stop(evse.version, tx.transaction_id))["status"] == "Accepted"
        ended = csms.wait_transaction(since=mark, timeout=rig.scaled(60) + 5, what="the transaction's end",
                                      where=lambda t: t.transaction_id == tx.transaction_id and t.ended)
        assert ended.stopped_reason == "Remote", f"stoppedReason {ended.stopped_reason!r}"
        kpi("remote_stop_to_ended_s", ended.messages[-1].mono - request, "s")


@pytest.mark.case("OCPP-TX-006")
@pytest.mark.requires("remote_start", "charging_profiles", "ev")
@pytest.mark.parametrize("path", charging_paths())
def test_charging_limit_lowers_power(rig, csms, evse, ev, step, kpi, path):
    limit = 8.0  # A per phase
    config = rig.config.evse
    allowed_w = limit * config.voltage * config.phases
    interval = csms.meter_value_interval()
    mark = rig.trace.now()
    ev.plug_in(path=path)
    tx = _remote_start(rig, csms, evse, "TX006-REMOTE", mark)
    csms.wait_charging(since=mark, timeout=rig.scaled(60) + 5)
    with step(f"a charging profile limits the EVSE to {limit:g} A"):
        response = csms.call(*commands.charging_limit(evse.version, limit))
        assert response["status"] == "Accepted", f"SetChargingProfile answered {response}"
        applied = rig.trace.now()
    with step("the power in the next meter values respects the limit"):
        def limited(t):
            after = [s for s in t.values(POWER) if s.context == "Sample.Periodic"]
            return t.transaction_id == tx.transaction_id and len(after) >= 2 and _after(t, applied)

        tx = csms.wait_transaction(since=mark, timeout=interval * 4 + 5, what="meter values after the limit",
                                   where=limited)
        latest = [s.value for s in tx.values(POWER)][-1]
        kpi("power_after_limit_w", latest, "W")
        assert latest <= allowed_w * 1.02, f"{latest:.0f} W flows, the limit allows {allowed_w:.0f} W"


def _after(tx, mark: float) -> bool:
    """At least two meter-value messages of the transaction arrived after ``mark``."""
    return sum(1 for m in tx.messages if m.mono > mark) >= 2
