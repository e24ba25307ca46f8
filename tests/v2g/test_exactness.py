"""Every protocol and mode, both sides sans-IO in lockstep: each session ends as planned and
every EXI message of it decodes to JSON that re-encodes to the same bytes."""

from __future__ import annotations

import pytest

from harness import exi
from harness.emulators.charge_port import ChargePort
from harness.v2g import sap
from harness.v2g.battery import Battery
from harness.v2g.equipment import EvseCapabilities
from harness.v2g.session import EvccSession, SeccSession
from harness.v2g.timers import Timing
from harness.v2g.vehicle import ChargePlan, Vehicle
from tests.v2g import lockstep as v2g_lockstep

TIMING = Timing(scale=0.0)
CASES = [("din", "DC", "EIM", "scheduled", False)]
CASES += [("iso2", energy, ident, "scheduled", False) for energy in ("AC", "DC") for ident in ("EIM", "PnC")]
CASES += [("iso2", "DC", "EIM", "scheduled", True)]  # pause
CASES += [(("iso20-dc" if energy.startswith("DC") else "iso20-ac"), energy, ident, control, False)
          for energy in ("AC", "DC", "AC_BPT", "DC_BPT") for ident in ("EIM", "PnC")
          for control in ("scheduled", "dynamic")]


@pytest.mark.parametrize("protocol, energy, identification, control, pause", CASES,
                         ids=[f"{p}-{e}-{i}-{c}{'-pause' if x else ''}".lower() for p, e, i, c, x in CASES])
def test_session_ends_as_planned_and_every_message_is_exact(material, protocol, energy, identification, control,
                                                             pause):
    generation = "iso20" if protocol.startswith("iso20") else "iso2"
    ev = Vehicle("0A1B2C3D4E5F", Battery(60000.0, 0.4, 50000.0, 11000.0), vin="WHARNESS000000001",
                 plan=ChargePlan(protocols=(protocol,), energy=energy, identification=identification,
                                 control=control, cycles=3, pause=pause))
    if identification == "PnC":
        ev.credentials = material.ev_credentials(generation)
    evcc = EvccSession(ev, offered=[protocol], timing=TIMING)
    port = ChargePort(EvseCapabilities(receipt_every=2), mo_roots=material.mo_roots(generation),
                      tariff_key=material.tariff_key("iso2"))
    secc = SeccSession(port, supported=[sap.protocol(protocol)], tls="TLSv1.3" if generation == "iso20" else "TLSv1.2",
                       timing=TIMING)
    exchanged = v2g_lockstep.run(evcc, secc)
    assert evcc.outcome.ok and secc.outcome.ok, (evcc.outcome, secc.outcome)
    assert evcc.outcome.paused is pause
    for request, response in exchanged:
        for send in (request, response):
            decoded = exi.decode(send.data, send.schema)
            assert decoded == send.message, send.name
            assert exi.encode(decoded, send.schema) == send.data, send.name
    names = {r.name for r, _ in exchanged}
    if identification == "PnC" and generation == "iso2":
        assert "MeteringReceiptReq" in names  # receipts every 2nd loop
