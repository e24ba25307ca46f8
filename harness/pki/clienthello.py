"""What a TLS client offers, read from its ClientHello before the handshake goes on (sans-IO).

A server that serves two PKIs on one port must choose its certificate chain, its versions and
whether it asks for a client certificate before it answers: an ISO 15118 SECC serves -2 (TLS 1.2,
server authentication) and -20 (TLS 1.3, mutual authentication) and learns which from the
ClientHello alone -- the supported versions, the key-exchange groups and signature algorithms,
and the roots the EV trusts (``trusted_ca_keys``, RFC 6066, which ISO 15118-2 [V2G2-651] asks the
EVCC to send; ``certificate_authorities``, RFC 8446 4.2.4, which ISO 15118-20 [V2G20-2369] asks
for). Python's ssl module shows none of this before the handshake, so the SECC reads the bytes
itself (:func:`parse_client_hello`) without taking them off the socket.

Wire format: RFC 8446 4.1.2 and 5.1 (TLS 1.2 has the same ClientHello framing, RFC 5246 7.4.1.2).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization

HANDSHAKE = 22
CLIENT_HELLO = 1
#: the largest ClientHello the harness reads (TLS records carry at most 2^14 bytes)
MAX_HELLO = 16384 + 5

EXT_SERVER_NAME = 0
EXT_TRUSTED_CA_KEYS = 3
EXT_SUPPORTED_GROUPS = 10
EXT_SIGNATURE_ALGORITHMS = 13
EXT_SUPPORTED_VERSIONS = 43
EXT_CERTIFICATE_AUTHORITIES = 47

TLS12 = 0x0303
TLS13 = 0x0304
#: named groups (IANA TLS Supported Groups)
SECP256R1, SECP521R1, X25519, X448 = 0x0017, 0x0019, 0x001D, 0x001E

#: TLS alerts a server sends before the handshake when it has nothing to offer (RFC 8446 6.2)
ALERT_HANDSHAKE_FAILURE = 40
ALERT_PROTOCOL_VERSION = 70


def alert_record(description: int) -> bytes:
    """A fatal TLS alert as a plaintext record (RFC 8446 6: level 2, fatal)."""
    return bytes((21, 3, 3, 0, 2, 2, description))


VERSION_NAMES = {0x0301: "TLSv1.0", 0x0302: "TLSv1.1", TLS12: "TLSv1.2", TLS13: "TLSv1.3"}
GROUP_NAMES = {SECP256R1: "secp256r1", 0x0018: "secp384r1", SECP521R1: "secp521r1", X25519: "x25519", X448: "x448"}


class ClientHelloError(ValueError):
    """Bytes that are not a ClientHello the harness can read; the message says what is wrong."""


@dataclass(frozen=True)
class TrustedAuthority:
    """One entry of ``trusted_ca_keys`` (RFC 6066 6): a key or certificate SHA-1 hash, or a name."""

    kind: str  # pre_agreed, key_sha1_hash, x509_name, cert_sha1_hash
    value: bytes


@dataclass(frozen=True)
class ClientHello:
    legacy_version: int
    #: supported_versions if sent (TLS 1.3 clients), else the legacy version alone
    versions: tuple[int, ...]
    groups: tuple[int, ...] = ()
    signature_algorithms: tuple[int, ...] = ()
    server_name: str | None = None
    #: DER distinguished names of ``certificate_authorities``
    certificate_authorities: tuple[bytes, ...] = ()
    trusted_ca_keys: tuple[TrustedAuthority, ...] = ()

    @property
    def tls13(self) -> bool:
        return TLS13 in self.versions

    @property
    def tls12(self) -> bool:
        return TLS12 in self.versions

    def names_root(self, root: x509.Certificate) -> bool:
        """Whether the client said it trusts ``root`` (certificate_authorities or trusted_ca_keys)."""
        subject = root.subject.public_bytes()
        if subject in self.certificate_authorities:
            return True
        if not self.trusted_ca_keys:
            return False
        # key_sha1_hash is the SHA-1 of the subjectPublicKey BIT STRING: a key identifier of method 1 (RFC 5280 4.2.1.2)
        digests = {"key_sha1_hash": x509.SubjectKeyIdentifier.from_public_key(root.public_key()).digest,
                   "cert_sha1_hash": hashlib.sha1(root.public_bytes(serialization.Encoding.DER)).digest(),
                   "x509_name": subject}
        return any(digests.get(a.kind) == a.value for a in self.trusted_ca_keys)

    def describe(self) -> dict:
        """For the timeline: what the client offered, in words."""
        return {"versions": [VERSION_NAMES.get(v, f"0x{v:04X}") for v in self.versions],
                "groups": [GROUP_NAMES.get(g, f"0x{g:04X}") for g in self.groups],
                "signature_algorithms": [f"0x{s:04X}" for s in self.signature_algorithms],
                "server_name": self.server_name,
                "certificate_authorities": [_name(dn) for dn in self.certificate_authorities],
                "trusted_ca_keys": [f"{a.kind}:{a.value.hex().upper()}" for a in self.trusted_ca_keys]}


def hello_length(data: bytes) -> int | None:
    """How many bytes the TLS records holding the whole ClientHello take, once ``data`` (the start
    of the stream) says so; None while more bytes are needed. ClientHelloError for a stream that
    does not start with a handshake record."""
    if len(data) < 5:
        return None
    if data[0] != HANDSHAKE:
        raise ClientHelloError(f"the stream starts with TLS record type {data[0]}, not a handshake (22): "
                               f"not TLS, or not a ClientHello")
    if len(data) < 9:
        return None
    needed = 4 + int.from_bytes(data[6:9], "big")  # the handshake message, across records
    offset, collected = 0, 0
    while collected < needed:
        if len(data) < offset + 5:
            return None
        if data[offset] != HANDSHAKE:
            raise ClientHelloError(f"ClientHello cut by a TLS record of type {data[offset]}")
        length = int.from_bytes(data[offset + 3:offset + 5], "big")
        if length == 0 or length > 16384:
            raise ClientHelloError(f"TLS record length {length} (1..16384)")
        offset += 5 + length
        collected += length
        if offset > MAX_HELLO * 4:
            raise ClientHelloError("ClientHello longer than the harness reads")
    return offset


def parse_client_hello(data: bytes) -> ClientHello:
    """The ClientHello in the TLS records at the start of ``data`` (see :func:`hello_length`)."""
    total = hello_length(data)
    if total is None or len(data) < total:
        raise ClientHelloError(f"incomplete ClientHello ({len(data)} bytes)")
    message = bytearray()
    offset = 0
    while offset < total:
        length = int.from_bytes(data[offset + 3:offset + 5], "big")
        message += data[offset + 5:offset + 5 + length]
        offset += 5 + length
    if message[0] != CLIENT_HELLO:
        raise ClientHelloError(f"handshake message type {message[0]}, not ClientHello (1)")
    body = _Reader(bytes(message[4:4 + int.from_bytes(message[1:4], "big")]), "ClientHello")
    legacy_version = body.uint(2)
    body.take(32)  # random
    body.vector(1, "legacy_session_id")
    suites = body.vector(2, "cipher_suites")
    if len(suites) % 2:
        raise ClientHelloError("ClientHello cipher_suites has an odd length")
    body.vector(1, "legacy_compression_methods")
    found: dict[str, object] = {}
    if body.remaining:
        block = _Reader(body.vector(2, "extensions"), "extensions")
        while block.remaining:
            kind = block.uint(2)
            _extension(kind, _Reader(block.vector(2, f"extension {kind}"), f"extension {kind}"), found)
    versions = found.get("versions") or (legacy_version,)
    return ClientHello(legacy_version, tuple(versions),  # type: ignore[arg-type]
                       groups=found.get("groups", ()),  # type: ignore[arg-type]
                       signature_algorithms=found.get("signature_algorithms", ()),  # type: ignore[arg-type]
                       server_name=found.get("server_name"),  # type: ignore[arg-type]
                       certificate_authorities=found.get("certificate_authorities", ()),  # type: ignore[arg-type]
                       trusted_ca_keys=found.get("trusted_ca_keys", ()))  # type: ignore[arg-type]


def _extension(kind: int, data: "_Reader", found: dict[str, object]) -> None:
    if kind == EXT_SUPPORTED_VERSIONS:
        found["versions"] = _uint16s(data.vector(1, "supported_versions"))
    elif kind == EXT_SUPPORTED_GROUPS:
        found["groups"] = _uint16s(data.vector(2, "supported_groups"))
    elif kind == EXT_SIGNATURE_ALGORITHMS:
        found["signature_algorithms"] = _uint16s(data.vector(2, "signature_algorithms"))
    elif kind == EXT_SERVER_NAME:
        names = _Reader(data.vector(2, "server_name_list"), "server_name_list")
        while names.remaining:
            name_type = names.uint(1)
            name = names.vector(2, "server name")
            if name_type == 0:
                found["server_name"] = name.decode("ascii", errors="replace")
    elif kind == EXT_CERTIFICATE_AUTHORITIES:
        authorities = _Reader(data.vector(2, "certificate_authorities"), "certificate_authorities")
        dns = []
        while authorities.remaining:
            dns.append(authorities.vector(2, "DistinguishedName"))
        found["certificate_authorities"] = tuple(dns)
    elif kind == EXT_TRUSTED_CA_KEYS:
        listed = _Reader(data.vector(2, "trusted_authorities_list"), "trusted_authorities_list")
        kinds = {0: "pre_agreed", 1: "key_sha1_hash", 2: "x509_name", 3: "cert_sha1_hash"}
        authorities_ = []
        while listed.remaining:
            identifier = listed.uint(1)
            if identifier in (1, 3):
                value = listed.take(20)
            elif identifier == 2:
                value = listed.vector(2, "DistinguishedName")
            elif identifier == 0:
                value = b""
            else:
                raise ClientHelloError(f"trusted_ca_keys identifier type {identifier} (0..3)")
            authorities_.append(TrustedAuthority(kinds[identifier], value))
        found["trusted_ca_keys"] = tuple(authorities_)


class _Reader:
    def __init__(self, data: bytes, what: str) -> None:
        self.data = data
        self.offset = 0
        self.what = what

    @property
    def remaining(self) -> int:
        return len(self.data) - self.offset

    def take(self, count: int) -> bytes:
        if self.remaining < count:
            raise ClientHelloError(f"{self.what} ends {count - self.remaining} bytes early")
        chunk = self.data[self.offset:self.offset + count]
        self.offset += count
        return chunk

    def uint(self, size: int) -> int:
        return int.from_bytes(self.take(size), "big")

    def vector(self, length_size: int, what: str) -> bytes:
        length = self.uint(length_size)
        if self.remaining < length:
            raise ClientHelloError(f"{self.what}: {what} claims {length} bytes, {self.remaining} are left")
        return self.take(length)


def _uint16s(data: bytes) -> tuple[int, ...]:
    return tuple(int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data) - 1, 2))


def _name(der: bytes) -> str:
    """A DistinguishedName as hex (cryptography reads names only inside certificates); the SECC
    names a root it recognises by its subject instead."""
    return der.hex().upper()
