"""How long a charging limit takes from the CSMS to the EV on the emulated rig, hop by hop, and how
much of that is the harness's own processing (what the standards make it wait for is left out).

    .venv/bin/python bench/limit_latency.py --repeat 20

Each round starts an ISO 15118-2 AC session, and while the EV charges the CSMS sends a
TxDefaultProfile (alternately 8 A and 16 A). The timeline gives each hop:

- ``csms->station``: the CALL leaving the mock CSMS until the station has it (WebSocket, loopback);
- ``station answers``: the CALL received until its CALLRESULT goes out;
- ``station applies``: the CALL received until the new limit is in force (ChargingLimitApplied);
- ``secc notifies``: the EV's next ChargingStatusReq received until the response with
  ReNegotiation goes out (the wait for that request is the EV's loop interval: not counted);
- ``secc renegotiates``: the SECC's processing of PowerDeliveryReq(Renegotiate) and of the new
  ChargeParameterDiscoveryReq, each from request received to response sent;
- ``chain``: the sum of the hops above, the harness's processing along the whole path.

Timers are scaled as on the default rig (time_scale in rigs/emulated.yaml). Prints p50, p95 and
max in milliseconds per hop.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hop_table import print_hops  # noqa: E402  (bench/ is on the path as the script's folder)

from harness.ocpp import commands  # noqa: E402
from harness.rig.config import load_rig  # noqa: E402
from harness.rig.rig import Rig  # noqa: E402
from harness.trace import Recorder  # noqa: E402

HOPS = ("csms->station", "station answers", "station applies", "secc notifies", "secc renegotiates", "chain")


def _frame(events, name, observer, kind, since):
    return next(e for e in events if e.name == name and e.observer == observer and e.mono >= since
                and isinstance(e.payload, dict) and e.payload.get("type") == kind)


def _first(events, name, observer, since, src=None):
    return next(e for e in events if e.name == name and e.observer == observer and e.mono >= since
                and (src is None or e.src == src))


def one_round(rig: Rig, round_no: int) -> dict[str, float]:
    version = rig.evse.version
    token = f"BENCH-{round_no}"
    assert rig.csms.call(*commands.remote_start(version, token))["status"] == "Accepted"
    mark = rig.trace.now()
    amps = 8.0 if round_no % 2 == 0 else 16.0
    sent: dict[str, float] = {}

    def limit_while_charging() -> None:
        rig.trace.wait_for(30, name="ChargingStatusReq", observer="evse", since=mark)
        sent["at"] = rig.trace.now()
        rig.csms.call(*commands.charging_limit(version, amps, profile_id=100 + round_no))

    helper = threading.Thread(target=limit_while_charging)
    helper.start()
    result = rig.ev.charge(protocol="iso2", energy="AC", identification="EIM", cycles=40)
    helper.join(30)
    if not result.ok:
        raise RuntimeError(f"round {round_no}: the session failed: {result.outcome.reason}")
    events = [e for e in rig.trace if e.mono >= sent["at"]]
    call_out = _frame(events, "SetChargingProfile", "csms", "CALL", sent["at"])
    call_in = _frame(events, "SetChargingProfile", "evse", "CALL", sent["at"])
    answer = _frame(events, "SetChargingProfile", "evse", "CALLRESULT", call_in.mono)
    applied = _first(events, "ChargingLimitApplied", "evse", call_in.mono)
    notified = next(e for e in events if e.name == "ChargingStatusRes" and e.observer == "evse" and e.src == "evse"
                    and e.mono >= applied.mono and "ReNegotiation" in str(e.payload))
    asked = max((e for e in events if e.name == "ChargingStatusReq" and e.observer == "evse" and e.src == "ev"
                 and e.mono <= notified.mono), key=lambda e: e.mono)
    renegotiation = 0.0
    for request in ("PowerDeliveryReq", "ChargeParameterDiscoveryReq"):
        req = _first(events, request, "evse", notified.mono, src="ev")
        res = _first(events, request.replace("Req", "Res"), "evse", req.mono, src="evse")
        renegotiation += res.mono - req.mono
    hops = {"csms->station": call_in.mono - call_out.mono, "station answers": answer.mono - call_in.mono,
            "station applies": applied.mono - call_in.mono, "secc notifies": notified.mono - asked.mono,
            "secc renegotiates": renegotiation}
    hops["chain"] = hops["csms->station"] + hops["station applies"] + hops["secc notifies"] + renegotiation
    rig.restore()
    return hops


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--rig", type=Path, default=ROOT / "rigs" / "emulated.yaml")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        rig = Rig(load_rig(args.rig), run_dir=folder / "run", trace=Recorder(folder / "trace.jsonl"), run_id="bench")
        rig.setup()
        try:
            rounds = [one_round(rig, n) for n in range(args.repeat)]
        finally:
            rig.teardown()
    print(f"{args.repeat} limit changes during ISO 15118-2 AC sessions, {args.rig.name} "
          f"(time scale {rig.config.time_scale:g}); harness processing per hop, ms")
    print_hops(HOPS, rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
