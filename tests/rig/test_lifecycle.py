"""Rig lifecycle: set-up in order, teardown in reverse, always, leaving the rig safe; locks."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.ocpp import commands
from harness.rig.config import load_rig, parse_rig
from harness.rig.lock import RigBusy, RigLock
from harness.rig.rig import Rig, RigSetupError, RigState
from harness.trace import Recorder

ROOT = Path(__file__).resolve().parents[2]

EMULATED = ROOT / "rigs" / "emulated.yaml"


def _rig(tmp_path: Path, config=None) -> Rig:
    config = config or load_rig(EMULATED)
    return Rig(config, run_dir=tmp_path, trace=Recorder(tmp_path / "trace.jsonl"), run_id="test")


def test_roles_come_up_in_order_and_go_down_in_reverse(tmp_path):
    rig = _rig(tmp_path)
    with rig:
        rig.evse.wait_registered(30)
        assert rig.loop.running
    names = [(e.name, e.summary) for e in rig.trace.select(layer="rig")]
    assert [s for n, s in names if n == "RoleUp"] == ["csms up", "link up", "evse up", "pilot up", "meter up", "ev up"]
    assert names[-1][0] == "RigTeardown" and not rig.loop.running
    # the CSMS stopped last: it saw the station leave
    stopped = rig.trace.last(name="CsmsStopped")
    assert rig.trace.last(name="Disconnected").seq < stopped.seq


def test_teardown_stops_the_transaction_and_the_power(tmp_path):
    rig = _rig(tmp_path)
    with rig:
        rig.evse.wait_registered(30)
        mark = rig.trace.now()
        rig.ev.plug_in()
        rig.csms.call(*commands.remote_start(rig.evse.version, "TEARDOWN"))
        rig.csms.wait_charging(timeout=10, since=mark)
        line = rig.evse.emulator.connectors[1].line
        assert line.read().power > 0
    ended = [tx for tx in rig.csms.transactions() if tx.ended]
    assert ended and ended[0].id_token == "TEARDOWN"
    assert line.read().power == 0 and not line.read().contactor_closed


def test_a_role_that_fails_to_come_up_tears_down_the_ones_before(tmp_path):
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    data = {"name": "broken", "kind": "emulated", "timing": {"scale": 0.02}, "csms": {},
            "evse": {"station_id": "S1", "ocpp": {"version": "2.0.1", "security_profile": 2,
                                                   "password": "password-password-1",
                                                   "tls": {"certificate": str(garbage), "key": str(garbage),
                                                           "ca": str(garbage)}}}}
    rig = _rig(tmp_path, parse_rig(data))
    with pytest.raises(RigSetupError, match="evse failed to come up.*garbage.pem"):
        rig.setup()
    names = [e.name for e in rig.trace.select(layer="rig")]
    assert names[-2:] == ["RigSetupFailed", "RigTeardown"] or "RigTeardown" in names
    assert rig.trace.last(name="CsmsStopped") is not None and not rig.loop.running


def test_a_busy_csms_port_fails_cleanly(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        data = {"name": "busy", "kind": "emulated", "csms": {"port": busy.getsockname()[1]},
                "evse": {"station_id": "S1", "ocpp": {"version": "2.0.1"}}}
        rig = _rig(tmp_path, parse_rig(data))
        with pytest.raises(RigSetupError, match="csms failed to come up"):
            rig.setup()
    assert not rig.loop.running


def test_a_second_holder_of_a_lab_lock_is_told_who_has_it(tmp_path):
    path = tmp_path / "bench.lock"
    first = RigLock(path, "bench", "run-1")
    first.acquire()
    try:
        script = ("import sys\nfrom pathlib import Path\nfrom harness.rig.lock import RigLock, RigBusy\n"
                  f"try:\n    RigLock(Path({str(path)!r}), 'bench', 'run-2').acquire()\n"
                  "except RigBusy as exc:\n    print(exc)\n    sys.exit(3)\n")
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
        assert result.returncode == 3
        assert f"pid {os.getpid()}" in result.stdout and "run-1" in result.stdout
        with pytest.raises(RigBusy):
            RigLock(path, "bench", "run-3").acquire()
    finally:
        first.release()
    again = RigLock(path, "bench", "run-4")
    again.acquire()
    again.release()


def _wait_for_line(path: Path, needle: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and needle in path.read_text():
            return
        time.sleep(0.05)
    raise AssertionError(f"{needle!r} never appeared in {path}")


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupted_run_tears_the_rig_down_and_keeps_its_evidence(tmp_path, harness_command, how):
    report = tmp_path / "report"
    process = subprocess.Popen(harness_command + ["run", "--report-dir", str(report), "-k", "offline"],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_for_line(report / "trace.jsonl", '"name":"TestStarted"', 60)
        time.sleep(0.5)
        process.send_signal(how)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode != 0
    events = [json.loads(line) for line in (report / "trace.jsonl").read_text().splitlines()]
    names = [e["name"] for e in events]
    assert "RigTeardown" in names, output[-2000:]
    assert names.index("RigTeardown") > names.index("TestStarted")
    # the transaction the interrupted case had started was ended before the rig went down
    ended = [e for e in events if e["name"] == "TransactionEvent" and e["observer"] == "csms"
             and (e["payload"].get("payload") or {}).get("eventType") == "Ended"]
    started = [e for e in events if e["name"] == "TransactionEvent" and e["observer"] == "csms"
               and (e["payload"].get("payload") or {}).get("eventType") == "Started"]
    assert len(ended) >= len(started)
    assert (report / "conformance.json").exists() and (report / "junit.xml").exists()


def test_a_run_against_a_locked_lab_rig_stops_at_once_naming_the_holder(tmp_path, harness_command):
    lock_file = tmp_path / "bench.lock"
    rig = tmp_path / "lab.yaml"
    rig.write_text(
        "name: bench\nkind: lab\n"
        f"lock: {lock_file}\n"
        "csms: {host: 0.0.0.0, port: 0}\n"
        "evse: {kind: lab, station_id: CP-1, ocpp: {version: '2.0.1', password: lab-password-000001}}\n"
        "ev: {kind: none}\npilot: {kind: none}\n")
    holder = RigLock(lock_file, "bench", "the-other-run")
    holder.acquire()
    try:
        result = subprocess.run(harness_command + ["run", "--rig", str(rig), "--report-dir", str(tmp_path / "r")],
                                cwd=ROOT, capture_output=True, text=True, timeout=120)
    finally:
        holder.release()
    assert result.returncode == 3, result.stdout[-2000:]
    # exit status 3 comes from the lock check, before any waiting for a charger
    assert "is locked by" in result.stdout and "the-other-run" in result.stdout


def test_the_strategy_moves_the_rig_between_its_states(tmp_path):
    rig = _rig(tmp_path)
    assert rig.strategy.state is RigState.OFF
    with rig:
        assert rig.strategy.state is RigState.UNPLUGGED
        rig.evse.wait_registered(30)
        rig.strategy.transition(RigState.LINK_UP)  # plugged in; a loopback link is up once plugged
        assert rig.strategy.state is RigState.LINK_UP and rig.ev.plugged
        assert rig.trace.last(name="CpState", where=lambda e: e.payload["to"] == "B") is not None
        rig.ev.unplug()  # a case unplugged: the strategy sees it
        assert rig.strategy.state is RigState.UNPLUGGED
        rig.strategy.transition(RigState.PLUGGED)
        assert rig.ev.plugged
        rig.strategy.transition(RigState.UNPLUGGED)  # restoring: unplugged, the charger registered
        assert rig.strategy.state is RigState.UNPLUGGED and not rig.ev.plugged
    assert rig.strategy.state is RigState.OFF and not rig.up
