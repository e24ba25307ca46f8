"""Real TLS handshakes over TCP on the loopback for each context, and refused ones for each wrong
certificate or protocol version."""

from __future__ import annotations

import socket
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.pki.ocpp import SERVER_FAULTS
from harness.pki.tls import (
    ISO20_TLS13_SUITES,
    TlsMaterialError,
    iso2_evcc_context,
    iso2_secc_context,
    iso20_cipher_allowed,
    iso20_evcc_context,
    iso20_secc_context,
    ocpp_client_context,
    ocpp_server_context,
)
from tests.pki.conftest import KEY_PASSWORD

#: generous socket timeouts so a broken handshake fails the test instead of hanging it
SOCKET_TIMEOUT = 20


@dataclass
class Handshake:
    version: str | None = None
    cipher: str | None = None
    server_saw: dict | None = None     # the client certificate as the server saw it
    client_got: bytes = b""
    server_error: Exception | None = None
    client_error: Exception | None = None

    @property
    def completed(self) -> bool:
        return self.client_got == b"ok" and not self.server_error and not self.client_error


def handshake(server: ssl.SSLContext, client: ssl.SSLContext) -> Handshake:
    """Serve one connection with ``server`` and connect to it with ``client``; the server sends
    "ok" after its handshake, since in TLS 1.3 a client learns that its certificate was refused
    only after its own side of the handshake is done."""
    outcome = Handshake()
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve():
        try:
            conn, _ = listener.accept()
            conn.settimeout(SOCKET_TIMEOUT)
            with server.wrap_socket(conn, server_side=True) as tls:
                outcome.server_saw = tls.getpeercert()
                tls.sendall(b"ok")
        except (ssl.SSLError, OSError) as exc:
            outcome.server_error = exc

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=SOCKET_TIMEOUT) as raw:
            with client.wrap_socket(raw, server_hostname="localhost") as tls:
                outcome.version, outcome.cipher = tls.version(), tls.cipher()[0]
                outcome.client_got = tls.recv(2)
    except (ssl.SSLError, OSError) as exc:
        outcome.client_error = exc
    finally:
        thread.join()
        listener.close()
    return outcome


def _iso(generated, part: str) -> Path:
    return generated.directory / part


def _fault(generated, part: str, fault: str) -> Path:
    return generated.directory / "faults" / part / "secc" / fault


# -- ISO 15118-2 ---------------------------------------------------------------------------------

def _iso2_secc(generated, chain: Path | None = None, key: Path | None = None, **kw):
    d = _iso(generated, "iso2")
    return iso2_secc_context(chain or d / "secc-chain.pem", key or d / "secc.key",
                             password=KEY_PASSWORD, **kw)


def test_iso2_handshake_tls12_with_the_standard_suite(generated, tmp_path):
    keylog = tmp_path / "keys.log"
    outcome = handshake(_iso2_secc(generated),
                        iso2_evcc_context(_iso(generated, "iso2") / "v2g-root.pem", keylog=keylog))
    assert outcome.completed, outcome
    assert (outcome.version, outcome.cipher) == ("TLSv1.2", "ECDHE-ECDSA-AES128-SHA256")
    assert "CLIENT_RANDOM " in keylog.read_text()  # NSS key log for Wireshark


@pytest.mark.parametrize("fault", ["expired-leaf", "untrusted-root", "bad-signature-leaf",
                                   "missing-sub-ca-1"])
def test_iso2_evcc_refuses_a_wrong_secc_chain(generated, fault):
    where = _fault(generated, "iso2", fault)
    outcome = handshake(_iso2_secc(generated, where / "chain.pem", where / "leaf.key"),
                        iso2_evcc_context(_iso(generated, "iso2") / "v2g-root.pem"))
    assert not outcome.completed
    assert isinstance(outcome.client_error, ssl.SSLCertVerificationError), outcome


def test_iso2_evcc_refuses_an_secc_from_another_v2g_root(generated):
    # the -20 SECC chain ends in a different V2G root than the one the -2 EVCC trusts
    outcome = handshake(_iso2_secc(generated),
                        iso2_evcc_context(_iso(generated, "iso20-secp521r1") / "v2g-root.pem"))
    assert isinstance(outcome.client_error, ssl.SSLCertVerificationError), outcome


def test_iso2_refused_when_the_evcc_wants_tls13(generated):
    outcome = handshake(_iso2_secc(generated),
                        iso2_evcc_context(_iso(generated, "iso2") / "v2g-root.pem",
                                          minimum=ssl.TLSVersion.TLSv1_3,
                                          maximum=ssl.TLSVersion.TLSv1_3))
    assert not outcome.completed and outcome.client_error is not None, outcome


def test_iso2_evcc_refuses_an_secc_offering_only_tls13(generated):
    outcome = handshake(_iso2_secc(generated, minimum=ssl.TLSVersion.TLSv1_3,
                                   maximum=ssl.TLSVersion.TLSv1_3),
                        iso2_evcc_context(_iso(generated, "iso2") / "v2g-root.pem"))
    assert not outcome.completed and outcome.client_error is not None, outcome


# -- ISO 15118-20 --------------------------------------------------------------------------------

ISO20_PARTS = ["iso20-secp521r1", "iso20-ed448"]


def _iso20_secc(generated, part, chain=None, key=None, oem_roots="default", **kw):
    d = _iso(generated, part)
    return iso20_secc_context(chain or d / "secc-chain.pem", key or d / "secc.key",
                              oem_roots=d / "oem-root.pem" if oem_roots == "default" else oem_roots,
                              password=KEY_PASSWORD, **kw)


def _iso20_evcc(generated, part, vehicle_part=None, with_vehicle=True, **kw):
    d = _iso(generated, part)
    v = _iso(generated, vehicle_part or part)
    return iso20_evcc_context(d / "v2g-root.pem",
                              vehicle_chain=v / "vehicle-chain.pem" if with_vehicle else None,
                              vehicle_key=v / "vehicle.key" if with_vehicle else None,
                              password=KEY_PASSWORD, **kw)


@pytest.mark.parametrize("part", ISO20_PARTS)
def test_iso20_mutual_tls13_handshake(generated, part, tmp_path):
    keylog = tmp_path / "keys.log"
    outcome = handshake(_iso20_secc(generated, part), _iso20_evcc(generated, part, keylog=keylog))
    assert outcome.completed, outcome
    assert outcome.version == "TLSv1.3" and outcome.cipher in ISO20_TLS13_SUITES
    subject = dict(item for rdn in outcome.server_saw["subject"] for item in rdn)
    assert subject["commonName"] == "WHARNESS000000001"  # the SECC saw the vehicle certificate
    assert "CLIENT_HANDSHAKE_TRAFFIC_SECRET " in keylog.read_text()


@pytest.mark.parametrize("part", ISO20_PARTS)
def test_iso20_secc_refuses_an_evcc_without_vehicle_certificate(generated, part):
    outcome = handshake(_iso20_secc(generated, part),
                        _iso20_evcc(generated, part, with_vehicle=False))
    assert not outcome.completed and outcome.server_error is not None, outcome


def test_iso20_secc_refuses_a_vehicle_certificate_from_an_untrusted_oem(generated):
    outcome = handshake(_iso20_secc(generated, "iso20-secp521r1"),
                        _iso20_evcc(generated, "iso20-secp521r1", vehicle_part="iso20-ed448"))
    assert not outcome.completed
    assert isinstance(outcome.server_error, ssl.SSLCertVerificationError), outcome


@pytest.mark.parametrize("part", ISO20_PARTS)
@pytest.mark.parametrize("fault", ["expired-leaf", "untrusted-root"])
def test_iso20_evcc_refuses_a_wrong_secc_chain(generated, part, fault):
    where = _fault(generated, part, fault)
    outcome = handshake(_iso20_secc(generated, part, where / "chain.pem", where / "leaf.key"),
                        _iso20_evcc(generated, part))
    assert isinstance(outcome.client_error, ssl.SSLCertVerificationError), outcome


def test_iso20_refused_when_the_evcc_offers_only_tls12(generated):
    outcome = handshake(_iso20_secc(generated, "iso20-secp521r1"),
                        _iso20_evcc(generated, "iso20-secp521r1", minimum=ssl.TLSVersion.TLSv1_2,
                                    maximum=ssl.TLSVersion.TLSv1_2))
    assert not outcome.completed and outcome.client_error is not None, outcome


def test_iso20_cipher_check_on_a_live_connection(generated):
    server = _iso20_secc(generated, "iso20-secp521r1")
    client = _iso20_evcc(generated, "iso20-secp521r1")
    left, right = socket.socketpair()
    checked = {}

    def serve():
        with server.wrap_socket(left, server_side=True) as tls:
            checked["allowed"] = iso20_cipher_allowed(tls)
            tls.sendall(b"ok")

    thread = threading.Thread(target=serve)
    thread.start()
    with client.wrap_socket(right) as tls:
        tls.recv(2)
    thread.join()
    assert checked["allowed"] is True


# -- OCPP security profiles 2 and 3 -------------------------------------------------------------

def _ocpp(generated) -> Path:
    return generated.directory / "ocpp"


def test_ocpp_profile2_handshake(generated):
    d = _ocpp(generated)
    outcome = handshake(ocpp_server_context(d / "csms-server.pem", d / "csms-server.key",
                                            password=KEY_PASSWORD),
                        ocpp_client_context(d / "csms-root.pem"))
    assert outcome.completed, outcome


@pytest.mark.parametrize("fault, verify_message", [
    ("untrusted-root", "unable to get local issuer certificate"),
    ("expired", "certificate has expired"),
    ("not-yet-valid", "certificate is not yet valid"),
    ("wrong-host-name", "Hostname mismatch"),
    ("bad-signature", "certificate signature failure"),
])
def test_every_faulty_csms_certificate_fails_a_plain_tls_client(generated, fault, verify_message):
    """Each deliberately faulty CSMS certificate (OCPP-SEC-003) fails for its own reason, judged by
    a client context built from Python's ssl module alone, not the harness's."""
    assert set(SERVER_FAULTS) == {"untrusted-root", "expired", "not-yet-valid", "wrong-host-name", "bad-signature"}
    d = _ocpp(generated)
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.load_verify_locations(d / "csms-root.pem")
    outcome = handshake(ocpp_server_context(d / f"server-{fault}.pem", d / f"server-{fault}.key",
                                            password=KEY_PASSWORD), client)
    assert isinstance(outcome.client_error, ssl.SSLCertVerificationError), outcome
    assert verify_message in outcome.client_error.verify_message, outcome.client_error.verify_message


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
def test_ocpp_station_refuses_tls11(generated):
    d = _ocpp(generated)
    outcome = handshake(ocpp_server_context(d / "csms-server.pem", d / "csms-server.key",
                                            password=KEY_PASSWORD,
                                            minimum=ssl.TLSVersion.TLSv1_1,
                                            maximum=ssl.TLSVersion.TLSv1_1),
                        ocpp_client_context(d / "csms-root.pem"))
    assert not outcome.completed and outcome.client_error is not None, outcome


def test_ocpp_profile3_handshake(generated):
    d = _ocpp(generated)
    outcome = handshake(ocpp_server_context(d / "csms-server.pem", d / "csms-server.key",
                                            client_ca=d / "csms-root.pem", password=KEY_PASSWORD),
                        ocpp_client_context(d / "csms-root.pem",
                                            client_chain=d / "station-CS001.pem",
                                            client_key=d / "station-CS001.key",
                                            password=KEY_PASSWORD))
    assert outcome.completed, outcome
    subject = dict(item for rdn in outcome.server_saw["subject"] for item in rdn)
    assert subject["commonName"] == "CS001"


def test_ocpp_csms_refuses_an_untrusted_station(generated):
    d = _ocpp(generated)
    outcome = handshake(ocpp_server_context(d / "csms-server.pem", d / "csms-server.key",
                                            client_ca=d / "csms-root.pem", password=KEY_PASSWORD),
                        ocpp_client_context(d / "csms-root.pem",
                                            client_chain=d / "station-CS001-untrusted-root.pem",
                                            client_key=d / "station-CS001-untrusted-root.key",
                                            password=KEY_PASSWORD))
    assert isinstance(outcome.server_error, ssl.SSLCertVerificationError), outcome


# -- unusable material ---------------------------------------------------------------------------

def test_context_names_the_key_file_when_the_password_is_missing(generated):
    d = _iso(generated, "iso2")
    with pytest.raises(TlsMaterialError, match=r"secc\.key: private key is password-protected"):
        iso2_secc_context(d / "secc-chain.pem", d / "secc.key")


def test_context_names_the_file_when_a_key_is_given_as_certificate(generated):
    d = _iso(generated, "iso2")
    with pytest.raises(TlsMaterialError, match=r"secc\.key: expected a certificate"):
        iso2_evcc_context(d / "secc.key")


def test_context_says_when_key_and_certificate_do_not_belong_together(generated):
    d = _iso(generated, "iso2")
    with pytest.raises(TlsMaterialError, match=r"contract\.key: private key does not belong"):
        iso2_secc_context(d / "secc-chain.pem", d / "contract.key", password=KEY_PASSWORD)
