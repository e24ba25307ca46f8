"""labgrid places as rigs, against a real labgrid coordinator and exporter on loopback (started and
stopped here): a suite runs on a place from another process, a second run stops at once naming
the holder, the place is released after Ctrl-C, and `rig check` maps a place's resources (a veth
as the Green PHY NIC, the simulated analyzer as a VISA device) onto a lab rig."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.netns import unavailable_reason

pytest.importorskip("labgrid", reason="labgrid is not installed: pip install -e '.[labgrid]' (or '.[test]')")

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    found = BIN / name if (BIN / name).exists() else shutil.which(name)
    if not found:
        pytest.skip(f"{name} is not installed")
    return str(found)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


class Lab:
    """A coordinator, an analyzer simulator and an exporter offering them as place ``bench``."""

    def __init__(self, folder: Path, harness_command: list[str], nic: str | None = None,
                 power: str | None = None) -> None:
        self.folder = folder
        self.coordinator = f"127.0.0.1:{_free_port()}"
        self.processes: list[subprocess.Popen] = []
        try:
            self._start(harness_command, nic, power)
        except BaseException:
            self.close()  # what started before the failure does not outlive the test
            raise

    def _start(self, harness_command: list[str], nic: str | None, power: str | None) -> None:
        folder = self.folder
        self.processes.append(subprocess.Popen([_tool("labgrid-coordinator"), "-l", self.coordinator], cwd=folder,
                                               stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT))
        analyzer = subprocess.Popen(harness_command + ["meter", "simulate", "--port", "0"], stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True)
        self.processes.append(analyzer)
        line = analyzer.stdout.readline() if analyzer.stdout else ""
        found = re.search(r"TCPIP\d*::([\d.]+)::(\d+)::SOCKET", line)
        assert found, line
        self.analyzer = (found.group(1), int(found.group(2)))
        resources = {"charger": {"cls": "NetworkService", "address": "127.0.0.1", "port": 9000, "username": "lab"},
                     "analyzer": {"cls": "NetworkService", "address": self.analyzer[0], "port": self.analyzer[1],
                                  "username": "lab"}}
        if nic is not None:
            resources["plc"] = {"cls": "NetworkInterface", "ifname": nic}
        if power is not None:  # a PDU outlet with labgrid's simple REST model: GET <host>/<index>/<0|1>
            resources["mains"] = {"cls": "NetworkPowerPort", "model": "simplerest", "host": power, "index": 3}
        (folder / "exporter.yaml").write_text(json.dumps({"bench": resources}))  # YAML reads JSON
        _wait(lambda: self._answers(), 20, "the labgrid coordinator")
        self.processes.append(subprocess.Popen([_tool("labgrid-exporter"), "-c", self.coordinator, "-n", "exp",
                                                "--hostname", "127.0.0.1", str(folder / "exporter.yaml")], cwd=folder,
                                               stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT))
        _wait(lambda: "exp/bench/NetworkService" in self.client("resources").stdout, 20, "the exporter's resources")
        assert self.client("-p", "bench", "create").returncode == 0
        assert self.client("-p", "bench", "add-match", "exp/bench/*").returncode == 0

    def _answers(self) -> bool:
        return self.client("places").returncode == 0

    def client(self, *args: str, user: str | None = None) -> subprocess.CompletedProcess:
        env = {**os.environ, **({"LG_USERNAME": user} if user else {})}
        return subprocess.run([_tool("labgrid-client"), "-x", self.coordinator, *args], capture_output=True,
                              text=True, timeout=30, env=env)

    def holder(self) -> str | None:
        shown = self.client("-p", "bench", "show").stdout
        found = re.search(r"^\s+acquired: (\S+)", shown, re.MULTILINE)
        return None if found is None or found.group(1) == "None" else found.group(1)

    def close(self) -> None:
        for process in reversed(self.processes):
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture
def lab(tmp_path, harness_command):
    built = Lab(tmp_path, harness_command)
    try:
        yield built
    finally:
        built.close()


def _run(harness_command, lab: Lab, report: Path, *selection: str, **popen) -> subprocess.Popen:
    env = {**os.environ, "LG_COORDINATOR": lab.coordinator}
    return subprocess.Popen(harness_command + ["run", "--place", "bench", "--report-dir", str(report), *selection],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)


def test_a_suite_runs_on_a_place_and_gives_it_back(lab, harness_command, tmp_path):
    """From another process: the place is acquired for the run, its analyzer becomes the rig's VISA
    analyzer (the rig check before the first case asks it *IDN?), the boot suite passes, and the
    place is free again afterwards."""
    run = _run(harness_command, lab, tmp_path / "report", "-k", "cold_boot")
    output, _ = run.communicate(timeout=300)
    assert run.returncode == 0, output[-3000:]
    cases = json.loads((tmp_path / "report" / "conformance.json").read_text())["cases"]
    assert cases and all(c["verdict"] == "pass" for c in cases)
    acquired = next(json.loads(line) for line in (tmp_path / "report" / "trace.jsonl").read_text().splitlines()
                    if '"PlaceAcquired"' in line)
    resources = "\n".join(acquired["payload"]["resources"])
    host, port = lab.analyzer
    assert f"NetworkService/analyzer: the power analyzer TCPIP0::{host}::{port}::SOCKET (meter: visa)" in resources
    assert "NetworkService/charger: the charger at 127.0.0.1" in resources
    assert lab.holder() is None


def test_a_second_run_on_a_held_place_stops_at_once_naming_the_holder(lab, harness_command, tmp_path):
    assert lab.client("-p", "bench", "acquire", user="night-ci").returncode == 0
    try:
        started = time.monotonic()
        run = _run(harness_command, lab, tmp_path / "report", "-k", "cold_boot")
        output, _ = run.communicate(timeout=120)
        assert run.returncode == 3, output[-2000:]
        assert re.search(r"labgrid place 'bench' is held by \S+/night-ci", output), output[-2000:]
        assert time.monotonic() - started < 60  # at once: before any rig comes up
        assert lab.holder() is not None and lab.holder().endswith("/night-ci")
    finally:
        lab.client("-p", "bench", "release", user="night-ci")


def test_ctrl_c_releases_the_place(lab, harness_command, tmp_path):
    run = _run(harness_command, lab, tmp_path / "report", "-k", "boot or rpc")
    try:
        _wait(lambda: lab.holder() is not None, 60, "the run to acquire the place")
        _wait(lambda: (tmp_path / "report" / "trace.jsonl").exists()
              and "CsmsListening" in (tmp_path / "report" / "trace.jsonl").read_text(), 60, "the rig to come up")
        run.send_signal(signal.SIGINT)
        output, _ = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
    assert lab.holder() is None, output[-2000:]
    assert json.loads((tmp_path / "report" / "conformance.json").read_text())["run"].get("interrupted") or \
        "interrupted" in output.lower()


def test_rig_check_maps_a_places_nic_and_analyzer_onto_a_lab_rig(tmp_path, harness_command, run):
    """A veth exported as the place's NetworkInterface becomes the Green PHY NIC (the modem
    emulator behind it answers as a QCA7000 would) and the analyzer NetworkService the VISA
    analyzer; `rig check --place` probes both and gives the place back."""
    reason = unavailable_reason()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"CI runs as root, yet: {reason}")
        pytest.skip(reason)
    import asyncio

    from harness.emulators.greenphy import FIRMWARE_VERSION, ModemEmulator, ModemRole
    from harness.slac.io import Endpoint
    from harness.trace import Recorder

    name = f"hrnlg{os.getpid() % 10000}"
    subprocess.run(["ip", "link", "add", name, "type", "veth", "peer", "name", f"{name}m"], check=True)
    lab = None
    try:
        for end in (name, f"{name}m"):
            subprocess.run(["ip", "link", "set", end, "up"], check=True)
        lab = Lab(tmp_path, harness_command, nic=name)
        rig = (ROOT / "rigs" / "lab-example.yaml").read_text()
        (tmp_path / "rig.yaml").write_text(rig + f"\nlabgrid:\n  coordinator: {lab.coordinator}\n  place: bench\n")

        async def check():
            modem = ModemEmulator(Recorder(), Endpoint(f"{name}m"), role=ModemRole.EV, name="nic-modem")
            modem.start()
            try:
                process = await asyncio.create_subprocess_exec(
                    *harness_command, "rig", "check", "--rig", str(tmp_path / "rig.yaml"),
                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=ROOT)
                out, _ = await process.communicate()
                return out.decode()
            finally:
                modem.stop()

        printed = run(check())
        host, port = lab.analyzer
        assert f"RemoteNetworkInterface/plc: the Green PHY NIC {name} (link: nic)" in printed, printed
        assert f"[ok] interface {name}" in printed
        assert f"Green PHY modem behind {name}: QCA7000" in printed and FIRMWARE_VERSION in printed
        assert re.search(rf"\[ok\] instrument TCPIP0::{re.escape(host)}::{port}::SOCKET", printed), printed
        assert lab.holder() is None
    finally:
        if lab is not None:
            lab.close()
        subprocess.run(["ip", "link", "del", name], check=False)


class Pdu:
    """A network power switch for labgrid's ``simplerest`` model: each outlet switched by a GET of
    /outlet/<index>/<0|1> and read by a GET of /outlet/<index>; what it was asked, with times."""

    def __init__(self) -> None:
        import http.server
        import threading

        self.requests: list[tuple[float, str]] = []
        self.state = {3: "1"}
        pdu = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server hook
                pdu.requests.append((time.monotonic(), self.path))
                parts = self.path.strip("/").split("/")
                if len(parts) == 3:
                    pdu.state[int(parts[1])] = parts[2]
                body = pdu.state.get(int(parts[1]), "0").encode() if len(parts) >= 2 else b""
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/outlet/{{index}}/{{value}}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_places_power_port_becomes_the_chargers_mains_switch(tmp_path, harness_command):
    """A NetworkPowerPort of the place (a PDU outlet) becomes the charger's mains switch: the lab
    rig's operator cycles it through labgrid-client, the off and on reach the outlet in that order
    with the case's off time between them, and the charger offers power_cycle (OCPP-BOOT-006)."""
    from harness.rig.config import load_rig
    from harness.rig.labgrid import Place, apply
    from harness.rig.operator import operator_for
    from harness.trace import Recorder

    pdu = Pdu()
    lab = Lab(tmp_path, harness_command, power=pdu.url)
    place = Place("bench", lab.coordinator)
    try:
        place.acquire()
        config, notes = apply(load_rig(ROOT / "rigs" / "lab-example.yaml"), place.resources(), place)
        assert "NetworkPowerPort/mains: the charger's mains switch (operator power_cycle: labgrid-client power " \
               "cycle)" in notes
        assert "power_cycle" in config.evse.capabilities and config.operator.kind == "command"
        recorder = Recorder()
        operator = operator_for(config.operator, recorder, config.evse.station_id)
        operator.perform("power_cycle", fields={"off_s": "0.5"})
        switched = [(at, path) for at, path in pdu.requests if path.count("/") == 3]
        assert [path for _, path in switched] == ["/outlet/3/0", "/outlet/3/1"], pdu.requests
        assert switched[1][0] - switched[0][0] >= 0.5
        assert recorder.last(name="OperatorDone") is not None
    finally:
        place.release()
        lab.close()
        pdu.close()
