"""The SECC's TLS, chosen from each EV's ClientHello, checked with a TLS client the harness did not
write (the openssl command line) and with hostile clients: which chain, which version and group,
the vehicle certificate ISO 15118-20 requires, and every refusal on the timeline."""

from __future__ import annotations

import asyncio
import datetime as _dt
import hashlib
import shutil
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.pki.clienthello import (
    SECP256R1,
    SECP521R1,
    TLS12,
    TLS13,
    X448,
    ClientHello,
    ClientHelloError,
    TrustedAuthority,
    hello_length,
    parse_client_hello,
)
from harness.v2g.credentials import V2gMaterial
from tests.hostile import silent_connections
from tests.v2g.pair import generated_material, start_pair

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="the openssl command line is not installed")


@pytest.fixture(scope="module")
def foreign(tmp_path_factory) -> V2gMaterial:
    """Another PKI: its vehicle certificate chains to an OEM root the SECC does not trust."""
    return generated_material(tmp_path_factory.mktemp("foreign-oem"))


def _s_client(port: int, *options: str) -> list[str]:
    return ["openssl", "s_client", "-connect", f"[::1]:{port}", "-noservername", "-verify_return_error", "-brief",
            *options]


async def _openssl(command: list[str]) -> str:
    process = await asyncio.create_subprocess_exec(*command, stdin=asyncio.subprocess.PIPE,
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        out, _ = await asyncio.wait_for(process.communicate(b""), 15)
    except (TimeoutError, asyncio.TimeoutError):
        process.kill()
        out, _ = await process.communicate()
    return out.decode(errors="replace")


def _session(run, material, *commands: list[str] | bytes):
    """Each command against a running reference SECC (bytes: sent raw over TCP to its TLS port)."""

    async def scenario():
        pair = await start_pair(material=material)
        outputs = []
        try:
            for command in commands:
                if callable(command):
                    command = command(pair.secc.tls_port)
                if isinstance(command, bytes):
                    reader, writer = await asyncio.open_connection("::1", pair.secc.tls_port)
                    writer.write(command)
                    await writer.drain()
                    try:
                        outputs.append(await asyncio.wait_for(reader.read(), 15))
                    except ConnectionResetError:  # closed with the unread bytes still queued: a reset
                        outputs.append(b"")
                    writer.close()
                else:
                    outputs.append(await _openssl(command))
                await asyncio.sleep(0.1)  # the SECC records the end of the connection
            return outputs, pair.recorder
        finally:
            await pair.close()

    return run(scenario())


def test_an_ev_trusting_only_the_iso20_root_gets_the_iso20_chain_with_mutual_tls13(run, material: V2gMaterial):
    """No server name, the -20 V2G root the only trust anchor: TLS 1.3, an -20 suite, secp521r1,
    the -20 SECC chain, and the SECC asks for and verifies the vehicle certificate ([V2G20-1264],
    [V2G20-2400]) -- what the emulated pair used to get only through a private server name."""
    d = material.path("iso20", "")
    (out,), recorder = _session(run, material, lambda port: _s_client(
        port, "-tls1_3", "-CAfile", str(d / "v2g-root.pem"), "-cert", str(d / "vehicle.pem"),
        "-cert_chain", str(d / "vehicle-chain.pem"), "-key", str(d / "vehicle.key")))
    assert "Protocol version: TLSv1.3" in out and "Verification: OK" in out, out
    assert "Ciphersuite: TLS_AES_256_GCM_SHA384" in out
    assert "Server Temp Key: ECDH, secp521r1" in out
    assert "Requested Signature Algorithms" in out  # the CertificateRequest of mutual authentication
    accepted = recorder.last(name="TcpAccepted", observer="evse")
    assert accepted.payload["tls"] == "TLSv1.3" and "-20 chain" in accepted.payload["chosen"]
    vehicle = x509.load_pem_x509_certificate((d / "vehicle.pem").read_bytes())
    assert accepted.payload["vehicle_certificate"] == vehicle.subject.rfc4514_string()
    assert accepted.payload["offered"]["server_name"] is None


def test_an_iso2_ev_gets_the_iso2_chain_over_tls12(run, material: V2gMaterial):
    (out,), recorder = _session(run, material, lambda port: _s_client(
        port, "-tls1_2", "-CAfile", str(material.path("iso2", "v2g-root.pem"))))
    assert "Protocol version: TLSv1.2" in out and "Verification: OK" in out, out
    assert "Ciphersuite: ECDHE-ECDSA-AES128-SHA256" in out and "prime256v1" in out
    assert "Requested Signature Algorithms" not in out  # -2 does not authenticate the EVCC in TLS
    assert "-2 chain, TLS 1.2" in recorder.last(name="TcpAccepted", observer="evse").payload["chosen"]


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP521R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "WHARNESS000000001")])
    now = _dt.datetime.now(_dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - _dt.timedelta(days=1))
            .not_valid_after(now + _dt.timedelta(days=30)).sign(key, hashes.SHA512()))
    pem, key_file = directory / "self-signed.pem", directory / "self-signed.key"
    pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return pem, key_file


@pytest.mark.parametrize("vehicle", ["none", "self-signed", "untrusted-oem"])
def test_iso20_without_a_trusted_vehicle_certificate_is_refused_in_the_handshake(run, material, foreign, tmp_path,
                                                                                vehicle):
    """ISO 15118-20 is mutual TLS: no vehicle certificate, a self-signed one, or one from an OEM
    root the SECC does not trust ends the handshake ([V2G20-2443]), and the refusal is recorded."""
    d = material.path("iso20", "")
    options = ["-tls1_3", "-CAfile", str(d / "v2g-root.pem")]
    if vehicle == "self-signed":
        pem, key = _self_signed(tmp_path)
        options += ["-cert", str(pem), "-key", str(key)]
    elif vehicle == "untrusted-oem":
        f = foreign.path("iso20", "")
        options += ["-cert", str(f / "vehicle.pem"), "-cert_chain", str(f / "vehicle-chain.pem"),
                    "-key", str(f / "vehicle.key")]
    (out,), recorder = _session(run, material, lambda port: _s_client(port, *options))
    refused = recorder.last(name="TlsHandshakeFailed", observer="evse")
    assert refused is not None, out
    reason = refused.payload["reason"]
    expected = {"none": "PEER_DID_NOT_RETURN_A_CERTIFICATE", "self-signed": "CERTIFICATE_VERIFY_FAILED",
                "untrusted-oem": "CERTIFICATE_VERIFY_FAILED"}[vehicle]
    assert expected in reason, reason
    assert "-20 chain" in refused.payload["chosen"]
    assert not recorder.select(name="TcpAccepted", observer="evse")


@pytest.mark.parametrize("garbage, why", [
    (b"GET / HTTP/1.1\r\n\r\n", "record type 71, not a handshake"),
    (b"\x16\x03\x01\x00\x05\x02\x00\x00\x01\x00", "handshake message type 2, not ClientHello"),
    (b"\x16\x03\x01\x40\x01" + bytes(40), "TLS record length 16385"),
])
def test_what_is_not_a_client_hello_is_refused_and_recorded(run, material, garbage, why):
    (answer,), recorder = _session(run, material, garbage)
    assert answer == b""  # closed without a word
    refused = recorder.last(name="TlsHandshakeFailed", observer="evse")
    assert refused is not None and why in refused.payload["reason"], refused and refused.payload


# -- the ClientHello parser and the choice, without sockets ----------------------------------------

def _python_hello(context: ssl.SSLContext) -> bytes:
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    connection = context.wrap_bio(incoming, outgoing, server_hostname=None)
    with pytest.raises(ssl.SSLWantReadError):
        connection.do_handshake()
    return outgoing.read()


def test_the_harness_ev_offers_what_its_protocols_need_and_no_server_name(material: V2gMaterial):
    only20 = parse_client_hello(_python_hello(material.evcc_context(("iso20-ac",))))
    assert only20.versions == (TLS13,) and only20.groups == (SECP521R1,) and only20.server_name is None
    both = parse_client_hello(_python_hello(material.evcc_context(("iso20-dc", "iso2", "din"))))
    assert set(both.versions) == {TLS12, TLS13} and SECP521R1 in both.groups and X448 in both.groups
    only2 = parse_client_hello(_python_hello(material.evcc_context(("iso2",))))
    assert only2.versions == (TLS12,)


def _hello(versions, groups=(SECP256R1,), authorities=(), trusted=()) -> ClientHello:
    return ClientHello(TLS12, tuple(versions), tuple(groups), certificate_authorities=tuple(authorities),
                       trusted_ca_keys=tuple(trusted))


@pytest.mark.parametrize("hello, generation, context", [
    (_hello([TLS13, TLS12], [SECP521R1]), "iso20", "iso20"),
    (_hello([TLS13, TLS12], [X448]), "iso20", "iso20_x448"),
    (_hello([TLS13, TLS12], [SECP256R1]), "iso2", "iso2"),
    (_hello([TLS12]), "iso2", "iso2"),
], ids=["tls13-secp521r1", "tls13-x448", "tls13-without-20-group", "tls12"])
def test_the_choice_by_versions_and_groups(material, hello, generation, context):
    tls = material.secc_tls()
    choice = tls.choose(hello)
    assert choice.generation == generation and choice.context is getattr(tls, context)


def test_the_roots_the_ev_names_decide_first(material):
    tls = material.secc_tls()
    iso2_root, iso20_root = tls.iso2_root, tls.iso20_root
    # certificate_authorities naming the -2 root, TLS 1.3 only: the -2 chain on TLS 1.3 (-20 Table 5)
    named2 = tls.choose(_hello([TLS13], [SECP521R1], authorities=[iso2_root.subject.public_bytes()]))
    assert named2.generation == "iso2" and named2.context is tls.iso2_tls13
    # trusted_ca_keys with the -20 root's certificate hash
    digest = iso20_root.fingerprint(hashes.SHA1())
    named20 = tls.choose(_hello([TLS13, TLS12], [SECP256R1], trusted=[TrustedAuthority("cert_sha1_hash", digest)]))
    assert named20.generation == "iso20"
    # trusted_ca_keys with the SHA-1 of the -20 root's key: for an EC key the subjectPublicKey BIT
    # STRING holds the uncompressed point (RFC 5480 2.2), which RFC 6066 6 hashes
    point = iso20_root.public_key().public_bytes(serialization.Encoding.X962,
                                                 serialization.PublicFormat.UncompressedPoint)
    by_key = TrustedAuthority("key_sha1_hash", hashlib.sha1(point).digest())
    assert tls.choose(_hello([TLS13, TLS12], [SECP256R1], trusted=[by_key])).generation == "iso20"
    # an SECC that does not offer -20 never presents its -20 chain
    tls.offers_iso20 = False
    assert tls.choose(_hello([TLS13, TLS12], [SECP521R1])).generation == "iso2"


@pytest.mark.parametrize("data, problem", [
    (b"\x16\x03\x01\x00\x04\x01\x00\x00\x00", "ClientHello ends 2 bytes early"),
    (b"\x17\x03\x03\x00\x01\x00", "record type 23"),
    (b"\x16\x03\x01\x00\x00\x01\x00\x00\x10", "TLS record length 0"),
    (b"\x16\x03\x01\x00", "incomplete ClientHello"),
])
def test_malformed_client_hellos_are_named(data, problem):
    with pytest.raises(ClientHelloError, match=problem):
        parse_client_hello(data)


@settings(max_examples=300)
@given(st.binary(max_size=600))
def test_no_bytes_crash_the_client_hello_reader(data):
    try:
        if hello_length(data) is not None:
            parse_client_hello(data)
    except ClientHelloError:
        pass


@settings(max_examples=200)
@given(st.data())
def test_a_real_client_hello_cut_anywhere_is_incomplete_or_an_error(material, data):
    hello = _python_hello(material.evcc_context(("iso20-ac", "iso2")))
    cut = data.draw(st.integers(0, len(hello) - 1))
    try:
        assert hello_length(hello[:cut]) in (None, len(hello))
    except ClientHelloError:
        pass
    assert parse_client_hello(hello).tls13


def test_the_seccs_tls_key_log_is_readable_by_its_owner_only(run, material: V2gMaterial):
    """The key log decrypts every session (Plug & Charge contracts included): 0600 like the keys,
    whatever the umask, also when the file was already there with a looser mode."""
    assert material.keylog is not None
    material.keylog.touch()
    material.keylog.chmod(0o644)
    (out,), _ = _session(run, material, lambda port: _s_client(
        port, "-tls1_2", "-CAfile", str(material.path("iso2", "v2g-root.pem"))))
    assert "Protocol version: TLSv1.2" in out, out
    assert material.keylog.stat().st_mode & 0o777 == 0o600
    assert "CLIENT_RANDOM" in material.keylog.read_text()


@pytest.mark.parametrize("burst", [False, True], ids=["one-by-one", "burst"])
def test_an_address_with_many_silent_handshakes_gets_no_more(run, material: V2gMaterial, burst):
    """40 TCP connections to the SECC's TLS port that never send a ClientHello: it keeps 16 of
    them in their handshake (each until the 10 s handshake timeout) and closes the others at once,
    saying so on the timeline; once they are gone an EV's TLS session works again. Also when all 40
    arrive at once and the server finds them together in its backlog."""
    from harness.v2g.transport import MAX_PENDING_PER_PEER

    async def scenario():
        pair = await start_pair(material=material)
        try:
            silent, dropped = await silent_connections("::1", pair.secc.tls_port, 40, burst=burst)
            for writer in silent:
                writer.close()
            await asyncio.sleep(0.3)
            out = await _openssl(_s_client(pair.secc.tls_port, "-tls1_2", "-CAfile",
                                           str(material.path("iso2", "v2g-root.pem"))))
            return dropped, out, pair.recorder
        finally:
            await pair.close()

    dropped, out, recorder = run(scenario())
    assert dropped == 40 - MAX_PENDING_PER_PEER
    assert "Protocol version: TLSv1.2" in out, out
    refused = recorder.first(name="TlsConnectionsRefused", observer="evse")
    assert refused is not None and refused.payload["limit"] == MAX_PENDING_PER_PEER
