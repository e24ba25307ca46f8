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

import datetime as _dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from harness.pki.builder import Issued, KeyUsage, leaf, now, reissue, root_ca, sub_ca, write_key, write_pem
from harness.pki.faults import tamper_tbs
from harness.pki.manifest import Manifest

CPO_ORGANIZATION = "Harness CPO"

#: CSMS server certificates a station must refuse in the TLS handshake (OCPP 2.0.1 A00 server
#: authentication: the station verifies the CSMS's certificate path to its CSMSRootCertificate,
#: the validity period and that the certificate names the host it connects to), by id
SERVER_FAULTS: dict[str, str] = {
    "untrusted-root": "issued by a root the station was never given",
    "expired": "expired yesterday",
    "not-yet-valid": "valid from tomorrow on",
    "wrong-host-name": "issued for another host name than the one the station connects to",
    "bad-signature": "its signature does not verify (one bit of it changed)",
}

#: charging station certificates a CSMS must refuse at security profile 3 (OCPP 2.0.1 A00
#: client authentication: issued under the CSMS's trusted CA, valid now, for TLS client use, and
#: naming the station that connects), by id
STATION_FAULTS: dict[str, str] = {
    "untrusted-root": "issued by a root the CSMS does not trust",
    "other-station": "a good certificate, but for another station id",
    "expired": "expired yesterday",
    "not-yet-valid": "valid from tomorrow on",
    "bad-signature": "its signature does not verify (one bit of it changed)",
    "server-only": "its extended key usage allows TLS server authentication only",
}
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
    #: server certificates with one fault each, by SERVER_FAULTS id
    faulty_servers: dict[str, CertificateFiles]
    stations: dict[str, CertificateFiles] = field(default_factory=dict)
    #: per station id, client certificates with one fault each, by STATION_FAULTS id
    faulty_stations: dict[str, dict[str, CertificateFiles]] = field(default_factory=dict)
    manufacturer_root: Path | None = None         # ManufacturerRootCertificate
    firmware_signing: CertificateFiles | None = None  # signs firmware; issued by the above

    @property
    def untrusted_server(self) -> CertificateFiles:
        """A server certificate chaining to a root nobody trusts."""
        return self.faulty_servers["untrusted-root"]


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
    faulty = {
        "untrusted-root": leaf(rogue_root, server_names[0], server_names=server_names, server=True),
        "expired": reissue(server, root, not_before=now() - _dt.timedelta(days=366),
                           not_after=now() - _dt.timedelta(days=1)),
        "not-yet-valid": reissue(server, root, not_before=now() + _dt.timedelta(days=1),
                                 not_after=now() + _dt.timedelta(days=366)),
        "wrong-host-name": leaf(root, "csms.invalid", organization=CPO_ORGANIZATION,
                                server_names=["csms.invalid"], server=True),
        "bad-signature": Issued(tamper_tbs(server.cert), server.key),
    }
    assert faulty.keys() == SERVER_FAULTS.keys()
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
        faulty_servers={fault: save(f"server-{fault}", issued) for fault, issued in faulty.items()},
        manufacturer_root=save_root("manufacturer-root", manufacturer),
        firmware_signing=save("firmware-signing", firmware),
    )
    for station_id in station_ids:
        good = leaf(station_ca, station_id, organization=CPO_ORGANIZATION, client=True)
        pki.stations[station_id] = save(f"station-{station_id}", good, station_ca,
                                        role="charging-station")
        wrong = {
            "untrusted-root": (leaf(rogue_root, station_id, organization=CPO_ORGANIZATION, client=True),),
            "other-station": (leaf(station_ca, f"{station_id}-OTHER", organization=CPO_ORGANIZATION,
                                   client=True), station_ca),
            "expired": (reissue(good, station_ca, not_before=now() - _dt.timedelta(days=366),
                                not_after=now() - _dt.timedelta(days=1)), station_ca),
            "not-yet-valid": (reissue(good, station_ca, not_before=now() + _dt.timedelta(days=1),
                                      not_after=now() + _dt.timedelta(days=366)), station_ca),
            "bad-signature": (Issued(tamper_tbs(good.cert), good.key), station_ca),
            "server-only": (leaf(station_ca, station_id, organization=CPO_ORGANIZATION, server=True),
                            station_ca),
        }
        assert wrong.keys() == STATION_FAULTS.keys()
        pki.faulty_stations[station_id] = {
            fault: save(f"station-{station_id}-{fault}", *issued, role=f"charging-station-{fault}")
            for fault, issued in wrong.items()}
    return pki
