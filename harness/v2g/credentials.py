"""The ISO 15118 certificates an emulated rig's EV and EVSE use, from one generated PKI per
generation (ISO 15118-2 on secp256r1, -20 on secp521r1), and the TLS contexts built from them.

A lab EV or EVSE brings its own material; on an emulated rig both sides are the harness's, so
they share the run's generated PKI (``<run dir>/pki/iso15118``), and every TLS context writes its
NSS key log next to the captures.

One TLS port serves both generations: ISO 15118-2 wants TLS 1.2 with the secp256r1 SECC chain,
-20 TLS 1.3 with the secp521r1 chain and the EVCC's vehicle certificate. The SECC chooses from each
EV's ClientHello (:class:`harness.v2g.secc_tls.SeccTls`); the EV offers the TLS versions of the
protocols it offers and trusts the V2G roots of those generations (:meth:`V2gMaterial.evcc_context`).
"""

from __future__ import annotations

import datetime as _dt
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from harness.pki import tls
from harness.pki.builder import Issued, KeyAlgorithm, issue, name, write_key, write_pem
from harness.pki.contract_key import encrypt_iso2, encrypt_iso20
from harness.pki.faults import CATALOGUE
from harness.pki.files import CertificateFileError, load_certificates, load_private_key
from harness.pki.iso15118 import DEFAULT_REVOCATION_BASE_URL, Iso15118Pki, build_iso15118_pki, write_iso15118_pki
from harness.pki.manifest import Manifest
from harness.pki.profiles import DEFAULT_EMAID, DEFAULT_EVSE_ID, PROFILES, Generation, Role, chain_roles
from harness.v2g.pnc import ContractDelivery, common_name
from harness.v2g.sap import pki_generation
from harness.v2g.secc_tls import SeccTls
from harness.v2g.vehicle import Credentials
from harness.verdicts import NotApplicable


@dataclass
class V2gMaterial:
    directory: Path
    iso2: Iso15118Pki
    iso20: Iso15118Pki
    keylog: Path | None = None
    #: where each generation's files are, when not <directory>/iso2 and <directory>/iso20
    folders: dict | None = None

    @classmethod
    def generate(cls, directory: Path, *, evse_id: str = DEFAULT_EVSE_ID, keylog: Path | None = None,
                 revocation_base_url: str = DEFAULT_REVOCATION_BASE_URL) -> "V2gMaterial":
        """Both generations' PKIs; ``revocation_base_url``: where their OCSP responder and CRLs are
        (the AIA and CRL distribution point of every certificate below a root)."""
        directory = Path(directory)
        manifest = Manifest(directory)
        iso2 = build_iso15118_pki(Generation.ISO2, evse_id=evse_id, revocation_base_url=revocation_base_url)
        iso20 = build_iso15118_pki(Generation.ISO20, KeyAlgorithm.SECP521R1, evse_id=evse_id,
                                   revocation_base_url=revocation_base_url)
        write_iso15118_pki(iso2, directory / "iso2", manifest)
        write_iso15118_pki(iso20, directory / "iso20", manifest)
        untrusted = build_iso15118_pki(Generation.ISO2, evse_id=evse_id)  # a V2G root nobody trusts
        write_iso15118_pki(untrusted, directory / "untrusted", manifest)
        manifest.write()
        return cls(directory, iso2, iso20, keylog)

    @classmethod
    def load(cls, directory: Path, *, keylog: Path | None = None, password: bytes | None = None) -> "V2gMaterial":
        """Material in the layout :meth:`generate` writes (or ``harness certs generate``'s iso2/ and
        iso20-secp521r1/ folders under the same names). A lab's folder may hold one generation
        only, and the keys of its own leaves only: a CA key is loaded where it is present and
        readable (``password`` for encrypted keys), a leaf key must open. What a role then lacks
        is named when it asks (:meth:`ev_credentials`, :meth:`secc_tls`); CertificateFileError
        names the file."""
        directory = Path(directory)
        parts: dict[Generation, tuple[Path | None, Iso15118Pki]] = {}
        for generation, folders in ((Generation.ISO2, ("iso2",)), (Generation.ISO20, ("iso20", "iso20-secp521r1"))):
            folder = next((directory / f for f in folders if (directory / f).is_dir()), None)
            pki = Iso15118Pki(generation, generation.algorithms[0] if generation is Generation.ISO2
                              else KeyAlgorithm.SECP521R1, "")
            for role in generation.roles if folder is not None else ():
                assert folder is not None
                pem, key = folder / f"{role.value}.pem", folder / f"{role.value}.key"
                if not pem.is_file() and not PROFILES[role].ca:
                    pem = folder / f"{role.value}-chain.pem"  # a leaf given only with its chain
                if not (pem.is_file() and key.is_file()):
                    continue
                try:
                    pki.issued[role] = Issued(load_certificates(pem)[0], load_private_key(key, password))
                except CertificateFileError:
                    if not PROFILES[role].ca:
                        raise  # a leaf's key is what its role uses
            parts[generation] = (folder, pki)
        if all(folder is None for folder, _ in parts.values()):
            raise CertificateFileError(directory, "no iso2, iso20 or iso20-secp521r1 folder of ISO 15118 certificates")
        return cls(directory, parts[Generation.ISO2][1], parts[Generation.ISO20][1], keylog,
                   {"iso2": parts[Generation.ISO2][0], "iso20": parts[Generation.ISO20][0]})

    def has(self, generation: str) -> bool:
        """Whether the material has a folder (or generated PKI) for ``generation``."""
        if self.folders is None:
            return True
        return self.folders.get(pki_generation(generation)) is not None

    def _pki(self, generation: str) -> Iso15118Pki:
        return self.iso20 if generation == "iso20" else self.iso2

    def path(self, generation: str, filename: str) -> Path:
        folders = self.folders or {}
        folder = folders.get(generation) or self.directory / pki_generation(generation)
        return folder / filename

    # -- TLS --------------------------------------------------------------------------------

    def secc_tls(self) -> SeccTls:
        """The SECC's TLS: the -2 chain (TLS 1.2; TLS 1.3 for an EV that names the -2 root and
        offers nothing older) and the -20 chain (TLS 1.3, the vehicle certificate verified against
        the OEM root), chosen from each ClientHello."""
        found = SeccTls()
        if self.has("iso2"):
            chain, key = self.path("iso2", "secc-chain.pem"), self.path("iso2", "secc.key")
            found.iso2 = tls.iso2_secc_context(chain, key, keylog=self.keylog)
            found.iso2_tls13 = tls.iso2_secc_context(chain, key, minimum=ssl.TLSVersion.TLSv1_3,
                                                     maximum=ssl.TLSVersion.TLSv1_3, keylog=self.keylog)
            found.iso2_root = self._root("iso2")
        if self.has("iso20"):
            chain, key = self.path("iso20", "secc-chain.pem"), self.path("iso20", "secc.key")
            oem_roots = self.path("iso20", "oem-root.pem")
            found.iso20 = tls.iso20_secc_context(chain, key, oem_roots=oem_roots, keylog=self.keylog)
            found.iso20.set_ecdh_curve("secp521r1")  # -20 Table 7: secp521r1 (or x448, below)
            found.iso20_x448 = tls.iso20_secc_context(chain, key, oem_roots=oem_roots, keylog=self.keylog)
            found.iso20_root = self._root("iso20")
        return found

    def _root(self, generation: str) -> x509.Certificate | None:
        """The V2G root the SECC chain of ``generation`` leads to (a lab's file may hold several)."""
        path = self.path(generation, "v2g-root.pem")
        if not path.is_file():
            return None
        roots = load_certificates(path)
        chain = self.path(generation, "secc-chain.pem")
        top = load_certificates(chain)[-1] if chain.is_file() else None
        return next((r for r in roots if top is not None and r.subject == top.issuer), roots[0])

    def untrusted_secc_context(self) -> ssl.SSLContext:
        """A context presenting an SECC chain from a V2G root no EV trusts (fault fail_tls)."""
        untrusted = self.directory / "untrusted"
        if not (untrusted / "secc-chain.pem").is_file():
            write_iso15118_pki(build_iso15118_pki(Generation.ISO2), untrusted, Manifest(untrusted))
        return tls.iso2_secc_context(untrusted / "secc-chain.pem", untrusted / "secc.key", keylog=self.keylog,
                                     maximum=ssl.TLSVersion.TLSv1_3)

    def faulty_secc_context(self, fault_id: str, generation: str = "iso2") -> tuple[ssl.SSLContext, str]:
        """A context presenting the ``generation``'s SECC chain with the catalogue's fault
        ``fault_id`` (fault fail_tls), and the fault's description: -2 on TLS 1.2 (and 1.3), -20
        on TLS 1.3 with the vehicle certificate asked for, as the SECC's own contexts are."""
        fault = next((f for f in CATALOGUE if f.id == fault_id and f.applies_to(Role.SECC)), None)
        if fault is None:
            known = ", ".join(f.id for f in CATALOGUE if f.applies_to(Role.SECC))
            raise ValueError(f"{fault_id!r} is no SECC chain fault of the catalogue (known: {known})")
        label = "-20" if generation == "iso20" else "-2"
        try:
            chain = self._pki(generation).chain(Role.SECC)
        except KeyError as missing:
            raise NotApplicable(f"the PKI holds no key of the {label} {missing.args[0].value}, so the harness "
                                f"cannot build an SECC chain with {fault_id}") from None
        case = fault.apply(chain)
        folder = self.directory / "faulty-secc" / generation / fault.id
        chain_file = write_pem(folder / "secc-chain.pem", *case.certificates)
        key_file = write_key(folder / "secc.key", case.leaf.key)
        if generation == "iso20":
            context = tls.iso20_secc_context(chain_file, key_file, oem_roots=self.path("iso20", "oem-root.pem"),
                                             keylog=self.keylog)
        else:
            context = tls.iso2_secc_context(chain_file, key_file, keylog=self.keylog, maximum=ssl.TLSVersion.TLSv1_3)
        return context, f"the {label} SECC chain with {fault.id}: {fault.description} (fault fail_tls)"

    def evcc_context(self, protocols: Sequence[str] | str, *, trusted: bool = True) -> ssl.SSLContext:
        """The EV's context for a session offering ``protocols`` (sap keys, or a generation):
        TLS 1.3 and the vehicle certificate for -20, TLS 1.2 for -2 and DIN, the V2G roots of
        those generations trusted (``trusted=False``: only a root no SECC chains to, fault fail_tls).
        No server name is sent: an EV names no host."""
        offered = (protocols,) if isinstance(protocols, str) else tuple(protocols)
        generations = {pki_generation(p) for p in offered}
        if trusted:
            roots = [self.path(g, "v2g-root.pem") for g in sorted(generations)]
        else:
            self.untrusted_secc_context()  # makes sure the unrelated root exists
            roots = [self.directory / "untrusted" / "v2g-root.pem"]
        minimum = ssl.TLSVersion.TLSv1_2 if "iso2" in generations else ssl.TLSVersion.TLSv1_3
        maximum = ssl.TLSVersion.TLSv1_3 if "iso20" in generations else ssl.TLSVersion.TLSv1_2
        if "iso20" in generations:
            context = tls.iso20_evcc_context(roots[0], vehicle_chain=self.path("iso20", "vehicle-chain.pem"),
                                             vehicle_key=self.path("iso20", "vehicle.key"), minimum=minimum,
                                             keylog=self.keylog)
            if generations == {"iso20"}:
                context.set_ecdh_curve("secp521r1")  # a -20-only EV offers the -20 group ([V2G20-1637])
        else:
            context = tls.iso2_evcc_context(roots[0], maximum=maximum, keylog=self.keylog)
        for more in roots[1:]:
            context.load_verify_locations(cafile=str(more))
        return context

    # -- Plug & Charge --------------------------------------------------------------------------

    def ev_credentials(self, generation: str, *, contract: bool = True) -> Credentials:
        pki = self._pki(generation)
        if not self.has(generation):
            raise CertificateFileError(self.path(generation, ""), f"no {generation} certificates for the EV")
        roots = self.path(generation, "v2g-root.pem")
        credentials = Credentials(v2g_roots=([pki.issued[Role.V2G_ROOT].cert] if Role.V2G_ROOT in pki.issued
                                             else load_certificates(roots) if roots.is_file() else []))
        credentials.oem_chain, credentials.oem_key = self._leaf(generation, Role.OEM_PROVISIONING, required=False)
        if contract:
            credentials.contract_chain, credentials.contract_key = self._leaf(generation, Role.CONTRACT, required=True)
            credentials.emaid = common_name(credentials.contract_chain[0])
        return credentials

    def _leaf(self, generation: str, role: Role, *, required: bool) -> tuple[list[x509.Certificate], Any]:
        """A leaf's chain (leaf first, Sub-CAs after) and key: from the generated PKI, or from
        ``<role>-chain.pem`` and ``<role>.key`` (``<role>.pem`` when there is no chain file)."""
        pki = self._pki(generation)
        issued = pki.issued.get(role)
        if issued is not None and all(r in pki.issued for r in chain_roles(role)):
            return pki.chain(role).presented, issued.key
        chain_file, leaf_file = self.path(generation, f"{role.value}-chain.pem"), self.path(generation, f"{role.value}.pem")
        if issued is None and not (required or chain_file.is_file() or leaf_file.is_file()):
            return [], None
        if not (chain_file.is_file() or leaf_file.is_file()):
            raise CertificateFileError(chain_file.parent, f"{generation}: no {role.value} certificate and key, and "
                                                          "the EV needs them for Plug & Charge")
        certificates = load_certificates(chain_file if chain_file.is_file() else leaf_file)
        if issued is None:
            raise CertificateFileError(self.path(generation, f"{role.value}.key"),
                                       f"no such {role.value} key (the EV needs it), or it did not open")
        return certificates, issued.key

    def mo_roots(self, generation: str) -> list[x509.Certificate]:
        """The MO roots an SECC validates contract chains of ``generation`` against: the folder's
        mo-root.pem (certificates only; no key needed), or none."""
        issued = self._pki(generation).issued.get(Role.MO_ROOT)
        if issued is not None:
            return [issued.cert]
        path = self.path(generation, "mo-root.pem")
        return load_certificates(path) if path.is_file() else []

    def v2g_roots(self) -> list[x509.Certificate]:
        """The V2G roots of every generation the material has."""
        return [root for generation in ("iso2", "iso20") if self.has(generation)
                for root in ([self._pki(generation).issued[Role.V2G_ROOT].cert]
                             if Role.V2G_ROOT in self._pki(generation).issued
                             else load_certificates(self.path(generation, "v2g-root.pem"))
                             if self.path(generation, "v2g-root.pem").is_file() else [])]

    def authorities(self) -> list[Issued]:
        """Every CA of both generations (roots and Sub-CAs, with their keys where loaded)."""
        return [*self.iso2.authorities, *self.iso20.authorities]

    def all_mo_roots(self) -> list[x509.Certificate]:
        """The MO roots of both generations, for an SECC that takes -2 and -20 contracts."""
        return self.mo_roots("iso2") + self.mo_roots("iso20")

    def tariff_key(self, generation: str) -> Any:
        """The key that signs SalesTariffs (the MO Sub-CA 2's, standing in for the MO's); None when
        the material does not hold it (a lab's SECC chain without MO keys), and then the SECC offers
        no SalesTariff in Plug & Charge sessions, where one must be signed."""
        issued = self._pki(generation).issued.get(Role.MO_SUB_CA_2)
        return issued.key if issued is not None else None

    def provisioning(self) -> "CertificateProvisioning":
        return CertificateProvisioning(self)


class CertificateProvisioning:
    """The certificate provisioning service of the emulated rig: a fresh contract for an EV."""

    def __init__(self, material: V2gMaterial) -> None:
        self.material = material

    def deliver(self, request: str, *, oem_chain=(), contract_chain=(), emaid: str | None = None,
                generation: str = "iso2") -> ContractDelivery | None:
        if generation == "iso20":
            return self._deliver_iso20(request, oem_chain, emaid)
        pki = self.material.iso2
        recipient = oem_chain[0] if request == "install" and oem_chain else \
            contract_chain[0] if contract_chain else None
        if recipient is None:
            return None
        emaid = emaid or DEFAULT_EMAID
        profile = PROFILES[Role.CONTRACT]
        issued = issue(name(emaid, profile.organization, country="DE", domain_component=profile.domain_component),
                       pki.issued[Role.MO_SUB_CA_2], algorithm=KeyAlgorithm.SECP256R1,
                       validity=_dt.timedelta(days=365), ca=False, key_usage=profile.key_usage,
                       ski_method=Generation.ISO2.ski_method,
                       # where its revocation is asked, like every contract of the PKI
                       ocsp_url=pki.ocsp_url(), crl_url=pki.crl_url(Role.MO_SUB_CA_2))
        if not isinstance(issued.key, ec.EllipticCurvePrivateKey):
            raise TypeError(f"the contract key for {emaid} is {type(issued.key).__name__}, not an elliptic-curve "
                            "key: ISO 15118-2 encrypts only secp256r1 contract keys")
        sealed = encrypt_iso2(issued.key, recipient)
        chain = [issued.cert, pki.issued[Role.MO_SUB_CA_2].cert, pki.issued[Role.MO_SUB_CA_1].cert]
        return ContractDelivery(chain, sealed.encrypted_private_key, sealed.dh_public_key, emaid,
                                pki.chain(Role.CPS).presented, pki.issued[Role.CPS].key)

    def _deliver_iso20(self, request: str, oem_chain, emaid: str | None) -> ContractDelivery | None:
        """-20 installation: a secp521r1 contract from the -20 MO Sub-CA 2, its key sealed for the
        OEM provisioning certificate's key with the PCID (its CN) in the AAD, the delivery signed
        by the -20 CPS key. -20 has no CertificateUpdate."""
        pki = self.material.iso20
        missing = [r.value for r in (Role.MO_SUB_CA_2, Role.MO_SUB_CA_1, Role.CPS) if r not in pki.issued]
        if request != "install" or not oem_chain or missing:
            return None
        recipient = oem_chain[0]
        if not isinstance(recipient.public_key(), ec.EllipticCurvePublicKey):
            return None  # an Ed448 OEM key needs its X448 counterpart (harness.pki.contract_key)
        emaid = emaid or DEFAULT_EMAID
        profile = PROFILES[Role.CONTRACT]
        issued = issue(name(emaid, profile.organization, country="DE", domain_component=profile.domain_component),
                       pki.issued[Role.MO_SUB_CA_2], algorithm=KeyAlgorithm.SECP521R1,
                       validity=_dt.timedelta(days=365), ca=False, key_usage=profile.key_usage,
                       ski_method=Generation.ISO20.ski_method, ocsp_url=pki.ocsp_url(),
                       crl_url=pki.crl_url(Role.MO_SUB_CA_2))
        if not isinstance(issued.key, ec.EllipticCurvePrivateKey):
            raise TypeError(f"the -20 contract key for {emaid} is {type(issued.key).__name__}")
        sealed = encrypt_iso20(issued.key, recipient, pcid=common_name(recipient), contract_certificate=issued.cert)
        chain = [issued.cert, pki.issued[Role.MO_SUB_CA_2].cert, pki.issued[Role.MO_SUB_CA_1].cert]
        return ContractDelivery(chain, sealed.encrypted_private_key, sealed.dh_public_key, emaid,
                                pki.chain(Role.CPS).presented, pki.issued[Role.CPS].key)
