"""Certificate profiles of the ISO 15118 PKIs: one table that generation and validation both read.

Sources. ISO 15118-2:2014 Annex F (normative certificate profiles) and ISO 15118-20:2022 Annex B
are not public; the values below are those the standards' public derivatives agree on (the CharIN /
Hubject V2G certificate policy, open test PKIs and the requirement texts quoted in public
implementations):

- V2G root: CA, no path length limit, keyCertSign + cRLSign, valid up to 40 years.
- Sub-CA 1: pathLenConstraint 1, valid up to 4 years; Sub-CA 2: pathLenConstraint 0, 1 to 2 years.
  A chain has at most two Sub-CAs below its root.
- SECC leaf: CN = EVSE ID, DC = CPO, digitalSignature + keyAgreement, valid 2 to 3 months.
- Contract leaf: CN = eMAID, DC = MO, valid 4 weeks to 2 years.
- OEM provisioning leaf: CN = PCID, DC = OEM.
- Every certificate below a root carries an authority information access extension with the OCSP
  responder of its issuer (OCPP's iso15118CertificateHashData.responderURL comes from it), a subject
  and an authority key identifier; basic constraints and key usage are critical.

Not confirmed from the standard text (chosen, and said so where used): the DC of CA certificates
(we use the PKI's name: V2G, MO, OEM), the exact key usage of the contract and CPS leaves (we use
digitalSignature + nonRepudiation + keyAgreement for the contract, since its key signs
AuthorizationReq and takes part in ECDH for CertificateUpdate; digitalSignature for the CPS leaf),
the CRL distribution point (we add one next to the OCSP URL so CRL checking can be exercised), and
the -20 vehicle certificate's CN and DC.

ISO 15118-20 differences: keys are secp521r1 (default, [V2G20-2674]) or Ed448 ([V2G20-2319]) and
the subject key identifier is 8 bytes: [V2G20-2492] builds the contract key AAD from the SKI as 16
hex digits, which is RFC 5280's method 2.
"""

from __future__ import annotations

import datetime as _dt
import enum
from dataclasses import dataclass

from harness.pki.builder import CA_KEY_USAGE, KeyAlgorithm, KeyUsage, SubjectKeyIdMethod

DAY = _dt.timedelta(days=1)
YEAR = 365 * DAY


class Role(enum.Enum):
    """What a certificate is for, in the standards' words."""

    V2G_ROOT = "v2g-root"
    CPO_SUB_CA_1 = "cpo-sub-ca-1"
    CPO_SUB_CA_2 = "cpo-sub-ca-2"
    SECC = "secc"
    MO_ROOT = "mo-root"
    MO_SUB_CA_1 = "mo-sub-ca-1"
    MO_SUB_CA_2 = "mo-sub-ca-2"
    CONTRACT = "contract"
    OEM_ROOT = "oem-root"
    OEM_SUB_CA_1 = "oem-sub-ca-1"
    OEM_SUB_CA_2 = "oem-sub-ca-2"
    OEM_PROVISIONING = "oem-provisioning"
    VEHICLE = "vehicle"  # ISO 15118-20: the EVCC's TLS client certificate
    CPS_SUB_CA_1 = "cps-sub-ca-1"
    CPS_SUB_CA_2 = "cps-sub-ca-2"
    CPS = "cps"


@dataclass(frozen=True)
class CertificateProfile:
    role: Role
    common_name: str
    organization: str
    domain_component: str | None
    validity: _dt.timedelta
    ca: bool
    path_length: int | None
    key_usage: KeyUsage
    issuer: Role | None            # None: self-signed root
    revocation_info: bool = True   # AIA OCSP URL and CRL distribution point

    @property
    def is_root(self) -> bool:
        return self.issuer is None


def _root(role, cn, org, dc, years=40):
    return CertificateProfile(role, cn, org, dc, years * YEAR, True, None, CA_KEY_USAGE, None,
                              revocation_info=False)


def _sub1(role, cn, org, dc, issuer, years=4):
    return CertificateProfile(role, cn, org, dc, years * YEAR, True, 1, CA_KEY_USAGE, issuer)


def _sub2(role, cn, org, dc, issuer, years=2):
    return CertificateProfile(role, cn, org, dc, years * YEAR, True, 0, CA_KEY_USAGE, issuer)


_TLS = KeyUsage(digital_signature=True, key_agreement=True)
_CONTRACT = KeyUsage(digital_signature=True, non_repudiation=True, key_agreement=True)
_SIGNING = KeyUsage(digital_signature=True)

#: identities the generated leaves carry (overridable when generating)
DEFAULT_EVSE_ID = "DEHARE1234567"      # ISO 15118-2 EVSE ID without separators
DEFAULT_EMAID = "DEHARC12345678"       # country, provider, "C", 8-character instance
DEFAULT_PCID = "HARPCID00000000001"    # 18 characters, as [V2G20-2492] counts them
DEFAULT_VIN = "WHARNESS000000001"

PROFILES: dict[Role, CertificateProfile] = {p.role: p for p in (
    _root(Role.V2G_ROOT, "Harness V2G Root CA", "Harness V2G", "V2G"),
    _sub1(Role.CPO_SUB_CA_1, "Harness CPO Sub-CA 1", "Harness CPO", "V2G", Role.V2G_ROOT),
    _sub2(Role.CPO_SUB_CA_2, "Harness CPO Sub-CA 2", "Harness CPO", "V2G", Role.CPO_SUB_CA_1, years=1),
    CertificateProfile(Role.SECC, DEFAULT_EVSE_ID, "Harness CPO", "CPO", 60 * DAY, False, None,
                       _TLS, Role.CPO_SUB_CA_2),
    _root(Role.MO_ROOT, "Harness MO Root CA", "Harness MO", "MO"),
    _sub1(Role.MO_SUB_CA_1, "Harness MO Sub-CA 1", "Harness MO", "MO", Role.MO_ROOT),
    _sub2(Role.MO_SUB_CA_2, "Harness MO Sub-CA 2", "Harness MO", "MO", Role.MO_SUB_CA_1),
    CertificateProfile(Role.CONTRACT, DEFAULT_EMAID, "Harness MO", "MO", 2 * YEAR, False, None,
                       _CONTRACT, Role.MO_SUB_CA_2),
    _root(Role.OEM_ROOT, "Harness OEM Root CA", "Harness OEM", "OEM"),
    _sub1(Role.OEM_SUB_CA_1, "Harness OEM Sub-CA 1", "Harness OEM", "OEM", Role.OEM_ROOT),
    _sub2(Role.OEM_SUB_CA_2, "Harness OEM Sub-CA 2", "Harness OEM", "OEM", Role.OEM_SUB_CA_1),
    CertificateProfile(Role.OEM_PROVISIONING, DEFAULT_PCID, "Harness OEM", "OEM", 4 * YEAR, False,
                       None, _TLS, Role.OEM_SUB_CA_2),
    CertificateProfile(Role.VEHICLE, DEFAULT_VIN, "Harness OEM", "OEM", 4 * YEAR, False, None,
                       _TLS, Role.OEM_SUB_CA_2),
    _sub1(Role.CPS_SUB_CA_1, "Harness CPS Sub-CA 1", "Harness CPS", "V2G", Role.V2G_ROOT),
    _sub2(Role.CPS_SUB_CA_2, "Harness CPS Sub-CA 2", "Harness CPS", "V2G", Role.CPS_SUB_CA_1),
    CertificateProfile(Role.CPS, "Harness CPS Leaf", "Harness CPS", "CPS", 90 * DAY, False, None,
                       _SIGNING, Role.CPS_SUB_CA_2),
)}

#: the leaf roles and what each is for; the chain of each runs leaf, Sub-CA 2, Sub-CA 1, root
LEAF_ROLES: tuple[Role, ...] = (Role.SECC, Role.CONTRACT, Role.OEM_PROVISIONING, Role.CPS,
                                Role.VEHICLE)


class Generation(enum.Enum):
    """Which ISO 15118 part a PKI is for, with the crypto that part prescribes."""

    ISO2 = "iso2"
    ISO20 = "iso20"

    @property
    def ski_method(self) -> SubjectKeyIdMethod:
        return SubjectKeyIdMethod.SHA1 if self is Generation.ISO2 else SubjectKeyIdMethod.SHA1_64

    @property
    def algorithms(self) -> tuple[KeyAlgorithm, ...]:
        """Key algorithms a relying party of this part accepts."""
        if self is Generation.ISO2:
            return (KeyAlgorithm.SECP256R1,)
        return (KeyAlgorithm.SECP521R1, KeyAlgorithm.ED448)

    @property
    def roles(self) -> tuple[Role, ...]:
        # -2 has no separate vehicle certificate: the EVCC is not authenticated in TLS
        return tuple(r for r in PROFILES if not (self is Generation.ISO2 and r is Role.VEHICLE))


def chain_roles(leaf: Role) -> list[Role]:
    """The roles from ``leaf`` up to its root, leaf first."""
    roles = [leaf]
    while (issuer := PROFILES[roles[-1]].issuer) is not None:
        roles.append(issuer)
    return roles


def same_emaid(a: str, b: str) -> bool:
    """Whether two spellings name one eMAID: ISO 15118-2 Annex H writes it with or without the
    separators "-" (and "*" in DIN SPEC 91286), in either letter case."""
    def normal(emaid: str) -> str:
        return emaid.replace("-", "").replace("*", "").upper()
    return normal(a) == normal(b)

