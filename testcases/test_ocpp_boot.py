"""Boot and registration of the EVSE under test, observed at the CSMS."""

from __future__ import annotations

import statistics

import pytest

from harness.ocpp import commands
from harness.ocpp.timing import timestamp

# The CSMS answers Pending/Rejected with this interval (protocol seconds); the station must wait
# at least this long before it repeats BootNotification.
RETRY_INTERVAL = 20


def _station_calls_between(csms, first, last):
    return [e for e in csms.messages(kind="CALL") if first.seq < e.seq < last.seq and e.src == "evse"]


@pytest.mark.case("OCPP-BOOT-001")
def test_cold_boot_accepted(rig, csms, evse, step, kpi):
    with step("the first BootNotification of the run was schema-valid and accepted"):
        connected = csms.messages("Connected")[0]
        boot = csms.messages("BootNotification", kind="CALL")[0]
        assert "violation" not in boot.payload, f"BootNotification violates the schema: {boot.payload['detail']}"
        answer = next(e for e in csms.messages("BootNotification", kind="CALLRESULT")
                      if e.payload["message_id"] == boot.payload["message_id"])
        assert answer.payload["payload"]["status"] == "Accepted"
        kpi("connect_to_boot_s", boot.mono - connected.mono, "s", "WebSocket open to first BootNotification")
    with step("after acceptance every connector's status is reported"):
        expected = set(range(1, rig.config.evse.evse_count + 1))

        def reported() -> set[int]:
            return {int(e.keys["evse_id"]) for e in csms.messages("StatusNotification", kind="CALL")
                    if e.seq > answer.seq and "evse_id" in e.keys}

        deadline = rig.trace.now() + rig.scaled(60) + 5
        while not expected <= reported() and rig.trace.now() < deadline:
            csms.wait_for_message("StatusNotification", timeout=deadline - rig.trace.now(), since=rig.trace.now())
        assert expected <= reported(), f"status reported for EVSEs {sorted(reported())}, expected {sorted(expected)}"


def _boot_with(rig, csms, evse, step, kpi, status: str) -> None:
    csms.script.when("BootNotification", times=1).reply(
        lambda call: {"status": status, "interval": RETRY_INTERVAL, "currentTime": timestamp()})
    mark = rig.trace.now()
    with step("reset the station so that it boots again"):
        assert csms.call(*commands.reset(evse.version))["status"] == "Accepted"
    with step(f"the CSMS answers the BootNotification with {status}"):
        first = csms.wait_for_message("BootNotification", since=mark, timeout=rig.scaled(120) + 10)
    with step("the station repeats BootNotification, not before the interval"):
        second = csms.wait_for_message("BootNotification", since=first.mono + 1e-6,
                                       timeout=rig.scaled(RETRY_INTERVAL) * 3 + 10)
        waited = second.mono - first.mono
        kpi("boot_retry_s", waited, "s", f"BootNotification repeated after {status}")
        # a little slack for the clocks of two hosts, never more than 5 % of the interval
        assert waited >= rig.scaled(RETRY_INTERVAL) * 0.95, (
            f"BootNotification repeated after {waited:.2f} s, the CSMS asked for {rig.scaled(RETRY_INTERVAL):.2f} s")
    with step(f"while {status}, the station sent nothing but BootNotification"):
        others = [e.name for e in _station_calls_between(csms, first, second) if e.name != "BootNotification"]
        assert not others, f"station sent {others} while its registration was {status}"
    with step("the CSMS accepts the repeated BootNotification: the station is registered and answers calls"):
        evse.wait_registered(rig.scaled(120) + 10)
        # 1.6 §4.2 / 2.0.1 B02-B03: once accepted the station operates normally, calls included
        problem = evse.unresponsive()
        assert problem is None, f"the station was accepted after {status} but does not answer calls: {problem}"


@pytest.mark.case("OCPP-BOOT-002")
@pytest.mark.requires("reset")
def test_boot_pending(rig, csms, evse, step, kpi):
    _boot_with(rig, csms, evse, step, kpi, "Pending")


@pytest.mark.case("OCPP-BOOT-003")
@pytest.mark.requires("reset")
def test_boot_rejected(rig, csms, evse, step, kpi):
    _boot_with(rig, csms, evse, step, kpi, "Rejected")


@pytest.mark.case("OCPP-BOOT-004")
def test_identity_matches_rig_file(rig, evse):
    expected = {k: v for k, v in vars(rig.config.evse.identity).items() if v is not None}
    if not expected:
        pytest.skip("the rig file names no expected identity (evse.identity)")
    reported = evse.identity()
    assert reported is not None, "the DUT sent no BootNotification"
    mismatches = {k: (v, reported.get(k)) for k, v in expected.items() if reported.get(k) != v}
    assert not mismatches, "DUT identity differs from the rig file: " + ", ".join(
        f"{k} expected {want!r}, reported {got!r}" for k, (want, got) in mismatches.items())


@pytest.mark.case("OCPP-BOOT-005")
def test_heartbeat_interval(rig, csms, evse, step, kpi):
    interval = 10  # protocol seconds: short enough to watch a few heartbeats on a lab rig
    heartbeat = ("OCPPCommCtrlr", "HeartbeatInterval", "HeartbeatInterval")
    original = csms.read_variable(*heartbeat)
    with step(f"set the heartbeat interval to {interval} s"):
        assert csms.write_variable(*heartbeat, str(interval)), "the station refused a new HeartbeatInterval"
    try:
        mark = rig.trace.now()
        with step("watch three heartbeats"):
            beats = [csms.wait_for_message("Heartbeat", since=mark, timeout=rig.scaled(interval) * 3 + 5)]
            for _ in range(2):
                beats.append(csms.wait_for_message("Heartbeat", since=beats[-1].mono + 1e-6,
                                                   timeout=rig.scaled(interval) * 3 + 5))
        gaps = [b.mono - a.mono for a, b in zip(beats, beats[1:])]
        kpi("heartbeat_interval_s", statistics.mean(gaps), "s")
        for gap in gaps:
            # G02: a heartbeat at the latest after the interval; scheduling may make it a bit late
            assert gap <= rig.scaled(interval) * 1.5 + 0.2, f"heartbeat came after {gap:.2f} s"
    finally:
        if original is not None:
            csms.write_variable(*heartbeat, original)


@pytest.mark.case("OCPP-BOOT-006")
@pytest.mark.requires("power_cycle")
def test_boot_after_a_power_cut(rig, csms, evse, step, kpi):
    mark = rig.trace.now()
    with step("cut the charger's mains supply for 10 s, then switch it on again"):
        evse.power_cycle(10)
        powered = rig.trace.now()
    limit = rig.scaled(rig.config.evse.boot_timeout) + 10
    with step("the charger connects again and sends BootNotification"):
        boot = csms.wait_for_message("BootNotification", since=mark, timeout=limit,
                                     what="a BootNotification after the power came back")
        kpi("power_on_to_boot_s", max(0.0, boot.mono - powered), "s", "supply on to the BootNotification")
        assert "violation" not in boot.payload, f"BootNotification violates the schema: {boot.payload['detail']}"
    if evse.version.value != "1.6":  # 1.6's BootNotification.req carries no reason
        with step("its reason says it was powered up (OCPP 2.x BootReasonEnumType PowerUp)"):
            reason = (boot.payload.get("payload") or {}).get("reason")
            assert reason == "PowerUp", (
                f"the charger booted after a power cut with reason {reason!r}; OCPP 2.0.1 Part 2 B01 (cold boot): "
                f"BootNotificationRequest.reason PowerUp, 'the Charging Station is powered up'")
    with step("it is registered again and answers calls"):
        evse.wait_registered(limit)
        problem = evse.unresponsive()
        assert problem is None, f"the charger registered after the power cut but does not answer calls: {problem}"
