"""How an SECC that speaks ISO 15118-2 and -20 on one TLS port answers each EV: chain, versions,
key exchange and client authentication, chosen from what the EV's ClientHello offers.

A real charger cannot ask the EV which generation it speaks before the handshake; the EV says so
in its ClientHello. The choice, in this order (:meth:`SeccTls.choose`):

1. The roots the EV names: ``certificate_authorities`` ([V2G20-2369], the SECC presents a chain to
   one of them, [V2G20-2379]) or ``trusted_ca_keys`` ([V2G2-651]; [V2G2-871]). A chain whose V2G
   root the EV named wins.
2. Otherwise the versions and groups: TLS 1.3 with an ISO 15118-20 group (secp521r1 or x448,
   -20 Table 7) offered, and the SECC offering -20 -> the -20 chain; else the -2 chain.
3. The -20 chain runs on TLS 1.3 only, asks for the vehicle certificate and verifies it against the
   OEM roots ([V2G20-1264] mutual authentication, [V2G20-2400], a handshake that fails on a bad
   vehicle chain, [V2G20-2443]); with secp521r1 offered the key exchange is pinned to it. The -2
   chain runs on TLS 1.2 ([V2G2-067]) without client authentication; on TLS 1.3 only when the EV
   offers nothing older and named the -2 root (ISO 15118-20 Table 5 lets -2 run on TLS 1.3).

What Python's ssl module cannot do, said here: the SECC does not list its OEM roots in
CertificateRequest.certificate_authorities ([V2G20-2401]); the x448 group and the -20 cipher
suites are not enforced in the handshake (a -20 session on another suite is refused right after
it, :func:`harness.pki.tls.iso20_cipher_allowed`).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field

from cryptography import x509

from harness.pki.clienthello import ALERT_HANDSHAKE_FAILURE, ALERT_PROTOCOL_VERSION, SECP521R1, X448, ClientHello

#: key-exchange groups of ISO 15118-20 (Table 7, [V2G20-1634])
ISO20_GROUPS = (SECP521R1, X448)


#: why the SECC presents a chain from a root nobody trusts (fault fail_tls)
UNTRUSTED_CHAIN = "a chain from a V2G root nobody trusts (fault fail_tls)"


@dataclass(frozen=True)
class TlsChoice:
    """What the SECC answers a ClientHello with: ``context`` None refuses the handshake with the
    TLS ``alert`` (RFC 8446 6.2)."""

    context: ssl.SSLContext | None
    generation: str | None
    why: str
    alert: int = ALERT_HANDSHAKE_FAILURE


@dataclass
class SeccTls:
    """The SECC's TLS material per generation (either may be missing) and the choice among it."""

    #: -2 chain, TLS 1.2, no client authentication
    iso2: ssl.SSLContext | None = None
    #: -2 chain on TLS 1.3 (an EV that offers nothing older and named the -2 root)
    iso2_tls13: ssl.SSLContext | None = None
    #: -20 chain, TLS 1.3, vehicle certificate required; key exchange pinned to secp521r1
    iso20: ssl.SSLContext | None = None
    #: the same without the pinned group (an EV that offers x448 and not secp521r1)
    iso20_x448: ssl.SSLContext | None = None
    iso2_root: x509.Certificate | None = None
    iso20_root: x509.Certificate | None = None
    #: the SECC offers ISO 15118-20 (its protocols); without it the -20 chain is never presented
    offers_iso20: bool = True
    #: presented to every EV whatever it offers (fault fail_tls: a chain no EV should accept)
    forced: ssl.SSLContext | None = field(default=None, repr=False)
    #: what is wrong with the forced chain, for the timeline
    forced_why: str = UNTRUSTED_CHAIN

    def choose(self, hello: ClientHello) -> TlsChoice:
        if self.forced is not None:
            return TlsChoice(self.forced, None, self.forced_why)
        iso20_ok = self.iso20 is not None and self.offers_iso20 and hello.tls13
        named20 = self.iso20_root is not None and hello.names_root(self.iso20_root)
        named2 = self.iso2_root is not None and hello.names_root(self.iso2_root)
        if iso20_ok and named20:
            return self._iso20(hello, "the EV named the -20 V2G root")
        if named2 and self.iso2 is not None:
            return self._iso2(hello, "the EV named the -2 V2G root")
        if iso20_ok and any(g in hello.groups for g in ISO20_GROUPS):
            return self._iso20(hello, "TLS 1.3 with an ISO 15118-20 group offered")
        if self.iso2 is not None:
            return self._iso2(hello, "no TLS 1.3 with an ISO 15118-20 group offered" if self.offers_iso20
                              else "this SECC does not offer ISO 15118-20")
        if iso20_ok:
            return TlsChoice(None, None, "the EV offers neither secp521r1 nor x448, the ISO 15118-20 groups "
                                         "([V2G20-1634]), and this SECC has no -2 chain")
        return TlsChoice(None, None, "no chain for what the EV offers (TLS 1.3 for -20, TLS 1.2 for -2)",
                         alert=ALERT_PROTOCOL_VERSION)

    def _iso20(self, hello: ClientHello, why: str) -> TlsChoice:
        if SECP521R1 in hello.groups or self.iso20_x448 is None:
            return TlsChoice(self.iso20, "iso20", f"-20 chain, TLS 1.3, vehicle certificate required: {why}")
        return TlsChoice(self.iso20_x448, "iso20", f"-20 chain, TLS 1.3 (x448), vehicle certificate required: {why}")

    def _iso2(self, hello: ClientHello, why: str) -> TlsChoice:
        if hello.tls12:
            return TlsChoice(self.iso2, "iso2", f"-2 chain, TLS 1.2: {why}")
        if self.iso2_tls13 is not None and self.iso2_root is not None and hello.names_root(self.iso2_root):
            return TlsChoice(self.iso2_tls13, "iso2", f"-2 chain, TLS 1.3 (-20 Table 5): {why}")
        return TlsChoice(None, "iso2", f"the -2 chain needs TLS 1.2 ([V2G2-067]), which the EV does not offer "
                                       f"({why})", alert=ALERT_PROTOCOL_VERSION)
