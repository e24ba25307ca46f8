"""The root certificates the reference EVSE has installed, as the CSMS manages them (OCPP 2.0.1
M03 GetInstalledCertificateIds, M04 DeleteCertificate, M05 InstallCertificate; the same through
the 1.6 application note's DataTransfer): the V2G roots and the MO roots.

The MO roots are the list the SECC validates contracts against (shared with the bridge), so
deleting the last one turns the EVSE to central validation (the chain goes to the CSMS, OCPP
2.0.1 C07.FR.06) and installing one turns it back. A certificate is identified as OCPP does, by
the hashes of its issuer's name and key and its serial number; a root is its own issuer.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

from cryptography import x509

from harness.pki.revocation import CertificateHashData, certificate_hash_data

#: the kinds this EVSE keeps, by the name OCPP gives them
KINDS = ("V2GRootCertificate", "MORootCertificate")


class InstalledRoots:
    def __init__(self, v2g_roots: list[x509.Certificate], mo_roots: list[x509.Certificate]) -> None:
        #: the lists themselves are shared: the MO roots are the SECC's contract anchors
        self.lists = {"V2GRootCertificate": v2g_roots, "MORootCertificate": mo_roots}

    def ids(self, kinds: Any = None) -> list[dict[str, Any]]:
        """certificateHashDataChain for the kinds asked (None: all), each root with its own hashes."""
        wanted = [k for k in KINDS if kinds is None or (isinstance(kinds, list) and k in kinds)]
        return [{"certificateType": kind, "certificateHashData": _hash_data(root)}
                for kind in wanted for root in self.lists[kind]]

    def install(self, kind: Any, pem: Any) -> tuple[str, str]:
        """(status, why): Accepted, or Rejected for a certificate that is no valid root of the kind."""
        if kind not in self.lists:
            return "Rejected", f"this EVSE keeps {' and '.join(KINDS)} only, not {kind}"
        if not isinstance(pem, str):
            return "Rejected", "certificate is not a string"
        try:
            certificates = x509.load_pem_x509_certificates(pem.encode())
        except ValueError as exc:
            return "Rejected", f"certificate is not PEM ({exc})"
        if len(certificates) != 1:
            return "Rejected", f"certificate holds {len(certificates)} certificates, not one root"
        root = certificates[0]
        try:
            constraints = root.extensions.get_extension_for_class(x509.BasicConstraints).value
        except x509.ExtensionNotFound:
            constraints = None
        if constraints is None or not constraints.ca or root.issuer != root.subject:
            return "Rejected", "not a self-signed CA certificate"
        moment = _dt.datetime.now(_dt.timezone.utc)
        if not root.not_valid_before_utc <= moment <= root.not_valid_after_utc:
            return "Rejected", f"not valid now ({root.not_valid_before_utc:%Y-%m-%d} to {root.not_valid_after_utc:%Y-%m-%d})"
        roots = self.lists[kind]
        if root not in roots:
            roots.append(root)
        return "Accepted", f"{kind} {root.subject.rfc4514_string()} installed"

    def delete(self, hash_data: Any) -> tuple[str, str]:
        """(status, why): Accepted, NotFound, or Failed for hash data that does not parse."""
        try:
            wanted = CertificateHashData.from_ocpp({**hash_data, "responderURL": ""}
                                                  if isinstance(hash_data, dict) else hash_data, "certificateHashData")
        except ValueError as exc:
            return "Failed", str(exc)
        for kind, roots in self.lists.items():
            for root in roots:
                if wanted.issued_by(root) and int(wanted.serialNumber, 16) == root.serial_number:
                    roots.remove(root)
                    return "Accepted", f"{kind} {root.subject.rfc4514_string()} deleted"
        return "NotFound", "no installed certificate has these hashes and serial number"


def _hash_data(root: x509.Certificate) -> dict[str, str]:
    entry = certificate_hash_data(root, root).as_ocpp()
    entry.pop("responderURL")
    return entry
