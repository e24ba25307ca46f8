"""Wireshark's tshark as the independent reader of the captures the tests make: what it decrypts
with the key log is what the harness's reader must decrypt."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

TSHARK = shutil.which("tshark")
needs_tshark = pytest.mark.skipif(TSHARK is None, reason="tshark is not installed (.ci/run installs it)")


def tls_streams(pcap: Path, keylog: Path) -> list[tuple[bytes, bytes]]:
    """(client bytes, server bytes) of each TCP stream's TLS application data as tshark decrypts it."""
    assert TSHARK is not None
    count = subprocess.run([TSHARK, "-r", str(pcap), "-T", "fields", "-e", "tcp.stream"], capture_output=True,
                           text=True, timeout=120, check=True).stdout.split()
    streams = []
    for index in range(len(set(count))):
        out = subprocess.run([TSHARK, "-r", str(pcap), "-o", f"tls.keylog_file:{keylog}", "-qz",
                              f"follow,tls,raw,{index}"], capture_output=True, text=True, timeout=120,
                             check=True).stdout
        first, second = bytearray(), bytearray()
        node0 = ""
        for line in out.splitlines():
            if line.startswith("Node 0:"):
                node0 = line.split(":", 1)[1].strip()
            if not line.strip() or ":" in line or set(line.strip()) == {"="}:
                continue
            (second if line.startswith("\t") else first).extend(bytes.fromhex(line.strip()))
        # tshark's node 0 is whoever sent the first data it follows; the client made the connection
        client_first = node0.rsplit(":", 1)[-1] == client_ports(pcap)[index]
        streams.append((bytes(first), bytes(second)) if client_first else (bytes(second), bytes(first)))
    return streams


def client_ports(pcap: Path) -> list[str]:
    """The port of the side that sent each TCP stream's SYN."""
    assert TSHARK is not None
    out = subprocess.run([TSHARK, "-r", str(pcap), "-Y", "tcp.flags.syn == 1 and tcp.flags.ack == 0", "-T", "fields",
                          "-e", "tcp.srcport"], capture_output=True, text=True, timeout=120, check=True).stdout
    return out.split()
