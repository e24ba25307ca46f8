"""Occurrence bounds of particles (EXI 1.0 §8.5.4.1.5): below the minimum only the element may
follow, in range the element or what comes after it, at the maximum only what comes after it
(the AuthorizationSetupRes vectors, with AuthorizationServices at its maximum of 2, check the
event codes of the last case)."""

from __future__ import annotations

import pytest

from harness import exi
from harness.exi import grammar as g
from harness.exi.codec import codec_for


def receiver_setup(count: int) -> dict:
    """-20 WPT LF_ReceiverSetupData: RxSpecData occurs 2..255 times."""
    spec = {"TxRxIdentifier": 1, "TxRxPosition": {"Coord_X": 1, "Coord_Y": -2, "Coord_Z": 3},
            "TxRxOrientation": {"Coord_X": 0, "Coord_Y": 0, "Coord_Z": 0}}
    return {"LF_ReceiverSetupData": {"NumberOfReceivers": count,
                                     "RxSpecData": [dict(spec, TxRxIdentifier=i + 1)
                                                    for i in range(count)]}}


@pytest.mark.parametrize("count", [2, 3, 254, 255])
def test_counts_within_the_bounds_round_trip(count):
    message = receiver_setup(count)
    data = exi.encode(message, "iso20-wpt", fragment=True)
    assert exi.decode(data, "iso20-wpt", fragment=True) == message


def test_fewer_than_the_minimum_is_an_error():
    with pytest.raises(exi.EncodeError, match="missing required element 'RxSpecData' after "
                                              "'RxSpecData'"):
        exi.encode(receiver_setup(1), "iso20-wpt", fragment=True)


def test_more_than_the_maximum_is_an_error():
    message = receiver_setup(256)
    message["LF_ReceiverSetupData"]["NumberOfReceivers"] = 255
    with pytest.raises(exi.EncodeError, match="too many 'RxSpecData' elements"):
        exi.encode(message, "iso20-wpt", fragment=True)


def test_the_three_states_of_a_counted_particle():
    codec = codec_for("iso20-wpt")
    _, type_index = codec.fragment_codes["LF_ReceiverSetupData"]
    setup = codec.types[type_index]
    after_number = codec.states[codec.states[setup.start].by_key["NumberOfReceivers"][1][3]]
    _, production = after_number.by_key["RxSpecData"]
    low, high, below, in_range, at_max = production[3]
    assert (low, high) == (2, 255)
    assert [p[0] for p in codec.states[below].productions] == [g.P_SE]
    assert [p[0] for p in codec.states[in_range].productions] == [g.P_SE, g.P_EE]
    assert [p[0] for p in codec.states[at_max].productions] == [g.P_EE]
    # the event code of EE: 1 of 2 bits in range, 0 of 1 bit at the maximum
    assert (codec.states[in_range].width, codec.states[in_range].ee_code) == (2, 1)
    assert (codec.states[at_max].width, codec.states[at_max].ee_code) == (1, 0)


def test_twenty_app_protocols_fill_the_handshake():
    protocol = {"ProtocolNamespace": "urn:iso:15118:2:2013:MsgDef", "VersionNumberMajor": 2,
                "VersionNumberMinor": 0, "SchemaID": 1, "Priority": 1}
    message = {"supportedAppProtocolReq": {"AppProtocol": [
        dict(protocol, SchemaID=i, Priority=i + 1) for i in range(20)]}}
    assert exi.decode(exi.encode(message, "sap"), "sap") == message
