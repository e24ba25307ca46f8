"""Talking to peers written independently: the recorded sessions of ../shared/vectors (copied to
tests/vectors/exi_sessions.jsonl).

1. Every message type the vectors hold is one our EVCC or SECC sends in some session, and what
   we send decodes to the JSON form and re-encodes byte for byte.
2. The vectors' sessions (each a sample of one real session, grouped by SessionID) are accepted
   by our machines when replayed in order: their requests by our SECC (gaps filled with our own
   EV's requests), their responses by our EVCC (gaps filled with our SECC's responses).
"""

from __future__ import annotations

import base64
import collections
import json
from pathlib import Path

import pytest

from harness import exi
from harness.emulators.charge_port import ChargePort
from harness.v2g import messages, pnc, sap
from harness.v2g.battery import Battery
from harness.v2g.credentials import V2gMaterial
from harness.v2g.equipment import EvseCapabilities
from harness.v2g.machine import failed
from harness.v2g.session import EvccSession, SeccSession
from harness.v2g.timers import Timing
from harness.v2g.vehicle import ChargePlan, Vehicle
from tests.v2g import lockstep as v2g_lockstep

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "exi_sessions.jsonl"
TIMING = Timing(scale=0.0)

#: each recorded session: protocol, energy, identification, charge loops (from its messages)
SESSIONS = {
    "567D53FC83FDB068": ("din", "DC", "EIM", 3),
    "097F24C03987CE81": ("iso2", "DC", "EIM", 3),
    "C72ECF49276A14FE": ("iso2", "DC", "EIM", 4),
    "B4317552719E3447": ("iso2", "AC", "EIM", 1),
    "488D52F9BA69A0B1": ("iso2", "AC", "PnC", 1),
    "68476729AAE9DD19": ("iso20-ac", "AC_BPT", "EIM", 5),
    "9D877D56AD17DB1E": ("iso20-ac", "AC", "EIM", 3),
    "6FA518555E682333": ("iso20-dc", "DC", "PnC", 3),
    "C383D89A818D9D21": ("iso20-dc", "DC_BPT", "PnC", 5),
}


def _load() -> list[dict]:
    return [json.loads(line) for line in VECTORS.read_text().splitlines() if line.strip()]


def _session_of(vector: dict) -> str:
    return messages.session_id_of(vector["json"]) or "sap"


def _by_session() -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = collections.defaultdict(list)
    for vector in _load():
        groups[_session_of(vector)].append(vector)
    return groups


def _order_key(vector: dict) -> tuple:
    """Same-named messages of one session in the order they were sent: -20 by TimeStamp, then by
    what the EV reported (SoC), then Ongoing before Finished."""
    header = messages.header_of(vector["json"])
    body = messages.body_of(vector["json"])
    soc = (body.get("DC_EVStatus") or {}).get("EVRESSSOC")
    soc = soc if soc is not None else (body.get("DisplayParameters") or {}).get("PresentSOC", 0)
    ongoing = 0 if body.get("EVProcessing") == "Ongoing" or body.get("EVSEProcessing") == "Ongoing" else 1
    return header.get("TimeStamp", 0), soc, ongoing


def _discriminator(family: str, name: str, body: dict) -> tuple:
    """Requests of one name that stand at different places of a session (-20's PowerDeliveryReq
    with EVProcessing Ongoing comes before the one with Finished)."""
    if name == "PowerDeliveryReq":
        return name, body.get("ChargeProgress", body.get("ReadyToChargeState")), body.get("EVProcessing", "Finished")
    return (name,)


def _family(protocol: str) -> str:
    return sap.protocol(protocol).family


def _vehicle(protocol: str, energy: str, identification: str, cycles: int, material: V2gMaterial) -> Vehicle:
    generation = "iso20" if protocol.startswith("iso20") else "iso2"
    ev = Vehicle("0A1B2C3D4E5F", Battery(60000.0, 0.4, 50000.0, 11000.0), vin="WMIV1234567890ABCDEX",
                 plan=ChargePlan(protocols=(protocol,), energy=energy, identification=identification, cycles=cycles),
                 pack_voltage_empty=1.0, pack_voltage_full=1.0)  # the recorded EVSEs report 1 V
    if identification == "PnC":
        ev.credentials = material.ev_credentials(generation)
    return ev


class RecordedBackend(ChargePort):
    """The recorded sessions' contracts come from the other implementations' PKI, whose MO root we
    do not have: here a backend stands in for theirs and accepts what their SECC accepted, and
    says so (a real SECC never accepts a chain nobody validated)."""

    def check_contract(self, chain, *, generation, emaid):
        return pnc.ContractCheck(None, "the replay's stand-in for the recorded session's backend",
                                 "accepted, as in the recording")


def _secc(protocol: str, session_id: str, challenge: bytes | None) -> SeccSession:
    caps = EvseCapabilities(protocols=(protocol,), cable_check_rounds=1, dc_max_voltage=1000.0)
    randomness = v2g_lockstep.Randomness(bytes.fromhex(session_id), *([challenge] if challenge else []))
    tls = "TLSv1.3" if protocol.startswith("iso20") else "TLSv1.2"
    return SeccSession(RecordedBackend(caps), supported=[sap.protocol(protocol)], tls=tls, timing=TIMING,
                       random_bytes=randomness)


def _challenge(vectors: list[dict]) -> bytes | None:
    for vector in vectors:
        body = messages.body_of(vector["json"])
        mode = body.get("PnC_ASResAuthorizationMode") or body.get("PnC_AReqAuthorizationMode") or body
        if vector["message"] in ("PaymentDetailsRes", "AuthorizationSetupRes", "AuthorizationReq") \
                and "GenChallenge" in mode:
            return base64.b64decode(mode["GenChallenge"])
    return None


# -- 1: what our side sends ------------------------------------------------------------------------

def _our_sessions(material: V2gMaterial):
    """Every message our EVCC and SECC send in the sessions the vectors cover."""
    sent: dict[tuple[str, str], list] = collections.defaultdict(list)
    for session_id, (protocol, energy, identification, cycles) in SESSIONS.items():
        evcc = EvccSession(_vehicle(protocol, energy, identification, cycles, material), offered=[protocol],
                           timing=TIMING)
        secc = _secc(protocol, session_id, None)
        for request, response in v2g_lockstep.run(evcc, secc):
            for send in (request, response):
                sent[(send.schema, send.name)].append(send)
        assert evcc.outcome.ok, (protocol, energy, evcc.outcome)
    return sent


def test_every_vector_message_type_is_one_we_send_and_it_decodes_exactly(material):
    ours = _our_sessions(material)
    wanted = {(v["schema"], v["message"]) for v in _load()}
    missing = sorted(wanted - set(ours))
    assert not missing, f"message types of the vectors our side never sends: {missing}"
    for key in wanted:
        for send in ours[key]:
            decoded = exi.decode(send.data, send.schema)
            assert decoded == send.message, key
            assert exi.encode(decoded, send.schema) == send.data, key
    for vector in _load():  # and ours have the vectors' shape: root, header fields
        ours_message = ours[(vector["schema"], vector["message"])][0].message
        assert messages.name_of(ours_message) == vector["message"]
        ours_header = set(messages.header_of(ours_message)) - {"Signature"}
        theirs_header = set(messages.header_of(vector["json"])) - {"Signature"}
        assert ours_header == theirs_header, vector["message"]


# -- 2: their sessions, replayed -------------------------------------------------------------------

@pytest.mark.parametrize("session_id", sorted(SESSIONS))
def test_our_secc_accepts_the_recorded_requests_in_order(material, session_id):
    protocol, energy, identification, cycles = SESSIONS[session_id]
    family = _family(protocol)
    recorded = _by_session()
    theirs = [v for v in recorded[session_id] if v["message"].endswith("Req")]
    setups = [v for v in _load() if v["message"] == "SessionSetupReq" and v["schema"] == family]
    theirs = setups[:1] + theirs
    groups: dict[tuple, list[dict]] = collections.defaultdict(list)
    for vector in sorted(theirs, key=_order_key):
        groups[_discriminator(family, vector["message"], messages.body_of(vector["json"]))].append(vector)
    # our own EV's session is the skeleton the recorded sample is laid on
    evcc = EvccSession(_vehicle(protocol, energy, identification, cycles, material), offered=[protocol],
                       timing=TIMING)
    template = [request for request, _ in v2g_lockstep.run(evcc, _secc(protocol, session_id, None))]
    secc = _secc(protocol, session_id, _challenge(recorded[session_id]))
    template_keys = [_discriminator(family, r.name, messages.body_of(r.message)) for r in template]
    before: dict[tuple, list[tuple]] = collections.defaultdict(list)
    for key in groups:  # a recorded step our EV does not take goes before its sibling (Ongoing first)
        if key not in template_keys:
            sibling = next((k for k in template_keys if k[:2] == key[:2]), None)
            if sibling is not None:
                before[sibling].append(key)
    used: set[tuple] = set()
    replayed = 0
    for request in template:
        if request.name == "supportedAppProtocolReq":
            feed = [(request.payload_type, request.data, request.name, False)]
        else:
            key = _discriminator(family, request.name, messages.body_of(request.message))
            if key in used:
                continue
            feed = []
            for early in before.pop(key, []):
                used.add(early)
                feed += [(messages.payload_type_of(family, v["message"]), bytes.fromhex(v["hex"]), v["message"], True)
                         for v in groups[early]]
            if key in groups:
                used.add(key)
                feed += [(messages.payload_type_of(family, v["message"]), bytes.fromhex(v["hex"]), v["message"], True)
                         for v in groups[key]]
            else:  # not in the sample: our EV's request, with the recorded session's SessionID
                sid = "0" * 16 if family == "iso20" and request.name == "SessionSetupReq" else session_id
                message = _with_session_id(request.message, sid)
                feed += [(request.payload_type, exi.encode(message, request.schema), request.name, False)]
        for payload_type, data, name, recorded_one in feed:
            answer = v2g_lockstep.first_send(secc.receive(payload_type, data, 0.0))
            assert answer is not None, f"{name}: no answer ({secc.outcome})"
            code = messages.response_code_of(answer.message)
            assert not failed(code) and not (code or "").startswith("WARNING"), \
                f"{name} ({'recorded' if recorded_one else 'ours'}) answered {code}"
            replayed += recorded_one
    assert secc.outcome is not None and secc.outcome.ok, secc.outcome
    assert used == set(groups), f"recorded requests not replayed: {set(groups) - used}"
    assert replayed == len(theirs)


def _with_session_id(message: dict, session_id: str) -> dict:
    from harness.v2g.faults import set_path

    return set_path(message, "Header.SessionID", session_id)


@pytest.mark.parametrize("session_id", sorted(SESSIONS))
def test_our_evcc_accepts_the_recorded_responses_in_order(material, session_id):
    protocol, energy, identification, cycles = SESSIONS[session_id]
    family = _family(protocol)
    recorded = _by_session()[session_id]
    responses: dict[str, list[dict]] = collections.defaultdict(list)
    for vector in sorted((v for v in recorded if v["message"].endswith("Res")), key=_order_key):
        responses[vector["message"]].append(vector)
    total = sum(len(v) for v in responses.values())
    used = []

    def recorded_answer(send):
        pending = responses.get(send.name)
        if not pending:
            return None
        vector = pending.pop(0)
        used.append(vector["message"])
        return messages.payload_type_of(family, vector["message"]), bytes.fromhex(vector["hex"])

    evcc = EvccSession(_vehicle(protocol, energy, identification, cycles, material), offered=[protocol],
                       timing=TIMING)
    secc = _secc(protocol, session_id, _challenge(recorded))
    v2g_lockstep.run(evcc, secc, response=recorded_answer)
    assert evcc.outcome is not None and evcc.outcome.ok, f"{evcc.outcome} after {used}"
    assert len(used) == total, f"recorded responses the EV never asked for: {dict(responses)}"
