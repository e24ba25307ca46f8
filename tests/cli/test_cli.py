"""The command line: `harness csms serve` with a real station, and usage errors."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import time

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from harness.ocpp.security import basic_auth_header


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_csms_serve_prints_the_url_and_every_message(tmp_path, harness_command):
    port = _free_port()
    process = subprocess.Popen(
        harness_command + ["csms", "serve", "--host", "127.0.0.1", "--port", str(port),
                           "--station", "CP-1:station-password-0001", "--out", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = _until(process, "trace:")
        # the URL the charger must use, with its station id, and who may connect with which password
        assert f"  ws://127.0.0.1:{port}/CP-1\n" in lines
        assert "    station 'CP-1', password 'station-password-0001'\n" in lines
        assert not any("%3C" in line for line in lines)

        async def station() -> list:
            headers = {"Authorization": basic_auth_header("CP-1", "station-password-0001")}
            async with connect(f"ws://127.0.0.1:{port}/CP-1", subprotocols=["ocpp1.6"], additional_headers=headers) as ws:
                await ws.send(json.dumps([2, "1", "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}]))
                return json.loads(await ws.recv())

        answer = asyncio.run(station())
        assert answer[0] == 3 and answer[2]["status"] == "Accepted"
        async def stranger() -> None:
            async with connect(f"ws://127.0.0.1:{port}/CP-2", subprotocols=["ocpp1.6"]):
                pass

        with pytest.raises(InvalidStatus, match="401"):  # an unknown station is refused
            asyncio.run(stranger())
        time.sleep(0.3)
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=20)
    assert process.returncode == 0
    assert "CALL BootNotification" in output and "CALLRESULT BootNotification" in output
    assert '"chargePointVendor": "V"' in output  # the frame as the station sent it
    assert "refused CP-2" in output
    assert (tmp_path / "trace.jsonl").read_text().count("BootNotification") >= 2


def _until(process, prefix: str, timeout: float = 20) -> list[str]:
    deadline = time.monotonic() + timeout
    lines = []
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        lines.append(line)
        if line.startswith(prefix) or not line:
            break
    return lines


def test_csms_serve_on_every_address_names_the_real_ones(tmp_path, harness_command):
    """Listening on 0.0.0.0, the URLs name this host's addresses (not 0.0.0.0), and say that any
    station id and password are taken."""
    from harness.ocpp.csms import host_addresses

    port = _free_port()
    process = subprocess.Popen(harness_command + ["csms", "serve", "--port", str(port), "--out", str(tmp_path)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = _until(process, "trace:")
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=20)
    text = "".join(lines[next(i for i, line in enumerate(lines) if line.startswith("charger URLs")):])
    assert "0.0.0.0" not in text and "%3C" not in text
    for address in host_addresses():
        assert f"  ws://{address}:{port}/\n" in lines
    assert "127.0.0.1" in host_addresses()[-1]  # loopback last: the lab network's address comes first
    assert "auto-commissioning" in text


def test_usage_errors_are_one_line_without_traceback(harness_command):
    result = subprocess.run(harness_command + ["csms", "serve", "--station", "no-password"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert result.stderr.strip() == "harness csms: --station 'no-password': expected ID:PASSWORD"
    result = subprocess.run(harness_command + ["run", "--rig", "/nonexistent.yaml"], capture_output=True, text=True)
    assert result.returncode == 2 and "no rig file" in result.stderr and "Traceback" not in result.stderr


def test_csms_serve_prints_what_a_station_sent_on_its_own_lines_only(tmp_path, harness_command):
    """A station id with CR LF (percent-encoded in the URL) and an escape sequence in a frame
    cannot forge or recolour console lines, also when the connection is refused: every control
    character is printed escaped."""
    port = _free_port()
    process = subprocess.Popen(
        harness_command + ["csms", "serve", "--host", "127.0.0.1", "--port", str(port),
                           "--station", "CP-1:station-password-0001", "--out", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    forged = "%0D%0A12:00:00.000%20FORGED%20accepted"
    try:
        _until(process, "trace:")

        async def stations() -> None:
            with pytest.raises(InvalidStatus, match="400"):  # not an OCPP identity at all
                async with connect(f"ws://127.0.0.1:{port}/CP-1{forged}", subprotocols=["ocpp1.6"]):
                    pass
            headers = {"Authorization": basic_auth_header("CP-1", "station-password-0001")}
            async with connect(f"ws://127.0.0.1:{port}/CP-1", subprotocols=["ocpp1.6"], additional_headers=headers) as ws:
                # raw control characters: not JSON, so the CSMS prints the frame as it came
                await ws.send('[2, "1", "Heartbeat", {"note": "\x1b[2J\r\nFORGED"}]')
                await asyncio.sleep(0.3)

        asyncio.run(stations())
        time.sleep(0.3)
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=20)
    assert r"400 the station identity has characters outside OCPP's identifierString ('\n', '\r', ' ')" in output, output
    assert not any(line.startswith(("12:00:00.000 FORGED", "FORGED")) for line in output.splitlines())
    assert "\x1b" not in output and "\r" not in output
    assert '{"note": "\\x1b[2J\\r\\nFORGED"}' in output, output
