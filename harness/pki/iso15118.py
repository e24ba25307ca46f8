"""The ISO 15118-2 and -20 test PKIs: V2G, MO, OEM and CPS hierarchies built from the profiles.

:func:`build_iso15118_pki` makes one PKI in memory (what tests and the fault catalogue use);
:func:`write_iso15118_pki` puts it on disk with a manifest entry per file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509

from harness.pki.builder import Issued, KeyAlgorithm, issue, name, write_key, write_pem
from harness.pki.manifest import Manifest
from harness.pki.profiles import DEFAULT_EMAID, DEFAULT_EVSE_ID, DEFAULT_PCID, PROFILES, Generation, Role, chain_roles

#: where generated certificates point for revocation status; the responder in
#: :mod:`harness.pki.revocation` serves both paths
DEFAULT_REVOCATION_BASE_URL = "http://127.0.0.1:8880"


@dataclass(frozen=True)
class Chain:
    """A leaf with the Sub-CAs it is presented with (Sub-CA 2, then Sub-CA 1) and its root."""

    leaf: Issued
    sub_cas: tuple[Issued, ...]
    root: Issued

    @property
    def presented(self) -> list[x509.Certificate]:
        """What goes on the wire and into CertificateChain: leaf first, root left out."""
        return [self.leaf.cert, *(s.cert for s in self.sub_cas)]

    @property
    def intermediates(self) -> list[x509.Certificate]:
        return [s.cert for s in self.sub_cas]


@dataclass
class Iso15118Pki:
    generation: Generation
    algorithm: KeyAlgorithm
    revocation_base_url: str
    issued: dict[Role, Issued] = field(default_factory=dict)

    def chain(self, leaf: Role) -> Chain:
        roles = chain_roles(leaf)
        return Chain(self.issued[roles[0]], tuple(self.issued[r] for r in roles[1:-1]),
                     self.issued[roles[-1]])

    def ocsp_url(self) -> str:
        return f"{self.revocation_base_url}/ocsp"

    def crl_url(self, issuer: Role) -> str:
        return f"{self.revocation_base_url}/crl/{self.generation.value}-{issuer.value}.crl"

    @property
    def authorities(self) -> list[Issued]:
        return [i for r, i in self.issued.items() if PROFILES[r].ca]

    def common_name(self, role: Role) -> str:
        return self.issued[role].subject_cn


def build_iso15118_pki(generation: Generation = Generation.ISO2,
                       algorithm: KeyAlgorithm | None = None, *,
                       evse_id: str = DEFAULT_EVSE_ID, emaid: str = DEFAULT_EMAID,
                       pcid: str = DEFAULT_PCID,
                       revocation_base_url: str = DEFAULT_REVOCATION_BASE_URL) -> Iso15118Pki:
    """Every certificate of one ISO 15118 PKI, issued top-down as the profiles say."""
    algorithm = algorithm or generation.algorithms[0]
    if algorithm not in generation.algorithms:
        raise ValueError(f"{generation.value} does not use {algorithm.value} keys")
    pki = Iso15118Pki(generation, algorithm, revocation_base_url)
    identities = {Role.SECC: evse_id, Role.CONTRACT: emaid, Role.OEM_PROVISIONING: pcid}
    suffix = "" if generation is Generation.ISO2 else f" ({generation.value} {algorithm.value})"
    for role in generation.roles:  # PROFILES lists each issuer before what it issues
        profile = PROFILES[role]
        issuer = pki.issued[profile.issuer] if profile.issuer else None
        common_name = identities.get(role) or profile.common_name + (suffix if profile.ca else "")
        crl_url = None
        if profile.revocation_info:
            if profile.issuer is None:
                raise ValueError(f"profile {role.value}: a root has no issuer whose CRL could list it")
            crl_url = pki.crl_url(profile.issuer)
        pki.issued[role] = issue(
            name(common_name, profile.organization, country="DE",
                 domain_component=profile.domain_component),
            issuer, algorithm=algorithm, validity=profile.validity, ca=profile.ca,
            path_length=profile.path_length, key_usage=profile.key_usage,
            ski_method=generation.ski_method,
            ocsp_url=pki.ocsp_url() if profile.revocation_info else None,
            crl_url=crl_url)
    return pki


def write_iso15118_pki(pki: Iso15118Pki, directory: Path, manifest: Manifest, *,
                       password: bytes | None = None) -> None:
    """Each certificate as ``<role>.pem``, its key as ``<role>.key`` (0600), and for every
    leaf ``<role>-chain.pem`` (leaf, Sub-CA 2, Sub-CA 1) as TLS stacks want it."""
    directory.mkdir(parents=True, exist_ok=True)
    for role, issued in pki.issued.items():
        chain = [r.value for r in chain_roles(role)]
        manifest.add_certificate(write_pem(directory / f"{role.value}.pem", issued.cert),
                                 role.value, issued.cert, chain)
        manifest.add_key(write_key(directory / f"{role.value}.key", issued.key, password),
                         role.value, issued.cert, encrypted=password is not None)
        if not PROFILES[role].ca:
            stack = pki.chain(role).presented
            manifest.add_certificate(write_pem(directory / f"{role.value}-chain.pem", *stack),
                                     f"{role.value}-chain", issued.cert, chain)
