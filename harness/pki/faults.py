"""The catalogue of faulty certificates: each fault is one small, named transformation of a good
chain, and says which :class:`~harness.pki.validate.Reason` a relying party must refuse it for.

Faults are parametrizable factories (``expired(days=30, target=SUB_CA_2)``); :data:`CATALOGUE`
holds one of each with its default parameters, and :func:`fault_params` turns faults into pytest
parameters whose ids read like the defect (``expired-leaf``, ``revoked-by-ocsp``)::

    @pytest.mark.parametrize("fault", fault_params(CATALOGUE, role=Role.SECC))
    def test_secc_refuses(fault, iso2_pki): ...
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field, replace
from typing import Callable, Iterable

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

from harness.pki.builder import CA_KEY_USAGE, Issued, KeyAlgorithm, KeyUsage, attribute_text, issue, name, now, reissue
from harness.pki.iso15118 import Chain
from harness.pki.profiles import DEFAULT_EMAID, Role
from harness.pki.revocation import build_crl
from harness.pki.validate import Reason

LEAF, SUB_CA_2, SUB_CA_1 = "leaf", "sub-ca-2", "sub-ca-1"
_POSITION = {LEAF: 0, SUB_CA_2: 1, SUB_CA_1: 2}


@dataclass(frozen=True)
class ChainUnderTest:
    """What a relying party is shown and what it knows: the chain as presented (leaf first),
    the roots it trusts, the CRLs it has, the serials the OCSP responder reports revoked, and the
    eMAID of the message the chain came with."""

    presented: tuple[Issued, ...]
    anchors: tuple[x509.Certificate, ...]
    crls: tuple[x509.CertificateRevocationList, ...] = ()
    ocsp_revoked: frozenset[int] = frozenset()
    emaid: str | None = None

    @property
    def leaf(self) -> Issued:
        return self.presented[0]

    @property
    def certificates(self) -> list[x509.Certificate]:
        return [i.cert for i in self.presented]

    @classmethod
    def of(cls, chain: Chain, *, emaid: str | None = None) -> "ChainUnderTest":
        return cls((chain.leaf, *chain.sub_cas), (chain.root.cert,), emaid=emaid)


@dataclass(frozen=True)
class Fault:
    """A named defect: ``apply`` turns a good chain into one that has it."""

    id: str
    reason: Reason
    description: str
    transform: Callable[[Chain, ChainUnderTest], ChainUnderTest] = field(repr=False)
    #: the leaf roles the fault makes sense for (None: any)
    roles: frozenset[Role] | None = None

    def __str__(self) -> str:
        """How a report names the fault: its id and what it is."""
        return f"{self.id}: {self.description}"

    def apply(self, chain: Chain, *, emaid: str | None = None) -> ChainUnderTest:
        return self.transform(chain, ChainUnderTest.of(chain, emaid=emaid))

    def applies_to(self, role: Role) -> bool:
        return self.roles is None or role in self.roles


def _replace_at(case: ChainUnderTest, target: str, issued: Issued) -> ChainUnderTest:
    presented = list(case.presented)
    presented[_POSITION[target]] = issued
    return replace(case, presented=tuple(presented))


def _issuer_of(chain: Chain, target: str) -> Issued:
    above = [chain.leaf, *chain.sub_cas, chain.root]
    return above[_POSITION[target] + 1]


# -- validity ------------------------------------------------------------------------------------

def expired(*, days: int = 1, target: str = LEAF) -> Fault:
    """notAfter ``days`` in the past (the rest of the certificate unchanged)."""
    def transform(chain, case):
        original = case.presented[_POSITION[target]]
        end = now() - _dt.timedelta(days=days)
        lifetime = original.cert.not_valid_after_utc - original.cert.not_valid_before_utc
        return _replace_at(case, target, reissue(original, _issuer_of(chain, target),
                                                 not_before=end - lifetime, not_after=end))
    return Fault(f"expired-{target}", Reason.EXPIRED,
                 f"{target} expired {days} day(s) ago", transform)


def not_yet_valid(*, days: int = 1, target: str = LEAF) -> Fault:
    """notBefore ``days`` in the future."""
    def transform(chain, case):
        original = case.presented[_POSITION[target]]
        start = now() + _dt.timedelta(days=days)
        lifetime = original.cert.not_valid_after_utc - original.cert.not_valid_before_utc
        return _replace_at(case, target, reissue(original, _issuer_of(chain, target),
                                                 not_before=start, not_after=start + lifetime))
    return Fault(f"not-yet-valid-{target}", Reason.NOT_YET_VALID,
                 f"{target} becomes valid in {days} day(s)", transform)


# -- signature and trust -------------------------------------------------------------------------

def bad_signature(*, target: str = LEAF) -> Fault:
    """One bit of the to-be-signed part flipped after signing (in the serial number), so the
    certificate still parses but its signature no longer matches."""
    def transform(chain, case):
        original = case.presented[_POSITION[target]]
        return _replace_at(case, target, Issued(tamper_tbs(original.cert), original.key))
    return Fault(f"bad-signature-{target}", Reason.BAD_SIGNATURE,
                 f"{target} TBS tampered after signing", transform)


def tamper_tbs(cert: x509.Certificate) -> x509.Certificate:
    der = bytearray(cert.public_bytes(Encoding.DER))
    offset = _serial_last_byte(bytes(der))
    der[offset] ^= 0x01
    return x509.load_der_x509_certificate(bytes(der))


def untrusted_root(*, same_name: bool = False) -> Fault:
    """The whole chain re-issued under a root the relying party does not trust; with
    ``same_name`` the impostor root copies the trusted root's name (only its key differs)."""
    def transform(chain, case):
        good = [chain.root, *reversed(chain.sub_cas), chain.leaf]
        rogue_root = reissue(chain.root, None, key=chain.root.algorithm.generate(),
                             subject=None if same_name else _renamed(chain.root.cert.subject))
        issued = [rogue_root]
        for original in good[1:]:
            issued.append(reissue(original, issued[-1], key=original.algorithm.generate(),
                                  subject=None if same_name or original is chain.leaf
                                  else _renamed(original.cert.subject)))
        return replace(case, presented=tuple(reversed(issued[1:])))
    suffix = "-same-name" if same_name else ""
    return Fault(f"untrusted-root{suffix}", Reason.UNTRUSTED_ROOT,
                 "chain issued by a root the relying party does not trust", transform)


def missing_intermediate(*, which: str = SUB_CA_1) -> Fault:
    """A Sub-CA left out of the presented chain."""
    def transform(chain, case):
        presented = [c for i, c in enumerate(case.presented) if i != _POSITION[which]]
        return replace(case, presented=tuple(presented))
    return Fault(f"missing-{which}", Reason.MISSING_INTERMEDIATE,
                 f"{which} not presented", transform)


def wrong_intermediate_order() -> Fault:
    """Sub-CA 1 sent before Sub-CA 2."""
    def transform(chain, case):
        leaf, *subs = case.presented
        return replace(case, presented=(leaf, *reversed(subs)))
    return Fault("wrong-intermediate-order", Reason.WRONG_ORDER,
                 "leaf, Sub-CA 1, Sub-CA 2 instead of leaf, Sub-CA 2, Sub-CA 1", transform)


# -- revocation ----------------------------------------------------------------------------------

def revoked_by_ocsp(*, target: str = LEAF) -> Fault:
    """The OCSP responder answers "revoked" for the certificate."""
    def transform(chain, case):
        serial = case.presented[_POSITION[target]].cert.serial_number
        return replace(case, ocsp_revoked=case.ocsp_revoked | {serial})
    return Fault(f"revoked-by-ocsp-{target}", Reason.REVOKED,
                 f"{target} revoked, known through OCSP", transform)


def revoked_by_crl(*, target: str = LEAF) -> Fault:
    """The issuer's CRL lists the certificate."""
    def transform(chain, case):
        revoked = case.presented[_POSITION[target]].cert
        crl = build_crl(_issuer_of(chain, target), [revoked.serial_number])
        return replace(case, crls=case.crls + (crl,))
    return Fault(f"revoked-by-crl-{target}", Reason.REVOKED,
                 f"{target} listed in its issuer's CRL", transform)


# -- profile violations --------------------------------------------------------------------------

def wrong_key_usage(*, target: str = LEAF) -> Fault:
    """A leaf whose key may only make non-repudiation signatures (no digitalSignature, no
    keyAgreement, so no TLS and no message signing), or a Sub-CA without keyCertSign."""
    usage = KeyUsage(non_repudiation=True) if target == LEAF else KeyUsage(crl_sign=True)

    def transform(chain, case):
        original = case.presented[_POSITION[target]]
        return _replace_at(case, target, reissue(
            original, _issuer_of(chain, target), drop=[x509.KeyUsage],
            change=lambda b: b.add_extension(usage.extension(), critical=True)))
    return Fault(f"wrong-key-usage-{target}", Reason.KEY_USAGE,
                 f"{target} key usage {'lacks digitalSignature' if target == LEAF else 'lacks keyCertSign'}",
                 transform)


def path_length_exceeded() -> Fault:
    """A third CA slipped in below Sub-CA 2, whose pathLenConstraint is 0."""
    def transform(chain, case):
        sub_ca_2 = chain.sub_cas[0]
        extra = issue(name("Harness Unexpected Sub-CA 3", "Harness", country="DE"), sub_ca_2,
                      algorithm=sub_ca_2.algorithm, validity=_dt.timedelta(days=365), ca=True,
                      path_length=None, key_usage=CA_KEY_USAGE)
        leaf = reissue(chain.leaf, extra)
        return replace(case, presented=(leaf, extra, *case.presented[1:]))
    return Fault("path-length-exceeded", Reason.PATH_LENGTH,
                 "an extra CA below Sub-CA 2 (pathLenConstraint 0)", transform)


def wrong_curve(*, algorithm: KeyAlgorithm | None = None, target: str = LEAF) -> Fault:
    """A key on a curve (or of an algorithm) the ISO 15118 part does not allow; by default
    secp384r1 in a P-256 chain and secp256r1 in a -20 chain."""
    def transform(chain, case):
        original = case.presented[_POSITION[target]]
        chosen = algorithm or (KeyAlgorithm.SECP384R1 if original.algorithm is KeyAlgorithm.SECP256R1
                               else KeyAlgorithm.SECP256R1)
        return _replace_at(case, target, reissue(original, _issuer_of(chain, target),
                                                 key=chosen.generate()))
    label = algorithm.value if algorithm else "curve"
    return Fault(f"wrong-{label}-{target}", Reason.ALGORITHM,
                 f"{target} key on a curve the standard does not use", transform)


def wrong_signature_hash(*, hash_algorithm: hashes.HashAlgorithm | None = None,
                         target: str = LEAF) -> Fault:
    """Signed by the right key with the wrong hash: by default ECDSA-SHA512 from a P-256 issuer,
    ECDSA-SHA256 from a P-521 one. (EdDSA has no separate hash, so Ed448 chains cannot have it.)"""
    def transform(chain, case):
        issuer = _issuer_of(chain, target)
        if issuer.algorithm is KeyAlgorithm.ED448:
            raise ValueError("an Ed448 issuer signs without a separate hash")
        chosen = hash_algorithm or (hashes.SHA512() if issuer.algorithm is KeyAlgorithm.SECP256R1
                                    else hashes.SHA256())
        original = case.presented[_POSITION[target]]
        return _replace_at(case, target, reissue(original, issuer, signature_hash=chosen))
    label = hash_algorithm.name if hash_algorithm else "hash"
    return Fault(f"wrong-signature-{label}-{target}", Reason.ALGORITHM,
                 f"{target} signed with a hash its issuer's curve does not use", transform)


def contract_cn_not_emaid(*, emaid_in_message: str = DEFAULT_EMAID,
                          certificate_emaid: str = "DEHARC87654321") -> Fault:
    """A contract certificate for another eMAID than the one the message claims."""
    def transform(chain, case):
        leaf = chain.leaf
        subject = x509.Name([x509.NameAttribute(a.oid, certificate_emaid)
                             if a.oid == x509.NameOID.COMMON_NAME else a for a in leaf.cert.subject])
        return replace(_replace_at(case, LEAF, reissue(leaf, chain.sub_cas[0], subject=subject)),
                       emaid=emaid_in_message)
    return Fault("contract-cn-not-emaid", Reason.COMMON_NAME,
                 "contract certificate CN differs from the eMAID in the message", transform,
                 roles=frozenset({Role.CONTRACT}))


def secc_without_dc_cpo(*, domain_component: str | None = None) -> Fault:
    """An SECC certificate whose subject has no DC=CPO (none at all, or ``domain_component``)."""
    def transform(chain, case):
        leaf = chain.leaf
        attributes = [a for a in leaf.cert.subject if a.oid != x509.NameOID.DOMAIN_COMPONENT]
        if domain_component:
            attributes.append(x509.NameAttribute(x509.NameOID.DOMAIN_COMPONENT, domain_component))
        return _replace_at(case, LEAF, reissue(leaf, chain.sub_cas[0],
                                               subject=x509.Name(attributes)))
    suffix = f"-dc-{domain_component.lower()}" if domain_component else ""
    return Fault(f"secc-without-dc-cpo{suffix}", Reason.DOMAIN_COMPONENT,
                 "SECC certificate subject without DC=CPO", transform,
                 roles=frozenset({Role.SECC}))


#: one of each fault with default parameters; parametrize further where a test needs it
CATALOGUE: tuple[Fault, ...] = (
    expired(),
    expired(target=SUB_CA_2),
    not_yet_valid(),
    bad_signature(),
    bad_signature(target=SUB_CA_1),
    untrusted_root(),
    untrusted_root(same_name=True),
    missing_intermediate(),
    missing_intermediate(which=SUB_CA_2),
    wrong_intermediate_order(),
    revoked_by_ocsp(),
    revoked_by_crl(),
    wrong_key_usage(),
    wrong_key_usage(target=SUB_CA_2),
    path_length_exceeded(),
    wrong_curve(),
    wrong_signature_hash(),
    contract_cn_not_emaid(),
    secc_without_dc_cpo(),
)


def fault_params(faults: Iterable[Fault] = CATALOGUE, *, role: Role | None = None):
    """pytest parameters, one per fault that applies to ``role``, with the fault's id."""
    import pytest  # only tests call this

    return [pytest.param(f, id=f.id) for f in faults if role is None or f.applies_to(role)]


def _renamed(subject: x509.Name) -> x509.Name:
    return x509.Name([x509.NameAttribute(a.oid, f"Rogue {attribute_text(a)}")
                      if a.oid == x509.NameOID.COMMON_NAME else a for a in subject])



def _serial_last_byte(der: bytes) -> int:
    """Offset of the last byte of the serialNumber in a DER certificate."""
    def header(offset: int) -> tuple[int, int]:  # (offset of content, content length)
        length = der[offset + 1]
        if length < 0x80:
            return offset + 2, length
        count = length & 0x7F
        return offset + 2 + count, int.from_bytes(der[offset + 2:offset + 2 + count], "big")

    tbs, _ = header(0)             # Certificate SEQUENCE -> its content starts with TBS
    field_at, _ = header(tbs)      # TBSCertificate SEQUENCE content
    if der[field_at] == 0xA0:      # [0] version
        content, length = header(field_at)
        field_at = content + length
    content, length = header(field_at)  # serialNumber INTEGER
    return content + length - 1
