"""The manifest of a generated PKI: one JSON file that says what every other file is.

Users and CI find material by role instead of by file name, and a test report can show which
certificate (subject, serial, fingerprint) a run used.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509

from harness.pki.builder import KeyAlgorithm, fingerprint

MANIFEST_NAME = "manifest.json"


@dataclass
class Manifest:
    root: Path
    entries: list[dict] = field(default_factory=list)

    def add_certificate(self, path: Path, role: str, cert: x509.Certificate,
                        chain: list[str], *, fault: str | None = None) -> None:
        self.entries.append({"file": self._relative(path), "kind": "certificate",
                             **self._describe(role, cert, chain, fault)})

    def add_key(self, path: Path, role: str, cert: x509.Certificate, *, encrypted: bool,
                fault: str | None = None) -> None:
        entry = {"file": self._relative(path), "kind": "private-key", "encrypted": encrypted,
                 "mode": "0600"}
        entry.update(self._describe(role, cert, [role], fault))
        self.entries.append(entry)

    def add_crl(self, path: Path, role: str, crl: x509.CertificateRevocationList) -> None:
        self.entries.append({
            "file": self._relative(path), "kind": "crl", "role": role,
            "issuer": crl.issuer.rfc4514_string(),
            "revoked_serials": [format(r.serial_number, "X") for r in crl],
            "this_update": crl.last_update_utc.isoformat(),
            "next_update": crl.next_update_utc.isoformat() if crl.next_update_utc else None})

    def write(self) -> Path:
        path = self.root / MANIFEST_NAME
        path.write_text(json.dumps({"files": self.entries}, indent=1) + "\n")
        return path

    def _relative(self, path: Path) -> str:
        return Path(path).relative_to(self.root).as_posix()

    @staticmethod
    def _describe(role: str, cert: x509.Certificate, chain: list[str], fault: str | None) -> dict:
        described = {
            "role": role,
            "chain": chain,
            "subject": cert.subject.rfc4514_string(),
            "issuer": cert.issuer.rfc4514_string(),
            "serial": format(cert.serial_number, "X"),
            "not_before": cert.not_valid_before_utc.isoformat(),
            "not_after": cert.not_valid_after_utc.isoformat(),
            "sha256_fingerprint": fingerprint(cert),
            "key_algorithm": _algorithm_name(cert),
        }
        if fault:
            described["fault"] = fault
        return described


def _algorithm_name(cert: x509.Certificate) -> str:
    try:
        return KeyAlgorithm.of(cert.public_key()).value
    except TypeError:
        return type(cert.public_key()).__name__


def read_manifest(directory: Path) -> list[dict]:
    return json.loads((Path(directory) / MANIFEST_NAME).read_text())["files"]
