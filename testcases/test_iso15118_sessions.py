"""Complete ISO 15118 / DIN 70121 sessions from the EV side, with what the CSMS sees of them.

The EV emulator drives the EVSE under test through whole sessions; the test looks at what
crossed the wires only: the V2G messages the EV exchanged (ev.charge's result, the timeline with
observer ev) and the OCPP messages the CSMS received.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from cryptography import x509

from harness import exi
from harness.ocpp import commands
from harness.v2g import messages

DIN_SEQUENCE = ["SessionSetupReq", "ServiceDiscoveryReq", "ServicePaymentSelectionReq", "ContractAuthenticationReq",
                "ChargeParameterDiscoveryReq", "CableCheckReq", "PreChargeReq", "PowerDeliveryReq", "CurrentDemandReq",
                "PowerDeliveryReq", "WeldingDetectionReq", "SessionStopReq"]
ISO2_AC_EIM = ["SessionSetupReq", "ServiceDiscoveryReq", "PaymentServiceSelectionReq", "AuthorizationReq",
               "ChargeParameterDiscoveryReq", "PowerDeliveryReq", "ChargingStatusReq", "PowerDeliveryReq",
               "SessionStopReq"]
ISO2_DC_EIM = ["SessionSetupReq", "ServiceDiscoveryReq", "PaymentServiceSelectionReq", "AuthorizationReq",
               "ChargeParameterDiscoveryReq", "CableCheckReq", "PreChargeReq", "PowerDeliveryReq", "CurrentDemandReq",
               "PowerDeliveryReq", "WeldingDetectionReq", "SessionStopReq"]


def _distinct(names):
    """The request sequence with repeats folded (Ongoing loops, charge loops)."""
    out = []
    for name in names:
        if not out or out[-1] != name:
            out.append(name)
    return out


def _requests(result):
    return [n for n in result.names("sent") if n != "supportedAppProtocolReq"]


def _authorize_remotely(csms, evse, token):
    """EIM: the external identification is a remote start from the CSMS (works with any DUT)."""
    response = csms.call(*commands.remote_start(evse.version, token))
    assert response.get("status") == "Accepted", f"remote start refused: {response}"


def _all_ok(result):
    bad = {name: code for name, code in result.response_codes().items() if not code.startswith("OK")}
    assert not bad, f"responses not OK: {bad}"
    _exact(result)


def _exact(result):
    """Every EXI message of the session (the EVSE's included) decodes and re-encodes to the same
    bytes: a peer's encoder that is not canonical shows here."""
    for event in result.events:
        payload = event.payload or {}
        if "exi" not in payload:
            continue
        data = bytes.fromhex(payload["exi"])
        decoded = exi.decode(data, payload["schema"])
        assert exi.encode(decoded, payload["schema"]) == data, f"{event.name} from {event.src} is not canonical"


def _common_name(certificate) -> str:
    return str(certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value)


def _contract_requests(csms, emaid, since):
    """Authorize requests for ``emaid`` as OCPP 2.0.1 messages: 2.x Authorize, 1.6 Authorize
    (idTag) or the 1.6 application note's DataTransfer (org.openchargealliance.iso15118pnc)."""
    found = []
    for event in csms.messages(since=since, kind="CALL"):
        body = (event.payload or {}).get("payload")
        if not isinstance(body, dict):
            continue
        if event.name == "DataTransfer" and body.get("messageId") == "Authorize":
            try:
                body = json.loads(body.get("data") or "")
            except ValueError:
                continue
            token = body.get("idToken") if isinstance(body, dict) else None
        elif event.name == "Authorize":
            token = body.get("idTag") or (body.get("idToken") or {}).get("idToken")
        else:
            continue
        if isinstance(token, str) and token.replace("-", "").upper() == emaid.replace("-", "").upper():
            found.append(body)
    return found


def _contract_authorized(rig, csms, ev, emaid, protocol, mark) -> str:
    """OCPP 2.0.1 C07: the charger authorized the eMAID at the CSMS, a contract it sent along (OCSP
    hash data or the chain) was accepted, and the transaction carries the eMAID. Returns what was
    sent, for the report (a 1.6 charger without the application note sends the eMAID alone)."""
    _transaction(rig, csms, emaid, mark)
    requests = _contract_requests(csms, emaid, mark)
    assert requests, f"no Authorize for the eMAID {emaid} reached the CSMS"
    with_contract = [r for r in requests if "certificate" in r or "iso15118CertificateHashData" in r]
    if with_contract:
        verdicts = [e.payload for e in rig.trace.select(name="ContractVerdict", observer="csms", since=mark)]
        assert verdicts and all(v["certificate_status"] == "Accepted" for v in verdicts), verdicts
        hashed = with_contract[0].get("iso15118CertificateHashData")
        if hashed:
            contract = ev.contract(protocol)
            assert hashed[0]["serialNumber"].upper().lstrip("0") == format(contract.serial_number, "X"), \
                "iso15118CertificateHashData[0] is not the contract certificate the EV presented"
            return f"the contract's OCSP hash data ({len(hashed)} entries), accepted"
        return "the contract chain (certificate), accepted"
    return "the eMAID alone, no contract data"


def _transaction(rig, csms, token, mark):
    return csms.wait_transaction(since=mark, timeout=rig.scaled(60) + 5, where=lambda t: t.id_token == token,
                                 what=f"a transaction for {token}")


@pytest.mark.case("V2G-SES-001")
@pytest.mark.requires("ev", "iso15118", "remote_start")
def test_din70121_dc_session(rig, csms, evse, ev, step, kpi):
    mark = rig.trace.now()
    _authorize_remotely(csms, evse, "DIN-DC-TOKEN")
    with step("a complete DIN 70121 DC session"):
        result = ev.charge(protocol="din", energy="DC", tls=False, cycles=5)
        assert result.ok, result.outcome.reason
        assert result.protocol == "din"
        assert _distinct(_requests(result)) == DIN_SEQUENCE
        _all_ok(result)
    with step("the CSMS sees the transaction of the session"):
        tx = _transaction(rig, csms, "DIN-DC-TOKEN", mark)
        assert tx.started_at is not None
    kpi("v2g_messages", len(result.names()), "", "messages the EV exchanged")


@pytest.mark.case("V2G-SES-002")
@pytest.mark.requires("ev", "iso15118", "remote_start")
@pytest.mark.parametrize("energy, tls", [("AC", False), ("AC", True), ("DC", False), ("DC", True)],
                         ids=["ac-tcp", "ac-tls", "dc-tcp", "dc-tls"])
def test_iso2_eim_session(rig, csms, evse, ev, step, kpi, energy, tls):
    token = f"ISO2-{energy}-{'TLS' if tls else 'TCP'}"  # idTags are at most 20 characters (1.6)
    mark = rig.trace.now()
    _authorize_remotely(csms, evse, token)
    with step(f"a complete ISO 15118-2 {energy} session with external identification"):
        result = ev.charge(protocol="iso2", energy=energy, identification="EIM", tls=tls, cycles=5)
        assert result.ok, result.outcome.reason
        assert _distinct(_requests(result)) == (ISO2_AC_EIM if energy == "AC" else ISO2_DC_EIM)
        _all_ok(result)
        assert result.tls == ("TLSv1.2" if tls else None)
    tx = _transaction(rig, csms, token, mark)
    if energy == "DC":
        with step("the transaction's meter values carry the SoC the EV reported"):
            csms.wait_transaction(since=mark, timeout=rig.scaled(60) * 3 + 5, what="a meter value with the SoC",
                                  where=lambda t: t.transaction_id == tx.transaction_id and bool(t.values("SoC")))
    with step("unplugging ends the transaction"):
        ev.unplug()
        csms.wait_transaction(since=mark, timeout=rig.scaled(60) + 5, what="the end of the transaction",
                              where=lambda t: t.transaction_id == tx.transaction_id and t.ended)
    kpi("v2g_messages", len(result.names()), "")


@pytest.mark.case("V2G-SES-003")
@pytest.mark.requires("ev", "iso15118", "plug_and_charge")
@pytest.mark.parametrize("energy", ["AC", "DC"], ids=["ac", "dc"])
def test_iso2_plug_and_charge(rig, csms, evse, ev, step, energy):
    mark = rig.trace.now()
    with step("Plug & Charge over TLS: contract chain, challenge, signed AuthorizationReq"):
        result = ev.charge(protocol="iso2", energy=energy, identification="PnC", tls=True, cycles=3)
        assert result.ok, result.outcome.reason
        requests = _requests(result)
        assert requests[requests.index("PaymentServiceSelectionReq") + 1] == "PaymentDetailsReq"
        authorization = result.sent("AuthorizationReq")[0]
        assert "Signature" in authorization["V2G_Message"]["Header"]
        assert result.tls == "TLSv1.2"
        _all_ok(result)
    with step("the EVSE authorizes the eMAID at the CSMS (a contract sent along must be accepted) and bills "
              "the transaction to it"):
        emaid = result.sent("PaymentDetailsReq")[0]["V2G_Message"]["Body"]["PaymentDetailsReq"]["eMAID"]
        sent = _contract_authorized(rig, csms, ev, emaid, "iso2", mark)
    with step(f"the charger sent the CSMS {sent}"):
        pass


@pytest.mark.case("V2G-SES-004")
@pytest.mark.requires("ev", "iso15118", "remote_start")
def test_iso2_pause_and_resume(rig, csms, evse, ev, step):
    _authorize_remotely(csms, evse, "PAUSE-TOKEN")
    with step("the EV pauses the session"):
        first = ev.charge(protocol="iso2", energy="AC", tls=False, cycles=2, pause=True)
        assert first.ok and first.outcome.paused, first.outcome.reason
    with step("it resumes with the same SessionID and the EVSE joins the old session"):
        second = ev.charge(protocol="iso2", energy="AC", tls=False, cycles=2, resume=True)
        assert second.ok, second.outcome.reason
        assert second.session_id == first.session_id
        assert second.response_codes()["SessionSetupRes"] == "OK_OldSessionJoined"
        _exact(first)
        _exact(second)


@pytest.mark.case("V2G-SES-005")
@pytest.mark.requires("ev", "iso15118", "remote_start")
def test_iso2_renegotiation_by_the_ev(rig, csms, evse, ev, step):
    _authorize_remotely(csms, evse, "RENEGOTIATE-TOKEN")
    result = ev.charge(protocol="iso2", energy="DC", tls=False, cycles=4, renegotiate_after=2)
    assert result.ok, result.outcome.reason
    progress = [m["V2G_Message"]["Body"]["PowerDeliveryReq"]["ChargeProgress"] for m in result.sent("PowerDeliveryReq")]
    assert progress == ["Start", "Renegotiate", "Start", "Stop"]
    _all_ok(result)


@pytest.mark.case("V2G-SES-006")
@pytest.mark.requires("ev", "iso15118", "plug_and_charge")
@pytest.mark.parametrize("protocol, energy, after", [("iso2", "AC", "PaymentServiceSelectionReq"),
                                                     ("iso20-dc", "DC", "AuthorizationSetupReq")],
                         ids=["iso2", "iso20"])
def test_certificate_installation(rig, csms, evse, ev, step, protocol, energy, after):
    _, no_contracts = csms.plug_and_charge_backend()
    if no_contracts:
        pytest.skip(no_contracts)
    mark = rig.trace.now()
    with step(f"the EV asks for a contract (CertificateInstallationReq, {protocol}) and charges with it"):
        result = ev.charge(protocol=protocol, energy=energy, identification="PnC", tls=True, cycles=1,
                           certificate="install")
        if protocol.startswith("iso20") and result.response_codes().get("AuthorizationSetupRes") == "OK":
            offered = result.received("AuthorizationSetupRes")[0]["AuthorizationSetupRes"]
            assert offered.get("CertificateInstallationService"), (
                "AuthorizationSetupRes offers PnC without CertificateInstallationService, so an EV without a "
                "contract cannot get one (ISO 15118-20 CertificateInstallation)")
        assert result.ok, result.outcome.reason
        requests = _requests(result)
        assert requests[requests.index(after) + 1] == "CertificateInstallationReq"
        delivery = result.received("CertificateInstallationRes")[0]
        assert "Signature" in messages.header_of(delivery)
        _all_ok(result)
    with step("the charger got the contract from the CSMS (Get15118EVCertificate Install)"):
        def install(payload):
            if payload.get("messageId") == "Get15118EVCertificate":  # 1.6: the application note's DataTransfer
                payload = json.loads(payload.get("data") or "{}")
            return payload.get("action") == "Install"

        csms.wait_for_message("DataTransfer" if evse.version.value == "1.6" else "Get15118EVCertificate",
                              since=mark, timeout=rig.scaled(30) + 5, where=install)


@pytest.mark.case("V2G-SES-010")
@pytest.mark.requires("ev", "iso15118", "remote_start")
@pytest.mark.parametrize("energy", ["AC", "DC", "AC_BPT", "DC_BPT"])
@pytest.mark.parametrize("control", ["scheduled", "dynamic"])
def test_iso20_eim_session(rig, csms, evse, ev, step, kpi, energy, control):
    token = f"I20-{energy}-{control[:3]}".upper()  # idTags are at most 20 characters (1.6)
    _authorize_remotely(csms, evse, token)
    protocol = "iso20-dc" if energy.startswith("DC") else "iso20-ac"
    result = ev.charge(protocol=protocol, energy=energy, identification="EIM", control=control, cycles=5)
    assert result.ok, result.outcome.reason
    assert result.protocol == protocol and result.tls == "TLSv1.3"
    loop = "DC_ChargeLoopReq" if energy.startswith("DC") else "AC_ChargeLoopReq"
    assert _requests(result).count(loop) == 5
    _all_ok(result)
    kpi("v2g_messages", len(result.names()), "")


@pytest.mark.case("V2G-SES-011")
@pytest.mark.requires("ev", "iso15118", "remote_start", "discharge")
@pytest.mark.parametrize("energy", ["AC_BPT", "DC_BPT"])
def test_iso20_discharge(rig, csms, evse, ev, step, energy):
    _authorize_remotely(csms, evse, f"V2G-{energy}")
    protocol = "iso20-dc" if energy.startswith("DC") else "iso20-ac"
    result = ev.charge(protocol=protocol, energy=energy, discharge=True, cycles=5)
    assert result.ok, result.outcome.reason
    delivery = result.sent("PowerDeliveryReq")[0]["PowerDeliveryReq"]
    assert delivery["BPT_ChannelSelection"] == "Discharge"
    assert result.soc_after < result.soc_before, "the battery did not give energy back"
    _all_ok(result)


@pytest.mark.case("V2G-SES-012")
@pytest.mark.requires("ev", "iso15118", "plug_and_charge")
def test_iso20_plug_and_charge(rig, csms, evse, ev, step):
    mark = rig.trace.now()
    result = ev.charge(protocol="iso20-dc", energy="DC", identification="PnC", cycles=3)
    assert result.ok, result.outcome.reason
    request = result.sent("AuthorizationReq")[0]["AuthorizationReq"]
    assert request["SelectedAuthorizationService"] == "PnC" and "Signature" in request["Header"]
    _all_ok(result)
    contract = ev.contract("iso20-dc")
    sent = _contract_authorized(rig, csms, ev, _common_name(contract), "iso20-dc", mark)
    with step(f"the charger authorized the eMAID at the CSMS and sent it {sent}"):
        pass


@pytest.mark.case("V2G-SES-013")
@pytest.mark.requires("ev", "iso15118", "remote_start")
def test_remote_stop_ends_the_charge_loop(rig, csms, evse, ev, step):
    mark = rig.trace.now()
    _authorize_remotely(csms, evse, "STOP-TOKEN")
    stopped: list = []

    def stop_when_charging(event):  # runs on the rig's loop as the EV receives its first CurrentDemandRes
        if event.observer == "ev" and event.name == "CurrentDemandRes" and not stopped:
            tx = next((t for t in csms.transactions(since=mark) if t.id_token == "STOP-TOKEN"), None)
            if tx is not None:
                stopped.append(tx.transaction_id)
                asyncio.get_running_loop().create_task(
                    csms.server.call(csms.station_id, *commands.remote_stop(evse.version, tx.transaction_id)))

    unsubscribe = rig.trace.subscribe(stop_when_charging)
    try:
        with step("the CSMS stops the transaction while the EV is in the charge loop"):
            result = ev.charge(protocol="iso2", energy="DC", tls=False, cycles=200)
    finally:
        unsubscribe()
    assert stopped, "the EV never reached the charge loop"
    with step("the EVSE tells the EV to stop (EVSENotification StopCharging) and the EV ends the session"):
        notifications = [m["V2G_Message"]["Body"]["CurrentDemandRes"]["DC_EVSEStatus"]["EVSENotification"]
                         for m in result.received("CurrentDemandRes")]
        assert "StopCharging" in notifications, notifications
        assert len(notifications) < 200
        assert result.ok, result.outcome.reason
        _exact(result)
