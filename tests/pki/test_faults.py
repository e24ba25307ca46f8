"""Every catalogued fault is refused, by our validator with the fault's reason and by OpenSSL
with the matching X509_V_ERR code (or, where ``openssl verify`` has no such rule, by the OpenSSL
tool that can see the defect)."""

from __future__ import annotations

import pytest

from harness.pki.faults import CATALOGUE, ChainUnderTest, Fault, fault_params
from harness.pki.profiles import DEFAULT_EMAID, Role
from harness.pki.revocation import OcspClient, RevocationServer
from harness.pki.validate import policy_for, validate_chain
from tests.pki.openssl_cli import needs_openssl, ocsp_status, subject_rfc2253, verify, verify_each_issued_by_next

#: X509_V_ERR codes `openssl verify` reports for each fault (x509_vfy.h)
OPENSSL_ERRORS: dict[str, set[int]] = {
    "expired-leaf": {10}, "expired-sub-ca-2": {10},             # CERT_HAS_EXPIRED
    "not-yet-valid-leaf": {9},                                   # CERT_NOT_YET_VALID
    "bad-signature-leaf": {7}, "bad-signature-sub-ca-1": {7},    # CERT_SIGNATURE_FAILURE
    "untrusted-root": {20}, "untrusted-root-same-name": {20},    # UNABLE_TO_GET_ISSUER_CERT_LOCALLY
    "missing-sub-ca-1": {20}, "missing-sub-ca-2": {20},
    "revoked-by-crl-leaf": {23},                                 # CERT_REVOKED
    "wrong-key-usage-leaf": {26},                                # INVALID_PURPOSE
    "wrong-key-usage-sub-ca-2": {32, 79},                        # KEYUSAGE_NO_CERTSIGN / INVALID_CA
    "path-length-exceeded": {25},                                # PATH_LENGTH_EXCEEDED
    "wrong-curve-leaf": {60},                                    # SUITE_B_INVALID_CURVE
    "wrong-signature-hash-leaf": {59},                    # SUITE_B_INVALID_SIGNATURE_ALGORITHM
    "contract-cn-not-emaid": {62},                               # HOSTNAME_MISMATCH
}
#: faults `openssl verify` cannot see, and the OpenSSL tool each test uses instead
OTHER_OPENSSL_CHECKS = {"wrong-intermediate-order", "revoked-by-ocsp-leaf", "secc-without-dc-cpo"}

PURPOSE = {Role.SECC: "sslserver", Role.CONTRACT: "sslclient"}


def test_every_fault_has_an_openssl_check():
    assert {f.id for f in CATALOGUE} == set(OPENSSL_ERRORS) | OTHER_OPENSSL_CHECKS


def _case(pki, role: Role, fault: Fault) -> ChainUnderTest:
    return fault.apply(pki.chain(role), emaid=DEFAULT_EMAID if role is Role.CONTRACT else None)


def _our_verdict(pki, role, case: ChainUnderTest):
    policy = policy_for(pki.generation, role, common_name=case.emaid)
    with RevocationServer(pki.authorities, revoked=case.ocsp_revoked) as responder:
        return validate_chain(case.certificates, case.anchors, policy=policy, crls=case.crls,
                              ocsp=OcspClient(responder.ocsp_url))


@pytest.mark.parametrize("fault", fault_params(role=Role.SECC))
def test_secc_chain_fault_refused_by_our_validator(iso2_pki, fault):
    result = _our_verdict(iso2_pki, Role.SECC, _case(iso2_pki, Role.SECC, fault))
    assert result.reason is fault.reason, str(result)


@pytest.mark.parametrize("fault", fault_params(role=Role.CONTRACT))
def test_contract_chain_fault_refused_by_our_validator(iso2_pki, fault):
    result = _our_verdict(iso2_pki, Role.CONTRACT, _case(iso2_pki, Role.CONTRACT, fault))
    assert result.reason is fault.reason, str(result)


@pytest.mark.parametrize("fault", fault_params(role=Role.SECC))
@pytest.mark.parametrize("pki_name", ["iso20_pki", "iso20_ed448_pki"])
def test_iso20_secc_chain_fault_refused_by_our_validator(request, pki_name, fault):
    pki = request.getfixturevalue(pki_name)
    if fault.id.startswith("wrong-signature-hash") and pki_name == "iso20_ed448_pki":
        pytest.skip("EdDSA signs without a separate hash; there is no wrong one to choose")
    result = _our_verdict(pki, Role.SECC, _case(pki, Role.SECC, fault))
    assert result.reason is fault.reason, str(result)


@needs_openssl
@pytest.mark.parametrize("role", [Role.SECC, Role.CONTRACT], ids=lambda r: r.value)
@pytest.mark.parametrize("fault", fault_params())
def test_fault_refused_by_openssl(iso2_pki, role, fault, tmp_path):
    if not fault.applies_to(role):
        pytest.skip(f"{fault.id} is not a defect of a {role.value} certificate")
    case = _case(iso2_pki, role, fault)
    if fault.id == "wrong-intermediate-order":
        verdict = verify_each_issued_by_next(tmp_path, case.certificates)
        assert not verdict.ok and set(verdict.errors) <= {2, 20}, verdict.output
    elif fault.id == "revoked-by-ocsp-leaf":
        chain = iso2_pki.chain(role)
        with RevocationServer(iso2_pki.authorities, revoked=case.ocsp_revoked) as responder:
            assert ocsp_status(tmp_path, case.leaf.cert, chain.sub_cas[0].cert,
                               responder.ocsp_url) == "revoked"
    elif fault.id == "secc-without-dc-cpo":
        assert "DC=CPO" not in subject_rfc2253(tmp_path, case.leaf.cert).split(",")
    else:
        verdict = verify(tmp_path, case.certificates, case.anchors, crls=case.crls,
                         hostname=case.emaid, purpose=PURPOSE[role], suite_b=True)
        assert not verdict.ok, verdict.output
        assert verdict.errors and verdict.errors[0] in OPENSSL_ERRORS[fault.id], verdict.output


@needs_openssl
def test_openssl_checks_accept_the_good_chains(iso2_pki, tmp_path):
    """The OpenSSL side checks themselves say yes to good material (else a refusal means little)."""
    for role in (Role.SECC, Role.CONTRACT):
        chain = iso2_pki.chain(role)
        emaid = DEFAULT_EMAID if role is Role.CONTRACT else None
        assert verify(tmp_path / role.value, chain.presented, [chain.root.cert], hostname=emaid,
                      purpose=PURPOSE[role], suite_b=True).ok
        assert verify_each_issued_by_next(tmp_path / role.value, chain.presented).ok
        with RevocationServer(iso2_pki.authorities) as responder:
            assert ocsp_status(tmp_path / role.value, chain.leaf.cert, chain.sub_cas[0].cert,
                               responder.ocsp_url) == "good"
    assert "DC=CPO" in subject_rfc2253(tmp_path, iso2_pki.chain(Role.SECC).leaf.cert).split(",")


def test_faults_are_small_changes(iso2_pki):
    """A fault changes what it names and keeps the rest: an expired leaf keeps subject and key."""
    chain = iso2_pki.chain(Role.SECC)
    case = CATALOGUE[0].apply(chain)
    assert case.leaf.cert.subject == chain.leaf.cert.subject
    assert case.leaf.cert.public_key() == chain.leaf.cert.public_key()
    assert case.certificates[1:] == chain.intermediates

