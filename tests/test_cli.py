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
        deadline = time.monotonic() + 20
        lines = []
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            lines.append(line)
            if line.startswith("charger URL:"):
                break
        assert lines[-1].strip() == f"charger URL: ws://127.0.0.1:{port}/%3Cstation%20id%3E" or \
            lines[-1].startswith(f"charger URL: ws://127.0.0.1:{port}/")

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


def test_usage_errors_are_one_line_without_traceback(harness_command):
    result = subprocess.run(harness_command + ["csms", "serve", "--station", "no-password"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert result.stderr.strip() == "harness csms: --station 'no-password': expected ID:PASSWORD"
    result = subprocess.run(harness_command + ["run", "--rig", "/nonexistent.yaml"], capture_output=True, text=True)
    assert result.returncode == 2 and "no rig file" in result.stderr and "Traceback" not in result.stderr
