"""The SECC's view of a plug-in (what the EV-side suites judge an EV by), read from a timeline
recorded the way the reference SECC records it, and the EV's identity taken from it."""

from __future__ import annotations

from harness.correlation.identity import ev_identity
from harness.rig.secc_view import SeccView, collect
from harness.trace import Layer, Recorder


def _message(recorder: Recorder, sender: str, name: str, body: dict, **keys: str) -> None:
    recorder.emit(Layer.V2G, name, f"{sender}: {name}", src=sender, dst="evse" if sender == "ev" else "ev",
                  observer="evse", payload={"message": {name: body}, "protocol": "iso2"}, keys=keys)


def _secc(recorder: Recorder, name: str, payload: dict, *, from_ev: bool = False) -> None:
    recorder.emit(Layer.V2G, name, name, src="ev" if from_ev else "evse", observer="evse", payload=payload)


def test_connections_requests_and_how_each_ended():
    recorder = Recorder()
    mark = recorder.now()
    recorder.emit(Layer.V2G, "SessionSetupReq", "the EV's own view", src="ev", observer="ev",
                  payload={"message": {"SessionSetupReq": {}}})  # not the SECC's: never read
    _secc(recorder, "TlsHandshakeFailed", {"reason": "bad certificate"}, from_ev=True)
    _secc(recorder, "TcpAccepted", {"tls": None}, from_ev=True)
    _message(recorder, "ev", "supportedAppProtocolReq", {"AppProtocol": [
        {"ProtocolNamespace": "urn:din:70121:2012:MsgDef", "VersionNumberMajor": 2, "VersionNumberMinor": 0,
         "Priority": 2},
        {"ProtocolNamespace": "urn:iso:15118:2:2013:MsgDef", "VersionNumberMajor": 2, "VersionNumberMinor": 0,
         "Priority": 1}]})
    _message(recorder, "evse", "supportedAppProtocolRes", {"ResponseCode": "OK_SuccessfulNegotiation"})
    _message(recorder, "ev", "SessionSetupReq", {"EVCCID": "0A0B0C0D0E0F"}, evccid="0A0B0C0D0E0F")
    recorder.emit(Layer.FAULT, "FaultDrop", "evse drops SessionSetupRes", src="evse", observer="evse",
                  payload={"kind": "drop"})
    _secc(recorder, "TcpClosed", {"reason": "closed by the peer"})
    _secc(recorder, "SessionEnded", {"ok": False, "reason": "connection lost", "protocol": "iso2"})

    view = SeccView.of(recorder, mark)
    refused, session = view.connections
    assert refused.tls_refused and refused.ended is not None and refused.requests() == []
    assert session.request_names() == ["supportedAppProtocolReq", "SessionSetupReq"]
    assert session.after("supportedAppProtocolReq") == ["SessionSetupReq"] and session.after("AuthorizationReq") is None
    assert session.closed_by_ev and session.outcome["reason"] == "connection lost"
    assert [e.name for e in view.faults("drop")] == ["FaultDrop"] and view.faults("code") == []
    assert view.finished
    assert "connection 1: TLS refused (bad certificate)" in view.describe()
    assert "the EV closed it" in view.describe()
    # the EV as the SECC saw it: the EVCCID it sent, what it offered in its own priority order
    assert ev_identity(recorder.select(observer="evse")) == {
        "evccid": ["0A0B0C0D0E0F"], "vehicle_certificates": [],
        "protocols_offered": ["urn:iso:15118:2:2013:MsgDef v2.0", "urn:din:70121:2012:MsgDef v2.0"]}


def test_an_ev_that_never_connected_is_no_view_to_judge_by():
    recorder = Recorder()
    mark = recorder.now()
    recorder.emit(Layer.SDP, "SdpRequest", "SDP request", src="ev", observer="evse")
    view = collect(recorder, mark, timeout=0.2)
    assert view.first is None and not view.finished
    assert view.describe() == "no connection to the SECC (1 SDP request(s))"
    assert ev_identity(recorder.select(observer="evse")) is None


def test_collect_waits_for_an_open_connection_to_end():
    import threading

    recorder = Recorder()
    mark = recorder.now()
    _secc(recorder, "TcpAccepted", {"tls": "TLSv1.3"}, from_ev=True)
    timer = threading.Timer(0.2, _secc, (recorder, "SessionEnded", {"ok": True, "reason": "SessionStop"}))
    timer.start()
    view = collect(recorder, mark, timeout=5.0)
    timer.join()
    assert view.finished and view.first is not None and view.first.outcome["ok"] is True
    assert view.first.tls == "TLSv1.3"
