"""Plug & Charge end to end on the emulated rig: the EV presents its contract over ISO 15118, the
reference EVSE asks the mock CSMS over OCPP, the CSMS checks the contract at the run's OCSP
responder, and the transaction is billed to the eMAID.

Parametrized over the OCPP version (1.6 through the OCA application note's DataTransfer, 2.0.1,
2.1), the ISO 15118 protocol (-2 AC and DC, -20 AC and DC) and where the contract is validated:
``local`` (the EVSE holds the MO roots and sends iso15118CertificateHashData, OCPP 2.0.1 C07) or
``central`` (it holds none and sends the chain in ``certificate``, C07.FR.06).
"""

from __future__ import annotations

import json
import socket
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from harness.pki.iso15118 import build_iso15118_pki
from harness.pki.profiles import Generation, Role
from harness.pki.signing import CsrSigner
from harness.rig.config import load_rig
from harness.rig.hlc import material
from harness.rig.rig import Rig
from harness.trace import Recorder

ROOT = Path(__file__).resolve().parents[2]
PROTOCOLS = [("iso2", "AC"), ("iso2", "DC"), ("iso20-ac", "AC"), ("iso20-dc", "DC")]


def _rig_file(directory: Path, version: str, validation: str) -> Path:
    profile = (ROOT / "fixtures" / "evse" / "reference.yaml").read_text()
    assert "contract_validation: local" in profile
    (directory / "evse.yaml").write_text(profile.replace("contract_validation: local",
                                                         f"contract_validation: {validation}"))
    rig = (ROOT / "rigs" / "emulated.yaml").read_text()
    rig = rig.replace("../fixtures/evse/reference.yaml", str(directory / "evse.yaml"))
    rig = rig.replace("../fixtures/ev/default.yaml", str(ROOT / "fixtures" / "ev" / "default.yaml"))
    assert '    version: "2.1"' in rig
    rig = rig.replace('    version: "2.1"', f'    version: "{version}"')
    (directory / "rig.yaml").write_text(rig)
    return directory / "rig.yaml"


@pytest.fixture(scope="module", params=[(v, m) for v in ("1.6", "2.0.1", "2.1") for m in ("local", "central")],
                ids=lambda p: f"ocpp{p[0]}-{p[1]}")
def pnc_rig(request, tmp_path_factory):
    version, validation = request.param
    directory = tmp_path_factory.mktemp(f"pnc-{version}-{validation}")
    rig = Rig(load_rig(_rig_file(directory, version, validation)), run_dir=directory / "run",
              trace=Recorder(directory / "trace.jsonl"), run_id="pnc")
    rig.setup()
    yield rig, version, validation
    assert rig.teardown() == []


def _contract_requests(rig: Rig, since: float) -> list[dict]:
    """The Authorize requests that carried a contract, as 2.0.1 messages (1.6: DataTransfer data)."""
    found = []
    for event in rig.csms.messages(since=since, kind="CALL"):
        body = event.payload.get("payload") if isinstance(event.payload, dict) else None
        if event.name == "Authorize" and isinstance(body, dict):
            found.append(body)
        elif event.name == "DataTransfer" and isinstance(body, dict) and body.get("messageId") == "Authorize":
            found.append(json.loads(body["data"]))
    return [r for r in found if "certificate" in r or "iso15118CertificateHashData" in r]


def _verdicts(rig: Rig, since: float) -> list[dict]:
    return [e.payload for e in rig.trace.select(name="ContractVerdict", since=since)]


def _contract(rig: Rig, protocol: str) -> x509.Certificate:
    pki = material(rig).iso20 if protocol.startswith("iso20") else material(rig).iso2
    return pki.issued[Role.CONTRACT].cert


@pytest.mark.parametrize("protocol, energy", PROTOCOLS, ids=[f"{p}-{e.lower()}" for p, e in PROTOCOLS])
def test_plug_and_charge_through_the_csms(pnc_rig, protocol, energy):
    rig, version, validation = pnc_rig
    rig.restore()
    mark = rig.trace.now()
    result = rig.ev.charge(protocol=protocol, energy=energy, identification="PnC", tls=True, cycles=2)
    assert result.ok, result.outcome.reason
    assert all(code.startswith("OK") for code in result.response_codes().values()), result.response_codes()

    contract = _contract(rig, protocol)
    emaid = contract.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
    requests = _contract_requests(rig, mark)
    assert len(requests) == 1, requests
    request = requests[0]
    token = request["idToken"] if version == "1.6" else request["idToken"]["idToken"]
    assert token == emaid
    if version != "1.6":
        assert request["idToken"]["type"] == "eMAID"
    if validation == "local":
        assert "certificate" not in request
        entries = request["iso15118CertificateHashData"]
        assert len(entries) == 3  # the contract and both MO Sub-CAs
        assert entries[0]["serialNumber"] == format(contract.serial_number, "X")
    else:
        assert "iso15118CertificateHashData" not in request
        assert x509.load_pem_x509_certificates(request["certificate"].encode())[0] == contract
    verdicts = _verdicts(rig, mark)
    assert [v["certificate_status"] for v in verdicts] == ["Accepted"]
    assert verdicts[0]["checked"] == ("hash data" if validation == "local" else "certificate")
    transaction = rig.csms.wait_transaction(since=mark, timeout=10, where=lambda t: t.id_token == emaid,
                                            what=f"a transaction for {emaid}")
    assert transaction.id_token == emaid


@pytest.mark.parametrize("protocol, energy, code", [("iso2", "AC", "FAILED_CertificateRevoked"),
                                                    ("iso20-dc", "DC", "WARNING_CertificateRevoked")],
                         ids=["iso2", "iso20"])
def test_a_contract_revoked_at_its_responder_is_refused_with_the_matching_code(pnc_rig, protocol, energy, code):
    rig, version, validation = pnc_rig
    rig.restore()
    contract = _contract(rig, protocol)
    rig.csms.revoke(contract.serial_number)
    mark = rig.trace.now()
    result = rig.ev.charge(protocol=protocol, energy=energy, identification="PnC", tls=True, cycles=1)
    assert not result.ok
    assert result.response_codes().get("AuthorizationRes") == code, result.response_codes()
    assert [v["certificate_status"] for v in _verdicts(rig, mark)] == ["CertificateRevoked"]
    assert rig.csms.transactions(since=mark) == []
    rig.restore()  # the next case finds the contract good again
    assert rig.csms.driver.revocation is not None and not rig.csms.driver.revocation.revoked


def _presented_serial(rig: Rig) -> int:
    """The serial of the certificate the reference SECC presents to a -2 EV now, read by a TLS 1.2
    handshake of the standard library's own (trusting the run's -2 V2G root)."""
    hlc = rig.evse.emulator.hlc
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False
    context.set_ciphers("ECDHE-ECDSA-AES128-SHA256")  # ISO 15118-2 [V2G2-602]
    context.load_verify_locations(cadata=material(rig).iso2.issued[Role.V2G_ROOT].cert.public_bytes(
        serialization.Encoding.PEM).decode())
    with socket.create_connection((hlc.host, hlc.secc.tls_port), timeout=5) as raw:
        with context.wrap_socket(raw) as tls:
            return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True)).serial_number


def test_the_secc_certificate_is_renewed_through_the_csms(pnc_rig):
    """OCPP 2.0.1 A03 with certificateType V2GCertificate (1.6: the application note's
    DataTransfer TriggerMessage / SignCertificate / CertificateSigned): the CSMS triggers, the
    EVSE sends a CSR, the CSMS signs it, and the EVSE presents the new certificate to the next EV."""
    rig, version, _ = pnc_rig
    rig.restore()
    before = _presented_serial(rig)
    mark = rig.trace.now()
    if version == "1.6":
        answer = rig.csms.call("DataTransfer", {"vendorId": "org.openchargealliance.iso15118pnc",
                                                "messageId": "TriggerMessage",
                                                "data": json.dumps({"requestedMessage": "SignV2GCertificate"})})
        assert answer["status"] == "Accepted" and json.loads(answer["data"]) == {"status": "Accepted"}
    else:
        assert rig.csms.call("TriggerMessage", {"requestedMessage": "SignV2GCertificate"}) == {"status": "Accepted"}
    installed = rig.trace.wait_for(10, name="SeccCertificateInstalled", since=mark)
    after = _presented_serial(rig)
    assert after != before and format(after, "X") == installed.payload["serial"]
    signed = rig.trace.select(name="CertificateRequestSigned", observer="csms", since=mark)
    assert len(signed) == 1 and signed[0].payload["serial"] == installed.payload["serial"]
    result = rig.ev.charge(protocol="iso2", energy="AC", identification="PnC", tls=True, cycles=1)
    assert result.ok, result.outcome.reason  # an EV trusting the V2G root accepts the renewed chain


def test_a_secc_chain_from_another_pki_is_refused_and_the_old_one_kept(pnc_rig):
    rig, version, _ = pnc_rig
    rig.restore()
    stranger = build_iso15118_pki(Generation.ISO2)
    own = rig.csms.behaviour.signer
    rig.csms.behaviour.signer = CsrSigner(stranger.issued[Role.CPO_SUB_CA_2], (
        stranger.issued[Role.CPO_SUB_CA_2].cert, stranger.issued[Role.CPO_SUB_CA_1].cert))
    try:
        before = _presented_serial(rig)
        mark = rig.trace.now()
        if version == "1.6":
            rig.csms.call("DataTransfer", {"vendorId": "org.openchargealliance.iso15118pnc",
                                           "messageId": "TriggerMessage",
                                           "data": json.dumps({"requestedMessage": "SignV2GCertificate"})})
        else:
            rig.csms.call("TriggerMessage", {"requestedMessage": "SignV2GCertificate"})
        refused = rig.trace.wait_for(10, name="SeccCertificateRefused", since=mark)
        assert "does not validate against the V2G root" in refused.payload["reason"]
        if version == "1.6":
            answer = rig.csms.wait_for_message("DataTransfer", kind="CALLRESULT", since=mark, timeout=10,
                                               where=lambda p: "Rejected" in p.get("data", ""))
            assert json.loads(answer.payload["payload"]["data"]) == {"status": "Rejected"}
        else:
            answer = rig.csms.wait_for_message("CertificateSigned", kind="CALLRESULT", since=mark, timeout=10)
            assert answer.payload["payload"]["status"] == "Rejected"
        # the security event of OCPP 2.0.1 Part 2 Appendix 1 (1.6 security whitepaper: its own name)
        event_type = "InvalidChargePointCertificate" if version == "1.6" else "InvalidChargingStationCertificate"
        reported = rig.csms.wait_for_message("SecurityEventNotification", since=mark, timeout=10)
        assert reported.payload["payload"]["type"] == event_type
        assert "does not validate against the V2G root" in reported.payload["payload"]["techInfo"]
        assert _presented_serial(rig) == before
    finally:
        rig.csms.behaviour.signer = own


@pytest.mark.parametrize("protocol, energy, namespace", [
    ("iso2", "AC", "urn:iso:15118:2:2013:MsgDef"), ("iso20-dc", "DC", "urn:iso:std:iso:15118:-20:CommonMessages")])
def test_a_contract_is_installed_through_the_csms(pnc_rig, protocol, energy, namespace):
    """OCPP 2.0.1 M01 (1.6: the note's DataTransfer Get15118EVCertificate): the EVSE hands the EV's
    CertificateInstallationReq to the CSMS, which issues the contract; the EV then charges with it.
    For -20 the request names the CommonMessages schema, and the EV decrypts a secp521r1 key."""
    rig, version, _ = pnc_rig
    rig.restore()
    mark = rig.trace.now()
    result = rig.ev.charge(protocol=protocol, energy=energy, identification="PnC", tls=True, cycles=1,
                           certificate="install")
    assert result.ok, result.outcome.reason
    assert "CertificateInstallationReq" in result.names("sent")
    provisioned = rig.trace.select(name="EvCertificateProvisioned", observer="csms", since=mark)
    assert [e.payload["status"] for e in provisioned] == ["Accepted"]
    calls = [e.payload["payload"] for e in rig.csms.messages(since=mark, kind="CALL")
             if e.name in ("Get15118EVCertificate", "DataTransfer")]
    requests = [json.loads(c["data"]) if "data" in c else c for c in calls
                if "iso15118SchemaVersion" in c or c.get("messageId") == "Get15118EVCertificate"]
    assert [r["iso15118SchemaVersion"] for r in requests] == [namespace]
    installed = rig.ev.contract(protocol)
    assert format(installed.serial_number, "X") in provisioned[0].payload["detail"]
    verdicts = [e.payload["certificate_status"] for e in rig.trace.select(name="ContractVerdict", since=mark)]
    assert verdicts == ["Accepted"]  # the new contract then passed the CSMS's own check


def test_a_revoked_contract_is_not_renewed(pnc_rig):
    """CertificateUpdateReq through the CSMS (M02) for a contract its responder reports revoked:
    FAILED_CertificateRevoked, and no new contract."""
    rig, _, _ = pnc_rig
    rig.restore()
    contract = rig.ev.contract("iso2")
    rig.csms.revoke(contract.serial_number)
    mark = rig.trace.now()
    result = rig.ev.charge(protocol="iso2", energy="AC", identification="PnC", tls=True, cycles=1,
                           certificate="update")
    assert result.response_codes().get("CertificateUpdateRes") == "FAILED_CertificateRevoked", result.response_codes()
    assert rig.ev.contract("iso2") == contract
    provisioned = rig.trace.select(name="EvCertificateProvisioned", observer="csms", since=mark)
    assert provisioned and "FAILED_CertificateRevoked" in provisioned[0].payload["detail"]


def _roots_call(rig: Rig, version: str, action: str, payload: dict) -> dict:
    """An M03-M05 request to the EVSE: native in 2.x, the application note's DataTransfer in 1.6."""
    if version != "1.6":
        return rig.csms.call(action, payload)
    answer = rig.csms.call("DataTransfer", {"vendorId": "org.openchargealliance.iso15118pnc", "messageId": action,
                                            "data": json.dumps(payload)})
    assert answer["status"] == "Accepted", answer
    return json.loads(answer["data"])


def test_the_csms_manages_the_mo_roots_and_so_where_contracts_are_validated(pnc_rig):
    """M03 GetInstalledCertificateIds lists the V2G and MO roots with their hashes; M04
    DeleteCertificate of the MO roots makes the EVSE send the contract chain to the CSMS (C07.FR.06);
    M05 InstallCertificate of an MO root makes it validate itself again and send hash data."""
    rig, version, validation = pnc_rig
    if validation != "local":
        pytest.skip("the EVSE starts without MO roots here; the local rig runs the sequence")
    rig.restore()
    listed = _roots_call(rig, version, "GetInstalledCertificateIds", {})
    assert listed["status"] == "Accepted"
    kinds = sorted({entry["certificateType"] for entry in listed["certificateHashDataChain"]})
    assert kinds == ["MORootCertificate", "V2GRootCertificate"]
    mo_roots = [e["certificateHashData"] for e in listed["certificateHashDataChain"]
                if e["certificateType"] == "MORootCertificate"]
    assert {int(h["serialNumber"], 16) for h in mo_roots} == {r.serial_number for r in material(rig).all_mo_roots()}
    try:
        for hashes in mo_roots:
            assert _roots_call(rig, version, "DeleteCertificate", {"certificateHashData": hashes}) == {
                "status": "Accepted"}
        assert _roots_call(rig, version, "DeleteCertificate", {"certificateHashData": mo_roots[0]}) == {
            "status": "NotFound"}
        mark = rig.trace.now()
        assert rig.ev.charge(protocol="iso2", energy="AC", identification="PnC", tls=True, cycles=1).ok
        assert [("certificate" in r) for r in _contract_requests(rig, mark)] == [True]
    finally:
        for root in material(rig).all_mo_roots():
            pem = root.public_bytes(serialization.Encoding.PEM).decode()
            assert _roots_call(rig, version, "InstallCertificate", {"certificateType": "MORootCertificate",
                                                                    "certificate": pem}) == {"status": "Accepted"}
    rig.restore()  # the EV leaves, and with it the transaction of the session before
    mark = rig.trace.now()
    assert rig.ev.charge(protocol="iso2", energy="AC", identification="PnC", tls=True, cycles=1).ok
    assert [("iso15118CertificateHashData" in r) for r in _contract_requests(rig, mark)] == [True]
    leaf = material(rig).iso2.chain(Role.CONTRACT).leaf.cert.public_bytes(serialization.Encoding.PEM).decode()
    refused = _roots_call(rig, version, "InstallCertificate", {"certificateType": "MORootCertificate",
                                                               "certificate": leaf})
    assert refused == {"status": "Rejected"}  # a leaf is no root
