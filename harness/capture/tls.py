"""TLS records of a captured connection, decrypted with the secrets of a key log.

Sans-IO: :class:`TlsConnection` takes the bytes each side sent (in order, as TCP delivered them)
and gives back what the application sent inside, plus what the handshake showed in the clear
(version, cipher suite, server name, alerts). The secrets come from an NSS key log
(:class:`KeyLog`; the harness's CSMS and SECC write one, and so do OpenSSL, NSS and most TLS
stacks when asked), looked up by the ClientHello's random:

- TLS 1.2 (RFC 5246): ``CLIENT_RANDOM`` gives the master secret; the key block is
  PRF(master secret, "key expansion", server random + client random) cut into MAC keys, cipher
  keys and fixed IVs (6.3). CBC suites with HMAC, MAC-then-encrypt or, when the ServerHello
  carried the extension, encrypt-then-MAC (RFC 7366); AES-GCM with the 4-byte fixed IV and the
  record's 8-byte explicit nonce (RFC 5288); ChaCha20-Poly1305 (RFC 7905).
- TLS 1.3 (RFC 8446): ``CLIENT_/SERVER_HANDSHAKE_TRAFFIC_SECRET`` for the encrypted handshake,
  ``CLIENT_/SERVER_TRAFFIC_SECRET_0`` after each side's Finished, each key and IV
  HKDF-Expand-Label(secret, "key"/"iv") (7.3), the nonce the IV xor the record number (5.3), and
  KeyUpdate followed (7.2).

A record that does not authenticate under the keys stops the decryption of that direction with
a :class:`TlsNote` saying so: a wrong key log must not produce invented plaintext.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

CLIENT = "client"
SERVER = "server"

CHANGE_CIPHER_SPEC = 20
ALERT = 21
HANDSHAKE = 22
APPLICATION_DATA = 23
#: the most a record's fragment may be: 2^14 plus the expansion TLS 1.2 allows (RFC 5246 6.2.3)
MAX_RECORD = 2 ** 14 + 2048

#: the ServerHello random of a HelloRetryRequest (RFC 8446 4.1.3)
HELLO_RETRY_RANDOM = hashlib.sha256(b"HelloRetryRequest").digest()

ALERTS = {0: "close_notify", 10: "unexpected_message", 20: "bad_record_mac", 22: "record_overflow",
          40: "handshake_failure", 42: "bad_certificate", 43: "unsupported_certificate",
          44: "certificate_revoked", 45: "certificate_expired", 46: "certificate_unknown",
          47: "illegal_parameter", 48: "unknown_ca", 49: "access_denied", 50: "decode_error",
          51: "decrypt_error", 70: "protocol_version", 71: "insufficient_security", 80: "internal_error",
          86: "inappropriate_fallback", 90: "user_canceled", 109: "missing_extension",
          110: "unsupported_extension", 112: "unrecognized_name", 116: "certificate_required",
          120: "no_application_protocol"}


@dataclass(frozen=True)
class Suite:
    name: str
    tls13: bool
    #: "cbc", "gcm" or "chacha"
    cipher: str
    key_length: int
    #: the PRF's (1.2) or HKDF's (1.3) hash
    hash: str
    #: the record MAC's hash (CBC suites only)
    mac: str | None = None

    @property
    def fixed_iv_length(self) -> int:
        if self.tls13 or self.cipher == "chacha":
            return 12
        return 4 if self.cipher == "gcm" else 0


def _suites() -> dict[int, Suite]:
    table = {
        0x1301: Suite("TLS_AES_128_GCM_SHA256", True, "gcm", 16, "sha256"),
        0x1302: Suite("TLS_AES_256_GCM_SHA384", True, "gcm", 32, "sha384"),
        0x1303: Suite("TLS_CHACHA20_POLY1305_SHA256", True, "chacha", 32, "sha256"),
        0xCCA8: Suite("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", False, "chacha", 32, "sha256"),
        0xCCA9: Suite("TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", False, "chacha", 32, "sha256"),
    }
    gcm = {0x009C: "RSA_WITH_AES_128_GCM_SHA256", 0x009D: "RSA_WITH_AES_256_GCM_SHA384",
           0xC02B: "ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", 0xC02C: "ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
           0xC02F: "ECDHE_RSA_WITH_AES_128_GCM_SHA256", 0xC030: "ECDHE_RSA_WITH_AES_256_GCM_SHA384"}
    cbc = {0x002F: "RSA_WITH_AES_128_CBC_SHA", 0x0035: "RSA_WITH_AES_256_CBC_SHA",
           0x003C: "RSA_WITH_AES_128_CBC_SHA256", 0x003D: "RSA_WITH_AES_256_CBC_SHA256",
           0xC009: "ECDHE_ECDSA_WITH_AES_128_CBC_SHA", 0xC00A: "ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
           0xC013: "ECDHE_RSA_WITH_AES_128_CBC_SHA", 0xC014: "ECDHE_RSA_WITH_AES_256_CBC_SHA",
           0xC023: "ECDHE_ECDSA_WITH_AES_128_CBC_SHA256", 0xC024: "ECDHE_ECDSA_WITH_AES_256_CBC_SHA384",
           0xC025: "ECDH_ECDSA_WITH_AES_128_CBC_SHA256", 0xC026: "ECDH_ECDSA_WITH_AES_256_CBC_SHA384",
           0xC027: "ECDHE_RSA_WITH_AES_128_CBC_SHA256", 0xC028: "ECDHE_RSA_WITH_AES_256_CBC_SHA384"}
    for code, name in gcm.items():
        table[code] = Suite("TLS_" + name, False, "gcm", 32 if "AES_256" in name else 16,
                            "sha384" if name.endswith("SHA384") else "sha256")
    for code, name in cbc.items():
        mac = "sha384" if name.endswith("SHA384") else "sha256" if name.endswith("SHA256") else "sha1"
        table[code] = Suite("TLS_" + name, False, "cbc", 32 if "AES_256" in name else 16,
                            "sha384" if mac == "sha384" else "sha256", mac)
    return table


#: the cipher suites this module decrypts, by code
SUITES = _suites()


class KeyLogError(ValueError):
    """A key log that cannot be read; the message names the file and line."""


class KeyLog:
    """An NSS key log: ``LABEL <client random hex> <secret hex>`` per line, ``#`` comments."""

    def __init__(self, secrets: dict[tuple[str, bytes], bytes] | None = None) -> None:
        self.secrets = dict(secrets or {})

    @classmethod
    def parse(cls, text: str, *, where: str = "key log") -> "KeyLog":
        secrets: dict[tuple[str, bytes], bytes] = {}
        for number, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split()
            try:
                if len(parts) != 3:
                    raise ValueError(f"{len(parts)} fields, not 3")
                label, random, secret = parts[0], bytes.fromhex(parts[1]), bytes.fromhex(parts[2])
                if len(random) != 32:
                    raise ValueError(f"a client random of {len(random)} bytes, not 32")
            except ValueError as exc:
                raise KeyLogError(f"{where} line {number}: not an NSS key log line ({exc})") from None
            secrets[(label, random)] = secret
        return cls(secrets)

    @classmethod
    def read(cls, path: Path) -> "KeyLog":
        try:
            text = Path(path).read_text(encoding="ascii")
        except UnicodeDecodeError:
            raise KeyLogError(f"{path}: not an NSS key log (not ASCII text)") from None
        return cls.parse(text, where=str(path))

    def merge(self, other: "KeyLog") -> None:
        self.secrets.update(other.secrets)

    def get(self, label: str, client_random: bytes) -> bytes | None:
        return self.secrets.get((label, client_random))

    def __len__(self) -> int:
        return len(self.secrets)


# -- key derivation ------------------------------------------------------------------------------

def prf(secret: bytes, label: bytes, seed: bytes, length: int, hash_name: str) -> bytes:
    """The TLS 1.2 PRF, P_hash(secret, label + seed) (RFC 5246 5)."""
    seed = label + seed
    out, a = b"", seed
    while len(out) < length:
        a = hmac.new(secret, a, hash_name).digest()
        out += hmac.new(secret, a + seed, hash_name).digest()
    return out[:length]


def hkdf_expand_label(secret: bytes, label: bytes, context: bytes, length: int, hash_name: str) -> bytes:
    """HKDF-Expand-Label of TLS 1.3 (RFC 8446 7.1)."""
    full = b"tls13 " + label
    info = length.to_bytes(2, "big") + bytes((len(full),)) + full + bytes((len(context),)) + context
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(secret, block + info + bytes((counter,)), hash_name).digest()
        out += block
        counter += 1
    return out[:length]


class DecryptError(Exception):
    pass


@dataclass
class _Keys:
    """One direction's record protection."""

    suite: Suite
    key: bytes
    iv: bytes
    mac_key: bytes = b""
    encrypt_then_mac: bool = False
    sequence: int = 0
    #: TLS 1.3: the traffic secret these keys came from (for KeyUpdate)
    secret: bytes = b""

    @classmethod
    def tls13(cls, suite: Suite, secret: bytes) -> "_Keys":
        return cls(suite, hkdf_expand_label(secret, b"key", b"", suite.key_length, suite.hash),
                   hkdf_expand_label(secret, b"iv", b"", 12, suite.hash), secret=secret)

    def updated(self) -> "_Keys":
        size = hashlib.new(self.suite.hash).digest_size
        return _Keys.tls13(self.suite, hkdf_expand_label(self.secret, b"traffic upd", b"", size, self.suite.hash))

    def decrypt(self, content_type: int, version: bytes, fragment: bytes) -> tuple[int, bytes]:
        """(inner content type, plaintext) of one protected record; DecryptError if it does not
        authenticate."""
        sequence = self.sequence.to_bytes(8, "big")
        suite = self.suite
        try:
            if suite.tls13:
                nonce = bytes(a ^ b for a, b in zip(self.iv, bytes(4) + sequence))
                header = bytes((content_type,)) + version + len(fragment).to_bytes(2, "big")
                inner = self._aead().decrypt(nonce, fragment, header).rstrip(b"\x00")
                if not inner:
                    raise DecryptError("a TLS 1.3 record without a content type")
                result = inner[-1], inner[:-1]
            elif suite.cipher == "cbc":
                result = content_type, self._cbc(content_type, version, fragment, sequence)
            else:
                if suite.cipher == "gcm":
                    nonce, fragment = self.iv + fragment[:8], fragment[8:]
                else:
                    nonce = bytes(a ^ b for a, b in zip(self.iv, bytes(4) + sequence))
                aad = sequence + bytes((content_type,)) + version + (len(fragment) - 16).to_bytes(2, "big")
                result = content_type, self._aead().decrypt(nonce, fragment, aad)
        except (InvalidTag, ValueError) as exc:
            raise DecryptError(f"record {self.sequence} does not authenticate ({type(exc).__name__})") from None
        self.sequence += 1
        return result

    def _aead(self) -> AESGCM | ChaCha20Poly1305:
        return ChaCha20Poly1305(self.key) if self.suite.cipher == "chacha" else AESGCM(self.key)

    def _cbc(self, content_type: int, version: bytes, fragment: bytes, sequence: bytes) -> bytes:
        mac_size = hashlib.new(self.suite.mac or "sha256").digest_size
        if len(fragment) < 16 + mac_size:
            raise DecryptError(f"record {self.sequence}: {len(fragment)} bytes, too short for CBC")

        def mac(data: bytes) -> bytes:
            header = sequence + bytes((content_type,)) + version + len(data).to_bytes(2, "big")
            return hmac.new(self.mac_key, header + data, self.suite.mac or "sha256").digest()

        if self.encrypt_then_mac:
            protected, tag = fragment[:-mac_size], fragment[-mac_size:]
            if not hmac.compare_digest(mac(protected), tag):
                raise DecryptError(f"record {self.sequence}: the MAC does not match")
            padded = self._cbc_decrypt(protected)
            return _unpad(padded, self.sequence)
        plain = _unpad(self._cbc_decrypt(fragment), self.sequence)
        data, tag = plain[:-mac_size], plain[-mac_size:]
        if len(plain) < mac_size or not hmac.compare_digest(mac(data), tag):
            raise DecryptError(f"record {self.sequence}: the MAC does not match")
        return data

    def _cbc_decrypt(self, protected: bytes) -> bytes:
        iv, body = protected[:16], protected[16:]
        if not body or len(body) % 16:
            raise DecryptError(f"record {self.sequence}: {len(body)} bytes is not whole AES blocks")
        decryptor = Cipher(algorithms.AES(self.key), modes.CBC(iv)).decryptor()
        return decryptor.update(body) + decryptor.finalize()


def _unpad(padded: bytes, sequence: int) -> bytes:
    pad = padded[-1]
    if pad + 1 > len(padded) or padded[-pad - 1:] != bytes((pad,)) * (pad + 1):
        raise DecryptError(f"record {sequence}: the CBC padding is broken")
    return padded[:-pad - 1]


# -- the connection ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Plain:
    """Application data one side sent, decrypted."""

    side: str
    at: float
    data: bytes


@dataclass(frozen=True)
class TlsNote:
    """What the capture shows of the TLS layer: the handshake's outcome, an alert, a problem."""

    side: str
    at: float
    name: str
    summary: str
    details: dict = field(default_factory=dict)


@dataclass
class _Direction:
    buffer: bytearray = field(default_factory=bytearray)
    keys: _Keys | None = None
    #: TLS 1.3: the application keys waiting for this side's Finished
    next_keys: _Keys | None = None
    handshake: bytearray = field(default_factory=bytearray)
    stopped: bool = False


class TlsConnection:
    """One captured TLS connection; feed each side's bytes in order."""

    def __init__(self, keylog: KeyLog) -> None:
        self.keylog = keylog
        self.client_random: bytes | None = None
        self.server_random: bytes | None = None
        self.suite: Suite | None = None
        self.tls13 = False
        self.encrypt_then_mac = False
        self.server_name: str | None = None
        #: the ServerHello came, and the key log lacks this connection's secrets
        self.keys_missing = False
        self._sides = {CLIENT: _Direction(), SERVER: _Direction()}
        self._pending_12: dict[str, _Keys] = {}
        #: bytes that stayed encrypted, per side (no key, or keys that did not fit)
        self.undecrypted = {CLIENT: 0, SERVER: 0}

    def feed(self, side: str, at: float, data: bytes) -> list[Plain | TlsNote]:
        direction = self._sides[side]
        if direction.stopped:
            self.undecrypted[side] += len(data)
            return []
        direction.buffer += data
        out: list[Plain | TlsNote] = []
        while len(direction.buffer) >= 5 and not direction.stopped:
            content_type, version, length = direction.buffer[0], bytes(direction.buffer[1:3]), \
                int.from_bytes(direction.buffer[3:5], "big")
            if content_type not in (CHANGE_CIPHER_SPEC, ALERT, HANDSHAKE, APPLICATION_DATA) or version[0] != 3 \
                    or length > MAX_RECORD:
                out.append(self._stop(side, at, "TlsFraming", f"{side}: bytes that are not a TLS record "
                                      f"(type {content_type}, version {version.hex()}, length {length}); "
                                      f"the rest of this direction is not read"))
                break
            if len(direction.buffer) < 5 + length:
                break
            fragment = bytes(direction.buffer[5:5 + length])
            del direction.buffer[:5 + length]
            out += self._record(side, at, content_type, version, fragment)
        return out

    def _stop(self, side: str, at: float, name: str, summary: str) -> TlsNote:
        direction = self._sides[side]
        direction.stopped = True
        self.undecrypted[side] += len(direction.buffer)
        direction.buffer.clear()
        return TlsNote(side, at, name, summary)

    def _record(self, side: str, at: float, content_type: int, version: bytes, fragment: bytes) -> list:
        direction = self._sides[side]
        if content_type == CHANGE_CIPHER_SPEC:
            if not self.tls13 and side in self._pending_12:
                direction.keys = self._pending_12.pop(side)
            return []
        if direction.keys is None:
            if content_type == HANDSHAKE:
                return self._handshake(side, at, fragment)
            if content_type == ALERT:
                return [self._alert(side, at, fragment)]
            self.undecrypted[side] += len(fragment)
            return []
        try:
            inner_type, plain = direction.keys.decrypt(content_type, version, fragment)
        except DecryptError as exc:
            if direction.next_keys is not None:  # TLS 1.3: a Finished the capture missed
                direction.keys, direction.next_keys = direction.next_keys, None
                return self._record(side, at, content_type, version, fragment)
            self.undecrypted[side] += len(fragment)
            return [self._stop(side, at, "TlsDecryptFailed", f"{side}: {exc}; the key log's secrets do not "
                               f"fit this connection, the rest of this direction is not read")]
        if inner_type == APPLICATION_DATA:
            return [Plain(side, at, plain)] if plain else []
        if inner_type == ALERT:
            return [self._alert(side, at, plain)]
        if inner_type == HANDSHAKE:
            return self._handshake(side, at, plain, encrypted=True)
        return []

    def _alert(self, side: str, at: float, body: bytes) -> TlsNote:
        if len(body) < 2:
            return TlsNote(side, at, "TlsAlert", f"{side}: a broken alert ({body.hex()})")
        level = "fatal" if body[0] == 2 else "warning"
        name = ALERTS.get(body[1], f"alert {body[1]}")
        return TlsNote(side, at, "TlsAlert", f"{side} sent TLS alert {name} ({level})",
                       {"level": level, "description": name, "code": body[1]})

    def _handshake(self, side: str, at: float, data: bytes, *, encrypted: bool = False) -> list:
        direction = self._sides[side]
        direction.handshake += data
        out: list = []
        while len(direction.handshake) >= 4:
            kind = direction.handshake[0]
            length = int.from_bytes(direction.handshake[1:4], "big")
            if len(direction.handshake) < 4 + length:
                break
            body = bytes(direction.handshake[4:4 + length])
            del direction.handshake[:4 + length]
            if kind == 1 and not encrypted:
                self._client_hello(body)
            elif kind == 2 and not encrypted:
                out += self._server_hello(at, body)
            elif kind == 20 and encrypted and self.tls13 and direction.next_keys is not None:
                direction.keys, direction.next_keys = direction.next_keys, None
            elif kind == 24 and encrypted and self.tls13 and direction.keys is not None:
                direction.keys = direction.keys.updated()
                out.append(TlsNote(side, at, "TlsKeyUpdate", f"{side} updated its traffic keys (KeyUpdate)"))
        return out

    def _client_hello(self, body: bytes) -> None:
        if len(body) < 34 or self.client_random is not None:
            return  # a second ClientHello (after HelloRetryRequest) keeps the first one's random
        self.client_random = body[2:34]
        for kind, data in _extensions(body, server=False):
            if kind == 0 and len(data) > 5 and data[2] == 0:
                self.server_name = data[5:5 + int.from_bytes(data[3:5], "big")].decode("ascii", "replace")

    def _server_hello(self, at: float, body: bytes) -> list:
        if len(body) < 38:
            return [TlsNote(SERVER, at, "TlsFraming", "a ServerHello cut short")]
        random = body[2:34]
        if random == HELLO_RETRY_RANDOM:
            return []
        self.server_random = random
        session_length = body[34]
        code = int.from_bytes(body[35 + session_length:37 + session_length], "big")
        version = int.from_bytes(body[0:2], "big")
        for kind, data in _extensions(body, server=True):
            if kind == 43 and len(data) == 2:
                version = int.from_bytes(data, "big")
            elif kind == 22:
                self.encrypt_then_mac = True
        self.tls13 = version == 0x0304
        names = {0x0304: "TLS 1.3", 0x0303: "TLS 1.2", 0x0302: "TLS 1.1", 0x0301: "TLS 1.0"}
        suite = SUITES.get(code)
        self.suite = suite
        shown = suite.name if suite else f"0x{code:04X}"
        details = {"version": names.get(version, f"0x{version:04X}"), "cipher_suite": shown,
                   "server_name": self.server_name}
        out = [TlsNote(SERVER, at, "TlsHandshake", f"{details['version']}, {shown}"
                       + (f", server name {self.server_name}" if self.server_name else ""), details)]
        if suite is None or suite.tls13 != self.tls13:
            out.append(TlsNote(SERVER, at, "TlsUnsupported", f"cipher suite {shown} with {details['version']} is not one "
                               "this reader decrypts"))
            return out
        self.keys_missing = not self._keys_ready()
        return out

    def unread(self) -> str | None:
        """Why some of this connection stayed encrypted, or None if nothing did."""
        total = sum(self.undecrypted.values())
        if not total:
            return None
        if self.keys_missing:
            return (f"{total} encrypted bytes not read: the key log has no secrets for client random "
                    f"{(self.client_random or b'').hex()} (a handshake that failed logs none)")
        return f"{total} encrypted bytes not read"

    def _keys_ready(self) -> bool:
        """Set up the keys each side will use; False when the key log lacks them."""
        suite, random = self.suite, self.client_random
        assert suite is not None
        if random is None or self.server_random is None:
            return False
        if self.tls13:
            secrets = [self.keylog.get(label, random) for label in (
                "CLIENT_HANDSHAKE_TRAFFIC_SECRET", "SERVER_HANDSHAKE_TRAFFIC_SECRET",
                "CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0")]
            if any(secret is None for secret in secrets):
                return False
            ch, sh, ca, sa = secrets
            assert ch and sh and ca and sa
            self._sides[CLIENT].keys, self._sides[CLIENT].next_keys = _Keys.tls13(suite, ch), _Keys.tls13(suite, ca)
            self._sides[SERVER].keys, self._sides[SERVER].next_keys = _Keys.tls13(suite, sh), _Keys.tls13(suite, sa)
            return True
        master = self.keylog.get("CLIENT_RANDOM", random)
        if master is None:
            return False
        mac_length = hashlib.new(suite.mac).digest_size if suite.mac else 0
        iv_length = suite.fixed_iv_length
        block = prf(master, b"key expansion", self.server_random + random,
                    2 * (mac_length + suite.key_length + iv_length), suite.hash)
        parts, offset = [], 0
        for size in (mac_length, mac_length, suite.key_length, suite.key_length, iv_length, iv_length):
            parts.append(block[offset:offset + size])
            offset += size
        client_mac, server_mac, client_key, server_key, client_iv, server_iv = parts
        self._pending_12 = {
            CLIENT: _Keys(suite, client_key, client_iv, client_mac, self.encrypt_then_mac),
            SERVER: _Keys(suite, server_key, server_iv, server_mac, self.encrypt_then_mac)}
        return True


def _extensions(body: bytes, *, server: bool):
    """The (type, data) extensions of a ClientHello or ServerHello body."""
    try:
        offset = 34 + 1 + body[34]  # version, random, session id
        if server:
            offset += 3  # the chosen cipher suite and compression method
        else:
            offset += 2 + int.from_bytes(body[offset:offset + 2], "big")  # cipher suites
            offset += 1 + body[offset]  # compression methods
        end = offset + 2 + int.from_bytes(body[offset:offset + 2], "big")
        offset += 2
        while offset + 4 <= min(end, len(body)):
            kind = int.from_bytes(body[offset:offset + 2], "big")
            length = int.from_bytes(body[offset + 2:offset + 4], "big")
            yield kind, body[offset + 4:offset + 4 + length]
            offset += 4 + length
    except IndexError:
        return
