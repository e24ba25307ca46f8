"""The EV's SLAC machine without any network: frames field by field against ISO 15118-3, timers,
retries, the choice among EVSEs, and how it copes with EVSEs that misbehave."""

from __future__ import annotations

import itertools

import pytest

from harness.slac import frames as f
from harness.slac.ev import EvFaults, EvSlac, EvState, Failed, Matched, Note, Send
from harness.slac.timing import STANDARD

EV = "02:00:00:00:00:e1"
EVSE_A = "02:00:00:00:00:a1"
EVSE_B = "02:00:00:00:00:b1"
NMK = bytes(range(16))
NID = f.nid_from_nmk(NMK)


def counter_random():
    """Deterministic 'random' bytes, so RunIDs are known."""
    numbers = itertools.count(1)
    return lambda n: bytes([next(numbers) % 256]) * n


def sends(outputs) -> list[Send]:
    return [o for o in outputs if isinstance(o, Send)]


class FakeEvse:
    """What an EVSE (and its modem) would answer, built with the same frame layer."""

    def __init__(self, mac: str, attenuation: int) -> None:
        self.mac, self.attenuation = mac, attenuation

    def parm_cnf(self, run_id: bytes) -> bytes:
        return f.build(f.slac_parm_cnf(run_id, EV, sounds=10, timeout_field=6), dst=EV, src=self.mac)

    def atten_char(self, run_id: bytes, groups: list[int] | None = None) -> bytes:
        return f.build(f.atten_char_ind(run_id, EV, 10, groups or [self.attenuation] * 58), dst=EV, src=self.mac)

    def match_cnf(self, run_id: bytes) -> bytes:
        return f.build(f.slac_match_cnf(run_id, EV, self.mac, NID, NMK), dst=EV, src=self.mac)


def modem_set_key_cnf(result: int = 0) -> bytes:
    return f.build(f.set_key_cnf(result), dst=EV, src="00:b0:52:00:00:42")


def run_until(machine: EvSlac, now: float, until: float, step: float = 0.001) -> tuple[list, float]:
    outputs = []
    while now < until:
        now += step
        outputs += machine.poll(now)
    return outputs, now


def test_a_full_match_sends_the_iso_15118_3_sequence_field_by_field():
    machine = EvSlac(EV, random=counter_random())
    out = machine.start(0.0)
    parm = f.parse(sends(out)[0].frame)
    run_id = machine.run_id
    # CM_SLAC_PARM.REQ: broadcast, APPLICATION_TYPE 0, SECURITY_TYPE 0, 8-byte RunID, padded frame
    assert (parm.name, parm.dst, parm.src) == ("CM_SLAC_PARM.REQ", f.BROADCAST, EV)
    assert (parm.field("ApplicationType"), parm.field("SecurityType"), parm.run_id) == (0, 0, run_id)
    assert len(run_id) == 8 and len(parm.raw) == 60 and parm.raw[14] == 0x01  # MMV 1.1

    evse = FakeEvse(EVSE_A, 22)
    out = machine.receive(evse.parm_cnf(run_id), 0.01)
    out += run_until(machine, 0.01, 0.5)[0]
    batch = [f.parse(s.frame) for s in sends(out)]
    starts = [m for m in batch if m.name == "CM_START_ATTEN_CHAR.IND"]
    sounds = [m for m in batch if m.name == "CM_MNBC_SOUND.IND"]
    assert len(starts) == STANDARD.C_EV_start_atten_char_inds == 3
    for start in starts:  # Table A.4 values
        assert start.dst == f.BROADCAST and start.run_id == run_id
        assert (start.field("NumberOfSounds"), start.field("TimeOut"), start.field("ResponseType")) == (10, 6, 1)
        assert start.field("ForwardingSTA") == EV
    assert len(sounds) == STANDARD.C_EV_match_MNBC == 10
    assert [s.field("Countdown") for s in sounds] == list(range(9, -1, -1))
    for sound in sounds:
        assert sound.run_id == run_id and sound.field("SenderID") == b"\x00" * 17
        assert sound.field("RSVD") == b"\x00" * 8 and len(sound.field("RandomValue")) == 16
    assert len({s.field("RandomValue") for s in sounds}) == 10

    out = machine.receive(evse.atten_char(run_id), 0.6)
    rsp = f.parse(sends(out)[0].frame)
    assert (rsp.name, rsp.dst, rsp.run_id, rsp.field("SourceAdress"), rsp.field("Result")) == (
        "CM_ATTEN_CHAR.RSP", EVSE_A, run_id, EV, 0)
    assert rsp.field("SourceID") == rsp.field("ResponseID") == b"\x00" * 17

    out, now = run_until(machine, 0.6, STANDARD.TT_EV_atten_results + 0.01)
    match = f.parse(sends(out)[0].frame)
    variable = match.body.VariableField
    assert (match.name, match.dst) == ("CM_SLAC_MATCH.REQ", EVSE_A)
    assert match.field("MatchVariableFieldLen") == f.MATCH_REQ_MVF_LENGTH == 0x3E
    assert (variable.EVID, variable.EVSEID, variable.RSVD) == (b"\x00" * 17, b"\x00" * 17, b"\x00" * 8)
    assert (variable.EVMAC, variable.EVSEMAC, bytes(variable.RunID)) == (EV, EVSE_A, run_id)

    out = machine.receive(evse.match_cnf(run_id), now)
    key = f.parse(sends(out)[0].frame)
    assert (key.name, key.dst) == ("CM_SET_KEY.REQ", f.QCA_LOCAL_MAC)
    assert (key.field("KeyType"), key.field("PID"), key.field("NewEncKeySelect")) == (1, 4, 1)
    assert (bytes(key.field("NetworkID")), bytes(key.field("NewKey"))) == (NID, NMK)
    assert machine.state is EvState.JOINING

    out = machine.receive(modem_set_key_cnf(), now + 0.01)
    matched = out[-1]
    assert isinstance(matched, Matched) and machine.state is EvState.MATCHED
    assert (matched.evse_mac, matched.nid, matched.nmk, matched.attenuation_db) == (EVSE_A, NID, NMK, 22.0)


def test_the_ev_matches_the_evse_with_the_lowest_attenuation():
    machine = EvSlac(EV, random=counter_random())
    machine.start(0.0)
    run_id = machine.run_id
    near, far = FakeEvse(EVSE_A, 18), FakeEvse(EVSE_B, 47)
    machine.receive(far.parm_cnf(run_id), 0.005)
    machine.receive(near.parm_cnf(run_id), 0.006)
    machine.receive(far.atten_char(run_id), 0.4)
    machine.receive(near.atten_char(run_id), 0.45)
    out, _ = run_until(machine, 0.45, STANDARD.TT_EV_atten_results + 0.01)
    chosen = next(o for o in out if isinstance(o, Note) and o.name == "EvseChosen")
    assert chosen.payload == {"evse_mac": EVSE_A, "candidates": {EVSE_B: 47.0, EVSE_A: 18.0}}
    assert f.parse(sends(out)[-1].frame).dst == EVSE_A


def test_no_answer_retries_c_ev_match_retry_times_then_fails_after_c_conn_max_match_attempts():
    timers = STANDARD.scaled(0.1)
    machine = EvSlac(EV, timers=timers, random=counter_random())
    out = machine.start(0.0)
    out += run_until(machine, 0.0, 5.0)[0]
    requests = [s for s in sends(out) if s.name == "CM_SLAC_PARM.REQ"]
    # each attempt: one request + C_EV_match_retry retries; C_conn_max_match attempts with new RunIDs
    assert len(requests) == (1 + timers.C_EV_match_retry) * timers.C_conn_max_match == 9
    assert len({r.run_id for r in requests}) == 3
    assert isinstance(machine.result, Failed) and "no CM_SLAC_PARM.CNF" in machine.result.reason
    assert machine.result.attempts == 3


def test_a_cnf_with_another_run_id_is_ignored():
    machine = EvSlac(EV, random=counter_random())
    machine.start(0.0)
    wrong = bytes(8)
    out = machine.receive(FakeEvse(EVSE_A, 20).parm_cnf(wrong), 0.01)
    assert machine.state is EvState.PARM
    assert out[0].name == "FrameIgnored" and "RunID" in out[0].summary


def test_a_late_slac_match_cnf_makes_the_ev_repeat_its_request():
    timers = STANDARD
    machine = EvSlac(EV, timers=timers, random=counter_random())
    machine.start(0.0)
    run_id = machine.run_id
    evse = FakeEvse(EVSE_A, 20)
    machine.receive(evse.parm_cnf(run_id), 0.01)
    machine.receive(evse.atten_char(run_id), 0.3)
    out, now = run_until(machine, 0.3, timers.TT_EV_atten_results + 0.01)
    assert [s.name for s in sends(out)][-1] == "CM_SLAC_MATCH.REQ"
    out, now = run_until(machine, now, now + timers.TT_match_response + 0.01)
    assert [s.name for s in sends(out)] == ["CM_SLAC_MATCH.REQ"]  # repeated after TT_match_response
    machine.receive(evse.match_cnf(run_id), now)
    assert machine.state is EvState.JOINING


def test_an_attenuation_over_the_limit_is_no_match():
    machine = EvSlac(EV, attenuation_limit_db=40, random=counter_random(), timers=STANDARD.scaled(0.1))
    machine.start(0.0)
    run_id = machine.run_id
    evse = FakeEvse(EVSE_A, 62)
    machine.receive(evse.parm_cnf(run_id), 0.001)
    machine.receive(evse.atten_char(run_id), 0.05)
    out, _ = run_until(machine, 0.05, 0.2)
    assert not any(s.name == "CM_SLAC_MATCH.REQ" for s in sends(out))
    note = next(o for o in out if isinstance(o, Note) and o.name == "AttemptFailed")
    assert "62.0 dB" in note.summary and "above the limit of 40 dB" in note.summary


def test_malformed_and_foreign_frames_are_noted_not_fatal():
    machine = EvSlac(EV, random=counter_random())
    machine.start(0.0)
    cut = FakeEvse(EVSE_A, 20).parm_cnf(machine.run_id)[:25]
    out = machine.receive(cut, 0.01)
    assert out[0].name == "MalformedFrame" and "CM_SLAC_PARM.CNF" in out[0].summary
    assert machine.receive(b"\x00" * 10, 0.01) == []
    assert machine.receive(bytes(12) + b"\x86\xdd" + bytes(60), 0.01) == []
    assert machine.state is EvState.PARM


def test_abort_on_cp_change_ends_matching_at_once():
    machine = EvSlac(EV, random=counter_random())
    machine.start(0.0)
    out = machine.abort("CP state B -> A during matching")
    assert isinstance(out[-1], Failed) and machine.state is EvState.FAILED and machine.next_deadline is None


def test_faults_put_a_wrong_run_id_where_asked():
    machine = EvSlac(EV, faults=EvFaults(wrong_run_id_in=frozenset({"CM_START_ATTEN_CHAR.IND"})),
                     random=counter_random())
    machine.start(0.0)
    out = machine.receive(FakeEvse(EVSE_A, 20).parm_cnf(machine.run_id), 0.01)
    start = f.parse(sends(out)[0].frame)
    assert start.name == "CM_START_ATTEN_CHAR.IND" and start.run_id != machine.run_id


def test_timers_scale_but_counters_do_not():
    scaled = STANDARD.scaled(0.1)
    assert scaled.TT_EV_atten_results == pytest.approx(0.12) and scaled.TT_match_response == pytest.approx(0.02)
    assert scaled.C_EV_match_retry == 2 and scaled.C_EV_match_MNBC == 10
    assert STANDARD.mnbc_timeout_field == 6 and scaled.mnbc_timeout_field == 1
    with pytest.raises(ValueError):
        STANDARD.scaled(0)


def test_frames_missing_from_scapy_round_trip():
    profile = f.parse(f.build(f.atten_profile_ind(EV, [30] * 58), dst=EVSE_A, src="00:b0:52:00:00:42"))
    assert profile.name == "CM_ATTEN_PROFILE.IND" and profile.body.NumGroups == 58 and f.groups_of(profile) == [30] * 58
    validate = f.parse(f.build(f.validate_req(), dst=EVSE_A, src=EV))
    assert (validate.name, validate.field("SignalType"), validate.field("Timer"), validate.field("Result")) == (
        "CM_VALIDATE.REQ", 0, 0, 1)
    cnf = f.parse(f.build(f.validate_cnf(3, f.VALIDATE_SUCCESS), dst=EV, src=EVSE_A))
    assert (cnf.field("ToggleNum"), cnf.field("Result")) == (3, 2)
    amp = f.parse(f.build(f.amp_map_req([0x1, 0x2, 0xF]), dst=EVSE_A, src=EV))
    assert amp.field("AMLEN") == 3 and amp.field("AMDATA") == bytes([0x21, 0x0F])
    assert f.parse(f.build(f.amp_map_cnf(), dst=EV, src=EVSE_A)).name == "CM_AMP_MAP.CNF"


def test_nid_from_nmk_agrees_with_pyslac():
    from pyslac.utils import generate_nid

    for seed in range(5):
        nmk = bytes([seed]) * 16
        assert f.nid_from_nmk(nmk) == generate_nid(nmk)
        assert f.nid_from_nmk(nmk)[6] & 0xC0 == 0


def _joining() -> tuple[EvSlac, float]:
    """An EV machine that has sent CM_SET_KEY.REQ to its modem after a match."""
    machine = EvSlac(EV, random=counter_random())
    run_id = (machine.start(0.0), machine.run_id)[1]
    evse = FakeEvse(EVSE_A, 22)
    machine.receive(evse.parm_cnf(run_id), 0.01)
    run_until(machine, 0.01, 0.5)
    machine.receive(evse.atten_char(run_id), 0.6)
    _, now = run_until(machine, 0.6, STANDARD.TT_EV_atten_results + 0.01)
    machine.receive(evse.match_cnf(run_id), now)
    assert machine.state is EvState.JOINING
    return machine, now


@pytest.mark.parametrize("result", [0x00, 0x01], ids=["homeplug-0x00", "qualcomm-0x01"])
def test_the_ev_takes_either_success_value_of_cm_set_key_cnf(result):
    """0x00 is success in the HomePlug Green PHY text, 0x01 what QCA700x modems answer on success."""
    machine, now = _joining()
    out = machine.receive(modem_set_key_cnf(result), now + 0.01)
    assert isinstance(out[-1], Matched) and machine.state is EvState.MATCHED


def test_the_ev_stops_when_its_modem_refuses_the_key():
    machine, now = _joining()
    machine.receive(modem_set_key_cnf(0x02), now + 0.01)
    assert machine.state is EvState.FAILED and "refused the key (CM_SET_KEY.CNF result 2)" in machine.result.reason


def _set_key_req(my_nonce: int, prn: int, pmn: int) -> bytes:
    request = f.set_key_req(NID, NMK)
    request.MyNonce, request.ProtoRunNumber, request.ProtoMessNumber = my_nonce, prn, pmn
    return f.build(request, dst=f.QCA_LOCAL_MAC, src=EV)


def test_the_modem_answers_cm_set_key_as_qualcomm_firmware_does_by_default():
    """RESULT 0x01 for success and the request's nonces, PID, PRN and PMN echoed: what SLAC
    software written for QCA700x modems (open-plc-utils' evse/pev) expects."""
    from harness.emulators.greenphy import GreenPhyModem, ModemRole, ToHost

    modem = GreenPhyModem(role=ModemRole.EV, host_mac=EV)
    out = modem.from_host(_set_key_req(0xAAAAAAAA, 0x1234, 3))
    cnf = f.parse(next(o.frame for o in out if isinstance(o, ToHost)))
    assert (cnf.name, cnf.dst, cnf.src) == ("CM_SET_KEY.CNF", EV, modem.mac)
    assert cnf.field("Result") == 0x01
    assert (cnf.field("MyNonce"), cnf.field("YourNonce")) == (0xAAAAAAAA, 0)
    assert (cnf.field("PID"), cnf.field("ProtoRunNumber"), cnf.field("ProtoMessNumber")) == (4, 0x1234, 3)
    assert modem.nid == NID and modem.nmk == NMK


def test_the_modem_answers_as_the_homeplug_text_says_when_told_so():
    from harness.emulators.greenphy import GreenPhyModem, ModemRole, ToHost

    modem = GreenPhyModem(role=ModemRole.EVSE, host_mac=EV, firmware="homeplug")
    out = modem.from_host(_set_key_req(0xAAAAAAAA, 0x1234, 3))
    cnf = f.parse(next(o.frame for o in out if isinstance(o, ToHost)))
    assert cnf.field("Result") == 0x00
    assert cnf.field("YourNonce") == 0xAAAAAAAA  # the nonce the requester sent, as the text wants it back
    assert (cnf.field("PID"), cnf.field("ProtoRunNumber"), cnf.field("ProtoMessNumber")) == (4, 0x1234, 3)
    with pytest.raises(ValueError, match="modem firmware 'tplink'"):
        GreenPhyModem(role=ModemRole.EV, firmware="tplink")


def test_unplugging_between_two_attempts_ends_the_matching_with_that_reason():
    """The first attempt failed and the next waits for TT_matching_rate when the CP leaves B: the
    result says why (before, it was a bare 'aborted')."""
    timers = STANDARD.scaled(0.1)
    machine = EvSlac(EV, timers=timers, random=counter_random())
    machine.start(0.0)
    now = 0.0
    while machine._restart_at is None:
        now += 0.001
        machine.poll(now)
    machine.abort("CP state B -> A during matching")
    assert isinstance(machine.result, Failed) and machine.result.reason == "CP state B -> A during matching"
    assert machine.state is EvState.FAILED
