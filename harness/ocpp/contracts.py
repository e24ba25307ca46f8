"""The mock CSMS as a Plug & Charge backend: what it decides about a contract certificate a
station presents (OCPP 2.0.1 use cases C07 "Authorization using Contract Certificates" and M06
"Get V2G Charging Station Certificate status"; the same messages through DataTransfer in the
OCA application note "Using ISO 15118 Plug & Charge with OCPP 1.6").

The backend knows a PKI: the MO roots contract chains must lead to, and the CA certificates (MO,
V2G, CPO Sub-CAs and roots) whose hashes a station may send. It decides:

- Authorize with ``certificate``, the PEM chain a station could not validate itself (C07.FR.06):
  the chain is validated against the MO roots with the ISO 15118 contract profile of the leaf's
  key (-2: secp256r1; -20: secp521r1 or Ed448), every link's revocation is asked of its OCSP
  responder, and the leaf's CN must be the idToken (the eMAID).
- Authorize with ``iso15118CertificateHashData`` (the station validated the chain and asks about
  revocation): each entry's issuer must be a CA the backend knows, an entry after the first must
  describe the issuer of the entry before it, and each certificate's status is asked of the
  responder with the station's own CertID (RFC 6960 4.1.1).
- GetCertificateStatus: the station's CertID relayed to the responder; the DER answer goes back
  in ``ocspResult`` (base64) once its signature by the issuer holds.

A station names the responder URL; the backend asks only responders it knows (given, or named in
the AIA of one of its CA certificates), so a station cannot make the CSMS fetch any URL it likes.
Revocation that cannot be established fails closed: CertChainError, with the reason on the
timeline (a responder the CSMS does not know, one that does not answer, one that does not know
the certificate). A certificate that names no responder at all (no AIA; hash data with an empty
responderURL, as lab and test PKIs issue) has no online status to ask for: it is judged on its
chain alone, and the verdict says that its revocation was not checked. The OCSP exchange blocks;
the CSMS calls these methods in a worker thread.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.x509 import ocsp

from harness.pki.builder import KeyAlgorithm
from harness.pki.profiles import Generation, Role, same_emaid
from harness.pki.revocation import (
    CertificateHashData,
    OcspClient,
    OcspError,
    fetch_ocsp,
    ocsp_request_by_hash,
    ocsp_status,
    ocsp_url_of,
)
from harness.pki.validate import OcspStatus, Reason, issuers_among, name_of, policy_for, validate_chain

#: AuthorizeCertificateStatusEnumType (OCPP 2.0.1 and 2.1; the 1.6 application note uses the same values)
CERTIFICATE_STATUSES = ("Accepted", "SignatureError", "CertificateExpired", "CertificateRevoked",
                        "NoCertificateAvailable", "CertChainError", "ContractCancelled")

#: why a chain failed validation -> the certificateStatus the CSMS answers
#: AuthorizeCertificateStatusEnumType for a contract refused for a reason (else CertChainError)
CERTIFICATE_STATUS_FOR: dict[Reason, str] = {
    Reason.EXPIRED: "CertificateExpired",
    Reason.NOT_YET_VALID: "CertificateExpired",  # the enumeration has no "not yet valid"
    Reason.REVOKED: "CertificateRevoked",
}

#: OCPP 2.0.1 AuthorizeRequest: iso15118CertificateHashData has 1 to 4 entries
MAX_HASH_DATA = 4
#: OCPP 2.0.1 GetCertificateStatusResponse.ocspResult: string[0..5500]
MAX_OCSP_RESULT = 5500


@dataclass(frozen=True)
class ContractVerdict:
    """The backend's answer about a contract: ``certificate_status`` is one of
    :data:`CERTIFICATE_STATUSES`; ``detail`` says why, for the timeline."""

    certificate_status: str
    detail: str

    @property
    def accepted(self) -> bool:
        return self.certificate_status == "Accepted"


@dataclass(frozen=True)
class StatusAnswer:
    """GetCertificateStatusResponse: ``status`` Accepted or Failed, ``ocsp_result`` base64 DER."""

    status: str
    ocsp_result: str | None
    detail: str


class PncBackend:
    def __init__(self, mo_roots: Sequence[x509.Certificate], authorities: Iterable[x509.Certificate], *,
                 responders: Iterable[str] = (), timeout: float = 5.0) -> None:
        self.mo_roots = list(mo_roots)
        self.authorities = list({c.fingerprint(hashes.SHA256()): c
                                 for c in [*self.mo_roots, *authorities]}.values())
        self.responders = set(responders) | {url for c in self.authorities if (url := ocsp_url_of(c))}
        self.timeout = timeout

    # -- Authorize ------------------------------------------------------------------------

    def check_certificate(self, pem: str, emaid: str) -> ContractVerdict:
        """Authorize with ``certificate``: the PEM chain, leaf first, validated here."""
        try:
            chain = x509.load_pem_x509_certificates(pem.encode())
        except ValueError as exc:
            return ContractVerdict("CertChainError", f"certificate is not a PEM chain ({exc})")
        generation = _generation_of(chain[0])
        if generation is None:
            return ContractVerdict("CertChainError", f"the contract certificate's key ({_key_kind(chain[0])}) is "
                                   "none ISO 15118 uses")
        try:
            result = validate_chain(chain, self.mo_roots, policy=policy_for(generation, Role.CONTRACT),
                                    ocsp=self.ocsp_check)
        except (UnsupportedAlgorithm, ValueError, TypeError) as exc:  # a certificate cryptography cannot use
            return ContractVerdict("CertChainError", f"contract chain cannot be checked: {exc}")
        if not result.ok:
            assert result.reason is not None
            return ContractVerdict(CERTIFICATE_STATUS_FOR.get(result.reason, "CertChainError"),
                                   f"contract chain ({generation.value}) refused: {result}")
        cn = name_of(chain[0])
        if not same_emaid(cn, emaid):
            return ContractVerdict("CertChainError", f"the contract certificate's CN {cn!r} is not the "
                                   f"idToken {emaid!r}")
        return ContractVerdict("Accepted", f"contract chain ({generation.value}) valid against the MO root "
                               f"{name_of(result.path[-1])}, not revoked (OCSP)"
                               + _unchecked_note([name_of(c) for c in result.unchecked]))

    def check_hash_data(self, entries: Sequence[Any]) -> ContractVerdict:
        """Authorize with ``iso15118CertificateHashData``: the contract and its Sub-CAs as
        CertIDs, leaf first."""
        if not entries or len(entries) > MAX_HASH_DATA:
            return ContractVerdict("CertChainError", f"iso15118CertificateHashData has {len(entries)} entries, "
                                   f"1 to {MAX_HASH_DATA} allowed")
        data: list[CertificateHashData] = []
        for index, entry in enumerate(entries):
            try:
                data.append(CertificateHashData.from_ocpp(entry, f"iso15118CertificateHashData[{index}]"))
            except ValueError as exc:
                return ContractVerdict("CertChainError", str(exc))
        issuers = []
        for index, item in enumerate(data):
            issuer = self._issuer_of(item)
            if issuer is None:
                return ContractVerdict("CertChainError", f"iso15118CertificateHashData[{index}]: the issuer hashes "
                                       "name no CA this CSMS knows")
            issuers.append(issuer)
        root = ([issuers[-1], *issuers_among(issuers[-1], self.authorities)])[-1]
        if root.issuer != root.subject or root not in self.mo_roots:
            return ContractVerdict("CertChainError", f"iso15118CertificateHashData leads to "
                                   f"{name_of(root) if root.issuer == root.subject else 'no root this CSMS knows'}, "
                                   "not to an MO root: it is no contract chain")
        for index in range(len(data) - 1):
            issuer, above = issuers[index], data[index + 1]
            if format(issuer.serial_number, "X") != above.serialNumber.upper().lstrip("0") or \
                    issuer.issuer != issuers[index + 1].subject:
                return ContractVerdict("CertChainError", f"iso15118CertificateHashData[{index + 1}] does not "
                                       f"describe {name_of(issuer)}, the issuer of entry {index}")
        unchecked = []
        for index, (item, issuer) in enumerate(zip(data, issuers)):
            if not item.responderURL:
                unchecked.append(f"iso15118CertificateHashData[{index}] (serial {item.serialNumber})")
                continue
            status, detail = self._ask(item, issuer)
            if status is OcspStatus.REVOKED:
                return ContractVerdict("CertificateRevoked", f"iso15118CertificateHashData[{index}] (serial "
                                       f"{item.serialNumber}, issuer {name_of(issuer)}): {detail}")
            if status is not OcspStatus.GOOD:
                return ContractVerdict("CertChainError", f"iso15118CertificateHashData[{index}] (serial "
                                       f"{item.serialNumber}): revocation status unknown: {detail}")
        return ContractVerdict("Accepted", f"{len(data)} certificate(s) issued by known CAs, none revoked (OCSP)"
                               + _unchecked_note(unchecked))

    # -- GetCertificateStatus ---------------------------------------------------------------

    def certificate_status(self, entry: Any) -> StatusAnswer:
        try:
            item = CertificateHashData.from_ocpp(entry, "ocspRequestData")
        except ValueError as exc:
            return StatusAnswer("Failed", None, str(exc))
        issuer = self._issuer_of(item)
        if issuer is None:
            return StatusAnswer("Failed", None, "ocspRequestData: the issuer hashes name no CA this CSMS knows")
        try:
            answer = self._fetch(item)
            parsed = ocsp.load_der_ocsp_response(answer)
            if parsed.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
                raise OcspError(f"{item.responderURL} answered {parsed.response_status.name}")
            ocsp_status(parsed, issuer, int(item.serialNumber, 16), item.responderURL)
        except (OcspError, ValueError) as exc:
            return StatusAnswer("Failed", None, str(exc))
        encoded = base64.b64encode(answer).decode()
        if len(encoded) > MAX_OCSP_RESULT:
            return StatusAnswer("Failed", None, f"the OCSP answer is {len(encoded)} base64 characters; "
                                                f"ocspResult takes {MAX_OCSP_RESULT}")
        return StatusAnswer("Accepted", encoded, f"OCSP answer of {item.responderURL} for serial {item.serialNumber}")

    # -- OCSP -------------------------------------------------------------------------------

    def _issuer_of(self, item: CertificateHashData) -> x509.Certificate | None:
        return next((c for c in self.authorities if item.issued_by(c)), None)

    def _allowed(self, url: str) -> None:
        if url not in self.responders:
            raise OcspError(f"{url!r} is not an OCSP responder this CSMS knows (known: "
                            f"{', '.join(sorted(self.responders)) or 'none'})")

    def _fetch(self, item: CertificateHashData) -> bytes:
        self._allowed(item.responderURL)
        return fetch_ocsp(item.responderURL, ocsp_request_by_hash(item), timeout=self.timeout)

    def _ask(self, item: CertificateHashData, issuer: x509.Certificate) -> tuple[OcspStatus, str]:
        try:
            answer = ocsp.load_der_ocsp_response(self._fetch(item))
            status = ocsp_status(answer, issuer, int(item.serialNumber, 16), item.responderURL)
        except (OcspError, ValueError) as exc:
            return OcspStatus.UNKNOWN, str(exc)
        return status, f"OCSP responder {item.responderURL} says {status.value}"

    def ocsp_check(self, cert: x509.Certificate, issuer: x509.Certificate) -> OcspStatus:
        """The revocation check the backend makes (:data:`harness.pki.validate.OcspCheck`): the
        certificate's own responder, if this CSMS knows it."""
        url = ocsp_url_of(cert)
        if url is None:
            return OcspStatus.NOT_NAMED
        self._allowed(url)
        return OcspClient(url, timeout=self.timeout)(cert, issuer)


def _unchecked_note(names: Sequence[str]) -> str:
    return (f"; revocation not checked for {', '.join(names)}: no OCSP responder named (the certificate has no "
            f"AIA)" if names else "")


def _generation_of(cert: x509.Certificate) -> Generation | None:
    try:
        algorithm = KeyAlgorithm.of(cert.public_key())
    except (TypeError, ValueError, UnsupportedAlgorithm):
        return None
    return next((g for g in Generation if algorithm in g.algorithms), None)


def _key_kind(cert: x509.Certificate) -> str:
    try:
        return type(cert.public_key()).__name__
    except (TypeError, ValueError, UnsupportedAlgorithm):
        return "a key of an unknown algorithm"
