"""Contract key delivery round trips: the eMSP encrypts, the EVCC decrypts the same key."""

from __future__ import annotations

import dataclasses

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import x448

from harness.pki.builder import KeyAlgorithm
from harness.pki.contract_key import (
    ContractKeyError,
    EncryptedContractKey,
    decrypt_iso2,
    decrypt_iso20,
    encrypt_iso2,
    encrypt_iso20,
    iso20_aad,
)
from harness.pki.profiles import DEFAULT_PCID, Role


def _flip_last(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 1])


def test_iso2_installation_round_trip(iso2_pki):
    contract = iso2_pki.issued[Role.CONTRACT]
    oem = iso2_pki.issued[Role.OEM_PROVISIONING]
    delivered = encrypt_iso2(contract.key, oem.cert)
    assert len(delivered.dh_public_key) == 65 and delivered.dh_public_key[0] == 0x04
    assert len(delivered.encrypted_private_key) == 48
    key = decrypt_iso2(delivered, oem.key, contract_certificate=contract.cert)
    assert key.private_numbers() == contract.key.private_numbers()


def test_iso2_update_round_trip_with_the_old_contract_key(iso2_pki):
    old = iso2_pki.issued[Role.CONTRACT]
    new_key = KeyAlgorithm.SECP256R1.generate()
    delivered = encrypt_iso2(new_key, old.cert.public_key())
    assert decrypt_iso2(delivered, old.key).private_numbers() == new_key.private_numbers()


def test_iso2_decrypting_with_another_key_is_refused(iso2_pki):
    contract = iso2_pki.issued[Role.CONTRACT]
    delivered = encrypt_iso2(contract.key, iso2_pki.issued[Role.OEM_PROVISIONING].cert)
    with pytest.raises(ContractKeyError):
        decrypt_iso2(delivered, iso2_pki.issued[Role.SECC].key,
                     contract_certificate=contract.cert)


def test_iso20_secp521r1_round_trip(iso20_pki):
    contract = iso20_pki.issued[Role.CONTRACT]
    oem = iso20_pki.issued[Role.OEM_PROVISIONING]
    delivered = encrypt_iso20(contract.key, oem.cert, pcid=DEFAULT_PCID,
                              contract_certificate=contract.cert)
    assert len(delivered.encrypted_private_key) == 12 + 66 + 16  # [V2G20-2499]
    assert len(delivered.dh_public_key) == 133                   # uncompressed secp521r1 point
    key = decrypt_iso20(delivered, oem.key, pcid=DEFAULT_PCID, contract_certificate=contract.cert)
    assert key.private_numbers() == contract.key.private_numbers()


def test_iso20_aad_is_pcid_and_ski_hex(iso20_pki):
    cert = iso20_pki.issued[Role.CONTRACT].cert
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    aad = iso20_aad(DEFAULT_PCID, cert)
    assert aad == DEFAULT_PCID.encode() + ski.hex().upper().encode()
    assert len(aad) == 18 + 16


@pytest.mark.parametrize("tamper", ["pcid", "ciphertext"])
def test_iso20_tampering_is_detected(iso20_pki, tamper):
    contract = iso20_pki.issued[Role.CONTRACT]
    oem = iso20_pki.issued[Role.OEM_PROVISIONING]
    delivered = encrypt_iso20(contract.key, oem.cert, pcid=DEFAULT_PCID,
                              contract_certificate=contract.cert)
    pcid = DEFAULT_PCID
    if tamper == "pcid":
        pcid = "HARPCID00000000002"
    else:
        delivered = dataclasses.replace(delivered, encrypted_private_key=_flip_last(
            delivered.encrypted_private_key))
    with pytest.raises(ContractKeyError, match="tag"):
        decrypt_iso20(delivered, oem.key, pcid=pcid, contract_certificate=contract.cert)


def test_iso20_ed448_contract_key_over_x448(iso20_ed448_pki):
    contract = iso20_ed448_pki.issued[Role.CONTRACT]
    evcc_x448 = x448.X448PrivateKey.generate()
    delivered = encrypt_iso20(contract.key, evcc_x448.public_key(), pcid=DEFAULT_PCID,
                              contract_certificate=contract.cert)
    assert len(delivered.dh_public_key) == 56  # [V2G20-2495]: no filler to 133 bytes
    key = decrypt_iso20(delivered, evcc_x448, pcid=DEFAULT_PCID, contract_certificate=contract.cert)
    assert key.public_key() == contract.cert.public_key()


def test_iso20_ed448_oem_key_is_not_converted_to_x448(iso20_ed448_pki):
    contract = iso20_ed448_pki.issued[Role.CONTRACT]
    with pytest.raises(NotImplementedError, match="X448"):
        encrypt_iso20(contract.key, iso20_ed448_pki.issued[Role.OEM_PROVISIONING].cert,
                      pcid=DEFAULT_PCID, contract_certificate=contract.cert)


def test_wrong_length_is_refused(iso2_pki):
    with pytest.raises(ContractKeyError, match="48"):
        decrypt_iso2(EncryptedContractKey(b"\x04" + bytes(64), bytes(40)),
                     iso2_pki.issued[Role.OEM_PROVISIONING].key)
