"""Contract key delivery: the eMSP encrypts the contract certificate's private key for one EVCC;
the EVCC decrypts it (CertificateInstallationRes / CertificateUpdateRes).

ISO 15118-2 (7.9.2.4.3): an ephemeral secp256r1 key pair (its public half travels as DHPublicKey,
uncompressed, 65 bytes) does ECDH with the OEM provisioning certificate's key (installation) or
the old contract certificate's key (update). The AES key is the NIST SP 800-56A concatenation KDF
over the shared secret with SHA-256, 128 bits out and OtherInfo = AlgorithmID 0x01, PartyUInfo
0x55 ("U"), PartyVInfo 0x56 ("V") ([V2G2-818]). The 32-byte private key is encrypted with
AES-128-CBC without padding (it is two blocks) and sent with the random 16-byte IV in front
(ContractSignatureEncryptedPrivateKey, 48 bytes).

ISO 15118-20 (7.9.2.5.2): ECDHE the same way on secp521r1 (or X448), session key from the
ECDHE protocol of 7.9.2.5.4, AES-GCM-256 with a 96-bit random IV and a 128-bit tag
([V2G20-2494]); AAD is the PCID (18 characters) followed by the contract certificate's SKI as 16
upper-case hex digits ([V2G20-2492]); a 521-bit key is sent as 66 bytes with 7 leading zero bits
([V2G20-2497]); the field is IV (12) | ciphertext | tag (16) ([V2G20-2499], [V2G20-2502]).

Not confirmed, and chosen here: the -20 session key derivation (7.9.2.5.4 is not in the public
texts we could consult) is taken to be the -2 concatenation KDF with SHA-512 and 256 bits out;
:data:`ISO20_KDF` is the one place to change it. -20 speaks of a 448-bit (56-byte) key where an
Ed448 private key is 57 bytes; we encrypt the key's raw private bytes, whatever their length.
Deriving an X448 key from an Ed448 OEM provisioning key ([V2G20-2491] "public parameters are
derived from the ... EdDSA parameters") is not implemented: pass an X448 public key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, x448
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.concatkdf import ConcatKDFHash

from harness.pki.builder import PrivateKey

#: OtherInfo of the concatenation KDF: AlgorithmID 0x01, PartyUInfo "U", PartyVInfo "V"
OTHER_INFO = b"\x01\x55\x56"


@dataclass(frozen=True)
class KeyDerivation:
    hash: hashes.HashAlgorithm
    length: int  # bytes of key material

    def derive(self, shared_secret: bytes) -> bytes:
        return ConcatKDFHash(algorithm=self.hash, length=self.length,
                             otherinfo=OTHER_INFO).derive(shared_secret)


ISO2_KDF = KeyDerivation(hashes.SHA256(), 16)   # [V2G2-818]
ISO20_KDF = KeyDerivation(hashes.SHA512(), 32)  # assumption, see the module text


class ContractKeyError(ValueError):
    """The encrypted contract key cannot be decrypted, or is not the contract certificate's."""


@dataclass(frozen=True)
class EncryptedContractKey:
    """What CertificateInstallationRes / CertificateUpdateRes carry for the key."""

    dh_public_key: bytes          # DHPublicKey: the eMSP's ephemeral public key
    encrypted_private_key: bytes  # -2: IV | AES-CBC; -20: IV | AES-GCM ciphertext | tag


# -- ISO 15118-2 ---------------------------------------------------------------------------------

def encrypt_iso2(contract_key: ec.EllipticCurvePrivateKey,
                 recipient: ec.EllipticCurvePublicKey | x509.Certificate) -> EncryptedContractKey:
    """Encrypt ``contract_key`` for the holder of ``recipient`` (OEM provisioning certificate or
    old contract certificate)."""
    recipient_key = _public_key(recipient)
    _require_curve(recipient_key, ec.SECP256R1, "ISO 15118-2 recipient")
    _require_curve(contract_key, ec.SECP256R1, "ISO 15118-2 contract key")
    ephemeral = ec.generate_private_key(ec.SECP256R1())
    key = ISO2_KDF.derive(ephemeral.exchange(ec.ECDH(), recipient_key))
    iv = os.urandom(16)
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    plain = contract_key.private_numbers().private_value.to_bytes(32, "big")
    return EncryptedContractKey(_uncompressed(ephemeral.public_key()),
                                iv + encryptor.update(plain) + encryptor.finalize())


def decrypt_iso2(delivered: EncryptedContractKey, recipient_key: ec.EllipticCurvePrivateKey, *,
                 contract_certificate: x509.Certificate | None = None) -> ec.EllipticCurvePrivateKey:
    """The EVCC side: recover the contract key with the OEM provisioning (or old contract) key."""
    if len(delivered.encrypted_private_key) != 48:
        raise ContractKeyError(f"encrypted private key is {len(delivered.encrypted_private_key)} "
                               f"bytes, ISO 15118-2 sends 48 (IV 16 + key 32)")
    peer = _ephemeral_public(delivered.dh_public_key, ec.SECP256R1())
    key = ISO2_KDF.derive(recipient_key.exchange(ec.ECDH(), peer))
    iv, body = delivered.encrypted_private_key[:16], delivered.encrypted_private_key[16:]
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    value = int.from_bytes(decryptor.update(body) + decryptor.finalize(), "big")
    return _checked_ec_key(value, ec.SECP256R1(), contract_certificate)


# -- ISO 15118-20 --------------------------------------------------------------------------------

def iso20_aad(pcid: str, contract_certificate: x509.Certificate) -> bytes:
    """[V2G20-2492]: PCID (18 characters) then the contract certificate's SKI in hex (16)."""
    ski = contract_certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return pcid.upper().encode("ascii") + ski.digest.hex().upper().encode("ascii")


def encrypt_iso20(contract_key: ec.EllipticCurvePrivateKey | ed448.Ed448PrivateKey,
                  recipient: ec.EllipticCurvePublicKey | x448.X448PublicKey | x509.Certificate, *,
                  pcid: str, contract_certificate: x509.Certificate) -> EncryptedContractKey:
    recipient_key = _public_key(recipient)
    if isinstance(recipient_key, ed448.Ed448PublicKey):
        raise NotImplementedError("ECDHE with an Ed448 OEM provisioning key needs its X448 "
                                  "counterpart, which is not derived here; pass an X448 key")
    if isinstance(recipient_key, x448.X448PublicKey):
        ephemeral_x = x448.X448PrivateKey.generate()
        shared = ephemeral_x.exchange(recipient_key)
        dh_public = ephemeral_x.public_key().public_bytes(serialization.Encoding.Raw,
                                                          serialization.PublicFormat.Raw)
    else:
        _require_curve(recipient_key, ec.SECP521R1, "ISO 15118-20 recipient")
        ephemeral = ec.generate_private_key(ec.SECP521R1())
        shared = ephemeral.exchange(ec.ECDH(), recipient_key)
        dh_public = _uncompressed(ephemeral.public_key())
    iv = os.urandom(12)
    sealed = AESGCM(ISO20_KDF.derive(shared)).encrypt(
        iv, _private_bytes(contract_key), iso20_aad(pcid, contract_certificate))
    return EncryptedContractKey(dh_public, iv + sealed)


def decrypt_iso20(delivered: EncryptedContractKey,
                  recipient_key: ec.EllipticCurvePrivateKey | x448.X448PrivateKey, *,
                  pcid: str, contract_certificate: x509.Certificate) -> PrivateKey:
    if isinstance(recipient_key, x448.X448PrivateKey):
        shared = recipient_key.exchange(x448.X448PublicKey.from_public_bytes(delivered.dh_public_key))
    else:
        peer = _ephemeral_public(delivered.dh_public_key, ec.SECP521R1())
        shared = recipient_key.exchange(ec.ECDH(), peer)
    data = delivered.encrypted_private_key
    if len(data) < 12 + 16 + 1:
        raise ContractKeyError(f"encrypted private key is only {len(data)} bytes")
    try:
        plain = AESGCM(ISO20_KDF.derive(shared)).decrypt(
            data[:12], data[12:], iso20_aad(pcid, contract_certificate))
    except InvalidTag:
        raise ContractKeyError("authentication tag does not match (wrong key, PCID, SKI or "
                               "tampered data), [V2G20-2504]") from None
    public = contract_certificate.public_key()
    if isinstance(public, ed448.Ed448PublicKey):
        key = ed448.Ed448PrivateKey.from_private_bytes(plain)
        if key.public_key() != public:
            raise ContractKeyError("decrypted key does not belong to the contract certificate")
        return key
    if plain[0] & 0xFE:  # [V2G20-2678]: the 7 most significant bits must be zero
        raise ContractKeyError("decrypted key does not start with 7 zero bits")
    return _checked_ec_key(int.from_bytes(plain, "big"), ec.SECP521R1(), contract_certificate)


# -- helpers -------------------------------------------------------------------------------------

def _public_key(recipient):
    return recipient.public_key() if isinstance(recipient, x509.Certificate) else recipient


def _require_curve(key, curve: type[ec.EllipticCurve], what: str) -> None:
    if not isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)) or \
            not isinstance(key.curve, curve):
        raise ValueError(f"{what} must be an {curve.name} key")


def _uncompressed(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)


def _ephemeral_public(data: bytes, curve: ec.EllipticCurve) -> ec.EllipticCurvePublicKey:
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(curve, data)
    except ValueError:
        raise ContractKeyError(f"DHPublicKey is not a {curve.name} point") from None


def _private_bytes(key) -> bytes:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        size = (key.curve.key_size + 7) // 8  # 66 bytes for secp521r1: 7 leading zero bits
        return key.private_numbers().private_value.to_bytes(size, "big")
    return key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                             serialization.NoEncryption())


def _checked_ec_key(value: int, curve: ec.EllipticCurve,
                    certificate: x509.Certificate | None) -> ec.EllipticCurvePrivateKey:
    # [V2G20-2507]: below the group order, and its public key is the certificate's
    try:
        key = ec.derive_private_key(value, curve)
    except ValueError:
        raise ContractKeyError("decrypted value is not a private key on the curve") from None
    if certificate is not None and key.public_key() != certificate.public_key():
        raise ContractKeyError("decrypted key does not belong to the contract certificate")
    return key
