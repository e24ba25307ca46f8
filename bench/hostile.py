"""A hostile-input campaign against the harness's own servers, on loopback and bounded in count
and time: per attack, the server's memory (RSS) before, during and after, what its trace grew by,
and whether a normal client is served during the attack (and how fast).

    .venv/bin/python bench/hostile.py
    .venv/bin/python bench/hostile.py --only csms-big-frames

Each server runs in its own process, as `harness csms serve` and `harness evse serve` run it
(recording every event to its trace.jsonl); this process attacks it with raw sockets. Goals: an
attack leaves at most 50 MB of memory and 10 MB of trace behind once it stops, and a normal
client is served within 1 s during every attack. One run is not an attack on the trace:
csms-valid-big-calls is valid traffic, which the evidence keeps whole (its trace grows by design);
it shows the memory the recorder keeps staying bounded while the trace grows.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from websockets.asyncio.client import connect

from harness.ocpp.security import basic_auth_header

HARNESS = [str(Path(sys.executable).parent / "harness")]
PASSWORD = "bench-password-0001"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, command: list[str], trace: Path, ready: str) -> None:
        self.trace = trace
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 60
        self.lines: list[str] = []
        while time.monotonic() < deadline:
            line = self.process.stdout.readline() if self.process.stdout else ""
            self.lines.append(line)
            if ready in line or not line:
                break
        # the console output of an attack is large: let it drain into nothing
        subprocess.Popen(["cat"], stdin=self.process.stdout, stdout=subprocess.DEVNULL)

    def rss(self) -> float:
        return rss_mb(self.process.pid)

    def trace_mb(self) -> float:
        return self.trace.stat().st_size / 1e6 if self.trace.exists() else 0.0

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()


async def _upgrade(port: int, station: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write((f"GET /{station} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                  f"Sec-WebSocket-Protocol: ocpp2.0.1\r\nAuthorization: {basic_auth_header(station, PASSWORD)}"
                  "\r\n\r\n").encode())
    await writer.drain()
    await reader.readuntil(b"\r\n\r\n")
    return reader, writer


def _frame(payload: bytes, opcode: int = 0x1) -> bytes:
    length = len(payload)
    if length < 126:
        head = bytes((0x80 | opcode, 0x80 | length))
    elif length < 65536:
        head = bytes((0x80 | opcode, 0x80 | 126)) + length.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + length.to_bytes(8, "big")
    return head + b"\x00\x00\x00\x00" + payload  # masked with a zero key


async def _normal_station(port: int) -> float:
    """Seconds a well-behaved station waits for its Heartbeat answer (inf: not served)."""
    started = time.monotonic()
    try:
        async with asyncio.timeout(5):
            # from another address than the attacks (127.0.0.1), as another machine would be: the
            # CSMS limits what one address may hold open in its handshake
            async with connect(f"ws://127.0.0.1:{port}/NORMAL", subprotocols=["ocpp2.0.1"],
                               additional_headers={"Authorization": basic_auth_header("NORMAL", PASSWORD)},
                               local_addr=("127.0.0.2", 0)) as ws:
                await ws.send(json.dumps([2, "1", "Heartbeat", {}]))
                await ws.recv()
    except Exception:
        return float("inf")
    return time.monotonic() - started


# -- the attacks --------------------------------------------------------------------------------

async def csms_big_frames(port: int) -> None:
    """25 frames of 3.9 MB from one station (each a malformed CALL the CSMS must record)."""
    _, writer = await _upgrade(port, "BIG")
    body = b'[2,"1","Heartbeat",{"x":"' + b"A" * (3_900_000) + b'"}]'
    for _ in range(25):
        writer.write(_frame(body))
        await writer.drain()
    await asyncio.sleep(1)
    writer.close()


async def csms_valid_big_calls(port: int) -> None:
    """1,500 valid DataTransfer CALLs of 28 kB each, answered and recorded whole (frame and parsed
    form just under the 64 kB an event keeps): the evidence keeps them all, about 85 MB (the trace
    grows by design: valid traffic is evidence), the recorder's memory does not."""
    reader, writer = await _upgrade(port, "CHATTY")
    data = "B" * 28_000
    for n in range(1500):
        writer.write(_frame(json.dumps([2, str(n), "DataTransfer", {"vendorId": "bench", "data": data}]).encode()))
        await writer.drain()
        if n % 50 == 49:
            await asyncio.sleep(0.01)
    await asyncio.sleep(2)
    writer.close()


async def csms_flood_unread(port: int) -> None:
    """30,000 CALLs whose answers the station never reads."""
    _, writer = await _upgrade(port, "FLOOD")
    call = _frame(b'[2,"1","Heartbeat",{}]')
    for _ in range(30_000):
        writer.write(call)
        if writer.transport.get_write_buffer_size() > 4 << 20:
            await asyncio.sleep(0.01)
            if writer.transport.is_closing():
                break
    await asyncio.sleep(2)
    writer.close()


async def csms_silent_connections(port: int) -> None:
    """2,000 TCP connections that never say a word."""
    held = []
    for _ in range(2000):
        try:
            held.append(await asyncio.open_connection("127.0.0.1", port))
        except OSError:
            break
    await asyncio.sleep(2)
    for _, writer in held:
        writer.close()


async def csms_long_actions(port: int) -> None:
    """5,000 CALLs with distinct action names of 300 characters."""
    reader, writer = await _upgrade(port, "NAMES")
    drain = asyncio.create_task(reader.read(-1))  # a reader of the answers, as a station should be
    for n in range(5000):
        writer.write(_frame(json.dumps([2, str(n), f"{n:05d}" + "A" * 295, {}]).encode()))
        if n % 100 == 0:
            await writer.drain()
    await asyncio.sleep(1)
    writer.close()
    drain.cancel()


async def secc_sdp_datagrams(ports: dict[str, int]) -> str:
    """300 SDP datagrams of 65 kB to the SECC's SDP server."""
    port = ports["sdp"]
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    junk = b"\x01\xfe\x90\x00" + (65000).to_bytes(4, "big") + b"Z" * 65000
    for _ in range(300):
        try:
            sock.sendto(junk, ("::1", port))
        except OSError:
            pass
        await asyncio.sleep(0.001)
    sock.close()
    await asyncio.sleep(1)
    return ""


async def secc_tls_silent(ports: dict[str, int]) -> str:
    """2,000 TCP connections to the SECC's TLS port that never send a ClientHello."""
    opened: list[asyncio.StreamWriter] = []
    refused = 0
    for _ in range(2000):
        try:
            _, writer = await asyncio.open_connection("::1", ports["tls"])
            opened.append(writer)
        except OSError:
            refused += 1
    await asyncio.sleep(1)
    for writer in opened:
        writer.close()
    await asyncio.sleep(1)
    return f"{len(opened)} opened, {refused} refused at connect"


async def secc_trickle(ports: dict[str, int]) -> str:
    """20 connections to the SECC's TCP port, each sending one byte of a V2GTP header per second
    for 15 s (the SECC runs at time scale 0.1: V2G_SECC_Sequence_Timeout 6 s)."""
    started = time.monotonic()
    lived: dict[int, float] = {}

    async def until_closed(n: int, reader: asyncio.StreamReader) -> None:
        try:
            await reader.read(-1)
        except OSError:
            pass
        lived[n] = time.monotonic() - started

    connections = [await asyncio.open_connection("::1", ports["tcp"]) for _ in range(20)]
    watchers = [asyncio.create_task(until_closed(n, reader)) for n, (reader, _) in enumerate(connections)]
    header = bytes((0x01, 0xFE, 0x80, 0x01, 0x00, 0x00, 0x00, 0x10))
    for second in range(15):
        for n, (_, writer) in enumerate(connections):
            if n not in lived and not writer.transport.is_closing():
                writer.write(header[second % len(header):second % len(header) + 1])
        await asyncio.sleep(1)
    for _, writer in connections:
        writer.close()
    await asyncio.gather(*watchers, return_exceptions=True)
    closed = sorted(t for t in lived.values() if t < 15)
    return (f"{len(closed)} of 20 closed by the SECC, after {closed[0]:.1f} to {closed[-1]:.1f} s" if closed
            else "none of 20 closed by the SECC within 15 s")


async def _normal_ev(port: int) -> float:
    """Seconds a well-behaved EV waits for the SECC's supportedAppProtocolRes (inf: none came)."""
    from harness import exi
    from harness.v2g import sap
    from harness.v2g.v2gtp import PayloadType, encode

    request = encode(PayloadType.EXI, exi.encode(sap.request(sap.offer(["iso2"])), "sap"))
    started = time.monotonic()
    try:
        async with asyncio.timeout(5):
            reader, writer = await asyncio.open_connection("::1", port)
            writer.write(request)
            header = await reader.readexactly(8)
            await reader.readexactly(int.from_bytes(header[4:8], "big"))
            writer.close()
    except Exception:
        return float("inf")
    return time.monotonic() - started


CSMS_ATTACKS = {"csms-big-frames": csms_big_frames, "csms-valid-big-calls": csms_valid_big_calls,
                "csms-flood-unread": csms_flood_unread,
                "csms-silent-connections": csms_silent_connections, "csms-long-actions": csms_long_actions}


async def attack_csms(name: str, folder: Path) -> dict:
    port = free_port()
    server = Server(HARNESS + ["csms", "serve", "--host", "127.0.0.1", "--port", str(port), "--out", str(folder)],
                    folder / "trace.jsonl", "trace:")
    try:
        await asyncio.sleep(0.5)
        before, trace_before = server.rss(), server.trace_mb()
        peak = before
        task = asyncio.create_task(CSMS_ATTACKS[name](port))
        served = []
        while not task.done():
            served.append(await _normal_station(port))
            peak = max(peak, server.rss())
            await asyncio.sleep(0.2)
        await task
        await asyncio.sleep(3)
        return {"attack": name, "rss_before_mb": before, "rss_peak_mb": peak, "rss_after_mb": server.rss(),
                "trace_growth_mb": server.trace_mb() - trace_before, "normal_client_worst_s": max(served or [0.0])}
    finally:
        server.stop()


SECC_ATTACKS = {"secc-sdp-65k": secc_sdp_datagrams, "secc-tls-silent": secc_tls_silent, "secc-trickle": secc_trickle}


async def attack_secc(name: str, folder: Path) -> dict:
    sdp = free_port()
    server = Server(HARNESS + ["evse", "serve", "--iface", "lo", "--sdp-port", str(sdp), "--out", str(folder),
                               "--pki", str(folder / "pki"), "--time-scale", "0.1", "--quiet"],
                    folder / "trace.jsonl", "trace:")
    try:
        await asyncio.sleep(1)
        found = next((re.search(r"TCP (\d+), TLS (\d+)", line) for line in server.lines if "SECC on" in line), None)
        ports = {"sdp": sdp, "tcp": int(found.group(1)) if found else 0, "tls": int(found.group(2)) if found else 0}
        before, trace_before = server.rss(), server.trace_mb()
        task = asyncio.create_task(SECC_ATTACKS[name](ports))
        served, peak = [], before
        while not task.done():
            served.append(await _normal_ev(ports["tcp"]))
            peak = max(peak, server.rss())
            await asyncio.sleep(0.1)
        note = await task
        await asyncio.sleep(2)
        return {"attack": name, "rss_before_mb": before, "rss_peak_mb": peak, "rss_after_mb": server.rss(),
                "trace_growth_mb": server.trace_mb() - trace_before, "normal_client_worst_s": max(served or [0.0]),
                "note": note}
    finally:
        server.stop()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help="one attack by name")
    parser.add_argument("--keep", action="store_true", help="keep the servers' traces (printed where)")
    args = parser.parse_args()
    rows = []
    tmp = tempfile.mkdtemp(prefix="hostile-")
    try:
        for name in CSMS_ATTACKS:
            if args.only in (None, name):
                rows.append(await attack_csms(name, Path(tmp) / name))
        for name in SECC_ATTACKS:
            if args.only in (None, name):
                rows.append(await attack_secc(name, Path(tmp) / name))
    finally:
        if args.keep:
            print(f"the servers' folders are in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"{'attack':26} {'RSS before':>10} {'peak':>8} {'after':>8} {'left':>7} {'trace +MB':>10} {'normal client':>14}")
    for row in rows:
        left = row["rss_after_mb"] - row["rss_before_mb"]
        print(f"{row['attack']:26} {row['rss_before_mb']:9.1f}M {row['rss_peak_mb']:7.1f}M {row['rss_after_mb']:7.1f}M "
              f"{left:6.1f}M {row['trace_growth_mb']:10.2f} {row['normal_client_worst_s']:13.3f}s"
              + (f"   {row['note']}" if row.get("note") else ""))


if __name__ == "__main__":
    asyncio.run(main())
