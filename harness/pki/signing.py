"""A certificate authority that signs a charging station's certificate signing request (RFC 2986),
as the CSMS's CA does for OCPP 2.0.1 SignCertificate with certificateType V2GCertificate (the SECC
certificate, ISO 15118-2 Annex F: issued by the CPO Sub-CA 2, key on secp256r1).

The request is refused, with the reason, when it is not a PEM CSR, when its signature does not
verify with its own key (proof of possession), when its key is not one the ISO 15118 part allows,
or when its subject lacks the common name or the SECC profile's DC=CPO. The common name (the
EVSE ID) is the station's to choose: the CSMS does not know the EVSE IDs of its stations. The new certificate keeps the CSR's subject and key and
gets the SECC profile's extensions (key usage, not a CA) and the CA's revocation pointers; the
chain returned is the leaf followed by the Sub-CAs (not the root), leaf first, as
CertificateSignedRequest.certificateChain wants it.

A signer given a ``fault`` (one of :data:`SIGNING_FAULTS`) signs every request, however good,
into a chain a charger must refuse (OCPP 2.0.1 A02/A03: the station checks the validity period,
the certificate properties and the hierarchy of what CertificateSigned brings, discards a chain
that fails and reports InvalidChargingStationCertificate).
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448
from cryptography.x509.oid import NameOID

from harness.pki.builder import Issued, KeyAlgorithm, authority_key_id, now, root_ca, signature_hash_for
from harness.pki.faults import tamper_tbs
from harness.pki.profiles import PROFILES, Generation, Role
from harness.pki.revocation import ocsp_url_of

if TYPE_CHECKING:
    from harness.pki.folders import PncPki

#: what a deliberately faulty signer gets wrong, by id; each breaks one rule a charger checks
SIGNING_FAULTS: dict[str, str] = {
    "expired": "the certificate expired yesterday",
    "not-yet-valid": "the certificate becomes valid tomorrow",
    "other-key": "the certificate carries another key than the request's",
    "untrusted-issuer": "the certificate is issued by a CA outside the V2G PKI",
    "bad-signature": "the certificate's signature does not verify (one bit of it changed)",
    "without-dc-cpo": "the certificate's subject lost DC=CPO (ISO 15118-2 Annex F SECC profile)",
}


class SigningRefused(ValueError):
    """A CSR the CA does not sign; the message says why."""


@dataclass(frozen=True)
class CsrSigner:
    #: the CA that signs, with its key (the CPO Sub-CA 2 of an ISO 15118 PKI)
    issuer: Issued
    #: the certificates to send after the leaf: the issuer and the Sub-CAs above it
    intermediates: tuple[x509.Certificate, ...]
    generation: Generation = Generation.ISO2
    validity: _dt.timedelta = _dt.timedelta(days=365)
    ocsp_url: str | None = None
    crl_url: str | None = None
    #: a fault of SIGNING_FAULTS committed in every chain signed (None: sign correctly)
    fault: str | None = None

    def __post_init__(self) -> None:
        if self.fault is not None and self.fault not in SIGNING_FAULTS:
            raise ValueError(f"unknown signing fault {self.fault!r} (known: {', '.join(SIGNING_FAULTS)})")

    @classmethod
    def of(cls, pki: "PncPki") -> "CsrSigner | None":
        """The signer of SECC certificates of a loaded PKI: its -2 CPO Sub-CA 2 with the key (None
        when the PKI does not hold that key). The leaf names the responder its issuer names."""
        found = pki.secc_issuer()
        if found is None:
            return None
        issuer, intermediates = found
        return cls(issuer, tuple(intermediates), ocsp_url=ocsp_url_of(issuer.cert))

    def sign(self, csr_pem: str) -> list[x509.Certificate]:
        """The signed chain for a PEM CSR, leaf first; SigningRefused says why not."""
        try:
            request = x509.load_pem_x509_csr(csr_pem.encode())
            public_key = request.public_key()
            valid = request.is_signature_valid
            algorithm = KeyAlgorithm.of(public_key) if isinstance(
                public_key, (ec.EllipticCurvePublicKey, ed448.Ed448PublicKey)) else None
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise SigningRefused(f"csr is not a PEM certificate signing request with a key ISO 15118 uses "
                                 f"({exc})") from None
        if not valid:
            raise SigningRefused("the CSR's signature does not verify with the key it carries (RFC 2986: "
                                 "proof of possession)")
        if algorithm is None or not isinstance(public_key, (ec.EllipticCurvePublicKey, ed448.Ed448PublicKey)):
            raise SigningRefused(f"the CSR's key is {type(public_key).__name__}; ISO 15118 uses elliptic curves")
        if algorithm not in self.generation.algorithms:
            raise SigningRefused(f"the CSR's key is {algorithm.value}; an ISO 15118-{self.generation.value[3:]} "
                                 f"SECC certificate needs {', '.join(a.value for a in self.generation.algorithms)}")
        if not request.subject.get_attributes_for_oid(NameOID.COMMON_NAME):
            raise SigningRefused("the CSR's subject has no common name")
        profile = PROFILES[Role.SECC]
        components = [str(a.value) for a in request.subject.get_attributes_for_oid(NameOID.DOMAIN_COMPONENT)]
        if profile.domain_component and profile.domain_component not in components:
            raise SigningRefused(f"the CSR's subject has DC={','.join(components) or '(none)'}; an SECC certificate "
                                 f"carries DC={profile.domain_component} (ISO 15118-2 Annex F)")
        subject, issuer, intermediates = request.subject, self.issuer, self.intermediates
        start = now() - _dt.timedelta(minutes=5)
        end = min(start + self.validity, self.issuer.cert.not_valid_after_utc)
        if self.fault == "expired":
            start, end = now() - self.validity, now() - _dt.timedelta(days=1)
        elif self.fault == "not-yet-valid":
            start, end = now() + _dt.timedelta(days=1), now() + self.validity
        elif self.fault == "other-key":
            public_key = self.generation.algorithms[0].generate().public_key()
        elif self.fault == "untrusted-issuer":
            issuer = root_ca("Untrusted CPO CA", organization="Nobody", algorithm=self.generation.algorithms[0])
            intermediates = (issuer.cert,)
        elif self.fault == "without-dc-cpo":
            subject = x509.Name([a for a in subject if a.oid != NameOID.DOMAIN_COMPONENT])
        builder = (x509.CertificateBuilder()
                   .subject_name(subject)
                   .issuer_name(issuer.cert.subject)
                   .public_key(public_key)
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(start)
                   .not_valid_after(end)
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(profile.key_usage.extension(), critical=True)
                   .add_extension(self.generation.ski_method.identifier(public_key), critical=False)
                   .add_extension(authority_key_id(issuer.cert), critical=False))
        if self.ocsp_url:
            builder = builder.add_extension(x509.AuthorityInformationAccess([x509.AccessDescription(
                x509.AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(self.ocsp_url))]),
                critical=False)
        if self.crl_url:
            builder = builder.add_extension(x509.CRLDistributionPoints([x509.DistributionPoint(
                [x509.UniformResourceIdentifier(self.crl_url)], None, None, None)]), critical=False)
        leaf = builder.sign(issuer.key, signature_hash_for(issuer.key))
        if self.fault == "bad-signature":
            leaf = tamper_tbs(leaf)
        return [leaf, *intermediates]


def chain_pem(chain: Sequence[x509.Certificate]) -> str:
    """Certificates as one PEM text, in the order given (OCPP's certificate and certificateChain)."""
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in chain)
