"""OCPP security profiles: the EVSE under test connects only the way its profile allows.

Each case changes what the CSMS demands or presents (as OCTT does, by restarting its server) and
watches what the station does; the rig restores the configured policy afterwards. On a lab rig a
case that needs another profile than the DUT's is skipped unless the rig can reconfigure it.
"""

from __future__ import annotations

import ssl

import pytest

from harness.ocpp import commands
from harness.ocpp.security import security_event_type
from harness.ocpp.versions import OcppVersion
from harness.pki.ocpp import SERVER_FAULTS

TLS_VERSIONS = ("TLSv1.2", "TLSv1.3")


def _on_profile(rig, csms, evse, profile: int, step) -> None:
    """Make sure CSMS and EVSE use ``profile``, reconfiguring the EVSE when the rig can."""
    if evse.security_profile == profile and csms.server.security.profile == profile:
        return
    if "reconfigure_security" not in evse.capabilities:
        pytest.skip(f"the DUT is configured for security profile {evse.security_profile}, not {profile}")
    with step(f"CSMS and EVSE switch to security profile {profile}"):
        csms.restart(csms.policy(profile))
        evse.reconfigure_security(profile)
        evse.wait_registered(rig.config.evse.boot_timeout)


def _reconnect_window(rig) -> float:
    """Long enough for a station to retry twice with its back-off (RetryBackOffWaitMinimum and
    RandomRange default to 10 s each in the harness's station; real chargers are similar)."""
    return rig.scaled(90) + 5


@pytest.mark.case("OCPP-SEC-001")
@pytest.mark.parametrize("profile", [1, 2, 3], ids=lambda p: f"profile-{p}")
def test_connection_on_profile(rig, csms, evse, step, kpi, profile):
    _on_profile(rig, csms, evse, profile, step)
    connected = csms.messages("Connected")[-1]
    with step("the connection matches the profile"):
        assert connected.payload["subprotocol"] == evse.version.subprotocol
        tls = connected.payload["tls"]
        if profile == 1:
            assert not tls, "profile 1 is plain WebSocket with Basic authentication"
        else:
            assert tls.get("version") in TLS_VERSIONS, f"TLS version {tls.get('version')} (OCPP needs 1.2 or newer)"
        if profile == 3:
            assert tls.get("client_certificate"), "profile 3 requires a client certificate"
    with step("the connection carries traffic"):
        mark = rig.trace.now()
        assert csms.call(*commands.trigger(evse.version, "Heartbeat"))["status"] == "Accepted"
        csms.wait_for_message("Heartbeat", since=mark, timeout=rig.scaled(30) + 5)


def _refused_then_recovers(rig, csms, step, kpi, policy, expect: str, *, tls: bool, reaction=None) -> None:
    mark = rig.trace.now()
    with step(f"the CSMS restarts {expect}"):
        csms.restart(policy)
    # every failed TLS attempt ends as TlsNotEstablished; TlsHandshakeFailed adds the TLS reason
    # when the station sent an alert
    name = "TlsNotEstablished" if tls else "ConnectionRefused"
    with step("the station's attempts are refused and it never gets in"):
        first = rig.trace.wait_for(_reconnect_window(rig), name=name, observer="csms", since=mark)
        second = rig.trace.wait_for(_reconnect_window(rig), name=name, observer="csms", since=first.mono + 1e-6)
        kpi("retry_after_refusal_s", second.mono - first.mono, "s")
        connected = csms.messages("Connected", since=mark)
        if reaction is not None:
            reaction("OCPP", "the connection", expected="refused in the TLS handshake, again on each retry",
                     observed=f"{len(csms.refusals(since=mark))} attempts refused"
                              + ("; then connected" if connected else ", none got in"),
                     judged=True, agrees=not connected)
        assert not connected, "the station got connected"
        if not tls:
            assert first.payload["status"] == 401, f"refused with {first.payload['status']}, expected 401"
    with step("with valid settings back, the station reconnects"):
        csms.restart(csms.policy(policy.profile))
        csms.wait_connected(_reconnect_window(rig) * 2)


@pytest.mark.case("OCPP-SEC-002")
def test_wrong_password_refused(rig, csms, evse, step, kpi):
    if evse.security_profile == 3:
        pytest.skip("security profile 3 uses no Basic authentication")
    policy = csms.policy(evse.security_profile, password="not-the-stations-password")
    _refused_then_recovers(rig, csms, step, kpi, policy, "expecting another password", tls=False)


@pytest.mark.case("OCPP-SEC-003")
@pytest.mark.parametrize("fault", list(SERVER_FAULTS))
def test_faulty_server_certificate(rig, csms, evse, step, kpi, reaction, fault):
    _on_profile(rig, csms, evse, max(2, evse.security_profile), step)
    server = csms.tls.faulty_servers.get(fault)
    if server is None:
        pytest.skip(f"the rig file gives the CSMS's certificate and the harness holds no key of its CA, so it "
                    f"cannot issue a certificate that is {SERVER_FAULTS[fault]}")
    mark = rig.trace.now()
    policy = csms.policy(evse.security_profile, server=server)
    _refused_then_recovers(rig, csms, step, kpi, policy, f"with a certificate {SERVER_FAULTS[fault]}", tls=True,
                           reaction=reaction)
    event_type = security_event_type("csms_certificate", v16=evse.version is OcppVersion.V16)
    with step(f"back online, the station reports the security event {event_type}"):
        csms.expect_security_event(event_type, since=mark, timeout=rig.scaled(60) + 5, who="the station",
                                   reaction=reaction)


@pytest.mark.case("OCPP-SEC-004")
def test_tls_too_old(rig, csms, evse, step, kpi):
    _on_profile(rig, csms, evse, max(2, evse.security_profile), step)
    policy = csms.policy(evse.security_profile, minimum_tls=ssl.TLSVersion.TLSv1_1,
                         maximum_tls=ssl.TLSVersion.TLSv1_1)
    _refused_then_recovers(rig, csms, step, kpi, policy, "offering TLS 1.1 only", tls=True)


@pytest.mark.case("OCPP-SEC-005")
def test_untrusted_client_certificate(rig, csms, evse, step, kpi):
    _on_profile(rig, csms, evse, 3, step)
    assert csms.tls.untrusted_server is not None
    # trust anchored in a certificate that issued nothing the station holds
    policy = csms.policy(3, client_ca=csms.tls.untrusted_server.chain)
    _refused_then_recovers(rig, csms, step, kpi, policy, "trusting another CA for client certificates", tls=True)
