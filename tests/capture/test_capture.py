"""Captures read back (harness.capture): real TLS from OpenSSL, real WebSockets from the websockets
library and the harness's CSMS, real V2G sessions on the netns rig; the decrypted bytes checked
against what was sent and against tshark, the events against what the harness's own observers
recorded of the same exchange."""

from __future__ import annotations

import asyncio
import datetime as _dt
import json
import os
import ssl
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect

from harness.capture import streams
from harness.capture.decode import read_capture_file
from harness.capture.packets import TCP, CaptureError, Segment, dissect, read_capture
from harness.capture.streams import Reassembly
from harness.capture.tls import KeyLog, KeyLogError, Plain, TlsConnection, TlsNote
from harness.ocpp.csms import MockCsms
from harness.ocpp.security import SecurityPolicy, basic_auth_header
from harness.pki.ocpp import generate_ocpp_pki
from harness.pki.tls import ocpp_client_context
from harness.trace import Layer, Recorder
from tests.capture.relay import RecordingRelay
from tests.capture.tshark import needs_tshark, tls_streams

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "station-password-0001"
#: OpenSSL's SSL_OP_NO_ENCRYPT_THEN_MAC: CBC suites then MAC before they encrypt (RFC 5246 6.2.3.2)
NO_ENCRYPT_THEN_MAC = 0x00080000


@pytest.fixture(scope="module")
def server_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "capture-test")])
    now = _dt.datetime.now(_dt.timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(1).not_valid_before(now - _dt.timedelta(days=1))
                   .not_valid_after(now + _dt.timedelta(days=1)).sign(key, hashes.SHA256()))
    (folder / "cert.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
    return folder


def connections(pcap: Path, keylog: Path) -> list[tuple[dict[str, bytes], list[TlsNote]]]:
    """What the reader decrypts of each TCP connection: each side's plaintext, and its notes."""
    keys = KeyLog.read(keylog)
    reassembly, found, tls = Reassembly(), {}, {}
    outputs = []
    for packet in read_capture(pcap):
        segment = dissect(packet)
        if segment is None or segment.protocol != TCP:
            continue  # SLAC, SDP
        outputs += reassembly.feed(packet.at, segment)
    outputs += reassembly.finish(0.0)
    for output in outputs:
        if isinstance(output, streams.Data):
            number = output.connection.number
            connection = tls.setdefault(number, TlsConnection(keys))
            plain, notes = found.setdefault(number, ({streams.CLIENT: b"", streams.SERVER: b""}, []))
            for item in connection.feed(output.side, output.at, output.data):
                if isinstance(item, Plain):
                    plain[item.side] += item.data
                else:
                    notes.append(item)
    return [found[n] for n in sorted(found)]


SUITES = [
    ("TLSv1.2", "ECDHE-ECDSA-AES128-SHA256", 0, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256"),  # ISO 15118-2
    ("TLSv1.2", "ECDHE-ECDSA-AES128-SHA256", NO_ENCRYPT_THEN_MAC, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256"),
    ("TLSv1.2", "ECDHE-ECDSA-AES128-GCM-SHA256", 0, "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"),  # OCPP
    ("TLSv1.2", "ECDHE-ECDSA-AES256-GCM-SHA384", 0, "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"),  # OCPP
    ("TLSv1.2", "ECDHE-ECDSA-CHACHA20-POLY1305", 0, "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"),
    ("TLSv1.3", None, 0, "TLS_AES_256_GCM_SHA384"),  # ISO 15118-20
]


@pytest.mark.parametrize("version, cipher, options, suite", SUITES, ids=[s[3] + ("-mac-then-encrypt" if s[2] else "")
                                                                         for s in SUITES])
@pytest.mark.parametrize("disorder", [False, True], ids=["in-order", "reordered"])
def test_tls_is_decrypted_to_what_each_side_sent(run, tmp_path, server_files, version, cipher, options, suite,
                                                 disorder):
    """OpenSSL on both ends (Python's ssl), a key log from the server, a capture from the relay:
    the reader gives each side's bytes back exactly, records split across segments and segments
    reordered and repeated included, and names the suite the ServerHello chose."""
    keylog = tmp_path / "keys.log"
    pcap = tmp_path / "tls.pcap"
    requests = [b"hello", os.urandom(5000), b"x" * 40000, b"bye"]

    async def scenario():
        server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_context.load_cert_chain(server_files / "cert.pem", server_files / "key.pem")
        server_context.minimum_version = server_context.maximum_version = getattr(ssl.TLSVersion, version.replace(
            "TLSv1.", "TLSv1_"))
        if cipher:
            server_context.set_ciphers(cipher)
        server_context.options |= options
        server_context.keylog_filename = str(keylog)

        async def echo(reader, writer):
            while data := await reader.read(65536):
                writer.write(data[::-1])
                await writer.drain()
            writer.close()

        server = await asyncio.start_server(echo, "127.0.0.1", 0, ssl=server_context)
        relay = RecordingRelay(("127.0.0.1", server.sockets[0].getsockname()[1]), pcap, disorder=disorder)
        port = await relay.start()
        client_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        client_context.check_hostname, client_context.verify_mode = False, ssl.CERT_NONE
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_context)
        answers = []
        for request in requests:
            writer.write(request)
            await writer.drain()
            answer = b""
            while len(answer) < len(request):
                answer += await reader.read(65536)
            answers.append(answer)
        writer.close()
        await asyncio.sleep(0.2)
        await relay.close()
        server.close()
        return answers

    answers = run(scenario())
    assert answers == [r[::-1] for r in requests]
    [(plain, notes)] = connections(pcap, keylog)
    assert plain[streams.CLIENT] == b"".join(requests)
    assert plain[streams.SERVER] == b"".join(answers)
    handshake = next(n for n in notes if n.name == "TlsHandshake")
    assert handshake.details["cipher_suite"] == suite
    assert handshake.details["version"] == version.replace("TLSv", "TLS ")
    assert {n.summary.split(" sent TLS alert ")[-1] for n in notes if n.name != "TlsHandshake"} <= {
        "close_notify (warning)"}


@needs_tshark
@pytest.mark.parametrize("version, cipher", [("TLSv1_2", "ECDHE-ECDSA-AES128-SHA256"), ("TLSv1_3", None)])
def test_tshark_decrypts_the_same_bytes(run, tmp_path, server_files, version, cipher):
    """Wireshark's TLS implementation, given the same capture and key log, finds the same
    plaintext: the reader's key schedule and record layer are not a private reading."""
    keylog, pcap = tmp_path / "keys.log", tmp_path / "tls.pcap"

    async def scenario():
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(server_files / "cert.pem", server_files / "key.pem")
        context.minimum_version = context.maximum_version = getattr(ssl.TLSVersion, version)
        if cipher:
            context.set_ciphers(cipher)
        context.keylog_filename = str(keylog)

        async def answer(reader, writer):
            while data := await reader.read(65536):
                writer.write(b"<" + data + b">")
                await writer.drain()
            writer.close()

        server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=context)
        relay = RecordingRelay(("127.0.0.1", server.sockets[0].getsockname()[1]), pcap)
        port = await relay.start()
        client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        client.check_hostname, client.verify_mode = False, ssl.CERT_NONE
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client)
        for text in (b"one", b"two" * 3000):
            writer.write(text)
            await writer.drain()
            got = b""
            while len(got) < len(text) + 2:
                got += await reader.read(65536)
        writer.close()
        await asyncio.sleep(0.2)
        await relay.close()
        server.close()

    run(scenario())
    [(plain, _)] = connections(pcap, keylog)
    [(client, server)] = tls_streams(pcap, keylog)
    assert client and server
    assert (plain[streams.CLIENT], plain[streams.SERVER]) == (client, server)


def test_a_key_log_that_does_not_fit_gives_no_plaintext(run, tmp_path, server_files):
    """Secrets that do not belong to the connection (here: flipped bits) stop the decryption with a
    note saying the records do not authenticate; no byte of invented plaintext comes out. A
    connection the key log does not know is counted as not read."""
    keylog, pcap = tmp_path / "keys.log", tmp_path / "tls.pcap"

    async def scenario():
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(server_files / "cert.pem", server_files / "key.pem")
        context.keylog_filename = str(keylog)

        async def echo(reader, writer):
            while data := await reader.read(100):
                writer.write(data)
            writer.close()

        server = await asyncio.start_server(echo, "127.0.0.1", 0, ssl=context)
        relay = RecordingRelay(("127.0.0.1", server.sockets[0].getsockname()[1]), pcap)
        client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        client.check_hostname, client.verify_mode = False, ssl.CERT_NONE
        reader, writer = await asyncio.open_connection("127.0.0.1", await relay.start(), ssl=client)
        writer.write(b"secret")
        await reader.read(100)
        writer.close()
        await asyncio.sleep(0.2)
        await relay.close()
        server.close()

    run(scenario())
    lines = keylog.read_text().splitlines()
    flipped = tmp_path / "flipped.log"
    flipped.write_text("\n".join(f"{label} {random} {'%0*x' % (len(secret), int(secret, 16) ^ 1)}"
                                 for label, random, secret in (line.split() for line in lines if line[:1] != "#")))
    [(plain, notes)] = connections(pcap, flipped)
    assert plain == {streams.CLIENT: b"", streams.SERVER: b""}
    assert any(n.name == "TlsDecryptFailed" and "does not authenticate" in n.summary for n in notes)
    empty = tmp_path / "empty.log"
    empty.write_text("# no secrets\n")
    recorder, summary = read_capture_file(pcap, keylog=KeyLog.read(empty))
    assert any("the key log has no secrets for client random" in p for p in summary.problems), summary.problems
    assert recorder.first(name="TlsNotDecrypted") is not None


def test_a_broken_key_log_line_is_named(tmp_path):
    path = tmp_path / "keys.log"
    path.write_text("CLIENT_RANDOM " + "00" * 32 + " " + "11" * 48 + "\nCLIENT_RANDOM zz 11\n")
    with pytest.raises(KeyLogError, match=r"keys.log line 2: not an NSS key log line"):
        KeyLog.read(path)


@needs_tshark
def test_an_ocpp_session_over_tls_reads_as_the_csms_recorded_it(run, tmp_path, server_files):
    """The harness's CSMS at security profile 2 (TLS, Basic auth), the websockets library as the
    station (permessage-deflate with context takeover, one message sent in fragments), the
    capture from the relay: every frame the CSMS recorded is in the capture's timeline with the
    same action, payload and keys, and the station's id and OCPP version come from the opening
    handshake. The capture is also converted to pcapng by Wireshark's editcap and reads the same."""
    pki = generate_ocpp_pki(tmp_path / "pki", station_ids=["CS1"])
    keylog, pcap = tmp_path / "tls-keys.log", tmp_path / "ocpp.pcap"
    recorder = Recorder()

    async def scenario():
        policy = SecurityPolicy(profile=2, credentials={"CS1": PASSWORD}, server=pki.csms_server, keylog=keylog)
        csms = MockCsms(recorder, security=policy)
        await csms.start()
        relay = RecordingRelay(("127.0.0.1", csms.port), pcap, server_port=443)
        port = await relay.start()
        try:
            async with connect(f"wss://127.0.0.1:{port}/CS1", subprotocols=["ocpp2.0.1"],
                               ssl=ocpp_client_context(pki.csms_root),
                               additional_headers={"Authorization": basic_auth_header("CS1", PASSWORD)}) as ws:
                assert ws.response.headers.get("Sec-WebSocket-Extensions", "").startswith("permessage-deflate")
                boot = [2, "boot-1", "BootNotification", {"reason": "PowerUp", "chargingStation": {
                    "model": "Capture", "vendorName": "Harness"}}]
                await ws.send(json.dumps(boot))
                await ws.recv()
                started = [2, "tx-1", "TransactionEvent", {
                    "eventType": "Started", "timestamp": "2026-12-07T10:00:00Z", "triggerReason": "Authorized",
                    "seqNo": 0, "transactionInfo": {"transactionId": "T-42"}, "evse": {"id": 1, "connectorId": 1},
                    "idToken": {"idToken": "DEHARC12345678", "type": "eMAID"}}]
                text = json.dumps(started)
                await ws.send(iter([text[:50], text[50:120], text[120:]]))  # one message, three frames
                await ws.recv()
                await ws.send(json.dumps([2, "hb-1", "Heartbeat", {}]))
                await ws.recv()
        finally:
            await asyncio.sleep(0.2)
            await relay.close()
            await csms.stop()

    run(scenario())
    for path in (pcap, _pcapng(pcap, tmp_path)):
        captured, summary = read_capture_file(path, keylog=KeyLog.read(keylog))
        assert summary.problems == [], summary.problems
        seen = [(e.name, e.payload["type"], e.payload["message_id"], e.payload.get("payload"), dict(e.keys))
                for e in captured.select(layer=Layer.OCPP) if isinstance(e.payload, dict) and "type" in e.payload]
        csms_saw = [(e.name, e.payload["type"], e.payload["message_id"], e.payload.get("payload"), dict(e.keys))
                    for e in recorder.select(layer=Layer.OCPP)
                    if e.observer == "csms" and isinstance(e.payload, dict) and "type" in e.payload]
        assert len(seen) == 6 and seen == csms_saw
        connected = captured.first(name="Connected")
        assert connected.keys["station_id"] == "CS1" and connected.payload["subprotocol"] == "ocpp2.0.1"
        assert connected.payload["basic_auth"] is True
        assert captured.first(name="TlsHandshake").payload["version"] in ("TLS 1.2", "TLS 1.3")
        assert [e.keys.get("transaction_id") for e in captured.select(name="TransactionEvent")] == ["T-42", "T-42"]


def _pcapng(pcap: Path, folder: Path) -> Path:
    out = folder / (pcap.stem + ".pcapng")
    subprocess.run(["editcap", "-F", "pcapng", str(pcap), str(out)], check=True, timeout=60)
    assert out.read_bytes()[:4] == b"\x0a\x0d\x0d\x0a"
    return out


@settings(max_examples=60)
@given(data=st.binary(min_size=1, max_size=3000), cuts=st.lists(st.integers(1, 2999), max_size=12),
       order=st.randoms(use_true_random=False), repeats=st.lists(st.integers(0, 20), max_size=4))
def test_tcp_reassembly_gives_each_byte_once_in_order(data, cuts, order, repeats):
    """Segments cut anywhere, delivered in any order, some repeated, the sequence numbers wrapping
    around 2^32: the reassembled stream is the bytes sent, once, in order."""
    base = 2 ** 32 - 1000
    points = sorted({0, len(data), *(c for c in cuts if c < len(data))})
    pieces = [(points[i], data[points[i]:points[i + 1]]) for i in range(len(points) - 1)]
    sent = pieces + [pieces[r % len(pieces)] for r in repeats]
    order.shuffle(sent)
    reassembly = Reassembly()
    syn = Segment(6, "10.0.0.1", "10.0.0.2", 40000, 443, b"", seq=base - 1, flags=0x02)
    got = b"".join(o.data for o in reassembly.feed(0.0, syn) if isinstance(o, streams.Data))
    for offset, piece in sent:
        segment = Segment(6, "10.0.0.1", "10.0.0.2", 40000, 443, piece, seq=(base + offset) % 2 ** 32, flags=0x18)
        got += b"".join(o.data for o in reassembly.feed(0.0, segment) if isinstance(o, streams.Data))
    assert got == data
    assert not any(isinstance(o, streams.Gap) for o in reassembly.finish(1.0))


def test_a_capture_cut_short_keeps_what_came_before_and_says_where(tmp_path):
    source = ROOT / "tests" / "capture" / "data" / "v2g-din.pcap"
    data = source.read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[:-7])
    recorder, summary = read_capture_file(cut)
    assert summary.truncated and "cut.pcap: packet" in summary.truncated and "bytes announced" in summary.truncated
    assert recorder.first(layer=Layer.V2G, name="SessionSetupReq") is not None
    not_a_capture = tmp_path / "notes.txt"
    not_a_capture.write_text("these are notes, not packets\n")
    with pytest.raises(CaptureError, match="notes.txt: neither pcap nor pcapng"):
        read_capture_file(not_a_capture)


DATA = Path(__file__).parent / "data"


def test_harness_trace_pcap_reads_a_din_session_from_the_power_line(tmp_path, harness_command):
    """A DIN 70121 DC session the netns rig captured on the EV's side of the emulated power line
    (tests/capture/data/v2g-din.pcap): SLAC, SDP and every V2G message decode, and the session
    joins from the SLAC match to the ISO 15118 session by the EV's MAC as EVCCID."""
    out = tmp_path / "din.jsonl"
    read = subprocess.run(harness_command + ["trace", "pcap", str(DATA / "v2g-din.pcap"), "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert read.returncode == 0, read.stderr
    assert "V2G, 30 messages, din, SessionID 6B29805DA9D95DC2" in read.stdout and "not read" not in read.stdout
    timeline = Recorder.load(out)
    names = [e.name for e in timeline.select(layer=Layer.V2G) if isinstance(e.payload, dict) and "exi" in e.payload]
    assert names[:4] == ["supportedAppProtocolReq", "supportedAppProtocolRes", "SessionSetupReq", "SessionSetupRes"]
    assert names[-2:] == ["SessionStopReq", "SessionStopRes"] and "CurrentDemandReq" in names
    matched = timeline.first(name="SlacMatched")
    setup = timeline.first(name="SessionSetupReq")
    assert matched.keys["ev_mac"].replace(":", "").upper() == setup.keys["evccid"] == "9EC0B94E43F7"
    joined = subprocess.run(harness_command + ["trace", "sessions", "--json", str(out)], capture_output=True,
                            text=True, timeout=60)
    [session] = [json.loads(line) for line in joined.stdout.splitlines()]
    assert session["joins"] == {"slac": "ev_mac = EVCCID", "sdp": "secc address"} and session["problems"] == []


def test_a_plug_and_charge_capture_decrypts_with_the_key_log_beside_it(tmp_path, harness_command):
    """The ISO 15118-2 Plug & Charge session of SLAC-007 over TLS 1.2 (CBC, encrypt-then-MAC), with
    the key log the harness kept beside the case's capture: found without --keylog, decrypted,
    and the eMAID the EV presented is on the events."""
    out = tmp_path / "pnc.jsonl"
    read = subprocess.run(harness_command + ["trace", "pcap", str(DATA / "v2g-iso2-pnc.pcap"), "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert read.returncode == 0, read.stderr
    assert "v2g-iso2-pnc.keys.log (found beside the capture)" in read.stdout
    assert "V2G over TLS 1.2, TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256, 28 messages, iso2" in read.stdout
    timeline = Recorder.load(out)
    details = timeline.first(name="PaymentDetailsReq")
    assert details.keys["emaid"] == details.payload["message"]["V2G_Message"]["Body"]["PaymentDetailsReq"]["eMAID"]
    assert timeline.first(name="PowerDeliveryRes") is not None


@needs_tshark
def test_tshark_decrypts_the_harness_s_own_capture_the_same(tmp_path):
    """Wireshark, given the Plug & Charge capture and its key log, finds the same V2GTP bytes in
    the TLS stream as the reader."""
    [(plain, _)] = connections(DATA / "v2g-iso2-pnc.pcap", DATA / "v2g-iso2-pnc.keys.log")
    [(client, server)] = tls_streams(DATA / "v2g-iso2-pnc.pcap", DATA / "v2g-iso2-pnc.keys.log")
    assert plain[streams.CLIENT][:2] == b"\x01\xfe"
    assert (plain[streams.CLIENT], plain[streams.SERVER]) == (client, server)
