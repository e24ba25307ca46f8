"""OCPP security profiles, as pure decisions about a connection attempt.

Profile 1: HTTP Basic authentication over plain WebSocket. Profile 2: TLS (server certificate)
plus Basic authentication. Profile 3: TLS with a client certificate whose subject CN is the
station's identity; no Basic authentication (OCPP 2.0.1 Part 2 A00.FR.2xx-4xx; OCPP 1.6 security
whitepaper §2). The username of Basic authentication is the station identity.
"""

from __future__ import annotations

import base64
import binascii
import ssl
import urllib.parse
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping

from harness.pki.ocpp import CertificateFiles
from harness.pki.tls import ocpp_server_context

PROFILES = (1, 2, 3)

#: The security events a station raises when a certificate fails, by what failed: the 2.0.1/2.1
#: name (Part 2 Appendix 1 "Security Events"; both are critical, so the station pushes them with
#: SecurityEventNotification) and the OCPP 1.6 security whitepaper's name for the same event.
SECURITY_EVENTS: dict[str, dict[str, str]] = {
    # the certificate the CSMS presented in the TLS handshake was not valid or could not be verified
    "csms_certificate": {"2.x": "InvalidCsmsCertificate", "1.6": "InvalidCentralSystemCertificate"},
    # the certificate CertificateSigned brought is not a valid certificate
    "station_certificate": {"2.x": "InvalidChargingStationCertificate", "1.6": "InvalidChargePointCertificate"},
}


def security_event_type(what: str, *, v16: bool) -> str:
    """The SecurityEventNotification type for ``what`` (a key of SECURITY_EVENTS)."""
    return SECURITY_EVENTS[what]["1.6" if v16 else "2.x"]


@dataclass(frozen=True)
class SecurityPolicy:
    """What the mock CSMS demands of connecting stations.

    ``credentials`` maps station id -> password. When it is None, any station id and password is
    accepted (auto-commissioning) and the acceptance is recorded.
    """

    profile: int = 1
    credentials: Mapping[str, str] | None = None
    server: CertificateFiles | None = None
    client_ca: Path | None = None
    minimum_tls: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2
    maximum_tls: ssl.TLSVersion | None = None
    keylog: Path | None = None

    def __post_init__(self) -> None:
        if self.profile not in PROFILES:
            raise ValueError(f"security profile must be 1, 2 or 3, not {self.profile!r}")
        if self.profile >= 2 and self.server is None:
            raise ValueError(f"security profile {self.profile} needs a server certificate and key")
        if self.profile == 3 and self.client_ca is None:
            raise ValueError("security profile 3 needs the CA that issues station certificates")

    @property
    def scheme(self) -> str:
        return "wss" if self.profile >= 2 else "ws"

    def with_credentials(self, credentials: Mapping[str, str] | None) -> "SecurityPolicy":
        return replace(self, credentials=dict(credentials) if credentials is not None else None)

    def ssl_context(self) -> ssl.SSLContext | None:
        if self.profile == 1:
            return None
        assert self.server is not None
        return ocpp_server_context(self.server.chain, self.server.key,
                                   client_ca=self.client_ca if self.profile == 3 else None,
                                   minimum=self.minimum_tls, maximum=self.maximum_tls, keylog=self.keylog)


@dataclass(frozen=True)
class Decision:
    accepted: bool
    status: int = 101
    reason: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)


#: OCPP's identifierString (2.0.1 Part 2, primitive datatypes): the characters a charging
#: station identity may have in the URL; at most :data:`MAX_STATION_ID` of them
IDENTIFIER_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789*-_=:+|@.")
MAX_STATION_ID = 48


def station_id_problem(segment: str) -> str | None:
    """Why the last path segment of an upgrade request (still percent-encoded) is no charging
    station identity, or None if it is one: it must decode as UTF-8 and then be 1 to 48 characters
    of identifierString, so no path (``../``), NUL, control character or look-alike gets in."""
    try:
        station_id = urllib.parse.unquote(segment, errors="strict")
    except UnicodeDecodeError:
        return "the station identity is not UTF-8 once percent-decoded"
    if not station_id:
        return "no station identity in the URL path"
    if len(station_id) > MAX_STATION_ID:
        return f"the station identity has {len(station_id)} characters, at most {MAX_STATION_ID} are allowed"
    wrong = sorted({c for c in station_id if c not in IDENTIFIER_CHARACTERS})
    if wrong:
        shown = ", ".join(repr(c) for c in wrong[:5])
        return (f"the station identity has characters outside OCPP's identifierString ({shown}); allowed are "
                "a-z A-Z 0-9 * - _ = : + | @ .")
    return None


def decide(policy: SecurityPolicy, station_id: str, authorization: str | None,
           client_cert_cn: str | None) -> Decision:
    """Whether a WebSocket upgrade from ``station_id`` may proceed.

    ``authorization`` is the raw Authorization header; ``client_cert_cn`` the subject CN of the
    verified client certificate (TLS has already checked its chain when it gets here). With a
    list of stations (``credentials``) only those may connect, at every profile.
    """
    if not station_id:
        return Decision(False, 404, "no station identity in the URL path")
    if policy.profile == 3:
        if client_cert_cn is None:
            return Decision(False, 401, "security profile 3 requires a client certificate")
        if client_cert_cn != station_id:
            return Decision(False, 401, f"client certificate CN {client_cert_cn!r} is not the station id {station_id!r}")
        if policy.credentials is not None and station_id not in policy.credentials:
            # a certificate the CA issued proves who the station is, not that it may connect here
            return Decision(False, 401, f"unknown station {station_id!r}: not among the stations this CSMS serves")
        return Decision(True, notes=(f"client certificate CN {client_cert_cn!r} matches",))
    credentials = parse_basic_auth(authorization)
    if credentials is None:
        return Decision(False, 401, "missing or malformed HTTP Basic Authorization header")
    username, password = credentials
    if username != station_id:
        return Decision(False, 401, f"Basic auth username {username!r} is not the station id {station_id!r}")
    if policy.credentials is None:
        return Decision(True, notes=(f"auto-commissioned station {station_id!r}",))
    expected = policy.credentials.get(station_id)
    if expected is None:
        return Decision(False, 401, f"unknown station {station_id!r}")
    if password != expected:
        return Decision(False, 401, f"wrong password for station {station_id!r}")
    return Decision(True)


def parse_basic_auth(header: str | None) -> tuple[str, str] | None:
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    username, colon, password = decoded.partition(":")
    return (username, password) if colon else None


def basic_auth_header(station_id: str, password: str) -> str:
    token = base64.b64encode(f"{station_id}:{password}".encode("utf-8")).decode("ascii")
    return f"Basic {token}"
