"""The EV as the device under test, on the netns rig (root): the harness plays the charger and the
EV is `harness ev run`, started in the EV's network namespace by the rig file's operator command,
a process the suites know nothing of. The EV-side suites pass against it, and fail with the
rule's words when that EV is started breaking rules on purpose (``--misbehave``)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from harness.netns import unavailable_reason

pytestmark = pytest.mark.skipif(unavailable_reason() is not None,
                                reason=f"the EV-under-test rig is a netns rig: {unavailable_reason()}")

ROOT = Path(__file__).resolve().parents[2]
RIG = ROOT / "rigs" / "ev-under-test-netns.yaml"
#: one case per kind of reaction: a FAILED response, a response that never comes, an SECC chain
#: from an untrusted root (-2, TLS 1.2), an expired SECC leaf (-20, TLS 1.3), an undecodable
#: response; and the whole sessions: Plug & Charge (-2, -20) and BPT with discharge (AC, DC)
SELECTION = ("test_ev_stops or test_ev_gives_up or untrusted_secc or (faulty_secc_chain and iso20-expired-leaf) "
             "or undecodable or ev_runs")


def _run(harness_command, tmp_path: Path, *misbehaviours: str) -> dict[str, dict]:
    rig = yaml.safe_load(RIG.read_text())
    extra = " ".join(f"--misbehave {m}" for m in misbehaviours)
    rig["operator"]["plug_in"] = rig["operator"]["plug_in"].replace("--out {out}", f"{extra} --out {{out}}")
    path = tmp_path / "rig.yaml"
    path.write_text(yaml.safe_dump(rig))
    report = tmp_path / "report"
    run = subprocess.run(harness_command + ["run", "--rig", str(path), "--report-dir", str(report), "-k", SELECTION],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert (report / "conformance.json").exists(), run.stdout[-3000:] + run.stderr[-2000:]
    document = json.loads((report / "conformance.json").read_text())
    cases = {c.get("instance") or c["id"]: c for c in document["cases"] if c["verdict"] != "skip"}
    assert document["run"]["ev"]["kind"] == "lab"
    return {"run": document["run"], **cases}


def test_the_ev_side_suite_passes_against_an_ev_it_knows_nothing_of(harness_command, tmp_path):
    found = _run(harness_command, tmp_path)
    run = found.pop("run")
    assert set(found) == {"V2G-EVCC-001", "V2G-EVCC-002", "V2G-EVCC-003", "V2G-EVCC-004",
                          "V2G-EVCC-007[iso20-expired-leaf]", "EV-SESSION-001[iso2-AC]", "EV-SESSION-001[iso20-dc-DC]",
                          "EV-SESSION-002[iso20-ac-AC_BPT]", "EV-SESSION-002[iso20-dc-DC_BPT]"}, sorted(found)
    assert {c["verdict"] for c in found.values()} == {"pass"}, {k: c["message"] for k, c in found.items()}
    # reported under the EV's identity as the harness's SECC saw it, and the VIN the rig file gives
    ev = run["ev"]
    assert ev["vin"] == "HRNEMU00000000001"
    # DIN / -2: the MAC of its interface ([V2G2-879]); -20: the EVCCID its profile names
    assert len(ev["evccid"]) == 2 and len(ev["evccid"][0]) == 12 and ev["evccid"][1] == "WHARNESS000000001"
    # what it offered in the sessions that got past TLS, and the vehicle certificate of its -20 sessions
    assert ev["protocols_offered"][0] == "urn:iso:15118:2:2013:MsgDef v2.0"
    assert {"urn:iso:std:iso:15118:-20:DC v1.0", "urn:iso:std:iso:15118:-20:AC v1.0"} <= set(ev["protocols_offered"])
    assert any("O=Harness OEM" in c for c in ev["vehicle_certificates"])
    assert run["dut"] is None  # the charger was the harness's own


def test_an_ev_that_breaks_the_rules_fails_with_the_rules_words(harness_command, tmp_path):
    found = _run(harness_command, tmp_path, "trust-any-secc", "no-message-timeout", "wrong-challenge")
    found.pop("run")
    verdicts = {k: c["verdict"] for k, c in found.items()}
    # what these misbehaviours do not touch still passes
    for unaffected in ("V2G-EVCC-001", "V2G-EVCC-004", "EV-SESSION-002[iso20-ac-AC_BPT]",
                       "EV-SESSION-002[iso20-dc-DC_BPT]"):
        assert verdicts[unaffected] == "pass", found[unaffected]["message"]
    timeout = found["V2G-EVCC-002"]
    assert timeout["verdict"] == "fail"
    assert "did not close the connection after V2G_EVCC_Msg_Timeout" in timeout["message"]
    assert "ISO 15118-2 Table 109" in timeout["message"]
    for chain in ("V2G-EVCC-003", "V2G-EVCC-007[iso20-expired-leaf]"):
        assert found[chain]["verdict"] == "fail", (chain, found[chain]["message"])
        assert "the EV accepted an SECC presenting" in found[chain]["message"]
        assert "ISO 15118-2 7.7.3" in found[chain]["message"]
    # a Plug & Charge AuthorizationReq with another GenChallenge than the charger gave: refused, quoted
    assert "AuthorizationRes FAILED_ChallengeInvalid" in found["EV-SESSION-001[iso2-AC]"]["message"]
    assert "AuthorizationRes WARNING_ChallengeInvalid" in found["EV-SESSION-001[iso20-dc-DC]"]["message"]
