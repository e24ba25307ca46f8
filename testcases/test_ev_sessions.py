"""Whole sessions from the EV's side: Plug & Charge and bidirectional power transfer (BPT) as the
charger sees the EV run them.

The EV is under test (suite ``dut: ev``) and the harness's reference EVSE plays a charger that
follows the rules: it checks every request against the protocol's sequence and schema, the
contract chain and the AuthorizationReq signature against the run's PKI, and answers FAILED_...
where the EV broke one. A verdict rests on what the harness's SECC saw (see
``test_iso15118_evcc.py``): a FAILED response quotes the rule the charger applied; an EV that
does not run the kind of session the case is about (no contract, no BPT service) gets skip with
what it chose instead.
"""

from __future__ import annotations

import pytest

from harness.ocpp import commands
from harness.rig.secc_view import Connection
from harness.v2g.messages import body_of, name_of
from harness.verdicts import Inconclusive, NotApplicable

#: ISO 15118-20 service ids of the bidirectional energy transfer services (-20 Table 204)
BPT_SERVICES = {5: "AC_BPT", 6: "DC_BPT"}


def _session(result, *, tls: bool) -> Connection:
    first = result.secc.first
    if first is None:
        raise Inconclusive(f"the EV never connected to the SECC ({result.secc.describe()}; the EV's outcome: "
                           f"{result.outcome.reason})")
    if first.tls_refused:
        raise Inconclusive(f"TLS between the EV and the harness's SECC did not come up ({first.describe()}); "
                           f"the EV-side certificate cases (V2G-EVCC-003, -007) judge the EV's TLS")
    if tls and first.tls is None:
        raise NotApplicable(f"the EV asked for plain TCP; Plug & Charge and ISO 15118-20 run on TLS "
                            f"({first.describe()})")
    return first


def _body(connection: Connection, name: str, *, sender: str = "ev") -> dict | None:
    events = connection.requests() if sender == "ev" else connection.responses()
    for event in events:
        message = event.payload.get("message") if isinstance(event.payload, dict) else None
        if isinstance(message, dict) and name_of(message) == name:
            body = body_of(message)
            return body if isinstance(body, dict) else {}
    return None


def _accepted(connection: Connection, reaction) -> None:
    """The charger accepted every request (no FAILED response code, nor a -20 WARNING, which also
    withholds what was asked) and the EV ended the session itself with SessionStopReq, which the
    SECC answered."""
    refused = []
    for event in connection.responses():
        message = event.payload.get("message")
        body = body_of(message) if isinstance(message, dict) else None
        code = body.get("ResponseCode") if isinstance(body, dict) else None
        if isinstance(code, str) and code.startswith(("FAILED", "WARNING")):
            refused.append(f"{event.name} {code}")
    reaction("ISO 15118", "the charger's response codes", expected="OK (no FAILED or WARNING)",
             observed=", ".join(refused) or "all OK", judged=True, agrees=not refused)
    assert not refused, (f"the charger refused what the EV sent: {'; '.join(refused)} (each code names the rule the "
                         f"request broke; the requests: {', '.join(connection.request_names())})")
    names = connection.request_names()
    outcome = connection.outcome
    assert names and names[-1] == "SessionStopReq" and outcome.get("ok"), (
        f"the EV did not end its session with SessionStopReq: its last request was "
        f"{names[-1] if names else 'none'}, and the session ended: {outcome.get('reason') or connection.describe()}")


@pytest.mark.case("EV-SESSION-001")
@pytest.mark.requires("ev", "iso15118", "plug_and_charge")
@pytest.mark.parametrize("protocol, energy", [("iso2", "AC"), ("iso20-dc", "DC")])
def test_ev_runs_a_plug_and_charge_session(rig, ev, step, reaction, protocol, energy):
    result = ev.charge(protocol=protocol, energy=energy, identification="PnC", tls=True, cycles=2)
    connection = _session(result, tls=True)
    if protocol == "iso2":
        selection = _body(connection, "PaymentServiceSelectionReq")
        chosen = (selection or {}).get("SelectedPaymentOption")
        if chosen != "Contract":
            raise NotApplicable(f"the EV chose {chosen or 'no payment option'}, not Contract: no Plug & Charge")
        details = _body(connection, "PaymentDetailsReq") or {}
        with step(f"the EV presented its contract chain (eMAID {details.get('eMAID')})"):
            assert details.get("ContractSignatureCertChain"), \
                "the EV chose Contract but sent no PaymentDetailsReq with its contract chain (ISO 15118-2 8.4.3)"
    else:
        authorization = _body(connection, "AuthorizationReq") or {}
        chosen = authorization.get("SelectedAuthorizationService")
        if chosen != "PnC":
            raise NotApplicable(f"the EV chose {chosen or 'no authorization service'}, not PnC: no Plug & Charge")
    with step("the charger accepted every request and the EV ended the session"):
        _accepted(connection, reaction)


@pytest.mark.case("EV-SESSION-002")
@pytest.mark.requires("ev", "iso15118", "discharge", "remote_start")
@pytest.mark.parametrize("protocol, energy", [("iso20-ac", "AC_BPT"), ("iso20-dc", "DC_BPT")])
def test_ev_runs_a_bidirectional_session(rig, csms, evse, ev, step, reaction, protocol, energy):
    csms.call(*commands.remote_start(evse.version, f"EVSESSION002-{energy}".replace("_", "")))
    result = ev.charge(protocol=protocol, energy=energy, identification="EIM", tls=True, cycles=4, discharge=True)
    connection = _session(result, tls=True)
    selected = (_body(connection, "ServiceSelectionReq") or {}).get("SelectedEnergyTransferService") or {}
    service = BPT_SERVICES.get(selected.get("ServiceID"))
    if service is None:
        raise NotApplicable(f"the EV selected energy transfer service {selected.get('ServiceID')}, not a BPT "
                            f"service (5 AC_BPT, 6 DC_BPT; ISO 15118-20 Table 204)")
    channels = [body.get("BPT_ChannelSelection") for event in connection.requests()
                if event.name == "PowerDeliveryReq" and isinstance(body := body_of(event.payload["message"]), dict)]
    with step(f"the EV selected {service} and asked for the channels {channels}"):
        reaction("ISO 15118", "PowerDeliveryReq BPT_ChannelSelection", expected="Discharge at some point",
                 observed=", ".join(str(c) for c in channels) or "no PowerDeliveryReq")
        if "Discharge" not in channels:
            raise Inconclusive(f"the EV ran {service} without ever asking to discharge (BPT_ChannelSelection "
                               f"{channels}); the case asked it to, and no rule makes an EV discharge")
    with step("the charger accepted every request and the EV ended the session"):
        _accepted(connection, reaction)
