"""EV and EVSE profiles (fixtures/ev, fixtures/evse): loading and every problem named."""

from __future__ import annotations

import pytest

from harness.emulators.profiles import (
    DEFAULT_EV_PROFILE,
    DEFAULT_EVSE_PROFILE,
    ProfileError,
    load_ev_profile,
    load_evse_profile,
)
from harness.rig.config import RigFileError, parse_rig


def test_the_shipped_profiles_load():
    ev = load_ev_profile(DEFAULT_EV_PROFILE)
    assert ev.protocols[0] == "iso20-dc" and "DC_BPT" in ev.energy and ev.plan.identification == "EIM"
    evse = load_evse_profile(DEFAULT_EVSE_PROFILE)
    assert evse.capabilities.evse_id == "DEHARE1234567" and evse.capabilities.cable_check_rounds == 2


def test_every_problem_of_an_ev_profile_is_listed_with_its_path(tmp_path):
    path = tmp_path / "ev.yaml"
    path.write_text("evccid: XYZ\nprotocols: [iso2, iso3]\nbattery: {soc: 1.5}\nsession: {energy: AC_BPT}\n"
                    "energy: [AC]\ncolour: red\n")
    with pytest.raises(ProfileError) as caught:
        load_ev_profile(path)
    text = str(caught.value)
    for expected in ("evccid: must be the EV's MAC", "protocols[1]: must be one of", "battery.soc: must be at most 1",
                     "session.energy: AC_BPT is not among", "colour: unknown field"):
        assert expected in text, text


def test_an_evse_profile_with_a_short_evse_id_is_refused(tmp_path):
    path = tmp_path / "evse.yaml"
    path.write_text("evse_id: DE1\ntls: sometimes\n")
    with pytest.raises(ProfileError, match="evse_id: must be 7 to 37") as caught:
        load_evse_profile(path)
    assert "tls: must be one of required, optional, none" in str(caught.value)


def test_a_rig_file_names_a_missing_profile(tmp_path):
    data = {"name": "x", "kind": "emulated", "csms": {}, "evse": {"station_id": "S1", "ocpp": {"version": "2.0.1"},
                                                                  "profile": "nowhere.yaml"},
            "ev": {"profile": "nowhere-ev.yaml"}}
    with pytest.raises(RigFileError) as caught:
        parse_rig(data, path=tmp_path / "rig.yaml")
    assert "evse.profile: no such file" in str(caught.value) and "ev.profile: no such file" in str(caught.value)


def test_a_rig_file_lists_the_problems_of_its_profiles(tmp_path):
    (tmp_path / "ev.yaml").write_text("battery: {soc: 2}\n")
    data = {"name": "x", "kind": "emulated", "csms": {}, "evse": {"station_id": "S1", "ocpp": {"version": "2.0.1"}},
            "ev": {"profile": "ev.yaml"}}
    with pytest.raises(RigFileError, match=r"ev.profile: ev.yaml: battery.soc: must be at most 1"):
        parse_rig(data, path=tmp_path / "rig.yaml")
