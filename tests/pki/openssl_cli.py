"""The ``openssl`` command line as an independent second opinion on our certificates.

Nothing in the harness uses it; tests run it as a subprocess so that a chain we call valid (or
refuse) is judged by an implementation that shares no code with ours.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from harness.pki.builder import write_pem

OPENSSL = shutil.which("openssl")
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="the openssl command line is not installed")


@dataclass(frozen=True)
class Verdict:
    ok: bool
    errors: tuple[int, ...]   # OpenSSL X509_V_ERR codes, in the order reported
    output: str

    def __str__(self) -> str:
        return self.output


def verify(directory: Path, presented: Sequence[x509.Certificate], anchors: Sequence[x509.Certificate],
           *, crls: Sequence[x509.CertificateRevocationList] = (), hostname: str | None = None,
           purpose: str | None = None, suite_b: bool = False) -> Verdict:
    """``openssl verify`` of ``presented[0]`` with the rest as untrusted intermediates.

    ``suite_b`` restricts OpenSSL to P-256 with SHA-256 (RFC 6460 128-bit only), which is exactly
    ISO 15118-2's algorithm rule; ``hostname`` checks the CN (a contract certificate's eMAID).
    """
    directory.mkdir(parents=True, exist_ok=True)
    args = [OPENSSL, "verify", "-x509_strict",
            "-CAfile", str(write_pem(directory / "anchors.pem", *anchors))]
    if len(presented) > 1:
        args += ["-untrusted", str(write_pem(directory / "untrusted.pem", *presented[1:]))]
    if crls:
        crl_file = directory / "crls.pem"
        crl_file.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in crls))
        args += ["-crl_check", "-CRLfile", str(crl_file)]
    if hostname:
        args += ["-verify_hostname", hostname]
    if purpose:
        args += ["-purpose", purpose]
    if suite_b:
        args += ["-suiteB_128_only"]
    args.append(str(write_pem(directory / "leaf.pem", presented[0])))
    return _run(args)


def verify_each_issued_by_next(directory: Path, presented: Sequence[x509.Certificate]) -> Verdict:
    """ISO 15118's order rule checked with OpenSSL: each certificate must verify with the next one
    as its (partial-chain) trust anchor. Plain ``openssl verify`` reorders untrusted certificates
    itself (as TLS 1.3 allows, RFC 8446 4.4.2), so it cannot see a wrong order."""
    errors: list[int] = []
    outputs = []
    for index, (child, parent) in enumerate(zip(presented, presented[1:])):
        verdict = _run([OPENSSL, "verify", "-partial_chain", "-no_check_time",
                        "-CAfile", str(write_pem(directory / f"parent{index}.pem", parent)),
                        str(write_pem(directory / f"child{index}.pem", child))])
        errors += verdict.errors
        outputs.append(verdict.output)
    return Verdict(not errors, tuple(errors), "\n".join(outputs))


def subject_rfc2253(directory: Path, cert: x509.Certificate) -> str:
    """The subject as ``openssl x509`` prints it, RFC 2253 style (most significant last)."""
    path = write_pem(directory / "subject.pem", cert)
    done = subprocess.run([OPENSSL, "x509", "-noout", "-subject", "-nameopt", "RFC2253",
                           "-in", str(path)], capture_output=True, text=True, check=True)
    return done.stdout.strip().removeprefix("subject=")


def ocsp_status(directory: Path, cert: x509.Certificate, issuer: x509.Certificate, url: str) -> str:
    """Ask the responder at ``url`` with ``openssl ocsp``; returns good, revoked or unknown."""
    done = _run([OPENSSL, "ocsp", "-url", url, "-no_nonce",
                 "-issuer", str(write_pem(directory / "issuer.pem", issuer)),
                 "-VAfile", str(directory / "issuer.pem"),
                 "-cert", str(write_pem(directory / "cert.pem", cert))], check_errors=False)
    match = re.search(r"cert\.pem: (good|revoked|unknown)", done.output)
    if not match or "Response verify OK" not in done.output:
        raise AssertionError(f"openssl ocsp gave no verified status:\n{done.output}")
    return match.group(1)


def _run(args: list[str], *, check_errors: bool = True) -> Verdict:
    done = subprocess.run(args, capture_output=True, text=True)
    output = done.stdout + done.stderr
    errors = tuple(int(code) for code in re.findall(r"error (\d+) at \d+ depth", output))
    return Verdict(done.returncode == 0 and not errors, errors, output)
