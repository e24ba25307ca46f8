"""``harness certs generate``: every test PKI, its CRLs and the faulty variants, with a manifest.

Layout of the output directory::

    iso2/                 ISO 15118-2 (secp256r1): <role>.pem, <role>.key, <leaf>-chain.pem
    iso20-secp521r1/      ISO 15118-20, default curve
    iso20-ed448/          ISO 15118-20, Ed448
    ocpp/                 CSMS server, charging stations, Manufacturer root (security profiles 2, 3)
    crl/<part>-<ca>.crl   an (empty) CRL per CA, as the CRL distribution points name them
    faults/<part>/<role>/<fault>/   chain.pem (as presented), leaf.key, anchors.pem, crl.pem
    manifest.json         every file: role, chain, subject, serial, validity, fingerprint
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from cryptography.hazmat.primitives import serialization

from harness.pki.builder import KeyAlgorithm, write_key, write_pem
from harness.pki.faults import CATALOGUE, Fault
from harness.pki.iso15118 import DEFAULT_REVOCATION_BASE_URL, Iso15118Pki, build_iso15118_pki, write_iso15118_pki
from harness.pki.manifest import Manifest
from harness.pki.ocpp import OcppPki, generate_ocpp_pki
from harness.pki.profiles import DEFAULT_EMAID, PROFILES, Generation, Role
from harness.pki.revocation import build_crl

#: the ISO 15118 PKIs ``generate`` builds, by directory name
ISO15118_PARTS: dict[str, tuple[Generation, KeyAlgorithm]] = {
    "iso2": (Generation.ISO2, KeyAlgorithm.SECP256R1),
    "iso20-secp521r1": (Generation.ISO20, KeyAlgorithm.SECP521R1),
    "iso20-ed448": (Generation.ISO20, KeyAlgorithm.ED448),
}
PARTS = (*ISO15118_PARTS, "ocpp")

#: the chains whose faulty variants are written (the ones DUTs get to see)
FAULTY_ROLES = (Role.SECC, Role.CONTRACT)


@dataclass
class GeneratedPki:
    directory: Path
    manifest: Path
    iso15118: dict[str, Iso15118Pki] = field(default_factory=dict)
    ocpp: OcppPki | None = None


def generate(out: Path, *, parts: Iterable[str] = PARTS, password: bytes | None = None,
             station_ids: Iterable[str] = ("CS001",),
             server_names: Iterable[str] = ("localhost", "127.0.0.1", "::1"),
             revocation_base_url: str = DEFAULT_REVOCATION_BASE_URL,
             faults: Iterable[Fault] | None = CATALOGUE) -> GeneratedPki:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(out)
    result = GeneratedPki(out, out / "manifest.json")
    for part in parts:
        if part == "ocpp":
            result.ocpp = generate_ocpp_pki(out / "ocpp", station_ids=station_ids,
                                            server_names=server_names, password=password,
                                            manifest=manifest)
            continue
        generation, algorithm = ISO15118_PARTS[part]
        pki = build_iso15118_pki(generation, algorithm, revocation_base_url=revocation_base_url)
        result.iso15118[part] = pki
        write_iso15118_pki(pki, out / part, manifest, password=password)
        _write_crls(pki, out, manifest)
        if faults:
            _write_faults(pki, part, out / "faults" / part, manifest, list(faults), password)
    manifest.write()
    return result


def _write_crls(pki: Iso15118Pki, out: Path, manifest: Manifest) -> None:
    for role, issued in pki.issued.items():
        if not PROFILES[role].ca:
            continue
        path = out / "crl" / Path(pki.crl_url(role)).name
        path.parent.mkdir(parents=True, exist_ok=True)
        crl = build_crl(issued, [])
        path.write_bytes(crl.public_bytes(serialization.Encoding.DER))
        manifest.add_crl(path, f"{role.value}-crl", crl)


def _write_faults(pki: Iso15118Pki, part: str, directory: Path, manifest: Manifest,
                  faults: list[Fault], password: bytes | None) -> None:
    for role in FAULTY_ROLES:
        chain = pki.chain(role)
        for fault in faults:
            if not fault.applies_to(role):
                continue
            try:
                case = fault.apply(chain, emaid=DEFAULT_EMAID if role is Role.CONTRACT else None)
            except ValueError:  # a fault this part's algorithm cannot have (e.g. hash with EdDSA)
                continue
            where = directory / role.value / fault.id
            label = f"{part}/{role.value}/{fault.id}"
            manifest.add_certificate(write_pem(where / "chain.pem", *case.certificates),
                                     f"{role.value}-chain", case.leaf.cert,
                                     [f"{role.value}", *(c.subject.rfc4514_string()
                                                         for c in case.certificates[1:])],
                                     fault=label)
            manifest.add_key(write_key(where / "leaf.key", case.leaf.key, password),
                             role.value, case.leaf.cert, encrypted=password is not None,
                             fault=label)
            write_pem(where / "anchors.pem", *case.anchors)
            if case.ocsp_revoked:  # what the OCSP responder must be told to answer "revoked"
                (where / "ocsp-revoked-serials.txt").write_text(
                    "".join(f"{serial:X}\n" for serial in sorted(case.ocsp_revoked)))
            if case.crls:
                (where / "crl.pem").write_bytes(b"".join(
                    c.public_bytes(serialization.Encoding.PEM) for c in case.crls))
