"""`harness meter simulate` and `harness meter read` against it, as a lab would use them."""

from __future__ import annotations

import re
import signal
import subprocess


def test_meter_read_against_meter_simulate(harness_command):
    simulator = subprocess.Popen(harness_command + ["meter", "simulate", "--port", "0", "--model", "hioki-pw3337",
                                                    "--accuracy", "0"],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = simulator.stdout.readline()
        match = re.search(r"resource (TCPIP::127\.0\.0\.1::\d+::SOCKET)", line)
        assert match, line
        result = subprocess.run(harness_command + ["meter", "read", "--resource", match.group(1), "--model",
                                                   "hioki-pw3337", "--every", "0.1", "--count", "2"],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        lines = result.stdout.strip().splitlines()
        assert lines[0].startswith(f"hioki-pw3337 at {match.group(1)}: HIOKI PW3337")
        assert len(lines) == 3 and "P 11040.0 W" in lines[1] and "ch3 230.00 V 16.000 A 3680.0 W" in lines[2]
    finally:
        simulator.send_signal(signal.SIGINT)
        simulator.communicate(timeout=20)


def test_meter_read_errors_are_one_line(harness_command):
    result = subprocess.run(harness_command + ["meter", "read", "--resource", "TCPIP::127.0.0.1::1::SOCKET",
                                               "--model", "yokogawa-wt1800", "--timeout", "0.5"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("harness meter: power analyzer yokogawa-wt1800 at TCPIP::127.0.0.1::1::SOCKET")
    result = subprocess.run(harness_command + ["meter", "read", "--resource", "x", "--model", "nope"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and result.stderr.startswith("harness meter: unknown analyzer model 'nope'")
