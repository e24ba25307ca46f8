"""A Plug & Charge PKI read from a folder written by ``harness certs generate`` (or the run's
``pki/iso15118``): what a backend needs of it, the CA certificates, and the CA keys only when it
also answers OCSP for them.

Each ISO 15118 part is a subfolder (``iso2``, ``iso20-secp521r1``, ``iso20-ed448``; a run's
``iso20``) holding ``<role>.pem`` and ``<role>.key`` per certificate (role names as in
:class:`harness.pki.profiles.Role`). Parts that are absent are skipped; a folder with no MO root in
any part is refused, since nothing could validate a contract against it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509

from harness.pki.builder import Issued
from harness.pki.files import CertificateFileError, load_certificate, load_private_key
from harness.pki.profiles import PROFILES, Role
from harness.pki.revocation import ocsp_url_of

#: subfolders that hold one ISO 15118 part each, in the order they are read
PART_FOLDERS = ("iso2", "iso20-secp521r1", "iso20-ed448", "iso20")


@dataclass
class PncPki:
    directory: Path
    parts: list[str] = field(default_factory=list)
    mo_roots: list[x509.Certificate] = field(default_factory=list)
    #: every CA certificate (roots and Sub-CAs of the V2G, MO, OEM chains)
    authorities: list[x509.Certificate] = field(default_factory=list)
    #: every CA certificate by part and role
    by_role: dict[tuple[str, Role], x509.Certificate] = field(default_factory=dict)
    #: the CAs whose key was loaded (to answer OCSP, to sign SECC certificates), by part and role
    keyed: dict[tuple[str, Role], Issued] = field(default_factory=dict)

    @property
    def signing(self) -> list[Issued]:
        return list(self.keyed.values())

    def secc_issuer(self) -> tuple[Issued, list[x509.Certificate]] | None:
        """The -2 CPO Sub-CA 2 with its key and the Sub-CAs to send after a SECC leaf, if loaded."""
        issuer = self.keyed.get(("iso2", Role.CPO_SUB_CA_2))
        above = self.by_role.get(("iso2", Role.CPO_SUB_CA_1))
        if issuer is None or above is None:
            return None
        return issuer, [issuer.cert, above]

    @property
    def ocsp_urls(self) -> list[str]:
        """The OCSP responders the PKI's certificates name, each once."""
        return sorted({url for c in self.authorities if (url := ocsp_url_of(c))})


def load_pnc_pki(directory: Path | str, *, keys: bool = False, password: bytes | None = None) -> PncPki:
    """The CA certificates of every part in ``directory``; with ``keys`` the private keys found
    beside them too (``password`` for encrypted ones). CertificateFileError names the file or
    folder at fault."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CertificateFileError(directory, "no such folder (expected one written by `harness certs generate`)")
    pki = PncPki(directory)
    for part in PART_FOLDERS:
        folder = directory / part
        if not folder.is_dir():
            continue
        pki.parts.append(part)
        for role, profile in PROFILES.items():
            pem = folder / f"{role.value}.pem"
            if not profile.ca or not pem.is_file():
                continue
            certificate = load_certificate(pem)
            pki.authorities.append(certificate)
            pki.by_role[(part, role)] = certificate
            if role is Role.MO_ROOT:
                pki.mo_roots.append(certificate)
            key = folder / f"{role.value}.key"
            if keys and key.is_file():
                pki.keyed[(part, role)] = Issued(certificate, load_private_key(key, password))
    if not pki.mo_roots:
        raise CertificateFileError(directory, f"no {Role.MO_ROOT.value}.pem in any of "
                                   f"{', '.join(PART_FOLDERS)}: no MO root to validate contracts against")
    return pki
