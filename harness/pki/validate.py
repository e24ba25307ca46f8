"""Our own certificate chain validator, which says why a chain is refused.

OpenSSL answers "unable to get local issuer certificate" for a missing Sub-CA and for a foreign
root alike, and knows nothing of ISO 15118's rules (chain order, curves, the DC of an SECC
certificate, a contract certificate's CN being the eMAID). The test suites need the reason, so
this validator checks a chain the way an ISO 15118 relying party (EVCC, SECC, CSMS) does and
returns the first rule it breaks as a :class:`Reason`.

Rules, in the order they are checked:

1. the presented certificates are in order, each issued by the next (ISO 15118 sends a chain
   leaf first, then Sub-CA 2, then Sub-CA 1, the order TLS 1.2 requires in RFC 5246 7.4.2);
2. the top one is issued by a trust anchor;
3. every signature verifies;
4. every certificate is within its validity period;
5. every issuer is a CA with keyCertSign whose path length constraint holds;
6. every key and signature uses the algorithms of the ISO 15118 part (P-256/SHA-256 for -2;
   P-521/SHA-512 or Ed448 for -20);
7. the leaf has the key usage, DC and CN its role requires;
8. no certificate is revoked according to the CRLs given or the OCSP responder asked.
"""

from __future__ import annotations

import datetime as _dt
import enum
import itertools
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, ed448, padding, rsa
from cryptography.x509.oid import NameOID

from harness.pki.builder import KeyAlgorithm, KeyUsage, now
from harness.pki.profiles import PROFILES, Generation, Role


class Reason(enum.Enum):
    """Why a chain is refused. The values are the fault catalogue's ids for the same defect."""

    WRONG_ORDER = "wrong-intermediate-order"
    MISSING_INTERMEDIATE = "missing-intermediate"
    UNTRUSTED_ROOT = "untrusted-root"
    BAD_SIGNATURE = "bad-signature"
    EXPIRED = "expired"
    NOT_YET_VALID = "not-yet-valid"
    NOT_A_CA = "not-a-ca"
    KEY_USAGE = "wrong-key-usage"
    PATH_LENGTH = "path-length-exceeded"
    ALGORITHM = "wrong-algorithm"
    DOMAIN_COMPONENT = "missing-domain-component"
    COMMON_NAME = "cn-not-emaid"
    REVOKED = "revoked"
    REVOCATION_UNKNOWN = "revocation-unknown"


class OcspStatus(enum.Enum):
    GOOD = "good"
    REVOKED = "revoked"
    UNKNOWN = "unknown"
    #: the certificate names no OCSP responder (no AIA): there is no online status to ask for
    NOT_NAMED = "no responder named"


#: asks an OCSP responder about (certificate, issuer); see harness.pki.revocation.OcspClient
OcspCheck = Callable[[x509.Certificate, x509.Certificate], OcspStatus]


@dataclass(frozen=True)
class ValidationPolicy:
    """What a relying party requires of a chain beyond "it chains to a root I trust"."""

    algorithms: tuple[KeyAlgorithm, ...] = (KeyAlgorithm.SECP256R1,)
    #: Sub-CAs a complete chain has; fewer, with an unknown issuer on top, is a missing Sub-CA
    sub_ca_count: int = 2
    leaf_key_usage: KeyUsage | None = None
    leaf_domain_component: str | None = None
    #: the CN the leaf must carry, e.g. the eMAID of the contract the message speaks for
    leaf_common_name: str | None = None


def policy_for(generation: Generation, role: Role, *, common_name: str | None = None,
               algorithms: Sequence[KeyAlgorithm] | None = None) -> ValidationPolicy:
    """The policy an ISO 15118 relying party applies to a leaf of ``role``."""
    profile = PROFILES[role]
    return ValidationPolicy(algorithms=tuple(algorithms or generation.algorithms),
                            leaf_key_usage=profile.key_usage,
                            leaf_domain_component=profile.domain_component,
                            leaf_common_name=common_name)


@dataclass(frozen=True)
class ValidationResult:
    reason: Reason | None
    detail: str = ""
    certificate: x509.Certificate | None = None
    #: the path that was checked, leaf first, trust anchor last (as far as it was built)
    path: tuple[x509.Certificate, ...] = field(default=(), repr=False)
    #: the certificates whose revocation could not be asked about (they name no OCSP responder)
    unchecked: tuple[x509.Certificate, ...] = field(default=(), repr=False)

    @property
    def ok(self) -> bool:
        return self.reason is None

    def __bool__(self) -> bool:
        return self.ok

    def raise_for_failure(self) -> None:
        if self.reason is not None:
            raise ChainValidationError(self)

    def __str__(self) -> str:
        if self.reason is None:
            return "valid"
        who = f" [{name_of(self.certificate)}]" if self.certificate is not None else ""
        return f"{self.reason.value}{who}: {self.detail}"


class ChainValidationError(Exception):
    def __init__(self, result: ValidationResult):
        super().__init__(str(result))
        self.result = result
        self.reason = result.reason


class _Refused(Exception):
    def __init__(self, reason: Reason, certificate: x509.Certificate | None, detail: str):
        super().__init__(detail)
        self.reason, self.certificate, self.detail = reason, certificate, detail


def validate_chain(presented: Sequence[x509.Certificate], anchors: Iterable[x509.Certificate], *,
                   policy: ValidationPolicy = ValidationPolicy(), at: _dt.datetime | None = None,
                   crls: Iterable[x509.CertificateRevocationList] = (),
                   ocsp: OcspCheck | None = None) -> ValidationResult:
    """Check ``presented`` (leaf first, as received) against the trusted ``anchors``."""
    at = at or now()
    anchors = list(anchors)
    path: list[x509.Certificate] = list(presented)
    try:
        if not presented:
            raise _Refused(Reason.MISSING_INTERMEDIATE, None, "no certificate presented")
        _check_order(presented)
        anchor = _find_anchor(presented, anchors, policy)
        if anchor is not None:
            path.append(anchor)
        _check_signatures(path)
        _check_validity(path, at)
        _check_authorities(path)
        _check_algorithms(path, policy)
        _check_leaf(path[0], policy)
        unchecked = _check_revocation(path, list(crls), ocsp, at)
    except _Refused as refused:
        return ValidationResult(refused.reason, refused.detail, refused.certificate, tuple(path))
    return ValidationResult(None, "valid", None, tuple(path), tuple(unchecked))


def issuers_among(certificate: x509.Certificate, known: Sequence[x509.Certificate]) -> list[x509.Certificate]:
    """The CAs above ``certificate`` among ``known``, by name, nearest first, up to a self-signed
    one (included) or the first issuer that is not known."""
    path: list[x509.Certificate] = []
    current = certificate
    while current.issuer != current.subject and len(path) <= len(known):
        parent = next((c for c in known if c.subject == current.issuer and c != current), None)
        if parent is None:
            break
        path.append(parent)
        current = parent
    return path


def issued_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    """Name chaining, refined by key identifiers when both are present (RFC 5280 4.2.1.1)."""
    if child.issuer != parent.subject:
        return False
    aki = _extension(child, x509.AuthorityKeyIdentifier)
    ski = _extension(parent, x509.SubjectKeyIdentifier)
    if aki is not None and aki.key_identifier is not None and ski is not None:
        return aki.key_identifier == ski.digest
    return True


def _check_order(presented: Sequence[x509.Certificate]) -> None:
    for position, (child, parent) in enumerate(zip(presented, presented[1:]), start=1):
        if issued_by(child, parent):
            continue
        rest = presented[1:]
        if len(rest) <= 6 and any(_links([presented[0], *p])
                                  for p in itertools.permutations(rest)):
            raise _Refused(Reason.WRONG_ORDER, parent,
                           f"certificate {position + 1} of the chain did not issue certificate "
                           f"{position}; the chain must run leaf, Sub-CA 2, Sub-CA 1")
        raise _Refused(Reason.MISSING_INTERMEDIATE, child,
                       f"certificate {position + 1} of the chain did not issue it; "
                       f"its issuer {child.issuer.rfc4514_string()} is missing")


def _links(chain: Sequence[x509.Certificate]) -> bool:
    return all(issued_by(c, p) for c, p in zip(chain, chain[1:]))


def _self_issued(cert: x509.Certificate) -> bool:
    return cert.issuer == cert.subject


def _find_anchor(presented: Sequence[x509.Certificate], anchors: list[x509.Certificate],
                 policy: ValidationPolicy) -> x509.Certificate | None:
    top = presented[-1]
    if _self_issued(top) and len(presented) > 1:
        # a root sent along with the chain only counts if it is one we trust already
        if any(top == a for a in anchors):
            return None
        raise _Refused(Reason.UNTRUSTED_ROOT, top, "the chain ends in a root that is not trusted")
    for anchor in anchors:
        if issued_by(top, anchor):
            return anchor
    same_name = [a for a in anchors if a.subject == top.issuer]
    if same_name:
        raise _Refused(Reason.UNTRUSTED_ROOT, top,
                       f"issued by a CA named like the trusted {name_of(same_name[0])} but with "
                       f"another key")
    if len(presented) - 1 < policy.sub_ca_count:
        raise _Refused(Reason.MISSING_INTERMEDIATE, top,
                       f"its issuer {top.issuer.rfc4514_string()} is neither in the chain nor "
                       f"trusted ({len(presented) - 1} of {policy.sub_ca_count} Sub-CAs presented)")
    raise _Refused(Reason.UNTRUSTED_ROOT, top,
                   f"its issuer {top.issuer.rfc4514_string()} is not a trusted root")


def _check_signatures(path: Sequence[x509.Certificate]) -> None:
    for child, parent in zip(path, path[1:]):
        if not signature_valid(child, parent.public_key()):
            raise _Refused(Reason.BAD_SIGNATURE, child,
                           f"signature does not verify with the key of {name_of(parent)}")


def signature_valid(cert: x509.Certificate, public_key) -> bool:
    # None for an EdDSA signature: then only an Ed448 key can verify it
    hash_algorithm = cert.signature_hash_algorithm
    try:
        if isinstance(public_key, ec.EllipticCurvePublicKey) and hash_algorithm is not None:
            public_key.verify(cert.signature, cert.tbs_certificate_bytes,
                              ec.ECDSA(hash_algorithm))
        elif isinstance(public_key, ed448.Ed448PublicKey):
            public_key.verify(cert.signature, cert.tbs_certificate_bytes)
        elif isinstance(public_key, rsa.RSAPublicKey) and hash_algorithm is not None:
            public_key.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(),
                              hash_algorithm)
        else:
            return False
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def _check_validity(path: Sequence[x509.Certificate], at: _dt.datetime) -> None:
    for cert in path:
        if at < cert.not_valid_before_utc:
            raise _Refused(Reason.NOT_YET_VALID, cert,
                           f"valid from {cert.not_valid_before_utc.isoformat()}")
        if at > cert.not_valid_after_utc:
            raise _Refused(Reason.EXPIRED, cert,
                           f"expired {cert.not_valid_after_utc.isoformat()}")


def _check_authorities(path: Sequence[x509.Certificate]) -> None:
    # path[i] for i >= 1 issued path[i - 1]; the CAs strictly between it and the leaf count
    # against its pathLenConstraint (self-issued ones do not, RFC 5280 6.1.4)
    for index in range(1, len(path)):
        issuer = path[index]
        constraints = _extension(issuer, x509.BasicConstraints)
        if constraints is None or not constraints.ca:
            raise _Refused(Reason.NOT_A_CA, issuer, "issues certificates but is not a CA")
        usage = _extension(issuer, x509.KeyUsage)
        if usage is not None and not usage.key_cert_sign:
            raise _Refused(Reason.KEY_USAGE, issuer,
                           "issues certificates but its key usage lacks keyCertSign")
        below = sum(1 for c in path[1:index] if not _self_issued(c))
        if constraints.path_length is not None and below > constraints.path_length:
            raise _Refused(Reason.PATH_LENGTH, issuer,
                           f"pathLenConstraint {constraints.path_length} but {below} CA "
                           f"certificate(s) below it")


def key_problem(cert: x509.Certificate, policy: ValidationPolicy) -> str | None:
    """What is wrong with the key of ``cert`` under ``policy`` (None: an algorithm it allows)."""
    try:
        algorithm: KeyAlgorithm | None = KeyAlgorithm.of(cert.public_key())
    except (TypeError, ValueError, UnsupportedAlgorithm):
        algorithm = None
    if algorithm in policy.algorithms:
        return None
    found = algorithm.value if algorithm else type(cert.public_key()).__name__
    return f"{found} key; allowed: {', '.join(a.value for a in policy.algorithms)}"


def _check_algorithms(path: Sequence[x509.Certificate], policy: ValidationPolicy) -> None:
    for child, parent in itertools.zip_longest(path, path[1:]):
        problem = key_problem(child, policy)
        if problem is not None:
            raise _Refused(Reason.ALGORITHM, child, problem)
        signer = KeyAlgorithm.of((parent or child).public_key())
        # hash names, None for EdDSA (which signs without a separate hash)
        expected = signer.signature_hash.name if signer.signature_hash else None
        used = child.signature_hash_algorithm.name if child.signature_hash_algorithm else None
        if used != expected:
            raise _Refused(Reason.ALGORITHM, child,
                           f"signed with {used or 'EdDSA'}, "
                           f"a {signer.value} issuer signs with "
                           f"{expected or 'EdDSA'}")


def _check_leaf(leaf: x509.Certificate, policy: ValidationPolicy) -> None:
    if policy.leaf_key_usage is not None:
        usage = _extension(leaf, x509.KeyUsage)
        required = policy.leaf_key_usage
        missing = [bit for bit in ("digital_signature", "key_agreement")
                   if getattr(required, bit) and (usage is None or not getattr(usage, bit))]
        if usage is not None and usage.key_cert_sign:
            missing.append("no keyCertSign on a leaf")
        if missing:
            raise _Refused(Reason.KEY_USAGE, leaf, f"key usage lacks {', '.join(missing)}")
    if policy.leaf_domain_component is not None:
        dcs = [_text(a.value) for a in leaf.subject.get_attributes_for_oid(NameOID.DOMAIN_COMPONENT)]
        if policy.leaf_domain_component not in dcs:
            raise _Refused(Reason.DOMAIN_COMPONENT, leaf,
                           f"subject has DC={','.join(dcs) or '(none)'}, expected "
                           f"DC={policy.leaf_domain_component}")
    if policy.leaf_common_name is not None and name_of(leaf) != policy.leaf_common_name:
        raise _Refused(Reason.COMMON_NAME, leaf,
                       f"CN {name_of(leaf)!r} is not the eMAID {policy.leaf_common_name!r}")


def _check_revocation(path: Sequence[x509.Certificate],
                      crls: list[x509.CertificateRevocationList], ocsp: OcspCheck | None,
                      at: _dt.datetime) -> list[x509.Certificate]:
    """Refuses a revoked certificate, or one whose responder cannot say; returns those that name
    no responder at all (their status cannot be asked for, which is not a refusal)."""
    unchecked = []
    for cert, issuer in zip(path, path[1:]):
        issuer_key = issuer.public_key()
        for crl in crls:
            # _check_signatures verified a signature with every issuer's key, so it is one of these
            # (a key of another type cannot have signed a CRL)
            if not isinstance(issuer_key, (ec.EllipticCurvePublicKey, ed448.Ed448PublicKey,
                                           rsa.RSAPublicKey)):
                continue
            if crl.issuer != issuer.subject or not crl.is_signature_valid(issuer_key):
                continue
            entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
            if entry is not None and entry.revocation_date_utc <= at:
                raise _Refused(Reason.REVOKED, cert,
                               f"listed in the CRL of {name_of(issuer)} since "
                               f"{entry.revocation_date_utc.isoformat()}")
        if ocsp is not None:
            try:
                status = ocsp(cert, issuer)
            except Exception as exc:  # unreachable or untrustworthy responder: status unknown
                raise _Refused(Reason.REVOCATION_UNKNOWN, cert,
                               f"OCSP status could not be obtained ({exc})") from None
            if status is OcspStatus.REVOKED:
                raise _Refused(Reason.REVOKED, cert, "the OCSP responder reports it revoked")
            if status is OcspStatus.UNKNOWN:
                raise _Refused(Reason.REVOCATION_UNKNOWN, cert,
                               "the OCSP responder does not know it")
            if status is OcspStatus.NOT_NAMED:
                unchecked.append(cert)
    return unchecked


def _extension(cert: x509.Certificate, kind):
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def name_of(cert: x509.Certificate | None) -> str:
    """How messages name a certificate: its CN, else its whole subject ("?" for none)."""
    if cert is None:
        return "?"
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return _text(names[0].value) if names else cert.subject.rfc4514_string()


def _text(value: str | bytes) -> str:
    """A name attribute's value as text. cryptography gives bytes for a value encoded as a BIT
    STRING, which a peer's certificate may carry where text belongs: shown as Python shows bytes."""
    return value if isinstance(value, str) else str(value)
