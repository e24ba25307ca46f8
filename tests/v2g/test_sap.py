"""supportedAppProtocol: what the SECC picks, and what the EVCC accepts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness import exi
from harness.v2g import sap

VECTORS = Path(__file__).resolve().parents[1] / "vectors"


def _request(*entries):
    return {"supportedAppProtocolReq": {"AppProtocol": [
        {"ProtocolNamespace": ns, "VersionNumberMajor": major, "VersionNumberMinor": minor, "SchemaID": sid,
         "Priority": prio} for ns, major, minor, sid, prio in entries]}}


def test_the_secc_picks_the_evs_most_wanted_supported_protocol():
    request = _request((sap.DIN.namespace, 2, 0, 7, 2), (sap.ISO2.namespace, 2, 0, 9, 1))
    result = sap.negotiate(request, [sap.DIN, sap.ISO2])
    assert result.chosen is sap.ISO2 and result.schema_id == 9
    assert result.response == {"supportedAppProtocolRes": {"ResponseCode": sap.OK, "SchemaID": 9}}
    exi.encode(result.response, "sap")


def test_another_minor_version_is_a_minor_deviation():
    result = sap.negotiate(_request((sap.ISO2.namespace, 2, 1, 3, 1)), [sap.ISO2])
    assert result.response["supportedAppProtocolRes"]["ResponseCode"] == sap.OK_MINOR_DEVIATION


def test_nothing_in_common_fails_without_a_schema_id():
    result = sap.negotiate(_request(("urn:example:unknown", 1, 0, 1, 1)), [sap.ISO2, sap.DIN])
    assert not result.ok
    assert result.response == {"supportedAppProtocolRes": {"ResponseCode": sap.FAILED}}
    assert "urn:example:unknown" in result.why


def test_iso15118_20_is_chosen_only_over_tls13():
    request = _request((sap.ISO20_DC.namespace, 1, 0, 1, 1), (sap.ISO2.namespace, 2, 0, 2, 2))
    assert sap.negotiate(request, [sap.ISO20_DC, sap.ISO2], tls13=True).chosen is sap.ISO20_DC
    without = sap.negotiate(request, [sap.ISO20_DC, sap.ISO2], tls13=False)
    assert without.chosen is sap.ISO2


def test_the_evcc_gets_the_protocol_of_the_schema_id_it_gave():
    offer = sap.offer(["iso20-dc", "iso2"])
    assert [(p.key, sid, prio) for p, sid, prio in offer.entries] == [("iso20-dc", 1, 1), ("iso2", 2, 2)]
    answer = {"supportedAppProtocolRes": {"ResponseCode": sap.OK, "SchemaID": 2}}
    assert sap.accepted(answer, offer) is sap.ISO2
    with pytest.raises(sap.NegotiationError, match="SchemaID 5, which was not offered"):
        sap.accepted({"supportedAppProtocolRes": {"ResponseCode": sap.OK, "SchemaID": 5}}, offer)
    with pytest.raises(sap.NegotiationError, match="Failed_NoNegotiation"):
        sap.accepted({"supportedAppProtocolRes": {"ResponseCode": sap.FAILED}}, offer)


def test_an_offer_has_one_to_twenty_protocols():
    with pytest.raises(ValueError):
        sap.offer([])
    with pytest.raises(ValueError):
        sap.offer(["iso2"] * 21)


def test_the_recorded_handshakes_negotiate_with_our_secc():
    requests = [json.loads(line) for name in ("exi_sessions.jsonl", "exi_known.jsonl")
                for line in (VECTORS / name).read_text().splitlines()
                if line.strip() and json.loads(line)["message"] == "supportedAppProtocolReq"]
    assert requests
    for vector in requests:
        message = exi.decode(bytes.fromhex(vector["hex"]), "sap")
        result = sap.negotiate(message, list(sap.PROTOCOLS.values()))
        assert result.ok, vector["json"]
        assert exi.decode(exi.encode(result.response, "sap"), "sap") == result.response
