"""Load on the mock CSMS: N stations over TLS (security profile 2) sending heartbeats and meter
values; prints connections held, messages per second and response times.

    .venv/bin/python bench/csms_load.py --stations 200 --duration 30
    .venv/bin/python bench/csms_load.py --stations 1000 --duration 60

The CSMS runs in its own process, exactly as the rigs run it (recording every frame to a
trace.jsonl); this process plays the stations with plain WebSocket clients so the load generator
costs as little as possible. Response time is measured at the station: CALL sent to CALLRESULT
received.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from websockets.asyncio.client import connect

from harness.ocpp.security import basic_auth_header
from harness.pki.ocpp import generate_ocpp_pki
from harness.pki.tls import ocpp_client_context

PASSWORD = "load-test-password-01"


def serve_csms(pki_dir: str, trace_path: str, port_queue, stop_event) -> None:
    """The CSMS process."""
    from harness.ocpp.csms import MockCsms
    from harness.ocpp.security import SecurityPolicy
    from harness.pki.ocpp import CertificateFiles
    from harness.trace import Recorder

    async def main() -> None:
        pki = Path(pki_dir)
        policy = SecurityPolicy(profile=2, server=CertificateFiles(pki / "csms-server.pem", pki / "csms-server.key"))
        recorder = Recorder(trace_path)
        csms = MockCsms(recorder, security=policy)
        await csms.start()
        port_queue.put(csms.port)
        most = 0
        while not stop_event.is_set():
            most = max(most, len(csms.sessions))
            await asyncio.sleep(0.05)
        port_queue.put(most)
        await csms.stop()
        recorder.close()

    asyncio.run(main())


class Station:
    def __init__(self, index: int, url: str, context, heartbeat: float, meter: float) -> None:
        self.id = f"LOAD-{index:05d}"
        self.url = url + self.id
        self.context = context
        self.heartbeat = heartbeat
        self.meter = meter
        self.times: list[tuple[float, float]] = []  # (sent at, response time)
        self.connected_at = 0.0
        self.errors = 0
        self.connected = False
        self.energy = 0.0

    async def run(self, start_gate: asyncio.Semaphore, stop_at: float) -> None:
        async with start_gate:
            try:
                websocket = await connect(self.url, subprotocols=["ocpp2.0.1"], ssl=self.context,
                                          additional_headers={"Authorization": basic_auth_header(self.id, PASSWORD)},
                                          open_timeout=60, ping_interval=None)
            except Exception:
                self.errors += 1
                return
        self.connected = True
        self.connected_at = time.monotonic()
        counter = 0
        try:
            await self._call(websocket, "boot", "BootNotification",
                             {"reason": "PowerUp", "chargingStation": {"model": "Load", "vendorName": "Bench"}})
            next_heartbeat = time.monotonic() + random.uniform(0, self.heartbeat)
            next_meter = time.monotonic() + random.uniform(0, self.meter)
            while time.monotonic() < stop_at:
                now = time.monotonic()
                if now >= next_heartbeat:
                    counter += 1
                    await self._call(websocket, f"h{counter}", "Heartbeat", {})
                    next_heartbeat += self.heartbeat
                elif now >= next_meter:
                    counter += 1
                    self.energy += 10.0
                    await self._call(websocket, f"m{counter}", "MeterValues", {"evseId": 1, "meterValue": [{
                        "timestamp": "2026-01-01T00:00:00Z", "sampledValue": [
                            {"value": self.energy, "measurand": "Energy.Active.Import.Register"},
                            {"value": 11000.0, "measurand": "Power.Active.Import"}]}]})
                    next_meter += self.meter
                else:
                    await asyncio.sleep(min(next_heartbeat, next_meter, stop_at) - now)
            self.still_connected = websocket.state.name == "OPEN"
        except Exception:
            self.errors += 1
            self.still_connected = False
        finally:
            await websocket.close()

    async def _call(self, websocket, message_id: str, action: str, payload: dict) -> None:
        sent = time.perf_counter()
        await websocket.send(json.dumps([2, message_id, action, payload]))
        answer = json.loads(await asyncio.wait_for(websocket.recv(), 30))
        if answer[0] != 3 or answer[1] != message_id:
            self.errors += 1
            return
        self.times.append((time.monotonic(), time.perf_counter() - sent))


async def drive(stations: list[Station], duration: float, ramp_parallel: int) -> float:
    gate = asyncio.Semaphore(ramp_parallel)
    started = time.monotonic()
    stop_at = started + duration
    await asyncio.gather(*(s.run(gate, stop_at) for s in stations))
    return time.monotonic() - started


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stations", type=int, default=200)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of steady load")
    parser.add_argument("--heartbeat", type=float, default=10.0, help="heartbeat interval per station, s")
    parser.add_argument("--meter", type=float, default=2.0, help="meter value interval per station, s")
    parser.add_argument("--ramp-parallel", type=int, default=50, help="connections opened at once")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="csms-load-"))
    pki = generate_ocpp_pki(workdir / "pki", station_ids=[])
    context = ocpp_client_context(pki.csms_root)
    ports: multiprocessing.Queue = multiprocessing.Queue()
    stop = multiprocessing.Event()
    server = multiprocessing.Process(target=serve_csms, args=(str(workdir / "pki"), str(workdir / "trace.jsonl"),
                                                                ports, stop))
    server.start()
    port = ports.get(timeout=30)
    url = f"wss://localhost:{port}/"
    stations = [Station(i, url, context, args.heartbeat, args.meter) for i in range(args.stations)]
    elapsed = asyncio.run(drive(stations, args.duration, args.ramp_parallel))
    stop.set()
    most_held = ports.get(timeout=60)
    server.join(30)

    times = [t for s in stations for _, t in s.times]
    ramp_done = max((s.connected_at for s in stations), default=0.0)
    steady = [t for s in stations for at, t in s.times if at > ramp_done + 1.0]
    connected = sum(s.connected for s in stations)
    still = sum(getattr(s, "still_connected", False) for s in stations)
    errors = sum(s.errors for s in stations)
    trace_size = (workdir / "trace.jsonl").stat().st_size
    print(f"stations            {args.stations} (TLS, security profile 2, OCPP 2.0.1)")
    print(f"python              {sys.version.split()[0]} on {os.cpu_count()} cores")
    print(f"connected           {connected}, held to the end {still} (the CSMS held up to {most_held} at once)")
    print(f"calls answered      {len(times)} in {elapsed:.1f} s = {len(times) / elapsed:.0f} messages/s")
    offered = args.stations * (1 / args.heartbeat + 1 / args.meter)
    print(f"offered load        {offered:.0f} messages/s once all stations are up")
    for label, sample in (("response time", times), ("  steady state", steady)):
        if sample:
            print(f"{label:<20}p50 {statistics.median(sample) * 1000:.2f} ms, p99 {percentile(sample, 0.99) * 1000:.2f} ms,"
                  f" max {max(sample) * 1000:.1f} ms ({len(sample)} calls)")
    print(f"errors              {errors}")
    print(f"trace.jsonl         {trace_size / 1e6:.1f} MB")
    return 0 if errors == 0 and still == args.stations else 1


if __name__ == "__main__":
    sys.exit(main())
