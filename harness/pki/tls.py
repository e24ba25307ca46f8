"""TLS contexts the protocols require, built in one place.

OCPP (2.0.1 Part 2 A00, 1.6 security whitepaper): TLS 1.2 or higher; for TLS 1.2 the cipher suites
TLS_ECDHE_ECDSA_WITH_AES_128/256_GCM_SHA256/384 and TLS_RSA_WITH_AES_128/256_GCM_SHA256/384.
Profile 2 authenticates the server only, profile 3 also the station by its client certificate.
"""

from __future__ import annotations

import ssl
import warnings
from pathlib import Path

#: OCPP's TLS 1.2 cipher suites, in OpenSSL's names
OCPP_TLS12_CIPHERS = ":".join([
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "AES128-GCM-SHA256",
    "AES256-GCM-SHA384",
])


class TlsMaterialError(ValueError):
    """A certificate or key file that cannot be used; the message names the file."""


def ocpp_server_context(chain: Path, key: Path, *, client_ca: Path | None = None,
                        minimum: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2,
                        maximum: ssl.TLSVersion | None = None,
                        keylog: Path | None = None) -> ssl.SSLContext:
    """The CSMS side. With ``client_ca`` the client must present a certificate it issued
    (security profile 3). ``minimum``/``maximum`` below TLS 1.2 exist only to play a
    non-conforming CSMS that a station must refuse."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _versions(context, minimum, maximum)
    _load_chain(context, chain, key)
    if client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        _load_trust(context, client_ca)
    if keylog is not None:
        context.keylog_filename = str(keylog)
    return context


def ocpp_client_context(trusted_root: Path, *, client_chain: Path | None = None,
                        client_key: Path | None = None,
                        minimum: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2,
                        maximum: ssl.TLSVersion | None = None,
                        keylog: Path | None = None) -> ssl.SSLContext:
    """The charging station side: trusts only ``trusted_root`` and checks the host name."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    _versions(context, minimum, maximum)
    _load_trust(context, trusted_root)
    if client_chain is not None:
        if client_key is None:
            raise TlsMaterialError(f"{client_chain}: a client certificate needs its private key")
        _load_chain(context, client_chain, client_key)
    if keylog is not None:
        context.keylog_filename = str(keylog)
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


def _load_chain(context: ssl.SSLContext, chain: Path, key: Path) -> None:
    for path in (chain, key):
        if not Path(path).is_file():
            raise TlsMaterialError(f"{path}: no such file")
    try:
        context.load_cert_chain(str(chain), str(key))
    except ssl.SSLError as exc:
        raise TlsMaterialError(f"{chain} / {key}: not a usable certificate chain and key ({exc.reason or exc})") from None


def _load_trust(context: ssl.SSLContext, ca: Path) -> None:
    if not Path(ca).is_file():
        raise TlsMaterialError(f"{ca}: no such file")
    try:
        context.load_verify_locations(cafile=str(ca))
    except ssl.SSLError as exc:
        raise TlsMaterialError(f"{ca}: not a PEM certificate file ({exc.reason or exc})") from None
