"""Every generated ISO 15118 chain follows its profile and verifies, with our validator and with
``openssl verify``."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtensionOID, NameOID

from harness.pki.builder import KeyAlgorithm
from harness.pki.profiles import LEAF_ROLES, PROFILES, Generation, Role
from harness.pki.revocation import ocsp_url_of
from harness.pki.validate import policy_for, validate_chain
from tests.pki.openssl_cli import needs_openssl, verify

LEAVES = [pytest.param(role, id=role.value) for role in LEAF_ROLES]


def _leaves(pki):
    return [r for r in LEAF_ROLES if r in pki.issued]


@pytest.mark.parametrize("role", LEAVES)
def test_each_chain_is_valid_for_our_validator(any_pki, role):
    if role not in any_pki.issued:
        pytest.skip(f"{any_pki.generation.value} has no {role.value} certificate")
    chain = any_pki.chain(role)
    result = validate_chain(chain.presented, [chain.root.cert],
                            policy=policy_for(any_pki.generation, role))
    assert result.ok, str(result)


@needs_openssl
@pytest.mark.parametrize("role", LEAVES)
def test_each_chain_is_valid_for_openssl(any_pki, role, tmp_path):
    if role not in any_pki.issued:
        pytest.skip(f"{any_pki.generation.value} has no {role.value} certificate")
    chain = any_pki.chain(role)
    verdict = verify(tmp_path, chain.presented, [chain.root.cert],
                     suite_b=any_pki.generation is Generation.ISO2)
    assert verdict.ok, verdict.output


def test_chains_run_leaf_sub_ca_2_sub_ca_1(iso2_pki):
    chain = iso2_pki.chain(Role.SECC)
    lengths = [c.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length
               for c in chain.intermediates]
    assert lengths == [0, 1]
    assert chain.root.cert.issuer == chain.root.cert.subject


@pytest.mark.parametrize("role", [pytest.param(r, id=r.value) for r in PROFILES])
def test_certificate_follows_its_profile(any_pki, role):
    if role not in any_pki.issued:
        pytest.skip(f"{any_pki.generation.value} has no {role.value} certificate")
    profile = PROFILES[role]
    cert = any_pki.issued[role].cert
    extensions = cert.extensions
    constraints = extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca == profile.ca
    assert constraints.value.path_length == profile.path_length
    usage = extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical
    assert usage.value.key_cert_sign == profile.key_usage.key_cert_sign
    assert usage.value.digital_signature == profile.key_usage.digital_signature
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == profile.validity
    dc = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.DOMAIN_COMPONENT)]
    assert dc == [profile.domain_component]
    ski = extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert len(ski) == (20 if any_pki.generation is Generation.ISO2 else 8)
    if profile.is_root:
        assert ExtensionOID.AUTHORITY_INFORMATION_ACCESS not in [e.oid for e in extensions]
    else:
        aki = extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
        issuer = any_pki.issued[profile.issuer].cert
        assert aki.key_identifier == issuer.extensions.get_extension_for_class(
            x509.SubjectKeyIdentifier).value.digest
        assert ocsp_url_of(cert) == any_pki.ocsp_url()
    assert KeyAlgorithm.of(cert.public_key()) is any_pki.algorithm


def test_leaf_identities(iso2_pki):
    assert iso2_pki.common_name(Role.SECC) == "DEHARE1234567"
    assert iso2_pki.common_name(Role.CONTRACT) == "DEHARC12345678"
    assert len(iso2_pki.common_name(Role.OEM_PROVISIONING)) == 18


def test_iso20_has_a_vehicle_certificate_and_iso2_does_not(iso2_pki, iso20_pki):
    assert Role.VEHICLE in iso20_pki.issued
    assert Role.VEHICLE not in iso2_pki.issued
