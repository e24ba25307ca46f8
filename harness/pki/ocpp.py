"""Certificates for OCPP security profiles 2 and 3.

Profile 2 needs a CSMS server certificate the station trusts (its CSMSRootCertificate);
profile 3 adds a charging station certificate whose CN is the station id, signed by a CA the CSMS
trusts. The deliberately wrong variants (a server certificate from a root nobody trusts, a station
certificate from an unknown CA or with a CN that is not the station id) are what the security
profile suites use to check that a DUT refuses them.

The Manufacturer root (OCPP 2.0.1 certificateType ManufacturerRootCertificate, installed with
InstallCertificate) is what a station verifies signed firmware against (use case L01); the
firmware signing certificate it issues signs the firmware images the harness offers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from harness.pki.builder import Issued, KeyUsage, leaf, root_ca, sub_ca, write_key, write_pem
from harness.pki.manifest import Manifest

CPO_ORGANIZATION = "Harness CPO"
MANUFACTURER_ORGANIZATION = "Harness Manufacturer"


@dataclass(frozen=True)
class CertificateFiles:
    """A certificate chain (leaf first) and its key as files, as TLS libraries want them."""

    chain: Path
    key: Path


@dataclass(frozen=True)
class OcppPki:
    """The files of one generated OCPP PKI."""

    directory: Path
    csms_root: Path                  # what stations trust (CSMSRootCertificate)
    csms_server: CertificateFiles    # what the mock CSMS presents
    untrusted_server: CertificateFiles  # a server certificate chaining to a root nobody trusts
    stations: dict[str, CertificateFiles] = field(default_factory=dict)
    untrusted_stations: dict[str, CertificateFiles] = field(default_factory=dict)
    #: station certificates from the trusted CA whose CN is not the station id
    misnamed_stations: dict[str, CertificateFiles] = field(default_factory=dict)
    manufacturer_root: Path | None = None         # ManufacturerRootCertificate
    firmware_signing: CertificateFiles | None = None  # signs firmware; issued by the above


def generate_ocpp_pki(directory: Path, *, station_ids: Iterable[str],
                      server_names: Iterable[str] = ("localhost", "127.0.0.1", "::1"),
                      password: bytes | None = None,
                      manifest: Manifest | None = None) -> OcppPki:
    """Write the OCPP material to ``directory``; keys are 0600 and encrypted with ``password``
    when one is given; with ``manifest``, every file is recorded there."""
    directory.mkdir(parents=True, exist_ok=True)
    server_names = list(server_names)
    root = root_ca("Harness CSMS Root CA", organization=CPO_ORGANIZATION)
    station_ca = sub_ca(root, "Harness Charging Station Sub-CA", organization=CPO_ORGANIZATION)
    server = leaf(root, server_names[0], organization=CPO_ORGANIZATION,
                  server_names=server_names, server=True)
    rogue_root = root_ca("Untrusted Root CA", organization="Nobody")
    rogue_server = leaf(rogue_root, server_names[0], server_names=server_names, server=True)
    manufacturer = root_ca("Harness Manufacturer Root CA", organization=MANUFACTURER_ORGANIZATION)
    firmware = leaf(manufacturer, "Harness Firmware Signing", organization=MANUFACTURER_ORGANIZATION,
                    key_usage=KeyUsage(digital_signature=True))

    def save(stem: str, issued: Issued, *chain: Issued, role: str | None = None) -> CertificateFiles:
        files = CertificateFiles(
            chain=write_pem(directory / f"{stem}.pem", issued.cert, *(c.cert for c in chain)),
            key=write_key(directory / f"{stem}.key", issued.key, password))
        if manifest is not None:
            top = chain[-1] if chain else issued
            names = [role or stem] + [c.subject_cn for c in chain] + [top.cert.issuer.rfc4514_string()]
            manifest.add_certificate(files.chain, role or stem, issued.cert, names)
            manifest.add_key(files.key, role or stem, issued.cert, encrypted=password is not None)
        return files

    def save_root(stem: str, issued: Issued) -> Path:
        path = write_pem(directory / f"{stem}.pem", issued.cert)
        if manifest is not None:
            manifest.add_certificate(path, stem, issued.cert, [stem])
        return path

    pki = OcppPki(
        directory=directory,
        csms_root=save_root("csms-root", root),
        csms_server=save("csms-server", server, role="csms-server"),
        untrusted_server=save("untrusted-server", rogue_server),
        manufacturer_root=save_root("manufacturer-root", manufacturer),
        firmware_signing=save("firmware-signing", firmware),
    )
    for station_id in station_ids:
        good = leaf(station_ca, station_id, organization=CPO_ORGANIZATION, client=True)
        pki.stations[station_id] = save(f"station-{station_id}", good, station_ca,
                                        role="charging-station")
        rogue = leaf(rogue_root, station_id, organization=CPO_ORGANIZATION, client=True)
        pki.untrusted_stations[station_id] = save(f"untrusted-station-{station_id}", rogue,
                                                  role="untrusted-charging-station")
        other = leaf(station_ca, f"{station_id}-OTHER", organization=CPO_ORGANIZATION, client=True)
        pki.misnamed_stations[station_id] = save(f"misnamed-station-{station_id}", other,
                                                 station_ca, role="misnamed-charging-station")
    return pki
