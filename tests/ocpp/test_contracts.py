"""The mock CSMS as a Plug & Charge backend (OCPP 2.0.1 use cases C07 and M06) deciding about
contracts, with the OCSP responder reached over real HTTP.

AuthorizeCertificateStatusEnumType (OCPP 2.0.1 part 2, 3.x): "CertificateExpired" when the
contract certificate is expired, "CertificateRevoked" when it is marked revoked (by a CRL or an
OCSP responder), "CertChainError" when the chain is not valid; the CSMS answers every Authorize
with a status "indicating acceptance or a reason for rejection" (C07.FR.04).
"""

from __future__ import annotations

import base64
import datetime as _dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp

from harness.ocpp.contracts import PncBackend
from harness.pki.builder import KeyAlgorithm, issue, name
from harness.pki.faults import CATALOGUE, fault_params
from harness.pki.iso15118 import build_iso15118_pki
from harness.pki.profiles import PROFILES, Generation, Role
from harness.pki.revocation import RevocationServer, certificate_hash_data
from harness.pki.validate import Reason

EMAID = "DEHARC12345678"


@pytest.fixture(scope="module")
def responder():
    server = RevocationServer([]).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def pkis(responder):
    built = {generation: build_iso15118_pki(generation, revocation_base_url=responder.base_url)
             for generation in Generation}
    for pki in built.values():
        responder.authorities.extend(pki.authorities)
    return built


@pytest.fixture
def pki(pkis):
    return pkis[Generation.ISO2]


@pytest.fixture
def backend(pkis, responder):
    responder.revoked.clear()
    responder.requests.clear()
    return PncBackend([p.issued[Role.MO_ROOT].cert for p in pkis.values()],
                      [a.cert for p in pkis.values() for a in p.authorities])


def hash_data(pki, *, upto: int = 3):
    """iso15118CertificateHashData of the contract and its Sub-CAs, as a station sends it."""
    chain = pki.chain(Role.CONTRACT)
    path = [chain.leaf, *chain.sub_cas, chain.root]
    return [certificate_hash_data(cert.cert, issuer.cert).as_ocpp() for cert, issuer in zip(path, path[1:])][:upto]


def pem(certificates):
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certificates)


# -- iso15118CertificateHashData -------------------------------------------------------------------

def test_hash_data_of_a_good_contract_is_accepted_after_asking_the_responder_about_each(backend, pki, responder):
    verdict = backend.check_hash_data(hash_data(pki))
    assert verdict.certificate_status == "Accepted", verdict.detail
    chain = pki.chain(Role.CONTRACT)
    asked = sorted(r.serial_number for r in responder.requests)
    assert asked == sorted([chain.leaf.cert.serial_number, *(c.cert.serial_number for c in chain.sub_cas)])


@pytest.mark.parametrize("position", [0, 1, 2], ids=["contract", "mo-sub-ca-2", "mo-sub-ca-1"])
def test_a_revoked_contract_or_sub_ca_is_certificate_revoked(backend, pki, responder, position):
    chain = pki.chain(Role.CONTRACT)
    responder.revoke([chain.leaf, *chain.sub_cas][position].cert.serial_number)
    verdict = backend.check_hash_data(hash_data(pki))
    assert verdict.certificate_status == "CertificateRevoked", verdict.detail
    assert f"[{position}]" in verdict.detail


def test_hash_data_naming_an_unknown_issuer_is_a_chain_error(backend):
    stranger = build_iso15118_pki(Generation.ISO2)
    verdict = backend.check_hash_data(hash_data(stranger))
    assert verdict.certificate_status == "CertChainError"
    assert "no CA this CSMS knows" in verdict.detail


def test_entries_that_do_not_chain_are_a_chain_error(backend, pki):
    leaf, sub2, sub1 = hash_data(pki)
    verdict = backend.check_hash_data([leaf, sub1, sub2])
    assert verdict.certificate_status == "CertChainError"
    assert "does not describe" in verdict.detail


@pytest.mark.parametrize("entries, named", [
    ([], "0 entries"),
    ("five", "5 entries"),
    ([{"hashAlgorithm": "SHA256"}], "lacks issuerNameHash"),
    ([{"hashAlgorithm": "MD5", "issuerNameHash": "00", "issuerKeyHash": "00", "serialNumber": "1",
       "responderURL": "x"}], "none of SHA256"),
    ("not-hex", "issuerNameHash"),
    ("short", "has 4 hex digits"),
    ("serial", "serialNumber"),
    ("underscore", "serialNumber"),
], ids=["none", "five", "missing-field", "md5", "not-hex", "short-hash", "bad-serial", "python-int-syntax"])
def test_malformed_hash_data_is_refused_naming_the_field(backend, pki, entries, named):
    good = hash_data(pki)
    if entries == "five":
        entries = good + good[:2]
    elif entries == "not-hex":
        entries = [{**good[0], "issuerNameHash": "zz" * 32}]
    elif entries == "short":
        entries = [{**good[0], "issuerNameHash": "abcd"}]
    elif entries == "serial":
        entries = [{**good[0], "serialNumber": "G1"}]
    elif entries == "underscore":
        entries = [{**good[0], "serialNumber": "0x1_F"}]
    verdict = backend.check_hash_data(entries)
    assert verdict.certificate_status == "CertChainError"
    assert named in verdict.detail, verdict.detail


def test_the_csms_asks_no_responder_it_does_not_know(backend, pki):
    """A station names the responder; the CSMS must not become a way to reach any URL."""
    elsewhere = RevocationServer(pki.authorities).start()
    try:
        entries = [{**e, "responderURL": elsewhere.ocsp_url} for e in hash_data(pki)]
        verdict = backend.check_hash_data(entries)
    finally:
        elsewhere.stop()
    assert verdict.certificate_status == "CertChainError"
    assert "not an OCSP responder this CSMS knows" in verdict.detail
    assert not elsewhere.requests


def test_a_silent_responder_fails_closed(pkis):
    down = RevocationServer([])  # bound, never started: connections are refused or hang up
    url = down.base_url
    down.stop()
    pki = build_iso15118_pki(Generation.ISO2, revocation_base_url=url)
    backend = PncBackend([pki.issued[Role.MO_ROOT].cert], [a.cert for a in pki.authorities], timeout=2.0)
    verdict = backend.check_hash_data(hash_data(pki))
    assert verdict.certificate_status == "CertChainError"
    assert "revocation status unknown" in verdict.detail


# -- certificate (the station could not validate, C07.FR.06) -----------------------------------------

@pytest.mark.parametrize("generation", list(Generation), ids=lambda g: g.value)
def test_a_good_contract_chain_is_accepted(backend, pkis, generation):
    chain = pkis[generation].chain(Role.CONTRACT)
    verdict = backend.check_certificate(pem(chain.presented), pkis[generation].common_name(Role.CONTRACT))
    assert verdict.certificate_status == "Accepted", verdict.detail
    assert generation.value in verdict.detail


def test_the_idtoken_is_compared_with_the_contract_cn_in_either_spelling(backend, pki):
    chain = pem(pki.chain(Role.CONTRACT).presented)
    assert backend.check_certificate(chain, "DE-HAR-C12345678").accepted
    verdict = backend.check_certificate(chain, "DEHARC87654321")
    assert verdict.certificate_status == "CertChainError" and "is not the idToken" in verdict.detail


def test_text_that_is_no_pem_chain_is_a_chain_error(backend):
    verdict = backend.check_certificate("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", EMAID)
    assert verdict.certificate_status == "CertChainError" and "PEM" in verdict.detail


def _expected(reason: Reason) -> str:
    return {Reason.EXPIRED: "CertificateExpired", Reason.NOT_YET_VALID: "CertificateExpired",
            Reason.REVOKED: "CertificateRevoked"}.get(reason, "CertChainError")


@pytest.mark.parametrize("fault", fault_params(CATALOGUE, role=Role.CONTRACT))
def test_every_contract_fault_of_the_catalogue_is_refused(backend, pki, responder, fault):
    case = fault.apply(pki.chain(Role.CONTRACT), emaid=EMAID)
    if case.crls:
        pytest.skip("the backend learns revocation from OCSP, as C07 describes; a contract listed only "
                    "in a CRL is not seen")
    for serial in case.ocsp_revoked:
        responder.revoke(serial)
    verdict = backend.check_certificate(pem(case.certificates), case.emaid or EMAID)
    assert verdict.certificate_status == _expected(fault.reason), verdict.detail


def test_a_contract_of_an_untrusted_mo_is_a_chain_error(backend):
    stranger = build_iso15118_pki(Generation.ISO2)
    verdict = backend.check_certificate(pem(stranger.chain(Role.CONTRACT).presented), EMAID)
    assert verdict.certificate_status == "CertChainError"


def test_an_expired_contract_is_certificate_expired(backend, pki):
    sub_ca_2 = pki.issued[Role.MO_SUB_CA_2]
    profile = PROFILES[Role.CONTRACT]
    old = issue(name(EMAID, profile.organization, country="DE", domain_component=profile.domain_component),
                sub_ca_2, algorithm=KeyAlgorithm.SECP256R1, validity=_dt.timedelta(days=30),
                not_before=_dt.datetime.now(_dt.timezone.utc) - _dt.timedelta(days=60), ca=False,
                key_usage=profile.key_usage, ocsp_url=pki.ocsp_url())
    chain = pki.chain(Role.CONTRACT)
    verdict = backend.check_certificate(pem([old.cert, *(c.cert for c in chain.sub_cas)]), EMAID)
    assert verdict.certificate_status == "CertificateExpired", verdict.detail


# -- GetCertificateStatus (M06) ------------------------------------------------------------------------

@pytest.mark.parametrize("revoked", [False, True], ids=["good", "revoked"])
def test_get_certificate_status_relays_the_responders_signed_answer(backend, pki, responder, revoked):
    chain = pki.chain(Role.SECC)
    leaf, issuer = chain.leaf.cert, chain.sub_cas[0].cert
    if revoked:
        responder.revoke(leaf.serial_number)
    answer = backend.certificate_status(certificate_hash_data(leaf, issuer).as_ocpp())
    assert answer.status == "Accepted", answer.detail
    assert answer.ocsp_result is not None
    response = ocsp.load_der_ocsp_response(base64.b64decode(answer.ocsp_result))
    assert response.serial_number == leaf.serial_number
    assert response.certificate_status is (ocsp.OCSPCertStatus.REVOKED if revoked else ocsp.OCSPCertStatus.GOOD)
    public = issuer.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey) and response.signature_hash_algorithm is not None
    public.verify(response.signature, response.tbs_response_bytes, ec.ECDSA(response.signature_hash_algorithm))


def test_get_certificate_status_for_an_unknown_issuer_fails(backend):
    stranger = build_iso15118_pki(Generation.ISO2).chain(Role.SECC)
    answer = backend.certificate_status(certificate_hash_data(stranger.leaf.cert, stranger.sub_cas[0].cert).as_ocpp())
    assert answer.status == "Failed" and answer.ocsp_result is None
    assert "no CA this CSMS knows" in answer.detail


def test_certificates_of_the_run_pki_name_the_responder(pki, responder):
    leaf = pki.chain(Role.CONTRACT).leaf.cert
    access = leaf.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    assert [a.access_location.value for a in access] == [responder.ocsp_url]


def test_hash_data_of_another_hierarchy_is_no_contract(backend, pki):
    """The SECC's own chain (V2G root) is known to the CSMS, but a contract leads to an MO root."""
    chain = pki.chain(Role.SECC)
    path = [chain.leaf, *chain.sub_cas, chain.root]
    entries = [certificate_hash_data(c.cert, i.cert).as_ocpp() for c, i in zip(path, path[1:])]
    verdict = backend.check_hash_data(entries)
    assert verdict.certificate_status == "CertChainError" and "not to an MO root" in verdict.detail


def test_get_certificate_status_fails_when_the_responder_does_not_answer_for_the_ca(pki):
    """An unsuccessful OCSP answer (here: unauthorized) is not relayed as if it were one."""
    stranger = build_iso15118_pki(Generation.ISO2)
    silent = RevocationServer([]).start()  # knows no CA: answers "unauthorized"
    try:
        leaf = stranger.chain(Role.SECC)
        backend = PncBackend([], [c.cert for c in stranger.authorities], responders=[silent.ocsp_url])
        entry = certificate_hash_data(leaf.leaf.cert, leaf.sub_cas[0].cert, responder_url=silent.ocsp_url)
        answer = backend.certificate_status(entry.as_ocpp())
    finally:
        silent.stop()
    assert answer.status == "Failed" and answer.ocsp_result is None
    assert "UNAUTHORIZED" in answer.detail


def test_a_stale_ocsp_answer_is_not_relied_on(pki):
    """RFC 6960 4.2.2.1: an answer whose nextUpdate has passed says nothing about now."""
    import datetime as _dt

    from cryptography.hazmat.primitives import hashes

    from harness.pki.revocation import OcspError, ocsp_status

    leaf, issuer = pki.chain(Role.CONTRACT).leaf.cert, pki.issued[Role.MO_SUB_CA_2]
    then = _dt.datetime.now(_dt.timezone.utc) - _dt.timedelta(days=30)
    answer = (ocsp.OCSPResponseBuilder()
              .add_response(leaf, issuer.cert, hashes.SHA256(), ocsp.OCSPCertStatus.GOOD, then,
                            then + _dt.timedelta(days=7), None, None)
              .responder_id(ocsp.OCSPResponderEncoding.HASH, issuer.cert)
              .sign(issuer.key, hashes.SHA256()))
    with pytest.raises(OcspError, match="nextUpdate"):
        ocsp_status(answer, issuer.cert, leaf.serial_number, "http://test")


@pytest.mark.parametrize("version", ["2.0.1", "2.1"])
def test_every_plug_and_charge_answer_satisfies_the_versions_schema(tmp_path, responder, version):
    """The Accepted answers of the Plug & Charge handlers, checked against the OCA schemas of 2.0.1
    and 2.1 (the ocpp package's), as the default-answers test checks the refusals."""
    import asyncio

    from cryptography.hazmat.primitives import hashes

    from harness import exi
    from harness.ocpp import frames
    from harness.ocpp.behaviour import CsmsBehaviour
    from harness.ocpp.endpoint import IncomingCall
    from harness.ocpp.versions import OcppVersion
    from harness.pki.signing import CsrSigner
    from harness.pki.xmldsig import sign_message
    from harness.v2g import messages
    from harness.v2g.credentials import V2gMaterial
    from harness.v2g.pnc import der_b64
    from harness.v2g.provisioning import ContractProvisioning

    material = V2gMaterial.generate(tmp_path, revocation_base_url=responder.base_url)
    responder.authorities.extend(material.authorities())
    iso2 = material.iso2
    backend = PncBackend(material.all_mo_roots(), [a.cert for a in material.authorities()])
    behaviour = CsmsBehaviour(
        pnc=backend,
        signer=CsrSigner(iso2.issued[Role.CPO_SUB_CA_2], (iso2.issued[Role.CPO_SUB_CA_2].cert,
                                                          iso2.issued[Role.CPO_SUB_CA_1].cert)),
        provisioning=ContractProvisioning(material.provisioning().deliver,
                                          oem_roots=[iso2.issued[Role.OEM_ROOT].cert],
                                          mo_roots=material.all_mo_roots(),
                                          authorities=[a.cert for a in material.authorities()]))
    oem = iso2.issued[Role.OEM_PROVISIONING]
    schema = messages.schema_of("iso2", "CertificateInstallationReq")
    installation = sign_message(messages.wrap("iso2", "CertificateInstallationReq", {
        "Id": "id1", "OEMProvisioningCert": der_b64(oem.cert),
        "ListOfRootCertificateIDs": {"RootCertificateID": [{"X509IssuerName": "CN=x", "X509SerialNumber": 1}]}},
        "0102030405060708"), schema, oem.key, elements=("CertificateInstallationReq",))
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder().subject_name(x509.Name([
        x509.NameAttribute(x509.NameOID.COMMON_NAME, "DEHARE1234567"),
        x509.NameAttribute(x509.NameOID.DOMAIN_COMPONENT, "CPO")])).sign(key, hashes.SHA256()))
    requests = {
        "Authorize": {"idToken": {"idToken": EMAID, "type": "eMAID"}, "iso15118CertificateHashData": hash_data(iso2)},
        "GetCertificateStatus": {"ocspRequestData": certificate_hash_data(
            iso2.chain(Role.SECC).leaf.cert, iso2.issued[Role.CPO_SUB_CA_2].cert).as_ocpp()},
        "SignCertificate": {"csr": csr.public_bytes(serialization.Encoding.PEM).decode(),
                            "certificateType": "V2GCertificate"},
        "Get15118EVCertificate": {"iso15118SchemaVersion": "urn:iso:15118:2:2013:MsgDef", "action": "Install",
                                  "exiRequest": base64.b64encode(exi.encode(installation, schema)).decode()},
    }
    ocpp_version = OcppVersion(version)

    class Endpoint:
        station_id, version = "CS1", ocpp_version

        def note(self, *args, **kwargs):
            pass

    for action, request in requests.items():
        frames.validate(action, request, ocpp_version, request=True)
        handler = behaviour.handler(action, ocpp_version)
        assert handler is not None
        answer = asyncio.run(handler(IncomingCall(Endpoint(), "m", action, request))).payload
        frames.validate(action, answer, ocpp_version, request=False)
        assert answer.get("status", answer.get("idTokenInfo", {}).get("status")) == "Accepted", (action, answer)


# -- certificates that name no OCSP responder --------------------------------------------------------

def test_hash_data_without_a_responder_url_is_judged_on_its_chain_and_says_so(backend, pki, responder):
    """A Sub-CA without AIA (test and lab PKIs issue them) arrives with an empty responderURL:
    nothing to ask, so the entry is not refused, and the verdict says its revocation was not
    checked; the entries that name a responder are still asked."""
    data = hash_data(pki)
    data[1]["responderURL"] = ""
    verdict = backend.check_hash_data(data)
    assert verdict.certificate_status == "Accepted", verdict.detail
    assert "revocation not checked for iso15118CertificateHashData[1]" in verdict.detail
    chain = pki.chain(Role.CONTRACT)
    asked = sorted(r.serial_number for r in responder.requests)
    assert asked == sorted([chain.leaf.cert.serial_number, chain.sub_cas[1].cert.serial_number])


def test_a_revoked_contract_is_refused_even_when_a_sub_ca_names_no_responder(backend, pki, responder):
    data = hash_data(pki)
    data[2]["responderURL"] = ""
    responder.revoke(pki.chain(Role.CONTRACT).leaf.cert.serial_number)
    assert backend.check_hash_data(data).certificate_status == "CertificateRevoked"


def test_a_contract_chain_without_aia_is_accepted_with_its_revocation_unchecked(pki):
    """The certificate path (central validation): a contract whose certificates name no responder."""
    root = issue(name("No AIA MO Root"), None, validity=_dt.timedelta(days=30), ca=True,
                 key_usage=PROFILES[Role.MO_ROOT].key_usage)
    contract = issue(name(EMAID, "No AIA MO", domain_component="MO"), root, validity=_dt.timedelta(days=30), ca=False,
                     key_usage=PROFILES[Role.CONTRACT].key_usage)
    verdict = PncBackend([root.cert], []).check_certificate(pem([contract.cert]), EMAID)
    assert verdict.certificate_status == "Accepted", verdict.detail
    assert f"revocation not checked for {EMAID}" in verdict.detail
