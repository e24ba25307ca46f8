"""Rig files: every problem reported with its path, never a traceback."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest

from harness.rig.config import RigFileError, load_rig, parse_rig

ROOT = Path(__file__).resolve().parents[2]

MINIMAL = {"name": "r", "kind": "emulated", "csms": {}, "evse": {"station_id": "S1", "ocpp": {"version": "2.0.1"}}}


@pytest.mark.parametrize("rig", sorted((ROOT / "rigs").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_rig_files_load(rig):
    config = load_rig(rig)
    assert config.name and config.evse.station_id


def test_defaults_fill_a_minimal_rig():
    config = parse_rig(MINIMAL)
    assert (config.csms.host, config.csms.port, config.evse.ocpp.security_profile) == ("127.0.0.1", 0, 1)
    assert config.time_scale == 1.0 and config.ev.kind == "emulated"


def _problems(data) -> list[str]:
    with pytest.raises(RigFileError) as caught:
        parse_rig(data)
    return caught.value.problems


def test_every_problem_is_reported_with_its_path():
    data = {
        "name": "bad", "kind": "lab", "timing": {"scale": 0.5},
        "csms": {"port": 70000, "versions": ["2.0.1", "3.0"], "id_tokens": {"T1": "Maybe"}},
        "evse": {"kind": "lab", "station_id": "has:colon", "ocpp": {"version": "2.0.1", "security_profile": 4,
                                                                      "pasword": "x"}},
        "meter": {"kind": "visa"},
        "pilot": {"kind": "lab"},
        "extra": 1,
    }
    problems = _problems(data)
    expected = [
        "timing.scale: lab rigs run the standards' timers",
        "csms.port: must be at most 65535",
        "csms.versions[1]: must be one of 1.6, 2.0.1, 2.1",
        "csms.id_tokens.T1: must be one of Accepted",
        "evse.station_id: must be at most 48 characters without ':'",
        "evse.ocpp.security_profile: must be 1, 2 or 3",
        "evse.ocpp.pasword: unknown field (did you mean 'password'?)",
        "meter.resource: is required for a VISA instrument",
        "meter.model: is required for a VISA instrument",
        "pilot.resource: is required for a lab pilot",
        "extra: unknown field",
        "csms.host: 127.0.0.1 is a loopback address: a real charger cannot reach a CSMS",
    ]
    for text in expected:
        assert any(p.startswith(text) for p in problems), (text, problems)


@pytest.mark.parametrize("data, problem", [
    ("just text", "must be a mapping of fields"),
    ({"name": "r", "kind": "emulated"}, "csms: is required"),
    ({**MINIMAL, "evse": {"station_id": "S", "ocpp": {"version": 2}}}, "evse.ocpp.version: must be one of"),
    ({**MINIMAL, "evse": {"station_id": "S", "ocpp": {"version": "2.0.1", "password": "short"}}},
     "evse.ocpp.password: must be 16 to 40 characters"),
    ({**MINIMAL, "timing": {"scale": 0}}, "timing.scale: must be greater than 0"),
    ({**MINIMAL, "csms": {"versions": ["1.6"]}}, "evse.ocpp.version: 2.0.1 is not among csms.versions"),
    ({**MINIMAL, "evse": {"kind": "lab", "station_id": "S", "ocpp": {"version": "2.0.1"}}},
     "evse.kind: a real EVSE needs a lab rig"),
    ({**MINIMAL, "ev": {"soc": 1.5}}, "ev.soc: must be at most 1.0"),
    ({**MINIMAL, "link": {"kind": "nic"}}, "link.iface: is required for a nic link"),
    ({**MINIMAL, "csms": {"tls": {"certificate": "nowhere.pem"}}}, "csms.tls.certificate: no such file"),
    ({**MINIMAL, "pki": "no-such-pki.yaml"}, "pki: no such PKI description or folder"),
    # every loopback address, not only 127.0.0.1, is out of a lab charger's reach
    ({"name": "l", "kind": "lab", "csms": {"host": "127.0.0.2"}, "ev": {"kind": "none"}, "pilot": {"kind": "none"},
      "evse": {"kind": "lab", "station_id": "S", "ocpp": {"version": "2.0.1", "password": "p" * 16}}},
     "csms.host: 127.0.0.2 is a loopback address"),
    ({"name": "l", "kind": "lab", "csms": {"host": "0.0.0.0"},
      "evse": {"kind": "lab", "station_id": "S", "ocpp": {"version": "2.0.1", "password": "p" * 16}}},
     "pilot.kind: a simulated pilot line cannot reach a real charger"),
    # an EV under test meets the harness's charger, on the netns line, plugged in by an operator command
    ({**MINIMAL, "kind": "netns", "ev": {"kind": "lab"}, "link": {"kind": "veth"},
      "evse": {"kind": "lab", "station_id": "S", "ocpp": {"version": "2.0.1"}}},
     "ev.kind: an EV under test meets the harness's charger"),
    ({**MINIMAL, "ev": {"kind": "lab"}}, "link.kind: an EV under test reaches the harness's charger over"),
    ({**MINIMAL, "kind": "netns", "ev": {"kind": "lab"}, "link": {"kind": "veth"}, "pilot": {"kind": "none"}},
     "pilot.kind: an EV under test needs the charger's side of the pilot"),
    ({**MINIMAL, "operator": {"kind": "command", "plug_in": "x"}}, "operator.kind: an operator works at a lab bench"),
    ({**MINIMAL, "kind": "netns", "ev": {"kind": "lab"}, "link": {"kind": "veth"},
      "operator": {"kind": "command", "plug_in": "start-ev {ev_namespace}"}},
     "operator.plug_in: unknown placeholder {ev_namespace}"),
    ({**MINIMAL, "kind": "netns", "ev": {"kind": "lab"}, "link": {"kind": "veth"},
      "operator": {"kind": "command", "plug_in": "start-ev {ev_iface"}},
     "operator.plug_in: is not a command line with {placeholders}"),
])
def test_single_problems(data, problem):
    assert any(p.startswith(problem) for p in _problems(data)), _problems(data)


def test_yaml_syntax_errors_name_the_line(tmp_path):
    rig = tmp_path / "broken.yaml"
    rig.write_text("name: x\nkind: [emulated\n")
    with pytest.raises(RigFileError) as caught:
        load_rig(rig)
    assert caught.value.problems[0].startswith("line 3")
    with pytest.raises(RigFileError, match="cannot read the file"):
        load_rig(tmp_path / "missing.yaml")


def test_rig_check_prints_problems_without_a_traceback(tmp_path, harness_command):
    rig = tmp_path / "bad.yaml"
    rig.write_text(textwrap.dedent("""\
        name: bad
        kind: emulated
        csms: {port: -1}
        evse: {station_id: S1, ocpp: {version: "2.0.1", security_profile: 7}}
        """))
    result = subprocess.run(harness_command + ["rig", "check", "--rig", str(rig)], capture_output=True, text=True)
    assert result.returncode == 1
    assert "evse.ocpp.security_profile: must be 1, 2 or 3" in result.stdout
    assert "csms.port: must be at least 0" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_rig_check_probes_the_default_rig(harness_command):
    result = subprocess.run(harness_command + ["rig", "check"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[ok] csms listen address" in result.stdout


def test_a_busy_port_is_reported(harness_command, tmp_path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        rig = tmp_path / "rig.yaml"
        rig.write_text(f"name: r\nkind: emulated\ncsms: {{port: {port}}}\n"
                       "evse: {station_id: S1, ocpp: {version: '2.0.1'}}\n")
        result = subprocess.run(harness_command + ["rig", "check", "--rig", str(rig)], capture_output=True, text=True)
    assert result.returncode == 1 and "[FAIL] csms listen address" in result.stdout
