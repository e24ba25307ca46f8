"""Certificates for OCPP security profiles 2 and 3.

Profile 2 needs a CSMS server certificate the station trusts (its CSMSRootCertificate);
profile 3 adds a charging station certificate whose CN is the station id, signed by a CA the CSMS
trusts. The deliberately wrong variants (a server certificate from a root nobody trusts, a station
certificate from an unknown CA or with a CN that is not the station id) are what the security
profile suites use to check that a DUT refuses them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from harness.pki.builder import Issued, leaf, root_ca, sub_ca, write_key, write_pem

CPO_ORGANIZATION = "Harness CPO"


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


def generate_ocpp_pki(directory: Path, *, station_ids: Iterable[str],
                      server_names: Iterable[str] = ("localhost", "127.0.0.1", "::1")) -> OcppPki:
    directory.mkdir(parents=True, exist_ok=True)
    server_names = list(server_names)
    root = root_ca("Harness CSMS Root CA", organization=CPO_ORGANIZATION)
    station_ca = sub_ca(root, "Harness Charging Station Sub-CA", organization=CPO_ORGANIZATION)
    server = leaf(root, server_names[0], organization=CPO_ORGANIZATION,
                  server_names=server_names, server=True)
    rogue_root = root_ca("Untrusted Root CA", organization="Nobody")
    rogue_server = leaf(rogue_root, server_names[0], server_names=server_names, server=True)

    def save(stem: str, issued: Issued, *chain: Issued) -> CertificateFiles:
        return CertificateFiles(
            chain=write_pem(directory / f"{stem}.pem", issued.cert, *(c.cert for c in chain)),
            key=write_key(directory / f"{stem}.key", issued.key))

    pki = OcppPki(
        directory=directory,
        csms_root=write_pem(directory / "csms-root.pem", root.cert),
        csms_server=save("csms-server", server),
        untrusted_server=save("untrusted-server", rogue_server),
    )
    for station_id in station_ids:
        good = leaf(station_ca, station_id, organization=CPO_ORGANIZATION, client=True)
        pki.stations[station_id] = save(f"station-{station_id}", good, station_ca)
        rogue = leaf(rogue_root, station_id, organization=CPO_ORGANIZATION, client=True)
        pki.untrusted_stations[station_id] = save(f"untrusted-station-{station_id}", rogue)
        other = leaf(station_ca, f"{station_id}-OTHER", organization=CPO_ORGANIZATION, client=True)
        pki.misnamed_stations[station_id] = save(f"misnamed-station-{station_id}", other, station_ca)
    return pki
