"""Conformance checks that pass the reference EVSE must fail a charger that breaks their rule:
each test here runs a case against the reference EVSE made to misbehave (or a rig expecting
something else) and expects the verdict fail with a message naming the rule."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _rig(tmp_path: Path, *, profile_extra: str = "", identity: dict | None = None, misbehave: str = "") -> Path:
    profile = (ROOT / "fixtures" / "evse" / "reference.yaml").read_text()
    if profile_extra:
        profile = profile.replace("hlc:\n", f"hlc:\n{profile_extra}\n", 1)
    if misbehave:
        profile += f"misbehave:\n  {misbehave}\n"
    (tmp_path / "evse.yaml").write_text(profile)
    rig = (ROOT / "rigs" / "emulated.yaml").read_text()
    rig = rig.replace("../fixtures/evse/reference.yaml", str(tmp_path / "evse.yaml"))
    rig = rig.replace("../fixtures/ev/default.yaml", str(ROOT / "fixtures" / "ev" / "default.yaml"))
    for key, value in (identity or {}).items():
        rig = rig.replace(f"    {key}: ", f"    {key}: {value!r} #", 1)
    path = tmp_path / "rig.yaml"
    path.write_text(rig)
    return path


def _case(harness_command, rig: Path, report: Path, selection: str) -> dict:
    result = subprocess.run(harness_command + ["run", "--rig", str(rig), "--report-dir", str(report), "-k", selection],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    cases = json.loads((report / "conformance.json").read_text())["cases"]
    assert len(cases) == 1, result.stdout[-3000:]
    return cases[0]


def test_a_charger_that_drops_a_silent_ev_too_early_fails_v2g_secc_004(tmp_path, harness_command):
    """V2G_SECC_Sequence_Timeout is 60 s (ISO 15118-2 Table 109), 1.2 s at the emulated rig's scale;
    a charger that gives up after 22.5 s (0.45 s here) is refused, with the window it missed."""
    rig = _rig(tmp_path, profile_extra="  sequence_timeout_s: 22.5")
    case = _case(harness_command, rig, tmp_path / "report", "test_silent_ev_is_dropped_after_the_sequence_timeout")
    assert case["verdict"] == "fail", case
    assert "V2G_SECC_Sequence_Timeout is 1.2 s on this rig, so between 0.78 and 1.62 s" in case["message"]


def test_a_charger_that_keeps_a_silent_ev_too_long_fails_v2g_secc_004(tmp_path, harness_command):
    rig = _rig(tmp_path, profile_extra="  sequence_timeout_s: 120")
    case = _case(harness_command, rig, tmp_path / "report", "test_silent_ev_is_dropped_after_the_sequence_timeout")
    assert case["verdict"] == "fail", case
    assert "closed the connection after 2.4" in case["message"] and "between 0.78 and 1.62 s" in case["message"]


def test_a_charger_that_reports_another_identity_fails_ocpp_boot_004(tmp_path, harness_command):
    """The rig file's evse.identity is what the lab expects; the emulated charger reports its own
    (its profile's), so a rig file expecting another model fails the case."""
    rig = _rig(tmp_path, identity={"model": "Another Model"})
    case = _case(harness_command, rig, tmp_path / "report", "test_identity_matches_rig_file")
    assert case["verdict"] == "fail", case
    assert "model expected 'Another Model', reported 'Reference EVSE'" in case["message"]


CORR_001_PNC = "two_sessions_in_a_row and iso2 and dc and pnc and not iso20"


def test_a_charger_that_bills_a_contract_to_another_token_fails_corr_001(tmp_path, harness_command):
    """Plug & Charge: the transaction must carry the eMAID the EV presented (OCPP 2.0.1 C07)."""
    rig = _rig(tmp_path, misbehave="id_token: RFID-OTHER")
    case = _case(harness_command, rig, tmp_path / "report", CORR_001_PNC)
    assert case["verdict"] == "fail", case
    assert "has idToken RFID-OTHER; the EV presented eMAID DEHARC12345678" in case["message"]


def test_a_charger_that_reuses_a_transaction_id_fails_corr_001(tmp_path, harness_command):
    rig = _rig(tmp_path, misbehave="transaction_id: T-1")
    case = _case(harness_command, rig, tmp_path / "report", CORR_001_PNC)
    assert case["verdict"] == "fail", case
    assert "transaction T-1 was started 2 times" in case["message"]


def test_a_charger_whose_meter_values_lie_outside_the_transaction_fails_corr_001(tmp_path, harness_command):
    rig = _rig(tmp_path, misbehave="meter_clock_offset_s: -3600")
    case = _case(harness_command, rig, tmp_path / "report", CORR_001_PNC)
    assert case["verdict"] == "fail", case
    assert "meter value(s) dated outside it" in case["message"]


def test_a_charger_that_boots_after_a_power_cut_with_another_reason_fails_ocpp_boot_006(tmp_path, harness_command):
    rig = _rig(tmp_path, misbehave="boot_reason: Watchdog")
    case = _case(harness_command, rig, tmp_path / "report", "power_cut")
    assert case["verdict"] == "fail", case
    assert "booted after a power cut with reason 'Watchdog'" in case["message"]
    assert "BootNotificationRequest.reason PowerUp" in case["message"]
