"""TLS contexts the protocols require, built in one place.

OCPP (2.0.1 Part 2 A00, 1.6 security whitepaper): TLS 1.2 or higher; for TLS 1.2 the cipher suites
TLS_ECDHE_ECDSA_WITH_AES_128/256_GCM_SHA256/384 and TLS_RSA_WITH_AES_128/256_GCM_SHA256/384.
Profile 2 authenticates the server only, profile 3 also the station by its client certificate.

ISO 15118-2 (7.7.3): TLS 1.2; the SECC authenticates with its certificate chain (SECC leaf,
CPO Sub-CA 2, Sub-CA 1) up to a V2G root the EVCC holds; the EVCC is not authenticated in TLS (its
identity is the contract, signed at application level). Cipher suites
TLS_ECDH_ECDSA_WITH_AES_128_CBC_SHA256 and TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256 on secp256r1.
OpenSSL 1.1 and later no longer implement static ECDH suites, so only the ECDHE one is offered;
a peer that insists on TLS_ECDH_ECDSA_WITH_AES_128_CBC_SHA256 cannot be served by this stack.
The EVCC checks no host name: the SECC certificate's CN is an EVSE ID, not a DNS name.

ISO 15118-20 (7.7.3): TLS 1.3 with mutual authentication: the SECC chain to a V2G root, the
EVCC's vehicle certificate chain to an OEM root the SECC trusts. The standard's suites are
TLS_AES_256_GCM_SHA384 and TLS_CHACHA20_POLY1305_SHA256 on secp521r1 or x448 keys. Python's ssl
module cannot restrict TLS 1.3 suites or key-exchange groups (there is no set_ciphersuites and
set_ecdh_curve takes one curve), so the contexts offer OpenSSL's TLS 1.3 defaults, which list those
two suites first; :func:`iso20_cipher_allowed` lets a test or the SECC refuse anything else after
the handshake.

Every context takes ``keylog``: the NSS key log file (SSLKEYLOGFILE format) that lets Wireshark
decrypt a capture of the session.
"""

from __future__ import annotations

import ssl
import warnings
from pathlib import Path

from harness.pki.files import CertificateFileError, load_any_private_key, load_certificates
from harness.pki.private import private_file

#: OCPP's TLS 1.2 cipher suites, in OpenSSL's names
OCPP_TLS12_CIPHERS = ":".join([
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "AES128-GCM-SHA256",
    "AES256-GCM-SHA384",
])


#: ISO 15118-2's suites, in OpenSSL's names (the static-ECDH one is gone from OpenSSL, see above)
ISO2_TLS12_CIPHERS = "ECDHE-ECDSA-AES128-SHA256"

#: ISO 15118-20's TLS 1.3 suites, as Python's ssl reports the negotiated cipher
ISO20_TLS13_SUITES = ("TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256")


class TlsMaterialError(ValueError):
    """A certificate or key file that cannot be used; the message names the file."""


def iso2_secc_context(chain: Path, key: Path, *, password: bytes | None = None,
                      minimum: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2,
                      maximum: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2,
                      keylog: Path | None = None) -> ssl.SSLContext:
    """The SECC side of ISO 15118-2: TLS 1.2, server authentication only.
    ``minimum``/``maximum`` other than TLS 1.2 exist to play a non-conforming SECC."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _iso2_settings(context, minimum, maximum)
    _load_chain(context, chain, key, password)
    context.verify_mode = ssl.CERT_NONE  # -2 does not authenticate the EVCC in TLS
    _keylog(context, keylog)
    return context


def iso2_evcc_context(v2g_roots: Path, *, minimum: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2,
                      maximum: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2,
                      keylog: Path | None = None) -> ssl.SSLContext:
    """The EVCC side of ISO 15118-2: trusts the V2G root(s) in ``v2g_roots`` and nothing else."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    _iso2_settings(context, minimum, maximum)
    context.check_hostname = False  # the SECC certificate names an EVSE, not a host
    context.verify_mode = ssl.CERT_REQUIRED
    _load_trust(context, v2g_roots)
    _keylog(context, keylog)
    return context


def iso20_secc_context(chain: Path, key: Path, *, oem_roots: Path | None,
                       password: bytes | None = None,
                       minimum: ssl.TLSVersion = ssl.TLSVersion.TLSv1_3,
                       maximum: ssl.TLSVersion = ssl.TLSVersion.TLSv1_3,
                       keylog: Path | None = None) -> ssl.SSLContext:
    """The SECC side of ISO 15118-20: TLS 1.3, and the EVCC must present a vehicle certificate
    chaining to one of ``oem_roots`` (``None`` plays an SECC that skips client authentication)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _iso20_settings(context, minimum, maximum)
    _load_chain(context, chain, key, password)
    if oem_roots is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        _load_trust(context, oem_roots)
    _keylog(context, keylog)
    return context


def iso20_evcc_context(v2g_roots: Path, *, vehicle_chain: Path | None, vehicle_key: Path | None,
                       password: bytes | None = None,
                       minimum: ssl.TLSVersion = ssl.TLSVersion.TLSv1_3,
                       maximum: ssl.TLSVersion = ssl.TLSVersion.TLSv1_3,
                       keylog: Path | None = None) -> ssl.SSLContext:
    """The EVCC side of ISO 15118-20: TLS 1.3, trusts ``v2g_roots``, presents the vehicle chain."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    _iso20_settings(context, minimum, maximum)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_REQUIRED
    _load_trust(context, v2g_roots)
    if vehicle_chain is not None:
        if vehicle_key is None:
            raise TlsMaterialError(f"{vehicle_chain}: a vehicle certificate needs its private key")
        _load_chain(context, vehicle_chain, vehicle_key, password)
    _keylog(context, keylog)
    return context


def iso20_cipher_allowed(connection: ssl.SSLObject | ssl.SSLSocket) -> bool:
    """Whether an established connection uses one of ISO 15118-20's TLS 1.3 suites."""
    cipher = connection.cipher()
    return connection.version() == "TLSv1.3" and cipher is not None and cipher[0] in ISO20_TLS13_SUITES


def _iso2_settings(context: ssl.SSLContext, minimum: ssl.TLSVersion, maximum: ssl.TLSVersion) -> None:
    context.minimum_version = minimum
    context.maximum_version = maximum
    context.set_ciphers(ISO2_TLS12_CIPHERS)
    context.set_ecdh_curve("prime256v1")  # ISO 15118-2 uses secp256r1 for ECDHE too


def _iso20_settings(context: ssl.SSLContext, minimum: ssl.TLSVersion, maximum: ssl.TLSVersion) -> None:
    context.minimum_version = minimum
    context.maximum_version = maximum
    if minimum < ssl.TLSVersion.TLSv1_3:
        # only to play a non-conforming peer: let it offer the -2 suite over TLS 1.2
        context.set_ciphers(ISO2_TLS12_CIPHERS)


def _keylog(context: ssl.SSLContext, keylog: Path | None) -> None:
    if keylog is not None:
        context.keylog_filename = str(private_file(keylog))


def ocpp_server_context(chain: Path, key: Path, *, client_ca: Path | None = None,
                        minimum: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2,
                        maximum: ssl.TLSVersion | None = None,
                        keylog: Path | None = None,
                        password: bytes | None = None) -> ssl.SSLContext:
    """The CSMS side. With ``client_ca`` the client must present a certificate it issued
    (security profile 3). ``minimum``/``maximum`` below TLS 1.2 exist only to play a
    non-conforming CSMS that a station must refuse."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _versions(context, minimum, maximum)
    _load_chain(context, chain, key, password)
    if client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        _load_trust(context, client_ca)
    _keylog(context, keylog)
    return context


def ocpp_client_context(trusted_root: Path, *, client_chain: Path | None = None,
                        client_key: Path | None = None,
                        minimum: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2,
                        maximum: ssl.TLSVersion | None = None,
                        keylog: Path | None = None,
                        password: bytes | None = None) -> ssl.SSLContext:
    """The charging station side: trusts only ``trusted_root`` and checks the host name."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    _versions(context, minimum, maximum)
    _load_trust(context, trusted_root)
    if client_chain is not None:
        if client_key is None:
            raise TlsMaterialError(f"{client_chain}: a client certificate needs its private key")
        _load_chain(context, client_chain, client_key, password)
    _keylog(context, keylog)
    return context


def _versions(context: ssl.SSLContext, minimum: ssl.TLSVersion,
              maximum: ssl.TLSVersion | None) -> None:
    if minimum < ssl.TLSVersion.TLSv1_2 or (maximum is not None and maximum < ssl.TLSVersion.TLSv1_2):
        # OpenSSL 3 refuses TLS 1.0/1.1 at its default security level; a deliberately weak
        # peer has to lower it.
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
    else:
        context.set_ciphers(OCPP_TLS12_CIPHERS)
    with warnings.catch_warnings():
        # TLS 1.0/1.1 are deprecated in Python; a deliberately non-conforming peer still needs them
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = minimum
        if maximum is not None:
            context.maximum_version = maximum


def _load_chain(context: ssl.SSLContext, chain: Path, key: Path,
                password: bytes | None = None) -> None:
    # read both ourselves first: OpenSSL's errors do not say which file is wrong, or how
    try:
        load_certificates(chain)
        load_any_private_key(key, password)
    except CertificateFileError as exc:
        raise TlsMaterialError(str(exc)) from None
    try:
        context.load_cert_chain(str(chain), str(key), password=password)
    except ssl.SSLError as exc:
        if "KEY_VALUES_MISMATCH" in str(exc):
            raise TlsMaterialError(f"{key}: private key does not belong to the certificate in "
                                   f"{chain}") from None
        raise TlsMaterialError(f"{chain} / {key}: not a usable certificate chain and key ({exc.reason or exc})") from None


def _load_trust(context: ssl.SSLContext, ca: Path) -> None:
    try:
        load_certificates(ca)
    except CertificateFileError as exc:
        raise TlsMaterialError(str(exc)) from None
    try:
        context.load_verify_locations(cafile=str(ca))
    except ssl.SSLError as exc:
        raise TlsMaterialError(f"{ca}: not a PEM certificate file ({exc.reason or exc})") from None
